//! The example's hardening phase on the lab: sshd's config validated before
//! the swap and reloaded in place, an sshd port move confirmed on the new
//! port, pre-flight checks that refuse a lockout before anything happens, and
//! the vpn toggle seen from a client inside and one outside the VPN range.

use std::process::Command;

use crate::common::*;

const WINDOW: u64 = 10;

/// The file example plus the example's hardening phase (firewall, sshd)
/// under a short window, deployed once.
fn hardened_lab() -> LabWithSlot {
    let lab = Lab::up(1);
    lab.write_file(
        "deploy.yml",
        &format!("{FILES_ONLY}  - name: hardening\n    roles: [firewall, hardening]\n    deadman: {WINDOW}s\n"),
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("confirmed over a fresh SSH connection to lab1;"), "{r:?}");
    assert!(lab.read("lab1", "/etc/ssh/sshd_config").unwrap().starts_with(b"# Ansible managed"));
    lab
}

/// A plain, fresh ssh to `host` on `port`; its exit code (255: no way in).
fn ssh_on(lab: &Lab, host: &str, port: u16) -> i32 {
    Command::new("ssh")
        .arg("-F")
        .arg(lab.root.join(".lab/ssh_config"))
        .args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ConnectTimeout=3"])
        .args(["-p", &port.to_string(), host, "true"])
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

#[test]
fn sshd_config_that_sshd_refuses_never_replaces_the_one_in_force() {
    let lab = hardened_lab();
    let before = lab.read("lab1", "/etc/ssh/sshd_config").unwrap();
    lab.write_file("inventory/host_vars/lab1.yml", "sshd_permit_root_login: sometimes\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.all().contains("validation of /etc/ssh/sshd_config failed"), "{r:?}");
    // sshd's own words are shown
    assert!(r.all().contains("PermitRootLogin"), "{r:?}");
    assert_eq!(lab.read("lab1", "/etc/ssh/sshd_config").unwrap(), before);
    assert_eq!(ssh_on(&lab, "lab1", 22), 0);
}

#[test]
fn hardening_that_shuts_root_out_is_reverted_and_sshd_reloaded() {
    let lab = hardened_lab();
    let before = lab.read("lab1", "/etc/ssh/sshd_config").unwrap();
    // valid for sshd, invisible to the pre-flight checks, and fatal for us:
    // the controller logs in as root
    lab.write_file("inventory/host_vars/lab1.yml", "sshd_permit_root_login: \"no\"\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("could NOT confirm over a fresh SSH connection"), "{r:?}");
    assert!(r.stdout.contains("the host reverted the deploy by itself"), "{r:?}");
    assert_eq!(lab.read("lab1", "/etc/ssh/sshd_config").unwrap(), before, "not back byte for byte");
    // the revert re-ran the reload: the sshd in force lets root in again
    assert_eq!(ssh_on(&lab, "lab1", 22), 0);
}

#[test]
fn sshd_port_move_connects_on_the_old_port_and_confirms_on_the_new_one() {
    let lab = hardened_lab();
    let before = lab.read("lab1", "/etc/ssh/sshd_config").unwrap();
    let journals = lab.sh("lab1", "ls /var/lib/deploy/journal");
    // moving sshd while the inventory still says port 22 would lock the next
    // deploy out: refused before anything is armed or written
    lab.write_file("inventory/group_vars/lab/port.yml", "ssh_port: 2222\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.all().contains("pre-flight checks failed; nothing was changed"), "{r:?}");
    assert!(r.all().contains("set ansible_port to 2222"), "{r:?}");
    assert_eq!(lab.read("lab1", "/etc/ssh/sshd_config").unwrap(), before);
    assert_eq!(lab.sh("lab1", "ls /var/lib/deploy/journal"), journals, "something was armed or journaled");

    // the way to do it: the new port in the inventory, the old one as fallback
    lab.write_file("inventory/host_vars/lab1.yml", "ansible_port: 2222\ndeploy_fallback_port: 22\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("connected on deploy_fallback_port 22"), "{r:?}");
    assert!(r.stdout.contains("confirmed over a fresh SSH connection to lab1:2222"), "{r:?}");
    assert_eq!(ssh_on(&lab, "lab1", 2222), 0, "sshd is not on the new port");
    assert_eq!(ssh_on(&lab, "lab1", 22), 255, "the old port still lets SSH in");
    // the next deploy goes straight to the new port, and nothing changes
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(!c.all().contains("fallback"), "{c:?}");

    // a deploy through the fallback that moves nothing under the switch is refused
    lab.write_file("inventory/host_vars/lab1.yml", "ansible_port: 2200\ndeploy_fallback_port: 2222\n");
    lab.write_file("inventory/group_vars/lab/port.yml", "ssh_port: 2222\napp_workers: 9\n");
    let r = lab.deploy(&["lab", "--yes", "--role", "app"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.all().contains("changes nothing under a dead-man switch"), "{r:?}");
}

#[test]
fn vpn_mode_serves_443_to_the_vpn_only_and_confirms_through_it() {
    let lab = Lab::up_docker(1, &[]);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let (public, vpn) = (lab.addr("lab1"), lab.vpn_addr("lab1"));
    // the controller has one address outside the VPN range and one inside
    let outside = format!("10.231.{}.1", lab.instance);
    let inside = format!("100.64.{}.1", lab.instance);
    assert_eq!(lab.http_from(&outside, &format!("http://{public}:443/")), "200");
    assert_eq!(lab.http_from(&outside, &format!("http://{public}:80/")), "200");

    let r = lab.deploy(&["vpn-on", "lab", "--yes", "--confirm-within", "40s"]);
    assert_eq!(r.code, 0, "{r:?}");
    // the plan re-rendered the proxy too: no port 80 published in VPN mode
    assert!(r.stdout.contains("proxy/proxy  recreate"), "{r:?}");
    assert!(r.stdout.contains("confirmed over a fresh SSH connection to lab1-vpn;"), "{r:?}");
    assert!(
        lab.sshd_log("lab1").contains(&format!("Connection from {inside} ")),
        "the confirm did not come through the VPN"
    );
    assert_eq!(lab.http_from(&inside, &format!("http://{vpn}:443/")), "200", "a VPN client cannot reach 443");
    assert_eq!(lab.http_from(&outside, &format!("http://{public}:443/")), "000", "443 is open outside the VPN");
    assert_eq!(lab.http_from(&inside, &format!("http://{vpn}:80/")), "000", "80 is open in VPN mode");
    let ports = lab.sh("lab1", "docker ps --filter name=proxy-proxy-1 --format '{{.Ports}}'");
    assert!(!ports.contains(":80->"), "the proxy still publishes 80: {ports}");
    let s = lab.deploy(&["vpn-status", "lab"]);
    assert!(s.stdout.contains("vpn state file says ON; the files on the host are the ON rendering"), "{s:?}");

    let r = lab.deploy(&["vpn-off", "lab", "--yes", "--confirm-within", "40s"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.http_from(&outside, &format!("http://{public}:80/")), "200");
    assert_eq!(lab.http_from(&outside, &format!("http://{public}:443/")), "200");

    // a critical container that is down before the toggle: refused up front,
    // since a failure after it could not be told apart from the change's
    lab.sh("lab1", "docker stop -t 1 proxy-proxy-1 >/dev/null");
    let before = lab.read("lab1", "/etc/nftables.conf").unwrap();
    let r = lab.deploy(&["vpn-on", "lab", "--yes", "--confirm-within", "40s"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.all().contains("pre-flight checks failed") && r.all().contains("proxy/proxy: container exited"), "{r:?}");
    assert_eq!(lab.read("lab1", "/etc/nftables.conf").unwrap(), before);
    // a plain deploy is how it gets repaired, and is not held back
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("proxy/proxy  start container"), "{r:?}");
}

//! Hosts that boot systemd (systemd-nspawn, systemd as PID 1): the dead-man
//! switch on its main mechanism, a transient systemd timer, and sshd
//! reloaded through systemctl.

use std::time::Duration;

use crate::common::*;

const WINDOW: u64 = 10;

/// One systemd host with the file example plus the firewall in a last phase
/// under a short window, deployed once.
fn guarded_systemd_lab() -> LabWithSlot {
    let lab = Lab::up_systemd(1);
    lab.write_file(
        "deploy.yml",
        &format!("{FILES_ONLY}  - name: hardening\n    roles: [firewall]\n    deadman: {WINDOW}s\n"),
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    lab
}

fn audit(lab: &Lab) -> String {
    lab.sh("sys1", "cat /var/lib/deploy/audit.log")
}

/// `systemctl is-active UNIT` on sys1.
fn unit_state(lab: &Lab, unit: &str) -> String {
    lab.ssh("sys1", &format!("systemctl is-active {unit}")).stdout.trim().to_string()
}

#[test]
fn deadman_arms_a_systemd_timer_and_confirming_cancels_exactly_that_unit() {
    let lab = guarded_systemd_lab();
    assert_eq!(lab.sh("sys1", "cat /proc/1/comm").trim(), "systemd");
    // someone else's timer with a name like ours, queued before the deploy
    lab.sh("sys1", "systemd-run --quiet --unit deploy-deadman-decoy --on-active=300 /bin/true");
    lab.write_file("inventory/host_vars/sys1.yml", "ssh_allowed_from: [\"10.231.0.0/16\", \"192.0.2.0/24\"]\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let unit = r
        .stdout
        .split("armed with systemd (")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .unwrap_or_else(|| panic!("the summary does not name a systemd unit: {r:?}"))
        .to_string();
    assert!(unit.starts_with("deploy-deadman-2"), "{unit}");
    assert!(r.stdout.contains("cancelled exactly this deploy's systemd timer"), "{r:?}");
    assert_eq!(unit_state(&lab, &format!("{unit}.timer")), "inactive", "the deploy's own timer is still queued");
    assert_eq!(unit_state(&lab, "deploy-deadman-decoy.timer"), "active", "another timer was cancelled");
    // past the window: nothing reverts
    let after = lab.read("sys1", "/etc/nftables.conf").unwrap();
    std::thread::sleep(Duration::from_secs(WINDOW + 3));
    assert_eq!(lab.read("sys1", "/etc/nftables.conf").unwrap(), after);
    assert!(!audit(&lab).contains("REVERTED"), "{}", audit(&lab));
    assert!(audit(&lab).contains("CONFIRMED deploy="));
}

#[test]
fn a_killed_controller_leaves_a_systemd_timer_that_reverts_the_host() {
    let lab = guarded_systemd_lab();
    let before = lab.read("sys1", "/etc/nftables.conf").unwrap();
    let t = std::fs::read_to_string(lab.root.join("roles/firewall/role.yml")).unwrap();
    let pause = "  - dest: /etc/paused.conf\n    content: \"x\\n\"\n    validate: \"while [ ! -e /etc/deploy-go ]; do sleep 0.1; done\"\n";
    lab.write_file("roles/firewall/role.yml", &t.replacen("files:\n", &format!("files:\n{pause}"), 1));
    lab.write_file("inventory/host_vars/sys1.yml", "ssh_allowed_from: [\"10.231.0.0/16\", \"198.51.100.0/24\"]\n");
    let mut deploy = spawn_in(&lab.root, &["lab", "--yes"]);
    wait_until("the deploy to reach the pause", Duration::from_secs(30), || {
        lab.ssh("sys1", "pgrep -f 'while \\[ ! -e /etc/deploy-g[o]' >/dev/null").code == 0
    });
    // the journal of this deploy (the first deploy's is there too)
    let armed = lab.sh("sys1", "cat \"$(ls -td /var/lib/deploy/journal/*/ | head -n1)deadman.armed\"");
    assert!(armed.starts_with("systemd\tdeploy-deadman-"), "{armed}");
    let unit = armed.split('\t').nth(1).unwrap().to_string();
    assert_eq!(unit_state(&lab, &format!("{unit}.timer")), "active");
    deploy.kill().unwrap();
    let _ = deploy.wait();
    lab.sh("sys1", "touch /etc/deploy-go");
    wait_until("the systemd timer to revert the host", Duration::from_secs(WINDOW + 20), || {
        audit(&lab).contains(" REVERTED deploy=")
    });
    assert_eq!(lab.read("sys1", "/etc/nftables.conf").unwrap(), before, "not back byte for byte");
    assert!(!lab.sh("sys1", "nft list ruleset").contains("198.51.100.0/24"));
    assert!(lab.read("sys1", "/etc/paused.conf").is_none(), "a file the deploy created is still there");
    // it was the timer's service that ran the revert
    let log = lab.sh("sys1", &format!("journalctl --no-pager -u {unit}.service"));
    assert!(log.contains(&format!("{unit}.service")), "{log}");
    assert!(lab.ssh("sys1", "test -d /var/lib/deploy/lock").code != 0, "lock left behind");
}

#[test]
fn sshd_config_is_reloaded_through_systemctl_keeping_sshd_and_sessions() {
    let lab = Lab::up_systemd(1);
    lab.write_file(
        "deploy.yml",
        &format!("{FILES_ONLY}  - name: hardening\n    roles: [firewall, hardening]\n    deadman: 2m\n"),
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let pid = lab.sh("sys1", "systemctl show -p MainPID --value ssh");
    lab.sh("sys1", "journalctl --rotate >/dev/null 2>&1; true");
    lab.write_file("inventory/host_vars/sys1.yml", "sshd_allow_users: [root]\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("confirmed over a fresh SSH connection to sys1"), "{r:?}");
    assert_eq!(lab.sh("sys1", "systemctl show -p MainPID --value ssh"), pid, "sshd was restarted, not reloaded");
    assert_eq!(lab.sh("sys1", "systemctl is-active ssh").trim(), "active");
    let log = lab.sh("sys1", "journalctl --no-pager -u ssh.service");
    assert!(log.contains("Reloaded ssh.service") || log.contains("Reloaded OpenBSD Secure Shell server"), "{log}");
    assert!(lab.sh("sys1", "cat /etc/ssh/sshd_config").contains("AllowUsers root"));
}

//! The dead-man switch on the lab: real nftables in each host's namespace,
//! real sshd, the controller confirming over a fresh connection.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const WINDOW: u64 = 10;

/// The file example plus the firewall in a last phase under a short window.
fn guarded_lab() -> LabWithSlot {
    let lab = Lab::up(1);
    lab.write_file(
        "deploy.yml",
        &format!("{FILES_ONLY}  - name: hardening\n    roles: [firewall]\n    deadman: {WINDOW}s\n"),
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("confirmed over a fresh SSH connection"), "{r:?}");
    lab
}

/// Drop the firewall's pre-flight checks, which refuse a lockout they can
/// foresee: these tests need one that gets past them (as a rule the checks
/// do not model would) to exercise the switch itself.
fn without_preflight(lab: &Lab) {
    let t = std::fs::read_to_string(lab.root.join("roles/firewall/role.yml")).unwrap();
    let cut = t.find("preflight:").expect("the firewall role has pre-flight checks");
    lab.write_file("roles/firewall/role.yml", &t[..cut]);
}

/// Add a file (YAML list item) to the firewall role, and optionally more
/// top-level keys.
fn add_to_firewall(lab: &Lab, file_item: &str, more: &str) {
    let t = std::fs::read_to_string(lab.root.join("roles/firewall/role.yml")).unwrap();
    let t = t.replacen("files:\n", &format!("files:\n{file_item}"), 1);
    lab.write_file("roles/firewall/role.yml", &format!("{t}{more}"));
}

fn ssh_base(lab: &Lab) -> Command {
    let mut c = Command::new("ssh");
    c.arg("-F").arg(lab.root.join(".lab/ssh_config")).stdin(Stdio::null());
    c
}

fn spawn_deploy(lab: &Lab, args: &[&str]) -> std::process::Child {
    spawn_in(&lab.root, args)
}

fn audit(lab: &Lab) -> String {
    lab.sh("lab1", "cat /var/lib/deploy/audit.log")
}

#[test]
fn lockout_is_reverted_by_the_host_and_the_fresh_connection_is_what_saw_it() {
    let lab = guarded_lab();
    without_preflight(&lab);
    let before = lab.read("lab1", "/etc/nftables.conf").unwrap();
    // our own multiplexed connection, opened before the change
    let ctl = lab.root.join(".lab/test-master");
    let st = ssh_base(&lab)
        .args(["-o", "ControlMaster=yes", "-o", "ControlPersist=120", "-fN"])
        .arg("-o")
        .arg(format!("ControlPath={}", ctl.display()))
        .arg("lab1")
        .status()
        .unwrap();
    assert!(st.success());
    let via_master = |cmd: &str| {
        ssh_base(&lab).arg("-o").arg(format!("ControlPath={}", ctl.display())).args(["lab1", cmd]).output().unwrap()
    };
    // SSH only from an address range the controller is not in
    lab.write_file("inventory/host_vars/lab1.yml", "ssh_allowed_from: [\"192.0.2.0/24\"]\n");
    let started = Instant::now();
    let deploy = spawn_deploy(&lab, &["lab", "--yes"]);
    wait_until("the lockout rules to be in force", Duration::from_secs(20), || {
        String::from_utf8_lossy(&via_master("nft list ruleset").stdout).contains("192.0.2.0/24")
    });
    // the established, multiplexed connection still works: a check over it would have passed
    assert!(via_master("true").status.success(), "the old multiplexed connection was cut");
    // a fresh connection does not get in
    let fresh = ssh_base(&lab)
        .args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "ConnectTimeout=2", "lab1", "true"])
        .output()
        .unwrap();
    assert_eq!(fresh.status.code(), Some(255), "a fresh connection got in through the lockout");
    assert!(started.elapsed() < Duration::from_secs(WINDOW), "checks ran after the window");

    let out = deploy.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("could NOT confirm over a fresh SSH connection"), "{stdout}");
    assert!(stdout.contains("will revert this deploy by itself at"), "{stdout}");
    assert!(stdout.contains("the host reverted the deploy by itself"), "{stdout}");
    // plain ssh gets in again, and the file is byte for byte what it was
    assert_eq!(lab.read("lab1", "/etc/nftables.conf").unwrap(), before);
    assert!(!lab.sh("lab1", "nft list ruleset").contains("192.0.2.0/24"), "old rules not in force again");
    assert!(audit(&lab).contains(" REVERTED deploy="));
    assert!(lab.ssh("lab1", "test -d /var/lib/deploy/lock").code != 0, "the revert did not release the lock");
    // the next deploy, and `deploy status`, say so before anything else
    let c = lab.deploy(&["lab", "--check"]);
    assert!(c.stdout.contains("the last deploy to this host was REVERTED"), "{c:?}");
    let st = lab.deploy(&["status", "lab"]);
    assert_eq!(st.code, 0, "{st:?}");
    assert!(st.stdout.starts_with("lab1:\n  the last deploy was REVERTED"), "{st:?}");
    let _ =
        ssh_base(&lab).arg("-o").arg(format!("ControlPath={}", ctl.display())).args(["-O", "exit", "lab1"]).output();
}

#[test]
fn confirmed_deploy_cancels_only_its_own_timer_and_never_reverts() {
    let lab = guarded_lab();
    // someone else's timer, queued before the deploy
    let decoy =
        lab.sh("lab1", "nohup setsid sh -c 'sleep 300; touch /etc/decoy-fired' >/dev/null 2>&1 </dev/null & echo $!");
    let decoy = decoy.trim().to_string();
    lab.write_file("inventory/host_vars/lab1.yml", "ssh_allowed_from: [\"10.231.0.0/16\", \"192.0.2.0/24\"]\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("armed with sleeper"), "the mechanism is not named: {r:?}");
    assert!(r.stdout.contains("cancelled exactly this deploy's sleeper timer"), "{r:?}");
    let after = lab.read("lab1", "/etc/nftables.conf").unwrap();
    // past the window: nothing reverts
    std::thread::sleep(Duration::from_secs(WINDOW + 3));
    assert_eq!(lab.read("lab1", "/etc/nftables.conf").unwrap(), after);
    assert!(!audit(&lab).contains("REVERTED"));
    assert!(audit(&lab).contains("CONFIRMED deploy="));
    assert_eq!(lab.ssh("lab1", &format!("kill -0 {decoy}")).code, 0, "another timer on the host was cancelled");
    lab.sh("lab1", &format!("kill -- -{decoy}"));
}

/// Kill the controller (SIGKILL) while the host waits at `pause`, then check
/// the host returns to its previous state within the window by itself.
fn killed_at(pause_file: &str, more: &str) {
    let lab = guarded_lab();
    let before = lab.read("lab1", "/etc/nftables.conf").unwrap();
    add_to_firewall(&lab, pause_file, more);
    lab.write_file("inventory/host_vars/lab1.yml", "ssh_allowed_from: [\"10.231.0.0/16\", \"198.51.100.0/24\"]\n");
    let mut deploy = spawn_deploy(&lab, &["lab", "--yes"]);
    wait_until("the deploy to reach the pause", Duration::from_secs(30), || {
        lab.ssh("lab1", "pgrep -f 'while \\[ ! -e /etc/deploy-g[o]' >/dev/null").code == 0
    });
    let armed = lab.sh("lab1", "cat /var/lib/deploy/journal/*/deadman.armed");
    assert!(armed.starts_with("sleeper"), "{armed}");
    deploy.kill().unwrap();
    let _ = deploy.wait();
    lab.sh("lab1", "touch /etc/deploy-go");
    wait_until("the host to revert by itself", Duration::from_secs(WINDOW + 20), || {
        audit(&lab).contains(" REVERTED deploy=")
    });
    assert_eq!(lab.read("lab1", "/etc/nftables.conf").unwrap(), before, "not back byte for byte");
    assert!(!lab.sh("lab1", "nft list ruleset").contains("198.51.100.0/24"));
    assert!(lab.read("lab1", "/etc/paused.conf").is_none(), "a file the deploy created is still there");
    assert!(lab.ssh("lab1", "test -d /var/lib/deploy/lock").code != 0, "lock left behind");
}

#[test]
fn controller_killed_before_the_swap_the_host_reverts() {
    killed_at(
        "  - dest: /etc/paused.conf\n    content: \"x\\n\"\n    validate: \"while [ ! -e /etc/deploy-go ]; do sleep 0.1; done\"\n",
        "",
    );
}

#[test]
fn controller_killed_during_the_health_wait_the_host_reverts() {
    killed_at(
        "  - dest: /etc/paused.conf\n    content: \"x\\n\"\n",
        "health:\n  - command: \"while [ ! -e /etc/deploy-go ]; do sleep 0.1; done\"\n    timeout: 60s\n",
    );
}

const TOGGLES: &str =
    "toggles:\n  vpn:\n    var: vpn_mode\n    on: vpn\n    off: public\n    roles: [firewall]\n    auto_revert: 15m\n";

fn toggle_lab() -> LabWithSlot {
    let lab = guarded_lab();
    let d = std::fs::read_to_string(lab.root.join("deploy.yml")).unwrap();
    lab.write_file("deploy.yml", &format!("{d}{TOGGLES}"));
    lab
}

#[test]
fn vpn_on_status_off_read_back_from_the_host() {
    let lab = toggle_lab();
    let r = lab.deploy(&["vpn-on", "lab", "--yes", "--confirm-within", "20s"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("confirmed over a fresh SSH connection"), "{r:?}");
    let rules = lab.sh("lab1", "nft list ruleset");
    assert!(rules.contains("ip saddr 100.64.0.0/10 tcp dport 443 accept"), "{rules}");
    assert!(!rules.contains("dport { 80, 443 }"), "{rules}");
    let s = lab.deploy(&["vpn-status", "lab"]);
    assert_eq!(s.code, 0, "{s:?}");
    assert!(s.stdout.contains("vpn state file says ON; the files on the host are the ON rendering"), "{s:?}");
    assert!(s.stdout.contains("no revert pending"), "{s:?}");
    // a plain deploy keeps the toggle: it renders with the host's recorded state
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 0, "a plain deploy would undo vpn-on: {c:?}");
    let r = lab.deploy(&["vpn-off", "lab", "--yes", "--confirm-within", "20s"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rules = lab.sh("lab1", "nft list ruleset");
    assert!(
        rules.contains("tcp dport { 80, 443 } accept") && !rules.contains("ip saddr 100.64.0.0/10 tcp dport 443"),
        "{rules}"
    );
    let s = lab.deploy(&["vpn-status", "lab"]);
    assert!(s.stdout.contains("vpn state file says OFF; the files on the host are the OFF rendering"), "{s:?}");
}

#[test]
fn failed_vpn_on_ends_in_the_previous_mode_not_public() {
    let lab = toggle_lab();
    without_preflight(&lab);
    // the previous mode: public, plus an extra SSH range of this host's own
    lab.write_file(
        "inventory/host_vars/lab1.yml",
        "ssh_allowed_from: [\"10.231.0.0/16\", \"198.51.100.0/24\"]\n# VPN-only mode would let SSH in from the VPN alone: the controller is locked out\nssh_allowed_from_vpn: [\"100.64.0.0/10\"]\n",
    );
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let before = lab.read("lab1", "/etc/nftables.conf").unwrap();
    let r = lab.deploy(&["vpn-on", "lab", "--yes", "--confirm-within", "10s"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("could NOT confirm") && r.stdout.contains("the host reverted the deploy by itself"),
        "{r:?}"
    );
    assert_eq!(lab.read("lab1", "/etc/nftables.conf").unwrap(), before, "not the previous mode byte for byte");
    let rules = lab.sh("lab1", "nft list ruleset");
    assert!(rules.contains("198.51.100.0/24") && rules.contains("dport { 80, 443 }"), "{rules}");
    assert!(lab.read("lab1", "/var/lib/deploy/toggles/vpn").is_none(), "the toggle state was not restored");
}

#[test]
fn no_confirm_is_a_trial_that_reverts_itself() {
    let lab = toggle_lab();
    let r = lab.deploy(&["vpn-on", "lab", "--yes", "--no-confirm", "--confirm-within", "8s"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("trial run (--no-confirm)"), "{r:?}");
    assert!(lab.sh("lab1", "nft list ruleset").contains("ip saddr 100.64.0.0/10 tcp dport 443"));
    let s = lab.deploy(&["vpn-status", "lab"]);
    assert!(s.stdout.contains("a revert is PENDING"), "{s:?}");
    wait_until("the trial to revert", Duration::from_secs(30), || audit(&lab).contains(" REVERTED deploy="));
    assert!(!lab.sh("lab1", "nft list ruleset").contains("ip saddr 100.64.0.0/10 tcp dport 443"));
    let s = lab.deploy(&["vpn-status", "lab"]);
    assert!(s.stdout.contains("state file says UNSET") && s.stdout.contains("no revert pending"), "{s:?}");
}

#[test]
fn at_timer_is_used_and_only_its_own_job_cancelled() {
    let lab = Lab::up_atd(1);
    lab.write_file("deploy.yml", &format!("{FILES_ONLY}  - name: hardening\n    roles: [firewall]\n    deadman: 2m\n"));
    // someone else's at job, queued before the deploy
    lab.sh("lab1", "echo 'touch /etc/decoy-at-fired' | at now + 30 minutes 2>/dev/null");
    let queued = lab.sh("lab1", "atq");
    assert_eq!(queued.lines().count(), 1, "{queued}");
    let o = Command::new(bin())
        .current_dir(&lab.root)
        .args(["lab", "--yes"])
        .env("NO_COLOR", "1")
        .env("DEPLOY_DEADMAN_MECHANISM", "at")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(
        stdout.contains("dead-man switch armed with at (")
            && stdout.contains("cancelled exactly this deploy's at timer"),
        "{stdout}"
    );
    assert_eq!(lab.sh("lab1", "atq"), queued, "the decoy job was removed or ours left behind");
}

#[test]
fn preflight_refuses_a_lockout_it_can_foresee_before_arming_anything() {
    let lab = guarded_lab();
    let before = lab.read("lab1", "/etc/nftables.conf").unwrap();
    let journals = lab.sh("lab1", "ls /var/lib/deploy/journal");
    lab.write_file("inventory/host_vars/lab1.yml", "ssh_allowed_from: [\"192.0.2.0/24\"]\n");
    let controller = format!("10.231.{}.1", lab.instance);
    for args in [&["lab", "--check"][..], &["lab", "--yes"][..]] {
        let r = lab.deploy(args);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.all().contains("pre-flight checks failed; nothing was changed"), "{r:?}");
        assert!(
            r.all().contains(&format!(
                "firewall: the new rules let SSH in only from 192.0.2.0/24, not from this controller ({controller})"
            )),
            "{r:?}"
        );
        assert!(r.all().contains("add it to ssh_allowed_from"), "{r:?}");
    }
    assert_eq!(lab.read("lab1", "/etc/nftables.conf").unwrap(), before);
    assert_eq!(lab.sh("lab1", "ls /var/lib/deploy/journal"), journals, "something was armed or journaled");
    assert!(lab.ssh("lab1", "test -d /var/lib/deploy/lock").code != 0, "lock left behind");
}

#[test]
fn controller_killed_mid_upload_the_host_reverts() {
    let lab = guarded_lab();
    let before = lab.read("lab1", "/etc/nftables.conf").unwrap();
    // a large file in the guarded phase, so that the upload takes a while
    let size: u64 = 64 << 20;
    let mut big = Vec::with_capacity(size as usize);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while (big.len() as u64) < size {
        // xorshift: incompressible enough, and no dependency
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::create_dir_all(lab.root.join("roles/firewall/files")).unwrap();
    std::fs::write(lab.root.join("roles/firewall/files/big.bin"), &big).unwrap();
    drop(big);
    add_to_firewall(&lab, "  - dest: /opt/big.bin\n    src: big.bin\n    mode: \"0644\"\n", "");
    lab.write_file("inventory/host_vars/lab1.yml", "ssh_allowed_from: [\"10.231.0.0/16\", \"198.51.100.0/24\"]\n");
    let journal = lab.state_dir("lab1").join("journal");
    let existing: Vec<_> = std::fs::read_dir(&journal).unwrap().map(|e| e.unwrap().file_name()).collect();
    let mut deploy = spawn_deploy(&lab, &["lab", "--yes"]);
    // watch the upload arrive from this side: the host's /var/lib/deploy is a
    // directory here, so no ssh round trip delays the kill
    let partial = |j: &std::path::Path| -> Option<u64> {
        for e in std::fs::read_dir(j).ok()?.flatten() {
            if existing.contains(&e.file_name()) {
                continue;
            }
            for p in std::fs::read_dir(e.path()).ok()?.flatten() {
                for f in std::fs::read_dir(p.path().join("new")).into_iter().flatten().flatten() {
                    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                    if len > 0 && len < size {
                        return Some(len);
                    }
                }
            }
        }
        None
    };
    let start = Instant::now();
    let got = loop {
        if let Some(n) = partial(&journal) {
            break n;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for the upload to begin");
        assert!(deploy.try_wait().unwrap().is_none(), "the deploy ended before its upload was seen");
        std::thread::sleep(Duration::from_millis(1));
    };
    deploy.kill().unwrap();
    let _ = deploy.wait();
    assert!(got < size, "the upload had finished: not mid-upload");
    wait_until("the host to revert by itself", Duration::from_secs(WINDOW + 30), || {
        audit(&lab).contains(" REVERTED deploy=")
    });
    assert_eq!(lab.read("lab1", "/etc/nftables.conf").unwrap(), before, "not back byte for byte");
    assert!(!lab.sh("lab1", "nft list ruleset").contains("198.51.100.0/24"));
    assert!(lab.ssh("lab1", "test -e /opt/big.bin").code != 0, "the half-uploaded file landed");
    assert!(lab.ssh("lab1", "test -d /var/lib/deploy/lock").code != 0, "lock left behind");
    // nothing of the upload is left lying around on the host
    let left: Vec<_> = std::fs::read_dir(&journal)
        .unwrap()
        .flatten()
        .filter(|e| !existing.contains(&e.file_name()))
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten().collect::<Vec<_>>())
        .flat_map(|p| std::fs::read_dir(p.path().join("new")).into_iter().flatten().flatten())
        .map(|f| f.path())
        .collect();
    assert!(left.is_empty(), "pieces of the upload left on the host: {left:?}");
}

#[test]
fn history_merges_the_audit_logs_by_deploy_with_each_result() {
    let lab = toggle_lab();
    lab.write_file("inventory/host_vars/lab1.yml", "ssh_allowed_from: [\"10.231.0.0/16\", \"192.0.2.0/24\"]\n");
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let role = std::fs::read_to_string(lab.root.join("roles/firewall/role.yml")).unwrap();
    add_to_firewall(&lab, "  - dest: /etc/broken.conf\n    content: \"x\\n\"\n    validate: \"false\"\n", "");
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 1);
    lab.write_file("roles/firewall/role.yml", &role);
    let r = lab.deploy(&["vpn-on", "lab", "--yes", "--no-confirm", "--confirm-within", "8s"]);
    assert_eq!(r.code, 0, "{r:?}");
    wait_until("the trial to revert", Duration::from_secs(30), || audit(&lab).contains(" REVERTED deploy="));

    let h = lab.deploy(&["history", "lab"]);
    assert_eq!(h.code, 0, "{h:?}");
    let lines: Vec<&str> = h.stdout.lines().collect();
    assert_eq!(lines.len(), 9, "{h:?}");
    let by = format!("  {}@", std::env::var("USER").unwrap_or_else(|_| "root".into()));
    for (i, result) in [
        (1, "  lab1  ok, confirmed  ("),
        (3, "  lab1  ok, confirmed  (updated 1)"),
        // the switch was armed before the validation failed, and confirmed
        (5, "  lab1  FAILED in phase hardening, confirmed"),
        // a trial never writes its end: the host reverted it first
        (7, "  lab1  REVERTED by the host (never confirmed)"),
    ] {
        assert!(lines[i].starts_with(result), "line {i}: {h:?}");
        assert!(lines[i - 1].contains(&by) && lines[i - 1].contains("  commit none"), "line {}: {h:?}", i - 1);
    }
    assert!(lines[6].ends_with("  vpn-on"), "{h:?}");
    assert_eq!(lines[8], "4 deploys on 1 host (oldest first)");

    let j = lab.deploy(&["history", "lab", "--host", "lab1", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let d = v["deploys"].as_array().unwrap();
    assert_eq!(d.len(), 4, "{v}");
    assert_eq!((d[3]["toggle"].as_str(), d[3]["hosts"]["lab1"]["reverted"].as_bool()), (Some("vpn-on"), Some(true)));
    assert_eq!(d[2]["hosts"]["lab1"]["result"], "failed-in-phase:hardening");
    assert_eq!(d[0]["hosts"]["lab1"]["confirmed"], true);
}

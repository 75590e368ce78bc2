//! Packages, units, users, groups, sysctl, cron, lines and commands on the
//! hosts that boot systemd: create, no-op, change, drift, removal, a failed
//! health gate, and a SIGKILLed controller under the dead-man switch.

use std::time::Duration;

use crate::common::*;

/// The example's base and system phases only (no sshd or firewall changes).
const SYSTEM_ONLY: &str = "project: example-stack
age_identity: inventory/lab.identity
phases:
  - name: base
    roles: [common]
  - name: system
    roles: [system]
    hosts: lab_systemd
";

fn system_lab() -> LabWithSlot {
    let lab = Lab::up_systemd(1);
    lab.write_file("deploy.yml", SYSTEM_ONLY);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    lab
}

fn main_pid(lab: &Lab, unit: &str) -> String {
    lab.sh("sys1", &format!("systemctl show -p MainPID --value {unit}")).trim().to_string()
}

/// `systemctl --user ARGS` of the ops user, as root on the host.
fn user_systemctl(args: &str) -> String {
    format!("runuser -u ops -- env XDG_RUNTIME_DIR=/run/user/2200 systemctl --user {args}")
}

fn web(lab: &Lab, port: u16) -> Run {
    lab.ssh("sys1", &format!("busybox wget -q -O - http://127.0.0.1:{port}/"))
}

/// Edit the test's copy of roles/system/role.yml.
fn edit_role(lab: &Lab, from: &str, to: &str) {
    let t = std::fs::read_to_string(lab.root.join("roles/system/role.yml")).unwrap();
    assert!(t.contains(from), "role.yml has no `{from}`");
    lab.write_file("roles/system/role.yml", &t.replacen(from, to, 1));
}

#[test]
fn system_resources_converge_then_a_second_run_touches_nothing() {
    let lab = system_lab();
    assert_eq!(lab.sh("sys1", "systemctl is-active lab-web lab-worker"), "active\nactive\n");
    assert_eq!(lab.sh("sys1", "systemctl is-enabled lab-web lab-worker"), "enabled\nenabled\n");
    assert_eq!(web(&lab, 8080).stdout, "lab web on sys1\n");
    assert_eq!(lab.sh("sys1", "id -nG ops"), "ops www\n");
    assert_eq!(lab.sh("sys1", "getent passwd web | cut -d: -f3,6,7"), "2100:/srv/www:/usr/sbin/nologin\n");
    assert_eq!(lab.sh("sys1", "stat -c '%a %U' /home/ops/.ssh /home/ops/.ssh/authorized_keys"), "700 ops\n600 ops\n");
    assert!(lab.sh("sys1", "cat /home/ops/.ssh/authorized_keys").starts_with("ssh-ed25519 AAAAC3"));
    assert_eq!(lab.sh("sys1", "stat -c '%a %U' /etc/cron.d/deploy-system"), "644 root\n");
    assert!(lab.sh("sys1", "cat /etc/cron.d/deploy-system").contains("\n17 3 * * * root find /var/log"));
    assert_eq!(lab.sh("sys1", "cat /proc/sys/net/ipv4/tcp_keepalive_time"), "600\n");
    assert_eq!(
        lab.sh("sys1", "cat /etc/sysctl.d/60-deploy-system.conf"),
        "# Ansible managed\nnet.ipv4.tcp_keepalive_time = 600\n"
    );
    assert_eq!(lab.sh("sys1", "grep '^UMASK' /etc/login.defs"), "UMASK 027\n");
    assert_eq!(lab.sh("sys1", "lab-tool"), "lab-tool 1.0\n");
    // the ops user's own systemd runs its unit, without a login
    assert_eq!(lab.sh("sys1", &user_systemctl("is-active lab-agent")), "active\n");
    assert_eq!(lab.sh("sys1", "ls /var/lib/systemd/linger"), "ops\n");
    assert_eq!(lab.sh("sys1", "stat -c '%U' /home/ops/.config/systemd/user/lab-agent.service"), "ops\n");
    let stamp = lab.sh("sys1", "cat /srv/www/initialised");
    let pids = (main_pid(&lab, "lab-web"), main_pid(&lab, "lab-worker"));

    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(c.stdout.contains("sys1 (sys1)\n  ✓ in sync"), "{c:?}");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Nothing to change on 1 host."), "{r:?}");
    assert_eq!((main_pid(&lab, "lab-web"), main_pid(&lab, "lab-worker")), pids, "a no-op restarted a unit");
    assert_eq!(lab.sh("sys1", "cat /srv/www/initialised"), stamp, "the guarded command ran again");
}

#[test]
fn a_change_restarts_exactly_the_units_that_read_it() {
    let lab = system_lab();
    let (web_pid, worker_pid) = (main_pid(&lab, "lab-web"), main_pid(&lab, "lab-worker"));
    lab.write_file("inventory/host_vars/sys1.yml", "lab_web_port: 8081\n");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(
        c.stdout.contains("  ↻ unit lab-web.service  restart  [/etc/default/lab-web changed]  role system\n"),
        "{c:?}"
    );
    assert!(!c.stdout.contains("lab-worker.service  restart"), "{c:?}");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(main_pid(&lab, "lab-web"), web_pid, "lab-web was not restarted");
    assert_eq!(main_pid(&lab, "lab-worker"), worker_pid, "lab-worker was restarted though nothing it reads changed");
    assert_eq!(web(&lab, 8081).stdout, "lab web on sys1\n");

    let web_pid = main_pid(&lab, "lab-web");
    let agent_pid = lab.sh("sys1", &user_systemctl("show -p MainPID --value lab-agent"));
    lab.write_file("inventory/host_vars/sys1.yml", "lab_web_port: 8081\nlab_worker_interval: 30\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(main_pid(&lab, "lab-web"), web_pid, "lab-web was restarted though nothing it reads changed");
    assert_ne!(main_pid(&lab, "lab-worker"), worker_pid, "lab-worker was not restarted");
    assert_eq!(lab.sh("sys1", &user_systemctl("show -p MainPID --value lab-agent")), agent_pid);

    // a user unit: restarted by its own systemd, the system's units untouched
    let worker_pid = main_pid(&lab, "lab-worker");
    lab.write_file(
        "inventory/host_vars/sys1.yml",
        "lab_web_port: 8081\nlab_worker_interval: 30\nlab_agent_interval: 20\n",
    );
    let c = lab.deploy(&["lab", "--check"]);
    assert!(
        c.stdout.contains(
            "  ↻ unit lab-agent.service (user ops)  restart  [/home/ops/.config/lab-agent.env changed]  role system\n"
        ),
        "{c:?}"
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(lab.sh("sys1", &user_systemctl("show -p MainPID --value lab-agent")), agent_pid);
    assert_eq!((main_pid(&lab, "lab-web"), main_pid(&lab, "lab-worker")), (web_pid, worker_pid));
}

#[test]
fn drift_by_hand_is_shown_then_repaired() {
    let lab = system_lab();
    lab.sh(
        "sys1",
        "systemctl stop lab-worker && systemctl disable --quiet lab-web && gpasswd -d ops www >/dev/null \
         && echo 7200 >/proc/sys/net/ipv4/tcp_keepalive_time && sed -i 's/^UMASK.*/UMASK\t\t022/' /etc/login.defs \
         && chmod 600 /etc/cron.d/deploy-system && DEBIAN_FRONTEND=noninteractive apt-get remove -qq -y lab-tool >/dev/null 2>&1",
    );
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    for line in [
        "  + package lab-tool  install  [1.0 (not installed)]  role system\n",
        "  ↻ user ops  modify  [groups (none) -> www]  role system\n",
        "  + sysctl net.ipv4.tcp_keepalive_time  set  [live value 7200 -> 600]  role system\n",
        "  + unit lab-web.service  enable  [disabled -> enabled]  role system\n",
        "  + unit lab-worker.service  start  [inactive -> started]  role system\n",
        "  ~ /etc/login.defs (lines)  update  [line matching `^UMASK\\s`]  role system\n",
        "  ~ /etc/cron.d/deploy-system  attributes  [mode 0600 -> 0644]  role system\n",
    ] {
        assert!(c.stdout.contains(line), "missing {line:?} in {c:?}");
    }
    // the diff of a managed line shows only that line
    assert!(c.stdout.contains("      @@ -151 +151 @@\n      -UMASK\t\t022\n      +UMASK 027\n"), "{c:?}");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 0, "not repaired: {c:?}");
    assert_eq!(
        lab.sh("sys1", "lab-tool; id -nG ops; systemctl is-active lab-worker"),
        "lab-tool 1.0\nops www\nactive\n"
    );
}

#[test]
fn removal_of_each_kind() {
    let lab = system_lab();
    edit_role(
        &lab,
        "  - name: lab-tool\n    version: \"{{ lab_tool_version }}\"\n",
        "  - name: lab-tool\n    state: absent\n",
    );
    edit_role(&lab, "  - name: ops\n    uid: 2200\n", "  - name: ops\n    state: absent\n    uid: 2200\n");
    edit_role(
        &lab,
        "    enabled: true\n    state: started\n    restart_on: [/etc/default/lab-worker]",
        "    enabled: false\n    state: stopped\n    restart_on: [/etc/default/lab-worker]",
    );
    edit_role(&lab, "    line: UMASK 027\n", "    state: absent\n");
    // ops goes, and with it what ran in its own systemd
    let t = std::fs::read_to_string(lab.root.join("roles/system/role.yml")).unwrap();
    let (a, b) = (t.find("  # a unit of the ops user's own").unwrap(), t.find("sysctl:\n").unwrap());
    let (c, d) = (t.find("  - dest: /home/ops/.config/lab-agent.env").unwrap(), t.find("units:\n").unwrap());
    lab.write_file("roles/system/role.yml", &format!("{}{}{}{}", &t[..c], &t[d..a], &t[b..], ""));
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    for line in [
        "  - package lab-tool  remove  [1.0 installed]  role system\n",
        "  - user ops  delete  [uid 2200, home /home/ops kept, a revert recreates the account, but not its password]  role system\n",
        "  - unit lab-worker.service  disable  [enabled -> disabled]  role system\n",
        "  - unit lab-worker.service  stop  [active -> stopped]  role system\n",
    ] {
        assert!(c.stdout.contains(line), "missing {line:?} in {c:?}");
    }
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.ssh("sys1", "command -v lab-tool").code, 1, "lab-tool still installed");
    assert_eq!(lab.ssh("sys1", "getent passwd ops").code, 2, "ops still exists");
    assert_eq!(lab.ssh("sys1", "systemctl is-active lab-worker").stdout, "inactive\n");
    assert_eq!(lab.ssh("sys1", "systemctl is-enabled lab-worker").stdout, "disabled\n");
    assert_eq!(lab.ssh("sys1", "grep -c '^UMASK' /etc/login.defs").stdout, "0\n");
    assert_eq!(lab.deploy(&["lab", "--check"]).code, 0);
}

/// Short waits for the web server in this copy of the role, and a user the
/// next deploy creates.
fn with_short_gates_and_a_new_user(lab: &Lab) {
    edit_role(
        lab,
        "    restart_on: [/etc/lab-web/httpd.conf, /etc/default/lab-web]\n",
        "    restart_on: [/etc/lab-web/httpd.conf, /etc/default/lab-web]\n    timeout: 5s\n",
    );
    edit_role(lab, "users:\n", "users:\n  - name: temp\n    uid: 2300\n");
}

#[test]
fn a_failed_health_gate_rolls_back_packages_users_files_and_units() {
    let lab = system_lab();
    with_short_gates_and_a_new_user(&lab);
    edit_role(&lab, "    timeout: 20s\n", "    timeout: 5s\n");
    // port 80 is privileged: the web server (user web) cannot bind it
    lab.write_file("inventory/host_vars/sys1.yml", "lab_web_port: 80\nlab_tool_version: \"2.0\"\n");
    let c = lab.deploy(&["lab", "--check"]);
    assert!(c.stdout.contains("  ↻ package lab-tool  upgrade  [1.0 -> 2.0]  role system\n"), "{c:?}");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("FAILED  phase system: health gate failed"), "{r:?}");
    assert!(r.stdout.contains("lab-web.service: unit is failed\n      last log lines of lab-web.service:\n"), "{r:?}");
    assert!(r.stdout.contains("| httpd: bind: Permission denied\n"), "{r:?}");
    assert!(
        r.stdout.contains("rolled back: re-ran systemctl reset-failed 'lab-web.service'; systemctl restart 'lab-web.service' on the restored files"),
        "{r:?}"
    );
    // everything of the phase is as before
    assert!(r.stdout.contains("rolled back: undid user temp, package lab-tool\n"), "{r:?}");
    assert_eq!(lab.sh("sys1", "lab-tool"), "lab-tool 1.0\n", "the package was not downgraded back");
    assert_eq!(lab.ssh("sys1", "getent passwd temp").code, 2, "the user this deploy created is still there");
    assert_eq!(lab.sh("sys1", "cat /etc/default/lab-web"), "LAB_WEB_PORT=8080\n");
    wait_until("lab-web to serve on 8080 again", Duration::from_secs(20), || web(&lab, 8080).code == 0);
    assert_eq!(lab.sh("sys1", "systemctl is-active lab-web"), "active\n");
}

#[test]
fn a_sigkilled_controller_under_the_dead_man_switch_leaves_the_host_to_revert_everything() {
    let lab = Lab::up_systemd(1);
    lab.write_file("deploy.yml", &format!("{SYSTEM_ONLY}    deadman: 10s\n"));
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("armed with systemd"), "{r:?}");
    with_short_gates_and_a_new_user(&lab);
    edit_role(
        &lab,
        "health:\n",
        "health:\n  - command: \"while [ ! -e /etc/deploy-go ]; do sleep 0.1; done\"\n    timeout: 60s\n",
    );
    lab.write_file("inventory/host_vars/sys1.yml", "lab_web_port: 8081\nlab_tool_version: \"2.0\"\n");
    let mut deploy = spawn_in(&lab.root, &["lab", "--yes"]);
    wait_until("the deploy to reach its health gate", Duration::from_secs(60), || {
        lab.ssh("sys1", "pgrep -f 'while \\[ ! -e /etc/deploy-g[o]' >/dev/null").code == 0
    });
    assert_eq!(lab.sh("sys1", "lab-tool"), "lab-tool 2.0\n");
    assert_eq!(lab.ssh("sys1", "getent passwd temp").code, 0);
    deploy.kill().unwrap();
    let _ = deploy.wait();
    lab.sh("sys1", "touch /etc/deploy-go");
    wait_until("the host to revert by itself", Duration::from_secs(40), || {
        lab.sh("sys1", "cat /var/lib/deploy/audit.log").contains(" REVERTED deploy=")
    });
    assert_eq!(lab.sh("sys1", "lab-tool"), "lab-tool 1.0\n", "the package was not downgraded back");
    assert_eq!(lab.ssh("sys1", "getent passwd temp").code, 2, "the user this deploy created is still there");
    assert_eq!(lab.sh("sys1", "cat /etc/default/lab-web"), "LAB_WEB_PORT=8080\n");
    wait_until("lab-web to serve on 8080 again", Duration::from_secs(20), || web(&lab, 8080).code == 0);
}

#[test]
fn check_shows_what_would_run_and_runs_nothing() {
    let lab = Lab::up_systemd(1);
    lab.write_file("deploy.yml", SYSTEM_ONLY);
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(
        c.stdout.contains(
            "  ▶ command stamp the site  would run  [because /srv/www/initialised is missing, not revertible: a revert does not undo a command]  role system\n"
        ),
        "{c:?}"
    );
    assert!(
        c.stdout.contains("  + package busybox  install  [1:1.35.0-4+deb12u1+b1 (not installed)]  role system\n"),
        "{c:?}"
    );
    let j = lab.deploy(&["lab", "--check", "--output", "json"]);
    crate::plan_schema::assert_valid_plan(&j.stdout);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!((v["format_version"].as_u64(), v["hosts"][0]["address"].as_str()), (Some(1), Some("sys1")));
    let sys = v["hosts"][0]["plan"]["system"].as_array().unwrap();
    assert!(sys.iter().all(|c| c["phase"] == "system"), "phases are named: {sys:?}");
    let run = sys.iter().find(|c| c["resource"] == "command").unwrap();
    assert_eq!(
        (run["name"].as_str(), run["action"].as_str(), run["revertible"].as_bool()),
        (Some("stamp the site"), Some("run"), Some(false))
    );
    assert!(sys.iter().any(|c| c["resource"] == "unit" && c["name"] == "lab-web.service" && c["action"] == "start"));
    // nothing of it happened
    assert_eq!(lab.ssh("sys1", "test -e /srv/www/initialised || getent passwd ops || command -v busybox").code, 1);
}

#[test]
fn a_package_a_revert_could_not_undo_is_refused_under_the_dead_man_switch() {
    let lab = system_lab();
    // lab-tool 3.0, installed by hand from a package the archive does not have
    lab.sh(
        "sys1",
        "d=$(mktemp -d) && mkdir -p $d/DEBIAN $d/usr/bin && printf 'Package: lab-tool\\nVersion: 3.0\\nArchitecture: all\\nMaintainer: x <x@invalid>\\nDescription: x\\n x\\n' >$d/DEBIAN/control \
         && printf '#!/bin/sh\\necho lab-tool 3.0\\n' >$d/usr/bin/lab-tool && chmod 755 $d/usr/bin/lab-tool \
         && dpkg-deb -b $d /tmp/lab-tool.deb >/dev/null && dpkg -i /tmp/lab-tool.deb >/dev/null",
    );
    lab.write_file("deploy.yml", &format!("{SYSTEM_ONLY}    deadman: 2m\n"));
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("  host sys1: package lab-tool (3.0 -> 1.0) could not be undone by a revert (not revertible: the archive no longer has 3.0), and phase system runs under the dead-man switch; nothing was changed. Add `revert: none` to it in role system's role.yml if leaving it is fine, or move it to a phase without the switch\n"),
        "{r:?}"
    );
    assert_eq!(lab.sh("sys1", "lab-tool"), "lab-tool 3.0\n");
    // said on purpose, it goes ahead
    edit_role(
        &lab,
        "    version: \"{{ lab_tool_version }}\"\n",
        "    version: \"{{ lab_tool_version }}\"\n    revert: none\n",
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "  ↻ package lab-tool  downgrade  [3.0 -> 1.0, a revert leaves it (revert: none)]  role system\n"
        ),
        "{r:?}"
    );
    assert_eq!(lab.sh("sys1", "lab-tool"), "lab-tool 1.0\n");
}

//! Staged rollouts on the lab: batches, a failure that stops the rollout
//! (the hosts after it never start), and a canary.

use crate::common::*;

/// Three hosts with the files example, deployed; the app role then gains a
/// file whose health check fails on the hosts where `health_word` is bad.
fn three_hosts_with_a_gate(bad_on: &[&str]) -> LabWithSlot {
    let lab = Lab::up(3);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let role = std::fs::read_to_string(lab.root.join("roles/app/role.yml")).unwrap();
    lab.write_file(
        "roles/app/role.yml",
        &format!(
            "{role}\n  - dest: /opt/stack/health\n    content: \"{{{{ health_word | default('ok') }}}}\\n\"\n    mode: \"0644\"\n\
health:\n  - command: grep -qx ok /opt/stack/health\n    timeout: 2s\n"
        )
        .replacen("files:\n", "files:\n", 1),
    );
    for h in bad_on {
        lab.write_file(&format!("inventory/host_vars/{h}.yml"), "health_word: bad\n");
    }
    lab
}

#[test]
fn serial_1_stops_at_the_first_failed_host_and_never_starts_the_others() {
    let lab = three_hosts_with_a_gate(&["lab1"]);
    let r = lab.deploy(&["lab", "--yes", "--serial", "1"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stdout.contains("  lab1  FAILED  phase app: health gate failed"), "{r:?}");
    for h in ["lab2", "lab3"] {
        assert!(
            r.stdout.contains(&format!(
                "  {h}  skip    never started: the rollout stopped after lab1 failed (1 of 3 hosts, over max_fail_percentage 0); nothing was changed"
            )),
            "{r:?}"
        );
        assert!(lab.read(h, "/opt/stack/health").is_none(), "{h} was touched");
        assert!(lab.ssh(h, "test -d /var/lib/deploy/lock").code != 0, "{h} still locked");
    }
    assert!(lab.read("lab1", "/opt/stack/health").is_none(), "lab1 was not rolled back");
    // with room for one failure in three, the rollout goes on
    let r = lab.deploy(&["lab", "--yes", "--serial", "1", "--max-fail-percentage", "34"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(lab.read("lab3", "/opt/stack/health").unwrap(), b"ok\n");
}

#[test]
fn a_canary_goes_first_and_the_rest_follow_when_it_passes() {
    let lab = three_hosts_with_a_gate(&[]);
    let r = lab.deploy(&["lab", "--yes", "--canary", "1", "--serial", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    for h in ["lab1", "lab2", "lab3"] {
        assert_eq!(lab.read(h, "/opt/stack/health").unwrap(), b"ok\n", "{h}");
    }
    // a failing canary: nothing else starts
    lab.write_file("inventory/host_vars/lab1.yml", "health_word: bad\napp_workers: 7\n");
    lab.write_file("inventory/host_vars/lab2.yml", "app_workers: 7\n");
    let r = lab.deploy(&["lab", "--yes", "--canary", "1"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stdout.contains("  lab2  skip    never started: the rollout stopped after lab1 failed"), "{r:?}");
    assert!(!String::from_utf8(lab.read("lab2", "/opt/stack/app.conf").unwrap()).unwrap().contains("workers = 7\n"));
}

#[test]
fn serial_of_a_phase_lets_hosts_through_it_in_batches_and_stops_at_a_failure() {
    let lab = three_hosts_with_a_gate(&["lab1"]);
    let d = FILES_ONLY.replace("  - name: app\n    roles: [app]\n", "  - name: app\n    roles: [app]\n    serial: 1\n");
    lab.write_file("deploy.yml", &d);
    // the phase before it changes on every host, and is applied on every host
    let motd = std::fs::read_to_string(lab.root.join("roles/common/templates/motd.j2")).unwrap();
    lab.write_file("roles/common/templates/motd.j2", &format!("{motd}-- serial test\n"));
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("  lab1  FAILED  phase app: health gate failed"), "{r:?}");
    for h in ["lab2", "lab3"] {
        assert!(
            r.stdout.contains(&format!("  {h}  FAILED  phase app: stopped before this phase: lab1 failed in it, and its serial: lets no later batch in; the phases before it are applied")),
            "{r:?}"
        );
        assert!(
            String::from_utf8(lab.read(h, "/etc/motd").unwrap()).unwrap().ends_with("-- serial test\n"),
            "{h}: base not applied"
        );
        assert!(lab.read(h, "/opt/stack/health").is_none(), "{h} went through the app phase");
    }
    // with the failure fixed, every host goes through, one at a time
    lab.write_file("inventory/host_vars/lab1.yml", "health_word: ok\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    for h in ["lab1", "lab2", "lab3"] {
        assert_eq!(lab.read(h, "/opt/stack/health").unwrap(), b"ok\n", "{h}");
    }
    // a bad serial is named
    lab.write_file("deploy.yml", &d.replace("serial: 1", "serial: none"));
    let e = lab.deploy(&["lab", "--check"]);
    assert!(
        e.stderr.ends_with("phase `app`: serial `none` is not a number of hosts (3) or a percentage of them (25%)\n"),
        "{e:?}"
    );
}

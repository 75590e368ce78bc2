//! Behaviour on the lab, over real SSH: every check reads the hosts back with
//! a plain `ssh`, never through the tool.

use std::time::Duration;

use crate::common::*;

fn stat(lab: &Lab, host: &str, paths: &[&str]) -> String {
    lab.sh(host, &format!("stat -c '%n %a %u:%g %i %Y' {}", paths.join(" ")))
}

#[test]
fn first_deploy_writes_exact_bytes_owner_and_mode() {
    let lab = Lab::up(3);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    for host in ["lab1", "lab2", "lab3"] {
        let local = lab.rendered(host);
        for f in FILES {
            let want = std::fs::read(local.join(f.trim_start_matches('/'))).unwrap();
            assert_eq!(lab.read(host, f).as_deref(), Some(&want[..]), "{host}:{f} differs from the rendered bytes");
        }
        let st = lab.sh(host, "stat -c '%n %a %u:%g' /etc/motd /opt/stack/env /opt/stack/env/app.env /srv/app/data /srv/app/data/state.json");
        assert_eq!(
            st,
            "/etc/motd 644 0:0\n/opt/stack/env 700 0:0\n/opt/stack/env/app.env 600 0:0\n/srv/app/data 750 1000:1000\n/srv/app/data/state.json 640 1000:1000\n"
        );
    }
    // host-specific variables give host-specific content
    let c1 = String::from_utf8(lab.read("lab1", "/opt/stack/app.conf").unwrap()).unwrap();
    let c2 = String::from_utf8(lab.read("lab2", "/opt/stack/app.conf").unwrap()).unwrap();
    assert!(c1.contains("workers = 2\n") && c1.contains("https://lab1.lab.example/notes"), "{c1}");
    assert!(c2.contains("workers = 4\n") && c2.contains("sharing = enabled"), "{c2}");
    // the secret landed on the host (it is only kept out of output)
    let env = String::from_utf8(lab.read("lab1", "/opt/stack/env/app.env").unwrap()).unwrap();
    assert!(env.contains(POISON));
    // journal and audit log
    let audit = lab.sh("lab1", "cat /var/lib/deploy/audit.log");
    assert!(audit.contains("env=lab") && audit.contains("created="), "{audit}");
}

#[test]
fn second_deploy_changes_nothing() {
    let lab = Lab::up(2);
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let before: Vec<String> = ["lab1", "lab2"].iter().map(|h| stat(&lab, h, FILES)).collect();
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Nothing to change on 2 hosts"), "{r:?}");
    assert!(!r.stdout.contains("applied"), "{r:?}");
    let after: Vec<String> = ["lab1", "lab2"].iter().map(|h| stat(&lab, h, FILES)).collect();
    assert_eq!(before, after, "inode or mtime of a managed file changed on a no-op deploy");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 0, "{c:?}");
    // by design, a host with nothing to change costs one connection and one
    // command (the probe): no lock taken and released, no audit line
    let sessions = |h: &str| lab.sshd_log(h).matches("Starting session:").count();
    let conns = |h: &str| lab.sshd_log(h).matches("Connection from ").count();
    let (s0, c0) = (sessions("lab1"), conns("lab1"));
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!((conns("lab1") - c0, sessions("lab1") - s0), (1, 1), "a no-op took more than one round trip");
}

#[test]
fn one_variable_changes_exactly_the_affected_file() {
    let lab = Lab::up(3);
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let before: Vec<String> = ["lab1", "lab2", "lab3"].iter().map(|h| stat(&lab, h, FILES)).collect();
    lab.write_file("inventory/host_vars/lab2.yml", "app_workers: 5\napp_features: [search, export, sharing]\n");
    // round trips per host, counted in sshd's own log: (connections, sessions)
    let count = |h: &str| {
        let log = lab.sshd_log(h);
        (log.matches("Connection from ").count(), log.matches("Starting session:").count())
    };
    let trips = |before: &[(usize, usize)]| -> Vec<(usize, usize)> {
        ["lab1", "lab2", "lab3"].iter().zip(before).map(|(h, b)| (count(h).0 - b.0, count(h).1 - b.1)).collect()
    };
    let before_check: Vec<(usize, usize)> = ["lab1", "lab2", "lab3"].iter().map(|h| count(h)).collect();
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    // the diff's old contents come with the probe
    assert_eq!(trips(&before_check), vec![(1, 1); 3], "a check took more than one round trip per host");
    let diff_lines: Vec<&str> = c
        .stdout
        .lines()
        .map(|l| l.trim())
        .filter(|l| (l.starts_with('+') || l.starts_with('-')) && !l.starts_with("+++") && !l.starts_with("---"))
        .collect();
    assert_eq!(diff_lines, vec!["-workers = 4", "+workers = 5"], "{c:?}");
    let j = lab.deploy(&["lab", "--check", "--output", "json"]);
    crate::plan_schema::assert_valid_plan(&j.stdout);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let changed: Vec<(String, String)> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            h["plan"]["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |c| (h["host"].as_str().unwrap().to_string(), c["path"].as_str().unwrap().to_string()))
        })
        .collect();
    assert_eq!(changed, vec![("lab2".to_string(), "/opt/stack/app.conf".to_string())]);
    let before_apply: Vec<(usize, usize)> = ["lab1", "lab2", "lab3"].iter().map(|h| count(h)).collect();
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    // by design: the probe, then one upload that takes the lock, swaps the
    // file, writes the audit line and releases the lock
    assert_eq!(trips(&before_apply), vec![(1, 1), (1, 2), (1, 1)], "{r:?}");
    let audit = lab.sh("lab2", "tail -n 1 /var/lib/deploy/audit.log");
    assert!(audit.contains(" updated=1 ") && audit.ends_with("result=ok\n"), "{audit}");
    assert_eq!(lab.ssh("lab2", "test -e /var/lib/deploy/lock").code, 1, "lock left behind");
    let after: Vec<String> = ["lab1", "lab2", "lab3"].iter().map(|h| stat(&lab, h, FILES)).collect();
    assert_eq!(before[0], after[0]);
    assert_eq!(before[2], after[2]);
    let changed_lines: Vec<(&str, &str)> = before[1].lines().zip(after[1].lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed_lines.len(), 1, "{changed_lines:?}");
    assert!(changed_lines[0].0.starts_with("/opt/stack/app.conf "));
    assert!(String::from_utf8(lab.read("lab2", "/opt/stack/app.conf").unwrap()).unwrap().contains("workers = 5\n"));
}

#[test]
fn drift_is_shown_and_restored_but_preserved_files_are_kept() {
    let lab = Lab::up(1);
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    lab.sh("lab1", "echo 'hand edit' >> /opt/stack/app.conf; echo '{\"sessions\": [\"keep-me\"]}' > /srv/app/data/state.json; chmod 0666 /etc/motd");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(c.stdout.contains("-hand edit"), "{c:?}");
    assert!(c.stdout.contains("/etc/motd  attributes  [mode 0666 -> 0644]"), "{c:?}");
    assert!(c.stdout.contains("/srv/app/data/state.json  preserved"), "{c:?}");
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let conf = String::from_utf8(lab.read("lab1", "/opt/stack/app.conf").unwrap()).unwrap();
    assert!(!conf.contains("hand edit"));
    assert_eq!(lab.sh("lab1", "stat -c %a /etc/motd"), "644\n");
    assert_eq!(lab.sh("lab1", "cat /srv/app/data/state.json"), "{\"sessions\": [\"keep-me\"]}\n");
    // the replaced file is in the journal
    let j = lab.sh(
        "lab1",
        "find /var/lib/deploy/journal -path '*/old/*' -type f -exec cat {} + | grep -c 'hand edit' || true",
    );
    assert_eq!(j.trim(), "1");
    assert_eq!(lab.deploy(&["lab", "--check"]).code, 0);
}

#[test]
fn role_and_limit_narrow_the_run() {
    let lab = Lab::up(2);
    let r = lab.deploy(&["lab", "--role", "common", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    for h in ["lab1", "lab2"] {
        assert!(lab.read(h, "/etc/deploy-admins").is_some());
        assert!(lab.read(h, "/opt/stack/app.conf").is_none(), "--role common deployed app's file on {h}");
    }
    let r = lab.deploy(&["lab", "--limit", "lab2", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(lab.read("lab2", "/opt/stack/app.conf").is_some());
    assert!(lab.read("lab1", "/opt/stack/app.conf").is_none(), "--limit lab2 touched lab1");
    assert!(!r.stdout.contains("lab1"), "{r:?}");
    let bad = lab.deploy(&["lab", "--role", "nope", "--check"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("role `nope` is not in any phase"), "{bad:?}");
}

#[test]
fn failed_validation_keeps_the_old_file_and_changes_nothing() {
    let lab = Lab::up(2);
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let before = lab.read("lab1", "/opt/stack/app.conf").unwrap();
    let env_before = lab.sh("lab1", "stat -c '%i %Y' /opt/stack/env/app.env; md5sum /opt/stack/env/app.env");
    // break the config for every host (the validator requires a `listen = `
    // line), change another file of the same phase, and one of the phase before
    let t = std::fs::read_to_string(lab.root.join("roles/app/templates/app.conf.j2")).unwrap();
    lab.write_file("roles/app/templates/app.conf.j2", &t.replace("listen = ", "lisen = "));
    let e = std::fs::read_to_string(lab.root.join("roles/app/templates/app.env.j2")).unwrap();
    lab.write_file("roles/app/templates/app.env.j2", &format!("{e}EXTRA=1\n"));
    lab.write_file("roles/common/files/VERSION", "example-stack 2.0.0\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("validation of /opt/stack/app.conf failed"), "{r:?}");
    assert!(r.stdout.contains("lab1") && r.stdout.contains("FAILED  phase app"), "{r:?}");
    assert_eq!(lab.read("lab1", "/opt/stack/app.conf").unwrap(), before, "old file not kept byte for byte");
    assert_eq!(
        lab.sh("lab1", "stat -c '%i %Y' /opt/stack/env/app.env; md5sum /opt/stack/env/app.env"),
        env_before,
        "another file of the failed phase changed"
    );
    // the phase before passed and stays applied
    assert_eq!(lab.sh("lab1", "cat /opt/stack/VERSION"), "example-stack 2.0.0\n");
    assert!(lab.ssh("lab1", "test -d /var/lib/deploy/lock").code != 0, "lock left behind");
    let audit = lab.sh("lab1", "tail -n 1 /var/lib/deploy/audit.log");
    assert!(audit.contains("result=failed-in-phase:app"), "{audit}");
}

#[test]
fn validator_output_is_shown() {
    let lab = Lab::up(1);
    lab.write_file(
        "roles/common/role.yml",
        "files:\n  - dest: /etc/deploy-check.conf\n    content: \"x = 1\\n\"\n    mode: \"0644\"\n    validate: \"echo 'line 1: unknown key x' >&2; exit 3\"\n",
    );
    let r = lab.deploy(&["lab", "--role", "common", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("(exit 3)") && r.stdout.contains("| line 1: unknown key x"), "{r:?}");
    assert!(lab.read("lab1", "/etc/deploy-check.conf").is_none());
}

#[test]
fn poison_secret_never_printed() {
    let lab = Lab::up(1);
    // positive control: the search finds the secret where it is expected
    let view = lab.deploy(&["secrets", "view", "inventory/group_vars/lab/secrets.age"]);
    assert!(view.stdout.contains(POISON) && view.stdout.contains(DB_PASSWORD), "control failed: {view:?}");
    let mut outputs = vec![
        lab.deploy(&["lab", "--check"]),
        lab.deploy(&["lab", "--check", "--output", "json"]),
        lab.deploy(&["lab", "--yes"]),
    ];
    // a change of the file that embeds the password shows a diff around it
    lab.write_file("inventory/host_vars/lab1.yml", "app_features: [search, export, sharing]\n");
    outputs.push(lab.deploy(&["lab", "--check"]));
    outputs.push(lab.deploy(&["lab", "--check", "--output", "json"]));
    let md = lab.deploy(&["lab", "--check", "--output", "markdown"]);
    // the pull-request comment: a table row, the diff collapsed, redacted
    assert!(
        md.stdout.starts_with("## deploy plan: `lab`\n\n1 host: 1 to change, 0 in sync.\n\n### lab1 (`lab1`)\n"),
        "{md:?}"
    );
    assert!(md.stdout.contains("| ~ | `/opt/stack/app.conf` update | content | app |\n"), "{md:?}");
    assert!(
        md.stdout.contains("<details><summary>diff <code>/opt/stack/app.conf</code></summary>\n\n```diff\n"),
        "{md:?}"
    );
    assert!(md.stdout.contains("<redacted>"), "the diff around the password is not shown: {md:?}");
    outputs.push(md);
    // an error while a secret is in scope
    lab.write_file("inventory/host_vars/lab1.yml", "app_workers: \"{{ vault_api_token }}{{ nope }}\"\n");
    outputs.push(lab.deploy(&["lab", "--check"]));
    lab.write_file("inventory/host_vars/lab1.yml", "");
    // a failed validation that echoes the secret file: shown, masked
    let role = std::fs::read_to_string(lab.root.join("roles/app/role.yml")).unwrap();
    lab.write_file(
        "roles/app/role.yml",
        &role.replace("    secret: true\n", "    secret: true\n    validate: \"cat %s; false\"\n"),
    );
    lab.write_file(
        "roles/app/templates/app.env.j2",
        &format!("{}# changed\n", std::fs::read_to_string(lab.root.join("roles/app/templates/app.env.j2")).unwrap()),
    );
    let validated = lab.deploy(&["lab", "--yes"]);
    assert!(validated.stdout.contains("| API_TOKEN=<redacted>"), "the validator output was not shown: {validated:?}");
    outputs.push(validated);
    lab.write_file("roles/app/role.yml", &role);
    // an undefined variable inside the template that uses the secret
    let t = std::fs::read_to_string(lab.root.join("roles/app/templates/app.env.j2")).unwrap();
    lab.write_file("roles/app/templates/app.env.j2", &format!("{t}{{{{ nope_undefined }}}}\n"));
    outputs.push(lab.deploy(&["lab", "--check"]));
    for o in &outputs {
        let all = o.all();
        assert!(!all.contains(POISON) && !all.contains(DB_PASSWORD), "secret printed: {o:?}");
    }
    assert!(outputs[3].stdout.contains("<redacted>"), "{:?}", outputs[3]);
    assert!(String::from_utf8(lab.read("lab1", "/opt/stack/env/app.env").unwrap()).unwrap().contains(POISON));
}

#[test]
fn concurrent_deploy_fails_at_once_naming_the_holder() {
    let lab = Lab::up(1);
    // the first deploy holds the lock while its validator runs
    lab.write_file(
        "roles/common/role.yml",
        "files:\n  - dest: /etc/slow.conf\n    content: \"x\\n\"\n    validate: \"while [ ! -e /etc/release-validator ]; do sleep 0.05; done\"\n",
    );
    let first = spawn_in(&lab.root, &["lab", "--role", "common", "--yes"]);
    wait_until("the first deploy to hold the lock", Duration::from_secs(20), || {
        lab.ssh("lab1", "test -s /var/lib/deploy/lock/holder").code == 0
    });
    let start = std::time::Instant::now();
    let second = lab.deploy(&["lab", "--yes"]);
    assert!(start.elapsed() < Duration::from_secs(10), "second deploy waited for the lock");
    assert_eq!(second.code, 1, "{second:?}");
    assert!(second.stdout.contains("another deploy holds the lock"), "{second:?}");
    assert!(second.stdout.contains(&format!("pid={}", first.id())), "holder not named: {second:?}");
    lab.sh("lab1", "touch /etc/release-validator");
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(lab.sh("lab1", "cat /etc/slow.conf"), "x\n");
}

#[test]
fn lock_taken_after_the_probe_stops_the_apply_before_it_writes() {
    let lab = Lab::up(1);
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let audit = lab.sh("lab1", "cat /var/lib/deploy/audit.log");
    // With --yes the lock is taken by the apply's own command. Another
    // deploy grabbing it between our probe and our apply (here: a pre-flight
    // command, which runs in between) must stop us with nothing written.
    lab.write_file(
        "roles/common/role.yml",
        "files:\n  - dest: /etc/motd\n    content: \"new motd\\n\"\npreflight:\n  - command: \"mkdir -p /var/lib/deploy/lock && echo 'ci@elsewhere pid=1 deploy=other' > /var/lib/deploy/lock/holder\"\n",
    );
    let motd = lab.sh("lab1", "cat /etc/motd");
    let r = lab.deploy(&["lab", "--role", "common", "--yes", "--allow-shrink"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("another deploy holds the lock: ci@elsewhere pid=1 deploy=other"), "{r:?}");
    assert_eq!(lab.sh("lab1", "cat /etc/motd"), motd, "written without the lock");
    assert_eq!(
        lab.sh("lab1", "cat /var/lib/deploy/lock/holder"),
        "ci@elsewhere pid=1 deploy=other\n",
        "their lock was touched"
    );
    assert_eq!(lab.sh("lab1", "cat /var/lib/deploy/audit.log"), audit, "an audit line for a deploy that did nothing");
}

#[test]
fn a_prompt_holds_the_lock_until_it_is_answered() {
    use std::io::{Read, Write};
    let lab = Lab::up(1);
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    lab.write_file("roles/common/role.yml", "files:\n  - dest: /etc/motd\n    content: \"answered\\n\"\n");
    // a terminal for the question: script(1) runs the deploy on a pty
    let mut child = std::process::Command::new("script")
        .args(["-qec", &format!("{} lab --role common", bin()), "/dev/null"])
        .current_dir(&lab.root)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut answer = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    // the plan on screen must still hold when it is answered: nobody else
    // may deploy in between
    wait_until("the prompting deploy to hold the lock", Duration::from_secs(30), || {
        lab.ssh("lab1", "test -s /var/lib/deploy/lock/holder").code == 0
    });
    let other = lab.deploy(&["lab", "--yes"]);
    assert_eq!(other.code, 1, "{other:?}");
    assert!(other.stdout.contains("another deploy holds the lock"), "{other:?}");
    assert_ne!(lab.sh("lab1", "cat /etc/motd"), "answered\n");
    answer.write_all(b"y\n").unwrap();
    let mut status = None;
    wait_until("the deploy to finish after the answer", Duration::from_secs(60), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    drop(answer);
    let out = reader.join().unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("Apply these changes?"), "{out}");
    assert_eq!(lab.sh("lab1", "cat /etc/motd"), "answered\n");
    assert_eq!(lab.ssh("lab1", "test -e /var/lib/deploy/lock").code, 1, "lock left behind");
    assert!(lab.sh("lab1", "tail -n 1 /var/lib/deploy/audit.log").ends_with("result=ok\n"));
}

#[test]
fn a_large_old_file_is_not_sent_for_a_diff() {
    let lab = Lab::up(1);
    lab.write_file("roles/common/role.yml", "files:\n  - dest: /etc/big.conf\n    content: \"small now\\n\"\n");
    lab.sh("lab1", "head -c 2000000 /dev/zero | tr '\\0' 'x' > /etc/big.conf");
    let c = lab.deploy(&["lab", "--role", "common", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(c.stdout.contains("no diff: the file on the host has 2000000 bytes, over the 1048576"), "{c:?}");
    assert!(!c.stdout.contains("xxxxxxxx"), "{c:?}");
    // (2 MB to 10 bytes: --allow-shrink)
    assert_eq!(lab.deploy(&["lab", "--role", "common", "--yes", "--allow-shrink"]).code, 0);
    assert_eq!(lab.sh("lab1", "cat /etc/big.conf"), "small now\n");
}

#[test]
fn stale_lock_is_named_and_can_be_released() {
    let lab = Lab::up(1);
    let me = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    lab.sh(
        "lab1",
        &format!("mkdir -p /var/lib/deploy/lock && echo 'ci@{} pid=999999 started=2026-01-01T00:00:00Z deploy=x' > /var/lib/deploy/lock/holder", me.trim()),
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("ci@") && r.stdout.contains("stale"), "{r:?}");
    assert!(r.stdout.contains("deploy unlock lab --host lab1"), "{r:?}");
    let u = lab.deploy(&["unlock", "lab", "--host", "lab1"]);
    assert_eq!(u.code, 0, "{u:?}");
    assert!(u.stdout.contains("released the lock held by ci@"), "{u:?}");
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
}

#[test]
fn unreachable_host_does_not_stop_the_others() {
    let lab = Lab::up(3);
    lab.lab_cmd(&["kill-sshd", "lab3"]);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stdout.contains("lab3") && r.stdout.contains("connection refused"), "{r:?}");
    assert!(r.stdout.contains("after 3 attempts"), "{r:?}");
    // without a terminal, each retry is a line of progress
    assert!(r.stderr.contains("lab3: connecting, attempt 2 of 3: the last one said: connection refused"), "{r:?}");
    assert!(lab.read("lab1", "/opt/stack/app.conf").is_some());
    assert!(lab.read("lab2", "/opt/stack/app.conf").is_some());
}

#[test]
fn changed_host_key_is_refused() {
    let lab = Lab::up(2);
    lab.lab_cmd(&["rekey", "lab2"]);
    // the lab's known_hosts still has the old key
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stdout.contains("lab2") && r.stdout.contains("host key has CHANGED"), "{r:?}");
    assert!(lab.read("lab1", "/opt/stack/app.conf").is_some());
    // accept-new does not override a changed key
    let r = lab.deploy(&["lab", "--yes", "--accept-new-host-keys", "--limit", "lab2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("CHANGED"), "{r:?}");
    assert!(lab.ssh("lab2", "true").code != 0, "plain ssh got in with a changed key?");
}

#[test]
fn unknown_host_key_needs_accept_new() {
    let lab = Lab::up(1);
    std::fs::write(lab.root.join(".lab/known_hosts"), "").unwrap();
    let r = lab.deploy(&["lab", "--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("not in known_hosts") && r.stdout.contains("--accept-new-host-keys"), "{r:?}");
    let r = lab.deploy(&["lab", "--check", "--accept-new-host-keys"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(std::fs::read_to_string(lab.root.join(".lab/known_hosts")).unwrap().contains("ssh-ed25519"));
}

#[test]
fn no_tty_without_yes_refuses() {
    let lab = Lab::up(1);
    let r = lab.deploy(&["lab"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("standard input is not a terminal") && r.stderr.contains("--yes"), "{r:?}");
    assert!(lab.read("lab1", "/opt/stack/app.conf").is_none());
    assert!(lab.ssh("lab1", "test -d /var/lib/deploy/lock").code != 0, "lock left behind");
}

/// Bad input: each a clear message naming the place, non-zero exit, and
/// nothing written on any host.
#[test]
fn bad_input_is_refused_before_touching_hosts() {
    let lab = Lab::up(2);
    let motd = lab.sh("lab1", "stat -c '%i %Y' /etc/motd; cat /etc/motd");
    type Case<'a> = (&'a str, Box<dyn Fn(&Lab)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "malformed YAML",
            Box::new(|l: &Lab| {
                l.write_file("inventory/group_vars/lab/main.yml", "app_domain: [unclosed\nlog_level: debug\n")
            }),
            vec!["inventory/group_vars/lab/main.yml:", ":"],
        ),
        (
            "unknown key",
            Box::new(|l: &Lab| {
                let t = std::fs::read_to_string(l.root.join("roles/app/role.yml")).unwrap();
                l.write_file(
                    "roles/app/role.yml",
                    &t.replace("    secret: true", "    secret: true\n    owner_name: root"),
                )
            }),
            vec!["roles/app/role.yml:", "unknown field `owner_name`", "expected one of"],
        ),
        (
            "CRLF template",
            Box::new(|l: &Lab| l.write_file("roles/common/templates/motd.j2", "line one\r\nline two\r\n")),
            vec!["roles/common/templates/motd.j2:1", "CRLF"],
        ),
        (
            "non-UTF-8 template",
            Box::new(|l: &Lab| {
                std::fs::write(l.root.join("roles/common/templates/motd.j2"), b"ok\ncaf\xe9\n").unwrap()
            }),
            vec!["roles/common/templates/motd.j2:2", "UTF-8"],
        ),
        (
            "undefined variable",
            Box::new(|l: &Lab| {
                l.write_file("roles/common/templates/motd.j2", "a\n{{ app_name }} on {{ missing_var }}\n")
            }),
            vec!["host lab1", "roles/common/templates/motd.j2:2", "undefined variable `missing_var`"],
        ),
        (
            "undefined variable inside a variable",
            Box::new(|l: &Lab| {
                l.write_file("inventory/group_vars/lab/main.yml", "app_domain: \"{{ vault_domain }}.example\"\n")
            }),
            vec![
                "host lab1",
                "variable `app_domain`",
                "inventory/group_vars/lab/main.yml",
                "undefined variable `vault_domain`",
            ],
        ),
        (
            "integer mode",
            Box::new(|l: &Lab| {
                let t = std::fs::read_to_string(l.root.join("roles/common/role.yml")).unwrap();
                l.write_file("roles/common/role.yml", &t.replacen("mode: \"0644\"", "mode: 0644", 1))
            }),
            vec!["roles/common/role.yml:", "mode 0644 is a YAML integer", "quoted string"],
        ),
        (
            "wrong age identity",
            Box::new(|l: &Lab| {
                let id = l.root.join("other.identity");
                let _ = std::fs::remove_file(&id);
                assert_eq!(deploy_in(&l.root, &["secrets", "keygen", "--out", id.to_str().unwrap()]).code, 0);
                let t = std::fs::read_to_string(l.root.join("deploy.yml")).unwrap();
                l.write_file("deploy.yml", &t.replace("inventory/lab.identity", "other.identity"));
            }),
            vec!["inventory/group_vars/lab/secrets.age", "cannot be decrypted with the identity", "hint:"],
        ),
    ];
    let pristine: Vec<(String, Vec<u8>)> = [
        "deploy.yml",
        "roles/app/role.yml",
        "roles/common/role.yml",
        "roles/common/templates/motd.j2",
        "inventory/group_vars/lab/main.yml",
    ]
    .iter()
    .map(|p| (p.to_string(), std::fs::read(lab.root.join(p)).unwrap()))
    .collect();
    for (name, break_it, expect) in cases {
        for (p, b) in &pristine {
            std::fs::write(lab.root.join(p), b).unwrap();
        }
        break_it(&lab);
        let r = lab.deploy(&["lab", "--yes"]);
        assert_eq!(r.code, 1, "{name}: {r:?}");
        assert!(r.stderr.starts_with("error: "), "{name}: {r:?}");
        for e in expect {
            assert!(r.stderr.contains(e), "{name}: expected `{e}` in the message: {r:?}");
        }
        for h in ["lab1", "lab2"] {
            assert!(lab.ssh(h, "test -e /opt/stack").code != 0, "{name}: something was written on {h}");
        }
        assert_eq!(lab.sh("lab1", "stat -c '%i %Y' /etc/motd; cat /etc/motd"), motd, "{name}");
    }
}

#[test]
fn yaml11_booleans_are_warned_about() {
    let (root, _slot) = project();
    std::fs::write(root.join("inventory/host_vars/lab1.yml"), "app_debug: yes\n").unwrap();
    let out = root.join("out");
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = deploy_in(&root, &["lab", "--check", "--limit", "lab1"]);
    assert!(r.stderr.contains("inventory/host_vars/lab1.yml:1") && r.stderr.contains("key `app_debug`"), "{r:?}");
}

#[test]
fn secrets_edit_rewrites_only_on_change_and_leaves_no_plaintext() {
    let (root, slot) = project();
    let file = "inventory/group_vars/lab/secrets.age";
    let before = std::fs::read(root.join(file)).unwrap();
    let tmp = slot.path.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let edit = |editor: &str| {
        std::process::Command::new(bin())
            .current_dir(&root)
            .args(["secrets", "edit", file])
            .env("EDITOR", editor)
            .env("XDG_RUNTIME_DIR", &tmp)
            .output()
            .unwrap()
    };
    let o = edit("true");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(std::fs::read(root.join(file)).unwrap(), before, "unchanged plaintext rewrote the file");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temp file left behind");
    let o = edit("sed -i s/lab-db-pw-9f3Kq7/rotated-pw-1234/");
    assert!(o.status.success(), "{o:?}");
    assert_ne!(std::fs::read(root.join(file)).unwrap(), before);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temp file left behind");
    let v = deploy_in(&root, &["secrets", "view", file]);
    assert!(v.stdout.contains("vault_db_password: rotated-pw-1234"), "{v:?}");
    // a failing editor leaves the file as it was, and no temp file
    let after = std::fs::read(root.join(file)).unwrap();
    let o = edit("false");
    assert!(!o.status.success());
    assert_eq!(std::fs::read(root.join(file)).unwrap(), after);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temp file left behind");
}

#[test]
fn file_changed_between_plan_and_apply_is_left_alone() {
    let lab = Lab::up(1);
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    // The first file's validator holds the apply until we have edited the
    // second file on the host; the host re-checks each hash before touching it.
    lab.write_file(
        "roles/common/role.yml",
        "files:\n  - dest: /etc/a.conf\n    content: \"a\\n\"\n    validate: \"while [ ! -e /etc/go ]; do sleep 0.05; done\"\n  - dest: /etc/motd\n    content: \"new motd\\n\"\n",
    );
    let run = spawn_in(&lab.root, &["lab", "--role", "common", "--yes", "--allow-shrink"]);
    wait_until("the apply to wait in the validator", Duration::from_secs(20), || {
        lab.ssh("lab1", "pgrep -f 'while \\[ ! -e /etc/go' >/dev/null").code == 0
    });
    lab.sh("lab1", "echo 'edited by hand during the deploy' > /etc/motd; touch /etc/go");
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("/etc/motd: changed on the host since the plan"), "{stdout}");
    assert_eq!(lab.sh("lab1", "cat /etc/motd"), "edited by hand during the deploy\n");
    assert_eq!(lab.sh("lab1", "cat /etc/a.conf"), "a\n");
}

#[test]
fn includes_render_like_ansible() {
    let (root, slot) = project();
    std::fs::write(root.join("roles/common/templates/part.j2"), "included {{ app_name }}\n").unwrap();
    std::fs::write(root.join("roles/common/templates/motd.j2"), "Hello {% include 'part.j2' %}!\n\n").unwrap();
    let out = slot.path.join("out");
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    // the include loses its last newline; the template keeps both of its own
    assert_eq!(std::fs::read_to_string(out.join("lab1/etc/motd")).unwrap(), "Hello included notes!\n\n");
}

#[test]
fn passphrase_encrypted_vars_files_decrypt() {
    let (root, slot) = project();
    let plain = slot.path.join("pp.yml");
    std::fs::write(&plain, "app_name: from-passphrase-file\n").unwrap();
    let age = root.join("inventory/host_vars/lab1.age");
    let enc = std::process::Command::new(bin())
        .current_dir(&root)
        .args(["secrets", "encrypt", plain.to_str().unwrap(), "--passphrase", "--out", age.to_str().unwrap()])
        .env("DEPLOY_AGE_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    assert!(enc.status.success(), "{enc:?}");
    let out = slot.path.join("out");
    let render = |pass: &str| {
        std::process::Command::new(bin())
            .current_dir(&root)
            .args(["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()])
            .env("DEPLOY_AGE_PASSPHRASE", pass)
            .output()
            .unwrap()
    };
    let ok = render("correct horse");
    assert!(ok.status.success(), "{ok:?}");
    assert!(std::fs::read_to_string(out.join("lab1/etc/motd")).unwrap().contains("runs from-passphrase-file at"));
    let bad = render("wrong");
    assert!(!bad.status.success());
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(e.contains("inventory/host_vars/lab1.age") && e.contains("passphrase"), "{e}");
}

// A full disk where new files land is found while they arrive: the upload
// stops and nothing on the host changes.
#[test]
fn a_full_disk_under_the_new_files_changes_nothing() {
    let lab = Lab::up(1);
    let motd = lab.sh("lab1", "cat /etc/motd");
    lab.lab_cmd(&["tmpfs", "lab1", "/srv", "64k"]);
    std::fs::write(lab.root.join("roles/common/files/big.bin"), vec![b'x'; 256 * 1024]).unwrap();
    let t = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    lab.write_file(
        "roles/common/role.yml",
        &t.replace("absent:", "  - dest: /srv/app/big.bin\n    src: big.bin\nabsent:"),
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("upload: cannot unpack the upload") && r.stdout.contains("disk full?"), "{r:?}");
    assert_eq!(lab.sh("lab1", "cat /etc/motd"), motd, "motd changed");
    assert!(lab.ssh("lab1", "test -e /opt/stack").code != 0, "a directory was made");
    assert_eq!(lab.sh("lab1", "ls -A /srv"), "", "partial files left behind");
    assert!(lab.ssh("lab1", "test -d /var/lib/deploy/lock").code != 0, "lock left behind");
}

// A disk that fills midway through a phase (here /srv, out of inodes after
// one new directory) fails it there: what was done is rolled back. And a
// journal too small for the old versions it must keep is refused before
// anything changes.
#[test]
fn full_disk_mid_apply_rolls_the_host_back() {
    let lab = Lab::up(1);
    let motd = lab.sh("lab1", "cat /etc/motd");
    lab.lab_cmd(&["tmpfs", "lab1", "/srv", "64k,nr_inodes=2"]);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("/srv/app/data") && r.stdout.contains("No space left on device"), "{r:?}");
    assert!(r.stdout.contains("rolled back"), "{r:?}");
    assert_eq!(lab.sh("lab1", "cat /etc/motd"), motd, "motd not restored");
    assert!(lab.ssh("lab1", "test -e /opt/stack").code != 0, "created directory left behind");
    assert_eq!(lab.sh("lab1", "ls -A /srv"), "", "partial directories left behind");
    assert!(lab.ssh("lab1", "test -d /var/lib/deploy/lock").code != 0, "lock left behind");

    lab.sh("lab1", "umount /srv && head -c 262144 /dev/zero > /etc/old.bin");
    lab.lab_cmd(&["tmpfs", "lab1", "/var/lib/deploy", "64k"]);
    let t = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    lab.write_file(
        "roles/common/role.yml",
        &t.replace("absent:", "  - dest: /etc/old.bin\n    content: \"new\\n\"\nabsent:"),
    );
    let r = lab.deploy(&["lab", "--yes", "--allow-shrink"]);
    assert_eq!(r.code, 1, "{r:?}");
    let want = "journal: the paths to remove and the old files to keep take 258 KiB, and the journal's disk has ";
    let tail = " KiB free: nothing was removed or changed; free space under /var/lib/deploy first";
    assert!(r.stdout.contains(want) && r.stdout.contains(tail), "{r:?}");
    assert_eq!(lab.sh("lab1", "cat /etc/motd"), motd, "motd changed");
    assert_eq!(lab.sh("lab1", "wc -c < /etc/old.bin").trim(), "262144");
}

// -v names each command run on a host with its duration; -q leaves only
// errors and the summary.
#[test]
fn verbose_shows_each_remote_command_and_quiet_only_the_summary() {
    let lab = Lab::up(1);
    let v = lab.deploy(&["lab", "--check", "-v"]);
    assert_eq!(v.code, 2, "{v:?}");
    let ran: Vec<&str> = v.stderr.lines().filter(|l| l.starts_with("lab1: ran ")).collect();
    assert_eq!(ran.len(), 1, "{v:?}");
    assert!(ran[0].starts_with("lab1: ran deploy-probe in ") && ran[0].ends_with(" ms (exit 0)"), "{v:?}");
    let q = lab.deploy(&["lab", "--check", "-q"]);
    assert_eq!((q.code, q.stdout.as_str(), q.stderr.as_str()), (2, "", ""), "{q:?}");
    let q = lab.deploy(&["lab", "--yes", "-q"]);
    assert_eq!(q.code, 0, "{q:?}");
    assert!(q.stdout.starts_with("\nSummary:\n  lab1  ok      "), "{q:?}");
    assert_eq!(q.stderr, "", "{q:?}");
}

// A big source file (over 1 MiB) is read once by a first deploy: the upload
// takes its sum as it streams and keeps it, so the no-op after it reads
// nothing. It is hashed before the upload only when the host has a file
// there to compare with.
#[test]
fn a_big_source_is_read_once_by_a_first_deploy() {
    let lab = Lab::up(1);
    let big = |seed: u8| -> Vec<u8> { (0..3u32 << 20).map(|i| (i % 251) as u8 ^ seed).collect() };
    let src = lab.root.join("roles/common/files/big.bin");
    std::fs::write(&src, big(0)).unwrap();
    let t = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    lab.write_file("roles/common/role.yml", &t.replace("absent:", "  - dest: /srv/big.bin\n    src: big.bin\nabsent:"));
    let host_sum = || lab.sh("lab1", "sha256sum /srv/big.bin | cut -d' ' -f1").trim().to_string();
    let local_sum = || {
        let o = std::process::Command::new("sha256sum").arg(&src).output().unwrap();
        String::from_utf8_lossy(&o.stdout)[..64].to_string()
    };
    let r = lab.deploy(&["lab", "--yes", "-v"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("hashed "), "hashed before the upload: {r:?}");
    let sum = host_sum();
    assert_eq!(sum, local_sum());
    let cache = std::fs::read_to_string(lab.root.join(".lab/cache/deploy/sums")).unwrap();
    assert!(cache.starts_with(&sum) && cache.trim_end().ends_with("files/big.bin"), "{cache}");
    let r = lab.deploy(&["lab", "--check", "-v"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("hashed "), "{r:?}");
    // without its sum kept, the host's sum is compared with one taken now
    std::fs::remove_file(lab.root.join(".lab/cache/deploy/sums")).unwrap();
    let r = lab.deploy(&["lab", "--check", "-v"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr.lines().filter(|l| l.starts_with("hashed ")).count(), 1, "{r:?}");
    // new bytes, same size: the host has a file, so the plan hashes the source
    std::fs::write(&src, big(1)).unwrap();
    let r = lab.deploy(&["lab", "--yes", "-v"]);
    assert_eq!(r.code, 0, "{r:?}");
    let hashed: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("hashed ")).collect();
    assert_eq!(hashed.len(), 1, "{r:?}");
    assert!(hashed[0].contains("roles/common/files/big.bin (3.0 MiB) in "), "{r:?}");
    assert_eq!(host_sum(), local_sum());
}

// Links (Ansible's file: state=link): made, in sync after, pointed again
// when the role says so (shown in the plan with both targets), and a path
// that is a file on the host is a conflict, never replaced.
#[test]
fn links_are_made_kept_and_repointed() {
    let lab = Lab::up(1);
    let t = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    let with = |target: &str| {
        let links = format!("links:\n  - path: /etc/motd-current\n    target: {target}\n  - path: /opt/stack/env-link\n    target: env\nabsent:");
        lab.write_file("roles/common/role.yml", &t.replace("absent:", &links));
    };
    with("/etc/motd");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.sh("lab1", "readlink /etc/motd-current; readlink /opt/stack/env-link"), "/etc/motd\nenv\n");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 0, "in sync after: {c:?}");
    with("/etc/hostname");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(
        c.stdout.contains("  ~ /etc/motd-current (link)  update  [target /etc/motd -> /etc/hostname]  role common\n"),
        "{c:?}"
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.sh("lab1", "readlink /etc/motd-current"), "/etc/hostname\n");
    lab.sh("lab1", "rm /etc/motd-current && echo mine > /etc/motd-current");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_ne!(r.code, 0, "{r:?}");
    let want = "/etc/motd-current is a file on the host but declared as a link by role `common`; remove it by hand or change the role";
    assert!(r.stdout.contains(want) || r.stderr.contains(want), "{r:?}");
    assert_eq!(lab.sh("lab1", "cat /etc/motd-current"), "mine\n");
}

// A file whose directory the host lacks and no `dirs:` entry makes is
// refused by the plan, with what to add, and nothing changes; with the
// entry, the directory (and its missing parent) is made first.
#[test]
fn a_file_needs_its_directory_and_the_plan_says_so() {
    let lab = Lab::up(1);
    let t = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    let file = "files:\n  - dest: /srv/fresh/deep/x.conf\n    template: motd.j2\n";
    lab.write_file("roles/common/role.yml", &t.replacen("files:\n", file, 1));
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    let want = "/srv/fresh/deep/x.conf: its directory /srv/fresh/deep is not on the host, and nothing in this deploy makes it first; add `- path: /srv/fresh/deep` (with its owner and mode) to `dirs:` of role `common`";
    assert!(r.stdout.contains(want) || r.stderr.contains(want), "{r:?}");
    // nothing changed: not the role's other paths either, and no lock is left
    let absent = lab.sh("lab1", "for p in /srv/fresh /opt/stack /var/lib/deploy/lock; do [ -e $p ] || echo $p; done");
    assert_eq!(absent, "/srv/fresh\n/opt/stack\n/var/lib/deploy/lock\n");
    let dirs = "dirs:\n  - path: /srv/fresh/deep\n    mode: \"0750\"\n";
    lab.write_file("roles/common/role.yml", &t.replacen("files:\n", file, 1).replacen("dirs:\n", dirs, 1));
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        lab.sh("lab1", "stat -c '%n %a' /srv/fresh /srv/fresh/deep /srv/fresh/deep/x.conf"),
        "/srv/fresh 755\n/srv/fresh/deep 750\n/srv/fresh/deep/x.conf 644\n"
    );
}

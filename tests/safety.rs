//! Safety promises under a careless controller and odd hosts (issue #9):
//! one host's failure is its own, a signal stops the run cleanly, a revert
//! never claims more than it did. All on the lab, over real SSH.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Run a command in a lab host's mount namespace (the namespace its sshd
/// and every session share), as root on this machine.
fn in_host_ns(lab: &Lab, host: &str, script: &str) {
    let pid = std::fs::read_to_string(lab.root.join(format!(".lab/hosts/{host}/sshd.pid"))).unwrap();
    let st = Command::new("nsenter").args(["-t", pid.trim(), "-m", "sh", "-c", script]).status().unwrap();
    assert!(st.success(), "nsenter {host}: {script}");
}

fn unlocked(lab: &Lab, host: &str) -> bool {
    lab.ssh(host, "test -e /var/lib/deploy/lock").code != 0
}

// A host whose `stat` prints garbage fails with a message naming the line;
// the other host is applied and both locks are free afterwards.
#[test]
fn a_host_whose_stat_prints_garbage_fails_alone() {
    let lab = Lab::up(2);
    let wrapper = lab.root.join("garbage-stat");
    std::fs::write(&wrapper, "#!/bin/sh\nprintf 'P\\tgarbage from a broken stat\\n'\n").unwrap();
    Command::new("chmod").arg("755").arg(&wrapper).status().unwrap();
    in_host_ns(&lab, "lab2", &format!("mount --bind {} /usr/bin/stat", wrapper.display()));
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 3, "some hosts applied, some failed: {r:?}");
    assert!(r.stdout.contains("unexpected probe line `P\tgarbage from a broken stat`"), "{r:?}");
    let motd = std::fs::read(lab.rendered("lab1").join("etc/motd")).unwrap();
    assert_eq!(lab.read("lab1", "/etc/motd"), Some(motd), "lab1 was not applied");
    assert!(unlocked(&lab, "lab1") && unlocked(&lab, "lab2"), "a lock was left behind");
}

// A panic in one host's apply (forced through a failpoint, after its first
// phase is written and while it holds its lock) is that host's failure: the
// other host finishes, and the panicking host's lock is released with an
// audit line saying `result=error`.
#[test]
fn a_panic_in_one_hosts_apply_is_that_hosts_alone() {
    let lab = Lab::up(2);
    let o = Command::new(bin())
        .current_dir(&lab.root)
        .args(["lab", "--yes"])
        .env("NO_COLOR", "1")
        .env("DEPLOY_FAILPOINT", "panic-apply:lab2")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("lab2") && stdout.contains("internal error while applying (failpoint panic-apply)"),
        "{stdout}"
    );
    assert!(stdout.contains("lab1") && stdout.contains("ok "), "{stdout}");
    assert!(unlocked(&lab, "lab1") && unlocked(&lab, "lab2"), "a lock was left behind");
    let audit = lab.sh("lab2", "cat /var/lib/deploy/audit.log");
    assert!(audit.contains("result=error"), "{audit}");
}

/// The files-only example with a phase-1 health check that says when it
/// started and waits for `/etc/deploy-go`, so a signal lands mid-step.
fn paused_lab() -> LabWithSlot {
    let lab = Lab::up(2);
    let t = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    lab.write_file(
        "roles/common/role.yml",
        &format!(
            "{t}health:\n  - command: \"touch /etc/health-started; while [ ! -e /etc/deploy-go ]; do sleep 0.1; done\"\n    timeout: 60s\n"
        ),
    );
    lab
}

fn interrupted_by(signal: &str) {
    let lab = paused_lab();
    let child = spawn_in(&lab.root, &["lab", "--yes"]);
    wait_until("both hosts to be in their health step", Duration::from_secs(30), || {
        ["lab1", "lab2"].iter().all(|h| lab.ssh(h, "test -e /etc/health-started").code == 0)
    });
    let pid = child.id().to_string();
    assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
    // the step in progress finishes: let the health checks pass
    for h in ["lab1", "lab2"] {
        lab.sh(h, "touch /etc/deploy-go");
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("Interrupted:") && stderr.contains("each host finishes the step it is in"), "{stderr}");
    assert!(stdout.contains("interrupted before this phase"), "{stdout}");
    for h in ["lab1", "lab2"] {
        assert!(unlocked(&lab, h), "{h}: lock left behind");
        let audit = lab.sh(h, "cat /var/lib/deploy/audit.log");
        assert!(audit.contains("result=interrupted"), "{h}: {audit}");
        // phase base finished, phase app never started
        assert!(lab.ssh(h, "test -e /etc/deploy-admins").code == 0, "{h}: the first phase was not finished");
        assert!(lab.ssh(h, "test -e /opt/stack/app.conf").code != 0, "{h}: a phase started after the signal");
    }
    let again = lab.deploy(&["lab", "--yes"]);
    assert_eq!(again.code, 0, "the next deploy needed an unlock: {again:?}");
}

#[test]
fn sigint_mid_step_finishes_the_step_releases_the_locks_and_exits_130() {
    interrupted_by("INT");
}

#[test]
fn sighup_mid_step_finishes_the_step_releases_the_locks_and_exits_130() {
    interrupted_by("HUP");
}

// A revert that cannot put a file back (a read-only mount over it, made by
// the failing health check itself) says REVERT INCOMPLETE, names the path,
// and never claims to have restored it.
#[test]
fn a_revert_that_cannot_restore_a_read_only_file_says_so() {
    let lab = Lab::up(1);
    let motd = lab.sh("lab1", "cat /etc/motd");
    let t = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    lab.write_file(
        "roles/common/role.yml",
        &format!(
            "{t}health:\n  - command: \"[ -e /etc/.ro ] || {{ mount --bind /etc/motd /etc/motd && mount -o remount,ro,bind /etc/motd && touch /etc/.ro; }}; false\"\n    timeout: 2s\n"
        ),
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("health gate failed"), "{r:?}");
    assert!(r.stdout.contains("REVERT INCOMPLETE: 1 of the"), "{r:?}");
    assert!(r.stdout.contains("not restored: /etc/motd: cannot put the old file back"), "{r:?}");
    assert!(!r.stdout.contains("restored the"), "claims a complete restore: {r:?}");
    assert_ne!(lab.sh("lab1", "cat /etc/motd"), motd, "the test's read-only mount did not hold");
    let audit = lab.sh("lab1", "cat /var/lib/deploy/audit.log");
    assert!(audit.contains("REVERT-INCOMPLETE") && audit.contains("paths_not_restored=1"), "{audit}");
}

/// The lab host's /var/lib/deploy as this machine sees it (no SSH needed,
/// so it can be watched closely and read while the host is cut off).
fn journal_dirs(lab: &Lab, host: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(lab.state_dir(host).join("journal")).into_iter().flatten().flatten() {
        for p in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            if p.file_name().to_string_lossy().starts_with('p') {
                out.push(p.path());
            }
        }
    }
    out
}

/// Bytes of the files under `p`, at any depth (the upload unpacks into
/// new/c/K/NAME). `new/c/K` may be a link to the staging directory beside
/// a target on another mount, where its files arrive: a path on `host`,
/// followed into that host's root on this machine.
fn bytes_under(lab: &Lab, host: &str, p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let mut path = e.path();
        if let Ok(t) = std::fs::read_link(&path) {
            path = lab.root.join(format!(".lab/hosts/{host}/root")).join(t.strip_prefix("/").unwrap_or(&t));
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => n += bytes_under(lab, host, &path),
            Ok(m) => n += m.len(),
            Err(_) => {}
        }
    }
    n
}

/// Add `n` files of `mb` MiB each to role common (phase base), each with
/// its own content.
fn big_files(lab: &Lab, n: usize, mb: usize) -> Vec<String> {
    let mut spec = String::new();
    let mut paths = Vec::new();
    for i in 0..n {
        let name = format!("big{i}.bin");
        let mut data = vec![b'a' + (i % 26) as u8; mb << 20];
        data[0] = b'0' + (i % 10) as u8;
        std::fs::write(lab.root.join("roles/common/files").join(&name), data).unwrap();
        spec.push_str(&format!("  - dest: /srv/{name}\n    src: {name}\n"));
        paths.push(format!("/srv/{name}"));
    }
    let t = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    lab.write_file("roles/common/role.yml", &t.replace("absent:", &format!("{spec}absent:")));
    paths
}

fn kill9(child: &std::process::Child) {
    assert!(Command::new("kill").args(["-KILL", &child.id().to_string()]).status().unwrap().success());
}

// A controller SIGKILLed during the upload changes nothing (the host drops
// the upload and releases its lock); one SIGKILLed during the swap leaves a
// host that finished the swap (all new, never half), and the next run says
// what happened there.
#[test]
fn a_killed_controller_leaves_every_file_all_old_or_all_new() {
    let lab = Lab::up(1);
    let paths = big_files(&lab, 20, 10);
    let present = |lab: &Lab| paths.iter().filter(|p| lab.ssh("lab1", &format!("test -e {p}")).code == 0).count();

    // 1. killed mid-upload
    let mut child = spawn_in(&lab.root, &["lab", "--yes"]);
    wait_until("the upload to be under way", Duration::from_secs(60), || {
        journal_dirs(&lab, "lab1").iter().any(|j| bytes_under(&lab, "lab1", &j.join("new")) > 1 << 20)
    });
    kill9(&child);
    let _ = child.wait();
    wait_until("the host to drop the cut-off upload and release its lock", Duration::from_secs(30), || {
        !lab.state_dir("lab1").join("lock").exists() && journal_dirs(&lab, "lab1").is_empty()
    });
    assert_eq!(present(&lab), 0, "files of a cut-off upload were written");
    let audit = std::fs::read_to_string(lab.state_dir("lab1").join("audit.log")).unwrap_or_default();
    assert!(audit.contains("ABORTED") && audit.contains("reason=upload"), "{audit}");

    // 2. killed mid-swap: the files are there in an old version, which the
    // journal keeps by a copy (/srv and the journal are different mounts),
    // so the swap lasts long enough to be caught in it (renames alone are
    // over before a poll sees them)
    lab.sh("lab1", &format!("for p in {}; do head -c 10485760 /dev/zero >\"$p\"; done", paths.join(" ")));
    let mut child = spawn_in(&lab.root, &["lab", "--yes"]);
    wait_until("the swap to start", Duration::from_secs(60), || {
        journal_dirs(&lab, "lab1")
            .iter()
            .any(|j| std::fs::read_to_string(j.join("state")).is_ok_and(|s| s.starts_with("swapping")))
    });
    kill9(&child);
    let _ = child.wait();
    wait_until("the host to finish the swap on its own", Duration::from_secs(60), || {
        journal_dirs(&lab, "lab1")
            .iter()
            .any(|j| std::fs::read_to_string(j.join("state")).is_ok_and(|s| s.starts_with("done")))
    });
    assert_eq!(present(&lab), paths.len(), "a swap that started did not finish");
    for (i, p) in paths.iter().enumerate() {
        let first = lab.sh("lab1", &format!("head -c 1 {p}"));
        assert_eq!(first, ((b'0' + (i % 10) as u8) as char).to_string(), "{p} is not the new content");
    }
    let c = lab.deploy(&["lab", "--check"]);
    assert!(c.stdout.contains("another deploy holds the lock"), "{c:?}");
    assert!(c.stdout.contains("phase journal p000: all"), "{c:?}");
    assert!(c.stdout.contains("the controller stopped listening there"), "{c:?}");
}

// A network cut mid-upload: the host drops the upload after the stall
// deadline (nothing changed, lock free), and the controller says the
// connection was lost, during which step, and what the host does.
#[test]
fn a_network_cut_mid_upload_leaves_the_host_unchanged_and_unlocked() {
    let lab = Lab::up(1);
    big_files(&lab, 1, 16);
    let motd = lab.sh("lab1", "cat /etc/motd");
    let ns = std::fs::read_to_string(lab.root.join(".lab/hosts/lab1/netns")).unwrap().trim().to_string();
    let netns = |args: &[&str]| {
        let st = Command::new("ip").args(["netns", "exec", &ns]).args(args).status().unwrap();
        assert!(st.success(), "ip netns exec {ns} {args:?}");
    };
    // slow enough that the cut lands mid-upload
    netns(&[
        "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "8mbit", "burst", "32kbit", "latency", "400ms",
    ]);
    let child = Command::new(bin())
        .current_dir(&lab.root)
        .args(["lab", "--yes"])
        .env("NO_COLOR", "1")
        .env("DEPLOY_STALL_SECONDS", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the upload to be under way", Duration::from_secs(60), || {
        journal_dirs(&lab, "lab1").iter().any(|j| bytes_under(&lab, "lab1", &j.join("new")) > 512 << 10)
    });
    netns(&["nft", "add table inet cut; add chain inet cut in { type filter hook input priority -300; policy drop; }; add chain inet cut out { type filter hook output priority -300; policy drop; }"]);
    wait_until("the host to drop the stalled upload and release its lock", Duration::from_secs(40), || {
        !lab.state_dir("lab1").join("lock").exists() && journal_dirs(&lab, "lab1").is_empty()
    });
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("the connection was lost while"), "{stdout}");
    assert!(stdout.contains("during phase base's upload and swap"), "{stdout}");
    assert!(stdout.contains("an upload that brings no data for 5s is dropped and the lock released"), "{stdout}");
    netns(&["nft", "delete table inet cut"]);
    netns(&["tc", "qdisc", "del", "dev", "eth0", "root"]);
    assert_eq!(lab.sh("lab1", "cat /etc/motd"), motd, "a file changed");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(!c.stdout.contains("holds the lock"), "{c:?}");
    let audit = lab.sh("lab1", "cat /var/lib/deploy/audit.log");
    assert!(audit.contains("ABORTED") && audit.contains("no data arrived for 5s"), "{audit}");
}

// --check names a lock held by a deploy that is gone.
#[test]
fn check_names_a_held_lock() {
    let lab = Lab::up(1);
    lab.sh("lab1", "mkdir -p /var/lib/deploy/lock && echo 'ci@elsewhere pid=1 deploy=20260101T000000-abcd' > /var/lib/deploy/lock/holder");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(
        c.stdout.contains("another deploy holds the lock: ci@elsewhere pid=1 deploy=20260101T000000-abcd; a deploy now would be refused"),
        "{c:?}"
    );
}

// Hosts installed in German and in French (LANG from /etc/default/locale
// through PAM, as Debian does): deploy, then --check finds them in sync.
#[test]
fn german_and_french_hosts_deploy_and_check_in_sync() {
    let lab = Lab::up_locales(2, &[("lab1", "de_DE.UTF-8"), ("lab2", "fr_FR.UTF-8")]);
    // positive control: their sessions really speak those languages
    assert_eq!(lab.sh("lab1", "stat --printf %F /etc/hostname"), "reguläre Datei");
    assert_eq!(lab.sh("lab2", "stat --printf %F /etc/hostname"), "fichier");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(c.stdout.contains("in sync"), "{c:?}");
}

// Eleven phases under one dead-man switch, the controller killed before it
// confirms: the host reverts phase 10 before phase 2 (by number, not text),
// so the directory phase 2 made goes once phase 10's file in it is gone.
#[test]
fn eleven_phases_killed_before_the_confirmation_revert_in_order() {
    let lab = Lab::up(1);
    let mut d = String::from("project: eleven\nage_identity: inventory/lab.identity\nphases:\n");
    for p in 0..11 {
        let deadman = if p == 0 { "    deadman: 15s\n" } else { "" };
        d.push_str(&format!("  - name: p{p}\n    roles: [r{p}]\n{deadman}"));
        let mut role = format!("files:\n  - dest: /etc/phase-{p}.conf\n    content: \"phase {p}\\n\"\n");
        if p == 2 {
            role.push_str("dirs:\n  - path: /opt/eleven\n");
        }
        if p == 10 {
            role.push_str("  - dest: /opt/eleven/f\n    content: \"inside\\n\"\n");
            role.push_str(
                "health:\n  - command: \"while [ ! -e /etc/deploy-go ]; do sleep 0.1; done\"\n    timeout: 60s\n",
            );
        }
        lab.write_file(&format!("roles/r{p}/role.yml"), &role);
    }
    lab.write_file("deploy.yml", &d);
    let mut deploy = spawn_in(&lab.root, &["lab", "--yes"]);
    wait_until("phase 10 to wait in its health check", Duration::from_secs(60), || {
        lab.ssh("lab1", "pgrep -f 'while \\[ ! -e /etc/deploy-g[o]' >/dev/null").code == 0
    });
    assert_eq!(lab.sh("lab1", "cat /opt/eleven/f"), "inside\n");
    deploy.kill().unwrap();
    let _ = deploy.wait();
    lab.sh("lab1", "touch /etc/deploy-go");
    wait_until("the host to revert by itself", Duration::from_secs(40), || {
        lab.ssh("lab1", "cat /var/lib/deploy/audit.log").stdout.contains(" REVERTED deploy=")
    });
    assert!(lab.ssh("lab1", "test -e /opt/eleven").code != 0, "phase 2's directory is left behind");
    for p in 0..11 {
        assert!(lab.ssh("lab1", &format!("test -e /etc/phase-{p}.conf")).code != 0, "phase {p}'s file is left");
    }
    assert!(!lab.sh("lab1", "cat /var/lib/deploy/audit.log").contains("REVERT-INCOMPLETE"));
}

// A second Ctrl-C abandons at once and names the hosts that keep a lock.
#[test]
fn a_second_sigint_abandons_and_names_the_locked_hosts() {
    let lab = paused_lab();
    let child = spawn_in(&lab.root, &["lab", "--yes"]);
    wait_until("both hosts to be in their health step", Duration::from_secs(30), || {
        ["lab1", "lab2"].iter().all(|h| lab.ssh(h, "test -e /etc/health-started").code == 0)
    });
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("Abandoned at once."), "{stderr}");
    for h in ["lab1", "lab2"] {
        assert!(
            stderr.contains(&format!("{h}: keeps this deploy's lock; release it with `deploy unlock lab --host {h}`")),
            "{stderr}"
        );
        assert!(!unlocked(&lab, h), "{h}: abandoned, yet the lock is gone");
    }
    for h in ["lab1", "lab2"] {
        lab.sh(h, "touch /etc/deploy-go");
    }
}

/// role `common` with `absent:` replaced by `entries`.
fn with_absent(lab: &Lab, entries: &str) {
    let t = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    let cut = t.find("absent:").unwrap();
    lab.write_file("roles/common/role.yml", &format!("{}absent:\n{entries}", &t[..cut]));
}

// A tree to remove shows what it holds, and `force: true` is required and
// shown for a top-level one; a tree the journal has no room for is refused
// with nothing removed.
#[test]
fn removing_a_tree_shows_its_size_and_needs_room_in_the_journal() {
    let lab = Lab::up(1);
    lab.sh("lab1", "mkdir -p /srv/old/a && head -c 300000 /dev/zero > /srv/old/a/blob && echo x > /srv/old/b");
    with_absent(&lab, "  - path: /srv/old\n    force: true\n");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    let line = c.stdout.lines().find(|l| l.contains("/srv/old")).unwrap_or_else(|| panic!("{c:?}"));
    assert!(line.starts_with("  - /srv/old  remove  [a directory present, 4 entries, "), "{line}");
    assert!(line.contains(" bytes, journaled before removal, force: true]"), "{line}");
    // a journal disk with no room for it
    lab.lab_cmd(&["tmpfs", "lab1", "/var/lib/deploy", "128k"]);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("journal: the paths to remove and the old files to keep take ")
            && r.stdout.contains(" KiB, and the journal's disk has "),
        "{r:?}"
    );
    assert!(r.stdout.contains("nothing was removed or changed"), "{r:?}");
    assert_eq!(lab.sh("lab1", "wc -c < /srv/old/a/blob"), "300000\n", "the tree was touched");
}

// `deploy status` reads every host at once; one unreachable host is named
// and the others are read; --limit and --output json.
#[test]
fn status_of_every_host_at_once() {
    let lab = Lab::up(2);
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    lab.lab_cmd(&["kill-sshd", "lab2"]);
    let r = lab.deploy(&["status", "lab"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.starts_with("lab1:\n  not locked\n  journals: 1 deploys, "), "{r:?}");
    assert!(r.stdout.contains("\nlab2: host lab2: connection refused"), "{r:?}");
    let j = lab.deploy(&["status", "lab", "--limit", "lab1", "--output", "json"]);
    assert_eq!(j.code, 0, "{j:?}");
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["hosts"][0]["host"], "lab1");
    assert!(v["hosts"][0]["lock"].is_null() && v["hosts"].as_array().unwrap().len() == 1, "{v}");
    assert!(v["hosts"][0]["recent"][0].as_str().unwrap().contains("result=ok"), "{v}");
}

// keep_journals: after each successful deploy the host keeps the newest N
// deploys' journals, and `deploy status` says how many and how large.
#[test]
fn journals_are_pruned_to_keep_journals() {
    let lab = Lab::up(1);
    lab.write_file("deploy.yml", &format!("{FILES_ONLY}keep_journals: 2\n"));
    for i in 0..4 {
        let r = lab.deploy(&["lab", "--yes", "-e", &format!("app_workers={}", i + 10)]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let n = std::fs::read_dir(lab.state_dir("lab1").join("journal")).unwrap().count();
    assert_eq!(n, 2, "journals kept");
    let st = lab.deploy(&["status", "lab"]);
    assert!(st.stdout.contains("  journals: 2 deploys, "), "{st:?}");
}

// Incident 9: a render that comes out empty, or nearly, must not quietly
// replace a good file. The plan marks it (text and JSON), `--yes` refuses
// it with nothing changed, and `may_empty: true` or `--allow-shrink` lets
// it through. A secret file is measured too, without its contents leaving
// the host.
#[test]
fn a_file_about_to_be_emptied_is_marked_and_refused_under_yes() {
    let lab = Lab::up(1);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let motd = lab.read("lab1", "/etc/motd").unwrap();
    let env = lab.read("lab1", "/opt/stack/env/app.env").unwrap();
    assert!(env.len() > 40, "{}", env.len());
    lab.write_file("roles/common/templates/motd.j2", "{{ '' }}");
    lab.write_file("roles/app/templates/app.env.j2", "X=1\n");

    let check = lab.deploy(&["lab", "--check"]);
    assert_eq!(check.code, 2, "{check:?}");
    assert!(check.stdout.contains("/etc/motd  update  [content]  EMPTIES  role common"), "{check:?}");
    let shrinks = format!("/opt/stack/env/app.env  update  [content]  shrinks {} B -> 4 B  role app", env.len());
    assert!(check.stdout.contains(&shrinks), "{check:?}");
    let json = lab.deploy(&["lab", "--check", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let changes = v["hosts"][0]["plan"]["changes"].as_array().unwrap();
    let of = |p: &str| changes.iter().find(|c| c["path"] == p).unwrap()["shrink"].clone();
    assert_eq!(of("/etc/motd"), serde_json::json!({"from": motd.len(), "to": 0, "allowed": false}));
    assert_eq!(of("/opt/stack/env/app.env"), serde_json::json!({"from": env.len(), "to": 4, "allowed": false}));
    assert!(!json.stdout.contains("API_TOKEN"), "{}", json.stdout);

    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    let want = format!("host lab1: refused, nothing changed: this deploy empties or shrinks by more than 90%: /etc/motd (EMPTIES, role common), /opt/stack/env/app.env (shrinks {} B -> 4 B, role app); if that is meant, say `may_empty: true` on the file in its role.yml, or pass --allow-shrink", env.len());
    assert!(r.stderr.contains(&want) || r.stdout.contains(&want), "{r:?}");
    assert_eq!(lab.read("lab1", "/etc/motd").unwrap(), motd);
    assert_eq!(lab.read("lab1", "/opt/stack/env/app.env").unwrap(), env);
    assert!(unlocked(&lab, "lab1"));

    // the file that may be empty says so; the other needs --allow-shrink
    let spec = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    let allowed = spec.replacen("    template: motd.j2\n", "    template: motd.j2\n    may_empty: true\n", 1);
    lab.write_file("roles/common/role.yml", &allowed);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(!said.contains("/etc/motd (EMPTIES") && said.contains("/opt/stack/env/app.env (shrinks"), "{r:?}");
    let r = lab.deploy(&["lab", "--yes", "--allow-shrink"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.read("lab1", "/etc/motd").unwrap(), b"");
    assert_eq!(lab.read("lab1", "/opt/stack/env/app.env").unwrap(), b"X=1\n");
}

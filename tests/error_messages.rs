//! The exact text of the main messages, byte for byte (in the style of
//! casey/just's tests/error_messages.rs): a change to any of them shows up
//! here, in review.

use crate::common::*;

/// stderr of `deploy ARGS` in a copy of the example, no lab needed.
fn stderr_of(args: &[&str]) -> (i32, String) {
    let (root, _slot) = project();
    let r = deploy_in(&root, args);
    (r.code, r.stderr)
}

#[test]
fn unknown_environment() {
    assert_eq!(
        stderr_of(&["nosuch", "--check"]),
        (1, "error: environment `nosuch` is not a group in inventory/hosts.yml; groups: lab, prod\n".into())
    );
}

#[test]
fn unknown_role() {
    assert_eq!(
        stderr_of(&["lab", "--role", "nosuch", "--check"]),
        (
            1,
            "error: role `nosuch` is not in any phase of deploy.yml; roles: common, infra, proxy, apps, openclaw, app, firewall, hardening\n"
                .into()
        )
    );
}

#[test]
fn unknown_host_in_limit() {
    assert_eq!(
        stderr_of(&["lab", "--limit", "lab9", "--check"]),
        (1, "error: --limit lab9: no such host in `lab` (hosts: lab1, lab2, lab3)\n".into())
    );
}

#[test]
fn malformed_extra_var() {
    assert_eq!(stderr_of(&["lab", "-e", "novalue", "--check"]), (1, "error: -e novalue: expected KEY=VALUE\n".into()));
}

#[test]
fn no_deploy_yml() {
    let dir = std::env::temp_dir().join(format!("deploy-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let r = deploy_in(&dir, &["lab", "--check"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        (r.code, r.stderr),
        (
            1,
            "error: deploy.yml: not found\n  hint: run deploy from the root of a deploy repository (the directory holding deploy.yml), or pass --root DIR\n"
                .into()
        )
    );
}

#[test]
fn lock_held_unreachable_and_changed_key() {
    let lab = Lab::up(3);
    lab.sh("lab1", "mkdir -p /var/lib/deploy/lock && echo 'ci@elsewhere pid=1 deploy=D' > /var/lib/deploy/lock/holder");
    lab.lab_cmd(&["rekey", "lab2"]);
    lab.lab_cmd(&["kill-sshd", "lab3"]);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    let want = "\
lab1 FAILED
  host lab1: another deploy holds the lock: ci@elsewhere pid=1 deploy=D
    hint: wait for it to finish; if that deploy is gone (killed CI job, closed laptop), release the lock with `deploy unlock lab --host lab1`
lab2 FAILED
  host lab2: the host key has CHANGED since it was recorded in known_hosts; refusing to connect. If the host was reinstalled, verify the new key fingerprint out of band (provider console) and then remove the old entry with `ssh-keygen -R HOST`; otherwise this may be an attack
lab3 FAILED
  host lab3: connection refused: nothing listens on the SSH port (sshd down, wrong ansible_port, or a firewall rejecting) (after 3 attempts)
";
    assert!(r.stdout.starts_with(want), "{r:?}");
}

#[test]
fn failed_validation() {
    let lab = Lab::up(1);
    lab.write_file("roles/app/role.yml", "files:\n  - dest: /opt/stack/app.conf\n    content: \"no listen line\\n\"\n    validate: \"grep -q '^listen = ' %s\"\n");
    let r = lab.deploy(&["lab", "--role", "app", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    let want = "
Summary:
  lab1  FAILED  phase app: validation failed; nothing of this phase was changed
    validation of /opt/stack/app.conf failed (exit 1); the file on the host was not replaced:
    later phases did not run
";
    assert!(r.stdout.ends_with(want), "{r:?}");
}

// A mistyped flag is a usage error (64), never 2, which --check uses for
// "changes pending": a CI job must not read a typo as drift.
#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let (code, err) = stderr_of(&["lab", "--chek"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.starts_with("error: unexpected argument '--chek' found"), "{err}");
    let (root, _slot) = project();
    let help = deploy_in(&root, &["--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    assert!(help.stdout.contains("64 the command line does not parse"), "{help:?}");
}

/// The example's role `common` with `absent:` replaced by `entries`.
fn with_absent(root: &std::path::Path, entries: &str) {
    let p = root.join("roles/common/role.yml");
    let t = std::fs::read_to_string(&p).unwrap();
    let cut = t.find("absent:").unwrap();
    std::fs::write(&p, format!("{}absent:\n{entries}", &t[..cut])).unwrap();
}

// Paths that would destroy a host are refused after rendering, before any
// host is contacted, naming host, file and the path as written.
#[test]
fn destructive_removals_are_refused() {
    let cases = [
        (
            "  - \"/{{ legacy_dir }}\"\n",
            "error: host lab1: roles/common/role.yml: absent `/{{ legacy_dir }}` (rendered: `/`) is the root directory: deploy never removes /; is a variable in it empty?\n",
        ),
        (
            "  - /etc\n",
            "error: host lab1: roles/common/role.yml: absent `/etc` is a top-level directory: removing it takes the whole tree with it; if that is meant, write it as `- path: /etc` with `force: true`\n",
        ),
        (
            "  - path: /var/lib\n    force: true\n",
            "error: host lab1: roles/common/role.yml: absent `/var/lib` is or holds deploy's own state (/var/lib/deploy: the lock, the journals a revert needs, the audit log); deploy never removes it\n",
        ),
    ];
    for (entries, want) in cases {
        let (root, _slot) = project();
        with_absent(&root, entries);
        let r = deploy_in(&root, &["lab", "--check", "-e", "legacy_dir="]);
        assert_eq!((r.code, r.stderr.as_str()), (1, want), "{entries}");
    }
    // removing a directory that holds a path the same deploy writes
    let (root, _slot) = project();
    std::fs::write(
        root.join("roles/common/role.yml"),
        "files:\n  - dest: /opt/stack/VERSION\n    src: VERSION\n    mode: \"0644\"\nabsent:\n  - /opt/stack\n",
    )
    .unwrap();
    let r = deploy_in(&root, &["lab", "--check"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "error: host lab1: roles/common/role.yml: absent `/opt/stack` holds /opt/stack/proxy, which role `proxy` manages in the same deploy: removing it would take that along; remove the narrower paths instead\n"
        )
    );
}

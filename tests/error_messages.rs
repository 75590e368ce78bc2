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
        (1, "error: environment `nosuch` is not a group in inventory/hosts.yml; groups: lab, lab_docker, lab_systemd, prod\n".into())
    );
}

#[test]
fn unknown_role() {
    assert_eq!(
        stderr_of(&["lab", "--role", "nosuch", "--check"]),
        (
            1,
            "error: role `nosuch` is not in any phase of deploy.yml; roles: common, system, infra, proxy, apps, openclaw, app, firewall, hardening\n"
                .into()
        )
    );
}

#[test]
fn unknown_host_in_limit() {
    assert_eq!(
        stderr_of(&["lab", "--limit", "lab9", "--check"]),
        (1, "error: --limit lab9: no such host in `lab` (hosts: lab1, lab2, lab3, sys1, sys2)\n".into())
    );
}

#[test]
fn malformed_extra_var() {
    assert_eq!(
        stderr_of(&["lab", "-e", "novalue", "--check"]),
        (1, "error: -e novalue: expected KEY=VALUE, @FILE or a JSON object\n".into())
    );
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
    // (a directory a fresh host has: only this role is deployed)
    lab.write_file("roles/app/role.yml", "files:\n  - dest: /etc/app.conf\n    content: \"no listen line\\n\"\n    validate: \"grep -q '^listen = ' %s\"\n");
    let r = lab.deploy(&["lab", "--role", "app", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    let want = "
Summary:
  lab1  FAILED  phase app: validation failed; nothing of this phase was changed
    validation of /etc/app.conf failed (exit 1); the file on the host was not replaced:
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

/// stdout and stderr of `deploy ARGS` run in `dir` of a copy of the
/// example, with `env` set.
fn in_copy(dir: &str, args: &[&str], env: &[(&str, &str)], deploy_yml_extra: &str) -> Run {
    let (root, _slot) = project();
    if !deploy_yml_extra.is_empty() {
        let d = std::fs::read_to_string(root.join("deploy.yml")).unwrap();
        std::fs::write(root.join("deploy.yml"), format!("{d}{deploy_yml_extra}")).unwrap();
    }
    let mut c = std::process::Command::new(bin());
    c.current_dir(root.join(dir)).args(args).env("NO_COLOR", "1").env_remove("DEPLOY_ENV");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.stdin(std::process::Stdio::null()).output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

// `deploy --role openclaw` as users type it: the environment from
// DEPLOY_ENV or deploy.yml's default_env, and a list of them when neither
// names one. A `--limit` that matches nothing shows which one was taken.
#[test]
fn the_environment_can_be_left_out() {
    let r = in_copy(".", &["--check"], &[], "");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "error: no environment given, and neither DEPLOY_ENV nor `default_env` in deploy.yml names one; environments: lab, lab_docker, lab_systemd, prod\n  hint: name one (`deploy lab`), export DEPLOY_ENV=lab, or add `default_env: lab` to deploy.yml\n"
        )
    );
    let want = "error: --limit nosuch: no such host in `lab` (hosts: lab1, lab2, lab3, sys1, sys2)\n";
    let r = in_copy(".", &["--check", "--limit", "nosuch"], &[("DEPLOY_ENV", "lab")], "");
    assert_eq!((r.code, r.stderr.as_str()), (1, want));
    let r = in_copy(".", &["--check", "--limit", "nosuch"], &[], "default_env: lab\n");
    assert_eq!((r.code, r.stderr.as_str()), (1, want));
    // a toggle without an environment
    let r = in_copy(".", &["vpn-on", "--limit", "nosuch"], &[], "default_env: lab\n");
    assert_eq!((r.code, r.stderr.as_str()), (1, want));
}

// deploy.yml is found from a subdirectory, as git and cargo find theirs;
// --role takes a comma-separated list.
#[test]
fn run_from_a_subdirectory_with_a_role_list() {
    let r = in_copy("roles/app", &["lab", "--check", "--role", "app,nosuch"], &[], "");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "error: role `nosuch` is not in any phase of deploy.yml; roles: common, system, infra, proxy, apps, openclaw, app, firewall, hardening\n"
        )
    );
}

// A deploy_ssh_config that does not exist is bad input, said at once, not a
// network failure retried three times; and the last line of a run where
// every host failed says so.
#[test]
fn a_missing_ssh_config_fails_the_host_at_once() {
    let r = in_copy(".", &["lab", "--yes", "--limit", "lab1"], &[], "");
    assert!(!r.stdout.contains("attempts"), "it was retried: {r:?}");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.starts_with("lab1 FAILED\n  host lab1: deploy_ssh_config "), "{r:?}");
    assert!(r.stdout.contains("/.lab/ssh_config does not exist; nothing was tried\n"), "{r:?}");
    assert!(r.stdout.ends_with("\n1 host failed; nothing was applied.\n"), "{r:?}");
}

// With --output json a failure is a JSON object on stdout too.
#[test]
fn json_errors() {
    let (root, _slot) = project();
    let r = deploy_in(&root, &["nosuch", "--check", "--output", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "usage");
    assert_eq!(
        v["error"]["message"],
        "environment `nosuch` is not a group in inventory/hosts.yml; groups: lab, lab_docker, lab_systemd, prod"
    );
    assert!(v["error"]["host"].is_null());
}

// A secret in an error message (a `dest` rendered from one) is redacted.
#[test]
fn a_secret_in_an_error_is_redacted() {
    let (root, _slot) = project();
    let p = root.join("roles/common/role.yml");
    let t = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, t.replacen("files:\n", "files:\n  - dest: \"{{ vault_api_token }}\"\n    content: x\n", 1))
        .unwrap();
    for args in [vec!["lab", "--check"], vec!["lab", "--check", "--output", "json"]] {
        let r = deploy_in(&root, &args);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(!r.all().contains(POISON), "secret printed: {r:?}");
        assert!(r.stderr.contains("path `<redacted>` must be absolute"), "{r:?}");
    }
}

// `deploy render` writes secret files 0600 with a manifest beside them, and
// refuses a non-empty directory unless --force.
#[test]
fn render_out_is_private_listed_and_never_mixed_with_old_files() {
    use std::os::unix::fs::PermissionsExt;
    let (root, slot) = project();
    let out = slot.path.join("rendered");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("stale"), "x").unwrap();
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is not empty\n  hint: render into an empty directory, or pass --force"), "{r:?}");
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap(), "--force"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!out.join("stale").exists(), "--force did not clear the directory");
    let mode = |p: &str| std::fs::metadata(out.join("lab1").join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("opt/stack/env/app.env"), 0o600, "a secret file is readable by others");
    assert_eq!(mode("etc/motd"), 0o644);
    let manifest = std::fs::read_to_string(out.join("lab1.manifest")).unwrap();
    let motd = std::fs::read(out.join("lab1/etc/motd")).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&motd).iter().map(|b| format!("{b:02x}")).collect();
    assert!(manifest.contains(&format!("/etc/motd\tfile\t0644\t-:-\t{sha}\n")), "{manifest}");
    assert!(manifest.contains("/srv/app/data\tdir\t0750\t1000:1000\t-\n"), "{manifest}");
}

// --version names the commit the binary was built from.
#[test]
fn version_names_the_commit() {
    let (root, _slot) = project();
    let r = deploy_in(&root, &["--version"]);
    assert_eq!(r.code, 0, "{r:?}");
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(r.stdout.starts_with(&format!("deploy {} (commit {head}", env!("CARGO_PKG_VERSION"))), "{r:?}");
}

// `feature_off: no` in group_vars means false, as in Ansible (YAML 1.1),
// with a note that the file relies on it; a quoted "no" stays a string, and
// so does `no` inside a block scalar.
#[test]
fn yaml11_booleans_mean_what_they_meant_in_ansible() {
    let (root, slot) = project();
    std::fs::write(
        root.join("inventory/host_vars/lab1.yml"),
        "flag_a: no\nflag_b: \"no\"\nflag_c: On\ntext: |\n  debug: yes\n",
    )
    .unwrap();
    std::fs::write(
        root.join("roles/common/templates/motd.j2"),
        "{{ flag_a }} {{ flag_b }} {{ flag_c }} {{ 'on' if flag_a else 'off' }}\n{{ text }}",
    )
    .unwrap();
    let out = slot.path.join("out");
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read_to_string(out.join("lab1/etc/motd")).unwrap(), "False no True off\ndebug: yes\n");
    assert!(
        r.stderr.contains("inventory/host_vars/lab1.yml:1: key `flag_a`: unquoted `no` is read as the boolean false, as Ansible (YAML 1.1) reads it"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("debug"), "a block scalar was read as YAML: {r:?}");
}

fn secrets_edit(root: &std::path::Path, tmp: &std::path::Path, editor: &str) -> std::process::Command {
    let mut c = std::process::Command::new(bin());
    c.current_dir(root)
        .args(["secrets", "edit", "inventory/group_vars/lab/secrets.age"])
        .env("EDITOR", editor)
        .env("XDG_RUNTIME_DIR", tmp)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    c
}

// Text that is not valid YAML reopens the editor with the error at the top;
// the same error again gives up with nothing saved.
#[test]
fn secrets_edit_reopens_the_editor_on_invalid_yaml() {
    let (root, slot) = project();
    let tmp = slot.path.join("run");
    std::fs::create_dir_all(&tmp).unwrap();
    // an editor that breaks the YAML, then sees the error and fixes it
    let ed = slot.path.join("ed.sh");
    std::fs::write(
        &ed,
        "#!/bin/sh\nif grep -q '^# deploy secrets edit: not valid YAML' \"$1\"; then printf 'fixed: 1\\n' > \"$1\"; else printf 'broken: [1\\n' > \"$1\"; fi\n",
    )
    .unwrap();
    std::process::Command::new("chmod").arg("755").arg(&ed).status().unwrap();
    let o = secrets_edit(&root, &tmp, ed.to_str().unwrap()).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let v = deploy_in(&root, &["secrets", "view", "inventory/group_vars/lab/secrets.age"]);
    assert_eq!(v.stdout, "fixed: 1\n");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temp file left behind");
    // an editor that never fixes it
    let before = std::fs::read(root.join("inventory/group_vars/lab/secrets.age")).unwrap();
    let o = secrets_edit(&root, &tmp, "sh -c 'printf \"broken: [1\\n\" > \"$1\"' ed").output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not valid YAML"), "{o:?}");
    assert_eq!(std::fs::read(root.join("inventory/group_vars/lab/secrets.age")).unwrap(), before);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temp file left behind");
}

// SIGTERM and SIGHUP during an edit: nothing saved, no plaintext left.
#[test]
fn secrets_edit_cleans_up_on_sigterm_and_sighup() {
    for signal in ["TERM", "HUP", "INT"] {
        let (root, slot) = project();
        let tmp = slot.path.join("run");
        std::fs::create_dir_all(&tmp).unwrap();
        let before = std::fs::read(root.join("inventory/group_vars/lab/secrets.age")).unwrap();
        let child = secrets_edit(&root, &tmp, "sleep 60;")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("the decrypted file to be in the editor", std::time::Duration::from_secs(20), || {
            std::fs::read_dir(&tmp).is_ok_and(|mut d| d.next().is_some())
        });
        std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(130), "{signal}: {o:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("nothing was saved"), "{o:?}");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "{signal}: plaintext left behind");
        assert_eq!(std::fs::read(root.join("inventory/group_vars/lab/secrets.age")).unwrap(), before);
    }
}

// Lab and prod secrets encrypted to different identities: `age_identity`
// as a list serves both; without prod's identity, prod says which it tried.
#[test]
fn identities_per_environment() {
    let (root, slot) = project();
    let key = deploy_in(&root, &["secrets", "keygen", "--out", "inventory/prod.identity"]);
    assert_eq!(key.code, 0, "{key:?}");
    let public = key.stdout.trim().to_string();
    let plain = slot.path.join("prod.yml");
    std::fs::write(&plain, "vault_api_token: prod-token-1234\nvault_db_password: prod-db-5678\n").unwrap();
    let enc = deploy_in(
        &root,
        &[
            "secrets",
            "encrypt",
            plain.to_str().unwrap(),
            "--recipient",
            &public,
            "--out",
            "inventory/group_vars/prod/secrets.age",
        ],
    );
    assert_eq!(enc.code, 0, "{enc:?}");
    let d = std::fs::read_to_string(root.join("deploy.yml")).unwrap();
    let out = |env: &str| slot.path.join(format!("out-{env}"));
    let render = |env: &str| deploy_in(&root, &["render", env, "--out", out(env).to_str().unwrap(), "--force"]);
    let r = render("prod");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cannot be decrypted with the identity ") && r.stderr.contains("lab.identity"), "{r:?}");
    std::fs::write(
        root.join("deploy.yml"),
        d.replace(
            "age_identity: inventory/lab.identity",
            "age_identity: [inventory/lab.identity, inventory/prod.identity]",
        ),
    )
    .unwrap();
    assert_eq!(render("lab").code, 0);
    let r = render("prod");
    assert_eq!(r.code, 0, "{r:?}");
}

// A new teammate: add their key to .age-recipients, rekey, and their
// identity alone reads the secrets.
#[test]
fn rekey_to_a_new_teammate() {
    let (root, _slot) = project();
    let key = deploy_in(&root, &["secrets", "keygen", "--out", "newcomer.identity"]);
    assert_eq!(key.code, 0, "{key:?}");
    // the lab identity's own public key, plus the newcomer's
    let id = std::fs::read_to_string(root.join("inventory/lab.identity")).unwrap();
    let own = id.lines().find_map(|l| l.strip_prefix("# public key: ")).unwrap().to_string();
    std::fs::write(root.join("inventory/group_vars/lab/.age-recipients"), format!("{own}\n{}\n", key.stdout.trim()))
        .unwrap();
    let file = "inventory/group_vars/lab/secrets.age";
    let before = std::fs::read(root.join(file)).unwrap();
    // --all takes prod's file too, which this identity cannot read: nothing
    // is rewritten
    let r = deploy_in(&root, &["secrets", "rekey", "--all"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("inventory/group_vars/prod/secrets.age: cannot be decrypted"), "{r:?}");
    assert_eq!(std::fs::read(root.join(file)).unwrap(), before, "a file was rewritten");
    let r = deploy_in(&root, &["secrets", "rekey", file]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains(&format!("{file}: re-encrypted to 2 recipient(s)")), "{r:?}");
    let view = deploy_in(&root, &["secrets", "view", file, "--identity", "newcomer.identity"]);
    assert!(view.stdout.contains(DB_PASSWORD), "{view:?}");
}

// An error in an included template names its own file and line, the chain
// of includes and the root cause; an include loop says so.
#[test]
fn errors_in_included_templates() {
    let t = |files: &[(&str, &str)]| {
        let (root, slot) = project();
        for (name, text) in files {
            std::fs::write(root.join("roles/common/templates").join(name), text).unwrap();
        }
        let out = slot.path.join("out");
        deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]).stderr
    };
    assert_eq!(
        t(&[("motd.j2", "Hello\n{% include 'part.j2' %}\n"), ("part.j2", "line one\n{{ nosuch_var }}\n")]),
        "error: host lab1: roles/common/templates/part.j2:2: undefined variable `nosuch_var`; define it in group_vars/host_vars or role defaults, or use `| default(...)` (included from motd.j2:2)\n"
    );
    assert_eq!(
        t(&[("motd.j2", "a\n\n\n{% include 'part.j2' %}\n"), ("part.j2", "x {% if %}\n")]),
        "error: host lab1: roles/common/templates/part.j2:1: syntax error: unexpected end of block (in a template included by motd.j2)\n"
    );
    // a macro imported without context sees none of the host's variables
    let macros = ("m.j2", "{% macro greet() %}\nHello {{ inventory_hostname }}\n{% endmacro %}\n");
    assert_eq!(
        t(&[("motd.j2", "{% import 'm.j2' as m %}{{ m.greet() }}\n"), macros]),
        "error: host lab1: roles/common/templates/m.j2:2: undefined variable `inventory_hostname`: motd.j2 imports this template without context, so it sees none of the host's variables; import it `with context`, or pass the value to the macro as an argument\n"
    );
    assert_eq!(t(&[("motd.j2", "{% import 'm.j2' as m with context %}{{ m.greet() }}\n"), macros]), "");
    let e = t(&[("motd.j2", "{% include 'motd.j2' %}\n")]);
    assert!(
        e.starts_with("error: host lab1: roles/common/templates/motd.j2: include recursion: motd.j2 -> motd.j2"),
        "{e}"
    );
}

// Flags belong to the commands that use them: a host flag on a command that
// contacts no host is a usage error.
#[test]
fn flags_are_scoped_to_their_commands() {
    let (code, err) = stderr_of(&["secrets", "keygen", "--out", "x.identity", "--accept-new-host-keys"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.starts_with("error: unexpected argument '--accept-new-host-keys' found"), "{err}");
    let (code, err) = stderr_of(&["secrets", "view", "x.age", "-e", "a=b"]);
    assert_eq!(code, 64, "{err}");
    // and where they belong they work
    let (code, err) = stderr_of(&["status", "lab", "--parallel", "4", "--limit", "nosuch", "-e", "a=b"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: --limit nosuch: no such host in `lab` (hosts: lab1, lab2, lab3, sys1, sys2)\n")
    );
}

// `deploy vars --origin` names the layer each value comes from, for a value
// set at each of the five layers; secrets stay <redacted> unless asked.
#[test]
fn vars_with_their_origin() {
    let (root, _slot) = project();
    let append = |rel: &str, text: &str| {
        let p = root.join(rel);
        let t = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::write(&p, format!("{t}\n{text}")).unwrap();
    };
    append("roles/common/defaults.yml", "t_role: r\nt_all: from-role\n");
    append("inventory/group_vars/all.yml", "t_all: a\nt_group: from-all\n");
    append("inventory/group_vars/lab/main.yml", "t_group: g\nt_host: from-group\n");
    append("inventory/host_vars/lab1.yml", "t_host: h\nt_extra: from-host\n");
    let r = deploy_in(
        &root,
        &[
            "vars",
            "lab",
            "--host",
            "lab1",
            "--origin",
            "-e",
            "t_extra=e",
            "t_role",
            "t_all",
            "t_group",
            "t_host",
            "t_extra",
            "vault_api_token",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        "t_role: \"r\"  # role default (roles/common/defaults.yml)\n\
         t_all: \"a\"  # group_vars/all (inventory/group_vars/all.yml)\n\
         t_group: \"g\"  # group `lab` (inventory/group_vars/lab/main.yml)\n\
         t_host: \"h\"  # host_vars (inventory/host_vars/lab1.yml)\n\
         t_extra: \"e\"  # -e (extra vars)\n\
         vault_api_token: <redacted>  # group `lab` (inventory/group_vars/lab/secrets.age)\n"
    );
    let shown = deploy_in(&root, &["vars", "lab", "--host", "lab1", "vault_api_token", "--show-secrets"]);
    assert_eq!(shown.stdout, format!("vault_api_token: \"{POISON}\"\n"));
}

// `deploy inventory` as ansible-inventory shows it.
#[test]
fn inventory_graph_and_list() {
    let (root, _slot) = project();
    let g = deploy_in(&root, &["inventory", "lab"]);
    assert_eq!(
        g.stdout,
        "@lab:\n  |--@lab_docker:\n  |    |--lab1\n  |    |--lab2\n  |    |--lab3\n  |--@lab_systemd:\n  |    |--sys1\n  |    |--sys2\n"
    );
    let l = deploy_in(&root, &["inventory", "lab", "--list"]);
    let v: serde_json::Value = serde_json::from_str(&l.stdout).unwrap();
    assert_eq!(v["lab"]["children"], serde_json::json!(["lab_docker", "lab_systemd"]));
    assert_eq!(v["lab_docker"]["hosts"], serde_json::json!(["lab1", "lab2", "lab3"]));
    assert_eq!(v["_meta"]["hostvars"]["sys1"]["groups"], serde_json::json!(["lab", "lab_systemd"]));
}

// `deploy plan --list`: what a host manages, with the role of each.
#[test]
fn plan_list_names_every_managed_item_and_its_role() {
    let (root, _slot) = project();
    let r = deploy_in(&root, &["plan", "lab", "--host", "lab1", "--list"]);
    assert_eq!(r.code, 0, "{r:?}");
    for line in [
        "dir       /opt/stack  mode 0755  role common, phase base\n",
        "file      /opt/stack/env/app.env (secret)  mode 0600  role app, phase apps\n",
        "absent    /opt/stack/legacy.conf  role common, phase base\n",
        "container apps/notes  role apps, phase apps\n",
        "check     http http://127.0.0.1:8080/ -> 200  role proxy, phase infra\n",
    ] {
        assert!(r.stdout.contains(line), "{line}: {r:?}");
    }
}

// Completions come from the same definitions as --help.
#[test]
fn shell_completions() {
    let (root, _slot) = project();
    let r = deploy_in(&root, &["completions", "bash"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("_deploy()") && r.stdout.contains("--accept-new-host-keys"), "{r:?}");
    let z = deploy_in(&root, &["completions", "zsh"]);
    assert!(z.stdout.starts_with("#compdef deploy"), "{z:?}");
}

// The man page: every command and its flags, and roff that groff reads
// without a warning.
#[test]
fn man_page_renders_and_names_every_command() {
    let (root, _slot) = project();
    let m = deploy_in(&root, &["man"]);
    assert_eq!(m.code, 0, "{m:?}");
    assert!(m.stdout.contains(".TH deploy 1"), "{}", &m.stdout[..200]);
    for sub in ["RENDER", "STATUS", "VARS", "INVENTORY", "PLAN", "COMPLETIONS", "UNLOCK", "SECRETS"] {
        assert!(m.stdout.contains(&format!(".SH \"DEPLOY {sub}\"")), "no section for {sub}");
    }
    for flag in ["\\-\\-check", "\\-\\-show\\-secrets", "\\-\\-accept\\-new\\-host\\-keys", "Exit status: 0 applied"] {
        assert!(m.stdout.contains(flag), "no {flag}");
    }
    let path = root.join("deploy.1");
    std::fs::write(&path, &m.stdout).unwrap();
    let g = std::process::Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(&path)
        .output()
        .expect("groff (groff-base)");
    assert!(g.status.success() && g.stderr.is_empty(), "groff: {}", String::from_utf8_lossy(&g.stderr));
}

// Uncommitted files the render reads are named before anything happens; an
// environment in require_clean is not deployed from such a tree.
#[test]
fn a_dirty_tree_is_named_and_refused_where_required() {
    let (root, _slot) = project();
    let git = |args: &[&str]| {
        let st = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(st.status.success(), "git {args:?}: {st:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "example"]);
    std::fs::write(root.join("roles/app/templates/app.conf.j2"), "listen = changed\n").unwrap();
    std::fs::write(root.join("roles/app/files-new.txt"), "untracked\n").unwrap();
    let r = deploy_in(&root, &["lab", "--check", "--limit", "lab1"]);
    assert!(r.stderr.contains("these files the render reads are not committed"), "{r:?}");
    assert!(
        r.stderr.contains(" M roles/app/templates/app.conf.j2") && r.stderr.contains("?? roles/app/files-new.txt"),
        "{r:?}"
    );
    let d = std::fs::read_to_string(root.join("deploy.yml")).unwrap();
    std::fs::write(root.join("deploy.yml"), format!("{d}require_clean: [lab]\n")).unwrap();
    let r = deploy_in(&root, &["lab", "--yes", "--limit", "lab1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("error: `lab` is deployed only from a clean tree (require_clean in deploy.yml), and these files the render reads are not committed:\n"),
        "{r:?}"
    );
    assert!(r.stdout.is_empty(), "it went on to the hosts: {r:?}");
}

#[test]
fn phase_hosts_naming_an_unknown_group() {
    let (root, _slot) = project();
    let y = std::fs::read_to_string(root.join("deploy.yml")).unwrap();
    std::fs::write(root.join("deploy.yml"), y.replacen("hosts: all:!lab_systemd", "hosts: all:!lab_sytemd", 1))
        .unwrap();
    let r = deploy_in(&root, &["lab", "--check"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "error: deploy.yml: phase `infra`: hosts `all:!lab_sytemd`: `lab_sytemd` is neither a group nor a host of the inventory (groups: lab, lab_docker, lab_systemd, prod)\n"
        )
    );
}

/// `roles/system/role.yml` of a copy of the example, edited.
fn system_role_error(from: &str, to: &str) -> (i32, String) {
    let (root, _slot) = project();
    let p = root.join("roles/system/role.yml");
    let t = std::fs::read_to_string(&p).unwrap();
    assert!(t.contains(from), "no `{from}` in role.yml");
    std::fs::write(&p, t.replacen(from, to, 1)).unwrap();
    let r = deploy_in(&root, &["lab", "--check"]);
    (r.code, r.stderr)
}

#[test]
fn host_resources_bad_input() {
    assert_eq!(
        system_role_error("    creates: /srv/www/initialised\n", ""),
        (1, "error: roles/system/role.yml:86: command `stamp the site` has no guard, so it would run on every deploy: add creates:, removes:, unless: or onlyif:, or `always: true` if that is meant\n".into())
    );
    assert_eq!(
        system_role_error("  - name: ops\n", "  - name: root\n    state: absent\n  - name: ops\n"),
        (1, "error: host sys1: roles/system/role.yml:21: user `root` is the user deploy connects as: removing it would lock every later deploy out\n".into())
    );
    assert_eq!(
        system_role_error("schedule: \"17 3 * * *\"", "schedule: \"17 3 * *\""),
        (1, "error: host sys1: roles/system/role.yml:76: cron[0] schedule `17 3 * *`: cron `prune the web server's old logs`: not five fields (`30 3 * * *`) or a @keyword (`@daily`)\n".into())
    );
    assert_eq!(
        system_role_error("restart_on: [/etc/default/lab-worker]", "restart_on: [/etc/default/lab-wrker]"),
        (1, "error: host sys1: roles/system/role.yml:62: unit `lab-worker.service`: restart_on/reload_on `/etc/default/lab-wrker` is not a path this host manages, so it could never change\n".into())
    );
    assert_eq!(
        system_role_error("  - name: lab-web.service\n", "  - name: lab-web\n"),
        (1, "error: host sys1: roles/system/role.yml:52: units[0] name `lab-web`: not a systemd unit name with its suffix (`app.service`, `backup.timer`)\n".into())
    );
    assert_eq!(
        system_role_error("    scope: user\n    user: ops\n", "    scope: user\n"),
        (1, "error: roles/system/role.yml:64: unit `lab-agent.service`: `scope: user` needs `user:`, whose systemd runs it\n".into())
    );
    let (code, err) = system_role_error("    regexp: '^UMASK\\s'\n", "    regexp: '^UMASK(\\s'\n");
    assert_eq!(code, 1);
    assert!(
        err.starts_with(
            "error: host sys1: roles/system/role.yml:82: lines[0] regexp `^UMASK(\\s`: lines `/etc/login.defs`: "
        ),
        "{err}"
    );
}

// --limit takes Ansible's patterns; -e takes @FILE and JSON as ansible-playbook does.
#[test]
fn limit_patterns_and_extra_vars_files() {
    let (root, _slot) = project();
    let hosts = |l: &str| -> Vec<String> {
        let r = deploy_in(&root, &["lab", "--check", "--limit", l, "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("{r:?}"));
        v["hosts"].as_array().unwrap().iter().map(|h| h["host"].as_str().unwrap().to_string()).collect()
    };
    // as in Ansible, a glob matches group names too: lab* is group lab, all of it
    assert_eq!(hosts("lab*"), ["lab1", "lab2", "lab3", "sys1", "sys2"]);
    assert_eq!(hosts("*1"), ["lab1", "sys1"]);
    assert_eq!(hosts("lab_docker:!lab2"), ["lab1", "lab3"]);
    assert_eq!(hosts("!lab_docker"), ["sys1", "sys2"]);
    assert_eq!(hosts("*2:&lab_docker"), ["lab2"]);
    assert_eq!(hosts("sys2,lab1"), ["lab1", "sys2"]);
    assert_eq!(
        stderr_of(&["lab", "--check", "--limit", "web*"]).1,
        "error: --limit web*: no such host in `lab` (hosts: lab1, lab2, lab3, sys1, sys2)\n"
    );

    std::fs::write(root.join("extra.yml"), "app_workers: 8\nflag: yes\n").unwrap();
    let v = deploy_in(&root, &["vars", "lab", "--host", "lab1", "app_workers", "flag", "-e", "@extra.yml"]);
    assert_eq!(v.stdout, "app_workers: 8\nflag: true\n", "{v:?}");
    let v = deploy_in(&root, &["vars", "lab", "--host", "lab1", "app_workers", "-e", "{\"app_workers\": [1, 2]}"]);
    assert_eq!(v.stdout, "app_workers: [1, 2]\n", "{v:?}");
}

/// The handshakes start while the roles render; a render error closes them,
/// so no ssh master is left behind, and nothing runs on the host.
#[test]
fn a_render_error_leaves_no_connection_behind() {
    let lab = Lab::up(1);
    lab.write_file("roles/app/templates/app.conf.j2", "listen = {{ no_such_port }}\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no_such_port"), "{r:?}");
    let config = lab.root.join(".lab/ssh_config");
    let ps = std::process::Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let masters: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.starts_with("ssh ") && l.contains(" -M ") && l.contains(&*config.to_string_lossy()))
        .map(String::from)
        .collect();
    assert!(masters.is_empty(), "a master was left behind: {masters:?}");
    assert!(lab.read("lab1", "/var/lib/deploy/audit.log").is_none(), "something ran on the host");
}

// A subscript past the end of a defined list, or of a key a mapping lacks,
// says so, not "undefined variable" (no variable is undefined).
#[test]
fn a_missing_element_is_named_as_such() {
    let (root, slot) = project();
    let defaults = root.join("roles/common/defaults.yml");
    let d = std::fs::read_to_string(&defaults).unwrap_or_default();
    std::fs::write(&defaults, format!("{d}\nempty: []\nconf: {{a: 1}}\n")).unwrap();
    let t = |text: &str| {
        std::fs::write(root.join("roles/common/templates/motd.j2"), text).unwrap();
        let out = slot.path.join("out");
        let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
        assert_eq!(r.code, 1, "{r:?}");
        r.stderr
    };
    assert_eq!(
        t("{{ empty[0] }}\n"),
        "error: host lab1: roles/common/templates/motd.j2:1: `empty[0]`: list object has no element 0 (`empty` has 0 items); check its length or keys first, or use `| default(...)`\n"
    );
    assert_eq!(
        t("x\n{{ conf['b'] }}\n"),
        "error: host lab1: roles/common/templates/motd.j2:2: `conf['b']`: dict object has no key 'b'; check its length or keys first, or use `| default(...)`\n"
    );
}

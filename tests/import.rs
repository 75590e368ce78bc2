//! `deploy import ansible`: an Ansible repository of our own making
//! (tests/fixtures/ansible-repo: 6 roles, an INI and a YAML inventory, vault
//! secrets through ansible.cfg's vault_identity_list, handlers (one a
//! daemon_reload), a Compose stack, a unit, packages (one list from a
//! variable), cron, sysctl, a lineinfile, guarded commands (one a bash
//! script), `when:` and loops, a templated play `hosts:`, a localhost play,
//! pre_tasks, a block with a rescue, a when'd import_tasks, a role's `when:`,
//! phase tags, two roles with one default name, one dir declared twice, a
//! templated template path and owner, `{{ playbook_dir }}` in a src,
//! changed_when: false with and without check_mode: false, host facts in a
//! template and a `when:`). Real
//! ansible-playbook deploys it to one pair of lab hosts, deploy deploys the
//! import to another, and the hosts must then agree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/ansible-repo")
}

/// What the fixture deliberately makes unconvertible, as the report says it.
const NOT_CONVERTED: [&str; 7] = [
    "  not converted: roles/base/tasks/main.yml:18: set_fact: module `set_fact` has no deploy equivalent yet",
    "  not converted: roles/base/tasks/main.yml:21: wait_for: module `wait_for` has no deploy equivalent yet",
    "  not converted: roles/base/tasks/main.yml:27: copy: loop item used in an expression (`{{ item | upper }}`): write one entry per item",
    "  not converted: roles/ops/tasks/main.yml:40: stat: register: hn: deploy keeps no task results for later tasks to read",
    "  not converted: roles/ops/tasks/main.yml:51: block: rescue: of a block (1 tasks): deploy rolls a failed phase back itself and runs nothing on failure; write what they do as resources, or drop them",
    "  not converted: roles/ops/tasks/main.yml:66: command: changed_when: false without check_mode: false: Ansible skips it under --check, and as a pre-flight deploy would run it on every plan; if it only reads, add check_mode: false and import again",
    "  not converted: site.yml:3: play: play `prepare the controller` is for localhost, the controller (1 tasks): deploy runs on hosts; do it before `deploy`, or in a Makefile",
];

/// Import the fixture into `dir/out` with a new identity; the run.
fn import(dir: &Path, extra: &[&str]) -> Run {
    import_from(&fixture(), dir, extra)
}

/// Import `src` into `dir/out` with a new identity; the run.
fn import_from(src: &Path, dir: &Path, extra: &[&str]) -> Run {
    let id = dir.join("id.txt");
    if !id.exists() {
        let r = deploy_in(dir, &["secrets", "keygen", "--out", id.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let (src, out) = (src.to_path_buf(), dir.join("out"));
    let mut args = vec!["import", "ansible", src.to_str().unwrap(), "--identity", id.to_str().unwrap()];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    deploy_in(dir, &args)
}

#[test]
fn the_import_report_lists_what_was_not_converted_and_the_roles_read_as_written() {
    let (_root, slot) = project();
    // the vault password from ansible.cfg's vault_identity_list
    let r = import(&slot.path, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    // tasks, not loop items, are counted
    assert!(lines[0].ends_with(": 38 tasks converted, 7 not converted, 1 with nothing to do on a host."), "{r:?}");
    assert_eq!(lines[1..8], NOT_CONVERTED, "{r:?}");
    assert_eq!(lines[8], "  nothing to do: roles/base/tasks/extra.yml:1: debug: nothing to do on a host");
    for line in [
        "  note: site.yml: play `base`: hosts `{{ target_env | default('shop') }}` is a template: deploy takes the environment from its command line (`deploy ENV`), so the phase has every host of it",
        "  note: roles/app/tasks/main.yml:15: docker_compose_v2: recreate: always dropped: deploy recreates exactly the services whose inputs changed",
        "  handler: roles/web/handlers/main.yml: `restart web`: restart_on of unit shop-web.service: /etc/default/shop-web",
        "  handler: roles/web/handlers/main.yml: `reload systemd`: daemon-reload: deploy reloads systemd itself when a unit file changes",
        "Not converted, by reason:",
        "     2  module `...` has no deploy equivalent yet",
    ] {
        assert!(lines.contains(&line), "{line}\n{r:?}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("  note: ")
            && l.ends_with("/out/inventory/group_vars/all/main.age (1 recipient(s)); the rest stays")),
        "{r:?}"
    );
    let out = slot.path.join("out");
    // the report is written beside the import too
    let md = std::fs::read_to_string(out.join("IMPORT.md")).unwrap();
    assert!(md.contains(NOT_CONVERTED[6].trim_start()) && md.contains("Not converted, by reason:"), "{md}");
    // a phase per play, in play order, with the play's hosts; the play's
    // own tasks a role in their place; a role's when kept; phase tags split
    let d = std::fs::read_to_string(out.join("deploy.yml")).unwrap();
    assert!(d.contains("ansible_managed: 'Managed by Ansible for shop: do not edit'\n"), "{d}");
    assert!(d.contains("ansible_compat: true\n"), "{d}");
    assert!(d.ends_with("phases:\n  # hosts: {{ target_env | default('shop') }} in the playbook: deploy takes the environment from its command line\n  - name: base\n    roles:\n      - base\n      - role: secrets\n        when: '''systemd_hosts'' in group_names'\n  - name: ops\n    roles: [ops-tasks, ops]\n    hosts: systemd_hosts\n  - name: web\n    roles: [web]\n    hosts: systemd_hosts\n  - name: app-phase1\n    roles: [app]\n    hosts: docker_hosts\n  - name: app-phase2\n    roles: [notes]\n    hosts: docker_hosts\n"), "{d}");
    // the identity as it resolves from the new repository, and its recipient
    let id = std::fs::canonicalize(slot.path.join("id.txt")).unwrap();
    assert!(d.contains(&format!("age_identity: {}\n", id.display())), "{d}");
    assert!(std::fs::read_to_string(out.join(".age-recipients")).unwrap().contains("\nage1"));
    let role = |n: &str| std::fs::read_to_string(out.join(format!("roles/{n}/role.yml"))).unwrap();
    // the handler's restart joined the unit; the task's `when:` kept
    assert!(
        role("web").contains("units:\n- name: shop-web.service\n  restart_on:\n  - /etc/default/shop-web\n  state: started\n  enabled: true\n  when: http_port | int > 0\n"),
        "{}",
        role("web")
    );
    // a loop over a literal list: one entry per item; an unconverted task
    // left as a comment where it would go
    let base = role("base");
    assert!(
        base.contains(
            "- dest: /srv/shop/RELEASE\n  src: RELEASE\n# not converted: roles/base/tasks/main.yml:18: set_fact:"
        ),
        "{base}"
    );
    assert!(base.contains("- path: /srv/shop\n  mode: '0755'\n- path: /srv/shop/data\n  mode: '0750'\n"), "{base}");
    // the user's groups and its authorized_key in one entry
    assert!(
        role("ops")
            .contains("users:\n- name: ops\n  shell: /bin/bash\n  groups:\n  - shop-admins\n  authorized_keys:\n"),
        "{}",
        role("ops")
    );
    // role vars as vars.yml; both inventories; the vault content now age
    assert!(out.join("roles/notes/vars.yml").is_file());
    for f in
        ["hosts", "shop.yml", "group_vars/all/main.age", "group_vars/all/vault.age", "group_vars/all/ansible_cfg.yml"]
    {
        assert!(out.join("inventory").join(f).is_file(), "{f}");
    }
    assert!(!out.join("inventory/group_vars/all/vault.yml").exists());
    let main = std::fs::read_to_string(out.join("inventory/group_vars/all/main.yml")).unwrap();
    assert!(!main.contains("vault"), "{main}");
    // the imported repository loads, plans and renders with no edit (with
    // the facts it reads, as a host would give them)
    let facts = slot.path.join("facts.json");
    let f = r#"{"ansible_facts": {"ansible_os_family": "Debian", "ansible_distribution": "Debian", "ansible_distribution_major_version": "12"}}"#;
    std::fs::write(&facts, f).unwrap();
    let facts = facts.to_str().unwrap();
    for args in [&["inventory", "shop", "--list"][..], &["render", "shop", "--out", "rendered", "--facts", facts]] {
        let r = deploy_in(&out, args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
    }
    for host in ["shop-app", "shop-node"] {
        let r = deploy_in(&out, &["plan", "shop", "--host", host, "--list", "--facts", facts]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let list = deploy_in(&out, &["plan", "shop", "--host", "shop-node", "--list", "--facts", facts]).stdout;
    // one dir two roles declare alike; a package list from a variable; a templated owner
    for line in [
        "dir       /srv/shop  mode 0755  roles base, web, phase base",
        "package   busybox  role ops, phase ops",
        "package   lab-tool  role ops, phase ops",
        "dir       /etc/shop  owner root, group root, mode 0750  role secrets, phase base",
        "file      /srv/shop/www/robots.txt  role web, phase web",
    ] {
        assert!(list.lines().any(|l| l == line), "{line}\n{list}");
    }
    let app = deploy_in(&out, &["plan", "shop", "--host", "shop-app", "--list", "--facts", facts]).stdout;
    assert!(!app.contains("role secrets"), "a role whose when is false on the host: {app}");
    let rendered = |p: &str| std::fs::read_to_string(out.join("rendered/shop-app").join(p)).unwrap();
    assert_eq!(rendered("opt/shop/app-label"), "label=app-default\n");
    assert_eq!(rendered("opt/shop/notes-label"), "label=notes-default\n");
    assert_eq!(rendered("opt/shop/IDENTITY.md"), "agent bot of shop\n");
    // --strict: what was not converted fails the import, which writes nothing
    let (_root2, slot2) = project();
    let r = import(&slot2.path, &["--strict"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("--strict: 7 tasks not converted, so nothing was written to "), "{r:?}");
    assert!(!slot2.path.join("out").exists());
}

#[test]
fn an_import_without_the_vault_password_reports_the_vault_content_and_a_failed_one_leaves_nothing() {
    let (_root, slot) = project();
    // the fixture without the password ansible.cfg names
    let src = slot.path.join("src");
    copy_dir(&fixture(), &src);
    let cfg = std::fs::read_to_string(src.join("ansible.cfg")).unwrap();
    std::fs::write(src.join("ansible.cfg"), cfg.replace("vault_identity_list = default@vault-pass\n", "")).unwrap();
    let r = import_from(&src, &slot.path, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let vault: Vec<&str> = r.stdout.lines().filter(|l| l.contains("ansible-vault")).collect();
    assert_eq!(
        vault,
        [
            "  not converted: inventory/group_vars/all/main.yml:4: ansible-vault: vault content, which deploy refuses: import again with --vault-password-file",
            "  not converted: inventory/group_vars/all/vault.yml:1: ansible-vault: vault content, which deploy refuses: import again with --vault-password-file",
        ],
        "{r:?}"
    );
    // into a directory that is not empty: refused, nothing written
    let r = import(&slot.path, &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is not empty: import into a new or empty directory"), "{r:?}");
    // a wrong vault password fails the whole import, and leaves nothing
    let (_root2, slot2) = project();
    let bad = slot2.path.join("bad-pass");
    std::fs::write(&bad, "not the password\n").unwrap();
    let r = import(&slot2.path, &["--vault-password-file", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("main.yml:4: `db_password`:"), "{r:?}");
    let left: Vec<_> = std::fs::read_dir(&slot2.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("out"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A host's facts: each path's kind, mode, owner and content hash, then
/// units, packages, accounts, a sysctl and containers.
const FACTS: &str = r#"
for p in "$@"; do
  if [ -L "$p" ]; then echo "$p -> $(readlink "$p")"
  elif [ -e "$p" ]; then
    printf '%s %s %s\n' "$p" "$(stat -c '%F %a %U %G' "$p")" "$([ -f "$p" ] && sha256sum <"$p" | cut -c1-16)"
  else echo "$p absent"; fi
done
if command -v systemctl >/dev/null; then systemctl show -p ActiveState -p UnitFileState shop-web.service | sort | tr '\n' ' '; echo; fi
dpkg-query -W busybox lab-tool 2>&1
getent passwd ops | cut -d: -f1,3-; getent group shop-admins; id -Gn ops 2>&1
sysctl -n net.ipv4.tcp_keepalive_time
if command -v docker >/dev/null; then
  docker ps -a --format '{{.Names}} {{.Image}} {{.State}}'
  docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' shop-notes-1 | sort
fi
"#;

/// FACTS of `paths` on `host`, through `ssh` (an ssh_config).
fn facts(ssh: &Path, host: &str, paths: &[String]) -> String {
    use std::io::Write;
    let mut c = Command::new("ssh")
        .arg("-F")
        .arg(ssh)
        .args([host, "sh", "-s", "--"])
        .args(paths)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(FACTS.as_bytes()).unwrap();
    String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).into_owned()
}

/// An ssh_config naming the fixture's hosts after two lab hosts.
fn ssh_config(lab: &Lab, app: &str, node: &str, to: &Path) {
    let text = std::fs::read_to_string(lab.root.join(".lab/ssh_config")).unwrap();
    let rest = &text[text.find("Host *").unwrap()..];
    let alias = |name: &str, h: &str| format!("Host {name}\n  HostName {}\n  HostKeyAlias {h}\n", lab.addr(h));
    std::fs::write(to, format!("{}{}{rest}", alias("shop-app", app), alias("shop-node", node))).unwrap();
}

#[test]
fn an_imported_repository_deploys_what_ansible_deployed_and_sees_its_hosts_in_sync() {
    let lab = Lab::up_mixed(2, 2);
    let (a, b) = (lab.slot.join("sshA"), lab.slot.join("sshB"));
    ssh_config(&lab, "lab1", "sys1", &a);
    ssh_config(&lab, "lab2", "sys2", &b);
    // 1. ansible-playbook deploys the fixture to A (lab1, sys1)
    let play = lab.slot.join("ansible");
    copy_dir(&fixture(), &play);
    let venv = repo().join("bench/.venv/bin");
    // bounded: a run that hangs fails the test with what it printed
    let o = Command::new("timeout")
        .arg("300")
        .arg(venv.join("ansible-playbook"))
        // the vault password is ansible.cfg's vault_identity_list
        .args(["site.yml", "-e"])
        .arg(format!("ansible_ssh_common_args='-F {}'", a.display()))
        .current_dir(&play)
        .env("ANSIBLE_COLLECTIONS_PATH", repo().join("bench/.collections"))
        .env("ANSIBLE_NOCOLOR", "1")
        // its own ControlMaster sockets: another lab's host of the same name
        // may have left one behind
        .env("ANSIBLE_SSH_CONTROL_PATH_DIR", lab.slot.join("cp"))
        .stdin(Stdio::null())
        .output()
        .expect("bench/.venv/bin/ansible-playbook (python3 bench/bench.py --setup creates it)");
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "ansible-playbook failed:\n{log}");
    // 2. the import, exactly the deliberate gaps reported
    let pw = fixture().join("vault-pass");
    let r = import(&lab.slot, &["--vault-password-file", pw.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let not: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("  not converted:")).collect();
    assert_eq!(not, NOT_CONVERTED, "{r:?}");
    let out = lab.slot.join("out");
    let with = |ssh: &Path| format!("deploy_ssh_config={}", ssh.display());
    // 3. the hosts Ansible manages are in sync for the imported repository
    let check = deploy_in(&out, &["shop", "--check", "-e", &with(&a)]);
    assert_eq!(check.code, 0, "A is not in sync: {check:?}");
    // 4. deploy deploys the import to B (lab2, sys2), then B is in sync too
    let r = deploy_in(&out, &["shop", "--yes", "-e", &with(&b)]);
    assert_eq!(r.code, 0, "{r:?}");
    let again = deploy_in(&out, &["shop", "--check", "-e", &with(&b)]);
    assert_eq!(again.code, 0, "{again:?}");
    // 5. every managed path, unit, package, account and container agrees
    for host in ["shop-app", "shop-node"] {
        // the host's facts, for plan --list (which touches no host)
        let f = deploy_in(&out, &["facts", "shop", "--host", host, "-e", &with(&b)]);
        assert_eq!(f.code, 0, "{f:?}");
        let facts_file = lab.slot.join(format!("{host}.facts"));
        std::fs::write(&facts_file, &f.stdout).unwrap();
        let list =
            deploy_in(&out, &["plan", "shop", "--host", host, "--list", "--facts", facts_file.to_str().unwrap()]);
        assert_eq!(list.code, 0, "{list:?}");
        let mut paths: Vec<String> = list
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|w| matches!(w.first(), Some(&"dir" | &"file" | &"link")))
            .filter_map(|w| w.get(1).map(|p| p.to_string()))
            .collect();
        assert!(paths.len() >= 8, "{list:?}");
        if host == "shop-node" {
            paths.extend(
                [
                    "/etc/login.defs",
                    "/home/ops",
                    "/home/ops/.ssh/authorized_keys",
                    "/var/lib/shop-initialised",
                    "/var/lib/shop-built",
                ]
                .map(String::from),
            );
        }
        let (fa, fb) = (facts(&a, host, &paths), facts(&b, host, &paths));
        assert_eq!(fa, fb, "{host}: A (Ansible) and B (deploy) differ");
        assert!(!fa.contains(" absent\n"), "{host}: {fa}");
        if host == "shop-node" {
            assert!(fa.contains("ActiveState=active UnitFileState=enabled"), "{fa}");
            assert!(fa.contains("lab-tool\t2.0\n") && fa.contains("ops shop-admins\n"), "{fa}");
            assert!(fa.contains("/etc/shop/secrets.env regular file 600 root root"), "{fa}");
        } else {
            assert!(fa.contains("shop-notes-1 lab/busybox:1 running\n") && fa.contains("APP_ENV=production\n"), "{fa}");
        }
    }
}

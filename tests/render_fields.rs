//! Every string field of every resource kind is a template, rendered per
//! host before deploy plans with it; one that renders to something invalid
//! is an error naming role.yml:line, the key, the text as written and as
//! rendered (no host needed: `deploy plan --list` and `deploy render`).

use std::path::{Path, PathBuf};

use crate::common::*;

/// The example with role `tmpl` (tests/fixtures/templated-role) in phase base.
fn with_templated_role() -> (PathBuf, Slot) {
    let (root, slot) = project();
    copy_dir(&repo().join("tests/fixtures/templated-role"), &root.join("roles/tmpl"));
    let d = std::fs::read_to_string(root.join("deploy.yml")).unwrap();
    std::fs::write(root.join("deploy.yml"), d.replacen("roles: [common]", "roles: [common, tmpl]", 1)).unwrap();
    (root, slot)
}

fn list(root: &Path) -> Run {
    deploy_in(root, &["plan", "lab", "--host", "lab1", "--list"])
}

/// role.yml of `tmpl` with `from` replaced by `to` (once).
fn edit(root: &Path, from: &str, to: &str) {
    let p = root.join("roles/tmpl/role.yml");
    let t = std::fs::read_to_string(&p).unwrap();
    assert!(t.contains(from), "{from}");
    std::fs::write(&p, t.replacen(from, to, 1)).unwrap();
}

#[test]
fn every_field_of_every_resource_kind_is_rendered() {
    let (root, slot) = with_templated_role();
    let r = list(&root);
    assert_eq!(r.code, 0, "{r:?}");
    for line in [
        "dir       /opt/My_App  owner appuser, group appgrp, mode 0640  role tmpl, phase base",
        "file      /opt/My_App/ID  owner 3100, mode 0640  role tmpl, phase base",
        "file      /opt/My_App/bot.txt  group appgrp  role tmpl, phase base",
        "link      /opt/My_App/current -> /opt/My_App/ID  role tmpl, phase base",
        "absent    /opt/My_App/old  role tmpl, phase base",
        "package   jq  role tmpl, phase base",
        "unit      app.service  role tmpl, phase base",
        "group     appgrp gid 3100  role tmpl, phase base",
        "user      appuser uid 3100 group appgrp home /opt/My_App  role tmpl, phase base",
        "sysctl    vm.swappiness = 10  role tmpl, phase base",
        "line      /opt/My_App/conf: agent=bot  role tmpl, phase base",
        "command   touch /opt/My_App/done (creates /opt/My_App/done)  role tmpl, phase base",
        // a compose project without `project:` is named as Compose names its rendered directory
        "container my_app/web  role tmpl, phase base",
        "check     command test -e /opt/My_App/ID  role tmpl, phase base",
        "check     http http://127.0.0.1:8080/ -> 200  role tmpl, phase base",
    ] {
        assert!(r.stdout.lines().any(|l| l == line), "{line}\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("{{"), "{}", r.stdout);
    // the templated template path and the cron fields, as written to the host
    let out = slot.path.join("out");
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read_to_string(out.join("lab1/opt/My_App/ID")).unwrap(), "id lab1\n");
    let cron = std::fs::read_to_string(out.join("lab1/etc/cron.d/deploy-tmpl")).unwrap();
    assert!(cron.ends_with("# bot job\n*/5 * * * * root echo bot\n"), "{cron}");
}

#[test]
fn a_field_that_renders_to_something_invalid_names_key_and_both_texts() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "    owner: \"{{ app_user }}\"",
            "    owner: \"{{ app_user }} x\"",
            "error: host lab1: roles/tmpl/role.yml:4: dirs[0] owner `{{ app_user }} x` (rendered: `appuser x`): not a user or group name, nor a number\n",
        ),
        (
            "    mode: \"{{ key_mode }}\"",
            "    mode: \"{{ key_mode }}9\"",
            "error: host lab1: roles/tmpl/role.yml:6: dirs[0] mode `{{ key_mode }}9` (rendered: `06409`): not an octal mode like \"0640\"\n",
        ),
        (
            "    uid: \"{{ app_uid }}\"",
            "    uid: \"{{ app_user }}\"",
            "error: host lab1: roles/tmpl/role.yml:39: users[0] uid `{{ app_user }}` (rendered: `appuser`): not a whole number\n",
        ),
        (
            "  - name: \"{{ pkg }}\"",
            "  - name: \"{{ pkg }} curl\"",
            "error: host lab1: roles/tmpl/role.yml:30: packages[0] name `{{ pkg }} curl` (rendered: `jq curl`): not a Debian package name\n",
        ),
        (
            "    schedule: \"{{ '*/5' }} * * * *\"",
            "    schedule: \"{{ '*/5' }} * * *\"",
            "error: host lab1: roles/tmpl/role.yml:47: cron[0] schedule `{{ '*/5' }} * * *` (rendered: `*/5 * * *`): cron `bot job`: not five fields (`30 3 * * *`) or a @keyword (`@daily`)\n",
        ),
        (
            "  - dir: \"{{ app_dir }}\"",
            "  - dir: \"{{ app_dir }}/\"\n    project: \"{{ app_dir | basename }}\"",
            "error: host lab1: roles/tmpl/role.yml:23: compose[0] project `{{ app_dir | basename }}` (rendered: `My_App`): a Compose project name is lowercase letters, digits, `_` and `-`, starting with a letter or digit\n",
        ),
        (
            "  - healthy: [\"{{ 'my_app' }}/web\"]",
            "  - healthy: [\"{{ 'my_app' }}\"]",
            "error: host lab1: roles/tmpl/role.yml:62: preflight[1] healthy `{{ 'my_app' }}` (rendered: `my_app`): not `project/service`\n",
        ),
    ];
    for (from, to, want) in cases {
        let (root, _slot) = with_templated_role();
        edit(&root, from, to);
        let r = list(&root);
        assert_eq!((r.code, r.stderr.as_str()), (1, *want), "{to}");
    }
}

// An undefined variable in a role.yml field or condition names itself,
// the line, the key and the expression; a condition that is undefined is
// an error, never quietly false.
#[test]
fn an_undefined_variable_in_role_yml_names_itself_and_its_key() {
    let hint = "; define it in group_vars/host_vars or role defaults, or use `| default(...)`\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "    owner: \"{{ app_user }}\"",
            "    owner: \"{{ nosuch_user }}\"",
            "error: host lab1: roles/tmpl/role.yml:4: dirs[0] owner `{{ nosuch_user }}`: undefined variable `nosuch_user`",
        ),
        (
            "  - name: \"{{ pkg }}\"",
            "  - name: \"{{ pkg }}\"\n    when: nosuch_flag",
            "error: host lab1: roles/tmpl/role.yml:31: packages[0] when `nosuch_flag`: undefined variable `nosuch_flag`",
        ),
        (
            "  - name: \"{{ pkg }}\"",
            "  - name: \"{{ pkg }}\"\n    when: nosuch_flag | bool",
            "error: host lab1: roles/tmpl/role.yml:31: packages[0] when `nosuch_flag | bool`: undefined variable `nosuch_flag`",
        ),
        (
            "  - run: [touch, \"{{ app_dir }}/done\"]",
            "  - run: [touch, \"{{ app_dir }}/{{ marker }}\"]",
            "error: host lab1: roles/tmpl/role.yml:55: commands[0] run `{{ app_dir }}/{{ marker }}`: undefined variable `marker`",
        ),
    ];
    for (from, to, want) in cases {
        let (root, _slot) = with_templated_role();
        edit(&root, from, to);
        let r = list(&root);
        assert_eq!((r.code, r.stderr.as_str()), (1, format!("{want}{hint}").as_str()), "{to}");
    }
}

/// The example with `tmpl` and a second role `tmpl2` (role.yml `spec`,
/// defaults `defaults`) after it in phase base.
fn with_second_role(spec: &str, defaults: &str) -> (PathBuf, Slot) {
    let (root, slot) = with_templated_role();
    let dir = root.join("roles/tmpl2");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("role.yml"), spec).unwrap();
    std::fs::write(dir.join("defaults.yml"), defaults).unwrap();
    let d = std::fs::read_to_string(root.join("deploy.yml")).unwrap();
    std::fs::write(root.join("deploy.yml"), d.replacen("roles: [common, tmpl]", "roles: [common, tmpl, tmpl2]", 1))
        .unwrap();
    (root, slot)
}

// Two roles may both need /opt/My_App (same owner, group and mode) and
// package jq, as Ansible lets them: one resource, and the plan names both
// roles. Declarations that disagree stay an error naming both places.
#[test]
fn alike_declarations_of_two_roles_are_one_resource() {
    let spec = "dirs:\n  - path: /opt/My_App\n    owner: appuser\n    group: appgrp\n    mode: \"0640\"\npackages:\n  - name: jq\nlinks:\n  - path: /opt/My_App/current\n    target: /opt/My_App/ID\n";
    let (root, _slot) = with_second_role(spec, "");
    let r = list(&root);
    assert_eq!(r.code, 0, "{r:?}");
    for line in [
        "dir       /opt/My_App  owner appuser, group appgrp, mode 0640  roles tmpl, tmpl2, phase base",
        "package   jq  roles tmpl, tmpl2, phase base",
        "link      /opt/My_App/current -> /opt/My_App/ID  roles tmpl, tmpl2, phase base",
    ] {
        assert!(r.stdout.lines().any(|l| l == line), "{line}\n{}", r.stdout);
    }
    assert_eq!(r.stdout.lines().filter(|l| l.starts_with("dir       /opt/My_App  ")).count(), 1, "{}", r.stdout);

    let (root, _slot) = with_second_role(&spec.replace("\"0640\"", "\"0755\""), "");
    let r = list(&root);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: host lab1: roles/tmpl2/role.yml:2: dirs[0] `/opt/My_App` is also declared by role `tmpl` (roles/tmpl/role.yml:3), with mode 0640: two declarations of one path must agree; make them the same, or keep one\n")
    );
    let (root, _slot) = with_second_role("packages:\n  - name: jq\n    state: absent\n", "");
    let r = list(&root);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: host lab1: roles/tmpl2/role.yml:2: packages[0] name `jq`: package `jq` is also declared by role `tmpl` with another version, state or revert: two declarations must agree\n")
    );
}

// A field that renders to a list, where a list of such things is meant,
// is one resource per item (`name: "{{ common_packages }}"`).
#[test]
fn a_list_from_a_variable_is_one_resource_per_item() {
    let spec = "dirs:\n  - path: \"{{ app_dirs }}\"\n    mode: \"0750\"\npackages:\n  - name: \"{{ common_packages }}\"\ngroups:\n  - name: \"{{ teams }}\"\nusers:\n  - name: \"{{ teams }}\"\n    shell: /bin/sh\nabsent:\n  - \"{{ app_dirs | map('regex_replace', '$', '/old') | list }}\"\n";
    let defaults = "app_dirs: [/opt/a, /opt/b]\ncommon_packages: [curl, git]\nteams: [red, blue]\n";
    let (root, _slot) = with_second_role(spec, defaults);
    let r = list(&root);
    assert_eq!(r.code, 0, "{r:?}");
    for line in [
        "dir       /opt/a  mode 0750  role tmpl2, phase base",
        "dir       /opt/b  mode 0750  role tmpl2, phase base",
        "absent    /opt/a/old  role tmpl2, phase base",
        "absent    /opt/b/old  role tmpl2, phase base",
        "package   curl  role tmpl2, phase base",
        "package   git  role tmpl2, phase base",
        "group     red  role tmpl2, phase base",
        "group     blue  role tmpl2, phase base",
        "user      red shell /bin/sh  role tmpl2, phase base",
        "user      blue shell /bin/sh  role tmpl2, phase base",
    ] {
        assert!(r.stdout.lines().any(|l| l == line), "{line}\n{}", r.stdout);
    }
    let (root, _slot) = with_second_role("packages:\n  - name: \"{{ bad }}\"\n", "bad: [curl, [git]]\n");
    let r = list(&root);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: host lab1: roles/tmpl2/role.yml:2: packages[0] name `{{ bad }}` (rendered: `['curl', ['git']]`): an item of the list is ['git'], not a name\n")
    );
}

// A role of a phase may carry `when:` (a playbook's `- role: X, when: ...`),
// evaluated per host: where it is false, nothing of the role is deployed.
#[test]
fn a_phase_role_with_when_is_deployed_only_where_it_holds() {
    let (root, _slot) = with_templated_role();
    let d = std::fs::read_to_string(root.join("deploy.yml")).unwrap();
    let cond = "roles:\n      - common\n      - role: tmpl\n        when: inventory_hostname != 'lab1'";
    std::fs::write(root.join("deploy.yml"), d.replacen("roles: [common, tmpl]", cond, 1)).unwrap();
    let on = |h: &str| deploy_in(&root, &["plan", "lab", "--host", h, "--list"]);
    let (l1, l2) = (on("lab1"), on("lab2"));
    assert_eq!((l1.code, l2.code), (0, 0), "{l1:?} {l2:?}");
    assert!(!l1.stdout.contains("role tmpl"), "{}", l1.stdout);
    assert!(
        l2.stdout.contains("dir       /opt/My_App  owner appuser, group appgrp, mode 0640  role tmpl"),
        "{}",
        l2.stdout
    );
    std::fs::write(
        root.join("deploy.yml"),
        d.replacen("roles: [common, tmpl]", &cond.replace("inventory_hostname != 'lab1'", "tmpl_on"), 1),
    )
    .unwrap();
    let r = on("lab1");
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: host lab1: deploy.yml: phase `base`: role `tmpl` when `tmpl_on`: undefined variable `tmpl_on`; define it in group_vars/host_vars or role defaults, or use `| default(...)`\n")
    );
}

//! `deploy import ansible`: an Ansible repository of our own making
//! (tests/fixtures/ansible-repo) written as a deploy repository, which then
//! loads and renders; what is not converted is reported with file:line.

use crate::common::*;

#[test]
fn an_ansible_repository_imports_renders_and_reports_what_it_did_not_convert() {
    let (root, slot) = project();
    let src = repo().join("tests/fixtures/ansible-repo");
    let out = slot.path.join("imported");
    let r = deploy_in(&root, &["import", "ansible", src.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].ends_with(": 13 tasks converted, 2 not converted, 1 with nothing to do on a host."), "{r:?}");
    assert_eq!(
        lines[1],
        "  not converted: roles/base/tasks/main.yml:38: uri: register: its result is used later, and deploy keeps no task results"
    );
    assert_eq!(
        lines[2],
        "  not converted: roles/base/tasks/main.yml:51: copy: loop item used in an expression (`{{ item | upper }}`): write one entry per item"
    );
    assert_eq!(lines[3], "  nothing to do: roles/base/tasks/extra.yml:1: debug: nothing to do on a host");
    // a loop over a literal list: one entry per item
    let base_yml = std::fs::read_to_string(out.join("roles/base/role.yml")).unwrap();
    assert!(
        base_yml.contains("- path: /srv/shop\n  mode: '0755'\n- path: /srv/shop/data\n  mode: '0750'\n"),
        "{base_yml}"
    );
    // a phase per play, in play order, with the play's hosts
    let d = std::fs::read_to_string(out.join("deploy.yml")).unwrap();
    assert!(
        d.ends_with(
            "phases:\n  - name: base\n    roles: [base]\n  - name: web\n    roles: [web]\n    hosts: \"web\"\n"
        ),
        "{d}"
    );
    // the handler's restart joined the unit; the task's `when:` kept
    let web = std::fs::read_to_string(out.join("roles/web/role.yml")).unwrap();
    assert!(web.contains("units:\n- name: web.service\n  restart_on:\n  - /etc/web.conf\n  state: started\n  enabled: true\n  when: http_port | int > 0\n"), "{web}");
    let base = std::fs::read_to_string(out.join("roles/base/role.yml")).unwrap();
    // left as a comment where it would go: after the entry of the task before it
    assert!(
        base.contains(
            "  creates: /opt/shop/.initialised\n# not converted: roles/base/tasks/main.yml:38: uri: register:"
        ),
        "{base}"
    );
    // the result loads and renders, the INI inventory and group_vars included
    let rendered = slot.path.join("rendered");
    let r = deploy_in(&out, &["render", "web", "--host", "lab1", "--out", rendered.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read_to_string(rendered.join("lab1/etc/motd")).unwrap(), "Welcome to shop\n");
    assert_eq!(std::fs::read_to_string(rendered.join("lab1/etc/web.conf")).unwrap(), "port=8080\n");
    let plan = deploy_in(&out, &["plan", "web", "--host", "lab1", "--list"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    // --strict: what was not converted fails the import
    let strict_out = slot.path.join("strict");
    let r = deploy_in(
        &root,
        &["import", "ansible", src.to_str().unwrap(), "--out", strict_out.to_str().unwrap(), "--strict"],
    );
    assert_eq!(r.code, 1, "{r:?}");
}

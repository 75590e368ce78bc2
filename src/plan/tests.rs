//! Planning as a pure function: a `DesiredHost` and a probe reply in, the
//! plan out. No host, no SSH.

use super::*;
use crate::load::project::Id;
use crate::render::{Connection, DesiredAbsent, DesiredCompose, DesiredDir, DesiredFile, DesiredService};
use crate::util::sha256_hex;

fn file(dest: &str, content: &str) -> DesiredFile {
    DesiredFile::generated(dest, "r", "test", content.as_bytes().to_vec(), 0)
}

pub(super) fn host() -> DesiredHost {
    let connection = Connection {
        address: "h".into(),
        port: None,
        user: None,
        key_file: None,
        ssh_config: None,
        fallback_port: None,
    };
    DesiredHost::new("h", connection)
}

/// A probe reply with these lines (P, H, C, compose ...).
pub(super) fn remote(lines: &str) -> Remote {
    crate::remote::probe::parse_probe(
        format!("deploy-probe\t1\nhost\th\nuid\t0\troot\ngid\t0\troot\n{lines}end\n").as_bytes(),
    )
    .unwrap()
}

fn p_file(path: &str, mode: &str, content: &str) -> String {
    format!("P\tregular file\t{mode}\t0\t0\t{path}\nH\t{}  {path}\n", sha256_hex(content.as_bytes()))
}

fn one(plan: &HostPlan, path: &str) -> (Action, Vec<String>) {
    let c = plan.changes.iter().find(|c| c.path == path).unwrap_or_else(|| panic!("no change for {path}"));
    (c.action, c.reasons.clone())
}

#[test]
fn files_create_update_attributes_unchanged() {
    let mut d = host();
    d.files = vec![file("/a", "new\n"), file("/b", "same\n"), file("/c", "new\n"), file("/d", "same\n")];
    d.files[3].owner = Some(Id::Num(1000));
    let r =
        remote(&[p_file("/b", "644", "same\n"), p_file("/c", "644", "old\n"), p_file("/d", "600", "same\n")].concat());
    let plan = plan_host(&d, &r).unwrap();
    assert_eq!(one(&plan, "/a"), (Action::Create, vec!["missing".to_string()]));
    assert_eq!(one(&plan, "/c"), (Action::Update, vec!["content".to_string()]));
    assert_eq!(
        one(&plan, "/d"),
        (Action::Metadata, vec!["mode 0600 -> 0644".to_string(), "owner root -> 1000".to_string()])
    );
    assert!(!plan.changes.iter().any(|c| c.path == "/b"));
    assert_eq!(plan.unchanged, 1);
}

#[test]
fn a_preserved_file_that_differs_is_never_updated() {
    let mut d = host();
    d.files = vec![file("/state.json", "{}\n")];
    d.files[0].preserve = true;
    let plan = plan_host(&d, &remote(&p_file("/state.json", "644", "{\"paired\": 1}\n"))).unwrap();
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert_eq!(plan.preserved, vec!["/state.json".to_string()]);
}

#[test]
fn removals_and_dirs_in_apply_order() {
    let mut d = host();
    d.dirs = vec![DesiredDir {
        path: "/opt/x".into(),
        role: "r".into(),
        owner: None,
        group: None,
        mode: Some(0o755),
        phase: 0,
        selected: true,
    }];
    d.files = vec![file("/opt/x/f", "f\n")];
    d.absent = vec![
        DesiredAbsent {
            path: "/old".into(),
            role: "r".into(),
            phase: 0,
            selected: true,
            force: false,
            written: "/old".into(),
        },
        DesiredAbsent {
            path: "/gone".into(),
            role: "r".into(),
            phase: 0,
            selected: true,
            force: false,
            written: "/gone".into(),
        },
    ];
    let plan = plan_host(&d, &remote(&p_file("/old", "644", "x"))).unwrap();
    let order: Vec<(&str, Action)> = plan.changes.iter().map(|c| (c.path.as_str(), c.action)).collect();
    assert_eq!(order, vec![("/opt/x", Action::Create), ("/opt/x/f", Action::Create), ("/old", Action::Delete)]);
    assert_eq!(one(&plan, "/old").1, vec!["a file present".to_string()]);
}

#[test]
fn a_directory_where_a_file_is_declared_is_an_error() {
    let mut d = host();
    d.files = vec![file("/etc/x", "x")];
    let e = plan_host(&d, &remote("P\tdirectory\t755\t0\t0\t/etc/x\n")).unwrap_err();
    assert_eq!(
        e,
        "/etc/x is a directory on the host but declared as a file by role `r`; remove it by hand or change the role"
    );
}

fn compose_host(env: &str) -> DesiredHost {
    let mut d = host();
    d.files = vec![file("/opt/s/app.env", env), file("/opt/s/compose.yml", "services: {}\n")];
    let svc = |name: &str, inputs: Vec<String>| DesiredService {
        name: name.into(),
        definition_sha: sha256_hex(name.as_bytes()),
        inputs,
        file: "/opt/s/compose.yml".into(),
    };
    d.compose = vec![DesiredCompose {
        project: "s".into(),
        dir: "/opt/s".into(),
        role: "r".into(),
        phase: 0,
        files: vec!["/opt/s/compose.yml".into()],
        override_path: "/opt/s/.deploy-s.override.yml".into(),
        services: vec![svc("app", vec!["/opt/s/app.env".into()]), svc("db", vec![])],
        reloads: vec![],
        health_timeout: 60,
    }];
    d
}

/// The input labels the plan writes for each service, from its override file.
fn labels(plan: &HostPlan) -> Vec<(String, String)> {
    let c = plan.changes.iter().find(|c| c.path.ends_with(".override.yml")).expect("an override file");
    let text = String::from_utf8(c.content.clone().unwrap()).unwrap();
    let mut out = Vec::new();
    let mut svc = String::new();
    for l in text.lines() {
        if let Some(s) = l.strip_prefix("  ").and_then(|s| s.strip_suffix(':')).filter(|s| !s.starts_with(' ')) {
            svc = s.to_string();
        }
        if let Some(h) = l.trim().strip_prefix("deploy.inputs: ") {
            out.push((svc.clone(), h.trim_matches('"').to_string()));
        }
    }
    out
}

#[test]
fn an_env_file_change_recreates_exactly_the_services_that_read_it() {
    let compose = "compose\tv2\n";
    let first = plan_host(&compose_host("X=1\n"), &remote(compose)).unwrap();
    let kinds: Vec<ServiceActionKind> = first.services.iter().map(|a| a.action).collect();
    assert_eq!(kinds, vec![ServiceActionKind::Create, ServiceActionKind::Create]);
    // the containers as the first deploy left them, then the env file changes
    let l = labels(&first);
    let containers: String = l.iter().map(|(s, h)| format!("C\tid-{s}\ts\t{s}\t{h}\trunning\t\n")).collect();
    let on_host = format!("{compose}{}{containers}", p_file("/opt/s/app.env", "644", "X=1\n"));
    let second = plan_host(&compose_host("X=2\n"), &remote(&on_host)).unwrap();
    assert_eq!(second.services.len(), 1, "{:?}", second.services);
    let a = &second.services[0];
    assert_eq!((a.service.as_str(), a.action), ("app", ServiceActionKind::Recreate));
    assert_eq!(a.reasons, vec!["env file /opt/s/app.env changed".to_string()]);
    // nothing changed: nothing to do
    let same = plan_host(&compose_host("X=1\n"), &remote(&on_host)).unwrap();
    assert!(same.services.is_empty(), "{:?}", same.services);
}

#[test]
fn a_stopped_container_is_started_and_one_made_by_hand_recreated() {
    let first = plan_host(&compose_host("X=1\n"), &remote("compose\tv2\n")).unwrap();
    let l = labels(&first);
    let on_host = format!(
        "compose\tv2\n{}{}C\tid-app\ts\tapp\t{}\texited\t\nC\tid-db\ts\tdb\t\trunning\t\n",
        p_file("/opt/s/app.env", "644", "X=1\n"),
        p_file("/opt/s/compose.yml", "644", "services: {}\n"),
        l[0].1
    );
    let plan = plan_host(&compose_host("X=1\n"), &remote(&on_host)).unwrap();
    let got: Vec<(&str, ServiceActionKind, &str)> =
        plan.services.iter().map(|a| (a.service.as_str(), a.action, a.reasons[0].as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("app", ServiceActionKind::Start, "its container is exited"),
            ("db", ServiceActionKind::Recreate, "its container was created outside deploy (no deploy.inputs label)"),
        ]
    );
}

// Containers compose made outside deploy (Ansible's docker_compose_v2) from
// the definition the host has now are adopted: nothing recreated, no labels
// file written; one whose definition differs, or whose input changes, is
// recreated.
#[test]
fn containers_compose_made_from_the_current_definition_are_adopted() {
    let files = format!(
        "compose\tv2\n{}{}",
        p_file("/opt/s/app.env", "644", "X=1\n"),
        p_file("/opt/s/compose.yml", "644", "services: {}\n")
    );
    let adopted = format!("{files}C\tid-app\ts\tapp\t\trunning\tyes\nC\tid-db\ts\tdb\t\trunning\tyes\n");
    let plan = plan_host(&compose_host("X=1\n"), &remote(&adopted)).unwrap();
    assert!(plan.services.is_empty(), "{:?}", plan.services);
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    // its env file changes: that service is recreated, the labels file written
    let plan = plan_host(&compose_host("X=2\n"), &remote(&adopted)).unwrap();
    let got: Vec<(&str, ServiceActionKind)> = plan.services.iter().map(|a| (a.service.as_str(), a.action)).collect();
    assert_eq!(got, vec![("app", ServiceActionKind::Recreate)]);
    assert_eq!(labels(&plan).len(), 2);
    // made from another definition than the host's files give: recreated
    let other = format!("{files}C\tid-app\ts\tapp\t\trunning\tno\nC\tid-db\ts\tdb\t\trunning\tyes\n");
    let plan = plan_host(&compose_host("X=1\n"), &remote(&other)).unwrap();
    let got: Vec<(&str, ServiceActionKind)> = plan.services.iter().map(|a| (a.service.as_str(), a.action)).collect();
    assert_eq!(got, vec![("app", ServiceActionKind::Recreate)]);
}

// Once deploy has written a project's labels file, a container without
// labels is drift (recreated by hand), never adopted.
#[test]
fn an_unlabelled_container_of_a_project_deploy_manages_is_drift() {
    let first = plan_host(&compose_host("X=1\n"), &remote("compose\tv2\n")).unwrap();
    let c = first.changes.iter().find(|c| c.path.ends_with(".override.yml")).unwrap();
    let text = String::from_utf8(c.content.clone().unwrap()).unwrap();
    let on_host = format!(
        "compose\tv2\n{}{}{}C\tid-app\ts\tapp\t\trunning\tyes\nC\tid-db\ts\tdb\t{}\trunning\t\n",
        p_file("/opt/s/app.env", "644", "X=1\n"),
        p_file("/opt/s/compose.yml", "644", "services: {}\n"),
        p_file("/opt/s/.deploy-s.override.yml", "644", &text),
        labels(&first)[1].1
    );
    let plan = plan_host(&compose_host("X=1\n"), &remote(&on_host)).unwrap();
    let got: Vec<(&str, ServiceActionKind)> = plan.services.iter().map(|a| (a.service.as_str(), a.action)).collect();
    assert_eq!(got, vec![("app", ServiceActionKind::Recreate)]);
}

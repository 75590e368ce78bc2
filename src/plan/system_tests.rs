//! Planning what is not a file, from a desired host and a probe reply.

use super::system::*;
use super::*;
use crate::load::system::{Presence, UnitState};
use crate::render::system::*;
use crate::render::DesiredFile;
use crate::util::sha256_hex;

use super::tests::{host, remote};

fn pkg(name: &str, version: Option<&str>, state: Presence) -> DesiredPackage {
    DesiredPackage {
        name: name.into(),
        version: version.map(Into::into),
        state,
        no_revert: false,
        role: "r".into(),
        phase: 0,
        selected: true,
    }
}

fn sys<'a>(plan: &'a HostPlan, name: &str) -> Vec<(&'a str, String)> {
    plan.system.iter().filter(|c| c.name == name).map(|c| (c.action.as_str(), c.reasons.join("; "))).collect()
}

#[test]
fn packages_install_upgrade_downgrade_remove_with_versions() {
    let mut d = host();
    d.system.packages = vec![
        pkg("hello", None, Presence::Present),
        pkg("tool", Some("2.0"), Presence::Present),
        pkg("old", Some("1.0"), Presence::Present),
        pkg("gone", None, Presence::Absent),
        pkg("same", None, Presence::Present),
    ];
    let r = remote(
        "pkg\thello\t-\t2.10-3\t2.10-3\npkg\ttool\t1.0\t2.0\t2.0 1.0\npkg\told\t2.0\t2.0\t2.0 1.0\n\
pkg\tgone\t1.0\t1.0\t1.0\npkg\tsame\t3\t4\t4 3\n",
    );
    let plan = plan_host(&d, &r).unwrap();
    assert_eq!(sys(&plan, "hello"), vec![("install", "2.10-3 (not installed)".to_string())]);
    assert_eq!(sys(&plan, "tool"), vec![("upgrade", "1.0 -> 2.0".to_string())]);
    assert_eq!(sys(&plan, "old"), vec![("downgrade", "2.0 -> 1.0".to_string())]);
    assert_eq!(sys(&plan, "gone"), vec![("remove", "1.0 installed".to_string())]);
    assert!(sys(&plan, "same").is_empty(), "present at any version: nothing to do");
    // one apt-get install for the phase, its undo removing or downgrading each
    let ops: Vec<&Op> = plan.system.iter().flat_map(|c| &c.ops).collect();
    let install: Vec<&&Op> = ops.iter().filter(|o| o.argv.contains(&"install".to_string())).collect();
    assert_eq!(install.len(), 1, "{ops:#?}");
    assert!(
        install[0].argv.ends_with(&["hello=2.10-3".into(), "tool=2.0".into(), "old=1.0".into()]),
        "{:?}",
        install[0].argv
    );
    assert_eq!(install[0].undo.len(), 3);
    assert!(install[0].undo[1].ends_with(&["install".into(), "tool=1.0".into()]));
}

#[test]
fn a_package_a_revert_cannot_undo_is_refused_under_the_dead_man_switch() {
    let mut d = host();
    d.system.packages = vec![pkg("tool", Some("2.0"), Presence::Present)];
    // 1.0 is installed, but the archive only has 2.0 now
    let plan = plan_host(&d, &remote("pkg\ttool\t1.0\t2.0\t2.0\n")).unwrap();
    assert!(!plan.system[0].revertible);
    assert!(plan.system[0].reasons.iter().any(|r| r == "not revertible: the archive no longer has 1.0"));
    assert_eq!(refuse_unrevertible(&plan, &[]), Ok(()));
    let e = refuse_unrevertible(&plan, &[(0, "hardening")]).unwrap_err();
    assert!(e.starts_with("package tool (1.0 -> 2.0) could not be undone by a revert"), "{e}");
    assert!(e.contains("`revert: none`"), "{e}");
    d.system.packages[0].no_revert = true;
    let plan = plan_host(&d, &remote("pkg\ttool\t1.0\t2.0\t2.0\n")).unwrap();
    assert_eq!(refuse_unrevertible(&plan, &[(0, "hardening")]), Ok(()));
    // a name the archive does not know
    let e = plan_host(&d, &remote("")).unwrap_err();
    assert!(e.contains("version 2.0 is not in the host's apt archive"), "{e}");
}

fn unit(name: &str, restart_on: &[&str]) -> DesiredUnit {
    DesiredUnit {
        name: name.into(),
        user: None,
        file: Some(format!("/etc/systemd/system/{name}")),
        enabled: Some(true),
        state: Some(UnitState::Started),
        restart_on: restart_on.iter().map(|s| s.to_string()).collect(),
        reload_on: vec![],
        timeout: 30,
        role: "r".into(),
        phase: 0,
        selected: true,
    }
}

fn p_file(path: &str, content: &str) -> String {
    format!("P\tregular file\t644\t0\t0\t{path}\nH\t{}  {path}\n", sha256_hex(content.as_bytes()))
}

#[test]
fn exactly_the_units_whose_inputs_changed_restart() {
    let mut d = host();
    d.files = vec![
        DesiredFile::generated("/etc/web.conf", "r", "t", b"port 2\n".to_vec(), 0),
        DesiredFile::generated("/etc/worker.conf", "r", "t", b"same\n".to_vec(), 0),
        DesiredFile::generated("/etc/systemd/system/web.service", "r", "t", b"[Service]\n".to_vec(), 0),
        DesiredFile::generated("/etc/systemd/system/worker.service", "r", "t", b"[Service]\n".to_vec(), 0),
    ];
    d.system.units = vec![unit("web.service", &["/etc/web.conf"]), unit("worker.service", &["/etc/worker.conf"])];
    let probe = [
        p_file("/etc/web.conf", "port 1\n"),
        p_file("/etc/worker.conf", "same\n"),
        p_file("/etc/systemd/system/web.service", "[Service]\n"),
        p_file("/etc/systemd/system/worker.service", "[Service]\n"),
        "unit\tweb.service\tloaded\tactive\tenabled\t10\t0\nunit\tworker.service\tloaded\tactive\tenabled\t11\t0\n"
            .into(),
    ]
    .concat();
    let plan = plan_host(&d, &remote(&probe)).unwrap();
    assert_eq!(sys(&plan, "web.service"), vec![("restart", "/etc/web.conf changed".to_string())]);
    assert!(sys(&plan, "worker.service").is_empty());
    assert!(sys(&plan, "daemon-reload").is_empty(), "no unit file changed");
    // a restart is run again after a revert, with the old config back
    assert_eq!(
        plan.system[0].ops[0].rerun,
        vec!["systemctl reset-failed 'web.service'; systemctl restart 'web.service'".to_string()]
    );

    // a new unit: daemon-reload first, then enable and start, each undoable
    let plan = plan_host(&d, &remote(&p_file("/etc/web.conf", "port 2\n"))).unwrap();
    let order: Vec<(&str, &str)> = plan.system.iter().map(|c| (c.name.as_str(), c.action.as_str())).collect();
    assert_eq!(
        order,
        vec![
            ("daemon-reload", "reload"),
            ("web.service", "enable"),
            ("web.service", "start"),
            ("worker.service", "enable"),
            ("worker.service", "start")
        ]
    );
    let start = &plan.system[2].ops[0];
    assert_eq!(
        (start.argv.join(" "), start.undo[0].join(" ")),
        ("systemctl start web.service".into(), "systemctl stop web.service".into())
    );
}

#[test]
fn commands_run_when_their_guards_say_so_and_say_why() {
    let mut d = host();
    let cmd = |label: &str| DesiredCommand {
        label: label.into(),
        run: vec!["true".into()],
        creates: None,
        removes: None,
        unless: None,
        onlyif: None,
        timeout: 60,
        role: "r".into(),
        phase: 0,
        selected: true,
    };
    d.system.commands = vec![
        DesiredCommand { creates: Some("/done".into()), ..cmd("made") },
        DesiredCommand { creates: Some("/missing".into()), ..cmd("make") },
        DesiredCommand { unless: Some("test -e /x".into()), ..cmd("unless-ok") },
        DesiredCommand { unless: Some("test -e /y".into()), ..cmd("unless-fails") },
        DesiredCommand { onlyif: Some("false".into()), ..cmd("onlyif-fails") },
    ];
    let r = remote(&format!("{}guard\t2\tunless\t0\nguard\t3\tunless\t1\nguard\t4\tonlyif\t1\n", p_file("/done", "")));
    let plan = plan_host(&d, &r).unwrap();
    let ran: Vec<(&str, &str)> = plan.system.iter().map(|c| (c.name.as_str(), c.reasons[0].as_str())).collect();
    assert_eq!(ran, vec![("make", "because /missing is missing"), ("unless-fails", "because `test -e /y` exits 1")]);
    assert!(plan.system.iter().all(|c| !c.revertible));
}

#[test]
fn sysctl_compares_the_live_value_word_by_word() {
    let mut d = host();
    let s =
        |k: &str, v: &str| DesiredSysctl { key: k.into(), value: v.into(), role: "r".into(), phase: 0, selected: true };
    d.system.sysctl = vec![s("net.ipv4.ip_local_port_range", "1024 65000"), s("vm.swappiness", "10")];
    let r = remote("sysctl\tnet.ipv4.ip_local_port_range\t1024 65000\nsysctl\tvm.swappiness\t60\n");
    let plan = plan_host(&d, &r).unwrap();
    assert_eq!(sys(&plan, "vm.swappiness"), vec![("set", "live value 60 -> 10".to_string())]);
    assert_eq!(plan.system.len(), 1);
    let e = plan_host(&d, &remote("sysctl\tnet.ipv4.ip_local_port_range\t-\n")).unwrap_err();
    assert!(e.contains("no such key"), "{e}");
}

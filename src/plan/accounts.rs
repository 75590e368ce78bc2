//! Planning local groups and users: created, modified or deleted, each
//! with the command that puts the previous entry back.

use super::system::{argv, Op, Stage, SysChange, SysResource};
use crate::load::system::Presence;
use crate::plan::state::{Remote, UserEntry};
use crate::render::system::DesiredUser;
use crate::render::DesiredHost;

/// Plan the groups and users.
pub(crate) fn accounts(desired: &DesiredHost, remote: &Remote, out: &mut Vec<SysChange>) {
    let s = &remote.system;
    for g in desired.system.groups.iter().filter(|g| g.selected) {
        let cur = s.groups.get(&g.name).cloned().flatten();
        let (action, reason, op) = match (g.state, cur) {
            (Presence::Present, None) => {
                let mut a = argv(&["groupadd"]);
                if g.system {
                    a.push("--system".into());
                }
                if let Some(id) = g.gid {
                    a.extend(["-g".into(), id.to_string()]);
                }
                a.push(g.name.clone());
                ("create", "missing".to_string(), (Stage::Pre, a, vec![argv(&["groupdel", &g.name])]))
            }
            (Presence::Present, Some(gid)) => match g.gid {
                Some(want) if want != gid => (
                    "modify",
                    format!("gid {gid} -> {want}"),
                    (
                        Stage::Pre,
                        argv(&["groupmod", "-g", &want.to_string(), &g.name]),
                        vec![argv(&["groupmod", "-g", &gid.to_string(), &g.name])],
                    ),
                ),
                _ => continue,
            },
            (Presence::Absent, Some(gid)) => (
                "delete",
                format!("gid {gid}"),
                (Stage::Post, argv(&["groupdel", &g.name]), vec![argv(&["groupadd", "-g", &gid.to_string(), &g.name])]),
            ),
            (Presence::Absent, None) => continue,
        };
        let (stage, a, undo) = op;
        out.push(SysChange {
            resource: SysResource::Group,
            name: g.name.clone(),
            action: action.into(),
            reasons: vec![reason],
            role: g.role.clone(),
            phase: g.phase,
            revertible: true,
            ops: vec![Op { stage, order: 0, label: format!("group {}", g.name), argv: a, undo, rerun: vec![] }],
        });
    }
    for u in desired.system.users.iter().filter(|u| u.selected) {
        let cur = s.users.get(&u.name).cloned().flatten();
        if let Some(c) = user_change(u, cur.as_ref(), remote) {
            out.push(c);
        }
    }
}

fn user_change(u: &DesiredUser, cur: Option<&UserEntry>, remote: &Remote) -> Option<SysChange> {
    let (action, reasons, stage, a, undo, revertible) = match (u.state, cur) {
        (Presence::Present, None) => {
            let (a, undo) = useradd(u, remote);
            ("create", vec!["missing".to_string()], Stage::Pre, a, undo, true)
        }
        (Presence::Present, Some(c)) => {
            let (a, back, reasons) = usermod(u, c)?;
            ("modify", reasons, Stage::Pre, a, vec![back], true)
        }
        (Presence::Absent, Some(c)) => {
            let mut back = argv(&["useradd", "-M", "-u", &c.uid.to_string(), "-g", &c.gid.to_string()]);
            back.extend(argv(&["-d", &c.home, "-s", &c.shell]));
            let supp: Vec<&str> = c.groups.iter().filter(|g| **g != c.group).map(|s| s.as_str()).collect();
            if !supp.is_empty() {
                back.extend(["-G".into(), supp.join(",")]);
            }
            back.push(u.name.clone());
            let reasons = vec![
                format!("uid {}, home {} kept", c.uid, c.home),
                "a revert recreates the account, but not its password".into(),
            ];
            // its own systemd (a lingering user's) goes first: userdel
            // refuses a user with processes
            let del = "systemctl stop \"user@$(id -u \"$1\").service\" 2>/dev/null; rm -f \"/var/lib/systemd/linger/$1\"; userdel \"$1\"";
            ("delete", reasons, Stage::Post, argv(&["sh", "-c", del, "userdel", &u.name]), vec![back], false)
        }
        (Presence::Absent, None) => return None,
    };
    Some(SysChange {
        resource: SysResource::User,
        name: u.name.clone(),
        action: action.into(),
        reasons,
        role: u.role.clone(),
        phase: u.phase,
        revertible,
        ops: vec![Op { stage, order: 1, label: format!("user {}", u.name), argv: a, undo, rerun: vec![] }],
    })
}

/// `useradd` for a user that does not exist, and its undo.
fn useradd(u: &DesiredUser, remote: &Remote) -> (Vec<String>, Vec<Vec<String>>) {
    let home = u.home.clone().unwrap_or_else(|| format!("/home/{}", u.name));
    let mut a = argv(&["useradd"]);
    if u.system {
        a.push("--system".into());
    }
    if let Some(id) = u.uid {
        a.extend(["-u".into(), id.to_string()]);
    }
    match &u.group {
        Some(g) => a.extend(["-g".into(), g.clone()]),
        None => a.push("-U".into()),
    }
    if let Some(gs) = u.groups.as_ref().filter(|g| !g.is_empty()) {
        a.extend(["-G".into(), gs.join(",")]);
    }
    if let Some(sh) = &u.shell {
        a.extend(["-s".into(), sh.clone()]);
    }
    a.extend(["-d".into(), home.clone()]);
    // a home of its own from /etc/skel, unless one is there already (which
    // the undo then leaves too)
    let keep = u.system || remote.paths.contains_key(&home);
    a.push(if keep { "-M".into() } else { "-m".into() });
    a.push(u.name.clone());
    let undo = if keep { argv(&["userdel", &u.name]) } else { argv(&["userdel", "-r", &u.name]) };
    (a, vec![undo])
}

/// `usermod` for what differs, the `usermod` back, and the reasons; None
/// when nothing differs.
fn usermod(u: &DesiredUser, c: &UserEntry) -> Option<(Vec<String>, Vec<String>, Vec<String>)> {
    let (mut a, mut back, mut reasons) = (argv(&["usermod"]), argv(&["usermod"]), vec![]);
    let mut field = |flag: &str, what: &str, was: String, want: Option<String>| {
        if let Some(w) = want.filter(|w| *w != was) {
            reasons.push(format!("{what} {was} -> {w}"));
            a.extend([flag.to_string(), w]);
            back.extend([flag.to_string(), was]);
        }
    };
    field("-u", "uid", c.uid.to_string(), u.uid.map(|i| i.to_string()));
    field("-g", "group", c.group.clone(), u.group.clone());
    field("-s", "shell", c.shell.clone(), u.shell.clone());
    field("-d", "home", c.home.clone(), u.home.clone());
    if let Some(gs) = &u.groups {
        let primary = u.group.as_ref().unwrap_or(&c.group);
        let mut have: Vec<&str> = c.groups.iter().filter(|g| *g != &c.group).map(|s| s.as_str()).collect();
        let mut want: Vec<&str> = gs.iter().filter(|g| *g != primary).map(|s| s.as_str()).collect();
        have.sort();
        want.sort();
        if have != want {
            let show = |v: &[&str]| if v.is_empty() { "(none)".to_string() } else { v.join(",") };
            reasons.push(format!("groups {} -> {}", show(&have), show(&want)));
            a.extend(["-G".into(), want.join(",")]);
            back.extend(["-G".into(), have.join(",")]);
        }
    }
    if reasons.is_empty() {
        return None;
    }
    a.push(u.name.clone());
    back.push(u.name.clone());
    Some((a, back, reasons))
}

//! Planning what is not a file: packages, units, users, groups, live
//! sysctl values and commands. Each change carries the argv the host runs,
//! the argv that undoes it (journaled before it runs, so a failed phase or
//! the dead-man switch can undo it) and what must run again after a revert
//! restored the files (a unit restart).

use serde::Serialize;

use crate::load::system::{Presence, UnitState};
use crate::plan::state::{Remote, SystemState, UserEntry};
use crate::render::system::*;
use crate::render::DesiredHost;

/// The kind of resource of a system change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SysResource {
    Package,
    Unit,
    User,
    Group,
    Sysctl,
    Command,
}

/// When in its phase an operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Stage {
    /// Before the phase's files (users and groups the files are owned by).
    Pre,
    /// After the files (packages, live values, units, commands).
    Post,
}

/// One operation for the host: an argv, its undo, what to re-run after a revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Op {
    pub(crate) stage: Stage,
    /// Order within the stage (groups before users, packages before units).
    pub(crate) order: u8,
    pub(crate) label: String,
    pub(crate) argv: Vec<String>,
    /// Argvs that undo it, run in order by a revert.
    pub(crate) undo: Vec<Vec<String>>,
    /// Shell commands run again after a revert restored the files.
    pub(crate) rerun: Vec<String>,
}

/// One change of something that is not a file.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SysChange {
    pub(crate) resource: SysResource,
    pub(crate) name: String,
    /// install, upgrade, downgrade, remove, create, modify, delete, start,
    /// stop, restart, reload, enable, disable, set, run.
    pub(crate) action: String,
    /// Why, in words.
    pub(crate) reasons: Vec<String>,
    pub(crate) role: String,
    pub(crate) phase: usize,
    /// Whether a revert can undo it.
    pub(crate) revertible: bool,
    /// What the host runs.
    #[serde(skip)]
    pub(crate) ops: Vec<Op>,
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

const APT: [&str; 10] = [
    "env",
    "DEBIAN_FRONTEND=noninteractive",
    "apt-get",
    "-q",
    "-y",
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
    "--allow-downgrades",
];

fn apt(verb: &str, args: &[String]) -> Vec<String> {
    let mut v = argv(&APT);
    v.push(verb.into());
    v.extend(args.iter().cloned());
    v
}

/// Compare Debian versions as dpkg does (epoch, upstream, revision; `~`
/// sorts before everything, letters before other characters).
pub(crate) fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<char>) -> i32 {
        match c {
            Some('~') => -1,
            None => 0,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(mut a: &str, mut b: &str) -> std::cmp::Ordering {
        while !a.is_empty() || !b.is_empty() {
            let (na, nb) = (
                a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len()),
                b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len()),
            );
            let (mut ca, mut cb) = (a[..na].chars(), b[..nb].chars());
            loop {
                let (x, y) = (ca.next(), cb.next());
                if x.is_none() && y.is_none() {
                    break;
                }
                match order(x).cmp(&order(y)) {
                    std::cmp::Ordering::Equal => {}
                    o => return o,
                }
            }
            (a, b) = (&a[na..], &b[nb..]);
            let (da, db) = (
                a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len()),
                b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len()),
            );
            let (x, y) = (a[..da].parse::<u128>().unwrap_or(0), b[..db].parse::<u128>().unwrap_or(0));
            match x.cmp(&y) {
                std::cmp::Ordering::Equal => {}
                o => return o,
            }
            (a, b) = (&a[da..], &b[db..]);
        }
        std::cmp::Ordering::Equal
    }
    let ((ea, ua, ra), (eb, ub, rb)) = (split(a), split(b));
    ea.cmp(&eb).then_with(|| part(ua, ub)).then_with(|| part(ra, rb))
}

/// Plan the packages: one install and one remove per phase, whatever the count.
pub(crate) fn packages(desired: &DesiredHost, remote: &Remote, out: &mut Vec<SysChange>) -> Result<(), String> {
    let s = &remote.system;
    for p in desired.system.packages.iter().filter(|p| p.selected) {
        if s.no_apt {
            return Err(format!("package {}: the host has no apt (apt-cache not found)", p.name));
        }
        let st = s.packages.get(&p.name).cloned().unwrap_or_default();
        let (action, target, undo): (&str, Option<String>, Option<Vec<String>>) = match p.state {
            Presence::Present => {
                let target = match &p.version {
                    Some(v) if st.installed.as_deref() == Some(v) => continue,
                    None if st.installed.is_some() => continue,
                    Some(v) if !st.available.contains(v) => {
                        return Err(format!(
                            "package {}: version {v} is not in the host's apt archive (it has: {})",
                            p.name,
                            if st.available.is_empty() { "none".into() } else { st.available.join(", ") }
                        ))
                    }
                    Some(v) => v.clone(),
                    None => st.candidate.clone().ok_or_else(|| {
                        format!(
                            "package {}: the host's apt archive has no such package (`apt-cache policy {}` knows no version); check the name, or run `apt-get update` on the host",
                            p.name, p.name
                        )
                    })?,
                };
                match &st.installed {
                    None => ("install", Some(target), Some(apt("remove", std::slice::from_ref(&p.name)))),
                    Some(was) => {
                        let up = compare_versions(&target, was) == std::cmp::Ordering::Greater;
                        let undo = st.available.contains(was).then(|| apt("install", &[format!("{}={was}", p.name)]));
                        (if up { "upgrade" } else { "downgrade" }, Some(target), undo)
                    }
                }
            }
            Presence::Absent => match &st.installed {
                None => continue,
                Some(was) => {
                    let undo = st.available.contains(was).then(|| apt("install", &[format!("{}={was}", p.name)]));
                    ("remove", None, undo)
                }
            },
        };
        let mut reasons = vec![match (&st.installed, &target) {
            (None, Some(t)) => format!("{t} (not installed)"),
            (Some(w), Some(t)) => format!("{w} -> {t}"),
            (Some(w), None) => format!("{w} installed"),
            (None, None) => String::new(),
        }];
        if undo.is_none() && !p.no_revert {
            reasons.push(format!(
                "not revertible: the archive no longer has {}",
                st.installed.as_deref().unwrap_or("the old version")
            ));
        }
        if p.no_revert {
            reasons.push("a revert leaves it (revert: none)".into());
        }
        let label = format!("package {}", p.name);
        let arg = match &target {
            Some(t) => format!("{}={t}", p.name),
            None => p.name.clone(),
        };
        let op = Op {
            stage: Stage::Post,
            order: 0,
            label,
            argv: apt(if target.is_some() { "install" } else { "remove" }, &[arg]),
            undo: if p.no_revert { vec![] } else { undo.iter().cloned().collect() },
            rerun: vec![],
        };
        out.push(SysChange {
            resource: SysResource::Package,
            name: p.name.clone(),
            action: action.into(),
            reasons,
            role: p.role.clone(),
            phase: p.phase,
            revertible: undo.is_some() || p.no_revert,
            ops: vec![op],
        });
    }
    Ok(())
}

/// Merge each phase's package operations into one apt-get install and one
/// apt-get remove (dpkg resolves them together, and runs once).
pub(crate) fn merge_package_ops(changes: &mut [SysChange]) {
    let phases: Vec<usize> = changes.iter().map(|c| c.phase).collect();
    for phase in phases {
        for verb in ["install", "remove"] {
            let idx: Vec<usize> = (0..changes.len())
                .filter(|&i| {
                    changes[i].phase == phase
                        && changes[i].resource == SysResource::Package
                        && changes[i].ops.first().is_some_and(|o| o.argv.get(APT.len()).is_some_and(|v| v == verb))
                })
                .collect();
            if idx.len() < 2 {
                continue;
            }
            let mut args: Vec<String> = Vec::new();
            let mut undo = Vec::new();
            for &i in &idx {
                let o = changes[i].ops.remove(0);
                args.extend(o.argv[APT.len() + 1..].iter().cloned());
                undo.extend(o.undo);
            }
            let label = format!("packages {}", args.join(" "));
            changes[idx[0]].ops.push(Op {
                stage: Stage::Post,
                order: 0,
                label,
                argv: apt(verb, &args),
                undo,
                rerun: vec![],
            });
        }
    }
}

/// Plan the sysctl values: the live value, set when it differs (the
/// sysctl.d file is planned as a file).
pub(crate) fn sysctl(desired: &DesiredHost, s: &SystemState, out: &mut Vec<SysChange>) -> Result<(), String> {
    for d in desired.system.sysctl.iter().filter(|d| d.selected) {
        let live = match s.sysctl.get(&d.key) {
            Some(Some(v)) => v.clone(),
            _ => {
                return Err(format!(
                    "sysctl {}: this host's kernel has no such key (/proc/sys/{} is missing)",
                    d.key,
                    d.key.replace('.', "/")
                ))
            }
        };
        if live.split_whitespace().collect::<Vec<_>>().join(" ") == d.value {
            continue;
        }
        let path = format!("/proc/sys/{}", d.key.replace('.', "/"));
        let set = |v: &str| argv(&["sh", "-c", "printf '%s\\n' \"$1\" >\"$2\"", "sysctl", v, &path]);
        out.push(SysChange {
            resource: SysResource::Sysctl,
            name: d.key.clone(),
            action: "set".into(),
            reasons: vec![format!("live value {live} -> {}", d.value)],
            role: d.role.clone(),
            phase: d.phase,
            revertible: true,
            ops: vec![Op {
                stage: Stage::Post,
                order: 1,
                label: format!("sysctl {}", d.key),
                argv: set(&d.value),
                undo: vec![set(&live)],
                rerun: vec![],
            }],
        });
    }
    Ok(())
}

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
    let home = u.home.clone().unwrap_or_else(|| format!("/home/{}", u.name));
    let (action, reasons, stage, a, undo, revertible) = match (u.state, cur) {
        (Presence::Present, None) => {
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
            // a home of its own from /etc/skel, unless one is there already
            let existed = remote.paths.contains_key(&home);
            a.push(if u.system || existed { "-M".into() } else { "-m".into() });
            a.push(u.name.clone());
            let undo =
                if u.system || existed { argv(&["userdel", &u.name]) } else { argv(&["userdel", "-r", &u.name]) };
            ("create", vec!["missing".to_string()], Stage::Pre, a, vec![undo], true)
        }
        (Presence::Present, Some(c)) => {
            let mut a = argv(&["usermod"]);
            let mut back = argv(&["usermod"]);
            let mut reasons = vec![];
            if let Some(id) = u.uid.filter(|id| *id != c.uid) {
                reasons.push(format!("uid {} -> {id}", c.uid));
                a.extend(["-u".into(), id.to_string()]);
                back.extend(["-u".into(), c.uid.to_string()]);
            }
            if let Some(g) = u.group.as_ref().filter(|g| **g != c.group) {
                reasons.push(format!("group {} -> {g}", c.group));
                a.extend(["-g".into(), g.clone()]);
                back.extend(["-g".into(), c.group.clone()]);
            }
            if let Some(sh) = u.shell.as_ref().filter(|s| **s != c.shell) {
                reasons.push(format!("shell {} -> {sh}", c.shell));
                a.extend(["-s".into(), sh.clone()]);
                back.extend(["-s".into(), c.shell.clone()]);
            }
            if let Some(h) = u.home.as_ref().filter(|h| **h != c.home) {
                reasons.push(format!("home {} -> {h}", c.home));
                a.extend(["-d".into(), h.clone()]);
                back.extend(["-d".into(), c.home.clone()]);
            }
            if let Some(gs) = &u.groups {
                let primary = u.group.as_ref().unwrap_or(&c.group);
                let have: Vec<&String> = c.groups.iter().filter(|g| *g != &c.group).collect();
                let mut want: Vec<&String> = gs.iter().filter(|g| *g != primary).collect();
                let mut h = have.clone();
                h.sort();
                want.sort();
                if h != want {
                    reasons.push(format!(
                        "groups {} -> {}",
                        if have.is_empty() {
                            "(none)".into()
                        } else {
                            h.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
                        },
                        if want.is_empty() {
                            "(none)".into()
                        } else {
                            want.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
                        }
                    ));
                    a.extend(["-G".into(), want.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")]);
                    back.extend(["-G".into(), have.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")]);
                }
            }
            if reasons.is_empty() {
                return None;
            }
            a.push(u.name.clone());
            back.push(u.name.clone());
            ("modify", reasons, Stage::Pre, a, vec![back], true)
        }
        (Presence::Absent, Some(c)) => {
            let mut back = argv(&[
                "useradd",
                "-M",
                "-u",
                &c.uid.to_string(),
                "-g",
                &c.gid.to_string(),
                "-d",
                &c.home,
                "-s",
                &c.shell,
            ]);
            let supp: Vec<&str> = c.groups.iter().filter(|g| **g != c.group).map(|s| s.as_str()).collect();
            if !supp.is_empty() {
                back.extend(["-G".into(), supp.join(",")]);
            }
            back.push(u.name.clone());
            let reasons = vec![
                format!("uid {}, home {} kept", c.uid, c.home),
                "a revert recreates the account, but not its password".into(),
            ];
            ("delete", reasons, Stage::Post, argv(&["userdel", &u.name]), vec![back], false)
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

/// Plan the commands from their guards, as the probe evaluated them.
pub(crate) fn commands(desired: &DesiredHost, remote: &Remote, out: &mut Vec<SysChange>) {
    for (i, c) in desired.system.commands.iter().enumerate().filter(|(_, c)| c.selected) {
        let mut reasons = Vec::new();
        let exists = |p: &String| remote.paths.contains_key(p);
        if let Some(p) = &c.creates {
            if exists(p) {
                continue;
            }
            reasons.push(format!("because {p} is missing"));
        }
        if let Some(p) = &c.removes {
            if !exists(p) {
                continue;
            }
            reasons.push(format!("because {p} exists"));
        }
        let rc = remote.system.guards.get(&i).copied().unwrap_or(-1);
        if let Some(g) = &c.unless {
            if rc == 0 {
                continue;
            }
            reasons.push(format!("because `{g}` exits {rc}"));
        }
        if let Some(g) = &c.onlyif {
            if rc != 0 {
                continue;
            }
            reasons.push(format!("because `{g}` succeeds"));
        }
        if reasons.is_empty() {
            reasons.push("always: true".into());
        }
        reasons.push("not revertible: a revert does not undo a command".into());
        let mut a = argv(&["timeout", &c.timeout.to_string()]);
        a.extend(c.run.iter().cloned());
        out.push(SysChange {
            resource: SysResource::Command,
            name: c.label.clone(),
            action: "run".into(),
            reasons,
            role: c.role.clone(),
            phase: c.phase,
            revertible: false,
            ops: vec![Op {
                stage: Stage::Post,
                order: 9,
                label: format!("command {}", c.label),
                argv: a,
                undo: vec![],
                rerun: vec![],
            }],
        });
    }
}

/// Plan the units. `changed` are the paths this plan writes.
pub(crate) fn units(
    desired: &DesiredHost,
    remote: &Remote,
    changed: &[(&str, usize)],
    out: &mut Vec<SysChange>,
) -> Result<(), String> {
    let s = &remote.system;
    let mut reload_phases: Vec<usize> = Vec::new();
    for u in desired.system.units.iter().filter(|u| u.selected) {
        if s.no_systemd {
            return Err(format!("unit {}: the host does not run systemd", u.name));
        }
        let st = s.units.get(&u.name).cloned().unwrap_or_default();
        let file_changed = u.file.as_ref().is_some_and(|f| changed.iter().any(|(p, _)| p == f));
        if file_changed && !reload_phases.contains(&u.phase) {
            reload_phases.push(u.phase);
        }
        if st.load == "not-found" && u.file.is_none() {
            return Err(format!(
                "unit {}: the host has no such unit, and role {} gives no unit file (template:, src: or content:)",
                u.name, u.role
            ));
        }
        let mut ops: Vec<(String, String, Op)> = Vec::new();
        let sc = |a: &[&str]| {
            let mut v = argv(&["systemctl"]);
            v.extend(argv(a));
            v
        };
        let op = |label: &str, a: Vec<String>, undo: Vec<Vec<String>>, rerun: Vec<String>| Op {
            stage: Stage::Post,
            order: 3,
            label: format!("unit {} {label}", u.name),
            argv: a,
            undo,
            rerun,
        };
        let enabled = st.file_state == "enabled" || st.file_state == "enabled-runtime";
        match u.enabled {
            Some(true) if !enabled => ops.push((
                "enable".into(),
                format!("{} -> enabled", if st.file_state.is_empty() { "new" } else { &st.file_state }),
                op("enable", sc(&["enable", "--quiet", &u.name]), vec![sc(&["disable", "--quiet", &u.name])], vec![]),
            )),
            Some(false) if enabled => ops.push((
                "disable".into(),
                "enabled -> disabled".into(),
                op("disable", sc(&["disable", "--quiet", &u.name]), vec![sc(&["enable", "--quiet", &u.name])], vec![]),
            )),
            _ => {}
        }
        let active = st.active == "active" || st.active == "activating" || st.active == "reloading";
        let inputs: Vec<&str> = u
            .file
            .iter()
            .chain(&u.restart_on)
            .map(|s| s.as_str())
            .filter(|p| changed.iter().any(|(c, _)| c == p))
            .collect();
        let reloads: Vec<&str> =
            u.reload_on.iter().map(|s| s.as_str()).filter(|p| changed.iter().any(|(c, _)| c == p)).collect();
        match u.state {
            Some(UnitState::Started) if !active => ops.push((
                "start".into(),
                format!("{} -> started", if st.active.is_empty() { "new" } else { &st.active }),
                op("start", sc(&["start", &u.name]), vec![sc(&["stop", &u.name])], vec![]),
            )),
            Some(UnitState::Stopped) if active => ops.push((
                "stop".into(),
                format!("{} -> stopped", st.active),
                op("stop", sc(&["stop", &u.name]), vec![sc(&["start", &u.name])], vec![]),
            )),
            Some(UnitState::Stopped) => {}
            // running (or to be left as it is): restart or reload when an input changed
            _ if !inputs.is_empty() => ops.push((
                "restart".into(),
                format!("{} changed", inputs.join(", ")),
                op(
                    "restart",
                    sc(&["try-restart", &u.name]),
                    vec![],
                    vec![format!("systemctl try-restart '{}'", u.name)],
                ),
            )),
            _ if !reloads.is_empty() => ops.push((
                "reload".into(),
                format!("{} changed", reloads.join(", ")),
                op(
                    "reload",
                    sc(&["try-reload-or-restart", &u.name]),
                    vec![],
                    vec![format!("systemctl try-reload-or-restart '{}'", u.name)],
                ),
            )),
            _ => {}
        }
        for (action, reason, o) in ops {
            out.push(SysChange {
                resource: SysResource::Unit,
                name: u.name.clone(),
                action,
                reasons: vec![reason],
                role: u.role.clone(),
                phase: u.phase,
                revertible: true,
                ops: vec![o],
            });
        }
    }
    for phase in reload_phases {
        let role = desired.system.units.iter().find(|u| u.phase == phase).map(|u| u.role.clone()).unwrap_or_default();
        out.push(SysChange {
            resource: SysResource::Unit,
            name: "daemon-reload".into(),
            action: "reload".into(),
            reasons: vec!["a unit file changed".into()],
            role,
            phase,
            revertible: true,
            ops: vec![Op {
                stage: Stage::Post,
                order: 2,
                label: "systemctl daemon-reload".into(),
                argv: argv(&["systemctl", "daemon-reload"]),
                undo: vec![],
                rerun: vec!["systemctl daemon-reload".into()],
            }],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::compare_versions;
    use std::cmp::Ordering::*;

    #[test]
    fn debian_versions_compare_as_dpkg_does() {
        assert_eq!(compare_versions("2.0", "1.0"), Greater);
        assert_eq!(compare_versions("1.0~rc1", "1.0"), Less);
        assert_eq!(compare_versions("1:1.0", "2.0"), Greater);
        assert_eq!(compare_versions("1.35.0-4+deb12u1", "1.35.0-4"), Greater);
        assert_eq!(compare_versions("1.10", "1.9"), Greater);
        assert_eq!(compare_versions("1.0a", "1.0+"), Less);
        assert_eq!(compare_versions("2.10-3", "2.10-3"), Equal);
    }
}

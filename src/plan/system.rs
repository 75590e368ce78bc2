//! Planning what is not a file: packages, units, users, groups, live
//! sysctl values and commands. Each change carries the argv the host runs,
//! the argv that undoes it (journaled before it runs, so a failed phase or
//! the dead-man switch can undo it) and what must run again after a revert
//! restored the files (a unit restart).

use serde::Serialize;

use crate::plan::state::{Remote, SystemState};
use crate::render::DesiredHost;

pub(crate) use super::accounts::accounts;
pub(crate) use super::packages::{merge_package_ops, packages, refuse_unrevertible};
pub(crate) use super::units::units;

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

pub(super) fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
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

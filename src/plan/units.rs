//! Planning systemd units: enabled, started or stopped, and restarted or
//! reloaded exactly when a path they read changes.

use super::system::{argv, Op, Stage, SysChange, SysResource};
use crate::load::system::UnitState;
use crate::plan::state::{unit_key, Remote, UnitStatus};
use crate::render::system::DesiredUnit;
use crate::render::DesiredHost;

/// Runs `systemctl --user ARGS` as USER against its own systemd, through
/// its private socket: a minimal Debian has no user D-Bus, which
/// `systemctl --user -M USER@` needs.
const USER_SYSTEMCTL: &str =
    "u=$1; shift; exec runuser -u \"$u\" -- env XDG_RUNTIME_DIR=\"/run/user/$(id -u \"$u\")\" systemctl --user \"$@\"";

/// `systemctl`, or the user's own for a unit of a user's systemd.
fn systemctl(user: Option<&str>) -> Vec<String> {
    match user {
        Some(u) => argv(&["sh", "-c", USER_SYSTEMCTL, "systemctl-user", u]),
        None => argv(&["systemctl"]),
    }
}

/// The same as a shell command prefix (names are checked: no quotes in them).
fn systemctl_sh(user: Option<&str>) -> String {
    match user {
        Some(u) => format!("runuser -u '{u}' -- env XDG_RUNTIME_DIR=/run/user/$(id -u '{u}') systemctl --user"),
        None => "systemctl".into(),
    }
}

/// How the plan names a unit: `app.service`, or `app.service (user ops)`.
pub(crate) fn shown(u: &DesiredUnit) -> String {
    match &u.user {
        Some(user) => format!("{} (user {user})", u.name),
        None => u.name.clone(),
    }
}

/// The command that restarts a unit after a revert: as it was, running or not.
fn restart_again(u: &DesiredUnit, was_active: bool) -> String {
    let (sc, unit) = (systemctl_sh(u.user.as_deref()), &u.name);
    if was_active {
        format!("{sc} reset-failed '{unit}'; {sc} restart '{unit}'")
    } else {
        format!("{sc} try-restart '{unit}'")
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
    // (phase, user) whose systemd must re-read its unit files
    let mut reloads: Vec<(usize, Option<String>, String)> = Vec::new();
    let mut lingering: Vec<&str> = Vec::new();
    for u in desired.system.units.iter().filter(|u| u.selected) {
        if s.no_systemd {
            return Err(format!("unit {}: the host does not run systemd", u.name));
        }
        let st = s.units.get(&unit_key(u.user.as_deref(), &u.name)).cloned().unwrap_or_default();
        let is_changed = |p: &str| changed.iter().any(|(c, _)| *c == p);
        let key = (u.phase, u.user.clone());
        if u.file.as_deref().is_some_and(is_changed) && !reloads.iter().any(|(p, x, _)| (*p, x.clone()) == key) {
            reloads.push((u.phase, u.user.clone(), u.role.clone()));
        }
        if st.load == "not-found" && u.file.is_none() {
            return Err(format!(
                "unit {}: the host has no such unit, and role {} gives no unit file (template:, src: or content:)",
                shown(u),
                u.role
            ));
        }
        if let Some(user) = u.user.as_deref() {
            if s.lingers.get(user) != Some(&true) && !lingering.contains(&user) {
                lingering.push(user);
                out.push(linger(user, u));
            }
        }
        for (action, reason, o) in unit_ops(u, &st, &is_changed) {
            out.push(SysChange {
                resource: SysResource::Unit,
                name: shown(u),
                action,
                reasons: vec![reason],
                role: u.role.clone(),
                phase: u.phase,
                revertible: true,
                ops: vec![o],
            });
        }
    }
    for (phase, user, role) in reloads {
        let sc = systemctl(user.as_deref());
        out.push(SysChange {
            resource: SysResource::Unit,
            name: "daemon-reload".into(),
            action: "reload".into(),
            reasons: vec![match &user {
                Some(u) => format!("a unit file of user {u} changed"),
                None => "a unit file changed".into(),
            }],
            role,
            phase,
            revertible: true,
            ops: vec![Op {
                stage: Stage::Post,
                order: 3,
                label: match &user {
                    Some(u) => format!("user {u} systemd daemon-reload"),
                    None => "systemctl daemon-reload".into(),
                },
                argv: [sc, argv(&["daemon-reload"])].concat(),
                undo: vec![],
                rerun: vec![format!("{} daemon-reload", systemctl_sh(user.as_deref()))],
            }],
        });
    }
    Ok(())
}

/// A user whose units run without a login: lingering on, and its systemd
/// started now (loginctl starts it in the background).
fn linger(user: &str, u: &DesiredUnit) -> SysChange {
    let script = "loginctl enable-linger \"$1\" && systemctl start \"user@$(id -u \"$1\").service\"";
    SysChange {
        resource: SysResource::User,
        name: user.into(),
        action: "linger".into(),
        reasons: vec!["its own systemd runs its units without a login".into()],
        role: u.role.clone(),
        phase: u.phase,
        revertible: true,
        ops: vec![Op {
            stage: Stage::Post,
            order: 2,
            label: format!("user {user} linger"),
            argv: argv(&["sh", "-c", script, "linger", user]),
            // its systemd stopped first: userdel refuses a user with processes
            undo: vec![argv(&[
                "sh",
                "-c",
                "systemctl stop \"user@$(id -u \"$1\").service\"; loginctl disable-linger \"$1\"",
                "unlinger",
                user,
            ])],
            rerun: vec![],
        }],
    }
}

/// One unit's operations: (action, reason, op) for enable/disable, then
/// start/stop or restart/reload.
fn unit_ops(u: &DesiredUnit, st: &UnitStatus, is_changed: &dyn Fn(&str) -> bool) -> Vec<(String, String, Op)> {
    let sc = |a: &[&str]| [systemctl(u.user.as_deref()), argv(a)].concat();
    let op = |label: &str, a: Vec<String>, undo: Vec<Vec<String>>, rerun: Vec<String>| Op {
        stage: Stage::Post,
        order: 4,
        label: format!("unit {} {label}", shown(u)),
        argv: a,
        undo,
        rerun,
    };
    let was = |s: &str| if s.is_empty() { "new".to_string() } else { s.to_string() };
    let mut ops: Vec<(String, String, Op)> = Vec::new();
    let enabled = st.file_state == "enabled" || st.file_state == "enabled-runtime";
    match u.enabled {
        Some(true) if !enabled => ops.push((
            "enable".into(),
            format!("{} -> enabled", was(&st.file_state)),
            op("enable", sc(&["enable", "--quiet", &u.name]), vec![sc(&["disable", "--quiet", &u.name])], vec![]),
        )),
        Some(false) if enabled => ops.push((
            "disable".into(),
            "enabled -> disabled".into(),
            op("disable", sc(&["disable", "--quiet", &u.name]), vec![sc(&["enable", "--quiet", &u.name])], vec![]),
        )),
        _ => {}
    }
    let active = matches!(st.active.as_str(), "active" | "activating" | "reloading");
    let inputs: Vec<&str> = u.file.iter().chain(&u.restart_on).map(|s| s.as_str()).filter(|p| is_changed(p)).collect();
    let reloads: Vec<&str> = u.reload_on.iter().map(|s| s.as_str()).filter(|p| is_changed(p)).collect();
    // after a revert a restarted unit runs again with the old inputs; one that
    // was running is made to run again even if the new ones made it fail
    // (and hit its start limit)
    let again = vec![restart_again(u, active)];
    match u.state {
        Some(UnitState::Started) if !active => ops.push((
            "start".into(),
            format!("{} -> started", was(&st.active)),
            op("start", sc(&["start", &u.name]), vec![sc(&["stop", &u.name])], vec![]),
        )),
        Some(UnitState::Stopped) if active => ops.push((
            "stop".into(),
            format!("{} -> stopped", st.active),
            op("stop", sc(&["stop", &u.name]), vec![sc(&["start", &u.name])], vec![]),
        )),
        Some(UnitState::Stopped) => {}
        // running (or left as it is): restarted or reloaded when an input changed
        _ if !inputs.is_empty() => ops.push((
            "restart".into(),
            format!("{} changed", inputs.join(", ")),
            op("restart", sc(&["try-restart", &u.name]), vec![], again),
        )),
        _ if !reloads.is_empty() => ops.push((
            "reload".into(),
            format!("{} changed", reloads.join(", ")),
            op("reload", sc(&["try-reload-or-restart", &u.name]), vec![], again),
        )),
        _ => {}
    }
    ops
}

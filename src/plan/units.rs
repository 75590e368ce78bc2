//! Planning systemd units: enabled, started or stopped, and restarted or
//! reloaded exactly when a path they read changes.

use super::system::{argv, Op, Stage, SysChange, SysResource};
use crate::load::system::UnitState;
use crate::plan::state::{Remote, UnitStatus};
use crate::render::system::DesiredUnit;
use crate::render::DesiredHost;

/// The command that restarts a unit after a revert: as it was, running or not.
fn restart_again(unit: &str, was_active: bool) -> String {
    if was_active {
        format!("systemctl reset-failed '{unit}'; systemctl restart '{unit}'")
    } else {
        format!("systemctl try-restart '{unit}'")
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
        let is_changed = |p: &str| changed.iter().any(|(c, _)| *c == p);
        if u.file.as_deref().is_some_and(is_changed) && !reload_phases.contains(&u.phase) {
            reload_phases.push(u.phase);
        }
        if st.load == "not-found" && u.file.is_none() {
            return Err(format!(
                "unit {}: the host has no such unit, and role {} gives no unit file (template:, src: or content:)",
                u.name, u.role
            ));
        }
        for (action, reason, o) in unit_ops(u, &st, &is_changed) {
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

/// One unit's operations: (action, reason, op) for enable/disable, then
/// start/stop or restart/reload.
fn unit_ops(u: &DesiredUnit, st: &UnitStatus, is_changed: &dyn Fn(&str) -> bool) -> Vec<(String, String, Op)> {
    let sc = |a: &[&str]| [argv(&["systemctl"]), argv(a)].concat();
    let op = |label: &str, a: Vec<String>, undo: Vec<Vec<String>>, rerun: Vec<String>| Op {
        stage: Stage::Post,
        order: 3,
        label: format!("unit {} {label}", u.name),
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
    let again = vec![restart_again(&u.name, active)];
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

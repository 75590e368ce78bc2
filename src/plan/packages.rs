//! Planning apt packages: install, upgrade, downgrade or remove, one apt-get
//! per phase, each undone by a removal or a downgrade the archive allows.

use super::system::{argv, Op, Stage, SysChange, SysResource};
use crate::load::system::Presence;
use crate::plan::state::{PackageStatus, Remote};
use crate::render::system::DesiredPackage;
use crate::render::DesiredHost;

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
        let Some((action, target, undo)) = package_change(p, &st)? else { continue };
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
        let arg = match &target {
            Some(t) => format!("{}={t}", p.name),
            None => p.name.clone(),
        };
        let op = Op {
            stage: Stage::Post,
            order: 0,
            label: format!("package {}", p.name),
            argv: apt(if target.is_some() { "install" } else { "remove" }, &[arg]),
            undo: if p.no_revert { vec![] } else { undo.iter().cloned().collect() },
            rerun: vec![],
        };
        out.push(SysChange {
            resource: SysResource::Package,
            name: p.name.clone(),
            action: action.into(),
            reasons,
            role: desired.roles_of(&format!("package {}", p.name), &p.role),
            phase: p.phase,
            revertible: undo.is_some() || p.no_revert,
            ops: vec![op],
        });
    }
    Ok(())
}

/// What happens to one package: (action, version to install or None to
/// remove, the argv that undoes it if the archive allows); None when it is
/// as declared.
type PackageChange = (&'static str, Option<String>, Option<Vec<String>>);

fn package_change(p: &DesiredPackage, st: &PackageStatus) -> Result<Option<PackageChange>, String> {
    let back =
        |was: &str| st.available.iter().any(|v| v == was).then(|| apt("install", &[format!("{}={was}", p.name)]));
    if p.state == Presence::Absent {
        return Ok(st.installed.as_deref().map(|was| ("remove", None, back(was))));
    }
    let target = match &p.version {
        Some(v) if st.installed.as_deref() == Some(v) => return Ok(None),
        None if st.installed.is_some() => return Ok(None),
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
    Ok(Some(match &st.installed {
        None => ("install", Some(target), Some(apt("remove", std::slice::from_ref(&p.name)))),
        Some(was) => {
            let up = compare_versions(&target, was) == std::cmp::Ordering::Greater;
            (if up { "upgrade" } else { "downgrade" }, Some(target), back(was))
        }
    }))
}

/// A package change a revert cannot undo, in a phase under the dead-man
/// switch (`guarded`: index and name of those phases), is refused: the
/// switch promises the host goes back. `revert: none` says leaving it is fine.
pub(crate) fn refuse_unrevertible(plan: &crate::plan::HostPlan, guarded: &[(usize, &str)]) -> Result<(), String> {
    for c in plan.system.iter().filter(|c| c.resource == SysResource::Package && !c.revertible) {
        if let Some((_, name)) = guarded.iter().find(|(i, _)| *i == c.phase) {
            return Err(format!(
                "package {} ({}) could not be undone by a revert ({}), and phase {name} runs under the dead-man switch; nothing was changed. Add `revert: none` to it in role {}'s role.yml if leaving it is fine, or move it to a phase without the switch",
                c.name,
                c.reasons.first().cloned().unwrap_or_default(),
                c.reasons.iter().find(|r| r.starts_with("not revertible")).cloned().unwrap_or_default(),
                c.role
            ));
        }
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

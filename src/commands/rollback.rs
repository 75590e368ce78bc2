//! `deploy rollback ENV (--to ID | --last) [--force]`: put back the paths a
//! deploy changed, as its journals on each host recorded them before it,
//! as an ordinary deploy: a plan with diffs, the prompt, the lock, phases,
//! health gates, the dead-man switch of guarded phases, the audit log. The
//! containers and units that read the restored files are recreated or
//! restarted by the same rules as any deploy.

use crate::engine::{load_and_render, DeployArgs, Interrupt};
use crate::error::{Error, Result};
use crate::load::project::Id;
use crate::remote::journals::{Entry, Journals};
use crate::render::{DesiredAbsent, DesiredFile, DesiredHost};

/// Largest old file a rollback carries back (as a diff would show it).
const OLD_MAX: u64 = 1 << 20;

pub(crate) async fn rollback(args: DeployArgs, to: Option<String>, force: bool) -> Result<u8> {
    let stop = Interrupt::install(&args.env);
    let (loaded, desired) = load_and_render(&args)?;
    let hosts: Vec<String> = desired.iter().map(|d| d.host.clone()).collect();
    let target = to.clone().unwrap_or_else(|| "-".into());
    let replies = super::fanout::on_each(
        &loaded,
        &args,
        &hosts,
        "deploy-journals",
        crate::remote::journals::SCRIPT,
        vec![target, OLD_MAX.to_string()],
    )
    .await?;
    let phases = loaded.project.file.phases.len();
    let mut out = Vec::new();
    for (d, reply) in desired.into_iter().zip(replies) {
        let host = d.host.clone();
        let fail = |m: String| Error::Remote { host: host.clone(), message: m };
        let j =
            crate::remote::journals::parse_journals(&reply?).map_err(|m| fail(format!("unreadable journals: {m}")))?;
        let (d, notes) = restore(d, &j, to.as_deref(), phases, force).map_err(fail)?;
        for n in notes {
            crate::report::note(&format!("{host}: {n}"));
        }
        out.push(d);
    }
    let args = DeployArgs { rollback: true, ..args };
    super::deploy::execute(args, loaded, out, stop, Vec::new()).await
}

/// `desired` with only the paths of the target deploy selected, each as it
/// was before that deploy. Notes say what a rollback leaves alone.
fn restore(
    mut d: DesiredHost,
    j: &Journals,
    to: Option<&str>,
    phases: usize,
    force: bool,
) -> std::result::Result<(DesiredHost, Vec<String>), String> {
    let Some(id) = &j.target else {
        return Err(match to {
            Some(id) => format!(
                "no journal of deploy {id} on this host: it was pruned (deploy.yml's keep_journals), or that deploy never changed this host"
            ),
            None => "this host keeps no deploy journal: nothing to roll back".into(),
        });
    };
    if j.reverted {
        return Err(format!(
            "deploy {id} was already reverted on this host by its dead-man switch; nothing to roll back"
        ));
    }
    for f in &mut d.files {
        f.selected = false;
    }
    for x in &mut d.dirs {
        x.selected = false;
    }
    for a in &mut d.absent {
        a.selected = false;
    }
    // the roles' checks are the current repository's, written for the state
    // being rolled back from; containers and units are still waited for
    for c in &mut d.checks {
        c.selected = false;
    }
    let overrides: Vec<String> = d.compose.iter().map(|c| c.override_path.clone()).collect();
    let mut notes = Vec::new();
    for e in &j.entries {
        // the label override follows the restored inputs by itself
        if overrides.contains(&e.path) {
            continue;
        }
        if let Some(later) = j.later.get(&e.path) {
            if !force {
                return Err(format!(
                    "{} was changed again by the later deploy {later}: rolling back {id} alone would undo that too; roll back {later} first, or pass --force",
                    e.path
                ));
            }
        }
        let phase = e.phase.trim_start_matches('p').parse::<usize>().unwrap_or(0).min(phases.saturating_sub(1));
        if let Some(n) = entry(&mut d, j, e, phase, force)? {
            notes.push(n);
        }
    }
    Ok((d, notes))
}

/// Put one journal entry into `d`; a note when it is left alone.
fn entry(
    d: &mut DesiredHost,
    j: &Journals,
    e: &Entry,
    phase: usize,
    force: bool,
) -> std::result::Result<Option<String>, String> {
    let path = e.path.clone();
    match (e.kind.as_str(), e.was.as_str()) {
        ("F", "file") => {
            let old = j.old.get(&(e.phase.clone(), e.n.clone())).ok_or_else(|| format!("{path}: the journal lacks its saved copy"))?;
            let bytes = match &old.bytes {
                Ok(b) => b.clone(),
                Err(size) if force => return Ok(Some(format!("{path} left alone: its saved copy has {size} bytes"))),
                Err(size) => {
                    return Err(format!(
                        "{path}: the saved copy has {size} bytes, more than a rollback carries ({OLD_MAX}); restore it from the host's journal by hand, or pass --force to leave it"
                    ))
                }
            };
            d.absent.retain(|a| a.path != path);
            let role = d.file(&path).map(|f| f.role.clone()).unwrap_or_else(|| "rollback".into());
            d.files.retain(|f| f.dest != path);
            let mut f = DesiredFile::generated(&path, &role, "rollback", bytes, phase);
            (f.mode, f.owner, f.group) = (Some(old.mode), Some(Id::Num(old.uid)), Some(Id::Num(old.gid)));
            d.files.push(f);
        }
        ("F" | "D", "absent") => {
            d.files.retain(|f| f.dest != path);
            d.dirs.retain(|x| x.path != path);
            d.absent.retain(|a| a.path != path);
            let written = path.clone();
            d.absent.push(DesiredAbsent { path, role: "rollback".into(), phase, selected: true, force: false, written });
        }
        ("M", _) => {
            let m: Vec<&str> = e.meta.split(' ').collect();
            let [mode, uid, gid] = m[..] else { return Err(format!("{path}: bad journal line `{}`", e.meta)) };
            let mode = u32::from_str_radix(mode, 8).map_err(|_| format!("{path}: bad mode {mode}"))?;
            let (uid, gid) = (Id::Name(uid.into()), Id::Name(gid.into()));
            if let Some(f) = d.files.iter_mut().find(|f| f.dest == path) {
                (f.mode, f.owner, f.group, f.selected) = (Some(mode), Some(uid), Some(gid), true);
            } else if let Some(x) = d.dirs.iter_mut().find(|x| x.path == path) {
                (x.mode, x.owner, x.group, x.selected) = (Some(mode), Some(uid), Some(gid), true);
            } else {
                return Ok(Some(format!("{path}: owner and mode left as they are (no longer managed)")));
            }
        }
        ("R", _) if force => return Ok(Some(format!("{path} left removed"))),
        ("R", _) => {
            return Err(format!(
                "the deploy removed {path}; a rollback does not put removed trees back: restore it from the host's journal by hand, or pass --force to leave it removed"
            ))
        }
        // files staged beside a directory on another filesystem: nothing to undo
        ("T", _) => {}
        ("A", _) => return Ok(Some(format!("{path}: not rolled back (packages, users, units and commands converge with a deploy of the previous commit)"))),
        _ => return Ok(Some(format!("{path}: journal entry {} {} left alone", e.kind, e.was))),
    }
    Ok(None)
}

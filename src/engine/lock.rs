//! The host's deploy lock as the controller sees it: who holds it, the
//! error naming a holder, the audit line, and releasing it.

use super::*;

pub(crate) fn holder(id: &str) -> String {
    format!(
        "{}@{} pid={} started={} deploy={}",
        crate::util::user(),
        crate::util::hostname(),
        std::process::id(),
        crate::util::utc(crate::util::now()),
        id
    )
}

/// Explain a lock held by someone else, saying whether the holder is gone.
pub(crate) fn lock_error(host: &str, env: &str, who: &str) -> Error {
    lock_error_with(host, env, who, &[])
}

/// The lock holder in words: who, whether that process is gone, and how far
/// its deploy got on this host.
pub(crate) fn lock_holder_text(who: &str, journals: &[crate::plan::state::JournalState]) -> String {
    let mut msg = format!("another deploy holds the lock: {who}");
    let mine = crate::util::hostname();
    let stale =
        who.split_whitespace().find_map(|w| w.strip_prefix("pid=")).and_then(|p| p.parse::<u32>().ok()).is_some_and(
            |pid| who.contains(&format!("@{mine} ")) && !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        );
    if stale {
        msg.push_str(" (that process no longer runs on this machine: the lock is stale)");
    }
    for j in journals {
        msg.push_str(&format!("\n    {}", j.describe()));
    }
    msg
}

/// Explain a lock held by someone else, saying whether the holder is gone
/// and what its deploy did here.
pub(crate) fn lock_error_with(
    host: &str,
    env: &str,
    who: &str,
    journals: &[crate::plan::state::JournalState],
) -> Error {
    Error::Remote { host: host.into(), message: lock_holder_text(who, journals) }.hinted(format!(
        "wait for it to finish; if that deploy is gone (killed CI job, closed laptop), release the lock with `deploy unlock {env} --host {host}`"
    ))
}

pub(crate) fn audit_counts(plan: &HostPlan) -> (usize, usize, usize, usize, usize) {
    let (c, u, m, d) = plan.counts();
    (c, u, m, d, plan.services.len())
}

pub(crate) fn audit_line(args: &DeployArgs, id: &str, plan: &HostPlan) -> String {
    audit_line_counts(args, id, &audit_counts(plan))
}

pub(crate) fn audit_line_counts(args: &DeployArgs, id: &str, counts: &(usize, usize, usize, usize, usize)) -> String {
    let (c, u, m, d, s) = *counts;
    // what `deploy history` shows as the kind of run
    let toggle = match &args.toggle {
        Some(t) => format!(" toggle={}-{}", t.name, if t.on { "on" } else { "off" }),
        None if args.rollback => " toggle=rollback".into(),
        None => String::new(),
    };
    format!(
        "{} deploy={id} by={}@{} project_commit={} env={}{toggle} created={c} updated={u} attributes={m} removed={d} containers={s}",
        crate::util::utc(crate::util::now()),
        crate::util::user(),
        crate::util::hostname(),
        crate::util::git_commit(&args.root),
        args.env
    )
}

/// Write the audit line and release the lock (a no-op when the apply did
/// it); `keep` > 0 also prunes the host's old journals (after a success).
pub(crate) async fn release(ready: Ready, holder: &str, audit: &str, keep: usize) {
    // finish.sh releases only a lock this deploy holds
    if matches!(ready.lock_state(), LockState::Sent | LockState::Held) {
        let _ = ready.conn.run("deploy-finish", FINISH, &[holder, audit, &keep.to_string()], None).await;
    }
    ready.conn.close().await;
}

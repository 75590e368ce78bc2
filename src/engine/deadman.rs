//! The dead-man switch from the controller's side: arm the host's timer,
//! confirm over a fresh connection, or watch the host revert by itself.

use super::*;

pub(crate) use crate::remote::arm::Armed;

/// Arm the host's revert of deploy `id`, due in `secs` seconds.
pub(crate) async fn arm(r: &Ready, host: &str, run: &Run, secs: u64) -> Result<Armed> {
    let prefer = std::env::var("DEPLOY_DEADMAN_MECHANISM").unwrap_or_else(|_| "auto".into());
    // who and what, in the host's audit log before anything changes: a
    // controller killed from here on never writes its end line
    let counts = audit_counts(&r.plan);
    let line = audit_line_counts(&run.args, &run.id, &counts).replacen(" deploy=", " ARMED deploy=", 1);
    let args = [run.id.as_str(), &secs.to_string(), &prefer, &format!("{line} window={secs}s")];
    let out = r.run("deploy-arm", crate::remote::arm::SCRIPT, &args, Some(&crate::remote::arm::bundle())).await?;
    crate::remote::arm::parse_arm(&out.stdout).map_err(|why| Error::Remote {
        host: host.into(),
        message: format!(
            "cannot arm the dead-man switch, so nothing of the guarded phase was changed: {why} {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// Apply a host's plan, then settle its dead-man switch when a phase armed
/// it: confirm over a fresh connection, or wait for the host's own revert.
pub(crate) async fn stage2(r: &Ready, run: &Run, progress: &Progress) -> Result<HostReport> {
    let mut report = HostReport::default();
    let mut armed: Option<Armed> = None;
    if let Err(e) = phases_loop(r, run, progress, &mut report, &mut armed).await {
        if armed.is_none() {
            return Err(e);
        }
        report.failure = Some(Failure { phase: "(connection)".into(), what: error_text(&e), ..Default::default() });
    }
    let Some(a) = armed else { return Ok(report) };
    report.deadman.push(format!(
        "dead-man switch armed with {} ({}); the host reverts at {} unless confirmed",
        a.mechanism,
        a.handle,
        clock(a.deadline)
    ));
    if run.args.toggle.as_ref().is_some_and(|t| !t.confirm) {
        report.deadman.push(format!(
            "trial run (--no-confirm): not confirming; the host reverts this change by itself at {}",
            clock(a.deadline)
        ));
        report.keep_lock = true;
        return Ok(report);
    }
    let (dest, confirmed) = confirm(r, run, progress, &a).await;
    let why = match confirmed {
        Ok(()) => {
            report.deadman.push(format!(
                "confirmed over a fresh SSH connection to {dest}; cancelled exactly this deploy's {} timer",
                a.mechanism
            ));
            return Ok(report);
        }
        Err(why) => why,
    };
    // Unconfirmed is reverted: keep the lock (the revert releases it) and watch it happen.
    report.keep_lock = true;
    report.deadman.push(format!(
        "could NOT confirm over a fresh SSH connection to {dest} ({why}); the host will revert this deploy by itself at {}",
        clock(a.deadline)
    ));
    report.deadman.push(watch_revert(r, run, progress, &a).await);
    if report.failure.is_none() {
        report.failure = Some(Failure {
            phase: "confirm".into(),
            what: "not confirmed; the deploy was reverted".into(),
            ..Default::default()
        });
    }
    report.applied.clear();
    Ok(report)
}

/// Confirm over a NEW connection the way the next deploy (or, for a toggle
/// with confirm_via, the new mode's way in) reaches the host: ansible_port
/// even when this run came in through deploy_fallback_port. Returns where
/// it connected, and why it could not.
async fn confirm(r: &Ready, run: &Run, progress: &Progress, a: &Armed) -> (String, std::result::Result<(), String>) {
    let (desired, host) = (&r.desired, r.desired.host.as_str());
    let mut via = desired.connection.clone();
    if let Some(v) = &desired.confirm_via {
        via.address = v.clone();
    }
    let dest = match via.port {
        Some(p) => format!("{}:{p}", via.address),
        None => via.address.clone(),
    };
    progress.step(host, &format!("confirming over a fresh SSH connection to {dest}"));
    // A reloaded sshd re-executes itself and is briefly not listening: retry
    // what may be transient (refused, timed out) with pauses, but stop well
    // before the host's own revert fires; an authentication or host key
    // failure is an answer, not a hiccup.
    let give_up = a.deadline.saturating_sub(5).min(crate::util::now() + 60);
    let disarm = crate::remote::arm::DISARM;
    let answer = loop {
        let limit = Duration::from_secs(give_up.saturating_sub(crate::util::now()).clamp(5, 30));
        let res =
            crate::remote::ssh::run_fresh(host, &via, &run.args.ssh, "deploy-disarm", disarm, &[&run.id], limit).await;
        match &res {
            Err(Error::Connect { retryable: true, .. }) if crate::util::now() + 1 < give_up => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => break res,
        }
    };
    let result = match answer {
        Ok(o) => crate::remote::arm::parse_disarm(&o.stdout)
            .map(|_| ())
            .map_err(|why| format!("{why} {}", String::from_utf8_lossy(&o.stderr).trim()).trim().to_string()),
        Err(e) => Err(e.to_string()),
    };
    (dest, result)
}

/// Wait for the host's own revert of this deploy and check, over a fresh
/// connection, that it happened. Says what was seen.
async fn watch_revert(r: &Ready, run: &Run, progress: &Progress, a: &Armed) -> String {
    let host = r.desired.host.as_str();
    progress.step(host, &format!("unconfirmed: waiting for the host to revert at {}", clock(a.deadline)));
    let now = crate::util::now();
    if a.deadline > now {
        tokio::time::sleep(Duration::from_secs(a.deadline - now + 1)).await;
    }
    let check = format!("test -e /var/lib/deploy/journal/{}/reverted && echo REVERTED", run.id);
    // reverted, sshd is back where this run found it
    let mut back = r.desired.connection.clone();
    if let Some(fb) = r.conn.fallback {
        back.port = Some(fb);
    }
    let limit = crate::util::now() + 90;
    while crate::util::now() < limit {
        let ten = Duration::from_secs(10);
        if let Ok(o) = crate::remote::ssh::run_fresh(host, &back, &run.args.ssh, "deploy-check", &check, &[], ten).await
        {
            if String::from_utf8_lossy(&o.stdout).contains("REVERTED") {
                return "the host reverted the deploy by itself and a fresh connection gets in again; every path of this deploy is back".into();
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    format!(
        "the host did not answer a fresh connection within 90s after {}; check it from the provider console",
        clock(a.deadline)
    )
}

//! The dead-man switch from the controller's side: arm the host's timer,
//! confirm over a fresh connection, or watch the host revert by itself.

use super::*;

/// An armed dead-man timer on a host.
#[derive(Debug, Clone)]
pub struct Armed {
    /// systemd, at or sleeper.
    pub mechanism: String,
    /// Unit name, at job or process group.
    pub handle: String,
    /// When the host reverts (epoch seconds).
    pub deadline: u64,
}

pub(crate) async fn arm(r: &Ready, host: &str, id: &str, secs: u64, args: &DeployArgs) -> Result<Armed> {
    let prefer = std::env::var("DEPLOY_DEADMAN_MECHANISM").unwrap_or_else(|_| "auto".into());
    let _ = args;
    let out = r
        .run(
            "deploy-arm",
            crate::remote::apply::ARM,
            &[id, &secs.to_string(), &prefer],
            Some(&crate::remote::apply::arm_bundle()),
        )
        .await?;
    let text = crate::remote::protocol::body("arm", &out.stdout).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with("ARMED\t")).ok_or_else(|| Error::Remote {
        host: host.into(),
        message: format!(
            "cannot arm the dead-man switch, so nothing of the guarded phase was changed: {} {}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })?;
    let f: Vec<&str> = line.split('\t').collect();
    Ok(Armed {
        mechanism: f[1].into(),
        handle: f[2].into(),
        deadline: f.get(3).and_then(|d| d.parse().ok()).unwrap_or(0),
    })
}

pub(crate) async fn stage2(
    r: &Ready,
    desired: &DesiredHost,
    holder: &str,
    phases: &[PhaseInfo],
    args: &DeployArgs,
    progress: &Progress,
) -> Result<HostReport> {
    let host = desired.host.as_str();
    let id = id_of(holder);
    let mut report = HostReport::default();
    let mut armed: Option<Armed> = None;
    if let Err(e) = phases_loop(r, desired, holder, phases, args, progress, &mut report, &mut armed).await {
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
    if args.toggle.as_ref().is_some_and(|t| !t.confirm) {
        report.deadman.push(format!(
            "trial run (--no-confirm): not confirming; the host reverts this change by itself at {}",
            clock(a.deadline)
        ));
        report.keep_lock = true;
        return Ok(report);
    }
    // the way the next deploy (or, for a toggle with confirm_via, the new
    // mode's way in) reaches the host: ansible_port even when this run came
    // in through deploy_fallback_port
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
    let confirm = loop {
        let limit = Duration::from_secs(give_up.saturating_sub(crate::util::now()).clamp(5, 30));
        let r = crate::remote::ssh::run_fresh(
            host,
            &via,
            &args.ssh,
            "deploy-disarm",
            crate::remote::apply::DISARM,
            &[&id],
            limit,
        )
        .await;
        match &r {
            Err(Error::Connect { retryable: true, .. }) if crate::util::now() + 1 < give_up => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => break r,
        }
    };
    let why = match confirm {
        Ok(o) if crate::remote::protocol::body("disarm", &o.stdout).is_ok_and(|b| b.starts_with("DISARMED")) => {
            report.deadman.push(format!(
                "confirmed over a fresh SSH connection to {dest}; cancelled exactly this deploy's {} timer",
                a.mechanism
            ));
            return Ok(report);
        }
        Ok(o) => format!("{} {}", String::from_utf8_lossy(&o.stdout).trim(), String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => e.to_string(),
    };
    // Unconfirmed is reverted: keep the lock (the revert releases it) and watch it happen.
    report.keep_lock = true;
    report.deadman.push(format!(
        "could NOT confirm over a fresh SSH connection to {dest} ({why}); the host will revert this deploy by itself at {}",
        clock(a.deadline)
    ));
    progress.step(host, &format!("unconfirmed: waiting for the host to revert at {}", clock(a.deadline)));
    let now = crate::util::now();
    if a.deadline > now {
        tokio::time::sleep(Duration::from_secs(a.deadline - now + 1)).await;
    }
    let check = format!("test -e /var/lib/deploy/journal/{id}/reverted && echo REVERTED");
    // reverted, sshd is back where this run found it
    let mut back = desired.connection.clone();
    if let Some(fb) = r.conn.fallback {
        back.port = Some(fb);
    }
    let limit = crate::util::now() + 90;
    let mut outcome = format!(
        "the host did not answer a fresh connection within 90s after {}; check it from the provider console",
        clock(a.deadline)
    );
    while crate::util::now() < limit {
        if let Ok(o) =
            crate::remote::ssh::run_fresh(host, &back, &args.ssh, "deploy-check", &check, &[], Duration::from_secs(10))
                .await
        {
            if String::from_utf8_lossy(&o.stdout).contains("REVERTED") {
                outcome = "the host reverted the deploy by itself and a fresh connection gets in again; every path of this deploy is back".into();
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    report.deadman.push(outcome);
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

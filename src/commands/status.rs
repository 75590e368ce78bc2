//! `deploy status ENV [--limit H] [--output json]`: what each host records
//! about deploys (the lock, pending reverts, toggles, recent audit lines),
//! read from every host at once.

use crate::engine::{clock, DeployArgs};
use crate::error::{exit, Error, Result};
use crate::remote::status::HostStatus;
use crate::render::Renderer;
use crate::report::error_text;

pub(crate) async fn host_status(args: DeployArgs) -> Result<u8> {
    let loaded = Renderer::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let hosts = super::fanout::selected(&loaded, &args, "--limit")?;
    let replies =
        super::fanout::on_each(&loaded, &args, &hosts, "deploy-status", crate::remote::status::HOST_STATUS, vec![])
            .await?;
    let results: Vec<Result<HostStatus>> = replies
        .into_iter()
        .zip(&hosts)
        .map(|(r, h)| {
            crate::remote::status::parse_host_status(&r?)
                .map_err(|m| Error::Remote { host: h.clone(), message: format!("unreadable reply: {m}") })
        })
        .collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if args.json {
        json(&hosts, &results, &loaded);
    } else {
        for (host, r) in hosts.iter().zip(&results) {
            match r {
                Ok(st) => text(host, st),
                Err(e) => crate::report::line(&loaded.redactor.redact(&format!("{host}: {}", error_text(e)))),
            }
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::ERROR })
}

fn text(host: &str, st: &HostStatus) {
    crate::report::line(&format!("{host}:"));
    if let Some(last) = st.audit.last().filter(|l| l.contains(" REVERTED ")) {
        crate::report::line(&format!(
            "  the last deploy was REVERTED by the host's dead-man switch (never confirmed): {last}"
        ));
    }
    match &st.lock {
        Some(who) => crate::report::line(&format!("  locked by {who}")),
        None => crate::report::line("  not locked"),
    }
    for p in &st.pending {
        crate::report::line(&format!(
            "  a revert is PENDING: deploy {} reverts at {} unless confirmed",
            p.deploy,
            clock(p.deadline)
        ));
    }
    for (name, v) in &st.toggles {
        crate::report::line(&format!("  toggle {name}: {v}"));
    }
    if let Some((n, kib)) = st.journals {
        crate::report::line(&format!("  journals: {n} deploys, {kib} KiB"));
    }
    if !st.audit.is_empty() {
        crate::report::line("  recent:");
        for a in &st.audit {
            crate::report::line(&format!("    {a}"));
        }
    }
}

fn json(hosts: &[String], results: &[Result<HostStatus>], loaded: &Renderer) {
    let items: Vec<serde_json::Value> = hosts
        .iter()
        .zip(results)
        .map(|(h, r)| match r {
            Ok(st) => serde_json::json!({
                "host": h,
                "lock": st.lock,
                "pending_reverts": st.pending.iter().map(|p| serde_json::json!({"deploy": p.deploy, "at": p.deadline})).collect::<Vec<_>>(),
                "toggles": st.toggles.iter().map(|(n, v)| serde_json::json!({"name": n, "state": v})).collect::<Vec<_>>(),
                "recent": st.audit,
                "journals": st.journals.map(|(n, kib)| serde_json::json!({"deploys": n, "kib": kib})),
            }),
            Err(e) => serde_json::json!({"host": h, "error": error_text(e)}),
        })
        .collect();
    let text = serde_json::to_string_pretty(&serde_json::json!({ "hosts": items })).unwrap_or_default();
    crate::report::line(&loaded.redactor.redact(&text));
}

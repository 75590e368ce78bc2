//! `deploy history ENV [--host H] [--output json]`: the deploys of an
//! environment, merged by deploy id from every host's audit log (read in
//! parallel, one round trip each): when, by whom, from which commit, and
//! how each host took it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::DeployArgs;
use crate::error::{exit, Error, Result};
use crate::remote::history::Event;
use crate::render::Renderer;

/// Audit lines read from each host (the newest).
const MAX_LINES: &str = "2000";

/// How one host took one deploy.
#[derive(Debug, Default, Clone, Serialize)]
struct HostRun {
    /// ok, failed-in-phase:NAME, error, interrupted, aborted, or unknown
    /// (the controller never wrote the end: killed, or the host reverted it first).
    result: String,
    confirmed: bool,
    reverted: bool,
    revert_incomplete: bool,
    /// created, updated, attributes, removed, containers.
    counts: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
struct Deploy {
    /// Order of first appearance in the audit logs: two deploys started in
    /// the same second are ordered by it, not by their ids' random part.
    #[serde(skip)]
    seq: usize,
    id: String,
    time: String,
    by: Option<String>,
    commit: Option<String>,
    env: Option<String>,
    toggle: Option<String>,
    hosts: BTreeMap<String, HostRun>,
}

fn merge(deploys: &mut BTreeMap<String, Deploy>, host: &str, events: Vec<(String, Event)>) {
    for (id, ev) in events {
        let seq = deploys.len();
        let d = deploys.entry(id.clone()).or_insert_with(|| Deploy { id, seq, ..Default::default() });
        let h = d
            .hosts
            .entry(host.to_string())
            .or_insert_with(|| HostRun { result: "unknown".into(), ..Default::default() });
        // the deploy's time: its first line on any host
        if d.time.is_empty() || ev.time() < d.time.as_str() {
            d.time = ev.time().to_string();
        }
        match ev {
            Event::Finished { fields, .. } => {
                d.by = fields.get("by").cloned();
                d.commit = fields.get("project_commit").cloned();
                d.env = fields.get("env").cloned();
                d.toggle = fields.get("toggle").cloned();
                h.result = fields.get("result").cloned().unwrap_or_else(|| "unknown".into());
                for k in ["created", "updated", "attributes", "removed", "containers"] {
                    if let Some(n) = fields.get(k).and_then(|v| v.parse().ok()) {
                        h.counts.insert(k.into(), n);
                    }
                }
            }
            Event::Armed { fields, .. } => {
                // the end line, when there is one, says the same and more
                for (slot, k) in [
                    (&mut d.by, "by"),
                    (&mut d.commit, "project_commit"),
                    (&mut d.env, "env"),
                    (&mut d.toggle, "toggle"),
                ] {
                    if slot.is_none() {
                        *slot = fields.get(k).cloned();
                    }
                }
            }
            Event::Confirmed { .. } => h.confirmed = true,
            Event::Reverted { .. } => h.reverted = true,
            Event::RevertIncomplete { .. } => h.revert_incomplete = true,
            Event::Aborted { reason, .. } => {
                h.result = "aborted".into();
                h.reason = Some(reason);
            }
        }
    }
}

/// `ok, confirmed`, `REVERTED by the host (never confirmed)`, ...
fn describe(h: &HostRun) -> String {
    let mut s = match h.result.as_str() {
        "ok" => "ok".to_string(),
        r if r.starts_with("failed-in-phase:") => format!("FAILED in phase {}", &r[16..]),
        "aborted" => format!("aborted: {}", h.reason.as_deref().unwrap_or("")),
        "unknown" if h.reverted => String::new(),
        r => r.to_string(),
    };
    let mut add = |w: &str| {
        if !s.is_empty() {
            s.push_str(", ");
        }
        s.push_str(w);
    };
    if h.confirmed {
        add("confirmed");
    }
    if h.reverted {
        add("REVERTED by the host (never confirmed)");
    }
    if h.revert_incomplete {
        add("REVERT INCOMPLETE");
    }
    s
}

fn counts(h: &HostRun) -> String {
    h.counts.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

pub(crate) async fn history(args: DeployArgs) -> Result<u8> {
    let loaded = Renderer::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let hosts = super::fanout::selected(&loaded, &args, "--host")?;
    let replies = super::fanout::on_each(
        &loaded,
        &args,
        &hosts,
        "deploy-history",
        crate::remote::history::SCRIPT,
        vec![MAX_LINES.into()],
    )
    .await?;
    let mut deploys: BTreeMap<String, Deploy> = BTreeMap::new();
    let mut errors: Vec<(String, String)> = Vec::new();
    for (host, r) in hosts.iter().zip(replies) {
        let parsed = r.and_then(|out| {
            crate::remote::history::parse_history(&out)
                .map_err(|m| Error::Remote { host: host.clone(), message: format!("unreadable reply: {m}") })
        });
        match parsed {
            Ok(events) => merge(&mut deploys, host, events),
            Err(e) => errors.push((host.clone(), crate::report::error_text(&e))),
        }
    }
    // other environments' deploys on shared hosts are theirs
    deploys.retain(|_, d| d.env.as_deref().is_none_or(|e| e == args.env));
    let mut deploys: Vec<Deploy> = deploys.into_values().collect();
    deploys.sort_by(|a, b| (&a.time, a.seq).cmp(&(&b.time, b.seq)));
    let text = if args.json {
        let errs: Vec<serde_json::Value> =
            errors.iter().map(|(h, e)| serde_json::json!({"host": h, "error": e})).collect();
        let list = &deploys;
        serde_json::to_string_pretty(&serde_json::json!({
            "format_version": crate::report::FORMAT_VERSION,
            "environment": args.env,
            "deploys": list,
            "errors": errs,
        }))
        .unwrap_or_default()
    } else {
        text(&deploys, &errors, hosts.len())
    };
    crate::report::line(&loaded.redactor.redact(text.trim_end()));
    Ok(if errors.is_empty() { exit::OK } else { exit::ERROR })
}

fn text(deploys: &[Deploy], errors: &[(String, String)], n_hosts: usize) -> String {
    let mut out = String::new();
    for d in deploys {
        let mut head = format!("{}  {}", d.id, d.time);
        for (label, v) in [("", &d.by), ("commit ", &d.commit), ("", &d.toggle)] {
            if let Some(v) = v {
                head.push_str(&format!("  {label}{v}"));
            }
        }
        out.push_str(&head);
        out.push('\n');
        let width = d.hosts.keys().map(|h| h.len()).max().unwrap_or(0);
        for (h, run) in &d.hosts {
            let c = counts(run);
            let c = if c.is_empty() { String::new() } else { format!("  ({c})") };
            out.push_str(&format!("  {h:width$}  {}{c}\n", describe(run)));
        }
    }
    for (h, e) in errors {
        out.push_str(&format!("{h}: {e}\n"));
    }
    out.push_str(&format!(
        "{} deploy{} on {n_hosts} host{} (oldest first)",
        deploys.len(),
        if deploys.len() == 1 { "" } else { "s" },
        if n_hosts == 1 { "" } else { "s" }
    ));
    out
}

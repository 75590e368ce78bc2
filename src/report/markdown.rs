//! The plan as Markdown (`--output markdown`), for a pull-request comment:
//! per host a table of what changes and why, each diff collapsed in a
//! <details> block; redacted like everything else.

use std::fmt::Write as _;

use crate::plan::{Action, HostPlan, Resource, ServiceActionKind};
use crate::redact::Redactor;

/// Markdown cells: no pipes or newlines inside.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn host_section(out: &mut String, host: &str, address: &str, plan: &HostPlan) {
    let _ = writeln!(out, "### {host} (`{address}`)\n");
    if plan.is_empty() {
        let _ = writeln!(out, "In sync ({} unchanged).\n", plan.unchanged);
        return;
    }
    let _ = writeln!(out, "| | what | why | role |\n|---|---|---|---|");
    for c in &plan.changes {
        let (sym, word) = match c.action {
            Action::Create => ("+", "create"),
            Action::Update => ("~", "update"),
            Action::Metadata => ("~", "attributes"),
            Action::Delete => ("-", "remove"),
        };
        let kind = match c.resource {
            Resource::Dir => " (dir)",
            Resource::Lines => " (lines)",
            Resource::Link => " (link)",
            _ => "",
        };
        let _ = writeln!(
            out,
            "| {sym} | `{}`{kind} {word} | {} | {} |",
            cell(&c.path),
            cell(
                &c.reasons
                    .iter()
                    .cloned()
                    .chain(c.shrink.map(|s| format!("**{}**", s.words())))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            c.role
        );
    }
    for a in &plan.services {
        let word = match a.action {
            ServiceActionKind::Create => "create container",
            ServiceActionKind::Recreate => "recreate container",
            ServiceActionKind::Start => "start container",
            ServiceActionKind::Reload => "reload in place",
        };
        let _ = writeln!(out, "| ↻ | `{}/{}` {word} | {} | |", a.project, a.service, cell(&a.reasons.join(", ")));
    }
    for s in &plan.system {
        let what = if s.name == "daemon-reload" {
            "systemd daemon-reload".to_string()
        } else {
            format!("`{}` {}", cell(&s.name), s.action)
        };
        let kind = format!("{:?}", s.resource).to_lowercase();
        let _ = writeln!(out, "| ▶ | {kind} {what} | {} | {} |", cell(&s.reasons.join(", ")), s.role);
    }
    out.push('\n');
    for c in &plan.changes {
        if c.secret && matches!(c.action, Action::Create | Action::Update) {
            let _ = writeln!(out, "`{}`: secret file, content not shown.\n", c.path);
        } else if let Some(d) = &c.diff {
            let _ = writeln!(
                out,
                "<details><summary>diff <code>{}</code></summary>\n\n```diff\n{}```\n</details>\n",
                c.path,
                d.replace("```", "'''")
            );
        }
    }
}

/// Print every host's plan (or its error) as Markdown, redacted.
pub(crate) fn plans(env: &str, commit: Option<&str>, hosts: &[super::json::Host], redactor: &Redactor) {
    let mut out = String::new();
    let changed = hosts.iter().filter(|(_, _, p)| p.is_ok_and(|p| !p.is_empty())).count();
    let failed = hosts.iter().filter(|(_, _, p)| p.is_err()).count();
    let _ = writeln!(out, "## deploy plan: `{env}`{}\n", commit.map(|c| format!(" at `{c}`")).unwrap_or_default());
    let _ = writeln!(
        out,
        "{} host{}: {changed} to change, {} in sync{}.\n",
        hosts.len(),
        if hosts.len() == 1 { "" } else { "s" },
        hosts.len() - changed - failed,
        if failed > 0 { format!(", **{failed} failed**") } else { String::new() }
    );
    for (host, address, p) in hosts {
        match p {
            Ok(plan) => host_section(&mut out, host, address, plan),
            Err(e) => {
                let _ = writeln!(out, "### {host} (`{address}`): **failed**\n\n```\n{}\n```\n", super::error_text(e));
            }
        }
    }
    super::raw(redactor.redact(&out).as_bytes());
}

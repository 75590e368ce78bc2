//! The end of a deploy: one block per host, what was applied or why it
//! failed, what the rollback and the dead-man switch did.

use console::style;

use crate::error::{Error, Result};
use crate::plan::outcome::HostReport;
use crate::redact::Redactor;

/// Print the summary: on stdout, or on stderr when stdout carries JSON.
pub(crate) fn summary(results: &[(&str, &Result<HostReport>)], redactor: &Redactor, json: bool) {
    let width = results.iter().map(|(h, _)| h.len()).max().unwrap_or(4);
    let mut lines = vec![String::new(), "Summary:".to_string()];
    for (host, r) in results {
        lines.push(match r {
            Ok(rep) if rep.failure.is_none() => ok_host(host, rep, width),
            Ok(rep) => failed_host(host, rep, width),
            Err(e) => format!("  {host:width$}  {}  {}", style("FAILED").red().bold(), super::error_text(e)),
        });
    }
    let text = redactor.redact(&lines.join("\n"));
    if json {
        super::note(&text);
    } else {
        super::line(&text);
    }
}

fn ok_host(host: &str, rep: &HostReport, width: usize) -> String {
    let what = if let Some(why) = &rep.not_started {
        format!("never started: {why}; nothing was changed")
    } else if rep.interrupted {
        "interrupted before it started; nothing was changed".to_string()
    } else if rep.applied.is_empty() && rep.services.is_empty() {
        "no changes".to_string()
    } else {
        let mut w = format!("{} applied", rep.applied.len());
        if !rep.services.is_empty() {
            w.push_str(&format!("; {}", rep.services.join(", ")));
        }
        w
    };
    let label = if rep.not_started.is_some() { style("skip  ").yellow() } else { style("ok    ").green() };
    let mut s = format!("  {host:width$}  {label}  {what}");
    for l in &rep.deadman {
        s.push_str(&format!("\n    {l}"));
    }
    for (p, why) in &rep.skipped {
        s.push_str(&format!("\n  {:width$}  {}  {p}: {why}", "", style("skip  ").yellow()));
    }
    s
}

fn failed_host(host: &str, rep: &HostReport, width: usize) -> String {
    let Some(f) = &rep.failure else { return String::new() };
    let mut s = format!("  {host:width$}  {}  phase {}: {}", style("FAILED").red().bold(), f.phase, f.what);
    for l in &f.details {
        s.push_str(&format!("\n    {l}"));
    }
    for l in &f.rolled_back {
        s.push_str(&format!("\n    rolled back: {l}"));
    }
    for l in &rep.deadman {
        s.push_str(&format!("\n    {l}"));
    }
    if !f.rolled_back.is_empty() || f.what.contains("nothing") {
        s.push_str("\n    later phases did not run");
    }
    s
}

/// The end of a run that applied nothing: `Nothing to change on N hosts.`,
/// and how many hosts failed.
pub(crate) fn nothing_to_change(ok: usize, failed: usize) {
    let hosts = |n: usize| format!("{n} host{}", if n == 1 { "" } else { "s" });
    let text = match (ok, failed) {
        (ok, 0) => format!("Nothing to change on {}.", hosts(ok)),
        (0, failed) => format!("{} failed; nothing was applied.", hosts(failed)),
        (ok, failed) => format!("Nothing to change on {}; {} failed.", hosts(ok), hosts(failed)),
    };
    super::line(&format!("\n{text}"));
}

/// A host that failed before its plan, as a line of the plan output.
pub(crate) fn host_failed(out: &mut dyn std::io::Write, host: &str, e: &Error, redactor: &Redactor) {
    let _ = writeln!(out, "{} {}", style(host).bold(), style("FAILED").red().bold());
    let _ = writeln!(out, "  {}", redactor.redact(&super::error_text(e)));
}

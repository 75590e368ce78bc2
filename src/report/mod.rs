//! The only module that writes to the terminal: plans, diffs, progress and
//! the summary. Progress bars (indicatif) only when stderr is a terminal;
//! plain prefixed lines otherwise. Everything printed passes the redactor.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::plan::{Action, HostPlan, Resource};
use crate::redact::Redactor;

/// Progress of each host: a spinner per host on a terminal, lines otherwise.
pub struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    redactor: Redactor,
}

impl Progress {
    /// Progress for `hosts`; bars only when stderr is a terminal.
    pub fn new(hosts: &[String], redactor: Redactor, quiet: bool) -> Progress {
        let tty = console::Term::stderr().is_term() && !quiet;
        let multi = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(15)));
        let mut bars = HashMap::new();
        if let Some(m) = &multi {
            let width = hosts.iter().map(|h| h.len()).max().unwrap_or(4);
            let st = ProgressStyle::with_template(&format!("{{spinner}} {{prefix:{width}}}  {{wide_msg}}"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for h in hosts {
                let b = m.add(ProgressBar::new_spinner().with_style(st.clone()).with_prefix(h.clone()));
                b.enable_steady_tick(Duration::from_millis(120));
                bars.insert(h.clone(), b);
            }
        }
        Progress { multi, bars: Mutex::new(bars), redactor }
    }

    /// A host moved to a new step.
    pub fn step(&self, host: &str, msg: &str) {
        let msg = self.redactor.redact(msg);
        // Without a terminal only each host's outcome is printed (see `done`):
        // a log of every step of every host buries what matters.
        if self.multi.is_some() {
            if let Some(b) = self.bars.lock().unwrap().get(host) {
                b.set_message(msg);
            }
        }
    }

    /// A host is done with this stage.
    pub fn done(&self, host: &str, msg: &str) {
        let msg = self.redactor.redact(msg);
        if self.multi.is_some() {
            if let Some(b) = self.bars.lock().unwrap().get(host) {
                b.finish_with_message(msg);
            }
        } else {
            let _ = writeln!(std::io::stderr(), "{host}: {msg}");
        }
    }

    /// Remove the bars before printing something else.
    pub fn clear(&self) {
        if let Some(m) = &self.multi {
            for b in self.bars.lock().unwrap().values() {
                b.finish_and_clear();
            }
            let _ = m.clear();
        }
    }
}

/// Print one host's plan with its diffs.
pub fn print_plan(out: &mut dyn Write, plan: &HostPlan, address: &str, redactor: &Redactor) -> std::io::Result<()> {
    writeln!(out, "{} {}", style(&plan.host).bold(), style(format!("({address})")).dim())?;
    if let Some(line) = &plan.previous_revert {
        writeln!(
            out,
            "  {} the last deploy to this host was REVERTED by its dead-man switch (the controller never confirmed it): {}",
            style("!").red().bold(),
            line
        )?;
    }
    for n in &plan.notes {
        writeln!(out, "  {} {n}", style("!").yellow().bold())?;
    }
    for c in &plan.changes {
        let (sym, word) = match (c.action, c.resource) {
            (Action::Create, _) => (style("+").green(), "create"),
            (Action::Update, _) => (style("~").yellow(), "update"),
            (Action::Metadata, _) => (style("~").yellow(), "attributes"),
            (Action::Delete, _) => (style("-").red(), "remove"),
        };
        let kind = match c.resource {
            Resource::Dir => " (dir)",
            _ => "",
        };
        let reasons = if c.reasons.is_empty() { String::new() } else { format!("  [{}]", c.reasons.join(", ")) };
        writeln!(
            out,
            "  {sym} {}{kind}  {word}{}  {}",
            redactor.redact(&c.path),
            reasons,
            style(format!("role {}", c.role)).dim()
        )?;
        if c.secret && matches!(c.action, Action::Create | Action::Update) {
            writeln!(out, "      {}", style("(secret file: content not shown)").dim())?;
        } else if let Some(d) = &c.diff {
            for line in d.lines() {
                let l = redactor.redact(line);
                let styled = if l.starts_with("+++") || l.starts_with("---") {
                    style(l).bold()
                } else if l.starts_with('+') {
                    style(l).green()
                } else if l.starts_with('-') {
                    style(l).red()
                } else if l.starts_with("@@") {
                    style(l).cyan()
                } else {
                    style(l)
                };
                writeln!(out, "      {styled}")?;
            }
        }
    }
    for a in &plan.services {
        let (sym, word) = match a.action {
            crate::plan::ServiceActionKind::Create => (style("+").green(), "create container"),
            crate::plan::ServiceActionKind::Recreate => (style("↻").yellow(), "recreate container"),
            crate::plan::ServiceActionKind::Start => (style("▶").yellow(), "start container"),
            crate::plan::ServiceActionKind::Reload => (style("⟳").cyan(), "reload in place"),
        };
        writeln!(out, "  {sym} {}/{}  {word}  [{}]", a.project, a.service, redactor.redact(&a.reasons.join(", ")))?;
    }
    for p in &plan.preserved {
        writeln!(
            out,
            "  {} {}  {}",
            style("=").dim(),
            p,
            style("preserved: differs from the template, never overwritten").dim()
        )?;
    }
    let (c, u, m, d) = plan.counts();
    if plan.is_empty() {
        writeln!(out, "  {} in sync ({} unchanged)", style("✓").green(), plan.unchanged)?;
    } else {
        let n = plan.services.len();
        let containers =
            if n == 0 { String::new() } else { format!(", {n} container action{}", if n == 1 { "" } else { "s" }) };
        writeln!(
            out,
            "  {c} to create, {u} to update, {m} attribute changes, {d} to remove, {} unchanged{containers}",
            plan.unchanged
        )?;
    }
    Ok(())
}

/// An error with its hint, on one or two lines.
pub fn error_text(e: &crate::error::Error) -> String {
    match e.hint() {
        Some(h) => format!("{e}\n    hint: {h}"),
        None => e.to_string(),
    }
}

/// Print the error that ends the run, and its hint; paths under the
/// project root are shown relative to it.
pub fn error(e: &crate::error::Error, root: &std::path::Path) {
    let prefix = format!("{}/", root.display());
    let text = e.to_string();
    let text = text.strip_prefix(&prefix).unwrap_or(&text).replace(&format!(" {prefix}"), " ");
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{} {text}", style("error:").red().bold());
    if let Some(h) = e.hint() {
        let _ = writeln!(err, "  {} {h}", style("hint:").cyan());
    }
}

/// Print warnings (redacted) on stderr.
pub fn warnings(warnings: &[String], redactor: &Redactor) {
    let mut err = std::io::stderr().lock();
    for w in warnings {
        let _ = writeln!(err, "{} {}", style("warning:").yellow().bold(), redactor.redact(w));
    }
}

/// A line of a command's result, on stdout.
pub fn line(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A remark about what a command did, on stderr.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Bytes exactly as they are, on stdout (`secrets view`).
pub fn raw(bytes: &[u8]) {
    let _ = std::io::stdout().lock().write_all(bytes);
}

//! The only module that writes to the terminal: plans, diffs, progress and
//! the summary. Progress bars (indicatif) only when stderr is a terminal;
//! plain prefixed lines otherwise. Everything printed passes the redactor.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

mod json;
mod markdown;
mod summary;

pub(crate) use json::plans as json_plans;
pub(crate) use json::FORMAT_VERSION;
pub(crate) use markdown::plans as markdown_plans;
pub(crate) use summary::{host_failed, nothing_to_change, summary};

use crate::plan::{Action, HostPlan, Resource};
use crate::redact::Redactor;

/// Progress of each host: a spinner per host on a terminal, lines otherwise.
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
    /// JSON on stdout: stderr gets only each host's outcome.
    quiet: bool,
    bars: Mutex<HashMap<String, ProgressBar>>,
    redactor: Redactor,
}

impl Progress {
    /// Progress for `hosts`; bars only when stderr is a terminal.
    pub(crate) fn new(hosts: &[String], redactor: Redactor, quiet: bool) -> Progress {
        let quiet = quiet || is_quiet();
        let tty = console::Term::stderr().is_term() && !quiet;
        let multi = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(15)));
        let mut bars = HashMap::new();
        if let Some(m) = &multi {
            let width = hosts.iter().map(|h| h.len()).max().unwrap_or(4);
            let st =
                ProgressStyle::with_template(&format!("{{spinner}} {{prefix:{width}}} {{elapsed:>4}}  {{wide_msg}}"))
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
            for h in hosts {
                let b = m.add(ProgressBar::new_spinner().with_style(st.clone()).with_prefix(h.clone()));
                b.enable_steady_tick(Duration::from_millis(120));
                bars.insert(h.clone(), b);
            }
        }
        Progress { multi, quiet, bars: Mutex::new(bars), redactor }
    }

    /// A host moved to a new step.
    pub(crate) fn step(&self, host: &str, msg: &str) {
        let msg = self.redactor.redact(msg);
        if self.multi.is_some() {
            if let Some(b) = self.bars.lock().unwrap().get(host) {
                b.set_message(msg);
            }
        } else if !self.quiet {
            // without a terminal (CI): a line per step, so a slow step is
            // never minutes of silence
            let _ = writeln!(std::io::stderr(), "{host}: {msg}");
        }
    }

    /// A host is done with this stage.
    pub(crate) fn done(&self, host: &str, msg: &str) {
        let msg = self.redactor.redact(msg);
        if self.multi.is_some() {
            if let Some(b) = self.bars.lock().unwrap().get(host) {
                b.finish_with_message(msg);
            }
        } else if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{host}: {msg}");
        }
    }

    /// Remove the bars before printing something else.
    pub(crate) fn clear(&self) {
        if let Some(m) = &self.multi {
            for b in self.bars.lock().unwrap().values() {
                b.finish_and_clear();
            }
            let _ = m.clear();
        }
    }
}

/// Print one host's plan with its diffs.
pub(crate) fn print_plan(
    out: &mut dyn Write,
    plan: &HostPlan,
    address: &str,
    redactor: &Redactor,
    check: bool,
) -> std::io::Result<()> {
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
        print_change(out, c, redactor)?;
    }
    for c in &plan.system {
        print_system_change(out, c, redactor, check)?;
    }
    print_services_and_counts(out, plan, redactor)
}

/// `  + package hello  install  [2.10-3 (not installed)]  role tools`
fn print_system_change(
    out: &mut dyn Write,
    c: &crate::plan::system::SysChange,
    redactor: &Redactor,
    check: bool,
) -> std::io::Result<()> {
    let sym = match c.action.as_str() {
        "install" | "create" | "start" | "enable" | "set" => style("+").green(),
        "remove" | "delete" | "stop" | "disable" => style("-").red(),
        "run" => style("▶").yellow(),
        _ => style("↻").yellow(),
    };
    let kind = match c.resource {
        crate::plan::system::SysResource::Package => "package",
        crate::plan::system::SysResource::Unit => "unit",
        crate::plan::system::SysResource::User => "user",
        crate::plan::system::SysResource::Group => "group",
        crate::plan::system::SysResource::Sysctl => "sysctl",
        crate::plan::system::SysResource::Command => "command",
    };
    let name = if c.name == "daemon-reload" { "systemd".to_string() } else { c.name.clone() };
    // --check never runs a command: it says what a deploy would do
    let action = match c.action.as_str() {
        _ if c.name == "daemon-reload" => "daemon-reload",
        "run" if check => "would run",
        a => a,
    };
    writeln!(
        out,
        "  {sym} {kind} {}  {action}  [{}]  {}",
        redactor.redact(&name),
        redactor.redact(&c.reasons.join(", ")),
        style(format!("role {}", c.role)).dim()
    )
}

fn print_change(out: &mut dyn Write, c: &crate::plan::Change, redactor: &Redactor) -> std::io::Result<()> {
    {
        let (sym, word) = match (c.action, c.resource) {
            (Action::Create, _) => (style("+").green(), "create"),
            (Action::Update, _) => (style("~").yellow(), "update"),
            (Action::Metadata, _) => (style("~").yellow(), "attributes"),
            (Action::Delete, _) => (style("-").red(), "remove"),
        };
        let kind = match c.resource {
            Resource::Dir => " (dir)",
            Resource::Lines => " (lines)",
            Resource::Link => " (link)",
            _ => "",
        };
        let reasons = if c.reasons.is_empty() { String::new() } else { format!("  [{}]", c.reasons.join(", ")) };
        let path = redactor.redact(&c.path);
        // a whole top-level tree going: impossible to miss
        let forced = c.action == Action::Delete && c.reasons.iter().any(|r| r == "force: true");
        let path = if forced { style(path).red().bold() } else { style(path) };
        // a file about to be emptied or gutted: impossible to miss either (incident 9)
        let shrink = c.shrink.map(|s| format!("  {}", style(s.words()).red().bold())).unwrap_or_default();
        writeln!(out, "  {sym} {path}{kind}  {word}{reasons}{shrink}  {}", style(format!("role {}", c.role)).dim())?;
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
    Ok(())
}

fn print_services_and_counts(out: &mut dyn Write, plan: &HostPlan, redactor: &Redactor) -> std::io::Result<()> {
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
        let mut containers =
            if n == 0 { String::new() } else { format!(", {n} container action{}", if n == 1 { "" } else { "s" }) };
        let k = plan.system.len();
        if k > 0 {
            containers.push_str(&format!(", {k} system change{}", if k == 1 { "" } else { "s" }));
        }
        writeln!(
            out,
            "  {c} to create, {u} to update, {m} attribute changes, {d} to remove, {} unchanged{containers}",
            plan.unchanged
        )?;
    }
    Ok(())
}

/// An error with its hint, on one or two lines.
pub(crate) fn error_text(e: &crate::error::Error) -> String {
    match e.hint() {
        Some(h) => format!("{e}\n    hint: {h}"),
        None => e.to_string(),
    }
}

/// Print the error that ends the run, and its hint; paths under the
/// project root are shown relative to it.
pub fn error(e: &crate::error::Error, root: &std::path::Path) {
    let prefix = format!("{}/", root.display());
    let text = crate::redact::redact_installed(&e.to_string());
    let text = text.strip_prefix(&prefix).unwrap_or(&text).replace(&format!(" {prefix}"), " ");
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{} {text}", style("error:").red().bold());
    if let Some(h) = e.hint() {
        let _ = writeln!(err, "  {} {}", style("hint:").cyan(), crate::redact::redact_installed(h));
    }
}

/// The error that ends a run, as JSON on stdout (`--output json`): kind,
/// message, hint and host; redacted like everything else.
pub fn error_json(e: &crate::error::Error, root: &std::path::Path) {
    let prefix = format!("{}/", root.display());
    let text = crate::redact::redact_installed(&e.to_string());
    let text = text.strip_prefix(&prefix).unwrap_or(&text).replace(&format!(" {prefix}"), " ");
    let j = serde_json::json!({
        "format_version": json::FORMAT_VERSION,
        "error": {
            "kind": e.kind(),
            "message": text,
            "hint": e.hint().map(crate::redact::redact_installed),
            "host": e.host(),
        }
    });
    line(&serde_json::to_string_pretty(&j).unwrap_or_default());
}

/// Print warnings (redacted) on stderr.
pub(crate) fn warnings(warnings: &[String], redactor: &Redactor) {
    let mut err = std::io::stderr().lock();
    for w in warnings {
        let _ = writeln!(err, "{} {}", style("warning:").yellow().bold(), redactor.redact(w));
    }
}

/// A line of a command's result, on stdout.
pub(crate) fn line(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A remark about what a command did, on stderr.
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Bytes exactly as they are, on stdout (`secrets view`).
pub(crate) fn raw(bytes: &[u8]) {
    let _ = std::io::stdout().lock().write_all(bytes);
}

static VERBOSITY: std::sync::atomic::AtomicI8 = std::sync::atomic::AtomicI8::new(0);

/// -v (1), -q (-1), or neither (0), for the whole run.
pub fn set_verbosity(v: i8) {
    VERBOSITY.store(v, std::sync::atomic::Ordering::Relaxed);
}

/// -q: only errors and the summary.
pub(crate) fn is_quiet() -> bool {
    VERBOSITY.load(std::sync::atomic::Ordering::Relaxed) < 0
}

/// -v: a line for each command run on a host, with its duration and exit status.
pub(crate) fn command_ran(host: &str, name: &str, took: std::time::Duration, code: Option<i32>) {
    if VERBOSITY.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        let code = code.map(|c| c.to_string()).unwrap_or_else(|| "signal".into());
        let _ = writeln!(std::io::stderr().lock(), "{host}: ran {name} in {} ms (exit {code})", took.as_millis());
    }
}

/// -v: a line for each big source file hashed before its upload, the one
/// read of it a first deploy does not need.
pub(crate) fn hashed(path: &std::path::Path, len: u64, took: std::time::Duration) {
    if VERBOSITY.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        let mib = len as f64 / (1 << 20) as f64;
        let _ =
            writeln!(std::io::stderr().lock(), "hashed {} ({mib:.1} MiB) in {} ms", path.display(), took.as_millis());
    }
}

/// Every host's plan, or why it has none, on stdout.
pub(crate) fn plans(
    hosts: &[(&str, &str, std::result::Result<&HostPlan, &crate::error::Error>)],
    redactor: &Redactor,
    check: bool,
) {
    // -q: a host's failure still shows, its plan does not
    if is_quiet() {
        let mut out = std::io::stdout().lock();
        for (host, _, p) in hosts {
            if let Err(e) = p {
                host_failed(&mut out, host, e, redactor);
            }
        }
        return;
    }
    let mut out = std::io::stdout().lock();
    for (host, address, p) in hosts {
        match p {
            Ok(plan) => {
                let _ = print_plan(&mut out, plan, address, redactor, check);
            }
            Err(e) => host_failed(&mut out, host, e, redactor),
        }
    }
    let _ = out.flush();
}

/// The first SIGINT, SIGTERM or SIGHUP.
pub(crate) fn interrupted(signal: &str) {
    note(&format!(
        "\n{} {signal}: starting nothing new; each host finishes the step it is in, then the locks are released. \
         Press Ctrl-C again to abandon at once.",
        style("Interrupted:").yellow().bold()
    ));
}

/// The second signal: which hosts keep a lock.
pub(crate) fn abandoned(env: &str, holding: &[(String, bool)]) {
    let mut text = format!("{} at once.", style("Abandoned").red().bold());
    if holding.is_empty() {
        text.push_str(" No host holds a lock of this deploy.");
    }
    for (host, armed) in holding {
        text.push_str(&format!("\n  {host}: keeps this deploy's lock"));
        if *armed {
            text.push_str(" (its dead-man switch reverts the deploy by itself and releases it)");
        } else {
            text.push_str(&format!(
                "; release it with `deploy unlock {env} --host {host}` once you have checked the host"
            ));
        }
    }
    note(&text);
}

/// Ask on the terminal; the answer is read by the caller.
pub(crate) fn ask(question: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}");
    let _ = err.flush();
}

//! `deploy ENV`: render every host, then per host in parallel connect, probe
//! (taking the lock), plan and fetch what the diffs need; show; confirm; then
//! per host in parallel apply (or just release the lock); summarise.
//! `--check` is the same path stopped before the first write.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::apply::{Applied, FINISH};
use crate::error::{Error, Result};
use crate::plan::{plan_host, Action, HostPlan};
use crate::probe::Lock;
use crate::redact::Redactor;
use crate::render::{DesiredHost, Loaded};
use crate::report::{print_plan, Progress};
use crate::secrets::Keys;
use crate::ssh::{Conn, SshOptions};

/// Exit statuses (Terraform's -detailed-exitcode for --check).
pub mod exit {
    /// Success: applied, or in sync.
    pub const OK: u8 = 0;
    /// Error: nothing applied (bad input, every host failed, aborted).
    pub const ERROR: u8 = 1;
    /// --check: changes pending.
    pub const CHANGES: u8 = 2;
    /// Some hosts failed, others were applied.
    pub const PARTIAL: u8 = 3;
    /// Interrupted (Ctrl-C) before anything was applied.
    pub const INTERRUPTED: u8 = 130;
}

/// What `deploy ENV` was asked to do.
#[derive(Debug, Clone)]
pub struct DeployArgs {
    /// Project root.
    pub root: PathBuf,
    /// Environment (inventory group).
    pub env: String,
    /// Stop after showing the plan.
    pub check: bool,
    /// Do not ask.
    pub yes: bool,
    /// Only these roles.
    pub roles: Option<Vec<String>>,
    /// Only these hosts.
    pub limit: Option<Vec<String>>,
    /// Print the plan as JSON.
    pub json: bool,
    /// -e key=value.
    pub extra: Vec<(String, String)>,
    /// Decryption keys.
    pub keys: Keys,
    /// SSH settings.
    pub ssh: SshOptions,
}

struct Ready {
    conn: Conn,
    plan: HostPlan,
    locked: bool,
}

enum HostState {
    Ready(Box<Ready>),
    Failed(Error),
}

#[derive(Serialize)]
struct JsonHost<'a> {
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a HostPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    environment: &'a str,
    changes: bool,
    hosts: Vec<JsonHost<'a>>,
    warnings: Vec<String>,
}

/// Load and render every selected host: any error here is bad input, and
/// nothing has been sent anywhere yet.
pub fn load_and_render(args: &DeployArgs) -> Result<(Loaded, Vec<DesiredHost>)> {
    let loaded = Loaded::load(&args.root, &args.env, &args.keys, &args.extra)?;
    if let Some(roles) = &args.roles {
        for r in roles {
            if !loaded.project.roles.contains_key(r) {
                let known: Vec<&String> = loaded.project.roles.keys().collect();
                return Err(Error::Usage(format!(
                    "role `{r}` is not in any phase of deploy.yml; roles: {}",
                    known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
    }
    let mut hosts = loaded.hosts.clone();
    if let Some(limit) = &args.limit {
        for l in limit {
            if !hosts.contains(l) {
                return Err(Error::Usage(format!(
                    "--limit {l}: no such host in `{}` (hosts: {})",
                    args.env,
                    hosts.join(", ")
                )));
            }
        }
        hosts.retain(|h| limit.contains(h));
    }
    let desired: Result<Vec<DesiredHost>> =
        hosts.iter().map(|h| loaded.render_host(h, args.roles.as_deref())).collect();
    Ok((loaded, desired?))
}

fn holder(id: &str) -> String {
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
fn lock_error(host: &str, env: &str, who: &str) -> Error {
    let mut msg = format!("another deploy holds the lock: {who}");
    let mine = crate::util::hostname();
    let stale =
        who.split_whitespace().find_map(|w| w.strip_prefix("pid=")).and_then(|p| p.parse::<u32>().ok()).is_some_and(
            |pid| who.contains(&format!("@{mine} ")) && !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        );
    if stale {
        msg.push_str(" (that process no longer runs on this machine: the lock is stale)");
    }
    Error::Remote { host: host.into(), message: msg }.hinted(format!(
        "wait for it to finish; if that deploy is gone (killed CI job, closed laptop), release the lock with `deploy unlock {env} --host {host}`"
    ))
}

async fn stage1(
    desired: &DesiredHost,
    args: &DeployArgs,
    holder: &str,
    redactor: &Redactor,
    progress: &Progress,
) -> HostState {
    let host = desired.host.as_str();
    progress.step(host, "connecting");
    let conn = match crate::ssh::connect(host, &desired.connection, &args.ssh).await {
        Ok(c) => c,
        Err(e) => return HostState::Failed(e),
    };
    progress.step(host, "probing");
    let mut argv: Vec<&str> = vec![if args.check { "check" } else { "lock" }, holder];
    let paths: Vec<&str> = desired
        .dirs
        .iter()
        .map(|d| d.path.as_str())
        .chain(desired.files.iter().map(|f| f.dest.as_str()))
        .chain(desired.absent.iter().map(|a| a.0.as_str()))
        .collect();
    argv.extend(paths);
    let out = match conn.run("deploy-probe", crate::probe::SCRIPT, &argv, None).await {
        Ok(o) => o,
        Err(e) => return HostState::Failed(e),
    };
    let remote = match crate::probe::parse_probe(&out.stdout) {
        Ok(r) => r,
        Err(m) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return HostState::Failed(Error::Remote {
                host: host.into(),
                message: format!(
                    "probe failed: {m}{}",
                    if stderr.trim().is_empty() { String::new() } else { format!(" (stderr: {})", stderr.trim()) }
                ),
            });
        }
    };
    let locked = match &remote.lock {
        Lock::Taken(who) => return HostState::Failed(lock_error(host, &args.env, who)),
        Lock::Acquired => true,
        _ => false,
    };
    let mut plan = match plan_host(desired, &remote) {
        Ok(p) => p,
        Err(m) => {
            if locked {
                let _ = conn.run("deploy-finish", FINISH, &[holder, ""], None).await;
            }
            return HostState::Failed(Error::Remote { host: host.into(), message: m });
        }
    };
    if let Err(e) = attach_diffs(&conn, desired, &mut plan, redactor).await {
        if locked {
            let _ = conn.run("deploy-finish", FINISH, &[holder, ""], None).await;
        }
        return HostState::Failed(e);
    }
    progress.done(
        host,
        &if plan.changes.is_empty() {
            "in sync".to_string()
        } else {
            format!("{} changes planned", plan.changes.len())
        },
    );
    HostState::Ready(Box::new(Ready { conn, plan, locked }))
}

/// Fetch the old contents of updated files (not secret ones) in one command
/// and attach redacted diffs.
async fn attach_diffs(conn: &Conn, desired: &DesiredHost, plan: &mut HostPlan, redactor: &Redactor) -> Result<()> {
    let wanted: Vec<String> =
        plan.changes.iter().filter(|c| c.action == Action::Update && !c.secret).map(|c| c.path.clone()).collect();
    let mut old: std::collections::HashMap<String, Vec<u8>> = Default::default();
    if !wanted.is_empty() {
        let mut args: Vec<&str> = Vec::new();
        args.extend(wanted.iter().map(|s| s.as_str()));
        let out = conn.run("deploy-fetch", "tar -cf - -- \"$@\" 2>/dev/null; exit 0", &args, None).await?;
        let mut ar = tar::Archive::new(&out.stdout[..]);
        if let Ok(entries) = ar.entries() {
            for mut e in entries.flatten() {
                let name = format!("/{}", e.path().map(|p| p.to_string_lossy().to_string()).unwrap_or_default());
                let mut buf = Vec::new();
                use std::io::Read;
                if e.read_to_end(&mut buf).is_ok() {
                    old.insert(name, buf);
                }
            }
        }
    }
    for c in plan.changes.iter_mut() {
        let Some(i) = c.file else { continue };
        if c.secret {
            continue;
        }
        let f = &desired.files[i];
        match c.action {
            Action::Create => c.diff = Some(crate::diff::unified(&c.path, None, &f.bytes, redactor)),
            Action::Update => {
                c.diff = Some(crate::diff::unified(&c.path, old.get(&c.path).map(|v| v.as_slice()), &f.bytes, redactor))
            }
            _ => {}
        }
    }
    Ok(())
}

fn audit_line(args: &DeployArgs, id: &str, plan: &HostPlan) -> String {
    let (c, u, m, d) = plan.counts();
    format!(
        "{} deploy={id} by={}@{} project_commit={} env={} created={c} updated={u} attributes={m} removed={d}",
        crate::util::utc(crate::util::now()),
        crate::util::user(),
        crate::util::hostname(),
        crate::util::git_commit(&args.root),
        args.env
    )
}

async fn release(ready: Ready, holder: &str, audit: &str) {
    if ready.locked {
        let _ = ready.conn.run("deploy-finish", FINISH, &[holder, audit], None).await;
    }
    ready.conn.close().await;
}

/// Run a deploy (or check). Returns the exit status.
pub async fn deploy(args: DeployArgs) -> Result<u8> {
    let (loaded, desired) = load_and_render(&args)?;
    let redactor = loaded.redactor.clone();
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| redactor.redact(&w.to_string())).collect();
    for w in &warnings {
        eprintln!("{} {w}", console::style("warning:").yellow().bold());
    }
    drop(loaded);
    let id = crate::util::deploy_id();
    let holder = Arc::new(holder(&id));
    let names: Vec<String> = desired.iter().map(|d| d.host.clone()).collect();
    let progress = Arc::new(Progress::new(&names, redactor.clone(), args.json));
    let args = Arc::new(args);
    let desired: Vec<Arc<DesiredHost>> = desired.into_iter().map(Arc::new).collect();

    let mut tasks = tokio::task::JoinSet::new();
    for (i, d) in desired.iter().enumerate() {
        let (d, args, holder, redactor, progress) =
            (d.clone(), args.clone(), holder.clone(), redactor.clone(), progress.clone());
        tasks.spawn(async move { (i, stage1(&d, &args, &holder, &redactor, &progress).await) });
    }
    let mut states: Vec<Option<HostState>> = (0..desired.len()).map(|_| None).collect();
    while let Some(r) = tasks.join_next().await {
        let (i, s) = r.map_err(|e| Error::Usage(format!("internal error: {e}")))?;
        states[i] = Some(s);
    }
    progress.clear();
    let states: Vec<HostState> = states.into_iter().map(|s| s.expect("every host reported")).collect();

    let any_changes = states.iter().any(|s| matches!(s, HostState::Ready(r) if !r.plan.changes.is_empty()));
    let failed_stage1 = states.iter().filter(|s| matches!(s, HostState::Failed(_))).count();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let hosts = desired
            .iter()
            .zip(&states)
            .map(|(d, s)| match s {
                HostState::Ready(r) => JsonHost { host: &d.host, plan: Some(&r.plan), error: None },
                HostState::Failed(e) => JsonHost { host: &d.host, plan: None, error: Some(error_text(e)) },
            })
            .collect();
        let j = JsonPlan { environment: &args.env, changes: any_changes, hosts, warnings: warnings.clone() };
        let text = serde_json::to_string_pretty(&j).map_err(|e| Error::Usage(e.to_string()))?;
        let _ = writeln!(out, "{}", redactor.redact(&text));
    } else {
        for (d, s) in desired.iter().zip(&states) {
            match s {
                HostState::Ready(r) => {
                    let _ = print_plan(&mut out, &r.plan, &d.connection.address, &redactor);
                }
                HostState::Failed(e) => {
                    let _ =
                        writeln!(out, "{} {}", console::style(&d.host).bold(), console::style("FAILED").red().bold());
                    let _ = writeln!(out, "  {}", redactor.redact(&error_text(e)));
                }
            }
        }
    }
    let _ = out.flush();
    drop(out);

    let release_all = |states: Vec<HostState>, audit: bool| {
        let holder = holder.clone();
        let args = args.clone();
        async move {
            for s in states {
                if let HostState::Ready(r) = s {
                    let line = if audit { audit_line(&args, &id_of(&holder), &r.plan) } else { String::new() };
                    release(*r, &holder, &line).await;
                }
            }
        }
    };

    if args.check {
        release_all(states, false).await;
        return Ok(if failed_stage1 > 0 {
            exit::ERROR
        } else if any_changes {
            exit::CHANGES
        } else {
            exit::OK
        });
    }
    if !any_changes {
        let n_ok = states.len() - failed_stage1;
        release_all(states, true).await;
        if !args.json {
            println!("\nNothing to change on {n_ok} host{}.", if n_ok == 1 { "" } else { "s" });
        }
        return Ok(if failed_stage1 > 0 {
            if failed_stage1 == names.len() {
                exit::ERROR
            } else {
                exit::PARTIAL
            }
        } else {
            exit::OK
        });
    }
    if !args.yes {
        let ok = if std::io::stdin().is_terminal() {
            eprint!("\nApply these changes? [y/N] ");
            let _ = std::io::stderr().flush();
            let read = tokio::task::spawn_blocking(|| {
                let mut answer = String::new();
                let _ = std::io::stdin().read_line(&mut answer);
                answer
            });
            // Ctrl-C at the prompt must not leave every host locked.
            tokio::select! {
                answer = read => matches!(answer.unwrap_or_default().trim(), "y" | "Y" | "yes"),
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("\nInterrupted; releasing the locks, nothing was changed.");
                    release_all(states, false).await;
                    return Ok(exit::INTERRUPTED);
                }
            }
        } else {
            release_all(states, false).await;
            return Err(Error::Usage(
                "refusing to apply without confirmation: standard input is not a terminal".into(),
            )
            .hinted("review the plan, then run again with --yes (or use --check to only see it)"));
        };
        if !ok {
            release_all(states, false).await;
            eprintln!("Aborted; nothing was changed.");
            return Ok(exit::ERROR);
        }
    }

    // stage 2
    let names2 = names.clone();
    let progress = Arc::new(Progress::new(&names2, redactor.clone(), args.json));
    let mut tasks = tokio::task::JoinSet::new();
    let mut results: Vec<Option<std::result::Result<Applied, Error>>> = (0..desired.len()).map(|_| None).collect();
    for (i, s) in states.into_iter().enumerate() {
        match s {
            HostState::Failed(e) => results[i] = Some(Err(e)),
            HostState::Ready(r) => {
                let (d, args, holder, progress) = (desired[i].clone(), args.clone(), holder.clone(), progress.clone());
                tasks.spawn(async move { (i, stage2(*r, &d, &args, &holder, &progress).await) });
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        let (i, res) = r.map_err(|e| Error::Usage(format!("internal error: {e}")))?;
        results[i] = Some(res);
    }
    progress.clear();

    // summary
    let mut failed = 0;
    let mut applied_hosts = 0;
    let width = names.iter().map(|h| h.len()).max().unwrap_or(4);
    let mut lines = vec![String::new(), "Summary:".to_string()];
    for (d, r) in desired.iter().zip(results) {
        match r.expect("every host has a result") {
            Ok(a) if a.error.is_none() && a.invalid.is_empty() => {
                applied_hosts += 1;
                let mut s =
                    format!("  {:width$}  {}  {} applied", d.host, console::style("ok    ").green(), a.applied.len());
                for (p, why) in &a.skipped {
                    s.push_str(&format!("\n  {:width$}  {}  {p}: {why}", "", console::style("skip  ").yellow()));
                }
                lines.push(s);
            }
            Ok(a) => {
                failed += 1;
                let mut s = format!("  {:width$}  {}", d.host, console::style("FAILED").red().bold());
                for (p, rc, out) in &a.invalid {
                    s.push_str(&format!(
                        "\n    validation of {p} failed (exit {rc}); the file on the host was not replaced:"
                    ));
                    for l in out {
                        s.push_str(&format!("\n      | {l}"));
                    }
                }
                if let Some((what, why)) = &a.error {
                    s.push_str(&format!("\n    {what}: {why}"));
                }
                lines.push(s);
            }
            Err(e) => {
                failed += 1;
                lines.push(format!(
                    "  {:width$}  {}  {}",
                    d.host,
                    console::style("FAILED").red().bold(),
                    error_text(&e)
                ));
            }
        }
    }
    let text = redactor.redact(&lines.join("\n"));
    if args.json {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    Ok(if failed == 0 {
        exit::OK
    } else if applied_hosts > 0 {
        exit::PARTIAL
    } else {
        exit::ERROR
    })
}

fn id_of(holder: &str) -> String {
    holder.rsplit("deploy=").next().unwrap_or("").to_string()
}

async fn stage2(
    r: Ready,
    desired: &DesiredHost,
    args: &DeployArgs,
    holder: &str,
    progress: &Progress,
) -> std::result::Result<Applied, Error> {
    let host = desired.host.as_str();
    let id = id_of(holder);
    let audit = audit_line(args, &id, &r.plan);
    if r.plan.changes.is_empty() {
        release(r, holder, &audit).await;
        progress.done(host, "no changes");
        return Ok(Applied { done: true, ..Default::default() });
    }
    progress.step(host, &format!("applying {} changes", r.plan.changes.len()));
    let bundle = crate::apply::bundle(&r.plan, desired);
    let out = r.conn.run("deploy-apply", crate::apply::SCRIPT, &[&id, holder, &audit], Some(&bundle)).await;
    let res = match out {
        Ok(o) => {
            let a = crate::apply::parse_apply(&o.stdout);
            if !a.done && a.error.is_none() && a.invalid.is_empty() {
                let stderr = String::from_utf8_lossy(&o.stderr);
                Err(Error::Remote {
                    host: host.into(),
                    message: format!("apply ended unexpectedly (exit {:?}): {}", o.code, stderr.trim()),
                })
            } else {
                Ok(a)
            }
        }
        Err(e) => Err(e),
    };
    if !matches!(&res, Ok(a) if a.done) {
        // The script releases the lock itself except when it stopped before
        // pass 2; release it so a failed deploy never blocks the next one.
        let _ = r.conn.run("deploy-finish", FINISH, &[holder, ""], None).await;
    }
    progress.done(
        host,
        match &res {
            Ok(a) if a.done => "applied",
            _ => "failed",
        },
    );
    r.conn.close().await;
    res
}

/// An error with its hint, on one or two lines.
pub fn error_text(e: &Error) -> String {
    match e.hint() {
        Some(h) => format!("{e}\n    hint: {h}"),
        None => e.to_string(),
    }
}

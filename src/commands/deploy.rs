//! `deploy ENV`: prepare every host in parallel (connect, probe, plan),
//! show the plans, ask, then apply every host in parallel and summarise.
//! `--check` is the same path stopped before the first write.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use serde::Serialize;

use crate::engine::*;
use crate::error::{exit, Error, Result};
use crate::plan::HostPlan;
use crate::render::DesiredHost;
use crate::report::{error_text, print_plan, Progress};

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

pub(crate) async fn deploy(args: DeployArgs) -> Result<u8> {
    let (loaded, desired) = load_and_render(&args)?;
    let redactor = loaded.redactor.clone();
    let phase_names: Vec<PhaseInfo> = loaded
        .project
        .file
        .phases
        .iter()
        .map(|p| PhaseInfo { name: p.name.clone(), deadman: p.deadman.map(|d| d.0) })
        .collect();
    // a toggle always runs under the dead-man switch, every phase it touches
    let phase_names: Vec<PhaseInfo> = match &args.toggle {
        None => phase_names,
        Some(t) => {
            let window = t.window.unwrap_or_else(|| loaded.project.file.toggles[&t.name].auto_revert.0);
            phase_names.into_iter().map(|p| PhaseInfo { deadman: Some(window), ..p }).collect()
        }
    };
    let mut warnings: Vec<String> = loaded.warnings.iter().map(|w| redactor.redact(&w.to_string())).collect();
    for d in &desired {
        for w in &d.warnings {
            let w = format!("host {}: {}", d.host, redactor.redact(w));
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    for w in &warnings {
        eprintln!("{} {w}", console::style("warning:").yellow().bold());
    }
    let loaded = Arc::new(loaded);
    let id = crate::util::deploy_id();
    let holder = Arc::new(holder(&id));
    let names: Vec<String> = desired.iter().map(|d| d.host.clone()).collect();
    let progress = Arc::new(Progress::new(&names, redactor.clone(), args.json));
    let args = Arc::new(args);
    let desired: Vec<Arc<DesiredHost>> = desired.into_iter().map(Arc::new).collect();

    // --parallel bounds the hosts being worked on; connections stay open
    // between the stages (the masters are separate ssh processes)
    let slots = Arc::new(tokio::sync::Semaphore::new(args.ssh.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, d) in desired.iter().enumerate() {
        let (d, args, holder, redactor, progress) =
            (d.clone(), args.clone(), holder.clone(), redactor.clone(), progress.clone());
        let (loaded, slots) = (loaded.clone(), slots.clone());
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            (i, stage1(d, &loaded, &args, &holder, &redactor, &progress).await)
        });
    }
    let mut states: Vec<Option<HostState>> = (0..desired.len()).map(|_| None).collect();
    while let Some(r) = tasks.join_next().await {
        let (i, s) = r.map_err(|e| Error::Usage(format!("internal error: {e}")))?;
        states[i] = Some(s);
    }
    progress.clear();
    let states: Vec<HostState> = states.into_iter().map(|s| s.expect("every host reported")).collect();

    let any_changes = states.iter().any(|s| matches!(s, HostState::Ready(r) if !r.plan.is_empty()));
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

    // every host at once: closing a master takes a moment, and in turn
    // those moments add up to most of a no-op run
    let release_all = |states: Vec<HostState>, audit: bool| {
        let holder = holder.clone();
        let args = args.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for s in states {
                if let HostState::Ready(r) = s {
                    let line = if audit { audit_line(&args, &id_of(&holder), &r.plan) } else { String::new() };
                    let holder = holder.clone();
                    tasks.spawn(async move { release(*r, &holder, &line).await });
                }
            }
            while tasks.join_next().await.is_some() {}
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
    let phases: Arc<Vec<PhaseInfo>> = Arc::new(phase_names);
    let progress = Arc::new(Progress::new(&names, redactor.clone(), args.json));
    let mut tasks = tokio::task::JoinSet::new();
    let mut results: Vec<Option<Result<HostReport>>> = (0..desired.len()).map(|_| None).collect();
    for (i, s) in states.into_iter().enumerate() {
        match s {
            HostState::Failed(e) => results[i] = Some(Err(e)),
            HostState::Ready(r) => {
                let (d, args, holder, progress, phases) =
                    (desired[i].clone(), args.clone(), holder.clone(), progress.clone(), phases.clone());
                let slots = slots.clone();
                tasks.spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    let counts = audit_counts(&r.plan);
                    let conn_host = d.host.clone();
                    let ready = *r;
                    let res = if ready.plan.is_empty() {
                        Ok(HostReport::default())
                    } else {
                        stage2(&ready, &ready.desired, &holder, &phases, &args, &progress).await
                    };
                    let result = match &res {
                        Ok(rep) if rep.failure.is_none() => "ok".to_string(),
                        Ok(rep) => format!(
                            "failed-in-phase:{}",
                            rep.failure.as_ref().map(|f| f.phase.replace(' ', "_")).unwrap_or_default()
                        ),
                        Err(_) => "error".into(),
                    };
                    let line = format!("{} result={result}", audit_line_counts(&args, &id_of(&holder), &counts));
                    if matches!(&res, Ok(rep) if rep.keep_lock) {
                        ready.conn.close().await;
                    } else {
                        release(ready, &holder, &line).await;
                    }
                    progress
                        .done(&conn_host, if matches!(&res, Ok(r) if r.failure.is_none()) { "done" } else { "failed" });
                    (i, res)
                });
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
            Ok(rep) if rep.failure.is_none() => {
                applied_hosts += 1;
                let what = if rep.applied.is_empty() && rep.services.is_empty() {
                    "no changes".to_string()
                } else {
                    let mut w = format!("{} applied", rep.applied.len());
                    if !rep.services.is_empty() {
                        w.push_str(&format!("; {}", rep.services.join(", ")));
                    }
                    w
                };
                let mut s = format!("  {:width$}  {}  {what}", d.host, console::style("ok    ").green());
                for l in &rep.deadman {
                    s.push_str(&format!("\n    {l}"));
                }
                for (p, why) in &rep.skipped {
                    s.push_str(&format!("\n  {:width$}  {}  {p}: {why}", "", console::style("skip  ").yellow()));
                }
                lines.push(s);
            }
            Ok(rep) => {
                failed += 1;
                let f = rep.failure.expect("failure");
                let mut s = format!(
                    "  {:width$}  {}  phase {}: {}",
                    d.host,
                    console::style("FAILED").red().bold(),
                    f.phase,
                    f.what
                );
                for l in &f.details {
                    s.push_str(&format!("\n    {l}"));
                }
                for l in &f.rolled_back {
                    s.push_str(&format!("\n    rolled back: {l}"));
                }
                for l in &rep.deadman {
                    s.push_str(&format!("\n    dead-man switch: {l}"));
                }
                if !f.rolled_back.is_empty() || f.what.contains("nothing") {
                    s.push_str("\n    later phases did not run");
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

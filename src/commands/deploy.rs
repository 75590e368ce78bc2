//! `deploy ENV`: prepare every host in parallel (connect, probe, plan),
//! show the plans, ask, then apply every host in parallel and summarise.
//! `--check` is the same path stopped before the first write. SIGINT,
//! SIGTERM and SIGHUP stop the run between steps (exit 130).

use std::io::IsTerminal;
use std::sync::Arc;

use crate::engine::{
    apply_all, close_early, first_attempts, load_selection, prepare_all, release_all, render_selection, DeployArgs,
    Early, HostState, Interrupt, Run,
};
use crate::error::{exit, Error, Result};
use crate::plan::outcome::HostReport;
use crate::render::DesiredHost;

pub(crate) async fn deploy(args: DeployArgs) -> Result<u8> {
    let stop = Interrupt::install(&args.env);
    let (loaded, hosts) = load_selection(&args)?;
    // the handshakes run while the roles render
    let early = first_attempts(&args, &loaded, &hosts);
    match render_selection(&args, &loaded, &hosts) {
        Ok(desired) => execute(args, loaded, desired, stop, early).await,
        Err(e) => {
            close_early(early).await;
            Err(e)
        }
    }
}

/// Prepare, show, ask and apply `desired` (a deploy's, or a rollback's).
pub(crate) async fn execute(
    args: DeployArgs,
    loaded: crate::render::Renderer,
    desired: Vec<DesiredHost>,
    stop: Arc<Interrupt>,
    early: Vec<Early>,
) -> Result<u8> {
    let mut warnings = warnings(&loaded, &desired);
    match dirty_tree(&args, &loaded) {
        Ok(Some(w)) => warnings.push(w),
        Ok(None) => {}
        Err(e) => {
            close_early(early).await;
            return Err(e);
        }
    }
    crate::report::warnings(&warnings, &loaded.redactor);
    let run = Arc::new(Run::new(args, loaded, stop.clone(), early));
    let desired: Vec<Arc<DesiredHost>> = desired.into_iter().map(Arc::new).collect();
    let mut states = prepare_all(&run, &desired).await;
    if let Some(expect) = &run.args.expect {
        states = refuse_stale(&run, states, expect).await;
    }
    show(&run, &desired, &states, &warnings);
    if let (Some(path), true) = (&run.args.save_plan, run.args.check) {
        if let Err(e) = super::saved::save(path, &run.args, &states) {
            release_all(&run, states, false).await;
            return Err(e);
        }
    }

    let failed = states.iter().filter(|s| matches!(s, HostState::Failed(_))).count();
    let any_changes = states.iter().any(|s| matches!(s, HostState::Ready(r) if !r.plan.is_empty()));
    if stop.requested() {
        release_all(&run, states, false).await;
        crate::report::note("Interrupted before anything was applied; the locks are released.");
        return Ok(exit::INTERRUPTED);
    }
    if run.args.check {
        release_all(&run, states, false).await;
        return Ok(if failed > 0 {
            exit::ERROR
        } else if any_changes {
            exit::CHANGES
        } else {
            exit::OK
        });
    }
    if !any_changes {
        let n_ok = states.len() - failed;
        release_all(&run, states, true).await;
        if !run.args.json {
            crate::report::nothing_to_change(n_ok, failed);
        }
        return Ok(match failed {
            0 => exit::OK,
            n if n == desired.len() => exit::ERROR,
            _ => exit::PARTIAL,
        });
    }
    if !run.args.yes {
        if let Some(code) = confirm(&stop).await {
            release_all(&run, states, false).await;
            return code;
        }
    }
    let results = apply_all(&run, states).await;
    let rows: Vec<(&str, &Result<HostReport>)> = desired.iter().map(|d| d.host.as_str()).zip(&results).collect();
    crate::report::summary(&rows, &run.loaded.redactor, run.args.json);
    if stop.requested() {
        return Ok(exit::INTERRUPTED);
    }
    let failed = results.iter().filter(|r| !matches!(r, Ok(rep) if rep.failure.is_none())).count();
    Ok(match failed {
        0 => exit::OK,
        n if n == results.len() => exit::ERROR,
        _ => exit::PARTIAL,
    })
}

/// Files the render reads (deploy.yml, the inventory, the roles of the
/// phases) that are not committed: a clean clone would deploy something
/// else (the lost-untracked-files incident). A warning, or for the
/// environments deploy.yml lists in `require_clean`, a refusal to apply.
fn dirty_tree(args: &DeployArgs, loaded: &crate::render::Renderer) -> Result<Option<String>> {
    let mut paths = vec!["deploy.yml".to_string(), "inventory".to_string()];
    paths.extend(loaded.project.roles.keys().map(|r| format!("roles/{r}")));
    let required = loaded.project.file.require_clean.contains(&args.env);
    let dirty = match crate::util::uncommitted(&args.root, &paths) {
        Ok(d) if d.is_empty() => return Ok(None),
        Ok(d) => d,
        Err(why) if required => {
            return Err(Error::Usage(format!(
                "`{}` is in require_clean, and whether the tree is clean cannot be told: {why}",
                args.env
            )))
        }
        Err(_) => return Ok(None),
    };
    let list = dirty.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n");
    if required && !args.check {
        return Err(Error::Usage(format!(
            "`{}` is deployed only from a clean tree (require_clean in deploy.yml), and these files the render reads are not committed:\n{list}",
            args.env
        ))
        .hinted("commit them (or stash them) and deploy again; --check works as it is"));
    }
    Ok(Some(format!(
        "these files the render reads are not committed, so a clean clone would deploy something else:\n{list}"
    )))
}

/// The loader's warnings, then each host's, each once, redacted.
fn warnings(loaded: &crate::render::Renderer, desired: &[DesiredHost]) -> Vec<String> {
    let redactor = &loaded.redactor;
    let mut warnings: Vec<String> = loaded.warnings.iter().map(|w| redactor.redact(&w.to_string())).collect();
    for d in desired {
        for w in &d.warnings {
            let w = format!("host {}: {}", d.host, redactor.redact(w));
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    warnings
}

/// Every host's plan, or why it has none: as text or as JSON.
fn show(run: &Run, desired: &[Arc<DesiredHost>], states: &[HostState], warnings: &[String]) {
    let redactor = &run.loaded.redactor;
    if run.args.json {
        let hosts: Vec<_> = desired
            .iter()
            .zip(states)
            .map(|(d, s)| (d.host.as_str(), d.connection.address.as_str(), plan(s)))
            .collect();
        let phases: Vec<String> = run.phases.iter().map(|p| p.name.clone()).collect();
        let commit = crate::util::git_commit(&run.loaded.project.root);
        let commit = (commit != "none").then_some(commit.as_str());
        crate::report::json_plans(&run.args.env, commit, &phases, &hosts, warnings, redactor);
    } else if run.args.markdown {
        let hosts: Vec<_> = desired
            .iter()
            .zip(states)
            .map(|(d, s)| (d.host.as_str(), d.connection.address.as_str(), plan(s)))
            .collect();
        let commit = crate::util::git_commit(&run.loaded.project.root);
        crate::report::markdown_plans(&run.args.env, (commit != "none").then_some(commit.as_str()), &hosts, redactor);
    } else {
        let hosts: Vec<_> = desired
            .iter()
            .zip(states)
            .map(|(d, s)| (d.host.as_str(), d.connection.address.as_str(), plan(s)))
            .collect();
        crate::report::plans(&hosts, redactor, run.args.check);
    }
}

/// `deploy apply FILE`: a host whose new plan is not the saved one fails,
/// its lock released, nothing applied there.
async fn refuse_stale(
    run: &Arc<Run>,
    states: Vec<HostState>,
    expect: &std::collections::BTreeMap<String, String>,
) -> Vec<HostState> {
    let mut out = Vec::with_capacity(states.len());
    for s in states {
        match s {
            HostState::Ready(r) => match super::saved::stale(expect, &r.desired.host, &r.plan) {
                None => out.push(HostState::Ready(r)),
                Some(why) => {
                    let host = r.desired.host.clone();
                    release_all(run, vec![HostState::Ready(r)], false).await;
                    out.push(HostState::Failed(Error::Remote { host, message: why }));
                }
            },
            failed => out.push(failed),
        }
    }
    out
}

fn plan(s: &HostState) -> std::result::Result<&crate::plan::HostPlan, &Error> {
    match s {
        HostState::Ready(r) => Ok(&r.plan),
        HostState::Failed(e) => Err(e),
    }
}

/// Ask before applying. None: go ahead; otherwise the exit status to stop
/// with (the caller releases the locks).
async fn confirm(stop: &Interrupt) -> Option<Result<u8>> {
    if !std::io::stdin().is_terminal() {
        return Some(Err(Error::Usage(
            "refusing to apply without confirmation: standard input is not a terminal".into(),
        )
        .hinted("review the plan, then run again with --yes (or use --check to only see it)")));
    }
    crate::report::ask("\nApply these changes? [y/N] ");
    let read = tokio::task::spawn_blocking(|| {
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        answer
    });
    // Ctrl-C at the prompt must not leave every host locked.
    tokio::select! {
        answer = read => {
            if matches!(answer.unwrap_or_default().trim(), "y" | "Y" | "yes") {
                None
            } else {
                crate::report::note("Aborted; nothing was changed.");
                Some(Ok(exit::ERROR))
            }
        }
        _ = stop.wait() => {
            crate::report::note("Interrupted; releasing the locks, nothing was changed.");
            Some(Ok(exit::INTERRUPTED))
        }
    }
}

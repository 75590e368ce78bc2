//! A deploy run across hosts: prepare every host in parallel, then release
//! them, or apply every host in parallel. A host's failure of any kind (an
//! error, a reply that does not parse, a panic in its task) is that host's
//! alone: the others finish, release their locks and appear in the summary.

use std::collections::HashMap;

use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};

use super::*;
use crate::remote::ssh::FirstAttempt;

/// What every host's task of one run shares.
pub(crate) struct Run {
    pub(crate) args: DeployArgs,
    pub(crate) loaded: Loaded,
    /// `user@machine pid=N started=T deploy=ID`, written into the lock.
    pub(crate) holder: String,
    /// This deploy's id.
    pub(crate) id: String,
    pub(crate) phases: Vec<PhaseInfo>,
    pub(crate) stop: Arc<Interrupt>,
    /// --parallel: hosts worked on at once.
    slots: Arc<Semaphore>,
    /// Per phase, its `serial:` gate (set when the apply starts).
    pub(crate) gates: std::sync::OnceLock<Vec<Option<Arc<rollout::PhaseGate>>>>,
    /// First connection attempts started during the render, by host.
    early: std::sync::Mutex<HashMap<String, Early>>,
}

impl Run {
    pub(crate) fn new(args: DeployArgs, loaded: Loaded, stop: Arc<Interrupt>, early: Vec<Early>) -> Run {
        let id = crate::util::deploy_id();
        let holder = holder(&id);
        let phases = phase_infos(&args, &loaded);
        let slots = Arc::new(Semaphore::new(args.ssh.parallel.max(1)));
        let early = std::sync::Mutex::new(early.into_iter().map(|e| (e.host.clone(), e)).collect());
        Run { args, loaded, holder, id, phases, stop, slots, gates: Default::default(), early }
    }

    /// The first connection attempt started for `host`, if it was made for
    /// this connection.
    pub(crate) fn take_early(&self, host: &str, c: &crate::render::Connection) -> Option<FirstAttempt> {
        let mut early = self.early.lock().unwrap_or_else(|p| p.into_inner());
        match early.remove(host) {
            Some(e) if e.connection == *c => Some(e.attempt),
            Some(e) => {
                early.insert(host.into(), e); // closed with the rest
                None
            }
            None => None,
        }
    }

    /// Close the first attempts no host took (an interrupted run).
    pub(crate) async fn close_untaken(&self) {
        let rest: Vec<Early> = {
            let mut early = self.early.lock().unwrap_or_else(|p| p.into_inner());
            early.drain().map(|(_, e)| e).collect()
        };
        close_early(rest).await;
    }
}

/// The phases of deploy.yml; a toggle runs every phase it touches under the
/// dead-man switch.
fn phase_infos(args: &DeployArgs, loaded: &Loaded) -> Vec<PhaseInfo> {
    let toggle_window =
        args.toggle.as_ref().map(|t| t.window.unwrap_or_else(|| loaded.project.file.toggles[&t.name].auto_revert.0));
    loaded
        .project
        .file
        .phases
        .iter()
        .map(|p| PhaseInfo {
            name: p.name.clone(),
            deadman: toggle_window.or(p.deadman.map(|d| d.0)),
            // checked when deploy.yml loaded
            serial: p.serial.as_ref().and_then(crate::load::scalar_text).and_then(|t| t.parse().ok()),
        })
        .collect()
}

/// A task that died (a panic: a bug in deploy), as that host's error.
fn task_died(host: &str, stage: &str, e: JoinError) -> Error {
    let why = match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into()),
        Err(e) => e.to_string(),
    };
    Error::Remote {
        host: host.into(),
        message: format!("internal error while {stage} ({why}); this is a bug in deploy, please report it"),
    }
}

/// Collect a JoinSet's results by the index each task was spawned for; a
/// task that died becomes `died(index, error)`.
async fn join_all<T: 'static>(
    mut set: JoinSet<T>,
    ids: HashMap<tokio::task::Id, usize>,
    n: usize,
    died: impl Fn(usize, JoinError) -> T,
) -> Vec<Option<T>> {
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next_with_id().await {
        match r {
            Ok((id, v)) => out[ids[&id]] = Some(v),
            Err(e) => {
                let i = ids[&e.id()];
                out[i] = Some(died(i, e));
            }
        }
    }
    out
}

/// Connect, probe and plan every host, `--parallel` at a time.
pub(crate) async fn prepare_all(run: &Arc<Run>, desired: &[Arc<DesiredHost>]) -> Vec<HostState> {
    let names: Vec<String> = desired.iter().map(|d| d.host.clone()).collect();
    let redactor = run.loaded.redactor.clone();
    let progress = Arc::new(Progress::new(&names, redactor.clone(), run.args.json));
    let mut set = JoinSet::new();
    let mut ids = HashMap::new();
    for (i, d) in desired.iter().enumerate() {
        let (d, run, progress) = (d.clone(), run.clone(), progress.clone());
        let h = set.spawn(async move {
            let _slot = run.slots.clone().acquire_owned().await;
            if run.stop.requested() {
                return HostState::Failed(Error::Remote {
                    host: d.host.clone(),
                    message: "interrupted before this host was probed; nothing was changed".into(),
                });
            }
            stage1(d, &run, &progress).await
        });
        ids.insert(h.id(), i);
    }
    let states =
        join_all(set, ids, desired.len(), |i, e| HostState::Failed(task_died(&names[i], "probing and planning", e)))
            .await;
    progress.clear();
    run.close_untaken().await;
    states.into_iter().map(|s| s.expect("every host was spawned")).collect()
}

/// Release every prepared host at once (closing a master takes a moment, and
/// one by one those moments add up to most of a no-op run). With `audit`,
/// hosts write their audit line.
pub(crate) async fn release_all(run: &Arc<Run>, states: Vec<HostState>, audit: bool) {
    let mut set = JoinSet::new();
    for s in states {
        if let HostState::Ready(r) = s {
            let line = if audit { audit_line(&run.args, &run.id, &r.plan) } else { String::new() };
            let holder = run.holder.clone();
            set.spawn(async move { release(*r, &holder, &line, 0).await });
        }
    }
    while set.join_next().await.is_some() {}
}

/// Apply every host's plan, `--parallel` at a time; each host releases its
/// lock when done, whatever happened to it (the dead-man switch keeps the
/// lock of a host it will revert).
pub(crate) async fn apply_all(run: &Arc<Run>, states: Vec<HostState>) -> Vec<Result<HostReport>> {
    let names: Vec<String> = states
        .iter()
        .filter_map(|s| match s {
            HostState::Ready(r) => Some(r.desired.host.clone()),
            HostState::Failed(_) => None,
        })
        .collect();
    let progress = Arc::new(Progress::new(&names, run.loaded.redactor.clone(), run.args.json));
    let n = states.len();
    let mut out: Vec<Option<Result<HostReport>>> = (0..n).map(|_| None).collect();
    let mut ready: Vec<(usize, Box<Ready>)> = Vec::new();
    for (i, s) in states.into_iter().enumerate() {
        match s {
            // hosts that failed to prepare are not applied: their error stands
            HostState::Failed(e) => out[i] = Some(Err(e)),
            HostState::Ready(r) => ready.push((i, r)),
        }
    }
    // each phase with `serial:` lets the hosts that change something through it in batches
    let changing: Vec<String> =
        ready.iter().filter(|(_, r)| !r.plan.is_empty()).map(|(_, r)| r.desired.host.clone()).collect();
    let _ = run
        .gates
        .set(run.phases.iter().map(|p| p.serial.map(|s| Arc::new(rollout::PhaseGate::new(&changing, s)))).collect());
    let rollout = run.args.rollout;
    let batches = rollout.batches(ready.len());
    let mut pending: Vec<Option<(usize, Box<Ready>)>> = ready.into_iter().map(Some).collect();
    let (mut failed, mut stopped): (Vec<String>, Option<String>) = (Vec::new(), None);
    let total = pending.len();
    for (b, batch) in batches.iter().enumerate() {
        let mine: Vec<(usize, Box<Ready>)> = batch.iter().filter_map(|&k| pending[k].take()).collect();
        if let Some(why) = &stopped {
            for (i, r) in mine {
                out[i] = Some(Ok(not_started(run, *r, why).await));
            }
            continue;
        }
        let hosts: HashMap<usize, String> = mine.iter().map(|(i, r)| (*i, r.desired.host.clone())).collect();
        for (i, res) in apply_batch(run, mine, &progress).await {
            if !matches!(&res, Ok(rep) if rep.failure.is_none() && !rep.interrupted) {
                failed.push(hosts[&i].clone());
            }
            out[i] = Some(res);
        }
        if b + 1 == batches.len() || !rollout.staged() {
            continue;
        }
        if rollout.crossed(failed.len(), total) {
            stopped = Some(format!(
                "the rollout stopped after {} failed ({} of {total} hosts, over max_fail_percentage {})",
                failed.join(", "),
                failed.len(),
                rollout.max_fail_percentage
            ));
        } else if run.stop.requested() {
            stopped = Some("interrupted between batches".into());
        } else if b == 0 && rollout.canary.is_some() && !run.args.yes {
            let mut canary: Vec<&String> = hosts.values().collect();
            canary.sort();
            let canary: Vec<&str> = canary.into_iter().map(String::as_str).collect();
            if !super::ask_continue(&canary, total - canary.len()).await {
                stopped = Some(format!("not continued after the canary ({})", canary.join(", ")));
            }
        }
    }
    progress.clear();
    out.into_iter().map(|r| r.expect("every host has a result")).collect()
}

/// Apply one batch of hosts at once; (index, result) of each.
async fn apply_batch(
    run: &Arc<Run>,
    batch: Vec<(usize, Box<Ready>)>,
    progress: &Arc<Progress>,
) -> Vec<(usize, Result<HostReport>)> {
    let mut set = JoinSet::new();
    let mut ids = HashMap::new();
    let mut hosts = Vec::new();
    let index: Vec<usize> = batch.iter().map(|(i, _)| *i).collect();
    for (k, (_, r)) in batch.into_iter().enumerate() {
        hosts.push(r.desired.host.clone());
        let (run, progress) = (run.clone(), progress.clone());
        let h = set.spawn(async move { apply_host(run, Arc::new(*r), progress).await });
        ids.insert(h.id(), k);
    }
    let out = join_all(set, ids, index.len(), |k, e| Err(task_died(&hosts[k], "applying", e))).await;
    index.into_iter().zip(out).map(|(i, r)| (i, r.expect("every host of the batch has a result"))).collect()
}

/// A host that will take no phase: the `serial:` gates let the next batches through.
fn leave_gates(run: &Run, host: &str) {
    for g in run.gates.get().into_iter().flatten().flatten() {
        g.leave(host, false);
    }
}

/// A host the rollout never reached: its lock released, nothing applied.
async fn not_started(run: &Arc<Run>, ready: Ready, why: &str) -> HostReport {
    leave_gates(run, &ready.desired.host);
    let line = format!("{} result=not-started", audit_line_counts(&run.args, &run.id, &audit_counts(&ready.plan)));
    release(ready, &run.holder, &line, 0).await;
    HostReport { not_started: Some(why.to_string()), ..Default::default() }
}

/// One host's apply, then its audit line and lock release. The apply runs
/// in a task of its own, so that even a panic in it leaves the connection
/// here to release the lock with.
async fn apply_host(run: Arc<Run>, ready: Arc<Ready>, progress: Arc<Progress>) -> Result<HostReport> {
    let _slot = run.slots.clone().acquire_owned().await;
    let host = ready.desired.host.clone();
    let counts = audit_counts(&ready.plan);
    let res = if ready.plan.is_empty() {
        Ok(HostReport::default())
    } else if run.stop.requested() {
        leave_gates(&run, &host);
        Ok(HostReport { interrupted: true, ..Default::default() })
    } else {
        run.stop.holding(&host, false);
        let (r, rn, p) = (ready.clone(), run.clone(), progress.clone());
        match tokio::spawn(async move { stage2(&r, &rn, &p).await }).await {
            Ok(res) => res,
            Err(e) => Err(task_died(&host, "applying", e)),
        }
    };
    let result = match &res {
        Ok(rep) if rep.interrupted => "interrupted".to_string(),
        Ok(rep) if rep.failure.is_none() => "ok".to_string(),
        Ok(rep) => {
            format!("failed-in-phase:{}", rep.failure.as_ref().map(|f| f.phase.replace(' ', "_")).unwrap_or_default())
        }
        Err(_) => "error".into(),
    };
    let line = format!("{} result={result}", audit_line_counts(&run.args, &run.id, &counts));
    let ready = Arc::try_unwrap(ready).ok().expect("the apply task has ended");
    if matches!(&res, Ok(rep) if rep.keep_lock) {
        ready.conn.close().await;
    } else {
        let keep = if result == "ok" { run.loaded.project.file.keep_journals } else { 0 };
        release(ready, &run.holder, &line, keep).await;
    }
    run.stop.released(&host);
    let ok = matches!(&res, Ok(r) if r.failure.is_none() && !r.interrupted);
    progress.done(&host, if ok { "done" } else { "failed" });
    res
}

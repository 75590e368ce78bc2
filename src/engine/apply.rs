//! Apply a host's plan phase by phase: files in one transfer, on_change
//! commands, container actions, the health gate, and the phase's rollback
//! when any of them fails.

use super::*;
use crate::plan::system::Stage;

pub(crate) fn health_items(
    services: &[&ServiceAction],
    plan_system: &[crate::plan::system::SysChange],
    desired: &DesiredHost,
    phase: usize,
    with_checks: bool,
) -> String {
    use crate::remote::health::Check;
    let mut checks = Vec::new();
    for a in services {
        let timeout = desired.compose.iter().find(|c| c.project == a.project).map(|c| c.health_timeout).unwrap_or(60);
        checks.push(Check::Service { timeout, project: &a.project, service: &a.service });
    }
    // units this phase started, restarted or reloaded that must run
    for u in desired.system.units.iter().filter(|u| with_checks && u.phase == phase && u.selected) {
        let touched = plan_system.iter().any(|c| {
            c.phase == phase
                && c.resource == crate::plan::system::SysResource::Unit
                && c.name == crate::plan::units::shown(u)
                && matches!(c.action.as_str(), "start" | "restart" | "reload")
        });
        if touched && u.state == Some(crate::load::system::UnitState::Started) {
            checks.push(Check::Unit { timeout: u.timeout, unit: &u.name, user: u.user.as_deref() });
        }
    }
    for c in desired.checks.iter().filter(|c| with_checks && c.phase == phase && c.selected) {
        let timeout = c.timeout;
        checks.push(match &c.kind {
            CheckKind::Http { url, status } => Check::Http { timeout, url, status: *status },
            CheckKind::Tcp { address } => {
                let (host, port) = address.rsplit_once(':').unwrap_or((address.as_str(), "0"));
                Check::Tcp { timeout, host, port }
            }
            CheckKind::Command { command } => Check::Command { timeout, command },
        });
    }
    crate::remote::health::encode(&checks)
}

pub(crate) async fn run_compose(r: &Ready, manifest: String) -> Result<crate::remote::compose::Reply> {
    let out = r.run("deploy-compose", crate::remote::compose::SCRIPT, &[], Some(manifest.as_bytes())).await?;
    crate::remote::compose::parse_compose(&out.stdout).map_err(|m| r.protocol(m))
}

/// Container actions for one phase, one compose call per project.
pub(crate) fn phase_manifests(
    variant: crate::plan::state::ComposeVariant,
    desired: &DesiredHost,
    actions: &[&ServiceAction],
    rollback: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for p in &desired.compose {
        let mine: Vec<&&ServiceAction> = actions.iter().filter(|a| a.project == p.project).collect();
        if mine.is_empty() {
            continue;
        }
        let mut m = crate::remote::compose::manifest_head(variant, p);
        let names = |k: ServiceActionKind| -> Vec<String> {
            mine.iter().filter(|a| a.action == k).map(|a| a.service.clone()).collect()
        };
        let (create, start, recreate) =
            (names(ServiceActionKind::Create), names(ServiceActionKind::Start), names(ServiceActionKind::Recreate));
        if rollback {
            // back to the previous inputs: recreate from the restored override,
            // remove what this deploy created
            if !recreate.is_empty() {
                m.push_str(&format!("R\t{}\n", recreate.join("\t")));
            }
            if !create.is_empty() {
                m.push_str(&format!("D\t{}\n", create.join("\t")));
            }
        } else if !create.is_empty() && create.len() == p.services.len() {
            // a new project: everything, in dependency order
            m.push_str("U\n");
        } else {
            let cs: Vec<String> = create.into_iter().chain(start).collect();
            if !cs.is_empty() {
                m.push_str(&format!("C\t{}\n", cs.join("\t")));
            }
            if !recreate.is_empty() {
                m.push_str(&format!("R\t{}\n", recreate.join("\t")));
            }
        }
        for a in mine.iter().filter(|a| a.action == ServiceActionKind::Reload) {
            m.push_str(&format!("X\t{}\t{}\n", a.service, a.command.join("\t")));
        }
        out.push(m);
    }
    out
}

/// Apply every phase of the plan in order; the first phase that fails is
/// rolled back and ends the host's run. A stop asked for (SIGINT, SIGTERM,
/// SIGHUP) ends it between phases.
pub(crate) async fn phases_loop(
    r: &Ready,
    run: &Run,
    progress: &Progress,
    report: &mut HostReport,
    armed: &mut Option<Armed>,
) -> Result<()> {
    let mut gates = super::rollout::Gates::new(&run.gates, &r.desired.host);
    let res = phases(r, run, progress, report, armed, &mut gates).await;
    gates.finish(res.is_err() || report.failure.is_some());
    res
}

async fn phases(
    r: &Ready,
    run: &Run,
    progress: &Progress,
    report: &mut HostReport,
    armed: &mut Option<Armed>,
    gates: &mut super::rollout::Gates,
) -> Result<()> {
    let host = r.desired.host.as_str();
    let mut started = false;
    for (p, phase) in run.phases.iter().enumerate() {
        let Some(mut ph) = PhaseRun::new(r, run, progress, p, &phase.name) else {
            gates.leave(p, false);
            continue;
        };
        if let Err(who) = gates.enter(p).await {
            report.failure = Some(Failure {
                phase: phase.name.clone(),
                what: format!(
                    "stopped before this phase: {who} failed in it, and its serial: lets no later batch in; the phases before it are applied"
                ),
                ..Default::default()
            });
            return Ok(());
        }
        if started && run.stop.requested() {
            report.interrupted = true;
            report.failure = Some(Failure {
                phase: phase.name.clone(),
                what:
                    "interrupted before this phase: the phases before it are applied, this one and later ones are not"
                        .into(),
                ..Default::default()
            });
            return Ok(());
        }
        started = true;
        if let (Some(secs), None) = (phase.deadman, armed.as_ref()) {
            progress.step(host, &format!("{}: arming the dead-man switch ({secs}s)", phase.name));
            *armed = Some(arm(r, host, run, secs).await?);
            run.stop.holding(host, true);
        }
        if let Some(f) = ph.run_ops(report, Stage::Pre).await? {
            let f = ph.rollback(f).await?;
            report.applied.clear();
            report.failure = Some(f);
            return Ok(());
        }
        if let Some(f) = ph.write_files(report, armed.is_some()).await? {
            let f = if ph.ops_applied { ph.rollback(f).await? } else { f };
            report.failure = Some(f);
            return Ok(());
        }
        // a failpoint for the test that one host's panic, lock held, stays
        // that host's (DEPLOY_FAILPOINT=panic-apply:HOST)
        if std::env::var("DEPLOY_FAILPOINT").is_ok_and(|v| v == format!("panic-apply:{host}")) {
            panic!("failpoint panic-apply");
        }
        let mut failure = ph.run_ops(report, Stage::Post).await?;
        if failure.is_none() {
            failure = ph.run_triggers().await?;
        }
        if failure.is_none() {
            failure = ph.containers(report, armed.is_some()).await?;
        }
        if failure.is_none() {
            failure = ph.health_gate().await?;
        }
        if let Some(f) = failure {
            let f = ph.rollback(f).await?;
            report.applied.clear();
            report.failure = Some(f);
            return Ok(());
        }
        gates.leave(p, false);
    }
    Ok(())
}

/// One phase of one host's apply.
struct PhaseRun<'a> {
    r: &'a Ready,
    run: &'a Run,
    progress: &'a Progress,
    index: usize,
    name: &'a str,
    /// `DEPLOY_ID/pNNN`
    journal: String,
    changes: Vec<&'a crate::plan::Change>,
    actions: Vec<&'a ServiceAction>,
    /// Packages, units, users... of this phase.
    sys: Vec<&'a crate::plan::system::SysChange>,
    /// Commands to run again after a rollback restored the files (unit restarts).
    reruns: Vec<String>,
    /// Some operation of this phase ran (its undo is journaled).
    ops_applied: bool,
    /// Labels of the operations sent to the host (done, or failed half-way).
    ops_ran: Vec<String>,
    /// on_change commands of the files this phase changed, in order.
    triggers: Vec<String>,
    files_applied: bool,
}

impl<'a> PhaseRun<'a> {
    /// The phase's part of the plan; None when it has nothing to do.
    fn new(r: &'a Ready, run: &'a Run, progress: &'a Progress, index: usize, name: &'a str) -> Option<PhaseRun<'a>> {
        let changes: Vec<&crate::plan::Change> = r.plan.changes.iter().filter(|c| c.phase == index).collect();
        let actions: Vec<&ServiceAction> = r.plan.services.iter().filter(|a| a.phase == index).collect();
        let sys: Vec<&crate::plan::system::SysChange> = r.plan.system.iter().filter(|c| c.phase == index).collect();
        if changes.is_empty() && actions.is_empty() && sys.is_empty() {
            return None;
        }
        let journal = format!("{}/p{index:03}", run.id);
        Some(PhaseRun {
            r,
            run,
            progress,
            index,
            name,
            journal,
            changes,
            actions,
            sys,
            reruns: vec![],
            ops_applied: false,
            ops_ran: vec![],
            triggers: vec![],
            files_applied: false,
        })
    }

    fn host(&self) -> &str {
        &self.r.desired.host
    }

    fn failure(&self, what: impl Into<String>) -> Failure {
        Failure { phase: self.name.to_string(), what: what.into(), ..Default::default() }
    }

    /// Nothing after this phase's upload: the apply then writes the audit
    /// line and releases the lock itself (a changed host costs two round
    /// trips in all).
    fn upload_is_last(&self, armed: bool) -> bool {
        let (r, p, desired) = (self.r, self.index, &self.r.desired);
        !armed
            && self.actions.is_empty()
            && self.sys.is_empty()
            && !r.plan.system.iter().any(|c| c.phase > p)
            && self.changes.iter().all(|c| c.file.is_none_or(|i| desired.files[i].on_change.is_none()))
            && health_items(&[], &r.plan.system, desired, p, true).is_empty()
            && !r.plan.changes.iter().any(|c| c.phase > p)
            && !r.plan.services.iter().any(|a| a.phase > p)
    }

    /// Upload and swap the phase's files. A failure here changed nothing
    /// (validation) or was rolled back by the host itself.
    async fn write_files(&mut self, report: &mut HostReport, armed: bool) -> Result<Option<Failure>> {
        if self.changes.is_empty() {
            return Ok(None);
        }
        let (r, desired) = (self.r, &self.r.desired);
        self.progress.step(self.host(), &format!("{}: writing {} changes", self.name, self.changes.len()));
        let upload = crate::remote::apply::Upload::new(&self.changes, desired);
        let kib = upload.kib().to_string();
        let audit = if self.upload_is_last(armed) {
            format!("{} result=ok", audit_line_counts(&self.run.args, &self.run.id, &audit_counts(&r.plan)))
        } else {
            String::new()
        };
        let stall = crate::util::stall_seconds();
        let keep = self.run.loaded.project.file.keep_journals.to_string();
        let args = [self.journal.as_str(), &self.run.holder, &audit, &stall.to_string(), &keep, &kib];
        let input = crate::remote::ssh::Input::Stream(Box::new(move |w| upload.write(w)));
        let (out, sent) = match r.exec("deploy-apply", crate::remote::apply::SCRIPT, &args, input).await {
            Ok(out) => out,
            Err(Error::Remote { host, message }) => {
                return Err(Error::Remote {
                    host,
                    message: format!(
                        "{message} during phase {}'s upload and swap. On the host, a swap that started finishes (or rolls back) by itself; an upload that brings no data for {stall}s is dropped and the lock released. `deploy {} --check` shows which",
                        self.name, self.run.args.env
                    ),
                })
            }
            Err(e) => return Err(e),
        };
        let a = crate::remote::apply::parse_apply(&out.stdout).map_err(|m| r.protocol(m))?;
        // the host's word first: a script that stopped reading (no room,
        // lock lost) says why; only then what stopped the stream
        if let (Err(why), None) = (&sent, &a.error) {
            if !a.done {
                return Ok(Some(self.failure(format!("upload: {why}"))));
            }
        }
        if a.finished {
            r.set_lock(LockState::Released);
        }
        report.skipped.extend(a.skipped.iter().cloned());
        if !a.invalid.is_empty() {
            let mut f = self.failure("validation failed; nothing of this phase was changed");
            for (path, rc, lines) in &a.invalid {
                f.details
                    .push(format!("validation of {path} failed (exit {rc}); the file on the host was not replaced:"));
                f.details.extend(lines.iter().map(|l| format!("  | {l}")));
            }
            return Ok(Some(f));
        }
        if let Some((what, why)) = &a.error {
            let mut f = self.failure(format!("{what}: {why}"));
            not_restored(&mut f, &a.not_restored, &format!("{} paths", a.not_restored.len()));
            return Ok(Some(f));
        }
        if !a.done {
            return Err(Error::Remote {
                host: self.host().into(),
                message: format!(
                    "apply ended unexpectedly (exit {:?}): {}",
                    out.code,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        self.files_applied = !a.applied.is_empty();
        for c in self.changes.iter().filter(|c| a.applied.contains(&c.path)) {
            if let Some(cmd) = c.file.and_then(|i| desired.files[i].on_change.clone()) {
                if !self.triggers.contains(&cmd) {
                    self.triggers.push(cmd);
                }
            }
        }
        report.applied.extend(a.applied);
        Ok(None)
    }

    /// Run this phase's operations of `stage` (users before the files,
    /// packages, units and commands after them), their undos journaled.
    async fn run_ops(&mut self, report: &mut HostReport, stage: Stage) -> Result<Option<Failure>> {
        let mut ops: Vec<&crate::plan::system::Op> =
            self.sys.iter().flat_map(|c| c.ops.iter()).filter(|o| o.stage == stage).collect();
        if ops.is_empty() {
            return Ok(None);
        }
        ops.sort_by_key(|o| o.order);
        let labels: Vec<&str> = ops.iter().map(|o| o.label.as_str()).collect();
        self.progress.step(self.host(), &format!("{}: {}", self.name, labels.join(", ")));
        let input = crate::remote::system::encode(&ops);
        self.ops_applied = true;
        for o in &ops {
            for r in &o.rerun {
                if !self.reruns.contains(r) {
                    self.reruns.push(r.clone());
                }
            }
        }
        let out = self
            .r
            .run("deploy-system", crate::remote::system::SCRIPT, &[&self.journal], Some(input.as_bytes()))
            .await?;
        let reply = crate::remote::system::parse_system(&out.stdout).map_err(|m| self.r.protocol(m))?;
        report.applied.extend(reply.done.iter().cloned());
        self.ops_ran.extend(reply.done.iter().cloned());
        if let Some((label, ..)) = &reply.failed {
            self.ops_ran.push(label.clone());
        }
        if let Some(why) = reply.error {
            return Ok(Some(self.failure(why)));
        }
        if let Some((label, rc, lines)) = reply.failed {
            return Ok(Some(Failure {
                details: lines.iter().map(|l| format!("  | {l}")).collect(),
                ..self.failure(format!("{label} failed (exit {rc})"))
            }));
        }
        if !reply.finished {
            return Err(Error::Remote {
                host: self.host().into(),
                message: format!("deploy-system ended unexpectedly: {}", String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
        Ok(None)
    }

    /// Run the on_change commands of the changed files (`journal`: where
    /// they are recorded for a revert).
    async fn triggers_in(&self, journal: &str) -> Result<Option<Failure>> {
        let input = crate::remote::triggers::encode(&self.triggers);
        let out =
            self.r.run("deploy-triggers", crate::remote::triggers::SCRIPT, &[journal], Some(input.as_bytes())).await?;
        let failed = crate::remote::triggers::parse_triggers(&out.stdout).map_err(|m| self.r.protocol(m))?;
        Ok(failed.map(|f| Failure {
            details: f.output.iter().map(|l| format!("  | {l}")).collect(),
            ..self.failure(format!("on_change command `{}` failed (exit {})", f.command, f.code))
        }))
    }

    async fn run_triggers(&self) -> Result<Option<Failure>> {
        if self.triggers.is_empty() {
            return Ok(None);
        }
        self.progress.step(self.host(), &format!("{}: running {} on_change commands", self.name, self.triggers.len()));
        self.triggers_in(&self.journal).await
    }

    /// Create, recreate, start or reload the phase's containers; under the
    /// dead-man switch, leave the host what its revert must recreate.
    async fn containers(&self, report: &mut HostReport, armed: bool) -> Result<Option<Failure>> {
        if self.actions.is_empty() {
            return Ok(None);
        }
        let (r, desired) = (self.r, &self.r.desired);
        let variant = r
            .plan
            .compose
            .ok_or_else(|| Error::Remote { host: self.host().into(), message: "no compose on the host".into() })?;
        let names: Vec<String> = self.actions.iter().map(|a| format!("{} {}", verb(a.action), a.service)).collect();
        self.progress.step(self.host(), &format!("{}: {}", self.name, names.join(", ")));
        for m in phase_manifests(variant, desired, &self.actions, false) {
            if let crate::remote::compose::Reply::Failed { why, output: lines } = run_compose(r, m).await? {
                return Ok(Some(Failure { details: lines, ..self.failure(why) }));
            }
        }
        report.services.extend(self.actions.iter().map(|a| format!("{} {}/{}", verb(a.action), a.project, a.service)));
        if armed {
            let back: Vec<&ServiceAction> =
                self.actions.iter().copied().filter(|a| a.action != ServiceActionKind::Start).collect();
            for (k, m) in phase_manifests(variant, desired, &back, true).into_iter().enumerate() {
                let path = format!("/var/lib/deploy/journal/{}/compose-revert.{k}", self.journal);
                r.run("deploy-save", "mkdir -p \"${1%/*}\" && cat >\"$1\"", &[&path], Some(m.as_bytes())).await?;
            }
        }
        Ok(None)
    }

    /// The phase's health gate: its containers and its checks.
    async fn health_gate(&self) -> Result<Option<Failure>> {
        let items = health_items(&self.actions, &self.r.plan.system, &self.r.desired, self.index, true);
        if items.is_empty() {
            return Ok(None);
        }
        self.progress
            .step(self.host(), &format!("{}: waiting for health ({} checks)", self.name, items.lines().count()));
        let out = self.r.run("deploy-health", crate::remote::health::SCRIPT, &[], Some(items.as_bytes())).await?;
        let h = crate::remote::health::parse_health(&out.stdout).map_err(|m| self.r.protocol(m))?;
        if h.failed.is_empty() {
            return Ok(None);
        }
        let mut f = self.failure("health gate failed");
        for (what, why, logs) in &h.failed {
            f.details.push(format!("{what}: {why}"));
            if !logs.is_empty() {
                f.details.push(format!("  last log lines of {what}:"));
                f.details.extend(logs.iter().map(|l| format!("  | {l}")));
            }
        }
        Ok(Some(f))
    }

    /// Undo the phase: restore its files from the journal (and re-run their
    /// on_change commands), then its containers. Says what it did in `f`.
    async fn rollback(&self, mut f: Failure) -> Result<Failure> {
        self.progress.step(self.host(), &format!("{}: rolling back", self.name));
        if self.files_applied || self.ops_applied {
            self.restore_files(&mut f).await?;
        }
        if let Some(variant) = self.r.plan.compose {
            self.restore_containers(variant, &mut f).await?;
        }
        Ok(f)
    }

    async fn restore_files(&self, f: &mut Failure) -> Result<()> {
        let (r, journal, n) = (self.r, &self.journal, self.changes.len());
        let out = r.run("deploy-revert", crate::remote::revert::SCRIPT, &[journal], None).await?;
        let again: Vec<String> = self.triggers.iter().chain(&self.reruns).cloned().collect();
        if !again.is_empty() {
            // the restored files must take effect again (firewall, sshd, units)
            let input = crate::remote::triggers::encode(&again);
            let out = r
                .run(
                    "deploy-triggers",
                    crate::remote::triggers::SCRIPT,
                    &[&format!("{journal}/rollback")],
                    Some(input.as_bytes()),
                )
                .await?;
            let failed = crate::remote::triggers::parse_triggers(&out.stdout).map_err(|m| r.protocol(m))?.is_some();
            let how = if failed { ": FAILED" } else { "" };
            f.rolled_back.push(format!("re-ran {} on the restored files{how}", again.join("; ")));
        }
        match crate::remote::revert::parse_revert(&out.stdout) {
            Ok(rv) if rv.done && rv.not_restored.is_empty() => {
                if n > 0 {
                    f.rolled_back
                        .push(format!("restored the {n} changed paths of phase {} from the journal", self.name));
                }
                let undone: Vec<&str> = self
                    .sys
                    .iter()
                    .flat_map(|c| &c.ops)
                    .filter(|o| !o.undo.is_empty() && self.ops_ran.contains(&o.label))
                    .map(|o| o.label.as_str())
                    .collect();
                if !undone.is_empty() {
                    f.rolled_back.push(format!("undid {}", undone.join(", ")));
                }
            }
            Ok(rv) => {
                let what = format!(
                    "{} of the {n} changed paths of phase {} (REVERT-INCOMPLETE in the host's audit log)",
                    rv.not_restored.len(),
                    self.name
                );
                not_restored(f, &rv.not_restored, &what);
            }
            Err(m) => {
                f.revert_incomplete = true;
                f.rolled_back.push(format!(
                    "REVERT INCOMPLETE: could not restore the journal {journal}: {m} {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(())
    }

    async fn restore_containers(&self, variant: crate::plan::state::ComposeVariant, f: &mut Failure) -> Result<()> {
        let (r, desired) = (self.r, &self.r.desired);
        let back: Vec<&ServiceAction> =
            self.actions.iter().copied().filter(|a| a.action != ServiceActionKind::Start).collect();
        for m in phase_manifests(variant, desired, &back, true) {
            if let crate::remote::compose::Reply::Failed { why, .. } = run_compose(r, m).await? {
                f.rolled_back.push(format!("restoring containers failed: {why}"));
            }
        }
        let recreated: Vec<&ServiceAction> =
            back.iter().copied().filter(|a| a.action == ServiceActionKind::Recreate).collect();
        if !recreated.is_empty() {
            let items = health_items(&recreated, &[], desired, self.index, false);
            let out = r.run("deploy-health", crate::remote::health::SCRIPT, &[], Some(items.as_bytes())).await?;
            let h = crate::remote::health::parse_health(&out.stdout).map_err(|m| r.protocol(m))?;
            for s in &h.passed {
                f.rolled_back.push(format!("{s} recreated with its previous inputs and healthy again"));
            }
            for (s, why, _) in &h.failed {
                f.rolled_back.push(format!("{s} recreated with its previous inputs but NOT healthy: {why}"));
            }
        }
        for a in back.iter().filter(|a| a.action == ServiceActionKind::Reload) {
            f.rolled_back.push(format!("re-ran the reload of {}/{} with the restored config", a.project, a.service));
        }
        for a in back.iter().filter(|a| a.action == ServiceActionKind::Create) {
            f.rolled_back.push(format!("removed {}/{}, which this deploy created", a.project, a.service));
        }
        Ok(())
    }
}

/// Record in `f` the paths a revert could not restore.
fn not_restored(f: &mut Failure, paths: &[(String, String)], what: &str) {
    if paths.is_empty() {
        return;
    }
    f.revert_incomplete = true;
    f.rolled_back.push(format!("REVERT INCOMPLETE: {what} could NOT be restored:"));
    f.rolled_back.extend(paths.iter().map(|(p, why)| format!("  not restored: {p}: {why}")));
}

pub(crate) fn verb(a: ServiceActionKind) -> &'static str {
    match a {
        ServiceActionKind::Create => "create",
        ServiceActionKind::Recreate => "recreate",
        ServiceActionKind::Start => "start",
        ServiceActionKind::Reload => "reload",
    }
}

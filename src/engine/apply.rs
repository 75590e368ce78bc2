//! Apply a host's plan phase by phase: files in one transfer, on_change
//! commands, container actions, the health gate, and the phase's rollback
//! when any of them fails.

use super::*;

/// What happened on one host during apply.
#[derive(Debug, Default)]
pub struct HostReport {
    /// Paths changed.
    pub applied: Vec<String>,
    /// Paths left alone (changed since the plan), with why.
    pub skipped: Vec<(String, String)>,
    /// Container actions done ("recreated apps/openclaw").
    pub services: Vec<String>,
    /// Why the host failed, if it did.
    pub failure: Option<Failure>,
    /// What the dead-man switch did.
    pub deadman: Vec<String>,
    /// The lock must stay: an unconfirmed deploy's revert releases it.
    pub keep_lock: bool,
}

/// A failed phase: what failed, the details, and what was restored.
#[derive(Debug, Default)]
pub struct Failure {
    /// Phase name.
    pub phase: String,
    /// One line: what failed.
    pub what: String,
    /// Output worth showing (validator output, a container's last log lines).
    pub details: Vec<String>,
    /// What the rollback did.
    pub rolled_back: Vec<String>,
    /// The rollback could not restore every path.
    pub revert_incomplete: bool,
}

pub(crate) fn compose_manifest(
    variant: crate::plan::state::ComposeVariant,
    p: &crate::render::DesiredCompose,
) -> String {
    let v = match variant {
        crate::plan::state::ComposeVariant::V2 => "v2",
        crate::plan::state::ComposeVariant::V1 => "v1",
    };
    let mut files = p.files.clone();
    files.push(p.override_path.clone());
    format!("P\t{v}\t{}\t{}\t{}\n", p.dir, p.project, files.join("\t"))
}

pub(crate) fn health_items(
    services: &[&ServiceAction],
    desired: &DesiredHost,
    phase: usize,
    with_checks: bool,
) -> String {
    let mut items = String::new();
    for a in services {
        let timeout = desired.compose.iter().find(|c| c.project == a.project).map(|c| c.health_timeout).unwrap_or(60);
        items.push_str(&format!("S\t{timeout}\t{}\t{}\n", a.project, a.service));
    }
    if with_checks {
        for c in desired.checks.iter().filter(|c| c.phase == phase && c.selected) {
            items.push_str(&match &c.kind {
                CheckKind::Http { url, status } => format!("H\t{}\t{url}\t{status}\n", c.timeout),
                CheckKind::Tcp { address } => {
                    let (h, p) = address.rsplit_once(':').unwrap_or((address.as_str(), "0"));
                    format!("T\t{}\t{h}\t{p}\n", c.timeout)
                }
                CheckKind::Command { command } => format!("M\t{}\t{command}\n", c.timeout),
            });
        }
    }
    items
}

pub(crate) async fn run_compose(r: &Ready, manifest: String) -> Result<std::result::Result<(), (String, Vec<String>)>> {
    let out = r.run("deploy-compose", crate::remote::apply::COMPOSE, &[], Some(manifest.as_bytes())).await?;
    crate::remote::apply::parse_compose(&out.stdout).map_err(|m| r.protocol(m))
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
        let mut m = compose_manifest(variant, p);
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

#[allow(clippy::too_many_arguments)]
pub(crate) async fn phases_loop(
    r: &Ready,
    desired: &DesiredHost,
    holder: &str,
    phases: &[PhaseInfo],
    args: &DeployArgs,
    progress: &Progress,
    report: &mut HostReport,
    armed: &mut Option<Armed>,
) -> Result<()> {
    let host = desired.host.as_str();
    let id = id_of(holder);
    let variant = r.plan.compose;
    for (p, phase) in phases.iter().enumerate() {
        let phase_name = &phase.name;
        let changes: Vec<&crate::plan::Change> = r.plan.changes.iter().filter(|c| c.phase == p).collect();
        let actions: Vec<&ServiceAction> = r.plan.services.iter().filter(|a| a.phase == p).collect();
        if changes.is_empty() && actions.is_empty() {
            continue;
        }
        let journal = format!("{id}/p{p:03}");
        if let (Some(secs), None) = (phase.deadman, armed.as_ref()) {
            progress.step(host, &format!("{phase_name}: arming the dead-man switch ({secs}s)"));
            *armed = Some(arm(r, host, &id, secs, args).await?);
        }
        let mut files_applied = false;
        let mut triggers: Vec<String> = Vec::new();
        if !changes.is_empty() {
            progress.step(host, &format!("{phase_name}: writing {} changes", changes.len()));
            let bundle = crate::remote::apply::bundle(&changes, desired);
            // nothing after this apply: it writes the audit line and releases
            // the lock itself (a changed host costs two round trips in all)
            let last = armed.is_none()
                && actions.is_empty()
                && changes.iter().all(|c| c.file.is_none_or(|i| desired.files[i].on_change.is_none()))
                && health_items(&[], desired, p, true).is_empty()
                && !r.plan.changes.iter().any(|c| c.phase > p)
                && !r.plan.services.iter().any(|a| a.phase > p);
            let audit = if last {
                format!("{} result=ok", audit_line_counts(args, &id, &audit_counts(&r.plan)))
            } else {
                String::new()
            };
            let out =
                r.run("deploy-apply", crate::remote::apply::SCRIPT, &[&journal, holder, &audit], Some(&bundle)).await?;
            let a = crate::remote::apply::parse_apply(&out.stdout).map_err(|m| r.protocol(m))?;
            if a.finished {
                r.finished.store(true, Ordering::SeqCst);
            }
            report.skipped.extend(a.skipped.iter().cloned());
            if !a.invalid.is_empty() {
                let mut f = Failure {
                    phase: phase_name.clone(),
                    what: "validation failed; nothing of this phase was changed".into(),
                    ..Default::default()
                };
                for (path, rc, lines) in &a.invalid {
                    f.details.push(format!(
                        "validation of {path} failed (exit {rc}); the file on the host was not replaced:"
                    ));
                    f.details.extend(lines.iter().map(|l| format!("  | {l}")));
                }
                report.failure = Some(f);
                return Ok(());
            }
            if let Some((what, why)) = &a.error {
                let mut f = Failure { phase: phase_name.clone(), what: format!("{what}: {why}"), ..Default::default() };
                if !a.not_restored.is_empty() {
                    f.revert_incomplete = true;
                    f.rolled_back
                        .push(format!("REVERT INCOMPLETE: {} paths could NOT be restored:", a.not_restored.len()));
                    f.rolled_back.extend(a.not_restored.iter().map(|(p, why)| format!("  not restored: {p}: {why}")));
                }
                report.failure = Some(f);
                return Ok(());
            }
            if !a.done {
                return Err(Error::Remote {
                    host: host.into(),
                    message: format!(
                        "apply ended unexpectedly (exit {:?}): {}",
                        out.code,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                });
            }
            files_applied = !a.applied.is_empty();
            for c in changes.iter().filter(|c| a.applied.contains(&c.path)) {
                if let Some(cmd) = c.file.and_then(|i| desired.files[i].on_change.clone()) {
                    if !triggers.contains(&cmd) {
                        triggers.push(cmd);
                    }
                }
            }
            report.applied.extend(a.applied);
        }
        let mut failure: Option<Failure> = None;
        if !triggers.is_empty() {
            progress.step(host, &format!("{phase_name}: running {} on_change commands", triggers.len()));
            let input = triggers.join("\n") + "\n";
            let out =
                r.run("deploy-triggers", crate::remote::apply::TRIGGERS, &[&journal], Some(input.as_bytes())).await?;
            let text = crate::remote::protocol::body("triggers", &out.stdout).map_err(|m| r.protocol(m))?;
            if let Some(line) = text.lines().find(|l| l.starts_with("F\t")) {
                let f: Vec<&str> = line.splitn(3, '\t').collect();
                failure = Some(Failure {
                    phase: phase_name.clone(),
                    what: format!(
                        "on_change command `{}` failed (exit {})",
                        f.get(1).unwrap_or(&""),
                        f.get(2).unwrap_or(&"?")
                    ),
                    details: text.lines().filter_map(|l| l.strip_prefix("O\t")).map(|l| format!("  | {l}")).collect(),
                    ..Default::default()
                });
            }
        }
        if failure.is_none() && !actions.is_empty() {
            let variant =
                variant.ok_or_else(|| Error::Remote { host: host.into(), message: "no compose on the host".into() })?;
            let names: Vec<String> = actions.iter().map(|a| format!("{} {}", verb(a.action), a.service)).collect();
            progress.step(host, &format!("{phase_name}: {}", names.join(", ")));
            for m in phase_manifests(variant, desired, &actions, false) {
                if let Err((why, lines)) = run_compose(r, m).await? {
                    failure =
                        Some(Failure { phase: phase_name.clone(), what: why, details: lines, ..Default::default() });
                    break;
                }
            }
            if failure.is_none() {
                report
                    .services
                    .extend(actions.iter().map(|a| format!("{} {}/{}", verb(a.action), a.project, a.service)));
                if armed.is_some() {
                    // what the dead-man revert must recreate after restoring files
                    let back: Vec<&ServiceAction> =
                        actions.iter().copied().filter(|a| a.action != ServiceActionKind::Start).collect();
                    for (k, m) in phase_manifests(variant, desired, &back, true).into_iter().enumerate() {
                        let path = format!("/var/lib/deploy/journal/{journal}/compose-revert.{k}");
                        r.run("deploy-save", "mkdir -p \"${1%/*}\" && cat >\"$1\"", &[&path], Some(m.as_bytes()))
                            .await?;
                    }
                }
            }
        }
        if failure.is_none() {
            let items = health_items(&actions, desired, p, true);
            if !items.is_empty() {
                progress.step(host, &format!("{phase_name}: waiting for health ({} checks)", items.lines().count()));
                let out = r.run("deploy-health", crate::remote::apply::HEALTH, &[], Some(items.as_bytes())).await?;
                let h = crate::remote::apply::parse_health(&out.stdout).map_err(|m| r.protocol(m))?;
                if !h.failed.is_empty() {
                    let mut f =
                        Failure { phase: phase_name.clone(), what: "health gate failed".into(), ..Default::default() };
                    for (what, why, logs) in &h.failed {
                        f.details.push(format!("{what}: {why}"));
                        if !logs.is_empty() {
                            f.details.push(format!("  last log lines of {what}:"));
                            f.details.extend(logs.iter().map(|l| format!("  | {l}")));
                        }
                    }
                    failure = Some(f);
                }
            }
        }
        if let Some(mut f) = failure {
            progress.step(host, &format!("{phase_name}: rolling back"));
            if files_applied {
                let out = r.run("deploy-revert", crate::remote::apply::REVERT, &[&journal], None).await?;
                if !triggers.is_empty() {
                    // the restored files must take effect again (firewall, sshd)
                    let input = triggers.join("\n") + "\n";
                    let rj = format!("{journal}/rollback");
                    let t = r
                        .run("deploy-triggers", crate::remote::apply::TRIGGERS, &[&rj], Some(input.as_bytes()))
                        .await?;
                    let ok = crate::remote::protocol::body("triggers", &t.stdout).is_ok_and(|b| !b.contains("F\t"));
                    f.rolled_back.push(format!(
                        "re-ran {} on the restored files{}",
                        triggers.join("; "),
                        if ok { "" } else { ": FAILED" }
                    ));
                }
                match crate::remote::apply::parse_revert(&out.stdout) {
                    Ok(rv) if rv.done && rv.not_restored.is_empty() => f.rolled_back.push(format!(
                        "restored the {} changed paths of phase {phase_name} from the journal",
                        changes.len()
                    )),
                    Ok(rv) => {
                        f.revert_incomplete = true;
                        f.rolled_back.push(format!(
                            "REVERT INCOMPLETE: {} of the {} changed paths of phase {phase_name} could NOT be restored (REVERT-INCOMPLETE in the host's audit log):",
                            rv.not_restored.len(),
                            changes.len()
                        ));
                        f.rolled_back
                            .extend(rv.not_restored.iter().map(|(p, why)| format!("  not restored: {p}: {why}")));
                    }
                    Err(m) => {
                        f.revert_incomplete = true;
                        f.rolled_back.push(format!(
                            "REVERT INCOMPLETE: could not restore the journal {journal}: {m} {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ))
                    }
                }
            }
            if let Some(variant) = variant {
                let back: Vec<&ServiceAction> =
                    actions.iter().copied().filter(|a| a.action != ServiceActionKind::Start).collect();
                for m in phase_manifests(variant, desired, &back, true) {
                    if let Err((why, _)) = run_compose(r, m).await? {
                        f.rolled_back.push(format!("restoring containers failed: {why}"));
                    }
                }
                let recreated: Vec<&ServiceAction> =
                    back.iter().copied().filter(|a| a.action == ServiceActionKind::Recreate).collect();
                if !recreated.is_empty() {
                    let items = health_items(&recreated, desired, p, false);
                    let out = r.run("deploy-health", crate::remote::apply::HEALTH, &[], Some(items.as_bytes())).await?;
                    let h = crate::remote::apply::parse_health(&out.stdout).map_err(|m| r.protocol(m))?;
                    for s in &h.passed {
                        f.rolled_back.push(format!("{s} recreated with its previous inputs and healthy again"));
                    }
                    for (s, why, _) in &h.failed {
                        f.rolled_back.push(format!("{s} recreated with its previous inputs but NOT healthy: {why}"));
                    }
                }
                for a in back.iter().filter(|a| a.action == ServiceActionKind::Reload) {
                    f.rolled_back
                        .push(format!("re-ran the reload of {}/{} with the restored config", a.project, a.service));
                }
                for a in back.iter().filter(|a| a.action == ServiceActionKind::Create) {
                    f.rolled_back.push(format!("removed {}/{}, which this deploy created", a.project, a.service));
                }
            }
            report.applied.clear();
            report.failure = Some(f);
            return Ok(());
        }
    }
    Ok(())
}

pub(crate) fn verb(a: ServiceActionKind) -> &'static str {
    match a {
        ServiceActionKind::Create => "create",
        ServiceActionKind::Recreate => "recreate",
        ServiceActionKind::Start => "start",
        ServiceActionKind::Reload => "reload",
    }
}

//! Prepare a host: connect, probe, re-render for toggles that are on,
//! plan, run pre-flight checks, attach diffs, and take the lock when a
//! prompt will follow. Nothing on the host changes here.

use super::*;
use crate::remote::ssh::FirstAttempt;

/// Load and render every selected host: any error here is bad input, and
/// nothing has been sent anywhere yet.
pub(crate) fn load_and_render(args: &DeployArgs) -> Result<(Loaded, Vec<DesiredHost>)> {
    let (loaded, hosts) = load_selection(args)?;
    let desired = render_selection(args, &loaded, &hosts)?;
    Ok((loaded, desired))
}

/// Load the project and the hosts --limit selects.
pub(crate) fn load_selection(args: &DeployArgs) -> Result<(Loaded, Vec<String>)> {
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
    let hosts = loaded.limit(args.limit.as_deref(), "--limit")?;
    Ok((loaded, hosts))
}

/// Render every selected host (for a toggle run, with the toggle's value).
/// A repository that reads host facts is rendered once each host's facts
/// are in (prepare_host): here only how to reach it is known.
pub(crate) fn render_selection(args: &DeployArgs, loaded: &Loaded, hosts: &[String]) -> Result<Vec<DesiredHost>> {
    loaded.set_check_mode(args.check);
    if let Some(t) = args.toggle.as_ref().filter(|t| !loaded.project.file.toggles.contains_key(&t.name)) {
        let known: Vec<&String> = loaded.project.file.toggles.keys().collect();
        return Err(Error::Usage(format!(
            "no toggle `{}` in deploy.yml (toggles: {})",
            t.name,
            known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    if loaded.reads_facts {
        return hosts
            .iter()
            .map(|h| {
                let mut d = DesiredHost::new(h, loaded.connection_of(h)?);
                d.facts_pending = true;
                Ok(d)
            })
            .collect();
    }
    match &args.toggle {
        None => hosts.iter().map(|h| loaded.render_host(h, args.roles.as_deref())).collect(),
        Some(t) => {
            let spec = loaded.project.file.toggles.get(&t.name).ok_or_else(|| {
                let known: Vec<&String> = loaded.project.file.toggles.keys().collect();
                Error::Usage(format!(
                    "no toggle `{}` in deploy.yml (toggles: {})",
                    t.name,
                    known.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let value = crate::load::yaml::yaml_to_value(if t.on { &spec.on } else { &spec.off });
            let overrides = vec![(spec.var.clone(), value)];
            hosts.iter().map(|h| toggle_desired(loaded, h, &t.name, t.on, spec, &overrides)).collect()
        }
    }
}

/// The first connection attempts of the first `--parallel` hosts, started
/// while the render runs. A toggle run renders with other values, which
/// may move the connection, so it starts none.
pub(crate) fn first_attempts(args: &DeployArgs, loaded: &Loaded, hosts: &[String]) -> Vec<Early> {
    if args.toggle.is_some() {
        return Vec::new();
    }
    let n = args.ssh.parallel.max(1);
    // a host whose connection does not resolve is left to the render to report
    hosts
        .iter()
        .take(n)
        .filter_map(|h| loaded.connection_of(h).ok().map(|c| (h, c)))
        .map(|(h, c)| Early { host: h.clone(), attempt: FirstAttempt::start(h, &c, &args.ssh), connection: c })
        .collect()
}

/// A host's first connection attempt, and the connection it was made for.
pub(crate) struct Early {
    pub(crate) host: String,
    pub(crate) connection: crate::render::Connection,
    pub(crate) attempt: FirstAttempt,
}

/// Close the connections attempts opened that nothing took.
pub(crate) async fn close_early(early: Vec<Early>) {
    let mut set = tokio::task::JoinSet::new();
    for e in early {
        set.spawn(e.attempt.close());
    }
    while set.join_next().await.is_some() {}
}

/// A host's desired state for a toggle run: the toggle's roles rendered with
/// its value, plus the toggle's state file in the last of their phases.
pub(crate) fn toggle_desired(
    loaded: &Loaded,
    host: &str,
    name: &str,
    on: bool,
    spec: &crate::load::project::Toggle,
    overrides: &[(String, minijinja::Value)],
) -> Result<DesiredHost> {
    let mut d = loaded.render_host_with(host, Some(&spec.roles), overrides)?;
    let phase = d.files.iter().filter(|f| f.selected).map(|f| f.phase).max().unwrap_or(0);
    let role = spec.roles[0].clone();
    let bytes = if on { b"on\n".to_vec() } else { b"off\n".to_vec() };
    d.dirs.push(crate::render::DesiredDir {
        path: crate::render::TOGGLE_DIR.into(),
        role: role.clone(),
        owner: None,
        group: None,
        mode: Some(0o755),
        phase,
        selected: true,
    });
    d.dirs.sort_by(|a, b| a.path.cmp(&b.path));
    let state_file = format!("{}/{name}", crate::render::TOGGLE_DIR);
    d.files.push(crate::render::DesiredFile::generated(&state_file, &role, &format!("toggle {name}"), bytes, phase));
    d.extra_probe.retain(|p| !p.ends_with(&format!("/{name}")));
    if let Some(t) = &spec.confirm_via {
        let v = loaded.render_line(host, overrides, t)?;
        d.confirm_via = Some(v.trim().to_string()).filter(|v| !v.is_empty());
    }
    Ok(d)
}

/// The directory each file, link and line file needs, once each: the
/// probe says which of them is not a directory (plan::parents).
fn needed_dirs(desired: &DesiredHost) -> Vec<&str> {
    let mut dirs: Vec<&str> = desired
        .files
        .iter()
        .map(|f| f.dest.as_str())
        .chain(desired.links.iter().map(|l| l.path.as_str()))
        .chain(desired.system.lines.iter().map(|l| l.path.as_str()))
        .filter_map(|p| p.rfind('/').map(|i| &p[..i]))
        .filter(|d| !d.is_empty())
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs
}

pub(crate) fn probe_paths(desired: &DesiredHost) -> Vec<String> {
    desired
        .dirs
        .iter()
        .map(|d| d.path.clone())
        .chain(desired.files.iter().map(|f| f.dest.clone()))
        .chain(desired.links.iter().map(|l| l.path.clone()))
        .chain(desired.absent.iter().map(|a| a.path.clone()))
        .chain(desired.compose.iter().map(|c| c.override_path.clone()))
        .chain(desired.extra_probe.iter().cloned())
        .chain(desired.system.lines.iter().map(|l| l.path.clone()))
        .chain(desired.system.commands.iter().flat_map(|c| c.creates.iter().chain(c.removes.iter()).cloned()))
        .chain(desired.system.users.iter().map(|u| u.home.clone().unwrap_or_else(|| format!("/home/{}", u.name))))
        .collect()
}

pub(crate) async fn probe(conn: &Conn, host: &str, desired: &DesiredHost) -> Result<crate::plan::state::Remote> {
    let docker = if desired.compose.is_empty() { "no" } else { "yes" };
    let paths = probe_paths(desired);
    let old_max = crate::remote::probe::OLD_MAX.to_string();
    // the trees this deploy would remove: the plan shows what they hold
    let trees: Vec<&str> = desired.absent.iter().filter(|a| a.selected).map(|a| a.path.as_str()).collect();
    let ntrees = trees.len().to_string();
    let mut argv: Vec<&str> = vec![docker, &old_max, &ntrees];
    argv.extend(trees);
    let dirs = needed_dirs(desired);
    let ndirs = dirs.len().to_string();
    argv.push(&ndirs);
    argv.extend(dirs);
    argv.extend(paths.iter().map(|p| p.as_str()));
    // every file's wanted sum (UNKNOWN_SUM for a big file not hashed yet: the host
    // then sends its own sum, if it has a file there); d marks those whose
    // current contents a diff would show: secret ones never leave the host,
    // preserved ones are never overwritten, big ones are not diffed
    let wanted: Vec<(&str, &str)> = desired
        .files
        .iter()
        .map(|f| (f.dest.as_str(), f.known_sha256().unwrap_or(crate::remote::probe::UNKNOWN_SUM)))
        .collect();
    let diffable = |f: &crate::render::DesiredFile| !(f.secret || f.preserve || f.disk.is_some());
    let stdin: String = crate::remote::probe::queries(desired)
        + &desired
            .files
            .iter()
            .zip(&wanted)
            .map(|(f, (dest, sha))| format!("{} {sha}  {dest}\n", if diffable(f) { 'd' } else { 'n' }))
            .collect::<String>();
    let out = conn.run("deploy-probe", crate::remote::probe::SCRIPT, &argv, Some(stdin.as_bytes())).await?;
    crate::remote::probe::parse_probe_with(&out.stdout, &wanted).map_err(|m| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Error::Remote {
            host: host.into(),
            message: format!(
                "probe failed: {m}{}",
                if stderr.trim().is_empty() { String::new() } else { format!(" (stderr: {})", stderr.trim()) }
            ),
        }
    })
}

/// Toggles that are on according to the host's own state files.
pub(crate) fn toggles_on(loaded: &Loaded, remote: &crate::plan::state::Remote) -> Vec<(String, minijinja::Value)> {
    let on = crate::util::sha256_hex(b"on\n");
    loaded
        .project
        .file
        .toggles
        .iter()
        .filter(|(name, _)| {
            remote.paths.get(&format!("{}/{name}", crate::render::TOGGLE_DIR)).and_then(|e| e.sha256.as_deref())
                == Some(on.as_str())
        })
        .map(|(_, t)| (t.var.clone(), crate::load::yaml::yaml_to_value(&t.on)))
        .collect()
}

/// Prepare one host: connect, probe, plan, check. Nothing on the host
/// changes here; a prompt to come takes the lock.
pub(crate) async fn stage1(desired: Arc<DesiredHost>, run: &Run, progress: &Progress) -> HostState {
    let host = desired.host.clone();
    progress.step(&host, "connecting");
    let first = run.take_early(&host, &desired.connection);
    let conn =
        match crate::remote::ssh::connect_showing(&host, &desired.connection, &run.args.ssh, Some(progress), first)
            .await
        {
            Ok(c) => c,
            Err(e) => return HostState::Failed(e),
        };
    match prepare_host(conn, desired, run, progress).await {
        Ok(ready) => {
            let plan = &ready.plan;
            let n = plan.changes.len() + plan.services.len() + plan.system.len();
            progress.done(&host, &if n == 0 { "in sync".to_string() } else { format!("{n} changes planned") });
            HostState::Ready(Box::new(ready))
        }
        Err(e) => HostState::Failed(e),
    }
}

async fn prepare_host(conn: Conn, desired: Arc<DesiredHost>, run: &Run, progress: &Progress) -> Result<Ready> {
    let (args, loaded, host) = (&run.args, &run.loaded, desired.host.clone());
    let host = host.as_str();
    let desired = if desired.facts_pending {
        progress.step(host, "gathering facts");
        Arc::new(render_with_facts(&conn, run, host).await?)
    } else {
        desired
    };
    progress.step(host, "probing");
    let (desired, remote, mut overrides) = probe_as_recorded(&conn, desired, run).await?;
    if let Lock::Seen(who) = &remote.lock {
        if !args.check {
            return Err(lock_error_with(host, &args.env, who, &remote.holder_journals));
        }
    }
    let mut plan = plan_host(&desired, &remote).map_err(|m| Error::Remote { host: host.into(), message: m })?;
    let guarded: Vec<(usize, &str)> =
        run.phases.iter().enumerate().filter(|(_, p)| p.deadman.is_some()).map(|(i, p)| (i, p.name.as_str())).collect();
    crate::plan::system::refuse_unrevertible(&plan, &guarded)
        .map_err(|m| Error::Remote { host: host.into(), message: m })?;
    refuse_shrinking(&mut plan, args).map_err(|m| Error::Remote { host: host.into(), message: m })?;
    if let Lock::Seen(who) = &remote.lock {
        // --check: the plan stands, but a deploy now would be refused
        plan.notes.push(format!(
            "{}; a deploy now would be refused (release it with `deploy unlock {} --host {host}` once that deploy is gone)",
            lock_holder_text(who, &remote.holder_journals),
            args.env
        ));
    }
    let port_now = if conn.fallback.is_some() {
        desired.connection.port.unwrap_or(22)
    } else {
        remote.server_port.or(desired.connection.port).unwrap_or(22)
    };
    let client = remote.client_addr.clone().unwrap_or_default();
    overrides.push(("deploy_controller_addr".into(), client.clone().into()));
    overrides.push(("deploy_ssh_port".into(), port_now.into()));
    let confirm_addr = confirm_addr(&desired, args, client).await?;
    overrides.push(("deploy_confirm_addr".into(), confirm_addr.into()));
    if let Some(fb) = conn.fallback {
        fallback_guard(loaded, args, &desired, &plan, fb)?;
    }
    let with_facts: Vec<_> = desired.facts.iter().cloned().chain(overrides.iter().cloned()).collect();
    preflight(&conn, loaded, &desired, &remote, &plan, &with_facts, args.toggle.is_some()).await?;
    // Only a prompt needs the lock now (the plan must hold until it is
    // answered); with --yes the apply's first command takes it, which saves
    // a round trip, and the apply re-checks every hash under the lock anyway.
    let prompt = !args.yes && std::io::stdin().is_terminal();
    let locked = !args.check && !plan.is_empty() && prompt;
    let redactor = &loaded.redactor;
    lock_and_diff(&conn, &desired, &mut plan, &remote, redactor, locked, &run.holder, &args.env).await?;
    if let Some(fb) = conn.fallback {
        plan.notes.push(format!(
            "nothing listens on port {port_now} (ansible_port) yet: connected on deploy_fallback_port {fb}; this deploy must move sshd, and its confirmation uses port {port_now}"
        ));
    }
    Ok(Ready {
        conn,
        plan,
        lock: std::sync::Mutex::new(if locked { LockState::Held } else { LockState::NotTaken }),
        holder: run.holder.clone(),
        env: args.env.clone(),
        desired,
    })
}

/// The host's facts (facts.sh, on the connection the probe uses), then the
/// host rendered with them, as the toggle run or the deploy renders it.
async fn render_with_facts(conn: &Conn, run: &Run, host: &str) -> Result<DesiredHost> {
    let (args, loaded) = (&run.args, &run.loaded);
    let out = conn.run("deploy-facts", crate::remote::facts::SCRIPT, &[], None).await?;
    let facts = crate::remote::facts::parse_facts(&out.stdout)
        .map_err(|m| Error::Remote { host: host.into(), message: format!("gathering facts: {m}") })?;
    let facts = loaded.fact_vars(host, &facts);
    let mut d = match &args.toggle {
        None => loaded.render_host_with(host, args.roles.as_deref(), &facts)?,
        Some(t) => {
            let spec = &loaded.project.file.toggles[&t.name];
            let value = crate::load::yaml::yaml_to_value(if t.on { &spec.on } else { &spec.off });
            let overrides: Vec<_> = facts.iter().cloned().chain([(spec.var.clone(), value)]).collect();
            toggle_desired(loaded, host, &t.name, t.on, spec, &overrides)?
        }
    };
    d.facts = facts;
    Ok(d)
}

/// Probe the host, and render it again with the toggles the host records as
/// on (a toggle that is on stays on: a plain deploy never undoes it
/// silently); a toggle run renders with its own value. Returns what to plan
/// from, what the host has, and the toggle values in force.
async fn probe_as_recorded(
    conn: &Conn,
    desired: Arc<DesiredHost>,
    run: &Run,
) -> Result<(Arc<DesiredHost>, crate::plan::state::Remote, Vec<(String, minijinja::Value)>)> {
    let (args, loaded, host) = (&run.args, &run.loaded, desired.host.as_str());
    // The probe never locks: a host with nothing to change costs one round
    // trip. The lock is taken once there is something to do (by the apply's
    // first command, or before a prompt: lock_and_diff), and the apply
    // re-checks every file's hash against this probe anyway.
    let remote = probe(conn, host, &desired).await?;
    if let Some(t) = &args.toggle {
        let spec = &loaded.project.file.toggles[&t.name];
        let value = crate::load::yaml::yaml_to_value(if t.on { &spec.on } else { &spec.off });
        return Ok((desired, remote, vec![(spec.var.clone(), value)]));
    }
    let overrides = toggles_on(loaded, &remote);
    if overrides.is_empty() {
        return Ok((desired, remote, overrides));
    }
    let with_facts: Vec<_> = desired.facts.iter().cloned().chain(overrides.iter().cloned()).collect();
    let mut again = loaded.render_host_with(host, args.roles.as_deref(), &with_facts)?;
    again.facts = desired.facts.clone();
    let again = Arc::new(again);
    if probe_paths(&again) == probe_paths(&desired) {
        return Ok((again, remote, overrides));
    }
    let mut again_remote = probe(conn, host, &again).await?;
    again_remote.lock = remote.lock;
    again_remote.holder_journals = remote.holder_journals;
    Ok((again, again_remote, overrides))
}

/// Our address as the confirmation will see it. A toggle confirming through
/// another way in (its VPN address) relies on it: prove it works now, and
/// learn our address as seen that way, before switching to rules that may
/// leave only that way open.
async fn confirm_addr(desired: &DesiredHost, args: &DeployArgs, client: String) -> Result<String> {
    let Some(via) = &desired.confirm_via else { return Ok(client) };
    let host = desired.host.as_str();
    let mut c = desired.connection.clone();
    c.address = via.clone();
    let ask = "echo \"$SSH_CONNECTION\"";
    let res = crate::remote::ssh::run_fresh(host, &c, &args.ssh, "deploy-via", ask, &[], Duration::from_secs(30)).await;
    let why = match res {
        Ok(o) if o.code == Some(0) => {
            return Ok(String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or("").to_string())
        }
        Ok(o) => format!("exit {:?}", o.code),
        Err(Error::Connect { message, .. }) => message,
        Err(e) => e.to_string(),
    };
    Err(Error::Remote {
        host: host.into(),
        message: format!(
            "the confirmation would connect through {via} (confirm_via), which does not work now: {why}. Nothing was changed; fix that way in first"
        ),
    })
}

/// Connected through deploy_fallback_port: only a deploy that changes
/// something under the dead-man switch can be the one moving sshd, and only
/// the switch's confirmation on ansible_port proves it did.
pub(crate) fn fallback_guard(
    loaded: &Loaded,
    args: &DeployArgs,
    desired: &DesiredHost,
    plan: &HostPlan,
    fb: u16,
) -> Result<()> {
    let guarded = args.toggle.is_some()
        || plan.changes.iter().any(|c| loaded.project.file.phases.get(c.phase).is_some_and(|p| p.deadman.is_some()));
    if guarded {
        return Ok(());
    }
    Err(Error::Remote {
        host: desired.host.clone(),
        message: format!(
            "nothing listens on ansible_port {}, so this deploy connected on deploy_fallback_port {fb}, but it changes nothing under a dead-man switch: it cannot be the deploy that moves sshd, and nothing would prove the next deploy gets in. Nothing was changed. Fix ansible_port, or deploy the sshd change (in a `deadman:` phase)",
            desired.connection.port.unwrap_or(22)
        ),
    })
}

/// A change that empties a managed file, or takes more than 90% of its
/// bytes, is refused under `--yes` (no one sees the plan; incident 9: a
/// good file replaced by an empty render), unless the file says
/// `may_empty: true` or the command line `--allow-shrink`. `--check` notes
/// it; a person at the prompt sees it marked in the plan.
fn refuse_shrinking(plan: &mut HostPlan, args: &DeployArgs) -> std::result::Result<(), String> {
    let marked: Vec<String> = plan
        .changes
        .iter()
        .filter_map(|c| c.shrink.filter(|s| !s.allowed).map(|s| format!("{} ({}, role {})", c.path, s.words(), c.role)))
        .collect();
    if marked.is_empty() || args.allow_shrink {
        return Ok(());
    }
    let what = format!(
        "this deploy empties or shrinks by more than 90%: {}; if that is meant, say `may_empty: true` on the file in its role.yml, or pass --allow-shrink",
        marked.join(", ")
    );
    if args.check || !args.yes {
        plan.notes.push(format!("{what} (a deploy --yes would refuse it)"));
        return Ok(());
    }
    Err(format!("refused, nothing changed: {what}"))
}

/// Run the pre-flight checks of the roles this host's plan changes: the
/// `that` expressions here, commands and container health on the host.
/// Read-only; a failure stops the host before anything is armed or written.
/// Container health is checked before toggles only: a plain deploy may be
/// the very fix for a broken service and must not be held back by it.
pub(crate) async fn preflight(
    conn: &Conn,
    loaded: &Loaded,
    desired: &DesiredHost,
    remote: &crate::plan::state::Remote,
    plan: &HostPlan,
    facts: &[(String, minijinja::Value)],
    toggle: bool,
) -> Result<()> {
    if desired.preflight.is_empty() {
        return Ok(());
    }
    // a resource two roles declare alike is named `a, b`: both roles changed
    let mut roles: Vec<&str> = plan.changes.iter().flat_map(|c| c.role.split(", ")).collect();
    for a in &plan.services {
        if let Some(c) = desired.compose.iter().find(|c| c.project == a.project) {
            roles.push(c.role.as_str());
        }
    }
    roles.sort_unstable();
    roles.dedup();
    if roles.is_empty() {
        return Ok(());
    }
    let mut failed = loaded.failed_assertions(desired, facts, &roles)?;
    use crate::remote::health::Check;
    let mut checks = Vec::new();
    for p in desired.preflight.iter().filter(|p| roles.contains(&p.role.as_str())) {
        match &p.kind {
            crate::render::PreflightKind::Command { command } => checks.push(Check::Command { timeout: 30, command }),
            crate::render::PreflightKind::Healthy { project, service } => {
                // a service this deploy creates has nothing to be healthy yet
                if toggle && remote.containers.iter().any(|c| &c.project == project && &c.service == service) {
                    checks.push(Check::Service { timeout: 5, project, service });
                }
            }
            crate::render::PreflightKind::That { .. } => {}
        }
    }
    let items = crate::remote::health::encode(&checks);
    if !items.is_empty() {
        let out = conn.run("deploy-preflight", crate::remote::health::SCRIPT, &[], Some(items.as_bytes())).await?;
        let h = crate::remote::health::parse_health(&out.stdout)
            .map_err(|m| Error::Remote { host: desired.host.clone(), message: format!("unreadable reply: {m}") })?;
        failed.extend(h.failed.iter().map(|(what, why, _)| format!("{what}: {why}")));
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(Error::Remote {
        host: desired.host.clone(),
        message: format!(
            "pre-flight checks failed; nothing was changed:\n{}",
            failed.iter().map(|f| format!("  - {f}")).collect::<Vec<_>>().join("\n")
        ),
    })
}

/// Attach redacted diffs (old contents came with the probe) and, when `lock`
/// (a prompt is coming: the plan must still hold when it is answered), take
/// the lock now; otherwise the first command of the apply takes it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn lock_and_diff(
    conn: &Conn,
    desired: &DesiredHost,
    plan: &mut HostPlan,
    remote: &crate::plan::state::Remote,
    redactor: &Redactor,
    lock: bool,
    holder: &str,
    env: &str,
) -> Result<()> {
    if lock {
        let out = conn.run("deploy-lock", &crate::remote::lock::with_lock("", holder), &[], None).await?;
        if let Some(who) = crate::remote::lock::lock_held(out.code, &out.stderr) {
            return Err(lock_error(&desired.host, env, &who));
        }
    }
    for c in plan.changes.iter_mut().filter(|c| c.resource == crate::plan::Resource::Lines) {
        // only the lines that change: the rest of that file is not deploy's
        let old = match remote.system.reads.get(&c.path) {
            Some(crate::plan::state::Old::Bytes(b)) => Some(b.as_slice()),
            _ => None,
        };
        c.diff =
            Some(crate::plan::diff::unified_with(&c.path, old, c.content.as_deref().unwrap_or_default(), redactor, 0));
    }
    for c in plan.changes.iter_mut() {
        let Some(i) = c.file else { continue };
        if c.secret {
            continue;
        }
        let f = &desired.files[i];
        if f.disk.is_some() {
            let max = crate::plan::diff::MAX_FILE;
            c.diff = Some(format!("no diff: new: {} bytes (a diff is made of files up to {max} bytes)\n", f.len()));
            continue;
        }
        c.diff = match (c.action, remote.old.get(&c.path)) {
            (Action::Create, _) => Some(crate::plan::diff::unified(&c.path, None, &f.bytes, redactor)),
            (Action::Update, Some(crate::plan::state::Old::Bytes(old))) => {
                Some(crate::plan::diff::unified(&c.path, Some(old), &f.bytes, redactor))
            }
            (Action::Update, Some(crate::plan::state::Old::TooLarge(n))) => Some(format!(
                "no diff: the file on the host has {n} bytes, over the {} a diff is made of; new: {} bytes\n",
                crate::remote::probe::OLD_MAX,
                f.len()
            )),
            // changed between the probe's hash and its read, or a path sha256sum escapes
            (Action::Update, None) => {
                Some(format!("no diff: the host did not send the current contents; new: {} bytes\n", f.len()))
            }
            _ => None,
        };
    }
    Ok(())
}

//! `deploy ENV`: render every host, then per host in parallel connect, probe
//! (taking the lock), plan and fetch what the diffs need; show; confirm; then
//! per host in parallel apply (or just release the lock); summarise.
//! `--check` is the same path stopped before the first write.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::load::secrets::Keys;
use crate::plan::state::Lock;
use crate::plan::{plan_host, Action, HostPlan, ServiceAction, ServiceActionKind};
use crate::redact::Redactor;
use crate::remote::apply::FINISH;
use crate::remote::ssh::{Conn, SshOptions};
use crate::render::{CheckKind, DesiredHost, Renderer as Loaded};
use crate::report::{print_plan, Progress};

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
    /// A toggle run (`deploy vpn-on ENV`).
    pub toggle: Option<ToggleRun>,
}

/// `deploy NAME-on|NAME-off ENV`.
#[derive(Debug, Clone)]
pub struct ToggleRun {
    /// Toggle name.
    pub name: String,
    /// On or off.
    pub on: bool,
    /// --confirm-within, else the toggle's auto_revert.
    pub window: Option<u64>,
    /// False for --no-confirm: leave the timer running (a trial).
    pub confirm: bool,
}

struct Ready {
    conn: Conn,
    plan: HostPlan,
    /// This deploy holds the host's lock.
    locked: AtomicBool,
    /// A command that takes the lock was sent (it may hold it).
    lock_sent: AtomicBool,
    /// The audit line is written and the lock released (by the apply).
    finished: AtomicBool,
    holder: String,
    env: String,
    /// What the plan was made from (re-rendered when a toggle is on).
    desired: Arc<DesiredHost>,
}

impl Ready {
    /// Run a remote script on the host. Until the lock is held, the script
    /// takes it first, in the same round trip, and fails naming the holder
    /// when another deploy has it.
    async fn run(
        &self,
        name: &str,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<crate::remote::ssh::Output> {
        if self.locked.load(Ordering::SeqCst) {
            return self.conn.run(name, script, args, stdin).await;
        }
        self.lock_sent.store(true, Ordering::SeqCst);
        let out = self.conn.run(name, &crate::remote::apply::with_lock(script, &self.holder), args, stdin).await?;
        if let Some(who) = crate::remote::apply::lock_held(out.code, &out.stderr) {
            return Err(lock_error(&self.desired.host, &self.env, &who));
        }
        self.locked.store(true, Ordering::SeqCst);
        Ok(out)
    }
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
    let desired: Result<Vec<DesiredHost>> = match &args.toggle {
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
            hosts.iter().map(|h| toggle_desired(&loaded, h, &t.name, t.on, spec, &overrides)).collect()
        }
    };
    Ok((loaded, desired?))
}

/// A host's desired state for a toggle run: the toggle's roles rendered with
/// its value, plus the toggle's state file in the last of their phases.
fn toggle_desired(
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
    d.files.push(crate::render::DesiredFile {
        dest: format!("{}/{name}", crate::render::TOGGLE_DIR),
        role,
        source: format!("toggle {name}"),
        sha256: crate::util::sha256_hex(&bytes),
        bytes,
        owner: None,
        group: None,
        mode: Some(0o644),
        validate: None,
        secret: false,
        preserve: false,
        on_change: None,
        phase,
        selected: true,
    });
    d.extra_probe.retain(|p| !p.ends_with(&format!("/{name}")));
    if let Some(t) = &spec.confirm_via {
        let v = loaded.render_line(host, overrides, t)?;
        d.confirm_via = Some(v.trim().to_string()).filter(|v| !v.is_empty());
    }
    Ok(d)
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

fn probe_paths(desired: &DesiredHost) -> Vec<String> {
    desired
        .dirs
        .iter()
        .map(|d| d.path.clone())
        .chain(desired.files.iter().map(|f| f.dest.clone()))
        .chain(desired.absent.iter().map(|a| a.0.clone()))
        .chain(desired.compose.iter().map(|c| c.override_path.clone()))
        .chain(desired.extra_probe.iter().cloned())
        .collect()
}

async fn probe(
    conn: &Conn,
    host: &str,
    desired: &DesiredHost,
    mode: &str,
    holder: &str,
) -> Result<crate::plan::state::Remote> {
    let docker = if desired.compose.is_empty() { "no" } else { "yes" };
    let paths = probe_paths(desired);
    let old_max = crate::remote::probe::OLD_MAX.to_string();
    let mut argv: Vec<&str> = vec![mode, holder, docker, &old_max];
    argv.extend(paths.iter().map(|p| p.as_str()));
    // the files whose current contents a diff would show: secret ones never
    // leave the host, preserved ones are never overwritten
    let wanted: String = desired
        .files
        .iter()
        .filter(|f| !f.secret && !f.preserve)
        .map(|f| format!("{}  {}\n", f.sha256, f.dest))
        .collect();
    let out = conn.run("deploy-probe", crate::remote::probe::SCRIPT, &argv, Some(wanted.as_bytes())).await?;
    crate::remote::probe::parse_probe(&out.stdout).map_err(|m| {
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
fn toggles_on(loaded: &Loaded, remote: &crate::plan::state::Remote) -> Vec<(String, minijinja::Value)> {
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

async fn stage1(
    desired: Arc<DesiredHost>,
    loaded: &Loaded,
    args: &DeployArgs,
    holder: &str,
    redactor: &Redactor,
    progress: &Progress,
) -> HostState {
    let host = desired.host.clone();
    let host = host.as_str();
    progress.step(host, "connecting");
    let conn = match crate::remote::ssh::connect(host, &desired.connection, &args.ssh).await {
        Ok(c) => c,
        Err(e) => return HostState::Failed(e),
    };
    progress.step(host, "probing");
    let mut desired = desired;
    // The probe never locks: a host with nothing to change costs one round
    // trip. The lock is taken once there is something to do (by the apply's
    // first command, or before a prompt: lock_and_diff),
    // and the apply re-checks every file's hash against this probe anyway.
    let mut remote = match probe(&conn, host, &desired, "check", holder).await {
        Ok(r) => r,
        Err(e) => return HostState::Failed(e),
    };
    let mut overrides = match &args.toggle {
        Some(t) => {
            let spec = &loaded.project.file.toggles[&t.name];
            vec![(spec.var.clone(), crate::load::yaml::yaml_to_value(if t.on { &spec.on } else { &spec.off }))]
        }
        None => toggles_on(loaded, &remote),
    };
    if args.toggle.is_none() {
        // A toggle that is on stays on: render this host with its value, as
        // recorded on the host, so a plain deploy never undoes it silently.
        if !overrides.is_empty() {
            let again = match loaded.render_host_with(host, args.roles.as_deref(), &overrides) {
                Ok(d) => Arc::new(d),
                Err(e) => return HostState::Failed(e),
            };
            if probe_paths(&again) != probe_paths(&desired) {
                let lock = remote.lock.clone();
                remote = match probe(&conn, host, &again, "check", holder).await {
                    Ok(r) => r,
                    Err(e) => return HostState::Failed(e),
                };
                remote.lock = lock;
            }
            desired = again;
        }
    }
    if let Lock::Taken(who) | Lock::Seen(who) = &remote.lock {
        if !args.check {
            return HostState::Failed(lock_error(host, &args.env, who));
        }
    }
    let mut plan = match plan_host(&desired, &remote) {
        Ok(p) => p,
        Err(m) => return HostState::Failed(Error::Remote { host: host.into(), message: m }),
    };
    let port_now = if conn.fallback.is_some() {
        desired.connection.port.unwrap_or(22)
    } else {
        remote.server_port.or(desired.connection.port).unwrap_or(22)
    };
    let client = remote.client_addr.clone().unwrap_or_default();
    overrides.push(("deploy_controller_addr".into(), client.clone().into()));
    overrides.push(("deploy_ssh_port".into(), port_now.into()));
    // A toggle confirming through another way in (its VPN address) relies on
    // it: prove it works now, and learn our address as seen that way, before
    // switching to rules that may leave only that way open.
    let confirm_addr = match &desired.confirm_via {
        None => Ok(client),
        Some(via) => {
            let mut c = desired.connection.clone();
            c.address = via.clone();
            match crate::remote::ssh::run_fresh(host, &c, &args.ssh, "deploy-via", "echo \"$SSH_CONNECTION\"", &[], Duration::from_secs(30)).await {
                Ok(o) if o.code == Some(0) => Ok(String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or("").to_string()),
                Ok(o) => Err(format!("exit {:?}", o.code)),
                Err(Error::Connect { message, .. }) => Err(message),
                Err(e) => Err(e.to_string()),
            }
            .map_err(|why| Error::Remote {
                host: host.into(),
                message: format!("the confirmation would connect through {via} (confirm_via), which does not work now: {why}. Nothing was changed; fix that way in first"),
            })
        }
    };
    let confirm_addr = match confirm_addr {
        Ok(a) => a,
        Err(e) => return HostState::Failed(e),
    };
    overrides.push(("deploy_confirm_addr".into(), confirm_addr.into()));
    let checked = match conn.fallback {
        Some(fb) => fallback_guard(loaded, args, &desired, &plan, fb),
        None => Ok(()),
    };
    let checked = match checked {
        Ok(()) => preflight(&conn, loaded, &desired, &remote, &plan, &overrides, args.toggle.is_some()).await,
        e => e,
    };
    if let Err(e) = checked {
        return HostState::Failed(e);
    }
    // Only a prompt needs the lock now (the plan must hold until it is
    // answered); with --yes the apply's first command takes it, which saves
    // a round trip, and the apply re-checks every hash under the lock anyway.
    let prompt = !args.yes && std::io::stdin().is_terminal();
    let locked = !args.check && !plan.is_empty() && prompt;
    if let Err(e) = lock_and_diff(&conn, &desired, &mut plan, &remote, redactor, locked, holder, &args.env).await {
        return HostState::Failed(e);
    }
    if let Some(fb) = conn.fallback {
        plan.notes.push(format!(
            "nothing listens on port {port_now} (ansible_port) yet: connected on deploy_fallback_port {fb}; this deploy must move sshd, and its confirmation uses port {port_now}"
        ));
    }
    progress.done(
        host,
        &if plan.changes.is_empty() {
            "in sync".to_string()
        } else {
            format!("{} changes planned", plan.changes.len())
        },
    );
    HostState::Ready(Box::new(Ready {
        conn,
        plan,
        locked: AtomicBool::new(locked),
        lock_sent: AtomicBool::new(locked),
        finished: AtomicBool::new(false),
        holder: holder.to_string(),
        env: args.env.clone(),
        desired,
    }))
}

/// Connected through deploy_fallback_port: only a deploy that changes
/// something under the dead-man switch can be the one moving sshd, and only
/// the switch's confirmation on ansible_port proves it did.
fn fallback_guard(loaded: &Loaded, args: &DeployArgs, desired: &DesiredHost, plan: &HostPlan, fb: u16) -> Result<()> {
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

/// Run the pre-flight checks of the roles this host's plan changes: the
/// `that` expressions here, commands and container health on the host.
/// Read-only; a failure stops the host before anything is armed or written.
/// Container health is checked before toggles only: a plain deploy may be
/// the very fix for a broken service and must not be held back by it.
async fn preflight(
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
    let mut roles: Vec<&str> = plan.changes.iter().map(|c| c.role.as_str()).collect();
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
    let mut items = String::new();
    for p in desired.preflight.iter().filter(|p| roles.contains(&p.role.as_str())) {
        match &p.kind {
            crate::render::PreflightKind::Command { command } => items.push_str(&format!("M\t30\t{command}\n")),
            crate::render::PreflightKind::Healthy { project, service } => {
                // a service this deploy creates has nothing to be healthy yet
                if toggle && remote.containers.iter().any(|c| &c.project == project && &c.service == service) {
                    items.push_str(&format!("S\t5\t{project}\t{service}\n"));
                }
            }
            crate::render::PreflightKind::That { .. } => {}
        }
    }
    if !items.is_empty() {
        let out = conn.run("deploy-preflight", crate::remote::apply::HEALTH, &[], Some(items.as_bytes())).await?;
        let h = crate::remote::apply::parse_health(&out.stdout);
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
async fn lock_and_diff(
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
        let out = conn.run("deploy-lock", &crate::remote::apply::with_lock("", holder), &[], None).await?;
        if let Some(who) = crate::remote::apply::lock_held(out.code, &out.stderr) {
            return Err(lock_error(&desired.host, env, &who));
        }
    }
    for c in plan.changes.iter_mut() {
        let Some(i) = c.file else { continue };
        if c.secret {
            continue;
        }
        let f = &desired.files[i];
        c.diff = match (c.action, remote.old.get(&c.path)) {
            (Action::Create, _) => Some(crate::plan::diff::unified(&c.path, None, &f.bytes, redactor)),
            (Action::Update, Some(crate::plan::state::Old::Bytes(old))) => {
                Some(crate::plan::diff::unified(&c.path, Some(old), &f.bytes, redactor))
            }
            (Action::Update, Some(crate::plan::state::Old::TooLarge(n))) => Some(format!(
                "no diff: the file on the host has {n} bytes, over the {} a diff is made of; new: {} bytes\n",
                crate::remote::probe::OLD_MAX,
                f.bytes.len()
            )),
            // changed between the probe's hash and its read, or a path sha256sum escapes
            (Action::Update, None) => {
                Some(format!("no diff: the host did not send the current contents; new: {} bytes\n", f.bytes.len()))
            }
            _ => None,
        };
    }
    Ok(())
}

fn audit_counts(plan: &HostPlan) -> (usize, usize, usize, usize, usize) {
    let (c, u, m, d) = plan.counts();
    (c, u, m, d, plan.services.len())
}

fn audit_line(args: &DeployArgs, id: &str, plan: &HostPlan) -> String {
    audit_line_counts(args, id, &audit_counts(plan))
}

fn audit_line_counts(args: &DeployArgs, id: &str, counts: &(usize, usize, usize, usize, usize)) -> String {
    let (c, u, m, d, s) = *counts;
    format!(
        "{} deploy={id} by={}@{} project_commit={} env={} created={c} updated={u} attributes={m} removed={d} containers={s}",
        crate::util::utc(crate::util::now()),
        crate::util::user(),
        crate::util::hostname(),
        crate::util::git_commit(&args.root),
        args.env
    )
}

async fn release(ready: Ready, holder: &str, audit: &str) {
    // finish.sh releases only a lock this deploy holds
    if ready.lock_sent.load(Ordering::SeqCst) && !ready.finished.load(Ordering::SeqCst) {
        let _ = ready.conn.run("deploy-finish", FINISH, &[holder, audit], None).await;
    }
    ready.conn.close().await;
}

/// Run a deploy (or check). Returns the exit status.
pub async fn deploy(args: DeployArgs) -> Result<u8> {
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

fn id_of(holder: &str) -> String {
    holder.rsplit("deploy=").next().unwrap_or("").to_string()
}

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
}

fn compose_manifest(variant: crate::plan::state::ComposeVariant, p: &crate::render::DesiredCompose) -> String {
    let v = match variant {
        crate::plan::state::ComposeVariant::V2 => "v2",
        crate::plan::state::ComposeVariant::V1 => "v1",
    };
    let mut files = p.files.clone();
    files.push(p.override_path.clone());
    format!("P\t{v}\t{}\t{}\t{}\n", p.dir, p.project, files.join("\t"))
}

fn health_items(services: &[&ServiceAction], desired: &DesiredHost, phase: usize, with_checks: bool) -> String {
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

async fn run_compose(r: &Ready, manifest: String) -> Result<std::result::Result<(), (String, Vec<String>)>> {
    let out = r.run("deploy-compose", crate::remote::apply::COMPOSE, &[], Some(manifest.as_bytes())).await?;
    Ok(crate::remote::apply::parse_compose(&out.stdout))
}

/// Container actions for one phase, one compose call per project.
fn phase_manifests(
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

/// One phase as stage 2 needs it.
#[derive(Debug, Clone)]
pub struct PhaseInfo {
    /// Name from deploy.yml.
    pub name: String,
    /// Dead-man window in seconds, for guarded phases.
    pub deadman: Option<u64>,
}

/// An armed dead-man timer on a host.
#[derive(Debug, Clone)]
pub struct Armed {
    /// systemd, at or sleeper.
    pub mechanism: String,
    /// Unit name, at job or process group.
    pub handle: String,
    /// When the host reverts (epoch seconds).
    pub deadline: u64,
}

async fn arm(r: &Ready, host: &str, id: &str, secs: u64, args: &DeployArgs) -> Result<Armed> {
    let prefer = std::env::var("DEPLOY_DEADMAN_MECHANISM").unwrap_or_else(|_| "auto".into());
    let _ = args;
    let out = r
        .run(
            "deploy-arm",
            crate::remote::apply::ARM,
            &[id, &secs.to_string(), &prefer],
            Some(&crate::remote::apply::arm_bundle()),
        )
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("ARMED\t")).ok_or_else(|| Error::Remote {
        host: host.into(),
        message: format!(
            "cannot arm the dead-man switch, so nothing of the guarded phase was changed: {} {}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })?;
    let f: Vec<&str> = line.split('\t').collect();
    Ok(Armed {
        mechanism: f[1].into(),
        handle: f[2].into(),
        deadline: f.get(3).and_then(|d| d.parse().ok()).unwrap_or(0),
    })
}

fn clock(epoch: u64) -> String {
    let t = crate::util::utc(epoch);
    format!("{} UTC", &t[11..19])
}

async fn stage2(
    r: &Ready,
    desired: &DesiredHost,
    holder: &str,
    phases: &[PhaseInfo],
    args: &DeployArgs,
    progress: &Progress,
) -> Result<HostReport> {
    let host = desired.host.as_str();
    let id = id_of(holder);
    let mut report = HostReport::default();
    let mut armed: Option<Armed> = None;
    if let Err(e) = phases_loop(r, desired, holder, phases, args, progress, &mut report, &mut armed).await {
        if armed.is_none() {
            return Err(e);
        }
        report.failure = Some(Failure { phase: "(connection)".into(), what: error_text(&e), ..Default::default() });
    }
    let Some(a) = armed else { return Ok(report) };
    report.deadman.push(format!(
        "dead-man switch armed with {} ({}); the host reverts at {} unless confirmed",
        a.mechanism,
        a.handle,
        clock(a.deadline)
    ));
    if args.toggle.as_ref().is_some_and(|t| !t.confirm) {
        report.deadman.push(format!(
            "trial run (--no-confirm): not confirming; the host reverts this change by itself at {}",
            clock(a.deadline)
        ));
        report.keep_lock = true;
        return Ok(report);
    }
    // the way the next deploy (or, for a toggle with confirm_via, the new
    // mode's way in) reaches the host: ansible_port even when this run came
    // in through deploy_fallback_port
    let mut via = desired.connection.clone();
    if let Some(v) = &desired.confirm_via {
        via.address = v.clone();
    }
    let dest = match via.port {
        Some(p) => format!("{}:{p}", via.address),
        None => via.address.clone(),
    };
    progress.step(host, &format!("confirming over a fresh SSH connection to {dest}"));
    // A reloaded sshd re-executes itself and is briefly not listening: retry
    // what may be transient (refused, timed out) with pauses, but stop well
    // before the host's own revert fires; an authentication or host key
    // failure is an answer, not a hiccup.
    let give_up = a.deadline.saturating_sub(5).min(crate::util::now() + 60);
    let confirm = loop {
        let limit = Duration::from_secs(give_up.saturating_sub(crate::util::now()).clamp(5, 30));
        let r = crate::remote::ssh::run_fresh(
            host,
            &via,
            &args.ssh,
            "deploy-disarm",
            crate::remote::apply::DISARM,
            &[&id],
            limit,
        )
        .await;
        match &r {
            Err(Error::Connect { retryable: true, .. }) if crate::util::now() + 1 < give_up => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => break r,
        }
    };
    let why = match confirm {
        Ok(o) if String::from_utf8_lossy(&o.stdout).starts_with("DISARMED") => {
            report.deadman.push(format!(
                "confirmed over a fresh SSH connection to {dest}; cancelled exactly this deploy's {} timer",
                a.mechanism
            ));
            return Ok(report);
        }
        Ok(o) => format!("{} {}", String::from_utf8_lossy(&o.stdout).trim(), String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => e.to_string(),
    };
    // Unconfirmed is reverted: keep the lock (the revert releases it) and watch it happen.
    report.keep_lock = true;
    report.deadman.push(format!(
        "could NOT confirm over a fresh SSH connection to {dest} ({why}); the host will revert this deploy by itself at {}",
        clock(a.deadline)
    ));
    progress.step(host, &format!("unconfirmed: waiting for the host to revert at {}", clock(a.deadline)));
    let now = crate::util::now();
    if a.deadline > now {
        tokio::time::sleep(Duration::from_secs(a.deadline - now + 1)).await;
    }
    let check = format!("test -e /var/lib/deploy/journal/{id}/reverted && echo REVERTED");
    // reverted, sshd is back where this run found it
    let mut back = desired.connection.clone();
    if let Some(fb) = r.conn.fallback {
        back.port = Some(fb);
    }
    let limit = crate::util::now() + 90;
    let mut outcome = format!(
        "the host did not answer a fresh connection within 90s after {}; check it from the provider console",
        clock(a.deadline)
    );
    while crate::util::now() < limit {
        if let Ok(o) =
            crate::remote::ssh::run_fresh(host, &back, &args.ssh, "deploy-check", &check, &[], Duration::from_secs(10))
                .await
        {
            if String::from_utf8_lossy(&o.stdout).contains("REVERTED") {
                outcome = "the host reverted the deploy by itself and a fresh connection gets in again; every path of this deploy is back".into();
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    report.deadman.push(outcome);
    if report.failure.is_none() {
        report.failure = Some(Failure {
            phase: "confirm".into(),
            what: "not confirmed; the deploy was reverted".into(),
            ..Default::default()
        });
    }
    report.applied.clear();
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn phases_loop(
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
        let journal = format!("{id}/p{p}");
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
            let a = crate::remote::apply::parse_apply(&out.stdout);
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
                report.failure =
                    Some(Failure { phase: phase_name.clone(), what: format!("{what}: {why}"), ..Default::default() });
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
            let text = String::from_utf8_lossy(&out.stdout).to_string();
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
                let h = crate::remote::apply::parse_health(&out.stdout);
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
                    let ok = !String::from_utf8_lossy(&t.stdout).contains("F\t");
                    f.rolled_back.push(format!(
                        "re-ran {} on the restored files{}",
                        triggers.join("; "),
                        if ok { "" } else { ": FAILED" }
                    ));
                }
                if String::from_utf8_lossy(&out.stdout).contains("REVERTED") {
                    f.rolled_back.push(format!(
                        "restored the {} changed paths of phase {phase_name} from the journal",
                        changes.len()
                    ));
                } else {
                    f.rolled_back.push(format!(
                        "could not restore the journal {journal}: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
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
                    let h = crate::remote::apply::parse_health(&out.stdout);
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

fn verb(a: ServiceActionKind) -> &'static str {
    match a {
        ServiceActionKind::Create => "create",
        ServiceActionKind::Recreate => "recreate",
        ServiceActionKind::Start => "start",
        ServiceActionKind::Reload => "reload",
    }
}

/// `deploy NAME-status ENV`: the toggle's state as each host reports it (its
/// state file, the files compared with both renderings, the rules in force,
/// a pending revert), never from local memory.
pub async fn toggle_status(args: DeployArgs, name: &str) -> Result<u8> {
    let loaded = Loaded::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let spec = loaded
        .project
        .file
        .toggles
        .get(name)
        .ok_or_else(|| Error::Usage(format!("no toggle `{name}` in deploy.yml")))?
        .clone();
    let mut failed = 0;
    for host in loaded.hosts.iter().filter(|h| args.limit.as_ref().is_none_or(|l| l.contains(h))) {
        let render = |v: &serde_yaml::Value| {
            loaded.render_host_with(host, Some(&spec.roles), &[(spec.var.clone(), crate::load::yaml::yaml_to_value(v))])
        };
        let (on, off) = (render(&spec.on)?, render(&spec.off)?);
        let files: Vec<&crate::render::DesiredFile> = on.files.iter().filter(|f| f.selected).collect();
        let conn = match crate::remote::ssh::connect(host, &on.connection, &args.ssh).await {
            Ok(c) => c,
            Err(e) => {
                failed += 1;
                println!("{host}: {}", error_text(&e));
                continue;
            }
        };
        let mut argv: Vec<&str> = vec![name];
        argv.extend(files.iter().map(|f| f.dest.as_str()));
        let out = conn.run("deploy-status", include_str!("remote/status.sh"), &argv, None).await?;
        conn.close().await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let state = text.lines().find_map(|l| l.strip_prefix("state\t")).unwrap_or("unset").to_string();
        let (mut on_match, mut off_match) = (0, 0);
        for l in text.lines().filter_map(|l| l.strip_prefix("H\t")) {
            let (path, hash) = l.split_once('\t').unwrap_or((l, ""));
            if on.file(path).is_some_and(|f| f.sha256 == hash) {
                on_match += 1;
            }
            if off.file(path).is_some_and(|f| f.sha256 == hash) {
                off_match += 1;
            }
        }
        let n = files.len();
        let files_say = if on_match == n && off_match != n {
            "ON".to_string()
        } else if off_match == n && on_match != n {
            "OFF".to_string()
        } else {
            format!("neither ({on_match}/{n} files match ON, {off_match}/{n} match OFF)")
        };
        println!(
            "{host}: {name} state file says {}; the files on the host are the {files_say} rendering",
            state.to_uppercase()
        );
        let rules: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("R\t")).collect();
        if !rules.is_empty() {
            println!("  rules in force:");
            for r in rules {
                println!("    {r}");
            }
        }
        let pending: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("pending\t")).collect();
        if pending.is_empty() {
            println!("  no revert pending");
        }
        for p in pending {
            let (id, when) = p.split_once('\t').unwrap_or((p, "0"));
            println!(
                "  a revert is PENDING: deploy {id} reverts at {} unless confirmed",
                clock(when.parse().unwrap_or(0))
            );
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::ERROR })
}

/// `deploy status ENV`: what each host records about deploys, the last one
/// first when the host reverted it.
pub async fn host_status(args: DeployArgs) -> Result<u8> {
    let loaded = Loaded::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let mut failed = 0;
    for host in loaded.hosts.iter().filter(|h| args.limit.as_ref().is_none_or(|l| l.contains(h))) {
        let d = loaded.render_host(host, None)?;
        let conn = match crate::remote::ssh::connect(host, &d.connection, &args.ssh).await {
            Ok(c) => c,
            Err(e) => {
                failed += 1;
                println!("{host}: {}", error_text(&e));
                continue;
            }
        };
        let out = conn.run("deploy-status", include_str!("remote/hoststatus.sh"), &[], None).await?;
        conn.close().await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |k: &str| text.lines().filter_map(|l| l.strip_prefix(k)).map(String::from).collect::<Vec<_>>();
        let audit = field("A\t");
        println!("{host}:");
        if let Some(last) = audit.last().filter(|l| l.contains(" REVERTED ")) {
            println!("  the last deploy was REVERTED by the host's dead-man switch (never confirmed): {last}");
        }
        match field("lock\t").first() {
            Some(who) => println!("  locked by {who}"),
            None => println!("  not locked"),
        }
        for p in field("pending\t") {
            let (id, when) = p.split_once('\t').unwrap_or((&p, "0"));
            println!(
                "  a revert is PENDING: deploy {id} reverts at {} unless confirmed",
                clock(when.parse().unwrap_or(0))
            );
        }
        for t in field("toggle\t") {
            let (name, v) = t.split_once('\t').unwrap_or((&t, ""));
            println!("  toggle {name}: {v}");
        }
        if !audit.is_empty() {
            println!("  recent:");
            for a in &audit {
                println!("    {a}");
            }
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::ERROR })
}

/// An error with its hint, on one or two lines.
pub fn error_text(e: &Error) -> String {
    match e.hint() {
        Some(h) => format!("{e}\n    hint: {h}"),
        None => e.to_string(),
    }
}

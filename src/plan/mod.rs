//! The plan: pure data computed from the desired state and the probe. It is
//! printed, serialised for `--output json`, and applied; `--check` stops
//! after printing it. Building it writes nothing anywhere.

pub(crate) mod accounts;
pub(crate) mod diff;
pub(crate) mod lines;
mod links;
pub(crate) mod outcome;
pub(crate) mod packages;
mod parents;
pub(crate) mod state;
pub(crate) mod system;
#[cfg(test)]
mod system_tests;
#[cfg(test)]
mod tests;
pub(crate) mod units;

use serde::Serialize;

use crate::load::project::Id;
use crate::plan::state::{Entry, Kind, Old, Remote};
use crate::render::DesiredHost;

/// What happens to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    /// It does not exist and will be created.
    Create,
    /// Its content changes (and maybe its metadata).
    Update,
    /// Only owner, group or mode change.
    Metadata,
    /// It exists and will be removed.
    Delete,
}

/// The kind of resource a change is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Resource {
    /// A file.
    File,
    /// A directory.
    Dir,
    /// A path that must not exist.
    Absent,
    /// Lines of a file deploy does not otherwise manage.
    Lines,
    /// A symbolic link.
    Link,
}

/// What the host had when probed; apply refuses to touch a path that no
/// longer matches (someone changed it in between).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Expected {
    /// Nothing there.
    Absent,
    /// A file with this content hash.
    File { sha256: String },
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Link { target: String },
    /// Something else (socket, fifo, device).
    Other,
}

impl Change {
    /// A change of `path` to create, its reasons, secrecy and file left to
    /// the caller.
    fn at(path: &str, role: &str, resource: Resource, expected: Expected, phase: usize) -> Change {
        Change {
            path: path.to_string(),
            role: role.to_string(),
            resource,
            action: Action::Create,
            reasons: vec![],
            expected,
            secret: false,
            phase,
            file: None,
            content: None,
            diff: None,
            shrink: None,
        }
    }
}

/// A file that would become empty, or lose more than 90% of its bytes
/// (incident 9: a good file replaced by an empty render).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Shrink {
    /// Bytes on the host now.
    pub(crate) from: u64,
    /// Bytes after the change.
    pub(crate) to: u64,
    /// The file says `may_empty: true`.
    pub(crate) allowed: bool,
}

impl Shrink {
    /// The change of a file from `from` to `to` bytes, when it empties the
    /// file or keeps less than a tenth of it.
    pub(crate) fn of(from: u64, to: u64, allowed: bool) -> Option<Shrink> {
        (from > 0 && (to == 0 || to.saturating_mul(10) < from)).then_some(Shrink { from, to, allowed })
    }

    /// `EMPTIES`, or `shrinks 4.1 KiB -> 12 B`.
    pub(crate) fn words(&self) -> String {
        if self.to == 0 {
            "EMPTIES".into()
        } else {
            format!("shrinks {} -> {}", crate::util::human_bytes(self.from), crate::util::human_bytes(self.to))
        }
    }
}

/// One change on one host.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Change {
    /// Absolute path.
    pub(crate) path: String,
    /// Role that declares it.
    pub(crate) role: String,
    /// Resource kind.
    pub(crate) resource: Resource,
    /// What happens.
    pub(crate) action: Action,
    /// Why, in words: "content", "mode 0644 -> 0600", "owner root -> 1000".
    pub(crate) reasons: Vec<String>,
    /// State seen by the probe.
    pub(crate) expected: Expected,
    /// Secret file: content is never shown.
    pub(crate) secret: bool,
    /// Phase (index into deploy.yml's phases).
    pub(crate) phase: usize,
    /// Index into the desired files (for file changes).
    #[serde(skip)]
    pub(crate) file: Option<usize>,
    /// Generated content (the compose label override), instead of a desired file.
    #[serde(skip)]
    pub(crate) content: Option<Vec<u8>>,
    /// Unified diff (redacted), when computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) diff: Option<String>,
    /// The file would become empty or lose most of its bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shrink: Option<Shrink>,
}

/// What happens to a compose service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ServiceActionKind {
    /// No container yet: created.
    Create,
    /// An input changed: recreated (never `restart`, which keeps the old environment).
    Recreate,
    /// Container exists with the right inputs but is not running.
    Start,
    /// A mounted config changed: reload command run in the container.
    Reload,
}

/// One service action.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServiceAction {
    /// Compose project.
    pub(crate) project: String,
    /// Service.
    pub(crate) service: String,
    /// What happens.
    pub(crate) action: ServiceActionKind,
    /// Why, in words.
    pub(crate) reasons: Vec<String>,
    /// Phase (of the project's role).
    pub(crate) phase: usize,
    /// Reload command (for reloads).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) command: Vec<String>,
}

/// The plan for one host.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct HostPlan {
    /// Inventory name.
    pub(crate) host: String,
    /// Changes, in apply order: by phase; dirs (parents first), files, removals.
    pub(crate) changes: Vec<Change>,
    /// Container actions, by phase.
    pub(crate) services: Vec<ServiceAction>,
    /// The host's Compose, when it has compose projects.
    pub(crate) compose: Option<crate::plan::state::ComposeVariant>,
    /// The audit line of the previous deploy, when the host reverted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) previous_revert: Option<String>,
    /// Facts about this run worth saying before the changes (a fallback port).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
    /// Paths already as desired.
    pub(crate) unchanged: usize,
    /// `preserve` files that differ from the template and are left alone.
    pub(crate) preserved: Vec<String>,
    /// Packages, units, users, groups, live sysctl values, commands.
    pub(crate) system: Vec<system::SysChange>,
}

impl HostPlan {
    /// Whether anything at all would change.
    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.services.is_empty() && self.system.is_empty()
    }

    /// Counts by action: (create, update, metadata, delete).
    pub(crate) fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |a: Action| self.changes.iter().filter(|c| c.action == a).count();
        (n(Action::Create), n(Action::Update), n(Action::Metadata), n(Action::Delete))
    }
}

pub(crate) fn expected(e: Option<&Entry>) -> Expected {
    match e {
        None => Expected::Absent,
        Some(e) => match e.kind {
            Kind::File => Expected::File { sha256: e.sha256.clone().unwrap_or_default() },
            Kind::Dir => Expected::Dir,
            Kind::Link => Expected::Link { target: e.target.clone().unwrap_or_default() },
            Kind::Other => Expected::Other,
        },
    }
}

fn id_matches(want: &Id, num: u32, name: &str) -> bool {
    match want {
        Id::Num(n) => *n == num,
        Id::Name(s) => s == name || s.parse::<u32>().ok() == Some(num),
    }
}

fn meta_reasons(e: &Entry, owner: &Option<Id>, group: &Option<Id>, mode: Option<u32>) -> Vec<String> {
    let mut r = Vec::new();
    if let Some(m) = mode {
        if e.mode != m {
            r.push(format!("mode {:04o} -> {m:04o}", e.mode));
        }
    }
    if let Some(o) = owner {
        if !id_matches(o, e.uid, &e.user) {
            r.push(format!("owner {} -> {o}", if e.user == "UNKNOWN" { e.uid.to_string() } else { e.user.clone() }));
        }
    }
    if let Some(g) = group {
        if !id_matches(g, e.gid, &e.group) {
            r.push(format!("group {} -> {g}", if e.group == "UNKNOWN" { e.gid.to_string() } else { e.group.clone() }));
        }
    }
    r
}

/// A path that is something else on the host than its role declares: never
/// replaced, always said.
fn conflict(path: &str, on_host: Kind, declared: &str, role: &str) -> String {
    format!(
        "{path} is {} on the host but declared as {declared} by role `{role}`; remove it by hand or change the role",
        kind_name(on_host)
    )
}

pub(crate) fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "a file",
        Kind::Dir => "a directory",
        Kind::Link => "a symbolic link",
        Kind::Other => "a special file",
    }
}

/// Compare desired and remote state. Errors are paths whose type on the host
/// conflicts with the declaration (a directory where a file is declared).
pub(crate) fn plan_host(desired: &DesiredHost, remote: &Remote) -> Result<HostPlan, String> {
    let mut plan = HostPlan {
        host: desired.host.clone(),
        changes: vec![],
        services: vec![],
        compose: remote.compose,
        previous_revert: remote.reverted.clone(),
        notes: Vec::new(),
        unchanged: 0,
        preserved: vec![],
        system: vec![],
    };
    plan_dirs(desired, remote, &mut plan)?;
    plan_files(desired, remote, &mut plan)?;
    links::plan_links(desired, remote, &mut plan)?;
    lines::plan_lines(desired, remote, &mut plan)?;
    parents::check(desired, remote, &mut plan)?;
    plan_absent(desired, remote, &mut plan);
    plan_compose(desired, remote, &mut plan)?;
    plan_system(desired, remote, &mut plan)?;
    // apply order: phase by phase; within a phase dirs, files and links, removals
    plan.changes.sort_by_key(|c| {
        (
            c.phase,
            match c.resource {
                Resource::Dir => 0,
                Resource::File | Resource::Lines | Resource::Link => 1,
                Resource::Absent => 2,
            },
        )
    });
    Ok(plan)
}

/// Everything that is not a file, in apply order within each phase.
fn plan_system(desired: &DesiredHost, remote: &Remote, plan: &mut HostPlan) -> Result<(), String> {
    let mut out = Vec::new();
    system::accounts(desired, remote, &mut out);
    system::packages(desired, remote, &mut out)?;
    system::merge_package_ops(&mut out);
    system::sysctl(desired, &remote.system, &mut out)?;
    let changed: Vec<(&str, usize)> = plan.changes.iter().map(|c| (c.path.as_str(), c.phase)).collect();
    system::units(desired, remote, &changed, &mut out)?;
    system::commands(desired, remote, &mut out);
    out.sort_by_key(|c| (c.phase, c.ops.first().map(|o| (o.stage, o.order)).unwrap_or((system::Stage::Post, 0))));
    plan.system = out;
    Ok(())
}

fn plan_dirs(desired: &DesiredHost, remote: &Remote, plan: &mut HostPlan) -> Result<(), String> {
    for d in desired.dirs.iter().filter(|d| d.selected) {
        let e = remote.paths.get(&d.path);
        let base = Change::at(&d.path, &desired.roles_of(&d.path, &d.role), Resource::Dir, expected(e), d.phase);
        match e {
            None => plan.changes.push(Change { reasons: vec!["missing".into()], ..base }),
            Some(e) if e.kind != Kind::Dir => {
                return Err(conflict(&d.path, e.kind, "a directory", &d.role));
            }
            Some(e) => {
                let r = meta_reasons(e, &d.owner, &d.group, d.mode);
                if r.is_empty() {
                    plan.unchanged += 1;
                } else {
                    plan.changes.push(Change { action: Action::Metadata, reasons: r, ..base });
                }
            }
        }
    }
    Ok(())
}

fn plan_files(desired: &DesiredHost, remote: &Remote, plan: &mut HostPlan) -> Result<(), String> {
    for (i, f) in desired.files.iter().enumerate().filter(|(_, f)| f.selected) {
        let e = remote.paths.get(&f.dest);
        let base = Change {
            secret: f.secret,
            file: Some(i),
            ..Change::at(&f.dest, &desired.roles_of(&f.dest, &f.role), Resource::File, expected(e), f.phase)
        };
        match e {
            None => plan.changes.push(Change { reasons: vec!["missing".into()], ..base }),
            Some(e) if e.kind != Kind::File => {
                return Err(conflict(&f.dest, e.kind, "a file", &f.role));
            }
            Some(e) => {
                let mut r = Vec::new();
                // a big source's sum is taken only now that there is a file to compare
                let content_differs = match e.sha256.as_deref() {
                    Some(on_host) => on_host != f.sha256()?,
                    None => true,
                };
                let update = content_differs && !f.preserve;
                if content_differs && f.preserve {
                    plan.preserved.push(f.dest.clone());
                } else if update {
                    r.push("content".to_string());
                }
                r.extend(meta_reasons(e, &f.owner, &f.group, f.mode));
                if r.is_empty() {
                    plan.unchanged += 1;
                } else {
                    let action = if update { Action::Update } else { Action::Metadata };
                    // the size it has now: from the contents or size the probe sent back
                    let old = match remote.old.get(&f.dest) {
                        Some(Old::Bytes(b)) => Some(b.len() as u64),
                        Some(Old::TooLarge(n)) => Some(*n),
                        None => None,
                    };
                    let shrink = old.filter(|_| update).and_then(|o| Shrink::of(o, f.len(), f.may_empty));
                    plan.changes.push(Change { action, reasons: r, shrink, ..base });
                }
            }
        }
    }
    Ok(())
}

fn plan_absent(desired: &DesiredHost, remote: &Remote, plan: &mut HostPlan) {
    for crate::render::DesiredAbsent { path, role, phase, force, .. } in desired.absent.iter().filter(|a| a.selected) {
        match remote.paths.get(path) {
            None => plan.unchanged += 1,
            Some(e) => plan.changes.push(Change {
                path: path.clone(),
                role: role.clone(),
                resource: Resource::Absent,
                action: Action::Delete,
                reasons: removal_reasons(e, remote.sizes.get(path), *force),
                expected: expected(Some(e)),
                secret: false,
                phase: *phase,
                file: None,
                content: None,
                diff: None,
                shrink: None,
            }),
        }
    }
}

/// A service whose mounted config changed, and that nothing recreates, is
/// reloaded in place.
fn reloads(
    p: &crate::render::DesiredCompose,
    changed: &std::collections::HashMap<&str, &Change>,
    services: &mut Vec<ServiceAction>,
) {
    for r in &p.reloads {
        let busy = services.iter().any(|a| a.project == p.project && a.service == r.service);
        if changed.contains_key(r.file.as_str()) && !busy {
            services.push(ServiceAction {
                project: p.project.clone(),
                service: r.service.clone(),
                action: ServiceActionKind::Reload,
                reasons: vec![format!("mounted config {} changed", r.file)],
                phase: p.phase,
                command: r.command.clone(),
            });
        }
    }
}

/// A project compose made outside deploy and adopted whole keeps its
/// containers as they are: its labels file goes up with the first deploy
/// that recreates one of them.
fn adopted_whole(p: &crate::render::DesiredCompose, remote: &Remote, plan: &HostPlan) -> bool {
    let mine: Vec<_> = remote.containers.iter().filter(|c| c.project == p.project).collect();
    !mine.is_empty()
        && mine.iter().all(|c| c.inputs.is_empty() && c.adopt)
        && !plan.services.iter().any(|a| a.project == p.project)
        && !remote.paths.contains_key(&p.override_path)
}

/// What a service needs, and why: created, recreated (an input or its
/// definition changed, or its container has other inputs), started, or
/// nothing.
fn service_action(
    p: &crate::render::DesiredCompose,
    s: &crate::render::DesiredService,
    containers: &[&crate::plan::state::Container],
    changed: &std::collections::HashMap<&str, &Change>,
    hash: &str,
    // adoption is the step from another tool to deploy: once deploy has
    // written the project's labels file, an unlabelled container is drift
    adoptable: bool,
) -> Option<ServiceAction> {
    let mut reasons: Vec<String> = s
        .inputs
        .iter()
        .filter(|i| changed.contains_key(i.as_str()))
        .map(|i| {
            let what = if i.ends_with(".env") || i.contains("/env/") || i.contains(".env.") {
                "env file"
            } else {
                "mounted file"
            };
            format!("{what} {i} changed")
        })
        .collect();
    let definition_changed = p.files.iter().any(|f| changed.contains_key(f.as_str()));
    // adopted: compose made it (outside deploy) from the definition the host
    // has now, and none of its inputs changes in this deploy
    let current = |c: &&crate::plan::state::Container| {
        c.inputs == hash || (adoptable && c.inputs.is_empty() && c.adopt && reasons.is_empty() && !definition_changed)
    };
    let action = if containers.is_empty() {
        reasons = vec!["no container yet".into()];
        ServiceActionKind::Create
    } else if !containers.iter().all(current) {
        if reasons.is_empty() {
            reasons.push(if definition_changed {
                format!("its definition in {} changed", s.file)
            } else if containers.iter().any(|c| c.inputs.is_empty()) {
                "its container was created outside deploy (no deploy.inputs label)".into()
            } else {
                "its container was created from other inputs (changed or recreated by hand)".into()
            });
        }
        ServiceActionKind::Recreate
    } else if let Some(c) = containers.iter().find(|c| c.state != "running") {
        reasons = vec![format!("its container is {}", c.state)];
        ServiceActionKind::Start
    } else {
        return None;
    };
    let (project, service, phase) = (p.project.clone(), s.name.clone(), p.phase);
    Some(ServiceAction { project, service, action, reasons, phase, command: vec![] })
}

/// Why a path goes, and what it holds: a tree's files and bytes go to the
/// journal before it is removed.
fn removal_reasons(e: &Entry, size: Option<&(u64, u64)>, force: bool) -> Vec<String> {
    let mut r = vec![format!("{} present", kind_name(e.kind))];
    if let Some((files, bytes)) = size {
        r.push(format!("{} entries, {} bytes, journaled before removal", files, bytes));
    }
    if force {
        r.push("force: true".into());
    }
    r
}

/// The sha256 a path will have after this run: the desired content when the
/// file is part of it, else what the host has now.
fn sha_after(desired: &DesiredHost, remote: &Remote, path: &str) -> Result<String, String> {
    if let Some(f) = desired.file(path) {
        let on_host = remote.paths.get(path).and_then(|e| e.sha256.clone());
        if f.selected && !(f.preserve && on_host.is_some()) {
            return f.sha256().map(str::to_string);
        }
        return Ok(on_host.unwrap_or_else(|| "absent".into()));
    }
    Ok("unmanaged".into())
}

fn plan_compose(desired: &DesiredHost, remote: &Remote, plan: &mut HostPlan) -> Result<(), String> {
    if desired.compose.is_empty() {
        return Ok(());
    }
    if remote.docker_unreachable {
        return Err("docker is installed but the engine does not answer (is dockerd running?)".into());
    }
    if remote.compose.is_none() {
        return Err("the host has compose projects but neither `docker compose` nor `docker-compose`; install docker and compose".into());
    }
    let changed: std::collections::HashMap<&str, &Change> =
        plan.changes.iter().filter(|c| c.resource == Resource::File).map(|c| (c.path.as_str(), c)).collect();
    let role_selected = |role: &str| {
        desired.files.iter().any(|f| f.role == role && f.selected)
            || desired.dirs.iter().any(|d| d.role == role && d.selected)
            || desired.checks.iter().any(|c| c.role == role && c.selected)
    };
    let mut new_changes = Vec::new();
    for p in &desired.compose {
        let project_in_scope = role_selected(&p.role) || desired.files.iter().all(|f| f.selected);
        let mut hashes = Vec::new();
        for s in &p.services {
            let mut h = format!("def:{}\n", s.definition_sha);
            for i in &s.inputs {
                h.push_str(&format!("{i}:{}\n", sha_after(desired, remote, i)?));
            }
            let hash = crate::util::sha256_hex(h.as_bytes())[..16].to_string();
            hashes.push((s.name.clone(), hash.clone()));
            let selected_inputs: Vec<&String> =
                s.inputs.iter().filter(|i| desired.file(i).is_some_and(|f| f.selected)).collect();
            if !project_in_scope && selected_inputs.is_empty() {
                continue;
            }
            let containers: Vec<&crate::plan::state::Container> =
                remote.containers.iter().filter(|c| c.project == p.project && c.service == s.name).collect();
            let adoptable = !remote.paths.contains_key(&p.override_path);
            plan.services.extend(service_action(p, s, &containers, &changed, &hash, adoptable));
        }
        reloads(p, &changed, &mut plan.services);
        if adopted_whole(p, remote, plan) {
            continue;
        }
        let content = crate::render::compose::override_file(&p.project, &hashes).into_bytes();
        let sha = crate::util::sha256_hex(&content);
        let e = remote.paths.get(&p.override_path);
        if e.and_then(|e| e.sha256.as_deref()) != Some(sha.as_str()) {
            if let Some(e) = e.filter(|e| e.kind != Kind::File) {
                return Err(format!(
                    "{} is {} on the host; deploy generates this file",
                    p.override_path,
                    kind_name(e.kind)
                ));
            }
            new_changes.push(Change {
                path: p.override_path.clone(),
                role: p.role.clone(),
                resource: Resource::File,
                action: if e.is_some() { Action::Update } else { Action::Create },
                reasons: vec!["service input labels".into()],
                expected: expected(e),
                secret: false,
                phase: p.phase,
                file: None,
                content: Some(content),
                diff: None,
                shrink: None,
            });
        }
    }
    plan.changes.extend(new_changes);
    Ok(())
}

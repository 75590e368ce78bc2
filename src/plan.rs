//! The plan: pure data computed from the desired state and the probe. It is
//! printed, serialised for `--output json`, and applied; `--check` stops
//! after printing it. Building it writes nothing anywhere.

use serde::Serialize;

use crate::probe::{Entry, Kind, Remote};
use crate::project::Id;
use crate::render::DesiredHost;

/// What happens to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
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
pub enum Resource {
    /// A file.
    File,
    /// A directory.
    Dir,
    /// A path that must not exist.
    Absent,
}

/// What the host had when probed; apply refuses to touch a path that no
/// longer matches (someone changed it in between).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Expected {
    /// Nothing there.
    Absent,
    /// A file with this content hash.
    File { sha256: String },
    /// A directory.
    Dir,
    /// Something else (link, socket, ...).
    Other,
}

/// One change on one host.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Absolute path.
    pub path: String,
    /// Role that declares it.
    pub role: String,
    /// Resource kind.
    pub resource: Resource,
    /// What happens.
    pub action: Action,
    /// Why, in words: "content", "mode 0644 -> 0600", "owner root -> 1000".
    pub reasons: Vec<String>,
    /// State seen by the probe.
    pub expected: Expected,
    /// Secret file: content is never shown.
    pub secret: bool,
    /// Index into the desired files (for file changes).
    #[serde(skip)]
    pub file: Option<usize>,
    /// Unified diff (redacted), when computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// The plan for one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    /// Inventory name.
    pub host: String,
    /// Changes, in apply order: dirs (parents first), files, removals.
    pub changes: Vec<Change>,
    /// Paths already as desired.
    pub unchanged: usize,
    /// `preserve` files that differ from the template and are left alone.
    pub preserved: Vec<String>,
}

impl HostPlan {
    /// Counts by action: (create, update, metadata, delete).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |a: Action| self.changes.iter().filter(|c| c.action == a).count();
        (n(Action::Create), n(Action::Update), n(Action::Metadata), n(Action::Delete))
    }
}

fn expected(e: Option<&Entry>) -> Expected {
    match e {
        None => Expected::Absent,
        Some(e) => match e.kind {
            Kind::File => Expected::File { sha256: e.sha256.clone().unwrap_or_default() },
            Kind::Dir => Expected::Dir,
            _ => Expected::Other,
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

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "a file",
        Kind::Dir => "a directory",
        Kind::Link => "a symbolic link",
        Kind::Other => "a special file",
    }
}

/// Compare desired and remote state. Errors are paths whose type on the host
/// conflicts with the declaration (a directory where a file is declared).
pub fn plan_host(desired: &DesiredHost, remote: &Remote) -> Result<HostPlan, String> {
    let mut plan = HostPlan { host: desired.host.clone(), changes: vec![], unchanged: 0, preserved: vec![] };
    for d in &desired.dirs {
        let e = remote.paths.get(&d.path);
        let base = Change {
            path: d.path.clone(),
            role: d.role.clone(),
            resource: Resource::Dir,
            action: Action::Create,
            reasons: vec![],
            expected: expected(e),
            secret: false,
            file: None,
            diff: None,
        };
        match e {
            None => plan.changes.push(Change { reasons: vec!["missing".into()], ..base }),
            Some(e) if e.kind != Kind::Dir => {
                return Err(format!("{} is {} on the host but declared as a directory by role `{}`; remove it by hand or change the role", d.path, kind_name(e.kind), d.role));
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
    for (i, f) in desired.files.iter().enumerate() {
        let e = remote.paths.get(&f.dest);
        let base = Change {
            path: f.dest.clone(),
            role: f.role.clone(),
            resource: Resource::File,
            action: Action::Create,
            reasons: vec![],
            expected: expected(e),
            secret: f.secret,
            file: Some(i),
            diff: None,
        };
        match e {
            None => plan.changes.push(Change { reasons: vec!["missing".into()], ..base }),
            Some(e) if e.kind != Kind::File => {
                return Err(format!(
                    "{} is {} on the host but declared as a file by role `{}`; remove it by hand or change the role",
                    f.dest,
                    kind_name(e.kind),
                    f.role
                ));
            }
            Some(e) => {
                let mut r = Vec::new();
                let content_differs = e.sha256.as_deref() != Some(f.sha256.as_str());
                if content_differs && f.preserve {
                    plan.preserved.push(f.dest.clone());
                } else if content_differs {
                    r.push("content".to_string());
                }
                r.extend(meta_reasons(e, &f.owner, &f.group, f.mode));
                if r.is_empty() {
                    plan.unchanged += 1;
                } else {
                    let action = if r[0] == "content" { Action::Update } else { Action::Metadata };
                    plan.changes.push(Change { action, reasons: r, ..base });
                }
            }
        }
    }
    for (path, role) in &desired.absent {
        match remote.paths.get(path) {
            None => plan.unchanged += 1,
            Some(e) => plan.changes.push(Change {
                path: path.clone(),
                role: role.clone(),
                resource: Resource::Absent,
                action: Action::Delete,
                reasons: vec![format!("{} present", kind_name(e.kind))],
                expected: expected(Some(e)),
                secret: false,
                file: None,
                diff: None,
            }),
        }
    }
    Ok(plan)
}

//! The desired state of one host, as rendering produces it: every managed
//! path with its bytes, hash and metadata, compose projects, checks.

use std::path::PathBuf;

use serde::Serialize;

use crate::load::project::Id;

/// Where a host records the state of each toggle (written through the
/// journal, so a revert restores it with everything else).
pub(crate) const TOGGLE_DIR: &str = "/var/lib/deploy/toggles";

/// How to reach a host, from its variables.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Connection {
    /// ssh destination (ansible_host, else the inventory name).
    pub(crate) address: String,
    /// ansible_port.
    pub(crate) port: Option<u16>,
    /// ansible_user.
    pub(crate) user: Option<String>,
    /// ansible_ssh_private_key_file.
    pub(crate) key_file: Option<PathBuf>,
    /// deploy_ssh_config: an ssh_config file passed with -F.
    pub(crate) ssh_config: Option<PathBuf>,
    /// deploy_fallback_port: where sshd listens until this deploy moves it
    /// to ansible_port. Tried only when nothing listens on ansible_port.
    pub(crate) fallback_port: Option<u16>,
}

/// A file as it should be on the host.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredFile {
    /// Absolute destination path.
    pub(crate) dest: String,
    /// Role that declares it.
    pub(crate) role: String,
    /// Template or source it came from (for messages).
    pub(crate) source: String,
    /// Rendered bytes.
    #[serde(skip)]
    pub(crate) bytes: Vec<u8>,
    /// A big source file left on the controller's disk (`bytes` is then
    /// empty). It is uploaded in pieces.
    #[serde(skip)]
    pub(crate) disk: Option<super::sums::OnDisk>,
    /// sha256 of the contents, hex, once known: see `sha256()`.
    #[serde(skip)]
    pub(crate) sha: std::sync::OnceLock<String>,
    /// Owner, if declared.
    pub(crate) owner: Option<Id>,
    /// Group, if declared.
    pub(crate) group: Option<Id>,
    /// Mode, if declared.
    pub(crate) mode: Option<u32>,
    /// Validation command (`%s` = the new file).
    pub(crate) validate: Option<String>,
    /// Content never shown.
    pub(crate) secret: bool,
    /// Never overwritten once present.
    pub(crate) preserve: bool,
    /// May become empty or shrink by most of its bytes under `--yes`.
    pub(crate) may_empty: bool,
    /// Command run on the host after it changed.
    pub(crate) on_change: Option<String>,
    /// Index of the phase of its role.
    pub(crate) phase: usize,
    /// Part of this run (--role); unselected resources only inform compose analysis.
    pub(crate) selected: bool,
}

/// A directory as it should be on the host.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredDir {
    /// Absolute path.
    pub(crate) path: String,
    /// Role that declares it.
    pub(crate) role: String,
    /// Owner, if declared.
    pub(crate) owner: Option<Id>,
    /// Group, if declared.
    pub(crate) group: Option<Id>,
    /// Mode, if declared.
    pub(crate) mode: Option<u32>,
    /// Index of the phase of its role.
    pub(crate) phase: usize,
    /// Part of this run (--role).
    pub(crate) selected: bool,
}

/// A symbolic link as it should be on the host.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredLink {
    /// Absolute path of the link.
    pub(crate) path: String,
    /// What it points at.
    pub(crate) target: String,
    /// Role that declares it.
    pub(crate) role: String,
    /// Index of the phase of its role.
    pub(crate) phase: usize,
    /// Part of this run (--role).
    pub(crate) selected: bool,
}

/// A service of a compose project and what it reads.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredService {
    /// Service name.
    pub(crate) name: String,
    /// Hash of its definition (after merging the compose files).
    pub(crate) definition_sha: String,
    /// Managed files it reads (env files, bind-mounted files, the interpolation .env).
    pub(crate) inputs: Vec<String>,
    /// The compose file defining it.
    pub(crate) file: String,
}

/// A mounted file reloaded in place.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Reload {
    /// The file.
    pub(crate) file: String,
    /// The service.
    pub(crate) service: String,
    /// Command run in its container.
    pub(crate) command: Vec<String>,
}

/// A compose project on a host.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredCompose {
    /// Project name.
    pub(crate) project: String,
    /// Project directory.
    pub(crate) dir: String,
    /// Declaring role.
    pub(crate) role: String,
    /// Phase of that role.
    pub(crate) phase: usize,
    /// Compose files, absolute.
    pub(crate) files: Vec<String>,
    /// The generated label override file.
    pub(crate) override_path: String,
    /// Services.
    pub(crate) services: Vec<DesiredService>,
    /// Reload triggers.
    pub(crate) reloads: Vec<Reload>,
    /// Seconds services may take to become healthy.
    pub(crate) health_timeout: u64,
}

/// What a health check probes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum CheckKind {
    /// HTTP status of a URL, fetched on the host.
    Http { url: String, status: u16 },
    /// A TCP connection.
    Tcp { address: String },
    /// A command on the host.
    Command { command: String },
}

/// A health check gating a phase.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredCheck {
    /// Declaring role.
    pub(crate) role: String,
    /// Its phase.
    pub(crate) phase: usize,
    /// Part of this run.
    pub(crate) selected: bool,
    /// What it checks.
    pub(crate) kind: CheckKind,
    /// Seconds it may take.
    pub(crate) timeout: u64,
}

/// A pre-flight check of a role, run before any of its changes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredPreflight {
    /// Declaring role.
    pub(crate) role: String,
    /// What it checks.
    pub(crate) kind: PreflightKind,
}

/// What a pre-flight check looks at.
#[derive(Debug, Clone, Serialize)]
pub(crate) enum PreflightKind {
    /// An expression over the host's variables and the connection facts,
    /// evaluated once those facts are known (after the probe).
    That {
        /// The expression, as written.
        expr: String,
        /// Its message template, as written.
        msg: Option<String>,
    },
    /// A command on the host that must exit 0.
    Command {
        /// The rendered command.
        command: String,
    },
    /// A Compose service that must be healthy when it exists.
    Healthy {
        /// Compose project.
        project: String,
        /// Service.
        service: String,
    },
}

/// Everything one host should have.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredHost {
    /// Inventory name.
    pub(crate) host: String,
    /// How to reach it.
    pub(crate) connection: Connection,
    /// Directories, parents before children.
    pub(crate) dirs: Vec<DesiredDir>,
    /// Files.
    pub(crate) files: Vec<DesiredFile>,
    /// Symbolic links.
    pub(crate) links: Vec<DesiredLink>,
    /// Paths that must not exist.
    pub(crate) absent: Vec<DesiredAbsent>,
    /// Compose projects.
    pub(crate) compose: Vec<DesiredCompose>,
    /// Health checks.
    pub(crate) checks: Vec<DesiredCheck>,
    /// Findings worth a warning.
    pub(crate) warnings: Vec<String>,
    /// Unmanaged paths the probe also reports (toggle state files).
    pub(crate) extra_probe: Vec<String>,
    /// Pre-flight checks of the selected roles.
    pub(crate) preflight: Vec<DesiredPreflight>,
    /// Where a toggle's confirmation connects (its `confirm_via`), when not
    /// the usual destination.
    pub(crate) confirm_via: Option<String>,
    /// Packages, units, users, groups, sysctl values, lines, commands.
    pub(crate) system: crate::render::system::DesiredSystem,
    /// Resources two or more roles declared alike (a path, `package NAME`):
    /// every role that declared it, the first one first.
    pub(crate) declared_by: indexmap::IndexMap<String, Vec<String>>,
    /// Not rendered yet: the repository reads host facts, which are
    /// gathered first (only the connection is known).
    #[serde(skip)]
    pub(crate) facts_pending: bool,
    /// The host's facts this was rendered with, as variables (for any
    /// render of it again).
    #[serde(skip)]
    pub(crate) facts: Vec<(String, minijinja::Value)>,
}

impl DesiredHost {
    /// `key` (a path, `package NAME`), declared first by `first`, is also
    /// declared alike by `role`.
    pub(crate) fn declared_also(&mut self, key: &str, first: &str, role: &str) {
        let roles = self.declared_by.entry(key.to_string()).or_insert_with(|| vec![first.to_string()]);
        if !roles.iter().any(|r| r == role) {
            roles.push(role.to_string());
        }
    }

    /// The roles that declare `key`, as the plan names them: `a, b`.
    pub(crate) fn roles_of(&self, key: &str, role: &str) -> String {
        self.declared_by.get(key).map(|r| r.join(", ")).unwrap_or_else(|| role.to_string())
    }

    /// A host with nothing declared yet.
    pub(crate) fn new(host: &str, connection: Connection) -> DesiredHost {
        DesiredHost {
            host: host.into(),
            connection,
            dirs: vec![],
            files: vec![],
            links: vec![],
            absent: vec![],
            compose: vec![],
            checks: vec![],
            warnings: vec![],
            extra_probe: vec![],
            preflight: vec![],
            confirm_via: None,
            system: Default::default(),
            declared_by: Default::default(),
            facts_pending: false,
            facts: vec![],
        }
    }

    /// The desired file at `path`, if managed.
    pub(crate) fn file(&self, path: &str) -> Option<&DesiredFile> {
        self.files.iter().find(|f| f.dest == path)
    }
}

/// A path that must not exist on the host.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredAbsent {
    /// Absolute path.
    pub(crate) path: String,
    /// Role that declares it.
    pub(crate) role: String,
    /// Index of the phase of its role.
    pub(crate) phase: usize,
    /// Part of this run (--role).
    pub(crate) selected: bool,
    /// `force: true`: a top-level tree really meant to go.
    pub(crate) force: bool,
    /// The path as role.yml writes it, for messages.
    pub(crate) written: String,
}

impl DesiredFile {
    /// A file of `bytes` made by deploy itself (not from a role's files):
    /// root-owned as the host creates it, mode 0644, no validation.
    /// The sha256 of the contents, hex. A big source file's is taken when
    /// first asked (unless the render found it cached); Err when that file
    /// changed since the render.
    pub(crate) fn sha256(&self) -> Result<&str, String> {
        if let Some(s) = self.sha.get() {
            return Ok(s);
        }
        let sha = match &self.disk {
            Some(d) => super::sums::take(d)?,
            None => crate::util::sha256_hex(&self.bytes),
        };
        Ok(self.sha.get_or_init(|| sha))
    }

    /// The sha256 when it is known without reading a big file.
    pub(crate) fn known_sha256(&self) -> Option<&str> {
        self.sha.get().map(String::as_str)
    }

    /// The contents, read from disk for a big source file.
    pub(crate) fn contents(&self) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        match &self.disk {
            Some(d) => std::fs::read(&d.path).map(std::borrow::Cow::Owned),
            None => Ok(std::borrow::Cow::Borrowed(&self.bytes)),
        }
    }

    /// The size of the contents.
    pub(crate) fn len(&self) -> u64 {
        self.disk.as_ref().map(|d| d.len).unwrap_or(self.bytes.len() as u64)
    }

    /// Write the contents to `w`, a big source file in pieces.
    pub(crate) fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        match &self.disk {
            Some(d) => std::io::copy(&mut std::fs::File::open(&d.path)?, w).map(|_| ()),
            None => w.write_all(&self.bytes),
        }
    }

    pub(crate) fn generated(dest: &str, role: &str, source: &str, bytes: Vec<u8>, phase: usize) -> DesiredFile {
        DesiredFile {
            dest: dest.into(),
            role: role.into(),
            source: source.into(),
            sha: crate::util::sha256_hex(&bytes).into(),
            bytes,
            disk: None,
            owner: None,
            group: None,
            mode: Some(0o644),
            validate: None,
            secret: false,
            preserve: false,
            may_empty: false,
            on_change: None,
            phase,
            selected: true,
        }
    }
}

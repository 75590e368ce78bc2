//! The desired state of one host, as rendering produces it: every managed
//! path with its bytes, hash and metadata, compose projects, checks.

use std::path::PathBuf;

use serde::Serialize;

use crate::load::project::Id;

/// Where a host records the state of each toggle (written through the
/// journal, so a revert restores it with everything else).
pub const TOGGLE_DIR: &str = "/var/lib/deploy/toggles";

/// How to reach a host, from its variables.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Connection {
    /// ssh destination (ansible_host, else the inventory name).
    pub address: String,
    /// ansible_port.
    pub port: Option<u16>,
    /// ansible_user.
    pub user: Option<String>,
    /// ansible_ssh_private_key_file.
    pub key_file: Option<PathBuf>,
    /// deploy_ssh_config: an ssh_config file passed with -F.
    pub ssh_config: Option<PathBuf>,
    /// deploy_fallback_port: where sshd listens until this deploy moves it
    /// to ansible_port. Tried only when nothing listens on ansible_port.
    pub fallback_port: Option<u16>,
}

/// A file as it should be on the host.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredFile {
    /// Absolute destination path.
    pub dest: String,
    /// Role that declares it.
    pub role: String,
    /// Template or source it came from (for messages).
    pub source: String,
    /// Rendered bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`, hex.
    pub sha256: String,
    /// Owner, if declared.
    pub owner: Option<Id>,
    /// Group, if declared.
    pub group: Option<Id>,
    /// Mode, if declared.
    pub mode: Option<u32>,
    /// Validation command (`%s` = the new file).
    pub validate: Option<String>,
    /// Content never shown.
    pub secret: bool,
    /// Never overwritten once present.
    pub preserve: bool,
    /// Command run on the host after it changed.
    pub on_change: Option<String>,
    /// Index of the phase of its role.
    pub phase: usize,
    /// Part of this run (--role); unselected resources only inform compose analysis.
    pub selected: bool,
}

/// A directory as it should be on the host.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredDir {
    /// Absolute path.
    pub path: String,
    /// Role that declares it.
    pub role: String,
    /// Owner, if declared.
    pub owner: Option<Id>,
    /// Group, if declared.
    pub group: Option<Id>,
    /// Mode, if declared.
    pub mode: Option<u32>,
    /// Index of the phase of its role.
    pub phase: usize,
    /// Part of this run (--role).
    pub selected: bool,
}

/// A service of a compose project and what it reads.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredService {
    /// Service name.
    pub name: String,
    /// Hash of its definition (after merging the compose files).
    pub definition_sha: String,
    /// Managed files it reads (env files, bind-mounted files, the interpolation .env).
    pub inputs: Vec<String>,
    /// The compose file defining it.
    pub file: String,
}

/// A mounted file reloaded in place.
#[derive(Debug, Clone, Serialize)]
pub struct Reload {
    /// The file.
    pub file: String,
    /// The service.
    pub service: String,
    /// Command run in its container.
    pub command: Vec<String>,
}

/// A compose project on a host.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredCompose {
    /// Project name.
    pub project: String,
    /// Project directory.
    pub dir: String,
    /// Declaring role.
    pub role: String,
    /// Phase of that role.
    pub phase: usize,
    /// Compose files, absolute.
    pub files: Vec<String>,
    /// The generated label override file.
    pub override_path: String,
    /// Services.
    pub services: Vec<DesiredService>,
    /// Reload triggers.
    pub reloads: Vec<Reload>,
    /// Seconds services may take to become healthy.
    pub health_timeout: u64,
}

/// What a health check probes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CheckKind {
    /// HTTP status of a URL, fetched on the host.
    Http { url: String, status: u16 },
    /// A TCP connection.
    Tcp { address: String },
    /// A command on the host.
    Command { command: String },
}

/// A health check gating a phase.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredCheck {
    /// Declaring role.
    pub role: String,
    /// Its phase.
    pub phase: usize,
    /// Part of this run.
    pub selected: bool,
    /// What it checks.
    pub kind: CheckKind,
    /// Seconds it may take.
    pub timeout: u64,
}

/// A pre-flight check of a role, run before any of its changes.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredPreflight {
    /// Declaring role.
    pub role: String,
    /// What it checks.
    pub kind: PreflightKind,
}

/// What a pre-flight check looks at.
#[derive(Debug, Clone, Serialize)]
pub enum PreflightKind {
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
pub struct DesiredHost {
    /// Inventory name.
    pub host: String,
    /// How to reach it.
    pub connection: Connection,
    /// Directories, parents before children.
    pub dirs: Vec<DesiredDir>,
    /// Files.
    pub files: Vec<DesiredFile>,
    /// Paths that must not exist: path, role, phase, selected.
    pub absent: Vec<(String, String, usize, bool)>,
    /// Compose projects.
    pub compose: Vec<DesiredCompose>,
    /// Health checks.
    pub checks: Vec<DesiredCheck>,
    /// Findings worth a warning.
    pub warnings: Vec<String>,
    /// Unmanaged paths the probe also reports (toggle state files).
    pub extra_probe: Vec<String>,
    /// Pre-flight checks of the selected roles.
    pub preflight: Vec<DesiredPreflight>,
    /// Where a toggle's confirmation connects (its `confirm_via`), when not
    /// the usual destination.
    pub confirm_via: Option<String>,
}

impl DesiredHost {
    /// The desired file at `path`, if managed.
    pub fn file(&self, path: &str) -> Option<&DesiredFile> {
        self.files.iter().find(|f| f.dest == path)
    }
}

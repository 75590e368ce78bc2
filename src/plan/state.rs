//! What a host has, as the probe found it: paths with their metadata and
//! hashes, containers, the lock, the connection as the host sees it. Plain
//! data; `remote::probe` fills it in.

use std::collections::HashMap;

use serde::Serialize;

/// The kind of thing at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Link,
    /// Socket, fifo, device.
    Other,
}

/// One existing path on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Entry {
    /// What it is.
    pub(crate) kind: Kind,
    /// Permission bits.
    pub(crate) mode: u32,
    /// Numeric owner.
    pub(crate) uid: u32,
    /// Numeric group.
    pub(crate) gid: u32,
    /// Owner name (or UNKNOWN).
    pub(crate) user: String,
    /// Group name (or UNKNOWN).
    pub(crate) group: String,
    /// sha256 for regular files.
    pub(crate) sha256: Option<String>,
    /// What a symbolic link points at.
    pub(crate) target: Option<String>,
}

/// The lock as the probe found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) enum Lock {
    /// No lock present.
    Free,
    /// Held by a deploy; its holder line.
    Seen(String),
}

/// Which Compose the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ComposeVariant {
    /// `docker compose` (the v2 plugin).
    V2,
    /// `docker-compose` (v1, Python).
    V1,
}

/// A container as `docker ps -a` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Container {
    /// Full container id.
    pub(crate) id: String,
    /// Compose project label.
    pub(crate) project: String,
    /// Compose service label.
    pub(crate) service: String,
    /// Our input-hash label (empty when absent).
    pub(crate) inputs: String,
    /// running, exited, restarting, created, dead, paused.
    pub(crate) state: String,
    /// Made by compose outside deploy (no inputs label) from the definition
    /// the host's compose files give now: adopted as it is.
    pub(crate) adopt: bool,
}

/// The current contents of a file the deploy would change, sent by the
/// probe for its diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) enum Old {
    /// The bytes on the host.
    Bytes(#[serde(skip)] Vec<u8>),
    /// Its size alone: over the probe's limit, or a file whose contents
    /// the controller is not sent (secret, or a big source).
    TooLarge(u64),
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Remote {
    /// Compose on the host (None: not asked, or not installed).
    pub(crate) compose: Option<ComposeVariant>,
    /// Docker was asked about but did not answer.
    pub(crate) docker_unreachable: bool,
    /// Containers (when asked).
    pub(crate) containers: Vec<Container>,
    /// `uname -n` of the host.
    pub(crate) hostname: String,
    /// Existing paths; a managed path missing here does not exist.
    pub(crate) paths: HashMap<String, Entry>,
    /// The lock.
    pub(crate) lock: Lock,
    /// How far the lock holder's deploy got on this host, phase by phase.
    pub(crate) holder_journals: Vec<JournalState>,
    /// The audit line of the last deploy, when the host reverted it.
    pub(crate) reverted: Option<String>,
    /// This controller's address as the host sees it (from SSH_CONNECTION).
    pub(crate) client_addr: Option<String>,
    /// The port this connection reached sshd on.
    pub(crate) server_port: Option<u16>,
    /// Trees this deploy would remove: files (and directories) and bytes.
    #[serde(skip)]
    pub(crate) sizes: HashMap<String, (u64, u64)>,
    /// Current contents of files asked about that differ from the wanted hash.
    #[serde(skip)]
    pub(crate) old: HashMap<String, Old>,
    /// What the host has beyond files and containers.
    pub(crate) system: SystemState,
    /// Directories new files need that are not directories on the host
    /// (`nodir`): what is there instead, `none` when nothing.
    #[serde(skip)]
    pub(crate) not_dirs: HashMap<String, String>,
}

/// A systemd unit as `systemctl show` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct UnitStatus {
    /// loaded, not-found, masked, ...
    pub(crate) load: String,
    /// active, inactive, failed, activating, ...
    pub(crate) active: String,
    /// enabled, disabled, static, masked, ... (empty when no unit file)
    pub(crate) file_state: String,
    /// Main process (0: none).
    pub(crate) main_pid: u32,
}

/// An apt package as `apt-cache policy` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct PackageStatus {
    /// Installed version.
    pub(crate) installed: Option<String>,
    /// What `apt-get install` would install.
    pub(crate) candidate: Option<String>,
    /// Every version the archive (or the dpkg status) has.
    pub(crate) available: Vec<String>,
}

/// A local user as `getent` and `id` report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct UserEntry {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: String,
    pub(crate) shell: String,
    /// Primary group name.
    pub(crate) group: String,
    /// Every group, the primary one included.
    pub(crate) groups: Vec<String>,
    /// The home directory exists.
    pub(crate) home_exists: bool,
}

/// Where a unit's status is kept: its name, or `user/USER/NAME` for a unit
/// of a user's own systemd (neither names may hold a `/`).
pub(crate) fn unit_key(user: Option<&str>, name: &str) -> String {
    match user {
        Some(u) => format!("user/{u}/{name}"),
        None => name.to_string(),
    }
}

/// The probe's answers to the queries about what is not a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct SystemState {
    /// The host does not run systemd (units were asked about).
    pub(crate) no_systemd: bool,
    /// The host has no apt (packages were asked about).
    pub(crate) no_apt: bool,
    /// By `unit_key`.
    pub(crate) units: HashMap<String, UnitStatus>,
    /// Users whose systemd runs without a login (loginctl enable-linger).
    pub(crate) lingers: HashMap<String, bool>,
    /// Packages the archive knows; one missing here is unknown to it.
    pub(crate) packages: HashMap<String, PackageStatus>,
    /// None: no such user.
    pub(crate) users: HashMap<String, Option<UserEntry>>,
    /// None: no such group.
    pub(crate) groups: HashMap<String, Option<u32>>,
    /// None: no such key on this kernel.
    pub(crate) sysctl: HashMap<String, Option<String>>,
    /// Guard id -> exit status.
    pub(crate) guards: HashMap<usize, i32>,
    /// Contents of files whose lines are managed.
    #[serde(skip)]
    pub(crate) reads: HashMap<String, Old>,
}

/// One phase journal of the deploy holding a host's lock, as the host
/// records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct JournalState {
    /// `p000`, `p001`, ...
    pub(crate) phase: String,
    /// uploading, swapping, done, rolled-back; `controller-gone` appended
    /// when the controller stopped reading.
    pub(crate) state: String,
    /// Paths journaled.
    pub(crate) paths: usize,
}

impl JournalState {
    /// What the phase's apply did, in words.
    pub(crate) fn describe(&self) -> String {
        let n = self.paths;
        let what = match self.state.split_whitespace().next().unwrap_or("") {
            "uploading" => "its upload never finished; nothing of it was changed".to_string(),
            "swapping" => format!("it stopped while changing files ({n} journaled; the host went down mid-swap?)"),
            "done" => format!("all {n} changes written"),
            "rolled-back" => format!("it failed and was rolled back ({n} paths)"),
            other => format!("state `{other}`"),
        };
        let gone = if self.state.contains("controller-gone") {
            "; the controller stopped listening there, so its later steps did not run"
        } else {
            ""
        };
        format!("phase journal {}: {what}{gone}", self.phase)
    }
}

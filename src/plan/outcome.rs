//! What applying a plan did on one host: plain data, reported by `report`
//! and written to the audit log.

/// What happened on one host during apply.
#[derive(Debug, Default)]
pub(crate) struct HostReport {
    /// Paths changed.
    pub(crate) applied: Vec<String>,
    /// Paths left alone (changed since the plan), with why.
    pub(crate) skipped: Vec<(String, String)>,
    /// Container actions done ("recreated apps/openclaw").
    pub(crate) services: Vec<String>,
    /// Why the host failed, if it did.
    pub(crate) failure: Option<Failure>,
    /// What the dead-man switch did.
    pub(crate) deadman: Vec<String>,
    /// The lock must stay: an unconfirmed deploy's revert releases it.
    pub(crate) keep_lock: bool,
    /// The run was interrupted (SIGINT, SIGTERM, SIGHUP) and stopped this
    /// host between phases.
    pub(crate) interrupted: bool,
    /// A staged rollout stopped before this host's batch: why.
    pub(crate) not_started: Option<String>,
}

/// A failed phase: what failed, the details, and what was restored.
#[derive(Debug, Default)]
pub(crate) struct Failure {
    /// Phase name.
    pub(crate) phase: String,
    /// One line: what failed.
    pub(crate) what: String,
    /// Output worth showing (validator output, a container's last log lines).
    pub(crate) details: Vec<String>,
    /// What the rollback did.
    pub(crate) rolled_back: Vec<String>,
    /// The rollback could not restore every path.
    pub(crate) revert_incomplete: bool,
}

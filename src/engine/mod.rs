//! The engine: per host, prepare (connect, probe, plan, pre-flight, lock
//! and diffs), then apply (phases with health gates and rollback, under the
//! dead-man switch where a phase asks for it). It never prints: progress
//! goes to `report::Progress`, results come back as data.

mod apply;
mod deadman;
mod lock;
mod prepare;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::load::secrets::Keys;
use crate::plan::state::Lock;
use crate::plan::{plan_host, Action, HostPlan, ServiceAction, ServiceActionKind};
use crate::redact::Redactor;
use crate::remote::apply::FINISH;
use crate::remote::ssh::{Conn, SshOptions};
use crate::render::{CheckKind, DesiredHost, Renderer as Loaded};
use crate::report::error_text;
use crate::report::Progress;

pub(crate) use apply::*;
pub(crate) use deadman::*;
pub(crate) use lock::*;
pub(crate) use prepare::*;

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

pub(crate) struct Ready {
    pub(crate) conn: Conn,
    pub(crate) plan: HostPlan,
    /// This deploy holds the host's lock.
    pub(crate) locked: AtomicBool,
    /// A command that takes the lock was sent (it may hold it).
    pub(crate) lock_sent: AtomicBool,
    /// The audit line is written and the lock released (by the apply).
    pub(crate) finished: AtomicBool,
    pub(crate) holder: String,
    pub(crate) env: String,
    /// What the plan was made from (re-rendered when a toggle is on).
    pub(crate) desired: Arc<DesiredHost>,
}

impl Ready {
    /// A host script's reply that does not follow its protocol.
    fn protocol(&self, message: String) -> Error {
        Error::Remote { host: self.desired.host.clone(), message: format!("unreadable reply: {message}") }
    }

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

pub(crate) enum HostState {
    Ready(Box<Ready>),
    Failed(Error),
}

pub(crate) fn id_of(holder: &str) -> String {
    holder.rsplit("deploy=").next().unwrap_or("").to_string()
}

/// One phase as stage 2 needs it.
#[derive(Debug, Clone)]
pub struct PhaseInfo {
    /// Name from deploy.yml.
    pub name: String,
    /// Dead-man window in seconds, for guarded phases.
    pub deadman: Option<u64>,
}

pub(crate) fn clock(epoch: u64) -> String {
    let t = crate::util::utc(epoch);
    format!("{} UTC", &t[11..19])
}

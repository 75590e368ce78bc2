//! The engine: per host, prepare (connect, probe, plan, pre-flight, lock
//! and diffs), then apply (phases with health gates and rollback, under the
//! dead-man switch where a phase asks for it). It never prints: progress
//! goes to `report::Progress`, results come back as data.

mod apply;
mod deadman;
mod interrupt;
mod lock;
mod prepare;
pub(crate) mod rollout;
mod run;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::load::secrets::Keys;
use crate::plan::outcome::{Failure, HostReport};
use crate::plan::state::Lock;
use crate::plan::{plan_host, Action, HostPlan, ServiceAction, ServiceActionKind};
use crate::redact::Redactor;
use crate::remote::lock::FINISH;
use crate::remote::ssh::{Conn, SshOptions};
use crate::render::{CheckKind, DesiredHost, Renderer as Loaded};
use crate::report::error_text;
use crate::report::Progress;

pub(crate) use apply::*;
pub(crate) use deadman::*;
pub(crate) use interrupt::Interrupt;
pub(crate) use lock::*;
pub(crate) use prepare::*;
pub(crate) use run::*;

/// What `deploy ENV` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct DeployArgs {
    /// Project root.
    pub(crate) root: PathBuf,
    /// Environment (inventory group).
    pub(crate) env: String,
    /// Stop after showing the plan.
    pub(crate) check: bool,
    /// Do not ask.
    pub(crate) yes: bool,
    /// With `yes`: apply a change that empties a file or takes most of it away.
    pub(crate) allow_shrink: bool,
    /// Only these roles.
    pub(crate) roles: Option<Vec<String>>,
    /// Only these hosts.
    pub(crate) limit: Option<Vec<String>>,
    /// Print the plan as JSON.
    pub(crate) json: bool,
    /// Print the plan as Markdown (a pull-request comment).
    pub(crate) markdown: bool,
    /// Batches, canary, failure limit.
    pub(crate) rollout: rollout::Rollout,
    /// A rollback (`deploy rollback`): said so in the audit log.
    pub(crate) rollback: bool,
    /// --save-plan FILE (with --check).
    pub(crate) save_plan: Option<PathBuf>,
    /// `deploy apply FILE`: each host's plan digest, which its new plan must match.
    pub(crate) expect: Option<std::collections::BTreeMap<String, String>>,
    /// -e key=value.
    pub(crate) extra: Vec<(String, serde_yaml::Value)>,
    /// Decryption keys.
    pub(crate) keys: Keys,
    /// SSH settings.
    pub(crate) ssh: SshOptions,
    /// A toggle run (`deploy vpn-on ENV`).
    pub(crate) toggle: Option<ToggleRun>,
}

/// `deploy NAME-on|NAME-off ENV`.
#[derive(Debug, Clone)]
pub(crate) struct ToggleRun {
    /// Toggle name.
    pub(crate) name: String,
    /// On or off.
    pub(crate) on: bool,
    /// --confirm-within, else the toggle's auto_revert.
    pub(crate) window: Option<u64>,
    /// False for --no-confirm: leave the timer running (a trial).
    pub(crate) confirm: bool,
}

/// Where a host's deploy lock stands for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockState {
    /// No command that takes the lock was sent.
    NotTaken,
    /// A command that takes the lock was sent; whether it got it is unknown
    /// (the connection may have dropped): releasing is still our job.
    Sent,
    /// This run holds the lock.
    Held,
    /// The apply itself wrote the audit line and released it.
    Released,
}

pub(crate) struct Ready {
    pub(crate) conn: Conn,
    pub(crate) plan: HostPlan,
    pub(crate) lock: std::sync::Mutex<LockState>,
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

    pub(crate) fn lock_state(&self) -> LockState {
        *self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_lock(&self, s: LockState) {
        *self.lock.lock().unwrap_or_else(|e| e.into_inner()) = s;
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
        let (out, sent) = self.exec(name, script, args, crate::remote::ssh::Input::Bytes(stdin)).await?;
        crate::remote::ssh::all_sent(&self.desired.host, name, out, sent)
    }

    /// `run` with any input; also says how sending it went.
    async fn exec(
        &self,
        name: &str,
        script: &str,
        args: &[&str],
        input: crate::remote::ssh::Input<'_>,
    ) -> Result<(crate::remote::ssh::Output, std::result::Result<(), String>)> {
        if self.lock_state() == LockState::Held {
            return self.conn.exec(name, script, args, input).await;
        }
        self.set_lock(LockState::Sent);
        let locked = crate::remote::lock::with_lock(script, &self.holder);
        let (out, sent) = self.conn.exec(name, &locked, args, input).await?;
        if let Some(who) = crate::remote::lock::lock_held(out.code, &out.stderr) {
            // the holder is someone else: nothing of ours to release
            self.set_lock(LockState::NotTaken);
            return Err(lock_error(&self.desired.host, &self.env, &who));
        }
        self.set_lock(LockState::Held);
        Ok((out, sent))
    }
}

pub(crate) enum HostState {
    Ready(Box<Ready>),
    Failed(Error),
}

/// One phase as stage 2 needs it.
#[derive(Debug, Clone)]
pub(crate) struct PhaseInfo {
    /// Name from deploy.yml.
    pub(crate) name: String,
    /// Dead-man window in seconds, for guarded phases.
    pub(crate) deadman: Option<u64>,
    /// `serial:` of the phase.
    pub(crate) serial: Option<rollout::Size>,
}

pub(crate) fn clock(epoch: u64) -> String {
    let t = crate::util::utc(epoch);
    format!("{} UTC", &t[11..19])
}

/// After a canary batch passed: go on with the `rest` hosts? (On a
/// terminal; without one the run needs --yes, checked before it starts.)
pub(crate) async fn ask_continue(canary: &[&str], rest: usize) -> bool {
    crate::report::ask(&format!(
        "\nThe canary ({}) passed. Continue with the other {rest} host{}? [y/N] ",
        canary.join(", "),
        if rest == 1 { "" } else { "s" }
    ));
    let answer = tokio::task::spawn_blocking(|| {
        let mut a = String::new();
        let _ = std::io::stdin().read_line(&mut a);
        a
    })
    .await
    .unwrap_or_default();
    matches!(answer.trim(), "y" | "Y" | "yes")
}

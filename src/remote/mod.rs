//! The remote side: the SSH transport, and one module per host script with
//! the script, its typed input and its parser.

pub(crate) mod apply;
pub(crate) mod probe;
pub(crate) mod protocol;
#[cfg(test)]
mod script_tests;
pub(crate) mod ssh;

/// A toggle's state as the host records it (`deploy NAME-status`).
pub(crate) const TOGGLE_STATUS: &str = include_str!("togglestatus.sh");
/// What the host records about deploys (`deploy status`).
pub(crate) const HOST_STATUS: &str = include_str!("hoststatus.sh");

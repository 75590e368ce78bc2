//! The remote side: the SSH transport, and one module per host script with
//! the script, its typed input and its parser.

pub mod apply;
pub mod probe;
pub mod protocol;
#[cfg(test)]
mod script_tests;
pub mod ssh;

/// A toggle's state as the host records it (`deploy NAME-status`).
pub const TOGGLE_STATUS: &str = include_str!("togglestatus.sh");
/// What the host records about deploys (`deploy status`).
pub const HOST_STATUS: &str = include_str!("hoststatus.sh");

//! The remote side: the SSH transport, and one module per host script with
//! the script, its typed input and its parser. Every script speaks the line
//! protocol of `protocol`.

pub(crate) mod apply;
pub(crate) mod arm;
pub(crate) mod compose;
pub(crate) mod facts;
#[cfg(test)]
mod fixture_tests;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod journals;
pub(crate) mod lock;
pub(crate) mod probe;
pub(crate) mod protocol;
pub(crate) mod revert;
#[cfg(test)]
mod script_tests;
pub(crate) mod ssh;
pub(crate) mod status;
pub(crate) mod system;
pub(crate) mod triggers;

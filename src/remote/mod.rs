//! The remote side: the SSH transport, and one module per host script with
//! the script, its typed input and its parser.

pub mod apply;
pub mod probe;
pub mod ssh;

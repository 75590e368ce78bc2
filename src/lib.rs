//! deploy: converge Debian hosts to the state declared in a repository of
//! inventory + roles, over plain OpenSSH.
//!
//! Data flows one way: load -> render -> probe -> plan -> show -> apply. The
//! pure stages (inventory, project, vars, template, render, plan, diff) never
//! touch the network or the terminal; `ssh`, `apply` and `report` do.

pub mod apply;
pub mod compose;
pub mod diff;
pub mod error;
pub mod inventory;
pub mod plan;
pub mod probe;
pub mod project;
pub mod pyfmt;
pub mod redact;
pub mod render;
pub mod report;
pub mod run;
pub mod secrets;
pub mod ssh;
pub mod template;
pub mod util;
pub mod vars;
pub mod yaml;

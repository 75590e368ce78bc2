//! deploy: converge Debian hosts to the state declared in a repository of
//! inventory + roles, over plain OpenSSH.
//!
//! Data flows one way, one module per stage:
//! `load` (files) -> `render` (desired state per host) -> `remote::probe`
//! (what the host has) -> `plan` (pure data) -> `report` (shown) ->
//! `engine` (applied through `remote`). `commands` wires them per command.
//! The pure stages (load, render, plan) never touch the network or the
//! terminal; only `report` writes to the terminal. The binary needs only
//! `cli`, `commands::run`, `error` and `report::error`.

pub mod cli;
pub mod commands;
pub(crate) mod engine;
pub mod error;
pub(crate) mod import;
pub(crate) mod load;
pub(crate) mod plan;
pub(crate) mod redact;
pub(crate) mod remote;
pub(crate) mod render;
pub mod report;
pub(crate) mod util;

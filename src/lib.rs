//! deploy: converge Debian hosts to the state declared in a repository of
//! inventory + roles, over plain OpenSSH.
//!
//! Data flows one way, one module per stage:
//! `load` (files) -> `render` (desired state per host) -> `remote::probe`
//! (what the host has) -> `plan` (pure data) -> `report` (shown) ->
//! `engine` (applied through `remote`). `commands` wires them per command.
//! The pure stages (load, render, plan) never touch the network or the
//! terminal; only `report` writes to the terminal.

pub mod cli;
pub mod commands;
pub mod engine;
pub mod error;
pub mod load;
pub mod plan;
pub mod redact;
pub mod remote;
pub mod render;
pub mod report;
pub mod util;

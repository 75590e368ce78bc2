//! Every integration test, in one binary with a module per area. The lab
//! tests talk to real hosts: network namespaces with their own sshd,
//! nftables and Docker engines, brought up by tests/lab/lab.sh.

mod ansible_parity;
mod bench_smoke;
mod common;
mod compose;
mod deadman;
mod docs;
mod error_messages;
mod facts;
mod fixtures;
mod hardening;
mod import;
mod lab;
mod plan_schema;
mod render_corpus;
mod render_fields;
mod resources;
mod rollout;
mod safety;
mod saved_plan;
mod systemd;
mod vault;

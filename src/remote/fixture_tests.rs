//! Every parser on real output of its script (tests/fixtures/remote/), and
//! on the same output damaged: a parser names what it cannot read.

use super::protocol::fixtures::*;

#[test]
fn probe() {
    let r = super::probe::parse_probe(PROBE).unwrap();
    assert_eq!(r.paths["/etc/motd"].kind, crate::plan::state::Kind::File);
    assert!(r.paths["/etc/motd"].sha256.as_deref().is_some_and(|h| h.len() == 64));
    assert!(r.old.contains_key("/etc/motd"));
    assert_eq!(r.server_port, Some(22));
}

#[test]
fn apply() {
    let a = super::apply::parse_apply(APPLY).unwrap();
    assert!(a.done && !a.finished && a.applied.contains(&"/etc/motd".to_string()));
    let a = super::apply::parse_apply(APPLY_INVALID).unwrap();
    assert_eq!(a.invalid[0].0, "/opt/stack/app.conf");
    assert!(!a.done && a.error.as_ref().is_some_and(|e| e.0 == "validate"));
}

#[test]
fn triggers_arm_disarm() {
    assert_eq!(super::triggers::parse_triggers(TRIGGERS).unwrap(), None);
    let a = super::arm::parse_arm(ARM).unwrap();
    assert_eq!(a.mechanism, "sleeper");
    assert!(a.deadline > 1_700_000_000);
    assert_eq!(super::arm::parse_disarm(DISARM).unwrap(), "sleeper");
}

#[test]
fn health_revert_status_unlock() {
    let h = super::health::parse_health(HEALTH_FAILED).unwrap();
    assert_eq!(h.failed[0].0, "false");
    let r = super::revert::parse_revert(REVERT).unwrap();
    assert!(r.done && r.not_restored.is_empty());
    let s = super::status::parse_host_status(HOSTSTATUS).unwrap();
    assert!(s.lock.is_none() && s.audit.iter().any(|a| a.contains("CONFIRMED")));
    let t = super::status::parse_toggle_status(TOGGLESTATUS).unwrap();
    assert_eq!(t.state, "unset");
    assert!(t.hashes.iter().any(|(p, _)| p == "/etc/nftables.conf") && !t.rules.is_empty());
    assert_eq!(super::lock::parse_unlock(UNLOCK).unwrap().as_deref(), Some("ci@elsewhere pid=1 deploy=D"));
}

/// Each fixture with a line no parser knows: an error naming the line.
#[test]
fn an_unknown_line_is_an_error() {
    let bad = |f: &[u8]| [f, b"Zzz\tsomething new\n"].concat();
    assert!(super::apply::parse_apply(&bad(APPLY)).unwrap_err().contains("unexpected line `Zzz"));
    assert!(super::probe::parse_probe(&bad(PROBE)).is_err());
    assert!(super::triggers::parse_triggers(&bad(TRIGGERS)).is_err());
    assert!(super::health::parse_health(&bad(HEALTH_FAILED)).is_err());
    assert!(super::revert::parse_revert(&bad(REVERT)).is_err());
    assert!(super::status::parse_host_status(&bad(HOSTSTATUS)).is_err());
    assert!(super::status::parse_toggle_status(&bad(TOGGLESTATUS)).is_err());
    // and a reply without its header is refused by every parser
    assert!(super::apply::parse_apply(&APPLY[APPLY.iter().position(|b| *b == b'\n').unwrap() + 1..]).is_err());
}

//! history.sh: a host's audit log, and its lines parsed into events that
//! `deploy history` merges across hosts by deploy id. Pure, tested on
//! lines as the scripts write them.

use std::collections::BTreeMap;

use serde::Serialize;

/// `sh -c HISTORY history MAX_LINES`.
pub(crate) const SCRIPT: &str = include_str!("history.sh");

/// What one audit line says about one deploy on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub(crate) enum Event {
    /// The end of a run: who, from which commit, what it changed, its result.
    Finished { time: String, fields: BTreeMap<String, String> },
    /// A dead-man switch armed: who deploys what, before anything changed.
    Armed { time: String, fields: BTreeMap<String, String> },
    /// The controller proved it still gets in; the dead-man timer was cancelled.
    Confirmed { time: String },
    /// The host reverted it by itself (never confirmed).
    Reverted { time: String },
    /// A revert that could not restore everything.
    RevertIncomplete { time: String },
    /// An upload dropped before anything changed.
    Aborted { time: String, reason: String },
}

impl Event {
    /// When the host wrote it (UTC, ISO 8601: sorts as text).
    pub(crate) fn time(&self) -> &str {
        match self {
            Event::Finished { time, .. }
            | Event::Armed { time, .. }
            | Event::Confirmed { time }
            | Event::Reverted { time }
            | Event::RevertIncomplete { time }
            | Event::Aborted { time, .. } => time,
        }
    }
}

/// Split `key=value` words (a `reason=` runs to the next ` key=`).
fn fields(rest: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut key: Option<String> = None;
    let mut val = String::new();
    for w in rest.split(' ') {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                if let Some(k) = key.take() {
                    out.insert(k, val.trim().to_string());
                }
                key = Some(k.to_string());
                val = v.to_string();
            }
            // only a reason runs on over several words; after any other
            // value comes free text (`over a fresh connection; ...`)
            _ if key.as_deref() == Some("reason") => {
                val.push(' ');
                val.push_str(w);
            }
            _ => {
                if let Some(k) = key.take() {
                    out.insert(k, val.trim().to_string());
                }
            }
        }
    }
    if let Some(k) = key {
        out.insert(k, val.trim().to_string());
    }
    out
}

/// One audit line: (deploy id, event); None for lines of no deploy.
pub(crate) fn parse_line(line: &str) -> Option<(String, Event)> {
    let (time, rest) = line.split_once(' ')?;
    let time = time.to_string();
    let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let f = fields(if word.contains('=') { rest } else { tail });
    // a phase's rollback names its journal (ID/pNNN), the rest the deploy
    let id = match (f.get("deploy"), f.get("journal")) {
        (Some(d), _) => d.clone(),
        (None, Some(j)) => j.split('/').next()?.to_string(),
        _ => return None,
    };
    let ev = match word {
        "ARMED" => Event::Armed { time, fields: f },
        "CONFIRMED" => Event::Confirmed { time },
        "REVERTED" => Event::Reverted { time },
        "REVERT-INCOMPLETE" => Event::RevertIncomplete { time },
        "ABORTED" => Event::Aborted { time, reason: f.get("reason").cloned().unwrap_or_default() },
        w if w.starts_with("deploy=") => Event::Finished { time, fields: f },
        _ => return None,
    };
    Some((id, ev))
}

/// Parse history.sh output into (deploy id, event), oldest first.
pub(crate) fn parse_history(out: &[u8]) -> Result<Vec<(String, Event)>, String> {
    let text = super::protocol::body("history", out)?;
    let mut events = Vec::new();
    let mut ended = false;
    for line in text.lines() {
        match line.split_once('\t') {
            Some(("A", l)) => events.extend(parse_line(l)),
            None if line == "end" => ended = true,
            _ => return Err(super::protocol::unexpected("history", line)),
        }
    }
    if !ended {
        return Err("history output ended early".into());
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_audit_line() {
        let out = "deploy-history\t1\n\
A\t2026-11-29T03:13:46Z deploy=20261129T031343-3eab5ed0 by=root@vm project_commit=abc-dirty env=lab toggle=vpn-on created=2 updated=0 attributes=0 removed=0 containers=1 result=failed-in-phase:hardening\n\
A\t2026-11-29T03:13:47Z CONFIRMED deploy=20261129T031343-3eab5ed0 over a fresh connection; sleeper timer 7 cancelled\n\
A\t2026-11-29T03:15:00Z REVERTED deploy=d2 reason=not-confirmed-by-the-controller-within-the-window\n\
A\t2026-11-29T03:16:00Z ABORTED deploy=d3 journal=d3/p000 reason=upload: no data arrived for 30s\n\
A\t2026-11-29T03:17:00Z REVERT-INCOMPLETE journal=d4/p001 paths_not_restored=1\n\
end\n";
        let ev = parse_history(out.as_bytes()).unwrap();
        assert_eq!(ev.len(), 5, "{ev:?}");
        assert_eq!(ev[4], ("d4".into(), Event::RevertIncomplete { time: "2026-11-29T03:17:00Z".into() }));
        let Event::Finished { fields, .. } = &ev[0].1 else { panic!("{ev:?}") };
        assert_eq!(fields["by"], "root@vm");
        assert_eq!(fields["toggle"], "vpn-on");
        assert_eq!(fields["result"], "failed-in-phase:hardening");
        assert_eq!(
            ev[1],
            ("20261129T031343-3eab5ed0".into(), Event::Confirmed { time: "2026-11-29T03:13:47Z".into() })
        );
        assert_eq!(ev[2].1, Event::Reverted { time: "2026-11-29T03:15:00Z".into() });
        assert_eq!(
            ev[3].1,
            Event::Aborted { time: "2026-11-29T03:16:00Z".into(), reason: "upload: no data arrived for 30s".into() }
        );
        assert!(parse_history(b"deploy-history\t1\nA\tx\n").unwrap_err().contains("ended early"));
    }
}

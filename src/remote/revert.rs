//! revert.sh and the dead-man revert: restore what a journal recorded, and
//! say exactly what could not be restored.

use serde::Serialize;

/// Restores one phase journal: `sh -c REVERT revert JOURNAL_ID`.
pub(crate) const SCRIPT: &str = concat!(include_str!("lib.sh"), include_str!("revert.sh"));
/// The revert a dead-man timer runs for a whole deploy (installed by arm).
pub(crate) const DEADMAN: &str = concat!(include_str!("lib.sh"), include_str!("deadman.sh"));

/// What revert.sh reported: the paths it could not restore (empty when
/// everything was restored).
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Reverted {
    /// Paths not restored, with why.
    pub(crate) not_restored: Vec<(String, String)>,
    /// The script reported REVERTED or REVERT-INCOMPLETE.
    pub(crate) done: bool,
}

/// Parse revert.sh output.
pub(crate) fn parse_revert(out: &[u8]) -> Result<Reverted, String> {
    let text = crate::remote::protocol::body("revert", out)?;
    let mut r = Reverted::default();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(3, '\t').collect();
        match (f[0], f.get(1), f.get(2)) {
            ("X", Some(p), Some(why)) => r.not_restored.push((p.to_string(), why.to_string())),
            ("REVERTED" | "REVERT-INCOMPLETE", _, _) => r.done = true,
            _ => return Err(crate::remote::protocol::unexpected("revert", line)),
        }
    }
    Ok(r)
}

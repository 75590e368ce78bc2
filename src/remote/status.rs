//! hoststatus.sh and togglestatus.sh: what a host records about deploys
//! and about a toggle, read back from the host itself.

/// `sh -c HOST_STATUS hoststatus`.
pub(crate) const HOST_STATUS: &str = include_str!("hoststatus.sh");
/// `sh -c TOGGLE_STATUS togglestatus NAME PATH...`.
pub(crate) const TOGGLE_STATUS: &str = include_str!("togglestatus.sh");

/// A revert armed and neither confirmed nor done: deploy id and deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) deploy: String,
    pub(crate) deadline: u64,
}

/// What hoststatus.sh reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct HostStatus {
    /// The lock holder, when locked.
    pub(crate) lock: Option<String>,
    pub(crate) pending: Vec<Pending>,
    /// Toggle name and state.
    pub(crate) toggles: Vec<(String, String)>,
    /// The last lines of the audit log, oldest first.
    pub(crate) audit: Vec<String>,
    /// Deploy journals kept, and the KiB they take.
    pub(crate) journals: Option<(u64, u64)>,
}

fn pending(rest: &str, line: &str, script: &str) -> Result<Pending, String> {
    let (deploy, when) = rest.split_once('\t').ok_or_else(|| super::protocol::unexpected(script, line))?;
    Ok(Pending { deploy: deploy.into(), deadline: when.trim().parse().unwrap_or(0) })
}

/// Parse hoststatus.sh output.
pub(crate) fn parse_host_status(out: &[u8]) -> Result<HostStatus, String> {
    let text = super::protocol::body("hoststatus", out)?;
    let mut s = HostStatus::default();
    for line in text.lines() {
        let (kind, rest) = line.split_once('\t').unwrap_or((line, ""));
        match kind {
            "lock" => s.lock = Some(rest.trim().to_string()),
            "pending" => s.pending.push(pending(rest, line, "hoststatus")?),
            "toggle" => {
                let (name, v) = rest.split_once('\t').unwrap_or((rest, ""));
                s.toggles.push((name.into(), v.into()));
            }
            "A" => s.audit.push(rest.to_string()),
            "journals" => {
                let (n, kib) = rest.split_once('\t').unwrap_or((rest, "0"));
                s.journals = Some((n.trim().parse().unwrap_or(0), kib.trim().parse().unwrap_or(0)));
            }
            _ => return Err(super::protocol::unexpected("hoststatus", line)),
        }
    }
    Ok(s)
}

/// What togglestatus.sh reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ToggleStatus {
    /// on, off or unset, from the host's state file.
    pub(crate) state: String,
    pub(crate) pending: Vec<Pending>,
    /// The sha256 of each of the toggle's files on the host (empty: missing).
    pub(crate) hashes: Vec<(String, String)>,
    /// Firewall rules in force that mention ports or a policy.
    pub(crate) rules: Vec<String>,
}

/// Parse togglestatus.sh output.
pub(crate) fn parse_toggle_status(out: &[u8]) -> Result<ToggleStatus, String> {
    let text = super::protocol::body("togglestatus", out)?;
    let mut s = ToggleStatus { state: "unset".into(), ..Default::default() };
    for line in text.lines() {
        let (kind, rest) = line.split_once('\t').unwrap_or((line, ""));
        match kind {
            "state" => s.state = rest.trim().to_string(),
            "pending" => s.pending.push(pending(rest, line, "togglestatus")?),
            "H" => {
                let (path, hash) = rest.split_once('\t').unwrap_or((rest, ""));
                s.hashes.push((path.into(), hash.into()));
            }
            "R" => s.rules.push(rest.to_string()),
            _ => return Err(super::protocol::unexpected("togglestatus", line)),
        }
    }
    Ok(s)
}

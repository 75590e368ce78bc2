//! health.sh: wait until every check passes, each within its own timeout.
//! Input: one check a line; output: what passed, what failed and why.

use serde::Serialize;

/// The health gate: `sh -c HEALTH health`, checks on stdin.
pub(crate) const SCRIPT: &str = include_str!("health.sh");

/// One check for the host to wait on.
pub(crate) enum Check<'a> {
    /// A compose service's container healthy (or running and stable).
    Service { timeout: u64, project: &'a str, service: &'a str },
    /// An HTTP status fetched on the host.
    Http { timeout: u64, url: &'a str, status: u16 },
    /// A TCP connection from the host.
    Tcp { timeout: u64, host: &'a str, port: &'a str },
    /// A command on the host that exits 0.
    Command { timeout: u64, command: &'a str },
    /// A systemd unit active and stable (of a user's own systemd when `user`).
    Unit { timeout: u64, unit: &'a str, user: Option<&'a str> },
}

/// The script's input for `checks`.
pub(crate) fn encode(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| match c {
            Check::Service { timeout, project, service } => format!("S\t{timeout}\t{project}\t{service}\n"),
            Check::Http { timeout, url, status } => format!("H\t{timeout}\t{url}\t{status}\n"),
            Check::Tcp { timeout, host, port } => format!("T\t{timeout}\t{host}\t{port}\n"),
            Check::Command { timeout, command } => format!("M\t{timeout}\t{command}\n"),
            Check::Unit { timeout, unit, user } => format!("U\t{timeout}\t{unit}\t{}\n", user.unwrap_or("")),
        })
        .collect()
}

/// What the health gate reported.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Health {
    /// Checks that passed.
    pub(crate) passed: Vec<String>,
    /// Failed checks: what, why, and the container's last log lines.
    pub(crate) failed: Vec<(String, String, Vec<String>)>,
}

/// Parse health.sh output.
pub(crate) fn parse_health(out: &[u8]) -> Result<Health, String> {
    let text = crate::remote::protocol::body("health", out)?;
    let mut h = Health::default();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        match f[0] {
            "P" if f.len() >= 3 => h.passed.push(f[2].to_string()),
            "F" if f.len() == 4 => h.failed.push((f[2].to_string(), f[3].to_string(), vec![])),
            "L" => {
                if let Some(last) = h.failed.last_mut() {
                    last.2.push(line[2..].to_string());
                }
            }
            _ => return Err(crate::remote::protocol::unexpected("health", line)),
        }
    }
    Ok(h)
}

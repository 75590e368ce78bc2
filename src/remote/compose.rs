//! compose.sh: the container actions of one compose project (create,
//! recreate, start, remove, reload in place), manifest on stdin.

/// Container actions: `sh -c COMPOSE compose`, the manifest on stdin.
pub(crate) const SCRIPT: &str = include_str!("compose.sh");

/// Parse compose.sh output: Ok, or the error and compose's last output lines.
pub(crate) fn parse_compose(out: &[u8]) -> Result<Result<(), (String, Vec<String>)>, String> {
    let text = crate::remote::protocol::body("compose", out)?;
    let mut lines = Vec::new();
    for line in text.lines() {
        if let Some(o) = line.strip_prefix("O\t") {
            lines.push(o.to_string());
        } else if line == "OK" {
            return Ok(Ok(()));
        } else if let Some(e) = line.strip_prefix("E\t") {
            let why = e.split_once('\t').map(|x| x.1).unwrap_or(e).to_string();
            let n = lines.len();
            return Ok(Err((why, lines.split_off(n.saturating_sub(15)))));
        } else {
            return Err(crate::remote::protocol::unexpected("compose", line));
        }
    }
    Ok(Err(("compose step ended without a result".into(), lines)))
}

//! compose.sh: the container actions of one compose project (create,
//! recreate, start, remove, reload in place), manifest on stdin.

/// Container actions: `sh -c COMPOSE compose`, the manifest on stdin.
pub(crate) const SCRIPT: &str = include_str!("compose.sh");

/// What compose.sh reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Every action was done.
    Done,
    /// An action failed: why, and compose's last output lines.
    Failed { why: String, output: Vec<String> },
}

/// Parse compose.sh output.
pub(crate) fn parse_compose(out: &[u8]) -> Result<Reply, String> {
    let text = crate::remote::protocol::body("compose", out)?;
    let mut lines = Vec::new();
    for line in text.lines() {
        if let Some(o) = line.strip_prefix("O\t") {
            lines.push(o.to_string());
        } else if line == "OK" {
            return Ok(Reply::Done);
        } else if let Some(e) = line.strip_prefix("E\t") {
            let why = e.split_once('\t').map(|x| x.1).unwrap_or(e).to_string();
            let n = lines.len();
            return Ok(Reply::Failed { why, output: lines.split_off(n.saturating_sub(15)) });
        } else {
            return Err(crate::remote::protocol::unexpected("compose", line));
        }
    }
    Ok(Reply::Failed { why: "compose step ended without a result".into(), output: lines })
}

/// The manifest line of a Compose project: variant, directory, project and
/// its files (the label override last).
pub(crate) fn manifest_head(variant: crate::plan::state::ComposeVariant, p: &crate::render::DesiredCompose) -> String {
    let v = match variant {
        crate::plan::state::ComposeVariant::V2 => "v2",
        crate::plan::state::ComposeVariant::V1 => "v1",
    };
    let mut files = p.files.clone();
    files.push(p.override_path.clone());
    format!("P\t{v}\t{}\t{}\t{}\n", p.dir, p.project, files.join("\t"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_or_failed_with_the_last_lines() {
        assert_eq!(parse_compose(b"deploy-compose\t1\nO\tCreating x\nOK\n").unwrap(), Reply::Done);
        let r = parse_compose(b"deploy-compose\t1\nO\tno such image\nE\tup\tcompose up failed\n").unwrap();
        assert_eq!(r, Reply::Failed { why: "compose up failed".into(), output: vec!["no such image".into()] });
    }
}

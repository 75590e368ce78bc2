//! triggers.sh: run the on_change commands of a phase's changed files and
//! record them in the journal, so a revert runs them again.

/// `sh -c TRIGGERS triggers JOURNAL_ID`, one command a line on stdin.
pub(crate) const SCRIPT: &str = include_str!("triggers.sh");

/// The script's input for `commands`.
pub(crate) fn encode(commands: &[String]) -> String {
    commands.join("\n") + "\n"
}

/// A command that failed: the command, its exit status, its last output lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failed {
    pub(crate) command: String,
    pub(crate) code: String,
    pub(crate) output: Vec<String>,
}

/// Parse triggers.sh output: None when every command passed.
pub(crate) fn parse_triggers(out: &[u8]) -> Result<Option<Failed>, String> {
    let text = super::protocol::body("triggers", out)?;
    let mut failed: Option<Failed> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(3, '\t').collect();
        match f.as_slice() {
            ["T", _] | ["T", _, _] => {}
            ["F", cmd, code] => {
                failed = Some(Failed { command: cmd.to_string(), code: code.to_string(), output: vec![] })
            }
            ["O", ..] => {
                if let Some(f) = failed.as_mut() {
                    f.output.push(line[2..].to_string());
                }
            }
            _ => return Err(super::protocol::unexpected("triggers", line)),
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_command_with_its_output() {
        let out = b"deploy-triggers\t1\nT\tnft -f /etc/nftables.conf\nF\tsystemctl reload x\t1\nO\tno such unit\n";
        let f = parse_triggers(out).unwrap().unwrap();
        assert_eq!((f.command.as_str(), f.code.as_str()), ("systemctl reload x", "1"));
        assert_eq!(f.output, vec!["no such unit"]);
        assert_eq!(parse_triggers(b"deploy-triggers\t1\nT\ttrue\n").unwrap(), None);
    }
}

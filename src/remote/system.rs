//! system.sh: a phase's operations that are not files, each an argv run
//! without a shell, its undo journaled before it runs.

use crate::plan::system::Op;

/// `sh -c SCRIPT system JOURNAL_ID`, the operations on stdin.
pub(crate) const SCRIPT: &str = concat!(include_str!("lib.sh"), include_str!("system.sh"));

/// The script's input for `ops`, in order.
pub(crate) fn encode(ops: &[&Op]) -> String {
    let mut s = String::new();
    for o in ops {
        for u in &o.undo {
            s.push_str(&format!("U\t{}\n", u.join("\t")));
        }
        for r in &o.rerun {
            s.push_str(&format!("R\t{r}\n"));
        }
        let argv: Vec<String> = o.argv.iter().map(|w| word(w)).collect();
        s.push_str(&format!("O\t{}\t{}\n", o.label, argv.join("\t")));
    }
    s
}

/// An argv word as the line protocol carries it: as it is, or, when it
/// holds a control character (a script's newlines, a tab), as \001 and
/// its base64, which lib.sh's run_argv decodes.
pub(crate) fn word(w: &str) -> String {
    use base64::Engine;
    if w.chars().any(|c| c.is_control()) {
        format!("\u{1}{}", base64::engine::general_purpose::STANDARD.encode(w))
    } else {
        w.to_string()
    }
}

/// What system.sh reported.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// Labels of the operations done.
    pub(crate) done: Vec<String>,
    /// The operation that failed: label, exit status, last output lines.
    pub(crate) failed: Option<(String, String, Vec<String>)>,
    /// The journal could not be written.
    pub(crate) error: Option<String>,
    /// Every operation ran.
    pub(crate) finished: bool,
}

/// Parse system.sh output.
pub(crate) fn parse_system(out: &[u8]) -> Result<Reply, String> {
    let text = super::protocol::body("system", out)?;
    let mut r = Reply::default();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(3, '\t').collect();
        match f.as_slice() {
            ["D", label] => r.done.push(label.to_string()),
            ["F", label, rc] => r.failed = Some((label.to_string(), rc.to_string(), vec![])),
            ["O", ..] => {
                if let Some(f) = r.failed.as_mut() {
                    f.2.push(line[2..].to_string());
                }
            }
            ["E", _, why] => r.error = Some(why.to_string()),
            ["DONE"] => r.finished = true,
            _ => return Err(super::protocol::unexpected("system", line)),
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::system::Stage;

    #[test]
    fn encodes_undo_and_rerun_before_the_operation() {
        let op = Op {
            stage: Stage::Post,
            order: 0,
            label: "unit a.service start".into(),
            argv: vec!["systemctl".into(), "start".into(), "a.service".into()],
            undo: vec![vec!["systemctl".into(), "stop".into(), "a.service".into()]],
            rerun: vec!["systemctl daemon-reload".into()],
        };
        assert_eq!(
            encode(&[&op]),
            "U\tsystemctl\tstop\ta.service\nR\tsystemctl daemon-reload\nO\tunit a.service start\tsystemctl\tstart\ta.service\n"
        );
        let r = parse_system(b"deploy-system\t1\nD\tpackage x\nF\tcommand y\t2\nO\tboom\n").unwrap();
        assert_eq!(r.done, vec!["package x"]);
        assert_eq!(r.failed, Some(("command y".into(), "2".into(), vec!["boom".into()])));
        assert!(!r.finished);
    }
}

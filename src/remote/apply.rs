//! Apply a host's plan: everything goes up in one transfer (a tar stream of
//! a manifest plus the new contents) to one remote script, which re-checks,
//! validates, journals and swaps. `bundle` and `parse_apply` are pure.

use serde::Serialize;

use crate::plan::{Action, Expected, Resource};
use crate::render::DesiredHost;

/// The apply script: `sh -c SCRIPT apply JOURNAL_ID HOLDER AUDIT STALL`,
/// the upload (`bundle`) on stdin.
pub(crate) const SCRIPT: &str = concat!(include_str!("lib.sh"), include_str!("lock.sh"), include_str!("apply.sh"));

fn expected_str(e: &Expected) -> String {
    match e {
        Expected::Absent => "absent".into(),
        Expected::File { sha256 } => format!("sha256:{sha256}"),
        Expected::Dir => "dir".into(),
        Expected::Other => "other".into(),
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// Build the upload for some of a plan's changes: a tar with `manifest` and
/// one entry per new content.
pub(crate) fn bundle(changes: &[&crate::plan::Change], desired: &DesiredHost) -> Vec<u8> {
    let mut manifest = String::new();
    let mut contents: Vec<(String, &[u8])> = Vec::new();
    for (n, c) in changes.iter().enumerate() {
        let exp = expected_str(&c.expected);
        let line = match (c.resource, c.action) {
            (Resource::Dir, Action::Create) => {
                let d = desired.dirs.iter().find(|d| d.path == c.path).expect("planned dir is desired");
                format!("D\t{n}\t{}\t{}\t{}\t{}\t{exp}\t", c.path, mode(d.mode), opt(&d.owner), opt(&d.group))
            }
            (Resource::Dir, _) => {
                let d = desired.dirs.iter().find(|d| d.path == c.path).expect("planned dir is desired");
                format!("M\t{n}\t{}\t{}\t{}\t{}\t{exp}\t", c.path, mode(d.mode), opt(&d.owner), opt(&d.group))
            }
            (Resource::File, Action::Metadata) => {
                let f = &desired.files[c.file.expect("file change has a file")];
                format!("M\t{n}\t{}\t{}\t{}\t{}\t{exp}\t", c.path, mode(f.mode), opt(&f.owner), opt(&f.group))
            }
            (Resource::File, _) if c.content.is_some() => {
                contents.push((n.to_string(), c.content.as_deref().unwrap_or_default()));
                format!("F\t{n}\t{}\t0644\t-\t-\t{exp}\t", c.path)
            }
            (Resource::File, _) => {
                let f = &desired.files[c.file.expect("file change has a file")];
                contents.push((n.to_string(), &f.bytes));
                format!(
                    "F\t{n}\t{}\t{}\t{}\t{}\t{exp}\t{}",
                    c.path,
                    mode(f.mode),
                    opt(&f.owner),
                    opt(&f.group),
                    f.validate.as_deref().unwrap_or("")
                )
            }
            (Resource::Lines, _) => {
                // owner and mode of a file the lines create; an existing file keeps its own
                let l =
                    desired.system.lines.iter().find(|l| l.path == c.path && (l.mode.is_some() || l.owner.is_some()));
                let (m, o) = (l.and_then(|l| l.mode), l.and_then(|l| l.owner.clone()));
                contents.push((n.to_string(), c.content.as_deref().unwrap_or_default()));
                format!(
                    "F\t{n}\t{}\t{}\t{}\t-\t{exp}\t",
                    c.path,
                    m.map(|m| format!("{m:04o}")).unwrap_or("-".into()),
                    opt(&o)
                )
            }
            (Resource::Absent, _) => format!("R\t{n}\t{}\t-\t-\t-\t{exp}\t", c.path),
        };
        manifest.push_str(&line);
        manifest.push('\n');
    }
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, data).expect("tar into memory");
    };
    add("manifest", manifest.as_bytes());
    for (name, data) in contents {
        add(&name, data);
    }
    b.into_inner().expect("tar into memory")
}

fn mode(m: Option<u32>) -> String {
    m.map(|m| format!("{m:04o}")).unwrap_or_else(|| "-".into())
}

/// What the apply script reported.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Applied {
    /// Paths changed.
    pub(crate) applied: Vec<String>,
    /// Paths left alone because they changed after the plan, with why.
    pub(crate) skipped: Vec<(String, String)>,
    /// Validation failures: path, exit code, output lines.
    pub(crate) invalid: Vec<(String, String, Vec<String>)>,
    /// A fatal error: what, why.
    pub(crate) error: Option<(String, String)>,
    /// Paths the rollback of a failed swap could not restore, with why.
    pub(crate) not_restored: Vec<(String, String)>,
    /// The script finished normally.
    pub(crate) done: bool,
    /// It also wrote the audit line and released the lock (the apply was the
    /// host's last step).
    pub(crate) finished: bool,
}

/// Parse the apply script's output.
pub(crate) fn parse_apply(out: &[u8]) -> Result<Applied, String> {
    let text = crate::remote::protocol::body("apply", out)?;
    let mut a = Applied::default();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(3, '\t').collect();
        match (f[0], f.get(1), f.get(2)) {
            ("A", Some(p), _) => a.applied.push(p.to_string()),
            ("S", Some(p), Some(why)) => a.skipped.push((p.to_string(), why.to_string())),
            ("V", Some(p), Some(rc)) => a.invalid.push((p.to_string(), rc.to_string(), vec![])),
            ("X", Some(p), Some(why)) => a.not_restored.push((p.to_string(), why.to_string())),
            ("O", _, _) => {
                if let Some(last) = a.invalid.last_mut() {
                    last.2.push(line[2..].to_string());
                }
            }
            ("E", Some(w), Some(why)) => a.error = Some((w.to_string(), why.to_string())),
            ("U", _, _) => {}
            ("DONE", _, _) => a.done = true,
            ("FINISHED", _, _) => a.finished = true,
            _ => return Err(crate::remote::protocol::unexpected("apply", line)),
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output() {
        let a = parse_apply(
            b"deploy-apply\t1\nS\t/a\tchanged on the host\nV\t/b\t1\nO\tline 1: bad\nE\tvalidate\tvalidation failed\n",
        )
        .unwrap();
        assert_eq!(a.skipped.len(), 1);
        assert_eq!(a.invalid[0].2, vec!["line 1: bad"]);
        assert!(a.error.is_some() && !a.done);
    }
}

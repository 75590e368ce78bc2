//! Apply a host's plan: everything goes up in one transfer (a tar stream of
//! a manifest plus the new contents) to one remote script, which re-checks,
//! validates, journals and swaps. `bundle` and `parse_apply` are pure.

use serde::Serialize;

use crate::plan::{Action, Expected, HostPlan, Resource};
use crate::render::DesiredHost;

/// The apply script, run as `sh -c SCRIPT apply ID HOLDER AUDIT`.
pub const SCRIPT: &str = include_str!("remote/apply.sh");
/// Releases the lock and writes the audit line when nothing is applied.
pub const FINISH: &str = include_str!("remote/finish.sh");
/// Shows and removes a lock.
pub const UNLOCK: &str = include_str!("remote/unlock.sh");

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

/// Build the upload for a plan: a tar with `manifest` and one entry per new content.
pub fn bundle(plan: &HostPlan, desired: &DesiredHost) -> Vec<u8> {
    let mut manifest = String::new();
    let mut contents: Vec<(String, &[u8])> = Vec::new();
    for (n, c) in plan.changes.iter().enumerate() {
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
pub struct Applied {
    /// Paths changed.
    pub applied: Vec<String>,
    /// Paths left alone because they changed after the plan, with why.
    pub skipped: Vec<(String, String)>,
    /// Validation failures: path, exit code, output lines.
    pub invalid: Vec<(String, String, Vec<String>)>,
    /// A fatal error: what, why.
    pub error: Option<(String, String)>,
    /// The script finished normally.
    pub done: bool,
}

/// Parse the apply script's output.
pub fn parse_apply(out: &[u8]) -> Applied {
    let text = String::from_utf8_lossy(out);
    let mut a = Applied::default();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(3, '\t').collect();
        match (f[0], f.get(1), f.get(2)) {
            ("A", Some(p), _) => a.applied.push(p.to_string()),
            ("S", Some(p), Some(why)) => a.skipped.push((p.to_string(), why.to_string())),
            ("V", Some(p), Some(rc)) => a.invalid.push((p.to_string(), rc.to_string(), vec![])),
            ("O", Some(t), rest) => {
                let t = match rest {
                    Some(r) => format!("{t}\t{r}"),
                    None => t.to_string(),
                };
                if let Some(last) = a.invalid.last_mut() {
                    last.2.push(t);
                }
            }
            ("E", Some(w), Some(why)) => a.error = Some((w.to_string(), why.to_string())),
            ("DONE", _, _) => a.done = true,
            _ => {}
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_output() {
        let a = parse_apply(b"S\t/a\tchanged on the host\nV\t/b\t1\nO\tline 1: bad\nE\tvalidate\tvalidation failed\n");
        assert_eq!(a.skipped.len(), 1);
        assert_eq!(a.invalid[0].2, vec!["line 1: bad"]);
        assert!(a.error.is_some() && !a.done);
    }
}

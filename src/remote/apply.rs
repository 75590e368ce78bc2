//! Apply a host's plan: everything goes up in one transfer (a tar stream of
//! a manifest plus the new contents) to one remote script, which re-checks,
//! validates, journals and swaps. `bundle` and `parse_apply` are pure.

use serde::Serialize;

use crate::plan::{Action, Expected, Resource};
use crate::render::DesiredHost;

/// The apply script, run as `sh -c SCRIPT apply JOURNAL_ID HOLDER`.
pub(crate) const SCRIPT: &str = concat!(include_str!("lib.sh"), include_str!("lock.sh"), include_str!("apply.sh"));
/// Restores a journal: `sh -c REVERT revert JOURNAL_ID`.
pub(crate) const REVERT: &str = concat!(include_str!("lib.sh"), include_str!("revert.sh"));
/// Container actions of one compose project (manifest on stdin).
pub(crate) const COMPOSE: &str = include_str!("compose.sh");
/// Health gate (checks on stdin).
pub(crate) const HEALTH: &str = include_str!("health.sh");
/// Arms the dead-man timer (stdin: tar with deadman.sh and compose.sh).
pub(crate) const ARM: &str = include_str!("arm.sh");
/// Defines `take_lock HOLDER` (see `with_lock`) and `finish_lock`.
const LOCK: &str = include_str!("lock.sh");
/// The revert the timer runs.
pub(crate) const DEADMAN: &str = concat!(include_str!("lib.sh"), include_str!("deadman.sh"));
/// Cancels exactly one deploy's timer, run over a fresh connection.
pub(crate) const DISARM: &str = include_str!("disarm.sh");
/// Runs and records on_change commands.
pub(crate) const TRIGGERS: &str = include_str!("triggers.sh");
/// Writes the audit line and releases the lock.
pub(crate) const FINISH: &str = concat!(include_str!("lock.sh"), include_str!("finish.sh"));
/// Shows and removes a lock.
pub(crate) const UNLOCK: &str = include_str!("unlock.sh");

/// `script`, preceded by taking the lock for `holder` (exit 75 and
/// `deploy-lock-held\tWHO` on stderr when another deploy holds it). A
/// script that already carries lock.sh does not get it twice.
pub(crate) fn with_lock(script: &str, holder: &str) -> String {
    let rest = script.replacen(LOCK, "", 1);
    format!("{LOCK}take_lock '{}' || exit 75\n{rest}", holder.replace('\'', "'\\''"))
}

/// Who holds the lock, when `with_lock` found it taken.
pub(crate) fn lock_held(code: Option<i32>, stderr: &[u8]) -> Option<String> {
    if code != Some(75) {
        return None;
    }
    let text = String::from_utf8_lossy(stderr);
    text.lines().find_map(|l| l.strip_prefix("deploy-lock-held\t")).map(|w| w.trim().to_string())
}

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

/// The files arm.sh installs in the journal: the revert and the compose helper.
pub(crate) fn arm_bundle() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("deadman.sh", DEADMAN), ("compose.sh", COMPOSE)] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o700);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_bytes()).expect("tar into memory");
    }
    b.into_inner().expect("tar into memory")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_prefix_quotes_the_holder() {
        let s = with_lock("echo hi", "o'brien@x pid=1");
        assert!(s.contains("take_lock 'o'\\''brien@x pid=1' || exit 75\necho hi"), "{s}");
        assert_eq!(lock_held(Some(75), b"deploy-lock-held\tci@y pid=2 \n"), Some("ci@y pid=2".into()));
        assert_eq!(lock_held(Some(3), b"deploy-lock-held\tci@y\n"), None);
    }

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

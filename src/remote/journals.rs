//! journals.sh: what a host's deploy journals hold, for `deploy rollback`:
//! the journal lines of one deploy with the old files it saved, and the
//! paths later deploys changed. Pure parser, tested on script output.

use std::collections::BTreeMap;

/// `sh -c JOURNALS journals ID OLDMAX`.
pub(crate) const SCRIPT: &str = include_str!("journals.sh");

/// One journal line: what the deploy did to a path, and what was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// `p000`, ...
    pub(crate) phase: String,
    /// F (file), D (dir), M (owner/mode), R (removed), A (an operation).
    pub(crate) kind: String,
    pub(crate) path: String,
    /// absent, file, meta, present, -
    pub(crate) was: String,
    pub(crate) n: String,
    pub(crate) meta: String,
}

/// A saved old file: mode, uid, gid, and its bytes (None: over the limit, with its size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OldFile {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) bytes: Result<Vec<u8>, u64>,
}

/// What the host has for a rollback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Journals {
    /// Every journal (deploy id), oldest first.
    pub(crate) ids: Vec<String>,
    /// The deploy asked for, when its journal is there.
    pub(crate) target: Option<String>,
    /// The host already reverted it (its dead-man switch).
    pub(crate) reverted: bool,
    pub(crate) entries: Vec<Entry>,
    /// (phase, n) -> the old file.
    pub(crate) old: BTreeMap<(String, String), OldFile>,
    /// Paths later deploys changed, with the first of them.
    pub(crate) later: BTreeMap<String, String>,
}

/// Parse journals.sh output.
pub(crate) fn parse_journals(out: &[u8]) -> Result<Journals, String> {
    use base64::Engine;
    let text = super::protocol::body("journals", out)?;
    let mut j = Journals::default();
    let mut ended = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || super::protocol::unexpected("journals", line);
        match (f[0], f.len()) {
            ("J", 2) => j.ids.push(f[1].into()),
            ("target", 2) => j.target = Some(f[1].into()),
            ("missing", _) => j.target = None,
            ("reverted", 1) => j.reverted = true,
            ("L", 7) => j.entries.push(Entry {
                phase: f[1].into(),
                kind: f[2].into(),
                path: f[3].into(),
                was: f[4].into(),
                n: f[5].into(),
                meta: f[6].into(),
            }),
            ("O", 7) => {
                let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
                let bytes = match f[6].strip_prefix('-') {
                    Some(size) => Err(size.parse().map_err(|_| bad())?),
                    None => Ok(base64::engine::general_purpose::STANDARD.decode(f[6]).map_err(|_| bad())?),
                };
                let mode = u32::from_str_radix(f[3], 8).map_err(|_| bad())?;
                let old = OldFile { mode, uid: num(f[4])?, gid: num(f[5])?, bytes };
                j.old.insert((f[1].into(), f[2].into()), old);
            }
            ("T", 3) => {
                j.later.entry(f[2].into()).or_insert_with(|| f[1].into());
            }
            ("end", 1) => ended = true,
            _ => return Err(bad()),
        }
    }
    if !ended {
        return Err("journals output ended early".into());
    }
    Ok(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_its_old_files_and_later_changes() {
        let out = "deploy-journals\t1\nJ\td1\nJ\td2\ntarget\td1\n\
L\tp001\tF\t/etc/a\tfile\t0\t-\nO\tp001\t0\t644\t0\t0\taGkK\n\
L\tp001\tF\t/etc/new\tabsent\t1\t-\nL\tp001\tM\t/etc/b\tmeta\t2\t600 0 0\n\
L\tp002\tF\t/var/big\tfile\t0\t-\nO\tp002\t0\t640\t1000\t1000\t-5000000\n\
T\td2\t/etc/a\nend\n";
        let j = parse_journals(out.as_bytes()).unwrap();
        assert_eq!((j.ids.len(), j.target.as_deref(), j.reverted), (2, Some("d1"), false));
        assert_eq!(j.entries.len(), 4);
        assert_eq!(j.old[&("p001".into(), "0".into())].bytes, Ok(b"hi\n".to_vec()));
        assert_eq!(j.old[&("p002".into(), "0".into())].bytes, Err(5_000_000));
        assert_eq!(j.later["/etc/a"], "d2");
        assert!(parse_journals(b"deploy-journals\t1\nJ\td1\n").is_err());
    }
}

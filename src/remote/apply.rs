//! Apply a host's plan: everything goes up in one transfer (a tar stream of
//! the new contents and a manifest) to one remote script, which re-checks,
//! validates, journals and swaps. `Upload` and `parse_apply` are pure.

use std::collections::HashMap;
use std::io::Write;

use serde::Serialize;

use crate::plan::{Action, Expected, Resource};
use crate::render::DesiredHost;

/// The apply script: `sh -c SCRIPT apply JOURNAL_ID HOLDER AUDIT STALL KEEP
/// KIB`, the upload (`Upload`) on stdin.
pub(crate) const SCRIPT: &str = concat!(include_str!("lib.sh"), include_str!("lock.sh"), include_str!("apply.sh"));

fn expected_str(e: &Expected) -> String {
    match e {
        Expected::Absent => "absent".into(),
        Expected::File { sha256 } => format!("sha256:{sha256}"),
        Expected::Dir => "dir".into(),
        Expected::Link { target } => format!("link:{target}"),
        Expected::Other => "other".into(),
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// Where an upload's entry gets its bytes.
#[derive(Debug)]
pub(crate) enum Body {
    /// Rendered in memory.
    Bytes(Vec<u8>),
    /// A file on the controller's disk, too big to hold in memory: streamed,
    /// and checked while streaming against the file the render saw and the
    /// sum it was planned with, if it was hashed before (else the sum the
    /// stream takes is kept for the next run).
    Disk { disk: crate::render::sums::OnDisk, sha256: Option<String> },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::Disk { disk, .. } => disk.len,
        }
    }
}

/// The upload of some of a plan's changes: a tar of the new contents, each
/// as `c/K/NAME` (K numbers the target directories, NAME is the target's own
/// name, so the host renames a directory's files with one `mv -t`), and the
/// manifest first (after a line giving its length) and an empty `end` entry
/// last. It owns its data, so a thread can stream it.
#[derive(Debug)]
pub(crate) struct Upload {
    manifest: String,
    entries: Vec<(String, Body, u32)>,
}

/// What the host is told to do for one planned change.
fn item(c: &crate::plan::Change, desired: &DesiredHost) -> Item {
    let exp = expected_str(&c.expected);
    let mut it = Item::new('F', &c.path, exp);
    match (c.resource, c.action) {
        (Resource::Dir, a) => {
            let d = desired.dirs.iter().find(|d| d.path == c.path).expect("planned dir is desired");
            it.op = if a == Action::Create { 'D' } else { 'M' };
            (it.mode, it.owner, it.group) = (d.mode, opt(&d.owner), opt(&d.group));
        }
        (Resource::File, Action::Metadata) => {
            let f = &desired.files[c.file.expect("file change has a file")];
            it.op = 'M';
            (it.mode, it.owner, it.group) = (f.mode, opt(&f.owner), opt(&f.group));
        }
        (Resource::File, _) if c.content.is_some() => {
            it.mode = Some(0o644);
            it.body = Some(Body::Bytes(c.content.clone().unwrap_or_default()));
        }
        (Resource::File, _) => {
            let f = &desired.files[c.file.expect("file change has a file")];
            (it.mode, it.owner, it.group) = (f.mode, opt(&f.owner), opt(&f.group));
            it.validate = f.validate.clone().unwrap_or_default();
            it.body = Some(match &f.disk {
                Some(d) => Body::Disk { disk: d.clone(), sha256: f.known_sha256().map(str::to_string) },
                None => Body::Bytes(f.bytes.clone()),
            });
        }
        (Resource::Lines, _) => {
            // owner and mode of a file the lines create; an existing file keeps its own
            let l = desired.system.lines.iter().find(|l| l.path == c.path && (l.mode.is_some() || l.owner.is_some()));
            (it.mode, it.owner) = (l.and_then(|l| l.mode), opt(&l.and_then(|l| l.owner.clone())));
            it.body = Some(Body::Bytes(c.content.clone().unwrap_or_default()));
        }
        (Resource::Absent, _) => it.op = 'R',
        // the target rides in the validate field: an L line has none
        (Resource::Link, _) => {
            let l = desired.links.iter().find(|l| l.path == c.path).expect("planned link is desired");
            it.op = 'L';
            it.validate = l.target.clone();
        }
    }
    it
}

/// A tar entry's size: its header and its data padded to 512 bytes.
fn entry_size(len: u64) -> u64 {
    512 + len.div_ceil(512) * 512
}

/// One path of an upload: a manifest line, and new contents for a file.
#[derive(Debug)]
pub(crate) struct Item {
    /// D (make a directory), M (owner/mode), F (file), R (remove).
    pub(crate) op: char,
    /// Where it goes.
    pub(crate) path: String,
    /// Mode; None keeps the existing one, or the default for a new path.
    pub(crate) mode: Option<u32>,
    /// Owner and group, `-` to keep or default.
    pub(crate) owner: String,
    pub(crate) group: String,
    /// What the plan saw there (`absent`, `dir`, `sha256:HEX`, `other`).
    pub(crate) expected: String,
    /// Validation command of a file (`%s` = the new file).
    pub(crate) validate: String,
    /// New contents of a file.
    pub(crate) body: Option<Body>,
}

impl Item {
    fn new(op: char, path: &str, expected: String) -> Item {
        let dash = || "-".to_string();
        Item {
            op,
            path: path.into(),
            mode: None,
            owner: dash(),
            group: dash(),
            expected,
            validate: String::new(),
            body: None,
        }
    }

    #[cfg(test)]
    /// A file with contents `body`, expected `expected` on the host.
    pub(crate) fn file(path: &str, expected: String, body: Body) -> Item {
        Item { body: Some(body), ..Item::new('F', path, expected) }
    }

    #[cfg(test)]
    /// A directory to make.
    pub(crate) fn dir(path: &str) -> Item {
        Item::new('D', path, "absent".into())
    }
}

impl Upload {
    /// The upload for `changes`, with the desired state they come from.
    pub(crate) fn new(changes: &[&crate::plan::Change], desired: &DesiredHost) -> Upload {
        Upload::of(changes.iter().map(|c| item(c, desired)).collect())
    }

    /// The upload of `items`, numbered in their order.
    pub(crate) fn of(items: Vec<Item>) -> Upload {
        let mut lines: Vec<(bool, String, usize, String)> = Vec::new();
        let mut files: Vec<(usize, usize, String)> = Vec::new();
        let mut entries = Vec::new();
        let mut dirs: HashMap<String, usize> = HashMap::new();
        // per target directory, the KiB its files take: the host stages
        // them on that directory's own mount and checks it has the room
        let mut kib: Vec<u64> = Vec::new();
        for (n, it) in items.into_iter().enumerate() {
            let head = format!(
                "{}\t{n}\t{}\t{}\t{}\t{}\t{}",
                it.op,
                it.path,
                mode_str(it.mode),
                it.owner,
                it.group,
                it.expected
            );
            let Some(body) = it.body else {
                // a link: no contents, its target where a file's validation goes
                let head = if it.op == 'L' { format!("{head}\t-\t{}", it.validate) } else { head };
                let d = it.op == 'D';
                lines.push((!d, if d { it.path } else { String::new() }, n, head));
                continue;
            };
            let (dir, name) = it.path.rsplit_once('/').expect("an absolute path");
            let next = dirs.len();
            let k = *dirs.entry(dir.to_string()).or_insert(next);
            if k == kib.len() {
                kib.push(0);
            }
            kib[k] += entry_size(body.len()).div_ceil(1024);
            // the mode it is to have, or a new file's default: set by tar
            entries.push((format!("c/{k}/{name}"), body, it.mode.unwrap_or(0o644)));
            files.push((k, n, format!("{head}\t{k}\t{}", it.validate)));
        }
        // a directory's files together: the host renames them with one `mv -t`
        files.sort_by_key(|(k, n, _)| (*k, *n));
        // directories top-down, so a parent is made before what it holds
        lines.sort();
        let mut by_k: Vec<(&String, &usize)> = dirs.iter().collect();
        by_k.sort_by_key(|(_, k)| **k);
        let mut manifest = String::new();
        for (dir, k) in by_k {
            manifest.push_str(&format!("K\t{k}\t{}\t{}\n", kib[*k], if dir.is_empty() { "/" } else { dir }));
        }
        for l in lines.iter().map(|(_, _, _, l)| l).chain(files.iter().map(|(_, _, l)| l)) {
            manifest.push_str(l);
            manifest.push('\n');
        }
        Upload { manifest, entries }
    }

    #[cfg(test)]
    /// The manifest (what the host is told to do).
    pub(crate) fn manifest(&self) -> &str {
        &self.manifest
    }

    /// The size of the upload, in KiB rounded up: the host checks it has
    /// room before the first byte arrives.
    pub(crate) fn kib(&self) -> u64 {
        let data: u64 = self.entries.iter().map(|(_, b, _)| entry_size(b.len())).sum();
        (self.head().len() as u64 + self.manifest.len() as u64 + data + entry_size(0) + 1024).div_ceil(1024)
    }

    fn head(&self) -> String {
        // 29 bytes, as the host reads it
        format!("deploy-upload\t1\t{:>12}\n", self.manifest.len())
    }

    /// Write the upload to `w`: the manifest, then the contents, then `end`. A file
    /// from disk that is no longer what was planned stops the stream before
    /// `end`, so the host changes nothing; the error says which.
    pub(crate) fn write(self, w: impl std::io::Write) -> Result<(), String> {
        let io = |e: std::io::Error| format!("the upload stopped: {e}");
        // tar copies in 8 KiB pieces; each a pipe write would wake ssh for
        // a small read and a small packet: 1 GiB is 131,072 of them
        let mut w = std::io::BufWriter::with_capacity(1 << 20, w);
        // the manifest first, so the host stages each directory's files on
        // its own mount before they arrive
        w.write_all(self.head().as_bytes()).and_then(|_| w.write_all(self.manifest.as_bytes())).map_err(io)?;
        let mut b = tar::Builder::new(w);
        let header = |len: u64, mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_size(len);
            h.set_mode(mode);
            h.set_mtime(0);
            h
        };
        for (name, body, mode) in self.entries {
            match body {
                Body::Bytes(data) => {
                    b.append_data(&mut header(data.len() as u64, mode), &name, &data[..]).map_err(io)?
                }
                Body::Disk { disk, sha256 } => {
                    let (path, len) = (&disk.path, disk.len);
                    let changed = |what: &str| {
                        format!("{} changed on this machine since it was planned ({what}); nothing was changed on the host, run the deploy again", path.display())
                    };
                    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
                    let key = |f: &std::fs::File| f.metadata().map(|m| crate::render::sums::key(&m)).ok();
                    if f.metadata().map(|m| m.len()).ok() != Some(len) {
                        return Err(changed("its size"));
                    }
                    if key(&f).as_ref() != Some(&disk.key) && sha256.is_none() {
                        return Err(changed("its inode or times"));
                    }
                    let mut r = crate::util::HashingReader::new(std::io::Read::take(&f, len));
                    b.append_data(&mut header(len, mode), &name, &mut r).map_err(io)?;
                    let got = (r.count(), r.sha256_hex());
                    match &sha256 {
                        _ if got.0 != len => return Err(changed("its size")),
                        Some(planned) if got.1 != *planned => return Err(changed("its contents")),
                        // not hashed before: what was read is the file the
                        // render saw while its metadata held throughout
                        None if key(&f).as_ref() != Some(&disk.key) => return Err(changed("while it was read")),
                        None => crate::render::sums::remember(&disk, &got.1),
                        Some(_) => {}
                    }
                }
            }
        }
        // last: without it the host knows the stream was cut short
        b.append_data(&mut header(0, 0o600), "end", &b""[..]).map_err(io)?;
        b.into_inner().and_then(|mut w| std::io::Write::flush(&mut w)).map_err(io)
    }
}

fn mode_str(m: Option<u32>) -> String {
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

    // The manifest first: each target directory (K) with the KiB its files
    // take, directories parents first, then files grouped by K; then the
    // tar, each file named c/K/NAME, and `end` last.
    #[test]
    fn upload_starts_with_the_manifest_and_groups_files_by_directory() {
        let f = |p: &str, b: &[u8]| Item::file(p, "absent".into(), Body::Bytes(b.to_vec()));
        let up = Upload::of(vec![
            f("/etc/a/one", b"1"),
            Item::dir("/etc/b/sub"),
            f("/etc/b/two", b"22"),
            Item::dir("/etc/b"),
            f("/etc/a/three", b"333"),
            Item { mode: Some(0o600), owner: "app".into(), ..f("/x", b"") },
        ]);
        assert_eq!(
            up.manifest(),
            "K\t0\t2\t/etc/a\n\
             K\t1\t1\t/etc/b\n\
             K\t2\t1\t/\n\
             D\t3\t/etc/b\t-\t-\t-\tabsent\n\
             D\t1\t/etc/b/sub\t-\t-\t-\tabsent\n\
             F\t0\t/etc/a/one\t-\t-\t-\tabsent\t0\t\n\
             F\t4\t/etc/a/three\t-\t-\t-\tabsent\t0\t\n\
             F\t2\t/etc/b/two\t-\t-\t-\tabsent\t1\t\n\
             F\t5\t/x\t0600\tapp\t-\tabsent\t2\t\n"
        );
        let (kib, manifest) = (up.kib(), up.manifest().to_string());
        let mut out = Vec::new();
        up.write(&mut out).unwrap();
        assert_eq!(kib, (out.len() as u64).div_ceil(1024), "the announced size is the real one");
        let head = format!("deploy-upload\t1\t{:>12}\n{manifest}", manifest.len());
        assert!(out.starts_with(head.as_bytes()));
        let tar = &out[head.len()..];
        let names: Vec<String> = tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["c/0/one", "c/1/two", "c/0/three", "c/2/x", "end"]);
    }

    // A big file streams from disk; one that changed after it was hashed,
    // or after the render looked at it when it was not hashed before,
    // stops the stream before its `end`. A sum the stream took is kept.
    #[test]
    fn a_source_that_changed_since_the_plan_stops_the_upload_before_its_end() {
        let dir = std::env::temp_dir().join(format!("deploy-upload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("XDG_CACHE_HOME", &dir);
        let p = dir.join("big");
        std::fs::write(&p, b"planned").unwrap();
        let sha256 = crate::util::sha256_hex(b"planned");
        let item = |sha256: Option<String>| {
            let (disk, _) = crate::render::sums::look(&p).unwrap();
            let body = move || Body::Disk { disk: disk.clone(), sha256: sha256.clone() };
            move || Upload::of(vec![Item::file("/srv/big", "absent".into(), body())])
        };
        let end = |b: &[u8]| b.windows(4).any(|w| w == b"end\0");
        let (planned, unhashed) = (item(Some(sha256.clone())), item(None));
        let mut ok = Vec::new();
        unhashed().write(&mut ok).unwrap();
        assert!(ok.windows(7).any(|w| w == b"planned") && end(&ok));
        assert_eq!(crate::render::sums::look(&p).unwrap().1, Some(sha256.clone()), "the stream's sum is kept");
        std::fs::write(&p, b"changed").unwrap();
        for (up, what) in [(planned, "its contents"), (unhashed, "its inode or times")] {
            let mut out = Vec::new();
            let e = up().write(&mut out).unwrap_err();
            assert!(e.contains(&format!("changed on this machine since it was planned ({what})")), "{e}");
            assert!(!end(&out), "the end went out");
        }
        std::fs::remove_dir_all(&dir).unwrap();
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

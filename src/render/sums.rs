//! The sums of big source files, kept between runs as git's index keeps
//! them: an entry counts while the file's device, inode, size, mtime and
//! ctime are what they were (ctime cannot be set back by a user). The
//! cache is `$XDG_CACHE_HOME/deploy/sums` (else `~/.cache/deploy/sums`),
//! one line per file (`SHA256 DEV INO SIZE MTIME CTIME PATH`), the last
//! line for a path winning.
//!
//! A render only looks a sum up. One that is not there is taken when first
//! needed: by the plan when the host has a file to compare, else by the
//! upload as it streams, so a first deploy reads a big file once.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// A big source file as the render saw it.
#[derive(Debug, Clone)]
pub(crate) struct OnDisk {
    /// Its real path.
    pub(crate) path: PathBuf,
    /// Its size.
    pub(crate) len: u64,
    /// Device, inode, size, mtime and ctime: the file is the one planned
    /// while this holds.
    pub(crate) key: String,
}

/// The cache key of a file's metadata.
pub(crate) fn key(m: &std::fs::Metadata) -> String {
    format!("{} {} {} {}.{} {}.{}", m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec())
}

fn cache_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("deploy/sums"))
}

/// path -> (sha256, key), read once per process.
fn sums() -> &'static Mutex<HashMap<String, (String, String)>> {
    static SUMS: OnceLock<Mutex<HashMap<String, (String, String)>>> = OnceLock::new();
    SUMS.get_or_init(|| {
        let text = cache_file().and_then(|f| std::fs::read_to_string(f).ok()).unwrap_or_default();
        let map = text
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(7, ' ');
                let sha = f.next()?.to_string();
                let key: Vec<&str> = (0..5).filter_map(|_| f.next()).collect();
                let p = f.next()?;
                (sha.len() == 64 && key.len() == 5).then(|| (p.to_string(), (sha, key.join(" "))))
            })
            .collect();
        Mutex::new(map)
    })
}

/// The file at `path` as it is now, and its sum when the cache holds it.
pub(crate) fn look(path: &Path) -> std::io::Result<(OnDisk, Option<String>)> {
    let abs = std::fs::canonicalize(path)?;
    let m = std::fs::metadata(&abs)?;
    let d = OnDisk { len: m.size(), key: key(&m), path: abs };
    let name = d.path.to_string_lossy();
    let cached = sums().lock().unwrap_or_else(|p| p.into_inner()).get(name.as_ref()).cloned();
    let sha = cached.filter(|(_, k)| *k == d.key).map(|(sha, _)| sha);
    Ok((d, sha))
}

/// Keep `sha` as the sum of `d`, unless the file changed since `d` was
/// taken (a sum taken while the file changed is no one's).
pub(crate) fn remember(d: &OnDisk, sha: &str) {
    let name = d.path.to_string_lossy().into_owned();
    if std::fs::metadata(&d.path).map(|m| key(&m)).ok().as_ref() != Some(&d.key) || name.contains('\n') {
        return;
    }
    let mut map = sums().lock().unwrap_or_else(|p| p.into_inner());
    if map.get(&name).is_some_and(|(s, k)| s == sha && *k == d.key) {
        return;
    }
    map.insert(name.clone(), (sha.to_string(), d.key.clone()));
    if let Some(f) = cache_file() {
        let line = format!("{sha} {} {name}\n", d.key);
        // one append per line: concurrent deploys do not interleave
        let _ = std::fs::create_dir_all(f.parent().expect("a parent"))
            .and_then(|_| std::fs::OpenOptions::new().create(true).append(true).open(&f))
            .and_then(|mut w| w.write_all(line.as_bytes()));
    }
}

/// The sum of `d`, from the cache or read now. Err when the file is not
/// the one `d` describes any more.
pub(crate) fn take(d: &OnDisk) -> Result<String, String> {
    let (now, cached) = look(&d.path).map_err(|e| format!("{}: {e}", d.path.display()))?;
    if now.key != d.key {
        return Err(format!(
            "{} changed on this machine since it was rendered; run the deploy again",
            d.path.display()
        ));
    }
    if let Some(sha) = cached {
        return Ok(sha);
    }
    let t = std::time::Instant::now();
    let (sha, _) = crate::util::sha256_file(&d.path).map_err(|e| format!("{}: {e}", d.path.display()))?;
    crate::report::hashed(&d.path, d.len, t.elapsed());
    remember(d, &sha);
    Ok(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A sum is taken again when the file changed, even to the same size
    // and mtime (ctime moves); a kept sum is the file's.
    #[test]
    fn cached_sums_follow_the_file() {
        let dir = std::env::temp_dir().join(format!("deploy-sums-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("XDG_CACHE_HOME", &dir);
        let f = dir.join("big file.bin");
        std::fs::write(&f, b"one").unwrap();
        let (d, none) = look(&f).unwrap();
        assert_eq!((none, d.len), (None, 3));
        let one = take(&d).unwrap();
        assert_eq!(one, crate::util::sha256_hex(b"one"));
        let cache = std::fs::read_to_string(dir.join("deploy/sums")).unwrap();
        assert!(cache.starts_with(&one) && cache.ends_with("big file.bin\n"), "{cache}");
        assert_eq!(look(&f).unwrap().1.as_deref(), Some(one.as_str()));
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        std::fs::write(&f, b"two").unwrap();
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
        let e = take(&d).unwrap_err();
        assert!(e.ends_with("changed on this machine since it was rendered; run the deploy again"), "{e}");
        let (d, none) = look(&f).unwrap();
        assert_eq!((none, take(&d).unwrap()), (None, crate::util::sha256_hex(b"two")));
        // a sum for a file that changed after it was looked at is not kept
        std::fs::write(&f, b"three").unwrap();
        remember(&d, &crate::util::sha256_hex(b"two"));
        assert_eq!(look(&f).unwrap().1, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! lock.sh, finish.sh and unlock.sh: the host's deploy lock. Taking it is
//! prepended to the first command of an apply, so it costs no round trip.

/// Defines `take_lock HOLDER`, `finish_lock HOLDER AUDIT` and `prune_journals KEEP`.
const LOCK: &str = include_str!("lock.sh");
#[cfg(test)]
pub(crate) const LOCK_FOR_TESTS: &str = LOCK;
/// Writes the audit line and releases the lock: `sh -c FINISH finish HOLDER AUDIT`.
pub(crate) const FINISH: &str = concat!(include_str!("lock.sh"), include_str!("finish.sh"));
/// Shows and removes a lock: `sh -c UNLOCK unlock`.
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

/// Parse unlock.sh output: the holder it released, None when none was held.
pub(crate) fn parse_unlock(out: &[u8]) -> Result<Option<String>, String> {
    let text = super::protocol::body("unlock", out)?;
    let line = text.lines().next().unwrap_or("");
    match line.split_once('\t') {
        Some(("held", who)) => Ok(Some(who.trim().to_string())),
        None if line == "free" => Ok(None),
        _ => Err(super::protocol::unexpected("unlock", line)),
    }
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
    fn unlock_reply() {
        assert_eq!(parse_unlock(b"deploy-unlock\t1\nheld\tci@y pid=2\n").unwrap(), Some("ci@y pid=2".into()));
        assert_eq!(parse_unlock(b"deploy-unlock\t1\nfree\n").unwrap(), None);
        assert!(parse_unlock(b"deploy-unlock\t1\nwhat\n").is_err());
    }
}

//! Unified diffs of old and new file contents, with secrets masked and a time
//! limit so a huge, mostly different file cannot hang the run.

use std::time::Duration;

use similar::TextDiff;

use crate::redact::Redactor;

/// How long one diff may take before similar falls back to a coarser one.
const DIFF_TIMEOUT: Duration = Duration::from_millis(500);
/// Lines of a diff shown before it is cut.
const MAX_LINES: usize = 400;
/// Bytes of a diff shown before it is cut (one long line is not a short diff).
const MAX_BYTES: usize = 64 << 10;
/// Files larger than this (either side) get a size line, not a diff; the
/// probe sends old contents up to the same size.
pub(crate) const MAX_FILE: usize = 1 << 20;

/// A unified diff of `old` -> `new` for `path`, secrets masked. `None` old
/// means the file is being created.
pub(crate) fn unified(path: &str, old: Option<&[u8]>, new: &[u8], redactor: &Redactor) -> String {
    unified_with(path, old, new, redactor, 3)
}

/// A diff with `context` lines around each change (0 for a managed line:
/// the rest of that file is not deploy's).
pub(crate) fn unified_with(path: &str, old: Option<&[u8]>, new: &[u8], redactor: &Redactor, context: usize) -> String {
    let old_len = old.map(|o| o.len()).unwrap_or(0);
    if old_len > MAX_FILE || new.len() > MAX_FILE {
        return format!(
            "no diff: {old_len} bytes -> {} bytes (a diff is made of files up to {MAX_FILE} bytes)\n",
            new.len()
        );
    }
    let (Ok(old_s), Ok(new_s)) = (std::str::from_utf8(old.unwrap_or(b"")), std::str::from_utf8(new)) else {
        return format!("binary content: {} bytes -> {} bytes\n", old.map(|o| o.len()).unwrap_or(0), new.len());
    };
    let diff = TextDiff::configure().timeout(DIFF_TIMEOUT).diff_lines(old_s, new_s);
    let from = if old.is_some() { format!("a{path}") } else { "/dev/null".into() };
    let text = diff.unified_diff().context_radius(context).header(&from, &format!("b{path}")).to_string();
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        if n == MAX_LINES || out.len() > MAX_BYTES {
            out.push_str(&format!("... diff cut after {n} lines ({} more)\n", text.lines().count() - n));
            break;
        }
        out.push_str(&redactor.redact(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_changed_lines_redacted() {
        let r = Redactor::default();
        r.add("s3cr3t-value");
        let d = unified("/etc/x", Some(b"a\nkey=old\nc\n"), b"a\nkey=s3cr3t-value\nc\n", &r);
        assert!(d.contains("-key=old\n+key=<redacted>\n"), "{d}");
        assert!(!d.contains("s3cr3t"));
        assert!(d.starts_with("--- a/etc/x\n+++ b/etc/x\n"), "{d}");
    }

    #[test]
    fn binary_and_new() {
        let r = Redactor::default();
        assert!(unified("/x", Some(&[0xff, 0xfe]), b"a", &r).contains("binary"));
        assert!(unified("/x", None, b"a\n", &r).starts_with("--- /dev/null"));
        let big = vec![b'a'; MAX_FILE + 1];
        assert_eq!(
            unified("/x", None, &big, &r),
            format!("no diff: 0 bytes -> {} bytes (a diff is made of files up to {MAX_FILE} bytes)\n", MAX_FILE + 1)
        );
    }
}

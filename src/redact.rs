//! Secret redaction: every string that came from an encrypted vars file is
//! replaced wherever text is about to be shown (diffs, plan JSON, errors,
//! logs), also when it is embedded in a larger rendered file.

use std::sync::{Arc, RwLock};

/// What a redacted secret prints as.
pub(crate) const MASK: &str = "<redacted>";

/// The set of secret strings, shared by everything that prints.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor(Arc<RwLock<Vec<String>>>);

/// The process's redactor: what loading registered, for the printer of the
/// error that ends a run (it may quote a secret: a bad `dest` rendered from
/// one), which has no redactor at hand.
static INSTALLED: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();

/// Make `r` the one errors are printed through.
pub(crate) fn install(r: &Redactor) {
    let _ = INSTALLED.set(r.clone());
}

/// Mask the installed redactor's secrets in `text` (none installed: as is).
pub(crate) fn redact_installed(text: &str) -> String {
    match INSTALLED.get() {
        Some(r) => r.redact(text),
        None => text.to_string(),
    }
}

impl Redactor {
    /// Register a secret value. Very short values (under 4 characters) would
    /// mask ordinary text everywhere, so they are not registered; the file
    /// still shows as changed but such a value cannot be kept out of every
    /// printed line reliably anyway.
    pub(crate) fn add(&self, secret: &str) {
        let s = secret.trim();
        if s.len() < 4 {
            return;
        }
        let mut v = self.0.write().unwrap();
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
            // longest first, so a secret containing another is masked whole
            v.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
        // Multi-line secrets (keys, certificates) also appear line by line in diffs.
        if s.contains('\n') {
            drop(v);
            for line in s.lines() {
                self.add(line);
            }
        }
    }

    /// Mask every registered secret in `text`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let v = self.0.read().unwrap();
        let mut out = text.to_string();
        for s in v.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_embedded_and_multiline() {
        let r = Redactor::default();
        r.add("hunter2-pass");
        r.add("-----BEGIN KEY-----\nAAAAsecretline\n-----END KEY-----");
        assert_eq!(r.redact("url=postgres://u:hunter2-pass@db"), "url=postgres://u:<redacted>@db");
        assert_eq!(r.redact("+AAAAsecretline"), "+<redacted>");
        r.add("ab");
        assert_eq!(r.redact("ab"), "ab");
    }
}

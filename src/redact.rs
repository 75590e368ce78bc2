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
        // and the forms templates commonly turn it into
        for form in std::iter::once(s.to_string()).chain(transformed(s)) {
            if form.len() >= 4 && !v.contains(&form) {
                v.push(form);
            }
        }
        // longest first, so a secret containing another is masked whole
        v.sort_by_key(|x| std::cmp::Reverse(x.len()));
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

/// What templates commonly make of a secret: `b64encode`, `to_json` (and
/// JSON in general), `quote` (shell), `urlencode`, `upper` and `lower`.
/// Only whole values: a secret cut into pieces, or encoded together with
/// other text (base64 of a whole file), is not recognised.
fn transformed(s: &str) -> Vec<String> {
    use base64::Engine;
    let json = serde_json::to_string(s).unwrap_or_default();
    let mut forms = vec![
        base64::engine::general_purpose::STANDARD.encode(s),
        json.trim_matches('"').to_string(),
        crate::util::shell_quote(s),
        urlencode(s),
        s.to_uppercase(),
        s.to_lowercase(),
    ];
    forms.retain(|f| f != s);
    forms
}

/// Percent-encoding as Jinja's `urlencode` does it (unreserved characters
/// and `/` kept).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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

    #[test]
    fn masks_the_forms_templates_make_of_a_secret() {
        let r = Redactor::default();
        let secret = "p@ss w'rd\"Xy";
        r.add(secret);
        for form in [
            "cEBzcyB3J3JkIlh5",      // b64encode
            "p@ss w'rd\\\"Xy",       // to_json, inside its quotes
            "'p@ss w'\"'\"'rd\"Xy'", // quote
            "p%40ss%20w%27rd%22Xy",  // urlencode
            "P@SS W'RD\"XY",         // upper
            "p@ss w'rd\"xy",         // lower
        ] {
            assert_eq!(r.redact(&format!("k={form};")), "k=<redacted>;", "{form}");
        }
    }
}

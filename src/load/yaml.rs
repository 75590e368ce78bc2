//! Reading YAML files: errors carry file:line:column, and values that YAML 1.1
//! (Ansible's parser) reads as booleans but YAML 1.2 (ours) reads as strings
//! are reported so an inventory carried over from Ansible never changes meaning
//! silently.

use std::path::Path;

use serde::de::DeserializeOwned;

use indexmap::IndexMap;
use minijinja::Value;

use crate::error::{Error, Result};

/// Read a file as UTF-8 text, naming the file on failure.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        Error::Invalid { path: path.into(), line: Some(line), message: "is not valid UTF-8; save it as UTF-8".into() }
    })?;
    refuse_vault(path, &text)?;
    Ok(text)
}

/// ansible-vault content is an error until it is imported, never data: read
/// as YAML, an inline `!vault |` value would be its ciphertext, rendered into
/// a config file as if it were the secret.
pub(crate) fn refuse_vault(path: &Path, text: &str) -> Result<()> {
    let how = format!(
        "deploy never reads vault ciphertext as data; convert it with `deploy secrets import-vault {} --vault-password-file FILE`",
        path.display()
    );
    if text.starts_with("$ANSIBLE_VAULT;") {
        return Err(Error::Invalid {
            path: path.into(),
            line: Some(1),
            message: format!("the file is encrypted with ansible-vault: {how}"),
        });
    }
    for (i, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or("");
        let Some(at) = code.find("!vault") else { continue };
        if code.trim_start().starts_with('#') || !code[at + 6..].chars().next().is_none_or(|c| c == ' ' || c == '|') {
            continue;
        }
        let before = code[..at].trim_end();
        let key = before.trim_end_matches(':').trim().trim_start_matches("- ").trim_matches(|c| c == '"' || c == '\'');
        let key = if before.ends_with(':') && !key.is_empty() { format!("`{key}`") } else { "a value".into() };
        return Err(Error::Invalid {
            path: path.into(),
            line: Some(i + 1),
            message: format!("{key} is an ansible-vault value (`!vault`): {how}"),
        });
    }
    Ok(())
}

/// Parse YAML text into `T`, with the file's name and position in errors.
pub(crate) fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_yaml::from_str(text).map_err(|e| yaml_error(path, &e))
}

/// Convert a YAML error into one that names the file and position.
pub(crate) fn yaml_error(path: &Path, e: &serde_yaml::Error) -> Error {
    let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
    let mut message = e.to_string();
    // serde_norway appends " at line L column C"; we already print it up front.
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    Error::Yaml { path: path.into(), line, column, message }
}

/// A warning about a value whose meaning differs between Ansible and deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Warning {
    /// File the value is in.
    pub(crate) path: std::path::PathBuf,
    /// 1-based line.
    pub(crate) line: usize,
    /// What is wrong and what to do.
    pub(crate) message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

const YAML11_BOOLS: &[&str] = &["yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"];

/// An unquoted YAML 1.1 boolean (`yes`, `off`, ...) in a file: which line,
/// where its value starts in that line, the key (None for a list item).
struct Yaml11Bool<'a> {
    line: usize,
    start: usize,
    value: &'a str,
    key: Option<&'a str>,
}

/// Every unquoted YAML 1.1 boolean of `text`, outside block scalars (a
/// config file kept in a `|` value is text, not YAML to reinterpret).
fn yaml11_bools(text: &str) -> Vec<Yaml11Bool<'_>> {
    let mut out = Vec::new();
    let mut block: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let indent = raw.len() - raw.trim_start().len();
        if let Some(b) = block {
            if raw.trim().is_empty() || indent > b {
                continue;
            }
            block = None;
        }
        let line = raw.split(" #").next().unwrap_or(raw).trim_end();
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        let (key, value) = if let Some(rest) = trimmed.strip_prefix("- ") {
            match rest.split_once(": ") {
                Some((k, v)) => (Some(k.trim()), v.trim()),
                None => (None, rest.trim()),
            }
        } else {
            match trimmed.split_once(": ") {
                Some((k, v)) => (Some(k.trim()), v.trim()),
                None => continue,
            }
        };
        if value.starts_with('|') || value.starts_with('>') {
            block = Some(indent);
        } else if YAML11_BOOLS.contains(&value) {
            out.push(Yaml11Bool { line: i, start: line.len() - value.len(), value, key });
        }
    }
    out
}

fn yaml11_true(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "yes" | "on")
}

/// Warnings for unquoted YAML 1.1 booleans in a file deploy reads as YAML
/// 1.2 (deploy.yml, role.yml): there they stay strings.
pub(crate) fn yaml11_bool_warnings(path: &Path, text: &str) -> Vec<Warning> {
    yaml11_bools(text)
        .into_iter()
        .map(|b| {
            let what = b.key.map(|k| format!("key `{k}`")).unwrap_or_else(|| "list item".into());
            let (v, t) = (b.value, yaml11_true(b.value));
            Warning {
                path: path.into(),
                line: b.line + 1,
                message: format!(
                    "{what}: `{v}` is the string \"{v}\" here (YAML 1.2); write `{t}` for a boolean or quote it (\"{v}\") to keep the string"
                ),
            }
        })
        .collect()
}

/// An inventory or vars file as Ansible reads it: unquoted YAML 1.1
/// booleans (`yes`, `no`, `on`, `off` in their case variants, as PyYAML
/// resolves them) are booleans. Returns the text to parse, with them
/// written as `true`/`false`, and a note for each: the file relies on YAML
/// 1.1.
pub(crate) fn as_ansible_reads_it(path: &Path, text: &str) -> (String, Vec<Warning>) {
    let text = &core_tags(text);
    let found = yaml11_bools(text);
    if found.is_empty() {
        return (text.to_string(), Vec::new());
    }
    let mut notes = Vec::new();
    let mut out = String::with_capacity(text.len());
    let mut next = found.iter().peekable();
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        match next.peek() {
            Some(b) if b.line == i => {
                let t = yaml11_true(b.value);
                out.push_str(&raw[..b.start]);
                out.push_str(if t { "true" } else { "false" });
                out.push_str(&raw[b.start + b.value.len()..]);
                let what = b.key.map(|k| format!("key `{k}`")).unwrap_or_else(|| "list item".into());
                notes.push(Warning {
                    path: path.into(),
                    line: i + 1,
                    message: format!(
                        "{what}: unquoted `{}` is read as the boolean {t}, as Ansible (YAML 1.1) reads it; write `{t}` so the file means the same to every YAML parser, or quote it (\"{}\") for the string",
                        b.value, b.value
                    ),
                });
                next.next();
            }
            _ => out.push_str(raw),
        }
    }
    (out, notes)
}

/// YAML's core tags as PyYAML reads them, which our parser refuses on
/// values it reads otherwise: `!!null` (with nothing, `""` or `~` after it)
/// is null; `!!bool "yes"` is true.
fn core_tags(text: &str) -> String {
    static NULL: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
    static BOOL: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
    if !text.contains("!!null") && !text.contains("!!bool") {
        return text.to_string();
    }
    let end = r"(?=[ \t]*(?:#|$|,|\]|\}))";
    let null = NULL.get_or_init(|| {
        fancy_regex::Regex::new(&format!(r#"(?m)!!null(?:[ \t]+(?:""|''|~|null))?{end}"#)).expect("valid")
    });
    let boolean = BOOL.get_or_init(|| {
        fancy_regex::Regex::new(&format!(r#"(?mi)!!bool[ \t]+(["']?)(yes|no|on|off|true|false|y|n)\1{end}"#))
            .expect("valid")
    });
    let text = null.replace_all(text, "null").into_owned();
    boolean
        .replace_all(&text, |c: &fancy_regex::Captures| {
            if matches!(c[2].to_ascii_lowercase().as_str(), "yes" | "on" | "y" | "true") {
                "true"
            } else {
                "false"
            }
        })
        .into_owned()
}

/// Convert parsed YAML into a template value, keeping mapping order.
pub(crate) fn yaml_to_value(v: &serde_yaml::Value) -> Value {
    match v {
        serde_yaml::Value::Null => Value::from(()),
        serde_yaml::Value::Bool(b) => Value::from(*b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_yaml::Value::String(s) => Value::from(s.clone()),
        serde_yaml::Value::Sequence(s) => Value::from(s.iter().map(yaml_to_value).collect::<Vec<_>>()),
        serde_yaml::Value::Mapping(m) => {
            let mut out = IndexMap::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => Value::from(s.clone()),
                    other => yaml_to_value(other),
                };
                out.insert(key, yaml_to_value(v));
            }
            Value::from_iter(out)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_value(&t.value),
    }
}

/// A role's defaults or vars: the mappings of those of `files` that exist.
pub(crate) fn vars_mapping(
    files: &[std::path::PathBuf],
    what: &str,
    warnings: &mut Vec<Warning>,
) -> Result<serde_yaml::Mapping> {
    let mut out = serde_yaml::Mapping::new();
    for p in files.iter().filter(|p| p.exists()) {
        let (text, notes) = as_ansible_reads_it(p, &read_text(p)?);
        warnings.extend(notes);
        match parse::<serde_yaml::Value>(p, &text)? {
            serde_yaml::Value::Mapping(m) => out.extend(m),
            serde_yaml::Value::Null => {}
            _ => return Err(Error::invalid(p, format!("{what} must be a mapping of variables"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_bools_are_found_with_line_and_key() {
        let w = yaml11_bool_warnings(Path::new("g.yml"), "a: 1\nenable_tls: yes\nq: \"yes\"\nl:\n  - off\n");
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].line, 2);
        assert!(w[0].message.contains("key `enable_tls`"), "{}", w[0].message);
        assert!(w[0].message.contains("write `true` for a boolean"), "{}", w[0].message);
        assert_eq!(w[1].line, 5);
    }

    #[test]
    fn yaml11_bools_read_as_ansible_reads_them() {
        let text = "a: 1\nenable_tls: yes # comment\nq: \"yes\"\nl:\n  - Off\nblock: |\n  x: no\nafter: ON\n";
        let (out, notes) = as_ansible_reads_it(Path::new("g.yml"), text);
        assert_eq!(
            out,
            "a: 1\nenable_tls: true # comment\nq: \"yes\"\nl:\n  - false\nblock: |\n  x: no\nafter: true\n"
        );
        let lines: Vec<usize> = notes.iter().map(|n| n.line).collect();
        assert_eq!(lines, vec![2, 5, 8]);
        assert!(notes[0].message.contains("read as the boolean true, as Ansible (YAML 1.1) reads it"));
    }

    #[test]
    fn yaml_errors_carry_position() {
        let e = parse::<serde_yaml::Value>(Path::new("x.yml"), "a: [1, 2\nb: 3\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("x.yml:"), "{s}");
        assert!(!s.contains(" at line "), "{s}");
    }

    #[test]
    fn core_tags_read_as_pyyaml_reads_them() {
        let text = "a: !!null\nb: !!null ''\nc: !!bool \"yes\"\nd: !!bool off  # x\ne: [!!null, !!bool true]\nf: \"!!null kept\"\n";
        let (t, _) = as_ansible_reads_it(Path::new("v.yml"), text);
        let v: serde_yaml::Value = serde_yaml::from_str(&t).unwrap();
        assert_eq!(v["a"], serde_yaml::Value::Null);
        assert_eq!(v["b"], serde_yaml::Value::Null);
        assert_eq!(v["c"], serde_yaml::Value::Bool(true));
        assert_eq!(v["d"], serde_yaml::Value::Bool(false));
        assert_eq!(v["e"][0], serde_yaml::Value::Null);
        assert_eq!(v["e"][1], serde_yaml::Value::Bool(true));
        assert_eq!(v["f"], serde_yaml::Value::String("!!null kept".into()));
    }
}

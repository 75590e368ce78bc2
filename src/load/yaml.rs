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
    String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        Error::Invalid { path: path.into(), line: Some(line), message: "is not valid UTF-8; save it as UTF-8".into() }
    })
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

/// Find unquoted `key: yes|no|on|off` (and `- yes` list items): PyYAML reads
/// them as booleans, a YAML 1.2 parser as strings.
pub(crate) fn yaml11_bool_warnings(path: &Path, text: &str) -> Vec<Warning> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
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
        if YAML11_BOOLS.contains(&value) {
            let what = key.map(|k| format!("key `{k}`")).unwrap_or_else(|| "list item".into());
            let b = matches!(value.to_ascii_lowercase().as_str(), "yes" | "on");
            out.push(Warning {
                path: path.into(),
                line: i + 1,
                message: format!(
                    "{what}: `{value}` is the string \"{value}\" here (YAML 1.2), but Ansible read it as the boolean {b}; write `{b}` for a boolean or quote it (\"{value}\") to keep the string"
                ),
            });
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_bools_are_found_with_line_and_key() {
        let w = yaml11_bool_warnings(Path::new("g.yml"), "a: 1\nenable_tls: yes\nq: \"yes\"\nl:\n  - off\n");
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].line, 2);
        assert!(w[0].message.contains("key `enable_tls`"), "{}", w[0].message);
        assert!(w[0].message.contains("boolean true"));
        assert_eq!(w[1].line, 5);
    }

    #[test]
    fn yaml_errors_carry_position() {
        let e = parse::<serde_yaml::Value>(Path::new("x.yml"), "a: [1, 2\nb: 3\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("x.yml:"), "{s}");
        assert!(!s.contains(" at line "), "{s}");
    }
}

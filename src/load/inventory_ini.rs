//! Ansible's INI inventory format (`inventory/hosts` or `hosts.ini`),
//! read into the same structure as the YAML one: `[group]` host lines with
//! `key=value` variables, `[group:vars]`, `[group:children]`, hosts before
//! any section in `ungrouped`. Errors name the file and line.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};

/// A value as Ansible's INI parser reads it: numbers and booleans typed,
/// quotes stripped, the rest a string.
fn value(raw: &str) -> Value {
    let s = raw.trim();
    if let Some(q) = s
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
    {
        return Value::String(q.into());
    }
    if let Ok(n) = s.parse::<i64>() {
        return Value::Number(n.into());
    }
    if let Ok(f) = s.parse::<f64>() {
        if s.contains('.') {
            return Value::Number(f.into());
        }
    }
    match s {
        "True" | "true" => Value::Bool(true),
        "False" | "false" => Value::Bool(false),
        _ => Value::String(s.into()),
    }
}

fn entry<'a>(m: &'a mut Mapping, key: &str) -> &'a mut Mapping {
    let v = m.entry(Value::String(key.into())).or_insert_with(|| Value::Mapping(Mapping::new()));
    if !v.is_mapping() {
        *v = Value::Mapping(Mapping::new());
    }
    v.as_mapping_mut().expect("a mapping")
}

/// `key=value key2="a b"` words of a host line (quotes keep spaces).
fn pairs(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut quote) = (Vec::new(), String::new(), None);
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, ' ' | '\t') => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Group `name`'s body with its children's bodies in place.
fn nest(path: &Path, groups: &Mapping, name: &str, depth: usize) -> Result<Value> {
    if depth > 32 {
        return Err(Error::invalid(path, format!("group `{name}` is its own child (a [GROUP:children] loop)")));
    }
    let mut body = groups.get(name).and_then(|v| v.as_mapping().cloned()).unwrap_or_default();
    if let Some(Value::Mapping(kids)) = body.get("children").cloned() {
        let mut filled = Mapping::new();
        for k in kids.keys().filter_map(|k| k.as_str()) {
            filled.insert(Value::String(k.into()), nest(path, groups, k, depth + 1)?);
        }
        body.insert(Value::String("children".into()), Value::Mapping(filled));
    }
    Ok(Value::Mapping(body))
}

/// `all` with every group in place: a group that is no other's child hangs
/// under `all` (as Ansible does), a child's body goes where its parent names it.
fn tree(path: &Path, groups: &Mapping) -> Result<Mapping> {
    // every group not some other's child hangs under all, as Ansible does;
    // a child's body goes where its parent names it
    let children: Vec<String> = groups
        .values()
        .filter_map(|g| g.get("children").and_then(Value::as_mapping))
        .flat_map(|c| c.keys().filter_map(|k| k.as_str().map(String::from)))
        .collect();
    let mut all = groups.get("all").and_then(|v| v.as_mapping().cloned()).unwrap_or_default();
    all.remove("children");
    let mut top = Mapping::new();
    for name in groups.keys().filter_map(|k| k.as_str()) {
        if name != "all" && !children.iter().any(|c| c == name) {
            top.insert(Value::String(name.into()), nest(path, groups, name, 0)?);
        }
    }
    // a group reachable from no top-level one is in a loop of children
    fn names(v: &Value, out: &mut Vec<String>) {
        if let Some(kids) = v.get("children").and_then(Value::as_mapping) {
            for (k, body) in kids {
                out.extend(k.as_str().map(String::from));
                names(body, out);
            }
        }
    }
    let mut seen = Vec::new();
    names(
        &Value::Mapping(Mapping::from_iter([(Value::String("children".into()), Value::Mapping(top.clone()))])),
        &mut seen,
    );
    if let Some(lost) = groups.keys().filter_map(|k| k.as_str()).find(|g| *g != "all" && !seen.iter().any(|s| s == g)) {
        return Err(Error::invalid(path, format!("group `{lost}` is its own child (a [GROUP:children] loop)")));
    }
    all.insert(Value::String("children".into()), Value::Mapping(top));
    Ok(all)
}

/// The INI text as the YAML inventory structure (all: children: ...).
pub(crate) fn to_yaml(path: &Path, text: &str) -> Result<Value> {
    let mut groups = Mapping::new();
    let (mut section, mut kind) = ("ungrouped".to_string(), "hosts".to_string());
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |m: String| Error::Invalid { path: path.into(), line: Some(i + 1), message: m };
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (name, k) = h.split_once(':').unwrap_or((h, "hosts"));
            if !matches!(k, "hosts" | "vars" | "children") {
                return Err(err(format!("[{h}]: a section is [GROUP], [GROUP:vars] or [GROUP:children]")));
            }
            (section, kind) = (name.trim().to_string(), k.to_string());
            entry(&mut groups, &section);
            continue;
        }
        let g = entry(&mut groups, &section);
        match kind.as_str() {
            "vars" => {
                let (k, v) = line
                    .split_once('=')
                    .ok_or_else(|| err(format!("`{line}` in [{section}:vars] is not KEY=VALUE")))?;
                entry(g, "vars").insert(Value::String(k.trim().into()), value(v));
            }
            "children" => {
                entry(g, "children").insert(Value::String(line.into()), Value::Null);
            }
            _ => {
                let words = pairs(line);
                let host = &words[0];
                if host.contains('[') {
                    return Err(err(format!("host range `{host}`: write each host on its own line")));
                }
                let mut vars = Mapping::new();
                for w in &words[1..] {
                    let (k, v) =
                        w.split_once('=').ok_or_else(|| err(format!("`{w}` after host {host} is not KEY=VALUE")))?;
                    vars.insert(Value::String(k.into()), value(v));
                }
                let hv = entry(entry(g, "hosts"), host);
                hv.extend(vars);
            }
        }
    }
    let all = tree(path, &groups)?;
    let mut root = Mapping::new();
    root.insert(Value::String("all".into()), Value::Mapping(all));
    Ok(Value::Mapping(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_host_variables_and_typed_values() {
        let text = "top1\n[web]\nweb1 ansible_host=10.0.0.1 ansible_port=2222 motd=\"hello there\" debug=True\n\
[web:vars]\nratio=0.5\n[prod:children]\nweb\n";
        let v = to_yaml(Path::new("hosts"), text).unwrap();
        let y = serde_yaml::to_string(&v).unwrap();
        let all = &v["all"]["children"];
        let web1 = &all["prod"]["children"]["web"]["hosts"]["web1"];
        assert_eq!(web1["ansible_port"], Value::Number(2222.into()), "{y}");
        assert_eq!(web1["motd"], Value::String("hello there".into()));
        assert_eq!(web1["debug"], Value::Bool(true));
        assert_eq!(all["prod"]["children"]["web"]["vars"]["ratio"], Value::Number(0.5.into()));
        assert!(all["ungrouped"]["hosts"]["top1"].is_mapping(), "{y}");
        assert!(all.get("web").is_none(), "a child group sits under its parent only: {y}");
        let e = to_yaml(Path::new("hosts"), "[a:children]\nb\n[b:children]\na\n[c]\nx\n").unwrap_err();
        assert!(e.to_string().contains("its own child"), "{e}");
    }
}

//! Compose projects, analysed from their rendered files: which env files and
//! bind-mounted files each service reads, which `${VAR}`s it interpolates,
//! and a hash of all of a service's inputs.
//!
//! Why a hash label: Compose (v1 and v2) recreates a service when its
//! resolved config changes, but not when a bind-mounted file's content
//! changes, and `restart` never re-reads anything. We put the hash of every
//! input of a service into a label (in a generated override file), so the
//! config Compose sees changes exactly when an input changes; the plan reads
//! the label of the running container to show pending recreates, and the
//! apply recreates exactly those services, whatever Compose version runs.
//! Pure: works on bytes, touches nothing.

use std::collections::{BTreeMap, HashMap};

use serde_yaml::Value;

/// The label carrying a service's input hash.
pub(crate) const LABEL: &str = "deploy.inputs";

/// A service as the compose files declare it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Service {
    /// Service name.
    pub(crate) name: String,
    /// Compose file that (last) defines it.
    pub(crate) file: String,
    /// env_file paths, absolute.
    pub(crate) env_files: Vec<String>,
    /// Host paths of bind mounts, absolute.
    pub(crate) binds: Vec<String>,
    /// Interpolated variables without a default: (name, required-with-error).
    pub(crate) vars: Vec<String>,
    /// The healthcheck test mentions localhost.
    pub(crate) healthcheck_localhost: bool,
    /// The merged definition, for hashing.
    pub(crate) definition: serde_json::Value,
}

fn abs(dir: &str, p: &str) -> String {
    let p = p.trim();
    let joined = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{}", dir.trim_end_matches('/'), p.trim_start_matches("./"))
    };
    normalise(&joined)
}

fn normalise(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Mapping(am), Value::Mapping(bm)) => {
            for (k, v) in bm {
                match am.get_mut(k) {
                    Some(av) => merge(av, v),
                    None => {
                        am.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

/// Variables referenced as `${VAR}` or `$VAR` without a default value
/// (`${VAR:-x}` and `${VAR-x}` have one; `$$` is a literal dollar).
pub(crate) fn interpolated(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        if i + 1 < b.len() && b[i + 1] == b'$' {
            i += 2;
            continue;
        }
        if i + 1 < b.len() && b[i + 1] == b'{' {
            let Some(end) = s[i + 2..].find('}') else { break };
            let inner = &s[i + 2..i + 2 + end];
            let name: String = inner.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let rest = &inner[name.len()..];
            let has_default =
                rest.starts_with(":-") || rest.starts_with('-') || rest.starts_with(":+") || rest.starts_with('+');
            if !name.is_empty() && !has_default {
                out.push(name);
            }
            i += 3 + end;
            continue;
        }
        let name: String = s[i + 1..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()) {
            out.push(name.clone());
        }
        i += 1 + name.len().max(1);
    }
    out
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(s) => s.iter().for_each(|x| strings(x, out)),
        Value::Mapping(m) => m.iter().for_each(|(k, x)| {
            strings(k, out);
            strings(x, out)
        }),
        Value::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

/// Parse the compose files of a project (in order, later ones override
/// earlier ones) and describe its services.
pub(crate) fn analyze(dir: &str, files: &[(String, Vec<u8>)]) -> Result<Vec<Service>, String> {
    let mut merged = Value::Mapping(Default::default());
    let mut origin: HashMap<String, String> = HashMap::new();
    for (path, bytes) in files {
        let v: Value = serde_yaml::from_slice(bytes).map_err(|e| {
            let loc = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
            format!("{path}{loc}: not valid YAML: {e}")
        })?;
        if let Some(Value::Mapping(svcs)) = v.get("services") {
            for k in svcs.keys() {
                if let Some(k) = k.as_str() {
                    origin.insert(k.to_string(), path.clone());
                }
            }
        }
        merge(&mut merged, &v);
    }
    let Some(Value::Mapping(services)) = merged.get("services") else {
        return Err(format!(
            "{}: no `services:` mapping",
            files.first().map(|f| f.0.as_str()).unwrap_or("compose file")
        ));
    };
    let mut out = Vec::new();
    for (name, def) in services {
        let name = name.as_str().unwrap_or_default().to_string();
        let (env_files, binds) = (env_files(dir, def), binds(dir, def));
        let mut all = Vec::new();
        strings(def, &mut all);
        let mut vars: Vec<String> = all.iter().flat_map(|s| interpolated(s)).collect();
        vars.sort();
        vars.dedup();
        let mut hc = Vec::new();
        if let Some(h) = def.get("healthcheck") {
            strings(h, &mut hc);
        }
        let healthcheck_localhost = hc.iter().any(|s| s.contains("localhost"));
        let definition = serde_json::to_value(def).unwrap_or(serde_json::Value::Null);
        out.push(Service {
            file: origin.get(&name).cloned().unwrap_or_default(),
            name,
            env_files,
            binds,
            vars,
            healthcheck_localhost,
            definition,
        });
    }
    Ok(out)
}

/// A service's env_file paths, absolute.
fn env_files(dir: &str, def: &Value) -> Vec<String> {
    let mut env_files = Vec::new();
    match def.get("env_file") {
        Some(Value::String(s)) => env_files.push(abs(dir, s)),
        Some(Value::Sequence(list)) => {
            for e in list {
                match e {
                    Value::String(s) => env_files.push(abs(dir, s)),
                    Value::Mapping(_) => {
                        if let Some(p) = e.get("path").and_then(|p| p.as_str()) {
                            env_files.push(abs(dir, p));
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    env_files
}

/// The host paths a service bind-mounts, absolute.
fn binds(dir: &str, def: &Value) -> Vec<String> {
    let mut binds = Vec::new();
    if let Some(Value::Sequence(vols)) = def.get("volumes") {
        for v in vols {
            match v {
                Value::String(s) => {
                    let src = s.split(':').next().unwrap_or("");
                    if src.starts_with('/') || src.starts_with('.') {
                        binds.push(abs(dir, src));
                    }
                }
                Value::Mapping(_) if v.get("type").and_then(|t| t.as_str()) == Some("bind") => {
                    if let Some(src) = v.get("source").and_then(|s| s.as_str()) {
                        binds.push(abs(dir, src));
                    }
                }
                _ => {}
            }
        }
    }
    binds
}

/// Parse a `.env` file: KEY=VALUE lines, comments, optional quotes.
pub(crate) fn parse_dotenv(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in String::from_utf8_lossy(bytes).lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        if let Some((k, v)) = l.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            out.insert(k.trim().to_string(), v.to_string());
        }
    }
    out
}

/// The generated override file: one label per service with its input hash.
pub(crate) fn override_file(project: &str, hashes: &[(String, String)]) -> String {
    let mut s = format!("# generated by deploy for compose project {project}: do not edit.\n# Each label is a hash of everything the service reads; a change recreates it.\nservices:\n");
    for (svc, h) in hashes {
        s.push_str(&format!("  {svc}:\n    labels:\n      {LABEL}: \"{h}\"\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_refs() {
        assert_eq!(interpolated("${A} $B ${C:-x} ${D-y} $$E ${F:?need}"), vec!["A", "B", "F"]);
        assert!(interpolated("no vars, $$ literal").is_empty());
    }

    #[test]
    fn services_and_inputs() {
        let a = b"services:\n  app:\n    image: x\n    env_file: env/app.env\n    volumes:\n      - ./conf/app.json:/app.json:ro\n      - data:/data\n      - type: bind\n        source: /srv/x\n        target: /x\n    environment:\n      URL: ${APP_URL}\n    healthcheck:\n      test: [CMD, wget, -q, http://localhost:80]\n  db:\n    image: y\n".to_vec();
        let s = analyze("/opt/stack", &[("/opt/stack/a.yml".into(), a)]).unwrap();
        assert_eq!(s[0].env_files, vec!["/opt/stack/env/app.env"]);
        assert_eq!(s[0].binds, vec!["/opt/stack/conf/app.json", "/srv/x"]);
        assert_eq!(s[0].vars, vec!["APP_URL"]);
        assert!(s[0].healthcheck_localhost);
        assert_eq!(s[1].name, "db");
        assert!(s[1].env_files.is_empty());
    }

    #[test]
    fn dotenv() {
        let e = parse_dotenv(b"# c\nA=1\nexport B=\"two\"\nC='3'\n\n");
        assert_eq!(e.get("A").unwrap(), "1");
        assert_eq!(e.get("B").unwrap(), "two");
        assert_eq!(e.get("C").unwrap(), "3");
    }
}

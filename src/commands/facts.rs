//! `deploy facts ENV --host H`: the host facts deploy gathers, as JSON in
//! the shape `ansible -m setup` prints (`{"ansible_facts": {...}}`), and the
//! facts files `deploy render --facts` and `deploy plan --facts` read.

use std::path::Path;

use serde_json::{Map, Value};

use crate::engine::DeployArgs;
use crate::error::{exit, Error, Result};
use crate::render::Renderer;

pub(crate) async fn facts(args: DeployArgs, host: &str) -> Result<u8> {
    let loaded = Renderer::load(&args.root, &args.env, &args.keys, &args.extra)?;
    if !loaded.hosts.iter().any(|h| h == host) {
        return Err(Error::Usage(format!(
            "--host {host}: no such host in `{}` (hosts: {})",
            args.env,
            loaded.hosts.join(", ")
        )));
    }
    let hosts = vec![host.to_string()];
    let reply = super::fanout::on_each(&loaded, &args, &hosts, "deploy-facts", crate::remote::facts::SCRIPT, vec![])
        .await?
        .remove(0)?;
    let facts = crate::remote::facts::parse_facts(&reply)
        .map_err(|m| Error::Remote { host: host.into(), message: format!("gathering facts: {m}") })?;
    let prefixed: Map<String, Value> = facts.into_iter().map(|(k, v)| (format!("ansible_{k}"), v)).collect();
    let out = serde_json::json!({ "ansible_facts": prefixed });
    crate::report::line(&loaded.redactor.redact(&serde_json::to_string_pretty(&out).unwrap_or_default()));
    Ok(exit::OK)
}

/// A facts file: one host's facts, used for every host rendered, or each
/// host's by name.
pub(crate) enum FactsFile {
    One(Map<String, Value>),
    ByHost(Map<String, Value>),
}

impl FactsFile {
    /// The facts of `host` (by their ansible_facts names).
    pub(crate) fn of(&self, host: &str) -> &Map<String, Value> {
        static NONE: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match self {
            FactsFile::One(m) => m,
            FactsFile::ByHost(hosts) => {
                hosts.get(host).and_then(Value::as_object).unwrap_or_else(|| NONE.get_or_init(Map::new))
            }
        }
    }
}

/// The facts in `path`: `ansible -m setup`'s output (`HOST | SUCCESS =>
/// {...}` or its JSON), `deploy facts`' JSON, a mapping of facts, or a
/// mapping of host names to any of those.
pub(crate) fn read_file(path: &Path) -> Result<FactsFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| {
        Error::invalid(
            path,
            format!("{m}: give facts as `ansible HOST -m setup` or `deploy facts ENV --host HOST` prints them"),
        )
    };
    let json = text.find('{').map(|i| &text[i..]).ok_or_else(|| bad("no JSON object in it"))?;
    let v: Value = serde_json::from_str(json).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let Value::Object(top) = v else { return Err(bad("not a JSON object")) };
    fn facts_of(m: &Map<String, Value>) -> Option<Map<String, Value>> {
        let inner = match m.get("ansible_facts") {
            Some(Value::Object(f)) => f,
            _ if m.keys().any(|k| k.starts_with("ansible_")) => m,
            _ => return None,
        };
        Some(inner.iter().map(|(k, v)| (k.strip_prefix("ansible_").unwrap_or(k).to_string(), v.clone())).collect())
    }
    if let Some(f) = facts_of(&top) {
        return Ok(FactsFile::One(f));
    }
    let mut by_host = Map::new();
    for (host, v) in &top {
        let f = v.as_object().and_then(facts_of).ok_or_else(|| bad(&format!("`{host}` holds no facts")))?;
        by_host.insert(host.clone(), Value::Object(f));
    }
    Ok(FactsFile::ByHost(by_host))
}

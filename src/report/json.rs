//! The plan as JSON (`--output json`), for CI: a versioned document whose
//! schema is docs/plan.schema.json (checked against real output by a test).

use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::plan::HostPlan;
use crate::redact::Redactor;

/// Raised only when a field is removed or changes meaning; new fields may
/// appear in the same version.
pub(crate) const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonHost<'a> {
    host: &'a str,
    address: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    format_version: u32,
    environment: &'a str,
    commit: Option<&'a str>,
    changes: bool,
    hosts: Vec<JsonHost<'a>>,
    warnings: &'a [String],
}

/// A host's plan with its phases named (deploy.yml's names, not indexes).
fn named(plan: &HostPlan, phases: &[String]) -> Value {
    let mut v = serde_json::to_value(plan).unwrap_or(Value::Null);
    for list in ["changes", "services", "system"] {
        if let Some(items) = v.get_mut(list).and_then(Value::as_array_mut) {
            for item in items {
                if let Some(p) = item.get("phase").and_then(Value::as_u64) {
                    let name = phases.get(p as usize).cloned().unwrap_or_else(|| p.to_string());
                    item["phase"] = Value::String(name);
                }
            }
        }
    }
    v
}

/// What `plans` prints for one host: name, ssh destination, plan or error.
pub(crate) type Host<'a> = (&'a str, &'a str, std::result::Result<&'a HostPlan, &'a Error>);

/// Print every host's plan (or its error) as one JSON document, redacted.
pub(crate) fn plans(
    env: &str,
    commit: Option<&str>,
    phases: &[String],
    hosts: &[Host],
    warnings: &[String],
    redactor: &Redactor,
) {
    let changes = hosts.iter().any(|(_, _, p)| p.is_ok_and(|p| !p.is_empty()));
    let hosts = hosts
        .iter()
        .map(|(host, address, p)| match p {
            Ok(plan) => JsonHost { host, address, plan: Some(named(plan, phases)), error: None },
            Err(e) => JsonHost { host, address, plan: None, error: Some(super::error_text(e)) },
        })
        .collect();
    let j = JsonPlan { format_version: FORMAT_VERSION, environment: env, commit, changes, hosts, warnings };
    let text = serde_json::to_string_pretty(&j).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    super::line(&redactor.redact(&text));
}

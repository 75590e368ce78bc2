//! The plan as JSON (`--output json`), for CI.

use serde::Serialize;

use crate::error::Error;
use crate::plan::HostPlan;
use crate::redact::Redactor;

#[derive(Serialize)]
struct JsonHost<'a> {
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a HostPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    environment: &'a str,
    changes: bool,
    hosts: Vec<JsonHost<'a>>,
    warnings: &'a [String],
}

/// Print every host's plan (or its error) as one JSON document, redacted.
pub(crate) fn plans(
    env: &str,
    hosts: &[(&str, std::result::Result<&HostPlan, &Error>)],
    warnings: &[String],
    redactor: &Redactor,
) {
    let changes = hosts.iter().any(|(_, p)| p.is_ok_and(|p| !p.is_empty()));
    let hosts = hosts
        .iter()
        .map(|(host, p)| match p {
            Ok(plan) => JsonHost { host, plan: Some(plan), error: None },
            Err(e) => JsonHost { host, plan: None, error: Some(super::error_text(e)) },
        })
        .collect();
    let j = JsonPlan { environment: env, changes, hosts, warnings };
    let text = serde_json::to_string_pretty(&j).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    super::line(&redactor.redact(&text));
}

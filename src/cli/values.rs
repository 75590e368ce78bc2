//! What the command line's words and values mean: toggle words, the default
//! environment, -e values, the rollout flags (with deploy.yml's defaults).

use std::path::Path;

use super::*;

/// --serial, --canary and --max-fail-percentage, else deploy.yml's `serial:`
/// and `max_fail_percentage:`.
pub(super) fn rollout(run: &RunFlags, d: &crate::load::defaults::Defaults) -> Result<crate::engine::rollout::Rollout> {
    let serial = match (run.serial, &d.serial) {
        (Some(s), _) => Some(s),
        (None, Some(text)) => Some(text.parse().map_err(|e| Error::Usage(format!("deploy.yml: serial: {e}")))?),
        (None, None) => None,
    };
    if run.canary == Some(0) {
        return Err(Error::Usage("--canary 0: a canary is at least one host".into()));
    }
    Ok(crate::engine::rollout::Rollout {
        serial,
        canary: run.canary,
        max_fail_percentage: run.max_fail_percentage.or(d.max_fail_percentage).unwrap_or(0),
    })
}

/// `NAME-on` -> (NAME, Some(true)), `NAME-status` -> (NAME, None).
pub(super) fn toggle_command(word: &str) -> Result<(String, Option<bool>)> {
    let (name, action) = word.rsplit_once('-').ok_or_else(|| {
        Error::Usage(format!("`{word}` is not a toggle command: write NAME-on, NAME-off or NAME-status"))
    })?;
    let on = match action {
        "on" => Some(true),
        "off" => Some(false),
        "status" => None,
        _ => return Err(Error::Usage(format!("`{word}`: a toggle takes -on, -off or -status"))),
    };
    Ok((name.to_string(), on))
}

/// `NAME-on|off|status` where NAME is a toggle of deploy.yml.
pub(super) fn is_toggle_word(word: &str, defaults: &dyn Fn() -> crate::load::defaults::Defaults) -> bool {
    word.rsplit_once('-').is_some_and(|(name, action)| {
        matches!(action, "on" | "off" | "status") && defaults().toggles.contains_key(name)
    })
}

/// The environment when none is named: DEPLOY_ENV, else deploy.yml's
/// `default_env`, else an error listing the environments there are.
pub(super) fn default_env(root: &Path, defaults: &crate::load::defaults::Defaults) -> Result<String> {
    if let Some(e) = std::env::var("DEPLOY_ENV").ok().filter(|e| !e.is_empty()) {
        return Ok(e);
    }
    if let Some(e) = &defaults.default_env {
        return Ok(e.clone());
    }
    let groups = crate::load::inventory::Inventory::read(root)
        .ok()
        .map(|(_, i, _)| i.groups.keys().filter(|g| *g != "all" && *g != "ungrouped").cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    Err(Error::Usage(format!(
        "no environment given, and neither DEPLOY_ENV nor `default_env` in deploy.yml names one; environments: {}",
        if groups.is_empty() { "none found in inventory/".to_string() } else { groups.join(", ") }
    ))
    .hinted("name one (`deploy lab`), export DEPLOY_ENV=lab, or add `default_env: lab` to deploy.yml"))
}

/// -e KEY=VALUE (a string), -e @FILE (a YAML or JSON file of variables), or
/// -e '{"k": 1}' (inline JSON or YAML), as ansible-playbook takes them.
pub(super) fn extra(v: &VarFlags) -> Result<Vec<(String, serde_yaml::Value)>> {
    let mut out = Vec::new();
    for kv in &v.extra {
        let mapping = |path: &Path, text: &str| -> Result<serde_yaml::Mapping> {
            let (text, _) = crate::load::yaml::as_ansible_reads_it(path, text);
            match crate::load::yaml::parse::<serde_yaml::Value>(path, &text)? {
                serde_yaml::Value::Mapping(m) => Ok(m),
                _ => Err(Error::Usage(format!("-e {kv}: expected a mapping of variables"))),
            }
        };
        let m = if let Some(file) = kv.strip_prefix('@') {
            let path = Path::new(file);
            mapping(path, &crate::load::yaml::read_text(path)?)?
        } else if kv.trim_start().starts_with('{') {
            mapping(Path::new("-e"), kv)?
        } else {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("-e {kv}: expected KEY=VALUE, @FILE or a JSON object")))?;
            out.push((k.trim().to_string(), serde_yaml::Value::String(v.to_string())));
            continue;
        };
        for (k, v) in m {
            let serde_yaml::Value::String(k) = k else {
                return Err(Error::Usage(format!("-e {kv}: variable names are strings")));
            };
            out.push((k, v));
        }
    }
    Ok(out)
}

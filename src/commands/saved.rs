//! Saved plans: `deploy ENV --check --save-plan FILE` writes what each host
//! would change; `deploy apply FILE` applies exactly that, refusing a host
//! whose state no longer gives the same plan, and the whole run when the
//! repository's commit or the -e values differ (Terraform's stale-plan rule,
//! on top of the apply's own check of every file against the probe).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::{DeployArgs, HostState};
use crate::error::{Error, Result};
use crate::plan::HostPlan;

/// Raised when the file's meaning changes.
const FORMAT_VERSION: u32 = 1;

/// What a saved plan file holds: no secret, no file content; the digest of
/// each host's plan (the changes with the state the probe saw, the diffs,
/// the container and system changes).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedPlan {
    format_version: u32,
    environment: String,
    commit: String,
    roles: Option<Vec<String>>,
    limit: Option<Vec<String>>,
    /// sha256 of the -e values (they may be secrets)
    extra_vars: String,
    /// host -> sha256 of its plan
    hosts: BTreeMap<String, String>,
    /// For people: what each host would change.
    summary: BTreeMap<String, String>,
}

/// sha256 of a host's plan as JSON.
fn digest(plan: &HostPlan) -> String {
    crate::util::sha256_hex(serde_json::to_string(plan).unwrap_or_default().as_bytes())
}

fn extra_digest(args: &DeployArgs) -> String {
    let text: String = args.extra.iter().map(|(k, v)| format!("{k}={v:?}\n")).collect();
    crate::util::sha256_hex(text.as_bytes())
}

/// Write the plan of every host that has one; a host that failed to
/// plan makes the file worthless, so it is not written.
pub(crate) fn save(path: &Path, args: &DeployArgs, states: &[HostState]) -> Result<()> {
    let mut hosts = BTreeMap::new();
    let mut summary = BTreeMap::new();
    for s in states {
        match s {
            HostState::Ready(r) => {
                hosts.insert(r.desired.host.clone(), digest(&r.plan));
                let (c, u, m, d) = r.plan.counts();
                summary.insert(
                    r.desired.host.clone(),
                    format!(
                        "{c} to create, {u} to update, {m} attribute changes, {d} to remove, {} container actions, {} system changes",
                        r.plan.services.len(),
                        r.plan.system.len()
                    ),
                );
            }
            HostState::Failed(e) => {
                return Err(Error::Usage(format!(
                    "not saving the plan: host {} has none ({})",
                    e.host().unwrap_or("?"),
                    crate::report::error_text(e)
                )))
            }
        }
    }
    let saved = SavedPlan {
        format_version: FORMAT_VERSION,
        environment: args.env.clone(),
        commit: crate::util::git_commit(&args.root),
        roles: args.roles.clone(),
        limit: args.limit.clone(),
        extra_vars: extra_digest(args),
        hosts,
        summary,
    };
    let text = serde_json::to_string_pretty(&saved).unwrap_or_default() + "\n";
    std::fs::write(path, text).map_err(|e| Error::invalid(path, format!("cannot write the plan: {e}")))?;
    crate::report::note(&format!(
        "Plan saved to {}; apply exactly it with `deploy apply {}`.",
        path.display(),
        path.display()
    ));
    Ok(())
}

/// Read a saved plan and the arguments to apply it with; refuses a plan of
/// another commit or other -e values.
pub(crate) fn load(path: &Path, args: DeployArgs) -> Result<(DeployArgs, BTreeMap<String, String>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::invalid(path, format!("cannot read: {e}")))?;
    let saved: SavedPlan =
        serde_json::from_str(&text).map_err(|e| Error::invalid(path, format!("not a saved plan: {e}")))?;
    if saved.format_version != FORMAT_VERSION {
        return Err(Error::invalid(
            path,
            format!("saved plan format {} is not {FORMAT_VERSION}", saved.format_version),
        ));
    }
    let commit = crate::util::git_commit(&args.root);
    if commit != saved.commit || commit.ends_with("-dirty") || commit == "none" {
        return Err(Error::Usage(format!(
            "the plan in {} was made at commit {} and the repository is at {commit}: a plan applies only to the exact, clean commit it was made from; make a new plan",
            path.display(),
            saved.commit
        )));
    }
    let args = DeployArgs {
        env: saved.environment.clone(),
        roles: saved.roles.clone(),
        limit: saved.limit.clone(),
        yes: true,
        check: false,
        ..args
    };
    if extra_digest(&args) != saved.extra_vars {
        return Err(Error::Usage(format!(
            "the -e values differ from those the plan in {} was made with: pass the same ones",
            path.display()
        )));
    }
    Ok((args, saved.hosts))
}

/// Why a host's new plan is not the saved one, if it is not.
pub(crate) fn stale(saved: &BTreeMap<String, String>, host: &str, plan: &HostPlan) -> Option<String> {
    match saved.get(host) {
        None => Some("the saved plan has no plan for this host".into()),
        Some(d) if *d != digest(plan) => Some(
            "its state no longer matches what the saved plan saw (a managed path, container or package changed since): nothing was applied here; make a new plan".into(),
        ),
        Some(_) => None,
    }
}

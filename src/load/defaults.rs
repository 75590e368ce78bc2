//! What the command line reads of deploy.yml before the project loads
//! (`default_env`, toggle names, `age_identity`), where the project root is,
//! and `age_identity` itself: one file or a list.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

/// `age_identity`: one file, or a list tried together (lab and prod
/// identities side by side; each machine has the ones it may use).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(untagged, expecting = "an identity file, or a list of them")]
pub(crate) enum Identities {
    /// None given.
    #[default]
    None,
    /// One file.
    One(PathBuf),
    /// Several, tried together.
    Many(Vec<PathBuf>),
}

impl Identities {
    /// The files, relative paths under `root`, `~/` under $HOME.
    pub(crate) fn under(&self, root: &Path) -> Vec<PathBuf> {
        let files: Vec<&PathBuf> = match self {
            Identities::None => vec![],
            Identities::One(p) => vec![p],
            Identities::Many(ps) => ps.iter().collect(),
        };
        files
            .into_iter()
            .map(|p| match (p.strip_prefix("~"), std::env::var_os("HOME")) {
                (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
                _ => root.join(p),
            })
            .collect()
    }
}

/// What the command line needs from deploy.yml before the project loads
/// (the `secrets` commands must work while the rest does not load).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Defaults {
    /// `age_identity`, relative to the root.
    #[serde(default)]
    pub(crate) age_identity: Identities,
    /// `default_env`.
    pub(crate) default_env: Option<String>,
    /// The toggles' names.
    #[serde(default)]
    pub(crate) toggles: IndexMap<String, serde_yaml::Value>,
    /// `serial`: a number of hosts or a percentage, as written.
    #[serde(default, deserialize_with = "scalar_text")]
    pub(crate) serial: Option<String>,
    /// `max_fail_percentage`.
    pub(crate) max_fail_percentage: Option<u8>,
}

/// A YAML scalar (`2`, `25%`) as its text.
fn scalar_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    use serde::Deserialize;
    Ok(match Option::<serde_yaml::Value>::deserialize(d)? {
        Some(serde_yaml::Value::Number(n)) => Some(n.to_string()),
        Some(serde_yaml::Value::String(s)) => Some(s),
        _ => None,
    })
}

/// deploy.yml's defaults under `root`, leniently: a file that does not
/// parse gives none (loading the project then says what is wrong).
pub(crate) fn defaults_in(root: &Path) -> Defaults {
    std::fs::read_to_string(root.join("deploy.yml"))
        .ok()
        .and_then(|t| serde_yaml::from_str::<Defaults>(&t).ok())
        .unwrap_or_default()
}

/// The project root: the nearest directory from `start` upwards holding
/// deploy.yml, as git and cargo find theirs; `start` itself when none does.
pub(crate) fn find_root(start: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    abs.ancestors()
        .find(|d| d.join("deploy.yml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| start.to_path_buf())
}

//! Reading the repository: deploy.yml and role.yml, the inventory, vars
//! files and age-encrypted secrets, merged into each host's variable layers.
//! Reads local files only; evaluating the variables is `render`'s work.

pub(crate) mod defaults;
pub(crate) mod inventory;
mod inventory_ini;
pub(crate) mod pattern;
pub(crate) mod project;
pub(crate) mod secrets;
pub(crate) mod system;
pub(crate) mod vault;
pub(crate) mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;
use serde_yaml::Mapping;

use crate::error::{Error, Result};
use crate::redact::Redactor;
use inventory::Inventory;
use project::Project;
use secrets::Keys;
use yaml::{yaml_to_value, Warning};

/// Where a variable was defined, for errors.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The file that set it (or a description like `-e`).
    pub(crate) file: PathBuf,
    /// Whether it came from an encrypted file (for `deploy vars --origin`, #13).
    #[allow(dead_code)]
    pub(crate) secret: bool,
}

/// One raw variable before resolution.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    /// The value as written.
    pub(crate) value: Value,
    /// Where it came from.
    pub(crate) origin: Origin,
}

/// One host's variables as written, merged by precedence (role defaults <
/// group_vars/all < parent group < child group < host_vars < `-e`).
#[derive(Debug, Clone)]
pub(crate) struct HostLayers {
    /// Groups the host belongs to (excluding `all` and `ungrouped`), sorted.
    pub(crate) groups: Vec<String>,
    /// Variable name -> the winning definition.
    pub(crate) vars: IndexMap<String, Raw>,
}

/// One vars file, parsed.
#[derive(Debug, Clone)]
pub(crate) struct VarsFile {
    path: PathBuf,
    vars: Mapping,
    secret: bool,
}

/// Everything read from the repository for one environment.
pub(crate) struct Loaded {
    /// deploy.yml and roles.
    pub(crate) project: Project,
    /// The inventory.
    pub(crate) inventory: Inventory,
    /// Non-fatal findings to show the user.
    pub(crate) warnings: Vec<Warning>,
    /// Secret values to mask in output.
    pub(crate) redactor: Redactor,
    /// The environment (group) being deployed.
    pub(crate) env_name: String,
    /// Hosts of the environment, in inventory order.
    pub(crate) hosts: Vec<String>,
    /// Variable layers of each host of the environment.
    pub(crate) layers: IndexMap<String, HostLayers>,
    /// The layers of any other host of the inventory, made when `hostvars`
    /// is asked for it (its secrets may need keys this deploy has not).
    pub(crate) others: Arc<LayerSource>,
    /// Some template, role.yml or vars file names a host fact: each host's
    /// facts are gathered before it is rendered.
    pub(crate) reads_facts: bool,
}

/// What a host's variable layers are made of.
#[derive(Debug)]
pub(crate) struct LayerSource {
    root: std::path::PathBuf,
    inv_path: std::path::PathBuf,
    inventory: Inventory,
    keys: Keys,
    redactor: Redactor,
    defaults: IndexMap<String, Raw>,
    role_vars: IndexMap<String, Raw>,
    extra: Vec<(String, serde_yaml::Value)>,
}

impl HostLayers {
    /// The layers a resource of `role` sees, when they differ from the
    /// host's: Ansible puts the task's own role's defaults above every other
    /// role's defaults, and its vars above every other role's vars, so a
    /// name two roles define reads as each role's own in its templates.
    /// None when no name of the role's was won by another role.
    pub(crate) fn for_role(&self, project: &Project, role: &str) -> Option<IndexMap<String, Raw>> {
        let own = project.roles.get(role)?;
        let of_others =
            |name: &str, file: &Path| project.roles.values().any(|r| r.name != role && r.dir.join(name) == file);
        let mut vars: Option<IndexMap<String, Raw>> = None;
        for (m, name) in [(&own.defaults, "defaults.yml"), (&own.vars, "vars.yml")] {
            let file = own.dir.join(name);
            for (k, v) in m {
                let Some(k) = k.as_str() else { continue };
                let Some(won) = self.vars.get(k) else { continue };
                if of_others(name, &won.origin.file) {
                    let raw = Raw { value: yaml_to_value(v), origin: Origin { file: file.clone(), secret: false } };
                    vars.get_or_insert_with(|| self.vars.clone()).insert(k.into(), raw);
                }
            }
        }
        vars
    }
}

impl LayerSource {
    /// The layers of `host`: role defaults, its groups' vars (inventory,
    /// then group_vars), its own, role vars, then -e.
    pub(crate) fn layers(
        &self,
        host: &str,
        group_cache: &mut IndexMap<String, Vec<VarsFile>>,
        warnings: &mut Vec<Warning>,
    ) -> Result<HostLayers> {
        let (root, inv_path, inventory) = (&self.root, &self.inv_path, &self.inventory);
        let groups = inventory.groups_of(host);
        let mut vars: IndexMap<String, Raw> = self.defaults.clone();
        for g in &groups {
            merge(&mut vars, &inventory.groups[g].vars, inv_path, false);
            if !group_cache.contains_key(g) {
                let files = vars_files(&root.join("inventory/group_vars"), g, &self.keys, &self.redactor, warnings)?;
                group_cache.insert(g.clone(), files);
            }
            for f in &group_cache[g] {
                merge(&mut vars, &f.vars, &f.path, f.secret);
            }
        }
        merge(&mut vars, &inventory.hosts[host], inv_path, false);
        for f in vars_files(&root.join("inventory/host_vars"), host, &self.keys, &self.redactor, warnings)? {
            merge(&mut vars, &f.vars, &f.path, f.secret);
        }
        for (k, v) in &self.role_vars {
            vars.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.extra {
            vars.insert(
                k.clone(),
                Raw { value: yaml_to_value(v), origin: Origin { file: "-e".into(), secret: false } },
            );
        }
        let mut names: Vec<String> = groups.into_iter().filter(|g| g != "all" && g != "ungrouped").collect();
        names.sort();
        Ok(HostLayers { groups: names, vars })
    }

    /// Every host of the inventory, in its order.
    pub(crate) fn hosts(&self) -> impl Iterator<Item = &String> {
        self.inventory.hosts.keys()
    }
}

impl Loaded {
    /// Load the repository at `root` for environment `env_name`.
    pub(crate) fn load(
        root: &Path,
        env_name: &str,
        keys: &Keys,
        extra: &[(String, serde_yaml::Value)],
    ) -> Result<Loaded> {
        let mut warnings = Vec::new();
        let project = Project::load(root, &mut warnings)?;
        let keys = &keys.with_default_identities(project.file.age_identity.under(root));
        let (inv_path, inventory, notes) = Inventory::read(root)?;
        warnings.extend(notes);
        let Some(hosts) = inventory.hosts_of(env_name) else {
            let groups: Vec<&String> = inventory.groups.keys().filter(|g| *g != "all").collect();
            return Err(Error::Usage(format!(
                "environment `{env_name}` is not a group in {}; groups: {}",
                inv_path.display(),
                groups.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ")
            )));
        };
        if hosts.is_empty() {
            return Err(Error::Usage(format!("group `{env_name}` in {} has no hosts", inv_path.display())));
        }
        check_patterns(&project, &inventory, root)?;
        let redactor = Redactor::default();
        crate::redact::install(&redactor);
        let source = LayerSource {
            root: root.to_path_buf(),
            inv_path,
            inventory: inventory.clone(),
            keys: keys.clone(),
            redactor: redactor.clone(),
            defaults: role_layer(&project, |r| (&r.defaults, "defaults.yml")),
            role_vars: role_layer(&project, |r| (&r.vars, "vars.yml")),
            extra: extra.to_vec(),
        };
        let mut group_cache: IndexMap<String, Vec<VarsFile>> = IndexMap::new();
        let mut layers = IndexMap::new();
        for host in &hosts {
            layers.insert(host.clone(), source.layers(host, &mut group_cache, &mut warnings)?);
        }
        let others = Arc::new(source);
        let reads_facts = reads_facts(root);
        Ok(Loaded {
            project,
            inventory,
            warnings,
            redactor,
            env_name: env_name.into(),
            hosts,
            layers,
            others,
            reads_facts,
        })
    }
}

/// The host facts deploy gathers (facts.sh), by their names in
/// `ansible_facts`; each is also the variable `ansible_NAME`.
pub(crate) const FACTS: [&str; 28] = [
    "distribution",
    "distribution_release",
    "distribution_version",
    "distribution_major_version",
    "os_family",
    "architecture",
    "machine",
    "system",
    "kernel",
    "nodename",
    "hostname",
    "fqdn",
    "domain",
    "memtotal_mb",
    "processor_count",
    "processor_cores",
    "processor_threads_per_core",
    "processor_vcpus",
    "all_ipv4_addresses",
    "default_ipv4",
    "user_id",
    "user_dir",
    "env",
    "service_mgr",
    "virtualization_type",
    "virtualization_role",
    "lsb",
    "date_time",
];

/// Whether any text file of the repository's roles, inventory or deploy.yml
/// names a host fact (`ansible_facts`, `ansible_distribution`, ...): then,
/// and only then, deploy gathers facts. Encrypted files are not read; a
/// fact used only there is an error naming it, as without facts.
fn reads_facts(root: &Path) -> bool {
    static RE: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        let names = FACTS.join("|");
        fancy_regex::Regex::new(&format!(r"\bansible_(?:facts|(?:{names})\b)")).expect("valid")
    });
    fn any(dir: &Path, re: &fancy_regex::Regex, depth: usize) -> bool {
        let Ok(rd) = std::fs::read_dir(dir) else { return false };
        rd.filter_map(|e| e.ok().map(|e| e.path())).any(|p| {
            if p.is_dir() {
                depth < 8 && any(&p, re, depth + 1)
            } else if p.extension().is_some_and(|e| e == "age") {
                false
            } else {
                std::fs::read_to_string(&p).is_ok_and(|t| re.is_match(&t).unwrap_or(false))
            }
        })
    }
    let deploy_yml = std::fs::read_to_string(root.join("deploy.yml")).unwrap_or_default();
    re.is_match(&deploy_yml).unwrap_or(false) || any(&root.join("roles"), re, 0) || any(&root.join("inventory"), re, 0)
}

/// A YAML scalar as text (`2`, `25%`).
pub(crate) fn scalar_text(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Every name in a phase's `hosts:` is a group or host of the inventory: a
/// misspelt group would otherwise quietly skip the phase everywhere.
fn check_patterns(project: &Project, inventory: &Inventory, root: &Path) -> Result<()> {
    for phase in &project.file.phases {
        if let Some(v) = &phase.serial {
            let t = scalar_text(v).unwrap_or_default();
            let ok = match t.strip_suffix('%') {
                Some(p) => p.trim().parse::<u8>().is_ok_and(|p| (1..=100).contains(&p)),
                None => t.trim().parse::<usize>().is_ok_and(|n| n > 0),
            };
            if !ok {
                return Err(Error::Usage(format!(
                    "{}: phase `{}`: serial `{t}` is not a number of hosts (3) or a percentage of them (25%)",
                    root.join("deploy.yml").display(),
                    phase.name
                )));
            }
        }
        let Some(pat) = &phase.hosts else { continue };
        for name in pat.names() {
            if name == "all" || name == "*" || inventory.groups.contains_key(name) || inventory.hosts.contains_key(name)
            {
                continue;
            }
            let mut groups: Vec<&str> =
                inventory.groups.keys().map(String::as_str).filter(|g| *g != "all" && *g != "ungrouped").collect();
            groups.sort();
            return Err(Error::Usage(format!(
                "{}: phase `{}`: hosts `{}`: `{name}` is neither a group nor a host of the inventory (groups: {})",
                root.join("deploy.yml").display(),
                phase.name,
                pat.text,
                groups.join(", ")
            )));
        }
    }
    Ok(())
}

impl Loaded {
    /// The hosts of this environment a `--limit` keeps: host or group
    /// names, `web*` globs, `prod:&db`, `!web2` (Ansible's patterns).
    pub(crate) fn limit(&self, limit: Option<&[String]>, flag: &str) -> Result<Vec<String>> {
        let Some(items) = limit else { return Ok(self.hosts.clone()) };
        let text = items.join(",");
        let pat =
            pattern::HostPattern::try_from(text.clone()).map_err(|m| Error::Usage(format!("{flag} {text}: {m}")))?;
        let groups = |h: &String| self.layers.get(h).map(|l| l.groups.clone()).unwrap_or_default();
        for name in pat.names().filter(|n| *n != "all") {
            let known = self.inventory.groups.contains_key(name) || self.hosts.iter().any(|h| pattern::glob(name, h));
            let globbed = name.contains('*') && self.inventory.groups.keys().any(|g| pattern::glob(name, g));
            if !known && !globbed {
                return Err(Error::Usage(format!(
                    "{flag} {name}: no such host in `{}` (hosts: {})",
                    self.env_name,
                    self.hosts.join(", ")
                )));
            }
        }
        Ok(self.hosts.iter().filter(|h| pat.matches(h, &groups(h))).cloned().collect())
    }

    /// Whether `phase` applies to `host` (its `hosts:` pattern).
    pub(crate) fn phase_applies(&self, phase: usize, host: &str) -> bool {
        let Some(pat) = &self.project.file.phases[phase].hosts else { return true };
        let groups = self.layers.get(host).map(|l| l.groups.as_slice()).unwrap_or(&[]);
        pat.matches(host, groups)
    }
}

/// Every role's defaults, or every role's vars, as one layer, in phase
/// order (later roles override earlier ones): Ansible gives a play's hosts
/// the defaults and vars of all its roles. A role's own are put back on
/// top for its resources by `HostLayers::for_role`.
fn role_layer(
    project: &Project,
    pick: impl Fn(&crate::load::project::Role) -> (&Mapping, &str),
) -> IndexMap<String, Raw> {
    let mut out: IndexMap<String, Raw> = IndexMap::new();
    for role in project.roles.values() {
        let (m, name) = pick(role);
        let file = role.dir.join(name);
        for (k, v) in m {
            if let Some(k) = k.as_str() {
                out.insert(
                    k.into(),
                    Raw { value: yaml_to_value(v), origin: Origin { file: file.clone(), secret: false } },
                );
            }
        }
    }
    out
}

fn merge(layers: &mut IndexMap<String, Raw>, m: &Mapping, file: &Path, secret: bool) {
    for (k, v) in m {
        if let Some(k) = k.as_str() {
            layers.insert(k.into(), Raw { value: yaml_to_value(v), origin: Origin { file: file.into(), secret } });
        }
    }
}

/// The vars files for a group or host: NAME.yml / NAME.yaml / NAME.age, or
/// every *.yml, *.yaml, *.age in NAME/ in name order.
fn vars_files(
    dir: &Path,
    name: &str,
    keys: &Keys,
    redactor: &Redactor,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<VarsFile>> {
    let mut paths = Vec::new();
    for ext in ["yml", "yaml", "age"] {
        let p = dir.join(format!("{name}.{ext}"));
        if p.is_file() {
            paths.push(p);
        }
    }
    let sub = dir.join(name);
    if sub.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&sub)
            .map_err(|e| Error::io(&sub, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml" | "age")))
            .collect();
        entries.sort();
        paths.extend(entries);
    }
    let mut out = Vec::new();
    for path in paths {
        let secret = path.extension().is_some_and(|e| e == "age");
        let text = if secret {
            let bytes = keys.decrypt(&path)?;
            String::from_utf8(bytes).map_err(|_| Error::invalid(&path, "decrypted content is not UTF-8 YAML"))?
        } else {
            yaml::read_text(&path)?
        };
        let (text, notes) = yaml::as_ansible_reads_it(&path, &text);
        warnings.extend(notes);
        let value: serde_yaml::Value = if secret {
            // Parse errors of decrypted text must not quote the text itself.
            serde_yaml::from_str(&text).map_err(|e| {
                let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
                Error::Yaml {
                    path: path.clone(),
                    line,
                    column,
                    message: "decrypted content is not valid YAML (run `deploy secrets edit` to fix it)".into(),
                }
            })?
        } else {
            yaml::parse(&path, &text)?
        };
        let vars = match value {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => Mapping::new(),
            _ => return Err(Error::invalid(&path, "a vars file must be a mapping of variable names to values")),
        };
        if secret {
            register_secrets(redactor, &serde_yaml::Value::Mapping(vars.clone()));
        }
        out.push(VarsFile { path, vars, secret });
    }
    Ok(out)
}

fn register_secrets(r: &Redactor, v: &serde_yaml::Value) {
    match v {
        serde_yaml::Value::String(s) => r.add(s),
        serde_yaml::Value::Number(n) => r.add(&n.to_string()),
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|x| register_secrets(r, x)),
        serde_yaml::Value::Mapping(m) => m.values().for_each(|x| register_secrets(r, x)),
        serde_yaml::Value::Tagged(t) => register_secrets(r, &t.value),
        _ => {}
    }
}

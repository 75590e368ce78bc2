//! Load a repository (deploy.yml, inventory, vars, secrets) and render, per
//! host, the desired state: every managed path with its bytes, hash and
//! metadata. Pure: reads local files only, never touches a host.

pub mod pyfmt;
pub mod template;
pub mod vars;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::{Environment, Value};
use serde::Serialize;
use serde_yaml::Mapping;

use crate::error::{Error, Result};
use crate::load::inventory::Inventory;
use crate::load::project::{check_dest, Id, Project};
use crate::redact::Redactor;
use crate::load::secrets::Keys;
use crate::render::vars::{yaml_to_value, AllHostVars, HostVars, Origin, Raw, Shared};
use crate::load::yaml::Warning;

/// Where a host records the state of each toggle (written through the
/// journal, so a revert restores it with everything else).
pub const TOGGLE_DIR: &str = "/var/lib/deploy/toggles";

/// One vars file, parsed.
#[derive(Debug, Clone)]
struct VarsFile {
    path: PathBuf,
    vars: Mapping,
    secret: bool,
}

/// Everything read from the repository for one environment.
pub struct Loaded {
    /// deploy.yml and roles.
    pub project: Project,
    /// The inventory.
    pub inventory: Inventory,
    /// Non-fatal findings to show the user.
    pub warnings: Vec<Warning>,
    /// Secret values to mask in output.
    pub redactor: Redactor,
    /// The environment (group) being deployed.
    pub env_name: String,
    /// Hosts of the environment, in inventory order.
    pub hosts: Vec<String>,
    /// Variables of each host of the environment.
    pub vars: IndexMap<String, Arc<HostVars>>,
    role_envs: IndexMap<String, Arc<Environment<'static>>>,
}

/// How to reach a host, from its variables.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Connection {
    /// ssh destination (ansible_host, else the inventory name).
    pub address: String,
    /// ansible_port.
    pub port: Option<u16>,
    /// ansible_user.
    pub user: Option<String>,
    /// ansible_ssh_private_key_file.
    pub key_file: Option<PathBuf>,
    /// deploy_ssh_config: an ssh_config file passed with -F.
    pub ssh_config: Option<PathBuf>,
    /// deploy_fallback_port: where sshd listens until this deploy moves it
    /// to ansible_port. Tried only when nothing listens on ansible_port.
    pub fallback_port: Option<u16>,
}

/// A file as it should be on the host.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredFile {
    /// Absolute destination path.
    pub dest: String,
    /// Role that declares it.
    pub role: String,
    /// Template or source it came from (for messages).
    pub source: String,
    /// Rendered bytes.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`, hex.
    pub sha256: String,
    /// Owner, if declared.
    pub owner: Option<Id>,
    /// Group, if declared.
    pub group: Option<Id>,
    /// Mode, if declared.
    pub mode: Option<u32>,
    /// Validation command (`%s` = the new file).
    pub validate: Option<String>,
    /// Content never shown.
    pub secret: bool,
    /// Never overwritten once present.
    pub preserve: bool,
    /// Command run on the host after it changed.
    pub on_change: Option<String>,
    /// Index of the phase of its role.
    pub phase: usize,
    /// Part of this run (--role); unselected resources only inform compose analysis.
    pub selected: bool,
}

/// A directory as it should be on the host.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredDir {
    /// Absolute path.
    pub path: String,
    /// Role that declares it.
    pub role: String,
    /// Owner, if declared.
    pub owner: Option<Id>,
    /// Group, if declared.
    pub group: Option<Id>,
    /// Mode, if declared.
    pub mode: Option<u32>,
    /// Index of the phase of its role.
    pub phase: usize,
    /// Part of this run (--role).
    pub selected: bool,
}

/// A service of a compose project and what it reads.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredService {
    /// Service name.
    pub name: String,
    /// Hash of its definition (after merging the compose files).
    pub definition_sha: String,
    /// Managed files it reads (env files, bind-mounted files, the interpolation .env).
    pub inputs: Vec<String>,
    /// The compose file defining it.
    pub file: String,
}

/// A mounted file reloaded in place.
#[derive(Debug, Clone, Serialize)]
pub struct Reload {
    /// The file.
    pub file: String,
    /// The service.
    pub service: String,
    /// Command run in its container.
    pub command: Vec<String>,
}

/// A compose project on a host.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredCompose {
    /// Project name.
    pub project: String,
    /// Project directory.
    pub dir: String,
    /// Declaring role.
    pub role: String,
    /// Phase of that role.
    pub phase: usize,
    /// Compose files, absolute.
    pub files: Vec<String>,
    /// The generated label override file.
    pub override_path: String,
    /// Services.
    pub services: Vec<DesiredService>,
    /// Reload triggers.
    pub reloads: Vec<Reload>,
    /// Seconds services may take to become healthy.
    pub health_timeout: u64,
}

/// What a health check probes.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum CheckKind {
    /// HTTP status of a URL, fetched on the host.
    Http { url: String, status: u16 },
    /// A TCP connection.
    Tcp { address: String },
    /// A command on the host.
    Command { command: String },
}

/// A health check gating a phase.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredCheck {
    /// Declaring role.
    pub role: String,
    /// Its phase.
    pub phase: usize,
    /// Part of this run.
    pub selected: bool,
    /// What it checks.
    pub kind: CheckKind,
    /// Seconds it may take.
    pub timeout: u64,
}

/// A pre-flight check of a role, run before any of its changes.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredPreflight {
    /// Declaring role.
    pub role: String,
    /// What it checks.
    pub kind: PreflightKind,
}

/// What a pre-flight check looks at.
#[derive(Debug, Clone, Serialize)]
pub enum PreflightKind {
    /// An expression over the host's variables and the connection facts,
    /// evaluated once those facts are known (after the probe).
    That {
        /// The expression, as written.
        expr: String,
        /// Its message template, as written.
        msg: Option<String>,
    },
    /// A command on the host that must exit 0.
    Command {
        /// The rendered command.
        command: String,
    },
    /// A Compose service that must be healthy when it exists.
    Healthy {
        /// Compose project.
        project: String,
        /// Service.
        service: String,
    },
}

/// Everything one host should have.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredHost {
    /// Inventory name.
    pub host: String,
    /// How to reach it.
    pub connection: Connection,
    /// Directories, parents before children.
    pub dirs: Vec<DesiredDir>,
    /// Files.
    pub files: Vec<DesiredFile>,
    /// Paths that must not exist: path, role, phase, selected.
    pub absent: Vec<(String, String, usize, bool)>,
    /// Compose projects.
    pub compose: Vec<DesiredCompose>,
    /// Health checks.
    pub checks: Vec<DesiredCheck>,
    /// Findings worth a warning.
    pub warnings: Vec<String>,
    /// Unmanaged paths the probe also reports (toggle state files).
    pub extra_probe: Vec<String>,
    /// Pre-flight checks of the selected roles.
    pub preflight: Vec<DesiredPreflight>,
    /// Where a toggle's confirmation connects (its `confirm_via`), when not
    /// the usual destination.
    pub confirm_via: Option<String>,
}

impl DesiredHost {
    /// The desired file at `path`, if managed.
    pub fn file(&self, path: &str) -> Option<&DesiredFile> {
        self.files.iter().find(|f| f.dest == path)
    }
}

impl Loaded {
    /// Load the repository at `root` for environment `env_name`.
    pub fn load(root: &Path, env_name: &str, keys: &Keys, extra: &[(String, String)]) -> Result<Loaded> {
        let mut warnings = Vec::new();
        let project = Project::load(root, &mut warnings)?;
        let inv_path = root.join("inventory/hosts.yml");
        let inv_path = if inv_path.exists() { inv_path } else { root.join("inventory/hosts.yaml") };
        let inv_text = crate::load::yaml::read_text(&inv_path)?;
        warnings.extend(crate::load::yaml::yaml11_bool_warnings(&inv_path, &inv_text));
        let inventory = Inventory::parse(&inv_path, &inv_text)?;
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
        let redactor = Redactor::default();
        let mut shared = Shared { managed: project.file.ansible_managed.clone(), ..Default::default() };
        let groups_value: IndexMap<String, Vec<String>> =
            inventory.groups.keys().map(|g| (g.clone(), inventory.hosts_of(g).unwrap_or_default())).collect();
        shared.groups = Value::from_serialize(&groups_value);
        let shared = Arc::new(shared);
        let var_env = Arc::new(crate::render::template::environment(None));

        // role defaults, in phase order: later roles override earlier ones
        let mut defaults: IndexMap<String, Raw> = IndexMap::new();
        for role in project.roles.values() {
            let file = role.dir.join("defaults.yml");
            for (k, v) in &role.defaults {
                if let Some(k) = k.as_str() {
                    defaults.insert(
                        k.into(),
                        Raw { value: yaml_to_value(v), origin: Origin { file: file.clone(), secret: false } },
                    );
                }
            }
        }

        let mut group_cache: IndexMap<String, Vec<VarsFile>> = IndexMap::new();
        let mut vars = IndexMap::new();
        for host in &hosts {
            let groups = inventory.groups_of(host);
            let mut layers: IndexMap<String, Raw> = defaults.clone();
            for g in &groups {
                let inline = &inventory.groups[g].vars;
                merge(&mut layers, inline, &inv_path, false);
                if !group_cache.contains_key(g) {
                    let files = vars_files(&root.join("inventory/group_vars"), g, keys, &redactor, &mut warnings)?;
                    group_cache.insert(g.clone(), files);
                }
                for f in &group_cache[g] {
                    merge(&mut layers, &f.vars, &f.path, f.secret);
                }
            }
            merge(&mut layers, &inventory.hosts[host], &inv_path, false);
            for f in vars_files(&root.join("inventory/host_vars"), host, keys, &redactor, &mut warnings)? {
                merge(&mut layers, &f.vars, &f.path, f.secret);
            }
            for (k, v) in extra {
                layers.insert(
                    k.clone(),
                    Raw { value: Value::from(v.clone()), origin: Origin { file: "-e".into(), secret: false } },
                );
            }
            let mut names: Vec<String> = groups.into_iter().filter(|g| g != "all" && g != "ungrouped").collect();
            names.sort();
            vars.insert(
                host.clone(),
                Arc::new(HostVars::new(host.clone(), names, layers, shared.clone(), var_env.clone())),
            );
        }
        let all = Value::from_object(AllHostVars(vars.clone()));
        let _ = shared.hostvars.set(all);

        let role_envs = project
            .roles
            .values()
            .map(|r| (r.name.clone(), Arc::new(crate::render::template::environment(Some(r.dir.join("templates"))))))
            .collect();
        Ok(Loaded { project, inventory, warnings, redactor, env_name: env_name.into(), hosts, vars, role_envs })
    }

    /// Render the desired state of `host`, for the roles selected (all when `None`).
    pub fn render_host(&self, host: &str, roles: Option<&[String]>) -> Result<DesiredHost> {
        self.render_host_with(host, roles, &[])
    }

    /// Render with toggle values layered on the host's variables.
    pub fn render_host_with(
        &self,
        host: &str,
        roles: Option<&[String]>,
        overrides: &[(String, Value)],
    ) -> Result<DesiredHost> {
        let base =
            self.vars.get(host).ok_or_else(|| Error::Usage(format!("host `{host}` is not in `{}`", self.env_name)))?;
        let owned;
        let hv = if overrides.is_empty() {
            base
        } else {
            owned = Arc::new(base.with_overrides(overrides));
            &owned
        };
        let ctx = Value::from_dyn_object(hv.clone());
        let connection = self.connection(host, hv, &ctx)?;
        let mut out = DesiredHost {
            host: host.into(),
            connection,
            dirs: vec![],
            files: vec![],
            absent: vec![],
            compose: vec![],
            checks: vec![],
            warnings: vec![],
            extra_probe: self.project.file.toggles.keys().map(|t| format!("{TOGGLE_DIR}/{t}")).collect(),
            preflight: vec![],
            confirm_via: None,
        };
        let mut seen: IndexMap<String, String> = IndexMap::new();
        let mut compose_specs = Vec::new();
        for (phase_idx, phase) in self.project.file.phases.iter().enumerate() {
            for role_name in &phase.roles {
                // Every role is rendered: a compose project must know what its
                // services read even when --role selects only some roles.
                let selected = roles.is_none_or(|rs| rs.contains(role_name));
                let role = &self.project.roles[role_name];
                let env = &self.role_envs[role_name];
                let spec_file = &role.spec_path;
                let mut claim = |path: &str| -> Result<()> {
                    check_dest(path).map_err(|m| Error::invalid(spec_file, m))?;
                    if let Some(other) = seen.insert(path.to_string(), role_name.clone()) {
                        return Err(Error::invalid(
                            spec_file,
                            format!("path {path} is also managed by role `{other}`; one path, one owner"),
                        ));
                    }
                    Ok(())
                };
                for d in &role.spec.dirs {
                    let path = self.render_small(host, hv, env, spec_file, &d.path, &ctx)?;
                    claim(&path)?;
                    out.dirs.push(DesiredDir {
                        path,
                        role: role_name.clone(),
                        owner: d.owner.clone(),
                        group: d.group.clone(),
                        mode: d.mode.map(|m| m.0),
                        phase: phase_idx,
                        selected,
                    });
                }
                for f in &role.spec.files {
                    let dest = self.render_small(host, hv, env, spec_file, &f.dest, &ctx)?;
                    claim(&dest)?;
                    let (bytes, source) = if let Some(t) = &f.template {
                        let path = role.dir.join("templates").join(t);
                        let raw = std::fs::read(&path).map_err(|e| {
                            Error::invalid(spec_file, format!("file {dest}: template {}: {e}", path.display()))
                        })?;
                        let src = crate::render::template::check_source(&path, &raw)?;
                        let text = crate::render::template::render_str(env, t, &src, &ctx)
                            .map_err(|e| self.render_error(host, hv, &path, &e, env, &src, &ctx))?;
                        (text.into_bytes(), format!("{role_name}/templates/{t}"))
                    } else if let Some(s) = &f.src {
                        let path = role.dir.join("files").join(s);
                        let raw = std::fs::read(&path).map_err(|e| {
                            Error::invalid(spec_file, format!("file {dest}: source {}: {e}", path.display()))
                        })?;
                        (raw, format!("{role_name}/files/{s}"))
                    } else {
                        let c = f.content.as_deref().unwrap_or_default();
                        let text = crate::render::template::render_str(env, &format!("{dest} (content)"), c, &ctx)
                            .map_err(|e| self.render_error(host, hv, spec_file, &e, env, c, &ctx))?;
                        (text.into_bytes(), format!("{role_name}/role.yml"))
                    };
                    let validate = match &f.validate {
                        Some(v) => Some(self.render_small(host, hv, env, spec_file, v, &ctx)?),
                        None => None,
                    };
                    let on_change = match &f.on_change {
                        Some(v) => Some(self.render_small(host, hv, env, spec_file, v, &ctx)?),
                        None => None,
                    };
                    if on_change.as_deref().is_some_and(|c| c.contains('\n')) {
                        return Err(Error::invalid(spec_file, format!("file {dest}: on_change must be one line")));
                    }
                    out.files.push(DesiredFile {
                        sha256: sha256_hex(&bytes),
                        bytes,
                        dest,
                        role: role_name.clone(),
                        source,
                        owner: f.owner.clone(),
                        group: f.group.clone(),
                        mode: f.mode.map(|m| m.0),
                        validate,
                        secret: f.secret,
                        preserve: f.preserve,
                        on_change,
                        phase: phase_idx,
                        selected,
                    });
                }
                for a in &role.spec.absent {
                    let path = self.render_small(host, hv, env, spec_file, a, &ctx)?;
                    claim(&path)?;
                    out.absent.push((path, role_name.clone(), phase_idx, selected));
                }
                for p in role.spec.preflight.iter().filter(|_| selected) {
                    let kinds: Vec<PreflightKind> = if let Some(e) = &p.that {
                        vec![PreflightKind::That { expr: e.clone(), msg: p.msg.clone() }]
                    } else if let Some(c) = &p.command {
                        vec![PreflightKind::Command { command: self.render_small(host, hv, env, spec_file, c, &ctx)? }]
                    } else {
                        p.healthy
                            .iter()
                            .map(|s| {
                                let (project, service) = s.split_once('/').unwrap_or_default();
                                PreflightKind::Healthy { project: project.into(), service: service.into() }
                            })
                            .collect()
                    };
                    out.preflight
                        .extend(kinds.into_iter().map(|kind| DesiredPreflight { role: role_name.clone(), kind }));
                }
                for c in &role.spec.compose {
                    compose_specs.push((c.clone(), role_name.clone(), phase_idx, spec_file.clone()));
                }
                for h in &role.spec.health {
                    let r = |s: &str| self.render_small(host, hv, env, spec_file, s, &ctx);
                    let kind = if let Some(u) = &h.http {
                        CheckKind::Http { url: r(u)?, status: h.status.unwrap_or(200) }
                    } else if let Some(a) = &h.tcp {
                        CheckKind::Tcp { address: r(a)? }
                    } else {
                        CheckKind::Command { command: r(h.command.as_deref().unwrap_or_default())? }
                    };
                    if let CheckKind::Http { url, .. } = &kind {
                        if url.contains("//localhost") {
                            out.warnings.push(format!("{}: health check {url} targets `localhost`, which may resolve to ::1 first (IPv6); use 127.0.0.1", spec_file.display()));
                        }
                    }
                    out.checks.push(DesiredCheck {
                        role: role_name.clone(),
                        phase: phase_idx,
                        selected,
                        kind,
                        timeout: h.timeout.0,
                    });
                }
            }
        }
        for (spec, role, phase, spec_file) in compose_specs {
            let c = self.compose_project(host, hv, &ctx, &out, &spec, &role, phase, &spec_file)?;
            out.warnings.extend(c.1);
            out.compose.push(c.0);
        }
        // parents before children, so one pass of mkdir works
        out.dirs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn compose_project(
        &self,
        host: &str,
        hv: &Arc<HostVars>,
        ctx: &Value,
        out: &DesiredHost,
        spec: &crate::load::project::ComposeSpec,
        role: &str,
        phase: usize,
        spec_file: &Path,
    ) -> Result<(DesiredCompose, Vec<String>)> {
        let env = &self.role_envs[role];
        let r = |s: &str| self.render_small(host, hv, env, spec_file, s, ctx);
        let dir = r(&spec.dir)?;
        let project = r(&spec.project)?;
        let bad = |m: String| Error::Render {
            host: host.into(),
            file: spec_file.into(),
            line: None,
            message: format!("compose project `{project}`: {m}"),
        };
        let abs =
            |p: &str| if p.starts_with('/') { p.to_string() } else { format!("{}/{}", dir.trim_end_matches('/'), p) };
        let mut files = Vec::new();
        let mut contents = Vec::new();
        for f in &spec.files {
            let path = abs(&r(f)?);
            let Some(df) = out.file(&path) else {
                return Err(bad(format!("compose file {path} is not managed by any role; add it to a role's files")));
            };
            contents.push((path.clone(), df.bytes.clone()));
            files.push(path);
        }
        let services = crate::plan::compose::analyze(&dir, &contents).map_err(bad)?;
        let dotenv_path = abs(&spec.env_file.as_deref().map(&r).transpose()?.unwrap_or_else(|| ".env".into()));
        let dotenv = out.file(&dotenv_path).map(|f| crate::plan::compose::parse_dotenv(&f.bytes));
        let mut warnings = Vec::new();
        let reloads: Vec<Reload> = spec
            .reload
            .iter()
            .map(|x| Ok(Reload { file: r(&x.file)?, service: x.service.clone(), command: x.command.clone() }))
            .collect::<Result<_>>()?;
        let mut desired = Vec::new();
        for s in &services {
            for v in &s.vars {
                let defined = dotenv.as_ref().is_some_and(|d| d.contains_key(v));
                if !defined {
                    return Err(Error::Render {
                        host: host.into(),
                        file: s.file.clone().into(),
                        line: None,
                        message: format!(
                            "service `{}` of compose project `{project}` interpolates ${{{v}}}, which no env source defines ({}); define {v} there, or write ${{{v}:-default}}",
                            s.name,
                            if dotenv.is_some() { format!("not in {dotenv_path}") } else { format!("{dotenv_path} is not managed by any role") }
                        ),
                    });
                }
            }
            if s.healthcheck_localhost {
                warnings.push(format!("{}: the healthcheck of service `{}` targets `localhost`, which resolves to ::1 first in Alpine-based images; use 127.0.0.1", s.file, s.name));
            }
            let mut inputs: Vec<String> = Vec::new();
            for e in &s.env_files {
                if out.file(e).is_some() {
                    inputs.push(e.clone());
                } else {
                    warnings.push(format!("{}: env file {e} of service `{}` is not managed by deploy; changes to it will not recreate the service", s.file, s.name));
                }
            }
            for b in &s.binds {
                for f in &out.files {
                    if (f.dest == *b || f.dest.starts_with(&format!("{b}/")))
                        && !reloads.iter().any(|x| x.file == f.dest && x.service == s.name)
                    {
                        inputs.push(f.dest.clone());
                    }
                }
            }
            if !s.vars.is_empty() && dotenv.is_some() {
                inputs.push(dotenv_path.clone());
            }
            inputs.sort();
            inputs.dedup();
            for i in &inputs {
                if let Some(f) = out.file(i) {
                    if f.phase > phase {
                        return Err(bad(format!("service `{}` reads {i}, which role `{}` writes in a later phase than the project's; move them into the same phase", s.name, f.role)));
                    }
                }
            }
            let def = serde_json::to_string(&s.definition).unwrap_or_default();
            desired.push(DesiredService {
                name: s.name.clone(),
                definition_sha: sha256_hex(def.as_bytes()),
                inputs,
                file: s.file.clone(),
            });
        }
        for x in &reloads {
            let Some(svc) = services.iter().find(|s| s.name == x.service) else {
                return Err(bad(format!(
                    "reload trigger names service `{}`, which the compose files do not define",
                    x.service
                )));
            };
            // A single-file bind mount pins the file's inode: deploy replaces
            // files by rename, so the container would go on seeing the old file
            // and the reload would re-read stale config.
            if svc.binds.contains(&x.file) {
                let dir = x.file.rsplit_once('/').map(|d| d.0).unwrap_or("/");
                return Err(bad(format!(
                    "service `{}` mounts {} as a single file, so a reload in place would not see the new content (files are replaced by rename, and a file bind mount keeps the old inode); mount its directory instead ({dir}:...), or drop the reload trigger to have the service recreated",
                    x.service, x.file
                )));
            }
            if !svc.binds.iter().any(|b| x.file.starts_with(&format!("{b}/"))) {
                return Err(bad(format!(
                    "reload trigger: service `{}` does not mount {} (no bind mount covers it)",
                    x.service, x.file
                )));
            }
        }
        let override_path = format!("{}/.deploy-{project}.override.yml", dir.trim_end_matches('/'));
        Ok((
            DesiredCompose {
                project,
                dir,
                role: role.into(),
                phase,
                files,
                override_path,
                services: desired,
                reloads,
                health_timeout: spec.health_timeout.0,
            },
            warnings,
        ))
    }

    /// The host's variables with `overrides` (toggled values, connection
    /// facts) layered on, for evaluating templates outside a role's files.
    fn vars_with(&self, host: &str, overrides: &[(String, Value)]) -> Result<Arc<HostVars>> {
        let base =
            self.vars.get(host).ok_or_else(|| Error::Usage(format!("host `{host}` is not in `{}`", self.env_name)))?;
        Ok(if overrides.is_empty() { base.clone() } else { Arc::new(base.with_overrides(overrides)) })
    }

    /// Render a one-line template of deploy.yml (a toggle's confirm_via)
    /// for `host`.
    pub fn render_line(&self, host: &str, overrides: &[(String, Value)], s: &str) -> Result<String> {
        let hv = self.vars_with(host, overrides)?;
        let ctx = Value::from_dyn_object(hv.clone());
        let env = crate::render::template::environment(None);
        let file = self.project.root.join("deploy.yml");
        self.render_small(host, &hv, &env, &file, s, &ctx)
    }

    /// Evaluate the `that` pre-flight checks of `desired` with `overrides`
    /// (toggled values and the connection facts) on the host's variables,
    /// for the roles in `roles`. Returns "role: message" for each that fails.
    pub fn failed_assertions(
        &self,
        desired: &DesiredHost,
        overrides: &[(String, Value)],
        roles: &[&str],
    ) -> Result<Vec<String>> {
        let host = desired.host.as_str();
        let hv = self.vars_with(host, overrides)?;
        let ctx = Value::from_dyn_object(hv.clone());
        let mut failed = Vec::new();
        for p in desired.preflight.iter().filter(|p| roles.contains(&p.role.as_str())) {
            let PreflightKind::That { expr, msg } = &p.kind else { continue };
            let env = &self.role_envs[&p.role];
            let spec_file = &self.project.roles[&p.role].spec_path;
            let ok = env
                .compile_expression(expr)
                .and_then(|e| e.eval(&ctx))
                .map_err(|e| self.render_error(host, &hv, spec_file, &e, env, expr, &ctx))?;
            if !ok.is_true() {
                let text = match msg {
                    Some(m) => self.render_small(host, &hv, env, spec_file, m, &ctx)?,
                    None => format!("`{expr}` is false"),
                };
                failed.push(format!("{}: {text}", p.role));
            }
        }
        Ok(failed)
    }

    fn render_small(
        &self,
        host: &str,
        hv: &Arc<HostVars>,
        env: &Environment<'static>,
        file: &Path,
        s: &str,
        ctx: &Value,
    ) -> Result<String> {
        if !s.contains("{{") && !s.contains("{%") {
            return Ok(s.to_string());
        }
        env.render_str(s, ctx).map_err(|e| self.render_error(host, hv, file, &e, env, s, ctx))
    }

    fn connection(&self, host: &str, hv: &Arc<HostVars>, ctx: &Value) -> Result<Connection> {
        let get = |name: &str| -> Result<Option<String>> {
            if hv.raw(name).is_none() {
                return Ok(None);
            }
            match ctx.get_attr(name) {
                Ok(v) if !v.is_undefined() && !v.is_none() => Ok(Some(crate::render::template::py_str(&v))),
                _ => Err(self.resolve_error(host, hv, name)),
            }
        };
        let root = &self.project.root;
        let port_var = |name: &str| -> Result<Option<u16>> {
            match get(name)? {
                Some(p) => Ok(Some(p.parse::<u16>().map_err(|_| Error::Render {
                    host: host.into(),
                    file: "inventory".into(),
                    line: None,
                    message: format!("{name} `{p}` is not a port number"),
                })?)),
                None => Ok(None),
            }
        };
        let port = port_var("ansible_port")?;
        let fallback_port = port_var("deploy_fallback_port")?;
        Ok(Connection {
            address: get("ansible_host")?.unwrap_or_else(|| host.to_string()),
            port,
            user: get("ansible_user")?,
            key_file: get("ansible_ssh_private_key_file")?.map(|p| root.join(p)),
            ssh_config: get("deploy_ssh_config")?.map(|p| root.join(p)),
            fallback_port,
        })
    }

    fn resolve_error(&self, host: &str, hv: &Arc<HostVars>, name: &str) -> Error {
        if let Some(r) = hv.error.lock().unwrap().take() {
            return Error::Render {
                host: host.into(),
                file: r.file,
                line: None,
                message: format!("variable `{}`: {}", r.var, r.message),
            };
        }
        Error::Render {
            host: host.into(),
            file: "inventory".into(),
            line: None,
            message: format!("variable `{name}` is undefined"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn render_error(
        &self,
        host: &str,
        hv: &Arc<HostVars>,
        file: &Path,
        e: &minijinja::Error,
        env: &Environment<'static>,
        src: &str,
        ctx: &Value,
    ) -> Error {
        // A failure inside a variable's own template is the root cause; name it.
        if let Some(r) = hv.error.lock().unwrap().take() {
            return Error::Render {
                host: host.into(),
                file: file.into(),
                line: e.line(),
                message: format!(
                    "variable `{}` (set in {}) cannot be resolved: {}",
                    r.var,
                    r.file.display(),
                    r.message
                ),
            };
        }
        Error::Render {
            host: host.into(),
            file: file.into(),
            line: e.line(),
            message: describe_mj_error(e, Some((env, src, ctx))),
        }
    }
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
            crate::load::yaml::read_text(&path)?
        };
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
            warnings.extend(crate::load::yaml::yaml11_bool_warnings(&path, &text));
            crate::load::yaml::parse(&path, &text)?
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

/// sha256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The variables a template uses that the context does not define.
pub fn undefined_in(env: &Environment<'static>, src: &str, ctx: &Value) -> Vec<String> {
    let Ok(t) = env.template_from_str(src) else { return Vec::new() };
    let mut names: Vec<String> = t.undeclared_variables(true).into_iter().collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let mut cur = ctx.clone();
        let mut path = Vec::new();
        for seg in n.split('.') {
            path.push(seg);
            let next = cur.get_attr(seg).unwrap_or(Value::UNDEFINED);
            if next.is_undefined() {
                if env.globals().any(|(k, _)| k == seg) && path.len() == 1 {
                    break;
                }
                out.push(path.join("."));
                break;
            }
            cur = next;
        }
    }
    out.dedup();
    out
}

/// A minijinja error in words, naming the undefined variable when there is one.
pub fn describe_mj_error(e: &minijinja::Error, source: Option<(&Environment<'static>, &str, &Value)>) -> String {
    let mut msg = match e.kind() {
        minijinja::ErrorKind::UndefinedError => {
            let names = source.map(|(env, src, ctx)| undefined_in(env, src, ctx)).unwrap_or_default();
            let line_text = source.zip(e.line()).and_then(|((_, src, _), l)| src.lines().nth(l.saturating_sub(1)));
            let on_line: Vec<&String> = names
                .iter()
                .filter(|n| line_text.is_some_and(|t| t.contains(n.split('.').next().unwrap_or(n))))
                .collect();
            let pick: Vec<&String> = if on_line.is_empty() { names.iter().collect() } else { on_line };
            match pick.as_slice() {
                [] => e.detail().unwrap_or("undefined variable").to_string(),
                [one] => format!("undefined variable `{one}`"),
                many => format!(
                    "undefined variables {}",
                    many.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        _ => match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        },
    };
    if matches!(e.kind(), minijinja::ErrorKind::UndefinedError) {
        msg.push_str("; define it in group_vars/host_vars or role defaults, or use `| default(...)`");
    }
    msg
}

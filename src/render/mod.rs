//! Rendering: per host, the desired state (every managed path with its
//! bytes, hash and metadata) from the loaded repository. Pure: reads role
//! files only, never touches a host.

pub(crate) mod compose;
pub(crate) mod desired;
pub(crate) mod errors;
pub(crate) mod filters;
pub(crate) mod pyfmt;
pub(crate) mod template;
pub(crate) mod vars;

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::{Environment, Value};

use crate::error::{Error, Result};
use crate::load::project::check_dest;
use crate::load::secrets::Keys;
use crate::load::Loaded;
use crate::util::sha256_hex;
pub(crate) use desired::*;
use errors::describe_mj_error;
use vars::{AllHostVars, HostVars, Shared};

/// A loaded repository with each host's variables ready to evaluate and a
/// template environment per role.
pub(crate) struct Renderer {
    loaded: Loaded,
    /// Variables of each host of the environment.
    pub(crate) vars: IndexMap<String, Arc<HostVars>>,
    role_envs: IndexMap<String, Arc<Environment<'static>>>,
}

impl Deref for Renderer {
    type Target = Loaded;
    fn deref(&self) -> &Loaded {
        &self.loaded
    }
}

impl Renderer {
    /// Load the repository at `root` for environment `env_name`, ready to render.
    pub(crate) fn load(root: &Path, env_name: &str, keys: &Keys, extra: &[(String, String)]) -> Result<Renderer> {
        Ok(Renderer::new(Loaded::load(root, env_name, keys, extra)?))
    }

    /// Make each host's variables evaluable (`hostvars` and `groups` shared
    /// by all of them) and one template environment per role.
    pub(crate) fn new(loaded: Loaded) -> Renderer {
        let groups: IndexMap<String, Vec<String>> = loaded
            .inventory
            .groups
            .keys()
            .map(|g| (g.clone(), loaded.inventory.hosts_of(g).unwrap_or_default()))
            .collect();
        let shared = Arc::new(Shared {
            managed: loaded.project.file.ansible_managed.clone(),
            groups: Value::from_serialize(&groups),
            ..Default::default()
        });
        let var_env = Arc::new(template::environment(None));
        let vars: IndexMap<String, Arc<HostVars>> = loaded
            .layers
            .iter()
            .map(|(h, l)| {
                let hv = HostVars::new(h.clone(), l.groups.clone(), l.vars.clone(), shared.clone(), var_env.clone());
                (h.clone(), Arc::new(hv))
            })
            .collect();
        let _ = shared.hostvars.set(Value::from_object(AllHostVars(vars.clone())));
        let role_envs = loaded
            .project
            .roles
            .values()
            .map(|r| (r.name.clone(), Arc::new(template::environment(Some(r.dir.join("templates"))))))
            .collect();
        Renderer { loaded, vars, role_envs }
    }

    /// Render the desired state of `host`, for the roles selected (all when `None`).
    pub(crate) fn render_host(&self, host: &str, roles: Option<&[String]>) -> Result<DesiredHost> {
        self.render_host_with(host, roles, &[])
    }

    /// Render with toggle values layered on the host's variables.
    pub(crate) fn render_host_with(
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
        let services = crate::render::compose::analyze(&dir, &contents).map_err(bad)?;
        let dotenv_path = abs(&spec.env_file.as_deref().map(&r).transpose()?.unwrap_or_else(|| ".env".into()));
        let dotenv = out.file(&dotenv_path).map(|f| crate::render::compose::parse_dotenv(&f.bytes));
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
    pub(crate) fn render_line(&self, host: &str, overrides: &[(String, Value)], s: &str) -> Result<String> {
        let hv = self.vars_with(host, overrides)?;
        let ctx = Value::from_dyn_object(hv.clone());
        let env = crate::render::template::environment(None);
        let file = self.project.root.join("deploy.yml");
        self.render_small(host, &hv, &env, &file, s, &ctx)
    }

    /// Evaluate the `that` pre-flight checks of `desired` with `overrides`
    /// (toggled values and the connection facts) on the host's variables,
    /// for the roles in `roles`. Returns "role: message" for each that fails.
    pub(crate) fn failed_assertions(
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
                Ok(v) if !v.is_undefined() && !v.is_none() => Ok(Some(crate::render::pyfmt::py_str(&v))),
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

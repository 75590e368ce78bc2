//! Rendering: per host, the desired state (every managed path with its
//! bytes, hash and metadata) from the loaded repository. Pure: reads role
//! files only, never touches a host.

pub(crate) mod compose;
mod crypt;
pub(crate) mod dates;
pub(crate) mod desired;
pub(crate) mod errors;
pub(crate) mod filters;
mod filters_ansible;
mod filters_more;
mod ipaddr;
mod lookups;
mod mutable;
pub(crate) mod pyfmt;
mod pyyaml;
mod rewrite;
mod role;
mod role_compose;
mod scope;
pub(crate) mod sums;
pub(crate) mod system;
mod system_files;
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
use role::RoleScope;
use vars::{AllHostVars, HostVars, Shared};

/// A loaded repository with each host's variables ready to evaluate and a
/// template environment per role.
pub(crate) struct Renderer {
    loaded: Loaded,
    /// Variables of each host of the environment.
    pub(crate) vars: IndexMap<String, Arc<HostVars>>,
    /// A host's variables as one role's resources see them, where they
    /// differ from `vars` (its own defaults and vars over other roles').
    role_vars: IndexMap<(String, String), Arc<HostVars>>,
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
    pub(crate) fn load(
        root: &Path,
        env_name: &str,
        keys: &Keys,
        extra: &[(String, serde_yaml::Value)],
    ) -> Result<Renderer> {
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
            playbook_dir: std::fs::canonicalize(&loaded.project.root)
                .unwrap_or_else(|_| loaded.project.root.clone())
                .display()
                .to_string(),
            groups: Value::from_serialize(&groups),
            inventory_dir: std::fs::canonicalize(loaded.project.root.join("inventory"))
                .unwrap_or_else(|_| loaded.project.root.join("inventory"))
                .display()
                .to_string(),
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
        let _ = shared.hostvars.set(Value::from_object(AllHostVars {
            env: vars.clone(),
            others: loaded.others.clone(),
            shared: Arc::downgrade(&shared),
            var_env: var_env.clone(),
            made: Default::default(),
        }));
        let mut role_vars = IndexMap::new();
        for (h, l) in &loaded.layers {
            for r in loaded.project.roles.keys() {
                if let Some(raw) = l.for_role(&loaded.project, r) {
                    let hv = HostVars::new(h.clone(), l.groups.clone(), raw, shared.clone(), var_env.clone());
                    role_vars.insert((h.clone(), r.clone()), Arc::new(hv));
                }
            }
        }
        let role_envs = loaded
            .project
            .roles
            .values()
            .map(|r| (r.name.clone(), Arc::new(template::environment(Some(r.dir.join("templates"))))))
            .collect();
        Renderer { loaded, vars, role_vars, role_envs }
    }

    /// Render the desired state of `host`, for the roles selected (all when `None`).
    pub(crate) fn render_host(&self, host: &str, roles: Option<&[String]>) -> Result<DesiredHost> {
        self.render_host_with(host, roles, &[])
    }

    /// How to reach `host`, from its variables alone (no role rendered).
    pub(crate) fn connection_of(&self, host: &str) -> Result<Connection> {
        let hv =
            self.vars.get(host).ok_or_else(|| Error::Usage(format!("host `{host}` is not in `{}`", self.env_name)))?;
        self.connection(host, hv, &Value::from_dyn_object(hv.clone()))
    }

    /// Render with toggle values layered on the host's variables.
    pub(crate) fn render_host_with(
        &self,
        host: &str,
        roles: Option<&[String]>,
        overrides: &[(String, Value)],
    ) -> Result<DesiredHost> {
        let hv = &self.vars_with(host, overrides)?;
        let ctx = Value::from_dyn_object(hv.clone());
        let connection = self.connection(host, hv, &ctx)?;
        // each role's view, made once for this render
        let mut views: IndexMap<&str, (Arc<HostVars>, Value)> = IndexMap::new();
        for role in self.project.roles.keys() {
            let v = self.role_view(host, role, overrides, hv);
            let c = Value::from_dyn_object(v.clone());
            views.insert(role, (v, c));
        }
        let mut out = DesiredHost::new(host, connection);
        out.extra_probe = self.project.file.toggles.keys().map(|t| format!("{TOGGLE_DIR}/{t}")).collect();
        let mut seen = role::Seen::new();
        // each phase's hosts in this environment (ansible_play_hosts)
        let play_hosts: Vec<Value> = (0..self.project.file.phases.len())
            .map(|p| Value::from(self.hosts.iter().filter(|h| self.phase_applies(p, h)).cloned().collect::<Vec<_>>()))
            .collect();
        let mut compose_specs = Vec::new();
        for (phase, p) in self.project.file.phases.iter().enumerate() {
            if !self.phase_applies(phase, host) {
                continue;
            }
            for role_name in &p.roles {
                // Every role is rendered: a compose project must know what its
                // services read even when --role selects only some roles.
                let (hv, ctx) = &views[role_name.as_str()];
                if let Some(w) = p.when.get(role_name) {
                    if !self.role_when(host, hv, ctx, &p.name, role_name, w)? {
                        continue;
                    }
                }
                let ctx = &self.play_vars(&play_hosts[phase], role_name, ctx);
                let scope = RoleScope {
                    r: self,
                    host,
                    hv,
                    ctx,
                    role: &self.project.roles[role_name],
                    env: &self.role_envs[role_name],
                    phase,
                    selected: roles.is_none_or(|rs| rs.contains(role_name)),
                };
                scope.render_into(&mut out, &mut seen)?;
                for (i, c) in scope.role.spec.compose.iter().enumerate() {
                    compose_specs.push((i, c.clone(), role_name.clone(), phase));
                }
            }
        }
        for (index, spec, role_name, phase) in compose_specs {
            let (hv, ctx) = &views[role_name.as_str()];
            let ctx = &self.play_vars(&play_hosts[phase], &role_name, ctx);
            let scope = RoleScope {
                r: self,
                host,
                hv,
                ctx,
                role: &self.project.roles[&role_name],
                env: &self.role_envs[&role_name],
                phase,
                selected: true,
            };
            let (c, warnings) = scope.compose(&out, index, &spec)?;
            out.warnings.extend(warnings);
            out.compose.push(c);
        }
        // a unit whose file a files: entry writes (as an Ansible copy task
        // does) has that file: systemd re-reads it when it changes
        let files: Vec<String> = out.files.iter().map(|f| f.dest.clone()).collect();
        for u in out.system.units.iter_mut().filter(|u| u.file.is_none() && u.user.is_none()) {
            let path = format!("/etc/systemd/system/{}", u.name);
            if files.contains(&path) {
                u.file = Some(path);
            }
        }
        self.refuse_removing_managed(&out)?;
        system_files::check_system(self, &out)?;
        // parents before children, so one pass of mkdir works
        out.dirs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// A removal that holds a path this same deploy manages would undo it
    /// (or take it with it): refused, naming both.
    fn refuse_removing_managed(&self, out: &DesiredHost) -> Result<()> {
        let managed = out
            .dirs
            .iter()
            .map(|d| (&d.path, &d.role))
            .chain(out.files.iter().map(|f| (&f.dest, &f.role)))
            .chain(out.absent.iter().map(|a| (&a.path, &a.role)));
        for (path, role) in managed {
            if let Some(a) = out.absent.iter().find(|a| path.starts_with(&format!("{}/", a.path))) {
                return Err(Error::Render {
                    host: out.host.clone(),
                    file: self.project.roles[&a.role].spec_path.clone(),
                    line: None,
                    message: format!(
                        "absent `{}` holds {path}, which role `{role}` manages in the same deploy: removing it would take that along; remove the narrower paths instead",
                        a.path
                    ),
                });
            }
        }
        Ok(())
    }

    /// The host's variables with `overrides` (toggled values, connection
    /// facts) layered on, for evaluating templates outside a role's files.
    fn vars_with(&self, host: &str, overrides: &[(String, Value)]) -> Result<Arc<HostVars>> {
        let base =
            self.vars.get(host).ok_or_else(|| Error::Usage(format!("host `{host}` is not in `{}`", self.env_name)))?;
        Ok(if overrides.is_empty() { base.clone() } else { Arc::new(base.with_overrides(overrides)) })
    }

    /// A phase's condition on one of its roles, for `host`: false, and the
    /// role is not deployed there. An error names deploy.yml, the phase,
    /// the role and the condition.
    fn role_when(&self, host: &str, hv: &Arc<HostVars>, ctx: &Value, phase: &str, role: &str, w: &str) -> Result<bool> {
        let env = &self.role_envs[role];
        let file = self.project.root.join("deploy.yml");
        hv.clear_error();
        let v = env.compile_expression_owned(template::rewritten_expr(w)).and_then(|e| e.eval(ctx));
        let v = v.and_then(|v| {
            if v.is_undefined() {
                Err(minijinja::Error::from(minijinja::ErrorKind::UndefinedError))
            } else {
                Ok(v)
            }
        });
        v.map(|v| v.is_true()).map_err(|e| {
            match self.render_error(host, hv, &file, &e, env, &format!("{{{{ {w} }}}}"), ctx) {
                Error::Render { host, message, .. } => Error::Render {
                    host,
                    file,
                    line: None,
                    message: format!("phase `{phase}`: role `{role}` when `{w}`: {message}"),
                },
                other => other,
            }
        })
    }

    /// `facts` (by their ansible_facts names) as the variables that carry
    /// them, but for a name the host's own variables define: those win.
    pub(crate) fn fact_vars(
        &self,
        host: &str,
        facts: &serde_json::Map<String, serde_json::Value>,
    ) -> Vec<(String, Value)> {
        let own = |n: &str| self.vars.get(host).is_some_and(|h| h.raw(n).is_some());
        vars::fact_vars(facts).into_iter().filter(|(n, _)| !own(n)).collect()
    }

    /// Whether this render is for a plan alone (`ansible_check_mode`).
    pub(crate) fn set_check_mode(&self, on: bool) {
        if let Some(h) = self.vars.values().next() {
            h.shared().check_mode.store(on, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The variables Ansible defines for a task of `role` in a play (the
    /// phase): role_path, role_name, and the play's hosts (every host of
    /// the environment the phase applies to: deploy has no failed hosts
    /// at render time, and batches are its rollout's), above `ctx`.
    fn play_vars(&self, hosts: &Value, role: &str, ctx: &Value) -> Value {
        let dir = &self.project.roles[role].dir;
        let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()).display().to_string();
        let own = minijinja::context! {
            role_path => path,
            role_name => role,
            ansible_play_hosts => hosts.clone(),
            ansible_play_batch => hosts.clone(),
            ansible_play_hosts_all => hosts.clone(),
        };
        minijinja::value::merge_maps([own, ctx.clone()])
    }

    /// `host`'s variables as `role` sees them, with `overrides` on top;
    /// `hv` is the host's own with the same overrides.
    fn role_view(&self, host: &str, role: &str, overrides: &[(String, Value)], hv: &Arc<HostVars>) -> Arc<HostVars> {
        match self.role_vars.get(&(host.to_string(), role.to_string())) {
            None => hv.clone(),
            Some(v) if overrides.is_empty() => v.clone(),
            Some(v) => Arc::new(v.with_overrides(overrides)),
        }
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
        let base = self.vars_with(host, overrides)?;
        let mut failed = Vec::new();
        for p in desired.preflight.iter().filter(|p| roles.contains(&p.role.as_str())) {
            let PreflightKind::That { expr, msg } = &p.kind else { continue };
            let hv = self.role_view(host, &p.role, overrides, &base);
            let ctx = Value::from_dyn_object(hv.clone());
            let env = &self.role_envs[&p.role];
            let spec_file = &self.project.roles[&p.role].spec_path;
            let ok = env
                .compile_expression_owned(template::rewritten_expr(expr))
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
        hv.clear_error();
        env.render_str(&template::rewritten_small(s), ctx)
            .map_err(|e| self.render_error(host, hv, file, &e, env, s, ctx))
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
            key_file: get("ansible_ssh_private_key_file")?.map(|p| home_or_under(root, &p)),
            ssh_config: get("deploy_ssh_config")?.map(|p| home_or_under(root, &p)),
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
            if r.file.as_os_str() == vars::NO_FACTS {
                return Error::Render { host: host.into(), file: file.into(), line: e.line(), message: r.message };
            }
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
        // an error in an included template: its own file and line, the
        // chain of includes, and the root cause
        let (root, chain) = errors::innermost(e);
        let top = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let name = root.name().unwrap_or(&top).to_string();
        // `<string>` and `<expression>`: a field of role.yml, whose source is `src`
        if chain.is_empty() && (name == top || name.starts_with('<')) {
            return Error::Render {
                host: host.into(),
                file: file.into(),
                line: e.line(),
                message: describe_mj_error(e, Some((env, src, ctx))),
            };
        }
        let dir = file.parent().unwrap_or(Path::new("."));
        let mut seen = std::collections::HashSet::new();
        if let Some((n, _)) = chain.iter().find(|(n, _)| !seen.insert(n.clone())) {
            let path: Vec<&str> = chain.iter().map(|(n, _)| n.as_str()).take(4).collect();
            return Error::Render {
                host: host.into(),
                file: dir.join(n),
                line: None,
                message: format!("include recursion: {} -> ... ({} includes itself)", path.join(" -> "), n),
            };
        }
        if let Some(real) = name.strip_suffix(scope::BARE) {
            // it sees no variables: name what it reads that it does not define
            let inner_src = std::fs::read_to_string(dir.join(real)).unwrap_or_default();
            let message = errors::describe_bare(root, env, &inner_src, &top);
            return Error::Render { host: host.into(), file: dir.join(real), line: root.line(), message };
        }
        let inner_src = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        let mut message = describe_mj_error(root, Some((env, &inner_src, ctx)));
        message.push_str(&if chain.is_empty() {
            format!(" (in a template included by {top})")
        } else {
            format!(" ({})", errors::included_from(&chain))
        });
        Error::Render { host: host.into(), file: dir.join(&name), line: root.line(), message }
    }
}

/// A path from the inventory: `~/x` under $HOME (as Ansible and ssh read
/// it), else relative to the repository.
fn home_or_under(root: &Path, p: &str) -> std::path::PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::PathBuf::from(home).join(rest),
        _ => root.join(p),
    }
}

//! A role's Compose project for one host: its files (which must be managed
//! files), which managed files each service reads, and its reload triggers.

use std::collections::BTreeMap;

use super::compose::Service;
use super::role::RoleScope;
use super::*;
use crate::load::project::ComposeSpec;

/// A compose project's rendered names, for errors and paths.
struct Project<'a> {
    name: String,
    dir: String,
    /// The interpolation `.env` file and its variables, when managed.
    dotenv_path: String,
    dotenv: Option<BTreeMap<String, String>>,
    scope: &'a RoleScope<'a>,
}

impl Project<'_> {
    fn bad(&self, m: String) -> Error {
        Error::Render {
            host: self.scope.host.into(),
            file: self.scope.role.spec_path.clone(),
            line: None,
            message: format!("compose project `{}`: {m}", self.name),
        }
    }

    fn abs(&self, p: &str) -> String {
        if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{}/{}", self.dir.trim_end_matches('/'), p)
        }
    }

    /// `${VAR}` a service interpolates must be defined (incident 4).
    fn check_vars(&self, s: &Service) -> Result<()> {
        for v in &s.vars {
            if self.dotenv.as_ref().is_some_and(|d| d.contains_key(v)) {
                continue;
            }
            let where_ = if self.dotenv.is_some() {
                format!("not in {}", self.dotenv_path)
            } else {
                format!("{} is not managed by any role", self.dotenv_path)
            };
            return Err(Error::Render {
                host: self.scope.host.into(),
                file: s.file.clone().into(),
                line: None,
                message: format!(
                    "service `{}` of compose project `{}` interpolates ${{{v}}}, which no env source defines ({where_}); define {v} there, or write ${{{v}:-default}}",
                    s.name, self.name
                ),
            });
        }
        Ok(())
    }

    /// The managed files `s` reads: its env files, files under its bind
    /// mounts (except those reloaded in place), the interpolation `.env`.
    fn inputs(
        &self,
        s: &Service,
        out: &DesiredHost,
        reloads: &[Reload],
        warnings: &mut Vec<String>,
    ) -> Result<Vec<String>> {
        let mut inputs: Vec<String> = Vec::new();
        for e in &s.env_files {
            if out.file(e).is_some() {
                inputs.push(e.clone());
            } else {
                warnings.push(format!(
                    "{}: env file {e} of service `{}` is not managed by deploy; changes to it will not recreate the service",
                    s.file, s.name
                ));
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
        if !s.vars.is_empty() && self.dotenv.is_some() {
            inputs.push(self.dotenv_path.clone());
        }
        inputs.sort();
        inputs.dedup();
        for i in &inputs {
            if let Some(f) = out.file(i).filter(|f| f.phase > self.scope.phase) {
                return Err(self.bad(format!(
                    "service `{}` reads {i}, which role `{}` writes in a later phase than the project's; move them into the same phase",
                    s.name, f.role
                )));
            }
        }
        Ok(inputs)
    }

    /// A reload trigger must name a service that mounts the file's directory.
    fn check_reload(&self, x: &Reload, services: &[Service]) -> Result<()> {
        let Some(svc) = services.iter().find(|s| s.name == x.service) else {
            return Err(self
                .bad(format!("reload trigger names service `{}`, which the compose files do not define", x.service)));
        };
        // A single-file bind mount pins the file's inode: deploy replaces
        // files by rename, so the container would go on seeing the old file
        // and the reload would re-read stale config.
        if svc.binds.contains(&x.file) {
            let dir = x.file.rsplit_once('/').map(|d| d.0).unwrap_or("/");
            return Err(self.bad(format!(
                "service `{}` mounts {} as a single file, so a reload in place would not see the new content (files are replaced by rename, and a file bind mount keeps the old inode); mount its directory instead ({dir}:...), or drop the reload trigger to have the service recreated",
                x.service, x.file
            )));
        }
        if !svc.binds.iter().any(|b| x.file.starts_with(&format!("{b}/"))) {
            return Err(self.bad(format!(
                "reload trigger: service `{}` does not mount {} (no bind mount covers it)",
                x.service, x.file
            )));
        }
        Ok(())
    }
}

/// The project name Compose gives a directory: its last component,
/// lowercased, with only a-z, 0-9, `_` and `-` kept (compose v2's rule).
pub(super) fn default_project_name(dir: &str) -> String {
    let base = dir.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    base.to_lowercase().chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(*c)).collect()
}

fn valid_project_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
}

impl RoleScope<'_> {
    /// This role's compose project `spec`, after every role's files are
    /// rendered (`out`); with the warnings it gives.
    pub(super) fn compose(
        &self,
        out: &DesiredHost,
        index: usize,
        spec: &ComposeSpec,
    ) -> Result<(DesiredCompose, Vec<String>)> {
        let at = self.at("compose", index);
        let r = |k: &str, s: &str| self.field(at, k, s);
        let dir = r("dir", &spec.dir)?;
        if let Err(m) = check_dest(dir.trim_end_matches('/')) {
            return Err(self.bad_field(at, "dir", &spec.dir, &dir, &m));
        }
        let name = match &spec.project {
            Some(n) => r("project", n)?,
            None => default_project_name(&dir),
        };
        if !valid_project_name(&name) {
            let why =
                "a Compose project name is lowercase letters, digits, `_` and `-`, starting with a letter or digit";
            return Err(self.bad_field(at, "project", spec.project.as_deref().unwrap_or(&spec.dir), &name, why));
        }
        let mut p = Project { name, dir, dotenv_path: String::new(), dotenv: None, scope: self };
        p.dotenv_path =
            p.abs(&spec.env_file.as_deref().map(|e| r("env_file", e)).transpose()?.unwrap_or_else(|| ".env".into()));
        p.dotenv = match out.file(&p.dotenv_path) {
            Some(f) => {
                Some(super::compose::parse_dotenv(&f.contents().map_err(|e| p.bad(format!("{}: {e}", f.source)))?))
            }
            None => None,
        };
        let mut files = Vec::new();
        let mut contents = Vec::new();
        for f in &spec.files {
            let path = p.abs(&r("files", f)?);
            let Some(df) = out.file(&path) else {
                return Err(p.bad(format!("compose file {path} is not managed by any role; add it to a role's files")));
            };
            contents
                .push((path.clone(), df.contents().map_err(|e| p.bad(format!("{}: {e}", df.source)))?.into_owned()));
            files.push(path);
        }
        let services = super::compose::analyze(&p.dir, &contents).map_err(|m| p.bad(m))?;
        let reloads: Vec<Reload> = spec
            .reload
            .iter()
            .map(|x| {
                let command = x.command.iter().map(|c| r("reload", c)).collect::<Result<_>>()?;
                Ok(Reload { file: r("reload", &x.file)?, service: r("reload", &x.service)?, command })
            })
            .collect::<Result<_>>()?;
        let mut warnings = Vec::new();
        let mut desired = Vec::new();
        for s in &services {
            p.check_vars(s)?;
            if s.healthcheck_localhost {
                warnings.push(format!("{}: the healthcheck of service `{}` targets `localhost`, which resolves to ::1 first in Alpine-based images; use 127.0.0.1", s.file, s.name));
            }
            let inputs = p.inputs(s, out, &reloads, &mut warnings)?;
            let def = serde_json::to_string(&s.definition).unwrap_or_default();
            let (name, definition_sha, file) = (s.name.clone(), sha256_hex(def.as_bytes()), s.file.clone());
            desired.push(DesiredService { name, definition_sha, inputs, file });
        }
        for x in &reloads {
            p.check_reload(x, &services)?;
        }
        let override_path = format!("{}/.deploy-{}.override.yml", p.dir.trim_end_matches('/'), p.name);
        let c = DesiredCompose {
            project: p.name,
            dir: p.dir,
            role: self.role.name.clone(),
            phase: self.phase,
            files,
            override_path,
            services: desired,
            reloads,
            health_timeout: spec.health_timeout.0,
        };
        Ok((c, warnings))
    }
}

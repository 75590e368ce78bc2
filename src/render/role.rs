//! One role rendered for one host: its directories, files, removals,
//! pre-flight checks and health checks, with every path claimed once.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::{Environment, Value};

use super::vars::HostVars;
use super::*;
use crate::load::project::{AbsentSpec, FileSpec, Role};

/// deploy's state on every host: never a path a role may remove.
const STATE_DIR: &str = "/var/lib/deploy";
/// A source file over this many bytes is not read into memory: no diff is
/// made of it anyway (`plan::diff::MAX_FILE`).
const DISK_OVER: u64 = crate::plan::diff::MAX_FILE as u64;

/// What rendering one role for one host needs.
pub(super) struct RoleScope<'a> {
    pub(super) r: &'a Renderer,
    pub(super) host: &'a str,
    pub(super) hv: &'a Arc<HostVars>,
    pub(super) ctx: &'a Value,
    pub(super) role: &'a Role,
    pub(super) env: &'a Environment<'static>,
    pub(super) phase: usize,
    /// Part of this run (--role).
    pub(super) selected: bool,
}

impl RoleScope<'_> {
    /// A one-line template of role.yml (a path, a command), rendered.
    pub(super) fn small(&self, s: &str) -> Result<String> {
        self.r.render_small(self.host, self.hv, self.env, &self.role.spec_path, s, self.ctx)
    }

    fn name(&self) -> String {
        self.role.name.clone()
    }

    /// A removal that would destroy the host if taken at its word: `/`, a
    /// top-level tree without `force: true`, deploy's own state directory or
    /// anything above it.
    fn refuse_destructive(&self, path: &str, a: &AbsentSpec) -> Result<()> {
        let written = a.path();
        let shown = if written == path { format!("`{path}`") } else { format!("`{written}` (rendered: `{path}`)") };
        let why = if path == "/" {
            format!("absent {shown} is the root directory: deploy never removes /; is a variable in it empty?")
        } else if STATE_DIR == path
            || STATE_DIR.starts_with(&format!("{path}/"))
            || path.starts_with(&format!("{STATE_DIR}/"))
        {
            format!("absent {shown} is or holds deploy's own state ({STATE_DIR}: the lock, the journals a revert needs, the audit log); deploy never removes it")
        } else if path.matches('/').count() < 2 && !a.force() {
            format!("absent {shown} is a top-level directory: removing it takes the whole tree with it; if that is meant, write it as `- path: {written}` with `force: true`")
        } else {
            return Ok(());
        };
        Err(Error::Render { host: self.host.into(), file: self.role.spec_path.clone(), line: None, message: why })
    }

    /// Claim `path` for this role: an absolute, sane path that no other role manages.
    pub(super) fn claim(&self, path: &str, seen: &mut IndexMap<String, String>) -> Result<()> {
        let spec_file = &self.role.spec_path;
        check_dest(path).map_err(|m| Error::invalid(spec_file, m))?;
        if let Some(other) = seen.insert(path.to_string(), self.name()) {
            return Err(Error::invalid(
                spec_file,
                format!("path {path} is also managed by role `{other}`; one path, one owner"),
            ));
        }
        Ok(())
    }

    /// Everything this role declares, added to `out`.
    pub(super) fn render_into(&self, out: &mut DesiredHost, seen: &mut IndexMap<String, String>) -> Result<()> {
        let (phase, selected) = (self.phase, self.selected);
        for d in &self.role.spec.dirs {
            if !self.when(&d.when)? {
                continue;
            }
            let path = self.small(&d.path)?;
            self.claim(&path, seen)?;
            let (owner, group, mode) = (d.owner.clone(), d.group.clone(), d.mode.map(|m| m.0));
            out.dirs.push(DesiredDir { path, role: self.name(), owner, group, mode, phase, selected });
        }
        for f in &self.role.spec.files {
            if !self.when(&f.when)? {
                continue;
            }
            let file = self.file(f)?;
            self.claim(&file.dest, seen)?;
            out.files.push(file);
        }
        for l in &self.role.spec.links {
            if !self.when(&l.when)? {
                continue;
            }
            let (path, target) = (self.small(&l.path)?, self.small(&l.target)?);
            self.claim(&path, seen)?;
            if target.is_empty() || target.contains(['\n', '\t', '\0']) {
                let why = format!("link {path}: its target must be one line, without tabs, and not empty");
                return Err(Error::invalid(&self.role.spec_path, why));
            }
            out.links.push(DesiredLink { path, target, role: self.name(), phase, selected });
        }
        for a in &self.role.spec.absent {
            let path = self.small(a.path())?;
            self.refuse_destructive(&path, a)?;
            self.claim(&path, seen)?;
            let (force, written) = (a.force(), a.path().to_string());
            out.absent.push(DesiredAbsent { path, role: self.name(), phase, selected, force, written });
        }
        self.render_system(out, seen)?;
        if selected {
            self.preflight(out)?;
        }
        self.health(out)
    }

    /// A file's bytes (from a template, a file or inline content) and attributes.
    pub(super) fn file(&self, f: &FileSpec) -> Result<DesiredFile> {
        let (role, spec_file, env, ctx) = (&self.role, &self.role.spec_path, self.env, self.ctx);
        let name = self.name();
        let dest = self.small(&f.dest)?;
        self.hv.clear_error();
        let mut disk = None;
        let (bytes, source) = if let Some(t) = &f.template {
            let path = role.dir.join("templates").join(t);
            let raw = std::fs::read(&path)
                .map_err(|e| Error::invalid(spec_file, format!("file {dest}: template {}: {e}", path.display())))?;
            let src = template::check_source(&path, &raw)?;
            // the template module's own variables, above all others
            let ctx = &minijinja::value::merge_maps([super::dates::template_vars(t, &path, &dest), ctx.clone()]);
            let text = template::render_file(env, t, &src, ctx)
                .map_err(|e| self.r.render_error(self.host, self.hv, &path, &e, env, &src, ctx))?;
            (text.into_bytes(), format!("{name}/templates/{t}"))
        } else if let Some(s) = &f.src {
            let path = role.dir.join("files").join(s);
            let bad =
                |e: std::io::Error| Error::invalid(spec_file, format!("file {dest}: source {}: {e}", path.display()));
            let len = std::fs::metadata(&path).map_err(bad)?.len();
            // a big file stays on disk, streamed at upload and never whole
            // in memory; its sum is taken when first needed (render::sums)
            if len > DISK_OVER {
                disk = Some(super::sums::look(&path).map_err(bad)?);
                (Vec::new(), format!("{name}/files/{s}"))
            } else {
                (std::fs::read(&path).map_err(bad)?, format!("{name}/files/{s}"))
            }
        } else {
            let c = f.content.as_deref().unwrap_or_default();
            let text = template::render_str(env, &format!("{dest} (content)"), c, ctx)
                .map_err(|e| self.r.render_error(self.host, self.hv, spec_file, &e, env, c, ctx))?;
            (text.into_bytes(), format!("{name}/role.yml"))
        };
        let validate = f.validate.as_deref().map(|v| self.small(v)).transpose()?;
        let on_change = f.on_change.as_deref().map(|v| self.small(v)).transpose()?;
        if on_change.as_deref().is_some_and(|c| c.contains('\n')) {
            return Err(Error::invalid(spec_file, format!("file {dest}: on_change must be one line")));
        }
        let (sha, disk) = match disk {
            Some((d, sha)) => (sha.map(Into::into).unwrap_or_default(), Some(d)),
            None => (sha256_hex(&bytes).into(), None),
        };
        Ok(DesiredFile {
            sha,
            bytes,
            disk,
            dest,
            role: name,
            source,
            owner: f.owner.clone(),
            group: f.group.clone(),
            mode: f.mode.map(|m| m.0),
            validate,
            secret: f.secret,
            preserve: f.preserve,
            on_change,
            phase: self.phase,
            selected: self.selected,
        })
    }

    fn preflight(&self, out: &mut DesiredHost) -> Result<()> {
        for p in &self.role.spec.preflight {
            let kinds: Vec<PreflightKind> = if let Some(e) = &p.that {
                vec![PreflightKind::That { expr: e.clone(), msg: p.msg.clone() }]
            } else if let Some(c) = &p.command {
                vec![PreflightKind::Command { command: self.small(c)? }]
            } else {
                p.healthy
                    .iter()
                    .map(|s| {
                        let (project, service) = s.split_once('/').unwrap_or_default();
                        PreflightKind::Healthy { project: project.into(), service: service.into() }
                    })
                    .collect()
            };
            out.preflight.extend(kinds.into_iter().map(|kind| DesiredPreflight { role: self.name(), kind }));
        }
        Ok(())
    }

    fn health(&self, out: &mut DesiredHost) -> Result<()> {
        for h in &self.role.spec.health {
            let kind = if let Some(u) = &h.http {
                CheckKind::Http { url: self.small(u)?, status: h.status.unwrap_or(200) }
            } else if let Some(a) = &h.tcp {
                CheckKind::Tcp { address: self.small(a)? }
            } else {
                CheckKind::Command { command: self.small(h.command.as_deref().unwrap_or_default())? }
            };
            if let CheckKind::Http { url, .. } = &kind {
                if url.contains("//localhost") {
                    out.warnings.push(format!(
                        "{}: health check {url} targets `localhost`, which may resolve to ::1 first (IPv6); use 127.0.0.1",
                        self.role.spec_path.display()
                    ));
                }
            }
            let (role, phase, selected, timeout) = (self.name(), self.phase, self.selected, h.timeout.0);
            out.checks.push(DesiredCheck { role, phase, selected, kind, timeout });
        }
        Ok(())
    }
}

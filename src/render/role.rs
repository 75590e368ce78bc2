//! One role rendered for one host: its directories, files, removals,
//! pre-flight checks and health checks, with every path claimed once.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::value::ValueKind;
use minijinja::{Environment, Value};

use super::vars::HostVars;
use super::*;
use crate::load::project::{AbsentSpec, FileSpec, Id, Mode, Role, Templ};

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

/// Who declared a path first: its role and where (role.yml:line).
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(super) role: String,
    pub(super) at: String,
}

/// Every path declared on a host so far, and by whom.
pub(crate) type Seen = IndexMap<String, Claim>;

/// Where a value stands in role.yml: item `index` of `section`.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub(super) section: &'static str,
    pub(super) index: usize,
}

/// An owner or group name as chown takes it: no separator, no space.
fn valid_owner(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && !s.starts_with('-')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-$".contains(c))
}

impl RoleScope<'_> {
    /// A one-line template of role.yml (a path, a command), rendered.
    pub(super) fn small(&self, s: &str) -> Result<String> {
        self.r.render_small(self.host, self.hv, self.env, &self.role.spec_path, s, self.ctx)
    }

    /// Item `index` of role.yml's `section`.
    pub(super) fn at(&self, section: &'static str, index: usize) -> At {
        At { section, index }
    }

    /// `key` of the item at `at`, rendered. A template that fails names
    /// role.yml:line, the key and the text as written, then the cause.
    pub(super) fn field(&self, at: At, key: &str, s: &str) -> Result<String> {
        self.small(s).map_err(|e| match e {
            Error::Render { host, message, .. } => Error::Render {
                host,
                file: self.role.spec_path.clone(),
                line: self.key_line(at, key),
                message: format!("{}[{}] {key} `{}`: {message}", at.section, at.index, s.trim()),
            },
            other => other,
        })
    }

    /// An optional field, rendered.
    pub(super) fn field_opt(&self, at: At, key: &str, s: Option<&str>) -> Result<Option<String>> {
        s.map(|s| self.field(at, key, s)).transpose()
    }

    fn key_line(&self, at: At, key: &str) -> Option<usize> {
        crate::load::system::key_line(&self.role.text, at.section, at.index, key)
    }

    /// A field whose value is wrong: role.yml:line, the key, the text as
    /// written and, when a template made it, as rendered, and why.
    pub(super) fn bad_field(&self, at: At, key: &str, written: &str, rendered: &str, why: &str) -> Error {
        let shown = if written == rendered {
            format!("`{written}`")
        } else {
            format!("`{}` (rendered: `{rendered}`)", written.trim())
        };
        Error::Render {
            host: self.host.into(),
            file: self.role.spec_path.clone(),
            line: self.key_line(at, key),
            message: format!("{}[{}] {key} {shown}: {why}", at.section, at.index),
        }
    }

    /// A field that may render to a list (`name: "{{ common_packages }}"`,
    /// `path: "{{ app_dirs }}"`): its items, one resource each; else the
    /// one rendered text.
    pub(super) fn field_items(&self, at: At, key: &str, s: &str) -> Result<Vec<String>> {
        if let Some(expr) = super::vars::single_expression(s) {
            self.hv.clear_error();
            let v = self.env.compile_expression_owned(template::rewritten_expr(expr)).and_then(|e| e.eval(self.ctx));
            if let Some(v) = v.ok().filter(|v| v.kind() == ValueKind::Seq) {
                let mut out = Vec::new();
                for x in v.try_iter().map_err(|e| self.bad_field(at, key, s, "", &e.to_string()))? {
                    if !matches!(x.kind(), ValueKind::String | ValueKind::Number) {
                        let why = format!("an item of the list is {}, not a name", super::pyfmt::py_repr(&x));
                        return Err(self.bad_field(at, key, s, &super::pyfmt::py_repr(&v), &why));
                    }
                    out.push(super::pyfmt::py_str(&x));
                }
                return Ok(out);
            }
        }
        Ok(vec![self.field(at, key, s)?])
    }

    /// An owner or group: a name or number as written, or rendered to one.
    pub(super) fn id_field(&self, at: At, key: &str, id: &Option<Id>) -> Result<Option<Id>> {
        let Some(id) = id else { return Ok(None) };
        let (written, text) = match id {
            Id::Num(_) => return Ok(Some(id.clone())),
            Id::Name(n) => (n.as_str(), self.field(at, key, n)?),
        };
        let text = text.trim();
        if let Ok(n) = text.parse::<u32>() {
            return Ok(Some(Id::Num(n)));
        }
        if !valid_owner(text) {
            return Err(self.bad_field(at, key, written, text, "not a user or group name, nor a number"));
        }
        Ok(Some(Id::Name(text.to_string())))
    }

    /// A templated field of another type than text: as written, or
    /// rendered and `parse`d, with `why` when that fails.
    fn typed_field<T: Clone>(
        &self,
        at: At,
        key: &str,
        v: &Option<Templ<T>>,
        parse: impl Fn(&str) -> Option<T>,
        why: &str,
    ) -> Result<Option<T>> {
        match v {
            None => Ok(None),
            Some(Templ::Is(x)) => Ok(Some(x.clone())),
            Some(Templ::Template(t)) => {
                let text = self.field(at, key, t)?;
                parse(text.trim()).map(Some).ok_or_else(|| self.bad_field(at, key, t, &text, why))
            }
        }
    }

    /// A mode: as written, or rendered to an octal string.
    pub(super) fn mode_field(&self, at: At, key: &str, m: &Option<Templ<Mode>>) -> Result<Option<u32>> {
        let parse = |t: &str| crate::load::project::parse_mode(t).ok().map(Mode);
        Ok(self.typed_field(at, key, m, parse, "not an octal mode like \"0640\"")?.map(|m| m.0))
    }

    /// A number (uid, gid): as written, or rendered to one.
    pub(super) fn num_field(&self, at: At, key: &str, n: &Option<Templ<u32>>) -> Result<Option<u32>> {
        self.typed_field(at, key, n, |t| t.parse().ok(), "not a whole number")
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
    pub(super) fn claim(&self, path: &str, seen: &mut Seen) -> Result<()> {
        let spec_file = &self.role.spec_path;
        check_dest(path).map_err(|m| Error::invalid(spec_file, m))?;
        let claim = Claim { role: self.name(), at: spec_file.display().to_string() };
        if let Some(other) = seen.insert(path.to_string(), claim) {
            return Err(Error::invalid(
                spec_file,
                format!("path {path} is also managed by role `{}`; one path, one owner", other.role),
            ));
        }
        Ok(())
    }

    /// Claim `path` for item `at`, or find it declared before. Ok(true): a
    /// declaration of the same kind came first, and `same` says whether it
    /// agrees (then it is one resource, and this role is named beside it);
    /// one that disagrees, or another kind, is an error naming both.
    /// `same` answers None when they agree, else what differs.
    pub(super) fn claim_or_merge(
        &self,
        at: At,
        path: &str,
        seen: &mut Seen,
        out: &mut DesiredHost,
        same: impl FnOnce(&DesiredHost) -> Option<Option<String>>,
    ) -> Result<bool> {
        let spec_file = &self.role.spec_path;
        check_dest(path).map_err(|m| Error::invalid(spec_file, m))?;
        let shown = spec_file.strip_prefix(&self.r.project.root).unwrap_or(spec_file);
        let line = crate::load::system::item_line(&self.role.text, at.section, at.index);
        let here = format!("{}{}", shown.display(), line.map(|l| format!(":{l}")).unwrap_or_default());
        let Some(first) = seen.get(path).cloned() else {
            seen.insert(path.to_string(), Claim { role: self.name(), at: here });
            return Ok(false);
        };
        let why = match same(out) {
            Some(None) => {
                out.declared_also(path, &first.role, &self.name());
                return Ok(true);
            }
            Some(Some(differs)) => format!("with {differs}"),
            None => "as another kind of resource".to_string(),
        };
        Err(Error::Render {
            host: self.host.into(),
            file: spec_file.clone(),
            line: crate::load::system::item_line(&self.role.text, at.section, at.index),
            message: format!(
                "{}[{}] `{path}` is also declared by role `{}` ({}), {why}: two declarations of one path must agree; make them the same, or keep one",
                at.section, at.index, first.role, first.at
            ),
        })
    }

    /// Everything this role declares, added to `out`.
    pub(super) fn render_into(&self, out: &mut DesiredHost, seen: &mut Seen) -> Result<()> {
        let (phase, selected) = (self.phase, self.selected);
        for (i, d) in self.role.spec.dirs.iter().enumerate() {
            let at = self.at("dirs", i);
            if !self.when(at, &d.when)? {
                continue;
            }
            let (owner, group) = (self.id_field(at, "owner", &d.owner)?, self.id_field(at, "group", &d.group)?);
            let mode = self.mode_field(at, "mode", &d.mode)?;
            for path in self.field_items(at, "path", &d.path)? {
                let dir = DesiredDir {
                    path,
                    role: self.name(),
                    owner: owner.clone(),
                    group: group.clone(),
                    mode,
                    phase,
                    selected,
                };
                let same =
                    |out: &DesiredHost| out.dirs.iter().find(|x| x.path == dir.path).map(|x| differs_dir(x, &dir));
                if self.claim_or_merge(at, &dir.path.clone(), seen, out, same)? {
                    out.dirs.iter_mut().filter(|x| x.path == dir.path).for_each(|x| x.selected |= selected);
                    continue;
                }
                out.dirs.push(dir);
            }
        }
        for (i, f) in self.role.spec.files.iter().enumerate() {
            let at = self.at("files", i);
            if !self.when(at, &f.when)? {
                continue;
            }
            let file = self.file(at, f)?;
            let same =
                |out: &DesiredHost| out.files.iter().find(|x| x.dest == file.dest).map(|x| differs_file(x, &file));
            if self.claim_or_merge(at, &file.dest.clone(), seen, out, same)? {
                out.files.iter_mut().filter(|x| x.dest == file.dest).for_each(|x| x.selected |= selected);
                continue;
            }
            out.files.push(file);
        }
        for (i, l) in self.role.spec.links.iter().enumerate() {
            let at = self.at("links", i);
            if !self.when(at, &l.when)? {
                continue;
            }
            let (path, target) = (self.field(at, "path", &l.path)?, self.field(at, "target", &l.target)?);
            if target.is_empty() || target.contains(['\n', '\t', '\0']) {
                let why = format!("link {path}: its target must be one line, without tabs, and not empty");
                return Err(self.bad_field(at, "target", &l.target, &target, &why));
            }
            let same = |out: &DesiredHost| {
                let first = out.links.iter().find(|x| x.path == path)?;
                Some((first.target != target).then(|| format!("target {}", first.target)))
            };
            if self.claim_or_merge(at, &path, seen, out, same)? {
                out.links.iter_mut().filter(|x| x.path == path).for_each(|x| x.selected |= selected);
                continue;
            }
            out.links.push(DesiredLink { path, target, role: self.name(), phase, selected });
        }
        for (i, a) in self.role.spec.absent.iter().enumerate() {
            let at = self.at("absent", i);
            for path in self.field_items(at, "path", a.path())? {
                self.refuse_destructive(&path, a)?;
                let same = |out: &DesiredHost| out.absent.iter().find(|x| x.path == path).map(|_| None);
                if self.claim_or_merge(at, &path, seen, out, same)? {
                    out.absent.iter_mut().filter(|x| x.path == path).for_each(|x| x.selected |= selected);
                    continue;
                }
                let (force, written) = (a.force(), a.path().to_string());
                out.absent.push(DesiredAbsent { path, role: self.name(), phase, selected, force, written });
            }
        }
        self.render_system(out, seen)?;
        if selected {
            self.preflight(out)?;
        }
        self.health(out)
    }

    /// A file's bytes (from a template, a file or inline content) and attributes.
    pub(super) fn file(&self, at: At, f: &FileSpec) -> Result<DesiredFile> {
        let (role, spec_file, env, ctx) = (&self.role, &self.role.spec_path, self.env, self.ctx);
        let name = self.name();
        let dest = self.field(at, "dest", &f.dest)?;
        // a templated source is rendered before it is looked up, as Ansible does
        let template = self.field_opt(at, "template", f.template.as_deref())?;
        let src = self.field_opt(at, "src", f.src.as_deref())?;
        self.hv.clear_error();
        let mut disk = None;
        let (bytes, source) = if let Some(t) = &template {
            let path = role.dir.join("templates").join(t);
            let raw = std::fs::read(&path)
                .map_err(|e| Error::invalid(spec_file, format!("file {dest}: template {}: {e}", path.display())))?;
            let src = template::check_source(&path, &raw)?;
            // the template module's own variables, above all others
            let ctx = &minijinja::value::merge_maps([super::dates::template_vars(t, &path, &dest), ctx.clone()]);
            let text = template::render_file(env, t, &src, ctx)
                .map_err(|e| self.r.render_error(self.host, self.hv, &path, &e, env, &src, ctx))?;
            (text.into_bytes(), format!("{name}/templates/{t}"))
        } else if let Some(s) = &src {
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
        let validate = self.field_opt(at, "validate", f.validate.as_deref())?;
        let on_change = self.field_opt(at, "on_change", f.on_change.as_deref())?;
        if let Some(c) = on_change.as_deref().filter(|c| c.contains('\n')) {
            let why = format!("file {dest}: on_change must be one line");
            return Err(self.bad_field(at, "on_change", f.on_change.as_deref().unwrap_or_default(), c, &why));
        }
        let (owner, group) = (self.id_field(at, "owner", &f.owner)?, self.id_field(at, "group", &f.group)?);
        let mode = self.mode_field(at, "mode", &f.mode)?;
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
            owner,
            group,
            mode,
            validate,
            secret: f.secret,
            preserve: f.preserve,
            may_empty: f.may_empty,
            on_change,
            phase: self.phase,
            selected: self.selected,
        })
    }

    fn preflight(&self, out: &mut DesiredHost) -> Result<()> {
        for (i, p) in self.role.spec.preflight.iter().enumerate() {
            let at = self.at("preflight", i);
            let kinds: Vec<PreflightKind> = if let Some(e) = &p.that {
                vec![PreflightKind::That { expr: e.clone(), msg: p.msg.clone() }]
            } else if let Some(c) = &p.command {
                vec![PreflightKind::Command { command: self.field(at, "command", c)? }]
            } else {
                let mut kinds = Vec::new();
                for written in &p.healthy {
                    let s = self.field(at, "healthy", written)?;
                    let Some((project, service)) = s.split_once('/').filter(|(p, s)| !p.is_empty() && !s.is_empty())
                    else {
                        return Err(self.bad_field(at, "healthy", written, &s, "not `project/service`"));
                    };
                    kinds.push(PreflightKind::Healthy { project: project.into(), service: service.into() });
                }
                kinds
            };
            out.preflight.extend(kinds.into_iter().map(|kind| DesiredPreflight { role: self.name(), kind }));
        }
        Ok(())
    }

    fn health(&self, out: &mut DesiredHost) -> Result<()> {
        for (i, h) in self.role.spec.health.iter().enumerate() {
            let at = self.at("health", i);
            let kind = if let Some(u) = &h.http {
                CheckKind::Http { url: self.field(at, "http", u)?, status: h.status.unwrap_or(200) }
            } else if let Some(a) = &h.tcp {
                CheckKind::Tcp { address: self.field(at, "tcp", a)? }
            } else {
                CheckKind::Command { command: self.field(at, "command", h.command.as_deref().unwrap_or_default())? }
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

/// What a second declaration of a directory says differently, if anything.
fn differs_dir(a: &DesiredDir, b: &DesiredDir) -> Option<String> {
    let mut d = Vec::new();
    if a.owner != b.owner {
        d.push(format!("owner {}", show(&a.owner)));
    }
    if a.group != b.group {
        d.push(format!("group {}", show(&a.group)));
    }
    if a.mode != b.mode {
        d.push(format!("mode {}", a.mode.map(|m| format!("{m:04o}")).unwrap_or_else(|| "unset".into())));
    }
    (!d.is_empty()).then(|| d.join(", "))
}

/// What a second declaration of a file says differently, if anything.
fn differs_file(a: &DesiredFile, b: &DesiredFile) -> Option<String> {
    let mut d = Vec::new();
    if a.sha256() != b.sha256() {
        d.push("other content".to_string());
    }
    if a.owner != b.owner {
        d.push(format!("owner {}", show(&a.owner)));
    }
    if a.group != b.group {
        d.push(format!("group {}", show(&a.group)));
    }
    if a.mode != b.mode {
        d.push(format!("mode {}", a.mode.map(|m| format!("{m:04o}")).unwrap_or_else(|| "unset".into())));
    }
    if (&a.validate, a.secret, a.preserve, &a.on_change) != (&b.validate, b.secret, b.preserve, &b.on_change) {
        d.push("other validate, secret, preserve or on_change".to_string());
    }
    (!d.is_empty()).then(|| d.join(", "))
}

fn show(id: &Option<Id>) -> String {
    id.as_ref().map(|i| i.to_string()).unwrap_or_else(|| "unset".into())
}

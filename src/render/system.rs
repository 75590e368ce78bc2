//! A role's host resources beyond files, rendered for one host: packages,
//! units, users, groups, sysctl values, cron jobs, lines and commands.
//! Unit files, sysctl.d and cron.d files, and exclusive authorized_keys
//! become managed files like any other; the rest is `DesiredSystem`.

use serde::Serialize;

use super::role::{RoleScope, Seen};
use super::*;
use crate::load::project::Id;
use crate::load::system::{Presence, RevertPolicy, UnitState};

/// An apt package as it should be.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredPackage {
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) state: Presence,
    /// `revert: none`: a revert leaves it as it is, on purpose.
    pub(crate) no_revert: bool,
    pub(crate) role: String,
    pub(crate) phase: usize,
    pub(crate) selected: bool,
}

/// A systemd unit as it should be.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredUnit {
    pub(crate) name: String,
    /// The user whose own systemd runs it (`scope: user`); None: the system's.
    pub(crate) user: Option<String>,
    /// Its unit file, when the role manages one.
    pub(crate) file: Option<String>,
    pub(crate) enabled: Option<bool>,
    pub(crate) state: Option<UnitState>,
    pub(crate) restart_on: Vec<String>,
    pub(crate) reload_on: Vec<String>,
    pub(crate) timeout: u64,
    pub(crate) role: String,
    pub(crate) phase: usize,
    pub(crate) selected: bool,
}

/// A local user as it should be.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredUser {
    pub(crate) name: String,
    pub(crate) state: Presence,
    pub(crate) uid: Option<u32>,
    pub(crate) group: Option<String>,
    pub(crate) groups: Option<Vec<String>>,
    pub(crate) shell: Option<String>,
    pub(crate) home: Option<String>,
    pub(crate) system: bool,
    pub(crate) role: String,
    pub(crate) phase: usize,
    pub(crate) selected: bool,
}

/// A local group as it should be.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredGroup {
    pub(crate) name: String,
    pub(crate) state: Presence,
    pub(crate) gid: Option<u32>,
    pub(crate) system: bool,
    pub(crate) role: String,
    pub(crate) phase: usize,
    pub(crate) selected: bool,
}

/// A kernel parameter's live value (its file is a managed file).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredSysctl {
    pub(crate) key: String,
    /// Whitespace-normalised.
    pub(crate) value: String,
    pub(crate) role: String,
    pub(crate) phase: usize,
    pub(crate) selected: bool,
}

/// One line of a file deploy does not otherwise manage.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredLine {
    pub(crate) path: String,
    pub(crate) regexp: Option<String>,
    pub(crate) line: Option<String>,
    pub(crate) state: Presence,
    pub(crate) create: bool,
    /// Owner and mode of a file the line creates.
    pub(crate) owner: Option<Id>,
    pub(crate) mode: Option<u32>,
    pub(crate) role: String,
    pub(crate) phase: usize,
    pub(crate) selected: bool,
}

/// A guarded command.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesiredCommand {
    /// What the plan calls it.
    pub(crate) label: String,
    pub(crate) run: Vec<String>,
    pub(crate) creates: Option<String>,
    pub(crate) removes: Option<String>,
    pub(crate) unless: Option<String>,
    pub(crate) onlyif: Option<String>,
    pub(crate) timeout: u64,
    pub(crate) role: String,
    pub(crate) phase: usize,
    pub(crate) selected: bool,
}

/// Everything of a host beyond files, directories and containers.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct DesiredSystem {
    pub(crate) packages: Vec<DesiredPackage>,
    pub(crate) units: Vec<DesiredUnit>,
    pub(crate) users: Vec<DesiredUser>,
    pub(crate) groups: Vec<DesiredGroup>,
    pub(crate) sysctl: Vec<DesiredSysctl>,
    pub(crate) lines: Vec<DesiredLine>,
    pub(crate) commands: Vec<DesiredCommand>,
}

/// Characters that may appear in a name sent to the host (tab-separated
/// protocol, argv words): printable, no tab, no newline.
pub(super) fn plain(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_control())
}

fn valid_unit(s: &str) -> bool {
    const SUFFIXES: [&str; 8] = [".service", ".socket", ".timer", ".path", ".target", ".mount", ".slice", ".automount"];
    s.chars().all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c)) && SUFFIXES.iter().any(|x| s.ends_with(x))
}

fn valid_package(s: &str) -> bool {
    s.len() > 1
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn valid_version(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c))
}

/// A user or group name as useradd accepts it on Debian.
pub(super) fn valid_account(s: &str) -> bool {
    s.len() <= 32
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
}

pub(super) fn valid_sysctl(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        && !s.split(['.', '/']).any(|p| p.is_empty() || p == "..")
}

/// A cron.d file name cron reads: run-parts skips names with dots.
pub(super) fn valid_cron_file(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
}

pub(super) fn valid_schedule(s: &str) -> bool {
    const AT: [&str; 8] = ["@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
    if s.starts_with('@') {
        return AT.contains(&s);
    }
    let f: Vec<&str> = s.split_whitespace().collect();
    f.len() == 5 && f.iter().all(|x| x.chars().all(|c| c.is_ascii_alphanumeric() || "*/,-".contains(c)))
}

impl RoleScope<'_> {
    /// An error at item `i` of role.yml's `section`.
    pub(super) fn item_err(&self, section: &str, i: usize, message: String) -> Error {
        Error::Render {
            host: self.host.into(),
            file: self.role.spec_path.clone(),
            line: crate::load::system::item_line(&self.role.text, section, i),
            message,
        }
    }

    /// A resource's `when:`, evaluated with the host's variables; an error
    /// names role.yml:line, the key and the expression.
    pub(super) fn when(&self, at: super::role::At, expr: &Option<String>) -> Result<bool> {
        let Some(expr) = expr else { return Ok(true) };
        self.hv.clear_error();
        let undefined = || minijinja::Error::from(minijinja::ErrorKind::UndefinedError);
        let v = self.env.compile_expression_owned(template::rewritten_expr(expr)).and_then(|e| e.eval(self.ctx));
        // a condition that is itself undefined is an error, as in Ansible
        let v = v.and_then(|v| if v.is_undefined() { Err(undefined()) } else { Ok(v) }).map_err(|e| {
            // described as the template `{{ expr }}`, so that its names are found
            let src = format!("{{{{ {expr} }}}}");
            match self.r.render_error(self.host, self.hv, &self.role.spec_path, &e, self.env, &src, self.ctx) {
                Error::Render { host, message, .. } => Error::Render {
                    host,
                    file: self.role.spec_path.clone(),
                    line: crate::load::system::key_line(&self.role.text, at.section, at.index, "when"),
                    message: format!("{}[{}] when `{}`: {message}", at.section, at.index, expr.trim()),
                },
                other => other,
            }
        })?;
        Ok(v.is_true())
    }

    /// Every resource of this role beyond files and dirs, added to `out`
    /// (with the files some of them are made of).
    pub(super) fn render_system(&self, out: &mut DesiredHost, seen: &mut Seen) -> Result<()> {
        self.packages(out)?;
        self.groups(out)?;
        self.users(out, seen)?;
        self.units(out, seen)?;
        self.sysctl(out, seen)?;
        self.cron(out, seen)?;
        self.lines(out, seen)?;
        self.commands(out)
    }

    fn packages(&self, out: &mut DesiredHost) -> Result<()> {
        for (i, p) in self.role.spec.packages.iter().enumerate() {
            let at = self.at("packages", i);
            if !self.when(at, &p.when)? {
                continue;
            }
            let version = self.field_opt(at, "version", p.version.as_deref())?;
            for name in self.field_items(at, "name", &p.name)? {
                if !valid_package(&name) {
                    return Err(self.bad_field(at, "name", &p.name, &name, "not a Debian package name"));
                }
                if let Some(v) = version.as_deref().filter(|v| !valid_version(v)) {
                    let why = format!("package `{name}`: not a Debian version");
                    return Err(self.bad_field(at, "version", p.version.as_deref().unwrap_or_default(), v, &why));
                }
                let no_revert = p.revert == RevertPolicy::None;
                if let Some(q) = out.system.packages.iter_mut().find(|q| q.name == name) {
                    // two roles may both need one package: one resource, if they agree
                    if (&q.version, q.state, q.no_revert) != (&version, p.state, no_revert) {
                        let why = format!(
                            "package `{name}` is also declared by role `{}` with another version, state or revert: two declarations must agree",
                            q.role
                        );
                        return Err(self.bad_field(at, "name", &p.name, &name, &why));
                    }
                    q.selected |= self.selected;
                    let first = q.role.clone();
                    out.declared_also(&format!("package {name}"), &first, &self.role.name);
                    continue;
                }
                out.system.packages.push(DesiredPackage {
                    name,
                    version: version.clone(),
                    state: p.state,
                    no_revert,
                    role: self.role.name.clone(),
                    phase: self.phase,
                    selected: self.selected,
                });
            }
        }
        Ok(())
    }

    fn units(&self, out: &mut DesiredHost, seen: &mut Seen) -> Result<()> {
        for (i, u) in self.role.spec.units.iter().enumerate() {
            let at = self.at("units", i);
            if !self.when(at, &u.when)? {
                continue;
            }
            let name = self.field(at, "name", &u.name)?;
            if !valid_unit(&name) {
                let why = "not a systemd unit name with its suffix (`app.service`, `backup.timer`)";
                return Err(self.bad_field(at, "name", &u.name, &name, why));
            }
            let user = self.field_opt(at, "user", u.user.as_deref())?;
            if let Some(x) = user.as_deref().filter(|x| !valid_account(x)) {
                let why = format!("unit `{name}`: not a user name");
                return Err(self.bad_field(at, "user", u.user.as_deref().unwrap_or_default(), x, &why));
            }
            let dir = match &user {
                Some(x) => {
                    let home = self.user_home(out, x);
                    self.user_unit_dirs(out, seen, x, &home)?;
                    format!("{home}/.config/systemd/user")
                }
                None => "/etc/systemd/system".into(),
            };
            let file = if u.template.is_some() || u.src.is_some() || u.content.is_some() {
                let dest = format!("{dir}/{name}");
                let spec = crate::load::project::FileSpec {
                    dest: dest.clone(),
                    template: u.template.clone(),
                    src: u.src.clone(),
                    content: u.content.clone(),
                    group: None,
                    owner: user.clone().map(Id::Name),
                    mode: Some(crate::load::project::Templ::Is(crate::load::project::Mode(0o644))),
                    validate: None,
                    secret: false,
                    preserve: false,
                    may_empty: false,
                    on_change: None,
                    when: None,
                };
                let f = self.file(at, &spec)?;
                self.claim(&dest, seen)?;
                out.files.push(f);
                Some(dest)
            } else {
                None
            };
            let paths = |k: &str, l: &[String]| l.iter().map(|p| self.field(at, k, p)).collect::<Result<Vec<_>>>();
            out.system.units.push(DesiredUnit {
                name,
                user,
                file,
                enabled: u.enabled,
                state: u.state,
                restart_on: paths("restart_on", &u.restart_on)?,
                reload_on: paths("reload_on", &u.reload_on)?,
                timeout: u.timeout.0,
                role: self.role.name.clone(),
                phase: self.phase,
                selected: self.selected,
            });
        }
        Ok(())
    }

    /// A user's home: as this host's users declare it, else /home/NAME.
    fn user_home(&self, out: &DesiredHost, user: &str) -> String {
        match out.system.users.iter().find(|u| u.name == user).and_then(|u| u.home.clone()) {
            Some(h) => h,
            None if user == "root" => "/root".into(),
            None => format!("/home/{user}"),
        }
    }

    /// ~/.config/systemd/user and its parents, owned by the user (a parent
    /// the deploy would otherwise create is root's, and the user's systemd
    /// could not write there).
    fn user_unit_dirs(&self, out: &mut DesiredHost, seen: &mut Seen, user: &str, home: &str) -> Result<()> {
        for d in [".config", ".config/systemd", ".config/systemd/user"] {
            let path = format!("{home}/{d}");
            if seen.contains_key(&path) {
                continue;
            }
            self.claim(&path, seen)?;
            out.dirs.push(DesiredDir {
                path,
                role: self.role.name.clone(),
                owner: Some(Id::Name(user.into())),
                group: None,
                mode: Some(0o755),
                phase: self.phase,
                selected: self.selected,
            });
        }
        Ok(())
    }

    fn groups(&self, out: &mut DesiredHost) -> Result<()> {
        for (i, g) in self.role.spec.groups.iter().enumerate() {
            let at = self.at("groups", i);
            if !self.when(at, &g.when)? {
                continue;
            }
            let gid = self.num_field(at, "gid", &g.gid)?;
            for name in self.field_items(at, "name", &g.name)? {
                if !valid_account(&name) {
                    return Err(self.bad_field(at, "name", &g.name, &name, "not a valid group name"));
                }
                out.system.groups.push(DesiredGroup {
                    name,
                    state: g.state,
                    gid,
                    system: g.system,
                    role: self.role.name.clone(),
                    phase: self.phase,
                    selected: self.selected,
                });
            }
        }
        Ok(())
    }

    fn users(&self, out: &mut DesiredHost, seen: &mut Seen) -> Result<()> {
        for (i, u) in self.role.spec.users.iter().enumerate() {
            let at = self.at("users", i);
            if !self.when(at, &u.when)? {
                continue;
            }
            for name in self.field_items(at, "name", &u.name)? {
                self.user(out, seen, at, i, u, name)?;
            }
        }
        Ok(())
    }

    /// One user of item `i` of users:, named `name`.
    fn user(
        &self,
        out: &mut DesiredHost,
        seen: &mut Seen,
        at: super::role::At,
        i: usize,
        u: &crate::load::system::UserSpec,
        name: String,
    ) -> Result<()> {
        if !valid_account(&name) {
            return Err(self.bad_field(at, "name", &u.name, &name, "not a valid user name"));
        }
        let conn_user = out.connection.user.as_deref().unwrap_or("root");
        if u.state == Presence::Absent && (name == conn_user || name == "root") {
            return Err(self.item_err(
                "users",
                i,
                format!("user `{name}` is the user deploy connects as: removing it would lock every later deploy out"),
            ));
        }
        let shell = self.field_opt(at, "shell", u.shell.as_deref())?;
        let home = self.field_opt(at, "home", u.home.as_deref())?;
        for (k, written, p) in [("shell", &u.shell, &shell), ("home", &u.home, &home)] {
            if let (Some(w), Some(p)) = (written, p) {
                check_dest(p).map_err(|m| self.bad_field(at, k, w, p, &format!("user `{name}`: {m}")))?;
            }
        }
        let uid = self.num_field(at, "uid", &u.uid)?;
        let group = self.field_opt(at, "group", u.group.as_deref())?;
        if let Some(g) = group.as_deref().filter(|g| !valid_account(g)) {
            let why = format!("user `{name}`: not a valid group name");
            return Err(self.bad_field(at, "group", u.group.as_deref().unwrap_or_default(), g, &why));
        }
        let groups = u
            .groups
            .as_ref()
            .map(|gs| gs.iter().map(|g| self.field(at, "groups", g)).collect::<Result<Vec<_>>>())
            .transpose()?;
        if let Some(bad) = groups.iter().flatten().find(|g| !valid_account(g)) {
            return Err(self.bad_field(at, "groups", bad, bad, &format!("user `{name}`: not a valid group name")));
        }
        if u.state == Presence::Present && !u.authorized_keys.is_empty() {
            let home_dir =
                home.clone().unwrap_or_else(|| if name == "root" { "/root".into() } else { format!("/home/{name}") });
            self.authorized_keys(out, seen, &name, &home_dir, u, i)?;
        }
        out.system.users.push(DesiredUser {
            name,
            state: u.state,
            uid,
            group,
            groups,
            shell,
            home,
            system: u.system,
            role: self.role.name.clone(),
            phase: self.phase,
            selected: self.selected,
        });
        Ok(())
    }

    /// ~/.ssh/authorized_keys: a managed file holding exactly these keys
    /// (exclusive), or one line per key in a file deploy leaves otherwise alone.
    fn authorized_keys(
        &self,
        out: &mut DesiredHost,
        seen: &mut Seen,
        user: &str,
        home: &str,
        u: &crate::load::system::UserSpec,
        i: usize,
    ) -> Result<()> {
        let at = self.at("users", i);
        let keys =
            u.authorized_keys.iter().map(|k| self.field(at, "authorized_keys", k)).collect::<Result<Vec<_>>>()?;
        if let Some(bad) = keys.iter().find(|k| k.contains('\n') || k.split_whitespace().count() < 2) {
            let shown: String = bad.chars().take(20).collect();
            return Err(self.item_err("users", i, format!("user `{user}`: `{shown}...` is not one public key line")));
        }
        let (ssh, path) = (format!("{home}/.ssh"), format!("{home}/.ssh/authorized_keys"));
        let owner = Some(Id::Name(user.into()));
        if !seen.contains_key(&ssh) {
            self.claim(&ssh, seen)?;
            out.dirs.push(DesiredDir {
                path: ssh,
                role: self.role.name.clone(),
                owner: owner.clone(),
                group: None,
                mode: Some(0o700),
                phase: self.phase,
                selected: self.selected,
            });
        }
        if u.exclusive_keys {
            let mut f = DesiredFile::generated(
                &path,
                &self.role.name,
                "authorized_keys",
                (keys.join("\n") + "\n").into_bytes(),
                self.phase,
            );
            (f.owner, f.mode, f.selected) = (owner, Some(0o600), self.selected);
            self.claim(&path, seen)?;
            out.files.push(f);
        } else {
            for k in keys {
                out.system.lines.push(DesiredLine {
                    path: path.clone(),
                    regexp: None,
                    line: Some(k),
                    state: Presence::Present,
                    create: true,
                    owner: owner.clone(),
                    mode: Some(0o600),
                    role: self.role.name.clone(),
                    phase: self.phase,
                    selected: self.selected,
                });
            }
        }
        Ok(())
    }
}

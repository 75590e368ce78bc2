//! The resources that are mostly files: sysctl values (a sysctl.d file and
//! the live value), cron jobs (a cron.d file), lines of unmanaged files;
//! and guarded commands.

use super::role::{RoleScope, Seen};
use super::system::*;
use super::*;

impl RoleScope<'_> {
    /// The text of `{{ ansible_managed }}` as a comment header.
    fn managed_header(&self) -> String {
        format!("# {}\n", self.r.project.file.ansible_managed)
    }

    pub(super) fn sysctl(&self, out: &mut DesiredHost, seen: &mut Seen) -> Result<()> {
        let mut files: IndexMap<String, String> = IndexMap::new();
        for (i, s) in self.role.spec.sysctl.iter().enumerate() {
            let at = self.at("sysctl", i);
            if !self.when(at, &s.when)? {
                continue;
            }
            let key = self.field(at, "name", &s.name)?;
            if !valid_sysctl(&key) {
                return Err(self.bad_field(at, "name", &s.name, &key, "not a sysctl key (`net.ipv4.ip_forward`)"));
            }
            let raw = match &s.value {
                serde_yaml::Value::String(v) => self.field(at, "value", v)?,
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => (*b as u8).to_string(),
                _ => {
                    return Err(self.item_err(
                        "sysctl",
                        i,
                        format!("sysctl `{key}`: the value must be a number or a string"),
                    ))
                }
            };
            // the kernel prints vectors tab-separated; compare word by word
            let value = raw.split_whitespace().collect::<Vec<_>>().join(" ");
            if value.is_empty() || !plain(&value) {
                return Err(self.item_err(
                    "sysctl",
                    i,
                    format!("sysctl `{key}`: the value must be one non-empty line"),
                ));
            }
            if out.system.sysctl.iter().any(|x| x.key == key) {
                return Err(self.item_err("sysctl", i, format!("sysctl `{key}` is declared twice on this host")));
            }
            let file = match &s.file {
                Some(f) => self.field(at, "file", f)?,
                None => format!("60-deploy-{}.conf", self.role.name),
            };
            if file.contains('/') || !file.ends_with(".conf") || !plain(&file) {
                return Err(self.item_err(
                    "sysctl",
                    i,
                    format!("sysctl file `{file}`: a file name in /etc/sysctl.d ending in .conf"),
                ));
            }
            let compat = self.r.project.file.ansible_compat;
            let text = files.entry(file).or_insert_with(|| if compat { String::new() } else { self.managed_header() });
            text.push_str(&if compat { format!("{key}={value}\n") } else { format!("{key} = {value}\n") });
            out.system.sysctl.push(DesiredSysctl {
                key,
                value,
                role: self.role.name.clone(),
                phase: self.phase,
                selected: self.selected,
            });
        }
        for (file, text) in files {
            let dest = format!("/etc/sysctl.d/{file}");
            self.claim(&dest, seen)?;
            let mut f = DesiredFile::generated(&dest, &self.role.name, "sysctl", text.into_bytes(), self.phase);
            f.selected = self.selected;
            out.files.push(f);
        }
        Ok(())
    }

    pub(super) fn cron(&self, out: &mut DesiredHost, seen: &mut Seen) -> Result<()> {
        let mut files: IndexMap<String, (String, Vec<String>)> = IndexMap::new();
        for (i, c) in self.role.spec.cron.iter().enumerate() {
            let at = self.at("cron", i);
            if !self.when(at, &c.when)? {
                continue;
            }
            let (name, schedule) = (self.field(at, "name", &c.name)?, self.field(at, "schedule", &c.schedule)?);
            let (user, job) = (self.field(at, "user", &c.user)?, self.field(at, "job", &c.job)?);
            let file = match &c.file {
                Some(f) => self.field(at, "file", f)?,
                None => format!("deploy-{}", self.role.name),
            };
            let written_file = c.file.clone().unwrap_or_else(|| file.clone());
            let bad = if !valid_cron_file(&file) {
                Some((
                    "file",
                    written_file.as_str(),
                    &file,
                    "cron skips file names with anything but letters, digits, _ and -".to_string(),
                ))
            } else if !valid_schedule(&schedule) {
                Some((
                    "schedule",
                    c.schedule.as_str(),
                    &schedule,
                    format!("cron `{name}`: not five fields (`30 3 * * *`) or a @keyword (`@daily`)"),
                ))
            } else if !valid_account(&user) {
                Some(("user", c.user.as_str(), &user, format!("cron `{name}`: not a user name")))
            } else if name.contains('\n') {
                Some(("name", c.name.as_str(), &name, "a cron job's name must be one line".to_string()))
            } else if job.trim().is_empty() || job.contains('\n') {
                Some(("job", c.job.as_str(), &job, format!("cron `{name}`: the job must be one non-empty line")))
            } else if job.contains('%') {
                Some((
                    "job",
                    c.job.as_str(),
                    &job,
                    format!("cron `{name}`: cron turns `%` in a job into a newline; write it as `\\%`"),
                ))
            } else {
                None
            };
            if let Some((key, written, rendered, why)) = bad {
                return Err(self.bad_field(at, key, written, rendered, &why));
            }
            let compat = self.r.project.file.ansible_compat;
            let (text, users) = files.entry(file).or_insert_with(|| {
                let head = "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";
                (if compat { String::new() } else { format!("{}{head}", self.managed_header()) }, vec![])
            });
            let marker = if compat { "#Ansible: " } else { "# " };
            text.push_str(&format!("{marker}{name}\n{schedule} {user} {job}\n"));
            if !users.contains(&user) {
                users.push(user);
            }
        }
        for (file, (text, users)) in files {
            let dest = format!("/etc/cron.d/{file}");
            self.claim(&dest, seen)?;
            let mut f = DesiredFile::generated(&dest, &self.role.name, "cron", text.into_bytes(), self.phase);
            f.selected = self.selected;
            // cron ignores a job whose user does not exist: refuse it instead
            let checks: Vec<String> = users.iter().map(|u| format!("getent passwd {u} >/dev/null")).collect();
            f.validate = Some(format!("{} && test -s %s", checks.join(" && ")));
            out.files.push(f);
        }
        Ok(())
    }

    pub(super) fn lines(&self, out: &mut DesiredHost, _seen: &mut Seen) -> Result<()> {
        for (i, l) in self.role.spec.lines.iter().enumerate() {
            let at = self.at("lines", i);
            if !self.when(at, &l.when)? {
                continue;
            }
            let path = self.field(at, "path", &l.path)?;
            check_dest(&path).map_err(|m| self.bad_field(at, "path", &l.path, &path, &m))?;
            let regexp = self.field_opt(at, "regexp", l.regexp.as_deref())?;
            if let Some(r) = &regexp {
                if let Err(e) = fancy_regex::Regex::new(r) {
                    let written = l.regexp.as_deref().unwrap_or_default();
                    return Err(self.bad_field(at, "regexp", written, r, &format!("lines `{path}`: {e}")));
                }
            }
            let line = self.field_opt(at, "line", l.line.as_deref())?;
            out.system.lines.push(DesiredLine {
                path,
                regexp,
                line,
                state: l.state,
                create: l.create,
                owner: None,
                mode: None,
                role: self.role.name.clone(),
                phase: self.phase,
                selected: self.selected,
            });
        }
        Ok(())
    }

    pub(super) fn commands(&self, out: &mut DesiredHost) -> Result<()> {
        for (i, c) in self.role.spec.commands.iter().enumerate() {
            let at = self.at("commands", i);
            if !self.when(at, &c.when)? {
                continue;
            }
            let run = match &c.run {
                crate::load::system::RunSpec::Argv(words) => {
                    let run = words.iter().map(|a| self.field(at, "run", a)).collect::<Result<Vec<_>>>()?;
                    // a word may be a script of many lines (`[sh, -c, SCRIPT]`):
                    // the protocol carries it encoded (remote::system::word)
                    if let Some((w, bad)) =
                        words.iter().zip(&run).find(|(_, a)| a.trim().is_empty() || a.contains('\0'))
                    {
                        return Err(self.bad_field(at, "run", w, bad, "a command argument must not be empty"));
                    }
                    run
                }
                crate::load::system::RunSpec::Line(line) => {
                    let text = self.field(at, "run", line)?;
                    match words(&text) {
                        Some(w) if !w.is_empty() => w,
                        _ => {
                            return Err(self.bad_field(
                                at,
                                "run",
                                line,
                                &text,
                                "not a command line (empty, or a quote left open)",
                            ))
                        }
                    }
                }
            };
            let label = match &c.name {
                Some(n) => self.field(at, "name", n)?,
                None => one_line(&run.join(" ")),
            };
            if !plain(&label) {
                return Err(self.bad_field(
                    at,
                    "name",
                    c.name.as_deref().unwrap_or_default(),
                    &label,
                    "a command's name must be one line",
                ));
            }
            let creates = self.field_opt(at, "creates", c.creates.as_deref())?;
            let removes = self.field_opt(at, "removes", c.removes.as_deref())?;
            for (k, w, p) in [("creates", &c.creates, &creates), ("removes", &c.removes, &removes)] {
                if let (Some(w), Some(p)) = (w, p) {
                    check_dest(p).map_err(|m| self.bad_field(at, k, w, p, &format!("command `{label}`: {m}")))?;
                }
            }
            let unless = self.field_opt(at, "unless", c.unless.as_deref())?;
            let onlyif = self.field_opt(at, "onlyif", c.onlyif.as_deref())?;
            for (k, w, g) in [("unless", &c.unless, &unless), ("onlyif", &c.onlyif, &onlyif)] {
                if let (Some(w), Some(g)) = (w, g.as_ref().filter(|g| !plain(g))) {
                    return Err(self.bad_field(at, k, w, g, &format!("command `{label}`: a guard must be one line")));
                }
            }
            out.system.commands.push(DesiredCommand {
                label,
                run,
                creates,
                removes,
                unless,
                onlyif,
                timeout: c.timeout.0,
                role: self.role.name.clone(),
                phase: self.phase,
                selected: self.selected,
            });
        }
        Ok(())
    }
}

/// After every role: a lines file must not also be a managed path (one
/// path, one owner), and a unit's restart_on/reload_on must name paths
/// this host manages.
pub(super) fn check_system(r: &Renderer, out: &DesiredHost) -> Result<()> {
    let managed = |p: &str| out.files.iter().any(|f| f.dest == p) || out.dirs.iter().any(|d| d.path == p);
    for l in &out.system.lines {
        if managed(&l.path) {
            let role = &r.project.roles[&l.role];
            return Err(Error::Render {
                host: out.host.clone(),
                file: role.spec_path.clone(),
                line: role.text.lines().position(|t| t.contains(&format!("path: {}", l.path))).map(|i| i + 1),
                message: format!(
                    "lines `{}`: the file is also a managed file; put the line in its template instead",
                    l.path
                ),
            });
        }
    }
    for u in &out.system.units {
        if let Some(p) = u
            .restart_on
            .iter()
            .chain(&u.reload_on)
            .find(|p| !managed(p) && !out.system.lines.iter().any(|l| &l.path == *p))
        {
            let role = &r.project.roles[&u.role];
            return Err(Error::Render {
                host: out.host.clone(),
                file: role.spec_path.clone(),
                line: role.text.lines().position(|l| l.contains(p.as_str())).map(|i| i + 1),
                message: format!(
                    "unit `{}`: restart_on/reload_on `{p}` is not a path this host manages, so it could never change",
                    u.name
                ),
            });
        }
    }
    Ok(())
}

/// A command shown on one line: a script's first line, and `...` for the rest.
fn one_line(s: &str) -> String {
    let mut lines = s.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().replace('\t', " ");
    if lines.next().is_some() {
        format!("{first} ...")
    } else {
        first
    }
}

/// A command line split into words as a shell would (quotes, backslashes),
/// a `{{ ... }}` or `{% ... %}` kept whole in its word; None on an
/// unclosed quote.
pub(crate) fn words(line: &str) -> Option<Vec<String>> {
    let c: Vec<char> = line.chars().collect();
    let (mut out, mut cur, mut any, mut i) = (Vec::new(), String::new(), false, 0);
    while i < c.len() {
        let ch = c[i];
        if ch == '{' && matches!(c.get(i + 1), Some('{' | '%')) {
            let close = if c[i + 1] == '{' { "}}" } else { "%}" };
            let rest: String = c[i..].iter().collect();
            let end = rest.find(close).map(|e| e + 2).unwrap_or(rest.len());
            cur.push_str(&rest[..end]);
            i += rest[..end].chars().count();
            any = true;
            continue;
        }
        match ch {
            '\'' => {
                let end = c[i + 1..].iter().position(|x| *x == '\'')? + i + 1;
                cur.extend(&c[i + 1..end]);
                i = end;
                any = true;
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' && i + 1 < c.len() {
                        i += 1;
                    }
                    cur.push(c[i]);
                    i += 1;
                }
                if i >= c.len() {
                    return None;
                }
                any = true;
            }
            '\\' if i + 1 < c.len() => {
                cur.push(c[i + 1]);
                i += 1;
                any = true;
            }
            x if x.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            x => {
                cur.push(x);
                any = true;
            }
        }
        i += 1;
    }
    if any {
        out.push(cur);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn a_command_line_splits_into_words_with_templates_whole() {
        let w = |l: &str| words(l).unwrap();
        assert_eq!(
            w("dd if=/dev/zero of={{ swap_file }} bs=1M"),
            ["dd", "if=/dev/zero", "of={{ swap_file }}", "bs=1M"]
        );
        assert_eq!(w("echo 'a b' \"c d\" e\\ f"), ["echo", "a b", "c d", "e f"]);
        assert_eq!(w("x {{ a | join(' ') }} y"), ["x", "{{ a | join(' ') }}", "y"]);
        assert_eq!(words("echo 'open"), None);
    }
}

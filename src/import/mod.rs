//! `deploy import ansible PATH`: an Ansible repository (ansible.cfg, the
//! inventory with group_vars and host_vars, the playbook's plays and their
//! roles) written as a deploy repository: deploy.yml with a phase per play,
//! a role.yml per role, templates, files and defaults copied unchanged.
//! Every task is converted or listed with its file:line, its module and why
//! not, and left in role.yml as a comment: nothing is dropped silently.

mod playbook;
mod tasks;
mod walk;

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};
use tasks::Converted;

/// A task that was not converted.
#[derive(Debug, Clone)]
pub(crate) struct Unconverted {
    pub(crate) file: PathBuf,
    pub(crate) line: Option<usize>,
    pub(crate) module: String,
    pub(crate) why: String,
}

/// What an import did.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) converted: usize,
    pub(crate) nothing: Vec<String>,
    /// Converted, with a remark (what was dropped or differs).
    pub(crate) notes: Vec<String>,
    pub(crate) unconverted: Vec<Unconverted>,
    /// Every handler and what it became, by handlers file.
    pub(crate) handlers: Vec<String>,
    /// (handler, what it became) of the role being converted.
    handled: Vec<(String, String)>,
    /// The playbook's directory.
    book_dir: PathBuf,
}

/// What import reads of ansible.cfg's [defaults].
#[derive(Debug, Default)]
pub(crate) struct AnsibleCfg {
    inventory: Option<PathBuf>,
    roles: Vec<PathBuf>,
    remote_user: Option<String>,
    private_key_file: Option<String>,
    ansible_managed: Option<String>,
    /// vault_password_file, resolved against the repository.
    pub(crate) vault_password_file: Option<PathBuf>,
    /// The password file of vault_identity_list's first identity.
    pub(crate) identity_password_file: Option<PathBuf>,
}

pub(crate) fn ansible_cfg(src: &Path) -> AnsibleCfg {
    let text = std::fs::read_to_string(src.join("ansible.cfg")).unwrap_or_default();
    let mut c = AnsibleCfg::default();
    let mut in_defaults = false;
    let path = |v: &str| {
        if v.starts_with('~') || v.starts_with('/') {
            v.to_string()
        } else {
            src.join(v).display().to_string()
        }
    };
    for l in text.lines().map(str::trim) {
        if l.starts_with('[') {
            in_defaults = l == "[defaults]";
        } else if let (true, Some((k, v))) = (in_defaults, l.split_once('=')) {
            let v = v.trim();
            match k.trim() {
                "inventory" => c.inventory = Some(src.join(v)),
                "roles_path" => c.roles.extend(v.split(':').map(|p| src.join(p.trim()))),
                "remote_user" => c.remote_user = Some(v.to_string()),
                "private_key_file" => c.private_key_file = Some(path(v)),
                "ansible_managed" => c.ansible_managed = Some(v.to_string()),
                "vault_password_file" => c.vault_password_file = Some(PathBuf::from(path(v))),
                // `label@file, ...`: the first identity's password file, unless
                // vault_password_file names one
                "vault_identity_list" => {
                    let first = v.split(',').next().unwrap_or_default().trim();
                    let file = first.split_once('@').map(|(_, f)| f).unwrap_or(first).trim();
                    if !file.is_empty() && file != "prompt" {
                        c.identity_password_file = Some(PathBuf::from(path(file)));
                    }
                }
                _ => {}
            }
        }
    }
    c.roles.push(src.join("roles"));
    c
}

/// ansible.cfg's remote_user and private_key_file, as the lowest-precedence
/// vars of every host (where Ansible ranks them too).
fn connection_vars(cfg: &AnsibleCfg, out: &Path) -> Result<()> {
    let mut m = Mapping::new();
    if let Some(u) = &cfg.remote_user {
        m.insert("ansible_user".into(), u.clone().into());
    }
    if let Some(k) = &cfg.private_key_file {
        m.insert("ansible_ssh_private_key_file".into(), k.clone().into());
    }
    if m.is_empty() {
        return Ok(());
    }
    let dir = out.join("inventory/group_vars/all");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let text = format!(
        "# from ansible.cfg [defaults] remote_user and private_key_file, by `deploy import ansible`\n{}",
        serde_yaml::to_string(&m).unwrap_or_default()
    );
    let f = dir.join("ansible_cfg.yml");
    std::fs::write(&f, text).map_err(|e| Error::io(&f, e))
}

/// A YAML scalar for any text: quoted.
fn yaml_str(s: &str) -> String {
    serde_yaml::to_string(&Value::String(s.to_string())).unwrap_or_default().trim_end().to_string()
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for e in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let p = e.map_err(|e| Error::io(from, e))?.path();
        let t = to.join(p.file_name().unwrap_or_default());
        if p.is_dir() {
            copy_tree(&p, &t)?;
        } else {
            std::fs::copy(&p, &t).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

fn read_yaml(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    crate::load::yaml::parse(path, &crate::load::yaml::as_ansible_reads_it(path, &text).0)
}

/// The inventory: copied as it is (YAML as hosts.yml, INI as hosts), with
/// group_vars and host_vars beside it or beside the playbook.
fn inventory(src: &Path, cfg: Option<PathBuf>, out: &Path) -> Result<()> {
    let candidates = [
        cfg,
        Some(src.join("inventory")),
        Some(src.join("hosts")),
        Some(src.join("inventory.yml")),
        Some(src.join("hosts.yml")),
    ];
    let inv = candidates.into_iter().flatten().find(|p| p.exists()).ok_or_else(|| {
        Error::invalid(src, "no inventory: ansible.cfg names none, and there is no inventory/, hosts or hosts.yml")
    })?;
    let dest = out.join("inventory");
    std::fs::create_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
    // what Ansible reads of a directory: YAML files and files without an
    // extension (INI); it skips *.ini there. A file becomes itself, an INI
    // file without extension NAME.ini (deploy reads `hosts` and *.ini).
    let (files, dir) = if inv.is_dir() {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(&inv)
            .map_err(|e| Error::io(&inv, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| match p.extension().and_then(|e| e.to_str()) {
                None => !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')),
                Some(e) => e == "yml" || e == "yaml",
            })
            .collect();
        fs.sort();
        if fs.is_empty() {
            return Err(Error::invalid(&inv, "no inventory file in it (YAML, or INI without an extension)"));
        }
        (fs, inv.clone())
    } else {
        (vec![inv.clone()], inv.parent().unwrap_or(src).to_path_buf())
    };
    for file in &files {
        let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let target = match file.extension().and_then(|e| e.to_str()) {
            Some("yml" | "yaml") => name,
            _ if name == "hosts" => name,
            _ => format!("{}.ini", name.trim_end_matches(".ini")),
        };
        std::fs::copy(file, dest.join(&target)).map_err(|e| Error::io(file, e))?;
    }
    for sub in ["group_vars", "host_vars"] {
        for base in [&dir, &src.to_path_buf()] {
            if base.join(sub).is_dir() && !dest.join(sub).exists() {
                copy_tree(&base.join(sub), &dest.join(sub))?;
            }
        }
    }
    Ok(())
}

/// A role.yml entry and the comments that follow it.
type Commented = (Mapping, Vec<String>);

/// A role.yml being written: sections of entries, and the tasks left as comments.
#[derive(Default)]
struct RoleYml {
    /// Sections in order of first use; each entry with the comments of the
    /// unconverted tasks that came after it.
    sections: Vec<(&'static str, Vec<Commented>)>,
    /// Comments of tasks before any converted one.
    head: Vec<String>,
    /// The entry the last converted task made (section, index).
    last: Option<(usize, usize)>,
    /// The playbook's directory, which `{{ playbook_dir }}` names.
    book_dir: PathBuf,
    /// Files from elsewhere the role needs: (source, templates|files, name).
    assets: Vec<(PathBuf, &'static str, String)>,
    /// Names the role's tasks `register:` or `set_fact:` (neither of which
    /// deploy has when it renders).
    registered: Vec<String>,
    /// Where the role's templates are copied.
    templates: PathBuf,
}

impl RoleYml {
    /// A not-converted task, left as a comment where it would go: after the
    /// entry of the task before it.
    fn comment(&mut self, c: String) {
        match self.last {
            Some((s, e)) => self.sections[s].1[e].1.push(c),
            None => self.head.push(c),
        }
    }

    fn add(&mut self, section: &'static str, e: Mapping) {
        let si = match self.sections.iter().position(|(s, _)| *s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section, vec![]));
                self.sections.len() - 1
            }
        };
        // one entry per unit or user: a handler's restart_on joins the
        // unit's task, an authorized_key the user's
        if section == "units" || section == "users" {
            if let Some(ui) = self.sections[si].1.iter().position(|(u, _)| u.get("name") == e.get("name")) {
                let u = &mut self.sections[si].1[ui].0;
                for (k, v) in e {
                    match (u.get_mut(&k), v) {
                        (Some(Value::Sequence(have)), Value::Sequence(more)) => {
                            have.extend(more.into_iter().filter(|x| !have.contains(x)).collect::<Vec<_>>())
                        }
                        (None, v) => {
                            u.insert(k, v);
                        }
                        _ => {}
                    }
                }
                self.last = Some((si, ui));
                return;
            }
        }
        self.sections[si].1.push((e, vec![]));
        self.last = Some((si, self.sections[si].1.len() - 1));
    }

    /// Why a condition cannot be converted: it reads a task's registered
    /// result, `ansible_check_mode`, or a host fact, none of which deploy
    /// has when it renders.
    fn unreadable(&self, when: &str) -> Option<String> {
        static WORD: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
        let re = WORD.get_or_init(|| fancy_regex::Regex::new(r"(?<![\w.'\x22])[A-Za-z_]\w*").expect("valid"));
        // names of the connection and of the inventory, which deploy has
        const KNOWN: [&str; 8] = [
            "ansible_host",
            "ansible_port",
            "ansible_user",
            "ansible_managed",
            "ansible_connection",
            "ansible_python_interpreter",
            "ansible_ssh_private_key_file",
            "ansible_become",
        ];
        for m in re.find_iter(when).flatten() {
            let name = m.as_str();
            if self.registered.iter().any(|r| r == name) {
                return Some(format!(
                    "when: reads `{name}`, the registered result of another task, which deploy does not keep: not converted yet"
                ));
            }
            if name == "ansible_check_mode" {
                return Some("when: reads ansible_check_mode: deploy's --check never applies anything, so write the task for the apply".into());
            }
            // the facts deploy gathers are fine; any other ansible_ name is not
            let gathered = name == "ansible_facts"
                || name.strip_prefix("ansible_").is_some_and(|n| crate::load::FACTS.contains(&n));
            if name.starts_with("ansible_") && !gathered && !KNOWN.contains(&name) {
                return Some(format!("when: reads `{name}`, a fact or variable deploy does not have"));
            }
        }
        None
    }

    /// Why a template entry cannot be written: its template reads what a
    /// task registered or set_fact set, which deploy has not when it renders.
    fn template_reads_results(&self, entry: &Mapping) -> Option<String> {
        let name = entry.get("template").and_then(Value::as_str).filter(|t| !t.contains("{{"))?;
        let text = std::fs::read_to_string(self.templates.join(name)).ok()?;
        static WORD: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
        let re = WORD.get_or_init(|| fancy_regex::Regex::new(r"(?<![\w.])[A-Za-z_]\w*").expect("valid"));
        let found =
            re.find_iter(&text).flatten().map(|m| m.as_str()).find(|w| self.registered.iter().any(|r| r == w))?;
        Some(format!(
            "template {name} reads `{found}`, which another task registers or sets with set_fact, and deploy does not keep: not converted yet"
        ))
    }

    /// A file whose `src:` or `template:` is under `{{ playbook_dir }}`: the
    /// file is copied into the role (files/ or templates/), and named there.
    fn local_source(&mut self, entry: &mut Mapping) -> std::result::Result<(), String> {
        for (key, sub) in [("src", "files"), ("template", "templates")] {
            let Some(v) = entry.get(key).and_then(Value::as_str) else { continue };
            let Some(rest) = ["{{ playbook_dir }}", "{{playbook_dir}}"].iter().find_map(|p| v.strip_prefix(p)) else {
                continue;
            };
            let from = self.book_dir.join(rest.trim_start_matches('/'));
            if rest.contains("{{") || !from.is_file() {
                return Err(format!("{key} `{v}`: {} is not a file of the repository", from.display()));
            }
            let name = from.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let name = format!("playbook-{name}");
            self.assets.push((from, sub, name.clone()));
            entry.insert(key.into(), name.into());
        }
        Ok(())
    }

    /// Whether this role writes what can shut the controller out: sshd's
    /// configuration, or a firewall's (nftables, iptables, ufw).
    fn locks_out(&self) -> bool {
        const PATHS: [&str; 5] = ["/etc/ssh/", "/etc/nftables", "/etc/iptables", "/etc/ufw", "/etc/firewalld"];
        self.sections.iter().any(|(section, entries)| {
            entries.iter().any(|(e, _)| {
                let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                match *section {
                    "files" | "lines" => {
                        let p = if *section == "files" { field("dest") } else { field("path") };
                        PATHS.iter().any(|x| p.starts_with(x))
                    }
                    "packages" => {
                        matches!(field("name").as_str(), "ufw" | "nftables" | "iptables-persistent" | "firewalld")
                    }
                    _ => false,
                }
            })
        })
    }

    fn text(&self) -> String {
        let mut out = String::from("# imported from Ansible by `deploy import ansible`\n");
        let comments = |out: &mut String, cs: &[String]| {
            for c in cs {
                out.push_str(&format!("# not converted: {c}\n"));
            }
        };
        comments(&mut out, &self.head);
        for (section, entries) in &self.sections {
            out.push_str(&format!("{section}:\n"));
            for (e, cs) in entries {
                out.push_str(
                    &serde_yaml::to_string(&Value::Sequence(vec![Value::Mapping(e.clone())])).unwrap_or_default(),
                );
                comments(&mut out, cs);
            }
        }
        out
    }
}

/// Handlers by name: what a `notify` of them turns into.
fn handlers(dir: &Path) -> Result<Vec<(String, Mapping)>> {
    let file = dir.join("handlers/main.yml");
    if !file.is_file() {
        return Ok(vec![]);
    }
    let Value::Sequence(items) = read_yaml(&file)? else { return Ok(vec![]) };
    Ok(items
        .into_iter()
        .filter_map(|h| h.as_mapping().cloned())
        .filter_map(|h| Some((h.get("listen").or_else(|| h.get("name")).and_then(Value::as_str)?.to_string(), h)))
        .collect())
}

/// `notify:` of a file task: a unit restarted (reloaded) by a handler
/// restarts (reloads) when the file changes; a command handler becomes the
/// file's on_change. Returns (handler, what it became) for the report.
fn notify(
    task: &Mapping,
    path: &str,
    entry: &mut Mapping,
    hs: &[(String, Mapping)],
    role: &mut RoleYml,
) -> Vec<(String, String)> {
    let names: Vec<String> = match task.get("notify") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(l)) => l.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        _ => return vec![],
    };
    let mut became = Vec::new();
    for n in names {
        let Some((_, h)) = hs.iter().find(|(k, _)| *k == n) else {
            role.comment(format!("notify `{n}` of {path}: no such handler"));
            became.push((n, format!("notified by {path}, but no handler has that name or listen:")));
            continue;
        };
        let what = match tasks::module(h) {
            Some((m, a, _)) if matches!(m.as_str(), "systemd" | "service" | "systemd_service") => {
                match a.get("name").and_then(tasks::text) {
                    // daemon_reload alone: deploy reloads systemd when a unit file changes
                    None => "daemon-reload: deploy reloads systemd itself when a unit file changes".to_string(),
                    Some(unit) => {
                        let unit = if unit.contains('.') { unit } else { format!("{unit}.service") };
                        let key = if a.get("state").and_then(Value::as_str) == Some("reloaded") {
                            "reload_on"
                        } else {
                            "restart_on"
                        };
                        let mut u = Mapping::new();
                        u.insert("name".into(), unit.clone().into());
                        u.insert(key.into(), Value::Sequence(vec![path.into()]));
                        role.add("units", u);
                        format!("{key} of unit {unit}: {path}")
                    }
                }
            }
            Some((m, _, Some(line))) if matches!(m.as_str(), "command" | "shell") => {
                entry.insert("on_change".into(), line.trim().into());
                format!("on_change of {path}")
            }
            Some((m, _, _)) if m.contains("docker_compose") => {
                "deploy's own recreate of exactly the services that read the changed file (no restart needed)"
                    .to_string()
            }
            Some((m, ..)) => {
                role.comment(format!("handler `{n}` ({m}) notified by {path}: not converted"));
                format!("{m}: not converted")
            }
            None => {
                role.comment(format!("handler `{n}`: no module"));
                "no module: not converted".to_string()
            }
        };
        became.push((n, what));
    }
    became
}

/// A task with `loop:` / `with_items:` over a literal list, as one task per
/// item with `{{ item }}` and `{{ item.KEY }}` put in; any other use of the
/// item, or a loop over a variable, is not converted.
fn expand_loop(task: &Mapping) -> std::result::Result<Vec<Mapping>, String> {
    let Some(list) = task.get("loop").or_else(|| task.get("with_items")) else { return Ok(vec![task.clone()]) };
    let Value::Sequence(items) = list else {
        return Err("loop over a variable: write one entry per item, or a list in role.yml".into());
    };
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
        _ => None,
    };
    fn put_in(v: &Value, item: &Value, text: &dyn Fn(&Value) -> Option<String>) -> std::result::Result<Value, String> {
        Ok(match v {
            Value::String(s) => {
                let mut out = s.clone();
                for (pat, val) in [("{{ item }}", Some(item)), ("{{item}}", Some(item))] {
                    if let Some(t) = val.and_then(text) {
                        out = out.replace(pat, &t);
                    }
                }
                if let Value::Mapping(m) = item {
                    for (k, val) in m {
                        let (Some(k), Some(t)) = (k.as_str(), text(val)) else { continue };
                        out = out.replace(&format!("{{{{ item.{k} }}}}"), &t).replace(&format!("{{{{item.{k}}}}}"), &t);
                    }
                }
                if out.contains("item") && out.contains("{{") {
                    let shown = s.trim().replace('\n', "\\n");
                    return Err(format!("loop item used in an expression (`{shown}`): write one entry per item"));
                }
                Value::String(out)
            }
            Value::Mapping(m) => {
                let mut o = Mapping::new();
                for (k, x) in m {
                    o.insert(k.clone(), put_in(x, item, text)?);
                }
                Value::Mapping(o)
            }
            Value::Sequence(l) => {
                Value::Sequence(l.iter().map(|x| put_in(x, item, text)).collect::<std::result::Result<_, _>>()?)
            }
            other => other.clone(),
        })
    }
    let mut out = Vec::new();
    for item in items {
        let mut t = Mapping::new();
        for (k, v) in task {
            if matches!(k.as_str(), Some("loop" | "with_items" | "loop_control")) {
                continue;
            }
            t.insert(k.clone(), put_in(v, item, &text)?);
        }
        out.push(t);
    }
    Ok(out)
}

/// Convert one task of a role into `r`, or report why not.
fn one_task(
    root: &Path,
    file: &Path,
    line: Option<usize>,
    task: &Mapping,
    hs: &[(String, Mapping)],
    r: &mut RoleYml,
    report: &mut Report,
) {
    let shown = file.strip_prefix(root).unwrap_or(file);
    let where_ = format!("{}:{}", shown.display(), line.map(|l| l.to_string()).unwrap_or_default());
    let module = tasks::module(task).map(|m| m.0).unwrap_or_default();
    let when = match task.get("when") {
        Some(Value::String(w)) => Some(w.clone()),
        Some(Value::Sequence(l)) if l.len() == 1 => l[0].as_str().map(String::from),
        Some(Value::Sequence(l)) => {
            Some(l.iter().filter_map(Value::as_str).map(|w| format!("({w})")).collect::<Vec<_>>().join(" and "))
        }
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    };
    let mut not = |why: String, r: &mut RoleYml| {
        r.comment(format!("{where_}: {module}: {why}"));
        report.unconverted.push(Unconverted { file: file.to_path_buf(), line, module: module.clone(), why });
    };
    let mut converted = tasks::convert(task);
    while let Converted::Noted(inner, note) = converted {
        report.notes.push(format!("{where_}: {module}: {note}"));
        converted = *inner;
    }
    let mut handled = Vec::new();
    if let Some(why) = when.as_deref().and_then(|w| r.unreadable(w)) {
        not(why, r);
        return;
    }
    match converted {
        Converted::Entry { section, mut entry, path } => {
            if let Some(w) = &when {
                if !matches!(
                    section,
                    "files"
                        | "dirs"
                        | "links"
                        | "packages"
                        | "units"
                        | "users"
                        | "groups"
                        | "sysctl"
                        | "cron"
                        | "lines"
                        | "commands"
                ) {
                    not(format!("when: on a {section} entry"), r);
                    return;
                }
                entry.insert("when".into(), w.clone().into());
            }
            if let Some(p) = &path {
                handled = notify(task, p, &mut entry, hs, r);
            }
            if let Err(why) = r.local_source(&mut entry) {
                not(why, r);
                return;
            }
            if let Some(why) = r.template_reads_results(&entry) {
                not(why, r);
                return;
            }
            r.add(section, entry);
            report.converted += 1;
        }
        Converted::Many { section, entries } => {
            for mut e in entries {
                if let Some(w) = &when {
                    e.insert("when".into(), w.clone().into());
                }
                r.add(section, e);
            }
            report.converted += 1;
        }
        Converted::Nothing(why) => report.nothing.push(format!("{where_}: {why}")),
        Converted::Not(why) => not(why, r),
        Converted::Noted(..) => unreachable!("unwrapped above"),
    }
    report.handled.extend(handled);
}

/// One task of a role, its loop expanded, converted into `r`: counted once
/// however many items it has, as converted only when every item was.
fn tasks_of(root: &Path, found: &walk::Found, hs: &[(String, Mapping)], r: &mut RoleYml, report: &mut Report) {
    let walk::Found { file, line, task } = found;
    let (file, line) = (file.as_path(), *line);
    let (converted, unconverted) = (report.converted, report.unconverted.len());
    match expand_loop(task) {
        Ok(items) => {
            for t in items {
                one_task(root, file, line, &t, hs, r, report);
            }
        }
        Err(why) => {
            let shown = file.strip_prefix(root).unwrap_or(file).display().to_string();
            let module = tasks::module(task).map(|m| m.0).unwrap_or_default();
            r.comment(format!("{shown}:{}: {module}: {why}", line.unwrap_or(0)));
            report.unconverted.push(Unconverted { file: file.to_path_buf(), line, module, why });
        }
    }
    // a loop's items are one task; an item left unconverted is the task's
    let mut seen = std::collections::HashSet::new();
    let tail = report.unconverted.split_off(unconverted);
    report.unconverted.extend(tail.into_iter().filter(|u| seen.insert(u.why.clone())));
    report.converted = converted + usize::from(report.converted > converted && report.unconverted.len() == unconverted);
}

/// Convert one role into `out/roles/NAME`; whether it writes sshd or
/// firewall configuration.
fn role(dir: &Path, name: &str, out: &Path, report: &mut Report) -> Result<bool> {
    let dest = out.join("roles").join(name);
    for sub in ["templates", "files"] {
        if dir.join(sub).is_dir() {
            copy_tree(&dir.join(sub), &dest.join(sub))?;
        }
    }
    std::fs::create_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
    for (from, to) in [("defaults/main.yml", "defaults.yml"), ("vars/main.yml", "vars.yml")] {
        let p = dir.join(from);
        if p.is_file() {
            std::fs::copy(&p, dest.join(to)).map_err(|e| Error::io(&p, e))?;
        }
    }
    let mut list = Vec::new();
    walk::walk(dir, &dir.join("tasks/main.yml"), &[], &mut list, &mut report.unconverted)?;
    let hs = handlers(dir)?;
    let root = dir.parent().and_then(Path::parent).unwrap_or(dir);
    write_role(root, list, &hs, &dir.join("handlers/main.yml"), &dest, report)
}

/// `list` converted into DEST/role.yml, notifying `hs` (from `hfile`); every
/// handler reported with what it became. Whether the role writes sshd or
/// firewall configuration.
fn write_role(
    root: &Path,
    list: Vec<walk::Found>,
    hs: &[(String, Mapping)],
    hfile: &Path,
    dest: &Path,
    report: &mut Report,
) -> Result<bool> {
    let mut registered: Vec<String> =
        list.iter().filter_map(|f| f.task.get("register").and_then(tasks::text)).collect();
    for f in &list {
        if let Some(("set_fact", a, _)) = tasks::module(&f.task).as_ref().map(|(m, a, x)| (m.as_str(), a, x)) {
            registered.extend(a.keys().filter_map(Value::as_str).filter(|k| *k != "cacheable").map(String::from));
        }
    }
    let templates = dest.join("templates");
    let mut r = RoleYml { book_dir: report.book_dir.clone(), registered, templates, ..Default::default() };
    for found in &list {
        tasks_of(root, found, hs, &mut r, report);
    }
    let hshown = hfile.strip_prefix(root).unwrap_or(hfile).display().to_string();
    let handled = std::mem::take(&mut report.handled);
    for (name, _) in hs {
        let mut what: Vec<&str> = handled.iter().filter(|(n, _)| n == name).map(|(_, w)| w.as_str()).collect();
        what.dedup();
        let what =
            if what.is_empty() { "notified by no converted task: nothing to do".into() } else { what.join("; ") };
        report.handlers.push(format!("{hshown}: `{name}`: {what}"));
    }
    for (name, what) in handled.iter().filter(|(n, _)| !hs.iter().any(|(h, _)| h == n)) {
        report.handlers.push(format!("{hshown}: `{name}`: {what}"));
    }
    std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
    for (from, sub, name) in &r.assets {
        let to = dest.join(sub);
        std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
        std::fs::copy(from, to.join(name)).map_err(|e| Error::io(from, e))?;
    }
    let p = dest.join("role.yml");
    std::fs::write(&p, r.text()).map_err(|e| Error::io(&p, e))?;
    Ok(r.locks_out())
}

/// A phase being written to deploy.yml.
#[derive(Default)]
struct PhaseOut {
    name: String,
    roles: Vec<(String, Option<String>)>,
    hosts: Option<String>,
    comments: Vec<String>,
    deadman: bool,
}

impl PhaseOut {
    fn text(&self) -> String {
        let mut t = String::new();
        for c in &self.comments {
            t.push_str(&format!("  # {c}\n"));
        }
        t.push_str(&format!("  - name: {}\n", self.name));
        if self.roles.iter().all(|(_, w)| w.is_none()) {
            let names: Vec<&str> = self.roles.iter().map(|(n, _)| n.as_str()).collect();
            t.push_str(&format!("    roles: [{}]\n", names.join(", ")));
        } else {
            t.push_str("    roles:\n");
            for (n, w) in &self.roles {
                match w {
                    None => t.push_str(&format!("      - {n}\n")),
                    Some(w) => t.push_str(&format!("      - role: {n}\n        when: {}\n", yaml_str(w))),
                }
            }
        }
        if let Some(h) = &self.hosts {
            t.push_str(&format!("    hosts: {}\n", yaml_str(h)));
        }
        if self.deadman {
            t.push_str("    deadman: 5m\n");
        }
        t
    }
}

/// Import the Ansible repository at `src` into `out`.
pub(crate) fn import_ansible(
    src: &Path,
    playbook: Option<&Path>,
    out: &Path,
    identity: Option<&Path>,
) -> Result<Report> {
    let cfg = ansible_cfg(src);
    inventory(src, cfg.inventory.clone(), out)?;
    connection_vars(&cfg, out)?;
    let role_paths = &cfg.roles;
    let book = match playbook {
        Some(p) => src.join(p),
        None => ["site.yml", "playbook.yml", "main.yml"].iter().map(|n| src.join(n)).find(|p| p.is_file()).ok_or_else(
            || Error::invalid(src, "no site.yml, playbook.yml or main.yml: name the playbook with --playbook"),
        )?,
    };
    let mut report = Report { book_dir: book.parent().unwrap_or(src).to_path_buf(), ..Default::default() };
    let mut phases: Vec<PhaseOut> = Vec::new();
    // whether each converted role writes sshd or firewall configuration
    let mut done: Vec<(String, bool)> = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    for play in playbook::plays(&book, &mut report)? {
        let base = playbook::phase_name(&play.name);
        let mut mine: Vec<(Option<u32>, String, Option<String>, bool)> = Vec::new();
        for slot in &play.slots {
            match slot {
                playbook::Slot::Role { name, when, tags } => {
                    let locks = match done.iter().find(|(n, _)| n == name) {
                        Some((_, l)) => *l,
                        None => {
                            let dir =
                                role_paths.iter().map(|p| p.join(name)).find(|p| p.is_dir()).ok_or_else(|| {
                                    Error::invalid(&play.file, format!("role `{name}` is in no roles_path"))
                                })?;
                            let l = role(&dir, name, out, &mut report)?;
                            done.push((name.clone(), l));
                            l
                        }
                    };
                    mine.push((playbook::phase_tag(tags), name.clone(), when.clone(), locks));
                }
                playbook::Slot::Tasks { name, tasks } => {
                    let dest = out.join("roles").join(name);
                    for sub in ["templates", "files"] {
                        if play.dir.join(sub).is_dir() {
                            copy_tree(&play.dir.join(sub), &dest.join(sub))?;
                        }
                    }
                    let hfile = play.file.clone();
                    let locks = write_role(src, tasks.clone(), &play.handlers, &hfile, &dest, &mut report)?;
                    mine.push((None, name.clone(), None, locks));
                }
            }
        }
        // roles tagged phaseN keep that order, each tag a phase; a role
        // that can lock the controller out gets one of its own, guarded
        let tagged = mine.iter().any(|m| m.0.is_some());
        if tagged {
            let mut last = 0;
            for m in mine.iter_mut() {
                last = m.0.unwrap_or(last);
                m.0 = Some(last);
            }
            mine.sort_by_key(|m| m.0);
        }
        let mut cur: Option<PhaseOut> = None;
        let mut key: Option<(Option<u32>, bool)> = None;
        for (tag, name, when, locks) in mine {
            if key != Some((tag, locks)) || locks {
                phases.extend(cur.take());
                let mut n = match (tag, locks) {
                    (_, true) => format!("{base}-{}", playbook::phase_name(&name)),
                    (Some(t), _) if tagged => format!("{base}-phase{t}"),
                    _ => base.clone(),
                };
                while taken.contains(&n) {
                    n.push_str("-2");
                }
                taken.push(n.clone());
                let mut p = PhaseOut { name: n, hosts: play.hosts.clone(), deadman: locks, ..Default::default() };
                if let Some(t) = &play.templated {
                    p.comments.push(format!(
                        "hosts: {t} in the playbook: deploy takes the environment from its command line"
                    ));
                }
                if locks {
                    p.comments.push(format!(
                        "{name} writes sshd or firewall configuration: a phase of its own under the dead-man switch"
                    ));
                    report.notes.push(format!(
                        "role `{name}` writes sshd or firewall configuration: it has a phase of its own, under the dead-man switch (deadman: 5m), which reverts it unless deploy still gets in"
                    ));
                }
                cur = Some(p);
                key = Some((tag, locks));
            }
            if let Some(p) = cur.as_mut() {
                p.roles.push((name, when));
            }
        }
        phases.extend(cur.take());
    }
    let project = src
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "imported".into());
    let managed = cfg.ansible_managed.as_deref().unwrap_or("Ansible managed");
    let identity = match identity {
        Some(p) => format!("age_identity: {}\n", yaml_str(&p.display().to_string())),
        None => String::new(),
    };
    let phases: String = phases.iter().map(PhaseOut::text).collect();
    let text = format!(
        "# imported from Ansible by `deploy import ansible`: a phase per play, in play order\n\
         project: {project}\n\
         # ansible.cfg's, or Ansible's default\n\
         ansible_managed: {}\n\
         # cron.d and sysctl.d files as Ansible's modules write them, so the hosts\n\
         # it manages are in sync; remove for deploy's own (one rewrite of those)\n\
         ansible_compat: true\n{identity}phases:\n{phases}",
        yaml_str(managed)
    );
    std::fs::write(out.join("deploy.yml"), text).map_err(|e| Error::io(out, e))?;
    Ok(report)
}

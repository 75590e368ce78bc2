//! One Ansible task to deploy's resources: the module's arguments mapped to
//! a role.yml entry, or the reason it is not converted.

use serde_yaml::{Mapping, Value};

/// Keys of a task that are not its module.
const TASK_KEYS: [&str; 24] = [
    "name",
    "when",
    "notify",
    "loop",
    "with_items",
    "become",
    "become_user",
    "tags",
    "register",
    "changed_when",
    "failed_when",
    "vars",
    "ignore_errors",
    "no_log",
    "args",
    "environment",
    "delegate_to",
    "run_once",
    "listen",
    "check_mode",
    "diff",
    "loop_control",
    "until",
    "retries",
];

/// A task converted: the role.yml section and entry, and notes.
#[derive(Debug, Clone)]
pub(crate) enum Converted {
    /// An entry of `section`; `path` is what a handler's restart keys on.
    Entry { section: &'static str, entry: Mapping, path: Option<String> },
    /// Several entries of `section` (one apt task, many packages).
    Many { section: &'static str, entries: Vec<Mapping> },
    /// Nothing to do in deploy (debug, pause, meta): said in the report.
    Nothing(String),
    /// Not converted, with why.
    Not(String),
    /// Converted, with something the import report says about it (what was
    /// dropped, or differs from what Ansible did).
    Noted(Box<Converted>, String),
}

/// A YAML scalar as text.
pub(crate) fn text(v: &Value) -> Option<String> {
    s(v)
}

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(x) => Some(x.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A module argument as text.
fn arg(a: &Mapping, k: &str) -> Option<String> {
    a.get(k).and_then(s)
}

/// A converted entry of `section`.
fn entry(section: &'static str, e: Mapping, path: Option<String>) -> Converted {
    Converted::Entry { section, entry: e, path }
}

fn put(m: &mut Mapping, k: &str, v: impl Into<Value>) {
    m.insert(Value::String(k.into()), v.into());
}

/// The module of a task and its arguments (`module: {k: v}` or the
/// free-form `module: "k=v k2=v2"` / a command line).
pub(crate) fn module(task: &Mapping) -> Option<(String, Mapping, Option<String>)> {
    for (k, v) in task {
        let Some(k) = k.as_str() else { continue };
        if TASK_KEYS.contains(&k) {
            continue;
        }
        let short = k.rsplit('.').next().unwrap_or(k).to_string();
        let mut args = task.get("args").and_then(Value::as_mapping).cloned().unwrap_or_default();
        let mut free = None;
        match v {
            Value::Mapping(m) => args.extend(m.clone()),
            Value::String(text) if matches!(short.as_str(), "command" | "shell" | "raw" | "script") => {
                free = Some(text.clone())
            }
            Value::String(text) => {
                for w in text.split_whitespace() {
                    if let Some((a, b)) = w.split_once('=') {
                        put(&mut args, a, b.trim_matches(|c| c == '"' || c == '\''));
                    }
                }
            }
            _ => {}
        }
        return Some((short, args, free));
    }
    None
}

/// A mode as deploy writes it: a quoted octal string (a template kept as it
/// is, Ansible's absolute symbolic form `u=rw,g=r,o=` turned octal), or why
/// not: a mode relative to the file's own (`+x`, `g-w`) says nothing of
/// what it ends as.
fn mode(v: &Value) -> Result<Option<String>, String> {
    let x = match v {
        // 0644 in YAML 1.1 is octal 420; PyYAML gives the int
        Value::Number(n) => return Ok(n.as_u64().map(|n| format!("0{n:o}"))),
        Value::String(x) => x.trim(),
        _ => return Ok(None),
    };
    if x.contains("{{") {
        return Ok(Some(x.to_string()));
    }
    if !x.is_empty() && x.chars().all(|c| ('0'..='7').contains(&c)) {
        return Ok(Some(if x.starts_with('0') { x.to_string() } else { format!("0{x}") }));
    }
    symbolic(x).map(|m| Some(format!("0{m:03o}"))).ok_or_else(|| {
        format!("mode `{x}` is relative to the mode the file has, or not one deploy reads: write the octal mode it should end with, such as \"0755\"")
    })
}

/// `u=rw,g=r,o=` as a number: every clause `WHO=PERMS`.
fn symbolic(x: &str) -> Option<u32> {
    let mut m = 0;
    for clause in x.split(',') {
        let (who, perms) = clause.split_once('=')?;
        let mut bits = 0;
        for p in perms.chars() {
            bits |= match p {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                _ => return None,
            };
        }
        let who = if who.is_empty() { "a" } else { who };
        for w in who.chars() {
            m |= match w {
                'u' => bits << 6,
                'g' => bits << 3,
                'o' => bits,
                'a' => bits << 6 | bits << 3 | bits,
                _ => return None,
            };
        }
    }
    Some(m)
}

fn copy_attrs(from: &Mapping, to: &mut Mapping) -> Result<(), String> {
    for k in ["owner", "group"] {
        if let Some(v) = from.get(k).and_then(s) {
            put(to, k, v);
        }
    }
    if let Some(m) = from.get("mode").map(mode).transpose()?.flatten() {
        put(to, "mode", m);
    }
    Ok(())
}

/// Convert one task.
pub(crate) fn convert(task: &Mapping) -> Converted {
    let Some((module, a, free)) = module(task) else { return Converted::Not("no module in this task".into()) };
    if let Some(var) = task.get("register") {
        return Converted::Not(format!(
            "register: {}: deploy keeps no task results for later tasks to read",
            s(var).unwrap_or_default()
        ));
    }
    if task.contains_key("loop") || task.contains_key("with_items") {
        return Converted::Not("loop: write one entry per item (not converted yet)".into());
    }
    match module.as_str() {
        "template" | "copy" => conv_template(&module, task, &a, free),
        "file" => conv_file(&module, task, &a, free),
        "apt" | "package" => conv_apt(&module, task, &a, free),
        "systemd" | "service" | "systemd_service" => conv_systemd(&module, task, &a, free),
        "user" | "group" => conv_user(&module, task, &a, free),
        "authorized_key" => conv_authorized_key(&module, task, &a, free),
        "cron" => conv_cron(&module, task, &a, free),
        "sysctl" => conv_sysctl(&module, task, &a, free),
        "lineinfile" => conv_lineinfile(&module, task, &a, free),
        "command" | "shell" => conv_command(&module, task, &a, free),
        "assert" => conv_assert(&module, task, &a, free),
        "docker_compose_v2" | "docker_compose" => conv_docker_compose_v(&module, task, &a, free),
        "debug" | "pause" | "meta" => Converted::Nothing(format!("{module}: nothing to do on a host")),
        other => Converted::Not(format!("module `{other}` has no deploy equivalent yet")),
    }
}

fn conv_template(module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let Some(dest) = arg(a, "dest") else { return Converted::Not("no dest".into()) };
    put(&mut e, "dest", dest.clone());
    if module == "template" {
        put(&mut e, "template", arg(a, "src").unwrap_or_default());
    } else if let Some(c) = arg(a, "content") {
        put(&mut e, "content", c);
    } else if let Some(src) = arg(a, "src").filter(|x| !x.ends_with('/')) {
        put(&mut e, "src", src);
    } else {
        return Converted::Not("copy of a directory (not converted yet)".into());
    }
    if let Err(why) = copy_attrs(a, &mut e) {
        return Converted::Not(why);
    }
    if let Some(v) = arg(a, "validate") {
        put(&mut e, "validate", v);
    }
    entry("files", e, Some(dest))
}

fn conv_file(_module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let Some(path) = arg(a, "path").or_else(|| arg(a, "dest")) else { return Converted::Not("no path".into()) };
    match arg(a, "state").as_deref() {
        Some("directory") => {
            put(&mut e, "path", path.clone());
            if let Err(why) = copy_attrs(a, &mut e) {
                return Converted::Not(why);
            }
            entry("dirs", e, Some(path))
        }
        Some("absent") => Converted::Entry {
            section: "absent",
            entry: Mapping::from_iter([(Value::String("path".into()), Value::String(path))]),
            path: None,
        },
        Some("touch") => {
            put(&mut e, "dest", path.clone());
            put(&mut e, "content", "");
            put(&mut e, "preserve", true);
            if let Err(why) = copy_attrs(a, &mut e) {
                return Converted::Not(why);
            }
            entry("files", e, Some(path))
        }
        Some("link") => {
            let Some(target) = arg(a, "src") else { return Converted::Not("file state=link without src".into()) };
            put(&mut e, "path", path.clone());
            put(&mut e, "target", target);
            let link = entry("links", e, Some(path));
            let dropped: Vec<&str> =
                ["owner", "group", "mode", "force", "follow"].into_iter().filter(|k| a.contains_key(*k)).collect();
            if dropped.is_empty() {
                link
            } else {
                let why = "a link's own owner and mode are not managed, and a file or directory in its place is a conflict, never replaced";
                Converted::Noted(Box::new(link), format!("{} dropped: {why}", dropped.join(", ")))
            }
        }
        other => Converted::Not(format!("file state {} (no deploy equivalent)", other.unwrap_or("file"))),
    }
}

fn conv_apt(_module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let state = match arg(a, "state").as_deref() {
        None | Some("present" | "latest") => "present",
        Some("absent") => "absent",
        Some(o) => return Converted::Not(format!("apt state {o}")),
    };
    let names: Vec<String> = match a.get("name").or_else(|| a.get("pkg")) {
        Some(Value::Sequence(l)) => l.iter().filter_map(s).collect(),
        Some(v) => s(v).map(|x| x.split(',').map(|p| p.trim().to_string()).collect()).unwrap_or_default(),
        None => {
            return Converted::Not("apt without name (update_cache alone: deploy does not run apt-get update)".into())
        }
    };
    let list: Vec<Value> = names
        .into_iter()
        .map(|n| {
            let mut p = Mapping::new();
            put(&mut p, "name", n);
            if state == "absent" {
                put(&mut p, "state", "absent");
            }
            Value::Mapping(p)
        })
        .collect();
    Converted::Many { section: "packages", entries: list.into_iter().filter_map(|v| v.as_mapping().cloned()).collect() }
}

fn conv_systemd(_module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let Some(name) = arg(a, "name") else {
        return Converted::Nothing("daemon_reload alone: deploy reloads systemd when a unit file changes".into());
    };
    let name = if name.contains('.') { name } else { format!("{name}.service") };
    put(&mut e, "name", name);
    match arg(a, "state").as_deref() {
        Some("started") => put(&mut e, "state", "started"),
        Some("stopped") => put(&mut e, "state", "stopped"),
        Some(o @ ("restarted" | "reloaded")) => {
            return Converted::Not(format!(
                "state {o} in a task runs on every deploy; as a handler it becomes restart_on"
            ))
        }
        _ => {}
    }
    if let Some(Value::Bool(b)) = a.get("enabled") {
        put(&mut e, "enabled", *b);
    }
    if arg(a, "scope").as_deref() == Some("user") {
        return Converted::Not(
            "scope: user needs the user's name: write it as a unit with `scope: user, user: NAME`".into(),
        );
    }
    entry("units", e, None)
}

fn conv_user(module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let Some(name) = arg(a, "name") else { return Converted::Not("no name".into()) };
    put(&mut e, "name", name);
    for k in ["uid", "gid", "group", "shell", "home"] {
        if let Some(v) = a.get(k).cloned() {
            put(&mut e, k, v);
        }
    }
    let groups: Option<Vec<Value>> = match a.get("groups") {
        Some(Value::Sequence(l)) => Some(l.iter().filter_map(s).map(Value::String).collect()),
        Some(v) => s(v).map(|g| g.split(',').map(|x| Value::String(x.trim().into())).collect()),
        None => None,
    };
    if let Some(g) = groups {
        if a.get("append") == Some(&Value::Bool(true)) {
            return Converted::Not("groups with append: deploy sets the exact list of groups: list them all".into());
        }
        put(&mut e, "groups", Value::Sequence(g));
    }
    if let Some(Value::Bool(true)) = a.get("system") {
        put(&mut e, "system", true);
    }
    if arg(a, "state").as_deref() == Some("absent") {
        put(&mut e, "state", "absent");
    }
    entry(if module == "user" { "users" } else { "groups" }, e, None)
}

fn conv_authorized_key(_module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let (Some(user), Some(key)) = (arg(a, "user"), arg(a, "key")) else {
        return Converted::Not("no user or key".into());
    };
    put(&mut e, "name", user);
    put(&mut e, "authorized_keys", Value::Sequence(vec![Value::String(key)]));
    if let Some(Value::Bool(true)) = a.get("exclusive") {
        put(&mut e, "exclusive_keys", true);
    }
    entry("users", e, None)
}

fn conv_cron(_module: &str, task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let (Some(name), Some(job)) = (arg(a, "name").or_else(|| task.get("name").and_then(s)), arg(a, "job")) else {
        return Converted::Not("cron without name or job".into());
    };
    let f = |k: &str| arg(a, k).unwrap_or_else(|| "*".into());
    let schedule = match arg(a, "special_time") {
        Some(t) => format!("@{t}"),
        None => format!("{} {} {} {} {}", f("minute"), f("hour"), f("day"), f("month"), f("weekday")),
    };
    put(&mut e, "name", name);
    put(&mut e, "schedule", schedule);
    put(&mut e, "user", arg(a, "user").unwrap_or_else(|| "root".into()));
    put(&mut e, "job", job);
    if arg(a, "state").as_deref() == Some("absent")
        || a.contains_key("env")
        || a.get("disabled") == Some(&Value::Bool(true))
    {
        return Converted::Not("cron state: absent, env or disabled (not converted yet)".into());
    }
    match arg(a, "cron_file") {
        Some(file) => put(&mut e, "file", file.strip_prefix("/etc/cron.d/").unwrap_or(&file).to_string()),
        None => {
            return Converted::Not(
                "a job in the user's crontab: deploy writes /etc/cron.d files; give the task a cron_file: and run it once with Ansible, or remove the crontab line when you switch".into(),
            )
        }
    }
    entry("cron", e, None)
}

fn conv_sysctl(_module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let (Some(name), Some(value)) = (arg(a, "name"), a.get("value").cloned()) else {
        return Converted::Not("no name or value".into());
    };
    put(&mut e, "name", name.clone());
    put(&mut e, "value", value);
    if arg(a, "state").as_deref() == Some("absent") {
        return Converted::Not("sysctl state: absent (not converted yet)".into());
    }
    match arg(a, "sysctl_file") {
        Some(f) if f.starts_with("/etc/sysctl.d/") && f.ends_with(".conf") => {
            put(&mut e, "file", f.trim_start_matches("/etc/sysctl.d/").to_string());
            entry("sysctl", e, None)
        }
        other => Converted::Noted(
            Box::new(entry("sysctl", e, None)),
            format!(
                "Ansible wrote `{name}` into {}; deploy writes its own file in /etc/sysctl.d, and that line stays until you remove it",
                other.unwrap_or_else(|| "/etc/sysctl.conf".into())
            ),
        ),
    }
}

fn conv_lineinfile(_module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let Some(path) = arg(a, "path").or_else(|| arg(a, "dest")) else { return Converted::Not("no path".into()) };
    put(&mut e, "path", path.clone());
    for k in ["regexp", "line"] {
        if let Some(v) = arg(a, k) {
            put(&mut e, k, v);
        }
    }
    if arg(a, "state").as_deref() == Some("absent") {
        put(&mut e, "state", "absent");
    }
    if let Some(Value::Bool(true)) = a.get("create") {
        put(&mut e, "create", true);
    }
    if a.contains_key("insertafter") || a.contains_key("insertbefore") || a.contains_key("backrefs") {
        return Converted::Not("insertafter/insertbefore/backrefs (not converted yet)".into());
    }
    entry("lines", e, Some(path))
}

fn conv_command(module: &str, task: &Mapping, a: &Mapping, free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let line = free.or_else(|| arg(a, "cmd")).unwrap_or_default();
    if task.get("changed_when") == Some(&Value::Bool(false)) {
        // Ansible runs it under --check only with check_mode: false; deploy
        // runs a pre-flight on every plan, --check included
        if task.get("check_mode") != Some(&Value::Bool(false)) {
            return Converted::Not(
                "changed_when: false without check_mode: false: Ansible skips it under --check, and as a pre-flight deploy would run it on every plan; if it only reads, add check_mode: false and import again".into(),
            );
        }
        if line.trim().contains('\n') || a.contains_key("executable") || a.contains_key("argv") {
            return Converted::Not("a pre-flight check is one line of sh: write it as one".into());
        }
        put(&mut e, "command", line.trim().to_string());
        return entry("preflight", e, None);
    }
    if let Some(n) = task.get("name").and_then(s) {
        put(&mut e, "name", n);
    }
    let run: Value = if module == "shell" {
        // a script of any length is one argument of its shell
        let shell = arg(a, "executable").unwrap_or_else(|| "sh".into());
        Value::Sequence(vec![shell.into(), "-c".into(), Value::String(line)])
    } else if let Some(Value::Sequence(argv)) = a.get("argv") {
        Value::Sequence(argv.clone())
    } else {
        // one line, which deploy splits into words after rendering it, as Ansible does
        Value::String(line.trim().to_string())
    };
    put(&mut e, "run", run);
    for k in ["creates", "removes"] {
        if let Some(v) = arg(a, k) {
            put(&mut e, k, v);
        }
    }
    if !e.contains_key("creates") && !e.contains_key("removes") {
        return Converted::Not(
            "a command without creates:, removes: or changed_when: false would run on every deploy".into(),
        );
    }
    entry("commands", e, None)
}

fn conv_assert(_module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let that = match a.get("that") {
        Some(Value::Sequence(l)) => l.iter().filter_map(s).map(|x| format!("({x})")).collect::<Vec<_>>().join(" and "),
        Some(v) => s(v).unwrap_or_default(),
        None => return Converted::Not("assert without that".into()),
    };
    put(&mut e, "that", that);
    if let Some(m) = arg(a, "fail_msg").or_else(|| arg(a, "msg")) {
        put(&mut e, "msg", m);
    }
    entry("preflight", e, None)
}

fn conv_docker_compose_v(_module: &str, _task: &Mapping, a: &Mapping, _free: Option<String>) -> Converted {
    let mut e = Mapping::new();
    let Some(dir) = arg(a, "project_src") else {
        return Converted::Not("docker_compose without project_src".into());
    };
    // without project_name, deploy names the project as Compose does, from
    // the rendered directory (a templated one is rendered first)
    if let Some(project) = arg(a, "project_name") {
        put(&mut e, "project", project);
    }
    put(&mut e, "dir", dir);
    let files: Vec<Value> = match a.get("files") {
        Some(Value::Sequence(l)) => l.clone(),
        _ => vec![Value::String("docker-compose.yml".into())],
    };
    put(&mut e, "files", Value::Sequence(files));
    let mut dropped = Vec::new();
    match arg(a, "state").as_deref() {
        None | Some("present") => {}
        Some("restarted") => dropped.push("state: restarted"),
        Some(o) => return Converted::Not(format!("docker_compose state {o} (not converted)")),
    }
    if arg(a, "recreate").as_deref() == Some("always") {
        dropped.push("recreate: always");
    }
    if a.contains_key("services") {
        dropped.push("services: (deploy runs every service of the files)");
    }
    if dropped.is_empty() {
        return entry("compose", e, None);
    }
    Converted::Noted(
        Box::new(entry("compose", e, None)),
        format!("{} dropped: deploy recreates exactly the services whose inputs changed", dropped.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_deploy_reads_them() {
        let m = |v: &str| mode(&Value::String(v.into()));
        assert_eq!(m("644"), Ok(Some("0644".into())));
        assert_eq!(m("u=rw,g=r,o="), Ok(Some("0640".into())));
        assert_eq!(m("a=rx,u=rwx"), Ok(Some("0755".into())));
        assert_eq!(m("{{ key_mode }}"), Ok(Some("{{ key_mode }}".into())));
        assert!(m("+x").unwrap_err().starts_with("mode `+x` is relative"));
    }
}

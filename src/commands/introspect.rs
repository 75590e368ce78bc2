//! `deploy vars ENV --host H [NAME...] [--origin] [--show-secrets]` and
//! `deploy inventory ENV [--graph | --list]`: what a host's variables
//! resolve to and where each comes from, and the inventory as deploy reads
//! it. Touch no host.

use std::path::Path;

use minijinja::Value;

use crate::engine::DeployArgs;
use crate::error::{exit, Error, Result};
use crate::load::project::Id;
use crate::load::system::{Presence, UnitState};
use crate::render::Renderer;

/// The layer a variable's definition comes from, in words.
fn layer(file: &Path, root: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let s = rel.to_string_lossy();
    let what = if s == "-e" {
        return "-e (extra vars)".into();
    } else if s == "toggle" {
        return "toggle value".into();
    } else if s.starts_with("roles/") {
        "role default"
    } else if s.starts_with("inventory/group_vars/all") {
        "group_vars/all"
    } else if let Some(g) = s.strip_prefix("inventory/group_vars/") {
        let g = g.split(['/', '.']).next().unwrap_or("");
        return format!("group `{g}` ({s})");
    } else if s.starts_with("inventory/host_vars/") {
        "host_vars"
    } else {
        "inventory"
    };
    format!("{what} ({s})")
}

pub(crate) fn vars(args: &DeployArgs, host: &str, names: &[String], origin: bool, show_secrets: bool) -> Result<u8> {
    let r = Renderer::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let hv = r
        .vars
        .get(host)
        .ok_or_else(|| {
            Error::Usage(format!("--host {host}: no such host in `{}` (hosts: {})", args.env, r.hosts.join(", ")))
        })?
        .clone();
    let mut all: Vec<String> = r.layers[host].vars.keys().cloned().collect();
    all.sort();
    let names: Vec<String> = if names.is_empty() { all } else { names.to_vec() };
    let ctx = Value::from_dyn_object(hv.clone());
    for name in &names {
        let Some(raw) = hv.raw(name) else {
            return Err(Error::Usage(format!("host {host} has no variable `{name}`")));
        };
        let value = match ctx.get_attr(name) {
            Ok(v) if !v.is_undefined() => {
                let mut out = String::new();
                crate::render::pyfmt::json(&mut out, &v, None, false, 0, false);
                out
            }
            _ => "<undefined: its template does not resolve>".into(),
        };
        let value = if raw.origin.secret && !show_secrets {
            "<redacted>".into()
        } else if show_secrets {
            value
        } else {
            r.redactor.redact(&value)
        };
        let from = if origin { format!("  # {}", layer(&raw.origin.file, &args.root)) } else { String::new() };
        crate::report::line(&format!("{name}: {value}{from}"));
    }
    Ok(exit::OK)
}

pub(crate) fn inventory(args: &DeployArgs, list: bool) -> Result<u8> {
    let r = Renderer::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let inv = &r.inventory;
    if list {
        let mut hostvars = serde_json::Map::new();
        for h in &r.hosts {
            let c = &r.connection_of(h)?;
            hostvars.insert(
                h.clone(),
                serde_json::json!({"address": c.address, "port": c.port, "user": c.user, "groups": r.layers[h].groups}),
            );
        }
        let mut groups = serde_json::Map::new();
        for (name, g) in &inv.groups {
            let hosts: Vec<&String> = g.hosts.iter().filter(|h| r.hosts.contains(h)).collect();
            groups.insert(name.clone(), serde_json::json!({"hosts": hosts, "children": g.children}));
        }
        groups.insert("_meta".into(), serde_json::json!({ "hostvars": hostvars }));
        // a vaulted ansible_host or user is a secret like any other
        crate::report::line(&r.redactor.redact(&serde_json::to_string_pretty(&groups).unwrap_or_default()));
        return Ok(exit::OK);
    }
    let mut lines = vec![format!("@{}:", args.env)];
    graph(inv, &args.env, "", &mut lines);
    crate::report::line(&lines.join("\n"));
    Ok(exit::OK)
}

/// `ansible-inventory --graph`: children groups, then hosts.
fn graph(inv: &crate::load::inventory::Inventory, group: &str, indent: &str, lines: &mut Vec<String>) {
    let Some(g) = inv.groups.get(group) else { return };
    for c in &g.children {
        lines.push(format!("{indent}  |--@{c}:"));
        graph(inv, c, &format!("{indent}  |  "), lines);
    }
    for h in &g.hosts {
        lines.push(format!("{indent}  |--{h}"));
    }
}

/// `  owner app, group app, mode 0750`: what a path resource declares.
fn attrs(owner: &Option<Id>, group: &Option<Id>, mode: Option<u32>) -> String {
    let mut out = Vec::new();
    if let Some(o) = owner {
        out.push(format!("owner {o}"));
    }
    if let Some(g) = group {
        out.push(format!("group {g}"));
    }
    if let Some(m) = mode {
        out.push(format!("mode {m:04o}"));
    }
    if out.is_empty() {
        String::new()
    } else {
        format!("  {}", out.join(", "))
    }
}

/// Everything a host manages, one line each: kind, what, role, phase.
pub(crate) fn plan_list(args: &DeployArgs, host: &str, facts: Option<&Path>) -> Result<u8> {
    let r = Renderer::load(&args.root, &args.env, &args.keys, &args.extra)?;
    if !r.hosts.iter().any(|h| h == host) {
        return Err(Error::Usage(format!(
            "--host {host}: no such host in `{}` (hosts: {})",
            args.env,
            r.hosts.join(", ")
        )));
    }
    let facts = facts.map(super::facts::read_file).transpose()?;
    let f = facts.as_ref().map(|f| r.fact_vars(host, f.of(host))).unwrap_or_default();
    let d = r.render_host_with(host, None, &f)?;
    let phase = |p: usize| r.project.file.phases.get(p).map(|p| p.name.clone()).unwrap_or_default();
    let mut lines = Vec::new();
    let mut row = |kind: &str, what: &str, role: &str, p: usize| {
        let roles = if role.contains(", ") { "roles" } else { "role" };
        lines.push(format!("{kind:9} {what}  {roles} {role}, phase {}", phase(p)));
    };
    for x in &d.dirs {
        row("dir", &format!("{}{}", x.path, attrs(&x.owner, &x.group, x.mode)), &d.roles_of(&x.path, &x.role), x.phase);
    }
    for f in &d.files {
        let what = if f.secret { format!("{} (secret)", f.dest) } else { f.dest.clone() };
        row("file", &format!("{what}{}", attrs(&f.owner, &f.group, f.mode)), &d.roles_of(&f.dest, &f.role), f.phase);
    }
    for l in &d.links {
        row("link", &format!("{} -> {}", l.path, l.target), &d.roles_of(&l.path, &l.role), l.phase);
    }
    for a in &d.absent {
        row("absent", &a.path, &d.roles_of(&a.path, &a.role), a.phase);
    }
    let s = &d.system;
    for p in &s.packages {
        let version = p.version.as_deref().map(|v| format!("={v}")).unwrap_or_default();
        let absent = if p.state == Presence::Absent { " (absent)" } else { "" };
        let roles = d.roles_of(&format!("package {}", p.name), &p.role);
        row("package", &format!("{}{version}{absent}", p.name), &roles, p.phase);
    }
    for u in &s.units {
        let mut what = u.name.clone();
        if let Some(user) = &u.user {
            what.push_str(&format!(" (user {user})"));
        }
        match u.enabled {
            Some(true) => what.push_str(" enabled"),
            Some(false) => what.push_str(" disabled"),
            None => {}
        }
        match u.state {
            Some(UnitState::Started) => what.push_str(" started"),
            Some(UnitState::Stopped) => what.push_str(" stopped"),
            None => {}
        }
        row("unit", &what, &u.role, u.phase);
    }
    for g in &s.groups {
        let gid = g.gid.map(|n| format!(" gid {n}")).unwrap_or_default();
        let absent = if g.state == Presence::Absent { " (absent)" } else { "" };
        row("group", &format!("{}{gid}{absent}", g.name), &g.role, g.phase);
    }
    for u in &s.users {
        let mut what = u.name.clone();
        for (k, v) in [("uid", u.uid.map(|n| n.to_string())), ("group", u.group.clone())] {
            if let Some(v) = v {
                what.push_str(&format!(" {k} {v}"));
            }
        }
        if let Some(gs) = &u.groups {
            what.push_str(&format!(" groups [{}]", gs.join(", ")));
        }
        for (k, v) in [("home", &u.home), ("shell", &u.shell)] {
            if let Some(v) = v {
                what.push_str(&format!(" {k} {v}"));
            }
        }
        if u.state == Presence::Absent {
            what.push_str(" (absent)");
        }
        row("user", &what, &u.role, u.phase);
    }
    for x in &s.sysctl {
        row("sysctl", &format!("{} = {}", x.key, x.value), &x.role, x.phase);
    }
    for l in &s.lines {
        let what = match (&l.line, l.state) {
            (_, Presence::Absent) => format!("{}: no line matching {}", l.path, l.regexp.as_deref().unwrap_or("")),
            (Some(t), _) => format!("{}: {t}", l.path),
            (None, _) => l.path.clone(),
        };
        row("line", &what, &l.role, l.phase);
    }
    for c in &s.commands {
        let guard = [("creates", &c.creates), ("removes", &c.removes), ("unless", &c.unless), ("onlyif", &c.onlyif)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!(" ({k} {v})")))
            .collect::<String>();
        row("command", &format!("{}{guard}", c.label), &c.role, c.phase);
    }
    for c in &d.compose {
        for s in &c.services {
            row("container", &format!("{}/{}", c.project, s.name), &c.role, c.phase);
        }
    }
    for c in &d.checks {
        let what = match &c.kind {
            crate::render::CheckKind::Http { url, status } => format!("http {url} -> {status}"),
            crate::render::CheckKind::Tcp { address } => format!("tcp {address}"),
            crate::render::CheckKind::Command { command } => format!("command {command}"),
        };
        row("check", &what, &c.role, c.phase);
    }
    crate::report::line(&r.redactor.redact(&lines.join("\n")));
    Ok(exit::OK)
}

//! The Ansible-compatible YAML inventory: groups (with children and vars) and
//! hosts (with inline vars). A group is an environment: `deploy lab` targets
//! every host in group `lab` and its descendants.

use std::path::Path;

use indexmap::{IndexMap, IndexSet};
use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};

/// One group: its direct hosts, child groups and inline vars.
#[derive(Debug, Default, Clone)]
pub(crate) struct Group {
    /// Hosts listed directly under this group.
    pub(crate) hosts: IndexSet<String>,
    /// Names of child groups.
    pub(crate) children: IndexSet<String>,
    /// `vars:` written in the inventory.
    pub(crate) vars: Mapping,
}

/// The parsed inventory.
#[derive(Debug, Default, Clone)]
pub(crate) struct Inventory {
    /// Groups by name, `all` first.
    pub(crate) groups: IndexMap<String, Group>,
    /// Inline host vars, by host, in order of first appearance.
    pub(crate) hosts: IndexMap<String, Mapping>,
}

impl Inventory {
    /// Parse `hosts.yml` text.
    #[cfg(test)]
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Inventory> {
        let mut inv = Inventory::default();
        inv.groups.insert("all".into(), Group::default());
        inv.add_file(path, text)?;
        Ok(inv)
    }

    /// Add one more source, as Ansible merges the files of an inventory
    /// directory: groups and hosts join, a later file's vars win.
    fn add_file(&mut self, path: &Path, text: &str) -> Result<()> {
        let root: Value = crate::load::yaml::parse(path, text)?;
        let Value::Mapping(top) = root else {
            return Err(Error::invalid(path, "an inventory is a mapping of groups (all: {hosts: ..., children: ...})"));
        };
        for (name, body) in &top {
            let name = key_str(path, name)?;
            self.add_group(path, &name, body)?;
            if name != "all" {
                self.groups["all"].children.insert(name);
            }
        }
        Ok(())
    }

    /// The inventory of a repository: every inventory file directly in
    /// `inventory/` (`hosts`, `*.ini`, `*.yml`, `*.yaml`), INI or YAML, merged
    /// in name order as Ansible merges a directory. Returns the path that
    /// names it in messages (the file, or the directory when there are
    /// several), the inventory, and notes on how YAML was read.
    pub(crate) fn read(root: &Path) -> Result<(std::path::PathBuf, Inventory, Vec<crate::load::yaml::Warning>)> {
        let dir = root.join("inventory");
        let mut files: Vec<std::path::PathBuf> =
            std::fs::read_dir(&dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
        files.retain(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            p.is_file() && (name == "hosts" || [".yml", ".yaml", ".ini"].iter().any(|e| name.ends_with(e)))
        });
        files.sort();
        let Some(first) = files.first().cloned() else {
            let p = dir.join("hosts.yml");
            return Err(Error::io(&p, std::io::Error::from(std::io::ErrorKind::NotFound)));
        };
        let shown = if files.len() == 1 { first } else { dir };
        let mut inv = Inventory::default();
        inv.groups.insert("all".into(), Group::default());
        let mut notes = Vec::new();
        for f in &files {
            let raw = crate::load::yaml::read_text(f)?;
            let text = if f.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                let (t, n) = crate::load::yaml::as_ansible_reads_it(f, &raw);
                notes.extend(n);
                t
            } else {
                // INI, as Ansible reads it, into the YAML structure
                let v = crate::load::inventory_ini::to_yaml(f, &raw)?;
                serde_yaml::to_string(&v).map_err(|e| Error::invalid(f, e.to_string()))?
            };
            inv.add_file(f, &text)?;
        }
        Ok((shown, inv, notes))
    }

    fn add_group(&mut self, path: &Path, name: &str, body: &Value) -> Result<()> {
        self.groups.entry(name.to_string()).or_default();
        let body = match body {
            Value::Null => return Ok(()),
            Value::Mapping(m) => m,
            _ => {
                return Err(Error::invalid(
                    path,
                    format!("group `{name}` must be a mapping with hosts, children or vars"),
                ))
            }
        };
        for (k, v) in body {
            match key_str(path, k)?.as_str() {
                "hosts" => {
                    let Value::Mapping(hosts) = v else {
                        if v.is_null() {
                            continue;
                        }
                        return Err(Error::invalid(
                            path,
                            format!("group `{name}`: hosts must be a mapping of host names"),
                        ));
                    };
                    for (h, hv) in hosts {
                        let h = key_str(path, h)?;
                        let vars = match hv {
                            Value::Null => Mapping::new(),
                            Value::Mapping(m) => m.clone(),
                            _ => return Err(Error::invalid(path, format!("host `{h}`: its vars must be a mapping"))),
                        };
                        let entry = self.hosts.entry(h.clone()).or_default();
                        for (vk, vv) in vars {
                            entry.insert(vk, vv);
                        }
                        self.groups[name].hosts.insert(h);
                    }
                }
                "children" => {
                    let Value::Mapping(children) = v else {
                        if v.is_null() {
                            continue;
                        }
                        return Err(Error::invalid(
                            path,
                            format!("group `{name}`: children must be a mapping of groups"),
                        ));
                    };
                    for (c, cv) in children {
                        let c = key_str(path, c)?;
                        if c == name {
                            return Err(Error::invalid(path, format!("group `{name}` lists itself as a child")));
                        }
                        self.add_group(path, &c, cv)?;
                        self.groups[name].children.insert(c);
                    }
                }
                "vars" => match v {
                    Value::Mapping(m) => self.groups[name].vars.extend(m.clone()),
                    Value::Null => {}
                    _ => return Err(Error::invalid(path, format!("group `{name}`: vars must be a mapping"))),
                },
                other => {
                    return Err(Error::invalid(
                        path,
                        format!("group `{name}`: unknown key `{other}`; allowed keys are hosts, children, vars"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Every host in `group` and its descendants, in inventory order.
    pub(crate) fn hosts_of(&self, group: &str) -> Option<Vec<String>> {
        let mut seen = IndexSet::new();
        let mut out = IndexSet::new();
        self.collect(group, &mut seen, &mut out)?;
        Some(self.hosts.keys().filter(|h| out.contains(*h)).cloned().collect())
    }

    fn collect(&self, group: &str, seen: &mut IndexSet<String>, out: &mut IndexSet<String>) -> Option<()> {
        let g = self.groups.get(group)?;
        if !seen.insert(group.to_string()) {
            return Some(());
        }
        out.extend(g.hosts.iter().cloned());
        for c in &g.children {
            self.collect(c, seen, out)?;
        }
        Some(())
    }

    /// The groups `host` belongs to (directly or through children), ordered as
    /// Ansible applies their vars: by depth from `all`, then by name, so a child
    /// group overrides its parent. `all` is first.
    pub(crate) fn groups_of(&self, host: &str) -> Vec<String> {
        let mut depth: IndexMap<String, usize> = IndexMap::new();
        self.depths("all", 0, &mut depth, &mut IndexSet::new());
        let mut member: Vec<(usize, String)> = depth
            .iter()
            .filter(|(g, _)| self.hosts_of(g).is_some_and(|hs| hs.iter().any(|h| h == host)))
            .map(|(g, d)| (*d, g.clone()))
            .collect();
        member.sort();
        member.into_iter().map(|(_, g)| g).collect()
    }

    fn depths(&self, group: &str, d: usize, out: &mut IndexMap<String, usize>, path: &mut IndexSet<String>) {
        if !path.insert(group.to_string()) {
            return;
        }
        let e = out.entry(group.to_string()).or_insert(d);
        *e = (*e).max(d);
        if let Some(g) = self.groups.get(group) {
            for c in &g.children {
                self.depths(c, d + 1, out, path);
            }
        }
        path.shift_remove(group);
    }
}

fn key_str(path: &Path, k: &Value) -> Result<String> {
    match k {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(Error::invalid(path, format!("expected a name, found {k:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = "
all:
  vars:
    a: 1
  children:
    prod:
      hosts:
        web1: {ansible_host: 192.0.2.10}
      children:
        prod_db:
          hosts:
            db1:
    lab:
      hosts:
        lab1:
        lab2:
";

    #[test]
    fn groups_and_hosts() {
        let inv = Inventory::parse(Path::new("hosts.yml"), INV).unwrap();
        assert_eq!(inv.hosts_of("prod").unwrap(), vec!["web1", "db1"]);
        assert_eq!(inv.hosts_of("lab").unwrap(), vec!["lab1", "lab2"]);
        assert_eq!(inv.groups_of("db1"), vec!["all", "prod", "prod_db"]);
        assert!(inv.hosts_of("nope").is_none());
    }

    #[test]
    fn unknown_group_key_is_an_error() {
        let e = Inventory::parse(Path::new("hosts.yml"), "all:\n  host:\n    a:\n").unwrap_err();
        assert!(e.to_string().contains("unknown key `host`"), "{e}");
    }
}

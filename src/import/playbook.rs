//! A playbook's plays as deploy.yml's phases: a phase per play (split where
//! its roles are tagged `phaseN`, and where a role writes sshd or firewall
//! configuration, which gets a phase of its own under the dead-man
//! switch), the play's own tasks as roles of their own in their place, a
//! role's `when:` kept on the role, `import_playbook` followed.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::walk::{self, Found};
use super::{read_yaml, Report, Unconverted};
use crate::error::{Error, Result};

/// What a play's slot in the order holds.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// A role of the roles path, with the play's condition on it.
    Role { name: String, when: Option<String>, tags: Vec<String> },
    /// Tasks written in the play itself (pre_tasks, tasks, post_tasks),
    /// made a role named `name`.
    Tasks { name: String, tasks: Vec<Found> },
}

/// One play as deploy reads it.
#[derive(Debug)]
pub(crate) struct Play {
    pub(crate) name: String,
    /// Its `hosts:`; None where it is every host of the environment (`all`,
    /// or a template, which chooses the environment deploy takes from its
    /// command line).
    pub(crate) hosts: Option<String>,
    /// The play's `hosts:` as written, when a template.
    pub(crate) templated: Option<String>,
    pub(crate) slots: Vec<Slot>,
    /// The play's own handlers.
    pub(crate) handlers: Vec<(String, Mapping)>,
    /// Where the play's own templates/ and files/ are.
    pub(crate) dir: PathBuf,
    pub(crate) file: PathBuf,
}

/// A phase name from a play name: lowercase, letters, digits, `-`, `_`.
pub(crate) fn phase_name(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    s.trim_matches('-').to_lowercase()
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(super::tasks::text)
}

fn tags(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(l)) => l.iter().filter_map(super::tasks::text).collect(),
        Some(v) => {
            super::tasks::text(v).map(|t| t.split(',').map(|x| x.trim().to_string()).collect()).unwrap_or_default()
        }
        None => vec![],
    }
}

/// The plays of `book` in order, `import_playbook` followed; a play for
/// the controller (`hosts: localhost`) is reported, never made a phase.
pub(crate) fn plays(book: &Path, report: &mut Report) -> Result<Vec<Play>> {
    let Value::Sequence(items) = read_yaml(book)? else {
        return Err(Error::invalid(book, "a playbook is a list of plays"));
    };
    let dir = book.parent().unwrap_or(Path::new(".")).to_path_buf();
    let text_of = std::fs::read_to_string(book).unwrap_or_default();
    let starts: Vec<usize> =
        text_of.lines().enumerate().filter(|(_, l)| l.starts_with("- ")).map(|(i, _)| i + 1).collect();
    let mut out = Vec::new();
    for (i, p) in items.iter().enumerate() {
        let Some(p) = p.as_mapping() else { continue };
        let line = starts.get(i).copied();
        if let Some(next) = p.get("import_playbook").or_else(|| p.get("ansible.builtin.import_playbook")) {
            match super::tasks::text(next).filter(|n| !n.contains("{{")) {
                Some(n) => out.extend(plays(&dir.join(n), report)?),
                None => report.unconverted.push(Unconverted {
                    file: book.to_path_buf(),
                    line,
                    module: "import_playbook".into(),
                    why: "a templated playbook name: import each playbook it can name with --playbook".into(),
                }),
            }
            continue;
        }
        let name = text(p.get("name")).unwrap_or_else(|| format!("play{}", i + 1));
        let hosts_written = text(p.get("hosts")).unwrap_or_else(|| "all".into());
        if matches!(hosts_written.as_str(), "localhost" | "127.0.0.1")
            || p.get("connection").and_then(Value::as_str) == Some("local")
        {
            let n = ["pre_tasks", "tasks", "post_tasks"]
                .iter()
                .filter_map(|k| p.get(*k).and_then(Value::as_sequence).map(|l| l.len()))
                .sum::<usize>();
            report.unconverted.push(Unconverted {
                file: book.to_path_buf(),
                line,
                module: "play".into(),
                why: format!(
                    "play `{name}` is for {hosts_written}, the controller ({n} tasks): deploy runs on hosts; do it before `deploy`, or in a Makefile"
                ),
            });
            continue;
        }
        let (hosts, templated) = if hosts_written.contains("{{") {
            report.notes.push(format!(
                "{}: play `{name}`: hosts `{hosts_written}` is a template: deploy takes the environment from its command line (`deploy ENV`), so the phase has every host of it",
                book.strip_prefix(&report.book_dir).unwrap_or(book).display()
            ));
            (None, Some(hosts_written))
        } else if hosts_written == "all" {
            (None, None)
        } else {
            (Some(hosts_written), None)
        };
        let mut handlers = Vec::new();
        if let Some(Value::Sequence(hs)) = p.get("handlers") {
            for h in hs.iter().filter_map(Value::as_mapping) {
                if let Some(n) = text(h.get("listen")).or_else(|| text(h.get("name"))) {
                    handlers.push((n, h.clone()));
                }
            }
        }
        let base = phase_name(&name);
        let mut slots = Vec::new();
        let mut chunk = 0usize;
        let at = Where { dir: &dir, book, line, base: &base };
        play_tasks(p, "pre_tasks", &at, &mut chunk, &mut slots, report)?;
        if let Some(Value::Sequence(roles)) = p.get("roles") {
            let commented = commented_phases(&text_of, line.unwrap_or(1), roles.len());
            for (i, r) in roles.iter().enumerate() {
                let (name, when, t) = match r {
                    Value::String(s) => (s.clone(), None, vec![]),
                    Value::Mapping(m) => {
                        let Some(n) = text(m.get("role")).or_else(|| text(m.get("name"))) else { continue };
                        let w = walk::conditions(m);
                        ((n), (!w.is_empty()).then(|| join(&w)), tags(m.get("tags")))
                    }
                    _ => continue,
                };
                // a role under a `# phase N` comment is in phase N, as if tagged
                let mut t = t;
                if phase_tag(&t).is_none() {
                    if let Some(n) = commented.get(i).copied().flatten() {
                        t.push(format!("phase{n}"));
                    }
                }
                slots.push(Slot::Role { name, when, tags: t });
            }
        }
        play_tasks(p, "tasks", &at, &mut chunk, &mut slots, report)?;
        play_tasks(p, "post_tasks", &at, &mut chunk, &mut slots, report)?;
        out.push(Play { name, hosts, templated, slots, handlers, dir: dir.clone(), file: book.to_path_buf() });
    }
    Ok(out)
}

/// Conditions as one expression.
fn join(when: &[String]) -> String {
    if when.len() == 1 {
        when[0].clone()
    } else {
        when.iter().map(|w| format!("({w})")).collect::<Vec<_>>().join(" and ")
    }
}

/// Where a play is written.
struct Where<'a> {
    dir: &'a Path,
    book: &'a Path,
    line: Option<usize>,
    base: &'a str,
}

/// The play's tasks under `key` as slots: runs of tasks each a role of
/// their own (`PLAY-tasks`, `PLAY-tasks-2`, ...), a static include_role or
/// import_role among them the role itself, in its place.
fn play_tasks(
    p: &Mapping,
    key: &str,
    at: &Where<'_>,
    chunk: &mut usize,
    slots: &mut Vec<Slot>,
    report: &mut Report,
) -> Result<()> {
    let Some(Value::Sequence(list)) = p.get(key) else { return Ok(()) };
    let mut run: Vec<Value> = Vec::new();
    let mut emit = |run: &mut Vec<Value>, slots: &mut Vec<Slot>, report: &mut Report| -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let mut walked = Vec::new();
        walk::walk_items(at.dir, at.book, at.line.unwrap_or(1), run, &mut walked, &mut report.unconverted)?;
        run.clear();
        *chunk += 1;
        let name = if *chunk == 1 { format!("{}-tasks", at.base) } else { format!("{}-tasks-{chunk}", at.base) };
        slots.push(Slot::Tasks { name, tasks: walked });
        Ok(())
    };
    for t in list {
        let Some(m) = t.as_mapping() else { continue };
        let role = ["include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role"]
            .iter()
            .find_map(|k| m.get(*k));
        let Some(r) = role else {
            run.push(t.clone());
            continue;
        };
        emit(&mut run, slots, report)?;
        match r.get("name").and_then(super::tasks::text).filter(|n| !n.contains("{{")) {
            Some(name) => {
                let when = walk::conditions(m);
                slots.push(Slot::Role {
                    name,
                    when: (!when.is_empty()).then(|| join(&when)),
                    tags: tags(m.get("tags")),
                });
            }
            None => report.unconverted.push(Unconverted {
                file: at.book.to_path_buf(),
                line: at.line,
                module: "include_role".into(),
                why: "a role named by a template is chosen at run time: list the roles it can name".into(),
            }),
        }
    }
    emit(&mut run, slots, report)
}

/// For each of a play's `count` roles (the play starting at line `from`),
/// the phase a comment above it names (`# phase 2: apps`), if any.
fn commented_phases(text: &str, from: usize, count: usize) -> Vec<Option<u32>> {
    static RE: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| fancy_regex::Regex::new(r"(?i)^#\s*phase\s*(\d+)").expect("valid"));
    let mut lines = text.lines().skip(from.saturating_sub(1));
    let Some(roles_at) = lines.position(|l| l.trim_start().starts_with("roles:")) else { return vec![None; count] };
    let _ = roles_at;
    let (mut out, mut cur, mut indent) = (Vec::new(), None, None);
    for l in lines {
        let t = l.trim_start();
        if t.is_empty() {
            continue;
        }
        let ind = l.len() - t.len();
        if let Ok(Some(c)) = re.captures(t) {
            cur = c[1].parse().ok();
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        if !t.starts_with("- ") || *indent.get_or_insert(ind) > ind || out.len() == count {
            if indent.is_some_and(|i| ind < i) || out.len() == count {
                break;
            }
            continue;
        }
        if Some(ind) == indent {
            out.push(cur);
        }
    }
    out.resize(count, None);
    out
}

/// The number a `phaseN` tag names.
pub(crate) fn phase_tag(tags: &[String]) -> Option<u32> {
    tags.iter().find_map(|t| t.strip_prefix("phase").and_then(|n| n.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_that_name_phases_group_the_roles_below_them() {
        let text = "- name: x\n  hosts: all\n  roles:\n    # Phase 1: the base\n    - common\n    - role: docker\n      when: y\n    # phase 2 - apps\n    - app\n- name: next\n  roles: [z]\n";
        assert_eq!(commented_phases(text, 1, 3), [Some(1), Some(1), Some(2)]);
        assert_eq!(commented_phases(text, 10, 1), [None]);
        assert_eq!(phase_tag(&["web".into(), "phase3".into()]), Some(3));
    }
}

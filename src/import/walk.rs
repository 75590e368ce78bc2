//! Following a tasks file as Ansible runs it: blocks (their `when:` added
//! to each task inside), static `import_tasks` / `include_tasks` (the
//! include's `when:` added likewise), each task with the file and line it
//! is written at. What cannot be followed is reported, never skipped.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::{read_yaml, Unconverted};
use crate::error::Result;

/// One task as the walk reaches it.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) file: PathBuf,
    pub(crate) line: Option<usize>,
    /// The task, its `when:` a list of the enclosing blocks' and includes'
    /// conditions (outermost first) and then its own.
    pub(crate) task: Mapping,
}

const INCLUDES: [&str; 4] =
    ["include_tasks", "import_tasks", "ansible.builtin.include_tasks", "ansible.builtin.import_tasks"];

/// A task's `when:` as a list of conditions.
pub(crate) fn conditions(task: &Mapping) -> Vec<String> {
    match task.get("when") {
        Some(Value::String(w)) => vec![w.clone()],
        Some(Value::Sequence(l)) => l.iter().filter_map(super::tasks::text).collect(),
        Some(Value::Bool(b)) => vec![if *b { "true".into() } else { "false".into() }],
        _ => vec![],
    }
}

/// Where each task of a file is written: the line of each list item, found
/// in order (a nested task's line is the first line after its parent's
/// that starts an item with the task's first key).
struct Lines<'a> {
    text: Vec<&'a str>,
    cursor: usize,
}

impl Lines<'_> {
    fn find(&mut self, task: &Mapping) -> Option<usize> {
        let (k, v) = task.iter().next()?;
        let key = k.as_str()?;
        let first = match v {
            Value::String(s) if !s.contains('\n') => format!("{key}: {s}"),
            _ => format!("{key}:"),
        };
        for (i, l) in self.text.iter().enumerate().skip(self.cursor) {
            let t = l.trim_start();
            let Some(item) = t.strip_prefix("- ") else { continue };
            let item = item.trim_start();
            let plain = item.replace(['"', '\''], "");
            if item.starts_with(&first)
                || plain.starts_with(&first.replace(['"', '\''], ""))
                || item == format!("{key}:")
            {
                self.cursor = i + 1;
                return Some(i + 1);
            }
        }
        None
    }
}

/// The tasks of `file` (under `base`, where includes are looked up as
/// `base/tasks/NAME`, then beside the file), each with `outer` conditions
/// put before its own.
pub(crate) fn walk(
    base: &Path,
    file: &Path,
    outer: &[String],
    out: &mut Vec<Found>,
    unconverted: &mut Vec<Unconverted>,
) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(file) else { return Ok(()) };
    let Value::Sequence(items) = read_yaml(file)? else { return Ok(()) };
    let mut lines = Lines { text: text.lines().collect(), cursor: 0 };
    walk_list(base, file, &items, outer, &mut lines, out, unconverted)
}

/// The tasks `items` written in `file` from line `from` on (a play's own
/// tasks), as `walk` finds them.
pub(crate) fn walk_items(
    base: &Path,
    file: &Path,
    from: usize,
    items: &[Value],
    out: &mut Vec<Found>,
    unconverted: &mut Vec<Unconverted>,
) -> Result<()> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut lines = Lines { text: text.lines().collect(), cursor: from.saturating_sub(1) };
    walk_list(base, file, items, &[], &mut lines, out, unconverted)
}

fn walk_list(
    base: &Path,
    file: &Path,
    items: &[Value],
    outer: &[String],
    lines: &mut Lines<'_>,
    out: &mut Vec<Found>,
    unconverted: &mut Vec<Unconverted>,
) -> Result<()> {
    for t in items {
        let Value::Mapping(t) = t else { continue };
        let line = lines.find(t);
        let mut when = outer.to_vec();
        when.extend(conditions(t));
        let not =
            |why: String, module: &str| Unconverted { file: file.to_path_buf(), line, module: module.into(), why };
        if let Some(Value::Sequence(inner)) = t.get("block") {
            walk_list(base, file, inner, &when, lines, out, unconverted)?;
            for part in ["rescue", "always"] {
                if let Some(Value::Sequence(l)) = t.get(part) {
                    let why = format!(
                        "{part}: of a block ({} tasks): deploy rolls a failed phase back itself and runs nothing on failure; write what they do as resources, or drop them",
                        l.len()
                    );
                    unconverted.push(not(why, "block"));
                    // their lines are past the block's: keep the cursor in step
                    for x in l.iter().filter_map(Value::as_mapping) {
                        lines.find(x);
                    }
                }
            }
            continue;
        }
        let include = INCLUDES.iter().find_map(|k| t.get(*k).map(|v| (*k, v)));
        if let Some((k, v)) = include {
            let name = match v {
                Value::String(s) => Some(s.clone()),
                Value::Mapping(m) => m.get("file").and_then(Value::as_str).map(String::from),
                _ => None,
            };
            match name {
                Some(n) if !n.contains("{{") => {
                    let next = [base.join("tasks").join(&n), file.parent().unwrap_or(base).join(&n)]
                        .into_iter()
                        .find(|p| p.is_file());
                    match next {
                        Some(p) => walk(base, &p, &when, out, unconverted)?,
                        None => unconverted.push(not(format!("{n}: no such tasks file"), k)),
                    }
                }
                _ => unconverted.push(not(
                    "an include whose file is a template is chosen at run time: include each file it can name".into(),
                    k,
                )),
            }
            continue;
        }
        let mut task = t.clone();
        if !when.is_empty() {
            task.insert("when".into(), Value::Sequence(when.into_iter().map(Value::String).collect()));
        }
        out.push(Found { file: file.to_path_buf(), line, task });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_includes_are_followed_with_their_conditions() {
        let dir = std::env::temp_dir().join(format!("deploy-walk-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tasks")).unwrap();
        std::fs::write(
            dir.join("tasks/main.yml"),
            "- name: one\n  debug: {msg: a}\n- block:\n    - name: two\n      debug: {msg: b}\n      when: y\n  rescue:\n    - name: three\n      debug: {msg: c}\n  when: x\n- import_tasks: more.yml\n  when: z\n",
        )
        .unwrap();
        std::fs::write(dir.join("tasks/more.yml"), "- name: four\n  debug: {msg: d}\n").unwrap();
        let (mut out, mut not) = (Vec::new(), Vec::new());
        walk(&dir, &dir.join("tasks/main.yml"), &[], &mut out, &mut not).unwrap();
        let got: Vec<(Option<usize>, Vec<String>)> = out.iter().map(|f| (f.line, conditions(&f.task))).collect();
        assert_eq!(got, [(Some(1), vec![]), (Some(4), vec!["x".into(), "y".into()]), (Some(1), vec!["z".into()])]);
        assert_eq!(not.len(), 1);
        assert_eq!(not[0].line, Some(3));
        assert!(not[0].why.starts_with("rescue: of a block (1 tasks)"), "{}", not[0].why);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

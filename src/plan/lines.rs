//! Lines in files deploy does not otherwise manage (Ansible's lineinfile):
//! the new contents of such a file, computed on the controller from the
//! contents the probe read, so the plan can show exactly the line that
//! changes and the apply can refuse a file that changed in between.

use crate::load::system::Presence;
use crate::render::system::DesiredLine;

/// A Python-syntax regular expression (lookaround and backreferences
/// included, as Ansible's `re` has them).
pub(crate) fn compile(pattern: &str) -> Result<fancy_regex::Regex, String> {
    fancy_regex::Regex::new(pattern).map_err(|e| e.to_string())
}

/// `text` with `line` applied, as lineinfile does: present replaces the last
/// line the regexp matches (or the line equal to `line`), else appends it;
/// absent removes every line the regexp matches (or equal to `line`).
pub(crate) fn apply(text: &str, l: &DesiredLine) -> Result<String, String> {
    let re = l.regexp.as_deref().map(compile).transpose()?;
    let matches = |s: &str| -> Result<bool, String> {
        match &re {
            Some(re) => re.is_match(s).map_err(|e| e.to_string()),
            None => Ok(Some(s) == l.line.as_deref()),
        }
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match l.state {
        Presence::Present => {
            let want = l.line.clone().unwrap_or_default();
            let mut last = None;
            for (i, s) in lines.iter().enumerate() {
                if matches(s)? {
                    last = Some(i);
                }
            }
            // with a regexp, an exact line already there is enough too
            if last.is_none() && lines.contains(&want) {
                return Ok(text.to_string());
            }
            match last {
                Some(i) => lines[i] = want,
                None => lines.push(want),
            }
        }
        Presence::Absent => {
            let mut kept = Vec::with_capacity(lines.len());
            for s in lines {
                if !matches(&s)? {
                    kept.push(s);
                }
            }
            lines = kept;
        }
    }
    if lines.is_empty() {
        return Ok(String::new());
    }
    let out = lines.join("\n") + "\n";
    // unchanged files stay byte for byte (a missing final newline included)
    if out.trim_end_matches('\n') == text.trim_end_matches('\n') && text.lines().count() == lines.len() {
        return Ok(text.to_string());
    }
    Ok(out)
}

/// Plan the managed lines: one file change per file, its new contents
/// computed from what the probe read, refused at apply time if the file
/// changed in between (its hash is the expected state).
pub(crate) fn plan_lines(
    desired: &crate::render::DesiredHost,
    remote: &crate::plan::state::Remote,
    plan: &mut crate::plan::HostPlan,
) -> Result<(), String> {
    use crate::plan::state::Old;
    use crate::plan::{Action, Change, Expected, Resource};
    let mut paths: Vec<&str> = Vec::new();
    for l in desired.system.lines.iter().filter(|l| l.selected) {
        if !paths.contains(&l.path.as_str()) {
            paths.push(&l.path);
        }
    }
    for path in paths {
        let mine: Vec<&DesiredLine> = desired.system.lines.iter().filter(|l| l.selected && l.path == path).collect();
        let entry = remote.paths.get(path);
        let old: Option<Vec<u8>> = match (entry, remote.system.reads.get(path)) {
            (None, _) => None,
            (Some(e), _) if e.kind != crate::plan::state::Kind::File => {
                return Err(format!("lines: {path} is not a regular file on the host"))
            }
            (Some(_), Some(Old::Bytes(b))) => Some(b.clone()),
            (Some(_), Some(Old::TooLarge(n))) => {
                return Err(format!(
                    "lines: {path} has {n} bytes, more than deploy edits lines in ({} bytes)",
                    crate::remote::probe::OLD_MAX
                ))
            }
            (Some(_), None) => return Err(format!("lines: the host did not send the contents of {path}")),
        };
        if old.is_none() && !mine.iter().any(|l| l.create) {
            return Err(format!(
                "lines: {path} does not exist on the host (role {}); add `create: true` to create it",
                mine[0].role
            ));
        }
        let before = old.as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        if old.as_ref().is_some_and(|b| std::str::from_utf8(b).is_err()) {
            return Err(format!("lines: {path} is not text (UTF-8)"));
        }
        let mut text = before.clone();
        let mut reasons = Vec::new();
        for l in &mine {
            let next = apply(&text, l).map_err(|e| format!("lines: {path}: {e}"))?;
            if next != text {
                reasons.push(match (&l.state, &l.regexp) {
                    (Presence::Present, Some(r)) => format!("line matching `{r}`"),
                    (Presence::Present, None) => "line added".to_string(),
                    (Presence::Absent, _) => "line removed".to_string(),
                });
            }
            text = next;
        }
        if old.is_some() && text == before {
            plan.unchanged += 1;
            continue;
        }
        let (action, expected) = match (&old, entry.and_then(|e| e.sha256.clone())) {
            (None, _) => (Action::Create, Expected::Absent),
            (Some(_), sha) => (Action::Update, Expected::File { sha256: sha.unwrap_or_default() }),
        };
        plan.changes.push(Change {
            path: path.to_string(),
            role: mine[0].role.clone(),
            resource: Resource::Lines,
            action,
            reasons,
            expected,
            secret: false,
            phase: mine[0].phase,
            file: None,
            content: Some(text.into_bytes()),
            diff: None,
            shrink: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(regexp: Option<&str>, line: Option<&str>, state: Presence) -> DesiredLine {
        DesiredLine {
            path: "/etc/x".into(),
            regexp: regexp.map(Into::into),
            line: line.map(Into::into),
            state,
            create: false,
            owner: None,
            mode: None,
            role: "r".into(),
            phase: 0,
            selected: true,
        }
    }

    #[test]
    fn present_replaces_the_last_match_or_appends() {
        let t = "A=1\n#B=0\nB=1\nB=2\n";
        assert_eq!(apply(t, &l(Some("^B="), Some("B=9"), Presence::Present)).unwrap(), "A=1\n#B=0\nB=1\nB=9\n");
        assert_eq!(apply(t, &l(Some("^C="), Some("C=1"), Presence::Present)).unwrap(), "A=1\n#B=0\nB=1\nB=2\nC=1\n");
        assert_eq!(apply(t, &l(None, Some("A=1"), Presence::Present)).unwrap(), t);
        // Python syntax: lookahead
        assert_eq!(apply("x=1\nx=2\n", &l(Some("^x=(?!2)"), Some("x=3"), Presence::Present)).unwrap(), "x=3\nx=2\n");
    }

    #[test]
    fn absent_removes_every_match_and_no_change_is_byte_identical() {
        assert_eq!(apply("a\nb\na\n", &l(Some("^a$"), None, Presence::Absent)).unwrap(), "b\n");
        assert_eq!(apply("a\nb", &l(Some("^c$"), None, Presence::Absent)).unwrap(), "a\nb");
        assert_eq!(apply("k\n", &l(None, Some("k"), Presence::Absent)).unwrap(), "");
        assert_eq!(apply("", &l(None, Some("key"), Presence::Present)).unwrap(), "key\n");
    }
}

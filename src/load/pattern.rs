//! Host patterns, as Ansible's `hosts:` writes them: names of groups or
//! hosts joined by `:` or `,`; `&name` keeps only hosts also in `name`,
//! `!name` removes them. `all` (or `*`) is every host.

use serde::Deserialize;

/// A parsed `hosts:` pattern.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct HostPattern {
    /// As written, for messages.
    pub(crate) text: String,
    union: Vec<String>,
    intersect: Vec<String>,
    exclude: Vec<String>,
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(text: String) -> Result<HostPattern, String> {
        let mut p = HostPattern { text: text.clone(), union: vec![], intersect: vec![], exclude: vec![] };
        for term in text.split([':', ',']).map(str::trim) {
            let (list, name) = match term.as_bytes().first() {
                Some(b'!') => (&mut p.exclude, &term[1..]),
                Some(b'&') => (&mut p.intersect, &term[1..]),
                _ => (&mut p.union, term),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.*".contains(c)) {
                return Err(format!("`{text}` is not a host pattern: write group or host names joined by `:`, with `!name` to leave a group out and `&name` to keep only its hosts"));
            }
            list.push(name.to_string());
        }
        if p.union.is_empty() {
            // "!db" alone means every host but db, as in Ansible
            p.union.push("all".into());
        }
        Ok(p)
    }
}

impl HostPattern {
    /// Every group or host name the pattern refers to (to check they exist).
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.union.iter().chain(&self.intersect).chain(&self.exclude).map(String::as_str)
    }

    /// Whether `host`, a member of `groups`, matches (`web*` globs names).
    pub(crate) fn matches(&self, host: &str, groups: &[String]) -> bool {
        let is = |name: &String| name == "all" || glob(name, host) || groups.iter().any(|g| glob(name, g));
        self.union.iter().any(is) && self.intersect.iter().all(is) && !self.exclude.iter().any(is)
    }
}

/// `pattern` with `*` for any run of characters, against `name`.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else { return false };
            (0..=tail.len()).filter(|&i| tail.is_char_boundary(i)).any(|i| glob(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn union_intersection_and_exclusion_as_ansible_reads_them() {
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(p("all:!lab_systemd").matches("lab1", &g(&["lab", "lab_docker"])));
        assert!(!p("all:!lab_systemd").matches("sys1", &g(&["lab", "lab_systemd"])));
        assert!(p("lab_systemd").matches("sys1", &g(&["lab_systemd"])));
        assert!(!p("web:&prod").matches("w1", &g(&["web", "staging"])));
        assert!(p("web,db").matches("d1", &g(&["db"])));
        assert!(p("!db").matches("w1", &g(&["web"])));
        assert!(p("sys2").matches("sys2", &[]));
        assert!(p("web*").matches("web12", &[]) && !p("web*").matches("db1", &[]));
        assert!(p("*2").matches("lab2", &[]) && p("l*b*").matches("lab1", &[]));
        assert!(p("prod:&db*").matches("x", &g(&["prod", "db_primary"])));
        assert!(HostPattern::try_from("web:!".to_string()).is_err());
        assert!(HostPattern::try_from("web db".to_string()).is_err());
    }
}

//! Every `yaml role.yml` and `yaml deploy.yml` block of README.md and
//! docs/*.md is loaded and rendered against the example inventory, so the
//! documentation cannot drift from the code.

use std::path::{Path, PathBuf};

use crate::common::*;

/// (kind, body, line) of each marked yaml block.
fn blocks(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut cur, line.trim_end()) {
            (None, l) if l.starts_with("```yaml ") => cur = Some((l[8..].trim().to_string(), String::new(), i + 1)),
            (Some(_), "```") => out.push(cur.take().unwrap()),
            (Some((_, body, _)), l) => {
                body.push_str(l);
                body.push('\n');
            }
            _ => {}
        }
    }
    out
}

fn doc_files() -> Vec<PathBuf> {
    let mut v = vec![repo().join("README.md")];
    let mut d: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    d.sort();
    v.extend(d);
    v
}

/// A role.yml fragment as the only role of a copy of the example, with
/// stub templates and files for the names it uses.
fn check_role(root: &Path, body: &str) -> Run {
    let dir = root.join("roles/doccheck");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("role.yml"), body).unwrap();
    for line in body.lines() {
        let t = line.trim_start().trim_start_matches("- ");
        for (key, sub) in [("template:", "templates"), ("src:", "files")] {
            if let Some(name) = t.strip_prefix(key) {
                let name = name.split(" #").next().unwrap().trim().trim_matches('"');
                std::fs::write(dir.join(sub).join(name), "stub\n").unwrap();
            }
        }
    }
    std::fs::write(
        root.join("deploy.yml"),
        "project: doc\nage_identity: inventory/lab.identity\nphases:\n  - name: doc\n    roles: [doccheck]\n",
    )
    .unwrap();
    deploy_in(root, &["render", "lab", "--host", "lab1", "--out", "rendered"])
}

/// A deploy.yml fragment merged over the example's deploy.yml.
fn check_deploy_yml(root: &Path, body: &str) -> Run {
    let path = root.join("deploy.yml");
    let mut base: serde_yaml::Mapping = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let frag: serde_yaml::Mapping = serde_yaml::from_str(body).unwrap();
    // phases of its own: the example's toggles name roles they may lack
    if frag.contains_key("phases") && !frag.contains_key("toggles") {
        base.remove("toggles");
    }
    for (k, v) in frag {
        base.insert(k, v);
    }
    std::fs::write(&path, serde_yaml::to_string(&base).unwrap()).unwrap();
    deploy_in(root, &["render", "lab", "--host", "lab1", "--out", "rendered"])
}

#[test]
fn every_yaml_example_in_the_docs_loads_and_renders() {
    let mut checked = 0;
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (kind, body, line) in blocks(&text) {
            let (root, _slot) = project();
            let r = match kind.as_str() {
                "role.yml" => check_role(&root, &body),
                "deploy.yml" => check_deploy_yml(&root, &body),
                other => panic!("{}:{line}: unknown block kind `{other}`", file.display()),
            };
            assert_eq!(r.code, 0, "{}:{line}: the {kind} example does not load: {r:?}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} examples found");
}

#[test]
fn a_broken_example_is_caught() {
    let (root, _slot) = project();
    let r = check_role(&root, "files:\n  - dest: /etc/x\n    contnet: x\n");
    assert_eq!(r.code, 1, "{r:?}");
    let (root, _slot) = project();
    let r = check_deploy_yml(&root, "seriall: 2\n");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("unknown field `seriall`"), "{r:?}");
}

//! The controller-side lookups that make sense here, `lookup(NAME, ...)` and
//! `query`/`q` (always a list): `file` (the role's files/, then the
//! repository; the trailing newline stripped as Ansible does), `env`,
//! `vars`, `first_found`, `fileglob`, `template`, and `lines` and `pipe`
//! (a command run on the controller, in the repository). Any other is an
//! error naming it. And `undef()`, and the `fileglob` filter.

use std::path::PathBuf;
use std::sync::Arc;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, Error as MjError, ErrorKind, State};

use super::pyfmt::py_str;

fn err(msg: impl Into<String>) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, msg.into())
}

fn find(role_dir: &Option<PathBuf>, t: &str) -> Option<PathBuf> {
    let p = std::path::Path::new(t);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    let dir = role_dir.as_ref()?;
    [dir.join("files").join(t), dir.join(t), dir.join("../..").join(t)].into_iter().find(|c| c.is_file())
}

/// `fnmatch` of one name, as Python's glob does it: `*`, `?`, `[...]`
/// (`[!...]`), and a leading dot matched only by a dot.
fn matches(pat: &[char], name: &[char]) -> bool {
    if name.first() == Some(&'.') && pat.first() != Some(&'.') {
        return false;
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(2).position(|c| *c == ']').map(|e| e + 2) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let (neg, set) = if p[1] == '!' { (true, &p[2..end]) } else { (false, &p[1..end]) };
                let Some(c) = n.first() else { return false };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= *c && *c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &n[1..])
            }
            Some(x) => n.first() == Some(x) && go(&p[1..], &n[1..]),
        }
    }
    go(pat, name)
}

/// `lookup('fileglob', TERM)`: the files matching TERM's last part in the
/// first directory that has any, searched as Ansible does for a template:
/// `files/DIR` then `DIR` under the template's directory, the role, then
/// the repository; absolute paths, sorted.
fn fileglob(role_dir: &Option<PathBuf>, term: &str) -> Vec<String> {
    let p = std::path::Path::new(term);
    let (dir, pat) = (p.parent().unwrap_or(std::path::Path::new("")), p.file_name().unwrap_or_default());
    let pat: Vec<char> = pat.to_string_lossy().chars().collect();
    let dirs: Vec<PathBuf> = if p.is_absolute() {
        vec![dir.to_path_buf()]
    } else {
        let Some(role) = role_dir else { return Vec::new() };
        [role.join("templates"), role.clone(), role.join("../..")]
            .into_iter()
            .flat_map(|b| [b.join("files").join(dir), b.join(dir)])
            .collect()
    };
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        let mut hits: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter(|e| matches(&pat, &e.file_name().to_string_lossy().chars().collect::<Vec<_>>()))
            .filter_map(|e| std::fs::canonicalize(e.path()).ok())
            .map(|p| p.display().to_string())
            .collect();
        if !hits.is_empty() {
            hits.sort();
            return hits;
        }
    }
    Vec::new()
}

/// The repository (`playbook_dir`), where Ansible's controller-side
/// commands and relative globs start.
fn repository(state: &State) -> PathBuf {
    state
        .lookup("playbook_dir")
        .and_then(|v| v.as_str().map(PathBuf::from))
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default())
}

/// `lookup('lines' | 'pipe', CMD)`: CMD run by `sh -c` on the controller,
/// in the repository, as Ansible runs it (in the playbook's directory); its
/// standard output. A failure is an error with its status and what it said.
fn run(state: &State, lookup: &str, cmd: &str) -> Result<String, MjError> {
    let o = std::process::Command::new("sh")
        .args(["-c", cmd])
        .current_dir(repository(state))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| err(format!("lookup('{lookup}', '{cmd}'): sh: {e}")))?;
    if !o.status.success() {
        let said = String::from_utf8_lossy(&o.stderr).trim().to_string();
        let code = o.status.code().map(|c| c.to_string()).unwrap_or_else(|| "a signal".into());
        return Err(err(format!("lookup('{lookup}', '{cmd}') on the controller exited with {code}: {said}")));
    }
    String::from_utf8(o.stdout).map_err(|_| err(format!("lookup('{lookup}', '{cmd}'): its output is not UTF-8")))
}

/// The `fileglob` filter: Python's glob of PATTERN's last part, files only,
/// relative to the repository as Ansible's is to where it runs; paths as
/// the pattern writes them. Sorted (Python's are in directory order, which
/// no one can rely on).
fn fileglob_filter(state: &State, pattern: &str) -> Vec<String> {
    let p = std::path::Path::new(pattern);
    let (dir, pat) = (p.parent().unwrap_or(std::path::Path::new("")), p.file_name().unwrap_or_default());
    let pat: Vec<char> = pat.to_string_lossy().chars().collect();
    let base = if p.is_absolute() { dir.to_path_buf() } else { repository(state).join(dir) };
    let Ok(rd) = std::fs::read_dir(&base) else { return Vec::new() };
    let mut hits: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| matches(&pat, &n.chars().collect::<Vec<_>>()))
        .map(|n| dir.join(n).display().to_string())
        .collect();
    hits.sort();
    hits
}

/// `lookup('template', NAME, template_vars=...)`: a template of the role
/// rendered with the variables in scope and `template_vars` above them,
/// its trailing newlines as its source has them.
fn template(state: &State, name: &str, vars: Option<&Value>) -> Result<Value, MjError> {
    let t = state.env().get_template(name).map_err(|e| err(format!("lookup('template', '{name}'): {e}")))?;
    let mut ctx: indexmap::IndexMap<String, Value> = indexmap::IndexMap::new();
    for k in state.known_variables() {
        if let Some(v) = state.lookup(&k) {
            ctx.insert(k.to_string(), v);
        }
    }
    if let Some(vars) = vars.filter(|v| !v.is_none()) {
        for k in vars.try_iter()? {
            ctx.insert(py_str(&k), vars.get_item(&k)?);
        }
    }
    let out = t.render(Value::from_iter(ctx))?;
    Ok(Value::from(super::template::restore_trailing_newlines(t.source(), out)))
}

/// One lookup's values.
fn lookup(
    role_dir: &Option<PathBuf>,
    state: &State,
    name: &str,
    args: &[Value],
    kw: &Kwargs,
) -> Result<Vec<Value>, MjError> {
    let rstrip: Option<bool> = kw.get("rstrip")?;
    let default: Option<Value> = kw.get("default")?;
    let terms: Vec<String> = args.iter().map(py_str).collect();
    match name {
        "file" | "ansible.builtin.file" => terms
            .iter()
            .map(|t| {
                let p = find(role_dir, t).ok_or_else(|| err(format!("lookup('file'): `{t}` not found in the role's files/ or the repository")))?;
                let text = std::fs::read_to_string(&p).map_err(|e| err(format!("lookup('file', '{t}'): {e}")))?;
                Ok(Value::from(if rstrip.unwrap_or(true) { text.trim_end().to_string() } else { text }))
            })
            .collect(),
        "env" | "ansible.builtin.env" => Ok(terms
            .iter()
            .map(|t| match std::env::var(t) {
                Ok(v) => Value::from(v),
                Err(_) => default.clone().unwrap_or_else(|| Value::from("")),
            })
            .collect()),
        "vars" | "ansible.builtin.vars" => terms
            .iter()
            .map(|t| match state.lookup(t) {
                Some(v) if !v.is_undefined() => Ok(v),
                _ => default.clone().ok_or_else(|| err(format!("lookup('vars'): no variable `{t}`"))),
            })
            .collect(),
        "first_found" | "ansible.builtin.first_found" => {
            let mut names: Vec<String> = Vec::new();
            for a in args {
                match a.kind() {
                    ValueKind::Seq => names.extend(a.try_iter()?.map(|x| py_str(&x))),
                    _ => names.push(py_str(a)),
                }
            }
            let hit = names.iter().find_map(|n| find(role_dir, n));
            match hit {
                Some(p) => Ok(vec![Value::from(p.display().to_string())]),
                None => Err(err(format!("lookup('first_found'): none of {names:?} found"))),
            }
        }
        "fileglob" | "ansible.builtin.fileglob" => Ok(terms.iter().flat_map(|t| fileglob(role_dir, t)).map(Value::from).collect()),
        "lines" | "ansible.builtin.lines" => {
            let mut out = Vec::new();
            for t in &terms {
                out.extend(run(state, "lines", t)?.lines().map(|l| Value::from(l.to_string())));
            }
            Ok(out)
        }
        "pipe" | "ansible.builtin.pipe" => {
            terms.iter().map(|t| Ok(Value::from(run(state, "pipe", t)?.trim_end().to_string()))).collect()
        }
        "template" | "ansible.builtin.template" => {
            let vars: Option<Value> = kw.get("template_vars")?;
            terms.iter().map(|t| template(state, t, vars.as_ref())).collect()
        }
        other => Err(err(format!(
            "lookup('{other}') is not supported by deploy (it has file, env, vars, first_found, fileglob, template, lines and pipe: lookups run on the controller, at render time)"
        ))),
    }
}

/// Register `lookup`, `query`, `q` and `undef` for templates of the role at
/// `role_dir`.
pub(crate) fn add(env: &mut Environment<'static>, role_dir: Option<PathBuf>) {
    // an undefined value, refused where it is used, as Ansible's undef()
    env.add_function("undef", |_hint: Option<String>| Value::UNDEFINED);
    env.add_filter("fileglob", |state: &State, pattern: String| fileglob_filter(state, &pattern));
    let dir = Arc::new(role_dir);
    let d = dir.clone();
    env.add_function(
        "lookup",
        move |state: &State, name: String, args: Rest<Value>, kw: Kwargs| -> Result<Value, MjError> {
            let wantlist: Option<bool> = kw.get("wantlist")?;
            let v = lookup(&d, state, &name, &args, &kw)?;
            let _ = kw.assert_all_used();
            Ok(match (wantlist.unwrap_or(false), v.len()) {
                (true, _) => Value::from(v),
                (false, 1) => v.into_iter().next().unwrap_or_default(),
                (false, _) => Value::from(v.iter().map(py_str).collect::<Vec<_>>().join(",")),
            })
        },
    );
    for alias in ["query", "q"] {
        let d = dir.clone();
        env.add_function(
            alias,
            move |state: &State, name: String, args: Rest<Value>, kw: Kwargs| -> Result<Value, MjError> {
                let v = lookup(&d, state, &name, &args, &kw)?;
                let _ = kw.assert_all_used();
                Ok(Value::from(v))
            },
        );
    }
}

//! The controller-side lookups that make sense here, `lookup(NAME, ...)` and
//! `query`/`q` (always a list): `file` (the role's files/, then the
//! repository; the trailing newline stripped as Ansible does), `env`,
//! `vars`, `first_found`. Any other is an error naming it.

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
        other => Err(err(format!(
            "lookup('{other}') is not supported by deploy (it has file, env, vars and first_found: lookups run on the controller, at render time)"
        ))),
    }
}

/// Register `lookup`, `query` and `q` for templates of the role at `role_dir`.
pub(crate) fn add(env: &mut Environment<'static>, role_dir: Option<PathBuf>) {
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

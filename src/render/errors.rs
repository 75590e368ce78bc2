//! Template errors in words: which variable is undefined, where.

use minijinja::{Environment, Value};

/// The variables a template uses that the context does not define.
pub(crate) fn undefined_in(env: &Environment<'static>, src: &str, ctx: &Value) -> Vec<String> {
    let Ok(t) = env.template_from_str(src) else { return Vec::new() };
    let mut names: Vec<String> = t.undeclared_variables(true).into_iter().collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let mut cur = ctx.clone();
        let mut path = Vec::new();
        for seg in n.split('.') {
            path.push(seg);
            let next = cur.get_attr(seg).unwrap_or(Value::UNDEFINED);
            if next.is_undefined() {
                if env.globals().any(|(k, _)| k == seg) && path.len() == 1 {
                    break;
                }
                out.push(path.join("."));
                break;
            }
            cur = next;
        }
    }
    out.dedup();
    out
}

/// A subscript on `line` past the end of a defined list, or of a key a
/// defined mapping lacks (`el[0]` of `el: []`), in words: what makes an
/// undefined value there when no variable is undefined.
fn missing_item(line: &str, ctx: &Value) -> Option<String> {
    static RE: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        fancy_regex::Regex::new(r#"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\[\s*(-?\d+|'[^']*'|"[^"]*")\s*\]"#).expect("valid")
    });
    for c in re.captures_iter(line).flatten() {
        let (path, idx) = (&c[1], &c[2]);
        let mut cur = ctx.clone();
        for seg in path.split('.') {
            cur = cur.get_attr(seg).ok().filter(|v| !v.is_undefined())?;
        }
        match (idx.parse::<i64>(), cur.kind()) {
            (Ok(i), minijinja::value::ValueKind::Seq) => {
                let len = cur.len().unwrap_or(0) as i64;
                if i >= len || -i > len {
                    return Some(format!("`{path}[{idx}]`: list object has no element {i} (`{path}` has {len} items)"));
                }
            }
            (Err(_), minijinja::value::ValueKind::Map) => {
                let key = &idx[1..idx.len() - 1];
                if cur.get_item(&Value::from(key)).map_or(true, |v| v.is_undefined()) {
                    return Some(format!("`{path}[{idx}]`: dict object has no key '{key}'"));
                }
            }
            _ => {}
        }
    }
    None
}

/// A minijinja error in words, naming the undefined variable when there is one.
pub(crate) fn describe_mj_error(e: &minijinja::Error, source: Option<(&Environment<'static>, &str, &Value)>) -> String {
    let mut msg = match e.kind() {
        minijinja::ErrorKind::UndefinedError => {
            let names = source.map(|(env, src, ctx)| undefined_in(env, src, ctx)).unwrap_or_default();
            let line_text = source.zip(e.line()).and_then(|((_, src, _), l)| src.lines().nth(l.saturating_sub(1)));
            let on_line: Vec<&String> = names
                .iter()
                .filter(|n| line_text.is_some_and(|t| t.contains(n.split('.').next().unwrap_or(n))))
                .collect();
            let pick: Vec<&String> = if on_line.is_empty() { names.iter().collect() } else { on_line };
            let missing = || source.zip(line_text).and_then(|((_, _, ctx), t)| missing_item(t, ctx));
            match pick.as_slice() {
                [] if missing().is_some() => {
                    return missing().unwrap_or_default() + "; check its length or keys first, or use `| default(...)`"
                }
                [] => e.detail().unwrap_or("undefined variable").to_string(),
                [one] => format!("undefined variable `{one}`"),
                many => format!(
                    "undefined variables {}",
                    many.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        _ => match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        },
    };
    if matches!(e.kind(), minijinja::ErrorKind::UndefinedError) {
        msg.push_str("; define it in group_vars/host_vars or role defaults, or use `| default(...)`");
    }
    msg
}

/// An error inside a template imported without context, which sees none
/// of the render's variables (Jinja2's default for `import`).
pub(crate) fn describe_bare(e: &minijinja::Error, env: &Environment<'static>, src: &str, by: &str) -> String {
    let ctx = Value::from(std::collections::BTreeMap::<String, Value>::new());
    if e.kind() != minijinja::ErrorKind::UndefinedError {
        return describe_mj_error(e, Some((env, src, &ctx))) + &format!(" (in a template imported by {by})");
    }
    let names = undefined_in(env, src, &ctx);
    let line_text = e.line().and_then(|l| src.lines().nth(l.saturating_sub(1))).unwrap_or("");
    let on_line: Vec<String> = names
        .iter()
        .filter(|n| line_text.contains(n.split('.').next().unwrap_or(n)))
        .map(|n| format!("`{n}`"))
        .collect();
    let what = match on_line.as_slice() {
        [] => "undefined variable".to_string(),
        [one] => format!("undefined variable {one}"),
        many => format!("undefined variables {}", many.join(", ")),
    };
    format!(
        "{what}: {by} imports this template without context, so it sees none of the host's variables; import it `with context`, or pass the value to the macro as an argument"
    )
}

/// Errors raised inside `{% include %}`d templates come wrapped once per
/// include. The innermost one (the root cause), and where each include
/// stands, outermost first (`motd.j2:4`).
pub(crate) fn innermost(e: &minijinja::Error) -> (&minijinja::Error, Vec<(String, usize)>) {
    let mut chain = Vec::new();
    let mut cur = e;
    while cur.kind() == minijinja::ErrorKind::BadInclude {
        let Some(next) = std::error::Error::source(cur).and_then(|s| s.downcast_ref::<minijinja::Error>()) else {
            break;
        };
        chain.push((cur.name().unwrap_or("?").to_string(), cur.line().unwrap_or(0)));
        cur = next;
    }
    (cur, chain)
}

/// `included from a.j2:4, from motd.j2:2`, innermost include first.
pub(crate) fn included_from(chain: &[(String, usize)]) -> String {
    let steps: Vec<String> = chain.iter().rev().map(|(n, l)| format!("{n}:{l}")).collect();
    format!("included from {}", steps.join(", from "))
}

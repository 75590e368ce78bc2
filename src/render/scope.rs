//! What a name means where, as Jinja2 scopes it and minijinja does not,
//! put back by rewriting a template's source before it is parsed:
//!
//! - a macro that includes a template gives it the names the template sets
//!   and imports ([`macro_closures`]);
//! - `{% import %}` and `{% from … import %}` without `with context` run
//!   the imported template without the render's variables ([`bare_imports`]);
//! - a macro whose body mentions `varargs` or `kwargs` takes extra
//!   positional or keyword arguments into them ([`variadic_macros`]).
//!
//! One difference is kept: an include inside a `for` sees `loop`, where
//! Jinja2 passes it only when the loop's body names `loop` itself. Hiding
//! it would mean wrapping the include in a macro that must be given every
//! name the loop's body can see; missing one would break a template that
//! works in Ansible, to refuse one that does not.
//!
//! No rewrite adds or removes a newline, so errors keep their lines.

use std::sync::{Arc, OnceLock};

use fancy_regex::Regex;
use minijinja::value::{Kwargs, Object, ObjectRepr, Value};
use minijinja::{Error as MjError, ErrorKind, State};

/// The suffix of the name a template imported without context is loaded
/// under (a name no file of a role has).
pub(crate) const BARE: &str = " (imported without context)";

fn regex(cell: &'static OnceLock<Regex>, re: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(re).expect("valid"))
}

/// A macro that includes a template gives it the names the template sets
/// and imports, as Jinja2 does (the included template reads them from the
/// macro's module). minijinja encloses in a macro only the names its body
/// mentions, so each such name is mentioned there in a branch never taken:
/// `{% if false %}{{ x }}{% endif %}` after the macro's tag (no newline is
/// added, and the tag's own whitespace control is kept).
pub(crate) fn macro_closures(source: &str) -> String {
    static RES: OnceLock<[Regex; 4]> = OnceLock::new();
    let [set, import, from, mac] = RES.get_or_init(|| {
        [
            r"\{%-?\s*set\s+([A-Za-z_]\w*)\s*(?:=|-?%\})",
            r"\{%-?\s*import\s+[^%]*?\s+as\s+([A-Za-z_]\w*)",
            r"\{%-?\s*from\s+\S+\s+import\s+([^%]+?)\s*-?%\}",
            r"\{%-?\s*macro\s+[A-Za-z_]\w*\s*\([^%]*?\)\s*(-?)%\}((?:(?!\{%-?\s*endmacro)[\s\S])*)",
        ]
        .map(|r| Regex::new(r).expect("valid"))
    });
    if !source.contains("include") || !source.contains("macro") {
        return source.to_string();
    }
    let mut names: Vec<String> = Vec::new();
    for re in [set, import] {
        names.extend(re.captures_iter(source).flatten().map(|c| c[1].to_string()));
    }
    for c in from.captures_iter(source).flatten() {
        names.extend(c[1].split(',').filter_map(|n| n.split_whitespace().last()).map(str::to_string));
    }
    names.sort();
    names.dedup();
    if names.is_empty() {
        return source.to_string();
    }
    let mention: String = names.iter().map(|n| format!("{{{{ {n} }}}}")).collect();
    let mut out = String::new();
    let mut last = 0;
    for c in mac.captures_iter(source).flatten() {
        let body = c.get(2).expect("a body");
        if !body.as_str().contains("include") {
            continue;
        }
        out.push_str(&source[last..body.start()]);
        out.push_str(&format!("{{% if false %}}{mention}{{% endif {}%}}", &c[1]));
        last = body.start();
    }
    out.push_str(&source[last..]);
    out
}

/// `{% import X as m %}` and `{% from X import a %}` without `with
/// context` load `X` under its name with [`BARE`] appended, which the
/// loader answers with [`without_context`].
pub(crate) fn bare_imports(source: &str) -> String {
    static IMPORT: OnceLock<Regex> = OnceLock::new();
    let re = regex(
        &IMPORT,
        r"(\{%-?\s*(?:import\s+|from\s+))(.+?)(\s+(?:as\s+[A-Za-z_]\w*|import\s+(?:(?!%\}).)+?)\s*-?%\})",
    );
    if !source.contains("import") {
        return source.to_string();
    }
    re.replace_all(source, |c: &fancy_regex::Captures| {
        if c[3].contains(" with context") || c[3].contains("\twith context") {
            return c[0].to_string();
        }
        format!("{}__deploy_bare({}){}", &c[1], &c[2], &c[3])
    })
    .into_owned()
}

/// The source of a template imported without context: every name it reads
/// from outside itself, except the environment's `globals`, is set to
/// undefined first, so its macros (whose closure is taken when they are
/// defined) do not see the variables of the render that imported it.
/// An import keeps no output, so the line added before is harmless.
pub(crate) fn without_context(source: &str, globals: &[String]) -> Result<String, MjError> {
    let env = minijinja::Environment::new();
    let tmpl = env.template_from_str(source)?;
    let mut names: Vec<String> = tmpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|n| !n.starts_with("__deploy") && !globals.contains(n))
        .collect();
    names.sort();
    let unset: String = names.iter().map(|n| format!("{{% set {n} = __deploy_unset() %}}")).collect();
    Ok(format!("{unset}{source}"))
}

/// `__deploy_bare(name)`: the name a template imported without context is
/// loaded under.
pub(crate) fn bare(name: String) -> String {
    format!("{name}{BARE}")
}

/// `__deploy_unset()`: the undefined value a hidden name is set to.
pub(crate) fn unset() -> Value {
    Value::UNDEFINED
}

/// Split a macro's parameter list at its top-level commas into names.
fn parameter_names(args: &str) -> Vec<String> {
    let (mut out, mut depth, mut cur, mut quote) = (Vec::new(), 0i32, String::new(), None::<char>);
    for ch in args.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(ch),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        if quote.is_none() || ch != ',' {
            cur.push(ch);
        }
    }
    out.push(cur);
    out.iter().map(|a| a.split('=').next().unwrap_or("").trim().to_string()).filter(|a| !a.is_empty()).collect()
}

/// `{% macro m(a) %}…varargs…{% endmacro %}` becomes a macro with two more
/// parameters and `{% set m = __deploy_variadic(…) %}`, which sorts a
/// call's arguments as Jinja2 does.
pub(crate) fn variadic_macros(source: &str) -> String {
    static MAC: OnceLock<Regex> = OnceLock::new();
    static USES: OnceLock<Regex> = OnceLock::new();
    if !source.contains("varargs") && !source.contains("kwargs") {
        return source.to_string();
    }
    let mac = regex(
        &MAC,
        r"(\{%-?\s*macro\s+)([A-Za-z_]\w*)(\s*\()((?:(?!%\}).)*?)(\)\s*-?%\})((?:(?!\{%-?\s*(?:end)?macro\b)[\s\S])*)(\{%-?\s*endmacro\s*(-?)%\})",
    );
    let uses = regex(&USES, r"\b(varargs|kwargs)\b");
    mac.replace_all(source, |c: &fancy_regex::Captures| {
        let body = &c[6];
        let found: Vec<String> = uses.captures_iter(body).flatten().map(|u| u[1].to_string()).collect();
        if found.is_empty() {
            return c[0].to_string();
        }
        let name = &c[2];
        let params = parameter_names(&c[4]);
        let list: Vec<String> = params.iter().map(|p| format!("'{p}'")).collect();
        let sep = if c[4].trim().is_empty() { "" } else { ", " };
        format!(
            "{}__deploy_variadic_{name}{}{}{sep}varargs=none, kwargs=none{}{body}{}{{% set {name} = __deploy_variadic(__deploy_variadic_{name}, '{name}', [{}], {}, {}) {}%}}",
            &c[1],
            &c[3],
            &c[4],
            &c[5],
            &c[7],
            list.join(", "),
            found.iter().any(|f| f == "varargs"),
            found.iter().any(|f| f == "kwargs"),
            &c[8],
        )
    })
    .into_owned()
}

/// A macro that takes extra arguments into `varargs` and `kwargs`.
#[derive(Debug)]
struct Variadic {
    inner: Value,
    name: String,
    params: Vec<String>,
    varargs: bool,
    kwargs: bool,
}

impl Object for Variadic {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call(self: &Arc<Self>, state: &State<'_, '_>, args: &[Value]) -> Result<Value, MjError> {
        let (pos, named) = match args.last().map(|l| Kwargs::try_from(l.clone())) {
            Some(Ok(k)) => (&args[..args.len() - 1], Some(k)),
            _ => (args, None),
        };
        let n = self.params.len();
        if pos.len() > n && !self.varargs {
            return Err(MjError::new(
                ErrorKind::TooManyArguments,
                format!("macro '{}' takes not more than {n} argument(s)", self.name),
            ));
        }
        let mut call: Vec<Value> = pos.iter().take(n).cloned().collect();
        let (mut pass, mut extra) = (Vec::new(), indexmap::IndexMap::new());
        for key in named.iter().flat_map(|k| k.args()) {
            let v: Value = named.as_ref().expect("kwargs").get(key)?;
            if self.params.iter().any(|p| p == key) || key == "caller" {
                pass.push((key.to_string(), v));
            } else if self.kwargs {
                extra.insert(key.to_string(), v);
            } else {
                return Err(MjError::new(
                    ErrorKind::TooManyArguments,
                    format!("macro '{}' takes no keyword argument '{key}'", self.name),
                ));
            }
        }
        pass.push(("varargs".into(), Value::from(pos.iter().skip(n).cloned().collect::<Vec<_>>())));
        pass.push(("kwargs".into(), Value::from_serialize(&extra)));
        call.push(Value::from(Kwargs::from_iter(pass)));
        self.inner.call(state, &call)
    }
}

/// `__deploy_variadic(macro, name, params, varargs, kwargs)`.
pub(crate) fn variadic(inner: Value, name: String, params: Vec<String>, varargs: bool, kwargs: bool) -> Value {
    Value::from_object(Variadic { inner, name, params, varargs, kwargs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_without_context_are_bare() {
        assert_eq!(bare_imports("{% import 'm.j2' as m %}"), "{% import __deploy_bare('m.j2') as m %}");
        assert_eq!(
            bare_imports("{%- from 'm.j2' import a, b as c -%}"),
            "{%- from __deploy_bare('m.j2') import a, b as c -%}"
        );
        for same in ["{% import 'm.j2' as m with context %}", "{% from 'm.j2' import a with context %}"] {
            assert_eq!(bare_imports(same), same);
        }
        let g = ["range".to_string()];
        assert_eq!(
            without_context("{% macro s() %}{{ name }}{{ range(1) }}{{ top }}{% endmacro %}{% set top = 1 %}", &g).unwrap(),
            // `top` is set after the macro: hidden first, then the set reaches the closure
            "{% set name = __deploy_unset() %}{% set top = __deploy_unset() %}{% macro s() %}{{ name }}{{ range(1) }}{{ top }}{% endmacro %}{% set top = 1 %}"
        );
    }

    #[test]
    fn varargs_macros_get_two_more_parameters() {
        assert_eq!(
            variadic_macros("{% macro m(a, b=f(1, 2)) -%}{{ varargs }}{%- endmacro -%}\n"),
            "{% macro __deploy_variadic_m(a, b=f(1, 2), varargs=none, kwargs=none) -%}{{ varargs }}{%- endmacro -%}{% set m = __deploy_variadic(__deploy_variadic_m, 'm', ['a', 'b'], true, false) -%}\n"
        );
        let plain = "{% macro m() %}{{ x }}{% endmacro %}";
        assert_eq!(variadic_macros(plain), plain);
    }
}

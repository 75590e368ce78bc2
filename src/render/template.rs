//! The template engine: minijinja configured to render like Ansible's template
//! module, so a template carried over from Ansible gives the same bytes.
//!
//! What differs from minijinja's defaults and why: trim_blocks on; no
//! auto-escaping (config files, not HTML); strict undefined; values print as
//! Python prints them (True, None, ['a'], {'k': 1}); the template's own
//! trailing newlines are restored after rendering while included templates
//! lose their last one (Ansible's rule); Ansible's filters and tests.

use std::path::{Path, PathBuf};

use minijinja::{AutoEscape, Environment, Error as MjError, ErrorKind, UndefinedBehavior, Value};

use crate::error::Error;
use crate::render::pyfmt::py_str;

/// Check template source: UTF-8 and LF line endings, naming file and line.
pub(crate) fn check_source(path: &Path, bytes: &[u8]) -> Result<String, Error> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
            return Err(Error::Invalid {
                path: path.into(),
                line: Some(line),
                message: "template is not valid UTF-8 (Windows-1252 or Latin-1 bytes?); re-save it as UTF-8".into(),
            });
        }
    };
    if let Some(i) = text.find('\r') {
        let line = text[..i].matches('\n').count() + 1;
        return Err(Error::Invalid {
            path: path.into(),
            line: Some(line),
            message: "template has CRLF (Windows) line endings; convert it to LF (dos2unix, or your editor's line-ending setting)".into(),
        });
    }
    Ok(text.to_string())
}

/// Build an environment with Ansible's settings, filters and tests. When
/// `templates` is given, `{% include %}` resolves relative to it.
pub(crate) fn environment(templates: Option<PathBuf>) -> Environment<'static> {
    let mut env = Environment::new();
    crate::render::lookups::add(&mut env, templates.as_ref().and_then(|t| t.parent()).map(|p| p.to_path_buf()));
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(false);
    env.set_keep_trailing_newline(false);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(super::filters_more::unknown_method);
    env.set_formatter(|out, _state, value| {
        // minijinja refuses an undefined value before this under strict
        // undefined; what reaches here is the silent one of an inline `if`
        // without `else`, which prints nothing, as in Jinja2
        let text = if value.is_none() || value.is_undefined() {
            // ansible-core 2.19 writes a None as nothing (inside a list it is still `None`)
            String::new()
        } else {
            py_str(value)
        };
        // a None (an append's result, say) leaves no part in 2.19's
        // concatenation: `{{ l.append(1) }}{{ l }}` is one value
        if value.is_none() {
            EMITTED.with(|e| e.borrow_mut().nones += 1);
            return Ok(());
        }
        EMITTED.with(|e| {
            let mut e = e.borrow_mut();
            e.count += 1;
            e.native = value.kind() != minijinja::value::ValueKind::String;
            e.len = text.len();
        });
        out.write_str(&text).map_err(|_| MjError::new(ErrorKind::WriteFailure, "write failed"))
    });
    env.add_function("__deploy_mutable", super::mutable::mutable);
    env.add_function("__deploy_bare", super::scope::bare);
    env.add_function("__deploy_unset", super::scope::unset);
    env.add_function("__deploy_variadic", super::scope::variadic);
    minijinja_contrib::add_to_environment(&mut env);
    crate::render::filters::add_ansible(&mut env);
    if let Some(dir) = templates {
        let globals: Vec<String> = env.globals().map(|(k, _)| k.to_string()).collect();
        env.set_loader(move |name| load(&dir, name, &globals));
    }
    env
}

/// The loader: a role's template by its name under `dir`, rewritten; one
/// imported without context (its name ends in `scope::BARE`) with the
/// render's variables hidden from it.
fn load(dir: &Path, name: &str, globals: &[String]) -> Result<Option<String>, MjError> {
    if let Some(real) = name.strip_suffix(super::scope::BARE) {
        return match load(dir, real, globals)? {
            Some(source) => super::scope::without_context(&source, globals).map(Some),
            None => Ok(None),
        };
    }
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => check_source(&path, &bytes)
            .map(|s| Some(rewritten(&s)))
            .map_err(|e| MjError::new(ErrorKind::InvalidOperation, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(MjError::new(ErrorKind::InvalidOperation, format!("{}: {e}", path.display()))),
    }
}

/// Filters and tests under their `ansible.builtin.` names (`| ansible.builtin.to_json`,
/// `is ansible.builtin.match`) as their short names, as Ansible resolves them;
/// and the ip filters under `ansible.utils.` and `ansible.netcommon.`.
pub(crate) fn builtin_names(source: &str) -> String {
    static RE: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        fancy_regex::Regex::new(r"(\|\s*|\bis\s+(?:not\s+)?)ansible\.(?:builtin|utils|netcommon)\.").expect("valid")
    });
    re.replace_all(source, "$1").into_owned()
}

/// An expression (a `when:`, a vars value's `{{ expr }}`) as minijinja is
/// given it: rewritten as the one tag of a template.
pub(crate) fn rewritten_expr(expr: &str) -> String {
    let t = rewritten_small(&format!("{{{{ {expr} }}}}"));
    t.strip_prefix("{{ ").and_then(|t| t.strip_suffix(" }}")).map(str::to_string).unwrap_or_else(|| expr.to_string())
}

thread_local! {
    // a role.yml field or a vars value is rendered for every host: its
    // rewrite is the same each time
    static SMALL: std::cell::RefCell<std::collections::HashMap<String, String>> = Default::default();
}

/// `rewritten` of a one-line template (a field, a vars value), kept for the
/// next host.
pub(crate) fn rewritten_small(source: &str) -> String {
    if source.len() > 4096 {
        return rewritten(source);
    }
    SMALL.with(|c| {
        if let Some(r) = c.borrow().get(source) {
            return r.clone();
        }
        let r = rewritten(source);
        let mut c = c.borrow_mut();
        if c.len() > 50_000 {
            c.clear();
        }
        c.insert(source.to_string(), r.clone());
        r
    })
}

/// A template's source as minijinja is given it: Ansible's names, and the
/// Jinja2 semantics minijinja lacks put in by rewriting (see each).
pub(crate) fn rewritten(source: &str) -> String {
    use super::scope::{bare_imports, macro_closures, variadic_macros};
    let (masked, raws) = mask_raw(source);
    let scoped = variadic_macros(&bare_imports(&macro_closures(&builtin_names(&masked))));
    let out = super::rewrite::python_operators(&mutable_sets(&scoped));
    unmask_raw(out, &raws)
}

/// A `{% raw %}` block is text: each is swapped for a placeholder (private
/// use characters no template has) while the rewrites run, then put back.
fn mask_raw(source: &str) -> (String, Vec<&str>) {
    static RE: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        fancy_regex::Regex::new(r"\{%[-+]?\s*raw\s*[-+]?%\}[\s\S]*?\{%[-+]?\s*endraw\s*[-+]?%\}").expect("valid")
    });
    if !source.contains("raw") {
        return (source.to_string(), Vec::new());
    }
    let mut raws = Vec::new();
    let mut out = String::with_capacity(source.len());
    let mut last = 0;
    for m in re.find_iter(source).flatten() {
        out.push_str(&source[last..m.start()]);
        out.push_str(&format!("\u{E000}{}\u{E001}", raws.len()));
        raws.push(m.as_str());
        last = m.end();
    }
    out.push_str(&source[last..]);
    (out, raws)
}

fn unmask_raw(mut text: String, raws: &[&str]) -> String {
    for (i, raw) in raws.iter().enumerate() {
        text = text.replacen(&format!("\u{E000}{i}\u{E001}"), raw, 1);
    }
    text
}

/// `{% set NAME = [...] %}` and `{% set NAME = {...} %}` make a list or
/// dict the template may change in place (`names.append(x)`), as Python's
/// are: the literal goes through `__deploy_mutable` (render::mutable).
pub(crate) fn mutable_sets(source: &str) -> String {
    static RE: std::sync::OnceLock<fancy_regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        fancy_regex::Regex::new(r"(\{%-?\s*set\s+[A-Za-z_]\w*\s*=\s*)(\[[^%]*?\]|\{[^%]*?\})(\s*-?%\})").expect("valid")
    });
    if !source.contains("set") {
        return source.to_string();
    }
    re.replace_all(source, "${1}__deploy_mutable(${2})${3}").into_owned()
}

/// Ansible's rule for trailing newlines: rendered without keeping the last
/// newline, then the source's own trailing newlines are restored.
pub(crate) fn restore_trailing_newlines(source: &str, mut rendered: String) -> String {
    let want = source.chars().rev().take_while(|c| *c == '\n').count();
    let have = rendered.chars().rev().take_while(|c| *c == '\n').count();
    for _ in have..want {
        rendered.push('\n');
    }
    rendered
}

/// What the expressions of the render in progress wrote (`{{ }}` outputs),
/// to tell a template that is one value from one that is text.
#[derive(Default)]
struct Emitted {
    count: usize,
    /// The last value was not a string.
    native: bool,
    /// Bytes the last value wrote.
    len: usize,
    /// None values (they print nothing and leave no part).
    nones: usize,
}

thread_local! {
    static EMITTED: std::cell::RefCell<Emitted> = std::cell::RefCell::new(Emitted::default());
}

/// Render one template source for a host, Ansible style.
pub(crate) fn render_str(env: &Environment<'static>, name: &str, source: &str, ctx: &Value) -> Result<String, MjError> {
    let source_fq = rewritten(source);
    let tmpl = env.template_from_named_str(name, &source_fq)?;
    finish(&tmpl, source, ctx)
}

/// Render a role's template file `name` (its source is `source`) for a
/// host: compiled once per role through the environment's loader, not
/// once per host.
pub(crate) fn render_file(
    env: &Environment<'static>,
    name: &str,
    source: &str,
    ctx: &Value,
) -> Result<String, MjError> {
    finish(&env.get_template(name)?, source, ctx)
}

fn finish(tmpl: &minijinja::Template<'_, '_>, source: &str, ctx: &Value) -> Result<String, MjError> {
    EMITTED.with(|e| *e.borrow_mut() = Emitted::default());
    let out = tmpl.render(ctx)?;
    // ansible-core 2.19 renders natively: a template whose whole output is
    // one value that is not a string (`{{ [1, 2] }}`, `{{ none }}`) is that
    // value printed, and the source's trailing newlines are restored only
    // to text
    let one_value = EMITTED.with(|e| {
        let e = e.borrow();
        (e.count == 1 && e.native && e.len == out.len()) || (e.count == 0 && e.nones > 0 && out.is_empty())
    });
    if one_value {
        return Ok(out);
    }
    Ok(restore_trailing_newlines(source, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_blocks_are_not_rewritten() {
        let raw = "{% raw %}{% import 'x' as y %}{{ a | ansible.builtin.b }}{% set l = [] %}{{ +1 }}{% endraw %}";
        let src = format!(
            "{{{{ +1 }}}}{raw}\n{{%- raw -%}} {{% macro m() %}}{{{{ varargs }}}}{{% endmacro %}} {{%- endraw %}}"
        );
        assert_eq!(
            rewritten(&src),
            format!(
                "{{{{ 1 }}}}{raw}\n{{%- raw -%}} {{% macro m() %}}{{{{ varargs }}}}{{% endmacro %}} {{%- endraw %}}"
            )
        );
    }

    #[test]
    fn set_literals_become_changeable() {
        assert_eq!(
            mutable_sets("{% set a = [] %}{%- set b = {'k': [1]} -%}{% set c = [1] + x %}{% set d = x %}"),
            "{% set a = __deploy_mutable([]) %}{%- set b = __deploy_mutable({'k': [1]}) -%}{% set c = [1] + x %}{% set d = x %}"
        );
    }

    // a macro that includes gets the template's set and imported names
    // mentioned in a branch never taken; others, and line numbers, stay
    #[test]
    fn macros_that_include_enclose_the_templates_names() {
        let src = "{% set x = 1 %}{% import 'm.j2' as m %}{% from 'f.j2' import a as b, c %}\n\
                   {%- macro one() -%}\n{% include 'i.j2' %}{% endmacro %}{% macro two() %}{{ 2 }}{% endmacro %}";
        let out = super::super::scope::macro_closures(src);
        assert_eq!(
            out,
            "{% set x = 1 %}{% import 'm.j2' as m %}{% from 'f.j2' import a as b, c %}\n\
             {%- macro one() -%}{% if false %}{{ b }}{{ c }}{{ m }}{{ x }}{% endif -%}\n{% include 'i.j2' %}{% endmacro %}{% macro two() %}{{ 2 }}{% endmacro %}"
        );
        assert_eq!(
            super::super::scope::macro_closures("{% macro m() %}{{ 1 }}{% endmacro %}"),
            "{% macro m() %}{{ 1 }}{% endmacro %}"
        );
    }
    use crate::render::filters::ip_in_network;
    use minijinja::context;

    #[test]
    fn networks() {
        assert!(ip_in_network("10.231.3.1", "10.231.0.0/16").unwrap());
        assert!(!ip_in_network("10.232.3.1", "10.231.0.0/16").unwrap());
        assert!(ip_in_network("100.64.7.1", "100.64.0.0/10").unwrap());
        assert!(!ip_in_network("100.128.0.1", "100.64.0.0/10").unwrap());
        assert!(ip_in_network("192.0.2.1", "0.0.0.0/0").unwrap());
        assert!(ip_in_network("192.0.2.1", "192.0.2.1").unwrap());
        assert!(ip_in_network("::ffff:10.1.2.3", "10.0.0.0/8").unwrap());
        assert!(ip_in_network("2001:db8::1", "2001:db8::/32").unwrap());
        assert!(!ip_in_network("2001:db8::1", "10.0.0.0/8").unwrap());
        assert!(ip_in_network("x", "10.0.0.0/8").is_err());
        let env = environment(None);
        let t = |src: &str| env.render_str(src, context! { a => "10.231.3.1", nets => ["192.0.2.0/24", "10.0.0.0/8"] });
        assert_eq!(t("{{ a is in_any_network(nets) }}").unwrap(), "True");
        assert_eq!(t("{{ a is in_network('192.0.2.0/24') }}").unwrap(), "False");
    }

    fn r(src: &str, ctx: Value) -> String {
        let env = environment(None);
        render_str(&env, "t", src, &ctx).unwrap()
    }

    #[test]
    fn python_printing() {
        let ctx = context! { b => true, n => (), l => vec!["x", "y"], f => 0.5, g => 3.0, i => 3 };
        // a None prints as nothing, as in ansible-core 2.19 (tests/ansible_parity.rs)
        assert_eq!(
            r("{{ b }} {{ n }} {{ l }} {{ f }} {{ g }} {{ i }} {{ b | lower }}", ctx),
            "True  ['x', 'y'] 0.5 3.0 3 true"
        );
        let m: indexmap::IndexMap<&str, i32> = [("a", 1), ("b", 2)].into_iter().collect();
        assert_eq!(r("{{ m }}", context! { m => m }), "{'a': 1, 'b': 2}");
    }

    #[test]
    fn trailing_newlines_like_ansible() {
        assert_eq!(r("a\n", context! {}), "a\n");
        assert_eq!(r("a\n\n", context! {}), "a\n\n");
        assert_eq!(r("a", context! {}), "a");
        assert_eq!(r("{% if true %}\nx\n{% endif %}\n", context! {}), "x\n");
    }

    #[test]
    fn no_autoescape_and_strict() {
        let env = environment(None);
        let t = env.template_from_named_str("x.html", "{{ s }}").unwrap();
        assert_eq!(t.render(context! { s => "<a & b>" }).unwrap(), "<a & b>");
        assert!(env.render_str("{{ nope }}", context! {}).is_err());
    }

    #[test]
    fn ansible_filters() {
        let ctx = context! { s => "foo=bar", h => "a b", p => "/etc/ssh/sshd_config" };
        assert_eq!(r("{{ s | regex_replace('(\\\\w+)=(\\\\w+)', '\\\\2=\\\\1') }}", ctx.clone()), "bar=foo");
        assert_eq!(r("{{ s | regex_replace('(?<=foo)=', ':') }}", ctx.clone()), "foo:bar");
        assert_eq!(r("{{ s | regex_search('=(.*)', '\\\\1') }}", ctx.clone()), "['bar']");
        assert_eq!(
            r("{{ h | quote }} {{ p | basename }} {{ p | dirname }}", ctx.clone()),
            "'a b' sshd_config /etc/ssh"
        );
        assert_eq!(r("{{ 'yes' | bool }} {{ 'off' | bool }}", ctx.clone()), "True False");
        assert_eq!(r("{{ {'a': 1} | combine({'b': [1]}) | to_json }}", ctx.clone()), "{\"a\": 1, \"b\": [1]}");
        assert_eq!(
            r("{{ {'b': 1, 'a': 'é'} | to_nice_json }}", ctx.clone()),
            "{\n    \"a\": \"\\u00e9\",\n    \"b\": 1\n}"
        );
        assert_eq!(r("{{ {'a': 1} | dict2items }}", ctx.clone()), "[{'key': 'a', 'value': 1}]");
        assert_eq!(r("{{ '1.10.2' is version('1.9', '>') }}", ctx.clone()), "True");
        assert_eq!(r("{{ 'a' | b64encode }} {{ 'YQ==' | b64decode }}", ctx.clone()), "YQ== a");
        assert_eq!(r("{{ 2.5 | round }} {{ 3.7 | int }} {{ 7 / 2 }}", ctx.clone()), "2.0 3 3.5");
        assert_eq!(r("{{ true | ternary('on', 'off') }}", ctx.clone()), "on");
        assert_eq!(
            r("{{ 'a,b'.split(',') }} {{ 'x y'.split() }} {{ s.startswith('foo') }}", ctx),
            "['a', 'b'] ['x', 'y'] True"
        );
    }

    #[test]
    fn bad_sources() {
        let e = check_source(Path::new("t.j2"), b"a\nb\r\nc").unwrap_err().to_string();
        assert!(e.contains("t.j2:2") && e.contains("CRLF"), "{e}");
        let e = check_source(Path::new("t.j2"), b"a\n\xe9t\xe9\n").unwrap_err().to_string();
        assert!(e.contains("t.j2:2") && e.contains("UTF-8"), "{e}");
    }
}

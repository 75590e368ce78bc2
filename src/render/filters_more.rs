//! More of Ansible's filters, each as Python computes it: text (center,
//! comment, regex_escape), data (from_json, from_yaml, flatten and the set
//! filters), paths (splitext, urlsplit); and every filter and test also
//! under its `ansible.builtin.` name.

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error as MjError, ErrorKind};

use super::pyfmt::py_str;

fn err(msg: impl Into<String>) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, msg.into())
}

/// Python's `str.center`: the extra space of an odd padding goes right,
/// unless the width is odd too.
fn center(s: &str, width: usize) -> String {
    let len = s.chars().count();
    if width <= len {
        return s.to_string();
    }
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    format!("{}{s}{}", " ".repeat(left), " ".repeat(marg - left))
}

/// Python's `re.escape` (3.7+): only the characters special in a pattern.
fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "()[]{}?*+-|^$\\.&~# \t\n\r\x0b\x0c".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The items of a sequence value.
fn items(v: &Value) -> Result<Vec<Value>, MjError> {
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => Ok(v.try_iter()?.collect()),
        _ => Err(err(format!("expected a list, got {}", v.kind()))),
    }
}

fn unique(v: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn flatten(v: &Value, levels: Option<i64>, skip_nulls: bool, out: &mut Vec<Value>) {
    for x in v.try_iter().into_iter().flatten() {
        let null = x.is_none() || (x.kind() == ValueKind::String && matches!(x.as_str(), Some("None" | "null")));
        if skip_nulls && null {
            continue;
        }
        if x.kind() == ValueKind::Seq && levels.is_none_or(|l| l > 0) {
            flatten(&x, levels.map(|l| l - 1), skip_nulls, out);
        } else {
            out.push(x);
        }
    }
}

/// `os.path.splitext`: the extension starts at the last dot of the last
/// component, not counting leading dots.
fn splitext(p: &str) -> (String, String) {
    let base_start = p.rfind('/').map(|i| i + 1).unwrap_or(0);
    let base = &p[base_start..];
    let lead = base.len() - base.trim_start_matches('.').len();
    match base[lead..].rfind('.') {
        Some(i) => {
            let at = base_start + lead + i;
            (p[..at].to_string(), p[at..].to_string())
        }
        None => (p.to_string(), String::new()),
    }
}

/// `urllib.parse.urlsplit` as Ansible's `urlsplit` filter returns it.
fn urlsplit(url: &str) -> Vec<(&'static str, Value)> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => {
            (s.to_lowercase(), format!("//{r}"))
        }
        _ => (String::new(), url.to_string()),
    };
    let (rest, fragment) =
        rest.split_once('#').map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or((rest.clone(), String::new()));
    let (rest, query) =
        rest.split_once('?').map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or((rest.clone(), String::new()));
    let (netloc, path) = match rest.strip_prefix("//") {
        Some(r) => match r.find('/') {
            Some(i) => (r[..i].to_string(), r[i..].to_string()),
            None => (r.to_string(), String::new()),
        },
        None => (String::new(), rest.clone()),
    };
    let (userinfo, hostport) =
        netloc.rsplit_once('@').map(|(u, h)| (Some(u.to_string()), h.to_string())).unwrap_or((None, netloc.clone()));
    let (username, password) = match &userinfo {
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Value::from(a), Value::from(b)),
            None => (Value::from(u.as_str()), Value::from(())),
        },
        None => (Value::from(()), Value::from(())),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') && p.chars().all(|c| c.is_ascii_digit()) => {
            (h.to_string(), p.parse::<u16>().map(Value::from).unwrap_or(Value::from(())))
        }
        _ => (hostport.clone(), Value::from(())),
    };
    let hostname = if host.is_empty() {
        Value::from(())
    } else {
        Value::from(host.trim_matches(|c| c == '[' || c == ']').to_lowercase())
    };
    vec![
        ("fragment", Value::from(fragment)),
        ("hostname", hostname),
        ("netloc", Value::from(netloc)),
        ("password", password),
        ("path", Value::from(path)),
        ("port", port),
        ("query", Value::from(query)),
        ("scheme", Value::from(scheme)),
        ("username", username),
    ]
}

/// Ansible's `comment` filter, `plain` style (the default) and `c`.
fn comment(text: &str, style: &str) -> Result<String, MjError> {
    let (prefix, decoration, postfix) = match style {
        "plain" => ("#", "# ", "#"),
        "c" => ("//", "// ", "//"),
        "cblock" => ("/*", " * ", " */"),
        "erlang" => ("%", "% ", "%"),
        "xml" => ("<!--", " - ", "-->"),
        other => return Err(err(format!("comment style `{other}` is not supported (plain, erlang, c, cblock, xml)"))),
    };
    let body: Vec<String> = text
        .lines()
        .map(|l| if l.is_empty() { decoration.trim_end().to_string() } else { format!("{decoration}{l}") })
        .collect();
    Ok(format!("{prefix}\n{}\n{postfix}", body.join("\n")))
}

/// Python's `str.rsplit(sep=None, maxsplit=-1)`.
fn rsplit(s: &str, sep: Option<&str>, max: i64) -> Result<Vec<String>, MjError> {
    let max = if max < 0 { usize::MAX } else { max as usize };
    match sep {
        Some("") => Err(err("rsplit: empty separator")),
        Some(sep) => {
            let mut v: Vec<String> = s.rsplitn(max.saturating_add(1), sep).map(str::to_string).collect();
            v.reverse();
            Ok(v)
        }
        // runs of whitespace; what is left of the last split keeps its
        // leading whitespace
        None => {
            let mut rest = s.trim_end();
            let mut v = Vec::new();
            while !rest.is_empty() && v.len() < max {
                match rest.rfind(char::is_whitespace) {
                    Some(i) => {
                        let w = rest[i..].chars().next().map_or(1, char::len_utf8);
                        v.push(rest[i + w..].to_string());
                        rest = rest[..i].trim_end();
                    }
                    None => {
                        v.push(rest.to_string());
                        rest = "";
                    }
                }
            }
            if !rest.is_empty() {
                v.push(rest.to_string());
            }
            v.reverse();
            Ok(v)
        }
    }
}

/// Python methods minijinja-contrib's pycompat lacks (`list.index`,
/// `str.rsplit`), then pycompat's.
pub(crate) fn unknown_method(
    state: &minijinja::State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, MjError> {
    match (value.kind(), method) {
        (ValueKind::Seq, "index") => {
            let (what,): (Value,) = minijinja::value::from_args(args)?;
            let pos = value.try_iter()?.position(|x| x == what);
            pos.map(Value::from).ok_or_else(|| err(format!("{} is not in list", py_str(&what))))
        }
        (ValueKind::String, "rsplit") => {
            let (sep, max): (Option<Value>, Option<i64>) = minijinja::value::from_args(args)?;
            let sep = sep.filter(|s| !s.is_none()).map(|s| py_str(&s));
            Ok(Value::from(rsplit(value.as_str().unwrap_or_default(), sep.as_deref(), max.unwrap_or(-1))?))
        }
        _ => match super::mutable::refuse(value, method) {
            Some(e) => Err(e),
            None => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
        },
    }
}

/// Jinja's `xmlattr`: ` key="value"` for each item not none or undefined,
/// HTML-escaped; a key that could break out of the tag is refused.
fn xmlattr(d: &Value, autospace: bool) -> Result<String, MjError> {
    let esc = |s: &str| {
        s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&#34;").replace('\'', "&#39;")
    };
    let mut parts = Vec::new();
    for k in d.try_iter()? {
        let v = d.get_item(&k)?;
        if v.is_none() || v.is_undefined() {
            continue;
        }
        let k = py_str(&k);
        if k.is_empty() || k.chars().any(|c| c.is_whitespace() || "/>=".contains(c)) {
            return Err(err(format!("Invalid character in attribute name: {k:?}")));
        }
        parts.push(format!("{}=\"{}\"", esc(&k), esc(&py_str(&v))));
    }
    let out = parts.join(" ");
    Ok(if autospace && !out.is_empty() { format!(" {out}") } else { out })
}

pub(crate) fn add(env: &mut Environment<'static>) {
    env.add_filter("xmlattr", |d: Value, autospace: Option<bool>| xmlattr(&d, autospace.unwrap_or(true)));
    env.add_filter("center", |v: Value, width: Option<usize>| center(&py_str(&v), width.unwrap_or(80)));
    env.add_filter("regex_escape", |v: Value| regex_escape(&py_str(&v)));
    env.add_filter("comment", |v: Value, style: Option<String>| {
        comment(&py_str(&v), style.as_deref().unwrap_or("plain"))
    });
    env.add_filter("from_json", |v: Value| -> Result<Value, MjError> {
        let j: serde_json::Value = serde_json::from_str(&py_str(&v)).map_err(|e| err(format!("from_json: {e}")))?;
        Ok(Value::from_serialize(&j))
    });
    env.add_filter("from_yaml", |v: Value| -> Result<Value, MjError> {
        let text = py_str(&v);
        let (text, _) = crate::load::yaml::as_ansible_reads_it(std::path::Path::new("from_yaml"), &text);
        let y: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| err(format!("from_yaml: {e}")))?;
        Ok(crate::load::yaml::yaml_to_value(&y))
    });
    env.add_filter("flatten", |v: Value, kw: Kwargs| -> Result<Value, MjError> {
        let levels: Option<i64> = kw.get("levels")?;
        let skip: Option<bool> = kw.get("skip_nulls")?;
        kw.assert_all_used()?;
        let mut out = Vec::new();
        flatten(&v, levels, skip.unwrap_or(true), &mut out);
        Ok(Value::from(out))
    });
    env.add_filter("union", |a: Value, b: Value| -> Result<Value, MjError> {
        Ok(Value::from(unique([items(&a)?, items(&b)?].concat())))
    });
    env.add_filter("intersect", |a: Value, b: Value| -> Result<Value, MjError> {
        let b = items(&b)?;
        Ok(Value::from(unique(items(&a)?.into_iter().filter(|x| b.contains(x)).collect())))
    });
    env.add_filter("difference", |a: Value, b: Value| -> Result<Value, MjError> {
        let b = items(&b)?;
        Ok(Value::from(unique(items(&a)?.into_iter().filter(|x| !b.contains(x)).collect())))
    });
    env.add_filter("symmetric_difference", |a: Value, b: Value| -> Result<Value, MjError> {
        let (a, b) = (items(&a)?, items(&b)?);
        let both: Vec<Value> = a.iter().filter(|x| b.contains(x)).cloned().collect();
        Ok(Value::from(unique([a, b].concat().into_iter().filter(|x| !both.contains(x)).collect())))
    });
    env.add_filter("password_hash", |v: Value, scheme: Option<String>, salt: Option<String>, kw: Kwargs| -> Result<String, MjError> {
        let salt = salt.or(kw.get("salt")?);
        let scheme = scheme.or(kw.get("hashtype")?);
        let rounds: Option<u32> = kw.get("rounds")?;
        let _: Option<Value> = kw.get("salt_size")?;
        kw.assert_all_used()?;
        let rounds = rounds.unwrap_or(super::crypt::PASSLIB_ROUNDS);
        match (scheme.as_deref().unwrap_or("sha512"), salt) {
            ("sha512" | "sha512_crypt", Some(salt)) => Ok(super::crypt::sha512_crypt(py_str(&v).as_bytes(), salt.as_bytes(), rounds)),
            ("sha512" | "sha512_crypt", None) => Err(err(
                "password_hash without a salt makes a new hash on every render, so the file would change on every deploy: give one (password_hash('sha512', 'SALT'))",
            )),
            (other, _) => Err(err(format!("password_hash('{other}') is not supported (sha512 is)"))),
        }
    });
    env.add_filter("splitext", |v: Value| {
        let (root, ext) = splitext(&py_str(&v));
        Value::from(vec![Value::from(root), Value::from(ext)])
    });
    env.add_filter("urlsplit", |v: Value, field: Option<String>| -> Result<Value, MjError> {
        let parts = urlsplit(&py_str(&v));
        match field {
            None => Ok(Value::from_iter(parts)),
            Some(f) => parts
                .into_iter()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| v)
                .ok_or_else(|| err(format!("urlsplit: unknown field `{f}`"))),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_semantics() {
        // Python: 'ab'.center(5) == '  ab ', 'ab'.center(6) == '  ab  ', 'abc'.center(6) == ' abc  '
        assert_eq!(center("ab", 5), "  ab ");
        assert_eq!(center("abc", 6), " abc  ");
        assert_eq!(center("ab", 7), "   ab  ");
        assert_eq!(regex_escape("a.b*c d_e"), "a\\.b\\*c\\ d_e");
        assert_eq!(splitext("/etc/app.conf.j2"), ("/etc/app.conf".into(), ".j2".into()));
        assert_eq!(splitext("/home/.bashrc"), ("/home/.bashrc".into(), "".into()));
        assert_eq!(comment("a\nb", "plain").unwrap(), "#\n# a\n# b\n#");
        // the example of Drepper's SHA-crypt specification
        assert_eq!(
            super::super::crypt::sha512_crypt(b"Hello world!", b"saltstring", 5000),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        assert_eq!(
            super::super::crypt::sha512_crypt(b"Hello world!", b"saltstringsaltstring", 10000),
            "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."
        );
        let u = urlsplit("https://user:pw@Example.com:8443/x/y?q=1#frag");
        let get = |k: &str| u.iter().find(|(n, _)| *n == k).unwrap().1.to_string();
        assert_eq!(
            (get("hostname"), get("port"), get("path"), get("query")),
            ("example.com".into(), "8443".into(), "/x/y".into(), "q=1".into())
        );
        assert_eq!((get("username"), get("password"), get("fragment")), ("user".into(), "pw".into(), "frag".into()));
    }

    #[test]
    fn rsplit_and_xmlattr_as_python() {
        let r = |s: &str, sep: Option<&str>, max: i64| rsplit(s, sep, max).unwrap();
        assert_eq!(r("a-b-c", Some("-"), 1), ["a-b", "c"]);
        assert_eq!(r("a-b-c", Some("-"), -1), ["a", "b", "c"]);
        assert_eq!(r("  a b c  ", None, 1), ["  a b", "c"]);
        assert_eq!(r("  a b\tc  ", None, -1), ["a", "b", "c"]);
        assert_eq!(r("", None, -1), Vec::<String>::new());
        let d = Value::from_serialize(serde_json::json!({"a": "<\"x\">", "n": null}));
        assert_eq!(xmlattr(&d, true).unwrap(), " a=\"&lt;&#34;x&#34;&gt;\"");
    }
}

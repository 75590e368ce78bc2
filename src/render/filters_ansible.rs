//! More of Ansible's (and Jinja's) filters and tests, each as ansible-core
//! 2.19 behaves: compared with it by the render corpus
//! (tests/fixtures/render-corpus).

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error as MjError, ErrorKind, Value};

use crate::render::pyfmt::py_str;

fn err(msg: impl Into<String>) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, msg.into())
}

/// `a.b.0` of a value (Jinja's attribute= paths); undefined where missing.
fn path(v: &Value, p: &str) -> Value {
    let mut cur = v.clone();
    for part in p.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => cur.get_item(&Value::from(i)),
            Err(_) => cur.get_attr(part),
        }
        .unwrap_or(Value::UNDEFINED);
    }
    cur
}

fn items(v: &Value) -> Result<Vec<Value>, MjError> {
    Ok(v.try_iter()?.collect())
}

/// A registered result's key, for `is changed` and friends: Ansible refuses
/// anything but a dict.
fn result_flag(v: &Value, test: &str, key: &str) -> Result<bool, MjError> {
    if v.kind() != ValueKind::Map {
        return Err(err(format!("the `{test}` test expects a dictionary (a registered result)")));
    }
    Ok(v.get_attr(key).map(|x| x.is_true()).unwrap_or(false))
}

fn add_tests(env: &mut Environment<'static>) {
    // Python: a str and a dict have a length and an item getter
    env.add_test("sequence", |v: Value| matches!(v.kind(), ValueKind::Seq | ValueKind::String | ValueKind::Map));
    // Python: a bool is a number
    env.add_test("number", |v: Value| matches!(v.kind(), ValueKind::Number | ValueKind::Bool));
    env.add_test("any", |v: Value| -> Result<bool, MjError> { Ok(items(&v)?.iter().any(|x| x.is_true())) });
    env.add_test("all", |v: Value| -> Result<bool, MjError> { Ok(items(&v)?.iter().all(|x| x.is_true())) });
    env.add_test("contains", |v: Value, x: Value| -> Result<bool, MjError> { Ok(items(&v)?.contains(&x)) });
    env.add_test("subset", |a: Value, b: Value| -> Result<bool, MjError> {
        let b = items(&b)?;
        Ok(items(&a)?.iter().all(|x| b.contains(x)))
    });
    env.add_test("superset", |a: Value, b: Value| -> Result<bool, MjError> {
        let a = items(&a)?;
        Ok(items(&b)?.iter().all(|x| a.contains(x)))
    });
    env.add_test("abs", |v: Value| py_str(&v).starts_with('/'));
    env.add_test("nan", |v: Value| f64::try_from(v).is_ok_and(f64::is_nan));
    env.add_test("changed", |v: Value| result_flag(&v, "changed", "changed"));
    env.add_test("skipped", |v: Value| result_flag(&v, "skipped", "skipped"));
    env.add_test("failed", |v: Value| result_flag(&v, "failed", "failed"));
    for name in ["successful", "succeeded", "success"] {
        env.add_test(name, move |v: Value| result_flag(&v, name, "failed").map(|f| !f));
    }
}

/// Ansible's bytes_to_human: the largest unit the size reaches, two decimals.
fn human_readable(size: f64) -> String {
    const UNITS: [(&str, u32); 9] =
        [("Y", 80), ("Z", 70), ("E", 60), ("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10), ("B", 0)];
    let (unit, shift) = UNITS.iter().find(|(_, s)| size >= (1u128 << s) as f64).copied().unwrap_or(("B", 0));
    let suffix = if unit == "B" { "Bytes".to_string() } else { format!("{unit}B") };
    format!("{:.2} {suffix}", size / (1u128 << shift) as f64)
}

/// Ansible's human_to_bytes: `10M`, `2 MB`, `1.5K` (bytes, 1024-based).
fn human_to_bytes(text: &str) -> Result<i64, MjError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (t[..split].trim(), t[split..].trim());
    let n: f64 = num.parse().map_err(|_| err(format!("human_to_bytes: `{text}` is not a size (10M, 2 MB)")))?;
    let shift = match unit.chars().next().map(|c| c.to_ascii_uppercase()) {
        None | Some('B') => 0,
        Some(c) => match "KMGTPEZY".find(c) {
            Some(i) => 10 * (i as u32 + 1),
            None => return Err(err(format!("human_to_bytes: unknown unit in `{text}`"))),
        },
    };
    Ok((n * (1u128 << shift) as f64).round() as i64)
}

/// Jinja's truncate: a string within `length + leeway` stays; otherwise cut
/// at a word boundary (or anywhere with killwords) and `end` appended.
fn truncate(s: &str, length: usize, killwords: bool, end: &str, leeway: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= length + leeway {
        return s.to_string();
    }
    let keep: String = chars[..length.saturating_sub(end.chars().count())].iter().collect();
    if killwords {
        return keep + end;
    }
    let cut = keep.rsplit_once(' ').map(|(a, _)| a.to_string()).unwrap_or(keep);
    cut + end
}

/// Python's textwrap.wrap, greedy on whitespace (long words are not split).
fn wordwrap(s: &str, width: usize, wrapstring: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for para in s.split('\n') {
        let mut line = String::new();
        for w in para.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + w.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(w);
        }
        lines.push(line);
    }
    lines.join(wrapstring)
}

fn type_name(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::String => "str",
        ValueKind::Bool => "bool",
        ValueKind::None => "NoneType",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        ValueKind::Number if v.as_i64().is_some() => "int",
        ValueKind::Number => "float",
        _ => "object",
    }
}

fn add_filters(env: &mut Environment<'static>) {
    env.add_filter("path_join", |v: Value| -> Result<String, MjError> {
        let parts: Vec<String> =
            if v.kind() == ValueKind::String { vec![py_str(&v)] } else { items(&v)?.iter().map(py_str).collect() };
        let mut out = String::new();
        for p in parts {
            if p.starts_with('/') || out.is_empty() {
                out = p;
            } else {
                if !out.ends_with('/') {
                    out.push('/');
                }
                out.push_str(&p);
            }
        }
        Ok(out)
    });
    env.add_filter("product", |a: Value, rest: Rest<Value>| -> Result<Value, MjError> {
        let mut out: Vec<Vec<Value>> = items(&a)?.into_iter().map(|x| vec![x]).collect();
        for other in rest.iter() {
            let o = items(other)?;
            out = out.into_iter().flat_map(|p| o.iter().map(move |x| [p.clone(), vec![x.clone()]].concat())).collect();
        }
        Ok(Value::from(out.into_iter().map(Value::from).collect::<Vec<_>>()))
    });
    env.add_filter("human_readable", |v: Value| -> Result<String, MjError> {
        let n = f64::try_from(v.clone()).map_err(|_| err(format!("human_readable: {} is not a number", py_str(&v))))?;
        Ok(human_readable(n))
    });
    env.add_filter("human_to_bytes", |v: Value| human_to_bytes(&py_str(&v)));
    env.add_filter("wordcount", |v: Value| {
        py_str(&v).split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).count()
    });
    env.add_filter("wordwrap", |v: Value, width: Option<usize>, _break_long: Option<bool>, wrap: Option<String>| {
        wordwrap(&py_str(&v), width.unwrap_or(79), wrap.as_deref().unwrap_or("\n"))
    });
    env.add_filter(
        "truncate",
        |v: Value, length: Option<usize>, kill: Option<bool>, end: Option<String>, leeway: Option<usize>| {
            truncate(
                &py_str(&v),
                length.unwrap_or(255),
                kill.unwrap_or(false),
                end.as_deref().unwrap_or("..."),
                leeway.unwrap_or(5),
            )
        },
    );
    env.add_filter("type_debug", |v: Value| type_name(&v));
    add_list_filters(env);
}

fn add_list_filters(env: &mut Environment<'static>) {
    env.add_filter("zip_longest", |a: Value, rest: Rest<Value>, kw: Kwargs| -> Result<Value, MjError> {
        let fill: Value = kw.get::<Option<Value>>("fillvalue")?.unwrap_or(Value::from(()));
        kw.assert_all_used()?;
        let mut lists = vec![items(&a)?];
        for r in rest.iter() {
            lists.push(items(r)?);
        }
        let n = lists.iter().map(Vec::len).max().unwrap_or(0);
        let rows = (0..n)
            .map(|i| Value::from(lists.iter().map(|l| l.get(i).cloned().unwrap_or(fill.clone())).collect::<Vec<_>>()));
        Ok(Value::from(rows.collect::<Vec<_>>()))
    });
    env.add_filter("extract", |item: Value, container: Value| -> Result<Value, MjError> { container.get_item(&item) });
    env.add_filter("subelements", |v: Value, key: String, skip_missing: Option<bool>| -> Result<Value, MjError> {
        let mut out = Vec::new();
        for it in items(&v)? {
            match it.get_attr(&key) {
                Ok(sub) if !sub.is_undefined() => {
                    for s in items(&sub)? {
                        out.push(Value::from(vec![it.clone(), s]));
                    }
                }
                _ if skip_missing.unwrap_or(false) => {}
                _ => return Err(err(format!("subelements: an item has no key `{key}`"))),
            }
        }
        Ok(Value::from(out))
    });
    env.add_filter("sum", |v: Value, kw: Kwargs| -> Result<Value, MjError> {
        let attr: Option<String> = kw.get("attribute")?;
        let start: Option<Value> = kw.get("start")?;
        kw.assert_all_used()?;
        // Python's sum: ints stay ints, a float makes it a float
        let (mut int, mut float, mut is_float) = (0i64, 0f64, false);
        for x in start.into_iter().chain(items(&v)?.into_iter().map(|it| match &attr {
            Some(a) => path(&it, a),
            None => it,
        })) {
            match x.as_i64() {
                Some(i) => {
                    int += i;
                    float += i as f64;
                }
                _ => {
                    let f =
                        f64::try_from(x.clone()).map_err(|_| err(format!("sum: {} is not a number", py_str(&x))))?;
                    float += f;
                    is_float = true;
                }
            }
        }
        Ok(if is_float { Value::from(float) } else { Value::from(int) })
    });
    for (name, want_max) in [("max", true), ("min", false)] {
        env.add_filter(name, move |v: Value, kw: Kwargs| -> Result<Value, MjError> {
            let attr: Option<String> = kw.get("attribute")?;
            kw.assert_all_used()?;
            let key = |x: &Value| match &attr {
                Some(a) => path(x, a),
                None => x.clone(),
            };
            let mut best: Option<Value> = None;
            for it in items(&v)? {
                best = match best {
                    Some(b) if (key(&it) > key(&b)) != want_max || key(&it) == key(&b) => Some(b),
                    _ => Some(it),
                };
            }
            Ok(best.unwrap_or(Value::UNDEFINED))
        });
    }
    env.add_filter("replace", |v: Value, old: String, new: String, count: Option<usize>| {
        let s = py_str(&v);
        match count {
            Some(n) => s.replacen(&old, &new, n),
            None => s.replace(&old, &new),
        }
    });
}

/// Python's int(): `"12"`, `"0x1A"` with base 16, `"3.5"` through float;
/// anything else is the default (Ansible's int filter).
fn to_int(v: &Value, default: i64, base: u32) -> Value {
    if let Some(i) = v.as_i64().filter(|_| v.kind() != ValueKind::String) {
        return Value::from(i);
    }
    if v.kind() == ValueKind::Number {
        return Value::from(f64::try_from(v.clone()).map(|f| f.trunc() as i64).unwrap_or(default));
    }
    let s = py_str(v);
    let t = s.trim().replace('_', "");
    let digits = match base {
        16 => t.trim_start_matches("0x").trim_start_matches("0X"),
        8 => t.trim_start_matches("0o").trim_start_matches("0O"),
        2 => t.trim_start_matches("0b").trim_start_matches("0B"),
        _ => t.as_str(),
    };
    if let Ok(i) = i64::from_str_radix(digits, base) {
        return Value::from(i);
    }
    Value::from(t.parse::<f64>().map(|f| f.trunc() as i64).unwrap_or(default))
}

/// Jinja's url_quote: everything but unreserved characters escaped; in a
/// query string a space is `+` and `/` is escaped too.
fn url_quote(s: &str, for_qs: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(b as char),
            b'/' if !for_qs => out.push('/'),
            b' ' if for_qs => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Jinja's tojson: Python's json.dumps with sorted keys, and <, >, &, '
/// escaped for HTML.
fn tojson(v: &Value) -> String {
    let mut out = String::new();
    crate::render::pyfmt::json(&mut out, v, None, true, 0, false);
    out.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('\'', "\\u0027")
}

fn add_jinja_overrides(env: &mut Environment<'static>) {
    env.add_filter("int", |v: Value, default: Option<i64>, kw: Kwargs| -> Result<Value, MjError> {
        let base: Option<u32> = kw.get("base")?;
        kw.assert_all_used()?;
        Ok(to_int(&v, default.unwrap_or(0), base.unwrap_or(10)))
    });
    env.add_filter("urlencode", |v: Value| -> Result<String, MjError> {
        let pairs: Vec<(Value, Value)> = match v.kind() {
            ValueKind::Map => v.try_iter()?.map(|k| (k.clone(), v.get_item(&k).unwrap_or_default())).collect(),
            ValueKind::String | ValueKind::Number | ValueKind::Bool => return Ok(url_quote(&py_str(&v), false)),
            _ => items(&v)?
                .into_iter()
                .map(|p| {
                    (p.get_item(&Value::from(0)).unwrap_or_default(), p.get_item(&Value::from(1)).unwrap_or_default())
                })
                .collect(),
        };
        Ok(pairs
            .iter()
            .map(|(k, x)| format!("{}={}", url_quote(&py_str(k), true), url_quote(&py_str(x), true)))
            .collect::<Vec<_>>()
            .join("&"))
    });
    env.add_filter("tojson", |v: Value| tojson(&v));
    // Jinja's attr is getattr: a dict's keys are not its attributes
    env.add_filter("attr", |v: Value, name: String| -> Result<Value, MjError> {
        if v.kind() == ValueKind::Map {
            return Err(err(format!("object of type 'dict' has no attribute '{name}'")));
        }
        v.get_attr(&name)
    });
}

pub(crate) fn add(env: &mut Environment<'static>) {
    add_jinja_overrides(env);
    add_tests(env);
    add_filters(env);
}

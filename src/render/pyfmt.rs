//! Python's json.dumps and PyYAML's dump, as Ansible's to_json, to_nice_json,
//! to_yaml and to_nice_yaml call them, so migrated templates print the same bytes.

use minijinja::value::ValueKind;
use minijinja::Value;

pub(crate) fn entries(v: &Value, sort: bool) -> Vec<(Value, Value)> {
    let mut out: Vec<(Value, Value)> = v
        .try_iter()
        .map(|keys| keys.map(|k| (k.clone(), v.get_item(&k).unwrap_or(Value::UNDEFINED))).collect())
        .unwrap_or_default();
    if sort {
        out.sort_by_key(|a| py_str(&a.0));
    }
    out
}

fn number(v: &Value) -> String {
    let s = v.to_string();
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.to_lowercase().contains("nan") {
        f64::try_from(v.clone())
            .map(|f| {
                if f.is_nan() {
                    "NaN".into()
                } else if f.is_infinite() {
                    if f > 0.0 {
                        "Infinity".into()
                    } else {
                        "-Infinity".into()
                    }
                } else {
                    py_float(f)
                }
            })
            .unwrap_or(s)
    } else {
        s
    }
}

/// json.dumps(v, indent=indent, sort_keys=sort) with ensure_ascii.
/// `nice` selects the "," item separator used with an indent.
pub(crate) fn json(out: &mut String, v: &Value, indent: Option<usize>, sort: bool, level: usize, nice: bool) {
    let nl = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if nice { "," } else { ", " };
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&number(v)),
        ValueKind::String => json_str(out, v.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter().map(|i| i.collect()).unwrap_or_default();
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                nl(out, level + 1);
                json(out, item, indent, sort, level + 1, nice);
            }
            nl(out, level);
            out.push(']');
        }
        ValueKind::Map => {
            let es = entries(v, sort);
            if es.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, val)) in es.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                nl(out, level + 1);
                json_str(out, &py_str(k));
                out.push_str(": ");
                json(out, val, indent, sort, level + 1, nice);
            }
            nl(out, level);
            out.push('}');
        }
        _ => json_str(out, &v.to_string()),
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub(crate) fn is_collection(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Map | ValueKind::Seq | ValueKind::Iterable)
}

pub(crate) fn is_empty(v: &Value) -> bool {
    v.len() == Some(0)
}

pub(crate) fn is_leaf_collection(v: &Value) -> bool {
    let children: Vec<Value> = match v.kind() {
        ValueKind::Map => entries(v, false).into_iter().map(|e| e.1).collect(),
        _ => v.try_iter().map(|i| i.collect()).unwrap_or_default(),
    };
    children.iter().all(|c| !is_collection(c))
}

pub(crate) fn yaml_scalar(v: &Value) -> String {
    match v.kind() {
        ValueKind::None | ValueKind::Undefined => "null".into(),
        ValueKind::Bool => if v.is_true() { "true" } else { "false" }.into(),
        ValueKind::Number => number(v).replace("Infinity", ".inf").replace("NaN", ".nan"),
        _ => yaml_str(&py_str(v)),
    }
}

fn yaml_str(s: &str) -> String {
    if s.contains('\n') || s.chars().any(|c| c.is_control() && c != '\t') {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        return out;
    }
    if needs_quotes(s) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        s.to_string()
    }
}

fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.starts_with(' ') || s.ends_with(' ') {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    let reserved = ["true", "false", "yes", "no", "on", "off", "null", "~"];
    if reserved.contains(&lower.as_str()) {
        return true;
    }
    if s.parse::<f64>().is_ok() || s.starts_with("0x") || s.starts_with("0o") || lower == ".inf" || lower == ".nan" {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // "-x" and ":x" are plain in PyYAML only when followed by a non-space
        if (first == '-' || first == '?' || first == ':') && s.len() > 1 && !s[1..].starts_with(' ') {
            return s.contains(": ") || s.contains(" #");
        }
        return true;
    }
    s.contains(": ") || s.contains(" #") || s.ends_with(':')
}

/// Python's `str()` of a value: what `{{ value }}` prints under Ansible.
pub(crate) fn py_str(v: &Value) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        _ => py_repr(v),
    }
}

/// Python's `repr()` of a value, as it appears inside printed lists and dicts.
pub(crate) fn py_repr(v: &Value) -> String {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => "None".into(),
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.into(),
        ValueKind::Number => {
            if let Ok(i) = i64::try_from(v.clone()) {
                if !is_float(v) {
                    return i.to_string();
                }
            }
            match f64::try_from(v.clone()) {
                Ok(f) => py_float(f),
                Err(_) => v.to_string(),
            }
        }
        ValueKind::String => py_str_repr(v.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = v.try_iter().map(|it| it.map(|x| py_repr(&x)).collect()).unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let mut parts = Vec::new();
            if let Ok(keys) = v.try_iter() {
                for k in keys {
                    let val = v.get_item(&k).unwrap_or(Value::UNDEFINED);
                    parts.push(format!("{}: {}", py_repr(&k), py_repr(&val)));
                }
            }
            format!("{{{}}}", parts.join(", "))
        }
        _ => v.to_string(),
    }
}

fn is_float(v: &Value) -> bool {
    // minijinja prints floats with a decimal point or exponent; ints without.
    let s = v.to_string();
    s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") || s.contains("nan")
}

/// Python's shortest float repr: 0.5, 3.0, 1e+16, inf.
pub(crate) fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Python's repr of a str: single quotes unless the text has ' and no ".
pub(crate) fn py_str_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

//! Ansible's filters and tests (ansible.builtin and the common ones of
//! ansible.utils), computed as Python computes them: regexes in Python's
//! dialect, `hash`, `combine`, `version`, `in_network`, ...

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Environment, Error as MjError, ErrorKind, State, Value};

use crate::render::pyfmt::py_str;
use crate::util::shell_quote;

/// Serialising an undefined value (or one with an undefined leaf) is an
/// error, as in Ansible: never `null`.
fn defined(v: &Value) -> Result<(), MjError> {
    let undefined = match v.kind() {
        ValueKind::Undefined => true,
        ValueKind::Seq | ValueKind::Map => v.try_iter()?.any(|k| {
            if v.kind() == ValueKind::Map {
                v.get_item(&k).is_ok_and(|x| defined(&x).is_err())
            } else {
                defined(&k).is_err()
            }
        }),
        _ => false,
    };
    if undefined {
        return Err(MjError::new(ErrorKind::UndefinedError, "undefined value"));
    }
    Ok(())
}

fn err(msg: impl Into<String>) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, msg.into())
}

/// Ansible's filters and tests, each as Ansible (Python) computes it.
pub(crate) fn add_ansible(env: &mut Environment<'static>) {
    add_text_filters(env);
    add_data_filters(env);
    add_path_filters(env);
    add_tests(env);
    super::filters_more::add(env);
    super::dates::add(env);
    super::filters_ansible::add(env);
    super::ipaddr::add(env);
}

fn add_text_filters(env: &mut Environment<'static>) {
    env.add_filter("bool", |v: Value| -> Result<Value, MjError> {
        Ok(match v.kind() {
            // ansible-core 2.19: None is False (compared in the render corpus)
            ValueKind::None => Value::from(false),
            // and an undefined value is an error, never quietly false
            ValueKind::Undefined => return Err(MjError::from(minijinja::ErrorKind::UndefinedError)),
            ValueKind::Bool => v,
            ValueKind::Number => Value::from(f64::try_from(v).ok() == Some(1.0)),
            _ => {
                let s = py_str(&v).to_lowercase();
                Value::from(matches!(s.as_str(), "yes" | "on" | "1" | "true" | "y" | "t"))
            }
        })
    });
    env.add_filter("lower", |v: Value| py_str(&v).to_lowercase());
    env.add_filter("upper", |v: Value| py_str(&v).to_uppercase());
    env.add_filter("d", minijinja::filters::default);
    env.add_filter("to_json", |v: Value, kw: Kwargs| -> Result<String, MjError> {
        defined(&v)?;
        let indent: Option<usize> = kw.get("indent")?;
        let sort: Option<bool> = kw.get("sort_keys")?;
        kw.assert_all_used()?;
        let mut out = String::new();
        crate::render::pyfmt::json(&mut out, &v, indent, sort.unwrap_or(false), 0, indent.is_some());
        Ok(out)
    });
    env.add_filter("to_nice_json", |v: Value, kw: Kwargs| -> Result<String, MjError> {
        defined(&v)?;
        let indent: Option<usize> = kw.get("indent")?;
        kw.assert_all_used()?;
        let mut out = String::new();
        crate::render::pyfmt::json(&mut out, &v, Some(indent.unwrap_or(4)), true, 0, true);
        Ok(out)
    });
    env.add_filter("to_yaml", |v: Value, kw: Kwargs| -> Result<String, MjError> {
        defined(&v)?;
        let indent: Option<usize> = kw.get("indent")?;
        kw.assert_all_used()?;
        Ok(crate::render::pyyaml::yaml(&v, indent.unwrap_or(2), true))
    });
    env.add_filter("to_nice_yaml", |v: Value, kw: Kwargs| -> Result<String, MjError> {
        defined(&v)?;
        let indent: Option<usize> = kw.get("indent")?;
        kw.assert_all_used()?;
        Ok(crate::render::pyyaml::yaml(&v, indent.unwrap_or(4), false))
    });
    env.add_filter("b64encode", |v: Value| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(py_str(&v))
    });
    env.add_filter("b64decode", |v: Value| -> Result<String, MjError> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(py_str(&v).trim())
            .map_err(|e| err(format!("b64decode: {e}")))?;
        String::from_utf8(bytes).map_err(|_| err("b64decode: result is not UTF-8"))
    });
}

fn add_data_filters(env: &mut Environment<'static>) {
    env.add_filter("regex_replace", regex_replace);
    env.add_filter("regex_search", regex_search);
    env.add_filter("regex_findall", |v: Value, pat: String, kw: Kwargs| -> Result<Value, MjError> {
        let re = py_regex(&pat, &kw)?;
        let s = py_str(&v);
        let mut out = Vec::new();
        for c in re.captures_iter(&s) {
            let c = c.map_err(|e| err(e.to_string()))?;
            out.push(Value::from(if c.len() > 1 { c.get(1) } else { c.get(0) }.map(|m| m.as_str()).unwrap_or("")));
        }
        Ok(Value::from(out))
    });
    env.add_filter("combine", combine);
    env.add_filter("dict2items", |v: Value, kw: Kwargs| -> Result<Value, MjError> {
        let kn: Option<String> = kw.get("key_name")?;
        let vn: Option<String> = kw.get("value_name")?;
        kw.assert_all_used()?;
        if v.kind() != ValueKind::Map {
            return Err(err(format!("dict2items requires a dictionary, got {}", v.kind())));
        }
        let (kn, vn) = (kn.unwrap_or_else(|| "key".into()), vn.unwrap_or_else(|| "value".into()));
        let mut out = Vec::new();
        for k in v.try_iter()? {
            let val = v.get_item(&k)?;
            let mut m = indexmap::IndexMap::new();
            m.insert(kn.clone(), k);
            m.insert(vn.clone(), val);
            out.push(Value::from_iter(m));
        }
        Ok(Value::from(out))
    });
    env.add_filter("items2dict", |v: Value, kw: Kwargs| -> Result<Value, MjError> {
        let kn: Option<String> = kw.get("key_name")?;
        let vn: Option<String> = kw.get("value_name")?;
        kw.assert_all_used()?;
        let (kn, vn) = (kn.unwrap_or_else(|| "key".into()), vn.unwrap_or_else(|| "value".into()));
        let mut m = indexmap::IndexMap::new();
        for item in v.try_iter()? {
            m.insert(py_str(&item.get_attr(&kn)?), item.get_attr(&vn)?);
        }
        Ok(Value::from_iter(m))
    });
    env.add_filter("hash", |v: Value, algo: Option<String>| -> Result<String, MjError> {
        use sha2::Digest;
        let s = py_str(&v);
        Ok(match algo.as_deref().unwrap_or("sha1") {
            "sha1" => hex(&sha1::Sha1::digest(s.as_bytes())),
            "md5" => hex(&md5::Md5::digest(s.as_bytes())),
            "sha256" => hex(&sha2::Sha256::digest(s.as_bytes())),
            "sha512" => hex(&sha2::Sha512::digest(s.as_bytes())),
            other => return Err(err(format!("hash: unsupported algorithm `{other}` (md5, sha1, sha256, sha512)"))),
        })
    });
    env.add_filter("md5", |v: Value| {
        use sha2::Digest;
        hex(&md5::Md5::digest(py_str(&v).as_bytes()))
    });
    env.add_filter("sha1", |v: Value| {
        use sha2::Digest;
        hex(&sha1::Sha1::digest(py_str(&v).as_bytes()))
    });
    env.add_filter("checksum", |v: Value| {
        use sha2::Digest;
        hex(&sha1::Sha1::digest(py_str(&v).as_bytes()))
    });
}

fn add_path_filters(env: &mut Environment<'static>) {
    env.add_filter("basename", |v: Value| {
        let s = py_str(&v);
        s.rsplit('/').next().unwrap_or("").to_string()
    });
    env.add_filter("dirname", |v: Value| {
        // posixpath.dirname: everything before the last /, trailing slashes
        // stripped unless the result is all slashes.
        let s = py_str(&v);
        match s.rfind('/') {
            None => String::new(),
            Some(i) => {
                let head = &s[..=i];
                let t = head.trim_end_matches('/');
                if t.is_empty() {
                    head.to_string()
                } else {
                    t.to_string()
                }
            }
        }
    });
    env.add_filter("quote", |v: Value| shell_quote(&py_str(&v)));
    env.add_filter("mandatory", |state: &State, v: Value, msg: Option<String>| -> Result<Value, MjError> {
        if v.is_undefined() {
            let _ = state;
            return Err(MjError::new(
                ErrorKind::UndefinedError,
                msg.unwrap_or_else(|| "mandatory variable not defined".into()),
            ));
        }
        Ok(v)
    });
    env.add_filter("ternary", |v: Value, t: Value, f: Value, n: Option<Value>| -> Value {
        if v.is_none() {
            if let Some(n) = n {
                return n;
            }
        }
        if v.is_true() {
            t
        } else {
            f
        }
    });
    env.add_filter("split", |v: Value, sep: Option<String>, max: Option<i64>| -> Value {
        let s = py_str(&v);
        let parts: Vec<Value> = match (sep, max) {
            (None, _) => s.split_whitespace().map(Value::from).collect(),
            (Some(sep), Some(m)) if m >= 0 => s.splitn(m as usize + 1, sep.as_str()).map(Value::from).collect(),
            (Some(sep), _) => s.split(sep.as_str()).map(Value::from).collect(),
        };
        Value::from(parts)
    });
    env.add_filter("round", |v: Value, precision: Option<i32>, method: Option<String>| -> Result<Value, MjError> {
        let f = f64::try_from(v)?;
        let p = 10f64.powi(precision.unwrap_or(0));
        let x = f * p;
        let r = match method.as_deref().unwrap_or("common") {
            // Python's round: half to even on the exact binary value, which
            // is what formatting to that many digits does (2.675 -> 2.67)
            "common" if precision.unwrap_or(0) >= 0 => {
                let digits = precision.unwrap_or(0) as usize;
                return Ok(Value::from(format!("{f:.digits$}").parse::<f64>().unwrap_or(f)));
            }
            "common" => x.round_ties_even(),
            "ceil" => x.ceil(),
            "floor" => x.floor(),
            m => return Err(err(format!("round: method must be common, ceil or floor, not {m}"))),
        };
        Ok(Value::from(r / p))
    });
    env.add_filter("string", |v: Value| py_str(&v));
}

fn add_tests(env: &mut Environment<'static>) {
    // Ansible's path tests, on the controller (where templates render)
    let path = |v: &Value| std::path::PathBuf::from(py_str(v));
    env.add_test("file", move |v: Value| path(&v).is_file());
    env.add_test("directory", move |v: Value| path(&v).is_dir());
    env.add_test("link", move |v: Value| path(&v).is_symlink());
    env.add_test("exists", move |v: Value| path(&v).exists());
    env.add_test("abs", move |v: Value| path(&v).is_absolute());
    env.add_test("version", version_test);
    env.add_test("version_compare", version_test);
    env.add_test("match", |v: Value, pat: String, kw: Kwargs| -> Result<bool, MjError> {
        let re = py_regex(&format!("^(?:{pat})"), &kw)?;
        re.is_match(&py_str(&v)).map_err(|e| err(e.to_string()))
    });
    env.add_test("search", |v: Value, pat: String, kw: Kwargs| -> Result<bool, MjError> {
        let re = py_regex(&pat, &kw)?;
        re.is_match(&py_str(&v)).map_err(|e| err(e.to_string()))
    });
    env.add_test("regex", |v: Value, pat: String, kw: Kwargs| -> Result<bool, MjError> {
        let anchored = matches!(kw.get::<Option<String>>("match_type")?.as_deref(), Some("match"));
        let re = py_regex(&if anchored { format!("^(?:{pat})") } else { pat }, &kw)?;
        re.is_match(&py_str(&v)).map_err(|e| err(e.to_string()))
    });
    env.add_test("truthy", |v: Value| v.is_true());
    env.add_test("falsy", |v: Value| !v.is_true());
    // ansible.utils' in_network / in_any_network, for pre-flight checks such
    // as "the controller's address is allowed by the new rules"
    env.add_test("in_network", |v: Value, net: String| -> Result<bool, MjError> {
        ip_in_network(&py_str(&v), &net).map_err(err)
    });
    env.add_test("in_any_network", |v: Value, nets: Vec<String>| -> Result<bool, MjError> {
        let addr = py_str(&v);
        for n in &nets {
            if ip_in_network(&addr, n).map_err(err)? {
                return Ok(true);
            }
        }
        Ok(false)
    });
}

/// Whether `addr` lies in `net` ("10.0.0.0/8", "::1/128", or a bare address).
pub(crate) fn ip_in_network(addr: &str, net: &str) -> Result<bool, String> {
    use std::net::IpAddr;
    let a: IpAddr = addr.trim().parse().map_err(|_| format!("`{addr}` is not an IP address"))?;
    let (base, len) = match net.trim().split_once('/') {
        Some((b, l)) => (b, Some(l.parse::<u32>().map_err(|_| format!("`{net}` is not a network"))?)),
        None => (net.trim(), None),
    };
    let b: IpAddr = base.parse().map_err(|_| format!("`{net}` is not a network"))?;
    let (a, b, bits) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        (IpAddr::V6(a), IpAddr::V4(b)) => match a.to_ipv4_mapped() {
            Some(a) => (u32::from(a) as u128, u32::from(b) as u128, 32),
            None => return Ok(false),
        },
        _ => return Ok(false),
    };
    let len = len.unwrap_or(bits);
    if len > bits {
        return Err(format!("`{net}`: prefix length {len} is longer than {bits}"));
    }
    let mask = if len == 0 { 0 } else { (u128::MAX << (128 - len)) >> (128 - bits) };
    Ok(a & mask == b & mask)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compile a Python `re` pattern. fancy-regex covers lookaround and
/// backreferences; `\Z` is Python's end of string.
fn py_regex(pat: &str, kw: &Kwargs) -> Result<fancy_regex::Regex, MjError> {
    let ic: Option<bool> = kw.get("ignorecase")?;
    let ml: Option<bool> = kw.get("multiline")?;
    let mut flags = String::new();
    if ic.unwrap_or(false) {
        flags.push('i');
    }
    if ml.unwrap_or(false) {
        flags.push('m');
    }
    let mut p = pat.replace("\\Z", "\\z");
    // Python's named groups (?P<name>..) and backrefs (?P=name)
    p = p.replace("(?P<", "(?<").replace("(?P=", "\\k<");
    if p.contains("\\k<") {
        p = fix_named_backrefs(&p);
    }
    let full = if flags.is_empty() { p } else { format!("(?{flags}){p}") };
    fancy_regex::Regex::new(&full).map_err(|e| err(format!("invalid regular expression `{pat}`: {e}")))
}

fn fix_named_backrefs(p: &str) -> String {
    // (?P=name) became \k<name) above; close it with >.
    let mut out = String::new();
    let mut rest = p;
    while let Some(i) = rest.find("\\k<") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        if let Some(j) = rest.find(')') {
            out.push_str(&rest[..j]);
            out.push('>');
            rest = &rest[j + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Translate a Python replacement string (\1, \g<name>, \g<1>) to fancy-regex's ($1, ${name}).
fn py_replacement(r: &str) -> String {
    let mut out = String::new();
    let mut it = r.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match it.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = String::new();
                    while let Some(d) = it.peek().copied().filter(|d| d.is_ascii_digit()) {
                        n.push(d);
                        it.next();
                        if n.len() == 2 {
                            break;
                        }
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') => {
                    it.next();
                    if it.peek() == Some(&'<') {
                        it.next();
                        let name: String = it.by_ref().take_while(|c| *c != '>').collect();
                        out.push_str(&format!("${{{name}}}"));
                    } else {
                        out.push_str("\\g");
                    }
                }
                Some('n') => {
                    it.next();
                    out.push('\n');
                }
                Some('t') => {
                    it.next();
                    out.push('\t');
                }
                Some('\\') => {
                    it.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

fn regex_replace(v: Value, pat: String, rep: Option<String>, kw: Kwargs) -> Result<String, MjError> {
    let re = py_regex(&pat, &kw)?;
    kw.assert_all_used()?;
    let s = py_str(&v);
    let rep = py_replacement(rep.as_deref().unwrap_or(""));
    let out = re.try_replacen(&s, 0, rep.as_str()).map_err(|e| err(e.to_string()))?;
    Ok(out.into_owned())
}

fn regex_search(v: Value, pat: String, groups: Rest<String>, kw: Kwargs) -> Result<Value, MjError> {
    let re = py_regex(&pat, &kw)?;
    kw.assert_all_used()?;
    let s = py_str(&v);
    let Some(c) = re.captures(&s).map_err(|e| err(e.to_string()))? else {
        return Ok(Value::from(()));
    };
    if groups.is_empty() {
        return Ok(Value::from(c.get(0).map(|m| m.as_str()).unwrap_or("")));
    }
    let mut out = Vec::new();
    for g in groups.iter() {
        let m = if let Some(n) = g.strip_prefix('\\') {
            n.parse::<usize>().ok().and_then(|n| c.get(n))
        } else if let Some(name) = g.strip_prefix("\\g<").and_then(|x| x.strip_suffix('>')) {
            c.name(name)
        } else {
            return Err(err(format!("regex_search: unknown group argument `{g}` (use '\\\\1' or '\\\\g<name>')")));
        };
        out.push(Value::from(m.map(|m| m.as_str()).unwrap_or("")));
    }
    Ok(Value::from(out))
}

fn combine(first: Value, rest: Rest<Value>, kw: Kwargs) -> Result<Value, MjError> {
    let recursive: Option<bool> = kw.get("recursive")?;
    let list_merge: Option<String> = kw.get("list_merge")?;
    kw.assert_all_used()?;
    let recursive = recursive.unwrap_or(false);
    let lm = list_merge.unwrap_or_else(|| "replace".into());
    let mut acc = first;
    for d in rest.iter() {
        acc = merge(&acc, d, recursive, &lm)?;
    }
    Ok(acc)
}

fn merge(a: &Value, b: &Value, recursive: bool, lm: &str) -> Result<Value, MjError> {
    if a.kind() != ValueKind::Map || b.kind() != ValueKind::Map {
        return Err(err(format!("combine expects dictionaries, got {} and {}", a.kind(), b.kind())));
    }
    let mut m: indexmap::IndexMap<Value, Value> = indexmap::IndexMap::new();
    for k in a.try_iter()? {
        let v = a.get_item(&k)?;
        m.insert(k, v);
    }
    for k in b.try_iter()? {
        let bv = b.get_item(&k)?;
        let nv = match m.get(&k) {
            Some(av) if recursive && av.kind() == ValueKind::Map && bv.kind() == ValueKind::Map => {
                merge(av, &bv, recursive, lm)?
            }
            Some(av) if av.kind() == ValueKind::Seq && bv.kind() == ValueKind::Seq && lm != "replace" => {
                let (x, y): (Vec<Value>, Vec<Value>) = (av.try_iter()?.collect(), bv.try_iter()?.collect());
                match lm {
                    "append" => x.into_iter().chain(y).collect::<Vec<_>>().into(),
                    "prepend" => y.into_iter().chain(x).collect::<Vec<_>>().into(),
                    "keep" => av.clone(),
                    "append_rp" | "prepend_rp" => {
                        let mut out: Vec<Value> = if lm == "append_rp" {
                            x.into_iter().filter(|i| !y.contains(i)).collect()
                        } else {
                            Vec::new()
                        };
                        out.extend(y.iter().cloned());
                        if lm == "prepend_rp" {
                            out.extend(av.try_iter()?.filter(|i| !y.contains(i)));
                        }
                        Value::from(out)
                    }
                    o => return Err(err(format!("combine: unknown list_merge `{o}`"))),
                }
            }
            _ => bv,
        };
        m.insert(k, nv);
    }
    Ok(Value::from_iter(m))
}

fn version_test(v: Value, other: String, op: Option<String>, kw: Kwargs) -> Result<bool, MjError> {
    let _strict: Option<bool> = kw.get("strict")?;
    let _vt: Option<String> = kw.get("version_type")?;
    let a = version_key(&py_str(&v));
    let b = version_key(&other);
    let ord = a.cmp(&b);
    use std::cmp::Ordering::*;
    Ok(match op.as_deref().unwrap_or("eq") {
        "==" | "=" | "eq" => ord == Equal,
        "!=" | "<>" | "ne" => ord != Equal,
        "<" | "lt" => ord == Less,
        "<=" | "le" => ord != Greater,
        ">" | "gt" => ord == Greater,
        ">=" | "ge" => ord != Less,
        o => return Err(err(format!("version: unknown operator `{o}`"))),
    })
}

/// LooseVersion-like key: numbers compare numerically, words lexically.
fn version_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<(u64, String)>| {
        if !cur.is_empty() {
            match cur.parse::<u64>() {
                Ok(n) => out.push((n, String::new())),
                Err(_) => out.push((0, cur.clone())),
            }
            cur.clear();
        }
    };
    let mut digit = None;
    for c in s.trim_start_matches('v').chars() {
        if c == '.' || c == '-' || c == '_' || c == '+' {
            flush(&mut cur, &mut out);
            digit = None;
            continue;
        }
        let d = c.is_ascii_digit();
        if digit.is_some_and(|x| x != d) {
            flush(&mut cur, &mut out);
        }
        digit = Some(d);
        cur.push(c);
    }
    flush(&mut cur, &mut out);
    out
}

//! Two Python operators Jinja2 has and minijinja's parser does not, put
//! back by rewriting a template's expressions before they are parsed:
//! unary plus (`{{ +x }}` is `{{ x }}`) and `%` on a string literal
//! (`'%s=%s' % (k, v)` is `('%s=%s' | format(k, v))`, Jinja's own
//! printf-style filter), and the difference of two datetimes (`(now() -
//! (x | to_datetime)).days`, both sides written as a `now()` call or a
//! parenthesized group using to_datetime or now) through
//! `__deploy_dt_sub`. Only the insides of `{{ }}` and `{% %}` tags are
//! touched, string literals never, and no newline is added or removed.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Name(String),
    Num(String),
    Op(String),
    Space(String),
}

impl Tok {
    fn text(&self) -> &str {
        match self {
            Tok::Str(s) | Tok::Name(s) | Tok::Num(s) | Tok::Op(s) | Tok::Space(s) => s,
        }
    }
}

fn lex(body: &str) -> Vec<Tok> {
    let c: Vec<char> = body.chars().collect();
    let (mut out, mut i) = (Vec::new(), 0);
    let take = |i: &mut usize, f: &dyn Fn(char) -> bool| {
        let s = *i;
        while *i < c.len() && f(c[*i]) {
            *i += 1;
        }
        c[s..*i].iter().collect::<String>()
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\'' || ch == '"' {
            let s = i;
            i += 1;
            while i < c.len() && c[i] != ch {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(c.len());
            out.push(Tok::Str(c[s..i].iter().collect()));
        } else if ch.is_whitespace() {
            out.push(Tok::Space(take(&mut i, &|x| x.is_whitespace())));
        } else if ch.is_alphabetic() || ch == '_' {
            out.push(Tok::Name(take(&mut i, &|x| x.is_alphanumeric() || x == '_')));
        } else if ch.is_ascii_digit() {
            out.push(Tok::Num(take(&mut i, &|x| x.is_ascii_alphanumeric() || x == '.' || x == '_')));
        } else {
            let two: String = c[i..(i + 2).min(c.len())].iter().collect();
            let op = if ["**", "//", "==", "!=", "<=", ">="].contains(&two.as_str()) { two } else { ch.to_string() };
            i += op.chars().count();
            out.push(Tok::Op(op));
        }
    }
    out
}

/// The index after the balanced group opening at `i` (`(`, `[` or `{`).
fn group_end(t: &[Tok], i: usize) -> usize {
    let mut depth = 0;
    for (j, x) in t.iter().enumerate().skip(i) {
        match x.text() {
            "(" | "[" | "{" if matches!(x, Tok::Op(_)) => depth += 1,
            ")" | "]" | "}" if matches!(x, Tok::Op(_)) => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    t.len()
}

fn next_sig(t: &[Tok], i: usize) -> usize {
    (i..t.len()).find(|&j| !matches!(t[j], Tok::Space(_))).unwrap_or(t.len())
}

/// The operand of `%` starting at `i`: a primary with its attributes,
/// subscripts, calls and filters (all bind tighter than `%`); None for a
/// mapping (`%(name)s` formatting is not rewritten).
fn operand(t: &[Tok], i: usize) -> Option<(usize, bool)> {
    let mut j = next_sig(t, i);
    let tuple = t.get(j)?.text() == "(" && matches!(t[j], Tok::Op(_));
    match t.get(j)? {
        Tok::Op(o) if o == "(" || o == "[" => j = group_end(t, j),
        Tok::Name(_) | Tok::Num(_) | Tok::Str(_) => j += 1,
        _ => return None,
    }
    loop {
        let k = next_sig(t, j);
        match t.get(k).map(|x| (x, x.text())) {
            Some((Tok::Op(_), "." | "|")) => {
                let n = next_sig(t, k + 1);
                if !matches!(t.get(n), Some(Tok::Name(_))) {
                    return Some((j, tuple));
                }
                j = n + 1;
            }
            Some((Tok::Op(_), "(" | "[")) => j = group_end(t, k),
            _ => return Some((j, tuple && j == group_end(t, next_sig(t, i)))),
        }
    }
}

/// Where the group closing at `close` opens (and the `now` before it).
fn group_start(t: &[Tok], close: usize) -> usize {
    let mut depth = 0;
    for j in (0..=close).rev() {
        match (&t[j], t[j].text()) {
            (Tok::Op(_), ")" | "]" | "}") => depth += 1,
            (Tok::Op(_), "(" | "[" | "{") => {
                depth -= 1;
                if depth == 0 {
                    let before = (0..j).rev().find(|&k| !matches!(t[k], Tok::Space(_)));
                    return match before.map(|k| (k, &t[k])) {
                        Some((k, Tok::Name(n))) if n == "now" => k,
                        _ => j,
                    };
                }
            }
            _ => {}
        }
    }
    0
}

/// `A - B` of two datetime groups as one opaque `__deploy_dt_sub(A, B)`.
fn datetime_differences(mut t: Vec<Tok>) -> Vec<Tok> {
    let dated = |g: &[Tok]| g.iter().any(|x| matches!(x, Tok::Name(n) if n == "to_datetime" || n == "now"));
    let mut i = 0;
    while i < t.len() {
        if !matches!(&t[i], Tok::Op(o) if o == "-") {
            i += 1;
            continue;
        }
        let l = (0..i).rev().find(|&k| !matches!(t[k], Tok::Space(_)));
        let r = next_sig(&t, i + 1);
        let (Some(l), true) = (l, matches!(t.get(r), Some(Tok::Op(o)) if o == "(")) else {
            i += 1;
            continue;
        };
        if !matches!(&t[l], Tok::Op(o) if o == ")") {
            i += 1;
            continue;
        }
        let (ls, re) = (group_start(&t, l), group_end(&t, r));
        if !dated(&t[ls..=l]) || !dated(&t[r..re]) {
            i += 1;
            continue;
        }
        let text = |g: &[Tok]| g.iter().map(Tok::text).collect::<String>();
        let call = format!("__deploy_dt_sub({}, {})", text(&t[ls..=l]), text(&t[r..re]));
        t.splice(ls..re, [Tok::Name(call)]);
        i = ls + 1;
    }
    t
}

/// A list or dict literal a method changes (`{'a': 1}.update(x)`, whose
/// result is None and whose change nobody sees) as a changeable value:
/// `__deploy_mutable({'a': 1}).update(x)`.
fn changed_literals(mut t: Vec<Tok>) -> Vec<Tok> {
    const CHANGES: [&str; 9] = ["append", "extend", "insert", "pop", "remove", "update", "setdefault", "clear", "sort"];
    let sig_before = |t: &[Tok], i: usize| (0..i).rev().find(|&k| !matches!(t[k], Tok::Space(_)));
    let mut i = 0;
    while i < t.len() {
        let m = next_sig(&t, i + 1);
        let call = next_sig(&t, m + 1);
        let is_change = matches!(&t[i], Tok::Op(o) if o == ".")
            && matches!(t.get(m), Some(Tok::Name(n)) if CHANGES.contains(&n.as_str()))
            && matches!(t.get(call), Some(Tok::Op(o)) if o == "(");
        let close = sig_before(&t, i).filter(|&c| matches!(&t[c], Tok::Op(o) if o == "]" || o == "}"));
        let (true, Some(close)) = (is_change, close) else {
            i += 1;
            continue;
        };
        let open = (0..close).rev().find(|&s| group_end(&t, s) == close + 1 && matches!(&t[s], Tok::Op(_)));
        let literal = open.filter(|&s| {
            !matches!(sig_before(&t, s).map(|k| &t[k]), Some(Tok::Name(_) | Tok::Str(_) | Tok::Num(_)))
                && !matches!(sig_before(&t, s).map(|k| t[k].text()), Some(")" | "]" | "}"))
        });
        if let Some(s) = literal {
            t.insert(close + 1, Tok::Op(")".into()));
            t.insert(s, Tok::Name("__deploy_mutable(".into()));
            i += 3;
        } else {
            i += 1;
        }
    }
    t
}

fn rewrite_expr(body: &str) -> String {
    let t = changed_literals(datetime_differences(lex(body)));
    let mut out: Vec<String> = Vec::new();
    let mut prev: Option<&Tok> = None;
    let mut i = 0;
    while i < t.len() {
        let x = &t[i];
        let unary_ctx = match prev {
            None => true,
            Some(Tok::Op(o)) => !matches!(o.as_str(), ")" | "]" | "}"),
            Some(Tok::Name(n)) => ["in", "and", "or", "not", "if", "else", "is"].contains(&n.as_str()),
            _ => false,
        };
        if matches!(x, Tok::Op(o) if o == "+") && unary_ctx {
            i += 1;
            continue;
        }
        if let Tok::Str(s) = x {
            let p = next_sig(&t, i + 1);
            if matches!(t.get(p), Some(Tok::Op(o)) if o == "%") {
                if let Some((end, tuple)) = operand(&t, p + 1) {
                    let start = next_sig(&t, p + 1);
                    let inner = if tuple { &t[start + 1..end - 1] } else { &t[start..end] };
                    let args: String = rewrite_expr(&inner.iter().map(Tok::text).collect::<String>());
                    out.push(format!("({s} | format({}))", args.trim()));
                    prev = t.get(end - 1);
                    i = end;
                    continue;
                }
            }
        }
        out.push(x.text().to_string());
        if !matches!(x, Tok::Space(_)) {
            prev = Some(x);
        }
        i += 1;
    }
    out.concat()
}

/// `source` with unary plus and string `%` rewritten inside its tags.
pub(crate) fn python_operators(source: &str) -> String {
    if !source.contains(['%', '+'])
        && !(source.contains('-') && (source.contains("to_datetime") || source.contains("now")))
        && !source.contains("].")
        && !source.contains("}.")
    {
        return source.to_string();
    }
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find('{') {
        let (open, close) = match rest[at..].chars().nth(1) {
            Some('{') => ("{{", "}}"),
            Some('%') => ("{%", "%}"),
            Some('#') => {
                let end = rest[at..].find("#}").map(|e| at + e + 2).unwrap_or(rest.len());
                out.push_str(&rest[..end]);
                rest = &rest[end..];
                continue;
            }
            _ => {
                out.push_str(&rest[..at + 1]);
                rest = &rest[at + 1..];
                continue;
            }
        };
        out.push_str(&rest[..at + 2]);
        let body_start = at + 2;
        // the tag's end, outside string literals
        let b = &rest[body_start..];
        let (mut end, mut q, mut esc) = (None, None::<char>, false);
        for (k, ch) in b.char_indices() {
            match q {
                Some(_) if esc => esc = false,
                Some(_) if ch == '\\' => esc = true,
                Some(qc) if ch == qc => q = None,
                Some(_) => {}
                None if ch == '\'' || ch == '"' => q = Some(ch),
                None if b[k..].starts_with(close) => {
                    end = Some(k);
                    break;
                }
                None => {}
            }
        }
        let Some(end) = end else {
            out.push_str(b);
            return out;
        };
        let body = &b[..end];
        // {% raw %}: nothing up to its end is an expression
        if open == "{%" && body.trim().trim_matches(['-', '+']).trim() == "raw" {
            let tail = &b[end..];
            let stop = tail.find("endraw").map(|e| e + 6).unwrap_or(tail.len());
            out.push_str(body);
            out.push_str(&tail[..stop]);
            rest = &tail[stop..];
            continue;
        }
        // whitespace control signs are not operators
        let lead = body.len() - body.trim_start_matches(['-', '+']).len();
        let trail = body.len() - body.trim_end_matches('-').len();
        let (l, mid, r) = (&body[..lead], &body[lead..body.len() - trail], &body[body.len() - trail..]);
        out.push_str(l);
        out.push_str(&rewrite_expr(mid));
        out.push_str(r);
        out.push_str(close);
        rest = &b[end + close.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unary_plus_and_string_percent_as_jinja2_has_them() {
        let r = python_operators;
        assert_eq!(r("{{ +2.5 }} {{ +num }} {{ -(+3) }}"), "{{ 2.5 }} {{ num }} {{ -(3) }}");
        assert_eq!(r("{{ a + +b }}{{- x -}}{%+ if y %}"), "{{ a + b }}{{- x -}}{%+ if y %}");
        assert_eq!(r("{{ '%s=%s' % ('k', 'v') }}"), "{{ ('%s=%s' | format('k', 'v')) }}");
        assert_eq!(r("{{ '%05.1f' % ratio }}"), "{{ ('%05.1f' | format(ratio)) }}");
        assert_eq!(r("{{ x ~ '%s' % a.b[0] | upper ~ 'z' }}"), "{{ x ~ ('%s' | format(a.b[0] | upper)) ~ 'z' }}");
        assert_eq!(r("{{ '%d%%' % (n + 1) }}"), "{{ ('%d%%' | format(n + 1)) }}");
        assert_eq!(r("{{ '%s' % (a, b)[0] }}"), "{{ ('%s' | format((a, b)[0])) }}");
        // strings, text outside tags, comments, raw blocks and mappings stay
        assert_eq!(
            r("{{ (now() - ('2024-01-01' | to_datetime('%Y-%m-%d'))).days }} {{ (a) - (b) }}"),
            "{{ (__deploy_dt_sub(now(), ('2024-01-01' | to_datetime('%Y-%m-%d')))).days }} {{ (a) - (b) }}"
        );
        assert_eq!(
            r("{{ {'a': 1}.update({'b': 2}) }}{{ [1][0].append(2) }}{{ [ 1 ] . append(2) }}"),
            "{{ __deploy_mutable({'a': 1}).update({'b': 2}) }}{{ [1][0].append(2) }}{{ __deploy_mutable([ 1 ]) . append(2) }}"
        );
        let same = [
            "{{ x[0].append(1) }}{{ d['k'].update(y) }}{{ f(x).pop() }}",
            "{{ 'a + +b %s' }} + +x % y",
            "{# {{ +x }} #}",
            "{% raw %}{{ +x }}{% endraw %}",
            "{{ '%(a)s' % {'a': 1} }}",
            "{{ 7 % 2 }}",
        ];
        for s in same {
            assert_eq!(r(s), s);
        }
    }
}

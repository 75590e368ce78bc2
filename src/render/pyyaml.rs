//! PyYAML's emitter, as `yaml.dump` runs it for to_yaml and to_nice_yaml:
//! its indents, its indicators and its folding of long lines. PyYAML breaks
//! a plain or single-quoted scalar at a single space once the line is past
//! 80 columns (the rest goes on the next line at the scalar's indent), and
//! a flow collection before an item once past 80.

use minijinja::value::ValueKind;
use minijinja::Value;

use super::pyfmt::{entries, is_collection, is_empty, is_leaf_collection, yaml_scalar};

/// PyYAML's best_width.
const WIDTH: usize = 80;

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
    best_indent: usize,
    /// default_flow_style=None: collections of scalars inline.
    flow_leaves: bool,
    flow_level: usize,
}

/// PyYAML's increase_indent.
fn increase(indent: Option<usize>, best: usize, flow: bool, indentless: bool) -> usize {
    match indent {
        None if flow => best,
        None => 0,
        Some(i) if indentless => i,
        Some(i) => i + best,
    }
}

impl Emitter {
    fn write(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    fn line_break(&mut self) {
        self.out.push('\n');
        (self.column, self.whitespace, self.indention) = (0, true, true);
    }

    fn write_indent(&mut self, indent: usize) {
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.line_break();
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.write(&pad);
        }
    }

    fn indicator(&mut self, ind: &str, need_whitespace: bool, whitespace: bool, indention: bool) {
        if !self.whitespace && need_whitespace {
            self.write(" ");
        }
        self.write(ind);
        self.whitespace = whitespace;
        self.indention = self.indention && indention;
    }

    /// A scalar: `text` as yaml_scalar gives it, plain or quoted; plain and
    /// single-quoted ones folded at single spaces past the width unless
    /// `split` is false (a key).
    fn scalar(&mut self, text: &str, indent: usize, split: bool) {
        let quoted = text.starts_with('\'') && text.len() >= 2;
        if text.starts_with('"') || text.contains('\n') {
            // double-quoted (a string with a newline or a control character): one piece
            if !self.whitespace {
                self.write(" ");
            }
            self.write(text);
            (self.whitespace, self.indention) = (false, false);
            return;
        }
        let body = if quoted {
            self.indicator("'", true, false, false);
            &text[1..text.len() - 1]
        } else {
            if !self.whitespace {
                self.write(" ");
            }
            (self.whitespace, self.indention) = (false, false);
            text
        };
        let chars: Vec<char> = body.chars().collect();
        let (mut start, mut spaces) = (0, false);
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    let inner = !quoted || (start != 0 && end != chars.len());
                    if start + 1 == end && self.column > WIDTH && split && inner {
                        self.write_indent(indent);
                        (self.whitespace, self.indention) = (false, false);
                    } else {
                        let piece: String = chars[start..end].iter().collect();
                        self.write(&piece);
                    }
                    start = end;
                }
            } else if ch.is_none() || ch == Some(' ') {
                let piece: String = chars[start..end].iter().collect();
                self.write(&piece);
                start = end;
            }
            spaces = ch == Some(' ');
        }
        if quoted {
            self.indicator("'", false, false, false);
        }
    }

    /// A node, its parent's indent being `parent`.
    fn node(&mut self, v: &Value, parent: Option<usize>, mapping: bool, simple_key: bool) {
        if !is_collection(v) {
            let indent = increase(parent, self.best_indent, true, false);
            self.scalar(&yaml_scalar(v), indent, !simple_key);
            return;
        }
        let flow = self.flow_level > 0 || is_empty(v) || (self.flow_leaves && is_leaf_collection(v));
        match (v.kind() == ValueKind::Map, flow) {
            (false, true) => self.flow_sequence(v, parent),
            (true, true) => self.flow_mapping(v, parent),
            (false, false) => {
                // a sequence that is a mapping's value is not indented
                let indentless = mapping && !self.indention;
                let indent = increase(parent, self.best_indent, false, indentless);
                for item in v.try_iter().map(|i| i.collect::<Vec<_>>()).unwrap_or_default() {
                    self.write_indent(indent);
                    self.indicator("-", true, false, true);
                    self.node(&item, Some(indent), false, false);
                }
            }
            (true, false) => {
                let indent = increase(parent, self.best_indent, false, false);
                for (k, val) in entries(v, true) {
                    self.write_indent(indent);
                    self.node(&k, Some(indent), true, true);
                    self.indicator(":", false, false, false);
                    self.node(&val, Some(indent), true, false);
                }
            }
        }
    }

    fn flow_sequence(&mut self, v: &Value, parent: Option<usize>) {
        self.indicator("[", true, true, false);
        self.flow_level += 1;
        let indent = increase(parent, self.best_indent, true, false);
        for (i, item) in v.try_iter().map(|i| i.collect::<Vec<_>>()).unwrap_or_default().iter().enumerate() {
            if i > 0 {
                self.indicator(",", false, false, false);
            }
            if self.column > WIDTH {
                self.write_indent(indent);
            }
            self.node(item, Some(indent), false, false);
        }
        self.flow_level -= 1;
        self.indicator("]", false, false, false);
    }

    fn flow_mapping(&mut self, v: &Value, parent: Option<usize>) {
        self.indicator("{", true, true, false);
        self.flow_level += 1;
        let indent = increase(parent, self.best_indent, true, false);
        for (i, (k, val)) in entries(v, true).iter().enumerate() {
            if i > 0 {
                self.indicator(",", false, false, false);
            }
            if self.column > WIDTH {
                self.write_indent(indent);
            }
            self.node(k, Some(indent), true, true);
            self.indicator(":", false, false, false);
            self.node(val, Some(indent), true, false);
        }
        self.flow_level -= 1;
        self.indicator("}", false, false, false);
    }
}

/// yaml.dump(v, indent=indent, default_flow_style=None|False, allow_unicode=True).
/// `flow_leaves` is PyYAML's default_flow_style=None: collections holding only
/// scalars print inline.
pub(crate) fn yaml(v: &Value, indent: usize, flow_leaves: bool) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
        best_indent: if (2..10).contains(&indent) { indent } else { 2 },
        flow_leaves,
        flow_level: 0,
    };
    e.node(v, None, false, false);
    // the document's end: a line break after the last node
    e.line_break();
    e.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn nice_yaml_matches_pyyaml() {
        let v = context! { b => vec!["x", "y"], a => 1, c => context! { d => "yes", e => "" } };
        assert_eq!(yaml(&v, 4, false), "a: 1\nb:\n- x\n- y\nc:\n    d: 'yes'\n    e: ''\n");
    }

    #[test]
    fn flow_leaves() {
        let v = context! { a => vec![1, 2] };
        assert_eq!(yaml(&v, 2, true), "a: [1, 2]\n");
        assert_eq!(yaml(&context! { a => 1 }, 2, true), "{a: 1}\n");
    }
}

//! Lists and dicts a template changes in place, as Jinja2 lets it through
//! Python's methods: `{% set names = [] %}` then `names.append(x)` in a
//! loop is a common Ansible idiom. minijinja's values are immutable, so a
//! `{% set NAME = [...] %}` or `{% set NAME = {...} %}` of a literal makes
//! one of these objects instead (`mutable_sets`, a rewrite in template.rs), which `append`, `extend`, `insert`, `pop`, `remove`,
//! `update` and `setdefault` change. On any other list or dict those
//! methods are an error, never a silent no-op.

use std::sync::{Arc, Mutex};

use minijinja::value::{from_args, Enumerator, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Error as MjError, ErrorKind};

fn err(msg: impl Into<String>) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, msg.into())
}

#[derive(Debug, Default)]
pub(crate) struct List(Mutex<Vec<Value>>);

#[derive(Debug, Default)]
pub(crate) struct Dict(Mutex<indexmap::IndexMap<Value, Value>>);

impl Object for List {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = key.as_i64()?;
        let i = if i < 0 { v.len() as i64 + i } else { i };
        v.get(usize::try_from(i).ok()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn call_method(self: &Arc<Self>, _s: &minijinja::State, method: &str, args: &[Value]) -> Result<Value, MjError> {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match method {
            "append" => {
                let (x,): (Value,) = from_args(args)?;
                v.push(x);
            }
            "extend" => {
                let (xs,): (Value,) = from_args(args)?;
                v.extend(xs.try_iter()?);
            }
            "insert" => {
                let (i, x): (i64, Value) = from_args(args)?;
                let n = v.len() as i64;
                let i = if i < 0 { (n + i).max(0) } else { i.min(n) };
                v.insert(i as usize, x);
            }
            "pop" => {
                let (i,): (Option<i64>,) = from_args(args)?;
                let n = v.len() as i64;
                let i = i.map(|i| if i < 0 { n + i } else { i }).unwrap_or(n - 1);
                if i < 0 || i >= n {
                    return Err(err("pop index out of range"));
                }
                return Ok(v.remove(i as usize));
            }
            "remove" => {
                let (x,): (Value,) = from_args(args)?;
                let i = v.iter().position(|y| *y == x).ok_or_else(|| err("list.remove(x): x not in list"))?;
                v.remove(i);
            }
            _ => {
                drop(v);
                let plain = Value::from(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone());
                return plain.call_method(_s, method, args);
            }
        }
        Ok(Value::from(()))
    }
}

impl Object for Dict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect())
    }

    fn call_method(self: &Arc<Self>, s: &minijinja::State, method: &str, args: &[Value]) -> Result<Value, MjError> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match method {
            "update" => {
                let (other,): (Value,) = from_args(args)?;
                for k in other.try_iter()? {
                    let v = other.get_item(&k)?;
                    m.insert(k, v);
                }
                Ok(Value::from(()))
            }
            "setdefault" => {
                let (k, d): (Value, Option<Value>) = from_args(args)?;
                Ok(m.entry(k).or_insert_with(|| d.unwrap_or(Value::from(()))).clone())
            }
            "pop" => {
                let (k, d): (Value, Option<Value>) = from_args(args)?;
                m.shift_remove(&k).or(d).ok_or_else(|| err(format!("dict.pop: no key {}", super::pyfmt::py_repr(&k))))
            }
            _ => {
                let plain = Value::from_iter(m.clone());
                drop(m);
                plain.call_method(s, method, args)
            }
        }
    }
}

/// A changeable copy of a list or dict literal.
pub(crate) fn mutable(v: Value) -> Result<Value, MjError> {
    match v.kind() {
        ValueKind::Seq => Ok(Value::from_object(List(Mutex::new(v.try_iter()?.collect())))),
        ValueKind::Map => {
            let mut m = indexmap::IndexMap::new();
            for k in v.try_iter()? {
                let x = v.get_item(&k)?;
                m.insert(k, x);
            }
            Ok(Value::from_object(Dict(Mutex::new(m))))
        }
        _ => Ok(v),
    }
}

/// The methods that change a list or dict, refused on one that cannot
/// change: a silent no-op would print something else than Ansible.
pub(crate) fn refuse(value: &Value, method: &str) -> Option<MjError> {
    let changes = match value.kind() {
        ValueKind::Seq => ["append", "extend", "insert", "pop", "remove"].contains(&method),
        ValueKind::Map => ["update", "setdefault", "pop"].contains(&method),
        _ => false,
    };
    changes.then(|| {
        err(format!(
            "{method}() changes a list or dict in place, which deploy supports on one made by `{{% set name = [] %}}` or `{{% set name = {{}} %}}` in the template; build a new value instead (`x + [y]`, `x | combine(y)`)"
        ))
    })
}

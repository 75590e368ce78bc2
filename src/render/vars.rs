//! Variables per host: the layers (role defaults < group_vars/all < parent
//! group < child group < host_vars < toggles < -e), merged, and resolved
//! lazily: a value is itself a template, rendered on first use with the
//! host's whole context, and `"{{ expr }}"` alone keeps its native type.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, ObjectRepr, ValueKind};
use minijinja::{Environment, Value};

use crate::load::{Origin, Raw, FACTS};

/// Facts about the whole inventory shared by every host's context.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// `groups`: group name -> host names.
    pub(crate) groups: Value,
    /// `hostvars`: host name -> that host's vars object.
    pub(crate) hostvars: OnceLock<Value>,
    /// `ansible_managed`.
    pub(crate) managed: String,
    /// `playbook_dir`: the repository (where deploy.yml is), absolute.
    pub(crate) playbook_dir: String,
    /// `inventory_dir`: where the inventory is, absolute.
    pub(crate) inventory_dir: String,
    /// `ansible_check_mode`: this run only plans (--check).
    pub(crate) check_mode: std::sync::atomic::AtomicBool,
}

/// Whether `name` is a fact's variable: `ansible_facts`, or `ansible_` and
/// one of FACTS.
pub(crate) fn is_fact(name: &str) -> bool {
    name == "ansible_facts" || name.strip_prefix("ansible_").is_some_and(|n| FACTS.contains(&n))
}

/// Where a fact read without facts is recorded as coming from.
pub(crate) const NO_FACTS: &str = "<facts>";

/// The variables that carry `facts` (by their ansible_facts names):
/// `ansible_facts` and each `ansible_NAME`.
pub(crate) fn fact_vars(facts: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, Value)> {
    let mut out = vec![("ansible_facts".to_string(), Value::from_serialize(facts))];
    out.extend(facts.iter().map(|(k, v)| (format!("ansible_{k}"), Value::from_serialize(v))));
    out
}

/// A resolution failure, kept so the top-level error can name the variable
/// that failed rather than only the template that used it.
#[derive(Debug, Clone)]
pub(crate) struct ResolveError {
    /// Variable being resolved.
    pub(crate) var: String,
    /// Where it was defined.
    pub(crate) file: PathBuf,
    /// What went wrong.
    pub(crate) message: String,
}

/// The variables of one host, resolved on demand.
#[derive(Debug)]
pub(crate) struct HostVars {
    /// The host's inventory name.
    pub(crate) host: String,
    /// Groups the host belongs to (excluding `all`), sorted.
    pub(crate) group_names: Vec<String>,
    raw: IndexMap<String, Raw>,
    shared: Arc<Shared>,
    env: Arc<Environment<'static>>,
    cache: Mutex<HashMap<String, Value>>,
    failed: Mutex<std::collections::HashSet<String>>,
    /// First error hit while resolving a variable.
    pub(crate) error: Mutex<Option<ResolveError>>,
}

thread_local! {
    // Variables being resolved on this thread, to report cycles instead of overflowing the stack.
    static RESOLVING: RefCell<Vec<(usize, String)>> = const { RefCell::new(Vec::new()) };
}

impl HostVars {
    /// Build a host's variables from its merged layers.
    pub(crate) fn new(
        host: String,
        group_names: Vec<String>,
        raw: IndexMap<String, Raw>,
        shared: Arc<Shared>,
        env: Arc<Environment<'static>>,
    ) -> HostVars {
        HostVars {
            host,
            group_names,
            raw,
            shared,
            env,
            cache: Mutex::new(HashMap::new()),
            failed: Mutex::default(),
            error: Mutex::new(None),
        }
    }

    /// The same host with `overrides` layered above everything but `-e`
    /// (toggle values), resolved afresh.
    pub(crate) fn with_overrides(&self, overrides: &[(String, Value)]) -> HostVars {
        let mut raw = self.raw.clone();
        let extra: Vec<(String, Raw)> = raw
            .iter()
            .filter(|(_, r)| r.origin.file.as_os_str() == "-e")
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        for (k, v) in overrides {
            raw.insert(k.clone(), Raw { value: v.clone(), origin: Origin { file: "toggle".into(), secret: false } });
        }
        raw.extend(extra);
        HostVars::new(self.host.clone(), self.group_names.clone(), raw, self.shared.clone(), self.env.clone())
    }

    /// What every host's variables share.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The raw definition of a variable.
    pub(crate) fn raw(&self, name: &str) -> Option<&Raw> {
        self.raw.get(name)
    }

    fn magic(&self, name: &str) -> Option<Value> {
        Some(match name {
            "inventory_hostname" => Value::from(self.host.clone()),
            "inventory_hostname_short" => Value::from(self.host.split('.').next().unwrap_or("").to_string()),
            "group_names" => Value::from(self.group_names.clone()),
            "groups" => self.shared.groups.clone(),
            "hostvars" => self.shared.hostvars.get().cloned().unwrap_or(Value::UNDEFINED),
            "ansible_managed" => Value::from(self.shared.managed.clone()),
            "playbook_dir" => Value::from(self.shared.playbook_dir.clone()),
            "inventory_dir" => Value::from(self.shared.inventory_dir.clone()),
            "ansible_check_mode" => Value::from(self.shared.check_mode.load(std::sync::atomic::Ordering::Relaxed)),
            // deploy renders as ansible-core 2.19 does
            "ansible_version" => Value::from_serialize(serde_json::json!({
                "full": "2.19.0", "major": 2, "minor": 19, "revision": 0, "string": "2.19.0"
            })),
            // a fact this render was given no facts for: an error that says
            // how to give them, where it is used
            n if is_fact(n) => {
                self.record(
                    n,
                    &Origin { file: NO_FACTS.into(), secret: false },
                    format!("host fact `{n}` is not known here: deploy gathers the facts a repository reads when it connects to the host (`deploy ENV`, `--check`); for `deploy render`, pass `--facts FILE` (JSON as `ansible -m setup` or `deploy facts ENV --host H` writes it)"),
                );
                return None;
            }
            _ => return None,
        })
    }

    fn resolve(self: &Arc<Self>, name: &str) -> Option<Value> {
        if let Some(v) = self.cache.lock().unwrap().get(name) {
            return Some(v.clone());
        }
        let raw = self.raw.get(name)?;
        let me = Arc::as_ptr(self) as usize;
        let cycle = RESOLVING.with(|r| r.borrow().iter().any(|(p, n)| *p == me && n == name));
        if cycle {
            let chain = RESOLVING.with(|r| {
                r.borrow().iter().filter(|(p, _)| *p == me).map(|(_, n)| n.clone()).collect::<Vec<_>>().join(" -> ")
            });
            self.record(name, &raw.origin, format!("variable refers to itself: {chain} -> {name}"));
            return None;
        }
        if self.failed.lock().unwrap().contains(name) {
            return None;
        }
        RESOLVING.with(|r| r.borrow_mut().push((me, name.to_string())));
        let ctx = Value::from_dyn_object(self.clone());
        let mut leaf = Leaf { var: name, origin: &raw.origin, undefined: false };
        let out = self.resolve_value(&raw.value, &ctx, &mut leaf);
        let out = match out {
            Ok(v) => {
                // a structure with an undefined leaf is resolved again on every
                // use, so that each use that reaches the leaf names its cause
                if !leaf.undefined {
                    self.cache.lock().unwrap().insert(name.to_string(), v.clone());
                }
                Some(v)
            }
            Err(e) => {
                // Described while still marked as resolving, so that looking up
                // the names it uses cannot recurse into this variable again.
                self.failed.lock().unwrap().insert(name.to_string());
                let src = raw.value.as_str().unwrap_or_default().to_string();
                let detail = crate::render::errors::describe_mj_error(&e, Some((&self.env, &src, &ctx)));
                self.record(name, &raw.origin, detail);
                None
            }
        };
        RESOLVING.with(|r| r.borrow_mut().pop());
        out
    }

    /// Forget what an earlier render recorded: an error names this render's cause.
    pub(crate) fn clear_error(&self) {
        self.error.lock().unwrap().take();
    }

    fn record(&self, var: &str, origin: &Origin, message: String) {
        let mut slot = self.error.lock().unwrap();
        // The innermost failure is recorded first and is the root cause.
        if slot.is_none() {
            *slot = Some(ResolveError { var: var.into(), file: origin.file.clone(), message });
        }
    }

    /// A structure's leaf whose template reaches an undefined variable is
    /// itself undefined, as in Ansible: `is defined` is false there and
    /// `default()` applies, while printing or iterating it is an error that
    /// names the variable and the cause (recorded here).
    fn leaf(&self, x: &Value, ctx: &Value, leaf: &mut Leaf) -> Result<Value, minijinja::Error> {
        match self.resolve_value(x, ctx, leaf) {
            Err(e) if e.kind() == minijinja::ErrorKind::UndefinedError && x.kind() == ValueKind::String => {
                let src = x.as_str().unwrap_or_default();
                let detail = crate::render::errors::describe_mj_error(&e, Some((&self.env, src, ctx)));
                self.record(leaf.var, leaf.origin, detail);
                leaf.undefined = true;
                Ok(Value::UNDEFINED)
            }
            other => other,
        }
    }

    fn resolve_value(&self, v: &Value, ctx: &Value, leaf: &mut Leaf) -> Result<Value, minijinja::Error> {
        match v.kind() {
            ValueKind::String => {
                let s = v.as_str().unwrap_or_default();
                if !(s.contains("{{") || s.contains("{%") || s.contains("{#")) {
                    return Ok(v.clone());
                }
                if let Some(expr) = single_expression(s) {
                    let e = self.env.compile_expression_owned(super::template::rewritten_expr(expr))?;
                    let out = e.eval(ctx)?;
                    if out.is_undefined() {
                        return Err(minijinja::Error::new(minijinja::ErrorKind::UndefinedError, "undefined value"));
                    }
                    return Ok(out);
                }
                let out = self.env.render_str(&super::template::rewritten_small(s), ctx)?;
                Ok(Value::from(out))
            }
            ValueKind::Seq => {
                let items: Result<Vec<Value>, _> = v.try_iter()?.map(|x| self.leaf(&x, ctx, leaf)).collect();
                Ok(Value::from(items?))
            }
            ValueKind::Map => {
                let mut m = IndexMap::new();
                for k in v.try_iter()? {
                    let x = v.get_item(&k)?;
                    m.insert(k, self.leaf(&x, ctx, leaf)?);
                }
                Ok(Value::from_iter(m))
            }
            _ => Ok(v.clone()),
        }
    }
}

/// The variable being resolved, for the message of an undefined leaf.
struct Leaf<'a> {
    var: &'a str,
    origin: &'a Origin,
    /// A leaf was undefined: the value is not cached.
    undefined: bool,
}

/// `"{{ expr }}"` with nothing around it: evaluated as an expression so the
/// result keeps its type (list, dict, bool, int) as in Ansible.
pub(crate) fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim().trim_start_matches('-').trim_end_matches('-'))
}

impl Object for HostVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if self.raw.contains_key(name) {
            return self.resolve(name);
        }
        self.magic(name)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = self.raw.keys().map(|k| Value::from(k.clone())).collect();
        for m in [
            "inventory_hostname",
            "inventory_hostname_short",
            "group_names",
            "groups",
            "hostvars",
            "ansible_managed",
            "playbook_dir",
            "inventory_dir",
            "ansible_check_mode",
            "ansible_version",
        ] {
            if !self.raw.contains_key(m) {
                keys.push(Value::from(m));
            }
        }
        Enumerator::Values(keys)
    }
}

/// `hostvars`: every host's variables by name.
pub(crate) struct AllHostVars {
    /// The hosts of the environment.
    pub(crate) env: IndexMap<String, Arc<HostVars>>,
    /// Every other host of the inventory, its variables made when first
    /// asked for (its secrets may need keys this deploy has not: an error
    /// then, where it is used).
    pub(crate) others: Arc<crate::load::LayerSource>,
    /// (weak: `shared` holds this object)
    pub(crate) shared: std::sync::Weak<Shared>,
    pub(crate) var_env: Arc<Environment<'static>>,
    pub(crate) made: Mutex<HashMap<String, Value>>,
}

impl std::fmt::Debug for AllHostVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.others.hosts()).finish()
    }
}

impl AllHostVars {
    fn other(&self, host: &str) -> Value {
        if let Some(v) = self.made.lock().unwrap_or_else(|p| p.into_inner()).get(host) {
            return v.clone();
        }
        let mut warnings = Vec::new();
        let v = match (self.others.layers(host, &mut IndexMap::new(), &mut warnings), self.shared.upgrade()) {
            (Ok(l), Some(shared)) => {
                Value::from_object(HostVars::new(host.into(), l.groups, l.vars, shared, self.var_env.clone()))
            }
            (Err(e), _) => Value::from(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("hostvars['{host}']: {e}"),
            )),
            (_, None) => Value::UNDEFINED,
        };
        self.made.lock().unwrap_or_else(|p| p.into_inner()).insert(host.into(), v.clone());
        v
    }
}

impl Object for AllHostVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let host = key.as_str()?;
        if let Some(h) = self.env.get(host) {
            return Some(Value::from_dyn_object(h.clone()));
        }
        self.others.hosts().any(|h| h == host).then(|| self.other(host))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.others.hosts().map(|k| Value::from(k.clone())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::yaml_to_value;

    fn host(vars: &[(&str, serde_yaml::Value)]) -> Arc<HostVars> {
        let env = Arc::new(crate::render::template::environment(None));
        let raw = vars
            .iter()
            .map(|(k, v)| {
                (k.to_string(), Raw { value: yaml_to_value(v), origin: Origin { file: "g.yml".into(), secret: false } })
            })
            .collect();
        Arc::new(HostVars::new("h1".into(), vec!["lab".into()], raw, Arc::new(Shared::default()), env))
    }

    fn y(s: &str) -> serde_yaml::Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn lazy_recursive_and_native() {
        let h = host(&[
            ("domain", y("\"{{ vault_domain | default('example.com') }}\"")),
            ("url", y("\"https://{{ domain }}/{{ inventory_hostname }}\"")),
            ("ports", y("\"{{ [80, 443] }}\"")),
            ("tls", y("\"{{ ports | length > 1 }}\"")),
        ]);
        let ctx = Value::from_dyn_object(h.clone());
        let env = crate::render::template::environment(None);
        assert_eq!(env.render_str("{{ url }}", &ctx).unwrap(), "https://example.com/h1");
        assert_eq!(
            env.render_str("{% for p in ports %}{{ p + 1 }} {% endfor %}{{ tls }}", &ctx).unwrap(),
            "81 444 True"
        );
    }

    #[test]
    fn cycles_are_reported() {
        let h = host(&[("a", y("\"{{ b }}\"")), ("b", y("\"{{ a }}\""))]);
        let env = crate::render::template::environment(None);
        assert!(env.render_str("{{ a }}", Value::from_dyn_object(h.clone())).is_err());
        let e = h.error.lock().unwrap().clone().unwrap();
        assert!(e.message.contains("refers to itself"), "{}", e.message);
    }
}

//! facts.sh: the host facts Ansible users read most, named and typed as
//! `ansible -m setup` has them (without the `ansible_` prefix).

use serde_json::{Map, Value};

/// `sh -c SCRIPT facts`.
pub(crate) const SCRIPT: &str = include_str!("facts.sh");

/// Parse facts.sh output into the facts, by name.
pub(crate) fn parse_facts(out: &[u8]) -> Result<Map<String, Value>, String> {
    let text = super::protocol::body("facts", out)?;
    let mut facts = Map::new();
    let mut ended = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let int =
            |x: &str| x.trim().parse::<i64>().map(Value::from).map_err(|_| super::protocol::unexpected("facts", line));
        match (f[0], f.len()) {
            ("s", 3) => {
                facts.insert(f[1].into(), f[2].into());
            }
            ("i", 3) => {
                facts.insert(f[1].into(), int(f[2])?);
            }
            ("l", 2) | ("l", 3) => {
                let list = facts.entry(f[1]).or_insert_with(|| Value::Array(vec![]));
                if let (Some(v), Value::Array(l)) = (f.get(2), list) {
                    l.push((*v).into());
                }
            }
            ("d", 2) | ("d", 4) | ("D", 4) => {
                let dict = facts.entry(f[1]).or_insert_with(|| Value::Object(Map::new()));
                if let (true, Value::Object(m)) = (f.len() == 4, dict) {
                    let v = if f[0] == "D" { int(f[3])? } else { f[3].into() };
                    m.insert(f[2].into(), v);
                }
            }
            ("end", 1) => ended = true,
            _ => return Err(super::protocol::unexpected("facts", line)),
        }
    }
    if !ended {
        return Err("deploy-facts stopped before its end (the connection dropped?)".into());
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_typed_as_ansible_has_them() {
        let out = "deploy-facts\t1\ns\tdistribution\tDebian\ni\tmemtotal_mb\t2000\nl\tall_ipv4_addresses\nl\tall_ipv4_addresses\t10.0.0.2\nd\tlsb\nd\tdefault_ipv4\naddress\nd\tdefault_ipv4\taddress\t10.0.0.2\nD\tdefault_ipv4\tmtu\t1500\nend\n";
        let out = out.replace("d\tdefault_ipv4\naddress\n", "d\tdefault_ipv4\n");
        let f = parse_facts(out.as_bytes()).unwrap();
        assert_eq!(f["distribution"], "Debian");
        assert_eq!(f["memtotal_mb"], 2000);
        assert_eq!(f["all_ipv4_addresses"], serde_json::json!(["10.0.0.2"]));
        assert_eq!(f["lsb"], serde_json::json!({}));
        assert_eq!(f["default_ipv4"], serde_json::json!({"address": "10.0.0.2", "mtu": 1500}));
        assert!(parse_facts(b"deploy-facts\t1\ns\tx\ty\n").unwrap_err().contains("before its end"));
    }
}

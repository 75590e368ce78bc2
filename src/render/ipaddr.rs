//! The IPv4 filters of ansible.utils that configs of VPN and firewall roles
//! use: `ipaddr` (and `ipv4`) with its common queries, and `ipmath`, as
//! netaddr answers them. An IPv6 value is an error naming the filter, never
//! a wrong answer.

use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error as MjError, ErrorKind};

use super::pyfmt::py_str;

/// An IPv4 address with its prefix (32 for a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: u32,
    prefix: u32,
}

fn parse(s: &str) -> Option<Net> {
    let (a, p) = match s.trim().split_once('/') {
        Some((a, p)) => (a, p),
        None => (s.trim(), "32"),
    };
    let octets: Vec<u32> = a.split('.').map(|o| o.parse::<u8>().ok().map(u32::from)).collect::<Option<_>>()?;
    if octets.len() != 4 {
        return None;
    }
    // a prefix may be written as a netmask: 10.0.0.1/255.255.255.0
    let prefix = match p.parse::<u32>() {
        Ok(n) if n <= 32 => n,
        Ok(_) => return None,
        Err(_) => {
            let m = parse(p)?.addr;
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return None;
            }
            m.leading_ones()
        }
    };
    Some(Net { addr: octets.iter().fold(0, |acc, o| acc << 8 | o), prefix })
}

fn dotted(a: u32) -> String {
    format!("{}.{}.{}.{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
}

impl Net {
    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }
    fn network(&self) -> u32 {
        self.addr & self.mask()
    }
    fn broadcast(&self) -> u32 {
        self.network() | !self.mask()
    }
    fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
}

/// `VALUE | ipaddr(QUERY)` for one value: the answer, or false (Python's
/// False) where the value is no address or the query does not apply.
fn one(v: &Value, query: &Value) -> Result<Value, MjError> {
    let s = py_str(v);
    let Some(n) = parse(&s) else {
        if s.contains(':') {
            return Err(MjError::new(
                ErrorKind::InvalidOperation,
                format!("ipaddr: `{s}` is IPv6, which deploy's ipaddr does not handle yet"),
            ));
        }
        return Ok(Value::from(false));
    };
    if query.kind() == ValueKind::Number {
        // the Nth address of the network, with its prefix
        let i = i64::try_from(query.clone()).unwrap_or(0);
        let idx = if i < 0 { n.size() as i64 + i } else { i };
        if idx < 0 || idx as u64 >= n.size() {
            return Ok(Value::from(false));
        }
        return Ok(Value::from(format!("{}/{}", dotted(n.network().wrapping_add(idx as u32)), n.prefix)));
    }
    let q = if query.is_undefined() || query.is_none() { String::new() } else { py_str(query) };
    let has_prefix = s.contains('/');
    Ok(match q.as_str() {
        "" => v.clone(),
        "address" => Value::from(dotted(n.addr)),
        "network" => Value::from(dotted(n.network())),
        "netmask" => Value::from(dotted(n.mask())),
        "hostmask" => Value::from(dotted(!n.mask())),
        "broadcast" => Value::from(dotted(n.broadcast())),
        "prefix" => Value::from(n.prefix),
        "size" => Value::from(n.size()),
        "network/prefix" | "subnet" | "cidr" => Value::from(format!("{}/{}", dotted(n.network()), n.prefix)),
        "host" | "host/prefix" | "address/prefix" if has_prefix || q == "host" => {
            Value::from(format!("{}/{}", dotted(n.addr), n.prefix))
        }
        "net" => {
            if has_prefix && n.addr == n.network() {
                Value::from(format!("{}/{}", dotted(n.network()), n.prefix))
            } else {
                Value::from(false)
            }
        }
        "private" => {
            let private = [(0x0a00_0000u32, 8), (0xac10_0000, 12), (0xc0a8_0000, 16)]
                .iter()
                .any(|(net, p)| Net { addr: n.addr, prefix: *p }.network() == *net);
            if private {
                v.clone()
            } else {
                Value::from(false)
            }
        }
        "public" => {
            let private = [(0x0a00_0000u32, 8), (0xac10_0000, 12), (0xc0a8_0000, 16), (0x7f00_0000, 8)]
                .iter()
                .any(|(net, p)| Net { addr: n.addr, prefix: *p }.network() == *net);
            if private {
                Value::from(false)
            } else {
                v.clone()
            }
        }
        other => {
            return Err(MjError::new(
                ErrorKind::InvalidOperation,
                format!("ipaddr('{other}') is not supported by deploy (it has address, network, netmask, hostmask, broadcast, prefix, size, network/prefix, host, net, private, public and an index)"),
            ))
        }
    })
}

fn ipaddr(v: Value, query: Option<Value>) -> Result<Value, MjError> {
    let query = query.unwrap_or(Value::UNDEFINED);
    if v.kind() == ValueKind::Seq {
        let mut out = Vec::new();
        for x in v.try_iter()? {
            let r = one(&x, &query)?;
            if r.kind() != ValueKind::Bool || r.is_true() {
                out.push(r);
            }
        }
        return Ok(Value::from(out));
    }
    one(&v, &query)
}

/// `ADDRESS | ipmath(N)`: the address N further on (or back), without a prefix.
fn ipmath(v: Value, amount: i64) -> Result<String, MjError> {
    let s = py_str(&v);
    let n = parse(&s)
        .ok_or_else(|| MjError::new(ErrorKind::InvalidOperation, format!("ipmath: `{s}` is not an IPv4 address")))?;
    let a = i64::from(n.addr) + amount;
    if !(0..=i64::from(u32::MAX)).contains(&a) {
        return Err(MjError::new(
            ErrorKind::InvalidOperation,
            format!("ipmath: {s} + {amount} is past the address space"),
        ));
    }
    Ok(dotted(a as u32))
}

pub(crate) fn add(env: &mut Environment<'static>) {
    env.add_filter("ipaddr", ipaddr);
    env.add_filter("ipv4", ipaddr);
    env.add_filter("ipmath", ipmath);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(v: &str, query: Value) -> String {
        py_str(&ipaddr(Value::from(v), Some(query)).unwrap())
    }

    // the answers netaddr gives through ansible.utils
    #[test]
    fn ipaddr_answers_as_netaddr_does() {
        let s = |x: &str| Value::from(x);
        assert_eq!(q("10.8.0.5/24", s("network")), "10.8.0.0");
        assert_eq!(q("10.8.0.5/24", s("prefix")), "24");
        assert_eq!(q("10.8.0.5/24", s("netmask")), "255.255.255.0");
        assert_eq!(q("10.8.0.5/24", s("network/prefix")), "10.8.0.0/24");
        assert_eq!(q("10.8.0.5/24", s("address")), "10.8.0.5");
        assert_eq!(q("10.8.0.5/24", s("broadcast")), "10.8.0.255");
        assert_eq!(q("10.8.0.5/24", s("host")), "10.8.0.5/24");
        assert_eq!(q("10.8.0.0/24", s("net")), "10.8.0.0/24");
        assert_eq!(q("10.8.0.5/24", s("net")), "False");
        assert_eq!(q("10.8.0.0/24", Value::from(1)), "10.8.0.1/24");
        assert_eq!(q("10.8.0.0/24", Value::from(-1)), "10.8.0.255/24");
        assert_eq!(q("10.8.0.5/255.255.0.0", s("network/prefix")), "10.8.0.0/16");
        assert_eq!(q("nonsense", s("")), "False");
        assert_eq!(ipmath(Value::from("10.8.0.0"), 1).unwrap(), "10.8.0.1");
        assert_eq!(ipmath(Value::from("10.8.0.5/24"), -5).unwrap(), "10.8.0.0");
        let l = ipaddr(Value::from(vec!["10.0.0.1", "x", "192.168.1.0/24"]), None).unwrap();
        assert_eq!(py_str(&l), "['10.0.0.1', '192.168.1.0/24']");
    }
}

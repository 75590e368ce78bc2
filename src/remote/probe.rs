//! The probe: one shell command per host reports type, mode, owner and sha256
//! of every managed path (a few forks on the host however many paths), the
//! containers, the lock as found, and the current contents of the files this
//! deploy would change, all in one round trip. `parse_probe` is pure and tested on
//! captured output.

use std::collections::HashMap;

use crate::plan::state::*;

/// The probe script, run as `sh -c SCRIPT probe DOCKER OLDMAX NSIZE SIZEPATH... PATH...`
/// (wanted hashes on stdin).
pub(crate) const SCRIPT: &str = include_str!("probe.sh");

/// Largest old file the probe sends for a diff (a diff shows 400 lines at most).
pub(crate) const OLD_MAX: u64 = 1 << 20;

/// The wanted sum of a file whose sum is not known yet (a big source not
/// hashed before): as long as a sum, since the script reads wanted lines by
/// column, and never a file's, so the host sends its own.
pub(crate) const UNKNOWN_SUM: &str = "----------------------------------------------------------------";

/// The queries about what is not a file, the first part of the probe's
/// stdin (ended by a line `.`).
pub(crate) fn queries(desired: &crate::render::DesiredHost) -> String {
    let sys = &desired.system;
    let mut q = String::new();
    let mut lingers: Vec<&str> = Vec::new();
    for u in sys.units.iter().filter(|u| u.selected) {
        match &u.user {
            None => q.push_str(&format!("u\t{}\n", u.name)),
            Some(user) => {
                q.push_str(&format!("U\t{user}\t{}\n", u.name));
                if !lingers.contains(&user.as_str()) {
                    lingers.push(user);
                    q.push_str(&format!("l\t{user}\n"));
                }
            }
        }
    }
    for p in sys.packages.iter().filter(|p| p.selected) {
        q.push_str(&format!("p\t{}\n", p.name));
    }
    for u in sys.users.iter().filter(|u| u.selected) {
        q.push_str(&format!("a\t{}\n", u.name));
    }
    for g in sys.groups.iter().filter(|g| g.selected) {
        q.push_str(&format!("g\t{}\n", g.name));
    }
    for s in sys.sysctl.iter().filter(|s| s.selected) {
        q.push_str(&format!("s\t{}\n", s.key));
    }
    let mut read: Vec<&str> = Vec::new();
    for l in sys.lines.iter().filter(|l| l.selected) {
        if !read.contains(&l.path.as_str()) {
            read.push(&l.path);
            q.push_str(&format!("r\t{}\n", l.path));
        }
    }
    for (i, c) in sys.commands.iter().enumerate().filter(|(_, c)| c.selected) {
        if let Some(g) = &c.unless {
            q.push_str(&format!("c\t{i}\tunless\t{g}\n"));
        } else if let Some(g) = &c.onlyif {
            q.push_str(&format!("c\t{i}\tonlyif\t{g}\n"));
        }
    }
    q.push_str(".\n");
    q
}

/// Parse probe output. Errors describe what was malformed.
#[cfg(test)]
pub(crate) fn parse_probe(out: &[u8]) -> Result<Remote, String> {
    parse_probe_with(out, &[])
}

type Pair = (String, String);

/// A host with nothing read yet.
fn empty() -> Remote {
    Remote {
        compose: None,
        docker_unreachable: false,
        containers: Vec::new(),
        hostname: String::new(),
        paths: HashMap::new(),
        lock: Lock::Free,
        holder_journals: Vec::new(),
        reverted: None,
        client_addr: None,
        server_port: None,
        old: HashMap::new(),
        sizes: HashMap::new(),
        system: SystemState::default(),
        not_dirs: HashMap::new(),
    }
}

/// Parse probe output of a probe sent `wanted` (path, sha256) on stdin, in
/// that order: an `S` line counts files found as wanted by line number.
pub(crate) fn parse_probe_with(out: &[u8], wanted: &[(&str, &str)]) -> Result<Remote, String> {
    let text = crate::remote::protocol::body("probe", out)?;
    let mut r = empty();
    // (path, sum) and (path, link target), applied to the entries at the end
    let (mut hashes, mut links): (Vec<Pair>, Vec<Pair>) = (Vec::new(), Vec::new());
    let (mut users, mut groups) = (HashMap::new(), HashMap::new());
    let mut ended = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "P" if f.len() == 6 => {
                let (path, entry) = path_line(&f, line)?;
                r.paths.insert(path, entry);
            }
            // a symbolic link's target: `link PATH TARGET`
            "link" if f.len() == 3 => links.push((f[1].to_string(), f[2].to_string())),
            "uid" | "gid" if f.len() == 3 => {
                let id: u32 = f[1].parse().map_err(|_| format!("bad id in `{line}`"))?;
                if f[0] == "uid" { &mut users } else { &mut groups }.insert(id, f[2].to_string());
            }
            "H" if f.len() == 2 => {
                let (hash, path) = f[1].split_once("  ").ok_or_else(|| format!("bad hash line `{line}`"))?;
                if hash.len() != 64 {
                    return Err(format!("bad hash line `{line}`"));
                }
                hashes.push((path.to_string(), hash.to_string()));
            }
            "S" if f.len() == 2 => {
                // 1-based line numbers of the wanted sums sent
                let ns = ranges(f[1], wanted.len()).ok_or_else(|| format!("bad S line `{line}`"))?;
                hashes.extend(ns.into_iter().map(|n| (wanted[n - 1].0.to_string(), wanted[n - 1].1.to_string())));
            }
            "size" if f.len() == 4 => {
                let n = |x: &str| x.trim().parse::<u64>().map_err(|_| format!("bad size line `{line}`"));
                r.sizes.insert(f[3].to_string(), (n(f[1])?, n(f[2])?));
            }
            "old" if f.len() == 3 => {
                let (path, old) = old_line(&f)?;
                r.old.insert(path, old);
            }
            "nodir" if f.len() == 3 && ["none", "file", "link", "other"].contains(&f[1]) => {
                r.not_dirs.insert(f[2].to_string(), f[1].to_string());
            }
            "end" => ended = true,
            "unit" | "uunit" | "linger" | "pkg" | "acct" | "grp" | "sysctl" | "guard" | "read" | "systemd" | "apt" => {
                system_line(&mut r.system, &f, line)?
            }
            _ => host_line(&mut r, &f, line)?,
        }
    }
    if !ended {
        return Err("probe output ended early (connection dropped or host out of resources?)".into());
    }
    // as stat's %U and %G print them: UNKNOWN for an id without a name
    for e in r.paths.values_mut() {
        e.user = users.get(&e.uid).cloned().unwrap_or_else(|| "UNKNOWN".into());
        e.group = groups.get(&e.gid).cloned().unwrap_or_else(|| "UNKNOWN".into());
    }
    for (path, target) in links {
        if let Some(e) = r.paths.get_mut(&path).filter(|e| e.kind == Kind::Link) {
            e.target = Some(target);
        }
    }
    for (path, hash) in hashes {
        if let Some(e) = r.paths.get_mut(&path).filter(|e| e.kind == Kind::File) {
            e.sha256 = Some(hash);
        }
    }
    Ok(r)
}

/// `1-3,5`: the numbers 1, 2, 3 and 5 (ascending ranges within 1..=max),
/// or None.
fn ranges(text: &str, max: usize) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
        if a == 0 || a > b || b > max || out.last().is_some_and(|l| *l >= a) {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// `P TYPE MODE UID GID PATH`: one existing path (stat runs under
/// LC_ALL=C, so TYPE is in English); `uid ID NAME` and `gid ID NAME` lines
/// name the ids.
fn path_line(f: &[&str], line: &str) -> Result<(String, Entry), String> {
    let kind = match f[1] {
        "regular file" | "regular empty file" => Kind::File,
        "directory" => Kind::Dir,
        "symbolic link" => Kind::Link,
        _ => Kind::Other,
    };
    let mode = u32::from_str_radix(f[2], 8).map_err(|_| format!("bad mode in `{line}`"))?;
    let uid = f[3].parse().map_err(|_| format!("bad uid in `{line}`"))?;
    let gid = f[4].parse().map_err(|_| format!("bad gid in `{line}`"))?;
    Ok((
        f[5].to_string(),
        Entry { kind, mode, uid, gid, user: String::new(), group: String::new(), sha256: None, target: None },
    ))
}

/// `old PATH BASE64` or `old PATH -SIZE`: a file's current contents, for a diff.
fn old_line(f: &[&str]) -> Result<(String, Old), String> {
    let old = match f[2].strip_prefix('-') {
        Some(size) => Old::TooLarge(size.parse().map_err(|_| format!("bad size in `{}`", f[1]))?),
        None => {
            use base64::Engine;
            Old::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(f[2])
                    .map_err(|e| format!("bad contents of {} in the probe output: {e}", f[1]))?,
            )
        }
    };
    Ok((f[1].to_string(), old))
}

/// The answers to the queries about what is not a file.
fn system_line(s: &mut SystemState, f: &[&str], line: &str) -> Result<(), String> {
    let bad = || format!("bad probe line `{}`", line.chars().take(120).collect::<String>());
    let opt = |x: &str| (x != "-" && !x.is_empty()).then(|| x.to_string());
    match (f[0], f.len()) {
        ("systemd", _) => s.no_systemd = true,
        ("apt", _) => s.no_apt = true,
        ("unit", 7) => {
            let main_pid = f[5].parse().map_err(|_| bad())?;
            let u = UnitStatus { load: f[2].into(), active: f[3].into(), file_state: f[4].into(), main_pid };
            s.units.insert(f[1].into(), u);
        }
        ("uunit", 4) => {}
        ("uunit", 8) => {
            let main_pid = f[6].parse().map_err(|_| bad())?;
            let u = UnitStatus { load: f[3].into(), active: f[4].into(), file_state: f[5].into(), main_pid };
            s.units.insert(crate::plan::state::unit_key(Some(f[1]), f[2]), u);
        }
        ("linger", 3) => {
            s.lingers.insert(f[1].into(), f[2] == "yes");
        }
        ("pkg", 5) => {
            let available = f[4].split_whitespace().map(str::to_string).collect();
            s.packages.insert(f[1].into(), PackageStatus { installed: opt(f[2]), candidate: opt(f[3]), available });
        }
        ("acct", 3) if f[2] == "-" => {
            s.users.insert(f[1].into(), None);
        }
        ("acct", 9) => {
            let e = UserEntry {
                uid: f[2].parse().map_err(|_| bad())?,
                gid: f[3].parse().map_err(|_| bad())?,
                home: f[4].into(),
                shell: f[5].into(),
                group: f[6].into(),
                groups: f[7].split(',').filter(|g| !g.is_empty()).map(str::to_string).collect(),
                home_exists: f[8] == "home",
            };
            s.users.insert(f[1].into(), Some(e));
        }
        ("grp", 3) => {
            let gid = if f[2] == "-" { None } else { Some(f[2].parse().map_err(|_| bad())?) };
            s.groups.insert(f[1].into(), gid);
        }
        ("sysctl", 3) => {
            s.sysctl.insert(f[1].into(), opt(f[2]));
        }
        ("guard", 4) => {
            s.guards.insert(f[1].parse().map_err(|_| bad())?, f[3].parse().map_err(|_| bad())?);
        }
        ("read", 3) => {
            let (path, old) = old_line(f)?;
            s.reads.insert(path, old);
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// The host-wide lines: name, connection, lock, containers, compose.
fn host_line(r: &mut Remote, f: &[&str], line: &str) -> Result<(), String> {
    match f[0] {
        "host" => r.hostname = f.get(1).unwrap_or(&"").to_string(),
        "lock" if f.get(1) == Some(&"seen") => {
            r.lock = Lock::Seen(f.get(2).map(|s| s.trim().to_string()).unwrap_or_default())
        }
        "journal" if f.len() == 4 => r.holder_journals.push(JournalState {
            phase: f[1].into(),
            state: f[2].trim().into(),
            paths: f[3].parse().map_err(|_| format!("bad journal line `{line}`"))?,
        }),
        "compose" => {
            r.compose = match f.get(1) {
                Some(&"v2") => Some(ComposeVariant::V2),
                Some(&"v1") => Some(ComposeVariant::V1),
                _ => None,
            }
        }
        "docker" => r.docker_unreachable = true,
        "reverted" => r.reverted = f.get(1).map(|s| s.to_string()),
        "client" => {
            // SSH_CONNECTION: client-addr client-port server-addr server-port
            let w: Vec<&str> = f.get(1).unwrap_or(&"").split_whitespace().collect();
            if w.len() == 4 {
                r.client_addr = Some(w[0].to_string());
                r.server_port = w[3].parse().ok();
            }
        }
        "C" if f.len() == 7 => r.containers.push(Container {
            id: f[1].into(),
            project: f[2].into(),
            service: f[3].into(),
            inputs: f[4].into(),
            state: f[5].into(),
            adopt: f[6] == "yes",
        }),
        _ => return Err(format!("unexpected probe line `{}`", line.chars().take(120).collect::<String>())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        "deploy-probe\t1\nhost\tlab1\nuid\t0\troot\ngid\t0\troot\nlock\tseen\tci@x pid=1 deploy=d1\njournal\tp000\tdone controller-gone \t12\n\
P\tregular file\t644\t0\t0\t/etc/motd\n\
P\tdirectory\t755\t1000\t1000\t/opt/app dir\n\
H\te3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  /etc/motd\n\
compose\tv1\nC\tabc123\tapps\topenclaw\tdeadbeef\trunning\t\n\
old\t/etc/motd\taGVsbG8K\nold\t/var/big\t-2000000\nold\t/etc/empty\t\nend\n";

    #[test]
    fn parses_sample() {
        let r = parse_probe(SAMPLE.as_bytes()).unwrap();
        assert_eq!(r.hostname, "lab1");
        assert_eq!(r.lock, Lock::Seen("ci@x pid=1 deploy=d1".into()));
        assert_eq!(
            r.holder_journals[0].describe(),
            "phase journal p000: all 12 changes written; the controller stopped listening there, so its later steps did not run"
        );
        let m = &r.paths["/etc/motd"];
        assert_eq!((m.kind, m.mode, m.sha256.as_deref().map(|s| &s[..4])), (Kind::File, 0o644, Some("e3b0")));
        assert_eq!(r.paths["/opt/app dir"].uid, 1000);
        // names come once per id; an id without one reads as stat prints it
        assert_eq!((m.user.as_str(), m.group.as_str()), ("root", "root"));
        assert_eq!(r.paths["/opt/app dir"].user, "UNKNOWN");
        assert_eq!(r.compose, Some(ComposeVariant::V1));
        assert_eq!(r.containers[0].service, "openclaw");
        assert_eq!(r.containers[0].inputs, "deadbeef");
        assert_eq!(r.old["/etc/motd"], Old::Bytes(b"hello\n".to_vec()));
        assert_eq!(r.old["/var/big"], Old::TooLarge(2_000_000));
        assert_eq!(r.old["/etc/empty"], Old::Bytes(vec![]));
    }

    /// Files found as wanted come back as ranges of wanted line numbers.
    #[test]
    fn s_lines_name_wanted_files_by_number() {
        let wanted = [("/a", "1111"), ("/b", "2222"), ("/c", "3333"), ("/d", "4444")];
        let out = "deploy-probe\t1\nP\tregular file\t644\t0\t0\t/a\nP\tregular file\t644\t0\t0\t/b\n\
P\tregular file\t644\t0\t0\t/d\nS\t1-2,4\nend\n";
        let r = parse_probe_with(out.as_bytes(), &wanted).unwrap();
        assert_eq!(r.paths["/a"].sha256.as_deref(), Some("1111"));
        assert_eq!(r.paths["/b"].sha256.as_deref(), Some("2222"));
        assert_eq!(r.paths["/d"].sha256.as_deref(), Some("4444"));
        assert_eq!(ranges("3", 4), Some(vec![3]));
        // out of range, zero, descending or overlapping: refused, never guessed
        for bad in ["5", "0", "2-1", "1-3,2", "x", "1-"] {
            assert_eq!(ranges(bad, 4), None, "{bad}");
        }
        let e = parse_probe_with(out.replace("1-2,4", "1-9").as_bytes(), &wanted).unwrap_err();
        assert_eq!(e, "bad S line `S\t1-9`");
    }

    #[test]
    fn malformed_is_an_error() {
        assert!(parse_probe(b"").is_err());
        assert!(parse_probe(b"bash: sh: not found\n").unwrap_err().contains("header"));
        assert!(parse_probe(SAMPLE.replace("end\n", "").as_bytes()).unwrap_err().contains("ended early"));
        assert!(parse_probe(b"deploy-probe\t1\nP\tregular file\tzz\t0\t0\t/x\nend\n").is_err());
    }
}

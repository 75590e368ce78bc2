//! Test harness: a private copy of the example repository plus its own lab
//! (network namespaces with real sshd), brought up with the same script as
//! `make lab-up`. Each `Lab` takes its own instance number, so tests running
//! in parallel never share hosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const POISON: &str = "POISON-7c1e0b5d-lab-token-never-print";
pub(crate) const DB_PASSWORD: &str = "lab-db-pw-9f3Kq7";

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_deploy")
}

const SLOTS: &str = "/tmp/deploy-lab-slots";

pub(crate) struct Lab {
    pub(crate) root: PathBuf,
    pub(crate) instance: u32,
    pub(crate) slot: PathBuf,
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// A project directory (copy of the example) without a lab.
pub(crate) fn project() -> (PathBuf, Slot) {
    let slot = Slot::take();
    let root = slot.path.join("project");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(repo().join("deploy.yml"), root.join("deploy.yml")).unwrap();
    copy_dir(&repo().join("inventory"), &root.join("inventory"));
    copy_dir(&repo().join("roles"), &root.join("roles"));
    (root, slot)
}

/// An instance number, held by an flock on `SLOTS/N.lock` for as long as the
/// test process lives. The kernel drops the lock when the process dies, so a
/// crashed test frees its slot without any pid bookkeeping, and two processes
/// can never both believe they own the same slot (nextest starts many at once).
pub(crate) struct Slot {
    pub(crate) n: u32,
    pub(crate) path: PathBuf,
    _lock: std::fs::File,
}

impl Slot {
    fn take() -> Slot {
        std::fs::create_dir_all(SLOTS).unwrap();
        for n in 1..250u32 {
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(format!("{SLOTS}/{n}.lock"))
                .unwrap();
            if lock.try_lock().is_err() {
                continue;
            }
            // ours now; whatever a dead holder left behind goes first
            let path = PathBuf::from(format!("{SLOTS}/{n}"));
            let lab = path.join("project/.lab");
            if lab.exists() {
                let _ = Command::new("bash")
                    .arg(repo().join("tests/lab/lab.sh"))
                    .args(["down", "--dir"])
                    .arg(&lab)
                    .stdout(Stdio::null())
                    .status();
            }
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            return Slot { n, path, _lock: lock };
        }
        panic!("no free lab slot in {SLOTS}");
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // the directory goes before the lock is released (field drop order)
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

fn to_run(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Run the deploy binary in `root`.
pub(crate) fn deploy_in(root: &Path, args: &[&str]) -> Run {
    let o = Command::new(bin())
        .current_dir(root)
        .args(args)
        .env_remove("DEPLOY_AGE_IDENTITY")
        .env("NO_COLOR", "1")
        // the sums of big source files (render::sums), the test's own
        .env("XDG_CACHE_HOME", root.join(".lab/cache"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    to_run(o)
}

/// Start the deploy binary in `root` without waiting, output captured.
pub(crate) fn spawn_in(root: &Path, args: &[&str]) -> std::process::Child {
    Command::new(bin())
        .current_dir(root)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) struct LabWithSlot {
    pub(crate) lab: Lab,
    _slot: Slot,
}

impl Drop for LabWithSlot {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("tests/lab/lab.sh"))
            .args(["down", "--dir", ".lab"])
            .current_dir(&self.lab.root)
            .status();
    }
}

impl std::ops::Deref for LabWithSlot {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

/// The example without its container phases, for tests of file handling on
/// labs without Docker engines.
pub(crate) const FILES_ONLY: &str = "project: example-stack
age_identity: inventory/lab.identity
phases:
  - name: base
    roles: [common]
  - name: app
    roles: [app]
";

impl Lab {
    /// A fresh copy of the example (files only) and a lab of `hosts` hosts.
    pub(crate) fn up(hosts: u32) -> LabWithSlot {
        let l = Lab::start(hosts, &[]);
        std::fs::write(l.root.join("deploy.yml"), FILES_ONLY).unwrap();
        l
    }

    /// The whole example and a lab whose hosts each run a Docker engine;
    /// `v1_hosts` have only Compose v1 (`docker-compose`).
    pub(crate) fn up_docker(hosts: u32, v1_hosts: &[&str]) -> LabWithSlot {
        let mut extra = vec!["--docker".to_string()];
        if !v1_hosts.is_empty() {
            extra.push("--compose-v1".into());
            extra.push(v1_hosts.join(","));
        }
        Lab::start(hosts, &extra)
    }

    /// The files-only example on hosts installed in other languages
    /// (`host`, `locale`): LANG in their /etc/default/locale, loaded by PAM.
    pub(crate) fn up_locales(hosts: u32, locales: &[(&str, &str)]) -> LabWithSlot {
        let extra: Vec<String> =
            locales.iter().flat_map(|(h, l)| ["--locale".to_string(), format!("{h}={l}")]).collect();
        let l = Lab::start(hosts, &extra);
        std::fs::write(l.root.join("deploy.yml"), FILES_ONLY).unwrap();
        l
    }

    /// A lab whose hosts each run their own atd.
    pub(crate) fn up_atd(hosts: u32) -> LabWithSlot {
        let l = Lab::start(hosts, &["--atd".to_string()]);
        std::fs::write(l.root.join("deploy.yml"), FILES_ONLY).unwrap();
        l
    }

    /// The example and a lab of `hosts` Debian hosts that boot systemd
    /// (sys1..), and no namespace hosts.
    pub(crate) fn up_systemd(hosts: u32) -> LabWithSlot {
        Lab::start_with(0, hosts, &[])
    }

    /// The example and a lab of `docker` namespace hosts with Docker
    /// engines (lab1..) and `systemd` hosts that boot systemd (sys1..).
    pub(crate) fn up_mixed(docker: u32, systemd: u32) -> LabWithSlot {
        Lab::start_with(docker, systemd, &["--docker".to_string()])
    }

    fn start(hosts: u32, extra: &[String]) -> LabWithSlot {
        Lab::start_with(hosts, 0, extra)
    }

    fn start_with(hosts: u32, sd_hosts: u32, extra: &[String]) -> LabWithSlot {
        let (root, slot) = project();
        let st = Command::new("bash")
            .arg(repo().join("tests/lab/lab.sh"))
            .args(["up", "--dir", ".lab", "--instance", &slot.n.to_string(), "--hosts", &hosts.to_string()])
            .args(["--systemd-hosts", &sd_hosts.to_string()])
            .args(extra)
            .current_dir(&root)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "lab up failed");
        // the example inventory lists lab1..lab3 and sys1..sys2; keep the
        // ones this lab has
        let inv = root.join("inventory/hosts.yml");
        let text = std::fs::read_to_string(&inv).unwrap();
        let beyond = |t: &str, prefix: &str, n: u32| {
            t.strip_prefix(prefix).is_some_and(|k| k.parse::<u32>().is_ok_and(|k| k > n))
        };
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                let t = l.trim().trim_end_matches(':');
                !beyond(t, "lab", hosts) && !beyond(t, "sys", sd_hosts)
            })
            .collect();
        std::fs::write(&inv, kept.join("\n") + "\n").unwrap();
        LabWithSlot { lab: Lab { root, instance: slot.n, slot: slot.path.clone() }, _slot: slot }
    }

    pub(crate) fn deploy(&self, args: &[&str]) -> Run {
        deploy_in(&self.root, args)
    }

    pub(crate) fn lab_cmd(&self, args: &[&str]) {
        let st = Command::new("bash")
            .arg(repo().join("tests/lab/lab.sh"))
            .args(args)
            .args(["--dir", ".lab"])
            .current_dir(&self.root)
            .status()
            .unwrap();
        assert!(st.success(), "lab.sh {args:?} failed");
    }

    /// Run a command on a host with a plain ssh (not through the tool).
    pub(crate) fn ssh(&self, host: &str, cmd: &str) -> Run {
        let o = Command::new("ssh")
            .arg("-F")
            .arg(self.root.join(".lab/ssh_config"))
            .args(["-o", "ControlMaster=no", "-o", "ControlPath=none", host, cmd])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        to_run(o)
    }

    /// Stdout of a command that must succeed on the host.
    pub(crate) fn sh(&self, host: &str, cmd: &str) -> String {
        let r = self.ssh(host, cmd);
        assert_eq!(r.code, 0, "ssh {host} {cmd}: {r:?}");
        r.stdout
    }

    pub(crate) fn read(&self, host: &str, path: &str) -> Option<Vec<u8>> {
        let o = Command::new("ssh")
            .arg("-F")
            .arg(self.root.join(".lab/ssh_config"))
            .args(["-o", "ControlMaster=no", "-o", "ControlPath=none", host, "cat", path])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        o.status.success().then_some(o.stdout)
    }

    /// `name id started-at` of every container on a host, sorted.
    pub(crate) fn containers(&self, host: &str) -> Vec<String> {
        let ids = self.sh(host, "docker ps -aq --no-trunc");
        let mut out: Vec<String> = ids
            .lines()
            .map(|id| {
                self.sh(host, &format!("docker inspect -f '{{{{.Name}}}} {{{{.Id}}}} {{{{.State.StartedAt}}}}' {id}"))
                    .trim()
                    .to_string()
            })
            .collect();
        out.sort();
        out
    }

    /// A lab host's address on the lab network (outside the VPN range).
    pub(crate) fn addr(&self, host: &str) -> String {
        std::fs::read_to_string(self.root.join(format!(".lab/hosts/{host}/addr"))).unwrap().trim().to_string()
    }

    /// A lab host's address in the VPN range (100.64.K.x).
    pub(crate) fn vpn_addr(&self, host: &str) -> String {
        std::fs::read_to_string(self.root.join(format!(".lab/hosts/{host}/vpn_addr"))).unwrap().trim().to_string()
    }

    /// HTTP status of `url` fetched from this machine with source address
    /// `from` (the controller has one address in and one outside the VPN
    /// range); "000" when no connection is made within 2 seconds.
    pub(crate) fn http_from(&self, from: &str, url: &str) -> String {
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout", "2", "--max-time", "4"])
            .args(["--interface", from, url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// sshd's log of a lab host (LogLevel VERBOSE: one line per connection).
    pub(crate) fn sshd_log(&self, host: &str) -> String {
        std::fs::read_to_string(self.root.join(format!(".lab/hosts/{host}/sshd.log"))).unwrap_or_default()
    }

    /// A lab host's /var/lib/deploy, seen from this side (the lab's per-host
    /// directories are plain directories here).
    pub(crate) fn state_dir(&self, host: &str) -> PathBuf {
        self.root.join(format!(".lab/hosts/{host}/root/var/lib/deploy"))
    }

    pub(crate) fn write_file(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Locally rendered bytes of `path` for `host`, via `deploy render`.
    pub(crate) fn rendered(&self, host: &str) -> PathBuf {
        let out = self.slot.join(format!("rendered-{host}"));
        let _ = std::fs::remove_dir_all(&out);
        let r = self.deploy(&["render", "lab", "--host", host, "--out", out.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{r:?}");
        out.join(host)
    }
}

/// Poll until `f` holds, or fail naming what was awaited.
pub(crate) fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Managed paths of the example deployment.
pub(crate) const FILES: &[&str] = &[
    "/etc/motd",
    "/etc/deploy-admins",
    "/opt/stack/VERSION",
    "/opt/stack/app.conf",
    "/opt/stack/env/app.env",
    "/srv/app/data/state.json",
];

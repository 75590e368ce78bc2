//! deploy.yml and roles/<role>/role.yml: the schema of what a user declares.
//! Unknown keys are errors that name the file, line and the allowed keys.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use crate::load::defaults::Identities;

use crate::error::{Error, Result};

/// deploy.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectFile {
    /// The project's name: required, so that a deploy.yml says what it is.
    #[allow(dead_code)]
    pub(crate) project: String,
    /// Ordered phases; each applies its roles in order.
    pub(crate) phases: Vec<Phase>,
    /// The text of `{{ ansible_managed }}` (Ansible's default).
    #[serde(default = "default_managed")]
    pub(crate) ansible_managed: String,
    /// cron.d and sysctl.d files written as Ansible's cron and sysctl
    /// modules write them (`#Ansible: NAME` before each job, `key=value`, no
    /// header), so hosts Ansible managed are in sync; `deploy import` sets it.
    #[serde(default)]
    pub(crate) ansible_compat: bool,
    /// Where the age identity is looked up when neither --identity nor
    /// DEPLOY_AGE_IDENTITY is given; relative to the project root.
    #[serde(default)]
    pub(crate) age_identity: Identities,
    /// Toggles: `deploy NAME-on ENV`, `NAME-off`, `NAME-status`.
    #[serde(default)]
    pub(crate) toggles: IndexMap<String, Toggle>,
    /// Deploy journals each host keeps (pruned after a successful deploy;
    /// never one a pending dead-man revert needs).
    #[serde(default = "default_keep_journals")]
    pub(crate) keep_journals: usize,
    /// Environments never deployed from a tree with uncommitted or untracked
    /// files that the render reads.
    #[serde(default)]
    pub(crate) require_clean: Vec<String>,
    /// Hosts in batches of N (or N%), as --serial (read by cli::rollout).
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) serial: Option<serde_yaml::Value>,
    /// Stop a staged rollout once more than this share of hosts failed.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) max_fail_percentage: Option<u8>,
    /// The environment of `deploy` without one (DEPLOY_ENV wins over it).
    #[serde(default)]
    #[allow(dead_code)] // read by cli::project_defaults, before the project loads
    pub(crate) default_env: Option<String>,
}

/// A toggle: a variable flipped between two values, applied to some roles
/// under a dead-man switch that reverts it unless confirmed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Toggle {
    /// The variable it sets.
    pub(crate) var: String,
    /// Its value when on.
    pub(crate) on: serde_yaml::Value,
    /// Its value when off.
    pub(crate) off: serde_yaml::Value,
    /// The roles re-rendered and applied.
    pub(crate) roles: Vec<String>,
    /// Window to confirm in before the host reverts by itself.
    #[serde(default = "default_auto_revert")]
    pub(crate) auto_revert: Duration,
    /// The ssh destination the confirmation connects to, rendered per host
    /// with the toggled value (a host's VPN address or ssh_config alias, so
    /// that the confirm proves the way in the new mode relies on). Empty:
    /// the host's usual destination. Port and user stay the host's.
    #[serde(default)]
    pub(crate) confirm_via: Option<String>,
}

fn default_auto_revert() -> Duration {
    Duration(900)
}

fn default_keep_journals() -> usize {
    10
}

fn default_managed() -> String {
    "Ansible managed".into()
}

/// One phase of deploy.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "PhaseFile")]
pub(crate) struct Phase {
    /// Name shown in output.
    pub(crate) name: String,
    /// Roles, applied in this order.
    pub(crate) roles: Vec<String>,
    /// A role's condition over each host's variables (`- role: openclaw,
    /// when: openclaw_enabled`): the role is not deployed where it is false.
    pub(crate) when: IndexMap<String, String>,
    /// The hosts this phase applies to (Ansible's `hosts:` pattern); every
    /// host of the environment when absent.
    #[serde(default)]
    pub(crate) hosts: Option<crate::load::pattern::HostPattern>,
    /// Run this phase under a dead-man switch: the host reverts the whole
    /// deploy after this long unless the controller confirms over a fresh
    /// connection (for changes that can lock it out: firewall, sshd).
    pub(crate) deadman: Option<Duration>,
    /// Hosts through this phase in batches of N (or N%), as a number or a string.
    #[serde(default)]
    pub(crate) serial: Option<serde_yaml::Value>,
}

/// A phase as deploy.yml writes it: its roles by name, or `{role, when}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseFile {
    name: String,
    roles: Vec<RoleEntry>,
    #[serde(default)]
    hosts: Option<crate::load::pattern::HostPattern>,
    deadman: Option<Duration>,
    #[serde(default)]
    serial: Option<serde_yaml::Value>,
}

/// A role of a phase: its name, or the name with a condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a role name, or `{role: NAME, when: CONDITION}`")]
enum RoleEntry {
    Name(String),
    When(RoleWhen),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleWhen {
    role: String,
    when: String,
}

impl From<PhaseFile> for Phase {
    fn from(p: PhaseFile) -> Phase {
        let mut roles = Vec::new();
        let mut when = IndexMap::new();
        for r in p.roles {
            match r {
                RoleEntry::Name(n) => roles.push(n),
                RoleEntry::When(RoleWhen { role, when: w }) => {
                    when.insert(role.clone(), w);
                    roles.push(role);
                }
            }
        }
        Phase { name: p.name, roles, when, hosts: p.hosts, deadman: p.deadman, serial: p.serial }
    }
}

/// roles/<role>/role.yml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleFile {
    /// Files with content from a template, a source file or inline.
    #[serde(default)]
    pub(crate) files: Vec<FileSpec>,
    /// Directories.
    #[serde(default)]
    pub(crate) dirs: Vec<crate::load::system::DirSpec>,
    /// Paths that must not exist.
    #[serde(default)]
    pub(crate) absent: Vec<AbsentSpec>,
    /// Symbolic links.
    #[serde(default)]
    pub(crate) links: Vec<crate::load::system::LinkSpec>,
    /// Docker Compose projects, brought up at the end of the role's phase.
    #[serde(default)]
    pub(crate) compose: Vec<ComposeSpec>,
    /// Checks that gate the role's phase after a change.
    #[serde(default)]
    pub(crate) health: Vec<HealthSpec>,
    /// Checks that must hold before any change of this role is made; a
    /// failing one stops the host before anything is armed or written.
    #[serde(default)]
    pub(crate) preflight: Vec<PreflightSpec>,
    /// apt packages.
    #[serde(default)]
    pub(crate) packages: Vec<crate::load::system::PackageSpec>,
    /// systemd units.
    #[serde(default)]
    pub(crate) units: Vec<crate::load::system::UnitSpec>,
    /// Local users.
    #[serde(default)]
    pub(crate) users: Vec<crate::load::system::UserSpec>,
    /// Local groups.
    #[serde(default)]
    pub(crate) groups: Vec<crate::load::system::GroupSpec>,
    /// Kernel parameters.
    #[serde(default)]
    pub(crate) sysctl: Vec<crate::load::system::SysctlSpec>,
    /// Cron jobs.
    #[serde(default)]
    pub(crate) cron: Vec<crate::load::system::CronSpec>,
    /// Lines of files deploy does not otherwise manage.
    #[serde(default)]
    pub(crate) lines: Vec<crate::load::system::LineSpec>,
    /// Guarded commands.
    #[serde(default)]
    pub(crate) commands: Vec<crate::load::system::CommandSpec>,
}

/// A pre-flight check. Exactly one of that, command, healthy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreflightSpec {
    /// A Jinja expression that must be true, evaluated on the controller with
    /// the host's variables (toggled values included) and the facts
    /// `deploy_controller_addr` (this controller's address as the host sees
    /// it), `deploy_confirm_addr` (the same through a toggle's confirm_via)
    /// and `deploy_ssh_port` (the port the next deploy connects to).
    pub(crate) that: Option<String>,
    /// Shown when `that` is false (a template).
    pub(crate) msg: Option<String>,
    /// A read-only command on the host that must exit 0 (`sshd -t`).
    pub(crate) command: Option<String>,
    /// Compose services (`project/service`) that must be healthy before a
    /// toggle, when they exist: after it, a failure must be the toggle's.
    /// Not checked before plain deploys, which may be the fix.
    #[serde(default)]
    pub(crate) healthy: Vec<String>,
}

/// A Compose project. Which services read which file is learned from the
/// rendered compose files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComposeSpec {
    /// Project name (`-p`); Compose's own default when absent: the
    /// directory's name, lowercased, with only a-z, 0-9, `_` and `-` kept.
    pub(crate) project: Option<String>,
    /// Project directory on the host.
    pub(crate) dir: String,
    /// Compose files, relative to `dir` or absolute; each must be managed by a role.
    pub(crate) files: Vec<String>,
    /// Variables for `${VAR}` interpolation (default: `.env` in `dir`, when managed).
    pub(crate) env_file: Option<String>,
    /// Mounted config files reloaded in place instead of recreating the service.
    #[serde(default)]
    pub(crate) reload: Vec<ReloadSpec>,
    /// How long services may take to become healthy after a change.
    #[serde(default = "default_health_timeout")]
    pub(crate) health_timeout: Duration,
}

fn default_health_timeout() -> Duration {
    Duration(60)
}

/// A reload trigger: when `file` changes, run `command` in `service`'s container.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReloadSpec {
    /// The mounted file (absolute path on the host).
    pub(crate) file: String,
    /// The service that mounts it.
    pub(crate) service: String,
    /// Command run in the container (argument list).
    pub(crate) command: Vec<String>,
}

/// A health check. Exactly one of http, tcp, command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthSpec {
    /// URL fetched from the host; passes on `status`.
    pub(crate) http: Option<String>,
    /// Expected HTTP status (default 200).
    pub(crate) status: Option<u16>,
    /// host:port that must accept a connection.
    pub(crate) tcp: Option<String>,
    /// Command run on the host; passes on exit 0.
    pub(crate) command: Option<String>,
    /// How long it may take to pass.
    #[serde(default = "default_check_timeout")]
    pub(crate) timeout: Duration,
}

fn default_check_timeout() -> Duration {
    Duration(30)
}

/// A duration written as "30s", "2m" or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Duration(pub u64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_yaml::Value::deserialize(d)?;
        let s = match &v {
            serde_yaml::Value::Number(n) => {
                return n.as_u64().map(Duration).ok_or_else(|| D::Error::custom("duration must be positive"))
            }
            serde_yaml::Value::String(s) => s.trim().to_string(),
            _ => return Err(D::Error::custom("duration must be like \"30s\", \"2m\" or \"1h\"")),
        };
        parse_duration(&s).map(Duration).map_err(D::Error::custom)
    }
}

/// Parse "30s", "2m", "1h", "90".
pub(crate) fn parse_duration(s: &str) -> std::result::Result<u64, String> {
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("duration `{s}` is not like \"30s\", \"2m\" or \"1h\""))
}

/// A file resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSpec {
    /// Absolute path on the host (may itself be a template).
    pub(crate) dest: String,
    /// Template under the role's templates/ dir.
    pub(crate) template: Option<String>,
    /// File under the role's files/ dir, copied byte for byte.
    pub(crate) src: Option<String>,
    /// Inline content (rendered as a template).
    pub(crate) content: Option<String>,
    /// Owner by name or number.
    pub(crate) owner: Option<Id>,
    /// Group by name or number.
    pub(crate) group: Option<Id>,
    /// Mode as a quoted octal string.
    pub(crate) mode: Option<Templ<Mode>>,
    /// Command run on the host against the new file (`%s`) before the swap.
    pub(crate) validate: Option<String>,
    /// Never show this file's content in diffs.
    #[serde(default)]
    pub(crate) secret: bool,
    /// Created when absent, never overwritten or deleted.
    #[serde(default)]
    pub(crate) preserve: bool,
    /// It may become empty, or lose most of its bytes, without `deploy
    /// --yes` refusing the change (incident 9: a good file replaced by an
    /// empty render).
    #[serde(default)]
    pub(crate) may_empty: bool,
    /// Command run on the host after the file changed (and again after a
    /// revert restored it), e.g. `nft -f /etc/nftables.conf`.
    pub(crate) on_change: Option<String>,
    /// A condition over the host's variables (a Jinja expression): the file
    /// is managed on the hosts where it is true.
    #[serde(default)]
    pub(crate) when: Option<String>,
}

/// A path that must not exist: a path, or `{path, force: true}` for a
/// top-level tree that is really meant to go.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a path, or a mapping `path: PATH` with `force: true`")]
pub(crate) enum AbsentSpec {
    /// Just the path.
    Path(String),
    /// The path, with force.
    Full {
        /// Absolute path (may be a template).
        path: String,
        /// Remove even a top-level tree (`/srv`, `/opt`).
        #[serde(default)]
        force: bool,
    },
}

impl AbsentSpec {
    /// The path as written.
    pub(crate) fn path(&self) -> &str {
        match self {
            AbsentSpec::Path(p) | AbsentSpec::Full { path: p, .. } => p,
        }
    }

    /// `force: true` was given.
    pub(crate) fn force(&self) -> bool {
        matches!(self, AbsentSpec::Full { force: true, .. })
    }
}

/// A user or group: a name or a numeric id (a container's UID, say).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub(crate) enum Id {
    /// Numeric id.
    Num(u32),
    /// Name resolved on the host.
    Name(String),
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Name(s) => f.write_str(s),
        }
    }
}

/// A file mode, written as a quoted string ("0640"). A YAML integer is an
/// error: 0644 is octal in YAML 1.1 and decimal 644 in YAML 1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode(pub u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_yaml::Value::deserialize(d)?;
        match v {
            serde_yaml::Value::String(s) => parse_mode(&s).map(Mode).map_err(D::Error::custom),
            serde_yaml::Value::Number(n) => Err(D::Error::custom(format!(
                "mode {n} is a YAML integer; write it as a quoted string like \"0{n}\" (0644 means different things in YAML 1.1 and 1.2)"
            ))),
            other => Err(D::Error::custom(format!("mode must be a quoted octal string like \"0644\", not {other:?}"))),
        }
    }
}

/// A field that is either its value as written or a template that renders
/// to one on each host (`mode: "{{ key_mode }}"`, `uid: "{{ app_uid }}"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Templ<T> {
    /// Written as the value itself, checked at load.
    Is(T),
    /// A template, rendered and checked per host.
    Template(String),
}

/// Text that minijinja would treat as a template.
pub(crate) fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Templ<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_yaml::Value::deserialize(d)?;
        if let serde_yaml::Value::String(s) = &v {
            if is_template(s) {
                return Ok(Templ::Template(s.clone()));
            }
        }
        T::deserialize(v).map(Templ::Is).map_err(D::Error::custom)
    }
}

/// Parse "0644", "644" or "u=rw,g=r,o=r"-less octal strings.
pub(crate) fn parse_mode(s: &str) -> std::result::Result<u32, String> {
    let t = s.trim();
    let digits = t.strip_prefix("0o").unwrap_or(t);
    if digits.is_empty() || digits.len() > 5 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(format!("mode \"{s}\" is not an octal mode like \"0644\""));
    }
    let m = u32::from_str_radix(digits, 8).map_err(|e| e.to_string())?;
    if m > 0o7777 {
        return Err(format!("mode \"{s}\" is larger than 07777"));
    }
    Ok(m)
}

/// A loaded role.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    /// Its name (directory name).
    pub(crate) name: String,
    /// roles/<name>.
    pub(crate) dir: PathBuf,
    /// Parsed role.yml.
    pub(crate) spec: RoleFile,
    /// role.yml path, for errors.
    pub(crate) spec_path: PathBuf,
    /// role.yml's text, to place errors the parser cannot.
    pub(crate) text: String,
    /// Defaults (defaults.yml or defaults/main.yml), lowest precedence.
    pub(crate) defaults: serde_yaml::Mapping,
    /// Role vars (vars.yml or vars/main.yml): above the inventory, below
    /// -e, as Ansible's role vars.
    pub(crate) vars: serde_yaml::Mapping,
}

/// deploy.yml plus every role it names.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// Project root.
    pub(crate) root: PathBuf,
    /// Parsed deploy.yml.
    pub(crate) file: ProjectFile,
    /// Roles by name, in phase order.
    pub(crate) roles: IndexMap<String, Role>,
}

impl Project {
    /// Load deploy.yml and its roles from `root`.
    pub(crate) fn load(root: &Path, warnings: &mut Vec<crate::load::yaml::Warning>) -> Result<Project> {
        let path = root.join("deploy.yml");
        if !path.exists() {
            return Err(Error::invalid(&path, "not found").hinted(
                "run deploy from the root of a deploy repository (the directory holding deploy.yml), or pass --root DIR",
            ));
        }
        let text = crate::load::yaml::read_text(&path)?;
        warnings.extend(crate::load::yaml::yaml11_bool_warnings(&path, &text));
        let file: ProjectFile = crate::load::yaml::parse(&path, &text)?;
        let mut roles = IndexMap::new();
        for phase in &file.phases {
            for r in &phase.roles {
                if roles.contains_key(r) {
                    continue;
                }
                roles.insert(r.clone(), load_role(root, r, warnings)?);
            }
        }
        for (name, t) in &file.toggles {
            for r in &t.roles {
                if !roles.contains_key(r) {
                    return Err(Error::invalid(
                        &path,
                        format!("toggle `{name}` names role `{r}`, which no phase lists"),
                    ));
                }
            }
        }
        Ok(Project { root: root.to_path_buf(), file, roles })
    }
}

fn load_role(root: &Path, name: &str, warnings: &mut Vec<crate::load::yaml::Warning>) -> Result<Role> {
    let dir = root.join("roles").join(name);
    let spec_path = dir.join("role.yml");
    if !spec_path.exists() {
        return Err(Error::invalid(&spec_path, format!("role `{name}` is named in deploy.yml but has no role.yml")));
    }
    let text = crate::load::yaml::read_text(&spec_path)?;
    warnings.extend(crate::load::yaml::yaml11_bool_warnings(&spec_path, &text));
    check_unquoted_modes(&spec_path, &text)?;
    let spec: RoleFile = crate::load::yaml::parse(&spec_path, &text)?;
    let defaults = crate::load::yaml::vars_mapping(
        &[dir.join("defaults.yml"), dir.join("defaults/main.yml")],
        "defaults",
        warnings,
    )?;
    let vars = crate::load::yaml::vars_mapping(&[dir.join("vars.yml"), dir.join("vars/main.yml")], "vars", warnings)?;
    for h in &spec.health {
        let n = [h.http.is_some(), h.tcp.is_some(), h.command.is_some()].iter().filter(|b| **b).count();
        if n != 1 {
            return Err(Error::invalid(&spec_path, "a health check needs exactly one of http, tcp, command"));
        }
    }
    for p in &spec.preflight {
        let n = [p.that.is_some(), p.command.is_some(), !p.healthy.is_empty()].iter().filter(|b| **b).count();
        if n != 1 {
            return Err(Error::invalid(&spec_path, "a preflight check needs exactly one of that, command, healthy"));
        }
        let bad =
            p.healthy.iter().filter(|s| !is_template(s)).find(|s| s.split('/').filter(|x| !x.is_empty()).count() != 2);
        if let Some(bad) = bad {
            return Err(Error::invalid(&spec_path, format!("preflight healthy: `{bad}` is not `project/service`")));
        }
    }
    for f in &spec.files {
        let n = [f.template.is_some(), f.src.is_some(), f.content.is_some()].iter().filter(|b| **b).count();
        if n != 1 {
            return Err(Error::invalid(
                &spec_path,
                format!("file `{}`: give exactly one of template, src, content", f.dest),
            ));
        }
    }
    crate::load::system::check(&spec, &spec_path, &text)?;
    Ok(Role { name: name.into(), dir, spec, spec_path, text, defaults, vars })
}

/// `mode: 0644` unquoted: our YAML 1.2 parser would read it differently from
/// Ansible's YAML 1.1 one, so it is refused with the line to fix.
pub(crate) fn check_unquoted_modes(path: &Path, text: &str) -> Result<()> {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start().trim_start_matches("- ").trim_start();
        if let Some(v) = t.strip_prefix("mode:") {
            let v = v.split(" #").next().unwrap_or("").trim();
            if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
                return Err(Error::Invalid {
                    path: path.into(),
                    line: Some(i + 1),
                    message: format!(
                        "mode {v} is a YAML integer; write it as a quoted string like \"{}\" (0644 means different things in YAML 1.1 and 1.2)",
                        if v.starts_with('0') { v.to_string() } else { format!("0{v}") }
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Check a destination path: absolute, normalised, printable in our
/// tab-separated protocol with the host.
pub(crate) fn check_dest(path: &str) -> std::result::Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("path `{path}` must be absolute"));
    }
    if path.len() > 1 && path.ends_with('/') {
        return Err(format!("path `{path}` must not end with /"));
    }
    if path.split('/').any(|c| c == ".." || c == ".") || path.contains("//") {
        return Err(format!("path `{path}` must be normalised (no ., .. or //)"));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!("path `{path}` contains a control character or backslash"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_mode_is_an_error() {
        let e = check_unquoted_modes(Path::new("role.yml"), "files:\n  - dest: /a\n    content: x\n    mode: 0644\n")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("role.yml:4:"), "{s}");
        let e = crate::load::yaml::parse::<RoleFile>(
            Path::new("role.yml"),
            "files:\n  - dest: /a\n    content: x\n    mode: 644\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("quoted string"), "{e}");
        assert!(s.contains("quoted string"), "{s}");
    }

    #[test]
    fn unknown_key_names_allowed_keys() {
        let e = crate::load::yaml::parse::<RoleFile>(Path::new("role.yml"), "files:\n  - dest: /a\n    contnet: x\n")
            .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("unknown field `contnet`") && s.contains("expected one of"), "{s}");
        assert!(s.starts_with("role.yml:3:"), "{s}");
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("755"), Ok(0o755));
        assert!(parse_mode("0999").is_err());
        assert!(check_dest("/etc/../x").is_err());
        assert!(check_dest("etc/x").is_err());
        assert!(check_dest("/etc/x").is_ok());
    }
}

//! role.yml's host resources beyond files: packages, systemd units, users
//! and groups, sysctl values, cron jobs, lines in unmanaged files, and
//! guarded commands. The schema only; `render::system` turns them into the
//! desired state of a host.

use serde::Deserialize;

use crate::load::project::{Duration, Id, Mode, Templ};

/// Present or absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Presence {
    /// It must exist.
    #[default]
    Present,
    /// It must not exist.
    Absent,
}

/// How a package change is undone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RevertPolicy {
    /// Removed when installed, downgraded when the archive still has the
    /// old version; a change that cannot be undone is refused under a
    /// dead-man switch.
    #[default]
    Auto,
    /// Left as it is by a revert, on purpose (allowed under a dead-man switch).
    None,
}

/// `packages:` an apt package.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PackageSpec {
    /// Package name (a template).
    pub(crate) name: String,
    /// Exact version (`apt-get install NAME=VERSION`); newest available when absent.
    pub(crate) version: Option<String>,
    /// present (default) or absent.
    #[serde(default)]
    pub(crate) state: Presence,
    /// auto (default) or none.
    #[serde(default)]
    pub(crate) revert: RevertPolicy,
    /// A condition over the host's variables (a Jinja expression).
    pub(crate) when: Option<String>,
}

/// started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UnitState {
    /// Running (`active`).
    Started,
    /// Not running.
    Stopped,
}

/// `units:` a systemd unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnitSpec {
    /// Unit name with its suffix (`app.service`).
    pub(crate) name: String,
    /// The unit file from a template; without template, src or content the
    /// unit is one the host already has (a package's).
    pub(crate) template: Option<String>,
    /// The unit file from files/.
    pub(crate) src: Option<String>,
    /// The unit file inline.
    pub(crate) content: Option<String>,
    /// Enabled at boot.
    pub(crate) enabled: Option<bool>,
    /// started or stopped.
    pub(crate) state: Option<UnitState>,
    /// Managed paths whose change restarts the unit.
    #[serde(default)]
    pub(crate) restart_on: Vec<String>,
    /// Managed paths whose change reloads it (`systemctl reload`).
    #[serde(default)]
    pub(crate) reload_on: Vec<String>,
    /// How long it may take to be active after a start or restart.
    #[serde(default = "default_unit_timeout")]
    pub(crate) timeout: Duration,
    /// system (default) or user: a unit of `user`'s own systemd instance,
    /// its file in ~/.config/systemd/user (the user lingers, so it runs
    /// without a login).
    #[serde(default)]
    pub(crate) scope: UnitScope,
    /// The user of a `scope: user` unit.
    pub(crate) user: Option<String>,
    /// A condition over the host's variables.
    pub(crate) when: Option<String>,
}

/// Whose systemd runs a unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UnitScope {
    /// The system's (PID 1).
    #[default]
    System,
    /// A user's own (`systemctl --user`).
    User,
}

fn default_unit_timeout() -> Duration {
    Duration(30)
}

/// `users:` a local user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserSpec {
    /// Login name.
    pub(crate) name: String,
    /// present (default) or absent.
    #[serde(default)]
    pub(crate) state: Presence,
    /// Numeric uid.
    pub(crate) uid: Option<Templ<u32>>,
    /// Primary group (name); a group of the user's name when absent.
    pub(crate) group: Option<String>,
    /// Supplementary groups, exactly (the user leaves the others).
    pub(crate) groups: Option<Vec<String>>,
    /// Login shell.
    pub(crate) shell: Option<String>,
    /// Home directory (created with the user).
    pub(crate) home: Option<String>,
    /// A system account (`useradd --system`).
    #[serde(default)]
    pub(crate) system: bool,
    /// Public keys for ~/.ssh/authorized_keys.
    #[serde(default)]
    pub(crate) authorized_keys: Vec<String>,
    /// true: authorized_keys holds exactly these keys (a managed file);
    /// false (default): these keys are present, others are left alone.
    #[serde(default)]
    pub(crate) exclusive_keys: bool,
    /// A condition over the host's variables.
    pub(crate) when: Option<String>,
}

/// `groups:` a local group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupSpec {
    /// Group name.
    pub(crate) name: String,
    /// present (default) or absent.
    #[serde(default)]
    pub(crate) state: Presence,
    /// Numeric gid.
    pub(crate) gid: Option<Templ<u32>>,
    /// A system group.
    #[serde(default)]
    pub(crate) system: bool,
    /// A condition over the host's variables.
    pub(crate) when: Option<String>,
}

/// `sysctl:` a kernel parameter, persisted in a file of /etc/sysctl.d and
/// set live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SysctlSpec {
    /// Key (`net.ipv4.ip_forward`).
    pub(crate) name: String,
    /// Value (a number or string; whitespace-separated parts for vectors).
    pub(crate) value: serde_yaml::Value,
    /// The file in /etc/sysctl.d (default: 60-deploy-ROLE.conf).
    pub(crate) file: Option<String>,
    /// A condition over the host's variables.
    pub(crate) when: Option<String>,
}

/// `cron:` a job in a file of /etc/cron.d.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CronSpec {
    /// The job's name (a comment above it).
    pub(crate) name: String,
    /// Five fields or a @keyword (`@daily`).
    pub(crate) schedule: String,
    /// The user it runs as.
    #[serde(default = "default_cron_user")]
    pub(crate) user: String,
    /// The command line.
    pub(crate) job: String,
    /// The file in /etc/cron.d (default: deploy-ROLE); jobs naming the same
    /// file share it.
    pub(crate) file: Option<String>,
    /// A condition over the host's variables.
    pub(crate) when: Option<String>,
}

fn default_cron_user() -> String {
    "root".into()
}

/// `lines:` one line of a file deploy does not otherwise manage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineSpec {
    /// The file.
    pub(crate) path: String,
    /// A (Python-syntax) regular expression: the last line it matches is
    /// replaced by `line` (present) or every line it matches removed (absent).
    pub(crate) regexp: Option<String>,
    /// The line's text.
    pub(crate) line: Option<String>,
    /// present (default) or absent.
    #[serde(default)]
    pub(crate) state: Presence,
    /// Create the file when it is missing (else a missing file is an error).
    #[serde(default)]
    pub(crate) create: bool,
    /// A condition over the host's variables.
    pub(crate) when: Option<String>,
}

/// `commands:` the escape hatch: an argv run on the host when its guard says so.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandSpec {
    /// What the plan calls it.
    pub(crate) name: Option<String>,
    /// The argument list (each a template), or one command line, split
    /// into words after it is rendered (as Ansible's command module does);
    /// no shell unless you run one.
    pub(crate) run: RunSpec,
    /// Skipped when this path exists.
    pub(crate) creates: Option<String>,
    /// Run only when this path exists.
    pub(crate) removes: Option<String>,
    /// Skipped when this read-only shell command exits 0 ("already done").
    pub(crate) unless: Option<String>,
    /// Run only when this read-only shell command exits 0.
    pub(crate) onlyif: Option<String>,
    /// Run on every deploy (no guard), on purpose.
    #[serde(default)]
    pub(crate) always: bool,
    /// Seconds it may take.
    #[serde(default = "default_command_timeout")]
    pub(crate) timeout: Duration,
    /// A condition over the host's variables.
    pub(crate) when: Option<String>,
}

/// A command: its words, or a line split into words once rendered.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a list of arguments, or one command line")]
pub(crate) enum RunSpec {
    /// `[systemctl, daemon-reload]`: each word a template.
    Argv(Vec<String>),
    /// `dd if=/dev/zero of={{ swap_file }} bs=1M`: rendered, then split as a
    /// shell splits words (quotes, backslashes), with nothing expanded.
    Line(String),
}

impl RunSpec {
    /// The words as written (a line as one), for messages.
    pub(crate) fn written(&self) -> Vec<String> {
        match self {
            RunSpec::Argv(v) => v.clone(),
            RunSpec::Line(l) => vec![l.clone()],
        }
    }
}

fn default_command_timeout() -> Duration {
    Duration(300)
}

/// The 1-based line of item `index` of the top-level list `section` in
/// role.yml's text, for errors the YAML parser cannot place.
pub(crate) fn item_line(text: &str, section: &str, index: usize) -> Option<usize> {
    let mut lines = text.lines().enumerate();
    lines.find(|(_, l)| l.trim_end() == format!("{section}:"))?;
    let mut indent: Option<usize> = None;
    let mut seen = 0;
    for (i, l) in lines {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = l.len() - t.len();
        if ind == 0 && !t.starts_with('-') {
            return None;
        }
        if (t.starts_with("- ") || t == "-") && *indent.get_or_insert(ind) == ind {
            if seen == index {
                return Some(i + 1);
            }
            seen += 1;
        }
    }
    None
}

/// The line of `key` in item `index` of `section` (the item's own line
/// when the key is not written there, or is inherited).
pub(crate) fn key_line(text: &str, section: &str, index: usize, key: &str) -> Option<usize> {
    let start = item_line(text, section, index)?;
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.get(start - 1)?;
    let indent = first.len() - first.trim_start().len();
    let wanted = format!("{key}:");
    for (i, l) in lines.iter().enumerate().skip(start - 1) {
        let t = l.trim_start();
        if i >= start && !t.is_empty() && !t.starts_with('#') && l.len() - t.len() <= indent {
            break;
        }
        if t.trim_start_matches("- ").trim_start().starts_with(&wanted) {
            return Some(i + 1);
        }
    }
    Some(start)
}

/// A unit's file comes from one place, and a user unit names its user.
fn check_units(units: &[UnitSpec]) -> Result<(), (usize, String)> {
    for (i, u) in units.iter().enumerate() {
        if [u.template.is_some(), u.src.is_some(), u.content.is_some()].iter().filter(|b| **b).count() > 1 {
            return Err((i, format!("unit `{}`: give at most one of template, src, content", u.name)));
        }
        match (u.scope, &u.user) {
            (UnitScope::User, None) => {
                return Err((i, format!("unit `{}`: `scope: user` needs `user:`, whose systemd runs it", u.name)))
            }
            (UnitScope::System, Some(_)) => {
                return Err((i, format!("unit `{}`: `user:` is for `scope: user` units", u.name)))
            }
            _ => {}
        }
    }
    Ok(())
}

/// What the YAML schema cannot say about the resources of one role.
pub(crate) fn check(
    spec: &crate::load::project::RoleFile,
    path: &std::path::Path,
    text: &str,
) -> crate::error::Result<()> {
    let err = |section: &str, i: usize, message: String| crate::error::Error::Invalid {
        path: path.into(),
        line: item_line(text, section, i),
        message,
    };
    check_units(&spec.units).map_err(|(i, m)| err("units", i, m))?;
    for (i, c) in spec.commands.iter().enumerate() {
        let run = c.run.written();
        let label = c.name.clone().unwrap_or_else(|| run.join(" ").lines().next().unwrap_or_default().to_string());
        if run.is_empty() || run[0].trim().is_empty() {
            return Err(err(
                "commands",
                i,
                "a command needs `run:`, its argument list (`run: [systemctl, daemon-reload]`)".into(),
            ));
        }
        let guards = [&c.creates, &c.removes, &c.unless, &c.onlyif].iter().filter(|g| g.is_some()).count();
        if guards == 0 && !c.always {
            return Err(err(
                "commands",
                i,
                format!("command `{label}` has no guard, so it would run on every deploy: add creates:, removes:, unless: or onlyif:, or `always: true` if that is meant"),
            ));
        }
        if guards > 0 && c.always {
            return Err(err(
                "commands",
                i,
                format!("command `{label}`: `always: true` and a guard contradict each other"),
            ));
        }
    }
    for (i, l) in spec.lines.iter().enumerate() {
        match (l.state, &l.regexp, &l.line) {
            (Presence::Present, _, None) => {
                return Err(err(
                    "lines",
                    i,
                    format!("lines `{}`: `line:` is required (the text the line must have)", l.path),
                ))
            }
            (Presence::Absent, None, None) => {
                return Err(err(
                    "lines",
                    i,
                    format!("lines `{}`: state absent needs `regexp:` or `line:` (what to remove)", l.path),
                ))
            }
            _ => {}
        }
        if l.line.as_deref().is_some_and(|t| t.contains('\n')) {
            return Err(err("lines", i, format!("lines `{}`: `line:` must be one line", l.path)));
        }
    }
    for (i, u) in spec.users.iter().enumerate() {
        if u.exclusive_keys && u.authorized_keys.is_empty() && u.state == Presence::Present {
            return Err(err(
                "users",
                i,
                format!(
                    "user `{}`: `exclusive_keys: true` with no authorized_keys would remove every key of the user",
                    u.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_lines_are_found_under_their_section() {
        let t = "files:\n  - dest: /a\ncommands:\n  # first\n  - run: [a]\n    creates: /x\n  - run: [b]\nunits:\n- name: x\n";
        assert_eq!(item_line(t, "commands", 0), Some(5));
        assert_eq!(item_line(t, "commands", 1), Some(7));
        assert_eq!(item_line(t, "commands", 2), None);
        assert_eq!(item_line(t, "units", 0), Some(9));
        assert_eq!(key_line(t, "commands", 0, "creates"), Some(6));
        assert_eq!(key_line(t, "commands", 0, "run"), Some(5));
        assert_eq!(key_line(t, "commands", 1, "creates"), Some(7));
    }
}

/// A symbolic link resource: PATH points at TARGET (Ansible's `file:
/// state=link`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkSpec {
    /// Absolute path of the link on the host.
    pub(crate) path: String,
    /// What it points at, as `ln -s` takes it (absolute, or relative to the
    /// link's directory); it need not exist.
    pub(crate) target: String,
    /// A condition over the host's variables.
    #[serde(default)]
    pub(crate) when: Option<String>,
}

/// A directory resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirSpec {
    /// Absolute path on the host.
    pub(crate) path: String,
    /// Owner by name or number.
    pub(crate) owner: Option<Id>,
    /// Group by name or number.
    pub(crate) group: Option<Id>,
    /// Mode as a quoted octal string.
    pub(crate) mode: Option<Templ<Mode>>,
    /// A condition over the host's variables.
    #[serde(default)]
    pub(crate) when: Option<String>,
}

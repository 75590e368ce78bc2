//! A file, link or created line file needs its directory. The apply makes
//! the directories `dirs:` declares (and their missing parents), and a new
//! user's home; it does not make a file's directory on its own, because
//! its owner and mode are the role's to say (a secrets directory is 0700).
//! So a path this plan creates whose directory is neither on the host nor
//! made by this deploy before it is refused here, with what to add, rather
//! than planned and then failed and rolled back by the apply.
//!
//! A package, command or compose project of an earlier phase may make the
//! directory (installing nginx makes /etc/nginx/conf.d): then the plan
//! says what it relies on instead of refusing.

use super::{kind_name, HostPlan};
use crate::load::system::Presence;
use crate::plan::state::{Kind, Remote};
use crate::render::DesiredHost;

/// The directory of `path`, None for `/` itself.
fn parent(path: &str) -> Option<&str> {
    let p = &path[..path.rfind('/')?];
    (!p.is_empty()).then_some(p)
}

/// Paths this deploy would create, with their role and phase.
fn created<'a>(desired: &'a DesiredHost, remote: &Remote) -> Vec<(&'a str, &'a str, usize)> {
    let files = desired.files.iter().filter(|f| f.selected).map(|f| (f.dest.as_str(), f.role.as_str(), f.phase));
    let links = desired.links.iter().filter(|l| l.selected).map(|l| (l.path.as_str(), l.role.as_str(), l.phase));
    let lines = desired
        .system
        .lines
        .iter()
        .filter(|l| l.selected && l.create && l.state == Presence::Present)
        .map(|l| (l.path.as_str(), l.role.as_str(), l.phase));
    files.chain(links).chain(lines).filter(|(p, _, _)| !remote.paths.contains_key(*p)).collect()
}

/// Something of a phase `before` may make directories.
fn maker(desired: &DesiredHost, before: impl Fn(usize) -> bool) -> Option<String> {
    let s = &desired.system;
    let pkg = s.packages.iter().find(|p| p.selected && before(p.phase) && p.state == Presence::Present);
    let cmd = s.commands.iter().find(|c| c.selected && before(c.phase));
    let compose = desired.compose.iter().find(|c| before(c.phase));
    pkg.map(|p| format!("package {}", p.name))
        .or_else(|| cmd.map(|c| format!("command `{}`", c.label)))
        .or_else(|| compose.map(|c| format!("compose project {}", c.project)))
}

pub(crate) fn check(desired: &DesiredHost, remote: &Remote, plan: &mut HostPlan) -> Result<(), String> {
    let mut noted: Vec<&str> = Vec::new();
    for (path, role, phase) in created(desired, remote) {
        let Some(dir) = parent(path) else { continue };
        // the probe names each needed directory the host lacks
        match remote.not_dirs.get(dir).map(String::as_str) {
            None => continue,
            Some("none") => {}
            Some(k) => {
                let what = match k {
                    "file" => kind_name(Kind::File),
                    "link" => "a symbolic link to no directory",
                    _ => kind_name(Kind::Other),
                };
                return Err(format!(
                    "{path}: its directory {dir} is {what} on the host; remove it by hand or change role `{role}`"
                ));
            }
        }
        // a declared directory makes it, or one below it (its missing parents are made too)
        let below = format!("{dir}/");
        let declared = desired.dirs.iter().find(|d| (d.path == dir || d.path.starts_with(&below)) && d.phase <= phase);
        match declared {
            Some(d) if d.selected => continue,
            Some(d) => {
                return Err(format!(
                    "{path}: its directory {dir} is not on the host, and role `{}` makes it, which this run leaves out; add it to --role",
                    d.role
                ))
            }
            None => {}
        }
        let home = |u: &&crate::render::system::DesiredUser| {
            u.home.clone().unwrap_or_else(|| format!("/home/{}", u.name)) == dir
        };
        let homes = desired
            .system
            .users
            .iter()
            .filter(|u| u.selected && !u.system && u.state == Presence::Present && u.phase <= phase);
        if homes.into_iter().any(|u| home(&u)) {
            continue;
        }
        if let Some(maker) = maker(desired, |p| p < phase) {
            if !noted.contains(&dir) {
                noted.push(dir);
                plan.notes.push(format!(
                    "{path}: its directory {dir} is not on the host yet; the apply relies on an earlier phase making it ({maker}, say)"
                ));
            }
            continue;
        }
        // the same phase's packages and commands run after its files
        let later = maker(desired, |p| p == phase)
            .map(|m| {
                format!(", or move {m} to an earlier phase: a phase's files go in before its packages and commands")
            })
            .unwrap_or_default();
        return Err(format!(
            "{path}: its directory {dir} is not on the host, and nothing in this deploy makes it first; add `- path: {dir}` (with its owner and mode) to `dirs:` of role `{role}`{later}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parent;
    use crate::load::system::Presence;
    use crate::plan::plan_host;
    use crate::plan::tests::{host, remote};
    use crate::render::system::{DesiredPackage, DesiredUser};
    use crate::render::{DesiredDir, DesiredFile};

    #[test]
    fn the_directory_of_a_path() {
        assert_eq!(parent("/srv/app/x.conf"), Some("/srv/app"));
        assert_eq!(parent("/x"), None);
    }

    fn dir(path: &str, phase: usize, selected: bool) -> DesiredDir {
        DesiredDir { path: path.into(), role: "d".into(), owner: None, group: None, mode: None, phase, selected }
    }

    // A file whose directory is not on the host: refused at plan time with
    // what to add, unless this deploy makes it first or may make it.
    #[test]
    fn a_new_file_needs_its_directory_on_the_host_or_made_first() {
        let mut d = host();
        d.files = vec![DesiredFile::generated("/srv/new/x.conf", "r", "test", b"x".to_vec(), 1)];
        let on_host = remote("nodir\tnone\t/srv/new\n");
        assert_eq!(
            plan_host(&d, &on_host).unwrap_err(),
            "/srv/new/x.conf: its directory /srv/new is not on the host, and nothing in this deploy makes it first; add `- path: /srv/new` (with its owner and mode) to `dirs:` of role `r`"
        );
        let file_there = remote("nodir\tfile\t/srv/new\n");
        assert_eq!(
            plan_host(&d, &file_there).unwrap_err(),
            "/srv/new/x.conf: its directory /srv/new is a file on the host; remove it by hand or change role `r`"
        );
        assert!(plan_host(&d, &remote("")).is_ok());
        // a dirs: entry of its phase or an earlier one makes it; a later one does not
        for (phase, ok) in [(0, true), (1, true), (2, false)] {
            d.dirs = vec![dir("/srv/new", phase, true)];
            assert_eq!(plan_host(&d, &on_host).is_ok(), ok, "dir in phase {phase}");
        }
        // as is a directory below it, whose missing parents the apply makes
        d.dirs = vec![dir("/srv/new/data", 1, true)];
        assert!(plan_host(&d, &on_host).is_ok());
        d.dirs = vec![dir("/srv/newer", 1, true)];
        assert!(plan_host(&d, &on_host).is_err());
        d.dirs = vec![dir("/srv/new", 0, false)];
        assert_eq!(
            plan_host(&d, &on_host).unwrap_err(),
            "/srv/new/x.conf: its directory /srv/new is not on the host, and role `d` makes it, which this run leaves out; add it to --role"
        );
        d.dirs.clear();
        // a new user's home
        let user = DesiredUser {
            name: "app".into(),
            state: Presence::Present,
            uid: None,
            group: None,
            groups: None,
            shell: None,
            home: Some("/srv/new".into()),
            system: false,
            role: "u".into(),
            phase: 1,
            selected: true,
        };
        d.system.users = vec![user];
        assert!(plan_host(&d, &on_host).is_ok());
        d.system.users.clear();
        // a package of an earlier phase may make it: said, not refused
        d.system.packages = vec![DesiredPackage {
            name: "nginx".into(),
            version: None,
            state: Presence::Present,
            no_revert: false,
            role: "p".into(),
            phase: 0,
            selected: true,
        }];
        let nginx = remote("nodir\tnone\t/srv/new\npkg\tnginx\t-\t1.22\t1.22\n");
        let plan = plan_host(&d, &nginx).unwrap();
        assert_eq!(
            plan.notes,
            ["/srv/new/x.conf: its directory /srv/new is not on the host yet; the apply relies on an earlier phase making it (package nginx, say)"]
        );
        // in the same phase it comes too late: said with the refusal
        d.system.packages[0].phase = 1;
        assert_eq!(
            plan_host(&d, &nginx).unwrap_err(),
            "/srv/new/x.conf: its directory /srv/new is not on the host, and nothing in this deploy makes it first; add `- path: /srv/new` (with its owner and mode) to `dirs:` of role `r`, or move package nginx to an earlier phase: a phase's files go in before its packages and commands"
        );
    }
}

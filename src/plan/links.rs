//! Symbolic links (Ansible's `file: state=link`): made where missing,
//! pointed again where they point elsewhere. A path that is something else
//! on the host is a conflict, as for files and directories: deploy does not
//! replace a file or a directory by a link.

use super::{conflict, expected, Action, Change, HostPlan, Resource};
use crate::plan::state::{Kind, Remote};
use crate::render::DesiredHost;

pub(crate) fn plan_links(desired: &DesiredHost, remote: &Remote, plan: &mut HostPlan) -> Result<(), String> {
    for l in desired.links.iter().filter(|l| l.selected) {
        let e = remote.paths.get(&l.path);
        let base = Change::at(&l.path, &desired.roles_of(&l.path, &l.role), Resource::Link, expected(e), l.phase);
        match e {
            None => plan.changes.push(Change { reasons: vec![format!("missing, -> {}", l.target)], ..base }),
            Some(e) if e.kind != Kind::Link => {
                return Err(conflict(&l.path, e.kind, "a link", &l.role));
            }
            Some(e) if e.target.as_deref() == Some(l.target.as_str()) => plan.unchanged += 1,
            Some(e) => {
                let was = e.target.as_deref().unwrap_or("?");
                let reasons = vec![format!("target {was} -> {}", l.target)];
                plan.changes.push(Change { action: Action::Update, reasons, ..base });
            }
        }
    }
    Ok(())
}

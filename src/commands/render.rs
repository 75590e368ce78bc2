//! `deploy render ENV [--host H] --out DIR`: the rendered files of hosts
//! written locally, with a manifest; touches no host.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::engine::DeployArgs;
use crate::error::{exit, Error, Result};
use crate::render::{DesiredHost, Renderer};

pub(crate) fn render(
    args: &DeployArgs,
    host: Option<String>,
    out: &Path,
    force: bool,
    facts: Option<&Path>,
) -> Result<u8> {
    let loaded = Renderer::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let hosts = match host {
        Some(h) => vec![h],
        None => loaded.hosts.clone(),
    };
    let facts = facts.map(super::facts::read_file).transpose()?;
    let desired: Vec<DesiredHost> = hosts
        .iter()
        .map(|h| {
            let f = facts.as_ref().map(|f| loaded.fact_vars(h, f.of(h))).unwrap_or_default();
            loaded.render_host_with(h, None, &f)
        })
        .collect::<Result<_>>()?;
    prepare_out(out, force)?;
    crate::report::warnings(&loaded.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(), &loaded.redactor);
    for d in &desired {
        let w: Vec<String> = d.warnings.iter().map(|w| format!("host {}: {w}", d.host)).collect();
        crate::report::warnings(&w, &loaded.redactor);
        write_host(out, d)?;
        crate::report::line(&format!(
            "{}: {} files, {} directories written under {}",
            d.host,
            d.files.len(),
            d.dirs.len(),
            out.join(&d.host).display()
        ));
    }
    Ok(exit::OK)
}

/// An empty output directory: a non-empty one only with `--force`, which
/// clears it (a stale file from an earlier render would pass for current).
fn prepare_out(out: &Path, force: bool) -> Result<()> {
    let non_empty = std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(false);
    if non_empty && !force {
        return Err(Error::Usage(format!("{} is not empty", out.display()))
            .hinted("render into an empty directory, or pass --force to clear it first"));
    }
    if non_empty {
        std::fs::remove_dir_all(out).map_err(|e| Error::io(out, e))?;
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))
}

/// A host's files under OUT/HOST (secret ones 0600, as only their owner may
/// read them), and OUT/HOST.manifest: path, mode, owner:group, sha256.
fn write_host(out: &Path, d: &DesiredHost) -> Result<()> {
    let base = out.join(&d.host);
    let mut manifest = String::new();
    for dir in &d.dirs {
        let p = base.join(dir.path.trim_start_matches('/'));
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        manifest.push_str(&format!("{}\tdir\t{}\t{}\t-\n", dir.path, mode(dir.mode), owner(&dir.owner, &dir.group)));
    }
    for f in &d.files {
        let p = base.join(f.dest.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let perm = if f.secret { 0o600 } else { 0o644 };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(perm)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        f.write_to(&mut file).map_err(|e| Error::io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(perm)).map_err(|e| Error::io(&p, e))?;
        manifest.push_str(&format!(
            "{}\tfile\t{}\t{}\t{}\n",
            f.dest,
            mode(f.mode),
            owner(&f.owner, &f.group),
            f.sha256().map_err(|e| Error::invalid(&p, e))?
        ));
    }
    let m = out.join(format!("{}.manifest", d.host));
    std::fs::write(&m, manifest).map_err(|e| Error::io(&m, e))
}

fn mode(m: Option<u32>) -> String {
    m.map(|m| format!("{m:04o}")).unwrap_or_else(|| "-".into())
}

fn owner(o: &Option<crate::load::project::Id>, g: &Option<crate::load::project::Id>) -> String {
    let s = |x: &Option<crate::load::project::Id>| x.as_ref().map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    format!("{}:{}", s(o), s(g))
}

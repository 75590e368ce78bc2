//! `deploy render ENV [--host H] --out DIR`: the rendered files of hosts
//! written locally; touches no host.

use std::path::Path;

use crate::engine::DeployArgs;
use crate::error::{exit, Error, Result};
use crate::render::Renderer;

pub(crate) fn render(args: &DeployArgs, host: Option<String>, out: &Path) -> Result<u8> {
    let loaded = Renderer::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let hosts = match host {
        Some(h) => vec![h],
        None => loaded.hosts.clone(),
    };
    crate::report::warnings(&loaded.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(), &loaded.redactor);
    for h in &hosts {
        let d = loaded.render_host(h, None)?;
        let w: Vec<String> = d.warnings.iter().map(|w| format!("host {h}: {w}")).collect();
        crate::report::warnings(&w, &loaded.redactor);
        for f in &d.files {
            let p = out.join(h).join(f.dest.trim_start_matches('/'));
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            std::fs::write(&p, &f.bytes).map_err(|e| Error::io(&p, e))?;
        }
        for dir in &d.dirs {
            let p = out.join(h).join(dir.path.trim_start_matches('/'));
            std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
        crate::report::line(&format!(
            "{h}: {} files, {} directories written under {}",
            d.files.len(),
            d.dirs.len(),
            out.join(h).display()
        ));
    }
    Ok(exit::OK)
}

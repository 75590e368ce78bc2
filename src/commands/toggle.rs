//! `deploy NAME-status ENV`: the toggle's state as each host reports it (its
//! state file, the files compared with both renderings, the rules in force,
//! a pending revert), never from local memory.

use crate::engine::{clock, DeployArgs};
use crate::error::{exit, Error, Result};
use crate::render::Renderer as Loaded;
use crate::report::error_text;

pub(crate) async fn toggle_status(args: DeployArgs, name: &str) -> Result<u8> {
    let loaded = Loaded::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let spec = loaded
        .project
        .file
        .toggles
        .get(name)
        .ok_or_else(|| Error::Usage(format!("no toggle `{name}` in deploy.yml")))?
        .clone();
    let mut failed = 0;
    for host in &loaded.limit(args.limit.as_deref(), "--limit")? {
        let render = |v: &serde_yaml::Value| {
            loaded.render_host_with(host, Some(&spec.roles), &[(spec.var.clone(), crate::load::yaml::yaml_to_value(v))])
        };
        let (on, off) = (render(&spec.on)?, render(&spec.off)?);
        let files: Vec<&crate::render::DesiredFile> = on.files.iter().filter(|f| f.selected).collect();
        let conn = match crate::remote::ssh::connect(host, &on.connection, &args.ssh).await {
            Ok(c) => c,
            Err(e) => {
                failed += 1;
                crate::report::line(&format!("{host}: {}", error_text(&e)));
                continue;
            }
        };
        let mut argv: Vec<&str> = vec![name];
        argv.extend(files.iter().map(|f| f.dest.as_str()));
        let out = conn.run("deploy-status", crate::remote::status::TOGGLE_STATUS, &argv, None).await?;
        conn.close().await;
        let st = crate::remote::status::parse_toggle_status(&out.stdout)
            .map_err(|m| Error::Remote { host: host.clone(), message: format!("unreadable reply: {m}") })?;
        let matches = |d: &crate::render::DesiredHost| {
            st.hashes
                .iter()
                .filter(|(path, hash)| d.file(path).is_some_and(|f| f.sha256().is_ok_and(|s| s == hash)))
                .count()
        };
        let (on_match, off_match, n) = (matches(&on), matches(&off), files.len());
        let files_say = if on_match == n && off_match != n {
            "ON".to_string()
        } else if off_match == n && on_match != n {
            "OFF".to_string()
        } else {
            format!("neither ({on_match}/{n} files match ON, {off_match}/{n} match OFF)")
        };
        crate::report::line(&format!(
            "{host}: {name} state file says {}; the files on the host are the {files_say} rendering",
            st.state.to_uppercase()
        ));
        if !st.rules.is_empty() {
            crate::report::line("  rules in force:");
            for r in &st.rules {
                crate::report::line(&format!("    {r}"));
            }
        }
        if st.pending.is_empty() {
            crate::report::line("  no revert pending");
        }
        for p in &st.pending {
            crate::report::line(&format!(
                "  a revert is PENDING: deploy {} reverts at {} unless confirmed",
                p.deploy,
                clock(p.deadline)
            ));
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::ERROR })
}

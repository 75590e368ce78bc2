//! `deploy status ENV`: what each host records about deploys, the last one
//! first when the host reverted it.

use crate::engine::{clock, DeployArgs};
use crate::error::{exit, Error, Result};
use crate::render::Renderer as Loaded;
use crate::report::error_text;

pub(crate) async fn host_status(args: DeployArgs) -> Result<u8> {
    let loaded = Loaded::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let mut failed = 0;
    for host in loaded.hosts.iter().filter(|h| args.limit.as_ref().is_none_or(|l| l.contains(h))) {
        let d = loaded.render_host(host, None)?;
        let conn = match crate::remote::ssh::connect(host, &d.connection, &args.ssh).await {
            Ok(c) => c,
            Err(e) => {
                failed += 1;
                crate::report::line(&format!("{host}: {}", error_text(&e)));
                continue;
            }
        };
        let out = conn.run("deploy-status", crate::remote::status::HOST_STATUS, &[], None).await?;
        conn.close().await;
        let st = crate::remote::status::parse_host_status(&out.stdout)
            .map_err(|m| Error::Remote { host: host.clone(), message: format!("unreadable reply: {m}") })?;
        crate::report::line(&format!("{host}:"));
        if let Some(last) = st.audit.last().filter(|l| l.contains(" REVERTED ")) {
            crate::report::line(&format!(
                "  the last deploy was REVERTED by the host's dead-man switch (never confirmed): {last}"
            ));
        }
        match &st.lock {
            Some(who) => crate::report::line(&format!("  locked by {who}")),
            None => crate::report::line("  not locked"),
        }
        for p in &st.pending {
            crate::report::line(&format!(
                "  a revert is PENDING: deploy {} reverts at {} unless confirmed",
                p.deploy,
                clock(p.deadline)
            ));
        }
        for (name, v) in &st.toggles {
            crate::report::line(&format!("  toggle {name}: {v}"));
        }
        if !st.audit.is_empty() {
            crate::report::line("  recent:");
            for a in &st.audit {
                crate::report::line(&format!("    {a}"));
            }
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::ERROR })
}

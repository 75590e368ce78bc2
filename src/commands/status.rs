//! `deploy status ENV`: what each host records about deploys, the last one
//! first when the host reverted it.

use crate::engine::{clock, DeployArgs};
use crate::error::{exit, Result};
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
        let out = conn.run("deploy-status", crate::remote::HOST_STATUS, &[], None).await?;
        conn.close().await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |k: &str| text.lines().filter_map(|l| l.strip_prefix(k)).map(String::from).collect::<Vec<_>>();
        let audit = field("A\t");
        crate::report::line(&format!("{host}:"));
        if let Some(last) = audit.last().filter(|l| l.contains(" REVERTED ")) {
            crate::report::line(&format!(
                "  the last deploy was REVERTED by the host's dead-man switch (never confirmed): {last}"
            ));
        }
        match field("lock\t").first() {
            Some(who) => crate::report::line(&format!("  locked by {who}")),
            None => crate::report::line("  not locked"),
        }
        for p in field("pending\t") {
            let (id, when) = p.split_once('\t').unwrap_or((&p, "0"));
            crate::report::line(&format!(
                "  a revert is PENDING: deploy {id} reverts at {} unless confirmed",
                clock(when.parse().unwrap_or(0))
            ));
        }
        for t in field("toggle\t") {
            let (name, v) = t.split_once('\t').unwrap_or((&t, ""));
            crate::report::line(&format!("  toggle {name}: {v}"));
        }
        if !audit.is_empty() {
            crate::report::line("  recent:");
            for a in &audit {
                crate::report::line(&format!("    {a}"));
            }
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::ERROR })
}

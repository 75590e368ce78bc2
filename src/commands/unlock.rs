//! `deploy unlock ENV --host H`: show and release a host's deploy lock
//! (after a killed deploy).

use crate::engine::DeployArgs;
use crate::error::{exit, Result};
use crate::render::Renderer;

pub(crate) async fn unlock(args: &DeployArgs, host: &str) -> Result<u8> {
    let loaded = Renderer::load(&args.root, &args.env, &args.keys, &args.extra)?;
    let d = loaded.render_host(host, None)?;
    let conn = crate::remote::ssh::connect(host, &d.connection, &args.ssh).await?;
    let out = conn.run("deploy-unlock", crate::remote::lock::UNLOCK, &[], None).await?;
    conn.close().await;
    let held = crate::remote::lock::parse_unlock(&out.stdout)
        .map_err(|m| crate::error::Error::Remote { host: host.into(), message: format!("unreadable reply: {m}") })?;
    match held {
        Some(who) => crate::report::line(&format!("{host}: released the lock held by {who}")),
        None => crate::report::line(&format!("{host}: no lock was held")),
    }
    Ok(exit::OK)
}

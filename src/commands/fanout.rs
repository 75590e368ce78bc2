//! Read-only commands that ask every host one thing: one connection and
//! one script each, all hosts at once, replies in inventory order.

use std::sync::Arc;

use crate::engine::DeployArgs;
use crate::error::{Error, Result};
use crate::render::Renderer;

/// The hosts of `args.env` that `args.limit` keeps; an unknown name is an error.
pub(crate) fn selected(loaded: &Renderer, args: &DeployArgs, flag: &str) -> Result<Vec<String>> {
    loaded.limit(args.limit.as_deref(), flag)
}

/// Run `script` (named `name`, with `argv`) on each host; stdout of each.
pub(crate) async fn on_each(
    loaded: &Renderer,
    args: &DeployArgs,
    hosts: &[String],
    name: &'static str,
    script: &'static str,
    argv: Vec<String>,
) -> Result<Vec<Result<Vec<u8>>>> {
    let ssh = Arc::new(args.ssh.clone());
    let argv = Arc::new(argv);
    let mut set = tokio::task::JoinSet::new();
    for (i, host) in hosts.iter().enumerate() {
        // how to reach it is all it needs: nothing is rendered
        let connection = loaded.connection_of(host)?;
        let (host, ssh, argv) = (host.clone(), ssh.clone(), argv.clone());
        set.spawn(async move {
            let run = async {
                let conn = crate::remote::ssh::connect(&host, &connection, &ssh).await?;
                let a: Vec<&str> = argv.iter().map(String::as_str).collect();
                let out = conn.run(name, script, &a, None).await;
                conn.close().await;
                Ok(out?.stdout)
            };
            (i, run.await)
        });
    }
    let mut results: Vec<Option<Result<Vec<u8>>>> = (0..hosts.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        if let Ok((i, r)) = r {
            results[i] = Some(r);
        }
    }
    Ok(results
        .into_iter()
        .zip(hosts)
        .map(|(r, h)| {
            r.unwrap_or_else(|| {
                Err(Error::Remote { host: h.clone(), message: format!("internal error running {name}") })
            })
        })
        .collect())
}

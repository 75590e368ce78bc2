//! SIGINT, SIGTERM and SIGHUP during a deploy, as Terraform handles them:
//! the first one starts nothing new and lets each host finish the step it
//! is in (then the locks are released, an `interrupted` audit line written,
//! and the run exits 130); a second one abandons at once, saying which
//! hosts keep a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

/// Whether the run was asked to stop, and which hosts hold a lock now.
#[derive(Default)]
pub(crate) struct Interrupt {
    /// The environment, for the `deploy unlock` a second signal suggests.
    env: String,
    count: AtomicU8,
    notify: Notify,
    /// Hosts whose lock this run may hold, and whether their dead-man
    /// switch is armed (they revert by themselves if abandoned).
    holding: Mutex<BTreeMap<String, bool>>,
}

impl Interrupt {
    /// Catch the three signals for the rest of the process.
    pub(crate) fn install(env: &str) -> Arc<Interrupt> {
        let me = Arc::new(Interrupt { env: env.to_string(), ..Default::default() });
        let watch = me.clone();
        let kinds = [
            (SignalKind::interrupt(), "SIGINT (Ctrl-C)"),
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::hangup(), "SIGHUP (terminal closed)"),
        ];
        for (kind, name) in kinds {
            let Ok(mut s) = signal(kind) else { continue };
            let watch = watch.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    watch.received(name);
                }
            });
        }
        me
    }

    fn received(&self, name: &str) {
        if self.count.fetch_add(1, Ordering::SeqCst) == 0 {
            crate::report::interrupted(name);
            self.notify.notify_waiters();
            return;
        }
        let holding: Vec<(String, bool)> =
            self.holding.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(h, a)| (h.clone(), *a)).collect();
        crate::report::abandoned(&self.env, &holding);
        std::process::exit(i32::from(crate::error::exit::INTERRUPTED));
    }

    /// A stop was asked for.
    pub(crate) fn requested(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }

    /// Wait until a stop is asked for.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.requested() {
                return;
            }
            notified.await;
        }
    }

    /// `host` may hold its lock from now on (`armed`: under a dead-man switch).
    pub(crate) fn holding(&self, host: &str, armed: bool) {
        self.holding.lock().unwrap_or_else(|e| e.into_inner()).insert(host.to_string(), armed);
    }

    /// `host`'s lock is released (or left to its dead-man switch on purpose).
    pub(crate) fn released(&self, host: &str) {
        self.holding.lock().unwrap_or_else(|e| e.into_inner()).remove(host);
    }
}

//! Staged rollouts: hosts in batches (`--serial N|N%`, a canary batch
//! first), each batch started only when the one before it passed; a
//! rollout stops once more than `max_fail_percentage` of its hosts failed,
//! and says which hosts never started.

/// A batch size: a number of hosts or a percentage of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    Hosts(usize),
    Percent(u8),
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        let bad = || format!("`{s}` is not a number of hosts (3) or a percentage of them (25%)");
        match s.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Ok(Size::Percent(p)),
                _ => Err(bad()),
            },
            None => match s.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Size::Hosts(n)),
                _ => Err(bad()),
            },
        }
    }
}

impl Size {
    /// The number of hosts out of `total`, at least 1 (rounded down, as Ansible does).
    fn of(self, total: usize) -> usize {
        match self {
            Size::Hosts(n) => n,
            Size::Percent(p) => (total * p as usize / 100).max(1),
        }
    }
}

/// How a run rolls out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rollout {
    /// Batch size (None: every host at once).
    pub(crate) serial: Option<Size>,
    /// Hosts in a first batch of their own.
    pub(crate) canary: Option<usize>,
    /// Stop once more than this share of the hosts failed (0: the first failure).
    pub(crate) max_fail_percentage: u8,
}

impl Rollout {
    /// Whether hosts go in more than one batch.
    pub(crate) fn staged(&self) -> bool {
        self.serial.is_some() || self.canary.is_some()
    }

    /// Host indexes 0..n in batches.
    pub(crate) fn batches(&self, n: usize) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        let mut next = 0;
        if let Some(c) = self.canary {
            let c = c.min(n);
            out.push((0..c).collect());
            next = c;
        }
        let size = self.serial.map(|s| s.of(n)).unwrap_or(n).max(1);
        while next < n {
            let end = (next + size).min(n);
            out.push((next..end).collect());
            next = end;
        }
        out
    }

    /// Whether `failed` of `total` hosts crosses the limit.
    pub(crate) fn crossed(&self, failed: usize, total: usize) -> bool {
        failed * 100 > self.max_fail_percentage as usize * total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_as_ansible_serial_makes_them() {
        let r = |serial: Option<&str>, canary| Rollout {
            serial: serial.map(|s| s.parse().unwrap()),
            canary,
            max_fail_percentage: 0,
        };
        assert_eq!(r(Some("1"), None).batches(3), vec![vec![0], vec![1], vec![2]]);
        assert_eq!(r(Some("2"), None).batches(5), vec![vec![0, 1], vec![2, 3], vec![4]]);
        assert_eq!(r(Some("30%"), None).batches(10), vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8], vec![9]]);
        assert_eq!(r(Some("10%"), None).batches(3), vec![vec![0], vec![1], vec![2]], "at least one host");
        assert_eq!(r(None, Some(1)).batches(4), vec![vec![0], vec![1, 2, 3]]);
        assert_eq!(r(Some("2"), Some(1)).batches(4), vec![vec![0], vec![1, 2], vec![3]]);
        assert_eq!(r(None, None).batches(3), vec![vec![0, 1, 2]]);
        assert!("0".parse::<Size>().is_err() && "101%".parse::<Size>().is_err() && "x".parse::<Size>().is_err());
        let m = Rollout { max_fail_percentage: 30, ..Default::default() };
        assert!(!m.crossed(3, 10) && m.crossed(4, 10));
        assert!(Rollout::default().crossed(1, 100));
    }
}

/// `serial:` of one phase: hosts go through the phase in batches, a batch
/// entering it only once every host of the batches before it is through;
/// once a host fails in it, the hosts that have not entered it stop there.
pub(crate) struct PhaseGate {
    batch_of: std::collections::HashMap<String, usize>,
    sizes: Vec<usize>,
    state: std::sync::Mutex<(Vec<usize>, Option<String>)>,
    changed: tokio::sync::Notify,
}

impl PhaseGate {
    /// Batches of `size` over `hosts`, in their order.
    pub(crate) fn new(hosts: &[String], size: Size) -> PhaseGate {
        let n = size.of(hosts.len()).max(1);
        let batch_of = hosts.iter().enumerate().map(|(i, h)| (h.clone(), i / n)).collect();
        let sizes: Vec<usize> = hosts.chunks(n).map(|c| c.len()).collect();
        let state = std::sync::Mutex::new((vec![0; sizes.len()], None));
        PhaseGate { batch_of, sizes, state, changed: tokio::sync::Notify::new() }
    }

    /// Wait for `host`'s turn; Err(the host that failed) when the phase stopped.
    pub(crate) async fn enter(&self, host: &str) -> Result<(), String> {
        let Some(&b) = self.batch_of.get(host) else { return Ok(()) };
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(f) = &st.1 {
                    return Err(f.clone());
                }
                if (0..b).all(|k| st.0[k] >= self.sizes[k]) {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// `host` is through the phase (or will not take it); `failed` stops the batches after it.
    pub(crate) fn leave(&self, host: &str, failed: bool) {
        let Some(&b) = self.batch_of.get(host) else { return };
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.0[b] += 1;
            if failed && st.1.is_none() {
                st.1 = Some(host.to_string());
            }
        }
        self.changed.notify_waiters();
    }
}

/// This host's place in the phases' `serial:` gates: each gate is left once,
/// whatever happens to the host (a panic counts as a failure).
pub(crate) struct Gates {
    host: String,
    gates: Vec<Option<std::sync::Arc<PhaseGate>>>,
    left: Vec<bool>,
    inside: Option<usize>,
}

impl Gates {
    pub(crate) fn new(all: &std::sync::OnceLock<Vec<Option<std::sync::Arc<PhaseGate>>>>, host: &str) -> Gates {
        let gates = all.get().cloned().unwrap_or_default();
        let left = vec![false; gates.len()];
        Gates { host: host.into(), gates, left, inside: None }
    }

    /// Wait to enter phase `p`; Err(the host that failed in it).
    pub(crate) async fn enter(&mut self, p: usize) -> std::result::Result<(), String> {
        if let Some(g) = self.gates.get(p).cloned().flatten() {
            g.enter(&self.host).await?;
            self.inside = Some(p);
        }
        Ok(())
    }

    pub(crate) fn leave(&mut self, p: usize, failed: bool) {
        if let (Some(Some(g)), Some(false)) = (self.gates.get(p), self.left.get(p).copied()) {
            g.leave(&self.host, failed);
            self.left[p] = true;
        }
        if self.inside == Some(p) {
            self.inside = None;
        }
    }

    /// The phase the host is in ends with `failed`; the phases it will not
    /// take let the next batches through.
    pub(crate) fn finish(&mut self, failed: bool) {
        if let Some(p) = self.inside {
            self.leave(p, failed);
        }
        for p in 0..self.gates.len() {
            self.leave(p, false);
        }
    }
}

impl Drop for Gates {
    fn drop(&mut self) {
        self.finish(true);
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_waits_for_the_one_before_and_a_failure_stops_the_rest() {
        let hosts: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let g = std::sync::Arc::new(PhaseGate::new(&hosts, Size::Hosts(1)));
        assert_eq!(g.enter("a").await, Ok(()));
        let g2 = g.clone();
        let b = tokio::spawn(async move { g2.enter("b").await });
        tokio::task::yield_now().await;
        assert!(!b.is_finished(), "b entered before a was through");
        g.leave("a", false);
        assert_eq!(b.await.unwrap(), Ok(()));
        g.leave("b", true);
        assert_eq!(g.enter("c").await, Err("b".to_string()));
    }
}

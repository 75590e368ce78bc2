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

//! arm.sh and disarm.sh: the dead-man timer on the host, armed before a
//! guarded phase and cancelled, exactly, over a fresh connection.

/// Arms the timer: `sh -c ARM arm DEPLOY_ID SECONDS PREFER`, `bundle()` on stdin.
pub(crate) const SCRIPT: &str = include_str!("arm.sh");
/// Cancels exactly one deploy's timer: `sh -c DISARM disarm DEPLOY_ID`.
pub(crate) const DISARM: &str = include_str!("disarm.sh");

/// The files arm.sh installs in the journal: the revert and the compose helper.
pub(crate) fn bundle() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("deadman.sh", super::revert::DEADMAN), ("compose.sh", super::compose::SCRIPT)] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o700);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_bytes()).expect("tar into memory");
    }
    b.into_inner().expect("tar into memory")
}

/// The armed timer, as arm.sh reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Armed {
    /// systemd, at or sleeper.
    pub(crate) mechanism: String,
    /// Unit name, at job or process group.
    pub(crate) handle: String,
    /// When the host reverts (epoch seconds).
    pub(crate) deadline: u64,
}

/// Parse arm.sh output: the armed timer, or why it could not be armed.
pub(crate) fn parse_arm(out: &[u8]) -> Result<Armed, String> {
    let text = super::protocol::body("arm", out)?;
    let line = text.lines().next().unwrap_or("");
    match line.split('\t').collect::<Vec<_>>().as_slice() {
        ["ARMED", mech, handle, deadline] => {
            let deadline = deadline.parse().map_err(|_| format!("bad deadline in `{line}`"))?;
            Ok(Armed { mechanism: mech.to_string(), handle: handle.to_string(), deadline })
        }
        ["E", _, why] => Err(why.to_string()),
        [""] => Err("arm.sh said nothing after its header".into()),
        _ => Err(super::protocol::unexpected("arm", line)),
    }
}

/// Parse disarm.sh output: the cancelled mechanism, or why not.
pub(crate) fn parse_disarm(out: &[u8]) -> Result<String, String> {
    let text = super::protocol::body("disarm", out)?;
    let line = text.lines().next().unwrap_or("");
    match line.split('\t').collect::<Vec<_>>().as_slice() {
        ["DISARMED", mech, _handle] => Ok(mech.to_string()),
        ["E", _, why] => Err(why.to_string()),
        _ => Err(super::protocol::unexpected("disarm", line)),
    }
}

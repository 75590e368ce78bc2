//! The line protocol every host script speaks: first a header line
//! `deploy-NAME<TAB>VERSION`, then tab-separated lines whose first field
//! says what they are. A reply without the expected header is an error
//! that names the script and what came instead (a shell that is not POSIX,
//! a login banner, a script of another version).

/// Version every script's header carries today.
pub(crate) const VERSION: u32 = 1;

/// The reply of `script` after its header, or what is wrong with it.
pub(crate) fn body(script: &str, out: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(out);
    let want = format!("deploy-{script}\t{VERSION}");
    let mut lines = text.splitn(2, '\n');
    match lines.next() {
        Some(first) if first == want => Ok(lines.next().unwrap_or("").to_string()),
        Some("") | None => Err(format!("deploy-{script} printed nothing (the connection dropped, or the shell died)")),
        Some(first) => Err(format!(
            "deploy-{script} answered `{}` where its header `deploy-{script} {VERSION}` was expected",
            first.chars().take(80).collect::<String>()
        )),
    }
}

/// A line the parser of `script` does not know.
pub(crate) fn unexpected(script: &str, line: &str) -> String {
    format!("deploy-{script}: unexpected line `{}`", line.chars().take(120).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_checked() {
        assert_eq!(body("revert", b"deploy-revert\t1\nREVERTED\tx\n").unwrap(), "REVERTED\tx\n");
        assert!(body("revert", b"").unwrap_err().contains("printed nothing"));
        assert!(body("revert", b"deploy-revert\t2\n").unwrap_err().contains("header `deploy-revert 1`"));
        assert!(body("revert", b"Welcome!\n").unwrap_err().contains("answered `Welcome!`"));
    }
}

/// Real output of the host scripts, captured on the lab by the integration
/// test `fixtures` (which also fails when a script's output drifts).
#[cfg(test)]
pub(crate) mod fixtures {
    macro_rules! fixture {
        ($name:ident, $file:literal) => {
            pub(crate) const $name: &[u8] = include_bytes!(concat!("../../tests/fixtures/remote/", $file));
        };
    }
    fixture!(PROBE, "probe.out");
    fixture!(APPLY, "apply.out");
    fixture!(APPLY_INVALID, "apply-invalid.out");
    fixture!(TRIGGERS, "triggers.out");
    fixture!(ARM, "arm.out");
    fixture!(DISARM, "disarm.out");
    fixture!(HEALTH_FAILED, "health-failed.out");
    fixture!(REVERT, "revert.out");
    fixture!(HOSTSTATUS, "hoststatus.out");
    fixture!(TOGGLESTATUS, "togglestatus.out");
    fixture!(UNLOCK, "unlock.out");
}

//! The parsers' fixtures (tests/fixtures/remote/*.out) are real output of
//! the host scripts, captured on the lab. This test captures them again
//! (DEPLOY_CAPTURE_DIR) and fails when a script's output no longer has the
//! shape of its fixture, so the fixtures cannot drift from the scripts.
//! `DEPLOY_RECAPTURE=1 cargo nextest run fixtures` writes new captures as
//! the fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;

const TOGGLES: &str =
    "toggles:\n  vpn:\n    var: vpn_mode\n    on: vpn\n    off: public\n    roles: [firewall]\n    auto_revert: 15m\n";

/// Run deploy with its script output captured into `dir`.
fn captured(lab: &Lab, dir: &Path, args: &[&str]) -> Run {
    std::fs::create_dir_all(dir).unwrap();
    let o = Command::new(bin())
        .current_dir(&lab.root)
        .args(args)
        .env("NO_COLOR", "1")
        .env("DEPLOY_CAPTURE_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The first capture of script `name` in `dir`.
fn first(dir: &Path, name: &str) -> Vec<u8> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("lab1.deploy-{name}.")))
        .collect();
    files.sort_by_key(|p| p.file_name().unwrap().to_string_lossy().rsplit('.').nth(1).unwrap().to_string());
    let p = files.first().unwrap_or_else(|| panic!("no capture of deploy-{name} in {}", dir.display()));
    std::fs::read(p).unwrap()
}

/// What a parser relies on: the kind of each line and its number of
/// fields, consecutive repeats folded.
fn shape(out: &[u8]) -> Vec<String> {
    let mut s: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(out).lines() {
        let kind = line.split('\t').next().unwrap_or("");
        let kind = if kind.chars().all(|c| c.is_ascii_uppercase() || c == '-') || line.starts_with("deploy-") {
            kind.to_string()
        } else {
            kind.chars().filter(|c| c.is_ascii_lowercase()).collect()
        };
        let k = format!("{kind}/{}", line.split('\t').count());
        if s.last() != Some(&k) {
            s.push(k);
        }
    }
    s
}

#[test]
fn fixtures_match_what_the_scripts_print() {
    let lab = Lab::up(1);
    let tmp = lab.root.join(".captures");
    lab.write_file(
        "deploy.yml",
        &format!("{FILES_ONLY}  - name: hardening\n    roles: [firewall]\n    deadman: 30s\n{TOGGLES}"),
    );
    // probe, apply, triggers, arm, disarm, finish
    let r = captured(&lab, &tmp.join("first"), &["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    // a failed health gate: health, revert
    lab.write_file("roles/app/templates/app.conf.j2", "listen = 0.0.0.0:9\n");
    let t = std::fs::read_to_string(lab.root.join("roles/app/role.yml")).unwrap();
    lab.write_file("roles/app/role.yml", &format!("{t}health:\n  - command: \"false\"\n    timeout: 1s\n"));
    // (the one-line config is most of the old one gone: --allow-shrink)
    let r = captured(&lab, &tmp.join("unhealthy"), &["lab", "--yes", "--allow-shrink", "--role", "app"]);
    assert_eq!(r.code, 1, "{r:?}");
    // a failed validation
    lab.write_file("roles/app/templates/app.conf.j2", "no listen line\n");
    let r = captured(&lab, &tmp.join("invalid"), &["lab", "--yes", "--allow-shrink", "--role", "app"]);
    assert_eq!(r.code, 1, "{r:?}");
    // status, toggle status, unlock
    assert_eq!(captured(&lab, &tmp.join("status"), &["status", "lab"]).code, 0);
    assert_eq!(captured(&lab, &tmp.join("togglestatus"), &["vpn-status", "lab"]).code, 0);
    lab.sh("lab1", "mkdir -p /var/lib/deploy/lock && echo 'ci@elsewhere pid=1 deploy=D' > /var/lib/deploy/lock/holder");
    assert_eq!(captured(&lab, &tmp.join("unlock"), &["unlock", "lab", "--host", "lab1"]).code, 0);

    let cases = [
        ("probe", "first", "probe"),
        ("apply", "first", "apply"),
        ("triggers", "first", "triggers"),
        ("arm", "first", "arm"),
        ("disarm", "first", "disarm"),
        ("health-failed", "unhealthy", "health"),
        ("revert", "unhealthy", "revert"),
        ("apply-invalid", "invalid", "apply"),
        ("hoststatus", "status", "status"),
        ("togglestatus", "togglestatus", "status"),
        ("unlock", "unlock", "unlock"),
    ];
    let fixtures = repo().join("tests/fixtures/remote");
    let recapture = std::env::var_os("DEPLOY_RECAPTURE").is_some();
    for (fixture, scenario, script) in cases {
        let got = first(&tmp.join(scenario), script);
        let path = fixtures.join(format!("{fixture}.out"));
        if recapture {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read(&path).unwrap_or_default();
        assert_eq!(
            shape(&got),
            shape(&want),
            "deploy-{script} prints other lines than {}: recapture with DEPLOY_RECAPTURE=1 and check its parser\n--- got\n{}",
            path.display(),
            String::from_utf8_lossy(&got)
        );
    }
}

//! Puts the git commit the binary is built from into `deploy --version`,
//! so a report names exactly what ran. No git, or no repository: "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        }
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=DEPLOY_VERSION={} (commit {commit})", env!("CARGO_PKG_VERSION"));
    for p in [".git/HEAD", ".git/index", ".git/refs"] {
        println!("cargo:rerun-if-changed={p}");
    }
}

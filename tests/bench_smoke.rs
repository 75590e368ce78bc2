//! The benchmark cannot rot: its smoke version deploys the bench workload
//! once with each tool (deploy, Ansible, pyinfra) to a 2-host lab, and the
//! script checks every file on every host against Jinja2's rendering (bytes
//! and modes). Correctness only; speed is `make bench`.

use std::process::Command;

use crate::common::*;

#[test]
fn bench_smoke_all_three_tools_produce_the_same_files() {
    let (_root, slot) = project();
    let o = Command::new("python3")
        .arg(repo().join("bench/bench.py"))
        .args(["--smoke", "--hosts", "2", "--scenarios", "first"])
        .args(["--tools", "deploy,ansible-pipelining,pyinfra"])
        .args(["--instance", &slot.n.to_string()])
        .arg("--dir")
        .arg(slot.path.join("bench"))
        .args(["--deploy-bin", bin()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "bench smoke failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(stdout.contains("every file verified"), "{stdout}");
    // each tool really ran (the script prints one line per run)
    for tool in ["deploy", "ansible-pipelining", "pyinfra"] {
        assert!(stderr.contains(&format!("bench: {tool}")), "{tool} did not run:\n{stderr}");
    }
}

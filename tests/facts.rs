//! Host facts (`ansible_facts['distribution']`, `ansible_memtotal_mb`, ...)
//! as Ansible gathers them: deploy gathers them on the connection the probe
//! uses, only when the repository reads one, and each is compared with
//! real `ansible -m setup` on the same lab host.

use std::process::{Command, Stdio};

use crate::common::*;

/// `ansible -m setup` of `host`: its ansible_facts.
fn ansible_setup(lab: &Lab, host: &str) -> serde_json::Value {
    let venv = repo().join("bench/.venv/bin");
    let ssh = lab.root.join(".lab/ssh_config");
    let o = Command::new("timeout")
        .arg("120")
        .arg(venv.join("ansible"))
        .args(["all", "-i", &format!("{host},"), "-m", "setup", "-e"])
        .arg(format!("ansible_ssh_common_args='-F {}'", ssh.display()))
        .args(["-e", "ansible_python_interpreter=/usr/bin/python3"])
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_SSH_CONTROL_PATH_DIR", lab.slot.join("cp"))
        .stdin(Stdio::null())
        .output()
        .expect("bench/.venv/bin/ansible");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "ansible -m setup failed: {out}");
    let v: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    v["ansible_facts"].clone()
}

#[test]
fn facts_are_ansibles_and_read_only_when_the_repository_reads_them() {
    let lab = Lab::up_systemd(1);
    // a repository that reads no fact gathers none: no facts script runs
    let r = lab.deploy(&["lab", "--check", "-v"]);
    assert!(!r.stdout.contains("deploy-facts") && !r.stderr.contains("deploy-facts"), "{r:?}");

    // deploy facts: each fact as `ansible -m setup` has it
    let f = lab.deploy(&["facts", "lab", "--host", "sys1"]);
    assert_eq!(f.code, 0, "{f:?}");
    let ours: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    let ours = &ours["ansible_facts"];
    let theirs = ansible_setup(&lab, "sys1");
    for k in [
        "distribution",
        "distribution_release",
        "distribution_version",
        "distribution_major_version",
        "os_family",
        "architecture",
        "machine",
        "system",
        "kernel",
        "nodename",
        "hostname",
        "fqdn",
        "domain",
        "memtotal_mb",
        "processor_count",
        "processor_cores",
        "processor_threads_per_core",
        "processor_vcpus",
        "all_ipv4_addresses",
        "default_ipv4",
        "user_id",
        "user_dir",
        "service_mgr",
        "virtualization_type",
        "virtualization_role",
        "lsb",
    ] {
        let k = format!("ansible_{k}");
        assert_eq!(ours[&k], theirs[&k], "{k}");
    }
    for k in ["HOME", "USER", "LOGNAME", "SHELL", "PATH"] {
        assert_eq!(ours["ansible_env"][k], theirs["ansible_env"][k], "env {k}");
    }
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&ours["ansible_date_time"]), keys(&theirs["ansible_date_time"]));
    assert_eq!(ours["ansible_date_time"]["tz"], theirs["ansible_date_time"]["tz"]);

    // a template and a when: that read facts, under both names
    let motd = "{{ ansible_facts['distribution'] }} {{ ansible_distribution_release }} {{ ansible_os_family }} \
                {{ ansible_memtotal_mb > 0 }} {{ ansible_default_ipv4.address }} {{ ansible_hostname }} \
                {{ ansible_facts.processor_vcpus }}\n";
    lab.write_file("roles/common/templates/motd.j2", motd);
    let spec = std::fs::read_to_string(lab.root.join("roles/common/role.yml")).unwrap();
    let debian = "files:\n  - dest: /etc/debian-only\n    content: \"{{ ansible_distribution_major_version }}\\n\"\n    when: ansible_os_family == 'Debian'\n  - dest: /etc/not-debian\n    content: \"x\\n\"\n    when: ansible_facts['os_family'] != 'Debian'\n";
    lab.write_file("roles/common/role.yml", &spec.replacen("files:\n", debian, 1));
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let want = format!(
        "Debian bookworm Debian True {} {} {}\n",
        theirs["ansible_default_ipv4"]["address"].as_str().unwrap(),
        theirs["ansible_hostname"].as_str().unwrap(),
        theirs["ansible_processor_vcpus"]
    );
    assert_eq!(lab.sh("sys1", "cat /etc/motd"), want);
    assert_eq!(lab.sh("sys1", "cat /etc/debian-only; test -e /etc/not-debian || echo none"), "12\nnone\n");
    // and a second run changes nothing
    let again = lab.deploy(&["lab", "--check"]);
    assert_eq!(again.code, 0, "{again:?}");

    // deploy render touches no host: facts come from a file, or reading one
    // says how to give them
    let out = lab.slot.join("rendered");
    let r = lab.deploy(&["render", "lab", "--host", "sys1", "--out", out.to_str().unwrap()]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: host sys1: roles/common/role.yml:16: files[0] when `ansible_os_family == 'Debian'`: host fact `ansible_os_family` is not known here: deploy gathers the facts a repository reads when it connects to the host (`deploy ENV`, `--check`); for `deploy render`, pass `--facts FILE` (JSON as `ansible -m setup` or `deploy facts ENV --host H` writes it)\n")
    );
    let file = lab.slot.join("sys1.facts.json");
    std::fs::write(&file, &f.stdout).unwrap();
    let rendered = |facts: &std::path::Path, out: &std::path::Path| {
        let (facts, out) = (facts.to_str().unwrap(), out.to_str().unwrap());
        let r = lab.deploy(&["render", "lab", "--host", "sys1", "--out", out, "--facts", facts]);
        assert_eq!(r.code, 0, "{r:?}");
        std::fs::read_to_string(std::path::Path::new(out).join("sys1/etc/motd")).unwrap()
    };
    assert_eq!(rendered(&file, &out), want);
    // ansible -m setup's own output is a facts file too
    let setup = lab.slot.join("setup.json");
    std::fs::write(&setup, serde_json::json!({ "ansible_facts": theirs }).to_string()).unwrap();
    assert_eq!(rendered(&setup, &lab.slot.join("rendered2")), want);
}

// The variables Ansible defines beside the facts.
#[test]
fn ansible_check_mode_version_and_inventory_dir() {
    let (root, slot) = project();
    std::fs::write(
        root.join("roles/common/templates/motd.j2"),
        "{{ ansible_check_mode }} {{ ansible_version.major }}.{{ ansible_version.minor }} {{ inventory_dir | basename }} {{ ansible_play_hosts | join(',') }} {{ role_name }}\n",
    )
    .unwrap();
    let out = slot.path.join("out");
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(out.join("lab1/etc/motd")).unwrap(),
        "False 2.19 inventory lab1,lab2,lab3,sys1,sys2 common\n"
    );
}

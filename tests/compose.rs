//! Compose stacks on the lab: every lab host runs its own Docker engine;
//! containers are read back with plain `ssh ... docker`, never through the tool.

use crate::common::*;

fn by_name(list: &[String]) -> std::collections::BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (name, rest) = l.split_once(' ').unwrap();
            // Compose v1 names containers apps_notes_1, v2 apps-notes-1
            (name.trim_start_matches('/').replace('_', "-"), rest.to_string())
        })
        .collect()
}

/// Names of the containers whose id or start time differ between two snapshots.
fn changed(before: &[String], after: &[String]) -> Vec<String> {
    let (b, a) = (by_name(before), by_name(after));
    let mut out: Vec<String> = a.iter().filter(|(n, v)| b.get(*n) != Some(v)).map(|(n, _)| n.clone()).collect();
    out.extend(b.keys().filter(|n| !a.contains_key(*n)).cloned());
    out.sort();
    out
}

const STACK: &[&str] = &["apps-notes-1", "apps-openclaw-1", "apps-openclaw-worker-1", "infra-db-1", "proxy-proxy-1"];

fn deployed(hosts: u32, v1: &[&str]) -> LabWithSlot {
    let lab = Lab::up_docker(hosts, v1);
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "first deploy: {r:?}");
    lab
}

fn env_in(lab: &Lab, host: &str, container: &str, var: &str) -> String {
    lab.sh(host, &format!("docker inspect -f '{{{{range .Config.Env}}}}{{{{println .}}}}{{{{end}}}}' {container}"))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")).map(String::from))
        .unwrap_or_default()
}

#[test]
fn env_change_recreates_exactly_the_services_that_read_it() {
    let lab = deployed(1, &[]);
    let names: Vec<String> = by_name(&lab.containers("lab1")).into_keys().collect();
    assert_eq!(names, STACK);

    // notes.env is read by notes only
    let before = lab.containers("lab1");
    lab.write_file("inventory/host_vars/lab1.yml", "notes_title: Field notes\n");
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(c.stdout.contains("apps/notes  recreate container  [env file /opt/stack/env/notes.env changed]"), "{c:?}");
    // the JSON plan says the same, to the schema, with the phase's name
    let j = lab.deploy(&["lab", "--check", "--output", "json"]);
    crate::plan_schema::assert_valid_plan(&j.stdout);
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    let s = &v["hosts"][0]["plan"]["services"][0];
    assert_eq!(
        (s["service"].as_str(), s["action"].as_str(), s["phase"].as_str()),
        (Some("notes"), Some("recreate"), Some("apps")),
        "{v}"
    );
    assert_eq!(s["reasons"][0], "env file /opt/stack/env/notes.env changed");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let after = lab.containers("lab1");
    assert_eq!(changed(&before, &after), vec!["apps-notes-1"]);
    assert_eq!(env_in(&lab, "lab1", "apps-notes-1", "NOTES_TITLE"), "Field notes");

    // shared.env is read by openclaw and openclaw-worker: both, nothing else
    let before = after;
    lab.write_file("inventory/host_vars/lab1.yml", "notes_title: Field notes\nlog_level: warning\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let after = lab.containers("lab1");
    assert_eq!(changed(&before, &after), vec!["apps-openclaw-1", "apps-openclaw-worker-1"]);
    // the service itself, over HTTP, serves the new environment
    let served = lab.sh("lab1", "curl -sf http://127.0.0.1:18789/env.txt");
    assert!(served.contains("LOG_LEVEL=warning\n"), "{served}");
}

#[test]
fn no_op_redeploy_recreates_and_restarts_nothing() {
    let lab = deployed(1, &[]);
    let before = lab.containers("lab1");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Nothing to change on 1 host"), "{r:?}");
    assert_eq!(lab.containers("lab1"), before, "a container was recreated or restarted");
    assert_eq!(lab.deploy(&["lab", "--check"]).code, 0);
}

#[test]
fn role_openclaw_recreates_only_openclaw() {
    let lab = deployed(1, &[]);
    let before = lab.containers("lab1");
    let notes_env = lab.sh("lab1", "md5sum /opt/stack/env/notes.env");
    // openclaw.env and openclaw.json change; notes.env would too, but is not in the role
    lab.write_file("inventory/host_vars/lab1.yml", "openclaw_model: anthropic/claude-haiku\nnotes_title: Not now\n");
    let r = lab.deploy(&["lab", "--role", "openclaw", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("apps/openclaw  recreate container"), "{r:?}");
    assert_eq!(changed(&before, &lab.containers("lab1")), vec!["apps-openclaw-1"]);
    assert_eq!(env_in(&lab, "lab1", "apps-openclaw-1", "OPENCLAW_MODEL"), "anthropic/claude-haiku");
    assert_eq!(lab.sh("lab1", "md5sum /opt/stack/env/notes.env"), notes_env);
    // the rest is still pending for a full deploy
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(
        c.stdout.contains("apps/notes  recreate container") && !c.stdout.contains("apps/openclaw  recreate"),
        "{c:?}"
    );
}

#[test]
fn failed_health_gate_rolls_the_phase_back() {
    let lab = deployed(1, &[]);
    let before = lab.containers("lab1");
    let env_file = lab.read("lab1", "/opt/stack/env/openclaw.env").unwrap();
    // a later phase that must not run
    std::fs::create_dir_all(lab.root.join("roles/late")).unwrap();
    lab.write_file("roles/late/role.yml", "files:\n  - dest: /etc/late.conf\n    content: \"late\\n\"\n");
    let d = std::fs::read_to_string(lab.root.join("deploy.yml")).unwrap();
    assert!(d.contains("    deadman: 2m\n"));
    lab.write_file(
        "deploy.yml",
        &d.replace("    deadman: 2m\n", "    deadman: 2m\n  - name: late\n    roles: [late]\n"),
    );
    // the gateway refuses this model and exits
    lab.write_file("inventory/host_vars/lab1.yml", "openclaw_model: broken-model\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("FAILED  phase apps: health gate failed"), "{r:?}");
    assert!(r.stdout.contains("apps/openclaw"), "the failing service is not named: {r:?}");
    assert!(r.stdout.contains("| fatal: unknown model broken-model"), "its last log lines are not shown: {r:?}");
    assert!(r.stdout.contains("recreated with its previous inputs and healthy again"), "{r:?}");
    assert!(r.stdout.contains("later phases did not run"), "{r:?}");
    assert!(lab.read("lab1", "/etc/late.conf").is_none(), "a later phase ran");
    // files back, service back with its previous environment, healthy
    assert_eq!(lab.read("lab1", "/opt/stack/env/openclaw.env").unwrap(), env_file);
    assert_eq!(env_in(&lab, "lab1", "apps-openclaw-1", "OPENCLAW_MODEL"), "anthropic/claude-sonnet-4-5");
    assert!(lab.sh("lab1", "docker ps --filter name=apps-openclaw-1 --format '{{.Status}}'").contains("(healthy)"));
    // other services untouched; infra untouched
    let after = lab.containers("lab1");
    assert_eq!(changed(&before, &after), vec!["apps-openclaw-1"]);
    // and the host is in sync with its previous state: nothing half-done
    lab.write_file("inventory/host_vars/lab1.yml", "{}\n");
    let c = lab.deploy(&["lab", "--check"]);
    assert!(!c.stdout.contains("apps/openclaw  recreate"), "{c:?}");
}

#[test]
fn undefined_compose_variable_is_a_plan_time_error() {
    let lab = Lab::up_docker(1, &[]);
    let t = std::fs::read_to_string(lab.root.join("roles/apps/templates/apps.yml.j2")).unwrap();
    lab.write_file(
        "roles/apps/templates/apps.yml.j2",
        &t.replace(
            "env_file: env/notes.env",
            "env_file: env/notes.env\n    environment:\n      STT_URL: ${MANA_STT_URL}",
        ),
    );
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    for want in ["service `notes`", "/opt/stack/apps.yml", "${MANA_STT_URL}", "no env source defines"] {
        assert!(r.stderr.contains(want), "`{want}` missing: {r:?}");
    }
    assert!(lab.ssh("lab1", "test -e /opt/stack").code != 0, "something was written");
    assert_eq!(lab.sh("lab1", "docker ps -aq | wc -l").trim(), "0");
}

#[test]
fn compose_v1_and_v2_hosts_both_converge() {
    let lab = deployed(2, &["lab2"]);
    let version = |h: &str| {
        lab.sh(h, "docker ps --filter label=com.docker.compose.service=notes --format '{{.Label \"com.docker.compose.version\"}}'")
    };
    assert!(version("lab1").starts_with("2."), "lab1 should use compose v2");
    assert_eq!(version("lab2").trim(), "1.29.2", "lab2 should use docker-compose v1");
    let before: Vec<Vec<String>> = ["lab1", "lab2"].iter().map(|h| lab.containers(h)).collect();
    lab.write_file("inventory/group_vars/lab/notes.yml", "notes_title: Both\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    for (i, h) in ["lab1", "lab2"].iter().enumerate() {
        assert_eq!(changed(&before[i], &lab.containers(h)), vec!["apps-notes-1"], "{h}");
        let id = lab.sh(h, "docker ps -q --filter label=com.docker.compose.service=notes");
        assert_eq!(env_in(&lab, h, id.trim(), "NOTES_TITLE"), "Both", "{h}");
    }
    assert_eq!(lab.deploy(&["lab", "--check"]).code, 0);
}

#[test]
fn container_drift_shows_as_pending_recreate() {
    let lab = deployed(1, &[]);
    // recreated by hand without deploy's labels: its inputs are unknown
    lab.sh(
        "lab1",
        "cd /opt/stack && docker compose -p apps -f apps.yml up -d --force-recreate --no-deps notes 2>/dev/null",
    );
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(c.stdout.contains("apps/notes  recreate container  [its container was created outside deploy"), "{c:?}");
    // a stopped container is started, not recreated
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    lab.sh("lab1", "docker stop -t 1 apps-openclaw-worker-1 >/dev/null");
    let c = lab.deploy(&["lab", "--check"]);
    assert!(c.stdout.contains("apps/openclaw-worker  start container  [its container is exited]"), "{c:?}");
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    assert!(lab.sh("lab1", "docker ps --format '{{.Names}}'").contains("apps-openclaw-worker-1"));
}

#[test]
fn mounted_config_change_reloads_in_place() {
    let lab = deployed(1, &[]);
    let before = lab.containers("lab1");
    assert_eq!(lab.sh("lab1", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/"), "200");
    lab.write_file("inventory/host_vars/lab1.yml", "proxy_protected:\n  /admin: \"admin:letmein\"\n");
    let c = lab.deploy(&["lab", "--check"]);
    assert!(
        c.stdout.contains("proxy/proxy  reload in place  [mounted config /opt/stack/proxy/httpd.conf changed]"),
        "{c:?}"
    );
    assert!(!c.stdout.contains("proxy/proxy  recreate"), "{c:?}");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    // same container, new behaviour
    assert_eq!(changed(&before, &lab.containers("lab1")), Vec::<String>::new());
    assert_eq!(lab.sh("lab1", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/admin/"), "401");
    assert_eq!(lab.sh("lab1", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/"), "200");
}

#[test]
fn reload_of_a_single_file_mount_is_refused() {
    let (root, _slot) = project();
    let t = std::fs::read_to_string(root.join("roles/proxy/templates/proxy.yml.j2")).unwrap();
    std::fs::write(
        root.join("roles/proxy/templates/proxy.yml.j2"),
        t.replace("./proxy:/etc/proxy:ro", "./proxy/httpd.conf:/etc/httpd.conf:ro"),
    )
    .unwrap();
    let r = deploy_in(&root, &["lab", "--check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("mounts /opt/stack/proxy/httpd.conf as a single file")
            && r.stderr.contains("mount its directory"),
        "{r:?}"
    );
}

#[test]
fn localhost_healthcheck_is_warned_about() {
    let (root, slot) = project();
    let t = std::fs::read_to_string(root.join("roles/apps/templates/apps.yml.j2")).unwrap();
    std::fs::write(
        root.join("roles/apps/templates/apps.yml.j2"),
        t.replace("http://127.0.0.1:18789/env.txt", "http://localhost:18789/env.txt"),
    )
    .unwrap();
    let out = slot.path.join("out");
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("healthcheck of service `openclaw` targets `localhost`"), "{r:?}");
}

#[test]
fn changed_definition_recreates_only_that_service() {
    let lab = deployed(1, &[]);
    let before = lab.containers("lab1");
    let t = std::fs::read_to_string(lab.root.join("roles/apps/templates/apps.yml.j2")).unwrap();
    lab.write_file(
        "roles/apps/templates/apps.yml.j2",
        &t.replace(
            "    env_file: env/notes.env\n",
            "    env_file: env/notes.env\n    environment:\n      NOTES_MODE: readonly\n",
        ),
    );
    let c = lab.deploy(&["lab", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(
        c.stdout.contains("apps/notes  recreate container  [its definition in /opt/stack/apps.yml changed]"),
        "{c:?}"
    );
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    assert_eq!(changed(&before, &lab.containers("lab1")), vec!["apps-notes-1"]);
    assert_eq!(env_in(&lab, "lab1", "apps-notes-1", "NOTES_MODE"), "readonly");
}

#[test]
fn tcp_and_command_checks_gate_the_phase() {
    let lab = deployed(1, &[]);
    // a command check that fails, and a TCP check that passes
    let role = std::fs::read_to_string(lab.root.join("roles/apps/role.yml")).unwrap();
    lab.write_file(
        "roles/apps/role.yml",
        &format!("{role}health:\n  - tcp: 127.0.0.1:18789\n    timeout: 5s\n  - command: test -e /etc/ready-marker\n    timeout: 2s\n"),
    );
    lab.write_file("inventory/host_vars/lab1.yml", "notes_title: gated\n");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("test -e /etc/ready-marker: exit 1") && r.stdout.contains("(after 2s)"), "{r:?}");
    assert!(!r.stdout.contains("127.0.0.1:18789: cannot connect"), "{r:?}");
    assert_eq!(env_in(&lab, "lab1", "apps-notes-1", "NOTES_TITLE"), "Notes", "not rolled back");
    lab.sh("lab1", "touch /etc/ready-marker");
    let r = lab.deploy(&["lab", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(env_in(&lab, "lab1", "apps-notes-1", "NOTES_TITLE"), "gated");
}

#[test]
fn lab_engines_are_isolated() {
    let lab = Lab::up_docker(2, &[]);
    lab.sh("lab1", "docker run -d --name only-on-lab1 lab/busybox:1 sleep 600 >/dev/null");
    assert!(lab.sh("lab1", "docker ps --format '{{.Names}}'").contains("only-on-lab1"));
    assert!(!lab.sh("lab2", "docker ps -a --format '{{.Names}}'").contains("only-on-lab1"));
    // each host's /var/run/docker.sock is a different engine
    let id1 = lab.sh("lab1", "docker info -f '{{.ID}}'");
    let id2 = lab.sh("lab2", "docker info -f '{{.ID}}'");
    assert!(!id1.trim().is_empty());
    assert_ne!(id1, id2, "both hosts talk to the same engine");
    let root1 = lab.sh("lab1", "docker info -f '{{.DockerRootDir}}'");
    // the machine's own default socket (if any engine runs there) is not a lab engine
    let machine = std::process::Command::new("docker").args(["ps", "-a", "--format", "{{.Names}}"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&machine.stdout).contains("only-on-lab1"), "{root1}");
}

#[test]
fn rollback_last_restores_the_bytes_and_recreates_exactly_the_services_that_read_them() {
    let lab = deployed(1, &[]);
    let notes_env = lab.read("lab1", "/opt/stack/env/notes.env").unwrap();
    let title = env_in(&lab, "lab1", "apps-notes-1", "NOTES_TITLE");
    lab.write_file("inventory/host_vars/lab1.yml", "notes_title: Field notes\n");
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let before = lab.containers("lab1");
    let c = lab.deploy(&["rollback", "lab", "--last", "--check"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(c.stdout.contains("  ~ /opt/stack/env/notes.env  update  [content]  role apps\n"), "{c:?}");
    assert!(c.stdout.contains("apps/notes  recreate container  [env file /opt/stack/env/notes.env changed]"), "{c:?}");
    let r = lab.deploy(&["rollback", "lab", "--last", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(lab.read("lab1", "/opt/stack/env/notes.env").unwrap(), notes_env, "not back byte for byte");
    assert_eq!(changed(&before, &lab.containers("lab1")), vec!["apps-notes-1"]);
    assert_eq!(env_in(&lab, "lab1", "apps-notes-1", "NOTES_TITLE"), title);
    // the history says it was a rollback
    let h = lab.deploy(&["history", "lab"]);
    assert!(h.stdout.lines().rev().nth(2).is_some_and(|l| l.ends_with("  rollback")), "{h:?}");
}

#[test]
fn rollback_refuses_when_the_journal_was_pruned_or_a_later_deploy_changed_the_path() {
    let lab = deployed(1, &[]);
    let d = std::fs::read_to_string(lab.root.join("deploy.yml")).unwrap();
    lab.write_file("deploy.yml", &format!("{d}keep_journals: 2\n"));
    let id = |lab: &Lab| {
        let j = lab.deploy(&["history", "lab", "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
        v["deploys"].as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_string()
    };
    lab.write_file("inventory/host_vars/lab1.yml", "notes_title: One\n");
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let first = id(&lab);
    lab.write_file("inventory/host_vars/lab1.yml", "notes_title: Two\n");
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let second = id(&lab);
    let r = lab.deploy(&["rollback", "lab", "--to", &first, "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.lines().last().unwrap(),
        format!("error: host lab1: /opt/stack/env/notes.env was changed again by the later deploy {second}: rolling back {first} alone would undo that too; roll back {second} first, or pass --force")
    );
    lab.write_file("inventory/host_vars/lab1.yml", "notes_title: Three\n");
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    let r = lab.deploy(&["rollback", "lab", "--to", &first, "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stderr.lines().last().unwrap(),
        format!("error: host lab1: no journal of deploy {first} on this host: it was pruned (deploy.yml's keep_journals), or that deploy never changed this host")
    );
}

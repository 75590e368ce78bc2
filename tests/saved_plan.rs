//! Saved plans: what `--check --save-plan` saw is what `deploy apply`
//! applies, or that host is refused.

use crate::common::*;

fn git(lab: &Lab, args: &[&str]) {
    let o = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(&lab.root)
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {o:?}");
}

#[test]
fn a_saved_plan_is_applied_exactly_and_refused_where_the_host_changed_since() {
    let lab = Lab::up(2);
    assert_eq!(lab.deploy(&["lab", "--yes"]).code, 0);
    std::fs::write(lab.root.join(".gitignore"), ".lab/\n*.plan\n").unwrap();
    let all = std::fs::read_to_string(lab.root.join("inventory/group_vars/all.yml")).unwrap();
    lab.write_file("inventory/group_vars/all.yml", &all.replace("app_workers: 2", "app_workers: 9"));
    git(&lab, &["init", "-q"]);
    git(&lab, &["add", "-A"]);
    git(&lab, &["commit", "-qm", "workers"]);
    let c = lab.deploy(&["lab", "--check", "--save-plan", "ci.plan"]);
    assert_eq!(c.code, 2, "{c:?}");
    assert!(c.stderr.contains("Plan saved to ci.plan; apply exactly it with `deploy apply ci.plan`."), "{c:?}");
    let saved = std::fs::read_to_string(lab.root.join("ci.plan")).unwrap();
    assert!(!saved.contains(POISON) && !saved.contains("workers = 9"), "the plan file holds content: {saved}");
    // someone edits a managed file on lab2 after the plan was made
    lab.sh("lab2", "echo '# by hand' >> /opt/stack/app.conf");
    let before = lab.read("lab2", "/opt/stack/app.conf").unwrap();
    let r = lab.deploy(&["apply", "ci.plan"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stdout.contains("lab2: its state no longer matches what the saved plan saw (a managed path, container or package changed since): nothing was applied here; make a new plan"),
        "{r:?}"
    );
    assert!(String::from_utf8(lab.read("lab1", "/opt/stack/app.conf").unwrap()).unwrap().contains("workers = 9"));
    assert_eq!(lab.read("lab2", "/opt/stack/app.conf").unwrap(), before, "lab2 was touched");
    assert!(lab.ssh("lab2", "test -d /var/lib/deploy/lock").code != 0, "lab2 still locked");
    // a plan of another commit is refused whole
    lab.write_file("inventory/group_vars/all.yml", &all.replace("app_workers: 2", "app_workers: 10"));
    git(&lab, &["commit", "-qam", "more workers"]);
    let r = lab.deploy(&["apply", "ci.plan"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("a plan applies only to the exact, clean commit it was made from; make a new plan"),
        "{r:?}"
    );
}

//! Template semantics compared with real Ansible: ansible-core from the
//! benchmark's virtualenv (bench/.venv, which .ci/run creates) renders each
//! case next to deploy, and both must agree, output or failure.

use std::process::{Command, Stdio};

use crate::common::*;

/// Ansible's rendering of `template` with `vars` (YAML): the output, or
/// Err(what it said).
fn ansible(vars: &str, template: &str) -> Result<String, String> {
    ansible_with(vars, template, &[])
}

/// The same, with `files` (path, text) in the playbook's directory.
fn ansible_with(vars: &str, template: &str, files: &[(&str, &str)]) -> Result<String, String> {
    let (_root, slot) = project();
    let d = slot.path.join("ansible");
    std::fs::create_dir_all(&d).unwrap();
    put_files(&d, files);
    std::fs::write(d.join("vars.yml"), vars).unwrap();
    std::fs::write(d.join("t.j2"), template).unwrap();
    let play = "- hosts: localhost\n  gather_facts: false\n  vars_files: [vars.yml]\n  tasks:\n    - template: {src: t.j2, dest: out.txt}\n";
    std::fs::write(d.join("play.yml"), play).unwrap();
    let o = playbook(&d);
    if o.status.success() {
        Ok(std::fs::read_to_string(d.join("out.txt")).unwrap())
    } else {
        Err(String::from_utf8_lossy(&o.stdout).into_owned())
    }
}

/// deploy's rendering of the same: `vars` as role defaults, `template` as
/// the example's motd.
fn deploy(vars: &str, template: &str) -> Result<String, String> {
    deploy_with(vars, template, &[])
}

/// The same, with `files` (path, text) in the repository.
fn deploy_with(vars: &str, template: &str, files: &[(&str, &str)]) -> Result<String, String> {
    let (root, slot) = project();
    put_files(&root, files);
    let defaults = root.join("roles/common/defaults.yml");
    let d = std::fs::read_to_string(&defaults).unwrap_or_default();
    std::fs::write(&defaults, format!("{d}\n{vars}")).unwrap();
    std::fs::write(root.join("roles/common/templates/motd.j2"), template).unwrap();
    let out = slot.path.join("out");
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
    if r.code == 0 {
        Ok(std::fs::read_to_string(out.join("lab1/etc/motd")).unwrap())
    } else {
        Err(r.stderr)
    }
}

/// `ansible-playbook play.yml` on localhost, in `dir`.
fn playbook(dir: &std::path::Path) -> std::process::Output {
    let venv = repo().join("bench/.venv/bin");
    Command::new(venv.join("ansible-playbook"))
        .args(["-i", "localhost,", "-c", "local", "play.yml"])
        .arg("-e")
        .arg(format!("ansible_python_interpreter={}", venv.join("python").display()))
        .current_dir(dir)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .stdin(Stdio::null())
        .output()
        .expect("bench/.venv/bin/ansible-playbook (python3 bench/bench.py --setup creates it)")
}

fn put_files(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    }
}

// An error inside a variable's own expression: Ansible fails, and so does
// deploy, naming the variable and the undefined name; never `null`.
#[test]
fn an_error_inside_a_variable_fails_as_in_ansible() {
    let vars = "v: \"{{ 1 if ('a' in nosuch) else 2 }}\"\n";
    let t = "{{ v | to_json }}\n";
    let a = ansible(vars, t);
    assert!(a.as_ref().is_err_and(|e| e.contains("nosuch")), "Ansible: {a:?}");
    let d = deploy(vars, t);
    let e = d.expect_err("deploy rendered it");
    assert!(e.contains("variable `v`") && e.contains("undefined variable `nosuch`"), "{e}");
}

// One undefined leaf leaves the rest of the structure usable: `is defined`
// is false there and `default()` applies, as in Ansible 2.19.
#[test]
fn an_undefined_leaf_is_undefined_as_in_ansible() {
    let vars = "items: [{name: a, url: \"{{ nosuch }}/x\"}]\nv: \"{{ 1 if ('a' in nosuch) else 2 }}\"\n";
    let t = "{% for i in items %}{{ i.name }}{% if i.url is defined %} {{ i.url }}{% endif %}{% endfor %}|{{ v | default(\"dflt\") }}\n";
    assert_eq!(ansible(vars, t), Ok("a|dflt\n".to_string()));
    assert_eq!(deploy(vars, t), Ok("a|dflt\n".to_string()));
    // printing the undefined leaf fails in both, deploy naming the cause
    let t = "{% for i in items %}{{ i.url }}{% endfor %}\n";
    assert!(ansible(vars, t).is_err());
    let e = deploy(vars, t).expect_err("deploy printed an undefined leaf");
    assert!(e.contains("variable `items`") && e.contains("undefined variable `nosuch`"), "{e}");
}

// The INI inventory format reads as the same inventory as its YAML twin.
#[test]
fn an_ini_inventory_is_the_same_inventory_as_its_yaml_twin() {
    let (root, _slot) = project();
    let list = |root: &std::path::Path| {
        let r = deploy_in(root, &["inventory", "lab", "--list"]);
        assert_eq!(r.code, 0, "{r:?}");
        let v = deploy_in(root, &["vars", "lab", "--host", "sys1", "deploy_ssh_config", "timezone", "--origin"]);
        (r.stdout, v.stdout)
    };
    let yaml = list(&root);
    std::fs::remove_file(root.join("inventory/hosts.yml")).unwrap();
    std::fs::write(
        root.join("inventory/hosts"),
        "# the example inventory, in INI\n[all:vars]\ntimezone=Etc/UTC\n\n[lab:children]\nlab_docker\nlab_systemd\n\n\
[lab:vars]\ndeploy_ssh_config=.lab/ssh_config\n\n[lab_docker]\nlab1\nlab2\nlab3\n\n[lab_systemd]\nsys1\nsys2\n\n\
[prod]\nweb1 ansible_host=192.0.2.10 ansible_user=deploy\nweb2 ansible_host=192.0.2.11 ansible_user=deploy\n",
    )
    .unwrap();
    let ini = list(&root);
    assert_eq!(ini.0, yaml.0, "inventory --list differs");
    assert!(ini.1.starts_with("deploy_ssh_config: \".lab/ssh_config\""), "{ini:?}");
    assert_eq!(ini.1.lines().count(), yaml.1.lines().count(), "{ini:?} {yaml:?}");
    std::fs::write(root.join("inventory/hosts"), "[web]\nweb[01:03]\n").unwrap();
    let e = deploy_in(&root, &["inventory", "lab"]);
    assert_eq!(e.stderr, "error: inventory/hosts:2: host range `web[01:03]`: write each host on its own line\n");
}

// The filters added for Ansible repositories, and the ansible.builtin names,
// rendered by ansible-core and by deploy: byte for byte the same.
#[test]
fn more_filters_render_as_ansible_renders_them() {
    let vars = "items: [1, [2, [3, null]], 'None', 4]\na: [1, 2, 3, 2]\nb: [3, 4, 5]\njs: '{\"k\": [1, true, null], \"s\": \"x\"}'\nys: \"k: yes\\nl: [a, b]\\n\"\n\
url: https://user:pw@Example.com:8443/x/y.tar.gz?q=1#frag\n";
    let template = "[{{ 'ab' | center(7) }}][{{ 'abc' | center(6) }}][{{ 'title' | center }}]\n\
{{ items | flatten }} {{ items | flatten(levels=1) }}\n\
{{ a | union(b) }} {{ a | intersect(b) }} {{ a | difference(b) }} {{ a | symmetric_difference(b) }}\n\
{{ js | from_json }} {{ (js | from_json).k }} {{ ys | from_yaml }}\n\
{{ 'a.b*c d_e(f)' | regex_escape }}\n\
{{ url | urlsplit('hostname') }} {{ url | urlsplit('port') }} {{ url | urlsplit('path') | splitext }}\n\
{{ 'line one\\nline two' | comment }}\n\
{{ a | ansible.builtin.to_json }} {{ 'x' is ansible.builtin.match('x') }} {{ 'y' is not ansible.builtin.match('x') }}\n";
    let want = ansible(vars, template).expect("ansible renders it");
    assert_eq!(deploy(vars, template).unwrap(), want);
}

// Lookups on the controller: env and vars as Ansible has them; file from
// the role's files/; an unsupported one named.
#[test]
fn lookups_as_ansible_has_them() {
    let vars = "a: [1, 2]\nb: text\n";
    let template =
        "{{ lookup('vars', 'b') }} {{ query('vars', 'a', 'b') }} {{ lookup('env', 'DEPLOY_NO_SUCH_VAR_X') }}|\n\
{{ lookup('ansible.builtin.vars', 'a') }} {{ q('env', 'DEPLOY_NO_SUCH_VAR_X') }}\n";
    let want = ansible(vars, template).expect("ansible renders it");
    assert_eq!(deploy(vars, template).unwrap(), want);
    let version = std::fs::read_to_string(repo().join("roles/common/files/VERSION")).unwrap();
    assert_eq!(deploy(vars, "{{ lookup('file', 'VERSION') }}\n").unwrap(), format!("{}\n", version.trim_end()));
    let e = deploy(vars, "{{ lookup('password', '/tmp/x') }}\n").unwrap_err();
    assert!(
        e.contains(
            "lookup('password') is not supported by deploy (it has file, env, vars, first_found, fileglob, template, lines and pipe"
        ),
        "{e}"
    );
}

// `when:` on a file or directory: managed only where it holds.
#[test]
fn when_on_files_and_dirs_is_evaluated_per_host() {
    let (root, slot) = project();
    let role = root.join("roles/common/role.yml");
    let t = std::fs::read_to_string(&role).unwrap();
    let t = t.replacen(
        "files:\n",
        "files:\n  - dest: /etc/only-lab1\n    content: \"x\\n\"\n    when: inventory_hostname == 'lab1'\n",
        1,
    );
    let t = t.replacen("dirs:\n", "dirs:\n  - path: /srv/only-lab2\n    when: inventory_hostname == 'lab2'\n", 1);
    std::fs::write(&role, t).unwrap();
    for (host, file, dir) in [("lab1", true, false), ("lab2", false, true)] {
        let out = slot.path.join(host);
        let r = deploy_in(&root, &["render", "lab", "--host", host, "--out", out.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(out.join(host).join("etc/only-lab1").exists(), file, "{host}");
        let list = deploy_in(&root, &["plan", "lab", "--host", host, "--list"]);
        assert_eq!(list.stdout.contains("dir       /srv/only-lab2"), dir, "{host}: {list:?}");
    }
}

// password_hash('sha512', SALT) is glibc's SHA-512 crypt (what passlib and
// Python's crypt give Ansible), with passlib's 656,000 rounds unless
// `rounds=` says otherwise; without a salt it is refused, since every
// render would make another hash.
#[test]
fn password_hash_is_glibc_sha512_crypt() {
    let glibc = |setting: &str| {
        let code = format!("import crypt; print(crypt.crypt('s3cret pw', '{setting}'))");
        let o = Command::new("python3").args(["-W", "ignore", "-c", &code]).output().expect("python3");
        String::from_utf8(o.stdout).unwrap()
    };
    let want = glibc("$6$rounds=656000$mysalt123");
    assert!(want.starts_with("$6$rounds=656000$mysalt123$"), "{want}");
    assert_eq!(deploy("", "{{ 's3cret pw' | password_hash('sha512', 'mysalt123') }}\n").unwrap(), want);
    let want = glibc("$6$mysalt123");
    assert!(want.starts_with("$6$mysalt123$"), "{want}");
    assert_eq!(deploy("", "{{ 's3cret pw' | password_hash('sha512', 'mysalt123', rounds=5000) }}\n").unwrap(), want);
    let e = deploy("", "{{ 'x' | password_hash('sha512') }}\n").unwrap_err();
    assert!(e.contains("password_hash without a salt makes a new hash on every render"), "{e}");
}

// ansible-core 2.19 prints a None value as nothing in template output, and
// as None inside a container.
#[test]
fn none_prints_as_ansible_2_19_prints_it() {
    let vars = "x: null\nl: [1, null]\n";
    let template = "a{{ x }}b\n{{ x }}\n{{ l }} {{ [x] }} {{ x is none }}\n";
    let want = ansible(vars, template).expect("ansible renders it");
    assert_eq!(deploy(vars, template).unwrap(), want);
    // a None leaves no part: the rest can be one value, or nothing
    for template in ["{{ x }}\n", "{{ x }}{{ l }}\n", "{{ x }}{{ x }}\n"] {
        let want = ansible(vars, template).expect("ansible renders it");
        assert_eq!(deploy(vars, template).unwrap(), want, "{template:?}");
    }
}

// to_nice_yaml of a list and of a mapping holding one, as PyYAML writes them.
#[test]
fn to_nice_yaml_lists_as_pyyaml_writes_them() {
    let vars = "l: [a, b]\nm: {k: [1, 2], n: {x: y}}\nd: [{a: 1, b: [2, 3]}, c]\n";
    let template = "{{ l | to_nice_yaml }}--\n{{ m | to_nice_yaml }}--\n{{ m | to_nice_yaml(indent=2) }}--\n{{ l | to_yaml }}{{ d | to_nice_yaml }}--\n{{ d | to_nice_yaml(indent=2) }}";
    let want = ansible(vars, template).expect("ansible renders it");
    assert_eq!(deploy(vars, template).unwrap(), want);
}

// PyYAML folds a long plain or single-quoted scalar at a space once past 80
// columns, and a long flow collection before an item; keys never.
#[test]
fn long_yaml_lines_fold_as_pyyaml_folds_them() {
    let vars = "words: [alpha, bravo, charlie, delta, echo, foxtrot, golf, hotel, india, juliett, kilo, lima, mike, november]\n\
                q: 'yes: this one is quoted because of its colon and it runs well past the eightieth column of the line'\n\
                nested: {outer: {inner: [one two three four five six seven eight nine ten eleven twelve thirteen fourteen, x]}}\n";
    let template = "{{ words | to_yaml }}{{ {'q': q} | to_yaml }}{{ nested | to_nice_yaml }}--\n{{ nested | to_nice_yaml(indent=2) }}--\n{{ {'w': words, 'q': q} | to_nice_yaml }}";
    let want = ansible(vars, template).expect("ansible renders it");
    assert_eq!(deploy(vars, template).unwrap(), want);
}

// hostvars holds every host of the inventory, as in Ansible, not only the
// environment being deployed. Another environment's host has its variables
// made when asked for; where its secrets cannot be decrypted with this
// deploy's keys, using it is an error that says so.
#[test]
fn hostvars_holds_every_host_of_the_inventory() {
    let (root, slot) = project();
    let inv = root.join("inventory/hosts.yml");
    let text = std::fs::read_to_string(&inv).unwrap();
    let staging =
        "    staging:\n      hosts:\n        st1:\n          ansible_host: 192.0.2.20\n          ansible_user: ops\n";
    std::fs::write(&inv, text.replacen("    prod:\n", &format!("{staging}    prod:\n"), 1)).unwrap();
    std::fs::write(root.join("inventory/host_vars/st1.yml"), "role_of_st1: staging box\n").unwrap();
    let render = |t: &str| {
        std::fs::write(root.join("roles/common/templates/motd.j2"), t).unwrap();
        let out = slot.path.join("out");
        let _ = std::fs::remove_dir_all(&out);
        let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
        if r.code == 0 {
            Ok(std::fs::read_to_string(out.join("lab1/etc/motd")).unwrap())
        } else {
            Err(r.stderr)
        }
    };
    let t = "{{ hostvars | length }} {{ hostvars['st1'].ansible_host }} {{ hostvars['st1'].get('ansible_user') }} \
             {{ hostvars['st1'].get('nope', 'd') }} {{ 'web2' in hostvars }} {{ hostvars['st1'].group_names }} \
             {{ hostvars['st1'].timezone }} {{ hostvars['st1'].role_of_st1 }} {{ hostvars['lab2'].inventory_hostname }}\n";
    assert_eq!(render(t).unwrap(), "8 192.0.2.20 ops d True ['staging'] Etc/UTC staging box lab2\n");
    let e = render("{{ hostvars['web1'].ansible_host }}\n").unwrap_err();
    assert!(
        e.contains("hostvars['web1']: inventory/group_vars/prod/secrets.age: cannot be decrypted with the identity inventory/lab.identity"),
        "{e}"
    );
}

// A list or dict made by {% set %} in the template changes in place, as
// Python's do (the common `names.append(x)` in a loop); one that deploy
// cannot change is refused, never silently left as it was.
#[test]
fn set_lists_and_dicts_change_in_place_as_in_python() {
    let vars = "users: [{name: ann}, {name: bob}]\n";
    let template = "{% set names = [] %}{% for u in users %}{% set _ = names.append(u.name) %}{% endfor %}\
                    {{ names | join(',') }} {{ names | length }} {{ names[-1] }}|\
                    {% set d = {'z': 0} %}{{ d.update({'a': 1}) }}{{ d.setdefault('b', 2) }} {{ d }} {{ d | to_json }}|\
                    {% set l = [3, 1] %}{{ l.insert(0, 9) }}{{ l.pop() }} {{ l }} {{ l | sort }} {{ 9 in l }}\n";
    let want = ansible(vars, template).expect("ansible renders it");
    assert_eq!(deploy(vars, template).unwrap(), want);
    let e = deploy(vars, "{{ users.append(1) }}\n").unwrap_err();
    assert!(
        e.contains(
            "append() changes a list or dict in place, which deploy supports on one made by `{% set name = [] %}`"
        ),
        "{e}"
    );
}

// Datetimes subtract to a timedelta, as in Python: days, seconds,
// total_seconds() and its printing.
#[test]
fn datetimes_subtract_as_in_python() {
    let vars = "a: '2024-03-04 10:00:00'\nb: '2024-03-01 12:30:00'\n";
    let template = "{{ ((a | to_datetime) - (b | to_datetime)).days }} {{ ((a | to_datetime) - (b | to_datetime)).seconds }} \
                    {{ ((b | to_datetime) - (a | to_datetime)) }} {{ ((a | to_datetime) - (b | to_datetime)).total_seconds() }} \
                    {{ (now() - (a | to_datetime)).days > 0 }}\n";
    let want = ansible(vars, template).expect("ansible renders it");
    assert_eq!(deploy(vars, template).unwrap(), want);
}

/// Each role of `roles` (name, then its files as (path, text) in Ansible's
/// layout, which deploy reads too) writes its `templates/t.j2` to
/// /etc/NAME.txt; `vars` are every host's (a play's vars in Ansible,
/// group_vars/all in deploy). Returns (Ansible's, deploy's) outputs by role.
fn roles_both(roles: &[(&str, &[(&str, &str)])], vars: &str) -> (Vec<String>, Vec<String>) {
    let (root, slot) = project();
    let d = slot.path.join("ansible");
    let names: Vec<&str> = roles.iter().map(|r| r.0).collect();
    for (name, files) in roles {
        for base in [d.join("roles").join(name), root.join("roles").join(name)] {
            for (p, text) in files.iter() {
                let f = base.join(p);
                std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                std::fs::write(f, text).unwrap();
            }
        }
        let task = format!("- template: {{src: t.j2, dest: out-{name}.txt}}\n");
        std::fs::create_dir_all(d.join("roles").join(name).join("tasks")).unwrap();
        std::fs::write(d.join("roles").join(name).join("tasks/main.yml"), task).unwrap();
        let spec = format!("files:\n  - dest: /etc/{name}.txt\n    template: t.j2\n");
        std::fs::write(root.join("roles").join(name).join("role.yml"), spec).unwrap();
    }
    let indented: String = vars.lines().map(|l| format!("    {l}\n")).collect();
    let play =
        format!("- hosts: localhost\n  gather_facts: false\n  vars:\n{indented}  roles: [{}]\n", names.join(", "));
    std::fs::write(d.join("play.yml"), play).unwrap();
    let o = playbook(&d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let a = names.iter().map(|n| std::fs::read_to_string(d.join(format!("out-{n}.txt"))).unwrap()).collect();
    let deploy_yml = std::fs::read_to_string(root.join("deploy.yml")).unwrap();
    let deploy_yml = deploy_yml.replacen("roles: [common]", &format!("roles: [common, {}]", names.join(", ")), 1);
    std::fs::write(root.join("deploy.yml"), deploy_yml).unwrap();
    let all = root.join("inventory/group_vars/all.yml");
    let text = std::fs::read_to_string(&all).unwrap();
    std::fs::write(&all, format!("{text}\n{vars}")).unwrap();
    let out = slot.path.join("out");
    let r = deploy_in(&root, &["render", "lab", "--host", "lab1", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b = names.iter().map(|n| std::fs::read_to_string(out.join(format!("lab1/etc/{n}.txt"))).unwrap()).collect();
    (a, b)
}

// A name two roles both default (or both set in vars/) reads as each role's
// own in that role's templates, and so does a variable whose template uses
// it: Ansible puts the task's own role's defaults and vars above the others'.
#[test]
fn each_role_sees_its_own_defaults_and_vars_as_in_ansible() {
    let t = "name={{ shared_name }} v={{ shared_var }} d={{ derived }} only={{ only_rb }}\n";
    let ra: &[(&str, &str)] = &[
        ("defaults/main.yml", "shared_name: from-ra\n"),
        ("vars/main.yml", "shared_var: var-ra\n"),
        ("templates/t.j2", t),
    ];
    let rb: &[(&str, &str)] = &[
        ("defaults/main.yml", "shared_name: from-rb\nonly_rb: rb-default\n"),
        ("vars/main.yml", "shared_var: var-rb\n"),
        ("templates/t.j2", t),
    ];
    let (a, d) = roles_both(&[("ra", ra), ("rb", rb)], "derived: \"d-{{ shared_name }}\"\n");
    assert_eq!(a[0], "name=from-ra v=var-ra d=d-from-ra only=rb-default\n");
    assert_eq!(d, a);
}

// Three gaps of deploy's against ansible-core 2.19: lookup('lines') runs a
// command on the controller (in the playbook's directory, which is the
// repository for deploy), a vars value may use unary plus, and fileglob is
// a filter as well as a lookup (relative to where Ansible runs).
#[test]
fn lines_lookup_unary_plus_in_vars_and_the_fileglob_filter() {
    let files: &[(&str, &str)] = &[("files/a.txt", "a\n"), ("files/b.txt", "b\n"), ("files/c.md", "c\n")];
    let vars = "x: \"{{ [1 + 2 * 3 / 4] + [-2.5, +2.5, 3.5] }}\"\ny: \"n={{ +3 }}\"\n";
    let t = "{{ lookup('lines', 'cat files/a.txt files/b.txt') }} {{ query('lines', 'printf \\'p\\\\nq\\\\n\\'') | join('+') }}\n\
             {{ x }} {{ y }}\n\
             {{ 'files/*.txt' | fileglob | sort | join(', ') }} {{ 'files/*.none' | fileglob }}\n\
             {{ lookup('pipe', 'printf \\'one\\\\n\\'') }}\n";
    let want = ansible_with(vars, t, files).expect("ansible renders it");
    assert_eq!(want, "a,b p+q\n[2.5, -2.5, 2.5, 3.5] n=3\nfiles/a.txt, files/b.txt []\none\n");
    assert_eq!(deploy_with(vars, t, files).unwrap(), want);
}

// role_path and role_name as a task of the role sees them.
#[test]
fn role_path_and_role_name_as_in_ansible() {
    let t = "{{ role_path | basename }} {{ role_name }} {{ (role_path ~ '/templates/t.j2') is file }}\n";
    let ra: &[(&str, &str)] = &[("templates/t.j2", t)];
    let (a, d) = roles_both(&[("ra", ra)], "unused: 1\n");
    assert_eq!(a[0], "ra ra True\n");
    assert_eq!(d, a);
}

//! The host scripts run under dash against a temporary state directory
//! (`DEPLOY_STATE`) and temporary managed paths: no lab, no SSH.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::remote::apply::{parse_apply, SCRIPT};
use crate::remote::revert::{parse_revert, DEADMAN, SCRIPT as REVERT};

struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let p = std::env::temp_dir().join(format!("deploy-sh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("state")).unwrap();
        Root(p)
    }
    fn path(&self, rel: &str) -> String {
        self.0.join(rel).to_str().unwrap().to_string()
    }
    fn state(&self) -> PathBuf {
        self.0.join("state")
    }
    /// `dash -c SCRIPT NAME ARGS...` with the state directory set.
    fn run(&self, script: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> (i32, String) {
        let mut c = Command::new("dash");
        c.arg("-c").arg(script).arg("test").args(args).env("DEPLOY_STATE", self.state());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(stdin);
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    }
    fn lock(&self, holder: &str) {
        std::fs::create_dir_all(self.state().join("lock")).unwrap();
        std::fs::write(self.state().join("lock/holder"), format!("{holder}\n")).unwrap();
    }
    fn audit(&self) -> String {
        std::fs::read_to_string(self.state().join("audit.log")).unwrap_or_default()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha(b: &[u8]) -> String {
    crate::util::sha256_hex(b)
}

/// An upload writing `files` (path, new bytes, bytes on the host now).
/// One path of an upload: where, the new bytes, the bytes on the host now.
type Up<'a> = (&'a str, &'a [u8], Option<&'a [u8]>);

fn upload(files: &[Up]) -> Vec<u8> {
    upload_validated(files, "")
}

/// An upload whose files are checked with `validate` (`%s` = the new file).
fn upload_validated(files: &[Up], validate: &str) -> Vec<u8> {
    use crate::remote::apply::{Body, Item, Upload};
    let items = files
        .iter()
        .map(|(path, new, old)| match path.strip_suffix('/') {
            // a path ending in / is a directory to create
            Some(dir) => Item::dir(dir),
            None => {
                let exp = old.map(|o| format!("sha256:{}", sha(o))).unwrap_or_else(|| "absent".into());
                Item { validate: validate.into(), ..Item::file(path, exp, Body::Bytes(new.to_vec())) }
            }
        })
        .collect();
    let mut out = Vec::new();
    Upload::of(items).write(&mut out).unwrap();
    out
}

#[test]
fn apply_then_revert_restores_the_old_bytes() {
    let r = Root::new("revert");
    let f = r.path("etc/app.conf");
    std::fs::create_dir_all(Path::new(&f).parent().unwrap()).unwrap();
    std::fs::write(&f, b"old\n").unwrap();
    r.lock("me");
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", ""], &upload(&[(&f, b"new\n", Some(b"old\n"))]), &[]);
    let a = parse_apply(out.as_bytes()).unwrap();
    assert!(code == 0 && a.done && a.applied == vec![f.clone()], "{code} {out}");
    assert_eq!(std::fs::read(&f).unwrap(), b"new\n");
    let (_, out) = r.run(REVERT, &["d1/p000"], b"", &[]);
    let rv = parse_revert(out.as_bytes()).unwrap();
    assert!(rv.done && rv.not_restored.is_empty(), "{out}");
    assert_eq!(std::fs::read(&f).unwrap(), b"old\n");
}

// A revert that cannot restore a path says which, and never claims REVERTED.
#[test]
fn a_revert_that_fails_names_the_path_and_says_incomplete() {
    let r = Root::new("incomplete");
    let (a, b) = (r.path("etc/a.conf"), r.path("etc/sub/b.conf"));
    std::fs::create_dir_all(r.0.join("etc/sub")).unwrap();
    std::fs::write(&a, b"a-old\n").unwrap();
    std::fs::write(&b, b"b-old\n").unwrap();
    r.lock("me");
    let up = upload(&[(&a, b"a-new\n", Some(b"a-old\n")), (&b, b"b-new\n", Some(b"b-old\n"))]);
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", ""], &up, &[]);
    assert_eq!(code, 0, "{out}");
    // the directory holding b.conf is now a plain file: b.conf cannot come back
    std::fs::remove_dir_all(r.0.join("etc/sub")).unwrap();
    std::fs::write(r.0.join("etc/sub"), b"in the way\n").unwrap();
    let (_, out) = r.run(REVERT, &["d1/p000"], b"", &[]);
    assert!(out.contains("REVERT-INCOMPLETE\td1/p000\t1"), "{out}");
    assert!(!out.contains("\nREVERTED"), "{out}");
    let rv = parse_revert(out.as_bytes()).unwrap();
    assert_eq!(rv.not_restored, vec![(b.clone(), "cannot put the old file back".to_string())]);
    assert_eq!(std::fs::read(&a).unwrap(), b"a-old\n", "the other path is restored");
    assert!(r.audit().contains("REVERT-INCOMPLETE journal=d1/p000 paths_not_restored=1"), "{}", r.audit());
}

// Phase journals sort as numbers (p10 is undone before p2; the engine also
// zero-pads them), so the host ends with the bytes it had before phase 0,
// and a directory phase 2 made is gone after phase 10's file in it.
#[test]
fn dead_man_revert_undoes_eleven_phases_newest_first() {
    let r = Root::new("phases");
    let f = r.path("etc/motd");
    std::fs::create_dir_all(r.0.join("etc")).unwrap();
    std::fs::write(&f, b"original\n").unwrap();
    r.lock("me deploy=d1");
    let (dir, inner) = (r.path("etc/d/"), r.path("etc/d/inner"));
    let mut before = b"original\n".to_vec();
    for p in 0..11 {
        let new = format!("phase {p}\n").into_bytes();
        let mut files: Vec<Up> = vec![(&f, &new, Some(&before))];
        match p {
            2 => files.push((&dir, b"", None)),
            10 => files.push((&inner, b"x\n", None)),
            _ => {}
        }
        let (code, out) = r.run(SCRIPT, &[&format!("d1/p{p}"), "me deploy=d1", ""], &upload(&files), &[]);
        assert_eq!(code, 0, "phase {p}: {out}");
        before = new;
    }
    std::fs::write(r.state().join("journal/d1/compose.sh"), "").unwrap();
    let (code, _) = r.run(DEADMAN, &["d1"], b"", &[]);
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "original\n");
    assert!(!r.0.join("etc/d").exists(), "phase 2's directory is removed after phase 10's file");
    assert!(r.audit().contains(" REVERTED deploy=d1 "), "{}", r.audit());
    assert!(!r.state().join("lock").exists(), "the revert releases the deploy's lock");
}

// A host installed in German: stat, sort and friends speak German unless
// the script says LC_ALL=C. The probe must read the same either way.
#[test]
fn probe_reads_the_same_under_a_german_and_a_french_locale() {
    for loc in ["de_DE", "fr_FR"] {
        let name = format!("{loc}.UTF-8");
        let have = Command::new("locale").arg("-a").output().unwrap();
        if !String::from_utf8_lossy(&have.stdout).to_lowercase().contains(&format!("{}.utf8", loc.to_lowercase())) {
            let st = Command::new("localedef").args(["-i", loc, "-f", "UTF-8", &name]).status().unwrap();
            assert!(st.success(), "localedef {name} (package locales) failed");
        }
        let r = Root::new(&format!("locale-{loc}"));
        let f = r.path("etc/file");
        std::fs::create_dir_all(r.0.join("etc")).unwrap();
        std::fs::write(&f, b"x\n").unwrap();
        // positive control: the locale really changes what stat prints
        let o = Command::new("stat").args(["--printf", "%F"]).arg(&f).env("LC_ALL", &name).output().unwrap();
        let kind = String::from_utf8_lossy(&o.stdout).to_string();
        assert_ne!(kind, "regular file", "locale {name} did not take effect");
        let env = [("LANG", name.as_str()), ("LC_ALL", name.as_str())];
        // and the directories new files need: those that are not directories
        let (etc, gone, dangling) = (r.path("etc"), r.path("gone/deep"), r.path("dangling"));
        std::os::unix::fs::symlink(&gone, &dangling).unwrap();
        let argv = ["no", "0", "0", "4", &etc, &f, &gone, &dangling, &f, &etc];
        let (code, out) = r.run(crate::remote::probe::SCRIPT, &argv, b"", &env);
        assert_eq!(code, 0, "{out}");
        let p = crate::remote::probe::parse_probe(out.as_bytes()).unwrap();
        assert_eq!(p.paths[&f].kind, crate::plan::state::Kind::File, "{loc}: {out}");
        assert_eq!(p.paths[&etc].kind, crate::plan::state::Kind::Dir, "{loc}: {out}");
        let nodir =
            [(f.clone(), "file"), (gone.clone(), "none"), (dangling.clone(), "link")].map(|(p, k)| (p, k.into()));
        assert_eq!(p.not_dirs, nodir.into_iter().collect(), "{loc}: {out}");
    }
}

// The TCP check runs under dash and gets host and port as data.
#[test]
fn health_tcp_check_under_dash() {
    let r = Root::new("health");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let input = format!("T\t2\t127.0.0.1\t{port}\nT\t1\t127.0.0.1;touch {}\t1\n", r.path("pwned"));
    let (code, out) = r.run(crate::remote::health::SCRIPT, &[], input.as_bytes(), &[]);
    let h = crate::remote::health::parse_health(out.as_bytes()).unwrap();
    assert_eq!(h.passed, vec![format!("127.0.0.1:{port}")], "{out}");
    assert_eq!(h.failed.len(), 1, "{out}");
    assert_eq!(code, 1);
    assert!(!r.0.join("pwned").exists(), "the address was run as code");
}

// Every host script is POSIX sh as shellcheck reads it (`-s sh`).
#[test]
fn shellcheck_is_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/remote");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 10, "{scripts:?}");
    let o = Command::new("shellcheck").args(["-s", "sh", "-f", "gcc"]).args(&scripts).output();
    let o = o.expect("shellcheck is not installed (apt-get install shellcheck; .ci/run does)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

// `%s` is replaced wherever it stands, also inside the command's own quotes
// (as Ansible does), and a failed validation changes nothing.
#[test]
fn validate_sees_the_new_file_wherever_percent_s_stands() {
    let r = Root::new("validate");
    let f = r.path("etc/v.conf");
    std::fs::create_dir_all(r.0.join("etc")).unwrap();
    std::fs::write(&f, b"old\n").unwrap();
    r.lock("me");
    let up = upload_validated(&[(&f, b"new\n", Some(b"old\n"))], r#"test -s "%s" && grep -q '^new' %s"#);
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", ""], &up, &[]);
    assert!(code == 0 && parse_apply(out.as_bytes()).unwrap().done, "{out}");
    assert_eq!(std::fs::read(&f).unwrap(), b"new\n");
    let up = upload_validated(&[(&f, b"newer\n", Some(b"new\n"))], "grep -q '^old' %s");
    let (code, out) = r.run(SCRIPT, &["d2/p000", "me", ""], &up, &[]);
    let a = parse_apply(out.as_bytes()).unwrap();
    assert!(code == 4 && a.invalid.len() == 1 && !a.done, "{out}");
    assert_eq!(std::fs::read(&f).unwrap(), b"new\n");
}

// A directory whose parents are missing: they are made (0755), journaled,
// and a revert removes exactly them.
#[test]
fn dirs_get_their_missing_parents_and_a_revert_removes_exactly_those() {
    use std::os::unix::fs::PermissionsExt;
    let r = Root::new("parents");
    std::fs::create_dir_all(r.0.join("opt")).unwrap();
    r.lock("me");
    let dir = r.path("opt/app/conf/core/");
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", ""], &upload(&[(&dir, b"", None)]), &[]);
    let a = parse_apply(out.as_bytes()).unwrap();
    assert!(code == 0 && a.done, "{out}");
    assert_eq!(a.applied, vec![r.path("opt/app"), r.path("opt/app/conf"), r.path("opt/app/conf/core")]);
    let mode = std::fs::metadata(r.0.join("opt/app/conf")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    let (_, out) = r.run(REVERT, &["d1/p000"], b"", &[]);
    assert!(parse_revert(out.as_bytes()).unwrap().not_restored.is_empty(), "{out}");
    assert!(!r.0.join("opt/app").exists(), "a parent this deploy made is left");
    assert!(r.0.join("opt").exists(), "a parent that was there is gone");
}

// Pruning keeps the newest journals and any a dead-man revert may need.
#[test]
fn prune_keeps_the_newest_and_the_pending() {
    let r = Root::new("prune");
    let j = r.state().join("journal");
    for id in ["20260101T000000-a", "20260102T000000-b", "20260103T000000-c", "20260104T000000-d"] {
        std::fs::create_dir_all(j.join(id)).unwrap();
    }
    std::fs::write(j.join("20260101T000000-a/deadman.armed"), "sleeper\t1\t2\n").unwrap();
    let script = format!("{}prune_journals 2\n", crate::remote::lock::LOCK_FOR_TESTS);
    let (code, _) = r.run(&script, &[], b"", &[]);
    assert_eq!(code, 0);
    let mut left: Vec<String> =
        std::fs::read_dir(&j).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, vec!["20260101T000000-a", "20260103T000000-c", "20260104T000000-d"]);
}

/// system.sh journals each operation's undo before running it; a revert of
/// the phase undoes them newest first, and tolerates the undo of the
/// operation that failed half-way.
#[test]
fn system_operations_are_undone_by_a_revert_even_when_one_failed() {
    use crate::plan::system::{Op, Stage};
    let r = Root::new("system");
    let (a, b) = (r.path("a"), r.path("b"));
    let op = |label: &str, argv: Vec<String>, undo: Vec<String>| Op {
        stage: Stage::Post,
        order: 0,
        label: label.into(),
        argv,
        undo: vec![undo],
        rerun: vec![format!("echo rerun {label}")],
    };
    let w = |p: &str, text: &str| {
        vec!["sh".into(), "-c".into(), format!("printf {text} >\"$1\""), "sh".into(), p.to_string()]
    };
    let rm = |p: &str| vec!["rm".to_string(), p.to_string()];
    // the second writes b, then fails: its undo runs, and may find nothing
    let failing = vec![
        "sh".into(),
        "-c".into(),
        "printf x >\"$1\"; echo 'no space left' >&2; exit 7".into(),
        "sh".into(),
        b.clone(),
    ];
    let ops = [op("first", w(&a, "one"), rm(&a)), op("second", failing, rm(&b))];
    let input = crate::remote::system::encode(&ops.iter().collect::<Vec<_>>());
    let (code, out) = r.run(crate::remote::system::SCRIPT, &["d1/p000"], input.as_bytes(), &[]);
    assert_eq!(code, 1, "{out}");
    let reply = crate::remote::system::parse_system(out.as_bytes()).unwrap();
    assert_eq!(reply.done, vec!["first"]);
    assert_eq!(reply.failed, Some(("second".into(), "7".into(), vec!["no space left".into()])));
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "one");
    let j = r.state().join("journal/d1/p000");
    assert_eq!(std::fs::read_to_string(j.join("triggers")).unwrap(), "echo rerun first\necho rerun second\n");
    let (code, out) = r.run(REVERT, &["d1/p000"], b"", &[]);
    assert_eq!(code, 0, "{out}");
    let rv = parse_revert(out.as_bytes()).unwrap();
    assert!(rv.done && rv.not_restored.is_empty(), "{out}");
    assert!(!Path::new(&a).exists() && !Path::new(&b).exists(), "not undone");
    // an undo that fails of an operation that succeeded is named
    let input = crate::remote::system::encode(&[&op("third", w(&a, "two"), vec!["false".into()])]);
    let (code, _) = r.run(crate::remote::system::SCRIPT, &["d2/p000"], input.as_bytes(), &[]);
    assert_eq!(code, 0);
    let (_, out) = r.run(REVERT, &["d2/p000"], b"", &[]);
    assert_eq!(parse_revert(out.as_bytes()).unwrap().not_restored, vec![("third".into(), "undo failed: false".into())]);
}

// A word with a newline or a tab (a script of many lines, `[bash, -c,
// SCRIPT]`) reaches its program whole through the tab-separated protocol.
#[test]
fn a_script_of_many_lines_is_one_argument_of_its_shell() {
    use crate::plan::system::{Op, Stage};
    let r = Root::new("script");
    let out = r.path("out");
    let script = format!("set -e\nprintf '%s|%s\\n' \"$0\" 'a\tb' > {out}\necho done >> {out}\n");
    let op = Op {
        stage: Stage::Post,
        order: 0,
        label: "script".into(),
        argv: vec!["sh".into(), "-c".into(), script, "named".into()],
        undo: vec![],
        rerun: vec![],
    };
    let input = crate::remote::system::encode(&[&op]);
    assert!(!input.contains("set -e"), "sent as it is: {input}");
    let (code, said) = r.run(crate::remote::system::SCRIPT, &["d1/p000"], input.as_bytes(), &[]);
    assert_eq!(code, 0, "{said}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "named|a\tb\ndone\n");
}

// facts.sh under dash on this machine: every line parses, and the facts are
// typed as Ansible types them.
#[test]
fn facts_parse_under_dash() {
    let r = Root::new("facts");
    let (code, out) = r.run(crate::remote::facts::SCRIPT, &[], b"", &[]);
    assert_eq!(code, 0, "{out}");
    let f = crate::remote::facts::parse_facts(out.as_bytes()).unwrap();
    assert!(f["memtotal_mb"].as_i64().is_some_and(|m| m > 0), "{f:?}");
    assert!(f["processor_vcpus"].as_i64().is_some_and(|n| n >= 1), "{f:?}");
    assert_eq!(f["system"], "Linux");
    assert!(f["all_ipv4_addresses"].is_array() && f["lsb"].is_object() && f["env"]["PATH"].is_string(), "{f:?}");
    assert_eq!(f["date_time"]["epoch"].as_str().map(str::len), Some(10));
}

// An upload bigger than the journal's free space is refused before a byte
// is read: nothing changed, the journal gone, the lock released.
#[test]
fn an_upload_that_cannot_fit_is_refused_before_it_is_read() {
    let r = Root::new("nospace");
    let f = r.path("etc/app.conf");
    std::fs::create_dir_all(r.0.join("etc")).unwrap();
    r.lock("me");
    let up = upload(&[(&f, b"new\n", None)]);
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", "", "60", "0", "999999999999"], &up, &[]);
    let a = parse_apply(out.as_bytes()).unwrap();
    assert_eq!(code, 3, "{out}");
    let (what, why) = a.error.unwrap();
    assert_eq!(what, "upload");
    assert!(why.starts_with("the upload takes 999999999999 KiB, and the disk of "), "{why}");
    assert!(why.ends_with(" KiB free: nothing was changed; free space there first"), "{why}");
    assert!(!Path::new(&f).exists());
    assert!(!r.state().join("journal/d1/p000").exists(), "the journal is left behind");
    assert!(!r.state().join("lock").exists(), "the lock is held");
}

// The old version of a replaced file is kept by a hard link where the
// journal shares its filesystem: the same inode, no copy; a revert puts
// its bytes back.
#[test]
fn the_old_version_is_kept_by_a_hard_link_not_a_copy() {
    use std::os::unix::fs::MetadataExt;
    let r = Root::new("link");
    let f = r.path("etc/big.bin");
    std::fs::create_dir_all(r.0.join("etc")).unwrap();
    std::fs::write(&f, b"old contents\n").unwrap();
    let ino = std::fs::metadata(&f).unwrap().ino();
    r.lock("me");
    let up = upload(&[(&f, b"new contents\n", Some(b"old contents\n"))]);
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", ""], &up, &[]);
    assert!(code == 0 && parse_apply(out.as_bytes()).unwrap().done, "{out}");
    let kept = std::fs::metadata(r.state().join("journal/d1/p000/old/0")).unwrap();
    assert_eq!(kept.ino(), ino, "the journal copied the old file");
    assert_eq!(std::fs::read(&f).unwrap(), b"new contents\n");
    let (_, out) = r.run(REVERT, &["d1/p000"], b"", &[]);
    assert!(parse_revert(out.as_bytes()).unwrap().not_restored.is_empty(), "{out}");
    assert_eq!(std::fs::read(&f).unwrap(), b"old contents\n");
}

// Files for a directory on another filesystem than the journal (here
// /dev/shm, a tmpfs) are staged beside it and renamed in; a revert removes
// them and the staging leaves nothing behind.
#[test]
fn files_on_another_filesystem_are_staged_beside_their_directory() {
    use std::os::unix::fs::MetadataExt;
    let r = Root::new("xdev");
    let other = PathBuf::from(format!("/dev/shm/deploy-xdev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other);
    std::fs::create_dir_all(&other).unwrap();
    let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
    if dev(&other) == dev(&r.state()) {
        let _ = std::fs::remove_dir_all(&other);
        panic!("/dev/shm is on the same filesystem as {}: no second filesystem to test with", r.0.display());
    }
    let (a, b) = (other.join("a.conf"), other.join("b.conf"));
    std::fs::write(&b, b"b-old\n").unwrap();
    r.lock("me");
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let up = upload(&[(a_s, b"a-new\n", None), (b_s, b"b-new\n", Some(b"b-old\n"))]);
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", ""], &up, &[]);
    let res = parse_apply(out.as_bytes()).unwrap();
    assert!(code == 0 && res.done && res.applied.len() == 2, "{out}");
    assert_eq!(std::fs::read(&a).unwrap(), b"a-new\n");
    assert_eq!(std::fs::read(&b).unwrap(), b"b-new\n");
    let left: Vec<_> = std::fs::read_dir(&other).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "staging left behind: {left:?}");
    let (_, out) = r.run(REVERT, &["d1/p000"], b"", &[]);
    assert!(parse_revert(out.as_bytes()).unwrap().not_restored.is_empty(), "{out}");
    assert!(!a.exists());
    assert_eq!(std::fs::read(&b).unwrap(), b"b-old\n");
    std::fs::remove_dir_all(&other).unwrap();
}

/// An upload as the host reads it: `deploy-upload 1 BYTES`, the manifest,
/// then a tar of `files`, with its `end` or without (cut short).
fn raw_upload(manifest: &str, files: &[(&str, &[u8])], end: bool) -> Vec<u8> {
    let mut out = format!("deploy-upload\t1\t{:>12}\n{manifest}", manifest.len()).into_bytes();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    for (name, data) in files {
        add(name, data);
    }
    if end {
        add("end", b"");
    }
    out.extend(b.into_inner().unwrap());
    out
}

// A stream the controller stopped before its end (a source file that
// changed under it) changes nothing, and the host says why; the staging
// directory made for another filesystem goes too. Something that is not an
// upload of this version is refused before anything is read into place.
#[test]
fn an_upload_cut_short_changes_nothing() {
    let r = Root::new("cutshort");
    let other = PathBuf::from(format!("/dev/shm/deploy-cut-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other);
    std::fs::create_dir_all(&other).unwrap();
    let f = other.join("app.conf");
    let manifest = format!("K\t0\t1\t{}\nF\t0\t{}\t-\t-\t-\tabsent\t0\t\n", other.display(), f.display());
    r.lock("me");
    let up = raw_upload(&manifest, &[("c/0/app.conf", b"new\n")], false);
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", ""], &up, &[]);
    let a = parse_apply(out.as_bytes()).unwrap();
    assert_eq!(code, 3, "{out}");
    assert_eq!(
        a.error,
        Some(("upload".into(), "the upload was cut short (the controller stopped it); nothing was changed".into()))
    );
    let left: Vec<_> = std::fs::read_dir(&other).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!r.state().join("lock").exists(), "the lock is held");
    r.lock("me");
    let (code, out) = r.run(SCRIPT, &["d1/p001", "me", ""], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &[]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(
        parse_apply(out.as_bytes()).unwrap().error.unwrap().1,
        "this is not an upload of this version of deploy; nothing was changed"
    );
    std::fs::remove_dir_all(&other).unwrap();
}

// Files for a directory on another mount are written there, not in the
// journal: its free space is checked, before anything is read, against
// what lands on it, and a refusal names the directory.
#[test]
fn files_for_another_filesystem_need_room_there_not_in_the_journal() {
    let r = Root::new("room");
    let other = PathBuf::from(format!("/dev/shm/deploy-room-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other);
    std::fs::create_dir_all(&other).unwrap();
    let f = other.join("big.bin");
    let manifest =
        |kib: u64| format!("K\t0\t{kib}\t{}\nF\t0\t{}\t-\t-\t-\tabsent\t0\t\n", other.display(), f.display());
    r.lock("me");
    // it says 1 TiB for /dev/shm: refused, with nothing left there
    let up = raw_upload(&manifest(1 << 30), &[("c/0/big.bin", b"x")], true);
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", "", "60", "0", &(1u64 << 30).to_string()], &up, &[]);
    assert_eq!(code, 3, "{out}");
    let why = parse_apply(out.as_bytes()).unwrap().error.unwrap().1;
    let want = format!("the new files for {} take 1073741824 KiB, and its disk has ", other.display());
    assert!(why.starts_with(&want) && why.ends_with(" KiB free: nothing was changed; free space there first"), "{why}");
    assert!(std::fs::read_dir(&other).unwrap().next().is_none(), "left behind");
    // two directories on one mount: what lands there is their sum
    let sub = other.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let two = format!(
        "K\t0\t{half}\t{}\nK\t1\t{half}\t{}\nF\t0\t{}\t-\t-\t-\tabsent\t0\t\nF\t1\t{}/b\t-\t-\t-\tabsent\t1\t\n",
        other.display(),
        sub.display(),
        f.display(),
        sub.display(),
        half = 1u64 << 29
    );
    r.lock("me");
    let up = raw_upload(&two, &[("c/0/big.bin", b"x"), ("c/1/b", b"y")], true);
    let (code, out) = r.run(SCRIPT, &["d1/p002", "me", "", "60", "0", &(1u64 << 30).to_string()], &up, &[]);
    assert_eq!(code, 3, "{out}");
    assert!(parse_apply(out.as_bytes()).unwrap().error.unwrap().1.starts_with(&want), "{out}");
    std::fs::remove_dir(&sub).unwrap();
    // what fits goes there
    r.lock("me");
    let up = raw_upload(&manifest(2), &[("c/0/big.bin", b"x")], true);
    let (code, out) = r.run(SCRIPT, &["d1/p001", "me", "", "60", "0", "2"], &up, &[]);
    assert!(code == 0 && parse_apply(out.as_bytes()).unwrap().done, "{out}");
    assert_eq!(std::fs::read(&f).unwrap(), b"x");
    std::fs::remove_dir_all(&other).unwrap();
}

// The files of a directory this upload makes, on another mount than the
// journal, are staged beside its nearest existing ancestor: checked for
// room on that mount, never copied out of the journal, and nothing is left
// beside the ancestor. A revert removes what was made.
#[test]
fn files_for_a_new_directory_are_staged_beside_its_nearest_ancestor() {
    let r = Root::new("newdir");
    let other = PathBuf::from(format!("/dev/shm/deploy-newdir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other);
    std::fs::create_dir_all(&other).unwrap();
    let sub = other.join("new/sub");
    let f = sub.join("a.conf");
    let manifest = |kib: u64| {
        format!(
            "K\t0\t{kib}\t{}\nD\t1\t{}\t-\t-\t-\tabsent\t-\t\nF\t0\t{}\t-\t-\t-\tabsent\t0\t\n",
            sub.display(),
            sub.display(),
            f.display()
        )
    };
    r.lock("me");
    let up = raw_upload(&manifest(1 << 30), &[("c/0/a.conf", b"a\n")], true);
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", "", "60", "0", &(1u64 << 30).to_string()], &up, &[]);
    assert_eq!(code, 3, "{out}");
    let why = parse_apply(out.as_bytes()).unwrap().error.unwrap().1;
    let want = format!("the new files for {} take 1073741824 KiB, and its disk has ", sub.display());
    assert!(why.starts_with(&want), "{why}");
    assert!(std::fs::read_dir(&other).unwrap().next().is_none(), "left behind");
    r.lock("me");
    let up = raw_upload(&manifest(1), &[("c/0/a.conf", b"a\n")], true);
    let (code, out) = r.run(SCRIPT, &["d1/p001", "me", "", "60", "0", "1"], &up, &[]);
    assert!(code == 0 && parse_apply(out.as_bytes()).unwrap().done, "{out}");
    assert_eq!(std::fs::read(&f).unwrap(), b"a\n");
    let left: Vec<_> = std::fs::read_dir(&other).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["new"], "staging left behind");
    let (_, out) = r.run(REVERT, &["d1/p001"], b"", &[]);
    assert!(parse_revert(out.as_bytes()).unwrap().not_restored.is_empty(), "{out}");
    assert!(std::fs::read_dir(&other).unwrap().next().is_none(), "a revert left {:?}", std::fs::read_dir(&other));
    std::fs::remove_dir_all(&other).unwrap();
}

// A link is made, pointed elsewhere, and a revert undoes each: the made one
// goes, the repointed one points back. One changed since the plan is left
// alone.
#[test]
fn links_are_made_repointed_and_reverted() {
    let r = Root::new("links");
    let (a, b) = (r.path("etc/a"), r.path("etc/b"));
    std::fs::create_dir_all(r.path("etc")).unwrap();
    std::os::unix::fs::symlink("/old/target", &b).unwrap();
    let manifest =
        format!("L\t0\t{a}\t-\t-\t-\tabsent\t-\t/new/a\nL\t1\t{b}\t-\t-\t-\tlink:/old/target\t-\t../rel b\n");
    r.lock("me");
    let (code, out) = r.run(SCRIPT, &["d1/p000", "me", ""], &raw_upload(&manifest, &[], true), &[]);
    let res = parse_apply(out.as_bytes()).unwrap();
    assert!(code == 0 && res.done && res.applied == [a.clone(), b.clone()], "{out}");
    let target = |p: &str| std::fs::read_link(p).map(|t| t.display().to_string()).unwrap_or_default();
    assert_eq!((target(&a), target(&b)), ("/new/a".into(), "../rel b".into()));
    let (_, out) = r.run(REVERT, &["d1/p000"], b"", &[]);
    assert!(parse_revert(out.as_bytes()).unwrap().not_restored.is_empty(), "{out}");
    assert!(std::fs::symlink_metadata(&a).is_err(), "the made link is still there");
    assert_eq!(target(&b), "/old/target");
    // changed on the host since the plan: left alone, and said so
    std::fs::remove_file(&b).unwrap();
    std::os::unix::fs::symlink("/by/hand", &b).unwrap();
    r.lock("me");
    let m = format!("L\t0\t{b}\t-\t-\t-\tlink:/old/target\t-\t/new/b\n");
    let (_, out) = r.run(SCRIPT, &["d1/p001", "me", ""], &raw_upload(&m, &[], true), &[]);
    let res = parse_apply(out.as_bytes()).unwrap();
    assert_eq!(
        res.skipped,
        [(
            b.clone(),
            "changed on the host since the plan (expected link:/old/target, found link:/by/hand); left untouched"
                .to_string()
        )]
    );
    assert_eq!(target(&b), "/by/hand");
}

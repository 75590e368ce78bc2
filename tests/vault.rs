//! ansible-vault content: an error until imported, never data; then
//! `deploy secrets import-vault` moves it into age, and the values resolve.

use std::path::Path;

use crate::common::*;

fn fixture(root: &Path, name: &str, to: &str) {
    std::fs::copy(repo().join("tests/fixtures/vault").join(name), root.join(to)).unwrap();
}

#[test]
fn vault_content_is_an_error_until_imported_then_resolves() {
    let (root, _slot) = project();
    fixture(&root, "inline.yml", "inventory/group_vars/lab/inline.yml");
    let r = deploy_in(&root, &["lab", "--check"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: inventory/group_vars/lab/inline.yml:2: `vault_api_key` is an ansible-vault value (`!vault`): deploy never reads vault ciphertext as data; convert it with `deploy secrets import-vault inventory/group_vars/lab/inline.yml --vault-password-file FILE`\n")
    );
    fixture(&root, "whole.yml", "inventory/group_vars/lab/vault.yml");
    std::fs::remove_file(root.join("inventory/group_vars/lab/inline.yml")).unwrap();
    let r = deploy_in(&root, &["lab", "--check"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "error: inventory/group_vars/lab/vault.yml:1: the file is encrypted with ansible-vault: deploy never reads vault ciphertext as data; convert it with `deploy secrets import-vault inventory/group_vars/lab/vault.yml --vault-password-file FILE`\n")
    );
    fixture(&root, "inline.yml", "inventory/group_vars/lab/inline.yml");
    fixture(&root, "password", "vault-password");
    std::fs::write(root.join("wrong-password"), "hunter3\n").unwrap();
    let files = ["inventory/group_vars/lab/inline.yml", "inventory/group_vars/lab/vault.yml"];
    let mut args = vec!["secrets", "import-vault"];
    args.extend(files);
    // a wrong password: named, and nothing written
    let wrong = deploy_in(&root, &[&args[..], &["--vault-password-file", "wrong-password"]].concat());
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(wrong.stderr.contains("inline.yml:2: `vault_api_key`: the vault password does not open it"), "{wrong:?}");
    assert!(!root.join("inventory/group_vars/lab/inline.age").exists());
    let ok = deploy_in(&root, &[&args[..], &["--vault-password-file", "vault-password"]].concat());
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(
        ok.stderr.contains("inventory/group_vars/lab/vault.yml: 2 values now in inventory/group_vars/lab/vault.age"),
        "{ok:?}"
    );
    assert!(!root.join("inventory/group_vars/lab/vault.yml").exists());
    let rest = std::fs::read_to_string(root.join("inventory/group_vars/lab/inline.yml")).unwrap();
    assert_eq!(rest, "plain_setting: 42\nother_plain: yes\n");
    let v = deploy_in(
        &root,
        &["vars", "lab", "--host", "lab1", "vault_api_key", "vault_db_password", "plain_setting", "--show-secrets"],
    );
    assert_eq!(v.code, 0, "{v:?}");
    assert_eq!(
        v.stdout, "vault_api_key: \"vault-api-token-77q\"\nvault_db_password: \"vault-db-pw-31x\"\nplain_setting: 42\n",
        "{v:?}"
    );
    let hidden = deploy_in(&root, &["vars", "lab", "--host", "lab1", "vault_api_key"]);
    assert!(!hidden.stdout.contains("vault-api-token-77q"), "{hidden:?}");
}

// A vaulted connection setting is a secret like any other: `deploy
// inventory --list` shows it redacted.
#[test]
fn inventory_list_never_prints_a_secret_connection_value() {
    let (root, _slot) = project();
    let plain = root.join("inventory/host_vars/lab3.yml");
    std::fs::write(&plain, "ansible_user: op3rator-secret\n").unwrap();
    let r = deploy_in(&root, &["secrets", "encrypt", "inventory/host_vars/lab3.yml"]);
    assert_eq!(r.code, 0, "{r:?}");
    std::fs::rename(root.join("inventory/host_vars/lab3.yml.age"), root.join("inventory/host_vars/lab3.age")).unwrap();
    std::fs::remove_file(&plain).unwrap();
    let r = deploy_in(&root, &["inventory", "lab", "--list"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("op3rator-secret"), "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["_meta"]["hostvars"]["lab3"]["user"], "<redacted>");
}

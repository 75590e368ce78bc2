//! `deploy import ansible PATH`: the import, its vault secrets moved to age
//! files, and its report.

use std::path::{Path, PathBuf};

use crate::error::{exit, Error, Result};
use crate::import::{Report, Unconverted};
use crate::load::secrets::Keys;

/// `deploy import ansible` with every flag.
pub(crate) struct ImportArgs {
    pub(crate) path: PathBuf,
    pub(crate) playbook: Option<PathBuf>,
    pub(crate) out: PathBuf,
    pub(crate) strict: bool,
    pub(crate) vault_password_file: Option<PathBuf>,
    pub(crate) recipients: Vec<String>,
    pub(crate) keys: Keys,
}

/// Vars files under `dir` holding ansible-vault content (a whole-file vault
/// or an inline `!vault` value), with the line of the first.
fn vault_files(dir: &Path, out: &mut Vec<(PathBuf, usize)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            vault_files(&p, out);
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            let line = if text.starts_with("$ANSIBLE_VAULT;") {
                Some(1)
            } else {
                text.lines().position(|l| l.contains("!vault")).map(|i| i + 1)
            };
            if let Some(l) = line {
                out.push((p, l));
            }
        }
    }
}

/// Import into a directory beside `out`, renamed to `out` only when all of
/// it (vault secrets included) succeeded: a failed import leaves nothing.
pub(crate) fn import(a: ImportArgs) -> Result<u8> {
    let empty = |p: &Path| std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(true);
    if a.out.exists() && !empty(&a.out) {
        return Err(Error::invalid(&a.out, "is not empty: import into a new or empty directory"));
    }
    let name = a.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "import".into());
    let work = a.out.with_file_name(format!(".{name}.importing"));
    let _ = std::fs::remove_dir_all(&work);
    let result = import_into(&a, &work);
    match result {
        Ok(code) => {
            std::fs::rename(&work, &a.out).map_err(|e| Error::io(&a.out, e))?;
            Ok(code)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(e)
        }
    }
}

fn import_into(a: &ImportArgs, out: &Path) -> Result<u8> {
    let identity = a.keys.identities.first().cloned();
    let mut r = crate::import::import_ansible(&a.path, a.playbook.as_deref(), out, identity.as_deref())?;
    let cfg = crate::import::ansible_cfg(&a.path);
    let mut vaults = Vec::new();
    for sub in ["group_vars", "host_vars"] {
        vault_files(&out.join("inventory").join(sub), &mut vaults);
    }
    let password = a.vault_password_file.clone().or(cfg.vault_password_file);
    match (&password, vaults.is_empty()) {
        (_, true) => {}
        (Some(pw), false) => {
            let files: Vec<PathBuf> = vaults.iter().map(|(p, _)| p.clone()).collect();
            let shown = |p: &Path| a.out.join(p.strip_prefix(out).unwrap_or(p)).display().to_string();
            r.notes.extend(crate::commands::vault::import(&a.keys, &files, pw, &a.recipients, &shown)?);
        }
        (None, false) => {
            for (p, line) in vaults {
                let rel = p.strip_prefix(out).unwrap_or(&p).to_path_buf();
                r.unconverted.push(Unconverted {
                    file: a.path.join(rel),
                    line: Some(line),
                    module: "ansible-vault".into(),
                    why: "vault content, which deploy refuses: import again with --vault-password-file".into(),
                });
            }
        }
    }
    print(a, &r);
    Ok(if a.strict && !r.unconverted.is_empty() { exit::ERROR } else { exit::OK })
}

fn print(a: &ImportArgs, r: &Report) {
    crate::report::line(&format!(
        "Imported {} into {}: {} tasks converted, {} not converted, {} with nothing to do on a host.",
        a.path.display(),
        a.out.display(),
        r.converted,
        r.unconverted.len(),
        r.nothing.len()
    ));
    for u in &r.unconverted {
        let line = u.line.map(|l| format!(":{l}")).unwrap_or_default();
        let file = u.file.strip_prefix(&a.path).unwrap_or(&u.file);
        crate::report::line(&format!("  not converted: {}{line}: {}: {}", file.display(), u.module, u.why));
    }
    for n in &r.nothing {
        crate::report::line(&format!("  nothing to do: {n}"));
    }
    for n in &r.notes {
        crate::report::line(&format!("  note: {n}"));
    }
}

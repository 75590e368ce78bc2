//! `deploy secrets import-vault FILE... --vault-password-file F`: ansible-vault
//! content into age-encrypted vars files. Every file is decrypted and checked
//! before any is written; nothing of a file is written when any of it fails.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::load::secrets::{self, Keys};
use crate::load::vault;

/// The age file beside `file` that the loader reads with it (prod.yml -> prod.age).
fn age_path(file: &Path) -> PathBuf {
    file.with_extension("age")
}

/// What importing one file writes: the .age text, and the rest of the YAML
/// (None: the whole file was vault, and goes).
struct Plan {
    file: PathBuf,
    age: PathBuf,
    secret_yaml: String,
    rest: Option<String>,
    keys: usize,
}

fn plan_file(file: &Path, password: &[u8], k: &Keys) -> Result<Plan> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let fail = |line: usize, m: String| Error::Invalid { path: file.into(), line: Some(line), message: m };
    let age = age_path(file);
    let existing: serde_yaml::Mapping = if age.exists() {
        let plain = k.decrypt(&age)?;
        serde_yaml::from_slice(&plain).map_err(|_| fail(0, format!("{} is not a YAML mapping", age.display())))?
    } else {
        serde_yaml::Mapping::new()
    };
    if text.starts_with("$ANSIBLE_VAULT;") {
        if age.exists() {
            return Err(fail(1, format!("{} exists already: move or merge it by hand first", age.display())));
        }
        let plain = vault::decrypt(&text, password).map_err(|e| fail(1, e.to_string()))?;
        let yaml = String::from_utf8(plain).map_err(|_| fail(1, "the decrypted content is not UTF-8".into()))?;
        let m: serde_yaml::Mapping = serde_yaml::from_str(&yaml)
            .map_err(|_| fail(1, "the decrypted content is not a YAML mapping of variables".into()))?;
        return Ok(Plan { file: file.into(), age, keys: m.len(), secret_yaml: yaml, rest: None });
    }
    let (rest, found) = vault::split_inline(&text).map_err(|m| fail(0, m))?;
    if found.is_empty() {
        return Err(fail(0, "holds no ansible-vault content".into()));
    }
    let mut m = existing;
    for f in &found {
        let plain = vault::decrypt(&f.vault, password).map_err(|e| fail(f.line, format!("`{}`: {e}", f.key)))?;
        let value = String::from_utf8(plain).map_err(|_| fail(f.line, format!("`{}`: not UTF-8", f.key)))?;
        let key = serde_yaml::Value::String(f.key.clone());
        if m.contains_key(&key) {
            return Err(fail(f.line, format!("`{}` is in {} already", f.key, age.display())));
        }
        m.insert(key, serde_yaml::Value::String(value));
    }
    let secret_yaml = serde_yaml::to_string(&m).map_err(|e| fail(0, e.to_string()))?;
    Ok(Plan { file: file.into(), age, keys: found.len(), secret_yaml, rest: Some(rest) })
}

/// Import every file, or none; returns a line per file saying what moved
/// where (`shown` names a path as the user should read it).
pub(crate) fn import(
    k: &Keys,
    files: &[PathBuf],
    password_file: &Path,
    given: &[String],
    shown: &dyn Fn(&Path) -> String,
) -> Result<Vec<String>> {
    let pw = std::fs::read_to_string(password_file).map_err(|e| Error::io(password_file, e))?;
    // ansible strips the password file's surrounding whitespace
    let password = pw.trim().as_bytes().to_vec();
    let plans = files.iter().map(|f| plan_file(f, &password, k)).collect::<Result<Vec<_>>>()?;
    // recipients for every file before any is written
    let recipients = plans.iter().map(|p| secrets::recipients_for(&p.age, given, k)).collect::<Result<Vec<_>>>()?;
    let mut said = Vec::new();
    for (p, recipients) in plans.into_iter().zip(recipients) {
        let enc = secrets::encrypt(&p.age, p.secret_yaml.as_bytes(), &recipients)?;
        secrets::write_atomic(&p.age, &enc)?;
        // a file with no variable left (only `---` or comments) goes too
        let rest = p.rest.as_ref().filter(|r| {
            serde_yaml::from_str::<serde_yaml::Value>(r).is_ok_and(|v| v.as_mapping().is_some_and(|m| !m.is_empty()))
        });
        match rest {
            Some(rest) => secrets::write_atomic(&p.file, rest.as_bytes())?,
            None => std::fs::remove_file(&p.file).map_err(|e| Error::io(&p.file, e))?,
        }
        let what = match (&p.rest, rest) {
            (_, Some(_)) => "the rest stays",
            (Some(_), None) => "nothing else was in it, so it is removed",
            (None, None) => "the vault file removed",
        };
        said.push(format!(
            "{}: {} value{} now in {} ({} recipient(s)); {what}",
            shown(&p.file),
            p.keys,
            if p.keys == 1 { "" } else { "s" },
            shown(&p.age),
            recipients.len()
        ));
    }
    Ok(said)
}

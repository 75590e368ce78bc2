//! `deploy secrets edit|keygen|view|encrypt`: age-encrypted vars files.

use std::path::{Path, PathBuf};

use crate::cli::SecretsCommand;
use crate::error::{exit, Error, Result};
use crate::load::secrets::{self, Keys};

pub(crate) fn secrets(cmd: SecretsCommand, k: &Keys) -> Result<u8> {
    match cmd {
        SecretsCommand::Keygen { out } => {
            let public = secrets::keygen(&out)?;
            crate::report::line(&public);
        }
        SecretsCommand::View { file } => {
            let plain = k.decrypt(&file)?;
            crate::report::raw(&plain);
        }
        SecretsCommand::Edit { file, recipients } => {
            let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
            let changed = secrets::edit(&file, k, &recipients, &editor)?;
            crate::report::note(&format!(
                "{}: {}",
                file.display(),
                if changed { "saved (re-encrypted)" } else { "unchanged; file not rewritten" }
            ));
        }
        SecretsCommand::Encrypt { file, recipients, out, passphrase } => {
            encrypt(k, &file, &recipients, out, passphrase)?
        }
    }
    Ok(exit::OK)
}

fn encrypt(k: &Keys, file: &Path, recipients: &[String], out: Option<PathBuf>, passphrase: bool) -> Result<()> {
    let plain = std::fs::read(file).map_err(|e| Error::io(file, e))?;
    if let Err(e) = serde_yaml::from_slice::<serde_yaml::Value>(&plain) {
        return Err(crate::load::yaml::yaml_error(file, &e));
    }
    let out = out.unwrap_or_else(|| append_ext(file, "age"));
    if passphrase {
        let Some(pass) = k.passphrase.clone() else {
            return Err(Error::Usage(
                "--passphrase reads the passphrase from DEPLOY_AGE_PASSPHRASE, which is not set".into(),
            ));
        };
        let enc = secrets::encrypt_passphrase(&out, &plain, &pass)?;
        secrets::write_atomic(&out, &enc)?;
        crate::report::note(&format!("{}: encrypted with a passphrase", out.display()));
        return Ok(());
    }
    let recipients = secrets::recipients_for(&out, recipients, k)?;
    let enc = secrets::encrypt(&out, &plain, &recipients)?;
    secrets::write_atomic(&out, &enc)?;
    crate::report::note(&format!("{}: encrypted to {} recipient(s)", out.display(), recipients.len()));
    Ok(())
}

fn append_ext(p: &Path, ext: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

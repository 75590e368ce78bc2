//! `deploy secrets edit|keygen|view|encrypt`: age-encrypted vars files.

use std::path::{Path, PathBuf};

use crate::cli::SecretsCommand;
use crate::error::{exit, Error, Result};
use crate::load::secrets::{self, Keys};

pub(crate) async fn secrets(cmd: SecretsCommand, k: &Keys) -> Result<u8> {
    match cmd {
        SecretsCommand::Keygen { out } => {
            let public = secrets::keygen(&out)?;
            crate::report::line(&public);
        }
        SecretsCommand::View { file } => {
            let plain = k.decrypt(&file)?;
            crate::report::raw(&plain);
        }
        SecretsCommand::Edit { file, recipients } => return edit(&file, k, &recipients).await,
        SecretsCommand::Rekey { files, all } => rekey(k, files, all)?,
        SecretsCommand::Encrypt { file, recipients, out, passphrase } => {
            encrypt(k, &file, &recipients, out, passphrase)?
        }
        SecretsCommand::ImportVault { files, vault_password_file, recipients } => {
            for l in super::vault::import(k, &files, &vault_password_file, &recipients, &|p| p.display().to_string())? {
                crate::report::note(&l);
            }
        }
    }
    Ok(exit::OK)
}

/// Decrypt to a private temporary file, run the editor, re-encrypt when the
/// text changed. Text that is not valid YAML reopens the editor with the
/// error at the top (as sops does); SIGINT, SIGTERM or SIGHUP end the edit
/// with nothing saved, and the temporary file goes in every case.
async fn edit(file: &Path, k: &Keys, recipients: &[String]) -> Result<u8> {
    let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    let session = secrets::EditSession::start(file, k, recipients)?;
    let mut last_error: Option<String> = None;
    loop {
        match run_editor(&editor, &session.tmp).await? {
            Editor::Signal(name) => {
                crate::report::note(&format!("{}: {name}: nothing was saved", file.display()));
                return Ok(exit::INTERRUPTED);
            }
            Editor::Failed(status) => {
                return Err(Error::Usage(format!(
                    "editor `{editor}` exited with {status}; {} left unchanged",
                    file.display()
                )))
            }
            Editor::Done => {}
        }
        match session.edited()? {
            Ok(None) => {
                crate::report::note(&format!("{}: unchanged; file not rewritten", file.display()));
                return Ok(exit::OK);
            }
            Ok(Some(text)) => {
                session.save(&text, k)?;
                crate::report::note(&format!("{}: saved (re-encrypted)", file.display()));
                return Ok(exit::OK);
            }
            // the same error twice: the editor was left without a fix
            Err(e) if last_error.as_deref() == Some(e.as_str()) => {
                return Err(Error::Secret {
                    path: file.into(),
                    message: format!("the edited text is not valid YAML ({e}); nothing was saved"),
                });
            }
            Err(e) => {
                session.reopen_with(&e)?;
                last_error = Some(e);
            }
        }
    }
}

enum Editor {
    Done,
    Failed(std::process::ExitStatus),
    Signal(&'static str),
}

/// Run the editor on `path`, ending it when we get a signal.
async fn run_editor(editor: &str, path: &Path) -> Result<Editor> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        // exec: the editor is our child itself, so a signal can end it
        .arg(format!("exec {editor} \"$1\""))
        .arg("editor")
        .arg(path)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Usage(format!("cannot run editor `{editor}`: {e}")))?;
    let sig = |k| signal(k).map_err(|e| Error::Usage(format!("cannot watch signals: {e}")));
    let (mut int, mut term, mut hup) =
        (sig(SignalKind::interrupt())?, sig(SignalKind::terminate())?, sig(SignalKind::hangup())?);
    let name = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| Error::Usage(format!("editor `{editor}`: {e}")))?;
            return Ok(if status.success() { Editor::Done } else { Editor::Failed(status) });
        }
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    };
    let _ = child.kill().await;
    Ok(Editor::Signal(name))
}

/// Re-encrypt each file to the recipients its .age-recipients names now;
/// every file is decrypted first, so a file we cannot read stops the run
/// before anything is rewritten.
fn rekey(k: &Keys, files: Vec<PathBuf>, all: bool) -> Result<()> {
    let files = if all { age_files_under(Path::new("inventory"))? } else { files };
    if files.is_empty() {
        return Err(Error::Usage("name the .age files to rekey, or pass --all".into()));
    }
    let mut plain = Vec::new();
    for f in &files {
        if secrets::is_passphrase_file(f)? {
            crate::report::note(&format!("{}: passphrase-encrypted, left as it is", f.display()));
            continue;
        }
        plain.push((f, k.decrypt(f)?, secrets::recipients_for(f, &[], k)?));
    }
    for (f, text, recipients) in plain {
        let enc = secrets::encrypt(f, &text, &recipients)?;
        secrets::write_atomic(f, &enc)?;
        crate::report::note(&format!("{}: re-encrypted to {} recipient(s)", f.display(), recipients.len()));
    }
    Ok(())
}

fn age_files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            out.extend(age_files_under(&p)?);
        } else if p.extension().is_some_and(|x| x == "age") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
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

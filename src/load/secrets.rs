//! age-encrypted vars files: decrypt with an X25519 identity file (the normal
//! path) or a passphrase (scrypt; about a second per file by design), encrypt
//! to recipients, and the `secrets edit` workflow. Plaintext never touches
//! disk except the 0600 temp file that `edit` hands to $EDITOR.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;

use crate::error::{Error, Result};

/// Where decryption keys come from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keys {
    /// Identity file (age-keygen output), if any.
    pub(crate) identity: Option<PathBuf>,
    /// Passphrase for scrypt-encrypted files (DEPLOY_AGE_PASSPHRASE).
    pub(crate) passphrase: Option<String>,
}

impl Keys {
    /// These keys, with `identity` as the identity when none was given
    /// (`--identity`, DEPLOY_AGE_IDENTITY): deploy.yml's `age_identity`.
    pub(crate) fn with_default_identity(&self, identity: Option<PathBuf>) -> Keys {
        Keys { identity: self.identity.clone().or(identity), passphrase: self.passphrase.clone() }
    }
}

fn secret_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Secret { path: path.into(), message: message.into() }
}

impl Keys {
    fn identities(&self, file: &Path) -> Result<Vec<Box<dyn age::Identity>>> {
        let Some(id) = &self.identity else {
            return Err(secret_err(file, "is encrypted but no age identity was given")
                .hinted("pass --identity FILE, set DEPLOY_AGE_IDENTITY, or set age_identity in deploy.yml"));
        };
        let text = std::fs::read(id).map_err(|e| {
            secret_err(file, format!("cannot read the age identity {}: {e}", id.display()))
                .hinted("check --identity / DEPLOY_AGE_IDENTITY points at an age-keygen identity file")
        })?;
        age::IdentityFile::from_buffer(&text[..])
            .and_then(|f| f.into_identities().map_err(|e| std::io::Error::other(e.to_string())))
            .map_err(|e| secret_err(id, format!("is not a valid age identity file: {e}")))
    }

    /// Decrypt an age file (binary or armored).
    pub(crate) fn decrypt(&self, path: &Path) -> Result<Vec<u8>> {
        let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let reader = age::armor::ArmoredReader::new(&data[..]);
        let dec = age::Decryptor::new(reader).map_err(|e| secret_err(path, format!("is not an age file: {e}")))?;
        let mut out = Vec::new();
        let mut stream = if dec.is_scrypt() {
            let Some(pass) = &self.passphrase else {
                return Err(secret_err(path, "is passphrase-encrypted and no passphrase was given")
                    .hinted("set DEPLOY_AGE_PASSPHRASE"));
            };
            let id = age::scrypt::Identity::new(SecretString::from(pass.clone()));
            dec.decrypt(std::iter::once(&id as &dyn age::Identity))
                .map_err(|e| secret_err(path, format!("cannot be decrypted with the given passphrase: {e}")))?
        } else {
            let ids = self.identities(path)?;
            dec.decrypt(ids.iter().map(|b| b.as_ref())).map_err(|e| {
                let which = self.identity.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                secret_err(path, format!("cannot be decrypted with the identity {which}: {e}")).hinted(
                    "this file was encrypted to other recipients; use the identity it was encrypted for, or re-encrypt it with `deploy secrets encrypt`",
                )
            })?
        };
        stream.read_to_end(&mut out).map_err(|e| secret_err(path, format!("decryption failed: {e}")))?;
        Ok(out)
    }

    /// The recipients of our own identity (to re-encrypt after an edit).
    pub(crate) fn own_recipients(&self, file: &Path) -> Result<Vec<String>> {
        let Some(id) = &self.identity else { return Ok(Vec::new()) };
        let text = std::fs::read_to_string(id).map_err(|e| Error::io(id, e))?;
        let mut out = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with("AGE-SECRET-KEY-") {
                let k: age::x25519::Identity =
                    l.parse().map_err(|e: &str| secret_err(file, format!("bad identity in {}: {e}", id.display())))?;
                out.push(k.to_public().to_string());
            }
        }
        Ok(out)
    }
}

/// Encrypt `plain` to X25519 recipients (age1...), armored so diffs in git stay text.
pub(crate) fn encrypt(path: &Path, plain: &[u8], recipients: &[String]) -> Result<Vec<u8>> {
    let mut rs: Vec<Box<dyn age::Recipient>> = Vec::new();
    for r in recipients {
        let parsed: age::x25519::Recipient =
            r.trim().parse().map_err(|e: &str| secret_err(path, format!("bad recipient `{r}`: {e}")))?;
        rs.push(Box::new(parsed));
    }
    if rs.is_empty() {
        return Err(secret_err(path, "no recipients to encrypt to").hinted(
            "pass --recipient age1..., or list recipients (one per line) in .age-recipients at the project root",
        ));
    }
    let enc = age::Encryptor::with_recipients(rs.iter().map(|b| b.as_ref()))
        .map_err(|e| secret_err(path, format!("cannot encrypt: {e}")))?;
    armored(path, enc, plain)
}

/// Run an encryptor over `plain`, ASCII-armored so the file diffs as text in git.
fn armored(path: &Path, enc: age::Encryptor, plain: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| secret_err(path, e.to_string()))?;
    let mut w = enc.wrap_output(armor).map_err(|e| secret_err(path, e.to_string()))?;
    w.write_all(plain).map_err(|e| secret_err(path, e.to_string()))?;
    w.finish().and_then(|a| a.finish()).map_err(|e| secret_err(path, e.to_string()))?;
    Ok(out)
}

/// Whether an age file is passphrase-encrypted (scrypt).
pub(crate) fn is_passphrase_file(path: &Path) -> Result<bool> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let dec = age::Decryptor::new(age::armor::ArmoredReader::new(&data[..]))
        .map_err(|e| secret_err(path, format!("is not an age file: {e}")))?;
    Ok(dec.is_scrypt())
}

/// Encrypt `plain` with a passphrase (scrypt), armored.
pub(crate) fn encrypt_passphrase(path: &Path, plain: &[u8], passphrase: &str) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_user_passphrase(SecretString::from(passphrase.to_string()));
    armored(path, enc, plain)
}

/// Recipients for a file: --recipient values, else `.age-recipients` found
/// walking up from the file, else the identity's own public key.
pub(crate) fn recipients_for(file: &Path, given: &[String], keys: &Keys) -> Result<Vec<String>> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let abs = std::fs::canonicalize(file.parent().unwrap_or(Path::new("."))).unwrap_or_default();
    for dir in abs.ancestors() {
        let p = dir.join(".age-recipients");
        if p.exists() {
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            return Ok(text
                .lines()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect());
        }
    }
    keys.own_recipients(file)
}

/// Write a new identity to `out` (0600, never overwriting); return its public key.
pub(crate) fn keygen(out: &Path) -> Result<String> {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let text = format!("# public key: {public}\n{}\n", id.to_string().expose_secret());
    write_new_private(out, text.as_bytes())?;
    Ok(public)
}

/// Create `path` (never an existing file) with mode 0600 and write `bytes`:
/// keys and plaintext must not be readable by others for even a moment.
fn write_new_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

/// Write bytes to `path` atomically (temp file + rename) with mode 0600 for temp.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    write_new_private(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `deploy secrets edit`: decrypt to a 0600 temp file, run $EDITOR, and
/// re-encrypt only when the plaintext changed (so git sees no churn).
/// The temp file is removed on every path out, including errors.
pub(crate) fn edit(file: &Path, keys: &Keys, recipients: &[String], editor: &str) -> Result<bool> {
    let plain = if file.exists() { keys.decrypt(file)? } else { Vec::new() };
    // A passphrase file stays a passphrase file.
    let by_passphrase = file.exists() && is_passphrase_file(file)?;
    let recipients = if by_passphrase { Vec::new() } else { recipients_for(file, recipients, keys)? };
    let dir = TempDir::new()?;
    let tmp = dir.0.join(
        file.file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".age").to_string())
            .unwrap_or("secrets.yml".into()),
    );
    write_new_private(&tmp, &plain)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("editor")
        .arg(&tmp)
        .status()
        .map_err(|e| Error::Usage(format!("cannot run editor `{editor}`: {e}")))?;
    if !status.success() {
        return Err(Error::Usage(format!("editor `{editor}` exited with {status}; {} left unchanged", file.display())));
    }
    let edited = std::fs::read(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if edited == plain {
        return Ok(false);
    }
    // Refuse to store YAML that would break every later deploy.
    if let Err(e) = serde_yaml::from_slice::<serde_yaml::Value>(&edited) {
        let loc = e.location().map(|l| format!(" (line {}, column {})", l.line(), l.column())).unwrap_or_default();
        return Err(secret_err(file, format!("the edited text is not valid YAML{loc}; nothing was saved")));
    }
    let enc = if by_passphrase {
        encrypt_passphrase(file, &edited, keys.passphrase.as_deref().unwrap_or_default())?
    } else {
        encrypt(file, &edited, &recipients)?
    };
    write_atomic(file, &enc)?;
    Ok(true)
}

/// A private temporary directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    /// Create a 0700 directory under $TMPDIR.
    pub(crate) fn new() -> Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for i in 0..100u32 {
            let p = base.join(format!("deploy-{}-{}-{i}", std::process::id(), nanos()));
            match std::fs::DirBuilder::new().mode(0o700).create(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        Err(Error::Usage("cannot create a temporary directory".into()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

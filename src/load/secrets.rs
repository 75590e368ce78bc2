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
    /// Identity files (age-keygen output), tried together; a file that does
    /// not exist is passed over (lab and prod identities side by side, each
    /// on the machines that have it).
    pub(crate) identities: Vec<PathBuf>,
    /// Passphrase for scrypt-encrypted files (DEPLOY_AGE_PASSPHRASE).
    pub(crate) passphrase: Option<String>,
}

impl Keys {
    /// These keys, with `identities` when none were given (`--identity`,
    /// DEPLOY_AGE_IDENTITY): deploy.yml's `age_identity`.
    pub(crate) fn with_default_identities(&self, identities: Vec<PathBuf>) -> Keys {
        let identities = if self.identities.is_empty() { identities } else { self.identities.clone() };
        Keys { identities, passphrase: self.passphrase.clone() }
    }

    fn named(&self) -> String {
        self.identities.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

fn secret_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Secret { path: path.into(), message: message.into() }
}

impl Keys {
    fn identities(&self, file: &Path) -> Result<Vec<Box<dyn age::Identity>>> {
        if self.identities.is_empty() {
            return Err(secret_err(file, "is encrypted but no age identity was given")
                .hinted("pass --identity FILE, set DEPLOY_AGE_IDENTITY, or set age_identity in deploy.yml"));
        }
        let present: Vec<&PathBuf> = self.identities.iter().filter(|p| p.exists()).collect();
        if present.is_empty() {
            return Err(secret_err(
                file,
                format!("is encrypted, and none of the age identities exists: {}", self.named()),
            )
            .hinted("check --identity / DEPLOY_AGE_IDENTITY / age_identity point at age-keygen identity files"));
        }
        let mut ids: Vec<Box<dyn age::Identity>> = Vec::new();
        for id in present {
            let text = std::fs::read(id)
                .map_err(|e| secret_err(file, format!("cannot read the age identity {}: {e}", id.display())))?;
            let found = age::IdentityFile::from_buffer(&text[..])
                .and_then(|f| f.into_identities().map_err(|e| std::io::Error::other(e.to_string())))
                .map_err(|e| secret_err(id, format!("is not a valid age identity file: {e}")))?;
            ids.extend(found);
        }
        Ok(ids)
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
                let which = self.named();
                let word = if self.identities.len() == 1 { "identity" } else { "identities" };
                secret_err(path, format!("cannot be decrypted with the {word} {which}: {e}")).hinted(
                    "this file was encrypted to other recipients; use the identity it was encrypted for, or re-encrypt it with `deploy secrets encrypt`",
                )
            })?
        };
        stream.read_to_end(&mut out).map_err(|e| secret_err(path, format!("decryption failed: {e}")))?;
        Ok(out)
    }

    /// The recipients of our own identity (to re-encrypt after an edit).
    pub(crate) fn own_recipients(&self, file: &Path) -> Result<Vec<String>> {
        let Some(id) = self.identities.iter().find(|p| p.exists()) else { return Ok(Vec::new()) };
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
            "pass --recipient age1..., or list recipients (one per line) in .age-recipients at the project root; no identity yet? `deploy secrets keygen --out FILE` makes one, then pass --identity FILE",
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

/// An edit in progress: the decrypted text in a private temporary file
/// (removed with the session, whatever ends it).
pub(crate) struct EditSession {
    file: PathBuf,
    plain: Vec<u8>,
    by_passphrase: bool,
    recipients: Vec<String>,
    /// The file the editor opens.
    pub(crate) tmp: PathBuf,
    _dir: TempDir,
}

/// Lines the editor is reopened with above a text that is not valid YAML;
/// taken off again before the text is read.
const ERROR_MARK: &str = "# deploy secrets edit: ";

impl EditSession {
    /// Decrypt `file` (nothing, for a new one) into a private temporary file.
    pub(crate) fn start(file: &Path, keys: &Keys, recipients: &[String]) -> Result<EditSession> {
        let plain = if file.exists() { keys.decrypt(file)? } else { Vec::new() };
        // A passphrase file stays a passphrase file.
        let by_passphrase = file.exists() && is_passphrase_file(file)?;
        let recipients = if by_passphrase { Vec::new() } else { recipients_for(file, recipients, keys)? };
        let dir = TempDir::new()?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".age").to_string())
            .unwrap_or("secrets.yml".into());
        let tmp = dir.0.join(name);
        write_new_private(&tmp, &plain)?;
        Ok(EditSession { file: file.into(), plain, by_passphrase, recipients, tmp, _dir: dir })
    }

    /// Read what the editor left: Ok(None) unchanged, Ok(Some) valid YAML
    /// to save, Err(message) not valid YAML (the caller reopens the editor
    /// with `reopen_with`).
    pub(crate) fn edited(&self) -> Result<std::result::Result<Option<Vec<u8>>, String>> {
        let raw = std::fs::read(&self.tmp).map_err(|e| Error::io(&self.tmp, e))?;
        let text: Vec<u8> = String::from_utf8_lossy(&raw)
            .split_inclusive('\n')
            .filter(|l| !l.starts_with(ERROR_MARK))
            .collect::<String>()
            .into_bytes();
        if text == self.plain {
            return Ok(Ok(None));
        }
        // YAML that would break every later deploy is never stored
        match serde_yaml::from_slice::<serde_yaml::Value>(&text) {
            Ok(_) => Ok(Ok(Some(text))),
            Err(e) => {
                let loc =
                    e.location().map(|l| format!("line {}, column {}: ", l.line(), l.column())).unwrap_or_default();
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg);
                Ok(Err(format!("{loc}{msg}")))
            }
        }
    }

    /// Put `error` at the top of the text, for the editor to open again.
    pub(crate) fn reopen_with(&self, error: &str) -> Result<()> {
        let raw = std::fs::read(&self.tmp).map_err(|e| Error::io(&self.tmp, e))?;
        let kept: String =
            String::from_utf8_lossy(&raw).split_inclusive('\n').filter(|l| !l.starts_with(ERROR_MARK)).collect();
        let text = format!(
            "{ERROR_MARK}not valid YAML, nothing saved yet: {error}\n{ERROR_MARK}fix it and save, or quit without saving to give up\n{kept}"
        );
        std::fs::write(&self.tmp, text).map_err(|e| Error::io(&self.tmp, e))
    }

    /// Encrypt `text` back into the file.
    pub(crate) fn save(&self, text: &[u8], keys: &Keys) -> Result<()> {
        let enc = if self.by_passphrase {
            encrypt_passphrase(&self.file, text, keys.passphrase.as_deref().unwrap_or_default())?
        } else {
            encrypt(&self.file, text, &self.recipients)?
        };
        write_atomic(&self.file, &enc)
    }
}

/// A private temporary directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    /// Create a 0700 directory in RAM when there is one ($XDG_RUNTIME_DIR,
    /// else /dev/shm), else under $TMPDIR: decrypted text never reaches a
    /// disk when it need not.
    pub(crate) fn new() -> Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let writable = |p: &Path| p.is_dir() && std::fs::metadata(p).is_ok_and(|m| !m.permissions().readonly());
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| writable(p))
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| writable(p)))
            .unwrap_or_else(std::env::temp_dir);
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

//! Reading ansible-vault content, to import it into age: the `$ANSIBLE_VAULT`
//! format 1.1 and 1.2 (AES256: PBKDF2-HMAC-SHA256, 10000 rounds, 80 bytes of
//! key material; HMAC-SHA256 over the ciphertext, checked before anything is
//! decrypted; AES-256 in CTR mode; PKCS#7 padding), whole files and inline
//! `!vault |` values. Decryption only: deploy never writes vault.

use hmac::Mac;

/// Why a vault text cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VaultError {
    /// Not `$ANSIBLE_VAULT;1.1;AES256` or `;1.2;AES256;ID`.
    Format(String),
    /// The HMAC does not match: another password (or a damaged file).
    WrongPassword,
}

impl std::fmt::Display for VaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultError::Format(m) => write!(f, "not ansible-vault content deploy can read: {m}"),
            VaultError::WrongPassword => {
                write!(f, "the vault password does not open it (its HMAC does not match: another password, or a vault id of its own)")
            }
        }
    }
}

fn unhex(s: &str) -> Result<Vec<u8>, VaultError> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return Err(VaultError::Format("odd-length hex".into()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| VaultError::Format("not hex".into())))
        .collect()
}

/// Decrypt one vault text (a whole file, or the block of a `!vault |` value).
pub(crate) fn decrypt(text: &str, password: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut lines = text.trim().lines();
    let header = lines.next().unwrap_or_default().trim();
    let f: Vec<&str> = header.split(';').collect();
    match f.as_slice() {
        ["$ANSIBLE_VAULT", "1.1", "AES256"] | ["$ANSIBLE_VAULT", "1.2", "AES256", _] => {}
        _ => return Err(VaultError::Format(format!("header `{}`", header.chars().take(60).collect::<String>()))),
    }
    let body: String = lines.collect::<Vec<_>>().concat();
    let inner = String::from_utf8(unhex(&body)?).map_err(|_| VaultError::Format("body is not hex text".into()))?;
    let parts: Vec<&str> = inner.split('\n').collect();
    let [salt, mac, data] = parts[..] else {
        return Err(VaultError::Format("body is not salt, hmac, ciphertext".into()));
    };
    let (salt, mac, data) = (unhex(salt)?, unhex(mac)?, unhex(data)?);
    let mut key = [0u8; 80];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &salt, 10_000, &mut key);
    let (k1, k2, iv) = (&key[..32], &key[32..64], &key[64..]);
    let mut h = hmac::Hmac::<sha2::Sha256>::new_from_slice(k2).expect("any key length");
    h.update(&data);
    h.verify_slice(&mac).map_err(|_| VaultError::WrongPassword)?;
    let mut plain = data;
    {
        use ctr::cipher::{KeyIvInit, StreamCipher};
        let mut c = ctr::Ctr128BE::<aes::Aes256>::new(k1.into(), iv.into());
        c.apply_keystream(&mut plain);
    }
    let pad = *plain.last().ok_or_else(|| VaultError::Format("empty".into()))? as usize;
    if pad == 0 || pad > 16 || pad > plain.len() || !plain[plain.len() - pad..].iter().all(|b| *b as usize == pad) {
        return Err(VaultError::Format("bad padding".into()));
    }
    plain.truncate(plain.len() - pad);
    Ok(plain)
}

/// An inline `KEY: !vault |` value of a YAML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inline {
    pub(crate) key: String,
    /// 1-based line of the key.
    pub(crate) line: usize,
    /// The vault text (header and hex lines).
    pub(crate) vault: String,
}

/// Split `text` into the YAML without its top-level `KEY: !vault |` values,
/// and those values. A vault value nested deeper is an error naming its
/// line: deploy moves top-level keys only.
pub(crate) fn split_inline(text: &str) -> Result<(String, Vec<Inline>), String> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut kept, mut found) = (String::new(), Vec::new());
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let code = l.split(" #").next().unwrap_or("");
        match code.find("!vault") {
            Some(at) if !code.trim_start().starts_with('#') => {
                let key = code[..at].trim_end().trim_end_matches(':').trim().trim_matches(|c| c == '"' || c == '\'');
                if l.starts_with(' ') || l.starts_with('-') || !code[..at].trim_end().ends_with(':') {
                    return Err(format!(
                        "line {}: a vault value inside a mapping or list; move it to a top-level key first",
                        i + 1
                    ));
                }
                let mut block = Vec::new();
                let mut j = i + 1;
                while j < lines.len() && (lines[j].starts_with(' ') || lines[j].trim().is_empty()) {
                    block.push(lines[j].trim());
                    j += 1;
                }
                found.push(Inline { key: key.to_string(), line: i + 1, vault: block.join("\n").trim().to_string() });
                i = j;
            }
            _ => {
                kept.push_str(l);
                kept.push('\n');
                i += 1;
            }
        }
    }
    Ok((kept, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    // made with ansible-core 2.19's ansible-vault, password "hunter2"
    const INLINE: &str = "$ANSIBLE_VAULT;1.1;AES256
          39646632313638373338653032393364323566396163643064636566353162613061613237366533
          6332353631653338346432343832343139616631366331650a303962666661633233386462313166
          32373037323763663665353533306435343332393164623536393561396461323438663831393766
          6635306138326439370a363961626236383864613563633063366139646264313035626565633032
          3634";

    #[test]
    fn decrypts_what_ansible_vault_encrypted_and_refuses_a_wrong_password() {
        assert_eq!(decrypt(INLINE, b"hunter2").unwrap(), b"sekret-value");
        assert_eq!(decrypt(INLINE, b"hunter3"), Err(VaultError::WrongPassword));
        assert!(matches!(decrypt("$ANSIBLE_VAULT;2.0;AES\n00", b"x"), Err(VaultError::Format(_))));
    }

    #[test]
    fn inline_values_are_taken_out_with_their_keys() {
        let text = format!("a: 1\napi_token: !vault |\n    {}\nb: 2\n", INLINE.replace('\n', "\n    "));
        let (kept, found) = split_inline(&text).unwrap();
        assert_eq!(kept, "a: 1\nb: 2\n");
        assert_eq!((found[0].key.as_str(), found[0].line), ("api_token", 2));
        assert_eq!(decrypt(&found[0].vault, b"hunter2").unwrap(), b"sekret-value");
        assert!(split_inline("x:\n  y: !vault |\n    $ANSIBLE_VAULT;1.1;AES256\n").unwrap_err().contains("line 2"));
    }
}

//! SHA-512 crypt (`$6$rounds=N$SALT$...`), as glibc's crypt and passlib
//! compute it (Ulrich Drepper's specification): Ansible's
//! `password_hash('sha512', SALT)`, whose rounds are passlib's default,
//! 656,000, unless given.

/// passlib's default rounds for sha512_crypt, which Ansible uses.
pub(crate) const PASSLIB_ROUNDS: u32 = 656_000;

use sha2::{Digest, Sha512};

/// `bytes` repeated to `len` bytes.
fn stretch(bytes: &[u8], len: usize) -> Vec<u8> {
    bytes.iter().cycle().take(len).copied().collect()
}

/// The first digest: password, salt, then the alternate sum by the
/// password's length, bit by bit.
fn digest_a(password: &[u8], salt: &[u8]) -> Vec<u8> {
    let b = Sha512::new().chain_update(password).chain_update(salt).chain_update(password).finalize();
    let mut a = Sha512::new().chain_update(password).chain_update(salt);
    a.update(stretch(&b, password.len()));
    let mut n = password.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(b);
        } else {
            a.update(password);
        }
        n >>= 1;
    }
    a.finalize().to_vec()
}

/// The rounds over the first digest, the password's and the salt's sequences.
fn rounds(a: Vec<u8>, p: &[u8], s: &[u8], n: u32) -> Vec<u8> {
    let mut c = a;
    for i in 0..n {
        let mut h = Sha512::new();
        h.update(if i % 2 == 1 { p } else { &c });
        if i % 3 != 0 {
            h.update(s);
        }
        if i % 7 != 0 {
            h.update(p);
        }
        h.update(if i % 2 == 1 { &c } else { p });
        c = h.finalize().to_vec();
    }
    c
}

/// crypt's base64 of the final digest, in its byte order.
fn encode(c: &[u8], out: &mut String) {
    const ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut b64 = |b2: u8, b1: u8, b0: u8, n: usize| {
        let mut w = ((b2 as u32) << 16) | ((b1 as u32) << 8) | b0 as u32;
        for _ in 0..n {
            out.push(ALPHABET[(w & 0x3f) as usize] as char);
            w >>= 6;
        }
    };
    for k in 0..21 {
        // (0, 21, 42), (22, 43, 1), (44, 2, 23), ...
        let x = [k, k + 21, k + 42][k % 3];
        let y = [k + 21, k + 42, k][k % 3];
        let z = [k + 42, k, k + 21][k % 3];
        b64(c[x], c[y], c[z], 4);
    }
    b64(0, 0, c[63], 2);
}

/// `$6$rounds=N$SALT$HASH` of `password` (the salt cut to 16 bytes and the
/// rounds to 1,000..=999,999,999, as crypt does; `rounds=` left out for
/// 5000, as passlib does).
pub(crate) fn sha512_crypt(password: &[u8], salt: &[u8], n: u32) -> String {
    let n = n.clamp(1000, 999_999_999);
    let salt = &salt[..salt.len().min(16)];
    let a = digest_a(password, salt);
    let mut dp = Sha512::new();
    for _ in 0..password.len() {
        dp.update(password);
    }
    let p = stretch(&dp.finalize(), password.len());
    let mut ds = Sha512::new();
    for _ in 0..16 + a[0] as usize {
        ds.update(salt);
    }
    let s = stretch(&ds.finalize(), salt.len());
    let c = rounds(a, &p, &s, n);
    let r = if n == 5000 { String::new() } else { format!("rounds={n}$") };
    let mut out = format!("$6${r}{}$", String::from_utf8_lossy(salt));
    encode(&c, &mut out);
    out
}

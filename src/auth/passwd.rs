//! The password file: one `user:hash` line per user, as `mosquitto_passwd` writes them,
//! with an argon2id hash and, optionally, SCRAM-SHA-256 credentials. Pure: parsing,
//! hashing, rendering; reading and writing the file is the caller's.
//!
//! # Format
//!
//! ```text
//! # comment (only at the start of a line); empty lines are ignored
//! USER:ARGON2[:SCRAM]
//! ```
//!
//! - `USER`: a non-empty MQTT string without `:` or control characters, unique in the file.
//! - `ARGON2`: an argon2id hash in PHC form, e.g.
//!   `$argon2id$v=19$m=19456,t=2,p=1$<salt, base64>$<hash, base64>`; its parameters are
//!   read from the string, so hashes made with other costs verify too.
//! - `SCRAM` (optional, what `ringmq passwd --scram` adds): the user's SCRAM-SHA-256
//!   credentials for MQTT 5 enhanced authentication, as
//!   `SCRAM-SHA-256$<iterations>$<salt>$<StoredKey>$<ServerKey>` (standard base64). An
//!   argon2 hash cannot answer a SCRAM exchange, so a user without this field cannot use
//!   SCRAM; one with it is as exposed to offline guessing as PBKDF2 at that iteration
//!   count allows, which is weaker than argon2id: add it only for users who need SCRAM.

use std::collections::HashMap;
use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::scram::{Credentials, KEY_BYTES};
use super::SALT_BYTES;

/// The prefix of the optional SCRAM field.
const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";

/// Bytes of an argon2 salt made by [`hash_password`].
const ARGON2_SALT_BYTES: usize = 16;

/// A fingerprint of one user's line: equal while the line is unchanged. A connection keeps
/// the fingerprint it logged in with; a reload that changes it ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u64);

/// One user of the file.
#[derive(Clone)]
pub struct Entry {
    /// The argon2id hash, PHC string (checked to parse when the file is read).
    pub hash: String,
    /// SCRAM-SHA-256 credentials, when the line has them.
    pub scram: Option<Credentials>,
    pub fingerprint: Fingerprint,
}

impl fmt::Debug for Entry {
    /// The hash is left out: it is what an offline guesser needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("scram", &self.scram.is_some())
            .finish_non_exhaustive()
    }
}

/// A line that cannot be read, with its number (from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct LineError {
    pub line: usize,
    pub what: String,
}

/// A password file's users, in the file's order.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    /// `(user, entry)` in file order (what [`PasswordFile::render`] writes back).
    users: Vec<(String, Entry)>,
    index: HashMap<String, usize>,
}

impl PasswordFile {
    /// Parses the text of a password file; the first bad line is the error.
    pub fn parse(text: &str) -> Result<PasswordFile, LineError> {
        let mut file = PasswordFile::default();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let err = |what: String| LineError {
                line: line_no,
                what,
            };
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, rest) = line
                .split_once(':')
                .ok_or_else(|| err("expected USER:HASH".into()))?;
            check_user(user).map_err(|w| err(w.into()))?;
            let (hash, scram) = match rest.split_once(':') {
                Some((hash, scram)) => (hash, Some(scram)),
                None => (rest, None),
            };
            check_hash(hash).map_err(err)?;
            let scram = scram
                .map(|s| parse_scram(s).map_err(|w| err(w.into())))
                .transpose()?;
            if file.index.contains_key(user) {
                return Err(err(format!("user {user:?} appears twice")));
            }
            let entry = Entry {
                hash: hash.to_owned(),
                scram,
                fingerprint: fingerprint(rest),
            };
            file.index.insert(user.to_owned(), file.users.len());
            file.users.push((user.to_owned(), entry));
        }
        Ok(file)
    }

    pub fn get(&self, user: &str) -> Option<&Entry> {
        self.index
            .get(user)
            .and_then(|&i| self.users.get(i))
            .map(|(_, e)| e)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Users and entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.users.iter().map(|(u, e)| (u.as_str(), e))
    }

    /// Adds `user`, or replaces its line in place.
    pub fn set(&mut self, user: &str, entry: Entry) {
        match self.index.get(user) {
            Some(&i) => {
                if let Some(slot) = self.users.get_mut(i) {
                    slot.1 = entry;
                }
            }
            None => {
                self.index.insert(user.to_owned(), self.users.len());
                self.users.push((user.to_owned(), entry));
            }
        }
    }

    /// Removes `user`; false if it was not there.
    pub fn remove(&mut self, user: &str) -> bool {
        let Some(i) = self.index.remove(user) else {
            return false;
        };
        if i < self.users.len() {
            self.users.remove(i);
        }
        for (n, (u, _)) in self.users.iter().enumerate().skip(i) {
            self.index.insert(u.clone(), n);
        }
        true
    }

    /// The file's text: one line per user, in order (comments are not kept).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (user, entry) in &self.users {
            out.push_str(user);
            out.push(':');
            out.push_str(&entry.hash);
            if let Some(c) = &entry.scram {
                out.push(':');
                out.push_str(&render_scram(c));
            }
            out.push('\n');
        }
        out
    }
}

/// Checks a user name for the file: what `USER` may be.
pub fn check_user(user: &str) -> Result<(), &'static str> {
    if user.is_empty() {
        return Err("the user name is empty");
    }
    if user.len() > 65_535 {
        return Err("the user name is longer than 65535 bytes (an MQTT string)");
    }
    if user.contains(':') {
        return Err("a user name cannot contain ':'");
    }
    if user.chars().any(char::is_control) {
        return Err("a user name cannot contain control characters");
    }
    Ok(())
}

/// The hash must be an argon2id PHC string.
fn check_hash(hash: &str) -> Result<(), String> {
    let parsed =
        PasswordHash::new(hash).map_err(|e| format!("the hash is not a PHC string: {e}"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "the hash is {}, expected argon2id (make it with `ringmq passwd`)",
            parsed.algorithm
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the argon2id hash has no salt or no output".into());
    }
    Ok(())
}

/// `SCRAM-SHA-256$<iterations>$<salt>$<StoredKey>$<ServerKey>`.
fn parse_scram(field: &str) -> Result<Credentials, &'static str> {
    let rest = field
        .strip_prefix(SCRAM_PREFIX)
        .ok_or("the third field must start with SCRAM-SHA-256$")?;
    let mut parts = rest.split('$');
    let bad = "expected SCRAM-SHA-256$<iterations>$<salt>$<StoredKey>$<ServerKey>";
    let (Some(iterations), Some(salt), Some(stored), Some(server), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad);
    };
    let iterations: u32 = iterations
        .parse()
        .map_err(|_| "the SCRAM iterations are not a number")?;
    if iterations < 4096 {
        return Err("the SCRAM iterations are below 4096 (RFC 7677's minimum)");
    }
    let salt = BASE64
        .decode(salt)
        .map_err(|_| "the SCRAM salt is not base64")?;
    if salt.is_empty() {
        return Err("the SCRAM salt is empty");
    }
    let key = |text: &str| -> Result<[u8; KEY_BYTES], &'static str> {
        BASE64
            .decode(text)
            .ok()
            .and_then(|b| <[u8; KEY_BYTES]>::try_from(b.as_slice()).ok())
            .ok_or("a SCRAM key is not 32 bytes of base64")
    };
    Ok(Credentials {
        salt,
        iterations,
        stored_key: key(stored)?,
        server_key: key(server)?,
    })
}

fn render_scram(c: &Credentials) -> String {
    format!(
        "{SCRAM_PREFIX}{}${}${}${}",
        c.iterations,
        BASE64.encode(&c.salt),
        BASE64.encode(c.stored_key),
        BASE64.encode(c.server_key)
    )
}

/// A fingerprint of the hash part of a line (SHA-256, first 8 bytes).
fn fingerprint(rest: &str) -> Fingerprint {
    let digest = super::scram::sha256(rest.as_bytes());
    let mut first = [0u8; 8];
    for (f, d) in first.iter_mut().zip(digest) {
        *f = d;
    }
    Fingerprint(u64::from_le_bytes(first))
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("no random salt from the operating system: {0}")]
    Random(#[from] getrandom::Error),
    #[error("argon2: {0}")]
    Argon2(String),
}

/// A new entry for `password`: an argon2id hash with the crate's default cost (OWASP's:
/// 19 MiB, 2 passes, 1 lane) and a random salt, plus SCRAM-SHA-256 credentials with
/// `scram_iterations` when asked for.
pub fn hash_password(password: &[u8], scram_iterations: Option<u32>) -> Result<Entry, HashError> {
    let hash = argon2_hash(password)?;
    let scram = match scram_iterations {
        Some(iterations) => {
            let mut salt = [0u8; SALT_BYTES];
            getrandom::getrandom(&mut salt)?;
            Some(Credentials::derive(password, salt.to_vec(), iterations))
        }
        None => None,
    };
    let mut rest = hash.clone();
    if let Some(c) = &scram {
        rest.push(':');
        rest.push_str(&render_scram(c));
    }
    Ok(Entry {
        hash,
        scram,
        fingerprint: fingerprint(&rest),
    })
}

/// An argon2id PHC string of `password` with a random salt and the default cost.
pub fn argon2_hash(password: &[u8]) -> Result<String, HashError> {
    let mut raw = [0u8; ARGON2_SALT_BYTES];
    getrandom::getrandom(&mut raw)?;
    let salt = SaltString::encode_b64(&raw).map_err(|e| HashError::Argon2(e.to_string()))?;
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Whether `password` matches the PHC string `hash`. Slow on purpose (tens of
/// milliseconds): call it off the shards. The comparison inside is constant-time.
pub fn verify(hash: &str, password: &[u8]) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let entry = hash_password(b"wonderland", None).unwrap();
        assert!(entry.hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(&entry.hash, b"wonderland"));
        assert!(!verify(&entry.hash, b"Wonderland"));
        assert!(!verify("not a hash", b"wonderland"));
    }

    #[test]
    fn the_file_roundtrips_and_keeps_its_order() {
        let mut file = PasswordFile::default();
        file.set("bob", hash_password(b"builder", None).unwrap());
        file.set("alice", hash_password(b"wonderland", Some(4096)).unwrap());
        let text = file.render();
        let again = PasswordFile::parse(&text).unwrap();
        assert_eq!(again.render(), text);
        let names: Vec<&str> = again.iter().map(|(u, _)| u).collect();
        assert_eq!(names, ["bob", "alice"]);
        let alice = again.get("alice").unwrap();
        let scram = alice.scram.as_ref().unwrap();
        assert_eq!(scram.iterations, 4096);
        assert_eq!(
            *scram,
            Credentials::derive(b"wonderland", scram.salt.clone(), 4096)
        );
        assert!(again.get("bob").unwrap().scram.is_none());
        assert_eq!(
            alice.fingerprint,
            file.get("alice").unwrap().fingerprint,
            "same line, same fingerprint"
        );
    }

    #[test]
    fn set_replaces_and_remove_deletes() {
        let mut file = PasswordFile::default();
        file.set("a", hash_password(b"1", None).unwrap());
        file.set("b", hash_password(b"2", None).unwrap());
        file.set("c", hash_password(b"3", None).unwrap());
        let before = file.get("b").unwrap().fingerprint;
        file.set("b", hash_password(b"2", None).unwrap());
        assert_ne!(file.get("b").unwrap().fingerprint, before, "new salt");
        assert!(file.remove("a"));
        assert!(!file.remove("a"));
        let names: Vec<&str> = file.iter().map(|(u, _)| u).collect();
        assert_eq!(names, ["b", "c"]);
        assert!(file.get("c").is_some());
        assert!(verify(&file.get("c").unwrap().hash, b"3"));
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let good = hash_password(b"x", None).unwrap().hash;
        let cases = [
            ("nocolon\n", 1, "expected USER:HASH"),
            (":hash\n", 1, "the user name is empty"),
            ("# c\n\nu:plain\n", 3, "the hash is not a PHC string"),
            (
                "u:$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo\n",
                1,
                "expected argon2id",
            ),
        ];
        for (text, line, what) in cases {
            let err = PasswordFile::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text}");
            assert!(err.what.contains(what), "{text}: {err}");
        }
        let twice = format!("u:{good}\nu:{good}\n");
        let err = PasswordFile::parse(&twice).unwrap_err();
        assert_eq!(
            (err.line, err.what.as_str()),
            (2, "user \"u\" appears twice")
        );
        let scram = format!("u:{good}:SCRAM-SHA-256$100$c2FsdA==$AA==$AA==\n");
        let err = PasswordFile::parse(&scram).unwrap_err();
        assert!(err.what.contains("below 4096"), "{err}");
        let other = format!("u:{good}:PLAIN$x\n");
        assert!(PasswordFile::parse(&other).is_err());
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let good = hash_password(b"x", None).unwrap().hash;
        let text = format!("# users\n\n   \nalice:{good}\n");
        let file = PasswordFile::parse(&text).unwrap();
        assert_eq!(file.len(), 1);
        assert!(verify(&file.get("alice").unwrap().hash, b"x"));
    }
}

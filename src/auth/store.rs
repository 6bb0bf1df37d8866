//! The users SCRAM checks: their credentials, never their passwords, and stand-ins for
//! names nobody has.

use std::collections::HashMap;

use super::scram::{hmac, Credentials, KEY_BYTES};

/// Bytes of a salt, made at random for each user (RFC 5802 leaves the size open; 16 is
/// what the RFC 7677 example uses).
pub const SALT_BYTES: usize = 16;

/// Bytes of randomness in a server nonce (base64: 24 characters).
const NONCE_BYTES: usize = 18;

/// SCRAM credentials per user name.
///
/// Filled from the password file's SCRAM fields (`ringmq passwd --scram`). An unknown name gets credentials that look like a
/// user's: a salt derived from the name under a key chosen at random at start-up (so it is
/// the same at every try, like a real user's, but cannot be told from one), the configured
/// iterations, and keys no proof matches. The exchange then fails at the proof, exactly
/// where a wrong password fails, and nobody learns which names exist.
pub struct PasswordStore {
    users: HashMap<Box<str>, Credentials>,
    /// Iterations of the credentials this store derives, and of the stand-ins.
    iterations: u32,
    /// Key of the salts made up for unknown names.
    fake_salt_key: [u8; KEY_BYTES],
    /// The stand-ins' keys (random: they match no proof, and the exchange knows the user
    /// is unknown anyway).
    fake_keys: [u8; KEY_BYTES],
}

impl std::fmt::Debug for PasswordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordStore")
            .field("users", &self.users.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl PasswordStore {
    /// An empty store whose derived credentials use `iterations`.
    pub fn new(iterations: u32) -> Result<Self, getrandom::Error> {
        Ok(PasswordStore {
            users: HashMap::new(),
            iterations,
            fake_salt_key: random()?,
            fake_keys: random()?,
        })
    }

    /// Adds (or replaces) `username` with credentials derived elsewhere.
    pub fn insert(&mut self, username: &str, credentials: Credentials) {
        self.users.insert(username.into(), credentials);
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no user is known.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The credentials of `username` and true, or stand-ins and false for a name nobody has.
    pub fn lookup(&self, username: &str) -> (Credentials, bool) {
        match self.users.get(username) {
            Some(c) => (c.clone(), true),
            None => {
                let salt = hmac(&self.fake_salt_key, username.as_bytes());
                let salt = salt.get(..SALT_BYTES).unwrap_or_default().to_vec();
                let credentials = Credentials {
                    salt,
                    iterations: self.iterations,
                    stored_key: self.fake_keys,
                    server_key: self.fake_keys,
                };
                (credentials, false)
            }
        }
    }
}

/// Random bytes from the OS.
fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0; N];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes)
}

/// A fresh server nonce: random bytes in base64 (printable, no `,`).
pub fn server_nonce() -> Result<String, getrandom::Error> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.encode(random::<NONCE_BYTES>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_users_are_found() {
        let mut store = PasswordStore::new(4096).unwrap();
        let c = Credentials::derive(b"same", vec![7; SALT_BYTES], 4096);
        store.insert("alice", c.clone());
        assert_eq!(store.len(), 1);
        assert_eq!(store.lookup("alice"), (c, true));
    }

    #[test]
    fn unknown_names_get_a_stable_salt_of_their_own() {
        let store = PasswordStore::new(4096).unwrap();
        assert!(store.is_empty());
        let (first, known) = store.lookup("mallory");
        assert!(!known);
        let (again, _) = store.lookup("mallory");
        let (other, _) = store.lookup("trudy");
        assert_eq!(first.salt, again.salt);
        assert_eq!(first.salt.len(), SALT_BYTES);
        assert_ne!(first.salt, other.salt);
        assert_eq!(first.iterations, 4096);
        // Another process (store) makes up other salts.
        let (elsewhere, _) = PasswordStore::new(4096).unwrap().lookup("mallory");
        assert_ne!(first.salt, elsewhere.salt);
    }

    #[test]
    fn server_nonces_differ_and_are_printable() {
        let a = server_nonce().unwrap();
        let b = server_nonce().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| c.is_ascii_graphic() && c != b','));
    }
}

//! The users SCRAM checks: their credentials, never their passwords, and stand-ins for
//! names nobody has.

use std::collections::HashMap;

use super::scram::{hmac, Credentials, KEY_BYTES};
use crate::config::AuthConfig;

/// Bytes of a salt, made at random for each user (RFC 5802 leaves the size open; 16 is
/// what the RFC 7677 example uses).
pub const SALT_BYTES: usize = 16;

/// Bytes of randomness in a server nonce (base64: 24 characters).
const NONCE_BYTES: usize = 18;

/// SCRAM credentials per user name.
///
/// For now filled from `[[auth.users]]` (a store for testing, see [`crate::config::auth`]);
/// password files will fill it later. An unknown name gets credentials that look like a
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

    /// The store of `[auth]`: each user's credentials derived with a random salt.
    pub fn from_config(config: &AuthConfig) -> Result<Self, getrandom::Error> {
        let mut store = Self::new(config.scram_iterations)?;
        for user in &config.users {
            store.add_password(&user.username, user.password.as_bytes())?;
        }
        Ok(store)
    }

    /// Adds (or replaces) `username`, deriving its credentials from `password` with a
    /// random salt.
    pub fn add_password(
        &mut self,
        username: &str,
        password: &[u8],
    ) -> Result<(), getrandom::Error> {
        let salt: [u8; SALT_BYTES] = random()?;
        let credentials = Credentials::derive(password, salt.to_vec(), self.iterations);
        self.insert(username, credentials);
        Ok(())
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
    use crate::config::UserConfig;

    #[test]
    fn users_from_config_get_random_salts() {
        let config = AuthConfig {
            scram_iterations: 4096,
            users: vec![
                UserConfig {
                    username: "alice".into(),
                    password: "same".into(),
                },
                UserConfig {
                    username: "bob".into(),
                    password: "same".into(),
                },
            ],
        };
        let store = PasswordStore::from_config(&config).unwrap();
        assert_eq!(store.len(), 2);
        let (alice, known) = store.lookup("alice");
        assert!(known);
        let (bob, _) = store.lookup("bob");
        assert_eq!(alice.salt.len(), SALT_BYTES);
        assert_eq!(alice.iterations, 4096);
        // Same password, different salts: different keys.
        assert_ne!(alice.salt, bob.salt);
        assert_ne!(alice.stored_key, bob.stored_key);
        assert_eq!(
            alice,
            Credentials::derive(b"same", alice.salt.clone(), 4096)
        );
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

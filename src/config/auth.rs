//! `[auth]`: MQTT 5.0 enhanced authentication (SCRAM-SHA-256) and its users.
//!
//! The users listed here, with their passwords in the clear, are a store **for testing**:
//! it exists until password files do. Their SCRAM credentials are derived at start-up with a
//! random salt, and only those are kept by the running broker.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::{check_range, Problem};

/// Default `auth.scram_iterations` (RFC 7677's minimum).
pub const SCRAM_ITERATIONS_DEFAULT: u32 = 4096;
/// Allowed `auth.scram_iterations`: at least RFC 7677's 4096; at most a million (each user
/// costs that many HMACs at start-up, and each client as many per connection).
pub const SCRAM_ITERATIONS_RANGE: RangeInclusive<u32> = 4096..=1_000_000;
/// Longest `auth.users[].username`: an MQTT string.
pub const USERNAME_BYTES_MAX: usize = 65_535;

/// The `[auth]` section.
///
/// # Invariants
///
/// After `Config::validate`: `scram_iterations` is in range, and user names are distinct,
/// non-empty MQTT strings with non-empty passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// PBKDF2 iterations of the SCRAM-SHA-256 credentials derived for `users` (the client
    /// runs as many per connection). Default 4096, range 4096..=1000000.
    pub scram_iterations: u32,
    /// `[[auth.users]]`: who may connect with Authentication Method "SCRAM-SHA-256".
    /// Default none. For testing only, until password files exist: passwords are written
    /// in the clear. Clients that do not use enhanced authentication are not affected.
    pub users: Vec<UserConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            scram_iterations: SCRAM_ITERATIONS_DEFAULT,
            users: Vec::new(),
        }
    }
}

/// One `[[auth.users]]` entry. Both keys are needed (validation says so when one is
/// missing: like every key, they have a default, the empty string, so that a parse error
/// names the key at fault).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    /// The SCRAM user name (`n=`), compared byte for byte (no SASLprep).
    pub username: String,
    /// The password, in the clear (this store is for testing).
    pub password: String,
}

impl fmt::Debug for UserConfig {
    /// The password is left out, so that a logged configuration does not show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl AuthConfig {
    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        check_range(
            problems,
            "auth.scram_iterations",
            self.scram_iterations,
            SCRAM_ITERATIONS_RANGE,
        );
        for (i, user) in self.users.iter().enumerate() {
            let key = format!("auth.users[{i}].username");
            let name = &user.username;
            if name.is_empty() {
                problems.push(Problem::new(key, "\"\"", "must not be empty"));
            } else if name.len() > USERNAME_BYTES_MAX || name.contains('\0') {
                problems.push(Problem::new(
                    key,
                    format!("{name:?}"),
                    format!(
                        "must be at most {USERNAME_BYTES_MAX} bytes without NUL characters \
                         (an MQTT string)"
                    ),
                ));
            } else if let Some(first) = self.users[..i].iter().position(|u| u.username == *name) {
                problems.push(Problem::new(
                    key,
                    format!("{name:?}"),
                    format!("must differ from auth.users[{first}].username"),
                ));
            }
            if user.password.is_empty() {
                problems.push(Problem::new(
                    format!("auth.users[{i}].password"),
                    "\"\"",
                    "must not be empty",
                ));
            }
        }
    }
}

//! `[auth]`: who may connect (password file, anonymous clients, failed-login delay and
//! rate limit), what each client may do (ACL file), and MQTT 5.0 enhanced authentication
//! (SCRAM-SHA-256, whose users come from the password file).

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check_range, Problem};

/// Default `auth.scram_iterations` (RFC 7677's minimum).
pub const SCRAM_ITERATIONS_DEFAULT: u32 = 4096;
/// Allowed `auth.scram_iterations`: at least RFC 7677's 4096; at most a million.
pub const SCRAM_ITERATIONS_RANGE: RangeInclusive<u32> = 4096..=1_000_000;
/// Default `auth.failed_login_delay_ms`.
pub const FAILED_LOGIN_DELAY_MS_DEFAULT: u32 = 1000;
/// Allowed `auth.failed_login_delay_ms`.
pub const FAILED_LOGIN_DELAY_MS_RANGE: RangeInclusive<u32> = 0..=60_000;
/// Default `auth.failed_logins_per_address_max`.
pub const FAILED_LOGINS_PER_ADDRESS_MAX_DEFAULT: u32 = 10;
/// Allowed `auth.failed_logins_per_address_max`.
pub const FAILED_LOGINS_PER_ADDRESS_MAX_RANGE: RangeInclusive<u32> = 1..=1_000_000;
/// Default `auth.failed_login_window_secs`.
pub const FAILED_LOGIN_WINDOW_SECS_DEFAULT: u32 = 60;
/// Allowed `auth.failed_login_window_secs`: a second to a day.
pub const FAILED_LOGIN_WINDOW_SECS_RANGE: RangeInclusive<u32> = 1..=86_400;
/// Default `auth.failed_login_addresses_max`.
pub const FAILED_LOGIN_ADDRESSES_MAX_DEFAULT: u32 = 10_000;
/// Allowed `auth.failed_login_addresses_max`.
pub const FAILED_LOGIN_ADDRESSES_MAX_RANGE: RangeInclusive<u32> = 1..=10_000_000;
/// Default `auth.verify_threads`.
pub const VERIFY_THREADS_DEFAULT: u32 = 2;
/// Allowed `auth.verify_threads`.
pub const VERIFY_THREADS_RANGE: RangeInclusive<u32> = 1..=64;
/// Default `auth.verify_queue_max`.
pub const VERIFY_QUEUE_MAX_DEFAULT: u32 = 256;
/// Allowed `auth.verify_queue_max`.
pub const VERIFY_QUEUE_MAX_RANGE: RangeInclusive<u32> = 1..=1_000_000;
/// Default `auth.acl_cache_topics_max`.
pub const ACL_CACHE_TOPICS_MAX_DEFAULT: u32 = 64;
/// Allowed `auth.acl_cache_topics_max`.
pub const ACL_CACHE_TOPICS_MAX_RANGE: RangeInclusive<u32> = 1..=65_536;

/// The `[auth]` section.
///
/// # Invariants
///
/// After `Config::validate`: every number is in its range. The files are read (and their
/// errors reported) when the broker starts and on SIGHUP, not here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Password file (`user:argon2id-hash` lines, made with `ringmq passwd`). A CONNECT
    /// with a User Name must then carry that user's password. Default `""`: none, and a
    /// User Name is taken as given (what ACL `user` sections then trust).
    pub password_file: PathBuf,
    /// Whether clients without a User Name (and without enhanced authentication) may
    /// connect. Absent (the default): false when `password_file` is set, true otherwise.
    pub allow_anonymous: Option<bool>,
    /// ACL file in Mosquitto's syntax. Default `""`: none, every client may publish and
    /// subscribe to every topic. When set, what it does not grant is denied.
    pub acl_file: PathBuf,
    /// How long a failed login waits before its refusal is sent, in milliseconds. Default
    /// 1000, range 0..=60000.
    pub failed_login_delay_ms: u32,
    /// Failed logins from one address (an IPv4 address or an IPv6 /64) within
    /// `failed_login_window_secs` after which its CONNECTs are refused at once, without a
    /// check (v5 0x9F, v3 0x03), until the window has passed. Default 10, range
    /// 1..=1000000.
    pub failed_logins_per_address_max: u32,
    /// The window of `failed_logins_per_address_max`, in seconds, counted from an
    /// address's first failure. Default 60, range 1..=86400.
    pub failed_login_window_secs: u32,
    /// Addresses whose failures are remembered. Hit: expired entries are dropped, then the
    /// oldest. Default 10000, range 1..=10000000.
    pub failed_login_addresses_max: u32,
    /// Threads that check passwords (an argon2id check takes tens of milliseconds, so it
    /// never runs on a shard). Default 2, range 1..=64.
    pub verify_threads: u32,
    /// Password checks waiting for a thread. Hit: the CONNECT is refused with v5 0x89
    /// Server busy (v3 0x03). Default 256, range 1..=1000000.
    pub verify_queue_max: u32,
    /// Topics whose access decisions each session remembers (the delivery hot path is
    /// then a lookup). Hit: that session's cache is emptied. Default 64, range 1..=65536.
    pub acl_cache_topics_max: u32,
    /// PBKDF2 iterations that unknown user names appear to have in a SCRAM exchange (so
    /// they cannot be told from real ones): set it to what `ringmq passwd
    /// --scram-iterations` used. Default 4096, range 4096..=1000000.
    pub scram_iterations: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            password_file: PathBuf::new(),
            allow_anonymous: None,
            acl_file: PathBuf::new(),
            failed_login_delay_ms: FAILED_LOGIN_DELAY_MS_DEFAULT,
            failed_logins_per_address_max: FAILED_LOGINS_PER_ADDRESS_MAX_DEFAULT,
            failed_login_window_secs: FAILED_LOGIN_WINDOW_SECS_DEFAULT,
            failed_login_addresses_max: FAILED_LOGIN_ADDRESSES_MAX_DEFAULT,
            verify_threads: VERIFY_THREADS_DEFAULT,
            verify_queue_max: VERIFY_QUEUE_MAX_DEFAULT,
            acl_cache_topics_max: ACL_CACHE_TOPICS_MAX_DEFAULT,
            scram_iterations: SCRAM_ITERATIONS_DEFAULT,
        }
    }
}

impl AuthConfig {
    /// The password file, if one is configured.
    pub fn password_file(&self) -> Option<&std::path::Path> {
        (!self.password_file.as_os_str().is_empty()).then_some(self.password_file.as_path())
    }

    /// The ACL file, if one is configured.
    pub fn acl_file(&self) -> Option<&std::path::Path> {
        (!self.acl_file.as_os_str().is_empty()).then_some(self.acl_file.as_path())
    }

    /// `allow_anonymous`, or its default: false with a password file, true without.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous
            .unwrap_or(self.password_file().is_none())
    }

    /// `failed_login_delay_ms` as a `Duration`.
    pub fn failed_login_delay(&self) -> Duration {
        Duration::from_millis(u64::from(self.failed_login_delay_ms))
    }

    /// `failed_login_window_secs` as a `Duration`.
    pub fn failed_login_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.failed_login_window_secs))
    }

    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        check_range(
            problems,
            "auth.scram_iterations",
            self.scram_iterations,
            SCRAM_ITERATIONS_RANGE,
        );
        check_range(
            problems,
            "auth.failed_login_delay_ms",
            self.failed_login_delay_ms,
            FAILED_LOGIN_DELAY_MS_RANGE,
        );
        check_range(
            problems,
            "auth.failed_logins_per_address_max",
            self.failed_logins_per_address_max,
            FAILED_LOGINS_PER_ADDRESS_MAX_RANGE,
        );
        check_range(
            problems,
            "auth.failed_login_window_secs",
            self.failed_login_window_secs,
            FAILED_LOGIN_WINDOW_SECS_RANGE,
        );
        check_range(
            problems,
            "auth.failed_login_addresses_max",
            self.failed_login_addresses_max,
            FAILED_LOGIN_ADDRESSES_MAX_RANGE,
        );
        check_range(
            problems,
            "auth.verify_threads",
            self.verify_threads,
            VERIFY_THREADS_RANGE,
        );
        check_range(
            problems,
            "auth.verify_queue_max",
            self.verify_queue_max,
            VERIFY_QUEUE_MAX_RANGE,
        );
        check_range(
            problems,
            "auth.acl_cache_topics_max",
            self.acl_cache_topics_max,
            ACL_CACHE_TOPICS_MAX_RANGE,
        );
    }
}

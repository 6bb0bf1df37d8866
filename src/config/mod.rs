//! Broker configuration: the TOML file, command-line overrides, and validation.
//!
//! A configuration is built in three steps, each of which may fail with a [`ConfigError`]:
//!
//! 1. parse a TOML file, or the built-in default [`DEFAULT_CONFIG_TOML`]
//!    (`tuning/ringmq.toml`, embedded). Every key has a default, so an empty file is valid;
//!    unknown keys are rejected.
//! 2. apply command-line [`Overrides`] (`--listen`, `--data-dir`, `--cores`, `--log-level`).
//! 3. [`Config::validate`]: ranges and cross-field rules. Every problem found is reported,
//!    each naming its key path, the value and what is allowed.
//!
//! [`Config::load_with`] does all three.
//!
//! Sections: `[runtime]` in [`tuning`], `[limits]` in [`limits`], `[mqtt]` in [`mqtt`],
//! `[auth]` in [`auth`], a listener's `tls` table in [`tls`], `[[listener]]`, `[storage]`
//! and `[log]` here.

pub mod admin;
pub mod auth;
pub mod limits;
pub mod mqtt;
pub mod tls;
pub mod tuning;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{Deserializer, Error as _, Unexpected};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use admin::AdminConfig;
pub use auth::AuthConfig;
pub use limits::{Limits, RateAction};
pub use mqtt::{MqttConfig, Redirect, ShareStrategy};
pub use tls::{TlsConfig, TlsVersion};
pub use tuning::{Cores, CpuId, Placement, RuntimeConfig};

/// The default configuration file, with every key, its default and its range commented.
/// It parses to exactly `Config::default()` (a unit test holds file and code together).
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../tuning/ringmq.toml");

/// What the error messages call the embedded default file.
const DEFAULT_CONFIG_ORIGIN: &str = "built-in default config";

/// Default `listener.bind`: every IPv4 address, the MQTT port.
pub const LISTEN_ADDR_DEFAULT: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1883));
/// Default `listener.backlog`.
pub const BACKLOG_DEFAULT: u32 = 1024;
/// Allowed `listener.backlog` (the kernel caps it at `net.core.somaxconn`).
pub const BACKLOG_RANGE: RangeInclusive<u32> = 1..=65_535;
/// Default `listener.max_connections`.
pub const MAX_CONNECTIONS_DEFAULT: u32 = 100_000;
/// Minimum `listener.max_connections`.
pub const MAX_CONNECTIONS_MIN: u32 = 1;

/// Default `storage.data_dir`.
pub const DATA_DIR_DEFAULT: &str = "./ringmq-data";
/// Default `storage.interval_ms`.
pub const FSYNC_INTERVAL_MS_DEFAULT: u32 = 10;
/// Allowed `storage.interval_ms`.
pub const FSYNC_INTERVAL_MS_RANGE: RangeInclusive<u32> = 1..=60_000;
/// Default `storage.segment_bytes`: 64 MiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Allowed `storage.segment_bytes`: 1 MiB to 4 GiB.
pub const SEGMENT_BYTES_RANGE: RangeInclusive<u64> = (1 << 20)..=(4 << 30);
/// `storage.segment_bytes` must be a multiple of this: segments are memory-mapped.
pub const SEGMENT_ALIGN_BYTES: u64 = 4096;
/// Default `storage.session_queue_bytes_max`: 256 MiB.
pub const SESSION_QUEUE_BYTES_MAX_DEFAULT: u64 = 256 << 20;
/// Default `storage.session_queue_messages_max`.
pub const SESSION_QUEUE_MESSAGES_MAX_DEFAULT: u64 = 10_000_000;
/// Default `storage.disk_quota_bytes`: 8 GiB.
pub const DISK_QUOTA_BYTES_DEFAULT: u64 = 8 << 30;

/// The whole configuration. `Default` is the configuration of an empty file.
///
/// # Invariants
///
/// A `Config` returned by [`Config::load`] or [`Config::load_with`] has passed
/// [`Config::validate`]; one built by hand or by [`Config::from_toml`] may not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[runtime]`: shards, placement, executor tuning.
    pub runtime: RuntimeConfig,
    /// `[[listener]]`: the sockets clients connect to. At least one.
    #[serde(rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// `[storage]`: the segment logs (`[persistence]` is accepted as another name).
    #[serde(alias = "persistence")]
    pub storage: StorageConfig,
    /// `[limits]`: every bound.
    pub limits: Limits,
    /// `[log]`.
    pub log: LogConfig,
    /// `[mqtt]`: optional MQTT features (capabilities, shared subscriptions, redirection).
    pub mqtt: MqttConfig,
    /// `[auth]`: password file, anonymous clients, ACL file, failed-login limits, SCRAM.
    pub auth: AuthConfig,
    /// `[admin]`: the HTTP listener for metrics, the JSON API and the dashboard.
    pub admin: AdminConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            runtime: RuntimeConfig::default(),
            listeners: vec![ListenerConfig::default()],
            storage: StorageConfig::default(),
            limits: Limits::default(),
            log: LogConfig::default(),
            mqtt: MqttConfig::default(),
            auth: AuthConfig::default(),
            admin: AdminConfig::default(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a configuration file; `None` means the built-in default.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with(path, &Overrides::default())
    }

    /// Reads and parses a configuration file (`None`: the built-in default), applies the
    /// command-line overrides, then validates the result.
    pub fn load_with(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let (mut config, origin) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let origin = path.display().to_string();
                (Self::from_toml(&text, &origin)?, origin)
            }
            None => (
                Self::from_toml(DEFAULT_CONFIG_TOML, DEFAULT_CONFIG_ORIGIN)?,
                DEFAULT_CONFIG_ORIGIN.to_owned(),
            ),
        };
        config.apply_overrides(overrides)?;
        config.validate().map_err(|err| match err {
            ConfigError::Invalid { problems, .. } => ConfigError::Invalid {
                origin: Some(if overrides.is_empty() {
                    origin
                } else {
                    format!("{origin} with command-line overrides")
                }),
                problems,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses TOML text without validating it. `origin` names the text in errors (a path).
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|err| parse_error(text, origin, &err))
    }

    /// Applies command-line overrides. See [`Overrides`] for what each one replaces.
    pub fn apply_overrides(&mut self, overrides: &Overrides) -> Result<(), ConfigError> {
        if !overrides.listen.is_empty() {
            let template = self.listeners.first().cloned().unwrap_or_default();
            self.listeners = overrides
                .listen
                .iter()
                .map(|addr| {
                    let bind =
                        addr.trim()
                            .parse::<SocketAddr>()
                            .map_err(|_| ConfigError::Override {
                                flag: "--listen",
                                value: addr.clone(),
                                reason: format!("expected {BIND_EXPECTED}"),
                            })?;
                    Ok(ListenerConfig {
                        bind,
                        kind: ListenerKind::Tcp,
                        tls: None,
                        proxy_protocol: false,
                        ..template.clone()
                    })
                })
                .collect::<Result<_, ConfigError>>()?;
        }
        if let Some(dir) = &overrides.data_dir {
            self.storage.data_dir = dir.clone();
        }
        if let Some(cores) = &overrides.cores {
            self.runtime.cores = cores.parse().map_err(|reason| ConfigError::Override {
                flag: "--cores",
                value: cores.clone(),
                reason,
            })?;
        }
        if let Some(addr) = &overrides.admin_listen {
            self.admin.listen = admin::parse_listen(addr).ok_or_else(|| ConfigError::Override {
                flag: "--admin-listen",
                value: addr.clone(),
                reason: format!("expected {}", admin::ADMIN_LISTEN_EXPECTED),
            })?;
            self.admin.enabled = true;
        }
        if let Some(level) = &overrides.log_level {
            self.log.level = level.parse().map_err(|reason| ConfigError::Override {
                flag: "--log-level",
                value: level.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    /// Checks every range and cross-field rule and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.runtime.validate(&mut problems);
        validate_listeners(&self.listeners, &mut problems);
        self.storage.validate(&self.limits, &mut problems);
        self.limits.validate(&mut problems);
        self.mqtt.validate(&mut problems);
        self.auth.validate(&mut problems);
        self.admin.validate(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: None,
                problems,
            })
        }
    }

    /// The listeners as one line, e.g. `0.0.0.0:1883 (tcp), [::]:8883 (tcp)`.
    pub fn listener_summary(&self) -> String {
        self.listeners
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Values given on the command line; each replaces what the file says.
///
/// The values are kept as text and parsed by [`Config::apply_overrides`], so that a bad one
/// is a [`ConfigError::Override`] naming its flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen ADDR`, repeatable. When given, replaces every `[[listener]]` of the file
    /// with one plain TCP listener per address; `backlog` and `max_connections` are copied
    /// from the file's first listener (or the defaults when the file has none).
    pub listen: Vec<String>,
    /// `--data-dir DIR`: replaces `storage.data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `--cores LIST`: replaces `runtime.cores`; `all` or a comma-separated list (`0,2,4`).
    pub cores: Option<String>,
    /// `--log-level LEVEL`: replaces `log.level`.
    pub log_level: Option<String>,
    /// `--admin-listen ADDR`: turns the admin listener on at ADDR (`IP:port`, or a port on
    /// 127.0.0.1).
    pub admin_listen: Option<String>,
}

impl Overrides {
    /// True when no override was given.
    pub fn is_empty(&self) -> bool {
        self.listen.is_empty()
            && self.data_dir.is_none()
            && self.cores.is_none()
            && self.log_level.is_none()
            && self.admin_listen.is_none()
    }
}

/// Completes "expected ..." in errors about a `bind` or `--listen` address.
const BIND_EXPECTED: &str = "an IP address and port such as \"0.0.0.0:1883\" or \"[::]:1883\" \
                             (host names are not resolved)";

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// Address and port to listen on; an IP literal, host names are not resolved.
    /// Default `"0.0.0.0:1883"`. Every shard binds it (SO_REUSEPORT).
    #[serde(deserialize_with = "deserialize_bind")]
    pub bind: SocketAddr,
    /// Pending-connection queue of the listening socket, per shard. Default 1024,
    /// range 1..=65535 (the kernel also caps it at `net.core.somaxconn`).
    pub backlog: u32,
    /// Open connections on this listener across all shards. Hit: new connections are
    /// closed at once. Default 100000, minimum 1.
    pub max_connections: u32,
    /// Transport: `"tcp"` (default) for MQTT on the socket, or `"ws"` for MQTT over
    /// WebSocket (with a `tls` table: wss), on any request path.
    pub kind: ListenerKind,
    /// MQTT over TLS on this listener (and, with a `ca`, client certificates). Default
    /// none: plain MQTT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Every connection starts with a PROXY protocol header (v1 or v2, either accepted),
    /// sent by a load balancer; its source address is the client's address. Default false.
    pub proxy_protocol: bool,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            bind: LISTEN_ADDR_DEFAULT,
            backlog: BACKLOG_DEFAULT,
            max_connections: MAX_CONNECTIONS_DEFAULT,
            kind: ListenerKind::Tcp,
            tls: None,
            proxy_protocol: false,
        }
    }
}

impl fmt::Display for ListenerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls {
            None => write!(f, "{} ({})", self.bind, self.kind),
            Some(_) => write!(f, "{} ({}, tls)", self.bind, self.kind),
        }
    }
}

fn deserialize_bind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.trim()
        .parse()
        .map_err(|_| D::Error::invalid_value(Unexpected::Str(&text), &BIND_EXPECTED))
}

fn validate_listeners(listeners: &[ListenerConfig], problems: &mut Vec<Problem>) {
    if listeners.is_empty() {
        problems.push(Problem::new(
            "listener",
            "[]",
            "needs at least one [[listener]] (or leave it out for the default 0.0.0.0:1883)",
        ));
    }
    for (i, listener) in listeners.iter().enumerate() {
        if let Some(first) = listeners[..i].iter().position(|l| l.bind == listener.bind) {
            problems.push(Problem::new(
                format!("listener[{i}].bind"),
                format!("\"{}\"", listener.bind),
                format!("must differ from listener[{first}].bind"),
            ));
        }
        check_range(
            problems,
            &format!("listener[{i}].backlog"),
            listener.backlog,
            BACKLOG_RANGE,
        );
        check_min(
            problems,
            &format!("listener[{i}].max_connections"),
            listener.max_connections,
            MAX_CONNECTIONS_MIN,
        );
        if let Some(tls) = &listener.tls {
            tls.validate(&format!("listener[{i}].tls"), problems);
        }
    }
}

/// Transport of a listener (TLS is the `tls` table, on either).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// Plain MQTT over TCP.
    #[default]
    Tcp,
    /// MQTT over WebSocket (RFC 6455), subprotocol `mqtt` (or `mqttv3.1`).
    Ws,
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Ws => "ws",
        })
    }
}

/// The `[storage]` section: where and how the segment logs are written.
///
/// # Invariants
///
/// After `Config::validate`: `segment_bytes` is a multiple of 4096 and at least twice
/// `limits.packet_bytes_max`; `limits.packet_bytes_max <= session_queue_bytes_max <=
/// disk_quota_bytes`; `disk_quota_bytes >= 2 * segment_bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the segment logs (`shard-N/` inside) and the lock file.
    /// Default `"./ringmq-data"`, must not be empty.
    pub data_dir: PathBuf,
    /// When an acknowledged message is flushed to disk. Default `"always"`.
    pub fsync: FsyncPolicy,
    /// Flush period with `fsync = "interval"`, in milliseconds (ignored otherwise, still
    /// checked). Default 10, range 1..=60000.
    pub interval_ms: u32,
    /// Size of one log segment file. Default 67108864 (64 MiB), range 1 MiB..=4 GiB,
    /// a multiple of 4096, and at least 2 x `limits.packet_bytes_max`.
    pub segment_bytes: u64,
    /// Disk space the offline queue of one persistent session may use. Hit: further
    /// messages for that session are dropped and counted. Default 268435456 (256 MiB),
    /// from `limits.packet_bytes_max` up to `disk_quota_bytes`.
    pub session_queue_bytes_max: u64,
    /// Messages the offline queue of one persistent session may hold (on disk). Hit:
    /// further messages for that session are dropped and counted, like
    /// `session_queue_bytes_max`. Default 10000000, minimum 1.
    pub session_queue_messages_max: u64,
    /// Disk space all shards' logs may use together, an equal share per shard; a shard at
    /// its share drops new messages for its persistent sessions (counted, logged). Each shard keeps at least one segment
    /// (two while the next one is prepared), so allow for 2 x `segment_bytes` per shard.
    /// Default 8589934592 (8 GiB), minimum 2 x `segment_bytes`.
    pub disk_quota_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DATA_DIR_DEFAULT),
            fsync: FsyncPolicy::Always,
            interval_ms: FSYNC_INTERVAL_MS_DEFAULT,
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            session_queue_bytes_max: SESSION_QUEUE_BYTES_MAX_DEFAULT,
            session_queue_messages_max: SESSION_QUEUE_MESSAGES_MAX_DEFAULT,
            disk_quota_bytes: DISK_QUOTA_BYTES_DEFAULT,
        }
    }
}

impl StorageConfig {
    /// `interval_ms` as a `Duration`.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.interval_ms))
    }

    fn validate(&self, limits: &Limits, problems: &mut Vec<Problem>) {
        if self.data_dir.as_os_str().is_empty() {
            problems.push(Problem::new(
                "storage.data_dir",
                "\"\"",
                "must name a directory",
            ));
        }
        check_range(
            problems,
            "storage.interval_ms",
            self.interval_ms,
            FSYNC_INTERVAL_MS_RANGE,
        );
        check_range(
            problems,
            "storage.segment_bytes",
            self.segment_bytes,
            SEGMENT_BYTES_RANGE,
        );
        if self.segment_bytes % SEGMENT_ALIGN_BYTES != 0 {
            problems.push(Problem::new(
                "storage.segment_bytes",
                self.segment_bytes,
                format!("must be a multiple of {SEGMENT_ALIGN_BYTES} (segments are memory-mapped)"),
            ));
        }
        let packet_bytes_max = u64::from(limits.packet_bytes_max);
        if self.segment_bytes < 2 * packet_bytes_max {
            problems.push(Problem::new(
                "storage.segment_bytes",
                self.segment_bytes,
                format!(
                    "must be at least 2 x limits.packet_bytes_max ({}) so that a largest \
                     message and its framing fit in one segment",
                    2 * packet_bytes_max
                ),
            ));
        }
        if self.session_queue_bytes_max < packet_bytes_max {
            problems.push(Problem::new(
                "storage.session_queue_bytes_max",
                self.session_queue_bytes_max,
                format!(
                    "must be at least limits.packet_bytes_max ({packet_bytes_max}) so that \
                     one largest message fits"
                ),
            ));
        }
        if self.session_queue_messages_max == 0 {
            problems.push(Problem::new(
                "storage.session_queue_messages_max",
                0,
                "must be at least 1",
            ));
        }
        if self.session_queue_bytes_max > self.disk_quota_bytes {
            problems.push(Problem::new(
                "storage.session_queue_bytes_max",
                self.session_queue_bytes_max,
                format!(
                    "must not exceed storage.disk_quota_bytes ({})",
                    self.disk_quota_bytes
                ),
            ));
        }
        if self.disk_quota_bytes < self.segment_bytes.saturating_mul(2) {
            problems.push(Problem::new(
                "storage.disk_quota_bytes",
                self.disk_quota_bytes,
                format!(
                    "must be at least 2 x storage.segment_bytes ({})",
                    self.segment_bytes.saturating_mul(2)
                ),
            ));
        }
    }
}

/// When appended records are flushed to disk, and so when QoS 1/2 acknowledgements go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Before every acknowledgement; one flush covers every ack waiting (group commit).
    #[default]
    Always,
    /// Every `storage.interval_ms`; a crash may lose that much acknowledged data.
    Interval,
    /// Never explicitly; the kernel writes back when it likes. For tests and benchmarks.
    Never,
}

/// The `[log]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Most verbose level written. Default `"info"`.
    pub level: LogLevel,
    /// Line format. Default `"text"`.
    pub format: LogFormat,
}

/// Log verbosity, from nothing to everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// No log at all.
    Off,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also lifecycle events (start, stop, listeners). The default.
    #[default]
    Info,
    /// Also per-connection events.
    Debug,
    /// Everything.
    Trace,
}

const LOG_LEVELS: [LogLevel; 6] = [
    LogLevel::Off,
    LogLevel::Error,
    LogLevel::Warn,
    LogLevel::Info,
    LogLevel::Debug,
    LogLevel::Trace,
];

impl LogLevel {
    /// The name used in the file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        LOG_LEVELS
            .into_iter()
            .find(|level| level.as_str() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = LOG_LEVELS.iter().map(|l| l.as_str()).collect();
                format!("expected one of {}", names.join(", "))
            })
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// One thing wrong with a configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `limits.packet_bytes_max` or `listener[1].bind`.
    pub key: String,
    /// The offending value, as written in TOML.
    pub value: String,
    /// What to change, e.g. `must be between 16 and 268435460`.
    pub expected: String,
}

impl Problem {
    pub(crate) fn new(
        key: impl Into<String>,
        value: impl fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; got {}", self.key, self.expected, self.value)
    }
}

/// Records a problem when `value` is outside `range`.
pub(crate) fn check_range<T: PartialOrd + fmt::Display>(
    problems: &mut Vec<Problem>,
    key: &str,
    value: T,
    range: RangeInclusive<T>,
) {
    if !range.contains(&value) {
        let expected = format!("must be between {} and {}", range.start(), range.end());
        problems.push(Problem::new(key, value, expected));
    }
}

/// Records a problem when `value` is below `min`.
pub(crate) fn check_min<T: PartialOrd + fmt::Display>(
    problems: &mut Vec<Problem>,
    key: &str,
    value: T,
    min: T,
) {
    if value < min {
        problems.push(Problem::new(key, value, format!("must be at least {min}")));
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{}", describe_parse(origin, location.as_ref(), key.as_deref(), message))]
    Parse {
        /// The file (or the built-in default).
        origin: String,
        /// Line and column of the error, when known.
        location: Option<Location>,
        /// Key path of the offending key, e.g. `limits.foo` or `listener[1].bind`.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A command-line override could not be parsed.
    #[error("{flag} {value:?}: {reason}")]
    Override {
        /// The flag, e.g. `--cores`.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// Values parsed but break a rule; every problem found is listed.
    #[error("{}", describe_invalid(origin.as_deref(), problems))]
    Invalid {
        /// The file the configuration came from, when known.
        origin: Option<String>,
        /// At least one problem.
        problems: Vec<Problem>,
    },
}

/// A position in a config file, both 1-based; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line number.
    pub line: usize,
    /// Column number.
    pub column: usize,
}

impl Location {
    fn of(text: &str, offset: usize) -> Option<Location> {
        let before = text.get(..offset)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Some(Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        })
    }
}

fn describe_parse(
    origin: &str,
    location: Option<&Location>,
    key: Option<&str>,
    message: &str,
) -> String {
    let mut text = origin.to_owned();
    if let Some(at) = location {
        text.push_str(&format!(":{}:{}", at.line, at.column));
    }
    text.push_str(": ");
    if let Some(key) = key {
        text.push_str(key);
        text.push_str(": ");
    }
    text.push_str(message);
    text
}

fn describe_invalid(origin: Option<&str>, problems: &[Problem]) -> String {
    let prefix = origin.map(|o| format!("{o}: ")).unwrap_or_default();
    match problems {
        [one] => format!("{prefix}{one}"),
        many => {
            let lines: Vec<String> = many.iter().map(|p| format!("  {p}")).collect();
            format!(
                "{prefix}{} problems in the configuration:\n{}",
                many.len(),
                lines.join("\n")
            )
        }
    }
}

/// Turns toml's error (which has a position but no key path) into one that names both.
fn parse_error(text: &str, origin: &str, err: &toml::de::Error) -> ConfigError {
    let mut location = err.span().and_then(|span| Location::of(text, span.start));
    let mut key = None;
    let mut message = err.message().trim().replace('\n', "; ");
    // Well-formed TOML that does not fit `Config`: find the key at fault.
    if let Ok(doc) = toml::from_str::<toml::Table>(text) {
        if let Some((path, isolated_message)) = find_bad_key(&doc) {
            // Keep toml's position only if its line shows that key; with two bad keys the
            // two searches may have stopped at different ones.
            let name = path.rsplit('.').next().unwrap_or(&path);
            let name = name.split('[').next().unwrap_or(name);
            let line_shows_key = location
                .and_then(|at| text.lines().nth(at.line - 1))
                .is_some_and(|line| line.contains(name));
            if !line_shows_key {
                location = None;
            }
            key = Some(path);
            message = isolated_message.trim().replace('\n', "; ");
        }
    }
    if let Some(hint) = suggestion(&message) {
        message.push_str(&format!("; did you mean `{hint}`?"));
    }
    ConfigError::Parse {
        origin: origin.to_owned(),
        location,
        key,
        message,
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant"), the
/// expected name closest to `x`, when it is close enough to be a likely typo: at most one
/// edit per three characters (at least one), so `packet_bytes_mx` suggests
/// `packet_bytes_max` but `foo` suggests nothing.
fn suggestion(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (given, rest) = rest.split_once('`')?;
    let (_, expected) = rest.split_once("expected")?;
    let limit = (given.chars().count() / 3).max(1);
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| (strsim::damerau_levenshtein(given, name), name))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, name)| name.to_owned())
}

/// One step of a key path: a table key or an array index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Finds the innermost key of `doc` whose value alone (every other key left out) still
/// fails to deserialize into a `Config`, and returns its path and the error message.
///
/// Works because every field has a default: a document holding one good key is valid.
/// Returns `None` when the document is fine, or when only a combination of keys fails.
fn find_bad_key(doc: &toml::Table) -> Option<(String, String)> {
    fn isolated_error(steps: &[Step<'_>], leaf: &toml::Value) -> Option<String> {
        let document = steps
            .iter()
            .rev()
            .fold(leaf.clone(), |inner, step| match step {
                Step::Key(key) => {
                    toml::Value::Table(toml::Table::from_iter([((*key).to_owned(), inner)]))
                }
                Step::Index(_) => toml::Value::Array(vec![inner]),
            });
        document
            .try_into::<Config>()
            .err()
            .map(|err| err.message().to_owned())
    }

    let root = toml::Value::Table(doc.clone());
    let mut steps: Vec<Step<'_>> = Vec::new();
    let mut current = &root;
    let mut message = isolated_error(&steps, current)?;
    loop {
        let found = match current {
            toml::Value::Table(table) => table.iter().find_map(|(key, value)| {
                steps.push(Step::Key(key));
                let found = isolated_error(&steps, value).map(|m| (value, m));
                steps.pop();
                found.map(|(value, m)| (Step::Key(key), value, m))
            }),
            toml::Value::Array(items) => items.iter().enumerate().find_map(|(i, value)| {
                steps.push(Step::Index(i));
                let found = isolated_error(&steps, value).map(|m| (value, m));
                steps.pop();
                found.map(|(value, m)| (Step::Index(i), value, m))
            }),
            _ => None,
        };
        let Some((step, value, m)) = found else {
            break;
        };
        steps.push(step);
        current = value;
        message = m;
        // A key that fails even when emptied is itself at fault (an unknown section, or a
        // table where a number belongs): stop here rather than blame what is inside it.
        let emptied = match value {
            toml::Value::Table(_) => Some(toml::Value::Table(toml::Table::new())),
            toml::Value::Array(_) => Some(toml::Value::Array(Vec::new())),
            _ => None,
        };
        if let Some(m) = emptied.and_then(|empty| isolated_error(&steps, &empty)) {
            message = m;
            break;
        }
    }
    if steps.is_empty() {
        return None;
    }
    let mut path = String::new();
    for step in &steps {
        match step {
            Step::Key(key) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Step::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    Some((path, message))
}

#[cfg(test)]
mod tests {
    /// The `# [[listener]]` examples commented out in the default file, uncommented: each
    /// a TOML document of one listener.
    pub(crate) fn commented_listener_examples() -> Vec<String> {
        DEFAULT_CONFIG_TOML
            .split("# [[listener]]\n")
            .skip(1)
            .map(|rest| {
                let lines: Vec<&str> = rest
                    .lines()
                    .take_while(|l| l.starts_with("# ") && l.contains(" = "))
                    .map(|l| l.trim_start_matches("# "))
                    .collect();
                format!("[[listener]]\n{}\n", lines.join("\n"))
            })
            .collect()
    }
    use super::*;
    use std::collections::BTreeSet;

    /// Changes one field of `[storage]`.
    type StorageEdit = fn(&mut StorageConfig);

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml")
    }

    fn parse_err(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, parsed {config:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn problems(config: &Config) -> Vec<Problem> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    fn keys(config: &Config) -> Vec<String> {
        problems(config).into_iter().map(|p| p.key).collect()
    }

    /// Every key path of a TOML value; array-of-table elements collapse to `name[]`.
    fn key_paths(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    out.insert(path.clone());
                    key_paths(value, &path, out);
                }
            }
            toml::Value::Array(items) if items.iter().all(toml::Value::is_table) => {
                for item in items {
                    key_paths(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }

    // --- the default file ------------------------------------------------------------

    #[test]
    fn empty_file_is_the_default_config() {
        assert_eq!(parse("").ok(), Some(Config::default()));
        assert_eq!(parse("\n# only a comment\n").ok(), Some(Config::default()));
    }

    #[test]
    fn default_config_is_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn embedded_default_file_parses_to_exactly_the_default() {
        let parsed = Config::from_toml(DEFAULT_CONFIG_TOML, DEFAULT_CONFIG_ORIGIN);
        assert_eq!(parsed.ok(), Some(Config::default()));
        assert_eq!(Config::load(None).ok(), Some(Config::default()));
    }

    #[test]
    fn embedded_default_file_names_every_key() {
        let Ok(file) = toml::from_str::<toml::Value>(DEFAULT_CONFIG_TOML) else {
            panic!("tuning/ringmq.toml is not valid TOML");
        };
        let Ok(code) = toml::Value::try_from(Config::default()) else {
            panic!("Config::default() does not serialize");
        };
        let mut in_file = BTreeSet::new();
        key_paths(&file, "", &mut in_file);
        let mut in_code = BTreeSet::new();
        key_paths(&code, "", &mut in_code);
        let missing: Vec<_> = in_code.difference(&in_file).collect();
        assert!(
            missing.is_empty(),
            "keys missing from tuning/ringmq.toml: {missing:?}"
        );
        assert_eq!(in_file, in_code);
    }

    #[test]
    fn every_key_in_the_default_file_has_a_comment_above_it() {
        let mut previous = "";
        for (n, line) in DEFAULT_CONFIG_TOML.lines().enumerate() {
            let line = line.trim();
            let is_key = !line.is_empty() && !line.starts_with('#') && !line.starts_with('[');
            if is_key {
                assert!(
                    previous.starts_with('#'),
                    "tuning/ringmq.toml line {}: `{line}` has no comment above it",
                    n + 1
                );
            }
            if !line.is_empty() {
                previous = line;
            }
        }
    }

    // --- parse errors name the file, the position and the key ------------------------

    #[test]
    fn unknown_key_is_rejected_with_its_path() {
        let err = parse_err("[limits]\npacket_bytes_max = 2048\nfoo = 1\n");
        assert!(
            err.starts_with("test.toml:3:1: limits.foo: unknown field `foo`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_in_second_listener_names_its_index() {
        let err = parse_err("[[listener]]\nbind = \"0.0.0.0:1\"\n[[listener]]\nbindd = \"x\"\n");
        assert!(
            err.starts_with("test.toml:4:1: listener[1].bindd: unknown field `bindd`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_close_to_a_known_one_gets_a_suggestion() {
        let err = parse_err("[limits]\npacket_bytes_mx = 2048\n");
        assert!(
            err.starts_with("test.toml:2:1: limits.packet_bytes_mx: unknown field")
                && err.ends_with("did you mean `packet_bytes_max`?"),
            "{err}"
        );
        let err = parse_err("[[listener]]\nproxy_protocl = true\n");
        assert!(err.ends_with("did you mean `proxy_protocol`?"), "{err}");
        let err = parse_err("[limit]\n");
        assert!(err.ends_with("did you mean `limits`?"), "{err}");
        let err = parse_err("[log]\nformat = \"jsn\"\n");
        assert!(err.ends_with("did you mean `json`?"), "{err}");
        // Nothing close: no guess.
        let err = parse_err("[limits]\nfoo = 1\n");
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[test]
    fn unknown_section_is_rejected() {
        let err = parse_err("[limit]\npacket_bytes_max = 2048\n");
        assert!(
            err.starts_with("test.toml:1:2: limit: unknown field `limit`, expected one of"),
            "{err}"
        );
    }

    #[test]
    fn unknown_dotted_and_inline_keys_are_rejected() {
        let err = parse_err("storage.data_dirr = \"x\"\n");
        assert!(err.contains("storage.data_dirr: unknown field"), "{err}");
        let err = parse_err("log = { level = \"info\", colour = true }\n");
        assert!(err.contains("log.colour: unknown field"), "{err}");
    }

    #[test]
    fn wrong_type_names_key_and_position() {
        let err = parse_err("[runtime]\nring_depth = \"deep\"\n");
        assert_eq!(
            err,
            "test.toml:2:14: runtime.ring_depth: invalid type: string \"deep\", expected usize"
        );
    }

    #[test]
    fn negative_and_oversized_integers_name_their_key() {
        let err = parse_err("[limits]\ninflight_count_max = -1\n");
        assert!(
            err.contains("limits.inflight_count_max: invalid value"),
            "{err}"
        );
        let err = parse_err("[limits]\ninflight_count_max = 65536\n");
        assert!(
            err.contains("limits.inflight_count_max: invalid value"),
            "{err}"
        );
    }

    #[test]
    fn bad_enum_values_list_the_choices() {
        let err = parse_err("[storage]\nfsync = \"sometimes\"\n");
        assert!(
            err.contains("storage.fsync: unknown variant `sometimes`"),
            "{err}"
        );
        assert!(err.contains("`always`, `interval`, `never`"), "{err}");
        let err = parse_err("[log]\nlevel = \"verbose\"\n");
        assert!(
            err.contains("log.level: unknown variant `verbose`"),
            "{err}"
        );
        let err = parse_err("[runtime]\nplacement = \"spread\"\n");
        assert!(err.contains("runtime.placement"), "{err}");
        let err = parse_err("[[listener]]\nkind = \"udp\"\n");
        assert!(
            err.contains("listener[0].kind: unknown variant `udp`"),
            "{err}"
        );
        assert!(err.contains("`tcp` or `ws`"), "{err}");
        let err = parse_err("[[listener]]\nkind = \"wss\"\n");
        assert!(
            err.contains("listener[0].kind: unknown variant `wss`"),
            "{err}"
        );
        let err = parse_err("[limits]\npublish_rate_action = \"drop\"\n");
        assert!(
            err.contains("limits.publish_rate_action: unknown variant `drop`"),
            "{err}"
        );
        assert!(err.contains("`throttle` or `disconnect`"), "{err}");
    }

    #[test]
    fn cores_accepts_all_or_a_list_and_nothing_else() {
        let Ok(config) = parse("[runtime]\ncores = [0, 2, 4]\n") else {
            panic!("list of cores rejected");
        };
        assert_eq!(
            config.runtime.cores,
            Cores::List(vec![CpuId(0), CpuId(2), CpuId(4)])
        );
        let Ok(config) = parse("[runtime]\ncores = \"all\"\n") else {
            panic!("\"all\" rejected");
        };
        assert_eq!(config.runtime.cores, Cores::All);

        let err = parse_err("[runtime]\ncores = \"any\"\n");
        assert!(
            err.contains(
                "runtime.cores: invalid value: string \"any\", expected \"all\" or a list"
            ),
            "{err}"
        );
        let err = parse_err("[runtime]\ncores = 4\n");
        assert!(
            err.contains("runtime.cores: invalid type: integer `4`"),
            "{err}"
        );
        let err = parse_err("[runtime]\ncores = [0, \"x\"]\n");
        assert!(err.contains("runtime.cores[1]: invalid type"), "{err}");
    }

    #[test]
    fn bind_must_be_an_ip_and_port() {
        let err = parse_err("[[listener]]\nbind = \"localhost:1883\"\n");
        assert!(
            err.starts_with("test.toml:2:8: listener[0].bind: invalid value"),
            "{err}"
        );
        assert!(err.contains("host names are not resolved"), "{err}");
        let Ok(config) = parse("[[listener]]\nbind = \"[::1]:8883\"\n") else {
            panic!("IPv6 bind rejected");
        };
        assert_eq!(config.listeners[0].bind.to_string(), "[::1]:8883");
    }

    #[test]
    fn websocket_listener_beside_tcp() {
        let text = "[[listener]]\nbind = \"0.0.0.0:1883\"\n\
                    [[listener]]\nbind = \"0.0.0.0:8080\"\nkind = \"ws\"\n";
        let Ok(config) = parse(text) else {
            panic!("ws listener rejected");
        };
        let kinds: Vec<_> = config.listeners.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, [ListenerKind::Tcp, ListenerKind::Ws]);
        assert_eq!(config.listeners[1].to_string(), "0.0.0.0:8080 (ws)");
        // The default file's commented ws and wss examples are valid.
        let examples: Vec<String> = commented_listener_examples()
            .into_iter()
            .filter(|block| block.contains("kind = \"ws\""))
            .collect();
        assert_eq!(examples.len(), 2, "{examples:?}");
        for block in &examples {
            let c = Config::from_toml(block, "example").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.listeners[0].kind, ListenerKind::Ws);
        }
        assert!(Config::from_toml(&examples[1], "example")
            .unwrap()
            .listeners[0]
            .tls
            .is_some());
    }

    #[test]
    fn syntax_error_names_file_and_position() {
        let err = parse_err("[limits\npacket_bytes_max = 1\n");
        assert!(err.starts_with("test.toml:1:"), "{err}");
    }

    #[test]
    fn with_two_bad_keys_key_and_position_agree() {
        let err = parse_err("[runtime]\nring_depth = \"x\"\n[limits]\nmesh_capacity = \"y\"\n");
        // Both searches find `limits` first or `runtime` first; either way the line shown
        // must be the key's own line, or no line at all.
        assert!(
            err.starts_with("test.toml:2:14: runtime.ring_depth")
                || err.starts_with("test.toml:4:17: limits.mesh_capacity")
                || err.starts_with("test.toml: "),
            "{err}"
        );
    }

    #[test]
    fn sections_and_listeners_are_read() {
        let text = "\
[runtime]\nplacement = \"unbound\"\nspin_before_park_us = 50\n\
[[listener]]\nbind = \"127.0.0.1:1883\"\nbacklog = 16\n\
[[listener]]\nbind = \"127.0.0.1:1884\"\n\
[storage]\nfsync = \"interval\"\ninterval_ms = 5\n\
[log]\nformat = \"json\"\nlevel = \"debug\"\n";
        let Ok(config) = parse(text) else {
            panic!("valid file rejected");
        };
        assert_eq!(config.runtime.placement, Placement::Unbound);
        assert_eq!(config.listeners.len(), 2);
        assert_eq!(config.listeners[0].backlog, 16);
        assert_eq!(config.listeners[1].backlog, BACKLOG_DEFAULT);
        assert_eq!(config.storage.fsync, FsyncPolicy::Interval);
        assert_eq!(config.storage.interval(), Duration::from_millis(5));
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, LogLevel::Debug);
        assert!(config.validate().is_ok());
        assert_eq!(
            config.listener_summary(),
            "127.0.0.1:1883 (tcp), 127.0.0.1:1884 (tcp)"
        );
    }

    // --- validation ------------------------------------------------------------------

    #[test]
    fn empty_listener_list_is_rejected() {
        let Ok(config) = parse("listener = []\n") else {
            panic!("empty listener list does not parse");
        };
        assert_eq!(keys(&config), ["listener"]);
    }

    #[test]
    fn duplicate_bind_is_rejected() {
        let mut config = Config::default();
        config.listeners.push(ListenerConfig::default());
        let found = problems(&config);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "listener[1].bind: must differ from listener[0].bind; got \"0.0.0.0:1883\""
        );
    }

    #[test]
    fn listener_backlog_and_max_connections_are_bounded() {
        let mut config = Config::default();
        config.listeners[0].backlog = 0;
        config.listeners[0].max_connections = 0;
        assert_eq!(
            keys(&config),
            ["listener[0].backlog", "listener[0].max_connections"]
        );
        config.listeners[0].backlog = 65_536;
        config.listeners[0].max_connections = 1;
        assert_eq!(keys(&config), ["listener[0].backlog"]);
    }

    #[test]
    fn persistence_is_another_name_for_storage() {
        let config = parse("[persistence]\nfsync = \"interval\"\ninterval_ms = 5\n").unwrap();
        assert_eq!(config.storage.fsync, FsyncPolicy::Interval);
        assert_eq!(config.storage.interval_ms, 5);
    }

    #[test]
    fn storage_rules_are_enforced() {
        let cases: [(&str, StorageEdit); 6] = [
            ("storage.data_dir", |s| s.data_dir = PathBuf::new()),
            ("storage.interval_ms", |s| s.interval_ms = 0),
            ("storage.interval_ms", |s| s.interval_ms = 60_001),
            ("storage.segment_bytes", |s| {
                s.segment_bytes = (64 << 20) + 1
            }),
            ("storage.session_queue_bytes_max", |s| {
                s.session_queue_bytes_max = s.disk_quota_bytes + 1
            }),
            ("storage.disk_quota_bytes", |s| {
                s.disk_quota_bytes = 2 * s.segment_bytes - 1;
                s.session_queue_bytes_max = s.disk_quota_bytes;
            }),
        ];
        for (key, set) in cases {
            let mut config = Config::default();
            set(&mut config.storage);
            assert_eq!(keys(&config), [key]);
        }
    }

    #[test]
    fn segment_must_hold_two_largest_packets() {
        let mut config = Config::default();
        config.limits.packet_bytes_max = 40 << 20;
        let found = problems(&config);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "storage.segment_bytes: must be at least 2 x limits.packet_bytes_max (83886080) \
             so that a largest message and its framing fit in one segment; got 67108864"
        );
    }

    #[test]
    fn segment_size_range_is_enforced() {
        let mut config = Config::default();
        config.storage.segment_bytes = 512 << 10;
        config.limits.packet_bytes_max = 1024;
        assert_eq!(keys(&config), ["storage.segment_bytes"]);
    }

    #[test]
    fn session_queue_must_hold_a_largest_packet() {
        let mut config = Config::default();
        config.storage.session_queue_bytes_max = 1000;
        assert_eq!(keys(&config), ["storage.session_queue_bytes_max"]);
    }

    #[test]
    fn several_problems_are_listed_one_per_line() {
        let mut config = Config::default();
        config.limits.packet_bytes_max = 3;
        config.runtime.ring_depth = 8;
        let Err(err) = config.validate() else {
            panic!("invalid config accepted");
        };
        assert_eq!(
            err.to_string(),
            "2 problems in the configuration:\n  \
             runtime.ring_depth: must be between 16 and 4096; got 8\n  \
             limits.packet_bytes_max: must be between 16 and 268435460; got 3"
        );
    }

    // --- [auth] ------------------------------------------------------------------------

    #[test]
    fn auth_keys_are_read() {
        let text = "[auth]\nscram_iterations = 8192\npassword_file = \"/etc/ringmq/passwd\"\n\
                    acl_file = \"/etc/ringmq/acl\"\nfailed_login_delay_ms = 250\n";
        let Ok(config) = parse(text) else {
            panic!("valid [auth] rejected");
        };
        assert_eq!(config.auth.scram_iterations, 8192);
        assert_eq!(
            config.auth.password_file(),
            Some(Path::new("/etc/ringmq/passwd"))
        );
        assert_eq!(config.auth.acl_file(), Some(Path::new("/etc/ringmq/acl")));
        assert_eq!(config.auth.failed_login_delay(), Duration::from_millis(250));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn anonymous_clients_default_to_refused_only_with_a_password_file() {
        let mut auth = AuthConfig::default();
        assert!(auth.anonymous_allowed(), "no password file: anyone");
        auth.password_file = PathBuf::from("passwd");
        assert!(!auth.anonymous_allowed(), "a password file: only its users");
        auth.allow_anonymous = Some(true);
        assert!(auth.anonymous_allowed());
        auth.password_file = PathBuf::new();
        auth.allow_anonymous = Some(false);
        assert!(!auth.anonymous_allowed());
        let Ok(config) = parse("[auth]\nallow_anonymous = true\npassword_file = \"p\"\n") else {
            panic!("valid [auth] rejected");
        };
        assert!(config.auth.anonymous_allowed());
    }

    #[test]
    fn auth_unknown_keys_are_rejected_with_their_path() {
        let err = parse_err("[auth]\niterations = 4096\n");
        assert!(
            err.starts_with("test.toml:2:1: auth.iterations: unknown field `iterations`"),
            "{err}"
        );
        // The plaintext user list of earlier versions is gone: passwords live in the
        // password file, hashed.
        let err = parse_err("[[auth.users]]\nusername = \"a\"\npassword = \"b\"\n");
        assert!(err.contains("auth.users: unknown field `users`"), "{err}");
    }

    #[test]
    fn auth_rules_are_enforced() {
        let mut config = Config::default();
        config.auth.scram_iterations = 4095;
        config.auth.failed_login_delay_ms = 60_001;
        config.auth.failed_logins_per_address_max = 0;
        config.auth.failed_login_window_secs = 0;
        config.auth.failed_login_addresses_max = 0;
        config.auth.verify_threads = 65;
        config.auth.verify_queue_max = 0;
        config.auth.acl_cache_topics_max = 0;
        assert_eq!(
            keys(&config),
            [
                "auth.scram_iterations",
                "auth.failed_login_delay_ms",
                "auth.failed_logins_per_address_max",
                "auth.failed_login_window_secs",
                "auth.failed_login_addresses_max",
                "auth.verify_threads",
                "auth.verify_queue_max",
                "auth.acl_cache_topics_max",
            ]
        );
        let found = problems(&config);
        assert_eq!(
            found[5].to_string(),
            "auth.verify_threads: must be between 1 and 64; got 65"
        );
    }

    // --- loading files -----------------------------------------------------------------

    /// A file in the temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "ringmq-config-test-{}-{name}.toml",
                std::process::id()
            ));
            std::fs::write(&path, text).expect("write temp config");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn load_reads_parses_and_validates_a_file() {
        let file = TempFile::new("good", "[limits]\ntopic_levels_max = 8\n");
        let config = Config::load(Some(&file.0)).expect("valid file");
        assert_eq!(config.limits.topic_levels_max, 8);
    }

    #[test]
    fn load_names_the_file_in_validation_errors() {
        let file = TempFile::new("invalid", "[limits]\npacket_bytes_max = 3\n");
        let err = Config::load(Some(&file.0)).expect_err("invalid file");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: limits.packet_bytes_max: must be between 16 and 268435460; got 3",
                file.0.display()
            )
        );
    }

    #[test]
    fn load_names_the_file_in_parse_errors() {
        let file = TempFile::new("unknown", "[storage]\nfsync_policy = \"always\"\n");
        let err = Config::load(Some(&file.0)).expect_err("unknown key");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}:2:1: storage.fsync_policy:", file.0.display())),
            "{text}"
        );
    }

    #[test]
    fn load_of_a_missing_file_names_it() {
        let path = Path::new("/nonexistent/ringmq-test.toml");
        let err = Config::load(Some(path)).expect_err("missing file");
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/ringmq-test.toml"));
    }

    // --- command-line overrides ------------------------------------------------------------

    #[test]
    fn no_overrides_change_nothing() {
        let mut config = Config::default();
        assert!(Overrides::default().is_empty());
        config
            .apply_overrides(&Overrides::default())
            .expect("no overrides");
        assert_eq!(config, Config::default());
    }

    #[test]
    fn listen_replaces_listeners_and_keeps_the_first_ones_settings() {
        let Ok(mut config) = parse(
            "[[listener]]\nbind = \"0.0.0.0:1\"\nbacklog = 64\nmax_connections = 10\n\
             [[listener]]\nbind = \"0.0.0.0:2\"\n",
        ) else {
            panic!("valid file rejected");
        };
        let overrides = Overrides {
            listen: vec!["127.0.0.1:11883".into(), "[::1]:11883".into()],
            ..Overrides::default()
        };
        config.apply_overrides(&overrides).expect("valid overrides");
        let binds: Vec<String> = config
            .listeners
            .iter()
            .map(|l| l.bind.to_string())
            .collect();
        assert_eq!(binds, ["127.0.0.1:11883", "[::1]:11883"]);
        assert!(config
            .listeners
            .iter()
            .all(|l| l.backlog == 64 && l.max_connections == 10 && l.kind == ListenerKind::Tcp));
    }

    #[test]
    fn listen_without_file_listeners_uses_defaults() {
        let mut config = Config {
            listeners: Vec::new(),
            ..Config::default()
        };
        let overrides = Overrides {
            listen: vec!["127.0.0.1:1883".into()],
            ..Overrides::default()
        };
        config.apply_overrides(&overrides).expect("valid overrides");
        assert_eq!(config.listeners[0].backlog, BACKLOG_DEFAULT);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn bad_listen_address_names_the_flag() {
        let overrides = Overrides {
            listen: vec!["localhost:1883".into()],
            ..Overrides::default()
        };
        let err = Config::default()
            .apply_overrides(&overrides)
            .expect_err("host name accepted");
        assert!(
            err.to_string()
                .starts_with("--listen \"localhost:1883\": expected an IP address and port"),
            "{err}"
        );
    }

    #[test]
    fn cores_data_dir_and_log_level_override_the_file() {
        let Ok(mut config) = parse(
            "[runtime]\ncores = [1]\n[storage]\ndata_dir = \"/a\"\n[log]\nlevel = \"warn\"\n",
        ) else {
            panic!("valid file rejected");
        };
        let overrides = Overrides {
            cores: Some("0,2,4".into()),
            data_dir: Some(PathBuf::from("/b")),
            log_level: Some("TRACE".into()),
            ..Overrides::default()
        };
        config.apply_overrides(&overrides).expect("valid overrides");
        assert_eq!(
            config.runtime.cores,
            Cores::List(vec![CpuId(0), CpuId(2), CpuId(4)])
        );
        assert_eq!(config.storage.data_dir, PathBuf::from("/b"));
        assert_eq!(config.log.level, LogLevel::Trace);

        let overrides = Overrides {
            cores: Some("all".into()),
            ..Overrides::default()
        };
        config.apply_overrides(&overrides).expect("valid overrides");
        assert_eq!(config.runtime.cores, Cores::All);
    }

    #[test]
    fn bad_cores_and_log_level_name_their_flag() {
        let overrides = Overrides {
            cores: Some("0,two".into()),
            ..Overrides::default()
        };
        let err = Config::default()
            .apply_overrides(&overrides)
            .expect_err("bad cores");
        assert!(
            err.to_string()
                .starts_with("--cores \"0,two\": \"two\" is not a CPU id"),
            "{err}"
        );
        let overrides = Overrides {
            log_level: Some("loud".into()),
            ..Overrides::default()
        };
        let err = Config::default()
            .apply_overrides(&overrides)
            .expect_err("bad level");
        assert_eq!(
            err.to_string(),
            "--log-level \"loud\": expected one of off, error, warn, info, debug, trace"
        );
    }

    #[test]
    fn overridden_values_are_validated_and_the_message_says_so() {
        let overrides = Overrides {
            cores: Some("1,1".into()),
            ..Overrides::default()
        };
        let err = Config::load_with(None, &overrides).expect_err("duplicate cores");
        assert_eq!(
            err.to_string(),
            "built-in default config with command-line overrides: runtime.cores: must not \
             name a CPU twice (repeated: 1); got [1, 1]"
        );
    }

    #[test]
    fn an_override_can_repair_an_invalid_file() {
        let file = TempFile::new("repair", "listener = []\n");
        assert!(Config::load(Some(&file.0)).is_err());
        let overrides = Overrides {
            listen: vec!["127.0.0.1:1883".into()],
            ..Overrides::default()
        };
        let config = Config::load_with(Some(&file.0), &overrides).expect("repaired");
        assert_eq!(config.listener_summary(), "127.0.0.1:1883 (tcp)");
    }

    #[test]
    fn log_level_names_round_trip() {
        for level in LOG_LEVELS {
            assert_eq!(level.as_str().parse::<LogLevel>(), Ok(level));
            assert_eq!(level.to_string(), level.as_str());
        }
    }
}

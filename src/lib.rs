//! ringmq: an MQTT 3.1, 3.1.1 and 5.0 broker for Linux, one shard per CPU core on io_uring.
//!
//! # Layout
//! - [`auth`]: the password file (argon2id, `ringmq passwd`), password checks off the
//!   shards, the ACL file, the snapshot of both that SIGHUP replaces; MQTT 5 enhanced
//!   authentication: SCRAM-SHA-256, its users, the exchange as AUTH packets.
//! - [`config`]: TOML configuration, limits, runtime tuning, command-line overrides.
//! - [`limit`]: enforcing `[limits]` at run time: token buckets, connection slots, and
//!   each shard's counters of limits hit (`LimitStats`).
//! - [`metrics`]: per-shard traffic counters (no atomics), the merged `MetricsSnapshot`,
//!   load averages and the `$SYS` topics.
//! - [`protocol`]: the MQTT codec, pure and zero-copy: framing, packets of every version,
//!   v5 properties and reason codes, validated topic names and filters.
//! - [`router`]: shard-local subscription tries (local and interest table), retained index.
//! - [`tls`]: TLS listeners (rustls): server configurations from PEM files, reloadable; the
//!   TLS stream a connection runs over; the client certificate's identity.
//! - [`persist`]: per-shard segment logs on memory-mapped files: record format, segments,
//!   recovery, and the broker's record types ([`persist::state`]).

pub mod admin;
pub mod auth;
pub mod config;
pub mod connection;
pub mod handler;
pub mod limit;
pub mod message;
pub mod metrics;
pub mod persist;
pub mod protocol;
pub mod router;
pub mod session;
pub mod shard;
pub mod tls;

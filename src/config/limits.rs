//! `[limits]`: every bound on a queue, buffer or client resource, with its unit in its name.
//!
//! Each field documents its default, its allowed range and what happens when it is hit.
//! Defaults and ranges are the `*_DEFAULT` / `*_RANGE` constants below, so validation, the
//! docs and `tuning/ringmq.toml` share one source.

use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check_min, check_range, Problem};

/// Largest MQTT packet on the wire: 1 byte of type and flags, 4 bytes of remaining length,
/// and at most 268,435,455 bytes of remaining length.
pub const MQTT_PACKET_BYTES_MAX: u32 = 268_435_460;

/// Default `limits.packet_bytes_max`: 1 MiB.
pub const PACKET_BYTES_MAX_DEFAULT: u32 = 1 << 20;
/// Allowed `limits.packet_bytes_max`.
pub const PACKET_BYTES_MAX_RANGE: RangeInclusive<u32> = 16..=MQTT_PACKET_BYTES_MAX;

/// Default `limits.inflight_count_max`.
pub const INFLIGHT_COUNT_MAX_DEFAULT: u16 = 64;
/// Allowed `limits.inflight_count_max` (v5 Receive Maximum cannot be 0).
pub const INFLIGHT_COUNT_MAX_RANGE: RangeInclusive<u16> = 1..=u16::MAX;

/// Default `limits.queued_messages_max`.
pub const QUEUED_MESSAGES_MAX_DEFAULT: u32 = 10_000;
/// Minimum `limits.queued_messages_max`.
pub const QUEUED_MESSAGES_MAX_MIN: u32 = 1;

/// Default `limits.queued_bytes_max`: 64 MiB.
pub const QUEUED_BYTES_MAX_DEFAULT: u64 = 64 << 20;

/// Default `limits.queued_messages_pushback`.
pub const QUEUED_MESSAGES_PUSHBACK_DEFAULT: u32 = 1000;

/// Default `limits.pushback_wait_ms`.
pub const PUSHBACK_WAIT_MS_DEFAULT: u32 = 1000;
/// Allowed `limits.pushback_wait_ms`.
pub const PUSHBACK_WAIT_MS_RANGE: RangeInclusive<u32> = 1..=60_000;

/// Default `limits.mesh_capacity`.
pub const MESH_CAPACITY_DEFAULT: usize = 4096;
/// Allowed `limits.mesh_capacity`.
pub const MESH_CAPACITY_RANGE: RangeInclusive<usize> = 16..=(1 << 20);

/// Default `limits.connections_per_shard_max`.
pub const CONNECTIONS_PER_SHARD_MAX_DEFAULT: u32 = 65_536;
/// Minimum `limits.connections_per_shard_max`.
pub const CONNECTIONS_PER_SHARD_MAX_MIN: u32 = 1;

/// Default `limits.topic_bytes_max`.
pub const TOPIC_BYTES_MAX_DEFAULT: u16 = 1024;
/// Minimum `limits.topic_bytes_max`.
pub const TOPIC_BYTES_MAX_MIN: u16 = 1;

/// Default `limits.topic_levels_max`.
pub const TOPIC_LEVELS_MAX_DEFAULT: u16 = 32;
/// Minimum `limits.topic_levels_max`.
pub const TOPIC_LEVELS_MAX_MIN: u16 = 1;

/// Default `limits.subscriptions_per_client_max`.
pub const SUBSCRIPTIONS_PER_CLIENT_MAX_DEFAULT: u32 = 1024;
/// Minimum `limits.subscriptions_per_client_max`.
pub const SUBSCRIPTIONS_PER_CLIENT_MAX_MIN: u32 = 1;

/// Default `limits.connect_timeout_secs`.
pub const CONNECT_TIMEOUT_SECS_DEFAULT: u32 = 10;
/// Allowed `limits.connect_timeout_secs`.
pub const CONNECT_TIMEOUT_SECS_RANGE: RangeInclusive<u32> = 1..=3600;

/// Default `limits.keep_alive_secs_max`: no cap.
pub const KEEP_ALIVE_SECS_MAX_DEFAULT: u16 = 0;

/// Default `limits.topic_alias_max`.
pub const TOPIC_ALIAS_MAX_DEFAULT: u16 = 32;

/// Default `limits.client_id_bytes_max`.
pub const CLIENT_ID_BYTES_MAX_DEFAULT: u16 = 256;
/// Minimum `limits.client_id_bytes_max`: a server must accept ids of 1 to 23 bytes
/// [MQTT-3.1.3-5].
pub const CLIENT_ID_BYTES_MAX_MIN: u16 = 23;

/// Default `limits.connects_per_sec_max`: off.
pub const CONNECTS_PER_SEC_MAX_DEFAULT: u32 = 0;

/// Default `limits.packet_timeout_secs`.
pub const PACKET_TIMEOUT_SECS_DEFAULT: u32 = 30;
/// Allowed `limits.packet_timeout_secs`.
pub const PACKET_TIMEOUT_SECS_RANGE: RangeInclusive<u32> = 1..=3600;

/// Default `limits.publish_messages_per_sec`: off.
pub const PUBLISH_MESSAGES_PER_SEC_DEFAULT: u32 = 0;

/// Default `limits.publish_bytes_per_sec`: off.
pub const PUBLISH_BYTES_PER_SEC_DEFAULT: u64 = 0;

/// Default `limits.memory_high_water_bytes`: 1 GiB.
pub const MEMORY_HIGH_WATER_BYTES_DEFAULT: u64 = 1 << 30;

/// Default `limits.read_buffer_bytes`: 32 KiB.
pub const READ_BUFFER_BYTES_DEFAULT: usize = 32 << 10;
/// Allowed `limits.read_buffer_bytes`: 16 to 64 KiB was measured to be enough.
pub const READ_BUFFER_BYTES_RANGE: RangeInclusive<usize> = (16 << 10)..=(64 << 10);

/// Default `limits.write_buffer_bytes`: 64 KiB.
pub const WRITE_BUFFER_BYTES_DEFAULT: usize = 64 << 10;
/// Allowed `limits.write_buffer_bytes`.
pub const WRITE_BUFFER_BYTES_RANGE: RangeInclusive<usize> = (16 << 10)..=(4 << 20);

/// The `[limits]` section.
///
/// # Invariants
///
/// After `Config::validate`: every field is inside its range, and
/// `queued_bytes_max >= packet_bytes_max` (one largest message fits in a queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest packet accepted, fixed header included; checked from the fixed header before
    /// the body is read. Advertised as v5 Maximum Packet Size. Hit: v5 DISCONNECT 0x95
    /// (Packet too large), v3 close. Default 1048576 (1 MiB), range 16..=268435460.
    pub packet_bytes_max: u32,
    /// Unacknowledged QoS 1/2 messages in flight to one client: advertised as v5 Receive
    /// Maximum and used as the window for v3 clients too. Hit: further messages wait in the
    /// session queue. Default 64, range 1..=65535.
    pub inflight_count_max: u16,
    /// Messages waiting in one session's in-memory queue (behind the inflight window).
    /// Hit: the message is not queued for that session and the drop is counted; other
    /// sessions are not affected. Default 10000, minimum 1.
    pub queued_messages_max: u32,
    /// Payload bytes waiting in one session's in-memory queue; same outcome as
    /// `queued_messages_max`. Default 67108864 (64 MiB), minimum `packet_bytes_max`.
    pub queued_bytes_max: u64,
    /// Queued messages at which a connected session pushes back on its publishers: the
    /// PUBACK / PUBREC of a QoS 1/2 message that reached it waits until its queue is down to
    /// half this size, so publishers slow to the pace of their slowest connected subscriber
    /// instead of overflowing its queue. Offline sessions never push back. 0 turns it off.
    /// Default 1000, at most `queued_messages_max`.
    pub queued_messages_pushback: u32,
    /// Longest an acknowledgement waits on one congested session. When it passes, the
    /// session counts as stalled: publishers stop waiting for it until its queue is down to
    /// half of `queued_messages_pushback`, and what exceeds `queued_messages_max` is dropped
    /// for it. Default 1000, range 1..=60000.
    pub pushback_wait_ms: u32,
    /// Capacity of each cross-shard channel, in messages. Hit: the sending shard waits for
    /// room (back-pressure). Default 4096, range 16..=1048576.
    pub mesh_capacity: usize,
    /// Open connections one shard serves, those in their CONNECT phase included. Hit: a
    /// connection the shard accepts is closed at once; one handed to it as its client id's
    /// home gets CONNACK 0x97 (v5) / 0x03 (v3). Default 65536, minimum 1.
    pub connections_per_shard_max: u32,
    /// Longest topic name or filter, in bytes of UTF-8. Hit: a PUBLISH gets v5 DISCONNECT
    /// 0x90 (Topic Name invalid), v3 close; a SUBSCRIBE filter its SUBACK entry 0x8F (Topic
    /// Filter invalid) / 0x80; a will topic CONNACK 0x90 / 0x03. Default 1024, minimum 1,
    /// maximum 65535.
    pub topic_bytes_max: u16,
    /// Most levels (`/`-separated parts) in a topic name or filter; same outcome as
    /// `topic_bytes_max`. Default 32, minimum 1.
    pub topic_levels_max: u16,
    /// Subscriptions one client may hold. Hit: the SUBACK entry is 0x97 (Quota exceeded) in
    /// v5, 0x80 (Failure) in v3. Default 1024, minimum 1.
    pub subscriptions_per_client_max: u32,
    /// Time from TCP accept to a complete CONNECT (and the enhanced-authentication exchange
    /// that may follow). Hit: the socket is closed. Default 10, range 1..=3600.
    pub connect_timeout_secs: u32,
    /// Highest keep-alive a client may use, in seconds. 0 means no cap. When a v5 client asks
    /// for more (or for 0) it is told this value as Server Keep Alive; a v3 client cannot be
    /// told. Default 0, range 0..=65535.
    pub keep_alive_secs_max: u16,
    /// Topic aliases a v5 client may set on its connection (advertised as Topic Alias
    /// Maximum; each keeps one topic name). Hit (an alias above it): DISCONNECT 0x94.
    /// 0 disables aliases. Default 32, range 0..=65535.
    pub topic_alias_max: u16,
    /// Longest client identifier, in bytes. Hit: v5 CONNACK 0x85 (Client Identifier not
    /// valid), v3 CONNACK 0x02. Default 256, minimum 23 [MQTT-3.1.3-5], maximum 65535.
    pub client_id_bytes_max: u16,
    /// Read buffer per connection; larger packets are read in several steps.
    /// Default 32768 (32 KiB), range 16384..=65536.
    pub read_buffer_bytes: usize,
    /// Write buffer per connection: outgoing packets are coalesced up to this size before
    /// one write (the main throughput lever). Default 65536 (64 KiB), range 16384..=4194304.
    pub write_buffer_bytes: usize,
    /// New connections one shard accepts per second (a token bucket holding one second's
    /// worth). Hit: the connection is closed at once, before anything is read. 0: no limit.
    /// Default 0.
    pub connects_per_sec_max: u32,
    /// Longest a packet may take to arrive once its first byte has: a connection with a
    /// packet begun and not completed for this long is closed (v5: DISCONNECT 0x8D), so a
    /// client trickling bytes cannot hold a connection (slowloris). Not counted while the
    /// broker itself has stopped reading (pushback, throttling). Default 30, range 1..=3600.
    pub packet_timeout_secs: u32,
    /// PUBLISH packets one client may send per second (a token bucket holding one second's
    /// worth). Hit: see `publish_rate_action`. 0: no limit. Default 0.
    pub publish_messages_per_sec: u32,
    /// PUBLISH bytes (whole packets) one client may send per second (a token bucket holding
    /// one second's worth, and at least one largest packet). Hit: see `publish_rate_action`.
    /// 0: no limit. Default 0.
    pub publish_bytes_per_sec: u64,
    /// What a client over `publish_messages_per_sec` or `publish_bytes_per_sec` gets:
    /// `throttle` (its socket is not read until the bucket refills: TCP slows it down,
    /// nothing is lost) or `disconnect` (v5 DISCONNECT 0x96 Message rate too high, v3
    /// close; the PUBLISH over the rate is not processed). Default `throttle`.
    pub publish_rate_action: RateAction,
    /// Bytes of messages queued in memory across all shards, an equal share per shard,
    /// above which QoS 0 deliveries are shed (dropped and counted) while QoS 1/2 ones are
    /// still queued within their per-session bounds. Counts queued QoS 1/2 deliveries and
    /// outgoing buffers, not messages in flight or on disk (see ARCHITECTURE.md). 0: no
    /// mark. Default 1073741824 (1 GiB).
    pub memory_high_water_bytes: u64,
}

/// What happens to a client publishing over its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateAction {
    /// Stop reading its socket until its bucket refills (back-pressure, no loss).
    #[default]
    Throttle,
    /// v5 DISCONNECT 0x96 (Message rate too high); v3: close.
    Disconnect,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            packet_bytes_max: PACKET_BYTES_MAX_DEFAULT,
            inflight_count_max: INFLIGHT_COUNT_MAX_DEFAULT,
            queued_messages_max: QUEUED_MESSAGES_MAX_DEFAULT,
            queued_bytes_max: QUEUED_BYTES_MAX_DEFAULT,
            queued_messages_pushback: QUEUED_MESSAGES_PUSHBACK_DEFAULT,
            pushback_wait_ms: PUSHBACK_WAIT_MS_DEFAULT,
            mesh_capacity: MESH_CAPACITY_DEFAULT,
            connections_per_shard_max: CONNECTIONS_PER_SHARD_MAX_DEFAULT,
            topic_bytes_max: TOPIC_BYTES_MAX_DEFAULT,
            topic_levels_max: TOPIC_LEVELS_MAX_DEFAULT,
            subscriptions_per_client_max: SUBSCRIPTIONS_PER_CLIENT_MAX_DEFAULT,
            connect_timeout_secs: CONNECT_TIMEOUT_SECS_DEFAULT,
            keep_alive_secs_max: KEEP_ALIVE_SECS_MAX_DEFAULT,
            topic_alias_max: TOPIC_ALIAS_MAX_DEFAULT,
            client_id_bytes_max: CLIENT_ID_BYTES_MAX_DEFAULT,
            read_buffer_bytes: READ_BUFFER_BYTES_DEFAULT,
            write_buffer_bytes: WRITE_BUFFER_BYTES_DEFAULT,
            connects_per_sec_max: CONNECTS_PER_SEC_MAX_DEFAULT,
            packet_timeout_secs: PACKET_TIMEOUT_SECS_DEFAULT,
            publish_messages_per_sec: PUBLISH_MESSAGES_PER_SEC_DEFAULT,
            publish_bytes_per_sec: PUBLISH_BYTES_PER_SEC_DEFAULT,
            publish_rate_action: RateAction::Throttle,
            memory_high_water_bytes: MEMORY_HIGH_WATER_BYTES_DEFAULT,
        }
    }
}

impl Limits {
    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        check_range(
            problems,
            "limits.packet_bytes_max",
            self.packet_bytes_max,
            PACKET_BYTES_MAX_RANGE,
        );
        check_range(
            problems,
            "limits.inflight_count_max",
            self.inflight_count_max,
            INFLIGHT_COUNT_MAX_RANGE,
        );
        check_min(
            problems,
            "limits.queued_messages_max",
            self.queued_messages_max,
            QUEUED_MESSAGES_MAX_MIN,
        );
        if self.queued_bytes_max < u64::from(self.packet_bytes_max) {
            problems.push(Problem::new(
                "limits.queued_bytes_max",
                self.queued_bytes_max,
                format!(
                    "must be at least limits.packet_bytes_max ({}) so that one largest \
                     message fits",
                    self.packet_bytes_max
                ),
            ));
        }
        // (Only against a valid maximum: a bad maximum is reported once, on its own key.)
        if self.queued_messages_max >= QUEUED_MESSAGES_MAX_MIN
            && self.queued_messages_pushback > self.queued_messages_max
        {
            problems.push(Problem::new(
                "limits.queued_messages_pushback",
                self.queued_messages_pushback,
                format!(
                    "must be at most limits.queued_messages_max ({}): a queue must push back \
                     before it drops; use 0 to turn pushback off",
                    self.queued_messages_max
                ),
            ));
        }
        check_range(
            problems,
            "limits.pushback_wait_ms",
            self.pushback_wait_ms,
            PUSHBACK_WAIT_MS_RANGE,
        );
        check_range(
            problems,
            "limits.mesh_capacity",
            self.mesh_capacity,
            MESH_CAPACITY_RANGE,
        );
        check_min(
            problems,
            "limits.connections_per_shard_max",
            self.connections_per_shard_max,
            CONNECTIONS_PER_SHARD_MAX_MIN,
        );
        check_min(
            problems,
            "limits.topic_bytes_max",
            self.topic_bytes_max,
            TOPIC_BYTES_MAX_MIN,
        );
        check_min(
            problems,
            "limits.topic_levels_max",
            self.topic_levels_max,
            TOPIC_LEVELS_MAX_MIN,
        );
        check_min(
            problems,
            "limits.subscriptions_per_client_max",
            self.subscriptions_per_client_max,
            SUBSCRIPTIONS_PER_CLIENT_MAX_MIN,
        );
        check_range(
            problems,
            "limits.connect_timeout_secs",
            self.connect_timeout_secs,
            CONNECT_TIMEOUT_SECS_RANGE,
        );
        check_min(
            problems,
            "limits.client_id_bytes_max",
            self.client_id_bytes_max,
            CLIENT_ID_BYTES_MAX_MIN,
        );
        check_range(
            problems,
            "limits.read_buffer_bytes",
            self.read_buffer_bytes,
            READ_BUFFER_BYTES_RANGE,
        );
        check_range(
            problems,
            "limits.write_buffer_bytes",
            self.write_buffer_bytes,
            WRITE_BUFFER_BYTES_RANGE,
        );
        check_range(
            problems,
            "limits.packet_timeout_secs",
            self.packet_timeout_secs,
            PACKET_TIMEOUT_SECS_RANGE,
        );
    }

    /// `packet_timeout_secs` as a `Duration`.
    pub fn packet_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.packet_timeout_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Changes one field of a section under test.
    type Edit = fn(&mut Limits);

    fn problems_of(limits: &Limits) -> Vec<Problem> {
        let mut problems = Vec::new();
        limits.validate(&mut problems);
        problems
    }

    /// Asserts that `limits` has exactly one problem, on `key`, and returns its text.
    fn single_problem(limits: &Limits, key: &str) -> String {
        let problems = problems_of(limits);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, key);
        problems[0].to_string()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(problems_of(&Limits::default()).is_empty());
    }

    #[test]
    fn packet_bytes_max_out_of_range_names_key_value_and_range() {
        let limits = Limits {
            packet_bytes_max: 3,
            ..Limits::default()
        };
        assert_eq!(
            single_problem(&limits, "limits.packet_bytes_max"),
            "limits.packet_bytes_max: must be between 16 and 268435460; got 3"
        );
        let limits = Limits {
            packet_bytes_max: MQTT_PACKET_BYTES_MAX + 1,
            queued_bytes_max: u64::MAX,
            ..Limits::default()
        };
        single_problem(&limits, "limits.packet_bytes_max");
    }

    #[test]
    fn packet_bytes_max_accepts_the_mqtt_maximum() {
        let limits = Limits {
            packet_bytes_max: MQTT_PACKET_BYTES_MAX,
            queued_bytes_max: u64::from(MQTT_PACKET_BYTES_MAX),
            ..Limits::default()
        };
        assert!(problems_of(&limits).is_empty());
    }

    #[test]
    fn inflight_count_max_zero_is_rejected() {
        let limits = Limits {
            inflight_count_max: 0,
            ..Limits::default()
        };
        single_problem(&limits, "limits.inflight_count_max");
    }

    #[test]
    fn queued_messages_max_zero_is_rejected() {
        let limits = Limits {
            queued_messages_max: 0,
            ..Limits::default()
        };
        assert_eq!(
            single_problem(&limits, "limits.queued_messages_max"),
            "limits.queued_messages_max: must be at least 1; got 0"
        );
    }

    #[test]
    fn queued_messages_pushback_above_queued_messages_max_is_rejected() {
        let limits = Limits {
            queued_messages_max: 100,
            queued_messages_pushback: 101,
            ..Limits::default()
        };
        let text = single_problem(&limits, "limits.queued_messages_pushback");
        assert!(
            text.contains("at most limits.queued_messages_max (100)"),
            "{text}"
        );
        let off = Limits {
            queued_messages_max: 100,
            queued_messages_pushback: 0,
            ..Limits::default()
        };
        assert!(problems_of(&off).is_empty());
    }

    #[test]
    fn pushback_wait_ms_zero_is_rejected() {
        let limits = Limits {
            pushback_wait_ms: 0,
            ..Limits::default()
        };
        assert_eq!(
            single_problem(&limits, "limits.pushback_wait_ms"),
            "limits.pushback_wait_ms: must be between 1 and 60000; got 0"
        );
    }

    #[test]
    fn queued_bytes_max_below_packet_bytes_max_is_rejected() {
        let limits = Limits {
            queued_bytes_max: u64::from(PACKET_BYTES_MAX_DEFAULT) - 1,
            ..Limits::default()
        };
        let text = single_problem(&limits, "limits.queued_bytes_max");
        assert!(
            text.contains("at least limits.packet_bytes_max (1048576)"),
            "{text}"
        );
    }

    #[test]
    fn mesh_capacity_out_of_range_is_rejected() {
        for capacity in [0, 15, (1 << 20) + 1] {
            let limits = Limits {
                mesh_capacity: capacity,
                ..Limits::default()
            };
            single_problem(&limits, "limits.mesh_capacity");
        }
    }

    #[test]
    fn zero_counts_are_rejected() {
        let cases: [(&str, Edit); 4] = [
            ("limits.connections_per_shard_max", |l| {
                l.connections_per_shard_max = 0
            }),
            ("limits.topic_bytes_max", |l| l.topic_bytes_max = 0),
            ("limits.topic_levels_max", |l| l.topic_levels_max = 0),
            ("limits.subscriptions_per_client_max", |l| {
                l.subscriptions_per_client_max = 0
            }),
        ];
        for (key, set) in cases {
            let mut limits = Limits::default();
            set(&mut limits);
            single_problem(&limits, key);
        }
    }

    #[test]
    fn connect_timeout_out_of_range_is_rejected() {
        for secs in [0, 3601] {
            let limits = Limits {
                connect_timeout_secs: secs,
                ..Limits::default()
            };
            single_problem(&limits, "limits.connect_timeout_secs");
        }
    }

    #[test]
    fn client_id_bytes_max_below_23_is_rejected_mqtt_3_1_3_5() {
        let limits = Limits {
            client_id_bytes_max: 22,
            ..Limits::default()
        };
        assert_eq!(
            single_problem(&limits, "limits.client_id_bytes_max"),
            "limits.client_id_bytes_max: must be at least 23; got 22"
        );
        let limits = Limits {
            client_id_bytes_max: 23,
            ..Limits::default()
        };
        assert!(problems_of(&limits).is_empty());
    }

    #[test]
    fn buffer_sizes_out_of_range_are_rejected() {
        let limits = Limits {
            read_buffer_bytes: 8 << 10,
            ..Limits::default()
        };
        single_problem(&limits, "limits.read_buffer_bytes");
        let limits = Limits {
            read_buffer_bytes: (64 << 10) + 1,
            ..Limits::default()
        };
        single_problem(&limits, "limits.read_buffer_bytes");
        let limits = Limits {
            write_buffer_bytes: (4 << 20) + 1,
            ..Limits::default()
        };
        single_problem(&limits, "limits.write_buffer_bytes");
    }

    #[test]
    fn packet_timeout_out_of_range_is_rejected() {
        for secs in [0, 3601] {
            let limits = Limits {
                packet_timeout_secs: secs,
                ..Limits::default()
            };
            assert_eq!(
                single_problem(&limits, "limits.packet_timeout_secs"),
                format!("limits.packet_timeout_secs: must be between 1 and 3600; got {secs}")
            );
        }
    }

    #[test]
    fn rates_and_the_memory_mark_may_be_off_or_any_size() {
        for n in [0, 1, u32::MAX] {
            let limits = Limits {
                connects_per_sec_max: n,
                publish_messages_per_sec: n,
                publish_bytes_per_sec: u64::from(n),
                memory_high_water_bytes: u64::from(n),
                publish_rate_action: RateAction::Disconnect,
                ..Limits::default()
            };
            assert!(problems_of(&limits).is_empty());
        }
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let limits = Limits {
            packet_bytes_max: 0,
            inflight_count_max: 0,
            mesh_capacity: 0,
            ..Limits::default()
        };
        assert_eq!(problems_of(&limits).len(), 3);
    }
}

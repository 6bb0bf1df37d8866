//! `[mqtt]`: which optional MQTT features the broker offers, and how.
//!
//! Each capability is advertised to v5 clients in CONNACK and enforced for every client: a
//! client that uses a feature turned off here gets the reason code the spec gives for it
//! (v3 clients, who cannot be told, get the v3 equivalent: a SUBACK failure, or the
//! connection closed).

use serde::{Deserialize, Serialize};

use super::Problem;

/// How a shared subscription's group picks the member that gets a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareStrategy {
    /// Each member in turn (per publishing shard), skipping members that are offline while
    /// any member is online.
    #[default]
    RoundRobin,
    /// A member drawn at random for each message.
    Random,
    /// The same member for every message of one publisher (by client id), while the group
    /// does not change: keeps one publisher's messages in order at one consumer.
    Sticky,
}

/// Server redirection (MQTT 5.0 section 4.11): every CONNECT is refused with a pointer to
/// another server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Redirect {
    /// Serve clients (no redirection).
    #[default]
    None,
    /// CONNACK 0x9C (Use another server): a temporary move.
    UseAnotherServer,
    /// CONNACK 0x9D (Server moved): a permanent move.
    ServerMoved,
}

/// The `[mqtt]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Highest QoS accepted in PUBLISH and granted in SUBSCRIBE (0, 1 or 2). Advertised as
    /// Maximum QoS; a v5 PUBLISH above it is DISCONNECT 0x9B (QoS not supported), a v3 one
    /// closes the connection; subscriptions are granted at most this QoS. Default 2.
    pub maximum_qos: u8,
    /// Whether retained messages are stored. Off: a PUBLISH with RETAIN set is DISCONNECT
    /// 0x9A (Retain not supported) for v5 clients, a closed connection for v3. Default true.
    pub retain_available: bool,
    /// Whether topic filters may hold `+` and `#`. Off: SUBACK 0xA2 (Wildcard
    /// Subscriptions not supported) / 0x80. Default true.
    pub wildcard_subscriptions: bool,
    /// Whether SUBSCRIBE may carry a Subscription Identifier. Off: DISCONNECT 0xA1
    /// (Subscription Identifiers not supported). Default true.
    pub subscription_identifiers: bool,
    /// Whether `$share/{group}/{filter}` subscriptions are offered. Off: SUBACK 0x9E (Shared
    /// Subscriptions not supported) / 0x80. Default true.
    pub shared_subscriptions: bool,
    /// How a share group picks the member for a message. Default "round_robin"; also
    /// "random" and "sticky" (by publisher).
    pub shared_strategy: ShareStrategy,
    /// Answer to a v5 client's Request Response Information: the Response Information in
    /// CONNACK is this prefix followed by the client id and `/` (e.g. `reply/` gives
    /// `reply/sensor-7/`). Empty: none is sent. Default "".
    pub response_information: String,
    /// Server redirection: "none" (default), "use_another_server" (0x9C) or "server_moved"
    /// (0x9D). With one of the last two, every CONNECT is refused with `server_reference`.
    pub redirect: Redirect,
    /// The other server(s) clients are sent to, as the spec's Server Reference (e.g.
    /// `mqtt2.example.com:1883`). Required with `redirect`; also sent with DISCONNECT 0x8B
    /// at shutdown when set. Default "".
    pub server_reference: String,
    /// Whether a PUBLISH whose Payload Format Indicator says UTF-8 is checked: a payload
    /// that is not valid UTF-8 gets PUBACK/PUBREC 0x99 (Payload format invalid) and is not
    /// delivered (QoS 0: DISCONNECT 0x99). Default false (payloads pass unchecked, as the
    /// spec allows).
    pub validate_utf8_payloads: bool,
    /// Seconds between publications of the `$SYS/broker/...` topics (retained, QoS 0, by
    /// shard 0; Mosquitto's names). 0: no `$SYS` topics. Default 10, range 0..=86400.
    pub sys_interval_secs: u32,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            maximum_qos: 2,
            retain_available: true,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            shared_subscriptions: true,
            shared_strategy: ShareStrategy::RoundRobin,
            response_information: String::new(),
            redirect: Redirect::None,
            server_reference: String::new(),
            validate_utf8_payloads: false,
            sys_interval_secs: 10,
        }
    }
}

/// Longest string the protocol can carry (a two-byte length).
const STRING_BYTES_MAX: usize = 65_535;

impl MqttConfig {
    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        if self.maximum_qos > 2 {
            problems.push(Problem::new(
                "mqtt.maximum_qos",
                self.maximum_qos,
                "must be 0, 1 or 2",
            ));
        }
        if self.redirect != Redirect::None && self.server_reference.is_empty() {
            problems.push(Problem::new(
                "mqtt.server_reference",
                "\"\"",
                "must name the server clients are redirected to (redirect is set)",
            ));
        }
        if self.sys_interval_secs > 86_400 {
            problems.push(Problem::new(
                "mqtt.sys_interval_secs",
                self.sys_interval_secs,
                "must be at most 86400 (a day); 0 turns the $SYS topics off",
            ));
        }
        for (key, value) in [
            ("mqtt.server_reference", &self.server_reference),
            ("mqtt.response_information", &self.response_information),
        ] {
            if value.len() > STRING_BYTES_MAX / 2 || value.contains('\0') {
                problems.push(Problem::new(
                    key,
                    format!("{} bytes", value.len()),
                    "must be at most 32767 bytes, without NUL",
                ));
            }
        }
    }

    /// The maximum QoS as the protocol type.
    pub fn maximum_qos(&self) -> crate::protocol::QoS {
        crate::protocol::QoS::from_u8(self.maximum_qos.min(2))
            .unwrap_or(crate::protocol::QoS::ExactlyOnce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(c: &MqttConfig) -> Vec<Problem> {
        let mut p = Vec::new();
        c.validate(&mut p);
        p
    }

    #[test]
    fn defaults_are_valid() {
        assert!(problems_of(&MqttConfig::default()).is_empty());
    }

    #[test]
    fn qos_above_two_is_named() {
        let c = MqttConfig {
            maximum_qos: 3,
            ..MqttConfig::default()
        };
        let p = problems_of(&c);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "mqtt.maximum_qos");
    }

    #[test]
    fn sys_interval_over_a_day_is_named() {
        let c = MqttConfig {
            sys_interval_secs: 86_401,
            ..MqttConfig::default()
        };
        let p = problems_of(&c);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "mqtt.sys_interval_secs");
        for ok in [0, 1, 86_400] {
            let c = MqttConfig {
                sys_interval_secs: ok,
                ..MqttConfig::default()
            };
            assert!(problems_of(&c).is_empty(), "{ok}");
        }
    }

    #[test]
    fn redirect_needs_a_reference() {
        let c = MqttConfig {
            redirect: Redirect::ServerMoved,
            ..MqttConfig::default()
        };
        let p = problems_of(&c);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].key, "mqtt.server_reference");
        let c = MqttConfig {
            redirect: Redirect::ServerMoved,
            server_reference: "b:1883".into(),
            ..MqttConfig::default()
        };
        assert!(problems_of(&c).is_empty());
    }

    fn parse(text: &str) -> Result<super::super::Config, super::super::ConfigError> {
        super::super::Config::from_toml(text, "test.toml")
    }

    fn parse_err(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, parsed {:?}", config.mqtt),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse_err("[mqtt]\nmaximum_qos = 1\nwildcards = false\n");
        assert!(
            err.starts_with("test.toml:3:1: mqtt.wildcards: unknown field `wildcards`"),
            "{err}"
        );
    }

    #[test]
    fn every_key_parses_from_toml() {
        let config = parse(
            "[mqtt]\nmaximum_qos = 0\nretain_available = false\n\
             wildcard_subscriptions = false\nsubscription_identifiers = false\n\
             shared_subscriptions = false\nshared_strategy = \"sticky\"\n\
             response_information = \"resp/\"\nredirect = \"use_another_server\"\n\
             server_reference = \"b:1883\"\nvalidate_utf8_payloads = true\n\
             sys_interval_secs = 0\n",
        )
        .expect("parses");
        assert_eq!(
            config.mqtt,
            MqttConfig {
                maximum_qos: 0,
                retain_available: false,
                wildcard_subscriptions: false,
                subscription_identifiers: false,
                shared_subscriptions: false,
                shared_strategy: ShareStrategy::Sticky,
                response_information: "resp/".into(),
                redirect: Redirect::UseAnotherServer,
                server_reference: "b:1883".into(),
                validate_utf8_payloads: true,
                sys_interval_secs: 0,
            }
        );
        assert!(problems_of(&config.mqtt).is_empty());
        assert_eq!(parse("").expect("parses").mqtt, MqttConfig::default());
    }

    #[test]
    fn maximum_qos_3_from_toml_is_named() {
        let config = parse("[mqtt]\nmaximum_qos = 3\n").expect("parses");
        let err = config.validate().expect_err("maximum_qos 3").to_string();
        assert!(
            err.contains("mqtt.maximum_qos: must be 0, 1 or 2; got 3"),
            "{err}"
        );
    }

    #[test]
    fn unknown_redirect_is_refused() {
        let err = parse_err("[mqtt]\nredirect = \"elsewhere\"\n");
        assert!(err.contains("mqtt.redirect"), "{err}");
        assert!(err.contains("unknown variant `elsewhere`"), "{err}");
    }

    #[test]
    fn long_or_nul_strings_are_named() {
        let c = MqttConfig {
            response_information: "x".repeat(STRING_BYTES_MAX / 2 + 1),
            server_reference: "a\0b".into(),
            ..MqttConfig::default()
        };
        let keys: Vec<_> = problems_of(&c).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["mqtt.server_reference", "mqtt.response_information"]);
    }

    #[test]
    fn the_tuning_file_documents_the_defaults() {
        let text = include_str!("../../tuning/ringmq.toml");
        let config = parse(text).expect("tuning/ringmq.toml parses");
        assert_eq!(config.mqtt, MqttConfig::default());
    }
}

//! Property tests of the MQTT codec (`ringmq::protocol`): every packet type of every
//! protocol version survives encode/decode unchanged, in any framing; no input makes the
//! decoder panic; the packet size limit holds before the body arrives; and v5 packets sent to
//! v3 peers lose exactly what v3 cannot say.
//!
//! The generators are in `strategies/mod.rs`. Case counts follow the cost of a case; set
//! `PROPTEST_CASES` to run every property with that many cases instead. Failures are not
//! persisted to disk: a failing property prints its shrunk input, which belongs in a named
//! example test below.

mod strategies;

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::TestRunner;
use ringmq::protocol::{
    decode, Ack, ConnAck, DecodeError, Decoded, Disconnect, EncodeError, Packet, PacketType,
    ProtocolVersion, Publish, ReasonCode, SubAck, Subscribe, Subscription, SubscriptionOptions,
    UnsubAck, Unsubscribe, MAX_PACKET_BYTES,
};

use strategies::{packet, packet_with_payload, versioned_packet, versioned_packet_with_payload};

const V3_1: ProtocolVersion = ProtocolVersion::V3_1;
const V3_1_1: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// Every state a connection decodes in: before its CONNECT, and after one of each version.
const CONNECTION_STATES: [Option<ProtocolVersion>; 4] = [None, Some(V3_1), Some(V3_1_1), Some(V5)];

/// `cases` cases (or `PROPTEST_CASES`), nothing written to disk.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn encode(p: &Packet, v: ProtocolVersion) -> Bytes {
    p.to_bytes(v)
        .unwrap_or_else(|e| panic!("generated packet does not encode for {v}: {e}\n{p:?}"))
}

/// The connection states a packet encoded for `v` must decode in: `v`, and for CONNECT also
/// before any version is known (it is the first packet of a connection).
fn connection_states(p: &Packet, v: ProtocolVersion) -> Vec<Option<ProtocolVersion>> {
    match p {
        Packet::Connect(_) => vec![Some(v), None],
        _ => vec![Some(v)],
    }
}

/// Decodes from a fresh buffer holding `bytes`; returns the result and what is left.
fn decode_from(
    bytes: &[u8],
    state: Option<ProtocolVersion>,
    max: usize,
) -> (Result<Decoded, DecodeError>, BytesMut) {
    let mut buf = BytesMut::from(bytes);
    let r = decode(&mut buf, state, max);
    (r, buf)
}

/// Length of the fixed header at the front of a valid encoding: the type byte and the
/// Remaining Length's bytes, counted here without the codec's help.
fn fixed_header_len(bytes: &[u8]) -> usize {
    1 + bytes[1..]
        .iter()
        .position(|b| b & 0x80 == 0)
        .expect("valid encoding ends its remaining length")
        + 1
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let b = (v % 128) as u8;
        v /= 128;
        out.push(if v > 0 { b | 0x80 } else { b });
        if v == 0 {
            break;
        }
    }
}

/// Decodes `bytes` in every connection state and checks what must hold for any input:
/// no panic, `Incomplete` asks for at least a byte and consumes nothing, and a decoded packet
/// consumed a prefix of the buffer and re-encodes to bytes that decode to it again.
/// (What an error leaves in the buffer is `decode_error_leaves_the_buffer_unchanged`'s job.)
fn check_decode_is_total(bytes: &[u8]) -> Result<(), TestCaseError> {
    for state in CONNECTION_STATES {
        let (result, rest) = decode_from(bytes, state, MAX_PACKET_BYTES);
        match result {
            Ok(Decoded::Incomplete { needed }) => {
                prop_assert!(needed >= 1, "Incomplete {{ needed: 0 }} in {:?}", state);
                prop_assert_eq!(&rest[..], bytes, "Incomplete consumed bytes in {:?}", state);
            }
            Ok(Decoded::Packet(p)) => {
                let consumed = bytes.len() - rest.len();
                prop_assert!(consumed >= 2, "a packet from {} bytes", consumed);
                prop_assert_eq!(&rest[..], &bytes[consumed..]);
                let v = match (&p, state) {
                    (Packet::Connect(c), _) => c.protocol,
                    (_, Some(v)) => v,
                    (p, None) => {
                        return Err(TestCaseError::fail(format!(
                            "{:?} decoded before CONNECT",
                            p.packet_type()
                        )))
                    }
                };
                let again = p.to_bytes(v);
                prop_assert!(
                    again.is_ok(),
                    "decoded {:?} does not re-encode: {:?}",
                    p,
                    again
                );
                let again = again.unwrap_or_default();
                let (redecoded, _) = decode_from(&again, state, MAX_PACKET_BYTES);
                prop_assert_eq!(redecoded, Ok(Decoded::Packet(p)));
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// A first byte with a defined packet type and the flags it requires (any valid DUP, QoS
/// and RETAIN for PUBLISH).
fn valid_first_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        (1u8..=15).prop_map(|t| {
            let flags = PacketType::from_u8(t)
                .and_then(PacketType::required_flags)
                .unwrap_or(0);
            (t << 4) | flags
        }),
        (any::<bool>(), 0u8..=2, any::<bool>()).prop_map(|(dup, qos, retain)| {
            0x30 | (u8::from(dup && qos > 0) << 3) | (qos << 1) | u8::from(retain)
        }),
    ]
}

/// A valid first byte, a Remaining Length that is usually right, then random bytes (after a
/// real protocol name and level, for some CONNECTs).
fn plausible_frame() -> impl Strategy<Value = Vec<u8>> {
    let connect_start = select(vec![
        &b""[..],
        b"\x00\x04MQTT\x05",
        b"\x00\x04MQTT\x04",
        b"\x00\x06MQIsdp\x03",
    ]);
    (
        valid_first_byte(),
        connect_start,
        vec(any::<u8>(), 0..256),
        prop_oneof![6 => Just(0i64), 1 => -3i64..=3, 1 => Just(1_000_000)],
    )
        .prop_map(|(first, start, body, delta)| {
            let mut payload = Vec::new();
            if first >> 4 == 1 {
                payload.extend_from_slice(start);
            }
            payload.extend_from_slice(&body);
            let len = (payload.len() as i64 + delta).max(0) as usize;
            let mut out = vec![first];
            put_varint(&mut out, len);
            out.extend_from_slice(&payload);
            out
        })
}

/// A valid encoding with one byte replaced by another value.
fn mutated_encoding() -> impl Strategy<Value = Vec<u8>> {
    (versioned_packet_with_payload(64), any::<Index>(), 1u8..=255).prop_map(|((v, p), at, mask)| {
        let mut bytes = encode(&p, v).to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        bytes
    })
}

/// Two packets for the same connection.
fn versioned_pair() -> impl Strategy<Value = (ProtocolVersion, Packet, Packet)> {
    Union::new(ProtocolVersion::ALL.map(|v| {
        (packet(v), packet(v))
            .prop_map(move |(a, b)| (v, a, b))
            .boxed()
    }))
}

/// What a v5 `packet` becomes when encoded for the v3 version `v` and decoded again, or the
/// encode error v3 answers.
fn v3_translation(packet: &Packet, v: ProtocolVersion) -> Result<Packet, EncodeError> {
    Ok(match packet {
        // Written in its own version whatever the connection's.
        Packet::Connect(c) => Packet::Connect(c.clone()),
        Packet::ConnAck(c) => Packet::ConnAck(Box::new(ConnAck {
            session_present: c.session_present && v != V3_1,
            reason: ReasonCode::from_v3_connack(c.reason.to_v3_connack())
                .expect("to_v3_connack yields a v3 return code"),
            properties: Default::default(),
        })),
        Packet::Publish(p) if p.topic.is_empty() => return Err(EncodeError::MissingTopic),
        Packet::Publish(p) => Packet::Publish(Publish {
            properties: Default::default(),
            ..p.clone()
        }),
        Packet::PubAck(a) => Packet::PubAck(Ack::new(a.packet_id)),
        Packet::PubRec(a) => Packet::PubRec(Ack::new(a.packet_id)),
        Packet::PubRel(a) => Packet::PubRel(Ack::new(a.packet_id)),
        Packet::PubComp(a) => Packet::PubComp(Ack::new(a.packet_id)),
        Packet::Subscribe(s) => Packet::Subscribe(Subscribe {
            packet_id: s.packet_id,
            properties: Default::default(),
            subscriptions: s
                .subscriptions
                .iter()
                .map(|s| Subscription {
                    filter: s.filter.clone(),
                    options: SubscriptionOptions {
                        qos: s.options.qos,
                        ..Default::default()
                    },
                })
                .collect(),
        }),
        Packet::SubAck(s) => Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: Default::default(),
            reasons: s
                .reasons
                .iter()
                .map(|r| {
                    ReasonCode::from_v3_suback(r.to_v3_suback())
                        .expect("to_v3_suback yields a v3 result")
                })
                .collect(),
        }),
        Packet::Unsubscribe(u) => Packet::Unsubscribe(Unsubscribe {
            properties: Default::default(),
            ..u.clone()
        }),
        Packet::UnsubAck(u) => Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            properties: Default::default(),
            reasons: Vec::new(),
        }),
        Packet::PingReq => Packet::PingReq,
        Packet::PingResp => Packet::PingResp,
        Packet::Disconnect(_) => Packet::Disconnect(Disconnect::default()),
        Packet::Auth(_) => {
            return Err(EncodeError::PacketNotInVersion {
                packet: PacketType::Auth,
                version: v,
            })
        }
    })
}

proptest! {
    #![proptest_config(config(4096))]

    /// `decode(to_bytes(p)) == p` for every packet type of every version, consuming exactly
    /// the encoding, whose length `encoded_len` predicts. CONNECT also decodes as the first
    /// packet of a connection.
    #[test]
    fn roundtrip_every_packet_every_version((v, packet) in versioned_packet()) {
        let bytes = encode(&packet, v);
        prop_assert_eq!(packet.encoded_len(v), Ok(bytes.len()));
        for state in connection_states(&packet, v) {
            let (decoded, rest) = decode_from(&bytes, state, MAX_PACKET_BYTES);
            prop_assert_eq!(decoded, Ok(Decoded::Packet(packet.clone())), "state {:?}", state);
            prop_assert!(rest.is_empty(), "{} bytes left over", rest.len());
        }
    }

    /// Every v5 packet sent to a v3 peer decodes (as v3) to what v3 can say: no properties,
    /// reason codes translated or dropped; AUTH and alias-only PUBLISH are refused.
    #[test]
    fn v5_packets_encoded_for_v3_decode_to_their_v3_translation(
        packet in packet(V5),
        v3 in select(vec![V3_1, V3_1_1]),
    ) {
        match v3_translation(&packet, v3) {
            Ok(expected) => {
                let bytes = encode(&packet, v3);
                prop_assert_eq!(packet.encoded_len(v3), Ok(bytes.len()));
                let (decoded, rest) = decode_from(&bytes, Some(v3), MAX_PACKET_BYTES);
                prop_assert_eq!(decoded, Ok(Decoded::Packet(expected)));
                prop_assert!(rest.is_empty());
            }
            Err(e) => {
                prop_assert_eq!(packet.to_bytes(v3), Err(e.clone()));
                prop_assert_eq!(packet.encoded_len(v3), Err(e));
            }
        }
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// Encoding a decoded packet reproduces the bytes it was decoded from.
    #[test]
    fn reencoding_a_decoded_packet_gives_the_same_bytes((v, packet) in versioned_packet()) {
        let bytes = encode(&packet, v);
        let (decoded, _) = decode_from(&bytes, Some(v), MAX_PACKET_BYTES);
        let Ok(Decoded::Packet(decoded)) = decoded else {
            return Err(TestCaseError::fail(format!("did not decode: {decoded:?}")));
        };
        prop_assert_eq!(decoded.to_bytes(v), Ok(bytes));
    }

    /// A buffer holding two packets back to back yields both, in order, then asks for more
    /// when the start of a third has arrived.
    #[test]
    fn two_packets_back_to_back_decode_in_order(
        (v, first, second) in versioned_pair(),
        partial in any::<Index>(),
    ) {
        let a = encode(&first, v);
        let b = encode(&second, v);
        let third = &a[..partial.index(a.len())];
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&a);
        buf.extend_from_slice(&b);
        buf.extend_from_slice(third);
        prop_assert_eq!(
            decode(&mut buf, Some(v), MAX_PACKET_BYTES),
            Ok(Decoded::Packet(first))
        );
        prop_assert_eq!(buf.len(), b.len() + third.len());
        prop_assert_eq!(
            decode(&mut buf, Some(v), MAX_PACKET_BYTES),
            Ok(Decoded::Packet(second))
        );
        prop_assert_eq!(&buf[..], third);
        let r = decode(&mut buf, Some(v), MAX_PACKET_BYTES);
        prop_assert!(
            matches!(r, Ok(Decoded::Incomplete { needed }) if needed >= 1 && needed <= a.len() - third.len()),
            "{:?} with {} of {} bytes", r, third.len(), a.len()
        );
        prop_assert_eq!(&buf[..], third);
    }

    /// With a limit below the packet's size, decode refuses it with PacketTooLarge as soon as
    /// the fixed header is complete, whatever of the body has arrived; before that it asks
    /// for more. At exactly its size the packet decodes.
    #[test]
    fn packet_over_the_size_limit_is_refused_once_the_fixed_header_is_complete(
        (v, packet) in versioned_packet(),
        pick_max in any::<Index>(),
        pick_len in any::<Index>(),
    ) {
        let bytes = encode(&packet, v);
        let size = bytes.len();
        let max = pick_max.index(size);
        let header = fixed_header_len(&bytes);
        let partial = header + pick_len.index(size - header + 1);
        for state in connection_states(&packet, v) {
            for len in 0..header {
                let (r, rest) = decode_from(&bytes[..len], state, max);
                prop_assert!(
                    matches!(r, Ok(Decoded::Incomplete { needed }) if needed >= 1),
                    "{:?} with {} of {} header bytes", r, len, header
                );
                prop_assert_eq!(rest.len(), len);
            }
            for len in [header, partial, size] {
                let (r, rest) = decode_from(&bytes[..len], state, max);
                prop_assert_eq!(
                    r,
                    Err(DecodeError::PacketTooLarge { size, max }),
                    "{} of {} bytes, limit {}", len, size, max
                );
                prop_assert_eq!(&rest[..], &bytes[..len]);
            }
            let (r, _) = decode_from(&bytes, state, size);
            prop_assert_eq!(r, Ok(Decoded::Packet(packet.clone())));
        }
    }

    /// A v5 PUBLISH with properties, encoded for a v3 peer, decodes (as v3) to the same
    /// message with no properties.
    #[test]
    fn v5_publish_encoded_for_v3_decodes_without_properties(
        publish in strategies::publish(V5, strategies::MAX_PAYLOAD)
            .prop_filter("v3 needs a topic name", |p| !p.topic.is_empty()),
        v3 in select(vec![V3_1_1, V3_1]),
    ) {
        let bytes = encode(&Packet::Publish(publish.clone()), v3);
        let (decoded, rest) = decode_from(&bytes, Some(v3), MAX_PACKET_BYTES);
        let expected = Publish { properties: Default::default(), ..publish };
        prop_assert_eq!(decoded, Ok(Decoded::Packet(Packet::Publish(expected))));
        prop_assert!(rest.is_empty());
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// Split in two at every byte boundary, the first part alone is Incomplete, asking for at
    /// least one byte and no more than are missing, and consumes nothing; with the second
    /// part added the same packet decodes.
    #[test]
    fn split_at_every_byte_boundary_decodes_the_same((v, packet) in versioned_packet()) {
        let bytes = encode(&packet, v);
        let n = bytes.len();
        for state in connection_states(&packet, v) {
            for k in 0..=n {
                let mut buf = BytesMut::with_capacity(n);
                buf.extend_from_slice(&bytes[..k]);
                if k < n {
                    let r = decode(&mut buf, state, MAX_PACKET_BYTES);
                    prop_assert!(
                        matches!(r, Ok(Decoded::Incomplete { needed }) if needed >= 1 && needed <= n - k),
                        "{:?} with {} of {} bytes", r, k, n
                    );
                    prop_assert_eq!(&buf[..], &bytes[..k]);
                    buf.extend_from_slice(&bytes[k..]);
                }
                let r = decode(&mut buf, state, MAX_PACKET_BYTES);
                prop_assert_eq!(r, Ok(Decoded::Packet(packet.clone())), "split at {}", k);
                prop_assert!(buf.is_empty());
            }
        }
    }

    /// Fed one byte at a time, decode is Incomplete (asking for at least one byte and no
    /// more than are missing) until the last byte arrives, then yields the packet.
    #[test]
    fn byte_by_byte_feed_is_incomplete_until_the_last_byte((v, packet) in versioned_packet()) {
        let bytes = encode(&packet, v);
        let n = bytes.len();
        for state in connection_states(&packet, v) {
            let mut buf = BytesMut::with_capacity(n);
            for (k, &byte) in bytes.iter().enumerate() {
                let r = decode(&mut buf, state, MAX_PACKET_BYTES);
                prop_assert!(
                    matches!(r, Ok(Decoded::Incomplete { needed }) if needed >= 1 && needed <= n - k),
                    "{:?} with {} of {} bytes", r, k, n
                );
                prop_assert_eq!(buf.len(), k);
                buf.extend_from_slice(&[byte]);
            }
            prop_assert_eq!(
                decode(&mut buf, state, MAX_PACKET_BYTES),
                Ok(Decoded::Packet(packet.clone()))
            );
            prop_assert!(buf.is_empty());
        }
    }

    /// Replacing any one byte of a valid encoding (PUBLISH payloads kept short so that the
    /// structure dominates) never makes decode panic, in any connection state.
    #[test]
    fn flipping_any_single_byte_never_panics(
        (v, packet) in versioned_packet_with_payload(64),
        mask in 1u8..=255,
    ) {
        let bytes = encode(&packet, v);
        let mut mutated = bytes.to_vec();
        for i in 0..bytes.len() {
            mutated[i] ^= mask.rotate_left(i as u32);
            if mutated[i] == bytes[i] {
                mutated[i] ^= 0xFF;
            }
            check_decode_is_total(&mutated)?;
            mutated[i] = bytes[i];
        }
    }
}

proptest! {
    #![proptest_config(config(16384))]

    /// Random bytes, decoded in every connection state, give a packet, Incomplete or an
    /// error, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        check_decode_is_total(&bytes)?;
    }

    /// Random bodies behind a valid fixed header (so the packet decoders see them), decoded
    /// in every connection state, never make decode panic.
    #[test]
    fn bytes_after_a_plausible_fixed_header_never_panic(bytes in plausible_frame()) {
        check_decode_is_total(&bytes)?;
    }
}

proptest! {
    #![proptest_config(config(2048))]

    /// `decode` documents that on an error `buf` is left as it was.
    #[test]
    fn decode_error_leaves_the_buffer_unchanged(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..512),
            plausible_frame(),
            mutated_encoding(),
        ],
    ) {
        for state in CONNECTION_STATES {
            let (r, rest) = decode_from(&bytes, state, MAX_PACKET_BYTES);
            if let Err(e) = r {
                prop_assert_eq!(
                    &rest[..], &bytes[..],
                    "{:?} in state {:?} changed the buffer", e, state
                );
            }
        }
    }
}

/// The minimal inputs `decode_error_leaves_the_buffer_unchanged` finds: a complete packet
/// whose body is wrong. The error is right; the bytes it swallowed are not. Here a CONNECT
/// with an empty body before any CONNECT, and a PINGREQ with one stray body byte on a 3.1.1
/// connection.
#[test]
fn decode_error_on_a_complete_packet_leaves_the_buffer_unchanged() {
    let cases: [(&[u8], Option<ProtocolVersion>, DecodeError); 2] = [
        (&[0x10, 0x00], None, DecodeError::Truncated("protocol name")),
        (
            &[0xC0, 0x01, 0x00],
            Some(V3_1_1),
            DecodeError::TrailingBytes(1),
        ),
    ];
    for (bytes, state, error) in cases {
        let (r, rest) = decode_from(bytes, state, MAX_PACKET_BYTES);
        assert_eq!(r, Err(error));
        assert_eq!(&rest[..], bytes, "decode consumed the bad packet");
    }
}

/// The generators reach every packet type in every version, and the shapes the codec
/// treats specially.
#[test]
fn strategies_generate_every_packet_type_and_special_shape_in_every_version() {
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for v in ProtocolVersion::ALL {
        let strategy = packet_with_payload(v, 16);
        let mut types = BTreeSet::new();
        for _ in 0..1500 {
            let p = strategy
                .new_tree(&mut runner)
                .expect("strategy generates")
                .current();
            types.insert(p.packet_type() as u8);
            let mut note = |what: &'static str| {
                seen.insert((v, what));
            };
            match &p {
                Packet::Connect(c) => {
                    if c.will.is_some() {
                        note("will");
                    }
                    if c.password.is_some() {
                        note("password");
                    }
                    if !c.properties.is_empty() {
                        note("connect properties");
                    }
                    if c.will.as_ref().is_some_and(|w| !w.properties.is_empty()) {
                        note("will properties");
                    }
                }
                Packet::ConnAck(c) if c.session_present => note("session present"),
                Packet::Publish(p) => {
                    if p.topic.is_empty() {
                        note("alias-only topic");
                    }
                    if p.topic.as_str().starts_with('$') {
                        note("$ topic");
                    }
                    if !p.topic.as_str().is_ascii() {
                        note("unicode topic");
                    }
                    if p.dup {
                        note("dup");
                    }
                    if p.properties.subscription_identifiers.len() >= 2 {
                        note("repeated subscription identifiers");
                    }
                    let names = &p.properties.user_properties;
                    if names
                        .iter()
                        .enumerate()
                        .any(|(i, u)| names[..i].iter().any(|w| w.name == u.name))
                    {
                        note("repeated user property names");
                    }
                }
                Packet::Subscribe(s) => {
                    for sub in &s.subscriptions {
                        let f = sub.filter.as_str();
                        if sub.filter.shared().is_some() {
                            note("shared filter");
                        }
                        if f.ends_with('#') {
                            note("# filter");
                        }
                        if f.split('/').any(|l| l == "+") {
                            note("+ filter");
                        }
                        if sub.options.no_local {
                            note("no local");
                        }
                    }
                }
                Packet::Disconnect(d) if d.reason != ReasonCode::Success => {
                    note("disconnect reason")
                }
                _ => {}
            }
        }
        let expected: BTreeSet<u8> = (1..=15).filter(|&t| v.is_v5() || t != 15).collect();
        assert_eq!(types, expected, "packet types generated for {v}");
    }
    let all = [
        "will",
        "password",
        "$ topic",
        "unicode topic",
        "dup",
        "shared filter",
        "# filter",
        "+ filter",
    ];
    for v in ProtocolVersion::ALL {
        for what in all {
            assert!(seen.contains(&(v, what)), "no {what} in {v}");
        }
    }
    for what in [
        "connect properties",
        "will properties",
        "alias-only topic",
        "repeated subscription identifiers",
        "repeated user property names",
        "no local",
        "disconnect reason",
        "session present",
    ] {
        assert!(seen.contains(&(V5, what)), "no {what} in v5");
    }
    assert!(seen.contains(&(V3_1_1, "session present")));
    for v in [V3_1, V3_1_1] {
        for what in [
            "connect properties",
            "alias-only topic",
            "no local",
            "disconnect reason",
        ] {
            assert!(!seen.contains(&(v, what)), "{what} generated for {v}");
        }
    }
    assert!(!seen.contains(&(V3_1, "session present")));
}

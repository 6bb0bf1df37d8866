//! Table-driven checks of every validation rule the MQTT decoder enforces.
//!
//! Each row is a packet written by hand, byte by byte, from the MQTT 3.1.1 and 5.0
//! specifications (never produced by our encoder, so the codec does not test itself),
//! with the outcome the spec requires: a typed packet, a request for more bytes, or a
//! `DecodeError` variant together with the MQTT 5.0 reason code a server sends for it.
//! Every row's name cites the normative statements it checks, each pinned to the version
//! it belongs to, as tests/conformance_map.rs reads them: `[MQTT-3.6.1-1] (3.1.1) (5.0)`,
//! `[MQTT-2.1.3-1] (5.0)`. Where a rule has no numbered statement the row cites its
//! section (§). Rows decoding packets only a server sends (CONNACK, SUBACK, UNSUBACK,
//! PINGRESP) check the codec's client side and cite no statement: those statements bind
//! what the server sends, which the broker tests check.
//!
//! One test per area of the spec. A test runs all its rows and reports every failing row
//! by name, so one wrong rule does not hide the others.

use std::fmt::Debug;

use bytes::BytesMut;
use ringmq::protocol::{
    decode, DecodeError as E, Decoded, Packet, PacketType as T, PropertyId as P, ProtocolVersion,
    QoS, ReasonCode, RetainHandling, StringError as S, MAX_PACKET_BYTES,
};

/// MQTT 5.0 reason codes the rows expect (section 2.4).
const MALFORMED: u8 = 0x81;
const PROTOCOL_ERROR: u8 = 0x82;
const UNSUPPORTED_VERSION: u8 = 0x84;
const TOPIC_NAME_INVALID: u8 = 0x90;
const TOPIC_ALIAS_INVALID: u8 = 0x94;
const PACKET_TOO_LARGE: u8 = 0x95;

/// The connection state a row's bytes are decoded in.
#[derive(Debug, Clone, Copy)]
enum On {
    /// Before CONNECT: no protocol version known yet.
    First,
    V31,
    V311,
    V5,
    /// MQTT 3.1.1 and 5.0: rows whose bytes mean the same in both.
    Both,
}

impl On {
    fn versions(self) -> &'static [Option<ProtocolVersion>] {
        use ProtocolVersion::{V3_1, V3_1_1, V5};
        match self {
            On::First => &[None],
            On::V31 => &[Some(V3_1)],
            On::V311 => &[Some(V3_1_1)],
            On::V5 => &[Some(V5)],
            On::Both => &[Some(V3_1_1), Some(V5)],
        }
    }
}

type Check = Result<(), String>;

/// What decoding a row's bytes must give.
enum Expect {
    /// A whole packet, consumed from the buffer, that the function accepts.
    Packet(fn(&Packet) -> Check),
    /// `Decoded::Incomplete { needed }`, the buffer untouched.
    Incomplete(usize),
    /// This error, whose `reason_code()` is this MQTT 5.0 reason code.
    Error(E, u8),
    /// An error with this reason code. Only for rules the spec states and the codec has no
    /// variant for, so no variant can be named.
    Refused(u8),
}

struct Row {
    name: &'static str,
    on: On,
    hex: &'static str,
    max: usize,
    expect: Expect,
}

impl Row {
    /// The same row decoded with a maximum packet size of `max` bytes.
    fn max(mut self, max: usize) -> Self {
        self.max = max;
        self
    }
}

fn row(name: &'static str, on: On, hex: &'static str, expect: Expect) -> Row {
    Row {
        name,
        on,
        hex,
        max: MAX_PACKET_BYTES,
        expect,
    }
}

/// A row that must fail with `error`, reported as reason code `code`.
fn fail(name: &'static str, on: On, hex: &'static str, error: E, code: u8) -> Row {
    row(name, on, hex, Expect::Error(error, code))
}

/// A row the spec refuses with reason code `code`; see [`Expect::Refused`].
fn refuse(name: &'static str, on: On, hex: &'static str, code: u8) -> Row {
    row(name, on, hex, Expect::Refused(code))
}

/// A row that must decode to a packet `check` accepts.
fn pass(name: &'static str, on: On, hex: &'static str, check: fn(&Packet) -> Check) -> Row {
    row(name, on, hex, Expect::Packet(check))
}

/// A row that must ask for `needed` more bytes.
fn wait(name: &'static str, on: On, hex: &'static str, needed: usize) -> Row {
    row(name, on, hex, Expect::Incomplete(needed))
}

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {s:?}");
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("ASCII hex");
            u8::from_str_radix(text, 16).unwrap_or_else(|_| panic!("bad hex {text:?} in {s:?}"))
        })
        .collect()
}

fn eq<V: PartialEq + Debug + ?Sized>(field: &str, got: &V, want: &V) -> Check {
    if got == want {
        Ok(())
    } else {
        Err(format!("{field} is {got:?}, expected {want:?}"))
    }
}

/// The inner value of `$packet` if it is a `$variant`, else the row fails.
macro_rules! variant {
    ($packet:expr, $variant:path) => {
        match $packet {
            $variant(inner) => inner,
            other => {
                return Err(format!(
                    "decoded {other:?}, expected {}",
                    stringify!($variant)
                ))
            }
        }
    };
}

fn check_row(row: &Row, bytes: &[u8], version: Option<ProtocolVersion>) -> Check {
    let mut buf = BytesMut::from(bytes);
    let result = decode(&mut buf, version, row.max);
    let untouched = || eq("buffer after decode", &buf[..], bytes);
    match (&row.expect, result) {
        (Expect::Packet(check), Ok(Decoded::Packet(packet))) => {
            eq("bytes left in the buffer", &buf.len(), &0)?;
            check(&packet)
        }
        (Expect::Incomplete(want), Ok(Decoded::Incomplete { needed })) => {
            eq("needed", &needed, want)?;
            untouched()
        }
        (Expect::Error(want, code), Err(got)) => {
            eq("error", &got, want)?;
            eq("reason code", &got.reason_code().value(), code)
        }
        (Expect::Refused(code), Err(got)) => eq(
            &format!("reason code of {got:?}"),
            &got.reason_code().value(),
            code,
        ),
        (Expect::Packet(_), got) => Err(format!("expected a packet, got {got:?}")),
        (Expect::Incomplete(n), got) => Err(format!("expected Incomplete({n}), got {got:?}")),
        (Expect::Error(want, code), got) => {
            Err(format!("expected Err({want:?}) / {code:#04x}, got {got:?}"))
        }
        (Expect::Refused(code), got) => Err(format!(
            "expected an error with reason {code:#04x}, got {got:?}"
        )),
    }
}

/// Runs every row in every version it names and fails with the list of rows that failed.
fn run(rows: &[Row]) {
    let mut failures = Vec::new();
    let mut checks = 0;
    for row in rows {
        let bytes = hex(row.hex);
        for &version in row.on.versions() {
            checks += 1;
            if let Err(why) = check_row(row, &bytes, version) {
                let version = version.map_or("before CONNECT".to_owned(), |v| format!("v{v}"));
                failures.push(format!(
                    "{} [{version}]\n      bytes: {}\n      {why}",
                    row.name, row.hex
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checks} checks failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn fixed_header_flags_mqtt_2_1_3_1() {
    use On::{Both, First, V31, V311, V5};
    let invalid = |packet, flags| E::InvalidFlags { packet, flags };
    run(&[
        fail(
            "CONNECT flags 0001 [MQTT-2.1.3-1] (5.0) [MQTT-2.2.2-1] (3.1.1)",
            First,
            "11 0c 00 04 4d 51 54 54 04 02 00 3c 00 00",
            invalid(T::Connect, 0b0001),
            MALFORMED,
        ),
        fail(
            "CONNECT flags 1000 [MQTT-2.1.3-1] (5.0) [MQTT-2.2.2-1] (3.1.1)",
            First,
            "18 0c 00 04 4d 51 54 54 04 02 00 3c 00 00",
            invalid(T::Connect, 0b1000),
            MALFORMED,
        ),
        fail(
            "CONNACK flags 0001",
            Both,
            "21 02 00 00",
            invalid(T::ConnAck, 0b0001),
            MALFORMED,
        ),
        fail(
            "PUBACK flags 0010 [MQTT-2.1.3-1] (5.0) [MQTT-2.2.2-2] (3.1.1)",
            Both,
            "42 02 00 01",
            invalid(T::PubAck, 0b0010),
            MALFORMED,
        ),
        fail(
            "PUBREC flags 1000 [MQTT-2.1.3-1] (5.0) [MQTT-2.2.2-2] (3.1.1)",
            Both,
            "58 02 00 01",
            invalid(T::PubRec, 0b1000),
            MALFORMED,
        ),
        fail(
            "PUBREL flags 0000, must be 0010 [MQTT-3.6.1-1] (3.1.1) (5.0)",
            Both,
            "60 02 00 01",
            invalid(T::PubRel, 0b0000),
            MALFORMED,
        ),
        fail(
            "PUBREL flags 0011, must be 0010 [MQTT-3.6.1-1] (3.1.1) (5.0)",
            Both,
            "63 02 00 01",
            invalid(T::PubRel, 0b0011),
            MALFORMED,
        ),
        fail(
            "PUBREL flags 1010, must be 0010 [MQTT-3.6.1-1] (3.1.1) (5.0)",
            Both,
            "6a 02 00 01",
            invalid(T::PubRel, 0b1010),
            MALFORMED,
        ),
        fail(
            "PUBCOMP flags 0010 [MQTT-2.1.3-1] (5.0) [MQTT-2.2.2-2] (3.1.1)",
            Both,
            "72 02 00 01",
            invalid(T::PubComp, 0b0010),
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE flags 0000, must be 0010 [MQTT-3.8.1-1] (3.1.1) (5.0)",
            Both,
            "80 06 00 01 00 01 61 00",
            invalid(T::Subscribe, 0b0000),
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE flags 0011, must be 0010 [MQTT-3.8.1-1] (3.1.1) (5.0)",
            Both,
            "83 06 00 01 00 01 61 00",
            invalid(T::Subscribe, 0b0011),
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE flags 1010, must be 0010 [MQTT-3.8.1-1] (3.1.1) (5.0)",
            Both,
            "8a 06 00 01 00 01 61 00",
            invalid(T::Subscribe, 0b1010),
            MALFORMED,
        ),
        fail(
            "SUBACK flags 0010",
            Both,
            "92 03 00 01 00",
            invalid(T::SubAck, 0b0010),
            MALFORMED,
        ),
        fail(
            "UNSUBSCRIBE flags 0000, must be 0010 [MQTT-3.10.1-1] (3.1.1) (5.0)",
            Both,
            "a0 05 00 01 00 01 61",
            invalid(T::Unsubscribe, 0b0000),
            MALFORMED,
        ),
        fail(
            "UNSUBSCRIBE flags 0110, must be 0010 [MQTT-3.10.1-1] (3.1.1) (5.0)",
            Both,
            "a6 05 00 01 00 01 61",
            invalid(T::Unsubscribe, 0b0110),
            MALFORMED,
        ),
        fail(
            "UNSUBSCRIBE flags 1010, must be 0010 [MQTT-3.10.1-1] (3.1.1) (5.0)",
            Both,
            "aa 05 00 01 00 01 61",
            invalid(T::Unsubscribe, 0b1010),
            MALFORMED,
        ),
        fail(
            "UNSUBACK flags 0001",
            Both,
            "b1 02 00 01",
            invalid(T::UnsubAck, 0b0001),
            MALFORMED,
        ),
        fail(
            "PINGREQ flags 0001 [MQTT-2.1.3-1] (5.0) [MQTT-2.2.2-2] (3.1.1)",
            Both,
            "c1 00",
            invalid(T::PingReq, 0b0001),
            MALFORMED,
        ),
        fail(
            "PINGREQ flags 1000 [MQTT-2.1.3-1] (5.0) [MQTT-2.2.2-2] (3.1.1)",
            Both,
            "c8 00",
            invalid(T::PingReq, 0b1000),
            MALFORMED,
        ),
        fail(
            "PINGRESP flags 0010",
            Both,
            "d2 00",
            invalid(T::PingResp, 0b0010),
            MALFORMED,
        ),
        fail(
            "DISCONNECT flags 0001 [MQTT-3.14.1-1] (3.1.1) (5.0)",
            Both,
            "e1 00",
            invalid(T::Disconnect, 0b0001),
            MALFORMED,
        ),
        fail(
            "DISCONNECT flags 1111 [MQTT-3.14.1-1] (3.1.1) (5.0)",
            Both,
            "ef 00",
            invalid(T::Disconnect, 0b1111),
            MALFORMED,
        ),
        fail(
            "AUTH flags 0001 [MQTT-3.15.1-1] (5.0)",
            V5,
            "f1 00",
            invalid(T::Auth, 0b0001),
            MALFORMED,
        ),
        fail(
            "AUTH flags 1000 [MQTT-3.15.1-1] (5.0)",
            V5,
            "f8 00",
            invalid(T::Auth, 0b1000),
            MALFORMED,
        ),
        fail(
            "AUTH (type 15) is reserved in 3.1.1, table 2.1",
            V311,
            "f0 00",
            E::PacketNotInVersion {
                packet: T::Auth,
                version: ProtocolVersion::V3_1_1,
            },
            MALFORMED,
        ),
        fail(
            "AUTH (type 15) is reserved in 3.1 as in 3.1.1",
            V31,
            "f0 00",
            E::PacketNotInVersion {
                packet: T::Auth,
                version: ProtocolVersion::V3_1,
            },
            MALFORMED,
        ),
        fail(
            "packet type 0 is reserved, table 2.1",
            Both,
            "00 00",
            E::ReservedPacketType,
            MALFORMED,
        ),
        fail(
            "packet type 0 with flags 1111 is reserved",
            Both,
            "0f 00",
            E::ReservedPacketType,
            MALFORMED,
        ),
        fail(
            "packet type 0 as the first packet is reserved",
            First,
            "00 00",
            E::ReservedPacketType,
            MALFORMED,
        ),
        pass(
            "PUBREL flags 0010 accepted [MQTT-3.6.1-1] (3.1.1) (5.0)",
            Both,
            "62 02 00 01",
            |p| {
                let ack = variant!(p, Packet::PubRel);
                eq("packet id", &ack.packet_id.get(), &1)
            },
        ),
        pass(
            "PINGREQ flags 0000 accepted [MQTT-2.1.3-1] (5.0)",
            Both,
            "c0 00",
            |p| eq("packet", p, &Packet::PingReq),
        ),
        pass(
            "AUTH flags 0000 accepted [MQTT-3.15.1-1] (5.0)",
            V5,
            "f0 00",
            |p| {
                let auth = variant!(p, Packet::Auth);
                eq("reason", &auth.reason, &ReasonCode::Success)
            },
        ),
    ]);
}

#[test]
fn variable_byte_integers_mqtt_1_5_5_1() {
    use On::{Both, First, V5};
    run(&[
        fail(
            "remaining length with a fifth byte, §1.5.5 (3.1.1 §2.2.3)",
            Both,
            "30 ff ff ff ff 01",
            E::VarIntTooLong,
            MALFORMED,
        ),
        fail(
            "remaining length with a fifth byte of continuations, §1.5.5",
            Both,
            "30 80 80 80 80 01",
            E::VarIntTooLong,
            MALFORMED,
        ),
        fail(
            "fifth remaining length byte refused before it arrives, §1.5.5",
            Both,
            "c0 ff ff ff ff",
            E::VarIntTooLong,
            MALFORMED,
        ),
        fail(
            "CONNECT remaining length with a fifth byte, §1.5.5",
            First,
            "10 ff ff ff ff 7f",
            E::VarIntTooLong,
            MALFORMED,
        ),
        fail(
            "remaining length 0 in two bytes [MQTT-1.5.5-1] (5.0)",
            Both,
            "30 80 00",
            E::VarIntNotMinimal,
            MALFORMED,
        ),
        fail(
            "remaining length 5 in two bytes [MQTT-1.5.5-1] (5.0)",
            Both,
            "30 85 00 00 01 61 68 69",
            E::VarIntNotMinimal,
            MALFORMED,
        ),
        fail(
            "remaining length 127 in three bytes [MQTT-1.5.5-1] (5.0)",
            Both,
            "30 ff 80 00",
            E::VarIntNotMinimal,
            MALFORMED,
        ),
        fail(
            "remaining length 0 in four bytes [MQTT-1.5.5-1] (5.0)",
            Both,
            "c0 80 80 80 00",
            E::VarIntNotMinimal,
            MALFORMED,
        ),
        fail(
            "PINGREQ remaining length 0 in two bytes [MQTT-1.5.5-1] (5.0)",
            Both,
            "c0 80 00",
            E::VarIntNotMinimal,
            MALFORMED,
        ),
        fail(
            "CONNECT remaining length in a longer form [MQTT-1.5.5-1] (5.0)",
            First,
            "10 8c 00 00 04 4d 51 54 54 04 02 00 3c 00 00",
            E::VarIntNotMinimal,
            MALFORMED,
        ),
        fail(
            "property length 0 in two bytes [MQTT-1.5.5-1] (5.0)",
            V5,
            "30 05 00 01 61 80 00",
            E::VarIntNotMinimal,
            MALFORMED,
        ),
        fail(
            "property identifier 1 in two bytes [MQTT-1.5.5-1] (5.0)",
            V5,
            "30 07 00 01 61 03 81 00 01",
            E::VarIntNotMinimal,
            MALFORMED,
        ),
        fail(
            "subscription identifier 1 in two bytes [MQTT-1.5.5-1] (5.0)",
            V5,
            "82 0a 00 01 03 0b 81 00 00 01 61 00",
            E::VarIntNotMinimal,
            MALFORMED,
        ),
        fail(
            "property length that runs off the packet mid-integer, §1.5.5",
            V5,
            "30 04 00 01 61 80",
            E::Truncated("property length"),
            MALFORMED,
        ),
        wait(
            "empty buffer needs the two-byte minimum fixed header, §2.1.1",
            Both,
            "",
            2,
        ),
        wait("type byte alone needs a length byte, §2.1.1", Both, "30", 1),
        wait(
            "remaining length cut after a continuation byte, §1.5.5",
            Both,
            "30 80",
            1,
        ),
        wait(
            "remaining length cut after three continuation bytes, §1.5.5",
            Both,
            "30 ff ff ff",
            1,
        ),
        wait(
            "remaining length 127 in one byte, table 1-1",
            Both,
            "30 7f",
            127,
        ),
        wait(
            "remaining length 128 in two bytes, table 1-1",
            Both,
            "30 80 01",
            128,
        ),
        wait(
            "remaining length 16383 in two bytes, table 1-1",
            Both,
            "30 ff 7f",
            16_383,
        ),
        wait(
            "remaining length 16384 in three bytes, table 1-1",
            Both,
            "30 80 80 01",
            16_384,
        ),
        wait(
            "remaining length 2097151 in three bytes, table 1-1",
            Both,
            "30 ff ff 7f",
            2_097_151,
        ),
        wait(
            "remaining length 2097152 in four bytes, table 1-1",
            Both,
            "30 80 80 80 01",
            2_097_152,
        ),
        wait(
            "remaining length 268435455 (the largest) in four bytes, table 1-1",
            Both,
            "30 ff ff ff 7f",
            268_435_455,
        ),
        wait("body still arriving, §2.1.4", Both, "32 05 00 01", 3),
    ]);
}

#[test]
fn packet_too_large_from_fixed_header_mqtt_3_2_2_15() {
    use On::{Both, First};
    let too_large = |size, max| E::PacketTooLarge { size, max };
    run(&[
        fail(
            "129-byte PUBLISH over a 128-byte limit, 2 bytes buffered [MQTT-3.2.2-15] (5.0)",
            Both,
            "30 7f",
            too_large(129, 128),
            PACKET_TOO_LARGE,
        )
        .max(128),
        fail(
            "131-byte PUBLISH over a 128-byte limit, 3 bytes buffered [MQTT-3.2.2-15] (5.0)",
            Both,
            "30 80 01",
            too_large(131, 128),
            PACKET_TOO_LARGE,
        )
        .max(128),
        fail(
            "16388-byte PUBLISH over a 16 KiB limit, 4 bytes buffered [MQTT-3.2.2-15] (5.0)",
            Both,
            "30 80 80 01",
            too_large(16_388, 16_384),
            PACKET_TOO_LARGE,
        )
        .max(16_384),
        fail(
            "2 MiB PUBLISH over a 1 MiB limit, 5 bytes buffered [MQTT-3.2.2-15] (5.0)",
            Both,
            "30 80 80 80 01",
            too_large(2_097_157, 1_048_576),
            PACKET_TOO_LARGE,
        )
        .max(1_048_576),
        fail(
            "largest PUBLISH over a 1 MiB limit [MQTT-3.2.2-15] (5.0)",
            Both,
            "30 ff ff ff 7f",
            too_large(268_435_460, 1_048_576),
            PACKET_TOO_LARGE,
        )
        .max(1_048_576),
        fail(
            "PINGREQ with a body over a 2-byte limit [MQTT-3.2.2-15] (5.0)",
            Both,
            "c0 01",
            too_large(3, 2),
            PACKET_TOO_LARGE,
        )
        .max(2),
        fail(
            "CONNECT over the limit before the body arrives [MQTT-3.2.2-15] (5.0)",
            First,
            "10 ff 01",
            too_large(258, 100),
            PACKET_TOO_LARGE,
        )
        .max(100),
        wait(
            "PUBLISH of exactly the limit waits for its body [MQTT-3.2.2-15] (5.0)",
            Both,
            "30 7e",
            126,
        )
        .max(128),
        wait(
            "PUBLISH one byte under the limit waits for its body [MQTT-3.2.2-15] (5.0)",
            Both,
            "30 7d",
            125,
        )
        .max(128),
    ]);
}

#[test]
fn publish_flags_mqtt_3_3_1_2_and_3_3_1_4() {
    use On::{Both, First, V311, V5};
    run(&[
        fail(
            "PUBLISH QoS 3 [MQTT-3.3.1-4] (3.1.1) (5.0)",
            Both,
            "36 05 00 01 61 00 01",
            E::InvalidQoS,
            MALFORMED,
        ),
        fail(
            "PUBLISH QoS 3 with RETAIN [MQTT-3.3.1-4] (3.1.1) (5.0)",
            Both,
            "37 05 00 01 61 00 01",
            E::InvalidQoS,
            MALFORMED,
        ),
        fail(
            "PUBLISH QoS 3 with DUP [MQTT-3.3.1-4] (3.1.1) (5.0)",
            Both,
            "3e 05 00 01 61 00 01",
            E::InvalidQoS,
            MALFORMED,
        ),
        fail(
            "PUBLISH QoS 3 with DUP and RETAIN [MQTT-3.3.1-4] (3.1.1) (5.0)",
            Both,
            "3f 05 00 01 61 00 01",
            E::InvalidQoS,
            MALFORMED,
        ),
        fail(
            "PUBLISH QoS 3 as the first packet, refused by its header [MQTT-3.3.1-4] (3.1.1) (5.0)",
            First,
            "36 05 00 01 61 00 01",
            E::InvalidQoS,
            MALFORMED,
        ),
        fail(
            "PUBLISH QoS 0 with DUP [MQTT-3.3.1-2] (3.1.1) (5.0)",
            Both,
            "38 03 00 01 61",
            E::DupOnQoS0,
            MALFORMED,
        ),
        fail(
            "PUBLISH QoS 0 with DUP and RETAIN [MQTT-3.3.1-2] (3.1.1) (5.0)",
            Both,
            "39 03 00 01 61",
            E::DupOnQoS0,
            MALFORMED,
        ),
        pass(
            "PUBLISH DUP QoS 2 RETAIN accepted [MQTT-3.3.1-2] (3.1.1)",
            V311,
            "3d 07 00 01 61 00 07 68 69",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq("dup", &publish.dup, &true)?;
                eq("qos", &publish.qos, &QoS::ExactlyOnce)?;
                eq("retain", &publish.retain, &true)?;
                eq("packet id", &publish.packet_id.map(|id| id.get()), &Some(7))?;
                eq("payload", &publish.payload[..], b"hi".as_slice())
            },
        ),
        pass(
            "PUBLISH DUP QoS 2 RETAIN accepted [MQTT-3.3.1-2] (5.0)",
            V5,
            "3d 08 00 01 61 00 07 00 68 69",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq("dup", &publish.dup, &true)?;
                eq("qos", &publish.qos, &QoS::ExactlyOnce)?;
                eq("retain", &publish.retain, &true)?;
                eq("packet id", &publish.packet_id.map(|id| id.get()), &Some(7))?;
                eq("payload", &publish.payload[..], b"hi".as_slice())
            },
        ),
        pass(
            "PUBLISH DUP QoS 1 accepted [MQTT-3.3.1-2] (3.1.1)",
            V311,
            "3a 05 00 01 61 00 01",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq("dup", &publish.dup, &true)?;
                eq("qos", &publish.qos, &QoS::AtLeastOnce)?;
                eq("retain", &publish.retain, &false)
            },
        ),
    ]);
}

#[test]
fn packet_identifiers_mqtt_2_2_1_3() {
    use On::{Both, V311, V5};
    run(&[
        fail(
            "PUBLISH QoS 1 with packet id 0 [MQTT-2.3.1-1] (3.1.1)",
            V311,
            "32 05 00 01 61 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBLISH QoS 1 with packet id 0 [MQTT-2.2.1-3] (5.0)",
            V5,
            "32 06 00 01 61 00 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBLISH QoS 2 with packet id 0 [MQTT-2.3.1-1] (3.1.1)",
            V311,
            "34 05 00 01 61 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBLISH QoS 2 with packet id 0 [MQTT-2.2.1-3] (5.0)",
            V5,
            "34 06 00 01 61 00 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE with packet id 0 [MQTT-2.3.1-1] (3.1.1)",
            V311,
            "82 06 00 00 00 01 61 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE with packet id 0 [MQTT-2.2.1-3] (5.0)",
            V5,
            "82 07 00 00 00 00 01 61 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "UNSUBSCRIBE with packet id 0 [MQTT-2.3.1-1] (3.1.1)",
            V311,
            "a2 05 00 00 00 01 61",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "UNSUBSCRIBE with packet id 0 [MQTT-2.2.1-3] (5.0)",
            V5,
            "a2 06 00 00 00 00 01 61",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBACK with packet id 0 [MQTT-2.2.1-5] (5.0) [MQTT-2.3.1-6] (3.1.1)",
            Both,
            "40 02 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBREC with packet id 0 [MQTT-2.2.1-5] (5.0) [MQTT-2.3.1-6] (3.1.1)",
            Both,
            "50 02 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBREL with packet id 0 [MQTT-2.2.1-5] (5.0) [MQTT-2.3.1-6] (3.1.1)",
            Both,
            "62 02 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBCOMP with packet id 0 [MQTT-2.2.1-5] (5.0)",
            Both,
            "70 02 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBACK with packet id 0",
            V311,
            "90 03 00 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBACK with packet id 0",
            V5,
            "90 04 00 00 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "UNSUBACK with packet id 0",
            V311,
            "b0 02 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        fail(
            "UNSUBACK with packet id 0",
            V5,
            "b0 04 00 00 00 00",
            E::PacketIdZero,
            PROTOCOL_ERROR,
        ),
        pass(
            "PUBLISH QoS 0 has no packet id: 00 00 is payload [MQTT-2.3.1-5] (3.1.1)",
            V311,
            "30 05 00 01 61 00 00",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq("packet id", &publish.packet_id, &None)?;
                eq("payload", &publish.payload[..], [0u8, 0].as_slice())
            },
        ),
        pass(
            "PUBLISH QoS 0 has no packet id: 00 00 is payload [MQTT-2.2.1-2] (5.0)",
            V5,
            "30 06 00 01 61 00 00 00",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq("packet id", &publish.packet_id, &None)?;
                eq("payload", &publish.payload[..], [0u8, 0].as_slice())
            },
        ),
        pass(
            "PUBLISH QoS 1 with packet id 65535 accepted",
            V311,
            "32 05 00 01 61 ff ff",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq(
                    "packet id",
                    &publish.packet_id.map(|id| id.get()),
                    &Some(0xFFFF),
                )
            },
        ),
    ]);
}

#[test]
fn topic_names_mqtt_3_3_2_2_and_4_7_3_1() {
    use On::{V311, V5};
    let wildcard = E::String(S::WildcardInTopicName);
    run(&[
        fail(
            "PUBLISH topic a/+ [MQTT-3.3.2-2] (3.1.1) [MQTT-4.7.1-1] (3.1.1)",
            V311,
            "30 05 00 03 61 2f 2b",
            wildcard.clone(),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "PUBLISH topic a/+ [MQTT-3.3.2-2] (5.0) [MQTT-4.7.0-1] (5.0)",
            V5,
            "30 06 00 03 61 2f 2b 00",
            wildcard.clone(),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "PUBLISH topic # [MQTT-3.3.2-2] (3.1.1) [MQTT-4.7.1-1] (3.1.1)",
            V311,
            "30 03 00 01 23",
            wildcard.clone(),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "PUBLISH topic # [MQTT-3.3.2-2] (5.0) [MQTT-4.7.0-1] (5.0)",
            V5,
            "30 04 00 01 23 00",
            wildcard.clone(),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "PUBLISH topic a/# [MQTT-3.3.2-2] (3.1.1) [MQTT-4.7.1-1] (3.1.1)",
            V311,
            "30 05 00 03 61 2f 23",
            wildcard.clone(),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "PUBLISH topic a+b, + inside a level [MQTT-3.3.2-2] (3.1.1) [MQTT-4.7.1-1] (3.1.1)",
            V311,
            "30 05 00 03 61 2b 62",
            wildcard.clone(),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "PUBLISH topic a#b, # inside a level [MQTT-3.3.2-2] (5.0) [MQTT-4.7.0-1] (5.0)",
            V5,
            "30 06 00 03 61 23 62 00",
            wildcard.clone(),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "PUBLISH QoS 1 topic + [MQTT-3.3.2-2] (3.1.1) [MQTT-4.7.1-1] (3.1.1)",
            V311,
            "32 05 00 01 2b 00 01",
            wildcard.clone(),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "PUBLISH with an empty topic [MQTT-4.7.3-1] (3.1.1)",
            V311,
            "30 02 00 00",
            E::MissingTopic,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBLISH QoS 1 with an empty topic [MQTT-4.7.3-1] (3.1.1)",
            V311,
            "32 04 00 00 00 01",
            E::MissingTopic,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBLISH with an empty topic and no topic alias [MQTT-4.7.3-1] (5.0) §3.3.2.1",
            V5,
            "30 03 00 00 00",
            E::MissingTopic,
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBLISH with an empty topic, properties but no topic alias [MQTT-4.7.3-1] (5.0)",
            V5,
            "30 05 00 00 02 01 01",
            E::MissingTopic,
            PROTOCOL_ERROR,
        ),
        pass(
            "PUBLISH with an empty topic and topic alias 1 accepted §3.3.2.3.4",
            V5,
            "30 08 00 00 03 23 00 01 68 69",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq("topic", publish.topic.as_str(), "")?;
                eq(
                    "topic alias",
                    &publish.properties.topic_alias.map(|a| a.get()),
                    &Some(1),
                )?;
                eq("payload", &publish.payload[..], b"hi".as_slice())
            },
        ),
        fail(
            "PUBLISH with topic alias 0 [MQTT-3.3.2-8] (5.0)",
            V5,
            "30 07 00 01 61 03 23 00 00",
            E::TopicAliasZero,
            TOPIC_ALIAS_INVALID,
        ),
        fail(
            "PUBLISH with an empty topic and topic alias 0 [MQTT-3.3.2-8] (5.0)",
            V5,
            "30 06 00 00 03 23 00 00",
            E::TopicAliasZero,
            TOPIC_ALIAS_INVALID,
        ),
        fail(
            "PUBLISH with two topic aliases, §3.3.2.3.4",
            V5,
            "30 0a 00 01 61 06 23 00 01 23 00 02",
            E::DuplicateProperty(P::TopicAlias),
            PROTOCOL_ERROR,
        ),
        pass(
            "PUBLISH topic / accepted [MQTT-4.7.3-1] (3.1.1)",
            V311,
            "30 03 00 01 2f",
            |p| eq("topic", variant!(p, Packet::Publish).topic.as_str(), "/"),
        ),
        pass(
            "PUBLISH topic $SYS/a accepted [MQTT-4.7.3-1] (5.0)",
            V5,
            "30 09 00 06 24 53 59 53 2f 61 00",
            |p| {
                eq(
                    "topic",
                    variant!(p, Packet::Publish).topic.as_str(),
                    "$SYS/a",
                )
            },
        ),
        pass(
            "PUBLISH topic ' a' with a space accepted [MQTT-4.7.3-1] (3.1.1)",
            V311,
            "30 04 00 02 20 61",
            |p| eq("topic", variant!(p, Packet::Publish).topic.as_str(), " a"),
        ),
    ]);
}

#[test]
fn utf8_rules_mqtt_1_5_4_1_and_2() {
    use On::{First, V311, V5};
    let invalid = E::String(S::InvalidUtf8);
    let null = E::String(S::NullCharacter);
    run(&[
        fail(
            "topic with a lone continuation byte [MQTT-1.5.3-1] (3.1.1)",
            V311,
            "30 04 00 02 61 80",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with a lone continuation byte [MQTT-1.5.4-1] (5.0)",
            V5,
            "30 05 00 02 61 80 00",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with overlong / (C0 AF) [MQTT-1.5.3-1] (3.1.1)",
            V311,
            "30 04 00 02 c0 af",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with surrogate U+D800 (ED A0 80) [MQTT-1.5.3-1] (3.1.1)",
            V311,
            "30 05 00 03 ed a0 80",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with surrogate U+D800 (ED A0 80) [MQTT-1.5.4-1] (5.0)",
            V5,
            "30 06 00 03 ed a0 80 00",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with surrogate U+DFFF (ED BF BF) [MQTT-1.5.3-1] (3.1.1)",
            V311,
            "30 05 00 03 ed bf bf",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with a code point past U+10FFFF [MQTT-1.5.3-1] (3.1.1)",
            V311,
            "30 06 00 04 f4 90 80 80",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with a cut-off sequence (E2 82) [MQTT-1.5.3-1] (3.1.1)",
            V311,
            "30 04 00 02 e2 82",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with byte FF [MQTT-1.5.4-1] (5.0)",
            V5,
            "30 04 00 01 ff 00",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with overlong U+0000 (C0 80) [MQTT-1.5.4-1] (5.0) [MQTT-1.5.4-2] (5.0)",
            V5,
            "30 05 00 02 c0 80 00",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "topic with U+0000 [MQTT-4.7.3-2] (3.1.1) [MQTT-1.5.3-2] (3.1.1)",
            V311,
            "30 05 00 03 61 00 62",
            null.clone(),
            MALFORMED,
        ),
        fail(
            "topic with U+0000 [MQTT-1.5.4-2] (5.0) [MQTT-4.7.3-2] (5.0)",
            V5,
            "30 06 00 03 61 00 62 00",
            null.clone(),
            MALFORMED,
        ),
        fail(
            "client id with U+0000 [MQTT-1.5.3-2] (3.1.1) [MQTT-3.1.3-4] (3.1.1)",
            First,
            "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 61 00 62",
            null.clone(),
            MALFORMED,
        ),
        fail(
            "client id with U+0000 [MQTT-1.5.4-2] (5.0) [MQTT-3.1.3-4] (5.0)",
            First,
            "10 10 00 04 4d 51 54 54 05 02 00 3c 00 00 03 61 00 62",
            null.clone(),
            MALFORMED,
        ),
        fail(
            "client id with a surrogate [MQTT-1.5.3-1] (3.1.1) [MQTT-3.1.3-4] (3.1.1)",
            First,
            "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 ed a0 80",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "user name with byte FF [MQTT-1.5.3-1] (3.1.1) [MQTT-3.1.3-11] (3.1.1)",
            First,
            "10 10 00 04 4d 51 54 54 04 82 00 3c 00 01 63 00 01 ff",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "will topic with U+0000 [MQTT-1.5.3-2] (3.1.1) [MQTT-3.1.3-10] (3.1.1)",
            First,
            "10 14 00 04 4d 51 54 54 04 06 00 3c 00 01 63 00 03 61 00 62 00 00",
            null.clone(),
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE filter with U+0000 [MQTT-1.5.3-2] (3.1.1) [MQTT-3.8.3-1] (3.1.1)",
            V311,
            "82 08 00 01 00 03 61 00 62 00",
            null.clone(),
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE filter with a surrogate [MQTT-1.5.4-1] (5.0) [MQTT-3.8.3-1] (5.0)",
            V5,
            "82 09 00 01 00 00 03 ed a0 80 00",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "UNSUBSCRIBE filter with byte FF [MQTT-1.5.3-1] (3.1.1) [MQTT-3.10.3-1] (3.1.1)",
            V311,
            "a2 05 00 01 00 01 ff",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "user property name with U+0000 [MQTT-1.5.4-2] (5.0) §1.5.7",
            V5,
            "30 0c 00 01 61 08 26 00 02 6b 00 00 01 76",
            null.clone(),
            MALFORMED,
        ),
        fail(
            "CONNECT user property value with a surrogate [MQTT-1.5.4-1] (5.0) §1.5.7",
            First,
            "10 16 00 04 4d 51 54 54 05 02 00 3c 09 26 00 01 6b 00 03 ed a0 80 00 00",
            invalid.clone(),
            MALFORMED,
        ),
        fail(
            "content type with U+0000 [MQTT-1.5.4-2] (5.0) [MQTT-3.3.2-19] (5.0)",
            V5,
            "30 08 00 01 61 04 03 00 01 00",
            null.clone(),
            MALFORMED,
        ),
        fail(
            "PUBACK reason string with U+0000 [MQTT-1.5.4-2] (5.0)",
            V5,
            "40 08 00 01 00 04 1f 00 01 00",
            null.clone(),
            MALFORMED,
        ),
        fail(
            "DISCONNECT reason string with byte FF [MQTT-1.5.4-1] (5.0)",
            V5,
            "e0 06 00 04 1f 00 01 ff",
            invalid.clone(),
            MALFORMED,
        ),
        pass(
            "BOM in a topic is kept [MQTT-1.5.3-3] (3.1.1)",
            V311,
            "30 06 00 04 ef bb bf 61",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq(
                    "topic",
                    publish.topic.as_bytes(),
                    [0xEF, 0xBB, 0xBF, b'a'].as_slice(),
                )
            },
        ),
        pass(
            "BOM in a topic is kept [MQTT-1.5.4-3] (5.0)",
            V5,
            "30 07 00 04 ef bb bf 61 00",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq(
                    "topic",
                    publish.topic.as_bytes(),
                    [0xEF, 0xBB, 0xBF, b'a'].as_slice(),
                )
            },
        ),
        pass(
            "BOM as a whole client id is kept [MQTT-1.5.3-3] (3.1.1)",
            First,
            "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 ef bb bf",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq(
                    "client id",
                    connect.client_id.as_bytes(),
                    [0xEF, 0xBB, 0xBF].as_slice(),
                )
            },
        ),
        pass(
            "four-byte character U+1F600 in a topic accepted",
            V311,
            "30 06 00 04 f0 9f 98 80",
            |p| {
                eq(
                    "topic",
                    variant!(p, Packet::Publish).topic.as_str(),
                    "\u{1F600}",
                )
            },
        ),
        pass(
            "password is Binary Data: 00 FF accepted, §3.1.3.6 (3.1.1 §3.1.3.5)",
            First,
            "10 14 00 04 4d 51 54 54 04 c2 00 3c 00 01 63 00 01 75 00 02 00 ff",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq(
                    "password",
                    &connect.password.as_deref(),
                    &Some([0u8, 0xFF].as_slice()),
                )
            },
        ),
        pass(
            "payload is not a string: invalid UTF-8 accepted, §3.3.3",
            V311,
            "30 05 00 01 61 ff 00",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq("payload", &publish.payload[..], [0xFFu8, 0].as_slice())
            },
        ),
        pass(
            "correlation data is Binary Data: 00 FF accepted, §3.3.2.3.6",
            V5,
            "30 09 00 01 61 05 09 00 02 00 ff",
            |p| {
                let publish = variant!(p, Packet::Publish);
                let data = publish.properties.correlation_data.as_deref();
                eq("correlation data", &data, &Some([0u8, 0xFF].as_slice()))
            },
        ),
    ]);
}

#[test]
fn properties_mqtt_2_2_2_1() {
    use On::{First, V5};
    let not_allowed = |property, packet| E::PropertyNotAllowed { property, packet };
    let bad_value = |property, value| E::InvalidPropertyValue { property, value };
    run(&[
        // Property Length 0.
        pass(
            "PUBLISH with Property Length 0 [MQTT-2.2.2-1] (5.0)",
            V5,
            "30 04 00 01 61 00",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq("properties empty", &publish.properties.is_empty(), &true)?;
                eq("payload", &publish.payload[..], [].as_slice())
            },
        ),
        pass(
            "SUBSCRIBE with Property Length 0 [MQTT-2.2.2-1] (5.0)",
            V5,
            "82 07 00 01 00 00 01 61 01",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                eq("properties empty", &subscribe.properties.is_empty(), &true)
            },
        ),
        pass(
            "CONNACK with Property Length 0",
            V5,
            "20 03 00 00 00",
            |p| {
                let connack = variant!(p, Packet::ConnAck);
                eq("properties empty", &connack.properties.is_empty(), &true)
            },
        ),
        pass(
            "DISCONNECT with Property Length 0 [MQTT-2.2.2-1] (5.0)",
            V5,
            "e0 02 00 00",
            |p| {
                let disconnect = variant!(p, Packet::Disconnect);
                eq("properties empty", &disconnect.properties.is_empty(), &true)
            },
        ),
        // Twice where once is the limit: Protocol Error.
        fail(
            "PUBLISH with two Message Expiry Intervals, §3.3.2.3.3",
            V5,
            "30 0e 00 01 61 0a 02 00 00 00 01 02 00 00 00 02",
            E::DuplicateProperty(P::MessageExpiryInterval),
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBLISH with two Payload Format Indicators, §3.3.2.3.2",
            V5,
            "30 08 00 01 61 04 01 00 01 01",
            E::DuplicateProperty(P::PayloadFormatIndicator),
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNECT with two Session Expiry Intervals, §3.1.2.11.2",
            First,
            "10 17 00 04 4d 51 54 54 05 02 00 3c 0a 11 00 00 00 0a 11 00 00 00 0a 00 00",
            E::DuplicateProperty(P::SessionExpiryInterval),
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNECT with two Receive Maximums, §3.1.2.11.3",
            First,
            "10 13 00 04 4d 51 54 54 05 02 00 3c 06 21 00 0a 21 00 0a 00 00",
            E::DuplicateProperty(P::ReceiveMaximum),
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNECT with two Authentication Methods, §3.1.2.11.9",
            First,
            "10 15 00 04 4d 51 54 54 05 02 00 3c 08 15 00 01 6d 15 00 01 6d 00 00",
            E::DuplicateProperty(P::AuthenticationMethod),
            PROTOCOL_ERROR,
        ),
        fail(
            "Will Properties with two Will Delay Intervals, §3.1.3.2.2",
            First,
            "10 1d 00 04 4d 51 54 54 05 06 00 3c 00 00 00 \
             0a 18 00 00 00 05 18 00 00 00 05 00 01 74 00 00",
            E::DuplicateProperty(P::WillDelayInterval),
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBACK with two Reason Strings, §3.4.2.2.2",
            V5,
            "40 0c 00 01 00 08 1f 00 01 78 1f 00 01 78",
            E::DuplicateProperty(P::ReasonString),
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE with two Subscription Identifiers, §3.8.2.1.2",
            V5,
            "82 0b 00 01 04 0b 01 0b 02 00 01 61 00",
            E::DuplicateProperty(P::SubscriptionIdentifier),
            PROTOCOL_ERROR,
        ),
        fail(
            "AUTH with two Authentication Data, §3.15.2.2.3",
            V5,
            "f0 0c 18 0a 15 00 01 6d 16 00 00 16 00 00",
            E::DuplicateProperty(P::AuthenticationData),
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNACK with two Maximum QoS, §3.2.2.3.4",
            V5,
            "20 07 00 00 04 24 00 24 01",
            E::DuplicateProperty(P::MaximumQoS),
            PROTOCOL_ERROR,
        ),
        pass(
            "PUBLISH User Property twice, order kept [MQTT-3.3.2-17] (5.0) [MQTT-3.3.2-18] (5.0)",
            V5,
            "30 12 00 01 61 0e 26 00 01 6b 00 01 32 26 00 01 6b 00 01 31",
            |p| {
                let publish = variant!(p, Packet::Publish);
                let pairs: Vec<(&str, &str)> = publish
                    .properties
                    .user_properties
                    .iter()
                    .map(|u| (u.name.as_str(), u.value.as_str()))
                    .collect();
                eq("user properties", &pairs, &vec![("k", "2"), ("k", "1")])
            },
        ),
        pass(
            "PUBLISH Subscription Identifier twice accepted, §3.3.2.3.8",
            V5,
            "30 08 00 01 61 04 0b 01 0b 02",
            |p| {
                let publish = variant!(p, Packet::Publish);
                let ids: Vec<u32> = publish
                    .properties
                    .subscription_identifiers
                    .iter()
                    .map(|id| id.get())
                    .collect();
                eq("subscription ids", &ids, &vec![1, 2])
            },
        ),
        // Not valid for the packet: Malformed Packet.
        fail(
            "Topic Alias in CONNECT, §2.2.2.2",
            First,
            "10 10 00 04 4d 51 54 54 05 02 00 3c 03 23 00 01 00 00",
            not_allowed(P::TopicAlias, T::Connect),
            MALFORMED,
        ),
        fail(
            "Assigned Client Identifier in CONNECT, §2.2.2.2",
            First,
            "10 11 00 04 4d 51 54 54 05 02 00 3c 04 12 00 01 78 00 00",
            not_allowed(P::AssignedClientIdentifier, T::Connect),
            MALFORMED,
        ),
        fail(
            "Will Delay Interval in PUBLISH, §2.2.2.2",
            V5,
            "30 09 00 01 61 05 18 00 00 00 05",
            not_allowed(P::WillDelayInterval, T::Publish),
            MALFORMED,
        ),
        fail(
            "Reason String in PUBLISH, §2.2.2.2",
            V5,
            "30 08 00 01 61 04 1f 00 01 78",
            not_allowed(P::ReasonString, T::Publish),
            MALFORMED,
        ),
        fail(
            "Session Expiry Interval in Will Properties, §2.2.2.2",
            First,
            "10 18 00 04 4d 51 54 54 05 06 00 3c 00 00 00 05 11 00 00 00 05 00 01 74 00 00",
            not_allowed(P::SessionExpiryInterval, T::Connect),
            MALFORMED,
        ),
        fail(
            "Topic Alias in Will Properties, §2.2.2.2",
            First,
            "10 16 00 04 4d 51 54 54 05 06 00 3c 00 00 00 03 23 00 01 00 01 74 00 00",
            not_allowed(P::TopicAlias, T::Connect),
            MALFORMED,
        ),
        fail(
            "Subscription Identifier in UNSUBSCRIBE, §2.2.2.2",
            V5,
            "a2 08 00 01 02 0b 01 00 01 61",
            not_allowed(P::SubscriptionIdentifier, T::Unsubscribe),
            MALFORMED,
        ),
        fail(
            "Topic Alias in SUBSCRIBE, §2.2.2.2",
            V5,
            "82 0a 00 01 03 23 00 01 00 01 61 00",
            not_allowed(P::TopicAlias, T::Subscribe),
            MALFORMED,
        ),
        fail(
            "Content Type in PUBACK, §2.2.2.2",
            V5,
            "40 08 00 01 00 04 03 00 01 78",
            not_allowed(P::ContentType, T::PubAck),
            MALFORMED,
        ),
        fail(
            "Receive Maximum in DISCONNECT, §2.2.2.2",
            V5,
            "e0 05 00 03 21 00 0a",
            not_allowed(P::ReceiveMaximum, T::Disconnect),
            MALFORMED,
        ),
        fail(
            "Session Expiry Interval in AUTH, §2.2.2.2",
            V5,
            "f0 07 18 05 11 00 00 00 01",
            not_allowed(P::SessionExpiryInterval, T::Auth),
            MALFORMED,
        ),
        fail(
            "Request Problem Information in CONNACK, §2.2.2.2",
            V5,
            "20 05 00 00 02 17 01",
            not_allowed(P::RequestProblemInformation, T::ConnAck),
            MALFORMED,
        ),
        // Identifiers MQTT 5.0 does not define: Malformed Packet.
        fail(
            "unknown property identifier 0x00, §2.2.2.2",
            V5,
            "30 06 00 01 61 02 00 00",
            E::UnknownProperty(0x00),
            MALFORMED,
        ),
        fail(
            "unknown property identifier 0x04, §2.2.2.2",
            V5,
            "30 06 00 01 61 02 04 00",
            E::UnknownProperty(0x04),
            MALFORMED,
        ),
        fail(
            "unknown property identifier 0x14, §2.2.2.2",
            V5,
            "30 06 00 01 61 02 14 00",
            E::UnknownProperty(0x14),
            MALFORMED,
        ),
        fail(
            "unknown property identifier 0x2B, §2.2.2.2",
            V5,
            "20 05 00 00 02 2b 00",
            E::UnknownProperty(0x2B),
            MALFORMED,
        ),
        fail(
            "unknown two-byte property identifier 128, §2.2.2.2",
            V5,
            "30 07 00 01 61 03 80 01 00",
            E::UnknownProperty(128),
            MALFORMED,
        ),
        // Values outside their range: Protocol Error.
        fail(
            "Payload Format Indicator 2, §3.3.2.3.2",
            V5,
            "30 06 00 01 61 02 01 02",
            bad_value(P::PayloadFormatIndicator, 2),
            PROTOCOL_ERROR,
        ),
        fail(
            "Will Payload Format Indicator 2, §3.1.3.2.3",
            First,
            "10 15 00 04 4d 51 54 54 05 06 00 3c 00 00 00 02 01 02 00 01 74 00 00",
            bad_value(P::PayloadFormatIndicator, 2),
            PROTOCOL_ERROR,
        ),
        fail(
            "Request Problem Information 2, §3.1.2.11.7",
            First,
            "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 17 02 00 00",
            bad_value(P::RequestProblemInformation, 2),
            PROTOCOL_ERROR,
        ),
        fail(
            "Request Response Information 2, §3.1.2.11.6",
            First,
            "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 19 02 00 00",
            bad_value(P::RequestResponseInformation, 2),
            PROTOCOL_ERROR,
        ),
        fail(
            "Maximum QoS 2, §3.2.2.3.4",
            V5,
            "20 05 00 00 02 24 02",
            bad_value(P::MaximumQoS, 2),
            PROTOCOL_ERROR,
        ),
        fail(
            "Retain Available 2, §3.2.2.3.5",
            V5,
            "20 05 00 00 02 25 02",
            bad_value(P::RetainAvailable, 2),
            PROTOCOL_ERROR,
        ),
        fail(
            "Wildcard Subscription Available 2, §3.2.2.3.11",
            V5,
            "20 05 00 00 02 28 02",
            bad_value(P::WildcardSubscriptionAvailable, 2),
            PROTOCOL_ERROR,
        ),
        fail(
            "Subscription Identifiers Available 2, §3.2.2.3.12",
            V5,
            "20 05 00 00 02 29 02",
            bad_value(P::SubscriptionIdentifierAvailable, 2),
            PROTOCOL_ERROR,
        ),
        fail(
            "Shared Subscription Available 255, §3.2.2.3.13",
            V5,
            "20 05 00 00 02 2a ff",
            bad_value(P::SharedSubscriptionAvailable, 255),
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNECT Receive Maximum 0, §3.1.2.11.3",
            First,
            "10 10 00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 00",
            bad_value(P::ReceiveMaximum, 0),
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNACK Receive Maximum 0, §3.2.2.3.3",
            V5,
            "20 06 00 00 03 21 00 00",
            bad_value(P::ReceiveMaximum, 0),
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNECT Maximum Packet Size 0, §3.1.2.11.4",
            First,
            "10 12 00 04 4d 51 54 54 05 02 00 3c 05 27 00 00 00 00 00 00",
            bad_value(P::MaximumPacketSize, 0),
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNACK Maximum Packet Size 0, §3.2.2.3.6",
            V5,
            "20 08 00 00 05 27 00 00 00 00",
            bad_value(P::MaximumPacketSize, 0),
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE Subscription Identifier 0, §3.8.2.1.2",
            V5,
            "82 09 00 01 02 0b 00 00 01 61 00",
            bad_value(P::SubscriptionIdentifier, 0),
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBLISH Subscription Identifier 0, §3.3.2.3.8",
            V5,
            "30 06 00 01 61 02 0b 00",
            bad_value(P::SubscriptionIdentifier, 0),
            PROTOCOL_ERROR,
        ),
        fail(
            "Response Topic with a wildcard [MQTT-3.3.2-14] (5.0)",
            V5,
            "30 0a 00 01 61 06 08 00 03 61 2f 23",
            E::String(S::WildcardInTopicName),
            TOPIC_NAME_INVALID,
        ),
        // Lengths that do not add up: Malformed Packet.
        fail(
            "PUBLISH Property Length past the end of the packet, §2.2.2.1",
            V5,
            "30 06 00 01 61 05 02 00",
            E::Truncated("properties"),
            MALFORMED,
        ),
        fail(
            "CONNECT Property Length past the end of the packet, §2.2.2.1",
            First,
            "10 0d 00 04 4d 51 54 54 05 02 00 3c 7f 00 00",
            E::Truncated("properties"),
            MALFORMED,
        ),
        fail(
            "SUBACK Property Length past the end of the packet, §2.2.2.1",
            V5,
            "90 04 00 01 05 00",
            E::Truncated("properties"),
            MALFORMED,
        ),
        fail(
            "property value past the Property Length, §2.2.2.1",
            V5,
            "30 08 00 01 61 02 02 00 00 00",
            E::Truncated("property value"),
            MALFORMED,
        ),
        // Authentication Data needs an Authentication Method: Protocol Error.
        fail(
            "CONNECT Authentication Data without Method, §3.1.2.11.10",
            First,
            "10 11 00 04 4d 51 54 54 05 02 00 3c 04 16 00 01 78 00 00",
            E::AuthDataWithoutMethod,
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNACK Authentication Data without Method, §3.2.2.3.18",
            V5,
            "20 07 00 00 04 16 00 01 78",
            E::AuthDataWithoutMethod,
            PROTOCOL_ERROR,
        ),
        fail(
            "AUTH Authentication Data without Method, §3.15.2.2.3",
            V5,
            "f0 06 00 04 16 00 01 78",
            E::AuthDataWithoutMethod,
            PROTOCOL_ERROR,
        ),
        refuse(
            "AUTH Continue without Authentication Method, §3.15.2.2.2 [MQTT-4.12.0-5] (5.0)",
            V5,
            "f0 02 18 00",
            PROTOCOL_ERROR,
        ),
        refuse(
            "AUTH Re-authenticate without Authentication Method, §3.15.2.2.2 [MQTT-4.12.1-1] (5.0)",
            V5,
            "f0 02 19 00",
            PROTOCOL_ERROR,
        ),
        pass(
            "CONNECT Authentication Method and Data accepted, §3.1.2.11.9",
            First,
            "10 15 00 04 4d 51 54 54 05 02 00 3c 08 15 00 01 6d 16 00 01 78 00 00",
            |p| {
                let connect = variant!(p, Packet::Connect);
                let method = connect.properties.authentication_method.as_ref();
                eq("method", &method.map(|m| m.as_str()), &Some("m"))?;
                let data = connect.properties.authentication_data.as_deref();
                eq("data", &data, &Some(b"x".as_slice()))
            },
        ),
    ]);
}

#[test]
fn connect_flags_mqtt_3_1_2_3_and_3_1_2_11_to_13() {
    use On::First;
    run(&[
        fail(
            "CONNECT reserved flag set [MQTT-3.1.2-3] (3.1.1)",
            First,
            "10 0c 00 04 4d 51 54 54 04 03 00 3c 00 00",
            E::ConnectReservedFlag,
            MALFORMED,
        ),
        fail(
            "CONNECT reserved flag set [MQTT-3.1.2-3] (5.0)",
            First,
            "10 0d 00 04 4d 51 54 54 05 03 00 3c 00 00 00",
            E::ConnectReservedFlag,
            MALFORMED,
        ),
        fail(
            "will QoS 1 without will flag [MQTT-3.1.2-11] (3.1.1) [MQTT-3.1.2-13] (3.1.1)",
            First,
            "10 0c 00 04 4d 51 54 54 04 0a 00 3c 00 00",
            E::WillFlagsWithoutWill,
            MALFORMED,
        ),
        fail(
            "will QoS 2 without will flag [MQTT-3.1.2-11] (3.1.1) [MQTT-3.1.2-13] (3.1.1)",
            First,
            "10 0c 00 04 4d 51 54 54 04 12 00 3c 00 00",
            E::WillFlagsWithoutWill,
            MALFORMED,
        ),
        fail(
            "will retain without will flag [MQTT-3.1.2-11] (3.1.1) [MQTT-3.1.2-15] (3.1.1)",
            First,
            "10 0c 00 04 4d 51 54 54 04 22 00 3c 00 00",
            E::WillFlagsWithoutWill,
            MALFORMED,
        ),
        fail(
            "will QoS 1 without will flag [MQTT-3.1.2-11] (5.0)",
            First,
            "10 0d 00 04 4d 51 54 54 05 0a 00 3c 00 00 00",
            E::WillFlagsWithoutWill,
            MALFORMED,
        ),
        fail(
            "will retain without will flag [MQTT-3.1.2-13] (5.0)",
            First,
            "10 0d 00 04 4d 51 54 54 05 22 00 3c 00 00 00",
            E::WillFlagsWithoutWill,
            MALFORMED,
        ),
        fail(
            "will QoS 3 [MQTT-3.1.2-14] (3.1.1)",
            First,
            "10 11 00 04 4d 51 54 54 04 1e 00 3c 00 00 00 01 74 00 00",
            E::InvalidQoS,
            MALFORMED,
        ),
        fail(
            "will QoS 3 [MQTT-3.1.2-12] (5.0) §3.1.2.6",
            First,
            "10 13 00 04 4d 51 54 54 05 1e 00 3c 00 00 00 00 00 01 74 00 00",
            E::InvalidQoS,
            MALFORMED,
        ),
        fail(
            "password without user name [MQTT-3.1.2-22] (3.1.1)",
            First,
            "10 0f 00 04 4d 51 54 54 04 42 00 3c 00 00 00 01 70",
            E::PasswordWithoutUsername,
            MALFORMED,
        ),
        pass(
            "password without user name allowed in 5.0, §3.1.2.9",
            First,
            "10 10 00 04 4d 51 54 54 05 42 00 3c 00 00 00 00 01 70",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("user name", &connect.username, &None)?;
                eq(
                    "password",
                    &connect.password.as_deref(),
                    &Some(b"p".as_slice()),
                )
            },
        ),
        pass(
            "will QoS 2 with will retain accepted [MQTT-3.1.2-14] (3.1.1)",
            First,
            "10 11 00 04 4d 51 54 54 04 36 00 3c 00 00 00 01 74 00 00",
            |p| {
                let connect = variant!(p, Packet::Connect);
                let will = connect.will.as_ref().ok_or("no will")?;
                eq("will qos", &will.qos, &QoS::ExactlyOnce)?;
                eq("will retain", &will.retain, &true)?;
                eq("will topic", will.topic.as_str(), "t")
            },
        ),
        pass(
            "clean start 0 accepted",
            First,
            "10 0e 00 04 4d 51 54 54 05 00 00 3c 00 00 01 63",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("clean start", &connect.clean_start, &false)
            },
        ),
    ]);
}

#[test]
fn connect_protocol_name_and_level_mqtt_3_1_2_1_and_2() {
    use On::{First, V311, V5};
    run(&[
        fail(
            "protocol name MQTX [MQTT-3.1.2-1] (3.1.1) (5.0)",
            First,
            "10 0c 00 04 4d 51 54 58 04 02 00 3c 00 00",
            E::InvalidProtocolName,
            MALFORMED,
        ),
        fail(
            "protocol name mqtt in lower case [MQTT-3.1.2-1] (5.0)",
            First,
            "10 0d 00 04 6d 71 74 74 05 02 00 3c 00 00 00",
            E::InvalidProtocolName,
            MALFORMED,
        ),
        fail(
            "empty protocol name [MQTT-3.1.2-1] (5.0)",
            First,
            "10 08 00 00 04 02 00 3c 00 00",
            E::InvalidProtocolName,
            MALFORMED,
        ),
        fail(
            "protocol name MQTT with a trailing space [MQTT-3.1.2-1] (5.0)",
            First,
            "10 0d 00 05 4d 51 54 54 20 04 02 00 3c 00 00",
            E::InvalidProtocolName,
            MALFORMED,
        ),
        fail(
            "protocol level 3 under the name MQTT [MQTT-3.1.2-2] (3.1.1) (5.0)",
            First,
            "10 0c 00 04 4d 51 54 54 03 02 00 3c 00 00",
            E::UnsupportedProtocolVersion(3),
            UNSUPPORTED_VERSION,
        ),
        fail(
            "protocol level 6 [MQTT-3.1.2-2] (3.1.1) (5.0)",
            First,
            "10 0d 00 04 4d 51 54 54 06 02 00 3c 00 00 00",
            E::UnsupportedProtocolVersion(6),
            UNSUPPORTED_VERSION,
        ),
        fail(
            "protocol level 0 [MQTT-3.1.2-2] (3.1.1) (5.0)",
            First,
            "10 0c 00 04 4d 51 54 54 00 02 00 3c 00 00",
            E::UnsupportedProtocolVersion(0),
            UNSUPPORTED_VERSION,
        ),
        fail(
            "protocol level 4 under the 3.1 name MQIsdp [MQTT-3.1.2-2] (3.1.1)",
            First,
            "10 0f 00 06 4d 51 49 73 64 70 04 02 00 3c 00 01 63",
            E::UnsupportedProtocolVersion(4),
            UNSUPPORTED_VERSION,
        ),
        fail(
            "protocol name cut short [MQTT-3.1.2-1] (5.0)",
            First,
            "10 03 00 04 4d",
            E::Truncated("protocol name"),
            MALFORMED,
        ),
        fail(
            "3.1 CONNECT without its will payload, as in 3.1.1",
            First,
            "10 12 00 06 4d 51 49 73 64 70 03 06 00 3c 00 01 63 00 01 77",
            E::Truncated("will payload"),
            MALFORMED,
        ),
        pass(
            "3.1 CONNECT with will QoS 1 retained, user name and password, as in 3.1.1",
            First,
            "10 1d 00 06 4d 51 49 73 64 70 03 ee 00 0a 00 01 63 00 01 77 00 03 62 79 65 \
             00 01 75 00 01 70",
            |p| {
                let connect = variant!(p, Packet::Connect);
                let will = connect.will.as_ref().ok_or("no will")?;
                eq("protocol", &connect.protocol, &ProtocolVersion::V3_1)?;
                eq("clean start", &connect.clean_start, &true)?;
                eq("keep alive", &connect.keep_alive, &10)?;
                eq("client id", connect.client_id.as_str(), "c")?;
                eq("will topic", will.topic.as_str(), "w")?;
                eq("will payload", &will.payload[..], b"bye".as_slice())?;
                eq("will qos", &will.qos, &QoS::AtLeastOnce)?;
                eq("will retain", &will.retain, &true)?;
                eq(
                    "user name",
                    &connect.username.as_ref().map(|u| u.as_str()),
                    &Some("u"),
                )?;
                eq(
                    "password",
                    &connect.password.as_deref(),
                    &Some(b"p".as_slice()),
                )
            },
        ),
        pass(
            "3.1 CONNECT (MQIsdp, level 3) accepted, 3.1 §3.1",
            First,
            "10 0f 00 06 4d 51 49 73 64 70 03 02 00 3c 00 01 63",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("protocol", &connect.protocol, &ProtocolVersion::V3_1)?;
                eq("client id", connect.client_id.as_str(), "c")
            },
        ),
        pass(
            "3.1.1 CONNECT (MQTT, level 4) accepted",
            First,
            "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("protocol", &connect.protocol, &ProtocolVersion::V3_1_1)
            },
        ),
        pass(
            "5.0 CONNECT (MQTT, level 5) accepted [MQTT-3.1.2-1] (5.0)",
            First,
            "10 0d 00 04 4d 51 54 54 05 02 00 3c 00 00 00",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("protocol", &connect.protocol, &ProtocolVersion::V5)
            },
        ),
        pass(
            "a CONNECT decodes by its own level on a 3.1.1 connection",
            V311,
            "10 0d 00 04 4d 51 54 54 05 02 00 3c 00 00 00",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("protocol", &connect.protocol, &ProtocolVersion::V5)
            },
        ),
        pass(
            "a CONNECT decodes by its own level on a 5.0 connection",
            V5,
            "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("protocol", &connect.protocol, &ProtocolVersion::V3_1_1)
            },
        ),
    ]);
}

#[test]
fn connect_payload_mqtt_3_1_2_9_17_19_and_3_1_3_1() {
    use On::First;
    run(&[
        fail(
            "will topic a/# [MQTT-4.7.1-1] (3.1.1)",
            First,
            "10 13 00 04 4d 51 54 54 04 06 00 3c 00 00 00 03 61 2f 23 00 00",
            E::String(S::WildcardInTopicName),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "will topic + [MQTT-4.7.0-1] (5.0)",
            First,
            "10 13 00 04 4d 51 54 54 05 06 00 3c 00 00 00 00 00 01 2b 00 00",
            E::String(S::WildcardInTopicName),
            TOPIC_NAME_INVALID,
        ),
        fail(
            "empty will topic [MQTT-4.7.3-1] (3.1.1)",
            First,
            "10 10 00 04 4d 51 54 54 04 06 00 3c 00 00 00 00 00 00",
            E::String(S::EmptyTopic),
            MALFORMED,
        ),
        fail(
            "empty will topic [MQTT-4.7.3-1] (5.0)",
            First,
            "10 12 00 04 4d 51 54 54 05 06 00 3c 00 00 00 00 00 00 00 00",
            E::String(S::EmptyTopic),
            MALFORMED,
        ),
        fail(
            "byte after the client id [MQTT-3.1.3-1] (3.1.1)",
            First,
            "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 00 ff",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "two bytes after the client id [MQTT-3.1.3-1] (5.0)",
            First,
            "10 0f 00 04 4d 51 54 54 05 02 00 3c 00 00 00 ff ff",
            E::TrailingBytes(2),
            MALFORMED,
        ),
        fail(
            "byte after the password [MQTT-3.1.3-1] (3.1.1)",
            First,
            "10 13 00 04 4d 51 54 54 04 c2 00 3c 00 00 00 01 75 00 01 70 ff",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "will topic and payload without will flag [MQTT-3.1.2-11] (3.1.1)",
            First,
            "10 11 00 04 4d 51 54 54 04 02 00 3c 00 00 00 01 74 00 00",
            E::TrailingBytes(5),
            MALFORMED,
        ),
        fail(
            "user name without user name flag [MQTT-3.1.2-18] (3.1.1)",
            First,
            "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 00 00 01 75",
            E::TrailingBytes(3),
            MALFORMED,
        ),
        fail(
            "user name without user name flag [MQTT-3.1.2-16] (5.0)",
            First,
            "10 10 00 04 4d 51 54 54 05 02 00 3c 00 00 00 00 01 75",
            E::TrailingBytes(3),
            MALFORMED,
        ),
        fail(
            "password without password flag [MQTT-3.1.2-20] (3.1.1)",
            First,
            "10 12 00 04 4d 51 54 54 04 82 00 3c 00 00 00 01 75 00 01 70",
            E::TrailingBytes(3),
            MALFORMED,
        ),
        fail(
            "password without password flag [MQTT-3.1.2-18] (5.0)",
            First,
            "10 13 00 04 4d 51 54 54 05 82 00 3c 00 00 00 00 01 75 00 01 70",
            E::TrailingBytes(3),
            MALFORMED,
        ),
        fail(
            "client id missing [MQTT-3.1.3-3] (3.1.1)",
            First,
            "10 0a 00 04 4d 51 54 54 04 02 00 3c",
            E::Truncated("client identifier"),
            MALFORMED,
        ),
        fail(
            "client id longer than the packet [MQTT-3.1.3-3] (3.1.1)",
            First,
            "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 05 61 62",
            E::Truncated("client identifier"),
            MALFORMED,
        ),
        fail(
            "properties missing, §3.1.2.11",
            First,
            "10 0a 00 04 4d 51 54 54 05 02 00 3c",
            E::Truncated("property length"),
            MALFORMED,
        ),
        fail(
            "will topic missing [MQTT-3.1.2-9] (3.1.1)",
            First,
            "10 0c 00 04 4d 51 54 54 04 06 00 3c 00 00",
            E::Truncated("will topic"),
            MALFORMED,
        ),
        fail(
            "will payload missing [MQTT-3.1.2-9] (3.1.1)",
            First,
            "10 0f 00 04 4d 51 54 54 04 06 00 3c 00 00 00 01 74",
            E::Truncated("will payload"),
            MALFORMED,
        ),
        fail(
            "will properties missing [MQTT-3.1.2-9] (5.0)",
            First,
            "10 0d 00 04 4d 51 54 54 05 06 00 3c 00 00 00",
            E::Truncated("property length"),
            MALFORMED,
        ),
        fail(
            "will topic missing [MQTT-3.1.2-9] (5.0)",
            First,
            "10 0e 00 04 4d 51 54 54 05 06 00 3c 00 00 00 00",
            E::Truncated("will topic"),
            MALFORMED,
        ),
        fail(
            "will payload missing [MQTT-3.1.2-9] (5.0)",
            First,
            "10 11 00 04 4d 51 54 54 05 06 00 3c 00 00 00 00 00 01 74",
            E::Truncated("will payload"),
            MALFORMED,
        ),
        fail(
            "user name missing [MQTT-3.1.2-19] (3.1.1)",
            First,
            "10 0c 00 04 4d 51 54 54 04 82 00 3c 00 00",
            E::Truncated("user name"),
            MALFORMED,
        ),
        fail(
            "user name missing [MQTT-3.1.2-17] (5.0)",
            First,
            "10 0d 00 04 4d 51 54 54 05 82 00 3c 00 00 00",
            E::Truncated("user name"),
            MALFORMED,
        ),
        fail(
            "user name cut inside its length [MQTT-3.1.2-19] (3.1.1)",
            First,
            "10 0d 00 04 4d 51 54 54 04 82 00 3c 00 00 00",
            E::Truncated("user name"),
            MALFORMED,
        ),
        fail(
            "password missing [MQTT-3.1.2-21] (3.1.1)",
            First,
            "10 0f 00 04 4d 51 54 54 04 c2 00 3c 00 00 00 01 75",
            E::Truncated("password"),
            MALFORMED,
        ),
        fail(
            "password missing [MQTT-3.1.2-19] (5.0)",
            First,
            "10 0d 00 04 4d 51 54 54 05 42 00 3c 00 00 00",
            E::Truncated("password"),
            MALFORMED,
        ),
        pass(
            "empty client id accepted",
            First,
            "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("client id", connect.client_id.as_str(), "")
            },
        ),
        pass(
            "client id of the 23 characters every server allows [MQTT-3.1.3-5] (5.0)",
            First,
            "10 24 00 04 4d 51 54 54 05 02 00 3c 00 00 17 \
             30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 67 68 69 6a 41 42 43",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq(
                    "client id",
                    connect.client_id.as_str(),
                    "0123456789abcdefghijABC",
                )
            },
        ),
    ]);
}

#[test]
fn first_packet_is_connect_mqtt_3_1_0_1() {
    use On::First;
    let not_connect = |packet| E::ExpectedConnect(packet);
    run(&[
        fail(
            "PUBLISH first [MQTT-3.1.0-1] (3.1.1) (5.0)",
            First,
            "30 05 00 01 61 68 69",
            not_connect(T::Publish),
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBLISH first, refused from its fixed header alone [MQTT-3.1.0-1] (3.1.1) (5.0)",
            First,
            "30 10",
            not_connect(T::Publish),
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE first [MQTT-3.1.0-1] (3.1.1) (5.0)",
            First,
            "82 06 00 01 00 01 61 00",
            not_connect(T::Subscribe),
            PROTOCOL_ERROR,
        ),
        fail(
            "PINGREQ first [MQTT-3.1.0-1] (3.1.1) (5.0)",
            First,
            "c0 00",
            not_connect(T::PingReq),
            PROTOCOL_ERROR,
        ),
        fail(
            "DISCONNECT first [MQTT-3.1.0-1] (3.1.1) (5.0)",
            First,
            "e0 00",
            not_connect(T::Disconnect),
            PROTOCOL_ERROR,
        ),
        fail(
            "AUTH first [MQTT-3.1.0-1] (3.1.1) (5.0)",
            First,
            "f0 00",
            not_connect(T::Auth),
            PROTOCOL_ERROR,
        ),
        fail(
            "CONNACK first [MQTT-3.1.0-1] (3.1.1) (5.0)",
            First,
            "20 02 00 00",
            not_connect(T::ConnAck),
            PROTOCOL_ERROR,
        ),
        fail(
            "PUBACK first [MQTT-3.1.0-1] (3.1.1) (5.0)",
            First,
            "40 02 00 01",
            not_connect(T::PubAck),
            PROTOCOL_ERROR,
        ),
        pass(
            "CONNECT first accepted [MQTT-3.1.0-1] (3.1.1)",
            First,
            "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00",
            |p| eq("packet type", &p.packet_type(), &T::Connect),
        ),
        wait(
            "CONNECT first waits for its body [MQTT-3.1.0-1] (3.1.1) (5.0)",
            First,
            "10 0c 00 04",
            10,
        ),
    ]);
}

#[test]
fn subscribe_and_unsubscribe_payload_mqtt_3_8_3_and_3_10_3_2() {
    use On::{V311, V5};
    run(&[
        fail(
            "SUBSCRIBE without topic filters [MQTT-3.8.3-3] (3.1.1)",
            V311,
            "82 02 00 01",
            E::NoTopicFilters(T::Subscribe),
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE without topic filters [MQTT-3.8.3-2] (5.0)",
            V5,
            "82 03 00 01 00",
            E::NoTopicFilters(T::Subscribe),
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE options bit 6 set [MQTT-3.8.3-5] (5.0)",
            V5,
            "82 07 00 01 00 00 01 61 40",
            E::SubscriptionOptionsReserved,
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE options bit 7 set [MQTT-3.8.3-5] (5.0)",
            V5,
            "82 07 00 01 00 00 01 61 80",
            E::SubscriptionOptionsReserved,
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE options bits 6 and 7 set with QoS 1 [MQTT-3.8.3-5] (5.0)",
            V5,
            "82 07 00 01 00 00 01 61 c1",
            E::SubscriptionOptionsReserved,
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE options bit 2 set [MQTT-3.8.3-4] (3.1.1)",
            V311,
            "82 06 00 01 00 01 61 04",
            E::SubscriptionOptionsReserved,
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE options bit 3 set [MQTT-3.8.3-4] (3.1.1)",
            V311,
            "82 06 00 01 00 01 61 08",
            E::SubscriptionOptionsReserved,
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE options bit 4 set [MQTT-3.8.3-4] (3.1.1)",
            V311,
            "82 06 00 01 00 01 61 10",
            E::SubscriptionOptionsReserved,
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE options bit 7 set [MQTT-3.8.3-4] (3.1.1)",
            V311,
            "82 06 00 01 00 01 61 80",
            E::SubscriptionOptionsReserved,
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE QoS 3 [MQTT-3.8.3-4] (3.1.1)",
            V311,
            "82 06 00 01 00 01 61 03",
            E::InvalidQoS,
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE QoS 3 in the second filter [MQTT-3.8.3-4] (3.1.1)",
            V311,
            "82 0a 00 01 00 01 61 01 00 01 62 03",
            E::InvalidQoS,
            MALFORMED,
        ),
        refuse(
            "SUBSCRIBE Maximum QoS 3 is a Protocol Error, §3.8.3.1",
            V5,
            "82 07 00 01 00 00 01 61 03",
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE Retain Handling 3, §3.8.3.1",
            V5,
            "82 07 00 01 00 00 01 61 30",
            E::InvalidRetainHandling,
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE No Local on a shared subscription [MQTT-3.8.3-4] (5.0)",
            V5,
            "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 61 04",
            E::NoLocalOnSharedSubscription,
            PROTOCOL_ERROR,
        ),
        fail(
            "SUBSCRIBE filter without its options byte [MQTT-3.8.3-3] (3.1.1)",
            V311,
            "82 05 00 01 00 01 61",
            E::Truncated("subscription options"),
            MALFORMED,
        ),
        fail(
            "SUBSCRIBE filter longer than the packet [MQTT-3.8.3-1] (3.1.1)",
            V311,
            "82 05 00 01 00 05 61",
            E::Truncated("topic filter"),
            MALFORMED,
        ),
        fail(
            "UNSUBSCRIBE without topic filters [MQTT-3.10.3-2] (3.1.1)",
            V311,
            "a2 02 00 01",
            E::NoTopicFilters(T::Unsubscribe),
            PROTOCOL_ERROR,
        ),
        fail(
            "UNSUBSCRIBE without topic filters [MQTT-3.10.3-2] (5.0)",
            V5,
            "a2 03 00 01 00",
            E::NoTopicFilters(T::Unsubscribe),
            PROTOCOL_ERROR,
        ),
        pass(
            "SUBSCRIBE options 0x2E: QoS 2, No Local, Retain As Published, Retain Handling 2",
            V5,
            "82 07 00 01 00 00 01 61 2e",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let options = subscribe.subscriptions.first().ok_or("no filter")?.options;
                eq("qos", &options.qos, &QoS::ExactlyOnce)?;
                eq("no local", &options.no_local, &true)?;
                eq("retain as published", &options.retain_as_published, &true)?;
                eq(
                    "retain handling",
                    &options.retain_handling,
                    &RetainHandling::DoNotSend,
                )
            },
        ),
        pass(
            "SUBSCRIBE shared subscription without No Local accepted [MQTT-3.8.3-4] (5.0)",
            V5,
            "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 61 11",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let s = subscribe.subscriptions.first().ok_or("no filter")?;
                eq("shared", &s.filter.shared(), &Some(("g", "a")))?;
                eq("qos", &s.options.qos, &QoS::AtLeastOnce)?;
                eq(
                    "retain handling",
                    &s.options.retain_handling,
                    &RetainHandling::SendIfNew,
                )
            },
        ),
        pass(
            "SUBSCRIBE with three filters, QoS 0, 1, 2 [MQTT-3.8.3-3] (3.1.1)",
            V311,
            "82 0e 00 05 00 01 61 00 00 01 62 01 00 01 63 02",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let got: Vec<(&str, QoS)> = subscribe
                    .subscriptions
                    .iter()
                    .map(|s| (s.filter.as_str(), s.options.qos))
                    .collect();
                eq("packet id", &subscribe.packet_id.get(), &5)?;
                eq(
                    "subscriptions",
                    &got,
                    &vec![
                        ("a", QoS::AtMostOnce),
                        ("b", QoS::AtLeastOnce),
                        ("c", QoS::ExactlyOnce),
                    ],
                )
            },
        ),
        pass(
            "SUBSCRIBE with Subscription Identifier 127, §3.8.2.1.2",
            V5,
            "82 09 00 01 02 0b 7f 00 01 61 00",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let id = subscribe
                    .properties
                    .subscription_identifier
                    .map(|id| id.get());
                eq("subscription id", &id, &Some(127))
            },
        ),
        pass(
            "UNSUBSCRIBE with two filters [MQTT-3.10.3-1] (5.0)",
            V5,
            "a2 0b 00 07 00 00 01 61 00 03 62 2f 23",
            |p| {
                let unsubscribe = variant!(p, Packet::Unsubscribe);
                let filters: Vec<&str> = unsubscribe.filters.iter().map(|f| f.as_str()).collect();
                eq("packet id", &unsubscribe.packet_id.get(), &7)?;
                eq("filters", &filters, &vec!["a", "b/#"])
            },
        ),
    ]);
}

#[test]
fn topic_filters_mqtt_4_7_1_1_and_4_7_1_2() {
    use On::{V311, V5};
    let hash = E::String(S::MisplacedMultiLevelWildcard);
    let plus = E::String(S::MisplacedSingleLevelWildcard);
    run(&[
        fail(
            "filter a# [MQTT-4.7.1-2] (3.1.1)",
            V311,
            "82 07 00 01 00 02 61 23 00",
            hash.clone(),
            MALFORMED,
        ),
        fail(
            "filter a# [MQTT-4.7.1-1] (5.0)",
            V5,
            "82 08 00 01 00 00 02 61 23 00",
            hash.clone(),
            MALFORMED,
        ),
        fail(
            "filter a/#/b [MQTT-4.7.1-2] (3.1.1)",
            V311,
            "82 0a 00 01 00 05 61 2f 23 2f 62 00",
            hash.clone(),
            MALFORMED,
        ),
        fail(
            "filter a/#/b [MQTT-4.7.1-1] (5.0)",
            V5,
            "82 0b 00 01 00 00 05 61 2f 23 2f 62 00",
            hash.clone(),
            MALFORMED,
        ),
        fail(
            "filter #/ [MQTT-4.7.1-2] (3.1.1)",
            V311,
            "82 07 00 01 00 02 23 2f 00",
            hash.clone(),
            MALFORMED,
        ),
        fail(
            "filter a/b# [MQTT-4.7.1-1] (5.0)",
            V5,
            "82 0a 00 01 00 00 04 61 2f 62 23 00",
            hash.clone(),
            MALFORMED,
        ),
        fail(
            "filter a+ [MQTT-4.7.1-3] (3.1.1)",
            V311,
            "82 07 00 01 00 02 61 2b 00",
            plus.clone(),
            MALFORMED,
        ),
        fail(
            "filter a+ [MQTT-4.7.1-2] (5.0)",
            V5,
            "82 08 00 01 00 00 02 61 2b 00",
            plus.clone(),
            MALFORMED,
        ),
        fail(
            "filter +a/b [MQTT-4.7.1-3] (3.1.1)",
            V311,
            "82 09 00 01 00 04 2b 61 2f 62 00",
            plus.clone(),
            MALFORMED,
        ),
        fail(
            "filter a/+b/c [MQTT-4.7.1-2] (5.0)",
            V5,
            "82 0c 00 01 00 00 06 61 2f 2b 62 2f 63 00",
            plus.clone(),
            MALFORMED,
        ),
        fail(
            "filter ++ [MQTT-4.7.1-3] (3.1.1)",
            V311,
            "82 07 00 01 00 02 2b 2b 00",
            plus.clone(),
            MALFORMED,
        ),
        fail(
            "empty filter [MQTT-4.7.3-1] (3.1.1)",
            V311,
            "82 05 00 01 00 00 00",
            E::String(S::EmptyTopic),
            MALFORMED,
        ),
        fail(
            "empty filter [MQTT-4.7.3-1] (5.0)",
            V5,
            "82 06 00 01 00 00 00 00",
            E::String(S::EmptyTopic),
            MALFORMED,
        ),
        fail(
            "UNSUBSCRIBE filter a# [MQTT-4.7.1-2] (3.1.1)",
            V311,
            "a2 06 00 01 00 02 61 23",
            hash.clone(),
            MALFORMED,
        ),
        fail(
            "UNSUBSCRIBE filter a+ [MQTT-4.7.1-2] (5.0)",
            V5,
            "a2 07 00 01 00 00 02 61 2b",
            plus.clone(),
            MALFORMED,
        ),
        fail(
            "UNSUBSCRIBE empty filter [MQTT-4.7.3-1] (3.1.1)",
            V311,
            "a2 04 00 01 00 00",
            E::String(S::EmptyTopic),
            MALFORMED,
        ),
        pass(
            "filters #, +, +/+/#, a//b, /+, $SYS/# accepted [MQTT-4.7.1-2] (3.1.1) [MQTT-4.7.1-3] (3.1.1)",
            V311,
            "82 27 00 01 00 01 23 00 00 01 2b 00 00 05 2b 2f 2b 2f 23 00 \
             00 04 61 2f 2f 62 00 00 02 2f 2b 00 00 06 24 53 59 53 2f 23 00",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let filters: Vec<&str> = subscribe
                    .subscriptions
                    .iter()
                    .map(|s| s.filter.as_str())
                    .collect();
                eq(
                    "filters",
                    &filters,
                    &vec!["#", "+", "+/+/#", "a//b", "/+", "$SYS/#"],
                )
            },
        ),
        pass(
            "filter sport/+/player1 accepted [MQTT-4.7.1-2] (5.0)",
            V5,
            "82 15 00 01 00 00 0f 73 70 6f 72 74 2f 2b 2f 70 6c 61 79 65 72 31 00",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let filter = &subscribe.subscriptions.first().ok_or("no filter")?.filter;
                eq("filter", filter.as_str(), "sport/+/player1")
            },
        ),
    ]);
}

#[test]
fn shared_subscriptions_mqtt_4_8_2_1_and_4_8_2_2() {
    use On::V5;
    let shared = E::String(S::InvalidSharedSubscription);
    run(&[
        fail(
            "$share/ without a share name [MQTT-4.8.2-1] (5.0)",
            V5,
            "82 0d 00 01 00 00 07 24 73 68 61 72 65 2f 00",
            shared.clone(),
            MALFORMED,
        ),
        fail(
            "$share//a with an empty share name [MQTT-4.8.2-1] (5.0)",
            V5,
            "82 0f 00 01 00 00 09 24 73 68 61 72 65 2f 2f 61 00",
            shared.clone(),
            MALFORMED,
        ),
        fail(
            "$share/g without / and a filter [MQTT-4.8.2-2] (5.0)",
            V5,
            "82 0e 00 01 00 00 08 24 73 68 61 72 65 2f 67 00",
            shared.clone(),
            MALFORMED,
        ),
        fail(
            "$share/g/ with an empty filter [MQTT-4.8.2-2] (5.0)",
            V5,
            "82 0f 00 01 00 00 09 24 73 68 61 72 65 2f 67 2f 00",
            shared.clone(),
            MALFORMED,
        ),
        fail(
            "$share/g+/a with + in the share name [MQTT-4.8.2-2] (5.0)",
            V5,
            "82 11 00 01 00 00 0b 24 73 68 61 72 65 2f 67 2b 2f 61 00",
            shared.clone(),
            MALFORMED,
        ),
        fail(
            "$share/#/a with # as the share name [MQTT-4.8.2-2] (5.0)",
            V5,
            "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 23 2f 61 00",
            shared.clone(),
            MALFORMED,
        ),
        fail(
            "$share/g/a# with a misplaced # in the filter [MQTT-4.8.2-2] (5.0) [MQTT-4.7.1-1] (5.0)",
            V5,
            "82 11 00 01 00 00 0b 24 73 68 61 72 65 2f 67 2f 61 23 00",
            E::String(S::MisplacedMultiLevelWildcard),
            MALFORMED,
        ),
        fail(
            "UNSUBSCRIBE $share/g [MQTT-4.8.2-2] (5.0)",
            V5,
            "a2 0d 00 01 00 00 08 24 73 68 61 72 65 2f 67",
            shared.clone(),
            MALFORMED,
        ),
        pass(
            "$share/g/a/+ accepted [MQTT-4.8.2-1] (5.0) [MQTT-4.8.2-2] (5.0)",
            V5,
            "82 12 00 01 00 00 0c 24 73 68 61 72 65 2f 67 2f 61 2f 2b 01",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let filter = &subscribe.subscriptions.first().ok_or("no filter")?.filter;
                eq("shared", &filter.shared(), &Some(("g", "a/+")))
            },
        ),
        pass(
            "$share/g/# accepted [MQTT-4.8.2-2] (5.0)",
            V5,
            "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 23 00",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let filter = &subscribe.subscriptions.first().ok_or("no filter")?.filter;
                eq("shared", &filter.shared(), &Some(("g", "#")))
            },
        ),
        pass(
            "$sharex/a is an ordinary filter [MQTT-4.8.2-1] (5.0)",
            V5,
            "82 0f 00 01 00 00 09 24 73 68 61 72 65 78 2f 61 00",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let filter = &subscribe.subscriptions.first().ok_or("no filter")?.filter;
                eq("shared", &filter.shared(), &None)
            },
        ),
    ]);
}

#[test]
fn reason_codes_mqtt_3_2_2_8_and_3_4_2_1() {
    use On::{V311, V5};
    let invalid = |packet, code| E::InvalidReasonCode { packet, code };
    run(&[
        fail(
            "PUBACK reason 0x03 is not a reason code [MQTT-3.4.2-1] (5.0)",
            V5,
            "40 03 00 01 03",
            invalid(T::PubAck, 0x03),
            MALFORMED,
        ),
        fail(
            "PUBACK reason 0x92 belongs to PUBREL/PUBCOMP [MQTT-3.4.2-1] (5.0)",
            V5,
            "40 03 00 01 92",
            invalid(T::PubAck, 0x92),
            MALFORMED,
        ),
        fail(
            "PUBACK reason 0x04 belongs to DISCONNECT [MQTT-3.4.2-1] (5.0)",
            V5,
            "40 04 00 01 04 00",
            invalid(T::PubAck, 0x04),
            MALFORMED,
        ),
        fail(
            "PUBREC reason 0x92 [MQTT-3.5.2-1] (5.0)",
            V5,
            "50 03 00 01 92",
            invalid(T::PubRec, 0x92),
            MALFORMED,
        ),
        fail(
            "PUBREL reason 0x10 [MQTT-3.6.2-1] (5.0)",
            V5,
            "62 03 00 01 10",
            invalid(T::PubRel, 0x10),
            MALFORMED,
        ),
        fail(
            "PUBCOMP reason 0x80 [MQTT-3.7.2-1] (5.0)",
            V5,
            "70 03 00 01 80",
            invalid(T::PubComp, 0x80),
            MALFORMED,
        ),
        fail(
            "SUBACK reason 0x03",
            V5,
            "90 04 00 01 00 03",
            invalid(T::SubAck, 0x03),
            MALFORMED,
        ),
        fail(
            "SUBACK reason 0x11 belongs to UNSUBACK",
            V5,
            "90 05 00 01 00 01 11",
            invalid(T::SubAck, 0x11),
            MALFORMED,
        ),
        fail(
            "UNSUBACK reason 0x01",
            V5,
            "b0 04 00 01 00 01",
            invalid(T::UnsubAck, 0x01),
            MALFORMED,
        ),
        fail(
            "DISCONNECT reason 0x18 belongs to AUTH [MQTT-3.14.2-1] (5.0)",
            V5,
            "e0 01 18",
            invalid(T::Disconnect, 0x18),
            MALFORMED,
        ),
        fail(
            "DISCONNECT reason 0x84 belongs to CONNACK [MQTT-3.14.2-1] (5.0)",
            V5,
            "e0 01 84",
            invalid(T::Disconnect, 0x84),
            MALFORMED,
        ),
        fail(
            "AUTH reason 0x04 [MQTT-3.15.2-1] (5.0)",
            V5,
            "f0 01 04",
            invalid(T::Auth, 0x04),
            MALFORMED,
        ),
        fail(
            "CONNACK reason 0x04",
            V5,
            "20 03 00 04 00",
            invalid(T::ConnAck, 0x04),
            MALFORMED,
        ),
        fail(
            "CONNACK reason 0x8B belongs to DISCONNECT",
            V5,
            "20 03 00 8b 00",
            invalid(T::ConnAck, 0x8B),
            MALFORMED,
        ),
        fail(
            "CONNACK return code 6 is reserved, 3.1.1 §3.2.2.3",
            V311,
            "20 02 00 06",
            invalid(T::ConnAck, 6),
            MALFORMED,
        ),
        fail(
            "SUBACK return code 0x03",
            V311,
            "90 03 00 01 03",
            invalid(T::SubAck, 0x03),
            MALFORMED,
        ),
        fail(
            "SUBACK return code 0x81",
            V311,
            "90 03 00 01 81",
            invalid(T::SubAck, 0x81),
            MALFORMED,
        ),
        fail(
            "CONNACK acknowledge flag bit 1 set",
            V5,
            "20 03 02 00 00",
            E::ConnAckReservedFlags,
            MALFORMED,
        ),
        fail(
            "CONNACK acknowledge flag bit 7 set",
            V5,
            "20 03 80 00 00",
            E::ConnAckReservedFlags,
            MALFORMED,
        ),
        fail(
            "CONNACK acknowledge flag bit 1 set, 3.1.1 §3.2.2.1",
            V311,
            "20 02 02 00",
            E::ConnAckReservedFlags,
            MALFORMED,
        ),
        pass(
            "PUBACK reason 0x10 No matching subscribers accepted [MQTT-3.4.2-1] (5.0)",
            V5,
            "40 03 00 01 10",
            |p| {
                let ack = variant!(p, Packet::PubAck);
                eq("reason", &ack.reason, &ReasonCode::NoMatchingSubscribers)
            },
        ),
        pass(
            "PUBREL reason 0x92 Packet Identifier not found accepted [MQTT-3.6.2-1] (5.0)",
            V5,
            "62 03 00 01 92",
            |p| {
                let ack = variant!(p, Packet::PubRel);
                eq("reason", &ack.reason, &ReasonCode::PacketIdentifierNotFound)
            },
        ),
        pass(
            "CONNACK reason 0x84 Unsupported Protocol Version accepted",
            V5,
            "20 03 00 84 00",
            |p| {
                let connack = variant!(p, Packet::ConnAck);
                eq(
                    "reason",
                    &connack.reason,
                    &ReasonCode::UnsupportedProtocolVersion,
                )
            },
        ),
        pass(
            "CONNACK session present, return code 0",
            V311,
            "20 02 01 00",
            |p| {
                let connack = variant!(p, Packet::ConnAck);
                eq("session present", &connack.session_present, &true)?;
                eq("reason", &connack.reason, &ReasonCode::Success)
            },
        ),
        pass(
            "CONNACK return code 5 Not authorized, 3.1.1 §3.2.2.3",
            V311,
            "20 02 00 05",
            |p| {
                let connack = variant!(p, Packet::ConnAck);
                eq("reason", &connack.reason, &ReasonCode::NotAuthorized)
            },
        ),
        pass(
            "SUBACK return code 0x80 Failure",
            V311,
            "90 04 00 01 02 80",
            |p| {
                let suback = variant!(p, Packet::SubAck);
                eq(
                    "reasons",
                    &suback.reasons,
                    &vec![ReasonCode::GrantedQoS2, ReasonCode::UnspecifiedError],
                )
            },
        ),
        pass(
            "SUBACK reason 0xA2 Wildcard Subscriptions not supported",
            V5,
            "90 05 00 01 00 01 a2",
            |p| {
                let suback = variant!(p, Packet::SubAck);
                eq(
                    "reasons",
                    &suback.reasons,
                    &vec![
                        ReasonCode::GrantedQoS1,
                        ReasonCode::WildcardSubscriptionsNotSupported,
                    ],
                )
            },
        ),
    ]);
}

#[test]
fn packets_end_where_remaining_length_says_mqtt_3_14_1_1() {
    use On::{Both, V311, V5};
    run(&[
        fail(
            "PINGREQ with remaining length 1, §3.12.1",
            Both,
            "c0 01 00",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "PINGRESP with remaining length 1, §3.13.1",
            Both,
            "d0 01 00",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "3.1.1 DISCONNECT with remaining length 1, 3.1.1 §3.14.1 [MQTT-3.14.1-1] (3.1.1)",
            V311,
            "e0 01 00",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "3.1.1 DISCONNECT with a v5 reason and property length, 3.1.1 §3.14.1 [MQTT-3.14.1-1] (3.1.1)",
            V311,
            "e0 02 04 00",
            E::TrailingBytes(2),
            MALFORMED,
        ),
        fail(
            "3.1.1 PUBACK with remaining length 3, 3.1.1 §3.4.1",
            V311,
            "40 03 00 01 00",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "3.1.1 UNSUBACK with remaining length 3, 3.1.1 §3.11.1",
            V311,
            "b0 03 00 01 00",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "3.1.1 CONNACK with remaining length 3, 3.1.1 §3.2.1",
            V311,
            "20 03 00 00 00",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "DISCONNECT with a byte after its properties, §3.14.1",
            V5,
            "e0 03 00 00 ff",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "PUBACK with a byte after its properties, §3.4.1",
            V5,
            "40 05 00 01 00 00 ff",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "AUTH with a byte after its properties, §3.15.1",
            V5,
            "f0 03 00 00 ff",
            E::TrailingBytes(1),
            MALFORMED,
        ),
        fail(
            "CONNACK without its property length, §3.2.2.3.1",
            V5,
            "20 02 00 00",
            E::Truncated("property length"),
            MALFORMED,
        ),
        pass(
            "DISCONNECT 0x04 with Property Length 0 accepted, §3.14.2.1",
            V5,
            "e0 02 04 00",
            |p| {
                let disconnect = variant!(p, Packet::Disconnect);
                eq(
                    "reason",
                    &disconnect.reason,
                    &ReasonCode::DisconnectWithWillMessage,
                )?;
                eq("properties empty", &disconnect.properties.is_empty(), &true)
            },
        ),
        pass(
            "DISCONNECT 0x04 without property length accepted, §3.14.2.2.1",
            V5,
            "e0 01 04",
            |p| {
                let disconnect = variant!(p, Packet::Disconnect);
                eq(
                    "reason",
                    &disconnect.reason,
                    &ReasonCode::DisconnectWithWillMessage,
                )
            },
        ),
        pass(
            "DISCONNECT 0x04 with Session Expiry and Reason String accepted, §3.14.2.2",
            V5,
            "e0 0c 04 0a 11 00 00 00 3c 1f 00 02 62 79",
            |p| {
                let disconnect = variant!(p, Packet::Disconnect);
                let props = &disconnect.properties;
                eq(
                    "reason",
                    &disconnect.reason,
                    &ReasonCode::DisconnectWithWillMessage,
                )?;
                eq("session expiry", &props.session_expiry_interval, &Some(60))?;
                eq(
                    "reason string",
                    &props.reason_string.as_ref().map(|s| s.as_str()),
                    &Some("by"),
                )
            },
        ),
        pass(
            "3.1.1 DISCONNECT with remaining length 0 accepted, 3.1.1 §3.14",
            V311,
            "e0 00",
            |p| {
                let disconnect = variant!(p, Packet::Disconnect);
                eq("reason", &disconnect.reason, &ReasonCode::Success)
            },
        ),
        pass(
            "PINGRESP with remaining length 0 accepted, §3.13",
            Both,
            "d0 00",
            |p| eq("packet", p, &Packet::PingResp),
        ),
    ]);
}

#[test]
fn valid_packets_decode_to_typed_values() {
    use On::{First, V311, V5};
    run(&[
        pass(
            "3.1.1 CONNECT, the shortest: empty client id [MQTT-3.1.3-3] (3.1.1)",
            First,
            "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("protocol", &connect.protocol, &ProtocolVersion::V3_1_1)?;
                eq("clean start", &connect.clean_start, &true)?;
                eq("keep alive", &connect.keep_alive, &60)?;
                eq("client id", connect.client_id.as_str(), "")?;
                eq("will", &connect.will.is_none(), &true)?;
                eq("user name", &connect.username, &None)?;
                eq("password", &connect.password, &None)?;
                eq("properties empty", &connect.properties.is_empty(), &true)
            },
        ),
        pass(
            "3.1.1 CONNECT with will QoS 1 retained, user name and password [MQTT-3.1.3-1] (3.1.1)",
            First,
            "10 1b 00 04 4d 51 54 54 04 ee 00 0a 00 01 63 00 01 77 00 03 62 79 65 \
             00 01 75 00 01 70",
            |p| {
                let connect = variant!(p, Packet::Connect);
                let will = connect.will.as_ref().ok_or("no will")?;
                eq("keep alive", &connect.keep_alive, &10)?;
                eq("client id", connect.client_id.as_str(), "c")?;
                eq("will topic", will.topic.as_str(), "w")?;
                eq("will payload", &will.payload[..], b"bye".as_slice())?;
                eq("will qos", &will.qos, &QoS::AtLeastOnce)?;
                eq("will retain", &will.retain, &true)?;
                eq(
                    "user name",
                    &connect.username.as_ref().map(|u| u.as_str()),
                    &Some("u"),
                )?;
                eq(
                    "password",
                    &connect.password.as_deref(),
                    &Some(b"p".as_slice()),
                )
            },
        ),
        pass(
            "5.0 CONNECT, the shortest: Property Length 0 [MQTT-2.2.2-1] (5.0)",
            First,
            "10 0d 00 04 4d 51 54 54 05 02 00 3c 00 00 00",
            |p| {
                let connect = variant!(p, Packet::Connect);
                eq("protocol", &connect.protocol, &ProtocolVersion::V5)?;
                eq("client id", connect.client_id.as_str(), "")?;
                eq("properties empty", &connect.properties.is_empty(), &true)
            },
        ),
        pass(
            "5.0 CONNECT with properties, will properties, user name and password [MQTT-3.1.3-1] (5.0)",
            First,
            "10 30 00 04 4d 51 54 54 05 d6 00 1e \
             0d 11 00 00 00 78 21 00 0a 27 00 00 10 00 \
             00 01 63 \
             07 18 00 00 00 05 01 01 00 01 77 00 01 78 \
             00 01 75 00 02 70 71",
            |p| {
                let connect = variant!(p, Packet::Connect);
                let props = &connect.properties;
                let will = connect.will.as_ref().ok_or("no will")?;
                eq("keep alive", &connect.keep_alive, &30)?;
                eq("session expiry", &props.session_expiry_interval, &Some(120))?;
                eq(
                    "receive maximum",
                    &props.receive_maximum.map(|v| v.get()),
                    &Some(10),
                )?;
                eq(
                    "maximum packet size",
                    &props.maximum_packet_size.map(|v| v.get()),
                    &Some(4096),
                )?;
                eq("client id", connect.client_id.as_str(), "c")?;
                eq("will delay", &will.properties.will_delay_interval, &Some(5))?;
                eq(
                    "will payload format",
                    &will.properties.payload_format_indicator,
                    &Some(true),
                )?;
                eq("will qos", &will.qos, &QoS::ExactlyOnce)?;
                eq("will retain", &will.retain, &false)?;
                eq("will topic", will.topic.as_str(), "w")?;
                eq("will payload", &will.payload[..], b"x".as_slice())?;
                eq(
                    "user name",
                    &connect.username.as_ref().map(|u| u.as_str()),
                    &Some("u"),
                )?;
                eq(
                    "password",
                    &connect.password.as_deref(),
                    &Some(b"pq".as_slice()),
                )
            },
        ),
        pass(
            "3.1.1 PUBLISH QoS 1 [MQTT-3.3.2-1] (3.1.1)",
            V311,
            "32 07 00 01 61 00 0a 68 69",
            |p| {
                let publish = variant!(p, Packet::Publish);
                eq("dup", &publish.dup, &false)?;
                eq("qos", &publish.qos, &QoS::AtLeastOnce)?;
                eq("retain", &publish.retain, &false)?;
                eq("topic", publish.topic.as_str(), "a")?;
                eq(
                    "packet id",
                    &publish.packet_id.map(|id| id.get()),
                    &Some(10),
                )?;
                eq("payload", &publish.payload[..], b"hi".as_slice())
            },
        ),
        pass(
            "5.0 PUBLISH QoS 1 with properties [MQTT-3.3.2-1] (5.0)",
            V5,
            "32 25 00 03 61 2f 62 00 05 \
             1b 01 01 02 00 00 00 3c 03 00 01 74 09 00 02 01 02 \
             26 00 01 6b 00 01 76 08 00 01 72 \
             68 69",
            |p| {
                let publish = variant!(p, Packet::Publish);
                let props = &publish.properties;
                eq("topic", publish.topic.as_str(), "a/b")?;
                eq("packet id", &publish.packet_id.map(|id| id.get()), &Some(5))?;
                eq(
                    "payload format",
                    &props.payload_format_indicator,
                    &Some(true),
                )?;
                eq("message expiry", &props.message_expiry_interval, &Some(60))?;
                eq(
                    "content type",
                    &props.content_type.as_ref().map(|s| s.as_str()),
                    &Some("t"),
                )?;
                eq(
                    "correlation data",
                    &props.correlation_data.as_deref(),
                    &Some([1u8, 2].as_slice()),
                )?;
                let user: Vec<(&str, &str)> = props
                    .user_properties
                    .iter()
                    .map(|u| (u.name.as_str(), u.value.as_str()))
                    .collect();
                eq("user properties", &user, &vec![("k", "v")])?;
                eq(
                    "response topic",
                    &props.response_topic.as_ref().map(|t| t.as_str()),
                    &Some("r"),
                )?;
                eq("payload", &publish.payload[..], b"hi".as_slice())
            },
        ),
        pass(
            "3.1.1 PUBACK [MQTT-2.3.1-6] (3.1.1)",
            V311,
            "40 02 00 0a",
            |p| {
                let ack = variant!(p, Packet::PubAck);
                eq("packet id", &ack.packet_id.get(), &10)?;
                eq("reason", &ack.reason, &ReasonCode::Success)
            },
        ),
        pass(
            "5.0 PUBACK with remaining length 2 means Success, §3.4.2.1",
            V5,
            "40 02 00 0a",
            |p| {
                let ack = variant!(p, Packet::PubAck);
                eq("packet id", &ack.packet_id.get(), &10)?;
                eq("reason", &ack.reason, &ReasonCode::Success)
            },
        ),
        pass(
            "5.0 PUBREC 0x80 with a Reason String [MQTT-3.5.2-1] (5.0)",
            V5,
            "50 08 00 0a 80 04 1f 00 01 78",
            |p| {
                let ack = variant!(p, Packet::PubRec);
                eq("reason", &ack.reason, &ReasonCode::UnspecifiedError)?;
                eq(
                    "reason string",
                    &ack.properties.reason_string.as_ref().map(|s| s.as_str()),
                    &Some("x"),
                )
            },
        ),
        pass(
            "5.0 PUBCOMP with reason and Property Length 0 [MQTT-3.7.2-1] (5.0)",
            V5,
            "70 04 00 0b 00 00",
            |p| {
                let ack = variant!(p, Packet::PubComp);
                eq("packet id", &ack.packet_id.get(), &11)?;
                eq("reason", &ack.reason, &ReasonCode::Success)
            },
        ),
        pass(
            "3.1.1 SUBSCRIBE with two filters [MQTT-3.8.3-3] (3.1.1)",
            V311,
            "82 0a 00 02 00 01 61 01 00 01 23 02",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let got: Vec<(&str, QoS)> = subscribe
                    .subscriptions
                    .iter()
                    .map(|s| (s.filter.as_str(), s.options.qos))
                    .collect();
                eq("packet id", &subscribe.packet_id.get(), &2)?;
                eq(
                    "subscriptions",
                    &got,
                    &vec![("a", QoS::AtLeastOnce), ("#", QoS::ExactlyOnce)],
                )
            },
        ),
        pass(
            "5.0 SUBSCRIBE with a Subscription Identifier [MQTT-3.8.3-2] (5.0)",
            V5,
            "82 0d 00 02 02 0b 05 00 01 61 15 00 01 23 00",
            |p| {
                let subscribe = variant!(p, Packet::Subscribe);
                let id = subscribe
                    .properties
                    .subscription_identifier
                    .map(|id| id.get());
                let first = subscribe.subscriptions.first().ok_or("no filter")?;
                eq("subscription id", &id, &Some(5))?;
                eq("filters", &subscribe.subscriptions.len(), &2)?;
                eq("qos", &first.options.qos, &QoS::AtLeastOnce)?;
                eq("no local", &first.options.no_local, &true)?;
                eq(
                    "retain handling",
                    &first.options.retain_handling,
                    &RetainHandling::SendIfNew,
                )
            },
        ),
        pass(
            "3.1.1 SUBACK",
            V311,
            "90 03 00 02 01",
            |p| {
                let suback = variant!(p, Packet::SubAck);
                eq("packet id", &suback.packet_id.get(), &2)?;
                eq("reasons", &suback.reasons, &vec![ReasonCode::GrantedQoS1])
            },
        ),
        pass(
            "3.1.1 UNSUBSCRIBE [MQTT-3.10.3-2] (3.1.1)",
            V311,
            "a2 05 00 03 00 01 61",
            |p| {
                let unsubscribe = variant!(p, Packet::Unsubscribe);
                let filters: Vec<&str> = unsubscribe.filters.iter().map(|f| f.as_str()).collect();
                eq("packet id", &unsubscribe.packet_id.get(), &3)?;
                eq("filters", &filters, &vec!["a"])
            },
        ),
        pass(
            "3.1.1 UNSUBACK: packet id only, 3.1.1 §3.11",
            V311,
            "b0 02 00 03",
            |p| {
                let unsuback = variant!(p, Packet::UnsubAck);
                eq("packet id", &unsuback.packet_id.get(), &3)?;
                eq("reasons", &unsuback.reasons, &vec![])
            },
        ),
        pass(
            "5.0 UNSUBACK with two reason codes",
            V5,
            "b0 05 00 03 00 00 11",
            |p| {
                let unsuback = variant!(p, Packet::UnsubAck);
                eq(
                    "reasons",
                    &unsuback.reasons,
                    &vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
                )
            },
        ),
        pass(
            "3.1.1 CONNACK accepted, session present 0",
            V311,
            "20 02 00 00",
            |p| {
                let connack = variant!(p, Packet::ConnAck);
                eq("session present", &connack.session_present, &false)?;
                eq("reason", &connack.reason, &ReasonCode::Success)
            },
        ),
        pass(
            "5.0 CONNACK with properties",
            V5,
            "20 0b 01 00 08 24 01 22 00 0a 13 00 3c",
            |p| {
                let connack = variant!(p, Packet::ConnAck);
                let props = &connack.properties;
                eq("session present", &connack.session_present, &true)?;
                eq("reason", &connack.reason, &ReasonCode::Success)?;
                eq("maximum qos", &props.maximum_qos, &Some(QoS::AtLeastOnce))?;
                eq("topic alias maximum", &props.topic_alias_maximum, &Some(10))?;
                eq("server keep alive", &props.server_keep_alive, &Some(60))
            },
        ),
        pass("3.1.1 PINGREQ, §3.12", V311, "c0 00", |p| {
            eq("packet", p, &Packet::PingReq)
        }),
        pass("5.0 PINGREQ, §3.12", V5, "c0 00", |p| {
            eq("packet", p, &Packet::PingReq)
        }),
        pass(
            "5.0 DISCONNECT with remaining length 0 means Normal [MQTT-3.14.2-1] (5.0)",
            V5,
            "e0 00",
            |p| {
                let disconnect = variant!(p, Packet::Disconnect);
                eq(
                    "reason",
                    &disconnect.reason,
                    &ReasonCode::NORMAL_DISCONNECTION,
                )
            },
        ),
        pass(
            "5.0 AUTH with remaining length 0 means Success [MQTT-3.15.2-1] (5.0)",
            V5,
            "f0 00",
            |p| {
                let auth = variant!(p, Packet::Auth);
                eq("reason", &auth.reason, &ReasonCode::Success)?;
                eq("properties empty", &auth.properties.is_empty(), &true)
            },
        ),
        pass(
            "5.0 AUTH Continue with method and data [MQTT-4.12.0-5] (5.0)",
            V5,
            "f0 0c 18 0a 15 00 03 61 62 63 16 00 01 78",
            |p| {
                let auth = variant!(p, Packet::Auth);
                let props = &auth.properties;
                eq("reason", &auth.reason, &ReasonCode::ContinueAuthentication)?;
                eq(
                    "method",
                    &props.authentication_method.as_ref().map(|m| m.as_str()),
                    &Some("abc"),
                )?;
                eq(
                    "data",
                    &props.authentication_data.as_deref(),
                    &Some(b"x".as_slice()),
                )
            },
        ),
    ]);
}

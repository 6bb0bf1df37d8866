//! Checks shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every check panics on failure: a panic is what libFuzzer records as a crash, with the
//! input that caused it saved under `artifacts/<target>/`.
//!
//! The `handler` target's scripts and invariants are the test suite's own
//! (`tests/hostile/mod.rs`, included here by path), played against a broker running in
//! this process ([`in_process_broker`]).

#[path = "../../tests/hostile/mod.rs"]
pub mod hostile;

use bytes::{BufMut, BytesMut};
use ringmq::protocol::{
    decode, parse_fixed_header, DecodeError, Decoded, Frame, Packet, ProtocolVersion,
    MAX_PACKET_BYTES,
};

/// Every state a connection's decoder can be in: before CONNECT (`None`), then one of the
/// three protocol versions.
pub const CONNECTION_STATES: [Option<ProtocolVersion>; 4] = [
    None,
    Some(ProtocolVersion::V3_1),
    Some(ProtocolVersion::V3_1_1),
    Some(ProtocolVersion::V5),
];

/// What one call of [`decode`] did, after [`decode_checked`] verified the buffer contract.
// Mirrors `Decoded`, which is not boxed either; size does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A packet of `len` bytes was taken off the front of the buffer.
    Packet { packet: Packet, len: usize },
    /// At least `needed` more bytes are needed; the buffer is untouched.
    Incomplete { needed: usize },
    /// The bytes are not a valid packet; the buffer is untouched.
    Error(DecodeError),
}

/// Decodes one packet from the front of `buf` and checks what [`decode`] promises about the
/// buffer: a packet removes exactly the bytes its fixed header frames and leaves the rest
/// as it was; `Incomplete` and errors consume nothing.
pub fn decode_checked(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_bytes: usize,
) -> Step {
    let before = buf.to_vec();
    match decode(buf, version, max_packet_bytes) {
        Ok(Decoded::Packet(packet)) => {
            let len = before.len() - buf.len();
            assert!(len >= 2, "a packet of {len} bytes");
            assert_eq!(
                before.get(len..),
                Some(&buf[..]),
                "decode changed the bytes after the packet"
            );
            match parse_fixed_header(&before, max_packet_bytes) {
                Ok(Frame::Header(h)) => assert_eq!(
                    h.packet_len(),
                    len,
                    "consumed bytes differ from the framed length"
                ),
                other => panic!("decoded a packet whose fixed header parses as {other:?}"),
            }
            assert!(
                len <= max_packet_bytes,
                "packet over the size limit accepted"
            );
            Step::Packet { packet, len }
        }
        Ok(Decoded::Incomplete { needed }) => {
            assert!(needed > 0, "Incomplete with needed == 0");
            assert_eq!(
                &before[..],
                &buf[..],
                "Incomplete consumed or changed bytes"
            );
            Step::Incomplete { needed }
        }
        Err(e) => {
            assert_eq!(&before[..], &buf[..], "an error consumed or changed bytes");
            // Every error maps to a reason code and formats without panicking.
            let _ = e.reason_code();
            let _ = e.to_string();
            Step::Error(e)
        }
    }
}

/// One step of [`decode_session`], with the connection state it was decoded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStep {
    pub connection: Option<ProtocolVersion>,
    pub step: Step,
}

/// Decodes packets from the front of `buf` as a connection's read loop does, until the
/// bytes are incomplete or wrong, with the buffer contract checked at each step; returns
/// every step, the last one not a packet.
///
/// A connection that starts before its CONNECT (`initial == None`) adopts the CONNECT's
/// protocol when it is one of `adopt`, and stops at a CONNECT of another version. A
/// connection that starts in a version keeps it.
pub fn decode_session(
    buf: &mut BytesMut,
    initial: Option<ProtocolVersion>,
    adopt: &[ProtocolVersion],
    max_packet_bytes: usize,
) -> Vec<SessionStep> {
    let mut connection = initial;
    let mut steps = Vec::new();
    loop {
        let step = decode_checked(buf, connection, max_packet_bytes);
        let next = next_state(connection, &step, adopt);
        steps.push(SessionStep { connection, step });
        match next {
            Some(state) => connection = state,
            None => return steps,
        }
    }
}

/// The connection state after `step`, or `None` where the session stops decoding: at an
/// error, at `Incomplete`, or at a first CONNECT whose version is not in `adopt`.
pub fn next_state(
    connection: Option<ProtocolVersion>,
    step: &Step,
    adopt: &[ProtocolVersion],
) -> Option<Option<ProtocolVersion>> {
    match (step, connection) {
        (
            Step::Packet {
                packet: Packet::Connect(c),
                ..
            },
            None,
        ) => adopt.contains(&c.protocol).then_some(Some(c.protocol)),
        (Step::Packet { .. }, state) => Some(state),
        (Step::Incomplete { .. } | Step::Error(_), _) => None,
    }
}

/// The version a packet decoded on a connection in state `connection` is written back in:
/// a CONNECT in its own protocol, anything else in the connection's.
pub fn encode_version(packet: &Packet, connection: Option<ProtocolVersion>) -> ProtocolVersion {
    match (packet, connection) {
        (Packet::Connect(c), _) => c.protocol,
        (_, Some(v)) => v,
        (other, None) => panic!("{other:?} decoded before CONNECT"),
    }
}

/// A packet that decoded on a connection in state `connection` must encode for it.
pub fn assert_encodes(packet: &Packet, connection: Option<ProtocolVersion>) {
    let version = encode_version(packet, connection);
    if let Err(e) = encode_checked(packet, version) {
        panic!("decoded packet does not encode for {version}: {e}\n{packet:#?}");
    }
}

/// A packet that decoded on a connection in state `connection` must encode for that
/// connection; the bytes must decode to an equal packet, and encoding that one again must
/// give the same bytes.
pub fn assert_roundtrip(packet: &Packet, connection: Option<ProtocolVersion>) {
    let version = encode_version(packet, connection);
    let first = encode_checked(packet, version).unwrap_or_else(|e| {
        panic!("decoded packet does not encode for {version}: {e}\n{packet:#?}")
    });
    let again = decode_exactly(&first, connection).unwrap_or_else(|e| {
        panic!("re-encoded bytes {first:02x?} do not decode: {e}\n{packet:#?}")
    });
    assert_eq!(&again, packet, "decode(encode(p)) != p; bytes {first:02x?}");
    let second = encode_checked(&again, version).expect("an equal packet encodes");
    assert_eq!(first, second, "encoding is not stable");
}

/// What the broker does at its edge: a packet decoded from one peer, written for a peer of
/// any version. When the encoder accepts the packet for `target`, the bytes must decode on
/// a `target` connection and re-encode to the same bytes.
pub fn assert_translates(packet: &Packet, target: ProtocolVersion) {
    let connection = Some(target);
    let version = encode_version(packet, connection);
    let Ok(bytes) = encode_checked(packet, version) else {
        // Not every packet exists in every version (AUTH, alias-only PUBLISH in v3).
        return;
    };
    let again = decode_exactly(&bytes, connection).unwrap_or_else(|e| {
        panic!("{packet:#?}\nencoded for {target} as {bytes:02x?}, which does not decode: {e}")
    });
    let second = encode_checked(&again, version).expect("a decoded packet encodes");
    assert_eq!(bytes, second, "translation to {target} is not stable");
}

/// Encodes `packet` after some bytes already in the buffer, as a connection's write buffer
/// would hold, and checks the prefix survives and the length matches `encoded_len`.
pub fn encode_checked(
    packet: &Packet,
    version: ProtocolVersion,
) -> Result<Vec<u8>, ringmq::protocol::EncodeError> {
    const PREFIX: &[u8] = b"\xAA\x55prefix";
    let mut buf = BytesMut::new();
    buf.put_slice(PREFIX);
    let result = packet.encode(version, &mut buf);
    assert_eq!(
        buf.get(..PREFIX.len()),
        Some(PREFIX),
        "encode overwrote the buffer"
    );
    match result {
        Ok(()) => {
            let bytes = buf.split_off(PREFIX.len()).to_vec();
            assert_eq!(packet.encoded_len(version), Ok(bytes.len()));
            assert_eq!(packet.to_bytes(version).as_deref(), Ok(&bytes[..]));
            Ok(bytes)
        }
        Err(e) => {
            assert_eq!(buf.len(), PREFIX.len(), "a failed encode appended bytes");
            assert!(
                packet.encoded_len(version).is_err(),
                "encode failed ({e}) where encoded_len succeeded"
            );
            Err(e)
        }
    }
}

/// Decodes `bytes` as exactly one whole packet.
fn decode_exactly(bytes: &[u8], connection: Option<ProtocolVersion>) -> Result<Packet, String> {
    let mut buf = BytesMut::from(bytes);
    match decode_checked(&mut buf, connection, MAX_PACKET_BYTES) {
        Step::Packet { packet, .. } if buf.is_empty() => Ok(packet),
        Step::Packet { .. } => Err(format!("{} bytes left over", buf.len())),
        Step::Incomplete { needed } => Err(format!("incomplete, {needed} more bytes needed")),
        Step::Error(e) => Err(e.to_string()),
    }
}

/// The address of a broker started once in this process (two shards, the limits the
/// scripts are written for, a data directory under the system temp dir), for the `handler`
/// target. A panic on any of its threads is a crash too: libFuzzer's panic hook aborts the
/// process before a connection task's panic isolation could hide it, and its RSS limit
/// (`-rss_limit_mb`) bounds the broker's memory with the fuzzer's.
pub fn in_process_broker() -> std::net::SocketAddr {
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!("ringmq-fuzz-{}", std::process::id()));
        let text = format!(
            "[runtime]\ncores = [0, 1]\nplacement = \"unbound\"\n\n\
             [[listener]]\nbind = \"{addr}\"\n\n\
             [storage]\ndata_dir = \"{}\"\nfsync = \"never\"\nsegment_bytes = 4194304\n\n{}",
            dir.display(),
            hostile::LIMITS_TOML
        );
        let config = ringmq::config::Config::from_toml(&text, "fuzz broker").expect("config");
        config.validate().expect("valid config");
        let shutdown = ringmq::shard::Shutdown::default();
        std::thread::spawn(move || {
            if let Err(e) = ringmq::shard::run(config, shutdown) {
                panic!("the in-process broker stopped: {e}");
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "the in-process broker did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        addr
    })
}

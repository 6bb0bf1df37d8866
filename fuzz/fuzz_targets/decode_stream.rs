//! A connection's read loop: the input arrives in chunks, each appended to one `BytesMut`,
//! which is decoded until it is incomplete or wrong before the next chunk arrives.
//!
//! Input layout: byte 0 picks how many chunk-size bytes follow (low 3 bits: 1 to 8) and the
//! maximum packet size (bits 3 and 4); each chunk-size byte `b` is a chunk of `b + 1` bytes,
//! used in turn; the rest is the byte stream.
//!
//! For each connection state (before CONNECT, adopting the CONNECT's version, and each
//! version) it checks that:
//! - `Incomplete` and errors never consume or change the buffer, and a packet takes exactly
//!   the bytes its fixed header frames;
//! - `Incomplete { needed }` is a true lower bound: no packet decodes until that many more
//!   bytes have arrived (an error may show earlier);
//! - every decoded packet re-encodes, and round-trips;
//! - chunking changes nothing: the packets and the final outcome are those of decoding the
//!   whole stream at once.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq::protocol::{ProtocolVersion, MAX_PACKET_BYTES};
use ringmq_fuzz::{
    assert_roundtrip, decode_checked, decode_session, next_state, SessionStep, Step,
    CONNECTION_STATES,
};

/// Maximum packet sizes to decode under, picked by bits 3 and 4 of the first byte: the
/// protocol's limit, and limits a broker might configure, small enough for the fuzzer to
/// cross.
const MAX_SIZES: [usize; 4] = [MAX_PACKET_BYTES, MAX_PACKET_BYTES, 128, 16];

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let n_sizes = usize::from(control & 0x07) + 1;
    let max_packet_bytes = MAX_SIZES[usize::from((control >> 3) & 0x03)];
    let (sizes, stream) = rest.split_at(n_sizes.min(rest.len()));
    let sizes: Vec<usize> = if sizes.is_empty() {
        vec![1]
    } else {
        sizes.iter().map(|&b| usize::from(b) + 1).collect()
    };

    for initial in CONNECTION_STATES {
        let whole = decode_session(
            &mut BytesMut::from(stream),
            initial,
            &ProtocolVersion::ALL,
            max_packet_bytes,
        );
        let chunked = decode_chunked(stream, &sizes, initial, max_packet_bytes);
        assert_eq!(
            chunked, whole,
            "chunked decoding differs from decoding at once (state {initial:?})"
        );
    }
});

/// Feeds `stream` in chunks of `sizes` (cycled) into one buffer and decodes after each
/// chunk as far as the buffer goes; returns the packets and the final outcome, with the
/// state each was decoded in, as [`decode_session`] reports them.
fn decode_chunked(
    stream: &[u8],
    sizes: &[usize],
    initial: Option<ProtocolVersion>,
    max_packet_bytes: usize,
) -> Vec<SessionStep> {
    let mut buf = BytesMut::new();
    let mut connection = initial;
    let mut steps = Vec::new();
    // After `Incomplete { needed }`, the buffer length below which no packet may decode.
    let mut incomplete_until = 0;
    let mut rest = stream;
    let mut size = sizes.iter().cycle();
    loop {
        let buffered = buf.len();
        let step = decode_checked(&mut buf, connection, max_packet_bytes);
        if buffered < incomplete_until {
            // Errors may show before then: a bad first byte is bad whatever follows.
            assert!(
                !matches!(step, Step::Packet { .. }),
                "{step:?} with {buffered} bytes buffered, though an earlier Incomplete \
                 asked for {incomplete_until}"
            );
        }
        match &step {
            Step::Packet { packet, .. } => {
                incomplete_until = 0;
                assert_roundtrip(packet, connection);
            }
            Step::Incomplete { needed } => {
                incomplete_until = incomplete_until.max(buffered + needed);
                if !rest.is_empty() {
                    // Wait for the next chunk; the outcome is not final.
                    let n = size.next().copied().unwrap_or(1).min(rest.len());
                    let (chunk, tail) = rest.split_at(n);
                    buf.extend_from_slice(chunk);
                    rest = tail;
                    continue;
                }
            }
            Step::Error(_) => {}
        }
        let next = next_state(connection, &step, &ProtocolVersion::ALL);
        steps.push(SessionStep { connection, step });
        match next {
            Some(state) => connection = state,
            None => return steps,
        }
    }
}

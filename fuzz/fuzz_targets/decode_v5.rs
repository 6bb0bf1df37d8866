//! Arbitrary bytes through the MQTT 5.0 decoder, and through a connection's decoder before
//! its CONNECT (a v5 CONNECT switches the rest of the input to v5). Decodes packet after
//! packet until the bytes run out or go wrong; the buffer contract is checked at each step
//! and every packet must encode again.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq::protocol::ProtocolVersion::V5;
use ringmq::protocol::MAX_PACKET_BYTES;
use ringmq_fuzz::{assert_encodes, decode_session, Step};

fuzz_target!(|data: &[u8]| {
    for initial in [Some(V5), None] {
        let mut buf = BytesMut::from(data);
        for s in decode_session(&mut buf, initial, &[V5], MAX_PACKET_BYTES) {
            if let Step::Packet { packet, .. } = &s.step {
                assert_encodes(packet, s.connection);
            }
        }
    }
});

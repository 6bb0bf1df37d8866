//! Arbitrary bytes through the MQTT 3.1 and 3.1.1 decoder, and through a connection's
//! decoder before its CONNECT (which accepts a CONNECT of any version and nothing else; a
//! v3 CONNECT switches the rest of the input to that version). Decodes packet after packet
//! until the bytes run out or go wrong; the buffer contract is checked at each step and
//! every packet must encode again.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq::protocol::ProtocolVersion::{V3_1, V3_1_1};
use ringmq::protocol::MAX_PACKET_BYTES;
use ringmq_fuzz::{assert_encodes, decode_session, Step};

fuzz_target!(|data: &[u8]| {
    for initial in [Some(V3_1), Some(V3_1_1), None] {
        let mut buf = BytesMut::from(data);
        for s in decode_session(&mut buf, initial, &[V3_1, V3_1_1], MAX_PACKET_BYTES) {
            if let Step::Packet { packet, .. } = &s.step {
                assert_encodes(packet, s.connection);
            }
        }
    }
});

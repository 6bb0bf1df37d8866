//! Whenever bytes decode, in any connection state: the packet encodes for the same version,
//! the encoding decodes to an equal packet, and encoding that again gives the same bytes.
//! Each packet is also written for peers of every version, as the broker does when it
//! forwards a message, and whatever the encoder accepts must decode there and re-encode to
//! the same bytes.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringmq::protocol::{ProtocolVersion, MAX_PACKET_BYTES};
use ringmq_fuzz::{assert_roundtrip, assert_translates, decode_session, Step, CONNECTION_STATES};

fuzz_target!(|data: &[u8]| {
    for initial in CONNECTION_STATES {
        let mut buf = BytesMut::from(data);
        for s in decode_session(&mut buf, initial, &ProtocolVersion::ALL, MAX_PACKET_BYTES) {
            if let Step::Packet { packet, .. } = &s.step {
                assert_roundtrip(packet, s.connection);
                for target in ProtocolVersion::ALL {
                    assert_translates(packet, target);
                }
            }
        }
    }
});

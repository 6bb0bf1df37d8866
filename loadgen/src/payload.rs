//! The loadgen's payload header: what a subscriber needs to measure latency, loss and order.
//!
//! | bytes | field                                                         |
//! |-------|---------------------------------------------------------------|
//! | 0..8  | send time, ns since the process's common epoch, big endian    |
//! | 8..12 | publisher id (index in the run's publisher list), big endian  |
//! | 12..16| sequence number of this publisher's message, from 0           |
//! | 16..  | filler up to `--payload` bytes                                |
//!
//! In open loop (`--rate`) the send time is the message's scheduled time, so a publisher
//! that falls behind its schedule shows up as latency (no coordinated omission).

/// Bytes of the header, and so the smallest payload.
pub const HEADER_BYTES: usize = 16;

/// The header of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sent_ns: u64,
    pub publisher: u32,
    pub seq: u32,
}

impl Stamp {
    pub fn to_bytes(self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[..8].copy_from_slice(&self.sent_ns.to_be_bytes());
        out[8..12].copy_from_slice(&self.publisher.to_be_bytes());
        out[12..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// The header at the front of `payload`; `None` when it is too short (a message this
    /// loadgen did not publish).
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let header = payload.get(..HEADER_BYTES)?;
        let (time, rest) = header.split_at(8);
        let (publisher, seq) = rest.split_at(4);
        Some(Stamp {
            sent_ns: u64::from_be_bytes(time.try_into().ok()?),
            publisher: u32::from_be_bytes(publisher.try_into().ok()?),
            seq: u32::from_be_bytes(seq.try_into().ok()?),
        })
    }
}

/// The payload a publisher sends, header zeroed: the header is written in place after the
/// PUBLISH is encoded, so publishing allocates nothing per message.
pub fn template(len: usize) -> bytes::Bytes {
    let mut body = vec![0u8; len.max(HEADER_BYTES)];
    for (i, b) in body.iter_mut().enumerate().skip(HEADER_BYTES) {
        *b = b'a' + (i % 26) as u8;
    }
    bytes::Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_roundtrips_and_short_payloads_are_refused() {
        let s = Stamp {
            sent_ns: 0x0102_0304_0506_0708,
            publisher: 7,
            seq: 99,
        };
        let mut payload = s.to_bytes().to_vec();
        payload.extend_from_slice(b"filler");
        assert_eq!(Stamp::read(&payload), Some(s));
        assert_eq!(Stamp::read(&payload[..15]), None);
        assert_eq!(template(64).len(), 64);
        assert_eq!(template(3).len(), HEADER_BYTES);
    }
}

//! What the broker writes to a shard's log: one [`StateRecord`] per change to durable
//! state, and its body encoding. Pure: no I/O. The frame around a body (len, CRC, type) is
//! [`super::record`]'s; this module gives the type byte and the body bytes.
//!
//! All integers are little-endian. `str` and `bytes` are a u32 length then the bytes. A
//! session is named by its **session number** (`no`, u64), unique within its shard's log
//! and given by [`StateRecord::Session`]; later records name it by number only. Each
//! message queued for a persistent session gets that session's next **sequence number**
//! (`seq`); the session's packet id for it is derived from `seq` (see
//! `Session::packet_id_of`), so a restarted broker resends with the ids the client knows.
//!
//! | type | record        | body                                                        |
//! |------|---------------|-------------------------------------------------------------|
//! | 1    | Session       | no u64, expiry_secs u32, client_id str                      |
//! | 2    | SessionGone   | no u64                                                      |
//! | 3    | Subscribe     | no u64, options u8, subscription_id u32 (0: none), filter str |
//! | 4    | Unsubscribe   | no u64, filter str                                          |
//! | 5    | Deliver       | targets u32, targets x (no u64, seq u64, qos u8, flags u8 (1 retain, 2 sent), ids u8, ids x u32), tag, message |
//! | 6    | Acked         | no u64, seq u64, low_seq u64, low_offset u64                |
//! | 7    | Released      | no u64, seq u64                                             |
//! | 8    | Accepted      | no u64, packet_id u16, first u64 (a checkpoint's copy: the original's offset), message |
//! | 9    | InReleased    | no u64, packet_id u16                                       |
//! | 10   | Retain        | tag, message (empty payload: the topic's retained message is cleared) |
//! | 11   | Will          | no u64, message                                             |
//! | 12   | WillClear     | no u64                                                      |
//! | 13   | Detached      | no u64, unix_ms u64                                         |
//! | 14   | CheckpointBegin | (empty)                                                   |
//! | 15   | CheckpointEnd | (empty)                                                     |
//! | 16   | Queue         | no u64, next_seq u64, low_seq u64, low_offset u64, then three lists (u32 count, u64 each): acked, released, sent |
//! | 17   | Sent          | no u64, seq u64 (a queued delivery was first sent)         |
//! | 18   | DelayedWill   | no u64, delay_secs u32, due_unix_ms u64, message            |
//! | 19   | SessionUser   | no u64, flags u8 (1: a user), user str                      |
//!
//! - `message`: origin client id str, received unix_ms u64, then the message as an MQTT
//!   5.0 PUBLISH packet (fixed header included; packet id 1 when QoS > 0), so the codec
//!   that reads clients' packets also reads the log.
//! - `tag`: origin shard u16 (`0xFFFF`: none), origin offset u64. An inbound QoS 2 message
//!   is tagged with the shard and offset of its `Accepted` record, so that recovery can
//!   finish routing it without delivering it twice.
//! - `low_offset`: `u64::MAX` for none.
//! - `Will` is the will of a connected client with no Will Delay Interval. `DelayedWill`
//!   (added after the first release; logs without it read as before) is a will with a
//!   delay: `due_unix_ms` `u64::MAX` while its client is connected (a crash makes it
//!   pending at the restart, the delay counted from then), else the Unix time at which
//!   the pending will is published unless the session is resumed first. A session has at
//!   most one will in the log: the last `Will` / `DelayedWill` / `WillClear` says which.
//! - `Acked`: the delivery `seq` is complete (PUBACK, PUBCOMP, refused, or expired), and
//!   every delivery below `low_seq` is; `low_offset` is where the oldest incomplete one's
//!   `Deliver` record is, or where to look for it.
//! - `SessionUser` (added after the first release; logs without it read as before, their
//!   sessions as anonymous) names the user a persistent session's client logged in as,
//!   written at each connection: the ACL then filters what is queued for the session
//!   while it is offline, across restarts too. flags 0 (and an empty str): anonymous.
//! - A checkpoint (`CheckpointBegin`, the live state as Session / Subscribe / Queue /
//!   Accepted / Will / DelayedWill / Retain records, `CheckpointEnd`) replaces all state
//!   before it; the records before it are then dead, except `Deliver` records still
//!   queued.

use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::record::RecordType;
use super::LogOffset;
use crate::message::Message;
use crate::protocol::{
    decode, Decoded, Packet, PacketId, ProtocolVersion, Publish, QoS, RetainHandling,
    SubscriptionId, SubscriptionOptions,
};

/// One delivery target of a [`StateRecord::Deliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub no: u64,
    pub seq: u64,
    pub qos: QoS,
    pub retain: bool,
    /// Sent to the client when it was queued (it was connected with room in its window):
    /// a resend after a restart carries DUP 1.
    pub sent: bool,
    pub ids: Vec<u32>,
}

/// Where an inbound QoS 2 message was accepted: its `Accepted` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    pub shard: u16,
    pub offset: u64,
}

/// A change to durable state.
#[derive(Debug, Clone)]
pub enum StateRecord {
    Session {
        no: u64,
        expiry_secs: u32,
        client_id: Arc<str>,
    },
    SessionGone {
        no: u64,
    },
    Subscribe {
        no: u64,
        options: SubscriptionOptions,
        id: Option<SubscriptionId>,
        filter: Box<str>,
    },
    Unsubscribe {
        no: u64,
        filter: Box<str>,
    },
    Deliver {
        targets: Vec<Target>,
        tag: Option<Tag>,
        message: Message,
    },
    Acked {
        no: u64,
        seq: u64,
        low_seq: u64,
        low_offset: Option<LogOffset>,
    },
    Released {
        no: u64,
        seq: u64,
    },
    Accepted {
        no: u64,
        packet_id: PacketId,
        /// Where it was first accepted, when a checkpoint copies it (its tag stays).
        first: Option<LogOffset>,
        message: Message,
    },
    InReleased {
        no: u64,
        packet_id: PacketId,
    },
    Retain {
        tag: Option<Tag>,
        message: Message,
    },
    Will {
        no: u64,
        message: Message,
    },
    WillClear {
        no: u64,
    },
    Detached {
        no: u64,
        unix_ms: u64,
    },
    CheckpointBegin,
    CheckpointEnd,
    Queue {
        no: u64,
        next_seq: u64,
        low_seq: u64,
        low_offset: Option<LogOffset>,
        acked: Vec<u64>,
        released: Vec<u64>,
        sent: Vec<u64>,
    },
    Sent {
        no: u64,
        seq: u64,
    },
    DelayedWill {
        no: u64,
        delay_secs: u32,
        /// When it is published; `None` while its client is connected.
        due_unix_ms: Option<u64>,
        message: Message,
    },
    SessionUser {
        no: u64,
        /// `None`: anonymous.
        user: Option<Arc<str>>,
    },
}

/// A body that does not decode: the log holds something this version did not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record type {record_type}: {what}")]
pub struct StateError {
    pub record_type: u8,
    pub what: String,
}

const NO_SHARD: u16 = 0xFFFF;
const NO_OFFSET: u64 = u64::MAX;
const NO_TIME: u64 = u64::MAX;

impl StateRecord {
    pub fn record_type(&self) -> RecordType {
        let t = match self {
            StateRecord::Session { .. } => 1,
            StateRecord::SessionGone { .. } => 2,
            StateRecord::Subscribe { .. } => 3,
            StateRecord::Unsubscribe { .. } => 4,
            StateRecord::Deliver { .. } => 5,
            StateRecord::Acked { .. } => 6,
            StateRecord::Released { .. } => 7,
            StateRecord::Accepted { .. } => 8,
            StateRecord::InReleased { .. } => 9,
            StateRecord::Retain { .. } => 10,
            StateRecord::Will { .. } => 11,
            StateRecord::WillClear { .. } => 12,
            StateRecord::Detached { .. } => 13,
            StateRecord::CheckpointBegin => 14,
            StateRecord::CheckpointEnd => 15,
            StateRecord::Queue { .. } => 16,
            StateRecord::Sent { .. } => 17,
            StateRecord::DelayedWill { .. } => 18,
            StateRecord::SessionUser { .. } => 19,
        };
        RecordType::new(t).unwrap_or(DELIVER)
    }

    /// Writes the body into `out` (cleared first). A `BytesMut`, so that a message's
    /// PUBLISH is encoded straight into it, with no buffer of its own.
    pub fn encode(&self, out: &mut BytesMut) {
        out.clear();
        let mut w = Writer(out);
        match self {
            StateRecord::Session {
                no,
                expiry_secs,
                client_id,
            } => {
                w.u64(*no);
                w.u32(*expiry_secs);
                w.bytes(client_id.as_bytes());
            }
            StateRecord::SessionGone { no } | StateRecord::WillClear { no } => w.u64(*no),
            StateRecord::Subscribe {
                no,
                options,
                id,
                filter,
            } => {
                w.u64(*no);
                w.u8(options_byte(options));
                w.u32(id.map_or(0, |i| i.get()));
                w.bytes(filter.as_bytes());
            }
            StateRecord::Unsubscribe { no, filter } => {
                w.u64(*no);
                w.bytes(filter.as_bytes());
            }
            StateRecord::Deliver {
                targets,
                tag,
                message,
            } => {
                w.u32(targets.len() as u32);
                for t in targets {
                    w.u64(t.no);
                    w.u64(t.seq);
                    w.u8(t.qos as u8);
                    w.u8(u8::from(t.retain) | (u8::from(t.sent) << 1));
                    let ids = t.ids.get(..t.ids.len().min(255)).unwrap_or_default();
                    w.u8(ids.len() as u8);
                    for id in ids {
                        w.u32(*id);
                    }
                }
                w.tag(*tag);
                w.message(message);
            }
            StateRecord::Acked {
                no,
                seq,
                low_seq,
                low_offset,
            } => {
                w.u64(*no);
                w.u64(*seq);
                w.u64(*low_seq);
                w.u64(low_offset.map_or(NO_OFFSET, LogOffset::get));
            }
            StateRecord::Released { no, seq } | StateRecord::Sent { no, seq } => {
                w.u64(*no);
                w.u64(*seq);
            }
            StateRecord::Accepted {
                no,
                packet_id,
                first,
                message,
            } => {
                w.u64(*no);
                w.u16(packet_id.get());
                w.u64(first.map_or(NO_OFFSET, LogOffset::get));
                w.message(message);
            }
            StateRecord::InReleased { no, packet_id } => {
                w.u64(*no);
                w.u16(packet_id.get());
            }
            StateRecord::Retain { tag, message } => {
                w.tag(*tag);
                w.message(message);
            }
            StateRecord::Will { no, message } => {
                w.u64(*no);
                w.message(message);
            }
            StateRecord::DelayedWill {
                no,
                delay_secs,
                due_unix_ms,
                message,
            } => {
                w.u64(*no);
                w.u32(*delay_secs);
                w.u64(due_unix_ms.unwrap_or(NO_TIME));
                w.message(message);
            }
            StateRecord::Detached { no, unix_ms } => {
                w.u64(*no);
                w.u64(*unix_ms);
            }
            StateRecord::SessionUser { no, user } => {
                w.u64(*no);
                w.u8(u8::from(user.is_some()));
                w.bytes(user.as_deref().unwrap_or_default().as_bytes());
            }
            StateRecord::CheckpointBegin | StateRecord::CheckpointEnd => {}
            StateRecord::Queue {
                no,
                next_seq,
                low_seq,
                low_offset,
                acked,
                released,
                sent,
            } => {
                w.u64(*no);
                w.u64(*next_seq);
                w.u64(*low_seq);
                w.u64(low_offset.map_or(NO_OFFSET, LogOffset::get));
                for list in [acked, released, sent] {
                    w.u32(list.len() as u32);
                    for s in list {
                        w.u64(*s);
                    }
                }
            }
        }
    }

    /// Decodes a body written by [`StateRecord::encode`].
    pub fn decode(record_type: RecordType, body: &[u8]) -> Result<StateRecord, StateError> {
        let t = record_type.get();
        let mut r = Reader { buf: body, t };
        let rec = match t {
            1 => StateRecord::Session {
                no: r.u64()?,
                expiry_secs: r.u32()?,
                client_id: Arc::from(r.str()?),
            },
            2 => StateRecord::SessionGone { no: r.u64()? },
            3 => StateRecord::Subscribe {
                no: r.u64()?,
                options: r.options()?,
                id: SubscriptionId::new(r.u32()?),
                filter: Box::from(r.str()?),
            },
            4 => StateRecord::Unsubscribe {
                no: r.u64()?,
                filter: Box::from(r.str()?),
            },
            5 => {
                let n = r.u32()? as usize;
                let mut targets = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    targets.push(r.target(|_| true)?.0);
                }
                StateRecord::Deliver {
                    targets,
                    tag: r.tag()?,
                    message: r.message()?,
                }
            }
            6 => StateRecord::Acked {
                no: r.u64()?,
                seq: r.u64()?,
                low_seq: r.u64()?,
                low_offset: r.offset()?,
            },
            7 => StateRecord::Released {
                no: r.u64()?,
                seq: r.u64()?,
            },
            8 => StateRecord::Accepted {
                no: r.u64()?,
                packet_id: r.packet_id()?,
                first: r.offset()?,
                message: r.message()?,
            },
            9 => StateRecord::InReleased {
                no: r.u64()?,
                packet_id: r.packet_id()?,
            },
            10 => StateRecord::Retain {
                tag: r.tag()?,
                message: r.message()?,
            },
            11 => StateRecord::Will {
                no: r.u64()?,
                message: r.message()?,
            },
            12 => StateRecord::WillClear { no: r.u64()? },
            13 => StateRecord::Detached {
                no: r.u64()?,
                unix_ms: r.u64()?,
            },
            14 => StateRecord::CheckpointBegin,
            15 => StateRecord::CheckpointEnd,
            16 => {
                let no = r.u64()?;
                let next_seq = r.u64()?;
                let low_seq = r.u64()?;
                let low_offset = r.offset()?;
                let acked = r.seqs()?;
                let released = r.seqs()?;
                let sent = r.seqs()?;
                StateRecord::Queue {
                    no,
                    next_seq,
                    low_seq,
                    low_offset,
                    acked,
                    released,
                    sent,
                }
            }
            17 => StateRecord::Sent {
                no: r.u64()?,
                seq: r.u64()?,
            },
            18 => StateRecord::DelayedWill {
                no: r.u64()?,
                delay_secs: r.u32()?,
                due_unix_ms: Some(r.u64()?).filter(|&t| t != NO_TIME),
                message: r.message()?,
            },
            19 => {
                let no = r.u64()?;
                let flags = r.u8()?;
                let user = r.str()?;
                StateRecord::SessionUser {
                    no,
                    user: (flags & 1 != 0).then(|| Arc::from(user)),
                }
            }
            _ => return Err(r.err("unknown record type")),
        };
        if !r.buf.is_empty() {
            return Err(r.err("bytes left after the body"));
        }
        Ok(rec)
    }
}

/// Whether a `Deliver` body names session `no`, without decoding the message: what a
/// session's queue reader checks for every record it passes.
pub fn deliver_target(body: &[u8], no: u64) -> Option<Target> {
    let mut r = Reader { buf: body, t: 5 };
    let n = r.u32().ok()?;
    for _ in 0..n {
        if let (target, true) = r.target(|t_no| t_no == no).ok()? {
            return Some(target);
        }
    }
    None
}

/// The record type of `Deliver`.
#[allow(clippy::panic)] // evaluated at compile time: a panic here fails the build
pub const DELIVER: RecordType = match RecordType::new(5) {
    Some(t) => t,
    None => panic!("record type 0 is reserved"),
};

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The `Instant` that was `unix_ms` (now, if that is in the future or too far back).
pub fn instant_of(unix_ms: u64) -> Instant {
    let now = Instant::now();
    let ago = unix_ms_now().saturating_sub(unix_ms);
    now.checked_sub(Duration::from_millis(ago)).unwrap_or(now)
}

/// The `Instant` that will be, or was, `unix_ms` (the past as [`instant_of`]).
pub fn instant_at(unix_ms: u64) -> Instant {
    let now = Instant::now();
    let ahead = unix_ms.saturating_sub(unix_ms_now());
    if ahead == 0 {
        return instant_of(unix_ms);
    }
    now.checked_add(Duration::from_millis(ahead)).unwrap_or(now)
}

fn options_byte(o: &SubscriptionOptions) -> u8 {
    (o.qos as u8)
        | (u8::from(o.no_local) << 2)
        | (u8::from(o.retain_as_published) << 3)
        | ((o.retain_handling as u8) << 4)
}

struct Writer<'a>(&'a mut BytesMut);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.extend_from_slice(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn tag(&mut self, tag: Option<Tag>) {
        self.u16(tag.map_or(NO_SHARD, |t| t.shard));
        self.u64(tag.map_or(NO_OFFSET, |t| t.offset));
    }
    fn message(&mut self, m: &Message) {
        self.bytes(m.origin.as_bytes());
        self.u64(unix_ms_of(m.received_at));
        let publish = Publish {
            dup: false,
            qos: m.qos,
            retain: m.retain,
            topic: m.topic.clone(),
            packet_id: (m.qos != QoS::AtMostOnce).then_some(PACKET_ID_ONE),
            properties: m.properties.to_publish(),
            payload: m.payload.clone(),
        };
        // A message the broker accepted always encodes (it decoded from a client); on an
        // error nothing is appended, and the record fails to decode, loudly.
        let _ = Packet::Publish(publish).encode(ProtocolVersion::V5, self.0);
    }
}

const PACKET_ID_ONE: PacketId = PacketId::MIN;

/// The Unix time in milliseconds of an `Instant` in the past.
pub fn unix_ms_of(at: Instant) -> u64 {
    let ago = Instant::now().saturating_duration_since(at).as_millis() as u64;
    unix_ms_now().saturating_sub(ago)
}

struct Reader<'a> {
    buf: &'a [u8],
    t: u8,
}

impl<'a> Reader<'a> {
    fn err(&self, what: &str) -> StateError {
        StateError {
            record_type: self.t,
            what: what.to_owned(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        if self.buf.len() < n {
            return Err(self.err("body ends early"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn skip(&mut self, n: usize) -> Result<(), StateError> {
        self.take(n).map(|_| ())
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, StateError> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    fn u16(&mut self) -> Result<u16, StateError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, StateError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, StateError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], StateError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'a str, StateError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))
    }
    fn qos(&mut self) -> Result<QoS, StateError> {
        let b = self.u8()?;
        QoS::from_u8(b).ok_or_else(|| self.err("bad QoS"))
    }
    fn packet_id(&mut self) -> Result<PacketId, StateError> {
        PacketId::new(self.u16()?).ok_or_else(|| self.err("packet id 0"))
    }
    /// One target of a `Deliver`; its subscription ids are read only if `wanted(no)`
    /// (skipped otherwise), which the second value says.
    fn target(&mut self, wanted: impl Fn(u64) -> bool) -> Result<(Target, bool), StateError> {
        let no = self.u64()?;
        let seq = self.u64()?;
        let qos = self.qos()?;
        let flags = self.u8()?;
        let k = usize::from(self.u8()?);
        let want = wanted(no);
        let mut ids = Vec::new();
        if want {
            ids.reserve(k);
            for _ in 0..k {
                ids.push(self.u32()?);
            }
        } else {
            self.skip(k * 4)?;
        }
        let target = Target {
            no,
            seq,
            qos,
            retain: flags & 1 != 0,
            sent: flags & 2 != 0,
            ids,
        };
        Ok((target, want))
    }

    fn seqs(&mut self) -> Result<Vec<u64>, StateError> {
        let n = self.u32()? as usize;
        if n > self.buf.len() / 8 {
            return Err(self.err("list longer than the body"));
        }
        (0..n).map(|_| self.u64()).collect()
    }
    fn offset(&mut self) -> Result<Option<LogOffset>, StateError> {
        let v = self.u64()?;
        Ok((v != NO_OFFSET).then_some(LogOffset::new(v)))
    }
    fn tag(&mut self) -> Result<Option<Tag>, StateError> {
        let shard = self.u16()?;
        let offset = self.u64()?;
        Ok((shard != NO_SHARD).then_some(Tag { shard, offset }))
    }
    fn options(&mut self) -> Result<SubscriptionOptions, StateError> {
        let b = self.u8()?;
        Ok(SubscriptionOptions {
            qos: QoS::from_u8(b & 0x03).ok_or_else(|| self.err("bad subscription QoS"))?,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling: match (b >> 4) & 0x03 {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendIfNew,
                _ => RetainHandling::DoNotSend,
            },
        })
    }
    fn message(&mut self) -> Result<Message, StateError> {
        let origin: Arc<str> = Arc::from(self.str()?);
        let received = self.u64()?;
        let rest = std::mem::take(&mut self.buf);
        let mut buf = BytesMut::from(rest);
        let packet = decode(&mut buf, Some(ProtocolVersion::V5), usize::MAX)
            .map_err(|e| self.err(&format!("message does not decode: {e}")))?;
        let Decoded::Packet(Packet::Publish(p)) = packet else {
            return Err(self.err("message is not a whole PUBLISH"));
        };
        if !buf.is_empty() {
            return Err(self.err("bytes left after the message"));
        }
        let mut m = Message::from_publish(p, origin);
        m.received_at = instant_of(received);
        // The payload is a slice of `buf`, which holds only this packet.
        m.payload = Bytes::clone(&m.payload);
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{MqttString, PublishProperties, TopicName};

    fn message(topic: &str, payload: &[u8], qos: QoS) -> Message {
        let properties = PublishProperties {
            content_type: MqttString::try_from("text/plain").ok(),
            message_expiry_interval: Some(30),
            ..Default::default()
        };
        Message {
            topic: TopicName::try_from(topic).expect("topic"),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain: true,
            properties: properties.into(),
            origin: Arc::from("publisher-1"),
            received_at: Instant::now(),
        }
    }

    fn roundtrip(rec: &StateRecord) -> StateRecord {
        let mut body = BytesMut::new();
        rec.encode(&mut body);
        StateRecord::decode(rec.record_type(), &body).expect("decodes")
    }

    #[test]
    fn every_record_decodes_to_what_was_encoded() {
        let m = message("a/b", b"hello", QoS::ExactlyOnce);
        let id = PacketId::new(7).expect("id");
        let records = vec![
            StateRecord::Session {
                no: 3,
                expiry_secs: u32::MAX,
                client_id: Arc::from("sensor-9"),
            },
            StateRecord::SessionGone { no: 3 },
            StateRecord::Subscribe {
                no: 3,
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendIfNew,
                },
                id: SubscriptionId::new(42),
                filter: Box::from("a/+/c"),
            },
            StateRecord::Unsubscribe {
                no: 3,
                filter: Box::from("a/#"),
            },
            StateRecord::Deliver {
                targets: vec![
                    Target {
                        no: 1,
                        seq: 10,
                        qos: QoS::AtLeastOnce,
                        retain: false,
                        sent: true,
                        ids: vec![],
                    },
                    Target {
                        no: 2,
                        seq: 99,
                        qos: QoS::ExactlyOnce,
                        retain: true,
                        sent: false,
                        ids: vec![5, 6],
                    },
                ],
                tag: Some(Tag {
                    shard: 2,
                    offset: 4096,
                }),
                message: m.clone(),
            },
            StateRecord::Acked {
                no: 1,
                seq: 10,
                low_seq: 11,
                low_offset: None,
            },
            StateRecord::Acked {
                no: 1,
                seq: 12,
                low_seq: 11,
                low_offset: Some(LogOffset::new(777)),
            },
            StateRecord::Released { no: 2, seq: 99 },
            StateRecord::Accepted {
                no: 4,
                packet_id: id,
                first: Some(LogOffset::new(128)),
                message: m.clone(),
            },
            StateRecord::InReleased {
                no: 4,
                packet_id: id,
            },
            StateRecord::Retain {
                tag: None,
                message: message("r", b"", QoS::AtMostOnce),
            },
            StateRecord::Will {
                no: 4,
                message: m.clone(),
            },
            StateRecord::WillClear { no: 4 },
            StateRecord::Detached {
                no: 4,
                unix_ms: 1_700_000_000_000,
            },
            StateRecord::CheckpointBegin,
            StateRecord::CheckpointEnd,
            StateRecord::Queue {
                no: 2,
                next_seq: 100,
                low_seq: 90,
                low_offset: Some(LogOffset::new(64)),
                acked: vec![91, 95],
                released: vec![93],
                sent: vec![91, 92, 93],
            },
            StateRecord::Sent { no: 2, seq: 94 },
            StateRecord::DelayedWill {
                no: 4,
                delay_secs: 30,
                due_unix_ms: None,
                message: m.clone(),
            },
            StateRecord::DelayedWill {
                no: 4,
                delay_secs: 30,
                due_unix_ms: Some(1_700_000_030_000),
                message: m.clone(),
            },
            StateRecord::SessionUser {
                no: 4,
                user: Some(Arc::from("alice")),
            },
            StateRecord::SessionUser { no: 4, user: None },
            StateRecord::SessionUser {
                no: 4,
                user: Some(Arc::from("")),
            },
        ];
        for rec in &records {
            // Debug output names every field, messages included (their `received_at` is
            // rebuilt from milliseconds, so it is compared separately below).
            let back = roundtrip(rec);
            assert_eq!(rec.record_type(), back.record_type());
            let strip = |s: String| s.split("received_at").next().unwrap_or_default().to_owned();
            assert_eq!(
                strip(format!("{rec:?}")),
                strip(format!("{back:?}")),
                "{rec:?}"
            );
        }
    }

    #[test]
    fn a_delayed_will_body_is_as_documented() {
        let rec = StateRecord::DelayedWill {
            no: 0x0102,
            delay_secs: 30,
            due_unix_ms: None,
            message: message("w", b"gone", QoS::AtLeastOnce),
        };
        assert_eq!(rec.record_type().get(), 18);
        let mut body = BytesMut::new();
        rec.encode(&mut body);
        let head: &[u8] = &[
            0x02, 0x01, 0, 0, 0, 0, 0, 0, // no
            30, 0, 0, 0, // delay_secs
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // due: none (connected)
            11, 0, 0, 0, // the message: origin str
        ];
        assert_eq!(&body[..head.len()], head);
    }

    #[test]
    fn a_will_record_of_an_older_log_still_reads() {
        // Type 11 as the first release wrote it: no, then the message.
        let mut body = BytesMut::new();
        StateRecord::Will {
            no: 5,
            message: message("w", b"gone", QoS::AtMostOnce),
        }
        .encode(&mut body);
        assert_eq!(&body[..8], &[5, 0, 0, 0, 0, 0, 0, 0]);
        let t = RecordType::new(11).expect("type");
        let Ok(StateRecord::Will { no: 5, message }) = StateRecord::decode(t, &body) else {
            panic!("type 11 does not read as a will");
        };
        assert_eq!(&message.payload[..], b"gone");
    }

    #[test]
    fn instant_at_reaches_into_the_future_and_the_past() {
        let now = Instant::now();
        let ahead = instant_at(unix_ms_now() + 10_000).saturating_duration_since(now);
        assert!(ahead > Duration::from_secs(9) && ahead <= Duration::from_secs(11));
        let ago = now.saturating_duration_since(instant_at(unix_ms_now() - 10_000));
        assert!(ago > Duration::from_secs(9) && ago <= Duration::from_secs(11));
    }

    #[test]
    fn a_message_keeps_topic_payload_flags_properties_and_time() {
        let m = message("x/y", b"payload", QoS::AtLeastOnce);
        let StateRecord::Accepted { message: back, .. } = roundtrip(&StateRecord::Accepted {
            no: 1,
            packet_id: PacketId::new(1).expect("id"),
            first: None,
            message: m.clone(),
        }) else {
            panic!("wrong record");
        };
        assert_eq!(back.topic, m.topic);
        assert_eq!(back.payload, m.payload);
        assert_eq!((back.qos, back.retain), (m.qos, m.retain));
        assert_eq!(back.properties, m.properties);
        assert_eq!(&*back.origin, "publisher-1");
        assert!(back.received_at.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_queue_reader_finds_its_target_without_decoding_the_message() {
        let rec = StateRecord::Deliver {
            targets: vec![
                Target {
                    no: 1,
                    seq: 1,
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    sent: false,
                    ids: vec![8, 9],
                },
                Target {
                    no: 2,
                    seq: 5,
                    qos: QoS::ExactlyOnce,
                    retain: true,
                    sent: true,
                    ids: vec![3],
                },
            ],
            tag: None,
            message: message("t", b"p", QoS::ExactlyOnce),
        };
        let mut body = BytesMut::new();
        rec.encode(&mut body);
        let t = deliver_target(&body, 2).expect("session 2 is a target");
        assert_eq!(
            (t.seq, t.qos, t.retain, t.ids),
            (5, QoS::ExactlyOnce, true, vec![3])
        );
        assert!(deliver_target(&body, 3).is_none());
    }

    #[test]
    fn truncated_and_padded_bodies_are_errors_not_panics() {
        let rec = StateRecord::Subscribe {
            no: 1,
            options: SubscriptionOptions::default(),
            id: None,
            filter: Box::from("a/b"),
        };
        let mut body = BytesMut::new();
        rec.encode(&mut body);
        for cut in 0..body.len() {
            assert!(StateRecord::decode(rec.record_type(), &body[..cut]).is_err());
        }
        body.extend_from_slice(&[0]);
        assert!(StateRecord::decode(rec.record_type(), &body).is_err());
        let unknown = RecordType::new(200).expect("type");
        assert!(StateRecord::decode(unknown, &[]).is_err());
    }
}

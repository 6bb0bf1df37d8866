//! The publisher role: publishes stamped messages, closed loop (as fast as the inflight
//! window or the socket allows) or open loop (on a schedule), and completes the QoS flows.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;

use futures_lite::future;
use glommio::timer::Timer;
use ringmq::protocol::{
    Ack, MqttString, Packet, PacketId, Publish, PublishProperties, QoS, TopicName,
};

use crate::clock;
use crate::conn::{flush, Conn, ConnError};
use crate::local::{Local, Slot};
use crate::payload::{self, Stamp, HEADER_BYTES};
use crate::shared::Phase;
use crate::subscriber::ping_if_quiet;

/// Read buffer of a publisher (acks only).
pub const READ_BYTES: usize = 4 << 10;

/// QoS 0 closed loop: messages encoded per write.
const QOS0_BATCH: usize = 64;

/// Most messages encoded in one round, whatever the window or schedule allows.
const ROUND_MAX: usize = 1024;

/// One publisher of the run's plan.
#[derive(Debug, Clone)]
pub struct PubSpec {
    pub id: u32,
    pub client_id: String,
    pub topic: String,
}

/// What a publisher hands back at the end.
#[derive(Debug, Default)]
pub struct PubOutcome {
    pub ok: bool,
    pub sent: u64,
    /// QoS 1/2 messages never acknowledged.
    pub unacked: u64,
}

/// A QoS 1/2 message waiting for its acknowledgement.
struct Inflight {
    id: PacketId,
    sent_ns: u64,
}

/// Packet ids in use, one bit each (8 KiB, allocated at the first QoS 1/2 message).
struct IdSet(Vec<u64>);

impl IdSet {
    fn new() -> IdSet {
        IdSet(Vec::new())
    }

    fn bit(id: u16) -> (usize, u64) {
        (usize::from(id) / 64, 1u64 << (id % 64))
    }

    fn contains(&self, id: u16) -> bool {
        let (w, m) = Self::bit(id);
        self.0.get(w).is_some_and(|word| word & m != 0)
    }

    fn set(&mut self, id: u16, on: bool) {
        let (w, m) = Self::bit(id);
        if self.0.is_empty() {
            self.0 = vec![0; 1024];
        }
        if let Some(word) = self.0.get_mut(w) {
            if on {
                *word |= m;
            } else {
                *word &= !m;
            }
        }
    }
}

/// A publisher's sending state.
struct Sender {
    id: u32,
    qos: QoS,
    packet: Packet,
    payload_len: usize,
    seq: u64,
    /// Stop after this many messages (`persistent`).
    limit: u64,
    next_id: u16,
    in_use: IdSet,
    inflight: VecDeque<Inflight>,
    window: usize,
    /// Open loop: ns between messages, and when message 0 is due.
    interval_ns: Option<f64>,
    first_due_ns: u64,
}

impl Sender {
    fn room(&self) -> usize {
        match self.qos {
            QoS::AtMostOnce => usize::MAX,
            _ => self.window.saturating_sub(self.inflight.len()),
        }
    }

    fn due_at(&self, seq: u64) -> u64 {
        match self.interval_ns {
            Some(iv) => self.first_due_ns + (seq as f64 * iv) as u64,
            None => 0,
        }
    }

    /// How many messages to encode now.
    fn quota(&self, now: u64) -> usize {
        let wanted = match self.interval_ns {
            None if self.qos == QoS::AtMostOnce => QOS0_BATCH as u64,
            None => u64::MAX,
            Some(iv) => {
                let due = if now < self.first_due_ns {
                    0
                } else {
                    ((now - self.first_due_ns) as f64 / iv) as u64 + 1
                };
                due.saturating_sub(self.seq)
            }
        };
        let left = self.limit.saturating_sub(self.seq);
        wanted
            .min(left)
            .min(ROUND_MAX as u64)
            .min(self.room() as u64) as usize
    }

    fn alloc_id(&mut self) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.in_use.contains(self.next_id) {
                self.in_use.set(self.next_id, true);
                return PacketId::new(self.next_id);
            }
        }
        None
    }

    /// Encodes message `seq` into the connection's write buffer, stamped `stamp_ns`.
    fn encode(&mut self, conn: &mut Conn, stamp_ns: u64, now: u64) -> Result<(), ConnError> {
        let packet_id = match self.qos {
            QoS::AtMostOnce => None,
            _ => Some(
                self.alloc_id()
                    .ok_or_else(|| ConnError::Unexpected("no free packet id".into()))?,
            ),
        };
        if let Packet::Publish(p) = &mut self.packet {
            p.packet_id = packet_id;
        }
        conn.push(&self.packet)?;
        // The payload is the end of the packet just encoded: write its stamp in place.
        let stamp = Stamp {
            sent_ns: stamp_ns,
            publisher: self.id,
            seq: self.seq as u32,
        };
        let wbuf = conn.wbuf_mut();
        let start = wbuf.len().saturating_sub(self.payload_len);
        if let Some(header) = wbuf.get_mut(start..start + HEADER_BYTES) {
            header.copy_from_slice(&stamp.to_bytes());
        }
        if let Some(id) = packet_id {
            self.inflight.push_back(Inflight { id, sent_ns: now });
        }
        self.seq += 1;
        Ok(())
    }

    /// Removes `id` from the window; its send time if it was there.
    fn complete(&mut self, id: PacketId) -> Option<u64> {
        let pos = self.inflight.iter().position(|f| f.id == id)?;
        let f = self.inflight.remove(pos)?;
        self.in_use.set(id.get(), false);
        Some(f.sent_ns)
    }

    /// Handles acknowledgements read so far.
    fn on_input(&mut self, local: &Local, conn: &mut Conn, now: u64) -> Result<(), ConnError> {
        let in_window = local.in_window(now);
        let mut acked = 0;
        let result = (|| {
            while let Some(packet) = conn.next_packet()? {
                let done = match packet {
                    Packet::PubAck(a) if self.qos == QoS::AtLeastOnce => Some(a),
                    Packet::PubComp(a) if self.qos == QoS::ExactlyOnce => Some(a),
                    Packet::PubRec(a) if self.qos == QoS::ExactlyOnce => {
                        check_reason(&a, "PUBREC")?;
                        conn.push(&Packet::PubRel(Ack::new(a.packet_id)))?;
                        None
                    }
                    Packet::PingResp => None,
                    Packet::Disconnect(d) => {
                        return Err(ConnError::Unexpected(format!(
                            "DISCONNECT from the broker ({:?})",
                            d.reason
                        )))
                    }
                    other => {
                        return Err(ConnError::Unexpected(format!(
                            "{} at a QoS {} publisher",
                            other.packet_type(),
                            self.qos as u8
                        )))
                    }
                };
                if let Some(a) = done {
                    check_reason(&a, "acknowledgement")?;
                    let Some(sent) = self.complete(a.packet_id) else {
                        return Err(ConnError::Unexpected(format!(
                            "acknowledgement of packet id {} that is not in flight",
                            a.packet_id.get()
                        )));
                    };
                    acked += 1;
                    if in_window {
                        let mut stats = local.stats.borrow_mut();
                        stats.ack.record(now.saturating_sub(sent));
                        stats.window_acked += 1;
                    }
                }
            }
            Ok(())
        })();
        local.add(|c| &c.acked, acked);
        result
    }
}

fn check_reason(a: &Ack, what: &str) -> Result<(), ConnError> {
    if a.reason.is_success() {
        return Ok(());
    }
    Err(ConnError::Unexpected(format!(
        "{what} with reason {:?}",
        a.reason
    )))
}

/// A publisher from setup to the end of the run: `limit` messages at most.
pub async fn run(local: Rc<Local>, spec: PubSpec, limit: u64, publishers: usize) -> PubOutcome {
    let mut out = PubOutcome::default();
    let slot = local.slot();
    let connect = local.cfg.connect_packet(&spec.client_id, true);
    let opened = local.open(connect, READ_BYTES).await;
    local.add(|c| &c.setup_done, 1);
    let (mut conn, ack) = match opened {
        Ok(x) => x,
        Err(_) => {
            finalize(&local, spec.id, 0);
            return out;
        }
    };
    out.ok = true;
    local.add(|c| &c.ready, 1);
    let cfg = local.cfg.clone();
    let window = ack
        .properties
        .receive_maximum
        .map_or(cfg.inflight, |m| cfg.inflight.min(usize::from(m.get())));
    let topic = MqttString::from_bytes(bytes::Bytes::copy_from_slice(spec.topic.as_bytes()))
        .ok()
        .and_then(|s| TopicName::new(s).ok());
    let Some(topic) = topic else {
        local.error(format_args!(
            "publisher {}: invalid topic {:?}",
            spec.client_id, spec.topic
        ));
        finalize(&local, spec.id, 0);
        return out;
    };
    local.wait_phase(Phase::Run).await;
    let (start, end) = local.pub_window();
    if local.phase() < Phase::Finish {
        let _ = Timer::new(clock::until(start)).await;
    }
    let interval_ns = cfg.rate.map(|r| 1e9 / r);
    // Spread the publishers' schedules evenly over one interval.
    let offset = interval_ns.map_or(0, |iv| {
        (iv * f64::from(spec.id) / publishers.max(1) as f64) as u64
    });
    let mut sender = Sender {
        id: spec.id,
        qos: cfg.qos,
        packet: Packet::Publish(Publish {
            dup: false,
            qos: cfg.qos,
            retain: false,
            topic,
            packet_id: None,
            properties: PublishProperties::default(),
            payload: payload::template(cfg.payload_bytes),
        }),
        payload_len: cfg.payload_bytes.max(HEADER_BYTES),
        seq: 0,
        limit,
        next_id: 0,
        in_use: IdSet::new(),
        inflight: VecDeque::new(),
        window: window.max(1),
        interval_ns,
        first_due_ns: start + offset,
    };
    let sent = send(&local, &slot, &mut conn, &mut sender, end).await;
    out.sent = sender.seq;
    finalize(&local, spec.id, sender.seq);
    let result = match sent {
        Ok(()) => complete(&local, &slot, &mut conn, &mut sender).await,
        Err(e) => Err(e),
    };
    out.unacked = sender.inflight.len() as u64;
    match result {
        Ok(()) => conn.disconnect().await,
        Err(e) => local.error(format_args!("publisher {}: {e}", spec.client_id)),
    }
    out
}

/// Publishes the final count of messages sent, for the main thread's drain.
fn finalize(local: &Local, id: u32, sent: u64) {
    if let Some(slot) = local.shared.publisher_sent.get(id as usize) {
        slot.store(sent, Relaxed);
    }
    local.shared.publishers_final.fetch_add(1, Relaxed);
    local.add(|c| &c.done, 1);
}

/// Publishes until `end` (or the limit), handling acknowledgements as they come.
async fn send(
    local: &Rc<Local>,
    slot: &Slot,
    conn: &mut Conn,
    s: &mut Sender,
    end: u64,
) -> Result<(), ConnError> {
    let ping_after = local.cfg.ping_after_ns();
    loop {
        let now = clock::now_ns();
        if now >= end || s.seq >= s.limit || local.phase() >= Phase::Finish {
            // What is still buffered goes out while draining.
            return Ok(());
        }
        let n = s.quota(now);
        for _ in 0..n {
            let stamp = match s.interval_ns {
                Some(_) => s.due_at(s.seq),
                None => now,
            };
            s.encode(conn, stamp, now)?;
        }
        local.add(|c| &c.sent, n as u64);
        if n > 0 && local.in_window(now) {
            local.stats.borrow_mut().window_sent += n as u64;
        }
        ping_if_quiet(conn, ping_after, now)?;
        if !flush(local, slot, conn, end).await? {
            // The broker stopped reading: publishing time is over (or the run ended).
            return Ok(());
        }
        let must_wait = match s.interval_ns {
            Some(_) => s.room() == 0 || s.due_at(s.seq) > clock::now_ns(),
            None => s.room() == 0,
        };
        if must_wait {
            // Open loop: also wake when the next message is due (or publishing ends).
            let wake_at = match s.interval_ns {
                Some(_) if s.room() > 0 => Some(s.due_at(s.seq).min(end)),
                _ => None,
            };
            let got = future::or(async { conn.fill().await.map(|()| true) }, async {
                match wake_at {
                    Some(at) => {
                        future::or(slot.wait(), async {
                            Timer::new(clock::until(at)).await;
                        })
                        .await;
                    }
                    None => slot.wait().await,
                }
                Ok(false)
            })
            .await?;
            if got {
                s.on_input(local, conn, clock::now_ns())?;
            }
        } else {
            // Closed loop with room left (QoS 0): let other tasks run, take what arrived.
            glommio::yield_if_needed().await;
            if conn.try_fill().await? {
                s.on_input(local, conn, clock::now_ns())?;
            }
        }
    }
}

/// After publishing: waits for the outstanding acknowledgements, then for the end.
async fn complete(
    local: &Rc<Local>,
    slot: &Slot,
    conn: &mut Conn,
    s: &mut Sender,
) -> Result<(), ConnError> {
    let ping_after = local.cfg.ping_after_ns();
    while local.phase() < Phase::Finish {
        if !flush(local, slot, conn, u64::MAX).await? {
            return Err(ConnError::TimedOut("the broker to read what was published"));
        }
        let got = future::or(async { conn.fill().await.map(|()| true) }, async {
            slot.wait().await;
            Ok(false)
        })
        .await?;
        let now = clock::now_ns();
        if got {
            s.on_input(local, conn, now)?;
        }
        ping_if_quiet(conn, ping_after, now)?;
    }
    Ok(())
}

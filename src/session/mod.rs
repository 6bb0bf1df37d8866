//! Session state on the client's home shard: subscriptions, the outbound inflight window
//! with its bounded pending queue, packet id allocation, inbound QoS 2 ids, expiry.
//!
//! Pure state: no sockets, no awaits. Deliveries are encoded into the attached
//! connection's [`Outbox`]; without a connection, QoS 1/2 deliveries wait in the pending
//! queue (QoS 0 ones are dropped, as most brokers do) until the client returns.

mod notify;
mod outbox;
mod will;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::num::NonZeroU16;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use notify::Notify;
pub use outbox::{ConnDetails, Outbox};
pub use will::{will_record, SessionWill};

use crate::limit::{Limit, LimitStats};
use crate::message::Message;
use crate::metrics::DropReason;
use crate::persist::state::StateRecord;
use crate::persist::LogOffset;
use crate::protocol::{
    Ack, Packet, PacketId, Publish, QoS, SubscriptionId, SubscriptionOptions, TopicFilter,
    TopicName,
};

/// Bounds of one session, from `[limits]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Most QoS 1/2 messages waiting behind the inflight window.
    pub queued_messages_max: usize,
    /// Most payload + topic bytes waiting behind the inflight window.
    pub queued_bytes_max: usize,
    /// Most unacknowledged QoS 1/2 PUBLISHes sent to the client (v5: also capped by the
    /// client's Receive Maximum).
    pub inflight_count_max: u16,
    /// Queued messages at which a connected session pushes back on publishers; 0: never.
    pub pushback_messages: usize,
}

/// One subscription of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub options: SubscriptionOptions,
    pub id: Option<SubscriptionId>,
}

/// What one delivery to this session carries.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: Rc<Message>,
    /// min(published QoS, granted QoS).
    pub qos: QoS,
    pub retain: bool,
    pub subscription_ids: Vec<SubscriptionId>,
    /// For a member of a share group: the shared subscription (`$share/group/filter`)
    /// this delivery came through, so that it can go to another member if this one
    /// leaves without acknowledging it.
    pub share: Option<std::sync::Arc<str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InflightState {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published,
    /// PUBREL sent; waiting for PUBCOMP.
    Released,
}

#[derive(Debug)]
struct Inflight {
    packet_id: PacketId,
    delivery: Delivery,
    state: InflightState,
    /// Durable sessions: the delivery's sequence number and its `Deliver` record.
    seq: u64,
    at: Option<LogOffset>,
}

/// The durable side of a persistent session: its number in the shard's log, the sequence
/// numbers of its deliveries, and its queue on disk. An offline session's queue is only
/// here as a place in the log and a count, so it costs the same memory whatever its length.
///
/// State changes are written as [`StateRecord`]s into `journal`, which the shard moves to
/// its log after each operation ([`Session::take_journal`]).
#[derive(Debug, Default)]
pub struct Durable {
    pub no: u64,
    /// The sequence number the next delivery gets (the first is 1).
    next_seq: u64,
    /// Highest sequence number loaded into the window.
    loaded_seq: u64,
    /// Where the reader looks for the next delivery queued on disk.
    disk_next: Option<LogOffset>,
    /// Deliveries queued on disk, not loaded yet, and their bytes (payload + topic).
    disk_count: u64,
    disk_bytes: u64,
    /// From recovery: complete deliveries the reader passes over, deliveries whose PUBREC
    /// had come (PUBREL is resent), and deliveries sent before (resent with DUP 1).
    skip: BTreeSet<u64>,
    released: BTreeSet<u64>,
    sent: BTreeSet<u64>,
    /// Inbound QoS 2 messages accepted and not released, with where they were first
    /// accepted (their tag): a checkpoint copies them, recovery routes them again.
    accepted: HashMap<u16, (LogOffset, Rc<Message>)>,
    /// The will, as logged: the connected client's, or one pending after its connection
    /// ended (see [`SessionWill`]). Boxed: most sessions have none.
    will: Option<Box<SessionWill>>,
    journal: Vec<StateRecord>,
}

/// A persistent session's queue as recovery found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredQueue {
    pub next_seq: u64,
    pub low_seq: u64,
    pub cursor: Option<LogOffset>,
    pub acked: BTreeSet<u64>,
    pub released: BTreeSet<u64>,
    pub sent: BTreeSet<u64>,
    /// Bytes of the queued messages, as far as known (recovery estimates it).
    pub bytes: u64,
}

impl RecoveredQueue {
    pub fn new() -> Self {
        RecoveredQueue {
            next_seq: 1,
            low_seq: 1,
            ..Default::default()
        }
    }

    /// Deliveries still to be completed.
    pub fn len(&self) -> u64 {
        self.next_seq.saturating_sub(self.low_seq) - self.acked.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything below `low` is complete: forget what is known about it.
    pub fn advance(&mut self, low: u64) {
        if low > self.low_seq {
            self.low_seq = low;
        }
        let low = self.low_seq;
        for set in [&mut self.acked, &mut self.released, &mut self.sent] {
            *set = set.split_off(&low);
        }
    }
}

/// Where a delivery to a persistent session goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub seq: u64,
    /// Sent now (connected, window open); otherwise queued on disk.
    pub send_now: bool,
}

/// The quotas of one persistent session's disk queue.
#[derive(Debug, Clone, Copy)]
pub struct DiskQuota {
    pub messages: u64,
    pub bytes: u64,
    /// The config keys that set it (for the log line when it is hit).
    pub keys: &'static str,
}

impl DiskQuota {
    /// No room at all: the shard's log is at its share of `storage.disk_quota_bytes`.
    pub const FULL: DiskQuota = DiskQuota {
        messages: 0,
        bytes: 0,
        keys: "storage.disk_quota_bytes",
    };
}

/// What the shard read from the log for a session's queue reader.
#[derive(Debug)]
pub struct Loaded {
    pub seq: u64,
    pub at: LogOffset,
    /// Where the reader continues.
    pub next: LogOffset,
    pub delivery: Delivery,
}

/// The packet id of a durable session's delivery `seq`: stable across restarts.
pub fn packet_id_of(seq: u64) -> PacketId {
    let id = ((seq.saturating_sub(1)) % u64::from(u16::MAX)) as u16 + 1;
    PacketId::new(id).unwrap_or(PacketId::MIN)
}

/// Why an acknowledgement from the client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("acknowledgement for unknown packet identifier {0}")]
    UnknownPacketId(u16),
    #[error("{0} does not match the state of packet identifier {1}")]
    WrongState(&'static str, u16),
}

/// Counts of what a session dropped, for metrics and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    /// QoS 0 messages not sent because the client was offline or its buffer full.
    pub qos0: u64,
    /// QoS 1/2 messages refused because the pending queue was full.
    pub queue_full: u64,
    /// Messages larger than the client's Maximum Packet Size [MQTT-3.1.2-25].
    pub too_large: u64,
    /// Queued messages whose Message Expiry Interval passed before they were sent.
    pub expired: u64,
}

/// A client's session.
///
/// # Invariants
/// `inflight.len() <= send_window()` except transiently after the window shrinks on a
/// reconnect; every inflight packet id is distinct; `pending_bytes` is the sum of the
/// pending messages' sizes, and is what this session adds to its shard's queued-memory
/// gauge (`stats`).
#[derive(Debug)]
pub struct Session {
    pub client_id: Arc<str>,
    pub subscriptions: HashMap<TopicFilter, Subscribed>,
    /// Seconds the session outlives its connection; `u32::MAX` never expires.
    pub expiry_secs: u32,
    pub disconnected_at: Option<Instant>,
    limits: SessionLimits,
    inflight: VecDeque<Inflight>,
    pending: VecDeque<Delivery>,
    pending_bytes: usize,
    next_packet_id: u16,
    inbound_qos2: HashSet<u16>,
    outbox: Option<Rc<Outbox>>,
    /// Woken when the queue has drained to the low-water mark, the session is stalled, or
    /// the client is gone: what acknowledgements held back by this session wait for.
    /// Made on first use: most sessions never push back.
    drained: Option<Rc<Notify>>,
    /// A publisher waited `pushback_wait_ms` in vain: nobody waits for this session until
    /// its queue is back at the low-water mark.
    stalled: bool,
    /// The client's Receive Maximum (v5), else `limits.inflight_count_max`.
    client_receive_max: u16,
    /// The client's Maximum Packet Size; `usize::MAX` when it set none.
    client_max_packet_bytes: usize,
    /// Topic aliases towards the connected client (v5, when it accepts them).
    aliases: Option<Box<OutAliases>>,
    pub drops: Drops,
    /// Persistent sessions: their durable state. Boxed: clean sessions have none.
    durable: Option<Box<Durable>>,
    /// Who the client is and, with an ACL, what it may read and write (decisions cached).
    /// `None`: an anonymous client and no ACL, nothing to check.
    pub access: Option<Box<crate::auth::ClientAccess>>,
    /// The shard's counters of limits hit, and its queued-memory gauge.
    stats: Rc<LimitStats>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stats.queued_sub(self.pending_bytes);
    }
}

impl Session {
    /// A session counting its queued bytes and dropped deliveries in `stats` (its shard's).
    pub fn new(client_id: Arc<str>, limits: SessionLimits, stats: Rc<LimitStats>) -> Self {
        Session {
            client_id,
            subscriptions: HashMap::new(),
            expiry_secs: 0,
            disconnected_at: None,
            limits,
            inflight: VecDeque::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            next_packet_id: 1,
            inbound_qos2: HashSet::new(),
            outbox: None,
            drained: None,
            stalled: false,
            client_receive_max: limits.inflight_count_max,
            client_max_packet_bytes: usize::MAX,
            aliases: None,
            drops: Drops::default(),
            durable: None,
            access: None,
            stats,
        }
    }

    /// Whether the client may receive a message on `topic` (the ACL; true without one).
    pub fn may_read(&mut self, topic: &str) -> bool {
        self.access.as_mut().map_or(true, |a| a.may_read(topic))
    }

    /// Whether the client may publish to `topic` (the ACL; true without one).
    pub fn may_write(&mut self, topic: &str) -> bool {
        self.access.as_mut().map_or(true, |a| a.may_write(topic))
    }

    /// Whether the client may subscribe to `filter` (the ACL; true without one).
    pub fn may_subscribe(&self, filter: &str) -> bool {
        self.access
            .as_ref()
            .map_or(true, |a| a.may_subscribe(filter))
    }

    /// Who the client is (anonymous when nothing was recorded).
    pub fn principal(&self) -> crate::auth::Principal {
        self.access
            .as_ref()
            .map_or_else(crate::auth::Principal::anonymous, |a| a.principal.clone())
    }

    /// Makes this session durable under number `no`, with the queue recovery found (or a
    /// new, empty one).
    pub fn make_durable(&mut self, no: u64, queue: RecoveredQueue) {
        let disk_count = queue.len();
        self.durable = Some(Box::new(Durable {
            no,
            next_seq: queue.next_seq.max(1),
            loaded_seq: queue.low_seq.saturating_sub(1),
            disk_next: if disk_count > 0 { queue.cursor } else { None },
            disk_count: if queue.cursor.is_some() {
                disk_count
            } else {
                0
            },
            disk_bytes: if queue.cursor.is_some() {
                queue.bytes
            } else {
                0
            },
            skip: queue.acked,
            released: queue.released,
            sent: queue.sent,
            accepted: HashMap::new(),
            will: None,
            journal: Vec::new(),
        }));
    }

    pub fn durable_no(&self) -> Option<u64> {
        self.durable.as_ref().map(|d| d.no)
    }

    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Records for the log since the last call.
    pub fn take_journal(&mut self) -> Vec<StateRecord> {
        match &mut self.durable {
            Some(d) if !d.journal.is_empty() => std::mem::take(&mut d.journal),
            _ => Vec::new(),
        }
    }

    /// Adds a record to the journal (durable sessions only).
    pub fn journal(&mut self, record: StateRecord) {
        if let Some(d) = &mut self.durable {
            d.journal.push(record);
        }
    }

    /// An inbound QoS 2 message of a durable session, accepted at `at`.
    pub fn accepted(&mut self, packet_id: PacketId, at: LogOffset, message: Rc<Message>) {
        if let Some(d) = &mut self.durable {
            d.accepted.insert(packet_id.get(), (at, message));
        }
    }

    /// PUBREL for an accepted message: it is forgotten (journalled).
    pub fn release_accepted(&mut self, packet_id: PacketId) {
        if let Some(d) = &mut self.durable {
            if d.accepted.remove(&packet_id.get()).is_some() {
                let no = d.no;
                self.journal(StateRecord::InReleased { no, packet_id });
            }
        }
    }

    /// The accepted inbound QoS 2 messages, as a checkpoint writes them.
    pub fn accepted_state(&self) -> Vec<StateRecord> {
        let Some(d) = &self.durable else {
            return Vec::new();
        };
        d.accepted
            .iter()
            .filter_map(|(id, (at, m))| {
                Some(StateRecord::Accepted {
                    no: d.no,
                    packet_id: PacketId::new(*id)?,
                    first: Some(*at),
                    message: Message::clone(m),
                })
            })
            .collect()
    }

    /// The queue as a checkpoint writes it.
    pub fn queue_state(&self) -> Option<StateRecord> {
        let d = self.durable.as_ref()?;
        let (low_seq, low_offset) = self.low_mark(d);
        Some(StateRecord::Queue {
            no: d.no,
            next_seq: d.next_seq,
            low_seq,
            low_offset,
            acked: d.skip.iter().copied().collect(),
            released: self
                .inflight
                .iter()
                .filter(|f| f.state == InflightState::Released)
                .map(|f| f.seq)
                .chain(d.released.iter().copied())
                .collect(),
            sent: self
                .inflight
                .iter()
                .map(|f| f.seq)
                .chain(d.sent.iter().copied())
                .collect(),
        })
    }

    /// Where this session's oldest incomplete delivery is in the log, and about how many
    /// bytes of log its incomplete deliveries take: what decides whether moving its queue
    /// forward lets old segments go.
    pub fn pinned(&self) -> Option<(LogOffset, u64)> {
        let d = self.durable.as_ref()?;
        let (_, at) = self.low_mark(d);
        let inflight: u64 = self
            .inflight
            .iter()
            .filter(|f| f.seq > 0)
            .map(|f| f.delivery.message.size_bytes() as u64)
            .sum();
        Some((at?, d.disk_bytes + inflight))
    }

    /// Whether delivery `seq` is still to be completed (what a queue move copies).
    pub fn is_incomplete(&self, seq: u64) -> bool {
        let Some(d) = self.durable.as_ref() else {
            return false;
        };
        (seq > d.loaded_seq && !d.skip.contains(&seq)) || self.inflight.iter().any(|f| f.seq == seq)
    }

    /// The queue was copied forward in the log: `moved` maps each incomplete delivery to
    /// its copy. Journals the queue's new state.
    pub fn relocated(&mut self, moved: &HashMap<u64, LogOffset>) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        for f in &mut self.inflight {
            if let Some(at) = moved.get(&f.seq) {
                f.at = Some(*at);
            }
        }
        if d.disk_count > 0 {
            let first_on_disk = moved
                .iter()
                .filter(|(seq, _)| **seq > d.loaded_seq)
                .min_by_key(|(seq, _)| **seq)
                .map(|(_, at)| *at);
            if first_on_disk.is_some() {
                d.disk_next = first_on_disk;
            }
        }
        if let Some(q) = self.queue_state() {
            self.journal(q);
        }
    }

    /// The oldest incomplete delivery: its sequence number and where to find it.
    fn low_mark(&self, d: &Durable) -> (u64, Option<LogOffset>) {
        match self.inflight.iter().find(|f| f.seq > 0) {
            Some(f) => (f.seq, f.at),
            None if d.disk_count > 0 => (d.loaded_seq + 1, d.disk_next),
            None => (d.next_seq, None),
        }
    }

    /// Where a delivery to this persistent session goes, given its size; `None` if the
    /// session is not durable or its disk quota is full (the delivery is dropped for it,
    /// and counted).
    pub fn plan_durable(&mut self, size: usize, quota: DiskQuota) -> Option<Planned> {
        let window = self.send_window();
        let connected = self.is_connected();
        let d = self.durable.as_mut()?;
        if d.disk_count >= quota.messages || d.disk_bytes + size as u64 > quota.bytes {
            let (queued, bytes) = (d.disk_count, d.disk_bytes);
            self.queue_full(queued, bytes, quota.keys);
            return None;
        }
        let seq = d.next_seq;
        d.next_seq += 1;
        let send_now = connected
            && d.disk_count == 0
            && self.inflight.len() < window
            && !self.uses_packet_id(packet_id_of(seq));
        Some(Planned { seq, send_now })
    }

    /// A delivery planned with [`Session::plan_durable`], whose `Deliver` record is at `at`.
    pub fn deliver_durable(&mut self, delivery: Delivery, planned: Planned, at: LogOffset) {
        let Some(d) = self.durable.as_mut() else {
            return;
        };
        if planned.send_now {
            d.loaded_seq = planned.seq;
            let packet_id = packet_id_of(planned.seq);
            if self.send(&delivery, Some(packet_id), false) {
                self.inflight.push_back(Inflight {
                    packet_id,
                    delivery,
                    state: InflightState::Published,
                    seq: planned.seq,
                    at: Some(at),
                });
            } else {
                self.complete(planned.seq);
            }
            return;
        }
        d.disk_count += 1;
        d.disk_bytes += delivery.message.size_bytes() as u64;
        d.disk_next.get_or_insert(at);
    }

    /// Where the queue reader should look for the next delivery, if the window has room
    /// for one.
    pub fn wants_load(&self) -> Option<(u64, LogOffset)> {
        let d = self.durable.as_ref()?;
        if !self.is_connected() || d.disk_count == 0 || self.inflight.len() >= self.send_window() {
            return None;
        }
        Some((d.no, d.disk_next?))
    }

    /// Whether the reader passes over delivery `seq` (complete before a restart).
    pub fn skips(&mut self, seq: u64, next: LogOffset) -> bool {
        let Some(d) = self.durable.as_mut() else {
            return true;
        };
        if seq <= d.loaded_seq || d.skip.remove(&seq) {
            d.disk_next = Some(next);
            return true;
        }
        false
    }

    /// The reader found nothing more although the count says there is: the count is reset
    /// (this is a bug if it happens, and logged by the caller).
    pub fn disk_exhausted(&mut self) {
        if let Some(d) = self.durable.as_mut() {
            d.disk_count = 0;
            d.disk_bytes = 0;
            d.disk_next = None;
        }
    }

    /// A delivery the reader loaded from the log: into the window, or dropped if its
    /// message expired (v5 Message Expiry Interval). Returns false, and leaves the reader
    /// where it was, if the delivery's packet id is still in use (the window waits).
    pub fn load(&mut self, loaded: Loaded, expired: bool) -> bool {
        let packet_id = packet_id_of(loaded.seq);
        if self.uses_packet_id(packet_id) {
            return false;
        }
        let Some(d) = self.durable.as_mut() else {
            return false;
        };
        d.disk_count = d.disk_count.saturating_sub(1);
        d.disk_bytes = d
            .disk_bytes
            .saturating_sub(loaded.delivery.message.size_bytes() as u64);
        d.disk_next = (d.disk_count > 0).then_some(loaded.next);
        d.loaded_seq = loaded.seq;
        let released = d.released.remove(&loaded.seq);
        let dup = d.sent.remove(&loaded.seq);
        let no = d.no;
        if expired {
            self.drops.expired += 1;
            self.stats.traffic.dropped(DropReason::Expired);
            self.complete(loaded.seq);
            return true;
        }
        if released {
            if let Some(out) = &self.outbox {
                out.push(&Packet::PubRel(Ack::new(packet_id)));
            }
        } else if !self.send(&loaded.delivery, Some(packet_id), dup) {
            self.complete(loaded.seq);
            return true;
        } else if !dup {
            self.journal(StateRecord::Sent {
                no,
                seq: loaded.seq,
            });
        }
        self.inflight.push_back(Inflight {
            packet_id,
            delivery: loaded.delivery,
            state: if released {
                InflightState::Released
            } else {
                InflightState::Published
            },
            seq: loaded.seq,
            at: Some(loaded.at),
        });
        self.check_drained();
        true
    }

    fn uses_packet_id(&self, id: PacketId) -> bool {
        self.inflight.iter().any(|f| f.packet_id == id)
    }

    /// A durable delivery is complete: journal it with the new low mark.
    fn complete(&mut self, seq: u64) {
        let Some(d) = self.durable.as_ref() else {
            return;
        };
        if seq == 0 {
            return;
        }
        let (low_seq, low_offset) = self.low_mark(d);
        let no = d.no;
        self.journal(StateRecord::Acked {
            no,
            seq,
            low_seq,
            low_offset,
        });
    }

    pub fn is_connected(&self) -> bool {
        self.outbox.is_some()
    }

    pub fn outbox(&self) -> Option<&Rc<Outbox>> {
        self.outbox.as_ref()
    }

    /// Attaches a new connection: resends every unacknowledged PUBLISH with DUP set and
    /// every PUBREL [MQTT-4.4.0-1], then fills the window from the pending queue.
    pub fn attach(
        &mut self,
        outbox: Rc<Outbox>,
        client_receive_max: Option<u16>,
        client_max_packet_bytes: Option<usize>,
    ) {
        self.client_receive_max = client_receive_max
            .unwrap_or(u16::MAX)
            .min(self.limits.inflight_count_max)
            .max(1);
        self.client_max_packet_bytes = client_max_packet_bytes.unwrap_or(usize::MAX);
        // Aliases belong to a connection; a new one starts with none.
        self.aliases = None;
        self.disconnected_at = None;
        for f in &self.inflight {
            let packet = match f.state {
                InflightState::Published => {
                    Packet::Publish(publish_packet(&f.delivery, Some(f.packet_id), true))
                }
                InflightState::Released => Packet::PubRel(Ack::new(f.packet_id)),
            };
            outbox.push(&packet);
        }
        self.outbox = Some(outbox);
        self.fill_window();
    }

    /// Lets the broker name topics by alias towards this connection, up to `max` aliases
    /// (the client's Topic Alias Maximum, capped by ours; 0: none) [MQTT-3.3.2-11] (5.0).
    pub fn use_topic_aliases(&mut self, max: u16) {
        self.aliases = (max > 0).then(|| Box::new(OutAliases::new(max)));
    }

    /// The connection ended; the session waits for the client (or expiry).
    pub fn detach(&mut self, now: Instant) {
        self.outbox = None;
        self.aliases = None;
        self.disconnected_at = Some(now);
        // An offline session never holds a publisher back.
        self.wake_waiters();
    }

    /// For a member of share groups whose connection ended: takes out the deliveries of
    /// shared subscriptions that can go to another member: QoS 1 ones sent and not
    /// acknowledged, and QoS 1/2 ones waiting in memory. A QoS 2 message already sent stays:
    /// its delivery completes with this client when it reconnects, and goes to no one else
    /// if its session ends first [MQTT-4.8.2-4/5] (5.0). Deliveries of a persistent session
    /// that wait on disk stay with it. Only deliveries whose shared subscription passes
    /// `movable` (its group has another member) are taken.
    pub fn take_shared(&mut self, movable: impl Fn(&std::sync::Arc<str>) -> bool) -> Vec<Delivery> {
        let mut taken = Vec::new();
        let mut seqs = Vec::new();
        let inflight = std::mem::take(&mut self.inflight);
        for f in inflight {
            if f.delivery.qos == QoS::AtLeastOnce && f.delivery.share.as_ref().is_some_and(&movable)
            {
                seqs.push(f.seq);
                taken.push(f.delivery);
            } else {
                self.inflight.push_back(f);
            }
        }
        let pending = std::mem::take(&mut self.pending);
        for d in pending {
            if d.share.as_ref().is_some_and(&movable) {
                self.unqueue(&d);
                taken.push(d);
            } else {
                self.pending.push_back(d);
            }
        }
        for seq in seqs {
            self.complete(seq);
        }
        taken
    }

    /// Whether this session holds back the acknowledgements of messages that reach it: it
    /// is connected, not stalled, and its queue is at the pushback mark.
    pub fn is_congested(&self) -> bool {
        self.limits.pushback_messages > 0
            && self.queued_len() >= self.limits.pushback_messages
            && self.is_connected()
            && !self.stalled
    }

    /// Whether an acknowledgement held back by this session may go: the queue is down to
    /// half the pushback mark, or the session is stalled or offline.
    pub fn has_room(&self) -> bool {
        self.queued_len() <= self.limits.pushback_messages / 2
            || self.stalled
            || !self.is_connected()
    }

    /// Wakes whoever waits for [`Session::has_room`].
    pub fn drained(&mut self) -> Rc<Notify> {
        self.drained.get_or_insert_with(Rc::default).clone()
    }

    /// A publisher waited the longest allowed: stop holding anyone back for this session
    /// until its queue drains (its overflow is dropped meanwhile, and counted).
    pub fn mark_stalled(&mut self) {
        if !self.stalled {
            self.stalled = true;
            self.wake_waiters();
        }
    }

    fn wake_waiters(&self) {
        if let Some(n) = &self.drained {
            if n.waiters() > 0 {
                n.notify_all();
            }
        }
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Whether a disconnected session has outlived its expiry interval.
    pub fn is_expired(&self, now: Instant) -> bool {
        match (self.disconnected_at, self.expiry_secs) {
            (_, u32::MAX) | (None, _) => false,
            (Some(at), secs) => now.duration_since(at) >= Duration::from_secs(u64::from(secs)),
        }
    }

    fn send_window(&self) -> usize {
        usize::from(self.client_receive_max)
    }

    /// Delivers a message: sent now if connected and the window allows, queued if QoS 1/2,
    /// dropped (and counted) otherwise.
    pub fn deliver(&mut self, delivery: Delivery) {
        if delivery.qos == QoS::AtMostOnce {
            // Shed first when the shard's queued memory is above its high-water mark: QoS 0
            // promises nothing, QoS 1/2 keep their per-session bounds.
            let shed = match &self.outbox {
                Some(_) if self.stats.over_high_water() => Some(Limit::Qos0Shed),
                Some(out) if out.is_full() => Some(Limit::Qos0SlowClient),
                Some(_) => None,
                // Offline: QoS 0 is not kept for a session.
                None => {
                    self.drops.qos0 += 1;
                    return;
                }
            };
            match shed {
                Some(limit) => {
                    self.drops.qos0 += 1;
                    self.stats.hit(limit);
                }
                None => {
                    self.send(&delivery, None, false);
                }
            }
            return;
        }
        if self.is_connected()
            && self.pending.is_empty()
            && self.inflight.len() < self.send_window()
        {
            self.send_inflight(delivery);
            return;
        }
        let size = delivery.message.size_bytes();
        if self.pending.len() >= self.limits.queued_messages_max
            || self.pending_bytes + size > self.limits.queued_bytes_max
        {
            let (queued, bytes) = (self.pending.len() as u64, self.pending_bytes as u64);
            self.queue_full(
                queued,
                bytes,
                "limits.queued_messages_max / queued_bytes_max",
            );
            return;
        }
        self.pending_bytes += size;
        self.stats.queued_add(size);
        self.pending.push_back(delivery);
    }

    /// A delivery dropped because the session's queue is at its bound: counted, and
    /// logged the first time and every 10,000th (seen, without drowning the log).
    fn queue_full(&mut self, queued: u64, bytes: u64, bound: &str) {
        self.drops.queue_full += 1;
        self.stats.hit(Limit::QueueFull);
        let n = self.drops.queue_full;
        if n == 1 || n % 10_000 == 0 {
            tracing::warn!(
                client_id = %self.client_id, dropped = n, queued, queued_bytes = bytes,
                "session queue full ({bound}): messages for this session are dropped"
            );
        }
    }

    /// A delivery taken out of the pending queue.
    fn unqueue(&mut self, d: &Delivery) {
        let size = d.message.size_bytes();
        self.pending_bytes -= size;
        self.stats.queued_sub(size);
    }

    fn send_inflight(&mut self, delivery: Delivery) {
        let packet_id = self.allocate_packet_id();
        if self.send(&delivery, Some(packet_id), false) {
            self.inflight.push_back(Inflight {
                packet_id,
                delivery,
                state: InflightState::Published,
                seq: 0,
                at: None,
            });
        }
    }

    /// Encodes one delivery into the connection's outbox. Returns false, and counts the
    /// drop, if the packet exceeds the client's Maximum Packet Size [MQTT-3.1.2-25].
    fn send(&mut self, delivery: &Delivery, packet_id: Option<PacketId>, dup: bool) -> bool {
        let Some(out) = &self.outbox else {
            return false;
        };
        let mut packet = Packet::Publish(publish_packet(delivery, packet_id, dup));
        // Checked with the whole topic name: an alias only makes the packet smaller.
        if self.client_max_packet_bytes != usize::MAX
            && !packet
                .encoded_len(out.version())
                .is_ok_and(|n| n <= self.client_max_packet_bytes)
        {
            self.drops.too_large += 1;
            self.stats.traffic.dropped(DropReason::TooLarge);
            return false;
        }
        if let (Some(aliases), Packet::Publish(p)) = (&mut self.aliases, &mut packet) {
            aliases.apply(p);
        }
        out.push(&packet);
        true
    }

    /// Moves pending messages into the inflight window while it has room.
    fn fill_window(&mut self) {
        while self.is_connected() && self.inflight.len() < self.send_window() {
            let Some(d) = self.pending.pop_front() else {
                break;
            };
            self.unqueue(&d);
            // Expired while it waited: deleted, not sent [MQTT-3.3.2-5].
            if d.message.is_expired() {
                self.drops.expired += 1;
                self.stats.traffic.dropped(DropReason::Expired);
                continue;
            }
            self.send_inflight(d);
        }
        self.check_drained();
    }

    /// Wakes the publishers held back by this session once its queue is down to the
    /// low-water mark.
    fn check_drained(&mut self) {
        if self.queued_len() <= self.limits.pushback_messages / 2 {
            self.stalled = false;
            self.wake_waiters();
        }
    }

    /// The next packet id not used by an inflight message.
    fn allocate_packet_id(&mut self) -> PacketId {
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if let Some(pid) = PacketId::new(id) {
                if !self.inflight.iter().any(|f| f.packet_id == pid) {
                    return pid;
                }
            }
        }
    }

    fn position(&self, packet_id: PacketId) -> Option<usize> {
        // Acks usually come in order: the front is checked first.
        match self.inflight.front() {
            Some(f) if f.packet_id == packet_id => Some(0),
            _ => self.inflight.iter().position(|f| f.packet_id == packet_id),
        }
    }

    /// PUBACK from the client: QoS 1 delivery complete.
    pub fn on_puback(&mut self, packet_id: PacketId) -> Result<(), AckError> {
        let i = self
            .position(packet_id)
            .ok_or(AckError::UnknownPacketId(packet_id.get()))?;
        match self.inflight.get(i) {
            Some(f) if f.delivery.qos == QoS::AtLeastOnce => {
                let seq = self.inflight.remove(i).map_or(0, |f| f.seq);
                self.complete(seq);
                self.fill_window();
                Ok(())
            }
            _ => Err(AckError::WrongState("PUBACK", packet_id.get())),
        }
    }

    /// PUBREC from the client: answer PUBREL and wait for PUBCOMP.
    pub fn on_pubrec(&mut self, packet_id: PacketId) -> Result<(), AckError> {
        let i = self
            .position(packet_id)
            .ok_or(AckError::UnknownPacketId(packet_id.get()))?;
        let Some(f) = self.inflight.get_mut(i) else {
            return Err(AckError::UnknownPacketId(packet_id.get()));
        };
        if f.delivery.qos != QoS::ExactlyOnce {
            return Err(AckError::WrongState("PUBREC", packet_id.get()));
        }
        let fresh = f.state == InflightState::Published;
        f.state = InflightState::Released;
        let seq = f.seq;
        if let Some(out) = &self.outbox {
            out.push(&Packet::PubRel(Ack::new(packet_id)));
        }
        if let (true, Some(d)) = (fresh && seq > 0, &self.durable) {
            let no = d.no;
            self.journal(StateRecord::Released { no, seq });
        }
        Ok(())
    }

    /// PUBCOMP from the client: QoS 2 delivery complete.
    pub fn on_pubcomp(&mut self, packet_id: PacketId) -> Result<(), AckError> {
        let i = self
            .position(packet_id)
            .ok_or(AckError::UnknownPacketId(packet_id.get()))?;
        match self.inflight.get(i) {
            Some(f) if f.state == InflightState::Released => {
                let seq = self.inflight.remove(i).map_or(0, |f| f.seq);
                self.complete(seq);
                self.fill_window();
                Ok(())
            }
            _ => Err(AckError::WrongState("PUBCOMP", packet_id.get())),
        }
    }

    /// An inbound QoS 2 PUBLISH: true if this packet id is new (route the message), false
    /// if it is a resend of one not yet released (only answer PUBREC again).
    pub fn inbound_qos2_begin(&mut self, packet_id: PacketId) -> bool {
        self.inbound_qos2.insert(packet_id.get())
    }

    /// PUBREL from the client: true if the packet id was awaiting release.
    pub fn inbound_qos2_release(&mut self, packet_id: PacketId) -> bool {
        self.inbound_qos2.remove(&packet_id.get())
    }

    pub fn has_inbound_qos2(&self, packet_id: PacketId) -> bool {
        self.inbound_qos2.contains(&packet_id.get())
    }

    /// PUBREC with a failure reason (v5): the client will not take the message; the QoS 2
    /// exchange ends and the window has room again.
    pub fn on_pubrec_failed(&mut self, packet_id: PacketId) -> Result<(), AckError> {
        let i = self
            .position(packet_id)
            .ok_or(AckError::UnknownPacketId(packet_id.get()))?;
        let seq = self.inflight.remove(i).map_or(0, |f| f.seq);
        self.complete(seq);
        self.fill_window();
        Ok(())
    }

    /// Inbound QoS 2 messages received and not yet released.
    pub fn inbound_qos2_len(&self) -> usize {
        self.inbound_qos2.len()
    }

    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Messages waiting behind the window, in memory or (persistent sessions) on disk.
    pub fn queued_len(&self) -> usize {
        self.pending.len() + self.disk_queue_len() as usize
    }

    /// Messages queued on disk (persistent sessions).
    pub fn disk_queue_len(&self) -> u64 {
        self.durable.as_ref().map_or(0, |d| d.disk_count)
    }
}

/// The topic aliases the broker has set on one connection (server to client).
///
/// A topic gets the next free alias the first time it is sent (that PUBLISH carries topic
/// and alias); later PUBLISHes carry the alias and an empty topic name. Once every alias is
/// taken, other topics go by name: an alias is never reassigned, since churning aliases
/// among more topics than there are aliases makes every packet larger, not smaller. Bounded
/// by the client's Topic Alias Maximum.
#[derive(Debug)]
struct OutAliases {
    /// Topic -> alias; the aliases are 1..=len.
    by_topic: HashMap<TopicName, NonZeroU16>,
    max: u16,
}

impl OutAliases {
    fn new(max: u16) -> Self {
        OutAliases {
            by_topic: HashMap::new(),
            max,
        }
    }

    /// Names the PUBLISH's topic by alias, setting one up if one is free.
    fn apply(&mut self, p: &mut Publish) {
        if let Some(&alias) = self.by_topic.get(&p.topic) {
            p.properties.topic_alias = Some(alias);
            p.topic = TopicName::EMPTY;
            return;
        }
        let next = u16::try_from(self.by_topic.len() + 1).ok();
        let Some(alias) = next.filter(|n| *n <= self.max).and_then(NonZeroU16::new) else {
            return;
        };
        // A copy: the message's topic may be a slice of a larger buffer it would pin.
        let Ok(topic) = TopicName::try_from(p.topic.as_str()) else {
            return;
        };
        self.by_topic.insert(topic, alias);
        p.properties.topic_alias = Some(alias);
    }
}

/// The PUBLISH packet of one delivery.
fn publish_packet(d: &Delivery, packet_id: Option<PacketId>, dup: bool) -> Publish {
    let mut properties = d.message.properties.to_publish();
    properties
        .subscription_identifiers
        .clone_from(&d.subscription_ids);
    if let Some(secs) = properties.message_expiry_interval {
        // What is left of the interval [MQTT-3.3.2-6]; at least 1 (a message in flight
        // when it expired is still resent: its delivery had started).
        let waited = d.message.received_at.elapsed().as_secs();
        let left = u64::from(secs).saturating_sub(waited).max(1);
        properties.message_expiry_interval = Some(u32::try_from(left).unwrap_or(secs));
    }
    Publish {
        dup: dup && packet_id.is_some(),
        qos: d.qos,
        retain: d.retain,
        topic: d.message.topic.clone(),
        packet_id,
        properties,
        payload: d.message.payload.clone(),
    }
}

#[cfg(test)]
mod tests;

//! Session state on the client's home shard: subscriptions, the outbound inflight window
//! with its bounded pending queue, packet id allocation, inbound QoS 2 ids, expiry.
//!
//! Pure state: no sockets, no awaits. Deliveries are encoded into the attached
//! connection's [`Outbox`]; without a connection, QoS 1/2 deliveries wait in the pending
//! queue (QoS 0 ones are dropped, as most brokers do) until the client returns.

mod notify;
mod outbox;

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use notify::Notify;
pub use outbox::Outbox;

use crate::message::Message;
use crate::protocol::{
    Ack, Packet, PacketId, Publish, QoS, SubscriptionId, SubscriptionOptions, TopicFilter,
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
}

/// A client's session.
///
/// # Invariants
/// `inflight.len() <= send_window()` except transiently after the window shrinks on a
/// reconnect; every inflight packet id is distinct; `pending_bytes` is the sum of the
/// pending messages' sizes.
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
    pub drops: Drops,
}

impl Session {
    pub fn new(client_id: Arc<str>, limits: SessionLimits) -> Self {
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
            drops: Drops::default(),
        }
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

    /// The connection ended; the session waits for the client (or expiry).
    pub fn detach(&mut self, now: Instant) {
        self.outbox = None;
        self.disconnected_at = Some(now);
        // An offline session never holds a publisher back.
        self.wake_waiters();
    }

    /// Whether this session holds back the acknowledgements of messages that reach it: it
    /// is connected, not stalled, and its queue is at the pushback mark.
    pub fn is_congested(&self) -> bool {
        self.limits.pushback_messages > 0
            && self.pending.len() >= self.limits.pushback_messages
            && self.is_connected()
            && !self.stalled
    }

    /// Whether an acknowledgement held back by this session may go: the queue is down to
    /// half the pushback mark, or the session is stalled or offline.
    pub fn has_room(&self) -> bool {
        self.pending.len() <= self.limits.pushback_messages / 2
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
            match &self.outbox {
                Some(out) if !out.is_full() => {
                    self.send(&delivery, None);
                }
                _ => self.drops.qos0 += 1,
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
            self.drops.queue_full += 1;
            return;
        }
        self.pending_bytes += size;
        self.pending.push_back(delivery);
    }

    fn send_inflight(&mut self, delivery: Delivery) {
        let packet_id = self.allocate_packet_id();
        if self.send(&delivery, Some(packet_id)) {
            self.inflight.push_back(Inflight {
                packet_id,
                delivery,
                state: InflightState::Published,
            });
        }
    }

    /// Encodes one delivery into the connection's outbox. Returns false, and counts the
    /// drop, if the packet exceeds the client's Maximum Packet Size [MQTT-3.1.2-25].
    fn send(&mut self, delivery: &Delivery, packet_id: Option<PacketId>) -> bool {
        let Some(out) = &self.outbox else {
            return false;
        };
        let packet = Packet::Publish(publish_packet(delivery, packet_id, false));
        if self.client_max_packet_bytes != usize::MAX
            && !packet
                .encoded_len(out.version())
                .is_ok_and(|n| n <= self.client_max_packet_bytes)
        {
            self.drops.too_large += 1;
            return false;
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
            self.pending_bytes -= d.message.size_bytes();
            self.send_inflight(d);
        }
        if self.pending.len() <= self.limits.pushback_messages / 2 {
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
                self.inflight.remove(i);
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
        f.state = InflightState::Released;
        if let Some(out) = &self.outbox {
            out.push(&Packet::PubRel(Ack::new(packet_id)));
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
                self.inflight.remove(i);
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
        self.inflight.remove(i);
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
}

/// The PUBLISH packet of one delivery.
fn publish_packet(d: &Delivery, packet_id: Option<PacketId>, dup: bool) -> Publish {
    let mut properties = d.message.properties.clone();
    properties
        .subscription_identifiers
        .clone_from(&d.subscription_ids);
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

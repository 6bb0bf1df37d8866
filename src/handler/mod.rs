//! Packet handlers on the client's home shard: ONE dispatch match, ONE map from error to
//! reason code. Handlers decide whether and what; the shard's router decides where.

mod ack;
mod auth;
mod publish;
mod subscribe;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::message::Message;
use crate::persist::state::StateRecord;
use crate::protocol::{DecodeError, Packet, PacketType, ProtocolVersion, ReasonCode, Will};
use crate::session::{Outbox, Session};
use crate::shard::pushback::AckTicket;
use crate::shard::{SessionKey, Shard};

/// A connection's state as the handlers see it.
pub struct Conn {
    pub shard: Rc<Shard>,
    pub version: ProtocolVersion,
    pub client_id: Arc<str>,
    pub key: SessionKey,
    pub session: Rc<RefCell<Session>>,
    pub outbox: Rc<Outbox>,
    /// Boxed: most connections have none, and a `Will` is over 200 bytes.
    pub will: Option<Box<Will>>,
    /// The Session Expiry Interval the CONNECT set (v5 forbids raising 0 at DISCONNECT).
    pub session_expiry_at_connect: u32,
    /// v5 Request Problem Information: reason strings may be sent.
    pub problem_information: bool,
    /// The client's Maximum Packet Size (v5; `u32::MAX` when it set none).
    pub client_packet_max: u32,
    /// PUBACKs / PUBRECs waiting for pushback, in the order of their PUBLISHes.
    pub held: VecDeque<HeldAck>,
    /// The topic of each alias the client set (v5), index alias - 1; made on first use,
    /// `limits.topic_alias_max` long.
    pub aliases: Option<Box<[Option<crate::protocol::TopicName>]>>,
    /// Enhanced authentication, when the CONNECT used it: the method, the user, and a
    /// re-authentication under way. Boxed: most connections have none.
    pub auth: Option<Box<crate::auth::ConnAuth>>,
}

/// An acknowledgement that waits for its ticket (and for those before it).
pub struct HeldAck {
    pub packet: Packet,
    pub ticket: Option<Rc<AckTicket>>,
}

impl HeldAck {
    fn is_due(&self) -> bool {
        self.ticket.as_ref().map_or(true, |t| t.is_released())
    }
}

impl Conn {
    /// Sends a PUBACK / PUBREC once `ticket` is released and every earlier one is sent
    /// (acknowledgements keep the order of their PUBLISHes).
    pub fn acknowledge(&mut self, packet: Packet, ticket: Option<Rc<AckTicket>>) {
        let held = HeldAck { packet, ticket };
        if self.held.is_empty() && held.is_due() {
            self.outbox.push(&held.packet);
        } else {
            self.held.push_back(held);
        }
    }

    /// Sends the held acknowledgements that are due, in order.
    pub fn release_acks(&mut self) {
        while self.held.front().is_some_and(HeldAck::is_due) {
            if let Some(h) = self.held.pop_front() {
                self.outbox.push(&h.packet);
            }
        }
    }

    /// Whether so many acknowledgements are held that the connection stops reading. Only
    /// for v3: a v5 client stops at the Receive Maximum we gave it (or is disconnected
    /// with 0x93), which bounds `held` already.
    pub fn acks_backlogged(&self) -> bool {
        !self.version.is_v5()
            && self.held.len() >= usize::from(self.shard.config.limits.inflight_count_max)
    }

    /// A Reason String for an acknowledgement, if the client may get one: not when it set
    /// Request Problem Information to 0 [MQTT-3.1.2-29], nor when it would take the packet
    /// past the client's Maximum Packet Size (e.g. [MQTT-3.4.2-2], [MQTT-3.9.2-1]); the
    /// acknowledgements that carry one have a fixed part under 16 bytes plus their list.
    pub fn reason_string(&self, text: &str) -> Option<crate::protocol::MqttString> {
        self.reason_string_within(text, 16)
    }

    /// [`Conn::reason_string`] for a packet of `other_bytes` besides the string.
    pub fn reason_string_within(
        &self,
        text: &str,
        other_bytes: usize,
    ) -> Option<crate::protocol::MqttString> {
        if !self.problem_information || !self.version.is_v5() {
            return None;
        }
        if text.len() + 3 + other_bytes > self.client_packet_max as usize {
            return None;
        }
        crate::protocol::MqttString::try_from(text.to_owned()).ok()
    }

    /// QoS 1 PUBLISHes not acknowledged yet (QoS 2 ones count until PUBREL).
    pub fn held_puback_count(&self) -> usize {
        self.held
            .iter()
            .filter(|h| matches!(h.packet, Packet::PubAck(_)))
            .count()
    }
}

/// What the connection does after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The client sent DISCONNECT; `will` if it asked for the will anyway (v5 0x04).
    Disconnect {
        will: bool,
    },
}

/// A packet the broker refuses; the connection ends with [`HandlerError::reason_code`].
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("topic alias {0} is above the topic alias maximum {1}")]
    TopicAlias(u16, u16),
    #[error("more than {0} QoS 1/2 messages unacknowledged (receive maximum)")]
    ReceiveMaximumExceeded(u16),
    #[error("topic name longer than {0} bytes or {1} levels")]
    TopicTooLong(usize, usize),
    #[error("PUBLISH at QoS {0} above the maximum QoS {1} (mqtt.maximum_qos)")]
    QoSNotSupported(u8, u8),
    #[error("PUBLISH with RETAIN set, and retained messages are off (mqtt.retain_available)")]
    RetainNotSupported,
    #[error("SUBSCRIBE with a subscription identifier, and they are off (mqtt.subscription_identifiers)")]
    SubscriptionIdsNotSupported,
    #[error("QoS 0 PUBLISH says its payload is UTF-8 and it is not")]
    PayloadFormatInvalid,
    #[error("re-authentication: {0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error("re-authentication: the AUTH reply exceeds the client's Maximum Packet Size")]
    AuthTooLarge,
    #[error("publishing faster than limits.publish_messages_per_sec / publish_bytes_per_sec")]
    MessageRateTooHigh,
}

impl HandlerError {
    /// The reason code a v5 client gets in the DISCONNECT (the one error -> reason map).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            HandlerError::Decode(e) => e.reason_code(),
            HandlerError::Protocol(_) => ReasonCode::ProtocolError,
            HandlerError::TopicAlias(..) => ReasonCode::TopicAliasInvalid,
            HandlerError::ReceiveMaximumExceeded(_) => ReasonCode::ReceiveMaximumExceeded,
            HandlerError::TopicTooLong(..) => ReasonCode::TopicNameInvalid,
            HandlerError::QoSNotSupported(..) => ReasonCode::QoSNotSupported,
            HandlerError::RetainNotSupported => ReasonCode::RetainNotSupported,
            HandlerError::SubscriptionIdsNotSupported => {
                ReasonCode::SubscriptionIdentifiersNotSupported
            }
            HandlerError::PayloadFormatInvalid => ReasonCode::PayloadFormatInvalid,
            // 0x87 when the exchange fails [MQTT-4.12.1-2], 0x82 when it breaks the rules.
            HandlerError::Auth(e) => e.reason_code(),
            HandlerError::AuthTooLarge => ReasonCode::PacketTooLarge,
            HandlerError::MessageRateTooHigh => ReasonCode::MessageRateTooHigh,
        }
    }
}

/// Handles one packet from the client.
pub async fn dispatch(conn: &mut Conn, packet: Packet) -> Result<Flow, HandlerError> {
    conn.shard.limit_stats.traffic.received(&packet);
    match packet {
        Packet::Publish(p) => publish::publish(conn, p).await,
        Packet::PubAck(a) => ack::puback(conn, a),
        Packet::PubRec(a) => ack::pubrec(conn, a),
        Packet::PubRel(a) => ack::pubrel(conn, a),
        Packet::PubComp(a) => ack::pubcomp(conn, a),
        Packet::Subscribe(s) => subscribe::subscribe(conn, s).await,
        Packet::Unsubscribe(u) => subscribe::unsubscribe(conn, u).await,
        Packet::PingReq => {
            // [MQTT-3.12.4-1]
            conn.outbox.push(&Packet::PingResp);
            Ok(Flow::Continue)
        }
        Packet::Disconnect(d) => {
            if let Some(expiry) = d.properties.session_expiry_interval {
                // Raising it from 0 at DISCONNECT is a protocol error (section 3.14.2.2.2).
                if conn.session_expiry_at_connect == 0 && expiry != 0 {
                    return Err(HandlerError::Protocol(
                        "DISCONNECT sets a session expiry interval after CONNECT set 0",
                    ));
                }
                conn.session.borrow_mut().expiry_secs = expiry;
            }
            // Only a normal disconnection (0x00) deletes the will [MQTT-3.1.2-10] (5.0):
            // 0x04 asks for it, and so does any error code [MQTT-3.14.4-3] (5.0).
            Ok(Flow::Disconnect {
                will: d.reason != ReasonCode::Success,
            })
        }
        // [MQTT-3.1.0-2]
        Packet::Connect(_) => Err(HandlerError::Protocol("second CONNECT")),
        Packet::Auth(a) => auth::auth(conn, &a),
        other => Err(HandlerError::Protocol(match other.packet_type() {
            PacketType::ConnAck => "CONNACK from a client",
            PacketType::SubAck => "SUBACK from a client",
            PacketType::UnsubAck => "UNSUBACK from a client",
            _ => "PINGRESP from a client",
        })),
    }
}

/// The connection is gone: publish the will [MQTT-3.1.2-8] (not after a normal DISCONNECT
/// [MQTT-3.1.2-10]) now, or leave it pending in the session for its Will Delay Interval,
/// then detach the session, or end it if it does not outlive the connection. Does nothing
/// else to a session another connection has taken over.
pub async fn end_session(conn: Conn, publish_will: bool) {
    // A will is published only to a topic the ACL (as it is now) lets the client write.
    let will = conn
        .will
        .as_deref()
        .filter(|_| publish_will)
        .filter(|w| conn.session.borrow_mut().may_write(w.topic.as_str()));
    let delay = will.map_or(0, will_delay);
    let mut delayed = None;
    if let Some(w) = will {
        let live = conn
            .shard
            .sessions
            .borrow()
            .get(conn.key)
            .is_some_and(|s| Rc::ptr_eq(s, &conn.session));
        let ours = is_ours(&conn);
        let ends_now = ours && !conn.session.borrow().keeps_wills();
        // It waits only in a session that outlives this connection; a session taken over by
        // a clean start has ended [MQTT-3.1.2-8]. One resumed by another connection keeps
        // it from being sent at all [MQTT-3.1.3-9].
        if delay == 0 || !live || ends_now {
            let message = will_message(w, &conn.client_id);
            conn.shard.publish(message, None).await;
        } else if ours {
            delayed = Some(will_message(w, &conn.client_id));
        }
    }
    if !is_ours(&conn) {
        return;
    }
    let expiry = {
        let mut s = conn.session.borrow_mut();
        let now = Instant::now();
        s.detach(now);
        match delayed {
            Some(message) => s.delay_will(message, delay, now),
            // The will is published or dropped now, either way not pending.
            None => s.clear_will(),
        }
        if let Some(no) = s.durable_no() {
            let expiry_secs = s.expiry_secs;
            let client_id = s.client_id.clone();
            s.journal(StateRecord::Session {
                no,
                expiry_secs,
                client_id,
            });
            s.journal(StateRecord::Detached {
                no,
                unix_ms: crate::persist::state::unix_ms_now(),
            });
        }
        s.expiry_secs
    };
    conn.shard.sync_session(&conn.session);
    if has_shared(&conn.session) {
        // What this member did not take goes to others in its groups.
        conn.shard.release_shared(conn.key, &conn.session);
        if expiry != 0 {
            conn.shard
                .share_online(conn.key, &conn.session, false)
                .await;
        }
    }
    if expiry == 0 {
        conn.shard.remove_session(conn.key).await;
    }
}

/// Whether a session has shared subscriptions.
pub fn has_shared(session: &RefCell<Session>) -> bool {
    session
        .borrow()
        .subscriptions
        .keys()
        .any(|f| f.shared().is_some())
}

/// Whether the session is still attached to this connection.
fn is_ours(conn: &Conn) -> bool {
    conn.session
        .borrow()
        .outbox()
        .is_some_and(|o| Rc::ptr_eq(o, &conn.outbox))
}

/// A will's Will Delay Interval in seconds (v5; 0 when absent, and for v3).
pub fn will_delay(will: &Will) -> u32 {
    will.properties.will_delay_interval.unwrap_or(0)
}

/// The Application Message a will becomes [MQTT-3.1.2-8].
pub fn will_message(will: &Will, client_id: &Arc<str>) -> Message {
    let p = &will.properties;
    let properties = crate::protocol::PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user_properties: p.user_properties.clone(),
        ..Default::default()
    };
    Message {
        topic: will.topic.clone(),
        payload: will.payload.clone(),
        qos: will.qos,
        // [MQTT-3.1.2-14/15] (v5) / [MQTT-3.1.2-16/17] (3.1.1)
        retain: will.retain,
        properties: properties.into(),
        origin: client_id.clone(),
        received_at: Instant::now(),
    }
}

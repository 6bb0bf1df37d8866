//! PUBLISH from the client: checks that need connection state, QoS 0/1/2 flows, routing.

use std::rc::Rc;

use super::{Conn, Flow, HandlerError};
use crate::limit::Limit;
use crate::message::Message;
use crate::persist::state::{StateRecord, Tag};
use crate::protocol::{Ack, Packet, PacketId, Publish, QoS, TopicName};
use crate::shard::pushback::AckTicket;

pub async fn publish(conn: &mut Conn, mut p: Publish) -> Result<Flow, HandlerError> {
    if let Some(alias) = p.properties.topic_alias {
        p.topic = resolve_alias(conn, alias.get(), p.topic)?;
    }
    if !p.properties.subscription_identifiers.is_empty() {
        return Err(HandlerError::Protocol(
            "PUBLISH from a client carries a subscription identifier [MQTT-3.3.4-6]",
        ));
    }
    let m = &conn.shard.config.mqtt;
    if p.qos > m.maximum_qos() {
        // [MQTT-3.2.2-11] binds the client; the server answers 0x9B (section 4.13).
        return Err(HandlerError::QoSNotSupported(p.qos as u8, m.maximum_qos));
    }
    if p.retain && !m.retain_available {
        // [MQTT-3.2.2-14] binds the client; the server answers 0x9A.
        return Err(HandlerError::RetainNotSupported);
    }
    if m.validate_utf8_payloads
        && p.properties.payload_format_indicator == Some(true)
        && std::str::from_utf8(&p.payload).is_err()
    {
        return refuse_payload(conn, &p);
    }
    let limits = &conn.shard.config.limits;
    let (bytes_max, levels_max) = (
        usize::from(limits.topic_bytes_max),
        usize::from(limits.topic_levels_max),
    );
    if p.topic.len() > bytes_max || p.topic.levels().count() > levels_max {
        conn.shard.limit_stats.hit(Limit::TopicTooLong);
        return Err(HandlerError::TopicTooLong(bytes_max, levels_max));
    }
    if !conn.session.borrow_mut().may_write(p.topic.as_str()) {
        return refuse_unauthorized(conn, &p);
    }
    let packet_id = p.packet_id;
    let max = limits.inflight_count_max;
    match (p.qos, packet_id) {
        (QoS::AtMostOnce, _) => {
            route(conn, p, false).await;
        }
        (QoS::AtLeastOnce, Some(id)) => {
            // More unacknowledged QoS 1/2 PUBLISHes than the Receive Maximum we advertised
            // (only possible while pushback holds acknowledgements back): 0x93.
            if conn.version.is_v5()
                && conn.held_puback_count() + conn.session.borrow().inbound_qos2_len()
                    >= usize::from(max)
            {
                conn.shard.limit_stats.hit(Limit::ReceiveMaximum);
                return Err(HandlerError::ReceiveMaximumExceeded(max));
            }
            let ticket = route(conn, p, true).await;
            conn.acknowledge(Packet::PubAck(Ack::new(id)), ticket);
        }
        (QoS::ExactlyOnce, Some(id)) => {
            // Route only the first time this id arrives; a resend before PUBREL only
            // gets PUBREC again, so the message is delivered once.
            let first = {
                let held = conn.held_puback_count();
                let mut s = conn.session.borrow_mut();
                if s.inbound_qos2_len() + held >= usize::from(max) && !s.has_inbound_qos2(id) {
                    conn.shard.limit_stats.hit(Limit::ReceiveMaximum);
                    return Err(HandlerError::ReceiveMaximumExceeded(max));
                }
                s.inbound_qos2_begin(id)
            };
            let ticket = if first {
                accept_and_route(conn, p, id).await
            } else {
                None
            };
            conn.acknowledge(Packet::PubRec(Ack::new(id)), ticket);
        }
        _ => return Err(HandlerError::Protocol("QoS 1/2 PUBLISH without packet id")),
    }
    Ok(Flow::Continue)
}

/// A PUBLISH whose payload is not the UTF-8 its Payload Format Indicator promises: not
/// delivered; QoS 1/2 get PUBACK / PUBREC 0x99, QoS 0 a DISCONNECT 0x99
/// (section 3.3.2.3.2; checking is optional, `mqtt.validate_utf8_payloads`).
fn refuse_payload(conn: &mut Conn, p: &Publish) -> Result<Flow, HandlerError> {
    let Some(id) = p.packet_id else {
        return Err(HandlerError::PayloadFormatInvalid);
    };
    let mut ack = Ack::new(id);
    ack.reason = crate::protocol::ReasonCode::PayloadFormatInvalid;
    ack.properties.reason_string =
        conn.reason_string("payload is not UTF-8 as its Payload Format Indicator says");
    let packet = match p.qos {
        QoS::ExactlyOnce => Packet::PubRec(ack),
        _ => Packet::PubAck(ack),
    };
    conn.acknowledge(packet, None);
    Ok(Flow::Continue)
}

/// A PUBLISH the ACL does not let this client write: not routed. MQTT 5.0: PUBACK /
/// PUBREC 0x87 Not authorized (QoS 0 has no answer). MQTT 3.1/3.1.1 have no way to say
/// it: the message is acknowledged as usual and dropped, as Mosquitto does (a QoS 2 flow
/// still completes: its PUBREL gets a PUBCOMP).
fn refuse_unauthorized(conn: &mut Conn, p: &Publish) -> Result<Flow, HandlerError> {
    tracing::debug!(client_id = %conn.client_id, topic = %p.topic, "PUBLISH denied by the ACL");
    (conn.shard.limit_stats.traffic).dropped(crate::metrics::DropReason::AclDenied);
    let Some(id) = p.packet_id else {
        return Ok(Flow::Continue);
    };
    let mut ack = Ack::new(id);
    if conn.version.is_v5() {
        ack.reason = crate::protocol::ReasonCode::NotAuthorized;
        ack.properties.reason_string =
            conn.reason_string("not authorized to publish to this topic");
    }
    let packet = match p.qos {
        QoS::ExactlyOnce => Packet::PubRec(ack),
        _ => Packet::PubAck(ack),
    };
    conn.acknowledge(packet, None);
    Ok(Flow::Continue)
}

/// A new inbound QoS 2 message. From a persistent session it is logged first (`Accepted`,
/// whose place is the message's tag): after a restart its id is still known, so a resend
/// is not routed again, and recovery finishes routing it where it had not arrived. The
/// PUBREC waits for that record too.
async fn accept_and_route(conn: &Conn, p: Publish, id: PacketId) -> Option<Rc<AckTicket>> {
    let no = conn.session.borrow().durable_no();
    let Some(no) = no else {
        return route(conn, p, true).await;
    };
    let message = Message::from_publish(p, conn.client_id.clone()).detached();
    let storage = &conn.shard.storage;
    let (at, end) = storage.append(&StateRecord::Accepted {
        no,
        packet_id: id,
        first: None,
        message: message.clone(),
    });
    conn.session
        .borrow_mut()
        .accepted(id, at, Rc::new(message.clone()));
    let tag = Tag {
        shard: conn.shard.id.0,
        offset: at.get(),
    };
    let mut ticket = conn
        .shard
        .publish_tagged(message, Some(&conn.outbox), Some(tag))
        .await;
    if storage.must_wait(end) {
        let t = ticket.get_or_insert_with(|| {
            let t = AckTicket::new(conn.outbox.clone());
            t.release();
            t
        });
        t.hold();
        let t = t.clone();
        storage.when_durable(end, move || t.release());
    }
    ticket
}

/// A v5 PUBLISH with a Topic Alias: with a topic name, the alias is set to it (replacing
/// what it named); without one, the alias names the topic. An alias above the maximum
/// advertised in CONNACK is 0x94 [MQTT-3.3.2-9]; an alias that was never set, a protocol
/// error. Aliases belong to the connection and end with it.
fn resolve_alias(conn: &mut Conn, alias: u16, topic: TopicName) -> Result<TopicName, HandlerError> {
    let max = conn.shard.config.limits.topic_alias_max;
    if alias > max {
        return Err(HandlerError::TopicAlias(alias, max));
    }
    let slots = conn
        .aliases
        .get_or_insert_with(|| vec![None; usize::from(max)].into_boxed_slice());
    let Some(slot) = slots.get_mut(usize::from(alias) - 1) else {
        return Err(HandlerError::TopicAlias(alias, max));
    };
    if topic.is_empty() {
        return slot.clone().ok_or(HandlerError::Protocol(
            "PUBLISH names a topic alias that was never set",
        ));
    }
    // A copy: the name is a slice of the connection's read buffer, which it would pin.
    *slot = TopicName::try_from(topic.as_str()).ok();
    Ok(topic)
}

/// Routes the message; with `acked`, returns the ticket its acknowledgement waits for.
async fn route(conn: &Conn, p: Publish, acked: bool) -> Option<Rc<AckTicket>> {
    let message = Message::from_publish(p, conn.client_id.clone());
    let ack = acked.then_some(&conn.outbox);
    conn.shard.publish(message, ack).await
}

//! PUBLISH from the client: checks that need connection state, QoS 0/1/2 flows, routing.

use super::{Conn, Flow, HandlerError};
use crate::message::Message;
use crate::protocol::{Ack, Packet, Publish, QoS};

pub async fn publish(conn: &mut Conn, p: Publish) -> Result<Flow, HandlerError> {
    // The broker advertises Topic Alias Maximum 0, so any alias is invalid (0x94).
    if let Some(alias) = p.properties.topic_alias {
        return Err(HandlerError::TopicAlias(alias.get()));
    }
    if !p.properties.subscription_identifiers.is_empty() {
        return Err(HandlerError::Protocol(
            "PUBLISH from a client carries a subscription identifier [MQTT-3.3.4-6]",
        ));
    }
    let limits = &conn.shard.config.limits;
    let (bytes_max, levels_max) = (
        usize::from(limits.topic_bytes_max),
        usize::from(limits.topic_levels_max),
    );
    if p.topic.len() > bytes_max || p.topic.levels().count() > levels_max {
        return Err(HandlerError::TopicTooLong(bytes_max, levels_max));
    }
    let packet_id = p.packet_id;
    match (p.qos, packet_id) {
        (QoS::AtMostOnce, _) => route(conn, p).await,
        (QoS::AtLeastOnce, Some(id)) => {
            route(conn, p).await;
            conn.outbox.push(&Packet::PubAck(Ack::new(id)));
        }
        (QoS::ExactlyOnce, Some(id)) => {
            // Route only the first time this id arrives; a resend before PUBREL only
            // gets PUBREC again, so the message is delivered once.
            let first = {
                let mut s = conn.session.borrow_mut();
                let max = limits.inflight_count_max;
                if s.inbound_qos2_len() >= usize::from(max) && !s.has_inbound_qos2(id) {
                    return Err(HandlerError::ReceiveMaximumExceeded(max));
                }
                s.inbound_qos2_begin(id)
            };
            if first {
                route(conn, p).await;
            }
            conn.outbox.push(&Packet::PubRec(Ack::new(id)));
        }
        _ => return Err(HandlerError::Protocol("QoS 1/2 PUBLISH without packet id")),
    }
    Ok(Flow::Continue)
}

async fn route(conn: &Conn, p: Publish) {
    let message = Message::from_publish(p, conn.client_id.clone());
    conn.shard.publish(message).await;
}

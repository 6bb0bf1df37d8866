//! PUBACK, PUBREC, PUBREL and PUBCOMP from the client: the QoS 1 and QoS 2 flows.

use super::{Conn, Flow, HandlerError};
use crate::protocol::{Ack, Packet, ReasonCode};
use crate::shard::pushback::AckTicket;

/// An acknowledgement for an id we do not have in flight is ignored (it may answer a
/// message from before a reconnect that the session no longer holds).
pub fn puback(conn: &mut Conn, a: Ack) -> Result<Flow, HandlerError> {
    if let Err(e) = conn.session.borrow_mut().on_puback(a.packet_id) {
        tracing::debug!(client_id = %conn.client_id, error = %e, "PUBACK ignored");
    }
    conn.shard.sync_session(&conn.session);
    Ok(Flow::Continue)
}

pub fn pubrec(conn: &mut Conn, a: Ack) -> Result<Flow, HandlerError> {
    if !a.reason.is_success() {
        // The client refused the message: the exchange ends here (v5 section 4.3.3).
        let _ = conn.session.borrow_mut().on_pubrec_failed(a.packet_id);
        conn.shard.sync_session(&conn.session);
        return Ok(Flow::Continue);
    }
    if let Err(e) = conn.session.borrow_mut().on_pubrec(a.packet_id) {
        tracing::debug!(client_id = %conn.client_id, error = %e, "PUBREC for unknown id");
        // Answer so the client can finish its state machine (v5: 0x92).
        let mut rel = Ack::new(a.packet_id);
        rel.reason = ReasonCode::PacketIdentifierNotFound;
        rel.properties.reason_string =
            conn.reason_string("no QoS 2 message in flight with this id");
        conn.outbox.push(&Packet::PubRel(rel));
    }
    conn.shard.sync_session(&conn.session);
    Ok(Flow::Continue)
}

/// PUBREL for an inbound QoS 2 message: release its id and answer PUBCOMP. For a
/// persistent session the release is logged first: a PUBCOMP the client got must not be
/// undone by a restart (the client may then reuse the id for a new message).
pub fn pubrel(conn: &mut Conn, a: Ack) -> Result<Flow, HandlerError> {
    let known = {
        let mut s = conn.session.borrow_mut();
        s.release_accepted(a.packet_id);
        s.inbound_qos2_release(a.packet_id)
    };
    let mut comp = Ack::new(a.packet_id);
    if !known {
        comp.reason = ReasonCode::PacketIdentifierNotFound;
        comp.properties.reason_string =
            conn.reason_string("no QoS 2 message to release with this id");
    }
    let journal = conn.session.borrow_mut().take_journal();
    let ticket = conn
        .shard
        .storage
        .append_all(&journal)
        .filter(|end| conn.shard.storage.must_wait(*end))
        .map(|end| {
            let t = AckTicket::new(conn.outbox.clone());
            let held = t.clone();
            conn.shard.storage.when_durable(end, move || held.release());
            t
        });
    conn.acknowledge(Packet::PubComp(comp), ticket);
    Ok(Flow::Continue)
}

pub fn pubcomp(conn: &mut Conn, a: Ack) -> Result<Flow, HandlerError> {
    if let Err(e) = conn.session.borrow_mut().on_pubcomp(a.packet_id) {
        tracing::debug!(client_id = %conn.client_id, error = %e, "PUBCOMP ignored");
    }
    conn.shard.sync_session(&conn.session);
    Ok(Flow::Continue)
}

//! PUBACK, PUBREC, PUBREL and PUBCOMP from the client: the QoS 1 and QoS 2 flows.

use super::{Conn, Flow, HandlerError};
use crate::protocol::{Ack, Packet, ReasonCode};

/// An acknowledgement for an id we do not have in flight is ignored (it may answer a
/// message from before a reconnect that the session no longer holds).
pub fn puback(conn: &mut Conn, a: Ack) -> Result<Flow, HandlerError> {
    if let Err(e) = conn.session.borrow_mut().on_puback(a.packet_id) {
        tracing::debug!(client_id = %conn.client_id, error = %e, "PUBACK ignored");
    }
    Ok(Flow::Continue)
}

pub fn pubrec(conn: &mut Conn, a: Ack) -> Result<Flow, HandlerError> {
    if !a.reason.is_success() {
        // The client refused the message: the exchange ends here (v5 section 4.3.3).
        let _ = conn.session.borrow_mut().on_pubrec_failed(a.packet_id);
        return Ok(Flow::Continue);
    }
    if let Err(e) = conn.session.borrow_mut().on_pubrec(a.packet_id) {
        tracing::debug!(client_id = %conn.client_id, error = %e, "PUBREC for unknown id");
        // Answer so the client can finish its state machine (v5: 0x92).
        let mut rel = Ack::new(a.packet_id);
        rel.reason = ReasonCode::PacketIdentifierNotFound;
        conn.outbox.push(&Packet::PubRel(rel));
    }
    Ok(Flow::Continue)
}

/// PUBREL for an inbound QoS 2 message: release its id and answer PUBCOMP.
pub fn pubrel(conn: &mut Conn, a: Ack) -> Result<Flow, HandlerError> {
    let known = conn.session.borrow_mut().inbound_qos2_release(a.packet_id);
    let mut comp = Ack::new(a.packet_id);
    if !known {
        comp.reason = ReasonCode::PacketIdentifierNotFound;
    }
    conn.outbox.push(&Packet::PubComp(comp));
    Ok(Flow::Continue)
}

pub fn pubcomp(conn: &mut Conn, a: Ack) -> Result<Flow, HandlerError> {
    if let Err(e) = conn.session.borrow_mut().on_pubcomp(a.packet_id) {
        tracing::debug!(client_id = %conn.client_id, error = %e, "PUBCOMP ignored");
    }
    Ok(Flow::Continue)
}

//! AUTH after the CONNACK: re-authentication (MQTT 5.0 section 4.12.1). The exchange is
//! [`crate::auth::ConnAuth`]'s; other packets keep flowing while it runs.

use super::{Conn, Flow, HandlerError};
use crate::protocol::{Auth, Packet, ProtocolVersion};

/// An AUTH from the client: a step of a re-authentication, answered with AUTH 0x18 or
/// 0x00. A failed exchange ends the connection with DISCONNECT 0x87 [MQTT-4.12.1-2].
pub fn auth(conn: &mut Conn, auth: &Auth) -> Result<Flow, HandlerError> {
    // [MQTT-4.12.0-7]: only a client that used enhanced authentication sends AUTH.
    let Some(state) = conn.auth.as_mut() else {
        return Err(HandlerError::Protocol(
            "AUTH without an authentication method in CONNECT",
        ));
    };
    let security = conn.shard.security.borrow().clone();
    let reply = state.reauth_step(&security.scram, auth)?;
    if reply.reason == crate::protocol::ReasonCode::Success {
        tracing::debug!(client_id = %conn.client_id, user = state.username(), "re-authenticated");
        // The password-file line proved now is what a reload compares against.
        if let Some(access) = conn.session.borrow_mut().access.as_mut() {
            access.principal.credential = security.scram_credential(state.username());
        }
    }
    // An AUTH the client could not take is not sent [MQTT-3.1.2-24]: the re-authentication
    // cannot go on, so the connection ends with 0x95.
    let reply = Packet::Auth(reply);
    if reply
        .encoded_len(ProtocolVersion::V5)
        .map_or(true, |n| n > conn.client_packet_max as usize)
    {
        return Err(HandlerError::AuthTooLarge);
    }
    conn.outbox.push(&reply);
    Ok(Flow::Continue)
}

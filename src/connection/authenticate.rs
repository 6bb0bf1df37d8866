//! Enhanced authentication in the CONNECT phase (MQTT 5.0 section 4.12), on the client's
//! home shard before its session is touched: the exchange is [`crate::auth`]'s, this file
//! reads and writes its packets, within `limits.connect_timeout_secs`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::future;

use super::transport::Transport;
use crate::auth::{AuthError, ConnAuth};
use crate::protocol::{
    decode, ConnAck, ConnAckProperties, Connect, Decoded, MqttString, Packet, PacketType,
    ProtocolVersion, ReasonCode,
};
use crate::shard::Shard;

/// A client that proved who it is.
pub(super) struct Authenticated {
    /// What the connection keeps, for re-authentication.
    pub auth: Box<ConnAuth>,
    /// The server-final-message, the CONNACK's Authentication Data.
    pub server_final: Bytes,
}

/// Why the exchange ended without success.
enum Failure {
    /// Answer with a CONNACK carrying this reason (and why, as its Reason String).
    Refused(ReasonCode, String),
    /// The client closed the connection, or sent DISCONNECT.
    Gone,
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Failure::Refused(e.reason_code(), e.to_string())
    }
}

/// Runs the exchange of a v5 CONNECT that names `method`, reading the client's packets from
/// `rbuf` (the bytes that came after the CONNECT) and then the socket; on success the bytes
/// after the client's last AUTH stay in `rbuf`. `None`: it failed, the client was told
/// (CONNACK >= 0x80 [MQTT-4.12.0-4]) where that applies, and the connection must close.
pub(super) async fn authenticate(
    shard: &Shard,
    stream: &mut Transport,
    connect: &Connect,
    method: &MqttString,
    rbuf: &mut BytesMut,
    ip: std::net::IpAddr,
) -> Option<Authenticated> {
    let client_id = connect.client_id.as_str();
    // A failed SCRAM proof is a failed login like a wrong password: the same per-address
    // limit and delay apply.
    if shard.verifier.is_blocked(ip, std::time::Instant::now()) {
        tracing::info!(client_id, %ip, "refused: too many failed logins from this address");
        let why = "too many failed logins from this address".to_owned();
        refuse(stream, connect, ReasonCode::ConnectionRateExceeded, why).await;
        return None;
    }
    let timeout = Duration::from_secs(u64::from(shard.config.limits.connect_timeout_secs));
    let shutdown = shard.shutdown.clone();
    let stopped = async {
        shutdown.wait().await;
        None
    };
    let running =
        crate::shard::with_timeout(exchange(shard, stream, connect, method, rbuf), timeout);
    match future::or(running, stopped).await {
        Some(Ok(done)) => {
            tracing::debug!(client_id, user = done.auth.username(), "authenticated");
            Some(done)
        }
        Some(Err(Failure::Refused(reason, why))) => {
            tracing::info!(client_id, ?reason, "refused: {why}");
            if reason == ReasonCode::NotAuthorized {
                shard.verifier.failed(ip, std::time::Instant::now());
                glommio::timer::sleep(shard.config.auth.failed_login_delay()).await;
            }
            refuse(stream, connect, reason, why).await;
            None
        }
        Some(Err(Failure::Gone)) => None,
        None => {
            tracing::debug!(
                client_id,
                "authentication not done within connect_timeout_secs"
            );
            None
        }
    }
}

/// SCRAM takes one round trip: client-first in the CONNECT, server-first in our AUTH 0x18,
/// client-final in the client's AUTH 0x18; the server-final goes in the CONNACK.
async fn exchange(
    shard: &Shard,
    stream: &mut Transport,
    connect: &Connect,
    method: &MqttString,
    rbuf: &mut BytesMut,
) -> Result<Authenticated, Failure> {
    let user_name = connect.username.as_ref().map(MqttString::as_str);
    let data = connect.properties.authentication_data.as_ref();
    // 0x8C for another method [MQTT-4.12.0-1].
    let security = shard.security.borrow().clone();
    let (mut auth, reply) = ConnAuth::start(&security.scram, method, data, user_name)?;
    let bytes = Packet::Auth(reply)
        .to_bytes(ProtocolVersion::V5)
        .map_err(|e| Failure::Refused(ReasonCode::UnspecifiedError, e.to_string()))?;
    // An AUTH the client could not take is not sent [MQTT-3.1.2-24]: the exchange cannot go
    // on, so the CONNACK says 0x95.
    if let Some(max) = connect.properties.maximum_packet_size {
        if bytes.len() > max.get() as usize {
            return Err(Failure::Refused(
                ReasonCode::PacketTooLarge,
                format!(
                    "the AUTH reply ({} bytes) exceeds the client's Maximum Packet Size",
                    bytes.len()
                ),
            ));
        }
    }
    stream.write_all(&bytes).await.map_err(|_| Failure::Gone)?;
    let max = shard.config.limits.packet_bytes_max as usize;
    match read_packet(stream, rbuf, max).await? {
        Packet::Auth(a) => {
            let server_final = auth.connect_step(&a)?;
            Ok(Authenticated {
                auth: Box::new(auth),
                server_final,
            })
        }
        Packet::Disconnect(_) => Err(Failure::Gone),
        // [MQTT-3.1.2-30]: only AUTH or DISCONNECT until the CONNACK.
        other => Err(Failure::Refused(
            ReasonCode::ProtocolError,
            format!(
                "{:?} during enhanced authentication: only AUTH or DISCONNECT may come before \
                 the CONNACK",
                other.packet_type()
            ),
        )),
    }
}

/// The next packet from the client: from `rbuf` first, then the socket.
async fn read_packet(
    stream: &mut Transport,
    rbuf: &mut BytesMut,
    max: usize,
) -> Result<Packet, Failure> {
    loop {
        match decode(rbuf, Some(ProtocolVersion::V5), max) {
            Ok(Decoded::Packet(p)) => return Ok(p),
            Ok(Decoded::Incomplete { .. }) => {}
            Err(e) => return Err(Failure::Refused(e.reason_code(), e.to_string())),
        }
        let read = future::poll_fn(|cx| {
            super::read::poll_read(stream, cx, super::CONNECT_BUFFER_BYTES, rbuf)
        });
        match read.await {
            Ok(0) | Err(_) => return Err(Failure::Gone),
            Ok(_) => {}
        }
    }
}

/// Sends a refusing CONNACK, saying why in a Reason String when the packet then still fits
/// the client's Maximum Packet Size [MQTT-3.2.2-19], and closes.
async fn refuse(stream: &mut Transport, connect: &Connect, reason: ReasonCode, why: String) {
    // A reason a CONNACK cannot carry (0x94 from a PUBLISH that failed to decode) becomes
    // a protocol error: no packet but AUTH or DISCONNECT belonged here anyway.
    let reason = if ReasonCode::allowed_in(PacketType::ConnAck).contains(&reason) {
        reason
    } else {
        ReasonCode::ProtocolError
    };
    let connack = |reason_string| {
        Packet::ConnAck(Box::new(ConnAck {
            session_present: false,
            reason,
            properties: ConnAckProperties {
                reason_string,
                ..ConnAckProperties::default()
            },
        }))
        .to_bytes(ProtocolVersion::V5)
        .ok()
    };
    let limit = connect
        .properties
        .maximum_packet_size
        .map_or(usize::MAX, |m| m.get() as usize);
    let bytes = connack(MqttString::try_from(why).ok())
        .filter(|b| b.len() <= limit)
        .or_else(|| connack(None));
    if let Some(bytes) = bytes {
        let _ = stream.write_all(&bytes).await;
    }
    stream.close().await;
}

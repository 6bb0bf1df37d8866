//! A client connection: the CONNECT phase (and hand-off to the client id's home shard),
//! then one task that reads, decodes, dispatches, and writes everything the connection has
//! to send in one `write` per round. Keep-alive and takeover end it here.
//!
//! Most connections of a big deployment are idle, so an idle connection holds as little as
//! possible: no read chunk (reads go through one scratch buffer per shard, [`read`]), no
//! empty buffers, no handler state (packets are dispatched in a future boxed for the burst),
//! no timer ([`keep_alive`]).

mod authenticate;
mod keep_alive;
mod login;
mod proxy;
mod read;
mod transport;
mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::future;
use glommio::net::TcpStream;

use crate::auth::Principal;
use crate::config::{MqttConfig, Redirect};
use crate::handler::{self, Conn, Flow, HandlerError};
use crate::limit::{Limit, ListenerSlot, PublishRate, RateVerdict};
use crate::protocol::{
    decode, ConnAck, ConnAckProperties, Connect, DecodeError, Decoded, Disconnect, MqttString,
    Packet, ProtocolVersion, ReasonCode,
};
use crate::session::{Outbox, Session};
use crate::shard::mesh::{stable_hash, Handoff};
use crate::shard::{Shard, Slots};
use crate::tls::TlsAcceptor;
pub use keep_alive::{sweep as sweep_keep_alive, KeepAlive};
pub use transport::Transport;
pub use websocket::WsState;

/// First read size of a connection; grows (x4 per full read) to `limits.read_buffer_bytes`.
const INITIAL_READ_BYTES: usize = 1024;

/// Read size while waiting for CONNECT (a typical CONNECT is under 100 bytes).
const CONNECT_BUFFER_BYTES: usize = 512;

/// How long the last flush of a closing connection may take.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// How a connection ended; decides the will and the log line.
#[derive(Debug)]
pub enum End {
    /// DISCONNECT from the client; `will` when v5 reason 0x04 asked for the will.
    Disconnected {
        will: bool,
    },
    /// The client closed the socket without DISCONNECT.
    Eof,
    Network(std::io::Error),
    /// No packet within 1.5 x keep-alive [MQTT-3.1.2-24].
    KeepAlive,
    /// A malformed packet or protocol violation.
    Error(HandlerError),
    /// Ended from outside: takeover, shutdown.
    Closed(ReasonCode),
}

/// Serves a newly accepted socket: TLS handshake (on a TLS listener), CONNECT, then serves
/// it here or hands it to its home shard.
///
/// The CONNECT phase and the session set-up run in a boxed future that is freed once the
/// connection is up: the future returned here is what the connection's task holds for its
/// whole life, so it holds only the connection's state ([`Conn`], [`Io`]) and the wait.
///
/// `slots` hold the connection's place under the connection limits until it ends.
pub fn accept(
    shard: Rc<Shard>,
    stream: TcpStream,
    entry: Entry,
    slots: Slots,
) -> impl Future<Output = ()> {
    run(Box::pin(accept_connect(shard, stream, entry, slots)))
}

/// How a listener's connections begin: a PROXY protocol header when `proxy`, then the
/// TLS handshake when `tls`, then the WebSocket upgrade when `websocket`; then MQTT.
#[derive(Clone)]
pub struct Entry {
    pub tls: Option<Arc<TlsAcceptor>>,
    pub websocket: bool,
    pub proxy: bool,
}

/// Serves a connection handed over by the shard that accepted it.
pub fn adopt(
    shard: Rc<Shard>,
    stream: Transport,
    connect: Box<Connect>,
    buffered: Bytes,
    peer: SocketAddr,
    principal: Principal,
    listener: ListenerSlot,
) -> impl Future<Output = ()> {
    run(Box::pin(adopt_connect(
        shard, stream, connect, buffered, peer, principal, listener,
    )))
}

/// On the home shard, after a hand-off: the connection counts against this shard's
/// `limits.connections_per_shard_max` from now on; a full shard refuses it with CONNACK
/// 0x97 Quota exceeded (v3: 0x03 Server unavailable), as its CONNECT has been read.
async fn adopt_connect(
    shard: Rc<Shard>,
    mut stream: Transport,
    connect: Box<Connect>,
    buffered: Bytes,
    peer: SocketAddr,
    principal: Principal,
    listener: ListenerSlot,
) -> Option<(Conn, Io)> {
    let Some(slot) = shard.connection_slot() else {
        let n = shard.limit_stats.hit(Limit::ShardConnections);
        if crate::limit::worth_logging(n) {
            tracing::warn!(
                shard = %shard.id, refused = n,
                "connection refused: limits.connections_per_shard_max"
            );
        }
        refuse(&mut stream, connect.protocol, ReasonCode::QuotaExceeded).await;
        return None;
    };
    let slots = Slots {
        listener,
        shard: slot,
    };
    let served = start_session(shard, stream, connect, buffered, peer, false, principal).await;
    served.map(|served| holding(served, slots))
}

/// The served connection, holding its place under the connection limits until it ends.
fn holding((conn, mut io): (Conn, Io), slots: Slots) -> (Conn, Io) {
    io.slots = Some(slots);
    (conn, io)
}

type Setup = Pin<Box<dyn Future<Output = Option<(Conn, Io)>>>>;

/// Sets the connection up, serves it, and ends it.
async fn run(setup: Setup) {
    let Some((mut conn, mut io)) = setup.await else {
        return;
    };
    let end = serve(&mut conn, &mut io).await;
    Box::pin(finish(conn, io.stream, end)).await;
}

/// The client's address from the PROXY header that must start the connection (the socket's
/// own peer for a LOCAL or UNKNOWN header). `None`: no valid header within `timeout` (or
/// shutdown): counted, logged at debug level, and the socket is closed.
async fn proxy_peer(
    shard: &Shard,
    tcp: &mut TcpStream,
    socket_peer: SocketAddr,
    timeout: Duration,
) -> Option<SocketAddr> {
    let shutdown = shard.shutdown.clone();
    let reading = crate::shard::with_timeout(proxy::read_header(tcp), timeout);
    let stopped = async {
        shutdown.wait().await;
        None
    };
    match future::or(reading, stopped).await {
        Some(Ok(header)) => {
            let peer = header.source.unwrap_or(socket_peer);
            tracing::debug!(%peer, proxy = %socket_peer, "PROXY header read");
            Some(peer)
        }
        Some(Err(e)) => {
            shard.limit_stats.hit(Limit::BadProxyHeader);
            tracing::debug!(peer = %socket_peer, error = %e, "closed: no valid PROXY header");
            None
        }
        None => {
            if !shard.shutdown.is_triggered() {
                shard.limit_stats.hit(Limit::BadProxyHeader);
            }
            tracing::debug!(
                peer = %socket_peer,
                "closed: no PROXY header within connect_timeout_secs (or shutdown)"
            );
            None
        }
    }
}

/// The CONNECT phase: returns the connection if it is served on this shard.
async fn accept_connect(
    shard: Rc<Shard>,
    mut tcp: TcpStream,
    entry: Entry,
    slots: Slots,
) -> Option<(Conn, Io)> {
    let mut peer = match tcp.peer_addr() {
        Ok(p) => p,
        Err(_) => return None,
    };
    let _ = tcp.set_nodelay(true);
    let limits = &shard.config.limits;
    let mut rbuf = BytesMut::new();
    // The PROXY header, the TLS handshake and the CONNECT together must be done within
    // the timeout.
    let timeout = Duration::from_secs(u64::from(limits.connect_timeout_secs));
    let deadline = Instant::now() + timeout;
    if entry.proxy {
        peer = proxy_peer(&shard, &mut tcp, peer, timeout).await?;
    }
    let timeout = deadline.saturating_duration_since(Instant::now());
    let tls = entry.tls.as_deref();
    let mut stream = transport::open(&shard, tcp, tls, entry.websocket, peer, timeout).await?;
    let shutdown = shard.shutdown.clone();
    let reading = crate::shard::with_timeout(
        read_connect(&mut stream, &mut rbuf, limits.packet_bytes_max as usize),
        deadline.saturating_duration_since(Instant::now()),
    );
    // A socket still in its CONNECT phase ends at shutdown like any other.
    let stopped = async {
        shutdown.wait().await;
        None
    };
    let connect = match future::or(reading, stopped).await {
        Some(Ok(c)) => c,
        Some(Err(ConnectFailure::Decode(e))) => {
            if matches!(e, DecodeError::PacketTooLarge { .. }) {
                shard.limit_stats.hit(Limit::PacketTooLarge);
            }
            reject_undecodable(&mut stream, &e).await;
            tracing::debug!(%peer, error = %e, "bad CONNECT");
            return None;
        }
        Some(Err(ConnectFailure::Io)) => return None,
        None => {
            if !shard.shutdown.is_triggered() {
                shard.limit_stats.hit(Limit::ConnectTimeout);
            }
            tracing::debug!(%peer, "no CONNECT within connect_timeout_secs");
            return None;
        }
    };
    let mut connect = connect;
    let version = connect.protocol;
    if let Err(e) = stream.apply_cert_username(&mut connect) {
        refuse(&mut stream, version, ReasonCode::NotAuthorized).await;
        tracing::info!(%peer, "refused: {e}");
        return None;
    }
    let mut assigned = false;
    if connect.client_id.is_empty() {
        match version {
            // [MQTT-3.1.3-7/8] (3.1.1): only with clean session; 3.1 needs an id.
            ProtocolVersion::V3_1_1 if connect.clean_start => {}
            ProtocolVersion::V5 => {}
            _ => {
                refuse(&mut stream, version, ReasonCode::ClientIdentifierNotValid).await;
                tracing::info!(%peer, "refused: empty client id without clean session");
                return None;
            }
        }
        connect.client_id = assign_client_id(&shard);
        assigned = true;
    }
    if connect.client_id.len() > usize::from(limits.client_id_bytes_max) {
        shard.limit_stats.hit(Limit::ClientIdTooLong);
        refuse(&mut stream, version, ReasonCode::ClientIdentifierNotValid).await;
        tracing::info!(%peer, "refused: client id longer than limits.client_id_bytes_max");
        return None;
    }
    // A will is published later like any PUBLISH: its topic is held to the same limits
    // (CONNACK 0x90 Topic Name invalid; v3: 0x03).
    if let Some(w) = &connect.will {
        let (bytes_max, levels_max) = (limits.topic_bytes_max, limits.topic_levels_max);
        if w.topic.len() > usize::from(bytes_max)
            || w.topic.levels().count() > usize::from(levels_max)
        {
            shard.limit_stats.hit(Limit::TopicTooLong);
            refuse(&mut stream, version, ReasonCode::TopicNameInvalid).await;
            tracing::info!(%peer, "refused: will topic over limits.topic_bytes_max / topic_levels_max");
            return None;
        }
    }
    if let Some((reason, props)) = refusal(&shard.config.mqtt, &connect) {
        let client_max = connect.properties.maximum_packet_size;
        refuse_with(&mut stream, version, reason, props, client_max).await;
        tracing::info!(%peer, client_id = %connect.client_id, ?reason, "refused");
        return None;
    }
    // User Name and Password (off this shard's loop; a failure is delayed), unless the
    // verified client certificate named the user.
    let certified = stream.cert_username().is_some();
    let checked = future::or(
        async { Some(login::login(&shard, &connect, peer.ip(), certified).await) },
        async {
            shutdown.wait().await;
            None
        },
    );
    let principal = match checked.await {
        Some(Ok(p)) => p,
        Some(Err(refused)) => {
            refuse(&mut stream, version, refused.reason()).await;
            tracing::info!(
                %peer, client_id = %connect.client_id,
                user = connect.username.as_ref().map(MqttString::as_str),
                reason = ?refused.reason(), "refused: {refused:?}"
            );
            return None;
        }
        None => return None,
    };
    let home = shard.home_of(connect.client_id.as_str());
    if home == shard.id {
        let connect = Box::new(connect);
        let served = start_session(
            shard,
            stream,
            connect,
            rbuf.freeze(),
            peer,
            assigned,
            principal,
        )
        .await;
        return served.map(|served| holding(served, slots));
    }
    let (fd, tls, ws) = match stream.into_handoff() {
        Ok(parts) => parts,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot hand the connection off");
            return None;
        }
    };
    // The listener's count goes with the connection; this shard's is released.
    let handoff = Handoff {
        fd,
        tls,
        ws,
        connect: Box::new(connect),
        buffered: rbuf.freeze(),
        peer,
        principal,
        listener: slots.listener,
    };
    if shard.hand_off(home, handoff).await.is_err() {
        tracing::warn!(%peer, %home, "home shard is gone; connection dropped");
    }
    None
}

enum ConnectFailure {
    Decode(DecodeError),
    Io,
}

async fn read_connect(
    stream: &mut Transport,
    rbuf: &mut BytesMut,
    max: usize,
) -> Result<Connect, ConnectFailure> {
    loop {
        match decode(rbuf, None, max) {
            Ok(Decoded::Packet(Packet::Connect(c))) => return Ok(*c),
            Ok(Decoded::Packet(_)) => return Err(ConnectFailure::Io),
            Ok(Decoded::Incomplete { .. }) => {}
            Err(e) => return Err(ConnectFailure::Decode(e)),
        }
        match future::poll_fn(|cx| read::poll_read(stream, cx, CONNECT_BUFFER_BYTES, rbuf)).await {
            Ok(0) | Err(_) => return Err(ConnectFailure::Io),
            Ok(_) => {}
        }
    }
}

/// A CONNECT that does not decode: answer an unsupported protocol level with CONNACK
/// 0x01 (v3) / 0x84 (v5) [MQTT-3.1.2-2]; close on anything else.
async fn reject_undecodable(stream: &mut Transport, e: &DecodeError) {
    if let DecodeError::UnsupportedProtocolVersion(level) = e {
        let v = if *level >= 5 {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V3_1_1
        };
        refuse(stream, v, ReasonCode::UnsupportedProtocolVersion).await;
    }
}

/// Whether the broker's `[mqtt]` settings refuse this CONNECT, with the CONNACK's reason
/// and properties: server redirection (section 4.11), or a will the broker cannot honour
/// (QoS above `maximum_qos` [MQTT-3.2.2-12], RETAIN without retained messages
/// [MQTT-3.2.2-13]).
fn refusal(m: &MqttConfig, connect: &Connect) -> Option<(ReasonCode, ConnAckProperties)> {
    let mut props = ConnAckProperties::default();
    let reason = match m.redirect {
        Redirect::UseAnotherServer => ReasonCode::UseAnotherServer,
        Redirect::ServerMoved => ReasonCode::ServerMoved,
        Redirect::None => match &connect.will {
            Some(w) if w.qos > m.maximum_qos() => ReasonCode::QoSNotSupported,
            Some(w) if w.retain && !m.retain_available => ReasonCode::RetainNotSupported,
            _ => return None,
        },
    };
    if m.redirect != Redirect::None {
        props.server_reference = MqttString::try_from(m.server_reference.clone()).ok();
    }
    advertise_capabilities(m, &mut props);
    Some((reason, props))
}

/// The capabilities `[mqtt]` turns off, as CONNACK properties: absent means available, so
/// only what is off is said (Maximum QoS [MQTT-3.2.2-9], Retain Available, Wildcard /
/// Subscription Identifier / Shared Subscription Available).
fn advertise_capabilities(m: &MqttConfig, props: &mut ConnAckProperties) {
    if m.maximum_qos < 2 {
        props.maximum_qos = Some(m.maximum_qos());
    }
    let off = |on: bool| (!on).then_some(false);
    props.retain_available = off(m.retain_available);
    props.wildcard_subscription_available = off(m.wildcard_subscriptions);
    props.subscription_identifiers_available = off(m.subscription_identifiers);
    props.shared_subscription_available = off(m.shared_subscriptions);
}

/// Sends a refusing CONNACK and closes.
async fn refuse(stream: &mut Transport, version: ProtocolVersion, reason: ReasonCode) {
    refuse_with(stream, version, reason, ConnAckProperties::default(), None).await;
}

/// Sends a refusing CONNACK with properties (v5 only; v3 has none), within the client's
/// Maximum Packet Size, and closes.
async fn refuse_with(
    stream: &mut Transport,
    version: ProtocolVersion,
    reason: ReasonCode,
    properties: ConnAckProperties,
    client_max: Option<std::num::NonZeroU32>,
) {
    let mut connack = ConnAck {
        session_present: false,
        reason,
        properties,
    };
    fit_connack(&mut connack, client_max);
    let packet = Packet::ConnAck(Box::new(connack));
    if let Ok(bytes) = packet.to_bytes(version) {
        let _ = stream.write_all(&bytes).await;
    }
    stream.close().await;
}

/// Leaves out what a CONNACK can go without (Response Information, Server Reference) when
/// it would take the packet past the client's Maximum Packet Size [MQTT-3.1.2-24].
fn fit_connack(connack: &mut ConnAck, client_max: Option<std::num::NonZeroU32>) {
    let Some(max) = client_max else {
        return;
    };
    let fits = |c: &ConnAck| {
        Packet::ConnAck(Box::new(c.clone()))
            .encoded_len(ProtocolVersion::V5)
            .is_ok_and(|n| n <= max.get() as usize)
    };
    if !fits(connack) {
        connack.properties.response_information = None;
    }
    if !fits(connack) {
        connack.properties.server_reference = None;
    }
}

thread_local! {
    /// Source of assigned client ids on this shard's thread: seeded from the clock, then
    /// stepped, so ids differ across shards, restarts and calls.
    static NEXT_ID: std::cell::Cell<u64> = std::cell::Cell::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
}

/// A client id that hashes to this shard, so the connection needs no hand-off, and that no
/// session here uses.
fn assign_client_id(shard: &Shard) -> MqttString {
    loop {
        let n = NEXT_ID.with(|c| {
            let n = c.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            c.set(n);
            n
        });
        let id = format!("ringmq-{:016x}", stable_hash(&n.to_le_bytes()));
        if shard.home_of(&id) != shard.id || shard.sessions.borrow().find(&id).is_some() {
            continue;
        }
        if let Ok(s) = MqttString::try_from(id) {
            return s;
        }
    }
}

/// On the home shard: takeover, session start or resume, CONNACK (pushed to the outbox).
/// Returns the connection ready for [`serve`].
async fn start_session(
    shard: Rc<Shard>,
    mut stream: Transport,
    mut connect: Box<Connect>,
    buffered: Bytes,
    peer: SocketAddr,
    assigned: bool,
    mut principal: Principal,
) -> Option<(Conn, Io)> {
    let version = connect.protocol;
    // A copy: `buffered` is a slice of the CONNECT's read buffer, which it would pin.
    let mut rbuf = BytesMut::from(&buffered[..]);
    // Enhanced authentication (v5 Authentication Method), before the session is touched.
    let authenticated = match &connect.properties.authentication_method {
        Some(method) => Some(
            authenticate::authenticate(&shard, &mut stream, &connect, method, &mut rbuf, peer.ip())
                .await?,
        ),
        None => None,
    };
    let security = shard.security.borrow().clone();
    if let Some(a) = &authenticated {
        let user = a.auth.username();
        principal = Principal {
            user: Some(Arc::from(user)),
            credential: security.scram_credential(user),
            certificate: false,
        };
    }
    let limits = &shard.config.limits;
    let client_id: Arc<str> = Arc::from(connect.client_id.as_str());
    // Takeover [MQTT-3.1.4-3]: the older connection ends (v5: DISCONNECT 0x8E).
    let mut existing = shard.sessions.borrow().find(&client_id);
    // A session past its expiry is not resumed, even if the once-a-second sweep has not
    // removed it yet (e.g. it expired while the broker was down).
    if let Some((key, s)) = &existing {
        if s.borrow().is_expired(Instant::now()) {
            shard.remove_session(*key).await;
            existing = None;
        }
    }
    if let Some((_, s)) = &existing {
        let mut s = s.borrow_mut();
        if let Some(old) = s.outbox().cloned() {
            old.close(ReasonCode::SessionTakenOver);
            s.detach(Instant::now());
        }
    }
    let resumed = match existing {
        Some((key, s)) if !connect.clean_start => Some((key, s)),
        Some((key, _)) => {
            shard.remove_session(key).await;
            None
        }
        None => None,
    };
    let session_present = resumed.is_some();
    let (key, session) = match resumed {
        Some(r) => r,
        None => shard.sessions.borrow_mut().insert(Session::new(
            client_id.clone(),
            shard.session_limits,
            shard.limit_stats.clone(),
        )),
    };
    let user = principal.user.clone();
    let mut access = security.access_for(principal, &client_id);
    // A will on a topic the client may not publish to is never published.
    if let (Some(w), Some(a)) = (&connect.will, access.as_mut()) {
        if !a.may_write(w.topic.as_str()) {
            tracing::info!(client_id = %client_id, topic = %w.topic, "will dropped: the ACL does not let this client write its topic");
            connect.will = None;
        }
    }
    session.borrow_mut().access = access;
    let p = &connect.properties;
    session.borrow_mut().expiry_secs = match version {
        ProtocolVersion::V5 => p.session_expiry_interval.unwrap_or(0),
        _ if connect.clean_start => 0,
        _ => u32::MAX,
    };
    let outbox = Rc::new(Outbox::new(
        version,
        limits.write_buffer_bytes,
        shard.limit_stats.clone(),
    ));
    let mut keep_alive = connect.keep_alive;
    let mut props = ConnAckProperties::default();
    if version.is_v5() {
        props.receive_maximum = std::num::NonZeroU16::new(limits.inflight_count_max);
        props.maximum_packet_size = std::num::NonZeroU32::new(limits.packet_bytes_max);
        props.topic_alias_maximum = (limits.topic_alias_max > 0).then_some(limits.topic_alias_max);
        let m = &shard.config.mqtt;
        advertise_capabilities(m, &mut props);
        // Only when asked for [MQTT-3.1.2-28], and only if configured.
        if p.request_response_information == Some(true) && !m.response_information.is_empty() {
            let info = format!("{}{}/", m.response_information, client_id);
            props.response_information = MqttString::try_from(info).ok();
        }
        if assigned {
            props.assigned_client_identifier = Some(connect.client_id.clone());
        }
        // [MQTT-4.12.0-5]: the method again, and the server-final-message.
        if let Some(a) = &authenticated {
            props.authentication_method = Some(a.auth.method().clone());
            props.authentication_data = Some(a.server_final.clone());
        }
        let max = limits.keep_alive_secs_max;
        if max > 0 && (keep_alive == 0 || keep_alive > max) {
            keep_alive = max;
            props.server_keep_alive = Some(max);
        }
    }
    if session.borrow().expiry_secs > 0 {
        shard.storage.ensure_log().await;
    }
    let mut connack = ConnAck {
        session_present,
        reason: ReasonCode::Success,
        properties: props,
    };
    if version.is_v5() {
        fit_connack(&mut connack, p.maximum_packet_size);
    }
    outbox.push(&Packet::ConnAck(Box::new(connack)));
    {
        let mut s = session.borrow_mut();
        // A persistent session is logged from its first connection on; clean sessions
        // never touch the disk.
        if !s.is_durable() && s.expiry_secs > 0 {
            s.make_durable(
                shard.storage.new_session_no(),
                crate::session::RecoveredQueue::new(),
            );
        }
        if let Some(no) = s.durable_no() {
            let expiry_secs = s.expiry_secs;
            s.journal(crate::persist::state::StateRecord::Session {
                no,
                expiry_secs,
                client_id: client_id.clone(),
            });
            // Who it is, so that the ACL filters its queue while it is away, restarts
            // included.
            s.journal(crate::persist::state::StateRecord::SessionUser {
                no,
                user: user.clone(),
            });
        }
        // A will still pending from the last connection is not sent [MQTT-3.1.3-9]; this
        // connection's is logged (durable sessions), so that a crash publishes it.
        let will = connect
            .will
            .as_ref()
            .filter(|_| s.is_durable())
            .map(|w| (handler::will_message(w, &client_id), handler::will_delay(w)));
        s.arm_will(will);
        s.attach(
            outbox.clone(),
            p.receive_maximum.map(|r| r.get()),
            p.maximum_packet_size.map(|m| m.get() as usize),
        );
        if version.is_v5() {
            let max = p.topic_alias_maximum.unwrap_or(0);
            s.use_topic_aliases(max.min(limits.topic_alias_max));
        }
    }
    shard.sync_session(&session);
    if session_present && handler::has_shared(&session) {
        shard.share_online(key, &session, true).await;
    }
    shard.limit_stats.traffic.connected(version);
    outbox.set_details(crate::session::ConnDetails {
        peer,
        keep_alive,
        connected_at: std::time::SystemTime::now(),
    });
    tracing::info!(
        client_id = %client_id, %peer, shard = %shard.id, %version, user = user.as_deref(),
        clean_start = connect.clean_start, session_present, keep_alive, "connected"
    );
    let session_expiry_at_connect = p.session_expiry_interval.unwrap_or(0);
    let problem_information = p.request_problem_information.unwrap_or(true);
    let conn = Conn {
        shard,
        version,
        client_id,
        key,
        session,
        outbox,
        will: connect.will.map(Box::new),
        session_expiry_at_connect,
        problem_information,
        client_packet_max: p.maximum_packet_size.map_or(u32::MAX, |m| m.get()),
        held: std::collections::VecDeque::new(),
        aliases: None,
        auth: authenticated.map(|a| a.auth),
    };
    let limits = &conn.shard.config.limits;
    let io = Io {
        stream,
        rbuf,
        wbuf: BytesMut::new(),
        read_len: INITIAL_READ_BYTES.min(limits.read_buffer_bytes),
        // 1.5 x keep-alive without a packet ends the connection [MQTT-3.1.2-24]; the
        // shard's keep-alive sweep watches the deadline.
        grace: (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500)),
        rate: PublishRate::new(limits, Instant::now()),
        slots: None,
    };
    conn.outbox
        .set_deadline(io.grace.map(|g| Instant::now() + g));
    conn.shard.keep_alive.watch(&conn.outbox);
    Some((conn, io))
}

/// A served connection's socket and buffers.
struct Io {
    stream: Transport,
    /// Bytes read and not yet decoded.
    rbuf: BytesMut,
    /// What is being written (swapped with the outbox's buffer).
    wbuf: BytesMut,
    /// Bytes to ask for in the next read; grows x4 per full read to
    /// `limits.read_buffer_bytes`.
    read_len: usize,
    /// How long after a packet the next must come; `None` without keep-alive.
    grace: Option<Duration>,
    /// `limits.publish_messages_per_sec` / `publish_bytes_per_sec`; `None` (no memory)
    /// when both are off.
    rate: Option<Box<PublishRate>>,
    /// The connection's place under the connection limits, freed when it ends (set by
    /// [`holding`] once the connection is served).
    slots: Option<Slots>,
}

/// The packet loop. Returns how the connection ended.
///
/// This future is what an idle connection's task holds, so it is kept small: dispatching
/// (whose state is the largest handler's locals, several KB) runs in a future boxed for
/// each burst of packets, and the wait releases the connection's empty buffers.
async fn serve(conn: &mut Conn, io: &mut Io) -> End {
    let limits = &conn.shard.config.limits;
    let max_packet = limits.packet_bytes_max as usize;
    let read_max = limits.read_buffer_bytes;
    let packet_timeout = limits.packet_timeout();
    loop {
        if !io.rbuf.is_empty() {
            let burst = dispatch_buffered(conn, &mut io.rbuf, max_packet, io.grace, &mut io.rate);
            if let Some(end) = Box::pin(burst).await {
                return end;
            }
        }
        conn.release_acks();
        if let Err(e) = flush(&conn.outbox, &mut io.stream, &mut io.wbuf).await {
            return End::Network(e);
        }
        if let Some(reason) = conn.outbox.close_reason() {
            return match reason {
                ReasonCode::KeepAliveTimeout => End::KeepAlive,
                r => End::Closed(r),
            };
        }
        // While too many acknowledgements are held back (pushback), or the client is over
        // its publish rate (throttle), stop reading: the client's own window, or TCP, then
        // slows it down.
        let now = Instant::now();
        let throttled = io.rate.as_mut().and_then(|r| r.resume_at(now));
        let paused = throttled.is_some() || conn.acks_backlogged();
        watch_partial_packet(conn, io, paused, now, packet_timeout);
        if let (Some(at), Some(grace)) = (throttled, io.grace) {
            // The packets a throttled client sends wait unread: its keep-alive counts from
            // when reading resumes.
            if conn.outbox.deadline().is_some_and(|d| d < at + grace) {
                conn.outbox.set_deadline(Some(at + grace));
            }
        }
        let Io {
            stream,
            rbuf,
            wbuf,
            read_len,
            ..
        } = io;
        let waiting = read::next_event(stream, &conn.outbox, paused, *read_len, rbuf, wbuf);
        let event = match throttled {
            None => waiting.await,
            Some(at) => {
                let resumed = async {
                    glommio::timer::sleep(at.saturating_duration_since(now)).await;
                    read::Event::Woken
                };
                future::or(waiting, resumed).await
            }
        };
        match event {
            read::Event::Read(Ok(0)) => return End::Eof,
            read::Event::Read(Ok(n)) => {
                conn.shard.limit_stats.traffic.bytes_received(n);
                let full = n == *read_len;
                if full && *read_len < read_max {
                    // A full read: more is waiting. Read bigger chunks from now on.
                    *read_len = (*read_len * 4).min(read_max);
                }
                // A busy client's socket is always readable, so its reads never return
                // Pending and glommio never switches tasks by itself: after a full read
                // (more is waiting) yield, so the connections it delivers to get to flush
                // (without this, a few publishers starved their subscribers, whose buffers
                // filled and shed QoS 0). A partial read means the socket is drained: only
                // yield if this task has used up its time slice.
                if full {
                    glommio::executor().yield_now().await;
                } else {
                    glommio::executor().yield_if_needed().await;
                }
            }
            read::Event::Read(Err(e)) => return End::Network(e),
            read::Event::Woken => {}
        }
    }
}

/// `limits.packet_timeout_secs` (slowloris): a packet begun and not complete must be within
/// the timeout from when the broker started waiting for its rest. While the broker itself
/// does not read (`paused`) the clock is off: a throttled or held-back client is not to
/// blame for its half packet.
fn watch_partial_packet(conn: &Conn, io: &Io, paused: bool, now: Instant, timeout: Duration) {
    let out = &conn.outbox;
    if paused || io.rbuf.is_empty() {
        // Every complete packet was dispatched: what is left (if anything) waits on us.
        out.set_packet_deadline(None);
    } else if out.packet_deadline().is_none() {
        out.set_packet_deadline(Some(now + timeout));
        conn.shard.keep_alive.watch(out);
    }
}

/// Decodes and dispatches the complete packets in `rbuf` (all of them, unless pushback
/// holds back so many acknowledgements that reading stops, or the client is throttled).
/// Returns how the connection ended, if it did.
async fn dispatch_buffered(
    conn: &mut Conn,
    rbuf: &mut BytesMut,
    max_packet: usize,
    grace: Option<Duration>,
    rate: &mut Option<Box<PublishRate>>,
) -> Option<End> {
    loop {
        // Checked before each packet: a wake-up while reading is paused must not let one
        // more PUBLISH in each time.
        if conn.acks_backlogged() {
            return None;
        }
        if let Some(r) = rate.as_mut() {
            if r.resume_at(Instant::now()).is_some() {
                return None;
            }
        }
        let available = rbuf.len();
        match decode(rbuf, Some(conn.version), max_packet) {
            Ok(Decoded::Packet(packet)) => {
                let now = Instant::now();
                conn.outbox.set_deadline(grace.map(|g| now + g));
                // A complete packet: the next one has its own time.
                conn.outbox.set_packet_deadline(None);
                let mut pause = false;
                if let (Packet::Publish(_), Some(r)) = (&packet, rate.as_mut()) {
                    match r.on_publish(available - rbuf.len(), now) {
                        RateVerdict::Pass => {}
                        RateVerdict::Pause => {
                            conn.shard.limit_stats.hit(Limit::PublishThrottle);
                            pause = true;
                        }
                        RateVerdict::Refuse => {
                            conn.shard.limit_stats.hit(Limit::PublishRateDisconnect);
                            return Some(End::Error(HandlerError::MessageRateTooHigh));
                        }
                    }
                }
                match handler::dispatch(conn, packet).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Disconnect { will }) => return Some(End::Disconnected { will }),
                    Err(e) => return Some(End::Error(e)),
                }
                if pause {
                    return None;
                }
            }
            Ok(Decoded::Incomplete { .. }) => return None,
            Err(e) => {
                if matches!(e, DecodeError::PacketTooLarge { .. }) {
                    conn.shard.limit_stats.hit(Limit::PacketTooLarge);
                }
                return Some(End::Error(HandlerError::Decode(e)));
            }
        }
    }
}

/// Writes everything buffered for this connection, in as few writes as it takes.
async fn flush(
    outbox: &Outbox,
    stream: &mut Transport,
    wbuf: &mut BytesMut,
) -> std::io::Result<()> {
    while !outbox.is_empty() {
        wbuf.clear();
        outbox.take_into(wbuf);
        stream.write_all(wbuf).await?;
    }
    wbuf.clear();
    stream.flush().await
}

/// After the loop: tell a v5 client why (when the server ends it), publish the will unless
/// the client disconnected normally, detach or end the session.
async fn finish(conn: Conn, mut stream: Transport, end: End) {
    let reason = match &end {
        End::Error(e) => Some(e.reason_code()),
        End::KeepAlive => Some(ReasonCode::KeepAliveTimeout),
        End::Closed(r) => Some(*r),
        _ => None,
    };
    // What was answered before the end (e.g. the PUBACK of a PUBLISH that came with the
    // DISCONNECT) still goes out, then a v5 DISCONNECT with the reason when the server ends
    // the connection.
    if let (Some(reason), true) = (reason, conn.version.is_v5()) {
        let mut d = Disconnect::new(reason);
        // A DISCONNECT may carry a Reason String even without Request Problem Information
        // [MQTT-3.1.2-29], but not past the client's Maximum Packet Size [MQTT-3.14.2-3].
        if let End::Error(e) = &end {
            d.properties.reason_string = MqttString::try_from(e.to_string()).ok();
        }
        let reference = &conn.shard.config.mqtt.server_reference;
        if reason == ReasonCode::ServerShuttingDown && !reference.is_empty() {
            d.properties.server_reference = MqttString::try_from(reference.clone()).ok();
        }
        // Optional properties are left out rather than send a packet past the client's
        // Maximum Packet Size [MQTT-3.1.2-24].
        let fits = |d: &Disconnect| {
            Packet::Disconnect(d.clone())
                .encoded_len(ProtocolVersion::V5)
                .is_ok_and(|n| n <= conn.client_packet_max as usize)
        };
        if !fits(&d) {
            d.properties.server_reference = None;
        }
        if !fits(&d) {
            d.properties.reason_string = None;
        }
        conn.outbox.push(&Packet::Disconnect(d));
    }
    if !matches!(end, End::Network(_)) {
        // Bounded: a client that stopped reading must not keep its will (or a shutdown)
        // waiting.
        let mut wbuf = BytesMut::new();
        let last_words = flush(&conn.outbox, &mut stream, &mut wbuf);
        let _ = crate::shard::with_timeout(last_words, FINAL_FLUSH_TIMEOUT).await;
    }
    let will = match &end {
        End::Disconnected { will } => *will,
        // Its credentials were revoked (a reload): nothing more is done on its behalf.
        End::Closed(ReasonCode::NotAuthorized) => false,
        _ => true,
    };
    match &end {
        End::Disconnected { .. } | End::Eof => {
            tracing::info!(client_id = %conn.client_id, reason = ?end, "disconnected")
        }
        _ => tracing::info!(client_id = %conn.client_id, reason = ?end, "connection closed"),
    }
    // The session's end is logged before the socket closes: a client that saw its
    // DISCONNECT accepted must not find its will published, or its session's expiry
    // restarted, by a crash right after.
    handler::end_session(conn, will).await;
    stream.close().await;
}

//! The subscriber role: subscribe, then read every round what the broker sent, check each
//! message's stamp (latency, sequence), and acknowledge in one write per round.

use std::rc::Rc;

use bytes::Bytes;
use futures_lite::future;
use ringmq::protocol::{
    Ack, MqttString, Packet, PacketId, QoS, ReasonCode, Subscribe, SubscribeProperties,
    Subscription, SubscriptionOptions, TopicFilter,
};

use crate::clock;
use crate::conn::{flush, with_timeout, Conn, ConnError};
use crate::local::{Local, Slot};
use crate::payload::Stamp;
use crate::shared::Phase;
use crate::stats::Tracks;

/// Read buffer of a subscriber: one read takes up to this much.
pub const READ_BYTES: usize = 16 << 10;

/// Filters per SUBSCRIBE packet.
const FILTERS_PER_SUBSCRIBE: usize = 64;

/// One subscriber of the run's plan.
#[derive(Debug, Clone)]
pub struct SubSpec {
    pub id: u32,
    pub client_id: String,
    pub filters: Vec<String>,
    /// Loss is counted per unit: the subscriber itself, or its shared subscription group.
    pub unit: String,
    /// Publisher ids whose messages this subscriber (or its group) should receive, sorted.
    pub expects: Vec<u32>,
}

/// What a subscriber hands back at the end.
#[derive(Debug, Default)]
pub struct SubOutcome {
    pub id: u32,
    pub unit: String,
    /// Subscribed successfully (its expectations count).
    pub ok: bool,
    pub tracks: Tracks,
    /// Messages from a publisher this subscriber should not hear from.
    pub unexpected: u64,
    /// Messages without a valid stamp of this run.
    pub foreign: u64,
    /// `persistent`: when the reconnect started and when the last new message arrived.
    pub reconnect_ns: u64,
    pub last_new_ns: u64,
}

impl SubOutcome {
    pub fn new(spec: &SubSpec) -> SubOutcome {
        SubOutcome {
            id: spec.id,
            unit: spec.unit.clone(),
            ..SubOutcome::default()
        }
    }
}

/// Counts of one read round, added to the thread's counters once per round.
#[derive(Default)]
struct Round {
    delivered: u64,
    unique: u64,
    bytes: u64,
    latency_sum_ns: u64,
    latency_count: u64,
}

/// The receiving side of a subscriber: checks stamps and acknowledges.
pub struct Receiver {
    pub out: SubOutcome,
    expects: Vec<u32>,
}

impl Receiver {
    pub fn new(spec: &SubSpec) -> Receiver {
        let mut expects = spec.expects.clone();
        expects.sort_unstable();
        Receiver {
            out: SubOutcome::new(spec),
            expects,
        }
    }

    /// Handles every whole packet read so far; acknowledgements go to the write buffer.
    pub fn on_input(&mut self, local: &Local, conn: &mut Conn, now: u64) -> Result<(), ConnError> {
        let mut round = Round::default();
        let result = self.handle_packets(local, conn, now, &mut round);
        let c = local.counters();
        use crate::shared::Counters as C;
        C::add(&c.delivered, round.delivered);
        C::add(&c.unique, round.unique);
        C::add(&c.delivered_bytes, round.bytes);
        C::add(&c.latency_sum_ns, round.latency_sum_ns);
        C::add(&c.latency_count, round.latency_count);
        result
    }

    fn handle_packets(
        &mut self,
        local: &Local,
        conn: &mut Conn,
        now: u64,
        round: &mut Round,
    ) -> Result<(), ConnError> {
        let in_window = local.in_window(now);
        let publishers = local.cfg.publishers;
        let mut stats = local.stats.borrow_mut();
        while let Some(packet) = conn.next_packet()? {
            match packet {
                Packet::Publish(p) => {
                    round.delivered += 1;
                    round.bytes += p.payload.len() as u64;
                    match Stamp::read(&p.payload).filter(|s| (s.publisher as usize) < publishers) {
                        Some(stamp) => {
                            let track = self.out.tracks.entry(stamp.publisher).or_default();
                            match track.record(stamp.seq) {
                                Some(true) => {
                                    round.unique += 1;
                                    self.out.last_new_ns = now;
                                }
                                Some(false) => {}
                                None => self.out.foreign += 1,
                            }
                            if self.expects.binary_search(&stamp.publisher).is_err() {
                                self.out.unexpected += 1;
                            }
                            let latency = now.saturating_sub(stamp.sent_ns);
                            round.latency_sum_ns += latency;
                            round.latency_count += 1;
                            if in_window {
                                stats.delivery.record(latency);
                                stats.window_delivered += 1;
                                stats.window_bytes += p.payload.len() as u64;
                            }
                        }
                        None => self.out.foreign += 1,
                    }
                    match (p.qos, p.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => conn.push(&Packet::PubAck(Ack::new(id)))?,
                        (QoS::ExactlyOnce, Some(id)) => conn.push(&Packet::PubRec(Ack::new(id)))?,
                        _ => {}
                    }
                }
                Packet::PubRel(a) => conn.push(&Packet::PubComp(Ack::new(a.packet_id)))?,
                Packet::PingResp | Packet::SubAck(_) | Packet::UnsubAck(_) => {}
                Packet::Disconnect(d) => {
                    return Err(ConnError::Unexpected(format!(
                        "DISCONNECT from the broker ({:?})",
                        d.reason
                    )))
                }
                other => return Err(ConnError::Unexpected(other.packet_type().to_string())),
            }
        }
        Ok(())
    }
}

/// Subscribes to `filters` at the run's QoS and waits for every SUBACK; every filter must
/// be granted the QoS asked for. Messages arriving meanwhile go to `rx`.
pub async fn subscribe(
    local: &Local,
    conn: &mut Conn,
    rx: &mut Receiver,
    filters: &[String],
) -> Result<(), ConnError> {
    let qos = local.cfg.qos;
    let mut waiting = Vec::new();
    for (i, chunk) in filters.chunks(FILTERS_PER_SUBSCRIBE).enumerate() {
        let packet_id = PacketId::new(u16::try_from(i + 1).unwrap_or(u16::MAX))
            .ok_or_else(|| ConnError::Unexpected("too many filters".into()))?;
        let mut subscriptions = Vec::with_capacity(chunk.len());
        for f in chunk {
            let filter = MqttString::from_bytes(Bytes::copy_from_slice(f.as_bytes()))
                .ok()
                .and_then(|s| TopicFilter::new(s).ok())
                .ok_or_else(|| ConnError::Unexpected(format!("invalid topic filter {f:?}")))?;
            subscriptions.push(Subscription {
                filter,
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            });
        }
        conn.push(&Packet::Subscribe(Subscribe {
            packet_id,
            properties: SubscribeProperties::default(),
            subscriptions,
        }))?;
        waiting.push((packet_id, chunk));
    }
    let exchange = async {
        conn.flush().await?;
        while !waiting.is_empty() {
            let packet = conn.recv().await?;
            let Packet::SubAck(ack) = packet else {
                // Nothing publishes to a run's topics before every subscriber is ready.
                return Err(ConnError::Unexpected(format!(
                    "{} before SUBACK",
                    packet.packet_type()
                )));
            };
            let Some(pos) = waiting.iter().position(|(id, _)| *id == ack.packet_id) else {
                return Err(ConnError::Unexpected(
                    "SUBACK for an unknown packet id".into(),
                ));
            };
            let (_, chunk) = waiting.swap_remove(pos);
            for (i, filter) in chunk.iter().enumerate() {
                let granted = ack.reasons.get(i).copied();
                let wanted = match qos {
                    QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                    QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                    QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
                };
                if granted != Some(wanted) {
                    let got = granted.map_or("nothing".into(), |r| format!("{r:?}"));
                    return Err(ConnError::Rejected(format!(
                        "SUBACK {got} for {filter:?} (asked for QoS {})",
                        qos as u8
                    )));
                }
            }
        }
        Ok(())
    };
    let result = with_timeout(local.cfg.connect_timeout, "SUBACK", exchange).await;
    let now = clock::now_ns();
    rx.on_input(local, conn, now)?;
    result
}

/// Reads, handles and acknowledges until the phase reaches `until`, pinging when the
/// connection has been quiet for half the keep-alive.
pub async fn receive(
    local: &Rc<Local>,
    slot: &Slot,
    conn: &mut Conn,
    rx: &mut Receiver,
    until: Phase,
) -> Result<(), ConnError> {
    let ping_after = local.cfg.ping_after_ns();
    // Packets that came with the CONNACK or SUBACK (a resumed session's queue) first.
    rx.on_input(local, conn, clock::now_ns())?;
    loop {
        if !flush(local, slot, conn, u64::MAX).await? {
            return Err(ConnError::TimedOut("the broker to read acknowledgements"));
        }
        if local.phase() >= until {
            return Ok(());
        }
        let got = future::or(async { conn.fill().await.map(|()| true) }, async {
            slot.wait().await;
            Ok(false)
        })
        .await?;
        let now = clock::now_ns();
        if got {
            rx.on_input(local, conn, now)?;
        }
        ping_if_quiet(conn, ping_after, now)?;
    }
}

/// Queues a PINGREQ when nothing was written for `after` ns.
pub fn ping_if_quiet(conn: &mut Conn, after: Option<u64>, now: u64) -> Result<(), ConnError> {
    if let Some(after) = after {
        if !conn.has_output() && now.saturating_sub(conn.last_write_ns) >= after {
            conn.push(&Packet::PingReq)?;
        }
    }
    Ok(())
}

/// How a subscriber lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connected from setup to the end, in a clean session.
    Live,
    /// Connected from setup to the end, in a persistent session (clean session 0, or a v5
    /// session expiry), so that a broker with persistence stores every QoS 1/2 delivery;
    /// the session is ended (a clean connect) after the run, leaving nothing behind.
    LivePersistent,
    /// Subscribes in a persistent session, goes offline, reconnects at `Reconnect`.
    Persistent,
    /// `persistent --resume`: the session exists already (an earlier run left it offline);
    /// only reconnects at `Reconnect`.
    Resume,
}

/// A subscriber from setup to the end of the run.
pub async fn run(local: Rc<Local>, spec: SubSpec, mode: Mode) -> SubOutcome {
    let mut rx = Receiver::new(&spec);
    let slot = local.slot();
    let setup = match mode {
        Mode::Live => setup_live(&local, &spec, &mut rx).await.map(Some),
        Mode::LivePersistent => open_persistent(&local, &spec, &mut rx).await.map(Some),
        Mode::Persistent => setup_persistent(&local, &spec, &mut rx)
            .await
            .map(|()| None),
        Mode::Resume => Ok(None),
    };
    local.add(|c| &c.setup_done, 1);
    let live = match setup {
        Ok(live) => live,
        Err(ConnError::Reported) => return rx.out,
        Err(e) => {
            local.error(format_args!("subscriber {}: {e}", spec.client_id));
            return rx.out;
        }
    };
    rx.out.ok = true;
    local.add(|c| &c.ready, 1);
    let mut conn = match live {
        Some(conn) => conn,
        None => match reconnect(&local, &spec, &mut rx).await {
            Some(conn) => conn,
            None => return rx.out,
        },
    };
    match receive(&local, &slot, &mut conn, &mut rx, Phase::Finish).await {
        Ok(()) => conn.disconnect().await,
        Err(e) => local.error(format_args!("subscriber {}: {e}", spec.client_id)),
    }
    if mode == Mode::LivePersistent {
        end_session(&local, &spec).await;
    }
    rx.out
}

async fn setup_live(
    local: &Rc<Local>,
    spec: &SubSpec,
    rx: &mut Receiver,
) -> Result<Conn, ConnError> {
    let (mut conn, _) = local
        .open(local.cfg.connect_packet(&spec.client_id, true), READ_BYTES)
        .await
        .map_err(|_| ConnError::Reported)?;
    subscribe(local, &mut conn, rx, &spec.filters).await?;
    Ok(conn)
}

/// Clears any old session of this id, then makes a persistent one with the subscriptions
/// and leaves it offline.
async fn setup_persistent(
    local: &Rc<Local>,
    spec: &SubSpec,
    rx: &mut Receiver,
) -> Result<(), ConnError> {
    let conn = open_persistent(local, spec, rx).await?;
    conn.disconnect().await;
    Ok(())
}

/// Clears any old session of this id, then opens a persistent one with the subscriptions.
async fn open_persistent(
    local: &Rc<Local>,
    spec: &SubSpec,
    rx: &mut Receiver,
) -> Result<Conn, ConnError> {
    let (conn, _) = local
        .open(local.cfg.connect_packet(&spec.client_id, true), READ_BYTES)
        .await
        .map_err(|_| ConnError::Reported)?;
    conn.disconnect().await;
    let (mut conn, _) = local
        .open(local.cfg.connect_packet(&spec.client_id, false), READ_BYTES)
        .await
        .map_err(|_| ConnError::Reported)?;
    subscribe(local, &mut conn, rx, &spec.filters).await?;
    Ok(conn)
}

/// Ends the persistent session of this id: a clean connect discards it (v3: clean session
/// 1; v5: clean start and no session expiry), so that repeated runs leave no sessions
/// behind on the broker.
async fn end_session(local: &Rc<Local>, spec: &SubSpec) {
    if let Ok((conn, _)) = local
        .open(local.cfg.connect_packet(&spec.client_id, true), READ_BYTES)
        .await
    {
        conn.disconnect().await;
    }
}

/// `persistent`: waits for the reconnect phase and resumes the session, which must still
/// be there.
async fn reconnect(local: &Rc<Local>, spec: &SubSpec, rx: &mut Receiver) -> Option<Conn> {
    local.wait_phase(Phase::Reconnect).await;
    if local.phase() >= Phase::Finish {
        return None;
    }
    rx.out.reconnect_ns = clock::now_ns();
    let connect = local.cfg.connect_packet(&spec.client_id, false);
    let (conn, ack) = local.open(connect, READ_BYTES).await.ok()?;
    if !ack.session_present {
        local.error(format_args!(
            "subscriber {}: reconnected without its session (session present = 0)",
            spec.client_id
        ));
    }
    Some(conn)
}

//! Hostile MQTT clients: scripts of valid and invalid packets, built from arbitrary bytes,
//! played against a broker over TCP, with the invariants every reply of the broker must
//! keep. The broker's handlers are driven through its real sockets rather than in-process:
//! a shard (meshes, storage, executor) has no test double, and the socket path is what an
//! attacker reaches anyway.
//!
//! Used by `tests/broker_handler_fuzz.rs` (proptest over random scripts, in CI),
//! `tests/broker_hardening.rs` (hostile connections beside well-behaved clients) and the
//! cargo-fuzz target `fuzz/fuzz_targets/handler.rs` (which includes this file by path), so
//! it depends on nothing but `ringmq` and `bytes`.
//!
//! # What is checked ([`run_script`])
//!
//! For every connection, whatever it sent:
//! - every byte the server sends decodes as an MQTT packet of the connection's version,
//!   and is a packet a server may send (no CONNECT, SUBSCRIBE, PINGREQ...; AUTH only to a
//!   client that used enhanced authentication, which these never do); only the last one
//!   may be cut short by the close (a server ending a connection gives up on a client that
//!   does not read its last bytes within a bound, and a script's client reads each of its
//!   connections only between steps);
//! - the first packet is CONNACK, and there is only one; a v3 server never sends
//!   DISCONNECT; nothing follows a DISCONNECT;
//! - after the client half-closes its side, the server closes the connection (it neither
//!   hangs nor keeps it).
//!
//! For a connection that sent only whole, well-formed packets (*strict*; invalid MQTT
//! usage such as unknown packet ids, a second CONNECT or an alias never set is still
//! strict), its own state must stay consistent:
//! - a valid CONNECT is accepted (CONNACK 0), unless its will topic is over the topic
//!   limits (CONNACK 0x90 / 0x03);
//! - each PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK and PINGRESP answers a packet the client
//!   sent with that id (and a SUBACK / v5 UNSUBACK has one code per filter);
//! - a PUBLISH from the server names a topic (directly or by an alias the server set
//!   earlier on this connection) that matches a filter the client id subscribed to; a QoS
//!   1/2 one with DUP 0 uses a packet id not in use; no more than the client's Receive
//!   Maximum are unacknowledged; a PUBREL answers a PUBREC the client sent;
//! - if the server has not closed the connection, it answers PINGREQ.
//!
//! And after every script, a fresh client can still subscribe, publish and receive.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use ringmq::protocol::{
    decode, filter_matches, Ack, Auth, Connect, ConnectProperties, Decoded, Disconnect, MqttString,
    Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe, Subscription,
    SubscriptionOptions, TopicFilter, TopicName, Unsubscribe, Will, MAX_PACKET_BYTES,
};

/// How long the broker may take to answer, or to close after the client half-closes.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections and steps a script has (a bound on each case's time).
pub const CONNS_MAX: usize = 3;
pub const STEPS_MAX: usize = 48;

/// The topic limits the scripts' checks assume (a will topic over them is refused): keys of
/// `[limits]` every broker the scripts run against must have.
pub const TOPIC_LIMITS_TOML: &str = "topic_bytes_max = 48\ntopic_levels_max = 6\n";

/// The broker configuration the scripts are written against: small limits, so that scripts
/// of a few dozen packets reach them (the `[limits]` table, [`TOPIC_LIMITS_TOML`] included;
/// a test appends it to its own config).
pub const LIMITS_TOML: &str = "[limits]\n\
    packet_bytes_max = 2048\n\
    queued_bytes_max = 65536\n\
    topic_bytes_max = 48\n\
    topic_levels_max = 6\n\
    subscriptions_per_client_max = 4\n\
    inflight_count_max = 4\n\
    queued_messages_max = 8\n\
    queued_messages_pushback = 4\n\
    pushback_wait_ms = 100\n\
    topic_alias_max = 3\n\
    connect_timeout_secs = 2\n\
    packet_timeout_secs = 2\n\
    publish_messages_per_sec = 500\n\
    memory_high_water_bytes = 65536\n";

/// Topic names the scripts publish to: overlapping, `$`-prefixed, over `topic_bytes_max`
/// (48) and over `topic_levels_max` (6).
const TOPICS: [&str; 8] = [
    "t/a",
    "t/b",
    "t/a/b",
    "x",
    "$SYS/t",
    "t/",
    "long/0123456789012345678901234567890123456789012345",
    "t/1/2/3/4/5/6/7",
];

/// The indexes in [`TOPICS`] of the topics over the limits of [`LIMITS_TOML`].
const TOPICS_OVER_LIMITS: [usize; 2] = [6, 7];

/// Topic filters the scripts subscribe to.
const FILTERS: [&str; 10] = [
    "t/#",
    "t/+",
    "#",
    "t/a",
    "+/b",
    "$share/g/t/#",
    "$share/h/#",
    "x",
    "long/0123456789012345678901234567890123456789012345/#",
    "+/+/+/+/+/+/+",
];

// ---------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------

/// A packet a script sends, as parameters (so that a failing script prints readably).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Publish {
        topic: usize,
        qos: u8,
        retain: bool,
        id: u16,
        payload_len: usize,
        /// v5 Topic Alias; with `empty_topic` the topic name is left out.
        alias: Option<u16>,
        empty_topic: bool,
    },
    Subscribe {
        id: u16,
        filters: Vec<(usize, u8)>,
    },
    Unsubscribe {
        id: u16,
        filters: Vec<usize>,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    PingReq,
    Disconnect(u8),
    /// A second CONNECT on the connection.
    Connect,
    /// An AUTH packet (v5) without a method agreed.
    Auth,
}

/// What one step does on its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A whole packet.
    Send(Msg),
    /// Bytes as they are.
    Raw(Vec<u8>),
    /// The first `usize` bytes of a packet (the rest never comes).
    Truncated(Msg, usize),
    /// A packet with one byte XORed.
    Mutated(Msg, usize, u8),
    /// A fixed header announcing a packet far larger than `packet_bytes_max`.
    Oversized,
    /// Waits a moment for replies.
    Pause,
}

/// How a connection begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    Connect,
    /// Bytes that are not a CONNECT.
    Garbage(Vec<u8>),
    /// The first `usize` bytes of the CONNECT, then whatever the steps send.
    HalfConnect(usize),
}

/// One connection of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSpec {
    pub version: ProtocolVersion,
    /// Which of the script's client ids it uses (connections may share one: takeover).
    pub client: usize,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub receive_max: Option<u16>,
    pub topic_alias_max: Option<u16>,
    pub session_expiry: Option<u32>,
    pub will: Option<(usize, u8)>,
    /// Acknowledge the server's PUBLISHes (PUBACK; PUBREC, then PUBCOMP on PUBREL).
    pub auto_ack: bool,
    pub opening: Opening,
}

/// A step: an action on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub conn: usize,
    pub action: Action,
}

/// Connections, and steps interleaved over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub conns: Vec<ConnSpec>,
    pub steps: Vec<Step>,
}

/// Reads choices out of arbitrary bytes (zeros once they run out).
struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = 1 + self.below(max);
        (0..n).map(|_| self.byte()).collect()
    }

    fn exhausted(&self) -> bool {
        self.pos >= self.data.len()
    }
}

impl Script {
    /// The script `data` describes: any bytes make a script (libFuzzer and proptest hand
    /// over arbitrary ones), and similar bytes make similar scripts.
    pub fn from_bytes(data: &[u8]) -> Script {
        let mut c = Choices { data, pos: 0 };
        let count = 1 + c.below(CONNS_MAX);
        let conns = (0..count).map(|_| conn_spec(&mut c)).collect();
        let mut steps = Vec::new();
        while !c.exhausted() && steps.len() < STEPS_MAX {
            let conn = c.below(count);
            // Mostly whole packets: an invalid one usually ends the connection, and what
            // comes before it is where the state checks bite.
            let action = match c.below(64) {
                0..=51 => Action::Send(msg(&mut c)),
                52..=55 => Action::Pause,
                56 => Action::Raw(c.bytes(16)),
                57 | 58 => {
                    let m = msg(&mut c);
                    let cut = c.byte().into();
                    Action::Truncated(m, cut)
                }
                59..=61 => {
                    let m = msg(&mut c);
                    let at = c.byte().into();
                    Action::Mutated(m, at, c.byte() | 1)
                }
                _ => Action::Oversized,
            };
            steps.push(Step { conn, action });
        }
        Script { conns, steps }
    }
}

fn conn_spec(c: &mut Choices) -> ConnSpec {
    let version = [
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
        ProtocolVersion::V5,
        ProtocolVersion::V3_1,
    ][c.below(4)];
    let v5 = version.is_v5();
    ConnSpec {
        version,
        client: c.below(2),
        clean_start: c.below(4) != 0,
        keep_alive: [0, 60, 60, 1][c.below(4)],
        receive_max: if v5 {
            [None, Some(1), Some(3)][c.below(3)]
        } else {
            None
        },
        topic_alias_max: if v5 {
            [None, Some(2)][c.below(2)]
        } else {
            None
        },
        session_expiry: if v5 {
            [None, Some(0), Some(5)][c.below(3)]
        } else {
            None
        },
        will: (c.below(4) == 0).then(|| (c.below(TOPICS.len()), c.byte() % 3)),
        auto_ack: c.below(4) != 0,
        opening: match c.below(12) {
            0 => Opening::Garbage(c.bytes(12)),
            1 => Opening::HalfConnect(c.byte().into()),
            _ => Opening::Connect,
        },
    }
}

fn msg(c: &mut Choices) -> Msg {
    let id = |c: &mut Choices| 1 + c.below(6) as u16;
    match c.below(16) {
        0..=5 => {
            // Aliases 1..=3 are within `topic_alias_max`, 4 is not.
            let alias = (c.below(3) == 0).then(|| [1, 2, 3, 1, 2, 3, 4][c.below(7)]);
            // The topics over the limits and the payload over `packet_bytes_max` end the
            // connection: rarer than the others.
            let topic = match c.below(16) {
                14 => 6,
                15 => 7,
                n => n % 6,
            };
            Msg::Publish {
                topic,
                qos: c.byte() % 3,
                retain: c.below(4) == 0,
                id: id(c),
                payload_len: [0, 7, 120, 0, 7, 120, 1500, 3000][c.below(8)],
                alias,
                empty_topic: alias.is_some() && c.flag(),
            }
        }
        6 | 7 => Msg::Subscribe {
            id: id(c),
            filters: (0..1 + c.below(3))
                .map(|_| (c.below(FILTERS.len()), c.byte() % 3))
                .collect(),
        },
        8 => Msg::Unsubscribe {
            id: id(c),
            filters: (0..1 + c.below(2))
                .map(|_| c.below(FILTERS.len()))
                .collect(),
        },
        9 => Msg::PubAck(id(c)),
        10 => Msg::PubRec(id(c)),
        11 => Msg::PubRel(id(c)),
        12 => Msg::PubComp(id(c)),
        13 => Msg::PingReq,
        14 => match c.below(8) {
            0 | 1 => Msg::Disconnect([0x00, 0x04, 0x80, 0x8e][c.below(4)]),
            2 => Msg::Auth,
            3 => Msg::Connect,
            _ => Msg::PingReq,
        },
        _ => Msg::PingReq,
    }
}

// ---------------------------------------------------------------------------------------
// Encoding what a script sends
// ---------------------------------------------------------------------------------------

fn mqtt_string(s: &str) -> MqttString {
    MqttString::try_from(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn topic_name(s: &str) -> TopicName {
    TopicName::try_from(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn topic_filter(s: &str) -> TopicFilter {
    TopicFilter::try_from(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap_or(PacketId::MIN)
}

fn qos_of(n: u8) -> QoS {
    QoS::from_u8(n % 3).unwrap_or(QoS::AtMostOnce)
}

/// The CONNECT a connection opens with.
fn connect_packet(spec: &ConnSpec, client_id: &str) -> Packet {
    let mut properties = ConnectProperties::default();
    if spec.version.is_v5() {
        properties.receive_maximum = spec.receive_max.and_then(NonZeroU16::new);
        properties.topic_alias_maximum = spec.topic_alias_max;
        properties.session_expiry_interval = spec.session_expiry;
        properties.maximum_packet_size = NonZeroU32::new(1 << 20);
    }
    let will = spec.will.map(|(topic, qos)| Will {
        topic: topic_name(TOPICS[topic]),
        payload: Bytes::from_static(b"will"),
        qos: qos_of(qos),
        retain: false,
        properties: Default::default(),
    });
    Packet::Connect(Box::new(Connect {
        protocol: spec.version,
        clean_start: spec.clean_start,
        keep_alive: spec.keep_alive,
        client_id: mqtt_string(client_id),
        will,
        username: None,
        password: None,
        properties,
    }))
}

fn packet_of(m: &Msg, spec: &ConnSpec, client_id: &str) -> Packet {
    let v5 = spec.version.is_v5();
    match m {
        Msg::Publish {
            topic,
            qos,
            retain,
            id,
            payload_len,
            alias,
            empty_topic,
        } => {
            let qos = qos_of(*qos);
            let mut p = Publish {
                dup: false,
                qos,
                retain: *retain,
                topic: if *empty_topic && v5 {
                    TopicName::EMPTY
                } else {
                    topic_name(TOPICS[*topic])
                },
                packet_id: (qos != QoS::AtMostOnce).then(|| pid(*id)),
                properties: Default::default(),
                payload: Bytes::from(vec![b'p'; *payload_len]),
            };
            if v5 {
                p.properties.topic_alias = alias.and_then(NonZeroU16::new);
            }
            if p.topic.is_empty() && p.properties.topic_alias.is_none() {
                p.topic = topic_name(TOPICS[*topic]);
            }
            Packet::Publish(p)
        }
        Msg::Subscribe { id, filters } => Packet::Subscribe(Subscribe {
            packet_id: pid(*id),
            properties: Default::default(),
            subscriptions: filters
                .iter()
                .map(|(f, q)| Subscription {
                    filter: topic_filter(FILTERS[*f]),
                    options: SubscriptionOptions {
                        qos: qos_of(*q),
                        ..Default::default()
                    },
                })
                .collect(),
        }),
        Msg::Unsubscribe { id, filters } => Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(*id),
            properties: Default::default(),
            filters: filters.iter().map(|f| topic_filter(FILTERS[*f])).collect(),
        }),
        Msg::PubAck(id) => Packet::PubAck(Ack::new(pid(*id))),
        Msg::PubRec(id) => Packet::PubRec(Ack::new(pid(*id))),
        Msg::PubRel(id) => Packet::PubRel(Ack::new(pid(*id))),
        Msg::PubComp(id) => Packet::PubComp(Ack::new(pid(*id))),
        Msg::PingReq => Packet::PingReq,
        Msg::Disconnect(reason) => Packet::Disconnect(Disconnect::new(
            ReasonCode::from_u8(*reason).unwrap_or(ReasonCode::Success),
        )),
        Msg::Connect => connect_packet(spec, client_id),
        Msg::Auth => Packet::Auth(Auth {
            reason: ReasonCode::ReAuthenticate,
            properties: Default::default(),
        }),
    }
}

/// The packet's bytes for the connection's version; `None` if that version cannot carry it
/// (e.g. AUTH in v3), which a script then skips.
fn encode(packet: &Packet, v: ProtocolVersion) -> Option<Vec<u8>> {
    let mut buf = BytesMut::new();
    packet.encode(v, &mut buf).ok()?;
    Some(buf.to_vec())
}

// ---------------------------------------------------------------------------------------
// Playing a script
// ---------------------------------------------------------------------------------------

/// A broken invariant: what, on which connection, with the script's context.
#[derive(Debug, Clone)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a script did, for the figures a test prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub connections: u64,
    pub packets_sent: u64,
    pub invalid_sent: u64,
    pub bytes_sent: u64,
    pub packets_received: u64,
    /// Connections the server closed before the client half-closed.
    pub closed_by_server: u64,
    /// Connections that sent only whole valid packets and were still open at the end
    /// (checked in full, PINGREQ answered).
    pub strict_to_the_end: u64,
}

impl Outcome {
    pub fn add(&mut self, o: &Outcome) {
        self.connections += o.connections;
        self.packets_sent += o.packets_sent;
        self.invalid_sent += o.invalid_sent;
        self.bytes_sent += o.bytes_sent;
        self.packets_received += o.packets_received;
        self.closed_by_server += o.closed_by_server;
        self.strict_to_the_end += o.strict_to_the_end;
    }
}

/// What the client knows of one connection's exchange.
struct Conn {
    spec: ConnSpec,
    client_id: String,
    stream: TcpStream,
    buf: BytesMut,
    /// The version replies are decoded with (fixed by the CONNACK for odd openings).
    version: Option<ProtocolVersion>,
    strict: bool,
    connack: bool,
    disconnected: bool,
    /// EOF or reset from the server.
    closed: bool,
    /// Sent and not answered yet, per packet id (multisets).
    qos1: HashMap<u16, u32>,
    qos2: HashMap<u16, u32>,
    pubrel: HashMap<u16, u32>,
    /// Filters of each SUBSCRIBE / UNSUBSCRIBE not answered yet, per packet id, in order
    /// (a script may reuse an id before its answer comes).
    subscribe: HashMap<u16, VecDeque<Vec<usize>>>,
    unsubscribe: HashMap<u16, VecDeque<Vec<usize>>>,
    pings: u32,
    /// Server PUBLISH ids (QoS 1/2) not completed by the client; and those with DUP 0.
    in_use: HashSet<u16>,
    in_use_new: HashSet<u16>,
    /// The script itself sent PUBACK / PUBREC / PUBCOMP: the client no longer knows which
    /// of the server's ids are in use (an ack may cross a PUBLISH with the same id).
    acks_by_hand: bool,
    /// Topics the server named by alias on this connection.
    aliases: HashMap<u16, String>,
    outcome: Outcome,
}

/// State shared by the connections of one script, per client id.
#[derive(Default)]
struct Clients {
    /// Every filter subscribed under the client id (a superset of its session's).
    filters: HashMap<usize, HashSet<&'static str>>,
    /// A connection of this client id sent bytes that are not whole valid packets: its
    /// subscriptions are no longer known.
    unknown: HashSet<usize>,
    /// PUBRECs a connection of the client id sent, per packet id, not yet completed by a
    /// PUBCOMP (each is answered by a PUBREL, again after a resumed session's reconnect).
    recs: HashMap<usize, HashMap<u16, u32>>,
}

impl Conn {
    fn fail(&self, what: impl fmt::Display) -> Violation {
        Violation(format!(
            "{} ({}, {:?} opening): {what}",
            self.client_id, self.spec.version, self.spec.opening
        ))
    }

    /// Sends bytes; a connection the server has closed takes no more.
    fn send(&mut self, bytes: &[u8], clients: &mut Clients) -> Result<(), Violation> {
        if self.closed {
            return Ok(());
        }
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.stream.write(rest) {
                Ok(n) => {
                    rest = &rest[n..];
                    self.outcome.bytes_sent += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // The server is not reading (pushback, throttling, or a full socket):
                    // read what it sent meanwhile, so that neither side waits on the other.
                    self.receive(clients)?;
                    if Instant::now() > deadline {
                        return Err(
                            self.fail(format!("the server read nothing for {REPLY_TIMEOUT:?}"))
                        );
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Reads and checks what has arrived, without waiting.
    fn receive(&mut self, clients: &mut Clients) -> Result<(), Violation> {
        let mut chunk = [0u8; 16 << 10];
        while !self.closed {
            match self.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
        self.check_buffered(clients)
    }

    /// Waits up to `limit` for the server to close, checking everything it sends.
    fn receive_until_closed(
        &mut self,
        clients: &mut Clients,
        limit: Duration,
    ) -> Result<bool, Violation> {
        let deadline = Instant::now() + limit;
        while !self.closed {
            self.receive(clients)?;
            if Instant::now() > deadline {
                return Ok(false);
            }
            if !self.closed {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        self.check_buffered(clients)?;
        Ok(true)
    }

    fn check_buffered(&mut self, clients: &mut Clients) -> Result<(), Violation> {
        loop {
            let version = match self.version {
                Some(v) => v,
                None => match self.guess_version() {
                    Some(v) => v,
                    None => return Ok(()),
                },
            };
            let head = self.buf[..self.buf.len().min(32)].to_vec();
            match decode(&mut self.buf, Some(version), MAX_PACKET_BYTES) {
                Ok(Decoded::Packet(p)) => {
                    self.outcome.packets_received += 1;
                    // HOSTILE_TRACE=1: every packet each connection receives, to replay
                    // a failing script by hand.
                    if std::env::var_os("HOSTILE_TRACE").is_some() {
                        eprintln!("TRACE {} <- {:?}", self.client_id, p);
                    }
                    self.check(p, clients)?;
                }
                Ok(Decoded::Incomplete { .. }) => return Ok(()),
                Err(e) => {
                    return Err(self.fail(format!(
                        "the server sent bytes that are not MQTT {version}: {e}: {head:02x?}"
                    )))
                }
            }
        }
    }

    /// For a connection that did not open with a plain CONNECT, the version the server
    /// took from what it was sent: the one its CONNACK decodes as.
    fn guess_version(&mut self) -> Option<ProtocolVersion> {
        if self.buf.is_empty() {
            return None;
        }
        let mine = self.spec.version;
        for v in [mine, ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
            let mut probe = self.buf.clone();
            if let Ok(Decoded::Packet(Packet::ConnAck(_))) =
                decode(&mut probe, Some(v), MAX_PACKET_BYTES)
            {
                self.version = Some(v);
                return Some(v);
            }
        }
        // Not a CONNACK in any version (or not all of it yet): checked as `mine`, which
        // reports what it is.
        let complete = matches!(
            decode(&mut self.buf.clone(), Some(mine), MAX_PACKET_BYTES),
            Ok(Decoded::Packet(_)) | Err(_)
        );
        complete.then(|| {
            self.version = Some(mine);
            mine
        })
    }

    fn check(&mut self, p: Packet, clients: &mut Clients) -> Result<(), Violation> {
        let v5 = self.version.is_some_and(ProtocolVersion::is_v5);
        if self.disconnected {
            return Err(self.fail(format!("{p:?} after the server's DISCONNECT")));
        }
        if !self.connack {
            let Packet::ConnAck(c) = &p else {
                return Err(self.fail(format!("{p:?} before CONNACK")));
            };
            self.connack = true;
            if self.strict && self.spec.opening == Opening::Connect {
                // A will topic over topic_bytes_max / topic_levels_max is refused: CONNACK
                // 0x90 (v5), 0x03 (v3, read back as Server unavailable).
                let over = self
                    .spec
                    .will
                    .is_some_and(|(t, _)| TOPICS_OVER_LIMITS.contains(&t));
                let want = match (over, v5) {
                    (false, _) => ReasonCode::Success,
                    (true, true) => ReasonCode::TopicNameInvalid,
                    (true, false) => ReasonCode::ServerUnavailable,
                };
                if c.reason != want {
                    return Err(self.fail(format!("CONNACK {c:?}, expected {want:?}")));
                }
            }
            return Ok(());
        }
        match p {
            Packet::ConnAck(c) => Err(self.fail(format!("a second CONNACK: {c:?}"))),
            Packet::Disconnect(d) => {
                if !v5 {
                    return Err(self.fail(format!("DISCONNECT to a v3 client: {d:?}")));
                }
                self.disconnected = true;
                Ok(())
            }
            Packet::Auth(a) => Err(self.fail(format!("AUTH without enhanced auth: {a:?}"))),
            Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq => {
                Err(self.fail(format!("a client's packet from the server: {p:?}")))
            }
            _ if !self.strict => {
                // What a dirty connection's server answers cannot be matched to what the
                // client meant to send; its own PUBLISHes still get acknowledged.
                if let Packet::Publish(p) = &p {
                    self.auto_ack(p, clients)?;
                }
                Ok(())
            }
            Packet::PubAck(a) => take(&mut self.qos1, a.packet_id.get())
                .then_some(())
                .ok_or_else(|| self.fail(format!("PUBACK for no QoS 1 PUBLISH: {a:?}"))),
            Packet::PubRec(a) => take(&mut self.qos2, a.packet_id.get())
                .then_some(())
                .ok_or_else(|| self.fail(format!("PUBREC for no QoS 2 PUBLISH: {a:?}"))),
            Packet::PubComp(a) => take(&mut self.pubrel, a.packet_id.get())
                .then_some(())
                .ok_or_else(|| self.fail(format!("PUBCOMP for no PUBREL: {a:?}"))),
            Packet::SubAck(s) => match pop(&mut self.subscribe, s.packet_id.get()) {
                Some(filters) if filters.len() == s.reasons.len() => Ok(()),
                sent => Err(self.fail(format!("SUBACK {s:?} for SUBSCRIBE {sent:?}"))),
            },
            Packet::UnsubAck(u) => match pop(&mut self.unsubscribe, u.packet_id.get()) {
                Some(filters) if !v5 || filters.len() == u.reasons.len() => Ok(()),
                sent => Err(self.fail(format!("UNSUBACK {u:?} for UNSUBSCRIBE {sent:?}"))),
            },
            Packet::PingResp => {
                if self.pings == 0 {
                    return Err(self.fail("PINGRESP without PINGREQ"));
                }
                self.pings -= 1;
                Ok(())
            }
            Packet::PubRel(a) => {
                let id = a.packet_id.get();
                let known = !clients.unknown.contains(&self.spec.client);
                let recs = clients.recs.entry(self.spec.client).or_default();
                if known && !recs.contains_key(&id) {
                    return Err(self.fail(format!("PUBREL for no PUBREC: {a:?}")));
                }
                if self.spec.auto_ack {
                    take(recs, id);
                    self.in_use.remove(&id);
                    self.in_use_new.remove(&id);
                    let bytes = encode(&Packet::PubComp(Ack::new(a.packet_id)), self.spec.version);
                    self.send(&bytes.unwrap_or_default(), clients)?;
                }
                Ok(())
            }
            Packet::Publish(p) => self.check_publish(p, clients),
        }
    }

    fn check_publish(&mut self, p: Publish, clients: &mut Clients) -> Result<(), Violation> {
        let mut topic = p.topic.as_str().to_owned();
        if let Some(alias) = p.properties.topic_alias {
            let alias = alias.get();
            if self.spec.topic_alias_max.map_or(true, |m| alias > m) {
                return Err(self.fail(format!("topic alias {alias} above the client's maximum")));
            }
            if topic.is_empty() {
                topic = self
                    .aliases
                    .get(&alias)
                    .cloned()
                    .ok_or_else(|| self.fail(format!("topic alias {alias} never set")))?;
            } else {
                self.aliases.insert(alias, topic.clone());
            }
        }
        let client = self.spec.client;
        if !clients.unknown.contains(&client) {
            let subscribed = clients.filters.get(&client);
            let matches = subscribed.is_some_and(|fs| {
                fs.iter().any(|f| {
                    let f = TopicFilter::try_from(*f).map(|f| f.matching_filter().to_owned());
                    f.is_ok_and(|f| filter_matches(&f, &topic))
                })
            });
            if !matches {
                return Err(self.fail(format!(
                    "PUBLISH to {topic:?}, which no filter of {subscribed:?} matches"
                )));
            }
        }
        if let Some(id) = p
            .packet_id
            .map(PacketId::get)
            .filter(|_| !self.acks_by_hand)
        {
            if !p.dup && self.in_use.contains(&id) {
                return Err(self.fail(format!("PUBLISH with packet id {id} still in use")));
            }
            self.in_use.insert(id);
            if !p.dup {
                self.in_use_new.insert(id);
            }
            if let Some(max) = self.spec.receive_max.filter(|_| self.spec.version.is_v5()) {
                if self.in_use_new.len() > usize::from(max) {
                    return Err(self.fail(format!(
                        "{} unacknowledged PUBLISHes, Receive Maximum {max}",
                        self.in_use_new.len()
                    )));
                }
            }
        }
        self.auto_ack(&p, clients)
    }

    fn auto_ack(&mut self, p: &Publish, clients: &mut Clients) -> Result<(), Violation> {
        if !self.spec.auto_ack {
            return Ok(());
        }
        let Some(id) = p.packet_id else {
            return Ok(());
        };
        let ack = match p.qos {
            QoS::AtLeastOnce => {
                self.in_use.remove(&id.get());
                self.in_use_new.remove(&id.get());
                Packet::PubAck(Ack::new(id))
            }
            _ => {
                let recs = clients.recs.entry(self.spec.client).or_default();
                *recs.entry(id.get()).or_default() += 1;
                Packet::PubRec(Ack::new(id))
            }
        };
        let bytes = encode(&ack, self.spec.version).unwrap_or_default();
        self.send(&bytes, clients)
    }

    /// Records what a whole packet sent on a strict connection asks the server to answer.
    fn expect_answer(&mut self, m: &Msg, clients: &mut Clients) {
        match m {
            Msg::Publish { qos: 1, id, .. } => *self.qos1.entry(*id).or_default() += 1,
            Msg::Publish { qos: 2, id, .. } => *self.qos2.entry(*id).or_default() += 1,
            Msg::PubRel(id) => *self.pubrel.entry(*id).or_default() += 1,
            Msg::Subscribe { id, filters } => {
                let fs = clients.filters.entry(self.spec.client).or_default();
                fs.extend(filters.iter().map(|(f, _)| FILTERS[*f]));
                let filters = filters.iter().map(|(f, _)| *f).collect();
                self.subscribe.entry(*id).or_default().push_back(filters);
            }
            Msg::Unsubscribe { id, filters } => {
                let filters = filters.clone();
                self.unsubscribe.entry(*id).or_default().push_back(filters);
            }
            Msg::PingReq => self.pings += 1,
            // A client acknowledging the server's PUBLISH itself (out of turn or not).
            Msg::PubAck(_) | Msg::PubComp(_) => self.acks_by_hand = true,
            Msg::PubRec(id) => {
                self.acks_by_hand = true;
                let recs = clients.recs.entry(self.spec.client).or_default();
                *recs.entry(*id).or_default() += 1;
            }
            _ => {}
        }
    }

    /// From now on the connection's bytes are not whole valid packets.
    fn dirty(&mut self, clients: &mut Clients) {
        self.strict = false;
        self.outcome.invalid_sent += 1;
        clients.unknown.insert(self.spec.client);
    }
}

/// The oldest request with packet id `id` not answered yet.
fn pop(requests: &mut HashMap<u16, VecDeque<Vec<usize>>>, id: u16) -> Option<Vec<usize>> {
    let queue = requests.get_mut(&id)?;
    let first = queue.pop_front();
    if queue.is_empty() {
        requests.remove(&id);
    }
    first
}

/// Takes one `id` out of a multiset; false if it was not there.
fn take(set: &mut HashMap<u16, u32>, id: u16) -> bool {
    match set.get_mut(&id) {
        Some(n) if *n > 1 => {
            *n -= 1;
            true
        }
        Some(_) => {
            set.remove(&id);
            true
        }
        None => false,
    }
}

fn open(addr: SocketAddr) -> Result<TcpStream, Violation> {
    let stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)
        .map_err(|e| Violation(format!("the broker does not accept connections: {e}")))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_nonblocking(true)
        .map_err(|e| Violation(format!("set_nonblocking: {e}")))?;
    Ok(stream)
}

/// Plays `script` against the broker at `addr`; `tag` makes its client ids unique (a
/// broker serves many scripts). Returns what was done, or the first invariant broken.
pub fn run_script(addr: SocketAddr, script: &Script, tag: &str) -> Result<Outcome, Violation> {
    let mut clients = Clients::default();
    let mut conns = Vec::with_capacity(script.conns.len());
    for spec in &script.conns {
        let client_id = format!("{tag}-{}", spec.client);
        let mut conn = Conn {
            spec: spec.clone(),
            stream: open(addr)?,
            buf: BytesMut::new(),
            version: (spec.opening == Opening::Connect).then_some(spec.version),
            strict: spec.opening == Opening::Connect,
            connack: false,
            disconnected: false,
            closed: false,
            qos1: HashMap::new(),
            qos2: HashMap::new(),
            pubrel: HashMap::new(),
            subscribe: HashMap::new(),
            unsubscribe: HashMap::new(),
            pings: 0,
            in_use: HashSet::new(),
            in_use_new: HashSet::new(),
            acks_by_hand: false,
            aliases: HashMap::new(),
            outcome: Outcome {
                connections: 1,
                ..Outcome::default()
            },
            client_id,
        };
        let connect = encode(&connect_packet(spec, &conn.client_id), spec.version)
            .ok_or_else(|| conn.fail("CONNECT does not encode"))?;
        match &spec.opening {
            Opening::Connect => conn.send(&connect, &mut clients)?,
            Opening::Garbage(bytes) => {
                conn.dirty(&mut clients);
                conn.send(bytes, &mut clients)?;
            }
            Opening::HalfConnect(cut) => {
                conn.dirty(&mut clients);
                let cut = (*cut).min(connect.len() - 1);
                conn.send(&connect[..cut], &mut clients)?;
            }
        }
        conn.outcome.packets_sent += 1;
        conns.push(conn);
    }
    for step in &script.steps {
        let Some(conn) = conns.get_mut(step.conn) else {
            continue;
        };
        let spec = conn.spec.clone();
        match &step.action {
            Action::Send(m) => {
                let Some(bytes) = encode(&packet_of(m, &spec, &conn.client_id), spec.version)
                else {
                    continue;
                };
                if conn.strict {
                    conn.expect_answer(m, &mut clients);
                } else if let Msg::Subscribe { .. } = m {
                    clients.unknown.insert(spec.client);
                }
                conn.outcome.packets_sent += 1;
                conn.send(&bytes, &mut clients)?;
            }
            Action::Raw(bytes) => {
                conn.dirty(&mut clients);
                conn.send(bytes, &mut clients)?;
            }
            Action::Truncated(m, cut) => {
                let Some(bytes) = encode(&packet_of(m, &spec, &conn.client_id), spec.version)
                else {
                    continue;
                };
                conn.dirty(&mut clients);
                let cut = (*cut).min(bytes.len().saturating_sub(1)).max(1);
                conn.send(&bytes[..cut], &mut clients)?;
            }
            Action::Mutated(m, at, xor) => {
                let Some(mut bytes) = encode(&packet_of(m, &spec, &conn.client_id), spec.version)
                else {
                    continue;
                };
                conn.dirty(&mut clients);
                let at = at % bytes.len();
                bytes[at] ^= xor;
                conn.send(&bytes, &mut clients)?;
            }
            Action::Oversized => {
                conn.dirty(&mut clients);
                conn.send(&[0x30, 0xff, 0xff, 0xff, 0x7f], &mut clients)?;
            }
            Action::Pause => std::thread::sleep(Duration::from_millis(2)),
        }
        conn.receive(&mut clients)?;
    }
    let mut outcome = Outcome::default();
    for conn in &mut conns {
        finish(conn, &mut clients)?;
        outcome.add(&conn.outcome);
    }
    probe(addr, tag)?;
    Ok(outcome)
}

/// Ends a connection: a strict one that is still open must answer PINGREQ; then the client
/// half-closes, and the server must close within [`REPLY_TIMEOUT`].
fn finish(conn: &mut Conn, clients: &mut Clients) -> Result<(), Violation> {
    conn.receive(clients)?;
    if conn.closed || conn.disconnected {
        conn.outcome.closed_by_server += 1;
    }
    if conn.strict && !conn.closed && !conn.disconnected {
        conn.pings += 1;
        conn.send(&[0xc0, 0x00], clients)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let before = conn.pings;
        while conn.pings == before && !conn.closed && !conn.disconnected {
            conn.receive(clients)?;
            if Instant::now() > deadline {
                return Err(conn.fail(format!(
                    "neither PINGRESP nor a close within {REPLY_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if conn.pings < before {
            conn.outcome.strict_to_the_end += 1;
        }
    }
    let _ = conn.stream.shutdown(Shutdown::Write);
    if !conn.receive_until_closed(clients, REPLY_TIMEOUT)? {
        return Err(conn.fail(format!(
            "still open {REPLY_TIMEOUT:?} after the client closed its side"
        )));
    }
    Ok(())
}

/// A fresh client subscribes, publishes at QoS 1 and receives its message: the broker
/// still serves.
fn probe(addr: SocketAddr, tag: &str) -> Result<(), Violation> {
    let v = ProtocolVersion::V5;
    let fail = |what: String| Violation(format!("probe after the script: {what}"));
    let mut stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)
        .map_err(|e| fail(format!("connect: {e}")))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(REPLY_TIMEOUT));
    let id = format!("{tag}-probe");
    let topic = format!("probe/{tag}");
    let spec = ConnSpec {
        version: v,
        client: 0,
        clean_start: true,
        keep_alive: 60,
        receive_max: None,
        topic_alias_max: None,
        session_expiry: None,
        will: None,
        auto_ack: true,
        opening: Opening::Connect,
    };
    let mut out = Vec::new();
    out.extend(encode(&connect_packet(&spec, &id), v).unwrap_or_default());
    out.extend(
        encode(
            &Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                properties: Default::default(),
                subscriptions: vec![Subscription {
                    filter: topic_filter(&topic),
                    options: SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        ..Default::default()
                    },
                }],
            }),
            v,
        )
        .unwrap_or_default(),
    );
    out.extend(
        encode(
            &Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: topic_name(&topic),
                packet_id: Some(pid(2)),
                properties: Default::default(),
                payload: Bytes::from_static(b"alive"),
            }),
            v,
        )
        .unwrap_or_default(),
    );
    stream
        .write_all(&out)
        .map_err(|e| fail(format!("send: {e}")))?;
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    let (mut connack, mut suback, mut puback, mut delivered) = (false, false, false, false);
    while !(connack && suback && puback && delivered) {
        match decode(&mut buf, Some(v), MAX_PACKET_BYTES) {
            Ok(Decoded::Packet(p)) => match p {
                Packet::ConnAck(c) if c.reason == ReasonCode::Success => connack = true,
                Packet::SubAck(_) => suback = true,
                Packet::PubAck(_) => puback = true,
                Packet::Publish(p) if &p.payload[..] == b"alive" => {
                    delivered = true;
                    if let Some(id) = p.packet_id {
                        let ack = encode(&Packet::PubAck(Ack::new(id)), v).unwrap_or_default();
                        let _ = stream.write_all(&ack);
                    }
                }
                other => return Err(fail(format!("unexpected {other:?}"))),
            },
            Ok(Decoded::Incomplete { .. }) => match stream.read(&mut chunk) {
                Ok(0) => return Err(fail("closed".into())),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(fail(format!("read: {e}"))),
            },
            Err(e) => return Err(fail(format!("undecodable reply: {e}"))),
        }
    }
    let bye = encode(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)), v);
    let _ = stream.write_all(&bye.unwrap_or_default());
    Ok(())
}

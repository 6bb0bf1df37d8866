//! MQTT over TLS: TLS and plain listeners side by side, TLS 1.2 and 1.3, a server
//! certificate chain, a client that does not trust the server, mutual TLS (no certificate,
//! another CA's, an expired one), the certificate's identity as user name, certificates
//! reloaded on SIGHUP, TLS connections handed to their home shard, clients that do not speak
//! TLS on a TLS port, and the mosquitto clients with `--cafile`, `--cert` and `--key`.
//!
//! Each test makes its certificates with rcgen in a temporary directory: a root CA, an
//! intermediate CA that signs the server certificate (the server sends both), client
//! certificates from the root CA and from another CA, and an expired one. The clients here
//! are rustls clients on blocking sockets speaking raw MQTT, written for these tests.
//!
//! The same tests run against Mosquitto (its own TLS listener settings), except those of
//! ringmq-only behaviour.

pub mod common;
pub mod security;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use ringmq::protocol::{
    decode, Auth, Connect, Decoded, Packet, ProtocolVersion, QoS, ReasonCode, MAX_PACKET_BYTES,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};

const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const ANY_TLS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// A CA with its own self-signed certificate.
fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// What a leaf certificate says about its holder.
struct Leaf<'a> {
    cn: Option<&'a str>,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    expired: bool,
}

impl Leaf<'_> {
    fn client(cn: &str) -> Leaf<'_> {
        Leaf {
            cn: Some(cn),
            sans: Vec::new(),
            usage: ExtendedKeyUsagePurpose::ClientAuth,
            expired: false,
        }
    }

    /// PEM certificate and PEM key, signed by `issuer`.
    fn sign(self, issuer: &Issuer<'_, KeyPair>) -> (String, String) {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ringmq tests");
        if let Some(cn) = self.cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = self.sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![self.usage];
        if self.expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }
}

/// The server's certificate for 127.0.0.1 and localhost, signed by `intermediate`.
fn server_leaf(intermediate: &Issuer<'_, KeyPair>) -> (String, String) {
    Leaf {
        cn: Some("ringmq test server"),
        sans: vec![
            SanType::DnsName("localhost".try_into().expect("DNS name")),
            SanType::IpAddress([127, 0, 0, 1].into()),
        ],
        usage: ExtendedKeyUsagePurpose::ServerAuth,
        expired: false,
    }
    .sign(intermediate)
}

/// One test's certificates, as PEM files in a temporary directory:
///
/// - `ca.pem`: the root CA; `other-ca.pem`: a CA nobody here trusts;
/// - `server.pem` (the server's certificate, then the intermediate CA that signed it) and
///   `server.key`;
/// - client certificates `NAME.pem` / `NAME.key`: `alice` (CN alice, by the root CA),
///   `stranger` (by the other CA), `expired` (by the root CA, valid in 2000 only), `device`
///   (no CN, DNS name device-7.example), `nameless` (no CN, only an IP address).
struct Pki {
    dir: tempfile::TempDir,
    other_ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = new_ca("ringmq test root CA");
        let other_ca = new_ca("some other CA");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "ringmq test intermediate CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let intermediate =
            CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), &ca)
                .expect("intermediate");
        let pki = Pki { dir, other_ca };
        pki.write("ca.pem", &ca.pem());
        pki.write("other-ca.pem", &pki.other_ca.pem());
        let (cert, key) = server_leaf(&intermediate);
        pki.write("server.pem", &format!("{cert}{}", intermediate.pem()));
        pki.write("server.key", &key);
        let clients = [
            ("alice", Leaf::client("alice"), &*ca),
            ("stranger", Leaf::client("stranger"), &*pki.other_ca),
            (
                "expired",
                Leaf {
                    expired: true,
                    ..Leaf::client("alice")
                },
                &*ca,
            ),
            (
                "device",
                Leaf {
                    cn: None,
                    sans: vec![SanType::DnsName(
                        "device-7.example".try_into().expect("DNS"),
                    )],
                    ..Leaf::client("")
                },
                &*ca,
            ),
            (
                "nameless",
                Leaf {
                    cn: None,
                    sans: vec![SanType::IpAddress([10, 0, 0, 7].into())],
                    ..Leaf::client("")
                },
                &*ca,
            ),
        ];
        for (name, leaf, issuer) in clients {
            let (cert, key) = leaf.sign(issuer);
            pki.write(&format!("{name}.pem"), &cert);
            pki.write(&format!("{name}.key"), &key);
        }
        pki
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn write(&self, file: &str, text: &str) {
        // Written aside and renamed, so that a broker reloading never reads half a file.
        let tmp = self.path(&format!("{file}.tmp"));
        std::fs::write(&tmp, text).expect("write PEM");
        std::fs::rename(&tmp, self.path(file)).expect("rename PEM");
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.path(file)).expect("read PEM")
    }

    /// A client that trusts the CAs in `trust`, presents the client certificate `cert`
    /// (`NAME` of `NAME.pem` / `NAME.key`) if given, and offers `versions`.
    fn client(
        &self,
        trust: &str,
        cert: Option<&str>,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&self.read(trust)) {
            roots.add(ca.expect("CA PEM")).expect("CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_slice_iter(&self.read(&format!("{name}.pem")))
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert PEM");
                let key = PrivateKeyDer::from_pem_slice(&self.read(&format!("{name}.key")))
                    .expect("client key PEM");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client cert")
            }
        };
        Arc::new(config)
    }
}

// ---------------------------------------------------------------------------------------
// A broker with a TLS listener
// ---------------------------------------------------------------------------------------

/// How the TLS listener checks clients.
#[derive(Clone, Copy, PartialEq)]
enum Clients {
    /// No client certificates.
    Anyone,
    /// A certificate from `ca.pem` is checked if presented.
    Optional,
    /// A certificate from `ca.pem` is required.
    Required,
    /// Required, and its identity is the user name.
    Identity,
}

struct TlsBroker {
    broker: Broker,
    /// The TLS listener; `broker.addr()` is the plain one.
    tls: SocketAddr,
}

/// A broker with its plain listener and a TLS listener using `pki`'s server files. `toml`
/// goes after the listener (e.g. a `[limits]` table).
fn tls_broker(pki: &Pki, shards: usize, clients: Clients, toml: &str) -> TlsBroker {
    let port = free_port();
    let tls = SocketAddr::from(([127, 0, 0, 1], port));
    let path = |f: &str| pki.path(f).display().to_string();
    let mut table = format!(
        "cert = \"{}\", key = \"{}\"",
        path("server.pem"),
        path("server.key")
    );
    let mut mosquitto = format!(
        "listener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
        path("server.pem"),
        path("server.key")
    );
    let ca = path("ca.pem");
    match clients {
        Clients::Anyone => {}
        Clients::Optional => table.push_str(&format!(", ca = \"{ca}\"")),
        Clients::Required => {
            table.push_str(&format!(", ca = \"{ca}\", require_client_cert = true"));
            mosquitto.push_str(&format!("cafile {ca}\nrequire_certificate true\n"));
        }
        Clients::Identity => {
            table.push_str(&format!(
                ", ca = \"{ca}\", require_client_cert = true, use_identity_as_username = true"
            ));
            mosquitto.push_str(&format!(
                "cafile {ca}\nrequire_certificate true\nuse_identity_as_username true\n"
            ));
        }
    }
    let ringmq = format!("[[listener]]\nbind = \"{tls}\"\ntls = {{ {table} }}\n{toml}");
    let broker = Broker::start(
        BrokerOptions::default()
            .shards(shards)
            .config(&ringmq, &mosquitto),
    );
    TlsBroker { broker, tls }
}

// ---------------------------------------------------------------------------------------
// A TLS client speaking raw MQTT
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
enum Recv {
    Timeout,
    /// The connection ended: EOF, a reset, or a TLS alert (the text says which).
    Closed(String),
}

struct TlsClient {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buf: BytesMut,
    v: ProtocolVersion,
    next_id: u16,
}

impl TlsClient {
    /// TCP connection and the client's side of the handshake, for server name localhost.
    fn handshake(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<TlsClient> {
        TlsClient::handshake_after(addr, config, &[])
    }

    /// [`TlsClient::handshake`] after sending `prefix` in the clear (a PROXY header).
    fn handshake_after(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        prefix: &[u8],
    ) -> io::Result<TlsClient> {
        let mut tcp = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        tcp.write_all(prefix)?;
        let name = ServerName::try_from("localhost").expect("server name");
        let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            stream,
            buf: BytesMut::new(),
            v: V311,
            next_id: 0,
        })
    }

    /// A connection the broker accepted: handshake, CONNECT, CONNACK 0x00.
    fn mqtt(addr: SocketAddr, config: Arc<ClientConfig>, connect: Connect) -> TlsClient {
        let id = connect.client_id.as_str().to_owned();
        let mut c = TlsClient::handshake(addr, config)
            .unwrap_or_else(|e| panic!("{id}: TLS handshake with {addr}: {e}"));
        c.v = connect.protocol;
        c.send_packet(&Packet::Connect(Box::new(connect)));
        match c.recv() {
            Packet::ConnAck(a) if a.reason == ReasonCode::Success => c,
            other => panic!("{id}: expected CONNACK 0x00, got {other:?}"),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    fn send_packet(&mut self, p: &Packet) {
        let bytes = encode(p, self.v);
        self.send(&bytes).expect("send over TLS");
    }

    fn try_recv(&mut self, timeout: Duration) -> Result<Packet, Recv> {
        let deadline = Instant::now() + timeout;
        loop {
            match decode(&mut self.buf, Some(self.v), MAX_PACKET_BYTES) {
                Ok(Decoded::Packet(p)) => return Ok(p),
                Ok(Decoded::Incomplete { .. }) => {}
                Err(e) => panic!("the broker sent bytes that do not decode: {e}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Recv::Timeout);
            }
            self.stream
                .sock
                .set_read_timeout(Some(left))
                .expect("read timeout");
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Recv::Closed("EOF".into())),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Recv::Timeout)
                }
                Err(e) => return Err(Recv::Closed(e.to_string())),
            }
        }
    }

    fn recv(&mut self) -> Packet {
        self.try_recv(TIMEOUT)
            .unwrap_or_else(|e| panic!("expected a packet within {TIMEOUT:?}: {e:?}"))
    }

    fn next_id(&mut self) -> u16 {
        self.next_id += 1;
        self.next_id
    }

    fn subscribe(&mut self, topic_filter: &str) {
        let id = self.next_id();
        self.send_packet(&Packet::Subscribe(subscribe(
            id,
            &[(topic_filter, QoS::AtLeastOnce)],
        )));
        match self.recv() {
            Packet::SubAck(a) if a.packet_id.get() == id => {}
            other => panic!("expected SUBACK {id}, got {other:?}"),
        }
    }

    /// QoS 1 PUBLISH, and its PUBACK.
    fn publish(&mut self, topic_name: &str, payload: &[u8]) {
        let id = self.next_id();
        self.send_packet(&Packet::Publish(publish(
            topic_name,
            payload,
            QoS::AtLeastOnce,
            id,
        )));
        match self.recv() {
            Packet::PubAck(a) if a.packet_id.get() == id => {}
            other => panic!("expected PUBACK {id}, got {other:?}"),
        }
    }

    /// After a QoS 1 PUBLISH `id` of `payload` on a topic this client subscribed to: its
    /// PUBACK and the message itself, in either order (both are the broker's to send).
    fn expect_own_message(&mut self, id: u16, payload: &[u8]) {
        let mut got = (false, false);
        for _ in 0..2 {
            match self.recv() {
                Packet::PubAck(a) if a.packet_id.get() == id => got.0 = true,
                Packet::Publish(p) if p.payload[..] == *payload => {
                    got.1 = true;
                    if let Some(pid) = p.packet_id {
                        self.send_packet(&Packet::PubAck(ringmq::protocol::Ack::new(pid)));
                    }
                }
                other => panic!("expected PUBACK {id} and the message, got {other:?}"),
            }
        }
        assert_eq!(got, (true, true));
    }

    /// The next packet is a PUBLISH of `payload` on `topic_name`.
    fn expect_message(&mut self, topic_name: &str, payload: &[u8]) {
        match self.recv() {
            Packet::Publish(p) => {
                assert_eq!(p.topic.as_str(), topic_name);
                assert!(
                    p.payload[..] == *payload,
                    "{topic_name}: a payload of {} bytes, not the {} sent",
                    p.payload.len(),
                    payload.len()
                );
                if let Some(id) = p.packet_id {
                    self.send_packet(&Packet::PubAck(ringmq::protocol::Ack::new(id)));
                }
            }
            other => panic!("expected PUBLISH on {topic_name}, got {other:?}"),
        }
    }

    fn ping(&mut self) {
        self.send(&hex("c0 00")).expect("PINGREQ");
        assert!(matches!(self.recv(), Packet::PingResp), "expected PINGRESP");
    }

    fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.conn.protocol_version()
    }

    fn server_cert(&self) -> Vec<u8> {
        let chain = self.stream.conn.peer_certificates().expect("server chain");
        chain[0].to_vec()
    }
}

/// The broker does not let this client in: its handshake fails, or (TLS 1.3, where the
/// client's side of the handshake ends before the server has checked the client's
/// certificate) the connection ends with an alert or a close and no byte of MQTT. Returns
/// what the client saw.
fn expect_refused(addr: SocketAddr, config: Arc<ClientConfig>, what: &str) -> String {
    let mut c = match TlsClient::handshake(addr, config) {
        Err(e) => return e.to_string(),
        Ok(c) => c,
    };
    let _ = c.send(&encode(
        &Packet::Connect(Box::new(connect(V311, "refused"))),
        V311,
    ));
    match c.try_recv(TIMEOUT) {
        Ok(p) => panic!("{what}: the broker answered {p:?}"),
        Err(Recv::Timeout) => panic!("{what}: the broker neither refused nor answered"),
        Err(Recv::Closed(e)) => e,
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// Messages cross between a plain and a TLS listener of one broker, both ways. The client
/// trusts only the root CA, so the handshake also shows that the server sends its chain
/// (its certificate and the intermediate), as `cert` holds it.
#[test]
fn plain_and_tls_listeners_side_by_side() {
    let pki = Pki::new();
    let b = tls_broker(&pki, 1, Clients::Anyone, "");
    let trust = pki.client("ca.pem", None, ANY_TLS);
    let mut tls_sub = TlsClient::mqtt(b.tls, trust.clone(), connect(V311, "tls-sub"));
    tls_sub.subscribe("side/#");
    let mut plain_sub = b.broker.client(V311, "plain-sub");
    plain_sub.subscribe_one("side/#", QoS::AtLeastOnce);

    let mut plain_pub = b.broker.client(V311, "plain-pub");
    plain_pub.publish("side/plain", b"from plain", QoS::AtLeastOnce);
    tls_sub.expect_message("side/plain", b"from plain");
    plain_sub.expect_publish(0x32, "side/plain", b"from plain");

    let mut tls_pub = TlsClient::mqtt(b.tls, trust, connect(V5, "tls-pub"));
    tls_pub.publish("side/tls", b"from tls");
    tls_sub.expect_message("side/tls", b"from tls");
    plain_sub.expect_publish(0x32, "side/tls", b"from tls");
}

// On a TLS listener with proxy_protocol, the PROXY header comes in the clear before the
// handshake; the client's address from it is the one logged.
#[test]
fn proxy_header_before_the_tls_handshake_ringmq_only() {
    if skip_unless_ringmq("ringmq's proxy_protocol") {
        return;
    }
    let pki = Pki::new();
    let b = tls_broker(&pki, 1, Clients::Anyone, "proxy_protocol = true\n");
    let trust = pki.client("ca.pem", None, ANY_TLS);
    let header = b"PROXY TCP4 203.0.113.50 127.0.0.1 41000 8883\r\n";
    let mut c = TlsClient::handshake_after(b.tls, trust.clone(), header)
        .unwrap_or_else(|e| panic!("TLS handshake after a PROXY header: {e}"));
    c.send_packet(&Packet::Connect(Box::new(connect(V311, "proxied-tls"))));
    match c.recv() {
        Packet::ConnAck(a) if a.reason == ReasonCode::Success => {}
        other => panic!("expected CONNACK 0x00, got {other:?}"),
    }
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let log = b.broker.log_of_this_run();
        if log
            .lines()
            .any(|l| l.contains("proxied-tls") && l.contains("203.0.113.50:41000"))
        {
            break;
        }
        assert!(Instant::now() < until, "address not logged:\n{log}");
        thread::sleep(Duration::from_millis(20));
    }
    // Without the header the handshake is refused: the listener closes the socket.
    assert!(TlsClient::handshake(b.tls, trust).is_err());
}

/// Messages larger than rustls' 64 KiB of buffered records and than the broker's read
/// buffer go out in several steps and come in over many records, in order, and intact.
#[test]
fn large_messages_cross_tls_intact() {
    let pki = Pki::new();
    let b = tls_broker(&pki, 2, Clients::Anyone, "");
    let trust = pki.client("ca.pem", None, ANY_TLS);
    let mut sub = TlsClient::mqtt(b.tls, trust.clone(), connect(V311, "big-sub"));
    sub.subscribe("big/#");
    let mut publisher = TlsClient::mqtt(b.tls, trust, connect(V5, "big-pub"));
    let payloads: Vec<Vec<u8>> = (0u8..3)
        .map(|n| (0..300_000u32).map(|i| (i % 251) as u8 ^ n).collect())
        .collect();
    for (n, payload) in payloads.iter().enumerate() {
        publisher.publish(&format!("big/{n}"), payload);
    }
    for (n, payload) in payloads.iter().enumerate() {
        sub.expect_message(&format!("big/{n}"), payload);
    }
}

/// Either version is negotiated when the client offers only that one, and MQTT works over
/// it; without a restriction the client gets TLS 1.3.
#[test]
fn tls_1_2_and_1_3_are_each_negotiated() {
    let pki = Pki::new();
    let b = tls_broker(&pki, 1, Clients::Anyone, "");
    let cases = [
        (TLS12, rustls::ProtocolVersion::TLSv1_2),
        (TLS13, rustls::ProtocolVersion::TLSv1_3),
        (ANY_TLS, rustls::ProtocolVersion::TLSv1_3),
    ];
    for (n, (offered, expected)) in cases.into_iter().enumerate() {
        let config = pki.client("ca.pem", None, offered);
        let mut c = TlsClient::mqtt(b.tls, config, connect(V5, &format!("tls-v-{n}")));
        assert_eq!(c.version(), Some(expected));
        c.subscribe("versions/t");
        c.send_packet(&Packet::Publish(publish(
            "versions/t",
            b"over tls",
            QoS::AtLeastOnce,
            9,
        )));
        c.expect_own_message(9, b"over tls");
    }
}

/// `min_version = "1.3"`: a client that offers only TLS 1.2 fails the handshake.
#[test]
fn min_version_1_3_refuses_tls_1_2_ringmq_only() {
    if skip_unless_ringmq("tls.min_version is ringmq's key") {
        return;
    }
    let pki = Pki::new();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let toml = format!(
        "[[listener]]\nbind = \"{addr}\"\ntls = {{ cert = \"{}\", key = \"{}\", min_version = \"1.3\" }}\n",
        pki.path("server.pem").display(),
        pki.path("server.key").display()
    );
    let _broker = Broker::start(BrokerOptions::default().config(&toml, ""));
    let seen = expect_refused(addr, pki.client("ca.pem", None, TLS12), "TLS 1.2 client");
    assert!(seen.contains("ProtocolVersion"), "{seen}");
    let mut c = TlsClient::mqtt(
        addr,
        pki.client("ca.pem", None, TLS13),
        connect(V311, "v13"),
    );
    c.ping();
}

/// A client that does not trust the server's CA ends the handshake itself; a client that
/// does, on the same listener, connects.
#[test]
fn a_client_trusting_another_ca_rejects_the_server() {
    let pki = Pki::new();
    let b = tls_broker(&pki, 1, Clients::Anyone, "");
    for versions in [TLS12, TLS13] {
        let wrong = pki.client("other-ca.pem", None, versions);
        let Err(e) = TlsClient::handshake(b.tls, wrong) else {
            panic!("a client trusting only another CA completed the handshake");
        };
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    }
    let mut c = TlsClient::mqtt(
        b.tls,
        pki.client("ca.pem", None, ANY_TLS),
        connect(V311, "trusting"),
    );
    c.ping();
}

/// `require_client_cert`: a client with a certificate from the CA gets in; one without a
/// certificate, with one from another CA, or with an expired one fails the handshake, under
/// TLS 1.2 and 1.3.
#[test]
fn mutual_tls_refuses_no_cert_another_cas_cert_and_an_expired_cert() {
    let pki = Pki::new();
    let b = tls_broker(&pki, 1, Clients::Required, "");
    for versions in [TLS12, TLS13] {
        let mut c = TlsClient::mqtt(
            b.tls,
            pki.client("ca.pem", Some("alice"), versions),
            connect(V311, "alice"),
        );
        c.ping();
        for (cert, what, alert) in [
            (None, "no client certificate", "CertificateRequired"),
            (
                Some("stranger"),
                "a certificate from another CA",
                "UnknownCA",
            ),
            (
                Some("expired"),
                "an expired certificate",
                "CertificateExpired",
            ),
        ] {
            let seen = expect_refused(b.tls, pki.client("ca.pem", cert, versions), what);
            // The alert says why (Mosquitto's OpenSSL chooses its own alerts).
            if !is_mosquitto() {
                assert!(seen.contains(alert), "{what}: the client saw {seen}");
            }
        }
        c.ping();
    }
}

/// With a `ca` but without `require_client_cert`, a client may go without a certificate,
/// but one it presents must verify.
#[test]
fn optional_client_certificates_must_verify_when_presented_ringmq_only() {
    if skip_unless_ringmq("Mosquitto does not ask for a certificate it does not require") {
        return;
    }
    let pki = Pki::new();
    let b = tls_broker(&pki, 1, Clients::Optional, "");
    TlsClient::mqtt(
        b.tls,
        pki.client("ca.pem", None, ANY_TLS),
        connect(V311, "anonymous"),
    )
    .ping();
    TlsClient::mqtt(
        b.tls,
        pki.client("ca.pem", Some("alice"), ANY_TLS),
        connect(V311, "alice"),
    )
    .ping();
    let seen = expect_refused(
        b.tls,
        pki.client("ca.pem", Some("stranger"), ANY_TLS),
        "a certificate from another CA",
    );
    assert!(seen.contains("UnknownCA"), "{seen}");
}

/// What the broker answers a CONNECT: a CONNACK's reason, or `None` for an AUTH (the SCRAM
/// exchange goes on).
fn answer(addr: SocketAddr, config: Arc<ClientConfig>, connect: Connect) -> Option<ReasonCode> {
    let v = connect.protocol;
    let mut c = TlsClient::handshake(addr, config).expect("handshake");
    c.v = v;
    c.send_packet(&Packet::Connect(Box::new(connect)));
    match c.recv() {
        Packet::ConnAck(a) => Some(a.reason),
        Packet::Auth(Auth {
            reason: ReasonCode::ContinueAuthentication,
            ..
        }) => None,
        other => panic!("expected CONNACK or AUTH, got {other:?}"),
    }
}

/// SUBACK reason codes for `filters`, subscribed one SUBSCRIBE at a time.
fn granted(c: &mut TlsClient, filters: &[&str]) -> Vec<ReasonCode> {
    filters
        .iter()
        .map(|f| {
            let id = c.next_id();
            c.send_packet(&Packet::Subscribe(subscribe(id, &[(f, qos(1))])));
            match c.recv() {
                Packet::SubAck(a) => a.reasons[0],
                other => panic!("expected SUBACK, got {other:?}"),
            }
        })
        .collect()
}

/// `use_identity_as_username`: the certificate's CN (or, without one, its DNS name) is the
/// user name, whatever the CONNECT says, and the certificate is the credential: with a
/// password file and anonymous clients refused, a client with no password connects. The
/// name is observed through the ACL, which lets each user subscribe under its own prefix
/// only (SUBACK 0x87 elsewhere). A certificate without any identity is refused. On 4
/// shards, with client ids homed on each: the user name moves with the connection to its
/// home shard.
#[test]
fn certificate_identity_is_the_user_name_on_every_shard_ringmq_only() {
    if skip_unless_ringmq("ringmq's SUBACK 0x87 for a filter the ACL does not grant") {
        return;
    }
    let pki = Pki::new();
    let files = security::SecurityFiles::new();
    files.passwords(&[("alice", "a-secret"), ("device-7.example", "d-secret")]);
    files.acl(
        "user alice\ntopic readwrite alice/#\n\nuser device-7.example\ntopic readwrite device/#\n",
    );
    let auth = format!(
        "[auth]\npassword_file = \"{}\"\nacl_file = \"{}\"\n",
        files.passwd_path().display(),
        files.acl_path().display()
    );
    let b = tls_broker(&pki, 4, Clients::Identity, &auth);
    let alice = pki.client("ca.pem", Some("alice"), ANY_TLS);
    let device = pki.client("ca.pem", Some("device"), ANY_TLS);
    let (ok, denied) = (ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized);
    for shard in 0..4 {
        let id = client_id_on_shard("identity", shard, 4);
        // The CONNECT's User Name (and no password) is replaced by the certificate's CN.
        let mut c = connect(V5, &id);
        c.username = Some(mqtt_str("device-7.example"));
        let mut c = TlsClient::mqtt(b.tls, alice.clone(), c);
        assert_eq!(
            granted(&mut c, &["alice/x", "device/x"]),
            [ok, denied],
            "{id}"
        );
        // No CN: the DNS name.
        let mut c = TlsClient::mqtt(b.tls, device.clone(), connect(V5, &id));
        assert_eq!(
            granted(&mut c, &["alice/x", "device/x"]),
            [denied, ok],
            "{id}"
        );
    }
    let nameless = pki.client("ca.pem", Some("nameless"), ANY_TLS);
    assert_eq!(
        answer(b.tls, nameless.clone(), connect(V5, "nameless")),
        Some(ReasonCode::NotAuthorized)
    );
    // MQTT 3.1.1: return code 0x05, not authorized.
    assert_eq!(
        answer(b.tls, nameless, connect(V311, "nameless")),
        Some(ReasonCode::NotAuthorized)
    );
}

/// Connections on 4 shards, with client ids homed on each, most of them accepted by another
/// shard and handed over with their TLS state. Each sends CONNECT, SUBSCRIBE and a 4 KB
/// PUBLISH in one write, so that when the connection moves, bytes after the CONNECT are
/// decrypted and read, decrypted and still in rustls, or not yet read from the socket: the
/// subscription and the message must survive the move.
#[test]
fn tls_connections_are_handed_to_their_home_shard() {
    let pki = Pki::new();
    let b = tls_broker(&pki, 4, Clients::Anyone, "");
    let config = pki.client("ca.pem", None, ANY_TLS);
    let mut clients = Vec::new();
    for round in 0..3 {
        for shard in 0..4 {
            let id = client_id_on_shard(&format!("handoff-{round}"), shard, 4);
            let mut c = TlsClient::handshake(b.tls, config.clone()).expect("handshake");
            let topic_name = format!("home/{id}");
            let payload = format!("{id}:{}", "x".repeat(4000));
            let mut burst = encode(&Packet::Connect(Box::new(connect(V311, &id))), V311);
            burst.extend(encode(
                &Packet::Subscribe(subscribe(1, &[(&topic_name, QoS::AtLeastOnce)])),
                V311,
            ));
            burst.extend(encode(
                &Packet::Publish(publish(
                    &topic_name,
                    payload.as_bytes(),
                    QoS::AtLeastOnce,
                    2,
                )),
                V311,
            ));
            c.send(&burst).expect("send");
            assert!(matches!(c.recv(), Packet::ConnAck(a) if a.reason == ReasonCode::Success));
            assert!(matches!(c.recv(), Packet::SubAck(_)));
            c.expect_own_message(2, payload.as_bytes());
            c.next_id = 2;
            clients.push((id, c));
        }
    }
    // Every connection is served where it is homed: a message from a plain client reaches
    // each through its home shard.
    let mut publisher = b.broker.client(V311, "handoff-publisher");
    for (id, _) in &clients {
        publisher.publish(&format!("home/{id}"), b"again", QoS::AtLeastOnce);
    }
    for (id, c) in &mut clients {
        c.expect_message(&format!("home/{id}"), b"again");
        c.ping();
    }
}

/// A client that sends plain MQTT, garbage, or nothing at all to the TLS port is closed
/// without a byte of MQTT, while TLS clients connect and run meanwhile on the same (single)
/// shard: the handshake never blocks it. The broker counts the failed handshakes.
#[test]
fn plain_mqtt_garbage_or_silence_on_the_tls_port_is_closed_ringmq_only() {
    if skip_unless_ringmq("limits.connect_timeout_secs and the handshake counts are ringmq's") {
        return;
    }
    let pki = Pki::new();
    let mut b = tls_broker(
        &pki,
        1,
        Clients::Anyone,
        "[limits]\nconnect_timeout_secs = 1\n",
    );
    let config = pki.client("ca.pem", None, ANY_TLS);
    let mut bystander = TlsClient::mqtt(b.tls, config.clone(), connect(V311, "bystander"));
    let started = Instant::now();
    let mut silent = RawClient::connect(b.tls);
    let mut plain = RawClient::connect(b.tls);
    plain.send(&encode(
        &Packet::Connect(Box::new(connect(V311, "plain-on-tls"))),
        V311,
    ));
    let mut garbage = RawClient::connect(b.tls);
    garbage.send(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00]);
    // While the silent one waits in its handshake, others are served.
    TlsClient::mqtt(b.tls, config.clone(), connect(V311, "meanwhile")).ping();
    bystander.ping();
    for (c, what) in [(plain, "plain MQTT"), (garbage, "garbage")] {
        // At most a TLS alert (content type 0x15), never a CONNACK (0x20), then the close.
        let (mut stream, mut seen) = c.into_stream();
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let _ = stream.read_to_end(&mut seen);
        assert!(
            seen.is_empty() || seen[0] == 0x15,
            "{what}: the broker sent {}",
            to_hex(&seen)
        );
    }
    silent.expect_closed(Duration::from_secs(5));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the silent client was closed before connect_timeout_secs"
    );
    bystander.ping();
    b.broker.stop();
    let log = b.broker.log_of_this_run();
    assert!(
        log.contains("handshakes=2 handshakes_failed=3"),
        "expected 2 handshakes and 3 failures counted:\n{log}"
    );
}

/// SIGHUP reloads the certificate files: a new connection gets the new certificate (here
/// from another CA), a connection made before keeps working, and a client that trusts only
/// the old CA is now turned away. New files that do not load leave the last good ones in use.
#[test]
fn sighup_reloads_certificates_for_new_connections_ringmq_only() {
    if skip_unless_ringmq("reload on SIGHUP as ringmq does it") {
        return;
    }
    let pki = Pki::new();
    let b = tls_broker(&pki, 2, Clients::Anyone, "");
    let old_trust = pki.client("ca.pem", None, ANY_TLS);
    let mut before = TlsClient::mqtt(b.tls, old_trust.clone(), connect(V311, "before"));
    before.subscribe("reload/t");

    let (cert, key) = server_leaf(&pki.other_ca);
    pki.write("server.pem", &cert);
    pki.write("server.key", &key);
    let new_der = CertificateDer::from_pem_slice(cert.as_bytes()).expect("PEM");
    sighup(&b.broker);
    let new_trust = pki.client("other-ca.pem", None, ANY_TLS);
    let deadline = Instant::now() + TIMEOUT;
    let mut after = loop {
        match TlsClient::handshake(b.tls, new_trust.clone()) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("no handshake with the new certificate after SIGHUP: {e}"),
        }
    };
    assert_eq!(after.server_cert(), new_der.to_vec());
    after.send_packet(&Packet::Connect(Box::new(connect(V311, "after"))));
    assert!(matches!(after.recv(), Packet::ConnAck(a) if a.reason == ReasonCode::Success));
    after.next_id = 0;
    after.publish("reload/t", b"new cert");
    before.expect_message("reload/t", b"new cert");
    before.ping();
    let seen = TlsClient::handshake(b.tls, old_trust)
        .err()
        .map(|e| e.to_string());
    assert!(
        seen.as_deref().is_some_and(|e| e.contains("UnknownIssuer")),
        "{seen:?}"
    );

    // A broken key: the reload is refused and logged, the new certificate stays in use.
    pki.write("server.key", "not a key\n");
    sighup(&b.broker);
    let deadline = Instant::now() + TIMEOUT;
    while !b
        .broker
        .log_of_this_run()
        .contains("TLS files not reloaded")
    {
        assert!(Instant::now() < deadline, "no reload error logged");
        thread::sleep(Duration::from_millis(20));
    }
    let c = TlsClient::handshake(b.tls, new_trust).expect("the last good files stay in use");
    assert_eq!(c.server_cert(), new_der.to_vec());
    before.ping();
}

fn sighup(broker: &Broker) {
    let pid = libc::pid_t::try_from(broker.pid()).expect("pid");
    // SAFETY: kill(2) on the broker process this test started; no memory is passed.
    let rc = unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(rc, 0, "SIGHUP: {}", io::Error::last_os_error());
}

// ---------------------------------------------------------------------------------------
// The mosquitto clients
// ---------------------------------------------------------------------------------------

/// Runs a mosquitto client (`mosquitto_pub` / `mosquitto_sub`) to completion.
fn mosquitto_client(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} (tests/run.sh installs mosquitto-clients): {e}")
        })
}

/// mosquitto_sub and mosquitto_pub over TLS: with the right `--cafile` a message goes
/// through; with another CA's file the client refuses the server. With mutual TLS, a
/// client with `--cert`/`--key` from the CA gets in and one without fails.
#[test]
fn mosquitto_clients_over_tls_and_mutual_tls() {
    let pki = Pki::new();
    let b = tls_broker(&pki, 1, Clients::Anyone, "");
    let port = b.tls.port().to_string();
    let ca = pki.path("ca.pem").display().to_string();
    let other_ca = pki.path("other-ca.pem").display().to_string();
    let base = ["-h", "localhost", "-p", &port, "-V", "mqttv311"];

    let mut sub = Command::new("mosquitto_sub")
        .args(base)
        .args([
            "--cafile", &ca, "-t", "mosq/t", "-q", "1", "-C", "1", "-W", "10",
        ])
        .args(["-i", "mosq-sub"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mosquitto_sub (tests/run.sh installs mosquitto-clients)");
    // The subscription is in place once the broker shows the subscriber to a TLS client of
    // ours: publish until the message comes back to mosquitto_sub.
    let deadline = Instant::now() + TIMEOUT;
    let received = loop {
        let out = mosquitto_client(
            "mosquitto_pub",
            &[
                &base[..],
                &["--cafile", &ca, "-t", "mosq/t", "-q", "1", "-m", "over tls"],
            ]
            .concat(),
        );
        assert!(
            out.status.success(),
            "mosquitto_pub --cafile: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Ok(Some(_)) = sub.try_wait() {
            break sub.wait_with_output().expect("mosquitto_sub output");
        }
        assert!(Instant::now() < deadline, "mosquitto_sub got nothing");
        thread::sleep(Duration::from_millis(100));
    };
    assert!(received.status.success(), "{received:?}");
    assert_eq!(String::from_utf8_lossy(&received.stdout), "over tls\n");

    let wrong = mosquitto_client(
        "mosquitto_pub",
        &[
            &base[..],
            &["--cafile", &other_ca, "-t", "mosq/t", "-m", "x"],
        ]
        .concat(),
    );
    assert!(
        !wrong.status.success() && String::from_utf8_lossy(&wrong.stderr).contains("TLS"),
        "mosquitto_pub with another CA's file: {wrong:?}"
    );

    let m = tls_broker(&pki, 1, Clients::Required, "");
    let port = m.tls.port().to_string();
    let base = ["-h", "localhost", "-p", &port, "-V", "mqttv311"];
    let alice_cert = pki.path("alice.pem").display().to_string();
    let alice_key = pki.path("alice.key").display().to_string();
    let with_cert = mosquitto_client(
        "mosquitto_pub",
        &[
            &base[..],
            &["--cafile", &ca, "--cert", &alice_cert, "--key", &alice_key],
            &["-t", "mosq/m", "-q", "1", "-m", "mutual"],
        ]
        .concat(),
    );
    assert!(
        with_cert.status.success(),
        "mosquitto_pub --cert --key: {}",
        String::from_utf8_lossy(&with_cert.stderr)
    );
    let without = mosquitto_client(
        "mosquitto_pub",
        &[
            &base[..],
            &["--cafile", &ca, "-t", "mosq/m", "-q", "1", "-m", "x"],
        ]
        .concat(),
    );
    assert!(
        !without.status.success(),
        "mosquitto_pub without a client certificate connected to a listener requiring one"
    );
}

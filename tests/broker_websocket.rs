//! MQTT over WebSocket (`kind = "ws"` listeners): the Upgrade handshake (the RFC 6455
//! sample key's exact accept value, the `mqtt` and `mqttv3.1` subprotocols, refused
//! handshakes), the framing (packets split over frames and fragments, several packets in
//! one frame, ping, close, text and unmasked frames), WebSocket beside TCP on 4 shards with
//! connections handed to their home shard mid-frame, and wss (a `tls` table on a ws
//! listener).
//!
//! The client is written here: a blocking socket, masked frames built by hand. ringmq only
//! (Mosquitto 2.0.11 is tested over TCP elsewhere).

pub mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use ringmq::protocol::{
    decode, Decoded, Packet, ProtocolVersion, QoS, ReasonCode, MAX_PACKET_BYTES,
};

const TIMEOUT: Duration = Duration::from_secs(5);
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;
const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A broker with a ws listener (and its port) beside the TCP one.
fn ws_broker(shards: usize, ws_table: &str) -> (Broker, SocketAddr) {
    let ws = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let toml = format!("[[listener]]\nbind = \"{ws}\"\nkind = \"ws\"\n{ws_table}\n");
    let broker = Broker::start(BrokerOptions::default().shards(shards).config(&toml, ""));
    (broker, ws)
}

/// A TCP connection to `addr`, retried while the listener comes up on every shard.
fn tcp(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
                s.set_nodelay(true).expect("nodelay");
                return s;
            }
            Err(e) if Instant::now() > deadline => panic!("connect {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn upgrade_request(key: &str, protocols: &str) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {protocols}\r\n\r\n"
    )
}

/// Reads an HTTP response head (up to its blank line) and whatever follows until EOF is
/// not waited for.
fn read_head(s: &mut dyn Stream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => break,
            Err(e) => panic!(
                "reading the response: {e}; got {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8(head).expect("UTF-8 response")
}

/// After a refusal: the connection ends (EOF or reset) within the timeout.
fn assert_ends(s: &mut dyn Stream) {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

/// A masked client frame.
fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn binary(payload: &[u8]) -> Vec<u8> {
    frame(0x2, true, payload)
}

struct WsClient {
    s: Box<dyn Stream>,
    /// MQTT bytes from binary frames, not decoded yet.
    mqtt: BytesMut,
    v: ProtocolVersion,
}

impl WsClient {
    /// Upgrade handshake on `s`; fails the test unless the server answers 101 with `mqtt`.
    fn open(mut s: Box<dyn Stream>, v: ProtocolVersion) -> WsClient {
        s.write_all(upgrade_request(SAMPLE_KEY, "mqtt").as_bytes())
            .expect("send");
        let head = read_head(&mut *s);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        WsClient {
            s,
            mqtt: BytesMut::new(),
            v,
        }
    }

    fn plain(addr: SocketAddr, v: ProtocolVersion) -> WsClient {
        WsClient::open(Box::new(tcp(addr)), v)
    }

    /// Open, CONNECT in one binary frame, CONNACK accepted.
    fn mqtt(addr: SocketAddr, v: ProtocolVersion, client_id: &str) -> WsClient {
        let mut c = WsClient::plain(addr, v);
        c.connect(client_id);
        c
    }

    fn connect(&mut self, client_id: &str) {
        let bytes = encode(
            &Packet::Connect(Box::new(connect(self.v, client_id))),
            self.v,
        );
        self.send(&binary(&bytes));
        self.expect_connack();
    }

    fn expect_connack(&mut self) {
        match self.recv_packet() {
            Packet::ConnAck(a) => assert_eq!(a.reason, ReasonCode::Success, "{a:?}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send");
    }

    /// The next frame from the server: (first byte, payload). Server frames are unmasked.
    fn recv_frame(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 2];
        self.s.read_exact(&mut head)?;
        assert_eq!(head[1] & 0x80, 0, "server frames must not be masked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.s.read_exact(&mut b)?;
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                self.s.read_exact(&mut b)?;
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; len as usize];
        self.s.read_exact(&mut payload)?;
        Ok((head[0], payload))
    }

    /// The next MQTT packet, from as many binary frames as it takes.
    fn recv_packet(&mut self) -> Packet {
        loop {
            match decode(&mut self.mqtt, Some(self.v), MAX_PACKET_BYTES) {
                Ok(Decoded::Packet(p)) => return p,
                Ok(Decoded::Incomplete { .. }) => {}
                Err(e) => panic!("undecodable MQTT from the server: {e}"),
            }
            let (first, payload) = self.recv_frame().expect("a frame");
            // [MQTT-6.0.0-1] (5.0): MQTT travels in binary frames.
            assert_eq!(first, 0x82, "expected a final binary frame");
            self.mqtt.extend_from_slice(&payload);
        }
    }

    /// The close frame the server sends, then the end of the connection.
    fn expect_close(&mut self, code: u16) {
        let (first, payload) = self.recv_frame().expect("a close frame");
        assert_eq!(first, 0x88, "expected a close frame");
        assert_eq!(payload, code.to_be_bytes(), "close status");
        assert_ends(&mut *self.s);
    }
}

#[test]
fn handshake_answers_the_rfc_sample_key_with_subprotocol_mqtt() {
    if skip_unless_ringmq("WebSocket listeners are ringmq's") {
        return;
    }
    let (_broker, ws) = ws_broker(1, "");
    // [MQTT-6.0.0-4] (3.1.1) [MQTT-6.0.0-4] (5.0): the server selects "mqtt".
    for (offered, chosen) in [
        ("mqtt", "mqtt"),
        ("foo, mqtt", "mqtt"),
        ("mqttv3.1", "mqttv3.1"),
    ] {
        let mut s = tcp(ws);
        s.write_all(upgrade_request(SAMPLE_KEY, offered).as_bytes())
            .expect("send");
        let head = read_head(&mut s);
        assert!(
            head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
            "{head}"
        );
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
        assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
        // RFC 6455 section 1.3's worked example.
        assert!(
            head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\nSec-WebSocket-Protocol: {chosen}\r\n")),
            "{offered}: {head}"
        );
    }
}

#[test]
fn bad_handshakes_get_400_and_close() {
    if skip_unless_ringmq("WebSocket listeners are ringmq's") {
        return;
    }
    let (broker, ws) = ws_broker(1, "");
    let good = upgrade_request(SAMPLE_KEY, "mqtt");
    let cases = [
        ("no mqtt subprotocol", upgrade_request(SAMPLE_KEY, "chat")),
        ("POST", good.replacen("GET", "POST", 1)),
        ("HTTP/1.0", good.replacen("HTTP/1.1", "HTTP/1.0", 1)),
        ("no upgrade", good.replace("Upgrade: websocket\r\n", "")),
        ("version 8", good.replace("Version: 13", "Version: 8")),
        ("short key", upgrade_request("c2hvcnQ=", "mqtt")),
        ("not base64 key", upgrade_request("!!!!", "mqtt")),
        (
            "MQTT instead of HTTP",
            String::from_utf8_lossy(&encode(
                &Packet::Connect(Box::new(connect(V311, "x"))),
                V311,
            ))
            .into_owned()
                + "\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        let mut s = tcp(ws);
        s.write_all(request.as_bytes()).expect("send");
        let head = read_head(&mut s);
        assert!(head.starts_with("HTTP/1.1 400 "), "{what}: {head}");
        assert_ends(&mut s);
    }
    // Headers over 8 KiB without their end: 400 without waiting for more.
    let mut s = tcp(ws);
    let mut long = String::from("GET / HTTP/1.1\r\n");
    while long.len() < 9000 {
        long.push_str("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let _ = s.write_all(long.as_bytes());
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert_ends(&mut s);
    // The broker still serves WebSocket clients.
    WsClient::mqtt(ws, V311, "after-bad");
    drop(broker);
}

#[test]
fn unfinished_handshake_is_closed_after_connect_timeout() {
    if skip_unless_ringmq("WebSocket listeners are ringmq's") {
        return;
    }
    let (_broker, ws) = ws_broker(1, "[limits]\nconnect_timeout_secs = 1\n");
    let mut s = tcp(ws);
    let started = Instant::now();
    s.write_all(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n")
        .expect("send");
    // No answer, and the connection ends once connect_timeout_secs is over.
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to end without an answer, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed too early"
    );
}

/// CONNECT split over two binary messages and a fragmented one; then SUBSCRIBE, PUBLISH and
/// PINGREQ in a single frame.
fn packets_across_frames(v: ProtocolVersion) {
    if skip_unless_ringmq("WebSocket listeners are ringmq's") {
        return;
    }
    let (_broker, ws) = ws_broker(1, "");
    let mut c = WsClient::plain(ws, v);
    let connect_bytes = encode(&Packet::Connect(Box::new(connect(v, "split"))), v);
    let (a, rest) = connect_bytes.split_at(3);
    let (b, rest) = rest.split_at(4);
    let (d, e) = rest.split_at(rest.len() / 2);
    c.send(&binary(a));
    c.send(&binary(b));
    // A fragmented message: binary without FIN, then a continuation.
    let mut both = frame(0x2, false, d);
    both.extend(frame(0x0, true, e));
    c.send(&both);
    c.expect_connack();

    let mut several = encode(
        &Packet::Subscribe(subscribe(1, &[("ws/t", QoS::AtMostOnce)])),
        v,
    );
    several.extend(encode(
        &Packet::Publish(publish("ws/t", b"hello", QoS::AtMostOnce, 0)),
        v,
    ));
    several.extend(frame_pingreq());
    c.send(&binary(&several));
    assert!(matches!(c.recv_packet(), Packet::SubAck(_)));
    match c.recv_packet() {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"hello"),
        other => panic!("expected the PUBLISH, got {other:?}"),
    }
    assert!(matches!(c.recv_packet(), Packet::PingResp));
}

fn frame_pingreq() -> Vec<u8> {
    vec![0xC0, 0x00]
}

#[test]
fn packets_span_frames_and_share_frames_v311() {
    // [MQTT-6.0.0-2] (3.1.1)
    packets_across_frames(V311);
}

#[test]
fn packets_span_frames_and_share_frames_v5() {
    // [MQTT-6.0.0-2] (5.0)
    packets_across_frames(V5);
}

#[test]
fn ping_gets_pong_and_close_gets_close() {
    if skip_unless_ringmq("WebSocket listeners are ringmq's") {
        return;
    }
    let (_broker, ws) = ws_broker(1, "");
    let mut c = WsClient::mqtt(ws, V311, "pinger");
    c.send(&frame(0x9, true, b"are you there"));
    let (first, payload) = c.recv_frame().expect("pong");
    assert_eq!(first, 0x8A, "expected a pong");
    assert_eq!(payload, b"are you there");
    // An unsolicited pong is ignored; MQTT goes on.
    c.send(&frame(0xA, true, b""));
    c.send(&binary(&frame_pingreq()));
    assert!(matches!(c.recv_packet(), Packet::PingResp));
    // Close with status 1000: the server answers with the same status and ends.
    c.send(&frame(0x8, true, &1000u16.to_be_bytes()));
    c.expect_close(1000);
}

#[test]
fn text_frames_are_closed_with_1003() {
    if skip_unless_ringmq("WebSocket listeners are ringmq's") {
        return;
    }
    let (_broker, ws) = ws_broker(1, "");
    // [MQTT-6.0.0-1] (3.1.1) [MQTT-6.0.0-1] (5.0): a data frame other than binary closes
    // the connection; before and after CONNECT.
    let mut c = WsClient::plain(ws, V5);
    c.send(&frame(0x1, true, b"{}"));
    c.expect_close(1003);
    let mut c = WsClient::mqtt(ws, V5, "texter");
    c.send(&frame(0x1, true, b"hello"));
    c.expect_close(1003);
}

#[test]
fn unmasked_and_malformed_frames_are_closed_with_1002() {
    if skip_unless_ringmq("WebSocket listeners are ringmq's") {
        return;
    }
    let (_broker, ws) = ws_broker(1, "[limits]\npacket_bytes_max = 1024\n");
    let pingreq = frame_pingreq();
    let cases: [(&str, Vec<u8>, u16); 4] = [
        ("unmasked", vec![0x82, 0x02, 0xC0, 0x00], 1002),
        ("continuation first", frame(0x0, true, &pingreq), 1002),
        (
            "reserved bit",
            {
                let mut f = binary(&pingreq);
                f[0] |= 0x40;
                f
            },
            1002,
        ),
        ("over packet_bytes_max + 5", binary(&vec![0u8; 1030]), 1009),
    ];
    for (what, bytes, code) in cases {
        let mut c = WsClient::mqtt(ws, V311, &format!("bad-{}", what.len()));
        c.send(&bytes);
        let (first, payload) = c.recv_frame().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            (first, payload),
            (0x88, code.to_be_bytes().to_vec()),
            "{what}"
        );
        assert_ends(&mut *c.s);
    }
}

#[test]
fn ws_beside_tcp_on_4_shards_with_hand_off_mid_frame() {
    if skip_unless_ringmq("WebSocket listeners are ringmq's") {
        return;
    }
    let (broker, ws) = ws_broker(4, "");
    let mut tcp_sub = broker.client(V311, "tcp-sub");
    tcp_sub.subscribe_one("from-ws/#", QoS::AtLeastOnce);
    for shard in 0..4 {
        let id = client_id_on_shard("ws", shard, 4);
        let mut c = WsClient::plain(ws, V311);
        // CONNECT and the first 3 bytes of the next frame in one write: the hand-off to the
        // home shard carries a partial frame.
        let sub = binary(&encode(
            &Packet::Subscribe(subscribe(1, &[("from-tcp/#", QoS::AtLeastOnce)])),
            V311,
        ));
        let mut first = binary(&encode(
            &Packet::Connect(Box::new(connect(V311, &id))),
            V311,
        ));
        first.extend_from_slice(&sub[..3]);
        c.send(&first);
        // The home shard sends the CONNACK: the rest of the frame reaches it there.
        c.expect_connack();
        c.send(&sub[3..]);
        assert!(matches!(c.recv_packet(), Packet::SubAck(_)));

        let topic = format!("from-tcp/{shard}");
        let mut tcp_pub = broker.client(V311, &format!("tcp-pub-{shard}"));
        tcp_pub.publish(&topic, b"to ws", QoS::AtLeastOnce);
        match c.recv_packet() {
            Packet::Publish(p) => {
                assert_eq!(p.topic.as_str(), topic);
                assert_eq!(&p.payload[..], b"to ws");
            }
            other => panic!("{id}: expected a PUBLISH, got {other:?}"),
        }

        let topic = format!("from-ws/{shard}");
        let publish = publish(&topic, b"to tcp", QoS::AtLeastOnce, 7);
        c.send(&binary(&encode(&Packet::Publish(publish), V311)));
        assert!(matches!(c.recv_packet(), Packet::PubAck(_)));
        let got = tcp_sub.recv_message();
        assert_eq!(got.topic.as_str(), topic);
        assert_eq!(&got.payload[..], b"to tcp");
    }
}

#[test]
fn wss_listener_serves_mqtt_over_tls() {
    if skip_unless_ringmq("WebSocket listeners are ringmq's") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ringmq-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let table = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        cert.display(),
        key.display()
    );
    let (broker, ws) = ws_broker(2, &table);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).expect("root");
    let config = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config, name).expect("client");
    let tls = rustls::StreamOwned::new(conn, tcp(ws));
    let mut c = WsClient::open(Box::new(tls), V5);
    c.connect(&client_id_on_shard("wss", 1, 2));
    let subscribe = subscribe(1, &[("wss/t", QoS::AtLeastOnce)]);
    c.send(&binary(&encode(&Packet::Subscribe(subscribe), V5)));
    assert!(matches!(c.recv_packet(), Packet::SubAck(_)));
    let mut tcp_pub = broker.client(V5, "tcp-pub");
    tcp_pub.publish("wss/t", b"secret", QoS::AtLeastOnce);
    match c.recv_packet() {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"secret"),
        other => panic!("expected a PUBLISH, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

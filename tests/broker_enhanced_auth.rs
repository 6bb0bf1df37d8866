//! MQTT 5.0 enhanced authentication with SCRAM-SHA-256 (section 4.12): the exchange of the
//! CONNECT phase and re-authentication, over raw TCP.
//!
//! The SCRAM client here is written from RFC 5802 on the hash crates alone (its `Hi` is
//! spelled out by hand), so it shares no SCRAM code with the broker; the codec is used only
//! to build packets and to read their properties. Mosquitto has no SCRAM without a plugin:
//! every test is ringmq-only.

pub mod common;
pub mod security;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use common::*;
use hmac::{Hmac, Mac};
use ringmq::protocol::{Auth, AuthProperties, ConnAck, Connect, Packet, ReasonCode};
use security::{passwd, sighup, SecurityFiles};
use sha2::{Digest, Sha256};

const CLOSE: Duration = Duration::from_secs(5);
const METHOD: &str = "SCRAM-SHA-256";

/// Failed exchanges are answered at once in these tests (the delay is tested in
/// broker_auth.rs and below).
const NO_DELAY: &str = "failed_login_delay_ms = 0\n";

/// A password file with two SCRAM users (`ringmq passwd --scram`) and carol, who has no
/// SCRAM credentials. Clients without enhanced authentication connect anonymously.
fn password_file() -> SecurityFiles {
    let files = SecurityFiles::new();
    let path = files.passwd_path();
    passwd(&path, &["-c", "--scram"], "alice", Some("wonderland"));
    passwd(&path, &["--scram"], "bob", Some("builder"));
    passwd(&path, &[], "carol", Some("secret"));
    files
}

fn broker() -> Broker {
    let files = password_file();
    let auth = format!("allow_anonymous = true\n{NO_DELAY}");
    Broker::start(files.options(true, false, &auth, ""))
}

// ---------------------------------------------------------------------------------------
// A SCRAM-SHA-256 client (RFC 5802 section 3, RFC 7677)
// ---------------------------------------------------------------------------------------

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// `Hi(str, salt, i)`: U1 = HMAC(str, salt + INT(1)), Ui = HMAC(str, Ui-1), their XOR.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

/// One client exchange.
struct Scram {
    password: String,
    bare: String,
    /// The ServerSignature the server-final must carry, once the client-final is made.
    server_signature: Option<String>,
    /// The salt and iterations the server sent.
    salt: Vec<u8>,
    iterations: u32,
}

impl Scram {
    fn new(user: &str, password: &str) -> Scram {
        let nonce = format!("fyko+d2lbbFgONRv9qkxdawL{}", std::process::id());
        Scram {
            password: password.to_owned(),
            bare: format!("n={user},r={nonce}"),
            server_signature: None,
            salt: Vec::new(),
            iterations: 0,
        }
    }

    /// `n,,n=<user>,r=<nonce>`.
    fn client_first(&self) -> Bytes {
        Bytes::from(format!("n,,{}", self.bare))
    }

    /// The client-final-message answering `server_first`.
    fn client_final(&mut self, server_first: &[u8]) -> Bytes {
        self.client_final_for(server_first, &self.password.clone())
    }

    /// The client-final-message a client with `password` would send.
    fn client_final_for(&mut self, server_first: &[u8], password: &str) -> Bytes {
        let server_first = std::str::from_utf8(server_first).expect("server-first is UTF-8");
        let mut parts = server_first.split(',');
        let nonce = parts.next().and_then(|p| p.strip_prefix("r=")).expect("r=");
        let salt = parts.next().and_then(|p| p.strip_prefix("s=")).expect("s=");
        let iterations = parts.next().and_then(|p| p.strip_prefix("i=")).expect("i=");
        let client_nonce = self.bare.split(",r=").nth(1).expect("our nonce");
        assert!(
            nonce.starts_with(client_nonce) && nonce.len() > client_nonce.len(),
            "the server's nonce must extend ours: {server_first}"
        );
        self.salt = BASE64.decode(salt).expect("salt is base64");
        self.iterations = iterations.parse().expect("iterations");
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.bare);
        let salted = hi(password.as_bytes(), &self.salt, self.iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.server_signature = Some(format!(
            "v={}",
            BASE64.encode(hmac(&server_key, auth_message.as_bytes()))
        ));
        Bytes::from(format!("{without_proof},p={}", BASE64.encode(proof)))
    }

    /// The server proved it knows the password too (RFC 5802: the client checks `v=`).
    fn check_server_final(&self, server_final: Option<&Bytes>) {
        let got = server_final.expect("server-final-message in Authentication Data");
        assert_eq!(
            std::str::from_utf8(got).ok(),
            self.server_signature.as_deref(),
            "server signature does not verify"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------

fn connect_with(client_id: &str, method: &str, data: Option<Bytes>) -> Connect {
    let mut c = connect(V5, client_id);
    c.properties.authentication_method = Some(mqtt_str(method));
    c.properties.authentication_data = data;
    c
}

fn auth(reason: ReasonCode, method: &str, data: Option<Bytes>) -> Packet {
    Packet::Auth(Auth {
        reason,
        properties: AuthProperties {
            authentication_method: Some(mqtt_str(method)),
            authentication_data: data,
            ..AuthProperties::default()
        },
    })
}

/// The next packet is an AUTH (first byte 0xF0 [MQTT-3.15.1-1]) with `reason` and the
/// SCRAM method [MQTT-4.12.0-5].
fn expect_auth(c: &mut RawClient, reason: ReasonCode) -> Auth {
    let raw = c.recv_raw();
    assert_eq!(raw[0], 0xf0, "expected AUTH, got {}", to_hex(&raw));
    let Packet::Auth(a) = decode_one(&raw) else {
        unreachable!()
    };
    assert_eq!(a.reason, reason, "{a:?}");
    assert_eq!(
        a.properties
            .authentication_method
            .as_ref()
            .map(|m| m.as_str()),
        Some(METHOD),
        "AUTH must carry the method [MQTT-4.12.0-5]"
    );
    a
}

/// The next packet is a CONNACK (first byte 0x20) with `reason`.
fn expect_connack(c: &mut RawClient, reason: ReasonCode) -> ConnAck {
    let raw = c.recv_raw();
    assert_eq!(raw[0], 0x20, "expected CONNACK, got {}", to_hex(&raw));
    let Packet::ConnAck(ack) = decode_one(&raw) else {
        unreachable!()
    };
    assert_eq!(ack.reason, reason, "{ack:?}");
    assert!(!ack.session_present);
    *ack
}

fn decode_one(raw: &[u8]) -> Packet {
    let mut buf = bytes::BytesMut::from(raw);
    match ringmq::protocol::decode(&mut buf, Some(V5), 1 << 20) {
        Ok(ringmq::protocol::Decoded::Packet(p)) => p,
        other => panic!("{} does not decode: {other:?}", to_hex(raw)),
    }
}

/// CONNECT with the client-first-message; returns the connection and the server-first.
fn start(broker: &Broker, client_id: &str, scram: &Scram) -> (RawClient, Bytes) {
    let mut c = broker.raw();
    let connect = connect_with(client_id, METHOD, Some(scram.client_first()));
    c.send_packet(&Packet::Connect(Box::new(connect)), V5);
    let a = expect_auth(&mut c, ReasonCode::ContinueAuthentication);
    let server_first = a.properties.authentication_data.expect("server-first");
    (c, server_first)
}

/// A whole successful exchange as `user`: the connection after its CONNACK.
fn login(broker: &Broker, client_id: &str, user: &str, password: &str) -> RawClient {
    let mut scram = Scram::new(user, password);
    let (mut c, server_first) = start(broker, client_id, &scram);
    let last = scram.client_final(&server_first);
    c.send_packet(
        &auth(ReasonCode::ContinueAuthentication, METHOD, Some(last)),
        V5,
    );
    let ack = expect_connack(&mut c, ReasonCode::Success);
    let p = &ack.properties;
    assert_eq!(
        p.authentication_method.as_ref().map(|m| m.as_str()),
        Some(METHOD)
    );
    scram.check_server_final(p.authentication_data.as_ref());
    c
}

/// The connection still works: PINGREQ, PINGRESP.
fn ping(c: &mut RawClient) {
    c.send(&hex("c0 00"));
    c.expect_bytes("d0 00");
}

// ---------------------------------------------------------------------------------------
// CONNECT phase
// ---------------------------------------------------------------------------------------

// [MQTT-4.12.0-2] [MQTT-4.12.0-5]: AUTH 0x18 with the method, then a CONNACK 0x00 with the
// method and the server-final-message, whose signature the client verifies.
#[test]
fn scram_success_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut scram = Scram::new("alice", "wonderland");
    let (mut c, server_first) = start(&broker, "scram-ok", &scram);
    let last = scram.client_final(&server_first);
    assert_eq!(scram.salt.len(), 16);
    assert_eq!(scram.iterations, 4096);
    c.send_packet(
        &auth(ReasonCode::ContinueAuthentication, METHOD, Some(last)),
        V5,
    );
    let ack = expect_connack(&mut c, ReasonCode::Success);
    assert_eq!(
        ack.properties
            .authentication_method
            .as_ref()
            .map(|m| m.as_str()),
        Some(METHOD)
    );
    scram.check_server_final(ack.properties.authentication_data.as_ref());
    ping(&mut c);
    // The session works: publish to itself.
    c.send_packet(&Packet::Subscribe(subscribe(1, &[("scram/t", qos(0))])), V5);
    c.expect_bytes("90 04 00 01 00 00");
    c.send_packet(&Packet::Publish(publish("scram/t", b"hi", qos(0), 0)), V5);
    c.expect_publish(V5, 0x30, "scram/t", b"hi");
}

// The exchange on the client's home shard after a hand-off: with 4 shards, one client id
// homed on each, so most connections are accepted on another shard than their home.
#[test]
fn scram_success_on_every_shard_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let files = password_file();
    let broker = Broker::start(files.options(true, false, NO_DELAY, "").shards(4));
    for shard in 0..4 {
        let id = client_id_on_shard("scram-shard", shard, 4);
        let mut c = login(&broker, &id, "bob", "builder");
        ping(&mut c);
    }
}

// [MQTT-4.12.0-4]: a wrong proof is refused with CONNACK 0x87, and the connection closes
// [MQTT-3.1.4-2].
#[test]
fn scram_wrong_password_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut scram = Scram::new("alice", "looking glass");
    let (mut c, server_first) = start(&broker, "scram-wrong", &scram);
    let last = scram.client_final(&server_first);
    c.send_packet(
        &auth(ReasonCode::ContinueAuthentication, METHOD, Some(last)),
        V5,
    );
    let ack = expect_connack(&mut c, ReasonCode::NotAuthorized);
    assert_eq!(ack.properties.authentication_data, None);
    c.expect_closed(CLOSE);
}

// [MQTT-4.12.0-4]: an unknown user runs the same exchange (a salt of the same size, the
// same salt at every try, the same iterations) and is refused at the proof, like a wrong
// password: nobody learns which user names exist.
#[test]
fn scram_unknown_user_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut salts = Vec::new();
    for attempt in 0..2 {
        let mut scram = Scram::new("mallory", "anything");
        let (mut c, server_first) = start(&broker, &format!("scram-unknown-{attempt}"), &scram);
        let last = scram.client_final(&server_first);
        assert_eq!(scram.salt.len(), 16);
        assert_eq!(scram.iterations, 4096);
        salts.push(scram.salt.clone());
        c.send_packet(
            &auth(ReasonCode::ContinueAuthentication, METHOD, Some(last)),
            V5,
        );
        expect_connack(&mut c, ReasonCode::NotAuthorized);
        c.expect_closed(CLOSE);
    }
    assert_eq!(salts[0], salts[1], "an unknown user's salt must not change");
}

// [MQTT-4.12.0-1]: a method the server does not support: CONNACK 0x8C, then close.
#[test]
fn unsupported_auth_method_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut c = broker.raw();
    let connect = connect_with(
        "scram-method",
        "SCRAM-SHA-1",
        Some(Bytes::from("n,,n=a,r=b")),
    );
    c.send_packet(&Packet::Connect(Box::new(connect)), V5);
    let ack = expect_connack(&mut c, ReasonCode::BadAuthenticationMethod);
    assert_eq!(ack.properties.authentication_method, None);
    c.expect_closed(CLOSE);
}

// [MQTT-3.1.2-30]: until the CONNACK a client that named a method sends only AUTH or
// DISCONNECT; a PINGREQ (here already in the CONNECT's segment, so it is read from the
// bytes buffered with the CONNECT) is a protocol error: CONNACK 0x82, then close.
#[test]
fn non_auth_packet_during_exchange_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let scram = Scram::new("alice", "wonderland");
    let mut c = broker.raw();
    let connect = connect_with("scram-ping", METHOD, Some(scram.client_first()));
    let mut bytes = encode(&Packet::Connect(Box::new(connect)), V5);
    bytes.extend_from_slice(&hex("c0 00"));
    c.send(&bytes);
    expect_auth(&mut c, ReasonCode::ContinueAuthentication);
    expect_connack(&mut c, ReasonCode::ProtocolError);
    c.expect_closed(CLOSE);
}

// [MQTT-4.12.0-5]: the client's AUTH names another method than its CONNECT: CONNACK 0x82.
#[test]
fn auth_with_another_method_during_connect_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut scram = Scram::new("alice", "wonderland");
    let (mut c, server_first) = start(&broker, "scram-other", &scram);
    let last = scram.client_final(&server_first);
    c.send_packet(
        &auth(
            ReasonCode::ContinueAuthentication,
            "SCRAM-SHA-512",
            Some(last),
        ),
        V5,
    );
    expect_connack(&mut c, ReasonCode::ProtocolError);
    c.expect_closed(CLOSE);
}

// [MQTT-4.12.0-4]: ringmq's rule: a CONNECT with a method and a User Name must name the
// SCRAM user in both, or it is refused (0x87) before the exchange starts.
#[test]
fn connect_user_name_must_be_the_scram_user_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let scram = Scram::new("alice", "wonderland");
    let mut c = broker.raw();
    let mut connect = connect_with("scram-user", METHOD, Some(scram.client_first()));
    connect.username = Some(mqtt_str("bob"));
    c.send_packet(&Packet::Connect(Box::new(connect)), V5);
    expect_connack(&mut c, ReasonCode::NotAuthorized);
    c.expect_closed(CLOSE);
    // The same user in both is fine.
    let mut scram = Scram::new("alice", "wonderland");
    let mut c = broker.raw();
    let mut connect = connect_with("scram-user", METHOD, Some(scram.client_first()));
    connect.username = Some(mqtt_str("alice"));
    c.send_packet(&Packet::Connect(Box::new(connect)), V5);
    let a = expect_auth(&mut c, ReasonCode::ContinueAuthentication);
    let last = scram.client_final(&a.properties.authentication_data.expect("server-first"));
    c.send_packet(
        &auth(ReasonCode::ContinueAuthentication, METHOD, Some(last)),
        V5,
    );
    expect_connack(&mut c, ReasonCode::Success);
}

// [MQTT-4.12.0-4]: a client that never answers is closed after limits.connect_timeout_secs,
// without a CONNACK.
#[test]
fn scram_exchange_times_out_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let files = password_file();
    let broker = Broker::start(
        files
            .options(true, false, NO_DELAY, "")
            .config("[limits]\nconnect_timeout_secs = 1\n", ""),
    );
    let scram = Scram::new("alice", "wonderland");
    let (mut c, _) = start(&broker, "scram-slow", &scram);
    c.expect_closed(CLOSE);
}

// [MQTT-4.12.0-6]: without a method in the CONNECT, no AUTH and no method in the CONNACK;
// [MQTT-4.12.0-7]: such a client must not send AUTH: the server ends it with 0x82.
#[test]
fn auth_without_enhanced_authentication_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut c = broker.raw();
    c.send_packet(&Packet::Connect(Box::new(connect(V5, "plain"))), V5);
    let ack = expect_connack(&mut c, ReasonCode::Success);
    assert_eq!(ack.properties.authentication_method, None);
    assert_eq!(ack.properties.authentication_data, None);
    let scram = Scram::new("alice", "wonderland");
    c.send_packet(
        &auth(
            ReasonCode::ReAuthenticate,
            METHOD,
            Some(scram.client_first()),
        ),
        V5,
    );
    c.expect_disconnect(0x82);
    c.expect_closed(CLOSE);
}

// ---------------------------------------------------------------------------------------
// Re-authentication (section 4.12.1)
// ---------------------------------------------------------------------------------------

// [MQTT-4.12.1-1]: AUTH 0x19 with the same method starts a re-authentication: AUTH 0x18
// out, AUTH 0x18 in, AUTH 0x00 with the server-final-message. The client goes on
// publishing meanwhile, and can re-authenticate again.
#[test]
fn reauthentication_success_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut c = login(&broker, "reauth-ok", "alice", "wonderland");
    for round in 1..=2u16 {
        let mut scram = Scram::new("alice", "wonderland");
        // AUTH 0x19 and a QoS 1 PUBLISH in one segment.
        let mut bytes = encode(
            &auth(
                ReasonCode::ReAuthenticate,
                METHOD,
                Some(scram.client_first()),
            ),
            V5,
        );
        bytes.extend(encode(
            &Packet::Publish(publish("reauth/t", b"during", qos(1), round)),
            V5,
        ));
        c.send(&bytes);
        let a = expect_auth(&mut c, ReasonCode::ContinueAuthentication);
        // The PUBACK of the PUBLISH sent during the exchange: 40 02 <id>.
        c.expect_bytes(&format!("40 02 {}", id_hex(round)));
        let last = scram.client_final(&a.properties.authentication_data.expect("server-first"));
        c.send_packet(
            &auth(ReasonCode::ContinueAuthentication, METHOD, Some(last)),
            V5,
        );
        let done = expect_auth(&mut c, ReasonCode::Success);
        scram.check_server_final(done.properties.authentication_data.as_ref());
        ping(&mut c);
    }
}

// [MQTT-4.12.1-2]: a failed re-authentication: DISCONNECT 0x87 Not authorized, then close.
#[test]
fn reauthentication_wrong_password_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut c = login(&broker, "reauth-wrong", "alice", "wonderland");
    let mut scram = Scram::new("alice", "wonderland");
    c.send_packet(
        &auth(
            ReasonCode::ReAuthenticate,
            METHOD,
            Some(scram.client_first()),
        ),
        V5,
    );
    let a = expect_auth(&mut c, ReasonCode::ContinueAuthentication);
    let server_first = a.properties.authentication_data.expect("server-first");
    let last = scram.client_final_for(&server_first, "rabbit hole");
    c.send_packet(
        &auth(ReasonCode::ContinueAuthentication, METHOD, Some(last)),
        V5,
    );
    c.expect_disconnect(0x87);
    c.expect_closed(CLOSE);
}

// [MQTT-4.12.1-2]: ringmq's rule: a re-authentication is for the user already
// authenticated; another user (even with the right password) fails it with 0x87.
#[test]
fn reauthentication_as_another_user_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut c = login(&broker, "reauth-bob", "alice", "wonderland");
    let scram = Scram::new("bob", "builder");
    c.send_packet(
        &auth(
            ReasonCode::ReAuthenticate,
            METHOD,
            Some(scram.client_first()),
        ),
        V5,
    );
    c.expect_disconnect(0x87);
    c.expect_closed(CLOSE);
}

// [MQTT-4.12.1-1]: re-authentication must use the method of the CONNECT; another one is a
// protocol error: DISCONNECT 0x82.
#[test]
fn reauthentication_with_another_method_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut c = login(&broker, "reauth-method", "alice", "wonderland");
    let scram = Scram::new("alice", "wonderland");
    c.send_packet(
        &auth(
            ReasonCode::ReAuthenticate,
            "SCRAM-SHA-1",
            Some(scram.client_first()),
        ),
        V5,
    );
    c.expect_disconnect(0x82);
    c.expect_closed(CLOSE);
}

// [MQTT-4.12.0-3]: the client answers the server's AUTH with 0x18; an AUTH 0x18 when no
// re-authentication is under way is a protocol error: DISCONNECT 0x82.
#[test]
fn reauthentication_continue_without_start_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut c = login(&broker, "reauth-continue", "alice", "wonderland");
    c.send_packet(
        &auth(
            ReasonCode::ContinueAuthentication,
            METHOD,
            Some(Bytes::from("c=biws,r=x,p=AAAA")),
        ),
        V5,
    );
    c.expect_disconnect(0x82);
    c.expect_closed(CLOSE);
}

// ---------------------------------------------------------------------------------------
// The client's Maximum Packet Size
// ---------------------------------------------------------------------------------------

/// The SCRAM CONNECT of `start`, with Maximum Packet Size `max`.
fn connect_packet_max(client_id: &str, scram: &Scram, max: u32) -> Connect {
    let mut c = connect_with(client_id, METHOD, Some(scram.client_first()));
    c.properties.maximum_packet_size = std::num::NonZeroU32::new(max);
    c
}

// [MQTT-3.15.2-2] [MQTT-3.15.2-3]: the server's AUTH carries no Reason String or User
// Property; and an AUTH that would exceed the client's Maximum Packet Size is not sent at
// all [MQTT-3.1.2-24]: the exchange cannot go on, so the CONNACK says 0x95 (Packet too
// large), within the client's maximum.
#[test]
fn auth_fits_client_maximum_packet_size_ringmq_only_v5_mqtt_3_15_2_2() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let scram = Scram::new("alice", "wonderland");
    let mut roomy = broker.raw();
    let connect = connect_packet_max("scram-roomy", &scram, 1 << 16);
    roomy.send_packet(&Packet::Connect(Box::new(connect)), V5);
    let a = expect_auth(&mut roomy, ReasonCode::ContinueAuthentication);
    assert_eq!(a.properties.reason_string, None, "{a:?}");
    assert!(a.properties.user_properties.is_empty(), "{a:?}");
    let size = encode(&Packet::Auth(a), V5).len() as u32;

    let mut tight = broker.raw();
    let connect = connect_packet_max("scram-tight", &scram, size - 1);
    tight.send_packet(&Packet::Connect(Box::new(connect)), V5);
    let raw = tight.recv_raw();
    assert!(raw.len() < size as usize, "{}", to_hex(&raw));
    assert_eq!(raw[0], 0x20, "expected CONNACK, got {}", to_hex(&raw));
    match decode_one(&raw) {
        Packet::ConnAck(ack) => assert_eq!(ack.reason, ReasonCode::PacketTooLarge, "{ack:?}"),
        other => panic!("expected CONNACK 0x95, got {other:?}"),
    }
    tight.expect_closed(CLOSE);
}

// [MQTT-3.2.2-19] [MQTT-3.2.2-20]: a refusing CONNACK says why in a Reason String when the
// client can take it, and carries no Reason String or User Property past the client's
// Maximum Packet Size: with 16 bytes, CONNACK 0x8C (Bad authentication method) is exactly
// `20 03 00 8c 00`.
#[test]
fn refusing_connack_fits_client_maximum_packet_size_ringmq_only_v5_mqtt_3_2_2_19() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let unknown = |client_id: &str, max: u32| {
        let mut c = connect_with(client_id, "SCRAM-SHA-1", Some(Bytes::from("n,,n=a,r=b")));
        c.properties.maximum_packet_size = std::num::NonZeroU32::new(max);
        Packet::Connect(Box::new(c))
    };
    let mut roomy = broker.raw();
    roomy.send_packet(&unknown("method-roomy", 1 << 16), V5);
    let ack = expect_connack(&mut roomy, ReasonCode::BadAuthenticationMethod);
    assert!(ack.properties.reason_string.is_some(), "{ack:?}");
    assert!(ack.properties.user_properties.is_empty(), "{ack:?}");

    let mut tight = broker.raw();
    tight.send_packet(&unknown("method-tight", 16), V5);
    assert_eq!(to_hex(&tight.recv_raw()), "20 03 00 8c 00");
    tight.expect_closed(CLOSE);
}

// ---------------------------------------------------------------------------------------
// Credentials from the password file
// ---------------------------------------------------------------------------------------

// A user of the password file without SCRAM credentials (made without --scram) cannot use
// SCRAM: the exchange fails at the proof, like an unknown user's (CONNACK 0x87).
#[test]
fn user_without_scram_credentials_is_refused_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let broker = broker();
    let mut scram = Scram::new("carol", "secret");
    let (mut c, server_first) = start(&broker, "scram-carol", &scram);
    let last = scram.client_final(&server_first);
    c.send_packet(
        &auth(ReasonCode::ContinueAuthentication, METHOD, Some(last)),
        V5,
    );
    expect_connack(&mut c, ReasonCode::NotAuthorized);
    c.expect_closed(CLOSE);
}

// SIGHUP: a SCRAM user deleted from the password file is disconnected (DISCONNECT 0x87);
// one whose line is unchanged stays.
#[test]
fn scram_user_deleted_at_reload_is_disconnected_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let files = password_file();
    let broker = Broker::start(files.options(true, false, NO_DELAY, ""));
    let mut alice = login(&broker, "scram-alice", "alice", "wonderland");
    let mut bob = login(&broker, "scram-bob", "bob", "builder");
    let (code, err) = passwd(&files.passwd_path(), &["-D"], "bob", None);
    assert_eq!(code, 0, "{err}");
    sighup(&broker);
    bob.expect_disconnect(0x87);
    ping(&mut alice);
}

// A failed SCRAM proof is a failed login: answered after failed_login_delay_ms, and
// counted toward the address's limit, past which even a right proof is refused at once
// with CONNACK 0x9F Connection rate exceeded.
#[test]
fn scram_failures_are_delayed_and_count_toward_the_limit_ringmq_only_v5() {
    if skip_unless_ringmq("SCRAM-SHA-256 is ringmq's") {
        return;
    }
    let files = password_file();
    let broker = Broker::start(files.options(
        true,
        false,
        "failed_login_delay_ms = 400\nfailed_logins_per_address_max = 2\n",
        "",
    ));
    for attempt in 0..2 {
        let mut scram = Scram::new("alice", "guess");
        let (mut c, server_first) = start(&broker, &format!("scram-guess-{attempt}"), &scram);
        let last = scram.client_final(&server_first);
        let sent = std::time::Instant::now();
        c.send_packet(
            &auth(ReasonCode::ContinueAuthentication, METHOD, Some(last)),
            V5,
        );
        expect_connack(&mut c, ReasonCode::NotAuthorized);
        let waited = sent.elapsed();
        assert!(
            waited >= Duration::from_millis(350),
            "refused after {waited:?}"
        );
    }
    let scram = Scram::new("alice", "wonderland");
    let mut c = broker.raw();
    let connect = connect_with("scram-right", METHOD, Some(scram.client_first()));
    c.send_packet(&Packet::Connect(Box::new(connect)), V5);
    expect_connack(&mut c, ReasonCode::ConnectionRateExceeded);
    c.expect_closed(CLOSE);
}

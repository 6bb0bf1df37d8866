//! The exchange as MQTT packets: CONNECT phase and re-authentication, with a SCRAM client
//! written from RFC 5802 (its primitives are checked by the RFC 7677 vector in `scram`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;

use super::scram::{hmac, salted_password, sha256};
use super::*;
use crate::protocol::{Auth, AuthProperties, MqttString, ReasonCode};

fn store() -> PasswordStore {
    let mut store = PasswordStore::new(4096).unwrap();
    for (user, password, salt) in [
        ("alice", b"wonderland".as_slice(), 1),
        ("bob", b"builder", 2),
    ] {
        let credentials = scram::Credentials::derive(password, vec![salt; SALT_BYTES], 4096);
        store.insert(user, credentials);
    }
    store
}

fn method() -> MqttString {
    MqttString::try_from(scram::METHOD).unwrap()
}

/// The client's side of one exchange.
struct Client {
    bare: String,
    password: Vec<u8>,
}

impl Client {
    fn first(user: &str, password: &[u8]) -> (Client, Bytes) {
        let bare = format!("n={user},r=clientnonce{user}");
        let message = Bytes::from(format!("n,,{bare}"));
        (
            Client {
                bare,
                password: password.to_vec(),
            },
            message,
        )
    }

    /// The client-final-message for `server_first`, and the server-final it expects.
    fn last(&self, server_first: &[u8]) -> (Bytes, Bytes) {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for attribute in server_first.split(',') {
            match attribute.split_at(2) {
                ("r=", v) => nonce = v,
                ("s=", v) => salt = BASE64.decode(v).unwrap(),
                ("i=", v) => iterations = v.parse().unwrap(),
                _ => panic!("unexpected {attribute}"),
            }
        }
        assert!(nonce.starts_with("clientnonce"), "{nonce}");
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.bare);
        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let signature = hmac(&sha256(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            BASE64.encode(hmac(&server_key, auth_message.as_bytes()))
        );
        let message = format!("{without_proof},p={}", BASE64.encode(proof));
        (Bytes::from(message), Bytes::from(expected))
    }
}

fn auth(reason: ReasonCode, data: Option<Bytes>) -> Auth {
    Auth {
        reason,
        properties: AuthProperties {
            authentication_method: Some(method()),
            authentication_data: data,
            ..AuthProperties::default()
        },
    }
}

fn data(a: &Auth) -> &[u8] {
    a.properties.authentication_data.as_deref().unwrap()
}

/// A connection authenticated as `user` at CONNECT.
fn connected(store: &PasswordStore, user: &str, password: &[u8]) -> ConnAuth {
    let (client, first) = Client::first(user, password);
    let (mut state, reply) = ConnAuth::start(store, &method(), Some(&first), None).unwrap();
    let (last, expected) = client.last(data(&reply));
    let server_final = state
        .connect_step(&auth(ReasonCode::ContinueAuthentication, Some(last)))
        .unwrap();
    assert_eq!(server_final, expected);
    state
}

#[test]
fn connect_exchange_succeeds_and_the_server_proves_itself() {
    let store = store();
    let (client, first) = Client::first("alice", b"wonderland");
    let (mut state, reply) =
        ConnAuth::start(&store, &method(), Some(&first), Some("alice")).unwrap();
    // [MQTT-4.12.0-2], [MQTT-4.12.0-5] (5.0)
    assert_eq!(reply.reason, ReasonCode::ContinueAuthentication);
    assert_eq!(reply.properties.authentication_method, Some(method()));
    let server_first = std::str::from_utf8(data(&reply)).unwrap().to_owned();
    assert!(
        server_first.starts_with("r=clientnoncealice"),
        "{server_first}"
    );
    assert!(server_first.ends_with(",i=4096"), "{server_first}");
    assert_eq!(state.username(), "");
    let (last, expected) = client.last(data(&reply));
    let server_final = state
        .connect_step(&auth(ReasonCode::ContinueAuthentication, Some(last)))
        .unwrap();
    assert_eq!(server_final, expected);
    assert_eq!(state.username(), "alice");
    assert_eq!(state.method(), &method());
}

#[test]
fn wrong_password_and_unknown_user_fail_alike() {
    let store = store();
    for (user, password) in [("alice", &b"looking glass"[..]), ("carol", b"wonderland")] {
        let (client, first) = Client::first(user, password);
        let (mut state, reply) = ConnAuth::start(&store, &method(), Some(&first), None).unwrap();
        let (last, _) = client.last(data(&reply));
        let err = state
            .connect_step(&auth(ReasonCode::ContinueAuthentication, Some(last)))
            .unwrap_err();
        assert!(matches!(err, AuthError::Scram(ScramError::Failed)), "{err}");
        assert_eq!(err.reason_code(), ReasonCode::NotAuthorized);
        assert_eq!(err.to_string(), "authentication failed");
    }
}

#[test]
fn unsupported_method_is_0x8c() {
    let (_, first) = Client::first("alice", b"wonderland");
    let other = MqttString::try_from("SCRAM-SHA-1").unwrap();
    let err = ConnAuth::start(&store(), &other, Some(&first), None).unwrap_err();
    assert!(matches!(err, AuthError::UnsupportedMethod(_)));
    assert_eq!(err.reason_code(), ReasonCode::BadAuthenticationMethod);
}

#[test]
fn connect_user_name_must_be_the_scram_user() {
    let (_, first) = Client::first("alice", b"wonderland");
    let err = ConnAuth::start(&store(), &method(), Some(&first), Some("bob")).unwrap_err();
    assert!(matches!(err, AuthError::UserNameMismatch));
    assert_eq!(err.reason_code(), ReasonCode::NotAuthorized);
}

#[test]
fn missing_or_malformed_client_first_is_refused() {
    let err = ConnAuth::start(&store(), &method(), None, None).unwrap_err();
    assert!(matches!(err, AuthError::Scram(ScramError::Malformed(_))));
    assert_eq!(err.reason_code(), ReasonCode::NotAuthorized);
    let bad = Bytes::from_static(b"n=alice,r=abc");
    let err = ConnAuth::start(&store(), &method(), Some(&bad), None).unwrap_err();
    assert!(matches!(err, AuthError::Scram(_)));
}

#[test]
fn connect_answer_must_be_auth_0x18_with_the_same_method() {
    let store = store();
    let (client, first) = Client::first("alice", b"wonderland");
    let (mut state, reply) = ConnAuth::start(&store, &method(), Some(&first), None).unwrap();
    let (last, _) = client.last(data(&reply));
    let mut other_method = auth(ReasonCode::ContinueAuthentication, Some(last.clone()));
    other_method.properties.authentication_method = MqttString::try_from("PLAIN").ok();
    let err = state.connect_step(&other_method).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
    let err = state
        .connect_step(&auth(ReasonCode::ReAuthenticate, Some(last)))
        .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
}

#[test]
fn reauthentication_succeeds_with_auth_success_and_server_final() {
    let store = store();
    let mut state = connected(&store, "alice", b"wonderland");
    for _ in 0..2 {
        let (client, first) = Client::first("alice", b"wonderland");
        let reply = state
            .reauth_step(&store, &auth(ReasonCode::ReAuthenticate, Some(first)))
            .unwrap();
        assert_eq!(reply.reason, ReasonCode::ContinueAuthentication);
        let (last, expected) = client.last(data(&reply));
        let done = state
            .reauth_step(
                &store,
                &auth(ReasonCode::ContinueAuthentication, Some(last)),
            )
            .unwrap();
        assert_eq!(done.reason, ReasonCode::Success);
        assert_eq!(done.properties.authentication_method, Some(method()));
        assert_eq!(done.properties.authentication_data, Some(expected));
        assert_eq!(state.username(), "alice");
    }
}

#[test]
fn reauthentication_with_a_wrong_password_fails() {
    let store = store();
    let mut state = connected(&store, "alice", b"wonderland");
    let (client, first) = Client::first("alice", b"rabbit hole");
    let reply = state
        .reauth_step(&store, &auth(ReasonCode::ReAuthenticate, Some(first)))
        .unwrap();
    let (last, _) = client.last(data(&reply));
    let err = state
        .reauth_step(
            &store,
            &auth(ReasonCode::ContinueAuthentication, Some(last)),
        )
        .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::NotAuthorized);
}

#[test]
fn reauthentication_as_another_user_fails() {
    let store = store();
    let mut state = connected(&store, "alice", b"wonderland");
    let (_, first) = Client::first("bob", b"builder");
    let err = state
        .reauth_step(&store, &auth(ReasonCode::ReAuthenticate, Some(first)))
        .unwrap_err();
    assert!(matches!(err, AuthError::UserChanged));
    assert_eq!(err.reason_code(), ReasonCode::NotAuthorized);
}

#[test]
fn reauthentication_protocol_errors() {
    let store = store();
    let mut state = connected(&store, "alice", b"wonderland");
    // 0x18 with nothing under way.
    let err = state
        .reauth_step(
            &store,
            &auth(ReasonCode::ContinueAuthentication, Some(Bytes::new())),
        )
        .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
    // Another method [MQTT-4.12.1-1] (5.0).
    let (_, first) = Client::first("alice", b"wonderland");
    let mut other = auth(ReasonCode::ReAuthenticate, Some(first.clone()));
    other.properties.authentication_method = MqttString::try_from("SCRAM-SHA-1").ok();
    let err = state.reauth_step(&store, &other).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
    // AUTH 0x00 from the client.
    let err = state
        .reauth_step(&store, &auth(ReasonCode::Success, None))
        .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
    // A second 0x19 while one is under way.
    state
        .reauth_step(
            &store,
            &auth(ReasonCode::ReAuthenticate, Some(first.clone())),
        )
        .unwrap();
    let err = state
        .reauth_step(&store, &auth(ReasonCode::ReAuthenticate, Some(first)))
        .unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
}

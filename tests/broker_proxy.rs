//! PROXY protocol v1 / v2 on a listener with `proxy_protocol = true`: the header's source
//! address is the client's address in the log and for the per-address failed-login limit;
//! a connection without a valid header is closed. ringmq only (Mosquitto 2.0 has no PROXY
//! protocol).

pub mod common;
pub mod security;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::Packet;
use security::*;

const CLOSE: Duration = Duration::from_secs(5);

/// A broker with a second listener that takes PROXY headers; returns it and that
/// listener's address. `auth` goes into `[auth]` (with alice's password file).
fn proxy_broker(files: &SecurityFiles, auth: &str) -> (Broker, SocketAddr) {
    files.passwords(&[("alice", "wonderland")]);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    let toml = format!("{auth}\n[[listener]]\nbind = \"{addr}\"\nproxy_protocol = true\n");
    // Two shards: a connection is often accepted on one and handed to its client id's home
    // shard on the other, and the address must travel with it.
    let broker = Broker::start(files.options(true, false, &toml, "").shards(2));
    // Every shard binds every listener before it serves; wait for this one anyway.
    let until = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < until, "proxy listener {addr} not up");
        std::thread::sleep(Duration::from_millis(20));
    }
    (broker, addr)
}

fn v1(src: &str, sport: u16) -> Vec<u8> {
    let fam = if src.contains(':') { "TCP6" } else { "TCP4" };
    let dst = if src.contains(':') {
        "::1"
    } else {
        "127.0.0.1"
    };
    format!("PROXY {fam} {src} {dst} {sport} 1883\r\n").into_bytes()
}

fn v2(source: Option<SocketAddr>) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    let body = match source {
        None => {
            h.extend_from_slice(&[0x20, 0x00]); // LOCAL, UNSPEC
            Vec::new()
        }
        Some(SocketAddr::V4(a)) => {
            h.extend_from_slice(&[0x21, 0x11]);
            let mut b = a.ip().octets().to_vec();
            b.extend_from_slice(&[127, 0, 0, 1]);
            b.extend_from_slice(&a.port().to_be_bytes());
            b.extend_from_slice(&1883u16.to_be_bytes());
            b.extend_from_slice(&[0x04, 0x00, 0x01, 0x00]); // NOOP TLV, skipped
            b
        }
        Some(SocketAddr::V6(a)) => {
            h.extend_from_slice(&[0x21, 0x21]);
            let mut b = a.ip().octets().to_vec();
            b.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
            b.extend_from_slice(&a.port().to_be_bytes());
            b.extend_from_slice(&1883u16.to_be_bytes());
            b
        }
    };
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&body);
    h
}

/// Sends `header` then a CONNECT for `client_id` (in one write) as alice with `password`.
fn connect_behind(addr: SocketAddr, header: &[u8], client_id: &str, password: &str) -> RawClient {
    let mut c = RawClient::connect(addr);
    let connect = connect_as(V311, client_id, Some("alice"), Some(password));
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&encode(&Packet::Connect(Box::new(connect)), V311));
    c.send(&bytes);
    c
}

/// Waits until the broker's log has a `connected` line for `client_id` from `peer`.
fn expect_logged_peer(broker: &Broker, client_id: &str, peer: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let log = broker.log_of_this_run();
        let found = log
            .lines()
            .any(|l| l.contains("connected") && l.contains(client_id) && l.contains(peer));
        if found {
            return;
        }
        assert!(
            Instant::now() < until,
            "no `connected` line for {client_id} from {peer} in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// v1 and v2 headers, IPv4 and IPv6: MQTT follows and works, and the log shows the address
// the header gave, not the load balancer's.
#[test]
fn v1_and_v2_headers_give_the_client_address_v311() {
    if skip_unless_ringmq("ringmq's proxy_protocol") {
        return;
    }
    let files = SecurityFiles::new();
    let (broker, addr) = proxy_broker(&files, "failed_login_delay_ms = 0\n");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("v1-4", v1("203.0.113.7", 40001), "203.0.113.7:40001"),
        ("v1-6", v1("2001:db8::7", 40002), "[2001:db8::7]:40002"),
        (
            "v2-4",
            v2(Some("198.51.100.9:40003".parse().expect("addr"))),
            "198.51.100.9:40003",
        ),
        (
            "v2-6",
            v2(Some("[2001:db8::9]:40004".parse().expect("addr"))),
            "[2001:db8::9]:40004",
        ),
    ];
    for (id, header, peer) in cases {
        let mut c = connect_behind(addr, &header, id, "wonderland");
        c.expect_bytes("20 02 00 00");
        // The connection is MQTT from here on: a ping is answered.
        c.send(&hex("C0 00"));
        c.expect_bytes("D0 00");
        expect_logged_peer(&broker, id, peer);
    }
    // The plain listener takes no header.
    let mut c = broker.raw();
    c.send_packet(
        &Packet::Connect(Box::new(connect_as(
            V311,
            "plain",
            Some("alice"),
            Some("wonderland"),
        ))),
        V311,
    );
    c.expect_bytes("20 02 00 00");
}

// A header that arrives in pieces (here a byte per TCP segment) is put together, and the
// CONNECT after it is read from where the header ended.
#[test]
fn header_split_across_segments_v311() {
    if skip_unless_ringmq("ringmq's proxy_protocol") {
        return;
    }
    let files = SecurityFiles::new();
    let (broker, addr) = proxy_broker(&files, "");
    for (id, header, peer) in [
        ("split-1", v1("192.0.2.44", 5555), "192.0.2.44:5555"),
        (
            "split-2",
            v2(Some("192.0.2.45:5556".parse().expect("addr"))),
            "192.0.2.45:5556",
        ),
    ] {
        let mut c = RawClient::connect(addr);
        for b in &header {
            c.send(&[*b]);
            // What is under test is the segmentation: give each byte its own segment.
            std::thread::sleep(Duration::from_millis(2));
        }
        let connect = connect_as(V311, id, Some("alice"), Some("wonderland"));
        c.send_packet(&Packet::Connect(Box::new(connect)), V311);
        c.expect_bytes("20 02 00 00");
        expect_logged_peer(&broker, id, peer);
    }
}

// A v2 LOCAL header (the balancer's own health check) is accepted: the socket's own
// address is the client's.
#[test]
fn local_command_uses_the_socket_address_v311() {
    if skip_unless_ringmq("ringmq's proxy_protocol") {
        return;
    }
    let files = SecurityFiles::new();
    let (broker, addr) = proxy_broker(&files, "");
    let mut c = connect_behind(addr, &v2(None), "health", "wonderland");
    c.expect_bytes("20 02 00 00");
    let (stream, _) = c.into_stream();
    let own = stream.local_addr().expect("local address");
    expect_logged_peer(&broker, "health", &own.to_string());
}

// No header, a garbage one, or a truncated one followed by a close: the connection is closed
// without an answer, and the broker goes on serving.
#[test]
fn missing_or_bad_header_is_closed_v311() {
    if skip_unless_ringmq("ringmq's proxy_protocol") {
        return;
    }
    let files = SecurityFiles::new();
    let (mut broker, addr) = proxy_broker(&files, "");
    let plain_connect = encode(
        &Packet::Connect(Box::new(connect_as(
            V311,
            "nohdr",
            Some("alice"),
            Some("wonderland"),
        ))),
        V311,
    );
    let bad: [Vec<u8>; 4] = [
        plain_connect,
        b"PROXY TCP4 1.2.3.4 nonsense\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        {
            let mut h = v2(Some("192.0.2.1:1".parse().expect("addr")));
            h[12] = 0x31; // version 3
            h
        },
    ];
    for bytes in bad {
        let mut c = RawClient::connect(addr);
        c.send(&bytes);
        c.expect_closed(CLOSE);
    }
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(200, b'x');
    let mut c = RawClient::connect(addr);
    let _ = c.try_send(&long);
    c.expect_closed(CLOSE);
    let mut c = connect_behind(addr, &v1("192.0.2.3", 7), "after", "wonderland");
    c.expect_bytes("20 02 00 00");
    // Each refusal is counted: the shards log their limit counters when they stop.
    broker.stop();
    let log = broker.log_of_this_run();
    let counted: u64 = log
        .lines()
        .filter(|l| l.contains(": limits "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.strip_prefix("bad_proxy_headers="))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum();
    // The five above, and proxy_broker's probe that the listener was up (closed at once;
    // it may still be pending when the broker stops).
    assert!((5..=6).contains(&counted), "{counted} counted:\n{log}");
}

// The per-address failed-login limit counts the address the header gave: failures behind
// one proxied address block that address, not the balancer's (every connection here comes
// from 127.0.0.1), and another proxied address still logs in.
#[test]
fn failed_login_limit_counts_the_proxied_address_v311() {
    if skip_unless_ringmq("ringmq's failed_logins_per_address_max") {
        return;
    }
    let files = SecurityFiles::new();
    let (_broker, addr) = proxy_broker(
        &files,
        "failed_login_delay_ms = 0\nfailed_logins_per_address_max = 3\n",
    );
    let mallory = v1("198.51.100.66", 1000);
    for _ in 0..3 {
        let mut c = connect_behind(addr, &mallory, "m", "guess");
        c.expect_bytes("20 02 00 04");
    }
    // Blocked now, even with the right password (v3: 0x03 Server unavailable).
    let mut c = connect_behind(addr, &mallory, "m", "wonderland");
    c.expect_bytes("20 02 00 03");
    c.expect_closed(CLOSE);
    // Same balancer, another client behind it.
    let mut c = connect_behind(addr, &v1("198.51.100.67", 1000), "a", "wonderland");
    c.expect_bytes("20 02 00 00");
}

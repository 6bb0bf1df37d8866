//! The admin listener over real HTTP (a plain `TcpStream`, as curl would): the numbers of
//! `/api/v1/stats` and `/metrics` against the traffic the test sent, the bearer token,
//! paging of clients, subscriptions and retained messages, kicking a client, and errors.
//! The Prometheus text is also parsed by the Python `prometheus_client` parser
//! (tests/python/test_admin.py); here each sample line is read as the format defines it.

pub mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Packet, QoS, RetainHandling, SubscriptionId, SubscriptionOptions};
use serde_json::Value;

/// A ringmq broker with its admin listener on a free port (and `token`, if not empty).
fn broker(shards: usize, token: &str, extra: &str) -> (Broker, SocketAddr) {
    let port = free_port();
    let toml = format!(
        "[admin]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{token}\"\n{extra}"
    );
    let b = Broker::start(BrokerOptions::default().shards(shards).config(&toml, ""));
    (b, SocketAddr::from(([127, 0, 0, 1], port)))
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`).
fn http(admin: SocketAddr, method: &str, target: &str, token: Option<&str>) -> Reply {
    let mut s = TcpStream::connect_timeout(&admin, TIMEOUT).expect("admin connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req =
        format!("{method} {target} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .expect("Content-Length");
    if method != "HEAD" {
        assert_eq!(body.len(), length, "body length vs Content-Length");
    }
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn get(admin: SocketAddr, target: &str) -> Value {
    let r = http(admin, "GET", target, None);
    assert_eq!(r.status, 200, "GET {target}: {}", r.body);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    r.json()
}

/// Polls `target` until `done` holds (counters of other shards arrive a moment after the
/// client saw its answer); returns the last answer either way.
fn get_where(admin: SocketAddr, target: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let v = get(admin, target);
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/metrics` as sample name (with labels) -> value; every sample's family has a TYPE line.
fn prometheus(admin: SocketAddr) -> BTreeMap<String, f64> {
    let r = http(admin, "GET", "/metrics", None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let mut typed = Vec::new();
    let mut samples = BTreeMap::new();
    for line in r.body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or_default().to_owned();
            let kind = parts.next().unwrap_or_default();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.push(name);
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let name = series.split('{').next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| typed.iter().any(|t| t == f))
                })
                .unwrap_or(name);
            assert!(typed.iter().any(|t| t == family), "no TYPE before {line}");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            assert!(
                samples.insert(series.to_owned(), value).is_none(),
                "twice: {line}"
            );
        }
    }
    samples
}

fn n(v: &Value, path: &str) -> u64 {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    at.as_u64()
        .unwrap_or_else(|| panic!("{path}: not a number in {v}"))
}

#[test]
fn stats_and_metrics_count_the_traffic_sent_ringmq_only() {
    if skip_unless_ringmq("the admin API is ringmq's") {
        return;
    }
    let (broker, admin) = broker(2, "", "");
    let addr = broker.addr();
    let mut sub = Client::connect(addr, connect(V5, &client_id_on_shard("sub", 0, 2)));
    sub.subscribe_one("t/#", QoS::ExactlyOnce);
    let mut publisher = Client::connect(addr, connect(V311, &client_id_on_shard("pub", 1, 2)));
    // 5 QoS 0 of 10 bytes, 4 QoS 1 of 20, 3 QoS 2 of 7, 2 of them retained.
    let sends = [
        (QoS::AtMostOnce, 5, 10),
        (QoS::AtLeastOnce, 4, 20),
        (QoS::ExactlyOnce, 3, 7),
    ];
    for (q, count, size) in sends {
        for i in 0..count {
            publisher.publish(&format!("t/{i}"), &vec![b'x'; size], q);
        }
    }
    publisher.publish_retained("t/r1", b"r", QoS::AtLeastOnce);
    publisher.publish_retained("t/r2", b"r", QoS::AtMostOnce);
    for _ in 0..14 {
        sub.recv_message();
    }
    let s = get_where(admin, "/api/v1/stats", |s| {
        // A retained message is stored by its topic's owner shard a moment after the
        // PUBLISH was routed.
        n(s, "publish.sent.total") == 14
            && n(s, "publish.received.total") == 14
            && n(s, "retained") >= 2
    });
    assert_eq!(n(&s, "shards"), 2);
    assert_eq!(n(&s, "connections.current"), 2);
    assert_eq!(n(&s, "connections.sessions"), 2);
    let by_version = &s["connections"]["by_version"];
    assert_eq!(
        (by_version["3.1.1"].as_u64(), by_version["5.0"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(n(&s, "publish.received.qos0"), 6);
    assert_eq!(n(&s, "publish.received.qos1"), 5);
    assert_eq!(n(&s, "publish.received.qos2"), 3);
    assert_eq!(n(&s, "publish.received_bytes.qos0"), 5 * 10 + 1);
    assert_eq!(n(&s, "publish.received_bytes.qos1"), 4 * 20 + 1);
    assert_eq!(n(&s, "publish.received_bytes.qos2"), 3 * 7);
    // Granted QoS 2: each goes out at the QoS it came in with.
    assert_eq!(n(&s, "publish.sent.qos0"), 6);
    assert_eq!(n(&s, "publish.sent.qos1"), 5);
    assert_eq!(n(&s, "publish.sent.qos2"), 3);
    assert_eq!(n(&s, "publish.sent_bytes.total"), 51 + 81 + 21);
    assert_eq!(n(&s, "subscriptions"), 1);
    // The two the test stored, and the broker's own $SYS topics once sys_interval_secs
    // has passed.
    assert!(n(&s, "retained") >= 2, "{s}");
    assert_eq!(n(&s, "drops.total"), 0);
    // The publisher is on shard 1, the subscriber on shard 0: every message crossed.
    assert_eq!(n(&s, "mesh.forwarded"), 14);
    assert_eq!(n(&s, "mesh.queued"), 0);
    assert!(n(&s, "mesh.batch.count") >= 1, "{s}");
    // The per-shard table adds up to the totals.
    let shards = s["per_shard"].as_array().expect("per_shard");
    assert_eq!(shards.len(), 2);
    let sum = |k: &str| {
        shards
            .iter()
            .map(|p| p[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(sum("connections"), 2);
    assert_eq!(sum("publish_received"), 14);
    assert_eq!(sum("publish_sent"), 14);
    assert_eq!(shards[1]["publish_received"].as_u64(), Some(14));
    assert_eq!(shards[0]["publish_sent"].as_u64(), Some(14));
    for p in shards {
        let busy = p["busy"].as_f64().expect("busy");
        assert!((0.0..=1.0).contains(&busy), "{p}");
    }
    let m = prometheus(admin);
    let at = |k: &str| {
        *m.get(k)
            .unwrap_or_else(|| panic!("{k} missing from /metrics"))
    };
    assert_eq!(at("ringmq_connections"), 2.0);
    assert_eq!(at("ringmq_connects_total{version=\"3.1.1\"}"), 1.0);
    assert_eq!(at("ringmq_connects_total{version=\"5.0\"}"), 1.0);
    assert_eq!(at("ringmq_publish_received_total{qos=\"0\"}"), 6.0);
    assert_eq!(at("ringmq_publish_received_total{qos=\"1\"}"), 5.0);
    assert_eq!(at("ringmq_publish_received_total{qos=\"2\"}"), 3.0);
    assert_eq!(at("ringmq_publish_received_bytes_total{qos=\"1\"}"), 81.0);
    assert_eq!(at("ringmq_publish_sent_total{qos=\"2\"}"), 3.0);
    assert_eq!(at("ringmq_dropped_total{reason=\"queue_full\"}"), 0.0);
    assert_eq!(at("ringmq_subscriptions"), 1.0);
    assert_eq!(at("ringmq_mesh_forwarded_total"), 14.0);
    assert_eq!(at("ringmq_shard_publish_received_total{shard=\"1\"}"), 14.0);
    assert_eq!(at("ringmq_shard_connections{shard=\"0\"}"), 1.0);
    assert_eq!(at("ringmq_build_info{version=\"0.1.0\"}"), 1.0);
    // Histogram buckets are cumulative and end at the count.
    let buckets: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with("ringmq_flush_latency_seconds_bucket"))
        .map(|(_, v)| *v)
        .collect();
    assert!(buckets.len() > 2);
    let inf = at("ringmq_flush_latency_seconds_bucket{le=\"+Inf\"}");
    assert!(buckets.iter().all(|b| *b <= inf));
    assert_eq!(inf, at("ringmq_flush_latency_seconds_count"));
    // Counters and gauges are integers here: no client can be half connected.
    assert_eq!(at("ringmq_packets_received_total").fract(), 0.0);
    drop((sub, publisher));
}

#[test]
fn a_token_guards_metrics_and_the_api_but_not_health_or_the_page_ringmq_only() {
    if skip_unless_ringmq("the admin API is ringmq's") {
        return;
    }
    let (_broker, admin) = broker(1, "s3cret-t0ken", "");
    for target in [
        "/metrics",
        "/api/v1/stats",
        "/api/v1/clients",
        "/api/v1/retained",
    ] {
        let r = http(admin, "GET", target, None);
        assert_eq!(r.status, 401, "{target} without a token");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Bearer realm=\"ringmq\"")
        );
        assert!(r.json()["error"].as_str().is_some());
        assert_eq!(http(admin, "GET", target, Some("wrong")).status, 401);
        assert_eq!(http(admin, "GET", target, Some("s3cret-t0ke")).status, 401);
        assert_eq!(
            http(admin, "GET", target, Some("s3cret-t0ken")).status,
            200,
            "{target}"
        );
    }
    // Kicking needs the token too.
    assert_eq!(http(admin, "DELETE", "/api/v1/clients/x", None).status, 401);
    let health = http(admin, "GET", "/healthz", None);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let page = http(admin, "GET", "/", None);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("chart-throughput"));
    // HEAD: the same headers, no body.
    let head = http(admin, "HEAD", "/healthz", None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some("3"));
    assert!(head.body.is_empty());
}

#[test]
fn clients_are_paged_in_order_and_a_kick_disconnects_with_0x98_ringmq_only() {
    if skip_unless_ringmq("the admin API is ringmq's") {
        return;
    }
    let (broker, admin) = broker(3, "", "");
    let addr = broker.addr();
    // 7 clients on 3 shards (ids chosen so that every shard has some), v5 and 3.1.1.
    let mut clients = Vec::new();
    for i in 0..7 {
        let id = client_id_on_shard(&format!("dev/{i}/"), i % 3, 3);
        let v = if i % 2 == 0 { V5 } else { V311 };
        let mut c = connect(v, &id);
        c.keep_alive = 30 + i as u16;
        clients.push((id.clone(), Client::connect(addr, c)));
    }
    let mut other = Client::connect(addr, connect(V5, "zz-other"));
    other.subscribe_one("x/+", QoS::AtLeastOnce);
    let mut ids: Vec<String> = clients.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    // Pages of 3 over the prefix "dev/": every client once, in order.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let target = match &after {
            None => "/api/v1/clients?limit=3&prefix=dev%2F".to_owned(),
            Some(a) => format!("/api/v1/clients?limit=3&prefix=dev%2F&after={}", encode(a)),
        };
        let page = get(admin, &target);
        assert_eq!(page["total"].as_u64(), Some(7));
        let items = page["clients"].as_array().expect("clients");
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|c| c["client_id"].as_str().unwrap_or("").to_owned()),
        );
        pages += 1;
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    // Without a prefix: 8, the default page holds them all.
    let all = get(admin, "/api/v1/clients");
    assert_eq!(all["total"].as_u64(), Some(8));
    assert!(all["next"].is_null());
    // One client: what the broker knows of its connection.
    let (id0, c0) = &clients[0];
    let one = get(admin, &format!("/api/v1/clients/{}", encode(id0)));
    assert_eq!(one["client_id"].as_str(), Some(id0.as_str()));
    assert_eq!(one["connected"].as_bool(), Some(true));
    assert_eq!(one["protocol"].as_str(), Some("5.0"));
    assert_eq!(one["keep_alive"].as_u64(), Some(30));
    assert_eq!(one["shard"].as_u64(), Some(0));
    assert_eq!(
        one["peer"].as_str(),
        Some(c0.local_addr().to_string().as_str())
    );
    let z = get(admin, "/api/v1/clients/zz-other");
    assert_eq!(z["subscriptions"].as_u64(), Some(1));
    assert_eq!(
        http(admin, "GET", "/api/v1/clients/nobody", None).status,
        404
    );
    // Kick: the v5 client gets DISCONNECT 0x98 (Administrative action), the 3.1.1 one is
    // closed; the others stay.
    let (v5_id, mut v5_client) = clients.remove(0);
    let (v3_id, mut v3_client) = clients.remove(0);
    let kicked = http(
        admin,
        "DELETE",
        &format!("/api/v1/clients/{}", encode(&v5_id)),
        None,
    );
    assert_eq!(kicked.status, 200, "{}", kicked.body);
    assert_eq!(kicked.json()["kicked"].as_bool(), Some(true));
    v5_client.expect_disconnect(0x98);
    v5_client.expect_closed(TIMEOUT);
    let kicked = http(
        admin,
        "DELETE",
        &format!("/api/v1/clients/{}", encode(&v3_id)),
        None,
    );
    assert_eq!(kicked.status, 200);
    v3_client.expect_closed(TIMEOUT);
    // Gone (clean sessions): nothing left to kick.
    let again = http(
        admin,
        "DELETE",
        &format!("/api/v1/clients/{}", encode(&v5_id)),
        None,
    );
    assert_eq!(again.status, 404);
    let left = get_where(admin, "/api/v1/clients?prefix=dev%2F", |v| v["total"] == 5);
    assert_eq!(left["total"].as_u64(), Some(5));
    other.ping();
}

#[test]
fn subscriptions_and_retained_messages_are_listed_as_clients_made_them_ringmq_only() {
    if skip_unless_ringmq("the admin API is ringmq's") {
        return;
    }
    // $SYS every second: its retained topics exist, and "#" must not list them.
    let (broker, admin) = broker(2, "", "[mqtt]\nsys_interval_secs = 1\n");
    let addr = broker.addr();
    let mut a = Client::connect(addr, connect(V5, "a-client"));
    let mut s = subscribe(1, &[("b/+/c", qos(1)), ("a/#", qos(0))]);
    s.properties.subscription_identifier = SubscriptionId::new(42);
    s.subscriptions[0].options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    a.send_mqtt(&Packet::Subscribe(s));
    a.recv_matching("SUBACK", |p| matches!(p, Packet::SubAck(_)));
    let mut b = Client::connect(addr, connect(V311, "b-client"));
    b.subscribe_one("a/1", QoS::ExactlyOnce);
    let subs = get(admin, "/api/v1/subscriptions");
    assert_eq!(subs["total"].as_u64(), Some(3));
    let list = subs["subscriptions"].as_array().expect("subscriptions");
    let keys: Vec<(String, String)> = list
        .iter()
        .map(|s| {
            (
                s["client_id"].as_str().unwrap_or("").into(),
                s["filter"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let expect = [
        ("a-client", "a/#"),
        ("a-client", "b/+/c"),
        ("b-client", "a/1"),
    ];
    assert_eq!(keys, expect.map(|(c, f)| (c.to_owned(), f.to_owned())));
    let bc = &list[1];
    assert_eq!(bc["qos"].as_u64(), Some(1));
    assert_eq!(bc["no_local"].as_bool(), Some(true));
    assert_eq!(bc["retain_as_published"].as_bool(), Some(true));
    assert_eq!(bc["retain_handling"].as_u64(), Some(2));
    assert_eq!(bc["subscription_id"].as_u64(), Some(42));
    assert!(list[2]["subscription_id"].is_null());
    assert_eq!(list[2]["qos"].as_u64(), Some(2));
    // Paged by one: the cursor walks the same three.
    let first = get(admin, "/api/v1/subscriptions?limit=1");
    let cursor = first["next"].as_str().expect("a next cursor").to_owned();
    let second = get(
        admin,
        &format!("/api/v1/subscriptions?limit=2&after={}", encode(&cursor)),
    );
    assert_eq!(second["subscriptions"][0]["filter"].as_str(), Some("b/+/c"));
    assert_eq!(second["subscriptions"][1]["filter"].as_str(), Some("a/1"));
    assert!(second["next"].is_null());
    let only_b = get(admin, "/api/v1/subscriptions?client_id=b-client");
    assert_eq!(only_b["total"].as_u64(), Some(1));
    // Retained: three topics, one with a payload that is not UTF-8.
    b.publish_retained("r/one", b"first", QoS::AtLeastOnce);
    b.publish_retained("r/two", &[0xff, 0x00, 0x41], QoS::AtLeastOnce);
    b.publish_retained("q/three", b"3", QoS::AtMostOnce);
    let all = get_where(admin, "/api/v1/retained", |v| v["total"] == 3);
    let topics: Vec<&str> = all["retained"]
        .as_array()
        .expect("retained")
        .iter()
        .filter_map(|r| r["topic"].as_str())
        .collect();
    assert_eq!(topics, ["q/three", "r/one", "r/two"]);
    let r = get(admin, "/api/v1/retained?filter=r%2F%2B");
    assert_eq!(r["total"].as_u64(), Some(2));
    let one = &r["retained"][0];
    assert_eq!(one["payload"].as_str(), Some("first"));
    assert_eq!(one["qos"].as_u64(), Some(1));
    let two = &r["retained"][1];
    assert!(two["payload"].is_null(), "{two}");
    assert_eq!(two["payload_base64"].as_str(), Some("/wBB"));
    assert_eq!(two["payload_bytes"].as_u64(), Some(3));
    // The broker's own $SYS topics are there, under a filter that names them.
    let sys = get_where(admin, "/api/v1/retained?filter=%24SYS%2F%23", |v| {
        v["total"].as_u64().unwrap_or(0) > 0
    });
    let sys_topics = sys["retained"].as_array().expect("retained");
    assert!(
        sys_topics
            .iter()
            .any(|r| r["topic"] == "$SYS/broker/uptime"),
        "{sys}"
    );
    drop((a, b));
}

#[test]
fn bad_requests_get_a_json_error_and_a_status_ringmq_only() {
    if skip_unless_ringmq("the admin API is ringmq's") {
        return;
    }
    let (_broker, admin) = broker(1, "", "");
    let cases = [
        ("GET", "/nope", 404),
        ("GET", "/api/v2/stats", 404),
        ("POST", "/metrics", 405),
        ("PUT", "/api/v1/clients/x", 405),
        ("GET", "/api/v1/clients?limit=0", 400),
        ("GET", "/api/v1/clients?limit=1001", 400),
        ("GET", "/api/v1/clients?limit=ten", 400),
        ("GET", "/api/v1/retained?filter=a%2F%23%2Fb", 400),
        ("GET", "/api/v1/subscriptions?after=no-cursor", 400),
    ];
    for (method, target, status) in cases {
        let r = http(admin, method, target, None);
        assert_eq!(r.status, status, "{method} {target}: {}", r.body);
        assert!(r.json()["error"].as_str().is_some(), "{method} {target}");
    }
    let r = http(admin, "POST", "/metrics", None);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    // A malformed request line closes that connection only.
    let mut s = TcpStream::connect(admin).expect("connect");
    s.write_all(b"\x16\x03\x01 garbage\r\n\r\n").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
    assert_eq!(http(admin, "GET", "/healthz", None).status, 200);
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

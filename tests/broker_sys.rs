//! `$SYS/broker/...` topics: Mosquitto's names and meanings, published every
//! `mqtt.sys_interval_secs` as retained messages, with values merged over every shard.
//!
//! Which values include the broker's own `$SYS` traffic: `messages/sent`, `bytes/sent`,
//! `publish/messages/sent` and `publish/bytes/sent` count the `$SYS` deliveries to the
//! monitoring client, and `retained messages/count` the retained `$SYS` topics themselves.
//! The received counts only count what clients sent, so they are checked exactly.

pub mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Packet, QoS};

const SHARDS: usize = 4;

/// One publication of the `$SYS` tree: topic (after `$SYS/broker/`) to payload.
type Tick = HashMap<String, String>;

fn sys_broker() -> Broker {
    Broker::start(
        BrokerOptions::default()
            .shards(SHARDS)
            .config("[mqtt]\nsys_interval_secs = 1\n", "sys_interval 1\n"),
    )
}

/// Reads live `$SYS` messages (not the retained copies a SUBSCRIBE brings) until a
/// complete tick (from `version` to the last load topic) satisfies `done`, within `limit`.
fn tick_where(m: &mut Client, limit: Duration, done: impl Fn(&Tick) -> bool) -> Tick {
    let deadline = Instant::now() + limit;
    let mut tick: Option<Tick> = None;
    while Instant::now() < deadline {
        let Some(Packet::Publish(p)) = m.try_recv(Duration::from_millis(200)) else {
            continue;
        };
        if p.retain {
            continue;
        }
        let Some(name) = p.topic.as_str().strip_prefix("$SYS/broker/") else {
            continue;
        };
        if name == "version" {
            tick = Some(Tick::new());
        }
        if let Some(t) = tick.as_mut() {
            t.insert(name.to_owned(), text(&p));
            if name == "load/connections/15min" {
                if done(t) {
                    return std::mem::take(t);
                }
                tick = None;
            }
        }
    }
    panic!("no complete $SYS tick as expected within {limit:?}");
}

fn num(t: &Tick, name: &str) -> u64 {
    let v = t
        .get(name)
        .unwrap_or_else(|| panic!("no $SYS/broker/{name}"));
    v.parse()
        .unwrap_or_else(|_| panic!("{name}: {v:?} is not a count"))
}

fn uptime(t: &Tick) -> u64 {
    let v = &t["uptime"];
    let secs = v.strip_suffix(" seconds").expect("uptime is \"N seconds\"");
    secs.parse().expect("uptime seconds")
}

#[test]
fn sys_topics_are_retained_with_version_and_a_rising_uptime_ringmq_only() {
    if skip_unless_ringmq("Mosquitto publishes only changed $SYS values") {
        return;
    }
    let broker = sys_broker();
    let mut m = broker.client(V311, "sys-monitor");
    m.subscribe_one("$SYS/#", qos(0));
    let a = tick_where(&mut m, Duration::from_secs(5), |_| true);
    let b = tick_where(&mut m, Duration::from_secs(5), |_| true);
    // Just after a publication (the next is an interval away), a new subscriber gets the
    // retained tree at once.
    let mut late = broker.client(V311, "sys-late");
    late.subscribe_one("$SYS/#", qos(0));
    let first = late.recv_publish();
    assert!(
        first.topic.as_str().starts_with("$SYS/broker/"),
        "{first:?}"
    );
    assert!(first.retain, "$SYS topics are retained: {first:?}");
    assert_eq!(
        a["version"],
        format!("ringmq version {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        uptime(&b) > uptime(&a),
        "{} then {}",
        a["uptime"],
        b["uptime"]
    );
}

#[test]
fn sys_counts_merge_traffic_of_every_shard_ringmq_only() {
    if skip_unless_ringmq("exact $SYS counts follow ringmq's counting") {
        return;
    }
    let broker = sys_broker();
    let id = |name: &str, shard: usize| client_id_on_shard(name, shard, SHARDS);
    // A subscriber and two publishers, each homed on a different shard.
    let mut sub = broker.client(V5, &id("sub", 3));
    sub.subscribe_one("t/#", qos(2));
    let mut a = broker.client(V311, &id("pub-a", 1));
    let mut b = broker.client(V5, &id("pub-b", 2));
    // 5 x QoS 0 of 10 bytes (the first retained), 3 x QoS 1 of 100, 2 x QoS 2 of 1000.
    a.publish_retained("t/r", &[b'r'; 10], QoS::AtMostOnce);
    for _ in 0..4 {
        a.publish("t/a", &[b'a'; 10], QoS::AtMostOnce);
    }
    for _ in 0..3 {
        b.publish("t/b", &[b'b'; 100], QoS::AtLeastOnce);
    }
    for _ in 0..2 {
        b.publish("t/b", &[b'c'; 1000], QoS::ExactlyOnce);
    }
    for _ in 0..10 {
        sub.recv_message();
    }
    let mut m = broker.client(V311, &id("monitor", 0));
    m.subscribe_one("$SYS/#", qos(0));
    // A tick after the monitor subscribed, and not the first (whose snapshot was taken
    // before any $SYS topic was retained).
    let t = tick_where(&mut m, Duration::from_secs(5), |t| {
        num(t, "subscriptions/count") == 2 && uptime(t) >= 2
    });
    assert_eq!(num(&t, "publish/messages/received"), 10);
    assert_eq!(
        num(&t, "publish/bytes/received"),
        5 * 10 + 3 * 100 + 2 * 1000
    );
    assert_eq!(num(&t, "clients/connected"), 4);
    assert_eq!(num(&t, "clients/total"), 4);
    assert!(num(&t, "clients/maximum") >= 4);
    // Every packet from a client: a 6 (CONNECT, 5 PUBLISH), b 8 (CONNECT, 5 PUBLISH,
    // 2 PUBREL), sub 9 (CONNECT, SUBSCRIBE, 3 PUBACK, 2 PUBREC, 2 PUBCOMP), monitor 2.
    assert_eq!(num(&t, "messages/received"), 25);
    assert!(num(&t, "bytes/received") > num(&t, "publish/bytes/received"));
    // At least the 10 deliveries to `sub`, and the $SYS ones to the monitor.
    assert!(num(&t, "publish/messages/sent") > 10);
    assert!(num(&t, "publish/bytes/sent") > 2350);
    assert!(num(&t, "messages/sent") > num(&t, "publish/messages/sent"));
    assert_eq!(num(&t, "publish/messages/dropped"), 0);
    // The user's retained message and every retained $SYS topic (of the previous tick: the
    // same set).
    assert_eq!(num(&t, "retained messages/count"), 1 + t.len() as u64);
    assert_eq!(
        num(&t, "messages/stored"),
        num(&t, "retained messages/count")
    );
    let load = |name: &str| -> f64 { t[name].parse().expect("a load is a decimal") };
    assert!(load("load/publish/received/1min") > 0.0);
    assert!(load("load/connections/1min") > 0.0);
    assert!(load("load/publish/dropped/1min") == 0.0);
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn sys_topics_stay_out_of_the_log_and_do_not_outlive_a_restart_ringmq_only() {
    if skip_unless_ringmq("ringmq keeps its $SYS tree in memory only") {
        return;
    }
    let mut broker = sys_broker();
    let mut c = broker.client(V311, "sys-keeper");
    c.publish_retained("keep/me", b"kept", qos(1));
    c.subscribe_one("$SYS/broker/uptime", qos(0));
    // Several ticks, the last at 4 s of uptime or more.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let p = c.recv_publish();
        let up: u64 = text(&p)
            .trim_end_matches(" seconds")
            .parse()
            .expect("uptime");
        if up >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "uptime stuck at {up}");
    }
    drop(c);
    broker.stop();
    let mut files = Vec::new();
    files_under(&broker.data_path(), &mut files);
    // The control: the client's retained message is in the log.
    assert!(
        files.iter().any(|(_, b)| contains(b, b"keep/me")),
        "the retained message the client sent is not in any file under {}",
        broker.data_path().display()
    );
    for (path, bytes) in &files {
        assert!(
            !contains(bytes, b"$SYS/broker/"),
            "{} holds a $SYS topic",
            path.display()
        );
    }
    let restarted = Instant::now();
    broker.restart();
    let mut c = broker.client(V311, "sys-keeper");
    c.subscribe_one("keep/me", qos(1));
    let kept = c.recv_message();
    assert_eq!(text(&kept), "kept");
    // The first uptime a subscriber sees is this run's: the old run's (4 s or more) did not
    // come back from anywhere.
    c.subscribe_one("$SYS/broker/uptime", qos(0));
    let p = c.recv_publish();
    let up: u64 = text(&p)
        .trim_end_matches(" seconds")
        .parse()
        .expect("uptime");
    assert!(
        up <= restarted.elapsed().as_secs() + 1,
        "uptime {up} s, {:?} after the restart began",
        restarted.elapsed()
    );
}

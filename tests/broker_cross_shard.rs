//! Cross-shard routing against a broker with four shards.
//!
//! A test cannot pick a client's shard: ringmq homes each client on hash(client id) mod
//! shards. So these tests use many client ids (8 publishers, 8 subscribers, 200 one-shot
//! subscribers), and the pairs between them span every pair of shards; with one shard, as
//! under Mosquitto, they must pass all the same.

pub mod common;

use std::collections::{BTreeMap, VecDeque};
use std::thread;
use std::time::Duration;

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion};

const SHARDS: usize = 4;
const QUIET: Duration = Duration::from_millis(200);

fn version(i: usize) -> ProtocolVersion {
    if i % 2 == 0 {
        V311
    } else {
        V5
    }
}

// [MQTT-4.6.0-5] (3.1.1) (5.0) and Promise 2 of the design: 8 publishers and 8 subscribers with different
// client ids (both protocol versions); every publisher sends 5 messages to every
// subscriber's own topic and 5 to a topic all share, at QoS 1 or 2. Each subscriber gets
// each message exactly once, every publisher's messages in order.
#[test]
fn publishers_and_subscribers_on_all_shards_exchange_messages_mqtt_4_6_0_5() {
    const PEERS: usize = 8;
    const EACH: usize = 5;
    let broker = Broker::with_shards(SHARDS);
    let mut subs: Vec<Client> = (0..PEERS)
        .map(|i| {
            let mut s = broker.client(version(i), &format!("xs-sub-{i}"));
            s.subscribe(&[(&format!("xs/{i}"), qos(2)), ("xs/all", qos(2))]);
            s
        })
        .collect();
    let mut pubs: Vec<Client> = (0..PEERS)
        .map(|j| broker.client(version(j + 1), &format!("xs-pub-{j}")))
        .collect();
    for (j, p) in pubs.iter_mut().enumerate() {
        let q = qos(1 + (j % 2) as u8);
        for seq in 0..EACH {
            for i in 0..PEERS {
                p.publish(&format!("xs/{i}"), format!("{j} {seq}").as_bytes(), q);
            }
            p.publish("xs/all", format!("{j} {seq}").as_bytes(), q);
        }
    }
    for (i, s) in subs.iter_mut().enumerate() {
        // topic -> publisher -> sequence numbers received
        let mut got: BTreeMap<String, BTreeMap<usize, Vec<usize>>> = BTreeMap::new();
        for _ in 0..2 * PEERS * EACH {
            let p = s.recv_message();
            let t = text(&p);
            let (j, seq) = t.split_once(' ').expect("publisher and sequence");
            got.entry(p.topic.as_str().to_owned())
                .or_default()
                .entry(j.parse().expect("publisher"))
                .or_default()
                .push(seq.parse().expect("sequence"));
        }
        s.expect_nothing(QUIET);
        for topic_name in [format!("xs/{i}"), "xs/all".to_owned()] {
            let per_pub = got.get(&topic_name).cloned().unwrap_or_default();
            for j in 0..PEERS {
                assert_eq!(
                    per_pub.get(&j).cloned().unwrap_or_default(),
                    (0..EACH).collect::<Vec<_>>(),
                    "subscriber {i}, topic {topic_name}, publisher {j}: once each, in order"
                );
            }
        }
    }
}

// [MQTT-4.6.0-5] (3.1.1) (5.0) 10,000 QoS 1 messages from one publisher (pipelined, 16 unacknowledged at a
// time) reach each of four subscribers with other client ids in publish order, none lost
// and none twice.
#[test]
fn ten_thousand_qos1_messages_arrive_in_order_across_shards_mqtt_4_6_0_5() {
    const N: usize = 10_000;
    const SUBSCRIBERS: usize = 4;
    const WINDOW: usize = 16;
    let broker = Broker::with_shards(SHARDS);
    let subscribers: Vec<Client> = (0..SUBSCRIBERS)
        .map(|k| {
            let mut s = broker.client(version(k), &format!("order-sub-{k}"));
            s.subscribe_one("order/t", qos(1));
            s
        })
        .collect();
    let readers: Vec<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(k, mut s)| {
            thread::Builder::new()
                .name(format!("order-sub-{k}"))
                .spawn(move || {
                    for i in 0..N {
                        let p = s.recv_message();
                        assert_eq!(
                            text(&p),
                            i.to_string(),
                            "subscriber {k}: message {i} out of order or lost"
                        );
                    }
                    s.expect_nothing(QUIET);
                })
                .expect("spawn subscriber")
        })
        .collect();

    let mut publisher = broker.client(V311, "order-pub");
    let mut unacked = VecDeque::new();
    for i in 0..N {
        if unacked.len() == WINDOW {
            let id = unacked.pop_front().expect("non-empty window");
            publisher.recv_matching(
                "PUBACK",
                |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
            );
        }
        let id = publisher.next_packet_id();
        publisher.send_mqtt(&Packet::Publish(publish(
            "order/t",
            i.to_string().as_bytes(),
            qos(1),
            id,
        )));
        unacked.push_back(packet_id(id));
    }
    for id in unacked {
        publisher.recv_matching(
            "PUBACK",
            |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
        );
    }
    let failures: Vec<String> = readers
        .into_iter()
        .filter_map(|r| r.join().err())
        .map(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
        .collect();
    assert!(failures.is_empty(), "subscribers failed: {failures:?}");
}

// Promise 2 of the design: a message published after SUBACK reaches the new subscriber,
// wherever it was published. 200 times: a new client subscribes to a fresh topic and, as
// soon as its SUBACK arrives, one of 8 publishers (other client ids) publishes there once
// at QoS 1. Not one message may be lost.
#[test]
fn subscribe_then_publish_race_loses_no_message() {
    const ROUNDS: usize = 200;
    const PUBLISHERS: usize = 8;
    let broker = Broker::with_shards(SHARDS);
    let mut pubs: Vec<Client> = (0..PUBLISHERS)
        .map(|j| broker.client(version(j), &format!("race-pub-{j}")))
        .collect();
    for i in 0..ROUNDS {
        let mut sub = broker.client(version(i / PUBLISHERS), &format!("race-sub-{i}"));
        let t = format!("race/{i}");
        sub.subscribe_one(&t, qos(1));
        pubs[i % PUBLISHERS].publish(&t, format!("{i}").as_bytes(), qos(1));
        let p = sub.recv_message();
        assert_eq!(message(&p), (t, i.to_string()), "round {i}");
        sub.disconnect();
    }
}

// Sections 4.7.1.2 and 4.7.1.3: wildcard subscriptions are routed across shards too. 8
// subscribers split between `cw/#`, `cw/+/x` and `cw/a/x` each get all 50 messages of a
// publisher on `cw/a/x`, once each and in order: the message is added to the session of
// every client with a matching subscription [MQTT-4.5.0-1] (3.1.1) (5.0).
#[test]
fn wildcard_subscribers_on_all_shards_receive_each_message_once() {
    const N: usize = 50;
    let broker = Broker::with_shards(SHARDS);
    let filters = ["cw/#", "cw/+/x", "cw/a/x"];
    let mut subs: Vec<Client> = (0..8)
        .map(|i| {
            let mut s = broker.client(version(i), &format!("cw-sub-{i}"));
            s.subscribe_one(filters[i % filters.len()], qos(1));
            s
        })
        .collect();
    let mut publisher = broker.client(V5, "cw-pub");
    for n in 0..N {
        publisher.publish("cw/a/x", n.to_string().as_bytes(), qos(1));
    }
    for (i, s) in subs.iter_mut().enumerate() {
        for n in 0..N {
            assert_eq!(text(&s.recv_message()), n.to_string(), "subscriber {i}");
        }
        s.expect_nothing(QUIET);
    }
}

// [MQTT-3.10.4-2] (3.1.1) (5.0) An UNSUBSCRIBE takes effect on every shard: after 8 subscribers with
// different ids unsubscribed, no publisher's message on the topic reaches any of them (each
// publisher's fence message, sent after it, arrives alone).
#[test]
fn unsubscribe_stops_delivery_from_every_shard_mqtt_3_10_4_2() {
    const PUBLISHERS: usize = 4;
    let broker = Broker::with_shards(SHARDS);
    let mut subs: Vec<Client> = (0..8)
        .map(|i| {
            let mut s = broker.client(version(i), &format!("cu-sub-{i}"));
            s.subscribe(&[("cu/t", qos(1)), ("fence/end", qos(1))]);
            s.unsubscribe(&["cu/t"]);
            s
        })
        .collect();
    for j in 0..PUBLISHERS {
        let mut p = broker.client(version(j), &format!("cu-pub-{j}"));
        p.publish("cu/t", b"unsubscribed", qos(1));
        p.publish("fence/end", format!("{j}").as_bytes(), qos(1));
    }
    for (i, s) in subs.iter_mut().enumerate() {
        for _ in 0..PUBLISHERS {
            let p = s.recv_message();
            assert_eq!(p.topic.as_str(), "fence/end", "subscriber {i} got {p:?}");
        }
        s.expect_nothing(QUIET);
    }
}

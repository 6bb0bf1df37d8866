//! Pushback: a subscriber that cannot keep up holds back the acknowledgements of the QoS 1/2
//! messages queued for it, so publishers slow down instead of overflowing its queue and
//! losing acknowledged messages. ringmq behaviour (`limits.queued_messages_pushback`,
//! `limits.pushback_wait_ms`): Mosquitto queues without limit instead, so these tests only
//! run against ringmq.
//!
//! The subscribers here connect with Receive Maximum 1 and acknowledge only when the test
//! says, so the queue lengths are exact: with N messages published and k acknowledged, the
//! subscriber has one in flight and N - 1 - k queued.

pub mod common;

use std::num::NonZeroU16;
use std::time::Duration;

use common::*;
use ringmq::protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use ringmq::shard::mesh::stable_hash;

const QUIET: Duration = Duration::from_millis(300);

/// A client id whose home is `shard` of `shards`.
fn id_on_shard(prefix: &str, shard: usize, shards: usize) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| stable_hash(id.as_bytes()) % shards as u64 == shard as u64)
        .expect("some id hashes to every shard")
}

/// A v5 subscriber to `topic_filter` that takes one unacknowledged message at a time.
fn slow_subscriber(broker: &Broker, client_id: &str, topic_filter: &str, q: QoS) -> Client {
    let mut c = connect(V5, client_id);
    c.properties.receive_maximum = NonZeroU16::new(1);
    let mut sub = Client::connect(broker.addr(), c);
    sub.subscribe_one(topic_filter, q);
    sub
}

/// PUBLISHes `ids` to `topic_name` in one write; the payload is the id.
fn publish_burst(publ: &mut Client, topic_name: &str, q: QoS, ids: std::ops::RangeInclusive<u16>) {
    let v = publ.version;
    let mut bytes = Vec::new();
    for i in ids {
        let p = publish(topic_name, i.to_string().as_bytes(), q, i);
        bytes.extend(encode(&Packet::Publish(p), v));
    }
    publ.send(&bytes);
}

/// The publisher's next packet is the acknowledgement (PUBACK for QoS 1, PUBREC for QoS 2)
/// of packet id `id`.
fn expect_ack(publ: &mut Client, q: QoS, id: u16) {
    match (q, publ.recv()) {
        (QoS::AtLeastOnce, Packet::PubAck(a)) | (QoS::ExactlyOnce, Packet::PubRec(a)) => {
            assert_eq!(a.packet_id.get(), id, "acknowledgements in PUBLISH order");
            assert!(a.reason.is_success(), "{a:?}");
        }
        (_, other) => panic!("expected the acknowledgement of {id} at {q:?}, got {other:?}"),
    }
}

/// Receives the subscriber's next message, checks it is `n`, and acknowledges it.
fn take(sub: &mut Client, n: u16) {
    let p = sub.recv_message();
    assert_eq!(text(&p), n.to_string(), "messages in order, none lost");
}

/// [MQTT-4.6.0-6] (3.1.1) (acknowledgements in the order of the PUBLISHes) with pushback at
/// 10 queued messages: 30 messages to a subscriber that has acknowledged none. The first 10
/// are acknowledged at once; the 11th fills the queue to the mark, so its acknowledgement
/// and every later one wait until the subscriber has drained its queue to 5. Nothing is
/// lost, nothing is reordered.
fn slow_subscriber_holds_back_acknowledgements(
    publisher: ProtocolVersion,
    q: QoS,
    shards: usize,
    cross_shard: bool,
) {
    if skip_unless_ringmq("pushback is ringmq's flow control") {
        return;
    }
    let broker = Broker::start(BrokerOptions::default().shards(shards).config(
        "[limits]\nqueued_messages_pushback = 10\npushback_wait_ms = 60000\n",
        "",
    ));
    let sub_id = id_on_shard("pb-sub", 0, shards);
    let pub_id = id_on_shard("pb-pub", usize::from(cross_shard), shards);
    let mut sub = slow_subscriber(&broker, &sub_id, "pb/t", q);
    let mut publ = broker.client(publisher, &pub_id);

    publish_burst(&mut publ, "pb/t", q, 1..=30);
    for id in 1..=10 {
        expect_ack(&mut publ, q, id);
    }
    publ.expect_nothing(QUIET);
    // 29 queued behind the one in flight; 23 acknowledged leaves 6, above the low mark.
    for n in 1..=23 {
        take(&mut sub, n);
    }
    publ.expect_nothing(QUIET);
    // The 24th leaves 5 queued: every held acknowledgement goes, in order.
    take(&mut sub, 24);
    for id in 11..=30 {
        expect_ack(&mut publ, q, id);
    }
    for n in 25..=30 {
        take(&mut sub, n);
    }
    sub.expect_nothing(QUIET);
    if q == QoS::ExactlyOnce {
        for id in 1..=30 {
            publ.send_mqtt(&Packet::PubRel(ringmq::protocol::Ack::new(packet_id(id))));
            match publ.recv() {
                Packet::PubComp(c) => assert_eq!(c.packet_id.get(), id),
                other => panic!("expected PUBCOMP {id}, got {other:?}"),
            }
        }
    }
}

// [MQTT-4.6.0-6]: see `slow_subscriber_holds_back_acknowledgements`.
#[test]
fn pushback_qos1_v311_publisher_same_shard_mqtt_4_6_0_6() {
    slow_subscriber_holds_back_acknowledgements(V311, QoS::AtLeastOnce, 1, false);
}

#[test]
fn pushback_qos2_v5_publisher_same_shard() {
    slow_subscriber_holds_back_acknowledgements(V5, QoS::ExactlyOnce, 1, false);
}

#[test]
fn pushback_qos1_v5_publisher_other_shard() {
    slow_subscriber_holds_back_acknowledgements(V5, QoS::AtLeastOnce, 2, true);
}

// [MQTT-4.6.0-6]: see `slow_subscriber_holds_back_acknowledgements`.
#[test]
fn pushback_qos2_v311_publisher_other_shard() {
    slow_subscriber_holds_back_acknowledgements(V311, QoS::ExactlyOnce, 2, true);
}

/// A subscriber that never acknowledges holds publishers back for `pushback_wait_ms` once,
/// then counts as stalled: acknowledgements flow again, and what exceeds its queue
/// (`queued_messages_max`) is dropped for it alone, while another subscriber of the same
/// topic gets everything.
#[test]
fn a_stuck_subscriber_holds_publishers_back_once_then_drops_its_overflow() {
    if skip_unless_ringmq("pushback is ringmq's flow control") {
        return;
    }
    let broker = Broker::start(BrokerOptions::default().config(
        "[limits]\nqueued_messages_max = 20\nqueued_messages_pushback = 10\npushback_wait_ms = 500\n",
        "",
    ));
    let mut stuck = slow_subscriber(&broker, "pb-stuck", "pb/s", QoS::AtLeastOnce);
    let mut healthy = broker.client(V311, "pb-healthy");
    healthy.subscribe_one("pb/s", QoS::AtLeastOnce);
    let mut publ = broker.client(V311, "pb-pub");
    let q = QoS::AtLeastOnce;

    publish_burst(&mut publ, "pb/s", q, 1..=15);
    for id in 1..=10 {
        expect_ack(&mut publ, q, id);
    }
    publ.expect_nothing(Duration::from_millis(150));
    // After the wait the stuck subscriber is stalled: the rest are acknowledged...
    for id in 11..=15 {
        expect_ack(&mut publ, q, id);
    }
    // ...and so is everything after, without waiting again.
    publish_burst(&mut publ, "pb/s", q, 16..=35);
    for id in 16..=35 {
        expect_ack(&mut publ, q, id);
    }
    for n in 1..=35 {
        take(&mut healthy, n);
    }
    // The stuck one kept 1 in flight and 20 queued; 14 were dropped for it.
    for n in 1..=21 {
        take(&mut stuck, n);
    }
    stuck.expect_nothing(QUIET);
}

/// [MQTT-3.3.4-7]: while acknowledgements are held back, a v5 publisher that sends more
/// unacknowledged QoS 1/2 PUBLISHes than the Receive Maximum the server gave it is
/// disconnected with 0x93.
#[test]
fn a_v5_publisher_beyond_receive_maximum_while_held_back_gets_0x93_mqtt_3_3_4_7() {
    if skip_unless_ringmq("pushback is ringmq's flow control") {
        return;
    }
    let broker = Broker::start(BrokerOptions::default().config(
        "[limits]\ninflight_count_max = 4\nqueued_messages_pushback = 2\npushback_wait_ms = 60000\n",
        "",
    ));
    let _sub = slow_subscriber(&broker, "pb-rm-sub", "pb/rm", QoS::AtLeastOnce);
    let mut publ = broker.client(V5, "pb-rm-pub");
    assert_eq!(
        publ.connack.properties.receive_maximum.map(NonZeroU16::get),
        Some(4)
    );
    // 1 goes out, 2 is queued, 3 fills the queue to the mark: 3..=6 are held (4 = the
    // Receive Maximum), so 7 is one too many.
    publish_burst(&mut publ, "pb/rm", QoS::AtLeastOnce, 1..=7);
    expect_ack(&mut publ, QoS::AtLeastOnce, 1);
    expect_ack(&mut publ, QoS::AtLeastOnce, 2);
    publ.expect_disconnect(ReasonCode::ReceiveMaximumExceeded as u8);
}

/// A v3.1.1 publisher has no Receive Maximum: past `inflight_count_max` held
/// acknowledgements the server stops reading from it (TCP slows it down) and resumes when
/// they go, without closing the connection or losing a message.
#[test]
fn a_v311_publisher_far_ahead_is_paused_not_disconnected() {
    if skip_unless_ringmq("pushback is ringmq's flow control") {
        return;
    }
    let broker = Broker::start(BrokerOptions::default().config(
        "[limits]\ninflight_count_max = 4\nqueued_messages_pushback = 2\npushback_wait_ms = 60000\n",
        "",
    ));
    let mut sub = slow_subscriber(&broker, "pb-pause-sub", "pb/p", QoS::AtLeastOnce);
    let mut fast = broker.client(V311, "pb-pause-fast");
    fast.subscribe_one("pb/p", QoS::AtLeastOnce);
    let mut publ = broker.client(V311, "pb-pause-pub");
    publish_burst(&mut publ, "pb/p", QoS::AtLeastOnce, 1..=12);
    expect_ack(&mut publ, QoS::AtLeastOnce, 1);
    expect_ack(&mut publ, QoS::AtLeastOnce, 2);
    publ.expect_nothing(QUIET);
    // 3..=6 are held (4 = inflight_count_max): the broker reads no further, so even a
    // subscriber that keeps up gets only 1..=6 for now.
    for n in 1..=6 {
        take(&mut fast, n);
    }
    fast.expect_nothing(QUIET);
    for n in 1..=12 {
        take(&mut sub, n);
    }
    for n in 7..=12 {
        take(&mut fast, n);
    }
    for id in 3..=12 {
        expect_ack(&mut publ, QoS::AtLeastOnce, id);
    }
    sub.expect_nothing(QUIET);
}

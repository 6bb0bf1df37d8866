use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::message::Message;
use crate::protocol::{
    decode, Decoded, ProtocolVersion, PublishProperties, TopicName, MAX_PACKET_BYTES,
};

const LIMITS: SessionLimits = SessionLimits {
    queued_messages_max: 3,
    queued_bytes_max: 1 << 20,
    inflight_count_max: 2,
    pushback_messages: 2,
};

fn message(n: u8) -> Rc<Message> {
    Rc::new(Message {
        topic: TopicName::try_from("t").unwrap(),
        payload: Bytes::from(vec![n]),
        qos: QoS::ExactlyOnce,
        retain: false,
        properties: PublishProperties::default(),
        origin: Arc::from("pub"),
        received_at: Instant::now(),
    })
}

fn delivery(n: u8, qos: QoS) -> Delivery {
    Delivery {
        message: message(n),
        qos,
        retain: false,
        subscription_ids: Vec::new(),
    }
}

fn outbox() -> Rc<Outbox> {
    Rc::new(Outbox::new(ProtocolVersion::V3_1_1, 1 << 20))
}

/// Everything the outbox holds, decoded.
fn sent(out: &Outbox) -> Vec<Packet> {
    let mut buf = BytesMut::new();
    out.take_into(&mut buf);
    let mut packets = Vec::new();
    while let Ok(Decoded::Packet(p)) =
        decode(&mut buf, Some(ProtocolVersion::V3_1_1), MAX_PACKET_BYTES)
    {
        packets.push(p);
    }
    assert!(buf.is_empty());
    packets
}

fn publishes(packets: &[Packet]) -> Vec<(u8, Option<u16>, bool)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((p.payload[0], p.packet_id.map(PacketId::get), p.dup)),
            _ => None,
        })
        .collect()
}

fn session() -> Session {
    Session::new(Arc::from("c"), LIMITS)
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

#[test]
fn window_limits_inflight_and_acks_refill_in_order() {
    let mut s = session();
    let out = outbox();
    s.attach(out.clone(), None, None);
    for n in 0..4 {
        s.deliver(delivery(n, QoS::AtLeastOnce));
    }
    assert_eq!(
        publishes(&sent(&out)),
        [(0, Some(1), false), (1, Some(2), false)]
    );
    assert_eq!((s.inflight_len(), s.pending_len()), (2, 2));
    s.on_puback(pid(1)).unwrap();
    assert_eq!(publishes(&sent(&out)), [(2, Some(3), false)]);
    s.on_puback(pid(3)).unwrap();
    s.on_puback(pid(2)).unwrap();
    assert_eq!(publishes(&sent(&out)), [(3, Some(4), false)]);
    assert_eq!(s.pending_len(), 0);
}

#[test]
fn client_receive_maximum_caps_the_window() {
    let mut s = session();
    let out = outbox();
    s.attach(out.clone(), Some(1), None);
    s.deliver(delivery(0, QoS::AtLeastOnce));
    s.deliver(delivery(1, QoS::AtLeastOnce));
    assert_eq!(publishes(&sent(&out)).len(), 1);
}

#[test]
fn pending_queue_is_bounded_and_counts_drops() {
    let mut s = session();
    for n in 0..5 {
        s.deliver(delivery(n, QoS::AtLeastOnce));
    }
    assert_eq!(s.pending_len(), 3);
    assert_eq!(s.drops.queue_full, 2);
    s.deliver(delivery(9, QoS::AtMostOnce));
    assert_eq!(s.drops.qos0, 1, "offline QoS 0 is dropped");
}

#[test]
fn resume_resends_unacknowledged_with_dup_mqtt_4_4_0_1() {
    let mut s = session();
    let first = outbox();
    s.attach(first.clone(), None, None);
    s.deliver(delivery(0, QoS::AtLeastOnce));
    s.deliver(delivery(1, QoS::ExactlyOnce));
    s.deliver(delivery(2, QoS::AtLeastOnce));
    sent(&first);
    s.on_pubrec(pid(2)).unwrap();
    assert!(matches!(sent(&first)[..], [Packet::PubRel(ref a)] if a.packet_id == pid(2)));
    s.detach(Instant::now());
    let second = outbox();
    s.attach(second.clone(), None, None);
    let packets = sent(&second);
    // Unacked QoS 1 again with DUP and the same id, the released QoS 2 as PUBREL; the
    // queued message waits for room in the window.
    assert_eq!(packets.len(), 2);
    assert!(matches!(packets[0], Packet::Publish(ref p) if p.dup && p.packet_id == Some(pid(1))));
    assert!(matches!(packets[1], Packet::PubRel(ref a) if a.packet_id == pid(2)));
    s.on_puback(pid(1)).unwrap();
    assert_eq!(publishes(&sent(&second)), [(2, Some(3), false)]);
}

#[test]
fn qos2_outbound_state_machine() {
    let mut s = session();
    let out = outbox();
    s.attach(out.clone(), None, None);
    s.deliver(delivery(0, QoS::ExactlyOnce));
    sent(&out);
    assert_eq!(
        s.on_pubcomp(pid(1)),
        Err(AckError::WrongState("PUBCOMP", 1))
    );
    assert_eq!(s.on_puback(pid(1)), Err(AckError::WrongState("PUBACK", 1)));
    s.on_pubrec(pid(1)).unwrap();
    s.on_pubcomp(pid(1)).unwrap();
    assert_eq!(s.inflight_len(), 0);
    assert_eq!(s.on_pubcomp(pid(1)), Err(AckError::UnknownPacketId(1)));
}

#[test]
fn inbound_qos2_ids_route_once() {
    let mut s = session();
    assert!(s.inbound_qos2_begin(pid(7)));
    assert!(
        !s.inbound_qos2_begin(pid(7)),
        "a resend is not routed again"
    );
    assert!(s.inbound_qos2_release(pid(7)));
    assert!(!s.inbound_qos2_release(pid(7)));
    assert!(
        s.inbound_qos2_begin(pid(7)),
        "after PUBREL the id is new again"
    );
}

#[test]
fn packet_ids_skip_those_in_flight_and_wrap() {
    let mut s = Session::new(
        Arc::from("c"),
        SessionLimits {
            inflight_count_max: 3,
            ..LIMITS
        },
    );
    let out = outbox();
    s.attach(out.clone(), None, None);
    s.next_packet_id = u16::MAX;
    s.deliver(delivery(0, QoS::AtLeastOnce));
    s.deliver(delivery(1, QoS::AtLeastOnce));
    s.on_puback(pid(u16::MAX)).unwrap();
    s.next_packet_id = 1;
    s.deliver(delivery(2, QoS::AtLeastOnce));
    let ids: Vec<_> = publishes(&sent(&out))
        .iter()
        .map(|p| p.1.unwrap())
        .collect();
    assert_eq!(ids, [u16::MAX, 1, 2]);
}

#[test]
fn granted_qos_is_what_is_sent() {
    let mut s = session();
    let out = outbox();
    s.attach(out.clone(), None, None);
    s.deliver(delivery(0, QoS::AtMostOnce));
    assert_eq!(publishes(&sent(&out)), [(0, None, false)]);
    assert_eq!(s.inflight_len(), 0);
}

#[test]
fn oversized_messages_are_not_sent_mqtt_3_1_2_25() {
    let mut s = session();
    let out = outbox();
    // A QoS 0 PUBLISH of this message is 6 bytes, QoS 1 is 8.
    s.attach(out.clone(), None, Some(5));
    s.deliver(delivery(0, QoS::AtLeastOnce));
    s.deliver(delivery(1, QoS::AtMostOnce));
    assert!(sent(&out).is_empty());
    assert_eq!(s.drops.too_large, 2);
    assert_eq!(s.inflight_len(), 0);
}

#[test]
fn expiry() {
    let mut s = session();
    let t = Instant::now();
    s.expiry_secs = 10;
    assert!(!s.is_expired(t), "connected sessions never expire");
    s.detach(t);
    assert!(!s.is_expired(t + Duration::from_secs(9)));
    assert!(s.is_expired(t + Duration::from_secs(10)));
    s.expiry_secs = u32::MAX;
    assert!(!s.is_expired(t + Duration::from_secs(1 << 40)));
}

#[test]
fn a_full_queue_pushes_back_until_half_drained() {
    let mut s = session(); // window 2, queue 3, pushback at 2
    let out = outbox();
    s.attach(out.clone(), None, None);
    for n in 0..3 {
        s.deliver(delivery(n, QoS::AtLeastOnce));
        assert!(!s.is_congested(), "{n}: window and one queued");
    }
    s.deliver(delivery(3, QoS::AtLeastOnce));
    assert!(s.is_congested());
    assert!(!s.has_room());
    let drained = s.drained();
    let first = s.inflight[0].packet_id;
    s.on_puback(first).unwrap();
    assert_eq!(s.pending_len(), 1);
    assert!(!s.is_congested());
    assert!(s.has_room(), "down to half the pushback mark");
    drop(drained);
}

#[test]
fn stalled_and_offline_sessions_hold_nobody_back() {
    let mut s = session();
    s.attach(outbox(), None, None);
    for n in 0..4 {
        s.deliver(delivery(n, QoS::AtLeastOnce));
    }
    assert!(s.is_congested());
    s.mark_stalled();
    assert!(s.is_stalled());
    assert!(!s.is_congested() && s.has_room());
    // The overflow beyond queued_messages_max is still dropped and counted.
    s.deliver(delivery(4, QoS::AtLeastOnce));
    s.deliver(delivery(5, QoS::AtLeastOnce));
    assert_eq!(s.drops.queue_full, 1);
    // Draining to the low-water mark ends the stall.
    let (first, second) = (s.inflight[0].packet_id, s.inflight[1].packet_id);
    s.on_puback(first).unwrap();
    s.on_puback(second).unwrap();
    assert_eq!(s.pending_len(), 1);
    assert!(!s.is_stalled());
    // Offline: never congested, whatever the queue holds.
    for n in 6..9 {
        s.deliver(delivery(n, QoS::AtLeastOnce));
    }
    assert!(s.is_congested());
    s.detach(Instant::now());
    assert!(!s.is_congested() && s.has_room());
}

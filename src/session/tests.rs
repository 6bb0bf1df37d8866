use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::message::Message;
use crate::persist::LogOffset;
use crate::protocol::{decode, Decoded, ProtocolVersion, TopicName, MAX_PACKET_BYTES};

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
        properties: Default::default(),
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
        share: None,
    }
}

fn outbox() -> Rc<Outbox> {
    Rc::new(Outbox::new(ProtocolVersion::V3_1_1, 1 << 20, Rc::default()))
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
    Session::new(Arc::from("c"), LIMITS, Rc::default())
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
        Rc::default(),
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

// --- Persistent sessions: deliveries numbered, queued on disk, acks journalled ---

const QUOTA: DiskQuota = DiskQuota {
    messages: 3,
    bytes: 1 << 20,
    keys: "test quota",
};

fn durable() -> Session {
    let mut s = session();
    s.make_durable(7, RecoveredQueue::new());
    s
}

/// Plans and delivers message `n` at log offset `at`; returns the plan.
fn deliver_logged(s: &mut Session, n: u8, at: u64) -> Option<Planned> {
    let d = delivery(n, QoS::AtLeastOnce);
    let p = s.plan_durable(d.message.size_bytes(), QUOTA)?;
    s.deliver_durable(d, p, LogOffset::new(at));
    Some(p)
}

fn acked(journal: &[StateRecord]) -> Vec<(u64, u64, Option<u64>)> {
    journal
        .iter()
        .filter_map(|r| match r {
            StateRecord::Acked {
                seq,
                low_seq,
                low_offset,
                ..
            } => Some((*seq, *low_seq, low_offset.map(LogOffset::get))),
            _ => None,
        })
        .collect()
}

#[test]
fn packet_ids_follow_sequence_numbers_and_wrap_past_65535() {
    assert_eq!(packet_id_of(1).get(), 1);
    assert_eq!(packet_id_of(65_535).get(), 65_535);
    assert_eq!(packet_id_of(65_536).get(), 1);
}

#[test]
fn a_connected_durable_session_sends_within_its_window_and_queues_the_rest_on_disk() {
    let mut s = durable();
    let out = outbox();
    s.attach(out.clone(), None, None);
    let plans: Vec<_> = (0..4)
        .map(|n| deliver_logged(&mut s, n, 100 * u64::from(n)))
        .collect();
    let sent_now: Vec<_> = plans.iter().map(|p| p.map(|p| p.send_now)).collect();
    assert_eq!(sent_now, [Some(true), Some(true), Some(false), Some(false)]);
    assert_eq!(
        publishes(&sent(&out)),
        [(0, Some(1), false), (1, Some(2), false)]
    );
    assert_eq!((s.inflight_len(), s.disk_queue_len()), (2, 2));
    // The reader is asked to load from the first queued delivery's record.
    assert_eq!(s.wants_load(), None, "window full");
    s.on_puback(pid(1)).unwrap();
    assert_eq!(s.wants_load(), Some((7, LogOffset::new(200))));
    // The ack is journalled with the new low mark: seq 2 (in flight, record at 100).
    assert_eq!(acked(&s.take_journal()), [(1, 2, Some(100))]);
}

#[test]
fn loading_from_disk_sends_in_order_and_skips_what_recovery_found_complete() {
    let mut s = session();
    let mut q = RecoveredQueue::new();
    q.next_seq = 4;
    q.cursor = Some(LogOffset::new(0));
    q.acked.insert(2);
    q.sent.insert(1);
    s.make_durable(7, q);
    assert_eq!(s.disk_queue_len(), 2, "seqs 1 and 3 remain");
    let out = outbox();
    s.attach(out.clone(), None, None);
    let load = |s: &mut Session, seq: u64, at: u64| {
        assert!(!s.skips(seq, LogOffset::new(at + 10)));
        s.load(
            Loaded {
                seq,
                at: LogOffset::new(at),
                next: LogOffset::new(at + 10),
                delivery: delivery(seq as u8, QoS::AtLeastOnce),
            },
            false,
        )
    };
    assert!(load(&mut s, 1, 0));
    assert!(
        s.skips(2, LogOffset::new(20)),
        "seq 2 was acknowledged before the restart"
    );
    assert!(load(&mut s, 3, 20));
    // Seq 1 had been sent before: DUP 1 and the same packet id; seq 3 is new.
    assert_eq!(
        publishes(&sent(&out)),
        [(1, Some(1), true), (3, Some(3), false)]
    );
    assert_eq!(s.disk_queue_len(), 0);
}

#[test]
fn an_offline_durable_session_holds_no_messages_in_memory_and_honours_its_quota() {
    let mut s = durable();
    for n in 0..3 {
        assert!(deliver_logged(&mut s, n, u64::from(n)).is_some());
    }
    assert_eq!(
        (s.inflight_len(), s.pending_len(), s.disk_queue_len()),
        (0, 0, 3)
    );
    assert!(
        deliver_logged(&mut s, 3, 3).is_none(),
        "quota of 3 messages"
    );
    assert_eq!(s.drops.queue_full, 1);
}

#[test]
fn outbound_qos2_progress_is_journalled() {
    let mut s = durable();
    let out = outbox();
    s.attach(out.clone(), None, None);
    let d = delivery(9, QoS::ExactlyOnce);
    let p = s.plan_durable(d.message.size_bytes(), QUOTA).unwrap();
    s.deliver_durable(d, p, LogOffset::new(64));
    s.on_pubrec(pid(1)).unwrap();
    s.on_pubcomp(pid(1)).unwrap();
    let j = s.take_journal();
    assert!(matches!(j[0], StateRecord::Released { no: 7, seq: 1 }));
    assert_eq!(
        acked(&j),
        [(1, 2, None)],
        "nothing left: low mark is the next seq"
    );
}

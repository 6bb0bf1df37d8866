use super::*;
use crate::protocol::{MqttString, PublishProperties, TopicName};

fn message(topic: &str, payload: &[u8], qos: QoS) -> Message {
    let properties = PublishProperties {
        content_type: MqttString::try_from("text/plain").ok(),
        message_expiry_interval: Some(30),
        ..Default::default()
    };
    Message {
        topic: TopicName::try_from(topic).expect("topic"),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain: true,
        properties,
        origin: Arc::from("publisher-1"),
        received_at: Instant::now(),
    }
}

fn roundtrip(rec: &StateRecord) -> StateRecord {
    let mut body = Vec::new();
    rec.encode(&mut body);
    StateRecord::decode(rec.record_type(), &body).expect("decodes")
}

#[test]
fn every_record_decodes_to_what_was_encoded() {
    let m = message("a/b", b"hello", QoS::ExactlyOnce);
    let id = PacketId::new(7).expect("id");
    let records = vec![
        StateRecord::Session {
            no: 3,
            expiry_secs: u32::MAX,
            client_id: Arc::from("sensor-9"),
        },
        StateRecord::SessionGone { no: 3 },
        StateRecord::Subscribe {
            no: 3,
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::SendIfNew,
            },
            id: SubscriptionId::new(42),
            filter: Box::from("a/+/c"),
        },
        StateRecord::Unsubscribe {
            no: 3,
            filter: Box::from("a/#"),
        },
        StateRecord::Deliver {
            targets: vec![
                Target {
                    no: 1,
                    seq: 10,
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    sent: true,
                    ids: vec![],
                },
                Target {
                    no: 2,
                    seq: 99,
                    qos: QoS::ExactlyOnce,
                    retain: true,
                    sent: false,
                    ids: vec![5, 6],
                },
            ],
            tag: Some(Tag {
                shard: 2,
                offset: 4096,
            }),
            message: m.clone(),
        },
        StateRecord::Acked {
            no: 1,
            seq: 10,
            low_seq: 11,
            low_offset: None,
        },
        StateRecord::Acked {
            no: 1,
            seq: 12,
            low_seq: 11,
            low_offset: Some(LogOffset::new(777)),
        },
        StateRecord::Released { no: 2, seq: 99 },
        StateRecord::Accepted {
            no: 4,
            packet_id: id,
            first: Some(LogOffset::new(128)),
            message: m.clone(),
        },
        StateRecord::InReleased {
            no: 4,
            packet_id: id,
        },
        StateRecord::Retain {
            tag: None,
            message: message("r", b"", QoS::AtMostOnce),
        },
        StateRecord::Will {
            no: 4,
            message: m.clone(),
        },
        StateRecord::WillClear { no: 4 },
        StateRecord::Detached {
            no: 4,
            unix_ms: 1_700_000_000_000,
        },
        StateRecord::CheckpointBegin,
        StateRecord::CheckpointEnd,
        StateRecord::Queue {
            no: 2,
            next_seq: 100,
            low_seq: 90,
            low_offset: Some(LogOffset::new(64)),
            acked: vec![91, 95],
            released: vec![93],
            sent: vec![91, 92, 93],
        },
        StateRecord::Sent { no: 2, seq: 94 },
    ];
    for rec in &records {
        // Debug output names every field, messages included (their `received_at` is
        // rebuilt from milliseconds, so it is compared separately below).
        let back = roundtrip(rec);
        assert_eq!(rec.record_type(), back.record_type());
        let strip = |s: String| s.split("received_at").next().unwrap_or_default().to_owned();
        assert_eq!(
            strip(format!("{rec:?}")),
            strip(format!("{back:?}")),
            "{rec:?}"
        );
    }
}

#[test]
fn a_message_keeps_topic_payload_flags_properties_and_time() {
    let m = message("x/y", b"payload", QoS::AtLeastOnce);
    let StateRecord::Accepted { message: back, .. } = roundtrip(&StateRecord::Accepted {
        no: 1,
        packet_id: PacketId::new(1).expect("id"),
        first: None,
        message: m.clone(),
    }) else {
        panic!("wrong record");
    };
    assert_eq!(back.topic, m.topic);
    assert_eq!(back.payload, m.payload);
    assert_eq!((back.qos, back.retain), (m.qos, m.retain));
    assert_eq!(back.properties, m.properties);
    assert_eq!(&*back.origin, "publisher-1");
    assert!(back.received_at.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_queue_reader_finds_its_target_without_decoding_the_message() {
    let rec = StateRecord::Deliver {
        targets: vec![
            Target {
                no: 1,
                seq: 1,
                qos: QoS::AtLeastOnce,
                retain: false,
                sent: false,
                ids: vec![8, 9],
            },
            Target {
                no: 2,
                seq: 5,
                qos: QoS::ExactlyOnce,
                retain: true,
                sent: true,
                ids: vec![3],
            },
        ],
        tag: None,
        message: message("t", b"p", QoS::ExactlyOnce),
    };
    let mut body = Vec::new();
    rec.encode(&mut body);
    let t = deliver_target(&body, 2).expect("session 2 is a target");
    assert_eq!(
        (t.seq, t.qos, t.retain, t.ids),
        (5, QoS::ExactlyOnce, true, vec![3])
    );
    assert!(deliver_target(&body, 3).is_none());
}

#[test]
fn truncated_and_padded_bodies_are_errors_not_panics() {
    let rec = StateRecord::Subscribe {
        no: 1,
        options: SubscriptionOptions::default(),
        id: None,
        filter: Box::from("a/b"),
    };
    let mut body = Vec::new();
    rec.encode(&mut body);
    for cut in 0..body.len() {
        assert!(StateRecord::decode(rec.record_type(), &body[..cut]).is_err());
    }
    body.push(0);
    assert!(StateRecord::decode(rec.record_type(), &body).is_err());
    let unknown = RecordType::new(200).expect("type");
    assert!(StateRecord::decode(unknown, &[]).is_err());
}

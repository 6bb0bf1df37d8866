//! Codec throughput: decoding and encoding PUBLISH for MQTT 3.1.1 and 5.0 at 16 B, 256 B
//! and 4 KiB payloads, and decoding SUBSCRIBE and CONNECT.
//!
//! Decoding is measured as a connection's read loop sees it: a buffer holding
//! [`BATCH`] packets back to back, decoded packet after packet until it is empty. Each
//! iteration gets a fresh copy of the prepared buffer from `iter_batched` (the copy is not
//! timed). Encoding appends [`BATCH`] packets to one write buffer that is reused and
//! cleared per iteration, as a connection's write buffer would be.
//!
//! Every case runs twice: in `codec_bytes` with `Throughput::Bytes` (wire bytes, fixed
//! headers and properties included) and in `codec_packets` with `Throughput::Elements`
//! (packets). Run with `cargo bench --bench codec`; about 80 s once built.

use std::hint::black_box;
use std::num::NonZeroU16;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use ringmq::protocol::{
    decode, Connect, ConnectProperties, Decoded, MqttString, Packet, PacketId, ProtocolVersion,
    Publish, PublishProperties, QoS, RetainHandling, Subscribe, SubscribeProperties, Subscription,
    SubscriptionId, SubscriptionOptions, TopicFilter, TopicName, UserProperty, MAX_PACKET_BYTES,
};

/// Packets per iteration: one read (or write) buffer's worth.
const BATCH: usize = 64;

/// Prepared buffers handed to one timed batch of `iter_batched`. Bounds the memory held at
/// once (64 packets of 4 KiB are 270 KB a buffer) while keeping timer reads rare.
const BUFFERS_PER_BATCH: u64 = 16;

const PAYLOAD_SIZES: [(usize, &str); 3] = [(16, "16B"), (256, "256B"), (4096, "4KiB")];

const PUBLISH_VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

fn string(s: &'static str) -> MqttString {
    MqttString::from_static(s).expect("valid MQTT string")
}

fn topic(s: &'static str) -> TopicName {
    TopicName::new(string(s)).expect("valid topic name")
}

fn filter(s: &'static str) -> TopicFilter {
    TopicFilter::new(string(s)).expect("valid topic filter")
}

fn packet_id(i: usize) -> PacketId {
    PacketId::new(u16::try_from(i % 65_535 + 1).expect("in range")).expect("non-zero")
}

/// The properties a request/response v5 publisher typically sends.
fn v5_publish_properties() -> PublishProperties {
    PublishProperties {
        message_expiry_interval: Some(3600),
        content_type: Some(string("application/json")),
        user_properties: vec![
            UserProperty {
                name: string("trace-id"),
                value: string("4bf92f3577b34da6a3ce929d0e0e4736"),
            },
            UserProperty {
                name: string("source"),
                value: string("gateway-12"),
            },
        ],
        response_topic: Some(topic("replies/client-0042/telemetry")),
        correlation_data: Some(Bytes::from_static(b"req-000000000042")),
        ..PublishProperties::default()
    }
}

/// `BATCH` QoS 1 PUBLISHes with distinct packet ids; v5 ones carry the typical properties.
fn publishes(version: ProtocolVersion, payload_len: usize) -> Vec<Packet> {
    let payload: Bytes = (0..payload_len)
        .map(|i| u8::try_from(i % 251).expect("in range"))
        .collect::<Vec<u8>>()
        .into();
    let properties = match version {
        ProtocolVersion::V5 => v5_publish_properties(),
        _ => PublishProperties::default(),
    };
    (0..BATCH)
        .map(|i| {
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: topic("sensors/building-7/floor-3/room-42/temperature"),
                packet_id: Some(packet_id(i)),
                properties: properties.clone(),
                payload: payload.clone(),
            })
        })
        .collect()
}

/// `BATCH` SUBSCRIBEs of three filters each, one of them shared.
fn subscribes(version: ProtocolVersion) -> Vec<Packet> {
    let v5 = version.is_v5();
    let options = |qos| SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published: v5,
        retain_handling: if v5 {
            RetainHandling::SendIfNew
        } else {
            RetainHandling::SendAtSubscribe
        },
    };
    (0..BATCH)
        .map(|i| {
            Packet::Subscribe(Subscribe {
                packet_id: packet_id(i),
                properties: SubscribeProperties {
                    subscription_identifier: if v5 { SubscriptionId::new(7) } else { None },
                    ..SubscribeProperties::default()
                },
                subscriptions: vec![
                    Subscription {
                        filter: filter("sensors/+/floor-3/+/temperature"),
                        options: options(QoS::AtLeastOnce),
                    },
                    Subscription {
                        filter: filter("alerts/building-7/#"),
                        options: options(QoS::ExactlyOnce),
                    },
                    Subscription {
                        filter: filter("$share/workers/jobs/+/pending"),
                        options: options(QoS::AtLeastOnce),
                    },
                ],
            })
        })
        .collect()
}

/// `BATCH` CONNECTs with credentials; v5 ones with the usual session properties.
fn connects(version: ProtocolVersion) -> Vec<Packet> {
    let properties = match version {
        ProtocolVersion::V5 => ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: NonZeroU16::new(100),
            topic_alias_maximum: Some(16),
            user_properties: vec![UserProperty {
                name: string("client-build"),
                value: string("firmware-2.4.1"),
            }],
            ..ConnectProperties::default()
        },
        _ => ConnectProperties::default(),
    };
    (0..BATCH)
        .map(|_| {
            Packet::Connect(Box::new(Connect {
                protocol: version,
                clean_start: true,
                keep_alive: 60,
                client_id: string("sensor-gateway-0042"),
                will: None,
                username: Some(string("gateway")),
                password: Some(Bytes::from_static(b"s3cr3t-t0ken-value")),
                properties: properties.clone(),
            }))
        })
        .collect()
}

/// The packets back to back, as a read buffer would hold them.
fn wire(packets: &[Packet], version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        p.encode(version, &mut buf)
            .expect("benchmark packet encodes");
    }
    buf
}

/// Decodes every packet in `buf`; returns how many.
fn decode_all(buf: &mut BytesMut, version: Option<ProtocolVersion>) -> usize {
    let mut n = 0;
    while let Ok(Decoded::Packet(p)) = decode(buf, version, MAX_PACKET_BYTES) {
        black_box(p);
        n += 1;
    }
    n
}

#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    Packets,
}

impl Unit {
    fn throughput(self, wire_bytes: usize, packets: usize) -> Throughput {
        match self {
            Unit::Bytes => Throughput::Bytes(wire_bytes as u64),
            Unit::Packets => Throughput::Elements(packets as u64),
        }
    }
}

/// Times decoding `packets` from one buffer; `connection` is the connection's state
/// (`None` before CONNECT).
fn bench_decode(
    group: &mut BenchmarkGroup<'_, WallTime>,
    unit: Unit,
    name: &str,
    packets: &[Packet],
    version: ProtocolVersion,
    connection: Option<ProtocolVersion>,
) {
    let prepared = wire(packets, version);
    assert_eq!(decode_all(&mut prepared.clone(), connection), packets.len());
    group.throughput(unit.throughput(prepared.len(), packets.len()));
    group.bench_function(name, |b| {
        b.iter_batched(
            || prepared.clone(),
            |mut buf| {
                black_box(decode_all(&mut buf, connection));
                // Returned, so criterion frees the emptied buffer outside the timing: a
                // connection keeps its read buffer, and freeing 270 KB is not decoding.
                buf
            },
            BatchSize::NumIterations(BUFFERS_PER_BATCH),
        )
    });
}

/// Times encoding `packets` into a reused write buffer.
fn bench_encode(
    group: &mut BenchmarkGroup<'_, WallTime>,
    unit: Unit,
    name: &str,
    packets: &[Packet],
    version: ProtocolVersion,
) {
    let wire_bytes = wire(packets, version).len();
    let mut buf = BytesMut::with_capacity(wire_bytes);
    group.throughput(unit.throughput(wire_bytes, packets.len()));
    group.bench_function(name, |b| {
        b.iter(|| {
            buf.clear();
            for p in packets {
                p.encode(version, &mut buf)
                    .expect("benchmark packet encodes");
            }
            black_box(buf.len())
        })
    });
}

fn configure<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    // 32 cases: about 2.5 s each, 80 s in all. Fewer bootstrap resamples than the default
    // 100,000 keep the analysis from costing as much as the measurement.
    group
        .warm_up_time(Duration::from_millis(600))
        .measurement_time(Duration::from_millis(1600))
        .sample_size(50)
        .nresamples(20_000);
    group
}

fn codec(c: &mut Criterion, group_name: &str, unit: Unit) {
    let mut group = configure(c, group_name);
    for version in PUBLISH_VERSIONS {
        for (size, label) in PAYLOAD_SIZES {
            let packets = publishes(version, size);
            let decode_name = format!("publish_decode/v{version}/{label}");
            bench_decode(
                &mut group,
                unit,
                &decode_name,
                &packets,
                version,
                Some(version),
            );
            let encode_name = format!("publish_encode/v{version}/{label}");
            bench_encode(&mut group, unit, &encode_name, &packets, version);
        }
    }
    for version in PUBLISH_VERSIONS {
        let name = format!("subscribe_decode/v{version}");
        bench_decode(
            &mut group,
            unit,
            &name,
            &subscribes(version),
            version,
            Some(version),
        );
        // A CONNECT is decoded before the connection has a version.
        let name = format!("connect_decode/v{version}");
        bench_decode(&mut group, unit, &name, &connects(version), version, None);
    }
    group.finish();
}

fn codec_bytes(c: &mut Criterion) {
    codec(c, "codec_bytes", Unit::Bytes);
}

fn codec_packets(c: &mut Criterion) {
    codec(c, "codec_packets", Unit::Packets);
}

criterion_group!(benches, codec_bytes, codec_packets);
criterion_main!(benches);

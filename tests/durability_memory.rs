//! Memory under an offline queue: the queue of an offline persistent session lives on disk,
//! so the broker's anonymous memory (heap) must not grow with it (DESIGN.md section 5: "an
//! offline persistent session costs O(1) memory however many messages wait for it").
//!
//! One offline session with a QoS 1 subscription accumulates [`MESSAGES`] QoS 1 messages of
//! [`PAYLOAD_BYTES`] bytes, sent by a pipelined publisher that keeps [`WINDOW`] PUBLISHes
//! unacknowledged. The broker's RSS is read from `/proc/<pid>/status` after
//! [`FIRST_SAMPLE_AT`] and after all [`MESSAGES`] are acknowledged: `RssAnon` may grow by at
//! most [`RSS_ANON_GROWTH_MAX`] between the two; `RssFile` (the mapped log segments, which the
//! kernel may drop and read back at will) is reported but not asserted. Then the broker is
//! stopped and started again, and `RssAnon` after recovery must also stay within
//! [`RSS_ANON_GROWTH_MAX`] of the first sample (recovery must not load the queue either).
//! Finally the session is resumed and all of it drained with acknowledgements, checking that
//! every message arrives once and in order. Draining all of it takes about 20 s in a debug
//! build (measured: publishing about 20 s, recovery 5 s, drain 19 s, 45 s in all), short
//! enough to check the whole queue rather than a prefix.
//!
//! `fsync = "interval"` keeps the publishing fast in a debug build (the flush policy does not
//! change where the queue lives); the per-session quotas and limits are raised so that no
//! bound drops a message.

pub mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

const MESSAGES: u64 = 1_000_000;
const FIRST_SAMPLE_AT: u64 = 100_000;
const PAYLOAD_BYTES: usize = 64;
/// Unacknowledged PUBLISHes in flight from the publisher.
const WINDOW: u64 = 1000;
/// Allowed growth of the broker's anonymous memory between the two samples.
const RSS_ANON_GROWTH_MAX: u64 = 64 << 20;

const TOPIC: &[u8] = b"mem/t";
const SUBSCRIBER: &str = "mem-sub";

/// Memory figures of a process, in bytes, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
struct Rss {
    vm_rss: u64,
    rss_anon: u64,
    rss_file: u64,
}

impl Rss {
    fn of(pid: u32) -> Rss {
        let status = fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
        let field = |name: &str| -> u64 {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("cannot read {line:?}"));
            kib * 1024
        };
        Rss {
            vm_rss: field("VmRSS:"),
            rss_anon: field("RssAnon:"),
            rss_file: field("RssFile:"),
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn describe(rss: Rss) -> String {
    format!(
        "VmRSS {:.1} MiB, RssAnon {:.1} MiB, RssFile {:.1} MiB",
        mib(rss.vm_rss),
        mib(rss.rss_anon),
        mib(rss.rss_file)
    )
}

/// Message `seq`'s payload: the number in 16 digits, padded with dots.
fn payload(seq: u64) -> [u8; PAYLOAD_BYTES] {
    let mut p = [b'.'; PAYLOAD_BYTES];
    p[..16].copy_from_slice(format!("{seq:016}").as_bytes());
    p
}

/// The packet id of message `seq`: 1..=65535 in turn (the window is far smaller).
fn id_of(seq: u64) -> u16 {
    (seq % 65_535) as u16 + 1
}

/// A v3.1.1 QoS 1 PUBLISH of message `seq` to `topic`, written by hand for speed:
/// `32 <len> 00 05 "mem/t" <id> <payload>`.
fn put_publish(out: &mut Vec<u8>, topic: &[u8], seq: u64) {
    let remaining = 2 + topic.len() + 2 + PAYLOAD_BYTES;
    out.push(0x32);
    out.push(u8::try_from(remaining).expect("one-byte remaining length"));
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(&id_of(seq).to_be_bytes());
    out.extend_from_slice(&payload(seq));
}

/// Reads what the socket has into `buf`; false on timeout.
fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 64 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) => panic!("the broker closed the connection"),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("read: {e}"),
    }
}

/// The TCP stream of an accepted connection, reads timing out after [`TIMEOUT`], and the
/// bytes received after the CONNACK.
fn raw_stream(client: Client) -> (TcpStream, Vec<u8>) {
    let (stream, received) = client.into_raw().into_stream();
    stream
        .set_read_timeout(Some(TIMEOUT))
        .expect("set read timeout");
    (stream, received)
}

/// Publishes messages `from..to` to [`TOPIC`] with [`WINDOW`] in flight and waits for every
/// PUBACK (`40 02 <id>`, in order).
fn publish_range(stream: &mut TcpStream, from: u64, to: u64) {
    publish_range_to(stream, TOPIC, from, to);
}

fn publish_range_to(stream: &mut TcpStream, topic: &[u8], from: u64, to: u64) {
    let mut sent = from;
    let mut acked = from;
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(WINDOW as usize * 80);
    while acked < to {
        out.clear();
        while sent < to && sent - acked < WINDOW {
            put_publish(&mut out, topic, sent);
            sent += 1;
        }
        if !out.is_empty() {
            stream.write_all(&out).expect("write PUBLISHes");
        }
        assert!(
            read_some(stream, &mut buf),
            "no PUBACK within {TIMEOUT:?} ({acked} of {to} acknowledged)"
        );
        let whole = buf.len() / 4 * 4;
        for ack in buf[..whole].chunks(4) {
            assert_eq!(
                ack,
                [0x40, 0x02, (id_of(acked) >> 8) as u8, id_of(acked) as u8],
                "PUBACK of message {acked}"
            );
            acked += 1;
        }
        buf.drain(..whole);
    }
}

/// Receives QoS 1 PUBLISHes to [`TOPIC`] and acknowledges each; checks that they carry
/// messages `from`, `from + 1`, ... and stops after `count`. `buf` holds what was received
/// already.
fn drain_in_order(stream: &mut TcpStream, buf: Vec<u8>, from: u64, count: u64) {
    drain_in_order_from(stream, TOPIC, buf, from, count);
}

fn drain_in_order_from(
    stream: &mut TcpStream,
    topic: &[u8],
    mut buf: Vec<u8>,
    from: u64,
    count: u64,
) {
    let mut acks = Vec::new();
    let mut next = from;
    while next < from + count {
        if split_packet(&buf).is_none() {
            assert!(
                read_some(stream, &mut buf),
                "message {next} did not arrive within {TIMEOUT:?}"
            );
        }
        let mut at = 0;
        while next < from + count {
            let Some((first, body)) = split_packet(&buf[at..]) else {
                break;
            };
            let len = body.len();
            assert_eq!(
                first & 0xf6,
                0x32,
                "expected a QoS 1 PUBLISH, got {first:#04x}"
            );
            let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            assert_eq!(&body[2..2 + topic_len], topic);
            let id = &body[2 + topic_len..4 + topic_len];
            assert_eq!(
                &body[4 + topic_len..],
                payload(next),
                "message {next} in order ({} received)",
                next - from
            );
            acks.extend_from_slice(&[0x40, 0x02, id[0], id[1]]);
            next += 1;
            at += header_len(len) + len;
        }
        buf.drain(..at);
        stream.write_all(&acks).expect("write PUBACKs");
        acks.clear();
    }
}

/// Nothing more arrives for a while (no message twice).
fn expect_silence(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("set read timeout");
    let mut buf = Vec::new();
    assert!(
        !read_some(stream, &mut buf),
        "more after the last message: {}",
        to_hex(&buf[..buf.len().min(64)])
    );
}

/// Bytes of a remaining length `len` takes.
fn header_len(len: usize) -> usize {
    1 + match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// The first byte and body of the whole packet at the start of `buf`, if it is all there.
fn split_packet(buf: &[u8]) -> Option<(u8, &[u8])> {
    let (&first, rest) = buf.split_first()?;
    let mut len = 0usize;
    for (i, &b) in rest.iter().enumerate().take(4) {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let body = rest.get(i + 1..i + 1 + len)?;
            return Some((first, body));
        }
    }
    None
}

#[test]
fn offline_queue_of_a_million_messages_stays_out_of_memory_ringmq_only() {
    if skip_unless_ringmq("ringmq keeps offline queues on disk") {
        return;
    }
    let started = Instant::now();
    let mut broker = Broker::start(
        BrokerOptions::default()
            .storage(
                "fsync = \"interval\"\ninterval_ms = 10\nsession_queue_messages_max = 2000000\n\
                 session_queue_bytes_max = 1073741824",
            )
            .config(
                "[limits]\ninflight_count_max = 1000\nqueued_messages_max = 2000000\n\
                 queued_bytes_max = 1073741824",
                "",
            ),
    );
    let mut sub = Client::connect(broker.addr(), connect_persistent(V311, SUBSCRIBER));
    sub.subscribe_one("mem/t", qos(1));
    sub.disconnect();

    let publisher = broker.client(V311, "mem-pub");
    let (mut stream, received) = raw_stream(publisher);
    assert!(received.is_empty(), "the publisher got {received:?}");

    let t = Instant::now();
    publish_range(&mut stream, 0, FIRST_SAMPLE_AT);
    let first = Rss::of(broker.pid());
    eprintln!(
        "{FIRST_SAMPLE_AT} messages queued in {:?}: {}",
        t.elapsed(),
        describe(first)
    );
    publish_range(&mut stream, FIRST_SAMPLE_AT, MESSAGES);
    let second = Rss::of(broker.pid());
    let publish_time = t.elapsed();
    eprintln!(
        "{MESSAGES} messages queued in {publish_time:?} ({:.0}/s): {}",
        MESSAGES as f64 / publish_time.as_secs_f64(),
        describe(second)
    );
    let growth = second.rss_anon.saturating_sub(first.rss_anon);
    eprintln!(
        "growth from {FIRST_SAMPLE_AT} to {MESSAGES} queued: RssAnon {:+.1} MiB, RssFile {:+.1} MiB, VmRSS {:+.1} MiB",
        mib(growth),
        (second.rss_file as f64 - first.rss_file as f64) / f64::from(1 << 20),
        (second.vm_rss as f64 - first.vm_rss as f64) / f64::from(1 << 20),
    );
    assert!(
        growth < RSS_ANON_GROWTH_MAX,
        "RssAnon grew by {:.1} MiB while the offline queue went from {FIRST_SAMPLE_AT} to \
         {MESSAGES} messages (limit {:.0} MiB): the queue is held in memory",
        mib(growth),
        mib(RSS_ANON_GROWTH_MAX)
    );
    drop(stream);

    // Recovery must not load the queue into memory either.
    broker.stop();
    let t = Instant::now();
    broker.restart();
    let recovered = Rss::of(broker.pid());
    eprintln!(
        "restarted in {:?}: {}\n{}",
        t.elapsed(),
        describe(recovered),
        broker
            .log_of_this_run()
            .lines()
            .filter(|l| l.contains("recovered"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        recovered.rss_anon < first.rss_anon + RSS_ANON_GROWTH_MAX,
        "after recovering the {MESSAGES}-message queue RssAnon is {:.1} MiB, more than {:.0} MiB \
         above the {:.1} MiB measured at {FIRST_SAMPLE_AT}: recovery loads the queue into memory",
        mib(recovered.rss_anon),
        mib(RSS_ANON_GROWTH_MAX),
        mib(first.rss_anon)
    );

    let sub = Client::connect(broker.addr(), connect_persistent(V311, SUBSCRIBER));
    assert!(
        sub.session_present(),
        "the offline session did not survive the restart (Session Present 0)"
    );
    let (mut stream, received) = raw_stream(sub);
    let t = Instant::now();
    drain_in_order(&mut stream, received, 0, MESSAGES);
    eprintln!(
        "{MESSAGES} messages drained in order in {:?}; test took {:?}",
        t.elapsed(),
        started.elapsed()
    );
    expect_silence(&mut stream);
    eprintln!("after the drain: {}", describe(Rss::of(broker.pid())));
}

/// Disk use follows live data: one offline session keeps a small queue while a busy
/// persistent subscriber receives and acknowledges far more than that. Checkpoints, the
/// queue copied forward, and deleted segments keep the log at a few segments; after a
/// `kill -9` the small queue is still there, whole and in order.
#[test]
fn the_log_stays_proportional_to_live_data_ringmq_only() {
    if skip_unless_ringmq("ringmq compacts its segment logs") {
        return;
    }
    const SEGMENT: u64 = 1 << 20;
    const PINNED: u64 = 100;
    const BUSY: u64 = 120_000;
    let mut broker = Broker::start(
        BrokerOptions::default()
            .storage(&format!(
                "fsync = \"interval\"\ninterval_ms = 10\nsegment_bytes = {SEGMENT}"
            ))
            .config(
                "[limits]\npacket_bytes_max = 65536\ninflight_count_max = 1000",
                "",
            ),
    );
    let mut pinned = Client::connect(broker.addr(), connect_persistent(V311, "pinned"));
    pinned.subscribe_one("pin/t", qos(1));
    pinned.disconnect();
    let mut busy = Client::connect(broker.addr(), connect_persistent(V311, "busy"));
    busy.subscribe_one("mem/t", qos(1));
    let (mut busy_stream, busy_received) = raw_stream(busy);
    let drain = std::thread::spawn(move || {
        drain_in_order(&mut busy_stream, busy_received, 0, BUSY);
    });
    let (mut stream, _) = raw_stream(broker.client(V311, "compact-pub"));
    publish_range_to(&mut stream, b"pin/t", 0, PINNED);
    let t = Instant::now();
    publish_range(&mut stream, 0, BUSY);
    drain
        .join()
        .expect("the busy subscriber got every message in order");
    eprintln!(
        "{BUSY} messages through a persistent subscriber in {:?}",
        t.elapsed()
    );

    // Compaction runs once a second; give it a few rounds.
    let dir = broker.data_path().join("shard-0");
    let mut bytes = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        bytes = fs::read_dir(&dir)
            .expect("shard log directory")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        if bytes <= 4 * SEGMENT {
            break;
        }
    }
    let written = BUSY * 170;
    eprintln!(
        "log: {:.1} MiB on disk after about {:.0} MiB written",
        bytes as f64 / f64::from(1 << 20),
        written as f64 / f64::from(1 << 20)
    );
    assert!(
        bytes <= 4 * SEGMENT,
        "the log holds {bytes} bytes in {}: dead segments were not removed",
        dir.display()
    );

    broker.kill9();
    broker.restart();
    let pinned = Client::connect(broker.addr(), connect_persistent(V311, "pinned"));
    assert!(pinned.session_present());
    let (mut stream, received) = raw_stream(pinned);
    drain_in_order_from(&mut stream, b"pin/t", received, 0, PINNED);
    expect_silence(&mut stream);
}

/// The global disk quota: once a shard's log is at its share of `storage.disk_quota_bytes`,
/// further messages for persistent sessions are dropped for them (and logged), while
/// what was queued before stays whole and in order.
#[test]
fn the_disk_quota_bounds_the_log_and_keeps_what_was_queued_ringmq_only() {
    if skip_unless_ringmq("ringmq's disk quota") {
        return;
    }
    const SEGMENT: u64 = 1 << 20;
    const SENT: u64 = 40_000;
    let broker = Broker::start(
        BrokerOptions::default()
            .storage(&format!(
                "fsync = \"interval\"\nsegment_bytes = {SEGMENT}\n\
                 disk_quota_bytes = {}\nsession_queue_bytes_max = {}",
                3 * SEGMENT,
                3 * SEGMENT
            ))
            .config("[limits]\npacket_bytes_max = 65536", ""),
    );
    let mut sub = Client::connect(broker.addr(), connect_persistent(V311, SUBSCRIBER));
    sub.subscribe_one("mem/t", qos(1));
    sub.disconnect();
    let (mut stream, _) = raw_stream(broker.client(V311, "quota-pub"));
    publish_range(&mut stream, 0, SENT);
    let log = broker.log_tail(200);
    assert!(
        log.contains("storage.disk_quota_bytes"),
        "the drop is logged with the key to change:\n{log}"
    );
    // What fitted is delivered, in order, from the first message; the rest was dropped.
    let sub = Client::connect(broker.addr(), connect_persistent(V311, SUBSCRIBER));
    let (mut stream, received) = raw_stream(sub);
    drain_in_order(&mut stream, received, 0, 1000);
    let bytes: u64 = fs::read_dir(broker.data_path().join("shard-0"))
        .expect("shard log directory")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    eprintln!("log at the quota: {bytes} bytes (quota {})", 3 * SEGMENT);
    assert!(bytes <= 4 * SEGMENT, "the log grew to {bytes} bytes");
}

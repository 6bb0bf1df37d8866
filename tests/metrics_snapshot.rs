//! The merged metrics snapshot as a thread outside the shards reads it
//! (`ringmq::admin::AdminHandle`): a broker run in this process, clients of each
//! protocol version homed on different shards, and the counts they must produce.

pub mod common;

use std::time::{Duration, Instant};

use common::*;
use ringmq::admin::AdminHandle;
use ringmq::metrics::MetricsSnapshot;
use ringmq::protocol::{ProtocolVersion, QoS};

const SHARDS: usize = 3;

/// Polls `handle` until `done` holds (the counters of other shards arrive with their
/// connections' packets, a moment after the client sees its answer).
fn snapshot_where(
    handle: &AdminHandle,
    done: impl Fn(&MetricsSnapshot) -> bool,
) -> MetricsSnapshot {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let s = handle
            .metrics(TIMEOUT)
            .expect("every shard answers metrics requests");
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_snapshot_merges_every_shard_by_version_and_qos_ringmq_only() {
    if skip_unless_ringmq("the metrics snapshot is ringmq's API") {
        return;
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ringmq-metrics-{}-{port}", std::process::id()));
    let cores: Vec<String> = (0..SHARDS).map(|c| c.to_string()).collect();
    let toml = format!(
        "[runtime]\ncores = [{}]\nplacement = \"unbound\"\n\n[[listener]]\nbind = \
         \"127.0.0.1:{port}\"\n\n[storage]\ndata_dir = \"{}\"\n",
        cores.join(", "),
        dir.display()
    );
    let config = ringmq::config::Config::from_toml(&toml, "test.toml").expect("valid config");
    let handle = AdminHandle::new();
    let shards = handle.clone();
    let shutdown = ringmq::shard::Shutdown::default();
    let stop = shutdown.clone();
    let broker = std::thread::spawn(move || ringmq::shard::run_with_admin(config, stop, &shards));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let id = |name: &str, shard: usize| client_id_on_shard(name, shard, SHARDS);
    let mut sub = Client::connect(addr, connect(ProtocolVersion::V5, &id("sub", 0)));
    sub.subscribe_one("m/#", QoS::AtLeastOnce);
    let mut old = Client::connect(addr, connect(ProtocolVersion::V3_1, &id("old", 1)));
    let mut mid = Client::connect(addr, connect(ProtocolVersion::V3_1_1, &id("mid", 2)));
    old.publish("m/a", &[0; 7], QoS::AtMostOnce);
    mid.publish("m/b", &[0; 30], QoS::AtLeastOnce);
    mid.publish("m/c", &[0; 5], QoS::ExactlyOnce);
    for _ in 0..3 {
        sub.recv_message();
    }
    let s = snapshot_where(&handle, |s| s.publish_received == [1, 1, 1]);
    assert_eq!(s.shards, SHARDS as u32);
    assert_eq!(s.connects_by_version, [1, 1, 1]);
    assert_eq!(s.connections, 3);
    assert_eq!(s.sessions, 3);
    assert_eq!(s.subscriptions, 1);
    assert_eq!(s.publish_received, [1, 1, 1]);
    assert_eq!(s.publish_received_bytes, [7, 30, 5]);
    // `sub` granted QoS 1: the QoS 2 message arrives at QoS 1.
    assert_eq!(s.publish_sent, [1, 2, 0]);
    assert_eq!(s.publish_sent_bytes, [7, 35, 0]);
    assert_eq!(s.drops.total(), 0);
    // Each of the three messages went from its publisher's shard to the subscriber's, and
    // was delivered: the mesh is empty again.
    assert_eq!(s.mesh_forwarded, 3);
    assert_eq!(s.mesh_taken, 3);
    assert_eq!(s.mesh_queued(), 0);
    assert_eq!(s.busy.len(), SHARDS);
    assert!(s.busy.iter().all(|(_, r)| (0.0..=1.0).contains(r)));
    // A client gone: the gauge follows, the counters stay.
    old.disconnect();
    let s = snapshot_where(&handle, |s| s.connections == 2);
    assert_eq!(s.connections, 2);
    assert_eq!(s.connects_by_version, [1, 1, 1]);
    drop((sub, mid));
    shutdown.trigger();
    let stopped = broker.join().expect("the broker thread");
    assert!(stopped.is_ok(), "{stopped:?}");
    assert!(
        handle.metrics(Duration::from_millis(200)).is_none(),
        "no answer once the broker stopped"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

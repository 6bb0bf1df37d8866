//! Cross-shard hop: what forwarding a publish to another shard costs, through the same
//! glommio channel mesh and `DataMsg` the broker uses. Two executors (pinned to CPUs 0 and
//! 1 when the machine has two, unbound otherwise):
//! - throughput: shard 0 sends N messages of 64-byte payload to shard 1, which counts
//!   them; messages/s at the receiver;
//! - round trip: a ping-pong of one message, median and p99 in microseconds.
//!
//! `cargo bench --bench mesh` runs it fully; under `cargo test` (no `--bench` argument)
//! it does a small run so that it cannot rot. Prints one JSON line per measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{CpuSet, LocalExecutorPoolBuilder, PoolPlacement};
use ringmq::message::Message;
use ringmq::protocol::{QoS, TopicName};
use ringmq::shard::mesh::DataMsg;

fn message() -> Message {
    Message {
        topic: TopicName::try_from("tenant/1/device/2/sensor").expect("topic"),
        payload: Bytes::from(vec![7u8; 64]),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
        origin: Arc::from("bench"),
        received_at: Instant::now(),
    }
}

fn placement() -> PoolPlacement {
    match CpuSet::online() {
        Ok(cpus) if cpus.len() >= 2 => PoolPlacement::MaxSpread(2, Some(cpus)),
        _ => PoolPlacement::Unbound(2),
    }
}

/// Messages per second from shard 0 to shard 1, `n` messages.
fn throughput(n: usize) -> f64 {
    let mesh: MeshBuilder<DataMsg, _> = MeshBuilder::full(2, 4096);
    let handles = LocalExecutorPoolBuilder::new(placement())
        .io_memory(64 << 10)
        .on_all_shards(move || async move {
            let (tx, mut rx) = mesh.join().await.expect("join");
            if tx.peer_id() == 0 {
                let m = message();
                for _ in 0..n {
                    if tx
                        .send_to(
                            1,
                            DataMsg::Publish {
                                message: m.clone(),
                                ticket: None,
                                tag: None,
                                regular: true,
                                picks: Vec::new(),
                            },
                        )
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                0.0
            } else {
                let streams = rx.streams();
                let (_, from0) = streams.into_iter().next().expect("one peer");
                let start = Instant::now();
                let mut got = 0;
                while got < n {
                    match from0.recv().await {
                        Some(DataMsg::Publish { .. }) => got += 1,
                        Some(DataMsg::Answers(_)) => {}
                        None => break,
                    }
                }
                got as f64 / start.elapsed().as_secs_f64()
            }
        })
        .expect("executors");
    handles
        .join_all()
        .into_iter()
        .filter_map(|r| r.ok())
        .fold(0.0, f64::max)
}

/// Round trips of one message between the two shards; returns sorted durations.
fn round_trips(n: usize) -> Vec<Duration> {
    let mesh: MeshBuilder<DataMsg, _> = MeshBuilder::full(2, 64);
    let handles = LocalExecutorPoolBuilder::new(placement())
        .io_memory(64 << 10)
        .on_all_shards(move || async move {
            let (tx, mut rx) = mesh.join().await.expect("join");
            let me = tx.peer_id();
            let (_, peer) = rx.streams().into_iter().next().expect("one peer");
            let mut times = Vec::with_capacity(n);
            for _ in 0..n {
                if me == 0 {
                    let t = Instant::now();
                    if tx
                        .send_to(
                            1,
                            DataMsg::Publish {
                                message: message(),
                                ticket: None,
                                tag: None,
                                regular: true,
                                picks: Vec::new(),
                            },
                        )
                        .await
                        .is_err()
                    {
                        break;
                    }
                    if peer.recv().await.is_none() {
                        break;
                    }
                    times.push(t.elapsed());
                } else {
                    let Some(m) = peer.recv().await else { break };
                    if tx.send_to(0, m).await.is_err() {
                        break;
                    }
                }
            }
            times
        })
        .expect("executors");
    let mut all: Vec<Duration> = handles
        .join_all()
        .into_iter()
        .filter_map(|r| r.ok())
        .flatten()
        .collect();
    all.sort();
    all
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, trips, rounds) = if full {
        (2_000_000, 20_000, 5)
    } else {
        (10_000, 200, 1)
    };
    let mut rates: Vec<f64> = (0..rounds).map(|_| throughput(n)).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    println!("{{\"bench\":\"mesh_throughput\",\"messages\":{n},\"rounds\":{rounds},\"median_msgs_per_sec\":{median:.0}}}");
    let t = round_trips(trips);
    let pct = |p: f64| {
        t.get(((t.len() as f64 * p) as usize).min(t.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    println!(
        "{{\"bench\":\"mesh_round_trip\",\"trips\":{},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
        t.len(),
        pct(0.5),
        pct(0.99)
    );
}

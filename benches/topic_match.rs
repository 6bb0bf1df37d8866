//! Topic matching throughput of the router's `SubscriptionTrie`, as a PUBLISH sees it:
//!
//! - `local_trie`: a shard's local subscriptions, keyed by session, every matching entry
//!   visited (what fan-out does);
//! - `interest_table`: the replicated interest table (`SubscriptionTrie<u16, u32>`, shard →
//!   subscriber count) answering "which of 8 shards need this message?" as a bitset.
//!
//! Each at 10k and 1M subscriptions with an IoT-like mix, per tenant: 16 exact device
//! subscriptions `tenant/T/device/D/sensor` (80%), 3 `tenant/T/device/+/sensor` (15%) and one
//! `tenant/T/#` (5%), so a publish to `tenant/T/device/D/sensor` matches 5 entries in 3
//! filters. Topics are drawn at random over all tenants and devices (every one has a
//! subscriber), so the 1M case runs mostly out of cache, as a large broker would.
//!
//! The tries are built once per size, outside the timed loop. One iteration matches
//! [`BATCH`] topics; throughput is reported in topics matched per second (elements/s).
//! Run with `cargo bench --bench topic_match`; about a minute.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq::router::SubscriptionTrie;

/// Topics matched per timed iteration.
const BATCH: usize = 1024;

/// Distinct topics cycled through (a power of two, larger than [`BATCH`]).
const TOPICS: usize = 1 << 14;

/// Subscriptions per tenant, and how they split.
const SUBSCRIPTIONS_PER_TENANT: usize = 20;
const EXACT_PER_TENANT: usize = 16;
const PLUS_PER_TENANT: usize = 3;

/// Shards of the interest table.
const SHARDS: u16 = 8;

const SIZES: [(usize, &str); 2] = [(10_000, "10k"), (1_000_000, "1M")];

/// splitmix64: a fixed-seed source of spread-out numbers; the bench needs no better.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The subscriptions, the interest table derived from them, and the topics to publish.
struct Fixture {
    local: SubscriptionTrie<u32, u8>,
    interest: SubscriptionTrie<u16, u32>,
    topics: Vec<String>,
}

impl Fixture {
    fn new(subscriptions: usize) -> Self {
        let started = Instant::now();
        let tenants = subscriptions / SUBSCRIPTIONS_PER_TENANT;
        let mut filters = Vec::with_capacity(subscriptions);
        for tenant in 0..tenants {
            for device in 0..EXACT_PER_TENANT {
                filters.push(format!("tenant/{tenant}/device/{device}/sensor"));
            }
            for _ in 0..PLUS_PER_TENANT {
                filters.push(format!("tenant/{tenant}/device/+/sensor"));
            }
            filters.push(format!("tenant/{tenant}/#"));
        }

        let before = resident_kib();
        let mut local = SubscriptionTrie::new();
        for (session, filter) in (0u32..).zip(&filters) {
            local.insert(filter, session, 1);
        }
        let local_kib = resident_kib().saturating_sub(before);

        let before = resident_kib();
        let mut interest: SubscriptionTrie<u16, u32> = SubscriptionTrie::new();
        let mut rng = Rng(0x5eed);
        for filter in &filters {
            // The subscribing session's home shard: where the interest table counts it.
            let shard = rng.below(usize::from(SHARDS)) as u16;
            match interest.get_mut(filter, &shard) {
                Some(count) => *count += 1,
                None => {
                    interest.insert(filter, shard, 1);
                }
            }
        }
        let interest_kib = resident_kib().saturating_sub(before);

        let topics = (0..TOPICS)
            .map(|_| {
                let tenant = rng.below(tenants);
                let device = rng.below(EXACT_PER_TENANT);
                format!("tenant/{tenant}/device/{device}/sensor")
            })
            .collect();
        eprintln!(
            "{subscriptions} subscriptions: local trie {} entries in {} filters, {} nodes, \
             ~{} B/subscription resident; interest table {} entries in {} filters, \
             ~{} B/subscription resident; built in {:.2?}",
            local.len(),
            local.filters_len(),
            local.node_count(),
            local_kib * 1024 / subscriptions,
            interest.len(),
            interest.filters_len(),
            interest_kib * 1024 / subscriptions,
            started.elapsed(),
        );
        Fixture {
            local,
            interest,
            topics,
        }
    }

    /// The next [`BATCH`] topics, cycling.
    fn batch(&self, at: &mut usize) -> &[String] {
        let start = *at;
        *at = (start + BATCH) % TOPICS;
        &self.topics[start..start + BATCH]
    }
}

/// This process's resident memory in KiB (`VmRSS`), 0 where `/proc` cannot say. Differences
/// of it are approximate: the allocator keeps freed memory.
fn resident_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn topic_match(c: &mut Criterion) {
    let fixtures: Vec<(Fixture, &str)> = SIZES
        .iter()
        .map(|&(size, label)| (Fixture::new(size), label))
        .collect();

    let mut group = c.benchmark_group("local_trie");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(60)
        .throughput(Throughput::Elements(BATCH as u64));
    for (fixture, label) in &fixtures {
        let mut at = 0;
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let mut delivered = 0u32;
                for topic in fixture.batch(&mut at) {
                    fixture
                        .local
                        .for_each_match(black_box(topic), |_, session, qos| {
                            delivered = delivered.wrapping_add(session ^ u32::from(*qos));
                        });
                }
                black_box(delivered)
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("interest_table");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(60)
        .throughput(Throughput::Elements(BATCH as u64));
    for (fixture, label) in &fixtures {
        let mut at = 0;
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| {
                let mut shards_total = 0u32;
                for topic in fixture.batch(&mut at) {
                    let mut shards = 0u8;
                    fixture
                        .interest
                        .for_each_match(black_box(topic), |_, shard, _| shards |= 1 << shard);
                    shards_total += shards.count_ones();
                }
                black_box(shards_total)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, topic_match);
criterion_main!(benches);

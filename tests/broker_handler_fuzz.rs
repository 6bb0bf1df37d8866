//! The handler fuzz target's logic in the normal test suite: random scripts of valid and
//! invalid packets (`hostile::Script`, the same generator and invariants as
//! `fuzz/fuzz_targets/handler.rs`) against one running broker, two shards, with small
//! limits so that scripts reach them. Every script must keep the invariants listed in
//! `tests/hostile/mod.rs`; after all of them the broker must not have panicked, its memory
//! must be bounded, and its queued-memory gauge must be back at zero.

pub mod common;
pub mod hostile;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use common::*;
use hostile::{run_script, Outcome, Script, LIMITS_TOML};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Cases per run: a few hundred keep it to seconds.
const CASES: u32 = 300;

/// How much the broker's resident memory may grow over all the cases, in KiB: 300 scripts
/// of at most 3 connections and 48 packets of at most 3 KB each, with the persistent
/// sessions they leave behind, must not come near it.
const RSS_GROWTH_KIB_MAX: u64 = 64 << 10;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn random_packet_sequences_keep_every_invariant_ringmq_only() {
    if skip_unless_ringmq("the invariants include ringmq's limits and its shutdown log") {
        return;
    }
    let mut broker = Broker::start(
        BrokerOptions::default()
            .shards(2)
            .storage("fsync = \"never\"\nsegment_bytes = 4194304")
            .config(LIMITS_TOML, ""),
    );
    let addr = broker.addr();
    let rss_before = rss_kib(broker.pid());
    let case = AtomicU64::new(0);
    let totals = Mutex::new(Outcome::default());
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        // A failing script can wait out the reply timeout; shrinking stops after a while.
        max_shrink_time: 60_000,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(any::<u8>(), 0..400), |bytes| {
        let n = case.fetch_add(1, Ordering::Relaxed);
        let script = Script::from_bytes(&bytes);
        match run_script(addr, &script, &format!("f{n}")) {
            Ok(o) => {
                totals.lock().unwrap().add(&o);
                Ok(())
            }
            Err(v) => Err(TestCaseError::fail(format!("{v}\nscript: {script:#?}"))),
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let rss = rss_kib(broker.pid());
    let t = *totals.lock().unwrap();
    println!(
        "{CASES} scripts: {} connections ({} valid and open to the end), {} packets sent ({} \
         invalid), {} bytes, {} packets received, {} connections closed by the broker; broker \
         RSS {rss_before} KiB before, {rss} KiB after",
        t.connections,
        t.strict_to_the_end,
        t.packets_sent,
        t.invalid_sent,
        t.bytes_sent,
        t.packets_received,
        t.closed_by_server,
    );
    assert!(
        rss < rss_before + RSS_GROWTH_KIB_MAX,
        "broker RSS {rss_before} KiB before {CASES} scripts, {rss} KiB after"
    );
    broker.stop();
    let log = broker.log_of_this_run();
    assert!(
        !log.contains("panicked"),
        "a connection task panicked:\n{log}"
    );
    let gauges: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(": limits "))
        .flat_map(|l| l.split_whitespace())
        .filter(|w| w.starts_with("queued_bytes="))
        .collect();
    assert_eq!(
        gauges,
        ["queued_bytes=0", "queued_bytes=0"],
        "every connection gone: nothing counted as queued"
    );
}

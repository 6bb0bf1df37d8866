//! Sequences of valid and invalid packets, over up to three connections at once, against a
//! broker running in this process: the packet handlers, the connection loop, takeover,
//! limits and routing, through their real sockets. Each input is a script
//! (`hostile::Script::from_bytes`); every reply must keep the invariants of
//! `tests/hostile/mod.rs` (well-formed server packets, each connection's acknowledgements,
//! subscriptions, packet ids and Receive Maximum consistent, closes where due), and the
//! broker must still serve a fresh client afterwards. A panic anywhere in the broker
//! aborts the process: a crash.
//!
//! `tests/broker_handler_fuzz.rs` runs the same scripts in CI (proptest, 300 cases).

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use ringmq_fuzz::hostile::{run_script, Script};
use ringmq_fuzz::in_process_broker;

static CASE: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let addr = in_process_broker();
    let script = Script::from_bytes(data);
    // Client ids unique per input: the broker keeps sessions across inputs.
    let n = CASE.fetch_add(1, Ordering::Relaxed);
    if let Err(v) = run_script(addr, &script, &format!("z{}-{n}", std::process::id())) {
        panic!("{v}\nscript: {script:#?}");
    }
});

//! One clock for every client of the process: nanoseconds of CLOCK_MONOTONIC since start.
//!
//! Publishers write it into payloads and subscribers read it back; all clients live in this
//! process, so they share the base and no clock synchronisation is needed.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static BASE: OnceLock<Instant> = OnceLock::new();

fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// Fixes the common epoch; call once before any client starts.
pub fn init() {
    base();
}

/// Nanoseconds since the common epoch.
pub fn now_ns() -> u64 {
    let nanos = Instant::now().saturating_duration_since(base()).as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// How long from now until `at_ns` (zero when it has passed).
pub fn until(at_ns: u64) -> Duration {
    Duration::from_nanos(at_ns.saturating_sub(now_ns()))
}

pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Seconds as nanoseconds, saturating.
pub fn secs_to_ns(secs: f64) -> u64 {
    let ns = secs * NS_PER_SEC as f64;
    if ns <= 0.0 {
        0
    } else if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns as u64
    }
}

//! The main thread's view of a run: waits on conditions over the shared counters and
//! prints a progress line on stderr every second meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shared::{Shared, Totals};

/// How often the main thread looks at the counters.
const POLL: Duration = Duration::from_millis(10);
const LINE_EVERY: Duration = Duration::from_secs(1);

pub struct Monitor {
    shared: Arc<Shared>,
    enabled: bool,
    started: Instant,
    last: Totals,
    last_at: Instant,
    next_line: Instant,
}

impl Monitor {
    pub fn new(shared: Arc<Shared>, enabled: bool) -> Monitor {
        let now = Instant::now();
        Monitor {
            shared,
            enabled,
            started: now,
            last: Totals::default(),
            last_at: now,
            next_line: now + LINE_EVERY,
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Waits until `done` holds or `deadline` passes; true when `done` held.
    pub fn wait(&mut self, deadline: Instant, mut done: impl FnMut(&Totals) -> bool) -> bool {
        loop {
            let t = self.shared.totals();
            if done(&t) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if now >= self.next_line {
                self.line(&t, now);
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    /// Waits until `done`, `deadline`, or `quiet` without any delivery or acknowledgement.
    pub fn wait_settled(
        &mut self,
        deadline: Instant,
        quiet: Duration,
        mut done: impl FnMut(&Totals) -> bool,
    ) -> bool {
        let mut seen = (0, 0, 0);
        let mut changed = Instant::now();
        self.wait(deadline, |t| {
            let now = (t.delivered, t.acked, t.connected);
            if now != seen {
                seen = now;
                changed = Instant::now();
            }
            done(t) || changed.elapsed() >= quiet
        })
    }

    fn line(&mut self, t: &Totals, now: Instant) {
        let dt = now.duration_since(self.last_at).as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
        let l = &self.last;
        let lat_n = t.latency_count.saturating_sub(l.latency_count);
        let avg = if lat_n > 0 {
            format!(
                "{:.0} us",
                t.latency_sum_ns.saturating_sub(l.latency_sum_ns) as f64 / lat_n as f64 / 1000.0
            )
        } else {
            "-".into()
        };
        if self.enabled {
            eprintln!(
                "[{:>6.1}s] {:<9} conns {} (+{}/s, {} failed) | sent {}/s | acked {}/s | delivered {}/s {:.2} MB/s avg {} | errors {}",
                now.duration_since(self.started).as_secs_f64(),
                self.shared.phase().label(),
                t.connected,
                human(rate(t.connected, l.connected)),
                t.connect_failed,
                human(rate(t.sent, l.sent)),
                human(rate(t.acked, l.acked)),
                human(rate(t.delivered, l.delivered)),
                rate(t.delivered_bytes, l.delivered_bytes) / 1e6,
                avg,
                t.errors,
            );
        }
        self.last = *t;
        self.last_at = now;
        self.next_line = now + LINE_EVERY;
    }
}

/// 1234567.0 -> "1.23M".
fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

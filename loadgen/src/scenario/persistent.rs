//! persistent: offline sessions accumulate messages, then reconnect and drain them.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::cli::{self, CommonArgs, TrafficArgs};
use crate::clock::{self, secs_to_ns};
use crate::report::{PersistentFigures, Report};
use crate::scenario::traffic::{Plan, QUIET, START_DELAY_NS};
use crate::scenario::{delivery_figures, publish_figures, Driver};
use crate::shared::Phase;
use crate::subscriber::{Mode, SubSpec};

pub fn run(common: &CommonArgs, traffic: &TrafficArgs, sessions: usize, messages: u64) -> Report {
    if traffic.qos == Some(0) {
        cli::fail("persistent: --qos must be 1 or 2 (QoS 0 messages are not queued)");
    }
    let cfg = common.settings(Some(traffic), 1, 1);
    let prefix = cfg.client_prefix.clone();
    let mut plan = Plan::fan_in(1, sessions as u32, 1, None, &prefix);
    for s in &mut plan.subs {
        // Persistent session ids of their own, so they never meet a live subscriber's.
        s.client_id = format!("{prefix}ps{}", s.id);
    }
    let works = plan.split(common.threads as usize, Mode::Persistent, messages);
    let mut d = Driver::start(common, cfg, works, 1);
    d.setup((sessions + 1) as u64, common.setup_timeout);

    // Publish while the sessions are offline, bounded by --duration.
    let start = clock::now_ns() + START_DELAY_NS;
    let end = start + secs_to_ns(common.duration);
    d.go(start, end, start, u64::MAX);
    let deadline =
        Instant::now() + clock::until(end) + Duration::from_secs_f64(common.drain_timeout);
    let shared = d.shared.clone();
    d.monitor.wait(deadline, |t| {
        shared.publishers_final.load(Relaxed) >= 1 && t.acked >= t.sent
    });
    let published_ns = clock::now_ns().saturating_sub(start);
    let sent = d.publisher_sent();
    let acked = d.shared.totals().acked;

    // Reconnect and drain.
    let reconnect = clock::now_ns();
    d.shared.set_windows(start, end, reconnect, u64::MAX);
    d.shared.set_phase(Phase::Reconnect);
    let expected = plan.expected(&sent);
    let drain_deadline = Instant::now() + Duration::from_secs_f64(common.drain_timeout);
    d.monitor
        .wait_settled(drain_deadline, QUIET, |t| t.unique >= expected);

    let out = d.finish();
    let mut report = d.report("persistent", common, &out);
    report.settings.publishers = 1;
    report.settings.subscribers = sessions;
    report.settings.topics = 1;
    report.settings.clients = sessions + 1;
    report.publish = Some(publish_figures(&out, published_ns as f64 / 1e9, acked));
    let first = out
        .subs
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.reconnect_ns)
        .min();
    let last = out.subs.iter().map(|s| s.last_new_ns).max();
    let drain_s = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
        _ => 0.0,
    };
    let specs: Vec<SubSpec> = plan.subs.clone();
    let delivery = delivery_figures(&specs, out.subs, &sent, &out.stats, drain_s.max(1e-9));
    let total_sent: u64 = sent.iter().sum();
    report.persistent = Some(PersistentFigures {
        sessions,
        messages: total_sent,
        publish_s: published_ns as f64 / 1e9,
        publish_per_s: total_sent as f64 / (published_ns as f64 / 1e9).max(1e-9),
        drain_s,
        drain_per_s: if drain_s > 0.0 {
            delivery.received_unique as f64 / drain_s
        } else {
            0.0
        },
    });
    report.delivery = Some(delivery);
    report
}

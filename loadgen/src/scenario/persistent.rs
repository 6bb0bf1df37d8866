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

/// Which part of the scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Set up, publish, reconnect and drain.
    Whole,
    /// Set up and publish; the sessions stay offline (`--keep-offline`).
    KeepOffline,
    /// Reconnect sessions an earlier run left offline, and drain (`--resume`).
    Resume,
}

pub fn run(
    common: &CommonArgs,
    traffic: &TrafficArgs,
    sessions: usize,
    messages: u64,
    how: How,
) -> Report {
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
    let mode = if how == How::Resume {
        // Nothing publishes: the messages are in the broker already.
        plan.pubs.clear();
        Mode::Resume
    } else {
        Mode::Persistent
    };
    let works = plan.split(common.threads as usize, mode, messages);
    let mut d = Driver::start(common, cfg, works, 1);
    d.setup((sessions + plan.pubs.len()) as u64, common.setup_timeout);

    let (sent, acked, published_ns, pub_window) = if how == How::Resume {
        (vec![messages], 0, 0, (0, 0))
    } else {
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
        (
            d.publisher_sent(),
            d.shared.totals().acked,
            published_ns,
            (start, end),
        )
    };
    if how == How::KeepOffline {
        let out = d.finish();
        let mut report = d.report("persistent", common, &out);
        fill_settings(&mut report, sessions, 1);
        report.publish = Some(publish_figures(&out, published_ns as f64 / 1e9, acked));
        let total_sent: u64 = sent.iter().sum();
        report.persistent = Some(PersistentFigures {
            sessions,
            messages: total_sent,
            publish_s: published_ns as f64 / 1e9,
            publish_per_s: per_s(total_sent, published_ns as f64 / 1e9),
            ..PersistentFigures::default()
        });
        return report;
    }

    // Reconnect and drain.
    let reconnect = clock::now_ns();
    d.shared
        .set_windows(pub_window.0, pub_window.1, reconnect, u64::MAX);
    d.shared.set_phase(Phase::Reconnect);
    let expected = plan.expected(&sent);
    let drain_deadline = Instant::now() + Duration::from_secs_f64(common.drain_timeout);
    d.monitor
        .wait_settled(drain_deadline, QUIET, |t| t.unique >= expected);

    let out = d.finish();
    let mut report = d.report("persistent", common, &out);
    fill_settings(&mut report, sessions, plan.pubs.len());
    if how == How::Whole {
        report.publish = Some(publish_figures(&out, published_ns as f64 / 1e9, acked));
    }
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
        publish_per_s: per_s(total_sent, published_ns as f64 / 1e9),
        drain_s,
        drain_per_s: per_s(delivery.received_unique, drain_s),
    });
    report.delivery = Some(delivery);
    report
}

fn fill_settings(report: &mut Report, sessions: usize, publishers: usize) {
    report.settings.publishers = publishers;
    report.settings.subscribers = sessions;
    report.settings.topics = 1;
    report.settings.clients = sessions + publishers;
    report.settings.persistent_subscribers = true;
}

/// `n` per second over `secs`; 0 when nothing was timed (`--resume` publishes nothing).
fn per_s(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

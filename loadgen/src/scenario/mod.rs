//! The scenarios: what each worker thread runs ([`Work`]), the main thread's driver, and
//! the figures computed from what the threads hand back.

pub mod idle;
pub mod persistent;
pub mod storm;
pub mod traffic;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{self, CommonArgs, Placement, Scenario};
use crate::clock;
use crate::local::ThreadStats;
use crate::progress::Monitor;
use crate::publisher::{PubOutcome, PubSpec};
use crate::report::{Connections, DeliveryFigures, Errors, PublishFigures, Report, RunSettings};
use crate::runtime::{self, Workers};
use crate::settings::Settings;
use crate::shared::{Phase, Shared};
use crate::stats::SeqSet;
use crate::subscriber::{Mode, SubOutcome, SubSpec};

/// One worker thread's share of the run.
pub enum Work {
    Traffic {
        pubs: Vec<PubSpec>,
        subs: Vec<SubSpec>,
        mode: Mode,
        /// Messages per publisher at most.
        limit: u64,
    },
    Idle {
        clients: Vec<String>,
    },
    Storm {
        loops: Vec<u32>,
    },
}

/// What one worker thread hands back.
#[derive(Debug, Default)]
pub struct WorkerResult {
    pub stats: ThreadStats,
    pub subs: Vec<SubOutcome>,
    pub pubs: Vec<PubOutcome>,
    pub pings: u64,
    pub pongs: u64,
}

/// Runs the chosen scenario; the report, and whether to print it as JSON.
pub fn run(scenario: Scenario) -> (Report, bool) {
    match scenario {
        Scenario::Pairs {
            clients,
            topics,
            persistent_subscribers,
            traffic,
            common,
        } => {
            let mut plan =
                traffic::Plan::pairs(clients, topics.unwrap_or(clients), &prefix(&common));
            plan.persistent_subscribers = persistent_subscribers;
            (traffic::run("pairs", plan, &common, &traffic), common.json)
        }
        Scenario::FanIn {
            publishers,
            subscribers,
            topics,
            shared,
            persistent_subscribers,
            traffic,
            common,
        } => {
            if let Some(g) = &shared {
                if g.is_empty() || g.contains(['/', '+', '#']) {
                    cli::fail("--shared: a group name without '/', '+' or '#'");
                }
            }
            let mut plan = traffic::Plan::fan_in(
                publishers,
                subscribers,
                topics,
                shared.as_deref(),
                &prefix(&common),
            );
            plan.persistent_subscribers = persistent_subscribers;
            (traffic::run("fan-in", plan, &common, &traffic), common.json)
        }
        Scenario::FanOut {
            subscribers,
            traffic,
            common,
        } => {
            let plan = traffic::Plan::fan_in(1, subscribers, 1, None, &prefix(&common));
            (
                traffic::run("fan-out", plan, &common, &traffic),
                common.json,
            )
        }
        Scenario::Idle {
            clients,
            broker_pid,
            common,
        } => (
            idle::run(&common, clients as usize, broker_pid),
            common.json,
        ),
        Scenario::ConnectStorm { clients, common } => {
            (storm::run(&common, clients as usize), common.json)
        }
        Scenario::Persistent {
            clients,
            messages,
            keep_offline,
            resume,
            traffic,
            common,
        } => {
            let how = match (keep_offline, resume) {
                (true, _) => persistent::How::KeepOffline,
                (false, true) => persistent::How::Resume,
                (false, false) => persistent::How::Whole,
            };
            (
                persistent::run(
                    &common,
                    &traffic,
                    clients as usize,
                    u64::from(messages),
                    how,
                ),
                common.json,
            )
        }
    }
}

/// The client id and topic prefix (the same default as the settings').
fn prefix(common: &CommonArgs) -> String {
    common
        .client_prefix
        .clone()
        .unwrap_or_else(|| format!("lg{}-", std::process::id()))
}

/// The main thread's handle on a running scenario.
pub struct Driver {
    pub shared: Arc<Shared>,
    pub cfg: Arc<Settings>,
    pub monitor: Monitor,
    pub placement: Placement,
    workers: Option<Workers>,
    threads: usize,
}

/// What the threads handed back, merged.
pub struct Outcome {
    pub stats: ThreadStats,
    pub subs: Vec<SubOutcome>,
    pub pubs: Vec<PubOutcome>,
    pub pings: u64,
    pub pongs: u64,
    pub thread_errors: Vec<String>,
}

impl Driver {
    /// Starts the worker threads; exits with status 1 when they cannot start.
    pub fn start(
        common: &CommonArgs,
        cfg: Settings,
        works: Vec<Work>,
        publishers: usize,
    ) -> Driver {
        let placement = common.placement();
        let threads = works.len();
        let shared = Arc::new(Shared::new(threads, publishers));
        let cfg = Arc::new(cfg);
        let workers = match runtime::start(&placement, works, &shared, &cfg) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("ringmq-loadgen: {e}");
                std::process::exit(1);
            }
        };
        let monitor = Monitor::new(shared.clone(), !common.no_progress);
        Driver {
            shared,
            cfg,
            monitor,
            placement,
            workers: Some(workers),
            threads,
        }
    }

    /// Waits until `clients` clients are through set-up (or the set-up time is up).
    pub fn setup(&mut self, clients: u64, timeout_s: f64) -> bool {
        let deadline = Instant::now() + Duration::from_secs_f64(timeout_s);
        self.monitor.wait(deadline, |t| t.setup_done >= clients)
    }

    /// Sets the windows (ns on the common clock) and moves to `Run`.
    pub fn go(&self, pub_start: u64, pub_end: u64, win_from: u64, win_to: u64) {
        self.shared
            .set_windows(pub_start, pub_end, win_from, win_to);
        self.shared.set_phase(Phase::Run);
    }

    /// Prints progress until `at_ns` on the common clock.
    pub fn sleep_until(&mut self, at_ns: u64) {
        let deadline = Instant::now() + clock::until(at_ns);
        self.monitor.wait(deadline, |_| false);
    }

    /// Ends the run: every client disconnects, every thread hands back its results.
    pub fn finish(&mut self) -> Outcome {
        self.shared.set_phase(Phase::Finish);
        let (results, thread_errors) = match self.workers.take() {
            Some(w) => w.join(),
            None => (Vec::new(), Vec::new()),
        };
        let mut out = Outcome {
            stats: ThreadStats::default(),
            subs: Vec::new(),
            pubs: Vec::new(),
            pings: 0,
            pongs: 0,
            thread_errors,
        };
        for r in results {
            out.stats.merge(&r.stats);
            out.subs.extend(r.subs);
            out.pubs.extend(r.pubs);
            out.pings += r.pings;
            out.pongs += r.pongs;
        }
        out
    }

    /// The report's common part.
    pub fn report(&self, scenario: &'static str, common: &CommonArgs, out: &Outcome) -> Report {
        let t = self.shared.totals();
        let cfg = &self.cfg;
        let mut samples = out.thread_errors.clone();
        samples.extend(out.stats.error_samples.iter().cloned());
        Report {
            scenario,
            broker: format!("{}:{}", common.host, common.port),
            mqtt: cfg.version.to_string(),
            settings: RunSettings {
                qos: cfg.qos as u8,
                payload_bytes: cfg.payload_bytes,
                rate_per_publisher: cfg.rate,
                inflight: cfg.inflight,
                threads: self.threads,
                placement: match &self.placement {
                    Placement::Unbound => "unbound".into(),
                    Placement::Pinned(cpus) => format!("pinned {cpus:?}"),
                },
                duration_s: common.duration,
                warmup_s: common.warmup,
                drain_timeout_s: common.drain_timeout,
                keep_alive_s: cfg.keep_alive_secs,
                source_ips: cfg.source_ips.len(),
                client_prefix: cfg.client_prefix.clone(),
                ..RunSettings::default()
            },
            elapsed_s: self.monitor.started().elapsed().as_secs_f64(),
            connections: Connections {
                established: t.connected,
                failed: t.connect_failed,
                connect_latency: out.stats.connect.summary(),
            },
            executor_kicks: t.kicks,
            errors: Errors {
                count: t.errors + out.thread_errors.len() as u64,
                samples,
            },
            ..Report::default()
        }
    }

    /// Each publisher's final count of messages sent, by publisher id.
    pub fn publisher_sent(&self) -> Vec<u64> {
        self.shared
            .publisher_sent
            .iter()
            .map(|a| a.load(Relaxed))
            .collect()
    }
}

/// Publishing figures from the publishers' outcomes.
pub fn publish_figures(out: &Outcome, duration_s: f64, acked: u64) -> PublishFigures {
    let sent: u64 = out.pubs.iter().map(|p| p.sent).sum();
    let unacked: u64 = out.pubs.iter().map(|p| p.unacked).sum();
    PublishFigures {
        publishers: out.pubs.len(),
        publishers_failed: out.pubs.iter().filter(|p| !p.ok).count(),
        sent,
        sent_in_window: out.stats.window_sent,
        sent_per_s: out.stats.window_sent as f64 / duration_s,
        acked,
        unacked,
        acked_in_window: out.stats.window_acked,
        acked_per_s: out.stats.window_acked as f64 / duration_s,
        ack_latency: out.stats.ack.summary(),
    }
}

/// Delivery figures: loss and duplicates per unit (a subscriber, or a shared group as a
/// whole) against what its publishers sent.
pub fn delivery_figures(
    specs: &[SubSpec],
    subs: Vec<SubOutcome>,
    sent: &[u64],
    stats: &ThreadStats,
    duration_s: f64,
) -> DeliveryFigures {
    struct Unit {
        ok: bool,
        expects: Vec<u32>,
        seen: HashMap<u32, SeqSet>,
        received: u64,
    }
    let mut f = DeliveryFigures {
        subscribers: subs.len(),
        subscribers_failed: subs.iter().filter(|s| !s.ok).count(),
        delivered_in_window: stats.window_delivered,
        delivered_per_s: stats.window_delivered as f64 / duration_s,
        mb_per_s: stats.window_bytes as f64 / duration_s / 1e6,
        latency: stats.delivery.summary(),
        ..DeliveryFigures::default()
    };
    let mut units: HashMap<String, Unit> = HashMap::new();
    for s in subs {
        let expects = specs
            .get(s.id as usize)
            .map(|spec| spec.expects.clone())
            .unwrap_or_default();
        let unit = units.entry(s.unit.clone()).or_insert_with(|| Unit {
            ok: false,
            expects,
            seen: HashMap::new(),
            received: 0,
        });
        unit.ok |= s.ok;
        f.unexpected += s.unexpected;
        f.foreign += s.foreign;
        f.delivered += s.foreign;
        for (publisher, track) in s.tracks {
            f.delivered += track.received;
            f.out_of_order += track.out_of_order;
            unit.received += track.received;
            match unit.seen.get_mut(&publisher) {
                Some(set) => set.union(&track.seen),
                None => {
                    unit.seen.insert(publisher, track.seen);
                }
            }
        }
    }
    for unit in units.values().filter(|u| u.ok) {
        for p in &unit.expects {
            let exp = sent.get(*p as usize).copied().unwrap_or(0);
            let limit = u32::try_from(exp).unwrap_or(u32::MAX);
            let got = unit.seen.get(p).map_or(0, |s| s.count_below(limit));
            f.expected += exp;
            f.received_unique += got;
            f.lost += exp.saturating_sub(got);
        }
        let distinct: u64 = unit.seen.values().map(|s| s.count_below(u32::MAX)).sum();
        f.duplicates += unit.received.saturating_sub(distinct);
    }
    f
}

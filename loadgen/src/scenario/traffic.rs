//! pairs, fan-in and fan-out: publishers and subscribers connected from set-up to the end,
//! publishing for warm-up + duration, then draining.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use std::future::Future;

use glommio::{Latency, Shares, Task, TaskQueueHandle};

use crate::cli::{CommonArgs, TrafficArgs};
use crate::clock::{self, secs_to_ns};
use crate::local::{guarded, Local};
use crate::publisher::{self, PubOutcome, PubSpec};
use crate::report::Report;
use crate::scenario::{delivery_figures, publish_figures, Driver, Work, WorkerResult};
use crate::subscriber::{self, Mode, SubOutcome, SubSpec};
use ringmq::protocol::QoS;

/// Publishing starts this long after the go, so that every thread has seen it.
pub const START_DELAY_NS: u64 = 50_000_000;

/// The drain ends early when nothing was delivered or acknowledged for this long.
pub const QUIET: Duration = Duration::from_secs(2);

/// Who publishes where and who expects what.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub pubs: Vec<PubSpec>,
    pub subs: Vec<SubSpec>,
    pub topics: usize,
    pub shared_group: Option<String>,
    /// Subscribers keep persistent sessions ([`Mode::LivePersistent`]).
    pub persistent_subscribers: bool,
}

fn topic(prefix: &str, t: u32) -> String {
    format!("{prefix}topic/{t}")
}

impl Plan {
    /// N pairs; publisher i and subscriber i on topic i mod T.
    pub fn pairs(n: u32, topics: u32, prefix: &str) -> Plan {
        let topics = topics.clamp(1, n);
        let pubs = (0..n)
            .map(|i| PubSpec {
                id: i,
                client_id: format!("{prefix}p{i}"),
                topic: topic(prefix, i % topics),
            })
            .collect();
        let subs = (0..n)
            .map(|i| SubSpec {
                id: i,
                client_id: format!("{prefix}s{i}"),
                filters: vec![topic(prefix, i % topics)],
                unit: format!("s{i}"),
                expects: (0..n).filter(|p| p % topics == i % topics).collect(),
            })
            .collect();
        Plan {
            pubs,
            subs,
            topics: topics as usize,
            shared_group: None,
            persistent_subscribers: false,
        }
    }

    /// P publishers over T topics; S subscribers each on all T topics (or sharing them
    /// through `$share/group/`).
    pub fn fan_in(p: u32, s: u32, topics: u32, group: Option<&str>, prefix: &str) -> Plan {
        let pubs = (0..p)
            .map(|i| PubSpec {
                id: i,
                client_id: format!("{prefix}p{i}"),
                topic: topic(prefix, i % topics),
            })
            .collect();
        let filters: Vec<String> = (0..topics.min(p))
            .map(|t| match group {
                Some(g) => format!("$share/{g}/{}", topic(prefix, t)),
                None => topic(prefix, t),
            })
            .collect();
        let subs = (0..s)
            .map(|i| SubSpec {
                id: i,
                client_id: format!("{prefix}s{i}"),
                filters: filters.clone(),
                unit: match group {
                    Some(g) => format!("g{g}"),
                    None => format!("s{i}"),
                },
                expects: (0..p).collect(),
            })
            .collect();
        Plan {
            pubs,
            subs,
            topics: topics.min(p) as usize,
            shared_group: group.map(str::to_owned),
            persistent_subscribers: false,
        }
    }

    /// Subscriber i and publisher i go to thread i mod `threads`.
    pub fn split(&self, threads: usize, mode: Mode, limit: u64) -> Vec<Work> {
        (0..threads)
            .map(|t| Work::Traffic {
                pubs: self
                    .pubs
                    .iter()
                    .filter(|p| p.id as usize % threads == t)
                    .cloned()
                    .collect(),
                subs: self
                    .subs
                    .iter()
                    .filter(|s| s.id as usize % threads == t)
                    .cloned()
                    .collect(),
                mode,
                limit,
            })
            .collect()
    }

    /// Deliveries due once every publisher has sent `sent[id]`: per unit (a subscriber or
    /// a shared group), the sum over its expected publishers.
    pub fn expected(&self, sent: &[u64]) -> u64 {
        let mut units = std::collections::HashSet::new();
        self.subs
            .iter()
            .filter(|s| units.insert(s.unit.as_str()))
            .map(|s| {
                s.expects
                    .iter()
                    .map(|p| sent.get(*p as usize).copied().unwrap_or(0))
                    .sum::<u64>()
            })
            .sum()
    }
}

/// One worker thread of a traffic scenario: its subscribers and publishers as tasks.
pub async fn thread(
    local: &Rc<Local>,
    pubs: Vec<PubSpec>,
    subs: Vec<SubSpec>,
    mode: Mode,
    limit: u64,
) -> WorkerResult {
    let publishers = local.cfg.publishers;
    // Subscribers get 10x the CPU share of publishers whenever both have work, and ask the
    // executor to look at the sockets every millisecond: the loadgen's consumers must keep
    // up, so that a broker is measured by what it delivers and not by how slowly this
    // process reads (a closed-loop publisher would otherwise take the whole thread).
    let ex = glommio::executor();
    let sub_queue = ex.create_task_queue(
        Shares::Static(1000),
        Latency::Matters(Duration::from_millis(1)),
        "subscribers",
    );
    let pub_queue = ex.create_task_queue(Shares::Static(100), Latency::NotImportant, "publishers");
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .map(|spec| {
            let fallback = SubOutcome::new(&spec);
            let what = format!("subscriber {}", spec.client_id);
            let task = guarded(
                local.clone(),
                what,
                subscriber::run(local.clone(), spec, mode),
            );
            (fallback, spawn_in(local, task, sub_queue))
        })
        .collect();
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .map(|spec| {
            let fallback = PubOutcome::default();
            let what = format!("publisher {}", spec.client_id);
            let task = publisher::run(local.clone(), spec, limit, publishers);
            (
                fallback,
                spawn_in(local, guarded(local.clone(), what, task), pub_queue),
            )
        })
        .collect();
    let mut result = WorkerResult::default();
    for (fallback, task) in sub_tasks {
        let outcome = match task {
            Some(t) => t.await,
            None => None,
        };
        result.subs.push(outcome.unwrap_or(fallback));
    }
    for (fallback, task) in pub_tasks {
        let outcome = match task {
            Some(t) => t.await,
            None => None,
        };
        result.pubs.push(outcome.unwrap_or(fallback));
    }
    result
}

/// Spawns `fut` into `queue`; `None` (counted as an error) if the queue refuses it.
fn spawn_in<T: 'static>(
    local: &Local,
    fut: impl Future<Output = Option<T>> + 'static,
    queue: TaskQueueHandle,
) -> Option<Task<Option<T>>> {
    glommio::spawn_local_into(fut, queue)
        .map_err(|e| local.error(format_args!("cannot start a client task: {e}")))
        .ok()
}

/// Runs pairs, fan-in or fan-out from the main thread.
pub fn run(
    scenario: &'static str,
    plan: Plan,
    common: &CommonArgs,
    traffic: &TrafficArgs,
) -> Report {
    let cfg = common.settings(Some(traffic), plan.pubs.len(), 0);
    let qos = cfg.qos;
    let mode = if plan.persistent_subscribers {
        Mode::LivePersistent
    } else {
        Mode::Live
    };
    let works = plan.split(common.threads as usize, mode, u64::MAX);
    let mut d = Driver::start(common, cfg, works, plan.pubs.len());
    let clients = (plan.pubs.len() + plan.subs.len()) as u64;
    d.setup(clients, common.setup_timeout);

    let start = clock::now_ns() + START_DELAY_NS;
    let warm_end = start + secs_to_ns(common.warmup);
    let end = warm_end + secs_to_ns(common.duration);
    d.go(start, end, warm_end, end);
    d.sleep_until(end);

    // Drain: wait for every publisher's final count, then for the deliveries and acks.
    let drain_deadline = Instant::now() + Duration::from_secs_f64(common.drain_timeout);
    let publishers = plan.pubs.len() as u64;
    let shared = d.shared.clone();
    d.monitor.wait(drain_deadline, |_| {
        shared.publishers_final.load(Relaxed) >= publishers
    });
    let sent = d.publisher_sent();
    let expected = plan.expected(&sent);
    d.monitor.wait_settled(drain_deadline, QUIET, |t| {
        t.unique >= expected && (qos == QoS::AtMostOnce || t.acked >= t.sent)
    });

    let acked = d.shared.totals().acked;
    let out = d.finish();
    let mut report = d.report(scenario, common, &out);
    report.settings.publishers = plan.pubs.len();
    report.settings.subscribers = plan.subs.len();
    report.settings.topics = plan.topics;
    report.settings.shared_group = plan.shared_group.clone();
    report.settings.persistent_subscribers = plan.persistent_subscribers;
    report.settings.clients = plan.pubs.len() + plan.subs.len();
    report.publish = Some(publish_figures(&out, common.duration, acked));
    let last_new = out.subs.iter().map(|s| s.last_new_ns).max().unwrap_or(0);
    let mut delivery = delivery_figures(&plan.subs, out.subs, &sent, &out.stats, common.duration);
    delivery.drain_s = Some(last_new.saturating_sub(end) as f64 / 1e9);
    report.delivery = Some(delivery);
    report
}

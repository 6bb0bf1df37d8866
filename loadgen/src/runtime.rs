//! Worker threads: one glommio executor each, pinned or unbound, each running its share of
//! the connections and handing its results back when the run finishes.

use std::sync::Arc;
use std::time::Duration;

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder};

use crate::cli::Placement;
use crate::local::{Local, ThreadStats};
use crate::scenario::{idle, storm, traffic, Work, WorkerResult};
use crate::settings::Settings;
use crate::shared::Shared;
use crate::watchdog::{self, Watchdog};

/// io_uring memory registered per executor: sockets never use it (glommio's default of
/// 10 MiB would only cost memlock).
const IO_MEMORY_BYTES: usize = 64 << 10;
const RING_DEPTH: usize = 256;
/// How long a task queue runs before the executor polls I/O again.
const PREEMPT: Duration = Duration::from_millis(5);

/// The running worker threads, and the watchdog that keeps their executors awake.
pub struct Workers {
    handles: Vec<(usize, ExecutorJoinHandle<WorkerResult>)>,
    watchdog: Watchdog,
}

/// Probes io_uring (glommio panics with a misleading message without it) and raises the
/// open-file limit to its hard maximum (one descriptor per connection).
pub fn prepare() -> Result<(), String> {
    ringmq::shard::runtime::check_io_uring().map_err(|e| e.to_string())?;
    watchdog::install()?;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the one struct passed, alive for the call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    Ok(())
}

/// Starts one executor per element of `works`.
pub fn start(
    placement: &Placement,
    works: Vec<Work>,
    shared: &Arc<Shared>,
    cfg: &Arc<Settings>,
) -> Result<Workers, String> {
    let mut handles = Vec::with_capacity(works.len());
    for (i, work) in works.into_iter().enumerate() {
        let place = match placement {
            Placement::Unbound => glommio::Placement::Unbound,
            Placement::Pinned(cpus) => match cpus.get(i) {
                Some(&cpu) => glommio::Placement::Fixed(cpu),
                None => glommio::Placement::Unbound,
            },
        };
        let (shared, cfg) = (shared.clone(), cfg.clone());
        // The closure only moves Send values; every Rc is made on the executor's thread.
        let handle = LocalExecutorBuilder::new(place)
            .name(&format!("loadgen-{i}"))
            .io_memory(IO_MEMORY_BYTES)
            .ring_depth(RING_DEPTH)
            .preempt_timer(PREEMPT)
            .spawn(move || async move { run_thread(i, work, shared, cfg).await })
            .map_err(|e| format!("starting worker thread {i}: {e}"))?;
        handles.push((i, handle));
    }
    Ok(Workers {
        handles,
        watchdog: Watchdog::start(shared.clone()),
    })
}

async fn run_thread(
    index: usize,
    work: Work,
    shared: Arc<Shared>,
    cfg: Arc<Settings>,
) -> WorkerResult {
    watchdog::register(&shared, index);
    let local = Local::new(index, shared.clone(), cfg);
    let control = glommio::spawn_local(local.clone().control());
    let mut result = match work {
        Work::Traffic {
            pubs,
            subs,
            mode,
            limit,
        } => traffic::thread(&local, pubs, subs, mode, limit).await,
        Work::Idle { clients } => idle::thread(&local, clients).await,
        Work::Storm { loops } => storm::thread(&local, loops).await,
    };
    local.finish();
    control.await;
    result.stats = std::mem::take(&mut *local.stats.borrow_mut());
    watchdog::unregister(&shared, index);
    result
}

impl Workers {
    /// Waits for every thread; a thread that failed (its executor did not start, or a
    /// panic escaped) gives an error message instead of a result.
    pub fn join(self) -> (Vec<WorkerResult>, Vec<String>) {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (i, h) in self.handles {
            match h.join() {
                Ok(r) => results.push(r),
                Err(e) => errors.push(format!("worker thread {i} failed: {e}")),
            }
        }
        self.watchdog.stop();
        (results, errors)
    }
}

impl ThreadStats {
    /// Adds another thread's figures to these.
    pub fn merge(&mut self, other: &ThreadStats) {
        self.connect.merge(&other.connect);
        self.delivery.merge(&other.delivery);
        self.ack.merge(&other.ack);
        for e in &other.error_samples {
            if self.error_samples.len() < 50 {
                self.error_samples.push(e.clone());
            }
        }
        self.window_connects += other.window_connects;
        self.window_delivered += other.window_delivered;
        self.window_bytes += other.window_bytes;
        self.window_sent += other.window_sent;
        self.window_acked += other.window_acked;
    }
}

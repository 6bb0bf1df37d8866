//! connect-storm: connect, CONNACK, DISCONNECT, again, as fast as the broker lets us.

use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::timer::Timer;

use crate::cli::CommonArgs;
use crate::clock::{self, secs_to_ns};
use crate::local::{guarded, Local};
use crate::report::{Report, StormFigures};
use crate::scenario::traffic::START_DELAY_NS;
use crate::scenario::{Driver, Work, WorkerResult};
use crate::shared::Phase;

const READ_BYTES: usize = 256;

/// Pause after a failed attempt, so that a refusing broker is not spun against.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

pub async fn thread(local: &Rc<Local>, loops: Vec<u32>) -> WorkerResult {
    let tasks: Vec<_> = loops
        .into_iter()
        .map(|n| {
            let what = format!("connect loop {n}");
            glommio::spawn_local(guarded(local.clone(), what, connect_loop(local.clone(), n)))
        })
        .collect();
    for t in tasks {
        t.await;
    }
    WorkerResult::default()
}

async fn connect_loop(local: Rc<Local>, n: u32) {
    local.add(|c| &c.setup_done, 1);
    local.add(|c| &c.ready, 1);
    local.wait_phase(Phase::Run).await;
    let (start, end) = local.pub_window();
    let _ = Timer::new(clock::until(start)).await;
    let prefix = &local.cfg.client_prefix;
    let mut attempt: u64 = 0;
    while clock::now_ns() < end && local.phase() < Phase::Finish {
        let id = format!("{prefix}c{n}x{attempt}");
        attempt += 1;
        match local
            .open(local.cfg.connect_packet(&id, true), READ_BYTES)
            .await
        {
            Ok((conn, _)) => conn.disconnect().await,
            Err(_) => {
                let _ = Timer::new(RETRY_PAUSE).await;
            }
        }
    }
    local.add(|c| &c.done, 1);
}

pub fn run(common: &CommonArgs, clients: usize) -> Report {
    let cfg = common.settings(None, 0, 0);
    let threads = common.threads as usize;
    let works = (0..threads)
        .map(|t| Work::Storm {
            loops: (0..clients)
                .filter(|i| i % threads == t)
                .map(|i| i as u32)
                .collect(),
        })
        .collect();
    let mut d = Driver::start(common, cfg, works, 0);
    d.setup(clients as u64, common.setup_timeout);
    let start = clock::now_ns() + START_DELAY_NS;
    let warm_end = start + secs_to_ns(common.warmup);
    let end = warm_end + secs_to_ns(common.duration);
    d.go(start, end, warm_end, end);
    d.sleep_until(end);
    // Attempts under way finish (each is bounded by --connect-timeout).
    let deadline = Instant::now() + Duration::from_secs_f64(common.connect_timeout + 2.0);
    d.monitor.wait(deadline, |t| t.done >= clients as u64);
    let failed = d.shared.totals().connect_failed;
    let out = d.finish();
    let mut report = d.report("connect-storm", common, &out);
    report.settings.clients = clients;
    report.connect_storm = Some(StormFigures {
        concurrency: clients,
        connects: out.stats.window_connects,
        connects_per_s: out.stats.window_connects as f64 / common.duration,
        failed,
    });
    report
}

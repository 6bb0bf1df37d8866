//! idle: many connections that only keep themselves alive, and what they cost the broker.

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use ringmq::protocol::Packet;

use crate::cli::CommonArgs;
use crate::clock::{self, secs_to_ns};
use crate::conn::{flush, Conn, ConnError};
use crate::local::{guarded, Local, Slot};
use crate::report::{BrokerMemory, IdleFigures, Report};
use crate::scenario::{Driver, Work, WorkerResult};
use crate::shared::Phase;

/// Read buffer of an idle connection: it only ever receives PINGRESP.
const READ_BYTES: usize = 256;

/// Pause between "all connected" and the memory reading, for the broker to settle.
const SETTLE: Duration = Duration::from_secs(1);

/// The broker's VmRSS in KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One worker thread: its idle connections as tasks.
pub async fn thread(local: &Rc<Local>, clients: Vec<String>) -> WorkerResult {
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|id| {
            let what = format!("idle client {id}");
            glommio::spawn_local(guarded(local.clone(), what, client(local.clone(), id)))
        })
        .collect();
    let mut result = WorkerResult::default();
    for t in tasks {
        if let Some((pings, pongs)) = t.await {
            result.pings += pings;
            result.pongs += pongs;
        }
    }
    result
}

/// Connects, then pings when quiet for half the keep-alive, until the end.
async fn client(local: Rc<Local>, id: String) -> (u64, u64) {
    let slot = local.slot();
    let opened = local
        .open(local.cfg.connect_packet(&id, true), READ_BYTES)
        .await;
    local.add(|c| &c.setup_done, 1);
    let Ok((mut conn, _)) = opened else {
        return (0, 0);
    };
    local.add(|c| &c.ready, 1);
    let mut counts = (0, 0);
    match keep_alive(&local, &slot, &mut conn, &mut counts).await {
        Ok(()) => conn.disconnect().await,
        Err(e) => local.error(format_args!("idle client {id}: {e}")),
    }
    counts
}

async fn keep_alive(
    local: &Rc<Local>,
    slot: &Slot,
    conn: &mut Conn,
    (pings, pongs): &mut (u64, u64),
) -> Result<(), ConnError> {
    let ping_after = local.cfg.ping_after_ns();
    while local.phase() < Phase::Finish {
        let got = future::or(async { conn.fill().await.map(|()| true) }, async {
            slot.wait().await;
            Ok(false)
        })
        .await?;
        if got {
            while let Some(p) = conn.next_packet()? {
                match p {
                    Packet::PingResp => *pongs += 1,
                    other => {
                        return Err(ConnError::Unexpected(format!(
                            "{} on an idle connection",
                            other.packet_type()
                        )))
                    }
                }
            }
        }
        let now = clock::now_ns();
        if let Some(after) = ping_after {
            if now.saturating_sub(conn.last_write_ns) >= after {
                conn.push(&Packet::PingReq)?;
                *pings += 1;
                if !flush(local, slot, conn, u64::MAX).await? {
                    return Err(ConnError::TimedOut("the broker to read PINGREQ"));
                }
            }
        }
    }
    Ok(())
}

/// Runs the idle scenario from the main thread.
pub fn run(common: &CommonArgs, clients: usize, broker_pid: Option<u32>) -> Report {
    let cfg = common.settings(None, 0, 0);
    if let Some(pid) = broker_pid {
        if rss_kib(pid).is_none() {
            crate::cli::fail(format!(
                "--broker-pid {pid}: cannot read /proc/{pid}/status"
            ));
        }
    }
    let rss_before = broker_pid.and_then(rss_kib).unwrap_or(0);
    let threads = common.threads as usize;
    let prefix = cfg.client_prefix.clone();
    let works = (0..threads)
        .map(|t| Work::Idle {
            clients: (0..clients)
                .filter(|i| i % threads == t)
                .map(|i| format!("{prefix}i{i}"))
                .collect(),
        })
        .collect();
    let mut d = Driver::start(common, cfg, works, 0);
    d.setup(clients as u64, common.setup_timeout);
    let settle = Instant::now() + SETTLE;
    d.monitor.wait(settle, |_| false);
    let rss_connected = broker_pid.and_then(rss_kib).unwrap_or(0);
    let connected = d.shared.totals().ready;

    let start = clock::now_ns();
    let end = start + secs_to_ns(common.duration);
    d.go(start, end, start, end);
    d.sleep_until(end);
    let rss_end = broker_pid.and_then(rss_kib).unwrap_or(0);

    let out = d.finish();
    let mut report = d.report("idle", common, &out);
    report.settings.clients = clients;
    report.idle = Some(IdleFigures {
        clients,
        connected,
        hold_s: common.duration,
        pings: out.pings,
        pongs: out.pongs,
        broker: broker_pid.map(|pid| BrokerMemory {
            pid,
            rss_before_kib: rss_before,
            rss_connected_kib: rss_connected,
            rss_end_kib: rss_end,
            rss_per_connection_bytes: if connected > 0 {
                (rss_connected as f64 - rss_before as f64) * 1024.0 / connected as f64
            } else {
                0.0
            },
        }),
    });
    report
}

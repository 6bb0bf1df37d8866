//! Wakes a worker executor that sleeps through ready work.
//!
//! glommio 0.9 on Linux 6.18 (the project's VM) sometimes parks an executor in
//! `io_uring_enter` and never returns: data waits unread on its sockets, its control task's
//! 2 ms timer never fires, and the run hangs until the broker closes the connections for
//! keep-alive and beyond (seen about once in ten closed-loop runs on a busy 2-CPU machine;
//! `/proc/PID/fdinfo` of its rings then shows only the poll that links the rings pending,
//! no timeout). Any signal that interrupts the wait (even a debugger attaching) gets the
//! executor going again. So a watchdog thread watches each worker's heartbeat (its control
//! task ticks every 2 ms) and, when one stands still for [`STILL`], interrupts that thread
//! with `SIGURG`, whose handler does nothing and is installed without `SA_RESTART`: the
//! wait returns `EINTR`, which glommio takes as a wake-up, and the reactor looks at its
//! rings again. A thread that is merely busy or descheduled loses nothing by it. Kicks are
//! counted and reported (`executor_kicks`).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::shared::{Counters, Shared};

/// How long a heartbeat may stand still before the thread is interrupted.
const STILL: Duration = Duration::from_millis(50);
/// How often the watchdog looks.
const CHECK: Duration = Duration::from_millis(10);

/// Installs the do-nothing `SIGURG` handler (process-wide; only worker threads are sent
/// it). Without `SA_RESTART`, so that a wait it interrupts returns `EINTR`.
pub fn install() -> Result<(), String> {
    extern "C" fn nothing(_: libc::c_int) {}
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is an
    // async-signal-safe function that does nothing; the pointers are valid for the call.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGURG, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(format!(
            "cannot install the SIGURG handler: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Registers the calling thread as worker `index` (called first thing on its executor).
pub fn register(shared: &Shared, index: usize) {
    if let Some(slot) = shared.worker_tids.get(index) {
        // SAFETY: pthread_self has no preconditions.
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(unsafe { libc::pthread_self() });
    }
}

/// Unregisters worker `index` (called last thing on its executor): no signal reaches a
/// thread after this, so none can reach one that has ended.
pub fn unregister(shared: &Shared, index: usize) {
    if let Some(slot) = shared.worker_tids.get(index) {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The watchdog thread; stops when dropped or [`Watchdog::stop`]ped.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(shared: Arc<Shared>) -> Watchdog {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("loadgen-watchdog".into())
            .spawn(move || watch(&shared, &flag))
            .ok();
        Watchdog { stop, handle }
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.halt();
    }
}

fn watch(shared: &Shared, stop: &AtomicBool) {
    let now = Instant::now();
    let mut last: Vec<(u64, Instant)> = shared.threads.iter().map(|_| (0, now)).collect();
    while !stop.load(Relaxed) {
        std::thread::sleep(CHECK);
        let now = Instant::now();
        for ((counters, slot), seen) in shared
            .threads
            .iter()
            .zip(shared.worker_tids.iter())
            .zip(last.iter_mut())
        {
            let beat = counters.heartbeat.load(Relaxed);
            if beat != seen.0 {
                *seen = (beat, now);
                continue;
            }
            if now.duration_since(seen.1) < STILL {
                continue;
            }
            seen.1 = now;
            // Held while signalling: the thread cannot unregister and end meanwhile.
            let tid = slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(tid) = *tid {
                // SAFETY: `tid` is a live thread: it unregisters (under this lock) before
                // it ends. SIGURG has a do-nothing handler.
                if unsafe { libc::pthread_kill(tid, libc::SIGURG) } == 0 {
                    Counters::add(&counters.kicks, 1);
                }
            }
        }
    }
}

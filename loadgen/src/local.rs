//! A worker thread's own state, shared by its connection tasks through an `Rc`: the phase
//! and windows as last read from [`Shared`], a wake-up for every waiting task, the latency
//! histograms and error samples, and a connect limiter.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::FutureExt;
use glommio::sync::Semaphore;
use glommio::timer::Timer;

use crate::clock;
use crate::conn::{Conn, ConnError};
use crate::settings::Settings;
use crate::shared::{Counters, Phase, Shared};
use crate::stats::Latency;
use ringmq::protocol::{ConnAck, Connect};

/// Error messages kept per thread; the rest are only counted.
const ERROR_SAMPLES_MAX: usize = 20;

/// How often sleeping tasks are woken to check keep-alive and the clock even when the
/// phase does not change.
const TICK: Duration = Duration::from_millis(500);

/// How often a thread looks at the shared phase.
const POLL: Duration = Duration::from_millis(2);

/// Histograms and error samples of one thread, merged by the main thread at the end.
#[derive(Debug, Default)]
pub struct ThreadStats {
    /// TCP connect to CONNACK.
    pub connect: Latency,
    /// Payload timestamp to delivery at a subscriber.
    pub delivery: Latency,
    /// PUBLISH written to PUBACK / PUBCOMP received.
    pub ack: Latency,
    pub error_samples: Vec<String>,
    /// Connects completed inside the measuring window (connect-storm).
    pub window_connects: u64,
    /// Deliveries and their payload bytes inside the measuring window.
    pub window_delivered: u64,
    pub window_bytes: u64,
    /// PUBLISH packets written inside the measuring window.
    pub window_sent: u64,
    /// QoS 1/2 acknowledgements (PUBACK / PUBCOMP) received inside the measuring window.
    pub window_acked: u64,
}

/// Wakes every task waiting on it; each task has a slot holding its one waker, so waiting
/// many times costs nothing and raced-away waits leave nothing behind.
#[derive(Debug, Default)]
pub struct Notify {
    generation: Cell<u64>,
    slots: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
}

impl Notify {
    fn take_slot(&self) -> usize {
        if let Some(i) = self.free.borrow_mut().pop() {
            return i;
        }
        let mut slots = self.slots.borrow_mut();
        slots.push(None);
        slots.len() - 1
    }

    fn release(&self, slot: usize) {
        if let Some(s) = self.slots.borrow_mut().get_mut(slot) {
            *s = None;
        }
        self.free.borrow_mut().push(slot);
    }

    pub fn notify_all(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        let wakers: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }
}

/// A waiting task's registration; returns its slot when dropped.
pub struct Slot {
    local: Rc<Local>,
    index: usize,
}

impl Slot {
    /// Completes at the next [`Notify::notify_all`] (phase change or tick).
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            notify: &self.local.notify,
            index: self.index,
            generation: self.local.notify.generation.get(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.local.notify.release(self.index);
    }
}

pub struct Wait<'a> {
    notify: &'a Notify,
    index: usize,
    generation: u64,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut slots = self.notify.slots.borrow_mut();
        if let Some(slot) = slots.get_mut(self.index) {
            match slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

/// One worker thread's state.
pub struct Local {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub cfg: Arc<Settings>,
    phase: Cell<Phase>,
    pub_start_ns: Cell<u64>,
    pub_end_ns: Cell<u64>,
    win_from_ns: Cell<u64>,
    win_to_ns: Cell<u64>,
    pub notify: Notify,
    pub stats: RefCell<ThreadStats>,
    connect_limit: Semaphore,
    finished: Cell<bool>,
}

impl Local {
    pub fn new(index: usize, shared: Arc<Shared>, cfg: Arc<Settings>) -> Rc<Local> {
        let limit = cfg.connect_concurrency as u64;
        let local = Rc::new(Local {
            index,
            shared,
            cfg,
            phase: Cell::new(Phase::Setup),
            pub_start_ns: Cell::new(u64::MAX),
            pub_end_ns: Cell::new(u64::MAX),
            win_from_ns: Cell::new(u64::MAX),
            win_to_ns: Cell::new(u64::MAX),
            notify: Notify::default(),
            stats: RefCell::new(ThreadStats::default()),
            connect_limit: Semaphore::new(limit),
            finished: Cell::new(false),
        });
        local.refresh();
        local
    }

    pub fn counters(&self) -> &Counters {
        // One counter slot per thread, indexed by thread: never out of range.
        &self.shared.threads[self.index]
    }

    pub fn add(&self, pick: impl Fn(&Counters) -> &AtomicU64, n: u64) {
        Counters::add(pick(self.counters()), n);
    }

    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    pub fn pub_window(&self) -> (u64, u64) {
        (self.pub_start_ns.get(), self.pub_end_ns.get())
    }

    /// Whether `now_ns` is inside the measuring window.
    pub fn in_window(&self, now_ns: u64) -> bool {
        now_ns >= self.win_from_ns.get() && now_ns < self.win_to_ns.get()
    }

    fn refresh(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.shared;
        self.win_from_ns.set(s.win_from_ns.load(Relaxed));
        self.win_to_ns.set(s.win_to_ns.load(Relaxed));
        self.pub_start_ns.set(s.pub_start_ns.load(Relaxed));
        self.pub_end_ns.set(s.pub_end_ns.load(Relaxed));
        let phase = s.phase();
        let changed = phase != self.phase.get();
        self.phase.set(phase);
        changed
    }

    /// Follows the shared phase and wakes the tasks on changes and every tick, until
    /// [`Local::finish`].
    pub async fn control(self: Rc<Self>) {
        let mut last_tick = clock::now_ns();
        while !self.finished.get() {
            Timer::new(POLL).await;
            Counters::add(&self.counters().heartbeat, 1);
            let now = clock::now_ns();
            let changed = self.refresh();
            if changed || now.saturating_sub(last_tick) >= TICK.as_nanos() as u64 {
                last_tick = now;
                self.notify.notify_all();
            }
        }
    }

    pub fn finish(&self) {
        self.finished.set(true);
    }

    pub fn slot(self: &Rc<Self>) -> Slot {
        Slot {
            local: self.clone(),
            index: self.notify.take_slot(),
        }
    }

    /// Waits until the phase is at least `phase`.
    pub async fn wait_phase(self: &Rc<Self>, phase: Phase) {
        let slot = self.slot();
        while self.phase() < phase {
            slot.wait().await;
        }
    }

    /// Counts and keeps a sample of an error.
    pub fn error(&self, what: impl std::fmt::Display) {
        self.add(|c| &c.errors, 1);
        let mut stats = self.stats.borrow_mut();
        if stats.error_samples.len() < ERROR_SAMPLES_MAX {
            stats.error_samples.push(what.to_string());
        }
    }

    /// Connects one client (at most `--connect-concurrency` at once on this thread),
    /// records the connect latency, and counts success or failure. `read_bytes` sizes the
    /// connection's read buffer.
    pub async fn open(
        &self,
        connect: Connect,
        read_bytes: usize,
    ) -> Result<(Conn, ConnAck), ConnError> {
        let permit = self.connect_limit.acquire_permit(1).await;
        let source = match self.cfg.source_ips.len() {
            0 => None,
            n => self
                .cfg
                .source_ips
                .get(self.shared.next_source() % n)
                .copied(),
        };
        let id = connect.client_id.as_str().to_owned();
        let start = clock::now_ns();
        let result = Conn::connect(
            self.cfg.target,
            source,
            connect,
            read_bytes,
            self.cfg.connect_timeout,
        )
        .await;
        drop(permit);
        let end = clock::now_ns();
        match &result {
            Ok(_) => {
                self.add(|c| &c.connected, 1);
                let mut stats = self.stats.borrow_mut();
                // Set-up connects count (no window yet); later ones only inside the window.
                let setup = self.win_from_ns.get() == u64::MAX;
                if setup || self.in_window(end) {
                    stats.connect.record(end.saturating_sub(start));
                }
                if self.in_window(end) {
                    stats.window_connects += 1;
                }
            }
            Err(e) => {
                self.add(|c| &c.connect_failed, 1);
                self.error(format_args!("connect {id}: {e}"));
            }
        }
        result
    }
}

/// Runs a connection task; a panic inside it is counted as an error instead of taking the
/// thread's executor down, and yields `None`.
pub async fn guarded<T>(
    local: Rc<Local>,
    what: String,
    task: impl Future<Output = T>,
) -> Option<T> {
    match AssertUnwindSafe(task).catch_unwind().await {
        Ok(v) => Some(v),
        Err(_) => {
            local.error(format_args!("{what}: task panicked"));
            None
        }
    }
}

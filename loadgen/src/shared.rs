//! State shared between the main thread and the worker threads: the phase of the run, its
//! time windows, and per-thread counters that the progress line sums.
//!
//! Only atomics cross threads. Workers add to their own thread's counters (one cache line
//! each, so they do not bounce between cores) and the main thread reads them.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// Where the run is. Workers poll it (every 2 ms); only the main thread moves it forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connecting and subscribing.
    Setup = 0,
    /// Publishing from `pub_start_ns` to `pub_end_ns`, then draining.
    Run = 1,
    /// `persistent` only: the offline sessions reconnect and drain.
    Reconnect = 2,
    /// Every client disconnects and its task ends.
    Finish = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Setup,
            1 => Phase::Run,
            2 => Phase::Reconnect,
            _ => Phase::Finish,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Run => "run",
            Phase::Reconnect => "reconnect",
            Phase::Finish => "finish",
        }
    }
}

/// One worker thread's running totals, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    /// MQTT connections accepted (CONNACK success).
    pub connected: AtomicU64,
    /// Connection attempts that failed (TCP, CONNACK refusal, time-out).
    pub connect_failed: AtomicU64,
    /// Clients ready for the run (connected, and subscribed where they subscribe).
    pub ready: AtomicU64,
    /// Clients through with setup, ready or not (a failed one counts here, not in ready).
    pub setup_done: AtomicU64,
    /// Clients that ended their part (publishers: stopped sending; idle: connected).
    pub done: AtomicU64,
    /// PUBLISH packets written by publishers.
    pub sent: AtomicU64,
    /// PUBACK / PUBCOMP received by publishers.
    pub acked: AtomicU64,
    /// PUBLISH packets received by subscribers.
    pub delivered: AtomicU64,
    /// Deliveries with a sequence number not seen before by that subscriber.
    pub unique: AtomicU64,
    /// Payload bytes delivered.
    pub delivered_bytes: AtomicU64,
    /// Sum and count of publish-to-deliver latencies, for the progress line's average.
    pub latency_sum_ns: AtomicU64,
    pub latency_count: AtomicU64,
    /// Errors of any kind (details in the thread's error samples).
    pub errors: AtomicU64,
    /// Ticks of the thread's control task (every 2 ms while its executor runs).
    pub heartbeat: AtomicU64,
    /// Times the watchdog interrupted the thread's executor ([`crate::watchdog`]).
    pub kicks: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Relaxed);
        }
    }
}

/// A sum of every thread's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub connected: u64,
    pub connect_failed: u64,
    pub ready: u64,
    pub setup_done: u64,
    pub done: u64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub unique: u64,
    pub delivered_bytes: u64,
    pub latency_sum_ns: u64,
    pub latency_count: u64,
    pub errors: u64,
    pub kicks: u64,
}

/// Everything the main thread and the workers share.
#[derive(Debug)]
pub struct Shared {
    phase: AtomicU8,
    /// Publishers start at `pub_start_ns` and stop sending at `pub_end_ns`.
    pub pub_start_ns: AtomicU64,
    pub pub_end_ns: AtomicU64,
    /// Deliveries, acks and connects are measured when they happen inside this window
    /// (after the warm-up). `win_from_ns` is u64::MAX until the window is known.
    pub win_from_ns: AtomicU64,
    pub win_to_ns: AtomicU64,
    pub threads: Box<[Counters]>,
    /// Each publisher's final count of messages sent, written when it stops sending.
    pub publisher_sent: Box<[AtomicU64]>,
    /// Publishers whose `publisher_sent` is final.
    pub publishers_final: AtomicU64,
    /// Round-robin position in the source address list.
    next_source: AtomicUsize,
    /// Each worker thread's pthread id while its executor runs (for the watchdog's
    /// signal); `None` before it starts and once it ends.
    pub worker_tids: Box<[Mutex<Option<libc::pthread_t>>]>,
}

impl Shared {
    pub fn new(threads: usize, publishers: usize) -> Shared {
        Shared {
            phase: AtomicU8::new(Phase::Setup as u8),
            pub_start_ns: AtomicU64::new(u64::MAX),
            pub_end_ns: AtomicU64::new(u64::MAX),
            win_from_ns: AtomicU64::new(u64::MAX),
            win_to_ns: AtomicU64::new(u64::MAX),
            threads: (0..threads).map(|_| Counters::default()).collect(),
            publisher_sent: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            publishers_final: AtomicU64::new(0),
            next_source: AtomicUsize::new(0),
            worker_tids: (0..threads).map(|_| Mutex::new(None)).collect(),
        }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Relaxed))
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Relaxed);
    }

    pub fn next_source(&self) -> usize {
        self.next_source.fetch_add(1, Relaxed)
    }

    /// Sets the publishing and measuring windows in one go.
    pub fn set_windows(&self, pub_start: u64, pub_end: u64, win_from: u64, win_to: u64) {
        self.pub_start_ns.store(pub_start, Relaxed);
        self.pub_end_ns.store(pub_end, Relaxed);
        self.win_to_ns.store(win_to, Relaxed);
        self.win_from_ns.store(win_from, Relaxed);
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in self.threads.iter() {
            t.connected += c.connected.load(Relaxed);
            t.connect_failed += c.connect_failed.load(Relaxed);
            t.ready += c.ready.load(Relaxed);
            t.setup_done += c.setup_done.load(Relaxed);
            t.done += c.done.load(Relaxed);
            t.sent += c.sent.load(Relaxed);
            t.acked += c.acked.load(Relaxed);
            t.delivered += c.delivered.load(Relaxed);
            t.unique += c.unique.load(Relaxed);
            t.delivered_bytes += c.delivered_bytes.load(Relaxed);
            t.latency_sum_ns += c.latency_sum_ns.load(Relaxed);
            t.latency_count += c.latency_count.load(Relaxed);
            t.errors += c.errors.load(Relaxed);
            t.kicks += c.kicks.load(Relaxed);
        }
        t
    }
}

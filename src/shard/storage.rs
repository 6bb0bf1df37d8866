//! A shard's durable state on its segment log ([`crate::persist`]): appending the records
//! of [`StateRecord`], group commit (one msync, off the shard's loop, releases every
//! acknowledgement waiting for it), segments prepared ahead, the queue reader of
//! persistent sessions, checkpoints that let old segments go, and recovery.
//!
//! Clean sessions never come here. A shard that never logs anything never creates a file.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::FsyncPolicy;
use crate::message::Message;
use crate::persist::state::{deliver_target, StateRecord, Tag, Target, DELIVER};
use crate::persist::{
    AppendError, Log, LogOffset, LogOptions, PersistError, PreparedSegment, Recovery,
};
use crate::protocol::{SubscriptionId, SubscriptionOptions};
use crate::session::{Notify, RecoveredQueue};

/// What runs once the log is durable past an offset.
type Waiter = Box<dyn FnOnce()>;

/// A shard's log and what waits for it.
pub struct Storage {
    dir: PathBuf,
    options: LogOptions,
    log: RefCell<Option<Log>>,
    policy: FsyncPolicy,
    interval: Duration,
    /// Callbacks waiting for the log to be flushed past an offset, in append order.
    waiters: RefCell<VecDeque<(LogOffset, Waiter)>>,
    flush_wanted: Notify,
    prepare_wanted: Notify,
    /// The preparer's job in flight, if any: a stalled append takes its segment instead of
    /// making the same file itself.
    preparing: RefCell<Option<Arc<PrepareSlot>>>,
    opening: Cell<bool>,
    opened: Notify,
    buf: RefCell<bytes::BytesMut>,
    next_no: Cell<u64>,
    /// Tags of the tagged records recovery found: the in-doubt QoS 2 messages re-routed at
    /// start are not delivered twice. Emptied once that is done.
    pub recovered_tags: RefCell<HashSet<Tag>>,
    /// Where the last complete checkpoint begins: state records before it are dead.
    checkpoint_at: Cell<LogOffset>,
    /// Log bytes appended since the last checkpoint.
    since_checkpoint: Cell<u64>,
    pub stats: StorageStats,
}

/// Counters for logs and metrics.
#[derive(Debug, Default)]
pub struct StorageStats {
    pub records: Cell<u64>,
    pub flushes: Cell<u64>,
    /// Appends that had to flush or create a segment on the shard's loop.
    pub stalls: Cell<u64>,
    pub segments_removed: Cell<u64>,
    /// How long each background flush took, in microseconds.
    pub flush_micros: crate::metrics::LocalHistogram,
    /// Records each background flush covered (appended since the previous one).
    pub flush_records: crate::metrics::LocalHistogram,
    /// `records` when the previous background flush began.
    records_at_flush: Cell<u64>,
}

impl Storage {
    /// Opens (recovers) the log of `dir`: blocking, before the shard serves. Returns the
    /// state the log holds.
    pub fn open(
        dir: &Path,
        options: LogOptions,
        policy: FsyncPolicy,
        interval: Duration,
    ) -> Result<(Storage, Recovered), PersistError> {
        let started = Instant::now();
        let recovery = Recovery::open(dir, options)?;
        let mut recovered = Recovered::default();
        let log = if recovery.segment_paths().next().is_none() {
            None
        } else {
            let mut scan = recovery.scan();
            for record in scan.by_ref() {
                let record = record?;
                let rec = StateRecord::decode(record.record_type, record.body).map_err(|e| {
                    PersistError::Io {
                        path: dir.to_owned(),
                        op: "decode a record",
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("at log offset {}: {e}", record.offset),
                        ),
                    }
                })?;
                recovered.apply(record.offset, rec);
            }
            let scanned = scan.finish()?;
            let (mut log, report) = recovery.into_log(scanned)?;
            log.release_sealed_pages();
            recovered.records = report.records;
            recovered.bytes = report.record_bytes;
            if let Some(torn) = &report.torn_tail {
                tracing::warn!(
                    path = %torn.path.display(), offset = %torn.offset,
                    bytes = torn.discarded_bytes, cause = ?torn.cause,
                    saved_to = ?torn.saved_to,
                    "torn tail cut off the log (a crash interrupted a write; nothing acknowledged is in it)"
                );
            }
            for q in &report.quarantined {
                tracing::warn!(path = %q.display(), "segment moved aside by an operator: not read");
            }
            Some(log)
        };
        recovered.elapsed = started.elapsed();
        let storage = Storage {
            dir: dir.to_owned(),
            options,
            log: RefCell::new(log),
            policy,
            interval,
            waiters: RefCell::default(),
            flush_wanted: Notify::default(),
            prepare_wanted: Notify::default(),
            preparing: RefCell::default(),
            opening: Cell::new(false),
            opened: Notify::default(),
            buf: RefCell::default(),
            next_no: Cell::new(recovered.max_no + 1),
            recovered_tags: RefCell::new(std::mem::take(&mut recovered.tags)),
            checkpoint_at: Cell::new(recovered.checkpoint_at),
            since_checkpoint: Cell::new(recovered.bytes),
            stats: StorageStats::default(),
        };
        Ok((storage, recovered))
    }

    /// Makes sure the log exists, creating its first segment off the loop if this shard
    /// has never written one (a shard that only ever serves clean sessions has no files).
    pub async fn ensure_log(&self) {
        loop {
            if self.log.borrow().is_some() {
                return;
            }
            if self.opening.get() {
                self.opened.notified().await;
                continue;
            }
            self.opening.set(true);
            let (dir, options) = (self.dir.clone(), self.options);
            let opened = glommio::executor()
                .spawn_blocking(move || Log::open(&dir, options))
                .await;
            self.opening.set(false);
            match opened {
                Ok((log, _)) => {
                    let mut slot = self.log.borrow_mut();
                    if slot.is_none() {
                        *slot = Some(log);
                    }
                }
                Err(e) => fatal(&e),
            }
            self.opened.notify_all();
        }
    }

    /// A number for a new persistent session.
    pub fn new_session_no(&self) -> u64 {
        let no = self.next_no.get();
        self.next_no.set(no + 1);
        no
    }

    /// Appends a record; returns its offset and the offset just after it (what a flush
    /// must pass for it to be durable). Never waits; in the rare case that the log must
    /// flush or create a segment first, that happens here, blocking (counted).
    pub fn append(&self, record: &StateRecord) -> (LogOffset, LogOffset) {
        let mut buf = self.buf.borrow_mut();
        record.encode(&mut buf);
        let mut slot = self.log.borrow_mut();
        let log = match &mut *slot {
            Some(log) => log,
            None => {
                let (log, _) = Log::open(&self.dir, self.options).unwrap_or_else(|e| fatal(&e));
                slot.insert(log)
            }
        };
        loop {
            match log.append(record.record_type(), &buf) {
                Ok(at) => {
                    let end = log.end_offset();
                    let s = &self.stats;
                    s.records.set(s.records.get() + 1);
                    self.since_checkpoint
                        .set(self.since_checkpoint.get() + end.get().saturating_sub(at.get()));
                    if !log.next_segment_ready() && log.active_half_full() {
                        self.prepare_wanted.notify_all();
                    }
                    return (at, end);
                }
                Err(AppendError::NeedsFlush) => {
                    self.stalled("the full segment was not flushed yet");
                    log.flush_blocking().unwrap_or_else(|e| fatal(&e));
                    self.flush_wanted.notify_all();
                }
                Err(AppendError::NeedsNextSegment) => {
                    self.stalled("the next segment was not prepared yet");
                    let in_flight = self.preparing.borrow().clone();
                    match in_flight.and_then(|slot| slot.wait()) {
                        // The preparer is making it: wait for that one (making the same
                        // file here too would collide with it).
                        Some(prepared) => {
                            let prepared = prepared.unwrap_or_else(|e| fatal(&e));
                            log.install_next(prepared).unwrap_or_else(|e| fatal(&e));
                        }
                        None => log.prepare_next_blocking().unwrap_or_else(|e| fatal(&e)),
                    }
                }
                Err(e @ AppendError::TooLarge { .. }) => {
                    // Config validation keeps a largest message well within a segment.
                    fatal(&e);
                }
            }
        }
    }

    /// An append had to do blocking work on the shard's loop: counted and logged (it
    /// means the background flusher or preparer fell behind).
    fn stalled(&self, why: &str) {
        let s = &self.stats;
        s.stalls.set(s.stalls.get() + 1);
        tracing::warn!(dir = %self.dir.display(), stalls = s.stalls.get(), "{why}: the shard waits for the disk");
    }

    /// Appends each record of a session's journal.
    pub fn append_all(&self, records: &[StateRecord]) -> Option<LogOffset> {
        records.iter().map(|r| self.append(r).1).last()
    }

    /// Whether an acknowledgement for a record ending at `end` must wait for a flush.
    pub fn must_wait(&self, end: LogOffset) -> bool {
        self.policy == FsyncPolicy::Always && self.flushed() < end
    }

    /// Runs `f` once everything below `end` is durable as the fsync policy says: at once
    /// for `interval` and `never`, after the flush that covers it for `always`.
    pub fn when_durable(&self, end: LogOffset, f: impl FnOnce() + 'static) {
        if !self.must_wait(end) {
            f();
            return;
        }
        self.waiters.borrow_mut().push_back((end, Box::new(f)));
        self.flush_wanted.notify_all();
    }

    fn flushed(&self) -> LogOffset {
        self.log
            .borrow()
            .as_ref()
            .map_or(LogOffset::default(), Log::flushed_offset)
    }

    fn release_waiters(&self) {
        let flushed = self.flushed();
        loop {
            let due = {
                let mut w = self.waiters.borrow_mut();
                match w.front() {
                    Some((end, _)) if *end <= flushed => w.pop_front(),
                    _ => None,
                }
            };
            match due {
                Some((_, f)) => f(),
                None => break,
            }
        }
    }

    /// The next delivery queued for session `no` at or after `from`: each one found is
    /// offered to `skip` first (with where the reader goes on after it); the first not
    /// skipped is returned with its message.
    pub fn next_delivery(
        &self,
        no: u64,
        from: LogOffset,
        mut skip: impl FnMut(u64, LogOffset) -> bool,
    ) -> Option<(Target, LogOffset, LogOffset, Message)> {
        let log = self.log.borrow();
        let log = log.as_ref()?;
        for record in log.records_from(from) {
            if record.record_type != DELIVER {
                continue;
            }
            let Some(target) = deliver_target(record.body, no) else {
                continue;
            };
            let next = Log::after(&record);
            if skip(target.seq, next) {
                continue;
            }
            match StateRecord::decode(record.record_type, record.body) {
                Ok(StateRecord::Deliver { message, .. }) => {
                    return Some((target, record.offset, next, message))
                }
                _ => {
                    tracing::error!(offset = %record.offset, "a Deliver record does not decode; skipped");
                }
            }
        }
        None
    }

    /// Every delivery still queued for session `no` (start-up, moving a session to
    /// another shard): read in order from the queue's place in the log.
    pub fn queued(&self, no: u64, queue: &RecoveredQueue) -> Vec<(Target, Message)> {
        let mut found = Vec::new();
        let Some(from) = queue.cursor else {
            return found;
        };
        let log = self.log.borrow();
        let Some(log) = log.as_ref() else {
            return found;
        };
        for record in log.records_from(from) {
            if record.record_type != DELIVER {
                continue;
            }
            let Some(target) = deliver_target(record.body, no) else {
                continue;
            };
            if target.seq < queue.low_seq || queue.acked.contains(&target.seq) {
                continue;
            }
            if let Ok(StateRecord::Deliver { message, .. }) =
                StateRecord::decode(record.record_type, record.body)
            {
                found.push((target, message));
            }
        }
        found
    }

    /// Copies the deliveries of session `no` that `keep` selects, from `from` up to the
    /// log's current end, to the end of the log, in order and in chunks (memory stays
    /// bounded whatever the queue's length). Returns where each copy went, by sequence
    /// number.
    pub fn copy_queue(
        &self,
        no: u64,
        from: LogOffset,
        keep: impl Fn(u64) -> bool,
    ) -> HashMap<u64, LogOffset> {
        const CHUNK: usize = 256;
        let mut moved = HashMap::new();
        let Some(end) = self.end() else {
            return moved;
        };
        let mut pos = from;
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut done = true;
            {
                let log = self.log.borrow();
                let Some(log) = log.as_ref() else {
                    break;
                };
                for record in log.records_from(pos) {
                    if record.offset >= end {
                        break;
                    }
                    if chunk.len() == CHUNK {
                        pos = record.offset;
                        done = false;
                        break;
                    }
                    if record.record_type != DELIVER {
                        continue;
                    }
                    let Some(target) = deliver_target(record.body, no) else {
                        continue;
                    };
                    if !keep(target.seq) || moved.contains_key(&target.seq) {
                        continue;
                    }
                    if let Ok(StateRecord::Deliver { message, .. }) =
                        StateRecord::decode(record.record_type, record.body)
                    {
                        chunk.push((target, message));
                    }
                }
            }
            for (target, message) in chunk {
                let seq = target.seq;
                let (at, _) = self.append(&StateRecord::Deliver {
                    targets: vec![target],
                    tag: None,
                    message,
                });
                moved.insert(seq, at);
            }
            if done {
                break;
            }
        }
        moved
    }

    /// The log's end (where the next record goes).
    pub fn end(&self) -> Option<LogOffset> {
        self.log.borrow().as_ref().map(Log::end_offset)
    }

    pub fn segment_bytes(&self) -> u64 {
        self.options.segment_bytes
    }

    /// Flushes everything, on this thread (start-up hand-over, clean shutdown).
    pub fn flush_now(&self) {
        if let Some(log) = self.log.borrow_mut().as_mut() {
            log.flush_blocking().unwrap_or_else(|e| fatal(&e));
        }
        self.release_waiters();
    }

    /// Logs what this log did since the broker started (at shutdown).
    pub fn log_stats(&self) {
        let s = &self.stats;
        tracing::info!(
            dir = %self.dir.display(), records = s.records.get(), flushes = s.flushes.get(),
            stalls = s.stalls.get(), segments_removed = s.segments_removed.get(),
            "storage"
        );
    }

    /// Bytes of disk the log's segments take (the prepared next one included).
    pub fn disk_bytes(&self) -> u64 {
        self.log.borrow().as_ref().map_or(0, Log::disk_bytes)
    }

    /// Unmaps the pages of the sealed segments (see `Log::release_sealed_pages`).
    pub fn release_sealed_pages(&self) {
        if let Some(log) = self.log.borrow_mut().as_mut() {
            log.release_sealed_pages();
        }
    }

    /// Whether a checkpoint is due: a segment's worth written since the last one, and
    /// old segments it could let go.
    pub fn checkpoint_due(&self) -> bool {
        let log = self.log.borrow();
        let Some(log) = log.as_ref() else {
            return false;
        };
        // Only worth it once a whole segment's worth of records could go.
        self.since_checkpoint.get() >= self.options.segment_bytes && log.segment_paths().len() > 2
    }

    /// Writes a checkpoint: `records` (the live state) between begin and end markers, so
    /// that every state record before it is dead.
    pub fn write_checkpoint(&self, records: impl Iterator<Item = StateRecord>) {
        let (begin, _) = self.append(&StateRecord::CheckpointBegin);
        for r in records {
            self.append(&r);
        }
        self.append(&StateRecord::CheckpointEnd);
        self.checkpoint_at.set(begin);
        self.since_checkpoint.set(0);
    }

    /// Deletes the segments wholly below `live` (the oldest record still needed: the last
    /// checkpoint, or a queued delivery), off the shard's loop.
    pub async fn remove_dead(&self, oldest_delivery: Option<LogOffset>) {
        let live = oldest_delivery.map_or(self.checkpoint_at.get(), |d| {
            d.min(self.checkpoint_at.get())
        });
        let job = match self.log.borrow_mut().as_mut() {
            Some(log) => log.remove_below(live),
            None => return,
        };
        if job.is_empty() {
            return;
        }
        match glommio::executor().spawn_blocking(move || job.run()).await {
            Ok(removed) => {
                let s = &self.stats;
                s.segments_removed
                    .set(s.segments_removed.get() + removed.len() as u64);
                tracing::debug!(segments = removed.len(), below = %live, "removed dead segments");
            }
            Err(e) => fatal(&e),
        }
    }
}

/// A write or flush of the log failed: the broker stops rather than acknowledge what may
/// not be on disk.
fn fatal(e: &dyn std::fmt::Display) -> ! {
    tracing::error!(error = %e, "storage failed; stopping so that nothing is acknowledged that is not on disk");
    eprintln!("ringmq: storage failed: {e}");
    std::process::exit(74);
}

/// Flushes the log as the fsync policy says and releases what waits for it. With
/// `always`, one msync covers every record appended before it started (group commit);
/// with `interval`, one runs every `interval_ms`; with `never`, the kernel writes pages back
/// when it likes (a crash of the process loses nothing; a crash of the machine may).
pub async fn flusher(storage: Rc<Storage>, shutdown: super::Shutdown) {
    while !shutdown.is_triggered() {
        match storage.policy {
            FsyncPolicy::Always => {
                let wanted = storage.flush_wanted.notified();
                let waiting = storage
                    .waiters
                    .borrow()
                    .front()
                    .is_some_and(|(end, _)| *end > storage.flushed());
                if !waiting {
                    storage.release_waiters();
                    let _ = super::with_timeout(wanted, Duration::from_millis(100)).await;
                    continue;
                }
            }
            FsyncPolicy::Interval => glommio::timer::sleep(storage.interval).await,
            // Nothing waits for a flush, but one runs in the background every second, so
            // that the one a segment switch needs (the log moves on only from a fully
            // flushed segment) is short and never a whole segment on the shard's loop.
            FsyncPolicy::Never => glommio::timer::sleep(Duration::from_secs(1)).await,
        }
        let job = storage.log.borrow().as_ref().and_then(Log::flush_job);
        if let Some(job) = job {
            let s = &storage.stats;
            let records = s.records.get();
            let started = std::time::Instant::now();
            match glommio::executor().spawn_blocking(move || job.run()).await {
                Ok(done) => {
                    if let Some(log) = storage.log.borrow_mut().as_mut() {
                        log.complete_flush(done);
                    }
                    s.flushes.set(s.flushes.get() + 1);
                    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    s.flush_micros.record(micros);
                    s.flush_records
                        .record(records.saturating_sub(s.records_at_flush.replace(records)));
                }
                Err(e) => fatal(&e),
            }
        }
        storage.release_waiters();
    }
}

/// Where the preparer's blocking job leaves the segment it made.
#[derive(Default)]
struct PrepareSlot {
    done: std::sync::Mutex<Option<Result<PreparedSegment, PersistError>>>,
    /// Set when the job has finished (its result may have been taken since).
    finished: std::sync::atomic::AtomicBool,
    ready: std::sync::Condvar,
}

impl PrepareSlot {
    /// On the blocking thread: the job's result.
    fn finish(&self, result: Result<PreparedSegment, PersistError>) {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        *done = Some(result);
        self.finished
            .store(true, std::sync::atomic::Ordering::Release);
        self.ready.notify_all();
    }

    /// On the shard: blocks until the job has finished and takes its result (`None` if
    /// it was taken already).
    fn wait(&self) -> Option<Result<PreparedSegment, PersistError>> {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        while !self.finished.load(std::sync::atomic::Ordering::Acquire) {
            done = self.ready.wait(done).unwrap_or_else(|e| e.into_inner());
        }
        done.take()
    }

    fn take(&self) -> Option<Result<PreparedSegment, PersistError>> {
        self.done.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Creates the next segment ahead of time, off the shard's loop, whenever the log has
/// none ready.
pub async fn preparer(storage: Rc<Storage>, shutdown: super::Shutdown) {
    while !shutdown.is_triggered() {
        let wanted = storage.prepare_wanted.notified();
        let job = storage
            .log
            .borrow()
            .as_ref()
            .filter(|log| log.active_half_full())
            .and_then(Log::prepare_job);
        match job {
            Some(job) => {
                let slot = Arc::new(PrepareSlot::default());
                *storage.preparing.borrow_mut() = Some(slot.clone());
                let done = slot.clone();
                glommio::executor()
                    .spawn_blocking(move || done.finish(job.run()))
                    .await;
                *storage.preparing.borrow_mut() = None;
                // Taken already if an append stalled on it meanwhile.
                let Some(result) = slot.take() else {
                    continue;
                };
                match result {
                    Ok(prepared) => {
                        if let Some(log) = storage.log.borrow_mut().as_mut() {
                            // The loop may have made one itself meanwhile (a stall): then this
                            // one is surplus, and recovery removes empty surplus segments.
                            if !log.next_segment_ready() {
                                if let Err(e) = log.install_next(prepared) {
                                    tracing::warn!(error = %e, "prepared segment not used");
                                }
                            }
                        }
                    }
                    Err(e) => fatal(&e),
                }
            }
            None => {
                let _ = super::with_timeout(wanted, Duration::from_secs(1)).await;
            }
        }
    }
}

/// One persistent session as the log describes it.
#[derive(Debug, Clone)]
pub struct RecoveredSession {
    pub client_id: Arc<str>,
    pub expiry_secs: u32,
    /// When its client disconnected (Unix ms); `None`: connected when the broker stopped.
    pub detached_ms: Option<u64>,
    pub subscriptions: BTreeMap<Box<str>, (SubscriptionOptions, Option<SubscriptionId>)>,
    pub queue: RecoveredQueue,
    /// Inbound QoS 2 messages accepted and not released: packet id -> (offset of the
    /// `Accepted` record, message).
    pub inbound: BTreeMap<u16, (LogOffset, Message)>,
    pub will: Option<RecoveredWill>,
    /// The user its client last logged in as (`SessionUser`); `None`: anonymous.
    pub user: Option<Arc<str>>,
}

/// A session's will as the log describes it (`Will` or `DelayedWill`).
#[derive(Debug, Clone)]
pub struct RecoveredWill {
    pub message: Message,
    /// Its Will Delay Interval.
    pub delay_secs: u32,
    /// When the pending will is due (Unix ms); `None`: its client was connected.
    pub due_unix_ms: Option<u64>,
}

impl RecoveredWill {
    /// The record that logs it under session number `no`.
    pub fn record(&self, no: u64) -> StateRecord {
        crate::session::will_record(no, &self.message, self.delay_secs, self.due_unix_ms)
    }
}

/// State rebuilt from records, before or inside a checkpoint.
#[derive(Debug, Default, Clone)]
pub struct RecoveredState {
    pub sessions: BTreeMap<u64, RecoveredSession>,
    /// Boxed: the table is held beside the live index while recovery hands the messages
    /// over, and a map of messages by value keeps its slack in message-sized slots.
    pub retained: HashMap<Box<str>, Box<Message>>,
}

/// What recovery rebuilt from a shard's log.
#[derive(Debug, Default)]
pub struct Recovered {
    pub state: RecoveredState,
    /// A checkpoint being read: it replaces `state` when its end marker is reached.
    checkpoint: Option<RecoveredState>,
    checkpoint_begin: LogOffset,
    pub checkpoint_at: LogOffset,
    pub tags: HashSet<Tag>,
    pub max_no: u64,
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Recovered {
    /// Applies one record found at `offset`.
    pub fn apply(&mut self, offset: LogOffset, record: StateRecord) {
        match record {
            StateRecord::CheckpointBegin => {
                self.checkpoint = Some(RecoveredState::default());
                self.checkpoint_begin = offset;
                return;
            }
            StateRecord::CheckpointEnd => {
                if let Some(state) = self.checkpoint.take() {
                    self.state = state;
                    self.checkpoint_at = self.checkpoint_begin;
                }
                return;
            }
            _ => {}
        }
        let state = self.checkpoint.as_mut().unwrap_or(&mut self.state);
        match record {
            StateRecord::Session {
                no,
                expiry_secs,
                client_id,
            } => {
                self.max_no = self.max_no.max(no);
                let s = state
                    .sessions
                    .entry(no)
                    .or_insert_with(|| RecoveredSession {
                        client_id: client_id.clone(),
                        expiry_secs,
                        detached_ms: None,
                        subscriptions: BTreeMap::new(),
                        queue: RecoveredQueue::new(),
                        inbound: BTreeMap::new(),
                        will: None,
                        user: None,
                    });
                s.expiry_secs = expiry_secs;
                s.detached_ms = None;
            }
            StateRecord::SessionGone { no } => {
                state.sessions.remove(&no);
            }
            StateRecord::SessionUser { no, user } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.user = user;
                }
            }
            StateRecord::Subscribe {
                no,
                options,
                id,
                filter,
            } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.subscriptions.insert(filter, (options, id));
                }
            }
            StateRecord::Unsubscribe { no, filter } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.subscriptions.remove(&filter);
                }
            }
            StateRecord::Deliver { targets, tag, .. } => {
                if let Some(tag) = tag {
                    self.tags.insert(tag);
                }
                for t in targets {
                    if let Some(s) = state.sessions.get_mut(&t.no) {
                        let q = &mut s.queue;
                        q.next_seq = q.next_seq.max(t.seq + 1);
                        if q.cursor.is_none() && t.seq >= q.low_seq {
                            q.cursor = Some(offset);
                        }
                        if t.sent {
                            q.sent.insert(t.seq);
                        }
                    }
                }
            }
            StateRecord::Sent { no, seq } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    if seq >= s.queue.low_seq {
                        s.queue.sent.insert(seq);
                    }
                }
            }
            StateRecord::Acked {
                no,
                seq,
                low_seq,
                low_offset,
            } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    let q = &mut s.queue;
                    q.cursor = low_offset;
                    q.advance(low_seq);
                    if seq >= q.low_seq {
                        q.acked.insert(seq);
                    }
                    q.released.remove(&seq);
                    q.sent.remove(&seq);
                }
            }
            StateRecord::Released { no, seq } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    if seq >= s.queue.low_seq {
                        s.queue.released.insert(seq);
                    }
                }
            }
            StateRecord::Queue {
                no,
                next_seq,
                low_seq,
                low_offset,
                acked,
                released,
                sent,
            } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.queue = RecoveredQueue {
                        next_seq,
                        low_seq,
                        cursor: low_offset,
                        acked: acked.into_iter().collect(),
                        released: released.into_iter().collect(),
                        sent: sent.into_iter().collect(),
                        bytes: 0,
                    };
                }
            }
            StateRecord::Accepted {
                no,
                packet_id,
                first,
                message,
            } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.inbound
                        .insert(packet_id.get(), (first.unwrap_or(offset), message));
                }
            }
            StateRecord::InReleased { no, packet_id } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.inbound.remove(&packet_id.get());
                }
            }
            StateRecord::Retain { tag, message } => {
                if let Some(tag) = tag {
                    self.tags.insert(tag);
                }
                let topic: Box<str> = message.topic.as_str().into();
                if message.payload.is_empty() {
                    state.retained.remove(&topic);
                } else {
                    state.retained.insert(topic, Box::new(message));
                }
            }
            StateRecord::Will { no, message } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.will = Some(RecoveredWill {
                        message,
                        delay_secs: 0,
                        due_unix_ms: None,
                    });
                }
            }
            StateRecord::DelayedWill {
                no,
                delay_secs,
                due_unix_ms,
                message,
            } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.will = Some(RecoveredWill {
                        message,
                        delay_secs,
                        due_unix_ms,
                    });
                }
            }
            StateRecord::WillClear { no } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.will = None;
                }
            }
            StateRecord::Detached { no, unix_ms } => {
                if let Some(s) = state.sessions.get_mut(&no) {
                    s.detached_ms = Some(unix_ms);
                }
            }
            StateRecord::CheckpointBegin | StateRecord::CheckpointEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{QoS, TopicName};
    use bytes::Bytes;

    fn message(payload: &str) -> Message {
        Message {
            topic: TopicName::try_from("t").expect("topic"),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            origin: Arc::from("p"),
            received_at: Instant::now(),
        }
    }

    fn deliver(no: u64, seq: u64) -> StateRecord {
        StateRecord::Deliver {
            targets: vec![Target {
                no,
                seq,
                qos: QoS::AtLeastOnce,
                retain: false,
                sent: false,
                ids: vec![],
            }],
            tag: None,
            message: message("m"),
        }
    }

    fn session(no: u64, id: &str) -> StateRecord {
        StateRecord::Session {
            no,
            expiry_secs: 60,
            client_id: Arc::from(id),
        }
    }

    fn replay(records: Vec<StateRecord>) -> Recovered {
        let mut r = Recovered::default();
        for (i, rec) in records.into_iter().enumerate() {
            r.apply(LogOffset::new(i as u64 * 100), rec);
        }
        r
    }

    #[test]
    fn a_queue_is_rebuilt_from_deliveries_and_acks() {
        let r = replay(vec![
            session(1, "a"),
            deliver(1, 1), // offset 100
            deliver(1, 2), // 200
            deliver(1, 3), // 300
            StateRecord::Acked {
                no: 1,
                seq: 2,
                low_seq: 1,
                low_offset: Some(LogOffset::new(100)),
            },
            StateRecord::Acked {
                no: 1,
                seq: 1,
                low_seq: 3,
                low_offset: Some(LogOffset::new(300)),
            },
        ]);
        let q = &r.state.sessions[&1].queue;
        assert_eq!(
            (q.next_seq, q.low_seq, q.cursor),
            (4, 3, Some(LogOffset::new(300)))
        );
        assert!(q.acked.is_empty(), "acks below the low mark are forgotten");
        assert_eq!(q.len(), 1);
        assert_eq!(r.max_no, 1);
    }

    #[test]
    fn a_complete_checkpoint_replaces_earlier_state_and_a_torn_one_is_ignored() {
        let r = replay(vec![
            session(1, "gone-before-checkpoint"),
            session(2, "kept"),
            StateRecord::CheckpointBegin,
            session(2, "kept"),
            StateRecord::CheckpointEnd,
            session(3, "after"),
        ]);
        let ids: Vec<_> = r.state.sessions.keys().copied().collect();
        assert_eq!(ids, [2, 3]);
        let torn = replay(vec![
            session(1, "a"),
            StateRecord::CheckpointBegin,
            session(2, "b"),
        ]);
        let ids: Vec<_> = torn.state.sessions.keys().copied().collect();
        assert_eq!(
            ids,
            [1],
            "a checkpoint without its end marker changes nothing"
        );
    }

    #[test]
    fn retained_set_and_clear_and_inbound_qos2_ids() {
        let id = crate::protocol::PacketId::new(5).expect("id");
        let r = replay(vec![
            session(1, "a"),
            StateRecord::Retain {
                tag: None,
                message: message("x"),
            },
            StateRecord::Accepted {
                no: 1,
                packet_id: id,
                first: None,
                message: message("q2"),
            },
            StateRecord::Retain {
                tag: Some(Tag {
                    shard: 1,
                    offset: 9,
                }),
                message: message(""),
            },
        ]);
        assert!(r.state.retained.is_empty(), "an empty payload clears");
        assert!(r.tags.contains(&Tag {
            shard: 1,
            offset: 9
        }));
        let s = &r.state.sessions[&1];
        assert_eq!(s.inbound[&5].0, LogOffset::new(200));
        let r = replay(vec![
            session(1, "a"),
            StateRecord::Accepted {
                no: 1,
                packet_id: id,
                first: None,
                message: message("q2"),
            },
            StateRecord::InReleased {
                no: 1,
                packet_id: id,
            },
        ]);
        assert!(r.state.sessions[&1].inbound.is_empty());
    }

    #[test]
    fn the_last_will_record_of_a_session_is_its_will() {
        let delayed = |due_unix_ms| StateRecord::DelayedWill {
            no: 1,
            delay_secs: 30,
            due_unix_ms,
            message: message("w"),
        };
        let will_of = |records| {
            replay(records).state.sessions[&1]
                .will
                .as_ref()
                .map(|w| (w.delay_secs, w.due_unix_ms))
        };
        let plain = StateRecord::Will {
            no: 1,
            message: message("w"),
        };
        assert_eq!(
            will_of(vec![session(1, "a"), plain.clone()]),
            Some((0, None))
        );
        assert_eq!(
            will_of(vec![session(1, "a"), plain, delayed(None)]),
            Some((30, None))
        );
        assert_eq!(
            will_of(vec![session(1, "a"), delayed(None), delayed(Some(9))]),
            Some((30, Some(9)))
        );
        assert_eq!(
            will_of(vec![
                session(1, "a"),
                delayed(Some(9)),
                StateRecord::WillClear { no: 1 }
            ]),
            None
        );
    }
}

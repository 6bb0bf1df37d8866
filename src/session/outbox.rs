//! A connection's outgoing byte buffer, shared by everything on its shard that writes to
//! that client, and the wake-up that tells the connection task to flush it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::BytesMut;

use crate::limit::LimitStats;
use crate::protocol::{Packet, ProtocolVersion, ReasonCode};

/// Encoded packets waiting for the connection task to write them in one `write` (write
/// coalescing: everything produced for a connection in one scheduling round goes out
/// together).
///
/// # Invariants
/// Shard-local (`!Send`); only whole packets are appended; the bytes in `buf` are counted
/// in the shard's queued-memory gauge (`stats`) until they are taken out or dropped.
#[derive(Debug)]
pub struct Outbox {
    buf: RefCell<BytesMut>,
    /// Bytes above which QoS 0 deliveries are dropped instead of buffered.
    soft_limit_bytes: usize,
    version: ProtocolVersion,
    waker: RefCell<Option<Waker>>,
    woken: Cell<bool>,
    /// Set when the connection must end: takeover, shutdown, a protocol error found
    /// elsewhere, keep-alive expiry. The reason goes to a v5 client in a DISCONNECT.
    close: Cell<Option<ReasonCode>>,
    /// When the connection must have received its next packet (1.5 x keep-alive after the
    /// last one [MQTT-3.1.2-24]); `None` without keep-alive. Watched by the shard's
    /// keep-alive sweep rather than a timer per connection.
    deadline: Cell<Option<Instant>>,
    /// When the packet whose first bytes have arrived must be complete
    /// (`limits.packet_timeout_secs`); `None` when no packet is begun, or while the broker
    /// is not reading this connection. Watched by the same sweep.
    packet_deadline: Cell<Option<Instant>>,
    /// The sweep's tick this connection is filed under, if any: one entry per connection.
    pub(crate) filed_tick: Cell<Option<u64>>,
    /// The shard's counters and queued-memory gauge.
    stats: Rc<LimitStats>,
    /// What the admin API shows of the connection (set once the client is accepted).
    details: Cell<Option<ConnDetails>>,
}

/// A connection as operators see it (`/api/v1/clients`).
#[derive(Debug, Clone, Copy)]
pub struct ConnDetails {
    /// The client's address (from the PROXY header behind a load balancer).
    pub peer: std::net::SocketAddr,
    /// The keep-alive in force (the client's, or the server's when it overrode it).
    pub keep_alive: u16,
    pub connected_at: std::time::SystemTime,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.stats.queued_sub(self.buf.get_mut().len());
    }
}

impl Outbox {
    /// An outbox whose buffered bytes count in `stats` (its shard's).
    pub fn new(version: ProtocolVersion, soft_limit_bytes: usize, stats: Rc<LimitStats>) -> Self {
        Outbox {
            buf: RefCell::new(BytesMut::new()),
            soft_limit_bytes,
            version,
            waker: RefCell::new(None),
            woken: Cell::new(false),
            close: Cell::new(None),
            deadline: Cell::new(None),
            packet_deadline: Cell::new(None),
            filed_tick: Cell::new(None),
            stats,
            details: Cell::new(None),
        }
    }

    pub fn details(&self) -> Option<ConnDetails> {
        self.details.get()
    }

    pub fn set_details(&self, details: ConnDetails) {
        self.details.set(Some(details));
    }

    /// Frees the buffer's memory if it is empty: called when the connection goes idle, so an
    /// idle connection holds no write buffer (the next push allocates a fresh one).
    pub fn release_idle(&self) {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() && buf.capacity() > 0 {
            *buf = BytesMut::new();
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get()
    }

    pub fn set_deadline(&self, deadline: Option<Instant>) {
        self.deadline.set(deadline);
    }

    pub fn packet_deadline(&self) -> Option<Instant> {
        self.packet_deadline.get()
    }

    pub fn set_packet_deadline(&self, deadline: Option<Instant>) {
        self.packet_deadline.set(deadline);
    }

    /// The earlier of the keep-alive and packet deadlines: when the sweep must look again.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.deadline.get(), self.packet_deadline.get()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Appends `packet`, encoded for this connection's version, and wakes the connection.
    /// Returns false if it cannot be encoded for this version (the caller counts the drop).
    pub fn push(&self, packet: &Packet) -> bool {
        let added = {
            let mut buf = self.buf.borrow_mut();
            let before = buf.len();
            let ok = packet.encode(self.version, &mut buf).is_ok();
            ok.then(|| buf.len() - before)
        };
        if let Some(n) = added {
            self.stats.queued_add(n);
            self.stats.traffic.sent(packet);
        }
        self.wake();
        added.is_some()
    }

    /// Whether the buffer is past its soft limit (a slow reader).
    pub fn is_full(&self) -> bool {
        self.buf.borrow().len() >= self.soft_limit_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.buf.borrow().is_empty()
    }

    /// Moves the buffered bytes into `into` (which must be empty) for writing.
    pub fn take_into(&self, into: &mut BytesMut) {
        std::mem::swap(&mut *self.buf.borrow_mut(), into);
        self.stats.queued_sub(into.len());
        self.stats.traffic.bytes_sent(into.len());
    }

    /// Asks the connection to end with `reason` (the first reason wins).
    pub fn close(&self, reason: ReasonCode) {
        if self.close.get().is_none() {
            self.close.set(Some(reason));
        }
        self.wake();
    }

    pub fn close_reason(&self) -> Option<ReasonCode> {
        self.close.get()
    }

    /// Wakes the connection task (it flushes, and releases acknowledgements whose wait is
    /// over).
    pub fn wake(&self) {
        self.woken.set(true);
        let waker = self.waker.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Resolves once something was pushed or a close was requested since the last wait.
    pub fn wait(&self) -> Wait<'_> {
        Wait { outbox: self }
    }
}

/// Future of [`Outbox::wait`].
pub struct Wait<'a> {
    outbox: &'a Outbox,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.outbox.woken.replace(false) {
            Poll::Ready(())
        } else {
            *self.outbox.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

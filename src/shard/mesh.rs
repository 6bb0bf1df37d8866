//! What crosses between shards: the only cross-core path. Two meshes of bounded SPSC
//! channels, one per ordered pair of shards: data (forwarded publishes) and control
//! (interest changes, retained messages, connection hand-off), so control never queues
//! behind bulk data.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::message::Message;
use crate::persist::state::Tag;
use crate::protocol::Connect;

/// Index of a shard, 0..shards. The same in both meshes (glommio orders mesh peers by
/// executor id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl ShardId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// The most shards a broker runs: [`ShardSet`] is a fixed 256-bit set.
pub const SHARDS_MAX: usize = 256;

/// A set of shards (which shards have subscribers for a topic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardSet([u64; SHARDS_MAX / 64]);

impl ShardSet {
    pub fn insert(&mut self, s: ShardId) {
        if let Some(word) = self.0.get_mut(s.index() / 64) {
            *word |= 1 << (s.index() % 64);
        }
    }

    pub fn contains(&self, s: ShardId) -> bool {
        self.0
            .get(s.index() / 64)
            .is_some_and(|w| w & (1 << (s.index() % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The members in increasing order: only the set bits are visited (this runs twice
    /// per publish).
    pub fn iter(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(ShardId((w * 64 + b) as u16))
            })
        })
    }
}

/// Data mesh: publishes forwarded to a shard with matching subscribers, once per shard.
// Nearly every message is a `Publish`: boxing it to shrink the rare `Answers` would cost an
// allocation per forwarded message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum DataMsg {
    /// A message for the receiving shard's subscribers. With `ticket` (QoS 1/2), the
    /// receiver answers once every session it queued the message for has room (see
    /// `pushback`).
    Publish {
        message: Message,
        ticket: Option<u64>,
        /// An inbound QoS 2 message's tag (see `persist::state`): recorded with it, and
        /// checked when recovery routes it again.
        tag: Option<Tag>,
        /// Whether the receiver delivers to its own (non-shared) subscribers: false when it
        /// gets the message only for `picks`.
        regular: bool,
        /// Members of share groups on the receiving shard picked for this message.
        picks: Vec<super::share::Pick>,
    },
    /// Answers to the receiving shard's tickets.
    Answers(Vec<u64>),
}

/// A connection moving to its client id's home shard after CONNECT.
#[derive(Debug)]
pub struct Handoff {
    pub fd: OwnedFd,
    /// A TLS connection's state (keys, records not yet decrypted, the certificate's user
    /// name): the connection goes on where it was.
    pub tls: Option<crate::tls::TlsState>,
    /// A WebSocket connection's framing state (bytes read and not unmasked yet, the frame
    /// in progress, queued control frames).
    pub ws: Option<Box<crate::connection::WsState>>,
    pub connect: Box<Connect>,
    /// Bytes read after the CONNECT, not decoded yet.
    pub buffered: Bytes,
    pub peer: SocketAddr,
    /// Who the accepting shard found the client to be (its password was checked there).
    pub principal: crate::auth::Principal,
    /// The connection's place in its listener's `max_connections`, held until it ends.
    pub listener: crate::limit::ListenerSlot,
}

/// Control mesh messages. `req` ties a reply to its request on the asking shard.
#[derive(Debug)]
pub enum CtrlMsg {
    Handoff(Handoff),
    /// A member joins (or updates its subscription to) the share group `share`; answer
    /// `Done`.
    ShareJoin {
        share: std::sync::Arc<str>,
        member: super::share::Member,
        from: ShardId,
        req: u64,
    },
    /// A member leaves the share group `share`.
    ShareLeave {
        share: std::sync::Arc<str>,
        shard: ShardId,
        key: super::SessionKey,
    },
    /// A member of the share group `share` connected or disconnected.
    ShareOnline {
        share: std::sync::Arc<str>,
        shard: ShardId,
        key: super::SessionKey,
        online: bool,
    },
    /// `from` has its first local subscription matching `filter`; answer `Done`.
    InterestAdd {
        filter: Box<str>,
        from: ShardId,
        req: u64,
    },
    /// `from` has no local subscription matching `filter` any more.
    InterestRemove {
        filter: Box<str>,
        from: ShardId,
    },
    /// Store (or, with an empty payload, clear) the retained message of a topic this
    /// shard owns.
    RetainSet {
        message: Box<Message>,
        tag: Option<Tag>,
        /// With a ticket: answer it once the retained message is durable.
        from: ShardId,
        ticket: Option<u64>,
    },
    /// `from` has passed a start-up barrier (its sessions are restored, or its sessions
    /// of other shards handed over).
    Recovered {
        from: ShardId,
    },
    /// Start-up after a change of shard count: a session whose log is elsewhere, for its
    /// new home shard to log and serve; answer `Done` once it is durable there.
    Adopt {
        session: Box<crate::shard::storage::RecoveredSession>,
        /// Its queued deliveries, in order, read from the old log.
        deliveries: Vec<(crate::persist::state::Target, Message)>,
        from: ShardId,
        req: u64,
    },
    /// Likewise for a retained message whose topic this shard now owns.
    AdoptRetained {
        message: Box<Message>,
        from: ShardId,
        req: u64,
    },
    /// Send back the retained messages matching `filter`.
    RetainQuery {
        filter: Box<str>,
        from: ShardId,
        req: u64,
    },
    RetainFound {
        req: u64,
        messages: Vec<Message>,
    },
    /// Send back this shard's metrics (`Metrics`).
    MetricsQuery {
        from: ShardId,
        req: u64,
    },
    Metrics {
        req: u64,
        snapshot: Box<crate::metrics::MetricsSnapshot>,
    },
    /// A request needing no data back is complete.
    Done {
        req: u64,
    },
}

/// A request sent to several shards, complete when each has answered.
#[derive(Debug, Default)]
pub struct Completion {
    remaining: Cell<usize>,
    wakers: RefCell<Vec<Waker>>,
    messages: RefCell<Vec<Message>>,
    /// For a metrics request: the merge of the answers so far.
    metrics: RefCell<Option<crate::metrics::MetricsSnapshot>>,
}

impl Completion {
    /// Waits until every shard answered; returns the messages they sent (the first waiter
    /// takes them).
    pub fn wait(self: &Rc<Self>) -> CompletionWait {
        CompletionWait(self.clone())
    }
}

impl Completion {
    /// The merge of the metrics answers (after [`Completion::wait`]).
    pub fn take_metrics(&self) -> crate::metrics::MetricsSnapshot {
        self.metrics.take().unwrap_or_default()
    }
}

pub struct CompletionWait(Rc<Completion>);

impl Future for CompletionWait {
    type Output = Vec<Message>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<Message>> {
        if self.0.remaining.get() == 0 {
            Poll::Ready(std::mem::take(&mut *self.0.messages.borrow_mut()))
        } else {
            self.0.wakers.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// The requests this shard waits on.
#[derive(Debug, Default)]
pub struct Replies {
    next: Cell<u64>,
    waiting: RefCell<HashMap<u64, Rc<Completion>>>,
}

impl Replies {
    /// A new request expecting `answers` replies.
    pub fn register(&self, answers: usize) -> (u64, Rc<Completion>) {
        let req = self.next.get();
        self.next.set(req.wrapping_add(1));
        let c = Rc::new(Completion::default());
        c.remaining.set(answers);
        if answers > 0 {
            self.waiting.borrow_mut().insert(req, c.clone());
        }
        (req, c)
    }

    /// One answer to `req` arrived.
    pub fn answer(&self, req: u64, messages: Vec<Message>) {
        self.answer_with(req, |c| c.messages.borrow_mut().extend(messages));
    }

    /// One shard's metrics for `req` arrived: merged into the others'.
    pub fn answer_metrics(&self, req: u64, snapshot: &crate::metrics::MetricsSnapshot) {
        self.answer_with(req, |c| {
            c.metrics
                .borrow_mut()
                .get_or_insert_with(Default::default)
                .merge(snapshot)
        });
    }

    fn answer_with(&self, req: u64, add: impl FnOnce(&Completion)) {
        let mut waiting = self.waiting.borrow_mut();
        let Some(c) = waiting.get(&req) else { return };
        add(c);
        let left = c.remaining.get().saturating_sub(1);
        c.remaining.set(left);
        if left == 0 {
            if let Some(c) = waiting.remove(&req) {
                drop(waiting);
                for w in c.wakers.borrow_mut().drain(..) {
                    w.wake();
                }
            }
        }
    }
}

/// FNV-1a: a stable hash that every shard (and every restart) computes the same, for home
/// shards of client ids and owners of retained topics.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_set() {
        let mut s = ShardSet::default();
        assert!(s.is_empty());
        for i in [0, 63, 64, 255] {
            s.insert(ShardId(i));
        }
        assert_eq!(s.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 63, 64, 255]);
        assert!(!s.contains(ShardId(1)));
    }

    #[test]
    fn completion_waits_for_every_answer() {
        let r = Replies::default();
        let (req, c) = r.register(2);
        r.answer(req, Vec::new());
        assert_eq!(c.remaining.get(), 1);
        r.answer(req, Vec::new());
        assert_eq!(c.remaining.get(), 0);
        r.answer(req, Vec::new());
        let (_, none) = r.register(0);
        assert_eq!(none.remaining.get(), 0);
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

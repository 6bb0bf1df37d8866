//! Pushback: the acknowledgement (PUBACK / PUBREC) of a QoS 1/2 message waits until every
//! connected session the message was queued for has room again, so publishers slow to the
//! pace of their slowest connected subscriber instead of overflowing its queue.
//!
//! A message's [`AckTicket`] is held once by routing, once per other shard the message went
//! to (answered over the data mesh, in batches), and once per local congested session (a
//! small task waits for the session's queue to drain). The publisher's connection sends its
//! acknowledgements in order, each when its ticket is released. A wait is bounded by
//! `limits.pushback_wait_ms`; a session that does not drain in time is marked stalled and
//! holds nobody back until it recovers, so one stuck client costs publishers at most one
//! wait.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::session::{Notify, Outbox, Session};

use super::mesh::ShardId;

/// What a publisher's acknowledgement waits for. Shard-local.
#[derive(Debug)]
pub struct AckTicket {
    holds: Cell<u32>,
    /// Woken when the last hold goes: the connection sends its acknowledgements.
    outbox: Rc<Outbox>,
}

impl AckTicket {
    /// A ticket held once, by the routing that creates it.
    pub fn new(outbox: Rc<Outbox>) -> Rc<Self> {
        Rc::new(AckTicket {
            holds: Cell::new(1),
            outbox,
        })
    }

    pub fn hold(&self) {
        self.holds.set(self.holds.get() + 1);
    }

    pub fn release(&self) {
        let left = self.holds.get().saturating_sub(1);
        self.holds.set(left);
        if left == 0 {
            self.outbox.wake();
        }
    }

    pub fn is_released(&self) -> bool {
        self.holds.get() == 0
    }
}

/// A ticket waiting for other shards' answers.
#[derive(Debug)]
struct Awaited {
    ticket: Rc<AckTicket>,
    answers_due: u16,
}

/// One shard's pushback bookkeeping: its tickets awaiting other shards, and its answers to
/// other shards' tickets, batched per shard.
#[derive(Debug)]
pub struct Pushback {
    awaited: RefCell<HashMap<u64, Awaited>>,
    next_id: Cell<u64>,
    /// Answers to send, per shard.
    answers: Vec<RefCell<Vec<u64>>>,
    /// Wakes the task that sends a shard its answers.
    answer_ready: Vec<Notify>,
}

impl Pushback {
    pub fn new(shards: usize) -> Self {
        Pushback {
            awaited: RefCell::default(),
            next_id: Cell::new(0),
            answers: (0..shards).map(|_| RefCell::default()).collect(),
            answer_ready: (0..shards).map(|_| Notify::default()).collect(),
        }
    }

    /// Registers `ticket` as held by `shards` other shards; returns the id they answer.
    pub fn await_shards(&self, ticket: &Rc<AckTicket>, shards: u16) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        for _ in 0..shards {
            ticket.hold();
        }
        self.awaited.borrow_mut().insert(
            id,
            Awaited {
                ticket: ticket.clone(),
                answers_due: shards,
            },
        );
        id
    }

    /// Another shard answered ticket `id`.
    pub fn answered(&self, id: u64) {
        let mut awaited = self.awaited.borrow_mut();
        let Some(a) = awaited.get_mut(&id) else {
            return;
        };
        a.answers_due = a.answers_due.saturating_sub(1);
        let ticket = a.ticket.clone();
        if a.answers_due == 0 {
            awaited.remove(&id);
        }
        drop(awaited);
        ticket.release();
    }

    /// Queues the answer to ticket `id` of shard `to`.
    pub fn answer(&self, to: ShardId, id: u64) {
        if let (Some(answers), Some(ready)) = (
            self.answers.get(to.index()),
            self.answer_ready.get(to.index()),
        ) {
            answers.borrow_mut().push(id);
            ready.notify_all();
        }
    }

    /// Waits for answers to `to`, then takes them all.
    pub async fn next_answers(&self, to: ShardId) -> Vec<u64> {
        let (Some(answers), Some(ready)) = (
            self.answers.get(to.index()),
            self.answer_ready.get(to.index()),
        ) else {
            return futures_lite::future::pending().await;
        };
        loop {
            let batch = std::mem::take(&mut *answers.borrow_mut());
            if !batch.is_empty() {
                return batch;
            }
            ready.notified().await;
        }
    }

    /// Tickets still waiting for another shard's answer.
    pub fn awaited_len(&self) -> usize {
        self.awaited.borrow().len()
    }
}

/// Waits until each session has room (or is offline), at most `limit` in all; a session
/// still full then is marked stalled.
pub async fn wait_for_room(sessions: Vec<Rc<RefCell<Session>>>, limit: Duration) {
    let deadline = Instant::now() + limit;
    for s in sessions {
        loop {
            if s.borrow().has_room() {
                break;
            }
            let drained = s.borrow_mut().drained();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero()
                || super::with_timeout(drained.notified(), left)
                    .await
                    .is_none()
            {
                let mut s = s.borrow_mut();
                if !s.has_room() {
                    tracing::debug!(client_id = %s.client_id, "subscriber stalled; pushback off until it drains");
                    s.mark_stalled();
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ProtocolVersion;

    #[test]
    fn a_ticket_is_released_by_its_last_hold_and_every_shard_answer() {
        let out = Rc::new(Outbox::new(ProtocolVersion::V5, 1024, Rc::default()));
        let p = Pushback::new(3);
        let t = AckTicket::new(out);
        let id = p.await_shards(&t, 2);
        t.release(); // routing done
        assert!(!t.is_released());
        p.answered(id);
        assert!(!t.is_released());
        assert_eq!(p.awaited_len(), 1);
        p.answered(id);
        assert!(t.is_released());
        assert_eq!(p.awaited_len(), 0, "no entry outlives its answers");
        p.answered(id); // a stray answer is ignored
        assert!(t.is_released());
    }
}

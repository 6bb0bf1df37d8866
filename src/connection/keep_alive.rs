//! Keep-alive deadlines of a shard's connections, checked by one task per shard instead of a
//! timer per connection.
//!
//! A glommio timer costs an idle connection about 150 bytes (its `Rc`, and entries in the
//! reactor's two timer maps) and is re-created on every wake-up. Here each connection is
//! filed once under the tick of its deadline; when that tick comes, a connection whose
//! deadline has moved on (it sent packets) is filed again under its new deadline, so a busy
//! connection costs the sweep one look per keep-alive period, not one per packet.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::protocol::ReasonCode;
use crate::session::Outbox;
use crate::shard::Shard;

/// Granularity of the sweep: a silent connection is closed at most this late.
pub const TICK: Duration = Duration::from_millis(250);

/// Connections by the tick (of [`TICK`], counted from `origin`) at or after their deadline.
///
/// # Invariants
/// Every watched connection with a deadline is filed under one tick no earlier than its
/// deadline; entries of ended connections are dropped when their tick comes.
#[derive(Debug)]
pub struct KeepAlive {
    origin: Instant,
    by_tick: RefCell<BTreeMap<u64, Vec<Weak<Outbox>>>>,
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive {
            origin: Instant::now(),
            by_tick: RefCell::default(),
        }
    }
}

impl KeepAlive {
    /// The first tick at or after `at`.
    fn tick_after(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin).as_nanos();
        let tick = TICK.as_nanos();
        u64::try_from(since.div_ceil(tick)).unwrap_or(u64::MAX)
    }

    /// The last tick at or before `at`.
    fn tick_before(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(since / TICK.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Watches a connection's [`Outbox::deadline`] from now on (nothing if it has none).
    pub fn watch(&self, outbox: &Rc<Outbox>) {
        if let Some(deadline) = outbox.deadline() {
            self.file(deadline, Rc::downgrade(outbox));
        }
    }

    fn file(&self, deadline: Instant, outbox: Weak<Outbox>) {
        let tick = self.tick_after(deadline);
        self.by_tick
            .borrow_mut()
            .entry(tick)
            .or_default()
            .push(outbox);
    }

    /// Connections whose deadline passed by `now`; the others of the due ticks are filed
    /// again under their current deadline.
    fn expired(&self, now: Instant) -> Vec<Rc<Outbox>> {
        let last = self.tick_before(now);
        let mut due = Vec::new();
        {
            let mut by_tick = self.by_tick.borrow_mut();
            while let Some(entry) = by_tick.first_entry() {
                if *entry.key() > last {
                    break;
                }
                due.extend(entry.remove());
            }
        }
        let mut expired = Vec::new();
        for weak in due {
            let Some(outbox) = weak.upgrade() else {
                continue;
            };
            match outbox.deadline() {
                Some(d) if d <= now => expired.push(outbox),
                Some(d) => self.file(d, weak),
                None => {}
            }
        }
        expired
    }
}

/// Closes silent connections (v5: DISCONNECT 0x8D), every [`TICK`], until shutdown.
pub async fn sweep(shard: Rc<Shard>) {
    while !shard.shutdown.is_triggered() {
        glommio::timer::sleep(TICK).await;
        for outbox in shard.keep_alive.expired(Instant::now()) {
            outbox.close(ReasonCode::KeepAliveTimeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ProtocolVersion;

    fn outbox(deadline: Option<Instant>) -> Rc<Outbox> {
        let o = Rc::new(Outbox::new(ProtocolVersion::V5, 1024));
        o.set_deadline(deadline);
        o
    }

    #[test]
    fn a_connection_expires_at_its_deadline_not_before() {
        let ka = KeepAlive::default();
        let start = ka.origin;
        let o = outbox(Some(start + Duration::from_millis(1500)));
        ka.watch(&o);
        assert!(ka.expired(start + Duration::from_millis(1499)).is_empty());
        let gone = ka.expired(start + Duration::from_millis(1500));
        assert_eq!(gone.len(), 1);
        assert!(Rc::ptr_eq(&gone[0], &o));
    }

    #[test]
    fn a_moved_deadline_is_filed_again() {
        let ka = KeepAlive::default();
        let start = ka.origin;
        let o = outbox(Some(start + Duration::from_secs(1)));
        ka.watch(&o);
        // A packet arrived: the deadline moved on before its tick came.
        o.set_deadline(Some(start + Duration::from_secs(3)));
        assert!(ka.expired(start + Duration::from_secs(2)).is_empty());
        assert_eq!(ka.expired(start + Duration::from_secs(3)).len(), 1);
    }

    #[test]
    fn ended_connections_and_no_keep_alive_are_forgotten() {
        let ka = KeepAlive::default();
        let start = ka.origin;
        let ended = outbox(Some(start + Duration::from_secs(1)));
        ka.watch(&ended);
        drop(ended);
        let never = outbox(None);
        ka.watch(&never);
        assert!(ka.expired(start + Duration::from_secs(10)).is_empty());
        assert!(ka.by_tick.borrow().is_empty());
    }
}

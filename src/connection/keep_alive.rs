//! Keep-alive deadlines of a shard's connections, checked by one task per shard instead of a
//! timer per connection; the same sweep closes connections whose begun packet is not
//! complete within `limits.packet_timeout_secs` (slowloris).
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

use crate::limit::Limit;
use crate::protocol::ReasonCode;
use crate::session::Outbox;
use crate::shard::Shard;

/// Granularity of the sweep: a silent connection is closed at most this late.
pub const TICK: Duration = Duration::from_millis(250);

/// Connections by the tick (of [`TICK`], counted from `origin`) at or after their deadline
/// (the earlier of keep-alive and packet deadline, [`Outbox::next_deadline`]).
///
/// # Invariants
/// Every watched connection with a deadline is filed under one tick no earlier than its
/// deadline, the tick its `filed_tick` names; an entry under another tick is stale and is
/// dropped when its tick comes, as are entries of ended connections.
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

    /// Watches a connection's deadlines from now on (nothing if it has none). Called again
    /// when a deadline may have moved earlier; a connection filed under an earlier tick
    /// already is left where it is.
    pub fn watch(&self, outbox: &Rc<Outbox>) {
        if let Some(deadline) = outbox.next_deadline() {
            let tick = self.tick_after(deadline);
            if outbox.filed_tick.get().map_or(true, |filed| tick < filed) {
                self.file(tick, outbox, Rc::downgrade(outbox));
            }
        }
    }

    fn file(&self, tick: u64, outbox: &Outbox, weak: Weak<Outbox>) {
        outbox.filed_tick.set(Some(tick));
        self.by_tick
            .borrow_mut()
            .entry(tick)
            .or_default()
            .push(weak);
    }

    /// Connections whose deadline passed by `now`, with which one; the others of the due
    /// ticks are filed again under their current deadline.
    fn expired(&self, now: Instant) -> Vec<(Rc<Outbox>, Expired)> {
        let last = self.tick_before(now);
        let mut due = Vec::new();
        {
            let mut by_tick = self.by_tick.borrow_mut();
            while let Some(entry) = by_tick.first_entry() {
                if *entry.key() > last {
                    break;
                }
                let tick = *entry.key();
                due.extend(entry.remove().into_iter().map(|w| (tick, w)));
            }
        }
        let mut expired = Vec::new();
        for (tick, weak) in due {
            let Some(outbox) = weak.upgrade() else {
                continue;
            };
            if outbox.filed_tick.get() != Some(tick) {
                continue; // Stale: filed again under an earlier tick since.
            }
            outbox.filed_tick.set(None);
            if outbox.packet_deadline().is_some_and(|d| d <= now) {
                expired.push((outbox, Expired::Packet));
            } else if outbox.deadline().is_some_and(|d| d <= now) {
                expired.push((outbox, Expired::KeepAlive));
            } else if let Some(d) = outbox.next_deadline() {
                self.file(self.tick_after(d), &outbox, weak);
            }
        }
        expired
    }
}

/// Which deadline a connection missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    /// No packet for 1.5 x keep-alive [MQTT-3.1.2-24].
    KeepAlive,
    /// A packet begun and not complete within `limits.packet_timeout_secs`.
    Packet,
}

/// Closes silent connections, and those stuck in the middle of a packet (v5: DISCONNECT
/// 0x8D for both: the client did not deliver a packet in time), every [`TICK`], until
/// shutdown.
pub async fn sweep(shard: Rc<Shard>) {
    while !shard.shutdown.is_triggered() {
        glommio::timer::sleep(TICK).await;
        for (outbox, missed) in shard.keep_alive.expired(Instant::now()) {
            if missed == Expired::Packet {
                shard.limit_stats.hit(Limit::PacketTimeout);
                tracing::debug!(shard = %shard.id, "packet not completed within limits.packet_timeout_secs");
            }
            outbox.close(ReasonCode::KeepAliveTimeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ProtocolVersion;

    fn outbox(deadline: Option<Instant>) -> Rc<Outbox> {
        let o = Rc::new(Outbox::new(ProtocolVersion::V5, 1024, Rc::default()));
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
        assert!(Rc::ptr_eq(&gone[0].0, &o));
        assert_eq!(gone[0].1, Expired::KeepAlive);
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
    fn a_packet_deadline_before_the_keep_alive_one_is_watched_once() {
        let ka = KeepAlive::default();
        let start = ka.origin;
        let o = outbox(Some(start + Duration::from_secs(60)));
        ka.watch(&o);
        // A packet begins, with 2 s to complete; watched again, and again (no duplicates).
        o.set_packet_deadline(Some(start + Duration::from_secs(2)));
        ka.watch(&o);
        ka.watch(&o);
        let entries: usize = ka.by_tick.borrow().values().map(Vec::len).sum();
        assert_eq!(
            entries, 2,
            "the keep-alive entry (now stale) and one packet entry"
        );
        let gone = ka.expired(start + Duration::from_secs(2));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1, Expired::Packet);
        // The stale entry is dropped at its tick without a second close.
        assert!(ka.expired(start + Duration::from_secs(61)).is_empty());
        assert!(ka.by_tick.borrow().is_empty());
    }

    #[test]
    fn a_completed_packet_falls_back_to_the_keep_alive_deadline() {
        let ka = KeepAlive::default();
        let start = ka.origin;
        let o = outbox(None);
        o.set_packet_deadline(Some(start + Duration::from_secs(2)));
        ka.watch(&o);
        o.set_packet_deadline(None);
        o.set_deadline(Some(start + Duration::from_secs(5)));
        assert!(ka.expired(start + Duration::from_secs(3)).is_empty());
        let gone = ka.expired(start + Duration::from_secs(5));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1, Expired::KeepAlive);
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

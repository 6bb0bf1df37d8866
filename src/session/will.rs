//! A session's will: kept for the log while its client is connected, pending for the Will
//! Delay Interval after the connection ends [MQTT-3.1.2-8], cancelled when a new connection
//! resumes the session first [MQTT-3.1.3-9]. Only a durable session keeps one (in its
//! `Durable` part): a clean session ends with its connection, which publishes the will at
//! once, so clean sessions pay nothing for this.
//!
//! The shard publishes a pending will from its once-a-second sweep, so a will goes up to
//! about a second after its delay has passed; when the session ends first (expiry, a
//! clean-start connection, removal) it goes then (`Shard::remove_session`).

use std::time::{Duration, Instant};

use super::Session;
use crate::message::Message;
use crate::persist::state::{instant_at, unix_ms_now, StateRecord};

/// The will a durable session keeps.
#[derive(Debug, Clone)]
pub enum SessionWill {
    /// The connected client's will, as the log has it: a crash makes it pending at the
    /// restart. The connection holds its own copy, which is what is published (or made
    /// pending) when the connection ends.
    Armed { message: Message, delay_secs: u32 },
    /// The connection ended without a normal DISCONNECT: published at `due`, or when the
    /// session ends if that comes first.
    Pending {
        message: Message,
        delay_secs: u32,
        due: Instant,
        /// `due` as logged (a checkpoint writes it again unchanged).
        due_unix_ms: u64,
    },
}

/// The record that logs a will of session `no`: `Will` for a connected client's will
/// without delay (as before delays were kept), else `DelayedWill`.
pub fn will_record(
    no: u64,
    message: &Message,
    delay_secs: u32,
    due_unix_ms: Option<u64>,
) -> StateRecord {
    match (delay_secs, due_unix_ms) {
        (0, None) => StateRecord::Will {
            no,
            message: message.clone(),
        },
        _ => StateRecord::DelayedWill {
            no,
            delay_secs,
            due_unix_ms,
            message: message.clone(),
        },
    }
}

impl SessionWill {
    fn record(&self, no: u64) -> StateRecord {
        match self {
            SessionWill::Armed {
                message,
                delay_secs,
            } => will_record(no, message, *delay_secs, None),
            SessionWill::Pending {
                message,
                delay_secs,
                due_unix_ms,
                ..
            } => will_record(no, message, *delay_secs, Some(*due_unix_ms)),
        }
    }
}

impl Session {
    /// Whether a will can wait here for its delay: the session outlives its connection
    /// (and so is durable: a session with an expiry is logged from its first connection,
    /// and v5 forbids raising an expiry of 0 at DISCONNECT).
    pub fn keeps_wills(&self) -> bool {
        self.is_durable() && self.expiry_secs > 0
    }

    /// A connection is attached, to a new or a resumed session: a will still pending from
    /// an earlier connection is not sent [MQTT-3.1.3-9]. `will` (the new connection's,
    /// with its delay) is kept and logged if the session is durable, so that a crash
    /// publishes it after the restart; a clean session keeps nothing.
    pub fn arm_will(&mut self, will: Option<(Message, u32)>) {
        let Some(d) = &mut self.durable else {
            return;
        };
        let had = d.will.take().is_some();
        let no = d.no;
        match will {
            Some((message, delay_secs)) => {
                let armed = SessionWill::Armed {
                    message,
                    delay_secs,
                };
                d.journal.push(armed.record(no));
                d.will = Some(Box::new(armed));
            }
            None if had => d.journal.push(StateRecord::WillClear { no }),
            None => {}
        }
    }

    /// The connection ended and its will waits `delay_secs` from `now`, logged with its due
    /// time so that it survives a restart. Only where [`Session::keeps_wills`]; elsewhere
    /// the caller publishes the will at once.
    pub fn delay_will(&mut self, message: Message, delay_secs: u32, now: Instant) {
        let Some(d) = &mut self.durable else {
            return;
        };
        let delay = Duration::from_secs(u64::from(delay_secs));
        let pending = SessionWill::Pending {
            message,
            delay_secs,
            // Never fails in practice (the monotonic clock counts i64 seconds).
            due: now.checked_add(delay).unwrap_or(now),
            due_unix_ms: unix_ms_now().saturating_add(u64::from(delay_secs) * 1000),
        };
        d.journal.push(pending.record(d.no));
        d.will = Some(Box::new(pending));
    }

    /// A will pending since before a restart, due at `due_unix_ms` (already logged).
    pub fn restore_pending_will(&mut self, message: Message, delay_secs: u32, due_unix_ms: u64) {
        if let Some(d) = &mut self.durable {
            d.will = Some(Box::new(SessionWill::Pending {
                message,
                delay_secs,
                due: instant_at(due_unix_ms),
                due_unix_ms,
            }));
        }
    }

    /// Nothing is pending any more: the connection ended normally [MQTT-3.1.2-10], or its
    /// will was published at once.
    pub fn clear_will(&mut self) {
        if let Some(d) = &mut self.durable {
            if d.will.take().is_some() {
                d.journal.push(StateRecord::WillClear { no: d.no });
            }
        }
    }

    /// When the pending will is due, if one is.
    pub fn will_due(&self) -> Option<Instant> {
        match self.durable.as_ref()?.will.as_deref() {
            Some(SessionWill::Pending { due, .. }) => Some(*due),
            _ => None,
        }
    }

    /// Takes the pending will if it is due by `now`, journalling that it is gone.
    pub fn take_due_will(&mut self, now: Instant) -> Option<Message> {
        if !self.will_due().is_some_and(|due| due <= now) {
            return None;
        }
        let message = self.take_pending_will()?;
        self.journal(StateRecord::WillClear {
            no: self.durable_no()?,
        });
        Some(message)
    }

    /// The session ends: takes the pending will (published now, whatever is left of its
    /// delay). Not journalled: the session's end is logged instead.
    pub fn take_pending_will(&mut self) -> Option<Message> {
        self.will_due()?;
        match self.durable.as_mut()?.will.take().map(|w| *w) {
            Some(SessionWill::Pending { message, .. }) => Some(message),
            _ => None,
        }
    }

    /// The will's record, as a checkpoint writes it.
    pub fn will_record(&self) -> Option<StateRecord> {
        let d = self.durable.as_ref()?;
        Some(d.will.as_ref()?.record(d.no))
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::protocol::{QoS, TopicName};
    use crate::session::{RecoveredQueue, SessionLimits};

    const LIMITS: SessionLimits = SessionLimits {
        queued_messages_max: 3,
        queued_bytes_max: 1 << 20,
        inflight_count_max: 2,
        pushback_messages: 0,
    };

    fn will() -> Message {
        Message {
            topic: TopicName::try_from("w").expect("topic"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            origin: Arc::from("c"),
            received_at: Instant::now(),
        }
    }

    fn durable() -> Session {
        let mut s = Session::new(Arc::from("c"), LIMITS, Rc::default());
        s.make_durable(7, RecoveredQueue::new());
        s
    }

    fn kinds(journal: &[StateRecord]) -> Vec<String> {
        journal
            .iter()
            .map(|r| match r {
                StateRecord::Will { no, .. } => format!("Will {no}"),
                StateRecord::WillClear { no } => format!("WillClear {no}"),
                StateRecord::DelayedWill {
                    no,
                    delay_secs,
                    due_unix_ms,
                    ..
                } => format!("DelayedWill {no} {delay_secs} {}", due_unix_ms.is_some()),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_connected_will_is_logged_with_its_delay_and_cleared_by_a_normal_end() {
        let mut s = durable();
        s.arm_will(Some((will(), 0)));
        s.clear_will();
        s.arm_will(Some((will(), 5)));
        assert_eq!(s.will_due(), None, "an armed will is not pending");
        s.clear_will();
        s.clear_will();
        assert_eq!(
            kinds(&s.take_journal()),
            [
                "Will 7",
                "WillClear 7",
                "DelayedWill 7 5 false",
                "WillClear 7"
            ]
        );
    }

    // [MQTT-3.1.2-8] [MQTT-3.1.3-9] (5.0)
    #[test]
    fn a_pending_will_is_due_after_its_delay_and_cancelled_by_a_resume() {
        let mut s = durable();
        let t = Instant::now();
        s.delay_will(will(), 10, t);
        assert_eq!(s.will_due(), Some(t + Duration::from_secs(10)));
        assert!(s.take_due_will(t + Duration::from_secs(9)).is_none());
        assert!(s.will_record().is_some(), "a checkpoint keeps it");
        s.arm_will(None);
        assert_eq!(s.will_due(), None);
        assert!(s.take_due_will(t + Duration::from_secs(11)).is_none());
        assert!(s.will_record().is_none());
        assert_eq!(
            kinds(&s.take_journal()),
            ["DelayedWill 7 10 true", "WillClear 7"]
        );
    }

    #[test]
    fn a_due_will_is_taken_once_and_logged_as_gone() {
        let mut s = durable();
        let t = Instant::now();
        s.delay_will(will(), 1, t);
        s.take_journal();
        let taken = s.take_due_will(t + Duration::from_secs(1));
        assert_eq!(taken.map(|m| m.payload), Some(Bytes::from_static(b"gone")));
        assert!(s.take_due_will(t + Duration::from_secs(2)).is_none());
        assert_eq!(kinds(&s.take_journal()), ["WillClear 7"]);
    }

    #[test]
    fn the_session_end_takes_a_pending_will_but_not_an_armed_one() {
        let mut s = durable();
        s.arm_will(Some((will(), 3)));
        assert!(s.take_pending_will().is_none());
        assert!(s.will_record().is_some(), "the armed will stays");
        s.delay_will(will(), 3, Instant::now());
        assert!(s.take_pending_will().is_some());
        assert!(s.will_record().is_none());
    }

    #[test]
    fn only_a_session_that_outlives_its_connection_keeps_a_will() {
        let mut s = Session::new(Arc::from("c"), LIMITS, Rc::default());
        s.expiry_secs = 60;
        assert!(!s.keeps_wills(), "a clean session ends with its connection");
        s.arm_will(Some((will(), 3)));
        s.delay_will(will(), 3, Instant::now());
        assert_eq!(s.will_due(), None);
        assert!(s.will_record().is_none());
        let mut s = durable();
        assert!(
            !s.keeps_wills(),
            "expiry 0: the session ends with its connection"
        );
        s.expiry_secs = 1;
        assert!(s.keeps_wills());
    }

    #[test]
    fn a_restored_pending_will_keeps_its_logged_due_time() {
        let mut s = durable();
        let due = unix_ms_now() + 60_000;
        s.restore_pending_will(will(), 60, due);
        let Some(StateRecord::DelayedWill { due_unix_ms, .. }) = s.will_record() else {
            panic!("not a delayed will");
        };
        assert_eq!(due_unix_ms, Some(due));
        let left = s
            .will_due()
            .map(|d| d.saturating_duration_since(Instant::now()));
        assert!(left.is_some_and(|l| l > Duration::from_secs(58) && l <= Duration::from_secs(60)));
        assert!(s.take_journal().is_empty(), "already logged");
    }
}

//! Delayed wills: the sessions keep them (`crate::session::SessionWill`); the shard
//! publishes those whose Will Delay Interval has passed from its once-a-second sweep, so a
//! will goes at most about a second late [MQTT-3.1.2-8]. A will whose session ends first
//! goes from `Shard::remove_session`.

use std::rc::Rc;
use std::time::Instant;

use super::Shard;
use crate::message::Message;

impl Shard {
    /// Publishes a will that waited: its Message Expiry Interval counts from now.
    pub(super) async fn publish_will(self: &Rc<Self>, mut message: Message) {
        message.received_at = Instant::now();
        self.publish(message, None).await;
    }

    /// Publishes the pending wills due by `now`.
    pub(super) async fn publish_due_wills(self: &Rc<Self>, now: Instant) {
        let due: Vec<_> = self
            .sessions
            .borrow()
            .iter()
            .filter(|(_, s)| s.borrow().will_due().is_some_and(|d| d <= now))
            .map(|(_, s)| s.clone())
            .collect();
        for session in due {
            let Some(message) = session.borrow_mut().take_due_will(now) else {
                continue;
            };
            tracing::debug!(client_id = %session.borrow().client_id, "delayed will published");
            self.publish_will(message).await;
            // The `WillClear` is journalled before the publish's records but logged after
            // them (unless a reconnect meanwhile logged the session's journal): a crash in
            // between publishes the will again rather than never.
            self.sync_session(&session);
        }
    }
}

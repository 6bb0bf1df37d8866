//! Start-up from the log, and checkpoints: what recovery found becomes sessions,
//! subscriptions and retained messages again before the shard serves; in-doubt QoS 2
//! messages finish routing; wills of clients that were connected when the broker stopped
//! are published. Later, checkpoints rewrite the live state so that old segments can go.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::mesh::CtrlMsg;
use super::storage::Recovered;
use super::{LocalSub, Shard};
use crate::message::Message;
use crate::persist::state::{instant_of, unix_ms_of, StateRecord, Tag};
use crate::persist::LogOffset;
use crate::protocol::{PacketId, ProtocolVersion, TopicFilter};
use crate::session::{Outbox, Session, Subscribed};

impl Shard {
    /// Rebuilds the recovered state, waits until every shard has done the same (so their
    /// subscriptions are known everywhere), then finishes what the stop interrupted.
    pub(super) async fn restore(self: &Rc<Self>, recovered: Recovered) {
        let Recovered {
            state,
            records,
            bytes,
            elapsed,
            ..
        } = recovered;
        let now = Instant::now();
        let (sessions, retained) = (state.sessions.len(), state.retained.len());
        for (topic, message) in state.retained {
            self.retained.borrow_mut().insert(&topic, Rc::new(message));
        }
        let mut in_doubt = Vec::new();
        let mut wills = Vec::new();
        for (no, rs) in state.sessions {
            if self.home_of(&rs.client_id) != self.id {
                tracing::warn!(client_id = %rs.client_id, "session of another shard in this log (shard count changed)");
            }
            let mut session = Session::new(rs.client_id.clone(), self.session_limits);
            session.expiry_secs = rs.expiry_secs;
            // A session whose client was connected when the broker stopped lost its
            // connection then: its expiry counts from now, and its will is due.
            session.disconnected_at = Some(rs.detached_ms.map_or(now, instant_of));
            session.make_durable(no, rs.queue);
            for (id, (at, message)) in rs.inbound {
                let Some(packet_id) = PacketId::new(id) else {
                    continue;
                };
                session.inbound_qos2_begin(packet_id);
                let message = Rc::new(message);
                session.accepted(packet_id, at, message.clone());
                let tag = Tag {
                    shard: self.id.0,
                    offset: at.get(),
                };
                in_doubt.push((tag, message));
            }
            if rs.detached_ms.is_none() {
                self.storage.append(&StateRecord::Detached {
                    no,
                    unix_ms: unix_ms_of(now),
                });
                if let Some(will) = rs.will {
                    wills.push((no, will));
                }
            }
            let client_id = rs.client_id.clone();
            let (key, s) = self.sessions.borrow_mut().insert(session);
            for (filter, (options, id)) in rs.subscriptions {
                let Ok(filter) = TopicFilter::try_from(&*filter) else {
                    continue;
                };
                let local = LocalSub {
                    options,
                    id,
                    client_id: client_id.clone(),
                };
                self.subscribe(key, &filter, local).await;
                s.borrow_mut()
                    .subscriptions
                    .insert(filter, Subscribed { options, id });
            }
        }
        tracing::info!(
            shard = %self.id, sessions, retained, records, bytes,
            elapsed_ms = elapsed.as_millis() as u64, "recovered"
        );
        self.recovery_barrier().await;
        // Inbound QoS 2 messages accepted before the stop may not have reached every
        // shard: route them again; a shard whose log has the tag skips it.
        let routed = in_doubt.len();
        for (tag, message) in in_doubt {
            self.finish_routing(Message::clone(&message), tag).await;
        }
        self.storage.recovered_tags.borrow_mut().clear();
        self.storage.recovered_tags.borrow_mut().shrink_to_fit();
        for (no, will) in wills {
            self.publish(will, None).await;
            self.storage.append(&StateRecord::WillClear { no });
        }
        if routed > 0 {
            tracing::info!(shard = %self.id, messages = routed, "in-doubt QoS 2 messages routed again");
        }
    }

    /// Waits until every other shard has restored its sessions.
    async fn recovery_barrier(self: &Rc<Self>) {
        for s in self.others() {
            let _ = self
                .ctrl
                .send_to(s, CtrlMsg::Recovered { from: self.id })
                .await;
        }
        loop {
            let woken = self.recovered_notify.notified();
            if self.recovered_peers.get() + 1 >= self.count {
                break;
            }
            // Bounded, in case a shard failed to start (it stops the broker anyway).
            if super::with_timeout(woken, Duration::from_secs(30))
                .await
                .is_none()
            {
                tracing::warn!(shard = %self.id, "not every shard finished recovery within 30 s");
                break;
            }
        }
    }

    /// Routes a recovered message again and waits until what it needs is durable.
    async fn finish_routing(self: &Rc<Self>, message: Message, tag: Tag) {
        let outbox = Rc::new(Outbox::new(ProtocolVersion::V5, 0));
        let Some(ticket) = self.publish_tagged(message, Some(&outbox), Some(tag)).await else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ticket.is_released() && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Once enough has been written since the last checkpoint: writes one (the live
    /// state), then deletes the segments nothing live points into any more.
    pub(super) async fn compact(&self) {
        if !self.storage.checkpoint_due() {
            return;
        }
        let mut records = Vec::new();
        let mut oldest: Option<LogOffset> = None;
        for (_, s) in self.sessions.borrow().iter() {
            let s = s.borrow();
            let Some(no) = s.durable_no() else {
                continue;
            };
            records.push(StateRecord::Session {
                no,
                expiry_secs: s.expiry_secs,
                client_id: s.client_id.clone(),
            });
            for (filter, sub) in &s.subscriptions {
                records.push(StateRecord::Subscribe {
                    no,
                    options: sub.options,
                    id: sub.id,
                    filter: filter.as_str().into(),
                });
            }
            if let Some(q) = s.queue_state() {
                if let StateRecord::Queue {
                    low_offset: Some(at),
                    ..
                } = &q
                {
                    oldest = Some(oldest.map_or(*at, |o| o.min(*at)));
                }
                records.push(q);
            }
            records.extend(s.accepted_state());
            if let Some(at) = s.disconnected_at {
                records.push(StateRecord::Detached {
                    no,
                    unix_ms: unix_ms_of(at),
                });
            }
            if let Some(will) = s.logged_will() {
                records.push(StateRecord::Will {
                    no,
                    message: will.clone(),
                });
            }
        }
        self.retained.borrow().for_each(|_, m| {
            records.push(StateRecord::Retain {
                tag: None,
                message: Message::clone(m),
            });
        });
        let started = Instant::now();
        let count = records.len();
        self.storage.write_checkpoint(records.into_iter());
        tracing::debug!(
            shard = %self.id, records = count,
            elapsed_us = started.elapsed().as_micros() as u64, "checkpoint written"
        );
        self.storage.remove_dead(oldest).await;
    }
}

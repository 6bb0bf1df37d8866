//! Start-up from the log, and checkpoints: what recovery found becomes sessions,
//! subscriptions and retained messages again before the shard serves; in-doubt QoS 2
//! messages finish routing; wills of clients that were connected when the broker stopped
//! are published, or become pending for their Will Delay Interval counted from the
//! restart, and pending wills whose time passed while the broker was down are published.
//! Later, checkpoints rewrite the live state so that old segments can go.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::mesh::CtrlMsg;
use super::storage::{Recovered, RecoveredSession, Storage};
use super::{LocalSub, Shard};
use crate::message::Message;
use crate::persist::state::{instant_of, unix_ms_now, unix_ms_of, StateRecord, Tag, Target};
use crate::persist::LogOffset;
use crate::protocol::{PacketId, ProtocolVersion, TopicFilter};
use crate::session::{Outbox, Session, Subscribed};

/// The largest queue compaction copies forward (in one synchronous step on the shard's
/// loop: about 10-20 ms at memory speed).
const MOVE_BYTES_MAX: u64 = 16 << 20;

/// What restoring found to finish before serving.
#[derive(Default)]
struct Pending {
    /// Inbound QoS 2 messages accepted before the stop, with their tags.
    in_doubt: Vec<(Tag, Rc<Message>)>,
    /// Wills due at start-up: of clients connected when the broker stopped (without a
    /// delay), and delayed ones whose time has passed: (session no, will).
    wills: Vec<(u64, Message)>,
}

impl Shard {
    /// Rebuilds the recovered state, then finishes what the stop interrupted, in steps
    /// that every shard passes together (barriers), before any shard serves:
    ///
    /// 1. sessions and retained messages of this shard's log become live again; those
    ///    that belong to another shard now (the shard count changed), and everything in
    ///    the logs of shards that no longer exist (`orphans`), are set aside;
    /// 2. in-doubt inbound QoS 2 messages are routed again (shards skip tags they have);
    /// 3. set-aside sessions and retained messages are handed to their home shards, which
    ///    log them before answering; then they are marked gone here;
    /// 4. wills that are due are published: those of clients that were connected when the
    ///    broker stopped (without a delay), and delayed ones whose time has passed.
    pub(super) async fn restore(
        self: &Rc<Self>,
        recovered: Recovered,
        orphans: Vec<(u16, Rc<Storage>, Recovered)>,
    ) {
        let Recovered {
            state,
            records,
            bytes,
            elapsed,
            ..
        } = recovered;
        let (sessions, retained) = (state.sessions.len(), state.retained.len());
        // What a queued message takes in the log, on average: recovery counts queues, not
        // bytes, and compaction and quotas need an idea of their size.
        let record_bytes = bytes.checked_div(records).unwrap_or(0);
        let mut state = state;
        for rs in state.sessions.values_mut() {
            rs.queue.bytes = rs.queue.len() * record_bytes;
        }
        let mut pending = Pending::default();
        let mut foreign = Vec::new();
        let mut foreign_retained = Vec::new();
        for (topic, message) in state.retained {
            if self.owner_of(&topic) == self.id {
                self.retained.borrow_mut().insert(Rc::new(*message));
            } else {
                foreign_retained.push((self.storage.clone(), true, *message));
            }
        }
        for (no, rs) in state.sessions {
            if self.home_of(&rs.client_id) == self.id {
                self.install(no, rs, self.id.0, &mut pending).await;
            } else {
                foreign.push((self.storage.clone(), self.id.0, no, rs));
            }
        }
        for (index, storage, rec) in orphans {
            tracing::info!(
                shard = %self.id, from = index, sessions = rec.state.sessions.len(),
                retained = rec.state.retained.len(), "moving the state of a former shard"
            );
            for (_, message) in rec.state.retained {
                foreign_retained.push((storage.clone(), false, *message));
            }
            for (no, rs) in rec.state.sessions {
                foreign.push((storage.clone(), index, no, rs));
            }
        }
        tracing::info!(
            shard = %self.id, sessions, retained, records, bytes,
            elapsed_ms = elapsed.as_millis() as u64, "recovered"
        );
        self.recovery_barrier(1).await;
        for (_, index, _, rs) in &foreign {
            for (at, message) in rs.inbound.values() {
                let tag = Tag {
                    shard: *index,
                    offset: at.get(),
                };
                pending.in_doubt.push((tag, Rc::new(message.clone())));
            }
        }
        let routed = pending.in_doubt.len();
        for (tag, message) in std::mem::take(&mut pending.in_doubt) {
            self.finish_routing(Message::clone(&message), tag).await;
        }
        if routed > 0 {
            tracing::info!(shard = %self.id, messages = routed, "in-doubt QoS 2 messages routed again");
        }
        self.recovery_barrier(2).await;
        self.storage.recovered_tags.borrow_mut().clear();
        self.storage.recovered_tags.borrow_mut().shrink_to_fit();
        let moved = foreign.len();
        for (source, _, no, rs) in foreign {
            self.hand_over(&source, no, rs).await;
        }
        for (source, own_log, message) in foreign_retained {
            self.hand_over_retained(&source, own_log, message).await;
        }
        self.storage.flush_now();
        self.recovery_barrier(3).await;
        if moved > 0 {
            tracing::info!(shard = %self.id, sessions = moved, "sessions moved to their new home shards");
        }
        pending
            .wills
            .extend(self.adopted_wills.borrow_mut().drain(..));
        for (no, will) in pending.wills {
            self.publish_will(will).await;
            self.storage.append(&StateRecord::WillClear { no });
        }
    }

    /// Makes a recovered session live on this shard (its home).
    async fn install(
        self: &Rc<Self>,
        no: u64,
        rs: RecoveredSession,
        log_shard: u16,
        pending: &mut Pending,
    ) {
        let now = Instant::now();
        if self.sessions.borrow().find(&rs.client_id).is_some() {
            tracing::warn!(client_id = %rs.client_id, "two logged sessions for one client id; keeping the first");
            return;
        }
        let mut session = Session::new(
            rs.client_id.clone(),
            self.session_limits,
            self.limit_stats.clone(),
        );
        session.expiry_secs = rs.expiry_secs;
        // Checked against the ACL as the user its client last logged in as, while it is
        // away (no credential: it must log in again to connect).
        let principal = crate::auth::Principal {
            user: rs.user.clone(),
            credential: None,
            certificate: false,
        };
        session.access = self.security.borrow().access_for(principal, &rs.client_id);
        // A session whose client was connected when the broker stopped lost its
        // connection then: its expiry counts from now, and so does its will's delay.
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
                shard: log_shard,
                offset: at.get(),
            };
            pending.in_doubt.push((tag, message));
        }
        let connected = rs.detached_ms.is_none();
        if connected {
            self.storage.append(&StateRecord::Detached {
                no,
                unix_ms: unix_ms_of(now),
            });
        }
        match rs.will {
            // A will logged while connected, of a session logged as disconnected: not
            // written by this broker (a disconnect clears or delays the will); dropped.
            Some(w) if w.due_unix_ms.is_none() && !connected => {}
            Some(w) => {
                let now_ms = unix_ms_now();
                // The client could not come back while the broker was down: the delay of
                // a will whose client was connected counts from the restart, as the
                // session's expiry does, so a client that reconnects in time after the
                // restart keeps its will from being sent [MQTT-3.1.3-9].
                let due_ms = w
                    .due_unix_ms
                    .unwrap_or_else(|| now_ms.saturating_add(u64::from(w.delay_secs) * 1000));
                if due_ms <= now_ms {
                    pending.wills.push((no, w.message));
                } else {
                    if w.due_unix_ms.is_none() {
                        self.storage.append(&StateRecord::DelayedWill {
                            no,
                            delay_secs: w.delay_secs,
                            due_unix_ms: Some(due_ms),
                            message: w.message.clone(),
                        });
                    }
                    session.restore_pending_will(w.message, w.delay_secs, due_ms);
                }
            }
            None => {}
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

    /// Sends a session found in `source` (a log that is not its home's) to its home shard,
    /// and marks it gone in `source` once the home has it on disk.
    async fn hand_over(self: &Rc<Self>, source: &Storage, no: u64, rs: RecoveredSession) {
        let deliveries = source.queued(no, &rs.queue);
        let home = self.home_of(&rs.client_id);
        tracing::debug!(client_id = %rs.client_id, %home, queued = deliveries.len(), "moving session");
        if home == self.id {
            self.adopt(rs, deliveries).await;
        } else {
            let (req, done) = self.replies.register(1);
            let msg = CtrlMsg::Adopt {
                session: Box::new(rs),
                deliveries,
                from: self.id,
                req,
            };
            if self.ctrl.send_to(home.index(), msg).await.is_err() {
                return;
            }
            done.wait().await;
        }
        source.append(&StateRecord::SessionGone { no });
        source.flush_now();
    }

    /// Sends a retained message found in `source` to the shard that owns its topic; in
    /// this shard's own log it is then cleared.
    async fn hand_over_retained(
        self: &Rc<Self>,
        source: &Storage,
        own_log: bool,
        message: Message,
    ) {
        let owner = self.owner_of(message.topic.as_str());
        let mut cleared = message.clone();
        cleared.payload = bytes::Bytes::new();
        if owner == self.id {
            self.storage.ensure_log().await;
            self.store_retained(message, None);
            self.storage.flush_now();
        } else {
            let (req, done) = self.replies.register(1);
            let msg = CtrlMsg::AdoptRetained {
                message: Box::new(message),
                from: self.id,
                req,
            };
            if self.ctrl.send_to(owner.index(), msg).await.is_err() {
                return;
            }
            done.wait().await;
        }
        if own_log {
            source.append(&StateRecord::Retain {
                tag: None,
                message: cleared,
            });
        }
    }

    /// A session handed over from another log: logged here (same sequence numbers, so
    /// packet ids and QoS 2 states carry over), flushed, then made live.
    pub(super) async fn adopt(
        self: &Rc<Self>,
        mut rs: RecoveredSession,
        deliveries: Vec<(Target, Message)>,
    ) {
        if self.sessions.borrow().find(&rs.client_id).is_some() {
            tracing::warn!(client_id = %rs.client_id, "moved session already present here; kept the present one");
            return;
        }
        let st = &self.storage;
        st.ensure_log().await;
        let no = st.new_session_no();
        st.append(&StateRecord::Session {
            no,
            expiry_secs: rs.expiry_secs,
            client_id: rs.client_id.clone(),
        });
        for (filter, (options, id)) in &rs.subscriptions {
            st.append(&StateRecord::Subscribe {
                no,
                options: *options,
                id: *id,
                filter: filter.clone(),
            });
        }
        let mut first = None;
        let bytes_of = deliveries.iter().map(|(_, m)| m.size_bytes() as u64).sum();
        for (target, message) in deliveries {
            let (at, _) = st.append(&StateRecord::Deliver {
                targets: vec![Target { no, ..target }],
                tag: None,
                message,
            });
            first.get_or_insert(at);
        }
        rs.queue.cursor = first;
        rs.queue.bytes = bytes_of;
        let q = &rs.queue;
        st.append(&StateRecord::Queue {
            no,
            next_seq: q.next_seq,
            low_seq: q.low_seq,
            low_offset: first,
            acked: q.acked.iter().copied().collect(),
            released: q.released.iter().copied().collect(),
            sent: q.sent.iter().copied().collect(),
        });
        let mut inbound = std::collections::BTreeMap::new();
        for (id, (_, message)) in std::mem::take(&mut rs.inbound) {
            let Some(packet_id) = PacketId::new(id) else {
                continue;
            };
            let (at, _) = st.append(&StateRecord::Accepted {
                no,
                packet_id,
                first: None,
                message: message.clone(),
            });
            inbound.insert(id, (at, message));
        }
        if let Some(will) = &rs.will {
            st.append(&will.record(no));
        }
        if let Some(ms) = rs.detached_ms {
            st.append(&StateRecord::Detached { no, unix_ms: ms });
        }
        if rs.user.is_some() {
            st.append(&StateRecord::SessionUser {
                no,
                user: rs.user.clone(),
            });
        }
        st.flush_now();
        rs.inbound = inbound;
        let mut pending = Pending::default();
        self.install(no, rs, self.id.0, &mut pending).await;
        // Routing is complete for these (the old home routed them again at step 2).
        drop(pending.in_doubt);
        self.adopted_wills.borrow_mut().extend(pending.wills);
    }

    /// Waits until every other shard has passed start-up step `phase`.
    async fn recovery_barrier(self: &Rc<Self>, phase: usize) {
        for s in self.others() {
            let _ = self
                .ctrl
                .send_to(s, CtrlMsg::Recovered { from: self.id })
                .await;
        }
        loop {
            let woken = self.recovered_notify.notified();
            if self.recovered_peers.get() >= phase * (self.count - 1) {
                break;
            }
            // Bounded, in case a shard failed to start (it stops the broker anyway).
            if super::with_timeout(woken, Duration::from_secs(60))
                .await
                .is_none()
            {
                tracing::warn!(shard = %self.id, phase, "not every shard finished a start-up step within 60 s");
                break;
            }
        }
    }

    /// Routes a recovered message again and waits until what it needs is durable.
    async fn finish_routing(self: &Rc<Self>, message: Message, tag: Tag) {
        let outbox = Rc::new(Outbox::new(
            ProtocolVersion::V5,
            0,
            self.limit_stats.clone(),
        ));
        let Some(ticket) = self.publish_tagged(message, Some(&outbox), Some(tag)).await else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ticket.is_released() && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Copies forward the queues that hold many segments of mostly dead records (a
    /// session offline for long, whose oldest message is far back in the log), so that
    /// those segments can go: disk use stays proportional to live data.
    fn move_pinning_queues(&self) {
        let Some(end) = self.storage.end() else {
            return;
        };
        let segment = self.storage.segment_bytes();
        let sessions: Vec<_> = self
            .sessions
            .borrow()
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
        for s in sessions {
            let (no, at) = {
                let session = s.borrow();
                let (Some(no), Some((at, live))) = (session.durable_no(), session.pinned()) else {
                    continue;
                };
                let span = end.get().saturating_sub(at.get());
                // Worth it when the session holds back two segments or more, of which its
                // own messages are less than half; and only for a queue small enough to
                // copy in one step on the loop (a larger one keeps its segments until it
                // drains below that).
                if span < 2 * segment || live.saturating_mul(2) >= span || live > MOVE_BYTES_MAX {
                    continue;
                }
                (no, at)
            };
            let moved = {
                let session = s.borrow();
                self.storage
                    .copy_queue(no, at, |seq| session.is_incomplete(seq))
            };
            let mut session = s.borrow_mut();
            tracing::debug!(client_id = %session.client_id, messages = moved.len(), "queue moved forward in the log");
            session.relocated(&moved);
            let journal = session.take_journal();
            self.storage.append_all(&journal);
        }
    }

    /// Once enough has been written since the last checkpoint: writes one (the live
    /// state), then deletes the segments nothing live points into any more.
    pub(super) async fn compact(&self) {
        // Pages of old segments a queue reader mapped again leave the RSS each second.
        self.storage.release_sealed_pages();
        if !self.storage.checkpoint_due() {
            return;
        }
        self.move_pinning_queues();
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
            let user = s.principal().user;
            if user.is_some() {
                records.push(StateRecord::SessionUser { no, user });
            }
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
            records.extend(s.will_record());
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

//! The broker's metrics merged over the control mesh, and the `$SYS` topics shard 0
//! publishes from them.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::mesh::CtrlMsg;
use super::Shard;
use crate::message::Message;
use crate::metrics::{MetricsSnapshot, SysState};
use crate::protocol::{QoS, TopicName};

/// The broker's own `$SYS` tree: its retained messages are kept in memory only (see
/// `Shard::store_retained`). Other `$SYS` topics a client may publish (with an ACL that
/// lets it) are logged like any topic.
pub const SYS_PREFIX: &str = "$SYS/broker/";

impl Shard {
    /// This shard's metrics: its counters, and gauges computed now from its sessions,
    /// retained index and log. Off the hot path: it walks every session.
    pub fn local_metrics(&self) -> MetricsSnapshot {
        let stats = &self.limit_stats;
        let mut m = MetricsSnapshot::from_counters(&stats.traffic, stats);
        for (_, s) in self.sessions.borrow().iter() {
            // A session borrowed across this call (none should be) is left out.
            let Ok(s) = s.try_borrow() else { continue };
            m.sessions += 1;
            m.connections += u64::from(s.is_connected());
            m.inflight += s.inflight_len() as u64;
            m.queued += s.queued_len() as u64;
            m.subscriptions += s.subscriptions.len() as u64;
        }
        m.retained = self.retained.borrow().len() as u64;
        let st = &self.storage.stats;
        m.storage_records = st.records.get();
        m.storage_flushes = st.flushes.get();
        m.storage_stalls = st.stalls.get();
        m.flush_micros = st.flush_micros.get();
        m.flush_records = st.flush_records.get();
        m.mesh_batch = self.mesh_batches.get();
        m.busy = vec![(self.id.0, self.busy.sample())];
        m
    }

    /// Every shard's metrics, merged: one request to each other shard over the control
    /// mesh. A shard that cannot be reached (shutting down) is left out (`shards` says
    /// how many answered).
    pub async fn metrics(self: &Rc<Self>) -> MetricsSnapshot {
        let (req, done) = self.replies.register(self.count - 1);
        for s in self.others() {
            let msg = CtrlMsg::MetricsQuery { from: self.id, req };
            if self.ctrl.send_to(s, msg).await.is_err() {
                let none = MetricsSnapshot {
                    shards: 0,
                    ..MetricsSnapshot::default()
                };
                self.replies.answer_metrics(req, &none);
            }
        }
        done.wait().await;
        let mut all = done.take_metrics();
        all.merge(&self.local_metrics());
        all
    }
}

/// Shard 0's task: every `interval`, the merged metrics as retained QoS 0 messages on
/// Mosquitto's `$SYS/broker/...` topics, routed like any PUBLISH (subscribers on every
/// shard get them; the retained copies live on the topics' owner shards, in memory).
pub async fn publish_sys(shard: Rc<Shard>, interval: Duration) {
    let mut state = SysState::default();
    let mut last = Instant::now();
    while !shard.shutdown.is_triggered() {
        glommio::timer::sleep(interval).await;
        let snapshot = shard.metrics().await;
        let now = Instant::now();
        let topics = state.tick(
            snapshot,
            now.duration_since(last),
            now.duration_since(shard.started_at),
        );
        last = now;
        let retain = shard.config.mqtt.retain_available;
        for (topic, payload) in topics {
            let Ok(topic) = TopicName::try_from(topic.as_str()) else {
                continue;
            };
            let message = Message {
                topic,
                payload: Bytes::from(payload),
                qos: QoS::AtMostOnce,
                retain,
                properties: Default::default(),
                origin: Arc::from(""),
                received_at: now,
            };
            shard.publish(message, None).await;
        }
    }
}

//! `/metrics`: the merged metrics in the Prometheus text exposition format (version
//! 0.0.4): every family with its HELP and TYPE, counters ending in `_total`, per-shard
//! series labelled `shard`.

use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::limit::Limit;
use crate::metrics::MetricsSnapshot;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the flush latency buckets.
const FLUSH_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Upper bounds of the batch-size buckets (records per flush, messages per mesh wake-up).
const BATCH_SIZES: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP ringmq_{name} {help}");
        let _ = writeln!(self.0, "# TYPE ringmq_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "ringmq_{name} {value}");
        } else {
            let _ = writeln!(self.0, "ringmq_{name}{{{labels}}} {value}");
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }

    fn by_qos(&mut self, name: &str, help: &str, values: &[u64; 3]) {
        self.family(name, "counter", help);
        for (q, v) in values.iter().enumerate() {
            self.sample(name, &format!("qos=\"{q}\""), v);
        }
    }

    /// A histogram whose recorded values are divided by `scale` (microseconds to seconds:
    /// 1e6). The sum is the histogram's mean times its count: hdrhistogram keeps values to
    /// two significant figures, so the sum is that precise too.
    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        h: &Histogram<u64>,
        bounds: &[f64],
        scale: f64,
    ) {
        self.family(name, "histogram", help);
        for le in bounds {
            let upto = (le * scale).round() as u64;
            let count = if h.is_empty() {
                0
            } else {
                h.count_between(0, upto)
            };
            self.sample(&format!("{name}_bucket"), &format!("le=\"{le}\""), count);
        }
        self.sample(&format!("{name}_bucket"), "le=\"+Inf\"", h.len());
        let sum = if h.is_empty() {
            0.0
        } else {
            h.mean() * h.len() as f64 / scale
        };
        self.sample(&format!("{name}_sum"), "", sum);
        self.sample(&format!("{name}_count"), "", h.len());
    }
}

/// The exposition of `all` (every shard merged) and `shards` (each shard's own).
pub fn render(all: &MetricsSnapshot, shards: &[MetricsSnapshot], uptime: Duration) -> String {
    let mut o = Out(String::with_capacity(8 * 1024));
    o.family(
        "build_info",
        "gauge",
        "The broker's version (value always 1).",
    );
    o.sample(
        "build_info",
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        1,
    );
    o.single(
        "uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
        uptime.as_secs(),
    );
    o.single(
        "shards",
        "gauge",
        "Shards (executors) answering.",
        all.shards,
    );
    o.single(
        "connections",
        "gauge",
        "Clients connected now.",
        all.connections,
    );
    o.single(
        "sessions",
        "gauge",
        "Sessions held, connected or not.",
        all.sessions,
    );
    o.family(
        "connects_total",
        "counter",
        "Connections accepted (CONNACK 0x00), by protocol version.",
    );
    for (v, n) in ["3.1", "3.1.1", "5.0"].iter().zip(all.connects_by_version) {
        o.sample("connects_total", &format!("version=\"{v}\""), n);
    }
    o.single(
        "packets_received_total",
        "counter",
        "MQTT packets received from clients.",
        all.packets_received,
    );
    o.single(
        "packets_sent_total",
        "counter",
        "MQTT packets sent to clients.",
        all.packets_sent,
    );
    o.single(
        "bytes_received_total",
        "counter",
        "Bytes read from client connections.",
        all.bytes_received,
    );
    o.single(
        "bytes_sent_total",
        "counter",
        "Bytes written to client connections.",
        all.bytes_sent,
    );
    o.by_qos(
        "publish_received_total",
        "PUBLISH packets received, by QoS.",
        &all.publish_received,
    );
    o.by_qos(
        "publish_received_bytes_total",
        "Payload bytes of the PUBLISH packets received, by QoS.",
        &all.publish_received_bytes,
    );
    o.by_qos(
        "publish_sent_total",
        "PUBLISH packets sent, by QoS.",
        &all.publish_sent,
    );
    o.by_qos(
        "publish_sent_bytes_total",
        "Payload bytes of the PUBLISH packets sent, by QoS.",
        &all.publish_sent_bytes,
    );
    let d = &all.drops;
    o.family("dropped_total", "counter", "Messages dropped, by reason.");
    for (reason, n) in [
        ("queue_full", d.queue_full),
        ("expired", d.expired),
        ("too_large", d.too_large),
        ("acl_denied", d.acl_denied),
        ("rate_limit", d.rate_limit),
        ("qos0_slow_client", d.qos0_slow_client),
        ("qos0_shed", d.qos0_shed),
    ] {
        o.sample("dropped_total", &format!("reason=\"{reason}\""), n);
    }
    o.family(
        "limit_hits_total",
        "counter",
        "Times each configured limit was hit.",
    );
    for l in Limit::ALL {
        o.sample(
            "limit_hits_total",
            &format!("limit=\"{}\"", l.name()),
            all.limit(l),
        );
    }
    o.single(
        "inflight",
        "gauge",
        "QoS 1/2 messages sent and not yet acknowledged.",
        all.inflight,
    );
    o.single(
        "queued",
        "gauge",
        "QoS 1/2 messages waiting in sessions' memory queues.",
        all.queued,
    );
    o.single(
        "queued_bytes",
        "gauge",
        "Bytes held in session queues and write buffers.",
        all.queued_bytes,
    );
    o.single(
        "retained",
        "gauge",
        "Retained messages stored.",
        all.retained,
    );
    o.single(
        "subscriptions",
        "gauge",
        "Subscriptions of every session.",
        all.subscriptions,
    );
    o.single(
        "mesh_forwarded_total",
        "counter",
        "Messages forwarded to other shards.",
        all.mesh_forwarded,
    );
    o.single(
        "mesh_taken_total",
        "counter",
        "Forwarded messages taken from the mesh.",
        all.mesh_taken,
    );
    o.single(
        "mesh_queued",
        "gauge",
        "Forwarded messages not yet taken by their shard.",
        all.mesh_queued(),
    );
    o.histogram(
        "mesh_batch_messages",
        "Messages a shard's mesh receiver took per wake-up.",
        &all.mesh_batch,
        &BATCH_SIZES,
        1.0,
    );
    o.single(
        "storage_records_total",
        "counter",
        "Log records appended.",
        all.storage_records,
    );
    o.single(
        "storage_flushes_total",
        "counter",
        "Log flushes (fdatasync) done.",
        all.storage_flushes,
    );
    o.single(
        "storage_stalls_total",
        "counter",
        "Log appends that waited for a segment.",
        all.storage_stalls,
    );
    o.histogram(
        "flush_latency_seconds",
        "Time from a log flush's start to its completion.",
        &all.flush_micros,
        &FLUSH_SECONDS,
        1e6,
    );
    o.histogram(
        "flush_batch_records",
        "Log records made durable per flush.",
        &all.flush_records,
        &BATCH_SIZES,
        1.0,
    );
    o.family(
        "shard_busy_ratio",
        "gauge",
        "Share of the time each shard ran tasks, since the previous read.",
    );
    for (id, busy) in &all.busy {
        o.sample(
            "shard_busy_ratio",
            &format!("shard=\"{id}\""),
            format!("{busy:.4}"),
        );
    }
    o.family("shard_connections", "gauge", "Clients connected, by shard.");
    for s in shards {
        if let Some((id, _)) = s.busy.first() {
            o.sample(
                "shard_connections",
                &format!("shard=\"{id}\""),
                s.connections,
            );
        }
    }
    o.family(
        "shard_publish_received_total",
        "counter",
        "PUBLISH packets received, by shard.",
    );
    for s in shards {
        if let Some((id, _)) = s.busy.first() {
            o.sample(
                "shard_publish_received_total",
                &format!("shard=\"{id}\""),
                s.publish_received_total(),
            );
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_belongs_to_a_declared_family_and_histograms_are_cumulative() {
        let mut s = MetricsSnapshot {
            shards: 1,
            connections: 2,
            busy: vec![(0, 0.25)],
            ..MetricsSnapshot::default()
        };
        for v in [50, 300, 2_000, 40_000] {
            s.flush_micros.saturating_record(v);
        }
        let text = render(&s, std::slice::from_ref(&s), Duration::from_secs(3));
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families.push(rest.split(' ').next().unwrap_or_default().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let family = name
                    .strip_suffix("_bucket")
                    .or_else(|| name.strip_suffix("_sum"))
                    .or_else(|| name.strip_suffix("_count"))
                    .filter(|f| families.iter().any(|x| x == f))
                    .unwrap_or(name);
                assert!(families.iter().any(|f| f == family), "{line}");
            }
        }
        assert!(text.contains("ringmq_connections 2\n"));
        assert!(text.contains("ringmq_shard_busy_ratio{shard=\"0\"} 0.2500\n"));
        // 50 us and 300 us are at or under 0.5 ms; 2 ms under 2.5 ms; all 4 under +Inf.
        assert!(
            text.contains("ringmq_flush_latency_seconds_bucket{le=\"0.0005\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("ringmq_flush_latency_seconds_bucket{le=\"0.0025\"} 3\n"));
        assert!(text.contains("ringmq_flush_latency_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("ringmq_flush_latency_seconds_count 4\n"));
    }
}

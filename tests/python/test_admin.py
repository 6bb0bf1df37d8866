"""The admin HTTP listener (`[admin]`), as an operator and their tools use it: Prometheus
scrapes of /metrics read with prometheus_client's own parser, the JSON API
(/api/v1/stats, clients, subscriptions, retained) after a known pattern of MQTT traffic,
paging by cursor, disconnecting a client, and the bearer token. ringmq only: Mosquitto has
no such listener.
"""

import math
import os
import subprocess
import time
import urllib.parse

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client.parser import text_string_to_metric_families

from admin import Admin, admin_broker  # noqa: F401
from conftest import wait_port
from conftest import REPO, WAIT, Peer, free_port

pytestmark = pytest.mark.ringmq_only("the admin API is ringmq's")

TOKEN = "s3cret"
DROP_REASONS = (
    "queue_full",
    "expired",
    "too_large",
    "acl_denied",
    "rate_limit",
    "qos0_slow_client",
    "qos0_shed",
)
# How long counters and gauges may take to settle after the traffic that moves them.
SETTLE = 5.0


def eventually(check, timeout=SETTLE):
    """Calls `check` until it stops raising AssertionError (bounded); returns its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def pick(value, like):
    """`value` cut down to the keys of `like`, recursively (a key `value` lacks shows as
    "(missing)"): documented fields are checked exactly, extra ones are allowed."""
    if isinstance(like, dict) and isinstance(value, dict):
        return {k: pick(value.get(k, "(missing)"), v) for k, v in like.items()}
    return value


def assert_fields(value, expected):
    assert pick(value, expected) == expected, f"got {value}"


class Metrics:
    """One /metrics scrape, parsed whole by prometheus_client."""

    def __init__(self, text):
        try:
            self.families = {f.name: f for f in text_string_to_metric_families(text)}
        except Exception as e:
            raise AssertionError(f"/metrics does not parse: {e}\n{text[:3000]}") from None
        self.samples = {}
        for family in self.families.values():
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                assert key not in self.samples, f"sample {key} appears twice"
                self.samples[key] = s.value
        self.text = text

    def __call__(self, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        if key not in self.samples:
            near = sorted(k for k in self.samples if k[0] == name)
            raise AssertionError(f"no sample {name}{labels}; samples of that name: {near}")
        return self.samples[key]

    def labelled(self, name, label):
        """{label value: sample value} for every sample `name` with label `label`."""
        return {
            dict(labels)[label]: v
            for (n, labels), v in self.samples.items()
            if n == name and label in dict(labels)
        }

    def type_of(self, sample_name):
        for family in self.families.values():
            if any(s.name == sample_name for s in family.samples):
                return family.type
        raise AssertionError(f"no family holds {sample_name}")


def scrape(admin):
    resp = admin.get("/metrics")
    assert resp.status == 200, f"/metrics: {resp!r}"
    content_type = resp.headers.get("Content-Type", "")
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type, (
        f"/metrics Content-Type {content_type!r}"
    )
    return Metrics(resp.text)


def check_histogram(metrics, name):
    """Buckets in increasing `le` with non-decreasing cumulative counts ending in +Inf,
    +Inf == _count, and a non-negative _sum (positive once anything was observed);
    returns (count, sum)."""
    assert metrics.families[name].type == "histogram", f"{name}: {metrics.families[name].type}"
    buckets = sorted(
        (float(le), v) for le, v in metrics.labelled(f"{name}_bucket", "le").items()
    )
    assert buckets and math.isinf(buckets[-1][0]), f"{name}: buckets {buckets} lack +Inf"
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"{name}: cumulative bucket counts decrease: {buckets}"
    count, total = metrics(f"{name}_count"), metrics(f"{name}_sum")
    assert counts[-1] == count, f"{name}: +Inf bucket {counts[-1]} != _count {count}"
    assert total >= 0 and (total > 0) == (count > 0), f"{name}: _sum {total}, _count {count}"
    return count, total


# --------------------------------------------------------------------------------------
# Token, health, page
# --------------------------------------------------------------------------------------

PROTECTED = [
    "/metrics",
    "/api/v1/stats",
    "/api/v1/clients",
    "/api/v1/subscriptions",
    "/api/v1/retained",
]


@pytest.mark.admin(token=TOKEN)
def test_token_guards_metrics_and_api_but_not_health_or_page(admin_broker):
    """With `[admin] token`, /metrics and every /api/v1 path answer 401 with
    `WWW-Authenticate: Bearer` to a request without the token, with a wrong one, or with
    the right one under another scheme, and 200 with `Authorization: Bearer s3cret`;
    /healthz and the dashboard page need no token (the page carries none itself)."""
    admin = admin_broker.admin
    for path in PROTECTED:
        for token, headers in (
            (None, {}),
            ("wrong", {}),
            (TOKEN + "x", {}),
            (None, {"Authorization": f"Basic {TOKEN}"}),
            (None, {"Authorization": TOKEN}),
        ):
            resp = admin.get(path, token=token, headers=headers)
            assert resp.status == 401, f"GET {path} token={token!r} {headers}: {resp!r}"
            assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), (
                f"GET {path}: 401 without WWW-Authenticate: Bearer: {resp!r}"
            )
            assert TOKEN.encode() not in resp.body
        resp = admin.get(path, token=TOKEN)
        assert resp.status == 200, f"GET {path} with the token: {resp!r}"
    for token in (None, "wrong"):
        health = admin.get("/healthz", token=token)
        assert (health.status, health.body) == (200, b"ok\n"), f"/healthz: {health!r}"
        for path in ("/", "/dashboard"):
            page = admin.get(path, token=token)
            assert page.status == 200, f"GET {path}: {page!r}"
            assert page.headers.get("Content-Type", "").startswith("text/html"), page.headers
            assert b"<canvas" in page.body and TOKEN.encode() not in page.body
    # A kick is guarded too.
    resp = admin.request("DELETE", "/api/v1/clients/nobody", token=None)
    assert resp.status == 401, f"DELETE without the token: {resp!r}"


@pytest.mark.admin()
def test_without_token_everything_is_open_and_errors_are_json(admin_broker):
    """Without a token every path answers without Authorization; an unknown path is 404,
    a method a path does not take is 405, a bad query parameter 400, each with a JSON body
    {"error": "..."} that says what is wrong."""
    admin = admin_broker.admin
    for path in PROTECTED + ["/healthz", "/"]:
        resp = admin.get(path, token=None)
        assert resp.status == 200, f"GET {path}: {resp!r}"
    for method, path, status in (
        ("GET", "/api/v1/nothing-here", 404),
        ("GET", "/nothing-here", 404),
        ("POST", "/api/v1/stats", 405),
        ("PUT", "/api/v1/clients", 405),
        ("DELETE", "/api/v1/retained", 405),
        ("GET", "/api/v1/clients?limit=abc", 400),
        ("GET", "/api/v1/clients?limit=-1", 400),
        ("GET", "/api/v1/subscriptions?limit=x", 400),
        ("GET", "/api/v1/retained?filter=a/%23/b", 400),
    ):
        resp = admin.request(method, path)
        assert resp.status == status, f"{method} {path}: expected {status}, got {resp!r}"
        assert resp.headers.get("Content-Type", "").startswith("application/json"), resp
        error = resp.json().get("error")
        assert isinstance(error, str) and error, f"{method} {path}: {resp!r}"


# --------------------------------------------------------------------------------------
# Metrics and stats after known traffic
# --------------------------------------------------------------------------------------

QOS1_SIZES = [10 + 37 * i for i in range(25)]
QOS0_SIZES = [5 + 101 * i for i in range(10)]
RETAINED = {"keep/a": b"retained a", "keep/b": b"retained b!"}


@pytest.mark.admin(shards=2, toml="[mqtt]\nsys_interval_secs = 0\n")
def test_metrics_and_stats_count_known_traffic(admin_broker):
    """Three clients (two MQTT 5, one 3.1.1); the 3.1.1 one publishes 10 QoS 0 messages and
    2 retained ones, an MQTT 5 one 25 QoS 1 messages, all of known payload sizes; the other
    MQTT 5 client, with a persistent session, subscribes to the 35 (QoS 1) and receives them.
    Then /metrics (parsed
    whole by prometheus_client) and /api/v1/stats count exactly that: connections by
    version, PUBLISH in and out by QoS with payload bytes, MQTT packets each way, 2
    retained, 1 subscription, nothing in flight, queued or dropped, per-shard figures
    that add up; the storage counters and histograms agree (a flush before each PUBACK of a
    message for the persistent session). After the clients disconnect, the gauges fall to
    what the persistent session keeps. ($SYS is off: it would add traffic of its own.)"""
    admin = admin_broker.admin
    # A persistent session: the QoS 1 messages for it are logged and flushed to disk
    # before each PUBACK to the publisher (storage.fsync = "always").
    sub = Peer(admin_broker, "metrics-sub", mqtt.MQTTv5, session_expiry=300)
    pub5 = Peer(admin_broker, "metrics-pub5", mqtt.MQTTv5)
    pub3 = Peer(admin_broker, "metrics-pub3", mqtt.MQTTv311)
    peers = [sub, pub5, pub3]
    try:
        sub.subscribe("load/#", 1)
        for i, size in enumerate(QOS1_SIZES):
            pub5.publish(f"load/q1/{i}", bytes([i]) * size, 1)
        for i, size in enumerate(QOS0_SIZES):
            pub3.publish(f"load/q0/{i}", bytes([i]) * size, 0)
        for topic, payload in RETAINED.items():
            pub3.publish(topic, payload, 0, retain=True)
        got = [sub.next_message() for _ in range(len(QOS1_SIZES) + len(QOS0_SIZES))]
        assert sorted(len(m.payload) for m in got) == sorted(QOS1_SIZES + QOS0_SIZES)
        sub.no_message()

        q0_in_bytes = sum(QOS0_SIZES) + sum(len(p) for p in RETAINED.values())
        # CONNECT x3, SUBSCRIBE, PUBLISH x37, PUBACK x25 from the subscriber.
        packets_in = 3 + 1 + 37 + 25
        # CONNACK x3, SUBACK, PUBACK x25 to the publisher, PUBLISH x35 to the subscriber.
        packets_out = 3 + 1 + 25 + 35

        def settled():
            m = scrape(admin)
            assert m("ringmq_inflight") == 0 and m("ringmq_queued") == 0, "still in flight"
            assert m("ringmq_packets_received_total") == packets_in, (
                f"packets received {m('ringmq_packets_received_total')}, sent {packets_in}"
            )
            assert m("ringmq_packets_sent_total") == packets_out, (
                f"packets sent {m('ringmq_packets_sent_total')}, expected {packets_out}"
            )
            return m

        m = eventually(settled)
        stats = admin.stats()
        print(m.text)

        # Types as the contract names them.
        for name, kind in (
            ("ringmq_connections", "gauge"),
            ("ringmq_sessions", "gauge"),
            ("ringmq_inflight", "gauge"),
            ("ringmq_queued", "gauge"),
            ("ringmq_queued_bytes", "gauge"),
            ("ringmq_retained", "gauge"),
            ("ringmq_subscriptions", "gauge"),
            ("ringmq_mesh_queued", "gauge"),
            ("ringmq_uptime_seconds", "gauge"),
            ("ringmq_connects_total", "counter"),
            ("ringmq_packets_received_total", "counter"),
            ("ringmq_packets_sent_total", "counter"),
            ("ringmq_bytes_received_total", "counter"),
            ("ringmq_bytes_sent_total", "counter"),
            ("ringmq_publish_received_total", "counter"),
            ("ringmq_publish_received_bytes_total", "counter"),
            ("ringmq_publish_sent_total", "counter"),
            ("ringmq_publish_sent_bytes_total", "counter"),
            ("ringmq_dropped_total", "counter"),
            ("ringmq_mesh_forwarded_total", "counter"),
            ("ringmq_mesh_taken_total", "counter"),
            ("ringmq_storage_records_total", "counter"),
            ("ringmq_storage_flushes_total", "counter"),
            ("ringmq_storage_stalls_total", "counter"),
            ("ringmq_flush_latency_seconds_count", "histogram"),
            ("ringmq_flush_batch_records_count", "histogram"),
            ("ringmq_shard_busy_ratio", "gauge"),
            ("ringmq_shard_connections", "gauge"),
        ):
            assert m.type_of(name) == kind, f"{name}: TYPE {m.type_of(name)}, expected {kind}"
        for family in m.families.values():
            assert family.name.startswith("ringmq_"), f"metric {family.name} lacks ringmq_"

        # Connections.
        assert m("ringmq_connections") == 3
        assert m("ringmq_sessions") == 3
        assert m.labelled("ringmq_connects_total", "version") == {
            "3.1": 0,
            "3.1.1": 1,
            "5.0": 2,
        }
        assert m.labelled("ringmq_shard_connections", "shard") == {
            str(s["shard"]): s["connections"] for s in stats["per_shard"]
        }
        assert sum(m.labelled("ringmq_shard_connections", "shard").values()) == 3
        busy = m.labelled("ringmq_shard_busy_ratio", "shard")
        assert sorted(busy) == ["0", "1"] and all(0 <= b <= 1 for b in busy.values()), busy

        # PUBLISH by QoS, and payload bytes.
        assert m.labelled("ringmq_publish_received_total", "qos") == {"0": 12, "1": 25, "2": 0}
        assert m.labelled("ringmq_publish_received_bytes_total", "qos") == {
            "0": q0_in_bytes,
            "1": sum(QOS1_SIZES),
            "2": 0,
        }
        assert m.labelled("ringmq_publish_sent_total", "qos") == {"0": 10, "1": 25, "2": 0}
        assert m.labelled("ringmq_publish_sent_bytes_total", "qos") == {
            "0": sum(QOS0_SIZES),
            "1": sum(QOS1_SIZES),
            "2": 0,
        }
        # Bytes on the wire: at least the payloads, and not much more (headers, topics,
        # properties: under 64 bytes a packet here).
        payload_in = q0_in_bytes + sum(QOS1_SIZES)
        payload_out = sum(QOS0_SIZES) + sum(QOS1_SIZES)
        bytes_in, bytes_out = m("ringmq_bytes_received_total"), m("ringmq_bytes_sent_total")
        assert payload_in < bytes_in < payload_in + 64 * packets_in, bytes_in
        assert payload_out < bytes_out < payload_out + 64 * packets_out, bytes_out

        # Gauges at rest.
        assert m("ringmq_retained") == 2
        assert m("ringmq_subscriptions") == 1
        assert m("ringmq_queued_bytes") == 0
        assert m.labelled("ringmq_dropped_total", "reason") == {r: 0 for r in DROP_REASONS}

        # Storage: the retained messages and the 25 QoS 1 messages for the persistent
        # session were logged, and flushed (at least once; group commit may join some).
        flushes = m("ringmq_storage_flushes_total")
        records = m("ringmq_storage_records_total")
        assert records >= 2 + 25 and 1 <= flushes <= records, (records, flushes)
        latency_count, _ = check_histogram(m, "ringmq_flush_latency_seconds")
        batch_count, batch_sum = check_histogram(m, "ringmq_flush_batch_records")
        assert latency_count == flushes, f"{latency_count} flush latencies for {flushes} flushes"
        assert batch_count == flushes, f"{batch_count} flush batch sizes for {flushes} flushes"
        # Records logged since the last flush (the QoS 0 retained ones need none) are in no
        # batch yet.
        assert batch_sum <= records, f"flush batches hold {batch_sum} records, logged {records}"
        assert m("ringmq_mesh_queued") == m("ringmq_mesh_forwarded_total") - m(
            "ringmq_mesh_taken_total"
        )

        # Build and uptime, and /api/v1/stats agreeing with /metrics.
        (version,) = m.labelled("ringmq_build_info", "version").items()
        assert version == (stats["version"], 1), (version, stats["version"])
        assert 0 <= m("ringmq_uptime_seconds") < 120
        assert 0 <= stats["uptime_secs"] < 120
        assert stats["shards"] == 2 and [s["shard"] for s in stats["per_shard"]] == [0, 1]
        assert_fields(stats["connections"], {
            "current": 3,
            "total": 3,
            "sessions": 3,
            "by_version": {"3.1": 0, "3.1.1": 1, "5.0": 2},
        })
        assert_fields(stats["publish"], {
            "received": {"qos0": 12, "qos1": 25, "qos2": 0, "total": 37},
            "sent": {"qos0": 10, "qos1": 25, "qos2": 0, "total": 35},
            "received_bytes": {
                "qos0": q0_in_bytes,
                "qos1": sum(QOS1_SIZES),
                "qos2": 0,
                "total": payload_in,
            },
            "sent_bytes": {
                "qos0": sum(QOS0_SIZES),
                "qos1": sum(QOS1_SIZES),
                "qos2": 0,
                "total": payload_out,
            },
        })
        assert_fields(stats["packets"], {"received": packets_in, "sent": packets_out})
        assert_fields(stats["bytes"], {"received": bytes_in, "sent": bytes_out})
        assert_fields(stats["drops"], dict({r: 0 for r in DROP_REASONS}, total=0))
        for key in ("inflight", "queued", "queued_bytes"):
            assert stats[key] == 0, f"stats {key}: {stats[key]}"
        assert (stats["retained"], stats["subscriptions"]) == (2, 1)
        assert_fields(stats["mesh"], {
            "forwarded": m("ringmq_mesh_forwarded_total"),
            "taken": m("ringmq_mesh_taken_total"),
            "queued": m("ringmq_mesh_queued"),
        })
        storage = stats["storage"]
        assert (storage["records"], storage["flushes"]) == (records, flushes)
        assert storage["stalls"] == m("ringmq_storage_stalls_total")
        lat = storage["flush_latency_us"]
        assert lat["count"] == flushes and 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat[
            "max"
        ], lat
        batch = storage["flush_batch"]
        assert batch["count"] == flushes and batch["p50"] <= batch["p99"] <= batch["max"], batch
        assert sum(s["connections"] for s in stats["per_shard"]) == 3
        assert sum(s["sessions"] for s in stats["per_shard"]) == 3
        assert sum(s["publish_received"] for s in stats["per_shard"]) == 37
        assert sum(s["publish_sent"] for s in stats["per_shard"]) == 35
        for s in stats["per_shard"]:
            assert 0 <= s["busy"] <= 1, s
            assert s["busy"] == pytest.approx(busy[str(s["shard"])], abs=0.05), (s, busy)

        # Disconnecting moves the gauges, not the counters.
        for p in peers:
            p.disconnect()

        def after_disconnect():
            m2 = scrape(admin)
            assert (m2("ringmq_connections"), m2("ringmq_sessions")) == (0, 1)
            assert m2("ringmq_subscriptions") == 1 and m2("ringmq_retained") == 2
            return m2

        m2 = eventually(after_disconnect)
        assert m2.labelled("ringmq_connects_total", "version") == {"3.1": 0, "3.1.1": 1, "5.0": 2}
        assert m2.labelled("ringmq_publish_received_total", "qos") == {"0": 12, "1": 25, "2": 0}
    finally:
        for p in peers:
            p.close()


# --------------------------------------------------------------------------------------
# Clients: listing, paging, kicking
# --------------------------------------------------------------------------------------

# Client ids that sort in a known order and need percent-encoding in a path.
PAGED_IDS = ["pg/é", "pg/a b", "pg/#1", "pg/+", "pg/Z", "pg/%41", "pg/ü?x=1"]


@pytest.mark.admin(shards=2)
def test_clients_listed_sorted_and_paged(admin_broker):
    """Seven clients under one prefix (MQTT 5 and 3.1.1, ids with spaces, `#`, `+`, `%`,
    `?` and non-ASCII letters) and one outside it: /api/v1/clients?prefix=pg/&limit=3,
    following `next` until it is null, lists each of the seven exactly once, sorted by
    client id, in pages of at most 3, `total` 7 on every page; each entry says what the
    client's own socket and CONNECT say (peer address and port, protocol, keep-alive,
    subscriptions). Without the prefix the listing has all eight."""
    admin = admin_broker.admin
    peers = []
    try:
        expected = {}
        for i, client_id in enumerate(PAGED_IDS):
            v5 = i % 2 == 0
            peer = Peer(
                admin_broker, client_id, mqtt.MQTTv5 if v5 else mqtt.MQTTv311, keepalive=20 + i
            )
            peers.append(peer)
            for n in range(i % 3):
                peer.subscribe(f"pg/topic/{i}/{n}", 1)
            local = peer.client.socket().getsockname()
            expected[client_id] = {
                "client_id": client_id,
                "connected": True,
                "protocol": "5.0" if v5 else "3.1.1",
                "peer": f"{local[0]}:{local[1]}",
                "username": None,
                "keep_alive": 20 + i,
                "session_expiry_secs": 0,
                "subscriptions": i % 3,
                "inflight": 0,
                "queued": 0,
            }
        peers.append(Peer(admin_broker, "other", mqtt.MQTTv5))

        totals, items = admin.pages("/api/v1/clients", "clients", 3, prefix="pg/")
        ids = [c["client_id"] for c in items]
        assert ids == sorted(PAGED_IDS), f"listed {ids}"
        assert totals == [7, 7, 7], f"totals per page: {totals}"
        for c in items:
            assert c["shard"] in (0, 1), f"{c['client_id']}: shard {c['shard']}"
            want = expected[c["client_id"]]
            # Fields beyond the documented ones are allowed.
            assert {k: c.get(k, "(missing)") for k in want} == want

        everyone = admin.get_json("/api/v1/clients")
        assert everyone["total"] == 8 and everyone["next"] is None
        assert [c["client_id"] for c in everyone["clients"]] == sorted(PAGED_IDS + ["other"])
        one = admin.get_json("/api/v1/clients?" + urllib.parse.urlencode({"prefix": "pg/ü"}))
        assert [c["client_id"] for c in one["clients"]] == ["pg/ü?x=1"] and one["total"] == 1
        stats = admin.stats()
        per_shard = sum(s["connections"] for s in stats["per_shard"])
        assert stats["connections"]["current"] == per_shard == 8
    finally:
        for p in peers:
            p.close()


@pytest.mark.admin(shards=2)
def test_kick_disconnects_the_client(admin_broker):
    """DELETE /api/v1/clients/<percent-encoded id> answers 200 {"client_id", "kicked":
    true}: the MQTT 5 client is sent DISCONNECT 0x98 (Administrative action) and its
    connection closes, the 3.1.1 one's connection closes; neither is listed as connected
    afterwards and the client beside them is untouched. An id with no connected client, or
    a client already kicked, is 404 with a JSON error."""
    admin = admin_broker.admin
    v5 = Peer(admin_broker, "kick/ü v5", mqtt.MQTTv5)
    v3 = Peer(admin_broker, "kick/v3#", mqtt.MQTTv311)
    stay = Peer(admin_broker, "kick/stay", mqtt.MQTTv5)
    try:
        for peer, client_id in ((v5, "kick/ü v5"), (v3, "kick/v3#")):
            path = "/api/v1/clients/" + urllib.parse.quote(client_id, safe="")
            resp = admin.request("DELETE", path)
            assert resp.status == 200, f"DELETE {path}: {resp!r}"
            assert resp.json() == {"client_id": client_id, "kicked": True}
            reason = peer.wait_disconnected()
            if peer.v5:
                assert reason.value == 0x98, f"DISCONNECT reason {reason} ({reason.value:#x})"
            again = admin.request("DELETE", path)
            assert again.status == 404 and again.json().get("error"), f"again: {again!r}"

        def only_stay_connected():
            listed = admin.get_json("/api/v1/clients?prefix=kick/")["clients"]
            connected = [c["client_id"] for c in listed if c["connected"]]
            assert connected == ["kick/stay"], f"connected after the kicks: {listed}"

        eventually(only_stay_connected)
        stay.subscribe("kick/still", 1)
        stay.publish("kick/still", b"here", 1)
        assert stay.next_message().payload == b"here"

        for client_id in ("nobody", "kick/", "kick%2Fstay2", "\u00fc"):
            path = "/api/v1/clients/" + urllib.parse.quote(client_id, safe="")
            resp = admin.request("DELETE", path)
            assert resp.status == 404, f"DELETE {path}: {resp!r}"
            assert resp.json().get("error"), resp
    finally:
        for p in (v5, v3, stay):
            p.close()


# --------------------------------------------------------------------------------------
# Subscriptions and retained messages
# --------------------------------------------------------------------------------------


def subscribe_with(peer, topic, options, properties=None):
    """SUBSCRIBE with MQTT 5 subscription options; waits (bounded) for the SUBACK."""
    with peer._lock:
        result, mid = peer.client.subscribe(topic, options=options, properties=properties)
        acks = peer.subacks.setdefault(mid, __import__("queue").Queue())
    assert result == mqtt.MQTT_ERR_SUCCESS
    reasons = acks.get(timeout=WAIT)
    assert [r.value for r in reasons] == [options.QoS], f"SUBACK {topic}: {reasons}"


@pytest.mark.admin(shards=2)
def test_subscriptions_listed_with_their_options(admin_broker):
    """/api/v1/subscriptions lists every subscription sorted by (client id, filter) with
    the options it was made with: QoS, No Local, Retain As Published, Retain Handling and
    the subscription identifier (MQTT 5), or the 3.1.1 defaults; `client_id=` narrows it
    to one client and paging by `next` returns the same list."""
    admin = admin_broker.admin
    a = Peer(admin_broker, "subs-a", mqtt.MQTTv5)
    b = Peer(admin_broker, "subs-b", mqtt.MQTTv311)
    try:
        props = Properties(PacketTypes.SUBSCRIBE)
        props.SubscriptionIdentifier = 7
        subscribe_with(
            a,
            "a/+/c",
            SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True, retainHandling=2),
            props,
        )
        subscribe_with(a, "z/ü/#", SubscribeOptions(qos=2, retainHandling=1))
        b.subscribe("b/#", 2)
        b.subscribe("a/x", 0)

        def sub(client_id, filt, qos, nl=False, rap=False, rh=0, sid=None):
            return {
                "client_id": client_id,
                "filter": filt,
                "qos": qos,
                "no_local": nl,
                "retain_as_published": rap,
                "retain_handling": rh,
                "subscription_id": sid,
            }

        expected = [
            sub("subs-a", "a/+/c", 1, True, True, 2, 7),
            sub("subs-a", "z/ü/#", 2, rh=1),
            sub("subs-b", "a/x", 0),
            sub("subs-b", "b/#", 2),
        ]
        listing = admin.get_json("/api/v1/subscriptions")
        assert listing["total"] == 4 and listing["next"] is None, listing
        got = listing["subscriptions"]
        for s in got:
            assert s["shard"] in (0, 1), s
        assert [{k: s.get(k, "(missing)") for k in e} for s, e in zip(got, expected)] == expected
        assert len(got) == len(expected), got

        only_b = admin.get_json("/api/v1/subscriptions?client_id=subs-b")
        assert only_b["total"] == 2
        assert [(s["client_id"], s["filter"]) for s in only_b["subscriptions"]] == [
            ("subs-b", "a/x"),
            ("subs-b", "b/#"),
        ]
        totals, paged = admin.pages("/api/v1/subscriptions", "subscriptions", 1)
        assert totals == [4] * 4
        assert [(s["client_id"], s["filter"]) for s in paged] == [
            (s["client_id"], s["filter"]) for s in expected
        ]
        assert admin.stats()["subscriptions"] == 4
    finally:
        a.close()
        b.close()


@pytest.mark.admin(shards=2, toml="[mqtt]\nsys_interval_secs = 1\n")
def test_retained_listed_with_payloads(admin_broker):
    """/api/v1/retained lists the retained messages sorted by topic, each with its QoS,
    payload size, the payload as text when it is UTF-8 (else null) and always as base64;
    a cleared topic is gone; `filter=` narrows the list with MQTT wildcards, the default
    "#" leaving out the broker's own $SYS topics (which "$SYS/#" lists); an invalid filter
    is 400."""
    admin = admin_broker.admin
    import base64

    pub = Peer(admin_broker, "retainer", mqtt.MQTTv5)
    watcher = Peer(admin_broker, "sys-watcher", mqtt.MQTTv311)
    try:
        pub.publish("r/gone", b"soon cleared", 1, retain=True)
        retained = {
            "r/text": ("héllo wörld".encode(), 1),
            "r/bin": (bytes([0xFF, 0x00, 0xFE, 0x80]), 0),
            "r/deep/x": (b"deep", 2),
        }
        for topic, (payload, qos) in retained.items():
            pub.publish(topic, payload, qos, retain=True)
        pub.publish("r/gone", b"", 1, retain=True)
        # $SYS topics exist once the first one reaches a subscriber.
        watcher.subscribe("$SYS/#", 0)
        watcher.next_message(timeout=WAIT)

        def entry(topic):
            payload, qos = retained[topic]
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            return {
                "topic": topic,
                "qos": qos,
                "payload_bytes": len(payload),
                "payload": text,
                "payload_base64": base64.b64encode(payload).decode(),
            }

        listing = eventually(lambda: _retained_is(admin, "/api/v1/retained", 3))
        assert listing["retained"] == [entry(t) for t in sorted(retained)]
        assert listing["next"] is None

        plus = admin.get_json("/api/v1/retained?filter=" + urllib.parse.quote("r/+", safe=""))
        assert [r["topic"] for r in plus["retained"]] == ["r/bin", "r/text"] and plus["total"] == 2

        sys = admin.get_json("/api/v1/retained?filter=" + urllib.parse.quote("$SYS/#", safe=""))
        assert sys["total"] >= 1 and sys["retained"], sys
        assert all(r["topic"].startswith("$SYS/") for r in sys["retained"]), sys

        totals, paged = admin.pages("/api/v1/retained", "retained", 2)
        assert totals == [3, 3] and [r["topic"] for r in paged] == sorted(retained)
    finally:
        pub.close()
        watcher.close()


def _retained_is(admin, path, total):
    listing = admin.get_json(path)
    assert listing["total"] == total, f"{path}: {listing}"
    return listing


@pytest.mark.parametrize("form", ["ip-port", "bare-port"])
def test_admin_listen_flag_turns_the_listener_on(tmp_path, form):
    """`--admin-listen 127.0.0.1:PORT`, or `--admin-listen PORT` alone (meaning
    127.0.0.1:PORT), turns the admin listener on for a configuration without `[admin]`."""
    port = free_port()
    mqtt_port = free_port()
    data = tmp_path / "broker"
    data.mkdir()
    config = data / "ringmq.toml"
    config.write_text(
        f'[runtime]\ncores = [0]\nplacement = "unbound"\n\n'
        f'[[listener]]\nbind = "127.0.0.1:{mqtt_port}"\n\n'
        f'[storage]\ndata_dir = "{data / "data"}"\n'
    )
    binary = os.environ.get("RINGMQ_BIN") or str(REPO / "target" / "debug" / "ringmq")
    address = f"127.0.0.1:{port}" if form == "ip-port" else str(port)
    log = open(data / "admin-flag.log", "wb")
    proc = subprocess.Popen(
        [binary, "--config", str(config), "--admin-listen", address],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # The admin listener opens before the shards start: /healthz is 503 until they
        # run, which the MQTT listener opening shows.
        wait_port("127.0.0.1", port, proc)
        wait_port("127.0.0.1", mqtt_port, proc, timeout=30.0)
        health = Admin("127.0.0.1", port).get("/healthz")
        assert (health.status, health.body) == (200, b"ok\n"), health
    finally:
        proc.kill()
        proc.wait(timeout=10)
        log.close()

"""MQTT.js (the pinned browser bundle, tests/tools/fetch_mqttjs.py) in headless Chromium,
talking to the broker over its WebSocket listener, with Eclipse Paho on the plain TCP
listener at the other end: what a web page built on MQTT.js sees of the broker.

The page wraps the browser's WebSocket before MQTT.js loads, so each test can also check
what went over the wire from the browser's side: the subprotocol the server selected and
that every message it sent was binary. Runs against ringmq and Mosquitto alike
(`protocol websockets`); the browser's waits are bounded in JavaScript (browser.py).
"""

import random

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from browser import BrowserClient, b64, chromium, dump, write_mqttjs_page  # noqa: F401
from conftest import Peer
from test_websocket import ws_broker  # noqa: F401

# (MQTT.js protocolVersion, paho protocol)
VERSIONS = [
    pytest.param((4, mqtt.MQTTv311), id="v311"),
    pytest.param((5, mqtt.MQTTv5), id="v5"),
]

# Bytes that are not UTF-8 text, and text that is not ASCII.
BINARY = bytes(range(256))
TEXT = "Grüße, 世界, ✓ and 🚀".encode()


def open_browser(driver, broker, tmp_path, client_id, version, **options):
    page = write_mqttjs_page(tmp_path)
    return BrowserClient(
        driver, page, f"ws://{broker.host}:{broker.ws_port}", client_id, version, **options
    )


def check_wire(client):
    """The page's one WebSocket: the server selected subprotocol "mqtt" out of what MQTT.js
    offered, and every message the server sent was a binary one."""
    sockets = client.websockets()
    assert len(sockets) == 1, f"expected one WebSocket, the page opened: {dump(sockets)}"
    ws = sockets[0]
    assert "mqtt" in ws["offered"], f"MQTT.js offered {ws['offered']}"
    assert ws["protocol"] == "mqtt", f"server selected subprotocol {ws['protocol']!r}"
    text = [m for m in ws["received"] if m["kind"] != "binary"]
    assert not text, f"server sent non-binary WebSocket messages: {text[:5]}"
    assert ws["received"], "no WebSocket message from the server at all"
    return ws


# [MQTT-6.0.0-4] (3.1.1) (5.0): the server selects subprotocol "mqtt"; [MQTT-6.0.0-1]
# (3.1.1) (5.0): it sends its packets (CONNACK, SUBACK, PUBLISH at each QoS, PUBREL) in
# binary messages. [MQTT-3.3.1-8] (3.1.1) / [MQTT-3.3.1-9] (5.0): a retained message is
# sent to the new subscription with RETAIN 1, and [MQTT-3.3.1-9] (3.1.1) /
# [MQTT-3.3.1-12] (5.0) a live one with RETAIN 0.
@pytest.mark.parametrize("versions", VERSIONS)
def test_browser_subscriber_gets_tcp_publishes(ws_broker, chromium, tmp_path, versions):  # noqa: F811
    """A page subscribes through MQTT.js; a paho TCP client publishes at QoS 0, 1 and 2,
    retained and not: the page receives each topic, payload byte for byte, QoS and RETAIN
    flag as a user of MQTT.js would read them."""
    js_version, paho_version = versions
    pub = Peer(ws_broker, "tcp-pub", paho_version)
    try:
        pub.publish("web/retained/a", b"kept " + TEXT, 1, retain=True)
        pub.publish("web/retained/b", BINARY, 2, retain=True)

        page = open_browser(chromium, ws_broker, tmp_path, "browser-sub", js_version)
        page.subscribe("web/#", 2)
        retained = sorted(page.wait_messages(2), key=lambda m: m["topic"])
        assert [(m["topic"], m["payload"], m["qos"], m["retain"]) for m in retained] == [
            ("web/retained/a", b"kept " + TEXT, 1, True),
            ("web/retained/b", BINARY, 2, True),
        ]

        sent = {
            "web/live/q0": (b"qos 0 " + TEXT, 0),
            "web/live/q1": (b"qos 1 " + BINARY, 1),
            "web/live/q2": (b"qos 2 " + TEXT * 3, 2),
            "web/live/retained": (b"retained and live", 1),
        }
        for topic, (payload, qos) in sent.items():
            pub.publish(topic, payload, qos, retain=topic.endswith("retained"))
        live = page.wait_messages(2 + len(sent))[2:]
        got = {m["topic"]: (m["payload"], m["qos"]) for m in live}
        assert got == sent, f"received {got!r}"
        assert [m["topic"] for m in live if m["retain"]] == [], "live messages carry RETAIN 1"
        assert len(page.messages_now()) == 2 + len(sent), "duplicates received"
        check_wire(page)
        page.end()
    finally:
        pub.close()


# [MQTT-6.0.0-4] (3.1.1) (5.0), [MQTT-6.0.0-1] (3.1.1) (5.0): over the selected "mqtt"
# subprotocol, binary messages only from the server (PUBACK, PUBREC, PUBCOMP here).
@pytest.mark.parametrize("versions", VERSIONS)
def test_browser_publishes_to_tcp_subscriber(ws_broker, chromium, tmp_path, versions):  # noqa: F811
    """MQTT.js publishes at each QoS, waiting for each flow to complete in the browser; a
    paho TCP subscriber receives exactly the bytes published: non-ASCII UTF-8 text and bytes
    that are not text at all, on a topic with non-ASCII characters."""
    js_version, paho_version = versions
    sub = Peer(ws_broker, "tcp-sub", paho_version)
    try:
        sub.subscribe("from-web/#", 2)
        page = open_browser(chromium, ws_broker, tmp_path, "browser-pub", js_version)
        sent = [
            ("from-web/qos1/ünïcode", TEXT, 1),
            ("from-web/qos1/binary", BINARY, 1),
            ("from-web/qos0", b"zero " + TEXT, 0),
            ("from-web/qos2", b"two " + BINARY, 2),
        ]
        for topic, payload, qos in sent:
            page.publish(topic, payload, qos)
        got = [sub.next_message() for _ in sent]
        assert sorted((m.topic, m.payload, m.qos) for m in got) == sorted(sent)
        sub.no_message()
        check_wire(page)
        page.end()
    finally:
        sub.close()


# [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20]
# [MQTT-3.3.2-4] (5.0): Response Topic, Correlation Data, User Properties (in order),
# Content Type and Payload Format Indicator reach the subscriber unaltered, both ways.
def test_browser_v5_properties_and_request_response(ws_broker, chromium, tmp_path):  # noqa: F811
    """MQTT 5 request/response between a page and a paho TCP client: the page publishes a
    request with a response topic, correlation data, content type, payload format
    indicator and user properties (a repeated name, non-ASCII names and values), and paho
    sees all of them as sent, user properties in order; paho answers on the response
    topic with the correlation data and its own user properties, which the page sees."""
    service = Peer(ws_broker, "tcp-service", mqtt.MQTTv5)
    try:
        service.subscribe("svc/request", 1)
        page = open_browser(chromium, ws_broker, tmp_path, "browser-requester", 5)
        page.subscribe("svc/reply/browser-requester", 1)

        correlation = bytes([0, 1, 2, 0xFE, 0xFF]) + "корреляция".encode()
        page.publish(
            "svc/request",
            b'{"op": "sum", "args": [1, 2]}',
            1,
            properties={
                "responseTopic": "svc/reply/browser-requester",
                "correlationData": {"b64": b64(correlation)},
                "contentType": "application/json",
                "payloadFormatIndicator": True,
                # In this order; MQTT.js writes a repeated name's values in a row.
                "userProperties": [
                    ["trace", "a"],
                    ["trace", "b"],
                    ["ключ", "значение"],
                    ["empty", ""],
                ],
            },
        )
        request = service.next_message()
        assert request.payload == b'{"op": "sum", "args": [1, 2]}'
        props = request.properties
        assert props.ResponseTopic == "svc/reply/browser-requester"
        assert props.CorrelationData == correlation
        assert props.ContentType == "application/json"
        assert props.PayloadFormatIndicator == 1
        assert props.UserProperty == [
            ("trace", "a"),
            ("trace", "b"),
            ("ключ", "значение"),
            ("empty", ""),
        ]

        reply = Properties(PacketTypes.PUBLISH)
        reply.CorrelationData = props.CorrelationData
        reply.UserProperty = [("status", "ok"), ("served-by", "paho")]
        reply.ContentType = "application/json"
        service.publish(props.ResponseTopic, b'{"sum": 3}', 1, properties=reply)
        (answer,) = page.wait_messages(1)
        assert answer["topic"] == "svc/reply/browser-requester"
        assert answer["payload"] == b'{"sum": 3}'
        got = answer["properties"] or {}
        assert got.get("correlationData") == {"b64": b64(correlation)}, dump(got)
        assert got.get("contentType") == "application/json", dump(got)
        assert got.get("userProperties") == [["status", "ok"], ["served-by", "paho"]], dump(got)
        check_wire(page)
        page.end()
    finally:
        service.close()


# [MQTT-6.0.0-1] (3.1.1) (5.0): large PUBLISH packets from the server too come in binary
# messages.
@pytest.mark.parametrize("versions", VERSIONS)
def test_browser_large_payloads_both_ways(ws_broker, chromium, tmp_path, versions):  # noqa: F811
    """Payloads of 70 KiB and 300 KiB (more than a WebSocket frame with a 16-bit length
    holds, so they need the 64-bit length form, and more than one socket read), random
    bytes, from the page to a paho TCP subscriber and from paho back to the page, at QoS 1:
    both arrive byte for byte."""
    js_version, paho_version = versions
    rng = random.Random(8)
    payloads = [rng.randbytes(70 * 1024 + 3), rng.randbytes(300 * 1024 + 1)]
    tcp = Peer(ws_broker, "tcp-big", paho_version)
    try:
        tcp.subscribe("big/to-tcp", 1)
        page = open_browser(chromium, ws_broker, tmp_path, "browser-big", js_version)
        page.subscribe("big/to-browser", 1)
        for payload in payloads:
            before = len(page.websockets()[0]["sent"])
            page.publish("big/to-tcp", payload, 1)
            message = tcp.next_message()
            assert message.topic == "big/to-tcp"
            assert len(message.payload) == len(payload)
            assert message.payload == payload
            # The page did send it over its WebSocket (MQTT.js 5.16 sends a packet as one
            # message; how the browser cuts that into frames it does not show).
            sent = page.websockets()[0]["sent"][before:]
            assert sum(m["bytes"] for m in sent) > len(payload), dump(sent)
        for payload in payloads:
            tcp.publish("big/to-browser", payload, 1)
        got = page.wait_messages(len(payloads))
        assert [len(m["payload"]) for m in got] == [len(p) for p in payloads]
        assert [m["payload"] for m in got] == payloads
        ws = check_wire(page)
        # The page received each large PUBLISH whole, in one or more binary messages.
        assert sum(m["bytes"] for m in ws["received"]) > sum(len(p) for p in payloads)
        page.end()
    finally:
        tcp.close()

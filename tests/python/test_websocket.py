"""Eclipse Paho over WebSocket (`transport="websockets"`, which offers subprotocol "mqtt"
and sends each packet in binary frames): a broker with its plain listener and a ws
listener, pub/sub through ws in MQTT 3.1.1 and 5.0, and ws and TCP clients exchanging
messages. Runs against ringmq and Mosquitto alike (Mosquitto's `protocol websockets`).
"""

import shutil
import socket
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import Broker, Peer, free_port

VERSIONS = [
    pytest.param(mqtt.MQTTv311, id="v311"),
    pytest.param(mqtt.MQTTv5, id="v5"),
]


@pytest.fixture
def ws_broker(tmp_path):
    port = free_port()
    data = tmp_path / "broker"
    data.mkdir()
    broker = Broker(
        data,
        shards=2,
        ringmq_toml=f'[[listener]]\nbind = "127.0.0.1:{port}"\nkind = "ws"\n',
        mosquitto_conf=f"listener {port} 127.0.0.1\nprotocol websockets\n",
    )
    broker.ws_port = port
    # The broker is ready on its first listener; the ws one may come up a moment later.
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection((broker.host, port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                broker.stop()
                raise
            time.sleep(0.01)
    yield broker
    broker.stop()
    shutil.rmtree(data, ignore_errors=True)


def ws_peer(broker, client_id, protocol):
    return Peer(broker, client_id, protocol, port=broker.ws_port, transport="websockets")


@pytest.mark.parametrize("protocol", VERSIONS)
def test_pub_sub_through_websocket(ws_broker, protocol):
    sub = ws_peer(ws_broker, "ws-sub", protocol)
    pub = ws_peer(ws_broker, "ws-pub", protocol)
    try:
        sub.subscribe("ws/+", 2)
        for qos in (0, 1, 2):
            pub.publish(f"ws/{qos}", f"payload {qos}".encode() * 100, qos)
            message = sub.next_message()
            assert message.topic == f"ws/{qos}"
            assert message.payload == f"payload {qos}".encode() * 100
            assert message.qos == qos
        pub.disconnect()
        sub.disconnect()
    finally:
        pub.close()
        sub.close()


@pytest.mark.parametrize("protocol", VERSIONS)
def test_websocket_publisher_tcp_subscriber(ws_broker, protocol):
    tcp_sub = Peer(ws_broker, "tcp-sub", protocol)
    ws_sub = ws_peer(ws_broker, "ws-sub", protocol)
    ws_pub = ws_peer(ws_broker, "ws-pub", protocol)
    tcp_pub = Peer(ws_broker, "tcp-pub", protocol)
    try:
        tcp_sub.subscribe("mixed/#", 1)
        ws_sub.subscribe("mixed/#", 1)
        ws_pub.publish("mixed/from-ws", b"over websocket", 1)
        tcp_pub.publish("mixed/from-tcp", b"over tcp", 1)
        for peer in (tcp_sub, ws_sub):
            got = sorted((m.topic, m.payload) for m in (peer.next_message(), peer.next_message()))
            assert got == [("mixed/from-tcp", b"over tcp"), ("mixed/from-ws", b"over websocket")]
    finally:
        for peer in (tcp_sub, ws_sub, ws_pub, tcp_pub):
            peer.close()

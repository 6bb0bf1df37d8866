"""Eclipse Paho (paho-mqtt 2.x, callback API 2) against a running broker, MQTT 3.1.1 and 5.0.

Every test whose name ends in `_v311_v5` runs for both protocol versions; the others run
the version their name gives. Statement ids are cited as tests/conformance_map.rs reads
them: pinned to a version, `[MQTT-3.1.2-24] (3.1.1)`, where the ids of 3.1.1 and 5.0 differ.
"""

import queue

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import WAIT, keep_alive_close_bound

VERSIONS = [
    pytest.param(mqtt.MQTTv311, id="v311"),
    pytest.param(mqtt.MQTTv5, id="v5"),
]


def persistent(protocol):
    """Options for a session that outlives its connection."""
    if protocol == mqtt.MQTTv5:
        return {"clean": False, "session_expiry": 300}
    return {"clean": False}


# [MQTT-4.3.1-1] (3.1.1) (5.0), [MQTT-4.3.2-2] (3.1.1) / [MQTT-4.3.2-4] (5.0),
# [MQTT-4.3.3-2] (3.1.1) / [MQTT-4.3.3-8] (5.0): a message at each QoS reaches a QoS 2
# subscriber once, at that QoS, RETAIN 0.
@pytest.mark.parametrize("protocol", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_sub_end_to_end_at_each_qos_v311_v5(broker, peers, protocol, qos):
    sub = peers(broker, "sub", protocol)
    sub.subscribe("e2e/t", 2)
    pub = peers(broker, "pub", protocol)
    pub.publish("e2e/t", b"payload", qos)
    m = sub.next_message()
    assert (m.topic, m.payload, m.qos, m.retain) == ("e2e/t", b"payload", qos, False)
    sub.no_message()


# [MQTT-3.8.4-6] (3.1.1) / [MQTT-3.8.4-8] (5.0): delivered QoS = min(published, granted).
@pytest.mark.parametrize("protocol", VERSIONS)
def test_delivered_qos_is_min_of_published_and_granted_v311_v5(broker, peers, protocol):
    sub = peers(broker, "sub", protocol)
    for granted in range(3):
        sub.subscribe(f"g/{granted}", granted)
    pub = peers(broker, "pub", protocol)
    for granted in range(3):
        for published in range(3):
            pub.publish(f"g/{granted}", f"{published}".encode(), published)
            m = sub.next_message()
            assert (m.topic, m.qos) == (f"g/{granted}", min(granted, published))


# Section 4.7: `+` one level, `#` the level and below, neither matches a `$` topic
# [MQTT-4.7.2-1]: each subscriber gets the matching messages [MQTT-4.5.0-1] and no other
# [MQTT-3.3.2-3].
@pytest.mark.parametrize("protocol", VERSIONS)
def test_wildcards_v311_v5(broker, peers, protocol):
    plus = peers(broker, "plus", protocol)
    plus.subscribe("w/+/x", 1)
    hash_ = peers(broker, "hash", protocol)
    hash_.subscribe("#", 1)
    pub = peers(broker, "pub", protocol)
    for topic in ["w/a/x", "w/a/b/x", "$w/a/x", "w", "w/fence/x"]:
        pub.publish(topic, topic.encode(), 1)
    assert [plus.next_message().topic for _ in range(2)] == ["w/a/x", "w/fence/x"]
    got = [hash_.next_message().topic for _ in range(4)]
    assert got == ["w/a/x", "w/a/b/x", "w", "w/fence/x"]
    plus.no_message()
    hash_.no_message()


# Stored and replaced [MQTT-3.3.1-5], sent with RETAIN 1 to new subscriptions
# ([MQTT-3.3.1-6] (3.1.1), [MQTT-3.3.1-8] (3.1.1) / [MQTT-3.3.1-9] (5.0)) and RETAIN 0 to
# existing ones ([MQTT-3.3.1-9] (3.1.1) / [MQTT-3.3.1-12] (5.0)), removed by an empty
# payload and not stored itself ([MQTT-3.3.1-10] (3.1.1), [MQTT-3.3.1-11] (3.1.1) /
# [MQTT-3.3.1-6] (5.0), [MQTT-3.3.1-7] (5.0)).
@pytest.mark.parametrize("protocol", VERSIONS)
def test_retained_messages_v311_v5(broker, peers, protocol):
    existing = peers(broker, "existing", protocol)
    existing.subscribe("ret/t", 1)
    pub = peers(broker, "pub", protocol)
    pub.publish("ret/t", b"first", 1, retain=True)
    pub.publish("ret/t", b"second", 1, retain=True)
    assert [(m.payload, m.retain) for m in (existing.next_message(), existing.next_message())] == [
        (b"first", False),
        (b"second", False),
    ]
    late = peers(broker, "late", protocol)
    late.subscribe("ret/#", 1)
    m = late.next_message()
    assert (m.topic, m.payload, m.retain) == ("ret/t", b"second", True)
    late.no_message()

    pub.publish("ret/t", b"", 1, retain=True)
    later = peers(broker, "later", protocol)
    later.subscribe("ret/#", 1)
    later.no_message()


# [MQTT-3.1.2-8]: the will is published when the connection ends without DISCONNECT;
# [MQTT-3.1.2-10]: not after DISCONNECT; [MQTT-3.1.2-17] (3.1.1) / [MQTT-3.1.2-15] (5.0):
# Will Retain.
@pytest.mark.parametrize("protocol", VERSIONS)
def test_will_v311_v5(broker, peers, protocol):
    watcher = peers(broker, "watcher", protocol)
    watcher.subscribe("will/#", 1)
    polite = peers(broker, "polite", protocol, will=("will/polite", b"unseen", 1, False))
    polite.disconnect()
    rude = peers(broker, "rude", protocol, will=("will/rude", b"gone", 1, True))
    rude.drop()
    m = watcher.next_message()
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/rude", b"gone", 1, False)
    watcher.no_message()
    late = peers(broker, "late", protocol)
    late.subscribe("will/#", 1)
    m = late.next_message()
    assert (m.topic, m.payload, m.retain) == ("will/rude", b"gone", True)


# [MQTT-3.1.2-24] (3.1.1) / [MQTT-3.1.2-22] (5.0): a client that stops sending (paho's
# network thread stopped, socket left open) is disconnected after 1.5 x keep-alive, so its
# will is published; [MQTT-3.12.4-1]: one whose paho pings every keep-alive stays connected.
@pytest.mark.parametrize("protocol", VERSIONS)
def test_keep_alive_v311_v5(broker, peers, protocol):
    watcher = peers(broker, "watcher", protocol)
    watcher.subscribe("will/#", 1)
    lively = peers(broker, "lively", protocol, keepalive=1, will=("will/lively", b"x", 1, False))
    sleepy = peers(broker, "sleepy", protocol, keepalive=1, will=("will/sleepy", b"zzz", 1, False))
    sleepy.stop_network()
    m = watcher.next_message(timeout=keep_alive_close_bound(1))
    assert (m.topic, m.payload) == ("will/sleepy", b"zzz")
    # By now `lively` has been connected for well over 1.5 x its keep-alive.
    assert lively.disconnected.empty(), "a pinging client was disconnected"
    lively.publish("will/alive", b"still here", 1)
    assert watcher.next_message().topic == "will/alive"


# [MQTT-3.1.2-5] (3.1.1) / [MQTT-3.2.2-2] (3.1.1), [MQTT-3.1.2-23] (5.0) /
# [MQTT-3.2.2-3] (5.0): a persistent session collects QoS 1 messages while its client is
# away and delivers them in order on resumption, with Session Present 1.
@pytest.mark.broker(shards=4)
@pytest.mark.parametrize("protocol", VERSIONS)
def test_persistent_session_resume_v311_v5(broker, peers, protocol):
    first = peers(broker, "durable", protocol, **persistent(protocol))
    assert not first.session_present
    first.subscribe("dur/t", 1)
    first.disconnect()
    pub = peers(broker, "pub", protocol)
    for i in range(20):
        pub.publish("dur/t", str(i).encode(), 1)
    again = peers(broker, "durable", protocol, **persistent(protocol))
    assert again.session_present
    assert [again.next_message().payload for _ in range(20)] == [
        str(i).encode() for i in range(20)
    ]
    again.no_message()


# [MQTT-3.1.4-2] (3.1.1) / [MQTT-3.1.4-3] (5.0): a second connection with the same client id
# closes the first (5.0: a DISCONNECT first, if any, says 0x8E Session taken over); the
# second works.
@pytest.mark.broker(shards=4)
@pytest.mark.parametrize("protocol", VERSIONS)
def test_takeover_v311_v5(broker, peers, protocol):
    first = peers(broker, "twin", protocol)
    second = peers(broker, "twin", protocol)
    reason = first.wait_disconnected()
    if protocol == mqtt.MQTTv5 and reason.value >= 0x80 and reason.value != 0x80:
        # 0x80 is paho's "unspecified": the connection closed without a DISCONNECT.
        assert reason.value == 0x8E, f"DISCONNECT reason {reason}"
    second.subscribe("tk/t", 1)
    second.publish("tk/t", b"mine", 1)
    assert second.next_message().payload == b"mine"


# [MQTT-3.1.4-3] (5.0): the taken-over client receives DISCONNECT 0x8E.
@pytest.mark.ringmq_only("mosquitto 2.0.11 closes the old connection without DISCONNECT 0x8E")
def test_takeover_sends_disconnect_0x8e_v5(broker, peers):
    first = peers(broker, "twin", mqtt.MQTTv5)
    peers(broker, "twin", mqtt.MQTTv5)
    assert first.wait_disconnected().value == 0x8E


# The message's properties reach the subscriber unaltered: user properties in order,
# repeated names included ([MQTT-3.3.2-17], [MQTT-3.3.2-18]), content type [MQTT-3.3.2-20],
# response topic [MQTT-3.3.2-15], correlation data [MQTT-3.3.2-16], payload format indicator
# [MQTT-3.3.2-4].
def test_v5_properties_forwarded(broker, peers):
    sub = peers(broker, "sub", mqtt.MQTTv5)
    sub.subscribe("props/t", 1)
    pub = peers(broker, "pub", mqtt.MQTTv5)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("b", "2"), ("a", "1"), ("b", "3"), ("\u00fc", "\u00e9")]
    props.ContentType = "application/json"
    props.ResponseTopic = "props/reply"
    props.CorrelationData = b"\x00\x01corr"
    props.PayloadFormatIndicator = 1
    pub.publish("props/t", b"{}", 1, properties=props)
    m = sub.next_message()
    assert m.payload == b"{}"
    got = m.properties
    assert got.UserProperty == [("b", "2"), ("a", "1"), ("b", "3"), ("\u00fc", "\u00e9")]
    assert got.ContentType == "application/json"
    assert got.ResponseTopic == "props/reply"
    assert got.CorrelationData == b"\x00\x01corr"
    assert got.PayloadFormatIndicator == 1


# Section 3.3 of each version: a v5 publisher reaches a 3.1.1 subscriber (properties left
# out) and the other way round.
def test_messages_cross_protocol_versions_v311_v5(broker, peers):
    sub311 = peers(broker, "sub311", mqtt.MQTTv311)
    sub311.subscribe("x/#", 1)
    sub5 = peers(broker, "sub5", mqtt.MQTTv5)
    sub5.subscribe("x/#", 1)
    pub5 = peers(broker, "pub5", mqtt.MQTTv5)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k", "v")]
    pub5.publish("x/from5", b"five", 1, properties=props)
    pub311 = peers(broker, "pub311", mqtt.MQTTv311)
    pub311.publish("x/from311", b"three", 1)
    assert [(m.topic, m.payload) for m in (sub311.next_message(), sub311.next_message())] == [
        ("x/from5", b"five"),
        ("x/from311", b"three"),
    ]
    got5 = [sub5.next_message() for _ in range(2)]
    assert [(m.topic, m.payload) for m in got5] == [("x/from5", b"five"), ("x/from311", b"three")]
    assert got5[0].properties.UserProperty == [("k", "v")]


# [MQTT-4.6.0-5]: 200 QoS 1 messages from one publisher, sent without waiting, arrive in
# order (paho keeps at most 20 in flight; the rest wait in its queue).
@pytest.mark.broker(shards=4)
@pytest.mark.parametrize("protocol", VERSIONS)
def test_ordering_v311_v5(broker, peers, protocol):
    sub = peers(broker, "sub", protocol)
    sub.subscribe("ord/t", 1)
    pub = peers(broker, "pub", protocol)
    infos = [pub.client.publish("ord/t", str(i).encode(), 1) for i in range(200)]
    for info in infos:
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published()
    assert [sub.next_message().payload for _ in range(200)] == [
        str(i).encode() for i in range(200)
    ]


# [MQTT-4.8.2-3] (5.0): three paho members of one share group on a four-shard broker and
# a publisher of 30 QoS 1 messages: each message reaches exactly one member, at QoS 1.
@pytest.mark.broker(shards=4)
@pytest.mark.parametrize("protocol", VERSIONS)
def test_shared_subscription_gives_each_message_to_one_member_v311_v5(broker, peers, protocol):
    members = [peers(broker, f"member-{i}", protocol) for i in range(3)]
    for m in members:
        m.subscribe("$share/workers/jobs/#", 1)
    pub = peers(broker, "dispatcher", protocol)
    sent = [f"job {i}".encode() for i in range(30)]
    for payload in sent:
        pub.publish("jobs/new", payload, 1)
    got = []
    for m in members:
        while True:
            try:
                message = m.messages.get(timeout=0.5)
            except queue.Empty:
                break
            assert message.qos == 1
            got.append(message.payload)
    assert sorted(got) == sorted(sent)


# Request / response (MQTT 5.0 section 4.10): the requester asks for Response Information
# in CONNECT [MQTT-3.1.2-28] (5.0) and gets the configured prefix with its client id; it
# subscribes there, and a responder answers a request on the Response Topic with the
# request's Correlation Data, both forwarded unaltered [MQTT-3.3.2-15] [MQTT-3.3.2-16] (5.0).
@pytest.mark.ringmq_only("mqtt.response_information")
@pytest.mark.broker(ringmq_toml='[mqtt]\nresponse_information = "reply/"')
def test_request_response_with_response_information_v5(broker, peers):
    props = Properties(PacketTypes.CONNECT)
    props.RequestResponseInformation = 1
    requester = peers(broker, "asker", mqtt.MQTTv5, connect_properties=props)
    info = requester.connack_properties.ResponseInformation
    assert info == "reply/asker/"
    requester.subscribe(info + "#", 1)
    responder = peers(broker, "answerer", mqtt.MQTTv5)
    responder.subscribe("service/time", 1)
    request = Properties(PacketTypes.PUBLISH)
    request.ResponseTopic = info + "time"
    request.CorrelationData = b"\x07req-1"
    requester.publish("service/time", b"what time?", 1, properties=request)
    asked = responder.next_message()
    assert asked.properties.ResponseTopic == info + "time"
    answer = Properties(PacketTypes.PUBLISH)
    answer.CorrelationData = asked.properties.CorrelationData
    responder.publish(asked.properties.ResponseTopic, b"noon", 1, properties=answer)
    reply = requester.next_message()
    assert (reply.topic, reply.payload) == ("reply/asker/time", b"noon")
    assert reply.properties.CorrelationData == b"\x07req-1"
    # Not asked for: none given.
    plain = peers(broker, "plain", mqtt.MQTTv5)
    assert not hasattr(plain.connack_properties, "ResponseInformation")

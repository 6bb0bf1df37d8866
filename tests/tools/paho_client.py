#!/usr/bin/env python3
"""Scripted paho-mqtt 2.x client flows, used by record_fixtures.sh.

    paho_client.py VERSION SCENARIO PORT     (VERSION: v31, v311, v5)
    paho_client.py --list

Each scenario connects to 127.0.0.1:PORT (the fake server in
record_fixtures.py), runs one short, deterministic flow and disconnects.
Every wait is bounded; the process exits non-zero if a step times out.
"""

import os
import sys
import threading
import time

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

STEP_TIMEOUT = 5.0
VERSIONS = {"v31": mqtt.MQTTv31, "v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}


class Flow:
    def __init__(self, port, version, client_id, clean=True, keepalive=60):
        self.port = port
        self.version = VERSIONS[version]
        self.v5 = self.version == mqtt.MQTTv5
        self.clean = clean
        self.keepalive = keepalive
        kwargs = {"client_id": client_id, "protocol": self.version}
        if not self.v5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.cond = threading.Condition()
        self.acked = set()          # mids of SUBACK / UNSUBACK received
        self.messages = []
        self.logs = []
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_ack
        self.c.on_unsubscribe = self._on_ack
        self.c.on_message = self._on_message
        self.c.on_log = self._on_log

    # callbacks -----------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            fail("CONNACK refused: %s" % reason_code)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnected.set()

    def _on_ack(self, client, userdata, mid, reason_codes, properties):
        with self.cond:
            self.acked.add(mid)
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def _on_log(self, client, userdata, level, buf):
        with self.cond:
            self.logs.append(buf)
            self.cond.notify_all()

    # helpers -------------------------------------------------------------
    def wait_until(self, pred, what):
        deadline = time.monotonic() + STEP_TIMEOUT
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out waiting for " + what)
                self.cond.wait(left)

    def connect(self, properties=None):
        kwargs = {"keepalive": self.keepalive}
        if self.v5:
            kwargs["clean_start"] = self.clean
            kwargs["properties"] = properties
        self.c.connect("127.0.0.1", self.port, **kwargs)
        self.c.loop_start()
        if not self.connected.wait(STEP_TIMEOUT):
            fail("timed out waiting for CONNACK")

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain,
                              properties=properties)
        info.wait_for_publish(STEP_TIMEOUT)
        if not info.is_published():
            fail("publish to %r not acknowledged" % topic)

    def subscribe(self, subs, properties=None):
        rc, mid = self.c.subscribe(subs, properties=properties)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            fail("subscribe failed: %s" % rc)
        self.wait_until(lambda: mid in self.acked, "SUBACK")

    def unsubscribe(self, topics, properties=None):
        rc, mid = self.c.unsubscribe(topics, properties=properties)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            fail("unsubscribe failed: %s" % rc)
        self.wait_until(lambda: mid in self.acked, "UNSUBACK")

    def wait_messages(self, n):
        self.wait_until(lambda: len(self.messages) >= n,
                        "%d messages" % n)

    def wait_ping(self):
        self.wait_until(lambda: any("PINGRESP" in l for l in self.logs),
                        "PINGREQ/PINGRESP")

    def settle(self, secs=0.3):
        # let the network loop flush trailing acks (e.g. PUBCOMP)
        time.sleep(secs)

    def disconnect(self, reasoncode=None, properties=None):
        self.c.disconnect(reasoncode=reasoncode, properties=properties)
        if not self.disconnected.wait(STEP_TIMEOUT):
            fail("timed out waiting for disconnect")
        self.c.loop_stop()


def fail(msg):
    print("paho_client: " + msg, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)


def props(packet_type, **values):
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


# scenarios ---------------------------------------------------------------
# The fake server is started with matching options (see record_fixtures.sh):
# "subscribe" scenarios expect it to push one QoS 1 and one QoS 2 PUBLISH
# after the first SUBACK; "topic-alias" expects --topic-alias-max.

def s_connect_empty_clientid(port, ver):
    f = Flow(port, ver, "", clean=True, keepalive=30)
    f.connect()
    f.disconnect()


def s_connect_will(port, ver):
    f = Flow(port, ver, "paho-%s-will" % ver, clean=False, keepalive=120)
    wp = None
    if f.v5:
        wp = props(PacketTypes.WILLMESSAGE, WillDelayInterval=5,
                   MessageExpiryInterval=120, ContentType="text/plain",
                   PayloadFormatIndicator=1, ResponseTopic="will/reply",
                   CorrelationData=b"\x01\x02\x03",
                   UserProperty=[("will-key", "will-value")])
    f.c.will_set("clients/paho/status", "offline", qos=1, retain=True,
                 properties=wp)
    f.connect()
    f.disconnect()


def s_connect_username_only(port, ver):
    f = Flow(port, ver, "paho-%s-user" % ver)
    f.c.username_pw_set("bob", None)
    f.connect()
    f.disconnect()


def s_connect_properties(port, ver):
    f = Flow(port, ver, "paho-v5-connprops", clean=False)
    f.c.username_pw_set("alice", "s3cret")
    f.c.will_set("clients/paho/status", b"\x00gone", qos=2, retain=False,
                 properties=props(PacketTypes.WILLMESSAGE,
                                  WillDelayInterval=30))
    cp = props(PacketTypes.CONNECT, SessionExpiryInterval=3600,
               ReceiveMaximum=10, MaximumPacketSize=65536,
               TopicAliasMaximum=5, RequestResponseInformation=1,
               RequestProblemInformation=0,
               UserProperty=[("client", "paho"), ("purpose", "fixture")])
    f.connect(properties=cp)
    f.disconnect()


def s_publish_qos012(port, ver):
    f = Flow(port, ver, "paho-%s-pub" % ver)
    f.connect()
    f.publish("sensors/temp", "21.5", qos=0)
    f.publish("sensors/temp", "21.6", qos=1)
    f.publish("sensors/temp", "21.7", qos=2)
    f.publish("sensors/last", "retained", qos=1, retain=True)
    f.publish("sensors/empty", b"", qos=0)
    f.disconnect()


def s_publish_properties(port, ver):
    f = Flow(port, ver, "paho-v5-pubprops")
    f.connect()
    f.publish("req/a", "hello", qos=0, properties=props(
        PacketTypes.PUBLISH, UserProperty=[("k1", "v1"), ("k2", "v2")]))
    f.publish("req/b", '{"x":1}', qos=1, properties=props(
        PacketTypes.PUBLISH, MessageExpiryInterval=60,
        ContentType="application/json", PayloadFormatIndicator=1))
    f.publish("req/c", b"\xde\xad\xbe\xef", qos=2, properties=props(
        PacketTypes.PUBLISH, ResponseTopic="resp/c",
        CorrelationData=b"corr-42", PayloadFormatIndicator=0,
        UserProperty=[("trace", "abc")]))
    f.disconnect()


def s_publish_topic_alias(port, ver):
    f = Flow(port, ver, "paho-v5-alias")
    f.connect()
    f.publish("very/long/topic/name/for/alias", "first", qos=1,
              properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    f.publish("", "second", qos=1,
              properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    f.publish("", "third", qos=0,
              properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    f.disconnect()


def s_subscribe(port, ver):
    f = Flow(port, ver, "paho-%s-sub" % ver)
    f.connect()
    f.subscribe([("home/+/temp", 0), ("home/#", 1), ("alerts", 2)])
    f.wait_messages(2)  # scripted QoS 1 + QoS 2 from the fake server
    f.settle()
    f.unsubscribe(["home/+/temp", "home/#", "alerts"])
    f.disconnect()


def s_subscribe_options(port, ver):
    f = Flow(port, ver, "paho-v5-subopts")
    f.connect()
    f.subscribe([
        ("home/+/temp", SubscribeOptions(qos=0)),
        ("home/#", SubscribeOptions(qos=1, noLocal=True)),
        ("alerts", SubscribeOptions(qos=2, retainAsPublished=True,
                                    retainHandling=1)),
        ("status/#", SubscribeOptions(qos=1, noLocal=True,
                                      retainAsPublished=True,
                                      retainHandling=2)),
    ], properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7,
                        UserProperty=[("sub", "fixture")]))
    f.wait_messages(2)
    f.settle()
    f.unsubscribe(["home/#", "alerts"], properties=props(
        PacketTypes.UNSUBSCRIBE, UserProperty=[("unsub", "fixture")]))
    f.unsubscribe("status/#")
    f.disconnect()


def s_ping(port, ver):
    f = Flow(port, ver, "paho-%s-ping" % ver, keepalive=1)
    f.connect()
    f.wait_ping()
    f.disconnect()


def s_disconnect_reason(port, ver):
    f = Flow(port, ver, "paho-v5-disc")
    f.c.will_set("clients/paho/status", "offline", qos=0)
    f.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    f.disconnect(
        reasoncode=ReasonCode(PacketTypes.DISCONNECT,
                              "Disconnect with will message"),
        properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0,
                         ReasonString="shutting down",
                         UserProperty=[("why", "fixture")]))


SCENARIOS = {
    # name: (function, versions it applies to)
    "connect-empty-clientid": (s_connect_empty_clientid, ("v311", "v5")),
    "connect-will": (s_connect_will, ("v311", "v5")),
    "connect-username-only": (s_connect_username_only, ("v311",)),
    "connect-properties": (s_connect_properties, ("v5",)),
    "publish-qos012": (s_publish_qos012, ("v31", "v311", "v5")),
    "publish-properties": (s_publish_properties, ("v5",)),
    "publish-topic-alias": (s_publish_topic_alias, ("v5",)),
    "subscribe": (s_subscribe, ("v311", "v5")),
    "subscribe-options": (s_subscribe_options, ("v5",)),
    "ping": (s_ping, ("v311", "v5")),
    "disconnect-reason": (s_disconnect_reason, ("v5",)),
}


def main():
    if sys.argv[1:] == ["--list"]:
        for name, (_, vers) in SCENARIOS.items():
            print(name, " ".join(vers))
        return 0
    if sys.argv[1:] == ["--version"]:
        print(paho.mqtt.__version__)
        return 0
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ver, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    fn, vers = SCENARIOS[name]
    if ver not in vers:
        print("scenario %s does not apply to %s" % (name, ver), file=sys.stderr)
        return 2
    fn(port, ver)
    return 0


if __name__ == "__main__":
    sys.exit(main())

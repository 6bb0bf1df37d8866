"""Eclipse Paho with user names and passwords (`username_pw_set`) against a password file,
and with an ACL file: what a Paho application sees of authentication and authorization.

The password file is made as an operator would: `ringmq passwd` for ringmq (password on
standard input), `mosquitto_passwd -b` for Mosquitto, whose file format differs.
"""

import os
import queue
import shutil
import subprocess

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from conftest import REPO, WAIT, Broker, broker_kind

VERSIONS = [
    pytest.param(mqtt.MQTTv311, id="v311"),
    pytest.param(mqtt.MQTTv5, id="v5"),
]

ACL = """\
user alice
topic readwrite alice/#
topic read news/#
user bob
topic write news/#
"""


def add_user(path, user, password, create):
    if broker_kind() == "mosquitto":
        args = ["mosquitto_passwd"] + (["-c"] if create else []) + ["-b", str(path), user, password]
        subprocess.run(args, check=True, capture_output=True)
        return
    binary = os.environ.get("RINGMQ_BIN") or str(REPO / "target" / "debug" / "ringmq")
    args = [binary, "passwd"] + (["-c"] if create else []) + [str(path), user]
    subprocess.run(args, input=f"{password}\n", text=True, check=True, capture_output=True)


@pytest.fixture
def secured(tmp_path):
    """A broker with alice and bob in a password file, and the ACL above."""
    files = tmp_path / "files"
    files.mkdir()
    passwd = files / "passwd"
    add_user(passwd, "alice", "wonderland", create=True)
    add_user(passwd, "bob", "builder", create=False)
    acl = files / "acl"
    acl.write_text(ACL)
    data = tmp_path / "broker"
    data.mkdir()
    b = Broker(
        data,
        ringmq_toml=f'[auth]\npassword_file = "{passwd}"\nacl_file = "{acl}"\n'
        "failed_login_delay_ms = 0\n",
        # As root, Mosquitto drops to its own user after reading its configuration,
        # and pytest's temporary directories are private to root.
        mosquitto_conf=f"password_file {passwd}\nacl_file {acl}\nallow_anonymous false\n"
        "user root\n",
    )
    yield b
    b.stop()
    shutil.rmtree(tmp_path, ignore_errors=True)


def connect_result(broker, protocol, username, password):
    """Connects with these credentials; returns the CONNACK's reason code."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="probe", protocol=protocol,
        reconnect_on_failure=False,
    )
    results = queue.Queue()
    client.on_connect = lambda c, u, flags, reason, props: results.put(reason)
    if username is not None:
        client.username_pw_set(username, password)
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    try:
        return results.get(timeout=WAIT)
    finally:
        client.disconnect()
        client.loop_stop()


# [MQTT-3.1.4-2] (5.0): the right password connects, a wrong one or none is refused.
@pytest.mark.parametrize("protocol", VERSIONS)
def test_username_pw_set_accepted_and_refused_v311_v5(secured, peers, protocol):
    alice = peers(secured, "alice-1", protocol, username="alice", password="wonderland")
    alice.subscribe("alice/inbox", 1)
    alice.publish("alice/inbox", b"note to self", 1)
    assert alice.next_message().payload == b"note to self"
    wrong = connect_result(secured, protocol, "alice", "Wonderland")
    assert wrong.is_failure
    anonymous = connect_result(secured, protocol, None, None)
    assert anonymous.is_failure


@pytest.mark.ringmq_only("Mosquitto 2.0 answers 0x87 / 5 to a wrong password")
@pytest.mark.parametrize("protocol", VERSIONS)
def test_wrong_password_reason_code_v311_v5(secured, protocol):
    reason = connect_result(secured, protocol, "alice", "nope")
    # paho maps v3 return code 4 to the v5 code 0x86 as well.
    assert reason.value == 0x86, reason


# The ACL: alice, subscribed to everything, gets news/# (bob writes it) and her own
# alice/#, and nothing bob may not write (his refused PUBLISH comes last: Mosquitto closes
# a connection whose PUBLISH it refuses).
@pytest.mark.parametrize("protocol", VERSIONS)
def test_acl_filters_what_paho_receives_v311_v5(secured, peers, protocol):
    alice = peers(secured, "alice-1", protocol, username="alice", password="wonderland")
    alice.subscribe("#", 1)
    bob = peers(secured, "bob-1", protocol, username="bob", password="builder")
    bob.publish("news/today", b"headline", 1)
    m = alice.next_message()
    assert (m.topic, m.payload) == ("news/today", b"headline")
    alice.publish("alice/notes", b"mine", 1)
    m = alice.next_message()
    assert (m.topic, m.payload) == ("alice/notes", b"mine")
    bob.publish("alice/notes", b"not his to write", 0)
    alice.no_message()

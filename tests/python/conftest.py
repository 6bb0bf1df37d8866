"""pytest fixtures for the paho-mqtt tests: a broker process per test, and a paho client
wrapper whose every wait is bounded.

The broker is chosen like the Rust harness (tests/common/mod.rs) chooses it:

- RINGMQ_TEST_BROKER=mosquitto: `mosquitto -c <generated conf>` (binary from
  RINGMQ_MOSQUITTO_BIN, else /usr/sbin/mosquitto, else `mosquitto` on the PATH);
- otherwise ringmq: the binary from RINGMQ_BIN (default target/debug/ringmq) with
  `--config <generated toml>`.

Each broker listens on 127.0.0.1 on a free port with a fresh data directory; its output goes
to broker.log there, whose tail is printed when the test fails. A test sets broker options
with `@pytest.mark.broker(shards=4, ringmq_toml="...", mosquitto_conf="...")`.
"""

import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[2]

# How long a test waits for any single expected event.
WAIT = 5.0
# How long a client must stay quiet to show a message was not delivered.
QUIET = 0.3
START_TIMEOUT = 10.0


def broker_kind():
    kind = os.environ.get("RINGMQ_TEST_BROKER", "") or "ringmq"
    if kind not in ("ringmq", "mosquitto"):
        raise ValueError(f"RINGMQ_TEST_BROKER={kind!r}: expected ringmq or mosquitto")
    return kind


def keep_alive_close_bound(secs):
    """Longest wait for the server to close a silent client with keep-alive `secs`:
    1.5 x keep-alive plus slack; Mosquitto 2.0.11 is up to about 6 s late on an idle broker."""
    return secs * 1.5 + (8.0 if broker_kind() == "mosquitto" else 1.0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, proc, timeout=5.0):
    """Waits, bounded, until host:port accepts TCP connections: a broker is ready on its
    first listener, and its other listeners (TLS, ws, admin) may open a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"broker exited ({proc.returncode}) before {host}:{port} opened")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{host}:{port} not open within {timeout} s")
            time.sleep(0.01)


class Broker:
    def __init__(self, data_dir, shards=1, ringmq_toml="", mosquitto_conf=""):
        self.kind = broker_kind()
        self.host = "127.0.0.1"
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir / "broker.log"
        if self.kind == "ringmq":
            cores = ", ".join(str(i) for i in range(shards))
            config = data_dir / "ringmq.toml"
            config.write_text(
                f"[runtime]\ncores = [{cores}]\nplacement = \"unbound\"\n\n"
                f"[[listener]]\nbind = \"{self.host}:{self.port}\"\n\n"
                f"[storage]\ndata_dir = \"{data_dir / 'data'}\"\n\n{ringmq_toml}\n"
            )
            binary = os.environ.get("RINGMQ_BIN") or str(REPO / "target" / "debug" / "ringmq")
            cmd = [binary, "--config", str(config)]
        else:
            config = data_dir / "mosquitto.conf"
            config.write_text(
                f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n"
                "log_dest stderr\nmax_queued_messages 0\nset_tcp_nodelay true\n"
                f"{mosquitto_conf}\n"
            )
            binary = os.environ.get("RINGMQ_MOSQUITTO_BIN") or (
                "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else "mosquitto"
            )
            cmd = [binary, "-c", str(config)]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited ({self.proc.returncode}) before accepting connections"
                    f"\n--- broker log ---\n{self.log_tail()}"
                )
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.kind} did not accept connections within {START_TIMEOUT} s"
                    f"\n--- broker log ---\n{self.log_tail()}"
                )
            time.sleep(0.01)

    def log_tail(self, lines=60):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def broker(request, tmp_path):
    """A broker process for this test (options from @pytest.mark.broker)."""
    marker = request.node.get_closest_marker("broker")
    options = dict(marker.kwargs) if marker else {}
    b = Broker(tmp_path, **options)
    yield b
    b.stop()
    call = getattr(request.node, "report_call", None)
    if call is not None and call.failed:
        print(f"--- {b.kind} broker on port {b.port}, last log lines ---\n{b.log_tail()}")
    shutil.rmtree(tmp_path, ignore_errors=True)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "broker(shards, ringmq_toml, mosquitto_conf): options of the broker fixture"
    )
    config.addinivalue_line("markers", "ringmq_only: behaviour only ringmq promises")
    config.addinivalue_line(
        "markers", "admin(shards, token, toml): options of admin_broker (admin.py)"
    )


def pytest_collection_modifyitems(config, items):
    if broker_kind() == "ringmq":
        return
    for item in items:
        marker = item.get_closest_marker("ringmq_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else "ringmq-only behaviour"
            item.add_marker(pytest.mark.skip(reason=f"ringmq-only under mosquitto: {reason}"))


class Peer:
    """A paho-mqtt 2.x client on its own network thread, connected on construction; every
    wait has a timeout, and it never reconnects by itself."""

    def __init__(
        self,
        broker,
        client_id,
        protocol,
        clean=True,
        keepalive=30,
        will=None,
        session_expiry=None,
        connect_properties=None,
        port=None,
        tls=None,
        username=None,
        password=None,
        transport="tcp",
    ):
        self.protocol = protocol
        self.v5 = protocol == mqtt.MQTTv5
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if self.v5 else clean,
            reconnect_on_failure=False,
            transport=transport,
        )
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.subacks = {}
        self.disconnected = queue.Queue()
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        if will is not None:
            self.client.will_set(*will)
        if username is not None:
            self.client.username_pw_set(username, password)
        properties = connect_properties
        if self.v5 and session_expiry is not None:
            properties = properties or Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = session_expiry
        kwargs = {"clean_start": clean, "properties": properties} if self.v5 else {}
        if tls is not None:
            # paho's tls_set arguments (ca_certs, certfile, keyfile) for a TLS listener.
            self.client.tls_set(**tls)
        self.client.connect(broker.host, port or broker.port, keepalive, **kwargs)
        self.client.loop_start()
        try:
            flags, reason = self.connacks.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"{client_id}: no CONNACK within {WAIT} s") from None
        assert not reason.is_failure, f"{client_id}: CONNECT refused: {reason}"
        self.session_present = flags.session_present

    def _on_connect(self, client, userdata, flags, reason, properties):
        self.connack_properties = properties
        self.connacks.put((flags, reason))

    def _on_message(self, client, userdata, message):
        self.messages.put(message)

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        with self._lock:
            self.subacks.setdefault(mid, queue.Queue()).put(reasons)

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        self.disconnected.put(reason)

    def subscribe(self, topic, qos):
        with self._lock:
            result, mid = self.client.subscribe(topic, qos)
            acks = self.subacks.setdefault(mid, queue.Queue())
        assert result == mqtt.MQTT_ERR_SUCCESS, f"SUBSCRIBE {topic}: {result}"
        try:
            reasons = acks.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no SUBACK for {topic} within {WAIT} s") from None
        assert [r.value for r in reasons] == [qos], f"SUBACK for {topic}: {reasons}"

    def publish(self, topic, payload, qos, retain=False, properties=None):
        """Publishes and waits until the QoS flow is complete."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published(), f"PUBLISH {topic} QoS {qos} not completed within {WAIT} s"

    def next_message(self, timeout=WAIT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout} s") from None

    def no_message(self, quiet=QUIET):
        try:
            message = self.messages.get(timeout=quiet)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {message.topic}: {message.payload!r}")

    def wait_disconnected(self, timeout=WAIT):
        try:
            return self.disconnected.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"connection not closed within {timeout} s") from None

    def disconnect(self):
        """DISCONNECT, then wait for the close."""
        self.client.disconnect()
        self.wait_disconnected()
        self.client.loop_stop()

    def stop_network(self):
        """Stops the network thread without a word to the server: no more PINGREQs."""
        self.client.loop_stop()

    def drop(self):
        """Closes the TCP connection without DISCONNECT (paho does not reconnect)."""
        sock = self.client.socket()
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.wait_disconnected()
        self.client.loop_stop()

    def close(self):
        """End of test: DISCONNECT if still connected (which also wakes paho's network
        thread at once), then stop the thread."""
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


@pytest.fixture
def peers():
    """Collects the Peers a test makes and stops their threads at the end."""
    made = []

    def make(*args, **kwargs):
        p = Peer(*args, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()

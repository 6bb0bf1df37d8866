"""Eclipse Paho over TLS (`tls_set`): a broker with its plain listener and a TLS listener,
certificates made for each test with the `cryptography` package (a CA that signs the server
and a client, and another CA). Runs against ringmq and Mosquitto alike.
"""

import datetime
import ipaddress
import os
import queue
import shutil
import ssl
import tempfile
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.enums import CallbackAPIVersion

from conftest import WAIT, Broker, free_port, wait_port

VERSIONS = [
    pytest.param(mqtt.MQTTv311, id="v311"),
    pytest.param(mqtt.MQTTv5, id="v5"),
]


def _usage(ca):
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class Issuer:
    """A CA: its key and self-signed certificate."""

    def __init__(self, name):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = self._build(self.name, self.key.public_key(), ca=True).sign(
            self.key, hashes.SHA256()
        )

    def _build(self, subject, public_key, ca, sans=(), purpose=None):
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(_usage(ca), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if purpose is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        return builder

    def issue(self, directory, name, cn, sans=(), purpose=ExtendedKeyUsageOID.CLIENT_AUTH):
        """Writes NAME.pem and NAME.key, a certificate for `cn` signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        cert = self._build(subject, key.public_key(), False, sans, purpose).sign(
            self.key, hashes.SHA256()
        )
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def write(self, path):
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))


class Pki:
    """ca.pem, other-ca.pem, server.pem/key (127.0.0.1, localhost), alice.pem/key, in a
    directory others may read: Mosquitto started as root reads them as user mosquitto."""

    def __init__(self):
        directory = Path(tempfile.mkdtemp(prefix="ringmq-tls-"))
        os.chmod(directory, 0o755)
        self.dir = directory
        ca = Issuer("ringmq paho test CA")
        ca.write(directory / "ca.pem")
        Issuer("some other CA").write(directory / "other-ca.pem")
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ca.issue(directory, "server", "ringmq test server", sans, ExtendedKeyUsageOID.SERVER_AUTH)
        ca.issue(directory, "alice", "alice")

    def __getitem__(self, name):
        return str(self.dir / name)


class TlsBroker:
    """A broker with a TLS listener beside its plain one (`tls_port`)."""

    def __init__(self, tmp_path, require_client_cert):
        self.pki = Pki()
        self.tls_port = free_port()
        p = self.pki
        table = f'cert = "{p["server.pem"]}", key = "{p["server.key"]}"'
        mosquitto = (
            f"listener {self.tls_port} 127.0.0.1\n"
            f"certfile {p['server.pem']}\nkeyfile {p['server.key']}\n"
        )
        if require_client_cert:
            table += f', ca = "{p["ca.pem"]}", require_client_cert = true'
            mosquitto += f"cafile {p['ca.pem']}\nrequire_certificate true\n"
        data = tmp_path
        data.mkdir()
        self.broker = Broker(
            data,
            ringmq_toml=f'[[listener]]\nbind = "127.0.0.1:{self.tls_port}"\ntls = {{ {table} }}\n',
            mosquitto_conf=mosquitto,
        )
        wait_port(self.broker.host, self.tls_port, self.broker.proc)

    def tls(self, ca="ca.pem", cert=None):
        """paho `tls_set` arguments: trust `ca`, present NAME.pem / NAME.key if given."""
        args = {"ca_certs": self.pki[ca]}
        if cert is not None:
            args.update(certfile=self.pki[f"{cert}.pem"], keyfile=self.pki[f"{cert}.key"])
        return args


@pytest.fixture
def tls_broker(tmp_path):
    made = []

    def make(require_client_cert=False):
        b = TlsBroker(tmp_path / f"broker-{len(made)}", require_client_cert)
        made.append(b)
        return b

    yield make
    for b in made:
        b.broker.stop()
        shutil.rmtree(b.pki.dir, ignore_errors=True)


def attempt(broker, port, tls, client_id):
    """Connects once with `tls`; returns "connected", or why not: the TLS error the client
    raised itself, or "closed" when the server ended the connection without a CONNACK."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, reconnect_on_failure=False
    )
    events = queue.Queue()
    client.on_connect = lambda c, u, flags, reason, props: events.put(
        "connected" if not reason.is_failure else f"refused {reason}"
    )
    client.on_disconnect = lambda c, u, flags, reason, props: events.put("closed")
    client.tls_set(**tls)
    try:
        client.connect(broker.host, port, 30)
    except (ssl.SSLError, OSError) as e:
        return f"client error: {e}"
    client.loop_start()
    try:
        return events.get(timeout=WAIT)
    except queue.Empty:
        raise AssertionError("neither CONNACK nor close") from None
    finally:
        client.disconnect()
        client.loop_stop()


# A subscriber over TLS gets what a publisher on the plain listener sends, and the other way
# round.
@pytest.mark.parametrize("protocol", VERSIONS)
def test_paho_over_tls_and_plain_side_by_side_v311_v5(tls_broker, peers, protocol):
    t = tls_broker()
    b = t.broker
    tls_sub = peers(b, "tls-sub", protocol, port=t.tls_port, tls=t.tls())
    tls_sub.subscribe("paho/tls/#", 1)
    plain_sub = peers(b, "plain-sub", protocol)
    plain_sub.subscribe("paho/tls/#", 1)
    peers(b, "plain-pub", protocol).publish("paho/tls/plain", b"from plain", 1)
    peers(b, "tls-pub", protocol, port=t.tls_port, tls=t.tls()).publish(
        "paho/tls/tls", b"from tls", 1
    )
    for sub in (tls_sub, plain_sub):
        got = sorted((m.topic, m.payload) for m in (sub.next_message(), sub.next_message()))
        assert got == [("paho/tls/plain", b"from plain"), ("paho/tls/tls", b"from tls")]


# paho refuses a server whose certificate its CA file does not vouch for.
def test_paho_with_another_ca_refuses_the_server(tls_broker):
    t = tls_broker()
    seen = attempt(t.broker, t.tls_port, t.tls(ca="other-ca.pem"), "wrong-ca")
    assert seen.startswith("client error:") and "CERTIFICATE_VERIFY_FAILED" in seen, seen
    assert attempt(t.broker, t.tls_port, t.tls(), "right-ca") == "connected"


# Mutual TLS: with a certificate from the CA paho connects and its messages flow; without
# one the broker ends the connection before any CONNACK.
def test_paho_mutual_tls(tls_broker, peers):
    t = tls_broker(require_client_cert=True)
    b = t.broker
    sub = peers(b, "alice-sub", mqtt.MQTTv311, port=t.tls_port, tls=t.tls(cert="alice"))
    sub.subscribe("paho/mtls", 1)
    pub = peers(b, "alice-pub", mqtt.MQTTv5, port=t.tls_port, tls=t.tls(cert="alice"))
    pub.publish("paho/mtls", b"mutual", 1)
    assert sub.next_message().payload == b"mutual"
    seen = attempt(b, t.tls_port, t.tls(), "no-cert")
    assert seen == "closed" or seen.startswith("client error:"), seen

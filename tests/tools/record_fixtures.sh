#!/usr/bin/env bash
# Regenerate tests/data/fixtures/*.txt: the exact MQTT packets real clients
# (mosquitto_pub / mosquitto_sub and Python paho-mqtt 2.x) send, captured by
# the fake server tests/tools/record_fixtures.py on 127.0.0.1.
#
#   tests/tools/record_fixtures.sh               install clients, record all
#   SKIP_INSTALL=1 tests/tools/record_fixtures.sh  use what is already installed
#   PORT=18830                                    loopback port to use
#
# Installs (unless SKIP_INSTALL=1): Debian package mosquitto-clients (apt-get)
# and paho-mqtt 2.x in the git-ignored venv .venv at the repository root.
# Fixtures are written to a temporary directory and only replace the
# committed ones when every scenario was recorded and checked.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
FIXTURES=tests/data/fixtures
PORT=${PORT:-18830}
VENV=.venv
PY=$VENV/bin/python
SERVER=tests/tools/record_fixtures.py
PAHO=tests/tools/paho_client.py
ATTEMPTS=3

# ---------------------------------------------------------------- install
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    SUDO=
    [ "$(id -u)" = 0 ] || SUDO=sudo
    if ! command -v mosquitto_pub >/dev/null || ! command -v mosquitto_sub >/dev/null; then
        $SUDO apt-get update
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y mosquitto-clients
    fi
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install --quiet 'paho-mqtt>=2,<3'
fi

MOSQ_VERSION=$( (mosquitto_pub --help 2>&1 || true) | sed -n 's/^mosquitto_pub version \([^ ]*\) running on libmosquitto \([^ ]*\)\.$/\1 (libmosquitto \2)/p')
DEB_VERSION=$(dpkg-query -W -f='${Version}' mosquitto-clients 2>/dev/null || echo unknown)
PAHO_VERSION=$("$PY" "$PAHO" --version)
PY_VERSION=$("$PY" -c 'import platform; print(platform.python_version())')

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=()
COUNT=0

# record NAME DESCRIPTION [server options...] -- client command...
record() {
    local name=$1 desc=$2
    shift 2
    local server_opts=()
    while [ "$1" != "--" ]; do server_opts+=("$1"); shift; done
    shift
    local cmd=("$@")
    local client
    case "${cmd[2]}" in
        mosquitto_pub|mosquitto_sub)
            client="${cmd[2]} $MOSQ_VERSION, Debian package mosquitto-clients $DEB_VERSION" ;;
        *) client="paho-mqtt $PAHO_VERSION (Python $PY_VERSION), CallbackAPIVersion.VERSION2" ;;
    esac
    local qcmd qserver
    qcmd=$(printf '%q ' "${cmd[@]}")
    qserver=$(printf '%q ' "${server_opts[@]}")
    local attempt
    for attempt in $(seq 1 $ATTEMPTS); do
        if python3 "$SERVER" --port "$PORT" --timeout 20 \
                --out "$WORK/$name.txt" \
                --comment "$name: $desc" \
                --comment "client: $client" \
                --comment "command: ${qcmd% }" \
                --comment "server: $SERVER --port $PORT ${qserver% }" \
                --comment "c2s = client to server (recorded), s2c = sent by the fake server" \
                --comment "regenerate: tests/tools/record_fixtures.sh" \
                "${server_opts[@]}" -- "${cmd[@]}" >/dev/null; then
            COUNT=$((COUNT + 1))
            echo "recorded $name"
            return 0
        fi
        echo "retrying $name (attempt $attempt failed)" >&2
        sleep 0.5
    done
    FAILED+=("$name")
}

H=(-h 127.0.0.1 -p "$PORT")
T="timeout 15"

# ------------------------------------------------------- mosquitto clients
for v in v31 v311 v5; do
    V=mqtt$v
    PUB=($T mosquitto_pub "${H[@]}" -V "$V")
    SUB=($T mosquitto_sub "${H[@]}" -V "$V")

    record "mosquitto_pub-$v-publish-qos0" "QoS 0 publish" \
        --expect CONNECT,PUBLISH,DISCONNECT -- \
        "${PUB[@]}" -i "mosqpub-$v" -q 0 -t test/qos0 -m hello

    record "mosquitto_pub-$v-publish-qos1-retain" "QoS 1 retained publish" \
        --expect CONNECT,PUBLISH,DISCONNECT -- \
        "${PUB[@]}" -i "mosqpub-$v" -q 1 -r -t test/retained -m "retained value"

    record "mosquitto_pub-$v-publish-qos2" "QoS 2 publish (PUBLISH/PUBREC/PUBREL/PUBCOMP)" \
        --expect CONNECT,PUBLISH,PUBREL,DISCONNECT -- \
        "${PUB[@]}" -i "mosqpub-$v" -q 2 -t test/qos2 -m "exactly once"

    record "mosquitto_pub-$v-connect-credentials" "CONNECT with username and password" \
        --expect CONNECT,PUBLISH,DISCONNECT -- \
        "${PUB[@]}" -i "mosqpub-$v" -u alice -P s3cret -q 1 -t test/auth -m secret-message

    record "mosquitto_pub-$v-connect-will" "CONNECT with a QoS 1 retained will, keepalive 30" \
        --expect CONNECT,PUBLISH,DISCONNECT -- \
        "${PUB[@]}" -i "mosqpub-$v" -k 30 --will-topic clients/mosq/status \
        --will-payload offline --will-qos 1 --will-retain -t test/will -m online

    record "mosquitto_sub-$v-subscribe" \
        "SUBSCRIBE QoS 2 to 3 filters (+ and #); server pushes QoS 0/1/2 PUBLISH; client PUBACK, PUBREC/PUBCOMP" \
        --publish 0 home/kitchen/temp 21.5 --publish 1 home/door open --publish 2 alerts fire \
        --expect CONNECT,SUBSCRIBE,PUBACK,PUBREC,PUBCOMP,DISCONNECT -- \
        "${SUB[@]}" -i "mosqsub-$v" -q 2 -t 'home/+/temp' -t 'home/#' -t alerts -C 3 -W 8

    record "mosquitto_sub-$v-persistent-unsubscribe" \
        "persistent session (-c -i), SUBSCRIBE QoS 1, then UNSUBSCRIBE twice (-U); exits via -W 1" \
        --ok-rc 27 --expect CONNECT,SUBSCRIBE,UNSUBSCRIBE,UNSUBSCRIBE,DISCONNECT -- \
        "${SUB[@]}" -c -i "mosqpersist-$v" -q 1 -t 'devices/#' -U old/topic -U 'old/#' -W 1
done

record "mosquitto_sub-v311-ping" "keepalive 5 s: PINGREQ/PINGRESP; exits via -W 7" \
    --ok-rc 27 --expect CONNECT,SUBSCRIBE,PINGREQ,DISCONNECT -- \
    $T mosquitto_sub "${H[@]}" -V mqttv311 -i mosqping-v311 -k 5 -t ping/test -W 7

# MQTT v5 properties (mosquitto -D)
PUB5=($T mosquitto_pub "${H[@]}" -V mqttv5)
SUB5=($T mosquitto_sub "${H[@]}" -V mqttv5)

record "mosquitto_pub-v5-publish-properties" "QoS 1 PUBLISH with v5 publish properties" \
    --expect CONNECT,PUBLISH,DISCONNECT -- \
    "${PUB5[@]}" -i mosqpub-v5 -q 1 -t test/props -m payload \
    -D publish user-property k1 v1 -D publish user-property k2 v2 \
    -D publish message-expiry-interval 60 -D publish content-type text/plain \
    -D publish response-topic resp/topic -D publish correlation-data corr-1 \
    -D publish payload-format-indicator 1

record "mosquitto_pub-v5-connect-properties" \
    "CONNECT with v5 connect properties and credentials, QoS 2 publish, DISCONNECT with properties" \
    --expect CONNECT,PUBLISH,PUBREL,DISCONNECT -- \
    "${PUB5[@]}" -i mosqpub-v5-props -u alice -P s3cret -q 2 -t test/connprops -m hi \
    -D connect session-expiry-interval 3600 -D connect receive-maximum 10 \
    -D connect maximum-packet-size 65536 -D connect topic-alias-maximum 5 \
    -D connect request-response-information 1 -D connect request-problem-information 0 \
    -D connect user-property ck cv \
    -D disconnect reason-string bye -D disconnect user-property dk dv

record "mosquitto_pub-v5-connect-will-properties" "CONNECT with a will carrying v5 will properties" \
    --expect CONNECT,PUBLISH,DISCONNECT -- \
    "${PUB5[@]}" -i mosqpub-v5-will --will-topic clients/mosq/status --will-payload offline \
    --will-qos 2 -D will will-delay-interval 10 -D will message-expiry-interval 300 \
    -D will content-type text/plain -D will payload-format-indicator 1 \
    -D will response-topic will/resp -D will correlation-data will-corr \
    -D will user-property wk wv -t test/will -m online

record "mosquitto_sub-v5-subscribe-properties" \
    "SUBSCRIBE with subscription identifier and user property, UNSUBSCRIBE with user property; server pushes a QoS 1 PUBLISH with a user property; exits via -W 2" \
    --publish 1 sensors/a/value 42 --publish-user-prop origin fake-server \
    --ok-rc 27 --expect CONNECT,SUBSCRIBE,PUBACK,DISCONNECT -- \
    "${SUB5[@]}" -i mosqsub-v5-props -q 1 -t 'sensors/#' -U 'old/#' \
    -D subscribe subscription-identifier 5 -D subscribe user-property sk sv \
    -D unsubscribe user-property uk uv -W 2

# ------------------------------------------------------------ paho-mqtt
PUSH=(--publish 1 home/kitchen/temp 21.5 --publish 2 alerts fire)
while read -r scenario versions; do
    for v in $versions; do
        opts=()
        expect=CONNECT,DISCONNECT
        case $scenario in
            subscribe) opts=("${PUSH[@]}")
                expect=CONNECT,SUBSCRIBE,PUBACK,PUBREC,PUBCOMP,UNSUBSCRIBE,DISCONNECT ;;
            subscribe-options) opts=("${PUSH[@]}" --publish-user-prop origin fake-server)
                expect=CONNECT,SUBSCRIBE,PUBACK,PUBREC,PUBCOMP,UNSUBSCRIBE,UNSUBSCRIBE,DISCONNECT ;;
            publish-topic-alias) opts=(--topic-alias-max 10)
                expect=CONNECT,PUBLISH,PUBLISH,PUBLISH,DISCONNECT ;;
            publish-qos012) expect=CONNECT,PUBLISH,PUBLISH,PUBLISH,PUBREL,PUBLISH,PUBLISH,DISCONNECT ;;
            publish-properties) expect=CONNECT,PUBLISH,PUBLISH,PUBLISH,PUBREL,DISCONNECT ;;
            ping) expect=CONNECT,PINGREQ,DISCONNECT ;;
        esac
        desc=$(sed -n "s/^# $scenario: //p" <<'EOF'
# connect-empty-clientid: CONNECT with a zero-length client id, clean session/start, keepalive 30
# connect-will: clean session/start off, keepalive 120, QoS 1 retained will (v5: with will properties)
# connect-username-only: CONNECT with a username and no password
# connect-properties: CONNECT with v5 connect properties, credentials and a will with will-delay-interval
# publish-qos012: PUBLISH QoS 0, 1, 2, a retained QoS 1 and an empty QoS 0 payload
# publish-properties: PUBLISH QoS 0/1/2 with user properties, message expiry, content type, payload format indicator, response topic, correlation data
# publish-topic-alias: server advertises Topic Alias Maximum 10; PUBLISH with topic + alias, then alias only (empty topic)
# subscribe: SUBSCRIBE QoS 0/1/2 filters with + and #, server pushes QoS 1 and QoS 2 PUBLISH, UNSUBSCRIBE
# subscribe-options: SUBSCRIBE with noLocal/retainAsPublished/retainHandling, subscription identifier, user property; UNSUBSCRIBE with and without properties
# ping: keepalive 1 s, one PINGREQ/PINGRESP
# disconnect-reason: DISCONNECT with reason code 0x04 and properties (session expiry, reason string, user property)
EOF
)
        record "paho-$v-$scenario" "$desc" "${opts[@]}" --expect "$expect" -- \
            $T "$PY" "$PAHO" "$v" "$scenario" "$PORT"
    done
done < <("$PY" "$PAHO" --list)

# ---------------------------------------------------------------- finish
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED to record: ${FAILED[*]} (fixtures left unchanged)" >&2
    exit 1
fi
python3 "$SERVER" --check "$WORK"
mkdir -p "$FIXTURES"
rm -f "$FIXTURES"/*.txt
cp "$WORK"/*.txt "$FIXTURES"/
echo "wrote $COUNT fixtures to $FIXTURES"

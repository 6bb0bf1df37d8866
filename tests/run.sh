#!/usr/bin/env bash
# Runs every ringmq test. Needs only a Rust toolchain and python3: anything else the tests
# use is installed here first, so this passes on a fresh Linux machine.
#
# RINGMQ_TEST_BROKER=mosquitto runs the black-box suites (tests/broker_*.rs and
# tests/python/) against Mosquitto instead of ringmq; tests of ringmq-only behaviour are
# then skipped (Rust: filtered out by name, `ringmq_only`; Python: the ringmq_only marker).
set -euo pipefail
cd "$(dirname "$0")/.."

broker="${RINGMQ_TEST_BROKER:-ringmq}"
case "$broker" in
    ringmq | mosquitto) ;;
    *) echo "RINGMQ_TEST_BROKER=$broker: expected ringmq or mosquitto" >&2; exit 2 ;;
esac

# The Python suite's environment in .venv: paho-mqtt 2.x, pytest, cryptography (test
# certificates for the TLS tests), selenium 4 (headless Chromium for the MQTT.js and
# dashboard tests) and prometheus_client (its parser reads the admin API's /metrics).
if ! .venv/bin/python -c 'import paho.mqtt, pytest, cryptography, selenium, prometheus_client' 2>/dev/null; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q 'paho-mqtt==2.*' pytest cryptography 'selenium==4.*' prometheus_client
fi

# MQTT.js's browser bundle for tests/python/test_browser_mqttjs.py: a pinned version from the
# npm registry, checked against its sha512, kept in .venv/mqttjs/ (skipped when present).
.venv/bin/python tests/tools/fetch_mqttjs.py

# Debian packages: the mosquitto clients (mosquitto_pub / mosquitto_sub), used by
# tests/broker_tls.rs and tests/broker_auth.rs, and Chromium with its WebDriver
# (chromium, chromedriver), used by the browser tests in tests/python. One apt-get update
# at most, for whatever is missing.
apt_packages=()
if ! command -v mosquitto_pub >/dev/null || ! command -v mosquitto_sub >/dev/null; then
    apt_packages+=(mosquitto-clients)
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_packages+=(chromium chromium-driver)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${apt_packages[@]}"
    else
        echo "tests/run.sh: missing commands: apt-get install ${apt_packages[*]}" >&2
        exit 1
    fi
fi

cargo build

# Unit, property, table, fixture and black-box tests of every workspace crate, plus the
# benches compiled and run once each in test mode (so they cannot rot).
if [ "$broker" = mosquitto ]; then
    # Benches take no test-name filters, so they run on their own.
    cargo test --workspace --lib --bins --tests --examples -- --skip ringmq_only
    cargo test --workspace --benches
else
    cargo test --workspace --all-targets
fi
cargo test --workspace --doc

# Real-client tests with Eclipse Paho, against the debug binary built above.
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
    /*) ;;
    *) target_dir="$PWD/$target_dir" ;;
esac
# The dashboard test leaves its screenshot in target/screenshots/dashboard.png.
RINGMQ_SCREENSHOT_DIR="${RINGMQ_SCREENSHOT_DIR:-$target_dir/screenshots}" \
    RINGMQ_BIN="${RINGMQ_BIN:-$target_dir/debug/ringmq}" .venv/bin/pytest -q -p no:cacheprovider tests/python

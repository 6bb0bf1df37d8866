"""Headless Chromium for the browser tests (test_browser_mqttjs.py, test_dashboard.py):
a WebDriver session with bounded waits, and a page that runs MQTT.js.

Chromium and chromedriver come from the Debian packages `chromium` and `chromium-driver`
(tests/run.sh installs them), MQTT.js's browser bundle from tests/tools/fetch_mqttjs.py
(cached in .venv/mqttjs/). Every call into the page that waits does so in JavaScript with
its own deadline, and WebDriver's script timeout bounds the call itself.
"""

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# How long one browser-side wait (connect, SUBACK, PUBACK, a message) may take.
BROWSER_WAIT = 10.0

MQTTJS = Path(os.environ.get("RINGMQ_MQTTJS") or REPO / ".venv" / "mqttjs" / "mqtt.min.js")


def _find(env, candidates):
    value = os.environ.get(env)
    if value:
        return value
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if path:
            return path
    raise AssertionError(
        f"{candidates[0]} not found (set {env}; tests/run.sh installs the Debian packages "
        "chromium and chromium-driver)"
    )


def start_chromium():
    """A headless Chromium under WebDriver; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _find("RINGMQ_CHROMIUM", ["chromium", "/usr/bin/chromium"])
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    service = Service(_find("RINGMQ_CHROMEDRIVER", ["chromedriver", "/usr/bin/chromedriver"]))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(BROWSER_WAIT + 5)
    driver.set_page_load_timeout(BROWSER_WAIT + 5)
    return driver


@pytest.fixture
def chromium():
    driver = start_chromium()
    yield driver
    driver.quit()


def run_async(driver, body, *args):
    """Runs `body`, the text of a JavaScript async function of `args`, in the page and
    returns what it returns (JSON data); a rejection becomes an AssertionError."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "const args = Array.prototype.slice.call(arguments, 0, arguments.length - 1);"
        f"(async function() {{ {body} }}).apply(null, args)"
        ".then(v => done({ok: v === undefined ? null : v}),"
        "      e => done({error: String(e && e.stack || e)}));"
    )
    result = driver.execute_async_script(script, *args)
    if result is None:
        raise AssertionError("browser script returned nothing")
    if "error" in result:
        raise AssertionError(f"in the browser: {result['error']}")
    return result["ok"]


def b64(data):
    return base64.b64encode(bytes(data)).decode()


def unb64(text):
    return base64.b64decode(text)


# The test page: records every WebSocket the page opens (the subprotocol the server chose,
# and the kind and size of every message each way), then loads MQTT.js and offers
# `harness`: promise-returning connect / subscribe / publish, the messages received, and
# waits that end by themselves after `timeoutMs`.
_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>ringmq MQTT.js test</title>
<script>
"use strict";
window.wsLog = [];
const NativeWebSocket = window.WebSocket;
class RecordingWebSocket extends NativeWebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    const rec = {url: String(url), offered: protocols === undefined ? [] : [].concat(protocols),
                 protocol: null, received: [], sent: []};
    this._rec = rec;
    window.wsLog.push(rec);
    this.addEventListener("open", () => { rec.protocol = this.protocol; });
    this.addEventListener("message", (e) => {
      const d = e.data;
      rec.received.push(typeof d === "string" ? {kind: "text", bytes: d.length}
        : {kind: "binary", bytes: d.byteLength !== undefined ? d.byteLength : d.size});
    });
  }
  send(data) {
    this._rec.sent.push(typeof data === "string" ? {kind: "text", bytes: data.length}
      : {kind: "binary", bytes: data.byteLength !== undefined ? data.byteLength : data.size});
    return super.send(data);
  }
}
window.WebSocket = RecordingWebSocket;
</script>
<script src="__MQTTJS__"></script>
<script>
"use strict";
function toB64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}
function fromB64(text) {
  return Uint8Array.from(atob(text), c => c.charCodeAt(0));
}
// MQTT.js properties of a received PUBLISH as JSON data (binary values in base64).
function plainProperties(p) {
  if (!p) return null;
  const out = {};
  for (const [k, v] of Object.entries(p)) {
    if (k === "userProperties") {
      // As [name, value] pairs in the order MQTT.js read them (a repeated name's values
      // in a row): WebDriver would not keep an object's key order.
      out[k] = [];
      for (const [name, value] of Object.entries(v)) {
        for (const one of [].concat(value)) out[k].push([name, one]);
      }
    } else {
      out[k] = (v instanceof Uint8Array) ? {b64: toB64(v)} : v;
    }
  }
  return out;
}
// Python passes binary property values as {b64: "..."}, and user properties as a list of
// [name, value] pairs (WebDriver does not keep the order of an object's keys); MQTT.js
// takes an object whose value is an array for a repeated name.
function mqttProperties(p) {
  if (!p) return undefined;
  const out = {};
  for (const [k, v] of Object.entries(p)) {
    if (k === "userProperties") {
      const user = {};
      for (const [name, value] of v) {
        user[name] = name in user ? [].concat(user[name], value) : value;
      }
      out[k] = user;
    } else {
      out[k] = (v && typeof v === "object" && "b64" in v) ? fromB64(v.b64) : v;
    }
  }
  return out;
}
function withDeadline(promise, ms, what) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(what + ": nothing within " + ms + " ms")), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
window.harness = {
  client: null,
  messages: [],
  events: [],
  connect(url, options, ms) {
    return withDeadline(new Promise((resolve, reject) => {
      const client = mqtt.connect(url, Object.assign({reconnectPeriod: 0, connectTimeout: ms}, options));
      harness.client = client;
      client.on("message", (topic, payload, packet) => {
        harness.messages.push({topic: topic, payload: toB64(payload), qos: packet.qos,
                               retain: packet.retain, properties: plainProperties(packet.properties)});
      });
      client.on("close", () => harness.events.push("close"));
      client.on("error", (e) => { harness.events.push("error " + e); reject(e); });
      client.on("connect", (connack) => {
        harness.events.push("connect");
        resolve({sessionPresent: connack.sessionPresent, reasonCode: connack.reasonCode === undefined ? null : connack.reasonCode,
                 properties: plainProperties(connack.properties)});
      });
    }), ms, "CONNACK");
  },
  subscribe(filter, qos, ms) {
    return withDeadline(new Promise((resolve, reject) => {
      harness.client.subscribe(filter, {qos: qos}, (err, granted) => err ? reject(err) : resolve(granted.map(g => g.qos)));
    }), ms, "SUBACK for " + filter);
  },
  publish(topic, payloadB64, options, ms) {
    const opts = Object.assign({}, options, {properties: mqttProperties(options.properties)});
    if (opts.properties === undefined) delete opts.properties;
    return withDeadline(new Promise((resolve, reject) => {
      harness.client.publish(topic, fromB64(payloadB64), opts, (err) => err ? reject(err) : resolve(null));
    }), ms, "completion of PUBLISH " + topic + " QoS " + opts.qos);
  },
  // Resolves with every message received once there are at least n; rejects after ms.
  waitMessages(n, ms) {
    return withDeadline(new Promise((resolve) => {
      const check = () => harness.messages.length >= n ? resolve(harness.messages) : setTimeout(check, 10);
      check();
    }), ms, n + " messages (have " + harness.messages.length + ")");
  },
  end(ms) {
    return withDeadline(new Promise((resolve) => harness.client.end(false, {}, () => resolve(null))), ms, "DISCONNECT");
  },
};
</script></head>
<body><p>ringmq MQTT.js test page</p></body></html>
"""


def write_mqttjs_page(directory):
    """Writes the MQTT.js test page into `directory`; returns its file:// URL."""
    if not MQTTJS.is_file():
        raise AssertionError(
            f"{MQTTJS} missing: run `python3 tests/tools/fetch_mqttjs.py` (tests/run.sh does)"
        )
    page = Path(directory) / "mqttjs.html"
    page.write_text(_PAGE.replace("__MQTTJS__", MQTTJS.resolve().as_uri()), encoding="utf-8")
    return page.resolve().as_uri()


class BrowserClient:
    """MQTT.js in a page of `driver`: each method waits, bounded, for its acknowledgement."""

    def __init__(self, driver, page_url, ws_url, client_id, version, **options):
        self.driver = driver
        driver.get(page_url)
        assert run_async(driver, "return typeof mqtt") == "object", "MQTT.js did not load"
        options = {"protocolVersion": version, "clientId": client_id, "clean": True, **options}
        self.connack = run_async(
            driver,
            "return await harness.connect(args[0], args[1], args[2]);",
            ws_url,
            options,
            int(BROWSER_WAIT * 1000),
        )

    def subscribe(self, topic_filter, qos):
        granted = run_async(
            self.driver,
            "return await harness.subscribe(args[0], args[1], args[2]);",
            topic_filter,
            qos,
            int(BROWSER_WAIT * 1000),
        )
        assert granted == [qos], f"SUBACK for {topic_filter}: granted {granted}, expected [{qos}]"

    def publish(self, topic, payload, qos, retain=False, properties=None):
        """Publishes and waits until MQTT.js reports the QoS flow complete."""
        options = {"qos": qos, "retain": retain}
        if properties is not None:
            options["properties"] = properties
        run_async(
            self.driver,
            "return await harness.publish(args[0], args[1], args[2], args[3]);",
            topic,
            b64(payload),
            options,
            int(BROWSER_WAIT * 1000),
        )

    def wait_messages(self, n):
        """The first `n` messages received (waits for them; fails after BROWSER_WAIT)."""
        got = run_async(
            self.driver,
            "return await harness.waitMessages(args[0], args[1]);",
            n,
            int(BROWSER_WAIT * 1000),
        )
        for m in got:
            m["payload"] = unb64(m["payload"])
        return got[:n]

    def messages_now(self):
        got = self.driver.execute_script("return harness.messages")
        for m in got:
            m["payload"] = unb64(m["payload"])
        return got

    def websockets(self):
        """What the page's WebSockets recorded: url, offered, protocol, received, sent."""
        return self.driver.execute_script("return window.wsLog")

    def end(self):
        run_async(self.driver, "return await harness.end(args[0]);", int(BROWSER_WAIT * 1000))


def dump(value):
    return json.dumps(value, indent=1)[:2000]

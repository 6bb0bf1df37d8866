"""The live dashboard (`GET /` of the admin listener) in headless Chromium, as an operator
watches it: it refreshes itself every second with the bearer token it took from the URL
fragment, the numbers it shows follow /api/v1/stats, and its charts are drawn. Saves a
screenshot ($RINGMQ_SCREENSHOT_DIR/dashboard.png, else in the test's tmp_path). ringmq only.
"""

import os
import re
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from admin import admin_broker  # noqa: F401
from browser import BROWSER_WAIT, chromium, run_async  # noqa: F401
from conftest import Peer

pytestmark = pytest.mark.ringmq_only("the admin dashboard is ringmq's")

TOKEN = "dash-s3cret"
CHARTS = ["chart-throughput", "chart-connections", "chart-latency", "chart-shards"]

# data-metric name -> where /api/v1/stats has it; counters only ever grow.
COUNTERS = {
    "publish_received_total": ("publish", "received", "total"),
    "publish_sent_total": ("publish", "sent", "total"),
}
GAUGES = {
    "connections": ("connections", "current"),
    "sessions": ("connections", "sessions"),
    "subscriptions": ("subscriptions",),
    "retained": ("retained",),
    "inflight": ("inflight",),
    "queued": ("queued",),
}
OTHERS = ["uptime_secs", "msgs_in_per_sec", "msgs_out_per_sec", "flush_p99_us"]

# What the page shows: every data-metric, per-shard figure and the refresh count at once.
READ_PAGE = """
const out = {updated: document.body.getAttribute("data-updated"), metrics: {},
             busy: {}, shard_connections: {}};
for (const el of document.querySelectorAll("[data-metric]")) {
  out.metrics[el.getAttribute("data-metric")] = el.textContent;
}
for (const el of document.querySelectorAll("[data-shard-busy]")) {
  out.busy[el.getAttribute("data-shard-busy")] = el.textContent;
}
for (const el of document.querySelectorAll("[data-shard-connections]")) {
  out.shard_connections[el.getAttribute("data-shard-connections")] = el.textContent;
}
return out;
"""

# For each chart id: whether the canvas exists, its size, and how many of its pixels differ
# from a blank canvas (any context type: compared through toDataURL and a 2D copy).
CANVAS_INK = """
const out = {};
for (const id of args[0]) {
  const c = document.getElementById(id);
  if (!c || c.tagName !== "CANVAS") { out[id] = {missing: true}; continue; }
  const copy = document.createElement("canvas");
  copy.width = c.width; copy.height = c.height;
  const ctx = copy.getContext("2d");
  if (c.width === 0 || c.height === 0) { out[id] = {width: c.width, height: c.height, ink: 0}; continue; }
  const img = new Image();
  await new Promise((resolve, reject) => { img.onload = resolve; img.onerror = reject; img.src = c.toDataURL(); });
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] !== 0) {
      ink++;
      if (colours.size < 64) colours.add(data[i] + "," + data[i + 1] + "," + data[i + 2]);
    }
  }
  out[id] = {width: c.width, height: c.height, ink: ink, colours: colours.size};
}
return out;
"""


def number(text, what):
    """A number as the page shows it: digits with optional thousands separators, a
    decimal point, a trailing % or unit; fails on anything else."""
    cleaned = text.strip().replace(",", "").replace("\u202f", "").replace("\u00a0", "")
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*(%|[a-zA-Zµ/]*)?", cleaned)
    assert match, f"{what}: {text!r} is not a number"
    return float(match.group(1))


def dig(stats, path):
    value = stats
    for key in path:
        value = value[key]
    return value


def read_page(driver, parse=True):
    page = driver.execute_script(READ_PAGE)
    assert page["updated"] is not None, "<body> has no data-updated"
    page["updated"] = int(page["updated"])
    if not parse:
        return page
    missing = [n for n in list(COUNTERS) + list(GAUGES) + OTHERS if n not in page["metrics"]]
    assert not missing, f"no data-metric element for {missing}; the page shows {page['metrics']}"
    page["values"] = {n: number(t, n) for n, t in page["metrics"].items()}
    return page


def wait_refreshes(driver, after, count=1, timeout=BROWSER_WAIT):
    """Waits (bounded) until data-updated is at least `after + count`; returns the page."""
    deadline = time.monotonic() + timeout
    while True:
        page = read_page(driver, parse=False)
        if page["updated"] >= after + count:
            return read_page(driver)
        assert time.monotonic() < deadline, (
            f"data-updated still {page['updated']} after {timeout} s (waiting for "
            f"{after + count}); the page shows {page['metrics']}"
        )
        time.sleep(0.05)


def screenshot_path(tmp_path):
    directory = os.environ.get("RINGMQ_SCREENSHOT_DIR")
    path = Path(directory) if directory else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path / "dashboard.png"


@pytest.mark.admin(shards=2, token=TOKEN)
def test_dashboard_follows_the_broker(admin_broker, chromium, tmp_path):  # noqa: F811
    """Opens http://ADMIN/#token=... with the broker idle, then runs traffic (a publisher at
    QoS 1 and a subscriber) while the page refreshes: data-updated advances, the counters
    shown never exceed /api/v1/stats read right after, a message rate above zero shows
    while traffic flows; once it stops, counters and gauges shown equal the API's, each
    shard's busy percentage and connections are shown, and every chart canvas has been
    drawn on."""
    admin = admin_broker.admin
    chromium.get(f"{admin.url}/#token={TOKEN}")
    first = wait_refreshes(chromium, 0)
    idle = admin.stats()
    for name, path in COUNTERS.items():
        assert first["values"][name] <= dig(idle, path), (name, first["metrics"], idle)

    sub = Peer(admin_broker, "dash-sub", mqtt.MQTTv5)
    pub = Peer(admin_broker, "dash-pub", mqtt.MQTTv311)
    stop = threading.Event()
    published = []
    errors = []

    def traffic():
        try:
            i = 0
            while not stop.is_set() and i < 2000:
                pub.publish(f"dash/{i % 7}", b"x" * (i % 300), 1)
                published.append(i)
                i += 1
                time.sleep(0.005)
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    try:
        sub.subscribe("dash/#", 1)
        pub.publish("dash/retained", b"kept", 0, retain=True)
        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        # While the traffic flows: two refreshes, each compared with the API right after.
        seen_rate = 0.0
        page = first
        deadline = time.monotonic() + 2 * BROWSER_WAIT
        refreshes = 0
        while refreshes < 2 or seen_rate == 0:
            assert time.monotonic() < deadline, (
                f"no message rate above zero shown within {2 * BROWSER_WAIT} s: {page['metrics']}"
            )
            page = wait_refreshes(chromium, page["updated"])
            api = admin.stats()
            refreshes += 1
            for name, path in COUNTERS.items():
                assert page["values"][name] <= dig(api, path), (name, page["metrics"], api)
            seen_rate = max(seen_rate, page["values"]["msgs_in_per_sec"])
        assert not errors, errors
        stop.set()
        worker.join(timeout=BROWSER_WAIT)
        assert not worker.is_alive(), "publisher thread did not stop"
        assert not errors, errors
        assert len(published) > 0

        # Traffic stopped: once every message is through (nothing in flight or queued), the
        # next refresh shows what the API says.
        def settled():
            api = admin.stats()
            if api["inflight"] or api["queued"]:
                return None
            return api

        deadline = time.monotonic() + BROWSER_WAIT
        while settled() is None:
            assert time.monotonic() < deadline, f"not settled: {admin.stats()}"
            time.sleep(0.05)
        # Two refreshes that began after that.
        page = wait_refreshes(chromium, read_page(chromium, parse=False)["updated"], 2)
        api = admin.stats()
        for name, path in {**COUNTERS, **GAUGES}.items():
            assert page["values"][name] == dig(api, path), (name, page["metrics"], api)
        assert api["publish"]["received"]["total"] == len(published) + 1
        assert api["connections"]["current"] == 2 and page["values"]["connections"] == 2
        assert page["values"]["retained"] == 1
        assert 0 <= api["uptime_secs"] - page["values"]["uptime_secs"] <= 3, (
            page["metrics"]["uptime_secs"],
            api["uptime_secs"],
        )
        assert page["values"]["flush_p99_us"] >= 0
        assert page["values"]["msgs_out_per_sec"] >= 0

        # Per shard: busy in percent, connections as the API counts them.
        shards = {str(s["shard"]): s for s in api["per_shard"]}
        assert sorted(page["busy"]) == sorted(shards), (page["busy"], shards)
        assert sorted(page["shard_connections"]) == sorted(shards), page["shard_connections"]
        for shard, s in shards.items():
            busy = number(page["busy"][shard], f"shard {shard} busy")
            assert 0 <= busy <= 100, f"shard {shard} busy {page['busy'][shard]!r}"
            shown = number(page["shard_connections"][shard], f"shard {shard} connections")
            assert shown == s["connections"], (shard, page["shard_connections"], s)

        ink = run_async(chromium, CANVAS_INK, CHARTS)
        for chart in CHARTS:
            got = ink[chart]
            assert not got.get("missing"), f"no <canvas id={chart}>"
            assert got["width"] > 0 and got["height"] > 0, f"{chart}: {got}"
            assert got["ink"] > 0, f"{chart} is blank: {got}"

        path = screenshot_path(tmp_path)
        assert chromium.save_screenshot(str(path)), f"screenshot to {path} failed"
        print(f"dashboard screenshot: {path}")
    finally:
        stop.set()
        sub.close()
        pub.close()


@pytest.mark.admin(shards=1, token=TOKEN)
def test_dashboard_without_the_token_does_not_update(admin_broker, chromium):  # noqa: F811
    """Opened without `#token=` (or with a wrong one) on a broker that has a token, the page
    loads but gets 401 from the API: data-updated never advances past 0. With the token it
    does (the positive case, so the negative one is not just a slow page)."""
    admin = admin_broker.admin
    for url in (f"{admin.url}/", f"{admin.url}/#token=wrong"):
        chromium.get(url)
        # Give it at least two refresh periods' worth of chances, bounded.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            updated = chromium.execute_script(
                "return document.body.getAttribute('data-updated')"
            )
            assert updated in (None, "0", ""), f"{url}: data-updated {updated} without the token"
            time.sleep(0.1)
    # A fresh load (a change of the fragment alone would not reload the page).
    chromium.get("about:blank")
    chromium.get(f"{admin.url}/#token={TOKEN}")
    wait_refreshes(chromium, 0)

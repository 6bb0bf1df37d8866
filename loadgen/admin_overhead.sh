#!/usr/bin/env bash
# What scraping the admin API costs the data path: ringmq-loadgen `pairs` (QoS 1, closed
# loop) against one broker, alternating runs without and with a scraper that fetches
# /metrics, /api/v1/stats and /api/v1/clients?limit=1000 ten times a second. Prints each
# run's delivered msgs/s and the medians, and the scrape latencies.
#
#   loadgen/admin_overhead.sh [ROUNDS]      (default 3; needs curl, python3 and a release build:
#                                            cargo build --release --workspace)
#
# The broker gets CPU 0 (one shard), the loadgen CPU 1: on a 2-CPU machine the scraper
# competes with both, as a real Prometheus on the same host would.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
bin=target/release
work="$(mktemp -d)"
port=19831
admin=19081
"$bin/ringmq" --listen "127.0.0.1:$port" --data-dir "$work/data" --cores 0 \
    --admin-listen "$admin" --log-level warn 2>"$work/broker.log" &
broker=$!
trap 'kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    curl -sf "127.0.0.1:$admin/healthz" >/dev/null && break
    sleep 0.1
done

run() {
    "$bin/ringmq-loadgen" pairs --port "$port" --clients 16 --qos 1 --warmup 1 \
        --duration 5 --cpus 1 --json --no-progress 2>/dev/null |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["delivery"]["delivered_per_s"]))'
}

# One keep-alive connection, as Prometheus keeps one: no process per request.
cat >"$work/scrape.py" <<'PY'
import http.client, sys, time
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
with open(sys.argv[2], "a") as out:
    while True:
        for path in ("/metrics", "/api/v1/stats", "/api/v1/clients?limit=1000"):
            t = time.perf_counter()
            conn.request("GET", path)
            conn.getresponse().read()
            out.write(f"{time.perf_counter() - t}\n")
            out.flush()
        time.sleep(0.1)
PY

without=()
with=()
for r in $(seq "$rounds"); do
    without+=("$(run)")
    python3 "$work/scrape.py" "$admin" "$work/scrapes" &
    scraper=$!
    with+=("$(run)")
    kill "$scraper"
    wait "$scraper" 2>/dev/null || true
    echo "round $r: without ${without[-1]} msgs/s, with scraping ${with[-1]} msgs/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m0="$(median "${without[@]}")"
m1="$(median "${with[@]}")"
echo "median without: $m0 msgs/s; with scraping: $m1 msgs/s; ratio $(python3 -c "print(round($m1/$m0, 3))")"
python3 - "$work/scrapes" <<'PY'
import sys
t = sorted(float(x) * 1000 for x in open(sys.argv[1]) if x.strip())
q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
print(f"scrapes: {len(t)}, latency ms p50 {q(0.5):.2f}, p99 {q(0.99):.2f}, max {t[-1]:.2f}")
PY

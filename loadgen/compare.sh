#!/usr/bin/env bash
# Side-by-side comparison of ringmq and Mosquitto with ringmq-loadgen.
#
# Both brokers run on the same CPU(s) (BROKER_CPUS, default the last CPU), the load
# generator on others (LOADGEN_CPUS, default CPU 0), persistence off, no limits that cap
# throughput. Each scenario runs against each broker in turn, alternating which goes first,
# ROUNDS times (default 3); the table gives medians and the ratio ringmq / Mosquitto.
#
#   loadgen/compare.sh            # prints a markdown table; raw JSON, results.md and
#                                 # chart.svg in $OUT (default target/compare/<date>)
#   ROUNDS=1 DURATION=3 loadgen/compare.sh   # quicker
#   ONLY=idle-15k loadgen/compare.sh         # one scenario
#
# Installs Mosquitto (Debian package) if it is missing. Linux only; needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
NCPU=$(nproc)
BROKER_CPUS=${BROKER_CPUS:-$((NCPU - 1))}
LOADGEN_CPUS=${LOADGEN_CPUS:-0}
OUT=${OUT:-target/compare/$(date -u +%Y%m%dT%H%M%SZ)}
RINGMQ_PORT=${RINGMQ_PORT:-21883}
MOSQ_PORT=${MOSQ_PORT:-21884}
mkdir -p "$OUT"

if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "installing mosquitto" >&2
    apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
cargo build --release -q -p ringmq -p ringmq-loadgen
LOADGEN=target/release/ringmq-loadgen
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cat > "$OUT/mosquitto.conf" <<CONF
listener $MOSQ_PORT 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages 0
set_tcp_nodelay true
CONF
cores=$(echo "$BROKER_CPUS" | tr ' ' ',')
RINGMQ_PID="" MOSQ_PID=""
stop_brokers() {
    [ -n "$RINGMQ_PID" ] && kill "$RINGMQ_PID" 2>/dev/null
    [ -n "$MOSQ_PID" ] && kill "$MOSQ_PID" 2>/dev/null
    wait 2>/dev/null || true
}
# Fresh processes: memory figures are only fair on brokers that have not grown (and kept)
# memory in earlier scenarios.
start_brokers() {
    stop_brokers
    taskset -c "$cores" target/release/ringmq --listen "127.0.0.1:$RINGMQ_PORT" \
        --data-dir "$OUT/ringmq-data" --cores "$cores" --log-level warn 2>> "$OUT/ringmq.log" &
    RINGMQ_PID=$!
    taskset -c "$cores" "$MOSQUITTO" -c "$OUT/mosquitto.conf" 2>> "$OUT/mosquitto.log" &
    MOSQ_PID=$!
    sleep 1
}
trap stop_brokers EXIT
start_brokers

# name | loadgen arguments (the same for both brokers)
SCENARIOS=(
    "pairs-qos0-64B-16|pairs --clients 16 --qos 0 --payload 64"
    "pairs-qos1-64B-16|pairs --clients 16 --qos 1 --payload 64 --inflight 20"
    "fanout-qos0-1to100|fan-out --subscribers 100 --qos 0 --payload 64"
    "fanin-qos1-32to1|fan-in --publishers 32 --subscribers 1 --qos 1 --payload 64 --inflight 20"
    "latency-qos0-20k|pairs --clients 16 --qos 0 --payload 64 --rate 1250"
    "idle-15k|idle --clients 15000"
)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for round in $(seq 1 "$ROUNDS"); do
    for entry in "${SCENARIOS[@]}"; do
        name=${entry%%|*}
        args=${entry#*|}
        if [ -n "${ONLY:-}" ] && [ "$name" != "$ONLY" ]; then continue; fi
        case "$name" in idle-*) start_brokers;; esac
        order="ringmq mosquitto"
        [ $((round % 2)) -eq 0 ] && order="mosquitto ringmq"
        for broker in $order; do
            if [ "$broker" = ringmq ]; then port=$RINGMQ_PORT pid=$RINGMQ_PID; else port=$MOSQ_PORT pid=$MOSQ_PID; fi
            extra=""
            case "$name" in idle-*) extra="--broker-pid $pid";; esac
            before=$(cpu_ticks "$pid")
            # shellcheck disable=SC2086
            taskset -c "$LOADGEN_CPUS" "$LOADGEN" $args $extra --port "$port" \
                --duration "$DURATION" --warmup "$WARMUP" --json --no-progress \
                > "$OUT/$name.$broker.$round.json" 2> "$OUT/$name.$broker.$round.log" || true
            after=$(cpu_ticks "$pid")
            echo "$((after - before))" > "$OUT/$name.$broker.$round.cpu"
            echo "round $round $name $broker done" >&2
            sleep 1
        done
    done
done

python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys, pathlib
out, rounds, hz = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
names = sorted({p.name.split(".")[0] for p in out.glob("*.json")})
def load(name, broker):
    runs = []
    for r in range(1, rounds + 1):
        try:
            d = json.loads((out / f"{name}.{broker}.{r}.json").read_text())
        except Exception:
            continue
        d["_cpu_s"] = int((out / f"{name}.{broker}.{r}.cpu").read_text()) / hz
        runs.append(d)
    return runs
def med(runs, f):
    vals = [v for v in (f(r) for r in runs) if v is not None]
    return statistics.median(vals) if vals else None
rows = []
for name in names:
    R, M = load(name, "ringmq"), load(name, "mosquitto")
    if name.startswith("idle"):
        f = lambda d: d["idle"]["broker"]["rss_per_connection_bytes"] * 10000 / 2**20
        metrics = [("broker RSS per 10k idle connections (MiB)", f, False)]
    else:
        dl = lambda d: d["delivery"]["delivered_per_s"]
        metrics = [
            ("delivered msgs/s", dl, True),
            ("latency p50 (ms)", lambda d: d["delivery"]["latency"]["p50_us"] / 1e3, False),
            ("latency p99 (ms)", lambda d: d["delivery"]["latency"]["p99_us"] / 1e3, False),
            ("lost", lambda d: d["delivery"]["lost"], False),
            ("broker CPU s per 1M delivered", lambda d: d["_cpu_s"] / max(d["delivery"]["delivered"], 1) * 1e6, False),
        ]
    for label, f, _ in metrics:
        r, m = med(R, f), med(M, f)
        ratio = f"{r / m:.2f}" if r is not None and m else "-"
        fmt = lambda v: "-" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}")
        rows.append(f"| {name} | {label} | {fmt(r)} | {fmt(m)} | {ratio} |")
table = "| scenario | figure | ringmq | Mosquitto | ratio |\n|---|---|---:|---:|---:|\n" + "\n".join(rows)
(out / "results.md").write_text(table + "\n")
print(table)
PY
target/release/ringmq-compare-chart "$OUT" "$OUT/chart.svg"
echo "raw results: $OUT; table: $OUT/results.md; chart: $OUT/chart.svg" >&2

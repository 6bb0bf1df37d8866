#!/usr/bin/env bash
# ringmq's durability, measured with ringmq-loadgen: what "acknowledged = durable" costs.
#
#   a. QoS 1 fan-in (32 publishers -> 1 subscriber, 64-byte payloads, closed loop, window
#      64) into a persistent subscriber at fsync = always / interval (10 ms) / never, and
#      the same into a clean subscriber (never touches disk): acknowledged msgs/s,
#      publish-to-PUBACK p50/p99, deliveries, loss, broker CPU.
#   b. `persistent`: offline sessions accumulate messages, then reconnect and drain, at the
#      three fsync modes: publish rate into the offline queues, drain rate.
#   c. Recovery: one offline session accumulates ~1 GB of log (1 M messages of 1 KiB), the
#      broker's memory is read, it is killed with SIGKILL and restarted (3 times with the
#      page cache warm, once after evicting the log from the page cache): the shards'
#      `recovered ... elapsed_ms=` lines and the time from exec until the port accepts;
#      then the session must be present, its first messages arrive in order (raw-socket
#      check), and the whole queue drains with no loss (`persistent --resume`).
#
# The broker runs pinned to BROKER_CPU (default the last CPU), one shard; the load generator
# pinned to LOADGEN_CPU (default 0). Every run of (a) and (b) starts a fresh broker on an
# empty data directory under DATA_ROOT, which must be on a real disk (not tmpfs). (a) and
# (b) run ROUNDS times (default 3); the tables give medians and every run's figure.
#
#   loadgen/durability.sh                      # ~3 minutes; writes loadgen/results/<date>-durability.md
#   ROUNDS=1 DURATION=2 REC_MESSAGES=100000 loadgen/durability.sh   # quick check
#   REPORT_ONLY=target/durability/<time> loadgen/durability.sh      # report from raw results
#
# Raw JSON and broker logs: $OUT (default target/durability/<time>). Linux only; needs
# python3 and taskset. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
NCPU=$(nproc)
BROKER_CPU=${BROKER_CPU:-$((NCPU - 1))}
LOADGEN_CPU=${LOADGEN_CPU:-0}
PORT=${PORT:-21993}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-target/durability/$STAMP}
RESULT=${RESULT:-loadgen/results/$(date -u +%Y-%m-%d)-durability.md}
DATA_ROOT=${DATA_ROOT:-/var/tmp}
PERSIST_SESSIONS=${PERSIST_SESSIONS:-4}
PERSIST_MESSAGES=${PERSIST_MESSAGES:-200000}
REC_MESSAGES=${REC_MESSAGES:-1000000}
REC_PAYLOAD=${REC_PAYLOAD:-1024}
REC_FSYNC=${REC_FSYNC:-always}
REC_RESTARTS=${REC_RESTARTS:-3}
if [ -n "${REPORT_ONLY:-}" ]; then
    OUT=$REPORT_ONLY
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

BROKER_PID=""
stop_broker() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=""
    fi
}
cleanup() {
    stop_broker
    rm -rf "$DATA"
}

# Milliseconds from $1 (date +%s.%N) until 127.0.0.1:$PORT accepts, polling every 2 ms.
wait_port() {
    python3 - "$1" "$PORT" "${2:-60}" <<'PY'
import socket, sys, time
t0, port, limit = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        print(f"{(time.time() - t0) * 1000:.0f}")
        break
    except OSError:
        if time.time() - t0 > limit:
            sys.exit("the broker did not accept connections within %.0f s" % limit)
        time.sleep(0.002)
PY
}

# start_broker NAME FSYNC [extra [storage] lines]: a fresh broker on $DATA/NAME (kept if it
# exists: a restart). Sets BROKER_PID and ACCEPT_MS.
start_broker() {
    local name=$1 fsync=$2 extra=${3:-}
    cat > "$OUT/$name.toml" <<CONF
[runtime]
cores = [$BROKER_CPU]
[[listener]]
bind = "127.0.0.1:$PORT"
[storage]
data_dir = "$DATA/$name"
fsync = "$fsync"
interval_ms = 10
$extra
[log]
level = "info"
CONF
    local t0
    t0=$(date +%s.%N)
    taskset -c "$BROKER_CPU" "$BROKER" --config "$OUT/$name.toml" >> "$OUT/$name.log" 2>&1 &
    BROKER_PID=$!
    ACCEPT_MS=$(wait_port "$t0")
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# lg NAME ARGS...: one loadgen run, pinned; JSON in $OUT/NAME.json, the broker's CPU ticks
# in $OUT/NAME.cpu, the 1-minute load average before it in $OUT/NAME.load.
lg() {
    local name=$1
    shift
    loadavg > "$OUT/$name.load"
    local before after
    before=$(cpu_ticks "$BROKER_PID")
    taskset -c "$LOADGEN_CPU" "$LOADGEN" "$@" --port "$PORT" --cpus "$LOADGEN_CPU" \
        --json --no-progress > "$OUT/$name.json" 2> "$OUT/$name.err" || true
    after=$(cpu_ticks "$BROKER_PID")
    echo "$((after - before))" > "$OUT/$name.cpu"
    echo "$(date -u +%T) $name done" >&2
}

measure() {
    fstype=$(df --output=fstype "$DATA_ROOT" | tail -1 | tr -d ' ')
    case "$fstype" in
        tmpfs | ramfs)
            echo "DATA_ROOT=$DATA_ROOT is on $fstype: choose a directory on a real disk" >&2
            exit 2
            ;;
    esac
    DATA=$(mktemp -d "$DATA_ROOT/ringmq-durability.XXXXXX")

    cargo build --release -q -p ringmq -p ringmq-loadgen
    BIN=${CARGO_TARGET_DIR:-target}/release
    BROKER=$BIN/ringmq
    LOADGEN=$BIN/ringmq-loadgen
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

    trap cleanup EXIT

    {
        echo "start $(date -u +%FT%TZ)"
        echo "uptime: $(uptime)"
        echo "kernel: $(uname -r); cpus: $NCPU; $(grep -m1 'model name' /proc/cpuinfo)"
        echo "data: $DATA on $(df --output=source,fstype "$DATA" | tail -1)"
        echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
        echo "busiest processes at the start:"
        top -bn1 -w 160 | sed -n '7,14p'
    } > "$OUT/machine.txt"

    # ---- a. QoS 1 fan-in ---------------------------------------------------------------------
    FANIN=(fan-in --publishers 32 --subscribers 1 --qos 1 --payload 64 --inflight 64
        --duration "$DURATION" --warmup "$WARMUP" --drain-timeout 60)
    # A persistent subscriber's queue is on disk and not limited by pushback: give it room
    # for the whole run, so that nothing acknowledged is dropped for lack of quota.
    ROOMY=$'session_queue_bytes_max = 8589934592\ndisk_quota_bytes = 17179869184'
    echo "a. fan-in, load $(loadavg)" >> "$OUT/machine.txt"
    for round in $(seq 1 "$ROUNDS"); do
        for mode in always interval never clean; do
            if [ "$mode" = clean ]; then
                start_broker "fanin-clean-$round" always
                lg "fanin-clean.$round" "${FANIN[@]}"
            else
                start_broker "fanin-$mode-$round" "$mode" "$ROOMY"
                lg "fanin-$mode.$round" "${FANIN[@]}" --persistent-subscribers
            fi
            stop_broker
            rm -rf "${DATA:?}"/fanin-*
        done
    done

    # ---- b. persistent: offline queues, then drain ------------------------------------------
    echo "b. persistent, load $(loadavg)" >> "$OUT/machine.txt"
    for round in $(seq 1 "$ROUNDS"); do
        for mode in always interval never; do
            start_broker "persist-$mode-$round" "$mode"
            lg "persist-$mode.$round" persistent --clients "$PERSIST_SESSIONS" \
                --messages "$PERSIST_MESSAGES" --payload 64 --duration 120 --drain-timeout 60
            stop_broker
            rm -rf "${DATA:?}"/persist-*
        done
    done

    # ---- c. recovery of a large log ---------------------------------------------------------
    echo "c. recovery, load $(loadavg)" >> "$OUT/machine.txt"
    REC_STORAGE=$'segment_bytes = 268435456\nsession_queue_bytes_max = 8589934592'
    REC_STORAGE+=$'\nsession_queue_messages_max = 100000000\ndisk_quota_bytes = 17179869184'
    start_broker recovery "$REC_FSYNC" "$REC_STORAGE"
    lg recovery-fill persistent --clients 1 --messages "$REC_MESSAGES" --payload "$REC_PAYLOAD" \
        --inflight 1000 --client-prefix durrec- --keep-offline --duration 300 --drain-timeout 60
    grep -E '^(VmRSS|RssAnon|RssFile|RssShmem)' "/proc/$BROKER_PID/status" > "$OUT/recovery-rss.txt"
    du -sb "$DATA/recovery" | cut -f1 > "$OUT/recovery-du.txt"
    : > "$OUT/recovery-restarts.txt"
    for i in $(seq 0 "$REC_RESTARTS"); do
        kill -9 "$BROKER_PID"
        wait "$BROKER_PID" 2>/dev/null || true
        BROKER_PID=""
        cache=warm
        if [ "$i" -eq "$REC_RESTARTS" ]; then
            # The last restart reads the log from the disk: write back and evict its pages.
            cache=cold
            python3 - "$DATA/recovery" <<'PY'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        fd = os.open(os.path.join(root, f), os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
PY
        fi
        lines_before=$(grep -c recovered "$OUT/recovery.log" || true)
        start_broker recovery "$REC_FSYNC" "$REC_STORAGE"
        # The shard logs its line before it listens; allow the log writer a moment.
        line=""
        for _ in $(seq 1 100); do
            line=$(grep recovered "$OUT/recovery.log" | tail -n +"$((lines_before + 1))" | head -1)
            [ -n "$line" ] && break
            sleep 0.02
        done
        echo "$i $cache $ACCEPT_MS $line" >> "$OUT/recovery-restarts.txt"
    done

    # The session is there and its first messages come, in order (raw MQTT 3.1.1 over a socket,
    # without acknowledging them, so that they stay queued for the full drain below).
    python3 - "$PORT" durrec-ps0 5 > "$OUT/recovery-peek.txt" <<'PY'
import socket, struct, sys
port, client_id, want = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
def remaining(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)
body = b"\x00\x04MQTT\x04\x00" + struct.pack(">H", 60) + struct.pack(">H", len(client_id)) + client_id
s.sendall(b"\x10" + remaining(len(body)) + body)
buf = b""
def need(n):
    global buf
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
def packet():
    global buf
    need(2)
    length, mult, i = 0, 1, 1
    while True:
        need(i + 1)
        b = buf[i]
        length += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    need(i + length)
    first, body, buf = buf[0], buf[i:i + length], buf[i + length:]
    return first, body
first, body = packet()
assert first == 0x20, f"expected CONNACK, got {first:#x}"
present, code = body[0] & 1, body[1]
print(f"connack session_present={present} return_code={code}")
seqs = []
while len(seqs) < want:
    first, body = packet()
    if first >> 4 != 3:
        continue
    topic_len = struct.unpack(">H", body[:2])[0]
    qos = (first >> 1) & 3
    payload = body[2 + topic_len + (2 if qos else 0):]
    publisher, seq = struct.unpack(">II", payload[8:16])
    seqs.append(seq)
    print(f"publish qos={qos} dup={(first >> 3) & 1} publisher={publisher} seq={seq} payload_bytes={len(payload)}")
s.sendall(b"\xe0\x00")
s.close()
ok = present == 1 and code == 0 and seqs == list(range(want))
print("ok" if ok else "FAILED")
PY
    lg recovery-drain persistent --clients 1 --messages "$REC_MESSAGES" --client-prefix durrec- \
        --resume --drain-timeout 60
    stop_broker
    {
        echo "end $(date -u +%FT%TZ)"
        echo "uptime: $(uptime)"
        echo "busiest processes at the end:"
        top -bn1 -w 160 | sed -n '7,14p'
    } >> "$OUT/machine.txt"

}

if [ -z "${REPORT_ONLY:-}" ]; then
    measure
fi

# ---- the report --------------------------------------------------------------------------
mkdir -p "$(dirname "$RESULT")"
python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" "$RESULT" <<'PY'
import json, pathlib, re, statistics, sys
out, rounds, hz, result = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def runs(name):
    got = []
    for r in range(1, rounds + 1):
        try:
            d = json.loads((out / f"{name}.{r}.json").read_text())
        except Exception:
            continue
        d["_cpu_s"] = int((out / f"{name}.{r}.cpu").read_text()) / hz
        d["_load"] = float((out / f"{name}.{r}.load").read_text().split()[0])
        got.append(d)
    return got

def med(rs, f):
    vals = [f(d) for d in rs]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"

def spread(rs, f, digits=0):
    return " / ".join(fmt(f(d), digits) for d in rs)

lines = []
w = lines.append
machine = (out / "machine.txt").read_text()
w(f"# ringmq durability: {machine.split()[1][:10]}")
w("")
w("Measured by `loadgen/durability.sh`: ringmq release build, one shard pinned to one CPU, "
  "`ringmq-loadgen` pinned to the other, on a 2-core VM shared with other builds (see "
  "*Machine* below: the load average is part of every figure). Every row of (a) and (b) is "
  f"the median of {rounds} runs, each on a fresh broker and an empty data directory on "
  "the real disk, with the per-run values after it. MQTT 3.1.1 throughout.")
w("")

# a
w("## a. QoS 1 fan-in: 32 publishers -> 1 subscriber")
w("")
w("Closed loop, 64 unacknowledged PUBLISHes per publisher, "
  "1 s warm-up, then the measured window. *acked msgs/s*: PUBACKs received in the window "
  "per second, i.e. messages acknowledged as durable; *ack p50/p99*: PUBLISH written to PUBACK "
  "read. *delivered msgs/s*: deliveries to the subscriber in the window; *behind*: how long "
  "after publishing stopped the last message reached the subscriber; *end to end*: every "
  "message published, over the time from the start of publishing (warm-up included) to the "
  "last delivery.")
w("")
w("| subscriber | fsync | acked msgs/s | ack p50 (ms) | ack p99 (ms) | delivered msgs/s | behind (s) | end to end msgs/s | lost | broker CPU s per 1M acked | per-run acked msgs/s |")
w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
acked = lambda d: d["publish"]["acked_per_s"]
p50 = lambda d: d["publish"]["ack_latency"]["p50_us"] / 1e3
p99 = lambda d: d["publish"]["ack_latency"]["p99_us"] / 1e3
dl = lambda d: d["delivery"]["delivered_per_s"]
behind = lambda d: d["delivery"].get("drain_s")
lost = lambda d: d["delivery"]["lost"]
# Everything published, over the time from the start of publishing to the last delivery.
e2e = lambda d: d["delivery"]["received_unique"] / (
    d["settings"]["warmup_s"] + d["settings"]["duration_s"] + (d["delivery"].get("drain_s") or 0))
cpu = lambda d: d["_cpu_s"] / max(d["publish"]["acked"], 1) * 1e6
fanin_always = None
for mode, sub in (("always", "persistent"), ("interval", "persistent"), ("never", "persistent"), ("clean", "clean")):
    rs = runs(f"fanin-{mode}")
    if mode == "always":
        fanin_always = med(rs, acked)
    errors = sum(d["errors"]["count"] for d in rs)
    fs = "(no disk)" if mode == "clean" else (mode + (" 10 ms" if mode == "interval" else ""))
    w(f"| {sub} | {fs} | {fmt(med(rs, acked))} | {fmt(med(rs, p50), 2)} | {fmt(med(rs, p99), 2)} | "
      f"{fmt(med(rs, dl))} | {fmt(med(rs, behind), 1)} | {fmt(med(rs, e2e))} | {fmt(max((lost(d) for d in rs), default=None))}"
      f"{' (errors: %d)' % errors if errors else ''} | {fmt(med(rs, cpu), 2)} | {spread(rs, acked)} |")
w("")
if fanin_always is not None:
    verdict = "met" if fanin_always >= 100_000 else "NOT met"
    w(f"Target >= 100,000 durable QoS 1 msgs/s acknowledged with fsync = always: **{verdict}** "
      f"({fanin_always:,.0f}). *lost* is the largest over the runs.")
    w("")

# b
w(f"## b. persistent: offline sessions accumulate, then drain")
w("")
rs0 = runs("persist-always")
if rs0:
    p = rs0[0]["persistent"]
    w(f"{p['sessions']} persistent sessions (QoS 1) go offline; one publisher (64 in flight) "
      f"publishes {p['messages']:,} messages, each queued for every session "
      f"({p['sessions'] * p['messages']:,} deliveries); then the sessions reconnect and drain. "
      "*publish msgs/s*: messages published and acknowledged per second; *drain msgs/s*: "
      "deliveries per second, summed over the sessions, from the reconnects to the last one.")
    w("")
w("| fsync | publish msgs/s | ack p50 (ms) | ack p99 (ms) | drain msgs/s | lost | duplicates | per-run publish / drain msgs/s |")
w("|---|---:|---:|---:|---:|---:|---:|---|")
pub = lambda d: d["persistent"]["publish_per_s"]
drain = lambda d: d["persistent"]["drain_per_s"]
for mode in ("always", "interval", "never"):
    rs = runs(f"persist-{mode}")
    errors = sum(d["errors"]["count"] for d in rs)
    w(f"| {mode} | {fmt(med(rs, pub))} | {fmt(med(rs, p50), 2)} | {fmt(med(rs, p99), 2)} | {fmt(med(rs, drain))} | "
      f"{fmt(max((d['delivery']['lost'] for d in rs), default=None))}{' (errors: %d)' % errors if errors else ''} | "
      f"{fmt(max((d['delivery']['duplicates'] for d in rs), default=None))} | "
      f"{' / '.join(fmt(pub(d)) + ' : ' + fmt(drain(d)) for d in rs)} |")
w("")

# c
w("## c. Recovery after kill -9")
w("")
try:
    fill = json.loads((out / "recovery-fill.json").read_text())
    fp = fill["persistent"]
    w(f"One offline persistent session accumulated {fp['messages']:,} messages of "
      f"{fill['settings']['payload_bytes']:,} B (one publisher, 1000 in flight, fsync = "
      f"{(out / 'recovery.toml').read_text().split('fsync = ')[1].split()[0].strip(chr(34))}, "
      f"256 MiB segments) in {fp['publish_s']:.1f} s ({fp['publish_per_s']:,.0f} msgs/s, "
      f"{fp['publish_per_s'] * fill['settings']['payload_bytes'] / 1e6:,.0f} MB/s of payload); "
      f"its segment files then took {int((out / 'recovery-du.txt').read_text()) / 2**30:.2f} GiB "
      "(whole segments, preallocated). "
      f"Errors while filling: {fill['errors']['count']}.")
except Exception as e:
    w(f"(the fill run left no report: {e})")
w("")
w("Broker memory after filling, before the kill (`/proc/PID/status`; the log segments are "
  "mapped, so their resident pages count as RssFile):")
w("")
w("| " + " | ".join(l.split(":")[0] for l in (out / "recovery-rss.txt").read_text().splitlines()) + " |")
w("|" + "---:|" * len((out / "recovery-rss.txt").read_text().splitlines()))
w("| " + " | ".join(" ".join(l.split()[1:]) for l in (out / "recovery-rss.txt").read_text().splitlines()) + " |")
w("")
w("Each restart follows a `kill -9` of the previous broker. *accepts after*: from starting "
  "the process to the first accepted TCP connection (the shard listens only once recovery "
  "is done; after a kill -9 the broker first waits for the old process's port to be free). "
  "*cold*: the log's pages were written back and evicted from the page cache first "
  "(posix_fadvise DONTNEED), so recovery reads the disk.")
w("")
w("| restart | page cache | records | bytes | recovery elapsed_ms (log line) | accepts after (ms) |")
w("|---|---|---:|---:|---:|---:|")
warm_elapsed, warm_accept = [], []
for line in (out / "recovery-restarts.txt").read_text().splitlines():
    parts = line.split(maxsplit=3)
    i, cache, accept = parts[0], parts[1], int(parts[2])
    logline = parts[3] if len(parts) > 3 else ""
    kv = dict(re.findall(r"(\w+)=(\S+)", logline))
    el = int(kv.get("elapsed_ms", "-1"))
    if cache == "warm":
        warm_elapsed.append(el)
        warm_accept.append(accept)
    w(f"| {int(i) + 1} | {cache} | {int(kv.get('records', 0)):,} | {int(kv.get('bytes', 0)):,} | {el:,} | {accept:,} |")
w("")
if warm_elapsed:
    w(f"Median of the warm restarts: recovery {statistics.median(warm_elapsed):,.0f} ms, "
      f"port accepting after {statistics.median(warm_accept):,.0f} ms. Target: 1 GB in < 5 s.")
    w("")
w("After the last restart, a raw MQTT 3.1.1 client resumed the session (clean session 0) "
  "and read its first messages without acknowledging them:")
w("")
w("```")
w((out / "recovery-peek.txt").read_text().rstrip())
w("```")
w("")
try:
    dr = json.loads((out / "recovery-drain.json").read_text())
    d, p = dr["delivery"], dr["persistent"]
    w(f"Then `persistent --resume` drained the whole queue: {d['received_unique']:,} of "
      f"{d['expected']:,} messages, {d['lost']:,} lost, {d['duplicates']:,} duplicates, "
      f"{d['out_of_order']:,} out of order, in {p['drain_s']:.1f} s ({p['drain_per_s']:,.0f} msgs/s); "
      f"errors: {dr['errors']['count']} {dr['errors']['samples'][:3] if dr['errors']['count'] else ''}.")
except Exception as e:
    w(f"(the drain run left no report: {e})")
w("")

# machine
w("## Machine")
w("")
loads = []
for f in sorted(out.glob("*.load")):
    loads.append(float(f.read_text().split()[0]))
if loads:
    w(f"1-minute load average before each run: min {min(loads):.2f}, median "
      f"{statistics.median(loads):.2f}, max {max(loads):.2f} (this benchmark alone keeps "
      "about 1 to 2 busy).")
    w("")
w("```")
w(machine.rstrip())
w("```")
w("")
kicks = 0
for f in sorted(out.glob("*.json")):
    try:
        kicks += json.loads(f.read_text()).get("executor_kicks", 0)
    except Exception:
        pass
w(f"Loadgen executor kicks over all runs (its watchdog waking a worker that stood still "
  f"for 50 ms; see loadgen/src/watchdog.rs): {kicks}.")
w("")
warn = []
for f in sorted(out.glob("*.log")):
    for l in f.read_text().splitlines():
        if " WARN " in l or " ERROR " in l or "storage failed" in l:
            warn.append(f"{f.name}: {l}")
w(f"Broker warnings and errors over all runs: {len(warn)}" + (":" if warn else "."))
if warn:
    w("")
    w("```")
    for l in warn[:20]:
        w(l)
    w("```")
w("")
pathlib.Path(result).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "raw results: $OUT; report: $RESULT" >&2

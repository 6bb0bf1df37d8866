//! Smoke runs of the bundled load generator (`ringmq-loadgen`, package `loadgen/`): every
//! scenario for about two seconds against a broker started here, checking the JSON
//! document each run prints: messages delivered, no loss and no duplicates where the QoS
//! promises it, percentiles in order, no errors.
//!
//! The broker is ringmq (2 shards, unbound) unless `RINGMQ_TEST_BROKER=mosquitto`, as in
//! the black-box suites. The loadgen binary is a different package: it is taken from the
//! same target directory as the `ringmq` binary (`cargo test --workspace` builds it), and
//! built there with `cargo build -p ringmq-loadgen` when missing. The runs use open-loop
//! rates, so they stay light on a 2-core machine whatever runs beside them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub mod common;

// ---------------------------------------------------------------------------------------
// The broker: the black-box suites' harness (2 shards), one scenario at a time
// ---------------------------------------------------------------------------------------

/// One scenario at a time: each test runs a broker and a load generator, one of them floods
/// on purpose, and eleven of those at once on a 2-CPU machine starve each other into
/// timeouts that say nothing about either program.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A broker from the shared harness, holding this file's turn until dropped (fields drop
/// in order: the broker stops before the turn passes on).
struct Broker {
    inner: common::Broker,
    _turn: MutexGuard<'static, ()>,
}

impl Broker {
    fn start() -> Broker {
        // A test that panicked while holding the lock must not fail the others.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        Broker {
            inner: common::Broker::with_shards(2),
            _turn: turn,
        }
    }

    fn pid(&self) -> u32 {
        self.inner.pid()
    }
}

// ---------------------------------------------------------------------------------------
// The loadgen binary
// ---------------------------------------------------------------------------------------

/// `target/<profile>/ringmq-loadgen`, beside the `ringmq` binary; built once if missing.
fn loadgen() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let ringmq = Path::new(env!("CARGO_BIN_EXE_ringmq"));
        let profile_dir = ringmq.parent().expect("ringmq binary has a directory");
        let bin = profile_dir.join(format!("ringmq-loadgen{}", std::env::consts::EXE_SUFFIX));
        if bin.exists() {
            return bin;
        }
        let target_dir = profile_dir.parent().expect("profile dir has a parent");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile dir name");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "-p", "ringmq-loadgen", "--bin", "ringmq-loadgen"])
            .arg("--target-dir")
            .arg(target_dir);
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("run cargo build -p ringmq-loadgen");
        assert!(status.success(), "cargo build -p ringmq-loadgen failed");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
}

/// Runs the loadgen against `broker` and returns its JSON document.
fn run(broker: &Broker, scenario: &str, args: &[&str]) -> Json {
    let port = broker.inner.addr().port().to_string();
    let prefix = format!("smoke{}{}-", std::process::id(), scenario.replace('-', ""));
    let mut cmd = Command::new(loadgen());
    cmd.arg(scenario)
        .args(["--port", &port, "--json", "--no-progress", "--unbound"])
        .args(["--client-prefix", &prefix])
        .args(args);
    let started = Instant::now();
    let out = cmd.output().expect("run ringmq-loadgen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ringmq-loadgen {scenario} {args:?} failed ({}):\n{stderr}",
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let doc =
        Json::parse(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}\nstderr:\n{stderr}"));
    eprintln!(
        "{scenario} {args:?}: {:.1} s\n{stderr}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(doc.get("scenario").str(), scenario);
    doc
}

/// The run had no errors (refused connections, protocol errors, broker disconnects).
fn check_no_errors(doc: &Json) {
    assert_eq!(
        doc.get("errors").get("count").num(),
        0.0,
        "errors: {:?}",
        doc.get("errors").get("samples")
    );
}

/// A latency summary is plausible: some samples, percentiles in order, not absurd.
fn check_latency(l: &Json, what: &str) {
    let n = l.get("count").num();
    let (p50, p90, p99, p999, max) = (
        l.get("p50_us").num(),
        l.get("p90_us").num(),
        l.get("p99_us").num(),
        l.get("p99_9_us").num(),
        l.get("max_us").num(),
    );
    assert!(n > 0.0, "{what}: no samples");
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{what}: percentiles out of order: {p50} {p90} {p99} {p999} {max}"
    );
    assert!(p50 < 10_000_000.0, "{what}: median above 10 s: {p50} us");
}

/// Deliveries arrived, and (QoS 1/2) none lost; (QoS 2, or no reconnects) no duplicates.
fn check_delivery(doc: &Json, lossless: bool) {
    check_no_errors(doc);
    let d = doc.get("delivery");
    assert!(d.get("delivered").num() > 0.0, "nothing delivered: {d:?}");
    assert!(
        d.get("delivered_per_s").num() > 0.0,
        "no delivery rate: {d:?}"
    );
    assert!(d.get("expected").num() > 0.0, "nothing expected: {d:?}");
    check_latency(d.get("latency"), "delivery latency");
    assert_eq!(d.get("unexpected").num(), 0.0, "misrouted: {d:?}");
    assert_eq!(d.get("foreign").num(), 0.0, "foreign messages: {d:?}");
    if lossless {
        assert_eq!(d.get("lost").num(), 0.0, "lost messages: {d:?}");
        assert_eq!(d.get("duplicates").num(), 0.0, "duplicates: {d:?}");
        assert_eq!(d.get("out_of_order").num(), 0.0, "out of order: {d:?}");
        assert_eq!(d.get("received_unique").num(), d.get("expected").num());
    }
    assert!(doc.get("connections").get("established").num() > 0.0);
    check_latency(
        doc.get("connections").get("connect_latency"),
        "connect latency",
    );
}

/// Short runs: 0.5 s warm-up, 1.5 s measured.
const SHORT: [&str; 4] = ["--warmup", "0.5", "--duration", "1.5"];

#[test]
fn pairs_qos1_loses_nothing() {
    let b = Broker::start();
    let doc = run(
        &b,
        "pairs",
        &[
            &SHORT[..],
            &["--clients", "4", "--qos", "1", "--rate", "500"],
        ]
        .concat(),
    );
    check_delivery(&doc, true);
    let p = doc.get("publish");
    assert!(p.get("sent").num() > 0.0);
    assert_eq!(p.get("acked").num(), p.get("sent").num(), "{p:?}");
    assert_eq!(p.get("unacked").num(), 0.0);
    check_latency(p.get("ack_latency"), "ack latency");
    // 4 publishers at 500 msg/s for 1.5 s: about 3000 measured deliveries.
    let rate = doc.get("delivery").get("delivered_per_s").num();
    assert!(
        (1000.0..4000.0).contains(&rate),
        "delivered {rate} msg/s, expected ~2000"
    );
}

#[test]
fn pairs_qos0_delivers() {
    let b = Broker::start();
    let doc = run(
        &b,
        "pairs",
        &[
            &SHORT[..],
            &[
                "--clients",
                "4",
                "--qos",
                "0",
                "--payload",
                "16",
                "--rate",
                "1000",
            ],
        ]
        .concat(),
    );
    // QoS 0 may lose messages; it must deliver, once each, in order.
    check_delivery(&doc, false);
    let d = doc.get("delivery");
    assert_eq!(d.get("duplicates").num(), 0.0, "{d:?}");
    assert_eq!(d.get("out_of_order").num(), 0.0, "{d:?}");
}

/// Closed loop at QoS 0 overloads the broker on purpose: the run must stay bounded in
/// time, publish, and end cleanly; what the broker delivers under overload is its business.
#[test]
fn pairs_qos0_closed_loop_stays_bounded() {
    let b = Broker::start();
    let started = Instant::now();
    let doc = run(
        &b,
        "pairs",
        &[
            "--warmup",
            "0.2",
            "--duration",
            "1",
            "--drain-timeout",
            "2",
            "--clients",
            "2",
            "--qos",
            "0",
        ],
    );
    assert!(doc.get("publish").get("sent").num() > 0.0);
    assert_eq!(doc.get("delivery").get("duplicates").num(), 0.0);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn pairs_qos2_mqtt5_exactly_once() {
    let b = Broker::start();
    let doc = run(
        &b,
        "pairs",
        &[
            &SHORT[..],
            &[
                "--clients",
                "2",
                "--qos",
                "2",
                "--mqtt",
                "5",
                "--rate",
                "300",
            ],
        ]
        .concat(),
    );
    check_delivery(&doc, true);
    assert_eq!(doc.get("mqtt").str(), "5.0");
}

#[test]
fn fan_in_qos1() {
    let b = Broker::start();
    let doc = run(
        &b,
        "fan-in",
        &[
            &SHORT[..],
            &[
                "--publishers",
                "4",
                "--subscribers",
                "2",
                "--qos",
                "1",
                "--rate",
                "200",
            ],
        ]
        .concat(),
    );
    check_delivery(&doc, true);
    // Every subscriber gets every publisher's messages.
    let d = doc.get("delivery");
    let sent = doc.get("publish").get("sent").num();
    assert_eq!(d.get("expected").num(), 2.0 * sent);
}

/// `--persistent-subscribers`: the subscribers keep persistent sessions, so a broker with
/// persistence logs every delivery; still nothing lost, and the acknowledgement rate and
/// latency are reported.
#[test]
fn fan_in_qos1_persistent_subscribers() {
    let b = Broker::start();
    let doc = run(
        &b,
        "fan-in",
        &[
            &SHORT[..],
            &[
                "--publishers",
                "4",
                "--subscribers",
                "2",
                "--qos",
                "1",
                "--rate",
                "200",
                "--persistent-subscribers",
            ],
        ]
        .concat(),
    );
    check_delivery(&doc, true);
    assert_eq!(
        doc.get("settings").get("persistent_subscribers"),
        &Json::Bool(true)
    );
    let p = doc.get("publish");
    assert_eq!(p.get("acked").num(), p.get("sent").num(), "{p:?}");
    assert!(p.get("acked_in_window").num() > 0.0, "{p:?}");
    // 4 publishers at 200 msg/s: about 800 acknowledgements per second.
    let rate = p.get("acked_per_s").num();
    assert!(
        (300.0..1600.0).contains(&rate),
        "acked {rate} msg/s, expected ~800"
    );
    check_latency(p.get("ack_latency"), "ack latency");
}

#[test]
fn fan_out_qos1() {
    let b = Broker::start();
    let doc = run(
        &b,
        "fan-out",
        &[
            &SHORT[..],
            &["--subscribers", "10", "--qos", "1", "--rate", "200"],
        ]
        .concat(),
    );
    check_delivery(&doc, true);
    let sent = doc.get("publish").get("sent").num();
    assert_eq!(doc.get("delivery").get("expected").num(), 10.0 * sent);
}

#[test]
fn idle_reports_broker_memory() {
    let b = Broker::start();
    let pid = b.pid().to_string();
    let doc = run(
        &b,
        "idle",
        &[
            "--clients",
            "50",
            "--duration",
            "1.5",
            "--keep-alive",
            "1",
            "--broker-pid",
            &pid,
        ],
    );
    check_no_errors(&doc);
    let idle = doc.get("idle");
    assert_eq!(idle.get("connected").num(), 50.0, "{idle:?}");
    assert!(
        idle.get("pings").num() > 0.0,
        "no keep-alive pings: {idle:?}"
    );
    assert!(idle.get("pongs").num() > 0.0, "no PINGRESP: {idle:?}");
    let mem = idle.get("broker");
    assert!(mem.get("rss_before_kib").num() > 0.0, "{mem:?}");
    assert!(mem.get("rss_connected_kib").num() > 0.0, "{mem:?}");
    check_latency(
        doc.get("connections").get("connect_latency"),
        "connect latency",
    );
}

#[test]
fn connect_storm_counts_connects() {
    let b = Broker::start();
    let doc = run(
        &b,
        "connect-storm",
        &[&SHORT[..], &["--clients", "4"]].concat(),
    );
    check_no_errors(&doc);
    let storm = doc.get("connect_storm");
    assert!(storm.get("connects").num() > 0.0, "{storm:?}");
    assert!(storm.get("connects_per_s").num() > 0.0, "{storm:?}");
    assert_eq!(storm.get("failed").num(), 0.0, "{storm:?}");
    check_latency(
        doc.get("connections").get("connect_latency"),
        "connect latency",
    );
}

#[test]
fn persistent_sessions_drain_every_message() {
    let b = Broker::start();
    let doc = run(
        &b,
        "persistent",
        &["--clients", "2", "--messages", "2000", "--duration", "5"],
    );
    check_delivery(&doc, true);
    let p = doc.get("persistent");
    assert_eq!(p.get("messages").num(), 2000.0, "{p:?}");
    assert_eq!(doc.get("delivery").get("expected").num(), 4000.0);
    assert!(p.get("drain_per_s").num() > 0.0, "{p:?}");
}

/// `--keep-offline` leaves the sessions offline with their queues; a later `--resume` with
/// the same prefix finds them and drains every message.
#[test]
fn persistent_keep_offline_then_resume() {
    let b = Broker::start();
    let fill = run(
        &b,
        "persistent",
        &[
            "--clients",
            "2",
            "--messages",
            "1000",
            "--duration",
            "5",
            "--keep-offline",
        ],
    );
    check_no_errors(&fill);
    assert_eq!(
        fill.get("delivery"),
        &Json::Null,
        "nothing drains: {fill:?}"
    );
    assert_eq!(fill.get("persistent").get("messages").num(), 1000.0);
    assert_eq!(fill.get("publish").get("acked").num(), 1000.0);
    let drain = run(
        &b,
        "persistent",
        &["--clients", "2", "--messages", "1000", "--resume"],
    );
    check_no_errors(&drain);
    let d = drain.get("delivery");
    assert_eq!(d.get("expected").num(), 2000.0, "{d:?}");
    assert_eq!(d.get("received_unique").num(), 2000.0, "{d:?}");
    assert_eq!(d.get("lost").num(), 0.0, "{d:?}");
    assert_eq!(d.get("duplicates").num(), 0.0, "{d:?}");
    assert_eq!(d.get("out_of_order").num(), 0.0, "{d:?}");
    assert!(drain.get("persistent").get("drain_per_s").num() > 0.0);
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["pairs", "--payload", "8"][..],
        &["pairs", "--qos", "3"],
        &["fan-in", "--shared", "a/b"],
        &["pairs", "--source-ips", "127.0.0.9-127.0.0.2"],
        &["persistent", "--resume"],
        &[
            "persistent",
            "--resume",
            "--keep-offline",
            "--client-prefix",
            "x",
        ],
        &["no-such-scenario"],
    ] {
        let out = Command::new(loadgen())
            .args(args)
            .output()
            .expect("run ringmq-loadgen");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

// ---------------------------------------------------------------------------------------
// A minimal JSON reader (the root crate has no JSON dependency)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

static NULL: Json = Json::Null;

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            b: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.b.len() {
            return Err(format!("trailing data at {}", p.i));
        }
        Ok(v)
    }

    /// The member `key` of an object; `Null` when absent (a later check then fails).
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(m) => m.get(key).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            other => panic!("expected a number, got {other:?}"),
        }
    }

    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("expected a string, got {other:?}"),
        }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", c as char, self.i))
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Result<Json, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(format!("bad literal at {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    m.insert(k, self.value()?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return Err(format!("bad object at {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(a));
                        }
                        _ => return Err(format!("bad array at {}", self.i)),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'n') => self.lit("null", Json::Null),
            Some(_) => {
                let start = self.i;
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.b[start..self.i])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .map(Json::Num)
                    .ok_or_else(|| format!("bad number at {start}"))
            }
            None => Err("unexpected end".into()),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.b.get(self.i) != Some(&b'"') {
            return Err(format!("expected a string at {}", self.i));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|e| e.to_string());
                }
                Some(b'\\') => {
                    let esc = self.b.get(self.i + 1).copied();
                    self.i += 2;
                    match esc {
                        Some(b'n') => out.push(b'\n'),
                        Some(b't') => out.push(b'\t'),
                        Some(b'r') => out.push(b'\r'),
                        Some(b'u') => {
                            let hex = std::str::from_utf8(&self.b[self.i..self.i + 4])
                                .map_err(|e| e.to_string())?;
                            let c = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            let c = char::from_u32(c).unwrap_or('?');
                            out.extend_from_slice(c.to_string().as_bytes());
                            self.i += 4;
                        }
                        Some(c) => out.push(c),
                        None => return Err("unterminated escape".into()),
                    }
                }
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
                None => return Err("unterminated string".into()),
            }
        }
    }
}

#[test]
fn json_reader_reads_what_serde_json_writes() {
    let doc =
        Json::parse(r#"{"a": [1, 2.5e3, -3], "b": {"c": "x\"y\u00e9"}, "d": null, "e": true}"#)
            .expect("valid JSON");
    assert_eq!(
        doc.get("a"),
        &Json::Arr(vec![Json::Num(1.0), Json::Num(2500.0), Json::Num(-3.0)])
    );
    assert_eq!(doc.get("b").get("c").str(), "x\"yé");
    assert_eq!(doc.get("d"), &Json::Null);
    assert_eq!(doc.get("e"), &Json::Bool(true));
    assert!(Json::parse("{").is_err());
}

//! Black-box test harness: runs a real broker process on a free local port and talks MQTT
//! to it over TCP, byte for byte.
//!
//! Which broker runs is chosen by the environment, so that the same tests check ringmq and
//! were first validated against a reference broker:
//!
//! - `RINGMQ_TEST_BROKER=mosquitto`: `mosquitto -c <generated conf>` (the binary is
//!   `RINGMQ_MOSQUITTO_BIN`, else `/usr/sbin/mosquitto`, else `mosquitto` on the PATH);
//! - unset or `ringmq`: this crate's `ringmq` binary with `--config <generated toml>`.
//!
//! Tests of behaviour that ringmq promises and Mosquitto does not have carry `ringmq_only` in
//! their name and begin with [`skip_unless_ringmq`], which skips them (with a message) under
//! Mosquitto; `tests/run.sh` also filters them out there with `--skip ringmq_only`.
//!
//! The broker's stderr goes to `broker.log` in its fresh data directory; when a test fails,
//! the broker's [`Drop`] prints the tail of that log. The directory is removed on drop unless
//! `RINGMQ_TEST_KEEP_DATA` is set.
//!
//! Byte-exact assertions compare the server's bytes with hex written by hand from the spec
//! ([`hex`], [`RawClient::expect_bytes`]); the codec (`ringmq::protocol`) is used only to
//! build what the test sends and to read replies whose exact bytes the spec leaves open.
//!
//! Used from test files with `pub mod common;`: public, so that helpers one file does not
//! use are not reported as dead code in that file's crate.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use ringmq::protocol::{
    decode, parse_fixed_header, Ack, ConnAck, Connect, Decoded, Disconnect, Frame, MqttString,
    Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe, Subscription,
    SubscriptionOptions, TopicFilter, TopicName, UnsubAck, Unsubscribe, Will, MAX_PACKET_BYTES,
};

pub const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
pub const V5: ProtocolVersion = ProtocolVersion::V5;

/// How long a test waits for any single expected reply.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How long the broker may take to accept TCP connections after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Broker::stop`] waits for the broker to exit after SIGTERM, and
/// [`Broker::restart`] for the old process's port to be free.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of the broker's log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;

// ---------------------------------------------------------------------------------------
// Which broker
// ---------------------------------------------------------------------------------------

/// The broker implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Ringmq,
    Mosquitto,
}

/// The broker chosen by `RINGMQ_TEST_BROKER` (`ringmq` when unset).
pub fn broker_kind() -> BrokerKind {
    match std::env::var("RINGMQ_TEST_BROKER") {
        Err(_) => BrokerKind::Ringmq,
        Ok(v) if v.is_empty() || v == "ringmq" => BrokerKind::Ringmq,
        Ok(v) if v == "mosquitto" => BrokerKind::Mosquitto,
        Ok(v) => panic!("RINGMQ_TEST_BROKER={v:?}: expected \"ringmq\" or \"mosquitto\""),
    }
}

pub fn is_mosquitto() -> bool {
    broker_kind() == BrokerKind::Mosquitto
}

/// For a test of behaviour only ringmq promises: returns true, after saying why, when the
/// broker under test is not ringmq, and the test must then return at once.
#[must_use]
pub fn skip_unless_ringmq(why: &str) -> bool {
    if broker_kind() == BrokerKind::Ringmq {
        return false;
    }
    let name = thread::current().name().unwrap_or("?").to_owned();
    eprintln!(
        "SKIPPED {name}: ringmq-only under {:?}: {why}",
        broker_kind()
    );
    true
}

/// The first of `<prefix>-0`, `<prefix>-1`, ... whose home is `shard` of `shards`: ringmq
/// homes a session on shard `stable_hash(client id) % shards`.
pub fn client_id_on_shard(prefix: &str, shard: usize, shards: usize) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| ringmq::shard::mesh::stable_hash(id.as_bytes()) % shards as u64 == shard as u64)
        .expect("some id hashes to every shard")
}

/// How long after its last packet a client with keep-alive `secs` may wait for the server
/// to close the connection: 1.5 x keep-alive [MQTT-3.1.2-24] plus 1 s of scheduling slack.
/// Mosquitto 2.0.11 checks keep-alives only when its event loop wakes, which on an idle
/// broker is up to about 6 s late (measured), so under Mosquitto the slack is 8 s.
pub fn keep_alive_close_bound(secs: u64) -> Duration {
    let slack = match broker_kind() {
        BrokerKind::Ringmq => Duration::from_secs(1),
        BrokerKind::Mosquitto => Duration::from_secs(8),
    };
    Duration::from_millis(secs * 1500) + slack
}

// ---------------------------------------------------------------------------------------
// The broker process
// ---------------------------------------------------------------------------------------

/// How to start a broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Shards (ringmq `[runtime] cores`, unbound placement). Default 1; cross-shard tests
    /// use 4. Mosquitto has one thread whatever this says.
    pub shards: usize,
    /// TOML appended to ringmq's generated configuration (e.g. a `[limits]` table).
    pub ringmq_toml: String,
    /// Lines appended to Mosquitto's generated configuration.
    pub mosquitto_conf: String,
    /// Lines placed in ringmq's `[storage]` table after the generated `data_dir` (TOML
    /// allows one header per table, so they cannot go in `ringmq_toml`). Mosquitto ignores
    /// them.
    pub storage_toml: String,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            shards: 1,
            ringmq_toml: String::new(),
            mosquitto_conf: String::new(),
            storage_toml: String::new(),
        }
    }
}

impl BrokerOptions {
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// The same setting for both brokers, each in its own syntax.
    pub fn config(mut self, ringmq_toml: &str, mosquitto_conf: &str) -> Self {
        self.ringmq_toml.push_str(ringmq_toml);
        self.ringmq_toml.push('\n');
        self.mosquitto_conf.push_str(mosquitto_conf);
        self.mosquitto_conf.push('\n');
        self
    }

    /// Keys of ringmq's `[storage]` table (e.g. `fsync = "interval"`), one per line.
    pub fn storage(mut self, toml_lines: &str) -> Self {
        self.storage_toml.push_str(toml_lines);
        self.storage_toml.push('\n');
        self
    }
}

/// A broker process on 127.0.0.1, killed (and waited for) on drop. It can be stopped,
/// killed and started again on the same port and data directory ([`Broker::restart`]).
pub struct Broker {
    child: Child,
    addr: SocketAddr,
    kind: BrokerKind,
    data_dir: PathBuf,
    log_path: PathBuf,
    opts: BrokerOptions,
    config: PathBuf,
    /// Where in the log the current process's output begins.
    run_log_offset: u64,
    /// Processes started so far, this one included.
    runs: u32,
}

impl Broker {
    /// One shard, default configuration.
    pub fn start_default() -> Broker {
        Broker::start(BrokerOptions::default())
    }

    pub fn with_shards(shards: usize) -> Broker {
        Broker::start(BrokerOptions::default().shards(shards))
    }

    /// Starts the broker and returns once its port accepts TCP connections.
    pub fn start(opts: BrokerOptions) -> Broker {
        assert!(opts.shards >= 1, "a broker needs at least one shard");
        let kind = broker_kind();
        let data_dir = fresh_dir();
        let log_path = data_dir.join("broker.log");
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = write_config(kind, &opts, addr, &data_dir);
        let child = spawn(kind, &config, &log_path);
        let mut broker = Broker {
            child,
            addr,
            kind,
            data_dir,
            log_path,
            opts,
            config,
            run_log_offset: 0,
            runs: 1,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{:?} broker exited ({status}) before accepting connections on {}\n\
                     --- broker log ---\n{}",
                    self.kind,
                    self.addr,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{:?} broker did not accept connections on {} within {:?}\n\
                     --- broker log ---\n{}",
                    self.kind,
                    self.addr,
                    START_TIMEOUT,
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -9`: the broker gets no chance to flush or close anything. Returns once the
    /// process is gone. The broker must have been running.
    pub fn kill9(&mut self) {
        self.expect_running("kill -9");
        if let Err(e) = self.child.kill() {
            panic!("SIGKILL to broker pid {}: {e}", self.child.id());
        }
        let status = self.child.wait().expect("wait for the killed broker");
        self.note(&format!("killed with SIGKILL ({status})"));
    }

    /// SIGTERM, then waits up to [`STOP_TIMEOUT`] for a clean exit (status 0). A broker that
    /// does not exit in time is killed and the test fails.
    pub fn stop(&mut self) {
        self.expect_running("stop");
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with the id of our own child, which has not been waited for (so
        // the id cannot have been reused); no memory is passed.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(
            rc,
            0,
            "SIGTERM to broker pid {pid}: {}",
            io::Error::last_os_error()
        );
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "broker did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)\n\
                         --- broker log ---\n{}",
                        self.log_tail(LOG_TAIL_LINES)
                    );
                }
                Err(e) => panic!("wait for broker pid {pid}: {e}"),
            }
        };
        self.note(&format!("stopped with SIGTERM ({status})"));
        assert!(
            status.success(),
            "broker exited with {status} after SIGTERM, expected 0\n--- broker log ---\n{}",
            self.log_tail(LOG_TAIL_LINES)
        );
    }

    /// Starts the broker again after [`Broker::stop`] or [`Broker::kill9`]: same binary,
    /// configuration file, port and data directory. Returns once it accepts connections.
    pub fn restart(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            panic!("restart: the broker is still running; stop() or kill9() it first");
        }
        self.wait_port_free();
        self.runs += 1;
        self.note(&format!("start {}", self.runs));
        self.run_log_offset = fs::metadata(&self.log_path).map_or(0, |m| m.len());
        self.child = spawn(self.kind, &self.config, &self.log_path);
        self.wait_ready();
    }

    /// [`Broker::restart`] with `shards` shards: the configuration file is written again
    /// with the new `[runtime] cores` (Mosquitto has one thread whatever this says).
    pub fn restart_with_shards(&mut self, shards: usize) {
        assert!(shards >= 1, "a broker needs at least one shard");
        self.opts.shards = shards;
        self.config = write_config(self.kind, &self.opts, self.addr, &self.data_dir);
        self.restart();
    }

    /// Shards of the current (or last) process.
    pub fn shards(&self) -> usize {
        self.opts.shards
    }

    /// Processes started so far, the current one included.
    pub fn runs(&self) -> u32 {
        self.runs
    }

    /// What the current (or last) process has logged so far.
    pub fn log_of_this_run(&self) -> String {
        let bytes = fs::read(&self.log_path).unwrap_or_default();
        let from = usize::try_from(self.run_log_offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }

    fn expect_running(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{what}: the broker had already exited ({status})\n--- broker log ---\n{}",
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }

    /// A line of the harness's own in the broker log, between two processes' output.
    fn note(&self, what: &str) {
        if let Ok(mut log) = fs::OpenOptions::new().append(true).open(&self.log_path) {
            let _ = writeln!(log, "--- test harness: {what} ---");
        }
    }

    /// Waits until nothing listens on the broker's port any more (the broker refuses to
    /// start while another socket listens there). A bind with SO_REUSEADDR, as std does,
    /// succeeds beside connections in TIME_WAIT but not beside a listener.
    fn wait_port_free(&self) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match TcpListener::bind(self.addr) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "port of {} still taken after {STOP_TIMEOUT:?}: {e}",
                        self.addr
                    )
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker's storage directory (ringmq: `storage.data_dir`).
    pub fn data_path(&self) -> PathBuf {
        self.data_dir.join("data")
    }

    /// The broker's process id (for /proc readings such as RSS).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// The last `lines` lines of the broker's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log_path.display()));
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// TCP connection with nothing sent yet.
    pub fn raw(&self) -> RawClient {
        RawClient::connect(self.addr)
    }

    /// An accepted MQTT connection: clean session / clean start, keep-alive 60 s.
    pub fn client(&self, v: ProtocolVersion, client_id: &str) -> Client {
        Client::connect(self.addr, connect(v, client_id))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let state = match self.child.try_wait() {
            Ok(Some(status)) => format!("had exited ({status})"),
            _ => "was running".to_owned(),
        };
        let _ = self.child.kill();
        let _ = self.child.wait();
        let keep = std::env::var_os("RINGMQ_TEST_KEEP_DATA").is_some();
        if thread::panicking() {
            eprintln!(
                "--- {:?} broker on {} {state}, data dir {}{}, last {LOG_TAIL_LINES} log lines ---\n{}",
                self.kind,
                self.addr,
                self.data_dir.display(),
                if keep {
                    " (kept)"
                } else {
                    " (removed; RINGMQ_TEST_KEEP_DATA=1 keeps it)"
                },
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        if !keep {
            let _ = fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// Writes the broker's configuration file for `opts` into `data_dir` and returns its path.
fn write_config(
    kind: BrokerKind,
    opts: &BrokerOptions,
    addr: SocketAddr,
    data_dir: &Path,
) -> PathBuf {
    match kind {
        BrokerKind::Ringmq => {
            let cores: Vec<String> = (0..opts.shards).map(|c| c.to_string()).collect();
            let text = format!(
                "[runtime]\ncores = [{}]\nplacement = \"unbound\"\n\n\
                 [[listener]]\nbind = \"{addr}\"\n\n\
                 [storage]\ndata_dir = \"{}\"\n{}\n{}",
                cores.join(", "),
                data_dir.join("data").display(),
                opts.storage_toml,
                opts.ringmq_toml
            );
            let config = data_dir.join("ringmq.toml");
            fs::write(&config, text).expect("write ringmq config");
            config
        }
        BrokerKind::Mosquitto => {
            // max_queued_messages 0: unlimited, so that offline and slow-consumer queues
            // never drop a message a test waits for (ringmq's default bound is 10,000).
            // set_tcp_nodelay: without it Nagle holds a reply behind the client's delayed
            // ACK, 40 ms per request-reply round trip.
            let text = format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n\
                 log_type information\nmax_queued_messages 0\nset_tcp_nodelay true\n{}",
                addr.port(),
                opts.mosquitto_conf
            );
            let config = data_dir.join("mosquitto.conf");
            fs::write(&config, text).expect("write mosquitto config");
            config
        }
    }
}

/// Starts the broker process with `config`; its stdout and stderr are appended to `log_path`.
fn spawn(kind: BrokerKind, config: &Path, log_path: &Path) -> Child {
    let mut cmd = match kind {
        BrokerKind::Ringmq => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmq"));
            cmd.arg("--config").arg(config);
            if let Ok(level) = std::env::var("RINGMQ_TEST_LOG_LEVEL") {
                cmd.arg("--log-level").arg(level);
            }
            cmd
        }
        BrokerKind::Mosquitto => {
            let mut cmd = Command::new(mosquitto_bin());
            cmd.arg("-c").arg(config);
            cmd
        }
    };
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open broker log");
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("start {kind:?} broker ({cmd:?}): {e}"))
}

fn mosquitto_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("RINGMQ_MOSQUITTO_BIN") {
        return PathBuf::from(bin);
    }
    let sbin = Path::new("/usr/sbin/mosquitto");
    if sbin.exists() {
        sbin.to_path_buf()
    } else {
        PathBuf::from("mosquitto")
    }
}

/// A new, empty directory under the system temp dir.
fn fresh_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "ringmq-test-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).expect("create test data dir");
    dir
}

/// A port the kernel just had free, never handed out twice in this process (brokers of
/// parallel tests would otherwise share a port: ringmq binds with SO_REUSEPORT). Tests that
/// give a broker a second listener take its port from here.
pub fn free_port() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
        if used.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bytes
// ---------------------------------------------------------------------------------------

/// Bytes from hex digits; spaces are ignored: `hex("40 02 00 01")`.
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len() % 2 == 0,
        "odd number of hex digits in {text:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).expect("ascii");
            u8::from_str_radix(s, 16).unwrap_or_else(|_| panic!("bad hex {s:?} in {text:?}"))
        })
        .collect()
}

/// `40 02 00 01`
pub fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Big-endian packet identifier bytes, for building expected hex.
pub fn id_hex(id: u16) -> String {
    to_hex(&id.to_be_bytes())
}

/// A UTF-8 string field: two length bytes then the bytes.
pub fn string_field(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A whole packet from its first byte and body (the remaining length is computed).
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A PUBLISH as section 3.3 lays it out, without v5 properties (a v5 one has an empty
/// property block): first byte (`0x30 | DUP << 3 | QoS << 1 | RETAIN`), topic, packet id
/// for QoS 1 and 2, payload. For spelling out expected server bytes.
pub fn publish_bytes(
    v: ProtocolVersion,
    first: u8,
    topic_name: &str,
    id: Option<u16>,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = string_field(topic_name.as_bytes());
    if let Some(id) = id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    if v.is_v5() {
        body.push(0x00);
    }
    body.extend_from_slice(payload);
    frame(first, &body)
}

/// Runs `$check(V311)` and `$check(V5)` as two tests named after each version's statement:
/// `test_versions!(check => name_v311_mqtt_x, name_v5_mqtt_y);`
#[macro_export]
macro_rules! test_versions {
    ($check:ident => $v311:ident, $v5:ident) => {
        #[test]
        fn $v311() {
            $check($crate::common::V311)
        }

        #[test]
        fn $v5() {
            $check($crate::common::V5)
        }
    };
}

// ---------------------------------------------------------------------------------------
// Packet builders (what tests send; encoded with ringmq's codec for convenience)
// ---------------------------------------------------------------------------------------

pub fn mqtt_str(s: &str) -> MqttString {
    MqttString::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
        .unwrap_or_else(|e| panic!("{s:?} is not an MQTT string: {e}"))
}

pub fn topic(s: &str) -> TopicName {
    TopicName::new(mqtt_str(s)).unwrap_or_else(|e| panic!("{s:?} is not a topic name: {e}"))
}

pub fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(mqtt_str(s)).unwrap_or_else(|e| panic!("{s:?} is not a topic filter: {e}"))
}

pub fn packet_id(id: u16) -> PacketId {
    PacketId::new(id).expect("packet identifiers are never 0")
}

pub fn qos(n: u8) -> QoS {
    QoS::from_u8(n).expect("QoS 0, 1 or 2")
}

/// CONNECT with clean session / clean start, keep-alive 60 s, no will.
pub fn connect(v: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol: v,
        clean_start: true,
        keep_alive: 60,
        client_id: mqtt_str(client_id),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }
}

/// CONNECT that keeps its session: clean session 0; for v5 also clean start 0 and a
/// Session Expiry Interval of 300 s (without one a v5 session ends with its connection).
pub fn connect_persistent(v: ProtocolVersion, client_id: &str) -> Connect {
    let mut c = connect(v, client_id);
    c.clean_start = false;
    if v.is_v5() {
        c.properties.session_expiry_interval = Some(300);
    }
    c
}

pub fn will(topic_name: &str, payload: &[u8], qos: QoS, retain: bool) -> Will {
    Will {
        topic: topic(topic_name),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain,
        properties: Default::default(),
    }
}

/// PUBLISH; `id` is used for QoS 1 and 2 only.
pub fn publish(topic_name: &str, payload: &[u8], qos: QoS, id: u16) -> Publish {
    let mut p = Publish::new(topic(topic_name), Bytes::copy_from_slice(payload));
    p.qos = qos;
    if qos != QoS::AtMostOnce {
        p.packet_id = Some(packet_id(id));
    }
    p
}

pub fn subscribe(id: u16, filters: &[(&str, QoS)]) -> Subscribe {
    Subscribe {
        packet_id: packet_id(id),
        properties: Default::default(),
        subscriptions: filters
            .iter()
            .map(|&(f, qos)| Subscription {
                filter: filter(f),
                options: SubscriptionOptions {
                    qos,
                    ..Default::default()
                },
            })
            .collect(),
    }
}

pub fn unsubscribe(id: u16, filters: &[&str]) -> Unsubscribe {
    Unsubscribe {
        packet_id: packet_id(id),
        properties: Default::default(),
        filters: filters.iter().map(|f| filter(f)).collect(),
    }
}

/// Encodes `packet` for a peer speaking `v`.
pub fn encode(packet: &Packet, v: ProtocolVersion) -> Vec<u8> {
    packet
        .to_bytes(v)
        .unwrap_or_else(|e| panic!("encode {packet:?} for {v}: {e}"))
        .to_vec()
}

// ---------------------------------------------------------------------------------------
// RawClient: a blocking TCP connection speaking raw bytes
// ---------------------------------------------------------------------------------------

/// Why a read ended without what was asked for.
#[derive(Debug)]
pub enum RecvError {
    Timeout,
    /// The server closed the connection (EOF or reset).
    Closed,
    Io(io::Error),
}

/// A blocking MQTT connection over `std::net::TcpStream`, read through one buffer so that
/// byte-level and packet-level reads can be mixed.
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    /// How long `recv_*` waits by default.
    pub timeout: Duration,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .unwrap_or_else(|e| panic!("TCP connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        RawClient {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            timeout: TIMEOUT,
        }
    }

    /// [`RawClient::connect`] from another local source address (e.g. 127.0.0.2): what a
    /// second machine looks like to per-address limits.
    pub fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> RawClient {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .expect("socket");
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .unwrap_or_else(|e| panic!("bind to {source}: {e}"));
        socket
            .connect_timeout(&addr.into(), TIMEOUT)
            .unwrap_or_else(|e| panic!("TCP connect to {addr} from {source}: {e}"));
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true).expect("TCP_NODELAY");
        RawClient {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            timeout: TIMEOUT,
        }
    }

    /// The client's end of the connection (what the broker sees as its peer).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .unwrap_or_else(|e| panic!("send {}: {e}", to_hex(&bytes[..bytes.len().min(32)])));
    }

    /// Sending may fail once the server has closed the connection; tests of closing use this.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send_packet(&mut self, packet: &Packet, v: ProtocolVersion) {
        let bytes = encode(packet, v);
        self.send(&bytes);
    }

    /// Reads whatever the socket has (at least one byte) into the buffer before `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), RecvError> {
        let now = Instant::now();
        if now >= deadline {
            return Err(RecvError::Timeout);
        }
        self.stream
            .set_read_timeout(Some(deadline - now))
            .expect("set read timeout");
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(RecvError::Timeout)
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Err(RecvError::Closed)
                }
                Err(e) => return Err(RecvError::Io(e)),
            }
        }
    }

    /// The next packet, or why there is none within `timeout`. Bytes that do not decode
    /// are a test failure.
    pub fn try_recv_packet(
        &mut self,
        v: ProtocolVersion,
        timeout: Duration,
    ) -> Result<Packet, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            let head = self.buf[..self.buf.len().min(64)].to_vec();
            match decode(&mut self.buf, Some(v), MAX_PACKET_BYTES) {
                Ok(Decoded::Packet(p)) => return Ok(p),
                Ok(Decoded::Incomplete { .. }) => self.fill(deadline)?,
                Err(e) => panic!(
                    "the server sent bytes that do not decode as MQTT {v}: {e}: {}",
                    to_hex(&head)
                ),
            }
        }
    }

    /// The next packet; fails the test after `self.timeout`.
    pub fn recv_packet(&mut self, v: ProtocolVersion) -> Packet {
        let timeout = self.timeout;
        match self.try_recv_packet(v, timeout) {
            Ok(p) => p,
            Err(e) => panic!("expected a packet within {timeout:?}, got {e:?}"),
        }
    }

    /// The bytes of the next whole packet, fixed header included, or why there is none
    /// within `timeout`.
    pub fn try_recv_raw(&mut self, timeout: Duration) -> Result<Vec<u8>, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            match parse_fixed_header(&self.buf, MAX_PACKET_BYTES) {
                Ok(Frame::Header(h)) if self.buf.len() >= h.packet_len() => {
                    return Ok(self.buf.split_to(h.packet_len()).to_vec());
                }
                Ok(_) => {}
                Err(e) => panic!(
                    "the server sent an invalid fixed header ({e}): {}",
                    to_hex(&self.buf[..self.buf.len().min(64)])
                ),
            }
            self.fill(deadline)?;
        }
    }

    /// The bytes of the next whole packet, fixed header included.
    pub fn recv_raw(&mut self) -> Vec<u8> {
        let timeout = self.timeout;
        self.try_recv_raw(timeout).unwrap_or_else(|e| {
            panic!(
                "expected a packet within {timeout:?}, got {e:?} (buffered: {})",
                to_hex(&self.buf)
            )
        })
    }

    /// Exactly `n` bytes.
    pub fn recv_bytes_exact(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + self.timeout;
        while self.buf.len() < n {
            if let Err(e) = self.fill(deadline) {
                panic!(
                    "expected {n} bytes within {:?}, got {e:?} after {}",
                    self.timeout,
                    to_hex(&self.buf)
                );
            }
        }
        self.buf.split_to(n).to_vec()
    }

    /// The next bytes are exactly `expected` (hex, as written in the spec's tables).
    pub fn expect_bytes(&mut self, expected: &str) {
        let want = hex(expected);
        let got = self.recv_bytes_exact(want.len());
        assert_eq!(
            to_hex(&got),
            to_hex(&want),
            "server bytes differ from the spec's"
        );
    }

    /// The next packet is exactly [`publish_bytes`]`(v, first, topic, id, payload)`, where the
    /// packet id of a QoS 1 or 2 PUBLISH is the server's choice: it is read from its place,
    /// checked to be non-zero [MQTT-2.3.1-1] and returned.
    pub fn expect_publish(
        &mut self,
        v: ProtocolVersion,
        first: u8,
        topic_name: &str,
        payload: &[u8],
    ) -> Option<u16> {
        let raw = self.recv_raw();
        let qos = (first >> 1) & 0b11;
        let id = (qos > 0).then(|| {
            let header = raw
                .iter()
                .skip(1)
                .position(|b| b & 0x80 == 0)
                .map_or(1, |i| i + 2);
            let at = header + 2 + topic_name.len();
            raw.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .unwrap_or(0)
        });
        assert_ne!(id, Some(0), "PUBLISH with packet id 0: {}", to_hex(&raw));
        assert_eq!(
            to_hex(&raw),
            to_hex(&publish_bytes(v, first, topic_name, id, payload)),
            "PUBLISH differs from the expected bytes"
        );
        id
    }

    /// The server closes the connection within `timeout` without sending anything more.
    pub fn expect_closed(&mut self, timeout: Duration) {
        assert!(
            self.buf.is_empty(),
            "expected the connection to close, but the server sent {}",
            to_hex(&self.buf)
        );
        let deadline = Instant::now() + timeout;
        match self.fill(deadline) {
            Err(RecvError::Closed) => {}
            Ok(()) => panic!(
                "expected the connection to close, but the server sent {}",
                to_hex(&self.buf)
            ),
            Err(e) => panic!("expected the connection to close within {timeout:?}, got {e:?}"),
        }
    }

    /// The connection closes within `timeout`; a v5 server may first send a DISCONNECT,
    /// and if it does, its reason code must be `reason`.
    pub fn expect_closed_allowing_disconnect(&mut self, reason: u8, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        if self.buf.is_empty() {
            match self.fill(deadline) {
                Err(RecvError::Closed) => return,
                Ok(()) => {}
                Err(e) => panic!("expected the connection to close within {timeout:?}: {e:?}"),
            }
        }
        self.expect_disconnect(reason);
        self.expect_closed(deadline.saturating_duration_since(Instant::now()));
    }

    /// The next packet is a v5 DISCONNECT with `reason`: `e0 <len> <reason> [properties]`.
    pub fn expect_disconnect(&mut self, reason: u8) {
        let timeout = self.timeout;
        let raw = self.try_recv_raw(timeout).unwrap_or_else(|e| {
            panic!("expected DISCONNECT {reason:#04x} within {timeout:?}, got {e:?}")
        });
        assert_eq!(
            raw[0],
            0xe0,
            "expected DISCONNECT {reason:#04x}, got {}",
            to_hex(&raw)
        );
        assert!(
            raw.len() >= 3 && raw[2] == reason,
            "expected DISCONNECT with reason {reason:#04x}, got {}",
            to_hex(&raw)
        );
        let mut bytes = BytesMut::from(&raw[..]);
        assert!(
            matches!(
                decode(&mut bytes, Some(V5), MAX_PACKET_BYTES),
                Ok(Decoded::Packet(Packet::Disconnect(_)))
            ),
            "DISCONNECT does not decode: {}",
            to_hex(&raw)
        );
    }

    /// Nothing arrives for `duration` (and the connection stays open).
    pub fn expect_nothing(&mut self, duration: Duration) {
        assert!(
            self.buf.is_empty(),
            "expected nothing, but the server sent {}",
            to_hex(&self.buf)
        );
        match self.fill(Instant::now() + duration) {
            Err(RecvError::Timeout) => {}
            Ok(()) => panic!(
                "expected nothing, but the server sent {}",
                to_hex(&self.buf)
            ),
            Err(e) => panic!("expected nothing for {duration:?}, got {e:?}"),
        }
    }

    /// The TCP stream itself, for a test that reads and writes bytes at its own pace (e.g.
    /// a pipelined publisher), with the bytes already received and not yet read.
    pub fn into_stream(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.buf.to_vec())
    }

    /// Closes the TCP connection without DISCONNECT: an ungraceful close for the server.
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------------------
// Client: an accepted MQTT connection of one protocol version
// ---------------------------------------------------------------------------------------

/// An MQTT connection after a successful CONNECT/CONNACK. Waiting for one kind of packet
/// (an ack) keeps the others that arrive meanwhile, in order, for the next `recv`.
pub struct Client {
    raw: RawClient,
    pub version: ProtocolVersion,
    pub connack: ConnAck,
    pending: VecDeque<Packet>,
    next_id: u16,
}

impl Deref for Client {
    type Target = RawClient;
    fn deref(&self) -> &RawClient {
        &self.raw
    }
}

impl DerefMut for Client {
    fn deref_mut(&mut self) -> &mut RawClient {
        &mut self.raw
    }
}

impl Client {
    /// Sends `connect` and requires a CONNACK that accepts it.
    pub fn connect(addr: SocketAddr, connect: Connect) -> Client {
        let v = connect.protocol;
        let id = connect.client_id.as_str().to_owned();
        let mut raw = RawClient::connect(addr);
        raw.send_packet(&Packet::Connect(Box::new(connect)), v);
        let connack = match raw.recv_packet(v) {
            Packet::ConnAck(c) => *c,
            other => panic!("{id:?}: expected CONNACK, got {other:?}"),
        };
        assert_eq!(
            connack.reason,
            ReasonCode::Success,
            "{id:?}: CONNECT refused: {connack:?}"
        );
        Client {
            raw,
            version: v,
            connack,
            pending: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Gives up the packet layer: what remains is the byte stream.
    pub fn into_raw(self) -> RawClient {
        assert!(
            self.pending.is_empty(),
            "unread packets: {:?}",
            self.pending
        );
        self.raw
    }

    pub fn session_present(&self) -> bool {
        self.connack.session_present
    }

    /// A packet identifier not used before by this client (1, 2, ... wrapping, never 0).
    pub fn next_packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.next_id
    }

    /// Sends `packet` encoded for this connection's version ([`RawClient::send`] sends bytes).
    pub fn send_mqtt(&mut self, packet: &Packet) {
        let v = self.version;
        self.raw.send_packet(packet, v);
    }

    /// The next packet (kept ones first).
    pub fn recv(&mut self) -> Packet {
        if let Some(p) = self.pending.pop_front() {
            return p;
        }
        let v = self.version;
        self.raw.recv_packet(v)
    }

    /// The next packet (kept ones first) if one arrives within `timeout`; `None` if none
    /// does. Panics if the connection fails.
    pub fn try_recv(&mut self, timeout: Duration) -> Option<Packet> {
        if let Some(p) = self.pending.pop_front() {
            return Some(p);
        }
        let v = self.version;
        match self.raw.try_recv_packet(v, timeout) {
            Ok(p) => Some(p),
            Err(RecvError::Timeout) => None,
            Err(e) => panic!("expected a packet or nothing within {timeout:?}, got {e:?}"),
        }
    }

    /// The first packet `want` accepts; others that arrive before it are kept for `recv`.
    pub fn recv_matching(&mut self, what: &str, want: impl Fn(&Packet) -> bool) -> Packet {
        if let Some(i) = self.pending.iter().position(&want) {
            return self.pending.remove(i).expect("index in range");
        }
        let v = self.version;
        let deadline = Instant::now() + self.raw.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.raw.try_recv_packet(v, left) {
                Ok(p) if want(&p) => return p,
                Ok(p) => self.pending.push_back(p),
                Err(e) => panic!(
                    "expected {what}, got {e:?}; meanwhile received {:?}",
                    self.pending
                ),
            }
        }
    }

    /// The bytes of the next packet; no decoded packet may be waiting.
    pub fn recv_raw(&mut self) -> Vec<u8> {
        assert!(
            self.pending.is_empty(),
            "unread packets: {:?}",
            self.pending
        );
        self.raw.recv_raw()
    }

    /// See [`RawClient::expect_publish`]; no decoded packet may be waiting.
    pub fn expect_publish(&mut self, first: u8, topic_name: &str, payload: &[u8]) -> Option<u16> {
        assert!(
            self.pending.is_empty(),
            "unread packets: {:?}",
            self.pending
        );
        let v = self.version;
        self.raw.expect_publish(v, first, topic_name, payload)
    }

    /// Acknowledges the server's PUBLISH `id` of `qos` (see [`Client::ack`]).
    pub fn ack_id(&mut self, qos: QoS, id: Option<u16>) {
        let mut p = publish("ack/placeholder", b"", qos, id.unwrap_or(1));
        p.packet_id = id.map(packet_id);
        self.ack(&p);
    }

    /// Nothing arrives for `duration`.
    pub fn expect_nothing(&mut self, duration: Duration) {
        assert!(
            self.pending.is_empty(),
            "expected nothing, but received {:?}",
            self.pending
        );
        self.raw.expect_nothing(duration);
    }

    pub fn expect_closed(&mut self, timeout: Duration) {
        assert!(
            self.pending.is_empty(),
            "expected the connection to close, but received {:?}",
            self.pending
        );
        self.raw.expect_closed(timeout);
    }

    /// SUBSCRIBE and its SUBACK (same packet identifier [MQTT-3.8.4-2]).
    pub fn subscribe(&mut self, filters: &[(&str, QoS)]) -> SubAck {
        let id = self.next_packet_id();
        self.send_mqtt(&Packet::Subscribe(subscribe(id, filters)));
        match self.recv_matching("SUBACK", |p| matches!(p, Packet::SubAck(_))) {
            Packet::SubAck(s) => {
                assert_eq!(s.packet_id.get(), id, "SUBACK for another SUBSCRIBE");
                assert_eq!(s.reasons.len(), filters.len(), "one SUBACK code per filter");
                s
            }
            _ => unreachable!(),
        }
    }

    /// SUBSCRIBE to one filter and require the requested QoS to be granted.
    pub fn subscribe_one(&mut self, topic_filter: &str, qos: QoS) {
        let ack = self.subscribe(&[(topic_filter, qos)]);
        assert_eq!(
            ack.reasons[0] as u8, qos as u8,
            "SUBACK for {topic_filter:?} at {qos:?}"
        );
    }

    pub fn unsubscribe(&mut self, filters: &[&str]) -> UnsubAck {
        let id = self.next_packet_id();
        self.send_mqtt(&Packet::Unsubscribe(unsubscribe(id, filters)));
        match self.recv_matching("UNSUBACK", |p| matches!(p, Packet::UnsubAck(_))) {
            Packet::UnsubAck(u) => {
                assert_eq!(u.packet_id.get(), id, "UNSUBACK for another UNSUBSCRIBE");
                u
            }
            _ => unreachable!(),
        }
    }

    /// Publishes and completes the QoS flow: waits for PUBACK, or PUBREC then PUBCOMP.
    pub fn publish(&mut self, topic_name: &str, payload: &[u8], qos: QoS) {
        let id = self.next_packet_id();
        self.publish_packet(publish(topic_name, payload, qos, id));
    }

    pub fn publish_retained(&mut self, topic_name: &str, payload: &[u8], qos: QoS) {
        let id = self.next_packet_id();
        let mut p = publish(topic_name, payload, qos, id);
        p.retain = true;
        self.publish_packet(p);
    }

    /// Sends `p` and completes its QoS flow.
    pub fn publish_packet(&mut self, p: Publish) {
        let qos = p.qos;
        let id = p.packet_id;
        self.send_mqtt(&Packet::Publish(p));
        match (qos, id) {
            (QoS::AtMostOnce, _) => {}
            (QoS::AtLeastOnce, Some(id)) => {
                self.recv_matching(
                    "PUBACK",
                    |p| matches!(p, Packet::PubAck(a) if a.packet_id == id),
                );
            }
            (QoS::ExactlyOnce, Some(id)) => {
                self.recv_matching(
                    "PUBREC",
                    |p| matches!(p, Packet::PubRec(a) if a.packet_id == id),
                );
                self.send_mqtt(&Packet::PubRel(Ack::new(id)));
                self.recv_matching(
                    "PUBCOMP",
                    |p| matches!(p, Packet::PubComp(a) if a.packet_id == id),
                );
            }
            (_, None) => panic!("QoS {qos:?} PUBLISH without a packet identifier"),
        }
    }

    /// The next packet, which must be a PUBLISH; not acknowledged.
    pub fn recv_publish(&mut self) -> Publish {
        match self.recv() {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// The next PUBLISH, acknowledged as its QoS requires (PUBACK; PUBREC, PUBREL, PUBCOMP).
    pub fn recv_message(&mut self) -> Publish {
        let p = self.recv_publish();
        self.ack(&p);
        p
    }

    /// Acknowledges a PUBLISH received from the server.
    pub fn ack(&mut self, p: &Publish) {
        match (p.qos, p.packet_id) {
            (QoS::AtMostOnce, _) => {}
            (QoS::AtLeastOnce, Some(id)) => self.send_mqtt(&Packet::PubAck(Ack::new(id))),
            (QoS::ExactlyOnce, Some(id)) => {
                self.send_mqtt(&Packet::PubRec(Ack::new(id)));
                self.recv_matching(
                    "PUBREL",
                    |p| matches!(p, Packet::PubRel(a) if a.packet_id == id),
                );
                self.send_mqtt(&Packet::PubComp(Ack::new(id)));
            }
            (q, None) => panic!("QoS {q:?} PUBLISH from the server without a packet identifier"),
        }
    }

    /// PINGREQ, answered by exactly PINGRESP `d0 00` [MQTT-3.12.4-1].
    pub fn ping(&mut self) {
        assert!(
            self.pending.is_empty(),
            "unread packets: {:?}",
            self.pending
        );
        self.raw.send(&hex("c0 00"));
        self.raw.expect_bytes("d0 00");
    }

    /// DISCONNECT (normal) and close.
    pub fn disconnect(mut self) {
        let v = self.version;
        self.raw
            .send_packet(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)), v);
        let _ = self.raw.stream.shutdown(Shutdown::Write);
        // The server closes after DISCONNECT; waiting for it makes the end of the session
        // observable before the test goes on (e.g. before a reconnect with the same id).
        let _ = self.raw.fill(Instant::now() + TIMEOUT);
    }
}

/// The payload as text, for messages.
pub fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// `(topic, payload)` of a PUBLISH, for comparisons.
pub fn message(p: &Publish) -> (String, String) {
    (p.topic.as_str().to_owned(), text(p))
}

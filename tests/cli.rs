//! The `ringmq` binary's command line: exit codes and messages, run as a user would.
//!
//! Exit codes: 0 `check-config` ok or clean shutdown, 1 bad configuration or start failure,
//! 2 usage error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ringmq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(args)
        .output()
        .expect("run ringmq")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn default_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/ringmq.toml")
}

/// A config file in the temp dir, removed on drop.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "ringmq-cli-test-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write temp config");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn check_config_prints_ok_for_the_default_file() {
    let out = ringmq(&["check-config", default_file().to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}

#[test]
fn check_config_names_the_bad_key_and_exits_1() {
    let file = TempConfig::new("bad-key", "[limits]\npacket_bytes_max = 3\n");
    let out = ringmq(&["check-config", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("limits.packet_bytes_max: must be between 16 and 268435460; got 3"),
        "{err}"
    );
    assert!(err.contains(file.path()), "{err}");
}

#[test]
fn check_config_rejects_unknown_keys() {
    let file = TempConfig::new("unknown", "[storage]\nfsync_every = 3\n");
    let out = ringmq(&["check-config", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("storage.fsync_every: unknown field"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringmq-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Waits until `port` accepts connections, or panics after 10 s.
fn wait_listening(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "broker did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn port_held_by_another_process_is_refused_exit_1() {
    // Every shard binds with SO_REUSEPORT; without the guard a second broker would quietly
    // share the port with this listener.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let dir = temp_dir("port");
    let out = ringmq(&["--listen", &addr, "--data-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("Address already in use"), "{err}");
}

#[test]
fn admin_port_held_by_another_process_is_refused_exit_1() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = held.local_addr().unwrap();
    let dir = temp_dir("admin-port");
    let listen = format!("127.0.0.1:{}", free_port());
    // A bare port means 127.0.0.1.
    let port = admin.port().to_string();
    let out = ringmq(&[
        "--listen",
        &listen,
        "--data-dir",
        dir.to_str().unwrap(),
        "--admin-listen",
        &port,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot listen on admin.listen {admin}"))
            && err.contains("change admin.listen or --admin-listen"),
        "{err}"
    );
    let out = ringmq(&["--admin-listen", "localhost:80"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("--admin-listen \"localhost:80\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn data_dir_in_use_is_refused_and_sigterm_stops_cleanly() {
    let dir = temp_dir("lock");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args([
            "--listen",
            &listen,
            "--data-dir",
            dir.to_str().unwrap(),
            "--log-level",
            "warn",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port);

    let other = format!("127.0.0.1:{}", free_port());
    let out = ringmq(&["--listen", &other, "--data-dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is in use by another ringmq process"),
        "{}",
        stderr(&out)
    );

    // SIGTERM: stop accepting, close connections, exit 0.
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    // SAFETY: kill sends a signal to the child we spawned; no memory is involved.
    assert_eq!(unsafe { libc::kill(first.id() as i32, libc::SIGTERM) }, 0);
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_override_is_a_config_error_exit_1() {
    let out = ringmq(&["--cores", "0,0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("runtime.cores: must not name a CPU twice"));

    let out = ringmq(&["--listen", "localhost:1883"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--listen \"localhost:1883\""));
}

#[test]
fn missing_config_file_exits_1() {
    let out = ringmq(&["--config", "/nonexistent/ringmq.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read config file /nonexistent/ringmq.toml"));
}

#[test]
fn every_tuning_preset_passes_check_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning");
    let mut presets: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    presets.sort();
    let names: Vec<_> = presets
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    for expected in [
        "ringmq.toml",
        "low-latency.toml",
        "throughput.toml",
        "many-connections.toml",
        "single-core.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "tuning/{expected} is missing"
        );
    }
    for preset in presets {
        let out = ringmq(&["check-config", preset.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            preset.display(),
            stderr(&out)
        );
    }
}

/// A segment the broker cannot read (here: not a ringmq segment at all) stops it at start
/// with an error naming the file and how to move it aside; moved aside as the message
/// says, the broker starts.
#[test]
fn a_corrupt_segment_stops_the_start_and_can_be_moved_aside() {
    let dir = temp_dir("corrupt");
    let shard = dir.join("shard-0");
    std::fs::create_dir_all(&shard).unwrap();
    let segment = shard.join("00000000000000000000.seg");
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/segments/bad_magic/00000000000000000000.seg"
    );
    std::fs::copy(golden, &segment).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "--listen",
        &listen,
        "--data-dir",
        dir.to_str().unwrap(),
        "--cores",
        "0",
    ];
    let out = ringmq(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(segment.to_str().unwrap()),
        "names the file: {err}"
    );
    assert!(err.contains("bad magic"), "{err}");
    assert!(err.contains(".corrupt"), "says how to move it aside: {err}");

    std::fs::rename(&segment, shard.join("00000000000000000000.seg.corrupt")).unwrap();
    let mut broker = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    // SAFETY: kill sends a signal to the child we spawned; no memory is involved.
    assert_eq!(unsafe { libc::kill(broker.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(broker.wait().unwrap().code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// ringmq passwd
// ---------------------------------------------------------------------------------------

/// Runs `ringmq passwd ARGS`, with `stdin` as standard input (not a terminal: one line is
/// read as the password).
fn passwd(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("passwd")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ringmq passwd");
    if let Some(mut input) = child.stdin.take() {
        // A run that fails before it reads its input closes the pipe: not an error here.
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("wait for ringmq passwd")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read the password file")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn passwd_creates_adds_changes_and_deletes_users() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = file.to_str().unwrap();
    let out = passwd(&["-c", f, "alice"], "wonderland\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("added user \"alice\""),
        "{}",
        stderr(&out)
    );
    // The password is never shown.
    let shown = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!shown.contains("wonderland"), "{shown}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = lines(&file);
    assert_eq!(first.len(), 1);
    assert!(
        first[0].starts_with("alice:$argon2id$v=19$"),
        "{}",
        first[0]
    );
    assert!(!first[0].contains("wonderland"));

    assert_eq!(passwd(&[f, "bob"], "builder\r\n").status.code(), Some(0));
    let out = passwd(&[f, "alice"], "looking glass\n");
    assert!(stderr(&out).contains("changed the password of \"alice\""));
    let now = lines(&file);
    assert_eq!(now.len(), 2);
    assert!(
        now[0].starts_with("alice:") && now[0] != first[0],
        "changed in place"
    );
    assert!(now[1].starts_with("bob:"));

    let out = passwd(&["-D", f, "alice"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let left = lines(&file);
    assert_eq!(left, [now[1].clone()]);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["passwd"]);
}

#[test]
fn passwd_scram_adds_scram_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = file.to_str().unwrap();
    let out = passwd(
        &["-c", "--scram", "--scram-iterations", "8192", f, "alice"],
        "x\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let line = &lines(&file)[0];
    let scram = line.rsplit(':').next().unwrap();
    assert!(scram.starts_with("SCRAM-SHA-256$8192$"), "{line}");
    assert_eq!(scram.split('$').count(), 5, "{line}");
}

#[test]
fn passwd_refuses_bad_requests_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = file.to_str().unwrap();
    let out = passwd(&[f, "alice"], "x\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not exist (use -c to create it)"),
        "{}",
        stderr(&out)
    );
    let out = passwd(&["-c", f, "al:ice"], "x\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot contain ':'"),
        "{}",
        stderr(&out)
    );
    let out = passwd(&["-c", f, "alice"], "\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the password is empty"),
        "{}",
        stderr(&out)
    );
    assert!(!file.exists(), "nothing written on failure");
    assert_eq!(passwd(&["-c", f, "alice"], "x\n").status.code(), Some(0));
    let out = passwd(&["-D", f, "bob"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("user \"bob\" is not in"),
        "{}",
        stderr(&out)
    );
    // -c and -D together is a usage error.
    assert_eq!(passwd(&["-c", "-D", f, "alice"], "").status.code(), Some(2));
    // A file that is not a password file is not overwritten.
    std::fs::write(&file, "not a password file\n").unwrap();
    let out = passwd(&[f, "alice"], "x\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 1: expected USER:HASH"),
        "{}",
        stderr(&out)
    );
    assert_eq!(lines(&file), ["not a password file"]);
}

#[test]
fn check_config_reads_the_password_and_acl_files() {
    let dir = tempfile::tempdir().unwrap();
    let passwd_file = dir.path().join("passwd");
    let acl_file = dir.path().join("acl");
    std::fs::write(&passwd_file, "alice:plaintext\n").unwrap();
    std::fs::write(&acl_file, "topic read a/#\n").unwrap();
    let config = TempConfig::new(
        "auth-files",
        &format!(
            "[auth]\npassword_file = \"{}\"\nacl_file = \"{}\"\n",
            passwd_file.display(),
            acl_file.display()
        ),
    );
    let out = ringmq(&["check-config", config.path()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("password file"), "{err}");
    assert!(
        err.contains("line 1: the hash is not a PHC string"),
        "{err}"
    );
    std::fs::remove_file(&passwd_file).unwrap();
    let out = passwd(&["-c", passwd_file.to_str().unwrap(), "alice"], "x\n");
    assert_eq!(out.status.code(), Some(0));
    let out = ringmq(&["check-config", config.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Runs the broker with `config` (and `RUST_LOG` set to `rust_log`, or removed), waits
/// until it listens, stops it with SIGTERM, and returns what it logged.
fn log_of_a_run(name: &str, config: &str, rust_log: Option<&str>) -> String {
    let file = TempConfig::new(name, config);
    let dir = temp_dir(name);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmq"));
    cmd.args(["--config", file.0.to_str().unwrap(), "--listen", &listen])
        .args(["--data-dir", dir.to_str().unwrap()])
        .stderr(std::process::Stdio::piped());
    match rust_log {
        Some(v) => cmd.env("RUST_LOG", v),
        None => cmd.env_remove("RUST_LOG"),
    };
    let child = cmd.spawn().unwrap();
    wait_listening(port);
    // SAFETY: kill sends a signal to the child we spawned; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
    stderr(&out)
}

// log.format = "json": every line is one JSON object with its level.
#[test]
fn json_log_format_writes_one_object_per_line() {
    let log = log_of_a_run("json", "[log]\nformat = \"json\"\nlevel = \"info\"\n", None);
    let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty(), "nothing logged");
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains("\"level\":"),
            "not a JSON log line: {line}"
        );
    }
    assert!(log.contains("\"level\":\"INFO\""), "{log}");
    let text = log_of_a_run("text", "[log]\nformat = \"text\"\n", None);
    assert!(
        text.lines().any(|l| l.contains(" INFO ")) && !text.contains("\"level\":"),
        "{text}"
    );
}

// log.level sets the level; RUST_LOG, when set, wins over it.
#[test]
fn rust_log_wins_over_log_level() {
    let quiet = log_of_a_run("lvl-warn", "[log]\nlevel = \"warn\"\n", None);
    assert!(!quiet.contains(" INFO "), "{quiet}");
    let loud = log_of_a_run("lvl-env", "[log]\nlevel = \"warn\"\n", Some("info"));
    assert!(loud.contains(" INFO "), "{loud}");
    let quiet = log_of_a_run("lvl-env-warn", "[log]\nlevel = \"info\"\n", Some("warn"));
    assert!(!quiet.contains(" INFO "), "{quiet}");
}

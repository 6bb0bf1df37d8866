//! The `ringmq` binary's command line: exit codes and messages, run as a user would.
//!
//! Exit codes: 0 `check-config` ok, 1 bad configuration, 2 usage error or broker core missing.

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

#[test]
fn run_without_broker_core_says_so_and_exits_2() {
    let out = ringmq(&["--listen", "127.0.0.1:18830", "--cores", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not implemented"), "{err}");
    assert!(err.contains("127.0.0.1:18830 (tcp)"), "{err}");
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

//! tuning/ringmq.service: the keys the README promises are there with their values, and,
//! where `systemd-analyze` is installed, systemd itself accepts the file (with the built
//! binary in place of /usr/local/bin/ringmq). Nothing here needs systemd running.

use std::path::Path;
use std::process::Command;

const UNIT: &str = include_str!("../tuning/ringmq.service");

/// The values of `key` in the unit, in order (comments and other keys left out).
fn values(key: &str) -> Vec<&'static str> {
    UNIT.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

#[test]
fn unit_has_the_promised_settings() {
    for (key, want) in [
        ("Type", "simple"),
        (
            "ExecStart",
            "/usr/local/bin/ringmq --config /etc/ringmq/ringmq.toml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("User", "ringmq"),
        ("Group", "ringmq"),
        ("LimitNOFILE", "1048576"),
        ("LimitMEMLOCK", "infinity"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("TimeoutStopSec", "30s"),
    ] {
        assert_eq!(values(key), [want], "{key}");
    }
    assert_eq!(values("RestartSec").len(), 1, "RestartSec");
    // io_uring must stay reachable: a syscall filter would block io_uring_* calls.
    assert!(values("SystemCallFilter").is_empty());
    assert!(values("MemoryDenyWriteExecute").is_empty());
}

#[test]
fn systemd_analyze_accepts_the_unit() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed; only the keys are checked");
        return;
    };
    if !out.status.success() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ringmq-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let unit = UNIT.replace("/usr/local/bin/ringmq", env!("CARGO_BIN_EXE_ringmq"));
    let path = dir.join("ringmq.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about the file itself name it; other units on the machine may be reported too.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ringmq.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify:\n{stderr}");
    assert!(Path::new(env!("CARGO_BIN_EXE_ringmq")).exists());
}

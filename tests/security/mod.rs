//! Helpers of the authentication, ACL and reload tests: password and ACL files for the
//! broker under test, CONNECTs with credentials, and SIGHUP.
//!
//! Password files are made the way an operator makes them: `ringmq passwd` (the binary
//! under test, reading the password from standard input) for ringmq, `mosquitto_passwd -b`
//! for Mosquitto, whose file format differs. ACL files have the same syntax for both.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use ringmq::protocol::{Connect, Packet, ProtocolVersion};

/// A directory holding a password file and an ACL file, removed on drop.
pub struct SecurityFiles {
    dir: tempfile::TempDir,
}

impl Default for SecurityFiles {
    fn default() -> Self {
        Self::new()
    }
}

impl SecurityFiles {
    pub fn new() -> SecurityFiles {
        SecurityFiles {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn passwd_path(&self) -> PathBuf {
        self.dir.path().join("passwd")
    }

    pub fn acl_path(&self) -> PathBuf {
        self.dir.path().join("acl")
    }

    /// Writes the password file anew with `users` (name, password).
    pub fn passwords(&self, users: &[(&str, &str)]) {
        let _ = std::fs::remove_file(self.passwd_path());
        for (i, (user, password)) in users.iter().enumerate() {
            self.set_password(user, password, i == 0);
        }
    }

    /// Adds `user` to the password file, or changes its password; the other lines stay.
    pub fn add_user(&self, user: &str, password: &str) {
        self.set_password(user, password, false);
    }

    fn set_password(&self, user: &str, password: &str, create: bool) {
        let path = self.passwd_path();
        if is_mosquitto() {
            let mut cmd = Command::new("mosquitto_passwd");
            if create {
                cmd.arg("-c");
            }
            let out = cmd
                .arg("-b")
                .arg(&path)
                .arg(user)
                .arg(password)
                .output()
                .expect("run mosquitto_passwd");
            assert!(out.status.success(), "mosquitto_passwd: {out:?}");
        } else {
            let args: &[&str] = if create { &["-c"] } else { &[] };
            passwd(&path, args, user, Some(password));
        }
    }

    /// Writes the ACL file.
    pub fn acl(&self, text: &str) {
        std::fs::write(self.acl_path(), text).expect("write ACL file");
    }

    /// Options with this password file (when `passwords`) and ACL file (when `acl`), plus
    /// `ringmq_auth` (lines of ringmq's `[auth]` table) and `mosquitto` (lines of its
    /// configuration).
    pub fn options(
        &self,
        passwords: bool,
        acl: bool,
        ringmq_auth: &str,
        mosquitto: &str,
    ) -> BrokerOptions {
        let mut toml = String::from("[auth]\n");
        let mut conf = String::new();
        if passwords {
            toml.push_str(&format!(
                "password_file = \"{}\"\n",
                self.passwd_path().display()
            ));
            conf.push_str(&format!(
                "password_file {}\nallow_anonymous false\n",
                self.passwd_path().display()
            ));
        }
        if acl {
            toml.push_str(&format!("acl_file = \"{}\"\n", self.acl_path().display()));
            conf.push_str(&format!("acl_file {}\n", self.acl_path().display()));
        }
        toml.push_str(ringmq_auth);
        conf.push_str(mosquitto);
        BrokerOptions::default().config(&toml, &conf)
    }
}

/// Runs `ringmq passwd ARGS FILE USER`, feeding `password` (a line) on standard input;
/// returns the exit code and standard error.
pub fn passwd(file: &Path, args: &[&str], user: &str, password: Option<&str>) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("passwd")
        .args(args)
        .arg(file)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringmq passwd");
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(p) = password {
            stdin
                .write_all(format!("{p}\n").as_bytes())
                .expect("write the password");
        }
    }
    let out = child.wait_with_output().expect("wait for ringmq passwd");
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !args.contains(&"-D") && password.is_some() {
        assert_eq!(code, 0, "ringmq passwd: {stderr}");
    }
    (code, stderr)
}

/// A CONNECT of `client_id` with optional credentials.
pub fn connect_as(
    v: ProtocolVersion,
    client_id: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Connect {
    let mut c = connect(v, client_id);
    c.username = user.map(mqtt_str);
    c.password = password.map(|p| bytes::Bytes::copy_from_slice(p.as_bytes()));
    c
}

/// A connected client that logged in as `user`.
pub fn login(
    broker: &Broker,
    v: ProtocolVersion,
    client_id: &str,
    user: &str,
    password: &str,
) -> Client {
    Client::connect(
        broker.addr(),
        connect_as(v, client_id, Some(user), Some(password)),
    )
}

/// Sends the CONNECT and returns the raw client (the CONNACK not read yet).
pub fn send_connect(broker: &Broker, c: Connect) -> RawClient {
    let v = c.protocol;
    let mut raw = broker.raw();
    raw.send_packet(&Packet::Connect(Box::new(c)), v);
    raw
}

/// SIGHUP to the broker, then waits until it has reloaded: ringmq logs `reload done`
/// once every shard took the new files; Mosquitto reloads in its next loop, so a short
/// pause stands in.
pub fn sighup(broker: &Broker) {
    let before = broker.log_of_this_run().matches("reload done").count();
    let pid = libc::pid_t::try_from(broker.pid()).expect("pid fits pid_t");
    // SAFETY: kill(2) with the id of our own running child; no memory is passed.
    let rc = unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(rc, 0, "SIGHUP: {}", std::io::Error::last_os_error());
    if is_mosquitto() {
        std::thread::sleep(Duration::from_millis(500));
        return;
    }
    let deadline = Instant::now() + TIMEOUT;
    while broker.log_of_this_run().matches("reload done").count() == before {
        assert!(
            Instant::now() < deadline,
            "no `reload done` within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

//! `[[listener]] tls = { ... }`: a listener that speaks MQTT over TLS, and optionally asks
//! clients for certificates (mutual TLS).
//!
//! Validation reads the files (a missing, unreadable or invalid one is a problem naming the
//! key and the path), so that `ringmq check-config` catches what the broker would refuse
//! at start-up. The files are read again at start-up and on every reload (SIGHUP).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Problem;

/// One listener's `tls` table. Paths are relative to the broker's working directory.
///
/// # Invariants
///
/// After `Config::validate`: `cert` and `key` name readable PEM files holding a chain and
/// its matching private key; `ca`, when set, names a PEM file with at least one CA
/// certificate; `require_client_cert` and `use_identity_as_username` are only set with a
/// `ca`, and `use_identity_as_username` only with `require_client_cert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file with the server's certificate chain: its own certificate first, then the
    /// intermediates (not the root). Required.
    pub cert: PathBuf,
    /// PEM file with the private key of `cert` (PKCS#8, PKCS#1 RSA or SEC1 EC). Required.
    pub key: PathBuf,
    /// PEM file with the CA certificates that client certificates are verified against.
    /// Default none: clients are not asked for a certificate. With a `ca` and without
    /// `require_client_cert`, a client may go without one, but one it presents must verify.
    pub ca: PathBuf,
    /// Refuse the handshake of a client that presents no certificate (one that does not
    /// verify against `ca`, or has expired, is always refused). Needs `ca`. Default false.
    pub require_client_cert: bool,
    /// The client certificate's identity becomes the connection's MQTT user name, in place
    /// of the CONNECT's User Name (whose password is then not used: the certificate is the
    /// credential): its subject Common Name, or, without one, its first DNS, e-mail or URI
    /// Subject Alternative Name. A certificate with neither is refused (CONNACK Not
    /// authorized). Needs `require_client_cert`. Default false.
    pub use_identity_as_username: bool,
    /// Lowest TLS version offered: "1.2" (TLS 1.2 and 1.3) or "1.3". Default "1.2".
    pub min_version: TlsVersion,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            ca: PathBuf::new(),
            require_client_cert: false,
            use_identity_as_username: false,
            min_version: TlsVersion::V1_2,
        }
    }
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 (RFC 8446).
    #[serde(rename = "1.3")]
    V1_3,
}

impl TlsConfig {
    /// Whether client certificates are asked for (a `ca` is set).
    pub fn verifies_clients(&self) -> bool {
        !self.ca.as_os_str().is_empty()
    }

    /// Checks the keys against each other, then reads and parses the files. `prefix` is the
    /// table's key path, e.g. `listener[1].tls`.
    pub(super) fn validate(&self, prefix: &str, problems: &mut Vec<Problem>) {
        let before = problems.len();
        for (name, path) in [("cert", &self.cert), ("key", &self.key)] {
            if path.as_os_str().is_empty() {
                problems.push(Problem::new(
                    format!("{prefix}.{name}"),
                    "\"\"",
                    format!("must name a PEM file ({})", what_file(name)),
                ));
            }
        }
        if !self.verifies_clients() {
            for (name, set) in [
                ("require_client_cert", self.require_client_cert),
                ("use_identity_as_username", self.use_identity_as_username),
            ] {
                if set {
                    problems.push(Problem::new(
                        format!("{prefix}.{name}"),
                        "true",
                        format!(
                            "needs {prefix}.ca: the CA file client certificates are verified \
                             against"
                        ),
                    ));
                }
            }
        } else if self.use_identity_as_username && !self.require_client_cert {
            problems.push(Problem::new(
                format!("{prefix}.use_identity_as_username"),
                "true",
                format!(
                    "needs {prefix}.require_client_cert = true: without a certificate there \
                     is no identity to use"
                ),
            ));
        }
        if problems.len() > before {
            return;
        }
        if let Err(e) = crate::tls::server_config(self) {
            problems.push(Problem::new(
                format!("{prefix}.{}", e.key()),
                format!("\"{}\"", e.path().display()),
                e.reason(),
            ));
        }
    }
}

/// What the file named by key `name` must hold, for error messages.
pub(crate) fn what_file(name: &str) -> &'static str {
    match name {
        "cert" => "the server's certificate chain, its own certificate first",
        "key" => "the private key of the certificate: PKCS#8, PKCS#1 RSA or SEC1 EC",
        _ => "the CA certificates client certificates are verified against",
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ConfigError, Overrides};
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    /// A self-signed certificate and its key, and a CA, as PEM files in `dir`.
    fn files(dir: &Path) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        let other = KeyPair::generate().unwrap();
        std::fs::write(dir.join("other.key"), other.serialize_pem()).unwrap();
        std::fs::write(dir.join("garbage.pem"), "not pem at all\n").unwrap();
    }

    /// A config with one TLS listener whose table is `tls` (paths relative to `dir`).
    fn config(dir: &Path, tls: &str) -> Result<Config, ConfigError> {
        let tls = tls.replace("DIR", &dir.display().to_string());
        Config::from_toml(
            &format!("[[listener]]\nbind = \"127.0.0.1:8883\"\ntls = {{ {tls} }}\n"),
            "test.toml",
        )
    }

    fn problems(dir: &Path, tls: &str) -> Vec<String> {
        let config = config(dir, tls).unwrap();
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => {
                problems.iter().map(ToString::to_string).collect()
            }
            Err(e) => panic!("{e}"),
        }
    }

    const GOOD: &str = "cert = \"DIR/server.pem\", key = \"DIR/server.key\"";

    #[test]
    fn a_tls_listener_with_good_files_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        assert_eq!(problems(dir.path(), GOOD), Vec::<String>::new());
        let mutual = format!(
            "{GOOD}, ca = \"DIR/ca.pem\", require_client_cert = true, \
             use_identity_as_username = true, min_version = \"1.3\""
        );
        assert_eq!(problems(dir.path(), &mutual), Vec::<String>::new());
        let c = config(dir.path(), &mutual).unwrap();
        let tls = c.listeners[0].tls.as_ref().unwrap();
        assert!(tls.require_client_cert && tls.use_identity_as_username);
        assert_eq!(tls.min_version, TlsVersion::V1_3);
        assert_eq!(c.listener_summary(), "127.0.0.1:8883 (tcp, tls)");
    }

    #[test]
    fn a_missing_file_names_the_key_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let p = problems(
            dir.path(),
            "cert = \"DIR/nope.pem\", key = \"DIR/server.key\"",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("listener[0].tls.cert: cannot read the file"),
            "{p:?}"
        );
        assert!(p[0].contains("nope.pem"), "{p:?}");
        let p = problems(dir.path(), &format!("{GOOD}, ca = \"DIR/no-ca.pem\""));
        assert!(p[0].starts_with("listener[0].tls.ca: cannot read"), "{p:?}");
    }

    #[test]
    fn files_without_what_the_key_needs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let p = problems(
            dir.path(),
            "cert = \"DIR/garbage.pem\", key = \"DIR/server.key\"",
        );
        assert!(
            p[0].starts_with("listener[0].tls.cert: no CERTIFICATE block"),
            "{p:?}"
        );
        let p = problems(
            dir.path(),
            "cert = \"DIR/server.pem\", key = \"DIR/server.pem\"",
        );
        assert!(
            p[0].starts_with("listener[0].tls.key: no private key"),
            "{p:?}"
        );
        let p = problems(
            dir.path(),
            "cert = \"DIR/server.pem\", key = \"DIR/other.key\"",
        );
        assert!(
            p[0].starts_with("listener[0].tls.key: does not go with"),
            "{p:?}"
        );
        let p = problems(dir.path(), &format!("{GOOD}, ca = \"DIR/garbage.pem\""));
        assert!(
            p[0].starts_with("listener[0].tls.ca: no CERTIFICATE block"),
            "{p:?}"
        );
    }

    #[test]
    fn cert_and_key_are_required_and_client_options_need_a_ca() {
        let dir = tempfile::tempdir().unwrap();
        let p = problems(dir.path(), "");
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("listener[0].tls.cert: must name a PEM file"));
        assert!(p[1].starts_with("listener[0].tls.key: must name a PEM file"));
        files(dir.path());
        let p = problems(
            dir.path(),
            &format!("{GOOD}, require_client_cert = true, use_identity_as_username = true"),
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("listener[0].tls.require_client_cert: needs listener[0].tls.ca"));
        assert!(p[1].starts_with("listener[0].tls.use_identity_as_username: needs"));
        let p = problems(
            dir.path(),
            &format!("{GOOD}, ca = \"DIR/ca.pem\", use_identity_as_username = true"),
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("needs listener[0].tls.require_client_cert = true"),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_keys_and_versions_are_parse_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = config(dir.path(), "cert = \"a\", crt = \"b\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listener[0].tls.crt: unknown field `crt`"),
            "{err}"
        );
        let err = config(dir.path(), "min_version = \"1.1\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listener[0].tls.min_version: unknown variant `1.1`"),
            "{err}"
        );
    }

    #[test]
    fn listen_override_gives_plain_listeners() {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let mut c = config(dir.path(), GOOD).unwrap();
        let overrides = Overrides {
            listen: vec!["127.0.0.1:1883".into()],
            ..Overrides::default()
        };
        c.apply_overrides(&overrides).unwrap();
        assert_eq!(c.listeners[0].tls, None);
    }

    /// The commented examples of the default file are valid TOML for this struct.
    #[test]
    fn the_default_files_commented_tls_examples_parse() {
        let blocks: Vec<String> = crate::config::tests::commented_listener_examples()
            .into_iter()
            // The WebSocket examples are checked in config::tests.
            .filter(|block| !block.contains("kind = \"ws\""))
            .collect();
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        for block in &blocks {
            let c = Config::from_toml(block, "example").unwrap_or_else(|e| panic!("{e}"));
            let tls = c.listeners[0].tls.as_ref().expect("a tls table");
            assert_eq!(tls.cert, Path::new("server.pem"));
            assert_eq!(tls.key, Path::new("server.key"));
        }
        let mutual = Config::from_toml(&blocks[1], "example").unwrap();
        let tls = mutual.listeners[0].tls.as_ref().unwrap();
        assert!(tls.require_client_cert && tls.use_identity_as_username);
        assert_eq!(mutual.listeners[0].bind.to_string(), "0.0.0.0:8884");
        assert_eq!(
            Config::from_toml(&blocks[0], "example").unwrap().listeners[0]
                .bind
                .to_string(),
            "0.0.0.0:8883"
        );
    }
}

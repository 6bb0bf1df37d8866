//! TLS listeners: rustls server configurations built from PEM files, swapped on reload, and
//! the TLS stream a connection runs over.
//!
//! - [`server_config`] reads a listener's `tls` files into a rustls `ServerConfig` (crypto
//!   from `ring`; TLS 1.2 and 1.3; client certificates verified against the `ca` file).
//! - [`TlsAcceptor`] is one TLS listener, shared by every shard: the configuration that new
//!   handshakes use, which [`TlsAcceptor::reload`] replaces (connections already up keep
//!   the one they started with: rustls holds it in each connection), and counters.
//! - [`TlsStream`] is a connection's TLS state over its glommio socket; its handshake and
//!   every read and write are non-blocking, so a slow or hostile client never holds a shard.
//! - [`identity`] finds the user name in a client certificate.
//!
//! Files are read at start-up and by the SIGHUP thread (`shard::reload::steps`), never on a shard.

pub mod identity;
mod stream;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;

use crate::config::{TlsConfig, TlsVersion};
pub use stream::{CertUsername, TlsState, TlsStream};

/// Why a listener's TLS files could not be turned into a server configuration. Each error
/// names the `tls` key (`cert`, `key` or `ca`) whose file is at fault, and the path.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{key} {}: cannot read the file: {source}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file was read but does not hold what the key needs.
    #[error("{key} {}: {why}", path.display())]
    Invalid {
        key: &'static str,
        path: PathBuf,
        why: String,
    },
}

impl TlsError {
    /// The `tls` key whose file is at fault.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::Read { key, .. } | TlsError::Invalid { key, .. } => key,
        }
    }

    /// The file at fault.
    pub fn path(&self) -> &Path {
        match self {
            TlsError::Read { path, .. } | TlsError::Invalid { path, .. } => path,
        }
    }

    /// What is wrong and what the file must hold, without the key and path.
    pub fn reason(&self) -> String {
        let what = crate::config::tls::what_file(self.key());
        match self {
            TlsError::Read { source, .. } => {
                format!("cannot read the file ({source}); it must be a PEM file with {what}")
            }
            TlsError::Invalid { why, .. } => format!("{why}; it must be a PEM file with {what}"),
        }
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

fn invalid(key: &'static str, path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        key,
        path: path.to_owned(),
        why: why.to_string(),
    }
}

/// Every certificate of a PEM file, in order; an error when there is none.
fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(key, path, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// Builds the rustls configuration a listener's handshakes use, reading its files.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates("cert", &cfg.cert)?;
    let key_pem = read("key", &cfg.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no private key found".to_owned(),
            other => format!("not a valid PEM private key: {other}"),
        };
        invalid("key", &cfg.key, why)
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match cfg.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| invalid("cert", &cfg.cert, e))?;
    let builder = if cfg.verifies_clients() {
        let mut roots = RootCertStore::empty();
        for ca in certificates("ca", &cfg.ca)? {
            roots
                .add(ca)
                .map_err(|e| invalid("ca", &cfg.ca, format!("not a usable CA certificate: {e}")))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if cfg.require_client_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier.build().map_err(|e| invalid("ca", &cfg.ca, e))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    // Fails when the key is not the certificate's, or either does not parse.
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        invalid(
            "key",
            &cfg.key,
            format!("does not go with {}: {e}", cfg.cert.display()),
        )
    })?;
    Ok(Arc::new(config))
}

/// One TLS listener, shared by every shard.
///
/// The configuration is behind a lock that new handshakes take for the time of an `Arc`
/// clone and a reload takes for the time of a swap: never held across I/O, so a shard never
/// waits on it for long. (A reload reads its files before it takes the lock.)
pub struct TlsAcceptor {
    bind: SocketAddr,
    cfg: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    handshakes: AtomicU64,
    failures: AtomicU64,
}

impl TlsAcceptor {
    /// Reads the listener's files.
    pub fn new(bind: SocketAddr, cfg: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
        Ok(TlsAcceptor {
            bind,
            cfg: cfg.clone(),
            current: RwLock::new(server_config(cfg)?),
            handshakes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// The configuration for a new handshake.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again and, if they make a valid configuration, uses it for new
    /// handshakes; otherwise the one in use stays. Blocks on file I/O: call it off the
    /// shards.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = server_config(&self.cfg)?;
        match self.current.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }

    /// Whether a client certificate's identity replaces the CONNECT's User Name.
    pub fn use_identity_as_username(&self) -> bool {
        self.cfg.use_identity_as_username
    }

    /// The listener's address.
    pub fn bind(&self) -> SocketAddr {
        self.bind
    }

    /// Counts a handshake that completed.
    pub fn count_handshake(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a handshake that failed or timed out.
    pub fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Handshakes completed and failed so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.handshakes.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// Reloads every listener's files (see [`TlsAcceptor::reload`]): a summary, or what
/// failed. A listener whose files fail keeps its configuration; the others still reload.
/// Blocks on file I/O: call it off the shards.
pub fn reload_all(acceptors: &[Arc<TlsAcceptor>]) -> Result<String, String> {
    let failures: Vec<String> = acceptors
        .iter()
        .filter_map(|a| {
            a.reload()
                .err()
                .map(|e| format!("listener {}: {e}", a.bind()))
        })
        .collect();
    if failures.is_empty() {
        Ok(format!("{} TLS listener(s) reloaded", acceptors.len()))
    } else {
        Err(format!(
            "TLS files not reloaded, the previous ones stay in use: {}",
            failures.join("; ")
        ))
    }
}

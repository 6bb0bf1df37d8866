//! What the broker checks clients against, as one immutable snapshot ([`Security`]): the
//! authenticator (the password file), anonymous policy, SCRAM credentials and the ACL.
//! Loaded at start-up and on SIGHUP off the shards; every shard swaps in the new snapshot
//! from the [`SecurityCell`] and re-checks its sessions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::acl::{Acl, ClientRules, READ, WRITE};
use super::passwd::{self, Fingerprint, LineError, PasswordFile};
use super::PasswordStore;
use crate::config::AuthConfig;

/// Who a client is, once its CONNECT was accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// The user name: proved by a password or SCRAM, or (without a password file) as the
    /// client gave it. `None`: anonymous.
    pub user: Option<Arc<str>>,
    /// The password-file line the client proved itself against, when it did: a reload
    /// that changes or removes it ends the connection.
    pub credential: Option<Fingerprint>,
    /// The user name is the identity of the client certificate the TLS handshake verified
    /// (`use_identity_as_username`): no password to check, nothing a reload of the
    /// password file revokes.
    pub certificate: bool,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal::default()
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

/// Checks the User Name and Password of a CONNECT. Other authenticators (a database, an
/// external service) plug in by implementing it; the broker calls [`Authenticator::verify`]
/// on its verification threads, never on a shard, so it may block.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Whether `password` is `user`'s; on success, what identifies the credential it
    /// matched (a reload that changes it ends the connection). Unknown users must cost as
    /// much as known ones, so that timing does not tell which names exist.
    fn verify(&self, user: &str, password: Option<&[u8]>) -> Option<Fingerprint>;

    /// Whether `user`, who proved `credential`, may stay connected: run on the shards
    /// after a reload, so it must be a cheap look-up.
    fn still_valid(&self, user: &str, credential: Fingerprint) -> bool;
}

/// The password file as an [`Authenticator`].
#[derive(Debug)]
pub struct PasswordFileAuthenticator {
    file: PasswordFile,
    /// A hash of a random password with the default cost: unknown users are checked
    /// against it, so they take as long as real ones.
    dummy: String,
}

impl PasswordFileAuthenticator {
    pub fn new(file: PasswordFile) -> Result<Self, passwd::HashError> {
        let mut random = [0u8; 16];
        getrandom::getrandom(&mut random)?;
        Ok(PasswordFileAuthenticator {
            file,
            dummy: passwd::argon2_hash(&random)?,
        })
    }
}

impl Authenticator for PasswordFileAuthenticator {
    fn verify(&self, user: &str, password: Option<&[u8]>) -> Option<Fingerprint> {
        let password = password.unwrap_or_default();
        match self.file.get(user) {
            Some(entry) => passwd::verify(&entry.hash, password).then_some(entry.fingerprint),
            None => {
                let _ = passwd::verify(&self.dummy, password);
                None
            }
        }
    }

    fn still_valid(&self, user: &str, credential: Fingerprint) -> bool {
        self.file
            .get(user)
            .is_some_and(|e| e.fingerprint == credential)
    }
}

/// Why the security files could not be loaded: names the file, and the line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot read {what} {}: {source}; fix auth.{} or create the file",
        path.display(),
        key_of(what)
    )]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {} {source}", path.display())]
    Line {
        what: &'static str,
        path: PathBuf,
        source: LineError,
    },
    #[error("cannot prepare the password checks: {0}")]
    Hash(#[from] passwd::HashError),
    #[error("no random numbers from the operating system: {0}")]
    Random(#[from] getrandom::Error),
}

/// One immutable view of who may connect and what each client may do.
#[derive(Debug)]
pub struct Security {
    pub allow_anonymous: bool,
    /// `None`: no password file; a User Name is taken as given.
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// SCRAM-SHA-256 users (those of the password file with SCRAM credentials).
    pub scram: PasswordStore,
    /// Fingerprints of the SCRAM users' lines, for re-checks after a reload.
    scram_lines: HashMap<Box<str>, Fingerprint>,
    /// `None`: no ACL file, everything allowed.
    pub acl: Option<Acl>,
    pub acl_cache_max: usize,
}

impl Security {
    /// Reads the files `[auth]` names. Slow (a hash for the dummy user, file I/O): call it
    /// off the shards.
    pub fn load(config: &AuthConfig) -> Result<Security, LoadError> {
        let mut scram = PasswordStore::new(config.scram_iterations)?;
        let mut scram_lines = HashMap::new();
        let authenticator: Option<Arc<dyn Authenticator>> = match config.password_file() {
            Some(path) => {
                let file = read_parsed(path, "password file", PasswordFile::parse)?;
                for (user, entry) in file.iter() {
                    if let Some(c) = &entry.scram {
                        scram.insert(user, c.clone());
                        scram_lines.insert(Box::from(user), entry.fingerprint);
                    }
                }
                Some(Arc::new(PasswordFileAuthenticator::new(file)?))
            }
            None => None,
        };
        let acl = config
            .acl_file()
            .map(|path| read_parsed(path, "ACL file", Acl::parse))
            .transpose()?;
        Ok(Security {
            allow_anonymous: config.anonymous_allowed(),
            authenticator,
            scram,
            scram_lines,
            acl,
            acl_cache_max: config.acl_cache_topics_max as usize,
        })
    }

    /// The SCRAM user's line fingerprint (what a SCRAM login proved).
    pub fn scram_credential(&self, user: &str) -> Option<Fingerprint> {
        self.scram_lines.get(user).copied()
    }

    /// Whether a connected client may stay: its credential is unchanged, or it needed none.
    pub fn still_valid(&self, p: &Principal) -> bool {
        match (&p.user, p.credential) {
            (None, _) => self.allow_anonymous,
            (Some(user), Some(credential)) => {
                let by_password = self
                    .authenticator
                    .as_ref()
                    .is_some_and(|a| a.still_valid(user, credential));
                by_password || self.scram_lines.get(&**user) == Some(&credential)
            }
            // A name taken as given: fine while there is no password file to check it.
            (Some(_), None) => p.certificate || self.authenticator.is_none(),
        }
    }

    /// What a session checks its client against; `None` when there is nothing to check
    /// (anonymous, no ACL), so that such sessions carry nothing.
    pub fn access_for(&self, principal: Principal, client_id: &str) -> Option<Box<ClientAccess>> {
        let acl = self.acl.as_ref().map(|acl| AclState {
            rules: acl.rules_for(principal.user(), client_id),
            cache: HashMap::new(),
            cache_max: self.acl_cache_max,
        });
        if acl.is_none() && principal == Principal::anonymous() {
            return None;
        }
        Some(Box::new(ClientAccess { principal, acl }))
    }
}

/// The `[auth]` key that names a file of kind `what`.
fn key_of(what: &str) -> &'static str {
    if what == "ACL file" {
        "acl_file"
    } else {
        "password_file"
    }
}

fn read_parsed<T>(
    path: &Path,
    what: &'static str,
    parse: impl Fn(&str) -> Result<T, LineError>,
) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        what,
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|source| LoadError::Line {
        what,
        path: path.to_owned(),
        source,
    })
}

/// What one session checks: who its client is and, with an ACL, the client's rules and
/// the decisions already made (a bounded cache, so that a delivery is one lookup).
#[derive(Debug, Clone)]
pub struct ClientAccess {
    pub principal: Principal,
    acl: Option<AclState>,
}

#[derive(Debug, Clone)]
struct AclState {
    rules: ClientRules,
    /// Per topic: bit 0 read known, 1 read allowed, 2 write known, 3 write allowed.
    cache: HashMap<Box<str>, u8>,
    cache_max: usize,
}

impl ClientAccess {
    /// May the client receive messages on `topic`?
    pub fn may_read(&mut self, topic: &str) -> bool {
        self.decide(topic, READ)
    }

    /// May the client publish to `topic` (or set a will on it)?
    pub fn may_write(&mut self, topic: &str) -> bool {
        self.decide(topic, WRITE)
    }

    /// May the client subscribe to `filter` (without a `$share/` prefix)?
    pub fn may_subscribe(&self, filter: &str) -> bool {
        self.acl
            .as_ref()
            .map_or(true, |a| a.rules.allows_subscription(filter))
    }

    fn decide(&mut self, topic: &str, access: u8) -> bool {
        let Some(acl) = &mut self.acl else {
            return true;
        };
        // Read: bits 0 (known) and 1 (allowed); write: bits 2 and 3.
        let shift = if access == WRITE { 2 } else { 0 };
        if let Some(bits) = acl.cache.get(topic) {
            if bits & (1 << shift) != 0 {
                return bits & (2 << shift) != 0;
            }
        }
        let allowed = acl.rules.allows(topic, access);
        let bits = (1 << shift) | (u8::from(allowed) << (shift + 1));
        match acl.cache.get_mut(topic) {
            Some(b) => *b |= bits,
            None => {
                if acl.cache.len() >= acl.cache_max {
                    acl.cache.clear();
                }
                acl.cache.insert(topic.into(), bits);
            }
        }
        allowed
    }
}

/// The current [`Security`], shared by the signal thread (which replaces it) and the
/// shards (which follow it). Locked only at a reload and when a shard takes the new
/// snapshot: the data path reads each shard's own copy.
#[derive(Debug)]
pub struct SecurityCell {
    current: Mutex<Arc<Security>>,
    generation: AtomicU64,
    wakers: Mutex<Vec<Waker>>,
    /// Shards that have applied the current generation.
    applied: Mutex<(u64, usize)>,
    applied_changed: Condvar,
}

impl SecurityCell {
    pub fn new(security: Security) -> Arc<SecurityCell> {
        Arc::new(SecurityCell {
            current: Mutex::new(Arc::new(security)),
            generation: AtomicU64::new(0),
            wakers: Mutex::new(Vec::new()),
            applied: Mutex::new((0, 0)),
            applied_changed: Condvar::new(),
        })
    }

    /// The current snapshot and its generation.
    pub fn current(&self) -> (Arc<Security>, u64) {
        let s = match self.current.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        (s, self.generation.load(Ordering::SeqCst))
    }

    /// Installs `security` and wakes every shard; returns its generation.
    pub fn replace(&self, security: Security) -> u64 {
        match self.current.lock() {
            Ok(mut g) => *g = Arc::new(security),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(security),
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let wakers = match self.wakers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for w in wakers {
            w.wake();
        }
        generation
    }

    /// Resolves once the generation is past `seen`.
    pub fn changed(self: &Arc<Self>, seen: u64) -> Changed {
        Changed {
            cell: self.clone(),
            seen,
        }
    }

    /// A shard has applied `generation`.
    pub fn applied(&self, generation: u64) {
        let mut a = match self.applied.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if a.0 != generation {
            *a = (generation, 0);
        }
        a.1 += 1;
        self.applied_changed.notify_all();
    }

    /// Waits (a plain thread) until `shards` shards have applied `generation`, or `limit`
    /// passes; returns whether they all did.
    pub fn wait_applied(&self, generation: u64, shards: usize, limit: Duration) -> bool {
        let guard = match self.applied.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let waited = self
            .applied_changed
            .wait_timeout_while(guard, limit, |a| !(a.0 == generation && a.1 >= shards));
        match waited {
            Ok((_, timeout)) => !timeout.timed_out(),
            Err(_) => false,
        }
    }
}

/// The future of [`SecurityCell::changed`].
pub struct Changed {
    cell: Arc<SecurityCell>,
    seen: u64,
}

impl std::future::Future for Changed {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let changed = || self.cell.generation.load(Ordering::SeqCst) != self.seen;
        if changed() {
            return Poll::Ready(());
        }
        if let Ok(mut w) = self.cell.wakers.lock() {
            w.push(cx.waker().clone());
        }
        // Re-check: a replace between the load and the push would otherwise be missed.
        if changed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(dir: &Path, passwd: Option<&str>, acl: Option<&str>) -> AuthConfig {
        let mut c = AuthConfig::default();
        if let Some(text) = passwd {
            let p = dir.join("passwd");
            std::fs::write(&p, text).unwrap();
            c.password_file = p;
        }
        if let Some(text) = acl {
            let p = dir.join("acl");
            std::fs::write(&p, text).unwrap();
            c.acl_file = p;
        }
        c
    }

    #[test]
    fn passwords_are_checked_and_reloads_end_changed_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let alice = passwd::hash_password(b"wonderland", Some(4096)).unwrap();
        let bob = passwd::hash_password(b"builder", None).unwrap();
        let mut file = PasswordFile::default();
        file.set("alice", alice);
        file.set("bob", bob);
        let config = config_with(dir.path(), Some(&file.render()), None);
        let s = Security::load(&config).unwrap();
        assert!(!s.allow_anonymous);
        let auth = s.authenticator.clone().unwrap();
        let credential = auth.verify("alice", Some(b"wonderland")).unwrap();
        assert!(auth.verify("alice", Some(b"wrong")).is_none());
        assert!(auth.verify("alice", None).is_none());
        assert!(auth.verify("nobody", Some(b"wonderland")).is_none());
        assert_eq!(s.scram.len(), 1, "only alice has SCRAM credentials");
        let p = Principal {
            user: Some("alice".into()),
            credential: Some(credential),
            certificate: false,
        };
        assert!(s.still_valid(&p));
        assert!(!s.still_valid(&Principal::anonymous()));
        // alice's password changes: her connection must go.
        file.set("alice", passwd::hash_password(b"new", None).unwrap());
        let config = config_with(dir.path(), Some(&file.render()), None);
        let s2 = Security::load(&config).unwrap();
        assert!(!s2.still_valid(&p));
    }

    #[test]
    fn a_bad_file_names_itself_and_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(dir.path(), None, Some("topic read a\nbogus line\n"));
        let err = Security::load(&config).unwrap_err().to_string();
        assert!(err.starts_with("ACL file "), "{err}");
        assert!(
            err.ends_with(
                "acl line 2: unknown statement \"bogus\": expected `topic`, `user` or `pattern`"
            ),
            "{err}"
        );
        let missing = AuthConfig {
            password_file: dir.path().join("absent"),
            ..AuthConfig::default()
        };
        let err = Security::load(&missing).unwrap_err().to_string();
        assert!(err.starts_with("cannot read password file "), "{err}");
        assert!(
            err.ends_with("; fix auth.password_file or create the file"),
            "{err}"
        );
    }

    #[test]
    fn access_decisions_are_cached_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_with(dir.path(), None, Some("topic read a/#\ntopic write w\n"));
        config.acl_cache_topics_max = 2;
        let s = Security::load(&config).unwrap();
        let mut access = s.access_for(Principal::anonymous(), "c").unwrap();
        assert!(access.may_read("a/1"));
        assert!(!access.may_write("a/1"));
        assert!(access.may_write("w") && !access.may_read("w"));
        assert!(
            access.may_read("a/2"),
            "the cache was emptied when full, not wrong"
        );
        assert!(!access.may_read("b"));
        let cache = &access.acl.as_ref().unwrap().cache;
        assert!(cache.len() <= 2);
        assert!(access.may_subscribe("a/#") && !access.may_subscribe("w"));
        // Without an ACL an anonymous session carries nothing.
        let open = Security::load(&AuthConfig::default()).unwrap();
        assert!(open.access_for(Principal::anonymous(), "c").is_none());
    }
}

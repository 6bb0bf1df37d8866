//! Password checks off the shards, and the memory of failed logins per source address.
//!
//! An argon2id check takes tens of milliseconds of CPU: run on a shard it would stall
//! every connection there. [`Verifier`] owns a few threads (`auth.verify_threads`) fed by
//! a bounded queue (`auth.verify_queue_max`); a shard submits a check and awaits its
//! answer on a waker-based channel, so it goes on serving meanwhile. A full queue is an
//! answer too ([`Busy`]): the CONNECT is refused rather than queued without bound.
//!
//! [`FailedLogins`] counts failures per address (IPv4 address, IPv6 /64) in a window;
//! past the limit the address is refused without a check until the window ends. Shared by
//! every shard (an attacker's connections land on all of them), behind a mutex taken only
//! for a CONNECT that needs a password check: never on the data path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::passwd::Fingerprint;
use super::security::Authenticator;
use crate::config::AuthConfig;

/// One password check.
struct Job {
    authenticator: Arc<dyn Authenticator>,
    user: String,
    password: Option<Vec<u8>>,
    reply: flume::Sender<Option<Fingerprint>>,
}

/// The check queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// The verification threads, their queue, and the failed-login table.
#[derive(Debug)]
pub struct Verifier {
    jobs: flume::Sender<Job>,
    failures: Mutex<FailedLogins>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Starts the threads. They end when the `Verifier` is dropped (its queue closes).
    pub fn start(config: &AuthConfig) -> std::io::Result<Arc<Verifier>> {
        let (jobs, queue) = flume::bounded::<Job>(config.verify_queue_max as usize);
        for n in 0..config.verify_threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("ringmq-verify-{n}"))
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        let verdict = job.authenticator.verify(&job.user, job.password.as_deref());
                        // The connection may be gone; nobody to tell then.
                        let _ = job.reply.send(verdict);
                    }
                })?;
        }
        Ok(Arc::new(Verifier {
            jobs,
            failures: Mutex::new(FailedLogins::new(
                config.failed_logins_per_address_max,
                config.failed_login_window(),
                config.failed_login_addresses_max as usize,
            )),
        }))
    }

    /// Queues a check of `user`'s `password`; await the receiver's answer (`None`: wrong).
    pub fn submit(
        &self,
        authenticator: Arc<dyn Authenticator>,
        user: &str,
        password: Option<&[u8]>,
    ) -> Result<flume::Receiver<Option<Fingerprint>>, Busy> {
        let (reply, answer) = flume::bounded(1);
        let job = Job {
            authenticator,
            user: user.to_owned(),
            password: password.map(<[u8]>::to_vec),
            reply,
        };
        self.jobs.try_send(job).map_err(|_| Busy)?;
        Ok(answer)
    }

    /// Whether `addr` has failed too often lately to be checked at all.
    pub fn is_blocked(&self, addr: IpAddr, now: Instant) -> bool {
        self.with_failures(|f| f.is_blocked(addr, now))
    }

    /// Counts a failed login from `addr`.
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        self.with_failures(|f| f.failed(addr, now));
    }

    fn with_failures<T>(&self, f: impl FnOnce(&mut FailedLogins) -> T) -> T {
        match self.failures.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// Failed logins per address within a window, for a bounded number of addresses.
#[derive(Debug)]
pub struct FailedLogins {
    by_addr: HashMap<IpAddr, (Instant, u32)>,
    max_failures: u32,
    window: Duration,
    max_addresses: usize,
}

impl FailedLogins {
    pub fn new(max_failures: u32, window: Duration, max_addresses: usize) -> Self {
        FailedLogins {
            by_addr: HashMap::new(),
            max_failures,
            window,
            max_addresses: max_addresses.max(1),
        }
    }

    pub fn is_blocked(&self, addr: IpAddr, now: Instant) -> bool {
        self.by_addr.get(&key(addr)).is_some_and(|(first, n)| {
            now.duration_since(*first) < self.window && *n >= self.max_failures
        })
    }

    pub fn failed(&mut self, addr: IpAddr, now: Instant) {
        let addr = key(addr);
        if !self.by_addr.contains_key(&addr) && self.by_addr.len() >= self.max_addresses {
            let window = self.window;
            self.by_addr
                .retain(|_, (first, _)| now.duration_since(*first) < window);
            if self.by_addr.len() >= self.max_addresses {
                let oldest = self
                    .by_addr
                    .iter()
                    .min_by_key(|(_, (first, _))| *first)
                    .map(|(a, _)| *a);
                if let Some(a) = oldest {
                    self.by_addr.remove(&a);
                }
            }
        }
        let entry = self.by_addr.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
}

/// What failures are counted under: an IPv4 address, or an IPv6 /64 (one host usually has
/// a whole /64); an IPv4-mapped IPv6 address counts as its IPv4 address.
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_blocked_after_its_limit_until_the_window_passes() {
        let mut f = FailedLogins::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..2 {
            f.failed(a, t0);
        }
        assert!(!f.is_blocked(a, t0));
        f.failed(a, t0);
        assert!(f.is_blocked(a, t0));
        assert!(!f.is_blocked(ip("192.0.2.2"), t0), "others are not");
        let later = t0 + Duration::from_secs(60);
        assert!(!f.is_blocked(a, later));
        f.failed(a, later);
        assert!(
            !f.is_blocked(a, later),
            "a new window starts from one failure"
        );
    }

    #[test]
    fn ipv6_hosts_count_per_64_and_mapped_ipv4_as_ipv4() {
        let mut f = FailedLogins::new(2, Duration::from_secs(60), 100);
        let t = Instant::now();
        f.failed(ip("2001:db8::1"), t);
        f.failed(ip("2001:db8::2"), t);
        assert!(f.is_blocked(ip("2001:db8::ffff"), t));
        assert!(!f.is_blocked(ip("2001:db8:0:1::1"), t));
        f.failed(ip("::ffff:192.0.2.9"), t);
        f.failed(ip("192.0.2.9"), t);
        assert!(f.is_blocked(ip("192.0.2.9"), t));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut f = FailedLogins::new(1, Duration::from_secs(60), 3);
        let t = Instant::now();
        for i in 0..10u8 {
            f.failed(
                IpAddr::from([10, 0, 0, i]),
                t + Duration::from_millis(u64::from(i)),
            );
        }
        assert_eq!(f.len(), 3);
        assert!(f.is_blocked(IpAddr::from([10, 0, 0, 9]), t + Duration::from_millis(10)));
        assert!(!f.is_blocked(IpAddr::from([10, 0, 0, 0]), t + Duration::from_millis(10)));
    }
}

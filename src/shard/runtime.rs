//! Process-level start-up checks and signals: the io_uring preflight, the data-directory
//! lock, the listen-port guard, CPU placement, and the shutdown signal every shard awaits.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use glommio::{CpuSet, PoolPlacement};

use crate::config::{Cores, Placement, RuntimeConfig};

/// Why the broker could not start. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "io_uring is not available ({0}): ringmq needs Linux >= 5.8 with io_uring enabled \
         (check sysctl kernel.io_uring_disabled=0 and that no seccomp profile blocks \
         io_uring_setup, as some container runtimes do)"
    )]
    NoIoUring(std::io::Error),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "data directory {0} is in use by another ringmq process (lock file {0}/LOCK); \
         stop it or give this one another storage.data_dir"
    )]
    Locked(PathBuf),
    #[error(
        "cannot listen on {addr}: {source}; another process holds the port, or the \
         address is not local: change [[listener]] bind / --listen"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("runtime.cores: {0}")]
    Cores(String),
    #[error("starting the shards failed: {0}")]
    Executors(String),
    #[error("[auth]: {0}")]
    Auth(crate::auth::security::LoadError),
    #[error("listener {addr}: tls.{source}")]
    Tls {
        addr: SocketAddr,
        source: crate::tls::TlsError,
    },
    #[error("cannot install the SIGHUP handler that reloads files: {0}")]
    Signals(std::io::Error),
}

/// Probes io_uring with a raw `io_uring_setup` so that a kernel without it (or a seccomp
/// filter) gives a clear message instead of glommio's panic.
pub fn check_io_uring() -> Result<(), StartError> {
    // struct io_uring_params is 120 bytes; all zero asks for defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes `params` (120 bytes, as the kernel ABI
    // defines it) and returns a new fd or -1; it touches no other memory.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(StartError::NoIoUring(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a descriptor we own and close exactly once.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// An exclusive lock on the data directory, held for the life of the process.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

pub fn lock_data_dir(dir: &Path) -> Result<DirLock, StartError> {
    std::fs::create_dir_all(dir).map_err(|source| StartError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StartError::DataDir {
            path: path.clone(),
            source,
        })?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StartError::Locked(dir.to_path_buf()));
    }
    Ok(DirLock { _file: file })
}

/// Shard numbers >= `count` that have a log directory in `data_dir` (`shard-N`): the
/// broker ran with more shards before.
pub fn former_shards(data_dir: &Path, count: usize) -> Vec<u16> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut found: Vec<u16> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("shard-")?.parse().ok())
        .filter(|n: &u16| usize::from(*n) >= count)
        .collect();
    found.sort_unstable();
    found
}

/// Fails if another process listens on `addr`. Every shard binds with SO_REUSEPORT, which
/// would otherwise let a second broker silently take a share of the connections; a bind
/// without SO_REUSEPORT fails while any listener holds the port.
///
/// Retries for up to two seconds: after a `kill -9`, the kernel releases the dead
/// process's listening sockets a moment later (io_uring tears its ring down
/// asynchronously), and a restart should not fail over that.
pub fn check_port_free(addr: SocketAddr) -> Result<(), StartError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match try_bind(addr) {
            Err(StartError::Listen { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn try_bind(addr: SocketAddr) -> Result<(), StartError> {
    let err = |source| StartError::Listen { addr, source };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    // Bind only: the bind alone fails while any socket listens on the port. Listening
    // here would briefly accept connections for a broker that is not up yet (seen as a
    // client "connecting" and then being refused).
    socket.bind(&addr.into()).map_err(err)?;
    Ok(())
}

/// Binds one shard's listening socket for `addr` with SO_REUSEPORT and `backlog`.
pub fn bind_listener(addr: SocketAddr, backlog: u32) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket)
}

/// The CPUs this process may run on: online CPUs within its affinity mask (glommio's
/// `CpuSet::online` ignores taskset and cgroup cpusets).
fn allowed_cpus() -> Result<Vec<usize>, StartError> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 = this thread; `set` is valid for size_of::<cpu_set_t>() bytes.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(StartError::Cores(format!(
            "sched_getaffinity failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    let online = CpuSet::online().map_err(|e| StartError::Cores(e.to_string()))?;
    let mut cpus: Vec<usize> = online
        .into_iter()
        .map(|l| l.cpu)
        // SAFETY: CPU_ISSET only reads `set`.
        .filter(|&cpu| cpu < libc::CPU_SETSIZE as usize && unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// How many shards to run and where, from `[runtime]`.
pub fn placement(runtime: &RuntimeConfig) -> Result<(usize, PoolPlacement), StartError> {
    let allowed = allowed_cpus()?;
    let cpus: Vec<usize> = match &runtime.cores {
        Cores::All => allowed.clone(),
        Cores::List(list) => list.iter().map(|c| c.0).collect(),
    };
    if cpus.is_empty() {
        return Err(StartError::Cores(
            "no CPU is available to this process".into(),
        ));
    }
    if cpus.len() > super::mesh::SHARDS_MAX {
        return Err(StartError::Cores(format!(
            "{} shards requested; at most {} are supported",
            cpus.len(),
            super::mesh::SHARDS_MAX
        )));
    }
    match runtime.placement {
        Placement::Unbound => Ok((cpus.len(), PoolPlacement::Unbound(cpus.len()))),
        Placement::Pinned => {
            if let Some(cpu) = cpus.iter().find(|c| !allowed.contains(c)) {
                return Err(StartError::Cores(format!(
                    "CPU {cpu} is not available to this process (allowed: {allowed:?}); \
                     list only those, or use placement = \"unbound\""
                )));
            }
            let sets = cpus
                .iter()
                .map(|&cpu| {
                    CpuSet::online()
                        .map(|s| s.filter(|l| l.cpu == cpu))
                        .map_err(|e| StartError::Cores(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((cpus.len(), PoolPlacement::Custom(sets)))
        }
    }
}

/// Set once, by SIGINT/SIGTERM or by a caller; every shard awaits it. Waker-based, so a
/// plain thread can trigger it and glommio executors wake.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug, Default)]
struct ShutdownInner {
    triggered: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        let wakers = match self.inner.wakers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    pub fn wait(&self) -> ShutdownWait {
        ShutdownWait(self.clone())
    }

    /// Triggers on the first SIGINT or SIGTERM (a watcher thread).
    pub fn on_signals(&self) -> std::io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("ringmq-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    tracing::info!(signal = sig, "shutting down");
                    me.trigger();
                }
            })?;
        Ok(())
    }
}

pub struct ShutdownWait(Shutdown);

impl Future for ShutdownWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_triggered() {
            return Poll::Ready(());
        }
        if let Ok(mut w) = self.0.inner.wakers.lock() {
            w.push(cx.waker().clone());
        }
        // Re-check: a trigger between the load and the push would otherwise be missed.
        if self.0.is_triggered() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// One thing SIGHUP reloads: a name for the log, and the work, run on the signal thread
/// (never on a shard: it reads files). `Ok` carries a summary for the log; `Err` says why
/// the previous version stays.
pub struct ReloadStep {
    pub name: &'static str,
    pub run: Box<dyn FnMut() -> Result<String, String> + Send>,
}

/// On each SIGHUP, runs every step in order on a thread of its own, logging each outcome
/// (`reloaded` / `reload failed`), then `reload done`. A failed step keeps what it had and
/// does not stop the others. Installed before the listeners open, so that a SIGHUP never
/// meets the default action (ending the process).
pub fn reload_on_sighup(mut steps: Vec<ReloadStep>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    std::thread::Builder::new()
        .name("ringmq-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                tracing::info!("SIGHUP: reloading");
                for step in &mut steps {
                    match (step.run)() {
                        Ok(summary) => tracing::info!(what = step.name, "reloaded: {summary}"),
                        Err(e) => tracing::error!(
                            what = step.name,
                            "reload failed, the previous version stays: {e}"
                        ),
                    }
                }
                tracing::info!("reload done");
            }
        })?;
    Ok(())
}

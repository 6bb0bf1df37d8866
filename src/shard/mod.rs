//! Shards: one glommio executor per configured core, each owning its connections,
//! sessions, subscription trie, replica of the interest table and retained partition.
//! Nothing here is shared between cores except through the meshes in [`mesh`].

mod admin;
pub mod mesh;
pub mod pushback;
mod reload;
mod restore;
pub mod runtime;
pub mod share;
pub mod storage;
mod sys;
mod will;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::net::TcpListener;
use glommio::sync::Gate;
use glommio::LocalExecutorPoolBuilder;

use crate::config::Config;
use crate::limit::{Limit, LimitStats, ListenerCount, ListenerSlot, ShardSlot, TokenBucket};
use crate::message::Message;
use crate::persist::state::{StateRecord, Tag, Target};
use crate::persist::{LogOffset, LogOptions};
use crate::protocol::{QoS, ReasonCode, SubscriptionId, SubscriptionOptions, TopicFilter};
use crate::router::retained::RetainedIndex;
use crate::router::trie::SubscriptionTrie;
use crate::session::{Delivery, DiskQuota, Loaded, Notify, Outbox, Session, SessionLimits};
use mesh::{stable_hash, CtrlMsg, DataMsg, Replies, ShardId, ShardSet};
use pushback::{AckTicket, Pushback};
pub use runtime::{Shutdown, StartError};
use share::{Member, Pick, ShareTable};
use storage::Storage;

/// What an open connection holds against the connection limits: its listener's count (across
/// shards; it goes with the connection when it is handed to its home shard) and its
/// shard's. Dropped when the connection ends.
#[derive(Debug)]
pub struct Slots {
    pub listener: ListenerSlot,
    pub shard: ShardSlot,
}

/// Identifies a session within its home shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey(u64);

/// One subscription as the local trie stores it.
#[derive(Debug, Clone)]
pub struct LocalSub {
    pub options: SubscriptionOptions,
    pub id: Option<SubscriptionId>,
    /// The subscriber's client id, for No Local.
    pub client_id: Arc<str>,
}

/// The sessions whose home is this shard.
#[derive(Debug, Default)]
pub struct Sessions {
    by_key: HashMap<SessionKey, Rc<RefCell<Session>>>,
    by_client: HashMap<Arc<str>, SessionKey>,
    next: u64,
}

impl Sessions {
    pub fn get(&self, key: SessionKey) -> Option<&Rc<RefCell<Session>>> {
        self.by_key.get(&key)
    }

    pub fn find(&self, client_id: &str) -> Option<(SessionKey, Rc<RefCell<Session>>)> {
        let key = *self.by_client.get(client_id)?;
        Some((key, self.by_key.get(&key)?.clone()))
    }

    pub fn insert(&mut self, session: Session) -> (SessionKey, Rc<RefCell<Session>>) {
        let key = SessionKey(self.next);
        self.next += 1;
        self.by_client.insert(session.client_id.clone(), key);
        let s = Rc::new(RefCell::new(session));
        self.by_key.insert(key, s.clone());
        (key, s)
    }

    fn remove(&mut self, key: SessionKey) -> Option<Rc<RefCell<Session>>> {
        let s = self.by_key.remove(&key)?;
        let id = s.borrow().client_id.clone();
        if self.by_client.get(&id) == Some(&key) {
            self.by_client.remove(&id);
        }
        Some(s)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SessionKey, &Rc<RefCell<Session>>)> {
        self.by_key.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Per-session accumulator while fanning one message out: a session with several matching
/// subscriptions gets one copy at the highest granted QoS with every subscription id.
#[derive(Debug)]
struct Fanout {
    qos: QoS,
    retain: bool,
    ids: Vec<SubscriptionId>,
    /// A share group's copy (not merged with the session's other subscriptions).
    share: Option<Arc<str>>,
}

/// A shard's state. Shard-local: held in an `Rc`, mutated through `RefCell`s whose
/// borrows never live across an `.await`.
pub struct Shard {
    pub id: ShardId,
    pub count: usize,
    pub config: Arc<Config>,
    /// Who may connect and what each client may do: this shard's copy of the current
    /// snapshot (replaced on SIGHUP, see `reload.rs`).
    pub security: RefCell<Arc<crate::auth::Security>>,
    /// Password checks (threads shared by every shard) and failed logins per address.
    pub verifier: Arc<crate::auth::verify::Verifier>,
    pub session_limits: SessionLimits,
    pub sessions: RefCell<Sessions>,
    subs: RefCell<SubscriptionTrie<SessionKey, LocalSub>>,
    /// Local subscriptions per matching filter; interest is announced on 0 -> 1.
    filter_refs: RefCell<HashMap<Box<str>, u32>>,
    /// Announcements still waiting for every shard's answer, so that a second subscriber
    /// to the same filter also waits before its SUBACK.
    interest_pending: RefCell<HashMap<Box<str>, Rc<mesh::Completion>>>,
    interest: RefCell<SubscriptionTrie<ShardId, ()>>,
    /// Every share group's members, on every shard (replicated like `interest`).
    shares: RefCell<ShareTable>,
    retained: RefCell<RetainedIndex<Rc<Message>>>,
    fanout: RefCell<HashMap<SessionKey, Fanout>>,
    data: Senders<DataMsg>,
    ctrl: Senders<CtrlMsg>,
    replies: Replies,
    pushback: Pushback,
    pub shutdown: Shutdown,
    pub connections: Gate,
    /// Keep-alive deadlines of this shard's connections.
    pub keep_alive: crate::connection::KeepAlive,
    /// This shard's log: persistent sessions and retained messages.
    pub storage: Rc<Storage>,
    pub disk_quota: DiskQuota,
    /// Start-up barrier: shards that have restored their sessions.
    recovered_peers: Cell<usize>,
    recovered_notify: Notify,
    /// Wills of sessions handed over at start-up, published once every shard is ready.
    adopted_wills: RefCell<Vec<(u64, Message)>>,
    /// Counters of every limit hit on this shard, its open connections and its
    /// queued-memory gauge.
    pub limit_stats: Rc<LimitStats>,
    /// `limits.connects_per_sec_max` (shared by this shard's listeners); `None`: no limit.
    connect_rate: RefCell<Option<TokenBucket>>,
    /// This shard's busy ratio between metrics reads.
    busy: crate::metrics::Busy,
    /// Messages its data-mesh receivers take per wake-up.
    mesh_batches: crate::metrics::BatchMeter,
    /// When this shard started (`$SYS/broker/uptime`).
    started_at: Instant,
}

/// Starts every shard and blocks until they stop (after `shutdown` triggers).
pub fn run(config: Config, shutdown: Shutdown) -> Result<(), StartError> {
    run_with_admin(config, shutdown, &crate::admin::AdminHandle::new())
}

/// [`run`], with every shard answering the requests of `admin` (the admin listener's
/// handle: a thread outside the shards).
pub fn run_with_admin(
    config: Config,
    shutdown: Shutdown,
    admin: &crate::admin::AdminHandle,
) -> Result<(), StartError> {
    runtime::check_io_uring()?;
    let _lock = runtime::lock_data_dir(&config.storage.data_dir)?;
    for l in &config.listeners {
        runtime::check_port_free(l.bind)?;
    }
    let (shards, placement) = runtime::placement(&config.runtime)?;
    // Read once for every shard; SIGHUP reads the files again (`reload::steps`).
    let security = crate::auth::SecurityCell::new(
        crate::auth::Security::load(&config.auth).map_err(StartError::Auth)?,
    );
    let verifier = crate::auth::verify::Verifier::start(&config.auth)
        .map_err(|e| StartError::Executors(format!("cannot start the password checks: {e}")))?;
    // One per TLS listener, shared by the shards; SIGHUP reloads their files too.
    let tls = tls_acceptors(&config)?;
    let reloadable: Vec<_> = tls.iter().flatten().cloned().collect();
    runtime::reload_on_sighup(reload::steps(
        &config,
        &security,
        shards,
        reloadable.clone(),
    ))
    .map_err(StartError::Signals)?;
    let config = Arc::new(config);
    // One count per listener, shared by every shard: `max_connections` is across shards.
    let listener_counts: Arc<[Arc<ListenerCount>]> =
        config.listeners.iter().map(|_| Arc::default()).collect();
    let capacity = config.limits.mesh_capacity;
    let data: MeshBuilder<DataMsg, Full> = MeshBuilder::full(shards, capacity);
    let ctrl: MeshBuilder<CtrlMsg, Full> = MeshBuilder::full(shards, capacity);
    let admin = admin.connect(shards);
    let rt = &config.runtime;
    tracing::info!(shards, listeners = %config.listener_summary(), "starting");
    let handles = LocalExecutorPoolBuilder::new(placement)
        .name("ringmq-shard")
        .io_memory(rt.io_memory_bytes)
        .ring_depth(rt.ring_depth)
        .spin_before_park(rt.spin_before_park())
        .preempt_timer(rt.preempt_timer())
        // glommio clones this closure on the calling thread, before a latch lets any
        // executor start; the closure must not clone the mesh builders itself: they hold
        // an `Rc`, and executor threads cloning it at once corrupt its count (seen as mesh
        // joins that never finish when several brokers start together).
        .on_all_shards(move || async move {
            let gate = Admission {
                security,
                verifier,
                tls,
                listener_counts,
                admin,
            };
            shard_main(config, gate, shards, data, ctrl, shutdown).await
        })
        .map_err(|e| StartError::Executors(e.to_string()))?;
    let errors: Vec<String> = handles
        .join_all()
        .into_iter()
        .filter_map(|r| match r {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(e.to_string()),
        })
        .collect();
    for a in &reloadable {
        let (done, failed) = a.counts();
        tracing::info!(listener = %a.bind(), handshakes = done, handshakes_failed = failed, "tls");
    }
    if errors.is_empty() {
        tracing::info!("stopped");
        Ok(())
    } else {
        Err(StartError::Executors(errors.join("; ")))
    }
}

/// A [`TlsAcceptor`](crate::tls::TlsAcceptor) for each listener with a `tls` table, by
/// listener index.
fn tls_acceptors(config: &Config) -> Result<Vec<Option<Arc<crate::tls::TlsAcceptor>>>, StartError> {
    config
        .listeners
        .iter()
        .map(|l| {
            l.tls
                .as_ref()
                .map(|t| {
                    crate::tls::TlsAcceptor::new(l.bind, t)
                        .map(Arc::new)
                        .map_err(|source| StartError::Tls {
                            addr: l.bind,
                            source,
                        })
                })
                .transpose()
        })
        .collect()
}

/// Who may connect and how, the same for every shard: the security files' snapshot cell,
/// the password checks, each listener's TLS acceptor and its count of open connections
/// (by listener index).
struct Admission {
    security: Arc<crate::auth::SecurityCell>,
    verifier: Arc<crate::auth::verify::Verifier>,
    tls: Vec<Option<Arc<crate::tls::TlsAcceptor>>>,
    /// `max_connections` is across shards: one count per listener, shared by every shard.
    listener_counts: Arc<[Arc<ListenerCount>]>,
    /// Requests of the admin listener, by shard index.
    admin: Vec<crate::admin::query::Requests>,
}

async fn shard_main(
    config: Arc<Config>,
    gate: Admission,
    count: usize,
    data: MeshBuilder<DataMsg, Full>,
    ctrl: MeshBuilder<CtrlMsg, Full>,
    shutdown: Shutdown,
) -> Result<(), String> {
    let Admission {
        security,
        verifier,
        tls,
        listener_counts,
        admin: admin_requests,
    } = gate;
    // Generous: on an overloaded machine executor threads can take seconds to be scheduled.
    let join_timeout = Duration::from_secs(30);
    glommio::spawn_local(keep_awake(config.runtime.wake_interval(), shutdown.clone())).detach();
    let (data_tx, data_rx) = with_timeout(data.join(), join_timeout)
        .await
        .ok_or("shards did not all start (data mesh)")?
        .map_err(|_| "data mesh join failed")?;
    let (ctrl_tx, ctrl_rx) = with_timeout(ctrl.join(), join_timeout)
        .await
        .ok_or("shards did not all start (control mesh)")?
        .map_err(|_| "control mesh join failed")?;
    let id = ShardId(u16::try_from(data_tx.peer_id()).map_err(|e| e.to_string())?);
    let st = &config.storage;
    let dir = crate::persist::shard_dir(&st.data_dir, id.0);
    let (storage, recovered) = Storage::open(
        &dir,
        LogOptions {
            segment_bytes: st.segment_bytes,
        },
        st.fsync,
        st.interval(),
    )
    .map_err(|e| format!("{id}: cannot recover {}: {e}", dir.display()))?;
    let storage = Rc::new(storage);
    // Logs of shards that no longer exist (the broker ran with more shards before): this
    // shard moves their state to the current home shards, then deletes them.
    let mut orphans = Vec::new();
    for index in runtime::former_shards(&st.data_dir, count) {
        if usize::from(index) % count != id.index() {
            continue;
        }
        let dir = crate::persist::shard_dir(&st.data_dir, index);
        let (orphan, rec) = Storage::open(
            &dir,
            LogOptions {
                segment_bytes: st.segment_bytes,
            },
            st.fsync,
            st.interval(),
        )
        .map_err(|e| format!("{id}: cannot recover {}: {e}", dir.display()))?;
        orphans.push((index, Rc::new(orphan), rec));
    }
    let orphan_dirs: Vec<std::path::PathBuf> = orphans
        .iter()
        .map(|(index, _, _)| crate::persist::shard_dir(&st.data_dir, *index))
        .collect();
    let limits = &config.limits;
    // The generation this shard starts from: a SIGHUP from now on is followed.
    let (snapshot, generation) = security.current();
    let shard = Rc::new(Shard {
        id,
        count,
        session_limits: SessionLimits {
            queued_messages_max: limits.queued_messages_max as usize,
            queued_bytes_max: usize::try_from(limits.queued_bytes_max).unwrap_or(usize::MAX),
            inflight_count_max: limits.inflight_count_max,
            pushback_messages: limits.queued_messages_pushback as usize,
        },
        config: config.clone(),
        security: RefCell::new(snapshot),
        verifier,
        sessions: RefCell::default(),
        subs: RefCell::default(),
        filter_refs: RefCell::default(),
        interest_pending: RefCell::default(),
        interest: RefCell::default(),
        shares: RefCell::default(),
        retained: RefCell::default(),
        fanout: RefCell::default(),
        data: data_tx,
        ctrl: ctrl_tx,
        replies: Replies::default(),
        pushback: Pushback::new(count),
        shutdown: shutdown.clone(),
        connections: Gate::new(),
        keep_alive: crate::connection::KeepAlive::default(),
        storage: storage.clone(),
        disk_quota: DiskQuota {
            messages: st.session_queue_messages_max,
            bytes: st.session_queue_bytes_max,
            keys: "storage.session_queue_messages_max / session_queue_bytes_max",
        },
        recovered_peers: Cell::new(0),
        recovered_notify: Notify::default(),
        adopted_wills: RefCell::default(),
        limit_stats: Rc::new(LimitStats::new(
            usize::try_from(limits.memory_high_water_bytes / count as u64).unwrap_or(usize::MAX),
        )),
        connect_rate: RefCell::new((limits.connects_per_sec_max > 0).then(|| {
            let rate = u64::from(limits.connects_per_sec_max);
            TokenBucket::new(rate, rate, Instant::now())
        })),
        busy: crate::metrics::Busy::default(),
        mesh_batches: crate::metrics::BatchMeter::default(),
        started_at: Instant::now(),
    });
    spawn_receivers(&shard, data_rx, ctrl_rx);
    glommio::spawn_local(storage::flusher(storage.clone(), shutdown.clone())).detach();
    glommio::spawn_local(storage::preparer(storage.clone(), shutdown.clone())).detach();
    shard.restore(recovered, orphans).await;
    for dir in orphan_dirs {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(shard = %id, dir = %dir.display(), "former shard's log moved and removed")
            }
            Err(e) => {
                tracing::warn!(shard = %id, dir = %dir.display(), error = %e, "cannot remove a former shard's log")
            }
        }
    }
    let listeners = config.listeners.iter().zip(tls).zip(listener_counts.iter());
    for ((listener, tls), open) in listeners {
        let socket = runtime::bind_listener(listener.bind, listener.backlog)
            .map_err(|e| format!("{id}: cannot listen on {}: {e}", listener.bind))?;
        // SAFETY: the fd comes from a socket we just bound and listened on, and
        // `into_raw_fd` gives its ownership to the glommio listener.
        let l = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
        let max = listener.max_connections as usize;
        let entry = crate::connection::Entry {
            tls,
            websocket: listener.kind == crate::config::ListenerKind::Ws,
            proxy: listener.proxy_protocol,
        };
        glommio::spawn_local(accept_loop(shard.clone(), l, open.clone(), max, entry)).detach();
    }
    glommio::spawn_local(reload::follow(shard.clone(), security, generation)).detach();
    glommio::spawn_local(expire_sessions(shard.clone())).detach();
    glommio::spawn_local(crate::connection::sweep_keep_alive(shard.clone())).detach();
    let sys_interval = config.mqtt.sys_interval_secs;
    if id.index() == 0 && sys_interval > 0 {
        let interval = Duration::from_secs(u64::from(sys_interval));
        glommio::spawn_local(sys::publish_sys(shard.clone(), interval)).detach();
    }
    if let Some(requests) = admin_requests.get(id.index()) {
        glommio::spawn_local(admin::serve(shard.clone(), requests.clone())).detach();
    }
    tracing::debug!(shard = %id, "serving");
    shutdown.wait().await;
    // Ask every connection to end (v5 clients get DISCONNECT 0x8B); wills are published by
    // the connection tasks as they close.
    for s in shard.sessions.borrow().by_key.values() {
        if let Some(out) = s.borrow().outbox() {
            out.close(ReasonCode::ServerShuttingDown);
        }
    }
    if with_timeout(shard.connections.close(), Duration::from_secs(5))
        .await
        .is_none()
    {
        tracing::warn!(shard = %id, "connections still open after 5 s; closing anyway");
    }
    shard.storage.flush_now();
    shard.storage.log_stats();
    shard.log_limit_stats();
    Ok(())
}

/// Wakes this executor every `interval` until shutdown. glommio 0.9 can lose the
/// cross-thread wake-up of a parked executor: the sleeper publishes "notify me" with a
/// relaxed store and then checks its channels, which x86 may reorder, so a sender can see
/// "awake" and skip the eventfd. Seen as mesh joins that never finished when several
/// brokers started at once. A timer makes the reactor look at its channels again, which
/// bounds any such stall to `interval`.
async fn keep_awake(interval: Duration, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        glommio::timer::sleep(interval).await;
    }
}

/// Runs a connection's task so that a panic in it ends that connection only: glommio
/// would otherwise lose the whole executor (and every connection on the shard).
async fn isolate(task: impl std::future::Future<Output = ()>) {
    use futures_lite::FutureExt;
    if let Err(panic) = std::panic::AssertUnwindSafe(task).catch_unwind().await {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %what, "connection task panicked; connection closed");
    }
}

/// `fut`'s output, or `None` if `limit` passes first.
pub async fn with_timeout<T>(
    fut: impl std::future::Future<Output = T>,
    limit: Duration,
) -> Option<T> {
    future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

async fn accept_loop(
    shard: Rc<Shard>,
    listener: TcpListener,
    open: Arc<ListenerCount>,
    max_connections: usize,
    entry: crate::connection::Entry,
) {
    let shutdown = shard.shutdown.clone();
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                // Refused connections are closed at once, before anything is read: under a
                // flood, reading a CONNECT to answer it is the work the limits shed.
                let Some(slots) = shard.admit(&open, max_connections) else {
                    drop(stream);
                    continue;
                };
                // Boxed once: every wrapper below (isolate, this block, the gate's own)
                // would otherwise store its own copy of the 5 KB connection future, and an
                // idle connection cost 22 KB of task memory instead of about 5.
                let s = shard.clone();
                let connection =
                    Box::pin(crate::connection::accept(s, stream, entry.clone(), slots));
                let task = shard.connections.spawn(isolate(connection));
                match task {
                    Ok(t) => {
                        t.detach();
                    }
                    Err(_) => break,
                }
            }
            Some(Err(e)) => {
                tracing::warn!(shard = %shard.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Publishes the delayed wills that are due, and removes disconnected sessions whose
/// expiry interval has passed, once a second.
async fn expire_sessions(shard: Rc<Shard>) {
    while !shard.shutdown.is_triggered() {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        shard.publish_due_wills(now).await;
        let expired: Vec<SessionKey> = shard
            .sessions
            .borrow()
            .by_key
            .iter()
            .filter(|(_, s)| s.borrow().is_expired(now))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            tracing::debug!(shard = %shard.id, "session expired");
            shard.remove_session(key).await;
        }
        shard.compact().await;
    }
}

fn spawn_receivers(shard: &Rc<Shard>, mut data: Receivers<DataMsg>, mut ctrl: Receivers<CtrlMsg>) {
    for (peer, rx) in data.streams() {
        let shard = shard.clone();
        let peer = ShardId(peer as u16);
        glommio::spawn_local(async move {
            let mut batch = crate::metrics::Batch::default();
            loop {
                let (msg, waited) = {
                    let mut next = std::pin::pin!(rx.recv());
                    match future::poll_once(&mut next).await {
                        Some(msg) => (msg, false),
                        None => (next.await, true),
                    }
                };
                let Some(msg) = msg else { break };
                shard.mesh_batches.taken(&mut batch, waited);
                match msg {
                    DataMsg::Publish {
                        message,
                        ticket,
                        tag,
                        regular,
                        picks,
                    } => {
                        shard.limit_stats.traffic.mesh_taken();
                        shard.deliver_forwarded(peer, message, ticket, tag, regular, picks)
                    }
                    DataMsg::Answers(ids) => {
                        for id in ids {
                            shard.pushback.answered(id);
                        }
                    }
                }
            }
        })
        .detach();
    }
    // Answers go from tasks of their own, batched: a receiver never waits on a full channel
    // back to the shard it receives from (two shards could otherwise block each other).
    for peer in shard.others() {
        let shard = shard.clone();
        let peer = ShardId(peer as u16);
        glommio::spawn_local(async move {
            loop {
                let ids = shard.pushback.next_answers(peer).await;
                if shard
                    .data
                    .send_to(peer.index(), DataMsg::Answers(ids))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
        .detach();
    }
    for (_, rx) in ctrl.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                shard.on_control(msg).await;
            }
        })
        .detach();
    }
}

impl Shard {
    /// Slots for a newly accepted connection, or `None` (counted, logged now and then) when
    /// a limit refuses it: the shard's connect rate, the listener's connections across
    /// shards, the shard's connections.
    fn admit(&self, open: &Arc<ListenerCount>, max_connections: usize) -> Option<Slots> {
        let refused = |limit: Limit, key: &str| {
            let n = self.limit_stats.hit(limit);
            if crate::limit::worth_logging(n) {
                tracing::warn!(shard = %self.id, refused = n, "connection refused: {key}");
            }
        };
        if let Some(bucket) = self.connect_rate.borrow_mut().as_mut() {
            if !bucket.try_take(1, Instant::now()) {
                refused(Limit::ConnectRate, "limits.connects_per_sec_max");
                return None;
            }
        }
        let Some(listener) = open.slot(max_connections) else {
            refused(Limit::ListenerConnections, "listener.max_connections");
            return None;
        };
        let Some(shard) = self.connection_slot() else {
            refused(Limit::ShardConnections, "limits.connections_per_shard_max");
            return None;
        };
        Some(Slots { listener, shard })
    }

    /// A slot for one more connection on this shard, unless it has
    /// `limits.connections_per_shard_max` open.
    pub fn connection_slot(&self) -> Option<ShardSlot> {
        let max = self.config.limits.connections_per_shard_max as usize;
        self.limit_stats.connection_slot(max)
    }

    /// Logs this shard's counters of limits hit (at shutdown).
    fn log_limit_stats(&self) {
        let s = &self.limit_stats;
        let counts: Vec<String> = s.counts().map(|(name, n)| format!("{name}={n}")).collect();
        tracing::info!(
            shard = %self.id, queued_bytes = s.queued_bytes(),
            queued_bytes_peak = s.queued_bytes_peak(), "limits {}", counts.join(" ")
        );
    }

    /// The home shard of a client id.
    pub fn home_of(&self, client_id: &str) -> ShardId {
        ShardId((stable_hash(client_id.as_bytes()) % self.count as u64) as u16)
    }

    /// The shard that stores the retained message of `topic`.
    fn owner_of(&self, topic: &str) -> ShardId {
        ShardId((stable_hash(topic.as_bytes()) % self.count as u64) as u16)
    }

    fn others(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.count).filter(move |i| *i != self.id.index())
    }

    async fn on_control(self: &Rc<Self>, msg: CtrlMsg) {
        match msg {
            CtrlMsg::Handoff(h) => {
                let stream = crate::connection::Transport::adopt(h.fd, h.tls, h.ws);
                let shard = self.clone();
                let connection = Box::pin(crate::connection::adopt(
                    shard,
                    stream,
                    h.connect,
                    h.buffered,
                    h.peer,
                    h.principal,
                    h.listener,
                ));
                if let Ok(t) = self.connections.spawn(isolate(connection)) {
                    t.detach();
                }
            }
            CtrlMsg::InterestAdd { filter, from, req } => {
                self.interest.borrow_mut().insert(&filter, from, ());
                self.reply(from, CtrlMsg::Done { req });
            }
            CtrlMsg::InterestRemove { filter, from } => {
                self.interest.borrow_mut().remove(&filter, &from);
            }
            CtrlMsg::ShareJoin {
                share,
                member,
                from,
                req,
            } => {
                self.shares.borrow_mut().join(&share, member);
                self.reply(from, CtrlMsg::Done { req });
            }
            CtrlMsg::ShareLeave { share, shard, key } => {
                self.shares.borrow_mut().leave(&share, shard, key);
            }
            CtrlMsg::ShareOnline {
                share,
                shard,
                key,
                online,
            } => {
                self.shares
                    .borrow_mut()
                    .set_online(&share, shard, key, online);
            }
            CtrlMsg::RetainSet {
                message,
                tag,
                from,
                ticket,
            } => {
                self.storage.ensure_log().await;
                let end = self.store_retained(*message, tag);
                if let Some(id) = ticket {
                    let shard = self.clone();
                    let answer = move || shard.pushback.answer(from, id);
                    match end {
                        Some(end) => self.storage.when_durable(end, answer),
                        None => answer(),
                    }
                }
            }
            CtrlMsg::Recovered { .. } => {
                self.recovered_peers.set(self.recovered_peers.get() + 1);
                self.recovered_notify.notify_all();
            }
            CtrlMsg::Adopt {
                session,
                deliveries,
                from,
                req,
            } => {
                // In a task: adopting subscribes, which waits for answers that arrive
                // through this very receiver.
                let shard = self.clone();
                glommio::spawn_local(async move {
                    shard.adopt(*session, deliveries).await;
                    shard.reply(from, CtrlMsg::Done { req });
                })
                .detach();
            }
            CtrlMsg::AdoptRetained { message, from, req } => {
                self.storage.ensure_log().await;
                self.store_retained(*message, None);
                self.storage.flush_now();
                self.reply(from, CtrlMsg::Done { req });
            }
            CtrlMsg::RetainQuery { filter, from, req } => {
                let mut messages = Vec::new();
                self.retained
                    .borrow()
                    .for_each_matching(&filter, |_, m| messages.push(Message::clone(m)));
                self.reply(from, CtrlMsg::RetainFound { req, messages });
            }
            CtrlMsg::RetainFound { req, messages } => self.replies.answer(req, messages),
            CtrlMsg::Done { req } => self.replies.answer(req, Vec::new()),
            CtrlMsg::MetricsQuery { from, req } => {
                let snapshot = Box::new(self.local_metrics());
                self.reply(from, CtrlMsg::Metrics { req, snapshot });
            }
            CtrlMsg::Metrics { req, snapshot } => self.replies.answer_metrics(req, &snapshot),
        }
    }

    /// Answers another shard from a task of its own, so this shard's control receiver never
    /// waits on that shard's channel: two shards each blocked sending to the other over full
    /// channels would otherwise never drain them.
    fn reply(self: &Rc<Self>, to: ShardId, msg: CtrlMsg) {
        let shard = self.clone();
        glommio::spawn_local(async move {
            let _ = shard.ctrl.send_to(to.index(), msg).await;
        })
        .detach();
    }

    /// Routes a message: retained store if RETAIN, local subscribers, and one copy to
    /// each other shard with matching subscribers.
    ///
    /// With `ack` (the publisher's outbox, for QoS 1/2), returns the ticket its
    /// acknowledgement must wait for, or `None` if it may go now: it waits for congested
    /// subscribers (pushback) and for every record the message needs to be durable, on
    /// every shard.
    pub async fn publish(
        self: &Rc<Self>,
        message: Message,
        ack: Option<&Rc<Outbox>>,
    ) -> Option<Rc<AckTicket>> {
        self.publish_tagged(message, ack, None).await
    }

    /// [`Shard::publish`] of an inbound QoS 2 message with its tag.
    pub async fn publish_tagged(
        self: &Rc<Self>,
        message: Message,
        ack: Option<&Rc<Outbox>>,
        tag: Option<Tag>,
    ) -> Option<Rc<AckTicket>> {
        let mut ticket: Option<Rc<AckTicket>> = None;
        let retain_owner = message
            .retain
            .then(|| self.owner_of(message.topic.as_str()));
        let mut targets = ShardSet::default();
        self.interest
            .borrow()
            .for_each_match(message.topic.as_str(), |_, s, ()| targets.insert(*s));
        // One member of each matching share group, wherever it lives.
        let mut picks = Vec::new();
        if !self.shares.borrow().is_empty() {
            self.shares.borrow().picks(
                message.topic.as_str(),
                &message.origin,
                message.qos,
                message.retain,
                self.config.mqtt.shared_strategy,
                &mut picks,
            );
        }
        // Every shard the message goes to: with subscribers, or with a picked member.
        let mut reach = targets;
        for (s, _) in &picks {
            reach.insert(*s);
        }
        let mut remote = ShardSet::default();
        let mut remotes = 0u16;
        for s in reach.iter().filter(|s| *s != self.id) {
            remote.insert(s);
            remotes += 1;
        }
        let remote_owner = retain_owner.filter(|o| *o != self.id);
        let answers_due = remotes + u16::from(remote_owner.is_some());
        // A ticket only when something can hold the acknowledgement back: another shard,
        // a record to flush, or a congested local session (the common local case
        // allocates nothing).
        if let (Some(out), true) = (ack, answers_due > 0) {
            ticket = Some(AckTicket::new(out.clone()));
        }
        let ticket_id = ticket
            .as_ref()
            .map(|t| self.pushback.await_shards(t, answers_due));
        match retain_owner {
            Some(owner) if owner == self.id => {
                // A shard that has never logged anything makes its log here, off the
                // loop (no-op once it exists).
                self.storage.ensure_log().await;
                if let Some(end) = self.store_retained(message.detached(), tag) {
                    self.hold_until_durable(&mut ticket, ack, end);
                }
            }
            Some(owner) => {
                let set = CtrlMsg::RetainSet {
                    message: Box::new(message.detached()),
                    tag,
                    from: self.id,
                    ticket: ticket_id,
                };
                if self.ctrl.send_to(owner.index(), set).await.is_err() {
                    if let Some(id) = ticket_id {
                        self.pushback.answered(id);
                    }
                }
            }
            None => {}
        }
        for s in remote.iter() {
            let forward = DataMsg::Publish {
                message: message.clone(),
                ticket: ticket_id,
                tag,
                regular: targets.contains(s),
                picks: take_picks(&mut picks, s),
            };
            self.limit_stats.traffic.mesh_forwarded();
            if self.data.send_to(s.index(), forward).await.is_err() {
                if let Some(id) = ticket_id {
                    self.pushback.answered(id);
                }
            }
        }
        if reach.contains(self.id) {
            let regular = targets.contains(self.id);
            let picks = take_picks(&mut picks, self.id);
            let (full, end) =
                self.deliver_local(&Rc::new(message), ack.is_some(), tag, regular, picks);
            if let Some(end) = end {
                self.hold_until_durable(&mut ticket, ack, end);
            }
            if let (Some(out), false) = (ack, full.is_empty()) {
                let t = ticket.get_or_insert_with(|| AckTicket::new(out.clone()));
                t.hold();
                let t = t.clone();
                let limit = self.pushback_wait();
                glommio::spawn_local(async move {
                    pushback::wait_for_room(full, limit).await;
                    t.release();
                })
                .detach();
            }
        }
        let ticket = ticket?;
        ticket.release();
        (!ticket.is_released()).then_some(ticket)
    }

    /// Makes the acknowledgement (if any) wait until the log is durable past `end`.
    fn hold_until_durable(
        &self,
        ticket: &mut Option<Rc<AckTicket>>,
        ack: Option<&Rc<Outbox>>,
        end: LogOffset,
    ) {
        let Some(out) = ack else {
            return;
        };
        if !self.storage.must_wait(end) {
            return;
        }
        let t = ticket.get_or_insert_with(|| AckTicket::new(out.clone()));
        t.hold();
        let t = t.clone();
        self.storage.when_durable(end, move || t.release());
    }

    /// A message another shard forwarded: deliver it, and answer its ticket once every
    /// record it needed here is durable and every session it was queued for has room.
    fn deliver_forwarded(
        self: &Rc<Self>,
        from: ShardId,
        message: Message,
        ticket: Option<u64>,
        tag: Option<Tag>,
        regular: bool,
        picks: Vec<Pick>,
    ) {
        let (full, end) =
            self.deliver_local(&Rc::new(message), ticket.is_some(), tag, regular, picks);
        let Some(id) = ticket else {
            return;
        };
        let shard = self.clone();
        let answer = move || {
            if full.is_empty() {
                shard.pushback.answer(from, id);
                return;
            }
            let limit = shard.pushback_wait();
            glommio::spawn_local(async move {
                pushback::wait_for_room(full, limit).await;
                shard.pushback.answer(from, id);
            })
            .detach();
        };
        match end {
            Some(end) => self.storage.when_durable(end, answer),
            None => answer(),
        }
    }

    fn pushback_wait(&self) -> Duration {
        Duration::from_millis(u64::from(self.config.limits.pushback_wait_ms))
    }

    /// Empty payload clears the topic's retained message [MQTT-3.3.1-10/11]. Logged;
    /// returns where the record ends (`None` for a clear of nothing, or a message recovery
    /// already has).
    fn store_retained(&self, message: Message, tag: Option<Tag>) -> Option<LogOffset> {
        if tag.is_some_and(|t| self.storage.recovered_tags.borrow().contains(&t)) {
            return None;
        }
        let mut retained = self.retained.borrow_mut();
        let topic = message.topic.clone();
        if message.payload.is_empty() && retained.get(topic.as_str()).is_none() {
            return None;
        }
        // `$SYS/broker/` is the broker's own and rebuilt each `sys_interval_secs`: it is kept
        // in memory only (a restart starts without it), which spares the log a stream of
        // records nobody needs back.
        let end = if topic.as_str().starts_with(sys::SYS_PREFIX) {
            None
        } else {
            let (_, end) = self.storage.append(&StateRecord::Retain {
                tag,
                message: message.clone(),
            });
            Some(end)
        };
        if message.payload.is_empty() {
            retained.remove(topic.as_str());
        } else {
            retained.insert(Rc::new(message));
        }
        end
    }

    /// Delivers to this shard's subscribers, one copy per session; QoS 1/2 copies for
    /// persistent sessions are logged first, in one `Deliver` record. With `pushback`,
    /// returns the connected sessions whose queue this delivery (QoS 1/2) left congested;
    /// and where the log record ends, if one was written.
    ///
    /// `regular`: to the subscribers of this shard's trie; `picks`: to the members of share
    /// groups chosen for this message (each gets its own copy; one whose session is gone
    /// has it passed to another member).
    pub fn deliver_local(
        self: &Rc<Self>,
        message: &Rc<Message>,
        pushback: bool,
        tag: Option<Tag>,
        regular: bool,
        picks: Vec<Pick>,
    ) -> (Vec<Rc<RefCell<Session>>>, Option<LogOffset>) {
        if tag.is_some_and(|t| self.storage.recovered_tags.borrow().contains(&t)) {
            // Recovery routes an in-doubt QoS 2 message again; this shard had it.
            return (Vec::new(), None);
        }
        let mut fanout = self.fanout.borrow_mut();
        fanout.clear();
        if regular {
            self.subs
                .borrow()
                .for_each_match(message.topic.as_str(), |_, key, sub| {
                    if sub.options.no_local && *sub.client_id == *message.origin {
                        return;
                    }
                    let qos = message.qos.min(sub.options.qos);
                    let f = fanout.entry(*key).or_insert(Fanout {
                        qos,
                        retain: false,
                        ids: Vec::new(),
                        share: None,
                    });
                    f.qos = f.qos.max(qos);
                    // RETAIN is cleared on normal delivery unless Retain As Published
                    // [MQTT-3.3.1-9].
                    f.retain |= sub.options.retain_as_published && message.retain;
                    f.ids.extend(sub.id);
                });
        }
        // A pick for a session this message already reaches (through a plain subscription
        // or an earlier pick) is a repeat: see `again` below. Picks are few (one per group).
        let mut picked: Vec<SessionKey> = Vec::new();
        let repeats: Vec<bool> = picks
            .iter()
            .map(|p| {
                let repeat = fanout.contains_key(&p.key) || picked.contains(&p.key);
                picked.push(p.key);
                repeat
            })
            .collect();
        let sessions = self.sessions.borrow();
        let shared = picks.into_iter().zip(repeats).filter_map(|(p, repeat)| {
            if sessions.get(p.key).is_none() {
                // The member left after it was picked: another one gets it.
                self.reroute_shared(message, p.share, (self.id, p.key));
                return None;
            }
            let f = Fanout {
                qos: p.qos,
                retain: p.retain,
                ids: p.id.into_iter().collect(),
                share: Some(p.share),
            };
            Some((p.key, f, repeat))
        });
        let mut full = Vec::new();
        let mut targets: Vec<Target> = Vec::new();
        let mut planned = Vec::new();
        // Second and later deliveries to one persistent session (a plain and a shared
        // subscription, or two share groups): each in a record of its own, after this
        // one, so that a Deliver record names a session once (the queue reader and
        // recovery find a session's delivery in a record by its number).
        let mut again = Vec::new();
        let size = message.size_bytes();
        let mut quota = None;
        let plain = fanout.drain().map(|(key, f)| (key, f, false));
        for (key, f, repeat) in plain.chain(shared) {
            let Some(s) = sessions.get(key) else {
                continue;
            };
            let mut session = s.borrow_mut();
            // The ACL, per message: a wildcard subscription gets only what its client may
            // read (a cached decision per session and topic).
            if !session.may_read(message.topic.as_str()) {
                continue;
            }
            let queued = f.qos != QoS::AtMostOnce;
            if queued && session.is_durable() {
                if repeat {
                    again.push((s.clone(), f));
                    continue;
                }
                if let (Some(p), Some(no)) = (
                    session.plan_durable(size, *quota.get_or_insert_with(|| self.quota())),
                    session.durable_no(),
                ) {
                    targets.push(Target {
                        no,
                        seq: p.seq,
                        qos: f.qos,
                        retain: f.retain,
                        sent: p.send_now,
                        ids: f.ids.iter().map(|i| i.get()).collect(),
                    });
                    planned.push((s.clone(), f, p));
                }
                continue;
            }
            session.deliver(Delivery {
                message: message.clone(),
                qos: f.qos,
                retain: f.retain,
                subscription_ids: f.ids,
                share: f.share,
            });
            if pushback && queued && session.is_congested() {
                full.push(s.clone());
            }
        }
        drop(fanout);
        if targets.is_empty() {
            return (full, None);
        }
        let (at, end) = self.storage.append(&StateRecord::Deliver {
            targets,
            tag,
            message: Message::clone(message),
        });
        let mut journal_end = None;
        for (s, f, p) in planned {
            let mut session = s.borrow_mut();
            session.deliver_durable(
                Delivery {
                    message: message.clone(),
                    qos: f.qos,
                    retain: f.retain,
                    subscription_ids: f.ids,
                    share: f.share,
                },
                p,
                at,
            );
            let journal = session.take_journal();
            journal_end = self.storage.append_all(&journal).or(journal_end);
            if pushback && session.is_congested() {
                full.push(s.clone());
            }
        }
        for (s, f) in again {
            let mut session = s.borrow_mut();
            let delivery = Delivery {
                message: message.clone(),
                qos: f.qos,
                retain: f.retain,
                subscription_ids: f.ids,
                share: f.share,
            };
            journal_end = self
                .deliver_logged(&mut session, delivery, tag)
                .max(journal_end);
            if pushback && session.is_congested() {
                full.push(s.clone());
            }
        }
        (full, Some(journal_end.unwrap_or(end).max(end)))
    }

    /// One delivery to one session (a retained message at SUBSCRIBE): logged first if
    /// the session is persistent and the QoS is 1 or 2.
    pub fn deliver_to(&self, session: &RefCell<Session>, delivery: Delivery) {
        let mut s = session.borrow_mut();
        if !s.may_read(delivery.message.topic.as_str()) {
            return;
        }
        if delivery.qos == QoS::AtMostOnce || !s.is_durable() {
            s.deliver(delivery);
            return;
        }
        self.deliver_logged(&mut s, delivery, None);
    }

    /// A QoS 1/2 delivery to a persistent session in a Deliver record of its own (tagged
    /// like the message's other records); returns where what it appended ends.
    fn deliver_logged(
        &self,
        s: &mut Session,
        delivery: Delivery,
        tag: Option<Tag>,
    ) -> Option<LogOffset> {
        let size = delivery.message.size_bytes();
        let (Some(p), Some(no)) = (s.plan_durable(size, self.quota()), s.durable_no()) else {
            return None;
        };
        let target = Target {
            no,
            seq: p.seq,
            qos: delivery.qos,
            retain: delivery.retain,
            sent: p.send_now,
            ids: delivery.subscription_ids.iter().map(|i| i.get()).collect(),
        };
        let (at, end) = self.storage.append(&StateRecord::Deliver {
            targets: vec![target],
            tag,
            message: Message::clone(&delivery.message),
        });
        s.deliver_durable(delivery, p, at);
        let journal = s.take_journal();
        Some(self.storage.append_all(&journal).unwrap_or(end).max(end))
    }

    /// The quota a new delivery to a persistent session is checked against: the
    /// session's own, or none left if this shard's log is at its share of
    /// `storage.disk_quota_bytes`.
    fn quota(&self) -> DiskQuota {
        let share = self.config.storage.disk_quota_bytes / self.count as u64;
        if self.storage.disk_bytes() >= share {
            DiskQuota::FULL
        } else {
            self.disk_quota
        }
    }

    /// After an operation on a session: its journal goes to the log, and its window is
    /// filled from its queue on disk.
    pub fn sync_session(&self, session: &RefCell<Session>) {
        let mut s = session.borrow_mut();
        if !s.is_durable() {
            return;
        }
        while let Some((no, from)) = s.wants_load() {
            let found = self
                .storage
                .next_delivery(no, from, |seq, next| s.skips(seq, next));
            let Some((target, at, next, message)) = found else {
                tracing::error!(client_id = %s.client_id, "queue on disk ends before its count; count reset");
                s.disk_exhausted();
                break;
            };
            // Expired while queued: deleted, not sent [MQTT-3.3.2-5]; the interval a sent
            // one carries is cut by the time it waited when its packet is made.
            let expired = message.is_expired();
            let loaded = Loaded {
                seq: target.seq,
                at,
                next,
                delivery: Delivery {
                    message: Rc::new(message),
                    qos: target.qos,
                    retain: target.retain,
                    subscription_ids: target
                        .ids
                        .iter()
                        .filter_map(|i| SubscriptionId::new(*i))
                        .collect(),
                    // Queued on disk: stays with this session if it leaves a share group.
                    share: None,
                },
            };
            if !s.load(loaded, expired) {
                break;
            }
        }
        let journal = s.take_journal();
        self.storage.append_all(&journal);
    }

    /// Adds a subscription; returns true if it is new (not a replacement). Returns once
    /// every shard knows this shard has subscribers for the filter, so a message published
    /// anywhere after the SUBACK reaches it.
    pub async fn subscribe(&self, key: SessionKey, filter: &TopicFilter, sub: LocalSub) -> bool {
        if filter.shared().is_some() {
            return self.share_join(key, filter, &sub).await;
        }
        let mf = filter.matching_filter();
        if self.subs.borrow_mut().insert(mf, key, sub).is_some() {
            return false;
        }
        let first = {
            let mut refs = self.filter_refs.borrow_mut();
            let n = refs.entry(mf.into()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            self.interest.borrow_mut().insert(mf, self.id, ());
            let (req, done) = self.replies.register(self.count - 1);
            self.interest_pending
                .borrow_mut()
                .insert(mf.into(), done.clone());
            for s in self.others() {
                let msg = CtrlMsg::InterestAdd {
                    filter: mf.into(),
                    from: self.id,
                    req,
                };
                if self.ctrl.send_to(s, msg).await.is_err() {
                    self.replies.answer(req, Vec::new());
                }
            }
            done.wait().await;
            let mut pending = self.interest_pending.borrow_mut();
            if pending.get(mf).is_some_and(|c| Rc::ptr_eq(c, &done)) {
                pending.remove(mf);
            }
        } else {
            let pending = self.interest_pending.borrow().get(mf).cloned();
            if let Some(done) = pending {
                done.wait().await;
            }
        }
        true
    }

    /// Removes a subscription; returns whether it existed.
    pub async fn unsubscribe(&self, key: SessionKey, filter: &TopicFilter) -> bool {
        if filter.shared().is_some() {
            return self.share_leave(key, filter).await;
        }
        let mf = filter.matching_filter();
        if self.subs.borrow_mut().remove(mf, &key).is_none() {
            return false;
        }
        let last = {
            let mut refs = self.filter_refs.borrow_mut();
            match refs.get_mut(mf) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => {
                    refs.remove(mf);
                    true
                }
            }
        };
        if last {
            self.interest.borrow_mut().remove(mf, &self.id);
            for s in self.others() {
                let msg = CtrlMsg::InterestRemove {
                    filter: mf.into(),
                    from: self.id,
                };
                let _ = self.ctrl.send_to(s, msg).await;
            }
        }
        true
    }

    /// Makes a session a member of the share group of `filter` (or updates its options) on
    /// every shard; returns whether it was not a member. Returns once every shard knows.
    async fn share_join(&self, key: SessionKey, filter: &TopicFilter, sub: &LocalSub) -> bool {
        let share: Arc<str> = filter.as_str().into();
        let online = self
            .sessions
            .borrow()
            .get(key)
            .is_some_and(|s| s.borrow().is_connected());
        let member = Member {
            shard: self.id,
            key,
            qos: sub.options.qos,
            retain_as_published: sub.options.retain_as_published,
            id: sub.id,
            online,
        };
        let new = !self.is_member(&share, key);
        self.shares.borrow_mut().join(&share, member.clone());
        let (req, done) = self.replies.register(self.count - 1);
        for s in self.others() {
            let msg = CtrlMsg::ShareJoin {
                share: share.clone(),
                member: member.clone(),
                from: self.id,
                req,
            };
            if self.ctrl.send_to(s, msg).await.is_err() {
                self.replies.answer(req, Vec::new());
            }
        }
        done.wait().await;
        new
    }

    fn is_member(&self, share: &Arc<str>, key: SessionKey) -> bool {
        self.shares.borrow().group(share).is_some_and(|g| {
            g.members()
                .iter()
                .any(|m| m.shard == self.id && m.key == key)
        })
    }

    /// Takes a session out of the share group of `filter` on every shard.
    async fn share_leave(&self, key: SessionKey, filter: &TopicFilter) -> bool {
        let share: Arc<str> = filter.as_str().into();
        if !self.is_member(&share, key) {
            return false;
        }
        self.shares.borrow_mut().leave(&share, self.id, key);
        for s in self.others() {
            let msg = CtrlMsg::ShareLeave {
                share: share.clone(),
                shard: self.id,
                key,
            };
            let _ = self.ctrl.send_to(s, msg).await;
        }
        true
    }

    /// A session with shared subscriptions connected or lost its connection: every shard
    /// learns it, so that messages go to online members first.
    pub async fn share_online(&self, key: SessionKey, session: &RefCell<Session>, online: bool) {
        let shares: Vec<Arc<str>> = session
            .borrow()
            .subscriptions
            .keys()
            .filter(|f| f.shared().is_some())
            .map(|f| Arc::from(f.as_str()))
            .collect();
        for share in shares {
            self.shares
                .borrow_mut()
                .set_online(&share, self.id, key, online);
            for s in self.others() {
                let msg = CtrlMsg::ShareOnline {
                    share: share.clone(),
                    shard: self.id,
                    key,
                    online,
                };
                let _ = self.ctrl.send_to(s, msg).await;
            }
        }
    }

    /// A member's connection ended: the QoS 1/2 messages of its shared subscriptions that
    /// it had not acknowledged, and those queued for it in memory, go to other members of
    /// their groups (those of a group with no other member stay).
    pub fn release_shared(self: &Rc<Self>, key: SessionKey, session: &RefCell<Session>) {
        let taken = {
            let shares = self.shares.borrow();
            let me = (self.id, key);
            session.borrow_mut().take_shared(|share| {
                shares
                    .group(share)
                    .is_some_and(|g| g.members().iter().any(|m| (m.shard, m.key) != me))
            })
        };
        if taken.is_empty() {
            return;
        }
        tracing::debug!(shard = %self.id, messages = taken.len(), "shared messages given to other members");
        self.sync_session(session);
        for d in taken {
            if let Some(share) = d.share {
                self.reroute_shared(&d.message, share, (self.id, key));
            }
        }
    }

    /// Gives `message` to a member of the group `share` other than `exclude` (from a task
    /// of its own: callers may hold the shard's borrows).
    fn reroute_shared(
        self: &Rc<Self>,
        message: &Rc<Message>,
        share: Arc<str>,
        exclude: (ShardId, SessionKey),
    ) {
        let found = self.shares.borrow().repick(
            &share,
            &message.origin,
            message.qos,
            message.retain,
            self.config.mqtt.shared_strategy,
            exclude,
        );
        let Some((to, pick)) = found else {
            tracing::debug!(shard = %self.id, %share, "no other member for a shared message; dropped");
            return;
        };
        let shard = self.clone();
        let message = message.clone();
        glommio::spawn_local(async move {
            // glommio runs a spawned task at once, up to its first wait: without this
            // yield, delivering here would run inside the caller's borrows of the shard
            // (seen as "RefCell already borrowed" killing the shard, found by the handler
            // fuzz test).
            futures_lite::future::yield_now().await;
            if to == shard.id {
                shard.deliver_local(&message, false, None, false, vec![pick]);
                return;
            }
            let forward = DataMsg::Publish {
                message: Message::clone(&message),
                ticket: None,
                tag: None,
                regular: false,
                picks: vec![pick],
            };
            shard.limit_stats.traffic.mesh_forwarded();
            let _ = shard.data.send_to(to.index(), forward).await;
        })
        .detach();
    }

    /// Retained messages matching a new subscription's filter, from every shard that may
    /// hold one (only the owner for a filter without wildcards).
    pub async fn retained_matching(&self, filter: &TopicFilter) -> Vec<Rc<Message>> {
        let mf = filter.matching_filter();
        let mut found = Vec::new();
        let targets: Vec<usize> = if filter.has_wildcards() {
            self.retained
                .borrow()
                .for_each_matching(mf, |_, m| found.push(m.clone()));
            self.others().collect()
        } else {
            let owner = self.owner_of(mf);
            if owner == self.id {
                found.extend(self.retained.borrow().get(mf).cloned());
                Vec::new()
            } else {
                vec![owner.index()]
            }
        };
        if targets.is_empty() {
            return found;
        }
        let (req, done) = self.replies.register(targets.len());
        for s in targets {
            let msg = CtrlMsg::RetainQuery {
                filter: mf.into(),
                from: self.id,
                req,
            };
            if self.ctrl.send_to(s, msg).await.is_err() {
                self.replies.answer(req, Vec::new());
            }
        }
        found.extend(done.wait().await.into_iter().map(Rc::new));
        found
    }

    /// Ends a session: a will still waiting for its delay is published [MQTT-3.1.2-8], its
    /// subscriptions go, the session state is dropped.
    pub async fn remove_session(self: &Rc<Self>, key: SessionKey) {
        let Some(session) = self.sessions.borrow_mut().remove(key) else {
            return;
        };
        let will = session.borrow_mut().take_pending_will();
        if let Some(message) = will {
            self.publish_will(message).await;
        }
        if let Some(no) = session.borrow().durable_no() {
            self.storage.append(&StateRecord::SessionGone { no });
        }
        let filters: Vec<TopicFilter> = session.borrow().subscriptions.keys().cloned().collect();
        for f in filters {
            self.unsubscribe(key, &f).await;
        }
    }

    /// Forwards a connection to its home shard.
    pub async fn hand_off(&self, home: ShardId, handoff: mesh::Handoff) -> Result<(), ()> {
        self.ctrl
            .send_to(home.index(), CtrlMsg::Handoff(handoff))
            .await
            .map_err(|_| ())
    }
}

/// The picks for shard `to`, taken out of `picks`.
fn take_picks(picks: &mut Vec<(ShardId, Pick)>, to: ShardId) -> Vec<Pick> {
    if picks.is_empty() {
        return Vec::new();
    }
    let mut mine = Vec::new();
    picks.retain(|(s, p)| {
        if *s == to {
            mine.push(p.clone());
            false
        } else {
            true
        }
    });
    mine
}

/// Takes ownership of a duplicated socket descriptor.
pub fn dup_fd(fd: std::os::fd::RawFd) -> std::io::Result<std::os::fd::OwnedFd> {
    // SAFETY: dup returns a new descriptor (or -1) and reads no memory.
    let new = unsafe { libc::dup(fd) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(new) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_connection_task_leaves_the_shard_running() {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(64 << 10)
            .make()
            .expect("executor");
        let survived = ex.run(async {
            let done = Rc::new(std::cell::Cell::new(false));
            let d = done.clone();
            glommio::spawn_local(isolate(async move {
                d.set(true);
                panic!("bug in a handler");
            }))
            .await;
            // The executor is still here and runs the next task.
            let after = glommio::spawn_local(async { 41 + 1 }).await;
            done.get() && after == 42
        });
        assert!(survived);
    }
}

//! What the admin listener asks the shards, and what they answer: plain `Send` data, one
//! bounded channel per shard, so that the admin thread never touches a shard's state and a
//! shard answers between its other tasks (never blocking on the asker).

use std::borrow::Borrow;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::metrics::MetricsSnapshot;

/// Requests waiting for one shard; beyond it the asker waits (bounded by its timeout).
pub const REQUESTS_PER_SHARD_MAX: usize = 16;

/// Most items one page may hold.
pub const PAGE_LIMIT_MAX: usize = 1000;

/// A question for every shard (each answers for the sessions and retained topics it owns).
#[derive(Debug, Clone)]
pub enum Query {
    /// The shard's metrics.
    Metrics,
    /// Sessions whose client id starts with `prefix` and sorts after `after`: the first
    /// `limit` of them.
    Clients {
        after: Option<String>,
        limit: usize,
        prefix: String,
    },
    /// Subscriptions, sorted by (client id, filter), after `after`; only `client_id`'s when
    /// given.
    Subscriptions {
        after: Option<(String, String)>,
        limit: usize,
        client_id: Option<String>,
    },
    /// Retained messages whose topic `filter` matches, sorted by topic, after `after`.
    Retained {
        filter: String,
        after: Option<String>,
        limit: usize,
    },
    /// Disconnect the client (v5: DISCONNECT 0x98 Administrative action).
    Kick { client_id: String },
}

/// One shard's answer.
#[derive(Debug)]
pub enum Answer {
    Metrics(Box<MetricsSnapshot>),
    Clients(Page<ClientInfo>),
    Subscriptions(Page<SubscriptionInfo>),
    Retained(Page<RetainedInfo>),
    /// Whether this shard had the client connected.
    Kicked(bool),
}

/// One shard's part of a page: its first `limit` items after the cursor, in order.
#[derive(Debug)]
pub struct Page<T> {
    /// Items matching the query's filter (cursor aside).
    pub total: u64,
    /// Items after the cursor (`items` is the first `limit` of them).
    pub remaining: u64,
    pub items: Vec<T>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Page {
            total: 0,
            remaining: 0,
            items: Vec::new(),
        }
    }
}

impl<T> Page<T> {
    /// Merges the shards' pages: the first `limit` items over all of them, and whether more
    /// remain after the last.
    pub fn merge<K: Ord>(
        pages: Vec<Page<T>>,
        key: impl Fn(&T) -> K,
        limit: usize,
    ) -> (Page<T>, bool) {
        let mut all = Page::default();
        for p in pages {
            all.total += p.total;
            all.remaining += p.remaining;
            all.items.extend(p.items);
        }
        all.items.sort_by_key(&key);
        all.items.truncate(limit);
        let more = all.remaining > all.items.len() as u64;
        (all, more)
    }
}

/// A shard's part of a page, chosen while its items stream past: the first `limit` whose
/// key sorts after the cursor, with how many items there were and how many were past the
/// cursor. It holds at most `limit` items, and makes an item's owned key and value only
/// when the item enters the page so far (a shard with a million retained topics copies
/// about `limit` topic names for a page, not every one).
pub struct FirstAfter<K, V> {
    after: Option<K>,
    limit: usize,
    total: u64,
    remaining: u64,
    /// The page so far; the greatest key on top, the one to give way to a smaller key.
    page: BinaryHeap<ByKey<K, V>>,
}

/// A page item ordered by its key alone.
struct ByKey<K, V>(K, V);

impl<K: Ord, V> PartialEq for ByKey<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<K: Ord, V> Eq for ByKey<K, V> {}
impl<K: Ord, V> PartialOrd for ByKey<K, V> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, V> Ord for ByKey<K, V> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl<K: Ord, V> FirstAfter<K, V> {
    pub fn new(after: Option<K>, limit: usize) -> Self {
        Self {
            after,
            limit,
            total: 0,
            remaining: 0,
            page: BinaryHeap::with_capacity(limit.min(PAGE_LIMIT_MAX) + 1),
        }
    }

    /// Counts an item, and keeps it if it belongs on the page so far; `own` is called only
    /// for an item that is kept.
    pub fn offer<Q>(&mut self, key: &Q, own: impl FnOnce() -> (K, V))
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.total += 1;
        if self.after.as_ref().is_some_and(|a| key <= a.borrow()) {
            return;
        }
        self.remaining += 1;
        let fits = self.page.len() < self.limit
            || self.page.peek().is_some_and(|top| key < top.0.borrow());
        if fits {
            let (k, v) = own();
            self.page.push(ByKey(k, v));
            if self.page.len() > self.limit {
                self.page.pop();
            }
        }
    }

    /// (items seen, items past the cursor, the page in key order).
    pub fn finish(self) -> (u64, u64, Vec<(K, V)>) {
        let items = self
            .page
            .into_sorted_vec()
            .into_iter()
            .map(|ByKey(k, v)| (k, v))
            .collect();
        (self.total, self.remaining, items)
    }
}

/// A session as `/api/v1/clients` lists it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    pub shard: u16,
    /// Present while a client is connected.
    pub connection: Option<ConnectionInfo>,
    pub username: Option<String>,
    /// Seconds the session outlives its connection (`u32::MAX`: never expires).
    pub session_expiry_secs: u32,
    pub subscriptions: usize,
    pub inflight: usize,
    pub queued: usize,
}

#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub protocol: crate::protocol::ProtocolVersion,
    pub peer: Option<std::net::SocketAddr>,
    pub keep_alive: Option<u16>,
    pub connected_at: Option<SystemTime>,
}

/// One subscription, as `/api/v1/subscriptions` lists it.
#[derive(Debug, Clone)]
pub struct SubscriptionInfo {
    pub client_id: String,
    pub filter: String,
    pub shard: u16,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    pub subscription_id: Option<u32>,
}

/// One retained message, as `/api/v1/retained` lists it.
#[derive(Debug, Clone)]
pub struct RetainedInfo {
    pub topic: String,
    pub qos: u8,
    pub payload: bytes::Bytes,
}

/// A request on its way to a shard, with where the answer goes.
#[derive(Debug)]
pub struct Request {
    pub query: Query,
    pub reply: flume::Sender<Answer>,
}

/// A shard's end of the admin channels.
pub type Requests = flume::Receiver<Request>;

/// The admin listener's way to every shard. Made before the broker starts; the broker
/// connects it ([`AdminHandle::connect`]) once it knows how many shards it runs. Cheap to
/// clone; the lock is taken per request on the admin thread only, never on a shard.
#[derive(Debug, Clone, Default)]
pub struct AdminHandle {
    shards: Arc<Mutex<Vec<flume::Sender<Request>>>>,
}

impl AdminHandle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Channels for `shards` shards, replacing any earlier ones: the receivers, by shard
    /// index, for the shards to serve.
    pub fn connect(&self, shards: usize) -> Vec<Requests> {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..shards)
            .map(|_| flume::bounded(REQUESTS_PER_SHARD_MAX))
            .unzip();
        if let Ok(mut s) = self.shards.lock() {
            *s = senders;
        }
        receivers
    }

    /// Shards the broker runs (0 before it started).
    pub fn shard_count(&self) -> usize {
        self.shards.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// Asks every shard; their answers by shard index, or `None` if the broker is not
    /// running or a shard does not answer within `timeout`. Blocks the calling thread:
    /// never call it on a shard.
    pub fn ask(&self, query: &Query, timeout: Duration) -> Option<Vec<Answer>> {
        let deadline = Instant::now() + timeout;
        let senders = self.shards.lock().ok()?.clone();
        if senders.is_empty() {
            return None;
        }
        let (reply, answers) = flume::bounded(senders.len());
        for s in &senders {
            let request = Request {
                query: query.clone(),
                reply: reply.clone(),
            };
            s.send_deadline(request, deadline).ok()?;
        }
        drop(reply);
        let mut got = Vec::with_capacity(senders.len());
        for _ in 0..senders.len() {
            got.push(answers.recv_deadline(deadline).ok()?);
        }
        Some(got)
    }

    /// Every shard's metrics (by shard id), or `None` as for [`AdminHandle::ask`].
    pub fn shard_metrics(&self, timeout: Duration) -> Option<Vec<MetricsSnapshot>> {
        let mut shards: Vec<MetricsSnapshot> = self
            .ask(&Query::Metrics, timeout)?
            .into_iter()
            .filter_map(|a| match a {
                Answer::Metrics(m) => Some(*m),
                _ => None,
            })
            .collect();
        shards.sort_by_key(|m| m.busy.first().map(|b| b.0));
        Some(shards)
    }

    /// The merged metrics of every shard, or `None` as for [`AdminHandle::ask`].
    pub fn metrics(&self, timeout: Duration) -> Option<MetricsSnapshot> {
        let mut all = MetricsSnapshot::default();
        for m in self.shard_metrics(timeout)? {
            all.merge(&m);
        }
        Some(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_after<K: Ord + Clone, V: Clone>(
        items: &[(K, V)],
        after: Option<K>,
        limit: usize,
    ) -> (u64, u64, Vec<(K, V)>) {
        let mut page = FirstAfter::new(after, limit);
        for (k, v) in items {
            page.offer(k, || (k.clone(), v.clone()));
        }
        page.finish()
    }

    fn page(ids: &[&str], after: Option<&str>, limit: usize) -> Page<String> {
        let items: Vec<(String, ())> = ids.iter().map(|s| (s.to_string(), ())).collect();
        let (total, remaining, chosen) = first_after(&items, after.map(str::to_owned), limit);
        Page {
            total,
            remaining,
            items: chosen.into_iter().map(|(k, ())| k).collect(),
        }
    }

    #[test]
    fn a_shard_page_is_the_first_items_after_the_cursor_in_order() {
        let p = page(&["d", "a", "c", "b", "e"], Some("a"), 2);
        assert_eq!(p.items, ["b", "c"]);
        assert_eq!((p.total, p.remaining), (5, 4));
        let p = page(&["b", "a"], None, 10);
        assert_eq!(p.items, ["a", "b"]);
        assert_eq!(p.remaining, 2);
        // Compound keys (client id, filter), as the subscriptions page uses.
        let items = vec![
            (("b", "x"), 1),
            (("a", "z"), 2),
            (("a", "y"), 3),
            (("c", "a"), 4),
        ];
        let (total, remaining, chosen) = first_after(&items, Some(("a", "y")), 2);
        assert_eq!((total, remaining), (4, 3));
        assert_eq!(chosen, [(("a", "z"), 2), (("b", "x"), 1)]);
    }

    #[test]
    fn merged_pages_walk_every_item_once_across_shards() {
        let shards = [
            vec!["a", "d", "g", "j"],
            vec!["b", "e", "h"],
            vec!["c", "f", "i", "k"],
        ];
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let pages = shards
                .iter()
                .map(|s| page(s, after.as_deref(), 3))
                .collect();
            let (merged, more) = Page::merge(pages, |s: &String| s.clone(), 3);
            assert_eq!(merged.total, 11);
            seen.extend(merged.items.iter().cloned());
            if !more {
                break;
            }
            after = merged.items.last().cloned();
        }
        assert_eq!(
            seen,
            ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]
        );
    }

    proptest::proptest! {
        /// Streaming the items in any order gives what sorting them all would: the first
        /// `limit` keys after the cursor, and the counts (keys repeat: two sessions never
        /// share a client id, but the collector must not rely on it).
        #[test]
        fn the_streamed_page_is_the_sorted_page(
            keys in proptest::collection::vec(0u16..300, 0..200),
            after in proptest::option::of(0u16..300),
            limit in 0usize..40,
        ) {
            let items: Vec<(u16, ())> = keys.iter().map(|&k| (k, ())).collect();
            let (total, remaining, chosen) = first_after(&items, after, limit);
            let mut past: Vec<u16> = keys.iter().copied().filter(|k| after.is_none_or(|a| *k > a)).collect();
            past.sort_unstable();
            proptest::prop_assert_eq!(total, keys.len() as u64);
            proptest::prop_assert_eq!(remaining, past.len() as u64);
            past.truncate(limit);
            let got: Vec<u16> = chosen.into_iter().map(|(k, ())| k).collect();
            proptest::prop_assert_eq!(got, past);
        }
    }

    #[test]
    fn a_page_owns_only_the_items_it_keeps() {
        // Ascending keys: each new key is greater than the page's, so after the first
        // `limit` nothing else is made.
        let mut page = FirstAfter::<String, ()>::new(None, 3);
        let mut made = 0;
        for i in 0..1000 {
            let key = format!("t/{i:04}");
            page.offer(key.as_str(), || {
                made += 1;
                (key.clone(), ())
            });
        }
        let (total, remaining, items) = page.finish();
        assert_eq!((total, remaining, made), (1000, 1000, 3));
        assert_eq!(items[2].0, "t/0002");
    }

    #[test]
    fn a_handle_without_a_broker_answers_none() {
        let h = AdminHandle::new();
        assert!(h.ask(&Query::Metrics, Duration::from_millis(10)).is_none());
        // Connected but nobody serving: the wait is bounded.
        let _rx = h.connect(2);
        assert_eq!(h.shard_count(), 2);
        assert!(h.metrics(Duration::from_millis(20)).is_none());
    }
}

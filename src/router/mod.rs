//! Where messages go: the shard-local indexes that turn a topic into subscribers, shards and
//! retained messages.
//!
//! - [`trie`]: [`SubscriptionTrie`], topic filter → entries keyed by `K`, matched against a
//!   topic name on every PUBLISH. One holds a shard's local subscriptions (keyed by session),
//!   another the replicated interest table (keyed by shard).
//! - [`retained`]: [`RetainedIndex`], topic name → retained message, matched against a
//!   topic filter on SUBSCRIBE (the reverse query).
//!
//! Both live inside one shard as plain owned data: no locks, no atomics, no reference
//! counting. Neither does any I/O; the handlers decide what to store, these structures only
//! answer "who matches". This file holds what both build on: the key of a topic level, the
//! set of a node's children, and the hasher of their maps.
//!
//! Both take filters and topics as plain `&str` already validated by
//! [`TopicFilter`](crate::protocol::TopicFilter) and [`TopicName`](crate::protocol::TopicName).
//! A shared subscription is stored under its
//! [`matching_filter`](crate::protocol::TopicFilter::matching_filter); the share group is the
//! caller's business (it goes in the key or the value). Matching is byte for byte, with no
//! normalisation [MQTT-4.7.3-4], and agrees with
//! [`filter_matches`](crate::protocol::filter_matches), which the property tests use as the
//! reference.
//!
//! Neither structure recurses: a filter or topic with tens of thousands of levels (the
//! configured `topic_levels_max` has no upper bound) costs heap, never the shard's stack.

pub mod retained;
pub mod trie;

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::mem;
use std::sync::OnceLock;

pub use retained::RetainedIndex;
pub use trie::SubscriptionTrie;

/// A hash map keyed by topic levels (or small ids) with [`LevelHashBuilder`].
type LevelMap<K, V> = HashMap<K, V, LevelHashBuilder>;

/// Longest level kept inline in a [`LevelKey`]: 22 bytes fit in the 24 a boxed slice and
/// its enum tag take anyway.
const LEVEL_INLINE_MAX: usize = 22;

/// One topic level's bytes, as the key of a node's children.
///
/// Levels of up to [`LEVEL_INLINE_MAX`] bytes (nearly all, in practice) are stored inline,
/// so comparing keys during a lookup reads the bucket the probe already loaded instead of
/// chasing a pointer to another cache line: in a trie too large for the cache, that pointer
/// was a miss per level. Hashes and compares as `[u8]`, so maps look it up by
/// `level.as_bytes()` without building one.
///
/// # Invariants
/// A level is `Inline` exactly when it is at most [`LEVEL_INLINE_MAX`] bytes, so that equal
/// levels have equal representations; bytes past `len` are zero.
#[derive(Clone)]
enum LevelKey {
    Inline {
        len: u8,
        bytes: [u8; LEVEL_INLINE_MAX],
    },
    Heap(Box<[u8]>),
}

impl LevelKey {
    fn new(level: &str) -> Self {
        let level = level.as_bytes();
        match u8::try_from(level.len()) {
            Ok(len) if level.len() <= LEVEL_INLINE_MAX => {
                let mut bytes = [0; LEVEL_INLINE_MAX];
                for (to, from) in bytes.iter_mut().zip(level) {
                    *to = *from;
                }
                LevelKey::Inline { len, bytes }
            }
            _ => LevelKey::Heap(level.into()),
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            LevelKey::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            LevelKey::Heap(bytes) => bytes,
        }
    }
}

impl PartialEq for LevelKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for LevelKey {}

impl Hash for LevelKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, which `Borrow<[u8]>` requires.
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for LevelKey {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Splits off the first level of a topic or filter: `("a", Some("b/c"))` for `"a/b/c"`,
/// `("a", None)` for `"a"`, `("", Some(""))` for `"/"`.
fn split_level(s: &str) -> (&str, Option<&str>) {
    match s.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (s, None),
    }
}

/// A node's literal children, keyed by level: a short vector searched linearly while there
/// are at most [`CHILDREN_VEC_MAX`], a hash map beyond.
///
/// Most nodes of a real trie have one child (`tenant/T` → `device`, `device/D` → `sensor`):
/// for them a lookup reads one small allocation and hashes nothing, where a hash map would
/// read its control bytes and then a bucket, often on two cache lines.
enum Children<N> {
    Few(Vec<(LevelKey, N)>),
    Many(LevelMap<LevelKey, N>),
}

/// Children kept in a vector before switching to a map.
const CHILDREN_VEC_MAX: usize = 8;

/// A map of children becomes a vector again at this many; below [`CHILDREN_VEC_MAX`] so
/// that a node hovering at the threshold does not convert back and forth.
const CHILDREN_VEC_AGAIN: usize = 4;

impl<N> Default for Children<N> {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl<N> Children<N> {
    fn len(&self) -> usize {
        match self {
            Children::Few(children) => children.len(),
            Children::Many(children) => children.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn get(&self, level: &str) -> Option<&N> {
        let level = level.as_bytes();
        match self {
            Children::Few(children) => children
                .iter()
                .find(|(key, _)| key.as_bytes() == level)
                .map(|(_, child)| child),
            Children::Many(children) => children.get(level),
        }
    }

    fn get_mut(&mut self, level: &str) -> Option<&mut N> {
        let level = level.as_bytes();
        match self {
            Children::Few(children) => children
                .iter_mut()
                .find(|(key, _)| key.as_bytes() == level)
                .map(|(_, child)| child),
            Children::Many(children) => children.get_mut(level),
        }
    }

    /// The child for `level`, created with `N::default()` if missing.
    fn get_or_insert_default(&mut self, level: &str) -> &mut N
    where
        N: Default,
    {
        if let Children::Few(children) = self {
            if children.len() >= CHILDREN_VEC_MAX
                && !children
                    .iter()
                    .any(|(key, _)| key.as_bytes() == level.as_bytes())
            {
                *self = Children::Many(mem::take(children).into_iter().collect());
            }
        }
        match self {
            Children::Few(children) => {
                let at = match children
                    .iter()
                    .position(|(key, _)| key.as_bytes() == level.as_bytes())
                {
                    Some(at) => at,
                    None => {
                        // Grow by one: most nodes keep one child, and doubling would leave
                        // room for three more `(LevelKey, N)` pairs in every one of them.
                        children.reserve_exact(1);
                        children.push((LevelKey::new(level), N::default()));
                        children.len() - 1
                    }
                };
                &mut children[at].1
            }
            // Builds the key even when the child exists (std's map has no stable way to look
            // up by `&[u8]` and insert without a second lookup); that allocates only for
            // levels too long to inline, and inserting is not the hot path.
            Children::Many(children) => children.entry(LevelKey::new(level)).or_default(),
        }
    }

    /// Removes the child for `level`, and gives memory back (see [`shrink_after_remove`]).
    fn remove(&mut self, level: &str) -> Option<N> {
        let level = level.as_bytes();
        match self {
            Children::Few(children) => {
                let at = children
                    .iter()
                    .position(|(key, _)| key.as_bytes() == level)?;
                let (_, child) = children.swap_remove(at);
                if children.is_empty() {
                    *children = Vec::new();
                }
                Some(child)
            }
            Children::Many(children) => {
                let child = children.remove(level)?;
                if children.len() <= CHILDREN_VEC_AGAIN {
                    *self = Children::Few(children.drain().collect());
                } else {
                    shrink_after_remove(children);
                }
                Some(child)
            }
        }
    }

    /// `(level, child)` pairs in no particular order.
    fn iter(&self) -> ChildrenIter<'_, N> {
        match self {
            Children::Few(children) => ChildrenIter::Few(children.iter()),
            Children::Many(children) => ChildrenIter::Many(children.iter()),
        }
    }

    fn values(&self) -> impl Iterator<Item = &N> {
        self.iter().map(|(_, child)| child)
    }

    /// Moves every child into `out`, leaving `self` empty and unallocated.
    fn take_all(&mut self, out: &mut Vec<N>) {
        match mem::take(self) {
            Children::Few(children) => out.extend(children.into_iter().map(|(_, child)| child)),
            Children::Many(children) => out.extend(children.into_values()),
        }
    }
}

/// See [`Children::iter`].
enum ChildrenIter<'a, N> {
    Few(std::slice::Iter<'a, (LevelKey, N)>),
    Many(std::collections::hash_map::Iter<'a, LevelKey, N>),
}

impl<'a, N> Iterator for ChildrenIter<'a, N> {
    /// The level's bytes and the child.
    type Item = (&'a [u8], &'a N);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            ChildrenIter::Few(children) => {
                children.next().map(|(key, child)| (key.as_bytes(), child))
            }
            ChildrenIter::Many(children) => {
                children.next().map(|(key, child)| (key.as_bytes(), child))
            }
        }
    }
}

/// Builds [`LevelHasher`]s: the hasher of every map in the router.
///
/// Why not std's SipHash: a topic level is typically 3 to 20 bytes and one PUBLISH hashes one
/// level per trie level, so SipHash's fixed cost dominates a lookup. Why not a plain
/// multiply-rotate hash (FxHash): topic levels come from clients, and an unseeded hash lets
/// one client craft levels that all land in one bucket. This hasher is a folded 64×64→128
/// multiply per 8 bytes with two seeds drawn once per process from std's `RandomState`. It is
/// fast and not predictable from outside, but it is not a cryptographic PRF; what bounds an
/// attacker in the end is `limits.subscriptions_per_client_max`.
#[derive(Debug, Clone, Copy, Default)]
struct LevelHashBuilder;

impl BuildHasher for LevelHashBuilder {
    type Hasher = LevelHasher;

    fn build_hasher(&self) -> LevelHasher {
        let (state, multiplier) = seeds();
        LevelHasher { state, multiplier }
    }
}

/// `(initial state, multiplier)`, random per process; the multiplier is odd.
fn seeds() -> (u64, u64) {
    static SEEDS: OnceLock<(u64, u64)> = OnceLock::new();
    *SEEDS.get_or_init(|| {
        let random = RandomState::new();
        let state = random.hash_one(0x5eed_u64);
        let multiplier = random.hash_one(state) | 1;
        (state, multiplier)
    })
}

/// See [`LevelHashBuilder`].
struct LevelHasher {
    state: u64,
    multiplier: u64,
}

impl LevelHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        let product = u128::from(self.state ^ word) * u128::from(self.multiplier);
        // Folding the high half into the low half spreads every input bit over the result.
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for LevelHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        // The last 0..=7 bytes, with the length in the top byte so that trailing zero
        // bytes still change the hash.
        let tail = words
            .remainder()
            .iter()
            .enumerate()
            .fold(0u64, |acc, (i, &b)| acc | u64::from(b) << (8 * i));
        self.mix(tail | (bytes.len() as u64) << 56);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

/// Gives memory back after removals: frees an empty map's table, and halves a table that
/// is less than a quarter full (amortised O(1) per removal: a shrink costs O(len) and the
/// next one needs len to halve again).
fn shrink_after_remove<K: Eq + Hash, V>(map: &mut LevelMap<K, V>) {
    if map.is_empty() {
        *map = LevelMap::default();
    } else if map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash<T: Hash + ?Sized>(value: &T) -> u64 {
        LevelHashBuilder.hash_one(value)
    }

    #[test]
    fn split_level_cases() {
        assert_eq!(split_level("a/b/c"), ("a", Some("b/c")));
        assert_eq!(split_level("a"), ("a", None));
        assert_eq!(split_level("/"), ("", Some("")));
        assert_eq!(split_level(""), ("", None));
        assert_eq!(split_level("a//b"), ("a", Some("/b")));
    }

    #[test]
    fn level_hasher_is_deterministic_within_a_process() {
        assert_eq!(hash("sensor"), hash("sensor"));
        assert_eq!(hash(&7u16), hash(&7u16));
    }

    #[test]
    fn level_hasher_separates_near_misses() {
        let levels = [
            "",
            "a",
            "a\0",
            "\0",
            "ab",
            "ba",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefgi",
            "sensor",
            "sensoR",
        ];
        let hashes: std::collections::HashSet<u64> = levels.iter().map(|l| hash(*l)).collect();
        assert_eq!(hashes.len(), levels.len());
    }

    #[test]
    fn level_key_is_no_larger_than_a_boxed_slice_and_tag() {
        assert!(mem::size_of::<LevelKey>() <= 24);
    }

    #[test]
    fn level_key_inline_and_heap_agree_with_the_bytes() {
        for level in [
            "",
            "a",
            "sensor",
            &"x".repeat(22),
            &"x".repeat(23),
            &"é".repeat(40),
        ] {
            let key = LevelKey::new(level);
            assert_eq!(key.as_bytes(), level.as_bytes());
            assert_eq!(
                matches!(key, LevelKey::Inline { .. }),
                level.len() <= LEVEL_INLINE_MAX
            );
            assert_eq!(hash(&key), hash(level.as_bytes()));
            let map: LevelMap<LevelKey, ()> = [(key, ())].into_iter().collect();
            assert!(map.contains_key(level.as_bytes()));
        }
    }

    #[test]
    fn children_switch_between_vector_and_map() {
        let mut children: Children<u32> = Children::default();
        let levels: Vec<String> = (0..20).map(|i| format!("level{i}")).collect();
        for (i, level) in levels.iter().enumerate() {
            *children.get_or_insert_default(level) = i as u32;
            assert_eq!(
                matches!(children, Children::Many(_)),
                i + 1 > CHILDREN_VEC_MAX,
                "{i}"
            );
        }
        assert_eq!(*children.get_or_insert_default("level3"), 3);
        assert_eq!(children.len(), 20);
        for (i, level) in levels.iter().enumerate() {
            assert_eq!(children.get(level), Some(&(i as u32)));
        }
        assert_eq!(children.get("level20"), None);
        for (i, level) in levels.iter().enumerate().skip(2) {
            assert_eq!(children.remove(level), Some(i as u32));
        }
        assert!(matches!(children, Children::Few(_)));
        let mut seen: Vec<(&[u8], &u32)> = children.iter().collect();
        seen.sort();
        assert_eq!(seen, [(&b"level0"[..], &0), (&b"level1"[..], &1)]);
        let mut out = Vec::new();
        children.take_all(&mut out);
        assert!(children.is_empty());
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn shrink_after_remove_frees_and_halves() {
        let mut map: LevelMap<u32, u32> = (0..1000).map(|i| (i, i)).collect();
        for i in 0..990 {
            map.remove(&i);
            shrink_after_remove(&mut map);
        }
        assert!(map.capacity() <= 4 * map.len(), "{}", map.capacity());
        for i in 990..1000 {
            map.remove(&i);
            shrink_after_remove(&mut map);
        }
        assert_eq!(map.capacity(), 0);
    }
}

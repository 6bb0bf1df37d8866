//! Topic filter → entries keyed by `K`, matched against topic names: a shard's local
//! subscriptions and its replicated interest table.

use std::fmt;
use std::hash::Hash;
use std::mem;

use super::{shrink_after_remove, split_level, Children, LevelMap};

/// A filter's entries live in a vector (linear search) up to this many, then in a map.
const ENTRIES_VEC_MAX: usize = 16;

/// A filter's map of entries becomes a vector again when it shrinks to this many. Below
/// [`ENTRIES_VEC_MAX`] so that a filter hovering at the threshold does not convert back and
/// forth.
const ENTRIES_VEC_AGAIN: usize = 8;

/// Pending branches [`SubscriptionTrie::for_each_match`] keeps on the call stack; more go to
/// the heap. One branch is pending per level where both a literal child and a `+` child
/// match, so realistic tries never spill.
const MATCH_STACK_INLINE: usize = 16;

/// A multimap from topic filter to entries `(K, V)`, one per `(filter, key)`, answering
/// "which entries match this topic name?".
///
/// A shard keeps one for its local subscriptions (`K` a session id, `V` the subscription
/// options) and one for the replicated interest table (`K` a shard id, `V` how many
/// subscribers that shard has for the filter).
///
/// The trie has a node per filter level. A node's literal children are keyed by the level's
/// bytes (a short vector while there are few, a hash map beyond); the `+` child has a slot
/// of its own, and so do the entries of the filter that ends at the node (`a/b` ends at
/// `a → b`) and of the filter that ends with a `#` below it (`a/b/#` is kept at `a → b`,
/// which is how `#` also matches the parent level).
///
/// # Invariants
/// - Every node other than the root holds an entry, or has a descendant that does: removing
///   the last entry below a node removes the node. Memory is therefore proportional to the
///   live `(filter, key)` pairs and their filters' levels, whatever was removed before.
/// - Every leaf (the entries of one filter) is non-empty and holds each key at most once.
/// - A leaf stores its filter's text (each filter has its own leaf: the levels and the slot
///   determine it); `len` counts entries and `filters` counts leaves.
/// - A `#` level is only ever the last level of a filter (a valid
///   [`TopicFilter`](crate::protocol::TopicFilter) guarantees it). An invalid filter never
///   panics: a `#` or `+` that is not a whole level, or a `#` that is not last, is treated as
///   a literal, which no topic name can contain, so such a filter matches nothing.
///
/// # Complexity
/// With `L` the number of levels of the filter or topic, and a child lookup being a scan of
/// at most 8 inline keys or one hash lookup:
/// - [`insert`](Self::insert), [`get`](Self::get): O(L) child lookups, plus a scan of at
///   most [`ENTRIES_VEC_MAX`] entries or one more hash lookup. `insert` allocates the leaf
///   of a new filter and the nodes it creates (and the text of levels over 22 bytes).
/// - [`remove`](Self::remove): O(L) child lookups, twice when it prunes nodes.
/// - [`for_each_match`](Self::for_each_match): one child lookup per visited node plus O(1)
///   per reported entry. The visited nodes are those whose filter prefix matches the topic's
///   prefix of the same length, so at most O(L) on a trie without `+` and O(2^L) in the
///   worst case of `+` at every level. No allocation unless more than
///   [`MATCH_STACK_INLINE`] branches are pending at once.
///
/// Not synchronised: it belongs to one shard.
pub struct SubscriptionTrie<K, V> {
    root: Node<K, V>,
    /// Entries, over all filters.
    len: usize,
    /// Filters with at least one entry (leaves).
    filters: usize,
}

/// One level of the trie.
struct Node<K, V> {
    /// Literal next levels.
    children: Children<Node<K, V>>,
    /// The `+` next level.
    plus: Option<Box<Node<K, V>>>,
    /// Filters ending at this node.
    exact: Option<Box<Leaf<K, V>>>,
    /// The filter that is this node's path followed by `/#` (`#` alone at the root).
    multi: Option<Box<Leaf<K, V>>>,
}

/// The entries of one filter.
struct Leaf<K, V> {
    filter: Box<str>,
    entries: Entries<K, V>,
}

/// The `(key, value)` pairs of one filter, sized to how many there are.
///
/// `Few` with an empty vector is the (allocation-free) empty state a leaf passes through
/// while it is created or removed.
enum Entries<K, V> {
    /// One subscriber, by far the most common case: no allocation beyond the leaf, and no
    /// pointer to chase when matching.
    One(K, V),
    /// Up to [`ENTRIES_VEC_MAX`]: a linear search beats hashing.
    Few(Vec<(K, V)>),
    /// A filter that many sessions (or shards) share.
    Many(LevelMap<K, V>),
}

/// Where the entries of a filter hang off its last node.
#[derive(Clone, Copy)]
enum Slot {
    Exact,
    Multi,
}

impl<K, V> SubscriptionTrie<K, V> {
    /// An empty trie; allocates nothing.
    pub fn new() -> Self {
        SubscriptionTrie {
            root: Node::default(),
            len: 0,
            filters: 0,
        }
    }

    /// Number of `(filter, key)` entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of distinct filters with at least one entry.
    pub fn filters_len(&self) -> usize {
        self.filters
    }

    /// Calls `f(filter, key, value)` once for every entry whose filter matches `topic`
    /// (section 4.7): `+` matches exactly one level, possibly empty; `#` matches the parent
    /// level and any number of levels below it; a filter that starts with `+` or `#` does not
    /// match a topic that starts with `$` [MQTT-4.7.2-1]. `filter` is the text the entry was
    /// inserted under. The order is unspecified.
    pub fn for_each_match<F>(&self, topic: &str, mut f: F)
    where
        F: FnMut(&str, &K, &V),
    {
        let root = &self.root;
        let mut pending = MatchStack::new(root);
        let (level, rest) = split_level(topic);
        if let Some(child) = root.children.get(level) {
            pending.push(child, rest);
        }
        if !topic.starts_with('$') {
            if let Some(leaf) = &root.multi {
                leaf.visit(&mut f);
            }
            if let Some(plus) = &root.plus {
                pending.push(plus, rest);
            }
        }
        while let Some((mut node, mut rest)) = pending.pop() {
            // Follow one path down, leaving the other branch (if any) for later.
            loop {
                if let Some(leaf) = &node.multi {
                    leaf.visit(&mut f);
                }
                let Some(levels) = rest else {
                    if let Some(leaf) = &node.exact {
                        leaf.visit(&mut f);
                    }
                    break;
                };
                let (level, tail) = split_level(levels);
                node = match (node.children.get(level), node.plus.as_deref()) {
                    (Some(literal), Some(plus)) => {
                        pending.push(plus, tail);
                        literal
                    }
                    (Some(next), None) | (None, Some(next)) => next,
                    (None, None) => break,
                };
                rest = tail;
            }
        }
    }

    /// Calls `f(filter, key, value)` once for every entry, in no particular order (for dumps
    /// and snapshots; allocates a work list).
    pub fn for_each_entry<F>(&self, mut f: F)
    where
        F: FnMut(&str, &K, &V),
    {
        let mut pending = vec![&self.root];
        while let Some(node) = pending.pop() {
            for leaf in [&node.exact, &node.multi].into_iter().flatten() {
                leaf.visit(&mut f);
            }
            pending.extend(node.children.values());
            pending.extend(node.plus.as_deref());
        }
    }

    /// Number of allocated nodes below the root, leaves included, found by walking the
    /// whole trie: 0 exactly when the trie holds nothing. For tests and diagnostics; O(nodes).
    pub fn node_count(&self) -> usize {
        let mut count = 0;
        let mut pending = vec![&self.root];
        while let Some(node) = pending.pop() {
            count += usize::from(node.exact.is_some()) + usize::from(node.multi.is_some());
            count += node.children.len() + usize::from(node.plus.is_some());
            pending.extend(node.children.values());
            pending.extend(node.plus.as_deref());
        }
        count
    }
}

impl<K: Eq + Hash, V> SubscriptionTrie<K, V> {
    /// Adds the entry `(filter, key) → value`. If that pair was present, replaces its value
    /// and returns the old one.
    pub fn insert(&mut self, filter: &str, key: K, value: V) -> Option<V> {
        let (node, slot) = self.root.node_mut_or_create(filter);
        let leaf = match node.slot_mut(slot) {
            Some(leaf) => leaf,
            empty => {
                self.filters += 1;
                empty.insert(Box::new(Leaf {
                    filter: filter.into(),
                    entries: Entries::Few(Vec::new()),
                }))
            }
        };
        let old = leaf.entries.insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes the entry `(filter, key)` and returns its value, then removes every node
    /// that no longer leads to an entry.
    pub fn remove(&mut self, filter: &str, key: &K) -> Option<V> {
        // One walk down removes the entry and notes the deepest node on the path that stays
        // (the root always does); a second walk cuts the path below it, if anything is left
        // to cut. Two walks instead of recursion: the stack does not grow with the levels.
        let mut node = &mut self.root;
        let mut depth = 0;
        let mut keep_depth = 0;
        let mut rest = Some(filter);
        let slot = loop {
            let Some(levels) = rest else {
                break Slot::Exact;
            };
            let (level, tail) = split_level(levels);
            if level == "#" && tail.is_none() {
                break Slot::Multi;
            }
            if node.has_more_than_one_branch() {
                keep_depth = depth;
            }
            node = node.child_mut(level)?;
            depth += 1;
            rest = tail;
        };
        let leaf_slot = node.slot_mut(slot);
        let leaf = leaf_slot.as_deref_mut()?;
        let old = leaf.entries.remove(key)?;
        self.len -= 1;
        if leaf.entries.is_empty() {
            *leaf_slot = None;
            self.filters -= 1;
        }
        if !node.is_empty() {
            keep_depth = depth;
        }
        if keep_depth < depth {
            self.root.cut_below(filter, keep_depth);
        }
        Some(old)
    }

    /// The value of the entry `(filter, key)`.
    pub fn get(&self, filter: &str, key: &K) -> Option<&V> {
        self.root.leaf(filter)?.entries.get(key)
    }

    /// The value of the entry `(filter, key)`, to change in place.
    pub fn get_mut(&mut self, filter: &str, key: &K) -> Option<&mut V> {
        self.root.leaf_mut(filter)?.entries.get_mut(key)
    }
}

impl<K, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for SubscriptionTrie<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTrie")
            .field("len", &self.len)
            .field("filters", &self.filters)
            .finish_non_exhaustive()
    }
}

impl<K, V> Drop for SubscriptionTrie<K, V> {
    /// Takes the trie apart with a work list: the default recursive drop would use stack in
    /// proportion to the deepest filter.
    fn drop(&mut self) {
        mem::take(&mut self.root).drop_iteratively();
    }
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Node {
            children: Children::default(),
            plus: None,
            exact: None,
            multi: None,
        }
    }
}

impl<K, V> Node<K, V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.exact.is_none()
            && self.multi.is_none()
    }

    /// Whether this node would stay if one of its children went: it holds entries, or has
    /// another child.
    fn has_more_than_one_branch(&self) -> bool {
        self.exact.is_some()
            || self.multi.is_some()
            || self.children.len() + usize::from(self.plus.is_some()) > 1
    }

    fn slot_mut(&mut self, slot: Slot) -> &mut Option<Box<Leaf<K, V>>> {
        match slot {
            Slot::Exact => &mut self.exact,
            Slot::Multi => &mut self.multi,
        }
    }

    fn child(&self, level: &str) -> Option<&Node<K, V>> {
        match level {
            "+" => self.plus.as_deref(),
            literal => self.children.get(literal),
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<K, V>> {
        match level {
            "+" => self.plus.as_deref_mut(),
            literal => self.children.get_mut(literal),
        }
    }

    /// The node `filter` ends at and the slot its entries hang from, creating missing nodes.
    fn node_mut_or_create(&mut self, filter: &str) -> (&mut Node<K, V>, Slot) {
        let mut node = self;
        let mut rest = Some(filter);
        while let Some(levels) = rest {
            let (level, tail) = split_level(levels);
            node = match level {
                "#" if tail.is_none() => return (node, Slot::Multi),
                "+" => node.plus.get_or_insert_with(Box::default),
                literal => node.children.get_or_insert_default(literal),
            };
            rest = tail;
        }
        (node, Slot::Exact)
    }

    fn leaf(&self, filter: &str) -> Option<&Leaf<K, V>> {
        let mut node = self;
        let mut rest = Some(filter);
        while let Some(levels) = rest {
            let (level, tail) = split_level(levels);
            if level == "#" && tail.is_none() {
                return node.multi.as_deref();
            }
            node = node.child(level)?;
            rest = tail;
        }
        node.exact.as_deref()
    }

    fn leaf_mut(&mut self, filter: &str) -> Option<&mut Leaf<K, V>> {
        let mut node = self;
        let mut rest = Some(filter);
        while let Some(levels) = rest {
            let (level, tail) = split_level(levels);
            if level == "#" && tail.is_none() {
                return node.multi.as_deref_mut();
            }
            node = node.child_mut(level)?;
            rest = tail;
        }
        node.exact.as_deref_mut()
    }

    /// Walks `depth` levels of `filter` down from `self` and removes the child at the next
    /// level, with everything below it.
    fn cut_below(&mut self, filter: &str, depth: usize) -> Option<()> {
        let mut node = self;
        let mut rest = Some(filter);
        for _ in 0..depth {
            let (level, tail) = split_level(rest?);
            node = node.child_mut(level)?;
            rest = tail;
        }
        let (level, _) = split_level(rest?);
        let cut = match level {
            "+" => node.plus.take().map(|plus| *plus),
            literal => node.children.remove(literal),
        };
        cut?.drop_iteratively();
        Some(())
    }

    /// Drops `self` and its descendants without recursion.
    fn drop_iteratively(self) {
        let mut pending = vec![self];
        while let Some(mut node) = pending.pop() {
            node.children.take_all(&mut pending);
            pending.extend(node.plus.take().map(|plus| *plus));
            // `node` has no children left, so dropping it here is shallow.
        }
    }
}

impl<K, V> Leaf<K, V> {
    #[inline]
    fn visit<F: FnMut(&str, &K, &V)>(&self, f: &mut F) {
        match &self.entries {
            Entries::One(key, value) => f(&self.filter, key, value),
            Entries::Few(entries) => {
                for (key, value) in entries {
                    f(&self.filter, key, value);
                }
            }
            Entries::Many(entries) => {
                for (key, value) in entries {
                    f(&self.filter, key, value);
                }
            }
        }
    }
}

impl<K, V> Entries<K, V> {
    fn is_empty(&self) -> bool {
        match self {
            Entries::One(..) => false,
            Entries::Few(entries) => entries.is_empty(),
            Entries::Many(entries) => entries.is_empty(),
        }
    }
}

impl<K: Eq + Hash, V> Entries<K, V> {
    fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(old) = self.get_mut(&key) {
            return Some(mem::replace(old, value));
        }
        match self {
            Entries::Few(entries) if !entries.is_empty() && entries.len() < ENTRIES_VEC_MAX => {
                entries.push((key, value));
            }
            Entries::Many(entries) => {
                entries.insert(key, value);
            }
            // A new key that needs another representation.
            _ => {
                *self = match mem::replace(self, Entries::Few(Vec::new())) {
                    Entries::One(k, v) => Entries::Few(vec![(k, v), (key, value)]),
                    Entries::Few(entries) if entries.is_empty() => Entries::One(key, value),
                    Entries::Few(entries) => {
                        let mut map: LevelMap<K, V> = entries.into_iter().collect();
                        map.insert(key, value);
                        Entries::Many(map)
                    }
                    Entries::Many(mut map) => {
                        map.insert(key, value);
                        Entries::Many(map)
                    }
                }
            }
        }
        None
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        match self {
            Entries::One(k, _) if k == key => match mem::replace(self, Entries::Few(Vec::new())) {
                Entries::One(_, value) => Some(value),
                // Just matched as `One`.
                _ => None,
            },
            Entries::One(..) => None,
            Entries::Few(entries) => {
                let at = entries.iter().position(|(k, _)| k == key)?;
                let (_, value) = entries.swap_remove(at);
                if entries.len() == 1 {
                    if let Some((k, v)) = entries.pop() {
                        *self = Entries::One(k, v);
                    }
                }
                Some(value)
            }
            Entries::Many(entries) => {
                let value = entries.remove(key)?;
                if entries.len() <= ENTRIES_VEC_AGAIN {
                    *self = Entries::Few(entries.drain().collect());
                } else {
                    shrink_after_remove(entries);
                }
                Some(value)
            }
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        match self {
            Entries::One(k, v) => (k == key).then_some(v),
            Entries::Few(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Entries::Many(entries) => entries.get(key),
        }
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self {
            Entries::One(k, v) => (k == key).then_some(v),
            Entries::Few(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            Entries::Many(entries) => entries.get_mut(key),
        }
    }
}

/// A node still to visit and the topic levels left below it (`None`: all consumed).
type Branch<'a, K, V> = (&'a Node<K, V>, Option<&'a str>);

/// The work list of [`SubscriptionTrie::for_each_match`]: [`MATCH_STACK_INLINE`] branches
/// on the call stack, more on the heap.
struct MatchStack<'a, K, V> {
    inline: [Branch<'a, K, V>; MATCH_STACK_INLINE],
    inline_len: usize,
    /// Only non-empty while `inline` is full, so popping it first keeps the order LIFO.
    spilled: Vec<Branch<'a, K, V>>,
}

impl<'a, K, V> MatchStack<'a, K, V> {
    /// `filler` only initialises the unused slots.
    #[inline]
    fn new(filler: &'a Node<K, V>) -> Self {
        MatchStack {
            inline: [(filler, None); MATCH_STACK_INLINE],
            inline_len: 0,
            spilled: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, node: &'a Node<K, V>, rest: Option<&'a str>) {
        if self.inline_len < MATCH_STACK_INLINE {
            self.inline[self.inline_len] = (node, rest);
            self.inline_len += 1;
        } else {
            self.spilled.push((node, rest));
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<Branch<'a, K, V>> {
        if let Some(branch) = self.spilled.pop() {
            return Some(branch);
        }
        self.inline_len = self.inline_len.checked_sub(1)?;
        Some(self.inline[self.inline_len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::filter_matches;

    /// The matching `(filter, key)` pairs, sorted.
    fn matches<V>(trie: &SubscriptionTrie<u32, V>, topic: &str) -> Vec<(String, u32)> {
        let mut found = Vec::new();
        trie.for_each_match(topic, |filter, key, _| {
            found.push((filter.to_owned(), *key))
        });
        found.sort();
        found
    }

    /// The filters of `filters` that match `topic`, each subscribed once with key 0.
    fn matching_filters(filters: &[&str], topic: &str) -> Vec<String> {
        let mut trie = SubscriptionTrie::new();
        for filter in filters {
            trie.insert(filter, 0u32, ());
        }
        let found: Vec<String> = matches(&trie, topic).into_iter().map(|(f, _)| f).collect();
        let mut expected: Vec<String> = filters
            .iter()
            .filter(|f| filter_matches(f, topic))
            .map(|f| (*f).to_owned())
            .collect();
        expected.sort();
        assert_eq!(found, expected, "topic {topic:?}");
        found
    }

    #[test]
    fn multi_level_wildcard_matches_parent_and_children_mqtt_4_7_1_2() {
        let filters = ["sport/tennis/player1/#"];
        for topic in [
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
        ] {
            assert_eq!(
                matching_filters(&filters, topic),
                ["sport/tennis/player1/#"]
            );
        }
        assert!(matching_filters(&filters, "sport/tennis/player2").is_empty());
        assert!(matching_filters(&filters, "sport/tennis").is_empty());
        assert_eq!(matching_filters(&["sport/#"], "sport"), ["sport/#"]);
        assert_eq!(matching_filters(&["sport/#"], "sport/"), ["sport/#"]);
    }

    #[test]
    fn single_level_wildcard_matches_one_level_mqtt_4_7_1_3() {
        let filters = ["sport/tennis/+", "sport/+", "+/+", "/+", "+", "+/tennis/#"];
        assert_eq!(
            matching_filters(&filters, "sport/tennis/player1"),
            ["+/tennis/#", "sport/tennis/+"]
        );
        assert_eq!(
            matching_filters(&filters, "sport/tennis/player1/ranking"),
            ["+/tennis/#"]
        );
        assert_eq!(matching_filters(&filters, "sport"), ["+"]);
        assert_eq!(matching_filters(&filters, "sport/"), ["+/+", "sport/+"]);
        assert_eq!(matching_filters(&filters, "/finance"), ["+/+", "/+"]);
        assert_eq!(
            matching_filters(&filters, "sport/tennis"),
            ["+/+", "+/tennis/#", "sport/+"]
        );
    }

    #[test]
    fn leading_wildcards_skip_dollar_topics_mqtt_4_7_2_1() {
        let filters = ["#", "+/monitor/Clients", "$SYS/#", "$SYS/monitor/+", "+"];
        assert_eq!(
            matching_filters(&filters, "$SYS/monitor/Clients"),
            ["$SYS/#", "$SYS/monitor/+"]
        );
        assert_eq!(matching_filters(&filters, "$SYS"), ["$SYS/#"]);
        assert_eq!(matching_filters(&filters, "$").len(), 0);
        assert_eq!(
            matching_filters(&filters, "SYS/monitor/Clients"),
            ["#", "+/monitor/Clients"]
        );
        // Only the first level counts: `$` further down is an ordinary character.
        assert_eq!(matching_filters(&["+/+", "#"], "a/$b"), ["#", "+/+"]);
    }

    #[test]
    fn empty_levels_are_levels_mqtt_4_7_3_4() {
        let filters = ["a//b", "a/+/b", "a/#", "+//+", "a//b/#", "/", "+/+", "#"];
        assert_eq!(
            matching_filters(&filters, "a//b"),
            ["#", "+//+", "a/#", "a/+/b", "a//b", "a//b/#"]
        );
        assert_eq!(matching_filters(&filters, "/"), ["#", "+/+", "/"]);
        assert_eq!(matching_filters(&filters, "a/b"), ["#", "+/+", "a/#"]);
        assert_eq!(matching_filters(&filters, "a///b"), ["#", "a/#"]);
    }

    #[test]
    fn matching_is_case_and_byte_exact_mqtt_4_7_3_4() {
        assert!(matching_filters(&["a/b"], "a/B").is_empty());
        assert!(matching_filters(&["a/b"], "a/b ").is_empty());
        assert!(matching_filters(&["a/b"], "a/b/").is_empty());
        assert_eq!(matching_filters(&["ä/b"], "ä/b"), ["ä/b"]);
    }

    #[test]
    fn each_entry_visited_once_with_overlapping_filters() {
        let mut trie = SubscriptionTrie::new();
        for (key, filter) in ["a/b", "a/+", "+/b", "+/+", "#", "a/#", "a/b/#"]
            .into_iter()
            .enumerate()
        {
            trie.insert(filter, 1u32, key);
            trie.insert(filter, 2u32, key);
        }
        assert_eq!(matches(&trie, "a/b").len(), 14);
        assert_eq!(matches(&trie, "a").len(), 4);
    }

    #[test]
    fn insert_replaces_and_remove_returns_the_value() {
        let mut trie = SubscriptionTrie::new();
        assert_eq!(trie.insert("a/+", 7u32, "one"), None);
        assert_eq!(trie.insert("a/+", 7, "two"), Some("one"));
        assert_eq!(trie.insert("a/+", 8, "three"), None);
        assert_eq!((trie.len(), trie.filters_len()), (2, 1));
        assert_eq!(trie.get("a/+", &7), Some(&"two"));
        assert_eq!(trie.get("a/b", &7), None);
        assert_eq!(trie.get("a/#", &7), None);
        if let Some(value) = trie.get_mut("a/+", &8) {
            *value = "four";
        }
        assert_eq!(trie.get("a/+", &8), Some(&"four"));
        assert_eq!(trie.remove("a/+", &9), None);
        assert_eq!(trie.remove("a/b", &7), None);
        assert_eq!(trie.remove("a/+", &7), Some("two"));
        assert_eq!(trie.remove("a/+", &7), None);
        assert_eq!(trie.remove("a/+", &8), Some("four"));
        assert!(trie.is_empty());
        assert_eq!((trie.filters_len(), trie.node_count()), (0, 0));
    }

    #[test]
    fn remove_prunes_only_what_is_empty() {
        let mut trie = SubscriptionTrie::new();
        trie.insert("a/b/c/d", 1u32, ());
        trie.insert("a/b", 1, ());
        trie.insert("a/b/#", 1, ());
        trie.insert("a/+/c", 1, ());
        // a, b, c, d, + and c under it: 6 nodes; leaves: a/b/c/d, a/b, a/b/#, a/+/c.
        assert_eq!(trie.node_count(), 10);
        trie.remove("a/b/c/d", &1);
        assert_eq!(trie.node_count(), 7);
        trie.remove("a/b", &1);
        assert_eq!(trie.node_count(), 6);
        trie.remove("a/b/#", &1);
        assert_eq!(trie.node_count(), 4);
        assert_eq!(matches(&trie, "a/x/c"), [("a/+/c".to_owned(), 1)]);
        trie.remove("a/+/c", &1);
        assert_eq!(trie.node_count(), 0);
        trie.insert("#", 1, ());
        assert_eq!(trie.node_count(), 1);
        trie.remove("#", &1);
        assert_eq!(trie.node_count(), 0);
    }

    #[test]
    fn many_keys_on_one_filter_switch_to_a_map_and_back() {
        let mut trie = SubscriptionTrie::new();
        for key in 0..100u32 {
            assert_eq!(trie.insert("shared/+", key, key), None);
        }
        assert_eq!(trie.insert("shared/+", 50, 500), Some(50));
        assert_eq!(trie.get("shared/+", &50), Some(&500));
        assert_eq!(matches(&trie, "shared/x").len(), 100);
        for key in 0..95u32 {
            assert!(trie.remove("shared/+", &key).is_some());
        }
        assert_eq!(
            matches(&trie, "shared/x"),
            (95..100)
                .map(|k| ("shared/+".to_owned(), k))
                .collect::<Vec<_>>()
        );
        for key in 95..100u32 {
            assert!(trie.remove("shared/+", &key).is_some());
        }
        assert_eq!((trie.len(), trie.node_count()), (0, 0));
    }

    #[test]
    fn invalid_filters_match_nothing_and_do_not_panic() {
        let mut trie = SubscriptionTrie::new();
        for filter in ["a/#/b", "a#", "a/+b", "#/"] {
            trie.insert(filter, 1u32, ());
            assert!(matches(&trie, "a/x/b").is_empty(), "{filter}");
            assert_eq!(trie.get(filter, &1), Some(&()));
            assert_eq!(trie.remove(filter, &1), Some(()));
        }
        assert_eq!(trie.node_count(), 0);
    }

    #[test]
    fn deep_filters_do_not_use_the_stack() {
        // 30,000 levels: recursion over them would overflow the 2 MiB test-thread stack.
        let deep_filter = "+/".repeat(30_000) + "#";
        let deep_topic = "x/".repeat(30_000) + "y";
        let mut trie = SubscriptionTrie::new();
        trie.insert(&deep_filter, 1u32, ());
        trie.insert(&deep_topic, 2, ());
        assert_eq!(matches(&trie, &deep_topic).len(), 2);
        assert_eq!(trie.remove(&deep_filter, &1), Some(()));
        assert_eq!(trie.node_count(), 30_002);
        drop(trie);

        // Many pending branches at once spill from the inline stack to the heap.
        let mut trie = SubscriptionTrie::new();
        let wide_filter = "a/".repeat(40) + "a";
        trie.insert(&wide_filter, 1u32, ());
        trie.insert(&["+"; 40].join("/"), 2, ());
        trie.insert(&["+"; 41].join("/"), 3, ());
        for depth in 0..40 {
            trie.insert(&("a/".repeat(depth) + "+"), 4, ());
        }
        let found = matches(&trie, &wide_filter);
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn for_each_entry_visits_everything() {
        let mut trie = SubscriptionTrie::new();
        for (i, filter) in ["#", "a", "a/+", "a/#", "$SYS/#"].into_iter().enumerate() {
            trie.insert(filter, i as u32, ());
            trie.insert(filter, 99, ());
        }
        let mut all = Vec::new();
        trie.for_each_entry(|filter, key, _| all.push((filter.to_owned(), *key)));
        all.sort();
        assert_eq!(all.len(), 10);
        assert_eq!(all.first(), Some(&("#".to_owned(), 0)));
    }
}

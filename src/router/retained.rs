//! Topic name → retained message, matched against a topic filter: which retained messages a
//! new subscription receives (section 3.3.1.3).

use std::fmt;
use std::mem;

use super::{split_level, Children};

/// One retained value per topic name, answering "which stored topics does this filter
/// match?" (the reverse of [`SubscriptionTrie`](super::SubscriptionTrie)'s query).
///
/// A node per topic level, children keyed by the level's bytes (a short vector while there
/// are few, a hash map beyond); a node whose path is a stored topic holds that topic's
/// value, which carries the topic's text itself ([`Named`]): the index keeps no copy.
///
/// # Invariants
/// - Every node other than the root holds a value or has a descendant that does: removing
///   a topic removes the nodes that no longer lead anywhere, so memory is proportional to
///   the stored topics and their levels.
/// - The root never holds a value (every topic name has at least one level) and `len`
///   counts the nodes that do.
///
/// # Complexity
/// With `L` the levels of the topic or filter: [`insert`](Self::insert),
/// [`get`](Self::get) and [`remove`](Self::remove) are O(L) child lookups (`remove` walks
/// twice when it prunes). [`for_each_matching`](Self::for_each_matching) is O(visited nodes):
/// a literal level costs one lookup, `+` visits every child, `#` the whole subtree. It
/// allocates its work list, which is fine for SUBSCRIBE (the control plane), not for PUBLISH.
pub struct RetainedIndex<V> {
    root: Node<V>,
    len: usize,
}

/// A value that knows the topic it is stored under (a retained message: its topic name).
pub trait Named {
    fn name(&self) -> &str;
}

struct Node<V> {
    children: Children<Node<V>>,
    /// Keep `V` small (a pointer): intermediate levels hold none but pay for the slot.
    retained: Option<V>,
}

/// Work of [`RetainedIndex::for_each_matching`].
enum Visit<'a, V> {
    /// A node and the filter levels left to match below it (`None`: all consumed).
    Filter(&'a Node<V>, Option<&'a str>),
    /// Every value in a node's subtree, the node's own included (under a `#`).
    Subtree(&'a Node<V>),
}

impl<V: Named> RetainedIndex<V> {
    /// An empty index; allocates nothing.
    pub fn new() -> Self {
        RetainedIndex {
            root: Node::default(),
            len: 0,
        }
    }

    /// Number of stored topics.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` under its topic ([`Named::name`]); returns the value it replaces
    /// [MQTT-3.3.1-5].
    pub fn insert(&mut self, value: V) -> Option<V> {
        let mut node = &mut self.root;
        let mut rest = Some(value.name());
        while let Some(levels) = rest {
            let (level, tail) = split_level(levels);
            node = node.children.get_or_insert_default(level);
            rest = tail;
        }
        let replaced = node.retained.replace(value);
        if replaced.is_none() {
            self.len += 1;
        }
        replaced
    }

    /// Removes and returns the value stored for `topic`, then the nodes that no longer lead
    /// to a value.
    pub fn remove(&mut self, topic: &str) -> Option<V> {
        // As in `SubscriptionTrie::remove`: one walk takes the value and notes the deepest
        // node that stays, a second cuts below it. No recursion.
        let mut node = &mut self.root;
        let mut depth = 0;
        let mut keep_depth = 0;
        let mut rest = Some(topic);
        while let Some(levels) = rest {
            let (level, tail) = split_level(levels);
            if node.retained.is_some() || node.children.len() > 1 {
                keep_depth = depth;
            }
            node = node.children.get_mut(level)?;
            depth += 1;
            rest = tail;
        }
        let retained = node.retained.take()?;
        self.len -= 1;
        if !node.children.is_empty() {
            keep_depth = depth;
        }
        if keep_depth < depth {
            self.root.cut_below(topic, keep_depth);
        }
        Some(retained)
    }

    /// The value stored for `topic`.
    pub fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        let mut rest = Some(topic);
        while let Some(levels) = rest {
            let (level, tail) = split_level(levels);
            node = node.children.get(level)?;
            rest = tail;
        }
        node.retained.as_ref()
    }

    /// Calls `f(topic, value)` once for every stored topic that `filter` matches (section
    /// 4.7): `+` matches any one level, `#` the parent level and everything below; a filter
    /// starting with `+` or `#` does not match topics starting with `$` [MQTT-4.7.2-1]. Order
    /// unspecified.
    pub fn for_each_matching<F>(&self, filter: &str, mut f: F)
    where
        F: FnMut(&str, &V),
    {
        let mut pending = Vec::new();
        let (level, tail) = split_level(filter);
        // The first level is where the `$` rule applies, so the root is done here.
        let non_dollar_children = || {
            self.root
                .children
                .iter()
                .filter(|(level, _)| !level.starts_with(b"$"))
                .map(|(_, child)| child)
        };
        match level {
            "#" if tail.is_none() => pending.extend(non_dollar_children().map(Visit::Subtree)),
            "+" => pending.extend(non_dollar_children().map(|child| Visit::Filter(child, tail))),
            literal => pending.extend(
                self.root
                    .children
                    .get(literal)
                    .map(|child| Visit::Filter(child, tail)),
            ),
        }
        while let Some(visit) = pending.pop() {
            match visit {
                Visit::Subtree(node) => {
                    node.visit(&mut f);
                    pending.extend(node.children.values().map(Visit::Subtree));
                }
                Visit::Filter(node, None) => node.visit(&mut f),
                Visit::Filter(node, Some(levels)) => {
                    let (level, tail) = split_level(levels);
                    match level {
                        "#" if tail.is_none() => {
                            pending.push(Visit::Subtree(node));
                        }
                        "+" => pending.extend(
                            node.children
                                .values()
                                .map(|child| Visit::Filter(child, tail)),
                        ),
                        literal => pending.extend(
                            node.children
                                .get(literal)
                                .map(|child| Visit::Filter(child, tail)),
                        ),
                    }
                }
            }
        }
    }

    /// Calls `f(topic, value)` for every stored topic, `$` topics included, in no particular
    /// order (for snapshots and compaction).
    pub fn for_each<F>(&self, mut f: F)
    where
        F: FnMut(&str, &V),
    {
        let mut pending = vec![&self.root];
        while let Some(node) = pending.pop() {
            node.visit(&mut f);
            pending.extend(node.children.values());
        }
    }

    /// Number of nodes below the root, found by walking the whole index: 0 exactly when it
    /// holds nothing. For tests and diagnostics; O(nodes).
    pub fn node_count(&self) -> usize {
        let mut count = 0;
        let mut pending = vec![&self.root];
        while let Some(node) = pending.pop() {
            count += node.children.len();
            pending.extend(node.children.values());
        }
        count
    }
}

impl<V: Named> Default for RetainedIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> fmt::Debug for RetainedIndex<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedIndex")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<V> Drop for RetainedIndex<V> {
    /// Takes the index apart with a work list: the default recursive drop would use stack in
    /// proportion to the deepest topic.
    fn drop(&mut self) {
        mem::take(&mut self.root).drop_iteratively();
    }
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: Children::default(),
            retained: None,
        }
    }
}

impl<V: Named> Node<V> {
    fn visit<F: FnMut(&str, &V)>(&self, f: &mut F) {
        if let Some(value) = &self.retained {
            f(value.name(), value);
        }
    }
}

impl<V> Node<V> {
    /// Walks `depth` levels of `topic` down from `self` and removes the child at the next
    /// level, with everything below it.
    fn cut_below(&mut self, topic: &str, depth: usize) -> Option<()> {
        let mut node = self;
        let mut rest = Some(topic);
        for _ in 0..depth {
            let (level, tail) = split_level(rest?);
            node = node.children.get_mut(level)?;
            rest = tail;
        }
        let (level, _) = split_level(rest?);
        node.children.remove(level)?.drop_iteratively();
        Some(())
    }

    /// Drops `self` and its descendants without recursion.
    fn drop_iteratively(self) {
        let mut pending = vec![self];
        while let Some(mut node) = pending.pop() {
            node.children.take_all(&mut pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::filter_matches;

    const TOPICS: [&str; 14] = [
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player2",
        "sport",
        "sport/",
        "/finance",
        "finance",
        "$SYS/monitor/Clients",
        "$SYS",
        "a//b",
        "a/b",
        "/",
        "a/$b",
        "",
    ];

    /// A test value: its topic and a number.
    #[derive(Debug, PartialEq)]
    struct Value(String, usize);

    impl Named for Value {
        fn name(&self) -> &str {
            &self.0
        }
    }

    fn value(topic: &str, n: usize) -> Value {
        Value(topic.to_owned(), n)
    }

    fn index() -> RetainedIndex<Value> {
        let mut index = RetainedIndex::new();
        for (i, topic) in TOPICS.into_iter().enumerate() {
            assert_eq!(index.insert(value(topic, i)), None);
        }
        index
    }

    /// The topics `filter` matches, checked against the reference matcher.
    fn matching(index: &RetainedIndex<Value>, filter: &str) -> Vec<String> {
        let mut found = Vec::new();
        index.for_each_matching(filter, |topic, value| {
            assert_eq!(TOPICS.get(value.1), Some(&topic));
            found.push(topic.to_owned());
        });
        found.sort();
        let mut expected: Vec<String> = TOPICS
            .iter()
            .filter(|topic| filter_matches(filter, topic))
            .map(|topic| (*topic).to_owned())
            .collect();
        expected.sort();
        assert_eq!(found, expected, "filter {filter:?}");
        found
    }

    #[test]
    fn examples_from_section_4_7() {
        let index = index();
        assert_eq!(
            matching(&index, "sport/tennis/player1/#"),
            ["sport/tennis/player1", "sport/tennis/player1/ranking"]
        );
        assert_eq!(
            matching(&index, "sport/#"),
            [
                "sport",
                "sport/",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player2"
            ]
        );
        assert_eq!(
            matching(&index, "sport/tennis/+"),
            ["sport/tennis/player1", "sport/tennis/player2"]
        );
        assert_eq!(matching(&index, "sport/+"), ["sport/"]);
        assert_eq!(
            matching(&index, "+/+"),
            ["/", "/finance", "a/$b", "a/b", "sport/"]
        );
        assert_eq!(matching(&index, "/+"), ["/", "/finance"]);
        assert_eq!(matching(&index, "+"), ["", "finance", "sport"]);
        assert_eq!(matching(&index, "a//b"), ["a//b"]);
        assert_eq!(matching(&index, "a/+/b"), ["a//b"]);
    }

    #[test]
    fn leading_wildcards_skip_dollar_topics_mqtt_4_7_2_1() {
        let index = index();
        let all = matching(&index, "#");
        assert_eq!(all.len(), TOPICS.len() - 2);
        assert!(all.iter().all(|topic| !topic.starts_with('$')));
        assert!(matching(&index, "+/monitor/Clients").is_empty());
        assert_eq!(matching(&index, "$SYS/#"), ["$SYS", "$SYS/monitor/Clients"]);
        assert_eq!(matching(&index, "$SYS/monitor/+"), ["$SYS/monitor/Clients"]);
        assert_eq!(matching(&index, "a/+"), ["a/$b", "a/b"]);
    }

    #[test]
    fn retained_message_replaced_mqtt_3_3_1_5() {
        let mut index = index();
        assert_eq!(index.insert(value("sport", 100)), Some(value("sport", 3)));
        assert_eq!(index.get("sport"), Some(&value("sport", 100)));
        assert_eq!(index.len(), TOPICS.len());
    }

    #[test]
    fn remove_prunes_and_keeps_what_is_needed() {
        let mut index = index();
        assert_eq!(index.remove("sport/tennis"), None);
        assert_eq!(index.remove("nothing/here"), None);
        assert_eq!(index.remove("sport"), Some(value("sport", 3)));
        assert_eq!(index.get("sport"), None);
        assert_eq!(
            index.get("sport/tennis/player2"),
            Some(&value("sport/tennis/player2", 2))
        );
        let before = index.node_count();
        assert_eq!(
            index.remove("sport/tennis/player1/ranking"),
            Some(value("sport/tennis/player1/ranking", 1))
        );
        assert_eq!(index.node_count(), before - 1);
        for topic in TOPICS {
            index.remove(topic);
        }
        assert!(index.is_empty());
        assert_eq!(index.node_count(), 0);
        index.for_each(|topic, _| panic!("{topic} left"));
    }

    #[test]
    fn for_each_visits_dollar_topics_too() {
        let index = index();
        let mut count = 0;
        index.for_each(|_, _| count += 1);
        assert_eq!(count, TOPICS.len());
    }

    #[test]
    fn deep_topics_do_not_use_the_stack() {
        let deep = "x/".repeat(30_000) + "y";
        let mut index = RetainedIndex::new();
        index.insert(value(&deep, 1));
        index.insert(value("x", 2));
        let mut found = 0;
        index.for_each_matching("#", |_, _| found += 1);
        assert_eq!(found, 2);
        assert_eq!(index.remove(&deep), Some(value(&deep, 1)));
        assert_eq!(index.node_count(), 1);
        index.insert(value(&deep, 1));
        drop(index);
    }
}

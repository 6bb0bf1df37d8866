//! Property tests of the router's indexes (`ringmq::router`) against the reference matcher
//! `ringmq::protocol::filter_matches` and against plain-collection models:
//!
//! - `SubscriptionTrie::for_each_match` visits exactly the entries whose filter matches the
//!   topic, each once, with its current value;
//! - any sequence of inserts and removes gives the same answers (return values, `get`,
//!   `len`, `filters_len`, dumps, matches) as a `HashMap` model, and the trie holds exactly
//!   the nodes its live filters need, so removing everything leaves no node behind;
//! - the same for `RetainedIndex` and `for_each_matching`.
//!
//! Topics and filters are drawn from a small alphabet of levels, so that they collide
//! often: empty levels, `$`-prefixed levels (first or not), `+` and `#`. Set
//! `PROPTEST_CASES` to run every property with that many cases instead. Failures are not
//! persisted to disk: a failing property prints its shrunk input, which belongs in a named
//! example test in `src/router/`.

use std::collections::{BTreeSet, HashMap, HashSet};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use ringmq::protocol::{filter_matches, TopicFilter, TopicName};
use ringmq::router::retained::Named;
use ringmq::router::{RetainedIndex, SubscriptionTrie};

/// A retained value: its topic and a number.
struct Stored(String, u32);

impl Named for Stored {
    fn name(&self) -> &str {
        &self.0
    }
}

/// Levels of topic names (and the literal levels of filters).
const LEVELS: [&str; 6] = ["a", "b", "c", "", "$SYS", "$"];

/// A wider alphabet for shallower topics: more literal children per node than the trie keeps
/// in a vector (8), so that a node's children switch to a map and back, and a level longer
/// than the 22 bytes kept inline.
const WIDE_LEVELS: [&str; 13] = [
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "i",
    "",
    "$SYS",
    "$",
    "a-level-longer-than-22-bytes",
];

/// Keys per filter: few, so that entries of one filter collide and replace each other.
const KEYS: u8 = 4;

/// Keys per filter when testing filters shared by many keys: more than the trie keeps in a
/// vector (16), so that a filter's entries switch to a map and back.
const MANY_KEYS: u8 = 24;

/// `cases` cases (or `PROPTEST_CASES`), nothing written to disk.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid topic name of 1 to 5 levels.
fn topic() -> impl Strategy<Value = String> {
    topic_over(&LEVELS, 5)
}

/// A valid topic name of 1 to 3 levels from [`WIDE_LEVELS`].
fn wide_topic() -> impl Strategy<Value = String> {
    topic_over(&WIDE_LEVELS, 3)
}

fn topic_over(
    alphabet: &'static [&'static str],
    levels_max: usize,
) -> impl Strategy<Value = String> {
    vec(select(alphabet), 1..=levels_max)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("topic names are not empty", |topic| {
            TopicName::try_from(topic.as_str()).is_ok()
        })
}

/// A valid, non-shared topic filter of 1 to 5 levels: literals, `+`, and maybe a final `#`.
fn filter() -> impl Strategy<Value = String> {
    filter_over(&LEVELS, 4)
}

/// A valid, non-shared topic filter of 1 to 3 levels from [`WIDE_LEVELS`], `+` and `#`.
fn wide_filter() -> impl Strategy<Value = String> {
    filter_over(&WIDE_LEVELS, 2)
}

/// `levels_max` levels of literals and `+`, and maybe a final `#`.
fn filter_over(
    alphabet: &'static [&'static str],
    levels_max: usize,
) -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => select(alphabet), 1 => Just("+")];
    (vec(level, 0..=levels_max), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("topic filters are valid", |filter| {
            TopicFilter::try_from(filter.as_str()).is_ok_and(|f| f.shared().is_none())
        })
}

fn key() -> impl Strategy<Value = u8> {
    0..KEYS
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, u8, u32),
    Remove(String, u8),
}

/// An insert or a remove of one of `filters` with a key below `keys`.
fn op(filters: Vec<String>, keys: u8) -> impl Strategy<Value = Op> {
    let insert = (select(filters.clone()), 0..keys, any::<u32>())
        .prop_map(|(filter, key, value)| Op::Insert(filter, key, value));
    let remove = (select(filters), 0..keys).prop_map(|(filter, key)| Op::Remove(filter, key));
    prop_oneof![3 => insert, 2 => remove]
}

/// A pool of filters, and operations over them (so that removes hit live entries often).
fn ops() -> impl Strategy<Value = Vec<Op>> {
    vec(filter(), 1..12).prop_flat_map(|filters| vec(op(filters, KEYS), 0..80))
}

/// As [`ops`], over filters from [`WIDE_LEVELS`], so that nodes have many children.
fn wide_ops() -> impl Strategy<Value = Vec<Op>> {
    vec(wide_filter(), 1..40).prop_flat_map(|filters| vec(op(filters, KEYS), 0..120))
}

/// As [`ops`], over a few filters with many keys each.
fn ops_many_keys() -> impl Strategy<Value = Vec<Op>> {
    vec(filter(), 1..4).prop_flat_map(|filters| vec(op(filters, MANY_KEYS), 0..200))
}

/// A `(filter, key)` pair.
type Subscription = (String, u8);

/// `(filter, key)` pairs to insert, and the same pairs in another order to remove.
fn inserted_then_removed() -> impl Strategy<Value = (Vec<Subscription>, Vec<Subscription>)> {
    vec((filter(), key()), 0..40).prop_flat_map(|entries| {
        let removals = Just(entries.clone()).prop_shuffle();
        (Just(entries), removals)
    })
}

/// What `for_each_match` reported: sorted, duplicates kept so that a second visit shows.
fn trie_matches(trie: &SubscriptionTrie<u8, u32>, topic: &str) -> Vec<(String, u8, u32)> {
    let mut found = Vec::new();
    trie.for_each_match(topic, |filter, key, value| {
        found.push((filter.to_owned(), *key, *value));
    });
    found.sort();
    found
}

/// What the reference matcher says the trie should report.
fn model_matches(model: &HashMap<(String, u8), u32>, topic: &str) -> Vec<(String, u8, u32)> {
    let mut expected: Vec<_> = model
        .iter()
        .filter(|((filter, _), _)| filter_matches(filter, topic))
        .map(|((filter, key), value)| (filter.clone(), *key, *value))
        .collect();
    expected.sort();
    expected
}

/// The nodes a trie needs for these live filters: one per distinct level path (a final `#`
/// is not a node: its entries hang off its parent) and one leaf per filter.
fn trie_nodes_needed<'a>(filters: impl Iterator<Item = &'a str>) -> usize {
    let mut paths = BTreeSet::new();
    let mut leaves = 0;
    for filter in filters {
        leaves += 1;
        let levels: Vec<&str> = filter.split('/').collect();
        let path_len = levels.len() - usize::from(levels.last() == Some(&"#"));
        for end in 1..=path_len {
            paths.insert(levels[..end].to_vec());
        }
    }
    paths.len() + leaves
}

/// The nodes a retained index needs for these topics: one per distinct level path.
fn retained_nodes_needed<'a>(topics: impl Iterator<Item = &'a str>) -> usize {
    let mut paths = BTreeSet::new();
    for topic in topics {
        let levels: Vec<&str> = topic.split('/').collect();
        for end in 1..=levels.len() {
            paths.insert(levels[..end].to_vec());
        }
    }
    paths.len()
}

/// Every observable answer of `trie` agrees with `model`.
fn check_trie(
    trie: &SubscriptionTrie<u8, u32>,
    model: &HashMap<(String, u8), u32>,
    topics: &[String],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(trie.len(), model.len());
    prop_assert_eq!(trie.is_empty(), model.is_empty());
    let live: HashSet<&str> = model.keys().map(|(filter, _)| filter.as_str()).collect();
    prop_assert_eq!(trie.filters_len(), live.len());
    prop_assert_eq!(trie.node_count(), trie_nodes_needed(live.iter().copied()));
    for ((filter, key), value) in model {
        prop_assert_eq!(trie.get(filter, key), Some(value));
    }
    let mut dumped = Vec::new();
    trie.for_each_entry(|filter, key, value| dumped.push((filter.to_owned(), *key, *value)));
    dumped.sort();
    let mut expected: Vec<_> = model
        .iter()
        .map(|((filter, key), value)| (filter.clone(), *key, *value))
        .collect();
    expected.sort();
    prop_assert_eq!(dumped, expected);
    for topic in topics {
        prop_assert_eq!(
            trie_matches(trie, topic),
            model_matches(model, topic),
            "{}",
            topic
        );
    }
    Ok(())
}

/// Applies `ops` to a trie and to a model, checking every answer after every step, then
/// removes what is left and checks that nothing remains.
fn run_trie_ops(ops: Vec<Op>, topics: &[String]) -> Result<(), TestCaseError> {
    let mut trie = SubscriptionTrie::new();
    let mut model: HashMap<(String, u8), u32> = HashMap::new();
    for op in ops {
        match op {
            Op::Insert(filter, key, value) => {
                let old = trie.insert(&filter, key, value);
                prop_assert_eq!(old, model.insert((filter, key), value));
            }
            Op::Remove(filter, key) => {
                let old = trie.remove(&filter, &key);
                prop_assert_eq!(old, model.remove(&(filter, key)));
            }
        }
        check_trie(&trie, &model, topics)?;
    }
    for ((filter, key), value) in model.drain() {
        prop_assert_eq!(trie.remove(&filter, &key), Some(value));
    }
    check_trie(&trie, &model, topics)?;
    prop_assert_eq!(trie.node_count(), 0);
    Ok(())
}

/// Applies retained `ops` (`None`: remove) to an index and to a model, checking every
/// answer after every step and `filters` at the end, then removes everything.
fn run_retained_ops(
    ops: Vec<(String, Option<u32>)>,
    filters: &[String],
) -> Result<(), TestCaseError> {
    let mut index = RetainedIndex::new();
    let mut model: HashMap<String, u32> = HashMap::new();
    for (topic, value) in ops {
        match value {
            Some(value) => {
                let old = index.insert(Stored(topic.clone(), value)).map(|s| s.1);
                prop_assert_eq!(old, model.insert(topic, value));
            }
            None => prop_assert_eq!(index.remove(&topic).map(|s| s.1), model.remove(&topic)),
        }
        prop_assert_eq!(index.len(), model.len());
        prop_assert_eq!(
            index.node_count(),
            retained_nodes_needed(model.keys().map(String::as_str))
        );
        for (topic, value) in &model {
            prop_assert_eq!(index.get(topic).map(|s| s.1), Some(*value));
        }
        let mut dumped = Vec::new();
        index.for_each(|topic, value| dumped.push((topic.to_owned(), value.1)));
        dumped.sort();
        let mut expected: Vec<_> = model.iter().map(|(t, v)| (t.clone(), *v)).collect();
        expected.sort();
        prop_assert_eq!(dumped, expected);
    }
    for filter in filters {
        let mut found = Vec::new();
        index.for_each_matching(filter, |topic, _| found.push(topic.to_owned()));
        found.sort();
        let mut expected: Vec<_> = model
            .keys()
            .filter(|topic| filter_matches(filter, topic))
            .cloned()
            .collect();
        expected.sort();
        prop_assert_eq!(found, expected, "{}", filter);
    }
    let topics: Vec<String> = model.keys().cloned().collect();
    for topic in topics {
        prop_assert!(index.remove(&topic).is_some());
    }
    prop_assert!(index.is_empty());
    prop_assert_eq!(index.node_count(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn trie_matches_exactly_what_the_reference_matches(
        entries in vec((filter(), key(), any::<u32>()), 0..40),
        topics in vec(topic(), 1..20),
    ) {
        let mut trie = SubscriptionTrie::new();
        let mut model = HashMap::new();
        for (filter, key, value) in entries {
            let old = trie.insert(&filter, key, value);
            prop_assert_eq!(old, model.insert((filter, key), value));
        }
        for topic in &topics {
            // Sorted with duplicates kept: equality also proves each entry came once.
            prop_assert_eq!(trie_matches(&trie, topic), model_matches(&model, topic), "{}", topic);
        }
    }

    #[test]
    fn trie_insert_remove_sequences_agree_with_a_model(
        ops in ops(),
        topics in vec(topic(), 1..10),
    ) {
        run_trie_ops(ops, &topics)?;
    }

    #[test]
    fn trie_nodes_with_many_children_agree_with_a_model(
        ops in wide_ops(),
        topics in vec(wide_topic(), 1..10),
    ) {
        run_trie_ops(ops, &topics)?;
    }

    #[test]
    fn trie_filters_with_many_keys_agree_with_a_model(
        ops in ops_many_keys(),
        topics in vec(topic(), 1..10),
    ) {
        run_trie_ops(ops, &topics)?;
    }

    #[test]
    fn trie_removing_everything_leaves_no_node(
        (entries, removals) in inserted_then_removed(),
    ) {
        let mut trie = SubscriptionTrie::new();
        for (filter, key) in &entries {
            trie.insert(filter, *key, 0u32);
        }
        for (filter, key) in &removals {
            trie.remove(filter, key);
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.filters_len(), 0);
        prop_assert_eq!(trie.node_count(), 0);
    }

    #[test]
    fn interest_table_counts_agree_with_a_model(
        ops in vec((filter(), 0u16..8, any::<bool>()), 0..100),
        topics in vec(topic(), 1..10),
    ) {
        // The interest table's use: per (filter, shard) a subscriber count, +1 on subscribe,
        // -1 on unsubscribe, the entry gone at 0.
        let mut table: SubscriptionTrie<u16, u32> = SubscriptionTrie::new();
        let mut model: HashMap<(String, u16), u32> = HashMap::new();
        for (filter, shard, subscribe) in ops {
            if subscribe {
                match table.get_mut(&filter, &shard) {
                    Some(count) => *count += 1,
                    None => {
                        table.insert(&filter, shard, 1);
                    }
                }
                *model.entry((filter, shard)).or_default() += 1;
            } else if let Some(count) = table.get_mut(&filter, &shard) {
                *count -= 1;
                if *count == 0 {
                    table.remove(&filter, &shard);
                }
                let modelled = model.entry((filter.clone(), shard)).or_default();
                *modelled -= 1;
                if *modelled == 0 {
                    model.remove(&(filter, shard));
                }
            }
        }
        for topic in &topics {
            let mut shards = BTreeSet::new();
            let mut subscribers = 0;
            table.for_each_match(topic, |_, shard, count| {
                shards.insert(*shard);
                subscribers += count;
            });
            let expected: Vec<_> = model
                .iter()
                .filter(|((filter, _), _)| filter_matches(filter, topic))
                .collect();
            prop_assert_eq!(
                shards,
                expected.iter().map(|((_, shard), _)| *shard).collect::<BTreeSet<_>>()
            );
            prop_assert_eq!(subscribers, expected.iter().map(|(_, count)| **count).sum::<u32>());
        }
    }

    #[test]
    fn retained_matches_exactly_what_the_reference_matches(
        stored in vec((topic(), any::<u32>()), 0..40),
        filters in vec(filter(), 1..20),
    ) {
        let mut index = RetainedIndex::new();
        let mut model = HashMap::new();
        for (topic, value) in stored {
            let old = index.insert(Stored(topic.clone(), value)).map(|s| s.1);
            prop_assert_eq!(old, model.insert(topic, value));
        }
        prop_assert_eq!(index.len(), model.len());
        for filter in &filters {
            let mut found = Vec::new();
            index.for_each_matching(filter, |topic, value| found.push((topic.to_owned(), value.1)));
            found.sort();
            let mut expected: Vec<_> = model
                .iter()
                .filter(|(topic, _)| filter_matches(filter, topic))
                .map(|(topic, value)| (topic.clone(), *value))
                .collect();
            expected.sort();
            prop_assert_eq!(found, expected, "{}", filter);
        }
    }

    #[test]
    fn retained_insert_remove_sequences_agree_with_a_model(
        ops in vec((topic(), prop::option::of(any::<u32>())), 0..80),
        filters in vec(filter(), 1..10),
    ) {
        run_retained_ops(ops, &filters)?;
    }

    #[test]
    fn retained_nodes_with_many_children_agree_with_a_model(
        ops in vec((wide_topic(), prop::option::of(any::<u32>())), 0..150),
        filters in vec(wide_filter(), 1..10),
    ) {
        run_retained_ops(ops, &filters)?;
    }
}

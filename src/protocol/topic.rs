//! Validated strings: UTF-8 Encoded Strings, Topic Names and Topic Filters (sections 1.5.4, 4.7, 4.8).
//!
//! Each type is a newtype over `Bytes` whose constructor checks its rules once, so code that
//! holds one never re-checks it. All three are zero-copy slices of a packet buffer.

use std::fmt;

use bytes::Bytes;

/// Why a string, topic name or topic filter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StringError {
    /// Not well-formed UTF-8, or encodes a surrogate [MQTT-1.5.4-1].
    #[error("string is not well-formed UTF-8")]
    InvalidUtf8,
    /// Contains U+0000 [MQTT-1.5.4-2].
    #[error("string contains the null character U+0000")]
    NullCharacter,
    /// Longer than the 65,535 bytes a two-byte length can say [MQTT-4.7.3-3].
    #[error("string is longer than 65535 bytes")]
    TooLong,
    /// Topic names and filters are at least one character long [MQTT-4.7.3-1].
    #[error("topic is empty")]
    EmptyTopic,
    /// `+` or `#` in a topic name [MQTT-4.7.0-1].
    #[error("topic name contains a wildcard character")]
    WildcardInTopicName,
    /// `#` not alone in the last level [MQTT-4.7.1-1].
    #[error("'#' must be the last character and occupy a whole level")]
    MisplacedMultiLevelWildcard,
    /// `+` not alone in its level [MQTT-4.7.1-2].
    #[error("'+' must occupy a whole level")]
    MisplacedSingleLevelWildcard,
    /// `$share/` without a share name, with a wildcard in it, or without a filter after it
    /// [MQTT-4.8.2-1, MQTT-4.8.2-2].
    #[error("shared subscription must be $share/<name>/<filter> with a name free of '+' and '#'")]
    InvalidSharedSubscription,
}

/// A UTF-8 Encoded String: well-formed UTF-8 without U+0000, at most 65,535 bytes.
///
/// A BOM (EF BB BF) is kept as it is [MQTT-1.5.4-3].
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MqttString(Bytes);

impl MqttString {
    /// The empty string.
    pub const EMPTY: MqttString = MqttString(Bytes::new());

    /// Checks `raw` once; the result is a view of the same bytes.
    pub fn from_bytes(raw: Bytes) -> Result<Self, StringError> {
        if raw.len() > usize::from(u16::MAX) {
            return Err(StringError::TooLong);
        }
        if std::str::from_utf8(&raw).is_err() {
            return Err(StringError::InvalidUtf8);
        }
        if raw.contains(&0) {
            return Err(StringError::NullCharacter);
        }
        Ok(MqttString(raw))
    }

    /// Copies a `&'static str` (for constants and tests).
    pub fn from_static(s: &'static str) -> Result<Self, StringError> {
        Self::from_bytes(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text. Never fails: the constructor checked the bytes are UTF-8.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying bytes (a cheap reference-counted clone).
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }

    /// A copy in its own allocation: a string decoded from a packet is a view of the
    /// connection's read buffer, and keeping the view keeps the whole buffer.
    pub fn detached(&self) -> Self {
        MqttString(Bytes::copy_from_slice(&self.0))
    }
}

impl TryFrom<&str> for MqttString {
    type Error = StringError;
    fn try_from(s: &str) -> Result<Self, StringError> {
        Self::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<String> for MqttString {
    type Error = StringError;
    fn try_from(s: String) -> Result<Self, StringError> {
        Self::from_bytes(Bytes::from(s))
    }
}

impl fmt::Debug for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Topic Name: what a PUBLISH is addressed to. No wildcards [MQTT-3.3.2-2].
///
/// # Invariants
/// Non-empty, except [`TopicName::EMPTY`], which a v5 PUBLISH carries when it names its
/// topic by Topic Alias only; the receiver replaces it before routing.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(MqttString);

impl TopicName {
    /// The zero-length topic of a PUBLISH that uses a Topic Alias instead.
    pub const EMPTY: TopicName = TopicName(MqttString::EMPTY);

    pub fn new(s: MqttString) -> Result<Self, StringError> {
        if s.is_empty() {
            return Err(StringError::EmptyTopic);
        }
        if s.as_bytes().iter().any(|&b| b == b'+' || b == b'#') {
            return Err(StringError::WildcardInTopicName);
        }
        Ok(TopicName(s))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn as_mqtt_str(&self) -> &MqttString {
        &self.0
    }

    /// A copy in its own allocation (see [`MqttString::detached`]).
    pub fn detached(&self) -> Self {
        TopicName(self.0.detached())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Topic levels, split on `/`.
    pub fn levels(&self) -> impl Iterator<Item = &str> {
        self.as_str().split('/')
    }
}

impl TryFrom<&str> for TopicName {
    type Error = StringError;
    fn try_from(s: &str) -> Result<Self, StringError> {
        TopicName::new(MqttString::try_from(s)?)
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Topic Filter: what a SUBSCRIBE or UNSUBSCRIBE names, possibly with wildcards, possibly
/// a shared subscription `$share/{ShareName}/{filter}`.
///
/// # Invariants
/// Non-empty; `#` only as the whole last level; `+` only as a whole level; a `$share/`
/// prefix is followed by a non-empty share name free of `+` and `#`, a `/`, and a valid
/// non-empty filter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(MqttString);

const SHARE_PREFIX: &str = "$share/";

impl TopicFilter {
    pub fn new(s: MqttString) -> Result<Self, StringError> {
        let text = s.as_str();
        match text.strip_prefix(SHARE_PREFIX) {
            Some(rest) => {
                let (name, filter) = rest
                    .split_once('/')
                    .ok_or(StringError::InvalidSharedSubscription)?;
                if name.is_empty() || name.contains(['+', '#']) || filter.is_empty() {
                    return Err(StringError::InvalidSharedSubscription);
                }
                check_filter(filter)?;
            }
            None => check_filter(text)?,
        }
        Ok(TopicFilter(s))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_mqtt_str(&self) -> &MqttString {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Filters are never empty; provided for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(share name, filter)` for `$share/{name}/{filter}`.
    pub fn shared(&self) -> Option<(&str, &str)> {
        self.as_str().strip_prefix(SHARE_PREFIX)?.split_once('/')
    }

    /// The filter that messages are matched against: the part after the share name for a
    /// shared subscription, the whole filter otherwise.
    pub fn matching_filter(&self) -> &str {
        self.shared().map_or(self.as_str(), |(_, f)| f)
    }

    pub fn has_wildcards(&self) -> bool {
        self.matching_filter().contains(['+', '#'])
    }

    /// Whether `topic` matches this filter (section 4.7), including the rule that a filter
    /// starting with a wildcard does not match a topic starting with `$` [MQTT-4.7.2-1].
    /// Byte-for-byte, no normalisation [MQTT-4.7.3-4]. The router's trie does the same job
    /// at scale; this is the reference it is tested against.
    pub fn matches(&self, topic: &TopicName) -> bool {
        filter_matches(self.matching_filter(), topic.as_str())
    }
}

/// Matches a (non-shared) filter against a topic name.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for f in filter.split('/') {
        match f {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic_levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

fn check_filter(filter: &str) -> Result<(), StringError> {
    if filter.is_empty() {
        return Err(StringError::EmptyTopic);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(StringError::MisplacedMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(StringError::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

impl TryFrom<&str> for TopicFilter {
    type Error = StringError;
    fn try_from(s: &str) -> Result<Self, StringError> {
        TopicFilter::new(MqttString::try_from(s)?)
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(s: &str) -> Result<TopicFilter, StringError> {
        TopicFilter::try_from(s)
    }

    #[test]
    fn string_rejects_surrogate_mqtt_1_5_4_1() {
        // U+D800 encoded as if it were a character: ED A0 80.
        let raw = Bytes::from_static(&[b'a', 0xED, 0xA0, 0x80]);
        assert_eq!(MqttString::from_bytes(raw), Err(StringError::InvalidUtf8));
    }

    #[test]
    fn string_rejects_null_mqtt_1_5_4_2() {
        let raw = Bytes::from_static(b"a\0b");
        assert_eq!(MqttString::from_bytes(raw), Err(StringError::NullCharacter));
    }

    #[test]
    fn string_keeps_bom_mqtt_1_5_4_3() {
        let raw = Bytes::from_static(&[0xEF, 0xBB, 0xBF, b'x']);
        let s = MqttString::from_bytes(raw.clone()).unwrap();
        assert_eq!(s.as_bytes(), &raw[..]);
    }

    #[test]
    fn topic_name_rules_mqtt_4_7_0_1_and_4_7_3_1() {
        assert!(TopicName::try_from("a/b/c").is_ok());
        assert!(TopicName::try_from("/").is_ok());
        assert_eq!(TopicName::try_from(""), Err(StringError::EmptyTopic));
        assert_eq!(
            TopicName::try_from("a/+"),
            Err(StringError::WildcardInTopicName)
        );
        assert_eq!(
            TopicName::try_from("a/#"),
            Err(StringError::WildcardInTopicName)
        );
    }

    #[test]
    fn filter_wildcard_placement_mqtt_4_7_1_1_and_4_7_1_2() {
        for ok in [
            "#",
            "+",
            "a/#",
            "+/+",
            "/+",
            "a/+/b",
            "sport/tennis/#",
            "$SYS/#",
            "a//b",
        ] {
            assert!(filter(ok).is_ok(), "{ok}");
        }
        assert_eq!(filter("a#"), Err(StringError::MisplacedMultiLevelWildcard));
        assert_eq!(
            filter("a/#/b"),
            Err(StringError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(
            filter("a/b#"),
            Err(StringError::MisplacedMultiLevelWildcard)
        );
        assert_eq!(filter("a+"), Err(StringError::MisplacedSingleLevelWildcard));
        assert_eq!(
            filter("a/+b"),
            Err(StringError::MisplacedSingleLevelWildcard)
        );
        assert_eq!(filter(""), Err(StringError::EmptyTopic));
    }

    #[test]
    fn shared_subscription_syntax_mqtt_4_8_2_1_and_4_8_2_2() {
        let f = filter("$share/g1/a/+/c").unwrap();
        assert_eq!(f.shared(), Some(("g1", "a/+/c")));
        assert_eq!(f.matching_filter(), "a/+/c");
        for bad in [
            "$share/",
            "$share//a",
            "$share/g",
            "$share/g/",
            "$share/g+/a",
            "$share/#/a",
        ] {
            assert_eq!(
                filter(bad),
                Err(StringError::InvalidSharedSubscription),
                "{bad}"
            );
        }
        assert_eq!(
            filter("$share/g/a#"),
            Err(StringError::MisplacedMultiLevelWildcard)
        );
    }

    #[test]
    fn matching_examples_from_section_4_7() {
        let m = |f: &str, t: &str| filter_matches(f, t);
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
        assert!(m("sport/#", "sport"));
        assert!(m("#", "a/b/c"));
        assert!(m("sport/tennis/+", "sport/tennis/player1"));
        assert!(!m("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!m("sport/+", "sport"));
        assert!(m("sport/+", "sport/"));
        assert!(m("+/+", "/finance"));
        assert!(m("/+", "/finance"));
        assert!(!m("+", "/finance"));
        assert!(!m("a/b", "a/B"));
    }

    #[test]
    fn leading_wildcard_skips_dollar_topics_mqtt_4_7_2_1() {
        assert!(!filter_matches("#", "$SYS/broker/uptime"));
        assert!(!filter_matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(filter_matches("$SYS/#", "$SYS/monitor/Clients"));
        assert!(filter_matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
    }
}

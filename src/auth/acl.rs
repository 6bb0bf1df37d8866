//! The ACL file, in Mosquitto's `acl_file` syntax and with its meaning, and the rules one
//! client gets from it. Pure: parsing and matching.
//!
//! # Syntax
//!
//! One statement per line; a line whose first non-blank character is `#` is a comment.
//!
//! - `topic [read|write|readwrite|deny] FILTER`: without an access word, `readwrite`.
//!   The filter is the rest of the line (it may contain spaces when the access is given).
//! - `user NAME`: the `topic` lines after it, until the next `user`, are that user's (the
//!   User Name of the CONNECT, or the user SCRAM or a client certificate proved). A name
//!   may have several sections; they add up.
//! - `pattern [read|write|readwrite|deny] FILTER`: applies to every client, anonymous or
//!   not, wherever it stands in the file; `%c` is replaced by the client id and `%u` by the
//!   user name. A pattern with `%u` does not apply to anonymous clients, and a pattern does
//!   not apply to a client whose substituted id or name contains `+`, `#` or `/` (which
//!   would widen the filter, or reach into another client's levels).
//!
//! `topic` lines before the first `user` line are for anonymous clients (no user name).
//!
//! # Meaning
//!
//! A client's rules are its section (its user's, or the anonymous one) and the patterns.
//! Access to a topic: denied if any `deny` rule matches it; else granted if a rule with
//! that access matches it; else denied. Filters match topics as subscriptions do, so `#`
//! does not match `$SYS/...` topics: only a rule naming `$SYS` grants them.
//!
//! Mosquitto grants every SUBSCRIBE and checks only each message. ringmq also answers the
//! SUBSCRIBE: a filter is refused when a `deny` rule covers every topic it can match, or
//! when no `read` rule can match any topic it matches; a granted wildcard subscription
//! still gets only the messages the client may read.

use std::collections::HashMap;

use super::passwd::LineError;

/// Access bit: may receive messages on the topic (and subscribe to it).
pub const READ: u8 = 1;
/// Access bit: may publish to the topic.
pub const WRITE: u8 = 2;

/// One `topic` or `pattern` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// `READ | WRITE` bits; 0 for `deny`.
    access: u8,
    filter: String,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl Acl {
    /// Parses the text of an ACL file; the first bad line is the error.
    pub fn parse(text: &str) -> Result<Acl, LineError> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let err = |what: String| LineError { line: n + 1, what };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = match line.split_once([' ', '\t']) {
                Some((k, r)) => (k, r.trim()),
                None => (line, ""),
            };
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(err("`user` needs a user name".into()));
                    }
                    acl.users.entry(rest.to_owned()).or_default();
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(keyword, rest).map_err(err)?;
                    if keyword == "pattern" {
                        acl.patterns.push(rule);
                    } else if let Some(u) = &user {
                        acl.users.entry(u.clone()).or_default().push(rule);
                    } else {
                        acl.anonymous.push(rule);
                    }
                }
                other => {
                    return Err(err(format!(
                        "unknown statement {other:?}: expected `topic`, `user` or `pattern`"
                    )))
                }
            }
        }
        Ok(acl)
    }

    /// Number of `topic` and `pattern` rules.
    pub fn rule_count(&self) -> usize {
        self.anonymous.len()
            + self.patterns.len()
            + self.users.values().map(Vec::len).sum::<usize>()
    }

    /// The rules of a client: its user's section (or the anonymous one) and the patterns,
    /// substituted.
    pub fn rules_for(&self, user: Option<&str>, client_id: &str) -> ClientRules {
        let own = match user {
            Some(u) => self.users.get(u).map_or(&[][..], Vec::as_slice),
            None => &self.anonymous,
        };
        let mut rules = ClientRules::default();
        for r in own {
            rules.add(r.access, r.filter.clone());
        }
        let safe = |s: &str| !s.contains(['+', '#', '/']);
        for p in &self.patterns {
            let needs_user = p.filter.contains("%u");
            let needs_id = p.filter.contains("%c");
            let filter = match user {
                Some(u) if needs_user && !safe(u) => continue,
                None if needs_user => continue,
                Some(u) => p.filter.replace("%u", u),
                None => p.filter.clone(),
            };
            if needs_id && !safe(client_id) {
                continue;
            }
            rules.add(p.access, filter.replace("%c", client_id));
        }
        rules
    }
}

/// `[read|write|readwrite|deny] FILTER`, or just `FILTER` (readwrite).
fn parse_rule(keyword: &str, rest: &str) -> Result<Rule, String> {
    if rest.is_empty() {
        return Err(format!("`{keyword}` needs a topic filter"));
    }
    let (first, after) = match rest.split_once([' ', '\t']) {
        Some((f, a)) => (f, a.trim()),
        None => (rest, ""),
    };
    let access = match first {
        "read" => Some(READ),
        "write" => Some(WRITE),
        "readwrite" => Some(READ | WRITE),
        "deny" => Some(0),
        _ => None,
    };
    let (access, filter) = match (access, after.is_empty()) {
        (Some(a), false) => (a, after),
        // One word: the filter, read and write ([`topic foo`]); an access word alone is
        // a filter too, as in Mosquitto.
        (_, true) => (READ | WRITE, rest),
        (None, false) => {
            return Err(format!(
                "{first:?} is not an access: expected read, write, readwrite or deny before \
                 the filter"
            ))
        }
    };
    check_filter(filter)?;
    Ok(Rule {
        access,
        filter: filter.to_owned(),
    })
}

/// A rule's filter follows the syntax of a subscription's (section 4.7).
fn check_filter(filter: &str) -> Result<(), String> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(format!(
                "topic filter {filter:?}: `#` must be a whole level, and the last"
            ));
        }
        if level.contains('+') && level != "+" {
            return Err(format!(
                "topic filter {filter:?}: `+` must be a whole level"
            ));
        }
    }
    Ok(())
}

/// One client's rules, substituted: what its access checks run against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRules {
    deny: Vec<Box<str>>,
    read: Vec<Box<str>>,
    write: Vec<Box<str>>,
}

impl ClientRules {
    fn add(&mut self, access: u8, filter: String) {
        let filter: Box<str> = filter.into();
        if access == 0 {
            self.deny.push(filter);
            return;
        }
        if access & READ != 0 {
            self.read.push(filter.clone());
        }
        if access & WRITE != 0 {
            self.write.push(filter);
        }
    }

    /// Whether the client has `access` (`READ` or `WRITE`) to `topic`: no `deny` rule
    /// matches it, and a rule with that access does.
    pub fn allows(&self, topic: &str, access: u8) -> bool {
        if self.deny.iter().any(|d| matches(d, topic)) {
            return false;
        }
        let grants = if access == WRITE {
            &self.write
        } else {
            &self.read
        };
        grants.iter().any(|g| matches(g, topic))
    }

    /// Whether a subscription to `filter` (the filter messages are matched against, without
    /// a `$share/` prefix) is granted: no `deny` rule covers all it can match, and some
    /// `read` rule can match a topic it matches.
    pub fn allows_subscription(&self, filter: &str) -> bool {
        if self.deny.iter().any(|d| covers(d, filter)) {
            return false;
        }
        self.read.iter().any(|r| overlaps(r, filter))
    }
}

/// `filter` matches `topic` (section 4.7, wildcards never matching a leading `$`).
fn matches(filter: &str, topic: &str) -> bool {
    crate::protocol::filter_matches(filter, topic)
}

/// Whether some topic matches both filters.
pub fn overlaps(a: &str, b: &str) -> bool {
    let wild_first = |f: &str| f.starts_with(['+', '#']);
    if (a.starts_with('$') && wild_first(b)) || (b.starts_with('$') && wild_first(a)) {
        return false;
    }
    let (mut x, mut y) = (a.split('/'), b.split('/'));
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) | (None, None) => return true,
            (Some(p), Some(q)) => {
                if p != "+" && q != "+" && p != q {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Whether every topic that `filter` matches is matched by `rule`.
pub fn covers(rule: &str, filter: &str) -> bool {
    if rule.starts_with(['+', '#']) && filter.starts_with('$') {
        return false;
    }
    let (mut x, mut y) = (rule.split('/'), filter.split('/'));
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (None, None) => return true,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(p), Some(q)) => {
                if q == "+" || p != q {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(text: &str) -> Acl {
        Acl::parse(text).unwrap()
    }

    #[test]
    fn access_words_and_the_default() {
        let a = acl(
            "topic read r/#\ntopic write w/#\ntopic readwrite rw/#\ntopic both/#\n\
                     topic deny rw/secret\n",
        );
        let r = a.rules_for(None, "c");
        assert!(r.allows("r/x", READ) && !r.allows("r/x", WRITE));
        assert!(r.allows("w/x", WRITE) && !r.allows("w/x", READ));
        assert!(r.allows("rw/x", READ) && r.allows("rw/x", WRITE));
        assert!(r.allows("both/x", READ) && r.allows("both/x", WRITE));
        assert!(!r.allows("rw/secret", READ) && !r.allows("rw/secret", WRITE));
        assert!(!r.allows("elsewhere", READ));
    }

    #[test]
    fn deny_wins_whatever_its_place() {
        let a = acl("topic deny a/b\ntopic read a/#\nuser u\ntopic read a/#\npattern deny a/%u\n");
        assert!(!a.rules_for(None, "c").allows("a/b", READ));
        assert!(a.rules_for(None, "c").allows("a/c", READ));
        let u = a.rules_for(Some("u"), "c");
        assert!(
            !u.allows("a/u", READ),
            "a pattern's deny beats the section's grant"
        );
        assert!(
            u.allows("a/b", READ),
            "the anonymous deny is not the user's"
        );
    }

    #[test]
    fn sections_belong_to_their_user_only() {
        let a = acl(
            "topic read anon/#\nuser alice\ntopic read alice/#\nuser bob\ntopic bob/#\n\
                     user alice\ntopic write more/#\n",
        );
        let anon = a.rules_for(None, "c");
        assert!(anon.allows("anon/x", READ) && !anon.allows("alice/x", READ));
        let alice = a.rules_for(Some("alice"), "c");
        assert!(alice.allows("alice/x", READ) && alice.allows("more/x", WRITE));
        assert!(!alice.allows("anon/x", READ) && !alice.allows("bob/x", READ));
        let carol = a.rules_for(Some("carol"), "c");
        assert!(
            !carol.allows("anon/x", READ),
            "a named user without a section has none"
        );
    }

    #[test]
    fn patterns_substitute_client_id_and_user_name() {
        let a = acl("user alice\npattern write dev/%c/out\npattern read home/%u/#\n");
        let r = a.rules_for(Some("alice"), "sensor1");
        assert!(r.allows("dev/sensor1/out", WRITE));
        assert!(!r.allows("dev/sensor2/out", WRITE));
        assert!(r.allows("home/alice/x", READ) && !r.allows("home/bob/x", READ));
        let anon = a.rules_for(None, "sensor1");
        assert!(
            anon.allows("dev/sensor1/out", WRITE),
            "patterns apply to anonymous too"
        );
        assert!(!anon.allows("home/%u/x", READ), "but not those naming %u");
        // Wildcards or levels in the id or name do not widen a pattern.
        assert!(!a.rules_for(Some("alice"), "#").allows("dev/x/out", WRITE));
        assert!(!a.rules_for(Some("a/b"), "c").allows("home/a/b/x", READ));
        assert!(!a.rules_for(Some("+"), "c").allows("home/x/y", READ));
    }

    #[test]
    fn dollar_topics_need_a_rule_of_their_own() {
        let a = acl("topic read #\ntopic read $SYS/broker/#\n");
        let r = a.rules_for(None, "c");
        assert!(r.allows("a/b", READ));
        assert!(!r.allows("$SYS/other", READ));
        assert!(r.allows("$SYS/broker/uptime", READ));
        assert!(r.allows_subscription("$SYS/#"), "overlaps $SYS/broker/#");
        let only_hash = acl("topic read #\n").rules_for(None, "c");
        assert!(!only_hash.allows_subscription("$SYS/#"));
        assert!(!only_hash.allows_subscription("$SYS/broker/uptime"));
        assert!(only_hash.allows_subscription("#"));
    }

    #[test]
    fn subscriptions_are_granted_when_some_topic_is_readable() {
        let r =
            acl("topic read a/#\ntopic deny a/secret/#\ntopic write w/x\n").rules_for(None, "c");
        assert!(r.allows_subscription("#"));
        assert!(r.allows_subscription("+/b"));
        assert!(r.allows_subscription("a"));
        assert!(!r.allows_subscription("a/secret/+/x"));
        assert!(!r.allows_subscription("a/secret/#"));
        assert!(r.allows_subscription("a/+/x"), "a/other/x is readable");
        assert!(!r.allows_subscription("w/x"), "write only");
        assert!(!r.allows_subscription("b/#"));
    }

    #[test]
    fn overlap_and_cover() {
        assert!(overlaps("a/#", "a"));
        assert!(overlaps("+/b", "a/+"));
        assert!(!overlaps("a/b", "a/c"));
        assert!(!overlaps("a/b", "a/b/c"));
        assert!(overlaps("#", "x/y/z"));
        assert!(!overlaps("#", "$SYS/x"));
        assert!(!overlaps("+/x", "$SYS/x"));
        assert!(overlaps("$SYS/#", "$SYS/x"));
        assert!(covers("a/#", "a"));
        assert!(covers("a/#", "a/+/c"));
        assert!(covers("+/b", "x/b"));
        assert!(!covers("+/b", "#"));
        assert!(!covers("a/b", "a/+"));
        assert!(!covers("#", "$SYS/x"));
        assert!(covers("#", "+/x"));
        assert!(!covers("a/+", "a/b/c"));
        assert!(!covers("a/b", "a"));
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let cases = [
            ("topic\n", 1, "needs a topic filter"),
            ("# c\nuser\n", 2, "needs a user name"),
            ("topic sometimes a/b\n", 1, "is not an access"),
            ("\n\nsubscribe a\n", 3, "unknown statement"),
            ("topic read a/#/b\n", 1, "`#` must be a whole level"),
            ("pattern read a+/b\n", 1, "`+` must be a whole level"),
        ];
        for (text, line, what) in cases {
            let err = Acl::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text}");
            assert!(err.what.contains(what), "{text}: {err}");
        }
    }

    #[test]
    fn filters_with_spaces_and_comments_after_blanks() {
        let a = acl("  # indented comment\ntopic read a b/c\nuser x y\ntopic write q\n");
        assert!(a.rules_for(None, "c").allows("a b/c", READ));
        assert!(a.rules_for(Some("x y"), "c").allows("q", WRITE));
        assert_eq!(a.rule_count(), 2);
    }
}

//! Shared subscriptions (`$share/{group}/{filter}`, MQTT 5.0 section 4.8.2) across shards.
//!
//! A share group's members may live on any shard (each on its client id's home shard).
//! Every shard holds a replica of every group's member list ([`ShareTable`]), kept up to
//! date by control messages from the members' home shards (join, leave, online/offline),
//! in the same way as the interest table. A message is therefore given to one member by
//! the shard it is published on, with no extra hop: that shard picks the member
//! ([`ShareTable::picks`]) and sends the message to the member's shard with a [`Pick`]
//! that names the session. Each message matching a group goes to exactly one member.
//!
//! Members that are online are preferred; a message goes to an offline member (whose
//! session queues it) only when every member is offline. When a member's connection ends,
//! the QoS 1/2 messages it had not acknowledged, and those queued for it in memory, are
//! given to another member (see `Shard::release_shared`).

use std::cell::Cell;
use std::sync::Arc;

use super::mesh::{stable_hash, ShardId};
use super::SessionKey;
use crate::config::ShareStrategy;
use crate::protocol::{QoS, SubscriptionId};
use crate::router::trie::SubscriptionTrie;

/// One member of a share group, as every shard knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub shard: ShardId,
    pub key: SessionKey,
    /// The subscription's granted QoS.
    pub qos: QoS,
    pub retain_as_published: bool,
    pub id: Option<SubscriptionId>,
    /// Whether the member's session has a connection.
    pub online: bool,
}

/// A share group: its members (sorted by shard and session, so every shard orders them
/// alike) and this shard's round-robin position.
#[derive(Debug, Default)]
pub struct Group {
    members: Vec<Member>,
    cursor: Cell<usize>,
}

/// A message given to one member: what its shard needs to deliver it.
#[derive(Debug, Clone)]
pub struct Pick {
    pub key: SessionKey,
    pub qos: QoS,
    pub retain: bool,
    pub id: Option<SubscriptionId>,
    /// The shared subscription's full filter (`$share/group/filter`), which names the
    /// group when the message has to go to another member.
    pub share: Arc<str>,
}

thread_local! {
    /// State of this shard's generator for the random strategy (xorshift, seeded by the
    /// clock and the thread).
    static RANDOM: Cell<u64> = Cell::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x2545_F491_4F6C_DD1D, |d| d.as_nanos() as u64)
            | 1,
    );
}

fn random() -> u64 {
    RANDOM.with(|r| {
        let mut x = r.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        x
    })
}

impl Group {
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member for a message from `publisher`, never `exclude`: online members first.
    fn pick(
        &self,
        strategy: ShareStrategy,
        publisher: &str,
        exclude: Option<(ShardId, SessionKey)>,
    ) -> Option<&Member> {
        let allowed = |m: &&Member| exclude != Some((m.shard, m.key));
        let online = self
            .members
            .iter()
            .filter(allowed)
            .filter(|m| m.online)
            .count();
        let want_online = online > 0;
        let n = if want_online {
            online
        } else {
            self.members.iter().filter(allowed).count()
        };
        if n == 0 {
            return None;
        }
        let nth = match strategy {
            ShareStrategy::RoundRobin => {
                let at = self.cursor.get() % n;
                self.cursor.set(at + 1);
                at
            }
            ShareStrategy::Random => (random() % n as u64) as usize,
            ShareStrategy::Sticky => (stable_hash(publisher.as_bytes()) % n as u64) as usize,
        };
        self.members
            .iter()
            .filter(allowed)
            .filter(|m| m.online || !want_online)
            .nth(nth)
    }
}

/// Every share group, by matching filter; keyed within a filter by the full shared filter.
#[derive(Default)]
pub struct ShareTable {
    groups: SubscriptionTrie<Arc<str>, Group>,
}

/// `$share/group/filter` → `filter`.
fn matching_part(share: &str) -> &str {
    share
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(share, |(_, f)| f)
}

impl ShareTable {
    /// Adds or updates a member of the group `share`.
    pub fn join(&mut self, share: &Arc<str>, member: Member) {
        let mf = matching_part(share);
        let mut group = self.groups.remove(mf, share).unwrap_or_default();
        let at = group
            .members
            .binary_search_by_key(&(member.shard, member.key.0), |m| (m.shard, m.key.0));
        match at {
            Ok(i) => {
                if let Some(m) = group.members.get_mut(i) {
                    *m = member;
                }
            }
            Err(i) => group.members.insert(i, member),
        }
        self.groups.insert(mf, share.clone(), group);
    }

    /// Removes a member; the group goes with its last member.
    pub fn leave(&mut self, share: &Arc<str>, shard: ShardId, key: SessionKey) {
        let mf = matching_part(share);
        let Some(mut group) = self.groups.remove(mf, share) else {
            return;
        };
        group.members.retain(|m| (m.shard, m.key) != (shard, key));
        if !group.members.is_empty() {
            self.groups.insert(mf, share.clone(), group);
        }
    }

    /// Marks a member online or offline.
    pub fn set_online(&mut self, share: &Arc<str>, shard: ShardId, key: SessionKey, on: bool) {
        let mf = matching_part(share);
        let Some(mut group) = self.groups.remove(mf, share) else {
            return;
        };
        for m in &mut group.members {
            if (m.shard, m.key) == (shard, key) {
                m.online = on;
            }
        }
        self.groups.insert(mf, share.clone(), group);
    }

    /// One member of every group whose filter matches `topic`, for a message of `qos` and
    /// `retain` from `publisher`.
    pub fn picks(
        &self,
        topic: &str,
        publisher: &str,
        qos: QoS,
        retain: bool,
        strategy: ShareStrategy,
        out: &mut Vec<(ShardId, Pick)>,
    ) {
        self.groups.for_each_match(topic, |_, share, group| {
            if let Some(m) = group.pick(strategy, publisher, None) {
                out.push((m.shard, pick_of(m, share, qos, retain)));
            }
        });
    }

    /// Another member of the group `share` for a message its member `exclude` did not take.
    pub fn repick(
        &self,
        share: &Arc<str>,
        publisher: &str,
        qos: QoS,
        retain: bool,
        strategy: ShareStrategy,
        exclude: (ShardId, SessionKey),
    ) -> Option<(ShardId, Pick)> {
        let group = self.groups.get(matching_part(share), share)?;
        let m = group.pick(strategy, publisher, Some(exclude))?;
        Some((m.shard, pick_of(m, share, qos, retain)))
    }

    /// The group `share`, if it has members.
    pub fn group(&self, share: &Arc<str>) -> Option<&Group> {
        self.groups.get(matching_part(share), share)
    }

    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

fn pick_of(m: &Member, share: &Arc<str>, qos: QoS, retain: bool) -> Pick {
    Pick {
        key: m.key,
        qos: qos.min(m.qos),
        // RETAIN is kept only with Retain As Published [MQTT-3.3.1-12].
        retain: retain && m.retain_as_published,
        id: m.id,
        share: share.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(shard: u16, key: u64, online: bool) -> Member {
        Member {
            shard: ShardId(shard),
            key: SessionKey(key),
            qos: QoS::AtLeastOnce,
            retain_as_published: false,
            id: None,
            online,
        }
    }

    fn picked(t: &ShareTable, topic: &str, publisher: &str, s: ShareStrategy) -> Vec<(u16, u64)> {
        let mut out = Vec::new();
        t.picks(topic, publisher, QoS::ExactlyOnce, false, s, &mut out);
        out.iter().map(|(s, p)| (s.0, p.key.0)).collect()
    }

    #[test]
    fn round_robin_visits_every_member_in_turn() {
        let mut t = ShareTable::default();
        let g: Arc<str> = "$share/g/a/+".into();
        for (s, k) in [(1, 10), (0, 5), (2, 7)] {
            t.join(&g, member(s, k, true));
        }
        let seen: Vec<_> = (0..6)
            .flat_map(|_| picked(&t, "a/b", "p", ShareStrategy::RoundRobin))
            .collect();
        assert_eq!(
            seen,
            [(0, 5), (1, 10), (2, 7), (0, 5), (1, 10), (2, 7)],
            "members sorted by shard, each once per round"
        );
        assert!(picked(&t, "b/c", "p", ShareStrategy::RoundRobin).is_empty());
    }

    #[test]
    fn online_members_are_preferred_and_offline_ones_used_when_all_are_offline() {
        let mut t = ShareTable::default();
        let g: Arc<str> = "$share/g/t".into();
        t.join(&g, member(0, 1, false));
        t.join(&g, member(1, 2, true));
        for _ in 0..4 {
            assert_eq!(picked(&t, "t", "p", ShareStrategy::RoundRobin), [(1, 2)]);
        }
        t.set_online(&g, ShardId(1), SessionKey(2), false);
        let seen: Vec<_> = (0..4)
            .flat_map(|_| picked(&t, "t", "p", ShareStrategy::Random))
            .collect();
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn sticky_keeps_a_publisher_on_one_member() {
        let mut t = ShareTable::default();
        let g: Arc<str> = "$share/g/t".into();
        for k in 0..5 {
            t.join(&g, member(0, k, true));
        }
        for publisher in ["a", "b", "c", "d"] {
            let first = picked(&t, "t", publisher, ShareStrategy::Sticky);
            for _ in 0..10 {
                assert_eq!(picked(&t, "t", publisher, ShareStrategy::Sticky), first);
            }
        }
    }

    #[test]
    fn groups_are_independent_and_leave_removes_empty_groups() {
        let mut t = ShareTable::default();
        let g1: Arc<str> = "$share/one/t".into();
        let g2: Arc<str> = "$share/two/t".into();
        t.join(&g1, member(0, 1, true));
        t.join(&g2, member(1, 2, true));
        let mut seen = picked(&t, "t", "p", ShareStrategy::RoundRobin);
        seen.sort();
        assert_eq!(seen, [(0, 1), (1, 2)], "one member of each group");
        t.leave(&g1, ShardId(0), SessionKey(1));
        assert_eq!(picked(&t, "t", "p", ShareStrategy::RoundRobin), [(1, 2)]);
        t.leave(&g2, ShardId(1), SessionKey(2));
        assert!(t.is_empty());
    }

    #[test]
    fn repick_never_returns_the_excluded_member() {
        let mut t = ShareTable::default();
        let g: Arc<str> = "$share/g/t".into();
        t.join(&g, member(0, 1, true));
        t.join(&g, member(1, 2, true));
        for _ in 0..5 {
            let (s, p) = t
                .repick(
                    &g,
                    "p",
                    QoS::AtLeastOnce,
                    false,
                    ShareStrategy::RoundRobin,
                    (ShardId(0), SessionKey(1)),
                )
                .expect("another member");
            assert_eq!((s.0, p.key.0), (1, 2));
        }
        t.leave(&g, ShardId(1), SessionKey(2));
        assert!(t
            .repick(
                &g,
                "p",
                QoS::AtLeastOnce,
                false,
                ShareStrategy::default(),
                (ShardId(0), SessionKey(1))
            )
            .is_none());
    }
}

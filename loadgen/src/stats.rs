//! What the clients measure: latency histograms, and per-publisher sequence tracking for
//! loss, duplicates and order.

use std::collections::{HashMap, VecDeque};

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in nanoseconds, 1 ns to 1 hour, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

/// Largest recordable value: one hour in nanoseconds; larger values are clamped to it.
const LATENCY_MAX_NS: u64 = 3_600_000_000_000;

impl Latency {
    pub fn new() -> Self {
        // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, 3 significant
        // figures): this cannot fail, whatever the input.
        #[allow(clippy::expect_used)]
        let h = Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3).expect("valid constant bounds");
        Latency(h)
    }

    pub fn record(&mut self, ns: u64) {
        self.0.saturating_record(ns.clamp(1, LATENCY_MAX_NS));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so `add` cannot fail; saturate rather than lose it.
        if self.0.add(&other.0).is_err() {
            for v in other.0.iter_recorded() {
                self.0
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    pub fn summary(&self) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1000.0;
        if self.0.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.0.len(),
            min_us: us(self.0.min()),
            mean_us: self.0.mean() / 1000.0,
            p50_us: us(self.0.value_at_quantile(0.50)),
            p90_us: us(self.0.value_at_quantile(0.90)),
            p99_us: us(self.0.value_at_quantile(0.99)),
            p99_9_us: us(self.0.value_at_quantile(0.999)),
            max_us: us(self.0.max()),
        }
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p99_9_us: f64,
    pub max_us: f64,
}

/// A sequence number jump larger than this is taken for a corrupt or foreign payload rather
/// than grown into (it would cost 2 MiB of bitmap per 2^24).
const SEQ_JUMP_MAX: u32 = 1 << 24;

/// The set of sequence numbers received from one publisher.
///
/// # Invariants
/// Every number below `base` was received; bit `i` of the bitmap is number `base + i`.
/// Memory is one bit per number from the first gap to the highest number seen.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    base: u32,
    words: VecDeque<u64>,
    highest: Option<u32>,
}

impl SeqSet {
    /// Adds `seq`; false when it was already there. `None` when it jumps too far ahead.
    pub fn insert(&mut self, seq: u32) -> Option<bool> {
        if seq < self.base {
            return Some(false);
        }
        let reach = self.highest.unwrap_or(self.base).max(self.base);
        if seq > reach && seq - reach > SEQ_JUMP_MAX {
            return None;
        }
        let idx = (seq - self.base) as usize;
        let (word, bit) = (idx / 64, idx % 64);
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        let slot = self.words.get_mut(word)?;
        if *slot & mask != 0 {
            return Some(false);
        }
        *slot |= mask;
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        while self.words.front() == Some(&u64::MAX) {
            self.words.pop_front();
            self.base = self.base.saturating_add(64);
        }
        Some(true)
    }

    /// How many numbers below `limit` are in the set.
    pub fn count_below(&self, limit: u32) -> u64 {
        let mut n = u64::from(self.base.min(limit));
        for (w, word) in self.words.iter().enumerate() {
            let start = u64::from(self.base) + 64 * w as u64;
            let limit = u64::from(limit);
            if start >= limit {
                break;
            }
            let keep = limit - start;
            let masked = if keep >= 64 {
                *word
            } else {
                word & ((1u64 << keep) - 1)
            };
            n += u64::from(masked.count_ones());
        }
        n
    }

    /// Every number in the set (for merging sets of a shared subscription's members).
    pub fn union(&mut self, other: &SeqSet) {
        // Every number below `other.base` is in `other`.
        for seq in self.base..other.base {
            let _ = self.insert(seq);
        }
        for (w, word) in other.words.iter().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                let seq = u64::from(other.base) + 64 * w as u64 + u64::from(bit);
                if let Ok(seq) = u32::try_from(seq) {
                    let _ = self.insert(seq);
                }
            }
        }
    }
}

/// What one subscriber saw of one publisher.
#[derive(Debug, Clone, Default)]
pub struct Track {
    pub seen: SeqSet,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    highest: Option<u32>,
}

impl Track {
    /// Records one delivery: whether it was new; `None` (and nothing recorded) when the
    /// sequence number is implausible.
    pub fn record(&mut self, seq: u32) -> Option<bool> {
        let new = self.seen.insert(seq)?;
        self.received += 1;
        if !new {
            self.duplicates += 1;
        } else if self.highest.is_some_and(|h| seq < h) {
            self.out_of_order += 1;
        }
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        Some(new)
    }
}

/// One subscriber's tracks, by publisher id.
pub type Tracks = HashMap<u32, Track>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqset_counts_gaps_duplicates_and_compacts() {
        let mut s = SeqSet::default();
        for seq in (0..1000).filter(|n| n % 100 != 7) {
            assert_eq!(s.insert(seq), Some(true));
        }
        assert_eq!(s.insert(5), Some(false));
        assert_eq!(s.count_below(1000), 990);
        assert_eq!(s.count_below(50), 49, "7 is missing");
        assert_eq!(s.insert(u32::MAX), None);
        let mut full = SeqSet::default();
        for seq in 0..10_000 {
            full.insert(seq);
        }
        assert!(full.words.len() <= 1, "a gap-free set compacts");
        assert_eq!(full.count_below(20_000), 10_000);
    }

    #[test]
    fn union_of_disjoint_halves_is_whole() {
        let (mut a, mut b) = (SeqSet::default(), SeqSet::default());
        for seq in 0..500u32 {
            if seq % 2 == 0 {
                a.insert(seq);
            } else {
                b.insert(seq);
            }
        }
        a.union(&b);
        assert_eq!(a.count_below(500), 500);
    }

    #[test]
    fn track_counts_duplicates_and_out_of_order() {
        let mut t = Track::default();
        for seq in [0, 1, 3, 2, 3, 4] {
            assert!(t.record(seq).is_some());
        }
        assert_eq!((t.received, t.duplicates, t.out_of_order), (6, 1, 1));
    }

    #[test]
    fn latency_summary_in_microseconds() {
        let mut l = Latency::new();
        for us in 1..=100u64 {
            l.record(us * 1000);
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_us - 50.0).abs() < 1.0, "{s:?}");
        assert!((s.max_us - 100.0).abs() < 1.0, "{s:?}");
    }
}

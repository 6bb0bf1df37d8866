//! `[runtime]`: how shards map onto CPUs and how each glommio executor is tuned.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Unexpected, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::{check_range, Problem};

/// Largest CPU id a shard may name: glibc's `cpu_set_t` holds CPUs 0..=1023.
pub const CPU_ID_MAX: usize = 1023;

/// Default `runtime.io_memory_bytes`: 64 KiB.
pub const IO_MEMORY_BYTES_DEFAULT: usize = 64 << 10;
/// Allowed `runtime.io_memory_bytes`: glommio allocates at least 64 KiB anyway; 1 GiB is far
/// past any use (sockets never touch this memory, only `DmaFile` does).
pub const IO_MEMORY_BYTES_RANGE: RangeInclusive<usize> = (64 << 10)..=(1 << 30);

/// Default `runtime.ring_depth`.
pub const RING_DEPTH_DEFAULT: usize = 256;
/// Allowed `runtime.ring_depth`.
pub const RING_DEPTH_RANGE: RangeInclusive<usize> = 16..=4096;

/// Default `runtime.spin_before_park_us`: park at once.
pub const SPIN_BEFORE_PARK_US_DEFAULT: u32 = 0;
/// Allowed `runtime.spin_before_park_us`: up to 10 ms.
pub const SPIN_BEFORE_PARK_US_RANGE: RangeInclusive<u32> = 0..=10_000;

/// Default `runtime.preempt_timer_ms`.
pub const PREEMPT_TIMER_MS_DEFAULT: u32 = 10;
/// Allowed `runtime.preempt_timer_ms`.
pub const PREEMPT_TIMER_MS_RANGE: RangeInclusive<u32> = 1..=1000;

/// Default `runtime.wake_interval_ms`.
pub const WAKE_INTERVAL_MS_DEFAULT: u32 = 20;
/// Allowed `runtime.wake_interval_ms`.
pub const WAKE_INTERVAL_MS_RANGE: RangeInclusive<u32> = 1..=1000;

/// The `[runtime]` section: shard placement and per-executor settings.
///
/// Memory locking: a non-root user is charged about 3 x `io_memory_bytes` plus the ring
/// memory per executor, and an executor fails with `MemLockLimit` when `ulimit -l` is below
/// 512 KiB. Root is exempt. `tuning/README.md` lists the limits to set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// CPUs that get a shard each: `"all"` (every CPU this process may run on) or a list of
    /// CPU ids. Default `"all"`. A list must be non-empty, without duplicates, ids 0..=1023.
    pub cores: Cores,
    /// `pinned` (default): one executor pinned to each CPU of `cores`. `unbound`: the same
    /// number of executors, not pinned, so they may outnumber the CPUs (tests).
    pub placement: Placement,
    /// Memory each executor registers with io_uring for file I/O (sockets never use it).
    /// Default 65536 (64 KiB, glommio's own default is 10 MiB, resident per executor).
    /// Minimum 65536, maximum 1 GiB.
    pub io_memory_bytes: usize,
    /// Submission queue entries of each io_uring ring (the kernel rounds up to a power of
    /// two). Default 256, range 16..=4096.
    pub ring_depth: usize,
    /// How long an idle executor spins before it parks, in microseconds. Spinning cuts the
    /// cross-shard round trip (84 -> 16 us measured) but burns the CPU while idle: use it on
    /// dedicated cores only. Default 0 (park at once), maximum 10000.
    pub spin_before_park_us: u32,
    /// How long a task queue runs before glommio's `need_preempt` turns true and the executor
    /// goes back to polling I/O, in milliseconds. glommio's default is 100; a broker wants
    /// socket completions seen sooner, at a negligible cost in throughput. Default 10,
    /// range 1..=1000.
    pub preempt_timer_ms: u32,
    /// Longest a parked shard sleeps without looking at its cross-shard channels, in
    /// milliseconds. glommio 0.9 can lose the wake-up a sending shard gives a parked one
    /// (a store-load race on its notify flag), which would leave a forwarded message waiting
    /// for the next unrelated event; this timer bounds that wait. Costs about 1000 /
    /// interval wake-ups per second per idle shard (measured: 0.45 % of a core at 20 ms,
    /// 1.35 % at 5 ms, nothing at 1000 ms). Default 20, range 1..=1000.
    pub wake_interval_ms: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cores: Cores::All,
            placement: Placement::Pinned,
            io_memory_bytes: IO_MEMORY_BYTES_DEFAULT,
            ring_depth: RING_DEPTH_DEFAULT,
            spin_before_park_us: SPIN_BEFORE_PARK_US_DEFAULT,
            preempt_timer_ms: PREEMPT_TIMER_MS_DEFAULT,
            wake_interval_ms: WAKE_INTERVAL_MS_DEFAULT,
        }
    }
}

impl RuntimeConfig {
    /// `spin_before_park_us` as a `Duration`.
    pub fn spin_before_park(&self) -> Duration {
        Duration::from_micros(u64::from(self.spin_before_park_us))
    }

    /// `wake_interval_ms` as a `Duration`.
    pub fn wake_interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.wake_interval_ms))
    }

    /// `preempt_timer_ms` as a `Duration`.
    pub fn preempt_timer(&self) -> Duration {
        Duration::from_millis(u64::from(self.preempt_timer_ms))
    }

    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        if let Cores::List(ids) = &self.cores {
            validate_core_list(ids, problems);
        }
        check_range(
            problems,
            "runtime.io_memory_bytes",
            self.io_memory_bytes,
            IO_MEMORY_BYTES_RANGE,
        );
        check_range(
            problems,
            "runtime.ring_depth",
            self.ring_depth,
            RING_DEPTH_RANGE,
        );
        check_range(
            problems,
            "runtime.spin_before_park_us",
            self.spin_before_park_us,
            SPIN_BEFORE_PARK_US_RANGE,
        );
        check_range(
            problems,
            "runtime.preempt_timer_ms",
            self.preempt_timer_ms,
            PREEMPT_TIMER_MS_RANGE,
        );
        check_range(
            problems,
            "runtime.wake_interval_ms",
            self.wake_interval_ms,
            WAKE_INTERVAL_MS_RANGE,
        );
    }
}

fn validate_core_list(ids: &[CpuId], problems: &mut Vec<Problem>) {
    let shown = Cores::List(ids.to_vec());
    if ids.is_empty() {
        problems.push(Problem::new(
            "runtime.cores",
            shown,
            "must name at least one CPU id, or be \"all\"",
        ));
        return;
    }
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<CpuId> = ids.iter().copied().filter(|id| !seen.insert(*id)).collect();
    if !duplicates.is_empty() {
        let list = join(duplicates.iter());
        problems.push(Problem::new(
            "runtime.cores",
            &shown,
            format!("must not name a CPU twice (repeated: {list})"),
        ));
    }
    let too_large: Vec<&CpuId> = ids.iter().filter(|id| id.0 > CPU_ID_MAX).collect();
    if !too_large.is_empty() {
        let list = join(too_large.into_iter());
        problems.push(Problem::new(
            "runtime.cores",
            &shown,
            format!("CPU ids must be between 0 and {CPU_ID_MAX} (out of range: {list})"),
        ));
    }
}

fn join<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// A CPU id as the kernel numbers it (`/sys/devices/system/cpu/cpuN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CpuId(pub usize);

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Which CPUs get a shard. In TOML: the string `"all"` or an array of CPU ids.
///
/// Serde treats it as untagged (a string or a list), written by hand so that a wrong value
/// gets an error that says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cores {
    /// One shard per CPU this process may run on (affinity mask, cgroup cpuset).
    #[default]
    All,
    /// One shard per listed CPU, in this order.
    List(Vec<CpuId>),
}

const CORES_EXPECTED: &str = "\"all\" or a list of CPU ids such as [0, 2, 4]";

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cores::All => f.write_str("\"all\""),
            Cores::List(ids) => write!(f, "[{}]", join(ids.iter())),
        }
    }
}

/// Parses the command-line form: `all` or a comma-separated list such as `0,2,4`.
///
/// Duplicates are accepted here and reported by validation, which names `runtime.cores`.
impl FromStr for Cores {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "all" {
            return Ok(Cores::All);
        }
        if s.is_empty() {
            return Err(
                "expected \"all\" or a comma-separated list of CPU ids such as 0,2,4; \
                        got an empty string"
                    .to_owned(),
            );
        }
        s.split(',')
            .map(|part| {
                let part = part.trim();
                part.parse::<usize>().map(CpuId).map_err(|_| {
                    format!(
                        "{part:?} is not a CPU id; expected \"all\" or a comma-separated \
                         list of CPU ids such as 0,2,4"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Cores::List)
    }
}

impl Serialize for Cores {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cores::All => serializer.serialize_str("all"),
            Cores::List(ids) => {
                let mut seq = serializer.serialize_seq(Some(ids.len()))?;
                for id in ids {
                    seq.serialize_element(id)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CoresVisitor;

        impl<'de> Visitor<'de> for CoresVisitor {
            type Value = Cores;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(CORES_EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cores, E> {
                if v == "all" {
                    Ok(Cores::All)
                } else {
                    Err(E::invalid_value(Unexpected::Str(v), &self))
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cores, A::Error> {
                let mut ids = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(id) = seq.next_element::<CpuId>()? {
                    ids.push(id);
                }
                Ok(Cores::List(ids))
            }
        }

        deserializer.deserialize_any(CoresVisitor)
    }
}

/// How executors are bound to CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Each executor pinned to its CPU; at most one executor per CPU.
    #[default]
    Pinned,
    /// Executors float; `cores` only sets how many there are. For oversubscribed tests
    /// (4 shards on 2 CPUs), never for production.
    Unbound,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(runtime: &RuntimeConfig) -> Vec<Problem> {
        let mut problems = Vec::new();
        runtime.validate(&mut problems);
        problems
    }

    fn list(ids: &[usize]) -> Cores {
        Cores::List(ids.iter().copied().map(CpuId).collect())
    }

    #[test]
    fn defaults_are_valid() {
        assert!(problems_of(&RuntimeConfig::default()).is_empty());
    }

    #[test]
    fn cores_from_str_accepts_all_and_lists() {
        assert_eq!("all".parse::<Cores>(), Ok(Cores::All));
        assert_eq!("0,2,4".parse::<Cores>(), Ok(list(&[0, 2, 4])));
        assert_eq!(" 1 , 3 ".parse::<Cores>(), Ok(list(&[1, 3])));
    }

    #[test]
    fn cores_from_str_rejects_garbage() {
        let err = "0,x".parse::<Cores>().unwrap_err();
        assert!(err.contains("\"x\" is not a CPU id"), "{err}");
        assert!("".parse::<Cores>().is_err());
        assert!("0,,1".parse::<Cores>().is_err());
        assert!("-1".parse::<Cores>().is_err());
    }

    #[test]
    fn empty_core_list_is_rejected() {
        let runtime = RuntimeConfig {
            cores: list(&[]),
            ..RuntimeConfig::default()
        };
        let problems = problems_of(&runtime);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "runtime.cores");
        assert!(problems[0].expected.contains("at least one CPU"));
    }

    #[test]
    fn duplicate_cores_are_rejected() {
        let runtime = RuntimeConfig {
            cores: list(&[0, 2, 0, 2, 3]),
            ..RuntimeConfig::default()
        };
        let problems = problems_of(&runtime);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "runtime.cores: must not name a CPU twice (repeated: 0, 2); got [0, 2, 0, 2, 3]"
        );
    }

    #[test]
    fn cpu_id_above_1023_is_rejected() {
        let runtime = RuntimeConfig {
            cores: list(&[0, 1024]),
            ..RuntimeConfig::default()
        };
        let problems = problems_of(&runtime);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].expected.contains("out of range: 1024"));
    }

    #[test]
    fn io_memory_below_64_kib_is_rejected() {
        let runtime = RuntimeConfig {
            io_memory_bytes: 4096,
            ..RuntimeConfig::default()
        };
        let problems = problems_of(&runtime);
        assert_eq!(
            problems[0].to_string(),
            "runtime.io_memory_bytes: must be between 65536 and 1073741824; got 4096"
        );
    }

    #[test]
    fn ring_depth_outside_16_to_4096_is_rejected() {
        for depth in [0, 15, 4097] {
            let runtime = RuntimeConfig {
                ring_depth: depth,
                ..RuntimeConfig::default()
            };
            let problems = problems_of(&runtime);
            assert_eq!(problems.len(), 1, "depth {depth}");
            assert_eq!(problems[0].key, "runtime.ring_depth");
        }
        for depth in [16, 4096] {
            let runtime = RuntimeConfig {
                ring_depth: depth,
                ..RuntimeConfig::default()
            };
            assert!(problems_of(&runtime).is_empty(), "depth {depth}");
        }
    }

    #[test]
    fn spin_and_preempt_bounds_are_enforced() {
        let runtime = RuntimeConfig {
            spin_before_park_us: 10_001,
            preempt_timer_ms: 0,
            ..RuntimeConfig::default()
        };
        let keys: Vec<String> = problems_of(&runtime).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            ["runtime.spin_before_park_us", "runtime.preempt_timer_ms"]
        );
    }

    #[test]
    fn durations_convert_units() {
        let runtime = RuntimeConfig {
            spin_before_park_us: 50,
            preempt_timer_ms: 7,
            ..RuntimeConfig::default()
        };
        assert_eq!(runtime.spin_before_park(), Duration::from_micros(50));
        assert_eq!(runtime.preempt_timer(), Duration::from_millis(7));
    }
}

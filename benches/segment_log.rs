//! Segment log throughput: append of 64 B, 256 B and 1 KiB records into a pre-faulted
//! segment; append + flush (msync) per batch of 1, 16 and 256 records of 256 B; and the
//! recovery scan (headers, every CRC, the free space checked for zeroes) of a 64 MiB log.
//!
//! Each case runs twice, in a `*_records` group (`Throughput::Elements`: records/s) and a
//! `*_bytes` group (`Throughput::Bytes`: frame bytes, header included, in MB/s). Logs live
//! in a temporary directory (`TMPDIR`), so flush figures are those of that disk. When a
//! segment fills, the clock stops while the bench flushes, prepares the next segment and
//! removes the old ones, as the shard would off its loop. Run with
//! `cargo bench --bench segment_log`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use ringmq::persist::record::FRAME_HEADER_LEN;
use ringmq::persist::{AppendError, Log, LogOptions, RecordType, Recovery};

const APPEND_SEGMENT_BYTES: u64 = 64 << 20;
const RECOVERY_SEGMENT_BYTES: u64 = 16 << 20;
const RECOVERY_LOG_BYTES: usize = 64 << 20;
const BODY_SIZES: [(usize, &str); 3] = [(64, "64B"), (256, "256B"), (1024, "1KiB")];
const FLUSH_BATCHES: [u64; 3] = [1, 16, 256];

#[derive(Clone, Copy)]
enum Unit {
    Records,
    Bytes,
}

impl Unit {
    fn throughput(self, records: u64, body_len: usize) -> Throughput {
        match self {
            Unit::Records => Throughput::Elements(records),
            Unit::Bytes => Throughput::Bytes(records * (FRAME_HEADER_LEN + body_len) as u64),
        }
    }
}

fn record_type() -> RecordType {
    RecordType::new(1).expect("non-zero")
}

fn open(dir: &std::path::Path, segment_bytes: u64) -> Log {
    let (mut log, _) = Log::open(dir, LogOptions { segment_bytes }).expect("open log");
    log.prepare_next_blocking().expect("prepare");
    log
}

/// Appends, doing the off-loop work in place (untimed) when the log asks for it, and
/// removing full segments if `compact`. Returns the time spent on that work, for the
/// caller to subtract.
fn append(log: &mut Log, body: &[u8], compact: bool) -> Duration {
    let mut maintenance = Duration::ZERO;
    loop {
        match log.append(record_type(), body) {
            Ok(offset) => {
                black_box(offset);
                return maintenance;
            }
            Err(AppendError::NeedsFlush | AppendError::NeedsNextSegment) => {
                let start = Instant::now();
                log.flush_blocking().expect("flush");
                log.prepare_next_blocking().expect("prepare");
                if compact {
                    let end = log.end_offset();
                    log.remove_below(end).run().expect("remove");
                }
                maintenance += start.elapsed();
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn bench_append(group: &mut BenchmarkGroup<'_, WallTime>, unit: Unit) {
    for (body_len, name) in BODY_SIZES {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open(dir.path(), APPEND_SEGMENT_BYTES);
        let body = vec![0xA5u8; body_len];
        group.throughput(unit.throughput(1, body_len));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut excluded = Duration::ZERO;
                for _ in 0..iters {
                    excluded += append(&mut log, &body, true);
                }
                start.elapsed().saturating_sub(excluded)
            })
        });
    }
}

fn bench_append_flush(group: &mut BenchmarkGroup<'_, WallTime>, unit: Unit) {
    let body_len = 256;
    let body = vec![0x5Au8; body_len];
    for batch in FLUSH_BATCHES {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = open(dir.path(), APPEND_SEGMENT_BYTES);
        group.throughput(unit.throughput(batch, body_len));
        group.bench_function(format!("256B_x{batch}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let mut excluded = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..batch {
                        excluded += append(&mut log, &body, true);
                    }
                    let job = log.flush_job().expect("something to flush");
                    let done = job.run().expect("msync");
                    log.complete_flush(done);
                }
                start.elapsed().saturating_sub(excluded)
            })
        });
    }
}

fn bench_recovery(group: &mut BenchmarkGroup<'_, WallTime>, unit: Unit) {
    let body_len = 256;
    let body = vec![0x3Cu8; body_len];
    let dir = tempfile::tempdir().expect("tempdir");
    let records = (RECOVERY_LOG_BYTES / (FRAME_HEADER_LEN + body_len)) as u64;
    {
        let mut log = open(dir.path(), RECOVERY_SEGMENT_BYTES);
        for _ in 0..records {
            append(&mut log, &body, false);
        }
        log.flush_blocking().expect("flush");
    }
    let options = LogOptions {
        segment_bytes: RECOVERY_SEGMENT_BYTES,
    };
    group.sample_size(10);
    group.throughput(unit.throughput(records, body_len));
    group.bench_function("64MiB_256B", |b| {
        b.iter(|| {
            let recovery = Recovery::open(dir.path(), options).expect("open");
            let mut scan = recovery.scan();
            let mut bytes = 0usize;
            for record in scan.by_ref() {
                bytes += record.expect("valid").body.len();
            }
            let scanned = scan.finish().expect("clean");
            assert_eq!(scanned.records(), records);
            black_box(bytes)
        })
    });
}

fn segment_log(c: &mut Criterion, suffix: &str, unit: Unit) {
    let mut group = c.benchmark_group(format!("append_{suffix}"));
    bench_append(&mut group, unit);
    group.finish();
    let mut group = c.benchmark_group(format!("append_flush_{suffix}"));
    bench_append_flush(&mut group, unit);
    group.finish();
    let mut group = c.benchmark_group(format!("recovery_scan_{suffix}"));
    bench_recovery(&mut group, unit);
    group.finish();
}

fn segment_log_records(c: &mut Criterion) {
    segment_log(c, "records", Unit::Records);
}

fn segment_log_bytes(c: &mut Criterion) {
    segment_log(c, "bytes", Unit::Bytes);
}

criterion_group!(benches, segment_log_records, segment_log_bytes);
criterion_main!(benches);

//! Properties of the record format and recovery: `decode(encode(r)) == r`, arbitrary bytes
//! never panic, any truncation of a valid log recovers exactly its complete prefix, and a
//! flipped byte in a record body is always detected. Pure region properties run many
//! cases; the ones on real segment files fewer.

use std::fs;

use proptest::prelude::*;
use ringmq::persist::record::{self, Decoded, Frames, RegionEnd, FRAME_HEADER_LEN};
use ringmq::persist::{AppendError, Log, LogOffset, LogOptions, RecordType, HEADER_LEN};

const SEGMENT_BYTES: u64 = 8192;

fn record_type() -> impl Strategy<Value = RecordType> {
    (1u8..=255).prop_map(|t| RecordType::new(t).expect("non-zero"))
}

/// Records with bodies under 512 bytes (so no frame can hold a torn-looking zero sector).
fn records(max: usize) -> impl Strategy<Value = Vec<(RecordType, Vec<u8>)>> {
    prop::collection::vec(
        (record_type(), prop::collection::vec(any::<u8>(), 0..400)),
        1..max,
    )
}

/// The frames of `records` back to back, with the position where each starts.
fn region(records: &[(RecordType, Vec<u8>)]) -> (Vec<u8>, Vec<usize>) {
    let mut data = Vec::new();
    let mut starts = Vec::new();
    for (record_type, body) in records {
        starts.push(data.len());
        data.extend(record::encode_to_vec(*record_type, body).expect("encode"));
    }
    (data, starts)
}

fn yielded(data: &[u8]) -> (Vec<(usize, RecordType, Vec<u8>)>, RegionEnd) {
    let mut frames = Frames::new(data);
    let got = frames
        .by_ref()
        .map(|(at, r)| (at, r.record_type, r.body.to_vec()))
        .collect();
    (got, frames.end().expect("ended"))
}

fn options() -> LogOptions {
    LogOptions {
        segment_bytes: SEGMENT_BYTES,
    }
}

/// A log in a fresh directory holding `records`, flushed; returns the offsets.
fn write_log(dir: &std::path::Path, records: &[(RecordType, Vec<u8>)]) -> Vec<LogOffset> {
    let (mut log, _) = Log::open(dir, options()).expect("open");
    let mut offsets = Vec::new();
    for (record_type, body) in records {
        let offset = loop {
            match log.append(*record_type, body) {
                Ok(offset) => break offset,
                Err(AppendError::NeedsFlush) => log.flush_blocking().expect("flush"),
                Err(AppendError::NeedsNextSegment) => log.prepare_next_blocking().expect("prepare"),
                Err(e) => panic!("{e}"),
            }
        };
        offsets.push(offset);
    }
    log.flush_blocking().expect("flush");
    offsets
}

/// The segment files of `dir` in offset order.
fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_inverts_encode(record_type in record_type(),
                             body in prop::collection::vec(any::<u8>(), 0..4096),
                             trailing in prop::collection::vec(any::<u8>(), 0..16)) {
        let mut frame = record::encode_to_vec(record_type, &body).expect("encode");
        let len = frame.len();
        prop_assert_eq!(len, FRAME_HEADER_LEN + body.len());
        frame.extend(trailing);
        match record::decode(&frame) {
            Ok(Decoded::Record { record, frame_len }) => {
                prop_assert_eq!(record.record_type, record_type);
                prop_assert_eq!(record.body, &body[..]);
                prop_assert_eq!(frame_len, len);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = record::decode(&bytes);
        let (got, end) = yielded(&bytes);
        let valid = end.valid_len();
        prop_assert!(valid <= bytes.len());
        for (at, _, body) in &got {
            prop_assert!(at + FRAME_HEADER_LEN + body.len() <= valid);
        }
    }

    #[test]
    fn mutated_regions_never_panic(records in records(8),
                                   edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let (mut data, _) = region(&records);
        data.resize(data.len() + 64, 0);
        for (at, value) in edits {
            let i = at.index(data.len());
            data[i] = value;
        }
        let (_, end) = yielded(&data);
        prop_assert!(end.valid_len() <= data.len());
    }

    #[test]
    fn truncated_region_yields_exactly_the_complete_prefix(records in records(12),
                                                           cut in any::<prop::sample::Index>(),
                                                           padding in 0usize..64) {
        let (full, starts) = region(&records);
        let cut = cut.index(full.len() + 1);
        let mut data = full[..cut].to_vec();
        data.resize(cut + padding, 0);
        let complete: Vec<_> = records
            .iter()
            .zip(&starts)
            .filter(|((_, body), &at)| at + FRAME_HEADER_LEN + body.len() <= cut)
            .map(|((t, body), &at)| (at, *t, body.clone()))
            .collect();
        let (got, end) = yielded(&data);
        let prefix_len = complete.last().map_or(0, |(at, _, body)| at + FRAME_HEADER_LEN + body.len());
        prop_assert_eq!(&got, &complete);
        prop_assert_eq!(end.valid_len(), prefix_len);
        // Cut bytes that are all zero (a frame whose first written bytes were its zero
        // length field) look exactly like the zero-filled rest of a segment: nothing torn.
        if data[prefix_len..].iter().all(|&b| b == 0) {
            prop_assert_eq!(end, RegionEnd::Clean { len: prefix_len });
        } else {
            let torn = matches!(end, RegionEnd::Torn { .. });
            prop_assert!(torn, "{:?}", end);
        }
    }

    #[test]
    fn flipped_body_byte_is_detected(records in records(12),
                                     which in any::<prop::sample::Index>(),
                                     byte in any::<prop::sample::Index>(),
                                     mask in 1u8..=255) {
        let with_body: Vec<usize> = (0..records.len()).filter(|&i| !records[i].1.is_empty()).collect();
        prop_assume!(!with_body.is_empty());
        let i = with_body[which.index(with_body.len())];
        let (mut data, starts) = region(&records);
        data.resize(data.len() + 64, 0);
        let at = starts[i] + FRAME_HEADER_LEN + byte.index(records[i].1.len());
        data[at] ^= mask;
        let (got, end) = yielded(&data);
        prop_assert_eq!(got.len(), i, "the flipped record and what follows are not yielded");
        prop_assert_eq!(end.valid_len(), starts[i]);
        if i + 1 < records.len() {
            // A valid frame follows: corruption, not a torn tail.
            let corrupt = matches!(end, RegionEnd::Corrupt { .. });
            prop_assert!(corrupt, "{:?}", end);
        } else {
            let torn = matches!(end, RegionEnd::Torn { .. });
            prop_assert!(torn, "{:?}", end);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A crash may leave the last segment cut anywhere: recovery returns every record that
    /// was complete before the cut, in every segment, and nothing else.
    #[test]
    fn truncated_log_recovers_exactly_the_complete_prefix(records in records(60),
                                                          cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let offsets = write_log(dir.path(), &records);
        let files = segment_files(dir.path());
        // The segment holding the last record (the prepared next one may follow it).
        let last_base = files
            .iter()
            .filter_map(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
            .filter(|&b| b <= offsets.last().expect("records").get())
            .max()
            .expect("a segment");
        let path = dir.path().join(format!("{last_base:020}.seg"));
        let mut bytes = fs::read(&path).expect("read");
        let (_, last_body) = records.last().expect("records");
        let written_end = (offsets.last().expect("records").get() - last_base) as usize
            + FRAME_HEADER_LEN + last_body.len();
        let cut = cut.index(written_end + 1);
        bytes[HEADER_LEN + cut..].fill(0);
        fs::write(&path, &bytes).expect("write");

        let cut_offset = last_base + cut as u64;
        let expected: Vec<_> = records
            .iter()
            .zip(&offsets)
            .filter(|((_, body), offset)| offset.get() + (FRAME_HEADER_LEN + body.len()) as u64 <= cut_offset)
            .map(|((t, body), offset)| (*offset, *t, body.clone()))
            .collect();
        let (log, report) = Log::open(dir.path(), options()).expect("recovers");
        let got: Vec<_> = log.records().map(|r| (r.offset, r.record_type, r.body.to_vec())).collect();
        prop_assert_eq!(&got, &expected);
        let prefix_end = expected.last().map(|(o, _, body)| o.get() + (FRAME_HEADER_LEN + body.len()) as u64);
        // Cut at a frame boundary (or at the segment's start): nothing torn.
        let at_boundary = cut == 0 || prefix_end == Some(cut_offset);
        prop_assert_eq!(report.torn_tail.is_none(), at_boundary, "{:?}", report.torn_tail);
    }

    /// A flipped byte in any record body of a real log: recovery either refuses to start
    /// (corruption) or cuts a torn tail that starts at or before that record; the flipped
    /// record is never returned.
    #[test]
    fn flipped_byte_in_a_log_is_never_returned(records in records(60),
                                               which in any::<prop::sample::Index>(),
                                               byte in any::<prop::sample::Index>(),
                                               mask in 1u8..=255) {
        let with_body: Vec<usize> = (0..records.len()).filter(|&i| !records[i].1.is_empty()).collect();
        prop_assume!(!with_body.is_empty());
        let i = with_body[which.index(with_body.len())];
        let dir = tempfile::tempdir().expect("tempdir");
        let offsets = write_log(dir.path(), &records);
        let base = segment_files(dir.path())
            .iter()
            .filter_map(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
            .filter(|&b| b <= offsets[i].get())
            .max()
            .expect("a segment");
        let path = dir.path().join(format!("{base:020}.seg"));
        let mut bytes = fs::read(&path).expect("read");
        let at = HEADER_LEN + (offsets[i].get() - base) as usize + FRAME_HEADER_LEN
            + byte.index(records[i].1.len());
        bytes[at] ^= mask;
        fs::write(&path, &bytes).expect("write");

        match Log::open(dir.path(), options()) {
            Err(error) => prop_assert!(error.is_corruption(), "{}", error),
            Ok((log, report)) => {
                let torn = report.torn_tail.expect("damage is reported");
                prop_assert!(torn.offset <= offsets[i]);
                prop_assert!(log.records().all(|r| r.offset < offsets[i]));
            }
        }
    }
}

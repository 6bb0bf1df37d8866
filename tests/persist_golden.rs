//! Golden segment files: the on-disk format pinned byte for byte, and recovery's verdict on
//! each damaged case.
//!
//! `tests/data/segments/<case>/00000000000000000000.seg` are 4 KiB segments:
//!
//! | case                  | contents                                       | recovery          |
//! |-----------------------|------------------------------------------------|-------------------|
//! | `valid`               | the four records of [`records`]                | all four          |
//! | `torn_tail`           | those, then a fifth record cut after 100 bytes | four, tail cut    |
//! | `bad_crc`             | a body byte of the second record flipped       | error, names file |
//! | `bad_magic`           | first byte of the magic changed                | error, names file |
//! | `unsupported_version` | header says format version 2                   | error, names file |
//!
//! They are made by [`generate`]. After a deliberate format change, regenerate them with
//! `cargo test --test persist_golden -- --ignored regenerate_golden_segments` and review
//! the diff; `golden_files_match_the_generator` fails until then. The expectations below
//! are written by hand from the layout tables in `src/persist/mod.rs`, so the code does not
//! only test itself.

use std::fs;
use std::path::{Path, PathBuf};

use ringmq::persist::record::FrameError;
use ringmq::persist::{
    Corruption, Log, LogOffset, LogOptions, PersistError, RecordType, TornCause,
};

const SEGMENT_BYTES: u64 = 4096;
const SEGMENT_NAME: &str = "00000000000000000000.seg";
const CASES: [&str; 5] = [
    "valid",
    "torn_tail",
    "bad_crc",
    "bad_magic",
    "unsupported_version",
];

fn options() -> LogOptions {
    LogOptions {
        segment_bytes: SEGMENT_BYTES,
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/segments")
}

/// The records of the valid segment: (type, body).
fn records() -> Vec<(u8, Vec<u8>)> {
    vec![
        (0x01, b"session/alpha".to_vec()),
        (0x02, b"hello, world".to_vec()),
        (0x03, Vec::new()),
        (0x7F, (0..200u8).collect()),
    ]
}

/// Offsets of [`records`]: each frame is 9 header bytes plus its body.
const OFFSETS: [u64; 4] = [0, 22, 43, 52];
/// Where the valid records end: 52 + 9 + 200.
const VALID_END: u64 = 261;

fn append_all(log: &mut Log, records: &[(u8, Vec<u8>)]) {
    for (record_type, body) in records {
        let record_type = RecordType::new(*record_type).expect("non-zero type");
        log.append(record_type, body).expect("fits");
    }
    log.flush_blocking().expect("flush");
}

fn segment_bytes(dir: &Path) -> Vec<u8> {
    fs::read(dir.join(SEGMENT_NAME)).expect("read segment")
}

/// Writes every golden case into `root/<case>/`.
fn generate(root: &Path) {
    for case in CASES {
        let dir = root.join(case);
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("clear case");
        }
        let (mut log, _) = Log::open(&dir, options()).expect("new log");
        append_all(&mut log, &records());
        if case == "torn_tail" {
            let fifth: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8 + 1).collect();
            append_all(&mut log, &[(0x04, fifth)]);
        }
        drop(log);
        let mut bytes = segment_bytes(&dir);
        match case {
            "torn_tail" => {
                let cut = 64 + VALID_END as usize + 100;
                bytes[cut..].fill(0);
            }
            "bad_crc" => bytes[64 + OFFSETS[1] as usize + 9 + 4] ^= 0x01,
            "bad_magic" => bytes[0] = b'X',
            "unsupported_version" => {
                bytes[8] = 2;
                let crc = crc32c::crc32c(&bytes[..60]);
                bytes[60..64].copy_from_slice(&crc.to_le_bytes());
            }
            _ => {}
        }
        fs::write(dir.join(SEGMENT_NAME), &bytes).expect("write case");
    }
}

/// A scratch copy of one golden case (recovery writes to the files it repairs).
fn copy_case(case: &str) -> tempfile::TempDir {
    let scratch = tempfile::tempdir().expect("tempdir");
    let from = golden_dir().join(case).join(SEGMENT_NAME);
    fs::copy(&from, scratch.path().join(SEGMENT_NAME)).expect("copy golden file");
    scratch
}

#[test]
#[ignore = "rewrites tests/data/segments; run by hand after a format change"]
fn regenerate_golden_segments() {
    generate(&golden_dir());
}

#[test]
fn golden_files_match_the_generator() {
    let scratch = tempfile::tempdir().expect("tempdir");
    generate(scratch.path());
    for case in CASES {
        assert!(
            segment_bytes(&scratch.path().join(case)) == segment_bytes(&golden_dir().join(case)),
            "{case}: the format changed; see this file's doc to regenerate"
        );
    }
}

#[test]
fn valid_segment_has_the_documented_header() {
    let bytes = segment_bytes(&golden_dir().join("valid"));
    assert_eq!(bytes.len(), 4096);
    assert_eq!(
        &bytes[..16],
        &[0x89, 0x52, 0x49, 0x4E, 0x47, 0x4D, 0x51, 0x0A, 1, 0, 64, 0, 0, 0, 0, 0]
    );
    assert_eq!(&bytes[16..24], &[0; 8], "base offset 0");
    assert_eq!(&bytes[24..32], &[0, 0x10, 0, 0, 0, 0, 0, 0], "size 4096");
    assert!(bytes[32..60].iter().all(|&b| b == 0), "reserved");
    assert_eq!(&bytes[60..64], &crc32c::crc32c(&bytes[..60]).to_le_bytes());
    // First frame: len 13, crc, type 1, "session/alpha".
    assert_eq!(&bytes[64..68], &[13, 0, 0, 0]);
    let mut covered = vec![13, 0, 0, 0, 1];
    covered.extend_from_slice(b"session/alpha");
    assert_eq!(&bytes[68..72], &crc32c::crc32c(&covered).to_le_bytes());
    assert_eq!(bytes[72], 1);
    assert_eq!(&bytes[73..86], b"session/alpha");
    assert!(bytes[64 + VALID_END as usize..].iter().all(|&b| b == 0));
}

#[test]
fn valid_segment_recovers_every_record() {
    let scratch = copy_case("valid");
    let (log, report) = Log::open(scratch.path(), options()).expect("recover");
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.records, 4);
    let got: Vec<_> = log
        .records()
        .map(|r| (r.offset.get(), r.record_type.get(), r.body.to_vec()))
        .collect();
    let expected: Vec<_> = OFFSETS
        .iter()
        .zip(records())
        .map(|(&offset, (ty, body))| (offset, ty, body))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(log.end_offset(), LogOffset::new(VALID_END));
    assert_eq!(
        segment_bytes(scratch.path()),
        segment_bytes(&golden_dir().join("valid")),
        "recovery of a clean segment changes nothing"
    );
}

#[test]
fn torn_tail_is_cut_saved_and_reported() {
    let scratch = copy_case("torn_tail");
    let path = scratch.path().join(SEGMENT_NAME);
    let (mut log, report) = Log::open(scratch.path(), options()).expect("recover");
    let torn = report.torn_tail.expect("a torn tail");
    assert_eq!(torn.path, path);
    assert_eq!(torn.offset, LogOffset::new(VALID_END));
    assert_eq!(torn.position, 64 + VALID_END);
    assert_eq!(torn.discarded_bytes, 100);
    // The cut record's header announces 300 bytes that are there (zeroes): a CRC mismatch
    // with nothing valid after it.
    assert!(
        matches!(torn.cause, TornCause::Frame(FrameError::CrcMismatch { .. })),
        "{:?}",
        torn.cause
    );
    let saved = fs::read(torn.saved_to.expect("saved")).expect("read saved tail");
    let golden = segment_bytes(&golden_dir().join("torn_tail"));
    let start = 64 + VALID_END as usize;
    assert_eq!(saved, &golden[start..start + 100]);
    assert_eq!(report.records, 4);
    assert_eq!(log.records().count(), 4);
    // The cut bytes are zero now, and the log appends where the valid records end.
    assert_eq!(
        segment_bytes(scratch.path()),
        segment_bytes(&golden_dir().join("valid"))
    );
    let offset = log
        .append(RecordType::new(9).expect("type"), b"after")
        .expect("append");
    assert_eq!(offset, LogOffset::new(VALID_END));
    drop(log);
    let (_, again) = Log::open(scratch.path(), options()).expect("recover again");
    assert_eq!(again.torn_tail, None);
    assert_eq!(again.records, 5);
}

fn assert_names_file(error: &PersistError, path: &Path) {
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(".seg.corrupt"),
        "says how to move it aside: {message}"
    );
}

#[test]
fn bad_crc_stops_recovery_naming_the_file_and_offset() {
    let scratch = copy_case("bad_crc");
    let path = scratch.path().join(SEGMENT_NAME);
    let error = Log::open(scratch.path(), options()).expect_err("corrupt");
    match &error {
        PersistError::Corrupt {
            path: at,
            offset,
            position,
            cause: Corruption::Frame(_),
        } => {
            assert_eq!(at, &path);
            assert_eq!(*offset, LogOffset::new(OFFSETS[1]));
            assert_eq!(*position, 64 + OFFSETS[1]);
        }
        other => panic!("expected a CRC error, got {other:?}"),
    }
    assert!(error.to_string().contains("CRC mismatch"), "{error}");
    assert!(error.to_string().contains("log offset 22"), "{error}");
    assert_names_file(&error, &path);
    assert_eq!(
        segment_bytes(scratch.path()),
        segment_bytes(&golden_dir().join("bad_crc")),
        "a refused segment is left as it was"
    );
}

#[test]
fn bad_magic_stops_recovery_naming_the_file() {
    let scratch = copy_case("bad_magic");
    let path = scratch.path().join(SEGMENT_NAME);
    let error = Log::open(scratch.path(), options()).expect_err("bad magic");
    assert!(
        matches!(&error, PersistError::BadMagic { path: at, found } if *at == path && found[0] == b'X'),
        "{error:?}"
    );
    assert_names_file(&error, &path);
}

#[test]
fn unsupported_version_stops_recovery_naming_the_file() {
    let scratch = copy_case("unsupported_version");
    let path = scratch.path().join(SEGMENT_NAME);
    let error = Log::open(scratch.path(), options()).expect_err("version 2");
    assert!(
        matches!(
            &error,
            PersistError::UnsupportedVersion { path: at, found: 2, supported: 1 } if *at == path
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("version 2"), "{error}");
    assert_names_file(&error, &path);
}

#[test]
fn a_refused_segment_moved_aside_lets_recovery_start() {
    for case in ["bad_crc", "bad_magic", "unsupported_version"] {
        let scratch = copy_case(case);
        let path = scratch.path().join(SEGMENT_NAME);
        let aside = scratch.path().join(format!("{SEGMENT_NAME}.corrupt"));
        fs::rename(&path, &aside).expect("move aside");
        let (log, report) = Log::open(scratch.path(), options()).expect("starts");
        assert_eq!(report.quarantined, vec![aside.clone()], "{case}");
        assert_eq!(log.records().count(), 0);
        assert!(aside.exists(), "the moved-aside file is kept");
    }
}

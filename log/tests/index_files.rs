//! A partition's index files as the disk may hold them after a clean shutdown: taken as they
//! are when they look sane, rebuilt when they do not.

use bytes::Bytes;
use sluice_log::{BatchHeader, Compression, Log, LogConfig, Record, RecordBatch};

const NOW_MS: i64 = 1_700_000_000_000;
const SEGMENT: &str = "00000000000000000000";

fn config() -> LogConfig {
    LogConfig { index_interval_bytes: 64, ..LogConfig::default() }
}

/// Twelve batches of two records, batch `i` at timestamps `NOW + 10 i` and `NOW + 10 i + 3`;
/// returns the segment file's bytes.
fn sound_segment() -> Vec<u8> {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("t-0");
    let mut log = Log::open(&dir, config(), NOW_MS).expect("log");
    for i in 0..12i64 {
        let ts = NOW_MS + i * 10;
        let header = BatchHeader::new(Compression::None, ts, ts + 3);
        let records = (0..2)
            .map(|r| Record {
                offset_delta: r,
                timestamp_delta: i64::from(r) * 3,
                key: None,
                value: Some(Bytes::from(format!("value-{i}-{r}"))),
                headers: vec![],
            })
            .collect();
        let mut bytes = RecordBatch { header, records }.encode();
        log.append(&mut bytes, NOW_MS).expect("append");
    }
    log.flush().expect("flush");
    std::fs::read(dir.join(format!("{SEGMENT}.log"))).expect("segment")
}

/// Found by the `log_dir_files` fuzz target: an empty offset index and a time index whose
/// one entry has a timestamp below every batch's. Loading kept that entry and appended the
/// scanned batches' after it, and the lookup of batch 0's timestamp answered offset 22.
#[test]
fn a_time_index_entry_below_the_batches_timestamps_makes_the_segment_rebuild_its_indexes() {
    let segment = sound_segment();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("t-0");
    std::fs::create_dir(&dir).expect("dir");
    std::fs::write(dir.join(format!("{SEGMENT}.log")), &segment).expect("segment");
    std::fs::write(dir.join(format!("{SEGMENT}.index")), b"").expect("index");
    let entry = [0xff, 0xff, 0xff, 0x00, 0x1a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02];
    std::fs::write(dir.join(format!("{SEGMENT}.timeindex")), entry).expect("time index");
    let log = Log::open_with_recovery_point(&dir, config(), 24, NOW_MS).expect("open");
    let rebuilt = &log.recovery_report().rebuilt_indexes;
    assert!(
        rebuilt.iter().any(|(base, why)| *base == 0 && why.contains("time index")),
        "the indexes were rebuilt: {rebuilt:?}"
    );
    for i in 0..12i64 {
        let at = log.offset_for_timestamp(NOW_MS + i * 10 + 3).expect("lookup");
        assert_eq!(at, Some((2 * i + 1, NOW_MS + i * 10 + 3)), "batch {i}'s second record");
    }
}

//! Arbitrary bytes as the side files of a partition whose segment is sound: its offset index
//! (`.index`), time index (`.timeindex`) and `leader-epoch-checkpoint`, opened as after a
//! clean shutdown (the recovery point at the log end, so the indexes are taken as they are
//! if they look sane); and as a broker's offset checkpoint file
//! (`recovery-point-offset-checkpoint` and its kin).
//!
//! The input's first two bytes give the index's and the time index's lengths in 8- and
//! 12-byte entries; then come the index, the time index, and the epoch file (also read as the
//! offset checkpoint).
//!
//! Never panics. The log either refuses to open with a typed error or opens with the sound
//! segment's offsets: every batch reads back at its offset, every timestamp lookup answers,
//! and the epochs are in order. An offset checkpoint that reads writes back and reads the
//! same.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_log::batch::batches;
use sluice_log::{BatchHeader, Compression, Log, LogConfig, Record, RecordBatch};

mod scratch;

const NOW_MS: i64 = 1_700_000_000_000;
const SEGMENT: &str = "00000000000000000000";

fn config() -> LogConfig {
    // A small interval: the sound segment's indexes have several entries.
    LogConfig { index_interval_bytes: 64, ..LogConfig::default() }
}

/// The sound segment's bytes and its batches' (base offset, max timestamp): written once
/// through the log itself, two leader epochs, one idempotent producer.
fn sound() -> &'static (Vec<u8>, Vec<(i64, i64)>) {
    static SOUND: OnceLock<(Vec<u8>, Vec<(i64, i64)>)> = OnceLock::new();
    SOUND.get_or_init(|| {
        let root = scratch::scratch_dir();
        let dir = root.path().join("t-0");
        let mut log = Log::open(&dir, config(), NOW_MS).expect("a new log");
        for i in 0..12i32 {
            if i == 0 || i == 6 {
                log.assign_leader_epoch(i / 6 + 1).expect("epoch");
            }
            let ts = NOW_MS + i64::from(i) * 10;
            let mut header = BatchHeader::new(Compression::None, ts, ts + 3);
            header.producer_id = 42;
            header.producer_epoch = 0;
            header.base_sequence = i * 2;
            let records = (0..2)
                .map(|r| Record {
                    offset_delta: r,
                    timestamp_delta: i64::from(r) * 3,
                    key: Some(Bytes::from(format!("k{i}"))),
                    value: Some(Bytes::from(format!("value-{i}-{r}"))),
                    headers: vec![],
                })
                .collect();
            let mut bytes = RecordBatch { header, records }.encode();
            log.append(&mut bytes, NOW_MS).expect("append");
        }
        log.flush().expect("flush");
        let bytes = std::fs::read(dir.join(format!("{SEGMENT}.log"))).expect("segment");
        let found = batches(&bytes)
            .map(|b| b.expect("sound").header)
            .map(|h| (h.base_offset, h.max_timestamp))
            .collect();
        (bytes, found)
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (segment, found) = sound();
    let rest = &data[2..];
    let index_len = (usize::from(data[0]) * 8).min(rest.len());
    let (index, rest) = rest.split_at(index_len);
    let time_len = (usize::from(data[1]) * 12).min(rest.len());
    let (times, epochs) = rest.split_at(time_len);

    let root = scratch::scratch_dir();
    let dir = root.path().join("t-0");
    std::fs::create_dir(&dir).expect("partition directory");
    std::fs::write(dir.join(format!("{SEGMENT}.log")), segment).expect("segment");
    std::fs::write(dir.join(format!("{SEGMENT}.index")), index).expect("index");
    std::fs::write(dir.join(format!("{SEGMENT}.timeindex")), times).expect("time index");
    std::fs::write(dir.join("leader-epoch-checkpoint"), epochs).expect("epochs");
    let end = found.last().map_or(0, |&(base, _)| base + 2);

    if let Ok(log) = Log::open_with_recovery_point(&dir, config(), end, NOW_MS) {
        assert_eq!(log.log_end_offset(), end, "a sound segment lost or gained offsets");
        for &(base, max_timestamp) in found {
            let r = log.read(base, 1 << 20).unwrap_or_else(|e| panic!("offset {base} does not read: {e}"));
            let first = batches(&r.records).next().and_then(Result::ok).map(|b| b.header.base_offset);
            assert_eq!(first, Some(base), "offset {base} read back another batch");
            let at = log
                .offset_for_timestamp(max_timestamp)
                .unwrap_or_else(|e| panic!("timestamp {max_timestamp} does not look up: {e}"));
            assert!(at.is_some_and(|(o, _)| o <= base + 1), "timestamp {max_timestamp} found {at:?}");
        }
        let entries = log.epoch_entries();
        assert!(
            entries.windows(2).all(|w| w[0].epoch < w[1].epoch && w[0].start_offset <= w[1].start_offset),
            "epochs out of order: {entries:?}"
        );
        assert!(entries.iter().all(|e| e.start_offset <= end), "an epoch starts past the log end: {entries:?}");
    }

    let checkpoint = dir.join("recovery-point-offset-checkpoint");
    std::fs::write(&checkpoint, epochs).expect("checkpoint");
    if let Ok(entries) = sluice_log::checkpoint::read(&checkpoint) {
        if sluice_log::checkpoint::write(&checkpoint, &entries).is_ok() {
            let again = sluice_log::checkpoint::read(&checkpoint).expect("a written checkpoint reads");
            assert_eq!(again, entries, "a checkpoint changed on its way round");
        }
    }
});

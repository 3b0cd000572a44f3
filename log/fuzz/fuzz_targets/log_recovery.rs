//! Arbitrary bytes as the only segment file of a partition, `t-0/00000000000000000000.log`,
//! with no indexes and no checkpoint — as given, and again with the batches' CRCs
//! recomputed so that recovery's offset and length checks are reached (see `fix_crc.rs`).
//!
//! `Log::open` must recover the file (cutting at the first bad batch) without panicking or
//! refusing, and everything read back from the recovered log must be whole batches that
//! pass their CRC, in offset order, up to the log end, and be a prefix of the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_log::batch::batches;
use sluice_log::{Log, LogConfig};

#[path = "fix_crc.rs"]
mod fix_crc;
mod scratch;

const NOW_MS: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut fixed = data.to_vec();
    if fix_crc::fix_crcs(&mut fixed) {
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let root = scratch::scratch_dir();
    let dir = root.path().join("t-0");
    std::fs::create_dir(&dir).expect("partition directory");
    std::fs::write(dir.join("00000000000000000000.log"), data).expect("segment file");

    // A small index interval, so the rebuilt indexes have entries for reads to go through.
    let config = LogConfig { index_interval_bytes: 128, ..LogConfig::default() };
    let log = Log::open(&dir, config, NOW_MS).expect("a damaged segment is recovered, not refused");

    let mut read_back = Vec::new();
    let mut offset = log.log_start_offset();
    let mut prev_last = None;
    // Every read that returns anything returns a batch of at least 61 bytes.
    for _ in 0..=data.len() / 61 + 1 {
        let r = log.read(offset, 4096).expect("a recovered log reads back");
        if r.records.is_empty() {
            break;
        }
        for item in batches(&r.records) {
            let view = item.expect("every batch read from a recovered log passes its CRC");
            assert!(prev_last.is_none_or(|p| view.header.base_offset > p), "batches out of offset order");
            prev_last = Some(view.last_offset());
        }
        assert!(r.next_offset > offset, "a read that returned batches did not advance");
        read_back.extend_from_slice(&r.records);
        offset = r.next_offset;
    }
    assert_eq!(offset, log.log_end_offset(), "reading stopped before the log end");
    assert!(data.starts_with(&read_back), "what was read back is not a prefix of the file");
}

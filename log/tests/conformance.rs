//! The conformance suite for the partition log (issue 5, "Shown by tests"): every behaviour
//! a broker relies on, driven with a fake clock (plain `now_ms` values) in self-deleting
//! temporary directories. References are to Kafka's behaviour, which the log copies.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use common::{all_batches, append, Fixture, T0};
use sluice_log::batch::batches;
use sluice_log::checkpoint::RECOVERY_POINT_CHECKPOINT;
use sluice_log::{
    BatchError, BatchHeader, BatchView, Compression, Log, LogConfig, LogError, Record, RecordBatch,
};

/// Small segments and a small index interval, so a few batches exercise rolls and indexes.
fn small() -> LogConfig {
    LogConfig { segment_bytes: 2000, index_interval_bytes: 300, retention_ms: None, ..LogConfig::default() }
}

/// A batch of records with the given timestamps; values say the record's position.
fn batch_at(timestamps: &[i64], value_len: usize, codec: Compression) -> Vec<u8> {
    let records = timestamps
        .iter()
        .enumerate()
        .map(|(i, ts)| Record {
            offset_delta: i as i32,
            timestamp_delta: ts - timestamps[0],
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("record-{i}-{}", "x".repeat(value_len)))),
            headers: vec![],
        })
        .collect();
    RecordBatch {
        header: BatchHeader::new(codec, timestamps[0], timestamps.iter().copied().max().unwrap_or(-1)),
        records,
    }
    .encode()
}

/// `n` records with timestamps `ts, ts+1, ...`, about `n * (value_len + 20)` bytes.
fn batch(n: usize, ts: i64) -> Vec<u8> {
    batch_at(&(0..n as i64).map(|i| ts + i).collect::<Vec<_>>(), 100, Compression::None)
}

fn bases(bytes: &[u8]) -> Vec<i64> {
    batches(bytes).map(|b| b.expect("valid batch").header.base_offset).collect()
}

#[test]
fn append_assigns_consecutive_offsets_and_reads_return_the_stored_bytes() {
    let f = Fixture::new();
    let mut log = f.open(&LogConfig::default(), T0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let (b0, l0, bytes0) = append(&mut log, batch(3, T0), T0);
    let (b1, l1, bytes1) = append(&mut log, batch(1, T0 + 5), T0);
    let (b2, l2, bytes2) = append(&mut log, batch(5, T0 + 9), T0);
    assert_eq!([(b0, l0), (b1, l1), (b2, l2)], [(0, 2), (3, 3), (4, 8)]);
    assert_eq!(log.log_end_offset(), 9);

    // --- the base offset was rewritten in the caller's buffer, and the CRC still holds
    assert_eq!(BatchView::parse(&bytes2).expect("still valid").header.base_offset, 4);
    let r = log.read(0, usize::MAX).expect("read");
    assert_eq!(r.records, [bytes0, bytes1, bytes2].concat());
    assert_eq!((r.next_offset, r.log_start_offset, r.log_end_offset), (9, 0, 9));

    // --- at the end: nothing yet; past it: out of range
    let at_end = log.read(9, 1000).expect("read at end");
    assert!(at_end.records.is_empty());
    assert_eq!(at_end.next_offset, 9);
    match log.read(10, 1000) {
        Err(LogError::OffsetOutOfRange { offset: 10, log_start_offset: 0, log_end_offset: 9 }) => {}
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert_eq!(f.files("log"), ["00000000000000000000.log"]);
}

#[test]
fn a_read_from_the_middle_of_a_batch_returns_that_whole_batch() {
    // Kafka returns the batch holding the fetch offset; the consumer skips what it has.
    let f = Fixture::new();
    let mut log = f.open(&small(), T0);
    for i in 0..12 {
        append(&mut log, batch(4, T0 + i), T0);
    }
    assert!(log.segment_base_offsets().len() > 2, "several segments: {:?}", log.segment_base_offsets());
    for offset in 0..log.log_end_offset() {
        let r = log.read(offset, 1).expect("read");
        let first = BatchView::parse(&r.records).expect("one batch");
        assert_eq!(first.header.base_offset, offset - offset % 4, "offset {offset}");
        assert_eq!(r.next_offset, first.last_offset() + 1);
    }
}

#[test]
fn max_bytes_bounds_a_read_but_the_first_batch_always_comes_back() {
    let f = Fixture::new();
    let mut log = f.open(&LogConfig::default(), T0);
    let sizes: Vec<usize> = (0..6).map(|i| append(&mut log, batch(2, T0 + i), T0).2.len()).collect();
    let s = sizes[0];
    assert!(sizes.iter().all(|&x| x == s));
    assert_eq!(bases(&log.read(0, 2 * s + s / 2).expect("read").records), [0, 2]);
    assert_eq!(bases(&log.read(0, 3 * s).expect("read").records), [0, 2, 4]);
    assert_eq!(bases(&log.read(3, 3 * s - 1).expect("read").records), [2, 4]);
    // Smaller than one batch (even zero): that batch anyway, so a consumer is never stuck.
    assert_eq!(bases(&log.read(0, 1).expect("read").records), [0]);
    assert_eq!(bases(&log.read(5, 0).expect("read").records), [4]);
}

#[test]
fn segments_roll_by_size_and_reads_cross_segment_boundaries() {
    let f = Fixture::new();
    let config = small();
    let mut log = f.open(&config, T0);
    let mut stored = Vec::new();
    for i in 0..20 {
        let (_, _, bytes) = append(&mut log, batch(3, T0 + i), T0);
        stored.push(bytes);
    }
    let s = stored[0].len() as u64;
    let per_segment = config.segment_bytes / s;
    // --- a segment holds as many batches as fit in log.segment.bytes, then a new one starts
    let expected: Vec<i64> = (0..20).step_by(per_segment as usize).map(|i| i as i64 * 3).collect();
    assert_eq!(log.segment_base_offsets(), expected);
    let expected_files: Vec<String> = expected.iter().map(|b| format!("{b:020}.log")).collect();
    assert_eq!(f.files("log"), expected_files);
    assert_eq!(f.files("index").len(), expected.len());
    assert_eq!(f.files("timeindex").len(), expected.len());
    for b in &expected {
        assert!(fs::metadata(f.file(*b, "log")).expect("segment").len() <= config.segment_bytes);
    }

    // --- one read spans every segment; bounded reads continue where the last one stopped
    assert_eq!(log.read(0, usize::MAX).expect("read").records, stored.concat());
    let mut offset = 1;
    let mut seen = Vec::new();
    while offset < log.log_end_offset() {
        let r = log.read(offset, (s * 5 / 2) as usize).expect("read");
        let got = bases(&r.records);
        assert!(!got.is_empty() && got.len() <= 2);
        seen.extend(got);
        offset = r.next_offset;
    }
    assert_eq!(seen, (0..20).map(|i| i * 3).collect::<Vec<i64>>());
}

#[test]
fn segments_roll_by_time_measured_from_the_first_batch_timestamp() {
    // Kafka: roll when (new batch's max timestamp - first batch's max timestamp) > roll.ms.
    let f = Fixture::new();
    let config = LogConfig { roll_ms: 1000, ..LogConfig::default() };
    let mut log = f.open(&config, T0);
    assert!(!log.append(&mut batch(1, T0), T0).expect("append").rolled);
    assert!(!log.append(&mut batch(1, T0 + 1000), T0).expect("append").rolled, "exactly roll.ms: no roll");
    assert_eq!(log.segment_base_offsets(), [0]);
    assert!(log.append(&mut batch(1, T0 + 1001), T0).expect("append").rolled);
    assert_eq!(log.segment_base_offsets(), [0, 2]);

    // --- when the first batch has no timestamp, the age counts from the segment's
    // creation, by the fake clock
    let f = Fixture::new();
    let mut log = f.open(&config, T0);
    let untimed = || batch_at(&[-1], 10, Compression::None);
    log.append(&mut untimed(), T0 + 10).expect("append");
    log.append(&mut untimed(), T0 + 1000).expect("append");
    assert_eq!(log.segment_base_offsets(), [0]);
    assert!(log.append(&mut untimed(), T0 + 1001).expect("append").rolled, "created at T0");
    assert_eq!(log.segment_base_offsets(), [0, 2]);
    log.append(&mut untimed(), T0 + 2001).expect("append");
    assert_eq!(log.segment_base_offsets(), [0, 2]);
    log.append(&mut untimed(), T0 + 2002).expect("append");
    assert_eq!(log.segment_base_offsets(), [0, 2, 4], "created at T0+1001");
}

#[test]
fn offset_index_entries_are_sparse_and_point_at_batches() {
    let f = Fixture::new();
    let config = LogConfig { index_interval_bytes: 1000, ..LogConfig::default() };
    let mut log = f.open(&config, T0);
    let mut positions = BTreeMap::new();
    let mut pos = 0u32;
    for i in 0..40 {
        let (_, last, bytes) = append(&mut log, batch(2, T0 + i), T0);
        positions.insert(pos, last);
        pos += bytes.len() as u32;
    }
    log.close().expect("close");
    let index = fs::read(f.file(0, "index")).expect("index");
    assert_eq!(index.len() % 8, 0);
    let entries: Vec<(u32, u32)> = index
        .chunks(8)
        .map(|c| (u32::from_be_bytes([c[0], c[1], c[2], c[3]]), u32::from_be_bytes([c[4], c[5], c[6], c[7]])))
        .collect();
    // An entry once more than 1000 bytes were appended since the last one: with ~300-byte
    // batches, one every fourth batch.
    let batch_len = pos as usize / 40;
    assert!(entries.len() <= pos as usize / 1000, "{} entries for {pos} bytes", entries.len());
    assert!(
        entries.len() >= pos as usize / (1000 + 2 * batch_len),
        "{} entries for {pos} bytes",
        entries.len()
    );
    for (rel, position) in &entries {
        assert_eq!(
            positions.get(position),
            Some(&i64::from(*rel)),
            "entry ({rel}, {position}) names a batch's last offset"
        );
    }
    assert!(entries.windows(2).all(|w| w[1].1 - w[0].1 > 1000));
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_it() {
    // Kafka's ListOffsets by timestamp: the earliest offset whose timestamp is >= target.
    // Timestamps here go backwards sometimes (CreateTime, several producers).
    let f = Fixture::new();
    let mut log = f.open(&small(), T0);
    let codecs =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    let mut x = 7u64;
    let mut records = Vec::new(); // (offset, timestamp), in offset order
    for i in 0..40 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let base = T0 + i * 100 - (x >> 60) as i64 * 40;
        let ts: Vec<i64> = (0..3).map(|j| base + [0, 30, 10][j]).collect();
        let first = log.log_end_offset();
        log.append(&mut batch_at(&ts, 40, codecs[i as usize % 5]), T0).expect("append");
        records.extend(ts.iter().enumerate().map(|(j, t)| (first + j as i64, *t)));
    }
    assert!(log.segment_base_offsets().len() > 2);
    let max = records.iter().map(|r| r.1).max().expect("records");
    for target in (T0 - 700..max + 50).step_by(7) {
        let expected = records.iter().find(|(_, t)| *t >= target).copied();
        assert_eq!(log.offset_for_timestamp(target).expect("lookup"), expected, "target {target}");
    }
    assert_eq!(log.offset_for_timestamp(max + 1).expect("lookup"), None);
}

#[test]
fn retention_by_time_deletes_whole_old_segments_but_never_the_active_one() {
    let f = Fixture::new();
    let config = LogConfig { retention_ms: Some(10_000), ..small() };
    let mut log = f.open(&config, T0);
    for i in 0..20 {
        // Batch i carries timestamps around T0 + i * 1000.
        append(&mut log, batch(3, T0 + i * 1000), T0 + i * 1000);
    }
    let segments = log.segment_base_offsets();
    assert!(segments.len() >= 4, "{segments:?}");
    let second = segments[1];
    // The first segment's newest record: the batch before the second segment's first.
    let newest_in_first = T0 + (second / 3 - 1) * 1000 + 2;

    // --- exactly retention.ms old: kept (Kafka deletes when strictly older)
    let report = log.tick(newest_in_first + 10_000).expect("tick");
    assert!(report.deleted_segments.is_empty());
    let report = log.tick(newest_in_first + 10_001).expect("tick");
    assert_eq!(report.deleted_segments, [0]);
    assert_eq!(log.log_start_offset(), second);
    assert!(!f.file(0, "log").exists() && !f.file(0, "index").exists() && !f.file(0, "timeindex").exists());

    // --- a read of the deleted range says where the log now starts
    match log.read(0, 1000) {
        Err(LogError::OffsetOutOfRange { offset: 0, log_start_offset, .. }) => {
            assert_eq!(log_start_offset, second)
        }
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert_eq!(bases(&log.read(second, 1).expect("read").records), [second]);

    // --- far in the future everything is expired, but the active segment stays
    let active = *log.segment_base_offsets().last().expect("active");
    log.tick(T0 + 1_000_000_000).expect("tick");
    assert_eq!(log.segment_base_offsets(), [active]);
    assert_eq!(log.log_start_offset(), active);
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(bases(&log.read(active, usize::MAX).expect("read").records).last(), Some(&57));
}

#[test]
fn retention_judges_segments_without_timestamps_by_their_file_time() {
    // Kafka falls back to the segment file's modification time when no record has a
    // timestamp; without that, such segments would look infinitely old.
    let f = Fixture::new();
    let config = LogConfig { retention_ms: Some(60_000), roll_ms: 1, ..small() };
    let mut log = f.open(&config, T0);
    for i in 0..3 {
        log.append(&mut batch_at(&[-1], 10, Compression::None), T0 + i * 10).expect("append");
    }
    assert_eq!(log.segment_base_offsets().len(), 3, "rolled by creation time");
    let file_ms = fs::metadata(f.file(0, "log"))
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    assert!(
        log.tick_with(file_ms + 3_600_000, false).expect("tick").deleted_segments.is_empty(),
        "a tick without retention deletes nothing, however old"
    );
    assert!(log.tick(file_ms + 60_000).expect("tick").deleted_segments.is_empty());
    assert_eq!(log.tick(file_ms + 3_600_000).expect("tick").deleted_segments, [0, 1]);
}

#[test]
fn retention_by_size_deletes_oldest_segments_while_a_whole_one_is_over() {
    let f = Fixture::new();
    let retention = 5000;
    let config = LogConfig { retention_bytes: Some(retention), ..small() };
    let mut log = f.open(&config, T0);
    for i in 0..30 {
        append(&mut log, batch(3, T0 + i), T0);
    }
    let sizes: Vec<(i64, u64)> = log
        .segment_base_offsets()
        .into_iter()
        .map(|b| (b, fs::metadata(f.file(b, "log")).expect("segment").len()))
        .collect();
    // Kafka: with diff = size - retention.bytes, delete the oldest while diff >= its size.
    let mut diff = sizes.iter().map(|s| s.1).sum::<u64>() as i64 - retention as i64;
    let mut expect_deleted = Vec::new();
    for (base, size) in &sizes[..sizes.len() - 1] {
        if diff < *size as i64 {
            break;
        }
        diff -= *size as i64;
        expect_deleted.push(*base);
    }
    assert!(expect_deleted.len() >= 2, "{sizes:?}");
    let report = log.tick(T0).expect("tick");
    assert_eq!(report.deleted_segments, expect_deleted);
    assert!(log.size_bytes() >= retention && log.size_bytes() - sizes[expect_deleted.len()].1 < retention);
    assert!(log.tick(T0).expect("tick again").deleted_segments.is_empty());
    assert_eq!(log.log_start_offset(), sizes[expect_deleted.len()].0);
}

#[test]
fn truncate_to_cuts_at_the_start_of_the_batch_holding_the_offset() {
    let f = Fixture::new();
    let mut log = f.open(&small(), T0);
    for i in 0..20 {
        append(&mut log, batch(4, T0 + i), T0);
    }
    let segments = log.segment_base_offsets();
    assert!(segments.len() >= 4);
    let (keep, later) = (segments[1], segments[2]);

    // --- inside a batch of the second segment: the log ends at that batch's base offset
    let target = keep + 4 + 2;
    log.truncate_to(target, T0).expect("truncate");
    assert_eq!(log.log_end_offset(), keep + 4);
    assert_eq!(log.segment_base_offsets(), [segments[0], keep]);
    assert!(!f.file(later, "log").exists() && !f.file(later, "index").exists());
    assert_eq!(all_batches(&log).last().map(|b| b.1), Some(keep + 3));
    assert_eq!(
        fs::metadata(f.file(keep, "log")).expect("segment").len(),
        log.size_bytes() - fs::metadata(f.file(0, "log")).expect("first").len()
    );
    assert!(log.offset_for_timestamp(T0 + 19).expect("lookup").is_none(), "the cut records are gone");

    // --- appends continue from there, with index entries as if nothing had happened
    let (b, _, _) = append(&mut log, batch(4, T0 + 100), T0);
    assert_eq!(b, keep + 4);
    // --- at a batch boundary: that batch goes, the one before stays
    log.truncate_to(keep + 4, T0).expect("truncate at boundary");
    assert_eq!(log.log_end_offset(), keep + 4);
    // --- at or past the end: nothing happens
    log.truncate_to(keep + 4, T0).expect("no-op");
    log.truncate_to(1000, T0).expect("no-op");
    assert_eq!(log.log_end_offset(), keep + 4);

    // --- reopening gives the same log
    let before = all_batches(&log);
    log.close().expect("close");
    let mut log = f.open(&small(), T0);
    assert_eq!(all_batches(&log), before);

    // --- to a segment's base offset: that segment empties but stays as the active one
    log.truncate_to(keep, T0).expect("truncate to base");
    assert_eq!((log.segment_base_offsets(), log.log_end_offset()), (vec![0, keep], keep));
    assert_eq!(fs::metadata(f.file(keep, "log")).expect("segment").len(), 0);

    // --- below the log start: emptied and restarted there
    log.close().expect("close");
    let mut log = Log::open(f.dir(), LogConfig { retention_ms: Some(0), ..small() }, T0).expect("open");
    append(&mut log, batch(1, T0), T0);
    log.tick(T0 + 10).expect("tick");
    let start = log.log_start_offset();
    assert!(start > 0);
    log.truncate_to(start - 2, T0).expect("truncate below start");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (start - 2, start - 2));
    assert_eq!(f.files("log"), [format!("{:020}.log", start - 2)]);
}

#[test]
fn reopening_after_a_clean_close_gives_identical_reads() {
    let f = Fixture::new();
    let mut log = f.open(&small(), T0);
    let codecs =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    for i in 0..30 {
        log.append(&mut batch_at(&[T0 + i * 10, T0 + i * 10 + 3], 60, codecs[i as usize % 5]), T0)
            .expect("append");
    }
    let reads = |log: &Log| -> Vec<Bytes> {
        (log.log_start_offset()..=log.log_end_offset())
            .map(|o| log.read(o, 700).expect("read").records)
            .collect()
    };
    let lookups = |log: &Log| -> Vec<Option<(i64, i64)>> {
        (T0 - 5..T0 + 310).map(|t| log.offset_for_timestamp(t).expect("lookup")).collect()
    };
    let (before_reads, before_lookups) = (reads(&log), lookups(&log));
    let (segments, end) = (log.segment_base_offsets(), log.log_end_offset());
    log.close().expect("close");

    // --- without a checkpoint everything is scanned; with one, nothing is
    for with_checkpoint in [false, true] {
        let mut log = f.open(&small(), T0);
        assert_eq!((log.segment_base_offsets(), log.log_end_offset()), (segments.clone(), end));
        assert_eq!(reads(&log), before_reads);
        assert_eq!(lookups(&log), before_lookups);
        let report = log.recovery_report();
        assert!(report.truncation.is_none() && report.rebuilt_indexes.is_empty(), "{report:?}");
        if with_checkpoint {
            assert_eq!((report.loaded_segments, report.recovered_segments.len()), (segments.len(), 0));
        } else {
            assert_eq!(report.recovered_segments, segments);
        }
        log.flush().expect("flush");
        f.checkpoint(&log);
        log.close().expect("close");
    }
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt_byte_for_byte() {
    let f = Fixture::new();
    let mut log = f.open(&small(), T0);
    for i in 0..25 {
        append(&mut log, batch(2 + i as usize % 3, T0 + i * 7), T0);
    }
    let segments = log.segment_base_offsets();
    log.flush().expect("flush");
    f.checkpoint(&log);
    let before = all_batches(&log);
    log.close().expect("close");
    let original: Vec<(Vec<u8>, Vec<u8>)> = segments
        .iter()
        .map(|b| {
            (fs::read(f.file(*b, "index")).expect("index"), fs::read(f.file(*b, "timeindex")).expect("ti"))
        })
        .collect();
    assert!(original.iter().any(|(i, t)| !i.is_empty() && !t.is_empty()));

    // --- every .index deleted, one .timeindex torn, one .index made to point past the log
    for b in &segments {
        fs::remove_file(f.file(*b, "index")).expect("delete index");
    }
    fs::write(f.file(segments[1], "timeindex"), [1, 2, 3, 4, 5]).expect("tear");
    let log = f.open(&small(), T0);
    let rebuilt: Vec<i64> = log.recovery_report().rebuilt_indexes.iter().map(|r| r.0).collect();
    assert_eq!(rebuilt, segments);
    assert_eq!(all_batches(&log), before);
    log.close().expect("close");
    for (b, (index, timeindex)) in segments.iter().zip(&original) {
        assert_eq!(&fs::read(f.file(*b, "index")).expect("index"), index, "segment {b}");
        assert_eq!(&fs::read(f.file(*b, "timeindex")).expect("ti"), timeindex, "segment {b}");
    }
    let mut bad = original[0].0.clone();
    bad[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    fs::write(f.file(segments[0], "index"), bad).expect("write");
    let log = f.open(&small(), T0);
    assert_eq!(log.recovery_report().rebuilt_indexes.iter().map(|r| r.0).collect::<Vec<_>>(), [segments[0]]);
    log.close().expect("close");
    assert_eq!(fs::read(f.file(segments[0], "index")).expect("index"), original[0].0);
}

#[test]
fn a_torn_or_corrupt_tail_is_cut_at_the_last_valid_batch() {
    type Tail = fn(&[u8]) -> Vec<u8>;
    let tails: [(&str, Tail); 3] = [
        ("half a batch", |b| b[..b.len() / 2].to_vec()),
        ("a header's worth of garbage", |_| vec![0xAB; 40]),
        ("a whole batch with a flipped bit", |b| {
            let mut b = b.to_vec();
            let last = b.len() - 1;
            b[last] ^= 0x10;
            b
        }),
    ];
    for (what, tail) in tails {
        for with_checkpoint in [false, true] {
            let f = Fixture::new();
            let mut log = f.open(&small(), T0);
            for i in 0..8 {
                append(&mut log, batch(3, T0 + i), T0);
            }
            let before = all_batches(&log);
            let (end, active) = (log.log_end_offset(), *log.segment_base_offsets().last().expect("active"));
            if with_checkpoint {
                log.flush().expect("flush");
                f.checkpoint(&log);
            }
            log.close().expect("close");

            // --- a crash left part of the next batch (or junk) after the last good one
            let mut next = batch(3, T0 + 50);
            sluice_log::batch::set_base_offset(&mut next, end);
            let junk = tail(&next);
            let path = f.file(active, "log");
            let mut content = fs::read(&path).expect("segment");
            let good_len = content.len() as u64;
            content.extend_from_slice(&junk);
            fs::write(&path, content).expect("write");

            let mut log = f.open(&small(), T0);
            let report = log.recovery_report().clone();
            let cut =
                report.truncation.as_ref().unwrap_or_else(|| panic!("{what}: no truncation: {report:?}"));
            assert_eq!(
                (cut.segment, cut.position, cut.bytes),
                (active, good_len, junk.len() as u64),
                "{what}"
            );
            assert_eq!(fs::metadata(&path).expect("segment").len(), good_len, "{what}");
            assert_eq!((all_batches(&log), log.log_end_offset()), (before.clone(), end), "{what}");

            // --- the log carries on, and the next open finds nothing to cut
            append(&mut log, batch(3, T0 + 60), T0);
            log.close().expect("close");
            let log = f.open(&small(), T0);
            assert!(log.recovery_report().truncation.is_none(), "{what}");
            assert_eq!(log.log_end_offset(), end + 3);
        }
    }
}

#[test]
fn damage_in_an_older_segment_cuts_there_and_deletes_every_later_segment() {
    let f = Fixture::new();
    let mut log = f.open(&small(), T0);
    for i in 0..20 {
        append(&mut log, batch(3, T0 + i), T0);
    }
    let segments = log.segment_base_offsets();
    assert!(segments.len() >= 4);
    log.close().expect("close");
    // Flip a byte in the records of the second batch of the second segment.
    let path = f.file(segments[1], "log");
    let mut content = fs::read(&path).expect("segment");
    let first_len = BatchView::parse(&content).expect("first batch").len();
    content[first_len + 70] ^= 1;
    fs::write(&path, content).expect("write");

    let log = f.open(&small(), T0);
    let report = log.recovery_report();
    let cut = report.truncation.as_ref().expect("a cut");
    assert_eq!((cut.segment, cut.position), (segments[1], first_len as u64));
    assert!(cut.reason.contains("CRC"), "{}", cut.reason);
    assert_eq!(report.deleted_segments, segments[2..]);
    assert_eq!(log.segment_base_offsets(), segments[..2]);
    assert_eq!(log.log_end_offset(), segments[1] + 3);
    for b in &segments[2..] {
        assert!(!f.file(*b, "log").exists() && !f.file(*b, "index").exists());
    }
}

#[test]
fn message_max_bytes_is_enforced_per_batch_and_nothing_is_written() {
    let f = Fixture::new();
    let config = LogConfig { max_message_bytes: 1000, ..LogConfig::default() };
    let mut log = f.open(&config, T0);
    let mut ok = batch(2, T0);
    assert!(ok.len() <= 1000);
    log.append(&mut ok, T0).expect("a batch under the limit");
    let mut big = batch(10, T0);
    let size = big.len() as u64;
    assert!(size > 1000);
    match log.append(&mut big, T0) {
        Err(LogError::RecordTooLarge { size: s, max: 1000 }) => assert_eq!(s, size),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // Two batches, the second too large: neither is written.
    let mut both = [batch(1, T0), batch(10, T0)].concat();
    assert!(matches!(log.append(&mut both, T0), Err(LogError::RecordTooLarge { .. })));
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(all_batches(&log).len(), 1);
    // A replica takes what its leader took, whatever its own limit (a topic config change
    // reaches brokers one by one).
    let mut replicated = batch(10, T0);
    sluice_log::batch::set_base_offset(&mut replicated, 2);
    log.append_replicated(&replicated, T0).expect("a follower's append is not size-checked");
    assert_eq!(log.log_end_offset(), 12);
    // And a leader's new limit applies from its next append.
    log.set_config(LogConfig { max_message_bytes: 1 << 20, ..config }).expect("a valid config");
    let mut now_fits = batch(10, T0);
    log.append(&mut now_fits, T0).expect("under the raised limit");
}

#[test]
fn malformed_appends_are_typed_errors_and_write_nothing() {
    let f = Fixture::new();
    let mut log = f.open(&LogConfig::default(), T0);
    let mut flipped = batch(2, T0);
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(
        log.append(&mut flipped, T0),
        Err(LogError::InvalidBatch(BatchError::CrcMismatch { .. }))
    ));
    let mut trailing = [batch(2, T0), vec![0, 0, 0]].concat();
    assert!(matches!(
        log.append(&mut trailing, T0),
        Err(LogError::InvalidBatch(BatchError::Truncated { .. }))
    ));
    assert!(matches!(log.append(&mut [], T0), Err(LogError::InconsistentBatch(_))));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));

    // --- several valid batches in one append get consecutive offsets
    let mut two = [batch(2, T0), batch(3, T0)].concat();
    let info = log.append(&mut two, T0).expect("two batches");
    assert_eq!((info.base_offset, info.last_offset, info.records), (0, 4, 5));
    assert_eq!(bases(&two), [0, 2]);
}

#[test]
fn replicated_appends_keep_their_offsets_and_must_continue_the_log() {
    let f = Fixture::new();
    let mut log = f.open(&LogConfig::default(), T0);
    let mut b = batch(3, T0);
    sluice_log::batch::set_base_offset(&mut b, 100);
    let info = log.append_replicated(&b, T0).expect("replicated");
    assert_eq!((info.base_offset, info.last_offset, log.log_end_offset()), (100, 102, 103));
    // A read below the first batch (still inside the log's range) gets the first batch.
    assert_eq!(bases(&log.read(10, 1).expect("read").records), [100]);
    let mut stale = batch(1, T0);
    sluice_log::batch::set_base_offset(&mut stale, 102);
    match log.append_replicated(&stale, T0) {
        Err(LogError::UnexpectedAppendOffset { first_offset: 102, log_end_offset: 103 }) => {}
        other => panic!("expected UnexpectedAppendOffset, got {other:?}"),
    }
}

#[test]
fn flushes_follow_the_flush_intervals_and_leave_the_rest_to_the_os() {
    // --- log.flush.interval.messages: fsync once that many records are unflushed
    let f = Fixture::new();
    let config = LogConfig { flush_interval_messages: Some(10), ..LogConfig::default() };
    let mut log = f.open(&config, T0);
    assert!(!log.append(&mut batch(4, T0), T0).expect("append").flushed);
    assert!(!log.append(&mut batch(4, T0), T0).expect("append").flushed);
    assert_eq!(log.recovery_point(), 0);
    assert!(log.append(&mut batch(4, T0), T0).expect("append").flushed);
    assert_eq!(log.recovery_point(), 12);

    // --- log.flush.interval.ms: once the oldest unflushed append is that old (append or tick)
    let f = Fixture::new();
    let config = LogConfig { flush_interval_ms: Some(100), ..LogConfig::default() };
    let mut log = f.open(&config, T0);
    log.append(&mut batch(2, T0), T0).expect("append");
    log.append(&mut batch(2, T0), T0 + 60).expect("append");
    assert!(!log.tick(T0 + 99).expect("tick").flushed);
    assert_eq!(log.recovery_point(), 0);
    assert!(log.tick(T0 + 100).expect("tick").flushed);
    assert_eq!(log.recovery_point(), 4);
    assert!(!log.tick(T0 + 1000).expect("tick").flushed, "nothing new to flush");
    log.append(&mut batch(1, T0), T0 + 1000).expect("append");
    assert!(log.append(&mut batch(1, T0), T0 + 1100).expect("append").flushed);
    assert_eq!(log.recovery_point(), 6);

    // --- by default only rolled segments are flushed (on the next tick), and explicit flush
    let f = Fixture::new();
    let mut log = f.open(&small(), T0);
    for i in 0..10 {
        append(&mut log, batch(3, T0 + i), T0);
    }
    assert_eq!(log.recovery_point(), 0);
    assert!(log.tick(T0 + 1_000_000).expect("tick").flushed);
    let active = *log.segment_base_offsets().last().expect("active");
    assert_eq!(log.recovery_point(), active);
    assert!(!log.tick(T0 + 2_000_000).expect("tick").flushed);
    log.flush().expect("flush");
    assert_eq!(log.recovery_point(), log.log_end_offset());
}

#[test]
fn open_takes_the_recovery_point_from_the_checkpoint_in_the_parent_directory() {
    let f = Fixture::new();
    let mut log = f.open(&small(), T0);
    for i in 0..12 {
        append(&mut log, batch(3, T0 + i), T0);
    }
    log.tick(T0).expect("tick"); // flushes the rolled segments only
    let (rolled_up_to, segments) = (log.recovery_point(), log.segment_base_offsets());
    f.checkpoint(&log);
    drop(log); // no close: the active segment is not known to be on disk
    let text = fs::read_to_string(f.log_dir().join(RECOVERY_POINT_CHECKPOINT)).expect("checkpoint");
    assert_eq!(text, format!("0\n1\norders 3 {rolled_up_to}\n"));
    let log = f.open(&small(), T0);
    let report = log.recovery_report();
    assert_eq!(report.recovery_point, rolled_up_to);
    assert_eq!(report.loaded_segments, segments.len() - 1);
    assert_eq!(report.recovered_segments, [*segments.last().expect("active")]);

    // --- a damaged checkpoint is reported and everything is scanned (always safe)
    drop(log);
    fs::write(f.log_dir().join(RECOVERY_POINT_CHECKPOINT), "garbage").expect("write");
    let log = f.open(&small(), T0);
    assert!(log.recovery_report().checkpoint_error.is_some());
    assert_eq!(log.recovery_report().recovered_segments, segments);
}

#[test]
fn leftovers_and_orphan_indexes_are_removed_and_unknown_files_kept() {
    let f = Fixture::new();
    let log = f.open(&LogConfig::default(), T0);
    drop(log);
    let dir = f.dir();
    for name in
        ["00000000000000000500.log.deleted", "00000000000000000700.index", "00000000000000000700.timeindex"]
    {
        fs::write(dir.join(name), b"x").expect("write");
    }
    fs::write(dir.join("leader-epoch-checkpoint"), b"0\n0\n").expect("write");
    let log = f.open(&LogConfig::default(), T0);
    assert_eq!(log.recovery_report().removed_files.len(), 3);
    assert!(dir.join("leader-epoch-checkpoint").exists());
    assert_eq!(f.files("index"), ["00000000000000000000.index"]);
}

#[test]
fn bad_directory_names_and_settings_are_typed_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    match Log::open(tmp.path().join("no_partition"), LogConfig::default(), T0) {
        Err(LogError::BadDirName(p)) => assert!(p.ends_with("no_partition")),
        other => panic!("expected BadDirName, got {other:?}"),
    }
    let bad = LogConfig { segment_bytes: 1, ..LogConfig::default() };
    match Log::open(tmp.path().join("t-0"), bad, T0) {
        Err(LogError::Config(e)) => assert_eq!(e.key, "log.segment.bytes"),
        other => panic!("expected a config error, got {other:?}"),
    }
    assert!(!Path::new(&tmp.path().join("t-0")).exists(), "nothing is created for a bad config");
}

#[test]
fn compression_type_recompresses_other_codecs_and_producer_keeps_them() {
    let values = |bytes: &[u8]| -> Vec<(i64, Compression, Vec<Option<Bytes>>)> {
        batches(bytes)
            .map(|b| {
                let b = b.expect("batch");
                let values = b.records(1 << 20).expect("decode").into_iter().map(|r| r.value).collect();
                (b.header.base_offset, b.header.compression, values)
            })
            .collect()
    };
    let sent = [
        batch_at(&[T0, T0 + 1], 50, Compression::Gzip),
        batch_at(&[T0 + 2], 50, Compression::None),
        batch_at(&[T0 + 3, T0 + 4, T0 + 5], 50, Compression::Zstd),
    ];
    for (compression_type, stored_as) in [
        ("zstd", [Compression::Zstd; 3]),
        ("uncompressed", [Compression::None; 3]),
        ("producer", [Compression::Gzip, Compression::None, Compression::Zstd]),
    ] {
        let f = Fixture::new();
        let config = LogConfig { compression_type: compression_type.parse().expect("type"), ..small() };
        let mut log = f.open(&config, T0);
        for b in &sent {
            append(&mut log, b.clone(), T0);
        }
        let stored = log.read(0, 1 << 20).expect("read").records;
        let got = values(&stored);
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), stored_as, "{compression_type}");
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![0, 2, 3], "offsets as without it");
        let originals: Vec<_> = sent.iter().flat_map(|b| values(b)).map(|(_, _, v)| v).collect();
        assert_eq!(
            got.into_iter().map(|g| g.2).collect::<Vec<_>>(),
            originals,
            "{compression_type}: same records"
        );
    }
}

#[test]
fn advancing_the_log_start_hides_what_is_below_deletes_whole_segments_and_survives_reopening() {
    let f = Fixture::new();
    let config = small();
    let mut log = f.open(&config, T0);
    for i in 0..20 {
        append(&mut log, batch(3, T0 + i), T0);
    }
    let segments = log.segment_base_offsets();
    assert!(segments.len() >= 3, "small segments roll: {segments:?}");
    // --- a start inside the third segment, inside a batch: the two before it go
    let target = segments[2] + 4;
    assert!(log.advance_log_start(target).expect("advance"));
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.segment_base_offsets(), segments[2..].to_vec());
    assert!(!f.file(segments[0], "log").exists() && !f.file(segments[1], "log").exists());
    match log.read(target - 1, usize::MAX) {
        Err(LogError::OffsetOutOfRange { log_start_offset, .. }) => assert_eq!(log_start_offset, target),
        other => panic!("a read below the start must be out of range, got {other:?}"),
    }
    // The batch holding the start comes back whole (the reader skips what is below it).
    let first = bases(&log.read(target, usize::MAX).expect("read at the start").records)[0];
    assert!(first <= target && target < first + 3, "batch {first} holds {target}");
    // --- it never moves back
    assert!(!log.advance_log_start(target - 2).expect("advance back"));
    assert_eq!(log.log_start_offset(), target);

    // --- kept by the log-start checkpoint, it is where a reopened log starts
    let mut starts = BTreeMap::new();
    starts.insert(sluice_log::TopicPartition::new("orders", 3), target);
    sluice_log::checkpoint::write(
        &f.log_dir().join(sluice_log::checkpoint::LOG_START_OFFSET_CHECKPOINT),
        &starts,
    )
    .expect("checkpoint");
    f.checkpoint(&log);
    let end = log.log_end_offset();
    log.close().expect("close");
    let mut log = f.open(&config, T0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (target, end));
    // --- past the end it stops at the end, and the active segment stays
    assert!(log.advance_log_start(end + 100).expect("advance to the end"));
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(log.segment_base_offsets().len(), 1);
    let (base, _, _) = append(&mut log, batch(1, T0 + 50), T0);
    assert_eq!(base, end);
    assert_eq!(bases(&log.read(end, usize::MAX).expect("read the new batch").records), vec![end]);
}

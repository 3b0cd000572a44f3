//! Compaction (`cleanup.policy=compact`, issue 5) and the cleaner pool, against Kafka's
//! behaviour: the latest record of every key survives at its own offset, the active segment
//! is never touched, tombstones outlive a clean pass by `delete.retention.ms`, a swap
//! interrupted at any step loses nothing, `min.cleanable.dirty.ratio` gates the pool, and
//! `log.cleaner.threads` workers never clean one log twice at once. Fake clock throughout.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{all_batches, Fixture, T0};
use sluice_log::batch::batches;
use sluice_log::checkpoint::{self, CLEANER_OFFSET_CHECKPOINT};
use sluice_log::{
    BatchHeader, CleanerConfig, CleanerEvent, CleanupPolicy, Compression, Log, LogCleaner, LogConfig,
    LogError, Record, RecordBatch, TopicPartition,
};

/// Timestamps advance by this much per round of appends.
const ROUND_MS: i64 = 100;
/// A generous bound on waiting for worker threads; reaching it fails the test.
const WAIT: Duration = Duration::from_secs(60);

/// A compacted log in which every round of appends (timestamps `ROUND_MS` apart) gets its
/// own segment (`log.roll.ms` is shorter than a round), and segments are large enough that
/// the cleaner merges them all into one.
fn compacted() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        roll_ms: ROUND_MS / 2,
        index_interval_bytes: 128,
        retention_ms: None,
        cleanup_policy: CleanupPolicy::COMPACT,
        delete_retention_ms: 1000,
        ..LogConfig::default()
    }
}

/// A batch of keyed records, all with timestamp `ts`; `None` is a tombstone.
fn keyed(records: &[(&str, Option<&str>)], ts: i64, codec: Compression) -> Vec<u8> {
    let records = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            offset_delta: i as i32,
            timestamp_delta: 0,
            key: Some(Bytes::copy_from_slice(k.as_bytes())),
            value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: vec![],
        })
        .collect();
    RecordBatch { header: BatchHeader::new(codec, ts, ts), records }.encode()
}

fn put(log: &mut Log, records: &[(&str, Option<&str>)], ts: i64) -> i64 {
    put_with(log, records, ts, Compression::None)
}

fn put_with(log: &mut Log, records: &[(&str, Option<&str>)], ts: i64, codec: Compression) -> i64 {
    log.append(&mut keyed(records, ts, codec), ts).expect("append").base_offset
}

/// Round `r` writes some of the keys `k0..k9` (which ones depends on `r`), values naming the
/// round, in a codec that depends on `r`.
fn round(log: &mut Log, r: i64) {
    let codecs =
        [Compression::None, Compression::Gzip, Compression::Zstd, Compression::Snappy, Compression::Lz4];
    let values: Vec<(String, String)> =
        (0..10).filter(|k| (k + r) % 3 != 0).map(|k| (format!("k{k}"), format!("r{r}-k{k}"))).collect();
    let records: Vec<(&str, Option<&str>)> =
        values.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))).collect();
    put_with(log, &records, T0 + r * ROUND_MS, codecs[r as usize % codecs.len()]);
}

/// `log` after rounds `0..rounds`.
fn with_rounds(mut log: Log, rounds: i64) -> Log {
    for r in 0..rounds {
        round(&mut log, r);
    }
    log
}

/// A record as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
}

/// Every record of the log, in offset order (checked to be increasing), every batch
/// CRC-checked.
fn contents(log: &Log) -> Vec<Rec> {
    let r = log.read(log.log_start_offset(), usize::MAX).expect("read all");
    let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).expect("utf-8"));
    let mut out: Vec<Rec> = Vec::new();
    for b in batches(&r.records) {
        let b = b.expect("every stored batch passes its CRC");
        for rec in b.records(1 << 26).expect("records decode") {
            out.push(Rec {
                offset: b.header.base_offset + i64::from(rec.offset_delta),
                timestamp: b.header.base_timestamp + rec.timestamp_delta,
                key: text(rec.key),
                value: text(rec.value),
            });
        }
    }
    assert!(out.windows(2).all(|w| w[0].offset < w[1].offset), "offsets increase: {out:?}");
    out
}

/// What compaction must keep of `records`: below `end`, the last record of each key;
/// from `end` on, everything.
fn compact_below(records: &[Rec], end: i64) -> Vec<Rec> {
    let mut latest = HashMap::new();
    for r in records.iter().filter(|r| r.offset < end) {
        latest.insert(r.key.clone(), r.offset);
    }
    records.iter().filter(|r| r.offset >= end || latest.get(&r.key) == Some(&r.offset)).cloned().collect()
}

/// The value of every key, the last record of each (tombstones as `None`).
fn latest_values(records: &[Rec]) -> BTreeMap<Option<String>, Option<String>> {
    records.iter().map(|r| (r.key.clone(), r.value.clone())).collect()
}

/// Each stored batch's bytes, by base offset.
fn batch_bytes(log: &Log) -> BTreeMap<i64, Vec<u8>> {
    let r = log.read(log.log_start_offset(), usize::MAX).expect("read all");
    batches(&r.records).map(|b| b.expect("valid")).map(|b| (b.header.base_offset, b.bytes.to_vec())).collect()
}

fn files_with_suffix(dir: &Path, suffixes: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| suffixes.iter().any(|s| n.ends_with(s)))
        .collect();
    names.sort();
    names
}

const LEFTOVERS: [&str; 3] = [".cleaned", ".swap", ".deleted"];

#[test]
fn compaction_keeps_the_latest_record_of_every_key_at_its_own_offset() {
    let f = Fixture::new();
    let mut log = with_rounds(f.open(&compacted(), T0), 7);
    let segments = log.segment_base_offsets();
    assert_eq!(segments.len(), 7, "one segment per round: {segments:?}");
    let active = *segments.last().expect("active");
    let before = contents(&log);
    let before_bytes = batch_bytes(&log);
    let active_file = fs::read(f.file(active, "log")).expect("active segment");
    let end = log.log_end_offset();

    // --- one pass from the start: the six older segments are cleaned and merged into one
    let report = log.clean(0, T0 + 10 * ROUND_MS).expect("clean").expect("something to clean");
    let after = contents(&log);
    assert_eq!(after, compact_below(&before, active));
    assert_eq!(latest_values(&after), latest_values(&before), "no key lost or changed");
    assert_eq!((report.first_dirty_offset, report.end_offset), (0, active));
    assert_eq!((report.segments_before, report.segments_after, report.keys), (6, 1, 10));
    assert_eq!(report.records_removed, (before.len() - after.len()) as u64);
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    assert_eq!(log.segment_base_offsets(), [0, active]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, end));

    // --- the active segment is byte for byte what it was
    assert_eq!(fs::read(f.file(active, "log")).expect("active segment"), active_file);
    assert!(files_with_suffix(&f.dir(), &LEFTOVERS).is_empty());

    // --- batches keep their base offsets and codecs; fully kept batches their very bytes;
    //     re-encoded ones the max timestamp of what they kept
    let after_bytes = batch_bytes(&log);
    for (base, bytes) in &after_bytes {
        let original = &before_bytes[base];
        let (old, new) = (
            sluice_log::BatchView::parse(original).expect("valid"),
            sluice_log::BatchView::parse(bytes).expect("valid"),
        );
        assert_eq!(new.header.compression, old.header.compression, "batch {base}");
        assert_eq!(new.header.base_timestamp, old.header.base_timestamp);
        if new.header.records_count == old.header.records_count {
            assert_eq!(bytes, original, "batch {base} kept whole is copied as it was");
        }
        let kept_max = after
            .iter()
            .filter(|r| r.offset >= *base && r.offset <= new.last_offset())
            .map(|r| r.timestamp)
            .max();
        assert_eq!(Some(new.header.max_timestamp), kept_max, "batch {base}");
    }
    assert!(after_bytes.len() < before_bytes.len(), "batches whose records all went are gone");

    // --- a read at a removed offset returns the batch covering it (a re-encoded batch keeps
    //     its last offset delta, as Kafka's) or the next one, and the first record a consumer
    //     takes from the read, at or past the offset, is the next record kept (Kafka)
    for removed in before.iter().filter(|r| !after.contains(r)) {
        let next = after.iter().find(|r| r.offset > removed.offset).expect("a later record");
        let read = log.read(removed.offset, usize::MAX).expect("read");
        let first = batches(&read.records).next().expect("a batch").expect("valid");
        assert!(
            first.header.base_offset <= next.offset && first.last_offset() >= removed.offset,
            "{removed:?}"
        );
        let taken = batches(&read.records)
            .flat_map(|b| {
                let b = b.expect("valid");
                let records = b.records(1 << 26).expect("records decode");
                records.into_iter().map(move |r| b.header.base_offset + i64::from(r.offset_delta))
            })
            .find(|&offset| offset >= removed.offset);
        assert_eq!(taken, Some(next.offset), "{removed:?}");
    }
}

#[test]
fn keys_without_a_newer_value_keep_their_batches_untouched_and_a_second_pass_changes_nothing() {
    let f = Fixture::new();
    let mut log = f.open(&compacted(), T0);
    put(&mut log, &[("a", Some("1")), ("b", Some("1"))], T0);
    put(&mut log, &[("c", Some("1")), ("d", Some("1"))], T0 + ROUND_MS);
    put(&mut log, &[("e", Some("1"))], T0 + 2 * ROUND_MS);
    let before = batch_bytes(&log);
    let report = log.clean(0, T0 + 3 * ROUND_MS).expect("clean").expect("cleaned");
    assert_eq!((report.records_removed, report.keys), (0, 4));
    assert_eq!(batch_bytes(&log), before, "nothing superseded: every batch as it was");
    assert_eq!(log.segment_base_offsets(), [0, 4], "the two clean segments merged");

    let report = log.clean(report.end_offset, T0 + 3 * ROUND_MS).expect("clean").expect("cleaned");
    assert_eq!((report.records_removed, report.keys), (0, 0));
    assert_eq!(batch_bytes(&log), before);
}

#[test]
fn tombstones_outlive_a_clean_pass_by_delete_retention_ms() {
    // Kafka: a delete marker is removed only once it has been through a pass (it is in the
    // clean section) and its segment is older than `delete.retention.ms`.
    let f = Fixture::new();
    let config = compacted();
    let retention = config.delete_retention_ms;
    let mut log = f.open(&config, T0);
    put(&mut log, &[("k1", Some("a")), ("k2", Some("b")), ("k3", Some("c"))], T0);
    put(&mut log, &[("k1", None), ("k2", Some("b2"))], T0 + ROUND_MS);
    put(&mut log, &[("k4", Some("d"))], T0 + 2 * ROUND_MS);
    let tombstone_ts = T0 + ROUND_MS;
    let values = |log: &Log| contents(log).into_iter().map(|r| (r.offset, r.value)).collect::<Vec<_>>();
    let val = |s: &str| Some(s.to_string());

    // --- first pass, long after: the tombstone is in the dirty section, so it stays
    let report = log.clean(0, tombstone_ts + 100 * retention).expect("clean").expect("cleaned");
    assert_eq!(report.tombstones_removed, 0);
    assert_eq!(values(&log), [(2, val("c")), (3, None), (4, val("b2")), (5, val("d"))]);
    let first_dirty = report.end_offset;

    // --- later passes: kept while its segment is not older than delete.retention.ms ...
    let report = log.clean(first_dirty, tombstone_ts + retention).expect("clean").expect("cleaned");
    assert_eq!(report.tombstones_removed, 0);
    assert_eq!(values(&log)[1], (3, None));
    // --- ... and removed once it is; the batch keeps its other record
    let report = log.clean(first_dirty, tombstone_ts + retention + 1).expect("clean").expect("cleaned");
    assert_eq!((report.tombstones_removed, report.records_removed), (1, 1));
    assert_eq!(values(&log), [(2, val("c")), (4, val("b2")), (5, val("d"))]);

    // --- an old tombstone that arrives late is still kept by its first pass
    put(&mut log, &[("k3", None)], T0 + 3 * ROUND_MS);
    put(&mut log, &[("k5", Some("e"))], T0 + 4 * ROUND_MS);
    let now = T0 + 1000 * retention;
    let report = log.clean(first_dirty, now).expect("clean").expect("cleaned");
    assert_eq!(report.tombstones_removed, 0);
    assert_eq!(values(&log), [(4, val("b2")), (5, val("d")), (6, None), (7, val("e"))]);
    log.clean(report.end_offset, now).expect("clean").expect("cleaned");
    assert_eq!(values(&log), [(4, val("b2")), (5, val("d")), (7, val("e"))]);
}

#[test]
fn segments_younger_than_min_compaction_lag_and_the_active_one_stay_as_they_are() {
    let f = Fixture::new();
    let config = LogConfig { min_compaction_lag_ms: 1000, ..compacted() };
    let mut log = with_rounds(f.open(&config, T0), 6);
    let segments = log.segment_base_offsets();
    let before = contents(&log);
    // Segments whose newest record is after now - lag = T0 + 250 are too young: rounds 3, 4, 5.
    let now = T0 + 1250;
    let stats = log.dirty_stats(0, now);
    assert_eq!(stats.first_uncleanable_offset, segments[3]);
    let young: Vec<Vec<u8>> =
        segments[3..].iter().map(|b| fs::read(f.file(*b, "log")).expect("read")).collect();
    let report = log.clean(0, now).expect("clean").expect("cleaned");
    assert_eq!(report.end_offset, segments[3]);
    assert_eq!(contents(&log), compact_below(&before, segments[3]));
    assert_eq!(log.segment_base_offsets()[1..], segments[3..]);
    for (b, bytes) in segments[3..].iter().zip(&young) {
        assert_eq!(&fs::read(f.file(*b, "log")).expect("read"), bytes, "segment {b} untouched");
    }
}

#[test]
fn a_compacted_log_reads_the_same_after_reopening_and_its_indexes_equal_rebuilt_ones() {
    let f = Fixture::new();
    let config = LogConfig { segment_bytes: 1500, ..compacted() };
    let mut log = with_rounds(f.open(&config, T0), 12);
    log.clean(0, T0 + 20 * ROUND_MS).expect("clean").expect("cleaned");
    let segments = log.segment_base_offsets();
    assert!(segments.len() > 2 && segments.len() < 12, "several groups: {segments:?}");
    let reads = |log: &Log| -> Vec<Bytes> {
        (log.log_start_offset()..=log.log_end_offset())
            .map(|o| log.read(o, 300).expect("read").records)
            .collect()
    };
    let lookups = |log: &Log| -> Vec<Option<(i64, i64)>> {
        (T0 - 5..T0 + 1300).step_by(7).map(|t| log.offset_for_timestamp(t).expect("lookup")).collect()
    };
    let (before_reads, before_lookups, before) = (reads(&log), lookups(&log), contents(&log));
    log.flush().expect("flush");
    f.checkpoint(&log);
    log.close().expect("close");
    let indexes: Vec<Vec<u8>> =
        segments.iter().map(|b| fs::read(f.file(*b, "index")).expect("index")).collect();
    let times: Vec<Vec<u8>> =
        segments.iter().map(|b| fs::read(f.file(*b, "timeindex")).expect("ti")).collect();

    let log = f.open(&config, T0);
    let report = log.recovery_report();
    assert!(report.rebuilt_indexes.is_empty() && report.truncation.is_none(), "{report:?}");
    assert_eq!(log.segment_base_offsets(), segments);
    assert_eq!((reads(&log), lookups(&log), contents(&log)), (before_reads.clone(), before_lookups, before));
    log.close().expect("close");

    // --- the cleaner's indexes are exactly what recovery builds from the batches
    for b in &segments {
        fs::remove_file(f.file(*b, "index")).expect("rm");
        fs::remove_file(f.file(*b, "timeindex")).expect("rm");
    }
    let log = f.open(&config, T0);
    assert_eq!(log.recovery_report().rebuilt_indexes.len(), segments.len());
    assert_eq!(reads(&log), before_reads);
    log.close().expect("close");
    for (i, b) in segments.iter().enumerate() {
        assert_eq!(fs::read(f.file(*b, "index")).expect("index"), indexes[i], "segment {b}");
        assert_eq!(fs::read(f.file(*b, "timeindex")).expect("ti"), times[i], "segment {b}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("list") {
        let e = e.expect("entry");
        fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

fn rename(dir: &Path, base: i64, ext: &str, from: &str, to: &str) {
    let name = format!("{base:020}.{ext}");
    fs::rename(dir.join(format!("{name}{from}")), dir.join(format!("{name}{to}"))).expect("rename");
}

#[test]
fn a_swap_interrupted_at_any_step_loses_nothing_that_should_survive() {
    // The cleaner's order (log/src/cleaner.rs): write *.cleaned; rename the indexes, then
    // the log, to .swap (commit); old segments to .deleted; .swap to live; remove .deleted.
    // Each crash state is forged from a real pass's output, then the log is reopened.
    // Eight rounds of the same six keys, one segment each; four segments make a group, so
    // the second group supersedes every record of the first, whose cleaned segment is then
    // a single empty batch covering the first group's offsets.
    let round_of = |r: i64| {
        let values: Vec<(String, String)> = (0..6).map(|k| (format!("a{k}"), format!("r{r}"))).collect();
        let records: Vec<(&str, Option<&str>)> =
            values.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))).collect();
        keyed(&records, T0 + r * ROUND_MS, Compression::None)
    };
    let len = round_of(0).len() as u64;
    let f = Fixture::new();
    let config = LogConfig { segment_bytes: 4 * len + len / 2, ..compacted() };
    let mut log = f.open(&config, T0);
    for r in 0..8 {
        log.append(&mut round_of(r), T0).expect("append");
    }
    put(&mut log, &[("z", Some("active"))], T0 + 9 * ROUND_MS);
    let before = contents(&log);
    let active = *log.segment_base_offsets().last().expect("active");
    let expected_after = compact_below(&before, active);
    log.close().expect("close");

    // --- a real pass, stopped before its install: the .cleaned files it wrote
    let tmp = tempfile::tempdir().expect("tempdir");
    let staged = tmp.path().join("staged").join("orders-3");
    let work = tmp.path().join("work").join("orders-3");
    copy_dir(&f.dir(), &work);
    {
        let log = Log::open(&work, config.clone(), T0).expect("open");
        let prepared =
            log.plan_clean(0, T0 + 20 * ROUND_MS).expect("plan").expect("a plan").prepare().expect("prepare");
        copy_dir(&work, &staged);
        drop(prepared);
        assert!(
            files_with_suffix(&work, &LEFTOVERS).is_empty(),
            "dropping a prepared pass removes its files"
        );
    }
    let cleaned: Vec<i64> = files_with_suffix(&staged, &[".log.cleaned"])
        .iter()
        .map(|n| n[..20].parse().expect("base"))
        .collect();
    assert_eq!(cleaned.len(), 2, "two groups: {cleaned:?}");
    let live: Vec<i64> =
        files_with_suffix(&staged, &[".log"]).iter().map(|n| n[..20].parse().expect("base")).collect();
    let (g, next_group) = (cleaned[0], cleaned[1]);
    let old: Vec<i64> = live.iter().copied().filter(|b| *b >= g && *b < next_group).collect();
    assert_eq!(old.len(), 4, "the first group merges four segments: {old:?}");
    let rolled_forward: Vec<Rec> = expected_after
        .iter()
        .filter(|r| r.offset < next_group)
        .chain(before.iter().filter(|r| r.offset >= next_group))
        .cloned()
        .collect();

    // --- the crash states of the first group's swap, each applied on top of the previous
    type Step = Box<dyn Fn(&Path)>;
    let old_for = old.clone();
    let steps: Vec<(&str, bool, Step)> = vec![
        ("cleaned files written", false, Box::new(|_: &Path| {})),
        (
            "indexes renamed to .swap",
            false,
            Box::new(move |d: &Path| {
                rename(d, g, "index", ".cleaned", ".swap");
                rename(d, g, "timeindex", ".cleaned", ".swap");
            }),
        ),
        (
            "log renamed to .swap (commit)",
            true,
            Box::new(move |d: &Path| rename(d, g, "log", ".cleaned", ".swap")),
        ),
        (
            "the first old segment renamed to .deleted",
            true,
            Box::new(move |d: &Path| {
                for ext in ["log", "index", "timeindex"] {
                    rename(d, g, ext, "", ".deleted");
                }
            }),
        ),
        (
            "every old segment renamed to .deleted",
            true,
            Box::new(move |d: &Path| {
                for b in &old_for[1..] {
                    for ext in ["log", "index", "timeindex"] {
                        rename(d, *b, ext, "", ".deleted");
                    }
                }
            }),
        ),
        ("the log renamed to live", true, Box::new(move |d: &Path| rename(d, g, "log", ".swap", ""))),
        (
            "the indexes renamed to live",
            true,
            Box::new(move |d: &Path| {
                rename(d, g, "index", ".swap", "");
                rename(d, g, "timeindex", ".swap", "");
            }),
        ),
    ];
    let state = tmp.path().join("state");
    for i in 0..steps.len() {
        let dir = state.join(format!("{i}")).join("orders-3");
        copy_dir(&staged, &dir);
        for (_, _, step) in &steps[..=i] {
            step(&dir);
        }
        let (name, committed) = (steps[i].0, steps[i].1);
        let mut log = Log::open(&dir, config.clone(), T0).expect("reopen");
        let got = contents(&log);
        // Nothing invented, nothing that survives compaction lost, no key's value changed.
        assert!(got.iter().all(|r| before.contains(r)), "{name}: only records that were written");
        assert!(expected_after.iter().all(|r| got.contains(r)), "{name}: every record that survives");
        assert_eq!(latest_values(&got), latest_values(&before), "{name}");
        assert!(files_with_suffix(&dir, &LEFTOVERS).is_empty(), "{name}: leftovers removed");
        let bases = log.segment_base_offsets();
        if committed {
            // Rolled forward: the first group is one segment, its old ones gone.
            assert_eq!(log.recovery_report().finished_swaps, if i < 5 { vec![g] } else { vec![] }, "{name}");
            assert!(bases.contains(&g) && old[1..].iter().all(|b| !bases.contains(b)), "{name}: {bases:?}");
            assert_eq!(got, rolled_forward, "{name}: the first group cleaned, the second not");
        } else {
            assert_eq!(got, before, "{name}: rolled back");
            assert_eq!(bases.len(), live.len(), "{name}");
        }
        // --- and the reopened log cleans to the same result
        log.clean(0, T0 + 20 * ROUND_MS).expect("clean again").expect("cleaned");
        assert_eq!(contents(&log), expected_after, "{name}");
    }
}

#[test]
fn an_install_after_retention_or_truncation_changed_the_log_swaps_nothing() {
    let f = Fixture::new();
    let config =
        LogConfig { cleanup_policy: CleanupPolicy::COMPACT_DELETE, retention_ms: Some(250), ..compacted() };
    let mut log = with_rounds(f.open(&config, T0), 5);
    let prepared = log.plan_clean(0, T0).expect("plan").expect("a plan").prepare().expect("prepare");
    assert!(!files_with_suffix(&f.dir(), &[".cleaned"]).is_empty());
    // --- retention (compact,delete keeps it) removes the oldest segments meanwhile
    let deleted = log.tick(T0 + ROUND_MS + 251).expect("tick").deleted_segments;
    assert_eq!(deleted.len(), 2);
    let before = contents(&log);
    assert_eq!(log.install_clean(prepared, T0).expect("install"), None);
    assert_eq!(contents(&log), before);
    assert!(files_with_suffix(&f.dir(), &LEFTOVERS).is_empty());

    // --- the same after a truncation
    let prepared = log.plan_clean(0, T0).expect("plan").expect("a plan").prepare().expect("prepare");
    log.truncate_to(log.log_end_offset() - 1, T0).expect("truncate");
    let before = contents(&log);
    assert_eq!(log.install_clean(prepared, T0).expect("install"), None);
    assert_eq!(contents(&log), before);
    assert!(files_with_suffix(&f.dir(), &LEFTOVERS).is_empty());
}

#[test]
fn retention_applies_only_with_the_delete_policy_and_the_cleaner_only_with_compact() {
    for (policy, retention_deletes, cleaner_cleans) in [
        (CleanupPolicy::DELETE, true, false),
        (CleanupPolicy::COMPACT, false, true),
        (CleanupPolicy::COMPACT_DELETE, true, true),
    ] {
        let f = Fixture::new();
        let config = LogConfig { cleanup_policy: policy, retention_ms: Some(1000), ..compacted() };
        let mut log = with_rounds(f.open(&config, T0), 4);
        let batches_before = all_batches(&log);
        let cleaned = log.clean(0, T0).expect("clean");
        assert_eq!(cleaned.is_some(), cleaner_cleans, "{policy:?}");
        if !cleaner_cleans {
            assert_eq!(all_batches(&log), batches_before, "{policy:?}: untouched");
        }
        let report = log.tick(T0 + 100_000).expect("tick");
        assert_eq!(!report.deleted_segments.is_empty(), retention_deletes, "{policy:?}");
    }
}

#[test]
fn compacted_logs_refuse_records_without_a_key_and_the_cleaner_removes_replicated_ones() {
    let keyless = |ts: i64| {
        let records = vec![
            Record {
                offset_delta: 0,
                timestamp_delta: 0,
                key: Some(Bytes::from("k")),
                value: Some(Bytes::from("v")),
                headers: vec![],
            },
            Record {
                offset_delta: 1,
                timestamp_delta: 0,
                key: None,
                value: Some(Bytes::from("no key")),
                headers: vec![],
            },
        ];
        RecordBatch { header: BatchHeader::new(Compression::Gzip, ts, ts), records }.encode()
    };
    // --- Kafka's delete policy takes them
    let f = Fixture::new();
    let mut log = f.open(&LogConfig { cleanup_policy: CleanupPolicy::DELETE, ..compacted() }, T0);
    log.append(&mut keyless(T0), T0).expect("a delete-policy log takes keyless records");

    // --- a compacted one refuses, writing nothing
    let f = Fixture::new();
    let mut log = f.open(&compacted(), T0);
    match log.append(&mut keyless(T0), T0) {
        Err(LogError::KeyRequired { offset_delta: 1 }) => {}
        other => panic!("expected KeyRequired, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 0);

    // --- a follower copies them as they are; the cleaner then drops them (Kafka's
    //     shouldRetainRecord)
    let mut bytes = keyless(T0);
    sluice_log::batch::set_base_offset(&mut bytes, 0);
    log.append_replicated(&bytes, T0).expect("replicated");
    put(&mut log, &[("other", Some("x"))], T0 + ROUND_MS);
    let report = log.clean(0, T0).expect("clean").expect("cleaned");
    assert_eq!(report.records_removed, 1);
    let got: Vec<(i64, Option<String>)> = contents(&log).into_iter().map(|r| (r.offset, r.key)).collect();
    assert_eq!(got, [(0, Some("k".to_string())), (2, Some("other".to_string()))]);
}

/// A log named `<topic>-0` in `log_dir`, with `rounds` rounds of appends.
fn dirty_log(log_dir: &Path, topic: &str, config: &LogConfig, rounds: i64) -> Arc<Mutex<Log>> {
    let log = Log::open(log_dir.join(format!("{topic}-0")), config.clone(), T0).expect("open");
    Arc::new(Mutex::new(with_rounds(log, rounds)))
}

fn lock(log: &Arc<Mutex<Log>>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().expect("log lock")
}

#[test]
fn the_pool_takes_the_dirtiest_log_once_it_reaches_min_cleanable_dirty_ratio() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = LogConfig { min_cleanable_dirty_ratio: 0.6, ..compacted() };
    let clock = Arc::new(AtomicI64::new(T0));
    let c = Arc::clone(&clock);
    let cleaner = LogCleaner::start(
        CleanerConfig { threads: 0, ..CleanerConfig::default() },
        move || c.load(Ordering::SeqCst),
        |_| {},
    );
    let a = dirty_log(tmp.path(), "a", &config, 8);
    let b = dirty_log(tmp.path(), "b", &config, 3);
    let deleted =
        dirty_log(tmp.path(), "d", &LogConfig { cleanup_policy: CleanupPolicy::DELETE, ..config.clone() }, 8);
    let deleted_batches = all_batches(&lock(&deleted));
    for log in [&a, &b, &deleted] {
        cleaner.register(Arc::clone(log));
    }
    let dir = |log: &Arc<Mutex<Log>>| lock(log).dir().to_path_buf();
    let cleaned = |event: Option<CleanerEvent>| match event {
        Some(CleanerEvent::Cleaned { dir, .. }) => Some(dir),
        None => None,
        other => panic!("expected a cleaned log, got {other:?}"),
    };

    // --- both compacted logs are all dirty (ratio 1 each, a tie), one pass each
    assert_eq!(cleaned(cleaner.run_once()), Some(dir(&a)));
    assert_eq!(cleaned(cleaner.run_once()), Some(dir(&b)));
    assert_eq!(cleaned(cleaner.run_once()), None, "all clean; the delete-policy log is never taken");
    assert_eq!(all_batches(&lock(&deleted)), deleted_batches);

    // --- a little new dirt in `a` stays below the ratio; more reaches it
    let first_dirty = cleaner.first_dirty_offset(&dir(&a)).expect("registered");
    round(&mut lock(&a), 8);
    let stats = lock(&a).dirty_stats(first_dirty, T0);
    assert!(stats.dirty_bytes > 0 && !stats.is_cleanable(0.6), "{stats:?}");
    assert_eq!(cleaned(cleaner.run_once()), None);
    for r in 9..14 {
        round(&mut lock(&a), r);
    }
    let stats = lock(&a).dirty_stats(first_dirty, T0);
    assert!(stats.is_cleanable(0.6), "{stats:?}");

    // --- with both over the ratio, the dirtier goes first
    let b_first_dirty = cleaner.first_dirty_offset(&dir(&b)).expect("registered");
    for r in 3..14 {
        round(&mut lock(&b), r);
    }
    let b_stats = lock(&b).dirty_stats(b_first_dirty, T0);
    assert!(b_stats.dirty_ratio() > stats.dirty_ratio(), "{b_stats:?} {stats:?}");
    assert_eq!(cleaned(cleaner.run_once()), Some(dir(&b)));
    assert_eq!(cleaned(cleaner.run_once()), Some(dir(&a)));
    assert_eq!(cleaned(cleaner.run_once()), None);

    // --- the checkpoint holds how far each log is cleaned, and a new pool starts from it
    let points = checkpoint::read(&tmp.path().join(CLEANER_OFFSET_CHECKPOINT)).expect("checkpoint");
    let active = |log: &Arc<Mutex<Log>>| *lock(log).segment_base_offsets().last().expect("active");
    assert_eq!(points.get(&TopicPartition::new("a", 0)), Some(&active(&a)));
    assert_eq!(points.get(&TopicPartition::new("b", 0)), Some(&active(&b)));
    assert_eq!(points.get(&TopicPartition::new("d", 0)), None);
    cleaner.shutdown().expect("no worker");
    let again = LogCleaner::start(CleanerConfig { threads: 0, ..CleanerConfig::default() }, || T0, |_| {});
    again.register(Arc::clone(&a));
    assert_eq!(again.first_dirty_offset(&dir(&a)), Some(active(&a)));
    assert!(again.run_once().is_none());

    // --- after a truncation the owner lowers the checkpoint (Kafka's maybeTruncateCheckpoint)
    again.truncated(&dir(&a), 3);
    assert_eq!(again.first_dirty_offset(&dir(&a)), Some(3));
    let points = checkpoint::read(&tmp.path().join(CLEANER_OFFSET_CHECKPOINT)).expect("checkpoint");
    assert_eq!(points.get(&TopicPartition::new("a", 0)), Some(&3));
}

#[test]
fn a_pass_that_meets_damage_fails_leaves_nothing_behind_and_is_not_retried() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = dirty_log(tmp.path(), "broken", &compacted(), 5);
    let (dir, second) = {
        let l = lock(&log);
        (l.dir().to_path_buf(), l.segment_base_offsets()[1])
    };
    // A bit flipped inside a record of an old segment, after the log was opened.
    let path = dir.join(format!("{second:020}.log"));
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(&path, bytes).expect("write");
    let before = segment_files(&dir);

    let cleaner = LogCleaner::start(CleanerConfig { threads: 0, ..CleanerConfig::default() }, || T0, |_| {});
    cleaner.register(Arc::clone(&log));
    match cleaner.run_once() {
        Some(CleanerEvent::Failed { dir: d, error }) => {
            assert_eq!(d, dir);
            assert!(error.contains("CRC"), "{error}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(files_with_suffix(&dir, &LEFTOVERS).is_empty(), "the partial output is removed");
    assert_eq!(segment_files(&dir), before, "no segment replaced");
    assert!(cleaner.run_once().is_none(), "an uncleanable log is not taken again");
    cleaner.register(Arc::clone(&log));
    assert!(matches!(cleaner.run_once(), Some(CleanerEvent::Failed { .. })), "registering again retries");
}

/// The segment files of `dir` and their sizes.
fn segment_files(dir: &Path) -> Vec<(String, u64)> {
    files_with_suffix(dir, &[".log"])
        .into_iter()
        .map(|n| {
            let len = fs::metadata(dir.join(&n)).expect("stat").len();
            (n, len)
        })
        .collect()
}

/// Counts passes in progress per log and holds the first two passes until both have
/// started (or `WAIT` passed), so that two run at the same time.
#[derive(Default)]
struct Watch {
    running: Mutex<(HashMap<PathBuf, usize>, usize)>,
    both_started: Condvar,
    twice_at_once: AtomicBool,
    first_two: Mutex<Vec<PathBuf>>,
}

impl Watch {
    fn saw(&self, event: &CleanerEvent) {
        match event {
            CleanerEvent::Started { dir, .. } => {
                let mut guard = self.running.lock().expect("watch");
                let (running, started) = &mut *guard;
                let n = running.entry(dir.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    self.twice_at_once.store(true, Ordering::SeqCst);
                }
                *started += 1;
                if *started <= 2 {
                    self.first_two.lock().expect("watch").push(dir.clone());
                    self.both_started.notify_all();
                    let _unused = self
                        .both_started
                        .wait_timeout_while(guard, WAIT, |(_, started)| *started < 2)
                        .expect("watch");
                }
            }
            CleanerEvent::Cleaned { dir, .. }
            | CleanerEvent::Aborted { dir }
            | CleanerEvent::Failed { dir, .. } => {
                *self.running.lock().expect("watch").0.entry(dir.clone()).or_default() -= 1;
            }
        }
    }
}

#[test]
fn two_workers_clean_several_logs_at_once_never_the_same_one_and_shutdown_joins_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let watch = Arc::new(Watch::default());
    let (events, received) = mpsc::channel();
    let w = Arc::clone(&watch);
    let events = Mutex::new(events);
    let cleaner = LogCleaner::start(
        CleanerConfig { threads: 2, backoff_ms: 3_600_000 },
        || T0 + 1000 * ROUND_MS,
        move |event| {
            w.saw(event);
            if !matches!(event, CleanerEvent::Started { .. }) {
                let _receiver_may_be_gone = events.lock().expect("events").send(event.clone());
            }
        },
    );
    let logs: Vec<Arc<Mutex<Log>>> =
        (0..4).map(|i| dirty_log(tmp.path(), &format!("t{i}"), &compacted(), 6 + i)).collect();
    let expected: Vec<Vec<Rec>> = logs
        .iter()
        .map(|l| {
            let log = lock(l);
            compact_below(&contents(&log), *log.segment_base_offsets().last().expect("active"))
        })
        .collect();
    for log in &logs {
        cleaner.register(Arc::clone(log));
    }

    // --- every log is cleaned once; the workers then wait (the backoff is an hour)
    let mut cleaned = Vec::new();
    while cleaned.len() < logs.len() {
        match received.recv_timeout(WAIT).expect("the workers clean every log") {
            CleanerEvent::Cleaned { dir, .. } => cleaned.push(dir),
            other => panic!("unexpected {other:?}"),
        }
    }
    cleaned.sort();
    let mut dirs: Vec<PathBuf> = logs.iter().map(|l| lock(l).dir().to_path_buf()).collect();
    dirs.sort();
    assert_eq!(cleaned, dirs, "each log exactly once");
    let first_two = watch.first_two.lock().expect("watch").clone();
    assert_eq!(first_two.len(), 2);
    assert_ne!(first_two[0], first_two[1], "two passes at once, on different logs");
    assert!(!watch.twice_at_once.load(Ordering::SeqCst), "a log was cleaned by two workers at once");
    for (log, expected) in logs.iter().zip(&expected) {
        assert_eq!(&contents(&lock(log)), expected);
    }
    let points = checkpoint::read(&tmp.path().join(CLEANER_OFFSET_CHECKPOINT)).expect("checkpoint");
    assert_eq!(points.len(), 4);

    // --- a wake-up with nothing dirty cleans nothing; shutdown joins both workers, which
    //     then hold no log any more
    cleaner.wake();
    cleaner.shutdown().expect("no worker panicked");
    assert!(received.try_recv().is_err(), "nothing happened after the four passes");
    for log in &logs {
        assert_eq!(Arc::strong_count(log), 1, "the pool and its threads are gone");
    }
}

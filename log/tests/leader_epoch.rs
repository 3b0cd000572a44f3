//! The leader-epoch cache of a partition log (`leader-epoch-checkpoint`), against Kafka's
//! behaviour: a leader stamps its epoch into what it appends, a follower records the epochs
//! its leader's batches carry, OffsetsForLeaderEpoch answers as Kafka's
//! `LeaderEpochFileCache.endOffsetFor`, truncation and retention keep the cache in step
//! (`truncateFromEnd` / `truncateFromStart`), opening applies Kafka's load rules and
//! rebuilds a missing or damaged file from the batch headers, and a follower whose tail
//! diverged finds where to cut it. Fake clock throughout.

mod common;

use std::fs;

use bytes::Bytes;
use common::{Fixture, T0};
use sluice_log::batch::{batches, set_base_offset};
use sluice_log::epoch::LEADER_EPOCH_CHECKPOINT;
use sluice_log::{
    BatchHeader, CleanupPolicy, Compression, CompressionType, EpochEntry, Log, LogConfig, LogError, Record,
    RecordBatch,
};

/// Small segments, so a few batches roll.
fn small() -> LogConfig {
    LogConfig { segment_bytes: 2000, index_interval_bytes: 300, retention_ms: None, ..LogConfig::default() }
}

/// `n` keyed records as a producer sends them, with `partitionLeaderEpoch` = `epoch`.
fn batch_with_epoch(n: usize, epoch: i32, codec: Compression) -> Vec<u8> {
    let records = (0..n)
        .map(|i| Record {
            offset_delta: i as i32,
            timestamp_delta: 0,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value-{i}-{}", "x".repeat(100)))),
            headers: vec![],
        })
        .collect();
    let header = BatchHeader { partition_leader_epoch: epoch, ..BatchHeader::new(codec, T0, T0 + n as i64) };
    RecordBatch { header, records }.encode()
}

/// `bytes` (one batch) with its base offset set to `base`, as a leader sends it.
fn at(mut bytes: Vec<u8>, base: i64) -> Vec<u8> {
    set_base_offset(&mut bytes, base);
    bytes
}

/// `n` records as our producers write them (epoch 0).
fn batch(n: usize) -> Vec<u8> {
    batch_with_epoch(n, 0, Compression::None)
}

fn epochs(list: &[(i32, i64)]) -> Vec<EpochEntry> {
    list.iter().map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset }).collect()
}

/// (base offset, partitionLeaderEpoch) of every stored batch, each CRC-checked.
fn stored_epochs(log: &Log) -> Vec<(i64, i32)> {
    let r = log.read(log.log_start_offset(), usize::MAX).expect("read all");
    batches(&r.records)
        .map(|b| {
            let b = b.expect("every stored batch passes its CRC");
            (b.header.base_offset, b.header.partition_leader_epoch)
        })
        .collect()
}

fn checkpoint_text(f: &Fixture) -> String {
    fs::read_to_string(f.dir().join(LEADER_EPOCH_CHECKPOINT)).expect("read leader-epoch-checkpoint")
}

/// A leader log: epoch `e` appended `n` records in batches of 5, for each `(e, n)`.
fn leader_with(f: &Fixture, config: &LogConfig, plan: &[(i32, usize)]) -> Log {
    let mut log = f.open(config, T0);
    for &(epoch, n) in plan {
        log.assign_leader_epoch(epoch).expect("assign epoch");
        for _ in 0..n / 5 {
            log.append(&mut batch(5), T0).expect("append");
        }
    }
    log
}

#[test]
fn appends_keep_the_producers_epoch_until_one_is_assigned_then_stamp_the_latest() {
    let f = Fixture::new();
    let mut log = f.open(&LogConfig::default(), T0);
    assert_eq!(checkpoint_text(&f), "0\n0\n", "a new log has an empty file, as Kafka's");
    assert_eq!(log.recovery_report().epoch_cache_rebuilt, None);

    // --- no epoch assigned: the producer's field is kept, the cache stays empty
    log.append(&mut batch_with_epoch(2, 9, Compression::None), T0).expect("append");
    log.append(&mut batch(2), T0).expect("append");
    assert_eq!((log.leader_epoch(), log.epoch_entries()), (None, &[][..]));
    assert_eq!(stored_epochs(&log), [(0, 9), (2, 0)]);

    // --- leader at epoch 3: recorded at the log end, written, and stamped from now on
    log.assign_leader_epoch(3).expect("assign");
    assert_eq!((log.leader_epoch(), log.epoch_entries()), (Some(3), &epochs(&[(3, 4)])[..]));
    assert_eq!(checkpoint_text(&f), "0\n1\n3 4\n");
    let mut sent = batch_with_epoch(3, 9, Compression::Lz4);
    log.append(&mut sent, T0).expect("append");
    let header = sluice_log::BatchView::parse(&sent).expect("the caller's bytes stay valid").header;
    assert_eq!((header.base_offset, header.partition_leader_epoch), (4, 3));

    // --- the same epoch again, or an older one: nothing changes; a negative one is refused
    log.assign_leader_epoch(3).expect("same epoch");
    log.assign_leader_epoch(1).expect("older epoch");
    assert!(matches!(log.assign_leader_epoch(-1), Err(LogError::InvalidLeaderEpoch(-1))));
    assert_eq!(log.epoch_entries(), epochs(&[(3, 4)]));

    log.assign_leader_epoch(5).expect("assign");
    log.append(&mut batch(1), T0).expect("append");
    assert_eq!(stored_epochs(&log), [(0, 9), (2, 0), (4, 3), (7, 5)]);
    assert_eq!(log.epoch_entries(), epochs(&[(3, 4), (5, 7)]));
    assert_eq!(checkpoint_text(&f), "0\n2\n3 4\n5 7\n");
}

#[test]
fn recompressed_appends_are_stamped_too() {
    let f = Fixture::new();
    let config =
        LogConfig { compression_type: CompressionType::Codec(Compression::Zstd), ..LogConfig::default() };
    let mut log = f.open(&config, T0);
    log.assign_leader_epoch(2).expect("assign");
    log.append(&mut batch_with_epoch(4, 0, Compression::Gzip), T0).expect("append");
    log.append(&mut batch_with_epoch(4, 0, Compression::Zstd), T0).expect("append");
    assert_eq!(stored_epochs(&log), [(0, 2), (4, 2)]);
}

#[test]
fn replicated_appends_record_where_each_newer_epoch_starts() {
    let leader_dir = Fixture::new();
    let leader = leader_with(&leader_dir, &small(), &[(1, 10), (2, 5), (4, 15)]);
    assert_eq!(leader.epoch_entries(), epochs(&[(1, 0), (2, 10), (4, 15)]));
    let all = leader.read(0, usize::MAX).expect("read").records;

    let f = Fixture::new();
    let mut follower = f.open(&small(), T0);
    follower.append_replicated(&all, T0).expect("replicate");
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(checkpoint_text(&f), "0\n3\n1 0\n2 10\n4 15\n");
    assert_eq!(follower.read(0, usize::MAX).expect("read").records, all, "stored as sent");

    // --- an older epoch after a newer one, and "no epoch" (-1), are not recorded
    let old = at(batch_with_epoch(1, 3, Compression::None), 30);
    let none = at(batch_with_epoch(1, -1, Compression::None), 31);
    follower.append_replicated(&[old, none].concat(), T0).expect("replicate");
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
}

#[test]
fn a_replicated_append_writes_the_epoch_file_before_the_data() {
    let f = Fixture::new();
    let mut follower = f.open(&LogConfig::default(), T0);
    follower.append_replicated(&batch_with_epoch(2, 1, Compression::None), T0).expect("replicate");
    // The checkpoint cannot be replaced while a directory stands where its temporary file goes.
    let tmp = f.dir().join(format!("{LEADER_EPOCH_CHECKPOINT}.tmp"));
    fs::create_dir(&tmp).expect("mkdir");
    let next = at(batch_with_epoch(2, 2, Compression::None), 2);
    assert!(matches!(follower.append_replicated(&next, T0), Err(LogError::Checkpoint(_))));
    assert_eq!(follower.log_end_offset(), 2, "no data written under an epoch the file lacks");
    assert_eq!(follower.epoch_entries(), epochs(&[(1, 0)]));
    // Batches of a known epoch need no write.
    follower.append_replicated(&at(batch_with_epoch(2, 1, Compression::None), 2), T0).expect("replicate");
    fs::remove_dir(&tmp).expect("rmdir");
    follower.append_replicated(&at(next, 4), T0).expect("replicate");
    assert_eq!(follower.epoch_entries(), epochs(&[(1, 0), (2, 4)]));
    assert_eq!(checkpoint_text(&f), "0\n2\n1 0\n2 4\n");
}

#[test]
fn end_offset_for_epoch_is_kafkas_offsets_for_leader_epoch_answer() {
    let f = Fixture::new();
    let empty = f.open(&LogConfig::default(), T0);
    assert_eq!(empty.end_offset_for_epoch(0), None, "empty cache");
    drop(empty);

    let mut log = leader_with(&f, &LogConfig::default(), &[(1, 10), (3, 5)]);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (3, 10)]));
    assert_eq!(log.log_end_offset(), 15);
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 15)), "latest: the log end");
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 10)), "older: where the next epoch starts");
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 10)), "between cached epochs: the one below");
    assert_eq!(log.end_offset_for_epoch(0), None, "older than the first cached epoch");
    assert_eq!(log.end_offset_for_epoch(4), None, "newer than the latest");
    // The latest epoch's end follows the log.
    log.append(&mut batch(5), T0).expect("append");
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 20)));
}

#[test]
fn truncation_drops_the_epochs_it_cuts_and_reopening_keeps_the_rest() {
    let f = Fixture::new();
    let mut log = leader_with(&f, &small(), &[(1, 5), (2, 5), (3, 10)]);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 5), (3, 10)]));
    assert!(log.segment_base_offsets().len() > 1, "{:?}", log.segment_base_offsets());

    // --- at or past the end: nothing
    log.truncate_to(20, T0).expect("truncate");
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 5), (3, 10)]));
    // --- inside epoch 3's first batch: the log ends at 10, so epoch 3 holds nothing
    log.truncate_to(12, T0).expect("truncate");
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 5)]));
    assert_eq!(checkpoint_text(&f), "0\n2\n1 0\n2 5\n");
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 10)));
    log.close().expect("close");

    let log = f.open(&small(), T0);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 5)]));
    assert_eq!(log.recovery_report().epoch_cache_rebuilt, None);
    assert_eq!(stored_epochs(&log), [(0, 1), (5, 2)]);
    drop(log);

    // --- truncating fully empties the cache
    let mut log = f.open(&small(), T0);
    log.truncate_fully_and_start_at(100, T0).expect("truncate fully");
    assert_eq!((log.leader_epoch(), log.epoch_entries()), (None, &[][..]));
    assert_eq!(checkpoint_text(&f), "0\n0\n");
    log.close().expect("close");
    let log = f.open(&small(), T0);
    assert_eq!((log.log_start_offset(), log.epoch_entries()), (100, &[][..]));
}

#[test]
fn retention_moves_the_first_epoch_up_to_the_new_log_start() {
    let f = Fixture::new();
    let config = LogConfig { retention_bytes: Some(3000), ..small() };
    let mut log = leader_with(&f, &config, &[(1, 15), (2, 30), (3, 15)]);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 15), (3, 45)]));
    let report = log.tick(T0).expect("tick");
    assert!(!report.deleted_segments.is_empty());
    let start = log.log_start_offset();
    assert!(start > 15 && start < 45, "the log now starts inside epoch 2: {start}");
    assert_eq!(log.epoch_entries(), epochs(&[(2, start), (3, 45)]));
    assert_eq!(checkpoint_text(&f), format!("0\n2\n2 {start}\n3 45\n"));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 45)));
    assert_eq!(log.end_offset_for_epoch(1), None, "epoch 1's data is gone");
}

#[test]
fn opening_drops_epochs_past_the_log_end_and_before_its_start() {
    let f = Fixture::new();
    let log = leader_with(&f, &small(), &[(1, 10), (2, 10)]);
    assert_eq!(log.log_end_offset(), 20);
    drop(log);
    // As a crash can leave it: epochs past the end (their data never made it to disk).
    fs::write(f.dir().join(LEADER_EPOCH_CHECKPOINT), "0\n4\n1 0\n2 10\n5 20\n6 35\n").expect("write");
    let log = f.open(&small(), T0);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 10)]), "Kafka: truncateFromEnd(log end)");
    assert_eq!(checkpoint_text(&f), "0\n2\n1 0\n2 10\n");
    drop(log);

    // --- an epoch assigned at the end with nothing written under it is forgotten, as in
    // Kafka (the leader assigns it again when it takes the partition back)
    let mut log = f.open(&small(), T0);
    log.assign_leader_epoch(7).expect("assign");
    assert_eq!(log.leader_epoch(), Some(7));
    drop(log);
    let mut log = f.open(&small(), T0);
    assert_eq!(log.leader_epoch(), Some(2));
    log.assign_leader_epoch(7).expect("assign again");
    log.append(&mut batch(5), T0).expect("append");
    drop(log);
    let log = f.open(&small(), T0);
    assert_eq!(log.epoch_entries(), epochs(&[(1, 0), (2, 10), (7, 20)]));
    drop(log);

    // --- as a crash between retention and the file's rewrite leaves it: segments gone,
    // the file not yet rewritten. The epoch holding the new start moves up to it.
    let second = f.open(&small(), T0).segment_base_offsets()[1];
    assert!(second > 10 && second < 20, "the second segment starts inside epoch 2: {second}");
    for ext in ["log", "index", "timeindex"] {
        fs::remove_file(f.file(0, ext)).expect("rm");
    }
    let log = f.open(&small(), T0);
    assert_eq!(log.log_start_offset(), second);
    assert_eq!(log.epoch_entries(), epochs(&[(2, second), (7, 20)]), "Kafka: truncateFromStart(log start)");
    assert_eq!(checkpoint_text(&f), format!("0\n2\n2 {second}\n7 20\n"));
}

#[test]
fn a_missing_or_damaged_file_is_rebuilt_from_the_batch_headers() {
    let f = Fixture::new();
    let config = small();
    let mut log = f.open(&config, T0);
    // Before any epoch: a producer batch without one (-1) and one with our producers' 0.
    log.append(&mut batch_with_epoch(5, -1, Compression::None), T0).expect("append");
    log.append(&mut batch(5), T0).expect("append");
    for (epoch, n) in [(2, 10), (4, 15)] {
        log.assign_leader_epoch(epoch).expect("assign");
        for _ in 0..n / 5 {
            log.append(&mut batch(5), T0).expect("append");
        }
    }
    // Epoch 0 came from the producer, not from an assignment: the cache never saw it.
    assert_eq!(log.epoch_entries(), epochs(&[(2, 10), (4, 20)]));
    assert!(log.segment_base_offsets().len() > 2, "{:?}", log.segment_base_offsets());
    log.close().expect("close");

    // --- missing: every segment's headers are scanned; -1 is no epoch, 0 is one
    let path = f.dir().join(LEADER_EPOCH_CHECKPOINT);
    fs::remove_file(&path).expect("rm");
    let log = f.open(&config, T0);
    assert_eq!(log.epoch_entries(), epochs(&[(0, 5), (2, 10), (4, 20)]));
    let reason = log.recovery_report().epoch_cache_rebuilt.clone().expect("reported");
    assert!(reason.contains("missing"), "{reason}");
    assert_eq!(checkpoint_text(&f), "0\n3\n0 5\n2 10\n4 20\n");
    drop(log);

    // --- damaged: reported with the line, rebuilt the same, and the open succeeds
    fs::write(&path, "0\n3\n0 5\n2 ten\n4 20\n").expect("write");
    let log = f.open(&config, T0);
    let reason = log.recovery_report().epoch_cache_rebuilt.clone().expect("reported");
    assert!(reason.contains(LEADER_EPOCH_CHECKPOINT) && reason.contains("line 4"), "{reason}");
    assert_eq!(log.epoch_entries(), epochs(&[(0, 5), (2, 10), (4, 20)]));
    assert_eq!(checkpoint_text(&f), "0\n3\n0 5\n2 10\n4 20\n");
    drop(log);
    let log = f.open(&config, T0);
    assert_eq!(log.recovery_report().epoch_cache_rebuilt, None, "the rebuilt file reads");

    // --- a file that cannot be read at all fails the open
    drop(log);
    fs::remove_file(&path).expect("rm");
    fs::create_dir(&path).expect("mkdir");
    assert!(matches!(Log::open(f.dir(), config, T0), Err(LogError::Checkpoint(_))));
}

#[test]
fn a_diverged_follower_truncates_where_the_leader_says_and_catches_up() {
    // The old leader F wrote offsets 0..9 at epoch 1; L had copied only 0..4 when it was
    // elected at epoch 2 and wrote 5..9. F, now a follower, asks L where epoch 1 ends.
    let (lf, ff) = (Fixture::new(), Fixture::new());
    let config = small();
    let mut follower = ff.open(&config, T0);
    follower.assign_leader_epoch(1).expect("assign");
    for n in [3, 2, 4] {
        follower.append(&mut batch(n), T0).expect("append");
    }
    assert_eq!(follower.log_end_offset(), 9, "divergent batches at epoch 1 up to offset 8");

    let mut leader = lf.open(&config, T0);
    let copied = follower.read(0, usize::MAX).expect("read").records;
    let first_two: usize = batches(&copied).take(2).map(|b| b.expect("valid").len()).sum();
    leader.append_replicated(&copied[..first_two], T0).expect("replicate 0..4");
    assert_eq!(leader.log_end_offset(), 5);
    leader.assign_leader_epoch(2).expect("elected");
    for n in [2, 3] {
        leader.append(&mut batch(n), T0).expect("append");
    }
    assert_eq!(leader.epoch_entries(), epochs(&[(1, 0), (2, 5)]));

    // --- OffsetsForLeaderEpoch(1) → (1, 5): the follower cuts its tail there
    let (epoch, end) = leader.end_offset_for_epoch(1).expect("answer");
    assert_eq!((epoch, end), (1, 5));
    follower.truncate_to(end, T0).expect("truncate");
    assert_eq!(follower.log_end_offset(), 5);
    assert_eq!(follower.epoch_entries(), epochs(&[(1, 0)]));
    assert_eq!(follower.end_offset_for_epoch(1), Some((1, 5)));

    // --- and fetches the leader's batches from there
    let rest = leader.read(end, usize::MAX).expect("read").records;
    follower.append_replicated(&rest, T0).expect("replicate");
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(
        follower.read(0, usize::MAX).expect("read").records,
        leader.read(0, usize::MAX).expect("read").records
    );
    assert_eq!(stored_epochs(&follower), [(0, 1), (3, 1), (5, 2), (7, 2)]);
    follower.close().expect("close");
    let follower = ff.open(&config, T0);
    assert_eq!(follower.epoch_entries(), epochs(&[(1, 0), (2, 5)]));
}

#[test]
fn the_cleaner_keeps_every_batchs_leader_epoch() {
    let f = Fixture::new();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        roll_ms: 50,
        retention_ms: None,
        cleanup_policy: CleanupPolicy::COMPACT,
        ..LogConfig::default()
    };
    let mut log = f.open(&config, T0);
    let keyed = |keys: &[&str], ts: i64| -> Vec<u8> {
        let records = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Record {
                offset_delta: i as i32,
                timestamp_delta: 0,
                key: Some(Bytes::copy_from_slice(k.as_bytes())),
                value: Some(Bytes::from(format!("{k}@{ts}"))),
                headers: vec![],
            })
            .collect();
        RecordBatch { header: BatchHeader::new(Compression::Gzip, ts, ts), records }.encode()
    };
    // Each round in its own segment (roll.ms); later rounds supersede some keys.
    let rounds: [(i32, &[&str]); 4] =
        [(1, &["a", "b", "c"]), (1, &["a", "d"]), (2, &["b", "e"]), (3, &["a", "f"])];
    for (r, (epoch, keys)) in rounds.iter().enumerate() {
        log.assign_leader_epoch(*epoch).expect("assign");
        let ts = T0 + r as i64 * 100;
        log.append(&mut keyed(keys, ts), ts).expect("append");
    }
    assert_eq!(log.segment_base_offsets().len(), 4);
    let before: Vec<(i64, i32)> = stored_epochs(&log);
    assert_eq!(before, [(0, 1), (3, 1), (5, 2), (7, 3)]);
    let report = log.clean(0, T0 + 1000).expect("clean").expect("cleaned");
    assert!(report.records_removed > 0, "some batches were re-encoded: {report:?}");
    let after = stored_epochs(&log);
    assert_eq!(after, before, "every batch kept its base offset and its leader epoch");
    let entries = log.epoch_entries().to_vec();
    log.close().expect("close");

    // --- a rebuild from the cleaned segments gives the same cache
    fs::remove_file(f.dir().join(LEADER_EPOCH_CHECKPOINT)).expect("rm");
    let log = f.open(&config, T0);
    assert_eq!(log.epoch_entries(), entries);
    assert_eq!(entries, epochs(&[(1, 0), (2, 5), (3, 7)]));
}

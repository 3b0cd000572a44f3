//! Idempotent producers against Kafka's behaviour: a leader recognises a resent batch (same
//! producer id, epoch and sequences as one of the producer's last 5) and answers with the
//! original offsets without writing; a fenced epoch, a gap or an out-of-range resend is a
//! typed error that writes nothing; a new leader recognises resends of what it replicated;
//! reopening, truncation and compaction keep the state right. Real logs in temporary
//! directories, fake clock throughout.

mod common;

use std::fs;

use bytes::Bytes;
use common::{Fixture, T0};
use sluice_log::batch::batches;
use sluice_log::{
    BatchHeader, BatchMetadata, CleanupPolicy, Compression, Log, LogConfig, LogError, Record, RecordBatch,
};

const PID: i64 = 4242;

/// Small segments, so a few batches roll.
fn small() -> LogConfig {
    LogConfig { segment_bytes: 1500, index_interval_bytes: 300, retention_ms: None, ..LogConfig::default() }
}

/// A batch of records with the keys `keys` from producer `pid` at `epoch`, first sequence
/// `seq` (`pid` -1: a producer without idempotence), timestamped `T0`.
fn keyed(pid: i64, epoch: i16, seq: i32, keys: &[&str]) -> Vec<u8> {
    keyed_at(T0, pid, epoch, seq, keys)
}

/// [`keyed`], timestamped `ts`.
fn keyed_at(ts: i64, pid: i64, epoch: i16, seq: i32, keys: &[&str]) -> Vec<u8> {
    let records = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            offset_delta: i as i32,
            timestamp_delta: 0,
            key: Some(Bytes::copy_from_slice(k.as_bytes())),
            value: Some(Bytes::from(format!("{k}-{seq}-{}", "v".repeat(60)))),
            headers: vec![],
        })
        .collect();
    let header = BatchHeader {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchHeader::new(Compression::None, ts, ts)
    };
    RecordBatch { header, records }.encode()
}

/// A batch of `n` records from producer `pid` at `epoch`, first sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    keyed(pid, epoch, seq, &keys)
}

/// Appends as a leader; (first offset, last offset, duplicate).
fn send(log: &mut Log, mut bytes: Vec<u8>) -> Result<(i64, i64, bool), LogError> {
    log.append(&mut bytes, T0).map(|i| (i.base_offset, i.last_offset, i.duplicate))
}

/// Everything that shows whether an append wrote: the log end, the size of the log and of
/// its segment files on disk, and the bytes a read from the start returns.
fn footprint(f: &Fixture, log: &Log) -> (i64, u64, u64, Bytes) {
    let on_disk: u64 = log
        .segment_base_offsets()
        .iter()
        .map(|&b| fs::metadata(f.file(b, "log")).expect("segment").len())
        .sum();
    let all = log.read(log.log_start_offset(), usize::MAX).expect("read all").records;
    (log.log_end_offset(), log.size_bytes(), on_disk, all)
}

/// The retained batches of `PID`, oldest first, as (first seq, last seq, first offset,
/// last offset).
fn retained(log: &Log, pid: i64) -> Vec<(i32, i32, i64, i64)> {
    log.producer_entry(pid)
        .map(|e| e.batches.iter().map(|b| (b.first_seq, b.last_seq, b.first_offset, b.last_offset)).collect())
        .unwrap_or_default()
}

/// A log where `PID` (epoch 0) wrote `count` batches of 3 records, sequences 0, 3, 6, ...,
/// with a batch from a producer without idempotence after each.
fn with_batches(f: &Fixture, config: &LogConfig, count: i32) -> Log {
    let mut log = f.open(config, T0);
    for i in 0..count {
        let (first, last, dup) = send(&mut log, batch(PID, 0, i * 3, 3)).expect("append");
        assert_eq!((first, last, dup), (i64::from(i) * 4, i64::from(i) * 4 + 2, false));
        send(&mut log, batch(-1, -1, -1, 1)).expect("append plain");
    }
    log
}

#[test]
fn a_resend_of_a_retained_batch_is_a_duplicate_with_its_original_offsets_and_writes_nothing() {
    let f = Fixture::new();
    let mut log = with_batches(&f, &small(), 7);
    assert!(log.segment_base_offsets().len() > 1, "several segments: {:?}", log.segment_base_offsets());
    // Batches i = 0..7 at offsets 4i..4i+2, sequences 3i..3i+2; the last five are retained.
    assert_eq!(log.producer_entry(PID).map(|e| e.epoch), Some(0));
    assert_eq!(
        retained(&log, PID),
        (2..7).map(|i| (i * 3, i * 3 + 2, i64::from(i) * 4, i64::from(i) * 4 + 2)).collect::<Vec<_>>()
    );
    let before = footprint(&f, &log);

    // --- the last batch, the 3rd-last and the 5th-last (the oldest retained)
    for i in [6, 4, 2] {
        let mut resent = batch(PID, 0, i * 3, 3);
        let info = log.append(&mut resent, T0).expect("resend");
        assert!(info.duplicate, "batch {i}");
        assert_eq!(
            (info.base_offset, info.last_offset),
            (i64::from(i) * 4, i64::from(i) * 4 + 2),
            "batch {i}"
        );
        assert_eq!((info.records, info.bytes, info.rolled, info.flushed), (0, 0, false, false));
        assert_eq!(footprint(&f, &log), before, "batch {i}: nothing written");
    }

    // --- the 6th-last is no longer retained: it cannot be told from a gap (Kafka answers
    //     OUT_OF_ORDER_SEQUENCE_NUMBER too; a producer never has more than 5 in flight)
    match send(&mut log, batch(PID, 0, 3, 3)) {
        Err(LogError::OutOfOrderSequence { producer_id: PID, expected: 21, got: 3 }) => {}
        other => panic!("expected OutOfOrderSequence, got {other:?}"),
    }
    assert_eq!(footprint(&f, &log), before);

    // --- the next batch is written as usual
    assert_eq!(send(&mut log, batch(PID, 0, 21, 2)).expect("append"), (28, 29, false));
    assert_eq!(retained(&log, PID).last(), Some(&(21, 22, 28, 29)));
    assert_eq!(retained(&log, PID).len(), 5);
}

#[test]
fn gaps_and_fenced_epochs_are_refused_and_a_new_epoch_restarts_at_zero() {
    let f = Fixture::new();
    let mut log = f.open(&LogConfig::default(), T0);
    send(&mut log, batch(PID, 3, 0, 2)).expect("append");
    send(&mut log, batch(PID, 3, 2, 2)).expect("append");
    let before = footprint(&f, &log);

    // --- a gap, and an overlap that is not a resend, name what was expected
    for got in [5, 3, 0] {
        match send(&mut log, batch(PID, 3, got, 1)) {
            Err(LogError::OutOfOrderSequence { producer_id: PID, expected: 4, got: g }) => assert_eq!(g, got),
            other => panic!("seq {got}: expected OutOfOrderSequence, got {other:?}"),
        }
    }
    let message = send(&mut log, batch(PID, 3, 5, 1)).expect_err("gap").to_string();
    assert!(message.contains("expected sequence 4") && message.contains("got 5"), "{message}");

    // --- an older epoch: a fenced zombie, whatever its sequence
    for seq in [4, 0] {
        match send(&mut log, batch(PID, 2, seq, 1)) {
            Err(LogError::InvalidProducerEpoch { producer_id: PID, epoch: 2, current: 3 }) => {}
            other => panic!("expected InvalidProducerEpoch, got {other:?}"),
        }
    }

    // --- a newer epoch must start at sequence 0
    match send(&mut log, batch(PID, 4, 5, 1)) {
        Err(LogError::OutOfOrderSequence { producer_id: PID, expected: 0, got: 5 }) => {}
        other => panic!("expected OutOfOrderSequence, got {other:?}"),
    }
    assert_eq!(footprint(&f, &log), before, "no refused batch was written");
    assert_eq!(send(&mut log, batch(PID, 4, 0, 1)).expect("new epoch"), (4, 4, false));
    let entry = log.producer_entry(PID).expect("known");
    assert_eq!(entry.epoch, 4);
    assert_eq!(
        entry.batches.iter().copied().collect::<Vec<_>>(),
        [BatchMetadata { first_seq: 0, last_seq: 0, first_offset: 4, last_offset: 4 }]
    );
    // The old epoch is now fenced, its resends included.
    assert!(matches!(send(&mut log, batch(PID, 3, 2, 2)), Err(LogError::InvalidProducerEpoch { .. })));

    // --- an unknown producer may start anywhere (its state may have gone with retention)
    assert_eq!(send(&mut log, batch(7, 0, 1000, 2)).expect("unknown producer"), (5, 6, false));
    assert_eq!(log.producer_entry(7).and_then(|e| e.last_seq()), Some(1001));
}

#[test]
fn sequences_wrap_past_i32_max_to_zero() {
    let f = Fixture::new();
    let mut log = f.open(&LogConfig::default(), T0);
    // Sequences MAX-1, MAX, 0, 1.
    assert_eq!(send(&mut log, batch(PID, 0, i32::MAX - 1, 4)).expect("append"), (0, 3, false));
    assert_eq!(retained(&log, PID), [(i32::MAX - 1, 1, 0, 3)]);
    assert_eq!(send(&mut log, batch(PID, 0, i32::MAX - 1, 4)).expect("resend"), (0, 3, true));
    match send(&mut log, batch(PID, 0, i32::MAX, 1)) {
        Err(LogError::OutOfOrderSequence { expected: 2, got: i32::MAX, .. }) => {}
        other => panic!("expected OutOfOrderSequence, got {other:?}"),
    }
    assert_eq!(send(&mut log, batch(PID, 0, 2, 1)).expect("append"), (4, 4, false));
    // A batch ending exactly at MAX is followed by 0.
    send(&mut log, batch(8, 0, i32::MAX - 2, 3)).expect("append");
    assert_eq!(send(&mut log, batch(8, 0, 0, 1)).expect("append"), (8, 8, false));
}

#[test]
fn batches_without_a_producer_id_are_written_every_time() {
    let f = Fixture::new();
    let mut log = f.open(&LogConfig::default(), T0);
    let plain = batch(-1, -1, -1, 3);
    assert_eq!(send(&mut log, plain.clone()).expect("append"), (0, 2, false));
    assert_eq!(send(&mut log, plain.clone()).expect("append"), (3, 5, false));
    assert_eq!(send(&mut log, plain).expect("append"), (6, 8, false));
    assert!(log.producer_entry(-1).is_none());
    assert_eq!(log.log_end_offset(), 9);
}

#[test]
fn an_append_mixing_a_resend_with_new_batches_is_refused_and_writes_nothing() {
    let f = Fixture::new();
    let mut log = f.open(&LogConfig::default(), T0);
    send(&mut log, batch(PID, 0, 0, 2)).expect("append");
    let before = footprint(&f, &log);
    for mixed in [
        [batch(PID, 0, 0, 2), batch(PID, 0, 2, 2)].concat(),
        [batch(-1, -1, -1, 1), batch(PID, 0, 0, 2)].concat(),
    ] {
        match send(&mut log, mixed) {
            Err(LogError::DuplicateInMixedAppend { producer_id: PID, first_seq: 0, last_seq: 1 }) => {}
            other => panic!("expected DuplicateInMixedAppend, got {other:?}"),
        }
        assert_eq!(footprint(&f, &log), before);
    }
    // A refused batch anywhere in an append stops all of it.
    let bad_tail = [batch(PID, 0, 2, 2), batch(PID, 0, 9, 1)].concat();
    assert!(matches!(
        send(&mut log, bad_tail),
        Err(LogError::OutOfOrderSequence { expected: 4, got: 9, .. })
    ));
    assert_eq!(footprint(&f, &log), before);
    assert_eq!(retained(&log, PID), [(0, 1, 0, 1)], "the state did not move either");
    // Several new batches of one producer in one append chain, and their resend together
    // is one duplicate spanning them.
    let two = [batch(PID, 0, 2, 2), batch(PID, 0, 4, 1)].concat();
    assert_eq!(send(&mut log, two.clone()).expect("append"), (2, 4, false));
    assert_eq!(send(&mut log, two).expect("resend"), (2, 4, true));
}

#[test]
fn a_follower_that_becomes_leader_recognises_a_resend_of_what_it_replicated() {
    let leader_dir = Fixture::new();
    let mut leader = leader_dir.open(&small(), T0);
    leader.assign_leader_epoch(1).expect("epoch");
    for i in 0..4 {
        send(&mut leader, batch(PID, 2, i * 2, 2)).expect("append");
        send(&mut leader, batch(9, 0, i, 1)).expect("append");
    }
    let all = leader.read(0, usize::MAX).expect("read").records;

    let f = Fixture::new();
    let mut follower = f.open(&small(), T0);
    // Replicated in two fetches, as a fetcher would.
    let views: Vec<_> = batches(&all).map(|b| b.expect("valid").bytes.to_vec()).collect();
    follower.append_replicated(&views[..3].concat(), T0).expect("replicate");
    follower.append_replicated(&views[3..].concat(), T0).expect("replicate");
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.producer_entry(PID), leader.producer_entry(PID));
    assert_eq!(follower.producer_entry(9), leader.producer_entry(9));

    // --- the leader dies before answering the last produce; the producer resends to the
    //     follower, now leader
    follower.assign_leader_epoch(2).expect("epoch");
    let before = footprint(&f, &follower);
    assert_eq!(send(&mut follower, batch(PID, 2, 6, 2)).expect("resend"), (9, 10, true));
    assert_eq!(send(&mut follower, batch(9, 0, 3, 1)).expect("resend"), (11, 11, true));
    assert_eq!(footprint(&f, &follower), before);
    assert_eq!(send(&mut follower, batch(PID, 2, 8, 2)).expect("next"), (12, 13, false));
    assert!(matches!(send(&mut follower, batch(PID, 1, 10, 1)), Err(LogError::InvalidProducerEpoch { .. })));
}

#[test]
fn replication_takes_a_new_producer_epoch_without_checks() {
    let f = Fixture::new();
    let mut follower = f.open(&LogConfig::default(), T0);
    let leader_dir = Fixture::new();
    let mut leader = leader_dir.open(&LogConfig::default(), T0);
    let mut copy = |leader: &mut Log, bytes: Vec<u8>| {
        let from = leader.log_end_offset();
        send(leader, bytes).expect("leader append");
        let r = leader.read(from, usize::MAX).expect("read");
        follower.append_replicated(&r.records, T0).expect("replicate");
    };
    copy(&mut leader, batch(PID, 0, 0, 2));
    copy(&mut leader, batch(PID, 0, 2, 2));
    copy(&mut leader, batch(PID, 1, 0, 1));
    assert_eq!(retained(&follower, PID), [(0, 0, 4, 4)], "the bump dropped epoch 0's batches");
    assert_eq!(follower.producer_entry(PID).map(|e| e.epoch), Some(1));
    // A follower does not check: what its leader wrote is the truth.
    let mut odd = batch(PID, 0, 77, 1);
    sluice_log::batch::set_base_offset(&mut odd, 5);
    follower.append_replicated(&odd, T0).expect("replicate unchecked");
    assert_eq!(retained(&follower, PID), [(77, 77, 5, 5)]);
}

#[test]
fn reopening_rebuilds_the_state_so_a_resend_after_a_restart_is_still_a_duplicate() {
    let f = Fixture::new();
    let mut log = with_batches(&f, &small(), 7);
    send(&mut log, batch(11, 5, 40, 2)).expect("append");
    let entries = (log.producer_entry(PID).cloned(), log.producer_entry(11).cloned());
    assert!(log.segment_base_offsets().len() > 1);
    log.close().expect("close");

    let mut log = f.open(&small(), T0);
    assert_eq!((log.producer_entry(PID).cloned(), log.producer_entry(11).cloned()), entries);
    let before = footprint(&f, &log);
    assert_eq!(send(&mut log, batch(PID, 0, 18, 3)).expect("resend"), (24, 26, true));
    assert_eq!(send(&mut log, batch(11, 5, 40, 2)).expect("resend"), (28, 29, true));
    assert_eq!(footprint(&f, &log), before);
    drop(log);

    // --- the same without the leader-epoch checkpoint (its rebuild shares the scan), and
    //     after a crash (no close)
    fs::remove_file(f.dir().join(sluice_log::epoch::LEADER_EPOCH_CHECKPOINT)).expect("remove");
    let mut log = f.open(&small(), T0);
    assert!(log.recovery_report().epoch_cache_rebuilt.is_some());
    assert_eq!((log.producer_entry(PID).cloned(), log.producer_entry(11).cloned()), entries);
    assert_eq!(send(&mut log, batch(PID, 0, 12, 3)).expect("resend"), (16, 18, true));
    assert_eq!(send(&mut log, batch(PID, 0, 21, 1)).expect("next"), (30, 30, false));
}

#[test]
fn truncation_forgets_what_it_cut_so_a_resend_of_a_cut_batch_is_written_again() {
    let f = Fixture::new();
    let mut log = with_batches(&f, &small(), 4);
    // Batches at 0, 4, 8, 12 (sequences 0, 3, 6, 9); cut inside the third one.
    log.truncate_to(9, T0).expect("truncate");
    assert_eq!(log.log_end_offset(), 8, "cut at the start of the batch holding 9");
    assert_eq!(retained(&log, PID), [(0, 2, 0, 2), (3, 5, 4, 6)]);
    assert_eq!(send(&mut log, batch(PID, 0, 6, 3)).expect("resend of a cut batch"), (8, 10, false));
    assert_eq!(send(&mut log, batch(PID, 0, 6, 3)).expect("resent again"), (8, 10, true));

    // --- a producer left with no retained batch: rebuilt from the log, its older epoch's
    //     batches are its latest again
    send(&mut log, batch(PID, 1, 0, 2)).expect("new epoch");
    assert_eq!(retained(&log, PID), [(0, 1, 11, 12)]);
    log.truncate_to(11, T0).expect("truncate");
    assert_eq!(log.producer_entry(PID).map(|e| e.epoch), Some(0));
    assert_eq!(retained(&log, PID), [(0, 2, 0, 2), (3, 5, 4, 6), (6, 8, 8, 10)]);
    assert_eq!(send(&mut log, batch(PID, 0, 6, 3)).expect("resend"), (8, 10, true));

    // --- a producer whose batches are all cut is unknown
    log.truncate_to(0, T0).expect("truncate");
    assert_eq!(log.producer_entry(PID), None);
    assert_eq!(send(&mut log, batch(PID, 0, 0, 3)).expect("written again"), (0, 2, false));
    log.truncate_fully_and_start_at(100, T0).expect("truncate fully");
    assert_eq!(log.producer_entry(PID), None);
    assert_eq!(send(&mut log, batch(PID, 0, 0, 3)).expect("written again"), (100, 102, false));
}

#[test]
fn retention_keeps_the_state_until_the_log_is_reopened() {
    let f = Fixture::new();
    let config = LogConfig { retention_bytes: Some(1), ..small() };
    let mut log = with_batches(&f, &config, 4);
    let entry = log.producer_entry(PID).cloned();
    send(&mut log, batch(-1, -1, -1, 15)).expect("a large batch to roll");
    send(&mut log, batch(-1, -1, -1, 1)).expect("append");
    let report = log.tick(T0).expect("tick");
    assert!(log.log_start_offset() > 15, "{report:?}");
    assert_eq!(log.producer_entry(PID).cloned(), entry, "Kafka expires producers by time, not retention");
    assert_eq!(send(&mut log, batch(PID, 0, 9, 3)).expect("resend"), (12, 14, true));
    log.close().expect("close");
    let mut log = f.open(&config, T0);
    assert_eq!(log.producer_entry(PID), None, "rebuilt from what remains");
    assert!(!send(&mut log, batch(PID, 0, 9, 3)).expect("accepted").2);
}

/// A compacted log whose every round of appends gets its own segment.
fn compacted() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        roll_ms: 50,
        retention_ms: None,
        cleanup_policy: CleanupPolicy::COMPACT,
        ..LogConfig::default()
    }
}

#[test]
fn compaction_keeps_the_producer_fields_and_each_producers_latest_batch() {
    let f = Fixture::new();
    let mut log = f.open(&compacted(), T0);
    // One round per segment (timestamps 100 ms apart, `log.roll.ms` 50).
    let put = |log: &mut Log, round: i64, pid: i64, epoch: i16, seq: i32, keys: &[&str]| {
        let ts = T0 + round * 100;
        log.append(&mut keyed_at(ts, pid, epoch, seq, keys), ts).expect("append")
    };
    // Producer PID writes a, b (seq 0-1), then c (seq 2); producer 9 writes x (seq 0).
    // Plain writes then supersede b and c, and x.
    put(&mut log, 1, PID, 3, 0, &["a", "b"]);
    put(&mut log, 2, PID, 3, 2, &["c"]);
    put(&mut log, 3, 9, 0, 0, &["x"]);
    put(&mut log, 4, -1, -1, -1, &["b", "c", "x"]);
    put(&mut log, 5, -1, -1, -1, &["filler"]);
    assert_eq!(log.segment_base_offsets(), [0, 2, 3, 4, 7]);
    let report = log.clean(0, T0 + 10_000).expect("clean").expect("cleaned");
    assert_eq!(report.records_removed, 3);

    let stored: Vec<(i64, i32, i64, i16, i32, i32)> =
        batches(&log.read(0, usize::MAX).expect("read").records)
            .map(|b| {
                let h = b.expect("valid").header;
                (
                    h.base_offset,
                    h.last_offset_delta,
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.records_count,
                )
            })
            .collect();
    assert_eq!(
        stored,
        [
            (0, 1, PID, 3, 0, 1), // rewritten with a only: producer fields and sequences kept
            (2, 0, PID, 3, 2, 0), // PID's latest batch, all gone: kept empty
            (3, 0, 9, 0, 0, 0),   // 9's latest batch, all gone: kept empty
            (4, 2, -1, -1, -1, 3),
            (7, 0, -1, -1, -1, 1),
        ]
    );

    // --- reopened, the state still knows the producers' last sequences
    let entries = (log.producer_entry(PID).cloned(), log.producer_entry(9).cloned());
    log.close().expect("close");
    let mut log = f.open(&compacted(), T0 + 10_000);
    assert_eq!((log.producer_entry(PID).cloned(), log.producer_entry(9).cloned()), entries);
    assert_eq!(send(&mut log, keyed(PID, 3, 2, &["c"])).expect("resend"), (2, 2, true));
    assert!(matches!(
        send(&mut log, keyed(PID, 3, 4, &["d"])),
        Err(LogError::OutOfOrderSequence { expected: 3, got: 4, .. })
    ));
    assert_eq!(send(&mut log, keyed(PID, 3, 3, &["d"])).expect("next"), (8, 8, false));

    // --- a second pass drops a kept empty batch once it is no longer the latest
    put(&mut log, 200, -1, -1, -1, &["d"]);
    put(&mut log, 201, -1, -1, -1, &["filler"]);
    log.clean(0, T0 + 30_000).expect("clean").expect("cleaned");
    let bases: Vec<(i64, i64)> = batches(&log.read(0, usize::MAX).expect("read").records)
        .map(|b| {
            let h = b.expect("valid").header;
            (h.base_offset, h.producer_id)
        })
        .filter(|&(_, pid)| pid >= 0)
        .collect();
    assert_eq!(bases, [(0, PID), (3, 9), (8, PID)]);
}

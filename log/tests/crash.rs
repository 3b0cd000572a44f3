//! Crash recovery (issue 5, "Shown by tests"): a child process appending to a log is
//! SIGKILLed at random points; reopening must give a log whose every batch passes its CRC
//! and that holds every batch the child reported flushed, each record at the offset it was
//! written at. The child is `sluice-log-crash-writer` (`src/bin/crash_writer.rs`); it prints
//! `flushed <offset>` after each fsync. Set `SLUICE_CRASH_SEED` to replay a seed (the kill
//! timing still varies with the machine).

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_log::batch::batches;
use sluice_log::{Log, LogConfig};

/// Kills the child if the test ends early, so no writer outlives it.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Opens the log and checks it: every batch valid, offsets contiguous from 0, every record
/// holding its own offset, nothing flushed missing. Returns the log end offset.
fn check(dir: &Path, flushed: i64, seed: u64) -> i64 {
    let config = LogConfig { segment_bytes: 64 * 1024, index_interval_bytes: 1024, ..LogConfig::default() };
    let log = Log::open(dir, config, 0).expect("reopen after the kill");
    let end = log.log_end_offset();
    let report = log.recovery_report();
    println!(
        "reopened: end {end}, flushed {flushed}, {} segments loaded, {} scanned, cut: {:?}",
        report.loaded_segments,
        report.recovered_segments.len(),
        report.truncation.as_ref().map(|t| (t.position, t.bytes, &t.reason))
    );
    assert!(end >= flushed, "seed {seed}: log ends at {end}, but offsets below {flushed} were flushed");
    assert_eq!(log.log_start_offset(), 0);
    let all = log.read(0, usize::MAX).expect("read everything");
    let mut next = 0;
    for batch in batches(&all.records) {
        let batch = batch.unwrap_or_else(|e| panic!("seed {seed}: a stored batch is invalid: {e}"));
        assert_eq!(batch.header.base_offset, next, "seed {seed}: offsets are contiguous");
        for r in batch.records(1 << 24).expect("records decode") {
            let offset = batch.header.base_offset + i64::from(r.offset_delta);
            let value = r.value.expect("a value");
            let want = format!("offset-{offset}:");
            assert!(
                value.starts_with(want.as_bytes()),
                "seed {seed}: record at {offset} is not the one written there"
            );
        }
        next = batch.last_offset() + 1;
    }
    assert_eq!(next, end, "seed {seed}: the batches read end at the log end");
    end
}

#[test]
fn a_writer_killed_at_random_points_loses_nothing_it_flushed() {
    let seed = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    println!("SLUICE_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("crash-0");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut flushed = 0;
    let mut end = 0;
    for round in 0..5u64 {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice-log-crash-writer"))
            .arg(&dir)
            .arg((seed.wrapping_add(round)).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the writer");
        let mut writer = Writer(child);
        let stdout = writer.0.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let parse = |line: &str| -> Option<i64> { line.strip_prefix("flushed ")?.parse().ok() };

        // --- let it run for a random number of appends and flushes, then SIGKILL it
        let kill_after = 2 + rng.gen_range(0..60);
        let mut seen = 0;
        while seen < kill_after {
            let line = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => panic!("seed {seed}: the writer stalled"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("seed {seed}: the writer exited: {:?}", writer.0.wait())
                }
            };
            if let Some(started) = line.strip_prefix("started ") {
                assert_eq!(
                    started.parse::<i64>().ok(),
                    Some(end),
                    "seed {seed}: the writer resumed at the end"
                );
            }
            if let Some(offset) = parse(&line) {
                flushed = flushed.max(offset);
            }
            seen += 1;
        }
        writer.0.kill().expect("SIGKILL");
        writer.0.wait().expect("reap");
        // Lines printed before the kill are still in the pipe.
        for line in rx.iter() {
            if let Some(offset) = parse(&line) {
                flushed = flushed.max(offset);
            }
        }
        reader.join().expect("reader thread");

        // --- reopen: everything flushed is there, and every batch is whole
        end = check(&dir, flushed, seed);
        assert!(Instant::now() < deadline, "seed {seed}: took too long");
    }
    assert!(flushed > 0);
}

//! Test helper for `log/tests/crash.rs`, not a tool: appends random batches to the log in
//! the partition directory given as the first argument until it is killed, flushing every
//! few batches. After each flush it writes the recovery-point checkpoint and prints
//! `flushed <offset>`: every offset below it is on disk. Record values are
//! `offset-<offset>:` plus filler, so a reader can check each record is where it was put.
//! It also prints `appended <last offset>` after each append, so the test can pick its
//! moment anywhere in the cycle.
//!
//! `sluice-log-crash-writer <partition dir> <seed>`

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use sluice_log::checkpoint::{self, RECOVERY_POINT_CHECKPOINT};
use sluice_log::{BatchHeader, Compression, Log, LogConfig, Record, RecordBatch};

/// The configuration the crash test reopens with.
fn config() -> LogConfig {
    LogConfig { segment_bytes: 64 * 1024, index_interval_bytes: 1024, ..LogConfig::default() }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(Ok(seed))) = (args.get(1), args.get(2).map(|s| s.parse::<u64>())) else {
        eprintln!("usage: sluice-log-crash-writer <partition dir> <seed>");
        return ExitCode::from(2);
    };
    match run(PathBuf::from(dir), seed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash writer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: PathBuf, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now = 1_700_000_000_000i64;
    let mut log = Log::open(&dir, config(), now)?;
    let checkpoint_path =
        dir.parent().ok_or("the partition directory has no parent")?.join(RECOVERY_POINT_CHECKPOINT);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "started {}", log.log_end_offset())?;
    stdout.flush()?;
    let mut since_flush = 0;
    let mut flush_every = 1 + rng.gen_range(0..6);
    loop {
        now += 1 + rng.gen_range(0..5) as i64;
        let base = log.log_end_offset();
        let count: i32 = 1 + rng.gen_range(0..30);
        let records = (0..count)
            .map(|i| {
                let mut value = format!("offset-{}:", base + i64::from(i)).into_bytes();
                let filler = rng.gen_range(0..600) as usize;
                value.extend((0..filler).map(|j| b'a' + ((j as u64 + seed) % 26) as u8));
                Record {
                    offset_delta: i,
                    timestamp_delta: i64::from(i),
                    key: None,
                    value: Some(Bytes::from(value)),
                    headers: vec![],
                }
            })
            .collect();
        let batch = RecordBatch {
            header: BatchHeader::new(
                Compression::from_id(rng.gen_range(0..5) as u8)?,
                now,
                now + i64::from(count) - 1,
            ),
            records,
        };
        let mut bytes = batch.encode();
        let info = log.append(&mut bytes, now)?;
        // Lets the test kill at any point of the cycle, not only just after a flush.
        writeln!(stdout, "appended {}", info.last_offset)?;
        stdout.flush()?;
        since_flush += 1;
        if since_flush >= flush_every {
            log.flush()?;
            log.tick(now)?;
            let mut points = BTreeMap::new();
            points.insert(log.topic_partition().clone(), log.recovery_point());
            checkpoint::write(&checkpoint_path, &points)?;
            writeln!(stdout, "flushed {}", log.recovery_point())?;
            stdout.flush()?;
            since_flush = 0;
            flush_every = 1 + rng.gen_range(0..6);
        }
    }
}

//! Fixtures shared by the log's integration tests: a self-deleting log directory with one
//! partition directory, and helpers to append and to list what a log holds. Each test crate
//! uses a part of them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use sluice_log::batch::batches;
use sluice_log::checkpoint::{self, RECOVERY_POINT_CHECKPOINT};
use sluice_log::{Log, LogConfig, TopicPartition};

pub const T0: i64 = 1_700_000_000_000;

/// A temporary log directory holding one partition directory, `orders-3`.
pub struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture { tmp: tempfile::tempdir().expect("tempdir") }
    }
    /// The log directory (the partition directory's parent, where checkpoints live).
    pub fn log_dir(&self) -> &Path {
        self.tmp.path()
    }
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("orders-3")
    }
    pub fn open(&self, config: &LogConfig, now_ms: i64) -> Log {
        Log::open(self.dir(), config.clone(), now_ms).expect("open log")
    }
    pub fn file(&self, base: i64, ext: &str) -> PathBuf {
        self.dir().join(format!("{base:020}.{ext}"))
    }
    /// Writes the recovery-point checkpoint as a log manager would.
    pub fn checkpoint(&self, log: &Log) {
        let mut points = BTreeMap::new();
        points.insert(TopicPartition::new("orders", 3), log.recovery_point());
        checkpoint::write(&self.tmp.path().join(RECOVERY_POINT_CHECKPOINT), &points).expect("checkpoint");
    }
    pub fn files(&self, ext: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(&format!(".{ext}")))
            .collect();
        names.sort();
        names
    }
}

pub fn append(log: &mut Log, mut bytes: Vec<u8>, now_ms: i64) -> (i64, i64, Vec<u8>) {
    let info = log.append(&mut bytes, now_ms).expect("append");
    (info.base_offset, info.last_offset, bytes)
}

/// Every batch from the start, checked: (base offset, last offset, max timestamp).
pub fn all_batches(log: &Log) -> Vec<(i64, i64, i64)> {
    let r = log.read(log.log_start_offset(), usize::MAX).expect("read all");
    batches(&r.records)
        .map(|b| {
            let b = b.expect("every stored batch passes its CRC");
            (b.header.base_offset, b.last_offset(), b.header.max_timestamp)
        })
        .collect()
}

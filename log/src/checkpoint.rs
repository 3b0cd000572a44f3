//! Kafka's offset checkpoint files, which live in a log directory next to the partition
//! directories: `recovery-point-offset-checkpoint` (everything below the offset is on disk,
//! so recovery scans from there), `replication-offset-checkpoint` (high watermarks),
//! `log-start-offset-checkpoint` (log starts moved by DeleteRecords) and
//! `cleaner-offset-checkpoint` (how far each compacted log is cleaned).
//!
//! ```text
//! 0                      version
//! 2                      number of entries
//! orders 0 1500          topic partition offset
//! orders 1 1432
//! ```
//!
//! The partition directory's `leader-epoch-checkpoint` ([`crate::epoch`]) has the same
//! layout (version, count, entries) and is read and written by the same code.
//!
//! [`write()`] replaces a file atomically: a temporary file is written and fsynced, renamed
//! over the old one, and the directory is fsynced, so a crash leaves the old file or the
//! new one, never a mixture. One file serves every partition in the directory, so writing
//! it is the job of whoever owns all of them (the broker's log manager), not of one
//! [`crate::Log`].

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sluice_broker_core::TopicPartition;

/// File name of the recovery-point checkpoint.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// File name of the high-watermark checkpoint.
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// File name of the log-start-offset checkpoint: per partition whose log start was moved
/// inside a segment (DeleteRecords), where it now is.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// File name of the cleaner's checkpoint: per compacted partition, the first offset not yet
/// cleaned (written by [`crate::LogCleaner`]).
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

const VERSION: &str = "0";

/// Why a checkpoint file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// The OS's error.
        source: io::Error,
    },
    /// The file is not in the format above.
    #[error("checkpoint {path} line {line}: {reason}")]
    Malformed {
        /// The checkpoint file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A topic name that the format cannot hold (empty, or with white space).
    #[error("topic name {0:?} cannot be written to a checkpoint")]
    BadTopic(String),
}

/// Reads a checkpoint file; a missing file is an empty one (a new log directory).
pub fn read(path: &Path) -> Result<BTreeMap<TopicPartition, i64>, CheckpointError> {
    let entries = read_entries(path, |line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [topic, partition, offset] = fields[..] else {
            return Err(format!("expected \"topic partition offset\", found {line:?}"));
        };
        let partition = partition.parse().map_err(|e| format!("bad partition: {e}"))?;
        let offset = offset.parse().map_err(|e| format!("bad offset: {e}"))?;
        Ok((TopicPartition::new(topic, partition), offset))
    })?;
    Ok(entries.unwrap_or_default().into_iter().collect())
}

/// Replaces a checkpoint file atomically (temporary file, fsync, rename, fsync directory).
pub fn write(path: &Path, entries: &BTreeMap<TopicPartition, i64>) -> Result<(), CheckpointError> {
    let mut lines = Vec::with_capacity(entries.len());
    for (tp, offset) in entries {
        if tp.topic.is_empty() || tp.topic.chars().any(char::is_whitespace) {
            return Err(CheckpointError::BadTopic(tp.topic.clone()));
        }
        lines.push(format!("{} {} {offset}", tp.topic, tp.partition));
    }
    write_entries(path, &lines)
}

/// Reads a file in Kafka's checkpoint layout — the version line (`0`), the entry count,
/// then that many entry lines, nothing after them but blank lines — handing each entry
/// line to `parse`, which says why a line is wrong. `None` when the file does not exist.
/// Shared by the offset checkpoints here and `leader-epoch-checkpoint`
/// ([`crate::epoch`]).
pub(crate) fn read_entries<T>(
    path: &Path,
    mut parse: impl FnMut(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>, CheckpointError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Io { path: path.to_path_buf(), source }),
    };
    let bad =
        |line: usize, reason: String| CheckpointError::Malformed { path: path.to_path_buf(), line, reason };
    let mut lines = text.lines();
    match lines.next() {
        Some(VERSION) => {}
        Some(other) => return Err(bad(1, format!("version {other:?} is not supported (only 0)"))),
        None => return Err(bad(1, "the file is empty".into())),
    }
    let count: usize = lines
        .next()
        .ok_or_else(|| bad(2, "the entry count is missing".into()))?
        .trim()
        .parse()
        .map_err(|e| bad(2, format!("the entry count is not a number: {e}")))?;
    // The count is not trusted for the allocation: the lines present bound it.
    let mut entries = Vec::with_capacity(count.min(text.len() / 2));
    for i in 0..count {
        let line_no = i + 3;
        let line =
            lines.next().ok_or_else(|| bad(line_no, format!("{count} entries declared, {i} present")))?;
        entries.push(parse(line).map_err(|reason| bad(line_no, reason))?);
    }
    if let Some((i, extra)) = lines.enumerate().find(|(_, l)| !l.trim().is_empty()) {
        return Err(bad(count + 3 + i, format!("more lines than the {count} entries declared: {extra:?}")));
    }
    Ok(Some(entries))
}

/// Replaces `path` atomically with a file in Kafka's checkpoint layout holding `lines` as
/// its entries: a temporary file (`<path>.tmp`) is written and fsynced, renamed over
/// `path`, and the directory is fsynced.
pub(crate) fn write_entries(path: &Path, lines: &[String]) -> Result<(), CheckpointError> {
    let mut text = format!("{VERSION}\n{}\n", lines.len());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let io_err = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(io_err)?;
    file.write_all(text.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_kafkas_text_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        assert!(read(&path).expect("missing file").is_empty());
        let mut entries = BTreeMap::new();
        entries.insert(TopicPartition::new("orders", 0), 1500);
        entries.insert(TopicPartition::new("my-topic", 12), 7);
        write(&path, &entries).expect("write");
        let text = fs::read_to_string(&path).expect("read text");
        assert_eq!(text, "0\n2\nmy-topic 12 7\norders 0 1500\n");
        assert_eq!(read(&path).expect("read"), entries);
        assert!(!dir.path().join(format!("{RECOVERY_POINT_CHECKPOINT}.tmp")).exists());
    }

    #[test]
    fn damage_names_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(REPLICATION_OFFSET_CHECKPOINT);
        for (text, line) in [
            ("1\n0\n", 1),
            ("0\nx\n", 2),
            ("0\n2\na 0 1\n", 4),
            ("0\n1\na 0\n", 3),
            ("0\n1\na zero 1\n", 3),
            ("0\n1\na 0 1\nb 0 2\n", 4),
        ] {
            fs::write(&path, text).expect("write");
            match read(&path) {
                Err(CheckpointError::Malformed { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: expected Malformed, got {other:?}"),
            }
        }
        let mut bad = BTreeMap::new();
        bad.insert(TopicPartition::new("a b", 0), 1);
        assert!(matches!(write(&path, &bad), Err(CheckpointError::BadTopic(_))));
    }

    #[test]
    fn partition_directory_names_parse_at_the_last_dash() {
        assert_eq!(TopicPartition::from_dir_name("my-topic-3"), Some(TopicPartition::new("my-topic", 3)));
        assert_eq!(TopicPartition::new("t", 0).to_string(), "t-0");
        for bad in ["topic", "-3", "topic-", "topic-x", "topic-+1", "topic-99999999999"] {
            assert_eq!(TopicPartition::from_dir_name(bad), None, "{bad}");
        }
    }
}

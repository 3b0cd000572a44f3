//! Kafka's `DumpLogSegments` (kafka-dump-log.sh) for the files of one partition directory,
//! read without a broker: a segment's batches (and, deep, their records), an offset index's
//! and a time index's entries, line for line in Kafka's format.
//!
//! ```text
//! Dumping 00000000000000000000.log
//! Log starting offset: 0
//! baseOffset: 0 lastOffset: 1 count: 2 baseSequence: -1 lastSequence: -1 producerId: -1 producerEpoch: -1 partitionLeaderEpoch: 0 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1700000000000 size: 82 magic: 2 compresscodec: none crc: 2914617331 isvalid: true
//! | offset: 0 CreateTime: 1700000000000 keySize: 1 valueSize: 3 sequence: -1 headerKeys: [] key: k payload: abc
//! ```
//!
//! A batch that does not parse (truncated, bad CRC, unknown magic) ends the listing of its
//! file with a line saying where and why; the rest of the file is not guessed at.

use std::fmt::Write as _;
use std::path::Path;

use crate::batch::{batches, stored_crc, BatchView, TimestampType};
use crate::error::{IoContext, LogError};
use crate::index::{Entry, IndexFile, OffsetEntry, TimeEntry};

/// Why a file cannot be dumped.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Reading it failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// It is not a file of a partition directory that can be dumped, or is torn.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, and what to give instead.
        reason: String,
    },
}

/// How much of a segment to print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpOptions {
    /// Each record's line too (`--deep-iteration`).
    pub deep_iteration: bool,
    /// Each record's key and value too (`--print-data-log`; implies deep iteration).
    pub print_data_log: bool,
}

/// The base offset a segment file's name carries (`00000000000000000042.log` → 42).
fn base_offset(path: &Path) -> Result<i64, DumpError> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    stem.parse().map_err(|_| DumpError::Unreadable {
        path: path.to_path_buf(),
        reason:
            "not a segment file: its name is not a base offset (20 digits, e.g. 00000000000000000000.log)"
                .into(),
    })
}

/// Kafka's text for `path` (a `.log`, `.index` or `.timeindex` file).
pub fn dump_file(path: &Path, options: DumpOptions) -> Result<String, DumpError> {
    let name = path.display();
    let mut out = format!("Dumping {name}\n");
    match path.extension().and_then(|e| e.to_str()) {
        Some("log") => {
            let base = base_offset(path)?;
            let bytes = std::fs::read(path).ctx("read segment", path)?;
            let _ = writeln!(out, "Log starting offset: {base}");
            dump_batches(&bytes, options, &mut out);
        }
        Some("index") => {
            let base = base_offset(path)?;
            for e in read_index::<OffsetEntry>(path)? {
                let _ = writeln!(out, "offset: {} position: {}", base + i64::from(e.rel_offset), e.position);
            }
        }
        Some("timeindex") => {
            let base = base_offset(path)?;
            for e in read_index::<TimeEntry>(path)? {
                let _ =
                    writeln!(out, "timestamp: {} offset: {}", e.timestamp, base + i64::from(e.rel_offset));
            }
        }
        _ => {
            return Err(DumpError::Unreadable {
                path: path.to_path_buf(),
                reason: "not a file kafka-dump-log reads: give a .log, .index or .timeindex file".into(),
            })
        }
    }
    Ok(out)
}

fn read_index<E: Entry>(path: &Path) -> Result<Vec<E>, DumpError> {
    IndexFile::<E>::read(path)?.ok_or_else(|| DumpError::Unreadable {
        path: path.to_path_buf(),
        reason: format!("missing, or its length is not a whole number of {}-byte entries", E::SIZE),
    })
}

fn timestamp_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

/// One line per batch (and per record, deep), from position 0 of a segment's bytes.
fn dump_batches(bytes: &[u8], options: DumpOptions, out: &mut String) {
    let mut position = 0usize;
    for batch in batches(bytes) {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                let _ = writeln!(
                    out,
                    "Found an invalid batch at position {position} ({} bytes left unread): {e}",
                    bytes.len() - position
                );
                return;
            }
        };
        batch_line(&batch, position, out);
        if options.deep_iteration || options.print_data_log {
            record_lines(&batch, options.print_data_log, out);
        }
        position += batch.len();
    }
}

fn batch_line(batch: &BatchView<'_>, position: usize, out: &mut String) {
    let h = &batch.header;
    let last_sequence =
        if h.base_sequence < 0 { -1 } else { h.base_sequence.wrapping_add(h.last_offset_delta) };
    let crc = stored_crc(batch.bytes);
    let _ = writeln!(
        out,
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {last_sequence} producerId: {} \
         producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} deleteHorizonMs: \
         OptionalLong.empty position: {position} {}: {} size: {} magic: 2 compresscodec: {} crc: {crc} isvalid: true",
        h.base_offset,
        batch.last_offset(),
        h.records_count,
        h.base_sequence,
        h.producer_id,
        h.producer_epoch,
        h.partition_leader_epoch,
        h.is_transactional,
        h.is_control,
        timestamp_name(h.timestamp_type),
        h.max_timestamp,
        batch.len(),
        h.compression.name(),
    );
}

fn record_lines(batch: &BatchView<'_>, data: bool, out: &mut String) {
    let h = &batch.header;
    let records = match batch.records(usize::MAX) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(out, "| the records of this batch cannot be read: {e}");
            return;
        }
    };
    for r in records {
        let offset = h.base_offset + i64::from(r.offset_delta);
        let timestamp = match h.timestamp_type {
            TimestampType::CreateTime => h.base_timestamp + r.timestamp_delta,
            TimestampType::LogAppendTime => h.max_timestamp,
        };
        let sequence = if h.base_sequence < 0 { -1 } else { h.base_sequence.wrapping_add(r.offset_delta) };
        let size = |b: &Option<bytes::Bytes>| b.as_ref().map_or(-1, |b| b.len() as i64);
        let headers: Vec<&str> = r.headers.iter().map(|x| x.key.as_str()).collect();
        let _ = write!(
            out,
            "| offset: {offset} {}: {timestamp} keySize: {} valueSize: {} sequence: {sequence} headerKeys: [{}]",
            timestamp_name(h.timestamp_type),
            size(&r.key),
            size(&r.value),
            headers.join(","),
        );
        if data {
            let text = |b: &Option<bytes::Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
            if let Some(k) = text(&r.key) {
                let _ = write!(out, " key: {k}");
            }
            let _ = write!(out, " payload: {}", text(&r.value).unwrap_or_else(|| "null".into()));
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchHeader, Header, Record, RecordBatch};
    use crate::Compression;

    fn segment() -> Vec<u8> {
        let mut header = BatchHeader::new(Compression::None, 1_700_000_000_000, 1_700_000_000_005);
        header.base_offset = 0;
        let records = vec![
            Record {
                offset_delta: 0,
                timestamp_delta: 0,
                key: Some("k".into()),
                value: Some("abc".into()),
                headers: vec![Header { key: "h".into(), value: None }],
            },
            Record {
                offset_delta: 1,
                timestamp_delta: 5,
                key: None,
                value: Some("de".into()),
                headers: vec![],
            },
        ];
        RecordBatch { header, records }.encode()
    }

    #[test]
    fn a_segment_dumps_as_kafkas_tool_prints_it_and_a_bad_tail_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("00000000000000000000.log");
        let mut bytes = segment();
        let one = bytes.len();
        bytes.extend(segment());
        bytes.extend_from_slice(&[0, 0, 0]);
        std::fs::write(&path, &bytes).expect("write");
        let plain = dump_file(&path, DumpOptions::default()).expect("dump");
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines[1], "Log starting offset: 0");
        assert!(
            lines[2].starts_with("baseOffset: 0 lastOffset: 1 count: 2 baseSequence: -1 lastSequence: -1"),
            "{plain}"
        );
        assert!(lines[2].contains(" position: 0 CreateTime: 1700000000005 "), "{plain}");
        assert!(lines[3].contains(&format!(" position: {one} ")), "{plain}");
        assert!(
            lines[4].starts_with(&format!(
                "Found an invalid batch at position {} (3 bytes left unread)",
                2 * one
            )),
            "{plain}"
        );
        let data =
            dump_file(&path, DumpOptions { print_data_log: true, ..Default::default() }).expect("dump");
        assert!(data.contains("| offset: 0 CreateTime: 1700000000000 keySize: 1 valueSize: 3 sequence: -1 headerKeys: [h] key: k payload: abc\n"), "{data}");
        assert!(data.contains("| offset: 1 CreateTime: 1700000000005 keySize: -1 valueSize: 2 sequence: -1 headerKeys: [] payload: de\n"), "{data}");
        let deep =
            dump_file(&path, DumpOptions { deep_iteration: true, ..Default::default() }).expect("dump");
        assert!(deep.contains("headerKeys: [h]\n") && !deep.contains("payload"), "{deep}");
    }

    #[test]
    fn indexes_dump_their_entries_and_other_files_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let index = dir.path().join("00000000000000000100.index");
        std::fs::write(&index, [0, 0, 0, 5, 0, 0, 16, 0]).expect("write");
        assert_eq!(
            dump_file(&index, DumpOptions::default()).expect("dump").lines().nth(1),
            Some("offset: 105 position: 4096")
        );
        let time = dir.path().join("00000000000000000100.timeindex");
        let mut entry = 1_700_000_000_000i64.to_be_bytes().to_vec();
        entry.extend_from_slice(&7u32.to_be_bytes());
        std::fs::write(&time, &entry).expect("write");
        assert_eq!(
            dump_file(&time, DumpOptions::default()).expect("dump").lines().nth(1),
            Some("timestamp: 1700000000000 offset: 107")
        );
        std::fs::write(&index, [0, 0, 0]).expect("write");
        assert!(dump_file(&index, DumpOptions::default()).is_err(), "a torn index");
        let other = dir.path().join("leader-epoch-checkpoint");
        std::fs::write(&other, "0\n").expect("write");
        assert!(dump_file(&other, DumpOptions::default())
            .err()
            .is_some_and(|e| e.to_string().contains(".timeindex")));
    }
}

//! From a fetch answer's bytes to a consumer's records, as a pure function.
//!
//! A fetch returns whole RecordBatch v2 batches as the leader stored them. The first batch
//! may start before the offset asked for (a consumer positioned in the middle of a batch):
//! its earlier records are skipped. Records at or past the high watermark are not returned
//! (they are not committed yet). Control batches and the gaps compaction leaves are stepped
//! over, so the next position is past the last batch read, not just past its last record.
//! A batch cut short at the end of the answer is left for the next fetch; a batch that is
//! corrupt (CRC, codec, records) stops the extraction there with an error, after the records
//! before it.

use bytes::Bytes;
use sluice_log::batch::BatchHeader;
use sluice_log::{BatchError, BatchView, TimestampType};

use super::consumer::ConsumerRecord;

/// Most bytes one batch may decompress to. A producer's batch holds at most
/// `max.request.size` (1 MiB by default) of uncompressed records; this bounds what a
/// damaged or hostile batch can make the consumer allocate.
pub(crate) const MAX_BATCH_UNCOMPRESSED: usize = 64 << 20;

/// The records of one partition's answer.
#[derive(Debug)]
pub(crate) struct Extracted {
    /// Records from the position on, below the high watermark, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// Where the next fetch starts.
    pub next_offset: i64,
    /// The batch that stopped the extraction: its offset and what is wrong with it.
    pub error: Option<(i64, BatchError)>,
}

/// Parses the batch at the front of `bytes`, checking its CRC only if asked.
fn parse(bytes: &[u8], check_crc: bool) -> Result<BatchView<'_>, BatchError> {
    if check_crc {
        return BatchView::parse(bytes);
    }
    let (header, total) = BatchHeader::parse_prefix(bytes)?;
    let whole = bytes.get(..total).ok_or(BatchError::Truncated { need: total, have: bytes.len() })?;
    Ok(BatchView { header, bytes: whole })
}

/// The records of `topic`-`partition` in `bytes` from `position` on, below `high_watermark`.
pub(crate) fn extract(
    topic: &str,
    partition: i32,
    bytes: &[u8],
    position: i64,
    high_watermark: i64,
    check_crcs: bool,
) -> Extracted {
    let mut records = Vec::new();
    let mut next = position;
    let mut error = None;
    let mut rest = bytes;
    'batches: while !rest.is_empty() {
        let view = match parse(rest, check_crcs) {
            Ok(v) => v,
            // The answer ends in the middle of a batch: the next fetch gets it whole.
            Err(BatchError::Truncated { .. }) if next > position => break,
            Err(e) => {
                error = Some((next, e));
                break;
            }
        };
        rest = &rest[view.len()..];
        let header = &view.header;
        let last = view.last_offset();
        if last < next {
            continue;
        }
        if header.base_offset >= high_watermark {
            break;
        }
        if !header.is_control {
            let decoded = match view.records(MAX_BATCH_UNCOMPRESSED) {
                Ok(r) => r,
                Err(e) => {
                    error = Some((header.base_offset.max(next), e));
                    break;
                }
            };
            for r in decoded {
                let offset = header.base_offset + i64::from(r.offset_delta);
                if offset < next {
                    continue;
                }
                if offset >= high_watermark {
                    break 'batches;
                }
                let timestamp = match header.timestamp_type {
                    TimestampType::LogAppendTime => header.max_timestamp,
                    TimestampType::CreateTime => header.base_timestamp.wrapping_add(r.timestamp_delta),
                };
                records.push(ConsumerRecord {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    timestamp,
                    timestamp_type: header.timestamp_type,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|h| (h.key, h.value))
                        .collect::<Vec<(String, Option<Bytes>)>>(),
                });
                next = offset + 1;
            }
        }
        if last >= high_watermark {
            // The batch ends past the high watermark, and every record of it below the
            // watermark has been read: go on from the watermark later.
            next = next.max(high_watermark);
            break;
        }
        next = next.max(last + 1);
    }
    Extracted { records, next_offset: next, error }
}

#[cfg(test)]
mod tests {
    use sluice_log::{BatchHeader, Compression, Header, Record, RecordBatch};

    use super::*;

    /// A batch of `count` records from `base`, value = offset as text.
    fn batch(base: i64, count: i32, compression: Compression) -> Vec<u8> {
        let mut header = BatchHeader::new(compression, 1_000 + base, 1_000 + base + i64::from(count));
        header.base_offset = base;
        let records = (0..count)
            .map(|i| Record {
                offset_delta: i,
                timestamp_delta: i64::from(i),
                key: (i % 2 == 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from((base + i64::from(i)).to_string())),
                headers: vec![Header { key: "h".into(), value: Some(Bytes::from("v")) }],
            })
            .collect();
        RecordBatch { header, records }.encode()
    }

    fn offsets(e: &Extracted) -> Vec<i64> {
        e.records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn records_before_the_position_are_skipped_within_and_across_batches() {
        for c in
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        {
            let mut bytes = batch(10, 5, c);
            bytes.extend(batch(15, 5, c));
            bytes.extend(batch(20, 3, c));
            let e = extract("t", 0, &bytes, 13, 100, true);
            assert_eq!(offsets(&e), (13..23).collect::<Vec<_>>(), "{c:?}");
            assert_eq!(e.next_offset, 23);
            assert!(e.error.is_none());
            let r = &e.records[0];
            assert_eq!((r.topic.as_str(), r.partition, r.timestamp), ("t", 0, 1_013));
            assert_eq!(r.timestamp_type, TimestampType::CreateTime);
            assert_eq!(r.value.as_deref(), Some(&b"13"[..]));
            assert_eq!(r.key, None, "offset delta 3 has no key");
            assert_eq!(e.records[1].key.as_deref(), Some(&b"k4"[..]));
            assert_eq!(r.headers, vec![("h".to_string(), Some(Bytes::from("v")))]);
            let e = extract("t", 0, &bytes, 17, 100, true);
            assert_eq!(
                offsets(&e),
                (17..23).collect::<Vec<_>>(),
                "a whole batch before the position is skipped"
            );
        }
    }

    #[test]
    fn nothing_at_or_past_the_high_watermark_is_returned() {
        let mut bytes = batch(0, 5, Compression::None);
        bytes.extend(batch(5, 5, Compression::None));
        let e = extract("t", 0, &bytes, 0, 7, true);
        assert_eq!(offsets(&e), (0..7).collect::<Vec<_>>());
        assert_eq!(e.next_offset, 7, "the rest of the straddling batch is read again later");
        let e = extract("t", 0, &bytes, 0, 5, true);
        assert_eq!(offsets(&e), (0..5).collect::<Vec<_>>());
        assert_eq!(e.next_offset, 5);
        let e = extract("t", 0, &bytes, 5, 5, true);
        assert!(e.records.is_empty());
        assert_eq!(e.next_offset, 5, "at the high watermark: stay");
    }

    #[test]
    fn gaps_and_control_batches_move_the_position_past_them() {
        // A compacted batch: offsets 0, 2, 4 of a batch covering 0..=6.
        let mut header = BatchHeader::new(Compression::None, 0, 0);
        header.base_offset = 0;
        let records = [0, 2, 6]
            .iter()
            .map(|&d| Record { offset_delta: d, timestamp_delta: 0, key: None, value: None, headers: vec![] })
            .collect();
        let mut bytes = RecordBatch { header, records }.encode();
        let mut control = BatchHeader::new(Compression::None, 0, 0);
        control.base_offset = 7;
        control.is_control = true;
        let marker = Record {
            offset_delta: 0,
            timestamp_delta: 0,
            key: Some(Bytes::from_static(&[0, 0, 0, 0])),
            value: None,
            headers: vec![],
        };
        bytes.extend(RecordBatch { header: control, records: vec![marker] }.encode());
        let e = extract("t", 0, &bytes, 1, 100, true);
        assert_eq!(offsets(&e), vec![2, 6]);
        assert_eq!(e.next_offset, 8, "past the control batch");
    }

    #[test]
    fn a_partial_batch_at_the_end_waits_for_the_next_fetch_but_alone_it_is_an_error() {
        let mut bytes = batch(0, 3, Compression::None);
        let second = batch(3, 3, Compression::None);
        bytes.extend(&second[..second.len() - 4]);
        let e = extract("t", 0, &bytes, 0, 100, true);
        assert_eq!(offsets(&e), vec![0, 1, 2]);
        assert_eq!(e.next_offset, 3);
        assert!(e.error.is_none());
        let e = extract("t", 0, &second[..20], 3, 100, true);
        assert!(matches!(e.error, Some((3, BatchError::Truncated { .. }))), "{:?}", e.error);
    }

    #[test]
    fn a_corrupt_batch_stops_extraction_after_the_good_ones_unless_crcs_are_not_checked() {
        let mut bytes = batch(0, 3, Compression::None);
        let mut bad = batch(3, 3, Compression::None);
        let last = bad.len() - 1;
        bad[last] ^= 0x01; // in the last record's header value: the CRC no longer matches
        bytes.extend(&bad);
        let e = extract("t", 0, &bytes, 0, 100, true);
        assert_eq!(offsets(&e), vec![0, 1, 2]);
        assert!(matches!(e.error, Some((3, BatchError::CrcMismatch { .. }))), "{:?}", e.error);
        let e = extract("t", 0, &bytes, 0, 100, false);
        assert_eq!(offsets(&e), (0..6).collect::<Vec<_>>(), "check.crcs=false reads it");
        assert_eq!(e.records[5].headers[0].1.as_deref(), Some(&b"w"[..]));
    }

    #[test]
    fn log_append_time_batches_give_every_record_the_batch_time() {
        let mut header = BatchHeader::new(Compression::None, 5, 99);
        header.timestamp_type = TimestampType::LogAppendTime;
        let records = (0..2)
            .map(|i| Record { offset_delta: i, timestamp_delta: 1, key: None, value: None, headers: vec![] })
            .collect();
        let bytes = RecordBatch { header, records }.encode();
        let e = extract("t", 0, &bytes, 0, 100, true);
        assert_eq!(e.records.iter().map(|r| r.timestamp).collect::<Vec<_>>(), vec![99, 99]);
        assert!(e.records.iter().all(|r| r.timestamp_type == TimestampType::LogAppendTime));
    }
}

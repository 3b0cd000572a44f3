//! The payload both log benchmarks measure: 1 KiB records, half random and half repetitive
//! (compressible like application logs), keyed over 100 keys.

use bytes::Bytes;
use sluice_log::{BatchHeader, Compression, Record, RecordBatch};

/// A batch of `records` 1 KiB records with `compression`, timestamps from `base_timestamp`.
pub fn batch(records: usize, compression: Compression, base_timestamp: i64) -> RecordBatch {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let records = (0..records)
        .map(|i| {
            let mut v = Vec::with_capacity(1024);
            for j in 0..1024 {
                if j < 512 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.push(x as u8);
                } else {
                    v.push(b"level=info msg=\"request served\" "[j % 32]);
                }
            }
            Record {
                offset_delta: i as i32,
                timestamp_delta: i as i64,
                key: Some(Bytes::from(format!("key-{}", i % 100))),
                value: Some(Bytes::from(v)),
                headers: vec![],
            }
        })
        .collect::<Vec<_>>();
    let max_timestamp = base_timestamp + records.len().saturating_sub(1) as i64;
    RecordBatch { header: BatchHeader::new(compression, base_timestamp, max_timestamp), records }
}

//! RecordBatch v2 encode and decode throughput: 1 KiB records in 16 KiB and 1 MiB batches,
//! with every codec. Payloads are half random, half repetitive (compressible like logs).
//!
//! `cargo bench -p sluice-log --bench batch`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_log::{BatchHeader, BatchView, Compression, Record, RecordBatch, TimestampType};

fn batch(records: usize, compression: Compression) -> RecordBatch {
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
        .collect();
    RecordBatch {
        header: BatchHeader {
            base_offset: 0,
            partition_leader_epoch: 0,
            compression,
            timestamp_type: TimestampType::CreateTime,
            is_transactional: false,
            is_control: false,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count: 0,
        },
        records,
    }
}

fn codecs(c: &mut Criterion) {
    for (label, n) in [("16KiB", 16), ("1MiB", 1024)] {
        let mut g = c.benchmark_group(format!("batch-{label}"));
        g.throughput(Throughput::Bytes((n * 1024) as u64));
        for codec in
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        {
            let b = batch(n, codec);
            g.bench_with_input(BenchmarkId::new("encode", codec.name()), &b, |bench, b| {
                bench.iter(|| b.encode())
            });
            let bytes = b.encode();
            g.bench_with_input(BenchmarkId::new("parse+decode", codec.name()), &bytes, |bench, bytes| {
                bench.iter(|| BatchView::parse(bytes).and_then(|v| v.records(64 << 20)).map(|r| r.len()))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, codecs);
criterion_main!(benches);

//! RecordBatch v2 encode and decode throughput: 1 KiB records in 16 KiB and 1 MiB batches,
//! with every codec. Payloads are half random, half repetitive (compressible like logs).
//!
//! `cargo bench -p sluice-log --bench batch`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_log::{BatchView, Compression, RecordBatch};

mod common;

fn batch(records: usize, compression: Compression) -> RecordBatch {
    common::batch(records, compression, 0)
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

//! Log append and read throughput: 1 KiB records in 16 KiB and 1 MiB batches, uncompressed
//! and with every codec (compressed once, outside the timing: the log stores what the
//! producer sent), without and with an fsync per batch; then sequential reads of 1 MiB.
//! Throughput is counted in record bytes (1 KiB per record), so codecs compare on what the
//! producer wrote. Files go under cargo's target/tmp, on the same disk as the build.
//!
//! `cargo bench -p sluice-log --bench append`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_log::{Compression, Log, LogConfig};

const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

mod common;

fn encoded_batch(records: usize, compression: Compression) -> Vec<u8> {
    common::batch(records, compression, 1_700_000_000_000).encode()
}

/// Segments of 128 MiB, at most ~256 MiB kept: the benchmark can run for long without
/// filling the disk (retention's deletes are part of what is measured, as in a broker).
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 128 << 20,
        max_message_bytes: 2 << 20,
        retention_bytes: Some(256 << 20),
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn open(tmp: &tempfile::TempDir, name: &str) -> Log {
    match Log::open(tmp.path().join(format!("{name}-0")), config(), 0) {
        Ok(log) => log,
        Err(e) => panic!("open log: {e}"),
    }
}

fn append_one(log: &mut Log, batch: &mut [u8], fsync: bool) {
    let info = log.append(batch, 0).expect("append");
    if fsync {
        log.flush().expect("flush");
    }
    if info.rolled {
        log.tick(0).expect("tick");
    }
}

fn appends(c: &mut Criterion) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    for (label, n) in [("16KiB", 16), ("1MiB", 1024)] {
        let mut g = c.benchmark_group(format!("append-{label}"));
        g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
        g.throughput(Throughput::Bytes((n * 1024) as u64));
        for codec in CODECS {
            let mut batch = encoded_batch(n, codec);
            let mut log = open(&tmp, &format!("append-{label}-{codec:?}").to_lowercase());
            g.bench_function(format!("{codec:?}").to_lowercase(), |b| {
                b.iter(|| append_one(&mut log, &mut batch, false))
            });
        }
        g.finish();
    }
    // fsync per batch: uncompressed only, and briefly (each iteration waits for the disk).
    let mut g = c.benchmark_group("append-fsync");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for (label, n) in [("16KiB", 16), ("1MiB", 1024)] {
        g.throughput(Throughput::Bytes((n * 1024) as u64));
        let mut batch = encoded_batch(n, Compression::None);
        let mut log = open(&tmp, &format!("fsync-{label}").to_lowercase());
        g.bench_function(label, |b| b.iter(|| append_one(&mut log, &mut batch, true)));
    }
    g.finish();
}

fn sequential_read(c: &mut Criterion) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut log = open(&tmp, "read");
    let mut batch = encoded_batch(16, Compression::None);
    while log.size_bytes() < 64 << 20 {
        log.append(&mut batch, 0).expect("append");
    }
    let total = log.size_bytes();
    let mut g = c.benchmark_group("read");
    g.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Bytes(total));
    g.bench_function("sequential-1MiB-fetches", |b| {
        b.iter(|| {
            let (mut offset, mut bytes) = (log.log_start_offset(), 0usize);
            while offset < log.log_end_offset() {
                let r = log.read(offset, 1 << 20).expect("read");
                bytes += r.records.len();
                offset = r.next_offset;
            }
            assert_eq!(bytes as u64, total);
        })
    });
    g.finish();
}

criterion_group!(benches, appends, sequential_read);
criterion_main!(benches);

//! Writes the seed corpora (`seeds/<target>/`): a handful of small valid batches for
//! `batch_decode`, and small segment files for `log_recovery`. The seeds are committed;
//! run this again only to change them:
//!
//! ```text
//! cargo run --manifest-path log/fuzz/Cargo.toml --example gen_seeds
//! ```

use std::fs;
use std::path::Path;

use bytes::Bytes;
use sluice_log::batch::set_base_offset;
use sluice_log::{BatchHeader, Compression, Header, Record, RecordBatch, TimestampType};

const CODECS: [Compression; 5] =
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

fn record(i: i32) -> Record {
    Record {
        offset_delta: i,
        timestamp_delta: i64::from(i) * 7,
        key: (i % 3 != 2).then(|| Bytes::from(format!("k{i}"))),
        value: (i % 4 != 3).then(|| Bytes::from(format!("value-{i}-").repeat(1 + i as usize % 3))),
        headers: (0..i % 3)
            .map(|h| Header { key: format!("h{h}"), value: (h == 0).then(|| Bytes::from_static(b"v")) })
            .collect(),
    }
}

fn batch(compression: Compression, base_offset: i64, records: i32) -> RecordBatch {
    let header = BatchHeader {
        base_offset,
        partition_leader_epoch: 3,
        ..BatchHeader::new(compression, 1_700_000_000_000, 1_700_000_000_000 + i64::from(records) * 7)
    };
    RecordBatch { header, records: (0..records).map(record).collect() }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let decode = root.join("batch_decode");
    let recovery = root.join("log_recovery");
    for dir in [&decode, &recovery] {
        fs::create_dir_all(dir).expect("seed directory");
    }

    // batch_decode: one batch per codec, an empty batch, and a transactional control batch
    // with LogAppendTime and producer fields.
    for c in CODECS {
        write(&decode, &format!("{}.bin", c.name()), &batch(c, 0, 4).encode());
    }
    write(&decode, "empty.bin", &batch(Compression::None, 0, 0).encode());
    let mut control = batch(Compression::None, 42, 1);
    control.header.timestamp_type = TimestampType::LogAppendTime;
    control.header.is_transactional = true;
    control.header.is_control = true;
    control.header.producer_id = 7;
    control.header.producer_epoch = 1;
    control.header.base_sequence = 0;
    write(&decode, "control.bin", &control.encode());

    // log_recovery: a segment of several codecs with consecutive offsets, and the same
    // segment with a torn last batch.
    let mut segment = Vec::new();
    let mut next = 0;
    for (i, c) in CODECS.into_iter().enumerate() {
        let n = 1 + i as i32 % 3;
        let mut bytes = batch(c, 0, n).encode();
        set_base_offset(&mut bytes, next);
        next += i64::from(n);
        segment.extend_from_slice(&bytes);
    }
    write(&recovery, "segment.log", &segment);
    write(&recovery, "torn.log", &segment[..segment.len() - 5]);
    println!("wrote seeds to {}", root.display());
}

//! Arbitrary bytes as a RecordBatch v2 at the front of a buffer — as given, and again with
//! the CRCs recomputed so the record decoder is reached (see `fix_crc.rs`).
//!
//! Never panics, and the entry points agree: `BatchHeader::parse_prefix`, `BatchView::parse`
//! (+ `records`), `RecordBatch::decode` and the `batches` iterator. A batch that decodes is
//! encoded again and must decode to the same header and records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_log::batch::batches;
use sluice_log::{BatchHeader, BatchView, RecordBatch};

#[path = "fix_crc.rs"]
mod fix_crc;

/// Decompression bound for the records, as a fetch of 1 MiB would use.
const MAX_UNCOMPRESSED: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut fixed = data.to_vec();
    if fix_crc::fix_crcs(&mut fixed) {
        check(&fixed);
    }
});

fn check(data: &[u8]) {
    let prefix = BatchHeader::parse_prefix(data);
    let decoded = RecordBatch::decode(data, MAX_UNCOMPRESSED);

    let view = match BatchView::parse(data) {
        Ok(view) => view,
        Err(_) => {
            assert!(decoded.is_err(), "decode accepted what parse refused");
            return;
        }
    };
    let (header, total) = prefix.expect("parse accepted what parse_prefix refused");
    assert_eq!(header, view.header, "parse_prefix and parse disagree on the header");
    assert_eq!(total, view.len(), "parse_prefix and parse disagree on the length");
    assert!(total <= data.len() && !view.is_empty());
    let _ = view.last_offset();

    // Batches packed back to back (the rest of the input): the first is this one, and the
    // views the iterator yields never claim more bytes than there are.
    let mut seen = 0;
    for (i, item) in batches(data).enumerate() {
        let Ok(v) = item else { break };
        if i == 0 {
            assert_eq!(v.len(), total, "batches() and parse disagree on the first batch");
        }
        seen += v.len();
        assert!(seen <= data.len());
    }

    let records = match view.records(MAX_UNCOMPRESSED) {
        Ok(records) => records,
        Err(_) => {
            assert!(decoded.is_err(), "decode accepted what records() refused");
            return;
        }
    };
    let batch = decoded.expect("decode refused what parse + records() accepted");
    assert_eq!(batch.header, view.header);
    assert_eq!(batch.records, records);

    // Round trip. `encode` computes recordsCount and lastOffsetDelta from the records, so
    // those two header fields are compared against the records, the rest against the input.
    let bytes = batch.encode();
    let again = BatchView::parse(&bytes).expect("a re-encoded batch parses");
    assert_eq!(again.len(), bytes.len());
    let back = RecordBatch::decode(&bytes, MAX_UNCOMPRESSED).expect("a re-encoded batch decodes");
    assert_eq!(back.records, batch.records, "records changed in the round trip");
    let mut expected = batch.header.clone();
    expected.records_count = batch.records.len() as i32;
    expected.last_offset_delta = batch.records.last().map_or(0, |r| r.offset_delta);
    assert_eq!(back.header, expected, "header changed in the round trip");
}

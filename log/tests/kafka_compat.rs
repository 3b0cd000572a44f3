//! Byte compatibility with Kafka's RecordBatch v2, checked against an independent
//! implementation (the `kafka-protocol` crate's encoder and decoder) in both directions and
//! with every codec both implement here (none, gzip, snappy, zstd).

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KCompression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KTimestampType,
};
use sluice_log::{BatchHeader, Compression, Header, Record, RecordBatch, TimestampType};

const CODECS: [(Compression, KCompression); 4] = [
    (Compression::None, KCompression::None),
    (Compression::Gzip, KCompression::Gzip),
    (Compression::Snappy, KCompression::Snappy),
    (Compression::Zstd, KCompression::Zstd),
];

fn kafka_records() -> Vec<KRecord> {
    (0..20i64)
        .map(|i| {
            let mut headers = IndexMap::new();
            if i % 2 == 0 {
                headers
                    .insert(StrBytes::from_string(format!("trace-{i}")), Some(Bytes::from(vec![i as u8; 4])));
                headers.insert(StrBytes::from_static_str("empty"), None);
            }
            KRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 5,
                producer_id: 4242,
                producer_epoch: 2,
                timestamp_type: KTimestampType::Creation,
                offset: 100 + i,
                sequence: 7 + i as i32,
                timestamp: 1_700_000_000_000 + i * 10,
                key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
                value: (i % 7 != 6).then(|| Bytes::from(vec![b'v'; (i as usize * 53) % 400])),
                headers,
            }
        })
        .collect()
}

#[test]
fn batches_written_by_kafka_protocol_are_read_field_for_field() {
    for (ours, theirs) in CODECS {
        let records = kafka_records();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions { version: 2, compression: theirs },
        )
        .expect("kafka-protocol encodes");
        let batch = RecordBatch::decode(&buf, 1 << 20).expect("we decode kafka-protocol's batch");
        let h = &batch.header;
        assert_eq!(h.compression, ours);
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.producer_id, h.producer_epoch, h.base_sequence),
            (100, 5, 4242, 2, 7)
        );
        assert_eq!(
            (h.base_timestamp, h.max_timestamp, h.records_count),
            (1_700_000_000_000, 1_700_000_000_190, 20)
        );
        for (r, k) in batch.records.iter().zip(&records) {
            assert_eq!(h.base_offset + i64::from(r.offset_delta), k.offset);
            assert_eq!(h.base_timestamp + r.timestamp_delta, k.timestamp);
            assert_eq!((&r.key, &r.value), (&k.key, &k.value));
            let theirs: Vec<(String, Option<Bytes>)> =
                k.headers.iter().map(|(key, v)| (key.to_string(), v.clone())).collect();
            let ours: Vec<(String, Option<Bytes>)> =
                r.headers.iter().map(|h| (h.key.clone(), h.value.clone())).collect();
            assert_eq!(ours, theirs);
        }
    }
}

#[test]
fn batches_we_write_are_read_by_kafka_protocol() {
    for (ours, theirs) in CODECS {
        let header = BatchHeader {
            base_offset: 500,
            partition_leader_epoch: 3,
            compression: ours,
            timestamp_type: TimestampType::CreateTime,
            is_transactional: false,
            is_control: false,
            last_offset_delta: 0,
            base_timestamp: 1_600_000_000_000,
            max_timestamp: 1_600_000_000_090,
            producer_id: 77,
            producer_epoch: 1,
            base_sequence: 40,
            records_count: 0,
        };
        let records: Vec<Record> = (0..10)
            .map(|i| Record {
                offset_delta: i,
                timestamp_delta: i64::from(i) * 10,
                key: Some(Bytes::from(format!("k{i}"))),
                value: (i != 3).then(|| Bytes::from(format!("value number {i}"))),
                headers: vec![Header { key: "h".into(), value: Some(Bytes::from(vec![i as u8])) }],
            })
            .collect();
        let bytes = RecordBatch { header, records: records.clone() }.encode();
        let mut buf = Bytes::from(bytes);
        let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes our batch");
        assert_eq!(set.compression, theirs);
        assert_eq!(set.records.len(), 10);
        for (k, r) in set.records.iter().zip(&records) {
            assert_eq!(k.offset, 500 + i64::from(r.offset_delta));
            assert_eq!(k.timestamp, 1_600_000_000_000 + r.timestamp_delta);
            assert_eq!((k.producer_id, k.producer_epoch, k.sequence), (77, 1, 40 + r.offset_delta));
            assert_eq!((&k.key, &k.value), (&r.key, &r.value));
            assert_eq!(k.headers.get(&StrBytes::from_static_str("h")), Some(&r.headers[0].value));
        }
    }
}

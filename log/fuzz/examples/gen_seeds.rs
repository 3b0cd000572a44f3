//! Writes the seed corpora (`seeds/<target>/`): a handful of small valid batches for
//! `batch_decode`, small segment files for `log_recovery`, request frames for
//! `kafka_request` and `zookeeper_request`. The seeds are committed;
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
    let kafka = root.join("kafka_request");
    let zookeeper = root.join("zookeeper_request");
    for dir in [&decode, &recovery, &kafka, &zookeeper] {
        fs::create_dir_all(dir).expect("seed directory");
    }

    // wire_frames: envelope payloads (no length prefix) of keeper requests, one with a trace
    // context, and a traceparent value.
    {
        use sluice_net::frame::{self, Envelope, TraceContext};
        use sluice_proto::keeper::{GetData, KeeperRequest, Ping, Status};
        let wire = root.join("wire_frames");
        fs::create_dir_all(&wire).expect("seed directory");
        let payload = |env: &Envelope<KeeperRequest>| {
            frame::encode(env, u32::MAX).expect("encode").to_vec()[4..].to_vec()
        };
        write(&wire, "ping.bin", &payload(&Envelope::new(1, KeeperRequest::Ping(Ping))));
        write(&wire, "status.bin", &payload(&Envelope::new(2, KeeperRequest::Status(Status))));
        let mut traced =
            Envelope::new(3, KeeperRequest::GetData(GetData { path: "/brokers/ids".into(), watch: true }));
        traced.trace = Some(TraceContext { trace_id: [7; 16], span_id: [9; 8], flags: 1 });
        write(&wire, "get_data_traced.bin", &payload(&traced));
        write(&wire, "traceparent.txt", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    }

    // keeper_snapshot: the body of a standalone keeper's snapshot (after its magic and CRC)
    // of a small tree: persistent, ephemeral and sequential nodes. The target writes it as
    // both kinds of snapshot.
    {
        use sluice_keeper_core::tree::{CreateMode, Op, Txn};
        let snapshots = root.join("keeper_snapshot");
        fs::create_dir_all(&snapshots).expect("seed directory");
        let mut state = sluice_keeper_core::state::KeeperState::new();
        let ops = [
            ("/brokers", CreateMode::Persistent, 0),
            ("/brokers/ids", CreateMode::Persistent, 0),
            ("/brokers/ids/1", CreateMode::Ephemeral, 0x100),
            ("/lock-", CreateMode::PersistentSequential, 0),
        ];
        for (zxid, (path, mode, session)) in ops.into_iter().enumerate() {
            let op = Op::Create { path: path.into(), data: format!("data of {path}").into_bytes(), mode };
            let _ = state.apply(&Txn { zxid: zxid as i64 + 1, time_ms: 1_700_000_000_000, session, op });
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, _) = sluice_ensemble::store::Store::open(dir.path(), 1000).expect("store");
        let path = store.snapshot(&state, 4).expect("snapshot");
        let file = fs::read(path).expect("read snapshot");
        write(&snapshots, "small_tree.bin", &file[12..]);
    }

    // log_dir_files: a sound partition's side files in the target's layout: a byte giving
    // the index's entries, one giving the time index's, then the index, the time index and
    // the leader-epoch-checkpoint.
    {
        let files = root.join("log_dir_files");
        fs::create_dir_all(&files).expect("seed directory");
        let dir = tempfile::tempdir().expect("tempdir");
        let part = dir.path().join("t-0");
        let config = sluice_log::LogConfig { index_interval_bytes: 64, ..sluice_log::LogConfig::default() };
        let mut log = sluice_log::Log::open(&part, config, 1_700_000_000_000).expect("log");
        for i in 0..12i64 {
            if i == 0 || i == 6 {
                log.assign_leader_epoch(i as i32 / 6 + 1).expect("epoch");
            }
            let mut bytes = batch(Compression::None, 0, 2).encode();
            log.append(&mut bytes, 1_700_000_000_000).expect("append");
        }
        log.close().expect("close");
        let index = fs::read(part.join("00000000000000000000.index")).expect("index");
        let times = fs::read(part.join("00000000000000000000.timeindex")).expect("time index");
        let epochs = fs::read(part.join("leader-epoch-checkpoint")).expect("epochs");
        let mut seed = vec![(index.len() / 8) as u8, (times.len() / 12) as u8];
        seed.extend_from_slice(&index);
        seed.extend_from_slice(&times);
        seed.extend_from_slice(&epochs);
        write(&files, "sound.bin", &seed);
        write(&files, "checkpoint.bin", b"\x00\x000\n2\nt 0 24\nu 3 7\n");
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

    // zookeeper_request: a connect request and request frames (without their size prefix)
    // of each shape: a create2 with an ACL, a getData with a watch, a multi, a setWatches2.
    {
        use sluice_zookeeper_proto::jute::Writer;
        use sluice_zookeeper_proto::op;
        let body = |f: &dyn Fn(&mut Writer)| {
            let mut w = Writer::framed();
            f(&mut w);
            w.frame()[4..].to_vec()
        };
        write(
            &zookeeper,
            "connect.bin",
            &body(&|w| {
                w.int(0).long(0).int(30_000).long(0).buffer(&[0; 16]).boolean(false);
            }),
        );
        write(
            &zookeeper,
            "create2.bin",
            &body(&|w| {
                w.int(1).int(op::CREATE2).string("/a").buffer(b"data").int(1).int(31);
                w.string("world").string("anyone").int(3);
            }),
        );
        write(
            &zookeeper,
            "get_data.bin",
            &body(&|w| {
                w.int(2).int(op::GET_DATA).string("/a").boolean(true);
            }),
        );
        write(
            &zookeeper,
            "multi.bin",
            &body(&|w| {
                w.int(3).int(op::MULTI);
                w.int(op::CHECK).boolean(false).int(-1).string("/a").int(0);
                w.int(op::SET_DATA).boolean(false).int(-1).string("/a").buffer(b"x").int(-1);
                w.int(op::DELETE).boolean(false).int(-1).string("/a").int(-1);
                w.int(-1).boolean(true).int(-1);
            }),
        );
        write(
            &zookeeper,
            "set_watches2.bin",
            &body(&|w| {
                w.int(-8).int(op::SET_WATCHES2).long(9).strings(&["/a"]).strings(&["/b"]).strings(&["/c"]);
                w.strings(&["/d"]).strings(&["/e"]);
            }),
        );
        write(&zookeeper, "ruok.bin", b"ruok");
    }

    // kafka_request: a request frame (without its size prefix) of each kind a client opens
    // with, and a produce carrying a batch of each codec.
    use sluice_kafka_proto::messages as k;
    write(&kafka, "api_versions.bin", &request(k::ApiKey::ApiVersions, 3, &k::ApiVersionsRequest::default()));
    let mut metadata = k::MetadataRequest::default();
    metadata.topics = None;
    write(&kafka, "metadata.bin", &request(k::ApiKey::Metadata, 12, &metadata));
    for c in CODECS {
        let mut partition = k::produce_request::PartitionProduceData::default();
        partition.records = Some(Bytes::from(batch(c, 0, 3).encode()));
        let mut topic = k::produce_request::TopicProduceData::default();
        topic.name = k::TopicName(sluice_kafka_proto::StrBytes::from_static_str("t"));
        topic.partition_data.push(partition);
        let mut produce = k::ProduceRequest::default();
        produce.acks = -1;
        produce.topic_data.push(topic);
        write(&kafka, &format!("produce-{}.bin", c.name()), &request(k::ApiKey::Produce, 9, &produce));
    }
    let mut fetch = k::FetchRequest::default();
    let mut topic = k::fetch_request::FetchTopic::default();
    topic.topic = k::TopicName(sluice_kafka_proto::StrBytes::from_static_str("t"));
    topic.partitions.push(k::fetch_request::FetchPartition::default());
    fetch.topics.push(topic);
    write(&kafka, "fetch.bin", &request(k::ApiKey::Fetch, 12, &fetch));
    let mut join = k::JoinGroupRequest::default();
    join.protocols.push(k::join_group_request::JoinGroupRequestProtocol::default());
    write(&kafka, "join_group.bin", &request(k::ApiKey::JoinGroup, 7, &join));

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

/// A request frame as the door reads it after the size prefix: header, then body.
fn request<T: sluice_kafka_proto::Encodable>(
    key: sluice_kafka_proto::messages::ApiKey,
    version: i16,
    body: &T,
) -> Vec<u8> {
    use sluice_kafka_proto::Encodable;
    let mut header = sluice_kafka_proto::messages::RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 1;
    header.client_id = Some(sluice_kafka_proto::StrBytes::from_static_str("seed"));
    let mut out = bytes::BytesMut::new();
    header.encode(&mut out, key.request_header_version(version)).expect("header");
    body.encode(&mut out, version).expect("body");
    out.to_vec()
}

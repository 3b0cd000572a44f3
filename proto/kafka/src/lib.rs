//! `sluice-kafka-proto`: Kafka's wire protocol, as the brokers' Kafka door speaks it: which APIs and versions it
//! serves, how a request frame's header is read, how an answer is framed. The messages
//! themselves are the `kafka-protocol` crate's (re-exported as [`messages`]); nothing here
//! encodes a field by hand.
//!
//! A frame is a 4-byte big-endian size, then the request header (API key, version,
//! correlation id, client id; tagged fields from the flexible versions on) and the body.
//! An answer is a size, the response header (the correlation id) and the body.

use bytes::{Buf, BufMut, Bytes, BytesMut};
pub use kafka_protocol::messages;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
pub use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// An API the door serves and the versions of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// The API.
    pub key: ApiKey,
    /// Oldest version served.
    pub min: i16,
    /// Newest version served.
    pub max: i16,
}

const fn served(key: ApiKey, min: i16, max: i16) -> Served {
    Served { key, min, max }
}

/// What the door answers ApiVersions with. The newest versions stop where Kafka's APIs
/// start to need topic ids (Fetch 13, Metadata 13 topic-id lookups, OffsetCommit and
/// OffsetFetch 9) or the new consumer group protocol; librdkafka 2.x, kafka-python 2.x and
/// the Java client 3.x/4.x negotiate these.
///
/// Not served, and so refused by the clients themselves before a request is sent:
/// transactions (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
/// WriteTxnMarkers), SASL (SaslHandshake and SaslAuthenticate are answered with Kafka's
/// errors for a listener without SASL), delegation tokens, quotas, KRaft's and the new
/// group protocol's APIs.
pub const SERVED: &[Served] = &[
    served(ApiKey::Produce, 3, 9),
    served(ApiKey::Fetch, 4, 12),
    served(ApiKey::ListOffsets, 1, 6),
    served(ApiKey::Metadata, 0, 12),
    served(ApiKey::OffsetCommit, 2, 8),
    served(ApiKey::OffsetFetch, 1, 8),
    served(ApiKey::FindCoordinator, 0, 4),
    served(ApiKey::JoinGroup, 0, 7),
    served(ApiKey::Heartbeat, 0, 4),
    served(ApiKey::LeaveGroup, 0, 4),
    served(ApiKey::SyncGroup, 0, 5),
    served(ApiKey::DescribeGroups, 0, 5),
    served(ApiKey::ListGroups, 0, 4),
    served(ApiKey::ApiVersions, 0, 3),
    served(ApiKey::CreateTopics, 2, 7),
    served(ApiKey::DeleteTopics, 1, 5),
    served(ApiKey::InitProducerId, 0, 4),
    served(ApiKey::OffsetForLeaderEpoch, 2, 4),
    served(ApiKey::DescribeConfigs, 1, 4),
    served(ApiKey::DeleteGroups, 0, 2),
    served(ApiKey::DescribeCluster, 0, 1),
    served(ApiKey::AlterConfigs, 0, 2),
    served(ApiKey::IncrementalAlterConfigs, 0, 1),
    served(ApiKey::CreatePartitions, 0, 3),
    served(ApiKey::DescribeLogDirs, 1, 4),
    served(ApiKey::OffsetDelete, 0, 0),
    served(ApiKey::ElectLeaders, 0, 2),
    served(ApiKey::DeleteRecords, 0, 2),
    served(ApiKey::DescribeAcls, 1, 3),
    served(ApiKey::CreateAcls, 1, 3),
    served(ApiKey::DeleteAcls, 1, 3),
    served(ApiKey::AlterPartitionReassignments, 0, 0),
    served(ApiKey::ListPartitionReassignments, 0, 0),
];

/// The versions of `key` the door serves, if it serves it.
pub fn served_versions(key: ApiKey) -> Option<Served> {
    SERVED.iter().copied().find(|s| s.key == key)
}

/// Kafka's error codes the door itself answers with (the rest come from
/// [`crate::BrokerError::code`]).
pub mod codes {
    /// UNSUPPORTED_VERSION: an API or version the door does not serve.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// UNSUPPORTED_SASL_MECHANISM: a SASL handshake on a listener without SASL.
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    /// ILLEGAL_SASL_STATE.
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    /// INVALID_REQUEST.
    pub const INVALID_REQUEST: i16 = 42;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// UNKNOWN_TOPIC_ID: a topic named by id (Sluice's topics have none).
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    /// LISTENER_NOT_FOUND: the partition's leader has no listener of the client's name.
    pub const LISTENER_NOT_FOUND: i16 = 72;
    /// COORDINATOR_NOT_AVAILABLE.
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// INVALID_CONFIG.
    pub const INVALID_CONFIG: i16 = 40;
}

/// A request frame's header, read.
#[derive(Debug, Clone)]
pub struct Head {
    /// The API.
    pub key: ApiKey,
    /// Its version.
    pub version: i16,
    /// The header as sent.
    pub header: RequestHeader,
}

/// Why a request frame cannot be served. Kafka closes the connection for each of these
/// (except an ApiVersions of a version it does not know, which it answers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Fewer than the four bytes of API key and version.
    #[error("a request of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// An API key Kafka does not have.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    /// A known API the door does not serve, or a version outside what it serves.
    #[error("{key:?} version {version} is not served here (served: {served})")]
    Unsupported {
        /// The API.
        key: ApiKey,
        /// The version asked for.
        version: i16,
        /// What is served of it, for the log line.
        served: String,
    },
    /// The header did not decode.
    #[error("{key:?} v{version}: the request header does not decode: {reason}")]
    BadHeader {
        /// The API.
        key: ApiKey,
        /// The version.
        version: i16,
        /// The decoder's reason.
        reason: String,
    },
}

/// Peeks at a frame's API key and version (for a log line about a frame that fails later).
pub fn peek(frame: &[u8]) -> Option<(i16, i16)> {
    let mut b = frame.get(..4)?;
    Some((b.get_i16(), b.get_i16()))
}

/// Reads the header of `frame`, leaving `frame` at the body. An ApiVersions request of a
/// version newer than served is read as version 0 (its header is then the v1 header every
/// version starts with), so it can be answered as Kafka does.
pub fn read_head(frame: &mut Bytes) -> Result<Head, HeadError> {
    let (raw_key, version) = peek(frame).ok_or(HeadError::TooShort(frame.len()))?;
    let key = ApiKey::try_from(raw_key).map_err(|_| HeadError::UnknownApi(raw_key))?;
    let header_version = match served_versions(key) {
        Some(s) if (s.min..=s.max).contains(&version) => key.request_header_version(version),
        // A newer ApiVersions: Kafka reads its header as v1 and answers with v0.
        Some(s) if key == ApiKey::ApiVersions && version > s.max => 1,
        // SASL on a listener without it: answered with Kafka's own errors.
        None if matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
            && key.valid_versions().min <= version
            && version <= key.valid_versions().max =>
        {
            key.request_header_version(version)
        }
        s => {
            let served = s.map_or_else(|| "none".to_string(), |s| format!("{}..={}", s.min, s.max));
            return Err(HeadError::Unsupported { key, version, served });
        }
    };
    let header = RequestHeader::decode(frame, header_version).map_err(|e| HeadError::BadHeader {
        key,
        version,
        reason: e.to_string(),
    })?;
    Ok(Head { key, version, header })
}

macro_rules! requests {
    ($($api:ident($msg:ident)),* $(,)?) => {
        /// A decoded request of an API the door serves.
        #[derive(Debug, Clone)]
        #[allow(missing_docs)]
        pub enum Request {
            $($api(messages::$msg),)*
        }

        impl Request {
            /// The API's name (`Produce`, `Fetch`, ...), for metrics and logs.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Request::$api(_) => stringify!($api),)*
                }
            }
        }

        /// Decodes the body of `head`'s request from `body` (all of it). An ApiVersions of a
        /// version newer than served is not read: it is answered with version 0 and
        /// `UNSUPPORTED_VERSION` whatever it holds.
        pub fn decode_request(head: &Head, body: &mut Bytes) -> Result<Request, String> {
            let v = head.version;
            if head.key == ApiKey::ApiVersions && served_versions(ApiKey::ApiVersions).is_some_and(|s| v > s.max) {
                return Ok(Request::ApiVersions(messages::ApiVersionsRequest::default()));
            }
            match head.key {
                $(ApiKey::$api => decode(body, v).map(Request::$api),)*
                other => Err(format!("{other:?} is not served here")),
            }
        }
    };
}

requests! {
    ApiVersions(ApiVersionsRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    Metadata(MetadataRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    SyncGroup(SyncGroupRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups(ListGroupsRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    InitProducerId(InitProducerIdRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    DescribeConfigs(DescribeConfigsRequest),
    DeleteGroups(DeleteGroupsRequest),
    DescribeCluster(DescribeClusterRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DescribeLogDirs(DescribeLogDirsRequest),
    OffsetDelete(OffsetDeleteRequest),
    ElectLeaders(ElectLeadersRequest),
    DeleteRecords(DeleteRecordsRequest),
    DescribeAcls(DescribeAclsRequest),
    CreateAcls(CreateAclsRequest),
    DeleteAcls(DeleteAclsRequest),
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    ListPartitionReassignments(ListPartitionReassignmentsRequest),
    SaslHandshake(SaslHandshakeRequest),
    SaslAuthenticate(SaslAuthenticateRequest),
}

/// Decodes a request body of version `version`. Bytes after the body are ignored, as
/// Kafka's brokers ignore them (librdkafka 2.x sends three after a Metadata v12).
pub fn decode<T: Decodable>(body: &mut Bytes, version: i16) -> Result<T, String> {
    T::decode(body, version).map_err(|e| e.to_string())
}

/// Frames `body` as the answer to `head`: size, response header, body.
pub fn frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<BytesMut, String> {
    let header_version = key.response_header_version(version);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let size = header.compute_size(header_version).map_err(|e| e.to_string())?
        + body.compute_size(version).map_err(|e| format!("{key:?} v{version}: {e}"))?;
    let mut out = BytesMut::with_capacity(4 + size);
    out.put_i32(size as i32);
    header.encode(&mut out, header_version).map_err(|e| e.to_string())?;
    body.encode(&mut out, version).map_err(|e| format!("{key:?} v{version}: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

    fn request<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = 7;
        header.client_id = Some(StrBytes::from_static_str("t"));
        let mut b = BytesMut::new();
        header.encode(&mut b, key.request_header_version(version)).expect("header");
        body.encode(&mut b, version).expect("body");
        b.freeze()
    }

    #[test]
    fn served_versions_are_ones_the_codec_has() {
        for s in SERVED {
            let codec = s.key.valid_versions();
            assert!(
                codec.min <= s.min && s.max <= codec.max,
                "{:?} {}..={} vs codec {codec:?}",
                s.key,
                s.min,
                s.max
            );
        }
    }

    #[test]
    fn a_huge_array_count_is_refused_before_anything_is_allocated() {
        // Metadata v0 whose topic array claims i32::MAX entries in four bytes; and Fetch v12
        // (flexible) whose topic array claims four billion. Unpatched, kafka-protocol
        // allocated the whole array first and the process aborted.
        let mut frame = request(ApiKey::Metadata, 0, &MetadataRequest::default()).to_vec();
        let body_at = frame.len() - 4;
        frame[body_at..].copy_from_slice(&i32::MAX.to_be_bytes());
        let mut frame = Bytes::from(frame);
        let head = read_head(&mut frame).expect("header");
        let e = decode_request(&head, &mut frame).expect_err("refused");
        assert!(e.contains("larger than the"), "{e}");

        let mut fetch =
            request(ApiKey::Fetch, 12, &kafka_protocol::messages::FetchRequest::default()).to_vec();
        // The body's fields before the topics: replica_id, max_wait, min_bytes, max_bytes
        // (4 each), isolation (1), session id and epoch (4 each), then the compact array.
        let topics_at = fetch.len() - 4; // topics, forgotten, rack id, tagged fields (1 each)
        fetch.truncate(topics_at);
        fetch.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut fetch = Bytes::from(fetch);
        let head = read_head(&mut fetch).expect("header");
        assert!(decode_request(&head, &mut fetch).is_err());
    }

    #[test]
    fn headers_read_and_refusals_name_what_is_wrong() {
        let mut frame = request(ApiKey::Metadata, 12, &MetadataRequest::default());
        let head = read_head(&mut frame).expect("reads");
        assert_eq!((head.key, head.version, head.header.correlation_id), (ApiKey::Metadata, 12, 7));
        let body: MetadataRequest = decode(&mut frame, 12).expect("body");
        assert!(body.topics.is_none() || body.topics.as_ref().is_some_and(|t| t.is_empty()));

        // An ApiVersions newer than served is read, to be answered with v0.
        let mut newer = request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).to_vec();
        newer[2..4].copy_from_slice(&99i16.to_be_bytes());
        let mut newer = Bytes::copy_from_slice(&newer);
        assert_eq!(read_head(&mut newer).map(|h| (h.key, h.version)), Ok((ApiKey::ApiVersions, 99)));

        let mut unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1]);
        assert_eq!(read_head(&mut unknown).map(|_| ()), Err(HeadError::UnknownApi(0x7f00)));
        let mut old_produce = request(ApiKey::Metadata, 0, &MetadataRequest::default()).to_vec();
        old_produce[..4].copy_from_slice(&[0, 0, 0, 2]);
        let mut old_produce = Bytes::copy_from_slice(&old_produce);
        assert!(matches!(
            read_head(&mut old_produce),
            Err(HeadError::Unsupported { key: ApiKey::Produce, version: 2, .. })
        ));
        let mut short = Bytes::from_static(&[0, 3]);
        assert_eq!(read_head(&mut short).map(|_| ()), Err(HeadError::TooShort(2)));
    }
}

//! Kafka's APIs, each translated into the broker service's own calls and back.
//!
//! [`start`] decodes a request (`sluice_kafka_proto::decode_request`; a body that does not
//! decode closes the connection, as in Kafka), does what must happen in arrival order (handing produces to their partitions),
//! and spawns the rest; the task's output is the framed answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use sluice_broker_core::acl;
use sluice_broker_core::fetch_session::{Answered, Position, SessionError};
use sluice_broker_core::metadata::BrokerEndpoint;
use sluice_broker_core::BrokerError;
use sluice_net::Peer;
use sluice_proto::broker as sb;
use sluice_proto::broker::ElectionType;
use sluice_proto::interbroker::{EpochQuery, OffsetsForLeaderEpoch};
use sluice_proto::kafka::messages::{self as k, ApiKey, BrokerId, GroupId, TopicName};
use sluice_proto::kafka::StrBytes;
use sluice_proto::kafka::{codes, decode_request, frame, served_versions, Encodable, Head, Request, SERVED};

use super::{Answer, Shared};
use crate::service::BrokerService;

fn s(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

fn topic_name(text: &str) -> TopicName {
    TopicName(s(text))
}

fn code(r: &Result<impl Sized, BrokerError>) -> i16 {
    match r {
        Ok(_) => 0,
        Err(e) => e.code(),
    }
}

fn message(r: &Result<impl Sized, BrokerError>) -> Option<StrBytes> {
    r.as_ref().err().map(|e| s(e.to_string()))
}

/// A response's per-topic entry holding per-partition results (Kafka groups every
/// partition result under its topic, topics in first-seen order).
trait TopicEntry: Default {
    type Part;
    fn name(&self) -> &str;
    fn set_name(&mut self, name: &str);
    fn parts(&mut self) -> &mut Vec<Self::Part>;
}

macro_rules! topic_entry {
    ($($t:ty { $name:ident, $parts:ident: $part:ty })*) => {$(
        impl TopicEntry for $t {
            type Part = $part;
            fn name(&self) -> &str {
                &self.$name.0
            }
            fn set_name(&mut self, name: &str) {
                self.$name = topic_name(name);
            }
            fn parts(&mut self) -> &mut Vec<$part> {
                &mut self.$parts
            }
        }
    )*};
}

topic_entry! {
    k::produce_response::TopicProduceResponse { name, partition_responses: k::produce_response::PartitionProduceResponse }
    k::fetch_response::FetchableTopicResponse { topic, partitions: k::fetch_response::PartitionData }
    k::list_offsets_response::ListOffsetsTopicResponse { name, partitions: k::list_offsets_response::ListOffsetsPartitionResponse }
    k::offset_for_leader_epoch_response::OffsetForLeaderTopicResult { topic, partitions: k::offset_for_leader_epoch_response::EpochEndOffset }
    k::offset_commit_response::OffsetCommitResponseTopic { name, partitions: k::offset_commit_response::OffsetCommitResponsePartition }
    k::offset_fetch_response::OffsetFetchResponseTopic { name, partitions: k::offset_fetch_response::OffsetFetchResponsePartition }
    k::offset_fetch_response::OffsetFetchResponseTopics { name, partitions: k::offset_fetch_response::OffsetFetchResponsePartitions }
    k::describe_log_dirs_response::DescribeLogDirsTopic { name, partitions: k::describe_log_dirs_response::DescribeLogDirsPartition }
    k::offset_delete_response::OffsetDeleteResponseTopic { name, partitions: k::offset_delete_response::OffsetDeleteResponsePartition }
    k::elect_leaders_response::ReplicaElectionResult { topic, partition_result: k::elect_leaders_response::PartitionResult }
    k::delete_records_response::DeleteRecordsTopicResult { name, partitions: k::delete_records_response::DeleteRecordsPartitionResult }
    k::alter_partition_reassignments_response::ReassignableTopicResponse { name, partitions: k::alter_partition_reassignments_response::ReassignablePartitionResponse }
    k::list_partition_reassignments_response::OngoingTopicReassignment { name, partitions: k::list_partition_reassignments_response::OngoingPartitionReassignment }
}

/// Puts `part` under `topic` in `topics`, adding the topic's entry if it is new.
fn place<T: TopicEntry>(topics: &mut Vec<T>, topic: &str, part: T::Part) {
    if let Some(t) = topics.iter_mut().find(|t| t.name() == topic) {
        t.parts().push(part);
        return;
    }
    let mut t = T::default();
    t.set_name(topic);
    t.parts().push(part);
    topics.push(t);
}

/// The request's context for its handler.
struct Call {
    service: BrokerService,
    peer: Peer,
    listener: &'static str,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: String,
    /// The API's name and when the request arrived, for `sluice_rpc_*{protocol="kafka"}`.
    api: &'static str,
    started: std::time::Instant,
}

impl Call {
    fn answer<T: Encodable>(&self, body: &T) -> Result<Option<BytesMut>, String> {
        frame(self.key, self.version, self.correlation_id, body).map(Some)
    }

    /// `b`'s address on this connection's listener.
    fn on_listener(&self, b: &BrokerEndpoint) -> Option<(String, u16)> {
        b.listener(self.listener).map(|l| (l.host.clone(), l.port))
    }

    /// The brokers that have this connection's listener: id, host, port, rack.
    fn brokers_here(&self, brokers: &[BrokerEndpoint]) -> Vec<(BrokerId, StrBytes, i32, Option<StrBytes>)> {
        brokers
            .iter()
            .filter_map(|b| {
                let (host, port) = self.on_listener(b)?;
                Some((BrokerId(b.id), s(host), i32::from(port), b.rack.clone().map(s)))
            })
            .collect()
    }
}

/// The counters every door request goes through (the QUIC services' own).
fn served(api: &'static str, started: std::time::Instant) {
    sluice_net::protocol::served("kafka", api, started);
}

fn spawn<F>(call: Call, f: impl FnOnce(Call) -> F) -> Answer
where
    F: Future<Output = Result<Option<BytesMut>, String>> + Send + 'static,
{
    let (api, started) = (call.api, call.started);
    let answer = f(call);
    tokio::spawn(async move {
        let out = answer.await;
        served(api, started);
        out
    })
}

/// Decodes the request of `head` from `body` and starts serving it.
pub(super) fn start(
    shared: &Arc<Shared>,
    peer: &Peer,
    head: Head,
    mut body: Bytes,
) -> Result<Answer, String> {
    let call = Call {
        service: shared.service.clone(),
        peer: peer.clone(),
        listener: shared.listener,
        key: head.key,
        version: head.version,
        correlation_id: head.header.correlation_id,
        client_id: head.header.client_id.as_deref().unwrap_or("").to_string(),
        api: "",
        started: std::time::Instant::now(),
    };
    let v = head.version;
    let key = head.key;
    let request = decode_request(&head, &mut body)
        .map_err(|e| format!("{key:?} v{v}: the request does not decode: {e}"))?;
    let mut call = call;
    call.api = request.name();
    Ok(match request {
        Request::ApiVersions(_) => {
            // A newer version than served is answered with v0 and the error, as Kafka does.
            let max = served_versions(ApiKey::ApiVersions).map_or(0, |s| s.max);
            let mut call = call;
            let error = if v > max {
                call.version = 0;
                codes::UNSUPPORTED_VERSION
            } else {
                0
            };
            spawn(call, move |call| async move { call.answer(&api_versions(error)) })
        }
        Request::Produce(req) => produce(call, req),
        Request::Fetch(req) => {
            let sessions = shared.sessions.clone();
            spawn(call, move |call| fetch(call, req, sessions))
        }
        Request::Metadata(req) => spawn(call, move |call| metadata(call, req)),
        Request::ListOffsets(req) => spawn(call, move |call| list_offsets(call, req)),
        Request::OffsetForLeaderEpoch(req) => spawn(call, move |call| offset_for_leader_epoch(call, req)),
        Request::FindCoordinator(req) => spawn(call, move |call| find_coordinator(call, req)),
        Request::JoinGroup(req) => spawn(call, move |call| join_group(call, req)),
        Request::SyncGroup(req) => spawn(call, move |call| sync_group(call, req)),
        Request::Heartbeat(req) => spawn(call, move |call| heartbeat(call, req)),
        Request::LeaveGroup(req) => spawn(call, move |call| leave_group(call, req)),
        Request::OffsetCommit(req) => spawn(call, move |call| offset_commit(call, req)),
        Request::OffsetFetch(req) => spawn(call, move |call| offset_fetch(call, req)),
        Request::ListGroups(req) => spawn(call, move |call| list_groups(call, req)),
        Request::DescribeGroups(req) => spawn(call, move |call| describe_groups(call, req)),
        Request::DeleteGroups(req) => spawn(call, move |call| delete_groups(call, req)),
        Request::CreateTopics(req) => spawn(call, move |call| create_topics(call, req)),
        Request::DeleteTopics(req) => spawn(call, move |call| delete_topics(call, req)),
        Request::DescribeConfigs(req) => spawn(call, move |call| describe_configs(call, req)),
        Request::InitProducerId(req) => spawn(call, move |call| init_producer_id(call, req)),
        Request::DescribeCluster(req) => spawn(call, move |call| describe_cluster(call, req)),
        Request::AlterConfigs(req) => spawn(call, move |call| alter_configs(call, req)),
        Request::IncrementalAlterConfigs(req) => {
            spawn(call, move |call| incremental_alter_configs(call, req))
        }
        Request::CreatePartitions(req) => spawn(call, move |call| create_partitions(call, req)),
        Request::DescribeLogDirs(req) => spawn(call, move |call| describe_log_dirs(call, req)),
        Request::OffsetDelete(req) => spawn(call, move |call| offset_delete(call, req)),
        Request::ElectLeaders(req) => spawn(call, move |call| elect_leaders(call, req)),
        Request::AlterPartitionReassignments(req) => spawn(call, move |call| alter_reassignments(call, req)),
        Request::ListPartitionReassignments(req) => spawn(call, move |call| list_reassignments(call, req)),
        Request::DeleteRecords(req) => spawn(call, move |call| delete_records(call, req)),
        Request::DescribeAcls(req) => spawn(call, move |call| describe_acls(call, req)),
        Request::CreateAcls(req) => spawn(call, move |call| create_acls(call, req)),
        Request::DeleteAcls(req) => spawn(call, move |call| delete_acls(call, req)),
        Request::SaslHandshake(_) => spawn(call, |call| async move {
            let mut r = k::SaslHandshakeResponse::default();
            r.error_code = codes::UNSUPPORTED_SASL_MECHANISM;
            call.answer(&r)
        }),
        Request::SaslAuthenticate(_) => spawn(call, |call| async move {
            let mut r = k::SaslAuthenticateResponse::default();
            r.error_code = codes::ILLEGAL_SASL_STATE;
            r.error_message = Some(s(format!(
                "this {} listener has no SASL: clients authenticate with TLS certificates",
                call.listener
            )));
            call.answer(&r)
        }),
    })
}

fn api_versions(error: i16) -> k::ApiVersionsResponse {
    let mut r = k::ApiVersionsResponse::default();
    r.error_code = error;
    r.api_keys = SERVED
        .iter()
        .map(|sv| {
            let mut a = k::api_versions_response::ApiVersion::default();
            a.api_key = sv.key as i16;
            a.min_version = sv.min;
            a.max_version = sv.max;
            a
        })
        .collect();
    r
}

fn produce(call: Call, req: k::ProduceRequest) -> Answer {
    let transactional = req.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty());
    // Each partition is handed to its actor now, in request order.
    let mut started = Vec::new();
    for t in &req.topic_data {
        for p in &t.partition_data {
            let topic = t.name.0.to_string();
            let pending: std::pin::Pin<
                Box<dyn Future<Output = Result<sb::ProduceResponse, BrokerError>> + Send>,
            > = if transactional {
                let reason = "transactions are not built in Sluice (a transactional.id was set)".to_string();
                Box::pin(std::future::ready(Err(BrokerError::InvalidRequest { reason })))
            } else {
                match &p.records {
                    Some(records) => Box::pin(call.service.start_produce(
                        &call.peer,
                        sb::Produce {
                            topic: topic.clone(),
                            partition: p.index,
                            acks: req.acks,
                            timeout_ms: req.timeout_ms.max(0) as u32,
                            records: records.clone(),
                            retry: false,
                        },
                        None,
                    )),
                    None => {
                        let reason = "a produce with no records".to_string();
                        Box::pin(std::future::ready(Err(BrokerError::InvalidRequest { reason })))
                    }
                }
            };
            started.push((topic, p.index, pending));
        }
    }
    let acks = req.acks;
    tokio::spawn(async move {
        let results = futures_util::future::join_all(started.into_iter().map(|(t, p, f)| async move {
            let r = f.await;
            (t, p, r)
        }))
        .await;
        served(call.api, call.started);
        if acks == 0 {
            // No answer to carry an error: as Kafka does, the connection is closed instead,
            // so the producer refreshes its metadata (a moved leader) and reconnects.
            if let Some((topic, partition, Err(e))) = results.iter().find(|(_, _, r)| r.is_err()) {
                return Err(format!("an acks=0 produce to {topic}-{partition} failed: {e}"));
            }
            return Ok(None);
        }
        let mut r = k::ProduceResponse::default();
        for (topic, partition, result) in results {
            let mut pr = k::produce_response::PartitionProduceResponse::default();
            pr.index = partition;
            pr.error_code = code(&result);
            match &result {
                Ok(ok) => {
                    pr.base_offset = ok.base_offset;
                    pr.log_append_time_ms = ok.log_append_time;
                    pr.log_start_offset = ok.log_start_offset;
                }
                Err(e) => {
                    pr.base_offset = -1;
                    pr.log_append_time_ms = -1;
                    pr.log_start_offset = -1;
                    if call.version >= 8 {
                        pr.error_message = Some(s(e.to_string()));
                    }
                }
            }
            place(&mut r.responses, &topic, pr);
        }
        call.answer(&r)
    })
}

async fn fetch(
    call: Call,
    req: k::FetchRequest,
    sessions: Arc<std::sync::Mutex<sluice_broker_core::fetch_session::FetchSessions>>,
) -> Result<Option<BytesMut>, String> {
    let wanted: Vec<_> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let pos = Position { offset: p.fetch_offset, max_bytes: p.partition_max_bytes.max(0) as u32 };
                ((t.topic.0.to_string(), p.partition), pos)
            })
        })
        .collect();
    let forgotten: Vec<(String, i32)> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), *p)))
        .collect();
    let (session_id, epoch) = if call.version >= 7 { (req.session_id, req.session_epoch) } else { (0, -1) };
    let plan = sessions.lock().unwrap_or_else(|p| p.into_inner()).open(session_id, epoch, wanted, &forgotten);
    let mut r = k::FetchResponse::default();
    let plan = match plan {
        Ok(plan) => plan,
        Err(e @ (SessionError::NotFound(_) | SessionError::InvalidEpoch { .. })) => {
            r.error_code = e.code();
            return call.answer(&r);
        }
    };
    let partitions = plan
        .partitions
        .iter()
        .map(|((topic, partition), pos)| {
            let p = sb::FetchPartition {
                topic: topic.clone(),
                partition: *partition,
                offset: pos.offset,
                max_bytes: pos.max_bytes,
            };
            (p, None)
        })
        .collect();
    let fetched = call
        .service
        .fetch_loop(
            &call.peer,
            partitions,
            req.max_wait_ms.max(0) as u32,
            req.min_bytes.max(0) as u32,
            if call.version >= 3 { req.max_bytes.max(0) as u32 } else { i32::MAX as u32 },
            None,
        )
        .await;
    let fetched = match fetched {
        Ok(f) => f.partitions,
        Err(e) => {
            r.error_code = e.code();
            return call.answer(&r);
        }
    };
    let answered: Vec<Answered> = fetched
        .iter()
        .map(|f| Answered {
            has_records: !f.records.is_empty(),
            has_error: f.error.is_some(),
            high_watermark: f.high_watermark,
            log_start_offset: f.log_start_offset,
        })
        .collect();
    let send = sessions.lock().unwrap_or_else(|p| p.into_inner()).answered(&plan, &answered);
    r.session_id = plan.session_id;
    let read_committed = req.isolation_level == 1;
    for (f, send) in fetched.into_iter().zip(send) {
        if !send {
            continue;
        }
        let mut pd = k::fetch_response::PartitionData::default();
        pd.partition_index = f.partition;
        pd.error_code = f.error.as_ref().map_or(0, BrokerError::code);
        pd.high_watermark = f.high_watermark;
        // No transactions: everything below the high watermark is stable.
        pd.last_stable_offset = f.high_watermark;
        pd.log_start_offset = f.log_start_offset;
        pd.aborted_transactions = read_committed.then(Vec::new);
        pd.preferred_read_replica = BrokerId(-1);
        pd.records = Some(f.records);
        place(&mut r.responses, &f.topic, pd);
    }
    call.answer(&r)
}

async fn metadata(call: Call, req: k::MetadataRequest) -> Result<Option<BytesMut>, String> {
    let mut by_id = Vec::new();
    let topics = match &req.topics {
        // v0: an empty list means every topic.
        Some(list) if list.is_empty() && call.version == 0 => None,
        None => None,
        Some(list) => {
            let mut names = Vec::new();
            for t in list {
                match &t.name {
                    Some(n) => names.push(n.0.to_string()),
                    None => by_id.push(t.topic_id),
                }
            }
            Some(names)
        }
    };
    let allow_auto_create = call.version < 4 || req.allow_auto_topic_creation;
    let m = call.service.metadata(&call.peer, sb::MetadataRequest { topics, allow_auto_create }).await;
    let mut r = k::MetadataResponse::default();
    r.cluster_authorized_operations = i32::MIN;
    let m = match m {
        Ok(m) => m,
        Err(e) => {
            // Metadata has no top-level error before v13: answer an empty cluster (the client
            // retries) and log why.
            tracing::info!(error = %e, "metadata");
            r.controller_id = BrokerId(-1);
            return call.answer(&r);
        }
    };
    r.cluster_id = Some(s(m.cluster_id.clone()));
    r.controller_id = BrokerId(m.controller_id.unwrap_or(-1));
    let mut reachable = Vec::new();
    for (id, host, port, rack) in call.brokers_here(&m.brokers) {
        let mut rb = k::metadata_response::MetadataResponseBroker::default();
        (rb.node_id, rb.host, rb.port, rb.rack) = (id, host, port, rack);
        r.brokers.push(rb);
        reachable.push(id.0);
    }
    for t in m.topics {
        let mut rt = k::metadata_response::MetadataResponseTopic::default();
        rt.name = Some(topic_name(&t.name));
        rt.error_code = t.error.as_ref().map_or(0, BrokerError::code);
        rt.is_internal = t.internal;
        rt.topic_authorized_operations = i32::MIN;
        for p in t.partitions {
            let mut rp = k::metadata_response::MetadataResponsePartition::default();
            rp.partition_index = p.partition;
            rp.leader_id = BrokerId(p.leader.unwrap_or(-1));
            rp.leader_epoch = p.leader_epoch;
            rp.error_code = match p.leader {
                None => 5, // LEADER_NOT_AVAILABLE
                Some(l) if !reachable.contains(&l) && m.brokers.iter().any(|b| b.id == l) => {
                    codes::LISTENER_NOT_FOUND
                }
                Some(_) => 0,
            };
            rp.replica_nodes = p.replicas.into_iter().map(BrokerId).collect();
            rp.isr_nodes = p.isr.into_iter().map(BrokerId).collect();
            rp.offline_replicas = p.offline_replicas.into_iter().map(BrokerId).collect();
            rt.partitions.push(rp);
        }
        r.topics.push(rt);
    }
    for id in by_id {
        let mut rt = k::metadata_response::MetadataResponseTopic::default();
        rt.topic_id = id;
        rt.error_code = codes::UNKNOWN_TOPIC_ID;
        rt.topic_authorized_operations = i32::MIN;
        r.topics.push(rt);
    }
    call.answer(&r)
}

async fn list_offsets(call: Call, req: k::ListOffsetsRequest) -> Result<Option<BytesMut>, String> {
    let partitions = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| sb::ListOffsetsPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                timestamp: p.timestamp,
            })
        })
        .collect();
    let listed = call.service.list_offsets(&call.peer, sb::ListOffsets { partitions }).await;
    let mut r = k::ListOffsetsResponse::default();
    let listed = match listed {
        Ok(l) => l,
        Err(e) => req
            .topics
            .iter()
            .flat_map(|t| {
                let e = e.clone();
                t.partitions.iter().map(move |p| sb::ListedOffset {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    result: Err(e.clone()),
                })
            })
            .collect(),
    };
    for l in listed {
        let mut p = k::list_offsets_response::ListOffsetsPartitionResponse::default();
        p.partition_index = l.partition;
        p.error_code = code(&l.result);
        let (offset, timestamp) = l.result.unwrap_or((-1, -1));
        p.offset = offset;
        p.timestamp = timestamp;
        p.leader_epoch = -1;
        place(&mut r.topics, &l.topic, p);
    }
    call.answer(&r)
}

async fn offset_for_leader_epoch(
    call: Call,
    req: k::OffsetForLeaderEpochRequest,
) -> Result<Option<BytesMut>, String> {
    let partitions = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| EpochQuery {
                topic: t.topic.0.to_string(),
                partition: p.partition,
                current_leader_epoch: p.current_leader_epoch,
                leader_epoch: p.leader_epoch,
            })
        })
        .collect();
    let ends = call.service.offsets_for_leader_epoch(&call.peer, OffsetsForLeaderEpoch { partitions }).await;
    let mut r = k::OffsetForLeaderEpochResponse::default();
    let ends = match ends {
        Ok(e) => e,
        Err(e) => {
            // Every partition fails alike.
            let code = e.code();
            for t in &req.topics {
                let mut rt = k::offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default();
                rt.topic = t.topic.clone();
                for p in &t.partitions {
                    let mut ep = k::offset_for_leader_epoch_response::EpochEndOffset::default();
                    ep.partition = p.partition;
                    ep.error_code = code;
                    ep.leader_epoch = -1;
                    ep.end_offset = -1;
                    rt.partitions.push(ep);
                }
                r.topics.push(rt);
            }
            return call.answer(&r);
        }
    };
    for end in ends {
        let mut ep = k::offset_for_leader_epoch_response::EpochEndOffset::default();
        ep.partition = end.partition;
        ep.error_code = code(&end.result);
        let (epoch, offset) = end.result.ok().flatten().unwrap_or((-1, -1));
        ep.leader_epoch = epoch;
        ep.end_offset = offset;
        place(&mut r.topics, &end.topic, ep);
    }
    call.answer(&r)
}

/// Where `key`'s coordinator is, on this connection's listener: `(node, host, port)` or the
/// error code and message.
async fn coordinator(call: &Call, key: &str, key_type: i8) -> Result<(i32, String, i32), (i16, String)> {
    if key_type != 0 {
        return Err((
            codes::COORDINATOR_NOT_AVAILABLE,
            "transactions are not built in Sluice: there is no transaction coordinator".into(),
        ));
    }
    let found =
        call.service.find_coordinator(&call.peer, sb::FindCoordinator { group_id: key.to_string() }).await;
    match found {
        Ok(b) => match call.on_listener(&b) {
            Some((host, port)) => Ok((b.id, host, i32::from(port))),
            None => Err((
                codes::COORDINATOR_NOT_AVAILABLE,
                format!("the coordinator, broker {}, has no {} listener", b.id, call.listener),
            )),
        },
        Err(e) => Err((e.code(), e.to_string())),
    }
}

async fn find_coordinator(call: Call, req: k::FindCoordinatorRequest) -> Result<Option<BytesMut>, String> {
    /// `(node, host, port, error code, error message)` as both answer shapes carry them.
    async fn found(call: &Call, key: &str, key_type: i8) -> (i32, String, i32, i16, Option<StrBytes>) {
        match coordinator(call, key, key_type).await {
            Ok((id, host, port)) => (id, host, port, 0, None),
            Err((code, msg)) => (-1, String::new(), -1, code, Some(s(msg))),
        }
    }
    let mut r = k::FindCoordinatorResponse::default();
    if call.version >= 4 {
        for key in &req.coordinator_keys {
            let mut c = k::find_coordinator_response::Coordinator::default();
            c.key = key.clone();
            (c.node_id.0, c.host, c.port, c.error_code, c.error_message) = {
                let (id, host, port, code, msg) = found(&call, key, req.key_type).await;
                (id, s(host), port, code, msg)
            };
            r.coordinators.push(c);
        }
    } else {
        let (id, host, port, code, msg) = found(&call, &req.key, req.key_type).await;
        (r.node_id.0, r.host, r.port, r.error_code) = (id, s(host), port, code);
        // v0 has no error message.
        r.error_message = msg.filter(|_| call.version >= 1);
    }
    call.answer(&r)
}

async fn join_group(call: Call, req: k::JoinGroupRequest) -> Result<Option<BytesMut>, String> {
    let join = sb::JoinGroup {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        client_id: call.client_id.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if call.version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.to_vec())).collect(),
    };
    let result = call.service.join_group(&call.peer, join).await;
    let mut r = k::JoinGroupResponse::default();
    r.protocol_type = Some(req.protocol_type.clone());
    match result {
        Ok(j) => {
            r.generation_id = j.generation_id;
            r.protocol_name = Some(s(j.protocol));
            r.leader = s(j.leader);
            r.member_id = s(j.member_id);
            r.members = j
                .members
                .into_iter()
                .map(|(id, metadata)| {
                    let mut m = k::join_group_response::JoinGroupResponseMember::default();
                    m.member_id = s(id);
                    m.metadata = Bytes::from(metadata);
                    m
                })
                .collect();
        }
        Err(e) => {
            r.error_code = e.code();
            r.generation_id = -1;
            r.protocol_name = if call.version >= 7 { None } else { Some(StrBytes::default()) };
            r.member_id = if matches!(e, BrokerError::UnknownMemberId { .. }) {
                StrBytes::default()
            } else {
                req.member_id
            };
        }
    }
    call.answer(&r)
}

async fn sync_group(call: Call, req: k::SyncGroupRequest) -> Result<Option<BytesMut>, String> {
    let sync = sb::SyncGroup {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.to_vec()))
            .collect(),
    };
    let result = call.service.sync_group(&call.peer, sync).await;
    let mut r = k::SyncGroupResponse::default();
    r.error_code = code(&result);
    r.protocol_type = req.protocol_type.clone();
    r.protocol_name = req.protocol_name.clone();
    r.assignment = result.map(Bytes::from).unwrap_or_default();
    call.answer(&r)
}

async fn heartbeat(call: Call, req: k::HeartbeatRequest) -> Result<Option<BytesMut>, String> {
    let beat = sb::Heartbeat {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
    };
    let result = call.service.heartbeat(&call.peer, beat).await;
    let mut r = k::HeartbeatResponse::default();
    r.error_code = code(&result);
    call.answer(&r)
}

async fn leave_group(call: Call, req: k::LeaveGroupRequest) -> Result<Option<BytesMut>, String> {
    let member_ids: Vec<String> = if call.version >= 3 {
        req.members.iter().map(|m| m.member_id.to_string()).collect()
    } else {
        vec![req.member_id.to_string()]
    };
    let leave = sb::LeaveGroup { group_id: req.group_id.0.to_string(), member_ids: member_ids.clone() };
    let result = call.service.leave_group(&call.peer, leave).await;
    let mut r = k::LeaveGroupResponse::default();
    r.error_code = code(&result);
    if call.version >= 3 {
        r.members = member_ids
            .into_iter()
            .map(|id| {
                let mut m = k::leave_group_response::MemberResponse::default();
                m.member_id = s(id);
                m.error_code = code(&result);
                m
            })
            .collect();
    }
    call.answer(&r)
}

async fn offset_commit(call: Call, req: k::OffsetCommitRequest) -> Result<Option<BytesMut>, String> {
    let offsets = req
        .topics
        .iter()
        .flat_map(|t| {
            let v = call.version;
            t.partitions.iter().map(move |p| {
                let mut c =
                    sb::CommitOffset::new(t.name.0.to_string(), p.partition_index, p.committed_offset);
                c.leader_epoch = if v >= 6 { p.committed_leader_epoch } else { -1 };
                c.metadata = p.committed_metadata.as_deref().unwrap_or("").to_string();
                c
            })
        })
        .collect();
    let commit = sb::OffsetCommit {
        group_id: req.group_id.0.to_string(),
        generation_id: if call.version >= 1 { req.generation_id_or_member_epoch } else { -1 },
        member_id: req.member_id.to_string(),
        offsets,
    };
    let result = call.service.offset_commit(&call.peer, commit).await;
    let mut r = k::OffsetCommitResponse::default();
    let per_partition: Vec<(String, i32, i16)> = match result {
        Ok(list) => list.into_iter().map(|(t, p, r)| (t, p, code(&r))).collect(),
        Err(e) => req
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index, e.code())))
            .collect(),
    };
    for (topic, partition, error) in per_partition {
        let mut p = k::offset_commit_response::OffsetCommitResponsePartition::default();
        p.partition_index = partition;
        p.error_code = error;
        place(&mut r.topics, &topic, p);
    }
    call.answer(&r)
}

/// One group's committed offsets for `partitions` (`None`: all it has): `(topic,
/// partition, offset, leader epoch, metadata)`, a partition without a commit at -1; or the
/// group's error.
async fn committed(
    call: &Call,
    group: &str,
    partitions: Option<Vec<(String, i32)>>,
) -> Result<Vec<sb::CommittedOffset>, BrokerError> {
    let asked = partitions.clone();
    let got = call
        .service
        .offset_fetch(&call.peer, sb::OffsetFetch { group_id: group.to_string(), partitions })
        .await?;
    let Some(asked) = asked else { return Ok(got) };
    Ok(asked
        .into_iter()
        .map(|(topic, partition)| {
            got.iter().find(|c| c.topic == topic && c.partition == partition).cloned().unwrap_or(
                sb::CommittedOffset {
                    topic,
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                },
            )
        })
        .collect())
}

/// The partitions an OffsetFetch names (its two request shapes have topic types of their
/// own), or `None` for all.
macro_rules! asked {
    ($topics:expr) => {
        $topics.as_ref().map(|ts| {
            ts.iter()
                .flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.0.to_string(), *p)))
                .collect::<Vec<_>>()
        })
    };
}

/// A committed offset as either OffsetFetch answer shape's partition type.
macro_rules! committed_part {
    ($t:ty, $c:expr) => {{
        let c: sb::CommittedOffset = $c;
        let mut p = <$t>::default();
        p.partition_index = c.partition;
        p.committed_offset = c.offset;
        p.committed_leader_epoch = c.leader_epoch;
        p.metadata = Some(s(c.metadata));
        p
    }};
}

async fn offset_fetch(call: Call, req: k::OffsetFetchRequest) -> Result<Option<BytesMut>, String> {
    let mut r = k::OffsetFetchResponse::default();
    if call.version >= 8 {
        for g in &req.groups {
            let partitions = asked!(g.topics);
            let mut rg = k::offset_fetch_response::OffsetFetchResponseGroup::default();
            rg.group_id = g.group_id.clone();
            match committed(&call, &g.group_id.0, partitions).await {
                Ok(list) => {
                    for c in list {
                        let topic = c.topic.clone();
                        place(
                            &mut rg.topics,
                            &topic,
                            committed_part!(k::offset_fetch_response::OffsetFetchResponsePartitions, c),
                        );
                    }
                }
                Err(e) => rg.error_code = e.code(),
            }
            r.groups.push(rg);
        }
        return call.answer(&r);
    }
    let partitions = asked!(req.topics);
    match committed(&call, &req.group_id.0, partitions).await {
        Ok(list) => {
            for c in list {
                let topic = c.topic.clone();
                place(
                    &mut r.topics,
                    &topic,
                    committed_part!(k::offset_fetch_response::OffsetFetchResponsePartition, c),
                );
            }
        }
        Err(e) => {
            if call.version >= 2 {
                r.error_code = e.code();
            } else {
                // v1 has no group-level error: every partition asked for carries it.
                for t in req.topics.iter().flatten() {
                    let mut rt = k::offset_fetch_response::OffsetFetchResponseTopic::default();
                    rt.name = t.name.clone();
                    for p in &t.partition_indexes {
                        let mut rp = k::offset_fetch_response::OffsetFetchResponsePartition::default();
                        rp.partition_index = *p;
                        rp.committed_offset = -1;
                        rp.error_code = e.code();
                        rt.partitions.push(rp);
                    }
                    r.topics.push(rt);
                }
            }
        }
    }
    call.answer(&r)
}

async fn list_groups(call: Call, _: k::ListGroupsRequest) -> Result<Option<BytesMut>, String> {
    let result = call.service.list_groups(&call.peer, sb::ListGroups {}).await;
    let mut r = k::ListGroupsResponse::default();
    r.error_code = code(&result);
    for g in result.unwrap_or_default() {
        let mut lg = k::list_groups_response::ListedGroup::default();
        lg.group_id = GroupId(s(g.group_id));
        lg.protocol_type = s(g.protocol_type);
        lg.group_state = s(g.state);
        r.groups.push(lg);
    }
    call.answer(&r)
}

async fn describe_groups(call: Call, req: k::DescribeGroupsRequest) -> Result<Option<BytesMut>, String> {
    let names: Vec<String> = req.groups.iter().map(|g| g.0.to_string()).collect();
    let result = call.service.describe_groups(&call.peer, sb::DescribeGroups { groups: names.clone() }).await;
    let mut r = k::DescribeGroupsResponse::default();
    let described: Vec<Result<sb::GroupDescription, BrokerError>> = match result {
        Ok(list) => list,
        Err(e) => names.iter().map(|_| Err(e.clone())).collect(),
    };
    for (name, d) in names.into_iter().zip(described) {
        let mut g = k::describe_groups_response::DescribedGroup::default();
        g.group_id = GroupId(s(name));
        g.authorized_operations = i32::MIN;
        match d {
            Ok(d) => {
                g.group_state = s(d.state);
                g.protocol_type = s(d.protocol_type);
                g.protocol_data = s(d.protocol);
                g.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut dm = k::describe_groups_response::DescribedGroupMember::default();
                        dm.member_id = s(m.member_id);
                        dm.client_id = s(m.client_id);
                        dm.client_host = s(m.client_host);
                        dm.member_metadata = Bytes::from(m.metadata);
                        dm.member_assignment = Bytes::from(m.assignment);
                        dm
                    })
                    .collect();
            }
            Err(e) => {
                g.error_code = e.code();
                if call.version >= 6 {
                    g.error_message = Some(s(e.to_string()));
                }
            }
        }
        r.groups.push(g);
    }
    call.answer(&r)
}

async fn delete_groups(call: Call, req: k::DeleteGroupsRequest) -> Result<Option<BytesMut>, String> {
    let names: Vec<String> = req.groups_names.iter().map(|g| g.0.to_string()).collect();
    let result = call.service.delete_groups(&call.peer, sb::DeleteGroups { groups: names.clone() }).await;
    let results = match result {
        Ok(list) => list,
        Err(e) => names.into_iter().map(|n| (n, Err(e.clone()))).collect(),
    };
    let mut r = k::DeleteGroupsResponse::default();
    for (name, result) in results {
        let mut d = k::delete_groups_response::DeletableGroupResult::default();
        d.group_id = GroupId(s(name));
        d.error_code = code(&result);
        r.results.push(d);
    }
    call.answer(&r)
}

async fn create_topics(call: Call, req: k::CreateTopicsRequest) -> Result<Option<BytesMut>, String> {
    let topics: Vec<sb::NewTopic> = req
        .topics
        .iter()
        .map(|t| {
            let assignment: Option<BTreeMap<i32, Vec<i32>>> = (!t.assignments.is_empty()).then(|| {
                t.assignments
                    .iter()
                    .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect()))
                    .collect()
            });
            sb::NewTopic {
                name: t.name.0.to_string(),
                partitions: (t.num_partitions >= 0 && assignment.is_none()).then_some(t.num_partitions),
                replication_factor: (t.replication_factor >= 0 && assignment.is_none())
                    .then_some(t.replication_factor),
                assignment,
                configs: t
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                    .collect(),
            }
        })
        .collect();
    let asked: Vec<(i32, i16)> =
        req.topics.iter().map(|t| (t.num_partitions, t.replication_factor)).collect();
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let result = call
        .service
        .create_topics(&call.peer, sb::CreateTopics { topics, validate_only: req.validate_only })
        .await;
    let results = match result {
        Ok(list) => list,
        Err(e) => names.into_iter().map(|n| (n, Err(e.clone()))).collect(),
    };
    let defaults = call.service.config();
    let mut r = k::CreateTopicsResponse::default();
    for ((name, result), (partitions, rf)) in results.into_iter().zip(asked) {
        let mut t = k::create_topics_response::CreatableTopicResult::default();
        t.name = topic_name(&name);
        t.error_code = code(&result);
        t.error_message = message(&result);
        t.num_partitions = if partitions >= 0 { partitions } else { defaults.num_partitions };
        t.replication_factor = if rf >= 0 { rf } else { defaults.default_replication_factor };
        t.configs = Some(Vec::new());
        r.topics.push(t);
    }
    call.answer(&r)
}

async fn delete_topics(call: Call, req: k::DeleteTopicsRequest) -> Result<Option<BytesMut>, String> {
    let names: Vec<String> = if call.version >= 6 {
        req.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())).collect()
    } else {
        req.topic_names.iter().map(|n| n.0.to_string()).collect()
    };
    let result = call.service.delete_topics(&call.peer, sb::DeleteTopics { topics: names.clone() }).await;
    let results = match result {
        Ok(list) => list,
        Err(e) => names.into_iter().map(|n| (n, Err(e.clone()))).collect(),
    };
    let mut r = k::DeleteTopicsResponse::default();
    for (name, result) in results {
        let mut d = k::delete_topics_response::DeletableTopicResult::default();
        d.name = Some(topic_name(&name));
        d.error_code = code(&result);
        d.error_message = message(&result);
        r.responses.push(d);
    }
    call.answer(&r)
}

/// Kafka's config resource types.
const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
/// Kafka's config sources: a topic override, and a default.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const DEFAULT_CONFIG: i8 = 5;

/// One config of a DescribeConfigs answer.
fn config_entry(
    key: String,
    value: String,
    source: i8,
) -> k::describe_configs_response::DescribeConfigsResourceResult {
    let mut c = k::describe_configs_response::DescribeConfigsResourceResult::default();
    c.name = s(key);
    c.value = Some(s(value));
    c.config_source = source;
    c
}

async fn describe_configs(call: Call, req: k::DescribeConfigsRequest) -> Result<Option<BytesMut>, String> {
    let mut r = k::DescribeConfigsResponse::default();
    for res in &req.resources {
        let mut out = k::describe_configs_response::DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let wanted =
            |key: &str| res.configuration_keys.as_ref().is_none_or(|ks| ks.iter().any(|k| &**k == key));
        match res.resource_type {
            TOPIC_RESOURCE => {
                let name = res.resource_name.to_string();
                let result = call
                    .service
                    .describe_configs(&call.peer, sb::DescribeConfigs { topics: vec![name] })
                    .await;
                let configs = result.and_then(|mut list| match list.pop() {
                    Some((_, r)) => r,
                    None => Ok(BTreeMap::new()),
                });
                match configs {
                    Ok(overrides) => {
                        // Every topic key: the topic's override, else this broker's default.
                        let mut all: BTreeMap<String, (String, i8)> = call
                            .service
                            .config()
                            .topic_config_defaults()
                            .into_iter()
                            .map(|(key, value)| (key, (value, DEFAULT_CONFIG)))
                            .collect();
                        for (key, value) in overrides {
                            all.insert(key, (value, DYNAMIC_TOPIC_CONFIG));
                        }
                        for (key, (value, source)) in all.into_iter().filter(|(key, _)| wanted(key)) {
                            out.configs.push(config_entry(key, value, source));
                        }
                    }
                    Err(e) => {
                        out.error_code = e.code();
                        out.error_message = Some(s(e.to_string()));
                    }
                }
            }
            BROKER_RESOURCE if res.resource_name.is_empty() || res.resource_name.parse::<i32>().is_ok() => {
                // The cluster-wide dynamic defaults, under a named broker's own dynamic configs
                // (the rest is the broker's file).
                let broker = res.resource_name.parse::<i32>().ok();
                let described = async {
                    let defaults = call.service.describe_broker_configs(&call.peer, None).await?;
                    let own = match broker {
                        Some(id) => call.service.describe_broker_configs(&call.peer, Some(id)).await?,
                        None => BTreeMap::new(),
                    };
                    Ok::<_, BrokerError>((defaults, own))
                };
                match described.await {
                    Ok((defaults, own)) => {
                        let mut all: BTreeMap<String, (String, i8)> = defaults
                            .into_iter()
                            .map(|(k, v)| (k, (v, DYNAMIC_DEFAULT_BROKER_CONFIG)))
                            .collect();
                        all.extend(own.into_iter().map(|(k, v)| (k, (v, DYNAMIC_BROKER_CONFIG))));
                        for (key, (value, source)) in all.into_iter().filter(|(key, _)| wanted(key)) {
                            out.configs.push(config_entry(key, value, source));
                        }
                    }
                    Err(e) => {
                        out.error_code = e.code();
                        out.error_message = Some(s(e.to_string()));
                    }
                }
            }
            BROKER_RESOURCE => {
                out.error_code = codes::INVALID_REQUEST;
                out.error_message = Some(s(format!(
                    "broker resource {:?}: give a broker id, or an empty name for the defaults",
                    res.resource_name.as_str()
                )));
            }
            other => {
                out.error_code = codes::INVALID_REQUEST;
                out.error_message =
                    Some(s(format!("config resource type {other} is not served (topics and brokers are)")));
            }
        }
        r.results.push(out);
    }
    call.answer(&r)
}

async fn init_producer_id(call: Call, req: k::InitProducerIdRequest) -> Result<Option<BytesMut>, String> {
    let mut r = k::InitProducerIdResponse::default();
    if req.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty()) {
        // Transactions are not built: a fatal error for the client, not a retry loop.
        r.error_code = codes::UNSUPPORTED_VERSION;
        r.producer_id = k::ProducerId(-1);
        r.producer_epoch = -1;
        return call.answer(&r);
    }
    match call.service.init_producer_id(&call.peer, sb::InitProducerId {}).await {
        Ok(id) => {
            r.producer_id = k::ProducerId(id.producer_id);
            r.producer_epoch = id.producer_epoch;
        }
        Err(e) => {
            r.error_code = e.code();
            r.producer_id = k::ProducerId(-1);
            r.producer_epoch = -1;
        }
    }
    call.answer(&r)
}

async fn describe_cluster(call: Call, _: k::DescribeClusterRequest) -> Result<Option<BytesMut>, String> {
    let m = call
        .service
        .metadata(&call.peer, sb::MetadataRequest { topics: Some(Vec::new()), allow_auto_create: false })
        .await;
    let mut r = k::DescribeClusterResponse::default();
    r.cluster_authorized_operations = i32::MIN;
    r.endpoint_type = 1;
    match m {
        Ok(m) => {
            r.cluster_id = s(m.cluster_id);
            r.controller_id = BrokerId(m.controller_id.unwrap_or(-1));
            for (id, host, port, rack) in call.brokers_here(&m.brokers) {
                let mut db = k::describe_cluster_response::DescribeClusterBroker::default();
                (db.broker_id, db.host, db.port, db.rack) = (id, host, port, rack);
                r.brokers.push(db);
            }
        }
        Err(e) => {
            r.error_code = e.code();
            r.error_message = Some(s(e.to_string()));
            r.controller_id = BrokerId(-1);
        }
    }
    call.answer(&r)
}

/// One resource's outcome of an AlterConfigs or IncrementalAlterConfigs.
async fn alter_one(
    call: &Call,
    resource_type: i8,
    name: &str,
    change: Result<BTreeMap<String, String>, Vec<sluice_broker_core::topic::ConfigOp>>,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    match resource_type {
        TOPIC_RESOURCE => {
            match call.service.alter_topic_configs(&call.peer, name, change, validate_only).await {
                Ok(()) => (0, None),
                Err(e) => (e.code(), Some(s(e.to_string()))),
            }
        }
        BROKER_RESOURCE if name.is_empty() || name.parse::<i32>().is_ok() => {
            // The cluster-wide defaults (an empty name) or one broker's own dynamic configs;
            // AlterConfigs replaces them all.
            let ops = match change {
                Err(ops) => ops,
                Ok(replace) => sluice_broker_core::topic::DYNAMIC_BROKER_KEYS
                    .iter()
                    .map(|(key, _)| *key)
                    .chain(sluice_broker_core::throttle::RATE_KEYS)
                    .map(|key| sluice_broker_core::topic::ConfigOp::Delete(key.to_string()))
                    .chain(replace.into_iter().map(|(k, v)| sluice_broker_core::topic::ConfigOp::Set(k, v)))
                    .collect(),
            };
            let broker = name.parse::<i32>().ok();
            match call.service.alter_broker_configs(&call.peer, broker, &ops, validate_only).await {
                Ok(()) => (0, None),
                Err(e) => (e.code(), Some(s(e.to_string()))),
            }
        }
        BROKER_RESOURCE => (
            codes::INVALID_REQUEST,
            Some(s(format!("broker resource {name:?}: give a broker id, or an empty name for the defaults"))),
        ),
        other => (
            codes::INVALID_REQUEST,
            Some(s(format!("config resource type {other} is not served (topics are)"))),
        ),
    }
}

async fn alter_configs(call: Call, req: k::AlterConfigsRequest) -> Result<Option<BytesMut>, String> {
    let mut r = k::AlterConfigsResponse::default();
    for res in &req.resources {
        let replace: BTreeMap<String, String> = res
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
            .collect();
        let (code, message) =
            alter_one(&call, res.resource_type, &res.resource_name, Ok(replace), req.validate_only).await;
        let mut out = k::alter_configs_response::AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        out.error_code = code;
        out.error_message = message;
        r.responses.push(out);
    }
    call.answer(&r)
}

async fn incremental_alter_configs(
    call: Call,
    req: k::IncrementalAlterConfigsRequest,
) -> Result<Option<BytesMut>, String> {
    use sluice_broker_core::topic::ConfigOp;
    let mut r = k::IncrementalAlterConfigsResponse::default();
    for res in &req.resources {
        let ops: Result<Vec<ConfigOp>, BrokerError> = res
            .configs
            .iter()
            .map(|c| {
                ConfigOp::from_kafka(
                    c.config_operation,
                    c.name.to_string(),
                    c.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let (code, message) = match ops {
            Ok(ops) => {
                alter_one(&call, res.resource_type, &res.resource_name, Err(ops), req.validate_only).await
            }
            Err(e) => (e.code(), Some(s(e.to_string()))),
        };
        let mut out = k::incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        out.error_code = code;
        out.error_message = message;
        r.responses.push(out);
    }
    call.answer(&r)
}

async fn create_partitions(call: Call, req: k::CreatePartitionsRequest) -> Result<Option<BytesMut>, String> {
    let mut r = k::CreatePartitionsResponse::default();
    for t in &req.topics {
        let assignment = t
            .assignments
            .as_ref()
            .map(|list| list.iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect());
        let result = call
            .service
            .create_partitions(&call.peer, &t.name.0, t.count, assignment, req.validate_only)
            .await;
        let mut out = k::create_partitions_response::CreatePartitionsTopicResult::default();
        out.name = t.name.clone();
        out.error_code = code(&result);
        out.error_message = message(&result);
        r.results.push(out);
    }
    call.answer(&r)
}

async fn describe_log_dirs(call: Call, req: k::DescribeLogDirsRequest) -> Result<Option<BytesMut>, String> {
    let mut r = k::DescribeLogDirsResponse::default();
    let dirs = match call.service.describe_log_dirs(&call.peer).await {
        Ok(d) => d,
        Err(e) => {
            r.error_code = e.code();
            return call.answer(&r);
        }
    };
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(ts) => ts.iter().any(|t| &*t.topic.0 == topic && t.partitions.contains(&partition)),
    };
    for (dir, partitions) in dirs {
        let mut out = k::describe_log_dirs_response::DescribeLogDirsResult::default();
        out.log_dir = s(dir.display().to_string());
        // Unknown, as Kafka answers when it cannot ask the filesystem.
        out.total_bytes = -1;
        out.usable_bytes = -1;
        for (tp, size) in partitions.into_iter().filter(|(tp, _)| wanted(&tp.topic, tp.partition)) {
            let mut p = k::describe_log_dirs_response::DescribeLogDirsPartition::default();
            p.partition_index = tp.partition;
            p.partition_size = size as i64;
            place(&mut out.topics, &tp.topic, p);
        }
        r.results.push(out);
    }
    call.answer(&r)
}

async fn offset_delete(call: Call, req: k::OffsetDeleteRequest) -> Result<Option<BytesMut>, String> {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    let mut r = k::OffsetDeleteResponse::default();
    let outcomes = match call.service.delete_offsets(&call.peer, &req.group_id.0, partitions.clone()).await {
        Ok(o) => o,
        Err(e) => {
            r.error_code = e.code();
            return call.answer(&r);
        }
    };
    for ((topic, partition), outcome) in partitions.into_iter().zip(outcomes) {
        let mut p = k::offset_delete_response::OffsetDeleteResponsePartition::default();
        p.partition_index = partition;
        p.error_code = code(&outcome);
        place(&mut r.topics, &topic, p);
    }
    call.answer(&r)
}

/// DeleteRecords: each partition's leader moves its log start; the low watermark answered
/// is the leader's new log start (the followers follow on their next fetch).
async fn delete_records(call: Call, req: k::DeleteRecordsRequest) -> Result<Option<BytesMut>, String> {
    let partitions = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| sb::DeleteRecordsPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.offset,
            })
        })
        .collect::<Vec<_>>();
    let asked: Vec<(String, i32)> = partitions.iter().map(|p| (p.topic.clone(), p.partition)).collect();
    let deleted = match call.service.delete_records(&call.peer, sb::DeleteRecords { partitions }).await {
        Ok(d) => d,
        Err(e) => asked
            .into_iter()
            .map(|(topic, partition)| sb::DeletedRecords { topic, partition, result: Err(e.clone()) })
            .collect(),
    };
    let mut r = k::DeleteRecordsResponse::default();
    for d in deleted {
        let mut p = k::delete_records_response::DeleteRecordsPartitionResult::default();
        p.partition_index = d.partition;
        p.error_code = code(&d.result);
        p.low_watermark = d.result.unwrap_or(-1);
        place(&mut r.topics, &d.topic, p);
    }
    call.answer(&r)
}

/// AlterPartitionReassignments: the moves go to the controller through
/// `/admin/reassign_partitions`. A null replica list (cancel) is refused: a move here runs to
/// its end (move the partition back instead).
async fn alter_reassignments(
    call: Call,
    req: k::AlterPartitionReassignmentsRequest,
) -> Result<Option<BytesMut>, String> {
    let mut r = k::AlterPartitionReassignmentsResponse::default();
    let mut moves = Vec::new();
    let mut refused = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let topic = t.name.0.to_string();
            match &p.replicas {
                Some(replicas) => {
                    moves.push((topic, p.partition_index, replicas.iter().map(|b| b.0).collect()))
                }
                None => refused.push((
                    topic,
                    p.partition_index,
                    Err(BrokerError::InvalidRequest {
                        reason:
                            "cancelling a reassignment is not supported; reassign the partition back instead"
                                .into(),
                    }),
                )),
            }
        }
    }
    let outcomes = if moves.is_empty() {
        Ok(Vec::new())
    } else {
        call.service.alter_reassignments(&call.peer, moves).await
    };
    match outcomes {
        Ok(outcomes) => {
            for (topic, partition, outcome) in outcomes.into_iter().chain(refused) {
                let mut p =
                    k::alter_partition_reassignments_response::ReassignablePartitionResponse::default();
                p.partition_index = partition;
                p.error_code = code(&outcome);
                p.error_message = message(&outcome);
                place(&mut r.responses, &topic, p);
            }
        }
        Err(e) => {
            r.error_code = e.code();
            r.error_message = Some(StrBytes::from_string(e.to_string()));
        }
    }
    call.answer(&r)
}

/// ListPartitionReassignments: the moves in progress; the adding replicas are the target's
/// not yet assigned or not yet in sync, the removing ones the assigned not in the target
/// (Kafka's adding lists every new replica until the move ends).
async fn list_reassignments(
    call: Call,
    req: k::ListPartitionReassignmentsRequest,
) -> Result<Option<BytesMut>, String> {
    let partitions: Option<Vec<(String, i32)>> = req.topics.as_ref().map(|ts| {
        ts.iter().flat_map(|t| t.partition_indexes.iter().map(move |p| (t.name.0.to_string(), *p))).collect()
    });
    let mut r = k::ListPartitionReassignmentsResponse::default();
    match call.service.list_reassignments(&call.peer, partitions).await {
        Ok(moving) => {
            for m in moving {
                let mut p = k::list_partition_reassignments_response::OngoingPartitionReassignment::default();
                p.partition_index = m.partition;
                p.adding_replicas = m.adding.iter().copied().map(k::BrokerId).collect();
                p.removing_replicas = m.removing.iter().copied().map(k::BrokerId).collect();
                let mut all = m.target.clone();
                all.extend(m.replicas.iter().filter(|b| !m.target.contains(b)));
                p.replicas = all.into_iter().map(k::BrokerId).collect();
                place(&mut r.topics, &m.topic, p);
            }
        }
        Err(e) => {
            r.error_code = e.code();
            r.error_message = Some(StrBytes::from_string(e.to_string()));
        }
    }
    call.answer(&r)
}

async fn elect_leaders(call: Call, req: k::ElectLeadersRequest) -> Result<Option<BytesMut>, String> {
    let partitions: Option<Vec<(String, i32)>> = req.topic_partitions.as_ref().map(|ts| {
        ts.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), *p))).collect()
    });
    let mut r = k::ElectLeadersResponse::default();
    let asked = if call.version >= 1 { req.election_type } else { 0 };
    let outcomes = match ElectionType::from_code(asked) {
        Some(kind) => call.service.elect_leaders(&call.peer, kind, partitions).await,
        None => Err(BrokerError::InvalidRequest {
            reason: format!("election type {asked}: 0 (preferred) or 1 (unclean)"),
        }),
    };
    let outcomes = match outcomes {
        Ok(o) => o,
        Err(e) => {
            if call.version >= 1 {
                r.error_code = e.code();
            }
            return call.answer(&r);
        }
    };
    for (topic, partition, outcome) in outcomes {
        let mut p = k::elect_leaders_response::PartitionResult::default();
        p.partition_id = partition;
        p.error_code = code(&outcome);
        p.error_message = message(&outcome);
        place(&mut r.replica_election_results, &topic, p);
    }
    call.answer(&r)
}

/// A filter of DescribeAcls or DeleteAcls, from Kafka's codes (ANY is 1 for every enum;
/// pattern MATCH is 2). An unknown code is refused naming it.
fn acl_filter(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<acl::AclFilter, BrokerError> {
    fn any_or<T>(code: i8, what: &str, parse: fn(i8) -> Option<T>) -> Result<Option<T>, BrokerError> {
        match code {
            1 => Ok(None),
            c => parse(c)
                .map(Some)
                .ok_or_else(|| BrokerError::InvalidRequest { reason: format!("unknown {what} code {c}") }),
        }
    }
    let bad =
        |what: &str, code: i8| BrokerError::InvalidRequest { reason: format!("unknown {what} code {code}") };
    Ok(acl::AclFilter {
        resource_type: any_or(resource_type, "resource type", acl::ResourceType::from_code)?,
        name: name.map(|n| n.to_string()),
        pattern: acl::PatternFilter::from_code(pattern_type)
            .ok_or_else(|| bad("pattern type", pattern_type))?,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: any_or(operation, "operation", acl::Operation::from_code)?,
        permission: any_or(permission, "permission type", acl::Permission::from_code)?,
    })
}

fn acl_binding(c: &k::create_acls_request::AclCreation) -> Result<acl::AclBinding, BrokerError> {
    let bad = |what: &str, code: i8| BrokerError::InvalidRequest {
        reason: format!("{what} code {code} cannot be in an ACL (ANY, MATCH and UNKNOWN are for filters)"),
    };
    Ok(acl::AclBinding {
        pattern: acl::ResourcePattern {
            resource_type: acl::ResourceType::from_code(c.resource_type)
                .ok_or_else(|| bad("resource type", c.resource_type))?,
            name: c.resource_name.to_string(),
            pattern_type: acl::PatternType::from_code(c.resource_pattern_type)
                .ok_or_else(|| bad("pattern type", c.resource_pattern_type))?,
        },
        entry: acl::AccessEntry {
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: acl::Operation::from_code(c.operation).ok_or_else(|| bad("operation", c.operation))?,
            permission: acl::Permission::from_code(c.permission_type)
                .ok_or_else(|| bad("permission type", c.permission_type))?,
        },
    })
}

async fn describe_acls(call: Call, req: k::DescribeAclsRequest) -> Result<Option<BytesMut>, String> {
    let mut r = k::DescribeAclsResponse::default();
    let filter = acl_filter(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    );
    match filter.and_then(|f| call.service.describe_acls(&call.peer, &f)) {
        Err(e) => {
            r.error_code = e.code();
            r.error_message = Some(s(e.to_string()));
        }
        Ok(bindings) => {
            for b in bindings {
                let mut d = k::describe_acls_response::AclDescription::default();
                d.principal = s(b.entry.principal);
                d.host = s(b.entry.host);
                d.operation = b.entry.operation.code();
                d.permission_type = b.entry.permission.code();
                let p = &b.pattern;
                let same = |res: &k::describe_acls_response::DescribeAclsResource| {
                    res.resource_type == p.resource_type.code()
                        && *res.resource_name == *p.name
                        && res.pattern_type == p.pattern_type.code()
                };
                match r.resources.iter_mut().find(|res| same(res)) {
                    Some(res) => res.acls.push(d),
                    None => {
                        let mut res = k::describe_acls_response::DescribeAclsResource::default();
                        res.resource_type = p.resource_type.code();
                        res.resource_name = s(p.name.clone());
                        res.pattern_type = p.pattern_type.code();
                        res.acls.push(d);
                        r.resources.push(res);
                    }
                }
            }
        }
    }
    call.answer(&r)
}

async fn create_acls(call: Call, req: k::CreateAclsRequest) -> Result<Option<BytesMut>, String> {
    let mut r = k::CreateAclsResponse::default();
    let parsed: Vec<Result<acl::AclBinding, BrokerError>> = req.creations.iter().map(acl_binding).collect();
    let valid: Vec<acl::AclBinding> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut done = match call.service.create_acls(&call.peer, valid).await {
        Ok(results) => results.into_iter(),
        Err(e) => {
            for _ in &req.creations {
                let mut c = k::create_acls_response::AclCreationResult::default();
                c.error_code = e.code();
                c.error_message = Some(s(e.to_string()));
                r.results.push(c);
            }
            return call.answer(&r);
        }
    };
    for p in parsed {
        let outcome = match p {
            Err(e) => Err(e),
            Ok(_) => done.next().unwrap_or(Ok(())),
        };
        let mut c = k::create_acls_response::AclCreationResult::default();
        c.error_code = code(&outcome);
        c.error_message = message(&outcome);
        r.results.push(c);
    }
    call.answer(&r)
}

async fn delete_acls(call: Call, req: k::DeleteAclsRequest) -> Result<Option<BytesMut>, String> {
    let mut r = k::DeleteAclsResponse::default();
    let parsed: Vec<Result<acl::AclFilter, BrokerError>> = req
        .filters
        .iter()
        .map(|f| {
            acl_filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<acl::AclFilter> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let outcomes = call.service.delete_acls(&call.peer, valid).await;
    let mut done = match outcomes {
        Ok(list) => list.into_iter(),
        Err(e) => {
            for _ in &req.filters {
                let mut f = k::delete_acls_response::DeleteAclsFilterResult::default();
                f.error_code = e.code();
                f.error_message = Some(s(e.to_string()));
                r.filter_results.push(f);
            }
            return call.answer(&r);
        }
    };
    for p in parsed {
        let outcome = match p {
            Err(e) => Err(e),
            Ok(_) => done.next().unwrap_or(Ok(Vec::new())),
        };
        let mut f = k::delete_acls_response::DeleteAclsFilterResult::default();
        f.error_code = code(&outcome);
        f.error_message = message(&outcome);
        for b in outcome.unwrap_or_default() {
            let mut m = k::delete_acls_response::DeleteAclsMatchingAcl::default();
            m.resource_type = b.pattern.resource_type.code();
            m.resource_name = s(b.pattern.name);
            m.pattern_type = b.pattern.pattern_type.code();
            m.principal = s(b.entry.principal);
            m.host = s(b.entry.host);
            m.operation = b.entry.operation.code();
            m.permission_type = b.entry.permission.code();
            f.matching_acls.push(m);
        }
        r.filter_results.push(f);
    }
    call.answer(&r)
}

//! Kafka's znode layout (ZooKeeper mode) and the JSON each node holds, byte-compatible in
//! shape with what Kafka writes, so people who know Kafka find their way with
//! `sluice keeper-shell`.
//!
//! | path | holds |
//! |---|---|
//! | `/brokers/ids/<id>` (ephemeral) | `{"version":5,"host":..,"port":..,"endpoints":["quic://h:p","SSL://h:p2"],"listener_security_protocol_map":{"SSL":"SSL"},"rack":..,"timestamp":".."}` |
//! | `/brokers/topics/<t>` | `{"version":2,"partitions":{"0":[1,2]},"adding_replicas":{},"removing_replicas":{}}` |
//! | `/brokers/topics/<t>/partitions/<p>/state` | `{"controller_epoch":1,"leader":1,"version":1,"leader_epoch":0,"isr":[1,2]}` |
//! | `/controller` (ephemeral) | `{"version":1,"brokerid":1,"timestamp":".."}` |
//! | `/controller_epoch` | the epoch as decimal text |
//! | `/config/topics/<t>` | `{"version":1,"config":{"retention.ms":"1000"}}` |
//! | `/config/brokers/<default>` | `{"version":1,"config":{...}}`: the cluster-wide dynamic defaults (broker keys) |
//! | `/config/changes/config_change_<seq>` | `{"version":2,"entity_path":"topics/<t>"}`: topic `<t>`'s config or partitions changed; `brokers/<default>`: the defaults changed |
//! | `/admin/delete_topics/<t>` | empty: the topic is to be deleted |
//! | `/cluster/id` | `{"version":"1","id":".."}` |
//! | `/latest_producer_id_block` | `{"version":1,"broker":1,"block_start":"0","block_end":"999"}`: the last block of producer ids claimed |
//! | `/isr_change_notification/isr_change_<seq>` | `{"version":1,"partitions":[{"topic":"t","partition":0}]}`: a leader changed these ISRs |

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::metadata::{BrokerEndpoint, ListenerEndpoint, PartitionState};

/// Live brokers' registrations.
pub const BROKER_IDS: &str = "/brokers/ids";
/// Topics' replica assignments.
pub const BROKER_TOPICS: &str = "/brokers/topics";
/// The active controller (ephemeral).
pub const CONTROLLER: &str = "/controller";
/// The controller epoch.
pub const CONTROLLER_EPOCH: &str = "/controller_epoch";
/// Topics marked for deletion.
pub const DELETE_TOPICS: &str = "/admin/delete_topics";
/// Per-topic config overrides.
pub const CONFIG_TOPICS: &str = "/config/topics";
/// The cluster id.
pub const CLUSTER_ID: &str = "/cluster/id";
/// The last block of producer ids handed to a broker.
pub const PRODUCER_ID_BLOCK: &str = "/latest_producer_id_block";
/// Producer ids a broker claims at once (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Leaders' ISR changes, for the controller to re-read (sequential children).
pub const ISR_CHANGE_NOTIFICATION: &str = "/isr_change_notification";
/// The prefix of an ISR change notification (the keeper appends the sequence number).
pub const ISR_CHANGE_PREFIX: &str = "/isr_change_notification/isr_change_";
/// Brokers' log directory failures, for the controller to act on (sequential children).
pub const LOG_DIR_EVENT_NOTIFICATION: &str = "/log_dir_event_notification";
/// The prefix of a log directory event (the keeper appends the sequence number).
pub const LOG_DIR_EVENT_PREFIX: &str = "/log_dir_event_notification/log_dir_event_";

/// Where changes to a topic are announced (Kafka's config change notifications): the
/// controller reads each, re-reads the topic it names, and deletes it.
pub const CONFIG_CHANGES: &str = "/config/changes";
/// The prefix of a change notification (the keeper appends the sequence number).
pub const CONFIG_CHANGE_PREFIX: &str = "/config/changes/config_change_";

/// `/admin`: its children are requests to the controller (deletions, reassignments).
pub const ADMIN: &str = "/admin";
/// `/admin/reassign_partitions`: the partitions whose replicas are moving, and where to.
pub const REASSIGN_PARTITIONS: &str = "/admin/reassign_partitions";

/// Persistent nodes every cluster has; created (if missing) by each broker at start.
pub const PERSISTENT_PATHS: &[&str] = &[
    "/brokers",
    BROKER_IDS,
    BROKER_TOPICS,
    ADMIN,
    DELETE_TOPICS,
    "/config",
    CONFIG_TOPICS,
    CONFIG_BROKERS,
    CONFIG_CHANGES,
    "/cluster",
    ISR_CHANGE_NOTIFICATION,
    LOG_DIR_EVENT_NOTIFICATION,
];

/// `/brokers/ids/<id>`.
pub fn broker_path(id: i32) -> String {
    format!("{BROKER_IDS}/{id}")
}

/// `/brokers/topics/<t>`.
pub fn topic_path(topic: &str) -> String {
    format!("{BROKER_TOPICS}/{topic}")
}

/// `/brokers/topics/<t>/partitions`.
pub fn partitions_path(topic: &str) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions")
}

/// `/brokers/topics/<t>/partitions/<p>`.
pub fn partition_path(topic: &str, partition: i32) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions/{partition}")
}

/// `/brokers/topics/<t>/partitions/<p>/state`.
pub fn state_path(topic: &str, partition: i32) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions/{partition}/state")
}

/// `/config/topics/<t>`.
pub fn config_path(topic: &str) -> String {
    format!("{CONFIG_TOPICS}/{topic}")
}

/// `/admin/delete_topics/<t>`.
pub fn delete_path(topic: &str) -> String {
    format!("{DELETE_TOPICS}/{topic}")
}

/// A znode whose content is not what Kafka's layout says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} does not hold a valid {what}: {reason}")]
pub struct ZnodeError {
    /// The node.
    pub path: String,
    /// What it should hold.
    pub what: &'static str,
    /// The parser's reason.
    pub reason: String,
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(
    path: &str,
    what: &'static str,
    data: &[u8],
) -> Result<T, ZnodeError> {
    serde_json::from_slice(data).map_err(|e| ZnodeError {
        path: path.to_string(),
        what,
        reason: e.to_string(),
    })
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs and maps with string keys cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[derive(Serialize, Deserialize)]
struct BrokerJson {
    version: u32,
    host: String,
    port: u16,
    endpoints: Vec<String>,
    #[serde(default)]
    listener_security_protocol_map: BTreeMap<String, String>,
    rack: Option<String>,
    timestamp: String,
    /// Sluice's addition: this broker's replicas on failed log directories (Kafka's
    /// controller asks the broker instead). Kafka's tools ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    offline_replicas: Vec<IsrChangePartition>,
}

/// The registration a broker writes at `/brokers/ids/<id>`: as Kafka writes it, every
/// listener in `endpoints` (`quic://` first, then the Kafka listeners such as `SSL://h:p`)
/// with `listener_security_protocol_map`; `host` and `port` are the QUIC listener's.
/// `offline` lists its replicas on failed log directories.
pub fn encode_broker(broker: &BrokerEndpoint, now_ms: i64, offline: &BTreeSet<(String, i32)>) -> Vec<u8> {
    let mut endpoints = vec![format!("quic://{}", broker.addr())];
    let mut map = BTreeMap::new();
    for l in &broker.listeners {
        endpoints.push(format!("{}://{}", l.name, l.addr()));
        map.insert(l.name.clone(), l.name.clone());
    }
    json(&BrokerJson {
        version: 5,
        host: broker.host.clone(),
        port: broker.port,
        endpoints,
        listener_security_protocol_map: map,
        rack: broker.rack.clone(),
        timestamp: now_ms.to_string(),
        offline_replicas: offline
            .iter()
            .map(|(topic, partition)| IsrChangePartition { topic: topic.clone(), partition: *partition })
            .collect(),
    })
}

/// The replicas a broker's registration lists as offline (on failed log directories).
pub fn decode_offline_replicas(id: i32, data: &[u8]) -> Result<BTreeSet<(String, i32)>, ZnodeError> {
    let j: BrokerJson = parse(&broker_path(id), "broker registration", data)?;
    Ok(j.offline_replicas.into_iter().map(|p| (p.topic, p.partition)).collect())
}

#[derive(Serialize, Deserialize)]
struct LogDirEventJson {
    version: u32,
    broker: i32,
    event: i32,
}

/// A log directory event (Kafka's: event 1 is a failure) from `broker`.
pub fn encode_log_dir_event(broker: i32) -> Vec<u8> {
    json(&LogDirEventJson { version: 1, broker, event: 1 })
}

/// Reads a broker registration (endpoints that are not `NAME://HOST:PORT` are skipped).
pub fn decode_broker(id: i32, data: &[u8]) -> Result<BrokerEndpoint, ZnodeError> {
    let j: BrokerJson = parse(&broker_path(id), "broker registration", data)?;
    let listeners = j
        .endpoints
        .iter()
        .filter_map(|e| {
            let (name, rest) = e.split_once("://")?;
            if name.eq_ignore_ascii_case("quic") {
                return None;
            }
            let (host, port) = rest.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
            Some(ListenerEndpoint { name: name.to_string(), host, port: port.parse().ok()? })
        })
        .collect();
    Ok(BrokerEndpoint { id, host: j.host, port: j.port, rack: j.rack, listeners })
}

#[derive(Serialize, Deserialize)]
struct TopicJson {
    version: u32,
    partitions: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    adding_replicas: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    removing_replicas: BTreeMap<String, Vec<i32>>,
}

/// A topic's replica assignment, as `/brokers/topics/<t>` holds it.
pub fn encode_assignment(assignment: &BTreeMap<i32, Vec<i32>>) -> Vec<u8> {
    json(&TopicJson {
        version: 2,
        partitions: assignment.iter().map(|(p, r)| (p.to_string(), r.clone())).collect(),
        adding_replicas: BTreeMap::new(),
        removing_replicas: BTreeMap::new(),
    })
}

/// Reads a topic's replica assignment.
pub fn decode_assignment(topic: &str, data: &[u8]) -> Result<BTreeMap<i32, Vec<i32>>, ZnodeError> {
    let path = topic_path(topic);
    let j: TopicJson = parse(&path, "replica assignment", data)?;
    let mut out = BTreeMap::new();
    for (p, replicas) in j.partitions {
        let n = p.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| ZnodeError {
            path: path.clone(),
            what: "replica assignment",
            reason: format!("partition {p:?} is not a number"),
        })?;
        if replicas.is_empty() {
            return Err(ZnodeError {
                path: path.clone(),
                what: "replica assignment",
                reason: format!("partition {n} has no replicas"),
            });
        }
        out.insert(n, replicas);
    }
    Ok(out)
}

/// One partition's move, as Kafka's `/admin/reassign_partitions` and
/// `kafka-reassign-partitions.sh`'s JSON files hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMove {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The target replicas, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The tool's log directories (`"any"`); read and written for Kafka's files, unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_dirs: Vec<String>,
}

/// A list of partition moves (Kafka's reassignment JSON, version 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    /// Always 1.
    pub version: u32,
    /// The moves.
    pub partitions: Vec<PartitionMove>,
}

impl Reassignment {
    /// Moves as a map from partition to target replicas (a later entry for the same
    /// partition wins).
    pub fn targets(&self) -> BTreeMap<(String, i32), Vec<i32>> {
        self.partitions.iter().map(|m| ((m.topic.clone(), m.partition), m.replicas.clone())).collect()
    }

    /// The moves of `targets`, in partition order.
    pub fn from_targets(targets: &BTreeMap<(String, i32), Vec<i32>>) -> Reassignment {
        let partitions = targets
            .iter()
            .map(|((topic, partition), replicas)| PartitionMove {
                topic: topic.clone(),
                partition: *partition,
                replicas: replicas.clone(),
                log_dirs: Vec::new(),
            })
            .collect();
        Reassignment { version: 1, partitions }
    }
}

/// `/admin/reassign_partitions`'s data.
pub fn encode_reassignment(r: &Reassignment) -> Vec<u8> {
    json(r)
}

/// Reads `/admin/reassign_partitions` (or a reassignment JSON file, named by `path`).
pub fn decode_reassignment(path: &str, data: &[u8]) -> Result<Reassignment, ZnodeError> {
    parse(path, "partition reassignment", data)
}

#[derive(Serialize, Deserialize)]
struct StateJson {
    controller_epoch: i32,
    leader: i32,
    version: u32,
    leader_epoch: i32,
    isr: Vec<i32>,
}

/// A partition state as its znode holds it (`zk_version` is the znode's, not stored).
pub fn encode_state(state: &PartitionState) -> Vec<u8> {
    json(&StateJson {
        controller_epoch: state.controller_epoch,
        leader: state.leader,
        version: 1,
        leader_epoch: state.leader_epoch,
        isr: state.isr.clone(),
    })
}

/// Reads a partition state; `zk_version` is the znode's version.
pub fn decode_state(
    topic: &str,
    partition: i32,
    data: &[u8],
    zk_version: i32,
) -> Result<PartitionState, ZnodeError> {
    let j: StateJson = parse(&state_path(topic, partition), "partition state", data)?;
    Ok(PartitionState {
        leader: j.leader,
        leader_epoch: j.leader_epoch,
        isr: j.isr,
        controller_epoch: j.controller_epoch,
        zk_version,
    })
}

#[derive(Serialize, Deserialize)]
struct ProducerIdBlockJson {
    version: u32,
    broker: i32,
    block_start: String,
    block_end: String,
}

/// A claimed block of producer ids, `start..=end`, as Kafka writes it.
pub fn encode_producer_id_block(broker: i32, start: i64, end: i64) -> Vec<u8> {
    json(&ProducerIdBlockJson {
        version: 1,
        broker,
        block_start: start.to_string(),
        block_end: end.to_string(),
    })
}

/// The last claimed block's `(start, end)`.
pub fn decode_producer_id_block(data: &[u8]) -> Result<(i64, i64), ZnodeError> {
    let j: ProducerIdBlockJson = parse(PRODUCER_ID_BLOCK, "producer id block", data)?;
    let num = |v: &str| {
        v.parse::<i64>().map_err(|e| ZnodeError {
            path: PRODUCER_ID_BLOCK.into(),
            what: "producer id block",
            reason: format!("{v:?}: {e}"),
        })
    };
    Ok((num(&j.block_start)?, num(&j.block_end)?))
}

#[derive(Serialize, Deserialize)]
struct IsrChangeJson {
    version: u32,
    partitions: Vec<IsrChangePartition>,
}

#[derive(Serialize, Deserialize)]
struct IsrChangePartition {
    topic: String,
    partition: i32,
}

/// An ISR change notification naming `partitions` (topic, partition).
pub fn encode_isr_change(partitions: &[(String, i32)]) -> Vec<u8> {
    json(&IsrChangeJson {
        version: 1,
        partitions: partitions
            .iter()
            .map(|(topic, partition)| IsrChangePartition { topic: topic.clone(), partition: *partition })
            .collect(),
    })
}

/// The partitions an ISR change notification at `path` names.
pub fn decode_isr_change(path: &str, data: &[u8]) -> Result<Vec<(String, i32)>, ZnodeError> {
    let j: IsrChangeJson = parse(path, "ISR change notification", data)?;
    Ok(j.partitions.into_iter().map(|p| (p.topic, p.partition)).collect())
}

#[derive(Serialize, Deserialize)]
struct ControllerJson {
    version: u32,
    brokerid: i32,
    timestamp: String,
}

/// What the controller writes at `/controller`.
pub fn encode_controller(broker: i32, now_ms: i64) -> Vec<u8> {
    json(&ControllerJson { version: 1, brokerid: broker, timestamp: now_ms.to_string() })
}

/// The controller's broker id.
pub fn decode_controller(data: &[u8]) -> Result<i32, ZnodeError> {
    parse::<ControllerJson>(CONTROLLER, "controller registration", data).map(|j| j.brokerid)
}

/// Reads `/controller_epoch`.
pub fn decode_epoch(data: &[u8]) -> Result<i32, ZnodeError> {
    std::str::from_utf8(data).ok().and_then(|s| s.trim().parse::<i32>().ok()).ok_or_else(|| ZnodeError {
        path: CONTROLLER_EPOCH.into(),
        what: "controller epoch",
        reason: format!("{:?} is not a number", String::from_utf8_lossy(data)),
    })
}

#[derive(Serialize, Deserialize)]
struct ConfigJson {
    version: u32,
    config: BTreeMap<String, String>,
}

/// A topic's config overrides, as `/config/topics/<t>` holds them.
pub fn encode_topic_config(configs: &BTreeMap<String, String>) -> Vec<u8> {
    json(&ConfigJson { version: 1, config: configs.clone() })
}

/// Reads a topic's config overrides.
pub fn decode_topic_config(topic: &str, data: &[u8]) -> Result<BTreeMap<String, String>, ZnodeError> {
    parse::<ConfigJson>(&config_path(topic), "topic config", data).map(|j| j.config)
}

#[derive(Serialize, Deserialize)]
struct ConfigChangeJson {
    version: u32,
    entity_path: String,
}

/// A change notification for `topic` (Kafka's version 2 format): its config
/// (AlterConfigs) or its partitions (CreatePartitions) changed.
pub fn encode_topic_change(topic: &str) -> Vec<u8> {
    json(&ConfigChangeJson { version: 2, entity_path: format!("topics/{topic}") })
}

/// The topic a change notification at `path` names; `None` for another entity (a client
/// or broker config, which Sluice does not have).
pub fn decode_topic_change(path: &str, data: &[u8]) -> Result<Option<String>, ZnodeError> {
    let j: ConfigChangeJson = parse(path, "config change notification", data)?;
    Ok(j.entity_path.strip_prefix("topics/").map(str::to_string))
}

/// `/config/brokers`: dynamic broker configs.
pub const CONFIG_BROKERS: &str = "/config/brokers";
/// `/config/brokers/<default>`: the cluster-wide dynamic defaults, Kafka's config JSON.
pub const BROKER_DEFAULT_CONFIG: &str = "/config/brokers/<default>";

/// The notification that the cluster-wide defaults changed
/// (`{"version":2,"entity_path":"brokers/<default>"}`).
pub fn encode_broker_default_change() -> Vec<u8> {
    json(&ConfigChangeJson { version: 2, entity_path: "brokers/<default>".into() })
}

/// Whether a notification says the cluster-wide defaults changed.
pub fn is_broker_default_change(path: &str, data: &[u8]) -> Result<bool, ZnodeError> {
    let j: ConfigChangeJson = parse(path, "config change notification", data)?;
    Ok(j.entity_path == "brokers/<default>")
}

/// `/config/brokers/<id>`: one broker's own dynamic configs, Kafka's config JSON.
pub fn broker_config_path(id: i32) -> String {
    format!("{CONFIG_BROKERS}/{id}")
}

/// The notification that broker `id`'s own configs changed
/// (`{"version":2,"entity_path":"brokers/<id>"}`).
pub fn encode_broker_change(id: i32) -> Vec<u8> {
    json(&ConfigChangeJson { version: 2, entity_path: format!("brokers/{id}") })
}

/// Reads `/config/brokers/<id>` or `/config/brokers/<default>` (named by `path`).
pub fn decode_broker_config(path: &str, data: &[u8]) -> Result<BTreeMap<String, String>, ZnodeError> {
    parse::<ConfigJson>(path, "broker config", data).map(|j| j.config)
}

#[derive(Serialize, Deserialize)]
struct ClusterIdJson {
    version: String,
    id: String,
}

/// `/cluster/id`'s content.
pub fn encode_cluster_id(id: &str) -> Vec<u8> {
    json(&ClusterIdJson { version: "1".into(), id: id.into() })
}

/// Reads `/cluster/id`.
pub fn decode_cluster_id(data: &[u8]) -> Result<String, ZnodeError> {
    parse::<ClusterIdJson>(CLUSTER_ID, "cluster id", data).map(|j| j.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_id_blocks_read_kafkas_json() {
        let kafka = br#"{"version":1,"broker":2,"block_start":"1000","block_end":"1999"}"#;
        assert_eq!(decode_producer_id_block(kafka).expect("valid"), (1000, 1999));
        assert_eq!(
            decode_producer_id_block(&encode_producer_id_block(1, 0, 999)).expect("round trip"),
            (0, 999)
        );
        let bad = br#"{"version":1,"broker":2,"block_start":"x","block_end":"1"}"#;
        assert!(decode_producer_id_block(bad).expect_err("not a number").to_string().contains("\"x\""));
    }

    #[test]
    fn isr_change_notifications_read_kafkas_json() {
        let kafka =
            br#"{"version":1,"partitions":[{"topic":"t","partition":0},{"topic":"u","partition":3}]}"#;
        let parts =
            decode_isr_change("/isr_change_notification/isr_change_0000000001", kafka).expect("valid");
        assert_eq!(parts, vec![("t".to_string(), 0), ("u".to_string(), 3)]);
        assert_eq!(decode_isr_change("x", &encode_isr_change(&parts)).expect("round trip"), parts);
        let bad = decode_isr_change("/isr_change_notification/isr_change_7", b"{").expect_err("truncated");
        assert!(bad.to_string().contains("isr_change_7"), "{bad}");
    }

    #[test]
    fn partition_state_reads_kafkas_json() {
        let kafka = br#"{"controller_epoch":3,"leader":2,"version":1,"leader_epoch":7,"isr":[2,1]}"#;
        let s = decode_state("t", 0, kafka, 4).expect("valid");
        assert_eq!(
            s,
            PartitionState {
                leader: 2,
                leader_epoch: 7,
                isr: vec![2, 1],
                controller_epoch: 3,
                zk_version: 4
            }
        );
        assert_eq!(decode_state("t", 0, &encode_state(&s), 4).expect("round trip"), s);
    }

    #[test]
    fn assignment_round_trips_and_reads_kafkas_json() {
        let kafka = br#"{"version":2,"partitions":{"1":[2,3],"0":[1,2]},"adding_replicas":{},"removing_replicas":{}}"#;
        let a = decode_assignment("t", kafka).expect("valid");
        assert_eq!(a.get(&0), Some(&vec![1, 2]));
        assert_eq!(decode_assignment("t", &encode_assignment(&a)).expect("round trip"), a);
    }

    #[test]
    fn reassignments_read_kafkas_json() {
        let kafka = br#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3,4],"log_dirs":["any","any","any"]},{"topic":"t","partition":1,"replicas":[4]}]}"#;
        let r = decode_reassignment(REASSIGN_PARTITIONS, kafka).expect("kafka's json");
        let targets = r.targets();
        assert_eq!(targets[&("t".to_string(), 0)], vec![2, 3, 4]);
        assert_eq!(targets[&("t".to_string(), 1)], vec![4]);
        let again = Reassignment::from_targets(&targets);
        let back = decode_reassignment(REASSIGN_PARTITIONS, &encode_reassignment(&again)).expect("ours");
        assert_eq!(back.targets(), targets);
        let e = decode_reassignment("f.json", br#"{"version":1,"partitions":[{"topic":"t"}]}"#)
            .expect_err("a move without replicas");
        assert!(e.to_string().contains("f.json"), "{e}");
    }

    #[test]
    fn bad_json_names_the_node() {
        let e = decode_assignment("orders", b"{").expect_err("invalid");
        assert_eq!(e.path, "/brokers/topics/orders");
        let e = decode_assignment("orders", br#"{"version":2,"partitions":{"x":[1]}}"#)
            .expect_err("bad partition");
        assert!(e.reason.contains("\"x\""), "{e}");
        assert!(decode_epoch(b"seven").is_err());
        assert_eq!(decode_epoch(b"7"), Ok(7));
    }

    #[test]
    fn topic_change_notifications_read_kafkas_json() {
        let bytes = encode_topic_change("orders");
        assert_eq!(String::from_utf8_lossy(&bytes), r#"{"version":2,"entity_path":"topics/orders"}"#);
        assert_eq!(decode_topic_change("/p", &bytes), Ok(Some("orders".to_string())));
        assert_eq!(decode_topic_change("/p", br#"{"version":2,"entity_path":"clients/a"}"#), Ok(None));
        assert!(decode_topic_change("/p", b"{}").is_err());
    }

    #[test]
    fn broker_registration_round_trips() {
        let b = BrokerEndpoint {
            id: 3,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: Some("r1".into()),
            listeners: Vec::new(),
        };
        let bytes = encode_broker(&b, 5, &BTreeSet::new());
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(text.contains(r#""endpoints":["quic://127.0.0.1:9092"]"#), "{text}");
        assert!(!text.contains("offline"), "nothing offline, nothing written: {text}");
        assert_eq!(decode_broker(3, &bytes), Ok(b.clone()));
        assert_eq!(decode_offline_replicas(3, &bytes), Ok(BTreeSet::new()));
        let offline: BTreeSet<(String, i32)> = [("a".to_string(), 0), ("b".to_string(), 2)].into();
        let bytes = encode_broker(&b, 5, &offline);
        assert_eq!(decode_broker(3, &bytes), Ok(b), "the endpoints read as before");
        assert_eq!(decode_offline_replicas(3, &bytes), Ok(offline));

        let ssl = |host: &str, port| ListenerEndpoint { name: "SSL".into(), host: host.into(), port };
        let b = BrokerEndpoint {
            id: 4,
            host: "::1".into(),
            port: 9092,
            rack: None,
            listeners: vec![
                ssl("::1", 9093),
                ListenerEndpoint { name: "PLAINTEXT".into(), host: "b4.example.com".into(), port: 9094 },
            ],
        };
        let bytes = encode_broker(&b, 5, &BTreeSet::new());
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(
            text.contains(
                r#""endpoints":["quic://[::1]:9092","SSL://[::1]:9093","PLAINTEXT://b4.example.com:9094"]"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT","SSL":"SSL"}"#),
            "{text}"
        );
        assert_eq!(decode_broker(4, &bytes), Ok(b));
        // Kafka's own registration (no map written by older versions) reads too.
        let kafka = br#"{"endpoints":["SSL://k1:9093"],"host":null,"port":-1,"version":4,"rack":null,"timestamp":"1"}"#;
        assert!(
            decode_broker(1, kafka).is_err(),
            "a registration without a QUIC listener is not a Sluice broker's"
        );
    }
}

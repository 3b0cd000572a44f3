//! Topics: [`TopicPartition`], names and per-topic config keys, with Kafka's rules.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::BrokerError;

/// Longest topic name (Kafka's 249: a partition directory `<topic>-<partition>` must fit a
/// 255-byte file name).
pub const MAX_NAME_LEN: usize = 249;

/// Topics the cluster uses itself; clients may read but not create or delete them.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets"];

/// Per-topic config keys (`/config/topics/<t>`, `--config K=V`), Kafka's names.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "max.message.bytes",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// The broker keys that may change for the whole cluster while it runs
/// (`/config/brokers/<default>`, `kafka-configs.sh --entity-type brokers --entity-default`),
/// each with the per-topic key it is the default of: a topic's own override wins.
pub const DYNAMIC_BROKER_KEYS: &[(&str, &str)] = &[
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    ("log.cleaner.min.cleanable.ratio", "min.cleanable.dirty.ratio"),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("min.insync.replicas", "min.insync.replicas"),
    ("compression.type", "compression.type"),
    ("message.max.bytes", "max.message.bytes"),
    ("unclean.leader.election.enable", "unclean.leader.election.enable"),
];

/// Checks that every key of a cluster-wide default is one of [`DYNAMIC_BROKER_KEYS`] or a
/// replication throttle's rate ([`crate::throttle::RATE_KEYS`], whose values are checked here).
pub fn validate_broker_default_keys(configs: &BTreeMap<String, String>) -> Result<(), BrokerError> {
    for key in crate::throttle::RATE_KEYS {
        if let Some(v) = configs.get(key) {
            crate::throttle::parse_rate(key, v)?;
        }
    }
    let known = |k: &String| {
        DYNAMIC_BROKER_KEYS.iter().any(|(b, _)| b == k) || crate::throttle::RATE_KEYS.contains(&k.as_str())
    };
    match configs.keys().find(|k| !known(k)) {
        Some(k) => Err(BrokerError::InvalidConfig {
            key: k.clone(),
            value: configs.get(k).cloned().unwrap_or_default(),
            reason: format!(
                "not a broker config that changes while the cluster runs; those are: {} (change the others in \
                 server.properties and restart)",
                DYNAMIC_BROKER_KEYS
                    .iter()
                    .map(|(b, _)| *b)
                    .chain(crate::throttle::RATE_KEYS)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        None => Ok(()),
    }
}

/// The configs a topic runs with: the cluster-wide defaults (broker keys, turned into the
/// topic keys they are defaults of) under the topic's own overrides. Borrowed when there
/// are no defaults (the common case: nothing is copied).
pub fn effective_configs<'a>(
    defaults: &BTreeMap<String, String>,
    overrides: &'a BTreeMap<String, String>,
) -> std::borrow::Cow<'a, BTreeMap<String, String>> {
    if defaults.is_empty() {
        return std::borrow::Cow::Borrowed(overrides);
    }
    let mut out: BTreeMap<String, String> = defaults
        .iter()
        .filter_map(|(k, v)| {
            DYNAMIC_BROKER_KEYS.iter().find(|(b, _)| b == k).map(|(_, t)| (t.to_string(), v.clone()))
        })
        .collect();
    out.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    std::borrow::Cow::Owned(out)
}

/// One config a topic runs with (`topic_key`, the per-topic name): its own override, else
/// the cluster-wide default behind that key. Nothing is copied: the produce path asks this
/// for `min.insync.replicas` on every `acks=all` request.
pub fn effective_value<'a>(
    defaults: &'a BTreeMap<String, String>,
    overrides: &'a BTreeMap<String, String>,
    topic_key: &str,
) -> Option<&'a str> {
    overrides
        .get(topic_key)
        .or_else(|| {
            DYNAMIC_BROKER_KEYS.iter().find(|(_, t)| *t == topic_key).and_then(|(b, _)| defaults.get(*b))
        })
        .map(String::as_str)
}

/// Checks a topic name by Kafka's rules: 1 to 249 characters from `[a-zA-Z0-9._-]`, not
/// `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), BrokerError> {
    let bad =
        |reason: &str| Err(BrokerError::InvalidTopic { topic: name.to_string(), reason: reason.to_string() });
    if name.is_empty() {
        return bad("a topic name may not be empty");
    }
    if name == "." || name == ".." {
        return bad("a topic name may not be \".\" or \"..\"");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("a topic name may have at most 249 characters");
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return bad(&format!("{c:?} is not allowed; use ASCII letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

/// Whether the topic is one of the cluster's own.
pub fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// Checks that every key is a per-topic config key (values are checked by the broker,
/// which knows what they mean).
pub fn validate_config_keys(configs: &BTreeMap<String, String>) -> Result<(), BrokerError> {
    match configs.keys().find(|k| !TOPIC_CONFIG_KEYS.contains(&k.as_str())) {
        Some(k) => Err(BrokerError::InvalidConfig {
            key: k.clone(),
            value: configs.get(k).cloned().unwrap_or_default(),
            reason: format!("not a topic config; known: {}", TOPIC_CONFIG_KEYS.join(", ")),
        }),
        None => Ok(()),
    }
}

/// One change of an IncrementalAlterConfigs (Kafka's `AlterConfigOp`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConfigOp {
    /// SET (0): the key takes the value.
    Set(String, String),
    /// DELETE (1): the override goes; the broker's default applies.
    Delete(String),
    /// APPEND (2): add values to a list key (`cleanup.policy`).
    Append(String, String),
    /// SUBTRACT (3): remove values from a list key.
    Subtract(String, String),
}

impl ConfigOp {
    /// Kafka's operation code with its key and value.
    pub fn from_kafka(op: i8, key: String, value: Option<String>) -> Result<ConfigOp, BrokerError> {
        let value = || value.clone().unwrap_or_default();
        match op {
            0 => Ok(ConfigOp::Set(key, value())),
            1 => Ok(ConfigOp::Delete(key)),
            2 => Ok(ConfigOp::Append(key, value())),
            3 => Ok(ConfigOp::Subtract(key, value())),
            other => Err(BrokerError::InvalidRequest {
                reason: format!("config operation {other} is not one of 0..=3"),
            }),
        }
    }
}

/// The keys whose values are lists (comma-separated).
const LIST_KEYS: &[&str] = &["cleanup.policy", "log.cleanup.policy"];

/// A topic's overrides after `ops`, in order. APPEND and SUBTRACT apply only to list keys.
pub fn apply_config_ops(
    current: &BTreeMap<String, String>,
    ops: &[ConfigOp],
) -> Result<BTreeMap<String, String>, BrokerError> {
    let out = apply_ops(current, ops)?;
    validate_config_keys(&out)?;
    Ok(out)
}

/// The cluster-wide broker defaults after `ops`, in order (keys: [`DYNAMIC_BROKER_KEYS`]).
pub fn apply_broker_default_ops(
    current: &BTreeMap<String, String>,
    ops: &[ConfigOp],
) -> Result<BTreeMap<String, String>, BrokerError> {
    let out = apply_ops(current, ops)?;
    validate_broker_default_keys(&out)?;
    Ok(out)
}

fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[ConfigOp],
) -> Result<BTreeMap<String, String>, BrokerError> {
    let mut out = current.clone();
    let list = |key: &str, value: &str| -> Result<(), BrokerError> {
        if LIST_KEYS.contains(&key) {
            Ok(())
        } else {
            Err(BrokerError::InvalidConfig {
                key: key.to_string(),
                value: value.to_string(),
                reason: "APPEND and SUBTRACT apply only to list configs (cleanup.policy)".into(),
            })
        }
    };
    for op in ops {
        match op {
            ConfigOp::Set(k, v) => {
                out.insert(k.clone(), v.clone());
            }
            ConfigOp::Delete(k) => {
                out.remove(k);
            }
            ConfigOp::Append(k, v) => {
                list(k, v)?;
                let mut items: Vec<String> = out
                    .get(k)
                    .map(|c| c.split(',').map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).collect())
                    .unwrap_or_default();
                for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_string());
                    }
                }
                out.insert(k.clone(), items.join(","));
            }
            ConfigOp::Subtract(k, v) => {
                list(k, v)?;
                let remove: Vec<&str> = v.split(',').map(str::trim).collect();
                let items: Vec<String> = out
                    .get(k)
                    .map(|c| {
                        c.split(',')
                            .map(|i| i.trim().to_string())
                            .filter(|i| !remove.contains(&i.as_str()))
                            .collect()
                    })
                    .unwrap_or_default();
                if items.is_empty() {
                    out.remove(k);
                } else {
                    out.insert(k.clone(), items.join(","));
                }
            }
        }
    }
    Ok(out)
}

/// Checks growing a topic from `current` partitions to `count` (Kafka's CreatePartitions:
/// partitions are only ever added).
pub fn check_partition_growth(topic: &str, current: i32, count: i32) -> Result<(), BrokerError> {
    if count <= current {
        return Err(BrokerError::InvalidPartitions {
            reason: format!(
                "topic {topic} has {current} partitions; ask for more than that (partitions can only be added)"
            ),
        });
    }
    Ok(())
}

/// A topic and partition. Its `Display` is Kafka's `<topic>-<partition>`, which is also the
/// name of a partition's log directory and the key of the log engine's checkpoint files.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic and partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }

    /// Parses a partition directory name, `<topic>-<partition>`. Topic names may hold
    /// dashes, so the partition follows the last one.
    pub fn from_dir_name(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(TopicPartition { topic: topic.to_string(), partition: partition.parse().ok()? })
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl From<(String, i32)> for TopicPartition {
    fn from((topic, partition): (String, i32)) -> Self {
        TopicPartition { topic, partition }
    }
}

impl From<(&str, i32)> for TopicPartition {
    fn from((topic, partition): (&str, i32)) -> Self {
        TopicPartition { topic: topic.to_string(), partition }
    }
}

impl From<&TopicPartition> for TopicPartition {
    fn from(tp: &TopicPartition) -> Self {
        tp.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn incremental_config_ops_set_delete_append_and_subtract() {
        let current = map(&[("retention.ms", "1000"), ("cleanup.policy", "delete")]);
        let ops = [
            ConfigOp::Set("segment.bytes".into(), "1048576".into()),
            ConfigOp::Delete("retention.ms".into()),
            ConfigOp::Append("cleanup.policy".into(), "compact,delete".into()),
        ];
        assert_eq!(
            apply_config_ops(&current, &ops),
            Ok(map(&[("cleanup.policy", "delete,compact"), ("segment.bytes", "1048576")]))
        );
        let ops = [ConfigOp::Subtract("cleanup.policy".into(), "delete".into())];
        assert_eq!(
            apply_config_ops(&current, &ops),
            Ok(map(&[("retention.ms", "1000")])),
            "the last value gone: the override goes"
        );
        assert!(matches!(
            apply_config_ops(&current, &[ConfigOp::Append("retention.ms".into(), "5".into())]),
            Err(BrokerError::InvalidConfig { .. })
        ));
        assert!(matches!(
            apply_config_ops(&current, &[ConfigOp::Set("no.such.key".into(), "1".into())]),
            Err(BrokerError::InvalidConfig { .. })
        ));
        assert!(ConfigOp::from_kafka(4, "k".into(), None).is_err());
        assert_eq!(ConfigOp::from_kafka(1, "k".into(), None), Ok(ConfigOp::Delete("k".into())));
    }

    #[test]
    fn partitions_only_grow() {
        assert!(check_partition_growth("t", 2, 4).is_ok());
        assert!(matches!(check_partition_growth("t", 4, 4), Err(BrokerError::InvalidPartitions { .. })));
        assert!(check_partition_growth("t", 4, 2).is_err());
    }

    #[test]
    fn names_follow_kafkas_rules() {
        assert!(validate_name("orders.v1_x-2").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("..").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"x".repeat(250)).is_err());
        assert!(validate_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn unknown_config_keys_are_named() {
        let mut c = BTreeMap::new();
        c.insert("retention.ms".to_string(), "5".to_string());
        assert!(validate_config_keys(&c).is_ok());
        c.insert("retention.msec".to_string(), "5".to_string());
        let e = validate_config_keys(&c).expect_err("unknown key");
        assert!(e.to_string().contains("retention.msec"), "{e}");
    }

    #[test]
    fn cluster_defaults_sit_under_a_topics_own_overrides() {
        let defaults: BTreeMap<String, String> = [("log.retention.ms", "1000"), ("min.insync.replicas", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let own: BTreeMap<String, String> = [("min.insync.replicas".to_string(), "3".to_string())].into();
        let eff = effective_configs(&defaults, &own);
        assert_eq!(
            eff.get("retention.ms").map(String::as_str),
            Some("1000"),
            "the default, as the topic key"
        );
        assert_eq!(eff.get("min.insync.replicas").map(String::as_str), Some("3"), "the topic's own wins");
        assert!(matches!(effective_configs(&BTreeMap::new(), &own), std::borrow::Cow::Borrowed(_)));
        assert_eq!(effective_value(&defaults, &own, "min.insync.replicas"), Some("3"), "the topic's own");
        assert_eq!(effective_value(&defaults, &own, "retention.ms"), Some("1000"), "the default's topic key");
        assert_eq!(effective_value(&defaults, &own, "segment.bytes"), None);
        assert!(validate_broker_default_keys(&defaults).is_ok());
        let bad: BTreeMap<String, String> = [("num.io.threads".to_string(), "8".to_string())].into();
        assert!(validate_broker_default_keys(&bad).expect_err("static").to_string().contains("restart"));
    }
}

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
    "index.interval.bytes",
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
}

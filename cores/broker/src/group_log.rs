//! What `__consumer_offsets` holds, in Kafka's formats: which partition a group lives in,
//! the records a coordinator writes (committed offsets and group metadata, keyed so that
//! compaction keeps the latest of each), and folding them back into groups when a broker
//! takes over a partition.
//!
//! Keys and values are Kafka's (big-endian, int16 version first; strings with an int16
//! length; bytes with an int32 length; -1 for null):
//!
//! - offset key, version 1: group, topic, partition (int32)
//! - offset value, version 3: offset (int64), leader epoch (int32), metadata, commit
//!   timestamp (int64)
//! - group key, version 2: group
//! - group value, version 3: protocol type, generation (int32), protocol (nullable),
//!   leader (nullable), state timestamp (int64), members: [member id, group instance id
//!   (nullable), client id, client host, rebalance timeout (int32), session timeout
//!   (int32), subscription (bytes), assignment (bytes)]
//!
//! A record with no value is a tombstone: the offset or the group is deleted.

use std::collections::BTreeMap;

use crate::group::{GroupRecord, MemberRecord, OffsetRecord};

/// The partition of `__consumer_offsets` that holds `group` (Kafka's
/// `abs(groupId.hashCode) % offsets.topic.num.partitions`, with Java's string hash, so a
/// group lands where it would in Kafka).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs: i32::MIN maps to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A malformed key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct FormatError(pub String);

/// One record of `__consumer_offsets`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A committed offset (or its tombstone).
    Offset {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// `None`: deleted.
        value: Option<OffsetRecord>,
    },
    /// A group's metadata (or its tombstone).
    Group {
        /// The group.
        group: String,
        /// `None`: deleted.
        value: Option<GroupRecord>,
    },
}

struct Writer(Vec<u8>);

impl Writer {
    fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn string(&mut self, s: &str) -> &mut Self {
        let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
        self.i16(len);
        self.0.extend_from_slice(&s.as_bytes()[..len as usize]);
        self
    }
    fn nullable(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
        self.0.extend_from_slice(b);
        self
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], FormatError> {
        if self.buf.len() < n {
            return Err(FormatError(format!("{}: {field} is cut short", self.what)));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn i16(&mut self, field: &str) -> Result<i16, FormatError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self, field: &str) -> Result<i32, FormatError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self, field: &str) -> Result<i64, FormatError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn nullable(&mut self, field: &str) -> Result<Option<String>, FormatError> {
        let len = self.i16(field)?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize, field)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| FormatError(format!("{}: {field} is not UTF-8", self.what)))
    }
    fn string(&mut self, field: &str) -> Result<String, FormatError> {
        self.nullable(field)?.ok_or_else(|| FormatError(format!("{}: {field} is null", self.what)))
    }
    fn bytes(&mut self, field: &str) -> Result<Vec<u8>, FormatError> {
        let len = self.i32(field)?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize, field)?.to_vec())
    }
}

/// The key of `group`'s committed offset for a partition.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.i16(1).string(group).string(topic).i32(partition);
    w.0
}

/// A committed offset's value.
pub fn offset_value(r: &OffsetRecord) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.i16(3).i64(r.offset).i32(r.leader_epoch).string(&r.metadata).i64(r.commit_timestamp);
    w.0
}

/// The key of `group`'s metadata.
pub fn group_key(group: &str) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.i16(2).string(group);
    w.0
}

/// A group's metadata value.
pub fn group_value(r: &GroupRecord) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.i16(3)
        .string(&r.protocol_type)
        .i32(r.generation)
        .nullable(r.protocol.as_deref())
        .nullable(r.leader.as_deref())
        .i64(r.state_timestamp)
        .i32(i32::try_from(r.members.len()).unwrap_or(i32::MAX));
    for m in &r.members {
        w.string(&m.member_id)
            .nullable(None)
            .string(&m.client_id)
            .string(&m.client_host)
            .i32(m.rebalance_timeout_ms)
            .i32(m.session_timeout_ms)
            .bytes(&m.subscription)
            .bytes(&m.assignment);
    }
    w.0
}

/// Decodes one record (`value` `None` is a tombstone).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Entry, FormatError> {
    let mut k = Reader { buf: key, what: "key" };
    match k.i16("version")? {
        0 | 1 => {
            let group = k.string("group")?;
            let topic = k.string("topic")?;
            let partition = k.i32("partition")?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(Entry::Offset { group, topic, partition, value })
        }
        2 => {
            let group = k.string("group")?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(Entry::Group { group, value })
        }
        v => Err(FormatError(format!("unknown key version {v}"))),
    }
}

fn decode_offset_value(buf: &[u8]) -> Result<OffsetRecord, FormatError> {
    let mut r = Reader { buf, what: "offset value" };
    let version = r.i16("version")?;
    if !(0..=3).contains(&version) {
        return Err(FormatError(format!("unknown offset value version {version}")));
    }
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 { r.i32("leader epoch")? } else { -1 };
    let metadata = r.string("metadata")?;
    let commit_timestamp = r.i64("commit timestamp")?;
    if version == 1 {
        // Version 1 also carried an expire timestamp.
        r.i64("expire timestamp")?;
    }
    Ok(OffsetRecord { offset, leader_epoch, metadata, commit_timestamp })
}

fn decode_group_value(buf: &[u8]) -> Result<GroupRecord, FormatError> {
    let mut r = Reader { buf, what: "group value" };
    let version = r.i16("version")?;
    if !(0..=3).contains(&version) {
        return Err(FormatError(format!("unknown group value version {version}")));
    }
    let protocol_type = r.string("protocol type")?;
    let generation = r.i32("generation")?;
    let protocol = r.nullable("protocol")?;
    let leader = r.nullable("leader")?;
    let state_timestamp = if version >= 2 { r.i64("state timestamp")? } else { -1 };
    let n = r.i32("member count")?;
    let mut members = Vec::new();
    for _ in 0..n.max(0) {
        let member_id = r.string("member id")?;
        if version >= 3 {
            r.nullable("group instance id")?;
        }
        let client_id = r.string("client id")?;
        let client_host = r.string("client host")?;
        let rebalance_timeout_ms = if version >= 1 { r.i32("rebalance timeout")? } else { -1 };
        let session_timeout_ms = r.i32("session timeout")?;
        let subscription = r.bytes("subscription")?;
        let assignment = r.bytes("assignment")?;
        members.push(MemberRecord {
            member_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupRecord { protocol_type, generation, protocol, leader, state_timestamp, members })
}

/// What a partition of `__consumer_offsets` says about one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Its latest metadata, unless deleted.
    pub group: Option<GroupRecord>,
    /// Its committed offsets.
    pub offsets: BTreeMap<(String, i32), OffsetRecord>,
}

/// Folds a partition's records, oldest first, into the groups they describe: later
/// records replace earlier ones, tombstones delete. A group whose metadata was deleted
/// and that has no offsets left is dropped.
#[derive(Debug, Default)]
pub struct Loader {
    groups: BTreeMap<String, Loaded>,
}

impl Loader {
    /// Takes in the next record.
    pub fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Offset { group, topic, partition, value } => {
                let g = self.groups.entry(group).or_default();
                match value {
                    Some(v) => {
                        g.offsets.insert((topic, partition), v);
                    }
                    None => {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            }
            Entry::Group { group, value } => {
                let g = self.groups.entry(group.clone()).or_default();
                match value {
                    Some(v) => g.group = Some(v),
                    None => {
                        // A deleted group's offsets were tombstoned before it.
                        self.groups.remove(&group);
                    }
                }
            }
        }
    }

    /// The groups, by id.
    pub fn finish(self) -> BTreeMap<String, Loaded> {
        self.groups.into_iter().filter(|(_, g)| g.group.is_some() || !g.offsets.is_empty()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_land_where_kafka_puts_them() {
        let java = |s: &str| s.chars().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
        assert_eq!(java("a"), 97);
        assert_eq!(partition_for("a", 50), 97 % 50);
        // "polygenelubricants" hashes to i32::MIN in Java: Kafka's abs gives 0.
        assert_eq!(java("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        let neg = "console-consumer-12345";
        assert!(java(neg) != 0);
        assert_eq!(partition_for(neg, 50), java(neg).abs() % 50);
        assert_eq!(partition_for("anything", 1), 0);
    }

    #[test]
    fn offset_records_are_kafkas_bytes_and_round_trip() {
        let key = offset_key("g", "t", 3);
        assert_eq!(key, vec![0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        let v = OffsetRecord { offset: 42, leader_epoch: 7, metadata: "m".into(), commit_timestamp: 1000 };
        let bytes = offset_value(&v);
        assert_eq!(
            bytes,
            vec![0, 3, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 7, 0, 1, b'm', 0, 0, 0, 0, 0, 0, 3, 0xe8]
        );
        let e = decode(&key, Some(&bytes)).expect("decode");
        assert_eq!(e, Entry::Offset { group: "g".into(), topic: "t".into(), partition: 3, value: Some(v) });
        assert_eq!(
            decode(&key, None).expect("tombstone"),
            Entry::Offset { group: "g".into(), topic: "t".into(), partition: 3, value: None }
        );
    }

    #[test]
    fn group_records_round_trip_and_bad_bytes_are_errors_not_panics() {
        let r = GroupRecord {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("c-1".into()),
            state_timestamp: 123,
            members: vec![MemberRecord {
                member_id: "c-1".into(),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: vec![1, 2, 3],
                assignment: vec![4, 5],
            }],
        };
        let key = group_key("g");
        let value = group_value(&r);
        assert_eq!(
            decode(&key, Some(&value)).expect("decode"),
            Entry::Group { group: "g".into(), value: Some(r) }
        );
        for cut in 0..value.len() {
            assert!(decode(&key, Some(&value[..cut])).is_err(), "cut at {cut}");
        }
        for cut in 0..key.len() {
            assert!(decode(&key[..cut], None).is_err(), "key cut at {cut}");
        }
        assert!(decode(&[0, 9, 0, 0], None).is_err());
    }

    #[test]
    fn the_loader_keeps_the_latest_and_honours_tombstones() {
        let off = |o| {
            Some(OffsetRecord { offset: o, leader_epoch: -1, metadata: String::new(), commit_timestamp: 0 })
        };
        let mut l = Loader::default();
        let o = |g: &str, p, value| Entry::Offset { group: g.into(), topic: "t".into(), partition: p, value };
        l.apply(o("a", 0, off(1)));
        l.apply(o("a", 0, off(5)));
        l.apply(o("a", 1, off(2)));
        l.apply(o("a", 1, None));
        l.apply(o("b", 0, off(9)));
        l.apply(o("b", 0, None));
        l.apply(Entry::Group { group: "b".into(), value: None });
        let groups = l.finish();
        assert_eq!(groups.keys().collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(groups["a"].offsets.len(), 1);
        assert_eq!(groups["a"].offsets[&("t".to_string(), 0)].offset, 5);
    }
}

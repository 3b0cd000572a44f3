//! Kafka's consumer-group client side: the consumer protocol's subscription and assignment
//! bytes, and the partition assignors a group leader runs.
//!
//! - [`Subscription`] and [`Assignment`]: Kafka's `ConsumerProtocolSubscription` and
//!   `ConsumerProtocolAssignment` at version 1 (big-endian, non-flexible encoding), so a
//!   group's metadata reads the same to a Kafka client. Decoding accepts version 0 and any
//!   higher version (its version-1 fields are read, the rest ignored); bad input is a
//!   [`ProtocolError`], never a panic.
//! - [`Assignor`]: member id → [`Subscription`] in, member id → partitions out.
//!   [`RangeAssignor`] and [`RoundRobinAssignor`] are Kafka's algorithms exactly;
//!   [`StickyAssignor`] balances while keeping partitions with their previous owners.
//! - [`assignor`]: an assignor by its protocol name (`range`, `roundrobin`, `sticky`) or
//!   Kafka class name.
//!
//! Every assignor ignores topics missing from the partition counts, gives a member only
//! partitions of topics it subscribes to, assigns every partition of a subscribed topic to
//! exactly one member, and lists every member (perhaps with no partitions), its partitions
//! sorted by topic then partition.

use std::collections::{BTreeMap, BTreeSet};

/// The version [`Subscription::encode`] and [`Assignment::encode`] write.
const VERSION: i16 = 1;

/// Why consumer-protocol bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The input ended inside a field (or before a required one).
    #[error("truncated {field}: needed {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A length or count is negative where the schema allows no null (or below -1 where it
    /// does).
    #[error("invalid length {length} for {field}")]
    InvalidLength {
        /// The field being read.
        field: &'static str,
        /// The length or count read.
        length: i32,
    },
    /// A string is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// The version is negative.
    #[error("invalid version {0}")]
    InvalidVersion(i16),
}

/// What a member sends when joining a group: Kafka's `ConsumerProtocolSubscription`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The topics the member subscribes to.
    pub topics: Vec<String>,
    /// Opaque assignor data (`null` when `None`).
    pub user_data: Option<Vec<u8>>,
    /// The partitions the member owned before this rebalance (version 1 on; empty from a
    /// version 0 subscription).
    pub owned_partitions: Vec<(String, i32)>,
}

/// What the group leader hands a member: Kafka's `ConsumerProtocolAssignment`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The partitions assigned to the member.
    pub partitions: Vec<(String, i32)>,
    /// Opaque assignor data (`null` when `None`).
    pub user_data: Option<Vec<u8>>,
}

impl Subscription {
    /// Version-1 bytes: version, topics, user data, owned partitions grouped by topic (topics
    /// and each topic's partitions in ascending order).
    ///
    /// # Panics
    ///
    /// If a topic name is longer than 32767 bytes or the user data longer than `i32::MAX`
    /// bytes, which the format cannot hold (Kafka's topic names are at most 249 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&VERSION.to_be_bytes());
        put_len(&mut out, self.topics.len());
        for topic in &self.topics {
            put_string(&mut out, topic);
        }
        put_nullable_bytes(&mut out, self.user_data.as_deref());
        put_topic_partitions(&mut out, &self.owned_partitions);
        out
    }

    /// Reads a subscription of any version: version 0 has no owned partitions; a version
    /// above 1 has its version-1 fields read and the rest ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let mut r = Reader { buf: bytes };
        let version = r.version()?;
        let count = r.count("topics")?;
        let mut topics = Vec::new();
        for _ in 0..count {
            topics.push(r.string("topics[]")?);
        }
        let user_data = r.nullable_bytes("user_data")?;
        let owned_partitions =
            if version >= 1 { r.topic_partitions("owned_partitions")? } else { Vec::new() };
        Ok(Subscription { topics, user_data, owned_partitions })
    }
}

impl Assignment {
    /// Version-1 bytes: version, partitions grouped by topic (topics and each topic's
    /// partitions in ascending order), user data.
    ///
    /// # Panics
    ///
    /// If a topic name is longer than 32767 bytes or the user data longer than `i32::MAX`
    /// bytes, which the format cannot hold.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&VERSION.to_be_bytes());
        put_topic_partitions(&mut out, &self.partitions);
        put_nullable_bytes(&mut out, self.user_data.as_deref());
        out
    }

    /// Reads an assignment of any version (versions 0 and 1 are the same; above 1 the rest is
    /// ignored). No bytes at all is an empty assignment, as Kafka reads it.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.is_empty() {
            return Ok(Assignment::default());
        }
        let mut r = Reader { buf: bytes };
        r.version()?;
        let partitions = r.topic_partitions("assigned_partitions")?;
        let user_data = r.nullable_bytes("user_data")?;
        Ok(Assignment { partitions, user_data })
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = i32::try_from(len).expect("array or bytes longer than i32::MAX");
    out.extend_from_slice(&len.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).expect("string longer than 32767 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.extend_from_slice(&(-1_i32).to_be_bytes()),
        Some(b) => {
            put_len(out, b.len());
            out.extend_from_slice(b);
        }
    }
}

/// `array[topic string, partitions array[int32]]`, grouped by topic.
fn put_topic_partitions(out: &mut Vec<u8>, partitions: &[(String, i32)]) {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    put_len(out, by_topic.len());
    for (topic, mut ps) in by_topic {
        ps.sort_unstable();
        put_string(out, topic);
        put_len(out, ps.len());
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
}

/// A cursor over consumer-protocol bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(ProtocolError::Truncated { field, needed: n, available: self.buf.len() });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, ProtocolError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, ProtocolError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn version(&mut self) -> Result<i16, ProtocolError> {
        let version = self.i16("version")?;
        if version < 0 {
            return Err(ProtocolError::InvalidVersion(version));
        }
        Ok(version)
    }

    /// A non-nullable array's element count.
    fn count(&mut self, field: &'static str) -> Result<usize, ProtocolError> {
        let n = self.i32(field)?;
        usize::try_from(n).map_err(|_| ProtocolError::InvalidLength { field, length: n })
    }

    fn string(&mut self, field: &'static str) -> Result<String, ProtocolError> {
        let n = self.i16(field)?;
        let len =
            usize::try_from(n).map_err(|_| ProtocolError::InvalidLength { field, length: i32::from(n) })?;
        let b = self.take(len, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| ProtocolError::InvalidUtf8 { field })
    }

    fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<Vec<u8>>, ProtocolError> {
        match self.i32(field)? {
            -1 => Ok(None),
            n => {
                let len =
                    usize::try_from(n).map_err(|_| ProtocolError::InvalidLength { field, length: n })?;
                Ok(Some(self.take(len, field)?.to_vec()))
            }
        }
    }

    /// `array[topic string, partitions array[int32]]`, flattened in wire order.
    fn topic_partitions(&mut self, field: &'static str) -> Result<Vec<(String, i32)>, ProtocolError> {
        let topics = self.count(field)?;
        let mut out = Vec::new();
        for _ in 0..topics {
            let topic = self.string(field)?;
            let partitions = self.count(field)?;
            for _ in 0..partitions {
                out.push((topic.clone(), self.i32(field)?));
            }
        }
        Ok(out)
    }
}

/// Decides which member of a group consumes which partitions (run by the group leader).
pub trait Assignor: Send + Sync + std::fmt::Debug {
    /// The protocol name members advertise (`range`, `roundrobin`, `sticky`).
    fn name(&self) -> &'static str;

    /// Assigns the partitions of `partitions_per_topic` (topic → partition count; subscribed
    /// topics missing from it are ignored) to the members of `subscriptions` (member id →
    /// subscription). Every member id is in the result, its partitions sorted.
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Vec<(String, i32)>>;
}

/// An assignor by protocol name (`range`, `roundrobin`, `sticky`) or Kafka class name
/// (`org.apache.kafka.clients.consumer.RangeAssignor`, …); `None` if unknown.
pub fn assignor(name: &str) -> Option<Box<dyn Assignor>> {
    match name {
        "range" | "org.apache.kafka.clients.consumer.RangeAssignor" => Some(Box::new(RangeAssignor)),
        "roundrobin" | "org.apache.kafka.clients.consumer.RoundRobinAssignor" => {
            Some(Box::new(RoundRobinAssignor))
        }
        "sticky" | "org.apache.kafka.clients.consumer.StickyAssignor" => Some(Box::new(StickyAssignor)),
        "cooperative-sticky" | "org.apache.kafka.clients.consumer.CooperativeStickyAssignor" => {
            Some(Box::new(CooperativeStickyAssignor))
        }
        _ => None,
    }
}

/// Whether the assignor with this name rebalances incrementally (Kafka's COOPERATIVE
/// protocol): members keep the partitions that stay theirs through a rebalance and give up
/// only those that move.
pub fn is_cooperative(name: &str) -> bool {
    matches!(name, "cooperative-sticky" | "org.apache.kafka.clients.consumer.CooperativeStickyAssignor")
}

/// Kafka's `CooperativeStickyAssignor`: the sticky assignment, except that a partition
/// moving from one member to another is assigned to nobody this round. Its owner revokes it
/// (and only it), rejoins at once, and the next round gives it to its new member — so no
/// partition is ever consumed by two members, and the others never stop.
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Vec<(String, i32)>> {
        let mut assigned = StickyAssignor.assign(partitions_per_topic, subscriptions);
        // Who owns what now (the first claimant by member id, as the sticky assignor counts).
        let mut owner: BTreeMap<(&str, i32), &str> = BTreeMap::new();
        for (member, s) in subscriptions {
            for (topic, partition) in &s.owned_partitions {
                owner.entry((topic.as_str(), *partition)).or_insert(member.as_str());
            }
        }
        for (member, partitions) in assigned.iter_mut() {
            partitions.retain(|(t, p)| owner.get(&(t.as_str(), *p)).is_none_or(|o| *o == member.as_str()));
        }
        assigned
    }
}

/// Who subscribes to what, restricted to topics that have partitions.
struct Layout<'a> {
    /// Every member id → the topics it subscribes to that have partitions.
    member_topics: BTreeMap<&'a str, BTreeSet<&'a str>>,
    /// Every topic with partitions and subscribers → (partition count, subscribers by id).
    topics: BTreeMap<&'a str, (i32, Vec<&'a str>)>,
}

impl<'a> Layout<'a> {
    fn new(
        partitions_per_topic: &'a BTreeMap<String, i32>,
        subscriptions: &'a BTreeMap<String, Subscription>,
    ) -> Self {
        let mut member_topics = BTreeMap::new();
        let mut topics: BTreeMap<&str, (i32, Vec<&str>)> = BTreeMap::new();
        for (member, subscription) in subscriptions {
            let mut mine = BTreeSet::new();
            for topic in &subscription.topics {
                if let Some((name, &count)) = partitions_per_topic.get_key_value(topic.as_str()) {
                    if count > 0 && mine.insert(name.as_str()) {
                        topics.entry(name.as_str()).or_insert((count, Vec::new())).1.push(member.as_str());
                    }
                }
            }
            member_topics.insert(member.as_str(), mine);
        }
        Layout { member_topics, topics }
    }

    /// Every member with no partitions yet.
    fn empty_assignment(&self) -> BTreeMap<&'a str, Vec<(&'a str, i32)>> {
        self.member_topics.keys().map(|m| (*m, Vec::new())).collect()
    }

    /// Whether `member` subscribes to `topic` and `partition` exists.
    fn valid(&self, member: &str, topic: &str, partition: i32) -> bool {
        let subscribed = self.member_topics.get(member).is_some_and(|t| t.contains(topic));
        subscribed && self.topics.get(topic).is_some_and(|(count, _)| (0..*count).contains(&partition))
    }
}

/// Owned strings, each member's partitions sorted.
fn finish(assignment: BTreeMap<&str, Vec<(&str, i32)>>) -> BTreeMap<String, Vec<(String, i32)>> {
    assignment
        .into_iter()
        .map(|(member, mut partitions)| {
            partitions.sort_unstable();
            (member.to_owned(), partitions.into_iter().map(|(t, p)| (t.to_owned(), p)).collect())
        })
        .collect()
}

/// Kafka's `RangeAssignor`: per topic, its subscribers by member id each take a contiguous
/// range of partitions; with `n` partitions and `m` subscribers the first `n % m` take one
/// more than the others.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Vec<(String, i32)>> {
        let layout = Layout::new(partitions_per_topic, subscriptions);
        let mut out = layout.empty_assignment();
        for (topic, (count, members)) in &layout.topics {
            let (n, m) = (i64::from(*count), members.len() as i64);
            let (per_member, extra) = (n / m, n % m);
            for (i, member) in (0_i64..).zip(members) {
                let start = per_member * i + i.min(extra);
                let len = per_member + i64::from(i < extra);
                // Within 0..=count, so within i32.
                let ps = (start..start + len).map(|p| (*topic, p as i32));
                out.entry(*member).or_default().extend(ps);
            }
        }
        finish(out)
    }
}

/// Kafka's `RoundRobinAssignor`: every partition in (topic, partition) order is dealt to the
/// members in member-id order round-robin, skipping members not subscribed to its topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Vec<(String, i32)>> {
        let layout = Layout::new(partitions_per_topic, subscriptions);
        let mut out = layout.empty_assignment();
        let members: Vec<(&str, &BTreeSet<&str>)> =
            layout.member_topics.iter().map(|(m, t)| (*m, t)).collect();
        let mut next = 0;
        for (topic, (count, _)) in &layout.topics {
            for partition in 0..*count {
                // Every topic in the layout has a subscriber, so this stops.
                while !members[next].1.contains(topic) {
                    next = (next + 1) % members.len();
                }
                out.entry(members[next].0).or_default().push((*topic, partition));
                next = (next + 1) % members.len();
            }
        }
        finish(out)
    }
}

/// A balanced assignment that moves as few partitions as it can from their previous owners
/// (each member's [`Subscription::owned_partitions`]).
///
/// A claim counts only if the member subscribes to the topic and the partition exists; of
/// two members claiming a partition, the one with the lower member id keeps the claim.
///
/// - All members subscribing to the same topics: with `n` partitions and `m` members each
///   member ends with `n / m` or `n / m + 1`. Each keeps up to `n / m` of its claims (the
///   lowest partitions); the first `n % m` members by id claiming more keep one more. The
///   rest go, in order, each to a member with the fewest, ties by member id. No assignment
///   keeps more claims.
/// - Otherwise each member keeps all its claims; the rest go, fewest subscribers first, each
///   to a subscriber with the fewest, ties by member id; then, while a member has two or
///   more partitions beyond a subscriber of one of its topics, one moves (a partition it
///   did not claim if it can) — so in the end no partition could move to a member with
///   fewer and narrow the gap (Kafka's balance criterion).
#[derive(Debug, Clone, Copy, Default)]
pub struct StickyAssignor;

impl Assignor for StickyAssignor {
    fn name(&self) -> &'static str {
        "sticky"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Vec<(String, i32)>> {
        let layout = Layout::new(partitions_per_topic, subscriptions);
        // Valid claims, sorted per member; a partition's first claimant by member id wins.
        let mut claimed: BTreeSet<(&str, i32)> = BTreeSet::new();
        let mut owned: BTreeMap<&str, Vec<(&str, i32)>> = layout.empty_assignment();
        for (member, subscription) in subscriptions {
            let member = member.as_str();
            for (topic, partition) in &subscription.owned_partitions {
                if layout.valid(member, topic, *partition) {
                    if let Some((t, _)) = layout.topics.get_key_value(topic.as_str()) {
                        if claimed.insert((*t, *partition)) {
                            owned.entry(member).or_default().push((*t, *partition));
                        }
                    }
                }
            }
        }
        for partitions in owned.values_mut() {
            partitions.sort_unstable();
        }
        let mut sets = layout.member_topics.values();
        let identical = sets.next().is_some_and(|first| sets.all(|s| s == first));
        let out = if identical { sticky_uniform(&layout, owned) } else { sticky_general(&layout, owned) };
        finish(out)
    }
}

/// Every partition of the layout, sorted.
fn all_partitions<'a>(layout: &Layout<'a>) -> Vec<(&'a str, i32)> {
    layout.topics.iter().flat_map(|(topic, (count, _))| (0..*count).map(move |p| (*topic, p))).collect()
}

/// The member with the fewest partitions among `candidates`, ties by member id.
fn fewest<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    out: &BTreeMap<&'a str, Vec<(&'a str, i32)>>,
) -> Option<&'a str> {
    candidates.into_iter().min_by_key(|m| (out.get(m).map_or(0, Vec::len), *m))
}

/// Sticky with every member subscribing to the same topics: quotas of `n / m` (the first
/// `n % m` members by id claiming more get `n / m + 1`), then the rest to the fewest.
fn sticky_uniform<'a>(
    layout: &Layout<'a>,
    owned: BTreeMap<&'a str, Vec<(&'a str, i32)>>,
) -> BTreeMap<&'a str, Vec<(&'a str, i32)>> {
    let all = all_partitions(layout);
    let members = owned.len();
    if all.is_empty() || members == 0 {
        return layout.empty_assignment();
    }
    let (min_quota, mut extra) = (all.len() / members, all.len() % members);
    let mut out = BTreeMap::new();
    let mut kept: BTreeSet<(&str, i32)> = BTreeSet::new();
    for (member, mut partitions) in owned {
        let quota = if partitions.len() > min_quota && extra > 0 {
            extra -= 1;
            min_quota + 1
        } else {
            min_quota
        };
        partitions.truncate(quota);
        kept.extend(partitions.iter().copied());
        out.insert(member, partitions);
    }
    let members: Vec<&str> = out.keys().copied().collect();
    for partition in all.into_iter().filter(|p| !kept.contains(p)) {
        if let Some(member) = fewest(members.iter().copied(), &out) {
            out.entry(member).or_default().push(partition);
        }
    }
    out
}

/// Sticky with members subscribing to different topics: keep every claim, fill, then move
/// partitions while a member has two or more beyond one that could take one.
fn sticky_general<'a>(
    layout: &Layout<'a>,
    owned: BTreeMap<&'a str, Vec<(&'a str, i32)>>,
) -> BTreeMap<&'a str, Vec<(&'a str, i32)>> {
    let claimed: BTreeSet<(&str, &str, i32)> =
        owned.iter().flat_map(|(m, ps)| ps.iter().map(move |(t, p)| (*m, *t, *p))).collect();
    let mut out = owned;
    let kept: BTreeSet<(&str, i32)> = out.values().flatten().copied().collect();
    let mut unassigned: Vec<(&str, i32)> =
        all_partitions(layout).into_iter().filter(|p| !kept.contains(p)).collect();
    // Most constrained first.
    unassigned.sort_by_key(|(t, p)| (layout.topics.get(t).map_or(0, |(_, s)| s.len()), *t, *p));
    for (topic, partition) in unassigned {
        let subscribers = layout.topics.get(topic).map(|(_, s)| s.iter().copied());
        if let Some(member) = subscribers.and_then(|s| fewest(s, &out)) {
            out.entry(member).or_default().push((topic, partition));
        }
    }
    // Each move takes a partition from a member with `c` to one with at most `c - 2`, which
    // lowers the sum of squared counts, so this ends.
    loop {
        let count = |m: &str, out: &BTreeMap<&str, Vec<(&str, i32)>>| out.get(m).map_or(0, Vec::len);
        let mut donors: Vec<&str> = out.keys().copied().collect();
        donors.sort_by_key(|m| (std::cmp::Reverse(count(m, &out)), *m));
        let mut chosen = None;
        for donor in donors {
            let have = count(donor, &out);
            if have < 2 {
                break;
            }
            // (claimed by the donor, receiver's count, receiver, index in the donor's list)
            let mut best: Option<(bool, usize, &str, usize)> = None;
            for (i, (topic, partition)) in out.get(donor).into_iter().flatten().enumerate() {
                let Some((_, subscribers)) = layout.topics.get(topic) else { continue };
                let receivers = subscribers.iter().copied().filter(|r| count(r, &out) + 2 <= have);
                if let Some(receiver) = fewest(receivers, &out) {
                    let key =
                        (claimed.contains(&(donor, *topic, *partition)), count(receiver, &out), receiver, i);
                    if best.is_none_or(|b| key < b) {
                        best = Some(key);
                    }
                }
            }
            if let Some((_, _, receiver, i)) = best {
                chosen = Some((donor, i, receiver));
                break;
            }
        }
        let Some((donor, i, receiver)) = chosen else { break };
        if let Some(partitions) = out.get_mut(donor) {
            let partition = partitions.remove(i);
            out.entry(receiver).or_default().push(partition);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> (String, i32) {
        (topic.to_owned(), partition)
    }

    fn counts(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    fn subscribe(topics: &[&str]) -> Subscription {
        Subscription { topics: topics.iter().map(|t| (*t).to_owned()).collect(), ..Subscription::default() }
    }

    fn owning(topics: &[&str], owned: &[(String, i32)]) -> Subscription {
        Subscription { owned_partitions: owned.to_vec(), ..subscribe(topics) }
    }

    fn members(pairs: Vec<(&str, Subscription)>) -> BTreeMap<String, Subscription> {
        pairs.into_iter().map(|(m, s)| (m.to_owned(), s)).collect()
    }

    // ---- protocol ----

    #[test]
    fn cooperative_sticky_holds_back_a_moving_partition_for_one_round() {
        let topics: BTreeMap<String, i32> = [("t".to_string(), 4)].into_iter().collect();
        let sub = |owned: &[i32]| Subscription {
            topics: vec!["t".into()],
            user_data: None,
            owned_partitions: owned.iter().map(|p| ("t".to_string(), *p)).collect(),
        };
        // a owns all four; b joins: the two that move to b go to nobody this round.
        let round1: BTreeMap<String, Subscription> =
            [("a".to_string(), sub(&[0, 1, 2, 3])), ("b".to_string(), sub(&[]))].into_iter().collect();
        let out = CooperativeStickyAssignor.assign(&topics, &round1);
        assert_eq!(out["a"].len(), 2, "a keeps its share: {out:?}");
        assert!(out["b"].is_empty(), "b gets nothing until a has revoked: {out:?}");
        // a revoked the other two and rejoins: round 2 gives them to b.
        let kept: Vec<i32> = out["a"].iter().map(|(_, p)| *p).collect();
        let round2: BTreeMap<String, Subscription> =
            [("a".to_string(), sub(&kept)), ("b".to_string(), sub(&[]))].into_iter().collect();
        let out2 = CooperativeStickyAssignor.assign(&topics, &round2);
        assert_eq!(out2["a"], out["a"], "a keeps what it kept");
        assert_eq!(out2["b"].len(), 2);
        assert!(out2["b"].iter().all(|tp| !out2["a"].contains(tp)));
        assert!(is_cooperative("cooperative-sticky") && !is_cooperative("sticky"));
        assert_eq!(assignor("cooperative-sticky").map(|a| a.name()), Some("cooperative-sticky"));
    }

    #[test]
    fn subscriptions_round_trip() {
        let cases = [
            Subscription::default(),
            subscribe(&["orders"]),
            Subscription {
                topics: vec!["a".into(), "b".into(), "ü-topic".into()],
                user_data: Some(vec![0, 1, 0xff]),
                owned_partitions: vec![tp("a", 0), tp("a", 3), tp("b", 1)],
            },
            Subscription { topics: vec!["x".into()], user_data: Some(Vec::new()), owned_partitions: vec![] },
        ];
        for s in cases {
            assert_eq!(Subscription::decode(&s.encode()), Ok(s.clone()), "{s:?}");
        }
    }

    #[test]
    fn assignments_round_trip() {
        let cases = [
            Assignment::default(),
            Assignment { partitions: vec![tp("a", 0), tp("a", 1), tp("b", 7)], user_data: None },
            Assignment { partitions: vec![tp("t", 2)], user_data: Some(vec![9, 8, 7]) },
            Assignment { partitions: vec![], user_data: Some(Vec::new()) },
        ];
        for a in cases {
            assert_eq!(Assignment::decode(&a.encode()), Ok(a.clone()), "{a:?}");
        }
    }

    /// `ConsumerProtocolSubscription` v1, written out field by field.
    const SUBSCRIPTION_V1: &[u8] = &[
        0, 1, // version 1
        0, 0, 0, 2, // topics: 2
        0, 1, b'a', // "a"
        0, 1, b'b', // "b"
        0, 0, 0, 2, 0xca, 0xfe, // user_data: 2 bytes
        0, 0, 0, 1, // owned_partitions: 1 topic
        0, 1, b'a', // "a"
        0, 0, 0, 2, // partitions: 2
        0, 0, 0, 0, // 0
        0, 0, 0, 2, // 2
    ];

    /// `ConsumerProtocolAssignment` v1, written out field by field.
    const ASSIGNMENT_V1: &[u8] = &[
        0, 1, // version 1
        0, 0, 0, 2, // assigned_partitions: 2 topics
        0, 1, b'a', // "a"
        0, 0, 0, 1, // partitions: 1
        0, 0, 0, 1, // 1
        0, 1, b'b', // "b"
        0, 0, 0, 2, // partitions: 2
        0, 0, 0, 0, // 0
        0, 0, 0, 3, // 3
        0xff, 0xff, 0xff, 0xff, // user_data: null
    ];

    fn small_subscription() -> Subscription {
        Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Some(vec![0xca, 0xfe]),
            owned_partitions: vec![tp("a", 0), tp("a", 2)],
        }
    }

    fn small_assignment() -> Assignment {
        Assignment { partitions: vec![tp("a", 1), tp("b", 0), tp("b", 3)], user_data: None }
    }

    #[test]
    fn subscription_bytes_are_kafkas_schema() {
        assert_eq!(small_subscription().encode(), SUBSCRIPTION_V1);
        assert_eq!(Subscription::decode(SUBSCRIPTION_V1), Ok(small_subscription()));
    }

    #[test]
    fn assignment_bytes_are_kafkas_schema() {
        assert_eq!(small_assignment().encode(), ASSIGNMENT_V1);
        assert_eq!(Assignment::decode(ASSIGNMENT_V1), Ok(small_assignment()));
    }

    #[test]
    fn encoding_groups_partitions_by_topic_in_order() {
        let s = Subscription {
            owned_partitions: vec![tp("b", 1), tp("a", 2), tp("b", 0), tp("a", 0)],
            ..Subscription::default()
        };
        let decoded = Subscription::decode(&s.encode()).map(|d| d.owned_partitions);
        assert_eq!(decoded, Ok(vec![tp("a", 0), tp("a", 2), tp("b", 0), tp("b", 1)]));
        let a = Assignment { partitions: vec![tp("b", 1), tp("a", 2), tp("b", 0)], user_data: None };
        let encoded = a.encode();
        // Two topic entries, not three.
        assert_eq!(&encoded[2..6], &[0, 0, 0, 2]);
        assert_eq!(
            Assignment::decode(&encoded).map(|d| d.partitions),
            Ok(vec![tp("a", 2), tp("b", 0), tp("b", 1)])
        );
    }

    #[test]
    fn version_0_subscription_has_no_owned_partitions() {
        let v0 = [
            0, 0, // version 0
            0, 0, 0, 1, 0, 1, b't', // topics: ["t"]
            0xff, 0xff, 0xff, 0xff, // user_data: null
        ];
        assert_eq!(Subscription::decode(&v0), Ok(subscribe(&["t"])));
        let v0_with_data = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 7];
        assert_eq!(
            Subscription::decode(&v0_with_data),
            Ok(Subscription { topics: vec![], user_data: Some(vec![7]), owned_partitions: vec![] })
        );
    }

    #[test]
    fn later_versions_are_read_as_version_1() {
        // v3 adds generation_id (int32) and rack_id (nullable string) after the v1 fields.
        let mut v3 = SUBSCRIPTION_V1.to_vec();
        v3[1] = 3;
        v3.extend_from_slice(&[0, 0, 0, 5, 0, 2, b'r', b'1']);
        assert_eq!(Subscription::decode(&v3), Ok(small_subscription()));
        let mut a3 = ASSIGNMENT_V1.to_vec();
        a3[1] = 3;
        a3.extend_from_slice(&[1, 2, 3]);
        assert_eq!(Assignment::decode(&a3), Ok(small_assignment()));
        let mut a0 = ASSIGNMENT_V1.to_vec();
        a0[1] = 0;
        assert_eq!(Assignment::decode(&a0), Ok(small_assignment()));
    }

    #[test]
    fn empty_assignment_bytes_are_no_partitions() {
        assert_eq!(Assignment::decode(&[]), Ok(Assignment::default()));
        assert!(matches!(Subscription::decode(&[]), Err(ProtocolError::Truncated { field: "version", .. })));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for len in 0..SUBSCRIPTION_V1.len() {
            let r = Subscription::decode(&SUBSCRIPTION_V1[..len]);
            assert!(matches!(r, Err(ProtocolError::Truncated { .. })), "prefix {len}: {r:?}");
        }
        for len in 1..ASSIGNMENT_V1.len() {
            let r = Assignment::decode(&ASSIGNMENT_V1[..len]);
            assert!(matches!(r, Err(ProtocolError::Truncated { .. })), "prefix {len}: {r:?}");
        }
        let s = Subscription::decode(&SUBSCRIPTION_V1[..11]);
        assert_eq!(s, Err(ProtocolError::Truncated { field: "topics[]", needed: 1, available: 0 }));
    }

    #[test]
    fn malformed_fields_are_typed_errors() {
        let negative_topics = [0, 1, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            Subscription::decode(&negative_topics),
            Err(ProtocolError::InvalidLength { field: "topics", length: -1 })
        );
        let negative_string = [0, 1, 0, 0, 0, 1, 0xff, 0xfe];
        assert_eq!(
            Subscription::decode(&negative_string),
            Err(ProtocolError::InvalidLength { field: "topics[]", length: -2 })
        );
        let bad_utf8 = [0, 1, 0, 0, 0, 1, 0, 1, 0xff];
        assert_eq!(Subscription::decode(&bad_utf8), Err(ProtocolError::InvalidUtf8 { field: "topics[]" }));
        let bad_user_data = [0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe];
        assert_eq!(
            Subscription::decode(&bad_user_data),
            Err(ProtocolError::InvalidLength { field: "user_data", length: -2 })
        );
        assert_eq!(Assignment::decode(&[0x80, 0]), Err(ProtocolError::InvalidVersion(i16::MIN)));
        // A huge count with nothing behind it fails at the first missing element.
        let huge = [0, 1, 0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(
            Assignment::decode(&huge),
            Err(ProtocolError::Truncated { field: "assigned_partitions", .. })
        ));
    }

    /// Marsaglia's xorshift64: enough randomness for seeded cases without a dependency.
    struct XorShift(u64);

    impl XorShift {
        fn new(seed: u64) -> Self {
            XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }

        fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift::new(7);
        let mut decoded = 0;
        for _ in 0..2000 {
            // Mutate a valid message so decoding gets past the first fields.
            let mut bytes = if rng.below(2) == 0 { SUBSCRIPTION_V1.to_vec() } else { ASSIGNMENT_V1.to_vec() };
            for _ in 0..=rng.below(3) {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next_u64() as u8;
            }
            bytes.truncate(rng.below(bytes.len() + 1));
            decoded += usize::from(Subscription::decode(&bytes).is_ok());
            decoded += usize::from(Assignment::decode(&bytes).is_ok());
        }
        assert!(decoded > 0, "some mutations still decode");
    }

    // ---- assignors ----

    fn kafka_example() -> (BTreeMap<String, i32>, BTreeMap<String, Subscription>) {
        let topics = counts(&[("t0", 3), ("t1", 3)]);
        let subs = members(vec![("C0", subscribe(&["t0", "t1"])), ("C1", subscribe(&["t0", "t1"]))]);
        (topics, subs)
    }

    #[test]
    fn range_matches_kafkas_example() {
        let (topics, subs) = kafka_example();
        let out = RangeAssignor.assign(&topics, &subs);
        assert_eq!(out["C0"], vec![tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]);
        assert_eq!(out["C1"], vec![tp("t0", 2), tp("t1", 2)]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn range_gives_the_first_members_the_extra_partitions() {
        let topics = counts(&[("t", 8)]);
        let subs =
            members(vec![("c", subscribe(&["t"])), ("a", subscribe(&["t"])), ("b", subscribe(&["t"]))]);
        let out = RangeAssignor.assign(&topics, &subs);
        assert_eq!(out["a"], vec![tp("t", 0), tp("t", 1), tp("t", 2)]);
        assert_eq!(out["b"], vec![tp("t", 3), tp("t", 4), tp("t", 5)]);
        assert_eq!(out["c"], vec![tp("t", 6), tp("t", 7)]);
    }

    #[test]
    fn roundrobin_matches_kafkas_examples() {
        let (topics, subs) = kafka_example();
        let out = RoundRobinAssignor.assign(&topics, &subs);
        assert_eq!(out["C0"], vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
        assert_eq!(out["C1"], vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]);
        // Kafka's javadoc example with differing subscriptions.
        let topics = counts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let subs = members(vec![
            ("C0", subscribe(&["t0"])),
            ("C1", subscribe(&["t0", "t1"])),
            ("C2", subscribe(&["t0", "t1", "t2"])),
        ]);
        let out = RoundRobinAssignor.assign(&topics, &subs);
        assert_eq!(out["C0"], vec![tp("t0", 0)]);
        assert_eq!(out["C1"], vec![tp("t1", 0)]);
        assert_eq!(out["C2"], vec![tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
    }

    #[test]
    fn every_member_is_listed_and_unknown_topics_ignored() {
        let topics = counts(&[("t", 2), ("empty", 0)]);
        let subs = members(vec![
            ("a", subscribe(&["t", "missing"])),
            ("b", subscribe(&["missing", "empty"])),
            ("c", subscribe(&[])),
        ]);
        for assignor in [&RangeAssignor as &dyn Assignor, &RoundRobinAssignor, &StickyAssignor] {
            let out = assignor.assign(&topics, &subs);
            let expected: BTreeMap<String, Vec<(String, i32)>> = [
                ("a".to_owned(), vec![tp("t", 0), tp("t", 1)]),
                ("b".to_owned(), vec![]),
                ("c".to_owned(), vec![]),
            ]
            .into_iter()
            .collect();
            assert_eq!(out, expected, "{}", assignor.name());
        }
        assert!(StickyAssignor.assign(&topics, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn assignors_by_name_and_class_name() {
        for (name, expected) in [
            ("range", "range"),
            ("org.apache.kafka.clients.consumer.RangeAssignor", "range"),
            ("roundrobin", "roundrobin"),
            ("org.apache.kafka.clients.consumer.RoundRobinAssignor", "roundrobin"),
            ("sticky", "sticky"),
            ("org.apache.kafka.clients.consumer.StickyAssignor", "sticky"),
            ("cooperative-sticky", "cooperative-sticky"),
            ("org.apache.kafka.clients.consumer.CooperativeStickyAssignor", "cooperative-sticky"),
        ] {
            assert_eq!(assignor(name).map(|a| a.name()), Some(expected), "{name}");
        }
        assert!(assignor("cooperative").is_none());
        assert!(assignor("Range").is_none());
    }

    /// Runs sticky over members all subscribing to `subscribed`, each with its owned partitions.
    fn sticky(
        topics: &BTreeMap<String, i32>,
        owned: &[(&str, &[(String, i32)])],
        subscribed: &[&str],
    ) -> BTreeMap<String, Vec<(String, i32)>> {
        let subs = owned.iter().map(|(m, o)| ((*m).to_owned(), owning(subscribed, o))).collect();
        StickyAssignor.assign(topics, &subs)
    }

    fn kept(before: &[(String, i32)], after: &[(String, i32)]) -> usize {
        before.iter().filter(|p| after.contains(p)).count()
    }

    #[test]
    fn sticky_keeps_partitions_when_members_leave_and_join() {
        let topics = counts(&[("t", 6)]);
        let first = sticky(&topics, &[("a", &[]), ("b", &[]), ("c", &[])], &["t"]);
        assert!(first.values().all(|ps| ps.len() == 2), "{first:?}");

        // c leaves: a and b keep theirs and split c's two.
        let second = sticky(&topics, &[("a", &first["a"]), ("b", &first["b"])], &["t"]);
        assert_eq!(second["a"].len() + second["b"].len(), 6);
        assert_eq!((second["a"].len(), second["b"].len()), (3, 3));
        for m in ["a", "b"] {
            assert_eq!(kept(&first[m], &second[m]), 2, "{m} kept its own: {second:?}");
        }
        for p in &first["c"] {
            assert!(second["a"].contains(p) || second["b"].contains(p));
        }

        // d joins: it gets two, a and b give up one each and keep the rest.
        let third = sticky(&topics, &[("a", &second["a"]), ("b", &second["b"]), ("d", &[])], &["t"]);
        assert!(third.values().all(|ps| ps.len() == 2), "{third:?}");
        for m in ["a", "b"] {
            assert_eq!(kept(&second[m], &third[m]), 2, "{m}: {third:?}");
        }
    }

    #[test]
    fn sticky_lets_the_lower_member_id_keep_a_doubly_claimed_partition() {
        let topics = counts(&[("t", 4)]);
        let both = [tp("t", 0), tp("t", 1)];
        let out = sticky(&topics, &[("b", &both), ("a", &both)], &["t"]);
        assert_eq!(out["a"], both.to_vec());
        assert_eq!(out["b"], vec![tp("t", 2), tp("t", 3)]);
    }

    #[test]
    fn sticky_ignores_claims_on_unsubscribed_or_missing_partitions() {
        let topics = counts(&[("t", 2), ("u", 3)]);
        let subs = members(vec![
            ("a", owning(&["u"], &[tp("t", 0), tp("t", 1), tp("u", 5)])),
            ("b", owning(&["t", "u"], &[tp("u", 0), tp("u", 1), tp("u", 2)])),
        ]);
        let out = StickyAssignor.assign(&topics, &subs);
        // a may not take t, and its claims count for nothing; b keeps t and one of its u.
        assert_eq!(out["a"].len(), 2, "{out:?}");
        assert!(out["a"].iter().all(|(t, _)| t == "u"), "{out:?}");
        assert_eq!(out["b"].len(), 3, "{out:?}");
        assert!(out["b"].contains(&tp("t", 0)) && out["b"].contains(&tp("t", 1)), "{out:?}");
    }

    #[test]
    fn sticky_balances_differing_subscriptions() {
        // a subscribes to t only, b and c to t and u: u must go to b and c, t balanced overall.
        let topics = counts(&[("t", 6), ("u", 3)]);
        let all_t: Vec<_> = (0..6).map(|p| tp("t", p)).collect();
        let subs = members(vec![
            ("a", owning(&["t"], &[])),
            ("b", owning(&["t", "u"], &all_t)),
            ("c", owning(&["t", "u"], &[])),
        ]);
        let out = StickyAssignor.assign(&topics, &subs);
        assert_eq!(out.values().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 3], "{out:?}");
        assert!(out["a"].iter().all(|(t, _)| t == "t"), "{out:?}");
        // b gives up only what balance needs: it keeps three of its six.
        assert_eq!(kept(&all_t, &out["b"]), 3, "{out:?}");
        assert_eq!(out["c"], vec![tp("u", 0), tp("u", 1), tp("u", 2)]);
    }

    /// A random group: topics (some missing from the counts), members with identical or random
    /// subscriptions, and random (partly invalid, partly conflicting) claims.
    fn random_case(rng: &mut XorShift) -> (BTreeMap<String, i32>, BTreeMap<String, Subscription>) {
        let names = ["t0", "t1", "t2", "t3"];
        let mut topics = BTreeMap::new();
        for name in &names[..1 + rng.below(names.len())] {
            if rng.below(6) != 0 {
                topics.insert((*name).to_owned(), rng.below(9) as i32);
            }
        }
        let identical = rng.below(2) == 0;
        let shared: Vec<&str> = names.iter().copied().filter(|_| rng.below(3) != 0).collect();
        let mut subs = BTreeMap::new();
        for m in 0..1 + rng.below(6) {
            let mine: Vec<&str> = if identical {
                shared.clone()
            } else {
                names.iter().copied().filter(|_| rng.below(2) == 0).collect()
            };
            let mut owned = Vec::new();
            for _ in 0..rng.below(8) {
                let topic = names[rng.below(names.len())];
                owned.push(tp(topic, rng.below(10) as i32));
            }
            subs.insert(format!("m{m}"), owning(&mine, &owned));
        }
        (topics, subs)
    }

    /// Each member's valid claims, computed independently of the assignor.
    fn valid_claims(
        topics: &BTreeMap<String, i32>,
        subs: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, BTreeSet<(String, i32)>> {
        let mut seen = BTreeSet::new();
        let mut out = BTreeMap::new();
        for (m, s) in subs {
            let mut mine = BTreeSet::new();
            for (t, p) in &s.owned_partitions {
                let exists = topics.get(t).is_some_and(|n| *p >= 0 && p < n);
                if exists && s.topics.contains(t) && seen.insert((t.clone(), *p)) {
                    mine.insert((t.clone(), *p));
                }
            }
            out.insert(m.clone(), mine);
        }
        out
    }

    /// Checks validity (and balance where the assignor promises it) for one assignment.
    fn check(
        name: &str,
        topics: &BTreeMap<String, i32>,
        subs: &BTreeMap<String, Subscription>,
        out: &BTreeMap<String, Vec<(String, i32)>>,
    ) {
        let ctx = || format!("{name}: topics {topics:?} subs {subs:?} out {out:?}");
        assert_eq!(out.keys().collect::<Vec<_>>(), subs.keys().collect::<Vec<_>>(), "{}", ctx());
        let mut owner = BTreeMap::new();
        for (m, ps) in out {
            let mut sorted = ps.clone();
            sorted.sort();
            assert_eq!(&sorted, ps, "sorted: {}", ctx());
            for (t, p) in ps {
                assert!(subs[m].topics.contains(t), "only subscribers: {}", ctx());
                assert!(owner.insert((t.clone(), *p), m.clone()).is_none(), "once: {}", ctx());
            }
        }
        let mut expected = BTreeSet::new();
        for (t, n) in topics {
            if subs.values().any(|s| s.topics.contains(t)) {
                expected.extend((0..*n).map(|p| (t.clone(), p)));
            }
        }
        assert_eq!(owner.keys().cloned().collect::<BTreeSet<_>>(), expected, "all assigned: {}", ctx());

        let count = |m: &str| out[m].len();
        let mut sets = subs.values().map(|s| s.topics.iter().collect::<BTreeSet<_>>());
        let identical = sets.next().is_some_and(|first| sets.all(|s| s == first));
        match name {
            "range" => {
                // Per topic: contiguous ranges in member order, sizes differing by at most one.
                for (t, n) in topics {
                    let takers: Vec<&String> =
                        subs.iter().filter(|(_, s)| s.topics.contains(t)).map(|(m, _)| m).collect();
                    let mut next = 0;
                    let sizes: Vec<usize> = takers
                        .iter()
                        .map(|m| {
                            let mine: Vec<i32> =
                                out[*m].iter().filter(|(x, _)| x == t).map(|(_, p)| *p).collect();
                            assert_eq!(
                                mine,
                                (next..next + mine.len() as i32).collect::<Vec<_>>(),
                                "{}",
                                ctx()
                            );
                            next += mine.len() as i32;
                            mine.len()
                        })
                        .collect();
                    if let (Some(max), Some(min)) = (sizes.iter().max(), sizes.iter().min()) {
                        assert!(max - min <= 1, "{}", ctx());
                        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "extras first: {}", ctx());
                        assert_eq!(next, (*n).max(0), "{}", ctx());
                    }
                }
            }
            _ if identical => {
                let max = out.values().map(Vec::len).max().unwrap_or(0);
                let min = out.values().map(Vec::len).min().unwrap_or(0);
                assert!(max - min <= 1, "balanced: {}", ctx());
            }
            "sticky" => {
                // Kafka's criterion: no partition could move to a subscriber with two fewer.
                for (m, ps) in out {
                    for (t, _) in ps {
                        for (other, s) in subs {
                            if s.topics.contains(t) {
                                assert!(count(other) + 2 > count(m), "{m} → {other}: {}", ctx());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        if name == "sticky" && identical && !out.is_empty() {
            let claims = valid_claims(topics, subs);
            let (n, members) = (expected.len(), out.len());
            let (floor, extra) = (n / members, n % members);
            let mut total = 0;
            for (m, mine) in &claims {
                let kept = out[m].iter().filter(|p| mine.contains(*p)).count();
                assert!(kept >= mine.len().min(floor), "{m} keeps its share: {}", ctx());
                total += kept;
            }
            let floors: usize = claims.values().map(|c| c.len().min(floor)).sum();
            let over = claims.values().filter(|c| c.len() > floor).count();
            assert_eq!(total, floors + extra.min(over), "as few moves as possible: {}", ctx());
        }
    }

    #[test]
    fn random_groups_are_assigned_validly() {
        let mut rng = XorShift::new(42);
        let mut identical_sticky = 0;
        for _ in 0..400 {
            let (topics, mut subs) = random_case(&mut rng);
            for assignor in [&RangeAssignor as &dyn Assignor, &RoundRobinAssignor, &StickyAssignor] {
                let out = assignor.assign(&topics, &subs);
                check(assignor.name(), &topics, &subs, &out);
            }
            // Feed sticky its own output back after a member leaves or joins.
            let out = StickyAssignor.assign(&topics, &subs);
            for (m, s) in subs.iter_mut() {
                s.owned_partitions = out[m].clone();
            }
            if rng.below(2) == 0 && subs.len() > 1 {
                let leaving = subs.keys().nth(rng.below(subs.len())).cloned().unwrap_or_default();
                subs.remove(&leaving);
            } else {
                let topics = subs.values().next().map(|s| s.topics.clone()).unwrap_or_default();
                subs.insert("new".into(), Subscription { topics, ..Subscription::default() });
            }
            let again = StickyAssignor.assign(&topics, &subs);
            check("sticky", &topics, &subs, &again);
            let mut sets = subs.values().map(|s| &s.topics);
            identical_sticky += usize::from(sets.next().is_some_and(|f| sets.all(|s| s == f)));
        }
        assert!(identical_sticky > 50, "enough identical-subscription cases: {identical_sticky}");
    }
}

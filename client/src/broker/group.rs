//! A consumer's side of the group protocol (Kafka's `ConsumerCoordinator`): finding the
//! coordinator, joining, running the assignor when this member leads, syncing, heartbeats
//! in a background task, committing and fetching offsets, leaving.
//!
//! The [`Consumer`](super::consumer::Consumer) drives it from `poll`: when the heartbeat
//! task hears that the group is rebalancing (or that this member was removed) it raises a
//! flag, and the next `poll` revokes the partitions, rejoins and takes the new assignment.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_proto::TopicPartition;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::assignor::{assignor, Assignment, Subscription};
use super::cluster::Cluster;
use super::config::ConsumerConfig;
use super::proto::*;

/// Why a group operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The coordinator refused with an error retrying cannot fix (or retrying ran out of
    /// time).
    #[error("group {group}: {error}")]
    Broker {
        /// The group.
        group: String,
        /// The error.
        error: BrokerError,
    },
    /// No coordinator could be reached in time.
    #[error("group {group}: no coordinator within {after:?}; last error: {last_error}")]
    Timeout {
        /// The group.
        group: String,
        /// How long it tried.
        after: Duration,
        /// The last failure.
        last_error: String,
    },
    /// The commit cannot succeed: the group rebalanced and this member's partitions may now
    /// be another's (Kafka's `CommitFailedException`). Poll again to rejoin.
    #[error(
        "group {group}: commit failed because the group rebalanced ({error}); the partitions may \
         have moved to another member — poll again to rejoin, and keep processing between polls \
         shorter than max.poll.interval.ms"
    )]
    CommitFailed {
        /// The group.
        group: String,
        /// The coordinator's answer.
        error: BrokerError,
    },
    /// The leader's assignment or the coordinator's answer does not decode.
    #[error("group {group}: {what}")]
    Protocol {
        /// The group.
        group: String,
        /// What is wrong.
        what: String,
    },
}

/// What the heartbeat task tells the consumer.
#[derive(Debug, Default)]
struct Signals {
    /// The group is rebalancing or this member is out of date: rejoin.
    rejoin: AtomicBool,
    /// The coordinator forgot this member: rejoin as a new member.
    reset_member: AtomicBool,
    /// The coordinator moved: look it up again.
    coordinator_lost: AtomicBool,
}

/// The way to a group's coordinator, shared by the consumer, its heartbeat task and its
/// asynchronous commits.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    group: String,
    cluster: Cluster,
    config: ConsumerConfig,
    coordinator: Arc<Mutex<Option<String>>>,
    signals: Arc<Signals>,
}

impl Link {
    fn err(&self, error: BrokerError) -> GroupError {
        GroupError::Broker { group: self.group.clone(), error }
    }

    /// The coordinator's address, looking it up if unknown.
    async fn coordinator(&self, deadline: Instant) -> Result<String, GroupError> {
        if self.signals.coordinator_lost.swap(false, Ordering::SeqCst) {
            *self.coordinator.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        if let Some(c) = self.coordinator.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(c);
        }
        let c = find_coordinator(&self.cluster, &self.group, deadline).await?;
        *self.coordinator.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }

    fn forget_coordinator(&self) {
        *self.coordinator.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Calls the coordinator, looking it up again and retrying while the answer says it
    /// moved or is loading, until `deadline`.
    async fn call<R, T>(&self, request: R, deadline: Instant, wait: Duration) -> Result<T, GroupError>
    where
        R: sluice_net::Rpc<BrokerProtocol, Reply = Result<T, BrokerError>> + Clone,
    {
        let mut last_error;
        loop {
            let addr = self.coordinator(deadline).await?;
            match self.cluster.net().call_within(&addr, request.clone(), wait).await {
                Ok(Ok(t)) => return Ok(t),
                Ok(Err(e))
                    if e.needs_coordinator_lookup()
                        || matches!(e, BrokerError::CoordinatorLoadInProgress { .. }) =>
                {
                    debug!(group = %self.group, error = %e, "coordinator not ready; looking again");
                    last_error = e.to_string();
                    self.forget_coordinator();
                }
                Ok(Err(e)) => return Err(self.err(e)),
                Err(e) => {
                    debug!(group = %self.group, error = %e, "coordinator call failed; looking again");
                    last_error = e.to_string();
                    self.forget_coordinator();
                }
            }
            if Instant::now() >= deadline {
                return Err(GroupError::Timeout {
                    group: self.group.clone(),
                    after: self.config.client.request_timeout,
                    last_error,
                });
            }
            tokio::time::sleep(self.config.client.retry_backoff).await;
        }
    }

    /// Commits `offsets` (next offsets to read) for this member's generation, or with
    /// generation -1 when it has not joined (manual assignment).
    pub(crate) async fn commit(
        &self,
        generation: i32,
        member_id: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), GroupError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let request = OffsetCommit {
            group_id: self.group.clone(),
            generation_id: generation,
            member_id: member_id.to_string(),
            offsets: offsets
                .iter()
                .map(|(tp, &offset)| CommitOffset::new(tp.topic.clone(), tp.partition, offset))
                .collect(),
        };
        let deadline = Instant::now() + self.config.client.request_timeout;
        loop {
            let results = self.commit_once(&request, deadline).await?;
            let moved = results
                .iter()
                .find_map(|(_, _, r)| r.as_ref().err().filter(|e| e.needs_coordinator_lookup()));
            match moved {
                // The coordinator lost its partition or could not write it: find it again
                // and commit again (the same offsets, so a repeat is harmless).
                Some(e) if Instant::now() < deadline => {
                    debug!(group = %self.group, error = %e, "commit not written; retrying");
                    self.forget_coordinator();
                    tokio::time::sleep(self.config.client.retry_backoff).await;
                }
                _ => {
                    for (_, _, r) in results {
                        r.map_err(|e| self.err(e))?;
                    }
                    return Ok(());
                }
            }
        }
    }

    /// One commit call (through coordinator moves), with the member's errors turned into
    /// `CommitFailed`.
    async fn commit_once(
        &self,
        request: &OffsetCommit,
        deadline: Instant,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, GroupError> {
        match self.call(request.clone(), deadline, self.config.client.request_timeout).await {
            Ok(r) => Ok(r),
            Err(GroupError::Broker { error, .. })
                if matches!(
                    error,
                    BrokerError::RebalanceInProgress { .. }
                        | BrokerError::IllegalGeneration { .. }
                        | BrokerError::UnknownMemberId { .. }
                ) =>
            {
                if !matches!(error, BrokerError::RebalanceInProgress { .. }) {
                    self.signals.reset_member.store(true, Ordering::SeqCst);
                }
                self.signals.rejoin.store(true, Ordering::SeqCst);
                Err(GroupError::CommitFailed { group: self.group.clone(), error })
            }
            Err(e) => Err(e),
        }
    }
}

/// This consumer's membership of its group.
#[derive(Debug)]
pub(crate) struct Membership {
    link: Link,
    member_id: String,
    generation: i32,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl Membership {
    pub(crate) fn new(group: String, cluster: Cluster, config: ConsumerConfig) -> Self {
        let signals = Arc::new(Signals::default());
        signals.rejoin.store(true, Ordering::SeqCst);
        Membership {
            link: Link { group, cluster, config, coordinator: Arc::default(), signals },
            member_id: String::new(),
            generation: -1,
            heartbeat: None,
        }
    }

    /// What an asynchronous commit needs: the link, the generation and the member id.
    pub(crate) fn committer(&self) -> (Link, i32, String) {
        (self.link.clone(), self.generation, self.member_id.clone())
    }

    /// The generation joined (-1 before the first join).
    pub(crate) fn generation(&self) -> i32 {
        self.generation
    }

    /// This member's id (empty before the first join).
    pub(crate) fn member_id(&self) -> &str {
        &self.member_id
    }

    /// Whether the consumer must (re)join before its assignment can be trusted.
    pub(crate) fn needs_rejoin(&self) -> bool {
        self.link.signals.rejoin.load(Ordering::SeqCst)
    }

    /// Asks for a rejoin at the next poll (a new subscription).
    pub(crate) fn request_rejoin(&self) {
        self.link.signals.rejoin.store(true, Ordering::SeqCst);
    }

    /// Joins (or rejoins) the group with `topics` and the partitions owned now; returns the
    /// new assignment. Retries through rebalances and coordinator moves until the rebalance
    /// timeout has passed.
    pub(crate) async fn join(
        &mut self,
        topics: &[String],
        owned: &[TopicPartition],
    ) -> Result<Vec<TopicPartition>, GroupError> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let deadline =
            Instant::now() + self.link.config.max_poll_interval + self.link.config.client.request_timeout;
        let subscription = Subscription {
            topics: topics.to_vec(),
            user_data: None,
            owned_partitions: owned.iter().map(|tp| (tp.topic.clone(), tp.partition)).collect(),
        }
        .encode();
        let protocols: Vec<(String, Vec<u8>)> =
            self.link.config.assignment_strategy.iter().map(|n| (n.clone(), subscription.clone())).collect();
        loop {
            if self.link.signals.reset_member.swap(false, Ordering::SeqCst) {
                self.member_id.clear();
            }
            self.link.signals.rejoin.store(false, Ordering::SeqCst);
            let join = JoinGroup {
                group_id: self.link.group.clone(),
                member_id: self.member_id.clone(),
                client_id: self.link.config.client.client_id.clone(),
                session_timeout_ms: millis(self.link.config.session_timeout),
                rebalance_timeout_ms: millis(self.link.config.max_poll_interval),
                protocol_type: "consumer".into(),
                protocols: protocols.clone(),
            };
            let wait = self.link.config.max_poll_interval + Duration::from_secs(5);
            let joined = match self.link.call(join, deadline, wait).await {
                Ok(j) => j,
                Err(GroupError::Broker { error: BrokerError::UnknownMemberId { .. }, .. }) => {
                    self.member_id.clear();
                    continue;
                }
                Err(GroupError::Broker { error: BrokerError::RebalanceInProgress { .. }, .. }) => continue,
                Err(e) => return Err(e),
            };
            self.member_id = joined.member_id.clone();
            self.generation = joined.generation_id;
            let assignments =
                if joined.leader == joined.member_id { self.assign(&joined).await? } else { Vec::new() };
            let sync = SyncGroup {
                group_id: self.link.group.clone(),
                generation_id: joined.generation_id,
                member_id: joined.member_id.clone(),
                assignments,
            };
            let wait = self.link.config.max_poll_interval + Duration::from_secs(5);
            match self.link.call(sync, deadline, wait).await {
                Ok(bytes) => {
                    let assignment = Assignment::decode(&bytes).map_err(|e| GroupError::Protocol {
                        group: self.link.group.clone(),
                        what: format!("the assignment does not decode: {e}"),
                    })?;
                    let partitions: Vec<TopicPartition> =
                        assignment.partitions.into_iter().map(|(t, p)| TopicPartition::new(t, p)).collect();
                    info!(
                        group = %self.link.group,
                        generation = self.generation,
                        member = %self.member_id,
                        partitions = partitions.len(),
                        "joined the group"
                    );
                    self.start_heartbeat();
                    if self.link.signals.rejoin.load(Ordering::SeqCst) {
                        continue;
                    }
                    return Ok(partitions);
                }
                Err(GroupError::Broker { error: BrokerError::RebalanceInProgress { .. }, .. }) => continue,
                Err(GroupError::Broker {
                    error: BrokerError::UnknownMemberId { .. } | BrokerError::IllegalGeneration { .. },
                    ..
                }) => {
                    self.member_id.clear();
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// As the leader: runs the agreed assignor over every member's subscription.
    async fn assign(&self, joined: &JoinResult) -> Result<Vec<(String, Vec<u8>)>, GroupError> {
        let protocol_error = |what: String| GroupError::Protocol { group: self.link.group.clone(), what };
        let assignor = assignor(&joined.protocol).ok_or_else(|| {
            protocol_error(format!("the group chose assignor {}, which this client lacks", joined.protocol))
        })?;
        let mut subscriptions = BTreeMap::new();
        for (member, metadata) in &joined.members {
            let s = Subscription::decode(metadata).map_err(|e| {
                protocol_error(format!("member {member}'s subscription does not decode: {e}"))
            })?;
            subscriptions.insert(member.clone(), s);
        }
        let mut topics: Vec<String> = subscriptions.values().flat_map(|s| s.topics.iter().cloned()).collect();
        topics.sort();
        topics.dedup();
        let request = MetadataRequest { topics: Some(topics), allow_auto_create: false };
        let metadata = self.link.cluster.fetch_metadata(request).await.map_err(|e| GroupError::Timeout {
            group: self.link.group.clone(),
            after: self.link.config.client.request_timeout,
            last_error: format!("the subscribed topics' metadata: {e}"),
        })?;
        let partitions: BTreeMap<String, i32> = metadata
            .topics
            .iter()
            .filter(|t| t.error.is_none())
            .map(|t| (t.name.clone(), t.partitions.len() as i32))
            .collect();
        let assigned = assignor.assign(&partitions, &subscriptions);
        debug!(group = %self.link.group, assignor = assignor.name(), members = assigned.len(), "assigned partitions as the leader");
        Ok(assigned
            .into_iter()
            .map(|(member, partitions)| (member, Assignment { partitions, user_data: None }.encode()))
            .collect())
    }

    /// Heartbeats every `heartbeat.interval.ms` until aborted; raises the signals when the
    /// coordinator says to rejoin or has moved.
    fn start_heartbeat(&mut self) {
        let (cluster, signals, coordinator) =
            (self.link.cluster.clone(), self.link.signals.clone(), self.link.coordinator.clone());
        let request = Heartbeat {
            group_id: self.link.group.clone(),
            generation_id: self.generation,
            member_id: self.member_id.clone(),
        };
        let interval = self.link.config.heartbeat_interval;
        let timeout = self.link.config.session_timeout;
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let addr = coordinator.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let addr = match addr {
                    Some(a) => a,
                    None => {
                        match find_coordinator(&cluster, &request.group_id, Instant::now() + timeout).await {
                            Ok(a) => {
                                *coordinator.lock().unwrap_or_else(|p| p.into_inner()) = Some(a.clone());
                                a
                            }
                            Err(e) => {
                                debug!(error = %e, "heartbeat: no coordinator");
                                continue;
                            }
                        }
                    }
                };
                match cluster
                    .net()
                    .call_within(&addr, request.clone(), interval.max(Duration::from_secs(1)))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(BrokerError::RebalanceInProgress { .. })) => {
                        signals.rejoin.store(true, Ordering::SeqCst);
                    }
                    Ok(Err(BrokerError::UnknownMemberId { .. } | BrokerError::IllegalGeneration { .. })) => {
                        signals.reset_member.store(true, Ordering::SeqCst);
                        signals.rejoin.store(true, Ordering::SeqCst);
                        return;
                    }
                    Ok(Err(e)) => {
                        debug!(error = %e, "heartbeat refused; looking for the coordinator again");
                        *coordinator.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    }
                    Err(e) => {
                        debug!(error = %e, "heartbeat failed; looking for the coordinator again");
                        *coordinator.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    }
                }
            }
        }));
    }

    /// Commits `offsets` (next offsets to read) for this member's generation, or with
    /// generation -1 when it has not joined (manual assignment).
    pub(crate) async fn commit(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), GroupError> {
        self.link.commit(self.generation, &self.member_id, offsets).await
    }

    /// The group's committed offsets for `partitions` (`None` where there is none).
    pub(crate) async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<i64>>, GroupError> {
        let request = OffsetFetch {
            group_id: self.link.group.clone(),
            partitions: Some(partitions.iter().map(|tp| (tp.topic.clone(), tp.partition)).collect()),
        };
        let deadline = Instant::now() + self.link.config.client.request_timeout;
        let got = self.link.call(request, deadline, self.link.config.client.request_timeout).await?;
        Ok(got
            .into_iter()
            .map(|c| (TopicPartition::new(c.topic, c.partition), (c.offset >= 0).then_some(c.offset)))
            .collect())
    }

    /// Leaves the group (a clean close): the partitions move at once.
    pub(crate) async fn leave(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.member_id.is_empty() {
            return;
        }
        let request =
            LeaveGroup { group_id: self.link.group.clone(), member_ids: vec![self.member_id.clone()] };
        let deadline = Instant::now() + self.link.config.client.request_timeout;
        match self.link.call(request, deadline, self.link.config.client.request_timeout).await {
            Ok(()) => info!(group = %self.link.group, member = %self.member_id, "left the group"),
            Err(e) => {
                warn!(group = %self.link.group, error = %e, "could not leave the group; the coordinator will remove this member after session.timeout.ms")
            }
        }
        self.member_id.clear();
        self.generation = -1;
    }
}

/// Looks up `group`'s coordinator (retrying while `__consumer_offsets` is created or its
/// partition has no leader) until `deadline`.
pub(crate) async fn find_coordinator(
    cluster: &Cluster,
    group: &str,
    deadline: Instant,
) -> Result<String, GroupError> {
    let mut last_error;
    loop {
        match cluster.call_any(FindCoordinator { group_id: group.to_string() }, true).await {
            Ok(b) => return Ok(b.addr()),
            Err(super::ClusterError::Broker(e)) if !e.is_retriable() => {
                return Err(GroupError::Broker { group: group.to_string(), error: e })
            }
            Err(e) => last_error = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(GroupError::Timeout { group: group.to_string(), after: Duration::ZERO, last_error });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

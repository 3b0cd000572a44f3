//! Topic, group and cluster administration: create, delete, list and describe topics;
//! list, describe and delete consumer groups, read and reset their offsets; describe the
//! cluster and topic configs; delete records (each partition's leader).
//!
//! Creates and deletes go to the controller (any broker if it is unknown or unreachable);
//! everything else to any broker. A create is not sent again after a failure mid-call (it
//! may have taken effect). After a successful create, [`Admin::create_topics`] waits,
//! within `request.timeout.ms`, until metadata shows every partition of the new topics
//! with a live leader, as Kafka's tools effectively do, so that a produce right after it
//! finds its leader; a topic that does not get there in time is reported as
//! `RequestTimedOut` (it was created, but is not usable yet).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::cluster::{rpc_is_retriable, Cluster, ClusterError};
use super::config::{ClientConfig, ConfigError};
use super::proto::{
    AclBinding, AclFilter, AlterBrokerConfigs, AlterBrokerDefaults, AlterReassignments, AlterTopicConfigs,
    BrokerEndpoint, BrokerError, CommitOffset, CommittedOffset, ConfigOp, CreateAcls, CreatePartitions,
    CreateTopics, DeleteAcls, DeleteGroups, DeleteRecords, DeleteRecordsPartition, DeleteTopics,
    DescribeAcls, DescribeBrokerConfigs, DescribeBrokerDefaults, DescribeConfigs, DescribeGroups, Election,
    ElectionResults, ElectionType, GroupDescription, GroupOverview, GroupResults, ListGroups,
    ListReassignments, LogDirDescription, LogDirs, Metadata, MetadataRequest, NewTopic, OffsetCommit,
    OffsetFetch, Reassigning, ReassignmentResults, TopicConfigs, TopicMetadata, TopicResults,
};
use super::TopicPartition;

/// Why an admin request failed as a whole (per-topic failures are in the results).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The configuration is incomplete or its TLS files unusable.
    #[error(transparent)]
    Config(ConfigError),
    /// No broker answered, the request was refused, or the call failed.
    #[error(transparent)]
    Cluster(ClusterError),
}

impl From<ClusterError> for AdminError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Config(c) => AdminError::Config(c),
            other => AdminError::Cluster(other),
        }
    }
}

impl From<ConfigError> for AdminError {
    fn from(e: ConfigError) -> Self {
        AdminError::Config(e)
    }
}

/// The cluster as a broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller, if there is one.
    pub controller: Option<BrokerEndpoint>,
    /// Live brokers, by id.
    pub brokers: Vec<BrokerEndpoint>,
}

/// A partition's log start after DeleteRecords (Kafka's low watermark), or why it did not
/// move.
pub type LowWatermark = Result<i64, BrokerError>;

/// An admin client.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Cluster,
}

/// Why a created topic is not usable yet, or `None` when every partition has a live leader
/// (and, when the count was asked for, there are that many).
fn not_ready(md: &Metadata, name: &str, expected_partitions: Option<usize>) -> Option<String> {
    let Some(t) = md.topics.iter().find(|t| t.name == name) else {
        return Some(format!("topic {name} is not in the metadata yet"));
    };
    if let Some(e) = &t.error {
        return Some(e.to_string());
    }
    if t.partitions.is_empty() {
        return Some(format!("topic {name} has no partitions yet"));
    }
    if let Some(n) = expected_partitions.filter(|&n| n != t.partitions.len()) {
        return Some(format!("topic {name} shows {} of {n} partitions", t.partitions.len()));
    }
    let live = |id: i32| md.brokers.iter().any(|b| b.id == id);
    let leaderless: Vec<String> = t
        .partitions
        .iter()
        .filter(|p| !p.leader.is_some_and(live))
        .map(|p| p.partition.to_string())
        .collect();
    (!leaderless.is_empty())
        .then(|| format!("partitions {} of {name} have no leader yet", leaderless.join(", ")))
}

impl Admin {
    /// An admin client for `config`'s cluster (reads the TLS files now, connects on first
    /// use).
    pub fn new(config: ClientConfig) -> Result<Admin, AdminError> {
        Ok(Admin { cluster: Cluster::new(&config, false)? })
    }

    /// The shared cluster handle.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Creates topics (or, with `validate_only`, checks that they could be). Returns each
    /// topic's outcome in request order; see the module docs for the wait after a create.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "CreateTopics", otel.kind = "client"))]
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<TopicResults, AdminError> {
        let expected: HashMap<String, Option<usize>> = topics
            .iter()
            .map(|t| {
                let n = t.partitions.map(|p| p.max(0) as usize).or(t.assignment.as_ref().map(|a| a.len()));
                (t.name.clone(), n)
            })
            .collect();
        let mut results = self.cluster.call_controller(CreateTopics { topics, validate_only }).await?;
        if validate_only {
            return Ok(results);
        }
        let created: Vec<String> =
            results.iter().filter(|(_, r)| r.is_ok()).map(|(n, _)| n.clone()).collect();
        if created.is_empty() {
            return Ok(results);
        }
        let timeout = self.cluster.config().request_timeout;
        let unready = self.wait_for_leaders(&created, &expected, timeout).await;
        for (name, result) in &mut results {
            if let Some(reason) = unready.get(name) {
                *result = Err(BrokerError::RequestTimedOut {
                    what: format!("topic {name} was created, but {reason}"),
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
        }
        Ok(results)
    }

    /// Polls metadata until every topic in `names` has all its partitions led, or `timeout`
    /// passes; returns the topics that did not get there, with why.
    async fn wait_for_leaders(
        &self,
        names: &[String],
        expected: &HashMap<String, Option<usize>>,
        timeout: Duration,
    ) -> HashMap<String, String> {
        let deadline = Instant::now() + timeout;
        let backoff = self.cluster.config().retry_backoff.max(Duration::from_millis(10));
        loop {
            let request = MetadataRequest { topics: Some(names.to_vec()), allow_auto_create: false };
            let unready: HashMap<String, String> = match self.cluster.fetch_metadata(request).await {
                Ok(md) => names
                    .iter()
                    .filter_map(|n| {
                        not_ready(&md, n, expected.get(n).copied().flatten()).map(|r| (n.clone(), r))
                    })
                    .collect(),
                Err(e) => {
                    let reason = format!("its metadata could not be read: {e}");
                    let unready = names.iter().map(|n| (n.clone(), reason.clone())).collect();
                    if !e.is_retriable() {
                        return unready;
                    }
                    unready
                }
            };
            let now = Instant::now();
            if unready.is_empty() || now >= deadline {
                return unready;
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
        }
    }

    /// Deletes topics (the cluster must allow it: `delete.topic.enable`).
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DeleteTopics", otel.kind = "client"))]
    pub async fn delete_topics(&self, topics: Vec<String>) -> Result<TopicResults, AdminError> {
        Ok(self.cluster.call_controller(DeleteTopics { topics }).await?)
    }

    /// Topic names, sorted; the cluster's internal topics only if `include_internal`.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "ListTopics", otel.kind = "client"))]
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>, AdminError> {
        let md =
            self.cluster.fetch_metadata(MetadataRequest { topics: None, allow_auto_create: false }).await?;
        let mut names: Vec<String> =
            md.topics.into_iter().filter(|t| include_internal || !t.internal).map(|t| t.name).collect();
        names.sort();
        Ok(names)
    }

    /// Describes topics. A topic that cannot be described (unknown, say) comes back with its
    /// `error` set rather than failing the whole call.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DescribeTopics", otel.kind = "client"))]
    pub async fn describe_topics(&self, topics: Vec<String>) -> Result<Vec<TopicMetadata>, AdminError> {
        let request = MetadataRequest { topics: Some(topics), allow_auto_create: false };
        Ok(self.cluster.fetch_metadata(request).await?.topics)
    }

    /// The cluster id, the controller and the live brokers.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DescribeCluster", otel.kind = "client"))]
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, AdminError> {
        let request = MetadataRequest { topics: Some(Vec::new()), allow_auto_create: false };
        let md = self.cluster.fetch_metadata(request).await?;
        let controller = md.controller_id.and_then(|id| md.brokers.iter().find(|b| b.id == id).cloned());
        let mut brokers = md.brokers;
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterDescription { cluster_id: md.cluster_id, controller, brokers })
    }

    /// Every consumer group, from every live broker (each lists the groups it coordinates).
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "ListGroups", otel.kind = "client"))]
    pub async fn list_groups(&self) -> Result<Vec<GroupOverview>, AdminError> {
        let md = self
            .cluster
            .fetch_metadata(MetadataRequest { topics: Some(Vec::new()), allow_auto_create: false })
            .await?;
        let mut out = Vec::new();
        for b in &md.brokers {
            match self.cluster.call(&b.addr(), ListGroups {}).await {
                Ok(Ok(groups)) => out.extend(groups),
                Ok(Err(e)) => return Err(ClusterError::Broker(e).into()),
                Err(e) => return Err(ClusterError::Rpc(e).into()),
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// The coordinator of `group`'s address.
    async fn coordinator(&self, group: &str) -> Result<String, AdminError> {
        let deadline = tokio::time::Instant::now() + self.cluster.config().request_timeout;
        super::group::find_coordinator(&self.cluster, group, deadline).await.map_err(|e| {
            AdminError::Cluster(ClusterError::Timeout {
                what: format!("the coordinator of group {group}"),
                after: self.cluster.config().request_timeout,
                last_error: Some(e.to_string()),
            })
        })
    }

    /// Calls `group`'s coordinator, looking it up again while it moves or loads.
    async fn call_coordinator<R, T>(&self, group: &str, request: R) -> Result<T, AdminError>
    where
        R: sluice_net::Rpc<super::proto::BrokerProtocol, Reply = Result<T, BrokerError>> + Clone,
    {
        let deadline = Instant::now() + self.cluster.config().request_timeout;
        loop {
            let addr = self.coordinator(group).await?;
            let e = match self.cluster.call(&addr, request.clone()).await {
                Ok(Ok(t)) => return Ok(t),
                Ok(Err(e)) if e.is_retriable() => ClusterError::Broker(e),
                Ok(Err(e)) => return Err(ClusterError::Broker(e).into()),
                Err(e) => ClusterError::Rpc(e),
            };
            if Instant::now() >= deadline {
                return Err(e.into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Describes groups (state, assignor, members and their assignments). A group nobody
    /// has used is described as `Dead` with no members, as Kafka does.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DescribeGroups", otel.kind = "client"))]
    pub async fn describe_groups(
        &self,
        groups: Vec<String>,
    ) -> Result<Vec<Result<GroupDescription, BrokerError>>, AdminError> {
        let mut out = Vec::new();
        for g in groups {
            let mut d = self.call_coordinator(&g, DescribeGroups { groups: vec![g.clone()] }).await?;
            out.push(d.pop().unwrap_or(Err(BrokerError::GroupIdNotFound { group: g })));
        }
        Ok(out)
    }

    /// A group's committed offsets (every partition it has one for).
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "ListGroupOffsets", otel.kind = "client"))]
    pub async fn list_group_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>, AdminError> {
        self.call_coordinator(group, OffsetFetch { group_id: group.into(), partitions: None }).await
    }

    /// Sets a group's committed offsets (Kafka's `--reset-offsets --execute`): only while
    /// the group has no members (`RebalanceInProgress`/`UnknownMemberId` otherwise).
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: Vec<CommitOffset>,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, AdminError> {
        use tracing::Instrument as _;
        let request =
            OffsetCommit { group_id: group.into(), generation_id: -1, member_id: String::new(), offsets };
        let span = tracing::info_span!("admin", otel.name = "AlterGroupOffsets", otel.kind = "client");
        self.call_coordinator(group, request).instrument(span).await
    }

    /// Deletes empty groups and their offsets.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DeleteGroups", otel.kind = "client"))]
    pub async fn delete_groups(&self, groups: Vec<String>) -> Result<GroupResults, AdminError> {
        let mut out = Vec::new();
        for g in groups {
            let mut r = self.call_coordinator(&g, DeleteGroups { groups: vec![g.clone()] }).await?;
            out.push(r.pop().unwrap_or((g.clone(), Err(BrokerError::GroupIdNotFound { group: g }))));
        }
        Ok(out)
    }

    /// Deletes the records below each offset (Kafka's DeleteRecords; `-1`: everything
    /// committed). Each partition's log start moves there: on its leader at once, on its
    /// followers at their next fetch; consumers positioned below it reset by their
    /// `auto.offset.reset`. Returns each partition's new log start (Kafka's low watermark)
    /// or why not, in request order. A leader that moved is found again within
    /// `request.timeout.ms`.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DeleteRecords", otel.kind = "client"))]
    pub async fn delete_records(
        &self,
        offsets: Vec<(TopicPartition, i64)>,
    ) -> Result<Vec<(TopicPartition, LowWatermark)>, AdminError> {
        let timeout = self.cluster.config().request_timeout;
        let deadline = Instant::now() + timeout;
        let mut results: Vec<Option<LowWatermark>> = vec![None; offsets.len()];
        loop {
            let pending: Vec<usize> = (0..offsets.len())
                .filter(|&i| {
                    results[i].as_ref().is_none_or(|r| r.as_ref().is_err_and(BrokerError::is_retriable))
                })
                .collect();
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            let mut by_leader: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for &i in &pending {
                let tp = &offsets[i].0;
                match self.cluster.leader_addr(&tp.topic, tp.partition).await {
                    Ok(addr) => by_leader.entry(addr).or_default().push(i),
                    Err(ClusterError::Broker(e)) => results[i] = Some(Err(e)),
                    Err(e) if e.is_retriable() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            for (addr, at) in by_leader {
                let partitions = at
                    .iter()
                    .map(|&i| DeleteRecordsPartition {
                        topic: offsets[i].0.topic.clone(),
                        partition: offsets[i].0.partition,
                        offset: offsets[i].1,
                    })
                    .collect();
                match self.cluster.call(&addr, DeleteRecords { partitions }).await {
                    Ok(Ok(deleted)) => {
                        for (i, d) in at.into_iter().zip(deleted) {
                            results[i] = Some(d.result);
                        }
                    }
                    Ok(Err(e)) if !e.is_retriable() => return Err(ClusterError::Broker(e).into()),
                    Ok(Err(_)) => {}
                    Err(e) if rpc_is_retriable(&e) => {}
                    Err(e) => return Err(ClusterError::Rpc(e).into()),
                }
            }
            if results
                .iter()
                .any(|r| r.as_ref().is_none_or(|r| r.as_ref().is_err_and(BrokerError::is_retriable)))
            {
                let topics: Vec<String> = offsets.iter().map(|(tp, _)| tp.topic.clone()).collect();
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = tokio::time::timeout(left, self.cluster.refresh(&topics)).await;
            }
        }
        Ok(offsets
            .into_iter()
            .zip(results)
            .map(|((tp, _), r)| {
                let r = r.unwrap_or_else(|| {
                    Err(BrokerError::RequestTimedOut {
                        what: format!("a leader of {tp} to take the deletion"),
                        timeout_ms: timeout.as_millis() as u64,
                    })
                });
                (tp, r)
            })
            .collect())
    }

    /// Moves the leadership of `partitions` (`None`: every partition) to their preferred
    /// replica, through the controller (kafka-leader-election.sh `--election-type
    /// preferred`). Per partition: done, `ElectionNotNeeded` (it leads already), or why not.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "ElectLeaders", otel.kind = "client"))]
    pub async fn elect_preferred_leaders(
        &self,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<ElectionResults, AdminError> {
        self.elect_leaders(ElectionType::Preferred, partitions).await
    }

    /// An election of `kind` of `partitions` (`None`: every partition), through the
    /// controller (kafka-leader-election.sh `--election-type preferred|unclean`). Unclean:
    /// a partition without a live leader gets its first live replica, in sync or not (what
    /// that replica lacks is lost); per partition: done, `ElectionNotNeeded` (it has a
    /// leader), `EligibleLeadersNotAvailable` (no live replica), or why not.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "ElectLeaders", otel.kind = "client"))]
    pub async fn elect_leaders(
        &self,
        kind: ElectionType,
        partitions: Option<Vec<TopicPartition>>,
    ) -> Result<ElectionResults, AdminError> {
        let partitions = partitions.map(|ps| ps.into_iter().map(|tp| (tp.topic, tp.partition)).collect());
        Ok(self.cluster.call_any(Election { kind, partitions }, true).await?)
    }

    /// Every live broker's log directories and the partitions in them (kafka-log-dirs.sh),
    /// by broker id; `brokers` limits it to those ids.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DescribeLogDirs", otel.kind = "client"))]
    pub async fn describe_log_dirs(
        &self,
        brokers: Option<&[i32]>,
    ) -> Result<BTreeMap<i32, Vec<LogDirDescription>>, AdminError> {
        let cluster = self.describe_cluster().await?;
        let mut out = BTreeMap::new();
        for b in cluster.brokers.iter().filter(|b| brokers.is_none_or(|ids| ids.contains(&b.id))) {
            match self.cluster.call(&b.addr(), LogDirs {}).await {
                Ok(Ok(dirs)) => {
                    out.insert(b.id, dirs);
                }
                Ok(Err(e)) => return Err(ClusterError::Broker(e).into()),
                Err(e) => return Err(ClusterError::Rpc(e).into()),
            }
        }
        Ok(out)
    }

    /// Changes `topic`'s config overrides, op by op (Kafka's IncrementalAlterConfigs:
    /// kafka-configs.sh `--alter --add-config k=v --delete-config k`). Every broker applies
    /// the change without a restart.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "IncrementalAlterConfigs", otel.kind = "client"))]
    pub async fn alter_topic_configs(&self, topic: &str, ops: Vec<ConfigOp>) -> Result<(), AdminError> {
        let request = AlterTopicConfigs { topic: topic.to_string(), ops, validate_only: false };
        Ok(self.cluster.call_any(request, true).await?)
    }

    /// Grows `topic` to `count` partitions (kafka-topics.sh `--alter --partitions`);
    /// `assignment` places the new ones (broker ids per new partition, preferred leader
    /// first), else the cluster does.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "CreatePartitions", otel.kind = "client"))]
    pub async fn create_partitions(
        &self,
        topic: &str,
        count: i32,
        assignment: Option<Vec<Vec<i32>>>,
    ) -> Result<(), AdminError> {
        let request = CreatePartitions { topic: topic.to_string(), count, assignment, validate_only: false };
        Ok(self.cluster.call_any(request, true).await?)
    }

    /// Adds ACLs (kafka-acls.sh `--add`); per ACL, done or why not. Needs Alter on the
    /// cluster (or `super.users`).
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "CreateAcls", otel.kind = "client"))]
    pub async fn create_acls(
        &self,
        acls: Vec<AclBinding>,
    ) -> Result<Vec<Result<(), BrokerError>>, AdminError> {
        Ok(self.cluster.call_any(CreateAcls { acls }, true).await?)
    }

    /// The ACLs `filter` takes (kafka-acls.sh `--list`), as the broker asked holds them
    /// (each broker's copy follows the keeper within a second). Needs Describe on the
    /// cluster.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DescribeAcls", otel.kind = "client"))]
    pub async fn describe_acls(&self, filter: AclFilter) -> Result<Vec<AclBinding>, AdminError> {
        Ok(self.cluster.call_any(DescribeAcls { filter }, true).await?)
    }

    /// Removes the ACLs each filter takes (kafka-acls.sh `--remove`); per filter, those
    /// removed. Needs Alter on the cluster.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DeleteAcls", otel.kind = "client"))]
    pub async fn delete_acls(
        &self,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Result<Vec<AclBinding>, BrokerError>>, AdminError> {
        Ok(self.cluster.call_any(DeleteAcls { filters }, true).await?)
    }

    /// Topics' config overrides (keys not listed take the brokers' defaults).
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DescribeConfigs", otel.kind = "client"))]
    pub async fn describe_configs(&self, topics: Vec<String>) -> Result<TopicConfigs, AdminError> {
        Ok(self.cluster.call_any(DescribeConfigs { topics }, true).await?)
    }

    /// Changes the cluster-wide dynamic broker defaults (kafka-configs.sh `--alter
    /// --entity-type brokers --entity-default`): every broker applies them without a restart,
    /// under each topic's own overrides. Keys: `sluice_broker_core::topic::DYNAMIC_BROKER_KEYS`
    /// (`log.retention.ms`, `min.insync.replicas`, ...).
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "AlterBrokerDefaults", otel.kind = "client"))]
    pub async fn alter_broker_defaults(&self, ops: Vec<ConfigOp>) -> Result<(), AdminError> {
        Ok(self.cluster.call_any(AlterBrokerDefaults { ops, validate_only: false }, true).await?)
    }

    /// Moves partitions' replicas (kafka-reassign-partitions.sh `--execute`): each
    /// (topic, partition, target replicas), the preferred leader first. The answer comes
    /// once the controller has the moves, with each partition's outcome; the replicas move
    /// with their data (new ones catch up before they join the ISR, old ones are deleted
    /// after). [`Admin::list_reassignments`] shows the moves still in progress.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "AlterPartitionReassignments", otel.kind = "client"))]
    pub async fn alter_reassignments(
        &self,
        moves: Vec<(String, i32, Vec<i32>)>,
    ) -> Result<ReassignmentResults, AdminError> {
        Ok(self.cluster.call_any(AlterReassignments { moves }, true).await?)
    }

    /// The partition moves still in progress (`None`: of every partition).
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "ListPartitionReassignments", otel.kind = "client"))]
    pub async fn list_reassignments(
        &self,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<Reassigning>, AdminError> {
        Ok(self.cluster.call_any(ListReassignments { partitions }, true).await?)
    }

    /// Changes broker `broker`'s own dynamic configs (kafka-configs.sh `--alter --entity-type
    /// brokers --entity-name ID`): the keys of [`Admin::alter_broker_defaults`], over the
    /// cluster-wide defaults, on that broker only, without a restart.
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "AlterBrokerConfigs", otel.kind = "client"))]
    pub async fn alter_broker_configs(&self, broker: i32, ops: Vec<ConfigOp>) -> Result<(), AdminError> {
        Ok(self.cluster.call_any(AlterBrokerConfigs { broker, ops, validate_only: false }, true).await?)
    }

    /// Broker `broker`'s own dynamic configs (empty when none is set).
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DescribeBrokerConfigs", otel.kind = "client"))]
    pub async fn describe_broker_configs(&self, broker: i32) -> Result<BTreeMap<String, String>, AdminError> {
        Ok(self.cluster.call_any(DescribeBrokerConfigs { broker }, true).await?)
    }

    /// The cluster-wide dynamic broker defaults (empty when none is set).
    #[tracing::instrument(name = "admin", skip_all, fields(otel.name = "DescribeBrokerDefaults", otel.kind = "client"))]
    pub async fn describe_broker_defaults(&self) -> Result<BTreeMap<String, String>, AdminError> {
        Ok(self.cluster.call_any(DescribeBrokerDefaults {}, true).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::proto::PartitionMetadata;
    use super::*;

    fn md(partitions: Vec<Option<i32>>, brokers: &[i32], error: Option<BrokerError>) -> Metadata {
        Metadata {
            cluster_id: "c".into(),
            controller_id: Some(1),
            brokers: brokers
                .iter()
                .map(|&id| BrokerEndpoint {
                    id,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    listeners: Vec::new(),
                })
                .collect(),
            topics: vec![TopicMetadata {
                name: "t".into(),
                error,
                internal: false,
                partitions: partitions
                    .into_iter()
                    .enumerate()
                    .map(|(i, leader)| PartitionMetadata {
                        partition: i as i32,
                        leader,
                        leader_epoch: 0,
                        replicas: vec![],
                        isr: vec![],
                        offline_replicas: vec![],
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn a_created_topic_is_ready_once_every_partition_has_a_live_leader() {
        assert_eq!(not_ready(&md(vec![Some(1), Some(2)], &[1, 2], None), "t", Some(2)), None);
        assert_eq!(not_ready(&md(vec![Some(1), Some(2)], &[1, 2], None), "t", None), None);
        assert_eq!(
            not_ready(&md(vec![Some(1), None, Some(3)], &[1, 2], None), "t", Some(3)).as_deref(),
            Some("partitions 1, 2 of t have no leader yet"),
            "no leader, or a leader that is not live"
        );
        assert_eq!(
            not_ready(&md(vec![Some(1)], &[1], None), "t", Some(3)).as_deref(),
            Some("topic t shows 1 of 3 partitions")
        );
        let err = BrokerError::LeaderNotAvailable { topic: "t".into(), partition: -1 };
        assert!(not_ready(&md(vec![], &[1], Some(err)), "t", None).is_some_and(|r| r.contains("no leader")));
        assert_eq!(
            not_ready(&md(vec![], &[1], None), "u", None).as_deref(),
            Some("topic u is not in the metadata yet")
        );
    }
}

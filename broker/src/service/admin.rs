//! Cluster and topic administration: metadata, topic creation (assignment, validation) and
//! deletion, topic configs, the controller's cluster updates and controlled shutdown.

use std::collections::{BTreeMap, BTreeSet};

use sluice_actors::broker::replica_manager::{current, Apply};
use sluice_broker_core::acl::{Operation, ResourceType};
use sluice_broker_core::metadata::{BrokerEndpoint, ClusterUpdate};
use sluice_broker_core::{assignment, topic, znodes, BrokerError};
use sluice_client::keeper::{KeeperClient, KeeperClientError};
use sluice_keeper_core::{CreateMode, KeeperError};
use sluice_net::Peer;
use sluice_proto::broker::*;
use sluice_proto::interbroker::*;
use tracing::{debug, info};

use super::{keeper_error, BrokerService};

impl BrokerService {
    pub(crate) async fn create_topic(
        &self,
        keeper: &KeeperClient,
        update: Option<&ClusterUpdate>,
        t: &NewTopic,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        topic::validate_name(&t.name)?;
        if topic::is_internal(&t.name) && t.name != OFFSETS_TOPIC {
            return Err(BrokerError::InvalidRequest {
                reason: format!("{} is an internal topic; the cluster creates it itself", t.name),
            });
        }
        topic::validate_config_keys(&t.configs)?;
        self.inner.config.topic_log_config(&t.configs)?;
        // Live brokers as the keeper has them now (Kafka's AdminZkClient reads them from
        // ZooKeeper too): right after a broker died, this broker's cached picture may still
        // list it, and a partition assigned to it would have no leader.
        let brokers = live_brokers(keeper).await?;
        let assignment = match &t.assignment {
            Some(a) => {
                if t.partitions.is_some() || t.replication_factor.is_some() {
                    return Err(BrokerError::InvalidRequest {
                        reason: "give either a replica assignment or partitions and replication factor"
                            .into(),
                    });
                }
                check_assignment(a, &brokers)?;
                a.clone()
            }
            None => {
                let partitions = t.partitions.unwrap_or(self.inner.config.num_partitions);
                let rf = t.replication_factor.unwrap_or(self.inner.config.default_replication_factor);
                assignment::assign(&brokers, partitions, rf, rand::random::<u16>() as usize)?
            }
        };
        if validate_only {
            return Ok(());
        }
        if update.is_some_and(|u| u.topics.contains_key(&t.name)) {
            return Err(BrokerError::TopicAlreadyExists { topic: t.name.clone() });
        }
        // This broker's picture may not have the topic yet: ask the keeper, so a second
        // create of an existing topic does not overwrite its config below.
        if keeper.exists(&znodes::topic_path(&t.name), false).await.map_err(keeper_error)?.is_some() {
            return Err(BrokerError::TopicAlreadyExists { topic: t.name.clone() });
        }
        let config_data = znodes::encode_topic_config(&t.configs);
        match keeper.create(&znodes::config_path(&t.name), &config_data, CreateMode::Persistent).await {
            Ok(_) => {}
            Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {
                keeper
                    .set_data(&znodes::config_path(&t.name), &config_data, -1)
                    .await
                    .map_err(keeper_error)?;
            }
            Err(e) => return Err(keeper_error(e)),
        }
        let data = znodes::encode_assignment(&assignment);
        match keeper.create(&znodes::topic_path(&t.name), &data, CreateMode::Persistent).await {
            Ok(_) => {
                info!(topic = %t.name, partitions = assignment.len(), "topic created");
                Ok(())
            }
            Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {
                Err(BrokerError::TopicAlreadyExists { topic: t.name.clone() })
            }
            Err(e) => Err(keeper_error(e)),
        }
    }
    pub(crate) fn partition_metadata(
        update: &ClusterUpdate,
        t: &sluice_broker_core::TopicState,
    ) -> TopicMetadata {
        TopicMetadata {
            name: t.name.clone(),
            error: None,
            internal: topic::is_internal(&t.name),
            partitions: t
                .partitions
                .iter()
                .map(|(p, info)| PartitionMetadata {
                    partition: *p,
                    leader: info.state.as_ref().and_then(|s| s.leader()),
                    leader_epoch: info.state.as_ref().map_or(-1, |s| s.leader_epoch),
                    replicas: info.replicas.clone(),
                    isr: info.state.as_ref().map_or_else(Vec::new, |s| s.isr.clone()),
                    offline_replicas: update.offline_replicas(&t.name, *p, &info.replicas),
                })
                .collect(),
        }
    }
    /// Metadata of the topics asked for (all: those the caller may Describe). A topic asked
    /// for by name that the caller may not Describe answers TOPIC_AUTHORIZATION_FAILED; an
    /// unknown one is created only if the caller may Create it.
    pub(crate) async fn metadata(&self, peer: &Peer, req: MetadataRequest) -> Result<Metadata, BrokerError> {
        let routing = current(&self.inner.routing);
        let Some(update) = routing.update.clone() else {
            return Ok(Metadata {
                cluster_id: String::new(),
                controller_id: None,
                brokers: vec![],
                topics: vec![],
            });
        };
        let names: Vec<String> = match &req.topics {
            Some(names) => names.clone(),
            None => update
                .topics
                .keys()
                .filter(|t| self.allowed(peer, Operation::Describe, ResourceType::Topic, t))
                .cloned()
                .collect(),
        };
        let mut topics = Vec::new();
        for name in names {
            if let Err(e) = self.check_topic(peer, Operation::Describe, &name) {
                topics.push(TopicMetadata { name, error: Some(e), internal: false, partitions: vec![] });
                continue;
            }
            if let Some(t) = update.topics.get(&name) {
                topics.push(Self::partition_metadata(&update, t));
                continue;
            }
            let unknown = BrokerError::UnknownTopicOrPartition { topic: name.clone(), partition: -1 };
            let error = if update.deleting.contains(&name) {
                unknown
            } else if req.allow_auto_create
                && self.inner.config.auto_create_topics_enable
                && self.check_create_topic(peer, &name).is_ok()
            {
                let new = NewTopic {
                    name: name.clone(),
                    partitions: None,
                    replication_factor: None,
                    assignment: None,
                    configs: BTreeMap::new(),
                };
                let keeper = self.keeper()?;
                match self.create_topic(&keeper, Some(&update), &new, false).await {
                    Ok(()) | Err(BrokerError::TopicAlreadyExists { .. }) => {
                        BrokerError::LeaderNotAvailable { topic: name.clone(), partition: -1 }
                    }
                    Err(e) => e,
                }
            } else {
                unknown
            };
            topics.push(TopicMetadata { name, error: Some(error), internal: false, partitions: vec![] });
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Metadata {
            cluster_id: update.cluster_id.clone(),
            controller_id: Some(update.controller_id),
            brokers: update.brokers.clone(),
            topics,
        })
    }
    pub(crate) async fn create_topics(
        &self,
        peer: &Peer,
        req: CreateTopics,
    ) -> Result<TopicResults, BrokerError> {
        let keeper = self.keeper()?;
        let routing = current(&self.inner.routing);
        let mut out = Vec::new();
        for t in &req.topics {
            if let Err(e) = self.check_create_topic(peer, &t.name) {
                out.push((t.name.clone(), Err(e)));
                continue;
            }
            if t.name == OFFSETS_TOPIC {
                let reason = format!("{OFFSETS_TOPIC} is an internal topic; the cluster creates it itself");
                out.push((t.name.clone(), Err(BrokerError::InvalidRequest { reason })));
                continue;
            }
            let r = self.create_topic(&keeper, routing.update.as_deref(), t, req.validate_only).await;
            out.push((t.name.clone(), r));
        }
        Ok(out)
    }
    pub(crate) async fn delete_topics(
        &self,
        peer: &Peer,
        req: DeleteTopics,
    ) -> Result<TopicResults, BrokerError> {
        if !self.inner.config.delete_topic_enable {
            return Err(BrokerError::TopicDeletionDisabled { broker: self.id() });
        }
        let keeper = self.keeper()?;
        let mut out = Vec::new();
        for name in req.topics {
            let r = async {
                topic::validate_name(&name)?;
                self.check_topic(peer, Operation::Delete, &name)?;
                if topic::is_internal(&name) {
                    return Err(BrokerError::InvalidRequest {
                        reason: format!("{name} is an internal topic"),
                    });
                }
                if keeper.exists(&znodes::topic_path(&name), false).await.map_err(keeper_error)?.is_none() {
                    return Err(BrokerError::UnknownTopicOrPartition { topic: name.clone(), partition: -1 });
                }
                match keeper.create(&znodes::delete_path(&name), &[], CreateMode::Persistent).await {
                    Ok(_) | Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => {
                        info!(topic = %name, "topic marked for deletion");
                        Ok(())
                    }
                    Err(e) => Err(keeper_error(e)),
                }
            }
            .await;
            out.push((name, r));
        }
        Ok(out)
    }
    pub(crate) async fn describe_configs(
        &self,
        peer: &Peer,
        req: DescribeConfigs,
    ) -> Result<TopicConfigs, BrokerError> {
        let keeper = self.keeper()?;
        let mut out = Vec::new();
        for name in req.topics {
            if let Err(e) = self.check_topic(peer, Operation::DescribeConfigs, &name) {
                out.push((name, Err(e)));
                continue;
            }
            let r = match keeper.get_data(&znodes::config_path(&name), false).await {
                Ok((data, _)) => znodes::decode_topic_config(&name, &data)
                    .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() }),
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {
                    match keeper.exists(&znodes::topic_path(&name), false).await {
                        Ok(Some(_)) => Ok(BTreeMap::new()),
                        Ok(None) => {
                            Err(BrokerError::UnknownTopicOrPartition { topic: name.clone(), partition: -1 })
                        }
                        Err(e) => Err(keeper_error(e)),
                    }
                }
                Err(e) => Err(keeper_error(e)),
            };
            out.push((name, r));
        }
        Ok(out)
    }
    pub(crate) async fn update_cluster(&self, _: &Peer, req: UpdateCluster) -> Result<(), BrokerError> {
        debug!(epoch = req.0.controller_epoch, sequence = req.0.sequence, "cluster update");
        self.inner
            .replicas
            .send(Apply(req.0))
            .await
            .map_err(|_| BrokerError::BrokerShuttingDown { broker: self.id() })?
    }
    pub(crate) async fn controlled_shutdown(
        &self,
        _: &Peer,
        req: ControlledShutdown,
    ) -> Result<u32, BrokerError> {
        let controller = self.inner.controller.lock().map_or_else(|p| p.into_inner().clone(), |c| c.clone());
        let Some(controller) = controller else {
            return Err(BrokerError::NotController { broker: self.id() });
        };
        info!(broker = req.broker_id, "controlled shutdown asked for");
        controller
            .send(sluice_actors::broker::controller::BeginShutdown(req.broker_id))
            .await
            .map_err(|_| BrokerError::NotController { broker: self.id() })?
    }
    /// On the controller: move `partitions` back to their preferred replicas.
    pub(crate) async fn elect_here(
        &self,
        kind: ElectionType,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError> {
        let controller = self.inner.controller.lock().map_or_else(|p| p.into_inner().clone(), |c| c.clone());
        let Some(controller) = controller else {
            return Err(BrokerError::NotController { broker: self.id() });
        };
        info!(partitions = partitions.len(), kind = kind.name(), "leader election asked for");
        controller
            .send(sluice_actors::broker::controller::Elect { kind, partitions })
            .await
            .map_err(|_| BrokerError::NotController { broker: self.id() })?
    }
    /// From any broker: preferred-leader elections of `partitions` (`None`: every partition
    /// of every topic), asked of the controller (this broker, or the one `/controller`
    /// names).
    pub(crate) async fn elect_leaders(
        &self,
        peer: &Peer,
        kind: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError> {
        self.check_cluster(peer, Operation::Alter)?;
        let routing = current(&self.inner.routing);
        let partitions = match partitions {
            Some(p) => p,
            None => routing
                .update
                .as_deref()
                .map(|u| {
                    u.topics
                        .values()
                        .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        match self.elect_here(kind, partitions.clone()).await {
            Err(BrokerError::NotController { .. }) => {}
            other => return other,
        }
        let keeper = self.keeper()?;
        let (data, _) = keeper.get_data(znodes::CONTROLLER, false).await.map_err(keeper_error)?;
        let id = znodes::decode_controller(&data)
            .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() })?;
        let addr = routing
            .update
            .as_deref()
            .and_then(|u| u.broker(id))
            .map(|b| b.addr())
            .ok_or(BrokerError::NotController { broker: id })?;
        match self.inner.interbroker.call(&addr, Elect { kind, partitions }).await {
            Ok(answer) => answer,
            Err(e) => {
                Err(BrokerError::KeeperUnavailable { reason: format!("the controller, broker {id}: {e}") })
            }
        }
    }
}

/// The brokers registered in the keeper now.
impl BrokerService {
    /// Announces that `topic`'s config or partitions changed, for the controller.
    async fn announce_topic_change(&self, keeper: &KeeperClient, topic: &str) -> Result<(), BrokerError> {
        keeper
            .create(
                znodes::CONFIG_CHANGE_PREFIX,
                &znodes::encode_topic_change(topic),
                CreateMode::PersistentSequential,
            )
            .await
            .map_err(keeper_error)?;
        Ok(())
    }

    /// Changes `topic`'s config overrides (Kafka's AlterConfigs when `ops` is `None` and
    /// `replace` holds the whole new set; IncrementalAlterConfigs with `ops`). Checked as at
    /// creation; written to `/config/topics/<t>` (conditionally on the version read), then
    /// announced so the controller passes it to every broker, whose logs take it.
    pub(crate) async fn alter_topic_configs(
        &self,
        peer: &Peer,
        name: &str,
        change: Result<BTreeMap<String, String>, Vec<topic::ConfigOp>>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.check_topic(peer, Operation::AlterConfigs, name)?;
        let keeper = self.keeper()?;
        match keeper.exists(&znodes::topic_path(name), false).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(BrokerError::UnknownTopicOrPartition { topic: name.to_string(), partition: -1 })
            }
            Err(e) => return Err(keeper_error(e)),
        }
        let config = self.inner.config.clone();
        let new = self
            .rewrite_config(
                &keeper,
                &znodes::config_path(name),
                |data| znodes::decode_topic_config(name, data),
                |current| {
                    let new = match &change {
                        Ok(replace) => {
                            topic::validate_config_keys(replace)?;
                            replace.clone()
                        }
                        Err(ops) => topic::apply_config_ops(current, ops)?,
                    };
                    config.topic_log_config(&new)?;
                    Ok(new)
                },
                validate_only,
                &znodes::encode_topic_change(name),
            )
            .await?;
        if let Some(new) = new {
            info!(topic = %name, configs = ?new, "topic config changed");
        }
        Ok(())
    }

    /// A config znode (Kafka's config JSON at `path`) read, changed by `change`, and written
    /// back conditionally on the version read (read again on a conflict, up to 5 times), then
    /// announced with `notification` under `/config/changes`. The new configs, or `None` when
    /// `validate_only` (nothing written).
    #[allow(clippy::too_many_arguments)]
    async fn rewrite_config(
        &self,
        keeper: &KeeperClient,
        path: &str,
        decode: impl Fn(&[u8]) -> Result<BTreeMap<String, String>, znodes::ZnodeError>,
        change: impl Fn(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, BrokerError>,
        validate_only: bool,
        notification: &[u8],
    ) -> Result<Option<BTreeMap<String, String>>, BrokerError> {
        for _attempt in 0..5 {
            let (current, version) = match keeper.get_data(path, false).await {
                Ok((data, stat)) => (
                    decode(&data).map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() })?,
                    Some(stat.version),
                ),
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => (BTreeMap::new(), None),
                Err(e) => return Err(keeper_error(e)),
            };
            let new = change(&current)?;
            if validate_only {
                return Ok(None);
            }
            let data = znodes::encode_topic_config(&new);
            let written = match version {
                Some(v) => keeper.set_data(path, &data, v).await.map(|_| ()),
                None => keeper.create(path, &data, CreateMode::Persistent).await.map(|_| ()),
            };
            match written {
                Ok(()) => {
                    keeper
                        .create(znodes::CONFIG_CHANGE_PREFIX, notification, CreateMode::PersistentSequential)
                        .await
                        .map_err(keeper_error)?;
                    return Ok(Some(new));
                }
                // Someone else changed it meanwhile: read again.
                Err(KeeperClientError::Keeper(
                    KeeperError::BadVersion { .. } | KeeperError::NodeExists { .. },
                )) => {}
                Err(e) => return Err(keeper_error(e)),
            }
        }
        Err(BrokerError::KeeperUnavailable { reason: format!("{path} kept changing under this write") })
    }

    /// The cluster-wide dynamic broker defaults (`/config/brokers/<default>`), or with
    /// `broker` that broker's own dynamic configs (`/config/brokers/<id>`).
    pub(crate) async fn describe_broker_configs(
        &self,
        peer: &Peer,
        broker: Option<i32>,
    ) -> Result<BTreeMap<String, String>, BrokerError> {
        self.check_cluster(peer, Operation::DescribeConfigs)?;
        let keeper = self.keeper()?;
        let path =
            broker.map_or_else(|| znodes::BROKER_DEFAULT_CONFIG.to_string(), znodes::broker_config_path);
        match keeper.get_data(&path, false).await {
            Ok((data, _)) => znodes::decode_broker_config(&path, &data)
                .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() }),
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => Ok(BTreeMap::new()),
            Err(e) => Err(keeper_error(e)),
        }
    }

    /// Changes the cluster-wide dynamic broker defaults: checked (keys that change while the
    /// cluster runs, values a topic would accept), written conditionally on the znode's
    /// version, then announced; the controller hands them to every broker.
    ///
    /// With `broker`, that broker's own dynamic configs instead (`/config/brokers/<id>`, the
    /// same keys; Kafka's `--entity-name ID`): over the defaults, on that broker only. The
    /// broker must be live.
    pub(crate) async fn alter_broker_configs(
        &self,
        peer: &Peer,
        broker: Option<i32>,
        ops: &[topic::ConfigOp],
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.check_cluster(peer, Operation::AlterConfigs)?;
        let keeper = self.keeper()?;
        if let Some(id) = broker {
            if !live_brokers(&keeper).await?.iter().any(|b| b.id == id) {
                return Err(BrokerError::InvalidRequest {
                    reason: format!(
                        "broker {id} is not a live broker; its dynamic configs are set while it runs"
                    ),
                });
            }
        }
        let config = self.inner.config.clone();
        let (path, notification) = match broker {
            None => (znodes::BROKER_DEFAULT_CONFIG.to_string(), znodes::encode_broker_default_change()),
            Some(id) => (znodes::broker_config_path(id), znodes::encode_broker_change(id)),
        };
        let new = self
            .rewrite_config(
                &keeper,
                &path,
                |data| znodes::decode_broker_config(&path, data),
                |current| {
                    let new = topic::apply_broker_default_ops(current, ops)?;
                    config.topic_log_config(&topic::effective_configs(&new, &BTreeMap::new()))?;
                    Ok(new)
                },
                validate_only,
                &notification,
            )
            .await?;
        if let Some(new) = new {
            match broker {
                None => info!(configs = ?new, "cluster-wide broker defaults changed"),
                Some(id) => info!(broker = id, configs = ?new, "a broker's own dynamic configs changed"),
            }
        }
        Ok(())
    }

    /// Adds partitions to `name` up to `count` (Kafka's CreatePartitions), placed by
    /// `assignment` (one replica list per new partition) or by the broker's assignment rule
    /// over the live brokers with the topic's replication factor.
    pub(crate) async fn create_partitions(
        &self,
        peer: &Peer,
        name: &str,
        count: i32,
        assignment: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.check_topic(peer, Operation::Alter, name)?;
        let keeper = self.keeper()?;
        if topic::is_internal(name) {
            return Err(BrokerError::InvalidRequest {
                reason: format!("{name} is an internal topic; its partition count is the cluster's"),
            });
        }
        let (data, stat) = match keeper.get_data(&znodes::topic_path(name), false).await {
            Ok(r) => r,
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {
                return Err(BrokerError::UnknownTopicOrPartition { topic: name.to_string(), partition: -1 })
            }
            Err(e) => return Err(keeper_error(e)),
        };
        let mut current = znodes::decode_assignment(name, &data)
            .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() })?;
        let have = current.len() as i32;
        topic::check_partition_growth(name, have, count)?;
        let rf = current.values().next().map_or(1, Vec::len) as i16;
        let brokers = live_brokers(&keeper).await?;
        let added: BTreeMap<i32, Vec<i32>> = match assignment {
            Some(lists) => {
                if lists.len() as i32 != count - have {
                    return Err(BrokerError::InvalidRequest {
                        reason: format!("{} replica lists for {} new partitions", lists.len(), count - have),
                    });
                }
                lists.into_iter().enumerate().map(|(i, r)| (have + i as i32, r)).collect()
            }
            None => assignment::assign(&brokers, count, rf, rand::random::<u16>() as usize)?
                .into_iter()
                .filter(|(p, _)| *p >= have)
                .collect(),
        };
        current.extend(added);
        check_assignment(&current, &brokers)?;
        if validate_only {
            return Ok(());
        }
        match keeper
            .set_data(&znodes::topic_path(name), &znodes::encode_assignment(&current), stat.version)
            .await
        {
            Ok(_) => {}
            Err(KeeperClientError::Keeper(KeeperError::BadVersion { .. })) => {
                return Err(BrokerError::InvalidRequest {
                    reason: format!("{name}'s partitions changed meanwhile; ask again"),
                })
            }
            Err(e) => return Err(keeper_error(e)),
        }
        self.announce_topic_change(&keeper, name).await?;
        info!(topic = %name, from = have, to = count, "partitions added");
        Ok(())
    }
}

/// Partition reassignments (kafka-reassign-partitions.sh; Kafka's
/// AlterPartitionReassignments and ListPartitionReassignments).
impl BrokerService {
    /// Records moves in `/admin/reassign_partitions` for the controller, each checked first:
    /// the partition exists, the target is distinct live brokers. Moves already in progress
    /// for other partitions stay; a partition asked again gets the new target.
    pub(crate) async fn alter_reassignments(
        &self,
        peer: &Peer,
        moves: Vec<(String, i32, Vec<i32>)>,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError> {
        self.check_cluster(peer, Operation::Alter)?;
        let keeper = self.keeper()?;
        let brokers = live_brokers(&keeper).await?;
        let mut assignments: BTreeMap<String, Option<BTreeMap<i32, Vec<i32>>>> = BTreeMap::new();
        let mut results = Vec::new();
        let mut accepted = BTreeMap::new();
        for (topic, partition, target) in moves {
            if !assignments.contains_key(&topic) {
                assignments.insert(topic.clone(), read_assignment(&keeper, &topic).await?);
            }
            let exists =
                assignments.get(&topic).and_then(Option::as_ref).is_some_and(|a| a.contains_key(&partition));
            let result = if !exists {
                Err(BrokerError::UnknownTopicOrPartition { topic: topic.clone(), partition })
            } else {
                check_target(&target, &brokers)
            };
            if result.is_ok() {
                accepted.insert((topic.clone(), partition), target);
            }
            results.push((topic, partition, result));
        }
        if accepted.is_empty() {
            return Ok(results);
        }
        // Merge into what is in progress, conditional on the version read.
        for _ in 0..10 {
            let (mut targets, version) = match keeper.get_data(znodes::REASSIGN_PARTITIONS, false).await {
                Ok((data, stat)) => {
                    let r = znodes::decode_reassignment(znodes::REASSIGN_PARTITIONS, &data)
                        .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() })?;
                    (r.targets(), Some(stat.version))
                }
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => (BTreeMap::new(), None),
                Err(e) => return Err(keeper_error(e)),
            };
            targets.extend(accepted.clone());
            let data = znodes::encode_reassignment(&znodes::Reassignment::from_targets(&targets));
            let written = match version {
                Some(v) => keeper.set_data(znodes::REASSIGN_PARTITIONS, &data, v).await.map(|_| ()),
                None => keeper
                    .create(znodes::REASSIGN_PARTITIONS, &data, CreateMode::Persistent)
                    .await
                    .map(|_| ()),
            };
            match written {
                Ok(()) => {
                    info!(partitions = accepted.len(), "partition reassignment recorded");
                    return Ok(results);
                }
                Err(KeeperClientError::Keeper(
                    KeeperError::BadVersion { .. }
                    | KeeperError::NodeExists { .. }
                    | KeeperError::NoNode { .. },
                )) => continue,
                Err(e) => return Err(keeper_error(e)),
            }
        }
        Err(BrokerError::KeeperUnavailable {
            reason: format!("{} kept changing; ask again", znodes::REASSIGN_PARTITIONS),
        })
    }

    /// The moves in progress, with each partition's replicas now.
    pub(crate) async fn list_reassignments(
        &self,
        peer: &Peer,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<Reassigning>, BrokerError> {
        self.check_cluster(peer, Operation::Describe)?;
        let keeper = self.keeper()?;
        let targets = match keeper.get_data(znodes::REASSIGN_PARTITIONS, false).await {
            Ok((data, _)) => znodes::decode_reassignment(znodes::REASSIGN_PARTITIONS, &data)
                .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() })?
                .targets(),
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => BTreeMap::new(),
            Err(e) => return Err(keeper_error(e)),
        };
        let routing = current(&self.inner.routing);
        let mut out = Vec::new();
        let mut assignments: BTreeMap<String, Option<BTreeMap<i32, Vec<i32>>>> = BTreeMap::new();
        for ((topic, partition), target) in targets {
            if partitions.as_ref().is_some_and(|only| !only.contains(&(topic.clone(), partition))) {
                continue;
            }
            if !assignments.contains_key(&topic) {
                assignments.insert(topic.clone(), read_assignment(&keeper, &topic).await?);
            }
            let Some(replicas) =
                assignments.get(&topic).and_then(Option::as_ref).and_then(|a| a.get(&partition)).cloned()
            else {
                continue;
            };
            if replicas != target {
                let isr = routing
                    .update
                    .as_deref()
                    .and_then(|u| u.topics.get(&topic))
                    .and_then(|t| t.partitions.get(&partition))
                    .and_then(|i| i.state.as_ref())
                    .map(|s| s.isr.clone())
                    .unwrap_or_default();
                let adding =
                    target.iter().copied().filter(|b| !replicas.contains(b) || !isr.contains(b)).collect();
                let removing = replicas.iter().copied().filter(|b| !target.contains(b)).collect();
                out.push(Reassigning { topic, partition, replicas, target, adding, removing });
            }
        }
        Ok(out)
    }
}

/// A topic's replica assignment (`/brokers/topics/<t>`); `None` for an unknown topic.
async fn read_assignment(
    keeper: &KeeperClient,
    topic: &str,
) -> Result<Option<BTreeMap<i32, Vec<i32>>>, BrokerError> {
    match keeper.get_data(&znodes::topic_path(topic), false).await {
        Ok((data, _)) => znodes::decode_assignment(topic, &data)
            .map(Some)
            .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() }),
        Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => Ok(None),
        Err(e) => Err(keeper_error(e)),
    }
}

fn check_target(target: &[i32], brokers: &[BrokerEndpoint]) -> Result<(), BrokerError> {
    let invalid = |reason: String| Err(BrokerError::InvalidReplicaAssignment { reason });
    if target.is_empty() {
        return invalid("the target replica list is empty".into());
    }
    let distinct: BTreeSet<_> = target.iter().collect();
    if distinct.len() != target.len() {
        return invalid(format!("{target:?} lists a broker twice"));
    }
    if let Some(r) = target.iter().find(|r| !brokers.iter().any(|b| b.id == **r)) {
        return invalid(format!("broker {r} is not a live broker"));
    }
    Ok(())
}

pub(crate) async fn live_brokers(keeper: &KeeperClient) -> Result<Vec<BrokerEndpoint>, BrokerError> {
    let mut out = Vec::new();
    for id in keeper.children(znodes::BROKER_IDS, false).await.map_err(keeper_error)? {
        let Ok(id) = id.parse::<i32>() else { continue };
        match keeper.get_data(&znodes::broker_path(id), false).await {
            Ok((data, _)) => out.push(
                znodes::decode_broker(id, &data)
                    .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() })?,
            ),
            Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {}
            Err(e) => return Err(keeper_error(e)),
        }
    }
    Ok(out)
}

fn check_assignment(a: &BTreeMap<i32, Vec<i32>>, brokers: &[BrokerEndpoint]) -> Result<(), BrokerError> {
    let invalid = |reason: String| Err(BrokerError::InvalidRequest { reason });
    if a.is_empty() {
        return invalid("the replica assignment is empty".into());
    }
    let rf = a.values().next().map_or(0, Vec::len);
    for (i, (p, replicas)) in a.iter().enumerate() {
        if *p != i as i32 {
            return invalid(format!("partitions must be numbered 0..{} without gaps", a.len()));
        }
        if replicas.len() != rf || replicas.is_empty() {
            return invalid("every partition needs the same number (at least 1) of replicas".into());
        }
        let distinct: BTreeSet<_> = replicas.iter().collect();
        if distinct.len() != replicas.len() {
            return invalid(format!("partition {p} lists a broker twice"));
        }
        if let Some(r) = replicas.iter().find(|r| !brokers.iter().any(|b| b.id == **r)) {
            return invalid(format!("partition {p}: broker {r} is not a live broker"));
        }
    }
    Ok(())
}

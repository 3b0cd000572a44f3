//! Consumer groups: finding the coordinator (creating `__consumer_offsets` on first use) and
//! handing group requests to the group's coordinator actor.

use actix::Addr;
use sluice_actors::broker::group_coordinator::{
    CommitMsg, DeleteMsg, DeleteOffsetsMsg, DescribeMsg, FetchOffsetsMsg, GroupCoordinator, HeartbeatMsg,
    JoinMsg, LeaveMsg, SyncMsg,
};
use sluice_actors::broker::group_manager::{AllGroups, Route};
use sluice_actors::broker::replica_manager::current;
use sluice_broker_core::acl::{Operation, ResourceType, CLUSTER_NAME};
use sluice_broker_core::metadata::{BrokerEndpoint, ClusterUpdate};
use sluice_broker_core::BrokerError;
use sluice_net::Peer;
use sluice_proto::broker::*;

use super::admin::live_brokers;
use super::BrokerService;

impl BrokerService {
    /// Creates `__consumer_offsets` (Kafka creates it on the first FindCoordinator):
    /// `offsets.topic.num.partitions` partitions, `offsets.topic.replication.factor`
    /// replicas, compacted.
    pub(crate) async fn create_offsets_topic(
        &self,
        update: Option<&ClusterUpdate>,
    ) -> Result<(), BrokerError> {
        let keeper = self.keeper()?;
        let c = &self.inner.config;
        let live = live_brokers(&keeper).await?.len();
        let unavailable = |why: String| BrokerError::CoordinatorNotAvailable { group: String::new(), why };
        if live < c.offsets_topic_replication_factor.max(1) as usize {
            return Err(unavailable(format!(
                "{live} live brokers do not meet the replication factor {} of {OFFSETS_TOPIC} \
                 (offsets.topic.replication.factor; a single-broker cluster needs 1)",
                c.offsets_topic_replication_factor
            )));
        }
        let t = NewTopic {
            name: OFFSETS_TOPIC.into(),
            partitions: Some(c.offsets_topic_num_partitions),
            replication_factor: Some(c.offsets_topic_replication_factor),
            assignment: None,
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into_iter().collect(),
        };
        match self.create_topic(&keeper, update, &t, false).await {
            Ok(()) | Err(BrokerError::TopicAlreadyExists { .. }) => Ok(()),
            Err(e) => Err(unavailable(format!("creating {OFFSETS_TOPIC}: {e}"))),
        }
    }
    /// The actor of `group` on this broker (`create`: start an empty one if there is none).
    pub(crate) async fn group(
        &self,
        group: &str,
        create: bool,
    ) -> Result<Option<Addr<GroupCoordinator>>, BrokerError> {
        let gone = || BrokerError::CoordinatorNotAvailable {
            group: group.into(),
            why: "the broker is stopping".into(),
        };
        self.inner.groups.send(Route { group: group.into(), create }).await.map_err(|_| gone())?
    }
    /// The actor of an existing `group`; a member of a group that is not here is unknown.
    pub(crate) async fn member_group(
        &self,
        group: &str,
        member: &str,
    ) -> Result<Addr<GroupCoordinator>, BrokerError> {
        self.group(group, false)
            .await?
            .ok_or_else(|| BrokerError::UnknownMemberId { group: group.into(), member: member.into() })
    }
    pub(crate) async fn find_coordinator(
        &self,
        peer: &Peer,
        req: FindCoordinator,
    ) -> Result<BrokerEndpoint, BrokerError> {
        let group = req.group_id;
        if group.is_empty() {
            return Err(BrokerError::InvalidGroupId { group, why: "a group id must not be empty".into() });
        }
        self.check_group(peer, Operation::Describe, &group)?;
        let unavailable = |why: String| BrokerError::CoordinatorNotAvailable { group: group.clone(), why };
        let routing = current(&self.inner.routing);
        let Some(update) = routing.update.as_deref() else {
            return Err(unavailable("this broker has no cluster metadata yet".into()));
        };
        let Some(t) = update.topics.get(OFFSETS_TOPIC) else {
            self.create_offsets_topic(Some(update)).await.map_err(|e| match e {
                BrokerError::CoordinatorNotAvailable { why, .. } => unavailable(why),
                e => e,
            })?;
            return Err(unavailable(format!("{OFFSETS_TOPIC} is being created")));
        };
        let p = sluice_broker_core::group_log::partition_for(
            &group,
            self.inner.config.offsets_topic_num_partitions,
        );
        let leader = t.partitions.get(&p).and_then(|i| i.state.as_ref()).and_then(|s| s.leader());
        let Some(leader) = leader else {
            return Err(unavailable(format!("{OFFSETS_TOPIC}-{p} has no leader yet")));
        };
        update
            .brokers
            .iter()
            .find(|b| b.id == leader)
            .cloned()
            .ok_or_else(|| unavailable(format!("{OFFSETS_TOPIC}-{p}'s leader {leader} is not live")))
    }
    pub(crate) async fn join_group(&self, peer: &Peer, req: JoinGroup) -> Result<JoinResult, BrokerError> {
        self.check_group(peer, Operation::Read, &req.group_id)?;
        let addr =
            self.group(&req.group_id, true).await?.ok_or_else(|| BrokerError::CoordinatorNotAvailable {
                group: req.group_id.clone(),
                why: "the group could not be started".into(),
            })?;
        let join = sluice_broker_core::group::Join {
            member_id: req.member_id,
            new_member_id: format!("{}-{:032x}", req.client_id, rand::random::<u128>()),
            client_id: req.client_id,
            client_host: format!("{}@{}", peer.principal.name, peer.remote),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
        };
        let moved = || BrokerError::NotCoordinator { group: req.group_id.clone(), broker: self.id() };
        let rx = addr.send(JoinMsg(join)).await.map_err(|_| moved())?;
        rx.await.map_err(|_| moved())?
    }
    pub(crate) async fn sync_group(&self, peer: &Peer, req: SyncGroup) -> Result<Vec<u8>, BrokerError> {
        self.check_group(peer, Operation::Read, &req.group_id)?;
        let addr = self.member_group(&req.group_id, &req.member_id).await?;
        let moved = || BrokerError::NotCoordinator { group: req.group_id.clone(), broker: self.id() };
        let msg = SyncMsg {
            member: req.member_id.clone(),
            generation: req.generation_id,
            assignments: req.assignments,
        };
        let rx = addr.send(msg).await.map_err(|_| moved())?;
        rx.await.map_err(|_| moved())?
    }
    pub(crate) async fn heartbeat(&self, peer: &Peer, req: Heartbeat) -> Result<(), BrokerError> {
        self.check_group(peer, Operation::Read, &req.group_id)?;
        let addr = self.member_group(&req.group_id, &req.member_id).await?;
        let msg = HeartbeatMsg { member: req.member_id, generation: req.generation_id };
        addr.send(msg)
            .await
            .map_err(|_| BrokerError::NotCoordinator { group: req.group_id, broker: self.id() })?
    }
    pub(crate) async fn leave_group(&self, peer: &Peer, req: LeaveGroup) -> Result<(), BrokerError> {
        self.check_group(peer, Operation::Read, &req.group_id)?;
        let first = req.member_ids.first().cloned().unwrap_or_default();
        let addr = self.member_group(&req.group_id, &first).await?;
        addr.send(LeaveMsg(req.member_ids))
            .await
            .map_err(|_| BrokerError::NotCoordinator { group: req.group_id, broker: self.id() })?
    }
    pub(crate) async fn offset_commit(
        &self,
        peer: &Peer,
        req: OffsetCommit,
    ) -> Result<Vec<(String, i32, Result<(), BrokerError>)>, BrokerError> {
        // Read on the group, and on each topic (a refused topic's partitions answer
        // TOPIC_AUTHORIZATION_FAILED; the rest are committed).
        self.check_group(peer, Operation::Read, &req.group_id)?;
        let mut offsets = Vec::with_capacity(req.offsets.len());
        let mut refused = Vec::new();
        for o in req.offsets {
            match self.check_topic(peer, Operation::Read, &o.topic) {
                Ok(()) => offsets.push(o),
                Err(e) => refused.push((o.topic, o.partition, Err(e))),
            }
        }
        if offsets.is_empty() {
            return Ok(refused);
        }
        let Some(addr) = self.group(&req.group_id, true).await? else {
            return Err(BrokerError::CoordinatorNotAvailable {
                group: req.group_id,
                why: "the group could not be started".into(),
            });
        };
        let msg = CommitMsg { member: req.member_id, generation: req.generation_id, offsets };
        let mut out = addr
            .send(msg)
            .await
            .map_err(|_| BrokerError::NotCoordinator { group: req.group_id, broker: self.id() })??;
        out.extend(refused);
        Ok(out)
    }
    pub(crate) async fn offset_fetch(
        &self,
        peer: &Peer,
        req: OffsetFetch,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        // Describe on the group; offsets of topics the caller may not Describe are left out
        // (asked for by name, they read as not committed).
        self.check_group(peer, Operation::Describe, &req.group_id)?;
        let every = req.partitions.is_none();
        let mut offsets = self.committed(req).await?;
        if every {
            offsets.retain(|o| self.allowed(peer, Operation::Describe, ResourceType::Topic, &o.topic));
        }
        for o in &mut offsets {
            if o.offset >= 0 && !self.allowed(peer, Operation::Describe, ResourceType::Topic, &o.topic) {
                o.offset = -1;
                o.leader_epoch = -1;
                o.metadata.clear();
            }
        }
        Ok(offsets)
    }
    async fn committed(&self, req: OffsetFetch) -> Result<Vec<CommittedOffset>, BrokerError> {
        match self.group(&req.group_id, false).await? {
            Some(addr) => addr
                .send(FetchOffsetsMsg(req.partitions))
                .await
                .map_err(|_| BrokerError::NotCoordinator { group: req.group_id, broker: self.id() }),
            None => Ok(req
                .partitions
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partition)| CommittedOffset {
                    topic,
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                })
                .collect()),
        }
    }
    pub(crate) async fn list_groups(
        &self,
        peer: &Peer,
        _: ListGroups,
    ) -> Result<Vec<GroupOverview>, BrokerError> {
        // Describe on the cluster lists every group; otherwise those the caller may Describe.
        let all = self.allowed(peer, Operation::Describe, ResourceType::Cluster, CLUSTER_NAME);
        let stopping = || BrokerError::CoordinatorNotAvailable {
            group: String::new(),
            why: "the broker is stopping".into(),
        };
        let groups = self.inner.groups.send(AllGroups).await.map_err(|_| stopping())?;
        let mut out = Vec::new();
        for g in groups {
            if let Ok((overview, _)) = g.send(DescribeMsg).await {
                if overview.state != "Dead"
                    && (all
                        || self.allowed(peer, Operation::Describe, ResourceType::Group, &overview.group_id))
                {
                    out.push(overview);
                }
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }
    pub(crate) async fn describe_groups(
        &self,
        peer: &Peer,
        req: DescribeGroups,
    ) -> Result<Vec<Result<GroupDescription, BrokerError>>, BrokerError> {
        let mut out = Vec::new();
        for group in req.groups {
            let found = match self.check_group(peer, Operation::Describe, &group) {
                Ok(()) => self.group(&group, false).await,
                Err(e) => Err(e),
            };
            let described = match found {
                Err(e) => Err(e),
                Ok(Some(addr)) => addr
                    .send(DescribeMsg)
                    .await
                    .map(|(_, d)| d)
                    .map_err(|_| BrokerError::NotCoordinator { group: group.clone(), broker: self.id() }),
                // Kafka describes a group it does not have as Dead with no members.
                Ok(None) => Ok(GroupDescription {
                    group_id: group.clone(),
                    state: "Dead".into(),
                    protocol_type: String::new(),
                    protocol: String::new(),
                    generation_id: -1,
                    leader: String::new(),
                    members: vec![],
                }),
            };
            out.push(described);
        }
        Ok(out)
    }
    pub(crate) async fn delete_groups(
        &self,
        peer: &Peer,
        req: DeleteGroups,
    ) -> Result<GroupResults, BrokerError> {
        let mut out = Vec::new();
        for group in req.groups {
            let found = match self.check_group(peer, Operation::Delete, &group) {
                Ok(()) => self.group(&group, false).await,
                Err(e) => Err(e),
            };
            let r = match found {
                Err(e) => Err(e),
                Ok(None) => Err(BrokerError::GroupIdNotFound { group: group.clone() }),
                Ok(Some(addr)) => addr
                    .send(DeleteMsg)
                    .await
                    .map_err(|_| BrokerError::NotCoordinator { group: group.clone(), broker: self.id() })
                    .and_then(|r| r),
            };
            out.push((group, r));
        }
        Ok(out)
    }
    /// Deletes `group`'s committed offsets of `partitions` (Kafka's OffsetDelete): each
    /// partition's outcome, or the group's error.
    pub(crate) async fn delete_offsets(
        &self,
        peer: &Peer,
        group: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        self.check_group(peer, Operation::Delete, group)?;
        for (topic, _) in &partitions {
            self.check_topic(peer, Operation::Read, topic)?;
        }
        match self.group(group, false).await? {
            None => Err(BrokerError::GroupIdNotFound { group: group.to_string() }),
            Some(addr) => addr
                .send(DeleteOffsetsMsg(partitions))
                .await
                .map_err(|_| BrokerError::NotCoordinator { group: group.to_string(), broker: self.id() }),
        }
    }
}

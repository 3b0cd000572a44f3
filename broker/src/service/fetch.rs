//! Reads: the consumers' and followers' fetch long poll, `ListOffsets`, the followers'
//! `OffsetsForLeaderEpoch`, and `DeleteRecords` (which moves where reads may start).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use sluice_actors::broker::log_manager::TickNow;
use sluice_actors::broker::partition::{
    DeleteRecords as PartitionDeleteRecords, EpochEndOffset, FollowerFetch, ListOffset, Offsets, Read,
};
use sluice_actors::broker::replica_manager::current;
use sluice_broker_core::acl::{Operation, ResourceType, CLUSTER_NAME};
use sluice_broker_core::fetch::{answer_now, FetchBudget, PartitionRead};
use sluice_broker_core::BrokerError;
use sluice_net::Peer;
use sluice_proto::broker::*;
use sluice_proto::interbroker::*;

use super::BrokerService;

/// Room left in a fetch reply's frame for everything but record bytes (envelope, topic
/// names, offsets, errors).
pub(super) const FETCH_REPLY_OVERHEAD: usize = 64 << 10;

impl BrokerService {
    /// A consumer's (`replica` `None`) or a follower's fetch: a long poll over the
    /// partitions asked for, answered once `min_bytes` are there, one partition fails, or
    /// `max_wait_ms` passes. A follower's read is not bounded by the high watermark, and
    /// reports its position to the leader (which is how the high watermark moves). Each
    /// partition comes with the follower's leader epoch (`None` for a consumer).
    pub(crate) async fn fetch_loop(
        &self,
        peer: &Peer,
        wanted: Vec<(FetchPartition, Option<i32>)>,
        max_wait_ms: u32,
        min_bytes: u32,
        max_bytes: u32,
        replica: Option<i32>,
    ) -> Result<FetchResponse, BrokerError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(max_wait_ms));
        // Each partition's last answer with nothing to read, and where it stood then: while
        // it has not moved, a later pass of the long poll answers the same without asking
        // its actor again (a wake-up for one partition does not cost a read of every other).
        let mut idle: Vec<Option<(Offsets, FetchedPartition)>> = vec![None; wanted.len()];
        // A consumer needs Read on each topic (a follower's ClusterAction was checked by its
        // handler); a refused partition answers at once with its error.
        let refused: Vec<Option<BrokerError>> = wanted
            .iter()
            .map(|(p, _)| match replica {
                Some(_) => None,
                None => self.check_topic(peer, Operation::Read, &p.topic).err(),
            })
            .collect();
        loop {
            let routing = current(&self.inner.routing);
            let mut out = Vec::with_capacity(wanted.len());
            let mut budget = FetchBudget::new(max_bytes, self.inner.fetch_reply_limit);
            let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send>>> = Vec::new();
            let mut failed = false;
            for (i, (p, leader_epoch)) in wanted.iter().enumerate() {
                let mut fetched = FetchedPartition {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    error: None,
                    high_watermark: -1,
                    log_start_offset: -1,
                    records: Bytes::new(),
                    traces: Vec::new(),
                };
                if let Some(e) = &refused[i] {
                    fetched.error = Some(e.clone());
                    failed = true;
                    out.push(fetched);
                    continue;
                }
                let leader = match self.route(&routing, &p.topic, p.partition) {
                    Ok(l) => l,
                    Err(e) => {
                        fetched.error = Some(e);
                        failed = true;
                        out.push(fetched);
                        continue;
                    }
                };
                let mut rx = leader.offsets.clone();
                let now = *rx.borrow_and_update();
                if let Some((_, same)) = idle[i].as_ref().filter(|(o, _)| *o == now) {
                    out.push(same.clone());
                    waits.push(Box::pin(async move {
                        let _ = rx.changed().await;
                    }));
                    continue;
                }
                let read = match (budget.plan(p.max_bytes, replica.is_some()), replica, *leader_epoch) {
                    (PartitionRead::Full, ..) => {
                        let o = *rx.borrow();
                        Ok(Ok((Bytes::new(), o, Vec::new())))
                    }
                    (PartitionRead::Read { max_bytes, strict }, Some(replica), Some(leader_epoch)) => {
                        let ask =
                            FollowerFetch { replica, offset: p.offset, leader_epoch, max_bytes, strict };
                        leader.addr.send(ask).await
                    }
                    (PartitionRead::Read { max_bytes, strict }, ..) => {
                        let read = leader.addr.send(Read { offset: p.offset, max_bytes, strict }).await;
                        read.map(|r| r.map(|(records, offsets)| (records, offsets, Vec::new())))
                    }
                };
                match read {
                    Ok(Ok((records, offsets, traces))) => {
                        fetched.high_watermark = offsets.high_watermark;
                        fetched.log_start_offset = offsets.log_start_offset;
                        budget.took(records.len());
                        fetched.records = records;
                        fetched.traces = traces;
                        idle[i] = fetched.records.is_empty().then(|| (offsets, fetched.clone()));
                    }
                    Ok(Err(e)) => {
                        fetched.error = Some(e);
                        failed = true;
                    }
                    Err(_) => {
                        fetched.error = Some(self.gone(&p.topic, p.partition));
                        failed = true;
                    }
                }
                waits.push(Box::pin(async move {
                    let _ = rx.changed().await;
                }));
                out.push(fetched);
            }
            let expired = tokio::time::Instant::now() >= deadline;
            if answer_now(budget.taken(), min_bytes, failed, expired, waits.is_empty()) {
                return Ok(FetchResponse { partitions: out });
            }
            tokio::select! {
                _ = futures_util::future::select_all(waits) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    pub(crate) async fn list_offsets(
        &self,
        peer: &Peer,
        req: ListOffsets,
    ) -> Result<Vec<ListedOffset>, BrokerError> {
        let routing = current(&self.inner.routing);
        let mut out = Vec::new();
        for p in req.partitions {
            let result = match self
                .check_topic(peer, Operation::Describe, &p.topic)
                .and_then(|()| self.route(&routing, &p.topic, p.partition))
            {
                Err(e) => Err(e),
                Ok(leader) => match leader.addr.send(ListOffset { timestamp: p.timestamp }).await {
                    Ok(r) => r,
                    Err(_) => Err(BrokerError::NotLeaderForPartition {
                        topic: p.topic.clone(),
                        partition: p.partition,
                        broker: self.id(),
                        leader: None,
                    }),
                },
            };
            out.push(ListedOffset { topic: p.topic, partition: p.partition, result });
        }
        Ok(out)
    }
    /// Kafka's DeleteRecords: each partition's leader moves its log start (the rule:
    /// [`sluice_broker_core::partition::delete_records_before`]); the log manager then
    /// checkpoints the new starts at once, and the followers follow on their next fetch.
    pub(crate) async fn delete_records(
        &self,
        peer: &Peer,
        req: DeleteRecords,
    ) -> Result<Vec<DeletedRecords>, BrokerError> {
        let routing = current(&self.inner.routing);
        let mut out = Vec::with_capacity(req.partitions.len());
        for p in req.partitions {
            let result = match self
                .check_topic(peer, Operation::Delete, &p.topic)
                .and_then(|()| self.route(&routing, &p.topic, p.partition))
            {
                Err(e) => Err(e),
                Ok(leader) => leader
                    .addr
                    .send(PartitionDeleteRecords { offset: p.offset })
                    .await
                    .unwrap_or_else(|_| Err(self.gone(&p.topic, p.partition))),
            };
            out.push(DeletedRecords { topic: p.topic, partition: p.partition, result });
        }
        if out.iter().any(|d| d.result.is_ok()) {
            self.inner.log_manager.do_send(TickNow);
        }
        Ok(out)
    }

    /// Each partition's end offset of a leader epoch: for a follower (ClusterAction on the
    /// cluster), or a consumer checking for truncation (Describe on the topic).
    pub(crate) async fn offsets_for_leader_epoch(
        &self,
        peer: &Peer,
        req: OffsetsForLeaderEpoch,
    ) -> Result<Vec<EpochEnd>, BrokerError> {
        let routing = current(&self.inner.routing);
        let replica = self.allowed(peer, Operation::ClusterAction, ResourceType::Cluster, CLUSTER_NAME);
        let mut out = Vec::with_capacity(req.partitions.len());
        for q in req.partitions {
            let checked =
                if replica { Ok(()) } else { self.check_topic(peer, Operation::Describe, &q.topic) };
            let result = match checked.and_then(|()| self.route(&routing, &q.topic, q.partition)) {
                Err(e) => Err(e),
                Ok(leader) => {
                    let ask = EpochEndOffset {
                        current_leader_epoch: q.current_leader_epoch,
                        epoch: q.leader_epoch,
                    };
                    leader.addr.send(ask).await.unwrap_or_else(|_| Err(self.gone(&q.topic, q.partition)))
                }
            };
            out.push(EpochEnd { topic: q.topic, partition: q.partition, result });
        }
        Ok(out)
    }
}

//! Produce: admission (routing, `min.insync.replicas` for `acks=all`, the channel's order
//! guard), the answer (at once, or once replicated), and producer-id blocks (`InitProducerId`).

use std::future::Future;
use std::time::Duration;

use sluice_actors::broker::partition::{wait_replicated, Append};
use sluice_actors::broker::replica_manager::current;
use sluice_broker_core::acl::{Operation, ResourceType};
use sluice_broker_core::metadata::ClusterUpdate;
use sluice_broker_core::order::{check_acks, OrderGuard};
use sluice_broker_core::{znodes, BrokerError};
use sluice_client::keeper::KeeperClientError;
use sluice_keeper_core::{CreateMode, KeeperError};
use sluice_net::Peer;
use sluice_proto::broker::*;
use tracing::{info, Instrument};

use super::{keeper_error, BrokerService};

impl BrokerService {
    pub(crate) fn min_insync(&self, update: Option<&ClusterUpdate>, topic: &str) -> i32 {
        self.inner
            .config
            .min_insync_replicas_of(update.and_then(|u| u.topic_config(topic, "min.insync.replicas")))
    }
    /// Checks a produce and hands it to the partition's actor; the returned future waits for
    /// the append. Everything up to the hand-over happens before this returns, which is what
    /// keeps a channel's produces in order.
    ///
    /// `order` is the ordered channel's id and its guard (`None` for a plain call): a
    /// produce held back by an earlier failure on the channel is refused here, and a
    /// retriable refusal here holds the partition's later produces (`acks=0` ones are never
    /// held, nor hold anything: their producer hears of no failure).
    pub(crate) fn start_produce(
        &self,
        peer: &Peer,
        req: Produce,
        order: Option<(u64, &mut OrderGuard<(String, i32)>)>,
    ) -> impl Future<Output = Result<ProduceResponse, BrokerError>> + Send {
        let order = order.filter(|_| req.acks != 0);
        let (topic, partition, broker, retry) = (&req.topic, req.partition, self.id(), req.retry);
        let channel = order.as_ref().map(|(id, _)| *id);
        let attempt = || {
            check_acks(req.acks)?;
            self.check_topic(peer, Operation::Write, &req.topic)?;
            let routing = current(&self.inner.routing);
            let leader = self.route(&routing, &req.topic, req.partition)?;
            let min_insync = (req.acks == -1)
                .then(|| self.min_insync(routing.update.as_deref(), &req.topic).max(1) as usize);
            // The records are a slice of the received frame (`shared_bytes`), and the append
            // rewrites their offsets in place: this is their one copy on the way in (the
            // decoder makes none).
            let records =
                req.records.try_into_mut().unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
            // Actors run outside the caller's span: the append's span is made under this one.
            let span = tracing::Span::current();
            let append = Append { records, order: channel.map(|id| (id, retry)), min_insync, span };
            Ok((leader.addr.send(append), leader.offsets, min_insync))
        };
        let ready = match order {
            None => attempt(),
            Some((_, guard)) => guard.run(
                || (topic.clone(), partition),
                retry,
                || BrokerError::OutOfOrderSequence { topic: topic.clone(), partition },
                attempt,
            ),
        };
        let topic = topic.clone();
        let timeout = Duration::from_millis(u64::from(req.timeout_ms));
        async move {
            let (append, offsets, min_insync) = ready?;
            let not_leader = || BrokerError::NotLeaderForPartition {
                topic: topic.clone(),
                partition,
                broker,
                leader: None,
            };
            let appended = append.await.map_err(|_| not_leader())??;
            match min_insync {
                None => Ok(appended.response),
                Some(min) => {
                    let span = if tracing::Span::current().is_none() {
                        tracing::Span::none()
                    } else {
                        tracing::info_span!("wait_replicated", %topic, partition, end_offset = appended.end_offset)
                    };
                    wait_replicated(offsets, appended.end_offset, min, timeout, &topic, partition, broker)
                        .instrument(span)
                        .await?;
                    Ok(appended.response)
                }
            }
        }
    }
    /// Claims the next block of producer ids in the keeper (a conditional write on
    /// `/latest_producer_id_block`, so two brokers never get the same block).
    pub(crate) async fn claim_producer_ids(&self) -> Result<(i64, i64), BrokerError> {
        let keeper = self.keeper()?;
        let size = znodes::PRODUCER_ID_BLOCK_SIZE;
        for _ in 0..100 {
            match keeper.get_data(znodes::PRODUCER_ID_BLOCK, false).await {
                Ok((data, stat)) => {
                    let (_, end) = znodes::decode_producer_id_block(&data)
                        .map_err(|e| BrokerError::KeeperUnavailable { reason: e.to_string() })?;
                    let (start, end) = (end + 1, end + size);
                    let block = znodes::encode_producer_id_block(self.id(), start, end);
                    match keeper.set_data(znodes::PRODUCER_ID_BLOCK, &block, stat.version).await {
                        Ok(_) => return Ok((start, end)),
                        Err(KeeperClientError::Keeper(KeeperError::BadVersion { .. })) => continue,
                        Err(e) => return Err(keeper_error(e)),
                    }
                }
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {
                    let block = znodes::encode_producer_id_block(self.id(), 0, size - 1);
                    match keeper.create(znodes::PRODUCER_ID_BLOCK, &block, CreateMode::Persistent).await {
                        Ok(_) => return Ok((0, size - 1)),
                        Err(KeeperClientError::Keeper(KeeperError::NodeExists { .. })) => continue,
                        Err(e) => return Err(keeper_error(e)),
                    }
                }
                Err(e) => return Err(keeper_error(e)),
            }
        }
        Err(BrokerError::KeeperUnavailable { reason: "too much contention for producer id blocks".into() })
    }
    /// A producer id for an idempotent producer: needs IdempotentWrite on the cluster, or
    /// Write on some topic (Kafka's KIP-679 rule).
    pub(crate) async fn init_producer_id(
        &self,
        peer: &Peer,
        _: InitProducerId,
    ) -> Result<ProducerIdAndEpoch, BrokerError> {
        if !self.allowed_any(peer, Operation::Write, ResourceType::Topic) {
            self.check_cluster(peer, Operation::IdempotentWrite)?;
        }
        let mut ids = self.inner.producer_ids.lock().await;
        if ids.0 > ids.1 {
            *ids = self.claim_producer_ids().await?;
            info!(start = ids.0, end = ids.1, "claimed a block of producer ids");
        }
        let producer_id = ids.0;
        ids.0 += 1;
        Ok(ProducerIdAndEpoch { producer_id, producer_epoch: 0 })
    }
}

//! A partition leader's ISR writes (Kafka's ZooKeeper-mode `updateIsr`): the leader writes
//! its partition's state znode conditionally on the version it last knew — so a leader that
//! has been replaced (the controller bumped the epoch, which changed the version) cannot
//! overwrite its successor's state — then leaves an ISR change notification for the
//! controller, which re-reads the state and publishes it to every broker.

use sluice_broker_core::metadata::PartitionState;
use sluice_broker_core::znodes;
use sluice_client::keeper::KeeperClientError;
use sluice_keeper_core::{CreateMode, KeeperError};

use crate::broker::{keeper_of, SharedKeeper};

/// Why an ISR write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum IsrWriteError {
    /// The state znode is not at the expected version: someone (the controller) changed
    /// it. Holds what it holds now.
    #[error("the partition state changed under the leader (now {0:?})")]
    Conflict(Option<PartitionState>),
    /// The keeper could not be reached or refused.
    #[error("keeper: {0}")]
    Keeper(String),
}

fn keeper_error(e: KeeperClientError) -> IsrWriteError {
    IsrWriteError::Keeper(e.to_string())
}

/// Writes `state` for `topic`-`partition` if its znode is still at `expected_version`;
/// returns the new version.
pub async fn write_isr(
    keeper: &SharedKeeper,
    topic: &str,
    partition: i32,
    state: &PartitionState,
    expected_version: i32,
) -> Result<i32, IsrWriteError> {
    let keeper = keeper_of(keeper).ok_or_else(|| IsrWriteError::Keeper("no keeper session".into()))?;
    let path = znodes::state_path(topic, partition);
    let version = match keeper.set_data(&path, &znodes::encode_state(state), expected_version).await {
        Ok(stat) => stat.version,
        Err(KeeperClientError::Keeper(KeeperError::BadVersion { .. }))
        | Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => {
            let current = match keeper.get_data(&path, false).await {
                Ok((data, stat)) => znodes::decode_state(topic, partition, &data, stat.version).ok(),
                Err(KeeperClientError::Keeper(KeeperError::NoNode { .. })) => None,
                Err(e) => return Err(keeper_error(e)),
            };
            return Err(IsrWriteError::Conflict(current));
        }
        Err(e) => return Err(keeper_error(e)),
    };
    let note = znodes::encode_isr_change(&[(topic.to_string(), partition)]);
    // The state is written; a lost notification only delays the controller's view until
    // its next pass.
    if let Err(e) = keeper.create(znodes::ISR_CHANGE_PREFIX, &note, CreateMode::PersistentSequential).await {
        tracing::warn!(topic, partition, error = %e, "could not notify the controller of an ISR change");
    }
    Ok(version)
}

//! A partition leader's offset rules, as pure functions.

use crate::BrokerError;

/// The high watermark: the smallest log end offset over the in-sync replicas — the leader's
/// `leader_leo` and each in-sync follower's. With no in-sync follower it is the leader's log
/// end offset. A follower's unknown offset (-1) gives -1: callers keep the high watermark
/// they had when the result is below it ([`crate::replica::ReplicaSet`] does).
pub fn high_watermark(leader_leo: i64, isr_follower_leos: impl IntoIterator<Item = i64>) -> i64 {
    isr_follower_leos.into_iter().fold(leader_leo, i64::min)
}

/// Where an `acks=all` produce stands (Kafka's `DelayedProduce` completion check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcksAll {
    /// Not every in-sync replica has the records yet: wait for the next change.
    Waiting,
    /// Every in-sync replica has them, and the ISR was at least `min.insync.replicas`.
    Done,
    /// The produce fails with this error.
    Failed(BrokerError),
}

/// Whether an `acks=all` produce whose records end below `end_offset` is complete, given
/// the partition's state now: the leader epoch it leads at (`None`: no longer leading),
/// the high watermark and the ISR's size. `appended_at` is the epoch it led at when the
/// records were appended: a leader that lost its leadership since (even if it regained it)
/// cannot vouch for them, so the answer is `NotLeaderForPartition`, and the producer retries
/// with the new leader. Once the high watermark covers the records, an ISR smaller than
/// `min_insync` fails them with `NotEnoughReplicasAfterAppend` (they were written, but not
/// to as many replicas as the topic demands).
pub fn acks_all(
    (topic, partition, broker): (&str, i32, i32),
    appended_at: Option<i32>,
    leading: Option<i32>,
    (high_watermark, isr): (i64, usize),
    end_offset: i64,
    min_insync: usize,
) -> AcksAll {
    if leading.is_none() || leading != appended_at {
        return AcksAll::Failed(BrokerError::NotLeaderForPartition {
            topic: topic.into(),
            partition,
            broker,
            leader: None,
        });
    }
    if high_watermark < end_offset {
        return AcksAll::Waiting;
    }
    if isr < min_insync {
        return AcksAll::Failed(BrokerError::NotEnoughReplicasAfterAppend {
            topic: topic.into(),
            partition,
            isr,
            min: min_insync,
        });
    }
    AcksAll::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_the_slowest_in_sync_replica() {
        assert_eq!(high_watermark(10, []), 10);
        assert_eq!(high_watermark(10, [7, 12]), 7);
        assert_eq!(high_watermark(3, [7]), 3);
    }

    #[test]
    fn acks_all_completes_when_the_high_watermark_covers_the_records_and_the_isr_is_big_enough() {
        let at = ("t", 0, 1);
        assert_eq!(acks_all(at, Some(3), Some(3), (9, 3), 10, 2), AcksAll::Waiting);
        assert_eq!(acks_all(at, Some(3), Some(3), (10, 3), 10, 2), AcksAll::Done);
        assert_eq!(acks_all(at, Some(3), Some(3), (12, 2), 10, 2), AcksAll::Done);
        // Replicated, but the ISR shrank below min.insync.replicas meanwhile.
        assert!(matches!(
            acks_all(at, Some(3), Some(3), (10, 1), 10, 2),
            AcksAll::Failed(BrokerError::NotEnoughReplicasAfterAppend { isr: 1, min: 2, .. })
        ));
        // Below the high watermark nothing is decided by the ISR's size yet.
        assert_eq!(acks_all(at, Some(3), Some(3), (9, 1), 10, 2), AcksAll::Waiting);
    }

    #[test]
    fn acks_all_fails_once_the_leader_that_appended_no_longer_leads_at_that_epoch() {
        let at = ("t", 0, 1);
        let not_leader = |r| matches!(r, AcksAll::Failed(BrokerError::NotLeaderForPartition { .. }));
        assert!(not_leader(acks_all(at, Some(3), None, (10, 3), 10, 1)));
        // Leading again at a later epoch does not vouch for what was appended at the old one.
        assert!(not_leader(acks_all(at, Some(3), Some(4), (10, 3), 10, 1)));
        assert!(not_leader(acks_all(at, None, None, (10, 3), 10, 1)));
    }
}

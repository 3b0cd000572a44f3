//! Keeping a producer's order across a failure, without producer ids.
//!
//! A producer pipelines several batches to a partition on one ordered channel, and the
//! broker applies them in the order they arrive. If batch N fails with a retriable error
//! (not the leader yet, a storage error) while N+1 is already in flight, N+1 must not be
//! appended before N is resent — or the partition's order would be N+1, N. So a retriable
//! failure *holds* the partition for that channel: every later produce to it is refused
//! (`OutOfOrderSequence`, retriable) until the producer resends, marking the resend as a
//! retry, which lifts the hold. The producer resends failed batches in order, so the
//! partition sees N, N+1, ... as sent.
//!
//! Kafka gets the same guarantee from idempotent producers' sequence numbers, which also
//! drop duplicates; this guard gives the ordering half with no producer state on the broker
//! beyond the channel's lifetime. (`acks=0` produces are never held: their producer hears of
//! no failure, so it would never lift the hold.)

use std::collections::HashSet;
use std::hash::Hash;

use crate::BrokerError;

/// The held keys of one ordering scope (a channel's partitions, or a partition's channels).
#[derive(Debug, Clone)]
pub struct OrderGuard<K> {
    held: HashSet<K>,
}

impl<K> Default for OrderGuard<K> {
    fn default() -> Self {
        OrderGuard { held: HashSet::new() }
    }
}

impl<K: Hash + Eq> OrderGuard<K> {
    /// Whether a produce for `key` may go ahead: a retry always may (and lifts the hold),
    /// anything else only while `key` is not held.
    pub fn admit(&mut self, key: &K, retry: bool) -> bool {
        if retry {
            self.held.remove(key);
            true
        } else {
            !self.held.contains(key)
        }
    }

    /// A produce for `key` failed with a retriable error: hold what follows it.
    pub fn failed(&mut self, key: K) {
        self.held.insert(key);
    }

    /// Whether nothing is held (then every produce may go ahead).
    pub fn is_clear(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether `key` is held.
    pub fn is_held(&self, key: &K) -> bool {
        self.held.contains(key)
    }

    /// One produce to `key` on the channel, the whole rule: refused with `refused()` while
    /// `key` is held and this is not the producer's retry; otherwise `attempt` runs (the
    /// shell's routing and hand-over to the partition), and a retriable failure holds
    /// `key`. `key` is only built when something is held or the attempt fails.
    pub fn run<T>(
        &mut self,
        key: impl Fn() -> K,
        retry: bool,
        refused: impl FnOnce() -> BrokerError,
        attempt: impl FnOnce() -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        if !self.is_clear() && !self.admit(&key(), retry) {
            return Err(refused());
        }
        let result = attempt();
        if result.as_ref().is_err_and(BrokerError::is_retriable) {
            self.failed(key());
        }
        result
    }
}

/// Kafka's `acks`: 0 (no answer), 1 (the leader's append) or -1 (every in-sync replica).
pub fn check_acks(acks: i16) -> Result<(), BrokerError> {
    match acks {
        -1..=1 => Ok(()),
        _ => Err(BrokerError::InvalidRequiredAcks { acks }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_holds_what_follows_until_the_resend() {
        let mut g = OrderGuard::default();
        // N and N+1 in flight; N fails.
        assert!(g.admit(&"p0", false));
        assert!(g.admit(&"p0", false));
        g.failed("p0");
        // N+1 arrives after N's failure: held back.
        assert!(!g.admit(&"p0", false));
        // Another partition is not affected.
        assert!(g.admit(&"p1", false));
        // The resend of N lifts the hold; N+1's resend follows.
        assert!(g.admit(&"p0", true));
        assert!(g.admit(&"p0", true));
        assert!(g.admit(&"p0", false));
        assert!(!g.is_held(&"p0"));
        assert!(g.is_clear());
    }

    #[test]
    fn run_refuses_a_held_key_until_the_retry_and_a_retriable_failure_holds() {
        let mut g: OrderGuard<&str> = OrderGuard::default();
        let refused = || BrokerError::OutOfOrderSequence { topic: "t".into(), partition: 0 };
        let not_leader = || BrokerError::NotLeaderForPartition {
            topic: "t".into(),
            partition: 0,
            broker: 1,
            leader: None,
        };
        assert_eq!(g.run(|| "t-0", false, refused, || Ok(1)), Ok(1));
        assert!(g.run(|| "t-0", false, refused, || Err::<(), _>(not_leader())).is_err());
        assert!(g.is_held(&"t-0"), "a retriable failure holds the partition");
        let mut ran = false;
        let r = g.run(
            || "t-0",
            false,
            refused,
            || {
                ran = true;
                Ok(2)
            },
        );
        assert_eq!(r, Err(refused()), "the next produce is refused");
        assert!(!ran, "and never reaches the partition");
        assert_eq!(g.run(|| "t-1", false, refused, || Ok(3)), Ok(3), "other partitions go on");
        assert_eq!(g.run(|| "t-0", true, refused, || Ok(4)), Ok(4), "the retry lifts the hold");
        assert!(g.is_clear());
        let bad = BrokerError::InvalidRequiredAcks { acks: 7 };
        assert!(g.run(|| "t-0", false, refused, || Err::<(), _>(bad.clone())).is_err());
        assert!(g.is_clear(), "a failure that is not retriable holds nothing");
        assert_eq!(check_acks(-1), Ok(()));
        assert_eq!(check_acks(2), Err(BrokerError::InvalidRequiredAcks { acks: 2 }));
    }
}

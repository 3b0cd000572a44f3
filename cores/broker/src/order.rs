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
}

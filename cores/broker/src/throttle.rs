//! Replication throttles (Kafka's, as `kafka-reassign-partitions.sh --throttle` sets them):
//! a rate in bytes per second (`leader.replication.throttled.rate`,
//! `follower.replication.throttled.rate`, cluster-wide dynamic broker configs) applied to the
//! replicas a topic lists (`leader.replication.throttled.replicas`,
//! `follower.replication.throttled.replicas`: `*` or `partition:broker,...`).
//!
//! A follower does what Kafka's does: while the bytes it fetched for throttled replicas
//! exceed the rate, it leaves the throttled replicas that are still behind the leader out of
//! its fetches (the others, in sync, are never held back). The rate is kept by a bucket
//! ([`Throttle`]) that holds at most one second's worth of bytes; a fetch may overdraw it, and
//! the replicas then wait until it has refilled.

use std::collections::BTreeMap;

use crate::error::BrokerError;

/// The broker configs holding a throttle's rate.
pub const RATE_KEYS: [&str; 2] = ["leader.replication.throttled.rate", "follower.replication.throttled.rate"];
/// The follower's rate.
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
/// The topic config naming the replicas the leader's rate applies to.
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
/// The topic config naming the replicas the follower's rate applies to.
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Which replicas of a topic are throttled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottledReplicas {
    /// `*`: all.
    All,
    /// `partition:broker` pairs (empty: none).
    Listed(Vec<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Reads a topic's value: `*`, empty, or `partition:broker` pairs separated by commas.
    pub fn parse(key: &str, value: &str) -> Result<ThrottledReplicas, BrokerError> {
        let value = value.trim();
        if value == "*" {
            return Ok(ThrottledReplicas::All);
        }
        let bad = |item: &str| BrokerError::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: format!("{item:?} is not partition:broker; give `*` or a list such as 0:1,0:2,1:2"),
        };
        let mut out = Vec::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (p, b) = item.split_once(':').ok_or_else(|| bad(item))?;
            let p = p.trim().parse::<i32>().ok().filter(|p| *p >= 0).ok_or_else(|| bad(item))?;
            let b = b.trim().parse::<i32>().ok().filter(|b| *b >= 0).ok_or_else(|| bad(item))?;
            out.push((p, b));
        }
        Ok(ThrottledReplicas::Listed(out))
    }

    /// Whether `broker`'s replica of `partition` is throttled.
    pub fn includes(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(l) => l.contains(&(partition, broker)),
        }
    }
}

/// Reads a rate config: whole bytes per second, at least 1.
pub fn parse_rate(key: &str, value: &str) -> Result<u64, BrokerError> {
    value.trim().parse::<u64>().ok().filter(|r| *r >= 1).ok_or_else(|| BrokerError::InvalidConfig {
        key: key.to_string(),
        value: value.to_string(),
        reason: "must be a whole number of bytes per second, at least 1".into(),
    })
}

/// The follower rate among the cluster-wide defaults, if one is set (and valid).
pub fn follower_rate(defaults: &BTreeMap<String, String>) -> Option<u64> {
    defaults.get(FOLLOWER_RATE).and_then(|v| parse_rate(FOLLOWER_RATE, v).ok())
}

/// A byte-rate bucket: `rate` bytes per second, holding at most one second's worth.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    rate: u64,
    /// Bytes that may still pass (negative: overdrawn).
    available: f64,
    last_ms: i64,
}

impl Throttle {
    /// A full bucket at `now_ms`.
    pub fn new(rate: u64, now_ms: i64) -> Self {
        Throttle { rate: rate.max(1), available: rate.max(1) as f64, last_ms: now_ms }
    }

    /// The rate, bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = now_ms.saturating_sub(self.last_ms).max(0) as f64;
        self.available = (self.available + elapsed * self.rate as f64 / 1000.0).min(self.rate as f64);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// `bytes` of throttled replicas arrived at `now_ms`.
    pub fn record(&mut self, bytes: u64, now_ms: i64) {
        self.refill(now_ms);
        self.available -= bytes as f64;
    }

    /// Whether the throttled replicas must wait at `now_ms`.
    pub fn exceeded(&mut self, now_ms: i64) -> bool {
        self.refill(now_ms);
        self.available <= 0.0
    }

    /// How long until the throttled replicas may fetch again (0: now).
    pub fn wait_ms(&mut self, now_ms: i64) -> u64 {
        self.refill(now_ms);
        if self.available > 0.0 {
            return 0;
        }
        ((-self.available + 1.0) * 1000.0 / self.rate as f64).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_replicas_read_kafkas_forms_and_refuse_others_with_the_format() {
        let key = FOLLOWER_REPLICAS;
        assert_eq!(ThrottledReplicas::parse(key, "*"), Ok(ThrottledReplicas::All));
        let l = ThrottledReplicas::parse(key, "0:1, 1:4").expect("a list");
        assert!(l.includes(0, 1) && l.includes(1, 4) && !l.includes(0, 4));
        assert_eq!(ThrottledReplicas::parse(key, ""), Ok(ThrottledReplicas::Listed(Vec::new())));
        for bad in ["0", "a:1", "0:-1", "0:1,x"] {
            let e = ThrottledReplicas::parse(key, bad).expect_err(bad);
            assert!(e.to_string().contains("partition:broker"), "{e}");
        }
        assert_eq!(parse_rate(FOLLOWER_RATE, "1000"), Ok(1000));
        assert!(parse_rate(FOLLOWER_RATE, "0").is_err() && parse_rate(FOLLOWER_RATE, "fast").is_err());
    }

    #[test]
    fn the_bucket_passes_the_rate_on_average_and_says_how_long_an_overdraft_waits() {
        // Step 1: 1000 B/s, full: a 3000-byte fetch overdraws it by 2000.
        let mut t = Throttle::new(1000, 0);
        assert!(!t.exceeded(0));
        t.record(3000, 0);
        assert!(t.exceeded(0));
        // Step 2: the overdraft takes 2 s to repay (plus a byte).
        assert_eq!(t.wait_ms(0), 2001);
        assert!(t.exceeded(1500));
        assert!(!t.exceeded(2002));
        // Step 3: an idle bucket holds at most one second's worth.
        assert!(!t.exceeded(60_000));
        t.record(1000, 60_000);
        assert!(t.exceeded(60_000));
        // Step 4: over 10 s of fetches as soon as allowed, about 10 s of rate passes.
        let mut t = Throttle::new(1000, 0);
        let (mut now, mut passed) = (0, 0u64);
        while now < 10_000 {
            if t.exceeded(now) {
                now += t.wait_ms(now) as i64;
                continue;
            }
            t.record(700, now);
            passed += 700;
        }
        assert!((10_000..=12_100).contains(&passed), "{passed} bytes in 10 s at 1000 B/s");
    }
}

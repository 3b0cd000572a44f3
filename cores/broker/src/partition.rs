//! A partition leader's offset rules, as pure functions.

/// The high watermark: the smallest log end offset over the in-sync replicas — the leader's
/// `leader_leo` and each in-sync follower's. With no in-sync follower it is the leader's log
/// end offset. A follower's unknown offset (-1) gives -1: callers keep the high watermark
/// they had when the result is below it ([`crate::replica::ReplicaSet`] does).
pub fn high_watermark(leader_leo: i64, isr_follower_leos: impl IntoIterator<Item = i64>) -> i64 {
    isr_follower_leos.into_iter().fold(leader_leo, i64::min)
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
}

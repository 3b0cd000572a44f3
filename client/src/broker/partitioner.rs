//! Kafka's default partitioner, so that a key lands on the same partition whether a Kafka
//! client or a Sluice client produced it.
//!
//! - A record with a partition goes there.
//! - A record with a key goes to `to_positive(murmur2(key)) % partitions` ([`murmur2`] is
//!   Kafka's `Utils.murmur2`, bit for bit, so the same key picks the same partition as in
//!   Kafka).
//! - A record without a key is *sticky* ([`StickyPartitioner`], Kafka's
//!   `BuiltInPartitioner` without adaptive weighting): every keyless record of a topic goes to
//!   one partition until `batch.size` bytes have been produced to it *and* its batches are
//!   full or sent (or, whatever the batches, `2 × batch.size` bytes); then a random partition
//!   with a leader is picked. Batches fill up instead of being spread thin over every
//!   partition.

use std::collections::HashMap;

use rand::Rng;

/// Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with seed `0x9747b28c`, reading bytes as
/// unsigned (Java's `b & 0xff`) in little-endian groups of four.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on
/// `i32::MIN`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition of a keyed record among `num_partitions` (which must be at least 1):
/// `to_positive(murmur2(key)) % num_partitions`, as Kafka.
pub fn partition_for_key(key: &[u8], num_partitions: usize) -> i32 {
    let n = num_partitions.max(1) as i64;
    (i64::from(to_positive(murmur2(key))) % n) as i32
}

/// Where keyless records of each topic go now, and how much has gone there.
#[derive(Debug, Clone)]
pub struct StickyPartitioner {
    batch_size: usize,
    topics: HashMap<String, Sticky>,
}

#[derive(Debug, Clone, Copy)]
struct Sticky {
    partition: i32,
    produced_bytes: usize,
}

impl StickyPartitioner {
    /// A partitioner that switches after `batch_size` bytes (`batch.size`; 0 counts as 1).
    pub fn new(batch_size: usize) -> Self {
        StickyPartitioner { batch_size: batch_size.max(1), topics: HashMap::new() }
    }

    /// The partition for a keyless record of `topic`, which has `num_partitions` partitions
    /// of which `available` have a leader: the topic's current sticky partition, or a new
    /// random pick if there is none yet (or the topic shrank below it).
    pub fn partition<R: Rng>(
        &mut self,
        topic: &str,
        num_partitions: usize,
        available: &[i32],
        rng: &mut R,
    ) -> i32 {
        if let Some(s) = self.topics.get(topic) {
            if usize::try_from(s.partition).is_ok_and(|p| p < num_partitions) {
                return s.partition;
            }
        }
        let partition = next_partition(num_partitions, available, rng);
        self.topics.insert(topic.to_string(), Sticky { partition, produced_bytes: 0 });
        partition
    }

    /// Notes that `bytes` were appended to `partition` of `topic` for a keyless record.
    /// `enable_switch` says whether the partition's batches are all full or sent (Kafka's
    /// `allBatchesFull`): only then does the partition change after `batch.size` bytes, so a
    /// half-filled batch is not abandoned; after `2 × batch.size` it changes regardless.
    #[allow(clippy::too_many_arguments)]
    pub fn on_append<R: Rng>(
        &mut self,
        topic: &str,
        partition: i32,
        bytes: usize,
        enable_switch: bool,
        num_partitions: usize,
        available: &[i32],
        rng: &mut R,
    ) {
        let Some(s) = self.topics.get_mut(topic) else { return };
        if s.partition != partition {
            return;
        }
        s.produced_bytes = s.produced_bytes.saturating_add(bytes);
        let enough = s.produced_bytes >= self.batch_size;
        let too_much = s.produced_bytes >= self.batch_size.saturating_mul(2);
        if (enough && enable_switch) || too_much {
            *s = Sticky { partition: next_partition(num_partitions, available, rng), produced_bytes: 0 };
        }
    }

    /// The current sticky partition of `topic`, if one has been picked.
    pub fn current(&self, topic: &str) -> Option<i32> {
        self.topics.get(topic).map(|s| s.partition)
    }
}

/// Kafka's `BuiltInPartitioner.nextPartition` (uniform): a random partition with a leader,
/// or any partition when none has one. May pick the partition it leaves, as Kafka's does.
fn next_partition<R: Rng>(num_partitions: usize, available: &[i32], rng: &mut R) -> i32 {
    let random = to_positive(rng.gen::<i32>()) as usize;
    match available {
        [] => (random % num_partitions.max(1)) as i32,
        [only] => *only,
        many => many[random % many.len()],
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn murmur2_matches_kafkas_utils_test_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"", 275646681),
            (b"abc", 479470107), // Kafka's test writes it as new byte[] {'a', 'b', 'c'}
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), *expected, "murmur2({:?})", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn bytes_above_127_are_read_unsigned_as_java_masks_them() {
        // Every tail length, with high bytes, differs from reading them sign-extended.
        let high = [0xff_u8, 0x80, 0xc3, 0xa9, 0xfe];
        let a = murmur2(&high);
        let b = murmur2(&[0x7f, 0x80, 0xc3, 0xa9, 0xfe]);
        assert_ne!(a, b);
        assert_eq!(murmur2(&high), a, "deterministic");
    }

    #[test]
    fn to_positive_clears_the_sign_bit_even_for_the_minimum() {
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(42), 42);
    }

    #[test]
    fn keyed_records_go_where_kafka_sends_them() {
        // to_positive(-790332482) = 1357151166; 1357151166 % 10 = 6.
        assert_eq!(partition_for_key(b"foobar", 10), 6);
        // to_positive(275646681) % 3 = 0 (275646681 = 3 * 91882227).
        assert_eq!(partition_for_key(b"", 3), 0);
        for n in 1..20 {
            let p = partition_for_key(b"some key", n);
            assert!((0..n as i32).contains(&p));
        }
    }

    #[test]
    fn keyless_records_stick_to_one_partition_until_its_batch_is_full_and_batch_size_was_produced() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut s = StickyPartitioner::new(100);
        let available = [0, 1, 2, 3, 4, 5, 6, 7];
        let first = s.partition("t", 8, &available, &mut rng);
        for _ in 0..9 {
            assert_eq!(s.partition("t", 8, &available, &mut rng), first);
            s.on_append("t", first, 10, true, 8, &available, &mut rng);
        }
        assert_eq!(s.current("t"), Some(first), "90 bytes < batch.size");
        // Enough bytes but the batch is not full: stay, so the batch fills up.
        s.on_append("t", first, 10, false, 8, &available, &mut rng);
        assert_eq!(s.current("t"), Some(first), "not switched while the batch is not full");
        // Enough bytes and the batch is full: a new pick (which may be the same partition).
        s.on_append("t", first, 1, true, 8, &available, &mut rng);
        let mut switched = false;
        for _ in 0..50 {
            let p = s.partition("t", 8, &available, &mut rng);
            s.on_append("t", p, 100, true, 8, &available, &mut rng);
            switched |= s.current("t") != Some(p);
        }
        assert!(switched, "a full batch after batch.size bytes moves the topic on");
    }

    #[test]
    fn keyless_records_switch_after_twice_batch_size_even_if_the_batch_is_not_full() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut s = StickyPartitioner::new(100);
        let p = s.partition("t", 2, &[1], &mut rng);
        assert_eq!(p, 1, "the only partition with a leader");
        s.on_append("t", p, 150, false, 2, &[0], &mut rng);
        assert_eq!(s.current("t"), Some(1));
        s.on_append("t", p, 50, false, 2, &[0], &mut rng);
        assert_eq!(s.current("t"), Some(0), "2 × batch.size forces a switch, to a partition with a leader");
    }

    #[test]
    fn keyless_records_pick_only_partitions_with_a_leader_and_any_when_none_has_one() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let p = next_partition(10, &[3, 7], &mut rng);
            assert!(p == 3 || p == 7, "{p}");
            let q = next_partition(10, &[], &mut rng);
            assert!((0..10).contains(&q));
        }
        let mut s = StickyPartitioner::new(10);
        assert_eq!(s.partition("a", 4, &[2], &mut rng), 2);
        assert_eq!(s.partition("b", 4, &[3], &mut rng), 3, "topics are independent");
        assert_eq!(s.partition("a", 2, &[1], &mut rng), 1, "a topic that shrank below the pick re-picks");
        // An append to another partition (a keyed or explicit record) does not count.
        s.on_append("a", 0, 1000, true, 2, &[0], &mut rng);
        assert_eq!(s.current("a"), Some(1));
    }
}

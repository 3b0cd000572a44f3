//! Checkers for the histories Sluice's tests record, kept apart from the tests' fixtures so
//! that they build optimised even in test builds (the workspace's `Cargo.toml` says so): a
//! search over a history's interleavings is a hundred times slower unoptimised.
//!
//! - [`linearizability`]: znodes as versioned registers, checked key by key.
//! - [`dir_model`]: one directory of znodes (creates, deletes, sequential and ephemeral
//!   children, `multi`, session expiry) checked as one state.
//! - [`Rng`]: the small seeded generator the tests and the nemesis draw their choices from.

pub mod dir_model;
pub mod linearizability;

/// A small seeded random source (xorshift64*): a nemesis schedule is a function of its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The source for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `low..high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.next_u64() % (high - low)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }
}

//! Exponential backoff between retries: the one helper every retry loop uses (the client's
//! reconnects, a broker's re-registration, the controller's update senders).

use std::time::Duration;

/// Waits that start at `initial` and double after each use, up to `max`; [`reset`] after a
/// success starts again from `initial`.
///
/// [`reset`]: Backoff::reset
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max: max.max(initial), next: initial }
    }

    /// The wait the next [`next_delay`](Self::next_delay) will give.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// The wait before the next attempt; the one after it is twice as long, up to the max.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }

    /// After a success: the next wait is the initial one again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_max_and_reset_starts_over() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(50), ms(300));
        let waits: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(waits, [ms(50), ms(100), ms(200), ms(300), ms(300)]);
        b.reset();
        assert_eq!(b.peek(), ms(50));
        assert_eq!(b.next_delay(), ms(50));
        // A max below the start is the start.
        assert_eq!(Backoff::new(ms(80), ms(10)).next_delay(), ms(80));
    }
}

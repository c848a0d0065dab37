//! Growing pauses between tries, written once: the outbox's retries to
//! GitHub and the runner's retries to record a final state both double
//! from a first pause up to a cap. With jitter, many tries refused
//! together (a GitHub outage) do not come back together.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Spread each pause over ±25%.
    pub jitter: bool,
}

impl Backoff {
    /// The pause after `tries` failed tries (0: after the first).
    pub fn after(&self, tries: i64) -> Duration {
        let factor = 1u32 << tries.clamp(0, 20);
        let base = self.first.saturating_mul(factor).min(self.max);
        if !self.jitter {
            return base;
        }
        let spread = RandomState::new().hash_one(crate::store::Timestamp::now()) % 1000;
        base.mul_f64(0.75 + spread as f64 / 2000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
            jitter: false,
        };
        let pauses: Vec<u128> = (0..6).map(|n| b.after(n).as_millis()).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 5000]);
        assert_eq!(b.after(1000), Duration::from_secs(5));
        assert_eq!(b.after(-3), Duration::from_millis(200));
    }
}

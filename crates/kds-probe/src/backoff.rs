//! Exponential reconnect backoff with jitter, so probes restarted together do not
//! reconnect in lockstep when the global comes back.

use std::time::Duration;

use crate::config::BackoffSettings;

/// Delays double from `initial` up to `max`; each is drawn uniformly from the upper
/// half of its step ("equal jitter"), so it never drops below half the step and never
/// exceeds `max`.
#[derive(Debug)]
pub struct Backoff {
    settings: BackoffSettings,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(settings: BackoffSettings) -> Self {
        Self {
            settings,
            attempt: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// A backoff with a fixed seed, for reproducible tests.
    pub fn with_seed(settings: BackoffSettings, seed: u64) -> Self {
        Self {
            settings,
            attempt: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The step (before jitter) of the next delay.
    pub fn current_step(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.settings
            .initial
            .saturating_mul(factor)
            .min(self.settings.max)
    }

    /// The next delay, and the step grows.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current_step();
        self.attempt = self.attempt.saturating_add(1);
        // Whole milliseconds: finer jitter buys nothing and reads worse in logs.
        let step_ms = step.as_millis().min(u128::from(u64::MAX)) as u64;
        Duration::from_millis(self.rng.u64(step_ms.div_ceil(2)..=step_ms))
    }

    /// Back to the first step, after a stream that worked.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BackoffSettings {
        BackoffSettings {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }

    #[test]
    fn delays_grow_then_cap_and_stay_within_jitter_bounds() {
        for seed in 0..50 {
            let mut b = Backoff::with_seed(settings(), seed);
            let mut previous_step = Duration::ZERO;
            for _ in 0..20 {
                let step = b.current_step();
                assert!(step >= previous_step && step <= Duration::from_secs(30));
                let d = b.next_delay();
                assert!(
                    d >= step / 2 && d <= step,
                    "delay {d:?} outside [{:?}, {step:?}]",
                    step / 2
                );
                previous_step = step;
            }
            assert_eq!(b.current_step(), Duration::from_secs(30));
        }
        let mut b = Backoff::with_seed(settings(), 1);
        let steps: Vec<_> = (0..4)
            .map(|_| {
                let s = b.current_step();
                b.next_delay();
                s
            })
            .collect();
        assert_eq!(steps, [500, 1000, 2000, 4000].map(Duration::from_millis));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut b = Backoff::with_seed(settings(), 7);
        let delays: std::collections::BTreeSet<_> = (0..10)
            .map(|_| {
                b.reset();
                b.next_delay()
            })
            .collect();
        assert!(delays.len() > 5, "jitter produced {delays:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn sleeping_the_delays_takes_the_expected_paused_time() {
        let mut b = Backoff::with_seed(settings(), 3);
        let start = tokio::time::Instant::now();
        let mut total = Duration::ZERO;
        for _ in 0..5 {
            let d = b.next_delay();
            total += d;
            tokio::time::sleep(d).await;
        }
        assert_eq!(start.elapsed(), total);
        // 0.5 + 1 + 2 + 4 + 8 s of steps; jitter keeps it in [half, full].
        assert!(
            total >= Duration::from_millis(7750) && total <= Duration::from_millis(15500),
            "{total:?}"
        );
        b.reset();
        assert_eq!(b.current_step(), Duration::from_millis(500));
    }
}

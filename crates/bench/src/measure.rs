//! Samples and the figures made of them.

use std::time::Duration;

/// Latencies of one measured operation.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `p`th percentile (nearest rank); zero without samples.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn as_slice(&self) -> &[Duration] {
        &self.0
    }

    pub fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }

    /// `p50 / p99 / max` for a table cell.
    pub fn cell(&self) -> String {
        format!(
            "{} / {} / {}",
            fmt(self.percentile(50.0)),
            fmt(self.percentile(99.0)),
            fmt(self.max())
        )
    }
}

/// A duration with a unit that keeps three significant figures readable.
pub fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10.0 {
        format!("{us:.1} µs")
    } else if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `VmRSS` once it stops moving: read every 100 ms until five reads in a row (half a
/// second) stay within 256 KiB of each other, or 10 s have passed. Memory freed on another
/// thread (the engine drops a snapshot's parsed specs on one of its own), and the pages
/// the allocator hands back after a delay, are then counted; a fixed pause would be too
/// short on a loaded machine or wasted on an idle one. Blocks: call it off the runtime.
pub fn settled_rss_kib() -> u64 {
    const STEP: std::time::Duration = std::time::Duration::from_millis(100);
    const STABLE_READS: usize = 5;
    const LIMIT: usize = 100;
    let mut recent = std::collections::VecDeque::with_capacity(STABLE_READS);
    for _ in 0..LIMIT {
        let (rss, _) = rss_kib();
        if recent.len() == STABLE_READS {
            recent.pop_front();
        }
        recent.push_back(rss);
        let (lo, hi) = (recent.iter().min(), recent.iter().max());
        if recent.len() == STABLE_READS && hi.zip(lo).is_some_and(|(h, l)| h - l <= 256) {
            return rss;
        }
        std::thread::sleep(STEP);
    }
    rss_kib().0
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// CPU model, cores and memory, for the report's header.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    format!(
        "{cpu}, {cores} cores, {:.1} GiB RAM",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.percentile(50.0), Duration::from_millis(50));
        assert_eq!(s.percentile(99.0), Duration::from_millis(99));
        assert_eq!(s.max(), Duration::from_millis(100));
        assert_eq!(Samples::default().percentile(99.0), Duration::ZERO);
    }

    #[test]
    fn durations_print_in_a_readable_unit() {
        assert_eq!(fmt(Duration::from_nanos(3_240)), "3.2 µs");
        assert_eq!(fmt(Duration::from_micros(12)), "12 µs");
        assert_eq!(fmt(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(fmt(Duration::from_millis(2_500)), "2.50 s");
    }
}

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
    rss_kib_at("/proc/self/status")
}

/// `VmRSS` and `VmHWM` of process `pid` (a `serve` the bench started), in KiB; zeros once
/// it has exited.
pub fn rss_kib_of(pid: u32) -> (u64, u64) {
    rss_kib_at(&format!("/proc/{pid}/status"))
}

fn rss_kib_at(status_path: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(status_path).unwrap_or_default();
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
    settled(rss_kib)
}

/// [`settled_rss_kib`] of process `pid`. Blocks: call it off the runtime.
pub fn settled_rss_kib_of(pid: u32) -> u64 {
    settled(|| rss_kib_of(pid))
}

fn settled(read: impl Fn() -> (u64, u64)) -> u64 {
    const STEP: std::time::Duration = std::time::Duration::from_millis(100);
    const STABLE_READS: usize = 5;
    const LIMIT: usize = 100;
    let mut recent = std::collections::VecDeque::with_capacity(STABLE_READS);
    for _ in 0..LIMIT {
        let (rss, _) = read();
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
    read().0
}

/// CPU time (user + system, all threads) process `pid` has used so far, from
/// `/proc/<pid>/stat`; `None` once it has exited. `ticks_per_second` is the kernel's
/// `CLK_TCK` ([`clock_ticks_per_second`]).
pub fn cpu_time_of(pid: u32, ticks_per_second: u64) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ticks(&stat).map(|ticks| Duration::from_secs_f64(ticks as f64 / ticks_per_second.max(1) as f64))
}

/// utime + stime of one `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces or parentheses itself: fields are counted after the
/// last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state (3), ..., utime (14), stime (15).
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), which `/proc/<pid>/stat`
/// counts CPU time in; 100, Linux's value on every common architecture, if it cannot be
/// asked.
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
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
    fn cpu_time_is_counted_after_the_command_name() {
        // A name holding a space and a parenthesis must not shift the fields.
        let stat = "4242 (kuma sync) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 0 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn another_process_is_read_through_its_pid() {
        let me = std::process::id();
        let (rss, hwm) = rss_kib_of(me);
        assert!(rss > 0 && hwm >= rss, "rss {rss} hwm {hwm}");
        let before = cpu_time_of(me, clock_ticks_per_second()).expect("own stat");
        let mut x = 0u64;
        // Spin until the kernel has counted some CPU time: a condition, not a pause.
        while cpu_time_of(me, clock_ticks_per_second()).expect("own stat") <= before {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
    }

    #[test]
    fn durations_print_in_a_readable_unit() {
        assert_eq!(fmt(Duration::from_nanos(3_240)), "3.2 µs");
        assert_eq!(fmt(Duration::from_micros(12)), "12 µs");
        assert_eq!(fmt(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(fmt(Duration::from_millis(2_500)), "2.50 s");
    }
}

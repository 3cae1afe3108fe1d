//! This process's CPU time and peak memory, for the benchmarks (`cli`'s `bench-plan`, the
//! core's `benches/plan.rs`, `bench-fleet`). Linux only: the figures come from `/proc/self`;
//! elsewhere they are `None`.

use std::time::Duration;

/// User plus system CPU time of this process, from `/proc/self/stat` (clock ticks of 10 ms).
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Peak resident memory of this process in KiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

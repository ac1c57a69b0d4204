//! What `/proc` says of the servers under load: their memory and the CPU
//! time they used, sampled before, during and after each phase.

/// Memory of a set of processes: (Rss, Pss) in KiB, from smaps_rollup.
pub(super) fn memory_kib(pids: &[u32]) -> (u64, u64) {
    let mut rss = 0;
    let mut pss = 0;
    for pid in pids {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            for line in text.lines() {
                let value = || {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                if line.starts_with("Rss:") {
                    rss += value();
                } else if line.starts_with("Pss:") {
                    pss += value();
                }
            }
        } else if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("VmRSS:") {
                    let kib: u64 = value
                        .split_whitespace()
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    rss += kib;
                    pss += kib;
                }
            }
        }
    }
    (rss, pss)
}

/// CPU seconds (user + system) used so far by a set of processes.
pub(super) fn cpu_secs(pids: &[u32]) -> f64 {
    // `/proc/<pid>/stat` counts in clock ticks: sysconf(_SC_CLK_TCK).
    let ticks = rustix::param::clock_ticks_per_second().max(1) as f64;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            let fields: Vec<&str> = after.split_whitespace().collect();
            let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
            (field(14).unwrap_or(0.0) + field(15).unwrap_or(0.0)) / ticks
        })
        .sum()
}

//! The one clock every process of a run reads: a worker stamps the moment
//! it parsed a terminal event, the coordinator the moment it sent the
//! report, and the two are subtracted.

use rustix::time::{ClockId, clock_gettime};

/// CLOCK_MONOTONIC in nanoseconds. `std::time::Instant` reads the same
/// clock but cannot cross a process boundary; this value can, as a number.
pub fn mono_ns() -> u64 {
    let now = clock_gettime(ClockId::Monotonic);
    // The monotonic clock counts from boot: never negative.
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

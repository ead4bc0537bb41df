//! The demo's clock for links and traffic: monotonic nanoseconds (`std::time::Instant`, which is
//! `CLOCK_MONOTONIC` on Linux) since a process-wide epoch, offset by one second so that no real
//! time is 0 (engines read 0 as "never").

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Monotonic time now, ns.
pub fn now_ns() -> u64 {
    let e = EPOCH.get_or_init(Instant::now);
    u64::try_from(e.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1_000_000_000)
}

//! The demo's clock: the runtime's (`CLOCK_MONOTONIC` ns), so that links, traffic and engines
//! share one time base.

/// `CLOCK_MONOTONIC` now, ns (never 0).
pub fn now_ns() -> u64 {
    crate::runtime::clock::now()
}

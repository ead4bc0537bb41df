//! Deterministic simulation: emulated links driven by a virtual clock, and the two-engine
//! harness built on them.

pub mod clock;
pub mod link;
pub mod two_path;

//! The convergence engine, sans-IO (draft-04 §4.2): per-flow sequencing, reordering,
//! fragmentation, concatenation, steering and path monitoring. Time is always an argument
//! ([`Instant`], nanoseconds of a caller-chosen clock); randomness is always seeded.

pub mod capacity;
pub mod concat;
pub mod fragment;
pub mod path_monitor;
pub mod reassembly;
pub mod reorder;
pub mod seqnum;
pub mod sequencer;
pub mod steering;

/// A point in time: nanoseconds since an arbitrary epoch chosen by the caller (the runtime's
/// monotonic clock, or a simulator's virtual clock).
pub type Instant = u64;

/// Nanoseconds per millisecond, for readable constants.
pub const MS: u64 = 1_000_000;

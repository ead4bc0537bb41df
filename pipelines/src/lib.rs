//! Sans-IO logic of the MAMS user plane (draft-zhu-intarea-mams-user-protocol-04).
//!
//! * [`wire`]: checked zero-copy views and validated representations of every header we touch.
//! * [`buf`]: the [`buf::PacketBuf`] trait (an mbuf-like buffer with head- and tailroom) and a
//!   heap-backed implementation.
//! * [`mx`]: MX PDU transforms (add and strip the MX trailer with the §4.2.1 IP-header rules).
//! * [`flow`]: the convergence engine (sequencing, reordering, fragmentation, concatenation,
//!   steering, path monitoring).
//! * [`supervisor`]: path supervision (probes, keep-alives, liveness, R-CID endpoint learning,
//!   restart detection): the slow path the runtime ships and the simulator drives.
//! * [`sim`]: the deterministic two-engine simulator.
//!
//! Nothing here does I/O, reads a clock or draws unseeded randomness.
#![forbid(unsafe_code)]

pub mod buf;
pub mod drop;
pub mod engine;
pub mod flow;
pub mod mx;
pub mod wire;

pub use buf::{HeapBuf, PacketBuf};
pub use drop::DropReason;
pub mod sim;
pub mod supervisor;

/// Which way a PDU travels. Some formats need it: a type-1 MX control PDU is a probe REQ
/// downlink and a probe ACK uplink (draft-04 §5.2, `WIRE.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// N-MADP to C-MADP.
    Downlink,
    /// C-MADP to N-MADP.
    Uplink,
}

//! Ports: where packets enter and leave the data plane. Every kind of port (in-memory ring,
//! AF_PACKET, TUN, UDP socket, DPDK, AF_XDP) sits behind [`Port`], which moves bursts of
//! [`PacketBuf`]s. Buffers come from and return to a [`BufPool`] owned by the calling worker, so
//! the fast path allocates nothing once warm.

pub mod af_packet;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod ring;
mod sys;
pub mod tun;
pub mod udp_socket;

pub use pipelines::buf::{BufPool, HeapPool};
use pipelines::PacketBuf;

/// Packets per burst, as in DPDK's examples and VPP's vectors.
pub const BURST: usize = 32;

/// Counters every port keeps. Reading them never stops the port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Received packets lost before we saw them (kernel or NIC drops, ring full on the far side).
    pub rx_dropped: u64,
    /// Packets handed to `tx_burst` that the port could not send.
    pub tx_dropped: u64,
    /// Receive calls that failed (e.g. a socket error), each counted once.
    pub rx_errors: u64,
    /// Transmit calls that failed.
    pub tx_errors: u64,
    /// Receive buffers the pool could not provide.
    pub rx_nobuf: u64,
}

/// A bidirectional packet port.
pub trait Port<B: PacketBuf>: Send {
    /// A short name for counters and logs (e.g. `ring0`, `af_packet:eth1`).
    fn name(&self) -> &str;
    /// Appends up to `max` received packets to `out` and returns how many. Never blocks.
    fn rx_burst(&mut self, pool: &mut dyn BufPool<B>, out: &mut Vec<B>, max: usize) -> usize;
    /// Sends every packet drained from `pkts`: what the port cannot send is freed to `pool` and
    /// counted in `tx_dropped`. Returns how many were sent. `pkts` is empty afterwards.
    fn tx_burst(&mut self, pool: &mut dyn BufPool<B>, pkts: &mut Vec<B>) -> usize;
    /// The port's counters.
    fn stats(&self) -> PortStats;
}

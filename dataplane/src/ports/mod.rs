//! Ports: where packets enter and leave the data plane. Every kind of port (in-memory ring,
//! AF_PACKET, TUN, UDP socket, DPDK, AF_XDP) sits behind [`Port`], which moves bursts of
//! [`PacketBuf`]s. Buffers come from and return to a [`BufPool`] owned by the calling worker, so
//! the fast path allocates nothing once warm.

pub mod af_packet;
pub mod ring;

use pipelines::{HeapBuf, PacketBuf};

/// Packets per burst, as in DPDK's examples and VPP's vectors.
pub const BURST: usize = 32;

/// A source of empty packet buffers, owned by one worker (no locking).
pub trait BufPool<B: PacketBuf> {
    /// An empty buffer with the pool's default headroom, or `None` when exhausted.
    fn alloc(&mut self) -> Option<B>;
    /// Returns a buffer to the pool.
    fn free(&mut self, buf: B);
}

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

/// A pool of [`HeapBuf`]s: a free list that grows to `limit` buffers and then refuses, like a
/// DPDK mempool of fixed size.
#[derive(Debug)]
pub struct HeapPool {
    free: Vec<HeapBuf>,
    headroom: usize,
    capacity: usize,
    allocated: usize,
    limit: usize,
}

impl HeapPool {
    /// A pool of at most `limit` buffers of `capacity` bytes with `headroom` bytes of headroom,
    /// `prealloc` of them allocated now.
    pub fn new(limit: usize, prealloc: usize, headroom: usize, capacity: usize) -> Self {
        let prealloc = prealloc.min(limit);
        HeapPool {
            free: (0..prealloc)
                .map(|_| HeapBuf::new(headroom, capacity))
                .collect(),
            headroom,
            capacity,
            allocated: prealloc,
            limit,
        }
    }

    /// Buffers ever created by this pool (in use + free).
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    /// Buffers currently free in the pool.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

impl Default for HeapPool {
    fn default() -> Self {
        HeapPool::new(
            8192,
            4 * BURST,
            pipelines::buf::DEFAULT_HEADROOM,
            pipelines::buf::DEFAULT_CAPACITY,
        )
    }
}

impl BufPool<HeapBuf> for HeapPool {
    fn alloc(&mut self) -> Option<HeapBuf> {
        if let Some(mut b) = self.free.pop() {
            b.reset(self.headroom);
            return Some(b);
        }
        if self.allocated < self.limit {
            self.allocated += 1;
            return Some(HeapBuf::new(self.headroom, self.capacity));
        }
        None
    }

    fn free(&mut self, buf: HeapBuf) {
        // Buffers of another geometry (e.g. from another pool) are simply dropped.
        if buf.capacity() == self.capacity && self.free.len() < self.limit {
            self.free.push(buf);
        }
    }
}

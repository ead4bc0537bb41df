//! Packet buffers: the operations the data plane needs, shaped after DPDK's mbuf API
//! (`rte_pktmbuf_prepend`, `_append`, `_adj`, `_trim`) so that a heap buffer and an mbuf are
//! interchangeable behind one trait.

/// A contiguous packet with reserved room before and after its data.
///
/// Growing operations never reallocate: when the room is missing they return `None` and leave
/// the buffer unchanged (as `rte_pktmbuf_prepend` does), so the fast path can count the failure.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes in front of the data.
    fn headroom(&self) -> usize;
    /// Free bytes after the data.
    fn tailroom(&self) -> usize;
    /// Grows the data by `n` bytes at the front and returns them (contents unspecified).
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Grows the data by `n` bytes at the back and returns them (contents unspecified).
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front. Returns false (and changes nothing) if `n > len`.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the back. Returns false (and changes nothing) if `n > len`.
    fn trim(&mut self, n: usize) -> bool;

    /// Length of the data.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the buffer holds no data.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends `bytes` at the back; false (unchanged) when the tailroom is too small.
    fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        match self.append(bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
    /// Prepends `bytes` at the front; false (unchanged) when the headroom is too small.
    fn prepend_slice(&mut self, bytes: &[u8]) -> bool {
        match self.prepend(bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
    /// When the packet was received (the runtime's clock, ns; 0 = not stamped: a buffer the
    /// data plane made itself). The runtime stamps on receive and measures each packet's
    /// residence time on transmit. Buffers without room for it keep the default (always 0).
    fn rx_stamp(&self) -> u64 {
        0
    }
    /// Sets [`PacketBuf::rx_stamp`].
    fn set_rx_stamp(&mut self, _at: u64) {}
}

/// Default headroom of a [`HeapBuf`]: room for outer Ethernet + IPv6 + UDP headers, like
/// DPDK's `RTE_PKTMBUF_HEADROOM` (128).
pub const DEFAULT_HEADROOM: usize = 128;
/// Default capacity of a [`HeapBuf`] (headroom + data + tailroom), like a 2 KiB mbuf data room.
pub const DEFAULT_CAPACITY: usize = 2048 + DEFAULT_HEADROOM;

/// A fixed-capacity heap buffer implementing [`PacketBuf`].
#[derive(Clone)]
pub struct HeapBuf {
    storage: Box<[u8]>,
    start: usize,
    end: usize,
    /// [`PacketBuf::rx_stamp`] (metadata: not part of equality).
    stamp: u64,
}

impl PartialEq for HeapBuf {
    fn eq(&self, o: &HeapBuf) -> bool {
        self.storage == o.storage && self.start == o.start && self.end == o.end
    }
}

impl Eq for HeapBuf {}

impl HeapBuf {
    /// An empty buffer of `capacity` bytes whose data starts `headroom` bytes in.
    /// `headroom` is clamped to `capacity`.
    pub fn new(headroom: usize, capacity: usize) -> Self {
        let start = headroom.min(capacity);
        HeapBuf {
            storage: vec![0u8; capacity].into_boxed_slice(),
            start,
            end: start,
            stamp: 0,
        }
    }

    /// A buffer holding a copy of `data`, with the default headroom and at least the default
    /// capacity (more if `data` needs it, always leaving 64 bytes of tailroom).
    pub fn from_slice(data: &[u8]) -> Self {
        let capacity = DEFAULT_CAPACITY.max(DEFAULT_HEADROOM + data.len() + 64);
        Self::with_room(
            data,
            DEFAULT_HEADROOM,
            capacity - DEFAULT_HEADROOM - data.len(),
        )
    }

    /// A buffer holding a copy of `data` with exactly `headroom` and `tailroom` free bytes.
    pub fn with_room(data: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut b = HeapBuf::new(headroom, headroom + data.len() + tailroom);
        b.storage[headroom..headroom + data.len()].copy_from_slice(data);
        b.end = headroom + data.len();
        b
    }

    /// Total bytes of storage.
    pub fn capacity(&self) -> usize {
        self.storage.len()
    }

    /// Empties the buffer and restores `headroom` (clamped to the capacity), like
    /// `rte_pktmbuf_reset`.
    pub fn reset(&mut self, headroom: usize) {
        self.start = headroom.min(self.storage.len());
        self.end = self.start;
        self.stamp = 0;
    }

    /// Copies the data out.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data().to_vec()
    }
}

impl Default for HeapBuf {
    fn default() -> Self {
        HeapBuf::new(DEFAULT_HEADROOM, DEFAULT_CAPACITY)
    }
}

impl core::fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "HeapBuf {{ headroom: {}, len: {}, tailroom: {} }}",
            self.headroom(),
            self.len(),
            self.tailroom()
        )
    }
}

impl PacketBuf for HeapBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.storage.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.storage[self.start..self.start + n])
    }
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let old = self.end;
        self.end += n;
        Some(&mut self.storage[old..self.end])
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.start += n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.end -= n;
        true
    }
    fn rx_stamp(&self) -> u64 {
        self.stamp
    }
    fn set_rx_stamp(&mut self, at: u64) {
        self.stamp = at;
    }
}

/// A source of empty packet buffers, owned by one worker (no locking).
pub trait BufPool<B: PacketBuf> {
    /// An empty buffer with the pool's default headroom, or `None` when exhausted.
    fn alloc(&mut self) -> Option<B>;
    /// Returns a buffer to the pool.
    fn free(&mut self, buf: B);
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
        HeapPool::new(8192, 128, DEFAULT_HEADROOM, DEFAULT_CAPACITY)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prepend_append_adj_trim() {
        let mut b = HeapBuf::with_room(&[1, 2, 3], 4, 2);
        assert_eq!(b.data(), &[1, 2, 3]);
        assert!(b.prepend(5).is_none());
        assert!(b.append(3).is_none());
        assert_eq!(b.len(), 3, "failed growth leaves the buffer unchanged");
        assert!(b.prepend_slice(&[9, 9]));
        assert!(b.extend_from_slice(&[7, 7]));
        assert_eq!(b.data(), &[9, 9, 1, 2, 3, 7, 7]);
        assert_eq!((b.headroom(), b.tailroom()), (2, 0));
        assert!(b.adj(2));
        assert!(b.trim(2));
        assert_eq!(b.data(), &[1, 2, 3]);
        assert!(!b.adj(4));
        assert!(!b.trim(4));
        assert!(b.trim(3));
        assert!(b.is_empty());
    }

    proptest! {
        #[test]
        fn room_is_conserved(data in proptest::collection::vec(any::<u8>(), 0..300),
                             ops in proptest::collection::vec((0u8..4, 0usize..200), 0..40)) {
            let mut b = HeapBuf::from_slice(&data);
            let cap = b.capacity();
            for (op, n) in ops {
                match op {
                    0 => { let _ = b.prepend(n); }
                    1 => { let _ = b.append(n); }
                    2 => { let _ = b.adj(n); }
                    _ => { let _ = b.trim(n); }
                }
                prop_assert_eq!(b.headroom() + b.len() + b.tailroom(), cap);
            }
        }
    }
}

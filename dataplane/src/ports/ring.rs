//! In-memory ports: a pair of lock-free bounded rings (crossbeam `ArrayQueue`) joining two ports,
//! like DPDK's `net_ring`. Used by tests, `nmadp demo` and benchmarks.

use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use pipelines::PacketBuf;

use super::{BufPool, Port, PortStats};

/// One end of a ring pair.
pub struct RingPort<B> {
    name: String,
    rx: Arc<ArrayQueue<B>>,
    tx: Arc<ArrayQueue<B>>,
    stats: PortStats,
}

/// Two ports joined back to back: what one sends, the other receives.
pub fn ring_pair<B>(name_a: &str, name_b: &str, capacity: usize) -> (RingPort<B>, RingPort<B>) {
    let ab = Arc::new(ArrayQueue::new(capacity.max(1)));
    let ba = Arc::new(ArrayQueue::new(capacity.max(1)));
    (
        RingPort {
            name: name_a.to_string(),
            rx: ba.clone(),
            tx: ab.clone(),
            stats: PortStats::default(),
        },
        RingPort {
            name: name_b.to_string(),
            rx: ab,
            tx: ba,
            stats: PortStats::default(),
        },
    )
}

impl<B: PacketBuf + Send> Port<B> for RingPort<B> {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(&mut self, _pool: &mut dyn BufPool<B>, out: &mut Vec<B>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(b) = self.rx.pop() else { break };
            self.stats.rx_bytes += b.len() as u64;
            out.push(b);
            n += 1;
        }
        self.stats.rx_packets += n as u64;
        n
    }

    fn tx_burst(&mut self, pool: &mut dyn BufPool<B>, pkts: &mut Vec<B>) -> usize {
        let mut sent = 0;
        for b in pkts.drain(..) {
            let len = b.len() as u64;
            match self.tx.push(b) {
                Ok(()) => {
                    sent += 1;
                    self.stats.tx_bytes += len;
                }
                Err(b) => {
                    self.stats.tx_dropped += 1;
                    pool.free(b);
                }
            }
        }
        self.stats.tx_packets += sent as u64;
        sent
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::HeapPool;
    use pipelines::HeapBuf;

    #[test]
    fn ring_pair_carries_packets_both_ways_and_counts_overflow() {
        let (mut a, mut b) = ring_pair::<HeapBuf>("a", "b", 2);
        let mut pool = HeapPool::default();
        let mut pkts: Vec<HeapBuf> = (0..3u8).map(|i| HeapBuf::from_slice(&[i; 10])).collect();
        assert_eq!(a.tx_burst(&mut pool, &mut pkts), 2);
        assert!(pkts.is_empty());
        assert_eq!(a.stats().tx_dropped, 1);
        let mut got = Vec::new();
        assert_eq!(b.rx_burst(&mut pool, &mut got, 32), 2);
        assert_eq!(got[1].data(), &[1u8; 10]);
        assert_eq!(b.stats().rx_bytes, 20);
        let mut back = vec![HeapBuf::from_slice(&[9])];
        assert_eq!(b.tx_burst(&mut pool, &mut back), 1);
        got.clear();
        assert_eq!(a.rx_burst(&mut pool, &mut got, 32), 1);
        assert_eq!(got[0].data(), &[9]);
    }

    #[test]
    fn heap_pool_is_bounded_and_recycles() {
        let mut pool = HeapPool::new(2, 0, 16, 64);
        let x = pool.alloc().unwrap();
        let y = pool.alloc().unwrap();
        assert!(pool.alloc().is_none());
        pool.free(x);
        let mut z = pool.alloc().unwrap();
        assert_eq!((z.headroom(), z.len()), (16, 0));
        assert!(z.extend_from_slice(&[1, 2]));
        pool.free(z);
        pool.free(y);
        assert_eq!(pool.allocated(), 2);
        assert_eq!(
            pool.alloc().unwrap().len(),
            0,
            "a recycled buffer comes back empty"
        );
    }
}

//! A small in-memory switch: one trunk port (a node's single delivery port, like a NIC carrying
//! every path) and one branch port per emulated link. Trunk -> branch by a classifier on the
//! packet's outer IP header; branch -> trunk merges. Unclassifiable packets are counted and
//! dropped, as a real network would drop them.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pipelines::buf::BufPool;
use pipelines::wire::ip::IpPacket;
use pipelines::{HeapBuf, PacketBuf};

use crate::ports::{HeapPool, Port, BURST};

/// Which outer address the switch forwards on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Destination address (N-MADP side: each path reaches a different client address).
    Dst,
    /// Source address (C-MADP side: each path leaves from its own access-network address).
    Src,
}

/// Branch index for a packet: the first of `addrs` equal to its source or destination IP.
pub fn classify(data: &[u8], by: Match, addrs: &[IpAddr]) -> Option<usize> {
    let ip = IpPacket::new_checked(data).ok()?;
    let a = match by {
        Match::Dst => ip.dst_addr(),
        Match::Src => ip.src_addr(),
    };
    addrs.iter().position(|x| *x == a)
}

/// A running switch.
pub struct Switch {
    stop: Arc<AtomicBool>,
    unroutable: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Switch {
    /// Starts the switch thread.
    pub fn start(
        name: &str,
        trunk: Box<dyn Port<HeapBuf>>,
        branches: Vec<Box<dyn Port<HeapBuf>>>,
        by: Match,
        addrs: Vec<IpAddr>,
    ) -> std::io::Result<Switch> {
        let stop = Arc::new(AtomicBool::new(false));
        let unroutable = Arc::new(AtomicU64::new(0));
        let (s, u) = (stop.clone(), unroutable.clone());
        let thread = std::thread::Builder::new()
            .name(format!("switch-{name}"))
            .spawn(move || run(s, u, trunk, branches, by, addrs))?;
        Ok(Switch {
            stop,
            unroutable,
            thread: Some(thread),
        })
    }

    /// Packets dropped because no branch matched.
    pub fn unroutable(&self) -> u64 {
        self.unroutable.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    stop: Arc<AtomicBool>,
    unroutable: Arc<AtomicU64>,
    mut trunk: Box<dyn Port<HeapBuf>>,
    mut branches: Vec<Box<dyn Port<HeapBuf>>>,
    by: Match,
    addrs: Vec<IpAddr>,
) {
    let mut pool = HeapPool::new(usize::MAX, 0, 128, 2048 + 128);
    let mut rx = Vec::with_capacity(BURST);
    let mut out: Vec<Vec<HeapBuf>> = branches.iter().map(|_| Vec::with_capacity(BURST)).collect();
    let mut up = Vec::with_capacity(BURST);
    while !stop.load(Ordering::Relaxed) {
        let mut moved = 0;
        rx.clear();
        moved += trunk.rx_burst(&mut pool, &mut rx, BURST);
        for p in rx.drain(..) {
            match classify(p.data(), by, &addrs).and_then(|i| out.get_mut(i)) {
                Some(o) => o.push(p),
                None => {
                    unroutable.fetch_add(1, Ordering::Relaxed);
                    pool.free(p);
                }
            }
        }
        for (b, o) in branches.iter_mut().zip(out.iter_mut()) {
            b.tx_burst(&mut pool, o);
            moved += b.rx_burst(&mut pool, &mut up, BURST);
        }
        trunk.tx_burst(&mut pool, &mut up);
        if moved == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_reads_the_outer_source_or_destination() {
        // A minimal IPv4 header 198.51.100.10 -> 203.0.113.10 (checksum not checked here).
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[3] = 20;
        h[8] = 64;
        h[9] = 17;
        h[12..16].copy_from_slice(&[198, 51, 100, 10]);
        h[16..20].copy_from_slice(&[203, 0, 113, 10]);
        let a: Vec<IpAddr> = vec![[198, 51, 100, 10].into(), [203, 0, 113, 10].into()];
        assert_eq!(classify(&h, Match::Src, &a), Some(0));
        assert_eq!(classify(&h, Match::Dst, &a), Some(1));
        assert_eq!(classify(&h[..10], Match::Dst, &a), None);
    }
}

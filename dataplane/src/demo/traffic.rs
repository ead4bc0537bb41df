//! Anchor-side traffic: one thread per side that both generates the flows entering that side's
//! anchor port and sinks the flows leaving it, checking each flow the way an application would:
//! per-flow order, duplicates, loss and transport checksums.
//!
//! Packets are the simulator's SDUs (`pipelines::sim::two_path::TwoPathSim::make_sdu`): real
//! IPv4 + UDP or TCP headers with valid checksums, payload `flow id (2) | counter (8) | pattern`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pipelines::buf::BufPool;
use pipelines::sim::two_path::{parse_sdu, FlowDir, FlowSpec, SizeSpec, TwoPathSim};
use pipelines::wire::ipv4::{PROTOCOL_TCP, PROTOCOL_UDP};
use pipelines::{HeapBuf, PacketBuf};

use super::clock::now_ns;
use crate::ports::{HeapPool, Port, PortStats, BURST};

/// Most packets one source may emit per loop when it is behind (a starved thread catches up
/// gradually instead of flooding the rings).
const MAX_CATCH_UP: usize = 128;

/// One flow of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub id: u16,
    pub dir: FlowDir,
    pub protocol: u8,
    pub rate_bps: u64,
    pub size: usize,
}

impl Flow {
    /// A short label: `udp#1`, `tcp#3`.
    pub fn label(&self) -> String {
        let p = if self.protocol == PROTOCOL_TCP {
            "tcp"
        } else {
            "udp"
        };
        format!("{p}#{}", self.id)
    }

    fn spec(&self) -> FlowSpec {
        FlowSpec {
            id: self.id,
            dir: self.dir,
            rate_bps: self.rate_bps,
            size: SizeSpec::Fixed(self.size),
            protocol: self.protocol,
            dscp: 0,
            count: None,
            start_ns: 0,
        }
    }

    /// (source, destination) of the flow's packets.
    pub fn endpoints(&self, anchor: IpAddr, server: IpAddr) -> (SocketAddr, SocketAddr) {
        let client = SocketAddr::new(anchor, 5000 + self.id);
        let far = SocketAddr::new(server, 6000 + self.id);
        match self.dir {
            FlowDir::Down => (far, client),
            FlowDir::Up => (client, far),
        }
    }
}

/// The demo's flows: downlink two UDP flows and one TCP-like flow (constant rate, TCP headers)
/// sharing `down_bps`; uplink one UDP and one TCP-like flow sharing `up_bps`.
pub fn demo_flows(down_bps: u64, up_bps: u64, size: usize) -> Vec<Flow> {
    let f = |id, dir, protocol, rate_bps| Flow {
        id,
        dir,
        protocol,
        rate_bps,
        size,
    };
    vec![
        f(1, FlowDir::Down, PROTOCOL_UDP, down_bps * 2 / 5),
        f(2, FlowDir::Down, PROTOCOL_UDP, down_bps * 3 / 10),
        f(3, FlowDir::Down, PROTOCOL_TCP, down_bps * 3 / 10),
        f(11, FlowDir::Up, PROTOCOL_UDP, up_bps / 2),
        f(12, FlowDir::Up, PROTOCOL_TCP, up_bps / 2),
    ]
}

/// What a sender and the application at the far end saw of one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub id: u16,
    /// Packets and bytes offered (handed to the anchor port).
    pub sent: u64,
    pub sent_bytes: u64,
    /// Distinct packets the application received.
    pub delivered: u64,
    pub bytes: u64,
    /// Packets received again.
    pub duplicates: u64,
    /// Packets received after a later one of the same flow (reordering seen by the application).
    pub out_of_order: u64,
    /// Packets with a bad IP or transport checksum, or not ours.
    pub corrupt: u64,
    /// Longest silence between two deliveries, ns.
    pub max_gap_ns: u64,
    last_rx: u64,
    next: u64,
    seen: Vec<u64>,
}

impl FlowStats {
    fn new(id: u16) -> Self {
        FlowStats {
            id,
            ..FlowStats::default()
        }
    }

    fn record(&mut self, counter: u64, len: usize, now: u64) {
        let (w, b) = ((counter / 64) as usize, counter % 64);
        if w > (1 << 24) {
            // Not a counter we could have sent (a corrupt packet that passed the checksums).
            self.corrupt += 1;
            return;
        }
        if self.seen.len() <= w {
            self.seen.resize(w + 1, 0);
        }
        if self.seen[w] & (1 << b) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[w] |= 1 << b;
        if counter < self.next {
            self.out_of_order += 1;
        }
        self.next = self.next.max(counter + 1);
        if self.delivered > 0 {
            self.max_gap_ns = self.max_gap_ns.max(now.saturating_sub(self.last_rx));
        }
        self.last_rx = now;
        self.delivered += 1;
        self.bytes += len as u64;
    }
}

/// Counters of one side's traffic thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideStats {
    /// Flows this side generates (sent counters only).
    pub tx: Vec<FlowStats>,
    /// Flows this side receives (delivery counters only).
    pub rx: Vec<FlowStats>,
    /// Received packets of no known flow.
    pub unknown: u64,
    /// The anchor port's counters (tx_dropped: the node's ring was full).
    pub port: PortStats,
}

struct Shared {
    sending: AtomicBool,
    stop: AtomicBool,
    stats: Mutex<SideStats>,
}

/// A running traffic thread.
pub struct Traffic {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    /// Starts generating `send` flows into `port` and sinking `recv` flows from it.
    pub fn start(
        name: &str,
        port: Box<dyn Port<HeapBuf>>,
        send: Vec<Flow>,
        recv: Vec<Flow>,
        anchor: IpAddr,
        server: IpAddr,
    ) -> std::io::Result<Traffic> {
        let shared = Arc::new(Shared {
            sending: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            stats: Mutex::new(SideStats {
                tx: send.iter().map(|f| FlowStats::new(f.id)).collect(),
                rx: recv.iter().map(|f| FlowStats::new(f.id)).collect(),
                ..SideStats::default()
            }),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("traffic-{name}"))
            .spawn(move || run(sh, port, send, recv, anchor, server))?;
        Ok(Traffic {
            shared,
            thread: Some(thread),
        })
    }

    /// Stops generating; sinking goes on (the network drains).
    pub fn stop_sending(&self) {
        self.shared.sending.store(false, Ordering::Relaxed);
    }

    /// The latest counters.
    pub fn stats(&self) -> SideStats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.shared.sending.store(false, Ordering::Relaxed);
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Source {
    flow: Flow,
    spec: FlowSpec,
    src: SocketAddr,
    dst: SocketAddr,
    counter: u64,
    next_at: u64,
    interval_ns: u64,
}

fn run(
    sh: Arc<Shared>,
    mut port: Box<dyn Port<HeapBuf>>,
    send: Vec<Flow>,
    recv: Vec<Flow>,
    anchor: IpAddr,
    server: IpAddr,
) {
    let mut pool = HeapPool::new(usize::MAX, 256, 128, 2048 + 128);
    let start = now_ns();
    let mut sources: Vec<Source> = send
        .iter()
        .map(|f| {
            let (src, dst) = f.endpoints(anchor, server);
            Source {
                flow: *f,
                spec: f.spec(),
                src,
                dst,
                counter: 0,
                next_at: start,
                interval_ns: (f.size as u64 * 8 * 1_000_000_000)
                    .checked_div(f.rate_bps)
                    .unwrap_or(u64::MAX)
                    .max(1),
            }
        })
        .collect();
    let mut local = SideStats {
        tx: send.iter().map(|f| FlowStats::new(f.id)).collect(),
        rx: recv.iter().map(|f| FlowStats::new(f.id)).collect(),
        ..SideStats::default()
    };
    let mut burst = Vec::with_capacity(BURST * 4);
    let mut rx = Vec::with_capacity(BURST);
    while !sh.stop.load(Ordering::Relaxed) {
        let now = now_ns();
        if sh.sending.load(Ordering::Relaxed) {
            for (i, s) in sources.iter_mut().enumerate() {
                let mut n = 0;
                while s.next_at <= now && n < MAX_CATCH_UP && s.flow.rate_bps > 0 {
                    let pkt = TwoPathSim::make_sdu(&mut pool, &s.spec, s.counter, s.src, s.dst);
                    if let Some(t) = local.tx.get_mut(i) {
                        t.sent += 1;
                        t.sent_bytes += pkt.len() as u64;
                    }
                    burst.push(pkt);
                    s.counter += 1;
                    s.next_at += s.interval_ns;
                    n += 1;
                    if burst.len() >= BURST {
                        port.tx_burst(&mut pool, &mut burst);
                    }
                }
            }
            port.tx_burst(&mut pool, &mut burst);
        }
        // Sink.
        loop {
            rx.clear();
            let n = port.rx_burst(&mut pool, &mut rx, BURST);
            let t = now_ns();
            for p in rx.drain(..) {
                match parse_sdu(p.data()) {
                    Some((id, counter, ok)) => match local.rx.iter_mut().find(|f| f.id == id) {
                        Some(f) if ok => f.record(counter, p.len(), t),
                        Some(f) => f.corrupt += 1,
                        None => local.unknown += 1,
                    },
                    None => local.unknown += 1,
                }
                pool.free(p);
            }
            if n < BURST {
                break;
            }
        }
        local.port = port.stats();
        if let Ok(mut s) = sh.stats.try_lock() {
            s.clone_from(&local);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    local.port = port.stats();
    if let Ok(mut s) = sh.stats.lock() {
        *s = local;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_counts_reordering_duplicates_and_gaps_like_an_application() {
        let mut f = FlowStats::new(1);
        for (c, t) in [(0, 10), (1, 20), (3, 30), (2, 40), (3, 50), (4, 150)] {
            f.record(c, 100, t);
        }
        assert_eq!(f.delivered, 5);
        assert_eq!(f.out_of_order, 1, "2 after 3");
        assert_eq!(f.duplicates, 1, "3 twice");
        assert_eq!(
            f.max_gap_ns, 110,
            "from the delivery at 40 to 150 (the duplicate at 50 is not a delivery)"
        );
        assert_eq!(f.bytes, 500);
    }

    #[test]
    fn demo_flows_share_the_offered_rates() {
        let fl = demo_flows(60_000_000, 10_000_000, 1400);
        let down: u64 = fl
            .iter()
            .filter(|f| f.dir == FlowDir::Down)
            .map(|f| f.rate_bps)
            .sum();
        let up: u64 = fl
            .iter()
            .filter(|f| f.dir == FlowDir::Up)
            .map(|f| f.rate_bps)
            .sum();
        assert_eq!((down, up), (60_000_000, 10_000_000));
        assert!(fl
            .iter()
            .any(|f| f.protocol == PROTOCOL_TCP && f.dir == FlowDir::Down));
    }
}

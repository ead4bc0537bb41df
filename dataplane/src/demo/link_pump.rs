//! A link pump: a thread that moves packets between two ports through two
//! [`EmulatedLink`]s (one per direction) in real time. The link model is the simulator's
//! (`pipelines::sim::link`, time as an argument); this thread only feeds it `CLOCK_MONOTONIC`
//! nanoseconds and sleeps until the next arrival (bounded, so new packets are picked up).
//!
//! Side A is the N-MADP's side ("down" is A -> B), side B the C-MADP's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pipelines::sim::link::{EmulatedLink, LinkConfig, LinkStats};
use pipelines::HeapBuf;

use super::clock::now_ns;
use crate::ports::{HeapPool, Port, BURST};

/// Longest sleep between two looks at the ports: bounds the added latency of a packet offered
/// to an idle link (the links' delays are tens of ms; this is well below a serialization time
/// at the demo's rates).
const MAX_IDLE_NS: u64 = 200_000;

/// Which way through the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkDir {
    /// A -> B (N-MADP to C-MADP).
    Down,
    /// B -> A.
    Up,
}

/// A change applied by the pump thread between two bursts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkCmd {
    /// New configuration for one direction (delay, jitter, rate, loss...).
    Config(LinkDir, LinkConfig),
    /// Both directions up or down.
    Up(bool),
}

/// Statistics of both directions, copied out by the pump thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpStats {
    pub down: LinkStats,
    pub up: LinkStats,
    pub is_up: bool,
}

struct Shared {
    stop: AtomicBool,
    cmds: Mutex<Vec<LinkCmd>>,
    stats: Mutex<PumpStats>,
}

/// A running link pump.
pub struct LinkPump {
    name: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LinkPump {
    /// Starts the thread. `a` is the N-MADP-facing port, `b` the C-MADP-facing one.
    pub fn start(
        name: &str,
        a: Box<dyn Port<HeapBuf>>,
        b: Box<dyn Port<HeapBuf>>,
        down: LinkConfig,
        up: LinkConfig,
    ) -> std::io::Result<LinkPump> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            cmds: Mutex::new(Vec::new()),
            stats: Mutex::new(PumpStats {
                is_up: down.up && up.up,
                ..PumpStats::default()
            }),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("link-{name}"))
            .spawn(move || pump(sh, a, b, down, up))?;
        Ok(LinkPump {
            name: name.to_string(),
            shared,
            thread: Some(thread),
        })
    }

    /// The link's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues a change; the thread applies it within [`MAX_IDLE_NS`].
    pub fn command(&self, cmd: LinkCmd) {
        if let Ok(mut c) = self.shared.cmds.lock() {
            c.push(cmd);
        }
    }

    /// The latest statistics.
    pub fn stats(&self) -> PumpStats {
        self.shared.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LinkPump {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pump(
    sh: Arc<Shared>,
    mut a: Box<dyn Port<HeapBuf>>,
    mut b: Box<dyn Port<HeapBuf>>,
    down: LinkConfig,
    up: LinkConfig,
) {
    let mut pool = HeapPool::new(usize::MAX, 0, 128, 2048 + 128);
    let mut l_down: EmulatedLink<HeapBuf> = EmulatedLink::with_capacity(down, 8192);
    let mut l_up: EmulatedLink<HeapBuf> = EmulatedLink::with_capacity(up, 8192);
    let mut rx = Vec::with_capacity(BURST);
    let mut tx_a = Vec::with_capacity(BURST);
    let mut tx_b = Vec::with_capacity(BURST);
    while !sh.stop.load(Ordering::Relaxed) {
        let now = now_ns();
        if let Ok(mut cmds) = sh.cmds.try_lock() {
            for c in cmds.drain(..) {
                match c {
                    LinkCmd::Config(LinkDir::Down, cfg) => l_down.set_config(cfg, now),
                    LinkCmd::Config(LinkDir::Up, cfg) => l_up.set_config(cfg, now),
                    LinkCmd::Up(u) => {
                        l_down.set_up(u, now);
                        l_up.set_up(u, now);
                    }
                }
            }
        }
        // Offer what the ports hold to the links.
        loop {
            rx.clear();
            let n = a.rx_burst(&mut pool, &mut rx, BURST);
            for p in rx.drain(..) {
                l_down.send(p, now);
            }
            if n < BURST {
                break;
            }
        }
        loop {
            rx.clear();
            let n = b.rx_burst(&mut pool, &mut rx, BURST);
            for p in rx.drain(..) {
                l_up.send(p, now);
            }
            if n < BURST {
                break;
            }
        }
        // Deliver what has arrived.
        while let Some(p) = l_down.poll(now) {
            tx_b.push(p);
            if tx_b.len() == BURST {
                b.tx_burst(&mut pool, &mut tx_b);
            }
        }
        b.tx_burst(&mut pool, &mut tx_b);
        while let Some(p) = l_up.poll(now) {
            tx_a.push(p);
            if tx_a.len() == BURST {
                a.tx_burst(&mut pool, &mut tx_a);
            }
        }
        a.tx_burst(&mut pool, &mut tx_a);
        if let Ok(mut s) = sh.stats.try_lock() {
            *s = PumpStats {
                down: *l_down.stats(),
                up: *l_up.stats(),
                is_up: l_down.is_up() && l_up.is_up(),
            };
        }
        // Sleep until the next arrival, bounded.
        let next = [l_down.next_arrival(), l_up.next_arrival()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX);
        let now = now_ns();
        let wait = next.saturating_sub(now).min(MAX_IDLE_NS);
        if wait > 0 {
            std::thread::sleep(Duration::from_nanos(wait));
        }
    }
    if let Ok(mut s) = sh.stats.lock() {
        *s = PumpStats {
            down: *l_down.stats(),
            up: *l_up.stats(),
            is_up: l_down.is_up() && l_up.is_up(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ring::ring_pair;
    use pipelines::PacketBuf;

    #[test]
    fn pump_delays_packets_by_the_link_delay_and_counts_them() {
        let (mut na, pa) = ring_pair::<HeapBuf>("n", "pa", 64);
        let (pb, mut cb) = ring_pair::<HeapBuf>("pb", "c", 64);
        let cfg = LinkConfig::default().with_delay_ns(30_000_000);
        let mut pump = LinkPump::start("t", Box::new(pa), Box::new(pb), cfg, cfg).unwrap();
        let mut pool = HeapPool::default();
        let t0 = now_ns();
        let mut pkts = vec![HeapBuf::from_slice(&[1; 100])];
        na.tx_burst(&mut pool, &mut pkts);
        let mut got = Vec::new();
        while got.is_empty() && now_ns() - t0 < 2_000_000_000 {
            cb.rx_burst(&mut pool, &mut got, 32);
            std::thread::sleep(Duration::from_millis(1));
        }
        let dt = now_ns() - t0;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data(), &[1; 100]);
        assert!(
            dt >= 30_000_000,
            "arrived after {dt} ns, before the 30 ms delay"
        );
        pump.command(LinkCmd::Up(false));
        std::thread::sleep(Duration::from_millis(5));
        let mut back = vec![HeapBuf::from_slice(&[2; 10])];
        cb.tx_burst(&mut pool, &mut back);
        std::thread::sleep(Duration::from_millis(50));
        got.clear();
        assert_eq!(
            na.rx_burst(&mut pool, &mut got, 32),
            0,
            "a down link carries nothing"
        );
        pump.stop();
        let s = pump.stats();
        assert_eq!(
            (s.down.delivered, s.up.dropped_down, s.is_up),
            (1, 1, false)
        );
    }
}

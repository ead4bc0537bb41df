//! Statistics published by the workers without stopping them (DESIGN.md).
//!
//! Every worker keeps plain counters on its own stack and, every `publish_interval` (100 ms by
//! default, off the fast path), copies a [`WorkerSnapshot`] into its `parking_lot::Mutex` slot
//! and adds its local latency histogram into the slot's histogram. Readers lock a slot for the
//! time of a clone; a worker never waits on a reader for longer than that.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use pipelines::engine::{ClientId, EngineCounters};
use pipelines::flow::reassembly::ReassemblyStats;
use pipelines::flow::Instant;

use super::directory::DirStats;
use crate::ports::PortStats;

/// One port's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSnapshot {
    pub name: String,
    /// `anchor` or `delivery`.
    pub side: &'static str,
    pub stats: PortStats,
}

/// One path of a client as its owner sees it.
pub type PathSnapshot = pipelines::engine::PathStats;

/// One client as its owner sees it (`Engine::client_stats_into`, which reuses the vectors of
/// the previous snapshot).
pub type ClientSnapshot = pipelines::engine::ClientStats;

/// Counters of the worker loop itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopCounters {
    /// Loop iterations.
    pub iterations: u64,
    /// Non-empty receive bursts.
    pub bursts: u64,
    /// Packets received from ports.
    pub rx_packets: u64,
    /// Packets handed to ports for transmission.
    pub tx_packets: u64,
    /// Packets pushed to another worker's handoff ring.
    pub handoffs_out: u64,
    /// Packets taken from handoff rings.
    pub handoffs_in: u64,
    /// Packets dropped because a handoff ring was full.
    pub handoff_full: u64,
    /// Control PDUs dropped because the slow-path ring was full.
    pub control_ring_full: u64,
    /// Control PDUs passed to the slow path.
    pub control_to_slow_path: u64,
    /// Commands applied.
    pub commands: u64,
    /// Delivery packets for a path no port serves.
    pub no_port: u64,
    /// Control PDUs the slow path asked for that could not be built (peer unknown yet, ...).
    pub control_not_sent: u64,
    /// Idle sleeps.
    pub idle_sleeps: u64,
    /// Engine timer runs.
    pub polls: u64,
}

/// Everything one worker publishes.
#[derive(Debug, Clone, Default)]
pub struct WorkerSnapshot {
    pub worker: u16,
    /// When it was taken (runtime clock).
    pub at: Instant,
    pub ports: Vec<PortSnapshot>,
    pub loop_counters: LoopCounters,
    pub engine: EngineCounters,
    pub clients: Vec<ClientSnapshot>,
    pub reorder_depth: usize,
    pub reassembly: ReassemblyStats,
    pub reassembly_bytes: usize,
    pub directory: DirStats,
    /// Buffers in this worker's pool cache.
    pub pool_cached: usize,
    /// The worker has left its loop (final counters).
    pub stopped: bool,
}

impl WorkerSnapshot {
    /// The snapshot of `client`, if this worker owns it.
    pub fn client(&self, id: ClientId) -> Option<&ClientSnapshot> {
        self.clients.iter().find(|c| c.id == id)
    }
}

/// A worker's published slot.
#[derive(Debug)]
pub struct StatsSlot {
    pub snapshot: Mutex<WorkerSnapshot>,
    /// Residence time of the packets of one loop iteration (receive to transmit), ns.
    pub latency: Mutex<Histogram<u64>>,
    /// Residence time of each packet, receive to transmit, ns: reorder, equalisation and
    /// reassembly waits and handoffs included (packets the data plane made itself, such as
    /// control PDUs or the later fragments of an SDU, carry no receive time and are not
    /// counted).
    pub packet_latency: Mutex<Histogram<u64>>,
}

/// A histogram for nanosecond latencies: 1 ns .. 60 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

impl StatsSlot {
    pub fn new(worker: u16) -> StatsSlot {
        StatsSlot {
            snapshot: Mutex::new(WorkerSnapshot {
                worker,
                ..WorkerSnapshot::default()
            }),
            latency: Mutex::new(latency_histogram()),
            packet_latency: Mutex::new(latency_histogram()),
        }
    }
}

//! What the demo needs from a running N-MADP or C-MADP: its statistics and a way to stop it.
//! [`NodeView`] is the demo's own snapshot type, filled from whichever node implementation runs.

/// One delivery connection as the node sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathView {
    pub id: u8,
    pub name: String,
    /// PDUs and bytes this node sent / received on the path (outer headers included).
    pub tx_pdus: u64,
    pub tx_bytes: u64,
    pub rx_pdus: u64,
    pub rx_bytes: u64,
    /// Smoothed RTT from the path monitor's probes (N-MADP only).
    pub rtt_ns: Option<u64>,
    /// Probe loss ratio from the path monitor (N-MADP only).
    pub loss: Option<f64>,
    /// Path state (`probing`, `active`, `suspect`, `down`; a C-MADP: `usable`/`unusable`).
    pub state: String,
    /// In the steering set.
    pub usable: bool,
}

/// A snapshot of one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    pub paths: Vec<PathView>,
    /// Packets held in reorder buffers now, and the most seen.
    pub reorder_depth: u64,
    pub max_reorder_depth: u64,
    /// SDUs released out of a reorder buffer after waiting (reordering the node repaired).
    pub reordered: u64,
    /// Missing SNs given up on (lost or too late).
    pub gaps_skipped: u64,
    /// Non-zero drop counters, by reason label.
    pub drops: Vec<(String, u64)>,
    pub anchor_rx: u64,
    pub anchor_tx: u64,
    /// Implementation-specific counters (slow path, worker loop), for the JSON summary.
    pub details: serde_json::Value,
}

impl NodeView {
    /// Every path carries user data: probes answered (N-MADP `active`) or in use (C-MADP
    /// `usable`), i.e. the initialization phase of draft-04 §5.2 is over.
    pub fn all_paths_ready(&self) -> bool {
        !self.paths.is_empty() && self.paths.iter().all(|p| p.usable)
    }
}

/// A running node (N-MADP or C-MADP).
pub trait DemoNode {
    /// How the node runs, for the demo's banner (e.g. `runtime: 1 worker + slow path`).
    fn describe(&self) -> String;
    /// The latest statistics.
    fn view(&self) -> NodeView;
    /// Stops every thread of the node and waits for them.
    fn stop(&mut self);
}

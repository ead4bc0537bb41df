//! A demo node on the real runtime: [`Runtime::start_with`] with one worker thread and the
//! slow-path thread, on the demo's ring ports; statistics from the [`RuntimeHandle`] (worker
//! snapshots, slow-path path status).

use std::sync::Mutex;

use pipelines::flow::path_monitor::PathState;
use pipelines::HeapBuf;

use super::node::{DemoNode, NodeView, PathView};
use crate::config::{Config, Role};
use crate::ports::Port;
use crate::runtime::{
    DeliveryPort, Runtime, RuntimeHandle, RuntimeOptions, RuntimePorts, WorkerPorts,
};

/// A node run by the runtime.
pub struct RuntimeNode {
    label: String,
    client: String,
    handle: RuntimeHandle,
    max_depth: Mutex<u64>,
}

fn state_name(s: PathState) -> &'static str {
    match s {
        PathState::Probing => "probing",
        PathState::Active => "active",
        PathState::Suspect => "suspect",
        PathState::Down => "down",
    }
}

impl RuntimeNode {
    /// Starts the runtime for `cfg` with one worker owning `anchor` and `delivery`.
    pub fn start(
        cfg: Config,
        anchor: Box<dyn Port<HeapBuf>>,
        delivery: Vec<DeliveryPort>,
        seed: u64,
    ) -> Result<RuntimeNode, String> {
        let label = match cfg.node.role {
            Role::NMadp => "n-madp",
            Role::CMadp => "c-madp",
        };
        let client = cfg
            .clients
            .first()
            .map(|c| c.name.clone())
            .ok_or("no client in the configuration")?;
        let ports = RuntimePorts {
            workers: vec![WorkerPorts {
                anchor: Some(anchor),
                delivery,
            }],
        };
        let opts = RuntimeOptions {
            seed,
            ..RuntimeOptions::default()
        };
        let handle = Runtime::start_with(cfg, ports, opts).map_err(|e| format!("{label}: {e}"))?;
        for w in handle.warnings() {
            eprintln!("{label}: warning: {w}");
        }
        Ok(RuntimeNode {
            label: label.to_string(),
            client,
            handle,
            max_depth: Mutex::new(0),
        })
    }
}

impl DemoNode for RuntimeNode {
    fn describe(&self) -> String {
        format!(
            "{}: runtime, {} worker thread(s) + slow-path thread",
            self.label,
            self.handle.workers()
        )
    }

    fn view(&self) -> NodeView {
        let snaps = self.handle.snapshots();
        let status = self.handle.path_status();
        let id = self.handle.client_id(&self.client);
        let client = id.and_then(|id| snaps.iter().find_map(|s| s.client(id)).cloned());
        let depth: u64 = snaps.iter().map(|s| s.reorder_depth as u64).sum();
        let max_depth = {
            let mut m = self.max_depth.lock().unwrap_or_else(|e| e.into_inner());
            *m = (*m).max(depth);
            *m
        };
        let mut drops: Vec<(String, u64)> = Vec::new();
        let (mut anchor_rx, mut anchor_tx) = (0, 0);
        for s in &snaps {
            anchor_rx += s.engine.anchor_rx;
            anchor_tx += s.engine.anchor_tx;
            for (r, n) in s.engine.nonzero_drops() {
                let r = r.to_string();
                match drops.iter_mut().find(|(x, _)| *x == r) {
                    Some((_, c)) => *c += n,
                    None => drops.push((r, n)),
                }
            }
        }
        let paths = status
            .iter()
            .filter(|p| Some(p.client) == id)
            .map(|p| {
                let c = client
                    .as_ref()
                    .and_then(|c| c.paths.iter().find(|x| x.id == p.id))
                    .map(|x| x.counters)
                    .unwrap_or_default();
                let is_n = self.label == "n-madp";
                PathView {
                    id: p.id.0,
                    name: p.name.clone(),
                    tx_pdus: c.tx_pdus,
                    tx_bytes: c.tx_bytes,
                    rx_pdus: c.rx_pdus,
                    rx_bytes: c.rx_bytes,
                    rtt_ns: if is_n { p.srtt_ns } else { None },
                    loss: is_n.then_some(p.loss),
                    state: state_name(p.state).to_string(),
                    usable: p.usable,
                }
            })
            .collect();
        let cc = client.map(|c| c.counters).unwrap_or_default();
        NodeView {
            paths,
            reorder_depth: depth,
            max_reorder_depth: max_depth.max(cc.reorder.max_depth),
            reordered: cc.reorder.reordered,
            gaps_skipped: cc.reorder.gaps_skipped,
            drops,
            anchor_rx,
            anchor_tx,
            details: serde_json::json!({
                "slow_path": format!("{:?}", self.handle.slow_path_counters()),
                "loops": snaps.iter().map(|s| format!("{:?}", s.loop_counters)).collect::<Vec<_>>(),
                "ports": snaps.iter().flat_map(|s| s.ports.iter().map(|p| format!("{} {:?}", p.name, p.stats))).collect::<Vec<_>>(),
            }),
        }
    }

    fn stop(&mut self) {
        if let Err(e) = self.handle.shutdown() {
            eprintln!("{}: shutdown: {e}", self.label);
        }
    }
}

impl Drop for RuntimeNode {
    fn drop(&mut self) {
        let _ = self.handle.shutdown();
    }
}

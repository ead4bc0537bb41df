//! FALLBACK NODE — NOT THE RUNTIME. A minimal single-thread loop that runs one
//! [`pipelines::engine::Engine`] and an inline slow path (path monitors, probe REQ/ACK) over a
//! node's anchor and delivery ports. It exists only so that `nmadp demo` can run while the
//! multi-threaded runtime (`dataplane::runtime`) is not available in this build; the demo
//! prints "FALLBACK" in its banner and summary whenever this is what ran.
//!
//! The slow path follows the simulator's (`pipelines::sim::two_path`): the N-MADP probes every
//! path (draft-04 §5.2) and feeds usability and one-way delay into its engine; the C-MADP
//! answers probes and uses a path while active-phase probe REQs keep arriving on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pipelines::engine::{
    self, AnchorConnection, ClientConfig, ClientId, DeliveryConfig, Engine, EngineConfig, Output,
    TcRule,
};
use pipelines::flow::path_monitor::{PathMonitor, PathMonitorConfig, PathState};
use pipelines::flow::reassembly::ReassemblyConfig;
use pipelines::flow::reorder::{ReorderConfig, DEFAULT_TIMEOUT_NS};
use pipelines::flow::steering::{self, PathId};
use pipelines::flow::MS;
use pipelines::wire::mx_control::{ControlMessage, ControlPdu, ProbeReq};
use pipelines::wire::mx_trailer::TrailerFields;
use pipelines::HeapBuf;

use super::clock::now_ns;
use super::node::{DemoNode, NodeView, PathView};
use crate::config::{self, Config, Role};
use crate::ports::{BufPool, HeapPool, Port, BURST};

/// Engine steering mode for a configured one.
pub fn steering_mode(m: config::SteeringMode) -> steering::SteeringMode {
    match m {
        config::SteeringMode::Weighted => steering::SteeringMode::Weighted,
        config::SteeringMode::Single => steering::SteeringMode::Single,
        config::SteeringMode::ActiveStandby => steering::SteeringMode::ActiveStandby,
        config::SteeringMode::DelayAware => steering::SteeringMode::DelayAware,
        config::SteeringMode::Duplicate => steering::SteeringMode::Duplicate,
        config::SteeringMode::PerFlow => steering::SteeringMode::PerFlow,
    }
}

fn endpoint(e: Option<config::Endpoint>) -> Option<SocketAddr> {
    e.map(|e| match e {
        config::Endpoint::Udp(s) => s,
        config::Endpoint::Ip(i) => SocketAddr::new(i, 0),
    })
}

/// The engine configuration of a node's first client (the demo has exactly one).
pub fn engine_config(cfg: &Config, seed: u64) -> Option<(EngineConfig, ClientConfig)> {
    let c = cfg.clients.first()?;
    let role = match cfg.node.role {
        Role::NMadp => engine::Role::NMadp,
        Role::CMadp => engine::Role::CMadp,
    };
    let deliveries = c
        .deliveries
        .iter()
        .map(|d| {
            let (tx, rx) = match role {
                engine::Role::NMadp => (d.trailer.downlink, d.trailer.uplink),
                engine::Role::CMadp => (d.trailer.uplink, d.trailer.downlink),
            };
            let local = endpoint(d.local).unwrap_or_else(|| SocketAddr::new(c.anchor_address, 0));
            DeliveryConfig {
                id: PathId(d.id),
                adaptation: match d.adaptation {
                    config::Adaptation::Udp => engine::Adaptation::UdpTunnel {
                        header_optimization: false,
                    },
                    config::Adaptation::UdpOptimized => engine::Adaptation::UdpTunnel {
                        header_optimization: true,
                    },
                    config::Adaptation::ClientNat => engine::Adaptation::ClientNat,
                    config::Adaptation::PassThrough => engine::Adaptation::PassThrough,
                },
                local,
                remote: endpoint(d.remote),
                client_addr: match role {
                    engine::Role::NMadp => endpoint(d.remote).map(|s| s.ip()),
                    engine::Role::CMadp => Some(local.ip()),
                },
                mtu: d.mtu,
                trailer_tx: TrailerFields::new(tx.0),
                trailer_rx: TrailerFields::new(rx.0),
                priority: d.priority,
                weight: u32::from(d.weight),
                rate_bps: d.rate_mbps.map(|r| u64::from(r) * 1_000_000),
                concatenation: false,
            }
        })
        .collect();
    let traffic_classes = c
        .traffic_classes
        .iter()
        .map(|t| TcRule {
            id: t.id,
            anchor: t.anchor,
            dscp: t.rule.dscp.clone(),
            protocol: t.rule.protocol,
            remote: t.rule.remote.map(|r| (r.addr, r.prefix_len)),
            remote_ports: t.rule.remote_port.map(|r| (r.first, r.last)),
            client_ports: t.rule.client_port.map(|r| (r.first, r.last)),
            steering: Some(steering_mode(t.steering)),
        })
        .collect();
    let client = ClientConfig {
        id: ClientId(1),
        anchor_addr: c.anchor_address,
        anchors: c
            .anchors
            .iter()
            .map(|a| AnchorConnection {
                connection_id: a.connection_id,
            })
            .collect(),
        traffic_classes,
        steering: steering_mode(c.steering),
        convergence: match c.convergence {
            config::Convergence::Trailer => engine::Convergence::Trailer,
            config::Convergence::Gre => engine::Convergence::Gre,
        },
        deliveries,
    };
    let (reorder_timeout, timeout_ns) = match c.reorder.timeout {
        config::ReorderTimeout::Adaptive => (engine::ReorderTimeout::Adaptive, DEFAULT_TIMEOUT_NS),
        config::ReorderTimeout::FixedMs(ms) => (engine::ReorderTimeout::Fixed, u64::from(ms) * MS),
    };
    let ecfg = EngineConfig {
        role,
        control: cfg.control.address,
        reorder: ReorderConfig {
            window: usize::from(c.reorder.window),
            timeout_ns,
        },
        reorder_timeout,
        reassembly: ReassemblyConfig {
            max_slots: usize::from(c.reassembly.slots),
            timeout_ns: u64::from(c.reassembly.timeout_ms) * MS,
            max_sdu_bytes: usize::from(c.reassembly.max_sdu_bytes),
            ..ReassemblyConfig::default()
        },
        max_rx_flows_per_client: 16,
        seed,
    };
    Some((ecfg, client))
}

struct SlowPath {
    id: PathId,
    name: String,
    monitor: Option<PathMonitor>,
    usable: bool,
    /// C-MADP: last probe REQ seen (time, active phase).
    last_req: Option<(u64, bool)>,
}

struct Shared {
    stop: AtomicBool,
    view: Mutex<NodeView>,
}

/// A node run by the fallback loop.
pub struct FallbackNode {
    label: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FallbackNode {
    /// Starts the loop thread for `cfg` (its first client) on the given ports.
    pub fn start(
        cfg: &Config,
        anchor: Box<dyn Port<HeapBuf>>,
        delivery: Box<dyn Port<HeapBuf>>,
        seed: u64,
    ) -> Result<FallbackNode, String> {
        let (ecfg, ccfg) = engine_config(cfg, seed).ok_or("no client in the configuration")?;
        let mut eng: Engine<HeapBuf> = Engine::new(ecfg);
        eng.add_client(ccfg.clone())
            .map_err(|e| format!("engine rejected the client: {e}"))?;
        let probe = cfg.defaults.probe;
        let interval = u64::from(probe.interval_ms.max(1)) * MS;
        let mcfg = PathMonitorConfig {
            probe_interval_ns: interval,
            initial_probe_interval_ns: interval / 2,
            probe_timeout_ns: interval * 4,
            suspect_after: 2,
            down_after: u32::from(probe.dead_after.max(1)),
            up_after: 2,
            keepalive_timeout_ns: 0,
            ..PathMonitorConfig::default()
        };
        let is_n = cfg.node.role == Role::NMadp;
        let names = cfg.clients[0].deliveries.iter().map(|d| d.name.clone());
        let paths: Vec<SlowPath> = ccfg
            .deliveries
            .iter()
            .zip(names)
            .map(|(d, name)| SlowPath {
                id: d.id,
                name,
                monitor: is_n.then(|| PathMonitor::new(mcfg)),
                usable: false,
                last_req: None,
            })
            .collect();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            view: Mutex::new(NodeView::default()),
        });
        let sh = shared.clone();
        let label = if is_n { "n-madp" } else { "c-madp" };
        let detection = interval * 4;
        let thread = std::thread::Builder::new()
            .name(format!("fallback-{label}"))
            .spawn(move || run(sh, eng, paths, anchor, delivery, is_n, detection))
            .map_err(|e| e.to_string())?;
        Ok(FallbackNode {
            label: label.to_string(),
            shared,
            thread: Some(thread),
        })
    }
}

impl DemoNode for FallbackNode {
    fn describe(&self) -> String {
        format!(
            "{}: FALLBACK single-thread engine loop (runtime not integrated)",
            self.label
        )
    }

    fn view(&self) -> NodeView {
        self.shared
            .view
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FallbackNode {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Loop {
    eng: Engine<HeapBuf>,
    pool: HeapPool,
    out: Vec<Output<HeapBuf>>,
    to_anchor: Vec<HeapBuf>,
    to_delivery: Vec<HeapBuf>,
    paths: Vec<SlowPath>,
    client: ClientId,
    is_n: bool,
}

impl Loop {
    fn route(&mut self, now: u64) {
        let mut out = core::mem::take(&mut self.out);
        for o in out.drain(..) {
            match o {
                Output::Delivery { pkt, .. } => self.to_delivery.push(pkt),
                Output::Anchor(pkt) => self.to_anchor.push(pkt),
                Output::Control { path, pdu, .. } => self.on_control(path, pdu, now),
            }
        }
        self.out = out;
    }

    fn on_control(&mut self, path: Option<PathId>, pdu: ControlPdu, now: u64) {
        let Some(path) = path else { return };
        let Some(i) = self.paths.iter().position(|p| p.id == path) else {
            return;
        };
        match (self.is_n, pdu.message) {
            (true, ControlMessage::ProbeAck { ack_number }) => {
                if let Some(m) = &mut self.paths[i].monitor {
                    m.on_probe_ack(ack_number, now);
                }
            }
            (true, ControlMessage::KeepAlive { .. }) => {
                if let Some(m) = &mut self.paths[i].monitor {
                    m.on_keepalive(now);
                }
            }
            (false, ControlMessage::ProbeReq(req)) => {
                self.paths[i].last_req = Some((now, req.active_phase));
                if req.ack_requested {
                    let ack = ControlPdu {
                        cid: path.0,
                        message: ControlMessage::ProbeAck {
                            ack_number: req.sequence_number,
                        },
                    };
                    if let Some(b) = self
                        .eng
                        .build_control(self.client, path, &ack, &mut self.pool)
                    {
                        self.to_delivery.push(b);
                    }
                }
            }
            _ => {}
        }
    }

    fn slow_path(&mut self, now: u64, detection: u64) {
        for i in 0..self.paths.len() {
            let id = self.paths[i].id;
            if self.is_n {
                let last = self.eng.path_last_rx(self.client, id);
                let p = &mut self.paths[i];
                let Some(m) = &mut p.monitor else { continue };
                if let Some(last) = last.filter(|l| *l > 0) {
                    m.on_data(last);
                }
                let mut reqs = Vec::new();
                while let Some(probe) = m.poll(now) {
                    reqs.push(ControlPdu {
                        cid: id.0,
                        message: ControlMessage::ProbeReq(ProbeReq {
                            sequence_number: probe.sequence_number,
                            ack_requested: probe.ack_requested,
                            active_phase: probe.active_phase,
                            reverse_cid: probe.reverse_cid,
                            padding_len: probe.padding_len,
                        }),
                    });
                }
                let usable = m.usable();
                let owd = m.owd_estimate_ns();
                let changed = usable != p.usable;
                p.usable = usable;
                for r in reqs {
                    if let Some(b) = self.eng.build_control(self.client, id, &r, &mut self.pool) {
                        self.to_delivery.push(b);
                    }
                }
                if changed {
                    self.eng.set_path_usable(self.client, id, usable);
                }
                if let Some(owd) = owd {
                    self.eng.set_path_estimates(self.client, id, owd, None);
                }
            } else {
                let p = &mut self.paths[i];
                let usable = p
                    .last_req
                    .is_some_and(|(t, active)| active && now <= t + detection);
                if usable != p.usable {
                    p.usable = usable;
                    self.eng.set_path_usable(self.client, id, usable);
                }
            }
        }
    }

    fn view(&self, max_depth: u64) -> NodeView {
        let cc = self.eng.client_counters(self.client).unwrap_or_default();
        let depth = self.eng.reorder_depth() as u64;
        NodeView {
            paths: self
                .paths
                .iter()
                .map(|p| {
                    let c = self
                        .eng
                        .path_counters(self.client, p.id)
                        .unwrap_or_default();
                    let (rtt_ns, loss, state) = match &p.monitor {
                        Some(m) => (
                            m.srtt_ns(),
                            Some(m.loss()),
                            match m.state() {
                                PathState::Probing => "probing",
                                PathState::Active => "active",
                                PathState::Suspect => "suspect",
                                PathState::Down => "down",
                            }
                            .to_string(),
                        ),
                        None => (
                            None,
                            None,
                            if p.usable { "usable" } else { "unusable" }.to_string(),
                        ),
                    };
                    PathView {
                        id: p.id.0,
                        name: p.name.clone(),
                        tx_pdus: c.tx_pdus,
                        tx_bytes: c.tx_bytes,
                        rx_pdus: c.rx_pdus,
                        rx_bytes: c.rx_bytes,
                        rtt_ns,
                        loss,
                        state,
                    }
                })
                .collect(),
            reorder_depth: depth,
            max_reorder_depth: max_depth.max(depth).max(cc.reorder.max_depth),
            reordered: cc.reorder.reordered,
            gaps_skipped: cc.reorder.gaps_skipped,
            drops: self
                .eng
                .counters()
                .nonzero_drops()
                .map(|(r, n)| (r.to_string(), n))
                .collect(),
            anchor_rx: self.eng.counters().anchor_rx,
            anchor_tx: self.eng.counters().anchor_tx,
        }
    }
}

fn run(
    sh: Arc<Shared>,
    eng: Engine<HeapBuf>,
    paths: Vec<SlowPath>,
    mut anchor: Box<dyn Port<HeapBuf>>,
    mut delivery: Box<dyn Port<HeapBuf>>,
    is_n: bool,
    detection: u64,
) {
    let mut l = Loop {
        eng,
        pool: HeapPool::new(usize::MAX, 1024, 128, 2048 + 128),
        out: Vec::with_capacity(256),
        to_anchor: Vec::with_capacity(256),
        to_delivery: Vec::with_capacity(256),
        paths,
        client: ClientId(1),
        is_n,
    };
    let mut rx = Vec::with_capacity(BURST);
    let mut next_view = 0;
    let mut max_depth = 0u64;
    while !sh.stop.load(Ordering::Relaxed) {
        let now = now_ns();
        let mut moved = 0;
        rx.clear();
        moved += anchor.rx_burst(&mut l.pool, &mut rx, BURST);
        if !rx.is_empty() {
            l.eng
                .from_anchor_burst(&mut rx, now, &mut l.pool, &mut l.out);
            l.route(now);
        }
        rx.clear();
        moved += delivery.rx_burst(&mut l.pool, &mut rx, BURST);
        for p in rx.drain(..) {
            l.eng.from_delivery(p, now, &mut l.pool, &mut l.out);
        }
        l.route(now);
        if l.eng.next_deadline().is_some_and(|d| d <= now) {
            l.eng.poll(now, &mut l.pool, &mut l.out);
            l.route(now);
        }
        l.slow_path(now, detection);
        max_depth = max_depth.max(l.eng.reorder_depth() as u64);
        anchor.tx_burst(&mut l.pool, &mut l.to_anchor);
        delivery.tx_burst(&mut l.pool, &mut l.to_delivery);
        if now >= next_view {
            next_view = now + 50 * MS;
            if let Ok(mut v) = sh.view.lock() {
                *v = l.view(max_depth);
            }
        }
        if moved == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    if let Ok(mut v) = sh.view.lock() {
        *v = l.view(max_depth);
    }
    for b in l.to_anchor.drain(..).chain(l.to_delivery.drain(..)) {
        l.pool.free(b);
    }
}

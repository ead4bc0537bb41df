//! The admin socket's view of the runtime: [`AdminBackend`] for [`RuntimeHandle`]. Every method
//! reads published snapshots or sends commands; none touches a worker's state directly.

use std::sync::atomic::Ordering;

use crate::admin::protocol::{
    ClientInfo, CounterRow, CounterScope, CounterSet, DeviceRow, DropCounts, LatencyInfo, PathInfo,
    PathStateName, PortRow, PortsInfo, Sequencing, Status, SteeringInfo, PROTOCOL_VERSION,
};
use crate::admin::AdminBackend;
use crate::config::{Role, SteeringMode};

use pipelines::engine::ClientCounters;

use super::stats::WorkerSnapshot;
use super::RuntimeHandle;

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

impl RuntimeHandle {
    fn path_infos(&self, client: Option<&str>) -> Result<Vec<PathInfo>, String> {
        let clients = self.inner.clients.lock().clone();
        if let Some(c) = client {
            if !clients.contains_key(c) {
                return Err(format!("no client named \"{c}\""));
            }
        }
        let status = self.path_status();
        let snaps = self.snapshots();
        let mut out = Vec::new();
        for (name, e) in clients
            .iter()
            .filter(|(n, _)| client.is_none_or(|c| c == *n))
        {
            for d in &e.cfg.deliveries {
                let mut p = PathInfo::from_config(name, d);
                if let Some(s) = status.iter().find(|s| s.client == e.id && s.id.0 == d.id) {
                    p.state = PathStateName::from(s.state);
                    p.srtt_ms = s.srtt_ns.map(ms);
                    p.rttvar_ms = ms(s.rttvar_ns);
                    p.min_rtt_ms = s.min_rtt_ns.map(ms);
                    p.loss = s.loss;
                    p.tx_rate_bps = s.tx_rate_bps;
                    p.rx_rate_bps = s.rx_rate_bps;
                    if let Some(r) = s.measured_rate_bps {
                        p.shape_rate_bps = Some(r);
                    }
                }
                if let Some(ps) = snaps
                    .get(e.owner)
                    .and_then(|s| s.client(e.id))
                    .and_then(|c| c.paths.iter().find(|p| p.id.0 == d.id))
                {
                    if let Some(r) = ps.remote {
                        p.remote = Some(r.to_string());
                    }
                }
                out.push(p);
            }
        }
        Ok(out)
    }

    fn client_info(&self, name: &str) -> Result<ClientInfo, String> {
        let e = self
            .inner
            .clients
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| format!("no client named \"{name}\""))?;
        Ok(ClientInfo {
            name: name.to_owned(),
            anchor_address: e.cfg.anchor_address.to_string(),
            steering: SteeringInfo::from_client(&e.cfg),
            paths: self.path_infos(Some(name))?,
            counters: self
                .client_counter_set(name)
                .unwrap_or_else(CounterSet::zero),
        })
    }

    fn client_counter_set(&self, name: &str) -> Option<CounterSet> {
        let c = self.client_counters(name)?;
        Some(CounterSet {
            rx_packets: c.rx_sdus,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_sdus,
            tx_bytes: c.tx_bytes,
            drops: DropCounts::zero(),
            sequencing: sequencing(&c),
            ..CounterSet::zero()
        })
    }

    fn worker_counter_set(s: &WorkerSnapshot) -> CounterSet {
        let lc = s.loop_counters;
        let (mut rxb, mut txb) = (0, 0);
        for p in &s.ports {
            rxb += p.stats.rx_bytes;
            txb += p.stats.tx_bytes;
        }
        CounterSet {
            rx_packets: lc.rx_packets,
            rx_bytes: rxb,
            tx_packets: lc.tx_packets,
            tx_bytes: txb,
            bursts: lc.bursts,
            handoffs_in: lc.handoffs_in,
            handoffs_out: lc.handoffs_out,
            ring_full: lc.handoff_full + lc.control_ring_full,
            drops: DropCounts::from_array(&s.engine.drops),
            sequencing: worker_sequencing(s),
        }
    }
}

/// A client's sequencing counters (its reorder statistics summed over its receive flows).
fn sequencing(c: &ClientCounters) -> Sequencing {
    let r = &c.reorder;
    Sequencing {
        delivered: r.delivered,
        in_order: r.in_order,
        reordered: r.reordered,
        duplicates: r.duplicates,
        late: r.late,
        late_delivered: r.late_delivered,
        gaps_skipped: r.gaps_skipped,
        timeouts: r.timeouts,
        horizon_skips: r.horizon_skips,
        window_advances: r.window_advances,
        resyncs: r.resyncs,
        equalized: r.equalized,
        rx_resets: c.rx_resets,
        unsequenced: c.unsequenced,
        no_path: c.no_path,
        rebinds: c.rebinds,
        delayed: 0,
        delay_overflow: 0,
        max_depth: r.max_depth,
    }
}

/// A worker's sequencing counters: its clients' summed, and its engine's delay line.
fn worker_sequencing(s: &WorkerSnapshot) -> Sequencing {
    let mut q = Sequencing::default();
    for c in &s.clients {
        q.add(&sequencing(&c.counters));
    }
    q.delayed = s.engine.delayed;
    q.delay_overflow = s.engine.delay_overflow;
    q
}

impl AdminBackend for RuntimeHandle {
    fn status(&self) -> Result<Status, String> {
        let snaps = self.snapshots();
        let (rx, tx) = self.port_totals();
        let drops: u64 = snaps.iter().map(|s| s.engine.total_drops()).sum();
        let paths = self.path_status();
        let (cfg_role, node_name) = {
            let c = self.inner.config.lock();
            (c.node.role, c.node.name.clone())
        };
        let now = std::time::Instant::now();
        let (rx_pps, tx_pps) = {
            let mut r = self.inner.rate.lock();
            let dt = now.duration_since(r.0).as_secs_f64();
            let v = if dt > 0.0 && r.1 > 0 {
                (
                    rx.saturating_sub(r.1) as f64 / dt,
                    tx.saturating_sub(r.2) as f64 / dt,
                )
            } else {
                (0.0, 0.0)
            };
            *r = (now, rx, tx);
            v
        };
        Ok(Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: PROTOCOL_VERSION,
            role: match cfg_role {
                Role::NMadp => "n-madp".into(),
                Role::CMadp => "c-madp".into(),
            },
            node_name,
            uptime_s: self.inner.started.elapsed().as_secs(),
            workers: self.workers() as u16,
            clients: self.inner.clients.lock().len() as u64,
            paths: paths.len() as u64,
            paths_up: paths
                .iter()
                .filter(|p| p.state == pipelines::flow::path_monitor::PathState::Active)
                .count() as u64,
            rx_pps,
            tx_pps,
            rx_packets: rx,
            tx_packets: tx,
            drops,
        })
    }

    fn clients_list(&self) -> Result<Vec<ClientInfo>, String> {
        self.client_names()
            .iter()
            .map(|n| self.client_info(n))
            .collect()
    }

    fn clients_show(&self, client: &str) -> Result<ClientInfo, String> {
        self.client_info(client)
    }

    fn clients_add(&self, toml: &str) -> Result<ClientInfo, String> {
        let base = self.config();
        let c = base
            .parse_client(toml, "clients.add")
            .map_err(|e| e.to_string())?;
        let name = c.name.clone();
        self.add_client(c)?;
        self.client_info(&name)
    }

    fn clients_remove(&self, client: &str) -> Result<(), String> {
        self.remove_client(client)
    }

    fn paths_list(&self, client: Option<&str>) -> Result<Vec<PathInfo>, String> {
        self.path_infos(client)
    }

    fn steering_show(&self, client: &str) -> Result<SteeringInfo, String> {
        self.inner
            .clients
            .lock()
            .get(client)
            .map(|e| SteeringInfo::from_client(&e.cfg))
            .ok_or_else(|| format!("no client named \"{client}\""))
    }

    fn steering_set(
        &self,
        client: &str,
        tc: Option<u8>,
        mode: SteeringMode,
    ) -> Result<SteeringInfo, String> {
        self.set_steering(client, tc, mode)?;
        self.steering_show(client)
    }

    fn counters(
        &self,
        scope: CounterScope,
        client: Option<&str>,
    ) -> Result<Vec<CounterRow>, String> {
        let clients = self.inner.clients.lock().clone();
        if let Some(c) = client {
            if !clients.contains_key(c) {
                return Err(format!("no client named \"{c}\""));
            }
        }
        let snaps = self.snapshots();
        let mut rows = Vec::new();
        match scope {
            CounterScope::Workers => {
                for s in &snaps {
                    rows.push(CounterRow {
                        worker: Some(s.worker),
                        client: None,
                        path: None,
                        path_name: None,
                        counters: Self::worker_counter_set(s),
                    });
                }
            }
            CounterScope::Clients => {
                for name in clients.keys().filter(|n| client.is_none_or(|c| c == *n)) {
                    rows.push(CounterRow {
                        worker: None,
                        client: Some(name.clone()),
                        path: None,
                        path_name: None,
                        counters: self
                            .client_counter_set(name)
                            .unwrap_or_else(CounterSet::zero),
                    });
                }
            }
            CounterScope::Paths => {
                for (name, e) in clients
                    .iter()
                    .filter(|(n, _)| client.is_none_or(|c| c == *n))
                {
                    let cs = snaps.get(e.owner).and_then(|s| s.client(e.id));
                    for d in &e.cfg.deliveries {
                        let pc = cs
                            .and_then(|c| c.paths.iter().find(|p| p.id.0 == d.id))
                            .map(|p| p.counters)
                            .unwrap_or_default();
                        rows.push(CounterRow {
                            worker: None,
                            client: Some(name.clone()),
                            path: Some(d.id),
                            path_name: Some(d.name.clone()),
                            counters: CounterSet {
                                rx_packets: pc.rx_pdus,
                                rx_bytes: pc.rx_bytes,
                                tx_packets: pc.tx_pdus,
                                tx_bytes: pc.tx_bytes,
                                ..CounterSet::zero()
                            },
                        });
                    }
                }
            }
        }
        Ok(rows)
    }

    fn latency(&self) -> Result<Vec<LatencyInfo>, String> {
        let mut v = Vec::new();
        for (metric, all, one) in [
            (
                "burst",
                Self::latency_histogram as fn(&Self) -> _,
                Self::worker_latency as fn(&Self, usize) -> _,
            ),
            (
                "packet",
                Self::packet_latency_histogram,
                Self::worker_packet_latency,
            ),
        ] {
            v.push(LatencyInfo::from_histogram(metric, None, &all(self)));
            for w in 0..self.workers() {
                if let Some(h) = one(self, w) {
                    v.push(LatencyInfo::from_histogram(metric, Some(w as u16), &h));
                }
            }
        }
        Ok(v)
    }

    fn ports(&self, xstats: bool) -> Result<PortsInfo, String> {
        let mut ports = Vec::new();
        for s in self.snapshots() {
            for p in &s.ports {
                let st = p.stats;
                ports.push(PortRow {
                    worker: s.worker,
                    name: p.name.clone(),
                    side: p.side.to_owned(),
                    rx_packets: st.rx_packets,
                    rx_bytes: st.rx_bytes,
                    tx_packets: st.tx_packets,
                    tx_bytes: st.tx_bytes,
                    rx_dropped: st.rx_dropped,
                    tx_dropped: st.tx_dropped,
                    rx_errors: st.rx_errors,
                    tx_errors: st.tx_errors,
                    rx_nobuf: st.rx_nobuf,
                });
            }
        }
        // Device counters are read here, on the admin thread (rte_eth_stats_get and the
        // xstats calls may run beside the fast path).
        let devices = self
            .devices()
            .iter()
            .map(|d| {
                let mut row = DeviceRow {
                    name: d.name(),
                    rx_packets: 0,
                    rx_bytes: 0,
                    tx_packets: 0,
                    tx_bytes: 0,
                    rx_missed: 0,
                    rx_errors: 0,
                    tx_errors: 0,
                    rx_nobuf: 0,
                    xstats: Vec::new(),
                    error: None,
                };
                match d.device_stats() {
                    Ok(st) => {
                        row.rx_packets = st.rx_packets;
                        row.rx_bytes = st.rx_bytes;
                        row.tx_packets = st.tx_packets;
                        row.tx_bytes = st.tx_bytes;
                        row.rx_missed = st.rx_dropped;
                        row.rx_errors = st.rx_errors;
                        row.tx_errors = st.tx_errors;
                        row.rx_nobuf = st.rx_nobuf;
                    }
                    Err(e) => row.error = Some(e),
                }
                if xstats && row.error.is_none() {
                    match d.xstats() {
                        Ok(x) => row.xstats = x,
                        Err(e) => row.error = Some(e),
                    }
                }
                row
            })
            .collect();
        Ok(PortsInfo { ports, devices })
    }

    fn shutdown(&self) -> Result<(), String> {
        self.inner.shutdown_requested.store(true, Ordering::Release);
        Ok(())
    }
}

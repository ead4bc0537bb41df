//! The slow-path thread: path monitoring and control PDUs (draft-04 §5), off the workers.
//!
//! The logic is [`pipelines::supervisor::Supervisor`] (sans-IO, also what the simulator
//! drives); this thread is its I/O: it pops the control PDUs the workers hand out and the
//! clients added or removed, reads the workers' published per-path `last_rx` (data is liveness)
//! and turns the supervisor's actions into commands for the client's owner worker (build and
//! send a control PDU with `Engine::build_control`, `set_path_usable`, `set_path_estimates`,
//! `update_delivery`, `reset_rx_flows`). A remote learnt from an R-CID probe ACK also goes into
//! every worker's directory, so packets from it reach the owner.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pipelines::engine::{ClientId, DeliveryConfig, Role};
use pipelines::flow::path_monitor::{PathMonitorConfig, PathState};
use pipelines::flow::steering::PathId;
use pipelines::flow::Instant;
use pipelines::supervisor::{
    Action, ControlInput, Supervisor, SupervisorConfig, SupervisorCounters,
};

use super::clock::now;
use super::worker::{Command, ControlEvent};
use super::Shared;

/// A command for the slow path.
pub(crate) enum SlowCommand {
    AddClient {
        id: ClientId,
        name: String,
        owner: usize,
        deliveries: Vec<(DeliveryConfig, String)>,
    },
    RemoveClient {
        id: ClientId,
    },
}

/// Counters of the slow path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlowPathCounters {
    pub ticks: u64,
    /// Commands dropped because a worker's command ring stayed full.
    pub command_ring_full: u64,
    /// The supervisor's own (probes, ACKs, keep-alives, unknown peers, restarts, ...).
    pub supervision: SupervisorCounters,
}

/// The published state of one path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStatus {
    pub client: ClientId,
    pub client_name: String,
    pub id: PathId,
    pub name: String,
    pub state: PathState,
    pub usable: bool,
    pub srtt_ns: Option<u64>,
    pub rttvar_ns: u64,
    pub min_rtt_ns: Option<u64>,
    pub loss: f64,
    /// Weight pushed to steering (loss-scaled).
    pub weight: u32,
    /// Bytes per second ×8 sent and received on the path (outer headers included), over the
    /// owner worker's last two published snapshots.
    pub tx_rate_bps: u64,
    pub rx_rate_bps: u64,
    /// The measured capacity its shaper follows (a shaped N-MADP path without `rate_mbps`).
    pub measured_rate_bps: Option<u64>,
    pub probes_sent: u64,
    pub acks: u64,
    pub keepalives: u64,
    pub last_alive: Instant,
}

/// What the runtime knows of a client beyond the supervisor: its owner worker and names.
struct ClientMeta {
    name: String,
    owner: usize,
    path_names: BTreeMap<PathId, String>,
}

pub(crate) struct SlowPath {
    shared: Arc<Shared>,
    sup: Supervisor,
    clients: BTreeMap<ClientId, ClientMeta>,
    actions: Vec<Action>,
    ticks: u64,
    command_ring_full: u64,
    next_data_scan: Instant,
    tick: Duration,
    /// Per path: the transmit and receive rates over the owner's last two snapshots.
    rates: BTreeMap<(ClientId, PathId), PathRates>,
}

/// A path's byte counters at the last snapshot seen and the rates they gave.
#[derive(Debug, Clone, Copy, Default)]
struct PathRates {
    at: Instant,
    tx_bytes: u64,
    rx_bytes: u64,
    tx_bps: u64,
    rx_bps: u64,
}

impl PathRates {
    /// Counters of a snapshot taken at `at`; the rates move when a newer snapshot has been
    /// published (repeated reads of one snapshot change nothing).
    fn update(&mut self, at: Instant, tx_bytes: u64, rx_bytes: u64) {
        if at <= self.at {
            return;
        }
        if self.at > 0 {
            let dt = u128::from(at - self.at);
            let bps = |now: u64, before: u64| {
                u64::try_from(u128::from(now.saturating_sub(before)) * 8 * 1_000_000_000 / dt)
                    .unwrap_or(u64::MAX)
            };
            self.tx_bps = bps(tx_bytes, self.tx_bytes);
            self.rx_bps = bps(rx_bytes, self.rx_bytes);
        }
        (self.at, self.tx_bytes, self.rx_bytes) = (at, tx_bytes, rx_bytes);
    }
}

impl SlowPath {
    pub fn new(
        shared: Arc<Shared>,
        role: Role,
        mon: PathMonitorConfig,
        keepalive_ns: u64,
        tick: Duration,
    ) -> SlowPath {
        SlowPath {
            shared,
            sup: Supervisor::new(SupervisorConfig::new(role, mon, keepalive_ns)),
            clients: BTreeMap::new(),
            actions: Vec::with_capacity(256),
            ticks: 0,
            command_ring_full: 0,
            next_data_scan: 0,
            rates: BTreeMap::new(),
            tick,
        }
    }

    pub fn run(mut self) {
        while !self.shared.slow_stop.load(Ordering::Acquire) {
            let t = now();
            self.step(t);
            std::thread::sleep(self.tick);
        }
        self.publish();
    }

    fn send(&mut self, owner: usize, cmd: Command) {
        if !self
            .shared
            .push_command(owner, cmd, Duration::from_millis(50))
        {
            self.command_ring_full += 1;
        }
    }

    pub fn step(&mut self, t: Instant) {
        self.ticks += 1;
        while let Some(cmd) = self.shared.slow_commands.pop() {
            self.apply(cmd, t);
        }
        for w in 0..self.shared.workers {
            for _ in 0..4096 {
                let Some(ev) = self.shared.control[w].pop() else {
                    break;
                };
                self.on_control(ev);
            }
        }
        if t >= self.next_data_scan {
            self.scan_data();
            self.next_data_scan = t + 50 * pipelines::flow::MS;
        }
        let mut actions = core::mem::take(&mut self.actions);
        self.sup.poll(t, &mut actions);
        self.apply_actions(&mut actions);
        self.actions = actions;
        self.publish();
    }

    fn apply(&mut self, cmd: SlowCommand, t: Instant) {
        match cmd {
            SlowCommand::AddClient {
                id,
                name,
                owner,
                deliveries,
            } => {
                let cfgs: Vec<DeliveryConfig> = deliveries.iter().map(|(d, _)| *d).collect();
                self.sup.add_client(id, &cfgs, t);
                self.clients.insert(
                    id,
                    ClientMeta {
                        name,
                        owner,
                        path_names: deliveries.into_iter().map(|(d, n)| (d.id, n)).collect(),
                    },
                );
            }
            SlowCommand::RemoveClient { id } => {
                self.sup.remove_client(id);
                self.clients.remove(&id);
                self.rates.retain(|(c, _), _| *c != id);
            }
        }
    }

    fn on_control(&mut self, ev: ControlEvent) {
        let mut actions = core::mem::take(&mut self.actions);
        self.sup.on_control(
            &ControlInput {
                at: ev.at,
                client: ev.client,
                path: ev.path,
                peer: ev.peer,
                pdu: ev.pdu,
            },
            &mut actions,
        );
        self.apply_actions(&mut actions);
        self.actions = actions;
    }

    /// The supervisor's actions, as commands for the client's owner.
    fn apply_actions(&mut self, actions: &mut Vec<Action>) {
        for a in actions.drain(..) {
            let client = a.client();
            let Some(owner) = self.clients.get(&client).map(|c| c.owner) else {
                continue;
            };
            let id = client;
            let cmd = match a {
                Action::SendControl { path, pdu, .. } => Command::SendControl { id, path, pdu },
                Action::SetUsable { path, usable, .. } => {
                    Command::SetPathUsable { id, path, usable }
                }
                Action::SetEstimates { path, owd_ns, .. } => Command::SetPathEstimates {
                    id,
                    path,
                    owd_ns,
                    rate_bps: None,
                },
                Action::UpdateDelivery { d, .. } => Command::UpdateDelivery { id, d },
                Action::RemoteLearnt { d, .. } => {
                    // Packets from the new endpoint go to the client's owner (several workers).
                    if let Some(peer) = d.remote {
                        for w in 0..self.shared.workers {
                            self.send(
                                w,
                                Command::DirInsert {
                                    keys: vec![super::directory::DirKey::Socket(peer)],
                                    owner: owner as u16,
                                },
                            );
                        }
                    }
                    Command::UpdateDelivery { id, d }
                }
                Action::ResetRxFlows { .. } => Command::ResetRxFlows { id },
                Action::SetRate { path, rate_bps, .. } => {
                    Command::SetPathRate { id, path, rate_bps }
                }
            };
            self.send(owner, cmd);
        }
    }

    /// Data received on a path is liveness (the owners' published `last_rx`).
    fn scan_data(&mut self) {
        for w in 0..self.shared.workers {
            let snap = self.shared.stats[w].snapshot.lock();
            for cs in &snap.clients {
                for ps in &cs.paths {
                    self.sup
                        .on_data(cs.id, ps.id, ps.counters.last_rx, ps.remote.is_some());
                    let r = self.rates.entry((cs.id, ps.id)).or_default();
                    r.update(snap.at, ps.counters.tx_bytes, ps.counters.rx_bytes);
                    self.sup.on_sent_rate(cs.id, ps.id, r.tx_bps);
                }
            }
        }
    }

    fn publish(&self) {
        let role = self.sup.config().role;
        let mut v = Vec::new();
        for (id, p) in self.sup.paths() {
            let Some(meta) = self.clients.get(&id) else {
                continue;
            };
            let m = p.monitor();
            let st = m.stats();
            let rate = self.rates.get(&(id, p.id())).copied().unwrap_or_default();
            v.push(PathStatus {
                client: id,
                client_name: meta.name.clone(),
                id: p.id(),
                name: meta.path_names.get(&p.id()).cloned().unwrap_or_default(),
                state: p.state(role),
                usable: p.usable(role),
                srtt_ns: m.srtt_ns(),
                rttvar_ns: m.rttvar_ns(),
                min_rtt_ns: m.min_rtt_ns(),
                loss: m.loss(),
                weight: p.weight(),
                tx_rate_bps: rate.tx_bps,
                rx_rate_bps: rate.rx_bps,
                measured_rate_bps: p.capacity().map(|c| c.rate_bps()),
                probes_sent: st.probes_sent,
                acks: st.acks_matched,
                keepalives: p.keepalives(),
                last_alive: p.last_alive(),
            });
        }
        *self.shared.paths.lock() = v;
        *self.shared.slow_counters.lock() = SlowPathCounters {
            ticks: self.ticks,
            command_ring_full: self.command_ring_full,
            supervision: *self.sup.counters(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::PathRates;
    use pipelines::flow::MS;

    #[test]
    fn path_rates_come_from_consecutive_snapshots_and_ignore_a_repeated_one() {
        let mut r = PathRates::default();
        r.update(100 * MS, 1_000, 500);
        assert_eq!((r.tx_bps, r.rx_bps), (0, 0), "one snapshot gives no rate");
        // 125 000 bytes in 100 ms = 10 Mbit/s; 12 500 = 1 Mbit/s.
        r.update(200 * MS, 126_000, 13_000);
        assert_eq!((r.tx_bps, r.rx_bps), (10_000_000, 1_000_000));
        r.update(200 * MS, 999_999, 999_999);
        assert_eq!(
            (r.tx_bps, r.rx_bps),
            (10_000_000, 1_000_000),
            "same snapshot read again"
        );
        // Idle interval: back to 0; a counter that went back (engine restarted) is not negative.
        r.update(300 * MS, 126_000, 13_000);
        assert_eq!((r.tx_bps, r.rx_bps), (0, 0));
        r.update(400 * MS, 10, 10);
        assert_eq!((r.tx_bps, r.rx_bps), (0, 0));
    }
}

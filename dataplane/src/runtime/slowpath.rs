//! The slow-path thread: path monitoring and control PDUs (draft-04 §5), off the workers.
//!
//! * N-MADP: one [`PathMonitor`] per client path. Probe REQs are sent on the monitor's schedule
//!   (a `SendControl` command to the client's owner, which builds the PDU with
//!   `Engine::build_control` and transmits it); probe ACKs and keep-alives arriving as
//!   `Output::Control` feed the monitor; data received on a path (the owner's published
//!   `last_rx`) counts as liveness. When a monitor's usability, OWD estimate or loss-scaled
//!   weight changes, the owner gets `set_path_usable` / `set_path_estimates` /
//!   `update_delivery`.
//! * C-MADP: keep-alives on every path every `keepalive_ms` (draft-04 §5.1); probe REQs that
//!   ask for it are answered with a probe ACK on the R-CID path when present, else on the
//!   path the REQ came over (draft-04 §5.2). Its own view of a path is liveness: a path that
//!   has shown no sign of life (REQ, keep-alive or data) for `keepalive_timeout` while another
//!   path has, leaves the steering set until it shows one again. (Never all paths: the N-MADP
//!   learns a client's endpoints from its data, so silencing every path could never recover.)
//!
//! A control PDU from an endpoint no client owns (`client: None`) is counted and moves
//! nothing (a keep-alive carries no client identity, draft-04 §5.1), with one exception:
//!
//! * Learning an N-MADP path's remote endpoint when the configuration gives none. The engine
//!   learns it from the client's first data PDU on the path; a path that carries no data (the
//!   standby of active-standby) would never learn it, and without a remote no probe REQ can go
//!   out on it. So while a path's remote is unknown its monitor's probe REQs go over another
//!   path of the client whose remote is known, with R-CID naming the unknown one (draft-04
//!   §5.2: the C-MADP sends the ACK over the R-CID connection). A probe ACK from an unknown
//!   endpoint whose CID is such a path and whose acknowledgement number is one of the probes
//!   sent that way (known only to the client, which got the REQ on its known endpoint) proves
//!   the session: its source becomes the path's remote (`UpdateDelivery`).
//!
//! AMBIGUITY (draft-04 §5.2 does not say how the R-CID path's endpoint is found): we learn it
//! from the R-CID probe ACK as above; the proof is as strong as the 16-bit probe SN is secret
//! (an on-path observer of the known path can forge it, as it can forge data PDUs).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pipelines::engine::{ClientId, DeliveryConfig, Role};
use pipelines::flow::path_monitor::{PathMonitor, PathMonitorConfig, PathState};
use pipelines::flow::seqnum::{SeqSpace, Sn16};
use pipelines::flow::steering::PathId;
use pipelines::flow::Instant;
use pipelines::wire::mx_control::{ControlMessage, ControlPdu, ProbeReq};

use super::clock::now;
use super::worker::{Command, ControlEvent};
use super::Shared;

/// Probe SNs remembered per path for R-CID learning.
const RCID_PROBES: usize = 16;

/// C-MADP: how far a path's probe SN must go backwards to be a restarted N-MADP. Probes of one
/// monitor may travel two connections (R-CID while a remote is unknown), so a step or two back
/// is reordering, not a restart.
pub const PROBE_RESTART_BACKSTEP: i64 = 4;

/// Whether a peer's per-connection SN (keep-alive or probe) went back by more than `backstep`
/// from the newest seen: its sender restarted. `last` keeps the newest SN (or the restarted
/// one); an SN a little behind (reordering within `backstep`) changes nothing.
fn peer_sn_went_back(last: &mut Option<u16>, sn: u16, backstep: i64) -> bool {
    let restarted = last.is_some_and(|l| Sn16(sn).distance(Sn16(l)) < -backstep);
    if last.is_none_or(|l| restarted || Sn16(sn).is_after(Sn16(l))) {
        *last = Some(sn);
    }
    restarted
}

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
    pub control_rx: u64,
    pub probes_sent: u64,
    pub acks_rx: u64,
    pub acks_sent: u64,
    pub keepalives_sent: u64,
    pub keepalives_rx: u64,
    /// Control PDUs from an endpoint no client owns: counted, nothing moves.
    pub unknown_peer: u64,
    /// Control PDUs of a known client whose path could not be told.
    pub unknown_path: u64,
    /// Control PDUs of a type or direction this role does not expect.
    pub unexpected: u64,
    /// Usability changes pushed to workers.
    pub usable_changes: u64,
    /// Estimate and weight updates pushed to workers.
    pub estimate_updates: u64,
    /// Commands dropped because a worker's command ring stayed full.
    pub command_ring_full: u64,
    /// The last endpoint a control PDU came from that no client owns.
    pub last_unknown_peer: Option<std::net::SocketAddr>,
    /// N-MADP: probe REQs of a path without a remote sent over another path with R-CID.
    pub rcid_probes_sent: u64,
    /// N-MADP: path remotes learnt from an R-CID probe ACK.
    pub remotes_learnt: u64,
    /// Peer restarts detected (N-MADP: a keep-alive SN going backwards on a path; C-MADP: a
    /// probe SN going backwards by more than [`PROBE_RESTART_BACKSTEP`]), each followed by a
    /// reset of the client's receive flows.
    pub peer_restarts: u64,
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
    pub probes_sent: u64,
    pub acks: u64,
    pub keepalives: u64,
    pub last_alive: Instant,
}

struct SpPath {
    cfg: DeliveryConfig,
    name: String,
    monitor: PathMonitor,
    pushed_usable: Option<bool>,
    pushed_owd: Option<u64>,
    pushed_weight: u32,
    last_data: Instant,
    // N-MADP: whether the engine has a remote endpoint for this path (configured, learnt from
    // data or from an R-CID probe ACK); probe SNs sent over another path with R-CID = this one
    // while it had none.
    remote_known: bool,
    rcid_probes: [Option<u16>; RCID_PROBES],
    rcid_next: usize,
    /// N-MADP: the last keep-alive SN received on this path; C-MADP: the last probe SN of
    /// this path's monitor (the REQs with this path as R-CID, or over it without one). Restart
    /// detection.
    last_peer_sn: Option<u16>,
    // C-MADP.
    keepalive_sn: u16,
    next_keepalive: Instant,
    last_alive: Instant,
    keepalives_rx: u64,
}

struct SpClient {
    name: String,
    owner: usize,
    paths: Vec<SpPath>,
    /// When the peer's last restart was acted on (every path reports the same one).
    restart_at: Option<Instant>,
}

impl SpClient {
    /// Whether a restart seen at `at` is a new one (every path reports the same restart: act
    /// once within a second); if so, it is recorded.
    fn restart_is_new(&mut self, at: Instant) -> bool {
        let new = self
            .restart_at
            .is_none_or(|r| at.saturating_sub(r) > 1000 * pipelines::flow::MS);
        if new {
            self.restart_at = Some(at);
        }
        new
    }
}

pub(crate) struct SlowPath {
    shared: Arc<Shared>,
    role: Role,
    mon: PathMonitorConfig,
    keepalive_ns: u64,
    /// C-MADP: silence after which a path is taken out (while another is alive).
    silence_ns: u64,
    clients: BTreeMap<ClientId, SpClient>,
    counters: SlowPathCounters,
    next_data_scan: Instant,
    tick: Duration,
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
            role,
            mon,
            keepalive_ns: keepalive_ns.max(pipelines::flow::MS),
            // With quick failure detection, two probe intervals without a probe REQ or data
            // (the N-MADP probes every active path each interval); else the slow rule.
            silence_ns: if mon.quick_silence_ns > 0 {
                mon.quick_silence_ns
                    .max(mon.probe_interval_ns.saturating_mul(2))
            } else {
                mon.keepalive_timeout_ns.max(
                    mon.probe_interval_ns
                        .saturating_mul(u64::from(mon.down_after) + 1),
                )
            },
            clients: BTreeMap::new(),
            counters: SlowPathCounters::default(),
            next_data_scan: 0,
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
            self.counters.command_ring_full += 1;
        }
    }

    pub fn step(&mut self, t: Instant) {
        self.counters.ticks += 1;
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
        match self.role {
            Role::NMadp => self.nmadp_timers(t),
            Role::CMadp => self.cmadp_timers(t),
        }
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
                let paths = deliveries
                    .into_iter()
                    .enumerate()
                    .map(|(i, (cfg, pname))| SpPath {
                        monitor: PathMonitor::new(PathMonitorConfig {
                            first_sequence_number: (id.0 as u16).wrapping_mul(1000),
                            ..self.mon
                        }),
                        cfg,
                        name: pname,
                        pushed_usable: None,
                        pushed_owd: None,
                        pushed_weight: cfg.weight,
                        last_data: 0,
                        remote_known: cfg.remote.is_some(),
                        rcid_probes: [None; RCID_PROBES],
                        rcid_next: 0,
                        last_peer_sn: None,
                        keepalive_sn: 0,
                        // Spread the paths' keep-alives.
                        next_keepalive: t + (i as u64) * pipelines::flow::MS,
                        last_alive: t,
                        keepalives_rx: 0,
                    })
                    .collect();
                self.clients.insert(
                    id,
                    SpClient {
                        name,
                        owner,
                        paths,
                        restart_at: None,
                    },
                );
            }
            SlowCommand::RemoveClient { id } => {
                self.clients.remove(&id);
            }
        }
    }

    fn on_control(&mut self, ev: ControlEvent) {
        self.counters.control_rx += 1;
        let Some(cid) = ev.client else {
            if self.learn_from_rcid_ack(&ev) {
                return;
            }
            self.counters.unknown_peer += 1;
            self.counters.last_unknown_peer = Some(ev.peer);
            return;
        };
        let role = self.role;
        let Some(c) = self.clients.get_mut(&cid) else {
            self.counters.unknown_peer += 1;
            return;
        };
        let owner = c.owner;
        let path_id = ev.path.unwrap_or(PathId(ev.pdu.cid));
        let pi = c.paths.iter().position(|p| p.cfg.id == path_id);
        match (role, ev.pdu.message) {
            (Role::NMadp, ControlMessage::ProbeAck { ack_number }) => {
                self.counters.acks_rx += 1;
                // draft-04 §5.2: the ACK may come back over another connection (R-CID); it
                // answers the probe of the path its CID... the Probing Sequence Number is per
                // monitor, so try the path it came over first, then every other. An ACK of a
                // probe that went out over another path (R-CID) measures no RTT of this one.
                match pi {
                    Some(i) => {
                        let p = &mut c.paths[i];
                        if p.rcid_probes.contains(&Some(ack_number)) {
                            p.monitor.on_probe_ack_unmeasured(ack_number, ev.at);
                        } else {
                            p.monitor.on_probe_ack(ack_number, ev.at);
                        }
                    }
                    None => self.counters.unknown_path += 1,
                }
            }
            (Role::NMadp, ControlMessage::KeepAlive { sequence_number }) => {
                self.counters.keepalives_rx += 1;
                let Some(i) = pi else {
                    self.counters.unknown_path += 1;
                    return;
                };
                let p = &mut c.paths[i];
                p.monitor.on_keepalive(ev.at);
                p.keepalives_rx += 1;
                // draft-04 §5.1: keep-alive SNs count up per connection from the C-MADP's
                // start. One going backwards on the same connection (which delivers in order)
                // is a restarted C-MADP, whose data SNs start over too: the client's receive
                // flows must follow it at once rather than drop its packets as stale.
                // AMBIGUITY: draft-04 says nothing of restarts; this is our reading.
                let restarted = peer_sn_went_back(&mut p.last_peer_sn, sequence_number, 0);
                if restarted && c.restart_is_new(ev.at) {
                    self.peer_restarted(owner, cid);
                }
            }
            (Role::CMadp, ControlMessage::ProbeReq(req)) => {
                let Some(i) = pi else {
                    self.counters.unknown_path += 1;
                    return;
                };
                c.paths[i].last_alive = c.paths[i].last_alive.max(ev.at);
                // The probe SNs of one N-MADP path monitor count up from its start; going
                // well backwards is a restarted N-MADP, whose data SNs start over too.
                // AMBIGUITY: draft-04 says nothing of restarts; this is our reading.
                let monitor_of = req
                    .reverse_cid
                    .and_then(|r| c.paths.iter().position(|p| p.cfg.id.0 == r))
                    .unwrap_or(i);
                let restarted = peer_sn_went_back(
                    &mut c.paths[monitor_of].last_peer_sn,
                    req.sequence_number,
                    PROBE_RESTART_BACKSTEP,
                );
                if restarted && c.restart_is_new(ev.at) {
                    self.peer_restarted(owner, cid);
                }
                let Some(c) = self.clients.get_mut(&cid) else {
                    return;
                };
                if req.ack_requested {
                    // draft-04 §5.2: the ACK goes over the R-CID connection when present.
                    let back = req
                        .reverse_cid
                        .map(PathId)
                        .filter(|r| c.paths.iter().any(|p| p.cfg.id == *r))
                        .unwrap_or(path_id);
                    let pdu = ControlPdu {
                        cid: back.0,
                        message: ControlMessage::ProbeAck {
                            ack_number: req.sequence_number,
                        },
                    };
                    self.counters.acks_sent += 1;
                    self.send(
                        owner,
                        Command::SendControl {
                            id: cid,
                            path: back,
                            pdu,
                        },
                    );
                }
            }
            (Role::CMadp, ControlMessage::KeepAlive { .. }) => {
                self.counters.keepalives_rx += 1;
                if let Some(i) = pi {
                    c.paths[i].last_alive = c.paths[i].last_alive.max(ev.at);
                }
            }
            _ => self.counters.unexpected += 1,
        }
    }

    /// The peer of client `id` restarted: its receive flows start over.
    fn peer_restarted(&mut self, owner: usize, id: ClientId) {
        self.counters.peer_restarts += 1;
        self.send(owner, Command::ResetRxFlows { id });
    }

    /// N-MADP: a probe ACK from an unknown endpoint that answers a probe sent over another path
    /// with R-CID = its CID (see the module documentation). Exactly one (client, path) must
    /// match, else nothing moves.
    fn learn_from_rcid_ack(&mut self, ev: &ControlEvent) -> bool {
        let ControlMessage::ProbeAck { ack_number } = ev.pdu.message else {
            return false;
        };
        if self.role != Role::NMadp {
            return false;
        }
        let mut found = None;
        for (&id, c) in &self.clients {
            for (i, p) in c.paths.iter().enumerate() {
                // A path without a remote, or a dead one whose endpoint may have moved (a NAT
                // rebinding while it carried nothing the engine could follow).
                let open = !p.remote_known || p.monitor.state() == PathState::Down;
                if p.cfg.id.0 == ev.pdu.cid && open && p.rcid_probes.contains(&Some(ack_number)) {
                    if found.is_some() {
                        // Two sessions could have sent this probe: move nothing.
                        return false;
                    }
                    found = Some((id, i));
                }
            }
        }
        let Some((id, i)) = found else {
            return false;
        };
        let Some(c) = self.clients.get_mut(&id) else {
            return false;
        };
        let owner = c.owner;
        let p = &mut c.paths[i];
        p.remote_known = true;
        p.rcid_probes = [None; RCID_PROBES];
        self.counters.acks_rx += 1;
        self.counters.remotes_learnt += 1;
        // A real round trip (down over another path, up over this one): it counts for the
        // path's liveness and hysteresis, not for its RTT; later probes go over the path itself.
        p.monitor.on_probe_ack_unmeasured(ack_number, ev.at);
        let mut d = p.cfg;
        d.remote = Some(ev.peer);
        self.send(owner, Command::UpdateDelivery { id, d });
        // Packets from the new endpoint go to the client's owner (several workers).
        for w in 0..self.shared.workers {
            self.send(
                w,
                Command::DirInsert {
                    keys: vec![super::directory::DirKey::Socket(ev.peer)],
                    owner: owner as u16,
                },
            );
        }
        true
    }

    /// Data received on a path is liveness (the owners' published `last_rx`).
    fn scan_data(&mut self) {
        for w in 0..self.shared.workers {
            let snap = self.shared.stats[w].snapshot.lock();
            for cs in &snap.clients {
                let Some(c) = self.clients.get_mut(&cs.id) else {
                    continue;
                };
                for ps in &cs.paths {
                    let last = ps.counters.last_rx;
                    if let Some(p) = c.paths.iter_mut().find(|p| p.cfg.id == ps.id) {
                        // Learnt by the engine from data (or configured): monotonic, a
                        // snapshot older than an R-CID learning must not undo it.
                        p.remote_known |= ps.remote.is_some();
                        if last > p.last_data {
                            p.last_data = last;
                            p.last_alive = p.last_alive.max(last);
                            if self.role == Role::NMadp {
                                p.monitor.on_data(last);
                            }
                        }
                    }
                }
            }
        }
    }

    fn nmadp_timers(&mut self, t: Instant) {
        let mut cmds: Vec<(usize, Command)> = Vec::new();
        for (&id, c) in self.clients.iter_mut() {
            // A path with a known remote to carry the probes of paths without one (R-CID),
            // preferring one in use.
            let via = c
                .paths
                .iter()
                .filter(|p| p.remote_known)
                .max_by_key(|p| p.monitor.usable())
                .map(|p| p.cfg.id);
            let via_usable = c
                .paths
                .iter()
                .find(|p| p.remote_known && p.monitor.usable())
                .map(|p| p.cfg.id);
            for p in c.paths.iter_mut() {
                for _ in 0..8 {
                    let Some(probe) = p.monitor.poll(t) else {
                        break;
                    };
                    self.counters.probes_sent += 1;
                    // draft-04 §5: CID = the connection the PDU is sent over; §5.2 R-CID = the
                    // connection the ACK is to come back over.
                    // A Down path's endpoint may have moved (NAT rebinding): every other probe
                    // of it goes over a usable path with R-CID = it, so that the ACK comes back
                    // over it from wherever it now is (learn_from_rcid_ack); the others go over
                    // the path itself (a path that comes back at the same endpoint).
                    let relearn = p.remote_known
                        && p.monitor.state() == PathState::Down
                        && probe.sequence_number % 2 == 1;
                    let rcid_via = match (p.remote_known, relearn) {
                        (false, _) => via,
                        (true, true) => via_usable,
                        (true, false) => None,
                    };
                    let (over, reverse_cid) = match rcid_via {
                        Some(v) if v != p.cfg.id => {
                            p.rcid_probes[p.rcid_next % RCID_PROBES] = Some(probe.sequence_number);
                            p.rcid_next = p.rcid_next.wrapping_add(1);
                            self.counters.rcid_probes_sent += 1;
                            (v, Some(p.cfg.id.0))
                        }
                        _ => (p.cfg.id, probe.reverse_cid),
                    };
                    let pdu = ControlPdu {
                        cid: over.0,
                        message: ControlMessage::ProbeReq(ProbeReq {
                            sequence_number: probe.sequence_number,
                            ack_requested: probe.ack_requested,
                            active_phase: probe.active_phase,
                            reverse_cid,
                            padding_len: probe.padding_len,
                        }),
                    };
                    cmds.push((
                        c.owner,
                        Command::SendControl {
                            id,
                            path: over,
                            pdu,
                        },
                    ));
                }
                let usable = p.monitor.usable();
                if p.pushed_usable != Some(usable) {
                    p.pushed_usable = Some(usable);
                    self.counters.usable_changes += 1;
                    cmds.push((
                        c.owner,
                        Command::SetPathUsable {
                            id,
                            path: p.cfg.id,
                            usable,
                        },
                    ));
                }
                if let Some(owd) = p.monitor.propagation_owd_ns() {
                    // Push when it moved by more than 10 % (steering and the adaptive reorder
                    // timeout do not need every sample).
                    let moved = p.pushed_owd.is_none_or(|o| o.abs_diff(owd) * 10 > o.max(1));
                    if moved {
                        p.pushed_owd = Some(owd);
                        self.counters.estimate_updates += 1;
                        cmds.push((
                            c.owner,
                            Command::SetPathEstimates {
                                id,
                                path: p.cfg.id,
                                owd_ns: owd,
                                rate_bps: None,
                            },
                        ));
                    }
                }
                let w = p.monitor.implied_weight(p.cfg.weight);
                if usable && w > 0 && w != p.pushed_weight {
                    // The engine has no weight setter: the delivery is updated with the
                    // loss-scaled weight (its learnt remote and counters are kept).
                    p.pushed_weight = w;
                    self.counters.estimate_updates += 1;
                    let mut d = p.cfg;
                    d.weight = w;
                    cmds.push((c.owner, Command::UpdateDelivery { id, d }));
                }
            }
        }
        for (w, cmd) in cmds {
            self.send(w, cmd);
        }
    }

    fn cmadp_timers(&mut self, t: Instant) {
        let mut cmds: Vec<(usize, Command)> = Vec::new();
        for (&id, c) in self.clients.iter_mut() {
            let any_alive = c
                .paths
                .iter()
                .any(|p| t.saturating_sub(p.last_alive) <= self.silence_ns);
            for p in c.paths.iter_mut() {
                if t >= p.next_keepalive {
                    p.next_keepalive = t + self.keepalive_ns;
                    let pdu = ControlPdu {
                        cid: p.cfg.id.0,
                        message: ControlMessage::KeepAlive {
                            sequence_number: p.keepalive_sn,
                        },
                    };
                    p.keepalive_sn = p.keepalive_sn.wrapping_add(1);
                    self.counters.keepalives_sent += 1;
                    cmds.push((
                        c.owner,
                        Command::SendControl {
                            id,
                            path: p.cfg.id,
                            pdu,
                        },
                    ));
                }
                let alive = t.saturating_sub(p.last_alive) <= self.silence_ns;
                let usable = alive || !any_alive;
                if p.pushed_usable != Some(usable) {
                    p.pushed_usable = Some(usable);
                    self.counters.usable_changes += 1;
                    cmds.push((
                        c.owner,
                        Command::SetPathUsable {
                            id,
                            path: p.cfg.id,
                            usable,
                        },
                    ));
                }
            }
        }
        for (w, cmd) in cmds {
            self.send(w, cmd);
        }
    }

    fn publish(&self) {
        let mut v = Vec::new();
        for (&id, c) in &self.clients {
            for p in &c.paths {
                let (state, usable) = match self.role {
                    Role::NMadp => (p.monitor.state(), p.monitor.usable()),
                    Role::CMadp => {
                        let u = p.pushed_usable.unwrap_or(true);
                        (
                            if u {
                                PathState::Active
                            } else {
                                PathState::Down
                            },
                            u,
                        )
                    }
                };
                let st = p.monitor.stats();
                v.push(PathStatus {
                    client: id,
                    client_name: c.name.clone(),
                    id: p.cfg.id,
                    name: p.name.clone(),
                    state,
                    usable,
                    srtt_ns: p.monitor.srtt_ns(),
                    rttvar_ns: p.monitor.rttvar_ns(),
                    min_rtt_ns: p.monitor.min_rtt_ns(),
                    loss: p.monitor.loss(),
                    weight: p.pushed_weight,
                    probes_sent: st.probes_sent,
                    acks: st.acks_matched,
                    keepalives: p.keepalives_rx.max(st.keepalives),
                    last_alive: p.last_alive,
                });
            }
        }
        *self.shared.paths.lock() = v;
        *self.shared.slow_counters.lock() = self.counters;
    }
}

#[cfg(test)]
mod tests {
    use super::peer_sn_went_back;

    #[test]
    fn a_peer_sn_going_back_is_a_restart_and_reordering_within_the_step_is_not() {
        let mut last = None;
        // Keep-alives (step 0): counting up, then starting over at 0.
        for sn in 0..50 {
            assert!(!peer_sn_went_back(&mut last, sn, 0));
        }
        assert!(!peer_sn_went_back(&mut last, 49, 0), "the same SN again");
        assert!(peer_sn_went_back(&mut last, 0, 0));
        assert_eq!(last, Some(0));
        // Wrapping forward is not going back.
        let mut last = Some(65_535);
        assert!(!peer_sn_went_back(&mut last, 0, 0));
        // Probes (step 4): 3 back is reordering (the newest is kept), 5 back a restart.
        let mut last = Some(1000);
        assert!(!peer_sn_went_back(&mut last, 997, 4));
        assert_eq!(last, Some(1000));
        assert!(peer_sn_went_back(&mut last, 995, 4));
        assert_eq!(last, Some(995));
    }
}

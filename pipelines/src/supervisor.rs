//! Path supervision, sans-IO: the slow path's logic (draft-04 §5), shared by the runtime's
//! slow-path thread and the simulator, so the deterministic scenarios test what ships.
//!
//! A [`Supervisor`] is fed the control PDUs its engine hands out ([`Supervisor::on_control`]),
//! the receive times of data per path ([`Supervisor::on_data`]) and the time
//! ([`Supervisor::poll`]); it answers with [`Action`]s for the caller to apply to its engine
//! (build and send a control PDU, set a path usable, push estimates, update a delivery, reset a
//! client's receive flows). It does no I/O and reads no clock.
//!
//! * N-MADP: one [`PathMonitor`] per client path. Probe REQs go out on the monitor's schedule;
//!   probe ACKs and keep-alives feed the monitor; data received on a path counts as liveness.
//!   When a monitor's usability, OWD estimate or loss-scaled weight changes, an action says so.
//! * C-MADP: keep-alives on every path every `keepalive_ns` (draft-04 §5.1); probe REQs that ask
//!   for it are answered with a probe ACK on the R-CID path when present, else on the path the
//!   REQ came over (draft-04 §5.2). Its own view of a path is liveness: a path that has shown no
//!   sign of life (REQ, keep-alive or data) for `silence_ns` while another path has, leaves the
//!   steering set until it shows one again. (Never all paths: the N-MADP learns a client's
//!   endpoints from its data, so silencing every path could never recover.)
//!
//! A control PDU from an endpoint no client owns (`client: None`) is counted and moves nothing
//! (a keep-alive carries no client identity, draft-04 §5.1), with one exception:
//!
//! * Learning an N-MADP path's remote endpoint when the configuration gives none. The engine
//!   learns it from the client's first data PDU on the path; a path that carries no data (the
//!   standby of active-standby) would never learn it, and without a remote no probe REQ can go
//!   out on it. So while a path's remote is unknown its monitor's probe REQs go over another path
//!   of the client whose remote is known, with R-CID naming the unknown one (draft-04 §5.2: the
//!   C-MADP sends the ACK over the R-CID connection). A probe ACK from an unknown endpoint whose
//!   CID is such a path and whose acknowledgement number is one of the probes sent that way
//!   (known only to the client, which got the REQ on its known endpoint) proves the session: its
//!   source becomes the path's remote ([`Action::RemoteLearnt`]). A Down path's endpoint may
//!   have moved (NAT rebinding), so every other probe of a Down path goes the same way.
//!
//! AMBIGUITY (draft-04 §5.2 does not say how the R-CID path's endpoint is found): we learn it
//! from the R-CID probe ACK as above; the proof is as strong as the 16-bit probe SN is secret
//! (an on-path observer of the known path can forge it, as it can forge data PDUs).
//!
//! Restarts (draft-04 says nothing of them; AMBIGUITY, our reading): keep-alive SNs count up per
//! connection from the C-MADP's start, so one going backwards on a connection (which delivers in
//! order) is a restarted C-MADP; on the C-MADP, a path's probe SN going back by more than
//! `probe_restart_backstep` is a restarted N-MADP. Either way the peer's data SNs start over, and
//! [`Action::ResetRxFlows`] tells the engine to follow at once rather than drop them as stale.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use crate::engine::{ClientId, DeliveryConfig, Role};
use crate::flow::capacity::{CapacityConfig, CapacityEstimator};
use crate::flow::path_monitor::{PathMonitor, PathMonitorConfig, PathState};
use crate::flow::seqnum::{SeqSpace, Sn16};
use crate::flow::steering::PathId;
use crate::flow::{Instant, MS};
use crate::wire::mx_control::{ControlMessage, ControlPdu, ProbeReq};

/// Probe SNs remembered per path for R-CID learning.
const RCID_PROBES: usize = 16;

/// Probe REQs one path's monitor may emit per poll (a monitor catching up after a long pause
/// must not flood).
const PROBES_PER_POLL: usize = 8;

/// Tuning of a [`Supervisor`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SupervisorConfig {
    pub role: Role,
    /// Per-path monitor (N-MADP). Each client's monitors start their probe SNs at
    /// `first_sequence_number + 1000 × client id`, so two clients' probes differ.
    pub monitor: PathMonitorConfig,
    /// C-MADP: keep-alive period per path.
    pub keepalive_ns: u64,
    /// C-MADP: silence after which a path leaves steering (while another path is alive).
    pub silence_ns: u64,
    /// C-MADP: how far a path's probe SN must go backwards to be a restarted N-MADP. Probes of
    /// one monitor may travel two connections (R-CID while a remote is unknown), so a step or
    /// two back is reordering, not a restart.
    pub probe_restart_backstep: u16,
    /// Every path of a client reports the same restart: it is acted on once within this long.
    pub restart_dedupe_ns: u64,
    /// An OWD estimate is pushed when it moved by more than this many percent (steering and
    /// the adaptive reorder timeout do not need every sample).
    pub estimate_change_pct: u64,
    /// N-MADP: the capacity estimators of shaped paths without a configured rate (their
    /// `initial_bps` is the shaper's configured rate).
    pub capacity: CapacityConfig,
}

impl SupervisorConfig {
    /// The configuration the runtime uses for `role`: C-MADP silence of two probe intervals with
    /// quick failure detection (the N-MADP probes every active path each interval), else
    /// `keepalive_timeout_ns` or `down_after + 1` probe intervals, whichever is longer.
    pub fn new(role: Role, monitor: PathMonitorConfig, keepalive_ns: u64) -> Self {
        let silence_ns = if monitor.quick_silence_ns > 0 {
            monitor
                .quick_silence_ns
                .max(monitor.probe_interval_ns.saturating_mul(2))
        } else {
            monitor.keepalive_timeout_ns.max(
                monitor
                    .probe_interval_ns
                    .saturating_mul(u64::from(monitor.down_after) + 1),
            )
        };
        SupervisorConfig {
            role,
            monitor,
            keepalive_ns: keepalive_ns.max(MS),
            silence_ns,
            probe_restart_backstep: 4,
            restart_dedupe_ns: 1000 * MS,
            estimate_change_pct: 10,
            capacity: CapacityConfig::default(),
        }
    }
}

/// What the caller applies to its engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Build `pdu` for `path` of `client` (`Engine::build_control`) and transmit it.
    SendControl {
        client: ClientId,
        path: PathId,
        pdu: ControlPdu,
    },
    /// `Engine::set_path_usable`.
    SetUsable {
        client: ClientId,
        path: PathId,
        usable: bool,
    },
    /// `Engine::set_path_estimates` with a one-way delay (and no rate).
    SetEstimates {
        client: ClientId,
        path: PathId,
        owd_ns: u64,
    },
    /// `Engine::update_delivery` (the loss-scaled weight changed).
    UpdateDelivery { client: ClientId, d: DeliveryConfig },
    /// `Engine::update_delivery` with the remote learnt from an R-CID probe ACK (`d.remote`);
    /// packets from that endpoint belong to `client` from now on.
    RemoteLearnt { client: ClientId, d: DeliveryConfig },
    /// The client's peer restarted: `Engine::reset_rx_flows`.
    ResetRxFlows { client: ClientId },
    /// `Engine::set_path_rate`: a shaped path without a configured rate has a new measured
    /// capacity ([`crate::flow::capacity`]); its shaper and steering follow it.
    SetRate {
        client: ClientId,
        path: PathId,
        rate_bps: u64,
    },
}

impl Action {
    /// The client the action is for.
    pub fn client(&self) -> ClientId {
        match *self {
            Action::SendControl { client, .. }
            | Action::SetUsable { client, .. }
            | Action::SetEstimates { client, .. }
            | Action::UpdateDelivery { client, .. }
            | Action::RemoteLearnt { client, .. }
            | Action::SetRate { client, .. }
            | Action::ResetRxFlows { client } => client,
        }
    }
}

/// A control PDU as the engine handed it out (`Output::Control`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlInput {
    pub at: Instant,
    pub client: Option<ClientId>,
    pub path: Option<PathId>,
    pub peer: SocketAddr,
    pub pdu: ControlPdu,
}

/// Counters of a supervisor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SupervisorCounters {
    pub polls: u64,
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
    /// Usability changes pushed.
    pub usable_changes: u64,
    /// Estimate and weight updates pushed.
    pub estimate_updates: u64,
    /// The last endpoint a control PDU came from that no client owns.
    pub last_unknown_peer: Option<SocketAddr>,
    /// N-MADP: probe REQs of a path without a remote sent over another path with R-CID.
    pub rcid_probes_sent: u64,
    /// N-MADP: path remotes learnt from an R-CID probe ACK.
    pub remotes_learnt: u64,
    /// Peer restarts detected, each followed by [`Action::ResetRxFlows`].
    pub peer_restarts: u64,
    /// Measured capacities pushed ([`Action::SetRate`]).
    pub rate_updates: u64,
}

/// Whether a peer's per-connection SN (keep-alive or probe) went back by more than `backstep`
/// from the newest seen: its sender restarted. `last` keeps the newest SN (or the restarted
/// one); an SN a little behind (reordering within `backstep`) changes nothing.
pub fn peer_sn_went_back(last: &mut Option<u16>, sn: u16, backstep: u16) -> bool {
    let restarted = last.is_some_and(|l| Sn16(sn).distance(Sn16(l)) < -i64::from(backstep));
    if last.is_none_or(|l| restarted || Sn16(sn).is_after(Sn16(l))) {
        *last = Some(sn);
    }
    restarted
}

/// Forgets that probe `key` was sent for path `v` (one entry: the same SN may be in a path's
/// ring once only, as probe SNs of one monitor count up).
fn unindex_rcid(
    index: &mut HashMap<(u8, u16), Vec<(ClientId, usize)>>,
    key: (u8, u16),
    v: (ClientId, usize),
) {
    if let Some(list) = index.get_mut(&key) {
        if let Some(at) = list.iter().position(|e| *e == v) {
            list.swap_remove(at);
        }
        if list.is_empty() {
            index.remove(&key);
        }
    }
}

/// Tells the engine when a path's usability changed.
fn push_usable(
    p: &mut SupPath,
    client: ClientId,
    usable: bool,
    counters: &mut SupervisorCounters,
    out: &mut Vec<Action>,
) {
    if p.pushed_usable != Some(usable) {
        p.pushed_usable = Some(usable);
        counters.usable_changes += 1;
        out.push(Action::SetUsable {
            client,
            path: p.cfg.id,
            usable,
        });
    }
}

/// The peer of `c` restarted at `at`: its receive flows start over, once per restart (every
/// path reports the same one).
fn note_restart(
    c: &mut SupClient,
    client: ClientId,
    at: Instant,
    dedupe_ns: u64,
    counters: &mut SupervisorCounters,
    out: &mut Vec<Action>,
) {
    if c.restart_at
        .is_none_or(|r| at.saturating_sub(r) > dedupe_ns)
    {
        c.restart_at = Some(at);
        counters.peer_restarts += 1;
        out.push(Action::ResetRxFlows { client });
    }
}

/// A new RTT sample of a path with a capacity estimator: the estimator's new rate goes to the
/// engine, and into the path's configuration (a later `UpdateDelivery` keeps it).
fn measure_capacity(
    p: &mut SupPath,
    client: ClientId,
    now: Instant,
    lost: bool,
    hold_ns: u64,
    counters: &mut SupervisorCounters,
    out: &mut Vec<Action>,
) {
    let m = &p.monitor;
    let (Some(e), Some(rtt), Some(min)) = (p.capacity.as_mut(), m.latest_rtt_ns(), m.min_rtt_ns())
    else {
        return;
    };
    if let Some(rate_bps) = e.on_rtt(now, rtt, min, lost, hold_ns) {
        if let Some(s) = p.cfg.shaper.as_mut() {
            s.rate_bps = rate_bps;
        }
        counters.rate_updates += 1;
        out.push(Action::SetRate {
            client,
            path: p.cfg.id,
            rate_bps,
        });
    }
}

/// One supervised path.
#[derive(Debug, Clone)]
pub struct SupPath {
    cfg: DeliveryConfig,
    monitor: PathMonitor,
    pushed_usable: Option<bool>,
    pushed_owd: Option<u64>,
    pushed_weight: u32,
    last_data: Instant,
    /// N-MADP: whether the engine has a remote endpoint for this path (configured, learnt from
    /// data or from an R-CID probe ACK).
    remote_known: bool,
    /// Probe SNs sent over another path with R-CID = this one.
    rcid_probes: [Option<u16>; RCID_PROBES],
    rcid_next: usize,
    /// N-MADP: the last keep-alive SN received on this path; C-MADP: the last probe SN of this
    /// path's monitor. Restart detection.
    last_peer_sn: Option<u16>,
    keepalive_sn: u16,
    next_keepalive: Instant,
    last_alive: Instant,
    keepalives_rx: u64,
    /// N-MADP, a shaped path without a configured rate: its measured capacity.
    capacity: Option<CapacityEstimator>,
}

impl SupPath {
    /// The measured capacity of a shaped path without a configured rate (N-MADP).
    pub fn capacity(&self) -> Option<&CapacityEstimator> {
        self.capacity.as_ref()
    }

    pub fn id(&self) -> PathId {
        self.cfg.id
    }
    /// The N-MADP's monitor of the path (idle on a C-MADP).
    pub fn monitor(&self) -> &PathMonitor {
        &self.monitor
    }
    /// The path's state: the monitor's on an N-MADP, the liveness verdict on a C-MADP.
    pub fn state(&self, role: Role) -> PathState {
        match role {
            Role::NMadp => self.monitor.state(),
            Role::CMadp if self.usable(role) => PathState::Active,
            Role::CMadp => PathState::Down,
        }
    }
    pub fn usable(&self, role: Role) -> bool {
        match role {
            Role::NMadp => self.monitor.usable(),
            Role::CMadp => self.pushed_usable.unwrap_or(true),
        }
    }
    /// The weight last pushed to steering (loss-scaled on an N-MADP).
    pub fn weight(&self) -> u32 {
        self.pushed_weight
    }
    /// Keep-alives received on the path.
    pub fn keepalives(&self) -> u64 {
        self.keepalives_rx.max(self.monitor.stats().keepalives)
    }
    /// The last sign of life (C-MADP: REQ, keep-alive or data; N-MADP: data).
    pub fn last_alive(&self) -> Instant {
        self.last_alive
    }
}

#[derive(Debug, Clone)]
struct SupClient {
    paths: Vec<SupPath>,
    /// When the peer's last restart was acted on.
    restart_at: Option<Instant>,
}

/// The path supervisor of one engine.
#[derive(Debug, Clone)]
pub struct Supervisor {
    cfg: SupervisorConfig,
    clients: BTreeMap<ClientId, SupClient>,
    /// (CID, probe SN) of every probe sent with R-CID -> the (client, path index) it was sent
    /// for: a probe ACK from an unknown endpoint is matched in O(1), not by a scan of every
    /// client (such ACKs come from anyone).
    rcid_index: HashMap<(u8, u16), Vec<(ClientId, usize)>>,
    counters: SupervisorCounters,
}

impl Supervisor {
    pub fn new(cfg: SupervisorConfig) -> Self {
        Supervisor {
            cfg,
            clients: BTreeMap::new(),
            rcid_index: HashMap::new(),
            counters: SupervisorCounters::default(),
        }
    }

    pub fn config(&self) -> &SupervisorConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &SupervisorCounters {
        &self.counters
    }

    /// Supervises (or supervises anew) `id`'s delivery connections from `now`.
    pub fn add_client(&mut self, id: ClientId, deliveries: &[DeliveryConfig], now: Instant) {
        let first_sn = self
            .cfg
            .monitor
            .first_sequence_number
            .wrapping_add((id.0 as u16).wrapping_mul(1000));
        let paths = deliveries
            .iter()
            .enumerate()
            .map(|(i, cfg)| SupPath {
                monitor: PathMonitor::new(PathMonitorConfig {
                    first_sequence_number: first_sn,
                    ..self.cfg.monitor
                }),
                cfg: *cfg,
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
                next_keepalive: now + (i as u64) * MS,
                last_alive: now,
                keepalives_rx: 0,
                capacity: match (self.cfg.role, cfg.shaper, cfg.rate_bps) {
                    (Role::NMadp, Some(s), None) => Some(CapacityEstimator::new(CapacityConfig {
                        initial_bps: s.rate_bps,
                        ..self.cfg.capacity
                    })),
                    _ => None,
                },
            })
            .collect();
        self.remove_client(id);
        self.clients.insert(
            id,
            SupClient {
                paths,
                restart_at: None,
            },
        );
    }

    pub fn remove_client(&mut self, id: ClientId) -> bool {
        let Some(c) = self.clients.remove(&id) else {
            return false;
        };
        for (i, p) in c.paths.iter().enumerate() {
            for sn in p.rcid_probes.iter().flatten() {
                unindex_rcid(&mut self.rcid_index, (p.cfg.id.0, *sn), (id, i));
            }
        }
        true
    }

    /// Every supervised path, by client.
    pub fn paths(&self) -> impl Iterator<Item = (ClientId, &SupPath)> + '_ {
        self.clients
            .iter()
            .flat_map(|(&id, c)| c.paths.iter().map(move |p| (id, p)))
    }

    /// One path.
    pub fn path(&self, client: ClientId, path: PathId) -> Option<&SupPath> {
        self.clients
            .get(&client)?
            .paths
            .iter()
            .find(|p| p.cfg.id == path)
    }

    fn path_mut(&mut self, client: ClientId, path: PathId) -> Option<&mut SupPath> {
        self.clients
            .get_mut(&client)?
            .paths
            .iter_mut()
            .find(|p| p.cfg.id == path)
    }

    /// A control PDU the engine handed out.
    pub fn on_control(&mut self, ev: &ControlInput, out: &mut Vec<Action>) {
        self.counters.control_rx += 1;
        let Some(cid) = ev.client else {
            if self.learn_from_rcid_ack(ev, out) {
                return;
            }
            self.counters.unknown_peer += 1;
            self.counters.last_unknown_peer = Some(ev.peer);
            return;
        };
        let (role, backstep, dedupe) = (
            self.cfg.role,
            self.cfg.probe_restart_backstep,
            self.cfg.restart_dedupe_ns,
        );
        let Some(c) = self.clients.get_mut(&cid) else {
            self.counters.unknown_peer += 1;
            return;
        };
        let path_id = ev.path.unwrap_or(PathId(ev.pdu.cid));
        let pi = c.paths.iter().position(|p| p.cfg.id == path_id);
        let mut restarted = false;
        match (role, ev.pdu.message) {
            (Role::NMadp, ControlMessage::ProbeAck { ack_number }) => {
                self.counters.acks_rx += 1;
                // An ACK of a probe that went out over another path (R-CID) measures no RTT
                // of this one.
                match pi {
                    Some(i) => {
                        let p = &mut c.paths[i];
                        if p.rcid_probes.contains(&Some(ack_number)) {
                            p.monitor.on_probe_ack_unmeasured(ack_number, ev.at);
                        } else {
                            let before = *p.monitor.stats();
                            p.monitor.on_probe_ack(ack_number, ev.at);
                            let after = p.monitor.stats();
                            if after.acks_matched > before.acks_matched {
                                let lost = after.probes_lost > before.probes_lost;
                                // The delay-compensation hold of this path's data (the engine
                                // holds each path by how much faster it is than the slowest).
                                let owd = |p: &SupPath| p.monitor.propagation_owd_ns();
                                let slowest = c.paths.iter().filter_map(owd).max().unwrap_or(0);
                                let p = &mut c.paths[i];
                                let hold = slowest.saturating_sub(owd(p).unwrap_or(slowest));
                                measure_capacity(
                                    p,
                                    cid,
                                    ev.at,
                                    lost,
                                    hold,
                                    &mut self.counters,
                                    out,
                                );
                            }
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
                restarted = peer_sn_went_back(&mut p.last_peer_sn, sequence_number, 0);
            }
            (Role::CMadp, ControlMessage::ProbeReq(req)) => {
                let Some(i) = pi else {
                    self.counters.unknown_path += 1;
                    return;
                };
                c.paths[i].last_alive = c.paths[i].last_alive.max(ev.at);
                // The REQ belongs to the monitor of its R-CID path when it names one.
                let owner_i = req
                    .reverse_cid
                    .and_then(|r| c.paths.iter().position(|p| p.cfg.id.0 == r))
                    .unwrap_or(i);
                if peer_sn_went_back(
                    &mut c.paths[owner_i].last_peer_sn,
                    req.sequence_number,
                    backstep,
                ) {
                    note_restart(c, cid, ev.at, dedupe, &mut self.counters, out);
                }
                if req.ack_requested {
                    // draft-04 §5.2: the ACK goes over the R-CID connection when present.
                    let back = req
                        .reverse_cid
                        .map(PathId)
                        .filter(|r| c.paths.iter().any(|p| p.cfg.id == *r))
                        .unwrap_or(path_id);
                    self.counters.acks_sent += 1;
                    out.push(Action::SendControl {
                        client: cid,
                        path: back,
                        pdu: ControlPdu {
                            cid: back.0,
                            message: ControlMessage::ProbeAck {
                                ack_number: req.sequence_number,
                            },
                        },
                    });
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
        if restarted {
            note_restart(c, cid, ev.at, dedupe, &mut self.counters, out);
        }
    }

    /// N-MADP: a probe ACK from an unknown endpoint that answers a probe sent over another path
    /// with R-CID = its CID (see the module documentation). Exactly one (client, path) must
    /// match, else nothing moves.
    fn learn_from_rcid_ack(&mut self, ev: &ControlInput, out: &mut Vec<Action>) -> bool {
        let ControlMessage::ProbeAck { ack_number } = ev.pdu.message else {
            return false;
        };
        if self.cfg.role != Role::NMadp {
            return false;
        }
        let mut found = None;
        let candidates = self
            .rcid_index
            .get(&(ev.pdu.cid, ack_number))
            .map_or(&[][..], |v| v.as_slice());
        for &(id, i) in candidates {
            let Some(p) = self.clients.get(&id).and_then(|c| c.paths.get(i)) else {
                continue;
            };
            // A path without a remote, or a dead one whose endpoint may have moved.
            let open = !p.remote_known || p.monitor.state() == PathState::Down;
            if open {
                if found.is_some() {
                    // Two sessions could have sent this probe: move nothing.
                    return false;
                }
                found = Some((id, i));
            }
        }
        let Some((id, i)) = found else {
            return false;
        };
        let Some(p) = self.clients.get_mut(&id).and_then(|c| c.paths.get_mut(i)) else {
            return false;
        };
        p.remote_known = true;
        for sn in p.rcid_probes.iter().flatten() {
            unindex_rcid(&mut self.rcid_index, (p.cfg.id.0, *sn), (id, i));
        }
        p.rcid_probes = [None; RCID_PROBES];
        self.counters.acks_rx += 1;
        self.counters.remotes_learnt += 1;
        // A real round trip (down over another path, up over this one): it counts for the
        // path's liveness and hysteresis, not for its RTT; later probes go over the path itself.
        p.monitor.on_probe_ack_unmeasured(ack_number, ev.at);
        let mut d = p.cfg;
        d.remote = Some(ev.peer);
        out.push(Action::RemoteLearnt { client: id, d });
        true
    }

    /// Data of `client` was last received on `path` at `last_rx` (liveness); `remote_known`:
    /// whether the engine has a remote endpoint for the path (learnt from data or configured).
    pub fn on_data(
        &mut self,
        client: ClientId,
        path: PathId,
        last_rx: Instant,
        remote_known: bool,
    ) {
        let role = self.cfg.role;
        let Some(p) = self.path_mut(client, path) else {
            return;
        };
        // Monotonic: a snapshot older than an R-CID learning must not undo it.
        p.remote_known |= remote_known;
        if last_rx > p.last_data {
            p.last_data = last_rx;
            p.last_alive = p.last_alive.max(last_rx);
            if role == Role::NMadp {
                p.monitor.on_data(last_rx);
            }
        }
    }

    /// What a path sent lately (bits per second over the caller's last interval): a capacity
    /// estimator raises a rate only while its shaper sends about as fast as it may.
    pub fn on_sent_rate(&mut self, client: ClientId, path: PathId, sent_bps: u64) {
        if let Some(e) = self
            .path_mut(client, path)
            .and_then(|p| p.capacity.as_mut())
        {
            e.on_sent_rate(sent_bps);
        }
    }

    /// Runs the timers due at `now`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.counters.polls += 1;
        match self.cfg.role {
            Role::NMadp => self.nmadp_timers(now, out),
            Role::CMadp => self.cmadp_timers(now, out),
        }
    }

    /// When [`Supervisor::poll`] next has something to do (`None`: nothing supervised).
    pub fn next_deadline(&self) -> Option<Instant> {
        let silence = self.cfg.silence_ns;
        self.paths()
            .map(|(_, p)| match self.cfg.role {
                Role::NMadp => p.monitor.next_deadline(),
                // The next keep-alive, or the moment a live path falls silent.
                Role::CMadp => {
                    let quiet = p.last_alive.saturating_add(silence).saturating_add(1);
                    if p.pushed_usable == Some(false) {
                        p.next_keepalive
                    } else {
                        p.next_keepalive.min(quiet)
                    }
                }
            })
            .min()
    }

    fn nmadp_timers(&mut self, t: Instant, out: &mut Vec<Action>) {
        let pct = self.cfg.estimate_change_pct;
        let rcid_index = &mut self.rcid_index;
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
            for (pi, p) in c.paths.iter_mut().enumerate() {
                for _ in 0..PROBES_PER_POLL {
                    let Some(probe) = p.monitor.poll(t) else {
                        break;
                    };
                    self.counters.probes_sent += 1;
                    // draft-04 §5: CID = the connection the PDU is sent over; §5.2 R-CID = the
                    // connection the ACK is to come back over. Every other probe of a Down path
                    // goes over a usable path with R-CID = it (its endpoint may have moved);
                    // the others over the path itself (a path that comes back where it was).
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
                            let slot = &mut p.rcid_probes[p.rcid_next % RCID_PROBES];
                            if let Some(old) = slot.take() {
                                unindex_rcid(rcid_index, (p.cfg.id.0, old), (id, pi));
                            }
                            *slot = Some(probe.sequence_number);
                            rcid_index
                                .entry((p.cfg.id.0, probe.sequence_number))
                                .or_default()
                                .push((id, pi));
                            p.rcid_next = p.rcid_next.wrapping_add(1);
                            self.counters.rcid_probes_sent += 1;
                            (v, Some(p.cfg.id.0))
                        }
                        _ => (p.cfg.id, probe.reverse_cid),
                    };
                    out.push(Action::SendControl {
                        client: id,
                        path: over,
                        pdu: ControlPdu {
                            cid: over.0,
                            message: ControlMessage::ProbeReq(ProbeReq {
                                sequence_number: probe.sequence_number,
                                ack_requested: probe.ack_requested,
                                active_phase: probe.active_phase,
                                reverse_cid,
                                padding_len: probe.padding_len,
                            }),
                        },
                    });
                }
                let usable = p.monitor.usable();
                push_usable(p, id, usable, &mut self.counters, out);
                if let Some(owd) = p.monitor.propagation_owd_ns() {
                    let moved = p
                        .pushed_owd
                        .is_none_or(|o| o.abs_diff(owd) * 100 > o.max(1) * pct);
                    if moved {
                        p.pushed_owd = Some(owd);
                        self.counters.estimate_updates += 1;
                        out.push(Action::SetEstimates {
                            client: id,
                            path: p.cfg.id,
                            owd_ns: owd,
                        });
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
                    out.push(Action::UpdateDelivery { client: id, d });
                }
            }
        }
    }

    fn cmadp_timers(&mut self, t: Instant, out: &mut Vec<Action>) {
        let (keepalive, silence) = (self.cfg.keepalive_ns, self.cfg.silence_ns);
        for (&id, c) in self.clients.iter_mut() {
            let any_alive = c
                .paths
                .iter()
                .any(|p| t.saturating_sub(p.last_alive) <= silence);
            for p in c.paths.iter_mut() {
                if t >= p.next_keepalive {
                    p.next_keepalive = t + keepalive;
                    let pdu = ControlPdu {
                        cid: p.cfg.id.0,
                        message: ControlMessage::KeepAlive {
                            sequence_number: p.keepalive_sn,
                        },
                    };
                    p.keepalive_sn = p.keepalive_sn.wrapping_add(1);
                    self.counters.keepalives_sent += 1;
                    out.push(Action::SendControl {
                        client: id,
                        path: p.cfg.id,
                        pdu,
                    });
                }
                let alive = t.saturating_sub(p.last_alive) <= silence;
                let usable = alive || !any_alive;
                push_usable(p, id, usable, &mut self.counters, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Adaptation;
    use crate::wire::mx_trailer::TrailerFields;

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

    fn delivery(id: u8, remote: Option<SocketAddr>) -> DeliveryConfig {
        DeliveryConfig {
            id: PathId(id),
            adaptation: Adaptation::UdpTunnel {
                header_optimization: false,
            },
            local: SocketAddr::from(([192, 0, 2, 1], 10_000 + u16::from(id))),
            remote,
            client_addr: None,
            mtu: 1500,
            trailer_tx: TrailerFields::new(0),
            trailer_rx: TrailerFields::new(0),
            priority: 0,
            weight: 1,
            rate_bps: None,
            concatenation: false,
            udp_checksum: false,
            shaper: None,
        }
    }

    fn monitor() -> PathMonitorConfig {
        PathMonitorConfig {
            probe_interval_ns: 100 * MS,
            initial_probe_interval_ns: 100 * MS,
            probe_timeout_ns: 300 * MS,
            ..PathMonitorConfig::default()
        }
    }

    #[test]
    fn cmadp_keepalives_count_up_and_a_silent_path_leaves_steering_while_another_lives() {
        let cfg = SupervisorConfig {
            silence_ns: 200 * MS,
            ..SupervisorConfig::new(Role::CMadp, monitor(), 100 * MS)
        };
        let mut s = Supervisor::new(cfg);
        let c = ClientId(3);
        s.add_client(c, &[delivery(1, None), delivery(2, None)], 0);
        let mut out = Vec::new();
        let peer = SocketAddr::from(([192, 0, 2, 1], 1));
        let mut sns = BTreeMap::<u8, Vec<u16>>::new();
        let mut t = 0;
        while t <= 1000 * MS {
            // Path 1 hears probe REQs; path 2 hears nothing.
            if t % (100 * MS) == 0 {
                s.on_control(
                    &ControlInput {
                        at: t,
                        client: Some(c),
                        path: Some(PathId(1)),
                        peer,
                        pdu: ControlPdu {
                            cid: 1,
                            message: ControlMessage::ProbeReq(ProbeReq {
                                sequence_number: (t / (100 * MS)) as u16,
                                ack_requested: true,
                                active_phase: true,
                                reverse_cid: None,
                                padding_len: 0,
                            }),
                        },
                    },
                    &mut out,
                );
            }
            s.poll(t, &mut out);
            t = s.next_deadline().unwrap().min(t + 100 * MS).max(t + 1);
        }
        let mut acks = 0;
        let mut usable = BTreeMap::new();
        for a in &out {
            match *a {
                Action::SendControl {
                    path,
                    pdu:
                        ControlPdu {
                            message: ControlMessage::KeepAlive { sequence_number },
                            ..
                        },
                    ..
                } => sns.entry(path.0).or_default().push(sequence_number),
                Action::SendControl {
                    pdu:
                        ControlPdu {
                            message: ControlMessage::ProbeAck { .. },
                            ..
                        },
                    ..
                } => acks += 1,
                Action::SetUsable {
                    path, usable: u, ..
                } => {
                    usable.insert(path.0, u);
                }
                ref other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(acks, 11);
        for p in [1, 2] {
            let v = &sns[&p];
            assert!(v.len() >= 10, "{v:?}");
            assert!(v.windows(2).all(|w| w[1] == w[0] + 1), "{v:?}");
        }
        assert_eq!(usable.get(&1), Some(&true));
        assert_eq!(usable.get(&2), Some(&false), "path 2 was silent for 1 s");
        assert_eq!(
            s.path(c, PathId(2)).map(|p| p.state(Role::CMadp)),
            Some(PathState::Down)
        );
    }

    #[test]
    fn nmadp_probes_a_remoteless_path_over_another_and_learns_its_endpoint_from_the_ack() {
        let known = SocketAddr::from(([198, 51, 100, 10], 4000));
        let learnt = SocketAddr::from(([203, 0, 113, 10], 4001));
        let mut s = Supervisor::new(SupervisorConfig::new(Role::NMadp, monitor(), 100 * MS));
        let c = ClientId(1);
        s.add_client(c, &[delivery(1, Some(known)), delivery(2, None)], 0);
        let mut out = Vec::new();
        s.poll(0, &mut out);
        let rcid_sn = out
            .iter()
            .find_map(|a| match *a {
                Action::SendControl {
                    path: PathId(1),
                    pdu:
                        ControlPdu {
                            message:
                                ControlMessage::ProbeReq(ProbeReq {
                                    sequence_number,
                                    reverse_cid: Some(2),
                                    ..
                                }),
                            ..
                        },
                    ..
                } => Some(sequence_number),
                _ => None,
            })
            .expect("path 2's probe goes over path 1 with R-CID 2");
        assert_eq!(s.counters().rcid_probes_sent, 1);
        out.clear();
        let ack = |ack_number| ControlInput {
            at: 30 * MS,
            client: None,
            path: None,
            peer: learnt,
            pdu: ControlPdu {
                cid: 2,
                message: ControlMessage::ProbeAck { ack_number },
            },
        };
        // A guessed SN moves nothing.
        s.on_control(&ack(rcid_sn.wrapping_add(100)), &mut out);
        assert!(out.is_empty());
        assert_eq!(s.counters().unknown_peer, 1);
        s.on_control(&ack(rcid_sn), &mut out);
        assert_eq!(out.len(), 1);
        match out[0] {
            Action::RemoteLearnt { client, d } => {
                assert_eq!((client, d.id, d.remote), (c, PathId(2), Some(learnt)));
            }
            ref other => panic!("{other:?}"),
        }
        assert_eq!(s.counters().remotes_learnt, 1);
        assert!(
            s.rcid_index.is_empty(),
            "the learnt path's probes are forgotten"
        );
        // Probes sent with R-CID for a client that goes away are forgotten with it.
        s.add_client(
            ClientId(9),
            &[delivery(1, Some(known)), delivery(3, None)],
            0,
        );
        s.poll(100 * MS, &mut out);
        assert!(!s.rcid_index.is_empty());
        assert!(s.remove_client(ClientId(9)));
        assert!(s.rcid_index.is_empty());
    }

    #[test]
    fn a_keepalive_sn_going_back_resets_the_clients_rx_flows_once_for_all_paths() {
        let mut s = Supervisor::new(SupervisorConfig::new(Role::NMadp, monitor(), 100 * MS));
        let c = ClientId(2);
        let peer = SocketAddr::from(([198, 51, 100, 10], 4000));
        s.add_client(c, &[delivery(1, Some(peer)), delivery(2, Some(peer))], 0);
        let mut out = Vec::new();
        let ka = |at, path: u8, sn| ControlInput {
            at,
            client: Some(c),
            path: Some(PathId(path)),
            peer,
            pdu: ControlPdu {
                cid: path,
                message: ControlMessage::KeepAlive {
                    sequence_number: sn,
                },
            },
        };
        for sn in 0..20 {
            for p in [1, 2] {
                s.on_control(&ka(u64::from(sn) * 100 * MS, p, sn), &mut out);
            }
        }
        assert!(out.is_empty());
        // The C-MADP restarts: both paths' keep-alives start over.
        s.on_control(&ka(2100 * MS, 1, 0), &mut out);
        s.on_control(&ka(2101 * MS, 2, 0), &mut out);
        assert_eq!(out, vec![Action::ResetRxFlows { client: c }]);
        assert_eq!(s.counters().peer_restarts, 1);
    }
}

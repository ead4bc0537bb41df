//! The convergence engine of the N-MADP and the C-MADP (draft-04 §4): one sans-IO
//! [`Engine`] per worker owning a set of clients, used by both roles.
//!
//! * Sender ([`Engine::from_anchor`], [`Engine::from_anchor_burst`]): anchor-side IP packets are
//!   classified (client, anchor connection, traffic class), numbered per (client, connection,
//!   class), steered over one or more delivery connections, fragmented or concatenated to the
//!   path MTU, given an MX trailer (or a GRE header) and adapted (UDP tunnel, client NAT,
//!   pass-through). Output: [`Output::Delivery`], fully adapted (outer headers included).
//! * Receiver ([`Engine::from_delivery`]): delivery-side packets are un-adapted, identified
//!   (client, path; NAT rebinding), stripped of their trailer, reassembled or disaggregated,
//!   reordered per flow and released as [`Output::Anchor`]; control PDUs to or from the control
//!   endpoint become [`Output::Control`].
//! * Timers ([`Engine::poll`], [`Engine::next_deadline`]): reorder and reassembly timeouts.
//! * Slow-path hooks: path usability and estimates, steering mode, clients and paths, control
//!   PDUs ([`Engine::build_control`]).
//!
//! Time is always an argument; nothing here reads a clock, spawns a thread or draws unseeded
//! randomness. Buffers come from and return to the caller's [`BufPool`]; every drop frees its
//! buffer and increments exactly one [`DropReason`] counter.

pub mod adapt;
pub mod classify;
pub mod config;
pub mod counters;
mod index;
mod intern;
mod mxops;
mod rx;
mod tx;

/// Lookup tables keyed by packet addresses: aHash is several times faster than the default
/// SipHash and stays keyed (randomly seeded per process), so crafted source addresses cannot
/// force collisions.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use index::{CompactMap, PathRef};
use intern::Interner;
use smallvec::SmallVec;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::buf::{BufPool, PacketBuf};
use crate::drop::DropReason;
use crate::flow::reassembly::{Reassembler, ReassemblyStats};
use crate::flow::reorder::{adaptive_timeout, ReorderBuffer, ReorderConfig, ReorderStats};
use crate::flow::seqnum::{Sn16, Sn32};
use crate::flow::steering::{PathId, PathParams, Steering, SteeringMode};
use crate::flow::Instant;
use crate::wire::mx_control::ControlPdu;
use crate::Direction;

pub use config::{
    Adaptation, AnchorConnection, ClientConfig, ClientId, ConfigError, Convergence, DeliveryConfig,
    EngineConfig, ReorderTimeout, Role, Shaper, TcRule,
};
pub use counters::{ClientCounters, EngineCounters, PathCounters};

/// What the engine asks the runtime to do with a packet.
#[derive(Debug)]
pub enum Output<B> {
    /// Send on delivery connection `path` of `client`. Fully adapted: outer headers included.
    Delivery {
        client: ClientId,
        path: PathId,
        pkt: B,
    },
    /// Hand to the anchor side (plain IP packet, in order per flow).
    Anchor(B),
    /// A control PDU (draft-04 §5) arrived from `peer`; `client`/`path` when identified (the
    /// path from the sender's endpoint, else from the PDU's CID). The buffer went back to the
    /// pool.
    Control {
        client: Option<ClientId>,
        path: Option<PathId>,
        peer: SocketAddr,
        pdu: ControlPdu,
    },
}

/// Default Weighted-steering weight when a delivery has weight 0 in its configuration: none;
/// steering itself splits equally when every weight is 0.
fn path_params(
    d: &DeliveryConfig,
    weight: u32,
    owd_ns: Option<u64>,
    rate_bps: Option<u64>,
) -> PathParams {
    // What a PDU adds on the link: trailer, outer IP/UDP (trailer convergence; GRE adds a few
    // bytes more) and an Ethernet header.
    let overhead = crate::wire::mx_trailer::len_from_flags(d.trailer_tx.0)
        + config::adaptation_overhead(d, Convergence::Trailer)
        + ETHERNET_HEADER_LEN;
    PathParams {
        weight,
        priority: d.priority,
        // A shaped path without a configured or measured rate sends at its shaper's.
        rate_bps: rate_bps
            .or(d.rate_bps)
            .or(d.shaper.map(|s| s.rate_bps))
            .unwrap_or(0),
        owd_ns: owd_ns.unwrap_or(0),
        overhead_bytes: overhead as u32,
    }
}

/// Link-layer header counted in the delay-aware queue model (rates are of Ethernet frames).
const ETHERNET_HEADER_LEN: usize = 14;

/// One delivery connection's live state.
#[derive(Debug)]
struct Path {
    /// The configuration, shared with every path configured alike ([`Engine::deliveries`]):
    /// its `remote` is always `None` (the path's own is `remote`), and the live weight and
    /// shaper rate are `weight` and `shape_rate_bps`.
    cfg: Arc<DeliveryConfig>,
    /// Peer endpoint in use: configured, then possibly learned or rebound.
    remote: Option<SocketAddr>,
    /// IPv4 identification of the next outer header.
    ident: u16,
    usable: bool,
    owd_ns: Option<u64>,
    rate_bps: Option<u64>,
    /// Largest PDU (before adaptation) that fits the MTU.
    max_pdu: usize,
    /// Delay compensation ([`EngineConfig::delay_compensation`]): how much faster this path is
    /// than the slowest usable one (one-way delay estimates). PDUs sent over it wait this long
    /// first, packets received over it are released this long after arrival at the earliest,
    /// so that every packet sees the same delay whichever path weighted steering gave it.
    hold_ns: u64,
    /// Shaper ([`DeliveryConfig::shaper`]): the earliest departure of the next PDU (when the
    /// last one will have left at the rate).
    shape_next: Instant,
    /// Its waiting PDUs, while there are any: a slot of [`Engine::shape_queues`].
    shape_slot: Option<u32>,
    /// Steering weight now: the configured one, or the slow path's (`set_path_weight`).
    weight: u32,
    /// Shaper rate now (configured, or measured: `set_path_rate`); 0 without a shaper.
    shape_rate_bps: u64,
    counters: counters::PathTally,
}

impl Path {
    /// Steering's view of this path: the delay it models is the one-way delay plus the
    /// delay-compensation hold, what a PDU sent over it really takes.
    fn steering_params(&self) -> PathParams {
        let owd = self.owd_ns.map(|o| o.saturating_add(self.hold_ns));
        path_params(&self.cfg, self.weight, owd, self.rate_bps)
    }

    /// The shared form of `d`: no remote, no shaper of rate 0 (it would hold everything
    /// forever).
    fn shared_config(mut d: DeliveryConfig) -> DeliveryConfig {
        d.remote = None;
        d.shaper = d.shaper.filter(|s| s.rate_bps > 0);
        d
    }

    /// A path of shared configuration `cfg` ([`Path::shared_config`]) with peer `remote`.
    fn new(cfg: Arc<DeliveryConfig>, remote: Option<SocketAddr>, convergence: Convergence) -> Path {
        Path {
            shape_next: 0,
            shape_slot: None,
            weight: cfg.weight,
            shape_rate_bps: cfg.shaper.map_or(0, |s| s.rate_bps),
            remote,
            ident: 0,
            usable: false,
            owd_ns: None,
            rate_bps: None,
            max_pdu: usize::from(cfg.mtu)
                .saturating_sub(config::adaptation_overhead(&cfg, convergence)),
            hold_ns: 0,
            counters: counters::PathTally::default(),
            cfg,
        }
    }

    /// The shaper at its current rate.
    fn shaper(&self) -> Option<Shaper> {
        let s = self.cfg.shaper?;
        (self.shape_rate_bps > 0).then_some(Shaper {
            rate_bps: self.shape_rate_bps,
            ..s
        })
    }

    /// The configuration as given, with the endpoint in use.
    fn config(&self) -> DeliveryConfig {
        DeliveryConfig {
            remote: self.remote,
            ..*self.cfg
        }
    }

    fn header_optimization(&self) -> bool {
        matches!(
            self.cfg.adaptation,
            Adaptation::UdpTunnel {
                header_optimization: true
            }
        )
    }
}

/// How many of `paths` shape.
fn shaped(paths: &[Path]) -> usize {
    paths.iter().filter(|p| p.shaper().is_some()).count()
}

/// Steering of one traffic class.
#[derive(Debug)]
struct TcState {
    id: u8,
    steering: Steering,
    /// The class has its own mode (a rule's, or set by `set_steering(Some(tc))`).
    own_mode: bool,
}

/// The reorder buffer of one receive flow; items are slab handles.
#[derive(Debug)]
enum Reorder {
    Mx(ReorderBuffer<u32, Sn16>),
    Gre(ReorderBuffer<u32, Sn32>),
}

impl Reorder {
    fn stats(&self) -> &ReorderStats {
        match self {
            Reorder::Mx(r) => r.stats(),
            Reorder::Gre(r) => r.stats(),
        }
    }
    fn next_deadline(&self) -> Option<Instant> {
        match self {
            Reorder::Mx(r) => r.next_deadline(),
            Reorder::Gre(r) => r.next_deadline(),
        }
    }
    fn set_timeout(&mut self, t: u64) {
        match self {
            Reorder::Mx(r) => r.set_timeout(t),
            Reorder::Gre(r) => r.set_timeout(t),
        }
    }
    fn effective_timeout(&self) -> u64 {
        match self {
            Reorder::Mx(r) => r.effective_timeout(),
            Reorder::Gre(r) => r.effective_timeout(),
        }
    }
    fn forget_path(&mut self, pi: usize) {
        match self {
            Reorder::Mx(r) => r.forget_path(pi),
            Reorder::Gre(r) => r.forget_path(pi),
        }
    }
    /// A fresh buffer of the flow's SN space that waits for SN 0, where every sender starts a
    /// flow (tx.rs), so a packet overtaking SN 0 on a faster path does not make it late.
    fn starting_at_zero(gre: bool, config: ReorderConfig) -> Reorder {
        let mut r = if gre {
            Reorder::Gre(ReorderBuffer::new(config))
        } else {
            Reorder::Mx(ReorderBuffer::new(config))
        };
        r.restart();
        r
    }
    /// Forget the release point and history and wait for SN 0 again (counters are kept).
    fn restart(&mut self) {
        match self {
            Reorder::Mx(r) => {
                r.reset();
                r.set_initial(Sn16(0));
            }
            Reorder::Gre(r) => {
                r.reset();
                r.set_initial(Sn32(0));
            }
        }
    }
    fn touch(&self) -> u64 {
        match self {
            Reorder::Mx(r) => r.touch(),
            Reorder::Gre(r) => r.touch(),
        }
    }
    fn depth(&self) -> usize {
        match self {
            Reorder::Mx(r) => r.depth(),
            Reorder::Gre(r) => r.depth(),
        }
    }
    /// Whether `sn` is within the window around the release point (NAT rebinding check).
    fn in_window(&self, sn: u32) -> bool {
        use crate::flow::seqnum::SeqSpace;
        match self {
            Reorder::Mx(r) => r.expected().is_none_or(|e| {
                let d = Sn16(sn as u16).distance(e);
                d.unsigned_abs() < r.window() as u64
            }),
            Reorder::Gre(r) => r.expected().is_none_or(|e| {
                let d = Sn32(sn).distance(e);
                d.unsigned_abs() < r.window() as u64
            }),
        }
    }
}

#[derive(Debug)]
struct RxFlow {
    cid: u16,
    tc: u8,
    reorder: Reorder,
}

/// What clients configured alike share of their configuration ([`Engine::profiles`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ClientProfile {
    anchors: Vec<AnchorConnection>,
    traffic_classes: Vec<TcRule>,
    convergence: Convergence,
}

#[derive(Debug)]
struct Client {
    id: ClientId,
    anchor_addr: IpAddr,
    /// The default steering mode (classes without their own follow it).
    steering: SteeringMode,
    /// The rest of the configuration but the deliveries (every path holds its own), shared.
    profile: Arc<ClientProfile>,
    /// Inline for the usual two paths and one class: a client is one record, not a tree of
    /// allocations (more spill to the heap).
    paths: SmallVec<[Path; 2]>,
    tcs: SmallVec<[TcState; 1]>,
    /// Next SN per (anchor CID, TC) (draft-04 §4.2.1: per connection and TC).
    tx_seq: SmallVec<[(u16, u8, u32); 2]>,
    rx_flows: Vec<RxFlow>,
    counters: counters::ClientTally,
    /// Drops attributed to this client (`DropReason as usize`); each is also in the engine's
    /// [`EngineCounters::drops`].
    drops: Option<Box<[u64; DropReason::COUNT]>>,
    reorder_timeout: u64,
    /// In [`Engine::held`]: some reorder buffer of this client may hold packets.
    listed: bool,
}

impl Client {
    fn path_index(&self, id: PathId) -> Option<usize> {
        self.paths.iter().position(|p| p.cfg.id == id)
    }

    /// How many of its paths shape ([`Engine::shaping_paths`]).
    fn shaping_paths(&self) -> usize {
        shaped(&self.paths)
    }

    /// Gives every traffic class's steering the current parameters of path `pi` (after its
    /// estimates, hold, weight or rate changed).
    fn push_path_params(&mut self, pi: usize) {
        let Some(p) = self.paths.get(pi) else {
            return;
        };
        let (id, params) = (p.cfg.id, p.steering_params());
        for t in &mut self.tcs {
            let _ = t.steering.set_path(id, params);
        }
    }

    /// The configuration as given, with the endpoints and weights in use.
    fn config(&self) -> ClientConfig {
        ClientConfig {
            id: self.id,
            anchor_addr: self.anchor_addr,
            anchors: self.profile.anchors.clone(),
            traffic_classes: self.profile.traffic_classes.clone(),
            steering: self.steering,
            convergence: self.profile.convergence,
            deliveries: self.paths.iter().map(Path::config).collect(),
        }
    }

    fn first_anchor(&self) -> u16 {
        self.profile.anchors.first().map_or(0, |a| a.connection_id)
    }

    /// The counters as read from outside: `reorder` summed over the receive flows.
    fn counters_read(&self) -> ClientCounters {
        let mut reorder = ReorderStats::default();
        for f in &self.rx_flows {
            reorder.accumulate(f.reorder.stats());
        }
        self.counters.read(reorder)
    }
}

/// One client's statistics ([`Engine::client_stats_into`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub id: ClientId,
    pub counters: ClientCounters,
    pub paths: Vec<PathStats>,
    pub reorder_timeout_ns: u64,
}

/// One path's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    pub id: PathId,
    pub counters: PathCounters,
    /// Peer endpoint in use (configured, learnt or rebound).
    pub remote: Option<SocketAddr>,
}

/// Counts a drop attributed to a client. Its counters are allocated on its first attributed
/// drop: most clients never have one, and 41 counters are 328 bytes.
fn count_client_drop(drops: &mut Option<Box<[u64; DropReason::COUNT]>>, reason: DropReason) {
    if let Some(n) = drops
        .get_or_insert_with(|| Box::new([0; DropReason::COUNT]))
        .get_mut(reason as usize)
    {
        *n += 1;
    }
}

/// Where the indexes file a path (`Engine::index_path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathKey {
    /// UDP tunnel: (local, remote once known).
    Udp(SocketAddr, Option<SocketAddr>),
    /// Client NAT: the client's access address.
    Nat(Option<IpAddr>),
    /// GRE over IP: (local IP, peer IP).
    IpPair(IpAddr, Option<IpAddr>),
    /// Pass-through: found by the anchor address only.
    None,
}

/// Longest delay-compensation hold (a path this much faster than another is not worth
/// equalising: the PDUs would pile up).
pub const MAX_HOLD_NS: u64 = 500 * crate::flow::MS;

/// The paths (bit = path index) that are usable and delivered data within `fresh` ns of `now`
/// (or never yet): those the reorder buffers' path horizon waits for.
fn live_paths(paths: &[Path], now: Instant, fresh: u64) -> u8 {
    let mut live = 0u8;
    for (i, p) in paths
        .iter()
        .enumerate()
        .take(crate::flow::reorder::MAX_MARKS)
    {
        // A usable path that never delivered data may be about to (its first PDUs in flight):
        // it counts as live, so the horizon waits for it (`push_via`: a live path without a
        // mark suspends the rule).
        let heard_lately = now.saturating_sub(p.counters.last_rx) <= fresh;
        if p.usable && (p.counters.rx_pdus == 0 || heard_lately) {
            live |= 1 << i;
        }
    }
    live
}

/// Handles of buffers held by reorder buffers (so that a dropped duplicate's buffer can be
/// returned to the pool: the reorder buffer drops items it refuses).
#[derive(Debug)]
struct Slab<B> {
    items: Vec<Option<B>>,
    free: Vec<u32>,
}

impl<B> Slab<B> {
    fn insert(&mut self, b: B) -> u32 {
        match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.items.get_mut(i as usize) {
                    *slot = Some(b);
                }
                i
            }
            None => {
                self.items.push(Some(b));
                (self.items.len() - 1) as u32
            }
        }
    }
    fn take(&mut self, i: u32) -> Option<B> {
        let b = self.items.get_mut(i as usize)?.take();
        if b.is_some() {
            self.free.push(i);
        }
        b
    }
}

/// One concatenation group being built within a burst (draft-04 §4.2.3).
#[derive(Debug)]
struct Group<B> {
    ci: usize,
    pi: usize,
    cid: u16,
    tc: u8,
    last_sn: u32,
    /// Protocol of the first SDU (Next Header of the concatenated PDU).
    first_protocol: u8,
    payload_len: usize,
    sdus: Vec<B>,
}

/// The convergence engine of one worker.
pub struct Engine<B: PacketBuf> {
    cfg: EngineConfig,
    clients: Vec<Option<Client>>,
    free_slots: Vec<usize>,
    by_id: HashMap<ClientId, usize>,
    by_anchor: CompactMap<IpAddr, u32>,
    /// UDP tunnel (local, remote) -> (client slot, path index).
    by_udp: CompactMap<(SocketAddr, SocketAddr), PathRef>,
    /// Client NAT: the client's address on the access network -> (client slot, path index).
    by_nat: HashMap<IpAddr, (usize, usize)>,
    /// GRE over IP: (local IP, remote IP) -> (client slot, path index).
    by_ip_pair: HashMap<(IpAddr, IpAddr), (usize, usize)>,
    /// Local UDP endpoints of every UDP-tunnel path, with the number of paths using each (to
    /// tell an unknown peer from a stray packet).
    udp_locals: HashMap<SocketAddr, u32>,
    /// UDP tunnel remote endpoint -> (client slot, path index), for MX control PDUs, which
    /// arrive at the control address (draft-04 §5) rather than the path's local endpoint. The
    /// first path indexed with an endpoint owns it.
    by_remote: CompactMap<SocketAddr, PathRef>,
    /// Every path's shared configuration ([`Path::cfg`]).
    deliveries: Interner<DeliveryConfig>,
    /// Every client's shared configuration ([`Client::profile`]).
    profiles: Interner<ClientProfile>,
    reasm: Reassembler,
    slab: Slab<B>,
    counters: EngineCounters,
    scratch: Vec<u8>,
    sdus: Vec<B>,
    frags: Vec<B>,
    groups: Vec<Group<B>>,
    /// The current anchor burst's parsed packets and client slots (stage 1 of
    /// `from_anchor_burst`), kept for its capacity.
    burst_info: Vec<(Result<classify::PacketInfo, DropReason>, Option<usize>)>,
    /// The current delivery burst's path look-ups (`from_delivery_burst`).
    rx_hints: Vec<Option<(usize, usize)>>,
    spare: Vec<Vec<B>>,
    /// Slots of the clients whose reorder buffers may hold packets (`Client::listed`): poll
    /// and next_deadline visit only these, O(clients holding packets) instead of O(clients).
    held: Vec<usize>,
    /// PDUs waiting out their path's delay-compensation hold, earliest release first.
    delayed: std::collections::BinaryHeap<Delayed<B>>,
    /// Sequence of the next delayed PDU (FIFO among equal release times).
    delayed_seq: u64,
    /// Paths (over every client) with a nonzero hold: 0 skips the scan of each burst.
    holding_paths: usize,
    /// Paths (over every client) with a shaper: with `holding_paths`, 0 skips that scan.
    shaping_paths: usize,
    /// The PDUs waiting for their path's shaper, one FIFO per path that has any (slots reused).
    shape_queues: Vec<ShapeQueue<B>>,
    free_shape_slots: Vec<u32>,
    /// Slots with waiting PDUs: poll and the deadline visit only these.
    shape_active: Vec<u32>,
    /// Reused for the scan of a burst's outputs.
    spare_out: Vec<Output<B>>,
}

/// The PDUs waiting for one path's shaper, in order, each with the time its hold ends. The
/// rate is applied when a PDU leaves, not when it arrives, so a new rate (a measured capacity)
/// applies at once to everything waiting.
struct ShapeQueue<B> {
    ci: u32,
    pi: u32,
    q: std::collections::VecDeque<(Instant, Output<B>)>,
    bytes: usize,
}

/// The outer length of a PDU to send (0 for anything else).
fn delivery_len<B: PacketBuf>(o: &Output<B>) -> usize {
    match o {
        Output::Delivery { pkt, .. } => pkt.len(),
        _ => 0,
    }
}

/// A PDU in the delay-compensation line, ordered by release time (then arrival).
struct Delayed<B> {
    at: Instant,
    seq: u64,
    out: Output<B>,
}

impl<B> PartialEq for Delayed<B> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<B> Eq for Delayed<B> {}
impl<B> PartialOrd for Delayed<B> {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<B> Ord for Delayed<B> {
    // BinaryHeap is a max-heap: the earliest (at, seq) must compare greatest.
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl<B: PacketBuf> core::fmt::Debug for Engine<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine")
            .field("role", &self.cfg.role)
            .field("clients", &self.by_id.len())
            .finish()
    }
}

impl<B: PacketBuf> Engine<B> {
    /// An engine without clients.
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            reasm: Reassembler::new(cfg.reassembly),
            deliveries: Interner::default(),
            profiles: Interner::default(),
            cfg,
            clients: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::default(),
            by_anchor: CompactMap::default(),
            by_udp: CompactMap::default(),
            by_nat: HashMap::default(),
            by_ip_pair: HashMap::default(),
            udp_locals: HashMap::default(),
            by_remote: CompactMap::default(),
            slab: Slab {
                items: Vec::new(),
                free: Vec::new(),
            },
            counters: EngineCounters::default(),
            scratch: Vec::with_capacity(65_536),
            sdus: Vec::with_capacity(64),
            frags: Vec::with_capacity(128),
            groups: Vec::with_capacity(32),
            burst_info: Vec::with_capacity(64),
            rx_hints: Vec::with_capacity(64),
            spare: Vec::new(),
            held: Vec::new(),
            delayed: std::collections::BinaryHeap::new(),
            delayed_seq: 0,
            holding_paths: 0,
            shaping_paths: 0,
            shape_queues: Vec::new(),
            free_shape_slots: Vec::new(),
            shape_active: Vec::new(),
            spare_out: Vec::new(),
        }
    }

    /// Recomputes the delay-compensation holds of a client's paths (see `Path::hold_ns`): in
    /// weighted or delay-aware steering with delay compensation on and at least two usable
    /// paths with a one-way-delay estimate, each such path holds `max OWD - its OWD`; otherwise
    /// 0. Delay-aware steering then models every held path with the delay it will really have
    /// (its OWD plus its hold), so it chooses by queueing alone.
    fn update_holds(&mut self, ci: usize) {
        let on = self.cfg.delay_compensation;
        let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) else {
            return;
        };
        let compensated = matches!(
            c.steering,
            SteeringMode::Weighted | SteeringMode::DelayAware
        );
        let known = || c.paths.iter().filter(|p| p.usable).filter_map(|p| p.owd_ns);
        let n = known().count();
        let max = known().max().unwrap_or(0);
        let before = c.paths.iter().filter(|p| p.hold_ns > 0).count();
        for pi in 0..c.paths.len() {
            let p = &mut c.paths[pi];
            let hold = match p.owd_ns {
                Some(o) if on && compensated && n >= 2 && p.usable => {
                    max.saturating_sub(o).min(MAX_HOLD_NS)
                }
                _ => 0,
            };
            let changed = hold != p.hold_ns;
            p.hold_ns = hold;
            if changed {
                c.push_path_params(pi);
            }
        }
        let after = c.paths.iter().filter(|p| p.hold_ns > 0).count();
        self.holding_paths = (self.holding_paths + after).saturating_sub(before);
    }

    /// Moves the PDUs of `out[start..]` whose path holds (delay compensation) to the delay
    /// line and those of shaped paths to their path's shaper queue; they come out of
    /// [`Engine::poll`] when due. A shaped PDU that would wait longer than the shaper's bound
    /// is dropped.
    fn delay_outputs(
        &mut self,
        start: usize,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        if (self.holding_paths == 0 && self.shaping_paths == 0) || out.len() <= start {
            return;
        }
        let mut tail = std::mem::take(&mut self.spare_out);
        tail.extend(out.drain(start..));
        // What is due goes first: a PDU sent at once below must not overtake its path's
        // earlier PDUs still waiting.
        self.release_delayed(now, out);
        self.release_shaped(now, out);
        for o in tail.drain(..) {
            let mut at = now;
            let mut shaped = None;
            if let Output::Delivery { client, path, .. } = &o {
                let found = self.by_id.get(client).and_then(|&ci| {
                    let c = self.clients.get(ci)?.as_ref()?;
                    let pi = c.path_index(*path)?;
                    Some((ci, pi, c.paths.get(pi)?))
                });
                if let Some((ci, pi, p)) = found {
                    at = now.saturating_add(p.hold_ns);
                    if p.shaper().is_some() {
                        shaped = Some((ci, pi));
                    }
                }
            }
            if let Some((ci, pi)) = shaped {
                self.shape(ci, pi, at, now, o, pool, out);
            } else if at <= now {
                out.push(o);
            } else if self.delayed.len() >= self.cfg.max_delayed {
                // Bounded: past the limit the PDU goes at once (counted).
                self.counters.delay_overflow += 1;
                out.push(o);
            } else {
                self.delayed_seq += 1;
                self.counters.delayed += 1;
                self.delayed.push(Delayed {
                    at,
                    seq: self.delayed_seq,
                    out: o,
                });
            }
        }
        self.spare_out = tail;
    }

    /// One PDU of shaped path `pi` of client `ci`, whose hold ends at `earliest`: sent at once
    /// if the path's shaper is idle and the hold is over, else queued behind what waits there,
    /// or dropped when what waits already takes longer than the shaper's bound.
    #[allow(clippy::too_many_arguments)]
    fn shape(
        &mut self,
        ci: usize,
        pi: usize,
        earliest: Instant,
        now: Instant,
        o: Output<B>,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let len = delivery_len(&o);
        let Some(p) = self
            .clients
            .get_mut(ci)
            .and_then(|c| c.as_mut())
            .and_then(|c| c.paths.get_mut(pi))
        else {
            return out.push(o);
        };
        let Some(s) = p.shaper() else {
            return out.push(o);
        };
        let catch_up = self.cfg.shaper_catch_up_ns;
        let queued = p
            .shape_slot
            .map_or(0, |q| self.shape_queues[q as usize].bytes);
        if queued == 0 && earliest <= now && p.shape_next <= now {
            p.shape_next = p
                .shape_next
                .max(now.saturating_sub(catch_up))
                .saturating_add(s.tx_time_ns(len));
            return out.push(o);
        }
        // How long what waits takes to leave, from when this PDU may.
        let wait = p.shape_next.saturating_sub(earliest) + s.tx_time_ns(queued);
        if wait > s.queue_ns {
            if let Output::Delivery { pkt, .. } = o {
                self.drop_for(ci, pool, pkt, DropReason::ShaperQueueFull);
            }
            return;
        }
        p.counters.rare().shaped += 1;
        let slot = match p.shape_slot {
            Some(q) => q,
            None => {
                let q = match self.free_shape_slots.pop() {
                    Some(q) => q,
                    None => {
                        self.shape_queues.push(ShapeQueue {
                            ci: 0,
                            pi: 0,
                            q: std::collections::VecDeque::new(),
                            bytes: 0,
                        });
                        (self.shape_queues.len() - 1) as u32
                    }
                };
                let sq = &mut self.shape_queues[q as usize];
                (sq.ci, sq.pi) = (ci as u32, pi as u32);
                p.shape_slot = Some(q);
                self.shape_active.push(q);
                q
            }
        };
        let sq = &mut self.shape_queues[slot as usize];
        sq.q.push_back((earliest, o));
        sq.bytes += len;
    }

    /// Sends what the shapers may send by `now` (everything with `Instant::MAX`), each path at
    /// its current rate.
    fn release_shaped(&mut self, now: Instant, out: &mut Vec<Output<B>>) {
        let catch_up = self.cfg.shaper_catch_up_ns;
        let mut i = 0;
        while i < self.shape_active.len() {
            let slot = self.shape_active[i];
            let sq = &mut self.shape_queues[slot as usize];
            let mut p = self
                .clients
                .get_mut(sq.ci as usize)
                .and_then(|c| c.as_mut())
                .and_then(|c| c.paths.get_mut(sq.pi as usize));
            match p.as_deref_mut() {
                Some(p) => {
                    let s = p.shaper();
                    while let Some((earliest, _)) = sq.q.front() {
                        let turn = (*earliest).max(p.shape_next);
                        if turn > now {
                            break;
                        }
                        let Some((_, o)) = sq.q.pop_front() else {
                            break;
                        };
                        let len = delivery_len(&o);
                        sq.bytes = sq.bytes.saturating_sub(len);
                        let tx = s.map_or(0, |s| s.tx_time_ns(len));
                        p.shape_next = turn.max(now.saturating_sub(catch_up)).saturating_add(tx);
                        out.push(o);
                    }
                }
                // No such path (remove_client empties its queues first, so this holds
                // nothing in practice): what waited goes as it was.
                None => out.extend(sq.q.drain(..).map(|(_, o)| o)),
            }
            if sq.q.is_empty() {
                sq.bytes = 0;
                if let Some(p) = p.filter(|p| p.shape_slot == Some(slot)) {
                    p.shape_slot = None;
                }
                self.free_shape_slots.push(slot);
                self.shape_active.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// When the first waiting shaped PDU may leave, if any (O(paths with waiting PDUs)).
    fn shape_deadline(&self) -> Option<Instant> {
        self.shape_active
            .iter()
            .filter_map(|&slot| {
                let sq = &self.shape_queues[slot as usize];
                let (earliest, _) = sq.q.front()?;
                let next = self
                    .clients
                    .get(sq.ci as usize)
                    .and_then(|c| c.as_ref())
                    .and_then(|c| c.paths.get(sq.pi as usize))
                    .map_or(0, |p| p.shape_next);
                Some((*earliest).max(next))
            })
            .min()
    }

    /// When the earliest delayed PDU is due (delay compensation), if any: O(1), for callers
    /// that must not walk every flow after each burst.
    pub fn tx_deadline(&self) -> Option<Instant> {
        let held = self.delayed.peek().map(|d| d.at);
        if self.shape_active.is_empty() {
            return held;
        }
        held.into_iter().chain(self.shape_deadline()).min()
    }

    /// Releases the delayed PDUs due at `now` (or all of them with `Instant::MAX`).
    fn release_delayed(&mut self, now: Instant, out: &mut Vec<Output<B>>) {
        while self.delayed.peek().is_some_and(|d| d.at <= now) {
            if let Some(d) = self.delayed.pop() {
                out.push(d.out);
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Direction of what this engine sends.
    fn tx_direction(&self) -> Direction {
        match self.cfg.role {
            Role::NMadp => Direction::Downlink,
            Role::CMadp => Direction::Uplink,
        }
    }

    /// Direction of what this engine receives.
    fn rx_direction(&self) -> Direction {
        match self.cfg.role {
            Role::NMadp => Direction::Uplink,
            Role::CMadp => Direction::Downlink,
        }
    }

    fn drop_buf(&mut self, pool: &mut dyn BufPool<B>, buf: B, reason: DropReason) {
        self.counters.drop(reason);
        pool.free(buf);
    }

    /// [`Engine::drop_buf`] for a packet already attributed to the client in slot `ci` (also
    /// counted in [`Engine::client_drops`]; an empty slot counts engine-wide only).
    fn drop_for(&mut self, ci: usize, pool: &mut dyn BufPool<B>, buf: B, reason: DropReason) {
        self.count_for(ci, reason);
        pool.free(buf);
    }

    /// Counts a drop of the client in slot `ci` whose buffer is already freed.
    fn count_for(&mut self, ci: usize, reason: DropReason) {
        self.counters.drop(reason);
        if let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) {
            count_client_drop(&mut c.drops, reason);
        }
    }

    // ----- clients and paths -------------------------------------------------------------

    /// Makes room for `clients` more clients of `paths` delivery connections each, so that
    /// adding them does not grow (and rehash, and move) the client table and the indexes step
    /// by step: for an operator adding a known number of clients at start.
    pub fn reserve_clients(&mut self, clients: usize, paths: usize) {
        self.clients.reserve(clients);
        self.by_id.reserve(clients);
        self.by_anchor.reserve(clients);
        self.by_udp.reserve(clients * paths);
        self.by_remote.reserve(clients * paths);
    }

    /// Adds a client. Its paths start unusable until [`Engine::set_path_usable`].
    pub fn add_client(&mut self, cfg: ClientConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        if self.by_id.contains_key(&cfg.id) {
            return Err(ConfigError::DuplicateClient(cfg.id));
        }
        if let Some(other) = self.by_anchor.get(&cfg.anchor_addr) {
            let id = self.clients[other as usize]
                .as_ref()
                .map_or(cfg.id, |c| c.id);
            return Err(ConfigError::DuplicateAnchorAddress(id));
        }
        for d in &cfg.deliveries {
            if self.endpoint_taken(d, cfg.convergence, None) {
                return Err(ConfigError::DuplicateEndpoint(d.id));
            }
        }
        // Only now that nothing can fail is a slot taken.
        let slot = self.free_slots.pop().unwrap_or(self.clients.len());
        let paths: SmallVec<[Path; 2]> = cfg
            .deliveries
            .iter()
            .map(|d| {
                let shared = self.deliveries.intern(Path::shared_config(*d));
                Path::new(shared, d.remote, cfg.convergence)
            })
            .collect();
        self.shaping_paths += shaped(&paths);
        let tc_ids = config::tc_ids(&cfg);
        let mut tcs: SmallVec<[TcState; 1]> = SmallVec::with_capacity(tc_ids.len());
        for id in tc_ids {
            let rule_mode = cfg
                .traffic_classes
                .iter()
                .find(|r| r.id == id)
                .and_then(|r| r.steering);
            let mut steering = Steering::new(rule_mode.unwrap_or(cfg.steering));
            for p in &paths {
                // At most MAX_PATHS paths (validated).
                let _ = steering.set_path(p.cfg.id, p.steering_params());
            }
            tcs.push(TcState {
                id,
                steering,
                own_mode: rule_mode.is_some(),
            });
        }
        let mut tx_seq = SmallVec::with_capacity(cfg.anchors.len() * tcs.len());
        for a in &cfg.anchors {
            for t in &tcs {
                tx_seq.push((a.connection_id, t.id, 0u32));
            }
        }
        // The deliveries live in the paths (shared, with each path's own endpoint):
        // update_delivery rebuilds the list from them when it validates a change.
        let ClientConfig {
            id,
            anchor_addr,
            anchors,
            traffic_classes,
            steering,
            convergence,
            deliveries: _,
        } = cfg;
        let client = Client {
            id,
            anchor_addr,
            steering,
            profile: self.profiles.intern(ClientProfile {
                anchors,
                traffic_classes,
                convergence,
            }),
            paths,
            tcs,
            tx_seq,
            // Grown on the first PDU of each flow (bounded by max_rx_flows_per_client): a
            // downlink-only or idle client costs no flow storage.
            rx_flows: Vec::new(),
            counters: counters::ClientTally::default(),
            drops: None,
            reorder_timeout: self.cfg.reorder.timeout_ns,
            listed: false,
        };
        self.by_id.insert(client.id, slot);
        self.by_anchor.insert(client.anchor_addr, slot as u32);
        if slot == self.clients.len() {
            self.clients.push(Some(client));
        } else {
            self.clients[slot] = Some(client);
        }
        // O(paths): only this client's keys are new.
        self.index_client(slot);
        Ok(())
    }

    /// Whether another path already owns the endpoint `d` would be found by.
    fn endpoint_taken(
        &self,
        d: &DeliveryConfig,
        convergence: Convergence,
        except: Option<(usize, usize)>,
    ) -> bool {
        let taken = |v: Option<&(usize, usize)>| v.is_some_and(|v| Some(*v) != except);
        match (convergence, d.adaptation) {
            (_, Adaptation::UdpTunnel { .. }) => d
                .remote
                .is_some_and(|r| taken(self.by_udp.get(&(d.local, r)).map(PathRef::get).as_ref())),
            (Convergence::Trailer, Adaptation::ClientNat) => {
                d.client_addr.is_some_and(|a| taken(self.by_nat.get(&a)))
            }
            (Convergence::Gre, _) => d
                .peer_ip()
                .is_some_and(|r| taken(self.by_ip_pair.get(&(d.local.ip(), r)))),
            (Convergence::Trailer, Adaptation::PassThrough) => false,
        }
    }

    /// The key `index_path` files path `pi` of client `ci` under (from its current state).
    fn path_key(&self, ci: usize, pi: usize) -> Option<PathKey> {
        let c = self.clients.get(ci)?.as_ref()?;
        let p = c.paths.get(pi)?;
        Some(match (c.profile.convergence, p.cfg.adaptation) {
            (_, Adaptation::UdpTunnel { .. }) => PathKey::Udp(p.cfg.local, p.remote),
            (Convergence::Trailer, Adaptation::ClientNat) => PathKey::Nat(p.cfg.client_addr),
            (Convergence::Gre, _) => PathKey::IpPair(
                p.cfg.local.ip(),
                p.remote.map(|r| r.ip()).or(p.cfg.client_addr),
            ),
            (Convergence::Trailer, Adaptation::PassThrough) => PathKey::None,
        })
    }

    /// Files path `pi` of client `ci` in the indexes: O(1).
    fn index_path(&mut self, ci: usize, pi: usize) {
        let v = (ci, pi);
        match self.path_key(ci, pi) {
            Some(PathKey::Udp(local, remote)) => {
                *self.udp_locals.entry(local).or_insert(0) += 1;
                if let Some(r) = remote {
                    self.by_udp.insert((local, r), PathRef::new(v));
                    self.by_remote.insert_if_absent(r, PathRef::new(v));
                }
            }
            Some(PathKey::Nat(Some(a))) => {
                self.by_nat.insert(a, v);
            }
            Some(PathKey::IpPair(local, Some(r))) => {
                self.by_ip_pair.insert((local, r), v);
            }
            _ => {}
        }
    }

    /// Removes what `index_path` filed for path `pi` of client `ci` (call before the path's
    /// endpoints change): O(1). A key another path owns now is left alone.
    fn unindex_path(&mut self, ci: usize, pi: usize) {
        let v = (ci, pi);
        fn remove_if<K: core::hash::Hash + Eq>(
            m: &mut HashMap<K, (usize, usize)>,
            k: &K,
            v: (usize, usize),
        ) {
            if m.get(k) == Some(&v) {
                m.remove(k);
            }
        }
        match self.path_key(ci, pi) {
            Some(PathKey::Udp(local, remote)) => {
                if let Some(n) = self.udp_locals.get_mut(&local) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.udp_locals.remove(&local);
                    }
                }
                if let Some(r) = remote {
                    self.by_udp.remove_if(&(local, r), PathRef::new(v));
                    self.by_remote.remove_if(&r, PathRef::new(v));
                }
            }
            Some(PathKey::Nat(Some(a))) => remove_if(&mut self.by_nat, &a, v),
            Some(PathKey::IpPair(local, Some(r))) => {
                remove_if(&mut self.by_ip_pair, &(local, r), v)
            }
            _ => {}
        }
    }

    fn path_count(&self, ci: usize) -> usize {
        self.clients
            .get(ci)
            .and_then(|c| c.as_ref())
            .map_or(0, |c| c.paths.len())
    }

    fn index_client(&mut self, ci: usize) {
        for pi in 0..self.path_count(ci) {
            self.index_path(ci, pi);
        }
    }

    fn unindex_client(&mut self, ci: usize) {
        for pi in 0..self.path_count(ci) {
            self.unindex_path(ci, pi);
        }
    }

    /// Removes a client; every buffer it holds (reorder buffers) goes back to the pool.
    /// Returns false for an unknown client.
    pub fn remove_client(&mut self, id: ClientId, pool: &mut dyn BufPool<B>) -> bool {
        let Some(ci) = self.by_id.remove(&id) else {
            return false;
        };
        self.unindex_client(ci);
        self.held.retain(|&h| h != ci);
        if let Some(c) = self.clients.get_mut(ci).and_then(|c| c.take()) {
            // What waits for its shapers goes back to the pool (the slots empty at the next
            // release).
            for slot in c.paths.iter().filter_map(|p| p.shape_slot) {
                let sq = &mut self.shape_queues[slot as usize];
                for (_, o) in sq.q.drain(..) {
                    if let Output::Delivery { pkt, .. } = o {
                        pool.free(pkt);
                    }
                }
                sq.bytes = 0;
            }
            let holding = c.paths.iter().filter(|p| p.hold_ns > 0).count();
            self.holding_paths = self.holding_paths.saturating_sub(holding);
            self.shaping_paths = self.shaping_paths.saturating_sub(c.shaping_paths());
            self.by_anchor.remove(&c.anchor_addr);
            for p in &c.paths {
                self.deliveries.release(&p.cfg);
            }
            self.profiles.release(&c.profile);
            let slab = &mut self.slab;
            for f in c.rx_flows {
                let mut free = |_, h: u32| {
                    if let Some(b) = slab.take(h) {
                        pool.free(b);
                    }
                };
                match f.reorder {
                    Reorder::Mx(mut r) => {
                        r.flush(|s, h| free(s.0 as u64, h));
                    }
                    Reorder::Gre(mut r) => {
                        r.flush(|s, h| free(u64::from(s.0), h));
                    }
                }
            }
        }
        self.free_slots.push(ci);
        true
    }

    /// Adds or replaces a delivery connection of a client (usability, estimates and counters
    /// of an existing path are kept; a learned remote is kept unless the new configuration
    /// names one).
    pub fn update_delivery(
        &mut self,
        client: ClientId,
        d: DeliveryConfig,
    ) -> Result<(), ConfigError> {
        let ci = *self
            .by_id
            .get(&client)
            .ok_or(ConfigError::UnknownClient(client))?;
        let Some(c) = self.clients.get(ci).and_then(|c| c.as_ref()) else {
            return Err(ConfigError::UnknownClient(client));
        };
        let mut trial = c.config();
        match trial.deliveries.iter_mut().find(|e| e.id == d.id) {
            Some(e) => *e = d,
            None => trial.deliveries.push(d),
        }
        trial.validate()?;
        let existing = c.path_index(d.id);
        if self.endpoint_taken(&d, c.profile.convergence, existing.map(|pi| (ci, pi))) {
            return Err(ConfigError::DuplicateEndpoint(d.id));
        }
        // The client's keys go before its paths change and come back after (O(paths)).
        self.unindex_client(ci);
        let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) else {
            return Err(ConfigError::UnknownClient(client));
        };
        self.shaping_paths = self.shaping_paths.saturating_sub(c.shaping_paths());
        let convergence = c.profile.convergence;
        let shared = self.deliveries.intern(Path::shared_config(d));
        match existing.and_then(|pi| c.paths.get_mut(pi)) {
            Some(p) => {
                self.deliveries.release(&p.cfg);
                let mut n = Path::new(shared, d.remote.or(p.remote), convergence);
                n.ident = p.ident;
                n.usable = p.usable;
                n.owd_ns = p.owd_ns;
                n.rate_bps = p.rate_bps;
                n.counters = std::mem::take(&mut p.counters);
                n.hold_ns = p.hold_ns;
                n.shape_next = p.shape_next;
                n.shape_slot = p.shape_slot;
                *p = n;
            }
            None => c.paths.push(Path::new(shared, d.remote, convergence)),
        }
        self.shaping_paths += c.shaping_paths();
        if let Some(pi) = c.path_index(d.id) {
            c.push_path_params(pi);
        }
        self.index_client(ci);
        self.update_holds(ci);
        Ok(())
    }

    /// Whether the outer UDP checksum of a UDP-tunnel path over IPv4 is computed or sent as 0,
    /// "no checksum" (the default, [`DeliveryConfig::udp_checksum`]; RFC 768: our receive side
    /// accepts 0, as must any UDP receiver). Computing it reads every byte of the PDU, the
    /// dominant per-byte cost of the downlink. IPv6 tunnels always carry a checksum (RFC 8200
    /// §8.1). A later [`Engine::update_delivery`] takes its configuration's setting. Returns
    /// false for an unknown client or path.
    pub fn set_udp_checksum(&mut self, client: ClientId, path: PathId, enabled: bool) -> bool {
        let Some(&ci) = self.by_id.get(&client) else {
            return false;
        };
        let Some(p) = self.clients[ci].as_mut().and_then(|c| {
            let pi = c.path_index(path)?;
            c.paths.get_mut(pi)
        }) else {
            return false;
        };
        let shared = self.deliveries.intern(DeliveryConfig {
            udp_checksum: enabled,
            ..*p.cfg
        });
        self.deliveries.release(&p.cfg);
        p.cfg = shared;
        true
    }

    /// Marks a path usable or not for steering (from the path monitor). Lossless switching
    /// (draft-04 §4.2.1): SNs continue across paths, the receiver's reorder buffer absorbs
    /// packets still in flight on the old one. Returns false for an unknown client or path.
    pub fn set_path_usable(&mut self, client: ClientId, path: PathId, usable: bool) -> bool {
        let Some(c) = self.client_mut(client) else {
            return false;
        };
        let Some(pi) = c.path_index(path) else {
            return false;
        };
        c.paths[pi].usable = usable;
        for t in &mut c.tcs {
            t.steering.set_usable(path, usable);
        }
        if !usable {
            // Lossless switching, receive side: what waits for the dead path is released as
            // soon as the path is declared down, not after the reorder timeout.
            for f in &mut c.rx_flows {
                f.reorder.forget_path(pi);
            }
        }
        self.update_reorder_timeout(client);
        if let Some(&ci) = self.by_id.get(&client) {
            self.update_holds(ci);
        }
        true
    }

    /// Changes only the steering weight of a path (`weighted` and `per-flow` modes, e.g. the
    /// slow path's loss-scaled weight), in every traffic class; usability, estimates, the
    /// endpoint and counters are untouched. The client's configuration keeps the configured
    /// weight: a later [`Engine::update_delivery`] of this path sets the weight it names.
    /// Returns false for an unknown client or path.
    pub fn set_path_weight(&mut self, client: ClientId, path: PathId, weight: u32) -> bool {
        let Some(c) = self.client_mut(client) else {
            return false;
        };
        let Some(pi) = c.path_index(path) else {
            return false;
        };
        c.paths[pi].weight = weight;
        c.push_path_params(pi);
        true
    }

    /// Feeds the slow path's estimates of a path: one-way delay (delay-aware steering, adaptive
    /// reorder timeout) and rate (delay-aware steering; `None` keeps the configured rate).
    pub fn set_path_estimates(
        &mut self,
        client: ClientId,
        path: PathId,
        owd_ns: u64,
        rate_bps: Option<u64>,
    ) -> bool {
        let Some(c) = self.client_mut(client) else {
            return false;
        };
        let Some(pi) = c.path_index(path) else {
            return false;
        };
        let p = &mut c.paths[pi];
        p.owd_ns = Some(owd_ns);
        if rate_bps.is_some() {
            p.rate_bps = rate_bps;
        }
        c.push_path_params(pi);
        self.update_reorder_timeout(client);
        if let Some(&ci) = self.by_id.get(&client) {
            self.update_holds(ci);
        }
        true
    }

    /// A measured rate of a path ([`crate::flow::capacity`]): its shaper, if it has one, sends
    /// at it from now on, and steering uses it as it uses a rate from `set_path_estimates`.
    /// Returns false for an unknown client or path, or a zero rate.
    pub fn set_path_rate(&mut self, client: ClientId, path: PathId, rate_bps: u64) -> bool {
        if rate_bps == 0 {
            return false;
        }
        let Some(c) = self.client_mut(client) else {
            return false;
        };
        let Some(pi) = c.path_index(path) else {
            return false;
        };
        let p = &mut c.paths[pi];
        p.rate_bps = Some(rate_bps);
        if p.cfg.shaper.is_some() {
            p.shape_rate_bps = rate_bps;
        }
        c.push_path_params(pi);
        true
    }

    /// Changes the steering mode of one traffic class (`Some(tc)`), or of the client's default
    /// and every class without its own mode (`None`). Returns false for an unknown client or
    /// class.
    pub fn set_steering(&mut self, client: ClientId, tc: Option<u8>, mode: SteeringMode) -> bool {
        let Some(c) = self.client_mut(client) else {
            return false;
        };
        match tc {
            Some(id) => match c.tcs.iter_mut().find(|t| t.id == id) {
                Some(t) => {
                    t.steering.set_mode(mode);
                    t.own_mode = true;
                    true
                }
                None => false,
            },
            None => {
                c.steering = mode;
                for t in c.tcs.iter_mut().filter(|t| !t.own_mode) {
                    t.steering.set_mode(mode);
                }
                if let Some(&ci) = self.by_id.get(&client) {
                    self.update_holds(ci);
                }
                true
            }
        }
    }

    /// WIRE.md adaptive reorder timeout from the usable paths' OWD estimates.
    fn update_reorder_timeout(&mut self, client: ClientId) {
        if self.cfg.reorder_timeout != ReorderTimeout::Adaptive {
            return;
        }
        let Some(c) = self.client_mut(client) else {
            return;
        };
        let mut owds = [0u64; crate::flow::steering::MAX_PATHS];
        let mut n = 0;
        for p in c.paths.iter().filter(|p| p.usable) {
            if let (Some(o), Some(slot)) = (p.owd_ns, owds.get_mut(n)) {
                *slot = o;
                n += 1;
            }
        }
        if n == 0 {
            return;
        }
        let t = adaptive_timeout(&owds[..n]);
        c.reorder_timeout = t;
        for f in &mut c.rx_flows {
            f.reorder.set_timeout(t);
        }
    }

    fn client_mut(&mut self, id: ClientId) -> Option<&mut Client> {
        let ci = *self.by_id.get(&id)?;
        self.clients.get_mut(ci)?.as_mut()
    }

    fn client_ref(&self, id: ClientId) -> Option<&Client> {
        let ci = *self.by_id.get(&id)?;
        self.clients.get(ci)?.as_ref()
    }

    // ----- queries -----------------------------------------------------------------------

    /// IDs of every client, in slot order.
    pub fn client_ids(&self) -> Vec<ClientId> {
        self.clients.iter().flatten().map(|c| c.id).collect()
    }

    /// Every client's statistics in slot order, written over `out`: its vectors are reused, so
    /// a caller that keeps `out` between calls allocates nothing once it has the clients'
    /// size (the runtime publishes this every 100 ms for up to millions of clients).
    pub fn client_stats_into(&self, out: &mut Vec<ClientStats>) {
        let mut n = 0;
        for c in self.clients.iter().flatten() {
            if n == out.len() {
                out.push(ClientStats::default());
            }
            let s = &mut out[n];
            s.id = c.id;
            s.counters = c.counters_read();
            s.reorder_timeout_ns = c.reorder_timeout;
            s.paths.clear();
            s.paths.extend(c.paths.iter().map(|p| PathStats {
                id: p.cfg.id,
                counters: p.counters.read(),
                remote: p.remote,
            }));
            n += 1;
        }
        out.truncate(n);
    }

    /// Distinct delivery configurations the clients' paths share (clients configured alike,
    /// apart from their endpoints, share one per path).
    pub fn shared_delivery_configs(&self) -> usize {
        self.deliveries.len()
    }

    /// Last time a data PDU arrived on a path (`Some(0)`: never), for the slow path.
    pub fn path_last_rx(&self, client: ClientId, path: PathId) -> Option<Instant> {
        let c = self.client_ref(client)?;
        Some(c.paths.get(c.path_index(path)?)?.counters.last_rx)
    }

    /// The peer endpoint a path currently uses (configured, learned or rebound).
    pub fn path_remote(&self, client: ClientId, path: PathId) -> Option<SocketAddr> {
        let c = self.client_ref(client)?;
        c.paths.get(c.path_index(path)?)?.remote
    }

    /// Engine-wide counters.
    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }

    /// Counters of a client, reorder statistics summed over its flows.
    pub fn client_counters(&self, client: ClientId) -> Option<ClientCounters> {
        let c = self.client_ref(client)?;
        Some(c.counters_read())
    }

    /// Drops attributed to a client, per reason (`DropReason as usize`); each is also counted
    /// in [`EngineCounters::drops`]. A drop is attributed once the packet is known to be the
    /// client's: from the anchor side after the anchor-address lookup, from the delivery side
    /// after the path lookup (UDP endpoints, NAT address, GRE addresses or inner anchor
    /// address). Not attributed (engine-wide only): packets dropped before that (malformed
    /// outer headers, unknown client or peer), and reassembly timeouts, because the
    /// reassembler's expiry does not report the flow it expired. `None` for an unknown client.
    pub fn client_drops(&self, client: ClientId) -> Option<[u64; DropReason::COUNT]> {
        self.client_ref(client).map(|c| {
            c.drops
                .as_deref()
                .copied()
                .unwrap_or([0; DropReason::COUNT])
        })
    }

    /// Counters of a path.
    pub fn path_counters(&self, client: ClientId, path: PathId) -> Option<PathCounters> {
        let c = self.client_ref(client)?;
        Some(c.paths.get(c.path_index(path)?)?.counters.read())
    }

    /// Reassembly statistics (engine-wide).
    pub fn reassembly_stats(&self) -> &ReassemblyStats {
        self.reasm.stats()
    }

    /// Bytes held by incomplete SDUs.
    pub fn reassembly_bytes(&self) -> usize {
        self.reasm.in_use_bytes()
    }

    /// Packets held in the reorder buffers of every client.
    pub fn reorder_depth(&self) -> usize {
        self.clients
            .iter()
            .flatten()
            .flat_map(|c| c.rx_flows.iter())
            .map(|f| f.reorder.depth())
            .sum()
    }

    /// The reorder timeout in force for a client.
    pub fn reorder_timeout(&self, client: ClientId) -> Option<u64> {
        self.client_ref(client).map(|c| c.reorder_timeout)
    }

    // ----- control ------------------------------------------------------------------------

    /// Builds a control PDU (draft-04 §5) for `path` of `client`, ready to send like an
    /// [`Output::Delivery`] packet: UDP between the N-MADP's control endpoint and the client's
    /// endpoint on that path (N-MADP: from the control endpoint to the path's peer; C-MADP: from
    /// the path's local endpoint to the control endpoint). `None` (counted) when the PDU cannot
    /// be sent in this direction, the peer is unknown or the pool is empty.
    ///
    /// AMBIGUITY (draft-04 §5 "MX control PDU goes through the MX adaptation sublayer the same
    /// way as MX data PDU"; WIRE.md "carried in UDP to or from the N-MADP's control
    /// endpoint"): the control UDP datagram uses the path's addressing directly (no inner
    /// tunnel). The client's endpoint is the tunnel endpoint (UDP tunnel), its NAT address with
    /// the control port (client NAT) or its anchor address with the control port
    /// (pass-through).
    pub fn build_control(
        &mut self,
        client: ClientId,
        path: PathId,
        pdu: &ControlPdu,
        pool: &mut dyn BufPool<B>,
    ) -> Option<B> {
        let control = self.cfg.control;
        let role = self.cfg.role;
        let dir = self.tx_direction();
        let ci = *self.by_id.get(&client)?;
        let c = self.client_ref(client)?;
        let p = c.paths.get(c.path_index(path)?)?;
        let client_end = match (role, p.cfg.adaptation) {
            (Role::NMadp, Adaptation::UdpTunnel { .. }) => p.remote,
            (Role::CMadp, Adaptation::UdpTunnel { .. }) => Some(p.cfg.local),
            (_, Adaptation::ClientNat) => p
                .cfg
                .client_addr
                .map(|a| SocketAddr::new(a, control.port())),
            (_, Adaptation::PassThrough) => Some(SocketAddr::new(c.anchor_addr, control.port())),
        };
        let Some(client_end) = client_end else {
            self.count_for(ci, DropReason::NoRemote);
            return None;
        };
        let (src, dst) = match role {
            Role::NMadp => (control, client_end),
            Role::CMadp => (client_end, control),
        };
        let Some(mut buf) = pool.alloc() else {
            self.count_for(ci, DropReason::PoolExhausted);
            return None;
        };
        let Some(body) = buf.append(pdu.buffer_len()) else {
            self.drop_for(ci, pool, buf, DropReason::NoRoom);
            return None;
        };
        if let Err(e) = pdu.emit(body, dir) {
            self.drop_for(ci, pool, buf, e.reason);
            return None;
        }
        let ident = match self.client_mut(client).and_then(|c| {
            let pi = c.path_index(path)?;
            c.paths.get_mut(pi)
        }) {
            Some(p) => {
                p.ident = p.ident.wrapping_add(1);
                p.ident
            }
            None => 0,
        };
        if let Err(r) = adapt::push_udp_ip(&mut buf, src, dst, ident) {
            self.drop_for(ci, pool, buf, r);
            return None;
        }
        self.counters.control_tx += 1;
        Some(buf)
    }

    // ----- timers ------------------------------------------------------------------------

    /// Runs reorder and reassembly timeouts: SDUs whose predecessors did not arrive in time are
    /// released (in order) to the anchor side; incomplete SDUs expire.
    pub fn poll(&mut self, now: Instant, _pool: &mut dyn BufPool<B>, out: &mut Vec<Output<B>>) {
        self.release_delayed(now, out);
        self.release_shaped(now, out);
        let before = self.reasm.stats().timeouts;
        self.reasm.poll(now);
        let expired = self.reasm.stats().timeouts - before;
        for _ in 0..expired {
            self.counters.drop(DropReason::ReassemblyTimeout);
        }
        let slab = &mut self.slab;
        let counters = &mut self.counters;
        let clients = &mut self.clients;
        // Only clients that may hold packets; those that no longer do leave the list.
        self.held.retain(|&ci| {
            let Some(c) = clients.get_mut(ci).and_then(|c| c.as_mut()) else {
                return false;
            };
            let Client {
                rx_flows,
                counters: cc,
                listed,
                paths,
                ..
            } = c;
            let mut holding = false;
            for f in rx_flows.iter_mut() {
                let live = live_paths(paths, now, f.reorder.effective_timeout());
                if f.reorder.next_deadline().is_none_or(|d| d > now) {
                    continue;
                }
                let mut release = |h: u32| {
                    if let Some(b) = slab.take(h) {
                        cc.rx_sdus += 1;
                        cc.rx_bytes += b.len() as u64;
                        counters.anchor_tx += 1;
                        out.push(Output::Anchor(b));
                    }
                };
                match &mut f.reorder {
                    Reorder::Mx(r) => {
                        r.poll_via(now, Some(live), |_, h| release(h));
                    }
                    Reorder::Gre(r) => {
                        r.poll_via(now, Some(live), |_, h| release(h));
                    }
                }
            }
            holding = holding || rx_flows.iter().any(|f| f.reorder.depth() > 0);
            *listed = holding;
            holding
        });
    }

    /// Puts the client in slot `ci` on the list [`Engine::poll`] visits (a reorder buffer of it
    /// now holds a packet).
    fn mark_held(&mut self, ci: usize) {
        if let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) {
            if !c.listed {
                c.listed = true;
                self.held.push(ci);
            }
        }
    }

    /// Releases everything held, for shutdown: every reorder buffer of every client releases
    /// its packets in SN order to `out` as [`Output::Anchor`] (missing SNs are skipped and
    /// counted in the flows' `gaps_skipped`, as a timeout would), and every incomplete SDU of the
    /// reassembler is dropped (counted as [`DropReason::ReassemblyTimeout`], as its expiry
    /// would be). Unlike `poll(far future)` this does not move the buffers' clocks: the engine
    /// stays usable and the next packet of a flow continues after the last one released.
    pub fn flush(&mut self, _pool: &mut dyn BufPool<B>, out: &mut Vec<Output<B>>) {
        self.release_delayed(Instant::MAX, out);
        self.release_shaped(Instant::MAX, out);
        // Every slot's deadline is `created + timeout <= u64::MAX` (saturating): all expire.
        let expired = self.reasm.poll(Instant::MAX);
        for _ in 0..expired {
            self.counters.drop(DropReason::ReassemblyTimeout);
        }
        for c in self.clients.iter_mut().flatten() {
            flush_reorder(c, &mut self.slab, &mut self.counters, out);
        }
    }

    /// [`Engine::flush`]'s reorder part for one client, e.g. before [`Engine::remove_client`]
    /// (which drops what is held). Incomplete SDUs of the client stay in the engine-wide
    /// reassembler, which cannot tell them apart by client, and expire by timeout. Returns false
    /// for an unknown client.
    pub fn flush_client(&mut self, client: ClientId, out: &mut Vec<Output<B>>) -> bool {
        let Some(&ci) = self.by_id.get(&client) else {
            return false;
        };
        let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) else {
            return false;
        };
        flush_reorder(c, &mut self.slab, &mut self.counters, out);
        true
    }

    /// The client's peer restarted (its sequence-number space starts over, e.g. a keep-alive
    /// SN reset seen by the slow path): every receive flow of the client releases what it
    /// holds, in order, to `out`, then forgets its release point and history and waits for SN 0
    /// again, as a new flow does. Counters are kept; `rx_resets` counts the resets. Returns
    /// false for an unknown client.
    pub fn reset_rx_flows(&mut self, client: ClientId, out: &mut Vec<Output<B>>) -> bool {
        if !self.flush_client(client, out) {
            return false;
        }
        let Some(c) = self.client_mut(client) else {
            return false;
        };
        for f in &mut c.rx_flows {
            f.reorder.restart();
        }
        c.counters.rx_resets += 1;
        true
    }

    /// When [`Engine::poll`] must next run, `None` when nothing waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.reasm.next_deadline();
        if let Some(t) = self.tx_deadline() {
            d = Some(d.map_or(t, |d| d.min(t)));
        }
        let listed = self
            .held
            .iter()
            .filter_map(|&ci| self.clients.get(ci)?.as_ref());
        for c in listed {
            for f in &c.rx_flows {
                if let Some(t) = f.reorder.next_deadline() {
                    d = Some(d.map_or(t, |d| d.min(t)));
                }
            }
        }
        d
    }
}

/// Releases every packet held in a client's reorder buffers, in SN order (skipping gaps).
fn flush_reorder<B: PacketBuf>(
    c: &mut Client,
    slab: &mut Slab<B>,
    counters: &mut EngineCounters,
    out: &mut Vec<Output<B>>,
) {
    let Client {
        rx_flows,
        counters: cc,
        ..
    } = c;
    for f in rx_flows.iter_mut() {
        let mut release = |h: u32| {
            if let Some(b) = slab.take(h) {
                cc.rx_sdus += 1;
                cc.rx_bytes += b.len() as u64;
                counters.anchor_tx += 1;
                out.push(Output::Anchor(b));
            }
        };
        match &mut f.reorder {
            Reorder::Mx(r) => {
                r.flush(|_, h| release(h));
            }
            Reorder::Gre(r) => {
                r.flush(|_, h| release(h));
            }
        }
    }
}

#[cfg(test)]
mod tests;

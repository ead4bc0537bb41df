//! Two-path simulator: an N-MADP [`Engine`] and a C-MADP [`Engine`] joined by two emulated
//! links per direction ("wifi", "lte"), driven by a virtual clock. Deterministic: every random
//! draw comes from seeded link generators.
//!
//! Traffic sources (downlink and uplink, several flows, constant bit rate, fixed or variable
//! sizes) put a flow id and a counter in each SDU's payload; a sink per side checks per-flow
//! order, duplicates, loss and transport checksums. Each engine has the slow path the runtime
//! ships, a [`Supervisor`] (probes from the N-MADP, keep-alives and probe ACKs from the C-MADP,
//! liveness, restart detection), fed the engines' [`Output::Control`] and per-path receive
//! times; its actions are applied to the engines and its control PDUs built with
//! [`Engine::build_control`] and sent over the links.

use std::net::{IpAddr, SocketAddr};

use crate::buf::{BufPool, HeapBuf, HeapPool, PacketBuf};
use crate::engine::{
    Adaptation, AnchorConnection, ClientConfig, ClientCounters, ClientId, Convergence,
    DeliveryConfig, Engine, EngineConfig, EngineCounters, Output, PathCounters, ReorderTimeout,
    Role, Shaper, TcRule,
};
use crate::flow::capacity::CapacityConfig;
use crate::flow::path_monitor::PathMonitorConfig;
use crate::flow::reassembly::ReassemblyConfig;
use crate::flow::reorder::ReorderConfig;
use crate::flow::steering::{PathId, SteeringMode};
use crate::flow::{Instant, MS};
use crate::supervisor::{Action, ControlInput, Supervisor, SupervisorConfig, SupervisorCounters};
use crate::wire::checksum;
use crate::wire::ip::IpPacket;
use crate::wire::ipv4::{self, PROTOCOL_TCP, PROTOCOL_UDP};
use crate::wire::mx_trailer::TrailerFields;
use crate::wire::{ipv6, udp};

use super::clock::{next_event, VirtualClock};
use super::link::{EmulatedLink, LinkConfig, LinkStats};

/// Which way a flow goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowDir {
    /// Internet -> N-MADP -> C-MADP.
    Down,
    /// C-MADP -> N-MADP -> internet.
    Up,
}

/// SDU sizes of a flow (IP total length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    Fixed(usize),
    /// Cycles deterministically through `lo..=hi`.
    Range(usize, usize),
}

/// One traffic source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    pub id: u16,
    pub dir: FlowDir,
    /// Offered rate, bit/s of IP packets.
    pub rate_bps: u64,
    pub size: SizeSpec,
    /// Transport: UDP (17) or TCP (6; a bare header, enough for classification and checksums).
    pub protocol: u8,
    pub dscp: u8,
    /// Packets to send (`None`: until the sources stop).
    pub count: Option<u64>,
    pub start_ns: Instant,
}

impl FlowSpec {
    /// A UDP flow of `size`-byte packets at `rate_bps`.
    pub fn udp(id: u16, dir: FlowDir, rate_bps: u64, size: usize) -> Self {
        FlowSpec {
            id,
            dir,
            rate_bps,
            size: SizeSpec::Fixed(size),
            protocol: PROTOCOL_UDP,
            dscp: 0,
            count: None,
            start_ns: 0,
        }
    }
}

/// A scheduled change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    /// Both directions of path `idx` go down (`false`) or up (`true`).
    Link { at: Instant, path: usize, up: bool },
    /// New link configuration for path `idx`, one direction.
    LinkConfig {
        at: Instant,
        path: usize,
        dir: FlowDir,
        cfg: LinkConfig,
    },
    /// New default steering mode on both engines.
    Steering { at: Instant, mode: SteeringMode },
    /// Path `idx` marked usable or not in both engines by hand (for runs without the slow
    /// path): lossless switching while the link itself keeps working.
    PathUsable {
        at: Instant,
        path: usize,
        usable: bool,
    },
    /// One side (`nmadp`: the N-MADP, else the C-MADP) is killed and started again: a new
    /// engine and slow path, with their sequence numbers from the start and nothing buffered.
    Restart { at: Instant, nmadp: bool },
}

impl Event {
    fn at(&self) -> Instant {
        match self {
            Event::Link { at, .. }
            | Event::LinkConfig { at, .. }
            | Event::Steering { at, .. }
            | Event::PathUsable { at, .. }
            | Event::Restart { at, .. } => *at,
        }
    }
}

/// One delivery path of the simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathSpec {
    pub name: &'static str,
    pub id: PathId,
    pub down: LinkConfig,
    pub up: LinkConfig,
    pub mtu: u16,
    pub weight: u32,
    pub priority: u8,
}

/// Everything a scenario sets.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub paths: Vec<PathSpec>,
    pub steering: SteeringMode,
    pub convergence: Convergence,
    pub adaptation: Adaptation,
    pub ipv6: bool,
    /// Trailer fields negotiated on every path, both directions.
    pub trailer: TrailerFields,
    pub concatenation: bool,
    /// Outer UDP checksums on IPv4 tunnels ([`DeliveryConfig::udp_checksum`]).
    pub udp_checksum: bool,
    /// Shape every path at this percentage of its link rate (0: no shaper), holding at most
    /// `shape_queue_ns` ([`DeliveryConfig::shaper`]).
    pub shape_percent: u8,
    pub shape_queue_ns: u64,
    /// The N-MADP is given no path rates: its shapers start at the capacity estimator's
    /// initial rate and follow the measured capacity (`shape_percent` must be set).
    pub measured_rates: bool,
    pub flows: Vec<FlowSpec>,
    pub traffic_classes: Vec<TcRule>,
    /// Sources stop at this time; the run continues until `drain_ns` later.
    pub duration_ns: u64,
    pub drain_ns: u64,
    pub events: Vec<Event>,
    pub reorder: ReorderConfig,
    pub reorder_timeout: ReorderTimeout,
    pub reassembly: ReassemblyConfig,
    pub monitor: PathMonitorConfig,
    /// Source packets are released every `tick_ns` (0: each at its own time), in bursts of at
    /// most `burst` (so concatenation can pack them).
    pub tick_ns: u64,
    pub burst: usize,
    /// The C-MADP drops a path from steering when it showed no sign of life (probe REQ or
    /// data) for this long while another path did (the supervisor's `silence_ns`).
    pub cmadp_detection_ns: u64,
    /// The C-MADP's keep-alive period per path (draft-04 §5.1).
    pub keepalive_ns: u64,
    /// Whether the slow path runs; without it every path is usable all the time.
    pub slow_path: bool,
    pub seed: u64,
}

impl SimConfig {
    /// Wi-Fi 50 Mbit/s 20 ms + LTE 20 Mbit/s 60 ms, weighted 5:2, UDP tunnel, trailer
    /// convergence, no flows yet.
    pub fn wifi_lte() -> Self {
        let wifi = LinkConfig::default()
            .with_rate_bps(50_000_000)
            .with_delay_ns(20 * MS)
            .with_queue_limit_bytes(2_000_000);
        let lte = LinkConfig::default()
            .with_rate_bps(20_000_000)
            .with_delay_ns(60 * MS)
            .with_queue_limit_bytes(2_000_000);
        SimConfig {
            paths: vec![
                PathSpec {
                    name: "wifi",
                    id: PathId(1),
                    down: wifi.with_seed(11),
                    up: wifi.with_seed(12),
                    mtu: 1500,
                    weight: 5,
                    priority: 0,
                },
                PathSpec {
                    name: "lte",
                    id: PathId(2),
                    down: lte.with_seed(21),
                    up: lte.with_seed(22),
                    mtu: 1500,
                    weight: 2,
                    priority: 1,
                },
            ],
            steering: SteeringMode::Weighted,
            convergence: Convergence::Trailer,
            adaptation: Adaptation::UdpTunnel {
                header_optimization: false,
            },
            ipv6: false,
            trailer: TrailerFields::new(
                crate::wire::mx_trailer::flags::CONNECTION_ID
                    | crate::wire::mx_trailer::flags::TRAFFIC_CLASS
                    | crate::wire::mx_trailer::flags::SEQUENCE_NUMBER,
            ),
            concatenation: false,
            udp_checksum: false,
            shape_percent: 0,
            shape_queue_ns: 400 * MS,
            measured_rates: false,
            flows: Vec::new(),
            traffic_classes: Vec::new(),
            duration_ns: 1000 * MS,
            drain_ns: 1500 * MS,
            events: Vec::new(),
            reorder: ReorderConfig {
                window: 4096,
                timeout_ns: 100 * MS,
                ..ReorderConfig::default()
            },
            reorder_timeout: ReorderTimeout::Adaptive,
            reassembly: ReassemblyConfig::default(),
            monitor: PathMonitorConfig {
                probe_interval_ns: 50 * MS,
                initial_probe_interval_ns: 20 * MS,
                probe_timeout_ns: 200 * MS,
                suspect_after: 2,
                down_after: 3,
                up_after: 2,
                keepalive_timeout_ns: 0,
                ..PathMonitorConfig::default()
            },
            tick_ns: 0,
            burst: 32,
            cmadp_detection_ns: 200 * MS,
            keepalive_ns: 100 * MS,
            slow_path: true,
            seed: 1,
        }
    }
}

/// Addresses of the simulated network.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub anchor: IpAddr,
    pub server: IpAddr,
    pub control: SocketAddr,
    /// N-MADP tunnel endpoint per path.
    pub n_local: [SocketAddr; 2],
    /// C-MADP endpoint per path (also its client-NAT address).
    pub c_local: [SocketAddr; 2],
}

impl Addresses {
    fn new(v6: bool) -> Self {
        let ip = |v4: &str, v6s: &str| -> IpAddr {
            if v6 {
                v6s.parse()
                    .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))
            } else {
                v4.parse()
                    .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            }
        };
        let n = ip("192.0.2.1", "2001:db8:ffff::1");
        Addresses {
            anchor: ip("10.0.0.2", "2001:db8:a::2"),
            server: ip("8.8.4.4", "2001:db8:5e::4"),
            control: SocketAddr::new(n, 8888),
            n_local: [SocketAddr::new(n, 10021), SocketAddr::new(n, 10020)],
            c_local: [
                SocketAddr::new(ip("198.51.100.10", "2001:db8:1::10"), 40001),
                SocketAddr::new(ip("203.0.113.10", "2001:db8:2::10"), 40002),
            ],
        }
    }
}

/// Per-flow sink state and result.
#[derive(Debug, Clone, Default)]
pub struct FlowReport {
    pub id: u16,
    pub sent: u64,
    pub delivered: u64,
    pub bytes: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub checksum_errors: u64,
    pub malformed: u64,
    pub first_rx: Instant,
    pub last_rx: Instant,
    /// Longest time between two deliveries (disruption).
    pub max_gap_ns: u64,
    /// When the longest gap ended.
    pub max_gap_end: Instant,
    next: u64,
    seen: Vec<u64>,
}

impl FlowReport {
    /// SDUs sent and never delivered.
    pub fn missing(&self) -> u64 {
        self.sent.saturating_sub(self.delivered)
    }

    /// Delivered rate over the delivery period, bit/s.
    pub fn rate_bps(&self) -> f64 {
        let d = self.last_rx.saturating_sub(self.first_rx);
        if d == 0 {
            0.0
        } else {
            self.bytes as f64 * 8.0 * 1e9 / d as f64
        }
    }

    fn record(&mut self, counter: u64, bytes: usize, now: Instant) {
        let (w, b) = ((counter / 64) as usize, counter % 64);
        if self.seen.len() <= w {
            self.seen.resize(w + 1, 0);
        }
        if self.seen[w] & (1 << b) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[w] |= 1 << b;
        if counter < self.next {
            self.out_of_order += 1;
        }
        self.next = self.next.max(counter + 1);
        if self.delivered == 0 {
            self.first_rx = now;
        } else {
            let gap = now.saturating_sub(self.last_rx);
            if gap > self.max_gap_ns {
                self.max_gap_ns = gap;
                self.max_gap_end = now;
            }
        }
        self.last_rx = now;
        self.delivered += 1;
        self.bytes += bytes as u64;
    }
}

/// Result of one path.
#[derive(Debug, Clone)]
pub struct PathReport {
    pub name: &'static str,
    pub down: LinkStats,
    pub up: LinkStats,
    pub nmadp: PathCounters,
    pub cmadp: PathCounters,
    /// Inner bytes the N-MADP sent on this path per second of the sending period.
    pub down_rate_bps: f64,
    pub up_rate_bps: f64,
}

/// Result of a run.
#[derive(Debug, Clone)]
pub struct SimReport {
    pub flows: Vec<(FlowDir, FlowReport)>,
    pub paths: Vec<PathReport>,
    pub nmadp: EngineCounters,
    pub cmadp: EngineCounters,
    pub nmadp_client: ClientCounters,
    pub cmadp_client: ClientCounters,
    pub end_ns: Instant,
    /// Highest reorder depth and reassembly bytes seen in either engine.
    pub max_reorder_depth: usize,
    pub max_reassembly_bytes: usize,
    /// The slow paths' counters (of the engines running at the end).
    pub n_supervision: SupervisorCounters,
    pub c_supervision: SupervisorCounters,
}

impl SimReport {
    /// One line: per-direction delivery, rates per path and per flow, disruption, drops.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (dir, f) in &self.flows {
            s += &format!(
                "flow{}{} sent={} dlv={} miss={} dup={} ooo={} csum={} {:.1}Mb/s gap={:.0}ms; ",
                f.id,
                if *dir == FlowDir::Down { "v" } else { "^" },
                f.sent,
                f.delivered,
                f.missing(),
                f.duplicates,
                f.out_of_order,
                f.checksum_errors,
                f.rate_bps() / 1e6,
                f.max_gap_ns as f64 / 1e6
            );
        }
        for p in &self.paths {
            s += &format!(
                "{}: v{:.1}Mb/s ^{:.1}Mb/s pdus v{}/^{} lost v{}/^{} frag {} concat {}; ",
                p.name,
                p.down_rate_bps / 1e6,
                p.up_rate_bps / 1e6,
                p.nmadp.tx_pdus,
                p.cmadp.tx_pdus,
                p.down.dropped_loss + p.down.dropped_queue + p.down.dropped_down,
                p.up.dropped_loss + p.up.dropped_queue + p.up.dropped_down,
                p.nmadp.tx_fragments + p.cmadp.tx_fragments,
                p.nmadp.tx_concatenated + p.cmadp.tx_concatenated,
            );
        }
        let drops = |c: &EngineCounters| {
            c.nonzero_drops()
                .map(|(r, n)| format!("{r}={n}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        s += &format!(
            "drops N[{}] C[{}] maxdepth={} maxreasm={}B",
            drops(&self.nmadp),
            drops(&self.cmadp),
            self.max_reorder_depth,
            self.max_reassembly_bytes
        );
        s
    }

    /// Total of one direction's flows.
    pub fn total(&self, dir: FlowDir) -> FlowReport {
        let mut t = FlowReport::default();
        for (d, f) in &self.flows {
            if *d == dir {
                t.sent += f.sent;
                t.delivered += f.delivered;
                t.bytes += f.bytes;
                t.duplicates += f.duplicates;
                t.out_of_order += f.out_of_order;
                t.checksum_errors += f.checksum_errors;
                t.malformed += f.malformed;
                t.max_gap_ns = t.max_gap_ns.max(f.max_gap_ns);
            }
        }
        t
    }

    /// Losses on the links of one direction (random loss, queue, down).
    pub fn link_drops(&self, dir: FlowDir) -> u64 {
        self.paths
            .iter()
            .map(|p| {
                let l = if dir == FlowDir::Down { &p.down } else { &p.up };
                l.dropped_loss + l.dropped_queue + l.dropped_down
            })
            .sum()
    }
}

struct Source {
    spec: FlowSpec,
    next_at: Instant,
    counter: u64,
    interval_ns: u64,
}

struct SimPath {
    spec: PathSpec,
    down: EmulatedLink<HeapBuf>,
    up: EmulatedLink<HeapBuf>,
}

/// The harness. Fields are public so tests can inject packets and inspect the engines.
pub struct TwoPathSim {
    pub cfg: SimConfig,
    pub addr: Addresses,
    pub clock: VirtualClock,
    pub pool: HeapPool,
    pub nmadp: Engine<HeapBuf>,
    pub cmadp: Engine<HeapBuf>,
    pub client: ClientId,
    /// The slow paths (used when `cfg.slow_path`).
    pub n_sup: Supervisor,
    pub c_sup: Supervisor,
    actions: Vec<Action>,
    /// Per path: the N-MADP's transmit byte counter at its last sample (time, bytes), for the
    /// sent rate its supervisor's capacity estimators read.
    n_sent: Vec<(Instant, u64)>,
    /// Restarts of the (N-MADP, C-MADP) so far.
    pub restarts: (u32, u32),
    paths: Vec<SimPath>,
    sources: Vec<Source>,
    events: Vec<Event>,
    sinks: Vec<(FlowDir, FlowReport)>,
    out: Vec<Output<HeapBuf>>,
    burst_down: Vec<HeapBuf>,
    burst_up: Vec<HeapBuf>,
    max_depth: usize,
    max_reasm: usize,
}

impl core::fmt::Debug for TwoPathSim {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TwoPathSim")
            .field("now", &self.clock.now())
            .finish()
    }
}

fn client_config(cfg: &SimConfig, addr: &Addresses, role: Role) -> ClientConfig {
    let deliveries = cfg
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (n, c) = (addr.n_local[i % 2], addr.c_local[i % 2]);
            let (local, remote) = match role {
                Role::NMadp => (n, c),
                Role::CMadp => (c, n),
            };
            let gre_ip = cfg.convergence == Convergence::Gre
                && !matches!(cfg.adaptation, Adaptation::UdpTunnel { .. });
            let remote = match cfg.adaptation {
                Adaptation::UdpTunnel { .. } => Some(remote),
                _ if gre_ip => Some(SocketAddr::new(remote.ip(), 0)),
                _ => None,
            };
            let rate = match role {
                Role::NMadp => p.down.rate_bps,
                Role::CMadp => p.up.rate_bps,
            };
            let measured = cfg.measured_rates && role == Role::NMadp;
            DeliveryConfig {
                id: p.id,
                adaptation: cfg.adaptation,
                local,
                remote,
                client_addr: Some(c.ip()),
                mtu: p.mtu,
                trailer_tx: cfg.trailer,
                trailer_rx: cfg.trailer,
                priority: p.priority,
                weight: p.weight,
                rate_bps: (rate > 0 && !measured).then_some(rate),
                concatenation: cfg.concatenation,
                udp_checksum: cfg.udp_checksum,
                shaper: (cfg.shape_percent > 0 && rate > 0).then(|| Shaper {
                    rate_bps: if measured {
                        CapacityConfig::default().initial_bps
                    } else {
                        rate * u64::from(cfg.shape_percent) / 100
                    },
                    queue_ns: cfg.shape_queue_ns,
                }),
            }
        })
        .collect();
    ClientConfig {
        id: ClientId(7),
        anchor_addr: addr.anchor,
        anchors: vec![AnchorConnection { connection_id: 1 }],
        traffic_classes: cfg.traffic_classes.clone(),
        steering: cfg.steering,
        convergence: cfg.convergence,
        deliveries,
    }
}

impl TwoPathSim {
    /// Builds both engines and links. Panics on an invalid scenario configuration (a test bug).
    pub fn new(cfg: SimConfig) -> Self {
        let addr = Addresses::new(cfg.ipv6);
        let client = ClientId(7);
        let (nmadp, n_sup) = Self::node(&cfg, &addr, Role::NMadp, 0);
        let (cmadp, c_sup) = Self::node(&cfg, &addr, Role::CMadp, 0);
        let paths = cfg
            .paths
            .iter()
            .map(|p| SimPath {
                spec: *p,
                down: EmulatedLink::with_capacity(p.down, 4096),
                up: EmulatedLink::with_capacity(p.up, 4096),
            })
            .collect();
        let sources = cfg
            .flows
            .iter()
            .map(|f| {
                let mean = match f.size {
                    SizeSpec::Fixed(n) => n,
                    SizeSpec::Range(lo, hi) => (lo + hi) / 2,
                };
                Source {
                    spec: *f,
                    next_at: f.start_ns,
                    counter: 0,
                    interval_ns: (mean as u64 * 8 * 1_000_000_000)
                        .checked_div(f.rate_bps)
                        .unwrap_or(u64::MAX)
                        .max(1),
                }
            })
            .collect();
        let sinks = cfg
            .flows
            .iter()
            .map(|f| {
                (
                    f.dir,
                    FlowReport {
                        id: f.id,
                        ..FlowReport::default()
                    },
                )
            })
            .collect();
        let mut events = cfg.events.clone();
        events.sort_by_key(|e| core::cmp::Reverse(e.at()));
        TwoPathSim {
            addr,
            clock: VirtualClock::new(0),
            pool: HeapPool::new(usize::MAX, 1024, 128, 2048 + 128),
            nmadp,
            cmadp,
            client,
            n_sup,
            c_sup,
            actions: Vec::new(),
            n_sent: Vec::new(),
            restarts: (0, 0),
            paths,
            sources,
            events,
            sinks,
            out: Vec::with_capacity(256),
            burst_down: Vec::with_capacity(64),
            burst_up: Vec::with_capacity(64),
            max_depth: 0,
            max_reasm: 0,
            cfg,
        }
    }

    /// One side as it starts at `now`: its engine with the client, and its slow path.
    fn node(
        cfg: &SimConfig,
        addr: &Addresses,
        role: Role,
        now: Instant,
    ) -> (Engine<HeapBuf>, Supervisor) {
        let mut engine = Engine::new(EngineConfig {
            role,
            control: addr.control,
            reorder: cfg.reorder,
            reorder_timeout: cfg.reorder_timeout,
            reassembly: cfg.reassembly,
            max_rx_flows_per_client: 16,
            seed: cfg.seed,
            ..EngineConfig::new(role, addr.control)
        });
        let client = client_config(cfg, addr, role);
        let id = client.id;
        let mut sup = Supervisor::new(SupervisorConfig {
            silence_ns: match role {
                Role::CMadp => cfg.cmadp_detection_ns,
                Role::NMadp => 0,
            },
            ..SupervisorConfig::new(role, cfg.monitor, cfg.keepalive_ns)
        });
        if cfg.slow_path {
            sup.add_client(id, &client.deliveries, now);
        }
        engine.add_client(client).expect("valid client");
        if !cfg.slow_path {
            // Without a slow path every path is usable, with its link's one-way delay.
            for p in &cfg.paths {
                let link = match role {
                    Role::NMadp => p.down,
                    Role::CMadp => p.up,
                };
                engine.set_path_usable(id, p.id, true);
                engine.set_path_estimates(id, p.id, link.delay_ns, None);
            }
        }
        (engine, sup)
    }

    /// Builds the SDU of packet `counter` of a flow: IP + UDP/TCP with valid checksums, payload
    /// `flow id (2) | counter (8) | pattern`.
    pub fn make_sdu(
        pool: &mut HeapPool,
        spec: &FlowSpec,
        counter: u64,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> HeapBuf {
        let len = match spec.size {
            SizeSpec::Fixed(n) => n,
            SizeSpec::Range(lo, hi) => lo + (counter as usize * 7919) % (hi - lo + 1),
        };
        let ip_len = if src.is_ipv4() { 20 } else { 40 };
        let l4_len = if spec.protocol == PROTOCOL_TCP { 20 } else { 8 };
        let len = len.max(ip_len + l4_len + 10);
        let mut b = pool.alloc().unwrap_or_default();
        let payload_len = len - ip_len - l4_len;
        let Some(p) = b.append(payload_len) else {
            return b;
        };
        p[..2].copy_from_slice(&spec.id.to_be_bytes());
        p[2..10].copy_from_slice(&counter.to_be_bytes());
        for (i, x) in p[10..].iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(31).wrapping_add(counter as u8);
        }
        // Transport header.
        let seg_len = l4_len + payload_len;
        let Some(h) = b.prepend(l4_len) else { return b };
        h.fill(0);
        h[0..2].copy_from_slice(&src.port().to_be_bytes());
        h[2..4].copy_from_slice(&dst.port().to_be_bytes());
        let ck_at = if spec.protocol == PROTOCOL_TCP {
            h[12] = 5 << 4;
            h[13] = 0x18;
            16
        } else {
            h[4..6].copy_from_slice(&(seg_len as u16).to_be_bytes());
            6
        };
        let ph = pseudo(src.ip(), dst.ip(), spec.protocol, seg_len as u32);
        let mut c = !checksum::fold(checksum::add(ph, checksum::sum(b.data())));
        if c == 0 && spec.protocol == PROTOCOL_UDP {
            c = 0xFFFF;
        }
        b.data_mut()[ck_at..ck_at + 2].copy_from_slice(&c.to_be_bytes());
        let _ = crate::engine::adapt::push_ip(
            &mut b,
            src.ip(),
            dst.ip(),
            spec.protocol,
            counter as u16,
        );
        if let Some(x) = b.data_mut().get_mut(1) {
            if src.is_ipv4() {
                *x = spec.dscp << 2;
            }
        }
        if src.is_ipv4() {
            ipv4::Packet::new_unchecked(b.data_mut()).fill_checksum();
        }
        b
    }

    fn flow_endpoints(&self, f: &FlowSpec) -> (SocketAddr, SocketAddr) {
        let client = SocketAddr::new(self.addr.anchor, 5000 + f.id);
        let server = SocketAddr::new(self.addr.server, 6000 + f.id);
        match f.dir {
            FlowDir::Down => (server, client),
            FlowDir::Up => (client, server),
        }
    }

    /// Runs until the sources stop and the network drains; returns the report.
    pub fn run(&mut self) -> SimReport {
        let end = self.cfg.duration_ns + self.cfg.drain_ns;
        loop {
            let now = self.clock.now();
            self.step(now);
            let next = self.next_time();
            match next {
                Some(t) if t <= end => {
                    self.clock.advance_to(t.max(now + 1).min(end.max(now + 1)));
                }
                _ => break,
            }
        }
        self.report()
    }

    fn next_time(&self) -> Option<Instant> {
        let src = self
            .sources
            .iter()
            .filter(|s| self.active(s))
            .map(|s| self.quantize(s.next_at))
            .min();
        let links = self
            .paths
            .iter()
            .flat_map(|p| [p.down.next_arrival(), p.up.next_arrival()]);
        let supervisors = [self.n_sup.next_deadline(), self.c_sup.next_deadline()]
            .into_iter()
            .map(|d| d.filter(|_| self.cfg.slow_path));
        next_event(
            [
                src,
                self.events.last().map(|e| e.at()),
                self.nmadp.next_deadline(),
                self.cmadp.next_deadline(),
            ]
            .into_iter()
            .chain(links)
            .chain(supervisors),
        )
    }

    fn quantize(&self, t: Instant) -> Instant {
        if self.cfg.tick_ns == 0 {
            t
        } else {
            t.div_ceil(self.cfg.tick_ns) * self.cfg.tick_ns
        }
    }

    fn active(&self, s: &Source) -> bool {
        s.next_at < self.cfg.duration_ns && s.spec.count.is_none_or(|c| s.counter < c)
    }

    fn step(&mut self, now: Instant) {
        // Scheduled events.
        while self.events.last().is_some_and(|e| e.at() <= now) {
            let Some(e) = self.events.pop() else { break };
            match e {
                Event::Link { path, up, .. } => {
                    if let Some(p) = self.paths.get_mut(path) {
                        p.down.set_up(up, now);
                        p.up.set_up(up, now);
                    }
                }
                Event::LinkConfig { path, dir, cfg, .. } => {
                    if let Some(p) = self.paths.get_mut(path) {
                        match dir {
                            FlowDir::Down => p.down.set_config(cfg, now),
                            FlowDir::Up => p.up.set_config(cfg, now),
                        }
                    }
                }
                Event::Steering { mode, .. } => {
                    self.nmadp.set_steering(self.client, None, mode);
                    self.cmadp.set_steering(self.client, None, mode);
                }
                Event::PathUsable { path, usable, .. } => {
                    if let Some(p) = self.paths.get(path) {
                        self.nmadp.set_path_usable(self.client, p.spec.id, usable);
                        self.cmadp.set_path_usable(self.client, p.spec.id, usable);
                    }
                }
                Event::Restart { nmadp, .. } => {
                    let role = if nmadp { Role::NMadp } else { Role::CMadp };
                    let (engine, sup) = Self::node(&self.cfg, &self.addr, role, now);
                    if nmadp {
                        self.restarts.0 += 1;
                        self.nmadp = engine;
                        self.n_sup = sup;
                    } else {
                        self.restarts.1 += 1;
                        self.cmadp = engine;
                        self.c_sup = sup;
                    }
                }
            }
        }
        // Link arrivals.
        for i in 0..self.paths.len() {
            while let Some(pkt) = self.paths[i].down.poll(now) {
                self.cmadp
                    .from_delivery(pkt, now, &mut self.pool, &mut self.out);
                self.route(false, now);
            }
            while let Some(pkt) = self.paths[i].up.poll(now) {
                self.nmadp
                    .from_delivery(pkt, now, &mut self.pool, &mut self.out);
                self.route(true, now);
            }
        }
        // Timers.
        self.nmadp.poll(now, &mut self.pool, &mut self.out);
        self.route(true, now);
        self.cmadp.poll(now, &mut self.pool, &mut self.out);
        self.route(false, now);
        // Slow path.
        if self.cfg.slow_path {
            self.slow_path(now);
        }
        // Sources.
        self.sources_due(now);
        self.max_depth = self
            .max_depth
            .max(self.nmadp.reorder_depth())
            .max(self.cmadp.reorder_depth());
        self.max_reasm = self
            .max_reasm
            .max(self.nmadp.reassembly_bytes())
            .max(self.cmadp.reassembly_bytes());
    }

    fn sources_due(&mut self, now: Instant) {
        loop {
            let mut any = false;
            for i in 0..self.sources.len() {
                let s = &self.sources[i];
                if !self.active(s) || self.quantize(s.next_at) > now {
                    continue;
                }
                let spec = s.spec;
                let counter = s.counter;
                let (src, dst) = self.flow_endpoints(&spec);
                let pkt = Self::make_sdu(&mut self.pool, &spec, counter, src, dst);
                let s = &mut self.sources[i];
                s.counter += 1;
                s.next_at += s.interval_ns;
                if let Some((_, f)) = self.sinks.get_mut(i) {
                    f.sent += 1;
                }
                match spec.dir {
                    FlowDir::Down => self.burst_down.push(pkt),
                    FlowDir::Up => self.burst_up.push(pkt),
                }
                any = true;
                if self.burst_down.len() >= self.cfg.burst {
                    self.flush_down(now);
                }
                if self.burst_up.len() >= self.cfg.burst {
                    self.flush_up(now);
                }
            }
            if !any {
                break;
            }
        }
        self.flush_down(now);
        self.flush_up(now);
    }

    fn flush_down(&mut self, now: Instant) {
        if !self.burst_down.is_empty() {
            self.nmadp
                .from_anchor_burst(&mut self.burst_down, now, &mut self.pool, &mut self.out);
            self.route(true, now);
        }
    }

    fn flush_up(&mut self, now: Instant) {
        if !self.burst_up.is_empty() {
            self.cmadp
                .from_anchor_burst(&mut self.burst_up, now, &mut self.pool, &mut self.out);
            self.route(false, now);
        }
    }

    /// Hands the outputs of one engine (`from_n`: the N-MADP) to links, sinks or the slow path.
    fn route(&mut self, from_n: bool, now: Instant) {
        let mut out = core::mem::take(&mut self.out);
        for o in out.drain(..) {
            match o {
                Output::Delivery { path, pkt, .. } => {
                    match self.paths.iter_mut().find(|p| p.spec.id == path) {
                        Some(p) => {
                            let link = if from_n { &mut p.down } else { &mut p.up };
                            link.send(pkt, now);
                        }
                        None => self.pool.free(pkt),
                    }
                }
                Output::Anchor(pkt) => {
                    let dir = if from_n { FlowDir::Up } else { FlowDir::Down };
                    self.sink(dir, pkt, now);
                }
                Output::Control {
                    client,
                    path,
                    peer,
                    pdu,
                } => self.on_control(
                    from_n,
                    ControlInput {
                        at: now,
                        client,
                        path,
                        peer,
                        pdu,
                    },
                ),
            }
        }
        self.out = out;
    }

    fn sink(&mut self, dir: FlowDir, pkt: HeapBuf, now: Instant) {
        let parsed = parse_sdu(pkt.data());
        let len = pkt.len();
        self.pool.free(pkt);
        let Some((flow, counter, ok)) = parsed else {
            if let Some((_, f)) = self.sinks.iter_mut().find(|(d, _)| *d == dir) {
                f.malformed += 1;
            }
            return;
        };
        if let Some((_, f)) = self
            .sinks
            .iter_mut()
            .find(|(d, f)| *d == dir && f.id == flow)
        {
            if !ok {
                f.checksum_errors += 1;
            }
            f.record(counter, len, now);
        }
    }

    fn on_control(&mut self, at_n: bool, ev: ControlInput) {
        if !self.cfg.slow_path {
            return;
        }
        let mut actions = core::mem::take(&mut self.actions);
        if at_n {
            self.n_sup.on_control(&ev, &mut actions);
        } else {
            self.c_sup.on_control(&ev, &mut actions);
        }
        self.apply_actions(at_n, &mut actions, ev.at);
        self.actions = actions;
    }

    /// Applies one supervisor's actions (`at_n`: the N-MADP's) to its engine.
    fn apply_actions(&mut self, at_n: bool, actions: &mut Vec<Action>, now: Instant) {
        for a in actions.drain(..) {
            let engine = if at_n {
                &mut self.nmadp
            } else {
                &mut self.cmadp
            };
            match a {
                Action::SendControl { client, path, pdu } => {
                    let Some(b) = engine.build_control(client, path, &pdu, &mut self.pool) else {
                        continue;
                    };
                    match self.paths.iter_mut().find(|p| p.spec.id == path) {
                        Some(p) if at_n => {
                            p.down.send(b, now);
                        }
                        Some(p) => {
                            p.up.send(b, now);
                        }
                        None => self.pool.free(b),
                    }
                }
                Action::SetUsable {
                    client,
                    path,
                    usable,
                } => {
                    engine.set_path_usable(client, path, usable);
                }
                Action::SetEstimates {
                    client,
                    path,
                    owd_ns,
                } => {
                    engine.set_path_estimates(client, path, owd_ns, None);
                    if at_n {
                        // AMBIGUITY: the C-MADP cannot measure (only the N-MADP probes,
                        // draft-04 §5.2); the harness mirrors the N-MADP's estimate, as an NCM
                        // would signal it.
                        self.cmadp.set_path_estimates(client, path, owd_ns, None);
                    }
                }
                Action::UpdateDelivery { client, d } | Action::RemoteLearnt { client, d } => {
                    let _ = engine.update_delivery(client, d);
                }
                Action::SetRate {
                    client,
                    path,
                    rate_bps,
                } => {
                    engine.set_path_rate(client, path, rate_bps);
                }
                Action::ResetRxFlows { client } => {
                    let mut out = core::mem::take(&mut self.out);
                    engine.reset_rx_flows(client, &mut out);
                    self.out = out;
                    self.route(at_n, now);
                }
            }
        }
    }

    fn slow_path(&mut self, now: Instant) {
        self.n_sent.resize(self.paths.len(), (0, 0));
        for i in 0..self.paths.len() {
            let id = self.paths[i].spec.id;
            // What the N-MADP sent on the path, every 50 ms or more (the runtime reads it from
            // the 100-ms snapshots).
            let (at, bytes) = self.n_sent[i];
            if now.saturating_sub(at) >= 50 * MS {
                let tx = self
                    .nmadp
                    .path_counters(self.client, id)
                    .map_or(0, |c| c.tx_bytes);
                if at > 0 {
                    let bps = u128::from(tx.saturating_sub(bytes)) * 8 * 1_000_000_000
                        / u128::from(now - at);
                    self.n_sup.on_sent_rate(
                        self.client,
                        id,
                        u64::try_from(bps).unwrap_or(u64::MAX),
                    );
                }
                self.n_sent[i] = (now, tx);
            }
            for at_n in [true, false] {
                let (engine, sup) = if at_n {
                    (&self.nmadp, &mut self.n_sup)
                } else {
                    (&self.cmadp, &mut self.c_sup)
                };
                if let Some(last) = engine.path_last_rx(self.client, id).filter(|&l| l > 0) {
                    let remote = engine.path_remote(self.client, id).is_some();
                    sup.on_data(self.client, id, last, remote);
                }
            }
        }
        let mut actions = core::mem::take(&mut self.actions);
        self.n_sup.poll(now, &mut actions);
        self.apply_actions(true, &mut actions, now);
        self.c_sup.poll(now, &mut actions);
        self.apply_actions(false, &mut actions, now);
        self.actions = actions;
    }

    /// The report so far.
    pub fn report(&self) -> SimReport {
        let secs = self.cfg.duration_ns.max(1) as f64 / 1e9;
        let paths = self
            .paths
            .iter()
            .map(|p| {
                let n = self
                    .nmadp
                    .path_counters(self.client, p.spec.id)
                    .unwrap_or_default();
                let c = self
                    .cmadp
                    .path_counters(self.client, p.spec.id)
                    .unwrap_or_default();
                PathReport {
                    name: p.spec.name,
                    down: *p.down.stats(),
                    up: *p.up.stats(),
                    nmadp: n,
                    cmadp: c,
                    down_rate_bps: n.tx_bytes as f64 * 8.0 / secs,
                    up_rate_bps: c.tx_bytes as f64 * 8.0 / secs,
                }
            })
            .collect();
        SimReport {
            flows: self.sinks.clone(),
            paths,
            nmadp: self.nmadp.counters().clone(),
            cmadp: self.cmadp.counters().clone(),
            nmadp_client: self.nmadp.client_counters(self.client).unwrap_or_default(),
            cmadp_client: self.cmadp.client_counters(self.client).unwrap_or_default(),
            end_ns: self.clock.now(),
            max_reorder_depth: self.max_depth,
            max_reassembly_bytes: self.max_reasm,
            n_supervision: *self.n_sup.counters(),
            c_supervision: *self.c_sup.counters(),
        }
    }
}

fn pseudo(src: IpAddr, dst: IpAddr, protocol: u8, len: u32) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::pseudo_header_v4(s, d, protocol, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => checksum::pseudo_header_v6(s, d, protocol, len),
        _ => 0,
    }
}

/// Reads `(flow id, counter, checksums ok)` from a delivered SDU.
pub fn parse_sdu(data: &[u8]) -> Option<(u16, u64, bool)> {
    let ip = IpPacket::new_checked(data).ok()?;
    if ip.total_len() != data.len() {
        return None;
    }
    let mut ok = match &ip {
        IpPacket::V4(p) => p.verify_checksum(),
        IpPacket::V6(_) => true,
    };
    let upper = ip.upper_layer().ok()?;
    let seg = data.get(upper.offset..)?;
    let l4 = match upper.protocol {
        PROTOCOL_UDP => {
            let u = udp::Packet::new_checked(seg).ok()?;
            ok &= u.verify_checksum(&ip.src_addr(), &ip.dst_addr());
            udp::HEADER_LEN
        }
        PROTOCOL_TCP => {
            let ph = pseudo(ip.src_addr(), ip.dst_addr(), PROTOCOL_TCP, seg.len() as u32);
            ok &= checksum::fold(checksum::add(ph, checksum::sum(seg))) == 0xFFFF;
            20
        }
        _ => return None,
    };
    let p = seg.get(l4..l4 + 10)?;
    let flow = u16::from_be_bytes([p[0], p[1]]);
    let counter = u64::from_be_bytes([p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]]);
    let _ = ipv6::HEADER_LEN;
    Some((flow, counter, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_sdu_parses_back_with_valid_checksums() {
        let mut pool = HeapPool::default();
        for v6 in [false, true] {
            let a = Addresses::new(v6);
            for proto in [PROTOCOL_UDP, PROTOCOL_TCP] {
                let spec = FlowSpec {
                    protocol: proto,
                    ..FlowSpec::udp(3, FlowDir::Down, 1_000_000, 300)
                };
                let b = TwoPathSim::make_sdu(
                    &mut pool,
                    &spec,
                    77,
                    SocketAddr::new(a.server, 1),
                    SocketAddr::new(a.anchor, 2),
                );
                assert_eq!(b.len(), 300);
                assert_eq!(parse_sdu(b.data()), Some((3, 77, true)));
            }
        }
    }
}

//! N-MADP / C-MADP configuration: a TOML file, checked completely before anything starts.
//!
//! ```text
//! [node]      role, workers, cores, admin socket
//! [ports.anchor] / [ports.delivery]   where packets enter and leave (ring, af-packet, tun, ...)
//! [control]   the N-MADP's MX control endpoint (draft-04 §5, WIRE.md: UDP 8888 by default)
//! [defaults]  convergence, steering, adaptation, MTU, trailer fields, reorder/reassembly/probe bounds
//! [[client]]  one per client, found by its anchor address; inside it
//!   [[client.anchor]]         anchor connections (draft-04 §4.2.1 Connection ID)
//!   [[client.traffic_class]]  classification rules (DSCP, protocol, remote CIDR, ports)
//!   [[client.delivery]]       delivery connections (ID, endpoints, adaptation, MTU, trailer, ...)
//! ```
//!
//! See `deploy/examples/nmadp.toml` for every key with a comment. Loading never half-succeeds:
//! [`Config::parse`] returns a fully validated [`Config`] (addresses parsed, defaults resolved,
//! trailer field lists turned into flag masks) or a [`ConfigError`] whose every line reads
//! `FILE:LINE:COLUMN: field `client[1].delivery[0].mtu`: message`.

mod error;
mod file;
mod validate;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path as FsPath, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::{ConfigError, Diagnostic};

/// Which end of the MAMS user plane this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Network-side Multi-Access Data Proxy: serves many clients.
    #[serde(rename = "n-madp")]
    NMadp,
    /// Client-side Multi-Access Data Proxy: exactly one client, itself.
    #[serde(rename = "c-madp")]
    CMadp,
}

/// How packets enter and leave one side of the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PortKind {
    /// In-memory ring (tests, simulation, the traffic generator).
    #[serde(rename = "ring")]
    Ring,
    /// Linux AF_PACKET socket on an interface.
    #[serde(rename = "af-packet")]
    AfPacket,
    /// Linux AF_XDP socket on an interface.
    #[serde(rename = "af-xdp")]
    AfXdp,
    /// TUN device (anchor side, usually of a C-MADP).
    #[serde(rename = "tun")]
    Tun,
    /// Kernel UDP sockets, one per delivery connection (delivery side only).
    #[serde(rename = "udp")]
    Udp,
    /// DPDK ethdev (build feature `dpdk`).
    #[serde(rename = "dpdk")]
    Dpdk,
}

/// A validated port: the kind with its kind-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    Ring {
        name: String,
        capacity: u32,
    },
    AfPacket {
        iface: String,
        queues: u16,
        /// Destination MAC of every frame sent (the next hop: a router, the peer of a
        /// point-to-point link). File key `gateway_mac` ("aa:bb:cc:dd:ee:ff"); `None`: the
        /// broadcast address (a peer then has to accept broadcast-addressed unicast IP).
        gateway_mac: Option<[u8; 6]>,
    },
    AfXdp {
        iface: String,
        queues: u16,
        /// As for `AfPacket`.
        gateway_mac: Option<[u8; 6]>,
    },
    Tun {
        iface: String,
        mtu: u16,
    },
    Udp {
        iface: Option<String>,
    },
    Dpdk {
        /// Ethdev to open: a vdev spec (`net_ring0`, `net_af_packet0,iface=veth1`,
        /// `net_af_xdp0,iface=veth1,start_queue=0,queue_count=1`) or a PCI address. File key
        /// `device` (or `pci`).
        device: String,
        queues: u16,
        rx_desc: u16,
        tx_desc: u16,
        /// As for `AfPacket`.
        gateway_mac: Option<[u8; 6]>,
    },
}

impl Port {
    pub fn kind(&self) -> PortKind {
        match self {
            Port::Ring { .. } => PortKind::Ring,
            Port::AfPacket { .. } => PortKind::AfPacket,
            Port::AfXdp { .. } => PortKind::AfXdp,
            Port::Tun { .. } => PortKind::Tun,
            Port::Udp { .. } => PortKind::Udp,
            Port::Dpdk { .. } => PortKind::Dpdk,
        }
    }
}

/// MX convergence sublayer (draft-04 §4.2 trailer-based, §4.4 GRE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Convergence {
    #[serde(rename = "trailer")]
    Trailer,
    #[serde(rename = "gre")]
    Gre,
}

/// How downlink (N-MADP) or uplink (C-MADP) traffic is spread over delivery connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SteeringMode {
    /// Split packets in proportion to each delivery connection's `weight`.
    #[serde(rename = "weighted")]
    Weighted,
    /// Everything on the best-`priority` delivery connection; no failover.
    #[serde(rename = "single")]
    Single,
    /// Best-`priority` live connection; on failure, the next (lossless switching, draft-04 §1).
    #[serde(rename = "active-standby")]
    ActiveStandby,
    /// Per packet, the connection with the least expected delay (probe OWD, `rate_mbps`).
    #[serde(rename = "delay-aware")]
    DelayAware,
    /// Every packet on every live connection; the receiver drops duplicates by SN.
    #[serde(rename = "duplicate")]
    Duplicate,
    /// One connection per flow (5-tuple hash, weighted); no reordering needed.
    #[serde(rename = "per-flow")]
    PerFlow,
}

impl SteeringMode {
    /// Modes that send one flow over several connections and so need the receiver to reorder
    /// or drop duplicates by sequence number.
    pub fn needs_sequence_numbers(self) -> bool {
        matches!(
            self,
            SteeringMode::Weighted | SteeringMode::DelayAware | SteeringMode::Duplicate
        )
    }

    /// Modes that pick connections by `priority`.
    pub fn uses_priority(self) -> bool {
        matches!(self, SteeringMode::Single | SteeringMode::ActiveStandby)
    }
}

/// MX adaptation sublayer (draft-04 §4.3). `ipsec` and `dtls` are recognised in the file and
/// rejected as not supported by this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Adaptation {
    /// UDP tunnel; the PDU's IP protocol becomes 114 and the trailer carries Next Header.
    Udp,
    /// UDP tunnel with "MX header optimization": inner IP header unchanged (WIRE.md).
    UdpOptimized,
    /// Client NAT: the anchor address is translated to the client's delivery address.
    ClientNat,
    /// Pass-through: the PDU is sent as it is.
    PassThrough,
}

impl Adaptation {
    /// Whether the adaptation runs over UDP (endpoints are `ip:port`).
    pub fn is_udp(self) -> bool {
        matches!(self, Adaptation::Udp | Adaptation::UdpOptimized)
    }
}

/// A trailer field name as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrailerField {
    #[serde(rename = "nh")]
    Nh,
    #[serde(rename = "cid")]
    Cid,
    #[serde(rename = "tc")]
    Tc,
    #[serde(rename = "sn")]
    Sn,
    #[serde(rename = "fsl")]
    Fsl,
    #[serde(rename = "fc")]
    Fc,
}

impl TrailerField {
    pub const ALL: [TrailerField; 6] = [
        TrailerField::Nh,
        TrailerField::Cid,
        TrailerField::Tc,
        TrailerField::Sn,
        TrailerField::Fsl,
        TrailerField::Fc,
    ];

    /// The MX flags bit of the field (WIRE.md "MX flags").
    pub fn flag(self) -> u8 {
        match self {
            TrailerField::Nh => TrailerFields::NH,
            TrailerField::Cid => TrailerFields::CID,
            TrailerField::Tc => TrailerFields::TC,
            TrailerField::Sn => TrailerFields::SN,
            TrailerField::Fsl => TrailerFields::FSL,
            TrailerField::Fc => TrailerFields::FC,
        }
    }
}

/// The trailer fields a delivery connection carries in one direction, as the MX flags octet
/// (WIRE.md: 0x80 NH, 0x40 CID, 0x20 TC, 0x10 SN, 0x08 FSL, 0x04 FC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TrailerFields(pub u8);

impl TrailerFields {
    pub const NH: u8 = 0x80;
    pub const CID: u8 = 0x40;
    pub const TC: u8 = 0x20;
    pub const SN: u8 = 0x10;
    pub const FSL: u8 = 0x08;
    pub const FC: u8 = 0x04;

    pub fn contains(self, field: TrailerField) -> bool {
        self.0 & field.flag() != 0
    }

    /// The fields in flag order (the order `to_toml` writes them).
    pub fn fields(self) -> Vec<TrailerField> {
        TrailerField::ALL
            .into_iter()
            .filter(|f| self.contains(*f))
            .collect()
    }
}

/// Trailer fields per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrailerConfig {
    pub downlink: TrailerFields,
    pub uplink: TrailerFields,
}

/// Reorder timeout (WIRE.md "Defaults": adaptive = clamp(2 × (max OWD − min OWD), min, max)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReorderTimeout {
    Adaptive,
    FixedMs(u32),
}

/// Per-flow reorder buffer bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reorder {
    /// Packets held per flow, 1..=32767 (half the 16-bit SN space, WIRE.md).
    pub window: u16,
    pub timeout: ReorderTimeout,
    /// Bounds of the adaptive timeout.
    pub timeout_min_ms: u32,
    pub timeout_max_ms: u32,
    /// Release a packet that arrives after its SN was given up on (out of order) instead of
    /// dropping it (default true: TCP takes it, and would otherwise retransmit it).
    pub deliver_late: bool,
    /// Consecutive packets from far behind the release point after which a flow follows a
    /// restarted sender, 0..=4096 (0 never; default 16).
    pub resync_after: u16,
    /// Give up on a missing SN as soon as every live path has delivered past it (paths deliver
    /// in order; default true). Off for access links that reorder within themselves.
    pub path_horizon: bool,
}

/// Reassembly bounds (draft-04 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reassembly {
    /// SDUs under reassembly at once, per client.
    pub slots: u16,
    pub timeout_ms: u32,
    /// Largest SDU accepted after reassembly.
    pub max_sdu_bytes: u16,
}

/// Path monitoring (draft-04 §5: keep-alive, probe REQ/ACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Probe {
    pub interval_ms: u32,
    pub keepalive_ms: u32,
    /// A path is dead after this many unanswered probes.
    pub dead_after: u8,
    /// A probe REQ not acknowledged within this time is lost (file key `timeout_ms`; default
    /// `max(2 × interval_ms, 1000)`, capped below 32 probe intervals, the monitor's memory).
    /// Independent of the interval so that a short interval works on a long-RTT path.
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub role: Role,
    pub name: Option<String>,
    pub admin_socket: PathBuf,
    pub workers: u16,
    /// CPU ids the workers are pinned to (one per worker), or empty: not pinned.
    pub cores: Vec<u32>,
    pub slow_path_core: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    pub anchor: Port,
    pub delivery: Port,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// N-MADP: where it receives MX control PDUs. C-MADP: where it sends them.
    pub address: SocketAddr,
}

/// Global defaults, already applied to every client and delivery connection below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub convergence: Convergence,
    pub steering: SteeringMode,
    pub adaptation: Adaptation,
    pub mtu: u16,
    pub trailer: TrailerConfig,
    pub reorder: Reorder,
    pub reassembly: Reassembly,
    pub probe: Probe,
    /// Weighted and delay-aware steering hold each path back by how much faster it is than
    /// the slowest (one-way delays from the path monitor), so that every packet sees one delay
    /// (default true; see `pipelines::engine::EngineConfig::delay_compensation`).
    pub delay_compensation: bool,
    /// PDUs the delay-compensation line holds per worker at most, 0..=1048576 (default 65536);
    /// past it a PDU is sent at once and counted (`delay_overflow`).
    pub max_delayed: u32,
}

/// An anchor connection (draft-04 §4.2.1 Connection ID; §4.4 GRE key low 16 bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorConnection {
    /// 0..=255 with the trailer; 0..=65534 with GRE (0xFFFF means "none").
    pub connection_id: u16,
    pub name: Option<String>,
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

/// An address prefix (host bits are rejected at load time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    pub fn contains(self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// A traffic-class rule. Rules apply in both directions: `remote` is the far end of the
/// client's flow (downlink source, uplink destination), `client_port` the client's own port.
/// An absent key matches anything; a packet takes the first rule (file order) that matches;
/// unmatched packets get traffic class 0 on the client's first anchor connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Match {
    /// DSCP values (0..=63); empty: any.
    pub dscp: Vec<u8>,
    /// IP protocol number.
    pub protocol: Option<u8>,
    pub remote: Option<Cidr>,
    pub remote_port: Option<PortRange>,
    pub client_port: Option<PortRange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficClass {
    /// Traffic Class ID carried in the trailer (draft-04 §4.2.1).
    pub id: u8,
    /// Connection ID of the anchor connection the class belongs to.
    pub anchor: u16,
    pub rule: Match,
    pub steering: SteeringMode,
    /// Delivery connection ids this class may use; `None`: all.
    pub deliveries: Option<Vec<u8>>,
}

/// An endpoint of a delivery connection: `ip:port` for UDP adaptations, a bare IP otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Udp(SocketAddr),
    Ip(IpAddr),
}

impl Endpoint {
    pub fn ip(self) -> IpAddr {
        match self {
            Endpoint::Udp(s) => s.ip(),
            Endpoint::Ip(i) => i,
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Udp(s) => write!(f, "{s}"),
            Endpoint::Ip(i) => write!(f, "{i}"),
        }
    }
}

/// A delivery connection (draft-04 §2: a network path between C-MADP and N-MADP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConnection {
    /// Connection ID of the delivery connection (draft-04 §5 control PDU CID, 1 byte).
    pub id: u8,
    pub name: String,
    /// Interface to bind to (C-MADP: the access interface, e.g. `wlan0`).
    pub iface: Option<String>,
    pub adaptation: Adaptation,
    /// This side's endpoint (`None` on a C-MADP: chosen by the kernel).
    pub local: Option<Endpoint>,
    /// The peer's endpoint (`None` on an N-MADP: learned from the first uplink PDU, which also
    /// follows NAT rebinding).
    pub remote: Option<Endpoint>,
    pub mtu: u16,
    /// Effective trailer fields; NH is already added where the adaptation requires it.
    pub trailer: TrailerConfig,
    /// Lower is preferred (`single`, `active-standby`).
    pub priority: u8,
    /// Share of traffic (`weighted`, `per-flow`), 1..=65535 when set; 0 = unset: in proportion
    /// to the paths' rates when every path has one, else equal shares.
    pub weight: u16,
    /// Expected rate, for `delay-aware`.
    pub rate_mbps: Option<u32>,
    /// Compute the outer UDP checksum of a UDP tunnel over IPv4 (default off: 0 = no
    /// checksum, RFC 768; IPv6 always carries one).
    pub udp_checksum: bool,
    /// Pace what this side sends on the connection a little below `rate_mbps` (`shape = true`).
    pub shape: Option<Shape>,
}

/// A delivery connection's shaper (`shape = true`): PDUs leave at `percent` % of `rate_mbps`
/// (outer IP bytes), the excess waits in the data plane, and a PDU that would wait longer than
/// `queue_ms` is dropped (`shaper_queue_full`). The access link then never queues: the data
/// plane's queue, sized for the delay-compensated round trip of the whole aggregate, takes a
/// sender's overshoot instead of the access links' shallow queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// 1..=100, default 98 (room for the link's own framing).
    pub percent: u8,
    /// 1..=10000, default 400: a BBR sender keeps up to about 3 x the bandwidth-delay product
    /// in flight (its cwnd gain and ACK-aggregation allowance), at a compensated round trip of
    /// 120 ms that is 2 x 120 ms of queue at the bottleneck; less makes it lose every cycle.
    pub queue_ms: u32,
}

impl Shape {
    pub const DEFAULT_PERCENT: u8 = 98;
    pub const DEFAULT_QUEUE_MS: u32 = 400;
}

impl DeliveryConnection {
    /// The rate its shaper is configured to send at (`percent` % of `rate_mbps`), bit/s;
    /// `None` when it is not shaped or has no rate (the N-MADP then measures it).
    pub fn configured_shape_bps(&self) -> Option<u64> {
        let (s, m) = (self.shape?, self.rate_mbps?);
        Some(u64::from(m) * 10_000 * u64::from(s.percent))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub name: String,
    pub anchor_address: IpAddr,
    pub steering: SteeringMode,
    pub convergence: Convergence,
    pub reorder: Reorder,
    pub reassembly: Reassembly,
    pub anchors: Vec<AnchorConnection>,
    pub traffic_classes: Vec<TrafficClass>,
    pub deliveries: Vec<DeliveryConnection>,
}

/// What the host offers, for checks that depend on the machine (`node.cores`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// Online CPU ids; `None`: do not check cores.
    pub online_cpus: Option<Vec<u32>>,
}

impl HostInfo {
    /// No host checks (for tools that only inspect a file).
    pub fn unchecked() -> Self {
        HostInfo { online_cpus: None }
    }

    /// This machine, from `/sys/devices/system/cpu/online` (no check if it cannot be read).
    pub fn detect() -> Self {
        let online_cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()));
        HostInfo { online_cpus }
    }
}

/// Parses a Linux CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 65536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node: Node,
    pub ports: Ports,
    pub control: Control,
    pub defaults: Defaults,
    /// `[dpdk]`, when the file has one.
    pub dpdk: Option<Dpdk>,
    pub clients: Vec<Client>,
}

/// `[dpdk]`: EAL arguments and mbuf pools for ports of kind `dpdk` and `af-xdp` (build
/// feature `dpdk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dpdk {
    /// EAL arguments (without the program name). Empty: `-l 0 --no-pci --no-telemetry
    /// --file-prefix nmadp-<pid>` plus the memory flags of `deploy/dpdk-env.sh`
    /// (`--in-memory --huge-dir /run/nmadp/hugepages` when mounted, else `--no-huge -m 512`).
    pub eal_args: Vec<String>,
    /// Mbufs per mempool (one mempool per NUMA socket of the workers). Default 16383.
    pub mbufs: u32,
    /// Per-lcore mempool cache. Default 256.
    pub mbuf_cache: u32,
}

impl Default for Dpdk {
    fn default() -> Self {
        Dpdk {
            eal_args: Vec::new(),
            mbufs: 16_383,
            mbuf_cache: 256,
        }
    }
}

impl Config {
    /// Reads and validates a file, checking `node.cores` against this machine.
    pub fn load(path: impl AsRef<FsPath>) -> Result<Config, ConfigError> {
        Self::load_with(path, &HostInfo::detect())
    }

    /// Reads and validates a file against the given host.
    pub fn load_with(path: impl AsRef<FsPath>, host: &HostInfo) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            diagnostics: vec![Diagnostic {
                file: name.clone(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!("cannot read: {e}"),
            }],
        })?;
        Self::parse_with(&text, &name, host)
    }

    /// Validates `text`; `file_name` only labels the errors. No host checks.
    pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigError> {
        Self::parse_with(text, file_name, &HostInfo::unchecked())
    }

    /// Validates `text` against the given host.
    pub fn parse_with(text: &str, file_name: &str, host: &HostInfo) -> Result<Config, ConfigError> {
        validate::parse(text, file_name, host)
    }

    /// The configuration as TOML with every default written out; parsing it gives back an
    /// equal `Config` (the admin socket shows the running configuration this way).
    pub fn to_toml(&self) -> String {
        let file = validate::to_file(self);
        toml::to_string(&file).unwrap_or_else(|e| format!("# cannot serialise: {e}\n"))
    }

    /// Validates one `[[client]]` table (the same syntax as in a configuration file) as a new
    /// client of this configuration: same checks, this configuration's defaults and role, and
    /// no name or anchor address already in use. Used by the admin socket's `clients add`.
    pub fn parse_client(&self, text: &str, file_name: &str) -> Result<Client, ConfigError> {
        validate::parse_client(text, file_name, self)
    }

    /// The client whose anchor address is `addr`.
    pub fn client_by_anchor(&self, addr: IpAddr) -> Option<&Client> {
        self.clients.iter().find(|c| c.anchor_address == addr)
    }
}

//! Configuration of the convergence engine: plain Rust values (the runtime maps its TOML onto
//! them and reports file and line itself). [`ClientConfig::validate`] rejects what the engine
//! could not run unambiguously.

use std::net::{IpAddr, SocketAddr};

use crate::flow::reassembly::ReassemblyConfig;
use crate::flow::reorder::ReorderConfig;
use crate::flow::steering::{PathId, SteeringMode, MAX_PATHS};
use crate::wire::mx_trailer::{flags, TrailerFields};

/// Which peer this engine is (draft-04 §3: the N-MADP sits in the network, the C-MADP on the
/// client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Network side: the anchor side is the internet/core, packets for a client are found by
    /// destination = the client's anchor address; owns the control endpoint.
    NMadp,
    /// Client side: the anchor side is the TUN device, packets are found by source = the anchor
    /// address; sends control PDUs to the N-MADP's control endpoint.
    CMadp,
}

/// A client (C-MADP) as the engine knows it. An index chosen by the runtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u32);

/// How the reorder timeout is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReorderTimeout {
    /// Always `ReorderConfig::timeout_ns`.
    Fixed,
    /// `clamp(2 × (max OWD − min OWD of the usable paths), 10 ms, 1 s)` (WIRE.md), starting from
    /// `ReorderConfig::timeout_ns` until estimates are known.
    Adaptive,
}

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// N-MADP or C-MADP.
    pub role: Role,
    /// The N-MADP's control endpoint (its own IP + control port, WIRE.md default 8888), draft-04
    /// §5: "The N-MADP end-point IP address and UDP port number of the UDP connection is used to
    /// identify MX control PDU".
    pub control: SocketAddr,
    /// Window and (initial) timeout of every flow's reorder buffer.
    pub reorder: ReorderConfig,
    /// Fixed or adaptive reorder timeout.
    pub reorder_timeout: ReorderTimeout,
    /// Reassembly slots, timeout and memory cap (one reassembler per engine).
    pub reassembly: ReassemblyConfig,
    /// Receive flows (anchor connection × traffic class) kept per client; a PDU that would open
    /// one more is dropped ([`crate::DropReason::TooManyFlows`]). Bounds reorder memory.
    pub max_rx_flows_per_client: usize,
    /// Seed of the flow hash (per-flow steering).
    pub seed: u64,
    /// Delay compensation in weighted steering: per-packet weighted splitting over paths of
    /// different one-way delays makes the receiver hold the fast path's packets for the slow
    /// path's, so most packets see the slow path's delay and the few that do not see the fast
    /// one's. A TCP sender then measures a minimum RTT far below its usual RTT (BBR sizes its
    /// window from that minimum and collapses). With compensation, each path is held back by
    /// how much faster it is than the slowest (one-way delays from the path monitor): PDUs
    /// before sending, received packets before release, so every packet sees one delay.
    /// Delay-aware steering is compensated the same way (its earliest-delivery model put a
    /// flow that fits on the fastest path there alone: the same minimum-RTT trap, one BBR flow
    /// stayed near that path's rate) and models each path with its delay plus its hold.
    pub delay_compensation: bool,
    /// Most PDUs the delay-compensation line holds (engine-wide); past it a PDU is sent at
    /// once and counted in `delay_overflow`.
    pub max_delayed: usize,
    /// How much of a shaper's schedule a late poll may send at once to catch up (a burst of at
    /// most this long at the path's rate); the rest keeps its pace.
    pub shaper_catch_up_ns: u64,
}

impl EngineConfig {
    /// Defaults for `role` with the control endpoint `control`.
    pub fn new(role: Role, control: SocketAddr) -> Self {
        EngineConfig {
            role,
            control,
            reorder: ReorderConfig::default(),
            reorder_timeout: ReorderTimeout::Adaptive,
            reassembly: ReassemblyConfig::default(),
            max_rx_flows_per_client: 16,
            seed: 0,
            delay_compensation: true,
            max_delayed: 65_536,
            shaper_catch_up_ns: 2 * crate::flow::MS,
        }
    }
}

/// An anchor connection of a client (draft-04 §4.2.1, Connection ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnchorConnection {
    /// Its ID (8 bits in the MX trailer, 16 bits in the GRE key).
    pub connection_id: u16,
}

/// One traffic-class rule: packets matching every given criterion belong to traffic class `id`
/// of anchor connection `anchor`. Rules are tried in order; the first match wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TcRule {
    /// Traffic Class ID (draft-04 §4.2.1).
    pub id: u8,
    /// Anchor connection ID the class belongs to.
    pub anchor: u16,
    /// DSCP values that match (empty: any).
    pub dscp: Vec<u8>,
    /// IP protocol (None: any).
    pub protocol: Option<u8>,
    /// Remote (internet-side) address prefix (None: any).
    pub remote: Option<(IpAddr, u8)>,
    /// Remote port range, inclusive (None: any). Packets without ports never match a range.
    pub remote_ports: Option<(u16, u16)>,
    /// Client port range, inclusive (None: any).
    pub client_ports: Option<(u16, u16)>,
    /// Steering mode of this class (None: the client's).
    pub steering: Option<SteeringMode>,
}

/// Which convergence sublayer a client uses (draft-04 §4.2, §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Convergence {
    /// Trailer-based MX convergence (draft-04 §4.2).
    Trailer,
    /// GRE (RFC 2784/2890) as convergence sublayer (draft-04 §4.4).
    Gre,
}

/// MX adaptation of one delivery connection (draft-04 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Adaptation {
    /// UDP tunnel between `local` and `remote`.
    UdpTunnel {
        /// "MX header optimization" (draft-04 §4.2.1): the inner IP header stays unchanged.
        header_optimization: bool,
    },
    /// The client's anchor address is rewritten to its address on this access network.
    ClientNat,
    /// Packets pass unchanged (plus the MX trailer).
    PassThrough,
}

/// One delivery connection (path) of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveryConfig {
    /// Its connection ID (draft-04 §5 CID).
    pub id: PathId,
    /// Adaptation method.
    pub adaptation: Adaptation,
    /// This engine's endpoint on the path (the port matters only for UDP tunnels; the IP is the
    /// outer source of UDP/GRE encapsulation).
    pub local: SocketAddr,
    /// The peer's endpoint (UDP tunnel, GRE over IP). `None`: learned from the first data PDU
    /// (N-MADP behind a client NAT).
    pub remote: Option<SocketAddr>,
    /// Client NAT: the client's address on this access network.
    pub client_addr: Option<IpAddr>,
    /// Path MTU: the largest outer packet.
    pub mtu: u16,
    /// Trailer fields sent on this path (draft-04 §4.2.1: negotiated per connection and
    /// direction).
    pub trailer_tx: TrailerFields,
    /// Trailer fields required on receipt.
    pub trailer_rx: TrailerFields,
    /// Steering priority (lower = preferred).
    pub priority: u8,
    /// Steering weight.
    pub weight: u32,
    /// Configured rate, for delay-aware steering until the slow path measures one.
    pub rate_bps: Option<u64>,
    /// Concatenate small SDUs of one flow within a burst (draft-04 §4.2.3, MAY).
    pub concatenation: bool,
    /// Compute the outer UDP checksum of a UDP tunnel over IPv4. Off by default: 0 means "no
    /// checksum" (RFC 768), as VXLAN and GTP-U deployments send, and computing it reads every
    /// byte of the PDU. IPv6 tunnels always carry one (RFC 8200 §8.1).
    pub udp_checksum: bool,
    /// Pace this connection's PDUs at a rate, holding the excess in the engine (`None`: send at
    /// once). See [`Shaper`].
    pub shaper: Option<Shaper>,
}

/// A per-delivery-connection shaper: PDUs leave at most at `rate_bps` (outer IP bytes), the
/// excess waits in the engine's delay line, and a PDU that would wait more than `queue_ns` for
/// its turn is dropped ([`crate::DropReason::ShaperQueueFull`]).
///
/// Why: an access link's own queue is sized for its own round trip (tens of ms), while a TCP
/// flow split over paths of different delays, with delay compensation, has the round trip of
/// the slowest path plus the holds. A sender's overshoot (BBR's startup, CUBIC's probing)
/// then overflows the access queues of every path at once. Shaped a little below its rate, the
/// access link never queues, the tunnel endpoint is the bottleneck, and its queue (this
/// bound) is sized for the compensated round trip. With weighted steering splitting by the
/// same rates, each path's queue holds the same time's worth, so shaping adds no reordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shaper {
    /// Outer IP bits per second (not zero).
    pub rate_bps: u64,
    /// Longest wait for the shaper, ns.
    pub queue_ns: u64,
}

impl Shaper {
    /// Time `bytes` take at the shaper's rate, ns.
    pub fn tx_time_ns(&self, bytes: usize) -> u64 {
        ((bytes as u128 * 8 * 1_000_000_000) / u128::from(self.rate_bps.max(1))) as u64
    }
}

impl DeliveryConfig {
    /// A UDP tunnel path with every trailer field but FSL/FC negotiated, MTU 1500.
    pub fn udp_tunnel(id: PathId, local: SocketAddr, remote: Option<SocketAddr>) -> Self {
        let fields = TrailerFields::new(
            flags::NEXT_HEADER
                | flags::CONNECTION_ID
                | flags::TRAFFIC_CLASS
                | flags::SEQUENCE_NUMBER,
        );
        DeliveryConfig {
            id,
            adaptation: Adaptation::UdpTunnel {
                header_optimization: false,
            },
            local,
            remote,
            client_addr: None,
            mtu: 1500,
            trailer_tx: fields,
            trailer_rx: fields,
            priority: 0,
            weight: 1,
            rate_bps: None,
            concatenation: false,
            udp_checksum: false,
            shaper: None,
        }
    }

    /// The IP address packets to the peer go to: the remote endpoint, or (client NAT) the
    /// client's address on this network.
    pub fn peer_ip(&self) -> Option<IpAddr> {
        self.remote.map(|r| r.ip()).or(self.client_addr)
    }
}

/// One client: its anchor address and connections, classification, steering and paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub id: ClientId,
    /// The client's anchor (virtual) IP address.
    pub anchor_addr: IpAddr,
    /// Anchor connections; the first is the default for unclassified traffic.
    pub anchors: Vec<AnchorConnection>,
    /// Traffic-class rules, first match wins; default TC 0 on the first anchor.
    pub traffic_classes: Vec<TcRule>,
    /// Default steering mode.
    pub steering: SteeringMode,
    pub convergence: Convergence,
    /// Delivery connections (at most [`MAX_PATHS`]).
    pub deliveries: Vec<DeliveryConfig>,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// A client with this ID already exists.
    DuplicateClient(ClientId),
    /// Another client has the same anchor address.
    DuplicateAnchorAddress(ClientId),
    /// No such client.
    UnknownClient(ClientId),
    /// The client has no anchor connection.
    NoAnchor,
    /// Two anchors with the same ID.
    DuplicateAnchor(u16),
    /// Trailer convergence carries 8-bit connection IDs (draft-04 §4.2.1).
    AnchorIdTooLarge(u16),
    /// A traffic-class rule names an anchor the client does not have.
    UnknownAnchorInRule(u16),
    /// A prefix longer than its address family allows.
    BadPrefix,
    /// A port range whose start is after its end.
    BadPortRange,
    /// More than [`MAX_PATHS`] delivery connections.
    TooManyPaths,
    /// Two delivery connections with the same ID.
    DuplicatePath(PathId),
    /// Client NAT without `client_addr`, or of another family than the anchor address.
    BadClientAddress(PathId),
    /// The MTU leaves no room for an SDU after the adaptation overhead.
    MtuTooSmall(PathId),
    /// Header optimization with GRE convergence (it is a trailer-convergence option).
    HeaderOptimizationWithGre(PathId),
    /// Sequence numbers are negotiated but the trailer lacks the Traffic Class (or Connection
    /// ID) while the client has several classes (or anchors): the receiver could not tell the
    /// sequence spaces apart (draft-04 §4.2.1: SNs are per connection and TC).
    AmbiguousSnScope(PathId),
    /// Another client already uses this (local, remote) UDP endpoint pair or NAT address.
    DuplicateEndpoint(PathId),
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for ConfigError {}

fn prefix_ok(addr: &IpAddr, len: u8) -> bool {
    match addr {
        IpAddr::V4(_) => len <= 32,
        IpAddr::V6(_) => len <= 128,
    }
}

/// The traffic-class IDs of a client: 0 (default) and every rule's, deduplicated, in order.
pub(crate) fn tc_ids(cfg: &ClientConfig) -> Vec<u8> {
    let mut ids = vec![0u8];
    for r in &cfg.traffic_classes {
        if !ids.contains(&r.id) {
            ids.push(r.id);
        }
    }
    ids
}

/// Bytes the adaptation (and GRE convergence) add in front of a PDU on this path.
pub fn adaptation_overhead(d: &DeliveryConfig, convergence: Convergence) -> usize {
    let ip = match d.local.ip() {
        IpAddr::V4(_) => crate::wire::ipv4::HEADER_LEN,
        IpAddr::V6(_) => crate::wire::ipv6::HEADER_LEN,
    };
    let udp = crate::wire::udp::HEADER_LEN;
    match (convergence, d.adaptation) {
        (Convergence::Trailer, Adaptation::UdpTunnel { .. }) => ip + udp,
        (Convergence::Trailer, _) => 0,
        // GRE header with key and sequence number (RFC 2890), then the outer IP header of the
        // GRE delivery protocol (draft-04 §4.4.1), plus UDP for GRE-in-UDP.
        (Convergence::Gre, Adaptation::UdpTunnel { .. }) => ip + udp + GRE_HEADER_LEN,
        (Convergence::Gre, _) => ip + GRE_HEADER_LEN,
    }
}

/// GRE header with key and sequence number: 4 + 4 + 4 (RFC 2784, RFC 2890).
pub const GRE_HEADER_LEN: usize = 12;

impl ClientConfig {
    /// Checks everything that does not depend on other clients.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Some(_) = self.anchors.first() else {
            return Err(ConfigError::NoAnchor);
        };
        for (i, a) in self.anchors.iter().enumerate() {
            if self.anchors[..i]
                .iter()
                .any(|b| b.connection_id == a.connection_id)
            {
                return Err(ConfigError::DuplicateAnchor(a.connection_id));
            }
            if self.convergence == Convergence::Trailer && a.connection_id > 255 {
                return Err(ConfigError::AnchorIdTooLarge(a.connection_id));
            }
        }
        for r in &self.traffic_classes {
            if !self.anchors.iter().any(|a| a.connection_id == r.anchor) {
                return Err(ConfigError::UnknownAnchorInRule(r.anchor));
            }
            if let Some((addr, len)) = r.remote {
                if !prefix_ok(&addr, len) {
                    return Err(ConfigError::BadPrefix);
                }
            }
            for (lo, hi) in [r.remote_ports, r.client_ports].into_iter().flatten() {
                if lo > hi {
                    return Err(ConfigError::BadPortRange);
                }
            }
        }
        if self.deliveries.len() > MAX_PATHS {
            return Err(ConfigError::TooManyPaths);
        }
        let several_tcs = tc_ids(self).len() > 1;
        let several_anchors = self.anchors.len() > 1;
        for (i, d) in self.deliveries.iter().enumerate() {
            if self.deliveries[..i].iter().any(|e| e.id == d.id) {
                return Err(ConfigError::DuplicatePath(d.id));
            }
            if d.adaptation == Adaptation::ClientNat {
                match d.client_addr {
                    Some(a) if a.is_ipv4() == self.anchor_addr.is_ipv4() => {}
                    _ => return Err(ConfigError::BadClientAddress(d.id)),
                }
            }
            let overhead = adaptation_overhead(d, self.convergence);
            // Room for at least a minimal IPv4 header, one payload byte and a full trailer.
            if usize::from(d.mtu) < overhead + 20 + 1 + crate::wire::mx_trailer::MAX_LEN {
                return Err(ConfigError::MtuTooSmall(d.id));
            }
            if self.convergence == Convergence::Gre
                && matches!(
                    d.adaptation,
                    Adaptation::UdpTunnel {
                        header_optimization: true
                    }
                )
            {
                return Err(ConfigError::HeaderOptimizationWithGre(d.id));
            }
            if self.convergence == Convergence::Trailer {
                for f in [d.trailer_tx, d.trailer_rx] {
                    if f.contains(flags::SEQUENCE_NUMBER)
                        && ((several_tcs && !f.contains(flags::TRAFFIC_CLASS))
                            || (several_anchors && !f.contains(flags::CONNECTION_ID)))
                    {
                        return Err(ConfigError::AmbiguousSnScope(d.id));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientConfig {
        ClientConfig {
            id: ClientId(1),
            anchor_addr: "10.0.0.2".parse().unwrap(),
            anchors: vec![AnchorConnection { connection_id: 1 }],
            traffic_classes: vec![],
            steering: SteeringMode::Weighted,
            convergence: Convergence::Trailer,
            deliveries: vec![DeliveryConfig::udp_tunnel(
                PathId(1),
                "192.0.2.1:10021".parse().unwrap(),
                None,
            )],
        }
    }

    #[test]
    fn valid_client_passes() {
        assert_eq!(client().validate(), Ok(()));
    }

    #[test]
    fn rejections() {
        let mut c = client();
        c.anchors.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoAnchor));

        let mut c = client();
        c.anchors[0].connection_id = 300;
        assert_eq!(c.validate(), Err(ConfigError::AnchorIdTooLarge(300)));
        c.convergence = Convergence::Gre;
        assert_eq!(c.validate(), Ok(()), "GRE keys carry 16-bit anchor IDs");

        let mut c = client();
        c.deliveries.push(c.deliveries[0]);
        assert_eq!(c.validate(), Err(ConfigError::DuplicatePath(PathId(1))));

        let mut c = client();
        c.deliveries[0].adaptation = Adaptation::ClientNat;
        assert_eq!(c.validate(), Err(ConfigError::BadClientAddress(PathId(1))));
        c.deliveries[0].client_addr = Some("2001:db8::1".parse().unwrap());
        assert_eq!(c.validate(), Err(ConfigError::BadClientAddress(PathId(1))));

        let mut c = client();
        c.deliveries[0].mtu = 40;
        assert_eq!(c.validate(), Err(ConfigError::MtuTooSmall(PathId(1))));

        let mut c = client();
        c.traffic_classes.push(TcRule {
            id: 3,
            anchor: 1,
            ..Default::default()
        });
        c.deliveries[0].trailer_tx = TrailerFields::new(flags::SEQUENCE_NUMBER);
        assert_eq!(c.validate(), Err(ConfigError::AmbiguousSnScope(PathId(1))));

        let mut c = client();
        c.traffic_classes.push(TcRule {
            id: 3,
            anchor: 9,
            ..Default::default()
        });
        assert_eq!(c.validate(), Err(ConfigError::UnknownAnchorInRule(9)));

        let mut c = client();
        c.traffic_classes.push(TcRule {
            id: 3,
            anchor: 1,
            remote: Some(("10.0.0.0".parse().unwrap(), 33)),
            ..Default::default()
        });
        assert_eq!(c.validate(), Err(ConfigError::BadPrefix));

        let mut c = client();
        c.traffic_classes.push(TcRule {
            id: 3,
            anchor: 1,
            client_ports: Some((9, 8)),
            ..Default::default()
        });
        assert_eq!(c.validate(), Err(ConfigError::BadPortRange));

        let mut c = client();
        c.convergence = Convergence::Gre;
        c.deliveries[0].adaptation = Adaptation::UdpTunnel {
            header_optimization: true,
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::HeaderOptimizationWithGre(PathId(1)))
        );
    }
}

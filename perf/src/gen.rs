//! Traffic generator for N clients (issue "Kernel bypass", item 4).
//!
//! Two generators write into any [`PacketBuf`] (a [`pipelines::HeapBuf`] or a DPDK mbuf):
//!
//! * [`DownlinkGen`]: IPv4/UDP SDUs from servers to the clients' anchor addresses, the anchor
//!   side of the N-MADP. Many 5-tuples: `clients × flows_per_client` (source address and both
//!   ports vary with the flow).
//! * [`UplinkGen`]: MX PDUs as a C-MADP sends them over a UDP tunnel to the N-MADP (default
//!   layout, draft-04 §4.2.1: outer IPv4/UDP, inner IPv4 header rewritten to protocol 114, inner
//!   UDP, MX trailer NH/CID/TC/SN), alternating over the two delivery paths of [`plan`], one
//!   sequence-number counter per (client, connection, class) flow, optionally reordered in
//!   pairs ([`UplinkOrder::PairSwapped`]).
//!
//! Cheap stamping: the generators never touch the payload. They set the buffer's length
//! (`append`/`trim`, which only move offsets) and write the headers (and, uplink, the trailer at
//! the end) from pre-built templates; the IPv4 header checksums are computed over 20 bytes, the
//! UDP checksums are 0 (no checksum, allowed for IPv4 by RFC 768). Client choice comes from a
//! seeded xorshift generator, so a run is repeatable.
//!
//! Sizes are IP packet lengths (no Ethernet header: the benchmark ports run in raw mode and the
//! engine sees IP packets). IMIX is the simple 7:4:1 mix of 64, 570 and 1518 bytes (mean 353.8
//! bytes), interleaved in a fixed 12-packet pattern.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use pipelines::engine::{
    AnchorConnection, ClientConfig, ClientId, Convergence, DeliveryConfig, Engine, EngineConfig,
    Role,
};
use pipelines::flow::steering::{PathId, SteeringMode};
use pipelines::wire::mx_trailer::{self, Field, MxTrailer, LAYOUT};
use pipelines::PacketBuf;

/// IP protocol numbers used here.
const UDP: u8 = 17;
const MX: u8 = 114;

/// The 12-packet IMIX pattern: 7 × 64, 4 × 570, 1 × 1518, interleaved.
pub const IMIX_PATTERN: [u16; 12] = [64, 570, 64, 64, 570, 64, 1518, 64, 570, 64, 64, 570];

/// Packet sizes (IP packet length, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeMix {
    /// Every packet this long.
    Fixed(u16),
    /// Simple IMIX 7:4:1 of 64/570/1518 ([`IMIX_PATTERN`]).
    Imix,
}

impl SizeMix {
    /// `"64"`, `"1500"`, `"imix"`.
    pub fn parse(s: &str) -> Option<SizeMix> {
        if s.eq_ignore_ascii_case("imix") {
            return Some(SizeMix::Imix);
        }
        s.parse::<u16>().ok().map(SizeMix::Fixed)
    }

    /// Length of packet number `i`.
    pub fn len_at(self, i: u64) -> usize {
        match self {
            SizeMix::Fixed(n) => usize::from(n),
            SizeMix::Imix => usize::from(IMIX_PATTERN[(i % 12) as usize]),
        }
    }

    /// The longest packet.
    pub fn max_len(self) -> usize {
        match self {
            SizeMix::Fixed(n) => usize::from(n),
            SizeMix::Imix => 1518,
        }
    }

    /// The mean packet length.
    pub fn mean_len(self) -> f64 {
        match self {
            SizeMix::Fixed(n) => f64::from(n),
            SizeMix::Imix => IMIX_PATTERN.iter().map(|&x| f64::from(x)).sum::<f64>() / 12.0,
        }
    }

    pub fn label(self) -> String {
        match self {
            SizeMix::Fixed(n) => n.to_string(),
            SizeMix::Imix => "imix".to_string(),
        }
    }
}

/// The address plan shared by the generators and the engine set-up, for up to [`plan::MAX_CLIENTS`].
pub mod plan {
    use super::*;

    /// Clients the plan can address (anchor addresses in 10/8, C-MADP addresses in 100.64/10).
    pub const MAX_CLIENTS: u32 = 1 << 22;
    /// The N-MADP's address on both access networks.
    pub const NMADP_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    /// The N-MADP's control endpoint (WIRE.md default port 8888).
    pub const CONTROL: SocketAddrV4 = SocketAddrV4::new(NMADP_IP, 8888);
    /// The anchor connection every client has.
    pub const CID: u8 = 1;
    /// Its only traffic class.
    pub const TC: u8 = 0;
    /// Delivery paths per client: 0 ("wifi", weight 5) and 1 ("lte", weight 2).
    pub const PATHS: u8 = 2;

    /// Client `i`'s anchor address: 10.0.0.2 + i.
    pub fn anchor_addr(i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 2)).wrapping_add(i))
    }

    /// The index of the client with anchor address `a`, if it is one of the plan's.
    pub fn client_of_anchor(a: Ipv4Addr) -> Option<u32> {
        let i = u32::from(a).checked_sub(u32::from(Ipv4Addr::new(10, 0, 0, 2)))?;
        (i < MAX_CLIENTS).then_some(i)
    }

    /// The N-MADP's tunnel endpoint of path `p` (10021 wifi, 10020 lte).
    pub fn nmadp_local(p: u8) -> SocketAddrV4 {
        SocketAddrV4::new(NMADP_IP, 10021 - u16::from(p))
    }

    /// Client `i`'s C-MADP endpoint on path `p`: 100.64.0.0 + i, port 40000 + p.
    pub fn client_remote(i: u32, p: u8) -> SocketAddrV4 {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)).wrapping_add(i));
        SocketAddrV4::new(ip, 40000 + u16::from(p))
    }

    /// The server address of flow `f` (198.18.0.0/15, RFC 2544 benchmarking range).
    pub fn server_addr(f: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 1)).wrapping_add(f & 0xffff))
    }

    /// Client `i` as the N-MADP knows it: one anchor connection, two UDP-tunnel paths
    /// (weights 5:2) with MTU `mtu`, trailer-based convergence.
    pub fn client_config(i: u32, steering: SteeringMode, mtu: u16) -> ClientConfig {
        let deliveries = (0..PATHS)
            .map(|p| {
                let mut d = DeliveryConfig::udp_tunnel(
                    PathId(p),
                    SocketAddr::V4(nmadp_local(p)),
                    Some(SocketAddr::V4(client_remote(i, p))),
                );
                d.weight = if p == 0 { 5 } else { 2 };
                d.mtu = mtu;
                d
            })
            .collect();
        ClientConfig {
            id: ClientId(i),
            anchor_addr: IpAddr::V4(anchor_addr(i)),
            anchors: vec![AnchorConnection {
                connection_id: u16::from(CID),
            }],
            traffic_classes: vec![],
            steering,
            convergence: Convergence::Trailer,
            deliveries,
        }
    }

    /// The engine configuration of the N-MADP.
    pub fn engine_config() -> EngineConfig {
        EngineConfig::new(Role::NMadp, SocketAddr::V4(CONTROL))
    }

    /// Adds clients `0..n` to `engine` with both paths usable.
    pub fn add_clients<B: PacketBuf>(
        engine: &mut Engine<B>,
        n: u32,
        steering: SteeringMode,
        mtu: u16,
    ) -> Result<(), pipelines::engine::ConfigError> {
        for i in 0..n {
            engine.add_client(client_config(i, steering, mtu))?;
            for p in 0..PATHS {
                engine.set_path_usable(ClientId(i), PathId(p), true);
            }
        }
        Ok(())
    }
}

/// IPv4 header checksum of a 20-byte header (its checksum field must be 0).
#[inline]
fn ip_checksum(h: &[u8; 20]) -> u16 {
    let mut s: u32 = 0;
    for i in 0..10 {
        s += u32::from(u16::from_be_bytes([h[2 * i], h[2 * i + 1]]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Writes an IPv4 header (no options, DF, TTL 64) with a valid checksum.
#[inline]
fn ipv4_header(out: &mut [u8], total: usize, ident: u16, proto: u8, src: Ipv4Addr, dst: Ipv4Addr) {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    h[6] = 0x40;
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = ip_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    out[..20].copy_from_slice(&h);
}

/// Writes a UDP header with checksum 0 (none, RFC 768, IPv4 only).
#[inline]
fn udp_header(out: &mut [u8], sport: u16, dport: u16, len: usize) {
    out[0..2].copy_from_slice(&sport.to_be_bytes());
    out[2..4].copy_from_slice(&dport.to_be_bytes());
    out[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    out[6..8].copy_from_slice(&[0, 0]);
}

/// Sets the buffer's data length to `len` without writing the data (`append`/`trim`).
#[inline]
fn set_len<B: PacketBuf + ?Sized>(buf: &mut B, len: usize) -> bool {
    let cur = buf.len();
    if cur < len {
        buf.append(len - cur).is_some()
    } else {
        buf.trim(cur - len)
    }
}

/// xorshift64* (seeded, repeatable).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    #[inline]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (Lemire's multiply-shift; bias negligible for our n).
    #[inline]
    fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// Downlink SDUs: server -> client anchor address, IPv4/UDP.
#[derive(Debug, Clone)]
pub struct DownlinkGen {
    clients: u32,
    flows_per_client: u32,
    size: SizeMix,
    rng: Rng,
    i: u64,
}

/// Smallest downlink SDU: IPv4 + UDP headers.
pub const DOWNLINK_MIN_LEN: usize = 28;

impl DownlinkGen {
    /// Traffic spread uniformly over `clients` (>= 1), each with `flows_per_client` (>= 1)
    /// 5-tuples; packet sizes from `size` (each >= [`DOWNLINK_MIN_LEN`]).
    pub fn new(clients: u32, flows_per_client: u32, size: SizeMix, seed: u64) -> DownlinkGen {
        DownlinkGen {
            clients: clients.max(1),
            flows_per_client: flows_per_client.max(1),
            size,
            rng: Rng::new(seed),
            i: 0,
        }
    }

    /// Packets generated so far.
    pub fn count(&self) -> u64 {
        self.i
    }

    /// Makes `buf` the next packet: sets its length, writes the 28 header bytes, leaves the
    /// payload as it was. False (buffer state unspecified) when the buffer has no room.
    #[inline]
    pub fn fill<B: PacketBuf + ?Sized>(&mut self, buf: &mut B) -> bool {
        let len = self.size.len_at(self.i).max(DOWNLINK_MIN_LEN);
        let ident = self.i as u16;
        self.i += 1;
        if !set_len(buf, len) {
            return false;
        }
        let client = self.rng.below(self.clients);
        let flow = self.rng.below(self.flows_per_client);
        let d = buf.data_mut();
        ipv4_header(
            d,
            len,
            ident,
            UDP,
            plan::server_addr(flow),
            plan::anchor_addr(client),
        );
        udp_header(&mut d[20..28], 10_000 + flow as u16, 5001, len - 20);
        true
    }
}

/// Order of the uplink sequence numbers of each flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UplinkOrder {
    /// 0, 1, 2, 3, ...
    InOrder,
    /// 0, then pairs swapped: 2, 1, 4, 3, 6, 5, ... (both packets of a pair back to back, the
    /// first on path 0 and the second on path 1; the flow's first packet goes alone so that the
    /// receiver's window starts at 0).
    PairSwapped,
}

/// Uplink MX PDUs: C-MADP -> N-MADP over the UDP tunnels of [`plan`].
#[derive(Debug, Clone)]
pub struct UplinkGen {
    clients: u32,
    size: SizeMix,
    order: UplinkOrder,
    rng: Rng,
    i: u64,
    /// Next SN per client (one flow each: CID [`plan::CID`], TC [`plan::TC`]).
    sn: Vec<u16>,
    /// Second packet of a swapped pair: (client, SN).
    pending: Option<(u32, u16)>,
    trailer: [u8; mx_trailer::MAX_LEN],
    tlen: usize,
    /// Offset of the 2 SN bytes from the start of the trailer.
    sn_at: usize,
}

/// Outer IPv4 + UDP header bytes of an uplink PDU.
pub const OUTER_LEN: usize = 28;

impl UplinkGen {
    /// PDUs spread uniformly over `clients` (>= 1), sizes from `size` (outer headers included;
    /// each >= [`UplinkGen::min_len`]).
    pub fn new(clients: u32, size: SizeMix, order: UplinkOrder, seed: u64) -> UplinkGen {
        let t = MxTrailer {
            next_header: Some(UDP),
            connection_id: Some(plan::CID),
            traffic_class: Some(plan::TC),
            sequence_number: Some(0),
            ..Default::default()
        };
        let tlen = t.buffer_len();
        let mut trailer = [0u8; mx_trailer::MAX_LEN];
        t.emit(&mut trailer[..tlen]);
        // WIRE.md layout: fields sit before the flags octet in LAYOUT order, walking backwards.
        let mut from_end = mx_trailer::FLAGS_LEN;
        let mut sn_at = 0;
        for spec in LAYOUT.iter() {
            if t.flags() & spec.flag != 0 {
                from_end += spec.size;
                if spec.field == Field::SequenceNumber {
                    sn_at = tlen - from_end;
                }
            }
        }
        let clients = clients.max(1);
        UplinkGen {
            clients,
            size,
            order,
            rng: Rng::new(seed),
            i: 0,
            sn: vec![0; clients as usize],
            pending: None,
            trailer,
            tlen,
            sn_at,
        }
    }

    /// Smallest PDU: outer 28 + inner IPv4/UDP 28 + trailer.
    pub fn min_len(&self) -> usize {
        OUTER_LEN + 28 + self.tlen
    }

    /// Trailer length (NH, CID, TC, SN, flags).
    pub fn trailer_len(&self) -> usize {
        self.tlen
    }

    /// Packets generated so far.
    pub fn count(&self) -> u64 {
        self.i
    }

    /// The next (client, path, SN).
    #[inline]
    fn next_pdu(&mut self) -> (u32, u8, u16) {
        match self.order {
            UplinkOrder::InOrder => {
                let c = self.rng.below(self.clients);
                let s = &mut self.sn[c as usize];
                let sn = *s;
                *s = s.wrapping_add(1);
                (c, (sn & 1) as u8, sn)
            }
            UplinkOrder::PairSwapped => {
                if let Some((c, sn)) = self.pending.take() {
                    return (c, 1, sn);
                }
                let c = self.rng.below(self.clients);
                let s = &mut self.sn[c as usize];
                let sn = *s;
                if sn == 0 {
                    *s = 1;
                    return (c, 0, 0);
                }
                *s = sn.wrapping_add(2);
                self.pending = Some((c, sn));
                (c, 0, sn.wrapping_add(1))
            }
        }
    }

    /// Makes `buf` the next PDU: sets its length, writes outer IPv4/UDP, the inner IPv4 (protocol
    /// 114, length including the trailer) and UDP headers and the trailer; the inner payload is
    /// left as it was. False when the buffer has no room.
    #[inline]
    pub fn fill<B: PacketBuf + ?Sized>(&mut self, buf: &mut B) -> bool {
        let len = self.size.len_at(self.i).max(self.min_len());
        let ident = self.i as u16;
        self.i += 1;
        if !set_len(buf, len) {
            return false;
        }
        let (c, p, sn) = self.next_pdu();
        let remote = plan::client_remote(c, p);
        let local = plan::nmadp_local(p);
        let tlen = self.tlen;
        let d = buf.data_mut();
        ipv4_header(d, len, ident, UDP, *remote.ip(), *local.ip());
        udp_header(&mut d[20..28], remote.port(), local.port(), len - 20);
        let inner = len - OUTER_LEN;
        ipv4_header(
            &mut d[28..48],
            inner,
            ident,
            MX,
            plan::anchor_addr(c),
            plan::server_addr(c),
        );
        udp_header(&mut d[48..56], 5001, 10_000, inner - 20 - tlen);
        let t = &mut d[len - tlen..];
        t.copy_from_slice(&self.trailer[..tlen]);
        t[self.sn_at..self.sn_at + 2].copy_from_slice(&sn.to_be_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipelines::HeapBuf;

    #[test]
    fn imix_mean_is_7_4_1() {
        let m = SizeMix::Imix.mean_len();
        assert!((m - (7.0 * 64.0 + 4.0 * 570.0 + 1518.0) / 12.0).abs() < 1e-9);
    }

    #[test]
    fn fill_resizes_both_ways() {
        let mut g = DownlinkGen::new(3, 2, SizeMix::Imix, 1);
        let mut b = HeapBuf::default();
        for i in 0..24 {
            assert!(g.fill(&mut b));
            assert_eq!(b.len(), SizeMix::Imix.len_at(i));
        }
    }
}

//! Classification of anchor-side packets: the header facts the engine needs (addresses,
//! protocol, ports, DSCP), the traffic class (first matching rule wins, draft-04 §4.2.1 "TC"),
//! and a seeded 5-tuple flow hash for per-flow steering.

use std::net::IpAddr;

use crate::wire::ip::IpPacket;
use crate::wire::ipv4::{PROTOCOL_TCP, PROTOCOL_UDP};
use crate::wire::Result;

use super::config::TcRule;

/// What classification reads from one IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// Offset of the upper-layer header.
    pub l4_offset: usize,
    /// Source and destination ports (TCP/UDP with a complete port pair, not an IPv4 non-first
    /// fragment).
    pub ports: Option<(u16, u16)>,
    pub dscp: u8,
    /// IP total length.
    pub len: usize,
}

impl PacketInfo {
    /// Reads a checked IP packet.
    pub fn parse(data: &[u8]) -> Result<PacketInfo> {
        let ip = IpPacket::new_checked(data)?;
        let upper = ip.upper_layer()?;
        let (dscp, first_fragment) = match &ip {
            IpPacket::V4(p) => (p.dscp(), p.frag_offset() == 0),
            IpPacket::V6(p) => (p.dscp(), true),
        };
        let total = ip.total_len();
        let ports = if first_fragment && matches!(upper.protocol, PROTOCOL_TCP | PROTOCOL_UDP) {
            match data.get(upper.offset..upper.offset.saturating_add(4)) {
                Some(&[a, b, c, d]) if upper.offset + 4 <= total => {
                    Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])))
                }
                _ => None,
            }
        } else {
            None
        };
        Ok(PacketInfo {
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            protocol: upper.protocol,
            l4_offset: upper.offset,
            ports,
            dscp,
            len: total,
        })
    }
}

/// True when `addr` lies in `prefix/len` (families must match).
pub fn in_prefix(addr: IpAddr, prefix: IpAddr, len: u8) -> bool {
    match (addr, prefix) {
        (IpAddr::V4(a), IpAddr::V4(p)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(p) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(p)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(p) & mask
        }
        _ => false,
    }
}

fn in_range(v: Option<u16>, range: Option<(u16, u16)>) -> bool {
    match range {
        None => true,
        Some((lo, hi)) => v.is_some_and(|v| lo <= v && v <= hi),
    }
}

/// The first rule that matches, given which side is remote (internet) and which is the client.
/// `remote`/`remote_port` are the internet-side address and port, `client_port` the client's.
pub fn classify<'a>(
    rules: &'a [TcRule],
    info: &PacketInfo,
    remote: IpAddr,
    remote_port: Option<u16>,
    client_port: Option<u16>,
) -> Option<&'a TcRule> {
    rules.iter().find(|r| {
        (r.dscp.is_empty() || r.dscp.contains(&info.dscp))
            && r.protocol.is_none_or(|p| p == info.protocol)
            && r.remote.is_none_or(|(p, l)| in_prefix(remote, p, l))
            && in_range(remote_port, r.remote_ports)
            && in_range(client_port, r.client_ports)
    })
}

fn mix64(mut z: u64) -> u64 {
    // splitmix64 finalizer.
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// A seeded hash of the 5-tuple (src, dst, protocol, ports), for per-flow steering.
pub fn flow_hash(seed: u64, info: &PacketInfo) -> u32 {
    let (sp, dp) = info.ports.unwrap_or((0, 0));
    let s = addr_bits(info.src);
    let d = addr_bits(info.dst);
    let mut h = mix64(seed ^ 0x9E37_79B9_7F4A_7C15);
    for w in [
        s as u64,
        (s >> 64) as u64,
        d as u64,
        (d >> 64) as u64,
        (u64::from(info.protocol) << 32) | (u64::from(sp) << 16) | u64::from(dp),
    ] {
        h = mix64(h ^ w);
    }
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, dscp: u8) -> Vec<u8> {
        let mut v = vec![0u8; 28];
        v[0] = 0x45;
        v[1] = dscp << 2;
        v[2..4].copy_from_slice(&28u16.to_be_bytes());
        v[8] = 64;
        v[9] = 17;
        v[12..16].copy_from_slice(&src);
        v[16..20].copy_from_slice(&dst);
        v[20..22].copy_from_slice(&sport.to_be_bytes());
        v[22..24].copy_from_slice(&dport.to_be_bytes());
        v[24..26].copy_from_slice(&8u16.to_be_bytes());
        v
    }

    #[test]
    fn parse_reads_ports_and_dscp() {
        let p = udp4([1, 2, 3, 4], [5, 6, 7, 8], 1000, 53, 46);
        let i = PacketInfo::parse(&p).unwrap();
        assert_eq!(i.ports, Some((1000, 53)));
        assert_eq!((i.dscp, i.protocol, i.len, i.l4_offset), (46, 17, 28, 20));
    }

    #[test]
    fn prefix_matching() {
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(in_prefix(a, "10.1.0.0".parse().unwrap(), 16));
        assert!(!in_prefix(a, "10.2.0.0".parse().unwrap(), 16));
        assert!(in_prefix(a, "0.0.0.0".parse().unwrap(), 0));
        let b: IpAddr = "2001:db8::5".parse().unwrap();
        assert!(in_prefix(b, "2001:db8::".parse().unwrap(), 64));
        assert!(
            !in_prefix(b, "10.0.0.0".parse().unwrap(), 0),
            "families differ"
        );
    }

    #[test]
    fn s4_2_1_first_matching_rule_wins() {
        let rules = vec![
            TcRule {
                id: 1,
                anchor: 1,
                dscp: vec![46],
                ..Default::default()
            },
            TcRule {
                id: 2,
                anchor: 1,
                protocol: Some(17),
                remote_ports: Some((50, 60)),
                ..Default::default()
            },
            TcRule {
                id: 3,
                anchor: 1,
                ..Default::default()
            },
        ];
        let voice = PacketInfo::parse(&udp4([1, 1, 1, 1], [2, 2, 2, 2], 1, 53, 46)).unwrap();
        let dns = PacketInfo::parse(&udp4([1, 1, 1, 1], [2, 2, 2, 2], 1, 53, 0)).unwrap();
        let other = PacketInfo::parse(&udp4([1, 1, 1, 1], [2, 2, 2, 2], 1, 80, 0)).unwrap();
        let r = |i: &PacketInfo| classify(&rules, i, i.dst, Some(i.ports.unwrap().1), None);
        assert_eq!(r(&voice).map(|r| r.id), Some(1));
        assert_eq!(r(&dns).map(|r| r.id), Some(2));
        assert_eq!(r(&other).map(|r| r.id), Some(3));
        assert!(classify(&rules[..2], &other, other.dst, Some(80), None).is_none());
    }

    #[test]
    fn flow_hash_is_seeded_and_tuple_sensitive() {
        let a = PacketInfo::parse(&udp4([1, 1, 1, 1], [2, 2, 2, 2], 1, 53, 0)).unwrap();
        let b = PacketInfo::parse(&udp4([1, 1, 1, 1], [2, 2, 2, 2], 2, 53, 0)).unwrap();
        assert_eq!(flow_hash(1, &a), flow_hash(1, &a));
        assert_ne!(flow_hash(1, &a), flow_hash(1, &b));
        assert_ne!(flow_hash(1, &a), flow_hash(2, &a));
    }
}

//! Which worker owns a packet's client (DESIGN.md "Flow ownership").
//!
//! A client's state lives on exactly one worker: `owner = hash(anchor address) % workers`
//! ([`owner_of`]). Anchor-side packets name the anchor address directly (destination on an
//! N-MADP, source on a C-MADP). Delivery-side packets do not: the [`Directory`] finds the owner
//! from the outer header (the peer's UDP endpoint, a client-NAT or GRE address; on a C-MADP our
//! own endpoint), else from the inner anchor address of the MX PDU, parsing only the few header
//! bytes needed, and remembers the endpoint it learnt that way (so later fragments, which carry
//! no inner header, follow). The directory only routes: the owner's engine still decides
//! whether the packet belongs to the client (NAT rebinding rules), so a wrong hint costs a drop
//! on the owner, never a wrong delivery.
//!
//! Each worker keeps its own copy (no lock on the fast path); configured endpoints arrive as
//! commands when clients are added or removed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Owner of the client with anchor address `addr` among `workers` workers: FNV-1a over the
/// address octets, stable across runs and processes.
pub fn owner_of(addr: IpAddr, workers: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match addr {
        IpAddr::V4(a) => eat(&a.octets()),
        IpAddr::V6(a) => eat(&a.octets()),
    }
    (h % workers.max(1) as u64) as usize
}

/// A directory entry's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirKey {
    /// A UDP endpoint (N-MADP: the client's tunnel endpoint; C-MADP: ours).
    Socket(SocketAddr),
    /// An address (client NAT address, GRE peer, anchor address of a pass-through path).
    Ip(IpAddr),
}

/// Directory counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Found by the outer header.
    pub by_endpoint: u64,
    /// Found by the inner anchor address.
    pub by_inner: u64,
    /// Endpoints learnt from the inner anchor address.
    pub learned: u64,
    /// Not found: processed where it arrived (its engine counts the drop or the unknown peer).
    pub unknown: u64,
}

/// Outer header facts of a delivery-side packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outer {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    /// Offset of the upper-layer header.
    l4: usize,
}

fn outer(p: &[u8]) -> Option<Outer> {
    match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p.first()? & 0x0f) * 4;
            if ihl < 20 || p.len() < ihl {
                return None;
            }
            let src: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            Some(Outer {
                src: IpAddr::V4(Ipv4Addr::from(src)),
                dst: IpAddr::V4(Ipv4Addr::from(dst)),
                protocol: *p.get(9)?,
                l4: ihl,
            })
        }
        6 => {
            let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            Some(Outer {
                src: IpAddr::V6(Ipv6Addr::from(src)),
                dst: IpAddr::V6(Ipv6Addr::from(dst)),
                protocol: *p.get(6)?,
                l4: 40,
            })
        }
        _ => None,
    }
}

/// Source or destination address of the IP packet at the start of `p`.
pub fn ip_addr(p: &[u8], destination: bool) -> Option<IpAddr> {
    let o = outer(p)?;
    Some(if destination { o.dst } else { o.src })
}

/// The IP packet inside a tunnelled payload: itself (trailer convergence) or after a GRE
/// header (RFC 2784/2890: checksum, key and sequence number are 4 bytes each).
fn inner_ip(payload: &[u8]) -> Option<&[u8]> {
    match payload.first()? >> 4 {
        4 | 6 => Some(payload),
        _ => {
            let flags = *payload.first()?;
            let mut len = 4;
            for bit in [0x80u8, 0x20, 0x10] {
                if flags & bit != 0 {
                    len += 4;
                }
            }
            payload.get(len..)
        }
    }
}

const PROTO_UDP: u8 = 17;
const PROTO_GRE: u8 = 47;
const PROTO_MX: u8 = 114;

/// A worker's directory.
#[derive(Debug)]
pub struct Directory {
    workers: usize,
    /// N-MADP: the client's side is the source; C-MADP: the destination.
    client_is_source: bool,
    configured: HashMap<DirKey, u16>,
    learned: HashMap<SocketAddr, u16>,
    learned_cap: usize,
    pub stats: DirStats,
}

impl Directory {
    /// An empty directory for `workers` workers. `nmadp`: the role (the client is the source of
    /// what an N-MADP receives on the delivery side, the destination of what a C-MADP does).
    pub fn new(workers: usize, nmadp: bool, learned_cap: usize) -> Directory {
        Directory {
            workers: workers.max(1),
            client_is_source: nmadp,
            configured: HashMap::new(),
            learned: HashMap::with_capacity(learned_cap.min(4096)),
            learned_cap: learned_cap.max(1),
            stats: DirStats::default(),
        }
    }

    /// Adds (or moves) configured keys to `owner`.
    pub fn insert(&mut self, keys: &[DirKey], owner: u16) {
        for k in keys {
            self.configured.insert(*k, owner);
            if let DirKey::Socket(s) = k {
                self.learned.remove(s);
            }
        }
    }

    /// Removes keys (a removed client).
    pub fn remove(&mut self, keys: &[DirKey]) {
        for k in keys {
            self.configured.remove(k);
            if let DirKey::Socket(s) = k {
                self.learned.remove(s);
            }
        }
    }

    /// Entries (configured, learned).
    pub fn len(&self) -> (usize, usize) {
        (self.configured.len(), self.learned.len())
    }

    /// Owner of an anchor-side packet: by its destination (N-MADP) or source (C-MADP) address.
    /// `None`: not an IP packet (processed locally; the engine counts the drop).
    pub fn anchor_owner(&self, pkt: &[u8]) -> Option<usize> {
        ip_addr(pkt, self.client_is_source).map(|a| owner_of(a, self.workers))
    }

    /// Owner of a delivery-side packet, `None` when nothing identifies it.
    pub fn delivery_owner(&mut self, pkt: &[u8]) -> Option<usize> {
        let o = outer(pkt)?;
        let client_ip = if self.client_is_source { o.src } else { o.dst };
        let mut socket = None;
        let mut payload = None;
        match o.protocol {
            PROTO_UDP => {
                let ports = pkt.get(o.l4..o.l4 + 4)?;
                let sport = u16::from_be_bytes([ports[0], ports[1]]);
                let dport = u16::from_be_bytes([ports[2], ports[3]]);
                let s =
                    SocketAddr::new(client_ip, if self.client_is_source { sport } else { dport });
                if let Some(&w) = self
                    .configured
                    .get(&DirKey::Socket(s))
                    .or_else(|| self.learned.get(&s))
                {
                    self.stats.by_endpoint += 1;
                    return Some(usize::from(w));
                }
                socket = Some(s);
                payload = pkt.get(o.l4 + 8..).and_then(inner_ip);
            }
            PROTO_GRE => payload = pkt.get(o.l4..).and_then(inner_ip),
            _ => {}
        }
        if let Some(&w) = self.configured.get(&DirKey::Ip(client_ip)) {
            self.stats.by_endpoint += 1;
            return Some(usize::from(w));
        }
        let anchor = match (o.protocol, payload) {
            (_, Some(inner)) => ip_addr(inner, !self.client_is_source),
            // MX over IP (draft-04 §4.1 pass-through): the outer addresses are the anchor's.
            (PROTO_MX, None) => Some(client_ip),
            _ => None,
        };
        let Some(anchor) = anchor else {
            self.stats.unknown += 1;
            return None;
        };
        let w = owner_of(anchor, self.workers);
        self.stats.by_inner += 1;
        if let Some(s) = socket {
            if self.learned.len() >= self.learned_cap {
                // Bounded: start over rather than grow (hints are relearnt on the next PDU).
                self.learned.clear();
            }
            self.learned.insert(s, w as u16);
            self.stats.learned += 1;
        }
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipelines::engine::adapt::push_udp_ip;
    use pipelines::{HeapBuf, PacketBuf};

    fn inner(src: &str, dst: &str) -> HeapBuf {
        let mut b = HeapBuf::new(128, 512);
        let mut ip = [0u8; 28];
        ip[0] = 0x45;
        ip[3] = 28;
        ip[9] = 17;
        let s: Ipv4Addr = src.parse().unwrap();
        let d: Ipv4Addr = dst.parse().unwrap();
        ip[12..16].copy_from_slice(&s.octets());
        ip[16..20].copy_from_slice(&d.octets());
        assert!(b.extend_from_slice(&ip));
        b
    }

    fn tunnel(inner_src: &str, inner_dst: &str, from: &str, to: &str) -> HeapBuf {
        let mut b = inner(inner_src, inner_dst);
        push_udp_ip(&mut b, from.parse().unwrap(), to.parse().unwrap(), 1).unwrap();
        b
    }

    #[test]
    fn owner_is_stable_and_spread() {
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(owner_of(a, 4), owner_of(a, 4));
        let owners: std::collections::HashSet<usize> = (0..64u8)
            .map(|i| owner_of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)), 2))
            .collect();
        assert_eq!(owners.len(), 2);
    }

    #[test]
    fn anchor_owner_uses_destination_on_nmadp_and_source_on_cmadp() {
        let n = Directory::new(8, true, 16);
        let c = Directory::new(8, false, 16);
        let p = inner("10.0.0.2", "10.9.9.9");
        assert_eq!(
            n.anchor_owner(p.data()),
            Some(owner_of("10.9.9.9".parse().unwrap(), 8))
        );
        assert_eq!(
            c.anchor_owner(p.data()),
            Some(owner_of("10.0.0.2".parse().unwrap(), 8))
        );
        assert_eq!(n.anchor_owner(&[0x00, 1, 2]), None);
    }

    #[test]
    fn delivery_owner_by_endpoint_then_inner_address_and_learns() {
        let mut d = Directory::new(8, true, 16);
        let peer: SocketAddr = "198.51.100.7:4000".parse().unwrap();
        d.insert(&[DirKey::Socket(peer)], 5);
        let p = tunnel(
            "10.0.0.2",
            "8.8.8.8",
            "198.51.100.7:4000",
            "192.0.2.1:10021",
        );
        assert_eq!(d.delivery_owner(p.data()), Some(5));
        assert_eq!(d.stats.by_endpoint, 1);
        // An unknown endpoint: the inner source (the anchor address) decides, and is learnt.
        let p = tunnel("10.0.0.3", "8.8.8.8", "203.0.113.9:5000", "192.0.2.1:10021");
        let w = owner_of("10.0.0.3".parse().unwrap(), 8);
        assert_eq!(d.delivery_owner(p.data()), Some(w));
        assert_eq!((d.stats.by_inner, d.stats.learned), (1, 1));
        // A later fragment (no inner IP header) from that endpoint follows the learnt entry.
        let mut frag = HeapBuf::new(128, 512);
        assert!(frag.extend_from_slice(&[0xAB; 40]));
        push_udp_ip(
            &mut frag,
            "203.0.113.9:5000".parse().unwrap(),
            "192.0.2.1:10021".parse().unwrap(),
            2,
        )
        .unwrap();
        assert_eq!(d.delivery_owner(frag.data()), Some(w));
        // A removed client's endpoint is forgotten.
        d.remove(&[DirKey::Socket(peer)]);
        let p = tunnel(
            "10.0.0.2",
            "8.8.8.8",
            "198.51.100.7:4000",
            "192.0.2.1:10021",
        );
        assert_eq!(
            d.delivery_owner(p.data()),
            Some(owner_of("10.0.0.2".parse().unwrap(), 8))
        );
    }

    #[test]
    fn cmadp_looks_at_the_destination() {
        let mut d = Directory::new(2, false, 16);
        let local: SocketAddr = "198.51.100.7:4000".parse().unwrap();
        d.insert(&[DirKey::Socket(local)], 1);
        let p = tunnel(
            "8.8.8.8",
            "10.0.0.2",
            "192.0.2.1:10021",
            "198.51.100.7:4000",
        );
        assert_eq!(d.delivery_owner(p.data()), Some(1));
    }

    #[test]
    fn the_learnt_table_is_bounded() {
        let mut d = Directory::new(2, true, 4);
        for i in 0..20u16 {
            let from = format!("203.0.113.9:{}", 5000 + i);
            let p = tunnel("10.0.0.3", "8.8.8.8", &from, "192.0.2.1:10021");
            assert!(d.delivery_owner(p.data()).is_some());
            assert!(d.len().1 <= 4);
        }
    }

    #[test]
    fn garbage_is_unknown_and_never_panics() {
        let mut d = Directory::new(2, true, 4);
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 0x45) as u8).collect();
            let _ = d.delivery_owner(&junk);
            let _ = d.anchor_owner(&junk);
        }
    }
}

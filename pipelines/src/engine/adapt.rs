//! MX adaptation sublayer (draft-04 §4.1) and the GRE convergence header (§4.4): outer IP/UDP
//! headers for the UDP tunnel, GRE encapsulation, and client NAT with incremental checksum
//! updates (RFC 1624).

use std::net::{IpAddr, SocketAddr, SocketAddrV4};

use crate::buf::PacketBuf;
use crate::drop::DropReason;
use crate::wire::checksum;
use crate::wire::gre;
use crate::wire::ip::IpPacket;
use crate::wire::ipv4::{self, PROTOCOL_TCP, PROTOCOL_UDP};
use crate::wire::{ipv6, udp};

/// TTL / hop limit of the outer headers we build.
pub const OUTER_TTL: u8 = 64;

/// EtherType of an IPv4 / IPv6 GRE payload (RFC 2784 §2.4).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86DD;

/// Prepends an outer IPv4 or IPv6 header (`src` → `dst`, `protocol`) in front of the data.
/// IPv4: identification `ident`, DF clear, fresh checksum. Families of `src` and `dst` must match.
pub fn push_ip<B: PacketBuf + ?Sized>(
    buf: &mut B,
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    ident: u16,
) -> Result<(), DropReason> {
    let payload_len = buf.len();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if payload_len > usize::from(u16::MAX) - ipv4::HEADER_LEN {
                return Err(DropReason::MxTrailerLength);
            }
            let repr = ipv4::Repr {
                src_addr: s,
                dst_addr: d,
                next_header: protocol,
                payload_len,
                hop_limit: OUTER_TTL,
                dscp: 0,
                ecn: 0,
                ident,
                dont_frag: false,
            };
            let hdr = buf.prepend(ipv4::HEADER_LEN).ok_or(DropReason::NoRoom)?;
            repr.emit(&mut ipv4::Packet::new_unchecked(hdr));
            Ok(())
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            if payload_len > usize::from(u16::MAX) {
                return Err(DropReason::MxTrailerLength);
            }
            let repr = ipv6::Repr {
                src_addr: s,
                dst_addr: d,
                next_header: protocol,
                payload_len,
                hop_limit: OUTER_TTL,
                traffic_class: 0,
                flow_label: 0,
            };
            let hdr = buf.prepend(ipv6::HEADER_LEN).ok_or(DropReason::NoRoom)?;
            repr.emit(&mut ipv6::Packet::new_unchecked(hdr));
            Ok(())
        }
        _ => Err(DropReason::IpVersion),
    }
}

/// Prepends UDP (checksum computed) and an outer IP header: the UDP tunnel adaptation
/// (draft-04 §4.1), also used for MX control PDUs (§5).
pub fn push_udp_ip<B: PacketBuf + ?Sized>(
    buf: &mut B,
    src: SocketAddr,
    dst: SocketAddr,
    ident: u16,
) -> Result<(), DropReason> {
    push_udp_ip_with(buf, src, dst, ident, true)
}

/// [`push_udp_ip`] with a choice for the UDP checksum: `udp_checksum == false` sends 0 ("no
/// checksum", RFC 768) over IPv4. IPv6 always gets a computed checksum (RFC 8200 §8.1; the
/// zero-checksum exception of RFC 6935/6936 needs per-tunnel configuration on both sides).
pub fn push_udp_ip_with<B: PacketBuf + ?Sized>(
    buf: &mut B,
    src: SocketAddr,
    dst: SocketAddr,
    ident: u16,
    udp_checksum: bool,
) -> Result<(), DropReason> {
    if let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) {
        return push_udp_ipv4(buf, s, d, ident, udp_checksum);
    }
    let payload_len = buf.len();
    if payload_len > usize::from(u16::MAX) - udp::HEADER_LEN - ipv6::HEADER_LEN {
        return Err(DropReason::MxTrailerLength);
    }
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(DropReason::IpVersion);
    }
    // Check the room for both headers up front so that a failure leaves the buffer unchanged.
    let ip_len = if src.is_ipv4() {
        ipv4::HEADER_LEN
    } else {
        ipv6::HEADER_LEN
    };
    if buf.headroom() < udp::HEADER_LEN + ip_len {
        return Err(DropReason::NoRoom);
    }
    buf.prepend(udp::HEADER_LEN).ok_or(DropReason::NoRoom)?;
    let repr = udp::Repr {
        src_port: src.port(),
        dst_port: dst.port(),
    };
    repr.emit(
        &mut udp::Packet::new_unchecked(buf.data_mut()),
        &src.ip(),
        &dst.ip(),
        payload_len,
        true,
    );
    push_ip(buf, src.ip(), dst.ip(), PROTOCOL_UDP, ident)
}

/// The IPv4 UDP tunnel headers written in one go: the same bytes as `udp::Repr::emit` +
/// [`push_ip`] (checked by `tests::fast_v4_headers_equal_the_repr_emitters`), without the
/// generic header views, and with both checksums summed from the known field values instead
/// of re-reading the headers.
fn push_udp_ipv4<B: PacketBuf + ?Sized>(
    buf: &mut B,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ident: u16,
    udp_checksum: bool,
) -> Result<(), DropReason> {
    const HLEN: usize = ipv4::HEADER_LEN + udp::HEADER_LEN;
    let payload_len = buf.len();
    // Same limit as the generic path (room for an IPv6 header), so both reject alike.
    if payload_len > usize::from(u16::MAX) - udp::HEADER_LEN - ipv6::HEADER_LEN {
        return Err(DropReason::MxTrailerLength);
    }
    let udp_len = (payload_len + udp::HEADER_LEN) as u16;
    let total = udp_len + ipv4::HEADER_LEN as u16;
    let (s, d) = (src.ip().octets(), dst.ip().octets());
    let addr_sum = u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]));
    let udp_csum = if udp_checksum {
        // RFC 768: pseudo header (addresses, protocol, UDP length) + header + data. The
        // payload is summed before the headers exist (it starts at an even offset).
        let acc = checksum::add(
            checksum::sum(buf.data()),
            addr_sum
                + u32::from(PROTOCOL_UDP)
                + 2 * u32::from(udp_len)
                + u32::from(src.port())
                + u32::from(dst.port()),
        );
        match !checksum::fold(acc) {
            // RFC 768: a computed 0 is sent as all ones.
            0 => 0xFFFF,
            c => c,
        }
    } else {
        0
    };
    // RFC 791 header checksum over the fields written below (version/IHL 0x45, TOS 0, flags
    // and fragment offset 0, TTL, protocol).
    let ip_sum = 0x4500
        + u32::from(total)
        + u32::from(ident)
        + (u32::from(OUTER_TTL) << 8 | u32::from(PROTOCOL_UDP))
        + addr_sum;
    let ip_csum = !checksum::fold(ip_sum);
    let hdr = buf.prepend(HLEN).ok_or(DropReason::NoRoom)?;
    let Some(hdr) = hdr.get_mut(..HLEN) else {
        return Err(DropReason::NoRoom);
    };
    let [t0, t1] = total.to_be_bytes();
    let [i0, i1] = ident.to_be_bytes();
    let [c0, c1] = ip_csum.to_be_bytes();
    let [sp0, sp1] = src.port().to_be_bytes();
    let [dp0, dp1] = dst.port().to_be_bytes();
    let [l0, l1] = udp_len.to_be_bytes();
    let [u0, u1] = udp_csum.to_be_bytes();
    hdr.copy_from_slice(&[
        0x45,
        0,
        t0,
        t1,
        i0,
        i1,
        0,
        0,
        OUTER_TTL,
        PROTOCOL_UDP,
        c0,
        c1,
        s[0],
        s[1],
        s[2],
        s[3],
        d[0],
        d[1],
        d[2],
        d[3],
        sp0,
        sp1,
        dp0,
        dp1,
        l0,
        l1,
        u0,
        u1,
    ]);
    Ok(())
}

/// Prepends a GRE header with key and sequence number (RFC 2784, RFC 2890; draft-04 §4.4.1)
/// in front of the inner IP packet.
pub fn push_gre<B: PacketBuf + ?Sized>(
    buf: &mut B,
    key: u32,
    sequence_number: Option<u32>,
) -> Result<(), DropReason> {
    let protocol_type = match buf.data().first().map(|b| b >> 4) {
        Some(4) => ETHERTYPE_IPV4,
        Some(6) => ETHERTYPE_IPV6,
        _ => return Err(DropReason::IpVersion),
    };
    let repr = gre::Repr {
        protocol_type,
        checksum: false,
        key: Some(key),
        sequence_number,
    };
    let payload_len = buf.len();
    buf.prepend(repr.header_len()).ok_or(DropReason::NoRoom)?;
    repr.emit(&mut gre::Packet::new_unchecked(buf.data_mut()), payload_len);
    Ok(())
}

/// Which address of an SDU client NAT rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatSide {
    Src,
    Dst,
}

/// Rewrites the source or destination address of the plain IP packet in `data` to `new`,
/// updating the IPv4 header checksum and the TCP/UDP checksum incrementally (RFC 1624 eqn. 3;
/// draft-04 §4.1 client NAT). A UDP checksum of 0 over IPv4 ("none", RFC 768) stays 0. IPv4
/// non-first fragments carry no transport header and only get the IP header fixed.
pub fn nat_rewrite(data: &mut [u8], side: NatSide, new: IpAddr) -> Result<(), DropReason> {
    let (old, protocol, l4, first_fragment) = {
        let ip = IpPacket::new_checked(data).map_err(|e| e.reason)?;
        let upper = ip.upper_layer().map_err(|e| e.reason)?;
        let old = match side {
            NatSide::Src => ip.src_addr(),
            NatSide::Dst => ip.dst_addr(),
        };
        let first = match &ip {
            IpPacket::V4(p) => p.frag_offset() == 0,
            IpPacket::V6(_) => true,
        };
        (old, upper.protocol, upper.offset, first)
    };
    if old == new {
        return Ok(());
    }
    let (old_b, new_b): (&[u8], &[u8]);
    let (o4, n4, o6, n6);
    match (old, new) {
        (IpAddr::V4(o), IpAddr::V4(n)) => {
            o4 = o.octets();
            n4 = n.octets();
            old_b = &o4;
            new_b = &n4;
            let mut p = ipv4::Packet::new_unchecked(&mut data[..]);
            match side {
                NatSide::Src => p.set_src_addr_incremental(n),
                NatSide::Dst => p.set_dst_addr_incremental(n),
            }
        }
        (IpAddr::V6(o), IpAddr::V6(n)) => {
            o6 = o.octets();
            n6 = n.octets();
            old_b = &o6;
            new_b = &n6;
            let mut p = ipv6::Packet::new_unchecked(&mut data[..]);
            match side {
                NatSide::Src => p.set_src_addr(n),
                NatSide::Dst => p.set_dst_addr(n),
            }
        }
        _ => return Err(DropReason::IpVersion),
    }
    if !first_fragment {
        return Ok(());
    }
    // The transport checksum covers the pseudo header, hence the address (RFC 768, RFC 793).
    let at = match protocol {
        PROTOCOL_TCP => l4 + 16,
        PROTOCOL_UDP => l4 + 6,
        _ => return Ok(()),
    };
    let Some(field) = data.get_mut(at..at + 2) else {
        // Too short to hold the checksum: nothing to fix (the packet is malformed anyway, but
        // NAT does not judge transport headers).
        return Ok(());
    };
    let c = u16::from_be_bytes([field[0], field[1]]);
    if protocol == PROTOCOL_UDP && c == 0 && new.is_ipv4() {
        return Ok(());
    }
    let mut n = checksum::update_bytes(c, old_b, new_b);
    if protocol == PROTOCOL_UDP && n == 0 {
        // RFC 768: a computed 0 is sent as all ones.
        n = 0xFFFF;
    }
    field.copy_from_slice(&n.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use std::net::Ipv4Addr;

    fn udp_packet(src: IpAddr, dst: IpAddr, payload: &[u8]) -> Vec<u8> {
        let mut b = HeapBuf::from_slice(payload);
        push_udp_ip(
            &mut b,
            SocketAddr::new(src, 1000),
            SocketAddr::new(dst, 2000),
            7,
        )
        .unwrap();
        b.to_vec()
    }

    fn verify(data: &[u8]) -> bool {
        let ip = IpPacket::new_checked(data).unwrap();
        if let IpPacket::V4(p) = &ip {
            assert!(p.verify_checksum());
        }
        let u = ip.upper_layer().unwrap();
        let dg = udp::Packet::new_checked(&data[u.offset..]).unwrap();
        dg.verify_checksum(&ip.src_addr(), &ip.dst_addr())
    }

    #[test]
    fn s4_1_udp_tunnel_headers_have_valid_checksums_v4_v6() {
        let p = udp_packet(
            "192.0.2.1".parse().unwrap(),
            "198.51.100.7".parse().unwrap(),
            b"hello",
        );
        assert_eq!(p.len(), 20 + 8 + 5);
        assert!(verify(&p));
        let p = udp_packet(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
            b"hi!",
        );
        assert_eq!(p.len(), 40 + 8 + 3);
        assert!(verify(&p));
    }

    /// The generic path (udp::Repr::emit + push_ip), as the fast IPv4 path must write it.
    fn reference(
        payload: &[u8],
        src: SocketAddr,
        dst: SocketAddr,
        ident: u16,
        csum: bool,
    ) -> Vec<u8> {
        let mut b = HeapBuf::from_slice(payload);
        b.prepend(udp::HEADER_LEN).unwrap();
        udp::Repr {
            src_port: src.port(),
            dst_port: dst.port(),
        }
        .emit(
            &mut udp::Packet::new_unchecked(b.data_mut()),
            &src.ip(),
            &dst.ip(),
            payload.len(),
            csum,
        );
        push_ip(&mut b, src.ip(), dst.ip(), PROTOCOL_UDP, ident).unwrap();
        b.to_vec()
    }

    #[test]
    fn fast_v4_headers_equal_the_repr_emitters() {
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for len in [0usize, 1, 2, 3, 5, 64, 333, 1500, 2000] {
            for _ in 0..20 {
                let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                let r = next();
                let src = SocketAddr::from(((r as u32).to_be_bytes(), (r >> 32) as u16));
                let dst = SocketAddr::from((((r >> 16) as u32).to_be_bytes(), (r >> 48) as u16));
                let ident = (r >> 40) as u16;
                for csum in [true, false] {
                    let mut b = HeapBuf::from_slice(&payload);
                    push_udp_ip_with(&mut b, src, dst, ident, csum).unwrap();
                    assert_eq!(b.to_vec(), reference(&payload, src, dst, ident, csum));
                    assert_eq!(csum, b.data()[26..28] != [0, 0]);
                    assert!(!csum || verify(b.data()));
                }
            }
        }
        // No room: unchanged.
        let mut b = HeapBuf::with_room(b"abc", 27, 0);
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        assert_eq!(push_udp_ip(&mut b, a, a, 0), Err(DropReason::NoRoom));
        assert_eq!(b.data(), b"abc");
    }

    #[test]
    fn s4_1_udp_checksum_zero_over_ipv4_when_disabled_and_always_over_ipv6() {
        let a: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let c: SocketAddr = "[2001:db8::2]:2".parse().unwrap();
        let mut b = HeapBuf::from_slice(b"xyz");
        push_udp_ip_with(&mut b, a, c, 0, false).unwrap();
        assert!(verify(b.data()), "IPv6 keeps its checksum (RFC 8200 §8.1)");
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let mut b = HeapBuf::from_slice(b"xyz");
        push_udp_ip_with(&mut b, a, a, 0, false).unwrap();
        assert_eq!(&b.data()[26..28], &[0, 0], "RFC 768: 0 = no checksum");
        assert!(verify(b.data()), "a zero checksum verifies");
    }

    #[test]
    fn s4_1_client_nat_fixes_ip_and_udp_checksums_incrementally() {
        for (a, b, n) in [
            ("10.0.0.2", "8.8.8.8", "172.16.5.9"),
            ("2001:db8::2", "2001:db8::8", "2001:db8:1::9"),
        ] {
            let (a, b, n): (IpAddr, IpAddr, IpAddr) =
                (a.parse().unwrap(), b.parse().unwrap(), n.parse().unwrap());
            let mut p = udp_packet(a, b, b"payload!");
            nat_rewrite(&mut p, NatSide::Src, n).unwrap();
            assert_eq!(IpPacket::new_checked(&p[..]).unwrap().src_addr(), n);
            assert!(verify(&p), "checksums valid after NAT");
            nat_rewrite(&mut p, NatSide::Src, a).unwrap();
            assert_eq!(
                p,
                udp_packet(a, b, b"payload!"),
                "reverse NAT restores the bytes"
            );
        }
    }

    #[test]
    fn s4_1_client_nat_keeps_a_zero_udp_checksum() {
        let mut p = udp_packet(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
            b"x",
        );
        p[26] = 0;
        p[27] = 0;
        nat_rewrite(&mut p, NatSide::Dst, "10.9.9.9".parse().unwrap()).unwrap();
        assert_eq!(&p[26..28], &[0, 0]);
        assert!(ipv4::Packet::new_checked(&p[..]).unwrap().verify_checksum());
    }

    #[test]
    fn nat_rejects_garbage_and_family_mismatch() {
        assert!(nat_rewrite(&mut [0x45, 0], NatSide::Src, "1.1.1.1".parse().unwrap()).is_err());
        let mut p = udp_packet(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            b"",
        );
        assert_eq!(
            nat_rewrite(&mut p, NatSide::Src, "::1".parse().unwrap()),
            Err(DropReason::IpVersion)
        );
    }

    #[test]
    fn gre_header_round_trips() {
        let inner = udp_packet(
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            b"z",
        );
        let mut b = HeapBuf::from_slice(&inner);
        push_gre(&mut b, gre::key_for_anchor(Some(3), 0), Some(0xDEAD_BEEF)).unwrap();
        let p = gre::Packet::new_checked(b.data()).unwrap();
        let r = gre::Repr::parse(&p).unwrap();
        assert_eq!(r.anchor_connection_id(), Some(3));
        assert_eq!(r.sequence_number, Some(0xDEAD_BEEF));
        assert_eq!(r.protocol_type, ETHERTYPE_IPV4);
        assert_eq!(&b.data()[r.header_len()..], &inner[..]);
    }
}

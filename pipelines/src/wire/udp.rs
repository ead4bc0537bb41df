//! UDP header (RFC 768): a zero-copy [`Packet`] view and a validated [`Repr`].
//!
//! The buffer given to the view is the IP payload; it may be longer than the UDP length field
//! (an MX trailer may follow the UDP datagram inside the same buffer, draft-04 §4.2.1), and
//! [`Packet::payload`] stops at the length field.

use std::net::IpAddr;

use super::checksum;
use super::{Error, Result};
use crate::drop::DropReason;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// IP protocol number of UDP (for the pseudo header).
const PROTOCOL_UDP: u8 = 17;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A read/write view of a UDP datagram in a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Partial sum of the pseudo header for either family (RFC 768; RFC 8200 §8.1), or `None` when
/// the two addresses are of different families (no such datagram exists).
fn pseudo_header(src: &IpAddr, dst: &IpAddr, length: u32) -> Option<u32> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            Some(checksum::pseudo_header_v4(*s, *d, PROTOCOL_UDP, length))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            Some(checksum::pseudo_header_v6(*s, *d, PROTOCOL_UDP, length))
        }
        _ => None,
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it (accessors may panic on a short one).
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`]; every accessor is then panic-free.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// RFC 768: at least the 8-byte header, and 8 <= Length <= buffer length.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::new(DropReason::Truncated, "udp header", data.len()));
        }
        let len = usize::from(u16::from_be_bytes([data[4], data[5]]));
        if len < HEADER_LEN || len > data.len() {
            return Err(Error::new(
                DropReason::UdpLength,
                "length",
                field::LENGTH.start,
            ));
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[r];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// Length field (header and payload).
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// The datagram (header and payload) as delimited by the length field.
    pub fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.len())]
    }

    /// Payload: 8..length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Verifies the checksum over the pseudo header and the datagram.
    ///
    /// A zero checksum field means "no checksum" over IPv4 and is accepted (RFC 768); over IPv6 it
    /// is invalid and rejected (RFC 8200 §8.1; the RFC 6935/6936 tunnel exception is not
    /// negotiated by MAMS). Addresses of different families never verify.
    pub fn verify_checksum(&self, src: &IpAddr, dst: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return matches!((src, dst), (IpAddr::V4(_), IpAddr::V4(_)));
        }
        let Some(ph) = pseudo_header(src, dst, u32::from(self.len())) else {
            return false;
        };
        checksum::fold(checksum::add(ph, checksum::sum(self.datagram()))) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes())
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, p: u16) {
        self.set_u16_at(field::SRC_PORT, p)
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, p: u16) {
        self.set_u16_at(field::DST_PORT, p)
    }

    /// Sets the length field.
    pub fn set_len(&mut self, len: u16) {
        self.set_u16_at(field::LENGTH, len)
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        self.set_u16_at(field::CHECKSUM, c)
    }

    /// Payload (8..length), mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }

    /// Computes and writes the checksum (the length field and payload must be in place). A
    /// computed 0 is sent as 0xFFFF (RFC 768: "If the computed checksum is zero, it is transmitted
    /// as all ones"). Addresses of different families are a caller bug: the field is then
    /// written as 0 (which fails verification over IPv6 and means "none" over IPv4).
    pub fn fill_checksum(&mut self, src: &IpAddr, dst: &IpAddr) {
        self.set_checksum(0);
        let c = match pseudo_header(src, dst, u32::from(self.len())) {
            Some(ph) => match !checksum::fold(checksum::add(ph, checksum::sum(self.datagram()))) {
                0 => 0xFFFF,
                c => c,
            },
            None => 0,
        };
        self.set_checksum(c)
    }
}

/// A validated UDP header (the length is implied by the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl Repr {
    /// Parses a datagram, verifying its checksum if `verify` (failure: [`DropReason::UdpChecksum`]).
    /// Port 0 is not rejected: RFC 768 makes the source port optional, and the MX layer only
    /// matches ports, it does not deliver to sockets.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        src: &IpAddr,
        dst: &IpAddr,
        verify: bool,
    ) -> Result<Repr> {
        packet.check_len()?;
        if verify && !packet.verify_checksum(src, dst) {
            return Err(Error::new(
                DropReason::UdpChecksum,
                "checksum",
                field::CHECKSUM.start,
            ));
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Length of the emitted header.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header for a payload of `payload_len` bytes that is already in place after it
    /// (the checksum covers it). With `with_checksum == false` the checksum field is 0, which is
    /// valid only over IPv4 (RFC 768; RFC 8200 §8.1). The buffer must hold
    /// `8 + payload_len` bytes and `payload_len` must be at most 65527 (caller bugs otherwise).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        src: &IpAddr,
        dst: &IpAddr,
        payload_len: usize,
        with_checksum: bool,
    ) {
        debug_assert!(payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(u16::try_from(HEADER_LEN.saturating_add(payload_len)).unwrap_or(u16::MAX));
        if with_checksum {
            packet.fill_checksum(src, dst);
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const V4_SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const V4_DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn v6_src() -> IpAddr {
        "2001:db8::1".parse().unwrap()
    }
    fn v6_dst() -> IpAddr {
        "2001:db8::2".parse().unwrap()
    }

    /// Ports 4000 -> 5201, payload "hello mams!" (odd length), checksum field zero. Checksums
    /// computed independently in Python: 0x880d over 10.0.0.1 -> 10.0.0.2, 0x409b over
    /// 2001:db8::1 -> 2001:db8::2.
    const DGRAM: [u8; 19] = [
        0x0f, 0xa0, 0x14, 0x51, 0x00, 0x13, 0x00, 0x00, b'h', b'e', b'l', b'l', b'o', b' ', b'm',
        b'a', b'm', b's', b'!',
    ];

    fn with_checksum(c: u16) -> Vec<u8> {
        let mut d = DGRAM.to_vec();
        d[6..8].copy_from_slice(&c.to_be_bytes());
        d
    }

    #[test]
    fn rfc768_known_checksum_v4() {
        let d = with_checksum(0x880d);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (4000, 5201, 19));
        assert_eq!(p.payload(), b"hello mams!");
        assert!(p.verify_checksum(&V4_SRC, &V4_DST));
        assert!(!p.verify_checksum(&V4_DST, &IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3))));
        let mut d2 = d.clone();
        Packet::new_unchecked(&mut d2[..]).fill_checksum(&V4_SRC, &V4_DST);
        assert_eq!(d2, d);
    }

    #[test]
    fn rfc8200_s8_1_known_checksum_v6() {
        let d = with_checksum(0x409b);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert!(p.verify_checksum(&v6_src(), &v6_dst()));
        let mut d2 = DGRAM.to_vec();
        Packet::new_unchecked(&mut d2[..]).fill_checksum(&v6_src(), &v6_dst());
        assert_eq!(d2, d);
    }

    #[test]
    fn rfc768_zero_checksum_means_none_over_ipv4() {
        let d = with_checksum(0);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert!(p.verify_checksum(&V4_SRC, &V4_DST));
        assert!(Repr::parse(&p, &V4_SRC, &V4_DST, true).is_ok());
    }

    #[test]
    fn rfc8200_s8_1_zero_checksum_invalid_over_ipv6() {
        let d = with_checksum(0);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert!(!p.verify_checksum(&v6_src(), &v6_dst()));
        let e = Repr::parse(&p, &v6_src(), &v6_dst(), true).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::UdpChecksum, 6));
    }

    #[test]
    fn rfc768_computed_zero_is_sent_as_all_ones() {
        // Pick the last payload word so that the one's-complement sum is 0xFFFF, i.e. the
        // computed checksum is 0.
        for (src, dst) in [(V4_SRC, V4_DST), (v6_src(), v6_dst())] {
            let mut d = vec![
                0x0f, 0xa0, 0x14, 0x51, 0x00, 0x0c, 0x00, 0x00, 0x12, 0x34, 0, 0,
            ];
            let ph = pseudo_header(&src, &dst, 12).unwrap();
            let w = !checksum::fold(checksum::add(ph, checksum::sum(&d)));
            d[10..12].copy_from_slice(&w.to_be_bytes());
            let mut p = Packet::new_unchecked(&mut d[..]);
            p.fill_checksum(&src, &dst);
            assert_eq!(p.checksum(), 0xFFFF);
            assert!(p.verify_checksum(&src, &dst));
        }
    }

    #[test]
    fn rfc768_bad_checksum_is_udp_checksum() {
        let d = with_checksum(0x880c);
        let p = Packet::new_checked(&d[..]).unwrap();
        let e = Repr::parse(&p, &V4_SRC, &V4_DST, true).unwrap_err();
        assert_eq!(e.reason, DropReason::UdpChecksum);
        assert!(Repr::parse(&p, &V4_SRC, &V4_DST, false).is_ok());
    }

    #[test]
    fn mixed_families_never_verify() {
        let d = with_checksum(0x880d);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert!(!p.verify_checksum(&V4_SRC, &v6_dst()));
        let z = with_checksum(0);
        assert!(!Packet::new_checked(&z[..])
            .unwrap()
            .verify_checksum(&v6_src(), &V4_DST));
    }

    #[test]
    fn rfc768_short_buffer_is_truncated() {
        let e = Packet::new_checked(&DGRAM[..7]).unwrap_err();
        assert_eq!(e.reason, DropReason::Truncated);
    }

    #[test]
    fn rfc768_length_at_least_8() {
        let mut d = with_checksum(0);
        d[5] = 7;
        let e = Packet::new_checked(&d[..]).unwrap_err();
        assert_eq!(
            (e.reason, e.field, e.offset),
            (DropReason::UdpLength, "length", 4)
        );
    }

    #[test]
    fn rfc768_length_within_buffer() {
        let d = with_checksum(0x880d);
        let e = Packet::new_checked(&d[..18]).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::UdpLength, 4));
    }

    #[test]
    fn s4_2_1_buffer_longer_than_length_is_valid() {
        // draft-04 §4.2.1: a trailer may follow the datagram in the same buffer; the checksum
        // and payload stop at the length field.
        let mut d = with_checksum(0x880d);
        d.extend_from_slice(&[0x11, 0x90]);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.payload(), b"hello mams!");
        assert!(p.verify_checksum(&V4_SRC, &V4_DST));
    }

    fn addrs() -> impl Strategy<Value = (IpAddr, IpAddr)> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>())
                .prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d))),
            (any::<[u8; 16]>(), any::<[u8; 16]>())
                .prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d))),
        ]
    }

    proptest! {
        #[test]
        fn repr_round_trip(
            sp in any::<u16>(), dp in any::<u16>(), (src, dst) in addrs(),
            payload in proptest::collection::vec(any::<u8>(), 0..64), extra in 0usize..4,
        ) {
            let r = Repr { src_port: sp, dst_port: dp };
            let mut buf = vec![0u8; HEADER_LEN + payload.len() + extra];
            buf[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(&payload);
            r.emit(&mut Packet::new_unchecked(&mut buf[..]), &src, &dst, payload.len(), true);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_ne!(p.checksum(), 0);
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert_eq!(Repr::parse(&p, &src, &dst, true).unwrap(), r);
            // Corrupting any payload byte is detected.
            if !payload.is_empty() {
                let mut bad = buf.clone();
                bad[HEADER_LEN] ^= 0x01;
                let e = Repr::parse(&Packet::new_checked(&bad[..]).unwrap(), &src, &dst, true);
                prop_assert_eq!(e.unwrap_err().reason, DropReason::UdpChecksum);
            }
        }

        #[test]
        fn emit_without_checksum_round_trips_over_ipv4(sp in any::<u16>(), dp in any::<u16>(), n in 0usize..32) {
            let r = Repr { src_port: sp, dst_port: dp };
            let mut buf = vec![0xA5u8; HEADER_LEN + n];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]), &V4_SRC, &V4_DST, n, false);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.checksum(), 0);
            prop_assert_eq!(Repr::parse(&p, &V4_SRC, &V4_DST, true).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40), (src, dst) in addrs(), verify in any::<bool>()) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (p.src_port(), p.dst_port(), p.len(), p.checksum(), p.payload(), p.is_empty());
                let _ = p.verify_checksum(&src, &dst);
                let _ = Repr::parse(&p, &src, &dst, verify);
            }
            let _ = Repr::parse(&Packet::new_unchecked(&data[..]), &src, &dst, verify);
        }
    }
}

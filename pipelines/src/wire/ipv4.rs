//! IPv4 header (RFC 791): a zero-copy [`Packet`] view and a validated [`Repr`].
//!
//! The buffer may be longer than the IPv4 total length: an MX PDU carries its trailer, or further
//! concatenated SDUs, after the IP packet (draft-04 §4.2.1, §4.2.3), so `new_checked` only
//! requires `total_len <= buffer length`.

use std::net::Ipv4Addr;

use super::checksum;
use super::{Error, Result};
use crate::drop::DropReason;

/// Length of the IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// IANA protocol number of ICMP.
pub const PROTOCOL_ICMP: u8 = 1;
/// IANA protocol number of TCP.
pub const PROTOCOL_TCP: u8 = 6;
/// IANA protocol number of UDP.
pub const PROTOCOL_UDP: u8 = 17;
/// IANA protocol number of GRE.
pub const PROTOCOL_GRE: u8 = 47;
/// IANA protocol number of ESP.
pub const PROTOCOL_ESP: u8 = 50;
/// IANA protocol number of AH.
pub const PROTOCOL_AH: u8 = 51;
/// IANA protocol number of ICMPv6.
pub const PROTOCOL_ICMPV6: u8 = 58;
/// Protocol number an MX PDU's IP header carries (draft-04 §4.2.1: "any 0-hop protocol", 114).
pub const PROTOCOL_MX: u8 = 114;

/// Byte layout (RFC 791 §3.1), kept in one table.
mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1FFF;

/// A read/write view of an IPv4 packet in a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Accessors may panic on a buffer that
    /// [`Packet::check_len`] rejects; use this only for buffers you are about to `emit` into.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`]; every accessor is then panic-free.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates everything the accessors rely on (RFC 791 §3.1): at least 20 bytes, version 4,
    /// 5 <= IHL and IHL*4 <= buffer, header length <= total length <= buffer length.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::new(DropReason::Truncated, "ipv4 header", data.len()));
        }
        if data[field::VER_IHL] >> 4 != 4 {
            return Err(Error::new(DropReason::IpVersion, "version", field::VER_IHL));
        }
        let hlen = usize::from(data[field::VER_IHL] & 0x0F) * 4;
        if hlen < HEADER_LEN || hlen > data.len() {
            return Err(Error::new(
                DropReason::Ipv4HeaderLength,
                "ihl",
                field::VER_IHL,
            ));
        }
        let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if total < hlen || total > data.len() {
            return Err(Error::new(
                DropReason::Ipv4TotalLength,
                "total_length",
                field::LENGTH.start,
            ));
        }
        Ok(())
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole underlying buffer (may extend past `total_len`).
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[r];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Version field (4 after `new_checked`).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0F) * 4
    }

    /// Differentiated Services Code Point (RFC 2474), the high 6 bits of the former TOS octet.
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit Congestion Notification (RFC 3168), the low 2 bits of the former TOS octet.
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length in bytes (header and payload, not any MX trailer after it).
    pub fn total_len(&self) -> usize {
        usize::from(self.u16_at(field::LENGTH))
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-octet units).
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this is an IP fragment (MF set or non-zero offset, RFC 791 §3.2).
    pub fn is_fragment(&self) -> bool {
        self.u16_at(field::FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol field (the next header).
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// The header (options included).
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// Options bytes (between byte 20 and IHL*4), unparsed.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Payload: from IHL*4 to the total length (excludes anything after the IP packet).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }

    /// Whether the header checksum verifies (RFC 791 §3.1, RFC 1071): the sum over the whole
    /// header, options and checksum field included, is 0xFFFF.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    /// Mutable access to the whole underlying buffer.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the version nibble.
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0F) | (v << 4);
    }

    /// Sets the header length in bytes (stored as IHL = len / 4).
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xF0) | ((len / 4) as u8 & 0x0F);
    }

    /// Sets the DSCP (6 bits).
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (dscp << 2);
    }

    /// Sets the ECN field (2 bits).
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xFC) | (ecn & 0x03);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        self.set_u16_at(field::LENGTH, len)
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, id: u16) {
        self.set_u16_at(field::IDENT, id)
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, v: bool) {
        let w = self.u16_at(field::FLG_OFF);
        self.set_u16_at(field::FLG_OFF, if v { w | FLAG_DF } else { w & !FLAG_DF })
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, v: bool) {
        let w = self.u16_at(field::FLG_OFF);
        self.set_u16_at(field::FLG_OFF, if v { w | FLAG_MF } else { w & !FLAG_MF })
    }

    /// Sets the fragment offset in bytes (a multiple of 8; the low 3 bits are dropped).
    pub fn set_frag_offset(&mut self, offset_bytes: u16) {
        let w = self.u16_at(field::FLG_OFF) & !FRAG_OFFSET_MASK;
        self.set_u16_at(field::FLG_OFF, w | ((offset_bytes >> 3) & FRAG_OFFSET_MASK))
    }

    /// Sets the time to live.
    pub fn set_hop_limit(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl
    }

    /// Sets the protocol field.
    pub fn set_next_header(&mut self, p: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = p
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        self.set_u16_at(field::CHECKSUM, c)
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets())
    }

    /// Recomputes the header checksum over the whole header (options included).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c)
    }

    /// Options bytes, mutable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..h]
    }

    /// Payload (header_len..total_len), mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[h..t]
    }

    /// Sets the protocol and patches the checksum with RFC 1624 eqn. 3 instead of recomputing it
    /// (draft-04 §4.2.1: the MX sender rewrites the protocol to 114). The protocol shares a 16-bit
    /// word with the TTL.
    pub fn set_next_header_incremental(&mut self, p: u8) {
        let ttl = self.hop_limit();
        let old = u16::from_be_bytes([ttl, self.next_header()]);
        let new = u16::from_be_bytes([ttl, p]);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_next_header(p);
        self.set_checksum(c)
    }

    /// Sets the TTL and patches the checksum (RFC 1624 eqn. 3).
    pub fn set_hop_limit_incremental(&mut self, ttl: u8) {
        let p = self.next_header();
        let old = u16::from_be_bytes([self.hop_limit(), p]);
        let new = u16::from_be_bytes([ttl, p]);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_hop_limit(ttl);
        self.set_checksum(c)
    }

    /// Sets the total length and patches the checksum (RFC 1624 eqn. 3; draft-04 §4.2.1: the
    /// total length grows by the trailer).
    pub fn set_total_len_incremental(&mut self, len: u16) {
        let c = checksum::update16(self.checksum(), self.u16_at(field::LENGTH), len);
        self.set_total_len(len);
        self.set_checksum(c)
    }

    /// Sets the source address and patches the checksum (RFC 1624; client NAT, draft-04 §4.1).
    pub fn set_src_addr_incremental(&mut self, a: Ipv4Addr) {
        let c = checksum::update32(self.checksum(), self.src_addr().into(), a.into());
        self.set_src_addr(a);
        self.set_checksum(c)
    }

    /// Sets the destination address and patches the checksum (RFC 1624; client NAT).
    pub fn set_dst_addr_incremental(&mut self, a: Ipv4Addr) {
        let c = checksum::update32(self.checksum(), self.dst_addr().into(), a.into());
        self.set_dst_addr(a);
        self.set_checksum(c)
    }
}

/// A validated, option-less IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    /// Protocol field.
    pub next_header: u8,
    /// Payload length (total length - header length).
    pub payload_len: usize,
    /// TTL.
    pub hop_limit: u8,
    pub dscp: u8,
    pub ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Repr {
    /// Parses a header. Options are skipped (and not kept; `emit` writes none). Fragments are
    /// rejected with [`DropReason::Ipv4Fragment`] because a `Repr` cannot describe them and the MX
    /// layer carries whole IP packets (draft-04 §4.2.2 fragments at the MX layer instead).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        verify_checksum: bool,
    ) -> Result<Repr> {
        packet.check_len()?;
        if verify_checksum && !packet.verify_checksum() {
            return Err(Error::new(
                DropReason::Ipv4Checksum,
                "checksum",
                field::CHECKSUM.start,
            ));
        }
        if packet.is_fragment() {
            return Err(Error::new(
                DropReason::Ipv4Fragment,
                "flags_fragment_offset",
                field::FLG_OFF.start,
            ));
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            // check_len guarantees total_len >= header_len.
            payload_len: packet.total_len() - packet.header_len(),
            hop_limit: packet.hop_limit(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Length of the emitted header (no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header (no options, not a fragment) and fills its checksum.
    ///
    /// The buffer must hold at least [`Repr::buffer_len`] bytes, and `payload_len` must be at most
    /// 65515 (a caller bug otherwise; the total length saturates at 65535).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        let total = u16::try_from(HEADER_LEN.saturating_add(self.payload_len)).unwrap_or(u16::MAX);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.set_u16_at(field::FLG_OFF, if self.dont_frag { FLAG_DF } else { 0 });
        packet.set_hop_limit(self.hop_limit);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// First 24 bytes of vector `single-0` (/work/shared/vectors/mx-public.jsonl): a real MX PDU
    /// header, protocol 114, total length 122, checksum 0x660f.
    const VECTOR: [u8; 24] = [
        0x45, 0x00, 0x00, 0x7a, 0x00, 0x01, 0x00, 0x00, 0x40, 0x72, 0x66, 0x0f, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0xf6, 0xa7, 0x14, 0x51,
    ];

    fn vector_packet() -> Vec<u8> {
        let mut v = VECTOR.to_vec();
        v.resize(122, 0xAB);
        v
    }

    fn sample_repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            next_header: PROTOCOL_UDP,
            payload_len: 12,
            hop_limit: 64,
            dscp: 46,
            ecn: 1,
            ident: 0xBEEF,
            dont_frag: true,
        }
    }

    fn emitted(repr: &Repr, extra: usize) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_LEN + repr.payload_len + extra];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
        buf
    }

    #[test]
    fn rfc791_parses_real_header() {
        let buf = vector_packet();
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 122);
        assert_eq!(p.ident(), 1);
        assert!(!p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.next_header(), PROTOCOL_MX);
        assert_eq!(p.checksum(), 0x660f);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 102);
        assert_eq!(&p.payload()[..4], &[0xf6, 0xa7, 0x14, 0x51]);
        let r = Repr::parse(&p, true).unwrap();
        assert_eq!(r.payload_len, 102);
    }

    #[test]
    fn rfc791_checksum_failure_is_ipv4_checksum() {
        let mut buf = vector_packet();
        buf[8] = 63; // TTL changed, checksum not updated
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(!p.verify_checksum());
        let e = Repr::parse(&p, true).unwrap_err();
        assert_eq!(e.reason, DropReason::Ipv4Checksum);
        assert_eq!(e.offset, 10);
        // Without verification the header parses.
        assert!(Repr::parse(&p, false).is_ok());
    }

    #[test]
    fn rfc791_short_buffer_is_truncated() {
        let e = Packet::new_checked(&VECTOR[..19]).unwrap_err();
        assert_eq!(e.reason, DropReason::Truncated);
        assert_eq!(
            Packet::new_checked(&[][..]).unwrap_err().reason,
            DropReason::Truncated
        );
    }

    #[test]
    fn rfc791_version_must_be_4() {
        let mut buf = vector_packet();
        buf[0] = 0x65;
        let e = Packet::new_checked(&buf[..]).unwrap_err();
        assert_eq!(
            (e.reason, e.field, e.offset),
            (DropReason::IpVersion, "version", 0)
        );
    }

    #[test]
    fn rfc791_ihl_at_least_5() {
        let mut buf = vector_packet();
        buf[0] = 0x44;
        let e = Packet::new_checked(&buf[..]).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv4HeaderLength, 0));
    }

    #[test]
    fn rfc791_ihl_within_buffer() {
        let mut buf = VECTOR.to_vec();
        buf[0] = 0x46; // 24 bytes of header: fits exactly
        buf[3] = 24;
        assert!(Packet::new_checked(&buf[..]).is_ok());
        buf[0] = 0x47; // 28 bytes: beyond the 24-byte buffer
        buf[3] = 24;
        let e = Packet::new_checked(&buf[..]).unwrap_err();
        assert_eq!(e.reason, DropReason::Ipv4HeaderLength);
    }

    #[test]
    fn rfc791_total_length_at_least_header_len() {
        let mut buf = vector_packet();
        buf[2] = 0;
        buf[3] = 19;
        let e = Packet::new_checked(&buf[..]).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv4TotalLength, 2));
        buf[0] = 0x46;
        buf[3] = 23; // < IHL*4 = 24
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err().reason,
            DropReason::Ipv4TotalLength
        );
    }

    #[test]
    fn rfc791_total_length_within_buffer() {
        let buf = vector_packet();
        let e = Packet::new_checked(&buf[..121]).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv4TotalLength, 2));
    }

    #[test]
    fn s4_2_1_buffer_longer_than_total_length_is_valid() {
        // draft-04 §4.2.1/§4.2.3: a trailer or further SDUs follow the IP packet.
        let mut buf = vector_packet();
        buf.extend_from_slice(&[0x11, 0x90, 0x02, 0x01]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 102);
        assert_eq!(p.as_bytes().len(), 126);
    }

    #[test]
    fn rfc791_options_are_skipped() {
        let r = sample_repr();
        let mut buf = vec![0u8; 24 + r.payload_len];
        {
            let mut p = Packet::new_unchecked(&mut buf[..]);
            r.emit(&mut p);
            // Turn it into a header with one 4-byte option (NOP NOP NOP EOL).
            p.set_header_len(24);
            p.set_total_len(24 + r.payload_len as u16);
            p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
            p.payload_mut().fill(0x5A);
            p.fill_checksum();
        }
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[0x5A; 12][..]);
        assert!(p.verify_checksum());
        let parsed = Repr::parse(&p, true).unwrap();
        assert_eq!(parsed, r);
    }

    #[test]
    fn rfc791_s3_2_fragments_rejected_by_repr() {
        let r = sample_repr();
        let mut buf = emitted(&r, 0);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_more_frags(true);
        p.fill_checksum();
        assert!(p.is_fragment());
        let e = Repr::parse(&Packet::new_checked(&buf[..]).unwrap(), true).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv4Fragment, 6));

        let mut buf = emitted(&r, 0);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_frag_offset(1480);
        p.fill_checksum();
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert!(p.is_fragment());
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).unwrap(), true)
                .unwrap_err()
                .reason,
            DropReason::Ipv4Fragment
        );
    }

    #[test]
    fn s4_2_1_incremental_setters_match_recompute() {
        // draft-04 §4.2.1: protocol -> 114, total length += trailer; checksum patched.
        let mut buf = vector_packet();
        buf.extend_from_slice(&[0; 8]);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_next_header_incremental(PROTOCOL_UDP);
        assert!(p.verify_checksum());
        p.set_total_len_incremental(130);
        assert!(p.verify_checksum());
        p.set_src_addr_incremental(Ipv4Addr::new(100, 64, 3, 9));
        assert!(p.verify_checksum());
        p.set_dst_addr_incremental(Ipv4Addr::new(255, 255, 255, 255));
        assert!(p.verify_checksum());
        p.set_hop_limit_incremental(1);
        assert!(p.verify_checksum());
        let patched = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), patched);
        assert_eq!(p.total_len(), 130);
        assert_eq!(p.next_header(), PROTOCOL_UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(100, 64, 3, 9));
    }

    #[test]
    fn rfc2474_rfc3168_dscp_ecn_are_independent() {
        let mut buf = emitted(&sample_repr(), 0);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_ecn(3);
        assert_eq!((p.dscp(), p.ecn()), (46, 3));
        p.set_dscp(10);
        assert_eq!((p.dscp(), p.ecn()), (10, 3));
    }

    fn repr_strategy() -> impl Strategy<Value = Repr> {
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..200,
            any::<u8>(),
            0u8..64,
            0u8..4,
            any::<u16>(),
            any::<bool>(),
        )
            .prop_map(|(s, d, nh, pl, ttl, dscp, ecn, ident, df)| Repr {
                src_addr: s.into(),
                dst_addr: d.into(),
                next_header: nh,
                payload_len: pl,
                hop_limit: ttl,
                dscp,
                ecn,
                ident,
                dont_frag: df,
            })
    }

    proptest! {
        #[test]
        fn repr_round_trip(r in repr_strategy(), extra in 0usize..16) {
            let buf = emitted(&r, extra);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Repr::parse(&p, true).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..80), verify in any::<bool>()) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (p.version(), p.header_len(), p.dscp(), p.ecn(), p.total_len(), p.ident());
                let _ = (p.dont_frag(), p.more_frags(), p.frag_offset(), p.hop_limit());
                let _ = (p.next_header(), p.checksum(), p.src_addr(), p.dst_addr());
                let _ = (p.options(), p.payload(), p.verify_checksum(), p.is_fragment());
                let _ = Repr::parse(&p, verify);
            }
            // Also parse from an unchecked view: Repr::parse validates itself.
            let _ = Repr::parse(&Packet::new_unchecked(&data[..]), verify);
        }

        #[test]
        fn parse_never_panics_near_valid(mut buf in Just(vector_packet()), i in 0usize..24, b in any::<u8>(), cut in 0usize..130) {
            buf[i] = b;
            buf.truncate(cut);
            if let Ok(p) = Packet::new_checked(&buf[..]) {
                let _ = (p.options(), p.payload(), p.verify_checksum());
                let _ = Repr::parse(&p, true);
            }
        }

        #[test]
        fn incremental_setters_equal_recompute(r in repr_strategy(), p in any::<u8>(), len in 20u16..220, s in any::<[u8; 4]>(), d in any::<[u8; 4]>()) {
            let mut buf = emitted(&r, 220);
            let mut pk = Packet::new_unchecked(&mut buf[..]);
            pk.set_next_header_incremental(p);
            pk.set_total_len_incremental(len);
            pk.set_src_addr_incremental(s.into());
            pk.set_dst_addr_incremental(d.into());
            let inc = pk.checksum();
            pk.fill_checksum();
            prop_assert_eq!(inc, pk.checksum());
        }
    }
}

//! IPv6 fixed header (RFC 8200 §3): a zero-copy [`Packet`] view, a validated [`Repr`], and the
//! extension-header walk that finds the upper-layer protocol (RFC 8200 §4).
//!
//! As for IPv4, the buffer may be longer than 40 + payload length: an MX trailer or further
//! concatenated SDUs follow the IP packet (draft-04 §4.2.1, §4.2.3).

use std::net::Ipv6Addr;

use super::{Error, Result};
use crate::drop::DropReason;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Hop-by-Hop Options header (RFC 8200 §4.3).
pub const NH_HOP_BY_HOP: u8 = 0;
/// Routing header (RFC 8200 §4.4).
pub const NH_ROUTING: u8 = 43;
/// Fragment header (RFC 8200 §4.5).
pub const NH_FRAGMENT: u8 = 44;
/// Encapsulating Security Payload (RFC 4303): opaque, ends the walk.
pub const NH_ESP: u8 = 50;
/// Authentication Header (RFC 4302).
pub const NH_AH: u8 = 51;
/// No Next Header (RFC 8200 §4.7): ends the walk.
pub const NH_NO_NEXT_HEADER: u8 = 59;
/// Destination Options header (RFC 8200 §4.6).
pub const NH_DEST_OPTS: u8 = 60;

/// Most extension headers the walk follows before giving up. RFC 8200 §4.1 recommends one of each
/// (Destination Options at most twice): 8 covers that order with room to spare, and bounds the
/// work an attacker can cause per packet.
pub const MAX_EXT_HEADERS: usize = 8;
/// Most bytes of extension headers the walk accepts (RFC 8504 §5.3 lets hosts cap the chain).
/// AMBIGUITY (RFC 8504 §5.3 gives no number): 2048 bytes, well above any real chain.
pub const MAX_EXT_BYTES: usize = 2048;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// Where the upper-layer header starts, as found by [`Packet::upper_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol number (ESP 50 and No Next Header 59 are reported as such).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// Offset of the byte that holds `protocol` (6 when there are no extension headers), so that
    /// the MX layer can rewrite it to 114 (draft-04 §4.2.1).
    pub next_header_field_offset: usize,
}

/// A read/write view of an IPv6 packet in a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
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

    /// RFC 8200 §3: at least the 40-byte fixed header, version 6, payload length within the
    /// buffer.
    ///
    /// AMBIGUITY (RFC 2675 jumbograms): a payload length of 0 is taken literally (an empty
    /// payload); jumbograms cannot occur on our links (MTU < 64 KiB) and are not supported.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::new(DropReason::Truncated, "ipv6 header", data.len()));
        }
        if data[0] >> 4 != 6 {
            return Err(Error::new(DropReason::IpVersion, "version", 0));
        }
        let plen = usize::from(u16::from_be_bytes([data[4], data[5]]));
        if plen > data.len() - HEADER_LEN {
            return Err(Error::new(
                DropReason::Ipv6PayloadLength,
                "payload_length",
                field::PAYLOAD_LEN.start,
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

    fn word0(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Version (6 after `new_checked`).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic Class octet (DSCP << 2 | ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    /// DSCP, the high 6 bits of the Traffic Class (RFC 2474).
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN, the low 2 bits of the Traffic Class (RFC 3168).
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000F_FFFF
    }

    /// Payload length (everything after the fixed header, extension headers included).
    pub fn payload_len(&self) -> usize {
        let d = &self.buffer.as_ref()[field::PAYLOAD_LEN];
        usize::from(u16::from_be_bytes([d[0], d[1]]))
    }

    /// 40 + payload length: the IP packet's length in the buffer.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Next Header field of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(a)
    }

    /// Payload: 40..40 + payload length (extension headers included; excludes anything after).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// Walks the extension-header chain (RFC 8200 §4) to the upper-layer header.
    ///
    /// Follows Hop-by-Hop (only directly after the fixed header, RFC 8200 §4.1), Routing,
    /// Fragment (fixed 8 bytes, §4.5), Destination Options and AH (length in 4-octet units + 2,
    /// RFC 4302 §2.2). ESP, No Next Header and anything else end the walk and are reported as the
    /// protocol. The walk passes through a Fragment header: for a non-first fragment the
    /// "upper layer" is then the middle of the original payload. At most [`MAX_EXT_HEADERS`]
    /// headers and [`MAX_EXT_BYTES`] bytes, all within the payload length; otherwise
    /// [`DropReason::Ipv6ExtensionHeader`] at the offending header's offset.
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        let data = self.buffer.as_ref();
        let end = self.total_len();
        let mut nh_off = field::NEXT_HEADER;
        let mut next = data[nh_off];
        let mut off = HEADER_LEN;
        let mut count = 0usize;
        loop {
            let hdr_len = match next {
                NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS | NH_AH | NH_FRAGMENT => {
                    if next == NH_HOP_BY_HOP && off != HEADER_LEN {
                        // RFC 8200 §4.1: Hop-by-Hop is restricted to appear immediately after
                        // the IPv6 header.
                        return Err(ext_err("hop_by_hop_position", off));
                    }
                    if count == MAX_EXT_HEADERS {
                        return Err(ext_err("too_many_extension_headers", off));
                    }
                    // Every extension header starts with Next Header and a length octet.
                    let len_octet = match data.get(off + 1) {
                        Some(&b) if off + 2 <= end => usize::from(b),
                        _ => return Err(ext_err("extension_header", off)),
                    };
                    match next {
                        NH_FRAGMENT => 8,
                        // RFC 4302 §2.2: Payload Len in 32-bit words, minus 2.
                        NH_AH => (len_octet + 2) * 4,
                        // RFC 8200 §4.3-§4.6: Hdr Ext Len in 8-octet units, not counting the
                        // first 8 octets.
                        _ => (len_octet + 1) * 8,
                    }
                }
                _ => {
                    return Ok(UpperLayer {
                        protocol: next,
                        offset: off,
                        next_header_field_offset: nh_off,
                    })
                }
            };
            let new_off = off + hdr_len; // both < 2^17: no overflow
            if new_off > end {
                return Err(ext_err("hdr_ext_len", off + 1));
            }
            if new_off - HEADER_LEN > MAX_EXT_BYTES {
                return Err(ext_err("extension_headers_too_long", off));
            }
            nh_off = off;
            next = data[off];
            off = new_off;
            count += 1;
        }
    }
}

fn ext_err(field: &'static str, offset: usize) -> Error {
    Error::new(DropReason::Ipv6ExtensionHeader, field, offset)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_word0(&mut self, w: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes())
    }

    /// Mutable access to the whole underlying buffer.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Sets the version nibble.
    pub fn set_version(&mut self, v: u8) {
        let w = (self.word0() & 0x0FFF_FFFF) | (u32::from(v & 0x0F) << 28);
        self.set_word0(w)
    }

    /// Sets the Traffic Class octet.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let w = (self.word0() & 0xF00F_FFFF) | (u32::from(tc) << 20);
        self.set_word0(w)
    }

    /// Sets the DSCP (6 bits), keeping the ECN.
    pub fn set_dscp(&mut self, dscp: u8) {
        let tc = (self.traffic_class() & 0x03) | (dscp << 2);
        self.set_traffic_class(tc)
    }

    /// Sets the ECN (2 bits), keeping the DSCP.
    pub fn set_ecn(&mut self, ecn: u8) {
        let tc = (self.traffic_class() & 0xFC) | (ecn & 0x03);
        self.set_traffic_class(tc)
    }

    /// Sets the flow label (low 20 bits of `fl`).
    pub fn set_flow_label(&mut self, fl: u32) {
        let w = (self.word0() & 0xFFF0_0000) | (fl & 0x000F_FFFF);
        self.set_word0(w)
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&len.to_be_bytes())
    }

    /// Sets the Next Header field of the fixed header.
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = nh
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets())
    }

    /// Payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..t]
    }
}

/// A validated IPv6 fixed header (extension headers, if any, are part of the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    /// Next Header of the fixed header.
    pub next_header: u8,
    /// Payload length (extension headers included).
    pub payload_len: usize,
    pub hop_limit: u8,
    /// Traffic Class octet (DSCP << 2 | ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Parses the fixed header (validating it first; no checksum in IPv6).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Length of the emitted header.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte fixed header. The buffer must hold [`Repr::buffer_len`] bytes;
    /// `payload_len` must fit in 16 bits (a caller bug otherwise; it saturates).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX));
        packet.set_word0(
            (6 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000F_FFFF),
        );
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn repr(next_header: u8, payload_len: usize) -> Repr {
        Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8:ffff::2".parse().unwrap(),
            next_header,
            payload_len,
            hop_limit: 64,
            traffic_class: 0xB9,
            flow_label: 0xABCDE,
        }
    }

    /// A packet whose chain is `exts` (each: (its own next header, raw bytes)) then `upper` with
    /// `upper_len` payload bytes.
    fn chain(first: u8, exts: &[Vec<u8>], upper_len: usize) -> Vec<u8> {
        let ext_len: usize = exts.iter().map(Vec::len).sum();
        let r = repr(first, ext_len + upper_len);
        let mut buf = vec![0u8; HEADER_LEN];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        for e in exts {
            buf.extend_from_slice(e);
        }
        buf.resize(HEADER_LEN + ext_len + upper_len, 0xEE);
        buf
    }

    fn ext(next: u8, hdr_ext_len: u8) -> Vec<u8> {
        let mut v = vec![0u8; (usize::from(hdr_ext_len) + 1) * 8];
        v[0] = next;
        v[1] = hdr_ext_len;
        v
    }

    fn frag(next: u8) -> Vec<u8> {
        vec![next, 0, 0, 0, 0, 0, 0, 1]
    }

    fn ah(next: u8, payload_len: u8) -> Vec<u8> {
        let mut v = vec![0u8; (usize::from(payload_len) + 2) * 4];
        v[0] = next;
        v[1] = payload_len;
        v
    }

    #[test]
    fn rfc8200_s3_fixed_header_fields() {
        let buf = chain(17, &[], 8);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xB9);
        assert_eq!((p.dscp(), p.ecn()), (0xB9 >> 2, 1));
        assert_eq!(p.flow_label(), 0xABCDE);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.total_len(), 48);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            p.dst_addr(),
            "2001:db8:ffff::2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(p.payload(), &[0xEE; 8][..]);
        // Hand-checked first word: 6 | TC 0xB9 | FL 0xABCDE.
        assert_eq!(&buf[..4], &[0x6B, 0x9A, 0xBC, 0xDE]);
    }

    #[test]
    fn rfc8200_s3_short_buffer_is_truncated() {
        let buf = chain(17, &[], 0);
        let e = Packet::new_checked(&buf[..39]).unwrap_err();
        assert_eq!(e.reason, DropReason::Truncated);
    }

    #[test]
    fn rfc8200_s3_version_must_be_6() {
        let mut buf = chain(17, &[], 0);
        buf[0] = 0x4B;
        let e = Packet::new_checked(&buf[..]).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::IpVersion, 0));
    }

    #[test]
    fn rfc8200_s3_payload_length_within_buffer() {
        let buf = chain(17, &[], 10);
        let e = Packet::new_checked(&buf[..49]).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv6PayloadLength, 4));
    }

    #[test]
    fn s4_2_1_buffer_longer_than_payload_is_valid() {
        let mut buf = chain(17, &[], 10);
        buf.extend_from_slice(&[1, 2, 3, 0x90]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 10);
        assert_eq!(p.upper_layer().unwrap().offset, 40);
    }

    #[test]
    fn rfc8200_s4_no_extension_headers() {
        let buf = chain(6, &[], 20);
        let u = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(
            u,
            UpperLayer {
                protocol: 6,
                offset: 40,
                next_header_field_offset: 6
            }
        );
    }

    #[test]
    fn rfc8200_s4_walks_full_chain() {
        // HBH(16) -> DestOpts(8) -> Routing(24) -> Fragment(8) -> AH(12) -> UDP
        let exts = [
            ext(NH_DEST_OPTS, 1),
            ext(NH_ROUTING, 0),
            ext(NH_FRAGMENT, 2),
            frag(NH_AH),
            ah(17, 1),
        ];
        let buf = chain(NH_HOP_BY_HOP, &exts, 8);
        let u = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        let ah_off = 40 + 16 + 8 + 24 + 8;
        assert_eq!(
            u,
            UpperLayer {
                protocol: 17,
                offset: ah_off + 12,
                next_header_field_offset: ah_off
            }
        );
        assert_eq!(buf[u.next_header_field_offset], 17);
    }

    #[test]
    fn rfc4303_esp_ends_walk() {
        let buf = chain(NH_DEST_OPTS, &[ext(NH_ESP, 0)], 16);
        let u = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(
            (u.protocol, u.offset, u.next_header_field_offset),
            (50, 48, 40)
        );
    }

    #[test]
    fn rfc8200_s4_7_no_next_header_ends_walk() {
        let buf = chain(NH_NO_NEXT_HEADER, &[], 4);
        let u = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!((u.protocol, u.offset), (59, 40));
    }

    #[test]
    fn rfc8200_s4_1_hop_by_hop_only_first() {
        let buf = chain(NH_DEST_OPTS, &[ext(NH_HOP_BY_HOP, 0), ext(17, 0)], 0);
        let e = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv6ExtensionHeader, 48));
    }

    #[test]
    fn rfc8200_s4_chain_beyond_payload_is_malformed() {
        // Routing header announcing 16 bytes, only 8 in the payload (trailing buffer bytes
        // beyond the payload length do not count).
        let mut buf = chain(NH_ROUTING, &[ext(17, 0)], 0);
        buf[41] = 1;
        buf.extend_from_slice(&[0; 16]);
        let e = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv6ExtensionHeader, 41));
        // Extension header announced but no bytes left for it at all.
        let buf = chain(NH_DEST_OPTS, &[], 1);
        let e = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv6ExtensionHeader, 40));
        // Fragment header cut short.
        let buf = chain(NH_DEST_OPTS, &[ext(NH_FRAGMENT, 0)], 4);
        let e = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv6ExtensionHeader, 49));
    }

    #[test]
    fn walk_bounded_in_count() {
        let mut exts: Vec<Vec<u8>> = (0..MAX_EXT_HEADERS - 1)
            .map(|_| ext(NH_DEST_OPTS, 0))
            .collect();
        exts.push(ext(17, 0));
        let buf = chain(NH_DEST_OPTS, &exts, 0);
        let u = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(u.offset, 40 + 8 * MAX_EXT_HEADERS);
        let mut exts: Vec<Vec<u8>> = (0..MAX_EXT_HEADERS).map(|_| ext(NH_DEST_OPTS, 0)).collect();
        exts.push(ext(17, 0));
        let buf = chain(NH_DEST_OPTS, &exts, 0);
        let e = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap_err();
        assert_eq!(e.reason, DropReason::Ipv6ExtensionHeader);
        assert_eq!(e.offset, 40 + 8 * MAX_EXT_HEADERS);
    }

    #[test]
    fn walk_bounded_in_bytes() {
        // Two 2040-byte Destination Options headers: 4080 > MAX_EXT_BYTES.
        let buf = chain(NH_DEST_OPTS, &[ext(NH_DEST_OPTS, 254), ext(17, 254)], 0);
        let e = Packet::new_checked(&buf[..])
            .unwrap()
            .upper_layer()
            .unwrap_err();
        assert_eq!(
            (e.reason, e.offset),
            (DropReason::Ipv6ExtensionHeader, 40 + 2040)
        );
        let buf = chain(NH_DEST_OPTS, &[ext(17, 254)], 0);
        assert!(Packet::new_checked(&buf[..]).unwrap().upper_layer().is_ok());
    }

    #[test]
    fn setters_keep_neighbouring_bits() {
        let mut buf = chain(17, &[], 0);
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_dscp(0x15);
        assert_eq!(
            (p.dscp(), p.ecn(), p.flow_label(), p.version()),
            (0x15, 1, 0xABCDE, 6)
        );
        p.set_ecn(2);
        p.set_flow_label(0xFFF_FFFF);
        assert_eq!(
            (p.dscp(), p.ecn(), p.flow_label(), p.version()),
            (0x15, 2, 0xFFFFF, 6)
        );
        p.set_version(4);
        assert_eq!((p.version(), p.traffic_class()), (4, 0x15 << 2 | 2));
    }

    fn repr_strategy() -> impl Strategy<Value = Repr> {
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u8>(),
            0usize..100,
            any::<u8>(),
            any::<u8>(),
            0u32..(1 << 20),
        )
            .prop_map(|(s, d, nh, pl, hl, tc, fl)| Repr {
                src_addr: s.into(),
                dst_addr: d.into(),
                next_header: nh,
                payload_len: pl,
                hop_limit: hl,
                traffic_class: tc,
                flow_label: fl,
            })
    }

    proptest! {
        #[test]
        fn repr_round_trip(r in repr_strategy(), extra in 0usize..8) {
            let mut buf = vec![0u8; HEADER_LEN + r.payload_len + extra];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let _ = (p.traffic_class(), p.flow_label(), p.payload_len(), p.next_header());
                let _ = (p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload());
                let _ = p.upper_layer();
                let _ = Repr::parse(&p);
            }
            let _ = Repr::parse(&Packet::new_unchecked(&data[..]));
        }

        #[test]
        fn walk_never_panics_and_stays_in_bounds(
            first in prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(60), any::<u8>()],
            body in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(60), Just(17), any::<u8>()], 0..200),
            trailing in 0usize..16,
        ) {
            let mut buf = chain(first, &[], body.len());
            buf[40..].copy_from_slice(&body);
            buf.resize(buf.len() + trailing, 0);
            let p = Packet::new_checked(&buf[..]).unwrap();
            if let Ok(u) = p.upper_layer() {
                prop_assert!(u.offset <= p.total_len());
                prop_assert!(u.next_header_field_offset < u.offset);
                prop_assert_eq!(buf[u.next_header_field_offset], u.protocol);
            }
        }
    }
}

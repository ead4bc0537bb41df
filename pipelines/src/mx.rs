//! MX data PDUs (draft-04 §4.2): how a receiver finds the trailer and the SDUs of a PDU
//! ([`MxPdu`]), and the transforms that add and strip the trailer with the §4.2.1 IP-header
//! rules ([`add_trailer`], [`strip_trailer`]).
//!
//! Two layouts exist (`WIRE.md`, "IP header rules"):
//! * default (IPsec, client NAT, pass-through, UDP tunnel without header optimization): the
//!   first SDU's IP header is rewritten: protocol 114, total length covering the whole PDU
//!   (all SDUs and the trailer), fresh checksum; the trailer's Next Header keeps the original
//!   protocol, so it is mandatory;
//! * UDP tunnel with "MX header optimization": the IP header stays byte for byte; the trailer
//!   (if negotiated) follows the SDUs and concatenated SDUs are found from the IP length.
//!
//! AMBIGUITY (§4.2.2 vs §4.2.1): fragments always use the default layout: the fragmentation text
//! requires protocol 114 and the fragment's own length in every fragment's IP header, whatever
//! the adaptation, so a header-optimized connection still sends rewritten headers for fragments.
//! "The fragment's own length" includes the trailer, as the IP length does in the default layout.
//!
//! AMBIGUITY (§4.2.1, IPv6): the draft speaks of IPv4's "Protocol Type"; for IPv6 we rewrite
//! the Next Header byte that names the upper-layer protocol (the last one of the extension
//! chain) to 114 and grow the Payload Length; IPv6 has no header checksum.

use crate::buf::PacketBuf;
use crate::drop::DropReason;
use crate::wire::ip::{self, IpPacket};
use crate::wire::mx_trailer::{self, FragmentControl, MxTrailer, TrailerFields};
use crate::wire::{ipv4, Error, Result};

/// IP protocol number announcing an MX trailer (draft-04 §4.2.1).
pub const PROTOCOL_MX: u8 = ipv4::PROTOCOL_MX;

/// How to read a data PDU received on one delivery connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PduOptions {
    /// UDP tunnel with "MX header optimization" (draft-04 §4.2.1, §4.2.3).
    pub header_optimization: bool,
    /// The trailer fields negotiated for this connection and direction. `None`: accept whatever
    /// the flags octet announces (a decoder with no session knowledge). `Some(NONE)` under
    /// header optimization: no trailer at all ("the entire MX trailer MAY not be present",
    /// §4.2.3).
    pub trailer_fields: Option<TrailerFields>,
}

/// One SDU inside a PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SduSpan {
    /// Offset of the SDU's IP header from the start of the PDU.
    pub offset: usize,
    /// Its original length (IP total length once restored).
    pub len: usize,
    /// Its upper-layer protocol (for the first SDU of a default-layout PDU, Next Header).
    pub protocol: u8,
    /// Its sequence number (§4.2.3: the trailer SN is the last SDU's), when the trailer has one.
    pub sequence_number: Option<u16>,
}

/// A parsed MX data PDU. Every length has been checked: the SDU spans tile the payload exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxPdu<'a> {
    /// The PDU: the first `IP total length` bytes (default layout) or the whole input (header
    /// optimization). Bytes past it (e.g. Ethernet padding) are not part of the PDU.
    pub bytes: &'a [u8],
    /// The IP header at the start of the PDU, as received.
    pub ip: IpPacket<'a>,
    /// The trailer, if any.
    pub trailer: Option<MxTrailer>,
    /// Bytes before the trailer: the SDUs, or the fragment (IP header + piece).
    pub payload_len: usize,
    /// True for the default layout (protocol 114), false for header optimization.
    pub rewritten_header: bool,
    /// The original upper-layer protocol of the first SDU.
    pub first_protocol: u8,
    /// The original length of the first SDU (for a fragment: header + piece).
    pub first_sdu_len: usize,
    /// Number of SDUs (0 for a fragment).
    pub sdu_count: usize,
}

impl<'a> MxPdu<'a> {
    /// Parses a data PDU that starts at its IP header.
    pub fn parse(data: &'a [u8], opts: PduOptions) -> Result<MxPdu<'a>> {
        let ip = IpPacket::new_checked(data)?;
        let upper = ip.upper_layer()?;
        if upper.protocol == PROTOCOL_MX {
            Self::parse_rewritten(ip, upper.offset, opts)
        } else if opts.header_optimization {
            Self::parse_optimized(ip, upper.protocol, opts)
        } else {
            Err(Error::new(
                DropReason::NotMxPdu,
                "protocol",
                upper.next_header_field_offset,
            ))
        }
    }

    /// Default layout: protocol 114, total length over the whole PDU.
    fn parse_rewritten(ip: IpPacket<'a>, header_len: usize, opts: PduOptions) -> Result<Self> {
        // AMBIGUITY (§4.2.1): bytes after the IP total length are not part of the PDU (link
        // padding, e.g. Ethernet's 60-byte minimum); the trailer ends at the IP length.
        let pdu = ip.packet();
        let trailer = MxTrailer::parse(pdu)?;
        let tlen = trailer.buffer_len();
        let flags_at = pdu.len() - 1;
        // The trailer may not eat into the IP header it follows.
        if pdu.len() < header_len + tlen {
            return Err(Error::new(
                DropReason::MxTrailerLength,
                "mx_flags",
                flags_at,
            ));
        }
        if let Some(fields) = opts.trailer_fields {
            fields
                .check(&trailer)
                .map_err(|e| e.shifted(pdu.len() - tlen))?;
        }
        // WIRE.md: Next Header MUST be present in this layout: it is the only record of the
        // original protocol.
        let Some(first_protocol) = trailer.next_header else {
            return Err(Error::new(
                DropReason::MxTrailerMissingField,
                "next_header",
                flags_at,
            ));
        };
        let payload_len = pdu.len() - tlen;
        let fragment = trailer.fragment_control.filter(|fc| !fc.is_whole());
        let (first_sdu_len, sdu_count) = if fragment.is_some() {
            // AMBIGUITY (§4.2.2/§4.2.3): a fragment carries a piece of one SDU; an FSL in a
            // fragment's trailer has no meaning and is ignored.
            (payload_len, 0)
        } else {
            let first = match trailer.first_sdu_length {
                Some(fsl) => {
                    let fsl = usize::from(fsl);
                    if fsl < header_len || fsl > payload_len {
                        return Err(Error::new(
                            DropReason::MxTrailerInvalid,
                            "first_sdu_length",
                            fsl_offset(pdu.len(), &trailer),
                        ));
                    }
                    fsl
                }
                // §4.2.3: without FSL the first SDU's length comes from the IP length, which
                // here covers the whole PDU: one SDU.
                None => payload_len,
            };
            let count = count_sdus(&pdu[..payload_len], first)?;
            (first, count)
        };
        Ok(MxPdu {
            bytes: pdu,
            ip,
            trailer: Some(trailer),
            payload_len,
            rewritten_header: true,
            first_protocol,
            first_sdu_len,
            sdu_count,
        })
    }

    /// Header optimization: the IP header is the first SDU's own.
    fn parse_optimized(ip: IpPacket<'a>, protocol: u8, opts: PduOptions) -> Result<Self> {
        let data = ip.as_bytes();
        let first = ip.total_len();
        // AMBIGUITY (§4.2.3, WIRE.md): the IP length is unchanged, so anything after it is a
        // trailer or further SDUs. A receiver that knows the negotiated fields trusts them; one
        // that does not (a decoder) assumes a trailer exactly when bytes follow the first SDU.
        let has_trailer = match opts.trailer_fields {
            Some(fields) => fields != TrailerFields::NONE,
            None => data.len() > first,
        };
        let (trailer, payload_len) = if has_trailer {
            let t = MxTrailer::parse(data)?;
            let tlen = t.buffer_len();
            if data.len() < first + tlen {
                return Err(Error::new(
                    DropReason::MxTrailerLength,
                    "mx_flags",
                    data.len() - 1,
                ));
            }
            if let Some(fields) = opts.trailer_fields {
                fields.check(&t).map_err(|e| e.shifted(data.len() - tlen))?;
            }
            if t.fragment_control.is_some_and(|fc| !fc.is_whole()) {
                // Fragments always carry protocol 114 (§4.2.2); this one does not.
                return Err(Error::new(
                    DropReason::MxTrailerInvalid,
                    "fragment_control",
                    data.len() - tlen,
                ));
            }
            if let Some(fsl) = t.first_sdu_length {
                // AMBIGUITY (§4.2.3): FSL "SHOULD not be present" here; if it is, it must agree
                // with the IP length, or the PDU is rejected.
                if usize::from(fsl) != first {
                    return Err(Error::new(
                        DropReason::MxTrailerInvalid,
                        "first_sdu_length",
                        fsl_offset(data.len(), &t),
                    ));
                }
            }
            (Some(t), data.len() - tlen)
        } else {
            (None, data.len())
        };
        let sdu_count = count_sdus(&data[..payload_len], first)?;
        Ok(MxPdu {
            bytes: data,
            ip,
            trailer,
            payload_len,
            rewritten_header: false,
            first_protocol: protocol,
            first_sdu_len: first,
            sdu_count,
        })
    }

    /// The fragment control, when this PDU carries a fragment (FC present and non-zero).
    pub fn fragment(&self) -> Option<FragmentControl> {
        self.trailer
            .and_then(|t| t.fragment_control)
            .filter(|fc| !fc.is_whole())
    }

    /// The trailer's sequence number.
    pub fn sequence_number(&self) -> Option<u16> {
        self.trailer.and_then(|t| t.sequence_number)
    }

    /// The trailer length (0 without a trailer).
    pub fn trailer_len(&self) -> usize {
        self.trailer.map_or(0, |t| t.buffer_len())
    }

    /// The SDUs, in order. Empty for a fragment.
    pub fn sdus(&self) -> SduIter<'a> {
        SduIter {
            payload: &self.bytes[..self.payload_len],
            next: 0,
            index: 0,
            count: self.sdu_count,
            first_len: self.first_sdu_len,
            first_protocol: self.first_protocol,
            last_sn: self.sequence_number(),
        }
    }
}

/// Offset of the FSL field in a PDU of `pdu_len` bytes ending with `trailer` (for messages).
fn fsl_offset(pdu_len: usize, trailer: &MxTrailer) -> usize {
    let after: usize = mx_trailer::LAYOUT
        .iter()
        .take_while(|s| s.flag != mx_trailer::flags::FIRST_SDU_LENGTH)
        .filter(|s| trailer.flags() & s.flag != 0)
        .map(|s| s.size)
        .sum();
    pdu_len.saturating_sub(1 + after + 2)
}

/// Counts the SDUs of a payload whose first SDU is `first` bytes long; every later SDU is
/// delimited by its own IP length (§4.2.3) and they must tile the payload exactly.
fn count_sdus(payload: &[u8], first: usize) -> Result<usize> {
    let mut at = first;
    let mut count = 1;
    while at < payload.len() {
        let len = ip::packet_len(&payload[at..]).map_err(|e| {
            Error::new(
                DropReason::MxConcatLength,
                e.field,
                at.saturating_add(e.offset),
            )
        })?;
        at += len;
        count += 1;
    }
    Ok(count)
}

/// Iterator over the SDUs of a PDU (see [`MxPdu::sdus`]).
#[derive(Debug, Clone)]
pub struct SduIter<'a> {
    payload: &'a [u8],
    next: usize,
    index: usize,
    count: usize,
    first_len: usize,
    first_protocol: u8,
    last_sn: Option<u16>,
}

impl Iterator for SduIter<'_> {
    type Item = SduSpan;

    fn next(&mut self) -> Option<SduSpan> {
        if self.index >= self.count || self.next >= self.payload.len() {
            return None;
        }
        let rest = &self.payload[self.next..];
        let (len, protocol) = if self.index == 0 {
            (self.first_len, self.first_protocol)
        } else {
            // Validated by count_sdus; a failure here would mean a changed buffer: stop.
            let len = ip::packet_len(rest).ok()?;
            let protocol = IpPacket::new_checked(rest)
                .and_then(|p| p.upper_protocol())
                .unwrap_or(0);
            (len, protocol)
        };
        let span = SduSpan {
            offset: self.next,
            len,
            protocol,
            sequence_number: self
                .last_sn
                .map(|sn| mx_trailer::sdu_sequence_number(sn, self.index, self.count)),
        };
        self.next += len;
        self.index += 1;
        Some(span)
    }
}

/// Adds `trailer` to the IP packet in `buf` (transmit side, draft-04 §4.2.1).
///
/// Default layout (`header_optimization == false`): Next Header is set to the packet's
/// protocol (WIRE.md: mandatory), the protocol becomes 114, the IP length grows by the trailer
/// and the IPv4 checksum is updated incrementally (RFC 1624). With header optimization the IP
/// header is left untouched and a trailer without fields is not sent at all. Bytes after the IP
/// packet (link padding) are removed first. On error `buf` is unchanged.
pub fn add_trailer<B: PacketBuf + ?Sized>(
    buf: &mut B,
    trailer: &MxTrailer,
    header_optimization: bool,
) -> core::result::Result<(), DropReason> {
    let (total, upper) = {
        let ip = IpPacket::new_checked(buf.data()).map_err(|e| e.reason)?;
        (ip.total_len(), ip.upper_layer().map_err(|e| e.reason)?)
    };
    add_trailer_parsed(
        buf,
        trailer,
        header_optimization,
        total,
        upper.protocol,
        upper.next_header_field_offset,
    )
}

/// [`add_trailer`] for a packet whose IP header the caller has already checked (the engine's
/// classification parsed it): `total` is its IP total length, `protocol` the upper-layer
/// protocol and `proto_at` the offset of the byte holding it. Saves the second parse per
/// packet. A `total` that a checked header could not have (shorter than an IPv4 header or
/// longer than the data) is refused as [`DropReason::Truncated`].
pub(crate) fn add_trailer_parsed<B: PacketBuf + ?Sized>(
    buf: &mut B,
    trailer: &MxTrailer,
    header_optimization: bool,
    total: usize,
    protocol: u8,
    proto_at: usize,
) -> core::result::Result<(), DropReason> {
    if total < crate::wire::ipv4::HEADER_LEN || total > buf.len() || proto_at >= total {
        return Err(DropReason::Truncated);
    }
    let mut trailer = *trailer;
    if header_optimization {
        if trailer.flags() == 0 {
            return trim_to(buf, total);
        }
    } else {
        trailer.next_header = Some(protocol);
    }
    let tlen = trailer.buffer_len();
    let new_total = total + tlen;
    let too_long = match buf.data()[0] >> 4 {
        4 => new_total > usize::from(u16::MAX),
        _ => new_total - ipv6_header_len() > usize::from(u16::MAX),
    };
    if too_long {
        return Err(DropReason::MxTrailerLength);
    }
    if buf.tailroom() + (buf.len() - total) < tlen {
        return Err(DropReason::NoRoom);
    }
    trim_to(buf, total)?;
    let Some(out) = buf.append(tlen) else {
        return Err(DropReason::NoRoom);
    };
    trailer.emit(out);
    if !header_optimization {
        rewrite_header(buf.data_mut(), proto_at, PROTOCOL_MX, new_total);
    }
    Ok(())
}

fn trim_to<B: PacketBuf + ?Sized>(buf: &mut B, len: usize) -> core::result::Result<(), DropReason> {
    let extra = buf.len().saturating_sub(len);
    if buf.trim(extra) {
        Ok(())
    } else {
        Err(DropReason::Truncated)
    }
}

const fn ipv6_header_len() -> usize {
    crate::wire::ipv6::HEADER_LEN
}

/// Sets the protocol byte at `proto_at` and the IP length to `total`, keeping the IPv4 header
/// checksum valid incrementally. `data` must start with a checked IP header.
///
/// The update is incremental (RFC 1624), so a valid checksum stays valid and equals a fresh
/// computation, while an already corrupted one stays corrupted (the final receiver still
/// detects it); the transforms are therefore exact inverses of each other.
pub(crate) fn rewrite_header(data: &mut [u8], proto_at: usize, protocol: u8, total: usize) {
    if data[0] >> 4 == 4 {
        let mut p = ipv4::Packet::new_unchecked(&mut data[..]);
        p.set_next_header_incremental(protocol);
        p.set_total_len_incremental(total as u16);
    } else {
        let mut p = crate::wire::ipv6::Packet::new_unchecked(&mut data[..]);
        p.set_payload_len((total - ipv6_header_len()) as u16);
        if let Some(b) = p.as_bytes_mut().get_mut(proto_at) {
            *b = protocol;
        }
    }
}

/// Makes the IP header at the start of `data` describe exactly `data`: its length field is set
/// to `data.len()` (IPv4: checksum updated incrementally) and the upper-layer header is located
/// (IPv6: after the extension-header walk). Used on buffers whose length field is stale: a
/// received fragment (its length still counts the stripped trailer) and a reassembled SDU (its
/// header is the first fragment's), draft-04 §4.2.2.
///
/// Errors: the version is not 4 or 6, the header does not fit in `data`, `data` is too long for
/// the length field, or the IPv6 extension-header chain is malformed. On error `data` is
/// unchanged.
pub(crate) fn fit_ip_len(data: &mut [u8]) -> Result<ip::UpperLayer> {
    let len = data.len();
    match data.first().map(|b| b >> 4) {
        Some(4) => {
            if len < ipv4::HEADER_LEN {
                return Err(Error::new(DropReason::Truncated, "ipv4 header", len));
            }
            let total = u16::try_from(len)
                .map_err(|_| Error::new(DropReason::Ipv4TotalLength, "total_length", 2))?;
            let ihl = usize::from(data[0] & 0x0F) * 4;
            if ihl < ipv4::HEADER_LEN || ihl > len {
                return Err(Error::new(DropReason::Ipv4HeaderLength, "ihl", 0));
            }
            ipv4::Packet::new_unchecked(&mut data[..]).set_total_len_incremental(total);
            IpPacket::new_checked(&data[..])?.upper_layer()
        }
        Some(6) => {
            let hlen = ipv6_header_len();
            if len < hlen {
                return Err(Error::new(DropReason::Truncated, "ipv6 header", len));
            }
            let plen = u16::try_from(len - hlen)
                .map_err(|_| Error::new(DropReason::Ipv6PayloadLength, "payload_length", 4))?;
            let old = [data[4], data[5]];
            data[4..6].copy_from_slice(&plen.to_be_bytes());
            let upper = IpPacket::new_checked(&data[..]).and_then(|p| p.upper_layer());
            if upper.is_err() {
                data[4..6].copy_from_slice(&old);
            }
            upper
        }
        _ => Err(Error::new(DropReason::IpVersion, "version", 0)),
    }
}

/// True when the length field of an IP header of `version` can describe a packet of `total`
/// bytes (IPv4 total length <= 65535; IPv6 payload length, `total - 40`, <= 65535).
pub(crate) fn ip_len_fits(version: u8, total: usize) -> bool {
    match version {
        4 => total <= usize::from(u16::MAX),
        _ => total.saturating_sub(ipv6_header_len()) <= usize::from(u16::MAX),
    }
}

/// What [`strip_trailer`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stripped {
    /// The trailer that was removed (`None` under header optimization without a trailer).
    pub trailer: Option<MxTrailer>,
    /// SDUs now in the buffer, back to back (0 for a fragment).
    pub sdu_count: usize,
    /// Set when the buffer holds a fragment (IP header as received + piece), for reassembly.
    pub fragment: Option<FragmentControl>,
}

/// Removes the trailer of the MX PDU in `buf` (receive side) and, for a whole-SDU PDU in the
/// default layout, restores the first SDU's IP header: protocol from Next Header, length from
/// FSL (or the remaining bytes), fresh checksum. Afterwards `buf` holds the SDUs back to back,
/// each a valid IP packet. A fragment keeps its header as received (reassembly restores it).
/// On error `buf` is unchanged.
pub fn strip_trailer<B: PacketBuf + ?Sized>(buf: &mut B, opts: PduOptions) -> Result<Stripped> {
    let (pdu_len, payload_len, trailer, sdu_count, fragment, restore) = {
        let pdu = MxPdu::parse(buf.data(), opts)?;
        let upper = pdu.ip.upper_layer()?;
        let restore = (pdu.rewritten_header && pdu.fragment().is_none()).then_some((
            upper.next_header_field_offset,
            pdu.first_protocol,
            pdu.first_sdu_len,
        ));
        (
            pdu.bytes.len(),
            pdu.payload_len,
            pdu.trailer,
            pdu.sdu_count,
            pdu.fragment(),
            restore,
        )
    };
    // Drop the trailer and anything after the PDU.
    let cut = buf.len() - payload_len;
    debug_assert!(pdu_len >= payload_len);
    if !buf.trim(cut) {
        return Err(Error::new(DropReason::Truncated, "mx_flags", 0));
    }
    if let Some((proto_at, protocol, first_len)) = restore {
        rewrite_header(buf.data_mut(), proto_at, protocol, first_len);
    }
    Ok(Stripped {
        trailer,
        sdu_count,
        fragment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use crate::wire::mx_trailer::flags;
    use proptest::prelude::*;

    /// An IPv4/UDP packet with `payload` bytes of payload and a valid header checksum.
    pub(crate) fn udp4(payload: usize, seed: u8) -> Vec<u8> {
        let total = 20 + 8 + payload;
        let mut v = vec![0u8; total];
        v[0] = 0x45;
        v[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        v[4] = seed;
        v[8] = 64;
        v[9] = 17;
        v[12..16].copy_from_slice(&[10, 0, 0, 1]);
        v[16..20].copy_from_slice(&[10, 0, 0, 2]);
        v[20..22].copy_from_slice(&1234u16.to_be_bytes());
        v[22..24].copy_from_slice(&5678u16.to_be_bytes());
        v[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        for (i, b) in v[28..].iter_mut().enumerate() {
            *b = seed.wrapping_add(i as u8);
        }
        ipv4::Packet::new_unchecked(&mut v[..]).fill_checksum();
        v
    }

    fn udp6(payload: usize) -> Vec<u8> {
        let mut v = vec![0u8; 40 + 8 + payload];
        v[0] = 0x60;
        v[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        v[6] = 17;
        v[7] = 64;
        v[23] = 1;
        v[39] = 2;
        v[44..46].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
        v
    }

    fn sn_trailer(sn: u16) -> MxTrailer {
        MxTrailer {
            sequence_number: Some(sn),
            connection_id: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn add_trailer_parsed_equals_add_trailer_and_refuses_impossible_lengths() {
        for (payload, ho) in [(0, false), (50, false), (50, true), (1400, false)] {
            let mut sdu = udp4(payload, 3);
            sdu.extend_from_slice(&[0xEE; 4]); // link padding, removed by both
            let (mut a, mut b) = (HeapBuf::from_slice(&sdu), HeapBuf::from_slice(&sdu));
            add_trailer(&mut a, &sn_trailer(9), ho).unwrap();
            add_trailer_parsed(&mut b, &sn_trailer(9), ho, sdu.len() - 4, 17, 9).unwrap();
            assert_eq!(a.data(), b.data());
        }
        let sdu = udp4(10, 3);
        let mut b = HeapBuf::from_slice(&sdu);
        for (total, at) in [(19, 9), (sdu.len() + 1, 9), (20, 20)] {
            assert_eq!(
                add_trailer_parsed(&mut b, &sn_trailer(1), false, total, 17, at),
                Err(DropReason::Truncated)
            );
            assert_eq!(b.data(), &sdu[..]);
        }
    }

    #[test]
    fn s4_2_1_protocol_type_should_be_114_and_length_and_checksum_updated() {
        let sdu = udp4(50, 1);
        let mut b = HeapBuf::from_slice(&sdu);
        add_trailer(&mut b, &sn_trailer(7), false).unwrap();
        let p = ipv4::Packet::new_checked(b.data()).unwrap();
        assert_eq!(p.next_header(), PROTOCOL_MX);
        assert_eq!(p.total_len(), sdu.len() + 5, "NH + CID + SN(2) + flags");
        assert!(p.verify_checksum(), "checksum recalculated");
        let t = MxTrailer::parse(b.data()).unwrap();
        assert_eq!(
            t.next_header,
            Some(17),
            "WIRE.md: Next Header MUST be present"
        );
        assert_eq!(t.sequence_number, Some(7));
    }

    #[test]
    fn s4_2_1_header_optimization_should_leave_ip_length_and_checksum_unchanged() {
        let sdu = udp4(50, 2);
        let mut b = HeapBuf::from_slice(&sdu);
        add_trailer(&mut b, &sn_trailer(9), true).unwrap();
        assert_eq!(
            &b.data()[..sdu.len()],
            &sdu[..],
            "IP header byte for byte unchanged"
        );
        assert_eq!(b.len(), sdu.len() + 4);
        let pdu = MxPdu::parse(
            b.data(),
            PduOptions {
                header_optimization: true,
                trailer_fields: None,
            },
        )
        .unwrap();
        assert_eq!(pdu.trailer.unwrap().next_header, None);
        assert_eq!((pdu.sdu_count, pdu.first_protocol), (1, 17));
    }

    #[test]
    fn s4_2_3_header_optimization_may_omit_the_whole_trailer() {
        let sdu = udp4(10, 3);
        let mut b = HeapBuf::from_slice(&sdu);
        add_trailer(&mut b, &MxTrailer::default(), true).unwrap();
        assert_eq!(b.data(), &sdu[..]);
        let opts = PduOptions {
            header_optimization: true,
            trailer_fields: Some(TrailerFields::NONE),
        };
        let pdu = MxPdu::parse(b.data(), opts).unwrap();
        assert_eq!((pdu.trailer, pdu.sdu_count), (None, 1));
    }

    #[test]
    fn s4_2_1_round_trip_restores_the_original_packet_v4_and_v6() {
        for sdu in [udp4(33, 4), udp6(21)] {
            for opt in [false, true] {
                let mut b = HeapBuf::from_slice(&sdu);
                add_trailer(&mut b, &sn_trailer(65535), opt).unwrap();
                let opts = PduOptions {
                    header_optimization: opt,
                    trailer_fields: None,
                };
                let s = strip_trailer(&mut b, opts).unwrap();
                assert_eq!(s.sdu_count, 1);
                assert_eq!(s.trailer.unwrap().sequence_number, Some(65535));
                assert_eq!(b.data(), &sdu[..], "v{} opt={opt}", sdu[0] >> 4);
            }
        }
    }

    #[test]
    fn wire_next_header_must_be_present_in_the_default_layout() {
        let mut pdu = udp4(10, 5);
        // Hand-made PDU: protocol 114 with a SN-only trailer.
        pdu.extend_from_slice(&[0, 1, flags::SEQUENCE_NUMBER]);
        let total = pdu.len() as u16;
        let mut p = ipv4::Packet::new_unchecked(&mut pdu[..]);
        p.set_next_header(114);
        p.set_total_len(total);
        p.fill_checksum();
        let e = MxPdu::parse(&pdu, PduOptions::default()).unwrap_err();
        assert_eq!(
            (e.reason, e.field),
            (DropReason::MxTrailerMissingField, "next_header")
        );
    }

    #[test]
    fn default_layout_rejects_a_plain_ip_packet() {
        let e = MxPdu::parse(&udp4(10, 6), PduOptions::default()).unwrap_err();
        assert_eq!(
            (e.reason, e.field, e.offset),
            (DropReason::NotMxPdu, "protocol", 9)
        );
    }

    #[test]
    fn negotiated_fields_are_required_on_receipt() {
        let mut b = HeapBuf::from_slice(&udp4(10, 7));
        add_trailer(&mut b, &sn_trailer(1), false).unwrap();
        let opts = PduOptions {
            header_optimization: false,
            trailer_fields: Some(TrailerFields::new(flags::TRAFFIC_CLASS)),
        };
        let e = MxPdu::parse(b.data(), opts).unwrap_err();
        assert_eq!(e.reason, DropReason::MxTrailerMissingField);
        assert_eq!(e.field, "traffic_class");
    }

    #[test]
    fn trailer_cannot_overlap_the_ip_header() {
        // 20-byte header only, protocol 114, then a flags byte announcing 9 bytes of trailer.
        let mut pdu = udp4(0, 8);
        pdu.truncate(20);
        pdu.extend_from_slice(&[0xfc]);
        let total = pdu.len() as u16;
        let mut p = ipv4::Packet::new_unchecked(&mut pdu[..]);
        p.set_next_header(114);
        p.set_total_len(total);
        p.fill_checksum();
        let e = MxPdu::parse(&pdu, PduOptions::default()).unwrap_err();
        assert_eq!(e.reason, DropReason::MxTrailerLength);
    }

    #[test]
    fn add_trailer_without_room_changes_nothing() {
        let sdu = udp4(10, 9);
        let mut b = HeapBuf::with_room(&sdu, 0, 2);
        assert_eq!(
            add_trailer(&mut b, &sn_trailer(1), false),
            Err(DropReason::NoRoom)
        );
        assert_eq!(b.data(), &sdu[..]);
    }

    #[test]
    fn link_padding_after_the_packet_is_ignored() {
        let sdu = udp4(4, 10);
        let mut padded = sdu.clone();
        padded.extend_from_slice(&[0xee; 6]);
        let mut b = HeapBuf::from_slice(&padded);
        add_trailer(&mut b, &sn_trailer(3), false).unwrap();
        let mut with_pad = b.to_vec();
        with_pad.extend_from_slice(&[0; 4]);
        let mut b = HeapBuf::from_slice(&with_pad);
        strip_trailer(&mut b, PduOptions::default()).unwrap();
        assert_eq!(b.data(), &sdu[..]);
    }

    #[test]
    fn fit_ip_len_makes_a_stale_length_describe_the_buffer() {
        // IPv4 whose length still counts 5 trailer bytes that were cut off.
        let mut v = udp4(12, 11);
        let total = v.len() as u16 + 5;
        ipv4::Packet::new_unchecked(&mut v[..]).set_total_len_incremental(total);
        let u = fit_ip_len(&mut v).unwrap();
        assert_eq!(
            (u.protocol, u.offset, u.next_header_field_offset),
            (17, 20, 9)
        );
        let p = ipv4::Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.total_len(), v.len());
        assert!(p.verify_checksum());
        assert_eq!(v, udp4(12, 11), "the same bytes as the original");
        // IPv6 behind a Destination Options header.
        let mut v6 = udp6(8);
        v6[6] = 60;
        v6.splice(40..40, [17u8, 0, 0, 0, 0, 0, 0, 0]);
        let u = fit_ip_len(&mut v6).unwrap();
        assert_eq!(
            (u.protocol, u.offset, u.next_header_field_offset),
            (17, 48, 40)
        );
        assert_eq!(
            usize::from(u16::from_be_bytes([v6[4], v6[5]])),
            v6.len() - 40
        );
        // Rejections leave the bytes unchanged.
        let mut bad = v6.clone();
        bad[41] = 200; // extension header longer than the packet
        let before = bad.clone();
        assert_eq!(
            fit_ip_len(&mut bad).unwrap_err().reason,
            DropReason::Ipv6ExtensionHeader
        );
        assert_eq!(bad, before);
        let mut long = vec![0x45u8; 70_000];
        assert_eq!(
            fit_ip_len(&mut long).unwrap_err().reason,
            DropReason::Ipv4TotalLength
        );
        assert_eq!(
            fit_ip_len(&mut [0x45; 10]).unwrap_err().reason,
            DropReason::Truncated
        );
        assert_eq!(
            fit_ip_len(&mut []).unwrap_err().reason,
            DropReason::IpVersion
        );
        assert!(ip_len_fits(6, 65_535 + 40) && !ip_len_fits(4, 65_536));
    }

    #[test]
    fn public_vectors_parse_with_the_expected_sdus() {
        let text = include_str!("../tests/data/mx-public.jsonl");
        let mut checked = 0;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let args = v["args"].as_array().unwrap();
            if args.iter().any(|a| a == "--control") {
                continue;
            }
            let bytes = hex_decode(v["hex"].as_str().unwrap());
            let opts = PduOptions {
                header_optimization: args.iter().any(|a| a == "--header-optimization"),
                trailer_fields: None,
            };
            let parsed = MxPdu::parse(&bytes, opts);
            if v.get("expect_exit").is_some() {
                assert!(parsed.is_err(), "{} must be rejected", v["name"]);
                checked += 1;
                continue;
            }
            let pdu = parsed.unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
            let exp = &v["expect"];
            assert_eq!(
                pdu.trailer_len() as u64,
                exp["trailer"]["length"].as_u64().unwrap()
            );
            if let Some(sdus) = exp.get("sdus") {
                let got: Vec<SduSpan> = pdu.sdus().collect();
                let sdus = sdus.as_array().unwrap();
                assert_eq!(got.len(), sdus.len(), "{}", v["name"]);
                for (g, e) in got.iter().zip(sdus) {
                    assert_eq!(g.len as u64, e["length"].as_u64().unwrap());
                    assert_eq!(g.protocol as u64, e["protocol"].as_u64().unwrap());
                    assert_eq!(
                        g.sequence_number.map(u64::from),
                        e["sequence_number"].as_u64()
                    );
                }
            }
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} vectors checked");
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200),
                              opt in any::<bool>(), fields in proptest::option::of(any::<u8>())) {
            let opts = PduOptions {
                header_optimization: opt,
                trailer_fields: fields.map(TrailerFields::new),
            };
            if let Ok(pdu) = MxPdu::parse(&data, opts) {
                let mut end = 0;
                for s in pdu.sdus() {
                    prop_assert_eq!(s.offset, end);
                    end = s.offset + s.len;
                }
                if pdu.fragment().is_none() {
                    prop_assert_eq!(end, pdu.payload_len);
                }
            }
            let mut b = HeapBuf::from_slice(&data);
            let before = b.clone();
            if strip_trailer(&mut b, opts).is_err() {
                prop_assert_eq!(b, before);
            }
        }

        #[test]
        fn add_then_strip_round_trips(payload in 0usize..1400, seed in any::<u8>(),
                                      mask in any::<u8>(), opt in any::<bool>(),
                                      sn in any::<u16>(), cid in any::<u8>(), tc in any::<u8>()) {
            let sdu = udp4(payload, seed);
            let fields = TrailerFields::new(mask & !(flags::FRAGMENT_CONTROL | flags::FIRST_SDU_LENGTH));
            let mut t = MxTrailer {
                next_header: Some(17),
                connection_id: Some(cid),
                traffic_class: Some(tc),
                sequence_number: Some(sn),
                ..Default::default()
            };
            fields.apply(&mut t);
            let mut b = HeapBuf::from_slice(&sdu);
            add_trailer(&mut b, &t, opt).unwrap();
            let opts = PduOptions { header_optimization: opt, trailer_fields: Some(fields) };
            let s = strip_trailer(&mut b, opts).unwrap();
            prop_assert_eq!(b.data(), &sdu[..]);
            prop_assert_eq!(s.sdu_count, 1);
            let got = s.trailer.unwrap_or_default();
            prop_assert_eq!(got.sequence_number, t.sequence_number);
            prop_assert_eq!(got.connection_id, t.connection_id);
        }
    }
}

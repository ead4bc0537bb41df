//! What `nmadp decode` finds in a packet, independent of how it is printed.

use std::net::IpAddr;

use pipelines::mx::{MxPdu, PduOptions, SduSpan};
use pipelines::wire::ip::IpPacket;
use pipelines::wire::mx_control::ControlPdu;
use pipelines::wire::mx_trailer::MxTrailer;
use pipelines::wire::{gre, ipv4, udp, Error};
use pipelines::{Direction, DropReason};

/// How to interpret the input.
#[derive(Debug, Clone)]
pub struct Mode {
    pub direction: Direction,
    /// The PDU (after any outer header) is a control PDU.
    pub control: bool,
    pub header_optimization: bool,
    /// The input starts at an outer IP/UDP or IP/GRE header.
    pub outer: bool,
    pub data_ports: Vec<u16>,
    pub control_ports: Vec<u16>,
    /// Capture mode: recognise data, control and GRE packets by port and protocol, and call
    /// anything else "not MAMS" instead of malformed.
    pub auto: bool,
}

/// Which layers were decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// An MX data PDU (trailer-based convergence, §4.2).
    Data,
    /// An MX control PDU (§5).
    Control,
    /// A GRE convergence PDU (§4.4).
    Gre,
    /// A captured packet that is not MAMS traffic (capture mode only).
    NotMams,
}

/// The outer delivery header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outer {
    pub version: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub udp_src: Option<u16>,
    pub udp_dst: Option<u16>,
    pub ip_checksum_ok: Option<bool>,
    pub udp_checksum_ok: Option<bool>,
    /// Offset of the inner PDU in the input.
    pub inner_offset: usize,
}

/// The IP header at the start of the MX PDU, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpInfo {
    pub version: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub total_length: usize,
    pub header_length: usize,
    pub hop_limit: u8,
    pub checksum_ok: Option<bool>,
}

/// One SDU of a data PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SduInfo {
    pub span: SduSpan,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// Source and destination ports of a TCP or UDP SDU.
    pub ports: Option<(u16, u16)>,
}

/// The GRE header of a GRE convergence PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreInfo {
    pub repr: gre::Repr,
    pub checksum_ok: Option<bool>,
    /// Anchor connection ID from the key's low 16 bits (None for 0xFFFF, §4.4.2).
    pub anchor_connection_id: Option<u16>,
    pub header_length: usize,
}

/// Everything decoded from one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub direction: Direction,
    pub layers: Layers,
    pub header_optimization: bool,
    pub outer: Option<Outer>,
    pub gre: Option<GreInfo>,
    pub ip: Option<IpInfo>,
    pub trailer: Option<MxTrailer>,
    pub sdus: Option<Vec<SduInfo>>,
    /// For a fragment: bytes of the fragment before the trailer (IP header + piece).
    pub fragment_data_length: Option<usize>,
    pub control: Option<ControlPdu>,
    /// Why a captured packet is not MAMS traffic.
    pub note: Option<String>,
}

impl Decoded {
    fn new(direction: Direction, layers: Layers) -> Self {
        Decoded {
            direction,
            layers,
            header_optimization: false,
            outer: None,
            gre: None,
            ip: None,
            trailer: None,
            sdus: None,
            fragment_data_length: None,
            control: None,
            note: None,
        }
    }

    fn not_mams(direction: Direction, note: String) -> Self {
        Decoded {
            note: Some(note),
            ..Decoded::new(direction, Layers::NotMams)
        }
    }
}

/// A malformed PDU: the wire error with its offset counted from the start of the input, and
/// the layer that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    pub layer: &'static str,
    pub error: Error,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: field `{}` at byte offset {}",
            self.layer,
            describe(self.error.reason),
            self.error.field,
            self.error.offset
        )
    }
}

/// A sentence for each reason a decode fails.
fn describe(reason: DropReason) -> &'static str {
    match reason {
        DropReason::Truncated => "the input ends inside this header",
        DropReason::IpVersion => "not an IPv4 or IPv6 packet",
        DropReason::Ipv4HeaderLength => "bad IPv4 header length (IHL)",
        DropReason::Ipv4TotalLength => "IPv4 total length disagrees with the input",
        DropReason::Ipv4Checksum => "IPv4 header checksum does not verify",
        DropReason::Ipv6PayloadLength => "IPv6 payload length larger than the input",
        DropReason::Ipv6ExtensionHeader => "malformed IPv6 extension header chain",
        DropReason::UdpLength => "UDP length disagrees with the input",
        DropReason::UdpChecksum => "UDP checksum does not verify",
        DropReason::MxTrailerLength => "the MX trailer announced by the flags does not fit",
        DropReason::MxTrailerMissingField => "a required MX trailer field is absent",
        DropReason::MxTrailerInvalid => "an MX trailer field contradicts the PDU",
        DropReason::MxConcatLength => "concatenated SDU lengths do not tile the PDU",
        DropReason::MxControlLength => "the control PDU is shorter than its type requires",
        DropReason::NotMxPdu => "not an MX PDU (IP protocol is not 114; try --header-optimization)",
        DropReason::GreVersion => "GRE version or reserved bits not zero",
        DropReason::GreChecksum => "GRE checksum does not verify",
        DropReason::GreMissingKey => "GRE header without the key carrying the connection ID",
        _ => "malformed",
    }
}

fn fail(layer: &'static str, base: usize) -> impl Fn(Error) -> DecodeError {
    move |e| DecodeError {
        layer,
        error: e.shifted(base),
    }
}

/// Decodes one packet.
pub fn decode_packet(bytes: &[u8], mode: &Mode) -> Result<Decoded, DecodeError> {
    if mode.auto {
        return decode_captured(bytes, mode);
    }
    if !mode.outer {
        return if mode.control {
            decode_control(bytes, 0, mode.direction, None)
        } else {
            decode_data(bytes, 0, mode.direction, mode.header_optimization, None)
        };
    }
    let ip = IpPacket::new_checked(bytes).map_err(fail("outer IP header", 0))?;
    let protocol = ip.upper_protocol().map_err(fail("outer IP header", 0))?;
    match protocol {
        ipv4::PROTOCOL_UDP => {
            let (outer, inner) = outer_udp(&ip)?;
            let off = outer.inner_offset;
            if mode.control {
                decode_control(inner, off, mode.direction, Some(outer))
            } else {
                decode_data(
                    inner,
                    off,
                    mode.direction,
                    mode.header_optimization,
                    Some(outer),
                )
            }
        }
        ipv4::PROTOCOL_GRE => decode_gre(&ip, mode.direction),
        _ => Err(DecodeError {
            layer: "outer IP header",
            error: Error::new(
                DropReason::NotMxPdu,
                "protocol",
                protocol_offset(&ip).unwrap_or(0),
            ),
        }),
    }
}

fn protocol_offset(ip: &IpPacket<'_>) -> Option<usize> {
    ip.upper_layer().ok().map(|u| u.next_header_field_offset)
}

/// Capture mode: recognise the packet by protocol and port.
fn decode_captured(bytes: &[u8], mode: &Mode) -> Result<Decoded, DecodeError> {
    let ip = match IpPacket::new_checked(bytes) {
        Ok(ip) => ip,
        Err(e) => return Ok(Decoded::not_mams(mode.direction, format!("not IP: {e}"))),
    };
    let upper = match ip.upper_layer() {
        Ok(u) => u,
        Err(e) => return Ok(Decoded::not_mams(mode.direction, format!("IP: {e}"))),
    };
    match upper.protocol {
        pipelines::mx::PROTOCOL_MX => decode_data(bytes, 0, mode.direction, false, None),
        ipv4::PROTOCOL_GRE => decode_gre(&ip, mode.direction),
        ipv4::PROTOCOL_UDP => {
            let Ok(dgram) = udp::Packet::new_checked(&bytes[upper.offset..ip.total_len()]) else {
                return Ok(Decoded::not_mams(mode.direction, "truncated UDP".into()));
            };
            let (sp, dp) = (dgram.src_port(), dgram.dst_port());
            // The N-MADP owns the well-known ports: towards them is uplink (C-MADP -> N-MADP),
            // from them downlink. AMBIGUITY: when both ports are well-known, --direction decides.
            let direction = |ports: &[u16]| match (ports.contains(&sp), ports.contains(&dp)) {
                (true, false) => Direction::Downlink,
                (false, true) => Direction::Uplink,
                _ => mode.direction,
            };
            if mode.control_ports.contains(&sp) || mode.control_ports.contains(&dp) {
                let (outer, inner) = outer_udp(&ip)?;
                let off = outer.inner_offset;
                decode_control(inner, off, direction(&mode.control_ports), Some(outer))
            } else if mode.data_ports.contains(&sp) || mode.data_ports.contains(&dp) {
                let (outer, inner) = outer_udp(&ip)?;
                let off = outer.inner_offset;
                let dir = direction(&mode.data_ports);
                decode_data(inner, off, dir, mode.header_optimization, Some(outer))
            } else {
                Ok(Decoded::not_mams(
                    mode.direction,
                    format!("UDP {} > {}: not an MX tunnel or control port", sp, dp),
                ))
            }
        }
        p => Ok(Decoded::not_mams(
            mode.direction,
            format!("IP protocol {p} ({}): not MAMS traffic", protocol_name(p)),
        )),
    }
}

fn outer_udp<'a>(ip: &IpPacket<'a>) -> Result<(Outer, &'a [u8]), DecodeError> {
    let upper = ip.upper_layer().map_err(fail("outer IP header", 0))?;
    let bytes = ip.as_bytes();
    let base = upper.offset;
    let seg = &bytes[base..ip.total_len()];
    let dgram = udp::Packet::new_checked(seg).map_err(fail("outer UDP header", base))?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let udp_checksum_ok = match (dgram.checksum(), src) {
        (0, IpAddr::V4(_)) => None,
        _ => Some(dgram.verify_checksum(&src, &dst)),
    };
    let inner_offset = base + udp::HEADER_LEN;
    let inner = &bytes[inner_offset..base + usize::from(dgram.len())];
    Ok((
        Outer {
            version: ip.version(),
            src,
            dst,
            protocol: upper.protocol,
            udp_src: Some(dgram.src_port()),
            udp_dst: Some(dgram.dst_port()),
            ip_checksum_ok: ip_checksum(ip),
            udp_checksum_ok,
            inner_offset,
        },
        inner,
    ))
}

fn ip_checksum(ip: &IpPacket<'_>) -> Option<bool> {
    match ip {
        IpPacket::V4(p) => Some(p.verify_checksum()),
        IpPacket::V6(_) => None,
    }
}

fn ip_info(ip: &IpPacket<'_>) -> IpInfo {
    let (protocol, header_length) = ip
        .upper_layer()
        .map(|u| (u.protocol, u.offset))
        .unwrap_or((0, 0));
    IpInfo {
        version: ip.version(),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        protocol,
        total_length: ip.total_len(),
        header_length,
        hop_limit: match ip {
            IpPacket::V4(p) => p.hop_limit(),
            IpPacket::V6(p) => p.hop_limit(),
        },
        checksum_ok: ip_checksum(ip),
    }
}

fn decode_data(
    pdu: &[u8],
    base: usize,
    direction: Direction,
    header_optimization: bool,
    outer: Option<Outer>,
) -> Result<Decoded, DecodeError> {
    let opts = PduOptions {
        header_optimization,
        trailer_fields: None,
    };
    let parsed = MxPdu::parse(pdu, opts).map_err(|e| DecodeError {
        layer: layer_of(e.reason),
        error: e.shifted(base),
    })?;
    let sdus: Vec<SduInfo> = parsed
        .sdus()
        .map(|span| {
            // From the SDU to the end of the PDU: the first SDU's header of a default-layout PDU
            // still announces the whole PDU's length.
            sdu_info(span, &parsed.bytes[span.offset..])
        })
        .collect();
    Ok(Decoded {
        header_optimization,
        outer,
        ip: Some(ip_info(&parsed.ip)),
        trailer: parsed.trailer,
        fragment_data_length: parsed.fragment().map(|_| parsed.payload_len),
        sdus: Some(sdus),
        ..Decoded::new(direction, Layers::Data)
    })
}

fn layer_of(reason: DropReason) -> &'static str {
    match reason {
        DropReason::MxTrailerLength
        | DropReason::MxTrailerMissingField
        | DropReason::MxTrailerInvalid => "MX trailer",
        DropReason::MxConcatLength => "concatenated SDU",
        DropReason::Ipv6PayloadLength | DropReason::Ipv6ExtensionHeader => "IPv6 header",
        DropReason::NotMxPdu => "IP header",
        _ => "IP header",
    }
}

/// Addresses and ports of an SDU. For the first SDU of a PDU in the default layout the header
/// says protocol 114, so the upper layer is read at the header's end with the SDU's protocol.
fn sdu_info(span: SduSpan, bytes: &[u8]) -> SduInfo {
    let ip = IpPacket::new_checked(bytes).ok();
    let ports = ip.as_ref().and_then(|ip| {
        let upper = ip.upper_layer().ok()?;
        if !matches!(span.protocol, ipv4::PROTOCOL_UDP | ipv4::PROTOCOL_TCP) {
            return None;
        }
        let l4 = bytes.get(upper.offset..upper.offset + 4)?;
        Some((
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        ))
    });
    SduInfo {
        span,
        src: ip.as_ref().map(|p| p.src_addr()),
        dst: ip.as_ref().map(|p| p.dst_addr()),
        ports,
    }
}

fn decode_control(
    pdu: &[u8],
    base: usize,
    direction: Direction,
    outer: Option<Outer>,
) -> Result<Decoded, DecodeError> {
    let c = ControlPdu::parse(pdu, direction).map_err(fail("MX control PDU", base))?;
    Ok(Decoded {
        outer,
        control: Some(c),
        ..Decoded::new(direction, Layers::Control)
    })
}

fn decode_gre(ip: &IpPacket<'_>, direction: Direction) -> Result<Decoded, DecodeError> {
    let upper = ip.upper_layer().map_err(fail("outer IP header", 0))?;
    let bytes = ip.as_bytes();
    let base = upper.offset;
    let seg = &bytes[base..ip.total_len()];
    let pkt = gre::Packet::new_checked(seg).map_err(fail("GRE header", base))?;
    let repr = gre::Repr::parse(&pkt).map_err(fail("GRE header", base))?;
    let header_length = pkt.header_len();
    let inner_base = base + header_length;
    let inner = pkt.payload();
    let inner_ip = IpPacket::new_checked(inner).map_err(fail("inner IP header", inner_base))?;
    let protocol = inner_ip
        .upper_protocol()
        .map_err(fail("inner IP header", inner_base))?;
    let span = SduSpan {
        offset: 0,
        len: inner_ip.total_len(),
        protocol,
        sequence_number: None,
    };
    let outer = Outer {
        version: ip.version(),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        protocol: upper.protocol,
        udp_src: None,
        udp_dst: None,
        ip_checksum_ok: ip_checksum(ip),
        udp_checksum_ok: None,
        inner_offset: inner_base,
    };
    Ok(Decoded {
        outer: Some(outer),
        gre: Some(GreInfo {
            checksum_ok: repr.checksum.then(|| pkt.verify_checksum()),
            anchor_connection_id: repr.key.and_then(gre::anchor_connection_id),
            repr,
            header_length,
        }),
        ip: Some(ip_info(&inner_ip)),
        sdus: Some(vec![sdu_info(span, inner_ip.packet())]),
        ..Decoded::new(direction, Layers::Gre)
    })
}

/// Common names of IP protocols, for people.
pub fn protocol_name(p: u8) -> &'static str {
    match p {
        1 => "ICMP",
        2 => "IGMP",
        6 => "TCP",
        17 => "UDP",
        41 => "IPv6",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        89 => "OSPF",
        114 => "MX",
        132 => "SCTP",
        _ => "?",
    }
}

//! IP version dispatch over a byte slice: one checked view for IPv4 or IPv6, and
//! [`packet_len`], which delimits concatenated SDUs by their own IP length (draft-04 §4.2.3).

use std::net::IpAddr;

use super::{ipv4, ipv6, Error, Result};
use crate::drop::DropReason;

/// A checked IPv4 or IPv6 packet at the start of a byte slice (which may continue past the
/// packet: trailer or further SDUs, draft-04 §4.2.1, §4.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpPacket<'a> {
    V4(ipv4::Packet<&'a [u8]>),
    V6(ipv6::Packet<&'a [u8]>),
}

/// The upper-layer header of either version: its protocol, its offset from the start of the IP
/// header, and the offset of the byte holding the protocol number (IPv4: 9, the Protocol field;
/// IPv6: see [`ipv6::UpperLayer`]).
pub type UpperLayer = ipv6::UpperLayer;

/// Offset of the IPv4 Protocol field.
const IPV4_PROTOCOL_OFFSET: usize = 9;

fn version_err() -> Error {
    Error::new(DropReason::IpVersion, "version", 0)
}

impl<'a> IpPacket<'a> {
    /// Dispatches on the version nibble and checks the packet with that version's rules.
    /// Empty input or a version other than 4 or 6: [`DropReason::IpVersion`].
    pub fn new_checked(data: &'a [u8]) -> Result<IpPacket<'a>> {
        match data.first().map(|b| b >> 4) {
            Some(4) => Ok(IpPacket::V4(ipv4::Packet::new_checked(data)?)),
            Some(6) => Ok(IpPacket::V6(ipv6::Packet::new_checked(data)?)),
            _ => Err(version_err()),
        }
    }

    /// The whole input slice (may extend past [`IpPacket::total_len`]).
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            IpPacket::V4(p) => p.clone().into_inner(),
            IpPacket::V6(p) => p.clone().into_inner(),
        }
    }

    /// The IP packet itself: `..total_len()`.
    pub fn packet(&self) -> &'a [u8] {
        // total_len <= buffer length after new_checked (both versions).
        &self.as_bytes()[..self.total_len()]
    }

    /// 4 or 6.
    pub fn version(&self) -> u8 {
        match self {
            IpPacket::V4(_) => 4,
            IpPacket::V6(_) => 6,
        }
    }

    /// Source address.
    pub fn src_addr(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => p.src_addr().into(),
            IpPacket::V6(p) => p.src_addr().into(),
        }
    }

    /// Destination address.
    pub fn dst_addr(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => p.dst_addr().into(),
            IpPacket::V6(p) => p.dst_addr().into(),
        }
    }

    /// Length of the IP packet (IPv4 total length; IPv6 40 + payload length).
    pub fn total_len(&self) -> usize {
        match self {
            IpPacket::V4(p) => p.total_len(),
            IpPacket::V6(p) => p.total_len(),
        }
    }

    /// Where the upper-layer header is (IPv6: after the extension-header walk, which may fail).
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        match self {
            IpPacket::V4(p) => Ok(UpperLayer {
                protocol: p.next_header(),
                offset: p.header_len(),
                next_header_field_offset: IPV4_PROTOCOL_OFFSET,
            }),
            IpPacket::V6(p) => p.upper_layer(),
        }
    }

    /// Header length up to the upper-layer header (IPv4: IHL*4; IPv6: 40 + extension headers).
    pub fn header_len(&self) -> Result<usize> {
        self.upper_layer().map(|u| u.offset)
    }

    /// The upper-layer protocol (IPv6: found by the extension-header walk).
    pub fn upper_protocol(&self) -> Result<u8> {
        self.upper_layer().map(|u| u.protocol)
    }

    /// The upper-layer payload: from the end of the IP (and extension) headers to the IP length.
    pub fn upper_payload(&self) -> Result<&'a [u8]> {
        let u = self.upper_layer()?;
        // The walk keeps offset <= total_len <= buffer length.
        Ok(&self.as_bytes()[u.offset..self.total_len()])
    }
}

/// The length of the IP packet at the start of `data`, read from its own header (IPv4 total
/// length, IPv6 40 + payload length), so that concatenated SDUs can be delimited (draft-04
/// §4.2.3: "later SDUs are delimited by their own IP total length", `WIRE.md`).
///
/// Reads only the version and length fields (and the IPv4 IHL); validates that the length is at
/// least the minimum header and at most `data.len()`. It does not verify the IPv4 checksum.
pub fn packet_len(data: &[u8]) -> Result<usize> {
    let Some(&first) = data.first() else {
        return Err(version_err());
    };
    match first >> 4 {
        4 => {
            let Some(b) = data.get(2..4) else {
                return Err(Error::new(
                    DropReason::Truncated,
                    "total_length",
                    data.len(),
                ));
            };
            let total = usize::from(u16::from_be_bytes([b[0], b[1]]));
            let ihl = usize::from(first & 0x0F) * 4;
            if ihl < ipv4::HEADER_LEN {
                return Err(Error::new(DropReason::Ipv4HeaderLength, "ihl", 0));
            }
            if total < ihl || total > data.len() {
                return Err(Error::new(DropReason::Ipv4TotalLength, "total_length", 2));
            }
            Ok(total)
        }
        6 => {
            let Some(b) = data.get(4..6) else {
                return Err(Error::new(
                    DropReason::Truncated,
                    "payload_length",
                    data.len(),
                ));
            };
            let total = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([b[0], b[1]]));
            if total > data.len() {
                return Err(Error::new(
                    DropReason::Ipv6PayloadLength,
                    "payload_length",
                    4,
                ));
            }
            Ok(total)
        }
        _ => Err(version_err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Vector `concat-2` (/work/shared/vectors/mx-public.jsonl): two SDUs of 48 and 55 bytes, then
    /// a 6-byte trailer. The first SDU's header carries the whole PDU's length (109).
    const CONCAT_2: &str = "4500006d00140000407266090a0000010a0000020fa01451001c00000000000000000000000000000000000000000000450000370015000040116\
69f0a0000010a0000020fa1145100230000010101010101010101010101010101010101010101010101010101003000061198";

    /// Vector `header-optimized`: an unchanged UDP/IPv4 SDU (68 bytes) followed by a 4-byte
    /// trailer.
    const HEADER_OPT: &str = "45000044000900004011669e0a0000010a0000020fa01451003000007878787878787878787878787878787878787878787878787878787878787878\
787878787878787800090150";

    fn v6_packet(next: u8, payload: &[u8]) -> Vec<u8> {
        let r = ipv6::Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
            next_header: next,
            payload_len: payload.len(),
            hop_limit: 1,
            traffic_class: 0,
            flow_label: 0,
        };
        let mut buf = vec![0u8; 40];
        r.emit(&mut ipv6::Packet::new_unchecked(&mut buf[..]));
        buf.extend_from_slice(payload);
        buf
    }

    #[test]
    fn dispatches_ipv4_vector() {
        let data = hex(HEADER_OPT);
        let p = IpPacket::new_checked(&data).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.src_addr(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(p.dst_addr(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(p.total_len(), 68);
        assert_eq!(p.header_len().unwrap(), 20);
        assert_eq!(p.upper_protocol().unwrap(), 17);
        assert_eq!(p.upper_payload().unwrap().len(), 48);
        assert_eq!(&p.upper_payload().unwrap()[..4], &[0x0f, 0xa0, 0x14, 0x51]);
        assert_eq!(p.packet().len(), 68);
        assert_eq!(p.as_bytes().len(), 72);
        assert_eq!(p.upper_layer().unwrap().next_header_field_offset, 9);
        match &p {
            IpPacket::V4(v4) => assert!(v4.verify_checksum()),
            IpPacket::V6(_) => panic!("expected IPv4"),
        }
    }

    #[test]
    fn dispatches_ipv6_with_extension_headers() {
        // Destination Options (8 bytes, next = UDP) then 8 bytes of UDP.
        let mut payload = vec![17, 0, 0, 0, 0, 0, 0, 0];
        payload.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
        let mut data = v6_packet(60, &payload);
        data.extend_from_slice(&[0xAA; 3]); // trailer bytes after the packet
        let p = IpPacket::new_checked(&data).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            p.dst_addr(),
            IpAddr::V6("2001:db8::2".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(p.total_len(), 56);
        assert_eq!(p.header_len().unwrap(), 48);
        assert_eq!(p.upper_protocol().unwrap(), 17);
        assert_eq!(p.upper_payload().unwrap(), &[0, 1, 0, 2, 0, 8, 0, 0]);
        assert_eq!(p.upper_layer().unwrap().next_header_field_offset, 40);
        assert_eq!(packet_len(&data).unwrap(), 56);
    }

    #[test]
    fn ipv6_malformed_chain_surfaces_in_upper_protocol() {
        let data = v6_packet(60, &[17, 3, 0, 0]);
        let p = IpPacket::new_checked(&data).unwrap();
        assert_eq!(
            p.upper_protocol().unwrap_err().reason,
            DropReason::Ipv6ExtensionHeader
        );
        assert!(p.upper_payload().is_err());
        assert!(p.header_len().is_err());
    }

    #[test]
    fn empty_or_unknown_version_is_ip_version() {
        assert_eq!(
            IpPacket::new_checked(&[]).unwrap_err().reason,
            DropReason::IpVersion
        );
        let mut data = hex(HEADER_OPT);
        for v in [0u8, 5, 7, 15] {
            data[0] = (v << 4) | 5;
            let e = IpPacket::new_checked(&data).unwrap_err();
            assert_eq!((e.reason, e.offset), (DropReason::IpVersion, 0));
            assert_eq!(packet_len(&data).unwrap_err().reason, DropReason::IpVersion);
        }
        assert_eq!(packet_len(&[]).unwrap_err().reason, DropReason::IpVersion);
    }

    #[test]
    fn version_specific_errors_pass_through() {
        let data = hex(HEADER_OPT);
        assert_eq!(
            IpPacket::new_checked(&data[..60]).unwrap_err().reason,
            DropReason::Ipv4TotalLength
        );
        let v6 = v6_packet(17, &[0; 8]);
        assert_eq!(
            IpPacket::new_checked(&v6[..47]).unwrap_err().reason,
            DropReason::Ipv6PayloadLength
        );
    }

    #[test]
    fn s4_2_3_packet_len_delimits_concatenated_sdus() {
        // draft-04 §4.2.3: later SDUs are delimited by their own IP total length.
        let data = hex(CONCAT_2);
        assert_eq!(data.len(), 109);
        assert_eq!(packet_len(&data[48..]).unwrap(), 55);
        assert_eq!(packet_len(&data).unwrap(), 109);
        let second = IpPacket::new_checked(&data[48..]).unwrap();
        assert_eq!(second.total_len(), 55);
        assert_eq!(second.upper_protocol().unwrap(), 17);
    }

    #[test]
    fn packet_len_rejections() {
        let data = hex(CONCAT_2);
        let sdu2 = &data[48..103];
        // Length beyond the remaining bytes.
        let e = packet_len(&sdu2[..54]).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv4TotalLength, 2));
        // Too short to read the length field.
        assert_eq!(
            packet_len(&sdu2[..3]).unwrap_err().reason,
            DropReason::Truncated
        );
        // Total length below the minimum header.
        let mut bad = sdu2.to_vec();
        bad[2] = 0;
        bad[3] = 19;
        assert_eq!(
            packet_len(&bad).unwrap_err().reason,
            DropReason::Ipv4TotalLength
        );
        // Total length below IHL*4.
        bad[0] = 0x46;
        bad[3] = 23;
        assert_eq!(
            packet_len(&bad).unwrap_err().reason,
            DropReason::Ipv4TotalLength
        );
        // IHL below 5.
        bad[0] = 0x44;
        bad[3] = 55;
        assert_eq!(
            packet_len(&bad).unwrap_err().reason,
            DropReason::Ipv4HeaderLength
        );
        // IPv6: payload length beyond the data, and too short to read it.
        let v6 = v6_packet(17, &[0; 8]);
        let e = packet_len(&v6[..47]).unwrap_err();
        assert_eq!((e.reason, e.offset), (DropReason::Ipv6PayloadLength, 4));
        assert_eq!(
            packet_len(&v6[..5]).unwrap_err().reason,
            DropReason::Truncated
        );
        assert_eq!(packet_len(&v6).unwrap(), 48);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..100), v6 in any::<bool>()) {
            let mut data = data;
            if let Some(b) = data.first_mut() {
                *b = (*b & 0x0F) | if v6 { 0x60 } else { 0x40 };
            }
            if let Ok(p) = IpPacket::new_checked(&data) {
                let _ = (p.version(), p.src_addr(), p.dst_addr(), p.total_len(), p.packet());
                let _ = (p.header_len(), p.upper_protocol(), p.upper_payload());
            }
            if let Ok(n) = packet_len(&data) {
                prop_assert!(n <= data.len());
            }
        }

        #[test]
        fn packet_len_agrees_with_checked_view(data in proptest::collection::vec(any::<u8>(), 20..100), v6 in any::<bool>(), len in 0u16..100) {
            let mut data = data;
            if v6 {
                data.resize(data.len().max(40), 0);
                data[0] = 0x60;
                data[4..6].copy_from_slice(&len.to_be_bytes());
            } else {
                data[0] = 0x45;
                data[2..4].copy_from_slice(&len.to_be_bytes());
            }
            // Whenever the view accepts, packet_len returns its total length; whenever
            // packet_len accepts, so does the view.
            match (IpPacket::new_checked(&data), packet_len(&data)) {
                (Ok(p), Ok(n)) => prop_assert_eq!(p.total_len(), n),
                (Err(a), Err(b)) => prop_assert_eq!(a.reason, b.reason),
                (a, b) => prop_assert!(false, "view {:?} vs packet_len {:?}", a.is_ok(), b),
            }
        }
    }
}

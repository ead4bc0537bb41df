//! Where `nmadp decode` gets its PDUs: hex on the command line, hex lines on standard input, or
//! the packets of a pcap/pcapng capture (link-layer header removed).

use std::io::Read;

use pcap_file::pcapng::Block;
use pcap_file::DataLink;

/// One unit of input: the bytes of a packet, where they came from, and (for captures) whether
/// they still start at a link-layer header that was understood and removed.
#[derive(Debug, Clone)]
pub struct InputPdu {
    /// 1-based packet number in the capture or line number on standard input.
    pub number: usize,
    /// Capture timestamp in seconds since the epoch, for pcap input.
    pub timestamp: Option<f64>,
    /// The packet, starting at its (outer) IP header.
    pub bytes: Vec<u8>,
}

/// A problem with the input itself (not a malformed PDU).
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses hex as people paste it: whitespace, `:`/`-`/`_` separators and a `0x` prefix are
/// ignored. Errors name the offending character and its position.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, InputError> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || matches!(c, ':' | '-' | '_') {
            continue;
        }
        let Some(v) = c.to_digit(16) else {
            return Err(InputError(format!(
                "invalid hex character {c:?} at position {i} of the input"
            )));
        };
        match high.take() {
            None => high = Some(v as u8),
            Some(h) => out.push(h << 4 | v as u8),
        }
    }
    if high.is_some() {
        return Err(InputError(
            "odd number of hex digits: the last byte is incomplete".to_string(),
        ));
    }
    Ok(out)
}

/// Reads PDUs from standard input: one hex PDU per line; empty lines and `#` comments skipped.
pub fn read_stdin_hex(mut input: impl Read) -> Result<Vec<InputPdu>, InputError> {
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .map_err(|e| InputError(format!("reading standard input: {e}")))?;
    let mut pdus = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bytes = parse_hex(line).map_err(|e| InputError(format!("line {}: {e}", i + 1)))?;
        pdus.push(InputPdu {
            number: i + 1,
            timestamp: None,
            bytes,
        });
    }
    Ok(pdus)
}

/// A packet of a capture whose link layer could not be removed.
#[derive(Debug, Clone)]
pub struct SkippedPacket {
    pub number: usize,
    pub why: String,
}

/// Reads every packet of a pcap or pcapng file and removes its link-layer header.
pub fn read_capture(
    path: &std::path::Path,
) -> Result<(Vec<InputPdu>, Vec<SkippedPacket>), InputError> {
    let data = std::fs::read(path).map_err(|e| InputError(format!("{}: {e}", path.display())))?;
    let magic = data.get(..4).unwrap_or(&[]);
    let mut pdus = Vec::new();
    let mut skipped = Vec::new();
    let mut push = |number: usize, ts: f64, link: DataLink, frame: &[u8]| match strip_link_layer(
        link, frame,
    ) {
        Ok(ip) => pdus.push(InputPdu {
            number,
            timestamp: Some(ts),
            bytes: ip.to_vec(),
        }),
        Err(why) => skipped.push(SkippedPacket { number, why }),
    };
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut reader = pcap_file::pcapng::PcapNgReader::new(&data[..])
            .map_err(|e| InputError(format!("{}: not a pcapng file: {e}", path.display())))?;
        let mut links: Vec<DataLink> = Vec::new();
        let mut number = 0;
        while let Some(block) = reader.next_block() {
            let block = block.map_err(|e| {
                InputError(format!("{}: after packet {number}: {e}", path.display()))
            })?;
            match block {
                Block::SectionHeader(_) => links.clear(),
                Block::InterfaceDescription(idb) => links.push(idb.linktype),
                Block::EnhancedPacket(epb) => {
                    number += 1;
                    let link = links
                        .get(epb.interface_id as usize)
                        .copied()
                        .unwrap_or(DataLink::ETHERNET);
                    push(number, epb.timestamp.as_secs_f64(), link, &epb.data);
                }
                Block::SimplePacket(spb) => {
                    number += 1;
                    let link = links.first().copied().unwrap_or(DataLink::ETHERNET);
                    push(number, 0.0, link, &spb.data);
                }
                _ => {}
            }
        }
    } else {
        let mut reader = pcap_file::pcap::PcapReader::new(&data[..]).map_err(|e| {
            InputError(format!(
                "{}: not a pcap or pcapng file: {e}",
                path.display()
            ))
        })?;
        let link = reader.header().datalink;
        let mut number = 0;
        while let Some(pkt) = reader.next_packet() {
            let pkt = pkt.map_err(|e| {
                InputError(format!("{}: after packet {number}: {e}", path.display()))
            })?;
            number += 1;
            push(number, pkt.timestamp.as_secs_f64(), link, &pkt.data);
        }
    }
    Ok((pdus, skipped))
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

fn require_ip(ethertype: u16) -> Result<(), String> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok(()),
        other => Err(format!("not IP (ethertype 0x{other:04x})")),
    }
}

/// Removes the link-layer header of a captured frame, returning the IP packet.
pub fn strip_link_layer(link: DataLink, frame: &[u8]) -> Result<&[u8], String> {
    let be16 = |b: &[u8], at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
    };
    match link {
        DataLink::ETHERNET => {
            let mut at = 12;
            let mut ethertype = be16(frame, at).ok_or("truncated Ethernet header")?;
            // 802.1Q / 802.1ad tags, at most two.
            for _ in 0..2 {
                if ETHERTYPE_VLAN.contains(&ethertype) {
                    at += 4;
                    ethertype = be16(frame, at).ok_or("truncated VLAN tag")?;
                }
            }
            require_ip(ethertype)?;
            Ok(&frame[at + 2..])
        }
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Ok(frame),
        DataLink::LINUX_SLL => {
            let ethertype = be16(frame, 14).ok_or("truncated Linux cooked header")?;
            // be16 read bytes 14..16, so the slice below is in bounds.
            require_ip(ethertype)?;
            Ok(&frame[16..])
        }
        DataLink::LINUX_SLL2 => {
            let ethertype = be16(frame, 0).ok_or("truncated Linux cooked v2 header")?;
            if frame.len() < 20 {
                return Err("truncated Linux cooked v2 header".into());
            }
            require_ip(ethertype)?;
            Ok(&frame[20..])
        }
        DataLink::NULL | DataLink::LOOP => {
            if frame.len() < 4 {
                return Err("truncated loopback header".into());
            }
            Ok(&frame[4..])
        }
        other => Err(format!("unsupported link type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_common_separators() {
        assert_eq!(
            parse_hex("0x45 00:01-ff_0A").unwrap(),
            vec![0x45, 0, 1, 0xff, 0x0a]
        );
        assert!(parse_hex("450").is_err());
        let e = parse_hex("45zz").unwrap_err();
        assert!(e.0.contains("'z'") && e.0.contains("position 2"), "{e}");
    }

    #[test]
    fn stdin_skips_comments_and_numbers_lines() {
        let pdus = read_stdin_hex(&b"# a comment\n\n4500\n  01 02 \n"[..]).unwrap();
        assert_eq!(pdus.len(), 2);
        assert_eq!((pdus[0].number, pdus[1].number), (3, 4));
        assert_eq!(pdus[1].bytes, vec![1, 2]);
    }

    #[test]
    fn ethernet_and_vlan_are_removed() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00, 0x45]);
        assert_eq!(strip_link_layer(DataLink::ETHERNET, &f).unwrap(), &[0x45]);
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 1]);
        assert!(strip_link_layer(DataLink::ETHERNET, &arp).is_err());
        assert!(strip_link_layer(DataLink::ETHERNET, &[0u8; 5]).is_err());
    }
}

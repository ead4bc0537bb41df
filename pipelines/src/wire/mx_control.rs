//! MX convergence control PDUs (draft-04 §5, layout per `WIRE.md`).
//!
//! ```text
//! | Type (1) | CID (1) | message |
//! Type 0 Keep-Alive:  | KA sequence number (2) |                              (4 bytes total)
//! Type 1 Probe REQ:   | probe SN (2) | flags (1) | [R-CID (1)] | padding ... |  (downlink)
//! Type 1 Probe ACK:   | acknowledged probe SN (2) | reserved (1) = 0 |          (uplink, 5 bytes)
//! ```
//!
//! Type 1 is a REQ downlink and an ACK uplink (only the N-MADP sends REQs, §5.2), so decoding
//! needs the [`Direction`]. Types 2..=255 decode to [`ControlMessage::Unsupported`]: `WIRE.md`
//! says later types are "unsupported", counted, not an error that stops anything.

use super::{Error, Result};
use crate::drop::DropReason;
use crate::Direction;

/// Type code of a Keep-Alive message (draft-04 §5.1).
pub const TYPE_KEEP_ALIVE: u8 = 0;
/// Type code of a Probe REQ/ACK message (draft-04 §5.2).
pub const TYPE_PROBE: u8 = 1;

/// Byte offsets and lengths (`WIRE.md`).
mod field {
    pub const TYPE: usize = 0;
    pub const CID: usize = 1;
    /// KA sequence number, probe SN or acknowledged probe SN (2 bytes).
    pub const SN: usize = 2;
    /// Probe REQ flags, or the probe ACK's reserved octet.
    pub const PROBE_FLAGS: usize = 4;
    pub const RCID: usize = 5;
}

/// `| Type | CID |`.
pub const HEADER_LEN: usize = 2;
/// A whole Keep-Alive PDU.
pub const KEEP_ALIVE_LEN: usize = 4;
/// A whole Probe ACK PDU (`WIRE.md`: SN (2) + reserved (1)).
pub const PROBE_ACK_LEN: usize = 5;
/// The shortest Probe REQ PDU (no R-CID, no padding).
pub const PROBE_REQ_MIN_LEN: usize = 5;

/// Probing Flag bits (draft-04 §5.2; bit 0 is the most significant bit, `WIRE.md`).
pub mod probe_flags {
    /// Bit 0: a Probe ACK is expected.
    pub const ACK_REQUESTED: u8 = 0x80;
    /// Bit 1: active phase (1) or initialization phase (0).
    pub const ACTIVE_PHASE: u8 = 0x40;
    /// Bit 2: the R-CID field is present (only together with bit 0).
    pub const REVERSE_CID: u8 = 0x20;
    /// Bits 3-7: reserved.
    pub const RESERVED: u8 = 0x1f;
}

/// Name of a control message type code, for logs and counters. Types 2..=7 are those of the
/// authors' later versions (`WIRE.md`); we do not implement them.
pub const fn type_name(t: u8) -> &'static str {
    match t {
        0 => "keep-alive",
        1 => "probe",
        2 => "packet-loss-report",
        3 => "first-sequence-number",
        4 => "coded-mx-sdu",
        5 => "traffic-splitting-update",
        6 => "ack",
        7 => "traffic-splitting-ack",
        _ => "reserved",
    }
}

/// A zero-copy view of a control PDU's common header (draft-04 §5: `| Type | CID | message |`).
/// Accessors never panic; after [`new_checked`](Self::new_checked) the header is in bounds. The
/// message body depends on the direction: decode it with [`ControlPdu::parse`].
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` and checks that `| Type | CID |` fits ([`DropReason::MxControlLength`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let data = buffer.as_ref();
        byte(data, field::TYPE, "type")?;
        byte(data, field::CID, "cid")?;
        Ok(Self::new_unchecked(buffer))
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The Type octet (0 if empty).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref().get(field::TYPE).copied().unwrap_or(0)
    }

    /// The CID octet (0 if missing).
    pub fn cid(&self) -> u8 {
        self.buffer.as_ref().get(field::CID).copied().unwrap_or(0)
    }

    /// The message after `| Type | CID |` (empty if the header does not fit).
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// A Probe REQ message (draft-04 §5.2), sent by the N-MADP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProbeReq {
    /// Probing Sequence Number.
    pub sequence_number: u16,
    /// Bit 0: the C-MADP SHOULD answer with a Probe ACK.
    pub ack_requested: bool,
    /// Bit 1: active phase (true) or initialization phase (false).
    pub active_phase: bool,
    /// Reverse Connection ID: the delivery connection for the ACK. Encoded only when
    /// `ack_requested` (§5.2: R-CID is present only if bits 0 and 2 are both 1, and bit 2 SHOULD
    /// be 0 if bit 0 is 0); ignored by `emit` otherwise.
    pub reverse_cid: Option<u8>,
    /// Number of padding bytes (emitted as zeros), used to control the REQ's length.
    pub padding_len: usize,
}

impl ProbeReq {
    /// The R-CID that will be encoded: only with an ACK requested (§5.2).
    pub fn encoded_reverse_cid(&self) -> Option<u8> {
        self.reverse_cid.filter(|_| self.ack_requested)
    }

    /// The Probing Flag octet (reserved bits 0).
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.ack_requested {
            f |= probe_flags::ACK_REQUESTED;
        }
        if self.active_phase {
            f |= probe_flags::ACTIVE_PHASE;
        }
        // draft-04 §5.2: bit 2 SHOULD be 0 if bit 0 is 0.
        if self.encoded_reverse_cid().is_some() {
            f |= probe_flags::REVERSE_CID;
        }
        f
    }

    /// Length of the message after `| Type | CID |`.
    fn body_len(&self) -> usize {
        3usize
            .saturating_add(usize::from(self.encoded_reverse_cid().is_some()))
            .saturating_add(self.padding_len)
    }
}

/// The message carried by a control PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlMessage {
    /// Type 0 (draft-04 §5.1).
    KeepAlive { sequence_number: u16 },
    /// Type 1, downlink (draft-04 §5.2).
    ProbeReq(ProbeReq),
    /// Type 1, uplink (draft-04 §5.2): the acknowledged Probing Sequence Number.
    ProbeAck { ack_number: u16 },
    /// Types 2..=255: not implemented; counted, not an error (`WIRE.md`). `body_len` is the
    /// number of bytes after `| Type | CID |`.
    Unsupported { msg_type: u8, body_len: usize },
}

impl ControlMessage {
    /// The Type octet.
    pub const fn type_code(&self) -> u8 {
        match self {
            ControlMessage::KeepAlive { .. } => TYPE_KEEP_ALIVE,
            ControlMessage::ProbeReq(_) | ControlMessage::ProbeAck { .. } => TYPE_PROBE,
            ControlMessage::Unsupported { msg_type, .. } => *msg_type,
        }
    }

    /// Name as used by `nmadp decode --json` (`WIRE.md`): "keep-alive", "probe-req",
    /// "probe-ack", or [`type_name`] of an unsupported type.
    pub const fn name(&self) -> &'static str {
        match self {
            ControlMessage::KeepAlive { .. } => "keep-alive",
            ControlMessage::ProbeReq(_) => "probe-req",
            ControlMessage::ProbeAck { .. } => "probe-ack",
            ControlMessage::Unsupported { msg_type, .. } => type_name(*msg_type),
        }
    }
}

/// A decoded MX control PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlPdu {
    /// Connection ID of the delivery connection the message is sent over (draft-04 §5).
    pub cid: u8,
    pub message: ControlMessage,
}

fn be16(data: &[u8], at: usize, name: &'static str) -> Result<u16> {
    match data.get(at..at.saturating_add(2)) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(Error::new(DropReason::MxControlLength, name, at)),
    }
}

fn byte(data: &[u8], at: usize, name: &'static str) -> Result<u8> {
    data.get(at)
        .copied()
        .ok_or(Error::new(DropReason::MxControlLength, name, at))
}

impl ControlPdu {
    /// The Type octet.
    pub const fn type_code(&self) -> u8 {
        self.message.type_code()
    }

    /// Decodes a control PDU (the UDP payload) travelling in `direction`.
    ///
    /// Errors: [`DropReason::MxControlLength`] naming the first field that is missing and its
    /// offset. Unknown types are `Ok(Unsupported)`, for the caller to count.
    ///
    /// AMBIGUITY (draft-04 §5.1, §5.2): bytes after a complete Keep-Alive (4 bytes) or Probe ACK
    /// (5 bytes) are ignored, not rejected: the UDP length bounds the PDU, and later versions of
    /// the protocol append fields (e.g. timestamps) that an older receiver should skip. The
    /// Probe ACK's reserved octet is required (`WIRE.md`: 5 bytes total) but its value is
    /// ignored on receipt, as are the reserved Probing Flag bits 3-7.
    ///
    /// AMBIGUITY (draft-04 §5.1): only the C-MADP is said to send Keep-Alives, but the format
    /// does not depend on the direction, so a Keep-Alive is accepted both ways.
    pub fn parse(data: &[u8], direction: Direction) -> Result<ControlPdu> {
        let msg_type = byte(data, field::TYPE, "type")?;
        let cid = byte(data, field::CID, "cid")?;
        let message = match (msg_type, direction) {
            (TYPE_KEEP_ALIVE, _) => ControlMessage::KeepAlive {
                sequence_number: be16(data, field::SN, "sequence_number")?,
            },
            (TYPE_PROBE, Direction::Downlink) => {
                let sequence_number = be16(data, field::SN, "sequence_number")?;
                let flags = byte(data, field::PROBE_FLAGS, "probe_flags")?;
                let ack_requested = flags & probe_flags::ACK_REQUESTED != 0;
                // draft-04 §5.2 / WIRE.md: R-CID is present only when bits 0 and 2 are both
                // set; bit 2 without bit 0 is tolerated and ignored (no R-CID byte).
                let reverse_cid = if ack_requested && flags & probe_flags::REVERSE_CID != 0 {
                    Some(byte(data, field::RCID, "reverse_cid")?)
                } else {
                    None
                };
                let padding_start = field::RCID + usize::from(reverse_cid.is_some());
                ControlMessage::ProbeReq(ProbeReq {
                    sequence_number,
                    ack_requested,
                    active_phase: flags & probe_flags::ACTIVE_PHASE != 0,
                    reverse_cid,
                    padding_len: data.len().saturating_sub(padding_start),
                })
            }
            (TYPE_PROBE, Direction::Uplink) => {
                let ack_number = be16(data, field::SN, "ack_number")?;
                byte(data, field::PROBE_FLAGS, "reserved")?;
                ControlMessage::ProbeAck { ack_number }
            }
            (msg_type, _) => ControlMessage::Unsupported {
                msg_type,
                body_len: data.len().saturating_sub(HEADER_LEN),
            },
        };
        Ok(ControlPdu { cid, message })
    }

    /// Encoded length.
    pub fn buffer_len(&self) -> usize {
        let body = match &self.message {
            ControlMessage::KeepAlive { .. } => KEEP_ALIVE_LEN - HEADER_LEN,
            ControlMessage::ProbeReq(req) => req.body_len(),
            ControlMessage::ProbeAck { .. } => PROBE_ACK_LEN - HEADER_LEN,
            ControlMessage::Unsupported { body_len, .. } => *body_len,
        };
        HEADER_LEN.saturating_add(body)
    }

    /// Encodes the PDU into `out[..self.buffer_len()]` (padding, reserved bits and the ACK's
    /// reserved octet as zeros; an `Unsupported` body as zeros).
    ///
    /// Errors: [`DropReason::MxControlInvalid`] (field `type`) for a Probe REQ sent uplink, a
    /// Probe ACK sent downlink (draft-04 §5.2: only the N-MADP sends REQs, only the C-MADP ACKs),
    /// or an `Unsupported` message with type code 0 or 1; [`DropReason::NoRoom`] when `out` is
    /// shorter than [`buffer_len`](Self::buffer_len). Nothing is written on error.
    pub fn emit(&self, out: &mut [u8], direction: Direction) -> Result<()> {
        let invalid = Error::new(DropReason::MxControlInvalid, "type", field::TYPE);
        match (&self.message, direction) {
            (ControlMessage::ProbeReq(_), Direction::Uplink)
            | (ControlMessage::ProbeAck { .. }, Direction::Downlink) => return Err(invalid),
            (ControlMessage::Unsupported { msg_type, .. }, _)
                if matches!(*msg_type, TYPE_KEEP_ALIVE | TYPE_PROBE) =>
            {
                return Err(invalid)
            }
            _ => {}
        }
        let len = self.buffer_len();
        let Some(out) = out.get_mut(..len) else {
            return Err(Error::new(DropReason::NoRoom, "mx_control", out.len()));
        };
        out.fill(0);
        out[field::TYPE] = self.type_code();
        out[field::CID] = self.cid;
        match &self.message {
            ControlMessage::KeepAlive { sequence_number } => {
                out[field::SN..field::SN + 2].copy_from_slice(&sequence_number.to_be_bytes());
            }
            ControlMessage::ProbeReq(req) => {
                out[field::SN..field::SN + 2].copy_from_slice(&req.sequence_number.to_be_bytes());
                out[field::PROBE_FLAGS] = req.flags();
                if let Some(rcid) = req.encoded_reverse_cid() {
                    out[field::RCID] = rcid;
                }
            }
            ControlMessage::ProbeAck { ack_number } => {
                out[field::SN..field::SN + 2].copy_from_slice(&ack_number.to_be_bytes());
            }
            ControlMessage::Unsupported { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DOWN: Direction = Direction::Downlink;
    const UP: Direction = Direction::Uplink;

    fn round_trip(pdu: ControlPdu, dir: Direction) -> Vec<u8> {
        let mut out = vec![0xa5; pdu.buffer_len()];
        pdu.emit(&mut out, dir).unwrap();
        assert_eq!(ControlPdu::parse(&out, dir).unwrap(), pdu);
        out
    }

    #[test]
    fn s5_header_type_and_cid() {
        let pdu = ControlPdu::parse(&[0, 7, 0x01, 0x2c], UP).unwrap();
        assert_eq!(pdu.cid, 7);
        assert_eq!(pdu.type_code(), TYPE_KEEP_ALIVE);
    }

    #[test]
    fn view_reads_header_and_body() {
        let p = Packet::new_checked(&[1u8, 4, 0, 9, 0x80][..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.cid(), p.body()),
            (1, 4, &[0u8, 9, 0x80][..])
        );
        assert_eq!(
            Packet::new_checked(&[1u8][..]).unwrap_err(),
            Error::new(DropReason::MxControlLength, "cid", 1)
        );
        let empty = Packet::new_unchecked(&[][..]);
        assert_eq!(
            (empty.msg_type(), empty.cid(), empty.body()),
            (0, 0, &[][..])
        );
    }

    #[test]
    fn s5_1_keep_alive_is_two_byte_sequence_number() {
        let pdu = ControlPdu {
            cid: 1,
            message: ControlMessage::KeepAlive {
                sequence_number: 300,
            },
        };
        assert_eq!(pdu.buffer_len(), KEEP_ALIVE_LEN);
        assert_eq!(round_trip(pdu, UP), [0, 1, 0x01, 0x2c]);
        // Accepted downlink too (AMBIGUITY in parse's docs).
        assert_eq!(ControlPdu::parse(&[0, 1, 0x01, 0x2c], DOWN).unwrap(), pdu);
    }

    #[test]
    fn s5_2_type_1_is_req_downlink_and_ack_uplink() {
        let bytes = [1, 1, 0x00, 0x11, 0x00];
        assert_eq!(
            ControlPdu::parse(&bytes, UP).unwrap().message,
            ControlMessage::ProbeAck { ack_number: 17 }
        );
        assert!(matches!(
            ControlPdu::parse(&bytes, DOWN).unwrap().message,
            ControlMessage::ProbeReq(ProbeReq {
                sequence_number: 17,
                ..
            })
        ));
    }

    #[test]
    fn s5_2_rcid_present_only_with_ack_and_rcid_bits() {
        // 0x80 | 0x20: R-CID present, one padding byte after it.
        let pdu = ControlPdu::parse(&[1, 0, 0, 5, 0xa0, 9, 0], DOWN).unwrap();
        let ControlMessage::ProbeReq(req) = pdu.message else {
            panic!()
        };
        assert_eq!(req.reverse_cid, Some(9));
        assert_eq!(req.padding_len, 1);
        // 0x80 alone: no R-CID, both bytes are padding.
        let ControlMessage::ProbeReq(req) = ControlPdu::parse(&[1, 0, 0, 5, 0x80, 9, 0], DOWN)
            .unwrap()
            .message
        else {
            panic!()
        };
        assert_eq!(req.reverse_cid, None);
        assert_eq!(req.padding_len, 2);
    }

    #[test]
    fn s5_2_rcid_bit_without_ack_tolerated_and_ignored() {
        let ControlMessage::ProbeReq(req) = ControlPdu::parse(&[1, 0, 0, 5, 0x20, 9], DOWN)
            .unwrap()
            .message
        else {
            panic!()
        };
        assert!(!req.ack_requested);
        assert_eq!(req.reverse_cid, None);
        assert_eq!(req.padding_len, 1);
        // A 5-byte REQ with only bit 2 set is complete: no R-CID byte is required.
        assert!(ControlPdu::parse(&[1, 0, 0, 5, 0x20], DOWN).is_ok());
    }

    #[test]
    fn s5_2_rcid_bit_should_be_zero_without_ack_on_emit() {
        let req = ProbeReq {
            sequence_number: 3,
            ack_requested: false,
            active_phase: true,
            reverse_cid: Some(4),
            padding_len: 0,
        };
        assert_eq!(req.flags(), probe_flags::ACTIVE_PHASE);
        let pdu = ControlPdu {
            cid: 2,
            message: ControlMessage::ProbeReq(req),
        };
        let mut out = vec![0; pdu.buffer_len()];
        pdu.emit(&mut out, DOWN).unwrap();
        assert_eq!(out, [1, 2, 0, 3, 0x40]);
    }

    #[test]
    fn s5_2_probe_flag_bits_and_padding_emitted_as_zero() {
        let req = ProbeReq {
            sequence_number: 17,
            ack_requested: true,
            active_phase: true,
            reverse_cid: Some(1),
            padding_len: 10,
        };
        let out = round_trip(
            ControlPdu {
                cid: 0,
                message: ControlMessage::ProbeReq(req),
            },
            DOWN,
        );
        let mut expect = vec![1, 0, 0, 17, 0xe0, 1];
        expect.extend([0; 10]);
        assert_eq!(out, expect);
    }

    #[test]
    fn s5_2_probe_reserved_flag_bits_ignored_on_receipt() {
        let pdu = ControlPdu::parse(&[1, 0, 0, 5, 0x1f], DOWN).unwrap();
        assert_eq!(
            pdu.message,
            ControlMessage::ProbeReq(ProbeReq {
                sequence_number: 5,
                ..ProbeReq::default()
            })
        );
    }

    #[test]
    fn wire_md_probe_ack_is_five_bytes_reserved_zero() {
        let pdu = ControlPdu {
            cid: 1,
            message: ControlMessage::ProbeAck { ack_number: 0xabcd },
        };
        assert_eq!(round_trip(pdu, UP), [1, 1, 0xab, 0xcd, 0]);
        // Reserved octet's value is ignored on receipt.
        assert_eq!(
            ControlPdu::parse(&[1, 1, 0xab, 0xcd, 0xff], UP).unwrap(),
            pdu
        );
    }

    #[test]
    fn trailing_bytes_after_keep_alive_and_ack_ignored() {
        assert_eq!(
            ControlPdu::parse(&[0, 1, 0, 2, 9, 9], UP).unwrap().message,
            ControlMessage::KeepAlive { sequence_number: 2 }
        );
        assert_eq!(
            ControlPdu::parse(&[1, 1, 0, 2, 0, 9, 9], UP)
                .unwrap()
                .message,
            ControlMessage::ProbeAck { ack_number: 2 }
        );
    }

    #[test]
    fn wire_md_unknown_types_are_unsupported_not_errors() {
        for t in 2..=255u8 {
            let pdu = ControlPdu::parse(&[t, 3, 1, 2, 3], DOWN).unwrap();
            assert_eq!(
                pdu.message,
                ControlMessage::Unsupported {
                    msg_type: t,
                    body_len: 3
                }
            );
            assert_eq!(pdu.type_code(), t);
            assert_eq!(pdu.buffer_len(), 5);
        }
        assert_eq!(type_name(2), "packet-loss-report");
        assert_eq!(type_name(7), "traffic-splitting-ack");
        assert_eq!(type_name(8), "reserved");
        assert_eq!(
            ControlMessage::Unsupported {
                msg_type: 4,
                body_len: 0
            }
            .name(),
            "coded-mx-sdu"
        );
    }

    #[test]
    fn rejects_too_short_naming_field_and_offset() {
        let cases: &[(&[u8], Direction, &str, usize)] = &[
            (&[], DOWN, "type", 0),
            (&[0], DOWN, "cid", 1),
            (&[7], DOWN, "cid", 1),
            (&[0, 1, 0], UP, "sequence_number", 2),
            (&[1, 1, 0], DOWN, "sequence_number", 2),
            (&[1, 1, 0, 1], DOWN, "probe_flags", 4),
            (&[1, 1, 0, 1, 0xa0], DOWN, "reverse_cid", 5),
            (&[1, 1, 0], UP, "ack_number", 2),
            (&[1, 1, 0, 1], UP, "reserved", 4),
        ];
        for &(bytes, dir, name, off) in cases {
            assert_eq!(
                ControlPdu::parse(bytes, dir).unwrap_err(),
                Error::new(DropReason::MxControlLength, name, off),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn emit_rejects_wrong_direction_and_bad_unsupported() {
        let req = ControlPdu {
            cid: 0,
            message: ControlMessage::ProbeReq(ProbeReq::default()),
        };
        let ack = ControlPdu {
            cid: 0,
            message: ControlMessage::ProbeAck { ack_number: 1 },
        };
        let bad = ControlPdu {
            cid: 0,
            message: ControlMessage::Unsupported {
                msg_type: 1,
                body_len: 0,
            },
        };
        let mut out = [0xeeu8; 16];
        let invalid = Error::new(DropReason::MxControlInvalid, "type", 0);
        assert_eq!(req.emit(&mut out, UP), Err(invalid));
        assert_eq!(ack.emit(&mut out, DOWN), Err(invalid));
        assert_eq!(bad.emit(&mut out, DOWN), Err(invalid));
        assert_eq!(out, [0xee; 16]);
        let mut short = [0u8; 4];
        assert_eq!(
            ack.emit(&mut short, UP).unwrap_err().reason,
            DropReason::NoRoom
        );
        let unsupported = ControlPdu {
            cid: 9,
            message: ControlMessage::Unsupported {
                msg_type: 6,
                body_len: 2,
            },
        };
        assert_eq!(round_trip(unsupported, UP), [6, 9, 0, 0]);
    }

    #[test]
    fn vectors_public() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/mx-public.jsonl");
        let text = std::fs::read_to_string(path).expect("read vectors");
        let mut checked = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let name = v["name"].as_str().unwrap();
            let args: Vec<&str> = v["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            if !args.contains(&"--control") {
                continue;
            }
            let dir = match args.iter().position(|a| *a == "--direction") {
                Some(i) if args.get(i + 1) == Some(&"uplink") => UP,
                _ => DOWN,
            };
            let s = v["hex"].as_str().unwrap();
            let bytes: Vec<u8> = (0..s.len() / 2)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let parsed = ControlPdu::parse(&bytes, dir);
            if v.get("expect_exit").is_some() {
                assert!(parsed.is_err(), "{name}");
                checked += 1;
                continue;
            }
            let pdu = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
            let exp = &v["expect"]["control"];
            assert_eq!(exp["type"].as_str(), Some(pdu.message.name()), "{name}");
            assert_eq!(exp["cid"].as_u64(), Some(u64::from(pdu.cid)), "{name}");
            let sn = exp["sequence_number"].as_u64();
            match pdu.message {
                ControlMessage::KeepAlive { sequence_number } => {
                    assert_eq!(sn, Some(u64::from(sequence_number)), "{name}")
                }
                ControlMessage::ProbeAck { ack_number } => {
                    assert_eq!(sn, Some(u64::from(ack_number)), "{name}")
                }
                ControlMessage::ProbeReq(req) => {
                    assert_eq!(sn, Some(u64::from(req.sequence_number)), "{name}");
                    assert_eq!(exp["ack_requested"].as_bool(), Some(req.ack_requested));
                    assert_eq!(exp["active_phase"].as_bool(), Some(req.active_phase));
                    assert_eq!(
                        exp["reverse_cid"].as_u64(),
                        req.reverse_cid.map(u64::from),
                        "{name}"
                    );
                    assert_eq!(
                        exp["padding_length"].as_u64(),
                        Some(req.padding_len as u64),
                        "{name}"
                    );
                }
                ControlMessage::Unsupported { .. } => panic!("{name}: unsupported"),
            }
            // Re-emitting reproduces the bytes (the vectors carry zero padding/reserved).
            let mut out = vec![0u8; pdu.buffer_len()];
            pdu.emit(&mut out, dir).unwrap();
            assert_eq!(out, bytes, "{name}");
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} control vectors");
    }

    fn arb_pdu() -> impl Strategy<Value = (ControlPdu, Direction)> {
        let req = (
            any::<u16>(),
            any::<bool>(),
            any::<bool>(),
            any::<Option<u8>>(),
            0usize..64,
        )
            .prop_map(|(sn, ack, active, rcid, pad)| {
                (
                    ControlMessage::ProbeReq(ProbeReq {
                        sequence_number: sn,
                        ack_requested: ack,
                        active_phase: active,
                        // Only encodable R-CIDs round-trip (§5.2).
                        reverse_cid: rcid.filter(|_| ack),
                        padding_len: pad,
                    }),
                    DOWN,
                )
            });
        let ka = (any::<u16>(), any::<bool>()).prop_map(|(sn, up)| {
            (
                ControlMessage::KeepAlive {
                    sequence_number: sn,
                },
                if up { UP } else { DOWN },
            )
        });
        let ack = any::<u16>().prop_map(|n| (ControlMessage::ProbeAck { ack_number: n }, UP));
        let other = (2u8..=255, 0usize..64, any::<bool>()).prop_map(|(t, n, up)| {
            (
                ControlMessage::Unsupported {
                    msg_type: t,
                    body_len: n,
                },
                if up { UP } else { DOWN },
            )
        });
        (any::<u8>(), prop_oneof![req, ka, ack, other])
            .prop_map(|(cid, (message, dir))| (ControlPdu { cid, message }, dir))
    }

    proptest! {
        #[test]
        fn prop_round_trip((pdu, dir) in arb_pdu()) {
            let mut out = vec![0xa5u8; pdu.buffer_len() + 3];
            pdu.emit(&mut out, dir).unwrap();
            let n = pdu.buffer_len();
            prop_assert_eq!(ControlPdu::parse(&out[..n], dir).unwrap(), pdu);
            // emit touches only buffer_len() bytes.
            prop_assert_eq!(&out[n..], &[0xa5u8; 3][..]);
        }

        #[test]
        fn prop_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..24), up in any::<bool>()) {
            let dir = if up { UP } else { DOWN };
            let view = Packet::new_unchecked(&data[..]);
            let _ = (view.msg_type(), view.cid(), view.body());
            if let Ok(pdu) = ControlPdu::parse(&data, dir) {
                prop_assert!(pdu.buffer_len() <= data.len());
                prop_assert_eq!(pdu.type_code(), data[0]);
                prop_assert_eq!(pdu.cid, data[1]);
            }
        }
    }
}

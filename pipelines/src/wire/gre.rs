//! GRE as MX convergence sublayer (draft-04 §4.4): RFC 2784 with the RFC 2890 key and sequence
//! number extensions.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |C| |K|S| Reserved0       | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (Optional)    |   when C
//! |                         Key (optional)                        |   when K
//! |                 Sequence Number (Optional)                    |   when S
//! ```
//!
//! Which flag bits a receiver rejects (worked out from three RFCs):
//! * RFC 1701 numbered the bits `C(0) R(1) K(2) S(3) s(4) Recur(5-7) Flags(8-12) Ver(13-15)`.
//! * RFC 2784 §2.3: "A receiver MUST discard a packet where any of bits 1-5 are non-zero, unless
//!   that receiver implements RFC 1701. Bits 6-12 [...] MUST be sent as zero and MUST be ignored
//!   on receipt." We do not implement RFC 1701 (no routing, no strict source route, no
//!   recursion control).
//! * RFC 2890 §2 re-assigns bit 2 (K) and bit 3 (S), which we implement, so they leave the
//!   discard set.
//!
//! So a receiver discards when bit 1 (RFC 1701 R, `0x4000`), bit 4 (RFC 1701 s, `0x0800`) or bit
//! 5 (the first RFC 1701 Recur bit, `0x0400`) is set: [`flag_bits::MUST_BE_ZERO`] = `0x4C00`.
//! The other two Recur bits (6-7) and the RFC 1701 Flags (8-12) fall in RFC 2784's bits 6-12
//! and are ignored: [`flag_bits::IGNORED`] = `0x03F8`. Version (bits 13-15) MUST be 0
//! (RFC 2784 §2.3.1).

use super::{Error, Result};
use crate::drop::DropReason;

/// Bits of the first 16-bit word (bit 0 = most significant).
pub mod flag_bits {
    /// Bit 0: Checksum Present (RFC 2784 §2.2).
    pub const CHECKSUM: u16 = 0x8000;
    /// Bit 2: Key Present (RFC 2890 §2).
    pub const KEY: u16 = 0x2000;
    /// Bit 3: Sequence Number Present (RFC 2890 §2).
    pub const SEQUENCE: u16 = 0x1000;
    /// Bits 1, 4, 5: a receiver MUST discard when any is set (RFC 2784 §2.3, minus the RFC 2890
    /// bits 2 and 3; see the module docs).
    pub const MUST_BE_ZERO: u16 = 0x4C00;
    /// Bits 6-12: sent as zero, ignored on receipt (RFC 2784 §2.3).
    pub const IGNORED: u16 = 0x03F8;
    /// Bits 13-15: Version, MUST be 0 (RFC 2784 §2.3.1).
    pub const VERSION: u16 = 0x0007;
}

/// Byte offsets.
mod field {
    pub const FLAGS: usize = 0;
    pub const PROTOCOL: usize = 2;
    /// First optional field.
    pub const OPTIONS: usize = 4;
}

/// The fixed part of the header.
pub const BASE_HEADER_LEN: usize = 4;
/// Longest header (C, K and S).
pub const MAX_HEADER_LEN: usize = 16;

/// draft-04 §4.4.1: the low 16 bits of the key are 0xFFFF when no anchor connection is specified.
pub const NO_ANCHOR: u16 = 0xFFFF;

/// The GRE key a C-MADP sends (draft-04 §4.4.1): low 16 bits = the anchor connection's ID, or
/// [`NO_ANCHOR`] if none needs to be specified; high 16 bits = `high` (`WIRE.md`: 0 unless
/// configured as a session/client identifier). Note `Some(0xFFFF)` encodes like `None`.
pub const fn key_for_anchor(cid: Option<u16>, high: u16) -> u32 {
    let low = match cid {
        Some(c) => c,
        None => NO_ANCHOR,
    };
    ((high as u32) << 16) | low as u32
}

/// The anchor connection ID an N-MADP reads from a key (draft-04 §4.4.2: "Unless the LSB 16
/// Bits of the Key field are 0xFFFF, they are interpreted as the Connection ID of Anchor
/// Connection").
pub const fn anchor_connection_id(key: u32) -> Option<u16> {
    match key as u16 {
        NO_ANCHOR => None,
        cid => Some(cid),
    }
}

/// Internet (ones'-complement) sum of `data`, folded to 16 bits, not complemented (RFC 1071).
fn ones_complement_sum(data: &[u8]) -> u16 {
    super::checksum::fold(super::checksum::sum(data))
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    match data.get(at..at.checked_add(2)?) {
        Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    match data.get(at..at.checked_add(4)?) {
        Some(&[a, b, c, d]) => Some(u32::from_be_bytes([a, b, c, d])),
        _ => None,
    }
}

fn put(data: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = data.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// A zero-copy view of a GRE packet (header + payload). After [`new_checked`](Self::new_checked)
/// every optional field the flags announce is in bounds; accessors never panic in any case.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` and checks that the header its flags announce fits.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// [`DropReason::Truncated`] naming the first field that does not fit.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        let truncated = |name, at| Err(Error::new(DropReason::Truncated, name, at));
        if len < field::PROTOCOL {
            return truncated("flags", field::FLAGS);
        }
        if len < BASE_HEADER_LEN {
            return truncated("protocol_type", field::PROTOCOL);
        }
        if self.checksum_present() && len < field::OPTIONS + 4 {
            return truncated("checksum", field::OPTIONS);
        }
        if self.key_present() && len < self.key_offset() + 4 {
            return truncated("key", self.key_offset());
        }
        if self.sequence_present() && len < self.sequence_offset() + 4 {
            return truncated("sequence_number", self.sequence_offset());
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The flags-and-version word (0 if the buffer is shorter than 2 bytes).
    pub fn flags_word(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS).unwrap_or(0)
    }

    pub fn checksum_present(&self) -> bool {
        self.flags_word() & flag_bits::CHECKSUM != 0
    }

    pub fn key_present(&self) -> bool {
        self.flags_word() & flag_bits::KEY != 0
    }

    pub fn sequence_present(&self) -> bool {
        self.flags_word() & flag_bits::SEQUENCE != 0
    }

    /// Version (bits 13-15).
    pub fn version(&self) -> u8 {
        (self.flags_word() & flag_bits::VERSION) as u8
    }

    /// Protocol Type: the payload's EtherType (0 if truncated).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PROTOCOL).unwrap_or(0)
    }

    fn key_offset(&self) -> usize {
        field::OPTIONS + if self.checksum_present() { 4 } else { 0 }
    }

    fn sequence_offset(&self) -> usize {
        self.key_offset() + if self.key_present() { 4 } else { 0 }
    }

    /// 4 + 4 per optional field present (RFC 2784 §2.1, RFC 2890 §2).
    pub fn header_len(&self) -> usize {
        self.sequence_offset() + if self.sequence_present() { 4 } else { 0 }
    }

    /// The Checksum field, when C is set.
    pub fn checksum(&self) -> Option<u16> {
        if !self.checksum_present() {
            return None;
        }
        be16(self.buffer.as_ref(), field::OPTIONS)
    }

    /// The Key field (RFC 2890 §2.1), when K is set.
    pub fn key(&self) -> Option<u32> {
        if !self.key_present() {
            return None;
        }
        be32(self.buffer.as_ref(), self.key_offset())
    }

    /// The Sequence Number field (RFC 2890 §2.2), when S is set.
    pub fn sequence_number(&self) -> Option<u32> {
        if !self.sequence_present() {
            return None;
        }
        be32(self.buffer.as_ref(), self.sequence_offset())
    }

    /// Everything after the header (empty if the header does not fit). GRE has no length field:
    /// the delivery protocol bounds the payload.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }

    /// True when C is clear, or the checksum over the header and payload verifies
    /// (RFC 2784 §2.5: the ones'-complement sum over all 16-bit words of header and payload,
    /// checksum field included, is 0xFFFF).
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || ones_complement_sum(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the flags-and-version word (no-op if the buffer is too short, as for every setter).
    pub fn set_flags_word(&mut self, word: u16) {
        put(self.buffer.as_mut(), field::FLAGS, &word.to_be_bytes());
    }

    pub fn set_protocol_type(&mut self, value: u16) {
        put(self.buffer.as_mut(), field::PROTOCOL, &value.to_be_bytes());
    }

    /// Writes Checksum and Reserved1 (RFC 2784 §2.6: Reserved1 MUST be transmitted as zero).
    /// Set the C flag first.
    pub fn set_checksum(&mut self, value: u16) {
        let [a, b] = value.to_be_bytes();
        put(self.buffer.as_mut(), field::OPTIONS, &[a, b, 0, 0]);
    }

    /// Writes the Key. Set the C and K flags first.
    pub fn set_key(&mut self, key: u32) {
        let at = self.key_offset();
        put(self.buffer.as_mut(), at, &key.to_be_bytes());
    }

    /// Writes the Sequence Number. Set the C, K and S flags first.
    pub fn set_sequence_number(&mut self, sn: u32) {
        let at = self.sequence_offset();
        put(self.buffer.as_mut(), at, &sn.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        self.buffer.as_mut().get_mut(at..).unwrap_or(&mut [])
    }

    /// Computes and writes the checksum over the header and the first `payload_len` payload
    /// bytes (RFC 2784 §2.5), the checksum field counted as zero. No-op when C is clear or the
    /// buffer is shorter than header + `payload_len`.
    pub fn fill_checksum(&mut self, payload_len: usize) {
        if !self.checksum_present() {
            return;
        }
        self.set_checksum(0);
        let end = self.header_len().saturating_add(payload_len);
        if let Some(covered) = self.buffer.as_ref().get(..end) {
            let sum = !ones_complement_sum(covered);
            self.set_checksum(sum);
        }
    }
}

/// A validated GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Repr {
    /// EtherType of the payload (0x0800 IPv4, 0x86DD IPv6).
    pub protocol_type: u16,
    /// C: a checksum over header and payload is sent / was present and verified.
    pub checksum: bool,
    /// K: the key (RFC 2890 §2.1); for MAMS see [`key_for_anchor`].
    pub key: Option<u32>,
    /// S: the sequence number (RFC 2890 §2.2).
    pub sequence_number: Option<u32>,
}

impl Repr {
    /// Validates a GRE packet (`packet` need not have passed `new_checked`).
    ///
    /// Errors: [`DropReason::Truncated`] (header shorter than its flags announce);
    /// [`DropReason::GreVersion`] for bits 1, 4 or 5 set (field `flags`, RFC 2784 §2.3) or a
    /// version other than 0 (field `version`, RFC 2784 §2.3.1); [`DropReason::GreChecksum`]
    /// when C is set and the checksum does not verify (RFC 2784 §2.5). Bits 6-12 and Reserved1
    /// are ignored.
    ///
    /// The RFC 2784 §2.4 SHOULD (discard unlisted Protocol Types) is left to the caller, which
    /// knows which payloads it can forward.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        let word = packet.flags_word();
        if word & flag_bits::MUST_BE_ZERO != 0 {
            return Err(Error::new(DropReason::GreVersion, "flags", field::FLAGS));
        }
        if word & flag_bits::VERSION != 0 {
            // Version sits in the low bits of byte 1.
            return Err(Error::new(
                DropReason::GreVersion,
                "version",
                field::FLAGS + 1,
            ));
        }
        if !packet.verify_checksum() {
            return Err(Error::new(
                DropReason::GreChecksum,
                "checksum",
                field::OPTIONS,
            ));
        }
        Ok(Repr {
            protocol_type: packet.protocol_type(),
            checksum: packet.checksum_present(),
            key: packet.key(),
            sequence_number: packet.sequence_number(),
        })
    }

    /// [`parse`](Self::parse), and require the key the MAMS convergence needs to find the anchor
    /// connection (draft-04 §4.4.2): [`DropReason::GreMissingKey`] (field `key`, at the offset
    /// where the key would be) otherwise.
    pub fn parse_mams<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        let repr = Self::parse(packet)?;
        if repr.key.is_none() {
            return Err(Error::new(
                DropReason::GreMissingKey,
                "key",
                packet.key_offset(),
            ));
        }
        Ok(repr)
    }

    /// The anchor connection ID carried in the key (draft-04 §4.4.2); `None` without a key or
    /// with [`NO_ANCHOR`].
    pub fn anchor_connection_id(&self) -> Option<u16> {
        self.key.and_then(anchor_connection_id)
    }

    /// The flags-and-version word this header is sent with (ignored bits and version 0).
    pub fn flags_word(&self) -> u16 {
        let mut w = 0;
        if self.checksum {
            w |= flag_bits::CHECKSUM;
        }
        if self.key.is_some() {
            w |= flag_bits::KEY;
        }
        if self.sequence_number.is_some() {
            w |= flag_bits::SEQUENCE;
        }
        w
    }

    /// Header length: 4 + 4 per optional field.
    pub fn header_len(&self) -> usize {
        BASE_HEADER_LEN
            + 4 * (usize::from(self.checksum)
                + usize::from(self.key.is_some())
                + usize::from(self.sequence_number.is_some()))
    }

    /// Header + payload.
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len().saturating_add(payload_len)
    }

    /// Writes the header into the front of `packet`, whose payload (`payload_len` bytes after
    /// the header) must already be in place, then, when C is set, the checksum over header and
    /// payload (RFC 2784 §2.5). Reserved0 bits, version and Reserved1 are sent as zero
    /// (RFC 2784 §2.3, §2.6).
    ///
    /// # Panics
    /// If the buffer is shorter than `header_len() + payload_len` (a caller bug, as in smoltcp).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, payload_len: usize) {
        let need = self.buffer_len(payload_len);
        assert!(
            packet.buffer.as_ref().len() >= need,
            "GRE buffer shorter than header + payload"
        );
        packet.set_flags_word(self.flags_word());
        packet.set_protocol_type(self.protocol_type);
        if self.checksum {
            packet.set_checksum(0);
        }
        if let Some(key) = self.key {
            packet.set_key(key);
        }
        if let Some(sn) = self.sequence_number {
            packet.set_sequence_number(sn);
        }
        packet.fill_checksum(payload_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(repr: &Repr, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0xeeu8; repr.buffer_len(payload.len())];
        buf[repr.header_len()..].copy_from_slice(payload);
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]), payload.len());
        buf
    }

    fn all() -> Repr {
        Repr {
            protocol_type: 0x0800,
            checksum: true,
            key: Some(0x0001_0002),
            sequence_number: Some(0x0a0b_0c0d),
        }
    }

    #[test]
    fn rfc1071_sum_known_value() {
        // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            ones_complement_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(ones_complement_sum(&[0x12]), 0x1200);
        assert_eq!(ones_complement_sum(&[]), 0);
    }

    #[test]
    fn rfc2890_s2_optional_fields_in_order() {
        let buf = build(&all(), &[0xaa, 0xbb]);
        assert_eq!(&buf[..4], &[0xb0, 0x00, 0x08, 0x00]);
        assert_eq!(&buf[6..8], &[0, 0], "Reserved1");
        assert_eq!(&buf[8..12], &[0x00, 0x01, 0x00, 0x02], "key");
        assert_eq!(&buf[12..16], &[0x0a, 0x0b, 0x0c, 0x0d], "sequence");
        assert_eq!(&buf[16..], &[0xaa, 0xbb]);
        // Without C the key moves to offset 4.
        let r = Repr {
            checksum: false,
            ..all()
        };
        let buf = build(&r, &[]);
        assert_eq!(buf, [0x30, 0, 0x08, 0, 0, 1, 0, 2, 0x0a, 0x0b, 0x0c, 0x0d]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 12);
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn rfc2784_s2_1_minimal_header() {
        let r = Repr {
            protocol_type: 0x86dd,
            ..Repr::default()
        };
        let buf = build(&r, &[1, 2, 3]);
        assert_eq!(buf, [0, 0, 0x86, 0xdd, 1, 2, 3]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert_eq!(Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn rfc2784_s2_3_discard_nonzero_bits_1_4_5() {
        for bit in [0x4000u16, 0x0800, 0x0400] {
            let mut buf = build(&Repr::default(), &[]);
            buf[..2].copy_from_slice(&bit.to_be_bytes());
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&buf[..])).unwrap_err(),
                Error::new(DropReason::GreVersion, "flags", 0),
                "{bit:#06x}"
            );
        }
    }

    #[test]
    fn rfc2890_s2_key_and_sequence_bits_are_not_discarded() {
        // Bits 2 and 3 are within RFC 2784's "bits 1-5" but RFC 2890 defines them.
        let r = Repr {
            checksum: false,
            ..all()
        };
        assert!(Repr::parse(&Packet::new_unchecked(&build(&r, &[])[..])).is_ok());
    }

    #[test]
    fn rfc2784_s2_3_bits_6_to_12_sent_zero_and_ignored_on_receipt() {
        let r = all();
        let good = build(&r, &[9, 9, 9]);
        assert_eq!(
            u16::from_be_bytes([good[0], good[1]]) & flag_bits::IGNORED,
            0
        );
        for bit in 6..=12 {
            let mask = 0x8000u16 >> bit;
            assert_ne!(mask & flag_bits::IGNORED, 0);
            let mut buf = good.clone();
            let w = u16::from_be_bytes([buf[0], buf[1]]) | mask;
            buf[..2].copy_from_slice(&w.to_be_bytes());
            // Keep the checksum valid so only the flag bit differs.
            let mut p = Packet::new_unchecked(&mut buf[..]);
            p.fill_checksum(3);
            assert_eq!(Repr::parse(&Packet::new_unchecked(&buf[..])).unwrap(), r);
        }
    }

    #[test]
    fn rfc2784_s2_3_1_version_must_be_zero() {
        for v in 1..=7u8 {
            let mut buf = build(&Repr::default(), &[]);
            buf[1] |= v;
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&buf[..])).unwrap_err(),
                Error::new(DropReason::GreVersion, "version", 1)
            );
        }
    }

    #[test]
    fn rfc2784_s2_5_checksum_covers_header_and_payload() {
        let r = all();
        let payload = [1u8, 2, 3, 4, 5]; // odd length: padded with zero
        let buf = build(&r, &payload);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_ne!(p.checksum(), Some(0));
        assert_eq!(Repr::parse(&p).unwrap(), r);
        // Independent check: complement of the sum with the field zeroed.
        let mut zeroed = buf.clone();
        zeroed[4..6].fill(0);
        assert_eq!(p.checksum(), Some(!ones_complement_sum(&zeroed)));
        // Corrupting the payload or a header field breaks it.
        for at in [buf.len() - 1, 9, 14] {
            let mut bad = buf.clone();
            bad[at] ^= 0x10;
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(&bad[..])).unwrap_err(),
                Error::new(DropReason::GreChecksum, "checksum", 4),
                "byte {at}"
            );
        }
    }

    #[test]
    fn rfc2784_s2_6_reserved1_sent_zero_ignored_on_receipt() {
        let r = all();
        let buf = build(&r, &[7; 4]);
        assert_eq!(&buf[6..8], &[0, 0]);
        // Set Reserved1 and fix the checksum: still accepted.
        let mut odd = buf.clone();
        odd[6] = 0x12;
        Packet::new_unchecked(&mut odd[..]).fill_checksum(4);
        assert_eq!(Repr::parse(&Packet::new_unchecked(&odd[..])).unwrap(), r);
    }

    #[test]
    fn truncated_headers_name_the_field() {
        let cases: &[(&[u8], &str, usize)] = &[
            (&[], "flags", 0),
            (&[0x00], "flags", 0),
            (&[0x00, 0x00, 0x08], "protocol_type", 2),
            (&[0x80, 0x00, 0x08, 0x00, 0, 0, 0], "checksum", 4),
            (&[0xa0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0], "key", 8),
            (&[0x10, 0x00, 0x08, 0x00, 0, 0, 0], "sequence_number", 4),
            (
                &[0x30, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0],
                "sequence_number",
                8,
            ),
        ];
        for &(bytes, name, at) in cases {
            let want = Error::new(DropReason::Truncated, name, at);
            assert_eq!(Packet::new_checked(bytes).unwrap_err(), want, "{bytes:?}");
            assert_eq!(
                Repr::parse(&Packet::new_unchecked(bytes)).unwrap_err(),
                want
            );
        }
    }

    #[test]
    fn draft04_s4_4_1_c_madp_sets_key_low_bits_to_anchor_cid_or_ffff() {
        assert_eq!(key_for_anchor(Some(5), 0), 0x0000_0005);
        assert_eq!(key_for_anchor(None, 0), 0x0000_ffff);
        assert_eq!(key_for_anchor(Some(5), 0xabcd), 0xabcd_0005);
        assert_eq!(key_for_anchor(None, 0x0102), 0x0102_ffff);
    }

    #[test]
    fn draft04_s4_4_2_n_madp_reads_anchor_from_key_unless_ffff() {
        assert_eq!(anchor_connection_id(0x0000_0005), Some(5));
        assert_eq!(anchor_connection_id(0xabcd_0000), Some(0));
        assert_eq!(anchor_connection_id(0xabcd_ffff), None);
        assert_eq!(anchor_connection_id(0x0000_ffff), None);
        let r = Repr {
            key: Some(key_for_anchor(Some(3), 7)),
            ..Repr::default()
        };
        let buf = build(&r, &[]);
        let parsed = Repr::parse_mams(&Packet::new_checked(&buf[..]).unwrap()).unwrap();
        assert_eq!(parsed.anchor_connection_id(), Some(3));
    }

    #[test]
    fn draft04_s4_4_2_mams_receiver_requires_key() {
        let r = Repr {
            checksum: true,
            ..Repr::default()
        };
        let buf = build(&r, &[1, 2]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(Repr::parse(&p).is_ok());
        assert_eq!(
            Repr::parse_mams(&p).unwrap_err(),
            Error::new(DropReason::GreMissingKey, "key", 8)
        );
    }

    #[test]
    #[should_panic]
    fn emit_panics_on_short_buffer() {
        let mut buf = [0u8; 10];
        all().emit(&mut Packet::new_unchecked(&mut buf[..]), 0);
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            any::<u16>(),
            any::<bool>(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
        )
            .prop_map(|(protocol_type, checksum, key, sequence_number)| Repr {
                protocol_type,
                checksum,
                key,
                sequence_number,
            })
    }

    proptest! {
        #[test]
        fn prop_round_trip(r in arb_repr(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let buf = build(&r, &payload);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(p.header_len(), r.header_len());
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn prop_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let p = Packet::new_unchecked(&data[..]);
            let _ = (p.checksum(), p.key(), p.sequence_number(), p.payload(), p.version(),
                     p.protocol_type(), p.verify_checksum());
            if let Ok(r) = Repr::parse(&p) {
                prop_assert!(r.header_len() <= data.len());
                prop_assert_eq!(Packet::new_checked(&data[..]).is_ok(), true);
            }
            let _ = Repr::parse_mams(&p);
            let mut copy = data.clone();
            let mut m = Packet::new_unchecked(&mut copy[..]);
            m.set_key(1);
            m.set_sequence_number(2);
            m.fill_checksum(data.len());
            let _ = m.payload_mut();
        }
    }
}

//! The MX trailer of trailer-based MX convergence (draft-04 §4.2.1, layout per `WIRE.md`).
//!
//! The flags octet is the LAST octet of the PDU; the present fields precede it in reverse flag
//! order, so a receiver reads backwards from the end:
//!
//! ```text
//! | FC (1) | FSL (2) | SN (2) | TC (1) | CID (1) | NH (1) | MX flags (1) |
//! ```
//!
//! The whole layout lives in [`LAYOUT`]; [`MxTrailer::parse`], [`MxTrailer::emit`],
//! [`len_from_flags`] and the [`Trailer`] view all walk that one table, so a correction of the
//! layout is a one-line change there.

use super::{Error, Result};
use crate::drop::DropReason;

/// MX flag bits (draft-04 §4.2.1; bit 0 is the most significant bit).
pub mod flags {
    /// Bit 0: Next Header present.
    pub const NEXT_HEADER: u8 = 0x80;
    /// Bit 1: Connection ID present.
    pub const CONNECTION_ID: u8 = 0x40;
    /// Bit 2: Traffic Class present.
    pub const TRAFFIC_CLASS: u8 = 0x20;
    /// Bit 3: Sequence Number present.
    pub const SEQUENCE_NUMBER: u8 = 0x10;
    /// Bit 4: ("Packet Length Present") First SDU Length present.
    pub const FIRST_SDU_LENGTH: u8 = 0x08;
    /// Bit 5: Fragmentation Control present.
    pub const FRAGMENT_CONTROL: u8 = 0x04;
    /// Bits 6-7: reserved; sent as 0, ignored on receipt (`WIRE.md`).
    pub const RESERVED: u8 = 0x03;
    /// Every field-presence bit.
    pub const ALL_FIELDS: u8 = !RESERVED;
}

/// Which trailer field a [`FieldSpec`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    NextHeader,
    ConnectionId,
    TrafficClass,
    SequenceNumber,
    FirstSduLength,
    FragmentControl,
}

/// One row of the trailer layout: the flag announcing a field, the field, its name (used in
/// errors) and its size in bytes (1 or 2, network byte order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub flag: u8,
    pub field: Field,
    pub name: &'static str,
    pub size: usize,
}

/// The trailer layout, ordered from the flags octet BACKWARDS: the first row is the field right
/// before the flags octet (`WIRE.md`: "the field of flag bit 0 sits next to the flags octet").
#[rustfmt::skip]
pub const LAYOUT: [FieldSpec; 6] = [
    FieldSpec { flag: flags::NEXT_HEADER, field: Field::NextHeader, name: "next_header", size: 1 },
    FieldSpec { flag: flags::CONNECTION_ID, field: Field::ConnectionId, name: "connection_id", size: 1 },
    FieldSpec { flag: flags::TRAFFIC_CLASS, field: Field::TrafficClass, name: "traffic_class", size: 1 },
    FieldSpec { flag: flags::SEQUENCE_NUMBER, field: Field::SequenceNumber, name: "sequence_number", size: 2 },
    FieldSpec { flag: flags::FIRST_SDU_LENGTH, field: Field::FirstSduLength, name: "first_sdu_length", size: 2 },
    FieldSpec { flag: flags::FRAGMENT_CONTROL, field: Field::FragmentControl, name: "fragment_control", size: 1 },
];

/// Size of the flags octet.
pub const FLAGS_LEN: usize = 1;
/// Longest possible trailer (every field present): 9 with the `WIRE.md` sizes. (`WIRE.md` and
/// the brief say "1..10 bytes", but its own field sizes add up to 1 + 8 = 9; the table wins.)
pub const MAX_LEN: usize = len_from_flags(flags::ALL_FIELDS);

/// Trailer length announced by a flags octet: 1 + the sizes of the present fields (1..=[`MAX_LEN`]).
/// Reserved bits do not count (`WIRE.md`: ignored on receipt).
pub const fn len_from_flags(flags: u8) -> usize {
    LEN_BY_FLAGS[flags as usize] as usize
}

/// [`len_from_flags`] for every flags octet, computed from [`LAYOUT`] at compile time (the
/// lookup replaces a table walk per packet).
const LEN_BY_FLAGS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut f = 0;
    while f < 256 {
        t[f] = len_by_table(f as u8) as u8;
        f += 1;
    }
    t
};

const fn len_by_table(flags: u8) -> usize {
    let mut len = FLAGS_LEN;
    let mut i = 0;
    while i < LAYOUT.len() {
        if flags & LAYOUT[i].flag != 0 {
            len += LAYOUT[i].size;
        }
        i += 1;
    }
    len
}

/// Reads a big-endian field of 1 or 2 bytes.
fn read_be(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |acc, b| (acc << 8) | u16::from(*b))
}

/// Writes `value` big-endian into `out` (1 or 2 bytes; the high byte is dropped for 1).
fn write_be(out: &mut [u8], value: u16) {
    let mut v = value;
    for b in out.iter_mut().rev() {
        *b = v as u8;
        v >>= 8;
    }
}

/// The Fragmentation Control octet (draft-04 §4.2.2, `WIRE.md`): More Fragments is the most
/// significant bit, the Fragment Offset (in fragments, not 8-byte blocks) the low seven bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FragmentControl {
    /// MF: not the last fragment.
    pub more: bool,
    /// Fragment offset in units of fragments (0..=127).
    pub offset: u8,
}

impl FragmentControl {
    /// MF bit.
    pub const MORE_FRAGMENTS: u8 = 0x80;
    /// Fragment Offset bits.
    pub const OFFSET_MASK: u8 = 0x7f;
    /// draft-04 §4.2.2: at most 2^7 fragments per MX SDU.
    pub const MAX_FRAGMENTS: usize = 128;

    pub const fn from_byte(b: u8) -> Self {
        FragmentControl {
            more: b & Self::MORE_FRAGMENTS != 0,
            offset: b & Self::OFFSET_MASK,
        }
    }

    /// Encodes the octet. An `offset` above 127 cannot be encoded; its high bit is dropped.
    pub const fn to_byte(self) -> u8 {
        (if self.more { Self::MORE_FRAGMENTS } else { 0 }) | (self.offset & Self::OFFSET_MASK)
    }

    /// draft-04 §4.2.2: an FC of all zeros means the PDU carries a whole SDU.
    pub const fn is_whole(self) -> bool {
        self.to_byte() == 0
    }
}

/// A decoded MX trailer; `None` means "field absent".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MxTrailer {
    pub next_header: Option<u8>,
    pub connection_id: Option<u8>,
    pub traffic_class: Option<u8>,
    pub sequence_number: Option<u16>,
    pub first_sdu_length: Option<u16>,
    pub fragment_control: Option<FragmentControl>,
}

impl MxTrailer {
    #[cfg(test)]
    fn get(&self, field: Field) -> Option<u16> {
        match field {
            Field::NextHeader => self.next_header.map(u16::from),
            Field::ConnectionId => self.connection_id.map(u16::from),
            Field::TrafficClass => self.traffic_class.map(u16::from),
            Field::SequenceNumber => self.sequence_number,
            Field::FirstSduLength => self.first_sdu_length,
            Field::FragmentControl => self.fragment_control.map(|fc| u16::from(fc.to_byte())),
        }
    }

    fn set(&mut self, field: Field, value: Option<u16>) {
        // The 1-byte fields only ever receive values read from 1 byte, so `as u8` loses nothing.
        match field {
            Field::NextHeader => self.next_header = value.map(|v| v as u8),
            Field::ConnectionId => self.connection_id = value.map(|v| v as u8),
            Field::TrafficClass => self.traffic_class = value.map(|v| v as u8),
            Field::SequenceNumber => self.sequence_number = value,
            Field::FirstSduLength => self.first_sdu_length = value,
            Field::FragmentControl => {
                self.fragment_control = value.map(|v| FragmentControl::from_byte(v as u8))
            }
        }
    }

    /// The MX flags octet announcing exactly the present fields (reserved bits 0).
    pub fn flags(&self) -> u8 {
        // Spelled out rather than walking LAYOUT (per packet); `tests::flags_and_emit_match_the_layout_table`
        // checks it against the table.
        let bit = |present: bool, flag: u8| if present { flag } else { 0 };
        bit(self.next_header.is_some(), flags::NEXT_HEADER)
            | bit(self.connection_id.is_some(), flags::CONNECTION_ID)
            | bit(self.traffic_class.is_some(), flags::TRAFFIC_CLASS)
            | bit(self.sequence_number.is_some(), flags::SEQUENCE_NUMBER)
            | bit(self.first_sdu_length.is_some(), flags::FIRST_SDU_LENGTH)
            | bit(self.fragment_control.is_some(), flags::FRAGMENT_CONTROL)
    }

    /// Encoded length: 1 + the sizes of the present fields (1..=[`MAX_LEN`]).
    pub fn buffer_len(&self) -> usize {
        len_from_flags(self.flags())
    }

    /// True when the PDU carries a fragment rather than a whole SDU (draft-04 §4.2.2: FC absent
    /// or all zeros means a whole SDU).
    pub fn is_fragment(&self) -> bool {
        self.fragment_control.is_some_and(|fc| !fc.is_whole())
    }

    /// Decodes the trailer at the end of `pdu`, reading backwards: the flags octet first
    /// (draft-04 §4.2.1: "the Receiver SHOULD first decode the MX flags field to determine the
    /// length of the MX trailer"), then each announced field in [`LAYOUT`] order.
    ///
    /// Errors ([`DropReason::MxTrailerLength`]): empty input (field `mx_flags`, offset 0), or a
    /// field that does not fit before the flags octet (that field's name; offset 0, the first
    /// byte of `pdu`, where the input ran out while reading backwards).
    pub fn parse(pdu: &[u8]) -> Result<MxTrailer> {
        let Some((&flags, rest)) = pdu.split_last() else {
            return Err(Error::new(DropReason::MxTrailerLength, "mx_flags", 0));
        };
        // Fast path (per packet): the whole trailer fits, so read the fields spelled out in
        // LAYOUT order without walking the table. Short input takes the table walk below,
        // which names the field that runs off the front. `tests::parse_matches_the_layout_walk`
        // checks both agree.
        if let Some(fields) = rest.len().checked_sub(len_from_flags(flags) - FLAGS_LEN) {
            if let Some(f) = rest.get(fields..) {
                return Ok(Self::parse_fields(flags, f));
            }
        }
        Self::parse_by_table(flags, rest)
    }

    /// Decodes the fields announced by `flags` from `f`, which holds exactly them (the bytes
    /// before the flags octet).
    fn parse_fields(flags: u8, f: &[u8]) -> MxTrailer {
        let mut t = MxTrailer::default();
        let mut end = f.len();
        let mut take = |n: usize| {
            // `f` holds exactly the announced fields: end >= n for each of them.
            let start = end.saturating_sub(n);
            let v = read_be(f.get(start..end).unwrap_or(&[]));
            end = start;
            v
        };
        if flags & flags::NEXT_HEADER != 0 {
            t.next_header = Some(take(1) as u8);
        }
        if flags & flags::CONNECTION_ID != 0 {
            t.connection_id = Some(take(1) as u8);
        }
        if flags & flags::TRAFFIC_CLASS != 0 {
            t.traffic_class = Some(take(1) as u8);
        }
        if flags & flags::SEQUENCE_NUMBER != 0 {
            t.sequence_number = Some(take(2));
        }
        if flags & flags::FIRST_SDU_LENGTH != 0 {
            t.first_sdu_length = Some(take(2));
        }
        if flags & flags::FRAGMENT_CONTROL != 0 {
            t.fragment_control = Some(FragmentControl::from_byte(take(1) as u8));
        }
        t
    }

    /// The reference decoder: walks [`LAYOUT`], naming the field that does not fit.
    fn parse_by_table(flags: u8, rest: &[u8]) -> Result<MxTrailer> {
        let mut end = rest.len();
        let mut trailer = MxTrailer::default();
        for spec in LAYOUT.iter().filter(|s| flags & s.flag != 0) {
            let start = end.checked_sub(spec.size).ok_or(Error::new(
                DropReason::MxTrailerLength,
                spec.name,
                0,
            ))?;
            let bytes = rest.get(start..end).ok_or(Error::new(
                DropReason::MxTrailerLength,
                spec.name,
                start,
            ))?;
            trailer.set(spec.field, Some(read_be(bytes)));
            end = start;
        }
        Ok(trailer)
    }

    /// Encodes the trailer into `out`, which must be exactly [`buffer_len`](Self::buffer_len)
    /// bytes (the tail of the PDU). Reserved flag bits are sent as 0 (`WIRE.md`).
    ///
    /// # Panics
    /// If `out.len() != self.buffer_len()` (a caller bug, as in smoltcp's `emit`).
    pub fn emit(&self, out: &mut [u8]) {
        let flags = self.flags();
        assert_eq!(out.len(), len_from_flags(flags), "MX trailer buffer length");
        let (flags_octet, rest) = out.split_last_mut().expect("trailer is at least 1 byte");
        *flags_octet = flags;
        // The fields go backwards from the flags octet in LAYOUT order; spelled out (no table
        // walk per packet), checked against the table by
        // `tests::flags_and_emit_match_the_layout_table`.
        let mut end = rest.len();
        let mut put1 = |v: Option<u8>, rest: &mut [u8]| {
            if let Some(v) = v {
                end -= 1;
                rest[end] = v;
            }
        };
        put1(self.next_header, rest);
        put1(self.connection_id, rest);
        put1(self.traffic_class, rest);
        let mut put2 = |v: Option<u16>, rest: &mut [u8]| {
            if let Some(v) = v {
                end -= 2;
                rest[end..end + 2].copy_from_slice(&v.to_be_bytes());
            }
        };
        put2(self.sequence_number, rest);
        put2(self.first_sdu_length, rest);
        if let Some(fc) = self.fragment_control {
            end -= 1;
            rest[end] = fc.to_byte();
        }
        debug_assert_eq!(end, 0);
    }

    /// The reference encoder: walks [`LAYOUT`] (what `emit` spells out).
    #[cfg(test)]
    fn emit_by_table(&self, out: &mut [u8]) {
        let flags = LAYOUT
            .iter()
            .filter(|s| self.get(s.field).is_some())
            .fold(0, |acc, s| acc | s.flag);
        assert_eq!(out.len(), len_by_table(flags), "MX trailer buffer length");
        let (flags_octet, rest) = out.split_last_mut().expect("trailer is at least 1 byte");
        *flags_octet = flags;
        let mut end = rest.len();
        for spec in LAYOUT.iter() {
            if let Some(value) = self.get(spec.field) {
                let start = end - spec.size;
                write_be(&mut rest[start..end], value);
                end = start;
            }
        }
    }
}

/// A zero-copy view of the MX trailer at the end of a PDU buffer. After
/// [`new_checked`](Self::new_checked) no accessor panics.
#[derive(Debug, Clone)]
pub struct Trailer<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Trailer<T> {
    /// Wraps a whole PDU (the trailer is its tail) without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Trailer { buffer }
    }

    /// Wraps a whole PDU and checks that the trailer its flags octet announces fits.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    /// Checks that the buffer is not empty and holds the whole announced trailer.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        let Some(&flags) = data.last() else {
            return Err(Error::new(DropReason::MxTrailerLength, "mx_flags", 0));
        };
        if data.len() < len_from_flags(flags) {
            // Name the first field (from the flags octet backwards) that runs off the front.
            let mut end = data.len() - FLAGS_LEN;
            for spec in LAYOUT.iter().filter(|s| flags & s.flag != 0) {
                match end.checked_sub(spec.size) {
                    Some(start) => end = start,
                    None => return Err(Error::new(DropReason::MxTrailerLength, spec.name, 0)),
                }
            }
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw flags octet (reserved bits included).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref().last().copied().unwrap_or(0)
    }

    /// Trailer length announced by the flags octet.
    pub fn trailer_len(&self) -> usize {
        len_from_flags(self.flags())
    }

    /// Length of the PDU before the trailer (the SDU bytes); 0 if the trailer does not fit.
    pub fn payload_len(&self) -> usize {
        self.buffer
            .as_ref()
            .len()
            .saturating_sub(self.trailer_len())
    }

    /// The PDU bytes before the trailer.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(..self.payload_len()).unwrap_or(&[])
    }

    /// The trailer bytes (flags octet last).
    pub fn trailer_bytes(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(self.payload_len()..).unwrap_or(&[])
    }

    fn field(&self, field: Field) -> Option<u16> {
        let data = self.buffer.as_ref();
        let flags = self.flags();
        let mut end = data.len().checked_sub(FLAGS_LEN)?;
        for spec in LAYOUT.iter().filter(|s| flags & s.flag != 0) {
            let start = end.checked_sub(spec.size)?;
            if spec.field == field {
                return data.get(start..end).map(read_be);
            }
            end = start;
        }
        None
    }

    pub fn next_header(&self) -> Option<u8> {
        self.field(Field::NextHeader).map(|v| v as u8)
    }
    pub fn connection_id(&self) -> Option<u8> {
        self.field(Field::ConnectionId).map(|v| v as u8)
    }
    pub fn traffic_class(&self) -> Option<u8> {
        self.field(Field::TrafficClass).map(|v| v as u8)
    }
    pub fn sequence_number(&self) -> Option<u16> {
        self.field(Field::SequenceNumber)
    }
    pub fn first_sdu_length(&self) -> Option<u16> {
        self.field(Field::FirstSduLength)
    }
    pub fn fragment_control(&self) -> Option<FragmentControl> {
        self.field(Field::FragmentControl)
            .map(|v| FragmentControl::from_byte(v as u8))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Trailer<T> {
    /// Overwrites the sequence number in place (e.g. re-sequencing on another path). Returns
    /// false, changing nothing, if the trailer has no SN field or does not fit.
    pub fn set_sequence_number(&mut self, sn: u16) -> bool {
        let flags = self.flags();
        let data = self.buffer.as_mut();
        let Some(mut end) = data.len().checked_sub(FLAGS_LEN) else {
            return false;
        };
        for spec in LAYOUT.iter().filter(|s| flags & s.flag != 0) {
            let Some(start) = end.checked_sub(spec.size) else {
                return false;
            };
            if spec.field == Field::SequenceNumber {
                return match data.get_mut(start..end) {
                    Some(out) => {
                        write_be(out, sn);
                        true
                    }
                    None => false,
                };
            }
            end = start;
        }
        false
    }
}

/// The set of trailer fields negotiated for one delivery connection and direction (draft-04
/// §4.2.1, last paragraph: the NCM indicates "which of the above fields SHOULD be included for
/// individual delivery connection, on downlink and uplink, respectively"). A flags mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TrailerFields(pub u8);

impl TrailerFields {
    /// No field negotiated (a flags-only trailer).
    pub const NONE: TrailerFields = TrailerFields(0);
    /// Every field.
    pub const ALL: TrailerFields = TrailerFields(flags::ALL_FIELDS);

    /// A mask of field flags; reserved bits are dropped.
    pub const fn new(mask: u8) -> Self {
        TrailerFields(mask & flags::ALL_FIELDS)
    }

    /// The mask (reserved bits 0).
    pub const fn bits(self) -> u8 {
        self.0 & flags::ALL_FIELDS
    }

    /// True when every flag in `flag` is negotiated.
    pub const fn contains(self, flag: u8) -> bool {
        self.bits() & flag == flag
    }

    /// The same set with `flag` added.
    pub const fn with(self, flag: u8) -> Self {
        Self::new(self.0 | flag)
    }

    /// Encoded trailer length when every negotiated field is present.
    pub const fn trailer_len(self) -> usize {
        len_from_flags(self.bits())
    }

    /// Clears the fields of `trailer` that are not negotiated (transmit side).
    pub fn apply(self, trailer: &mut MxTrailer) {
        for spec in LAYOUT.iter() {
            if !self.contains(spec.flag) {
                trailer.set(spec.field, None);
            }
        }
    }

    /// Rejects a received trailer that lacks a negotiated field
    /// ([`DropReason::MxTrailerMissingField`], naming the first missing field in [`LAYOUT`]
    /// order). The offset is that of the flags octet within the trailer
    /// (`trailer.buffer_len() - 1`); shift it by the trailer's start in the PDU. Extra,
    /// non-negotiated fields are accepted: the flags octet describes them.
    pub fn check(self, trailer: &MxTrailer) -> Result<()> {
        let present = trailer.flags();
        match LAYOUT
            .iter()
            .find(|s| self.contains(s.flag) && present & s.flag == 0)
        {
            Some(spec) => Err(Error::new(
                DropReason::MxTrailerMissingField,
                spec.name,
                trailer.buffer_len() - FLAGS_LEN,
            )),
            None => Ok(()),
        }
    }
}

/// SN of SDU `index` (0-based) of `count` concatenated SDUs whose trailer carries `last_sn`
/// (draft-04 §4.2.3: the trailer SN is the LAST SDU's; SDU i of k has SN `(SN - (k-1-i)) mod
/// 65536`). An `index` at or past the end yields `last_sn`.
pub fn sdu_sequence_number(last_sn: u16, index: usize, count: usize) -> u16 {
    let back = count.saturating_sub(1).saturating_sub(index);
    // Only the distance modulo 2^16 matters.
    last_sn.wrapping_sub((back % 65536) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_matches_the_layout_walk(data in proptest::collection::vec(any::<u8>(), 1..12)) {
            let (&flags, rest) = data.split_last().unwrap();
            prop_assert_eq!(MxTrailer::parse(&data), MxTrailer::parse_by_table(flags, rest));
        }
    }

    #[test]
    fn flags_and_emit_match_the_layout_table() {
        for f in 0..=255u8 {
            assert_eq!(len_from_flags(f), len_by_table(f), "flags {f:#04x}");
        }
        // Every combination of present fields, with distinct values.
        for f in 0..64u8 {
            let on = |bit: u8| f & (1 << bit) != 0;
            let t = MxTrailer {
                next_header: on(0).then_some(0x11),
                connection_id: on(1).then_some(0x22),
                traffic_class: on(2).then_some(0x33),
                sequence_number: on(3).then_some(0x4455),
                first_sdu_length: on(4).then_some(0x6677),
                fragment_control: on(5).then_some(FragmentControl {
                    more: true,
                    offset: 9,
                }),
            };
            let n = t.buffer_len();
            let (mut a, mut b) = ([0u8; MAX_LEN], [0u8; MAX_LEN]);
            t.emit(&mut a[..n]);
            t.emit_by_table(&mut b[..n]);
            assert_eq!(a[..n], b[..n], "{t:?}");
            assert_eq!(MxTrailer::parse(&a[..n]).unwrap(), t);
        }
    }

    fn full() -> MxTrailer {
        MxTrailer {
            next_header: Some(17),
            connection_id: Some(1),
            traffic_class: Some(3),
            sequence_number: Some(0x0201),
            first_sdu_length: Some(0x0030),
            fragment_control: Some(FragmentControl {
                more: true,
                offset: 5,
            }),
        }
    }

    /// A trailer with exactly the fields of `mask`, with distinct values.
    fn with_mask(mask: u8) -> MxTrailer {
        let mut t = full();
        TrailerFields::new(mask).apply(&mut t);
        t
    }

    #[test]
    fn wire_md_layout_all_fields() {
        // WIRE.md: | FC | FSL (2) | SN (2) | TC | CID | NH | flags |
        let mut out = [0u8; 9];
        full().emit(&mut out);
        assert_eq!(out, [0x85, 0x00, 0x30, 0x02, 0x01, 3, 1, 17, 0xfc]);
    }

    #[test]
    fn s4_2_1_receiver_should_decode_flags_first() {
        // The flags octet alone decides the length: the same tail bytes parse differently under
        // different flags, and leading bytes outside the announced trailer are not read.
        let pdu = [0xaa, 0xbb, 0x02, 0x01, 0x11, 0x90];
        let t = MxTrailer::parse(&pdu).unwrap();
        assert_eq!(t.next_header, Some(0x11));
        assert_eq!(t.sequence_number, Some(0x0201));
        assert_eq!(t.buffer_len(), 4);
        let pdu = [0xaa, 0xbb, 0x02, 0x01, 0x11, 0x80];
        let t = MxTrailer::parse(&pdu).unwrap();
        assert_eq!(t.next_header, Some(0x11));
        assert_eq!(t.sequence_number, None);
        assert_eq!(t.buffer_len(), 2);
    }

    #[test]
    fn s4_2_1_flags_octet_is_last() {
        let t = with_mask(flags::SEQUENCE_NUMBER);
        let mut out = [0u8; 3];
        t.emit(&mut out);
        assert_eq!(out[2], flags::SEQUENCE_NUMBER);
    }

    #[test]
    fn wire_md_reserved_bits_sent_as_zero_and_ignored_on_receipt() {
        let pdu = [0x11, 0x80 | flags::RESERVED];
        let t = MxTrailer::parse(&pdu).unwrap();
        assert_eq!(t.next_header, Some(0x11));
        assert_eq!(t.buffer_len(), 2);
        assert_eq!(len_from_flags(flags::RESERVED), 1);
        let mut out = [0u8; 2];
        t.emit(&mut out);
        assert_eq!(out, [0x11, 0x80]);
    }

    #[test]
    fn all_64_flag_combinations_round_trip() {
        for mask in 0u8..64 {
            let flags = mask << 2;
            let t = with_mask(flags);
            assert_eq!(t.flags(), flags);
            let sizes: usize = LAYOUT
                .iter()
                .filter(|s| flags & s.flag != 0)
                .map(|s| s.size)
                .sum();
            assert_eq!(t.buffer_len(), 1 + sizes);
            assert_eq!(len_from_flags(flags), 1 + sizes);
            assert!((1..=MAX_LEN).contains(&t.buffer_len()));
            // Emit at the end of a PDU, then parse the whole PDU.
            let mut pdu = vec![0xeeu8; 7 + t.buffer_len()];
            let n = pdu.len();
            t.emit(&mut pdu[n - t.buffer_len()..]);
            assert_eq!(MxTrailer::parse(&pdu).unwrap(), t, "flags {flags:#04x}");
            let view = Trailer::new_checked(&pdu[..]).unwrap();
            assert_eq!(view.payload_len(), 7);
            assert_eq!(view.sequence_number(), t.sequence_number);
            assert_eq!(view.fragment_control(), t.fragment_control);
            assert_eq!(view.first_sdu_length(), t.first_sdu_length);
            assert_eq!(view.next_header(), t.next_header);
            assert_eq!(view.connection_id(), t.connection_id);
            assert_eq!(view.traffic_class(), t.traffic_class);
            // One byte short of the trailer is rejected (unless flags-only).
            if t.buffer_len() > 1 {
                let short = &pdu[8..];
                let err = MxTrailer::parse(short).unwrap_err();
                assert_eq!(err.reason, DropReason::MxTrailerLength);
                assert!(Trailer::new_checked(short).is_err());
            }
        }
    }

    #[test]
    fn rejects_empty_input() {
        let err = MxTrailer::parse(&[]).unwrap_err();
        assert_eq!(err, Error::new(DropReason::MxTrailerLength, "mx_flags", 0));
        assert_eq!(Trailer::new_checked(&[][..]).unwrap_err(), err);
    }

    #[test]
    fn rejects_trailer_longer_than_input_naming_the_field() {
        // Flags announce NH + SN (4 bytes) but only NH and one SN byte precede them.
        let err = MxTrailer::parse(&[0x02, 0x11, 0x90]).unwrap_err();
        assert_eq!(
            err,
            Error::new(DropReason::MxTrailerLength, "sequence_number", 0)
        );
        // Flags alone with every field announced.
        let err = MxTrailer::parse(&[0xfc]).unwrap_err();
        assert_eq!(
            err,
            Error::new(DropReason::MxTrailerLength, "next_header", 0)
        );
        assert_eq!(
            Trailer::new_checked(&[0x02, 0x11, 0x90][..]).unwrap_err(),
            Error::new(DropReason::MxTrailerLength, "sequence_number", 0)
        );
    }

    #[test]
    fn s4_2_2_fc_bits() {
        assert_eq!(
            FragmentControl::from_byte(0x80),
            FragmentControl {
                more: true,
                offset: 0
            }
        );
        assert_eq!(
            FragmentControl::from_byte(0x01),
            FragmentControl {
                more: false,
                offset: 1
            }
        );
        assert_eq!(
            FragmentControl::from_byte(0xff),
            FragmentControl {
                more: true,
                offset: 127
            }
        );
        for b in 0..=255u8 {
            assert_eq!(FragmentControl::from_byte(b).to_byte(), b);
        }
    }

    #[test]
    fn s4_2_2_fc_absent_or_zero_means_whole_sdu() {
        assert!(FragmentControl::from_byte(0).is_whole());
        assert!(!FragmentControl::from_byte(0x80).is_whole());
        assert!(!FragmentControl::from_byte(0x01).is_whole());
        let mut t = with_mask(flags::SEQUENCE_NUMBER);
        assert!(!t.is_fragment());
        t.fragment_control = Some(FragmentControl::default());
        assert!(!t.is_fragment());
        t.fragment_control = Some(FragmentControl::from_byte(0x81));
        assert!(t.is_fragment());
    }

    #[test]
    fn s4_2_3_sn_of_concatenated_sdus() {
        // draft-04 §4.2.3 example: SN 6, 3 SDUs -> 4, 5, 6.
        let sns: Vec<u16> = (0..3).map(|i| sdu_sequence_number(6, i, 3)).collect();
        assert_eq!(sns, [4, 5, 6]);
        // Modulo 65536.
        let sns: Vec<u16> = (0..3).map(|i| sdu_sequence_number(1, i, 3)).collect();
        assert_eq!(sns, [65535, 0, 1]);
        assert_eq!(sdu_sequence_number(10, 0, 65537), 10);
        assert_eq!(sdu_sequence_number(10, 5, 3), 10);
        assert_eq!(sdu_sequence_number(10, 0, 0), 10);
    }

    #[test]
    fn s4_2_1_negotiated_fields_apply_and_check() {
        let neg = TrailerFields::new(flags::SEQUENCE_NUMBER | flags::CONNECTION_ID | 0x03);
        assert_eq!(neg.bits(), 0x50);
        assert!(neg.contains(flags::SEQUENCE_NUMBER));
        assert!(!neg.contains(flags::NEXT_HEADER));
        assert_eq!(neg.trailer_len(), 4);
        let mut t = full();
        neg.apply(&mut t);
        assert_eq!(t.flags(), 0x50);
        assert_eq!(t.sequence_number, Some(0x0201));
        assert_eq!(t.next_header, None);
        assert!(neg.check(&t).is_ok());
        // Extra fields are fine.
        assert!(neg.check(&full()).is_ok());
        // A missing negotiated field is rejected, naming it.
        let t = with_mask(flags::CONNECTION_ID | flags::NEXT_HEADER);
        let err = neg.check(&t).unwrap_err();
        assert_eq!(
            err,
            Error::new(DropReason::MxTrailerMissingField, "sequence_number", 2)
        );
        assert!(TrailerFields::NONE.check(&MxTrailer::default()).is_ok());
        assert!(TrailerFields::ALL.check(&with_mask(0xf8)).is_err());
    }

    #[test]
    fn view_sets_sequence_number_in_place() {
        let t = with_mask(flags::NEXT_HEADER | flags::SEQUENCE_NUMBER | flags::FRAGMENT_CONTROL);
        let mut pdu = vec![0u8; 3 + t.buffer_len()];
        let n = pdu.len();
        t.emit(&mut pdu[n - t.buffer_len()..]);
        let mut view = Trailer::new_checked(&mut pdu[..]).unwrap();
        assert!(view.set_sequence_number(0xbeef));
        assert_eq!(view.sequence_number(), Some(0xbeef));
        assert_eq!(view.payload(), &[0, 0, 0]);
        let parsed = MxTrailer::parse(&pdu).unwrap();
        assert_eq!(parsed.sequence_number, Some(0xbeef));
        assert_eq!(parsed.fragment_control, t.fragment_control);
        let mut no_sn = [0x11u8, 0x80];
        assert!(!Trailer::new_unchecked(&mut no_sn[..]).set_sequence_number(1));
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
            if args.contains(&"--control") {
                continue; // mx_control's test.
            }
            let bytes = hex(v["hex"].as_str().unwrap());
            // The trailer follows the IP header; with a readable IPv4 IHL, parse only what
            // follows it, so a trailer that runs into the IP header is rejected.
            let body = match bytes.first() {
                Some(b) if b >> 4 == 4 => bytes.get(usize::from(b & 0x0f) * 4..).unwrap_or(&[]),
                _ => &bytes[..],
            };
            let parsed = MxTrailer::parse(body);
            if v.get("expect_exit").is_some() {
                assert!(parsed.is_err(), "{name}: expected rejection");
                checked += 1;
                continue;
            }
            let Some(exp) = v["expect"].get("trailer") else {
                continue;
            };
            let t = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
            let opt = |k: &str| exp[k].as_u64();
            assert_eq!(opt("length"), Some(t.buffer_len() as u64), "{name}");
            assert_eq!(opt("flags"), Some(u64::from(t.flags())), "{name}");
            assert_eq!(opt("next_header"), t.next_header.map(u64::from), "{name}");
            assert_eq!(
                opt("connection_id"),
                t.connection_id.map(u64::from),
                "{name}"
            );
            assert_eq!(
                opt("traffic_class"),
                t.traffic_class.map(u64::from),
                "{name}"
            );
            assert_eq!(
                opt("sequence_number"),
                t.sequence_number.map(u64::from),
                "{name}"
            );
            assert_eq!(
                opt("first_sdu_length"),
                t.first_sdu_length.map(u64::from),
                "{name}"
            );
            let frag = t.fragment_control.filter(|fc| !fc.is_whole());
            match (&exp["fragment"], frag) {
                (serde_json::Value::Null, None) => {}
                (f, Some(fc)) => {
                    assert_eq!(f["offset"].as_u64(), Some(u64::from(fc.offset)), "{name}");
                    assert_eq!(f["more"].as_bool(), Some(fc.more), "{name}");
                }
                (f, None) => panic!("{name}: expected fragment {f}"),
            }
            // Re-emitting reproduces the trailer bytes.
            let mut out = vec![0u8; t.buffer_len()];
            t.emit(&mut out);
            assert_eq!(&out[..], &bytes[bytes.len() - out.len()..], "{name}");
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} vectors checked");
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    fn arb_trailer() -> impl Strategy<Value = MxTrailer> {
        (
            any::<Option<u8>>(),
            any::<Option<u8>>(),
            any::<Option<u8>>(),
            any::<Option<u16>>(),
            any::<Option<u16>>(),
            any::<Option<u8>>(),
        )
            .prop_map(|(nh, cid, tc, sn, fsl, fc)| MxTrailer {
                next_header: nh,
                connection_id: cid,
                traffic_class: tc,
                sequence_number: sn,
                first_sdu_length: fsl,
                fragment_control: fc.map(FragmentControl::from_byte),
            })
    }

    proptest! {
        #[test]
        fn prop_round_trip(t in arb_trailer(), prefix in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut pdu = prefix.clone();
            pdu.resize(prefix.len() + t.buffer_len(), 0);
            let n = pdu.len();
            t.emit(&mut pdu[n - t.buffer_len()..]);
            prop_assert_eq!(MxTrailer::parse(&pdu).unwrap(), t);
            let view = Trailer::new_checked(&pdu[..]).unwrap();
            prop_assert_eq!(view.payload(), &prefix[..]);
            prop_assert_eq!(view.trailer_len(), t.buffer_len());
        }

        #[test]
        fn prop_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            let parsed = MxTrailer::parse(&data);
            let view = Trailer::new_checked(&data[..]);
            prop_assert_eq!(parsed.is_ok(), view.is_ok());
            if let Ok(t) = parsed {
                prop_assert!(t.buffer_len() <= data.len());
                prop_assert_eq!(t.flags(), data[data.len() - 1] & flags::ALL_FIELDS);
            }
            // Unchecked view accessors never panic either.
            let v = Trailer::new_unchecked(&data[..]);
            let _ = (v.next_header(), v.connection_id(), v.traffic_class(), v.sequence_number(),
                     v.first_sdu_length(), v.fragment_control(), v.payload(), v.trailer_bytes());
            let mut copy = data.clone();
            let _ = Trailer::new_unchecked(&mut copy[..]).set_sequence_number(7);
        }

        #[test]
        fn prop_sdu_sequence_numbers_are_consecutive(last in any::<u16>(), count in 1usize..300) {
            for i in 1..count {
                prop_assert_eq!(
                    sdu_sequence_number(last, i - 1, count).wrapping_add(1),
                    sdu_sequence_number(last, i, count)
                );
            }
            prop_assert_eq!(sdu_sequence_number(last, count - 1, count), last);
        }
    }
}

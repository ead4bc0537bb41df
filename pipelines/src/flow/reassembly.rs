//! Receiver-side reassembly of MX fragments (draft-04 §4.2.2): fragments with the same flow and
//! Sequence Number are combined "in the relative order indicated by the Fragment Offset".
//!
//! Sans-IO and allocation-free per packet: `max_slots` slots, each with a `max_sdu_bytes` buffer
//! and a 128-entry piece table, are allocated at creation. Pieces are stored in arrival order
//! (an offset counts fragments, not bytes, so a piece's byte position is unknown until its
//! predecessors arrive) and copied out in offset order when the SDU is complete.
//!
//! The caller passes fragment 0 including whatever header it wants kept at the front of the
//! SDU, and later fragments as payload only; the result is the concatenation of the pieces.

use std::collections::HashMap;

use super::seqnum::{FlowKey, Sn16};
use super::{Instant, MS};
use crate::drop::DropReason;

/// Maximum fragment offset: "The maximum number of fragments per MX SDU is 2^7 (=128)"
/// (draft-04 §4.2.2).
pub const MAX_FRAGMENT_OFFSET: u8 = 127;

/// The Fragmentation Control field (draft-04 §4.2.2; WIRE.md: MF is `0x80`, the offset is
/// `FC & 0x7f`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Fragment Offset, in fragments (`0..=127` on the wire).
    pub offset: u8,
    /// More Fragments: `false` on the last fragment.
    pub more: bool,
}

impl FragmentInfo {
    /// Decode an FC octet. `None` for `0x00`: "A MX PDU carries a whole MX SDU without
    /// fragmentation if the FC field is set to all 0s" (draft-04 §4.2.2).
    pub const fn from_fc(fc: u8) -> Option<Self> {
        if fc == 0 {
            None
        } else {
            Some(FragmentInfo {
                offset: fc & 0x7f,
                more: fc & 0x80 != 0,
            })
        }
    }

    /// Encode as an FC octet (the offset is masked to 7 bits).
    pub const fn fc(self) -> u8 {
        (self.offset & 0x7f) | if self.more { 0x80 } else { 0 }
    }

    /// Offset 0 and no more fragments: a whole SDU, not a fragment.
    pub const fn is_whole(self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// Sizing of a [`Reassembler`]. All storage is allocated by [`Reassembler::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// SDUs under reassembly at once.
    pub max_slots: usize,
    /// How long an incomplete SDU is kept after its first fragment, in ns.
    pub timeout_ns: u64,
    /// Largest SDU (sum of its pieces), bytes; also the size of each slot's buffer.
    pub max_sdu_bytes: usize,
    /// Cap on the bytes held across all slots.
    pub max_total_bytes: usize,
}

impl Default for ReassemblyConfig {
    /// AMBIGUITY: draft-04 §4.2.2 gives no reassembly timeout or limits. We use 64 slots,
    /// 1 s (the upper clamp of the reorder timeout, WIRE.md: fragments may take different
    /// paths), 65 535-byte SDUs (the IPv4 maximum) and a 1 MiB cap.
    fn default() -> Self {
        ReassemblyConfig {
            max_slots: 64,
            timeout_ns: 1000 * MS,
            max_sdu_bytes: 65_535,
            max_total_bytes: 1 << 20,
        }
    }
}

/// Why a fragment was refused. Each maps to a [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassemblyError {
    /// A fragment with this offset is already held.
    Duplicate,
    /// The fragment contradicts the known last fragment: a second last fragment at another
    /// offset, or a last fragment below an offset already received.
    Overlap,
    /// Offset above 127, beyond the known last fragment, or a non-last fragment without data.
    OutOfRange,
    /// The SDU would exceed `max_sdu_bytes` (the partial SDU is discarded).
    TooBig,
    /// Every slot is busy and none has expired.
    NoSlot,
    /// The fragment would push the bytes held past `max_total_bytes`.
    MemoryFull,
}

impl ReassemblyError {
    /// The drop counter this rejection increments.
    pub const fn reason(self) -> DropReason {
        match self {
            ReassemblyError::Duplicate => DropReason::ReassemblyDuplicate,
            ReassemblyError::Overlap => DropReason::ReassemblyOverlap,
            ReassemblyError::OutOfRange => DropReason::ReassemblyOutOfRange,
            ReassemblyError::TooBig => DropReason::ReassemblyTooBig,
            ReassemblyError::NoSlot => DropReason::ReassemblyNoSlot,
            ReassemblyError::MemoryFull => DropReason::ReassemblyMemoryFull,
        }
    }
}

impl core::fmt::Display for ReassemblyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason().as_str())
    }
}

impl std::error::Error for ReassemblyError {}

/// Counters of a [`Reassembler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Fragments accepted into a slot.
    pub fragments: u64,
    /// SDUs completed.
    pub completed: u64,
    /// Whole SDUs (FC offset 0, MF 0) passed straight through.
    pub passthrough: u64,
    /// Rejections: [`ReassemblyError::Duplicate`].
    pub duplicate: u64,
    /// Rejections: [`ReassemblyError::Overlap`].
    pub overlap: u64,
    /// Rejections: [`ReassemblyError::OutOfRange`].
    pub out_of_range: u64,
    /// Rejections: [`ReassemblyError::TooBig`].
    pub too_big: u64,
    /// Rejections: [`ReassemblyError::NoSlot`].
    pub no_slot: u64,
    /// Rejections: [`ReassemblyError::MemoryFull`].
    pub memory_full: u64,
    /// Incomplete SDUs expired ([`DropReason::ReassemblyTimeout`]).
    pub timeouts: u64,
    /// Fragments discarded with expired or too-big SDUs.
    pub fragments_discarded: u64,
}

impl ReassemblyStats {
    /// The counter of a reassembly drop reason (0 for other reasons).
    pub fn drops(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::ReassemblyDuplicate => self.duplicate,
            DropReason::ReassemblyOverlap => self.overlap,
            DropReason::ReassemblyOutOfRange => self.out_of_range,
            DropReason::ReassemblyTooBig => self.too_big,
            DropReason::ReassemblyNoSlot => self.no_slot,
            DropReason::ReassemblyMemoryFull => self.memory_full,
            DropReason::ReassemblyTimeout => self.timeouts,
            _ => 0,
        }
    }

    fn count(&mut self, e: ReassemblyError) {
        let c = match e {
            ReassemblyError::Duplicate => &mut self.duplicate,
            ReassemblyError::Overlap => &mut self.overlap,
            ReassemblyError::OutOfRange => &mut self.out_of_range,
            ReassemblyError::TooBig => &mut self.too_big,
            ReassemblyError::NoSlot => &mut self.no_slot,
            ReassemblyError::MemoryFull => &mut self.memory_full,
        };
        *c += 1;
    }
}

/// Fragments are identified by flow and SN (draft-04 §4.2.2: "combines MX PDUs that all have
/// the same MX Sequence Number"; SNs are per connection and TC, §4.2.1).
type SlotKey = (FlowKey, Sn16);

#[derive(Debug)]
struct Slot {
    key: Option<SlotKey>,
    created: Instant,
    /// Pieces in arrival order; capacity `max_sdu_bytes`, never grown.
    data: Vec<u8>,
    /// `(start, len)` in `data` of the piece at each offset.
    pieces: [(u32, u32); 128],
    /// Bit `i`: the piece at offset `i` is held.
    received: u128,
    /// Offset of the last fragment (MF = 0), once seen.
    last: Option<u8>,
}

/// Reassembles MX fragments of many flows at once.
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    slots: Vec<Slot>,
    index: HashMap<SlotKey, usize>,
    free: Vec<usize>,
    in_use: usize,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// A reassembler with all slot storage allocated (`max_slots × max_sdu_bytes` bytes).
    pub fn new(config: ReassemblyConfig) -> Self {
        let max_sdu = config.max_sdu_bytes.min(u32::MAX as usize);
        let config = ReassemblyConfig {
            max_sdu_bytes: max_sdu,
            ..config
        };
        let slots = (0..config.max_slots)
            .map(|_| Slot {
                key: None,
                created: 0,
                data: Vec::with_capacity(max_sdu),
                pieces: [(0, 0); 128],
                received: 0,
                last: None,
            })
            .collect();
        Reassembler {
            config,
            slots,
            index: HashMap::with_capacity(config.max_slots),
            free: (0..config.max_slots).rev().collect(),
            in_use: 0,
            stats: ReassemblyStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ReassemblyConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Bytes held in incomplete SDUs (never above `max_total_bytes`).
    pub fn in_use_bytes(&self) -> usize {
        self.in_use
    }

    /// SDUs under reassembly.
    pub fn active_slots(&self) -> usize {
        self.index.len()
    }

    /// Add the fragment `frag` (with data `data`) of SDU `sn` of flow `key`.
    ///
    /// Returns `Ok(Some(len))` when the SDU is complete: its `len` bytes are in `out` (cleared
    /// first; no allocation if `out` has the capacity). `Ok(None)` when more fragments are
    /// needed. A rejected fragment is dropped and counted; the partial SDU is kept, except
    /// after [`ReassemblyError::TooBig`] (it can never complete, so it is discarded).
    ///
    /// AMBIGUITY: an FC of offset 0 without MF is a whole SDU (draft-04 §4.2.2) and should not
    /// reach the reassembler; if it does, it is passed through (copied to `out`) without
    /// touching any slot, even one with the same SN.
    ///
    /// AMBIGUITY: when every slot is busy (or the memory cap would be exceeded), expired slots
    /// are reclaimed first; if none expired, the NEW fragment is dropped (`NoSlot` /
    /// `MemoryFull`) rather than evicting the oldest SDU, so that a flood of bogus first
    /// fragments cannot destroy SDUs that are about to complete; the timeout bounds how long a
    /// flood can hold the slots.
    pub fn insert(
        &mut self,
        key: FlowKey,
        sn: Sn16,
        frag: FragmentInfo,
        data: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, ReassemblyError> {
        let r = self.insert_inner(key, sn, frag, data, now, out);
        if let Err(e) = r {
            self.stats.count(e);
        }
        r
    }

    fn insert_inner(
        &mut self,
        key: FlowKey,
        sn: Sn16,
        frag: FragmentInfo,
        data: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, ReassemblyError> {
        if frag.offset > MAX_FRAGMENT_OFFSET {
            return Err(ReassemblyError::OutOfRange);
        }
        if frag.is_whole() {
            out.clear();
            out.extend_from_slice(data);
            self.stats.passthrough += 1;
            return Ok(Some(data.len()));
        }
        if frag.more && data.is_empty() {
            return Err(ReassemblyError::OutOfRange);
        }
        if data.len() > self.config.max_sdu_bytes {
            return Err(ReassemblyError::TooBig);
        }

        let skey = (key, sn);
        // A slot of the same key that has outlived the timeout belongs to an earlier use of this
        // SN (the 16-bit space wraps): expire it rather than mix the two SDUs.
        if let Some(&i) = self.index.get(&skey) {
            if self.expired(i, now) {
                self.expire_slot(i);
            }
        }
        if self.free.is_empty()
            || self.in_use.saturating_add(data.len()) > self.config.max_total_bytes
        {
            self.poll(now);
        }
        if self.in_use.saturating_add(data.len()) > self.config.max_total_bytes {
            return Err(ReassemblyError::MemoryFull);
        }

        let i = match self.index.get(&skey) {
            Some(&i) => i,
            None => {
                let Some(i) = self.free.pop() else {
                    return Err(ReassemblyError::NoSlot);
                };
                if let Some(s) = self.slots.get_mut(i) {
                    s.key = Some(skey);
                    s.created = now;
                }
                self.index.insert(skey, i);
                i
            }
        };
        let max_sdu = self.config.max_sdu_bytes;
        let Some(slot) = self.slots.get_mut(i) else {
            return Err(ReassemblyError::NoSlot);
        };

        let bit = 1u128 << frag.offset;
        if slot.received & bit != 0 {
            return Err(ReassemblyError::Duplicate);
        }
        if let Some(last) = slot.last {
            if frag.offset > last {
                return Err(ReassemblyError::OutOfRange);
            }
            if !frag.more {
                return Err(ReassemblyError::Overlap);
            }
        } else if !frag.more && (slot.received >> frag.offset) > 1 {
            // A last fragment below an offset already held. (`received >> offset` has bit 0
            // clear here, as the offset is not held; any higher bit means a later piece.)
            return Err(ReassemblyError::Overlap);
        }
        if slot.data.len().saturating_add(data.len()) > max_sdu {
            self.stats.fragments_discarded += u64::from(slot.received.count_ones());
            self.free_slot(i);
            return Err(ReassemblyError::TooBig);
        }

        let start = slot.data.len();
        slot.data.extend_from_slice(data); // within the preallocated capacity (checked above)
        if let Some(p) = slot.pieces.get_mut(usize::from(frag.offset)) {
            *p = (start as u32, data.len() as u32);
        }
        slot.received |= bit;
        if !frag.more {
            slot.last = Some(frag.offset);
        }
        self.in_use += data.len();
        self.stats.fragments += 1;

        let complete = slot.last.is_some_and(|l| {
            let all = if l == MAX_FRAGMENT_OFFSET {
                u128::MAX
            } else {
                (1u128 << (l + 1)) - 1
            };
            slot.received == all
        });
        if !complete {
            return Ok(None);
        }
        out.clear();
        for &(s, n) in slot
            .pieces
            .iter()
            .take(usize::from(slot.last.unwrap_or(0)) + 1)
        {
            let (s, n) = (s as usize, n as usize);
            if let Some(piece) = slot.data.get(s..s.saturating_add(n)) {
                out.extend_from_slice(piece);
            }
        }
        self.stats.completed += 1;
        self.free_slot(i);
        Ok(Some(out.len()))
    }

    /// Expire incomplete SDUs whose first fragment arrived `timeout_ns` or more before `now`.
    /// Returns how many were expired (each counted as [`DropReason::ReassemblyTimeout`]).
    pub fn poll(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            if self.expired(i, now) {
                self.expire_slot(i);
                n += 1;
            }
        }
        n
    }

    /// When [`Reassembler::poll`] must next be called (earliest expiry), `None` if idle.
    /// Scans the slots: `max_slots` is small.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| s.key.is_some())
            .map(|s| s.created.saturating_add(self.config.timeout_ns))
            .min()
    }

    fn expired(&self, i: usize, now: Instant) -> bool {
        self.slots.get(i).is_some_and(|s| {
            s.key.is_some() && s.created.saturating_add(self.config.timeout_ns) <= now
        })
    }

    fn expire_slot(&mut self, i: usize) {
        if let Some(s) = self.slots.get(i) {
            self.stats.fragments_discarded += u64::from(s.received.count_ones());
        }
        self.stats.timeouts += 1;
        self.free_slot(i);
    }

    fn free_slot(&mut self, i: usize) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        if let Some(k) = s.key.take() {
            self.index.remove(&k);
            self.in_use -= s.data.len();
            s.data.clear();
            s.received = 0;
            s.last = None;
            self.free.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    const K: FlowKey = FlowKey::new(1, 2, 3);

    fn fi(offset: u8, more: bool) -> FragmentInfo {
        FragmentInfo { offset, more }
    }

    fn small(max_slots: usize, max_sdu: usize, max_total: usize) -> Reassembler {
        Reassembler::new(ReassemblyConfig {
            max_slots,
            timeout_ns: 100 * MS,
            max_sdu_bytes: max_sdu,
            max_total_bytes: max_total,
        })
    }

    /// Split `sdu` into `n` non-empty pieces (n <= len).
    fn split(sdu: &[u8], n: usize) -> Vec<(FragmentInfo, Vec<u8>)> {
        let step = sdu.len().div_ceil(n);
        sdu.chunks(step)
            .enumerate()
            .map(|(i, c)| (fi(i as u8, (i + 1) * step < sdu.len()), c.to_vec()))
            .collect()
    }

    #[test]
    fn s4_2_2_fc_encoding_mf_is_msb_offset_low_seven_bits() {
        assert_eq!(FragmentInfo::from_fc(0x00), None);
        assert_eq!(FragmentInfo::from_fc(0x80), Some(fi(0, true)));
        assert_eq!(FragmentInfo::from_fc(0x01), Some(fi(1, false)));
        assert_eq!(FragmentInfo::from_fc(0xff), Some(fi(127, true)));
        for fc in 1..=255u8 {
            assert_eq!(FragmentInfo::from_fc(fc).map(|f| f.fc()), Some(fc));
        }
    }

    #[test]
    fn s4_2_2_two_way_split_reassembles() {
        // draft-04 §4.2.2: first portion MF=1 FO=0, second portion MF=0 FO=1.
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = Vec::new();
        assert_eq!(
            r.insert(K, Sn16(9), fi(1, false), b"world", 0, &mut out),
            Ok(None)
        );
        assert_eq!(r.in_use_bytes(), 5);
        assert_eq!(
            r.insert(K, Sn16(9), fi(0, true), b"hello ", 1, &mut out),
            Ok(Some(11))
        );
        assert_eq!(out, b"hello world");
        assert_eq!(r.in_use_bytes(), 0);
        assert_eq!(r.active_slots(), 0);
        assert_eq!(r.stats().completed, 1);
        assert_eq!(r.stats().fragments, 2);
    }

    #[test]
    fn s4_2_2_receiver_combines_pdus_with_the_same_sn_and_flow() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = Vec::new();
        let other_flow = FlowKey::new(1, 2, 4);
        assert_eq!(
            r.insert(K, Sn16(1), fi(0, true), b"a1", 0, &mut out),
            Ok(None)
        );
        assert_eq!(
            r.insert(K, Sn16(2), fi(0, true), b"b1", 0, &mut out),
            Ok(None)
        );
        assert_eq!(
            r.insert(other_flow, Sn16(1), fi(0, true), b"c1", 0, &mut out),
            Ok(None)
        );
        assert_eq!(r.active_slots(), 3);
        assert_eq!(
            r.insert(K, Sn16(2), fi(1, false), b"b2", 0, &mut out),
            Ok(Some(4))
        );
        assert_eq!(out, b"b1b2");
        assert_eq!(
            r.insert(other_flow, Sn16(1), fi(1, false), b"c2", 0, &mut out),
            Ok(Some(4))
        );
        assert_eq!(out, b"c1c2");
        assert_eq!(
            r.insert(K, Sn16(1), fi(1, false), b"a2", 0, &mut out),
            Ok(Some(4))
        );
        assert_eq!(out, b"a1a2");
    }

    #[test]
    fn s4_2_2_fc_zero_is_whole_sdu_passed_through() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = vec![1, 2, 3];
        assert_eq!(
            r.insert(K, Sn16(5), fi(0, false), b"whole", 0, &mut out),
            Ok(Some(5))
        );
        assert_eq!(out, b"whole");
        assert_eq!(r.stats().passthrough, 1);
        assert_eq!(r.active_slots(), 0);
    }

    #[test]
    fn s4_2_2_at_most_128_fragments() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = Vec::new();
        for o in (1..=127u8).rev() {
            let res = r.insert(K, Sn16(0), fi(o, o != 127), &[o], 0, &mut out);
            assert_eq!(res, Ok(None));
        }
        assert_eq!(
            r.insert(K, Sn16(0), fi(0, true), &[0], 0, &mut out),
            Ok(Some(128))
        );
        assert_eq!(out, (0..=127u8).collect::<Vec<_>>());
        assert_eq!(
            r.insert(K, Sn16(1), fi(128, true), b"x", 0, &mut out),
            Err(ReassemblyError::OutOfRange)
        );
    }

    #[test]
    fn rejects_duplicate_offset() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = Vec::new();
        r.insert(K, Sn16(3), fi(0, true), b"ab", 0, &mut out)
            .unwrap();
        let e = r.insert(K, Sn16(3), fi(0, true), b"zz", 0, &mut out);
        assert_eq!(e, Err(ReassemblyError::Duplicate));
        assert_eq!(r.stats().drops(DropReason::ReassemblyDuplicate), 1);
        // The first copy is kept.
        assert_eq!(
            r.insert(K, Sn16(3), fi(1, false), b"cd", 0, &mut out),
            Ok(Some(4))
        );
        assert_eq!(out, b"abcd");
    }

    #[test]
    fn rejects_conflicting_last_fragment() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = Vec::new();
        r.insert(K, Sn16(3), fi(2, false), b"c", 0, &mut out)
            .unwrap();
        let e = r.insert(K, Sn16(3), fi(1, false), b"b", 0, &mut out);
        assert_eq!(e, Err(ReassemblyError::Overlap));
        // A last fragment below a piece already held.
        r.insert(K, Sn16(4), fi(5, true), b"f", 0, &mut out)
            .unwrap();
        let e = r.insert(K, Sn16(4), fi(3, false), b"d", 0, &mut out);
        assert_eq!(e, Err(ReassemblyError::Overlap));
        assert_eq!(r.stats().drops(DropReason::ReassemblyOverlap), 2);
        assert_eq!(
            ReassemblyError::Overlap.reason(),
            DropReason::ReassemblyOverlap
        );
    }

    #[test]
    fn rejects_out_of_range() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = Vec::new();
        r.insert(K, Sn16(3), fi(1, false), b"b", 0, &mut out)
            .unwrap();
        // Beyond the known last fragment.
        let e = r.insert(K, Sn16(3), fi(2, true), b"c", 0, &mut out);
        assert_eq!(e, Err(ReassemblyError::OutOfRange));
        // A non-last fragment without data.
        let e = r.insert(K, Sn16(3), fi(0, true), b"", 0, &mut out);
        assert_eq!(e, Err(ReassemblyError::OutOfRange));
        // Offset above 127 (only possible through the struct, not from an FC octet).
        let e = r.insert(K, Sn16(3), fi(200, true), b"x", 0, &mut out);
        assert_eq!(e, Err(ReassemblyError::OutOfRange));
        assert_eq!(r.stats().out_of_range, 3);
        assert_eq!(
            r.insert(K, Sn16(3), fi(0, true), b"a", 0, &mut out),
            Ok(Some(2))
        );
    }

    #[test]
    fn rejects_too_big_and_discards_the_partial_sdu() {
        let mut r = small(4, 8, 1000);
        let mut out = Vec::new();
        let e = r.insert(K, Sn16(1), fi(0, true), &[0; 9], 0, &mut out);
        assert_eq!(e, Err(ReassemblyError::TooBig));
        assert_eq!(r.active_slots(), 0);
        r.insert(K, Sn16(1), fi(0, true), &[0; 5], 0, &mut out)
            .unwrap();
        let e = r.insert(K, Sn16(1), fi(1, false), &[0; 4], 0, &mut out);
        assert_eq!(e, Err(ReassemblyError::TooBig));
        assert_eq!(r.active_slots(), 0);
        assert_eq!(r.in_use_bytes(), 0);
        assert_eq!(r.stats().drops(DropReason::ReassemblyTooBig), 2);
        assert_eq!(r.stats().fragments_discarded, 1);
    }

    #[test]
    fn rejects_new_sdu_when_no_slot_and_none_expired() {
        let mut r = small(2, 100, 1000);
        let mut out = Vec::new();
        r.insert(K, Sn16(1), fi(0, true), b"a", 0, &mut out)
            .unwrap();
        r.insert(K, Sn16(2), fi(0, true), b"b", 10 * MS, &mut out)
            .unwrap();
        let e = r.insert(K, Sn16(3), fi(0, true), b"c", 50 * MS, &mut out);
        assert_eq!(e, Err(ReassemblyError::NoSlot));
        assert_eq!(r.stats().drops(DropReason::ReassemblyNoSlot), 1);
        // Existing SDUs still progress.
        assert_eq!(
            r.insert(K, Sn16(2), fi(1, false), b"B", 60 * MS, &mut out),
            Ok(Some(2))
        );
        // Once SN 1 has expired its slot is reclaimed for a newcomer.
        r.insert(K, Sn16(4), fi(0, true), b"d", 60 * MS, &mut out)
            .unwrap();
        r.insert(K, Sn16(5), fi(0, true), b"e", 100 * MS, &mut out)
            .unwrap();
        assert_eq!(r.stats().timeouts, 1);
        assert_eq!(r.active_slots(), 2);
    }

    #[test]
    fn rejects_fragment_past_the_memory_cap() {
        let mut r = small(8, 100, 10);
        let mut out = Vec::new();
        r.insert(K, Sn16(1), fi(0, true), &[1; 6], 0, &mut out)
            .unwrap();
        let e = r.insert(K, Sn16(2), fi(0, true), &[2; 5], 0, &mut out);
        assert_eq!(e, Err(ReassemblyError::MemoryFull));
        assert_eq!(r.in_use_bytes(), 6);
        assert_eq!(r.active_slots(), 1);
        assert_eq!(r.stats().drops(DropReason::ReassemblyMemoryFull), 1);
        r.insert(K, Sn16(2), fi(0, true), &[2; 4], 0, &mut out)
            .unwrap();
        assert_eq!(r.in_use_bytes(), 10);
    }

    #[test]
    fn timeout_expires_incomplete_sdus() {
        let mut r = small(4, 100, 1000);
        let mut out = Vec::new();
        assert_eq!(r.next_deadline(), None);
        r.insert(K, Sn16(1), fi(0, true), b"a", 5 * MS, &mut out)
            .unwrap();
        r.insert(K, Sn16(2), fi(0, true), b"b", 20 * MS, &mut out)
            .unwrap();
        assert_eq!(r.next_deadline(), Some(105 * MS));
        assert_eq!(r.poll(104 * MS), 0);
        assert_eq!(r.poll(105 * MS), 1);
        assert_eq!(r.next_deadline(), Some(120 * MS));
        assert_eq!(r.stats().drops(DropReason::ReassemblyTimeout), 1);
        assert_eq!(r.in_use_bytes(), 1);
        // The late second half of SN 1 now starts a new (incomplete) SDU.
        assert_eq!(
            r.insert(K, Sn16(1), fi(1, false), b"A", 106 * MS, &mut out),
            Ok(None)
        );
    }

    #[test]
    fn stale_slot_of_a_reused_sn_is_expired_on_lookup() {
        let mut r = small(4, 100, 1000);
        let mut out = Vec::new();
        r.insert(K, Sn16(7), fi(0, true), b"old", 0, &mut out)
            .unwrap();
        // No poll; 200 ms later SN 7 is reused by a new SDU after the 16-bit space wrapped.
        r.insert(K, Sn16(7), fi(1, false), b"2", 200 * MS, &mut out)
            .unwrap();
        assert_eq!(
            r.insert(K, Sn16(7), fi(0, true), b"new", 200 * MS, &mut out),
            Ok(Some(4))
        );
        assert_eq!(out, b"new2");
        assert_eq!(r.stats().timeouts, 1);
    }

    #[test]
    fn reassembles_across_sn_wrap() {
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let mut out = Vec::new();
        let sns = [65534u16, 65535, 0, 1];
        for &s in &sns {
            r.insert(K, Sn16(s), fi(0, true), &s.to_be_bytes(), 0, &mut out)
                .unwrap();
        }
        for &s in sns.iter().rev() {
            assert_eq!(
                r.insert(K, Sn16(s), fi(1, false), b"!", 0, &mut out),
                Ok(Some(3))
            );
            assert_eq!(out[..2], s.to_be_bytes());
        }
    }

    proptest! {
        #[test]
        fn any_permutation_of_fragments_reassembles(
            sdu in proptest::collection::vec(any::<u8>(), 1..3000),
            n in 1usize..=128, seed: u64, sn in 65500u32..65600,
        ) {
            let n = n.min(sdu.len());
            let mut frags = split(&sdu, n);
            frags.shuffle(&mut rand_pcg::Pcg32::seed_from_u64(seed));
            let mut r = Reassembler::new(ReassemblyConfig::default());
            let mut out = Vec::new();
            let sn = Sn16(sn as u16);
            let last = frags.len() - 1;
            for (j, (f, d)) in frags.iter().enumerate() {
                let res = r.insert(K, sn, *f, d, 0, &mut out);
                if j < last {
                    prop_assert_eq!(res, Ok(None));
                    // A duplicate is refused and changes nothing.
                    prop_assert_eq!(r.insert(K, sn, *f, d, 0, &mut out), Err(ReassemblyError::Duplicate));
                } else {
                    prop_assert_eq!(res, Ok(Some(sdu.len())));
                }
            }
            prop_assert_eq!(&out, &sdu);
            prop_assert_eq!(r.in_use_bytes(), 0);
        }

        #[test]
        fn random_fragment_floods_respect_the_memory_cap(
            ops in proptest::collection::vec((0u32..3, 65530u32..65542, any::<u8>(), 0usize..60, 0u64..20), 1..400),
        ) {
            let cap = 300;
            let mut r = small(6, 120, cap);
            let mut out = Vec::new();
            let mut now = 0;
            for (c, sn, fc, len, dt) in ops {
                now += dt * MS;
                let key = FlowKey::new(c, 0, 0);
                let data = vec![fc; len];
                let frag = FragmentInfo { offset: fc & 0x7f, more: fc & 0x80 != 0 };
                if let Ok(Some(n)) = r.insert(key, Sn16(sn as u16), frag, &data, now, &mut out) {
                    prop_assert_eq!(n, out.len());
                    prop_assert!(n <= 120);
                }
                if dt % 7 == 0 { r.poll(now); }
                prop_assert!(r.in_use_bytes() <= cap);
                prop_assert!(r.active_slots() <= 6);
                let held: usize = r.slots.iter().map(|s| s.data.len()).sum();
                prop_assert_eq!(held, r.in_use_bytes());
                prop_assert_eq!(r.free.len() + r.active_slots(), 6);
                prop_assert!(r.slots.iter().all(|s| s.data.capacity() == 120));
            }
        }
    }
}

//! Per-flow transmit sequencer: hands out the MX (or GRE) sequence number of each SDU.
//!
//! draft-04 §4.2.1: "Sequence Number SHALL be generated on a per Connection and per Traffic
//! Class (TC) basis". One [`Sequencer`] per [`FlowKey`]; [`FlowSequencers`] keeps one per flow.

use std::collections::HashMap;

pub use super::seqnum::FlowKey;
use super::seqnum::SeqSpace;

/// Transmit sequence numbers of one flow (connection + traffic class).
#[derive(Debug, Clone)]
pub struct Sequencer<S: SeqSpace> {
    /// The SN the next SDU will carry.
    next: S,
}

impl<S: SeqSpace> Sequencer<S> {
    /// A sequencer whose first SDU gets `initial`.
    ///
    /// AMBIGUITY: draft-04 does not say where a flow's SNs start. The value is configurable; the
    /// runtime may pick 0 or a seeded random value (later drafts signal it with a "First Sequence
    /// Number" control message, WIRE.md).
    pub fn new(initial: S) -> Self {
        Sequencer { next: initial }
    }

    /// The SN the next call to [`Sequencer::next`] will return, without consuming it.
    pub fn peek(&self) -> S {
        self.next
    }

    /// Consume and return one SN, for a PDU carrying one SDU (or a fragment series: all
    /// fragments of one SDU share one SN, draft-04 §4.2.2).
    #[allow(clippy::should_implement_trait)] // infinite and infallible; not an Iterator
    pub fn next(&mut self) -> S {
        let sn = self.next;
        self.next = sn.wrapping_add(1);
        sn
    }

    /// Consume `k` SNs for a concatenated PDU of `k` SDUs and return the LAST SDU's SN, which is
    /// the one the trailer carries (draft-04 §4.2.3: "the SN field in the MX trailer is for the
    /// last MX SDU"). SDU `i` of `k` has SN `last - (k-1-i)` (see [`sdu_sn_in_block`]).
    /// Returns `None` (and consumes nothing) for `k == 0`.
    pub fn next_block(&mut self, k: u32) -> Option<S> {
        if k == 0 {
            return None;
        }
        let last = self.next.wrapping_add(u64::from(k) - 1);
        self.next = last.wrapping_add(1);
        Some(last)
    }
}

/// SN of SDU `i` (0-based) of a concatenated PDU of `k` SDUs whose trailer SN is `last`
/// (draft-04 §4.2.3, WIRE.md "Concatenation": `(SN - (k-1-i)) mod 2^n`). `None` if `i >= k`.
pub fn sdu_sn_in_block<S: SeqSpace>(last: S, k: u32, i: u32) -> Option<S> {
    if i >= k {
        return None;
    }
    Some(last.wrapping_sub(u64::from(k - 1 - i)))
}

/// One [`Sequencer`] per flow, created on first use with the configured initial SN.
///
/// A new flow costs one map insertion (an allocation only when the map grows); the per-packet
/// path for a known flow does not allocate.
#[derive(Debug, Clone)]
pub struct FlowSequencers<S: SeqSpace> {
    initial: S,
    flows: HashMap<FlowKey, Sequencer<S>>,
}

impl<S: SeqSpace> FlowSequencers<S> {
    /// An empty table; every new flow starts at `initial`. `capacity` flows are preallocated.
    pub fn new(initial: S, capacity: usize) -> Self {
        FlowSequencers {
            initial,
            flows: HashMap::with_capacity(capacity),
        }
    }

    /// The sequencer of `key`, created if needed.
    pub fn flow(&mut self, key: FlowKey) -> &mut Sequencer<S> {
        let initial = self.initial;
        self.flows
            .entry(key)
            .or_insert_with(|| Sequencer::new(initial))
    }

    /// Next SN of `key` (one SDU).
    pub fn next(&mut self, key: FlowKey) -> S {
        self.flow(key).next()
    }

    /// Forget a flow (its next SDU restarts at `initial`).
    pub fn remove(&mut self, key: &FlowKey) {
        self.flows.remove(key);
    }

    /// Number of flows known.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// No flow known.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::seqnum::{Sn16, Sn32};
    use proptest::prelude::*;

    #[test]
    fn s4_2_1_sn_auto_increments_per_sdu() {
        let mut s = Sequencer::new(Sn16(7));
        assert_eq!(s.next(), Sn16(7));
        assert_eq!(s.next(), Sn16(8));
        assert_eq!(s.peek(), Sn16(9));
    }

    #[test]
    fn s4_2_1_sn_wraps_16_bit() {
        let mut s = Sequencer::new(Sn16(65534));
        assert_eq!(s.next(), Sn16(65534));
        assert_eq!(s.next(), Sn16(65535));
        assert_eq!(s.next(), Sn16(0));
        assert_eq!(s.next(), Sn16(1));
    }

    #[test]
    fn rfc2890_sn_wraps_32_bit() {
        let mut s = Sequencer::new(Sn32(u32::MAX));
        assert_eq!(s.next(), Sn32(u32::MAX));
        assert_eq!(s.next(), Sn32(0));
        assert_eq!(s.next_block(3), Some(Sn32(3)));
        assert_eq!(s.next(), Sn32(4));
    }

    #[test]
    fn s4_2_1_sn_shall_be_per_connection_and_per_traffic_class() {
        let mut t = FlowSequencers::new(Sn16(0), 4);
        let a = FlowKey::new(1, 1, 0);
        let b = FlowKey::new(1, 1, 1); // same connection, other TC
        let c = FlowKey::new(1, 2, 0); // other connection, same TC
        assert_eq!(t.next(a), Sn16(0));
        assert_eq!(t.next(a), Sn16(1));
        assert_eq!(t.next(b), Sn16(0));
        assert_eq!(t.next(c), Sn16(0));
        assert_eq!(t.next(a), Sn16(2));
        assert_eq!(t.len(), 3);
        t.remove(&a);
        assert_eq!(t.next(a), Sn16(0));
    }

    #[test]
    fn s4_2_3_trailer_sn_is_last_sdu_example_6_with_3_sdus() {
        // draft-04 §4.2.3: "if the SN field is 6 and a MX PDU contains 3 SDUs ... then the SN is
        // 4, 5, and 6".
        let mut s = Sequencer::new(Sn16(4));
        let last = s.next_block(3).unwrap();
        assert_eq!(last, Sn16(6));
        let sns: Vec<_> = (0..3)
            .map(|i| sdu_sn_in_block(last, 3, i).unwrap())
            .collect();
        assert_eq!(sns, vec![Sn16(4), Sn16(5), Sn16(6)]);
        assert_eq!(sdu_sn_in_block(last, 3, 3), None);
        assert_eq!(s.next(), Sn16(7));
    }

    #[test]
    fn s4_2_3_block_across_wrap() {
        let mut s = Sequencer::new(Sn16(65534));
        let last = s.next_block(4).unwrap();
        assert_eq!(last, Sn16(1));
        assert_eq!(sdu_sn_in_block(last, 4, 0), Some(Sn16(65534)));
        assert_eq!(sdu_sn_in_block(last, 4, 2), Some(Sn16(0)));
        assert_eq!(s.next(), Sn16(2));
    }

    #[test]
    fn empty_block_consumes_nothing() {
        let mut s = Sequencer::new(Sn16(9));
        assert_eq!(s.next_block(0), None);
        assert_eq!(s.next(), Sn16(9));
    }

    proptest! {
        #[test]
        fn blocks_and_singles_consume_exactly_their_sdus(start: u16, ks in proptest::collection::vec(0u32..20, 0..50)) {
            let mut s = Sequencer::new(Sn16(start));
            let mut expect = Sn16(start);
            for k in ks {
                if k == 1 {
                    prop_assert_eq!(s.next(), expect);
                    expect = expect.wrapping_add(1);
                } else if let Some(last) = s.next_block(k) {
                    for i in 0..k {
                        prop_assert_eq!(sdu_sn_in_block(last, k, i), Some(expect));
                        expect = expect.wrapping_add(1);
                    }
                }
            }
            prop_assert_eq!(s.peek(), expect);
        }
    }
}

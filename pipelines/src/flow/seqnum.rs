//! Sequence-number arithmetic for the two spaces the convergence layer uses: 16-bit (MX trailer,
//! draft-04 §4.2.1) and 32-bit (GRE, RFC 2890 §2.2), and the [`FlowKey`] that sequence numbers
//! are scoped to.
//!
//! Comparison is modular with a half-range window (WIRE.md "Defaults borrowed from the authors'
//! later work"; the same rule as RFC 1982 serial numbers): `a` is after `b` when
//! `(a - b) mod 2^n` is in `1..2^(n-1)`.

use core::fmt::Debug;
use core::hash::Hash;

/// A sequence number in a modular space of `BITS` bits.
///
/// Implemented by [`Sn16`] and [`Sn32`]; the flow mechanisms (sequencer, reorder buffer) are
/// generic over it so the MX and GRE convergence share one implementation.
pub trait SeqSpace: Copy + Eq + Ord + Hash + Debug {
    /// Width of the space in bits (16 or 32).
    const BITS: u32;
    /// `2^(BITS-1)`: the half range. Two numbers exactly this far apart are not ordered.
    const HALF: u64 = 1 << (Self::BITS - 1);
    /// `2^BITS - 1`.
    const MASK: u64 = (1 << Self::BITS) - 1;

    /// Build from the low `BITS` bits of `raw`.
    fn from_u64(raw: u64) -> Self;
    /// The raw value, `0..2^BITS`.
    fn to_u64(self) -> u64;

    /// `self + n mod 2^BITS`.
    #[inline]
    fn wrapping_add(self, n: u64) -> Self {
        Self::from_u64(self.to_u64().wrapping_add(n) & Self::MASK)
    }

    /// `self - n mod 2^BITS`.
    #[inline]
    fn wrapping_sub(self, n: u64) -> Self {
        Self::from_u64(self.to_u64().wrapping_sub(n) & Self::MASK)
    }

    /// Signed distance `self - other` in the half-range sense: the `d` in
    /// `-2^(BITS-1) ..= 2^(BITS-1) - 1` with `other + d == self (mod 2^BITS)`.
    ///
    /// AMBIGUITY: WIRE.md orders `a` after `b` for `(a - b) mod 2^n` in `1..2^(n-1)`, leaving the
    /// exact half-range distance `2^(n-1)` unordered. `distance` must still return a number: it
    /// returns `-2^(n-1)`, so that such a number counts as "behind" (stale) rather than ahead,
    /// and `is_after` is false in both directions.
    #[inline]
    fn distance(self, other: Self) -> i64 {
        let d = self.to_u64().wrapping_sub(other.to_u64()) & Self::MASK;
        if d < Self::HALF {
            d as i64
        } else {
            d as i64 - (1i64 << Self::BITS)
        }
    }

    /// `self` is after `other`: `(self - other) mod 2^BITS` is in `1..2^(BITS-1)`.
    #[inline]
    fn is_after(self, other: Self) -> bool {
        let d = self.to_u64().wrapping_sub(other.to_u64()) & Self::MASK;
        d != 0 && d < Self::HALF
    }

    /// `self` is before `other` (the mirror of [`SeqSpace::is_after`]).
    #[inline]
    fn is_before(self, other: Self) -> bool {
        other.is_after(self)
    }
}

/// A 16-bit sequence number: the MX trailer SN (draft-04 §4.2.1).
///
/// `Ord` is the plain numeric order of the raw value (for use as a map key); use
/// [`SeqSpace::is_after`] for sequence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Sn16(pub u16);

/// A 32-bit sequence number: the GRE sequence number (RFC 2890 §2.2).
///
/// `Ord` is the plain numeric order of the raw value; use [`SeqSpace::is_after`] for sequence
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Sn32(pub u32);

impl SeqSpace for Sn16 {
    const BITS: u32 = 16;
    #[inline]
    fn from_u64(raw: u64) -> Self {
        Sn16(raw as u16)
    }
    #[inline]
    fn to_u64(self) -> u64 {
        u64::from(self.0)
    }
}

impl SeqSpace for Sn32 {
    const BITS: u32 = 32;
    #[inline]
    fn from_u64(raw: u64) -> Self {
        Sn32(raw as u32)
    }
    #[inline]
    fn to_u64(self) -> u64 {
        u64::from(self.0)
    }
}

impl From<u16> for Sn16 {
    fn from(v: u16) -> Self {
        Sn16(v)
    }
}
impl From<Sn16> for u16 {
    fn from(v: Sn16) -> Self {
        v.0
    }
}
impl From<u32> for Sn32 {
    fn from(v: u32) -> Self {
        Sn32(v)
    }
}
impl From<Sn32> for u32 {
    fn from(v: Sn32) -> Self {
        v.0
    }
}

/// The scope of one sequence-number space: draft-04 §4.2.1 "Sequence Number SHALL be generated
/// on a per Connection and per Traffic Class (TC) basis", and §4.2.3 lets only SDUs of the same
/// client, anchor connection and traffic class share a PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FlowKey {
    /// The client (C-MADP) this flow belongs to: an index or address chosen by the runtime.
    pub client: u32,
    /// Anchor connection ID. 16 bits because GRE carries a 16-bit anchor ID in its key (WIRE.md
    /// "GRE convergence"); the MX trailer carries the low 8 bits.
    pub connection_id: u16,
    /// Traffic Class ID (draft-04 §4.2.1).
    pub traffic_class: u8,
}

impl FlowKey {
    /// A flow key.
    pub const fn new(client: u32, connection_id: u16, traffic_class: u8) -> Self {
        FlowKey {
            client,
            connection_id,
            traffic_class,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_sn_a_after_b_when_difference_in_1_to_half_minus_1() {
        // WIRE.md: a is after b when (a - b) mod 2^16 is in 1..32767.
        assert!(Sn16(1).is_after(Sn16(0)));
        assert!(Sn16(0).is_after(Sn16(65535)));
        assert!(Sn16(32767).is_after(Sn16(0)));
        assert!(!Sn16(32768).is_after(Sn16(0)));
        assert!(!Sn16(0).is_after(Sn16(32768)));
        assert!(!Sn16(5).is_after(Sn16(5)));
        assert!(!Sn16(10).is_before(Sn16(65530)));
        assert!(Sn16(65530).is_before(Sn16(10)));
    }

    #[test]
    fn rfc2890_sn32_wraps_and_compares() {
        assert!(Sn32(0).is_after(Sn32(u32::MAX)));
        assert_eq!(Sn32(u32::MAX).wrapping_add(2), Sn32(1));
        assert_eq!(Sn32(1).wrapping_sub(2), Sn32(u32::MAX));
        assert_eq!(Sn32(3).distance(Sn32(u32::MAX - 1)), 5);
        assert_eq!(Sn32(u32::MAX - 1).distance(Sn32(3)), -5);
        assert!(!Sn32(1 << 31).is_after(Sn32(0)));
        assert!(Sn32((1 << 31) - 1).is_after(Sn32(0)));
    }

    #[test]
    fn distance_examples_16() {
        assert_eq!(Sn16(2).distance(Sn16(65534)), 4);
        assert_eq!(Sn16(65534).distance(Sn16(2)), -4);
        assert_eq!(Sn16(32768).distance(Sn16(0)), -32768);
        assert_eq!(Sn16(32767).distance(Sn16(0)), 32767);
        assert_eq!(Sn16(65535).wrapping_add(1), Sn16(0));
        assert_eq!(Sn16(0).wrapping_sub(1), Sn16(65535));
        assert_eq!(Sn16(100).wrapping_add(65536 * 3 + 5), Sn16(105));
    }

    proptest! {
        #[test]
        fn distance_inverts_wrapping_add_16(a: u16, d in -32768i64..32768) {
            let b = if d >= 0 { Sn16(a).wrapping_add(d as u64) } else { Sn16(a).wrapping_sub((-d) as u64) };
            prop_assert_eq!(b.distance(Sn16(a)), d);
            prop_assert_eq!(b.is_after(Sn16(a)), d > 0);
        }

        #[test]
        fn distance_inverts_wrapping_add_32(a: u32, d in -(1i64 << 31)..(1i64 << 31)) {
            let b = if d >= 0 { Sn32(a).wrapping_add(d as u64) } else { Sn32(a).wrapping_sub((-d) as u64) };
            prop_assert_eq!(b.distance(Sn32(a)), d);
            prop_assert_eq!(b.is_after(Sn32(a)), d > 0);
        }

        #[test]
        fn is_after_is_antisymmetric(a: u16, b: u16) {
            let (a, b) = (Sn16(a), Sn16(b));
            prop_assert!(!(a.is_after(b) && b.is_after(a)));
            if a != b && a.distance(b).unsigned_abs() != 32768 {
                prop_assert!(a.is_after(b) || b.is_after(a));
            }
        }
    }
}

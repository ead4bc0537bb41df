//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! `sum` returns a 32-bit partial sum that is congruent (mod 0xFFFF) to the one's-complement sum
//! of the 16-bit big-endian words of the input, so partial sums of several pieces (pseudo header,
//! header, payload) can be combined with [`add`] and folded once at the end with [`fold`].

use std::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement partial sum of `data` as big-endian 16-bit words; an odd trailing byte is
/// padded with a zero low byte (RFC 1071 §4.1).
///
/// The result is not folded; combine partial sums with [`add`] and finish with [`fold`] or
/// [`checksum`]. Only pieces that start at an even offset of the checksummed data may be summed
/// separately (RFC 1071 §2 (B): byte order and alignment independence hold per word).
pub fn sum(data: &[u8]) -> u32 {
    // Bulk: 64-bit words in NATIVE byte order into a u128 (add with carry; cannot overflow
    // below 2^64 words). 2^16 ≡ 1 (mod 0xFFFF), so a 64-bit word is congruent to the sum of its
    // 16-bit pieces (RFC 1071 §2 (C), "parallel summation"), and the one's-complement sum is
    // byte-order independent up to a final swap (RFC 1071 §2 (B)): fold to 16 bits, then
    // `from_be` turns the native-order sum into the big-endian one. Folding with end-around
    // carries keeps a nonzero sum nonzero, so the result is the same value (0 only for
    // all-zero data) as the word-by-word loop below.
    let mut wide: u128 = 0;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        wide += u128::from(u64::from_ne_bytes(b));
    }
    let mut acc: u64 = u64::from(u16::from_be(fold(fold64(fold128(wide)))));
    let mut chunks = words.remainder().chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        // RFC 1071 §4.1: "Add left-over byte, if any" as the high byte of a padded word.
        acc += u64::from(*last) << 8;
    }
    fold64(acc)
}

/// End-around-carry addition of two partial sums (keeps the one's-complement congruence).
pub fn add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    // 2^32 ≡ 1 (mod 0xFFFF): the lost carry re-enters at the bottom.
    s.wrapping_add(u32::from(carry))
}

fn fold128(mut acc: u128) -> u64 {
    while acc >> 64 != 0 {
        acc = (acc & u128::from(u64::MAX)) + (acc >> 64);
    }
    acc as u64
}

fn fold64(mut acc: u64) -> u32 {
    while acc >> 32 != 0 {
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    }
    acc as u32
}

/// Folds a partial sum into 16 bits with end-around carries (RFC 1071 §4.1 "Fold 32-bit sum to 16
/// bits"). The result is the one's-complement sum, not yet complemented.
pub fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data`: the complement of the folded one's-complement sum (RFC 1071).
/// Over data that contains a correct checksum field, this is 0.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

fn sum_u32(len: u32) -> u32 {
    (len >> 16) + (len & 0xFFFF)
}

/// Partial sum of the IPv4 pseudo header used by UDP and TCP (RFC 768, RFC 793 §3.1): source,
/// destination, zero, protocol, upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let mut s = sum(&src.octets());
    s = add(s, sum(&dst.octets()));
    s = add(s, u32::from(protocol));
    add(s, sum_u32(length))
}

/// Partial sum of the IPv6 pseudo header (RFC 8200 §8.1): source, destination, 32-bit
/// upper-layer packet length, three zero octets, next header.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let mut s = sum(&src.octets());
    s = add(s, sum(&dst.octets()));
    s = add(s, u32::from(next_header));
    add(s, sum_u32(length))
}

/// RFC 1624 §3 eqn. 3: the checksum after one 16-bit word of the covered data changed from
/// `old_word` to `new_word`: `HC' = ~(~HC + ~m + m')`.
///
/// Eqn. 3 (not eqn. 2, `HC - ~m - m'`) is used because it never yields 0xFFFF (-0) where a full
/// recomputation yields 0x0000 (RFC 1624 §4).
pub fn update16(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    let s = u32::from(!old_checksum) + u32::from(!old_word) + u32::from(new_word);
    !fold(s)
}

/// RFC 1624 eqn. 3 for a 32-bit field (two adjacent 16-bit words at an even offset), such as an
/// IPv4 address rewritten by client NAT.
pub fn update32(old_checksum: u16, old_value: u32, new_value: u32) -> u16 {
    let s = u32::from(!old_checksum)
        + u32::from(!(old_value >> 16) as u16)
        + u32::from(!(old_value as u16))
        + (new_value >> 16)
        + (new_value & 0xFFFF);
    !fold(s)
}

/// RFC 1624 eqn. 3 for a field of any size that starts at an even offset of the covered data and
/// changed from `old` to `new` (same length; an odd-length field is fine because the padding byte
/// stands for an unchanged neighbour in both sums).
///
/// Uses `~(a + b) = ~a + ~b` in one's-complement arithmetic: `HC' = ~(~HC + ~sum(old) + sum(new))`.
/// If the lengths differ the result is meaningless (but nothing panics).
pub fn update_bytes(old_checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    let s = u32::from(!old_checksum) + u32::from(!fold(sum(old))) + u32::from(fold(sum(new)));
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A real IPv4 header: the first 20 bytes of vector `single-0` in
    /// /work/shared/vectors/mx-public.jsonl (checksum 0x660f, verified with Python).
    const VECTOR_HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x7a, 0x00, 0x01, 0x00, 0x00, 0x40, 0x72, 0x66, 0x0f, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02,
    ];

    fn reference_checksum(data: &[u8]) -> u16 {
        // Straight transcription of RFC 1071 §4.1's C code, word by word.
        let mut s: u64 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u64::from(u16::from_be_bytes([data[i], data[i + 1]]));
            i += 2;
        }
        if i < data.len() {
            s += u64::from(data[i]) << 8;
        }
        while s >> 16 != 0 {
            s = (s & 0xFFFF) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_s3_example_sum() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 have one's-complement sum 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn rfc1071_verifies_real_ipv4_header() {
        assert_eq!(checksum(&VECTOR_HDR), 0);
        let mut h = VECTOR_HDR;
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0x660f);
        h[19] ^= 1;
        assert_ne!(checksum(&h), 0x660f);
    }

    #[test]
    fn rfc1071_s4_1_odd_trailing_byte_is_padded() {
        assert_eq!(fold(sum(&[0xab])), 0xab00);
        assert_eq!(fold(sum(&[0x12, 0x34, 0xab])), 0x1234 + 0xab00);
    }

    #[test]
    fn rfc1071_fold_end_around_carry() {
        assert_eq!(fold(0x0001_FFFF), 0x0001);
        assert_eq!(fold(0xFFFF_FFFF), 0xFFFF);
        assert_eq!(fold(0), 0);
        assert_eq!(add(0xFFFF_FFFF, 1), 1);
    }

    #[test]
    fn rfc1624_s4_eqn3_gives_zero_not_minus_zero() {
        // RFC 1624 §4 example: HC = 0xDD2F, m = 0x5555, m' = 0x3285 -> HC' = 0x0000 (eqn. 2 would
        // give 0xFFFF).
        assert_eq!(update16(0xDD2F, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn rfc768_pseudo_header_v4_matches_explicit_layout() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(192, 168, 7, 200);
        let explicit = [10, 0, 0, 1, 192, 168, 7, 200, 0, 17, 0x01, 0x2c];
        assert_eq!(
            fold(pseudo_header_v4(src, dst, 17, 300)),
            fold(sum(&explicit))
        );
    }

    #[test]
    fn rfc8200_s8_1_pseudo_header_v6_matches_explicit_layout() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::abcd:1234".parse().unwrap();
        let mut explicit = Vec::new();
        explicit.extend_from_slice(&src.octets());
        explicit.extend_from_slice(&dst.octets());
        explicit.extend_from_slice(&70_000u32.to_be_bytes());
        explicit.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(
            fold(pseudo_header_v6(src, dst, 17, 70_000)),
            fold(sum(&explicit))
        );
    }

    fn ipv4_header() -> impl Strategy<Value = [u8; 20]> {
        proptest::array::uniform20(any::<u8>()).prop_map(|mut h| {
            h[0] = 0x45;
            h[10] = 0;
            h[11] = 0;
            let c = checksum(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h
        })
    }

    #[test]
    fn wide_sum_matches_the_reference_on_carry_heavy_and_zero_data() {
        for len in 0..=2100 {
            for fill in [0x00u8, 0xFF, 0x80, 0x01] {
                let data = std::vec![fill; len];
                assert_eq!(
                    checksum(&data),
                    reference_checksum(&data),
                    "{len} x {fill:#x}"
                );
            }
        }
        // Words that sum to exactly 0 mod 0xFFFF but are not zero: 0xFFFF, not 0.
        let data = [0xFFu8, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF];
        assert_eq!(checksum(&data), reference_checksum(&data));
    }

    proptest! {
        #[test]
        fn sum_matches_rfc1071_reference(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(checksum(&data), reference_checksum(&data));
        }

        #[test]
        fn partial_sums_combine(data in proptest::collection::vec(any::<u8>(), 0..300), split in 0usize..150) {
            let split = (split * 2).min(data.len() & !1);
            let s = add(sum(&data[..split]), sum(&data[split..]));
            prop_assert_eq!(fold(s) , fold(sum(&data)));
        }

        #[test]
        fn rfc1624_update16_equals_recompute(h in ipv4_header(), word in 0usize..10, new in any::<u16>()) {
            prop_assume!(word != 5); // the checksum field itself
            let old = u16::from_be_bytes([h[2 * word], h[2 * word + 1]]);
            let hc = u16::from_be_bytes([h[10], h[11]]);
            let mut n = h;
            n[2 * word..2 * word + 2].copy_from_slice(&new.to_be_bytes());
            n[10] = 0;
            n[11] = 0;
            prop_assert_eq!(update16(hc, old, new), checksum(&n));
        }

        #[test]
        fn rfc1624_update32_equals_recompute(h in ipv4_header(), src in any::<bool>(), new in any::<u32>()) {
            let at = if src { 12 } else { 16 };
            let old = u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
            let hc = u16::from_be_bytes([h[10], h[11]]);
            let mut n = h;
            n[at..at + 4].copy_from_slice(&new.to_be_bytes());
            n[10] = 0;
            n[11] = 0;
            prop_assert_eq!(update32(hc, old, new), checksum(&n));
        }

        #[test]
        fn rfc1624_update_bytes_equals_recompute(h in ipv4_header(), new in proptest::array::uniform8(any::<u8>())) {
            // Rewrite both addresses at once (bytes 12..20).
            let hc = u16::from_be_bytes([h[10], h[11]]);
            let mut n = h;
            n[12..20].copy_from_slice(&new);
            n[10] = 0;
            n[11] = 0;
            prop_assert_eq!(update_bytes(hc, &h[12..20], &new), checksum(&n));
        }

        #[test]
        fn rfc1624_minus_zero_corner(h in ipv4_header(), word in 0usize..10) {
            // Choose the new word so that the recomputed checksum is exactly 0x0000 (sum 0xFFFF),
            // the case where eqn. 2 would produce -0 (0xFFFF).
            prop_assume!(word != 5);
            let old = u16::from_be_bytes([h[2 * word], h[2 * word + 1]]);
            let mut rest = h;
            rest[2 * word] = 0;
            rest[2 * word + 1] = 0;
            rest[10] = 0;
            rest[11] = 0;
            let s = fold(sum(&rest));
            let new = !s; // rest + new = 0xFFFF
            let hc = u16::from_be_bytes([h[10], h[11]]);
            let mut n = rest;
            n[2 * word..2 * word + 2].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(checksum(&n), 0x0000);
            prop_assert_eq!(update16(hc, old, new), 0x0000);
        }
    }
}

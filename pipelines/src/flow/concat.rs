//! MX concatenation (draft-04 §4.2.3, `WIRE.md` "Concatenation"): the transmitter packs several
//! SDUs of one client, anchor connection and traffic class back to back into one MX PDU with a
//! single trailer ([`concatenate`]); the receiver splits them again ([`disaggregate`]) after
//! `mx::strip_trailer` has removed the trailer.
//!
//! Default layout: the first SDU's IP header announces protocol 114 and the whole PDU's length;
//! Next Header and First SDU Length (FSL) in the trailer recover the first SDU, later SDUs are
//! delimited by their own IP length. Header optimization: the SDUs are untouched and the
//! receiver finds the first one from its own IP length.

use crate::buf::{BufPool, PacketBuf};
use crate::drop::DropReason;
use crate::mx::{self, PROTOCOL_MX};
use crate::wire::ip::{self, IpPacket};
use crate::wire::mx_trailer::MxTrailer;

/// True when an SDU of `sdu_len` bytes can be appended to a PDU currently holding
/// `pdu_payload_len` bytes of SDUs, given the trailer length and the maximum PDU length.
///
/// Pass the length of the trailer the PDU will carry with the SDU added ([`trailer_len`]: FSL
/// appears in the default layout once there are two SDUs). The PDU is also kept within 65535
/// bytes, the most an IP length field (or a UDP datagram) can describe.
pub fn fits(
    pdu_payload_len: usize,
    sdu_len: usize,
    trailer_len: usize,
    max_pdu_len: usize,
) -> bool {
    pdu_payload_len
        .checked_add(sdu_len)
        .and_then(|n| n.checked_add(trailer_len))
        .is_some_and(|n| n <= max_pdu_len && n <= usize::from(u16::MAX))
}

/// The trailer [`concatenate`] appends to `k` SDUs built from `template`, the first of which has
/// protocol `first_protocol` and length `first_len` (draft-04 §4.2.3).
///
/// Default layout: Next Header = `first_protocol` (`WIRE.md`: mandatory); FSL = `first_len`
/// when `k > 1` ("SHOULD be included"), and for `k == 1` only if the template has it.
/// Header optimization: FSL cleared ("SHOULD not be present"), everything else as given.
pub fn concat_trailer(
    template: &MxTrailer,
    first_protocol: u8,
    first_len: u16,
    k: usize,
    header_optimization: bool,
) -> MxTrailer {
    let mut t = *template;
    if header_optimization {
        t.first_sdu_length = None;
    } else {
        t.next_header = Some(first_protocol);
        if k > 1 || t.first_sdu_length.is_some() {
            t.first_sdu_length = Some(first_len);
        }
    }
    t
}

/// Length of the trailer of a PDU of `k` SDUs built from `template` (0 under header
/// optimization when no field remains: the trailer is then not sent, §4.2.3 "the entire MX
/// trailer MAY not be present"). For [`fits`].
pub fn trailer_len(template: &MxTrailer, k: usize, header_optimization: bool) -> usize {
    let t = concat_trailer(template, 0, 0, k, header_optimization);
    if header_optimization && t.flags() == 0 {
        0
    } else {
        t.buffer_len()
    }
}

/// Builds one concatenated MX PDU from `sdus` (>= 1 complete IP packets, same client, anchor
/// connection and traffic class, consecutive SNs, in order), reusing the first buffer
/// (appending the others' bytes: needs tailroom; return NoRoom otherwise) and returning the
/// others to `pool`. `trailer.sequence_number` must be the LAST SDU's SN (§4.2.3).
/// Default layout (`header_optimization == false`): the first SDU's IP header becomes protocol
/// 114 with total length = whole PDU incl. trailer and a fresh checksum; Next Header = first
/// SDU's protocol (forced); FSL = first SDU's length (forced when k > 1 — §4.2.3 "SHOULD be
/// included"; for k == 1 keep FSL only if the template has it). Header optimization: IP headers
/// untouched, no FSL (cleared; §4.2.3 "SHOULD not be present"), trailer appended only if it has
/// fields. Returns the PDU. A single SDU must give exactly what `mx::add_trailer` gives.
///
/// On success `sdus` is empty. On error `sdus` is left exactly as it was (every buffer still
/// there, unchanged), so the caller may send the SDUs one by one instead.
///
/// Link padding after an SDU's IP length is dropped. The IPv4 checksum is updated
/// incrementally (RFC 1624; equal to a fresh computation when the SDU's checksum was valid), as
/// `mx::add_trailer` does.
///
/// Errors: no SDU ([`DropReason::MxConcatLength`]); an SDU is not a valid IP packet (its parse
/// reason); the PDU or the first SDU is too long for the IP length field or FSL
/// ([`DropReason::MxTrailerLength`]); the first buffer lacks tailroom ([`DropReason::NoRoom`]).
pub fn concatenate<B: PacketBuf>(
    sdus: &mut Vec<B>,
    trailer: &MxTrailer,
    header_optimization: bool,
    pool: &mut dyn BufPool<B>,
) -> Result<B, DropReason> {
    let k = sdus.len();
    let Some(first) = sdus.first_mut() else {
        return Err(DropReason::MxConcatLength);
    };
    let (first_len, upper, version) = {
        let ip = IpPacket::new_checked(first.data()).map_err(|e| e.reason)?;
        (
            ip.total_len(),
            ip.upper_layer().map_err(|e| e.reason)?,
            ip.version(),
        )
    };
    let fsl = u16::try_from(first_len).map_err(|_| DropReason::MxTrailerLength)?;
    let t = concat_trailer(trailer, upper.protocol, fsl, k, header_optimization);
    if k == 1 {
        // The same transform as an unconcatenated PDU (draft-04 §4.2.1).
        mx::add_trailer(first, &t, header_optimization)?;
        return sdus.pop().ok_or(DropReason::MxConcatLength);
    }

    // Check everything before touching any buffer.
    let mut rest = 0usize;
    for b in sdus.iter().skip(1) {
        let ip = IpPacket::new_checked(b.data()).map_err(|e| e.reason)?;
        rest = rest.saturating_add(ip.total_len());
    }
    let tlen = if header_optimization && t.flags() == 0 {
        0
    } else {
        t.buffer_len()
    };
    let total = first_len.saturating_add(rest).saturating_add(tlen);
    // draft-04 §4.2.3: "the IP length field of the MX PDU SHOULD be updated to include all
    // concatenated SDUs and the trailer": it must be able to.
    if !mx::ip_len_fits(version, total) {
        return Err(DropReason::MxTrailerLength);
    }
    let Some(first) = sdus.first() else {
        return Err(DropReason::MxConcatLength);
    };
    let padding = first.len() - first_len;
    if first.tailroom().saturating_add(padding) < total - first_len {
        return Err(DropReason::NoRoom);
    }

    let mut drain = sdus.drain(..);
    let Some(mut pdu) = drain.next() else {
        return Err(DropReason::MxConcatLength);
    };
    let trimmed = pdu.trim(padding);
    debug_assert!(trimmed);
    for b in drain {
        // Validated above; `packet_len` re-reads the same length.
        let len = ip::packet_len(b.data()).unwrap_or(0);
        let appended = pdu.extend_from_slice(b.data().get(..len).unwrap_or_default());
        debug_assert!(appended, "tailroom checked above");
        pool.free(b);
    }
    if tlen > 0 {
        match pdu.append(tlen) {
            Some(dst) => t.emit(dst),
            None => debug_assert!(false, "tailroom checked above"),
        }
    }
    if !header_optimization {
        // draft-04 §4.2.1/§4.2.3: protocol 114, IP length over the whole PDU, checksum.
        mx::rewrite_header(
            pdu.data_mut(),
            upper.next_header_field_offset,
            PROTOCOL_MX,
            total,
        );
    }
    Ok(pdu)
}

/// Receiver: splits a buffer holding `sdu_count` IP packets back to back (as left by
/// `mx::strip_trailer`) into separate buffers: the first stays in `buf` (trimmed), the others
/// are copied into buffers from `pool`. Validates every inner length again
/// (`wire::ip::packet_len`); appends all SDUs to `out` in order. On error nothing is appended
/// and all buffers go back to `pool` (DropReason::MxConcatLength, or NoRoom/pool exhausted).
///
/// Returns `sdu_count`. The SDUs must tile the buffer exactly (draft-04 §4.2.3: "The procedure
/// continues till no byte is left in the MX PDU"): a count of 0, fewer or more packets than
/// `sdu_count`, or bytes left over are [`DropReason::MxConcatLength`].
pub fn disaggregate<B: PacketBuf>(
    mut buf: B,
    sdu_count: usize,
    pool: &mut dyn BufPool<B>,
    out: &mut Vec<B>,
) -> Result<usize, DropReason> {
    let first_len = match check_tiling(buf.data(), sdu_count) {
        Ok(n) => n,
        Err(e) => {
            pool.free(buf);
            return Err(e);
        }
    };
    let mark = out.len();
    let fail = |e: DropReason, buf: B, out: &mut Vec<B>, pool: &mut dyn BufPool<B>| {
        for b in out.drain(mark..) {
            pool.free(b);
        }
        pool.free(buf);
        Err(e)
    };
    // Slot for the first SDU, filled once the others are copied out of `buf`.
    let mut at = first_len;
    while at < buf.len() {
        let data = buf.data().get(at..).unwrap_or_default();
        let len = ip::packet_len(data).unwrap_or(0); // validated by check_tiling
        let Some(mut b) = pool.alloc() else {
            return fail(DropReason::PoolExhausted, buf, out, pool);
        };
        if len == 0 || !b.extend_from_slice(data.get(..len).unwrap_or_default()) {
            pool.free(b);
            return fail(DropReason::NoRoom, buf, out, pool);
        }
        out.push(b);
        at += len;
    }
    let extra = buf.len() - first_len;
    if !buf.trim(extra) {
        return fail(DropReason::Truncated, buf, out, pool);
    }
    out.insert(mark, buf);
    Ok(sdu_count)
}

/// Walks the SDUs of `data` by their IP lengths; returns the first one's length when exactly
/// `count` of them tile `data`.
fn check_tiling(data: &[u8], count: usize) -> Result<usize, DropReason> {
    let mut at = 0usize;
    let mut first = 0usize;
    for i in 0..count {
        let len = data
            .get(at..)
            .and_then(|rest| ip::packet_len(rest).ok())
            .filter(|&n| n > 0)
            .ok_or(DropReason::MxConcatLength)?;
        if i == 0 {
            first = len;
        }
        at += len;
    }
    if count == 0 || at != data.len() {
        return Err(DropReason::MxConcatLength);
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{HeapBuf, HeapPool};
    use crate::flow::fragment::tests::{buf_from, ip4, ip6, pool};
    use crate::mx::{MxPdu, PduOptions};
    use crate::wire::ipv4;
    use crate::wire::mx_trailer::{flags, TrailerFields};
    use proptest::prelude::*;

    fn template(last_sn: u16) -> MxTrailer {
        MxTrailer {
            connection_id: Some(2),
            traffic_class: Some(0),
            sequence_number: Some(last_sn),
            ..Default::default()
        }
    }

    /// The receive options matching what `concatenate` sent with `t`.
    fn opts(t: &MxTrailer, header_optimization: bool, k: usize) -> PduOptions {
        let sent = concat_trailer(t, 0, 0, k, header_optimization);
        PduOptions {
            header_optimization,
            trailer_fields: Some(TrailerFields::new(sent.flags())),
        }
    }

    fn bufs(p: &mut HeapPool, sdus: &[Vec<u8>]) -> Vec<HeapBuf> {
        sdus.iter().map(|s| buf_from(p, s)).collect()
    }

    /// concatenate -> parse -> strip -> disaggregate; returns the PDU bytes and the SDUs.
    fn round_trip(
        sdus: &[Vec<u8>],
        t: &MxTrailer,
        opt: bool,
        p: &mut HeapPool,
    ) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut v = bufs(p, sdus);
        let mut pdu = concatenate(&mut v, t, opt, p).unwrap();
        assert!(v.is_empty());
        let bytes = pdu.to_vec();
        let o = opts(t, opt, sdus.len());
        let parsed = MxPdu::parse(&bytes, o).unwrap();
        assert_eq!(parsed.sdu_count, sdus.len());
        let spans: Vec<_> = parsed.sdus().collect();
        let mut at = 0;
        for (i, (s, orig)) in spans.iter().zip(sdus).enumerate() {
            assert_eq!((s.offset, s.len), (at, orig.len()), "SDU {i}");
            at += s.len;
            let k = sdus.len() as u16;
            let want = t
                .sequence_number
                .map(|last| last.wrapping_sub(k - 1 - i as u16));
            assert_eq!(s.sequence_number, want, "SN of SDU {i}");
        }
        let s = mx::strip_trailer(&mut pdu, o).unwrap();
        let mut out = Vec::new();
        assert_eq!(disaggregate(pdu, s.sdu_count, p, &mut out), Ok(sdus.len()));
        let got = out.iter().map(|b| b.to_vec()).collect();
        for b in out {
            p.free(b);
        }
        (bytes, got)
    }

    #[test]
    fn s4_2_3_sn_is_that_of_the_last_sdu() {
        let mut p = pool(16);
        let sdus = vec![ip4(30, 1, 17), ip4(40, 2, 6), ip4(10, 3, 17)];
        let (bytes, got) = round_trip(&sdus, &template(6), false, &mut p);
        assert_eq!(got, sdus);
        let pdu = MxPdu::parse(&bytes, PduOptions::default()).unwrap();
        let sns: Vec<_> = pdu.sdus().map(|s| s.sequence_number).collect();
        // draft-04 §4.2.3 example: SN field 6, three SDUs: 4, 5, 6.
        assert_eq!(sns, vec![Some(4), Some(5), Some(6)]);
    }

    #[test]
    fn s4_2_3_sn_of_earlier_sdus_wraps() {
        let mut p = pool(16);
        let sdus = vec![ip4(5, 1, 17), ip4(5, 2, 17), ip4(5, 3, 17)];
        let (bytes, _) = round_trip(&sdus, &template(1), false, &mut p);
        let pdu = MxPdu::parse(&bytes, PduOptions::default()).unwrap();
        let sns: Vec<_> = pdu.sdus().map(|s| s.sequence_number.unwrap()).collect();
        assert_eq!(sns, vec![65535, 0, 1]);
    }

    #[test]
    fn s4_2_3_fsl_should_be_included_and_ip_length_should_cover_the_pdu() {
        let mut p = pool(16);
        let sdus = vec![ip4(30, 4, 17), ip6(20, 5, 6, false)];
        let mut v = bufs(&mut p, &sdus);
        let pdu = concatenate(&mut v, &template(9), false, &mut p).unwrap();
        let t = MxTrailer::parse(pdu.data()).unwrap();
        assert_eq!(t.first_sdu_length, Some(50), "FSL = first SDU's length");
        assert_eq!(t.next_header, Some(17));
        let ip = ipv4::Packet::new_checked(pdu.data()).unwrap();
        assert_eq!(ip.next_header(), PROTOCOL_MX);
        assert_eq!(ip.total_len(), pdu.len(), "all SDUs and the trailer");
        assert!(ip.verify_checksum(), "checksum SHOULD be recalculated");
        assert_eq!(&pdu.data()[50..50 + 60], &sdus[1][..], "second SDU whole");
    }

    #[test]
    fn s4_2_3_header_optimization_fsl_should_not_be_present_and_headers_unchanged() {
        let mut p = pool(16);
        let sdus = vec![ip4(30, 6, 17), ip4(12, 7, 17)];
        let mut t = template(3);
        t.first_sdu_length = Some(999);
        let mut v = bufs(&mut p, &sdus);
        let pdu = concatenate(&mut v, &t, true, &mut p).unwrap();
        assert_eq!(
            &pdu.data()[..50],
            &sdus[0][..],
            "IP header byte for byte unchanged"
        );
        assert_eq!(&pdu.data()[50..82], &sdus[1][..]);
        let tr = MxTrailer::parse(pdu.data()).unwrap();
        assert_eq!(tr.first_sdu_length, None);
        assert_eq!(tr.next_header, None, "not forced under header optimization");
        assert_eq!(pdu.len(), 82 + tr.buffer_len());
    }

    #[test]
    fn s4_2_3_header_optimization_may_omit_the_entire_trailer() {
        let mut p = pool(16);
        let sdus = vec![ip4(30, 8, 17), ip6(9, 9, 17, true), ip4(1, 10, 6)];
        let (bytes, got) = round_trip(&sdus, &MxTrailer::default(), true, &mut p);
        assert_eq!(bytes, sdus.concat(), "no trailer at all");
        assert_eq!(got, sdus);
        assert_eq!(trailer_len(&MxTrailer::default(), 3, true), 0);
    }

    #[test]
    fn s4_2_3_single_sdu_equals_add_trailer() {
        let mut p = pool(16);
        for sdu in [ip4(33, 11, 17), ip6(21, 12, 6, false), ip6(5, 13, 17, true)] {
            for opt in [false, true] {
                for t in [template(77), MxTrailer::default()] {
                    let mut expect = HeapBuf::from_slice(&sdu);
                    mx::add_trailer(&mut expect, &t, opt).unwrap();
                    let mut v = bufs(&mut p, std::slice::from_ref(&sdu));
                    let got = concatenate(&mut v, &t, opt, &mut p).unwrap();
                    assert_eq!(got.data(), expect.data(), "opt={opt} {t:?}");
                    p.free(got);
                }
            }
        }
    }

    #[test]
    fn fits_counts_payload_sdu_and_trailer() {
        assert!(fits(1000, 493, 7, 1500));
        assert!(!fits(1000, 494, 7, 1500));
        assert!(!fits(usize::MAX, 1, 0, usize::MAX), "no overflow");
        assert!(!fits(60000, 6000, 9, 100_000), "IP length limit");
        // Default layout adds FSL from the second SDU on.
        assert_eq!(trailer_len(&template(0), 1, false), 6);
        assert_eq!(trailer_len(&template(0), 2, false), 8);
        assert_eq!(trailer_len(&template(0), 2, true), 5);
    }

    #[test]
    fn concatenate_without_tailroom_is_no_room_and_changes_nothing() {
        let mut p = pool(16);
        let a = ip4(30, 14, 17);
        let b = ip4(30, 15, 17);
        let mut v = vec![HeapBuf::with_room(&a, 0, 10), buf_from(&mut p, &b)];
        let before = v.clone();
        assert_eq!(
            concatenate(&mut v, &template(1), false, &mut p),
            Err(DropReason::NoRoom)
        );
        assert_eq!(v, before);
    }

    #[test]
    fn concatenate_rejects_a_bad_sdu_and_an_empty_list() {
        let mut p = pool(16);
        let mut v = vec![
            buf_from(&mut p, &ip4(3, 1, 17)),
            buf_from(&mut p, &[0x45, 0, 0]),
        ];
        let before = v.clone();
        assert_eq!(
            concatenate(&mut v, &template(1), false, &mut p),
            Err(DropReason::Truncated)
        );
        assert_eq!(v, before);
        let mut empty: Vec<HeapBuf> = Vec::new();
        assert_eq!(
            concatenate(&mut empty, &template(1), false, &mut p),
            Err(DropReason::MxConcatLength)
        );
    }

    #[test]
    fn concatenated_pdu_too_long_for_the_ip_length_is_refused() {
        let mut p = HeapPool::new(4, 0, 0, 70_000);
        let a = ip4(40_000, 1, 17);
        let b = ip4(30_000, 2, 17);
        let mut v = vec![buf_from(&mut p, &a), buf_from(&mut p, &b)];
        assert_eq!(
            concatenate(&mut v, &template(1), false, &mut p),
            Err(DropReason::MxTrailerLength)
        );
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn disaggregate_rejects_a_corrupted_inner_length() {
        let mut p = pool(16);
        let sdus = [ip4(20, 1, 17), ip4(20, 2, 17), ip4(20, 3, 17)];
        for (at, value) in [(40 + 2, 200u16), (40 + 2, 10), (80 + 2, 39), (80 + 2, 41)] {
            let mut bytes = sdus.concat();
            bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
            let b = buf_from(&mut p, &bytes);
            let mut out = Vec::new();
            assert_eq!(
                disaggregate(b, 3, &mut p, &mut out),
                Err(DropReason::MxConcatLength),
                "length {value} at {at}"
            );
            assert!(out.is_empty());
            assert_eq!(p.available(), p.allocated());
        }
        // Wrong counts and leftovers.
        for count in [0, 2, 4] {
            let b = buf_from(&mut p, &sdus.concat());
            let mut out = Vec::new();
            assert_eq!(
                disaggregate(b, count, &mut p, &mut out),
                Err(DropReason::MxConcatLength)
            );
        }
        assert_eq!(p.available(), p.allocated());
    }

    #[test]
    fn disaggregate_pool_exhaustion_returns_every_buffer() {
        let mut p = pool(3);
        let sdus = [ip4(20, 1, 17), ip4(20, 2, 17), ip4(20, 3, 17), ip4(1, 4, 6)];
        let b = buf_from(&mut p, &sdus.concat());
        let mut out = vec![HeapBuf::from_slice(&[1])];
        assert_eq!(
            disaggregate(b, 4, &mut p, &mut out),
            Err(DropReason::PoolExhausted)
        );
        assert_eq!(out.len(), 1, "nothing appended");
        assert_eq!((p.allocated(), p.available()), (3, 3));
    }

    #[test]
    fn disaggregate_appends_after_existing_entries_in_order() {
        let mut p = pool(8);
        let sdus = [ip4(3, 1, 17), ip6(4, 2, 17, false)];
        let b = buf_from(&mut p, &sdus.concat());
        let mut out = vec![HeapBuf::from_slice(&[9])];
        assert_eq!(disaggregate(b, 2, &mut p, &mut out), Ok(2));
        let got: Vec<Vec<u8>> = out.iter().map(|b| b.to_vec()).collect();
        assert_eq!(got, vec![vec![9], sdus[0].clone(), sdus[1].clone()]);
    }

    fn arb_sdus() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec((0usize..400, any::<u8>(), 0u8..3), 1..=20).prop_map(|v| {
            v.into_iter()
                .map(|(len, seed, kind)| match kind {
                    0 => ip4(len, seed, 17),
                    1 => ip6(len, seed, 6, false),
                    _ => ip6(len, seed, 17, true),
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn s4_2_3_concatenate_disaggregate_round_trips(
            candidates in arb_sdus(), opt in any::<bool>(), mask in any::<u8>(),
            sn in prop_oneof![0u16..30, 65510u16..=65535, any::<u16>()],
            mtu in 600usize..=1500,
        ) {
            let fields = TrailerFields::new(mask & !(flags::FRAGMENT_CONTROL | flags::FIRST_SDU_LENGTH));
            let mut t = MxTrailer {
                next_header: Some(0),
                connection_id: Some(1),
                traffic_class: Some(2),
                sequence_number: Some(sn),
                ..Default::default()
            };
            fields.apply(&mut t);
            // Fill the PDU up to the MTU, as the engine would.
            let mut sdus = Vec::new();
            let mut payload = 0;
            for s in candidates {
                let k = sdus.len() + 1;
                if !fits(payload, s.len(), trailer_len(&t, k, opt), mtu) {
                    break;
                }
                payload += s.len();
                sdus.push(s);
            }
            prop_assume!(!sdus.is_empty());
            let mut p = pool(64);
            let (bytes, got) = round_trip(&sdus, &t, opt, &mut p);
            prop_assert!(bytes.len() <= mtu);
            prop_assert_eq!(bytes.len(), payload + trailer_len(&t, sdus.len(), opt));
            prop_assert_eq!(got, sdus);
            prop_assert_eq!(p.available(), p.allocated(), "no buffer leaked");
        }

        #[test]
        fn disaggregate_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300),
                                     count in 0usize..6) {
            let mut p = pool(8);
            let b = buf_from(&mut p, &data);
            let mut out = Vec::new();
            match disaggregate(b, count, &mut p, &mut out) {
                Ok(n) => {
                    prop_assert_eq!(n, out.len());
                    let joined: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
                    prop_assert_eq!(joined, data);
                    for b in out { p.free(b); }
                }
                Err(_) => prop_assert!(out.is_empty()),
            }
            prop_assert_eq!(p.available(), p.allocated());
        }
    }
}

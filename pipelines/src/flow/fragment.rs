//! MX fragmentation (draft-04 §4.2.2, `WIRE.md` "Fragmentation"): the transmitter splits an SDU
//! that does not fit the delivery connection's MTU into at most 128 MX PDUs ([`fragment_sdu`]);
//! the receiver combines them again through a [`Reassembler`] ([`reassemble`]).
//!
//! Every fragment is a copy of the SDU's IP header (protocol 114, length = the fragment PDU's
//! own length including the trailer), one piece of the SDU's IP payload and a trailer with the
//! SDU's SN, Next Header = the SDU's protocol and FC = MF | offset. The offset counts fragments,
//! not 8-byte blocks as in IPv4.

use crate::buf::{BufPool, PacketBuf};
use crate::drop::DropReason;
use crate::flow::reassembly::{FragmentInfo, Reassembler};
use crate::flow::seqnum::{FlowKey, Sn16};
use crate::flow::Instant;
use crate::mx::{self, PROTOCOL_MX};
use crate::wire::ip::IpPacket;
use crate::wire::mx_trailer::{FragmentControl, MxTrailer};

/// draft-04 §4.2.2: "The maximum number of fragments per MX SDU is 2^7 (=128)".
pub const MAX_FRAGMENTS: usize = FragmentControl::MAX_FRAGMENTS;

/// Number of fragments needed to carry an SDU of `sdu_len` bytes (IP header `ip_header_len`) in
/// PDUs of at most `max_pdu_len` bytes with a trailer of `trailer_len` bytes; None if more than
/// 128 or if not even one payload byte fits.
///
/// 1 means the SDU fits whole. Use [`fragment_trailer_len`] for `trailer_len`: a fragment's
/// trailer always carries Next Header and FC.
pub fn fragments_needed(
    sdu_len: usize,
    ip_header_len: usize,
    trailer_len: usize,
    max_pdu_len: usize,
) -> Option<usize> {
    let payload = sdu_len.checked_sub(ip_header_len)?;
    // Every fragment repeats the IP header and carries a trailer (draft-04 §4.2.2).
    let room = max_pdu_len
        .checked_sub(ip_header_len)?
        .checked_sub(trailer_len)?;
    if room == 0 {
        return None;
    }
    let n = payload.div_ceil(room).max(1);
    (n <= MAX_FRAGMENTS).then_some(n)
}

/// The trailer of a fragment built from `template` (draft-04 §4.2.2, `WIRE.md`): Next Header =
/// the SDU's `protocol` (the IP header says 114), FC = `fc`, everything else as given.
pub fn fragment_trailer(template: &MxTrailer, protocol: u8, fc: FragmentControl) -> MxTrailer {
    MxTrailer {
        next_header: Some(protocol),
        fragment_control: Some(fc),
        ..*template
    }
}

/// Length of the trailer [`fragment_sdu`] appends for `template` (with NH and FC forced).
pub fn fragment_trailer_len(template: &MxTrailer) -> usize {
    fragment_trailer(template, 0, FragmentControl::default()).buffer_len()
}

/// Size of every piece but the last when `payload` bytes are split `n` ways. Pieces are as equal
/// as possible (`ceil(payload / n)`), so the last one is never empty for `n <= payload` and no
/// piece exceeds the room that [`fragments_needed`] computed.
fn piece_len(payload: usize, n: usize) -> usize {
    payload.div_ceil(n.max(1))
}

/// What [`fragment_sdu`] needs to know about the SDU, all checked before any buffer is touched.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// IP header length (IPv6: with extension headers), copied into every fragment.
    header_len: usize,
    /// Offset of the byte holding the protocol (IPv6: in the last extension header).
    proto_at: usize,
    /// The SDU's upper-layer protocol, carried in Next Header.
    protocol: u8,
    /// IP payload length of the SDU.
    payload: usize,
    /// Number of fragments.
    n: usize,
    /// Piece size of all but the last fragment.
    piece: usize,
    /// Trailer length of every fragment.
    trailer_len: usize,
}

impl Plan {
    fn new(sdu: &[u8], max_pdu_len: usize, template: &MxTrailer) -> Result<Plan, DropReason> {
        let ip = IpPacket::new_checked(sdu).map_err(|e| e.reason)?;
        let upper = ip.upper_layer().map_err(|e| e.reason)?;
        let total = ip.total_len();
        let trailer_len = fragment_trailer_len(template);
        let n = fragments_needed(total, upper.offset, trailer_len, max_pdu_len)
            .ok_or(DropReason::MxFragment)?;
        let payload = total - upper.offset; // upper.offset <= total after the walk
        let piece = piece_len(payload, n);
        // Fragment 0 is the longest; its length field must hold it (pieces <= the SDU, but
        // the trailer is added).
        if !mx::ip_len_fits(ip.version(), upper.offset + piece + trailer_len) {
            return Err(DropReason::MxTrailerLength);
        }
        Ok(Plan {
            header_len: upper.offset,
            proto_at: upper.next_header_field_offset,
            protocol: upper.protocol,
            payload,
            n,
            piece,
            trailer_len,
        })
    }

    /// Byte range of piece `i` within the SDU's IP payload.
    fn piece_range(&self, i: usize) -> (usize, usize) {
        let start = (i * self.piece).min(self.payload);
        let end = (start + self.piece).min(self.payload);
        (start, end)
    }

    /// The trailer of fragment `i` carrying `piece` payload bytes.
    fn trailer(&self, template: &MxTrailer, i: usize, piece: usize) -> MxTrailer {
        let fc = FragmentControl {
            more: i + 1 < self.n,
            offset: i as u8, // i < n <= 128
        };
        let mut t = fragment_trailer(template, self.protocol, fc);
        // AMBIGUITY (draft-04 §4.2.2/§4.2.3): FSL has no meaning in a fragment (the receiver
        // ignores it, see `mx::MxPdu`), but a negotiated field must be present; when the
        // template has it, it carries this fragment's IP header + piece length, which is what
        // a receiver reports as the fragment's "first SDU length" (and the SDU's true length
        // when n == 1).
        if t.first_sdu_length.is_some() {
            t.first_sdu_length = Some((self.header_len + piece) as u16); // <= the SDU's length
        }
        t
    }
}

/// Writes fragment `i` of `sdu` (IP header, piece, trailer) into the empty buffer `buf`.
fn build_fragment<B: PacketBuf>(
    buf: &mut B,
    sdu: &[u8],
    plan: &Plan,
    template: &MxTrailer,
    i: usize,
) -> Result<(), DropReason> {
    let (start, end) = plan.piece_range(i);
    let h = plan.header_len;
    let len = h + (end - start) + plan.trailer_len;
    let Some(dst) = buf.append(len) else {
        return Err(DropReason::NoRoom);
    };
    let (header, rest) = dst.split_at_mut(h);
    let (piece, trailer) = rest.split_at_mut(end - start);
    header.copy_from_slice(&sdu[..h]);
    piece.copy_from_slice(&sdu[h + start..h + end]);
    plan.trailer(template, i, end - start).emit(trailer);
    // draft-04 §4.2.2: "The length field in the IP header of MX PDU SHOULD be changed to the
    // length of the MX PDU, and the protocol type SHOULD be changed to "114"".
    mx::rewrite_header(buf.data_mut(), plan.proto_at, PROTOCOL_MX, len);
    Ok(())
}

/// Splits the IP packet in `sdu` into n-way MX fragments of at most `max_pdu_len` bytes each:
/// every fragment is a copy of the SDU's IP header (protocol 114, total length = the fragment
/// PDU's own length INCLUDING the trailer, fresh IPv4 checksum; IPv6: payload length and the
/// next-header byte of the last extension header), one piece of the SDU's IP payload (pieces of
/// equal size except the last), and `trailer` with Next Header = the SDU's protocol (forced),
/// FC = MF|offset (forced), everything else as given (same SN in every fragment). Fragments are
/// appended to `out` in offset order. `sdu` is reused as the first fragment; the others come
/// from `pool`. On error nothing is appended and every buffer taken (including `sdu`) is
/// returned to `pool`.
///
/// Returns the number of fragments. An SDU that fits whole gives one PDU with FC present and 0
/// (draft-04 §4.2.2: a whole SDU), which the receiver treats as unfragmented. Bytes after the
/// SDU's IP length (link padding) are not sent. The IPv4 checksum is updated incrementally
/// (RFC 1624), which equals a fresh computation whenever the SDU's checksum was valid.
///
/// Errors: the SDU is not a valid IP packet (its parse reason); more than 128 fragments or no
/// room for payload ([`DropReason::MxFragment`]); a fragment too long for its IP length field
/// ([`DropReason::MxTrailerLength`]); the pool is empty ([`DropReason::PoolExhausted`]); a
/// buffer too small ([`DropReason::NoRoom`]).
pub fn fragment_sdu<B: PacketBuf>(
    mut sdu: B,
    max_pdu_len: usize,
    trailer: &MxTrailer,
    pool: &mut dyn BufPool<B>,
    out: &mut Vec<B>,
) -> Result<usize, DropReason> {
    let plan = match Plan::new(sdu.data(), max_pdu_len, trailer) {
        Ok(p) => p,
        Err(e) => {
            pool.free(sdu);
            return Err(e);
        }
    };
    let mark = out.len();
    let fail = |e: DropReason, sdu: B, out: &mut Vec<B>, pool: &mut dyn BufPool<B>| {
        for b in out.drain(mark..) {
            pool.free(b);
        }
        pool.free(sdu);
        Err(e)
    };
    // Fragments 1.. are copied out of the SDU before its buffer is cut down to fragment 0.
    for i in 1..plan.n {
        let Some(mut buf) = pool.alloc() else {
            return fail(DropReason::PoolExhausted, sdu, out, pool);
        };
        if let Err(e) = build_fragment(&mut buf, sdu.data(), &plan, trailer, i) {
            pool.free(buf);
            return fail(e, sdu, out, pool);
        }
        out.push(buf);
    }
    // Fragment 0 in place: keep header + first piece, drop the rest, append the trailer.
    let (start, end) = plan.piece_range(0);
    let keep = plan.header_len + (end - start);
    if !sdu.trim(sdu.len() - keep) {
        return fail(DropReason::Truncated, sdu, out, pool);
    }
    let t = plan.trailer(trailer, 0, end - start);
    let Some(dst) = sdu.append(plan.trailer_len) else {
        return fail(DropReason::NoRoom, sdu, out, pool);
    };
    t.emit(dst);
    let len = sdu.len();
    mx::rewrite_header(sdu.data_mut(), plan.proto_at, PROTOCOL_MX, len);
    out.insert(mark, sdu);
    Ok(plan.n)
}

/// Receiver: feeds one received fragment (the buffer as left by `mx::strip_trailer`: IP header
/// as received + piece) into `reasm`. Fragment 0 contributes its IP header and piece, others
/// their piece only (their IP header is skipped). When the SDU is complete, returns it in a
/// buffer from `pool` with its IP header restored: protocol = `next_header` (IPv6: in the right
/// next-header byte), total length = the SDU's full length, fresh IPv4 checksum. `scratch` is a
/// reusable Vec the caller keeps (no allocation in steady state). The fragment buffer itself is
/// always returned to the pool.
///
/// `Ok(None)`: more fragments are needed. An FC of 0 (a whole SDU) is passed through the
/// reassembler and restored the same way. The IPv4 checksum is updated incrementally from the
/// first fragment's (RFC 1624), so the SDU comes out with exactly the checksum it was sent with.
///
/// Errors: the fragment's IP header is malformed (its parse reason); the reassembler refused
/// the fragment (`ReassemblyError::reason`); the SDU is too long for its IP length field; no
/// buffer in the pool ([`DropReason::PoolExhausted`]) or too small ([`DropReason::NoRoom`]):
/// the SDU is then lost.
#[allow(clippy::too_many_arguments)]
pub fn reassemble<B: PacketBuf>(
    reasm: &mut Reassembler,
    key: FlowKey,
    sn: u16,
    fc: FragmentControl,
    next_header: u8,
    mut frag: B,
    now: Instant,
    pool: &mut dyn BufPool<B>,
    scratch: &mut Vec<u8>,
) -> Result<Option<B>, DropReason> {
    let r = insert_fragment(reasm, key, sn, fc, &mut frag, now, scratch);
    pool.free(frag);
    let Some(len) = r? else {
        return Ok(None);
    };
    let Some(sdu) = scratch.get_mut(..len) else {
        return Err(DropReason::Truncated);
    };
    // WIRE.md: "Reassembly restores the first fragment's header with the original protocol
    // (from Next Header), the full length and a fresh checksum."
    let upper = mx::fit_ip_len(sdu).map_err(|e| e.reason)?;
    mx::rewrite_header(sdu, upper.next_header_field_offset, next_header, len);
    let Some(mut buf) = pool.alloc() else {
        return Err(DropReason::PoolExhausted);
    };
    if !buf.extend_from_slice(sdu) {
        pool.free(buf);
        return Err(DropReason::NoRoom);
    }
    Ok(Some(buf))
}

/// Hands the fragment's contribution to the reassembler.
fn insert_fragment<B: PacketBuf>(
    reasm: &mut Reassembler,
    key: FlowKey,
    sn: u16,
    fc: FragmentControl,
    frag: &mut B,
    now: Instant,
    scratch: &mut Vec<u8>,
) -> Result<Option<usize>, DropReason> {
    // The header's length still counts the stripped trailer; make it describe the buffer so
    // the header (IPv6: with its extension headers) can be delimited.
    let upper = mx::fit_ip_len(frag.data_mut()).map_err(|e| e.reason)?;
    let data = if fc.offset == 0 {
        // draft-04 §4.2.2: the first fragment's header becomes the SDU's header.
        frag.data()
    } else {
        frag.data().get(upper.offset..).unwrap_or_default()
    };
    let info = FragmentInfo {
        offset: fc.offset,
        more: fc.more,
    };
    reasm
        .insert(key, Sn16(sn), info, data, now, scratch)
        .map_err(|e| e.reason())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::buf::{HeapBuf, HeapPool};
    use crate::flow::reassembly::ReassemblyConfig;
    use crate::flow::MS;
    use crate::mx::{MxPdu, PduOptions};
    use crate::wire::ipv4;
    use proptest::prelude::*;

    /// An IPv4 packet with `payload` bytes of payload (pattern from `seed`), protocol `proto`
    /// and a valid header checksum.
    pub(crate) fn ip4(payload: usize, seed: u8, proto: u8) -> Vec<u8> {
        let total = 20 + payload;
        let mut v = vec![0u8; total];
        v[0] = 0x45;
        v[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        v[4..6].copy_from_slice(&[seed, seed ^ 0x5a]);
        v[8] = 64;
        v[9] = proto;
        v[12..16].copy_from_slice(&[10, 0, 0, 1]);
        v[16..20].copy_from_slice(&[10, 0, seed, 2]);
        for (i, b) in v[20..].iter_mut().enumerate() {
            *b = seed.wrapping_add((i * 7) as u8);
        }
        ipv4::Packet::new_unchecked(&mut v[..]).fill_checksum();
        v
    }

    /// An IPv6 packet with `payload` bytes of upper-layer payload, protocol `proto`, optionally
    /// behind an 8-byte Destination Options header.
    pub(crate) fn ip6(payload: usize, seed: u8, proto: u8, dest_opts: bool) -> Vec<u8> {
        let ext = if dest_opts { 8 } else { 0 };
        let mut v = vec![0u8; 40 + ext + payload];
        v[0] = 0x60;
        v[4..6].copy_from_slice(&((ext + payload) as u16).to_be_bytes());
        v[6] = if dest_opts { 60 } else { proto };
        v[7] = 64;
        v[23] = seed;
        v[39] = 2;
        if dest_opts {
            v[40] = proto;
        }
        for (i, b) in v[40 + ext..].iter_mut().enumerate() {
            *b = seed.wrapping_add((i * 3) as u8);
        }
        v
    }

    pub(crate) fn pool(limit: usize) -> HeapPool {
        HeapPool::new(limit, 0, 128, 8192)
    }

    /// A pool buffer holding `bytes`.
    pub(crate) fn buf_from(pool: &mut HeapPool, bytes: &[u8]) -> HeapBuf {
        let mut b = pool.alloc().expect("pool has room");
        assert!(b.extend_from_slice(bytes));
        b
    }

    fn template(sn: u16) -> MxTrailer {
        MxTrailer {
            connection_id: Some(3),
            traffic_class: Some(1),
            sequence_number: Some(sn),
            ..Default::default()
        }
    }

    fn reassembler() -> Reassembler {
        Reassembler::new(ReassemblyConfig {
            max_slots: 4,
            timeout_ns: 1000 * MS,
            max_sdu_bytes: 16384,
            max_total_bytes: 1 << 20,
        })
    }

    const KEY: FlowKey = FlowKey::new(7, 3, 1);

    /// Fragments `sdu` with `max_pdu_len`, then parses and strips every fragment as a receiver.
    /// Returns (fragments as sent, stripped buffers with their trailer).
    fn send(
        sdu: &[u8],
        max_pdu_len: usize,
        t: &MxTrailer,
        pool: &mut HeapPool,
    ) -> (Vec<Vec<u8>>, Vec<(HeapBuf, MxTrailer)>) {
        let b = buf_from(pool, sdu);
        let mut out = Vec::new();
        let n = fragment_sdu(b, max_pdu_len, t, pool, &mut out).unwrap();
        assert_eq!(n, out.len());
        let sent: Vec<Vec<u8>> = out.iter().map(|b| b.to_vec()).collect();
        let stripped = out
            .into_iter()
            .map(|mut b| {
                let s = mx::strip_trailer(&mut b, PduOptions::default()).unwrap();
                (b, s.trailer.unwrap())
            })
            .collect();
        (sent, stripped)
    }

    /// Feeds stripped fragments in `order`; returns the SDU (exactly one completion expected).
    fn receive(
        stripped: Vec<(HeapBuf, MxTrailer)>,
        order: &[usize],
        pool: &mut HeapPool,
    ) -> Vec<u8> {
        let mut r = reassembler();
        let mut scratch = Vec::new();
        let mut slots: Vec<Option<(HeapBuf, MxTrailer)>> = stripped.into_iter().map(Some).collect();
        let mut done = None;
        for (k, &i) in order.iter().enumerate() {
            let (b, t) = slots[i].take().unwrap();
            let got = reassemble(
                &mut r,
                KEY,
                t.sequence_number.unwrap(),
                t.fragment_control.unwrap(),
                t.next_header.unwrap(),
                b,
                k as u64,
                pool,
                &mut scratch,
            )
            .unwrap();
            if let Some(sdu) = got {
                assert!(done.is_none(), "completed twice");
                assert_eq!(k + 1, order.len(), "completed before the last fragment");
                done = Some(sdu.to_vec());
                pool.free(sdu);
            }
        }
        done.expect("SDU completed")
    }

    #[test]
    fn s4_2_2_two_way_split_first_mf1_fo0_second_mf0_fo1() {
        let mut p = pool(16);
        let sdu = ip4(100, 1, 17);
        let tlen = fragment_trailer_len(&template(9));
        // Room for 60 payload bytes per fragment: 100 bytes need two.
        let max = 20 + 60 + tlen;
        let (sent, stripped) = send(&sdu, max, &template(9), &mut p);
        assert_eq!(sent.len(), 2);
        let fcs: Vec<u8> = sent
            .iter()
            .map(|f| {
                let pdu = MxPdu::parse(f, PduOptions::default()).unwrap();
                pdu.fragment().unwrap().to_byte()
            })
            .collect();
        assert_eq!(fcs, vec![0x80, 0x01], "first MF=1 FO=0, second MF=0 FO=1");
        assert_eq!(receive(stripped, &[1, 0], &mut p), sdu);
    }

    #[test]
    fn s4_2_2_fragment_offset_counts_fragments_not_8_byte_blocks() {
        let mut p = pool(16);
        let sdu = ip4(50, 2, 6);
        let t = template(100);
        // 7 payload bytes per fragment: 8 fragments, offsets 0..=7 (not 0, 7/8, 14/8, ...).
        let max = 20 + 7 + fragment_trailer_len(&t);
        let (sent, _) = send(&sdu, max, &t, &mut p);
        let fcs: Vec<FragmentControl> = sent
            .iter()
            .map(|f| MxTrailer::parse(f).unwrap().fragment_control.unwrap())
            .collect();
        let offsets: Vec<u8> = fcs.iter().map(|fc| fc.offset).collect();
        assert_eq!(offsets, (0..8).collect::<Vec<u8>>());
        let mf: Vec<bool> = fcs.iter().map(|fc| fc.more).collect();
        assert_eq!(mf, [true, true, true, true, true, true, true, false]);
    }

    #[test]
    fn s4_2_2_fragment_header_is_a_copy_with_protocol_114_and_its_own_length() {
        let mut p = pool(16);
        let sdu = ip4(90, 3, 17);
        let t = template(5);
        let max = 20 + 40 + fragment_trailer_len(&t);
        let (sent, _) = send(&sdu, max, &t, &mut p);
        assert_eq!(sent.len(), 3);
        for f in &sent {
            assert!(f.len() <= max);
            let ip = ipv4::Packet::new_checked(&f[..]).unwrap();
            assert_eq!(ip.next_header(), PROTOCOL_MX, "SHOULD be changed to 114");
            assert_eq!(
                ip.total_len(),
                f.len(),
                "length of the MX PDU, trailer included"
            );
            assert!(ip.verify_checksum());
            // Everything else is copied: identification, TTL, addresses.
            assert_eq!(&f[4..9], &sdu[4..9]);
            assert_eq!(&f[12..20], &sdu[12..20]);
            let tr = MxTrailer::parse(f).unwrap();
            assert_eq!(tr.next_header, Some(17), "Next Header = the SDU's protocol");
            assert_eq!(
                tr.sequence_number,
                Some(5),
                "every fragment has the SDU's SN"
            );
            assert_eq!((tr.connection_id, tr.traffic_class), (Some(3), Some(1)));
        }
        // Pieces of equal size except the last: 90 = 30 + 30 + 30 (ceil(90/3)).
        let tlen = fragment_trailer_len(&t);
        assert_eq!(tlen, 7, "NH + CID + TC + SN(2) + FC + flags");
        let pieces: Vec<usize> = sent.iter().map(|f| f.len() - 20 - tlen).collect();
        assert_eq!(pieces, vec![30, 30, 30]);
    }

    #[test]
    fn s4_2_2_ipv6_next_header_byte_of_the_last_extension_header_is_rewritten() {
        let mut p = pool(16);
        let sdu = ip6(70, 4, 17, true);
        let t = template(65535);
        let max = 48 + 30 + fragment_trailer_len(&t);
        let (sent, stripped) = send(&sdu, max, &t, &mut p);
        assert_eq!(sent.len(), 3);
        for f in &sent {
            assert_eq!(f[6], 60, "fixed header still points at Destination Options");
            assert_eq!(f[40], PROTOCOL_MX, "last extension header says 114");
            assert_eq!(usize::from(u16::from_be_bytes([f[4], f[5]])) + 40, f.len());
        }
        assert_eq!(receive(stripped, &[2, 0, 1], &mut p), sdu);
    }

    #[test]
    fn s4_2_2_at_most_128_fragments() {
        // 128 pieces of 1 byte fit; 129 do not.
        assert_eq!(fragments_needed(20 + 128, 20, 6, 20 + 6 + 1), Some(128));
        assert_eq!(fragments_needed(20 + 129, 20, 6, 20 + 6 + 1), None);
        let mut p = pool(256);
        let t = template(1);
        let max = 20 + 1 + fragment_trailer_len(&t);
        let sdu = buf_from(&mut p, &ip4(129, 5, 17));
        let mut out = Vec::new();
        let r = fragment_sdu(sdu, max, &t, &mut p, &mut out);
        assert_eq!(r, Err(DropReason::MxFragment));
        assert!(out.is_empty());
        assert_eq!(
            p.available(),
            p.allocated(),
            "the SDU went back to the pool"
        );
        // Exactly 128 works, and the last offset is 127.
        let sdu = ip4(128, 6, 17);
        let (sent, stripped) = send(&sdu, max, &t, &mut p);
        assert_eq!(sent.len(), 128);
        let last = MxTrailer::parse(&sent[127]).unwrap().fragment_control;
        assert_eq!(
            last,
            Some(FragmentControl {
                more: false,
                offset: 127
            })
        );
        let order: Vec<usize> = (0..128).rev().collect();
        assert_eq!(receive(stripped, &order, &mut p), sdu);
    }

    #[test]
    fn fragments_needed_refuses_when_no_payload_byte_fits() {
        assert_eq!(fragments_needed(100, 20, 6, 26), None);
        assert_eq!(fragments_needed(100, 20, 6, 20), None);
        assert_eq!(fragments_needed(100, 20, 6, 27), Some(80));
        assert_eq!(fragments_needed(200, 20, 6, 27), None, "180 fragments");
        assert_eq!(
            fragments_needed(10, 20, 6, 1500),
            None,
            "shorter than its header"
        );
    }

    #[test]
    fn an_sdu_that_fits_is_one_whole_pdu() {
        let mut p = pool(16);
        let sdu = ip4(40, 7, 17);
        let t = template(2);
        assert_eq!(
            fragments_needed(60, 20, fragment_trailer_len(&t), 1500),
            Some(1)
        );
        let (sent, stripped) = send(&sdu, 1500, &t, &mut p);
        assert_eq!(sent.len(), 1);
        let pdu = MxPdu::parse(&sent[0], PduOptions::default()).unwrap();
        assert_eq!(
            (pdu.fragment(), pdu.sdu_count),
            (None, 1),
            "FC 0: whole SDU"
        );
        assert_eq!(stripped[0].0.data(), &sdu[..], "strip_trailer restores it");
    }

    #[test]
    fn s4_2_2_sn_distinguishes_fragments_of_different_sdus() {
        let mut p = pool(64);
        let a = ip4(100, 8, 17);
        let b = ip4(100, 9, 6);
        let max = 20 + 40 + fragment_trailer_len(&template(0));
        let (_, sa) = send(&a, max, &template(65535), &mut p);
        let (_, sb) = send(&b, max, &template(0), &mut p);
        let mut r = reassembler();
        let mut scratch = Vec::new();
        let mut done = Vec::new();
        let mut ia = sa.into_iter();
        let mut ib = sb.into_iter();
        // Interleave the two SDUs' fragments (SN 65535 and 0, across the wrap).
        loop {
            let next: Vec<(HeapBuf, MxTrailer)> = ib.next().into_iter().chain(ia.next()).collect();
            if next.is_empty() {
                break;
            }
            for (buf, t) in next {
                let fc = t.fragment_control.unwrap();
                let sn = t.sequence_number.unwrap();
                let nh = t.next_header.unwrap();
                let got = reassemble(&mut r, KEY, sn, fc, nh, buf, 0, &mut p, &mut scratch);
                if let Some(s) = got.unwrap() {
                    done.push(s.to_vec());
                }
            }
        }
        assert_eq!(done, vec![b, a]);
    }

    #[test]
    fn duplicate_fragment_is_refused_and_its_buffer_returned() {
        let mut p = pool(16);
        let sdu = ip4(100, 10, 17);
        let t = template(3);
        let max = 20 + 40 + fragment_trailer_len(&t);
        let (_, stripped) = send(&sdu, max, &t, &mut p);
        let (b0, t0) = &stripped[0];
        let mut r = reassembler();
        let mut scratch = Vec::new();
        let fc = t0.fragment_control.unwrap();
        let first = reassemble(&mut r, KEY, 3, fc, 17, b0.clone(), 0, &mut p, &mut scratch);
        assert_eq!(first, Ok(None));
        let before = p.available();
        let again = reassemble(&mut r, KEY, 3, fc, 17, b0.clone(), 1, &mut p, &mut scratch);
        assert_eq!(again, Err(DropReason::ReassemblyDuplicate));
        assert_eq!(
            p.available(),
            before + 1,
            "the fragment went back to the pool"
        );
    }

    #[test]
    fn malformed_fragment_header_is_refused() {
        let mut p = pool(4);
        let mut r = reassembler();
        let mut scratch = Vec::new();
        let fc = FragmentControl {
            more: true,
            offset: 1,
        };
        for (bytes, reason) in [
            (&[0x45u8, 0, 0][..], DropReason::Truncated),
            (&[0x70; 40][..], DropReason::IpVersion),
            (&[0x41; 24][..], DropReason::Ipv4HeaderLength),
            (&[0x60; 30][..], DropReason::Truncated),
        ] {
            let b = buf_from(&mut p, bytes);
            let got = reassemble(&mut r, KEY, 1, fc, 17, b, 0, &mut p, &mut scratch);
            assert_eq!(got, Err(reason));
        }
        assert_eq!(p.available(), p.allocated());
    }

    #[test]
    fn pool_exhaustion_while_fragmenting_returns_every_buffer() {
        // 5 fragments need 4 extra buffers; the pool has 3 (1 holds the SDU).
        let mut p = pool(4);
        let t = template(4);
        let max = 20 + 20 + fragment_trailer_len(&t);
        let sdu = buf_from(&mut p, &ip4(100, 11, 17));
        let mut out = Vec::new();
        let r = fragment_sdu(sdu, max, &t, &mut p, &mut out);
        assert_eq!(r, Err(DropReason::PoolExhausted));
        assert!(out.is_empty());
        assert_eq!((p.allocated(), p.available()), (4, 4));
    }

    #[test]
    fn pool_exhaustion_while_reassembling_loses_the_sdu_not_buffers() {
        let mut p = pool(8);
        let sdu = ip4(100, 12, 17);
        let t = template(8);
        let max = 20 + 60 + fragment_trailer_len(&t);
        let (_, stripped) = send(&sdu, max, &t, &mut p);
        // Fragments in buffers of another geometry, which the pool drops on `free`, so that
        // freeing them does not refill it.
        let stripped: Vec<(HeapBuf, MxTrailer)> = stripped
            .into_iter()
            .map(|(b, t)| {
                let copy = HeapBuf::from_slice(b.data());
                p.free(b);
                (copy, t)
            })
            .collect();
        // Hold every free buffer so the completed SDU finds none.
        let mut held = Vec::new();
        while let Some(b) = p.alloc() {
            held.push(b);
        }
        let mut r = reassembler();
        let mut scratch = Vec::new();
        let mut results = Vec::new();
        for (b, t) in stripped {
            let fc = t.fragment_control.unwrap();
            results.push(reassemble(
                &mut r,
                KEY,
                8,
                fc,
                17,
                b,
                0,
                &mut p,
                &mut scratch,
            ));
        }
        assert_eq!(results, vec![Ok(None), Err(DropReason::PoolExhausted)]);
        for b in held {
            p.free(b);
        }
        assert_eq!(p.available(), p.allocated());
    }

    #[test]
    fn fragment_sdu_rejects_a_non_ip_sdu_and_frees_it() {
        let mut p = pool(4);
        let b = buf_from(&mut p, &[0x12; 64]);
        let mut out = Vec::new();
        let r = fragment_sdu(b, 40, &template(0), &mut p, &mut out);
        assert_eq!(r, Err(DropReason::IpVersion));
        assert_eq!(p.available(), p.allocated());
    }

    #[test]
    fn fragment_sdu_without_tailroom_for_the_trailer_is_no_room() {
        // Pool buffers of 30 bytes cannot hold a 46-byte fragment.
        let mut p = HeapPool::new(4, 0, 0, 30);
        let t = template(0);
        let max = 20 + 20 + fragment_trailer_len(&t);
        let sdu = HeapBuf::from_slice(&ip4(30, 13, 17));
        let mut out = Vec::new();
        assert_eq!(
            fragment_sdu(sdu, max, &t, &mut p, &mut out),
            Err(DropReason::NoRoom)
        );
        assert!(out.is_empty());
        assert_eq!(p.available(), p.allocated());
    }

    fn arb_sdu_and_max() -> impl Strategy<Value = (Vec<u8>, usize, u16, Vec<usize>)> {
        (
            2usize..=128,
            1usize..=40,
            any::<prop::sample::Index>(),
            0u8..3,
            any::<u8>(),
            prop_oneof![65500u16..=65535, 0u16..40, any::<u16>()],
        )
            .prop_flat_map(|(n, room, extra, kind, seed, sn)| {
                // IP payload so that exactly n fragments of `room` bytes are needed.
                let payload = (n - 1) * room + 1 + extra.index(room);
                let sdu = match kind {
                    0 => ip4(payload, seed, 17),
                    1 => ip6(payload, seed, 6, false),
                    _ => ip6(payload, seed, 17, true),
                };
                let header = match kind {
                    0 => 20,
                    1 => 40,
                    _ => 48,
                };
                let max = header + room + fragment_trailer_len(&template(0));
                let order = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
                (Just(sdu), Just(max), Just(sn), order)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn s4_2_2_fragments_reassemble_byte_identical_in_any_order(
            (sdu, max, sn, order) in arb_sdu_and_max()
        ) {
            let mut p = pool(512);
            let t = template(sn);
            let (sent, stripped) = send(&sdu, max, &t, &mut p);
            prop_assert_eq!(sent.len(), order.len());
            let h = IpPacket::new_checked(&sdu[..]).unwrap().header_len().unwrap();
            prop_assert_eq!(
                fragments_needed(sdu.len(), h, fragment_trailer_len(&t), max),
                Some(order.len())
            );
            for (i, f) in sent.iter().enumerate() {
                prop_assert!(f.len() <= max);
                let pdu = MxPdu::parse(f, PduOptions::default()).unwrap();
                let fc = pdu.fragment().unwrap();
                prop_assert_eq!(usize::from(fc.offset), i);
                prop_assert_eq!(fc.more, i + 1 < sent.len());
                prop_assert_eq!(pdu.sequence_number(), Some(sn));
            }
            prop_assert_eq!(receive(stripped, &order, &mut p), sdu);
            prop_assert_eq!(p.available(), p.allocated(), "no buffer leaked");
        }

        #[test]
        fn reassemble_never_panics_on_arbitrary_fragments(
            frags in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..120), any::<u8>(), 0u16..3), 1..12)
        ) {
            let mut p = pool(64);
            let mut r = reassembler();
            let mut scratch = Vec::new();
            for (bytes, fc, sn) in frags {
                let b = buf_from(&mut p, &bytes);
                let fc = FragmentControl::from_byte(fc);
                if let Ok(Some(s)) = reassemble(&mut r, KEY, sn, fc, 17, b, 0, &mut p, &mut scratch) {
                    // Whatever completes carries a consistent IP length.
                    prop_assert_eq!(crate::wire::ip::packet_len(s.data()).ok(), Some(s.len()));
                    p.free(s);
                }
            }
            prop_assert_eq!(p.available(), p.allocated());
        }
    }
}

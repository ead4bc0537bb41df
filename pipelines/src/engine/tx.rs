//! Sender: anchor side -> delivery side (draft-04 §4: convergence first, then adaptation).

use crate::buf::{BufPool, PacketBuf};
use crate::drop::DropReason;
use crate::flow::Instant;
use crate::mx;
use crate::wire::gre;
use crate::wire::ip::IpPacket;
use crate::wire::ipv4::PROTOCOL_GRE;
use crate::wire::mx_trailer::MxTrailer;

use super::adapt::{self, NatSide};
use super::classify::{classify, flow_hash, PacketInfo};
use super::mxops;
use super::{Adaptation, Convergence, Engine, Group, Output, Role};
use crate::flow::steering::SteeringMode;

impl<B: PacketBuf> Engine<B> {
    /// Sends one anchor-side IP packet (see the module documentation). Outputs go to `out`;
    /// a dropped packet goes back to `pool` and is counted.
    pub fn from_anchor(
        &mut self,
        pkt: B,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let start = out.len();
        let (info, ci) = self.classify_one(&pkt);
        self.anchor_one(pkt, info, ci, now, pool, out, false);
        self.delay_outputs(start, now, pool, out);
    }

    /// Parses an anchor-side packet and finds its client slot (one look-up).
    fn classify_one(&self, pkt: &B) -> (Result<PacketInfo, DropReason>, Option<usize>) {
        match PacketInfo::parse(pkt.data()) {
            Ok(info) => {
                let anchor = match self.cfg.role {
                    Role::NMadp => info.dst,
                    Role::CMadp => info.src,
                };
                let ci = self.by_anchor.get(&anchor).map(|ci| ci as usize);
                (Ok(info), ci)
            }
            Err(e) => (Err(e.reason), None),
        }
    }

    /// Reads a word of each client's hot state the burst will use, so that the cache misses of
    /// the burst's clients overlap (independent loads) instead of following one another packet
    /// by packet; returns a value only so the loads are not optimised away.
    fn touch_clients(&self, burst: &[(Result<PacketInfo, DropReason>, Option<usize>)]) -> u64 {
        let mut sink = 0u64;
        for &(_, ci) in burst {
            let Some(c) = ci
                .and_then(|ci| self.clients.get(ci))
                .and_then(|c| c.as_ref())
            else {
                continue;
            };
            sink = sink.wrapping_add(c.counters.tx_sdus);
            if let Some(t) = c.tcs.first() {
                sink = sink.wrapping_add(u64::from(t.id));
            }
            if let Some(&(a, _, n)) = c.tx_seq.first() {
                sink = sink.wrapping_add(u64::from(a) + u64::from(n));
            }
            for p in c.paths.iter().take(2) {
                sink = sink.wrapping_add(u64::from(p.ident) ^ p.counters.tx_pdus);
            }
        }
        sink
    }

    /// Sends a burst of anchor-side packets (drained from `pkts`). Within the burst, small SDUs
    /// of one flow (client, anchor connection, traffic class) steered to the same path with
    /// consecutive sequence numbers are concatenated into one PDU when the path allows it
    /// (draft-04 §4.2.3).
    pub fn from_anchor_burst(
        &mut self,
        pkts: &mut Vec<B>,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let start = out.len();
        // Stage 1, the whole burst: parse each packet once and look up its client; then touch
        // the clients' state (their misses overlap). Stage 2, per packet: number, steer, adapt.
        let mut info = core::mem::take(&mut self.burst_info);
        info.clear();
        info.extend(pkts.iter().map(|p| self.classify_one(p)));
        core::hint::black_box(self.touch_clients(&info));
        for (pkt, (parsed, ci)) in pkts.drain(..).zip(info.drain(..)) {
            self.anchor_one(pkt, parsed, ci, now, pool, out, true);
        }
        self.burst_info = info;
        while let Some(g) = self.groups.pop() {
            self.flush_group(g, pool, out);
        }
        self.delay_outputs(start, now, pool, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn anchor_one(
        &mut self,
        mut pkt: B,
        parsed: Result<PacketInfo, DropReason>,
        ci: Option<usize>,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
        burst: bool,
    ) {
        self.counters.anchor_rx += 1;
        let info = match parsed {
            Ok(i) => i,
            Err(reason) => return self.drop_buf(pool, pkt, reason),
        };
        // Link padding after the IP packet is not part of the SDU.
        let extra = pkt.len().saturating_sub(info.len);
        pkt.trim(extra);
        let (remote, remote_port, client_port) = match self.cfg.role {
            // Downlink: from the internet (remote) to the client's anchor address.
            Role::NMadp => (info.src, info.ports.map(|p| p.0), info.ports.map(|p| p.1)),
            // Uplink: from the anchor address to the internet.
            Role::CMadp => (info.dst, info.ports.map(|p| p.1), info.ports.map(|p| p.0)),
        };
        let Some(ci) = ci else {
            return self.drop_buf(pool, pkt, DropReason::UnknownClient);
        };
        let seed = self.cfg.seed;
        let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) else {
            return self.drop_buf(pool, pkt, DropReason::UnknownClient);
        };
        let (tc, cid) = match classify(
            &c.profile.traffic_classes,
            &info,
            remote,
            remote_port,
            client_port,
        ) {
            Some(r) => (r.id, r.anchor),
            None => (0, c.first_anchor()),
        };
        // AMBIGUITY (draft-04 §4.4): GRE carries no traffic class, so a receiver could not keep
        // per-class sequence spaces apart; under GRE convergence SNs are per anchor connection.
        let seq_tc = match c.profile.convergence {
            Convergence::Gre => 0,
            Convergence::Trailer => tc,
        };
        let Some(ti) = c.tcs.iter().position(|t| t.id == tc) else {
            return self.drop_for(ci, pool, pkt, DropReason::NoPath);
        };
        // Only per-flow steering reads the flow hash: skip it for the per-packet modes.
        let hash = if c.tcs[ti].steering.mode() == SteeringMode::PerFlow {
            flow_hash(seed, &info)
        } else {
            0
        };
        let sel = c.tcs[ti].steering.select(hash, info.len, now);
        if sel.is_empty() {
            c.counters.no_path += 1;
            return self.drop_for(ci, pool, pkt, DropReason::NoPath);
        }
        // draft-04 §4.2.1: SNs per connection and traffic class, continuing across paths
        // (lossless switching). One SN per SDU; duplicates share it.
        let sn = match c
            .tx_seq
            .iter_mut()
            .find(|(a, t, _)| *a == cid && *t == seq_tc)
        {
            Some((_, _, next)) => {
                let sn = *next;
                *next = next.wrapping_add(1);
                sn
            }
            None => 0,
        };
        c.counters.tx_sdus += 1;
        c.counters.tx_bytes += info.len as u64;
        let n = sel.len();
        let mut original = Some(pkt);
        for (k, id) in sel.iter().enumerate() {
            let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) else {
                break;
            };
            let Some(pi) = c.path_index(id) else { continue };
            let buf = if k + 1 == n {
                match original.take() {
                    Some(b) => b,
                    None => break,
                }
            } else {
                // Duplicate mode: every extra path gets a copy from the pool.
                let Some(src) = original.as_ref() else { break };
                let Some(mut copy) = pool.alloc() else {
                    self.count_for(ci, DropReason::PoolExhausted);
                    continue;
                };
                if !copy.extend_from_slice(src.data()) {
                    self.drop_for(ci, pool, copy, DropReason::NoRoom);
                    continue;
                }
                copy
            };
            if n > 1 && k > 0 {
                if let Some(p) = self.clients[ci].as_mut().and_then(|c| c.paths.get_mut(pi)) {
                    p.counters.rare().duplicates_sent += 1;
                }
            }
            self.emit_sdu(ci, pi, cid, tc, sn, info.protocol, buf, pool, out, burst);
        }
        if let Some(b) = original {
            pool.free(b);
        }
    }

    /// Convergence (trailer or GRE) and adaptation of one SDU on one path.
    #[allow(clippy::too_many_arguments)]
    fn emit_sdu(
        &mut self,
        ci: usize,
        pi: usize,
        cid: u16,
        tc: u8,
        sn: u32,
        protocol: u8,
        mut buf: B,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
        burst: bool,
    ) {
        let role = self.cfg.role;
        let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) else {
            return self.drop_for(ci, pool, buf, DropReason::UnknownClient);
        };
        let anchor = c.anchor_addr;
        let convergence = c.profile.convergence;
        let Some(p) = c.paths.get_mut(pi) else {
            return self.drop_for(ci, pool, buf, DropReason::NoPath);
        };
        p.counters.tx_sdus += 1;
        if convergence == Convergence::Gre {
            // draft-04 §4.4 has no MX fragmentation.
            if buf.len() > p.max_pdu {
                return self.drop_for(ci, pool, buf, DropReason::TooBigForGre);
            }
            // draft-04 §4.4.1: key low 16 bits = anchor connection ID; RFC 2890 sequence number.
            let key = gre::key_for_anchor(Some(cid), 0);
            if let Err(r) = adapt::push_gre(&mut buf, key, Some(sn)) {
                return self.drop_for(ci, pool, buf, r);
            }
            return self.adapt_and_send(ci, pi, buf, pool, out);
        }
        if p.cfg.adaptation == Adaptation::ClientNat {
            // draft-04 §4.1 client NAT, applied to the SDU before the trailer so that every
            // fragment and every concatenated SDU carries the translated address.
            let Some(client_addr) = p.cfg.client_addr else {
                return self.drop_for(ci, pool, buf, DropReason::NoRemote);
            };
            let side = match role {
                Role::NMadp => NatSide::Dst,
                Role::CMadp => NatSide::Src,
            };
            debug_assert_ne!(client_addr, anchor);
            if let Err(r) = adapt::nat_rewrite(buf.data_mut(), side, client_addr) {
                return self.drop_for(ci, pool, buf, r);
            }
        }
        let ho = p.header_optimization();
        let max_pdu = p.max_pdu;
        let concat = p.cfg.concatenation;
        let mut t = MxTrailer {
            next_header: Some(protocol),
            connection_id: Some(cid as u8),
            traffic_class: Some(tc),
            sequence_number: Some(sn as u16),
            ..MxTrailer::default()
        };
        // draft-04 §4.2.1: only the fields negotiated for this path and direction. Without a
        // negotiated SN the PDU carries none (and the receiver cannot reorder it).
        p.cfg.trailer_tx.apply(&mut t);
        let tlen = sent_trailer_len(&t, ho);
        if buf.len().saturating_add(tlen) > max_pdu {
            if burst {
                self.flush_matching(ci, pi, cid, tc, pool, out);
            }
            // AMBIGUITY (draft-04 §4.2.2): the receiver tells fragments of different SDUs
            // apart by their SN, so fragments always carry one, negotiated or not.
            t.sequence_number = Some(sn as u16);
            let mut frags = core::mem::take(&mut self.frags);
            match mxops::fragment_sdu(buf, max_pdu, &t, pool, &mut frags) {
                Ok(n) => {
                    if let Some(p) = self.clients[ci].as_mut().and_then(|c| c.paths.get_mut(pi)) {
                        p.counters.rare().tx_fragments += n as u64;
                    }
                    for f in frags.drain(..) {
                        self.adapt_and_send(ci, pi, f, pool, out);
                    }
                }
                // The fragmenter returned every buffer to the pool.
                Err(r) => self.count_for(ci, r),
            }
            self.frags = frags;
            return;
        }
        if burst && concat {
            return self.group_add(ci, pi, cid, tc, sn, protocol, buf, max_pdu, pool, out);
        }
        if let Err(r) = add_trailer_classified(&mut buf, &t, ho, protocol) {
            return self.drop_for(ci, pool, buf, r);
        }
        self.adapt_and_send(ci, pi, buf, pool, out);
    }

    /// Adds an SDU to its concatenation group, flushing the group first when the SDU does not
    /// continue it (SN not consecutive) or does not fit.
    #[allow(clippy::too_many_arguments)]
    fn group_add(
        &mut self,
        ci: usize,
        pi: usize,
        cid: u16,
        tc: u8,
        sn: u32,
        protocol: u8,
        buf: B,
        max_pdu: usize,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let ho = self.clients[ci]
            .as_ref()
            .and_then(|c| c.paths.get(pi))
            .is_some_and(|p| p.header_optimization());
        let idx = self
            .groups
            .iter()
            .position(|g| g.ci == ci && g.pi == pi && g.cid == cid && g.tc == tc);
        if let Some(i) = idx {
            let template = self.clients[ci]
                .as_ref()
                .and_then(|c| c.paths.get(pi))
                .map(|p| group_trailer(p, cid, tc, sn, protocol));
            let g = &mut self.groups[i];
            let consecutive = (g.last_sn.wrapping_add(1) as u16) == sn as u16;
            // The trailer of the PDU with this SDU added (FSL appears from two SDUs on).
            let tlen =
                template.map_or(usize::MAX, |t| mxops::trailer_len(&t, g.sdus.len() + 1, ho));
            if consecutive && mxops::fits(g.payload_len, buf.len(), tlen, max_pdu) {
                g.payload_len += buf.len();
                g.last_sn = sn;
                g.sdus.push(buf);
                return;
            }
            let g = self.groups.swap_remove(i);
            self.flush_group(g, pool, out);
        }
        let mut sdus = self.spare.pop().unwrap_or_default();
        let payload_len = buf.len();
        sdus.push(buf);
        self.groups.push(Group {
            ci,
            pi,
            cid,
            tc,
            last_sn: sn,
            first_protocol: protocol,
            payload_len,
            sdus,
        });
    }

    fn flush_matching(
        &mut self,
        ci: usize,
        pi: usize,
        cid: u16,
        tc: u8,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        if let Some(i) = self
            .groups
            .iter()
            .position(|g| g.ci == ci && g.pi == pi && g.cid == cid && g.tc == tc)
        {
            let g = self.groups.swap_remove(i);
            self.flush_group(g, pool, out);
        }
    }

    /// Sends a group: one SDU with its own trailer, or a concatenated PDU whose trailer
    /// carries the LAST SDU's SN (draft-04 §4.2.3).
    fn flush_group(
        &mut self,
        mut g: Group<B>,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let Some(p) = self.clients[g.ci].as_ref().and_then(|c| c.paths.get(g.pi)) else {
            for b in g.sdus.drain(..) {
                self.drop_for(g.ci, pool, b, DropReason::NoPath);
            }
            self.spare.push(g.sdus);
            return;
        };
        let ho = p.header_optimization();
        let count = g.sdus.len();
        let t = group_trailer(p, g.cid, g.tc, g.last_sn, g.first_protocol);
        if count > 1 {
            // On error `concatenate` leaves the SDUs untouched: they go one by one below.
            if let Ok(pdu) = mxops::concatenate(&mut g.sdus, &t, ho, pool) {
                if let Some(p) = self.path_mut(g.ci, g.pi) {
                    p.counters.rare().tx_concatenated += 1;
                }
                self.adapt_and_send(g.ci, g.pi, pdu, pool, out);
                self.spare.push(g.sdus);
                return;
            }
        }
        let count = g.sdus.len();
        for (i, mut buf) in g.sdus.drain(..).enumerate() {
            // draft-04 §4.2.3: the group's SNs are consecutive, ending at `last_sn`.
            let back = (count - 1 - i) as u32;
            let protocol = IpPacket::new_checked(buf.data())
                .and_then(|ip| ip.upper_protocol())
                .unwrap_or(g.first_protocol);
            let Some(p) = self.clients[g.ci].as_ref().and_then(|c| c.paths.get(g.pi)) else {
                self.drop_for(g.ci, pool, buf, DropReason::NoPath);
                continue;
            };
            let t = group_trailer(p, g.cid, g.tc, g.last_sn.wrapping_sub(back), protocol);
            match mx::add_trailer(&mut buf, &t, ho) {
                Ok(()) => self.adapt_and_send(g.ci, g.pi, buf, pool, out),
                Err(r) => self.drop_for(g.ci, pool, buf, r),
            }
        }
        self.spare.push(g.sdus);
    }

    /// The adaptation sublayer (draft-04 §4.1) and the output.
    fn adapt_and_send(
        &mut self,
        ci: usize,
        pi: usize,
        mut buf: B,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) else {
            return self.drop_for(ci, pool, buf, DropReason::UnknownClient);
        };
        let client = c.id;
        let convergence = c.profile.convergence;
        let Some(p) = c.paths.get_mut(pi) else {
            return self.drop_for(ci, pool, buf, DropReason::NoPath);
        };
        let r = match (convergence, p.cfg.adaptation) {
            (_, Adaptation::UdpTunnel { .. }) => match p.remote {
                Some(remote) => {
                    p.ident = p.ident.wrapping_add(1);
                    adapt::push_udp_ip_with(
                        &mut buf,
                        p.cfg.local,
                        remote,
                        p.ident,
                        p.cfg.udp_checksum,
                    )
                }
                None => Err(DropReason::NoRemote),
            },
            // Client NAT was applied to the SDU; pass-through changes nothing.
            (Convergence::Trailer, _) => Ok(()),
            // GRE delivery protocol IP (draft-04 §4.4.1: protocol 47).
            (Convergence::Gre, _) => match p.remote.map(|r| r.ip()).or(p.cfg.client_addr) {
                Some(peer) => {
                    p.ident = p.ident.wrapping_add(1);
                    adapt::push_ip(&mut buf, p.cfg.local.ip(), peer, PROTOCOL_GRE, p.ident)
                }
                None => Err(DropReason::NoRemote),
            },
        };
        if let Err(r) = r {
            return self.drop_for(ci, pool, buf, r);
        }
        p.counters.tx_pdus += 1;
        p.counters.tx_bytes += buf.len() as u64;
        let path = p.cfg.id;
        self.counters.delivery_tx += 1;
        out.push(Output::Delivery {
            client,
            path,
            pkt: buf,
        });
    }
}

/// `mx::add_trailer` for an SDU that `PacketInfo::parse` checked (these very bytes, or a copy;
/// client NAT changes only addresses and checksums): an IPv4 header has its protocol at byte 9
/// and its total length at bytes 2..4, so the trailer goes on without a second parse. IPv6
/// (extension headers) takes the full parse.
fn add_trailer_classified<B: PacketBuf>(
    buf: &mut B,
    t: &MxTrailer,
    ho: bool,
    protocol: u8,
) -> Result<(), DropReason> {
    let d = buf.data();
    match (d.first().map(|b| b >> 4), d.get(2..4)) {
        (Some(4), Some(&[a, b])) => {
            let total = usize::from(u16::from_be_bytes([a, b]));
            mx::add_trailer_parsed(buf, t, ho, total, protocol, 9)
        }
        _ => mx::add_trailer(buf, t, ho),
    }
}

/// Length of the trailer `add_trailer` will send: in the default layout Next Header is always
/// present (WIRE.md).
fn sent_trailer_len(t: &MxTrailer, header_optimization: bool) -> usize {
    let mut t = *t;
    if !header_optimization {
        t.next_header = Some(0);
    }
    t.buffer_len()
}

/// The trailer of a PDU on path `p` whose (last) SDU has `sn`, with the negotiated fields
/// only (draft-04 §4.2.1).
fn group_trailer(p: &super::Path, cid: u16, tc: u8, sn: u32, protocol: u8) -> MxTrailer {
    let mut t = MxTrailer {
        next_header: Some(protocol),
        connection_id: Some(cid as u8),
        traffic_class: Some(tc),
        sequence_number: Some(sn as u16),
        ..MxTrailer::default()
    };
    p.cfg.trailer_tx.apply(&mut t);
    t
}

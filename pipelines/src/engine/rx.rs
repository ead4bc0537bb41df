//! Receiver: delivery side -> anchor side (draft-04 §4: adaptation first, then convergence),
//! and control PDUs (§5).

use std::net::{IpAddr, SocketAddr};

use crate::buf::{BufPool, PacketBuf};
use crate::drop::DropReason;
use crate::flow::reorder::{PushOutcome, ReorderConfig, Via};
use crate::flow::seqnum::{FlowKey, Sn16, Sn32};
use crate::flow::Instant;
use crate::mx::{self, PduOptions};
use crate::wire::gre;
use crate::wire::ip::IpPacket;
use crate::wire::ipv4::{PROTOCOL_GRE, PROTOCOL_MX, PROTOCOL_UDP};
use crate::wire::mx_control::ControlPdu;
use crate::wire::mx_trailer::sdu_sequence_number;
use crate::wire::udp;

use super::adapt::{self, NatSide};
use super::mxops;
use super::{Adaptation, Convergence, Engine, Output, Reorder, Role, RxFlow};

/// Which sequence-number space a receive flow uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    /// MX trailer, 16 bits (draft-04 §4.2.1).
    Mx,
    /// GRE, 32 bits (RFC 2890 §2.2).
    Gre,
}

impl<B: PacketBuf> Engine<B> {
    /// Receives one delivery-side packet (full IP packet, outer headers included). SDUs go to
    /// `out` as [`Output::Anchor`] in order per flow (maybe later, from [`Engine::poll`]);
    /// control PDUs as [`Output::Control`].
    pub fn from_delivery(
        &mut self,
        pkt: B,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        self.delivery_one(pkt, None, now, pool, out);
    }

    /// Receives a burst of delivery-side packets (drained from `pkts`), as [`Engine::from_delivery`]
    /// one by one, in two stages: first every UDP-tunnel packet's path is looked up and its
    /// client's state touched (the cache misses of the burst's clients overlap), then each
    /// packet is checked, stripped and reordered with the path found (re-checked against the
    /// packet's endpoints, so a rebinding earlier in the burst is followed).
    pub fn from_delivery_burst(
        &mut self,
        pkts: &mut Vec<B>,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let mut hints = core::mem::take(&mut self.rx_hints);
        hints.clear();
        let mut sink = 0u64;
        for p in pkts.iter() {
            let hit = peek_udp_endpoints(p.data())
                .and_then(|(src, dst)| self.by_udp.get(&(dst, src)))
                .map(super::index::PathRef::get);
            if let Some((ci, pi)) = hit {
                if let Some(c) = self.clients.get(ci).and_then(|c| c.as_ref()) {
                    sink = sink.wrapping_add(c.counters.rx_sdus);
                    if let Some(p) = c.paths.get(pi) {
                        sink = sink.wrapping_add(p.counters.rx_pdus);
                    }
                    if let Some(f) = c.rx_flows.first() {
                        sink = sink.wrapping_add(f.reorder.touch());
                    }
                }
            }
            hints.push(hit);
        }
        core::hint::black_box(sink);
        for (pkt, hint) in pkts.drain(..).zip(hints.drain(..)) {
            self.delivery_one(pkt, hint, now, pool, out);
        }
        self.rx_hints = hints;
    }

    fn delivery_one(
        &mut self,
        mut pkt: B,
        hint: Option<(usize, usize)>,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        self.counters.delivery_rx += 1;
        let parsed = IpPacket::new_checked(pkt.data()).and_then(|ip| {
            let upper = ip.upper_layer()?;
            let checksum_ok = match &ip {
                IpPacket::V4(p) => p.verify_checksum(),
                IpPacket::V6(_) => true,
            };
            Ok((
                upper.protocol,
                upper.offset,
                ip.src_addr(),
                ip.dst_addr(),
                ip.total_len(),
                checksum_ok,
            ))
        });
        let (protocol, hdr_len, src, dst, total, checksum_ok) = match parsed {
            Ok(v) => v,
            Err(e) => return self.drop_buf(pool, pkt, e.reason),
        };
        if !checksum_ok {
            return self.drop_buf(pool, pkt, DropReason::Ipv4Checksum);
        }
        let extra = pkt.len().saturating_sub(total);
        pkt.trim(extra);
        match protocol {
            PROTOCOL_UDP => self.rx_udp(pkt, hdr_len, src, dst, hint, now, pool, out),
            PROTOCOL_MX => self.rx_mx_ip(pkt, src, dst, now, pool, out),
            PROTOCOL_GRE => self.rx_gre_ip(pkt, hdr_len, src, dst, now, pool, out),
            _ => self.drop_buf(pool, pkt, DropReason::UnknownDeliveryPacket),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rx_udp(
        &mut self,
        mut pkt: B,
        hdr_len: usize,
        src: IpAddr,
        dst: IpAddr,
        hint: Option<(usize, usize)>,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let checked = pkt
            .data()
            .get(hdr_len..)
            .ok_or(DropReason::Truncated)
            .and_then(|d| udp::Packet::new_checked(d).map_err(|e| e.reason))
            .and_then(|u| {
                if u.verify_checksum(&src, &dst) {
                    Ok((u.src_port(), u.dst_port(), usize::from(u.len())))
                } else {
                    Err(DropReason::UdpChecksum)
                }
            });
        let (sport, dport, ulen) = match checked {
            Ok(v) => v,
            Err(r) => return self.drop_buf(pool, pkt, r),
        };
        let src_s = SocketAddr::new(src, sport);
        let dst_s = SocketAddr::new(dst, dport);
        // Strip the outer headers: keep the UDP payload only.
        let end = hdr_len + ulen;
        let cut = pkt.len().saturating_sub(end);
        pkt.trim(cut);
        pkt.adj(hdr_len + udp::HEADER_LEN);

        // draft-04 §5: the N-MADP's control endpoint identifies MX control PDUs.
        let control = self.cfg.control;
        let is_control = match self.cfg.role {
            Role::NMadp => dst_s == control,
            Role::CMadp => src_s == control,
        };
        if is_control {
            return self.rx_control(pkt, src_s, dst_s, pool, out);
        }

        // The burst stage's look-up, if it still names this packet's path; else the index.
        let hint = hint.filter(|&(ci, pi)| {
            self.clients
                .get(ci)
                .and_then(|c| c.as_ref())
                .and_then(|c| c.paths.get(pi))
                .is_some_and(|p| p.cfg.local == dst_s && p.remote == Some(src_s))
        });
        let found = || {
            self.by_udp
                .get(&(dst_s, src_s))
                .map(super::index::PathRef::get)
        };
        if let Some((ci, pi)) = hint.or_else(found) {
            return self.rx_tunnel_payload(ci, pi, pkt, None, now, pool, out);
        }
        if !self.udp_locals.contains_key(&dst_s) {
            return self.drop_buf(pool, pkt, DropReason::UnknownDeliveryPacket);
        }
        // Unknown peer: identify the client by the inner anchor address and the path by the
        // local endpoint, then allow a rebinding only for a PDU of the client's session.
        let Some(anchor) = self.inner_anchor(pkt.data()) else {
            return self.drop_buf(pool, pkt, DropReason::UnknownPeer);
        };
        let found = self.by_anchor.get(&anchor).and_then(|ci| {
            let ci = ci as usize;
            let c = self.clients.get(ci)?.as_ref()?;
            let pi = c.paths.iter().position(|p| {
                matches!(p.cfg.adaptation, Adaptation::UdpTunnel { .. }) && p.cfg.local == dst_s
            })?;
            Some((ci, pi))
        });
        match found {
            Some((ci, pi)) => self.rx_tunnel_payload(ci, pi, pkt, Some(src_s), now, pool, out),
            None => self.drop_buf(pool, pkt, DropReason::UnknownPeer),
        }
    }

    /// The anchor address inside a tunnelled PDU (trailer-based: the IP header; GRE-in-UDP: the
    /// IP header after GRE): the source on the N-MADP, the destination on the C-MADP.
    fn inner_anchor(&self, data: &[u8]) -> Option<IpAddr> {
        let inner = match data.first().map(|b| b >> 4) {
            Some(4) | Some(6) => data,
            _ => {
                let g = gre::Packet::new_checked(data).ok()?;
                data.get(g.header_len()..)?
            }
        };
        let ip = IpPacket::new_checked(inner).ok()?;
        Some(match self.cfg.role {
            Role::NMadp => ip.src_addr(),
            Role::CMadp => ip.dst_addr(),
        })
    }

    fn rx_control(
        &mut self,
        pkt: B,
        src_s: SocketAddr,
        dst_s: SocketAddr,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let pdu = match ControlPdu::parse(pkt.data(), self.rx_direction()) {
            Ok(p) => p,
            Err(e) => return self.drop_buf(pool, pkt, e.reason),
        };
        pool.free(pkt);
        self.counters.control_rx += 1;
        let mut found: Option<(usize, Option<usize>)> = None;
        match self.cfg.role {
            Role::NMadp => {
                // By the C-MADP's endpoint (one look-up each, O(1) in the clients): a UDP
                // tunnel's remote, a NAT client address, or the anchor address (pass-through).
                found = self
                    .by_remote
                    .get(&src_s)
                    .map(super::index::PathRef::get)
                    .or_else(|| self.by_nat.get(&src_s.ip()).copied())
                    .map(|(ci, pi)| (ci, Some(pi)))
                    .or_else(|| {
                        self.by_anchor
                            .get(&src_s.ip())
                            .map(|ci| (ci as usize, None))
                    });
            }
            Role::CMadp => {
                // By our own endpoint the PDU was sent to.
                for (ci, c) in self.clients.iter().enumerate() {
                    let Some(c) = c else { continue };
                    let pi = c
                        .paths
                        .iter()
                        .position(|p| p.cfg.local == dst_s)
                        .or_else(|| c.paths.iter().position(|p| p.cfg.local.ip() == dst_s.ip()))
                        .or_else(|| {
                            c.paths
                                .iter()
                                .position(|p| p.cfg.client_addr == Some(dst_s.ip()))
                        });
                    if pi.is_some() || c.anchor_addr == dst_s.ip() {
                        found = Some((ci, pi));
                        break;
                    }
                }
            }
        }
        let (client, path) = match found.and_then(|(ci, pi)| {
            let c = self.clients.get(ci)?.as_ref()?;
            // draft-04 §5: CID = the delivery connection the message is sent over.
            let path = pi
                .and_then(|pi| c.paths.get(pi))
                .map(|p| p.cfg.id)
                .or_else(|| {
                    c.path_index(super::PathId(pdu.cid))
                        .map(|_| super::PathId(pdu.cid))
                });
            Some((c.id, path))
        }) {
            Some((c, p)) => (Some(c), p),
            None => (None, None),
        };
        out.push(Output::Control {
            client,
            path,
            peer: src_s,
            pdu,
        });
    }

    /// Protocol 114 on the delivery side: client NAT or pass-through (draft-04 §4.1).
    #[allow(clippy::too_many_arguments)]
    fn rx_mx_ip(
        &mut self,
        pkt: B,
        src: IpAddr,
        dst: IpAddr,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let client_side = match self.cfg.role {
            Role::NMadp => src,
            Role::CMadp => dst,
        };
        let found = self.by_nat.get(&client_side).copied().or_else(|| {
            // AMBIGUITY (draft-04 §4.1): a pass-through PDU carries no path identity (its
            // addresses are the anchor connection's); we attribute it to the client's first
            // pass-through delivery connection.
            let ci = self.by_anchor.get(&client_side)? as usize;
            let c = self.clients.get(ci)?.as_ref()?;
            let pi = c
                .paths
                .iter()
                .position(|p| p.cfg.adaptation == Adaptation::PassThrough)?;
            Some((ci, pi))
        });
        match found {
            Some((ci, pi)) => self.rx_mx(ci, pi, pkt, None, now, pool, out),
            None => self.drop_buf(pool, pkt, DropReason::UnknownClient),
        }
    }

    /// Protocol 47 on the delivery side: GRE over IP (draft-04 §4.4).
    #[allow(clippy::too_many_arguments)]
    fn rx_gre_ip(
        &mut self,
        mut pkt: B,
        hdr_len: usize,
        src: IpAddr,
        dst: IpAddr,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        pkt.adj(hdr_len);
        if let Some(&(ci, pi)) = self.by_ip_pair.get(&(dst, src)) {
            return self.rx_gre(ci, pi, pkt, None, now, pool, out);
        }
        let found = self.inner_anchor(pkt.data()).and_then(|anchor| {
            let ci = self.by_anchor.get(&anchor)? as usize;
            let c = self.clients.get(ci)?.as_ref()?;
            if c.profile.convergence != Convergence::Gre {
                return None;
            }
            let pi = c.paths.iter().position(|p| {
                !matches!(p.cfg.adaptation, Adaptation::UdpTunnel { .. }) && p.cfg.local.ip() == dst
            })?;
            Some((ci, pi))
        });
        match found {
            Some((ci, pi)) => {
                self.rx_gre(ci, pi, pkt, Some(SocketAddr::new(src, 0)), now, pool, out)
            }
            None => self.drop_buf(pool, pkt, DropReason::UnknownPeer),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rx_tunnel_payload(
        &mut self,
        ci: usize,
        pi: usize,
        pkt: B,
        rebind_from: Option<SocketAddr>,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let convergence = self.clients[ci].as_ref().map(|c| c.profile.convergence);
        match convergence {
            Some(Convergence::Trailer) => self.rx_mx(ci, pi, pkt, rebind_from, now, pool, out),
            Some(Convergence::Gre) => self.rx_gre(ci, pi, pkt, rebind_from, now, pool, out),
            None => self.drop_buf(pool, pkt, DropReason::UnknownClient),
        }
    }

    /// Whether a PDU from an unknown endpoint belongs to the client's session (NAT rebinding):
    /// its flow is new, or its SN is within the flow's reorder window. Without an SN only a
    /// path whose peer is still unknown may learn it.
    ///
    /// AMBIGUITY (draft-04 §4.1 says nothing on NAT rebinding): we rebind only on data PDUs
    /// whose inner anchor address is the client's (checked by the caller) and whose SN is
    /// plausible, so that a stray or spoofed packet cannot steal the path.
    fn session_ok(&self, ci: usize, pi: usize, cid: u16, tc: u8, sn: Option<u32>) -> bool {
        let Some(c) = self.clients.get(ci).and_then(|c| c.as_ref()) else {
            return false;
        };
        let Some(sn) = sn else {
            return c.paths.get(pi).is_some_and(|p| p.remote.is_none());
        };
        match c.rx_flows.iter().find(|f| f.cid == cid && f.tc == tc) {
            None => true,
            Some(f) => f.reorder.in_window(sn),
        }
    }

    pub(super) fn rebind(&mut self, ci: usize, pi: usize, from: SocketAddr) {
        if pi >= self.path_count(ci) {
            return;
        }
        // O(1): the path's old key out, the new one in.
        self.unindex_path(ci, pi);
        let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) else {
            return;
        };
        let Some(p) = c.paths.get_mut(pi) else { return };
        p.remote = Some(from);
        p.counters.rare().rebinds += 1;
        c.counters.rebinds += 1;
        self.index_path(ci, pi);
    }

    fn refuse_peer(&mut self, ci: usize, pkt: B, pool: &mut dyn BufPool<B>) {
        if let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) {
            c.counters.unknown_peer += 1;
        }
        self.drop_for(ci, pool, pkt, DropReason::UnknownPeer);
    }

    fn mark_alive(&mut self, ci: usize, pi: usize, bytes: usize, now: Instant) {
        if let Some(p) = self
            .clients
            .get_mut(ci)
            .and_then(|c| c.as_mut())
            .and_then(|c| c.paths.get_mut(pi))
        {
            p.counters.rx_pdus += 1;
            p.counters.rx_bytes += bytes as u64;
            p.counters.last_rx = p.counters.last_rx.max(now);
        }
    }

    /// Trailer-based convergence receiver (draft-04 §4.2): `pkt` starts at the MX PDU's IP
    /// header.
    #[allow(clippy::too_many_arguments)]
    fn rx_mx(
        &mut self,
        ci: usize,
        pi: usize,
        mut pkt: B,
        rebind_from: Option<SocketAddr>,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let role = self.cfg.role;
        let Some(c) = self.clients.get(ci).and_then(|c| c.as_ref()) else {
            return self.drop_for(ci, pool, pkt, DropReason::UnknownClient);
        };
        let Some(p) = c.paths.get(pi) else {
            return self.drop_for(ci, pool, pkt, DropReason::UnknownPeer);
        };
        let client_id = c.id.0;
        let anchor = c.anchor_addr;
        let nat = p.cfg.adaptation == Adaptation::ClientNat;
        let opts = PduOptions {
            header_optimization: p.header_optimization(),
            trailer_fields: Some(p.cfg.trailer_rx),
        };
        let first_anchor = c.first_anchor();
        let bytes = pkt.len();
        let stripped = match mx::strip_trailer(&mut pkt, opts) {
            Ok(s) => s,
            Err(e) => return self.drop_for(ci, pool, pkt, e.reason),
        };
        let t = stripped.trailer.unwrap_or_default();
        let cid = match t.connection_id {
            None => first_anchor,
            Some(v) => {
                let v = u16::from(v);
                if !c.profile.anchors.iter().any(|a| a.connection_id == v) {
                    return self.drop_for(ci, pool, pkt, DropReason::UnknownAnchor);
                }
                v
            }
        };
        let tc = t.traffic_class.unwrap_or(0);
        let sn = t.sequence_number;
        if let Some(from) = rebind_from {
            if !self.session_ok(ci, pi, cid, tc, sn.map(u32::from)) {
                return self.refuse_peer(ci, pkt, pool);
            }
            self.rebind(ci, pi, from);
        }
        self.mark_alive(ci, pi, bytes, now);

        let mut sdus = core::mem::take(&mut self.sdus);
        sdus.clear();
        if let Some(fc) = stripped.fragment {
            if let Some(p) = self.path_mut(ci, pi) {
                p.counters.rare().rx_fragments += 1;
            }
            let (Some(sn), Some(nh)) = (sn, t.next_header) else {
                self.sdus = sdus;
                return self.drop_for(ci, pool, pkt, DropReason::MxFragment);
            };
            let key = FlowKey::new(client_id, cid, tc);
            match mxops::reassemble(
                &mut self.reasm,
                key,
                sn,
                fc,
                nh,
                pkt,
                now,
                pool,
                &mut self.scratch,
            ) {
                Ok(Some(sdu)) => sdus.push(sdu),
                Ok(None) => {}
                // The reassembler returned the fragment's buffer to the pool.
                Err(r) => self.count_for(ci, r),
            }
        } else if stripped.sdu_count > 1 {
            if let Some(p) = self.path_mut(ci, pi) {
                p.counters.rare().rx_concatenated += 1;
            }
            let count = stripped.sdu_count;
            if let Err(r) = mxops::disaggregate(pkt, count, pool, &mut sdus) {
                for _ in 0..count {
                    self.count_for(ci, r);
                }
                for b in sdus.drain(..) {
                    pool.free(b);
                }
            }
        } else {
            sdus.push(pkt);
        }
        let k = sdus.len();
        for (i, mut sdu) in sdus.drain(..).enumerate() {
            if nat {
                // Undo client NAT: restore the anchor address (RFC 1624 incremental checksums).
                let side = match role {
                    Role::NMadp => NatSide::Src,
                    Role::CMadp => NatSide::Dst,
                };
                if let Err(r) = adapt::nat_rewrite(sdu.data_mut(), side, anchor) {
                    self.drop_for(ci, pool, sdu, r);
                    continue;
                }
            }
            // draft-04 §4.2.3: the trailer SN is the last SDU's.
            let sdu_sn = sn.map(|s| u32::from(sdu_sequence_number(s, i, k)));
            self.deliver(ci, pi, cid, tc, sdu_sn, Space::Mx, sdu, now, pool, out);
        }
        self.sdus = sdus;
    }

    /// GRE convergence receiver (draft-04 §4.4.2): `pkt` starts at the GRE header.
    #[allow(clippy::too_many_arguments)]
    fn rx_gre(
        &mut self,
        ci: usize,
        pi: usize,
        mut pkt: B,
        rebind_from: Option<SocketAddr>,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let bytes = pkt.len();
        let parsed = gre::Packet::new_checked(pkt.data())
            .and_then(|g| gre::Repr::parse(&g))
            .map_err(|e| e.reason);
        let repr = match parsed {
            Ok(r) => r,
            Err(r) => return self.drop_for(ci, pool, pkt, r),
        };
        if !matches!(
            repr.protocol_type,
            adapt::ETHERTYPE_IPV4 | adapt::ETHERTYPE_IPV6
        ) {
            return self.drop_for(ci, pool, pkt, DropReason::UnknownDeliveryPacket);
        }
        pkt.adj(repr.header_len());
        let inner = IpPacket::new_checked(pkt.data()).map(|ip| ip.total_len());
        match inner {
            Ok(len) => {
                let extra = pkt.len().saturating_sub(len);
                pkt.trim(extra);
            }
            Err(e) => return self.drop_for(ci, pool, pkt, e.reason),
        }
        let Some(c) = self.clients.get(ci).and_then(|c| c.as_ref()) else {
            return self.drop_for(ci, pool, pkt, DropReason::UnknownClient);
        };
        // draft-04 §4.4.2: unless 0xFFFF, the key's low 16 bits are the anchor connection ID.
        let cid = match repr.anchor_connection_id() {
            None => c.first_anchor(),
            Some(v) if c.profile.anchors.iter().any(|a| a.connection_id == v) => v,
            Some(_) => return self.drop_for(ci, pool, pkt, DropReason::UnknownAnchor),
        };
        if let Some(from) = rebind_from {
            if !self.session_ok(ci, pi, cid, 0, repr.sequence_number) {
                return self.refuse_peer(ci, pkt, pool);
            }
            self.rebind(ci, pi, from);
        }
        self.mark_alive(ci, pi, bytes, now);
        self.deliver(
            ci,
            pi,
            cid,
            0,
            repr.sequence_number,
            Space::Gre,
            pkt,
            now,
            pool,
            out,
        );
    }

    pub(super) fn path_mut(&mut self, ci: usize, pi: usize) -> Option<&mut super::Path> {
        self.clients.get_mut(ci)?.as_mut()?.paths.get_mut(pi)
    }

    /// Into the flow's reorder buffer (or straight out without an SN). `pi` is the delivery
    /// connection it came over (the reorder buffer's path horizon).
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        ci: usize,
        pi: usize,
        cid: u16,
        tc: u8,
        sn: Option<u32>,
        space: Space,
        sdu: B,
        now: Instant,
        pool: &mut dyn BufPool<B>,
        out: &mut Vec<Output<B>>,
    ) {
        let max_flows = self.cfg.max_rx_flows_per_client;
        let base = self.cfg.reorder;
        let Some(c) = self.clients.get_mut(ci).and_then(|c| c.as_mut()) else {
            return self.drop_for(ci, pool, sdu, DropReason::UnknownClient);
        };
        let Some(sn) = sn else {
            // No SN: nothing to reorder by (draft-04 §4.2.1).
            c.counters.unsequenced += 1;
            c.counters.rx_sdus += 1;
            c.counters.rx_bytes += sdu.len() as u64;
            self.counters.anchor_tx += 1;
            out.push(Output::Anchor(sdu));
            return;
        };
        let fi = match c.rx_flows.iter().position(|f| f.cid == cid && f.tc == tc) {
            Some(i) => i,
            None => {
                if c.rx_flows.len() >= max_flows {
                    return self.drop_for(ci, pool, sdu, DropReason::TooManyFlows);
                }
                let rc = ReorderConfig {
                    timeout_ns: c.reorder_timeout,
                    ..base
                };
                let reorder = Reorder::starting_at_zero(space == Space::Gre, rc);
                // One more flow, not room for four (the usual client has one or two).
                c.rx_flows.reserve_exact(1);
                c.rx_flows.push(RxFlow { cid, tc, reorder });
                c.rx_flows.len() - 1
            }
        };
        let fresh = c.rx_flows[fi].reorder.effective_timeout();
        let via = Some(Via {
            path: pi,
            live: super::live_paths(&c.paths, now, fresh),
            hold_ns: c.paths.get(pi).map_or(0, |p| p.hold_ns),
        });
        let super::Client {
            rx_flows,
            counters: cc,
            drops: cd,
            ..
        } = c;
        let slab = &mut self.slab;
        let ec = &mut self.counters;
        let h = slab.insert(sdu);
        let mut release = |h: u32| {
            if let Some(b) = slab.take(h) {
                cc.rx_sdus += 1;
                cc.rx_bytes += b.len() as u64;
                ec.anchor_tx += 1;
                out.push(Output::Anchor(b));
            }
        };
        let outcome = match (&mut rx_flows[fi].reorder, space) {
            (Reorder::Mx(r), _) => r.push_via(Sn16(sn as u16), h, now, via, |_, x| release(x)),
            (Reorder::Gre(r), _) => r.push_via(Sn32(sn), h, now, via, |_, x| release(x)),
        };
        if let Some(reason) = outcome.drop_reason() {
            if let Some(b) = slab.take(h) {
                pool.free(b);
            }
            ec.drop(reason);
            super::count_client_drop(cd, reason);
        }
        if outcome == PushOutcome::Buffered {
            self.mark_held(ci);
        }
    }
}

/// The (source, destination) UDP endpoints of an outer IPv4 or IPv6 packet with a UDP header
/// right after the IP header, read without any check (the burst stage's look-up hint only;
/// the packet is checked in full afterwards).
pub(super) fn peek_udp_endpoints(d: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port =
        |o: usize| -> Option<u16> { Some(u16::from_be_bytes(d.get(o..o + 2)?.try_into().ok()?)) };
    // (source address offset, address length, UDP header offset)
    let (src_at, len, udp_at) = match d.first()? >> 4 {
        4 => {
            let ihl = usize::from(d[0] & 0x0f) * 4;
            if *d.get(9)? != PROTOCOL_UDP || ihl < 20 {
                return None;
            }
            (12, 4, ihl)
        }
        6 if *d.get(6)? == PROTOCOL_UDP => (8, 16, 40),
        _ => return None,
    };
    let ip = |o: usize| -> Option<IpAddr> {
        let b = d.get(o..o + len)?;
        Some(match len {
            4 => IpAddr::from(<[u8; 4]>::try_from(b).ok()?),
            _ => IpAddr::from(<[u8; 16]>::try_from(b).ok()?),
        })
    };
    Some((
        SocketAddr::new(ip(src_at)?, port(udp_at)?),
        SocketAddr::new(ip(src_at + len)?, port(udp_at + 2)?),
    ))
}

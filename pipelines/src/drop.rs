//! Every reason the data plane drops (or refuses) a packet. One variant per reason; the same enum
//! indexes the drop counters (`DropReason as usize`), so a new reason is one new line here and in
//! [`DropReason::ALL`].

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident => $label:literal,)*) => {
        /// Why a packet was dropped. `as usize` indexes a `[u64; DropReason::COUNT]` counter array.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum DropReason {
            $($(#[$doc])* $name,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// Stable snake_case label, used in counters, JSON and Prometheus output.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// The input ended before a header or field it announces.
    Truncated => "truncated",
    /// IP version nibble is neither 4 nor 6 (or not the one expected).
    IpVersion => "ip_version",
    /// IPv4 IHL below 5 or beyond the packet.
    Ipv4HeaderLength => "ipv4_header_length",
    /// IPv4 total length smaller than the header or larger than the buffer.
    Ipv4TotalLength => "ipv4_total_length",
    /// IPv4 header checksum does not verify.
    Ipv4Checksum => "ipv4_checksum",
    /// IPv4 packet is an IP fragment (MF or offset set), which the MX layer does not carry.
    Ipv4Fragment => "ipv4_fragment",
    /// IPv6 payload length larger than the buffer.
    Ipv6PayloadLength => "ipv6_payload_length",
    /// IPv6 extension-header chain malformed or too long.
    Ipv6ExtensionHeader => "ipv6_extension_header",
    /// UDP length field inconsistent with the IP payload.
    UdpLength => "udp_length",
    /// UDP checksum does not verify (or is zero over IPv6, RFC 8200 §8.1).
    UdpChecksum => "udp_checksum",
    /// MX trailer longer than the PDU, or no room for it.
    MxTrailerLength => "mx_trailer_length",
    /// MX trailer lacks a field this delivery connection requires.
    MxTrailerMissingField => "mx_trailer_missing_field",
    /// MX trailer fields contradict the PDU (e.g. First SDU Length out of range).
    MxTrailerInvalid => "mx_trailer_invalid",
    /// Concatenated MX PDU whose inner SDU lengths do not tile the payload.
    MxConcatLength => "mx_concat_length",
    /// MX control PDU shorter than its type requires.
    MxControlLength => "mx_control_length",
    /// MX control PDU of a type this implementation does not support (counted, not an error).
    MxControlUnsupported => "mx_control_unsupported",
    /// GRE header with a version other than 0, or reserved bits set.
    GreVersion => "gre_version",
    /// GRE checksum does not verify.
    GreChecksum => "gre_checksum",
    /// GRE header without the key the MAMS convergence needs.
    GreMissingKey => "gre_missing_key",
    /// Not enough head- or tailroom in the buffer for the headers to add.
    NoRoom => "no_room",
    /// The steering scheduler found no usable delivery connection for the packet (draft-04 §4.2;
    /// every path of the client and traffic class is down, probing or removed).
    NoPath => "no_path",
    /// MX control message that cannot be sent as asked: a probe REQ uplink or a probe ACK
    /// downlink (draft-04 §5.2: only the N-MADP sends REQs), or an "unsupported" message given a
    /// supported type code.
    MxControlInvalid => "mx_control_invalid",
    /// A data PDU whose IP protocol is not 114 where the adaptation requires it (draft-04 §4.2.1).
    NotMxPdu => "not_mx_pdu",
    /// MX fragment handed to a path that expects whole SDUs, or a fragment that cannot be made.
    MxFragment => "mx_fragment",
    /// Reorder buffer: the SN was already delivered or is already held (draft-04 §4.2.1).
    ReorderDuplicate => "reorder_duplicate",
    /// Reorder buffer: the SN was given up on (timeout or window advance) before it arrived.
    ReorderLate => "reorder_late",
    /// MX reassembly: a fragment with this offset was already received (draft-04 §4.2.2).
    ReassemblyDuplicate => "reassembly_duplicate",
    /// MX reassembly: the fragment contradicts the known last fragment (a second, different
    /// last fragment, or a last fragment before an already received offset).
    ReassemblyOverlap => "reassembly_overlap",
    /// MX reassembly: offset above 127, beyond the known last fragment, or an empty non-last
    /// fragment.
    ReassemblyOutOfRange => "reassembly_out_of_range",
    /// MX reassembly: the SDU would exceed the per-SDU buffer.
    ReassemblyTooBig => "reassembly_too_big",
    /// MX reassembly: every slot is busy and none has expired.
    ReassemblyNoSlot => "reassembly_no_slot",
    /// MX reassembly: the fragment would exceed the memory cap across all slots.
    ReassemblyMemoryFull => "reassembly_memory_full",
    /// MX reassembly: an incomplete SDU timed out (counted per SDU by `poll`).
    ReassemblyTimeout => "reassembly_timeout",
    /// The worker's buffer pool had no free buffer for a packet being built (an extra MX
    /// fragment, a reassembled SDU or a disaggregated SDU, a duplicate copy, a control PDU).
    PoolExhausted => "pool_exhausted",
    /// Engine: no configured client owns the packet's anchor address (draft-04 §4.2: packets
    /// are classified per client).
    UnknownClient => "unknown_client",
    /// Engine: a delivery PDU from an endpoint that is not (and may not become) the path's peer:
    /// NAT rebinding is allowed only for data PDUs that match the client's session.
    UnknownPeer => "unknown_peer",
    /// Engine: a delivery-side packet that is neither control, UDP tunnel, MX (114) nor GRE (47)
    /// for any configured path.
    UnknownDeliveryPacket => "unknown_delivery_packet",
    /// Engine: an SDU larger than the path allows under GRE convergence, which has no MX
    /// fragmentation (draft-04 §4.4).
    TooBigForGre => "too_big_for_gre",
    /// Engine: the PDU names an anchor connection the client does not have.
    UnknownAnchor => "unknown_anchor",
    /// Engine: the PDU would open more receive flows than configured per client.
    TooManyFlows => "too_many_flows",
    /// Engine: the path's peer endpoint is not known yet (to be learned from its first PDU).
    NoRemote => "no_remote",
    /// Engine: the delivery connection's shaper queue ([`crate::engine::Shaper::queue_ns`]) is
    /// full: the PDU would wait longer than the configured bound for its turn at the path's rate.
    ShaperQueueFull => "shaper_queue_full",
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_index_matches_order_and_labels_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(seen.insert(r.as_str()), "duplicate label {}", r.as_str());
        }
    }
}

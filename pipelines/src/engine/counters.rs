//! Engine counters: one drop array per engine (indexed by [`DropReason`]), and per-client and
//! per-path traffic counters. Plain integers owned by the worker; the runtime copies them out.

use crate::drop::DropReason;
use crate::flow::reorder::ReorderStats;
use crate::flow::Instant;

/// Engine-wide counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineCounters {
    /// Drops per reason (`DropReason as usize`).
    pub drops: [u64; DropReason::COUNT],
    /// Packets received from the anchor side.
    pub anchor_rx: u64,
    /// SDUs handed to the anchor side.
    pub anchor_tx: u64,
    /// Packets received from the delivery side.
    pub delivery_rx: u64,
    /// PDUs sent on the delivery side.
    pub delivery_tx: u64,
    /// Control PDUs received.
    pub control_rx: u64,
    /// Control PDUs built.
    pub control_tx: u64,
    /// PDUs that waited out a delay-compensation hold.
    pub delayed: u64,
    /// PDUs sent at once because the delay-compensation line was full.
    pub delay_overflow: u64,
}

impl Default for EngineCounters {
    fn default() -> Self {
        EngineCounters {
            drops: [0; DropReason::COUNT],
            anchor_rx: 0,
            anchor_tx: 0,
            delivery_rx: 0,
            delivery_tx: 0,
            control_rx: 0,
            control_tx: 0,
            delayed: 0,
            delay_overflow: 0,
        }
    }
}

impl EngineCounters {
    /// Drops of one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason as usize).copied().unwrap_or(0)
    }

    /// Total drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        if let Some(c) = self.drops.get_mut(reason as usize) {
            *c += 1;
        }
    }

    /// The nonzero drop counters, labelled.
    pub fn nonzero_drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .zip(self.drops.iter())
            .filter(|(_, &n)| n > 0)
            .map(|(r, &n)| (*r, n))
    }
}

/// Counters of one client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// SDUs taken from the anchor side for this client.
    pub tx_sdus: u64,
    pub tx_bytes: u64,
    /// SDUs delivered to the anchor side.
    pub rx_sdus: u64,
    pub rx_bytes: u64,
    /// SDUs dropped because steering found no usable path.
    pub no_path: u64,
    /// Learned or changed peer endpoints (NAT rebinding).
    pub rebinds: u64,
    /// PDUs from an unknown endpoint that were refused.
    pub unknown_peer: u64,
    /// SDUs that bypassed reordering (no sequence number).
    pub unsequenced: u64,
    /// Receive flows reset because the peer restarted ([`super::Engine::reset_rx_flows`]).
    pub rx_resets: u64,
    /// Reorder statistics, summed over the client's receive flows (filled on read).
    pub reorder: ReorderStats,
}

/// What a client's record stores of [`ClientCounters`]: everything but `reorder`, which is
/// summed over the receive flows when read (120 bytes per client not kept at rest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClientTally {
    pub tx_sdus: u64,
    pub tx_bytes: u64,
    pub rx_sdus: u64,
    pub rx_bytes: u64,
    pub no_path: u64,
    pub rebinds: u64,
    pub unknown_peer: u64,
    pub unsequenced: u64,
    pub rx_resets: u64,
}

impl ClientTally {
    /// The public counters, with `reorder` as given.
    pub fn read(&self, reorder: ReorderStats) -> ClientCounters {
        ClientCounters {
            tx_sdus: self.tx_sdus,
            tx_bytes: self.tx_bytes,
            rx_sdus: self.rx_sdus,
            rx_bytes: self.rx_bytes,
            no_path: self.no_path,
            rebinds: self.rebinds,
            unknown_peer: self.unknown_peer,
            unsequenced: self.unsequenced,
            rx_resets: self.rx_resets,
            reorder,
        }
    }
}

/// Counters of one delivery connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounters {
    /// PDUs sent (fragments and concatenated PDUs count once each).
    pub tx_pdus: u64,
    /// Bytes sent, outer headers included.
    pub tx_bytes: u64,
    /// SDUs sent (a fragmented SDU once, a concatenated PDU per SDU).
    pub tx_sdus: u64,
    /// PDUs received.
    pub rx_pdus: u64,
    pub rx_bytes: u64,
    /// Fragments sent / received (draft-04 §4.2.2).
    pub tx_fragments: u64,
    pub rx_fragments: u64,
    /// Concatenated PDUs sent / received (draft-04 §4.2.3).
    pub tx_concatenated: u64,
    pub rx_concatenated: u64,
    /// Copies sent in duplicate mode (the extra copies, not the original).
    pub duplicates_sent: u64,
    /// Peer endpoint learned or changed.
    pub rebinds: u64,
    /// PDUs that waited for the path's shaper ([`crate::engine::Shaper`]); those it dropped
    /// are the client's `shaper_queue_full` drops.
    pub shaped: u64,
    /// Last time a data PDU was received (0 = never).
    pub last_rx: Instant,
}

/// What a path's record stores of [`PathCounters`]: the per-packet counters inline, those of
/// rarer events (fragments, concatenation, duplicates, rebinds, shaping) in a box allocated
/// at the first such event, so an idle or plain path carries 56 bytes, not 104.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PathTally {
    pub tx_pdus: u64,
    pub tx_bytes: u64,
    pub tx_sdus: u64,
    pub rx_pdus: u64,
    pub rx_bytes: u64,
    pub last_rx: Instant,
    rare: Option<Box<PathRare>>,
}

/// The rarer counters of a path ([`PathTally`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PathRare {
    pub tx_fragments: u64,
    pub rx_fragments: u64,
    pub tx_concatenated: u64,
    pub rx_concatenated: u64,
    pub duplicates_sent: u64,
    pub rebinds: u64,
    pub shaped: u64,
}

impl PathTally {
    /// The rarer counters, allocated at the first use (once per path, not per packet).
    pub fn rare(&mut self) -> &mut PathRare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The public counters.
    pub fn read(&self) -> PathCounters {
        let r = self.rare.as_deref().copied().unwrap_or_default();
        PathCounters {
            tx_pdus: self.tx_pdus,
            tx_bytes: self.tx_bytes,
            tx_sdus: self.tx_sdus,
            rx_pdus: self.rx_pdus,
            rx_bytes: self.rx_bytes,
            tx_fragments: r.tx_fragments,
            rx_fragments: r.rx_fragments,
            tx_concatenated: r.tx_concatenated,
            rx_concatenated: r.rx_concatenated,
            duplicates_sent: r.duplicates_sent,
            rebinds: r.rebinds,
            shaped: r.shaped,
            last_rx: self.last_rx,
        }
    }
}

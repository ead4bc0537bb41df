//! Per-flow receive reorder buffer: releases SDUs in sequence-number order, drops duplicates
//! and late arrivals, and gives up on a missing SN after a timeout (draft-04 §4.2.1: the SN is
//! "needed for lossless switching or multi-link (path) aggregation"; window and timeout defaults
//! from WIRE.md "Defaults borrowed from the authors' later work").
//!
//! Sans-IO: time is an argument, released items go to a caller's closure. One buffer per flow
//! ([`crate::flow::seqnum::FlowKey`]), so a loss stalls only its own flow.
//!
//! Storage: a bitmap of the last `window` released SNs (to tell a duplicate from a late packet,
//! `window / 8` bytes, allocated at creation), a ring of slots for held packets and an arrival
//! queue (for the timeout). The ring and the queue grow on demand, by doubling, up to the
//! window (the ring to `window` rounded up to a power of two, the queue to `2 × window`): a
//! flow that never reorders allocates neither, so idle and in-order flows cost little (one
//! engine holds a flow per client and traffic class, for up to millions of clients). After
//! growth, no allocation per packet.

use std::collections::VecDeque;

use super::seqnum::SeqSpace;
use super::{Instant, MS};
use crate::drop::DropReason;

/// Default window, in packets (WIRE.md: "a buffer of ~1000 packets per flow by default").
pub const DEFAULT_WINDOW: usize = 1024;
/// Lower clamp of the reorder timeout (WIRE.md).
pub const MIN_TIMEOUT_NS: u64 = 10 * MS;
/// Upper clamp of the reorder timeout (WIRE.md).
pub const MAX_TIMEOUT_NS: u64 = 1000 * MS;
/// Default timeout before any path delay is known.
///
/// AMBIGUITY: WIRE.md gives the adaptive rule and its clamps but no value to start from; we
/// start at 100 ms (a typical LTE/Wi-Fi delay spread) until [`adaptive_timeout`] has data.
pub const DEFAULT_TIMEOUT_NS: u64 = 100 * MS;

/// Reorder timeout from the one-way delays of the paths in use (WIRE.md):
/// `clamp(2 × (max OWD − min OWD), 10 ms, 1 s)`. An empty slice gives 10 ms.
pub fn adaptive_timeout(owd_ns: &[u64]) -> u64 {
    let (lo, hi) = owd_ns
        .iter()
        .fold((u64::MAX, 0u64), |(lo, hi), &d| (lo.min(d), hi.max(d)));
    let spread = hi.saturating_sub(lo); // 0 for an empty slice (lo = MAX, hi = 0)
    spread
        .saturating_mul(2)
        .clamp(MIN_TIMEOUT_NS, MAX_TIMEOUT_NS)
}

/// Default number of consecutive packets from far behind the release point after which a flow
/// re-synchronises (the sender restarted its SN space).
pub const DEFAULT_RESYNC_AFTER: u32 = 16;

/// Number of delivery connections a buffer keeps a per-path mark for (path indices at or above
/// it are still reordered, but take no part in the path horizon).
/// (The live-path set is a `u8` bit mask: one bit per mark.)
pub const MAX_MARKS: usize = u8::BITS as usize;

/// Where a packet came from, for [`ReorderBuffer::push_via`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via {
    /// Index of the delivery connection it arrived over (below [`MAX_MARKS`] to take part in
    /// the path horizon).
    pub path: usize,
    /// Bit `i`: path `i` is live (usable, carrying data): the paths the horizon waits for.
    pub live: u8,
    /// Delay equalisation: release it no earlier than this long after its arrival (the one-way
    /// delay its path is faster by than the slowest live path), so that every packet of the
    /// flow sees the same delay whichever path it took. 0 releases as soon as it is in order.
    pub hold_ns: u64,
}

/// Configuration of one [`ReorderBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorderConfig {
    /// Maximum number of packets held (and how far ahead of the release point a packet may be
    /// before the window is forced forward). Clamped to `1 ..= 2^(BITS-2)` so that "ahead" and
    /// "behind" stay unambiguous in the half-range comparison.
    pub window: usize,
    /// How long a packet may wait for a missing predecessor, in ns: the floor of the effective
    /// timeout, which also follows the reordering the buffer observes
    /// ([`ReorderBuffer::effective_timeout`]).
    pub timeout_ns: u64,
    /// A packet whose SN was given up on (skipped) before it arrived is released at once, out
    /// of order, instead of dropped. TCP accepts it (it is data it would otherwise retransmit);
    /// a packet already delivered is still a duplicate and dropped.
    pub deliver_late: bool,
    /// Consecutive packets from further behind than the history (`window` SNs), with no packet
    /// in between that fits, after which the flow starts over at the newest of them: the
    /// sender restarted its SN space (a C-MADP or N-MADP restart). 0 never re-synchronises.
    pub resync_after: u32,
    /// Apply the path horizon ([`ReorderBuffer::push_via`]): a missing SN that every live
    /// path has delivered past is lost. Off, only the timeout gives up on an SN (for paths that
    /// reorder within themselves).
    pub path_horizon: bool,
}

impl Default for ReorderConfig {
    fn default() -> Self {
        ReorderConfig {
            window: DEFAULT_WINDOW,
            timeout_ns: DEFAULT_TIMEOUT_NS,
            deliver_late: true,
            resync_after: DEFAULT_RESYNC_AFTER,
            path_horizon: true,
        }
    }
}

/// Counters of one [`ReorderBuffer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Items handed to the caller (`in_order + reordered`).
    pub delivered: u64,
    /// Items released on arrival (they were the expected SN).
    pub in_order: u64,
    /// Items buffered, then released (by a predecessor's arrival, a timeout, a window advance
    /// or a flush).
    pub reordered: u64,
    /// Items dropped because their SN was already delivered or is already buffered.
    pub duplicates: u64,
    /// Items dropped because their SN had been skipped (or is too far behind to know).
    pub late: u64,
    /// Times a packet too far ahead forced the window forward.
    pub window_advances: u64,
    /// Missing SNs given up on (by a timeout, a window advance or a flush).
    pub gaps_skipped: u64,
    /// Timeout expiries that released held packets.
    pub timeouts: u64,
    /// Highest number of items held at once.
    pub max_depth: u64,
    /// Late items released out of order (with `deliver_late`; they are also counted in
    /// `late`).
    pub late_delivered: u64,
    /// Times the path horizon (every live path has delivered past a missing SN) skipped gaps
    /// before any timeout.
    pub horizon_skips: u64,
    /// Times the flow re-synchronised to a restarted sender.
    pub resyncs: u64,
    /// Gauge: the reordering delay observed (how long an SN arrived after a successor; a
    /// max-tracking average), ns.
    pub skew_ns: u64,
    /// Gauge: the timeout in force ([`ReorderBuffer::effective_timeout`]), ns.
    pub timeout_ns: u64,
    /// In-order items held for delay equalisation ([`Via::hold_ns`]).
    pub equalized: u64,
}

impl ReorderStats {
    /// Adds the counters of another buffer (a client's flows summed); the gauges
    /// (`max_depth`, `skew_ns`, `timeout_ns`) take the larger value.
    pub fn accumulate(&mut self, s: &ReorderStats) {
        self.delivered += s.delivered;
        self.in_order += s.in_order;
        self.reordered += s.reordered;
        self.duplicates += s.duplicates;
        self.late += s.late;
        self.window_advances += s.window_advances;
        self.gaps_skipped += s.gaps_skipped;
        self.timeouts += s.timeouts;
        self.max_depth = self.max_depth.max(s.max_depth);
        self.late_delivered += s.late_delivered;
        self.horizon_skips += s.horizon_skips;
        self.resyncs += s.resyncs;
        self.skew_ns = self.skew_ns.max(s.skew_ns);
        self.timeout_ns = self.timeout_ns.max(s.timeout_ns);
        self.equalized += s.equalized;
    }
}

/// What [`ReorderBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// It was the expected SN and was released at once (maybe followed by buffered ones).
    InOrder,
    /// It is held until its predecessors arrive or time out.
    Buffered,
    /// Its SN had been skipped; released at once, out of order (`deliver_late`).
    LateDelivered,
    /// Dropped: already delivered or already buffered.
    Duplicate,
    /// Dropped: its SN was skipped before it arrived, or it is too far behind.
    Late,
}

impl PushOutcome {
    /// The drop reason, if the packet was dropped.
    pub fn drop_reason(self) -> Option<DropReason> {
        match self {
            PushOutcome::InOrder | PushOutcome::Buffered | PushOutcome::LateDelivered => None,
            PushOutcome::Duplicate => Some(DropReason::ReorderDuplicate),
            PushOutcome::Late => Some(DropReason::ReorderLate),
        }
    }
}

/// In-order release of one flow's packets. `T` is the packet (or a handle to it), `S` the
/// sequence-number space ([`super::seqnum::Sn16`] for MX, [`super::seqnum::Sn32`] for GRE).
///
/// Released items go to `out(sn, item)` in strictly increasing SN order (in the half-range
/// sense), each SN at most once.
#[derive(Debug)]
pub struct ReorderBuffer<T, S: SeqSpace> {
    window: usize,
    timeout_ns: u64,
    /// Ring: the item of SN position `p` (counted like `passed`) lives at `p % slots.len()`,
    /// with the earliest time it may be released (delay equalisation; 0 = at once); the length
    /// is 0 or a power of two `> d` for every held `expected + d` (grown on demand, at most
    /// `window.next_power_of_two()`).
    slots: Vec<Option<(T, Instant)>>,
    /// Next SN to release; `None` until the first packet (which sets it).
    expected: Option<S>,
    /// The SN the sender starts a flow at, if known ([`ReorderBuffer::set_initial`]).
    initial: Option<S>,
    depth: usize,
    /// Bit `p % window` tells whether SN position `p` (counted from the first packet) was
    /// delivered (1) or skipped (0); valid for the last `min(window, passed)` positions.
    history: Vec<u64>,
    /// SN positions passed (released or skipped) since the first packet.
    passed: u64,
    /// `(arrival, sn)` of buffered packets, in arrival order; entries whose SN has since been
    /// released are removed lazily (always before the front is used), so the front is the
    /// longest-waiting held packet.
    arrivals: VecDeque<(Instant, S)>,
    /// Latest `now` seen: time never goes backwards inside the buffer.
    now: Instant,
    deliver_late: bool,
    resync_after: u32,
    path_horizon: bool,
    /// Per delivery connection (by path index): the highest SN it delivered and when it last
    /// delivered one. Each connection delivers in order, so once every live connection has
    /// delivered past a missing SN, that SN is lost ([`ReorderBuffer::push_via`]).
    marks: [Option<(S, Instant)>; MAX_MARKS],
    /// Bit `i`: path `i` is live for the client (it carries data and is usable), from the last
    /// `push_via`/`poll_via`.
    live: u8,
    /// When the last timeout skipped a gap (to measure how late a late packet was).
    last_timeout_at: Instant,
    /// Consecutive packets from beyond the history (restart detection).
    behind_run: u32,
    /// The horizon must be re-evaluated at the next poll (a path left the live set).
    recheck: bool,
    stats: ReorderStats,
}

impl<T, S: SeqSpace> ReorderBuffer<T, S> {
    /// Reads the first words of the buffer's heap parts (ring, history, arrivals), so that a
    /// burst stage can bring many flows' state into the cache at once; returns a value only so
    /// that the loads are not optimised away.
    pub fn touch(&self) -> u64 {
        let ring = self.slots.first().map_or(0, |s| u64::from(s.is_some()));
        let hist = self.history.first().copied().unwrap_or(0);
        let arr = self.arrivals.front().map_or(0, |a| a.0);
        ring ^ hist ^ arr ^ self.passed
    }

    /// An empty buffer with all storage preallocated.
    pub fn new(config: ReorderConfig) -> Self {
        let max_window = (S::HALF / 2) as usize;
        let window = config.window.clamp(1, max_window);
        ReorderBuffer {
            window,
            timeout_ns: config.timeout_ns,
            slots: Vec::new(),
            expected: None,
            initial: None,
            depth: 0,
            history: vec![0; window.div_ceil(64)],
            passed: 0,
            arrivals: VecDeque::new(),
            now: 0,
            deliver_late: config.deliver_late,
            resync_after: config.resync_after,
            path_horizon: config.path_horizon,
            marks: [None; MAX_MARKS],
            live: 0,
            last_timeout_at: 0,
            behind_run: 0,
            recheck: false,
            stats: ReorderStats {
                timeout_ns: config.timeout_ns,
                ..ReorderStats::default()
            },
        }
    }

    /// The effective window (after clamping).
    pub fn window(&self) -> usize {
        self.window
    }

    /// The configured timeout (the floor of [`ReorderBuffer::effective_timeout`]), ns.
    pub fn timeout(&self) -> u64 {
        self.timeout_ns
    }

    /// The timeout in force: the configured one, or twice the reordering delay this flow has
    /// observed ([`ReorderStats::skew_ns`]) when that is longer, up to [`MAX_TIMEOUT_NS`]. The
    /// configured value comes from path estimates (one-way delays from probes, which miss the
    /// queueing delay of a loaded path); the observed one is what the paths actually do to
    /// this flow, queueing included.
    pub fn effective_timeout(&self) -> u64 {
        let observed = self.stats.skew_ns.saturating_mul(2).min(MAX_TIMEOUT_NS);
        self.timeout_ns.max(observed)
    }

    /// Change the timeout (e.g. from [`adaptive_timeout`]); applies to packets already held.
    pub fn set_timeout(&mut self, timeout_ns: u64) {
        self.timeout_ns = timeout_ns;
        self.stats.timeout_ns = self.effective_timeout();
    }

    /// A reordering-delay sample: an SN arrived `sample` ns after a successor did.
    fn observe_skew(&mut self, sample: u64) {
        // Rises at once, decays slowly (1/64 of the difference per sample): the estimate stays
        // near the largest recent delays, which is what a timeout must cover.
        let skew = &mut self.stats.skew_ns;
        if sample >= *skew {
            *skew = sample;
        } else {
            *skew -= (*skew - sample) / 64;
        }
        self.stats.timeout_ns = self.effective_timeout();
    }

    /// Number of packets held.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The next SN the buffer will release, once synchronised.
    pub fn expected(&self) -> Option<S> {
        self.expected
    }

    /// Counters.
    pub fn stats(&self) -> &ReorderStats {
        &self.stats
    }

    /// When [`ReorderBuffer::poll`] must next be called: the longest-held packet's arrival plus
    /// the timeout. `None` when nothing is held.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.recheck && self.depth > 0 {
            return Some(self.now);
        }
        let timeout = self.effective_timeout();
        let gap = self
            .arrivals
            .front()
            .map(|&(t, _)| t.saturating_add(timeout));
        // An equalised head waits for its own release time, and every gap timer behind it
        // waits for that too (a give-up never releases a held packet early).
        match self.slots.get(self.slot_index(0)) {
            Some(Some((_, at))) if self.depth > 0 => Some(*at),
            _ => gap,
        }
    }

    /// Declares the SN a new flow starts at (the sender's initial SN), so that packets
    /// overtaking the first one on a faster path are held for it instead of making it late.
    /// It applies to the first packet only when that packet lies within the window at or after
    /// `sn`; otherwise (a receiver joining a flow mid-stream) the first packet sets the
    /// expected SN as usual. Has no effect once a packet has been accepted.
    pub fn set_initial(&mut self, sn: S) {
        if self.expected.is_none() {
            self.initial = Some(sn);
        }
    }

    /// Accept packet `sn`, releasing to `out` everything now in order.
    ///
    /// The first packet (after creation or [`ReorderBuffer::reset`]) sets the expected SN,
    /// unless [`ReorderBuffer::set_initial`] gave a start it falls within the window of.
    /// A packet more than `window - 1` ahead of the release point forces the window forward:
    /// held packets before the new window are released and missing SNs skipped, so that memory
    /// never exceeds `window` items.
    pub fn push(&mut self, sn: S, item: T, now: Instant, out: impl FnMut(S, T)) -> PushOutcome {
        self.push_via(sn, item, now, None, out)
    }

    /// [`ReorderBuffer::push`] of a packet that arrived over delivery connection `via`
    /// ([`Via`]: its path index, the live paths and the delay-equalisation hold). Each
    /// connection delivers in order, so once every live connection has
    /// delivered an SN past a missing one, the missing one is lost and skipped at once instead
    /// of after the timeout (the "path horizon": the lowest of the live paths' highest SNs).
    /// A live path this flow has not heard from within the timeout suspends the rule (it may
    /// still carry the missing SN), as does `via = None`.
    pub fn push_via(
        &mut self,
        sn: S,
        item: T,
        now: Instant,
        via: Option<Via>,
        mut out: impl FnMut(S, T),
    ) -> PushOutcome {
        self.now = self.now.max(now);
        let mut hold = 0;
        if let Some(v) = via {
            self.live = v.live;
            hold = v.hold_ns;
            if let Some(m) = self.marks.get_mut(v.path) {
                *m = Some(match *m {
                    Some((last, _)) if !sn.is_after(last) => (last, self.now),
                    _ => (sn, self.now),
                });
            }
        }
        let outcome = self.push_inner(sn, item, hold, &mut out);
        if via.is_some() && self.depth > 0 {
            self.apply_horizon(&mut out);
        }
        outcome
    }

    fn push_inner(&mut self, sn: S, item: T, hold: u64, mut out: impl FnMut(S, T)) -> PushOutcome {
        if self.expected.is_none() {
            let start = match self.initial.take() {
                Some(init) if (0..self.window as i64).contains(&sn.distance(init)) => init,
                _ => sn,
            };
            self.expected = Some(start);
        }
        let mut expected = self.expected.unwrap_or(sn);
        let mut d = sn.distance(expected);

        if d < 0 {
            let back = d.unsigned_abs();
            let known = back <= self.passed && back <= self.window as u64;
            if !known {
                // AMBIGUITY: a packet further behind than the history we keep (`window` SNs)
                // cannot be told apart; it is late (stale) and dropped, unless a run of them
                // says the sender restarted its SN space (draft-04 says nothing of restarts).
                self.behind_run += 1;
                if self.resync_after > 0 && self.behind_run >= self.resync_after {
                    self.resync(sn, &mut out);
                    return self.push_inner(sn, item, hold, out);
                }
                self.stats.late += 1;
                return PushOutcome::Late;
            }
            self.behind_run = 0;
            let pos = self.passed - back;
            if self.history_bit(pos) {
                self.stats.duplicates += 1;
                return PushOutcome::Duplicate;
            }
            self.stats.late += 1;
            // It arrived after its gap was given up on: by at least the timeout, and by how
            // long ago that was (an upper bound when the gap went another way).
            let lateness = self
                .effective_timeout()
                .saturating_add(self.now.saturating_sub(self.last_timeout_at));
            if self.stats.timeouts > 0 {
                self.observe_skew(lateness.min(MAX_TIMEOUT_NS));
            }
            if !self.deliver_late {
                return PushOutcome::Late;
            }
            self.set_history(pos, true);
            self.stats.late_delivered += 1;
            self.stats.delivered += 1;
            out(sn, item);
            return PushOutcome::LateDelivered;
        }
        self.behind_run = 0;

        if d as u64 >= self.window as u64 {
            // Too far ahead: move the window so that `sn` becomes its last slot.
            self.stats.window_advances += 1;
            let target = sn.wrapping_sub(self.window as u64 - 1);
            self.skip_to(target, &mut out);
            self.drain(&mut out);
            expected = self.expected.unwrap_or(sn);
            d = sn.distance(expected);
        }

        let release_at = if hold > 0 {
            self.now.saturating_add(hold)
        } else {
            0
        };
        let head_taken = d == 0 && matches!(self.slots.get(self.slot_index(0)), Some(Some(_)));
        let outcome = if head_taken {
            // Already here (held for equalisation).
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        } else if d == 0 && hold > 0 {
            // In order, but held so that it sees the delay of the slowest live path.
            self.grow_for(0);
            let idx = self.slot_index(0);
            if let Some(slot) = self.slots.get_mut(idx) {
                *slot = Some((item, release_at));
            }
            self.depth += 1;
            self.stats.max_depth = self.stats.max_depth.max(self.depth as u64);
            self.stats.equalized += 1;
            PushOutcome::Buffered
        } else if d == 0 {
            if self.depth > 0 {
                // A gap filled: its successors have waited since the oldest of them arrived
                // (`arrivals` is pruned after every operation: its front is held, after `sn`).
                if let Some(&(t, _)) = self.arrivals.front() {
                    self.observe_skew(self.now.saturating_sub(t));
                }
            }
            self.release_head(Some(item), &mut out);
            self.stats.in_order += 1;
            PushOutcome::InOrder
        } else {
            // 0 < d < window here: the drain above only moves `expected` up to `sn`.
            self.grow_for(d as usize);
            let idx = self.slot_index(d as usize);
            match self.slots.get_mut(idx) {
                Some(slot @ None) => {
                    *slot = Some((item, release_at));
                    self.depth += 1;
                    self.stats.max_depth = self.stats.max_depth.max(self.depth as u64);
                    self.arrivals.push_back((self.now, sn));
                    PushOutcome::Buffered
                }
                _ => {
                    self.stats.duplicates += 1;
                    return PushOutcome::Duplicate;
                }
            }
        };
        self.drain(&mut out);
        self.prune();
        outcome
    }

    /// Release held packets that have waited `timeout` or longer, skipping the missing SNs
    /// before them, then everything in order after them. Returns the number of items released.
    pub fn poll(&mut self, now: Instant, out: impl FnMut(S, T)) -> usize {
        self.poll_via(now, None, out)
    }

    /// [`ReorderBuffer::poll`] with the current set of live paths (see
    /// [`ReorderBuffer::push_via`]): the path horizon is applied first, then the timeout.
    pub fn poll_via(&mut self, now: Instant, live: Option<u8>, mut out: impl FnMut(S, T)) -> usize {
        self.now = self.now.max(now);
        let before = self.stats.delivered;
        // Equalised packets whose time has come.
        self.drain(&mut out);
        if let Some(live) = live {
            if live != self.live {
                self.live = live;
                self.recheck = true;
            }
        }
        if std::mem::take(&mut self.recheck) && self.depth > 0 {
            self.apply_horizon(&mut out);
        }
        self.prune();
        let timeout = self.effective_timeout();
        while let Some(&(t, sn)) = self.arrivals.front() {
            if t.saturating_add(timeout) > self.now {
                break;
            }
            // A packet held for delay equalisation at the head is not a gap: wait for it
            // (its release drains the run behind it).
            if self.head_waits() {
                break;
            }
            self.stats.timeouts += 1;
            self.last_timeout_at = self.now;
            let blocked = self.skip_gaps_to(sn, &mut out);
            self.drain(&mut out);
            self.prune();
            if blocked {
                break;
            }
            // `sn` was held, so it has just been released and pruned; guard the loop anyway.
            if self.arrivals.front().is_some_and(|&(_, f)| f == sn) {
                self.arrivals.pop_front();
            }
        }
        (self.stats.delivered - before) as usize
    }

    /// Release every held packet in SN order (skipping gaps), e.g. when the flow ends. The
    /// release point stays after the last one.
    pub fn flush(&mut self, mut out: impl FnMut(S, T)) -> usize {
        let before = self.stats.delivered;
        while self.depth > 0 {
            self.advance_one(&mut out);
        }
        self.drain(&mut out);
        self.arrivals.clear();
        (self.stats.delivered - before) as usize
    }

    /// Drop every held packet and forget the release point: the next packet re-synchronises
    /// (e.g. after a path switch with a new SN base). Counters are kept. Returns how many held
    /// packets were discarded.
    pub fn reset(&mut self) -> usize {
        let dropped = self.depth;
        self.slots.iter_mut().for_each(|s| *s = None);
        self.history.iter_mut().for_each(|w| *w = 0);
        self.arrivals.clear();
        self.expected = None;
        self.initial = None;
        self.depth = 0;
        self.passed = 0;
        self.marks = [None; MAX_MARKS];
        self.behind_run = 0;
        self.recheck = false;
        dropped
    }

    /// Path `path` left the live set (declared down, or no longer usable): the horizon no
    /// longer waits for it, from the next [`ReorderBuffer::poll_via`] (whose
    /// [`ReorderBuffer::next_deadline`] is then due at once).
    pub fn forget_path(&mut self, path: usize) {
        if path < MAX_MARKS {
            self.live &= !(1u8 << path);
        }
        if let Some(m) = self.marks.get_mut(path) {
            *m = None;
        }
        self.recheck = true;
    }

    /// The sender restarted: release what is held (in order, as a flush would), forget the
    /// release point and the history, and start over at `sn`.
    fn resync(&mut self, sn: S, out: &mut impl FnMut(S, T)) {
        self.flush(&mut *out);
        self.reset();
        self.stats.resyncs += 1;
        self.expected = Some(sn);
    }

    /// The path horizon (see [`ReorderBuffer::push_via`]): the lowest highest-SN over the live
    /// paths, when every live path has a mark fresher than the timeout.
    fn horizon(&self) -> Option<S> {
        if !self.path_horizon || self.live == 0 {
            return None;
        }
        let fresh = self.effective_timeout();
        let mut h: Option<S> = None;
        for i in 0..MAX_MARKS {
            if self.live & (1u8 << i) == 0 {
                continue;
            }
            let (sn, at) = self.marks[i]?;
            if self.now.saturating_sub(at) > fresh {
                return None;
            }
            h = Some(match h {
                Some(x) if x.is_before(sn) => x,
                _ => sn,
            });
        }
        h
    }

    /// Skip every missing SN before the path horizon: they are lost.
    fn apply_horizon(&mut self, out: &mut impl FnMut(S, T)) {
        let (Some(h), Some(expected)) = (self.horizon(), self.expected) else {
            return;
        };
        if h.distance(expected) > 0 {
            self.stats.horizon_skips += 1;
            self.skip_gaps_to(h, out);
            self.drain(out);
            self.prune();
        }
    }

    /// Ring index of SN `expected + d` (meaningless, and unused, while the ring is empty).
    fn slot_index(&self, d: usize) -> usize {
        (self.passed as usize).wrapping_add(d) & self.slots.len().wrapping_sub(1)
    }

    /// Makes the ring hold `expected + d` (`d < window`): doubles it (at least 8 slots) and
    /// moves the held items to their places in the larger ring.
    fn grow_for(&mut self, d: usize) {
        let old_len = self.slots.len();
        if d < old_len {
            return;
        }
        let new_len = (d + 1).next_power_of_two().max(8).max(2 * old_len);
        let mut slots: Vec<Option<(T, Instant)>> = Vec::with_capacity(new_len);
        slots.resize_with(new_len, || None);
        let base = self.passed as usize;
        for (i, item) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if let Some(t) = item {
                // Its distance from the release point, then its index in the new ring.
                let off = i.wrapping_sub(base) & (old_len - 1);
                slots[base.wrapping_add(off) & (new_len - 1)] = Some(t);
            }
        }
        self.slots = slots;
    }

    fn history_bit(&self, pos: u64) -> bool {
        let i = (pos % self.window as u64) as usize;
        self.history
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    fn set_history(&mut self, pos: u64, delivered: bool) {
        let i = (pos % self.window as u64) as usize;
        if let Some(w) = self.history.get_mut(i / 64) {
            if delivered {
                *w |= 1u64 << (i % 64);
            } else {
                *w &= !(1u64 << (i % 64));
            }
        }
    }

    /// Pass the head SN: deliver `item` (or the held one) or record a gap.
    fn release_head(&mut self, item: Option<T>, out: &mut impl FnMut(S, T)) {
        let Some(sn) = self.expected else { return };
        let delivered = item.is_some();
        if let Some(t) = item {
            self.stats.delivered += 1;
            out(sn, t);
        } else {
            self.stats.gaps_skipped += 1;
        }
        self.set_history(self.passed, delivered);
        self.passed += 1;
        self.expected = Some(sn.wrapping_add(1));
    }

    /// Pass the head SN, releasing whatever is held there.
    fn advance_one(&mut self, out: &mut impl FnMut(S, T)) {
        let head = self.slot_index(0);
        let held = self
            .slots
            .get_mut(head)
            .and_then(Option::take)
            .map(|(t, _)| t);
        if held.is_some() {
            self.depth -= 1;
            self.stats.reordered += 1;
        }
        self.release_head(held, out);
    }

    /// Whether the head is a packet held for delay equalisation whose release time has not
    /// come (present, not missing: no give-up may release it).
    fn head_waits(&self) -> bool {
        matches!(self.slots.get(self.slot_index(0)), Some(Some((_, at))) if *at > self.now)
    }

    /// Release the held run starting at the head (each item once its release time, if any,
    /// has come).
    fn drain(&mut self, out: &mut impl FnMut(S, T)) {
        while matches!(self.slots.get(self.slot_index(0)), Some(Some((_, at))) if *at <= self.now) {
            self.advance_one(out);
        }
    }

    /// Move the release point forward to `target`, releasing held packets and skipping gaps.
    /// At most `window` slots are visited: beyond that all slots are empty and the rest of the
    /// jump is a bulk skip.
    fn skip_to(&mut self, target: S, out: &mut impl FnMut(S, T)) {
        self.skip_toward(target, false, out);
    }

    /// [`ReorderBuffer::skip_to`] for a give-up on missing SNs (timeout, path horizon): it
    /// skips gaps and releases what is due, but stops at a packet held for delay equalisation
    /// whose time has not come (that packet is not missing; releasing it early would give it
    /// a shorter delay than its flow's other packets, the very thing the hold prevents).
    /// Returns true when it stopped there.
    fn skip_gaps_to(&mut self, target: S, out: &mut impl FnMut(S, T)) -> bool {
        self.skip_toward(target, true, out)
    }

    fn skip_toward(&mut self, target: S, respect_holds: bool, out: &mut impl FnMut(S, T)) -> bool {
        let Some(expected) = self.expected else {
            return false;
        };
        let n = target.distance(expected);
        if n <= 0 {
            return false;
        }
        let n = n as u64;
        let visit = n.min(self.window as u64);
        for _ in 0..visit {
            if respect_holds && self.head_waits() {
                return true;
            }
            self.advance_one(out);
        }
        let rest = n - visit;
        if rest > 0 {
            if rest >= self.window as u64 {
                self.history.iter_mut().for_each(|w| *w = 0);
            } else {
                for p in self.passed..self.passed + rest {
                    self.set_history(p, false);
                }
            }
            self.passed += rest;
            self.stats.gaps_skipped += rest;
            self.expected = Some(target);
        }
        false
    }

    /// Remove arrival entries of packets already released.
    fn prune(&mut self) {
        let Some(expected) = self.expected else {
            self.arrivals.clear();
            return;
        };
        while let Some(&(_, sn)) = self.arrivals.front() {
            if sn.is_before(expected) {
                self.arrivals.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::seqnum::{Sn16, Sn32};
    use proptest::prelude::*;
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    type Buf = ReorderBuffer<u64, Sn16>;

    fn cfg(window: usize, timeout_ns: u64) -> ReorderConfig {
        // The original semantics (late packets dropped, no re-synchronisation); the newer
        // behaviours have tests of their own below.
        ReorderConfig {
            window,
            timeout_ns,
            deliver_late: false,
            resync_after: 0,
            path_horizon: false,
        }
    }

    /// Push raw SNs (item = SN) at time `now`, collecting released SNs.
    fn push_all(b: &mut Buf, sns: &[u16], now: Instant, got: &mut Vec<u16>) -> Vec<PushOutcome> {
        sns.iter()
            .map(|&s| b.push(Sn16(s), u64::from(s), now, |sn, _| got.push(sn.0)))
            .collect()
    }

    #[test]
    fn storage_grows_only_when_packets_are_held_and_stays_within_the_window() {
        let mut b = Buf::new(cfg(1000, MS));
        let mut got = vec![];
        let in_order: Vec<u16> = (0..3000).collect();
        push_all(&mut b, &in_order, 0, &mut got);
        assert_eq!(got.len(), 3000);
        assert_eq!(
            (b.slots.len(), b.arrivals.capacity()),
            (0, 0),
            "in order: no storage"
        );
        // 3001 and 3100 held (3000 missing): a ring of 128 holds distance 100.
        push_all(&mut b, &[3001, 3100], 0, &mut got);
        assert_eq!(b.slots.len(), 128);
        // Held items keep their places across growth: release in order.
        push_all(&mut b, &[3999, 3000], 0, &mut got);
        assert_eq!(b.slots.len(), 1024, "window 1000 -> at most 1024 slots");
        assert_eq!(&got[3000..], &[3000, 3001]);
        b.poll(10 * MS, |sn, _| got.push(sn.0));
        assert_eq!(&got[3002..], &[3100, 3999]);
    }

    #[test]
    fn first_packet_sets_expected_sn() {
        let mut b = Buf::new(cfg(16, MS));
        let mut got = vec![];
        assert_eq!(
            push_all(&mut b, &[500], 0, &mut got),
            [PushOutcome::InOrder]
        );
        assert_eq!(b.expected(), Some(Sn16(501)));
        push_all(&mut b, &[502, 501], 0, &mut got);
        assert_eq!(got, [500, 501, 502]);
        assert_eq!(b.stats().in_order, 2);
        assert_eq!(b.stats().reordered, 1);
        assert_eq!(b.stats().delivered, 3);
    }

    #[test]
    fn s4_2_1_sn_orders_release_across_paths() {
        let mut b = Buf::new(cfg(16, MS));
        let mut got = vec![];
        let o = push_all(&mut b, &[0, 3, 2, 1, 4], 0, &mut got);
        assert_eq!(got, [0, 1, 2, 3, 4]);
        use PushOutcome::*;
        assert_eq!(o, [InOrder, Buffered, Buffered, InOrder, InOrder]);
        assert_eq!(b.stats().max_depth, 2);
        assert_eq!(b.depth(), 0);
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn duplicate_of_buffered_and_of_delivered_is_dropped() {
        let mut b = Buf::new(cfg(16, MS));
        let mut got = vec![];
        let o = push_all(&mut b, &[0, 2, 2, 0, 1, 1, 2], 0, &mut got);
        use PushOutcome::*;
        assert_eq!(
            o,
            [InOrder, Buffered, Duplicate, Duplicate, InOrder, Duplicate, Duplicate]
        );
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(b.stats().duplicates, 4);
        assert_eq!(b.stats().late, 0);
        assert_eq!(Duplicate.drop_reason(), Some(DropReason::ReorderDuplicate));
        assert_eq!(InOrder.drop_reason(), None);
    }

    #[test]
    fn late_vs_duplicate_after_timeout_skip() {
        let mut b = Buf::new(cfg(16, 10 * MS));
        let mut got = vec![];
        push_all(&mut b, &[0, 2], 0, &mut got);
        assert_eq!(b.next_deadline(), Some(10 * MS));
        assert_eq!(b.poll(10 * MS - 1, |s, _| got.push(s.0)), 0);
        assert_eq!(b.poll(10 * MS, |s, _| got.push(s.0)), 1);
        assert_eq!(got, [0, 2]);
        assert_eq!(b.stats().gaps_skipped, 1);
        assert_eq!(b.stats().timeouts, 1);
        // 1 was skipped: late. 2 and 0 were delivered: duplicates.
        let o = push_all(&mut b, &[1, 2, 0], 11 * MS, &mut got);
        assert_eq!(
            o,
            [
                PushOutcome::Late,
                PushOutcome::Duplicate,
                PushOutcome::Duplicate
            ]
        );
        assert_eq!(b.stats().late, 1);
        assert_eq!(b.stats().duplicates, 2);
        assert_eq!(
            PushOutcome::Late.drop_reason(),
            Some(DropReason::ReorderLate)
        );
        // Far behind, beyond the history: late.
        push_all(&mut b, &[60000], 11 * MS, &mut got);
        assert_eq!(b.stats().late, 2);
        assert_eq!(got, [0, 2]);
    }

    #[test]
    fn timeout_release_is_per_packet_arrival() {
        let mut b = Buf::new(cfg(64, 100 * MS));
        let mut got = vec![];
        push_all(&mut b, &[0], 0, &mut got);
        push_all(&mut b, &[3], 10 * MS, &mut got);
        push_all(&mut b, &[5], 60 * MS, &mut got);
        assert_eq!(b.next_deadline(), Some(110 * MS));
        b.poll(110 * MS, |s, _| got.push(s.0));
        // 1, 2 skipped; 3 released; 4 still awaited, 5 held until 160 ms.
        assert_eq!(got, [0, 3]);
        assert_eq!(b.next_deadline(), Some(160 * MS));
        assert_eq!(b.depth(), 1);
        b.poll(159 * MS, |s, _| got.push(s.0));
        assert_eq!(got, [0, 3]);
        push_all(&mut b, &[4], 159 * MS, &mut got);
        assert_eq!(got, [0, 3, 4, 5]);
        assert_eq!(b.stats().gaps_skipped, 2);
        assert_eq!(b.stats().timeouts, 1);
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn set_timeout_applies_to_held_packets() {
        let mut b = Buf::new(cfg(64, 100 * MS));
        let mut got = vec![];
        push_all(&mut b, &[0, 2], 0, &mut got);
        b.set_timeout(20 * MS);
        assert_eq!(b.timeout(), 20 * MS);
        assert_eq!(b.next_deadline(), Some(20 * MS));
        b.poll(20 * MS, |s, _| got.push(s.0));
        assert_eq!(got, [0, 2]);
    }

    #[test]
    fn window_advance_skips_and_releases_oldest() {
        let mut b = Buf::new(cfg(4, MS));
        let mut got = vec![];
        push_all(&mut b, &[0, 2, 3], 0, &mut got);
        assert_eq!(got, [0]);
        // expected 1; 6 is 5 ahead >= window 4: window moves to 3..=6; 1 skipped, 2 and 3 out.
        assert_eq!(push_all(&mut b, &[6], 0, &mut got), [PushOutcome::Buffered]);
        assert_eq!(got, [0, 2, 3]);
        assert_eq!(b.stats().window_advances, 1);
        assert_eq!(b.stats().gaps_skipped, 1);
        assert_eq!(b.depth(), 1);
        // A jump far beyond the window: everything held is released, the rest skipped in bulk.
        assert_eq!(
            push_all(&mut b, &[1000], 0, &mut got),
            [PushOutcome::Buffered]
        );
        assert_eq!(got, [0, 2, 3, 6]);
        assert_eq!(b.expected(), Some(Sn16(997)));
        assert_eq!(b.stats().gaps_skipped, 1 + 2 + (997 - 7));
        push_all(&mut b, &[997, 998, 999], 0, &mut got);
        assert_eq!(got, [0, 2, 3, 6, 997, 998, 999, 1000]);
        // 5 was skipped: late; 6 delivered: duplicate (still within the history).
        assert_eq!(
            push_all(&mut b, &[998], 0, &mut got),
            [PushOutcome::Duplicate]
        );
        assert_eq!(push_all(&mut b, &[996], 0, &mut got), [PushOutcome::Late]);
    }

    #[test]
    fn bulk_skip_marks_skipped_sns_late_not_duplicate() {
        let mut b = Buf::new(cfg(4, MS));
        let mut got = vec![];
        push_all(&mut b, &[0, 2, 3, 4], 0, &mut got);
        // expected 1; 11 moves the window to 8..=11: 1 skipped, 2..=4 released, 5..=7 skipped
        // in bulk (their history bits reuse those of 2..=4).
        push_all(&mut b, &[11], 0, &mut got);
        assert_eq!(got, [0, 2, 3, 4]);
        assert_eq!(b.expected(), Some(Sn16(8)));
        use PushOutcome::*;
        assert_eq!(
            push_all(&mut b, &[7, 6, 5, 4], 0, &mut got),
            [Late, Late, Late, Duplicate]
        );
    }

    #[test]
    fn window_of_one_releases_on_every_jump() {
        let mut b = Buf::new(cfg(1, MS));
        let mut got = vec![];
        let o = push_all(&mut b, &[0, 2, 1, 5], 0, &mut got);
        use PushOutcome::*;
        assert_eq!(o, [InOrder, InOrder, Late, InOrder]);
        assert_eq!(got, [0, 2, 5]);
        assert_eq!(b.stats().window_advances, 2);
    }

    #[test]
    fn window_is_clamped_to_a_quarter_of_the_space() {
        let b = Buf::new(cfg(1 << 20, MS));
        assert_eq!(b.window(), 1 << 14);
        let b = Buf::new(cfg(0, MS));
        assert_eq!(b.window(), 1);
    }

    #[test]
    fn flush_releases_in_order_and_reset_resyncs() {
        let mut b = Buf::new(cfg(16, MS));
        let mut got = vec![];
        push_all(&mut b, &[0, 5, 3], 0, &mut got);
        assert_eq!(b.flush(|s, _| got.push(s.0)), 2);
        assert_eq!(got, [0, 3, 5]);
        assert_eq!(b.expected(), Some(Sn16(6)));
        assert_eq!(b.next_deadline(), None);
        push_all(&mut b, &[8], 0, &mut got);
        assert_eq!(b.reset(), 1);
        assert_eq!(b.expected(), None);
        push_all(&mut b, &[40000, 40001], 0, &mut got);
        assert_eq!(got, [0, 3, 5, 40000, 40001]);
    }

    #[test]
    fn loss_stalls_only_its_own_flow() {
        let mut a = Buf::new(cfg(64, 50 * MS));
        let mut b = Buf::new(cfg(64, 50 * MS));
        let (mut ga, mut gb) = (vec![], vec![]);
        for s in 0..10u16 {
            if s != 3 {
                push_all(&mut a, &[s], 0, &mut ga); // flow A loses SN 3
            }
            push_all(&mut b, &[s], 0, &mut gb);
        }
        assert_eq!(ga, [0, 1, 2]);
        assert_eq!(gb, (0..10).collect::<Vec<_>>());
        a.poll(50 * MS, |s, _| ga.push(s.0));
        assert_eq!(ga, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn wrap_200000_packets_16_bit_in_order() {
        let mut b = Buf::new(ReorderConfig::default());
        let mut rng = rand_pcg::Pcg32::seed_from_u64(7);
        let start = 65000u16;
        let n = 200_000u64;
        let mut order: Vec<u64> = (0..n).collect();
        // Local reordering: shuffle each block of 8 after the first packet.
        for c in order[1..].chunks_mut(8) {
            c.shuffle(&mut rng);
        }
        let mut next = 0u64;
        for &i in &order {
            let sn = Sn16(start).wrapping_add(i);
            b.push(sn, i, i, |s, item| {
                assert_eq!(item, next);
                assert_eq!(s, Sn16(start).wrapping_add(next));
                next += 1;
            });
        }
        assert_eq!(next, n);
        assert_eq!(b.stats().delivered, n);
        assert_eq!(
            b.stats().duplicates + b.stats().late + b.stats().gaps_skipped,
            0
        );
    }

    #[test]
    fn rfc2890_sn32_wraps() {
        let mut b: ReorderBuffer<u32, Sn32> = ReorderBuffer::new(cfg(8, MS));
        let mut got = vec![];
        for s in [u32::MAX - 1, 0, u32::MAX, 1] {
            b.push(Sn32(s), s, 0, |_, i| got.push(i));
        }
        assert_eq!(got, [u32::MAX - 1, u32::MAX, 0, 1]);
    }

    #[test]
    fn adaptive_timeout_clamps() {
        assert_eq!(adaptive_timeout(&[]), 10 * MS);
        assert_eq!(adaptive_timeout(&[5 * MS, 6 * MS]), 10 * MS);
        assert_eq!(adaptive_timeout(&[10 * MS, 110 * MS, 40 * MS]), 200 * MS);
        assert_eq!(adaptive_timeout(&[0, 10_000 * MS]), 1000 * MS);
        assert_eq!(adaptive_timeout(&[0, u64::MAX]), 1000 * MS);
    }

    proptest! {
        /// Any permutation (with duplicates) of a run that fits the window, starting with its
        /// first SN, comes out exactly in order, without duplicates.
        #[test]
        fn permutation_within_window_is_released_in_order(
            start: u16, n in 1usize..200, dups in proptest::collection::vec(1usize..200, 0..40), seed: u64,
        ) {
            let mut b = Buf::new(cfg(256, MS));
            let mut rest: Vec<usize> = (1..n).chain(dups.iter().copied().filter(|&d| d < n)).collect();
            let ndup = rest.len() - (n - 1);
            rest.shuffle(&mut rand_pcg::Pcg32::seed_from_u64(seed));
            let mut got = vec![];
            for &i in std::iter::once(&0).chain(rest.iter()) {
                b.push(Sn16(start).wrapping_add(i as u64), i as u64, 0, |_, it| got.push(it));
            }
            prop_assert_eq!(got, (0..n as u64).collect::<Vec<_>>());
            prop_assert_eq!(b.stats().duplicates, ndup as u64);
            prop_assert_eq!(b.depth(), 0);
            prop_assert_eq!(b.stats().gaps_skipped + b.stats().late, 0);
        }

        /// With losses, duplicates, jumps and timeouts: output is strictly increasing, every
        /// released item was pushed and is released once, no held packet outlives its deadline,
        /// memory stays within the window, and every pushed packet is accounted for.
        #[test]
        fn random_traffic_invariants(
            start: u16, window in 1usize..64,
            ops in proptest::collection::vec((-80i64..200, 0u64..30, any::<bool>()), 1..300),
        ) {
            let timeout = 20 * MS;
            let mut b = Buf::new(cfg(window, timeout));
            let mut now = 0;
            let mut base = Sn16(start);
            let mut pushed = std::collections::HashMap::new();
            let mut released: Vec<(Sn16, u64)> = vec![];
            for (id, (off, dt, poll)) in ops.into_iter().enumerate() {
                now += dt * MS;
                let sn = if off >= 0 { base.wrapping_add(off as u64) } else { base.wrapping_sub(off.unsigned_abs()) };
                if off > 0 && off < 5 { base = base.wrapping_add(1); }
                pushed.insert(id as u64, sn);
                b.push(sn, id as u64, now, |s, it| released.push((s, it)));
                if poll { b.poll(now, |s, it| released.push((s, it))); }
                prop_assert!(b.depth() <= b.window());
                prop_assert!(b.arrivals.len() <= 2 * b.window());
                if poll { prop_assert!(!matches!(b.next_deadline(), Some(d) if d <= now)); }
            }
            b.flush(|s, it| released.push((s, it)));
            let mut seen = std::collections::HashSet::new();
            for w in released.windows(2) {
                prop_assert!(w[1].0.is_after(w[0].0), "{:?} then {:?}", w[0], w[1]);
            }
            for &(s, it) in &released {
                prop_assert_eq!(pushed.get(&it), Some(&s));
                prop_assert!(seen.insert(it));
            }
            let st = b.stats();
            prop_assert_eq!(st.delivered, released.len() as u64);
            prop_assert_eq!(st.delivered, st.in_order + st.reordered);
            prop_assert_eq!(st.delivered + st.duplicates + st.late, pushed.len() as u64);
            prop_assert_eq!(b.depth(), 0);
        }

        /// Memory bound under floods of arbitrary SNs.
        #[test]
        fn flood_of_random_sns_stays_bounded(sns in proptest::collection::vec(any::<u16>(), 1..2000)) {
            let mut b = Buf::new(cfg(32, MS));
            let mut n = 0u64;
            for (i, s) in sns.iter().enumerate() {
                b.push(Sn16(*s), i as u64, i as u64, |_, _| n += 1);
                prop_assert!(b.depth() <= 32);
                prop_assert!(b.arrivals.len() <= 64);
            }
            n += b.flush(|_, _| {}) as u64;
            let st = b.stats();
            prop_assert_eq!(st.delivered, n);
            prop_assert_eq!(st.delivered + st.duplicates + st.late, sns.len() as u64);
        }
    }

    #[test]
    fn initial_sn_holds_packets_that_overtake_the_first_one() {
        let mut b: ReorderBuffer<u32, Sn16> = ReorderBuffer::new(ReorderConfig {
            window: 16,
            timeout_ns: 10,
            ..ReorderConfig::default()
        });
        b.set_initial(Sn16(0));
        let mut got = Vec::new();
        assert_eq!(
            b.push(Sn16(1), 1, 0, |sn, _| got.push(sn.0)),
            PushOutcome::Buffered
        );
        assert_eq!(
            b.push(Sn16(0), 0, 0, |sn, _| got.push(sn.0)),
            PushOutcome::InOrder
        );
        assert_eq!(got, vec![0, 1]);
    }

    #[test]
    fn initial_sn_is_ignored_when_joining_mid_stream() {
        for first in [40_000u16, 20_000, 65_000] {
            let mut b: ReorderBuffer<u32, Sn16> = ReorderBuffer::new(ReorderConfig {
                window: 16,
                timeout_ns: 10,
                ..ReorderConfig::default()
            });
            b.set_initial(Sn16(0));
            let mut got = Vec::new();
            assert_eq!(
                b.push(Sn16(first), 0, 0, |sn, _| got.push(sn.0)),
                PushOutcome::InOrder
            );
            assert_eq!(
                b.push(Sn16(first.wrapping_add(1)), 0, 0, |sn, _| got.push(sn.0)),
                PushOutcome::InOrder
            );
            assert_eq!(got, vec![first, first.wrapping_add(1)]);
        }
    }

    // ----- late delivery, observed skew, path horizon, restarts ---------------------------

    fn new_cfg(window: usize, timeout_ns: u64) -> ReorderConfig {
        ReorderConfig {
            window,
            timeout_ns,
            ..ReorderConfig::default()
        }
    }

    /// A buffer with the shipped defaults whose flow starts at SN 0 (as the engine's do).
    fn new_buf(window: usize, timeout_ns: u64) -> Buf {
        let mut b = Buf::new(new_cfg(window, timeout_ns));
        b.set_initial(Sn16(0));
        b
    }

    /// Push `sn` over path `path` with `live` paths, at `now`, collecting released SNs.
    fn via(
        b: &mut Buf,
        sn: u16,
        now: Instant,
        path: usize,
        live: u8,
        got: &mut Vec<u16>,
    ) -> PushOutcome {
        let v = Via {
            path,
            live,
            hold_ns: 0,
        };
        b.push_via(Sn16(sn), u64::from(sn), now, Some(v), |s, _| got.push(s.0))
    }

    #[test]
    fn a_late_packet_is_delivered_out_of_order_not_dropped() {
        let mut b = new_buf(64, 10 * MS);
        let mut got = vec![];
        push_all(&mut b, &[0, 2, 3], 0, &mut got);
        b.poll(10 * MS, |s, _| got.push(s.0));
        assert_eq!(got, [0, 2, 3], "1 given up on");
        // 1 arrives after all: TCP would otherwise retransmit it.
        assert_eq!(
            b.push(Sn16(1), 1, 12 * MS, |s, _| got.push(s.0)),
            PushOutcome::LateDelivered
        );
        assert_eq!(got, [0, 2, 3, 1]);
        // Delivered now: a second copy is a duplicate.
        assert_eq!(
            b.push(Sn16(1), 1, 13 * MS, |s, _| got.push(s.0)),
            PushOutcome::Duplicate
        );
        let st = b.stats();
        assert_eq!((st.late, st.late_delivered, st.duplicates), (1, 1, 1));
        assert_eq!(st.delivered, 4);
    }

    #[test]
    fn observed_reordering_raises_the_timeout_above_the_configured_one() {
        // Configured 10 ms, but the slow path's packets come 40 ms after their successors.
        let mut b = new_buf(64, 10 * MS);
        let mut got = vec![];
        let mut t = 0;
        let mut sn = 0u16;
        // Pairs: sn+1 arrives at t, sn at t + 8 ms (below the 10 ms timeout, observed).
        for _ in 0..4 {
            push_all(&mut b, &[sn + 1], t, &mut got);
            push_all(&mut b, &[sn], t + 8 * MS, &mut got);
            sn += 2;
            t += 20 * MS;
        }
        assert_eq!(b.stats().skew_ns, 8 * MS);
        assert_eq!(b.effective_timeout(), 16 * MS, "twice the observed skew");
        // Now a 14 ms skew: beyond the configured 10 ms, within the learnt 16 ms.
        push_all(&mut b, &[sn + 1], t, &mut got);
        assert_eq!(
            b.poll(t + 11 * MS, |s, _| got.push(s.0)),
            0,
            "not timed out"
        );
        push_all(&mut b, &[sn], t + 14 * MS, &mut got);
        assert_eq!(b.stats().timeouts, 0);
        assert_eq!(b.stats().late, 0);
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
        assert_eq!(b.stats().timeout_ns, 28 * MS);
    }

    #[test]
    fn a_late_arrival_after_a_timeout_lengthens_the_timeout() {
        let mut b = new_buf(64, 10 * MS);
        let mut got = vec![];
        push_all(&mut b, &[0, 2], 0, &mut got);
        b.poll(10 * MS, |s, _| got.push(s.0));
        push_all(&mut b, &[1], 30 * MS, &mut got);
        assert_eq!(got, [0, 2, 1]);
        // It came 30 ms after its successor: the 10 ms timeout plus 20 ms after the skip.
        assert_eq!(b.stats().skew_ns, 30 * MS);
        assert_eq!(b.effective_timeout(), 60 * MS);
    }

    #[test]
    fn path_horizon_skips_a_loss_once_every_live_path_has_passed_it() {
        // Two live paths (bits 0 and 1), a 1 s timeout: only the horizon can skip early.
        let mut b = new_buf(64, 1000 * MS);
        let mut got = vec![];
        let live = 0b11;
        via(&mut b, 0, 0, 0, live, &mut got);
        via(&mut b, 1, 0, 1, live, &mut got);
        // 2 is lost (it went over path 0). 3 over path 0: path 1 may still carry 2.
        assert_eq!(via(&mut b, 3, MS, 0, live, &mut got), PushOutcome::Buffered);
        assert_eq!(got, [0, 1]);
        // 4 over path 1: both paths are past 2, so it is lost: 3 and 4 go at once.
        via(&mut b, 4, 2 * MS, 1, live, &mut got);
        assert_eq!(got, [0, 1, 3, 4]);
        let st = b.stats();
        assert_eq!((st.horizon_skips, st.gaps_skipped, st.timeouts), (1, 1, 0));
    }

    #[test]
    fn path_horizon_waits_for_a_live_path_not_heard_from() {
        let mut b = new_buf(64, 1000 * MS);
        let mut got = vec![];
        // Path 1 is live but this flow has no packet from it yet (its first may be in flight).
        via(&mut b, 0, 0, 0, 0b11, &mut got);
        assert_eq!(via(&mut b, 2, MS, 0, 0b11, &mut got), PushOutcome::Buffered);
        assert_eq!(via(&mut b, 3, MS, 0, 0b11, &mut got), PushOutcome::Buffered);
        assert_eq!(got, [0]);
        // It arrives: in order, nothing skipped.
        via(&mut b, 1, 40 * MS, 1, 0b11, &mut got);
        assert_eq!(got, [0, 1, 2, 3]);
        assert_eq!(b.stats().gaps_skipped, 0);
    }

    #[test]
    fn a_single_live_path_skips_its_own_loss_at_once() {
        let mut b = new_buf(64, 1000 * MS);
        let mut got = vec![];
        via(&mut b, 0, 0, 0, 0b01, &mut got);
        via(&mut b, 2, MS, 0, 0b01, &mut got);
        assert_eq!(got, [0, 2]);
        assert_eq!(b.stats().gaps_skipped, 1);
    }

    #[test]
    fn a_path_leaving_the_live_set_releases_what_waited_for_it() {
        let mut b = new_buf(64, 1000 * MS);
        let mut got = vec![];
        via(&mut b, 0, 0, 1, 0b11, &mut got);
        via(&mut b, 1, 0, 0, 0b11, &mut got);
        via(&mut b, 3, MS, 0, 0b11, &mut got);
        via(&mut b, 4, MS, 0, 0b11, &mut got);
        assert_eq!(got, [0, 1], "2 may still come over path 1");
        // Path 1 is declared down: its gap is skipped at the next poll, due at once.
        b.forget_path(1);
        assert_eq!(b.next_deadline(), Some(MS));
        b.poll_via(2 * MS, Some(0b01), |s, _| got.push(s.0));
        assert_eq!(got, [0, 1, 3, 4]);
        assert_eq!(b.stats().timeouts, 0);
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn a_stale_mark_suspends_the_horizon() {
        // Path 1 last delivered this flow's packet 1.5 timeouts ago: the rule is suspended.
        let mut b = new_buf(64, 100 * MS);
        let mut got = vec![];
        via(&mut b, 0, 0, 1, 0b11, &mut got);
        via(&mut b, 1, 150 * MS, 0, 0b11, &mut got);
        assert_eq!(
            via(&mut b, 3, 150 * MS, 0, 0b11, &mut got),
            PushOutcome::Buffered
        );
        assert_eq!(got, [0, 1]);
    }

    #[test]
    fn a_restarted_sender_is_followed_after_a_run_of_far_behind_packets() {
        let mut b = new_buf(64, 100 * MS);
        let mut got = vec![];
        let old: Vec<u16> = (30_000..30_100).collect();
        push_all(&mut b, &old, 0, &mut got);
        got.clear();
        // The sender restarts at 0: far behind the release point (30 100) and the history.
        let new: Vec<u16> = (0..40).collect();
        let o = push_all(&mut b, &new, MS, &mut got);
        let stale = DEFAULT_RESYNC_AFTER as usize - 1;
        assert!(o[..stale].iter().all(|x| *x == PushOutcome::Late));
        assert_eq!(o[stale], PushOutcome::InOrder, "resynchronised");
        assert_eq!(got, (stale as u16..40).collect::<Vec<_>>());
        assert_eq!(b.stats().resyncs, 1);
    }

    #[test]
    fn a_few_stale_packets_do_not_resync() {
        let mut b = new_buf(64, 100 * MS);
        let mut got = vec![];
        let sns: Vec<u16> = (1000..1100).collect();
        push_all(&mut b, &sns, 0, &mut got);
        // Stray old packets interleaved with current ones never make a run.
        for k in 0..100u16 {
            push_all(&mut b, &[k, 1100 + k], MS, &mut got);
        }
        assert_eq!(b.stats().resyncs, 0);
        assert_eq!(got.len(), 200);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    proptest! {
        /// With every path FIFO, the horizon never gives up an SN that is still coming: two
        /// paths, SNs spread over them at random, each path delivered in order but interleaved
        /// at random with the other; nothing lost, so nothing is skipped and all is in order.
        #[test]
        fn horizon_never_skips_an_sn_still_in_flight(
            choice in proptest::collection::vec(any::<bool>(), 1..300),
            interleave in proptest::collection::vec(any::<bool>(), 600),
        ) {
            let mut b = new_buf(1024, 1000 * MS);
            let mut paths: [Vec<u16>; 2] = [vec![], vec![]];
            for (sn, &c) in choice.iter().enumerate() {
                paths[usize::from(c)].push(sn as u16);
            }
            let mut got = vec![];
            let (mut i0, mut i1, mut k) = (0, 0, 0);
            while i0 < paths[0].len() || i1 < paths[1].len() {
                let pick1 = i0 >= paths[0].len() || (i1 < paths[1].len() && interleave[k % 600]);
                k += 1;
                if pick1 {
                    via(&mut b, paths[1][i1], MS, 1, 0b11, &mut got);
                    i1 += 1;
                } else {
                    via(&mut b, paths[0][i0], MS, 0, 0b11, &mut got);
                    i0 += 1;
                }
            }
            b.flush(|s, _| got.push(s.0));
            prop_assert_eq!(b.stats().gaps_skipped, 0);
            prop_assert_eq!(got, (0..choice.len() as u16).collect::<Vec<_>>());
        }
    }

    /// The give-ups on missing SNs (timeout, path horizon) skip gaps only: a packet held for
    /// delay equalisation is not missing, and releasing it early gave TCP the fast path's
    /// RTT again (measured: a third of the uplink ACKs at 20 ms instead of 60 ms one way).
    #[test]
    fn timeouts_and_the_path_horizon_never_release_an_equalised_packet_early() {
        let mut b = new_buf(64, 10 * MS);
        let mut got = vec![];
        let live = 0b11;
        let fast = |hold_ns| via_on(0, hold_ns);
        let slow = via_on(1, 0);
        // SN 0 and 1 over the fast path, held 40 ms; SN 1 waits behind 0 (no gap).
        b.push_via(Sn16(0), 0, 0, Some(fast(40 * MS)), |s, _| got.push(s.0));
        b.push_via(Sn16(1), 1, MS, Some(fast(40 * MS)), |s, _| got.push(s.0));
        // The slow path delivers SN 3 (2 is lost): the horizon is 3 on the slow path and 1 on
        // the fast one; its timer (10 ms) expires long before the holds.
        b.push_via(Sn16(3), 3, 2 * MS, Some(slow), |s, _| got.push(s.0));
        b.poll_via(20 * MS, Some(live), |s, _| got.push(s.0));
        assert!(got.is_empty(), "held until 40 ms: {got:?}");
        assert_eq!(b.next_deadline(), Some(40 * MS));
        b.poll_via(40 * MS, Some(live), |s, _| got.push(s.0));
        assert_eq!(got, [0], "SN 1 is due at 41 ms");
        b.poll_via(41 * MS, Some(live), |s, _| got.push(s.0));
        // SN 1 released at its time, then the lost SN 2 skipped (its successor has waited
        // past the timeout) and SN 3 follows.
        assert_eq!(got, [0, 1, 3]);
        assert_eq!(b.stats().gaps_skipped, 1);
    }

    /// Arrival over path `path` of two live paths, held `hold_ns` for equalisation.
    fn via_on(path: usize, hold_ns: u64) -> Via {
        Via {
            path,
            live: 0b11,
            hold_ns,
        }
    }

    #[test]
    fn equalisation_holds_the_fast_paths_packets_to_the_slow_paths_delay() {
        let mut b = new_buf(64, 1000 * MS);
        let mut got = vec![];
        let live = 0b11;
        let fast = |hold_ns| via_on(0, hold_ns);
        // SN 0 over the fast path (40 ms faster): in order, yet held 40 ms.
        let o = b.push_via(Sn16(0), 0, 0, Some(fast(40 * MS)), |s, _| got.push(s.0));
        assert_eq!(o, PushOutcome::Buffered);
        assert_eq!(b.next_deadline(), Some(40 * MS));
        // SN 1 over the slow path (no hold) waits behind it.
        let slow = Via {
            path: 1,
            live,
            hold_ns: 0,
        };
        b.push_via(Sn16(1), 1, 10 * MS, Some(slow), |s, _| got.push(s.0));
        assert!(got.is_empty());
        b.poll_via(39 * MS, Some(live), |s, _| got.push(s.0));
        assert!(got.is_empty(), "not before 40 ms");
        b.poll_via(40 * MS, Some(live), |s, _| got.push(s.0));
        assert_eq!(got, [0, 1]);
        assert_eq!(b.stats().equalized, 1);
        // A second copy of a held head is a duplicate.
        b.push_via(Sn16(2), 2, 50 * MS, Some(fast(40 * MS)), |s, _| {
            got.push(s.0)
        });
        assert_eq!(
            b.push_via(Sn16(2), 2, 51 * MS, Some(slow), |s, _| got.push(s.0)),
            PushOutcome::Duplicate
        );
        assert_eq!(b.flush(|s, _| got.push(s.0)), 1);
        assert_eq!(got, [0, 1, 2]);
    }
}

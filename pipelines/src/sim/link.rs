//! A deterministic emulated link: our replacement for Linux `netem` + `tbf`, sans-IO.
//!
//! Model, per packet offered with [`EmulatedLink::send`] at time `now`:
//!
//! 1. Link down: dropped (`DroppedDown`).
//! 2. Loss: an i.i.d. draw against [`LinkConfig::loss`], and, when configured, a two-state
//!    Gilbert-Elliott chain ([`GilbertElliott`]). Like netem, a lost packet is dropped before the
//!    queue and does not use transmitter time.
//! 3. Queue and serialization (when `rate_bps > 0`): the transmitter sends one packet at a time,
//!    `tx_start = max(now, busy_until)`, `busy_until = tx_start + len * 8 / rate` (kept exact to
//!    the nanosecond with a carried remainder, so 1000 packets do not accumulate rounding). The
//!    queue holds the bytes not yet serialized at `now`; a packet that would push it beyond
//!    `queue_limit_bytes` is tail-dropped (`DroppedQueueFull`), like `bfifo`.
//! 4. Propagation: `arrival = busy_until + delay ± jitter` (uniform, netem's default
//!    distribution). Without reordering the link is a FIFO: `arrival = max(arrival,
//!    last_arrival)`, so jitter never reorders. With probability `reorder` a packet instead gets
//!    `delay - reorder_gap_ns` (saturating; the default gap skips the whole delay, as netem's
//!    reordered packets are "sent immediately") and is exempt from the FIFO clamp, so it may
//!    overtake packets sent earlier.
//! 5. Duplication: with probability `duplicate` a clone is sent right after the original through
//!    steps 3-4 (own serialization time and jitter, no second loss draw).
//!
//! All randomness comes from one `Pcg64` seeded with [`LinkConfig::seed`]; each call to `send`
//! on an up link consumes the same number of draws (plus one per duplicate) whatever the probabilities are (common random
//! numbers), so two runs that differ only in, say, the loss rate see the same jitter samples.
//! Delivery order is decided by a binary heap keyed by `(arrival, insertion counter)`: equal
//! arrival times pop in send order, and the whole thing is reproducible bit for bit.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rand::{Rng, RngCore, SeedableRng};
use rand_pcg::Pcg64;

use crate::buf::{HeapBuf, PacketBuf};
use crate::flow::Instant;

/// Nanoseconds per second, for the serialization arithmetic.
const NS_PER_S: u128 = 1_000_000_000;

/// The size a packet occupies on the emulated wire, in bytes (what the rate and the queue
/// limit count).
pub trait WireLen {
    /// Bytes on the wire.
    fn wire_len(&self) -> usize;
}

impl WireLen for Vec<u8> {
    fn wire_len(&self) -> usize {
        self.len()
    }
}

impl WireLen for HeapBuf {
    fn wire_len(&self) -> usize {
        PacketBuf::len(self)
    }
}

impl<T: WireLen + ?Sized> WireLen for &T {
    fn wire_len(&self) -> usize {
        (**self).wire_len()
    }
}

/// Two-state Markov loss model (Gilbert-Elliott, as netem's `loss gemodel`): in the Good state
/// nothing is lost by this model (the i.i.d. [`LinkConfig::loss`] still applies), in the Bad state
/// each packet is lost with probability `loss_in_bad`. The chain steps once per packet offered to
/// an up link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GilbertElliott {
    /// Per-packet probability of moving Good -> Bad.
    pub p_good_to_bad: f64,
    /// Per-packet probability of moving Bad -> Good. The mean sojourn in Bad (the mean loss
    /// burst length when `loss_in_bad = 1`) is `1 / p_bad_to_good` packets.
    pub p_bad_to_good: f64,
    /// Per-packet loss probability while in Bad.
    pub loss_in_bad: f64,
}

impl GilbertElliott {
    /// A model with lossless Bad-state bursts of `mean_burst_len` packets (>= 1) and a long-run
    /// loss rate of `loss_rate` (in (0, 1)); `loss_in_bad = 1`.
    pub fn from_bursts(mean_burst_len: f64, loss_rate: f64) -> Self {
        let p_bg = 1.0 / mean_burst_len.max(1.0);
        let r = loss_rate.clamp(0.0, 0.999_999);
        // Stationary P(Bad) = p_gb / (p_gb + p_bg) = r  =>  p_gb = r * p_bg / (1 - r).
        let p_gb = (r * p_bg / (1.0 - r)).min(1.0);
        GilbertElliott {
            p_good_to_bad: p_gb,
            p_bad_to_good: p_bg,
            loss_in_bad: 1.0,
        }
    }

    /// Mean number of consecutive packets spent in Bad.
    pub fn mean_burst_len(&self) -> f64 {
        1.0 / self.p_bad_to_good
    }

    /// Long-run loss rate of this model alone.
    pub fn stationary_loss(&self) -> f64 {
        let sum = self.p_good_to_bad + self.p_bad_to_good;
        if sum <= 0.0 {
            return 0.0;
        }
        self.p_good_to_bad / sum * self.loss_in_bad
    }
}

/// What happens to packets already accepted when the link goes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownPolicy {
    /// Packets queued or propagating (arrival after the moment the link goes down) are dropped
    /// and counted in `dropped_down`; the transmitter queue is emptied. Packets whose arrival
    /// time has already passed stay deliverable: they reached the far end, only the receiver has
    /// not polled yet.
    #[default]
    DropInFlight,
    /// Everything already accepted is still delivered on schedule; only new sends are dropped.
    DeliverInFlight,
}

/// Parameters of an [`EmulatedLink`]. Build with `LinkConfig::default().with_...(...)`.
///
/// Probabilities are compared as `draw < p` with `draw` uniform in `[0, 1)`: `0` (or NaN, or a
/// negative value) never fires, `1` (or more) always does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Transmitter rate in bit/s; `0` means unlimited (no serialization time and no queue).
    pub rate_bps: u64,
    /// One-way propagation delay, ns.
    pub delay_ns: u64,
    /// Jitter, ns: each packet's delay is uniform in `[delay - jitter, delay + jitter]`
    /// (clamped at 0), like netem's `delay D J`.
    pub jitter_ns: u64,
    /// i.i.d. per-packet loss probability.
    pub loss: f64,
    /// Optional correlated (bursty) loss, applied in addition to `loss`.
    pub burst_loss: Option<GilbertElliott>,
    /// Probability that a packet is reordered: it gets `delay - reorder_gap_ns` without jitter
    /// and may overtake earlier packets.
    pub reorder: f64,
    /// How much earlier than `delay` a reordered packet arrives (saturating). Default
    /// `u64::MAX`: the whole delay is skipped, as netem does.
    pub reorder_gap_ns: u64,
    /// Per-packet duplication probability.
    pub duplicate: f64,
    /// Tail-drop limit on the bytes not yet serialized. Default `usize::MAX` (unbounded).
    /// Ignored when `rate_bps == 0`, as there is then no queue.
    pub queue_limit_bytes: usize,
    /// Whether the link carries traffic.
    pub up: bool,
    /// What going down does to packets already accepted.
    pub down_policy: DownPolicy,
    /// Seed of the link's random generator (used at construction only).
    pub seed: u64,
}

impl Default for LinkConfig {
    /// A perfect link: unlimited rate, no delay, no loss, up, seed 0.
    fn default() -> Self {
        LinkConfig {
            rate_bps: 0,
            delay_ns: 0,
            jitter_ns: 0,
            loss: 0.0,
            burst_loss: None,
            reorder: 0.0,
            reorder_gap_ns: u64::MAX,
            duplicate: 0.0,
            queue_limit_bytes: usize::MAX,
            up: true,
            down_policy: DownPolicy::DropInFlight,
            seed: 0,
        }
    }
}

impl LinkConfig {
    /// Sets the rate in bit/s (0 = unlimited).
    pub fn with_rate_bps(mut self, rate_bps: u64) -> Self {
        self.rate_bps = rate_bps;
        self
    }
    /// Sets the propagation delay in ns.
    pub fn with_delay_ns(mut self, delay_ns: u64) -> Self {
        self.delay_ns = delay_ns;
        self
    }
    /// Sets the jitter in ns.
    pub fn with_jitter_ns(mut self, jitter_ns: u64) -> Self {
        self.jitter_ns = jitter_ns;
        self
    }
    /// Sets the i.i.d. loss probability.
    pub fn with_loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }
    /// Sets (or clears) the Gilbert-Elliott burst loss model.
    pub fn with_burst_loss(mut self, ge: Option<GilbertElliott>) -> Self {
        self.burst_loss = ge;
        self
    }
    /// Sets the reorder probability and gap (ns).
    pub fn with_reorder(mut self, reorder: f64, gap_ns: u64) -> Self {
        self.reorder = reorder;
        self.reorder_gap_ns = gap_ns;
        self
    }
    /// Sets the duplication probability.
    pub fn with_duplicate(mut self, duplicate: f64) -> Self {
        self.duplicate = duplicate;
        self
    }
    /// Sets the tail-drop queue limit in bytes.
    pub fn with_queue_limit_bytes(mut self, limit: usize) -> Self {
        self.queue_limit_bytes = limit;
        self
    }
    /// Sets the initial up/down state.
    pub fn with_up(mut self, up: bool) -> Self {
        self.up = up;
        self
    }
    /// Sets what going down does to packets in flight.
    pub fn with_down_policy(mut self, policy: DownPolicy) -> Self {
        self.down_policy = policy;
        self
    }
    /// Sets the random seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// The fate of one packet offered to [`EmulatedLink::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted; it will come out of [`EmulatedLink::poll`] (possibly twice, if duplicated).
    Queued,
    /// Lost (i.i.d. or burst loss).
    DroppedLoss,
    /// Tail-dropped: the transmitter queue was full.
    DroppedQueueFull,
    /// The link is down.
    DroppedDown,
}

/// Counters of an [`EmulatedLink`]. At any time
/// `sent + duplicated == delivered + dropped_loss + dropped_queue + dropped_down + in_flight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Packets offered to `send` (whatever their fate).
    pub sent: u64,
    /// Packets returned by `poll` (duplicates included).
    pub delivered: u64,
    /// Packets lost.
    pub dropped_loss: u64,
    /// Packets (or duplicates) tail-dropped.
    pub dropped_queue: u64,
    /// Packets dropped because the link was down, or in flight when it went down.
    pub dropped_down: u64,
    /// Duplicates created.
    pub duplicated: u64,
    /// Packets given the reorder treatment.
    pub reordered: u64,
    /// Bytes offered to `send`.
    pub bytes_sent: u64,
    /// Bytes returned by `poll`.
    pub bytes_delivered: u64,
    /// Highest transmitter queue occupancy seen, in bytes (the accepted packet included).
    pub max_queue_bytes: usize,
}

/// One packet in flight. Ordered by `(arrival, seq)` only, reversed so that `BinaryHeap` (a
/// max-heap) pops the earliest first.
struct InFlight<T> {
    arrival: Instant,
    seq: u64,
    len: usize,
    pkt: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.arrival, self.seq) == (other.arrival, other.seq)
    }
}
impl<T> Eq for InFlight<T> {}
impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for InFlight<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.arrival, other.seq).cmp(&(self.arrival, self.seq))
    }
}

/// The random numbers one `send` consumes, always all of them (see the module docs).
struct Draws {
    loss: f64,
    ge_loss: f64,
    ge_step: f64,
    duplicate: f64,
    reorder: f64,
    jitter: u64,
}

/// A one-way emulated link carrying packets of type `T`. Sans-IO: time is an argument.
pub struct EmulatedLink<T> {
    cfg: LinkConfig,
    up: bool,
    rng: Pcg64,
    /// Gilbert-Elliott state: true = Bad.
    ge_bad: bool,
    /// The transmitter is busy until `busy_until + busy_frac / rate_bps` ns.
    busy_until: Instant,
    /// Sub-nanosecond remainder of `busy_until`, in units of `1 / rate_bps` ns.
    busy_frac: u128,
    /// Latest arrival given to a non-reordered packet (the FIFO clamp).
    last_arrival: Instant,
    next_seq: u64,
    heap: BinaryHeap<InFlight<T>>,
    stats: LinkStats,
}

impl<T: WireLen + Clone> EmulatedLink<T> {
    /// A link with the given configuration; its generator is seeded from `cfg.seed`.
    pub fn new(cfg: LinkConfig) -> Self {
        Self::with_capacity(cfg, 0)
    }

    /// Like [`new`](Self::new), preallocating room for `capacity` packets in flight so that
    /// `send` does not allocate until that many are pending.
    pub fn with_capacity(cfg: LinkConfig, capacity: usize) -> Self {
        EmulatedLink {
            cfg,
            up: cfg.up,
            rng: Pcg64::seed_from_u64(cfg.seed),
            ge_bad: false,
            busy_until: 0,
            busy_frac: 0,
            last_arrival: 0,
            next_seq: 0,
            heap: BinaryHeap::with_capacity(capacity),
            stats: LinkStats::default(),
        }
    }

    /// Offers `pkt` to the link at time `now`. See the module docs for the model.
    pub fn send(&mut self, pkt: T, now: Instant) -> SendOutcome {
        let len = pkt.wire_len();
        self.stats.sent += 1;
        self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(len as u64);
        if !self.up {
            self.stats.dropped_down += 1;
            return SendOutcome::DroppedDown;
        }
        let d = self.draw();
        // `|`, not `||`: the Gilbert-Elliott chain must step on every packet.
        if self.burst_lost(&d) | (d.loss < self.cfg.loss) {
            self.stats.dropped_loss += 1;
            return SendOutcome::DroppedLoss;
        }
        let reorder = d.reorder < self.cfg.reorder;
        let dup = (d.duplicate < self.cfg.duplicate).then(|| pkt.clone());
        if !self.enqueue(pkt, len, now, reorder, d.jitter) {
            self.stats.dropped_queue += 1;
            return SendOutcome::DroppedQueueFull;
        }
        if reorder {
            self.stats.reordered += 1;
        }
        if let Some(copy) = dup {
            self.stats.duplicated += 1;
            // The copy gets its own jitter sample. This extra draw happens only when
            // duplicating, so common random numbers hold across configurations with the same
            // `duplicate` probability (determinism itself never depends on it).
            let jitter = self.rng.next_u64();
            if !self.enqueue(copy, len, now, false, jitter) {
                self.stats.dropped_queue += 1;
            }
        }
        SendOutcome::Queued
    }

    /// Pops the next packet whose arrival time is `<= now`.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        self.poll_with_arrival(now).map(|(_, pkt)| pkt)
    }

    /// Like [`poll`](Self::poll), also returning the packet's arrival time (which may be before
    /// `now` if the caller polls late).
    pub fn poll_with_arrival(&mut self, now: Instant) -> Option<(Instant, T)> {
        if self.heap.peek()?.arrival > now {
            return None;
        }
        let e = self.heap.pop()?;
        self.stats.delivered += 1;
        self.stats.bytes_delivered = self.stats.bytes_delivered.saturating_add(e.len as u64);
        Some((e.arrival, e.pkt))
    }

    /// Arrival time of the next packet, if any is in flight.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.arrival)
    }

    /// Brings the link up or down at `now`. Going down applies the configured [`DownPolicy`].
    pub fn set_up(&mut self, up: bool, now: Instant) {
        self.cfg.up = up;
        if self.up == up {
            return;
        }
        self.up = up;
        if up || self.cfg.down_policy == DownPolicy::DeliverInFlight {
            return;
        }
        // DropInFlight: keep what has already arrived, drop the rest, empty the transmitter.
        let before = self.heap.len();
        self.heap.retain(|e| e.arrival <= now);
        self.stats.dropped_down += (before - self.heap.len()) as u64;
        if self.busy_until > now {
            self.busy_until = now;
            self.busy_frac = 0;
        }
        self.last_arrival = self.last_arrival.min(now);
    }

    /// Replaces the configuration at `now`. Rate, delay, jitter, loss, reorder, duplication
    /// and queue limit apply to packets sent from now on; packets already accepted keep the
    /// arrival time they were given. A change of `up` acts as [`set_up`](Self::set_up). The
    /// seed is not re-applied (the generator keeps its stream) and the Gilbert-Elliott state is
    /// kept.
    pub fn set_config(&mut self, cfg: LinkConfig, now: Instant) {
        if cfg.rate_bps != self.cfg.rate_bps && self.busy_frac != 0 {
            // The remainder is in units of the old rate; round the busy time up to whole ns.
            self.busy_until = self.busy_until.saturating_add(1);
            self.busy_frac = 0;
        }
        let up = cfg.up;
        // Apply the down policy of the new configuration.
        self.cfg = LinkConfig { up: self.up, ..cfg };
        self.set_up(up, now);
    }

    /// The current configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.cfg
    }

    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Packets accepted and not yet polled (queued, propagating, or arrived but not polled).
    pub fn in_flight(&self) -> usize {
        self.heap.len()
    }

    /// Bytes not yet serialized at `now` (the transmitter queue occupancy, rounded up).
    pub fn queue_bytes(&self, now: Instant) -> usize {
        let rate = u128::from(self.cfg.rate_bps);
        if rate == 0 || self.busy_until <= now {
            return 0;
        }
        let remaining_ns = u128::from(self.busy_until - now);
        // bytes = ceil(remaining_ns * rate / (8 * 1e9)); saturating: u64 * u64 fits in u128,
        // the sum of two such products might not.
        let num = remaining_ns.saturating_mul(rate);
        let bytes = num.div_ceil(8 * NS_PER_S);
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }

    fn draw(&mut self) -> Draws {
        Draws {
            loss: self.rng.gen(),
            ge_loss: self.rng.gen(),
            ge_step: self.rng.gen(),
            duplicate: self.rng.gen(),
            reorder: self.rng.gen(),
            jitter: self.rng.next_u64(),
        }
    }

    /// Decides loss in the current Gilbert-Elliott state, then steps the chain.
    fn burst_lost(&mut self, d: &Draws) -> bool {
        let Some(ge) = self.cfg.burst_loss else {
            return false;
        };
        let lost = self.ge_bad && d.ge_loss < ge.loss_in_bad;
        self.ge_bad = if self.ge_bad {
            d.ge_step >= ge.p_bad_to_good
        } else {
            d.ge_step < ge.p_good_to_bad
        };
        lost
    }

    /// Serializes and schedules one packet; false if the queue is full.
    fn enqueue(&mut self, pkt: T, len: usize, now: Instant, reorder: bool, jitter: u64) -> bool {
        let depart = if self.cfg.rate_bps == 0 {
            now
        } else {
            let backlog = self.queue_bytes(now);
            let occupancy = backlog.saturating_add(len);
            if occupancy > self.cfg.queue_limit_bytes {
                return false;
            }
            self.stats.max_queue_bytes = self.stats.max_queue_bytes.max(occupancy);
            if now > self.busy_until {
                // The transmitter was idle: it starts afresh at `now`.
                self.busy_until = now;
                self.busy_frac = 0;
            }
            // tx time = len * 8 * 1e9 / rate ns, carried exactly via the remainder.
            let rate = u128::from(self.cfg.rate_bps);
            let num = (len as u128)
                .saturating_mul(8 * NS_PER_S)
                .saturating_add(self.busy_frac);
            let whole = u64::try_from(num / rate).unwrap_or(u64::MAX);
            self.busy_frac = num % rate;
            self.busy_until = self.busy_until.saturating_add(whole);
            self.busy_until
        };
        let arrival = if reorder {
            depart.saturating_add(self.cfg.delay_ns.saturating_sub(self.cfg.reorder_gap_ns))
        } else {
            let a = depart
                .saturating_add(self.jittered_delay(jitter))
                .max(self.last_arrival);
            self.last_arrival = a;
            a
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(InFlight {
            arrival,
            seq,
            len,
            pkt,
        });
        true
    }

    /// `delay + U[-jitter, +jitter]`, clamped to `[0, u64::MAX]`, from one 64-bit draw.
    /// Jitter is capped at 2^62 ns (146 years) so the multiply below cannot overflow.
    fn jittered_delay(&self, draw: u64) -> u64 {
        let j = u128::from(self.cfg.jitter_ns.min(1 << 62));
        if j == 0 {
            return self.cfg.delay_ns;
        }
        let span = 2 * j + 1;
        // Multiply-shift maps the draw onto [0, span) with negligible bias.
        let offset = (u128::from(draw) * span) >> 64;
        let d = u128::from(self.cfg.delay_ns) + offset;
        u64::try_from(d.saturating_sub(j)).unwrap_or(u64::MAX)
    }
}

impl<T> core::fmt::Debug for EmulatedLink<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EmulatedLink")
            .field("cfg", &self.cfg)
            .field("up", &self.up)
            .field("in_flight", &self.heap.len())
            .field("busy_until", &self.busy_until)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::MS;
    use crate::sim::clock::{next_event, VirtualClock};
    use proptest::prelude::*;

    const US: u64 = 1_000;

    /// A packet that carries its id in its first 4 bytes and is `len` bytes long.
    fn pkt(id: u32, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len.max(4)];
        v[..4].copy_from_slice(&id.to_be_bytes());
        v
    }

    fn id(p: &[u8]) -> u32 {
        u32::from_be_bytes([p[0], p[1], p[2], p[3]])
    }

    /// Pops everything by jumping from arrival to arrival; returns (arrival, id).
    fn drain(link: &mut EmulatedLink<Vec<u8>>) -> Vec<(Instant, u32)> {
        let mut clock = VirtualClock::new(0);
        let mut out = Vec::new();
        while let Some(t) = clock.advance_to_next([link.next_arrival()]) {
            if t > 0 {
                assert!(link.poll(t - 1).is_none(), "nothing is delivered early");
            }
            while let Some((a, p)) = link.poll_with_arrival(t) {
                assert!(a <= t);
                out.push((a, id(&p)));
            }
        }
        out
    }

    fn check_conservation(s: &LinkStats, in_flight: usize) {
        assert_eq!(
            s.sent + s.duplicated,
            s.delivered + s.dropped_loss + s.dropped_queue + s.dropped_down + in_flight as u64,
            "{s:?}, in flight {in_flight}"
        );
    }

    #[test]
    fn same_seed_gives_identical_delivery_sequence() {
        let cfg = LinkConfig::default()
            .with_rate_bps(50_000_000)
            .with_delay_ns(20 * MS)
            .with_jitter_ns(5 * MS)
            .with_loss(0.05)
            .with_reorder(0.1, 3 * MS)
            .with_duplicate(0.05)
            .with_queue_limit_bytes(60_000)
            .with_seed(42);
        let run = |cfg: LinkConfig| {
            let mut l = EmulatedLink::new(cfg);
            let outcomes: Vec<_> = (0..2000u32)
                .map(|i| {
                    l.send(
                        pkt(i, 200 + (i as usize * 37) % 1300),
                        u64::from(i) * 50 * US,
                    )
                })
                .collect();
            (outcomes, drain(&mut l), *l.stats())
        };
        let a = run(cfg);
        assert_eq!(a, run(cfg));
        assert_ne!(a.1, run(cfg.with_seed(43)).1, "the seed must matter");
        assert!(a.2.dropped_loss > 0 && a.2.duplicated > 0 && a.2.reordered > 0);
    }

    #[test]
    fn rate_10mbps_serializes_1000_packets_of_1250_bytes_in_1s() {
        let delay = 7 * MS;
        let mut l = EmulatedLink::new(
            LinkConfig::default()
                .with_rate_bps(10_000_000)
                .with_delay_ns(delay),
        );
        for i in 0..1000 {
            assert_eq!(l.send(pkt(i, 1250), 0), SendOutcome::Queued);
        }
        assert_eq!(l.stats().max_queue_bytes, 1_250_000);
        assert_eq!(l.queue_bytes(0), 1_250_000);
        assert_eq!(l.queue_bytes(500 * MS), 625_000);
        let out = drain(&mut l);
        assert_eq!(out.len(), 1000);
        // First departs after 1 ms of serialization.
        assert_eq!(out[0].0, MS + delay);
        let last = out[999].0;
        assert!(
            last.abs_diff(1000 * MS + delay) <= US,
            "last arrival {last}"
        );
        assert!(out.windows(2).all(|w| w[1].0 - w[0].0 == MS));
    }

    #[test]
    fn serialization_remainder_is_carried_exactly() {
        // 1 byte at 3 Mbit/s = 2666.67 ns; three of them take exactly 8000 ns.
        let mut l = EmulatedLink::new(LinkConfig::default().with_rate_bps(3_000_000));
        for i in 0..3 {
            let _ = l.send(vec![i; 1], 0);
        }
        let arrivals: Vec<_> = std::iter::from_fn(|| l.poll_with_arrival(u64::MAX))
            .map(|(a, _)| a)
            .collect();
        assert_eq!(arrivals, vec![2666, 5333, 8000]);
    }

    #[test]
    fn delay_and_jitter_bounds_are_respected() {
        let (delay, jitter) = (30 * MS, 4 * MS);
        let mut l = EmulatedLink::new(
            LinkConfig::default()
                .with_delay_ns(delay)
                .with_jitter_ns(jitter)
                .with_seed(7),
        );
        // Widely spaced sends: the FIFO clamp never engages, so we see the raw samples.
        let n = 5000u32;
        for i in 0..n {
            let _ = l.send(pkt(i, 100), u64::from(i) * 20 * MS);
        }
        let out = drain(&mut l);
        assert_eq!(out.len(), n as usize);
        let d: Vec<u64> = out
            .iter()
            .map(|&(a, i)| a - u64::from(i) * 20 * MS)
            .collect();
        let (lo, hi) = (*d.iter().min().unwrap(), *d.iter().max().unwrap());
        assert!(lo >= delay - jitter && hi <= delay + jitter, "{lo}..{hi}");
        // The whole range is used (uniform), and the mean is the configured delay.
        assert!(
            lo < delay - jitter + 50 * US && hi > delay + jitter - 50 * US,
            "{lo}..{hi}"
        );
        let mean = d.iter().sum::<u64>() / u64::from(n);
        assert!(mean.abs_diff(delay) < 100 * US, "mean {mean}");
    }

    #[test]
    fn jitter_larger_than_delay_clamps_at_zero() {
        let mut l = EmulatedLink::new(
            LinkConfig::default()
                .with_delay_ns(MS)
                .with_jitter_ns(5 * MS),
        );
        for i in 0..1000 {
            let _ = l.send(pkt(i, 10), u64::from(i) * 100 * MS);
        }
        for (a, i) in drain(&mut l) {
            let d = a - u64::from(i) * 100 * MS;
            assert!(d <= 6 * MS);
        }
    }

    #[test]
    fn jitter_does_not_reorder_without_reorder_option() {
        let mut l = EmulatedLink::new(
            LinkConfig::default()
                .with_delay_ns(10 * MS)
                .with_jitter_ns(5 * MS)
                .with_seed(3),
        );
        // 10 µs apart with ±5 ms jitter: raw samples would reorder almost every packet.
        for i in 0..5000 {
            let _ = l.send(pkt(i, 100), u64::from(i) * 10 * US);
        }
        let out = drain(&mut l);
        assert_eq!(out.len(), 5000);
        assert!(out.windows(2).all(|w| w[0].1 < w[1].1), "FIFO order");
        // Each packet is still within its own upper bound.
        assert!(out
            .iter()
            .all(|&(a, i)| a <= u64::from(i) * 10 * US + 15 * MS));
        assert_eq!(l.stats().reordered, 0);
    }

    #[test]
    fn reorder_lets_packets_overtake() {
        let mut l = EmulatedLink::new(
            LinkConfig::default()
                .with_delay_ns(10 * MS)
                .with_reorder(0.25, 8 * MS)
                .with_seed(5),
        );
        let n = 4000;
        for i in 0..n {
            let _ = l.send(pkt(i, 100), u64::from(i) * 100 * US);
        }
        let out = drain(&mut l);
        let s = *l.stats();
        let frac = s.reordered as f64 / f64::from(n);
        assert!((frac - 0.25).abs() < 0.03, "reordered fraction {frac}");
        let inversions = out.windows(2).filter(|w| w[0].1 > w[1].1).count();
        assert!(inversions > 100, "{inversions} inversions");
        // A reordered packet gets delay - gap = 2 ms exactly; others get 10 ms.
        for &(a, i) in &out {
            let d = a - u64::from(i) * 100 * US;
            assert!(d == 2 * MS || d == 10 * MS, "delay {d}");
        }
    }

    #[test]
    fn reorder_default_gap_skips_whole_delay() {
        let mut l = EmulatedLink::new(
            LinkConfig::default()
                .with_delay_ns(10 * MS)
                .with_reorder(1.0, u64::MAX),
        );
        let _ = l.send(pkt(1, 10), 3 * MS);
        assert_eq!(l.next_arrival(), Some(3 * MS));
    }

    #[test]
    fn iid_loss_2_percent_over_100k_packets() {
        let mut l = EmulatedLink::new(LinkConfig::default().with_loss(0.02).with_seed(11));
        let n = 100_000u32;
        let mut lost = 0u32;
        for i in 0..n {
            if l.send(pkt(i, 4), 0) == SendOutcome::DroppedLoss {
                lost += 1;
            }
        }
        let rate = f64::from(lost) / f64::from(n);
        assert!((rate - 0.02).abs() <= 0.003, "loss rate {rate}");
        assert_eq!(l.stats().dropped_loss, u64::from(lost));
        assert_eq!(l.in_flight() as u32, n - lost);
    }

    /// Mean length of runs of consecutive losses.
    fn mean_burst(lost: &[bool]) -> f64 {
        let (mut bursts, mut total, mut run) = (0u32, 0u32, 0u32);
        for &x in lost.iter().chain([false].iter()) {
            if x {
                run += 1;
            } else if run > 0 {
                bursts += 1;
                total += run;
                run = 0;
            }
        }
        f64::from(total) / f64::from(bursts.max(1))
    }

    #[test]
    fn gilbert_elliott_produces_bursts_of_configured_mean_length() {
        let ge = GilbertElliott {
            p_good_to_bad: 0.01,
            p_bad_to_good: 0.25,
            loss_in_bad: 1.0,
        };
        assert_eq!(ge.mean_burst_len(), 4.0);
        let run = |cfg: LinkConfig| {
            let mut l = EmulatedLink::new(cfg);
            (0..200_000u32)
                .map(|i| l.send(pkt(i, 4), 0) == SendOutcome::DroppedLoss)
                .collect::<Vec<_>>()
        };
        let lost = run(LinkConfig::default().with_burst_loss(Some(ge)).with_seed(9));
        let mb = mean_burst(&lost);
        assert!((mb - 4.0).abs() < 0.3, "mean burst {mb}");
        let rate = lost.iter().filter(|&&x| x).count() as f64 / lost.len() as f64;
        assert!((rate - ge.stationary_loss()).abs() < 0.005, "loss {rate}");
        // The same loss rate, i.i.d., gives bursts barely longer than one packet.
        let iid = run(LinkConfig::default()
            .with_loss(ge.stationary_loss())
            .with_seed(9));
        assert!(mean_burst(&iid) < 1.2);
    }

    #[test]
    fn gilbert_elliott_from_bursts_matches_targets() {
        let ge = GilbertElliott::from_bursts(5.0, 0.03);
        assert!((ge.mean_burst_len() - 5.0).abs() < 1e-9);
        assert!((ge.stationary_loss() - 0.03).abs() < 1e-9);
    }

    #[test]
    fn queue_limit_tail_drops() {
        // 1 Mbit/s: 1000 B take 8 ms.
        let mut l = EmulatedLink::new(
            LinkConfig::default()
                .with_rate_bps(1_000_000)
                .with_queue_limit_bytes(10_000),
        );
        let outcomes: Vec<_> = (0..15).map(|i| l.send(pkt(i, 1000), 0)).collect();
        assert!(outcomes[..10].iter().all(|&o| o == SendOutcome::Queued));
        assert!(outcomes[10..]
            .iter()
            .all(|&o| o == SendOutcome::DroppedQueueFull));
        assert_eq!(l.stats().dropped_queue, 5);
        assert_eq!(l.stats().max_queue_bytes, 10_000);
        // After one packet time, room for exactly one more.
        assert_eq!(l.send(pkt(20, 1000), 8 * MS), SendOutcome::Queued);
        assert_eq!(l.send(pkt(21, 1000), 8 * MS), SendOutcome::DroppedQueueFull);
        let ids: Vec<u32> = drain(&mut l).into_iter().map(|(_, i)| i).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20]);
        check_conservation(l.stats(), l.in_flight());
    }

    #[test]
    fn unlimited_rate_has_no_queue() {
        let mut l = EmulatedLink::new(LinkConfig::default().with_queue_limit_bytes(10));
        for i in 0..100 {
            assert_eq!(l.send(pkt(i, 1500), 0), SendOutcome::Queued);
        }
        assert_eq!(l.queue_bytes(0), 0);
        assert_eq!(l.stats().max_queue_bytes, 0);
    }

    #[test]
    fn link_down_drops_in_flight_and_new_sends_and_counts_them() {
        let mut l = EmulatedLink::new(LinkConfig::default().with_delay_ns(10 * MS));
        for i in 0..5 {
            let _ = l.send(pkt(i, 100), u64::from(i) * MS); // arrivals 10..14 ms
        }
        // At 12 ms packets 0..=2 have arrived (unpolled); 3 and 4 are on the wire.
        l.set_up(false, 12 * MS);
        assert!(!l.is_up());
        assert_eq!(l.stats().dropped_down, 2);
        assert_eq!(l.send(pkt(9, 100), 13 * MS), SendOutcome::DroppedDown);
        assert_eq!(l.stats().dropped_down, 3);
        let ids: Vec<u32> = drain(&mut l).into_iter().map(|(_, i)| i).collect();
        assert_eq!(ids, [0, 1, 2]);
        l.set_up(true, 20 * MS);
        assert_eq!(l.send(pkt(10, 100), 20 * MS), SendOutcome::Queued);
        assert_eq!(l.next_arrival(), Some(30 * MS));
        check_conservation(l.stats(), l.in_flight());
    }

    #[test]
    fn link_down_empties_the_transmitter_queue() {
        let mut l = EmulatedLink::new(LinkConfig::default().with_rate_bps(1_000_000));
        for i in 0..10 {
            let _ = l.send(pkt(i, 1000), 0);
        }
        l.set_up(false, 4 * MS);
        assert_eq!(l.queue_bytes(4 * MS), 0);
        assert_eq!(l.stats().dropped_down, 10);
        l.set_up(true, 4 * MS);
        let _ = l.send(pkt(99, 1000), 4 * MS);
        assert_eq!(l.next_arrival(), Some(12 * MS), "no stale busy time");
    }

    #[test]
    fn link_down_with_deliver_policy_keeps_in_flight() {
        let mut l = EmulatedLink::new(
            LinkConfig::default()
                .with_delay_ns(10 * MS)
                .with_down_policy(DownPolicy::DeliverInFlight),
        );
        for i in 0..5 {
            let _ = l.send(pkt(i, 100), 0);
        }
        l.set_up(false, MS);
        assert_eq!(l.send(pkt(5, 100), 2 * MS), SendOutcome::DroppedDown);
        assert_eq!(drain(&mut l).len(), 5);
        assert_eq!(l.stats().dropped_down, 1);
    }

    #[test]
    fn link_configured_down_starts_down() {
        let mut l = EmulatedLink::new(LinkConfig::default().with_up(false));
        assert_eq!(l.send(pkt(0, 1), 0), SendOutcome::DroppedDown);
        let cfg = *l.config();
        l.set_config(cfg.with_up(true), 1);
        assert_eq!(l.send(pkt(0, 1), 1), SendOutcome::Queued);
    }

    #[test]
    fn config_changes_apply_to_later_packets_only() {
        let base = LinkConfig::default().with_delay_ns(10 * MS);
        let mut l = EmulatedLink::new(base);
        let _ = l.send(pkt(0, 100), 0);
        l.set_config(base.with_delay_ns(MS).with_rate_bps(800_000), MS);
        // Already accepted: keeps its 10 ms arrival.
        assert_eq!(l.next_arrival(), Some(10 * MS));
        // Sent at 20 ms: 100 B at 800 kbit/s = 1 ms, then 1 ms delay.
        let _ = l.send(pkt(1, 100), 20 * MS);
        let out = drain(&mut l);
        assert_eq!(out, vec![(10 * MS, 0), (22 * MS, 1)]);
        // Loss switched on: later packets are lost, earlier ones are still delivered (packet 2
        // still uses the 800 kbit/s, 1 ms link: 30 + 1 + 1 ms).
        let _ = l.send(pkt(2, 100), 30 * MS);
        l.set_config(base.with_loss(1.0), 30 * MS);
        assert_eq!(l.send(pkt(3, 100), 30 * MS), SendOutcome::DroppedLoss);
        assert_eq!(drain(&mut l), vec![(32 * MS, 2)]);
    }

    #[test]
    fn rate_change_midway_keeps_earlier_serialization() {
        let mut l = EmulatedLink::new(LinkConfig::default().with_rate_bps(3_000_000));
        let _ = l.send(vec![0; 1], 0); // done at 2666.67 ns
        let cfg = l.config().with_rate_bps(8_000_000_000); // 1 ns per byte
        l.set_config(cfg, 0);
        let _ = l.send(vec![1; 1], 0);
        let arrivals: Vec<_> = std::iter::from_fn(|| l.poll_with_arrival(u64::MAX))
            .map(|(a, _)| a)
            .collect();
        assert_eq!(arrivals, vec![2666, 2668]);
    }

    #[test]
    fn duplicate_delivers_twice_and_counts() {
        let mut l = EmulatedLink::new(LinkConfig::default().with_delay_ns(MS).with_duplicate(1.0));
        for i in 0..10 {
            assert_eq!(l.send(pkt(i, 50), u64::from(i)), SendOutcome::Queued);
        }
        let ids: Vec<u32> = drain(&mut l).into_iter().map(|(_, i)| i).collect();
        assert_eq!(ids.len(), 20);
        assert!(ids.chunks(2).enumerate().all(|(i, c)| c == [i as u32; 2]));
        let s = l.stats();
        assert_eq!((s.sent, s.duplicated, s.delivered), (10, 10, 20));
        assert_eq!(s.bytes_delivered, 2 * s.bytes_sent);
    }

    #[test]
    fn poll_waits_for_arrival_and_next_arrival_reports_it() {
        let mut l = EmulatedLink::new(LinkConfig::default().with_delay_ns(5 * MS));
        assert_eq!(l.next_arrival(), None);
        let _ = l.send(pkt(1, 10), MS);
        assert_eq!(l.next_arrival(), Some(6 * MS));
        assert!(l.poll(6 * MS - 1).is_none());
        assert_eq!(l.poll(6 * MS).map(|p| id(&p)), Some(1));
        assert!(l.poll(u64::MAX).is_none());
    }

    #[test]
    fn heapbuf_wire_len_is_data_len() {
        let b = HeapBuf::from_slice(&[1, 2, 3]);
        assert_eq!(b.wire_len(), 3);
        let mut l = EmulatedLink::new(LinkConfig::default().with_rate_bps(8_000_000_000));
        let _ = l.send(b, 0);
        assert_eq!(l.next_arrival(), Some(3));
        assert_eq!(l.poll(3).map(|b| b.to_vec()), Some(vec![1, 2, 3]));
    }

    #[test]
    fn two_links_driven_by_next_event() {
        let mut a = EmulatedLink::new(LinkConfig::default().with_delay_ns(3 * MS));
        let mut b = EmulatedLink::new(LinkConfig::default().with_delay_ns(2 * MS));
        let _ = a.send(pkt(1, 10), 0);
        let _ = b.send(pkt(2, 10), 0);
        let mut clock = VirtualClock::new(0);
        let mut seen = Vec::new();
        while let Some(t) = clock.advance_to_next([a.next_arrival(), b.next_arrival()]) {
            for l in [&mut a, &mut b] {
                while let Some(p) = l.poll(t) {
                    seen.push((t, id(&p)));
                }
            }
        }
        assert_eq!(seen, vec![(2 * MS, 2), (3 * MS, 1)]);
        assert_eq!(next_event([a.next_arrival(), b.next_arrival()]), None);
    }

    fn prob() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            Just(1.0),
            0.0..1.0f64,
            Just(f64::NAN),
            -1.0..2.0f64
        ]
    }

    fn config() -> impl Strategy<Value = LinkConfig> {
        let ge =
            proptest::option::of(
                (prob(), prob(), prob()).prop_map(|(a, b, c)| GilbertElliott {
                    p_good_to_bad: a,
                    p_bad_to_good: b,
                    loss_in_bad: c,
                }),
            );
        (
            prop_oneof![
                Just(0u64),
                Just(1),
                Just(u64::MAX),
                any::<u64>(),
                1_000u64..1_000_000_000
            ],
            prop_oneof![Just(0u64), Just(u64::MAX), 0..100 * MS],
            prop_oneof![Just(0u64), Just(u64::MAX), 0..100 * MS],
            (prob(), ge, prob(), any::<u64>(), prob()),
            prop_oneof![Just(0usize), Just(usize::MAX), 0..100_000usize],
            (any::<bool>(), any::<bool>(), any::<u64>()),
        )
            .prop_map(
                |(rate, delay, jitter, (loss, ge, reorder, gap, dup), qlim, (up, drop, seed))| {
                    LinkConfig {
                        rate_bps: rate,
                        delay_ns: delay,
                        jitter_ns: jitter,
                        loss,
                        burst_loss: ge,
                        reorder,
                        reorder_gap_ns: gap,
                        duplicate: dup,
                        queue_limit_bytes: qlim,
                        up,
                        down_policy: if drop {
                            DownPolicy::DropInFlight
                        } else {
                            DownPolicy::DeliverInFlight
                        },
                        seed,
                    }
                },
            )
    }

    #[derive(Debug, Clone)]
    enum Op {
        Send(usize),
        Advance(u64),
        Poll,
        SetUp(bool),
        SetConfig(LinkConfig),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0usize..3000).prop_map(Op::Send),
            3 => prop_oneof![0..10 * MS, Just(u64::MAX / 2)].prop_map(Op::Advance),
            3 => Just(Op::Poll),
            1 => any::<bool>().prop_map(Op::SetUp),
            1 => config().prop_map(Op::SetConfig),
        ]
    }

    proptest! {
        #[test]
        fn conservation_holds_and_nothing_panics(cfg in config(),
                                                 ops in proptest::collection::vec(op(), 0..200)) {
            let mut l = EmulatedLink::new(cfg);
            let mut now: Instant = 0;
            let mut last_poll: Instant = 0;
            for o in ops {
                match o {
                    Op::Send(len) => { let _ = l.send(vec![0u8; len], now); }
                    Op::Advance(d) => now = now.saturating_add(d),
                    Op::Poll => while let Some((a, _)) = l.poll_with_arrival(now) {
                        prop_assert!(a <= now);
                        last_poll = a;
                    },
                    Op::SetUp(up) => l.set_up(up, now),
                    Op::SetConfig(c) => l.set_config(c, now),
                }
                let s = *l.stats();
                prop_assert_eq!(
                    s.sent + s.duplicated,
                    s.delivered + s.dropped_loss + s.dropped_queue + s.dropped_down
                        + l.in_flight() as u64
                );
                prop_assert!(s.bytes_delivered <= s.bytes_sent.saturating_mul(2));
                if let Some(t) = l.next_arrival() {
                    // Delivery is in arrival order: nothing pending is due before what was
                    // already delivered (new packets arrive no earlier than their send time).
                    prop_assert!(t >= last_poll);
                }
            }
            // Everything left drains eventually.
            while l.poll(u64::MAX).is_some() {}
            prop_assert_eq!(l.in_flight(), 0);
        }

        #[test]
        fn same_seed_same_outcomes(cfg in config(),
                                   ops in proptest::collection::vec(op(), 0..100)) {
            let run = || {
                let mut l = EmulatedLink::new(cfg);
                let mut now: Instant = 0;
                let mut log = Vec::new();
                for o in &ops {
                    match o {
                        Op::Send(len) => log.push(format!("{:?}", l.send(vec![0u8; *len], now))),
                        Op::Advance(d) => now = now.saturating_add(*d),
                        Op::Poll => while let Some((a, p)) = l.poll_with_arrival(now) {
                            log.push(format!("{a}:{}", p.len()));
                        },
                        Op::SetUp(up) => l.set_up(*up, now),
                        Op::SetConfig(c) => l.set_config(*c, now),
                    }
                }
                (log, *l.stats())
            };
            prop_assert_eq!(run(), run());
        }
    }
}

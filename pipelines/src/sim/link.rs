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
//! All randomness comes from one `Pcg64` seeded with [`LinkConfig::seed`]; each accepted call to
//! `send` consumes the same number of draws whatever the probabilities are (common random
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

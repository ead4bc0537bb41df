//! Steering: choose the delivery connection(s) for each packet of one client and traffic class
//! (draft-04 §4.2, §5).
//!
//! One [`Steering`] instance serves one (client, traffic class) pair. Its paths are delivery
//! connections, named by their connection ID ([`PathId`]). At most [`MAX_PATHS`] paths are kept
//! in a fixed array, so selecting a path never allocates.
//!
//! Modes ([`SteeringMode`]):
//! * `single`: one path (the configured path with the lowest priority number), no failover;
//! * `active-standby`: the usable path with the lowest priority number;
//! * `weighted`: smooth weighted round robin (as in nginx) per packet over usable paths;
//! * `delay-aware`: the usable path with the earliest estimated delivery time
//!   `now + owd + (queued + packet bytes) / rate`, with a per-path queue that drains at the rate
//!   (the engine gives as `owd` a path's one-way delay plus its delay-compensation hold);
//! * `duplicate`: every usable path;
//! * `per-flow`: weighted rendezvous (HRW) hashing of a caller-computed 32-bit flow hash.
//!
//! Usability comes from the path monitor ([`super::path_monitor`]) through
//! [`Steering::set_usable`]; a new path is not usable until told so (draft-04 §5.2: a path in its
//! initialization phase is "not included for transmission of user data").
//!
//! Lossless switching (draft-04 §4.2.1, Sequence Number: "needed for lossless switching or
//! multi-link (path) aggregation"): the sequencer numbers packets per anchor connection and
//! traffic class, not per path, so numbering continues unchanged when a path leaves or joins the
//! steering set. Packets still in flight on a path that was just removed arrive late at the
//! receiver, whose reorder buffer slots them back into sequence; nothing is renumbered or
//! retransmitted here. Steering therefore only has to stop choosing a path, never to drain it.

use smallvec::SmallVec;

use super::Instant;

/// Maximum number of delivery connections per client and traffic class.
pub const MAX_PATHS: usize = 8;

/// A delivery connection, identified by its connection ID (draft-04 §5, "CID").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathId(pub u8);

/// How packets are spread over the usable paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SteeringMode {
    /// One path only: the configured path with the lowest priority number (ties: lowest
    /// [`PathId`]); nothing is sent while it is unusable.
    Single,
    /// The usable path with the lowest priority number wins (ties: lowest [`PathId`]).
    ActiveStandby,
    /// Smooth weighted round robin per packet over the usable paths.
    Weighted,
    /// Earliest estimated delivery time per packet.
    DelayAware,
    /// Every usable path gets a copy.
    Duplicate,
    /// A flow hash picks one path (weighted rendezvous hashing).
    PerFlow,
}

impl SteeringMode {
    /// Every mode, in declaration order.
    pub const ALL: [SteeringMode; 6] = [
        SteeringMode::Single,
        SteeringMode::ActiveStandby,
        SteeringMode::Weighted,
        SteeringMode::DelayAware,
        SteeringMode::Duplicate,
        SteeringMode::PerFlow,
    ];

    /// Stable name used in configuration files and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            SteeringMode::Single => "single",
            SteeringMode::ActiveStandby => "active-standby",
            SteeringMode::Weighted => "weighted",
            SteeringMode::DelayAware => "delay-aware",
            SteeringMode::Duplicate => "duplicate",
            SteeringMode::PerFlow => "per-flow",
        }
    }
}

impl core::fmt::Display for SteeringMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the [`SteeringMode`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSteeringMode;

impl core::fmt::Display for UnknownSteeringMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown steering mode (expected single, active-standby, weighted, delay-aware, duplicate or per-flow)")
    }
}

impl std::error::Error for UnknownSteeringMode {}

impl core::str::FromStr for SteeringMode {
    type Err = UnknownSteeringMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SteeringMode::ALL
            .iter()
            .copied()
            .find(|m| m.as_str() == s)
            .ok_or(UnknownSteeringMode)
    }
}

/// What steering knows about one path (configured, or estimated by the path monitor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathParams {
    /// Share in `weighted` and `per-flow` modes (e.g. the monitor's implied weight).
    pub weight: u32,
    /// Lower number = preferred, in `single` and `active-standby` modes.
    pub priority: u8,
    /// Rate in bits per second, for `delay-aware` mode. 0 = unknown: the path is chosen only if
    /// no usable path has a rate.
    pub rate_bps: u64,
    /// One-way delay estimate in nanoseconds, for `delay-aware` mode.
    pub owd_ns: u64,
    /// Bytes each packet carries on the link beyond the SDU (trailer, outer headers, link
    /// header), for `delay-aware` mode's queue model: the link's rate drains frames, and a
    /// model that counts only SDU bytes thinks a saturated link has no queue.
    pub overhead_bytes: u32,
}

/// The path table is full ([`MAX_PATHS`] paths already configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathTableFull;

impl core::fmt::Display for PathTableFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "at most {MAX_PATHS} paths per client and traffic class")
    }
}

impl std::error::Error for PathTableFull {}

/// The paths chosen for one packet: a small fixed-size set, empty when no path is usable (the
/// caller then drops the packet with [`crate::DropReason::NoPath`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Selection {
    ids: [u8; MAX_PATHS],
    len: u8,
}

impl Selection {
    /// The empty selection.
    pub const EMPTY: Selection = Selection {
        ids: [0; MAX_PATHS],
        len: 0,
    };

    fn one(id: PathId) -> Selection {
        let mut s = Selection::EMPTY;
        s.push(id);
        s
    }

    fn push(&mut self, id: PathId) {
        // Callers push at most one id per slot, so len never exceeds MAX_PATHS; guard anyway.
        if let Some(slot) = self.ids.get_mut(self.len as usize) {
            *slot = id.0;
            self.len += 1;
        }
    }

    /// No path was chosen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of paths chosen (more than one only in `duplicate` mode).
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether `id` was chosen.
    pub fn contains(&self, id: PathId) -> bool {
        self.as_slice().contains(&id.0)
    }

    /// The first chosen path.
    pub fn first(&self) -> Option<PathId> {
        self.as_slice().first().map(|&b| PathId(b))
    }

    fn as_slice(&self) -> &[u8] {
        &self.ids[..self.len as usize]
    }

    /// The chosen paths, in path-table order.
    pub fn iter(&self) -> SelectionIter<'_> {
        SelectionIter {
            inner: self.as_slice().iter(),
        }
    }
}

/// Iterator over a [`Selection`].
#[derive(Debug, Clone)]
pub struct SelectionIter<'a> {
    inner: core::slice::Iter<'a, u8>,
}

impl Iterator for SelectionIter<'_> {
    type Item = PathId;

    fn next(&mut self) -> Option<PathId> {
        self.inner.next().map(|&b| PathId(b))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for SelectionIter<'_> {}

impl<'a> IntoIterator for &'a Selection {
    type Item = PathId;
    type IntoIter = SelectionIter<'a>;

    fn into_iter(self) -> SelectionIter<'a> {
        self.iter()
    }
}

/// Packets and bytes steered onto one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathCounters {
    /// Packets (each duplicate copy counts).
    pub packets: u64,
    /// Bytes (each duplicate copy counts).
    pub bytes: u64,
}

/// A snapshot of the steering counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SteeringStats {
    paths: [(u8, PathCounters); MAX_PATHS],
    len: u8,
    /// Packets for which no path was usable ([`crate::DropReason::NoPath`]).
    pub no_path: u64,
}

impl SteeringStats {
    /// Counters of one configured path.
    pub fn path(&self, id: PathId) -> Option<PathCounters> {
        self.iter().find(|(p, _)| *p == id).map(|(_, c)| c)
    }

    /// Counters of every configured path, in path-table order.
    pub fn iter(&self) -> impl Iterator<Item = (PathId, PathCounters)> + '_ {
        self.paths[..self.len as usize]
            .iter()
            .map(|&(id, c)| (PathId(id), c))
    }
}

/// Nanoseconds per second times bits per byte: queue contents are kept in bytes × this, so that
/// draining `rate_bps × dt_ns` is exact integer arithmetic (no rounding drift per packet).
const BYTE_SCALE: u128 = 8 * 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Slot {
    id: PathId,
    params: PathParams,
    usable: bool,
    /// Smooth WRR current weight (nginx `current_weight`).
    current: i64,
    /// Queued bytes × [`BYTE_SCALE`] (delay-aware mode).
    queue: u128,
    last_drain: Instant,
    counters: PathCounters,
    /// Effective weight (weighted and per-flow modes): the configured weight, or the rate when
    /// no usable path has a weight, 0 when unusable ([`Steering::refresh_weights`]).
    weight: u32,
}

impl Slot {
    fn drain(&mut self, now: Instant) {
        let dt = now.saturating_sub(self.last_drain);
        self.last_drain = self.last_drain.max(now);
        let drained = u128::from(self.params.rate_bps) * u128::from(dt);
        self.queue = self.queue.saturating_sub(drained);
    }

    /// Estimated delivery time of `bytes` more bytes sent now, in ns since `now` (delay-aware).
    fn delivery_delay(&self, bytes: usize) -> u128 {
        if self.params.rate_bps == 0 {
            return u128::MAX;
        }
        let queued = self
            .queue
            .saturating_add((bytes as u128).saturating_mul(BYTE_SCALE));
        u128::from(self.params.owd_ns).saturating_add(queued / u128::from(self.params.rate_bps))
    }
}

/// Steering state of one client and traffic class.
#[derive(Debug, Clone)]
pub struct Steering {
    mode: SteeringMode,
    /// At most [`MAX_PATHS`] slots; two inline (the usual client), more on the heap.
    slots: SmallVec<[Option<Slot>; 2]>,
    /// Slots past this index are all empty: the per-packet loops stop here.
    used: usize,
    no_path: u64,
}

impl Steering {
    /// A scheduler with no paths.
    pub fn new(mode: SteeringMode) -> Steering {
        Steering {
            mode,
            slots: SmallVec::new(),
            used: 0,
            no_path: 0,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> SteeringMode {
        self.mode
    }

    /// Change mode; round-robin state and delay-aware queues start afresh.
    pub fn set_mode(&mut self, mode: SteeringMode) {
        self.mode = mode;
        for s in self.slots.iter_mut().flatten() {
            s.current = 0;
            s.queue = 0;
        }
    }

    fn slot(&self, id: PathId) -> Option<&Slot> {
        self.slots.iter().flatten().find(|s| s.id == id)
    }

    fn slot_mut(&mut self, id: PathId) -> Option<&mut Slot> {
        self.slots.iter_mut().flatten().find(|s| s.id == id)
    }

    /// Add a path or update its parameters (usability and counters are kept on update). A new
    /// path starts unusable.
    pub fn set_path(&mut self, id: PathId, params: PathParams) -> Result<(), PathTableFull> {
        if let Some(s) = self.slot_mut(id) {
            s.params = params;
            self.refresh_weights();
            return Ok(());
        }
        let i = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.slots.len() < MAX_PATHS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(PathTableFull),
        };
        self.used = self.used.max(i + 1);
        self.slots[i] = Some(Slot {
            id,
            params,
            usable: false,
            current: 0,
            queue: 0,
            last_drain: 0,
            counters: PathCounters::default(),
            weight: 0,
        });
        self.refresh_weights();
        Ok(())
    }

    /// Mark a path usable or not (from the path monitor). Returns false if the path is unknown.
    pub fn set_usable(&mut self, id: PathId, usable: bool) -> bool {
        match self.slot_mut(id) {
            Some(s) => {
                if s.usable != usable {
                    // A path that (re)joins the round robin starts from a neutral position, so
                    // credit accumulated before it left cannot make it burst.
                    s.current = 0;
                }
                s.usable = usable;
                self.refresh_weights();
                true
            }
            None => false,
        }
    }

    /// Remove a path (and its counters). Returns false if the path is unknown. In-flight packets
    /// on it are absorbed by the receiver's reorder buffer (see module documentation).
    pub fn remove_path(&mut self, id: PathId) -> bool {
        match self
            .slots
            .iter_mut()
            .find(|s| s.is_some_and(|s| s.id == id))
        {
            Some(s) => {
                *s = None;
                self.used = self
                    .slots
                    .iter()
                    .rposition(Option::is_some)
                    .map_or(0, |i| i + 1);
                self.refresh_weights();
                true
            }
            None => false,
        }
    }

    /// The slots that may be occupied.
    fn live(&self) -> &[Option<Slot>] {
        &self.slots[..self.used.min(self.slots.len())]
    }

    fn live_mut(&mut self) -> &mut [Option<Slot>] {
        // `used <= slots.len()` always (set_path, remove_path); min() keeps this panic-free.
        let used = self.used.min(self.slots.len());
        &mut self.slots[..used]
    }

    /// Whether the path is configured and usable.
    pub fn is_usable(&self, id: PathId) -> bool {
        self.slot(id).is_some_and(|s| s.usable)
    }

    /// Parameters of a configured path.
    pub fn path_params(&self, id: PathId) -> Option<PathParams> {
        self.slot(id).map(|s| s.params)
    }

    /// Bytes the delay-aware scheduler believes are still queued on a path.
    pub fn queued_bytes(&self, id: PathId) -> Option<u64> {
        self.slot(id)
            .map(|s| u64::try_from(s.queue / BYTE_SCALE).unwrap_or(u64::MAX))
    }

    /// Number of configured paths.
    pub fn path_count(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Counter snapshot.
    pub fn stats(&self) -> SteeringStats {
        let mut st = SteeringStats {
            no_path: self.no_path,
            ..SteeringStats::default()
        };
        for s in self.slots.iter().flatten() {
            if let Some(e) = st.paths.get_mut(st.len as usize) {
                *e = (s.id.0, s.counters);
                st.len += 1;
            }
        }
        st
    }

    /// Choose the path(s) for one packet of `bytes` bytes. `flow_hash` is used only in
    /// `per-flow` mode. An empty selection means no path is usable; it is counted as `no_path`.
    pub fn select(&mut self, flow_hash: u32, bytes: usize, now: Instant) -> Selection {
        let sel = match self.mode {
            SteeringMode::Single => self.select_single(),
            SteeringMode::ActiveStandby => self.select_active_standby(),
            SteeringMode::Weighted => self.select_weighted(),
            SteeringMode::DelayAware => self.select_delay_aware(bytes, now),
            SteeringMode::Duplicate => self.select_duplicate(),
            SteeringMode::PerFlow => self.select_per_flow(flow_hash),
        };
        if sel.is_empty() {
            self.no_path = self.no_path.saturating_add(1);
        } else {
            for s in self.live_mut().iter_mut().flatten() {
                if sel.contains(s.id) {
                    s.counters.packets = s.counters.packets.saturating_add(1);
                    s.counters.bytes = s.counters.bytes.saturating_add(bytes as u64);
                }
            }
        }
        sel
    }

    /// Lowest (priority, id) among `candidates`.
    fn best_priority<'a>(candidates: impl Iterator<Item = &'a Slot>) -> Option<PathId> {
        candidates
            .min_by_key(|s| (s.params.priority, s.id))
            .map(|s| s.id)
    }

    fn select_single(&self) -> Selection {
        // AMBIGUITY: draft-04 §4.2 does not define a "single path" mode; we take the configured
        // path with the lowest priority number and do not fail over (that is active-standby).
        match Self::best_priority(self.slots.iter().flatten()) {
            Some(id) if self.is_usable(id) => Selection::one(id),
            _ => Selection::EMPTY,
        }
    }

    fn select_active_standby(&self) -> Selection {
        Self::best_priority(self.slots.iter().flatten().filter(|s| s.usable))
            .map_or(Selection::EMPTY, Selection::one)
    }

    /// Weight used by `weighted` and `per-flow`. AMBIGUITY: when every usable path has weight
    /// 0 (e.g. all implied weights fell to 0) we split equally rather than drop traffic that a
    /// usable path could carry.
    /// Weights of the usable paths: as configured; when none is set, in proportion to their
    /// rates (kbit/s) if every usable path has one, else equal.
    /// Recomputes every slot's effective weight (on a change of parameters or usability, not
    /// per packet).
    fn refresh_weights(&mut self) {
        let w = self.effective_weights();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(s) = s {
                s.weight = w.get(i).copied().unwrap_or(0);
            }
        }
    }

    fn effective_weights(&self) -> [u32; MAX_PATHS] {
        let mut w = [0u32; MAX_PATHS];
        let mut any = false;
        let mut all_rates = true;
        for (i, s) in self.live().iter().enumerate() {
            if let Some(s) = s.filter(|s| s.usable) {
                w[i] = s.params.weight;
                any |= s.params.weight > 0;
                all_rates &= s.params.rate_bps >= 1000;
            }
        }
        if !any {
            for (i, s) in self.live().iter().enumerate() {
                if let Some(s) = s.filter(|s| s.usable) {
                    w[i] = if all_rates {
                        u32::try_from(s.params.rate_bps / 1000).unwrap_or(u32::MAX)
                    } else {
                        1
                    };
                }
            }
        }
        w
    }

    fn select_weighted(&mut self) -> Selection {
        // Smooth weighted round robin (nginx ngx_http_upstream_get_peer): every candidate gains
        // its weight, the largest current weight wins (first on ties) and pays the total.
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        let mut best_current = i64::MIN;
        for (i, s) in self.live_mut().iter_mut().enumerate() {
            let Some(s) = s else { continue };
            if s.weight == 0 {
                continue;
            }
            s.current = s.current.saturating_add(i64::from(s.weight));
            total += i64::from(s.weight);
            if s.current > best_current {
                best_current = s.current;
                best = Some(i);
            }
        }
        match best.and_then(|i| self.slots[i].as_mut()) {
            Some(s) => {
                s.current = s.current.saturating_sub(total);
                Selection::one(s.id)
            }
            None => Selection::EMPTY,
        }
    }

    fn select_delay_aware(&mut self, bytes: usize, now: Instant) -> Selection {
        let mut best: Option<(u128, usize)> = None;
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(s) = s else { continue };
            s.drain(now);
            if !s.usable {
                continue;
            }
            let d = s.delivery_delay(bytes + s.params.overhead_bytes as usize);
            if !matches!(best, Some((bd, _)) if bd <= d) {
                best = Some((d, i));
            }
        }
        match best.and_then(|(_, i)| self.slots[i].as_mut()) {
            Some(s) => {
                let on_wire = bytes + s.params.overhead_bytes as usize;
                s.queue = s
                    .queue
                    .saturating_add((on_wire as u128).saturating_mul(BYTE_SCALE));
                Selection::one(s.id)
            }
            None => Selection::EMPTY,
        }
    }

    fn select_duplicate(&self) -> Selection {
        let mut sel = Selection::EMPTY;
        for s in self.slots.iter().flatten().filter(|s| s.usable) {
            sel.push(s.id);
        }
        sel
    }

    fn select_per_flow(&self, flow_hash: u32) -> Selection {
        // Weighted rendezvous hashing (Schindelhauer & Schomaker): score = w / -ln(u) with u a
        // uniform hash of (flow, path). A flow's winner changes only if the winner leaves or a
        // new path beats it, so removing one path moves only that path's flows.
        let mut best: Option<(f64, PathId)> = None;
        for s in self.slots.iter().flatten() {
            if s.weight == 0 {
                continue;
            }
            let score = hrw_score(flow_hash, s.id, s.weight);
            if !matches!(best, Some((b, _)) if b >= score) {
                best = Some((score, s.id));
            }
        }
        best.map_or(Selection::EMPTY, |(_, id)| Selection::one(id))
    }
}

/// splitmix64 finalizer: a well-mixed 64-bit hash of (flow, path).
fn mix(flow_hash: u32, id: PathId) -> u64 {
    let mut z = ((u64::from(flow_hash) << 8) | u64::from(id.0)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hrw_score(flow_hash: u32, id: PathId, weight: u32) -> f64 {
    // u in (0, 1): 53 random bits, offset by half a step so ln(u) is finite and negative.
    let u = ((mix(flow_hash, id) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight) / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::MS;
    use proptest::prelude::*;

    const A: PathId = PathId(1);
    const B: PathId = PathId(2);
    const C: PathId = PathId(3);

    #[test]
    fn per_packet_loops_see_every_path_after_removals_and_reuse() {
        let mut s = Steering::new(SteeringMode::Weighted);
        for id in [A, B, C] {
            s.set_path(id, p(1, 0)).unwrap();
            s.set_usable(id, true);
        }
        assert_eq!(s.used, 3);
        s.remove_path(C);
        assert_eq!(s.used, 2);
        s.remove_path(A);
        assert_eq!(s.used, 2, "slot 1 (B) still occupied");
        // D reuses slot 0; a new path E goes to slot 2.
        let (d, e) = (PathId(4), PathId(5));
        for id in [d, e] {
            s.set_path(id, p(1, 0)).unwrap();
            s.set_usable(id, true);
        }
        assert_eq!(s.used, 3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            seen.extend(s.select(0, 100, 0).iter());
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![B, d, e]);
        for id in [B, d, e] {
            s.remove_path(id);
        }
        assert_eq!(s.used, 0);
        assert!(s.select(0, 100, 0).is_empty());
    }

    fn p(weight: u32, priority: u8) -> PathParams {
        PathParams {
            weight,
            priority,
            rate_bps: 10_000_000,
            owd_ns: 10 * MS,
            overhead_bytes: 0,
        }
    }

    fn steering(mode: SteeringMode, paths: &[(PathId, PathParams)]) -> Steering {
        let mut s = Steering::new(mode);
        for &(id, params) in paths {
            s.set_path(id, params).unwrap();
            assert!(s.set_usable(id, true));
        }
        s
    }

    fn pick(s: &mut Steering) -> PathId {
        s.select(0, 1000, 0).first().expect("a usable path")
    }

    #[test]
    fn mode_names_round_trip() {
        for m in SteeringMode::ALL {
            assert_eq!(m.to_string().parse::<SteeringMode>(), Ok(m));
        }
        assert_eq!("delay-aware".parse(), Ok(SteeringMode::DelayAware));
        assert_eq!("per-flow".parse(), Ok(SteeringMode::PerFlow));
        assert_eq!("Weighted".parse::<SteeringMode>(), Err(UnknownSteeringMode));
        assert_eq!("".parse::<SteeringMode>(), Err(UnknownSteeringMode));
    }

    #[test]
    fn path_table_holds_at_most_eight_paths() {
        let mut s = Steering::new(SteeringMode::Weighted);
        for i in 0..MAX_PATHS as u8 {
            s.set_path(PathId(i), p(1, 0)).unwrap();
        }
        assert_eq!(s.set_path(PathId(200), p(1, 0)), Err(PathTableFull));
        // Updating an existing path is fine when full.
        s.set_path(PathId(3), p(7, 0)).unwrap();
        assert_eq!(s.path_params(PathId(3)).unwrap().weight, 7);
        assert!(s.remove_path(PathId(3)));
        assert!(!s.remove_path(PathId(3)));
        s.set_path(PathId(200), p(1, 0)).unwrap();
        assert_eq!(s.path_count(), MAX_PATHS);
    }

    #[test]
    fn s5_2_new_path_is_not_used_until_marked_usable() {
        let mut s = Steering::new(SteeringMode::Duplicate);
        s.set_path(A, p(1, 0)).unwrap();
        assert!(s.select(0, 100, 0).is_empty());
        s.set_usable(A, true);
        assert_eq!(s.select(0, 100, 0).first(), Some(A));
        assert!(!s.set_usable(B, true), "unknown path");
    }

    #[test]
    fn smooth_wrr_5_1_1_matches_nginx_sequence() {
        let mut s = steering(
            SteeringMode::Weighted,
            &[(A, p(5, 0)), (B, p(1, 0)), (C, p(1, 0))],
        );
        let seq: Vec<PathId> = (0..14).map(|_| pick(&mut s)).collect();
        let expect = [A, A, B, A, C, A, A];
        assert_eq!(&seq[..7], &expect);
        assert_eq!(&seq[7..], &expect, "the sequence repeats every 7 picks");
    }

    #[test]
    fn weighted_split_ratio_within_one_percent() {
        let mut s = steering(SteeringMode::Weighted, &[(A, p(3, 0)), (B, p(1, 0))]);
        for _ in 0..10_000 {
            pick(&mut s);
        }
        let st = s.stats();
        let a = st.path(A).unwrap().packets as f64;
        assert!((a / 10_000.0 - 0.75).abs() < 0.01, "share of A {a}");
        assert_eq!(
            st.path(A).unwrap().bytes,
            st.path(A).unwrap().packets * 1000
        );
        assert_eq!(st.no_path, 0);
    }

    #[test]
    fn weighted_without_weights_follows_the_rates() {
        let a = PathParams {
            weight: 0,
            rate_bps: 50_000_000,
            ..p(0, 0)
        };
        let b = PathParams {
            weight: 0,
            rate_bps: 20_000_000,
            ..p(0, 1)
        };
        let mut s = steering(SteeringMode::Weighted, &[(A, a), (B, b)]);
        let on_a = (0..7000).filter(|_| pick(&mut s) == A).count();
        assert_eq!(on_a, 5000, "50:20 Mbit/s is 5:2");
        // A path without a rate: equal shares.
        s.set_path(B, PathParams { rate_bps: 0, ..b }).unwrap();
        let on_a = (0..1000).filter(|_| pick(&mut s) == A).count();
        assert_eq!(on_a, 500);
    }

    #[test]
    fn weighted_skips_unusable_paths() {
        let mut s = steering(SteeringMode::Weighted, &[(A, p(1, 0)), (B, p(1, 0))]);
        s.set_usable(A, false);
        for _ in 0..10 {
            assert_eq!(pick(&mut s), B);
        }
    }

    #[test]
    fn weighted_all_zero_weights_split_equally() {
        let mut s = steering(SteeringMode::Weighted, &[(A, p(0, 0)), (B, p(0, 0))]);
        let seq: Vec<PathId> = (0..4).map(|_| pick(&mut s)).collect();
        assert_eq!(seq, [A, B, A, B]);
        // A zero-weight path is not used while another has weight.
        s.set_path(B, p(1, 0)).unwrap();
        for _ in 0..4 {
            assert_eq!(pick(&mut s), B);
        }
    }

    #[test]
    fn active_standby_failover_and_failback() {
        let mut s = steering(SteeringMode::ActiveStandby, &[(B, p(1, 2)), (A, p(1, 1))]);
        assert_eq!(pick(&mut s), A, "lowest priority number wins");
        s.set_usable(A, false);
        assert_eq!(pick(&mut s), B, "failover to standby");
        s.set_usable(A, true);
        assert_eq!(pick(&mut s), A, "failback to primary");
        s.set_usable(A, false);
        s.set_usable(B, false);
        assert!(s.select(0, 10, 0).is_empty());
        assert_eq!(s.stats().no_path, 1);
    }

    #[test]
    fn active_standby_ties_go_to_lowest_path_id() {
        let mut s = steering(SteeringMode::ActiveStandby, &[(C, p(1, 1)), (B, p(1, 1))]);
        assert_eq!(pick(&mut s), B);
    }

    #[test]
    fn single_does_not_fail_over() {
        let mut s = steering(SteeringMode::Single, &[(A, p(1, 1)), (B, p(1, 2))]);
        assert_eq!(pick(&mut s), A);
        s.set_usable(A, false);
        assert!(s.select(0, 10, 0).is_empty());
        s.set_usable(A, true);
        assert_eq!(pick(&mut s), A);
    }

    #[test]
    fn delay_aware_prefers_the_faster_path_at_low_load() {
        let fast = PathParams {
            weight: 1,
            priority: 0,
            rate_bps: 50_000_000,
            owd_ns: 20 * MS,
            overhead_bytes: 0,
        };
        let slow = PathParams {
            weight: 1,
            priority: 0,
            rate_bps: 20_000_000,
            owd_ns: 60 * MS,
            overhead_bytes: 0,
        };
        let mut s = steering(SteeringMode::DelayAware, &[(B, slow), (A, fast)]);
        // 10 Mbit/s of 1250-byte packets: one per ms.
        for i in 0..1000u64 {
            assert_eq!(s.select(0, 1250, i * MS).first(), Some(A));
        }
        assert!(s.queued_bytes(A).unwrap() <= 1250);
    }

    #[test]
    fn delay_aware_splits_when_queues_build() {
        let fast = PathParams {
            weight: 1,
            priority: 0,
            rate_bps: 50_000_000,
            owd_ns: 20 * MS,
            overhead_bytes: 0,
        };
        let slow = PathParams {
            weight: 1,
            priority: 0,
            rate_bps: 20_000_000,
            owd_ns: 60 * MS,
            overhead_bytes: 0,
        };
        let mut s = steering(SteeringMode::DelayAware, &[(A, fast), (B, slow)]);
        // 70 Mbit/s of 1250-byte (10 000-bit) packets for 2 s: one packet every 142 857 ns.
        let gap = 1_000_000_000u64 / 7000;
        for i in 0..14_000u64 {
            assert!(!s.select(0, 1250, i * gap).is_empty());
        }
        let st = s.stats();
        let (a, b) = (st.path(A).unwrap().packets, st.path(B).unwrap().packets);
        assert!(a > 8_000 && b > 2_000, "both carry: a={a} b={b}");
        // The fast path's queue settles near the 40 ms delay difference (250 kB at 50 Mbit/s),
        // never far beyond it.
        let qa = s.queued_bytes(A).unwrap();
        assert!((200_000..=260_000).contains(&qa), "queue on A {qa}");
    }

    #[test]
    fn delay_aware_queue_counts_what_the_link_carries_not_just_the_sdu() {
        // A 30 Mbit/s path whose PDUs carry 48 bytes more than their SDUs: 1400-byte SDUs fill
        // it at 29 Mbit/s of SDUs (1448 bytes each on the link), not at 30.
        let a = PathParams {
            rate_bps: 30_000_000,
            overhead_bytes: 48,
            ..p(1, 0)
        };
        let mut s = steering(SteeringMode::DelayAware, &[(A, a)]);
        for _ in 0..10 {
            s.select(0, 1400, 0);
        }
        assert_eq!(s.queued_bytes(A), Some(10 * 1448));
    }

    #[test]
    fn delay_aware_queue_drains_with_time() {
        let mut s = steering(SteeringMode::DelayAware, &[(A, p(1, 0))]);
        s.select(0, 10_000, 0);
        assert_eq!(s.queued_bytes(A), Some(10_000));
        // 10 Mbit/s drains 1250 bytes per ms; the next packet adds 1000 after draining.
        s.select(0, 1000, 4 * MS);
        assert_eq!(s.queued_bytes(A), Some(6_000));
        s.select(0, 1000, 100 * MS);
        assert_eq!(s.queued_bytes(A), Some(1_000));
    }

    #[test]
    fn duplicate_returns_all_usable_paths() {
        let mut s = steering(
            SteeringMode::Duplicate,
            &[(A, p(1, 0)), (B, p(1, 0)), (C, p(1, 0))],
        );
        s.set_usable(B, false);
        let sel = s.select(0, 100, 0);
        assert_eq!(sel.iter().collect::<Vec<_>>(), [A, C]);
        assert_eq!(sel.len(), 2);
        let st = s.stats();
        assert_eq!(st.path(A).unwrap().packets, 1);
        assert_eq!(st.path(B).unwrap().packets, 0);
        assert_eq!(st.path(C).unwrap().bytes, 100);
    }

    #[test]
    fn per_flow_is_stable_and_removal_moves_only_that_paths_flows() {
        let mut s = steering(
            SteeringMode::PerFlow,
            &[(A, p(1, 0)), (B, p(1, 0)), (C, p(1, 0))],
        );
        let before: Vec<PathId> = (0..3000u32)
            .map(|f| {
                s.select(f.wrapping_mul(2_654_435_761), 100, 0)
                    .first()
                    .unwrap()
            })
            .collect();
        // Stable: the same flow maps to the same path every time.
        for (f, &b) in before.iter().enumerate() {
            let h = (f as u32).wrapping_mul(2_654_435_761);
            assert_eq!(s.select(h, 100, 5).first(), Some(b));
        }
        // Roughly even with equal weights.
        for id in [A, B, C] {
            let n = before.iter().filter(|&&x| x == id).count();
            assert!((800..1200).contains(&n), "{id:?} got {n}");
        }
        s.remove_path(B);
        let mut moved = 0;
        for (f, &b) in before.iter().enumerate() {
            let h = (f as u32).wrapping_mul(2_654_435_761);
            let now = s.select(h, 100, 0).first().unwrap();
            if b == B {
                assert_ne!(now, B);
                moved += 1;
            } else {
                assert_eq!(now, b, "flow {f} moved off a surviving path");
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn per_flow_respects_weights() {
        let mut s = steering(SteeringMode::PerFlow, &[(A, p(3, 0)), (B, p(1, 0))]);
        let n = 20_000u32;
        for f in 0..n {
            s.select(f.wrapping_mul(2_654_435_761), 1, 0);
        }
        let a = s.stats().path(A).unwrap().packets as f64 / f64::from(n);
        assert!((a - 0.75).abs() < 0.02, "share of A {a}");
    }

    #[test]
    fn empty_selection_when_nothing_usable() {
        for mode in SteeringMode::ALL {
            let mut s = Steering::new(mode);
            assert!(s.select(1, 100, 0).is_empty(), "{mode} with no paths");
            s.set_path(A, p(1, 0)).unwrap();
            s.set_usable(A, true);
            s.set_usable(A, false);
            assert!(s.select(1, 100, 0).is_empty(), "{mode} with unusable path");
            assert_eq!(s.stats().no_path, 2);
        }
    }

    proptest! {
        #[test]
        fn selection_only_contains_usable_paths(
            mode in 0usize..6,
            ops in proptest::collection::vec((0u8..10, 0u8..4, 0u32..5, 0u8..3, any::<u32>(), 1usize..2000), 1..200),
        ) {
            let mut s = Steering::new(SteeringMode::ALL[mode]);
            let mut now = 0u64;
            for (id, op, w, prio, hash, bytes) in ops {
                let id = PathId(id);
                match op {
                    0 => { let _ = s.set_path(id, PathParams { weight: w, priority: prio, rate_bps: u64::from(w) * 1_000_000, owd_ns: u64::from(prio) * MS, overhead_bytes: 0 }); }
                    1 => { s.set_usable(id, w % 2 == 0); }
                    2 => { s.remove_path(id); }
                    _ => {}
                }
                now += u64::from(hash % 1000) * 1000;
                let sel = s.select(hash, bytes, now);
                for chosen in &sel {
                    prop_assert!(s.is_usable(chosen), "{:?} chose unusable {:?}", s.mode(), chosen);
                }
                let usable = (0..10).filter(|&i| s.is_usable(PathId(i))).count();
                if s.mode() == SteeringMode::Duplicate {
                    prop_assert_eq!(sel.len(), usable);
                } else {
                    prop_assert!(sel.len() <= 1);
                    if s.mode() != SteeringMode::Single {
                        prop_assert_eq!(sel.is_empty(), usable == 0);
                    }
                }
            }
        }

        #[test]
        fn wrr_long_run_shares_proportional_to_weights(
            weights in proptest::collection::vec(1u32..20, 1..=MAX_PATHS),
            rounds in 1u64..5,
        ) {
            let paths: Vec<(PathId, PathParams)> =
                weights.iter().enumerate().map(|(i, &w)| (PathId(i as u8), p(w, 0))).collect();
            let mut s = steering(SteeringMode::Weighted, &paths);
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            for _ in 0..rounds * total {
                pick(&mut s);
            }
            // Smooth WRR is exact over every whole cycle of sum(weights) picks.
            for (i, &w) in weights.iter().enumerate() {
                prop_assert_eq!(s.stats().path(PathId(i as u8)).unwrap().packets, rounds * u64::from(w));
            }
        }
    }
}

//! Path monitor: the state of one delivery connection, from keep-alives, probe REQ/ACK exchanges
//! and received data (draft-04 §5, §5.1, §5.2). Sans-IO: every event takes the current time,
//! [`PathMonitor::poll`] says which probe REQ to send, [`PathMonitor::next_deadline`] says when to
//! call it again.
//!
//! States ([`PathState`]), with hysteresis so one lucky ACK cannot flap a path:
//!
//! ```text
//!   Probing --up_after consecutive ACKs--> Active
//!   Active  --suspect_after consecutive lost probes, or keepalive_timeout of silence--> Suspect
//!   Suspect --down_after consecutive lost probes (counted from the first loss)--> Down
//!   Suspect, Down --up_after consecutive ACKs--> Active
//! ```
//!
//! A probe is lost when its ACK has not come back within `probe_timeout_ns`. Probes are sent
//! every `initial_probe_interval_ns` while the path carries no user data (Probing, Down: the
//! §5.2 "initialization phase", Probe Type flag 0) and every `probe_interval_ns` while it does
//! (Active, Suspect: "active phase", flag 1).
//!
//! Detection time: after a path dies, the probes sent from then on are lost; the `down_after`-th
//! of them is declared lost `probe_timeout_ns` after it was sent, so a dead Active path is Down
//! after about `probe_interval_ns × down_after + probe_timeout_ns` (at most one more interval for
//! the phase of the schedule), and Suspect (taken out of steering unless
//! `keep_suspect_usable`) after about `probe_interval_ns × suspect_after + probe_timeout_ns`, or
//! `keepalive_timeout_ns` if that is shorter. With the defaults (200 ms, 2, 4, 500 ms timeout)
//! that is ≈0.9 s to Suspect and ≈1.3 s to Down.
//!
//! At most [`OUTSTANDING`] probes are tracked; a probe still unanswered when its slot is needed
//! again counts as lost, so keep `probe_timeout_ns < OUTSTANDING × probe_interval`.

use super::Instant;

/// Number of probes whose send time is remembered for RTT matching (a ring keyed by probe SN).
pub const OUTSTANDING: usize = 32;

/// Largest loss window (probe outcomes are kept in a 64-bit history).
pub const MAX_LOSS_WINDOW: u32 = 64;

/// Tuning of one path monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathMonitorConfig {
    /// Probe period while the path carries user data (Active, Suspect).
    pub probe_interval_ns: u64,
    /// Probe period while it does not (Probing, Down).
    pub initial_probe_interval_ns: u64,
    /// A probe not acknowledged within this time is lost.
    pub probe_timeout_ns: u64,
    /// Loss rate is measured over this many most recent probe outcomes (1..=64; clamped).
    pub loss_window: u32,
    /// Consecutive lost probes that make an Active path Suspect.
    pub suspect_after: u32,
    /// Consecutive lost probes that make a path Down.
    pub down_after: u32,
    /// Consecutive acknowledged probes that make a Probing, Suspect or Down path Active.
    pub up_after: u32,
    /// An Active path with no keep-alive, data or probe ACK for this long becomes Suspect
    /// (0 disables the check).
    pub keepalive_timeout_ns: u64,
    /// Padding bytes in each probe REQ (draft-04 §5.2 "Padding": controls the REQ length).
    pub probe_padding: usize,
    /// Ask for the ACK on another delivery connection (draft-04 §5.2 R-CID); `None` = same one.
    pub reverse_cid: Option<u8>,
    /// Whether a Suspect path stays in the steering set ([`PathMonitor::usable`]).
    pub keep_suspect_usable: bool,
    /// Sequence number of the first probe REQ.
    pub first_sequence_number: u16,
    /// Quick failure detection (0 disables): an Active path with no sign of life (keep-alive,
    /// probe ACK or data) for this long, while a probe sent after its last sign of life has
    /// gone unanswered for longer than the path's RTO (SRTT + 4 RTTVAR), becomes Suspect at
    /// once, without waiting out `probe_timeout_ns` for `suspect_after` probes. Set it above
    /// the peer's keep-alive period (a live path always shows something that often).
    pub quick_silence_ns: u64,
}

impl Default for PathMonitorConfig {
    fn default() -> Self {
        PathMonitorConfig {
            probe_interval_ns: 200 * super::MS,
            initial_probe_interval_ns: 100 * super::MS,
            probe_timeout_ns: 500 * super::MS,
            loss_window: 20,
            suspect_after: 2,
            down_after: 4,
            up_after: 2,
            keepalive_timeout_ns: 2_000 * super::MS,
            probe_padding: 0,
            reverse_cid: None,
            keep_suspect_usable: false,
            first_sequence_number: 0,
            quick_silence_ns: 0,
        }
    }
}

/// Health of a delivery connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathState {
    /// Initialization phase (draft-04 §5.2): not yet carrying user data.
    Probing,
    /// Carrying user data, probes answered.
    Active,
    /// Probes lost or silence; leaves steering unless `keep_suspect_usable`.
    Suspect,
    /// Declared dead; probed at the initial rate until it answers `up_after` times in a row.
    Down,
}

/// A probe REQ the caller should build and send on this delivery connection (draft-04 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeToSend {
    /// Probing Sequence Number.
    pub sequence_number: u16,
    /// Probing Flag bit #0: a Probe ACK is expected.
    pub ack_requested: bool,
    /// Probing Flag bit #1: active phase (1) or initialization phase (0).
    pub active_phase: bool,
    /// Reverse Connection ID; only ever `Some` when `ack_requested` (§5.2: R-CID is present only
    /// if bits #0 and #2 are both set).
    pub reverse_cid: Option<u8>,
    /// Padding length in bytes.
    pub padding_len: usize,
}

impl ProbeToSend {
    /// The §5.2 Probing Flag byte (bit 0 = most significant, `WIRE.md`: `0x80` ACK expected,
    /// `0x40` active phase, `0x20` R-CID present).
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.ack_requested {
            f |= 0x80;
        }
        if self.active_phase {
            f |= 0x40;
        }
        // draft-04 §5.2: bit #2 "SHOULD be set to 0 if the Bit #0 is 0".
        if self.ack_requested && self.reverse_cid.is_some() {
            f |= 0x20;
        }
        f
    }
}

/// Counters of one path monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathMonitorStats {
    /// Probe REQs handed out by `poll`.
    pub probes_sent: u64,
    /// ACKs matched to an outstanding probe (each gave an RTT sample).
    pub acks_matched: u64,
    /// ACKs for a probe that was never sent or is no longer tracked (including late ACKs of
    /// probes already declared lost).
    pub acks_unknown: u64,
    /// Second and later ACKs of an already acknowledged probe.
    pub acks_duplicate: u64,
    /// Probes declared lost.
    pub probes_lost: u64,
    /// Keep-alives received.
    pub keepalives: u64,
    /// State transitions.
    pub transitions: u64,
    /// Active paths made Suspect by quick failure detection (`quick_silence_ns`).
    pub quick_suspects: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Empty,
    Outstanding,
    Acked,
    Lost,
}

#[derive(Debug, Clone, Copy)]
struct ProbeSlot {
    sn: u16,
    sent_at: Instant,
    state: SlotState,
}

/// Monitor of one delivery connection.
#[derive(Debug, Clone)]
pub struct PathMonitor {
    config: PathMonitorConfig,
    state: PathState,
    last_change: Instant,
    next_sn: u16,
    next_probe_at: Instant,
    ring: [ProbeSlot; OUTSTANDING],
    /// Probe outcomes, newest in bit 0; 1 = lost.
    history: u64,
    /// Number of valid bits in `history` (≤ loss window).
    history_len: u32,
    consecutive_acks: u32,
    consecutive_losses: u32,
    last_alive: Instant,
    srtt: Option<u64>,
    rttvar: u64,
    min_rtt: Option<u64>,
    latest_rtt: Option<u64>,
    stats: PathMonitorStats,
}

impl PathMonitor {
    /// A monitor in the Probing state; the first `poll` sends a probe at once.
    pub fn new(config: PathMonitorConfig) -> PathMonitor {
        let mut config = config;
        config.loss_window = config.loss_window.clamp(1, MAX_LOSS_WINDOW);
        PathMonitor {
            config,
            state: PathState::Probing,
            last_change: 0,
            next_sn: config.first_sequence_number,
            next_probe_at: 0,
            ring: [ProbeSlot {
                sn: 0,
                sent_at: 0,
                state: SlotState::Empty,
            }; OUTSTANDING],
            history: 0,
            history_len: 0,
            consecutive_acks: 0,
            consecutive_losses: 0,
            last_alive: 0,
            srtt: None,
            rttvar: 0,
            min_rtt: None,
            latest_rtt: None,
            stats: PathMonitorStats::default(),
        }
    }

    /// The configuration in force (loss window clamped).
    pub fn config(&self) -> &PathMonitorConfig {
        &self.config
    }

    /// Change where ACKs should come back (draft-04 §5.2 R-CID), from the next probe on.
    pub fn set_reverse_cid(&mut self, reverse_cid: Option<u8>) {
        self.config.reverse_cid = reverse_cid;
    }

    /// Current state.
    pub fn state(&self) -> PathState {
        self.state
    }

    /// When the state last changed (0 before any change).
    pub fn last_change(&self) -> Instant {
        self.last_change
    }

    /// Counters.
    pub fn stats(&self) -> &PathMonitorStats {
        &self.stats
    }

    /// Whether steering may use this path.
    pub fn usable(&self) -> bool {
        match self.state {
            PathState::Active => true,
            PathState::Suspect => self.config.keep_suspect_usable,
            PathState::Probing | PathState::Down => false,
        }
    }

    /// Smoothed RTT (RFC 6298 §2), once there is a sample.
    pub fn srtt_ns(&self) -> Option<u64> {
        self.srtt
    }

    /// RTT variation (RFC 6298 §2); 0 before the first sample.
    pub fn rttvar_ns(&self) -> u64 {
        self.rttvar
    }

    /// Smallest RTT sample seen.
    pub fn min_rtt_ns(&self) -> Option<u64> {
        self.min_rtt
    }

    /// Most recent RTT sample.
    pub fn latest_rtt_ns(&self) -> Option<u64> {
        self.latest_rtt
    }

    /// One-way delay estimate: half the smoothed RTT.
    // AMBIGUITY: draft-04 §5.2 gives no timestamps, so one-way delay cannot be measured; we
    // assume a symmetric path (also when the ACK returns on another connection via R-CID).
    pub fn owd_estimate_ns(&self) -> Option<u64> {
        self.srtt.map(|s| s / 2)
    }

    /// One-way propagation delay estimate: half the smallest RTT (same symmetry assumption).
    /// What steering and delay compensation use: they model the queueing themselves, and the
    /// smoothed RTT of a loaded path would count its queue twice.
    pub fn propagation_owd_ns(&self) -> Option<u64> {
        self.min_rtt.map(|m| m / 2)
    }

    /// Fraction of the last `loss_window` probe outcomes that were losses (0 with no outcome).
    pub fn loss(&self) -> f64 {
        if self.history_len == 0 {
            0.0
        } else {
            f64::from(self.lost_in_window()) / f64::from(self.history_len)
        }
    }

    fn lost_in_window(&self) -> u32 {
        (self.history & window_mask(self.history_len)).count_ones()
    }

    /// Weight steering should use: 0 when not usable, else `configured_weight × (1 − loss)`,
    /// never below 1 while usable (a usable path with a nonzero weight keeps a share).
    pub fn implied_weight(&self, configured_weight: u32) -> u32 {
        if !self.usable() || configured_weight == 0 {
            return 0;
        }
        if self.history_len == 0 {
            return configured_weight;
        }
        let kept = u64::from(self.history_len - self.lost_in_window());
        let w = u64::from(configured_weight) * kept / u64::from(self.history_len);
        u32::try_from(w).unwrap_or(u32::MAX).max(1)
    }

    /// A probe ACK arrived carrying Probing Acknowledgement Number `ack_number` (draft-04 §5.2).
    pub fn on_probe_ack(&mut self, ack_number: u16, now: Instant) {
        self.ack(ack_number, now, true);
    }

    /// A probe ACK whose round trip did not use this path both ways (the REQ went over another
    /// connection with R-CID = this one): it proves the path carries packets and counts for
    /// its state, but gives no RTT sample of the path.
    pub fn on_probe_ack_unmeasured(&mut self, ack_number: u16, now: Instant) {
        self.ack(ack_number, now, false);
    }

    fn ack(&mut self, ack_number: u16, now: Instant, measured: bool) {
        self.expire(now);
        let slot = &mut self.ring[ack_number as usize % OUTSTANDING];
        if slot.sn != ack_number || slot.state == SlotState::Empty {
            self.stats.acks_unknown += 1;
            return;
        }
        match slot.state {
            SlotState::Outstanding => {
                slot.state = SlotState::Acked;
                let rtt = now.saturating_sub(slot.sent_at);
                self.lose_older_than(ack_number, now);
                self.stats.acks_matched += 1;
                if measured {
                    self.rtt_sample(rtt);
                }
                self.last_alive = self.last_alive.max(now);
                self.record(false, now);
            }
            SlotState::Acked => self.stats.acks_duplicate += 1,
            // Late ACK of a probe already counted as lost: the loss stands (the path was too
            // slow for the timeout) and the sample would be an outlier.
            SlotState::Lost | SlotState::Empty => self.stats.acks_unknown += 1,
        }
    }

    /// A keep-alive arrived on this connection (draft-04 §5.1).
    pub fn on_keepalive(&mut self, now: Instant) {
        self.stats.keepalives += 1;
        self.alive(now);
    }

    /// User data arrived on this connection: proof of liveness like a keep-alive.
    pub fn on_data(&mut self, now: Instant) {
        self.alive(now);
    }

    fn alive(&mut self, now: Instant) {
        // on_data runs per packet: only pay for the timer scan when a silence deadline passed
        // (probe timeouts are applied by the next poll or ACK).
        if self.silence_deadline().is_some_and(|t| now >= t) {
            self.expire(now);
        }
        // Liveness only postpones the silence check; it never raises a path (that takes probe
        // ACKs, which also measure it).
        self.last_alive = self.last_alive.max(now);
    }

    /// Run timers and return the next probe REQ to send, if one is due. Call until `None`.
    pub fn poll(&mut self, now: Instant) -> Option<ProbeToSend> {
        self.expire(now);
        if now < self.next_probe_at {
            return None;
        }
        let sn = self.next_sn;
        self.next_sn = sn.wrapping_add(1);
        let slot = &mut self.ring[sn as usize % OUTSTANDING];
        let evicted = slot.state == SlotState::Outstanding;
        *slot = ProbeSlot {
            sn,
            sent_at: now,
            state: SlotState::Outstanding,
        };
        if evicted {
            // The ring is full of unanswered probes: the oldest counts as lost.
            self.record(true, now);
        }
        self.stats.probes_sent += 1;
        let active_phase = self.carries_data();
        self.next_probe_at = now.saturating_add(self.interval().max(1));
        // We always ask for an ACK: without one there is no RTT or loss to measure.
        Some(ProbeToSend {
            sequence_number: sn,
            ack_requested: true,
            active_phase,
            reverse_cid: self.config.reverse_cid,
            padding_len: self.config.probe_padding,
        })
    }

    /// Earliest time at which `poll` has something to do (next probe, a probe timeout, or the
    /// keep-alive silence check).
    pub fn next_deadline(&self) -> Instant {
        let mut d = self.next_probe_at;
        for s in &self.ring {
            if s.state == SlotState::Outstanding {
                d = d.min(s.sent_at.saturating_add(self.config.probe_timeout_ns));
            }
        }
        if let Some(t) = self.silence_deadline() {
            d = d.min(t);
        }
        if let Some(t) = self.quick_deadline() {
            d = d.min(t);
        }
        d
    }

    /// Retransmission timeout of a probe (RFC 6298 §2: SRTT + 4 RTTVAR), at most the probe
    /// timeout; the probe timeout itself before any RTT sample.
    pub fn rto_ns(&self) -> u64 {
        let timeout = self.config.probe_timeout_ns;
        self.srtt
            .map_or(timeout, |s| s.saturating_add(4 * self.rttvar))
            .min(timeout)
    }

    /// When quick failure detection would fire if nothing arrives meanwhile: the later of the
    /// silence limit and the RTO of the oldest probe sent since the last sign of life.
    fn quick_deadline(&self) -> Option<Instant> {
        let quick = self.config.quick_silence_ns;
        if quick == 0 || self.state != PathState::Active {
            return None;
        }
        let rto = self.rto_ns();
        let probe = self
            .ring
            .iter()
            .filter(|s| s.state == SlotState::Outstanding && s.sent_at >= self.last_alive)
            .map(|s| s.sent_at.saturating_add(rto))
            .min()?;
        Some(probe.max(self.last_alive.saturating_add(quick)))
    }

    /// Whether probes are sent in the §5.2 active phase: the path is in the steering set.
    // AMBIGUITY: draft-04 §5.2 defines the Probe Type flag by whether "the network path is
    // included for transmission of user data"; we use exactly `usable()`, so a Suspect path
    // probes in the active phase only when `keep_suspect_usable` is set.
    fn carries_data(&self) -> bool {
        self.usable()
    }

    fn interval(&self) -> u64 {
        match self.state {
            PathState::Active | PathState::Suspect => self.config.probe_interval_ns,
            PathState::Probing | PathState::Down => self.config.initial_probe_interval_ns,
        }
    }

    fn silence_deadline(&self) -> Option<Instant> {
        (self.state == PathState::Active && self.config.keepalive_timeout_ns > 0).then(|| {
            self.last_alive
                .saturating_add(self.config.keepalive_timeout_ns)
        })
    }

    /// Declare lost every outstanding probe whose timeout has passed (oldest first), then check
    /// for silence.
    fn expire(&mut self, now: Instant) {
        let timeout = self.config.probe_timeout_ns;
        for k in (1..=OUTSTANDING as u16).rev() {
            let sn = self.next_sn.wrapping_sub(k);
            let slot = &mut self.ring[sn as usize % OUTSTANDING];
            if slot.state == SlotState::Outstanding
                && slot.sn == sn
                && now >= slot.sent_at.saturating_add(timeout)
            {
                slot.state = SlotState::Lost;
                let at = slot.sent_at.saturating_add(timeout);
                self.record(true, at);
            }
        }
        if let Some(t) = self.silence_deadline() {
            if now >= t {
                self.transition(PathState::Suspect, t);
            }
        }
        if let Some(t) = self.quick_deadline() {
            if now >= t {
                self.stats.quick_suspects += 1;
                self.transition(PathState::Suspect, t);
            }
        }
    }

    /// Declare lost every outstanding probe sent before probe `sn` (just acknowledged).
    // AMBIGUITY: draft-04 §5.2 says nothing about loss detection. Probes are spaced by a probe
    // interval (tens of ms or more), so an ACK overtaking an earlier probe's ACK means that probe
    // is lost (RFC 9002 §6.1.1 packet threshold, with threshold 1). Without this, probes lost
    // during an outage would time out after the path recovered and break the ACK run that
    // hysteresis requires.
    fn lose_older_than(&mut self, sn: u16, now: Instant) {
        let age = self.next_sn.wrapping_sub(sn);
        for k in ((age + 1)..=OUTSTANDING as u16).rev() {
            let old = self.next_sn.wrapping_sub(k);
            let slot = &mut self.ring[old as usize % OUTSTANDING];
            if slot.state == SlotState::Outstanding && slot.sn == old {
                slot.state = SlotState::Lost;
                self.record(true, now);
            }
        }
    }

    /// Account one probe outcome and apply the state machine.
    fn record(&mut self, lost: bool, at: Instant) {
        self.history = (self.history << 1) | u64::from(lost);
        self.history_len = (self.history_len + 1).min(self.config.loss_window);
        if lost {
            self.stats.probes_lost += 1;
            self.consecutive_losses = self.consecutive_losses.saturating_add(1);
            self.consecutive_acks = 0;
            let up = matches!(self.state, PathState::Active | PathState::Suspect);
            if up && self.consecutive_losses >= self.config.down_after {
                // Down is checked first, so down_after <= suspect_after skips Suspect.
                self.transition(PathState::Down, at);
            } else if self.state == PathState::Active
                && self.consecutive_losses >= self.config.suspect_after
            {
                self.transition(PathState::Suspect, at);
            }
            // AMBIGUITY: draft-04 §5.2 has no states; a path still in its initialization phase
            // that loses probes stays Probing (it never carried data, so "Down" adds nothing).
        } else {
            self.consecutive_acks = self.consecutive_acks.saturating_add(1);
            self.consecutive_losses = 0;
            if self.state != PathState::Active && self.consecutive_acks >= self.config.up_after {
                self.transition(PathState::Active, at);
            }
        }
    }

    fn transition(&mut self, to: PathState, at: Instant) {
        if self.state == to {
            return;
        }
        let from = self.state;
        self.state = to;
        self.last_change = at;
        self.stats.transitions += 1;
        match to {
            PathState::Active => {
                // Start the silence clock afresh, and probe at the active rate from now.
                self.last_alive = self.last_alive.max(at);
                self.consecutive_losses = 0;
            }
            PathState::Suspect | PathState::Down => {
                // Hysteresis: ACKs seen before the fall do not count towards recovery.
                self.consecutive_acks = 0;
            }
            PathState::Probing => {}
        }
        if matches!(from, PathState::Probing | PathState::Down)
            != matches!(to, PathState::Probing | PathState::Down)
        {
            // The probe period changes with the phase; apply it from the current time rather
            // than waiting out a long initial-phase period.
            self.next_probe_at = self.next_probe_at.min(at.saturating_add(self.interval()));
        }
    }

    /// RFC 6298 §2.2/§2.3 smoothing, alpha = 1/8, beta = 1/4, in integer nanoseconds.
    fn rtt_sample(&mut self, rtt: u64) {
        self.latest_rtt = Some(rtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                // RTTVAR uses the old SRTT (RFC 6298 §2.3: "updated ... before SRTT").
                let var = (3 * u128::from(self.rttvar) + u128::from(srtt.abs_diff(rtt))) / 4;
                let smoothed = (7 * u128::from(srtt) + u128::from(rtt)) / 8;
                // Both are weighted means of u64 values, so they fit in u64.
                self.rttvar = u64::try_from(var).unwrap_or(u64::MAX);
                self.srtt = Some(u64::try_from(smoothed).unwrap_or(u64::MAX));
            }
        }
    }
}

fn window_mask(len: u32) -> u64 {
    if len >= 64 {
        u64::MAX
    } else {
        (1u64 << len) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::MS;
    use proptest::prelude::*;

    fn cfg() -> PathMonitorConfig {
        PathMonitorConfig {
            probe_interval_ns: 100 * MS,
            initial_probe_interval_ns: 50 * MS,
            probe_timeout_ns: 300 * MS,
            loss_window: 20,
            suspect_after: 2,
            down_after: 4,
            up_after: 2,
            keepalive_timeout_ns: 1_000 * MS,
            probe_padding: 16,
            reverse_cid: None,
            keep_suspect_usable: false,
            first_sequence_number: 0,
            quick_silence_ns: 0,
        }
    }

    /// Poll at `now`, expecting a probe, and ACK it `rtt` later. Returns the probe.
    fn exchange(m: &mut PathMonitor, now: Instant, rtt: u64) -> ProbeToSend {
        let p = m.poll(now).expect("probe due");
        m.on_probe_ack(p.sequence_number, now + rtt);
        p
    }

    /// A monitor brought to Active at 50 ms + 10 ms.
    fn active(config: PathMonitorConfig) -> PathMonitor {
        let mut m = PathMonitor::new(config);
        exchange(&mut m, 0, 10 * MS);
        exchange(&mut m, 50 * MS, 10 * MS);
        assert_eq!(m.state(), PathState::Active);
        m
    }

    /// Poll every ms from `from` to `to` without answering; returns the probes sent.
    fn silent(m: &mut PathMonitor, from: Instant, to: Instant) -> Vec<ProbeToSend> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            while let Some(p) = m.poll(t) {
                out.push(p);
            }
            t += MS;
        }
        out
    }

    #[test]
    fn s5_2_starts_in_initialization_phase() {
        let mut m = PathMonitor::new(cfg());
        assert_eq!(m.state(), PathState::Probing);
        assert!(!m.usable());
        assert_eq!(m.implied_weight(10), 0);
        let p = m.poll(0).unwrap();
        assert_eq!(p.sequence_number, 0);
        assert!(p.ack_requested);
        assert!(
            !p.active_phase,
            "§5.2 bit #1 = 0 in the initialization phase"
        );
        assert_eq!(p.padding_len, 16);
        assert_eq!(p.flags(), 0x80);
        assert_eq!(m.poll(0), None, "one probe per interval");
        assert_eq!(m.next_deadline(), 50 * MS);
        assert_eq!(m.poll(49 * MS), None);
        assert_eq!(m.poll(50 * MS).unwrap().sequence_number, 1);
    }

    #[test]
    fn probing_becomes_active_after_up_after_acks() {
        let mut m = PathMonitor::new(cfg());
        exchange(&mut m, 0, 10 * MS);
        assert_eq!(m.state(), PathState::Probing, "one ACK is not enough");
        exchange(&mut m, 50 * MS, 10 * MS);
        assert_eq!(m.state(), PathState::Active);
        assert_eq!(m.last_change(), 60 * MS);
        assert_eq!(m.stats().transitions, 1);
        assert!(m.usable());
    }

    #[test]
    fn probing_stays_probing_when_probes_are_lost() {
        let mut m = PathMonitor::new(cfg());
        silent(&mut m, 0, 2_000 * MS);
        assert_eq!(m.state(), PathState::Probing);
        assert!(m.stats().probes_lost > 4);
        assert_eq!(m.stats().transitions, 0);
    }

    #[test]
    fn s5_2_active_phase_probes_set_bit_1_and_use_active_interval() {
        let mut m = active(cfg());
        // Last probe was sent at 50 ms in the initial phase; the next is due 50 ms later.
        assert_eq!(m.poll(99 * MS), None);
        let p = exchange(&mut m, 100 * MS, 10 * MS);
        assert!(p.active_phase);
        assert_eq!(p.flags(), 0xC0);
        assert_eq!(m.next_deadline(), 200 * MS, "probe_interval while Active");
    }

    #[test]
    fn active_becomes_suspect_after_suspect_after_losses() {
        let mut m = active(cfg());
        let probes = silent(&mut m, 100 * MS, 500 * MS);
        // Probes at 100 and 200 ms are lost at 400 and 500 ms.
        assert_eq!(probes[0].sequence_number, 2);
        assert_eq!(m.state(), PathState::Suspect);
        assert_eq!(m.last_change(), 500 * MS);
        assert!(!m.usable());
        assert_eq!(m.implied_weight(5), 0);
    }

    #[test]
    fn one_loss_does_not_make_active_suspect() {
        let mut m = active(cfg());
        silent(&mut m, 100 * MS, 100 * MS); // probe at 100 ms, never answered
        exchange(&mut m, 200 * MS, 10 * MS);
        assert_eq!(
            m.stats().probes_lost,
            1,
            "overtaken by the ACK of a later probe"
        );
        assert_eq!(m.consecutive_acks, 1);
        exchange(&mut m, 300 * MS, 10 * MS);
        silent(&mut m, 301 * MS, 1_000 * MS);
        assert_eq!(
            m.stats().probes_lost,
            1 + 4,
            "probes 400..=700 ms timed out"
        );
        assert_eq!(m.state(), PathState::Down);
    }

    #[test]
    fn an_ack_overtaking_an_earlier_probe_marks_it_lost() {
        let mut m = PathMonitor::new(cfg());
        let p0 = m.poll(0).unwrap();
        let p1 = m.poll(50 * MS).unwrap();
        m.on_probe_ack(p1.sequence_number, 60 * MS);
        assert_eq!(m.stats().probes_lost, 1);
        m.on_probe_ack(p0.sequence_number, 61 * MS);
        assert_eq!(
            m.stats().acks_unknown,
            1,
            "the overtaken probe's ACK is late"
        );
        assert_eq!(m.loss(), 0.5);
    }

    #[test]
    fn suspect_becomes_down_after_down_after_losses() {
        let mut m = active(cfg());
        silent(&mut m, 100 * MS, 699 * MS);
        assert_eq!(m.state(), PathState::Suspect, "3 losses");
        silent(&mut m, 700 * MS, 700 * MS);
        assert_eq!(
            m.state(),
            PathState::Down,
            "4th loss (probe sent at 400 ms)"
        );
        assert_eq!(m.last_change(), 700 * MS);
        assert_eq!(m.stats().transitions, 3);
        // Down probes in the initialization phase at the initial rate.
        let p = m.poll(10_000 * MS).unwrap();
        assert!(!p.active_phase);
        assert_eq!(m.next_deadline(), 10_050 * MS);
    }

    #[test]
    fn active_goes_straight_down_when_down_after_is_not_above_suspect_after() {
        let mut m = active(PathMonitorConfig {
            suspect_after: 3,
            down_after: 3,
            ..cfg()
        });
        silent(&mut m, 100 * MS, 600 * MS);
        assert_eq!(m.state(), PathState::Down);
        assert_eq!(
            m.stats().transitions,
            2,
            "Probing->Active->Down, no Suspect"
        );
    }

    #[test]
    fn zero_keepalive_timeout_disables_the_silence_check() {
        let mut m = active(PathMonitorConfig {
            keepalive_timeout_ns: 0,
            ..cfg()
        });
        // Keep answering probes but send nothing else for a long time.
        let mut t = 100 * MS;
        while t < 60_000 * MS {
            if let Some(p) = m.poll(t) {
                m.on_probe_ack(p.sequence_number, t + MS);
            }
            t += 10 * MS;
        }
        assert_eq!(m.state(), PathState::Active);
        assert_eq!(m.stats().transitions, 1);
    }

    #[test]
    fn hysteresis_single_ack_after_down_is_not_active() {
        let mut m = active(cfg());
        silent(&mut m, 100 * MS, 800 * MS);
        assert_eq!(m.state(), PathState::Down);
        let t = 2_000 * MS;
        silent(&mut m, 801 * MS, t - MS);
        exchange(&mut m, t, 5 * MS);
        assert_eq!(m.state(), PathState::Down, "one ACK is not enough");
        // A loss in between restarts the count.
        silent(&mut m, t + 50 * MS, t + 350 * MS);
        exchange(&mut m, t + 400 * MS, 5 * MS);
        assert_eq!(m.state(), PathState::Down);
        exchange(&mut m, t + 450 * MS, 5 * MS);
        assert_eq!(m.state(), PathState::Active);
        assert_eq!(m.last_change(), t + 455 * MS);
    }

    #[test]
    fn suspect_recovers_only_after_up_after_acks() {
        let mut m = active(PathMonitorConfig {
            down_after: 10,
            ..cfg()
        });
        let probes = silent(&mut m, 100 * MS, 500 * MS);
        assert_eq!(m.state(), PathState::Suspect);
        let last = probes.last().unwrap().sequence_number;
        m.on_probe_ack(last, 510 * MS);
        assert_eq!(m.state(), PathState::Suspect, "one ACK is not enough");
        exchange(&mut m, 600 * MS, 5 * MS);
        assert_eq!(m.state(), PathState::Active);
        assert_eq!(m.last_change(), 605 * MS);
    }

    #[test]
    fn keep_suspect_usable_keeps_suspect_paths_in_steering() {
        let mut m = active(PathMonitorConfig {
            keep_suspect_usable: true,
            ..cfg()
        });
        silent(&mut m, 100 * MS, 500 * MS);
        assert_eq!(m.state(), PathState::Suspect);
        assert!(m.usable());
        assert!(m.poll(600 * MS).unwrap().active_phase);
    }

    #[test]
    fn s5_1_keepalive_silence_makes_active_suspect() {
        let config = PathMonitorConfig {
            probe_interval_ns: 10_000 * MS, // probes too rare to matter here
            ..cfg()
        };
        let mut m = active(config);
        assert_eq!(m.next_deadline(), 100 * MS); // next probe (initial-phase schedule)
        m.poll(100 * MS).unwrap(); // unanswered but its timeout is later than the checks below
        m.on_keepalive(500 * MS);
        m.on_data(900 * MS);
        assert_eq!(m.poll(1_800 * MS), None);
        // The probe at 100 ms was lost at 400 ms: one loss only.
        assert_eq!(m.state(), PathState::Active);
        assert_eq!(m.next_deadline(), 1_900 * MS, "silence deadline");
        assert_eq!(m.poll(1_900 * MS), None);
        assert_eq!(m.state(), PathState::Suspect);
        assert_eq!(m.last_change(), 1_900 * MS);
        assert_eq!(m.stats().keepalives, 1);
    }

    #[test]
    fn keepalive_and_data_do_not_raise_a_down_path() {
        let mut m = active(cfg());
        silent(&mut m, 100 * MS, 800 * MS);
        assert_eq!(m.state(), PathState::Down);
        for i in 0..10 {
            m.on_keepalive(900 * MS + i * MS);
            m.on_data(900 * MS + i * MS);
        }
        assert_eq!(m.state(), PathState::Down);
    }

    #[test]
    fn rfc6298_rtt_smoothing_on_known_samples() {
        let mut m = PathMonitor::new(cfg());
        assert_eq!(m.srtt_ns(), None);
        assert_eq!(m.owd_estimate_ns(), None);
        exchange(&mut m, 0, 100 * MS);
        assert_eq!(m.srtt_ns(), Some(100 * MS));
        assert_eq!(m.rttvar_ns(), 50 * MS);
        exchange(&mut m, 1_000 * MS, 200 * MS);
        // RTTVAR = 3/4·50 + 1/4·|100−200| = 62.5 ms; SRTT = 7/8·100 + 1/8·200 = 112.5 ms.
        assert_eq!(m.rttvar_ns(), 62_500_000);
        assert_eq!(m.srtt_ns(), Some(112_500_000));
        exchange(&mut m, 2_000 * MS, 100 * MS);
        // RTTVAR = 3/4·62.5 + 1/4·12.5 = 50 ms; SRTT = 7/8·112.5 + 1/8·100 = 110.9375 ms.
        assert_eq!(m.rttvar_ns(), 50 * MS);
        assert_eq!(m.srtt_ns(), Some(110_937_500));
        assert_eq!(m.min_rtt_ns(), Some(100 * MS));
        assert_eq!(m.latest_rtt_ns(), Some(100 * MS));
        assert_eq!(m.owd_estimate_ns(), Some(55_468_750));
        assert_eq!(m.propagation_owd_ns(), Some(50 * MS));
    }

    #[test]
    fn loss_is_measured_over_the_last_loss_window_probes() {
        let mut m = PathMonitor::new(PathMonitorConfig {
            loss_window: 4,
            suspect_after: 10,
            down_after: 10,
            ..cfg()
        });
        let mut t = 0;
        let mut step = |m: &mut PathMonitor, answer: bool| {
            let p = m.poll(t).unwrap();
            if answer {
                m.on_probe_ack(p.sequence_number, t + MS);
            }
            m.expire(t + 300 * MS); // settle an unanswered probe before looking
            t += 400 * MS;
        };
        step(&mut m, true);
        assert_eq!(m.loss(), 0.0);
        step(&mut m, false);
        assert_eq!(m.loss(), 0.5);
        step(&mut m, true);
        step(&mut m, true);
        assert_eq!(m.loss(), 0.25);
        assert_eq!(m.state(), PathState::Active);
        assert_eq!(m.implied_weight(100), 75);
        for _ in 0..4 {
            step(&mut m, true);
        }
        assert_eq!(m.loss(), 0.0, "the loss slid out of the window");
        assert_eq!(m.implied_weight(100), 100);
        assert_eq!(m.implied_weight(0), 0);
    }

    #[test]
    fn unknown_duplicate_and_late_acks_are_ignored_and_counted() {
        let mut m = PathMonitor::new(cfg());
        let p = exchange(&mut m, 0, 10 * MS);
        m.on_probe_ack(p.sequence_number, 20 * MS);
        assert_eq!(m.stats().acks_duplicate, 1);
        m.on_probe_ack(999, 20 * MS);
        assert_eq!(m.stats().acks_unknown, 1, "never sent");
        let late = m.poll(50 * MS).unwrap();
        m.on_probe_ack(late.sequence_number, 400 * MS); // timeout was 350 ms
        assert_eq!(m.stats().acks_unknown, 2, "late ACK");
        assert_eq!(m.stats().acks_matched, 1);
        assert_eq!(m.stats().probes_lost, 1);
        assert_eq!(m.srtt_ns(), Some(10 * MS), "no sample from ignored ACKs");
        assert_eq!(m.state(), PathState::Probing);
    }

    #[test]
    fn s5_2_r_cid_only_with_ack_requested() {
        let mut m = PathMonitor::new(PathMonitorConfig {
            reverse_cid: Some(7),
            ..cfg()
        });
        let p = m.poll(0).unwrap();
        assert_eq!(p.reverse_cid, Some(7));
        assert!(p.ack_requested);
        assert_eq!(p.flags(), 0xA0);
        m.set_reverse_cid(None);
        assert_eq!(m.poll(50 * MS).unwrap().flags(), 0x80);
        // §5.2: bit #2 SHOULD be 0 when no ACK is expected, even if an R-CID is at hand.
        let no_ack = ProbeToSend {
            sequence_number: 0,
            ack_requested: false,
            active_phase: true,
            reverse_cid: Some(7),
            padding_len: 0,
        };
        assert_eq!(no_ack.flags(), 0x40);
        let active = active(PathMonitorConfig {
            reverse_cid: Some(3),
            ..cfg()
        })
        .poll(100 * MS)
        .unwrap();
        assert_eq!(active.flags(), 0xE0);
    }

    #[test]
    fn probe_sequence_numbers_wrap() {
        let mut m = PathMonitor::new(PathMonitorConfig {
            first_sequence_number: 65_534,
            ..cfg()
        });
        let sns: Vec<u16> = (0..4)
            .map(|i| exchange(&mut m, i * 100 * MS, (i + 1) * MS).sequence_number)
            .collect();
        assert_eq!(sns, [65_534, 65_535, 0, 1]);
        assert_eq!(m.stats().acks_matched, 4);
        assert_eq!(m.latest_rtt_ns(), Some(4 * MS));
        assert_eq!(m.state(), PathState::Active);
    }

    #[test]
    fn full_ring_counts_the_oldest_probe_as_lost() {
        let mut m = PathMonitor::new(PathMonitorConfig {
            probe_timeout_ns: 1_000_000 * MS,
            ..cfg()
        });
        for i in 0..OUTSTANDING as u64 {
            m.poll(i * 50 * MS).unwrap();
        }
        assert_eq!(m.stats().probes_lost, 0);
        m.poll(OUTSTANDING as u64 * 50 * MS).unwrap();
        assert_eq!(m.stats().probes_lost, 1);
        m.on_probe_ack(0, OUTSTANDING as u64 * 50 * MS);
        assert_eq!(m.stats().acks_unknown, 1, "slot reused by the new probe");
        m.on_probe_ack(1, OUTSTANDING as u64 * 50 * MS);
        assert_eq!(m.stats().acks_matched, 1);
    }

    #[test]
    fn next_deadline_includes_probe_timeouts() {
        let mut m = PathMonitor::new(PathMonitorConfig {
            initial_probe_interval_ns: 1_000 * MS,
            ..cfg()
        });
        m.poll(0).unwrap();
        assert_eq!(m.next_deadline(), 300 * MS);
        assert_eq!(m.poll(300 * MS), None);
        assert_eq!(m.stats().probes_lost, 1);
        assert_eq!(m.next_deadline(), 1_000 * MS);
    }

    #[test]
    fn detection_time_is_about_interval_times_down_after_plus_timeout() {
        let c = PathMonitorConfig::default();
        let mut m = PathMonitor::new(c);
        let mut t = 0;
        while m.state() != PathState::Active {
            if let Some(p) = m.poll(t) {
                m.on_probe_ack(p.sequence_number, t + 20 * MS);
            }
            t += MS;
        }
        // Run healthy for a while, then the path dies at `dead`.
        let dead = 10_000 * MS;
        while t < dead {
            if let Some(p) = m.poll(t) {
                m.on_probe_ack(p.sequence_number, t + 20 * MS);
            }
            t += MS;
        }
        assert_eq!(m.state(), PathState::Active);
        while m.state() != PathState::Down {
            m.poll(t);
            t += MS;
        }
        let detect = m.last_change() - dead;
        let nominal = c.probe_interval_ns * u64::from(c.down_after) + c.probe_timeout_ns;
        assert!(
            detect <= nominal && detect + c.probe_interval_ns >= nominal,
            "detected after {detect} ns, nominal {nominal} ns"
        );
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Poll(u64),
        AckLast(u64),
        AckAny(u16),
        KeepAlive,
        Data,
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            (0u64..200).prop_map(Ev::Poll),
            (0u64..50).prop_map(Ev::AckLast),
            any::<u16>().prop_map(Ev::AckAny),
            Just(Ev::KeepAlive),
            Just(Ev::Data),
        ]
    }

    proptest! {
        #[test]
        fn state_machine_invariants_hold_for_any_event_sequence(
            events in proptest::collection::vec(ev(), 1..300),
            window in 1u32..80,
            up_after in 1u32..4,
            first in any::<u16>(),
        ) {
            let mut m = PathMonitor::new(PathMonitorConfig {
                loss_window: window,
                up_after,
                first_sequence_number: first,
                ..cfg()
            });
            let mut now = 0u64;
            let mut last_sent = None;
            for e in events {
                let before = m.state();
                match e {
                    Ev::Poll(dt) => {
                        now += dt * MS;
                        while let Some(p) = m.poll(now) {
                            prop_assert!(p.ack_requested);
                            prop_assert_eq!(p.active_phase, m.usable());
                            last_sent = Some(p.sequence_number);
                        }
                        // Nothing left to do now: the next deadline lies in the future.
                        prop_assert!(m.next_deadline() > now);
                    }
                    Ev::AckLast(dt) => {
                        now += dt * MS;
                        if let Some(sn) = last_sent {
                            m.on_probe_ack(sn, now);
                        }
                    }
                    Ev::AckAny(sn) => m.on_probe_ack(sn, now),
                    Ev::KeepAlive => m.on_keepalive(now),
                    Ev::Data => m.on_data(now),
                }
                let after = m.state();
                if after == PathState::Active && before != PathState::Active {
                    // Hysteresis: only a run of up_after ACKs raises a path.
                    prop_assert!(m.consecutive_acks >= up_after);
                }
                prop_assert!((0.0..=1.0).contains(&m.loss()));
                prop_assert!(m.implied_weight(1000) <= 1000);
                prop_assert_eq!(m.implied_weight(1000) > 0, m.usable());
                let st = m.stats();
                prop_assert!(st.acks_matched + st.probes_lost <= st.probes_sent);
            }
        }
    }

    #[test]
    fn quick_detection_suspects_a_silent_path_after_one_unanswered_probe() {
        let mut m = PathMonitor::new(PathMonitorConfig {
            probe_interval_ns: 100 * MS,
            initial_probe_interval_ns: 100 * MS,
            probe_timeout_ns: 1000 * MS,
            quick_silence_ns: 150 * MS,
            ..PathMonitorConfig::default()
        });
        // Two answered probes (RTT 40 ms): Active, SRTT about 40 ms.
        let mut t = 0;
        for _ in 0..3 {
            let p = m.poll(t).expect("probe due");
            m.on_probe_ack(p.sequence_number, t + 40 * MS);
            t += 100 * MS;
        }
        assert_eq!(m.state(), PathState::Active);
        // Keep-alives every 100 ms keep it Active however long the probe ACKs take.
        let cut = t;
        m.poll(t);
        m.on_keepalive(t + 90 * MS);
        m.poll(t + 100 * MS);
        assert_eq!(m.state(), PathState::Active, "alive: keep-alive 90 ms ago");
        // Then nothing at all: Suspect once silent 150 ms with a probe past its RTO, well
        // before the 1 s probe timeout.
        let last = cut + 90 * MS;
        let due = m.next_deadline();
        assert!(due <= last + 150 * MS + 100 * MS, "next deadline {due}");
        let mut at = last;
        while m.state() == PathState::Active && at < last + 1000 * MS {
            at += 5 * MS;
            m.poll(at);
        }
        assert_eq!(m.state(), PathState::Suspect);
        assert!(
            at - last <= 200 * MS,
            "suspect {} ms after the last sign of life",
            (at - last) / MS
        );
        assert_eq!(m.stats().quick_suspects, 1);
        assert!(!m.usable());
    }

    #[test]
    fn quick_detection_is_off_by_default_and_needs_an_unanswered_probe() {
        // Off: silence alone (below keepalive_timeout) changes nothing.
        let mut m = PathMonitor::new(PathMonitorConfig::default());
        let p = m.poll(0).expect("probe");
        m.on_probe_ack(p.sequence_number, 10 * MS);
        let p = m.poll(100 * MS).expect("probe");
        m.on_probe_ack(p.sequence_number, 110 * MS);
        assert_eq!(m.state(), PathState::Active);
        m.poll(400 * MS);
        assert_eq!(m.state(), PathState::Active);
        // On, but every probe answered: silence between probes is not a failure.
        let mut m = PathMonitor::new(PathMonitorConfig {
            quick_silence_ns: 50 * MS,
            probe_interval_ns: 200 * MS,
            ..PathMonitorConfig::default()
        });
        // Probes every 200 ms (Active), each answered after 10 ms; polled every 50 ms in
        // between: 190 ms of silence each time, far beyond 50 ms, yet no probe is unanswered.
        for step in 0..40u64 {
            let t = step * 50 * MS;
            if let Some(p) = m.poll(t) {
                m.on_probe_ack(p.sequence_number, t + 10 * MS);
            }
        }
        assert_eq!(m.state(), PathState::Active);
        assert_eq!(m.stats().quick_suspects, 0);
    }
}

//! Measured capacity of a shaped delivery connection, sans-IO: the rate at which the sender's
//! shaper ([`crate::engine::Shaper`]) may send without making the access link queue.
//!
//! A shaped path's own queue is in the sender; the access link queues only when the shaper
//! sends faster than the link carries. So on a shaped path, probe round trips above the path's
//! minimum say one thing: *this path's* shaper rate is above its capacity (without the shaper,
//! a TCP sender's overshoot queued on every path at once and the signal could not say which
//! share was wrong; perf/RESULTS.md). And while the link queues, it says by how much: the queue
//! (as delay, `q`) grows by `out / capacity - 1` seconds per second, where `out` is what the
//! shaper let out. Per probe round trip (a probe sent after the last change):
//!
//! * queue below `queue_low_ns` while the shaper is the bottleneck (what it is given is at
//!   least `busy_pct` of its rate): raise the rate by `startup_gain_pct` (until the first queue)
//!   or `increase_pct` (after it);
//! * a queue: from two samples, `capacity = out / (1 + dq/dt)`, and the new rate is
//!   `capacity × (1 − (q − queue_low) / drain_ns)`, so the queue drains to `queue_low_ns`
//!   within about `drain_ns`;
//! * a probe lost before the acknowledged one (a full link queue drops probes too, and a full
//!   queue no longer grows): cut by `cut_pct`.
//!
//! The rate stays within `min_bps..=max_bps`. It is never raised while the shaper has less to
//! send than it may (an idle path says nothing about its capacity).

use super::{Instant, MS};

/// Tuning of a [`CapacityEstimator`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityConfig {
    /// The rate before anything is measured.
    pub initial_bps: u64,
    pub min_bps: u64,
    pub max_bps: u64,
    /// Queueing delay (probe RTT − minimum RTT) the link may have: below it the link counts as
    /// not queued, and a queue drains towards it.
    pub queue_low_ns: u64,
    /// Time to drain a measured queue in.
    pub drain_ns: u64,
    /// Start-up growth per round trip, percent of the rate.
    pub startup_gain_pct: u64,
    /// Growth per round trip without a queue after start-up, percent.
    pub increase_pct: u64,
    /// Cut on a lost probe, percent.
    pub cut_pct: u64,
    /// The shaper counts as the bottleneck when it is given at least this percentage of its
    /// rate.
    pub busy_pct: u64,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            initial_bps: 10_000_000,
            min_bps: 1_000_000,
            max_bps: 100_000_000_000,
            queue_low_ns: 10 * MS,
            drain_ns: 500 * MS,
            startup_gain_pct: 50,
            increase_pct: 3,
            cut_pct: 10,
            busy_pct: 90,
        }
    }
}

/// Counters of one estimator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapacityStats {
    pub increases: u64,
    pub decreases: u64,
    /// When start-up ended (0: still in start-up).
    pub startup_exit: Instant,
}

/// One shaped path's capacity estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityEstimator {
    cfg: CapacityConfig,
    rate_bps: u64,
    startup: bool,
    /// When the rate last changed: only probes sent after it show its effect.
    changed_at: Instant,
    /// The previous usable sample's time and queueing delay (after the last change).
    prev: Option<(Instant, u64)>,
    /// What the shaper was given lately (bits per second), from the caller's counters.
    offered_bps: u64,
    stats: CapacityStats,
}

impl CapacityEstimator {
    pub fn new(cfg: CapacityConfig) -> Self {
        CapacityEstimator {
            rate_bps: cfg.initial_bps.clamp(cfg.min_bps, cfg.max_bps),
            cfg,
            startup: true,
            changed_at: 0,
            prev: None,
            offered_bps: 0,
            stats: CapacityStats::default(),
        }
    }

    /// The rate the shaper may send at.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    pub fn in_startup(&self) -> bool {
        self.startup
    }

    pub fn stats(&self) -> &CapacityStats {
        &self.stats
    }

    /// What the path's shaper was given over the caller's last measurement interval (the
    /// engine's transmit counters: what it let out plus what waits or was dropped).
    pub fn on_sent_rate(&mut self, offered_bps: u64) {
        self.offered_bps = offered_bps;
    }

    /// A probe round trip `rtt_ns` measured at `now` on a path whose minimum round trip is
    /// `min_rtt_ns`; `lost`: an earlier probe was lost; `hold_ns`: how long the sender holds
    /// data back before its shaper (delay compensation; probes are not held, so a change shows
    /// only in probes sent that much later). Returns the new rate when it changed.
    pub fn on_rtt(
        &mut self,
        now: Instant,
        rtt_ns: u64,
        min_rtt_ns: u64,
        lost: bool,
        hold_ns: u64,
    ) -> Option<u64> {
        let c = self.cfg;
        let q = rtt_ns.saturating_sub(min_rtt_ns);
        // Only a probe sent after the last change reached the link shows its effect.
        if self.changed_at > 0 && now.saturating_sub(rtt_ns) <= self.changed_at + hold_ns {
            return None;
        }
        let prev = self.prev.replace((now, q));
        let rate = u128::from(self.rate_bps);
        // What left the shaper: its rate (it had more).
        let out = rate;
        let busy = self.offered_bps.saturating_mul(100) >= self.rate_bps.saturating_mul(c.busy_pct);
        // Only while the shaper is the bottleneck does its rate say anything (a queue it did
        // not fill, or one left when its traffic stopped, is not its doing).
        if !busy {
            return None;
        }
        let new = if lost {
            self.end_startup(now);
            rate * u128::from(100 - c.cut_pct.min(99)) / 100
        } else if q > c.queue_low_ns {
            // Two samples a few ms or more apart give the queue's growth (2^20 fixed point).
            let (t0, q0) = prev?;
            if now < t0 + MS {
                return None;
            }
            self.end_startup(now);
            let growth = (i128::from(q as i64 - q0 as i64) << 20) / i128::from(now - t0);
            let denom = ((1i128 << 20) + growth).max(1 << 18) as u128;
            let capacity = (out << 20) / denom;
            let excess = u128::from(q - c.queue_low_ns);
            let drain = u128::from(c.drain_ns.max(1));
            capacity * drain.saturating_sub(excess).max(drain / 2) / drain
        } else {
            let pct = if self.startup {
                c.startup_gain_pct
            } else {
                c.increase_pct
            };
            rate * u128::from(100 + pct) / 100
        };
        let new = u64::try_from(new)
            .unwrap_or(u64::MAX)
            .clamp(c.min_bps, c.max_bps);
        if new == self.rate_bps {
            return None;
        }
        if new > self.rate_bps {
            self.stats.increases += 1;
        } else {
            self.stats.decreases += 1;
        }
        self.rate_bps = new;
        self.changed_at = now.max(1);
        self.prev = None;
        Some(new)
    }

    fn end_startup(&mut self, now: Instant) {
        if self.startup {
            self.startup = false;
            self.stats.startup_exit = now.max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fluid link of `capacity` with a queue of `queue_ms` at its rate, fed by a shaper at
    /// the estimator's rate whenever `demand` exceeds it, probed every 100 ms; returns the
    /// rates (Mbit/s) seen at each probe and the bytes the link dropped.
    fn run(
        capacity: u64,
        owd_ms: u64,
        demand: u64,
        secs: u64,
    ) -> (Vec<f64>, f64, CapacityEstimator) {
        let mut e = CapacityEstimator::new(CapacityConfig::default());
        let dt = MS;
        let limit = capacity as f64 / 8.0 * 0.050; // bytes: 50 ms at the link rate
        let (mut queue, mut dropped) = (0.0f64, 0.0f64);
        let mut rates = Vec::new();
        let mut sent_in_interval = 0.0;
        let min_rtt = 2 * owd_ms * MS;
        for ms in 1..=secs * 1000 {
            let now = ms * MS;
            let send = demand.min(e.rate_bps()) as f64 / 8.0 * (dt as f64 / 1e9);
            sent_in_interval += send;
            queue += send;
            queue -= (capacity as f64 / 8.0 * (dt as f64 / 1e9)).min(queue);
            if queue > limit {
                dropped += queue - limit;
                queue = limit;
            }
            if ms % 100 == 0 {
                e.on_sent_rate((sent_in_interval * 8.0 * 10.0) as u64);
                sent_in_interval = 0.0;
                let q_ns = (queue * 8.0 / capacity as f64 * 1e9) as u64;
                let rtt = min_rtt + q_ns;
                e.on_rtt(
                    now,
                    rtt,
                    min_rtt,
                    q_ns >= (limit * 8.0 / capacity as f64 * 1e9) as u64,
                    0,
                );
                rates.push(e.rate_bps() as f64 / 1e6);
            }
        }
        (rates, dropped, e)
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn converges_on_the_capacity_of_a_busy_path_and_keeps_its_queue_short() {
        for (cap_mbit, owd) in [(50u64, 20u64), (20, 60), (100, 10), (5, 30)] {
            let cap = cap_mbit * 1_000_000;
            let (rates, _, e) = run(cap, owd, 10 * cap, 20);
            assert!(!e.in_startup(), "{cap_mbit}: left start-up");
            // After 5 s: within a few percent of the capacity on average, never far above.
            let tail = &rates[50..];
            let m = mean(tail) / cap_mbit as f64;
            assert!(
                (0.95..=1.03).contains(&m),
                "{cap_mbit} Mbit/s: mean {m:.3} of capacity, {tail:?}"
            );
            let max = tail.iter().cloned().fold(0.0, f64::max) / cap_mbit as f64;
            assert!(max <= 1.08, "{cap_mbit} Mbit/s: peak {max:.3}");
        }
    }

    #[test]
    fn startup_reaches_the_capacity_within_a_second() {
        let (rates, _, e) = run(50_000_000, 20, 1_000_000_000, 3);
        let exit = e.stats().startup_exit;
        assert!(exit > 0 && exit <= 1000 * MS, "start-up ended at {exit} ns");
        assert!(rates[10] >= 40.0, "rate after 1 s: {}", rates[10]);
    }

    #[test]
    fn an_idle_or_light_path_is_not_raised() {
        // 3 Mbit/s of demand on a 50 Mbit/s link: the shaper is never the bottleneck.
        let (rates, dropped, _) = run(50_000_000, 20, 3_000_000, 5);
        assert!(rates.iter().all(|&r| r <= 10.0), "{rates:?}");
        assert_eq!(dropped, 0.0);
    }

    #[test]
    fn a_queue_gives_the_capacity_from_its_growth_and_is_drained() {
        let mut e = CapacityEstimator::new(CapacityConfig {
            initial_bps: 60_000_000,
            ..CapacityConfig::default()
        });
        e.on_sent_rate(100_000_000);
        let min = 40 * MS;
        // The first queued sample has nothing to compare with.
        assert_eq!(e.on_rtt(100 * MS, min + 15 * MS, min, false, 0), None);
        // 10 ms more in 100 ms: sent 1.1 x the capacity, 60 / 1.1 = 54.5 Mbit/s; 15 ms above
        // the 10-ms target drain within 500 ms: x (1 - 15 / 500).
        let r = e.on_rtt(200 * MS, min + 25 * MS, min, false, 0).unwrap();
        let want = 60e6 / 1.1 * (1.0 - 15.0 / 500.0);
        assert!((r as f64 - want).abs() < 0.01 * want, "{r} vs {want}");
        assert!(!e.in_startup());
        // No decision on a probe sent before the change reached the link (hold 30 ms).
        assert_eq!(e.on_rtt(250 * MS, min + 5 * MS, min, false, 30 * MS), None);
        // A lost probe: cut by 10 %.
        assert_eq!(e.on_rtt(400 * MS, min, min, true, 0), Some(r * 90 / 100));
        // Not the bottleneck: a queue says nothing.
        e.on_sent_rate(1_000_000);
        assert_eq!(e.on_rtt(600 * MS, min + 30 * MS, min, false, 0), None);
        assert_eq!(e.on_rtt(700 * MS, min + 40 * MS, min, false, 0), None);
    }
}

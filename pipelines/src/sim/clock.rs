//! A virtual clock and the one discrete-event primitive simulations need: jump to the earliest
//! pending deadline instead of spinning.

use crate::flow::Instant;

/// Simulated time. It only moves forward, and only when the simulation says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtualClock {
    now: Instant,
}

impl VirtualClock {
    /// A clock reading `start`.
    pub const fn new(start: Instant) -> Self {
        VirtualClock { now: start }
    }

    /// The current time.
    pub const fn now(&self) -> Instant {
        self.now
    }

    /// Moves to `t` and returns the new time. A `t` in the past is ignored: simulated time never
    /// runs backwards, so state machines fed by this clock see monotonic timestamps.
    pub fn advance_to(&mut self, t: Instant) -> Instant {
        self.now = self.now.max(t);
        self.now
    }

    /// Moves forward by `d` nanoseconds (saturating at `Instant::MAX`) and returns the new time.
    pub fn advance_by(&mut self, d: u64) -> Instant {
        self.now = self.now.saturating_add(d);
        self.now
    }

    /// Moves to the earliest of `deadlines` (see [`next_event`]) and returns it, or returns
    /// `None` and stays put when nothing is pending.
    pub fn advance_to_next(
        &mut self,
        deadlines: impl IntoIterator<Item = Option<Instant>>,
    ) -> Option<Instant> {
        next_event(deadlines).map(|t| self.advance_to(t))
    }
}

/// The earliest of the deadlines that are set (`Some`), or `None` when none is.
///
/// Typical use: `next_event([link_a.next_arrival(), link_b.next_arrival(), engine.poll_timeout()])`.
pub fn next_event(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::MS;

    #[test]
    fn next_event_is_min_of_somes() {
        assert_eq!(
            next_event([None, Some(5 * MS), Some(2 * MS), None]),
            Some(2 * MS)
        );
        assert_eq!(next_event([None, None]), None);
        assert_eq!(next_event(std::iter::empty()), None);
        assert_eq!(next_event([Some(0)]), Some(0));
    }

    #[test]
    fn clock_never_runs_backwards() {
        let mut c = VirtualClock::new(10);
        assert_eq!(c.advance_to(20), 20);
        assert_eq!(c.advance_to(15), 20);
        assert_eq!(c.now(), 20);
        assert_eq!(c.advance_by(5), 25);
        assert_eq!(c.advance_by(u64::MAX), u64::MAX);
    }

    #[test]
    fn advance_to_next_jumps_or_stays() {
        let mut c = VirtualClock::new(100);
        assert_eq!(c.advance_to_next([Some(300), Some(200)]), Some(200));
        assert_eq!(c.now(), 200);
        assert_eq!(c.advance_to_next([None]), None);
        assert_eq!(c.now(), 200);
        // A deadline already passed does not move the clock back.
        assert_eq!(c.advance_to_next([Some(50)]), Some(200));
    }
}

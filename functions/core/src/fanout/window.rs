//! How many workers a coordinator keeps running at once, learnt from Lambda's throttling.
//!
//! A function's concurrency (its `ReservedConcurrentExecutions`, or the account's) may hold
//! fewer workers than a query wants. Lambda then refuses the rest with
//! `TooManyRequestsException`, and a refused worker never ran. The window starts open to every
//! task; each refusal closes it to the invocations still under way, and each answer opens it
//! by one (additive increase, multiplicative decrease, as TCP does). A refused task waits for
//! room instead of spending an attempt, since a running worker ends within the function's
//! timeout and frees its slot.
//!
//! When nothing of the query runs and the window is shut, no answer will open it: one probe at
//! a time goes out after a backoff, and each refused probe spends an attempt of the task that
//! sent it ([`Refusal::Probe`]); at the task's `max_attempts` the query fails `Throttled`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct State {
    /// At most this many invocations at once (0: only a probe).
    limit: usize,
    in_flight: usize,
    /// While shut: no probe before this.
    probe_at: Option<Instant>,
}

/// The coordinator's concurrency window.
#[derive(Debug)]
pub struct Window(Mutex<State>);

/// What a refusal costs the refused task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Others of the query run: wait for room, no attempt spent.
    Wait,
    /// Nothing runs: an attempt is spent, and the next probe waits for the backoff.
    Probe,
}

impl Window {
    pub fn new(limit: usize) -> Self {
        Self(Mutex::new(State {
            limit: limit.max(1),
            in_flight: 0,
            probe_at: None,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes room for one invocation if there is any now.
    pub fn try_enter(&self, now: Instant) -> bool {
        let mut s = self.state();
        let room = if s.limit == 0 {
            s.in_flight == 0 && s.probe_at.is_none_or(|at| now >= at)
        } else {
            s.in_flight < s.limit
        };
        if room {
            s.in_flight += 1;
            s.probe_at = None;
        }
        room
    }

    /// An invocation ended with an answer (or a failure that was not a refusal).
    pub fn answered(&self) {
        let mut s = self.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.limit = s.limit.saturating_add(1);
    }

    /// An invocation that ended without counting as an answer: a race's loser, dropped.
    pub fn left(&self) {
        let mut s = self.state();
        s.in_flight = s.in_flight.saturating_sub(1);
    }

    /// Lambda refused an invocation: the window closes to what still runs.
    pub fn refused(&self, now: Instant, backoff: Duration) -> Refusal {
        let mut s = self.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.limit = s.limit.min(s.in_flight);
        if s.in_flight > 0 {
            Refusal::Wait
        } else {
            s.probe_at = Some(now + backoff);
            Refusal::Probe
        }
    }

    /// Invocations under way.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.state().in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_close_the_window_to_what_runs_and_answers_reopen_it() {
        let w = Window::new(8);
        let now = Instant::now();
        let second = Duration::from_secs(1);
        for _ in 0..8 {
            assert!(w.try_enter(now));
        }
        assert!(!w.try_enter(now));
        // Two were admitted; six refused, each while others still run.
        for _ in 0..6 {
            assert_eq!(w.refused(now, second), Refusal::Wait);
        }
        assert_eq!(w.in_flight(), 2);
        assert!(!w.try_enter(now), "no room until one of the two ends");
        w.answered();
        // Room for one more than before: the window probes upward.
        assert!(w.try_enter(now));
        assert!(w.try_enter(now));
        assert!(!w.try_enter(now));
    }

    #[test]
    fn a_shut_window_lets_one_probe_out_after_the_backoff() {
        let w = Window::new(3);
        let now = Instant::now();
        let backoff = Duration::from_millis(300);
        for _ in 0..3 {
            assert!(w.try_enter(now));
        }
        assert_eq!(w.refused(now, backoff), Refusal::Wait);
        assert_eq!(w.refused(now, backoff), Refusal::Wait);
        assert_eq!(w.refused(now, backoff), Refusal::Probe);
        assert!(!w.try_enter(now), "the probe waits for its backoff");
        let later = now + backoff;
        assert!(w.try_enter(later));
        assert!(!w.try_enter(later), "one probe at a time");
        // The probe got a slot: the window opens by one.
        w.answered();
        assert!(w.try_enter(later));
        assert!(!w.try_enter(later));
    }

    #[test]
    fn a_dropped_duplicate_frees_its_room_without_opening_the_window() {
        let w = Window::new(1);
        let now = Instant::now();
        assert!(w.try_enter(now));
        w.left();
        assert!(w.try_enter(now));
        assert!(!w.try_enter(now));
    }
}

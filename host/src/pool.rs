//! The warm execution environments of one function, as Lambda keeps them: an idle one is
//! reused (the most recently used first, so the others age out), a new one is created when
//! all are busy, up to a limit, and idle ones are dropped after a while.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Environments of one function. `E` is an environment; the pool only counts and orders
/// them.
pub struct Pool<E> {
    state: Mutex<State<E>>,
    limit: u32,
}

struct State<E> {
    /// Idle environments with the time each was last used, oldest first.
    idle: Vec<(E, Instant)>,
    /// Idle plus busy plus being created.
    live: u32,
}

/// What a caller gets from [`Pool::checkout`].
pub enum Checkout<E> {
    /// A warm environment.
    Warm(E),
    /// None is idle; the caller may create one (it is already counted).
    New,
    /// None is idle and `limit` are busy.
    Full,
}

impl<E> Pool<E> {
    pub fn new(limit: u32) -> Self {
        Self {
            state: Mutex::new(State {
                idle: Vec::new(),
                live: 0,
            }),
            limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<E>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn checkout(&self) -> Checkout<E> {
        let mut state = self.lock();
        if let Some((env, _)) = state.idle.pop() {
            return Checkout::Warm(env);
        }
        if state.live < self.limit {
            state.live += 1;
            return Checkout::New;
        }
        Checkout::Full
    }

    /// Returns a healthy environment after an invocation.
    pub fn checkin(&self, env: E) {
        self.lock().idle.push((env, Instant::now()));
    }

    /// Forgets a busy environment (or a creation) that ended.
    pub fn discard(&self) {
        let mut state = self.lock();
        state.live = state.live.saturating_sub(1);
    }

    /// Removes the environments idle for longer than `idle_timeout`, and returns them so the
    /// caller drops them outside the lock.
    pub fn reap(&self, idle_timeout: Duration) -> Vec<E> {
        let now = Instant::now();
        let mut state = self.lock();
        let keep_from = state
            .idle
            .iter()
            .position(|(_, used)| now.duration_since(*used) < idle_timeout)
            .unwrap_or(state.idle.len());
        let reaped: Vec<E> = state.idle.drain(..keep_from).map(|(e, _)| e).collect();
        state.live -= reaped.len() as u32;
        reaped
    }

    /// (idle, live) environments.
    pub fn counts(&self) -> (u32, u32) {
        let state = self.lock();
        (state.idle.len() as u32, state.live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_warm_then_creates_up_to_the_limit() {
        let pool = Pool::new(2);
        assert!(matches!(pool.checkout(), Checkout::New));
        assert!(matches!(pool.checkout(), Checkout::New));
        assert!(matches!(pool.checkout(), Checkout::Full));
        pool.checkin("a");
        assert!(matches!(pool.checkout(), Checkout::Warm("a")));
        pool.discard();
        assert!(matches!(pool.checkout(), Checkout::New));
        assert_eq!(pool.counts(), (0, 2));
    }

    #[test]
    fn most_recently_used_first_and_idle_ones_reaped() {
        let pool = Pool::new(4);
        for _ in 0..2 {
            assert!(matches!(pool.checkout(), Checkout::New));
        }
        pool.checkin("old");
        std::thread::sleep(Duration::from_millis(30));
        pool.checkin("new");
        assert_eq!(pool.reap(Duration::from_millis(20)), vec!["old"]);
        assert_eq!(pool.counts(), (1, 1));
        assert!(matches!(pool.checkout(), Checkout::Warm("new")));
        assert!(
            pool.reap(Duration::ZERO).is_empty(),
            "busy ones are never reaped"
        );
    }
}

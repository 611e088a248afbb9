//! Whether a served connection is waiting for its peer, and since when:
//! what a full server reads to choose the connection it can close to make
//! room. The serve loop marks it once per burst (when it is about to wait
//! for more input, and when input came), so keeping it costs one clock
//! read and two relaxed stores per burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Marks `idle_since` while the connection is working on a request.
const WORKING: u64 = u64::MAX;

/// One connection's activity, shared by its serving thread and its server.
#[derive(Debug)]
pub struct Activity {
    /// The server's clock origin: `idle_since` counts from it.
    epoch: Instant,
    /// Milliseconds from `epoch` to when the connection began waiting for
    /// its peer, or [`WORKING`].
    idle_since: AtomicU64,
}

impl Activity {
    /// A connection just accepted: waiting for its first request.
    pub fn new(epoch: Instant) -> Activity {
        let activity = Activity {
            epoch,
            idle_since: AtomicU64::new(WORKING),
        };
        activity.waiting();
        activity
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(WORKING - 1)
    }

    /// The connection has answered everything and waits for its peer.
    pub fn waiting(&self) {
        self.idle_since.store(self.now(), Ordering::Relaxed);
    }

    /// Input came: the connection is working until it waits again.
    pub fn working(&self) {
        self.idle_since.store(WORKING, Ordering::Relaxed);
    }

    /// How long it has waited for its peer; `None` while it works.
    pub fn idle_for(&self) -> Option<Duration> {
        match self.idle_since.load(Ordering::Relaxed) {
            WORKING => None,
            since => Some(Duration::from_millis(self.now().saturating_sub(since))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_only_while_waiting() {
        let epoch = Instant::now() - Duration::from_secs(5);
        let activity = Activity::new(epoch);
        assert!(activity.idle_for().is_some());
        activity.working();
        assert_eq!(activity.idle_for(), None);
        activity.waiting();
        assert!(
            activity
                .idle_for()
                .is_some_and(|idle| idle < Duration::from_secs(1))
        );
    }
}

//! Where a stage's finished results go: its [`Outbox`], handed to the
//! collector in batches, giving the queries' window slots back as it does.

use std::sync::Mutex;

use super::super::Kind;
use super::super::collector::{Collector, ResultLines, Results};
use super::super::replies::{HopError, failed_line};
use super::window::Window;
use crate::sync::unpoisoned;

/// Where every stage hands its finished results: the collector, shared.
/// A stage stores its batch itself, under the lock, rather than sending it
/// to a thread of the collector's own: that would cost a wake-up per batch.
pub(super) type Finished<'w> = &'w Mutex<dyn HandIn + Send + 'w>;

/// The collector, as the stages see it.
pub(super) trait HandIn {
    /// Stores a batch of results, leaving it empty.
    fn hand_in(&mut self, batch: &mut ResultLines);
}

impl<R: Results> HandIn for &mut Collector<'_, R> {
    fn hand_in(&mut self, batch: &mut ResultLines) {
        self.store(batch);
        batch.clear();
        // The stage handing in is about to wait: a good moment to flush.
        self.idle();
    }
}

/// The results one stage has finished, handed to the collector in batches.
/// Passing a batch on gives its queries' window slots back.
pub(super) struct Outbox<'w> {
    pub(super) results: ResultLines,
    pub(super) slots: usize,
    pub(super) collector: Finished<'w>,
    pub(super) window: &'w Window,
}

impl<'w> Outbox<'w> {
    pub(super) fn new(collector: Finished<'w>, window: &'w Window) -> Self {
        Outbox {
            results: ResultLines::default(),
            slots: 0,
            collector,
            window,
        }
    }

    /// Another outbox to the same collector, for another stage.
    pub(super) fn another(&self) -> Outbox<'w> {
        Outbox::new(self.collector, self.window)
    }

    pub(super) fn answered(&mut self, index: usize, line: &str, kind: Kind) {
        self.results.push(index, line, kind);
        self.slots += 1;
    }

    pub(super) fn failed(&mut self, index: usize, hostname: &str, error: &HopError) {
        self.answered(index, &failed_line(hostname, error), Kind::Failed);
    }

    /// A malformed query line: it never took a window slot.
    pub(super) fn malformed(&mut self, index: usize, line: &str) {
        self.results.push(index, line, Kind::Failed);
    }

    /// Passes this stage's work on: its finished queries' slots back to
    /// the window, and, when they make room for the parked burst, that
    /// burst to the AS (the stage that made the room sends it, so no
    /// wake-up of the sender stands in the round trip); then its results
    /// to the collector.
    pub(super) fn pass_on(&mut self) {
        if let Some(launch) = self.window.give_back(std::mem::take(&mut self.slots)) {
            launch.send_parked_burst();
        }
        if !self.results.is_empty() {
            unpoisoned(self.collector.lock()).hand_in(&mut self.results);
        }
    }
}

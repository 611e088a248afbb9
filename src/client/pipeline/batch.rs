//! What travels between the stages: the queries each hop is waiting on
//! ([`Sent`]), and each stage's finished results ([`Outbox`]), handed to the
//! collector in batches.

use std::sync::Mutex;
use std::time::Instant;

use super::super::Kind;
use super::super::collector::{Collector, ResultLines, Results};
use super::super::replies::{HopError, failed_line};
use super::window::Window;
use crate::packed::Packed;
use crate::sync::unpoisoned;

/// Queries written on one hop and waiting for their replies there, in the
/// order they were written, with their hostnames (and, when the client
/// proves its keys, their keys).
#[derive(Default)]
pub(super) struct Sent {
    /// Each query's hostname and key end to end, tagged with the query's
    /// index and where its hostname ends.
    queries: Packed<(usize, usize)>,
    /// When the batch's requests were handed to the socket.
    pub(super) written_at: Option<Instant>,
}

/// One query of a [`Sent`] batch.
#[derive(Clone, Copy)]
pub(super) struct Waiting<'a> {
    pub(super) index: usize,
    pub(super) hostname: &'a str,
    /// Empty unless the client proves its keys.
    pub(super) key: &'a str,
}

impl Sent {
    pub(super) fn push(&mut self, query: Waiting<'_>) {
        self.queries.push_parts(
            &[query.hostname, query.key],
            (query.index, query.hostname.len()),
        );
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.queries.len()
    }

    /// Each query, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Waiting<'_>> {
        self.queries.iter().map(|(text, &(index, hostname_len))| {
            // The hostname was pushed whole before the key: it ends on a
            // character boundary within the text.
            let (hostname, key) = text.split_at_checked(hostname_len).unwrap_or((text, ""));
            Waiting {
                index,
                hostname,
                key,
            }
        })
    }
}

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

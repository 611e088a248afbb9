//! Stage 1, the sender: reads the query file, signs each burst, and sends
//! it to the AS through the window.

use std::io::BufRead;

use super::super::QueryLines;
use super::super::replies::malformed_line;
use super::super::signing::Requests;
use super::batch::Waiting;
use super::outbox::Outbox;
use super::window::SignedBurst;
use crate::query::Job;

/// Most requests signed and written to the AS at once (about 48 KiB).
pub(super) const SEND_BATCH: usize = 1024;

/// Stage 1: reads, signs and sends each query to the AS.
pub(super) struct AsSender<'w> {
    pub(super) outbox: Outbox<'w>,
    pub(super) requests: Requests,
    /// The next burst, read and signed but not yet sent.
    pub(super) ready: SignedBurst,
    /// Whether the router needs each query's key, to prove it to a TLDS.
    pub(super) prove: bool,
}

impl AsSender<'_> {
    /// Sends every query; the number of jobs (queries and malformed lines)
    /// read, or why the file could not be read.
    pub(super) fn run<R: BufRead>(mut self, mut queries: QueryLines<R>) -> std::io::Result<usize> {
        // Sending a wide window half at a time keeps every hop busy with
        // one half while the other is on its way, and each half is still
        // large enough that its system calls and wake-ups cost little per
        // query. (A quarter at a time measured slower: more, smaller bursts
        // cost more than the extra overlap gains; the whole window at once
        // leaves the hops waiting on each other.)
        let window = self.outbox.window;
        let burst = (window.size / 2).clamp(1, SEND_BATCH);
        let mut index = 0;
        loop {
            // The next burst is read and signed before there is room for
            // it, so that once room comes it goes out at once: reading and
            // signing are off the round trip's path.
            let more = self.prepare(&mut queries, &mut index, burst);
            self.outbox.pass_on();
            window.send(std::mem::take(&mut self.ready));
            if !matches!(more, Ok(true)) {
                // Dropping the sender ends the window's input.
                return more.map(|_| index);
            }
        }
    }

    /// Reads up to `burst` queries and signs them into the ready burst
    /// (malformed lines go straight to the outbox); `false` once the input
    /// is at its end.
    pub(super) fn prepare<R: BufRead>(
        &mut self,
        queries: &mut QueryLines<R>,
        index: &mut usize,
        burst: usize,
    ) -> std::io::Result<bool> {
        let mut more = Ok(true);
        while self.ready.sent.len() < burst {
            let job = match queries.next_job() {
                Ok(Some(job)) => job,
                Ok(None) => {
                    more = Ok(false);
                    break;
                }
                Err(err) => {
                    more = Err(err);
                    break;
                }
            };
            match job {
                Job::Ask(query) => {
                    self.requests.push(&query);
                    self.ready.sent.push(Waiting {
                        index: *index,
                        hostname: query.hostname,
                        key: if self.prove { query.key } else { "" },
                    });
                }
                Job::Malformed { line, reason } => {
                    self.outbox
                        .malformed(*index, &malformed_line(line, &reason));
                }
            }
            *index += 1;
        }
        self.requests.write_to(&mut self.ready.requests);
        more
    }
}

impl Drop for AsSender<'_> {
    /// However the sender ends, even by a panic, the AS and the router
    /// learn that no more is coming, or the run would never end.
    fn drop(&mut self) {
        self.outbox.window.end_input();
    }
}

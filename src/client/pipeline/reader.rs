//! Stage 3, a reader: one per TLDS connection, reading that TLDS's replies
//! in the order its queries were sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;

use super::super::replies::{HopError, answer_of};
use super::batch::{Sent, Waiting};
use super::next_batch_by_replies;
use super::outbox::Outbox;
use crate::connection::{LineReader, Socket};

/// Stage 3: reads one TLDS's replies, in the order its queries were sent.
pub(super) struct TldsReader<'w> {
    pub(super) reader: LineReader<Socket>,
    pub(super) outbox: Outbox<'w>,
    pub(super) broken: Arc<AtomicBool>,
    /// `host:port`, for error lines.
    pub(super) name: String,
}

impl TldsReader<'_> {
    pub(super) fn run(mut self, queued: &Receiver<Sent>) {
        let mut failure: Option<Arc<HopError>> = None;
        loop {
            let outbox = &mut self.outbox;
            let broken = &self.broken;
            let Some(batch) = next_batch_by_replies(
                queued,
                &mut self.reader,
                || outbox.pass_on(),
                // The router opens a new connection for the next hostname.
                || broken.store(true, Ordering::Release),
            ) else {
                break;
            };
            for Waiting {
                index, hostname, ..
            } in batch.iter()
            {
                if let Some(error) = &failure {
                    self.outbox.failed(index, hostname, error);
                    continue;
                }
                if !self.reader.has_buffered_line() {
                    self.outbox.pass_on();
                }
                match answer_of(self.reader.read_line(), hostname, &self.name) {
                    Ok((line, kind)) => self.outbox.answered(index, &line, kind),
                    Err(error) => {
                        self.broken.store(true, Ordering::Release);
                        let _ = self.reader.get_ref().shutdown(std::net::Shutdown::Both);
                        self.outbox.failed(index, hostname, &error);
                        failure = Some(error);
                    }
                }
            }
        }
        self.outbox.pass_on();
    }
}

//! Putting results back in input order, and handing them to a [`Results`]
//! as soon as every earlier one has been: the only results held are those
//! that overtook an earlier query, at most a window's worth.

use std::collections::VecDeque;
use std::io;

use super::{ClientError, Kind, Summary};

/// Where the collector puts result lines, in input order.
pub trait Results {
    fn line(&mut self, line: &str) -> io::Result<()>;

    /// No further result is ready yet: a good moment to flush buffers.
    fn idle(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<F: FnMut(&str) -> io::Result<()>> Results for F {
    fn line(&mut self, line: &str) -> io::Result<()> {
        self(line)
    }
}

/// A query's finished result line, and what kind of result it is.
#[derive(Debug)]
pub(super) struct ResultLine {
    /// The query's place among the file's queries and malformed lines.
    pub index: usize,
    pub line: String,
    pub kind: Kind,
}

pub(super) struct Collector<'r, R> {
    results: &'r mut R,
    /// Results that arrived before an earlier one, for queries `next..`.
    waiting: VecDeque<Option<ResultLine>>,
    /// Index of the next result to give out.
    next: usize,
    summary: Summary,
    /// The first failure to write a result; later lines are still counted.
    error: Option<io::Error>,
}

impl<'r, R: Results> Collector<'r, R> {
    pub fn new(results: &'r mut R) -> Self {
        Collector {
            results,
            waiting: VecDeque::new(),
            next: 0,
            summary: Summary::default(),
            error: None,
        }
    }

    pub fn store(&mut self, batch: impl IntoIterator<Item = ResultLine>) {
        for result in batch {
            let Some(offset) = result.index.checked_sub(self.next) else {
                continue;
            };
            if offset >= self.waiting.len() {
                self.waiting.resize_with(offset + 1, || None);
            }
            if let Some(slot) = self.waiting.get_mut(offset) {
                *slot = Some(result);
            }
        }
        while let Some(Some(_)) = self.waiting.front() {
            if let Some(Some(result)) = self.waiting.pop_front() {
                self.emit(&result);
            }
            self.next += 1;
        }
    }

    fn emit(&mut self, result: &ResultLine) {
        self.summary.count(result.kind);
        if log::log_enabled!(log::Level::Trace) {
            log::trace!("result {}: {}", result.index + 1, result.line);
        }
        if self.error.is_none()
            && let Err(err) = self.results.line(&result.line)
        {
            self.error = Some(err);
        }
    }

    pub fn idle(&mut self) {
        if self.error.is_none()
            && let Err(err) = self.results.idle()
        {
            self.error = Some(err);
        }
    }

    /// Every stage has ended after `total` jobs. A result still missing
    /// would be a bug; say so in that query's own line rather than drop it.
    pub fn finish(&mut self, total: usize) {
        while self.next < total {
            let index = self.next;
            let result = self
                .waiting
                .pop_front()
                .flatten()
                .unwrap_or_else(|| ResultLine {
                    index,
                    line: format!("Error: query {} got no result (internal error)", index + 1),
                    kind: Kind::Failed,
                });
            self.emit(&result);
            self.next += 1;
        }
    }

    /// How the run went, once every result has been given out.
    pub fn summary(mut self) -> Result<Summary, ClientError> {
        self.idle();
        match self.error {
            Some(err) => Err(ClientError::Output(err)),
            None => Ok(self.summary),
        }
    }
}

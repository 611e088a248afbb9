//! Putting results back in input order, and handing them to a [`Results`]
//! as soon as every earlier one has been: the only results held are those
//! that overtook an earlier query, at most a window's worth.

use std::collections::VecDeque;
use std::io;

use super::{ClientError, Kind, Summary};
use crate::packed::Packed;

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

/// Finished result lines, end to end in one buffer with each one's query
/// and kind beside: a batch of results costs no allocation per line, and
/// its buffer is reused from batch to batch.
#[derive(Debug, Default)]
pub(super) struct ResultLines(
    /// Each line, tagged with its query (its place among the file's queries
    /// and malformed lines) and its kind.
    Packed<(usize, Kind)>,
);

impl ResultLines {
    pub fn push(&mut self, index: usize, line: &str, kind: Kind) {
        self.0.push(line, (index, kind));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Each line's query, text and kind, in the order pushed.
    fn iter(&self) -> impl Iterator<Item = (usize, &str, Kind)> {
        self.0
            .iter()
            .map(|(line, &(index, kind))| (index, line, kind))
    }
}

pub(super) struct Collector<'r, R> {
    results: &'r mut R,
    /// For queries `next..`: which of `held` is the result that arrived
    /// before an earlier one's.
    waiting: VecDeque<Option<usize>>,
    /// The results that overtook an earlier one, with their kinds.
    held: Packed<Kind>,
    /// Index of the next result to give out.
    next: usize,
    summary: Summary,
    /// The first failure to write a result; later lines are still counted.
    error: Option<io::Error>,
}

/// Held text past which it is compacted, if most of it was given out.
const COMPACT_AT: usize = 1 << 20;

impl<'r, R: Results> Collector<'r, R> {
    pub fn new(results: &'r mut R) -> Self {
        Collector {
            results,
            waiting: VecDeque::new(),
            held: Packed::default(),
            next: 0,
            summary: Summary::default(),
            error: None,
        }
    }

    /// Gives out every result of `batch` whose turn has come, and holds the
    /// rest (copying their text) until it has.
    pub fn store(&mut self, batch: &ResultLines) {
        for (index, line, kind) in batch.iter() {
            match index.checked_sub(self.next) {
                // Already given out: cannot happen, and must not repeat.
                None => {}
                Some(0) => {
                    self.emit(index, line, kind);
                    self.next += 1;
                    self.waiting.pop_front();
                    self.give_out_held();
                }
                Some(offset) => self.hold(offset, line, kind),
            }
        }
    }

    fn hold(&mut self, offset: usize, line: &str, kind: Kind) {
        if offset >= self.waiting.len() {
            self.waiting.resize_with(offset + 1, || None);
        }
        let at = self.held.len();
        self.held.push(line, kind);
        if let Some(slot) = self.waiting.get_mut(offset) {
            *slot = Some(at);
        }
    }

    /// Gives out the held results whose turn has come.
    fn give_out_held(&mut self) {
        while let Some(Some(result)) = self.waiting.front().copied() {
            self.waiting.pop_front();
            self.emit_held(self.next, result);
            self.next += 1;
        }
        if self.waiting.is_empty() {
            self.held.clear();
        } else if self.held.text_len() > COMPACT_AT {
            self.compact();
        }
    }

    /// Drops the text of results already given out, if that is most of it.
    fn compact(&mut self) {
        let held = &self.held;
        let live: usize = self
            .waiting
            .iter()
            .flatten()
            .filter_map(|&at| held.get(at))
            .map(|(line, _)| line.len())
            .sum();
        if live * 2 > self.held.text_len() {
            return;
        }
        let mut kept = Packed::default();
        for slot in self.waiting.iter_mut() {
            if let Some(at) = *slot {
                *slot = self.held.get(at).map(|(line, &kind)| {
                    kept.push(line, kind);
                    kept.len() - 1
                });
            }
        }
        self.held = kept;
    }

    /// Gives out held result number `at`.
    fn emit_held(&mut self, index: usize, at: usize) {
        let held = std::mem::take(&mut self.held);
        match held.get(at) {
            Some((line, &kind)) => self.emit(index, line, kind),
            None => self.emit_missing(index),
        }
        self.held = held;
    }

    /// A result that never came: a bug, said in the query's own line
    /// rather than dropped.
    fn emit_missing(&mut self, index: usize) {
        let line = format!("Error: query {} got no result (internal error)", index + 1);
        self.emit(index, &line, Kind::Failed);
    }

    fn emit(&mut self, index: usize, line: &str, kind: Kind) {
        self.summary.count(kind);
        if log::log_enabled!(log::Level::Trace) {
            log::trace!("result {}: {}", index + 1, line);
        }
        if self.error.is_none()
            && let Err(err) = self.results.line(line)
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
    pub fn give_out_rest(&mut self, total: usize) {
        while self.next < total {
            let index = self.next;
            match self.waiting.pop_front().flatten() {
                Some(at) => self.emit_held(index, at),
                None => self.emit_missing(index),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(index: usize) -> String {
        format!("{index:06} {}", "x".repeat(index % 150))
    }

    /// The lines a collector writes, given `batches` of (index, line) in
    /// the order given, for `total` jobs.
    fn collected<'a>(
        batches: impl IntoIterator<Item = Vec<(usize, &'a str)>>,
        total: usize,
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut record = |line: &str| {
            out.push(line.to_owned());
            Ok(())
        };
        let mut collector = Collector::new(&mut record);
        let mut batch = ResultLines::default();
        for results in batches {
            for (index, line) in results {
                batch.push(index, line, Kind::Found);
            }
            collector.store(&batch);
            batch.clear();
        }
        collector.give_out_rest(total);
        out
    }

    /// Stores batches of the given indexes, in the order given, and checks
    /// every line comes out once, in order, with its own text.
    fn collects_in_order(batches: &[Vec<usize>], total: usize) {
        let expected: Vec<String> = (0..total).map(line_of).collect();
        let out = collected(
            batches.iter().map(|indexes| {
                indexes
                    .iter()
                    .map(|&index| (index, expected[index].as_str()))
                    .collect()
            }),
            total,
        );
        assert_eq!(out.len(), expected.len());
        assert!(out == expected, "lines out of order or altered");
    }

    #[test]
    fn two_readers_one_running_ahead_come_out_in_order() {
        // Evens from one reader, odds from the other, the evens always a
        // few batches ahead: the held text never empties, so it must be
        // compacted (it passes COMPACT_AT many times over) without losing
        // or moving a line.
        let total = 60_000;
        let chunk = 100;
        let evens: Vec<Vec<usize>> = (0..total)
            .step_by(2)
            .collect::<Vec<_>>()
            .chunks(chunk)
            .map(<[usize]>::to_vec)
            .collect();
        let odds: Vec<Vec<usize>> = (1..total)
            .step_by(2)
            .collect::<Vec<_>>()
            .chunks(chunk)
            .map(<[usize]>::to_vec)
            .collect();
        let ahead = 5;
        let mut batches = evens[..ahead].to_vec();
        for (i, odd) in odds.iter().enumerate() {
            batches.push(odd.clone());
            if let Some(even) = evens.get(i + ahead) {
                batches.push(even.clone());
            }
        }
        collects_in_order(&batches, total);
    }

    #[test]
    fn reversed_and_scattered_batches_come_out_in_order() {
        let total = 5_000;
        let reversed: Vec<usize> = (0..total).rev().collect();
        collects_in_order(&[reversed], total);
        let scattered: Vec<Vec<usize>> = (0..7)
            .map(|start| (start..total).step_by(7).collect())
            .rev()
            .collect();
        collects_in_order(&scattered, total);
    }

    #[test]
    fn a_missing_result_gets_its_own_error_line() {
        let out = collected([vec![(2, "two"), (0, "zero")]], 3);
        assert_eq!(
            out,
            [
                "zero",
                "Error: query 2 got no result (internal error)",
                "two"
            ]
        );
    }
}

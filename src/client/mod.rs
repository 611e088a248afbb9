//! The client role: resolves every query of a query file through the AS and
//! the authenticated TLDS, and gives one result line per query, in input
//! order, to a [`Results`] (the `client` program's writes them to stdout and,
//! atomically, to the output file).
//!
//! The query file is read a line at a time and results are given out as soon
//! as the ones before them are, so memory depends on `--window`, not on the
//! number of queries. With `--window 1` each query is resolved start to
//! finish before the next (`one_at_a_time.rs`); with a wider window a
//! pipeline of threads keeps many queries in flight on every hop
//! (`pipeline.rs`). Both read replies through `replies.rs`, so the two paths
//! cannot disagree on a result line.

mod atomic_file;
mod collector;
mod echo;
mod one_at_a_time;
mod pipeline;
mod replies;
mod signing;

pub use atomic_file::{AtomicFile, OutputError};
pub use collector::Results;
pub use echo::Echo;
pub use replies::{Hop, HopError, HopErrorKind};

use std::fmt;
use std::io::{self, BufRead};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use collector::Collector;

pub use crate::query::QueryLines;

/// How to reach the servers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Shown in error lines, e.g. `localhost:5300`.
    pub as_name: String,
    /// Most queries in flight at once; 1 is strictly one at a time.
    pub window: usize,
    /// Bound on connecting to, and waiting for, any server.
    pub timeout: Duration,
    /// Prove the key to each TLDS (which must require it) before asking.
    pub prove: bool,
}

/// What kind of result a query got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The TLDS had the record.
    Found,
    /// The TLDS did not have it.
    NotFound,
    /// The AS authenticated no TLDS for its key.
    NoMatch,
    /// A server failed, or the query line was malformed: exit status 1.
    Failed,
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Every result line: queries and malformed lines.
    pub queries: usize,
    pub found: usize,
    pub not_found: usize,
    pub no_match: usize,
    pub failed: usize,
}

impl Summary {
    fn count(&mut self, kind: Kind) {
        self.queries += 1;
        match kind {
            Kind::Found => self.found += 1,
            Kind::NotFound => self.not_found += 1,
            Kind::NoMatch => self.no_match += 1,
            Kind::Failed => self.failed += 1,
        }
    }
}

/// `7 queries: 4 found, 2 not found, 1 no match, 0 failed`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.queries == 1 {
            "query"
        } else {
            "queries"
        };
        write!(
            f,
            "{} {plural}: {} found, {} not found, {} no match, {} failed",
            self.queries, self.found, self.not_found, self.no_match, self.failed
        )
    }
}

/// Why a run could not finish. Failures of the servers are not among
/// these: they become result lines.
#[derive(Debug)]
pub enum ClientError {
    /// The query file could not be read.
    Input(io::Error),
    /// A result could not be written.
    Output(io::Error),
    /// A pipeline thread could not be started.
    Thread(io::Error),
    /// The AS failed before answering anything: it is hung, or no AS at
    /// all, so no query could have been answered.
    AsNeverAnswered(Arc<HopError>),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Input(err) => write!(f, "cannot read the queries: {err}"),
            ClientError::Output(err) => write!(f, "cannot write results: {err}"),
            ClientError::Thread(err) => write!(f, "cannot start a thread: {err}"),
            ClientError::AsNeverAnswered(err) => write!(f, "{err}, before answering anything"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Input(err) | ClientError::Output(err) | ClientError::Thread(err) => {
                Some(err)
            }
            ClientError::AsNeverAnswered(_) => None,
        }
    }
}

/// Runs every query of `queries` through the AS (over `as_stream`, `None`
/// when it could not be reached) and the TLDS servers, giving `results`
/// each result line in input order.
pub fn resolve<R: BufRead + Send>(
    queries: QueryLines<R>,
    as_stream: Option<TcpStream>,
    settings: &Settings,
    results: &mut (impl Results + Send),
) -> Result<Summary, ClientError> {
    let mut collector = Collector::new(results);
    if settings.window <= 1 {
        one_at_a_time::resolve(queries, as_stream, settings, &mut collector)?;
    } else {
        pipeline::resolve(queries, as_stream, settings, &mut collector)?;
    }
    collector.summary()
}

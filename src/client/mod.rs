//! The client role: resolves every query of a query file through the AS and
//! the authenticated TLDS, and writes one result line per query, in input
//! order, to stdout and (atomically) to the output file.
//!
//! With `--window 1` each query is resolved start to finish before the next
//! (`one_at_a_time.rs`); with a wider window a pipeline of threads keeps many
//! queries in flight on every hop (`pipeline.rs`). Both share the helpers
//! here, which read each reply and decide what it means for its query, so the
//! two paths cannot disagree on a result line.

mod atomic_file;
mod one_at_a_time;
mod pipeline;

pub use atomic_file::AtomicFile;

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufWriter, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli;
use crate::connection::{self, FrameError, LineReader};
use crate::digest::{Signer, sign_many};
use crate::query::{self, Query};
use crate::wire::{self, AuthReply, AuthRequest, HostReply, WireError};

/// Resolves hostnames through the authentication server and the TLDS servers.
///
/// Reads `key challenge hostname` lines, authenticates each with
/// HMAC-MD5(key, challenge) at the AS, asks the TLDS the AS names, and writes
/// one result per query, in input order, to stdout and to the output file.
/// Exit status: 0 when every query was answered (found, not found, or no
/// match), 1 when any failed, 2 for usage errors.
#[derive(Debug, Parser)]
#[command(
    name = "client",
    version,
    after_help = "Example, with the AS on another machine:\n  \
                  client --as-host 10.0.0.1 --input queries.txt --output results.txt"
)]
pub struct Args {
    /// Host of the authentication server
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    pub as_host: String,

    /// Port of the authentication server
    #[arg(long, value_name = "PORT", default_value_t = 5300)]
    pub as_port: u16,

    /// Query file: `key challenge hostname` per line
    #[arg(long, value_name = "PATH", default_value = "data/hns.txt")]
    pub input: PathBuf,

    /// Result file, replaced atomically when the run ends
    #[arg(long, value_name = "PATH", default_value = "RESOLVED.txt")]
    pub output: PathBuf,

    /// Most queries in flight at once (1: strictly one at a time)
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub window: u32,

    /// Seconds to wait for any server to accept a connection or to answer
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = cli::seconds)]
    pub timeout: Duration,
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub queries: usize,
    pub failed: usize,
}

/// One line of the query file, as the pipeline sees it.
#[derive(Debug)]
pub enum Job<'a> {
    Ask(Query<'a>),
    Malformed { line: usize, reason: WireError },
}

/// Parses a query file into jobs, one per non-blank, non-comment line.
pub fn jobs(input: &[u8]) -> Vec<Job<'_>> {
    query::parse_file(input)
        .filter_map(|(line, parsed)| match parsed {
            Ok(Some(query)) => Some(Job::Ask(query)),
            Ok(None) => None,
            Err(reason) => Some(Job::Malformed { line, reason }),
        })
        .collect()
}

/// A query waiting for a reply: its position in the output and its hostname.
#[derive(Debug, Clone, Copy)]
struct Pending<'a> {
    index: usize,
    hostname: &'a str,
}

/// A finished result line; `failed` marks the third kind (exit status 1).
struct Done {
    index: usize,
    line: String,
    failed: bool,
}

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

/// Settings for [`resolve`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// Shown in error lines, e.g. `localhost:5300`.
    pub as_name: String,
    pub window: usize,
    pub timeout: Duration,
}

/// Runs every job through the AS and the TLDS servers over `as_stream`,
/// giving `results` each result line in input order.
pub fn resolve(
    jobs: &[Job<'_>],
    as_stream: Option<TcpStream>,
    settings: &Settings,
    results: &mut impl Results,
) -> Result<Summary> {
    let mut collector = Collector::new(jobs.len());
    if settings.window <= 1 {
        one_at_a_time::resolve(jobs, as_stream, settings, &mut collector, results);
    } else {
        pipeline::resolve(jobs, as_stream, settings, &mut collector, results)?;
    }
    collector.idle(results);
    match collector.error {
        Some(err) => Err(err).context("cannot write results"),
        None => Ok(collector.summary),
    }
}

/// The line for a query that failed: `hostname - Error:<reason>`.
fn failed_line(hostname: &str, reason: &str) -> String {
    format!("{hostname} - Error:{reason}")
}

/// The line for a malformed query line.
fn malformed_line(line: usize, reason: &WireError) -> String {
    format!("Error: line {line}: {reason}")
}

/// AS requests waiting to be signed and written. Signing waits until a
/// batch is written so that [`sign_many`] can sign eight side by side; each
/// distinct key's [`Signer`] is made once and kept for the run.
#[derive(Default)]
struct Requests<'a> {
    /// Index into `signers` of each key seen so far.
    keys: HashMap<&'a str, usize, BuildHasherDefault<Fnv>>,
    signers: Vec<Signer>,
    /// Queued requests: which signer, and the challenge.
    queued: Vec<(usize, &'a str)>,
}

impl<'a> Requests<'a> {
    fn push(&mut self, query: &Query<'a>) {
        let signers = &mut self.signers;
        let signer = *self.keys.entry(query.key).or_insert_with(|| {
            signers.push(Signer::new(query.key.as_bytes()));
            signers.len() - 1
        });
        self.queued.push((signer, query.challenge));
    }

    fn len(&self) -> usize {
        self.queued.len()
    }

    /// Signs every queued request and appends it to `out`, in order.
    fn write_to(&mut self, out: &mut Vec<u8>) {
        let work: Vec<(&Signer, &str)> = self
            .queued
            .iter()
            .filter_map(|&(signer, challenge)| Some((self.signers.get(signer)?, challenge)))
            .collect();
        let mut challenges = work.iter().map(|&(_, challenge)| challenge);
        sign_many(&work, |digest| {
            let challenge = challenges.next().unwrap_or_default();
            AuthRequest { challenge, digest }.write_to(out);
        });
        self.queued.clear();
    }
}

/// FNV-1a: keys are short and come from the user's own query file, so a
/// simple fast hash serves better than the default DoS-resistant one.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// What the AS's reply means for one query.
enum Route<'r> {
    /// Ask this TLDS.
    Tlds { host: &'r str, port: u16 },
    /// The query is finished here: no match, or the AS's own error.
    Done { line: String, failed: bool },
}

/// Reads the AS's reply for the query for `hostname`. An `Err` is the reason
/// the AS connection cannot be used any more.
fn read_route<'r>(
    reader: &'r mut LineReader<TcpStream>,
    hostname: &str,
    as_name: &str,
) -> Result<Route<'r>, String> {
    route_of(reader.read_line(), hostname, as_name)
}

/// What one read from the AS means for the query for `hostname`.
fn route_of<'r>(
    read: Result<Option<&'r [u8]>, FrameError>,
    hostname: &str,
    as_name: &str,
) -> Result<Route<'r>, String> {
    match read {
        Ok(Some(line)) => match AuthReply::parse(line) {
            Ok(AuthReply::Tlds { host, port }) => Ok(Route::Tlds { host, port }),
            Ok(AuthReply::NoMatch) => Ok(Route::Done {
                line: format!("{hostname} - Error:No Match Found"),
                failed: false,
            }),
            Ok(AuthReply::Error(reason)) => Ok(Route::Done {
                line: failed_line(hostname, reason),
                failed: true,
            }),
            Err(err) => Err(format!("bad reply from the AS at {as_name}: {err}")),
        },
        Ok(None) => Err(format!("the AS at {as_name} closed the connection")),
        Err(err) => Err(format!("the AS at {as_name}: {err}")),
    }
}

/// Reads a TLDS's reply for the query for `hostname`: its result line and
/// whether it failed. An `Err` is the reason the connection cannot be used
/// any more.
fn read_answer(
    reader: &mut LineReader<TcpStream>,
    hostname: &str,
    name: &str,
) -> Result<(String, bool), String> {
    match reader.read_line() {
        Ok(Some(line)) => {
            match wire::text(line).and_then(|text| Ok((HostReply::parse_text(text)?, text))) {
                // A record or a miss is passed on as received.
                Ok((HostReply::Found(_) | HostReply::NotFound(_), text)) => {
                    Ok((text.to_owned(), false))
                }
                Ok((HostReply::Error(reason), _)) => Ok((failed_line(hostname, reason), true)),
                Err(err) => Err(format!("bad reply from the TLDS at {name}: {err}")),
            }
        }
        Ok(None) => Err(format!("the TLDS at {name} closed the connection")),
        Err(err) => Err(format!("the TLDS at {name}: {err}")),
    }
}

/// TLDS addresses that could not be connected to in this run, and why. They
/// are not tried again: each try could cost `--timeout`.
#[derive(Default)]
struct Unreachable(Vec<(String, u16, String)>);

impl Unreachable {
    /// Connects to the TLDS at `host:port`, unless it already failed once.
    fn connect(&mut self, host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
        if let Some((_, _, reason)) = self.0.iter().find(|(h, p, _)| h == host && *p == port) {
            return Err(reason.clone());
        }
        let connected = (host, port)
            .to_socket_addrs()
            .map(|addrs| addrs.collect::<Vec<SocketAddr>>())
            .and_then(|addrs| connection::connect(&addrs, timeout));
        connected.map_err(|err| {
            let reason = format!("cannot connect to the TLDS at {host}:{port}: {err}");
            self.0.push((host.to_owned(), port, reason.clone()));
            reason
        })
    }
}

/// Stage 4: puts results back in input order.
pub(super) struct Collector {
    /// Results that arrived before an earlier one, for queries `next..`.
    waiting: VecDeque<Option<Done>>,
    /// Index of the next result to emit.
    next: usize,
    summary: Summary,
    /// The first failure to write a result; later lines are still counted.
    error: Option<io::Error>,
}

impl Collector {
    fn new(queries: usize) -> Collector {
        Collector {
            waiting: VecDeque::new(),
            next: 0,
            summary: Summary { queries, failed: 0 },
            error: None,
        }
    }

    fn store(&mut self, batch: impl IntoIterator<Item = Done>, results: &mut impl Results) {
        for done in batch {
            let Some(offset) = done.index.checked_sub(self.next) else {
                continue;
            };
            if offset >= self.waiting.len() {
                self.waiting.resize_with(offset + 1, || None);
            }
            if let Some(slot) = self.waiting.get_mut(offset) {
                *slot = Some(done);
            }
        }
        while let Some(Some(_)) = self.waiting.front() {
            if let Some(Some(done)) = self.waiting.pop_front() {
                self.emit(&done, results);
            }
            self.next += 1;
        }
    }

    fn emit(&mut self, done: &Done, results: &mut impl Results) {
        self.summary.failed += usize::from(done.failed);
        if self.error.is_none()
            && let Err(err) = results.line(&done.line)
        {
            self.error = Some(err);
        }
    }

    fn idle(&mut self, results: &mut impl Results) {
        if self.error.is_none()
            && let Err(err) = results.idle()
        {
            self.error = Some(err);
        }
    }

    /// Every stage has ended. A result still missing would be a bug; say so
    /// in that query's own line rather than drop it.
    fn finish(&mut self, results: &mut impl Results) {
        while self.next < self.summary.queries {
            let index = self.next;
            let done = self.waiting.pop_front().flatten().unwrap_or_else(|| Done {
                index,
                line: format!("Error: query {} got no result (internal error)", index + 1),
                failed: true,
            });
            self.emit(&done, results);
            self.next += 1;
        }
    }
}

/// The client program's results: stdout (flushed whenever the pipeline
/// waits, so a person watching sees results as they come) and the file.
struct Output<'a> {
    file: AtomicFile,
    stdout: BufWriter<io::StdoutLock<'a>>,
}

impl Results for Output<'_> {
    fn line(&mut self, line: &str) -> io::Result<()> {
        self.stdout.write_all(line.as_bytes())?;
        self.stdout.write_all(b"\n")?;
        self.file.write_line(line)
    }

    fn idle(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

fn start() -> Result<ExitCode> {
    let args = Args::parse();
    let input = fs::read(&args.input)
        .with_context(|| format!("cannot read --input {}", args.input.display()))?;
    let jobs = jobs(&input);
    let as_name = format!("{}:{}", args.as_host, args.as_port);
    let as_stream = if jobs.iter().any(|job| matches!(job, Job::Ask(_))) {
        let addrs = cli::resolve(&args.as_host, args.as_port, "--as-host/--as-port")?;
        let stream = connection::connect(&addrs, args.timeout).with_context(|| {
            format!("cannot connect to the AS at {as_name} (--as-host/--as-port)")
        })?;
        Some(stream)
    } else {
        None
    };
    let mut output = Output {
        file: AtomicFile::create(&args.output)?,
        stdout: BufWriter::new(io::stdout().lock()),
    };
    let settings = Settings {
        as_name,
        window: args.window as usize,
        timeout: args.timeout,
    };
    let summary = resolve(&jobs, as_stream, &settings, &mut output)?;
    // `resolve` flushed stdout when it finished; the file is committed here.
    let Output { file, stdout } = output;
    drop(stdout);
    file.commit()?;
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The whole `client` program.
pub fn main() -> ExitCode {
    cli::report("client", start())
}

//! The client role: resolves every query of a query file through the AS and
//! the authenticated TLDS, and writes one result line per query, in input
//! order, to stdout and (atomically) to the output file.
//!
//! Queries flow through a pipeline of threads so that up to `--window` of them
//! are in flight at once on every hop:
//!
//! 1. the *sender* signs each query and writes `challenge digest` to the AS;
//! 2. the *router* reads the AS's replies in order and writes each hostname
//!    to the TLDS the AS named (connecting on first use);
//! 3. one *reader* per TLDS connection reads that TLDS's replies in order;
//! 4. the *collector* (the calling thread) puts results back in input order.
//!
//! Each stage hands the next a queue of the queries it has sent, which is how
//! replies are paired with queries and how, when a peer fails, every query
//! that was waiting on it still gets its own error line: nothing is lost.
//! Each stage flushes what it has written only when it is about to wait.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Scope;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli;
use crate::connection::{self, LineReader};
use crate::digest::Signer;
use crate::query::{self, Query};
use crate::server::FLUSH_AT;
use crate::wire::{AuthReply, AuthRequest, HostReply, HostRequest, WireError};

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
    #[arg(long, value_name = "N", default_value_t = 1024,
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

/// Counts queries in flight, so at most `--window` are.
struct Window {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Window {
    fn new(size: usize) -> Window {
        Window {
            free: Mutex::new(size),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn try_acquire(&self) -> bool {
        let mut free = self.lock();
        let available = *free > 0;
        if available {
            *free -= 1;
        }
        available
    }

    fn acquire(&self) {
        let mut free = self.lock();
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *free -= 1;
    }

    fn release(&self) {
        *self.lock() += 1;
        self.freed.notify_one();
    }
}

/// Where stages deliver finished queries; each delivery frees a window slot.
#[derive(Clone)]
struct Sink<'w> {
    done: Sender<Done>,
    window: &'w Window,
}

impl Sink<'_> {
    fn answered(&self, pending: Pending<'_>, line: String) {
        self.deliver(pending, line, false);
    }

    fn failed(&self, pending: Pending<'_>, reason: &str) {
        self.deliver(
            pending,
            format!("{} - Error:{reason}", pending.hostname),
            true,
        );
    }

    fn deliver(&self, pending: Pending<'_>, line: String, failed: bool) {
        self.window.release();
        // The collector outlives every stage, so this cannot fail; if it
        // ever did, the collector reports the missing line itself.
        let _ = self.done.send(Done {
            index: pending.index,
            line,
            failed,
        });
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
/// calling `emit` with each result line in input order.
pub fn resolve(
    jobs: &[Job<'_>],
    as_stream: Option<TcpStream>,
    settings: &Settings,
    mut emit: impl FnMut(&str) -> io::Result<()>,
) -> Result<Summary> {
    let window = Window::new(settings.window.max(1));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let (pending_tx, pending_rx) = mpsc::channel::<Pending<'_>>();
    let sink = Sink {
        done: done_tx,
        window: &window,
    };
    let mut summary = Summary {
        queries: jobs.len(),
        failed: 0,
    };
    let mut emit_error = None;
    std::thread::scope(|scope| -> Result<()> {
        let as_halves = match as_stream {
            Some(stream) => Some((
                stream.try_clone().context("cannot use the AS connection")?,
                stream,
            )),
            None => None,
        };
        let (as_reader, as_writer) = as_halves.unzip();
        {
            let sink = sink.clone();
            scope.spawn(move || send_queries(jobs, as_writer, pending_tx, &sink));
        }
        {
            let sink = sink.clone();
            let settings = settings.clone();
            scope.spawn(move || route_replies(scope, as_reader, pending_rx, sink, &settings));
        }
        drop(sink);
        let mut slots: Vec<Option<Done>> = Vec::new();
        slots.resize_with(jobs.len(), || None);
        let mut next = 0;
        let mut emit_one = |done: &Done, summary: &mut Summary| {
            summary.failed += usize::from(done.failed);
            if emit_error.is_none()
                && let Err(err) = emit(&done.line)
            {
                emit_error = Some(err);
            }
        };
        for done in done_rx {
            if let Some(slot) = slots.get_mut(done.index) {
                *slot = Some(done);
            }
            while let Some(slot) = slots.get_mut(next) {
                let Some(done) = slot.take() else { break };
                emit_one(&done, &mut summary);
                next += 1;
            }
        }
        // Every stage has ended. A slot still empty would be a bug; say so in
        // that query's own line rather than drop it.
        for (index, slot) in slots.iter_mut().enumerate().skip(next) {
            let done = slot.take().unwrap_or_else(|| Done {
                index,
                line: format!("Error: query {} got no result (internal error)", index + 1),
                failed: true,
            });
            emit_one(&done, &mut summary);
        }
        Ok(())
    })?;
    match emit_error {
        Some(err) => Err(err).context("cannot write results"),
        None => Ok(summary),
    }
}

/// Stage 1: signs each query and sends it to the AS.
fn send_queries<'a>(
    jobs: &'a [Job<'a>],
    mut as_writer: Option<TcpStream>,
    pending: Sender<Pending<'a>>,
    sink: &Sink<'_>,
) {
    let mut signers: HashMap<&str, Signer> = HashMap::new();
    let mut out = Vec::with_capacity(FLUSH_AT);
    let flush = |out: &mut Vec<u8>, writer: &mut Option<TcpStream>| {
        if let Some(stream) = writer
            && stream.write_all(out).is_err()
        {
            // The router sees the broken connection and fails every query
            // still queued for the AS.
            let _ = stream.shutdown(Shutdown::Both);
            *writer = None;
        }
        out.clear();
    };
    for (index, job) in jobs.iter().enumerate() {
        let query = match job {
            Job::Ask(query) => query,
            Job::Malformed { line, reason } => {
                let _ = sink.done.send(Done {
                    index,
                    line: format!("Error: line {line}: {reason}"),
                    failed: true,
                });
                continue;
            }
        };
        if !sink.window.try_acquire() {
            flush(&mut out, &mut as_writer);
            sink.window.acquire();
        }
        let signer = signers
            .entry(query.key)
            .or_insert_with(|| Signer::new(query.key.as_bytes()));
        AuthRequest {
            challenge: query.challenge,
            digest: signer.sign(query.challenge.as_bytes()),
        }
        .write_to(&mut out);
        let waiting = Pending {
            index,
            hostname: query.hostname,
        };
        if pending.send(waiting).is_err() {
            sink.failed(waiting, "client stopped");
        }
        if out.len() >= FLUSH_AT {
            flush(&mut out, &mut as_writer);
        }
    }
    flush(&mut out, &mut as_writer);
}

/// A connection to one TLDS, as the router writes to it.
struct TldsLink<'a> {
    host: String,
    port: u16,
    writer: TcpStream,
    out: Vec<u8>,
    queue: Sender<Pending<'a>>,
    broken: Arc<AtomicBool>,
}

impl TldsLink<'_> {
    fn flush(&mut self) {
        if !self.out.is_empty() && self.writer.write_all(&self.out).is_err() {
            // The reader fails whatever is queued once the socket is shut.
            let _ = self.writer.shutdown(Shutdown::Both);
            self.broken.store(true, Ordering::Release);
        }
        self.out.clear();
    }
}

/// Stage 2: reads AS replies and routes each query to the TLDS it names.
fn route_replies<'scope, 'a: 'scope>(
    scope: &'scope Scope<'scope, '_>,
    as_reader: Option<TcpStream>,
    pending: Receiver<Pending<'a>>,
    sink: Sink<'scope>,
    settings: &Settings,
) {
    let mut reader = as_reader.map(LineReader::new);
    let mut as_failure: Option<String> = match reader {
        Some(_) => None,
        None => Some(format!("no connection to the AS at {}", settings.as_name)),
    };
    let mut links: Vec<TldsLink<'a>> = Vec::new();
    let mut unreachable: Vec<(String, u16, String)> = Vec::new();
    loop {
        let waiting = match pending.try_recv() {
            Ok(waiting) => waiting,
            Err(TryRecvError::Empty) => {
                links.iter_mut().for_each(TldsLink::flush);
                match pending.recv() {
                    Ok(waiting) => waiting,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let Some(as_reader) = reader.as_mut().filter(|_| as_failure.is_none()) else {
            sink.failed(
                waiting,
                as_failure.as_deref().unwrap_or("no connection to the AS"),
            );
            continue;
        };
        if !as_reader.has_buffered_line() {
            links.iter_mut().for_each(TldsLink::flush);
        }
        let failure = match as_reader.read_line() {
            Ok(Some(line)) => match AuthReply::parse(line) {
                Ok(AuthReply::Tlds { host, port }) => {
                    let link = link_for(
                        scope,
                        &mut links,
                        &mut unreachable,
                        host,
                        port,
                        &sink,
                        settings,
                    );
                    match link {
                        Ok(link) => {
                            HostRequest(waiting.hostname).write_to(&mut link.out);
                            if link.queue.send(waiting).is_err() {
                                sink.failed(waiting, "client stopped");
                            }
                            if link.out.len() >= FLUSH_AT {
                                link.flush();
                            }
                        }
                        Err(reason) => sink.failed(waiting, &reason),
                    }
                    None
                }
                Ok(AuthReply::NoMatch) => {
                    sink.answered(
                        waiting,
                        format!("{} - Error:No Match Found", waiting.hostname),
                    );
                    None
                }
                Ok(AuthReply::Error(reason)) => {
                    sink.failed(waiting, reason);
                    None
                }
                Err(err) => Some(format!(
                    "bad reply from the AS at {}: {err}",
                    settings.as_name
                )),
            },
            Ok(None) => Some(format!(
                "the AS at {} closed the connection",
                settings.as_name
            )),
            Err(err) => Some(format!("the AS at {}: {err}", settings.as_name)),
        };
        if let Some(reason) = failure {
            sink.failed(waiting, &reason);
            let _ = as_reader.get_ref().shutdown(Shutdown::Both);
            as_failure = Some(reason);
        }
    }
    links.iter_mut().for_each(TldsLink::flush);
}

/// The open connection to `host:port`, opening one (and its reader) if
/// there is none or the last one broke. A TLDS that could not be connected
/// to is not tried again in this run: each try could cost `--timeout`.
fn link_for<'l, 'scope, 'a: 'scope>(
    scope: &'scope Scope<'scope, '_>,
    links: &'l mut Vec<TldsLink<'a>>,
    unreachable: &mut Vec<(String, u16, String)>,
    host: &str,
    port: u16,
    sink: &Sink<'scope>,
    settings: &Settings,
) -> Result<&'l mut TldsLink<'a>, String> {
    if let Some((_, _, reason)) = unreachable.iter().find(|(h, p, _)| h == host && *p == port) {
        return Err(reason.clone());
    }
    let existing = links
        .iter()
        .position(|link| link.host == host && link.port == port);
    if let Some(position) = existing {
        let broken = links
            .get(position)
            .is_some_and(|link| link.broken.load(Ordering::Acquire));
        if !broken {
            return links.get_mut(position).ok_or_else(String::new);
        }
        // Dropping the old link closes its queue; its reader finishes what
        // was queued (as errors) and exits.
        links.swap_remove(position);
    }
    let name = format!("{host}:{port}");
    let stream = (host, port)
        .to_socket_addrs()
        .map(|addrs| addrs.collect::<Vec<SocketAddr>>())
        .and_then(|addrs| connection::connect(&addrs, settings.timeout))
        .and_then(|stream| Ok((stream.try_clone()?, stream)));
    let (read_half, writer) = match stream {
        Ok(halves) => halves,
        Err(err) => {
            let reason = format!("cannot connect to the TLDS at {name}: {err}");
            unreachable.push((host.to_owned(), port, reason.clone()));
            return Err(reason);
        }
    };
    let (queue, queued) = mpsc::channel();
    let broken = Arc::new(AtomicBool::new(false));
    {
        let sink = sink.clone();
        let broken = Arc::clone(&broken);
        scope.spawn(move || read_tlds_replies(read_half, queued, &sink, &broken, &name));
    }
    links.push(TldsLink {
        host: host.to_owned(),
        port,
        writer,
        out: Vec::with_capacity(FLUSH_AT),
        queue,
        broken,
    });
    links.last_mut().ok_or_else(String::new)
}

/// Stage 3: reads one TLDS's replies, in the order its queries were sent.
fn read_tlds_replies(
    stream: TcpStream,
    queued: Receiver<Pending<'_>>,
    sink: &Sink<'_>,
    broken: &AtomicBool,
    name: &str,
) {
    let mut reader = LineReader::new(stream);
    let mut failure: Option<String> = None;
    for waiting in queued {
        if let Some(reason) = &failure {
            sink.failed(waiting, reason);
            continue;
        }
        let reason = match reader.read_line() {
            Ok(Some(line)) => match HostReply::parse(line) {
                Ok(HostReply::Found(_) | HostReply::NotFound(_)) => {
                    // Parsing proved the line is UTF-8; it is passed on as received.
                    sink.answered(waiting, String::from_utf8_lossy(line).into_owned());
                    continue;
                }
                Ok(HostReply::Error(reason)) => {
                    sink.failed(waiting, reason);
                    continue;
                }
                Err(err) => format!("bad reply from the TLDS at {name}: {err}"),
            },
            Ok(None) => format!("the TLDS at {name} closed the connection"),
            Err(err) => format!("the TLDS at {name}: {err}"),
        };
        broken.store(true, Ordering::Release);
        let _ = reader.get_ref().shutdown(Shutdown::Both);
        sink.failed(waiting, &reason);
        failure = Some(reason);
    }
}

/// Writes `lines` to `path` atomically: a temporary file beside it, then a
/// rename, so an interrupted run leaves the previous file whole.
pub struct AtomicFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<fs::File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let file_name = path
            .file_name()
            .with_context(|| format!("--output {} names no file", path.display()))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(file_name);
        temp_name.push(format!(".tmp{}", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let file = fs::File::create(&temp)
            .with_context(|| format!("cannot create {} (for --output)", temp.display()))?;
        Ok(AtomicFile {
            path: path.to_owned(),
            temp,
            file: Some(BufWriter::new(file)),
        })
    }

    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        match &mut self.file {
            Some(file) => writeln!(file, "{line}"),
            None => Err(io::Error::other("output already committed")),
        }
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        if let Some(file) = self.file.take() {
            let file = file
                .into_inner()
                .map_err(|err| err.into_error())
                .with_context(|| format!("cannot write {}", self.temp.display()))?;
            file.sync_all()
                .with_context(|| format!("cannot write {}", self.temp.display()))?;
        }
        fs::rename(&self.temp, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.temp);
        }
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
    let mut output = AtomicFile::create(&args.output)?;
    let stdout = io::stdout();
    let mut stdout = stdout.lock();
    let settings = Settings {
        as_name,
        window: args.window as usize,
        timeout: args.timeout,
    };
    let summary = resolve(&jobs, as_stream, &settings, |line| {
        writeln!(stdout, "{line}")?;
        output.write_line(line)
    })?;
    stdout.flush().context("cannot write to stdout")?;
    output.commit()?;
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

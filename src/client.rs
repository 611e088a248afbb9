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

use std::collections::{HashMap, VecDeque};
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
use crate::wire::{self, AuthReply, AuthRequest, HostReply, HostRequest, WireError};

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

/// Counts queries in flight, so at most `--window` are. Slots are taken and
/// given back in batches, so stages meet on this lock once per burst rather
/// than once per query.
struct Window {
    size: usize,
    free: Mutex<usize>,
    freed: Condvar,
}

impl Window {
    fn new(size: usize) -> Window {
        Window {
            size,
            free: Mutex::new(size),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until at least `wanted` slots are free (at most the window's
    /// size), then takes every free slot.
    fn take(&self, wanted: usize) -> usize {
        let mut free = self.lock();
        while *free < wanted.max(1) {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        std::mem::take(&mut *free)
    }

    fn give_back(&self, slots: usize) {
        if slots > 0 {
            *self.lock() += slots;
            self.freed.notify_one();
        }
    }
}

/// The results one stage has finished, handed to the collector in batches.
/// Handing over a batch gives its queries' window slots back.
struct Finished<'w> {
    done: Vec<Done>,
    slots: usize,
    collector: Sender<Vec<Done>>,
    window: &'w Window,
}

impl<'w> Finished<'w> {
    fn new(collector: Sender<Vec<Done>>, window: &'w Window) -> Self {
        Finished {
            done: Vec::new(),
            slots: 0,
            collector,
            window,
        }
    }

    fn answered(&mut self, pending: Pending<'_>, line: String) {
        self.finish(pending.index, line, false, 1);
    }

    fn failed(&mut self, pending: Pending<'_>, reason: &str) {
        let line = format!("{} - Error:{reason}", pending.hostname);
        self.finish(pending.index, line, true, 1);
    }

    /// A malformed query line: it never took a window slot.
    fn malformed(&mut self, index: usize, line: String) {
        self.finish(index, line, true, 0);
    }

    fn finish(&mut self, index: usize, line: String, failed: bool, slots: usize) {
        self.done.push(Done {
            index,
            line,
            failed,
        });
        self.slots += slots;
    }

    fn hand_over(&mut self) {
        self.window.give_back(std::mem::take(&mut self.slots));
        if !self.done.is_empty() {
            // The collector outlives every stage, so this cannot fail; if it
            // ever did, the collector reports the missing lines itself.
            let _ = self.collector.send(std::mem::take(&mut self.done));
        }
    }
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
    let window = Window::new(settings.window.max(1));
    let (done_tx, done_rx) = mpsc::channel::<Vec<Done>>();
    let (pending_tx, pending_rx) = mpsc::channel::<Vec<Pending<'_>>>();
    let mut collector = Collector::new(jobs.len());
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
            let finished = Finished::new(done_tx.clone(), &window);
            scope.spawn(move || send_queries(jobs, as_writer, pending_tx, finished));
        }
        {
            let finished = Finished::new(done_tx.clone(), &window);
            let settings = settings.clone();
            scope.spawn(move || route_replies(scope, as_reader, pending_rx, finished, &settings));
        }
        drop(done_tx);
        loop {
            let batch = match done_rx.try_recv() {
                Ok(batch) => batch,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    collector.idle(results);
                    match done_rx.recv() {
                        Ok(batch) => batch,
                        Err(_) => break,
                    }
                }
            };
            collector.store(batch, results);
        }
        collector.finish(results);
        Ok(())
    })?;
    collector.idle(results);
    match collector.error {
        Some(err) => Err(err).context("cannot write results"),
        None => Ok(collector.summary),
    }
}

/// Stage 4: puts results back in input order.
struct Collector {
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

    fn store(&mut self, batch: Vec<Done>, results: &mut impl Results) {
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

/// Stage 1: signs each query and sends it to the AS.
fn send_queries<'a>(
    jobs: &'a [Job<'a>],
    mut as_writer: Option<TcpStream>,
    to_router: Sender<Vec<Pending<'a>>>,
    mut finished: Finished<'_>,
) {
    let mut signers: HashMap<&str, Signer> = HashMap::new();
    let mut out = Vec::with_capacity(FLUSH_AT);
    let mut sent = Vec::new();
    let mut credits = 0;
    // Waiting for a quarter of a wide window to come back before sending
    // again makes every hop's bursts larger: fewer system calls and wake-ups
    // per query, while three quarters of the window stay in flight.
    let burst = finished.window.size / 4;
    let mut flush =
        |out: &mut Vec<u8>, sent: &mut Vec<Pending<'a>>, finished: &mut Finished<'_>| {
            if !sent.is_empty() {
                // The router outlives this stage; were it gone, the collector
                // would report these queries as lost.
                let _ = to_router.send(std::mem::take(sent));
            }
            if let Some(stream) = &mut as_writer
                && stream.write_all(out).is_err()
            {
                // The router sees the broken connection and fails every query
                // still queued for the AS.
                let _ = stream.shutdown(Shutdown::Both);
                as_writer = None;
            }
            out.clear();
            finished.hand_over();
        };
    for (index, job) in jobs.iter().enumerate() {
        let query = match job {
            Job::Ask(query) => query,
            Job::Malformed { line, reason } => {
                finished.malformed(index, format!("Error: line {line}: {reason}"));
                continue;
            }
        };
        if credits == 0 {
            flush(&mut out, &mut sent, &mut finished);
            credits = finished.window.take(burst);
        }
        credits -= 1;
        let signer = signers
            .entry(query.key)
            .or_insert_with(|| Signer::new(query.key.as_bytes()));
        AuthRequest {
            challenge: query.challenge,
            digest: signer.sign(query.challenge.as_bytes()),
        }
        .write_to(&mut out);
        sent.push(Pending {
            index,
            hostname: query.hostname,
        });
        if out.len() >= FLUSH_AT {
            flush(&mut out, &mut sent, &mut finished);
        }
    }
    flush(&mut out, &mut sent, &mut finished);
    finished.window.give_back(credits);
}

/// A connection to one TLDS, as the router writes to it.
struct TldsLink<'a> {
    host: String,
    port: u16,
    writer: TcpStream,
    out: Vec<u8>,
    sent: Vec<Pending<'a>>,
    to_reader: Sender<Vec<Pending<'a>>>,
    broken: Arc<AtomicBool>,
}

impl TldsLink<'_> {
    fn flush(&mut self) {
        if self.sent.is_empty() {
            return;
        }
        // The reader outlives the link; were it gone, the collector would
        // report these queries as lost.
        let _ = self.to_reader.send(std::mem::take(&mut self.sent));
        if self.writer.write_all(&self.out).is_err() {
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
    from_sender: Receiver<Vec<Pending<'a>>>,
    mut finished: Finished<'scope>,
    settings: &Settings,
) {
    let mut reader = as_reader.map(LineReader::new);
    let mut as_failure: Option<String> = match reader {
        Some(_) => None,
        None => Some(format!("no connection to the AS at {}", settings.as_name)),
    };
    let mut links: Vec<TldsLink<'a>> = Vec::new();
    let mut unreachable: Vec<(String, u16, String)> = Vec::new();
    let flush_all = |links: &mut Vec<TldsLink<'a>>, finished: &mut Finished<'_>| {
        links.iter_mut().for_each(TldsLink::flush);
        finished.hand_over();
    };
    loop {
        let batch = match from_sender.try_recv() {
            Ok(batch) => batch,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                flush_all(&mut links, &mut finished);
                match from_sender.recv() {
                    Ok(batch) => batch,
                    Err(_) => break,
                }
            }
        };
        for waiting in batch {
            let Some(as_reader) = reader.as_mut().filter(|_| as_failure.is_none()) else {
                let reason = as_failure.as_deref().unwrap_or("no connection to the AS");
                finished.failed(waiting, reason);
                continue;
            };
            if !as_reader.has_buffered_line() {
                flush_all(&mut links, &mut finished);
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
                            &finished,
                            settings,
                        );
                        match link {
                            Ok(link) => {
                                HostRequest(waiting.hostname).write_to(&mut link.out);
                                link.sent.push(waiting);
                                if link.out.len() >= FLUSH_AT {
                                    link.flush();
                                }
                            }
                            Err(reason) => finished.failed(waiting, &reason),
                        }
                        None
                    }
                    Ok(AuthReply::NoMatch) => {
                        let line = format!("{} - Error:No Match Found", waiting.hostname);
                        finished.answered(waiting, line);
                        None
                    }
                    Ok(AuthReply::Error(reason)) => {
                        finished.failed(waiting, reason);
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
                finished.failed(waiting, &reason);
                let _ = as_reader.get_ref().shutdown(Shutdown::Both);
                as_failure = Some(reason);
            }
        }
    }
    flush_all(&mut links, &mut finished);
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
    finished: &Finished<'scope>,
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
        // Hand the old link's queued queries to its reader (which fails
        // them), then drop it: its reader finishes and exits.
        if let Some(mut old) = (position < links.len()).then(|| links.swap_remove(position)) {
            old.flush();
        }
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
    let (to_reader, queued) = mpsc::channel();
    let broken = Arc::new(AtomicBool::new(false));
    {
        let finished = Finished::new(finished.collector.clone(), finished.window);
        let broken = Arc::clone(&broken);
        scope.spawn(move || read_tlds_replies(read_half, queued, finished, &broken, &name));
    }
    links.push(TldsLink {
        host: host.to_owned(),
        port,
        writer,
        out: Vec::with_capacity(FLUSH_AT),
        sent: Vec::new(),
        to_reader,
        broken,
    });
    links.last_mut().ok_or_else(String::new)
}

/// Stage 3: reads one TLDS's replies, in the order its queries were sent.
fn read_tlds_replies(
    stream: TcpStream,
    queued: Receiver<Vec<Pending<'_>>>,
    mut finished: Finished<'_>,
    broken: &AtomicBool,
    name: &str,
) {
    let mut reader = LineReader::new(stream);
    let mut failure: Option<String> = None;
    loop {
        let batch = match queued.try_recv() {
            Ok(batch) => batch,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                finished.hand_over();
                match queued.recv() {
                    Ok(batch) => batch,
                    Err(_) => break,
                }
            }
        };
        for waiting in batch {
            if let Some(reason) = &failure {
                finished.failed(waiting, reason);
                continue;
            }
            if !reader.has_buffered_line() {
                finished.hand_over();
            }
            let reason = match reader.read_line() {
                Ok(Some(line)) => match wire::text(line)
                    .and_then(|text| Ok((HostReply::parse_text(text)?, text)))
                {
                    Ok((HostReply::Found(_) | HostReply::NotFound(_), text)) => {
                        // A record or a miss is passed on as received.
                        finished.answered(waiting, text.to_owned());
                        continue;
                    }
                    Ok((HostReply::Error(reason), _)) => {
                        finished.failed(waiting, reason);
                        continue;
                    }
                    Err(err) => format!("bad reply from the TLDS at {name}: {err}"),
                },
                Ok(None) => format!("the TLDS at {name} closed the connection"),
                Err(err) => format!("the TLDS at {name}: {err}"),
            };
            broken.store(true, Ordering::Release);
            let _ = reader.get_ref().shutdown(Shutdown::Both);
            finished.failed(waiting, &reason);
            failure = Some(reason);
        }
    }
    finished.hand_over();
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

/// The client program's results: stdout (flushed whenever the pipeline
/// waits, so a person watching sees results as they come) and the file.
struct Output<'a> {
    file: AtomicFile,
    stdout: BufWriter<io::StdoutLock<'a>>,
}

impl Results for Output<'_> {
    fn line(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.stdout, "{line}")?;
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

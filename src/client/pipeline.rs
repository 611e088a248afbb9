//! The pipelined client, for `--window` above 1: a thread per hop, so every
//! hop keeps many queries in flight.
//!
//! 1. the *sender* signs each query and writes `challenge digest` to the AS;
//! 2. the *router* reads the AS's replies in order and writes each hostname
//!    to the TLDS the AS named (connecting on first use);
//! 3. one *reader* per TLDS connection reads that TLDS's replies in order;
//! 4. the *collector* (the calling thread) puts results back in input order.
//!
//! Each stage hands the next a batch of the queries it has sent, which is how
//! replies are paired with queries and how, when a peer fails, every query
//! that was waiting on it still gets its own error line: nothing is lost.
//! Each stage writes what it has queued only when it is about to wait, so a
//! burst of queries costs one system call per hop, not one per query.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Scope;

use anyhow::{Context, Result};

use super::{
    Collector, Done, Job, Pending, Requests, Results, Route, Settings, Unreachable, failed_line,
    malformed_line, read_answer, route_of,
};
use crate::connection::LineReader;
use crate::server::FLUSH_AT;
use crate::wire::HostRequest;

/// Most requests signed and written to the AS at once (about 48 KiB).
const SEND_BATCH: usize = 1024;

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

    fn done(&mut self, pending: Pending<'_>, line: String, failed: bool) {
        self.finish(pending.index, line, failed, 1);
    }

    fn failed(&mut self, pending: Pending<'_>, reason: &str) {
        self.finish(
            pending.index,
            failed_line(pending.hostname, reason),
            true,
            1,
        );
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

/// The next batch from `queue`, calling `before_waiting` first when none is
/// ready: every stage sends on what it has finished before it blocks, which
/// is what keeps the pipeline from stalling. `None` once the queue is closed.
fn next_batch<T>(queue: &Receiver<T>, before_waiting: impl FnOnce()) -> Option<T> {
    match queue.try_recv() {
        Ok(batch) => Some(batch),
        Err(TryRecvError::Disconnected) => None,
        Err(TryRecvError::Empty) => {
            before_waiting();
            queue.recv().ok()
        }
    }
}

/// A thread builder with a name, which shows in debuggers, profilers and
/// panic messages.
fn named(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.to_owned())
}

/// Runs `jobs` through the pipeline, up to `settings.window` in flight.
pub(super) fn resolve(
    jobs: &[Job<'_>],
    as_stream: Option<TcpStream>,
    settings: &Settings,
    collector: &mut Collector,
    results: &mut impl Results,
) -> Result<()> {
    let window = Window::new(settings.window.max(1));
    let (done_tx, done_rx) = mpsc::channel::<Vec<Done>>();
    let (pending_tx, pending_rx) = mpsc::channel::<Vec<Pending<'_>>>();
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
            named("client sender")
                .spawn_scoped(scope, move || {
                    send_queries(jobs, as_writer, pending_tx, finished)
                })
                .context("cannot start the client's sender thread")?;
        }
        {
            let finished = Finished::new(done_tx.clone(), &window);
            let settings = settings.clone();
            named("client router")
                .spawn_scoped(scope, move || {
                    route_replies(scope, as_reader, pending_rx, finished, &settings)
                })
                .context("cannot start the client's router thread")?;
        }
        drop(done_tx);
        while let Some(batch) = next_batch(&done_rx, || collector.idle(results)) {
            collector.store(batch, results);
        }
        collector.finish(results);
        Ok(())
    })
}

/// Stage 1: signs each query and sends it to the AS.
fn send_queries<'a>(
    jobs: &'a [Job<'a>],
    mut as_writer: Option<TcpStream>,
    to_router: Sender<Vec<Pending<'a>>>,
    mut finished: Finished<'_>,
) {
    let mut requests = Requests::default();
    let mut out = Vec::with_capacity(FLUSH_AT);
    let mut sent = Vec::new();
    let mut credits = 0;
    // Waiting for a quarter of a wide window to come back before sending
    // again makes every hop's bursts larger: fewer system calls and wake-ups
    // per query, while three quarters of the window stay in flight.
    let burst = finished.window.size / 4;
    let mut flush = |requests: &mut Requests<'a>,
                     out: &mut Vec<u8>,
                     sent: &mut Vec<Pending<'a>>,
                     finished: &mut Finished<'_>| {
        requests.write_to(out);
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
                finished.malformed(index, malformed_line(*line, reason));
                continue;
            }
        };
        if credits == 0 {
            flush(&mut requests, &mut out, &mut sent, &mut finished);
            credits = finished.window.take(burst);
        }
        credits -= 1;
        requests.push(query);
        sent.push(Pending {
            index,
            hostname: query.hostname,
        });
        if requests.len() >= SEND_BATCH {
            flush(&mut requests, &mut out, &mut sent, &mut finished);
        }
    }
    flush(&mut requests, &mut out, &mut sent, &mut finished);
    finished.window.give_back(credits);
}

/// An AS `<host> <port>` reply already seen, and its meaning. The AS only
/// ever names one of its two TLDS servers, so the router keeps the few lines
/// it has seen and compares bytes instead of parsing each reply again.
struct KnownRoute {
    line: Vec<u8>,
    host: String,
    port: u16,
}

impl KnownRoute {
    fn route(&self) -> Route<'_> {
        Route::Tlds {
            host: &self.host,
            port: self.port,
        }
    }

    fn new(line: &[u8], host: &str, port: u16) -> KnownRoute {
        KnownRoute {
            line: line.to_vec(),
            host: host.to_owned(),
            port,
        }
    }
}

/// Most AS replies the router remembers (an AS names two TLDS servers).
const MAX_KNOWN_ROUTES: usize = 8;

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
    let mut unreachable = Unreachable::default();
    let mut known_routes: Vec<KnownRoute> = Vec::new();
    let flush_all = |links: &mut Vec<TldsLink<'a>>, finished: &mut Finished<'_>| {
        links.iter_mut().for_each(TldsLink::flush);
        finished.hand_over();
    };
    while let Some(batch) = next_batch(&from_sender, || flush_all(&mut links, &mut finished)) {
        for waiting in batch {
            let Some(as_reader) = reader.as_mut().filter(|_| as_failure.is_none()) else {
                let reason = as_failure.as_deref().unwrap_or("no connection to the AS");
                finished.failed(waiting, reason);
                continue;
            };
            if !as_reader.has_buffered_line() {
                flush_all(&mut links, &mut finished);
            }
            let read = as_reader.read_line();
            let known = match &read {
                Ok(Some(line)) => known_routes.iter().find(|known| known.line == *line),
                _ => None,
            };
            let route = match known {
                Some(known) => Ok(known.route()),
                None => {
                    let line: &[u8] = match &read {
                        Ok(Some(line)) => line,
                        _ => &[],
                    };
                    let route = route_of(read, waiting.hostname, &settings.as_name);
                    if let Ok(Route::Tlds { host, port }) = route
                        && known_routes.len() < MAX_KNOWN_ROUTES
                    {
                        known_routes.push(KnownRoute::new(line, host, port));
                    }
                    route
                }
            };
            let failure = match route {
                Ok(Route::Tlds { host, port }) => {
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
                Ok(Route::Done { line, failed }) => {
                    finished.done(waiting, line, failed);
                    None
                }
                Err(reason) => Some(reason),
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
/// there is none or the last one broke.
fn link_for<'l, 'scope, 'a: 'scope>(
    scope: &'scope Scope<'scope, '_>,
    links: &'l mut Vec<TldsLink<'a>>,
    unreachable: &mut Unreachable,
    host: &str,
    port: u16,
    finished: &Finished<'scope>,
    settings: &Settings,
) -> Result<&'l mut TldsLink<'a>, String> {
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
    let (read_half, writer) = unreachable
        .connect(host, port, settings.timeout)
        .and_then(|stream| Ok((stream.try_clone().map_err(|err| err.to_string())?, stream)))?;
    let (to_reader, queued) = mpsc::channel();
    let broken = Arc::new(AtomicBool::new(false));
    {
        let finished = Finished::new(finished.collector.clone(), finished.window);
        let broken = Arc::clone(&broken);
        let reader = named("client reader").spawn_scoped(scope, move || {
            read_tlds_replies(read_half, queued, finished, &broken, &name)
        });
        reader
            .map_err(|err| format!("cannot start a thread for the TLDS at {host}:{port}: {err}"))?;
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
    while let Some(batch) = next_batch(&queued, || finished.hand_over()) {
        for waiting in batch {
            if let Some(reason) = &failure {
                finished.failed(waiting, reason);
                continue;
            }
            if !reader.has_buffered_line() {
                finished.hand_over();
            }
            let reason = match read_answer(&mut reader, waiting.hostname, name) {
                Ok((line, failed)) => {
                    finished.done(waiting, line, failed);
                    continue;
                }
                Err(reason) => reason,
            };
            broken.store(true, Ordering::Release);
            let _ = reader.get_ref().shutdown(Shutdown::Both);
            finished.failed(waiting, &reason);
            failure = Some(reason);
        }
    }
    finished.hand_over();
}

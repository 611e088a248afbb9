//! The pipelined client, for `--window` above 1: a thread per hop, so every
//! hop keeps many queries in flight.
//!
//! 1. the *sender* reads the query file, signs each query and writes
//!    `challenge digest` to the AS;
//! 2. the *router* reads the AS's replies in order and writes each hostname
//!    to the TLDS the AS named (connecting on first use);
//! 3. one *reader* per TLDS connection reads that TLDS's replies in order;
//! 4. the *collector* puts results back in input order: each stage hands
//!    its finished results in itself, under a lock.
//!
//! Each stage hands the next a batch of the queries it has sent ([`Sent`]),
//! which is how replies are paired with queries and how, when a peer fails,
//! every query that was waiting on it still gets its own error line: nothing
//! is lost. A burst of queries costs one system call per hop, not one per
//! query: the sender reads and signs its next burst (half the window) while
//! the last is on its way, and writes it as soon as the window has room;
//! the router and the readers write what they have queued when they are
//! about to wait. A stage with nothing queued sleeps on the socket its next
//! replies will come from, so one wake-up, not two, starts its next batch;
//! at the end the sender and the router half-close their connections, and
//! the servers answer what they have and close, which ends the stages
//! reading from them. At most `--window` queries are between the sender and
//! the collector at any time ([`Window`]).

use std::io::BufRead;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Scope;
use std::time::Instant;

use super::collector::{Collector, ResultLines, Results};
use super::replies::{
    AsHeard, Peer, PeerError, PeerErrorKind, Route, Unreachable, answer_of, as_connection,
    failed_line, malformed_line, route_of,
};
use super::signing::Requests;
use super::{ClientError, Kind, QueryLines, Settings};
use crate::connection::{FrameError, LineReader, Socket, Writer};
use crate::query::Job;
use crate::wire::HostRequest;

/// Most requests signed and written to the AS at once (about 48 KiB).
const SEND_BATCH: usize = 1024;

/// Counts queries in flight, so at most `--window` are. Slots are taken and
/// given back in batches, so stages meet on this lock once per burst rather
/// than once per query.
struct Window {
    size: usize,
    slots: Mutex<Slots>,
    freed: Condvar,
}

struct Slots {
    free: usize,
    /// How many free slots the sender is asleep waiting for; 0 while it is
    /// not. Giving slots back wakes it only once that many are free: a
    /// wake-up is a system call, and waking it to find too few would cost
    /// it a second sleep as well.
    awaited: usize,
}

impl Window {
    fn new(size: usize) -> Window {
        Window {
            size,
            slots: Mutex::new(Slots {
                free: size,
                awaited: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until at least `wanted` slots are free (at most the window's
    /// size), then takes every free slot.
    fn take(&self, wanted: usize) -> usize {
        let wanted = wanted.clamp(1, self.size);
        let mut slots = self.lock();
        while slots.free < wanted {
            slots.awaited = wanted;
            slots = self
                .freed
                .wait(slots)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        slots.awaited = 0;
        std::mem::take(&mut slots.free)
    }

    fn give_back(&self, returned: usize) {
        if returned == 0 {
            return;
        }
        let mut slots = self.lock();
        slots.free += returned;
        if slots.awaited > 0 && slots.free >= slots.awaited {
            slots.awaited = 0;
            drop(slots);
            self.freed.notify_one();
        }
    }
}

/// Queries written on one hop and waiting for their replies there, in the
/// order they were written, with their hostnames (and, when the client
/// proves its keys, their keys) end to end.
#[derive(Default)]
struct Sent {
    text: String,
    /// Each query's index, and where its hostname and its key end in `text`.
    queries: Vec<(usize, usize, usize)>,
    /// When the batch's requests were handed to the socket.
    written_at: Option<Instant>,
}

/// One query of a [`Sent`] batch.
#[derive(Clone, Copy)]
struct Waiting<'a> {
    index: usize,
    hostname: &'a str,
    /// Empty unless the client proves its keys.
    key: &'a str,
}

impl Sent {
    fn push(&mut self, query: Waiting<'_>) {
        self.text.push_str(query.hostname);
        let hostname_end = self.text.len();
        self.text.push_str(query.key);
        self.queries
            .push((query.index, hostname_end, self.text.len()));
    }

    fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    fn len(&self) -> usize {
        self.queries.len()
    }

    /// Each query, in order.
    fn iter(&self) -> impl Iterator<Item = Waiting<'_>> {
        let mut start = 0;
        self.queries
            .iter()
            .map(move |&(index, hostname_end, key_end)| {
                let text = |range| self.text.get(range).expect("queries are kept end to end");
                let waiting = Waiting {
                    index,
                    hostname: text(start..hostname_end),
                    key: text(hostname_end..key_end),
                };
                start = key_end;
                waiting
            })
    }
}

/// Where every stage hands its finished results: the collector, shared.
/// A stage stores its batch itself, under the lock, rather than sending it
/// to a thread of the collector's own: that would cost a wake-up per batch.
type Finished<'w> = &'w Mutex<dyn HandIn + Send + 'w>;

/// The collector, as the stages see it.
trait HandIn {
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
/// Handing over a batch gives its queries' window slots back.
struct Outbox<'w> {
    results: ResultLines,
    slots: usize,
    collector: Finished<'w>,
    window: &'w Window,
}

impl<'w> Outbox<'w> {
    fn new(collector: Finished<'w>, window: &'w Window) -> Self {
        Outbox {
            results: ResultLines::default(),
            slots: 0,
            collector,
            window,
        }
    }

    /// Another outbox to the same collector, for another stage.
    fn another(&self) -> Outbox<'w> {
        Outbox::new(self.collector, self.window)
    }

    fn answered(&mut self, index: usize, line: &str, kind: Kind) {
        self.results.push(index, line, kind);
        self.slots += 1;
    }

    fn failed(&mut self, index: usize, hostname: &str, error: &PeerError) {
        self.answered(index, &failed_line(hostname, error), Kind::Failed);
    }

    /// A malformed query line: it never took a window slot.
    fn malformed(&mut self, index: usize, line: &str) {
        self.results.push(index, line, Kind::Failed);
    }

    fn hand_over(&mut self) {
        self.window.give_back(std::mem::take(&mut self.slots));
        if !self.results.is_empty() {
            self.collector
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .hand_in(&mut self.results);
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

/// The next batch from `queue`, as [`next_batch`], but sleeping on the
/// socket its replies come from rather than on the queue: a batch is queued
/// before its requests are written, so once their replies start to arrive
/// the batch is there, and the stage is woken once (by the replies) instead
/// of twice (by the queue, then by the replies).
fn next_batch_by_replies(
    queue: &Receiver<Sent>,
    replies: &mut LineReader<Socket>,
    before_waiting: impl FnOnce(),
) -> Option<Sent> {
    let mut silent = false;
    let batch = next_batch(queue, || {
        before_waiting();
        // Once replies arrive their batch is queued, and the queue hands it
        // over without a sleep; if the peer closed, timed out or sent
        // something unasked, the queue still decides.
        silent = !replies.has_buffered_line() && replies.wait_for_more().is_err();
    })?;
    if silent && let Some(written_at) = batch.written_at {
        // The peer has said nothing since before this batch was written:
        // its first reply is due a timeout after that, not after now.
        replies.reply_due(written_at);
    }
    Some(batch)
}

/// A thread builder with a name, which shows in debuggers, profilers and
/// panic messages.
fn named(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.to_owned())
}

/// Runs every query through the pipeline, up to `settings.window` in flight.
pub(super) fn resolve<R: BufRead + Send>(
    queries: QueryLines<R>,
    as_stream: Option<TcpStream>,
    settings: &Settings,
    collector: &mut Collector<'_, impl Results + Send>,
) -> Result<(), ClientError> {
    let window = Window::new(settings.window.max(1));
    let (sent_tx, sent_rx) = mpsc::channel::<Sent>();
    let (as_reader, as_writer) = match as_connection(as_stream, settings) {
        Ok(connection) => {
            let (reader, writer) = connection.split();
            (Ok(reader), Some(writer))
        }
        Err(error) => (Err(error), None),
    };
    let shared = Mutex::new(collector);
    let jobs = std::thread::scope(|scope| {
        let outbox = Outbox::new(&shared, &window);
        let sender = AsSender {
            writer: as_writer,
            to_router: sent_tx,
            outbox: outbox.another(),
            requests: Requests::default(),
            ready: Sent::default(),
            credits: 0,
            prove: settings.prove,
        };
        let sender = named("client sender")
            .spawn_scoped(scope, move || sender.run(queries))
            .map_err(ClientError::Thread)?;
        let router = Router {
            as_reader,
            as_name: &settings.as_name,
            known_routes: KnownRoutes::default(),
            tlds: TldsQueues {
                scope,
                settings,
                queues: Vec::new(),
                unreachable: Unreachable::default(),
            },
            outbox,
            as_heard: AsHeard::default(),
            fatal: None,
        };
        let router = named("client router")
            .spawn_scoped(scope, move || router.run(&sent_rx))
            .map_err(ClientError::Thread)?;
        let never_answered = router
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Some(error) = never_answered {
            return Err(ClientError::AsNeverAnswered(error));
        }
        sender
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map_err(ClientError::Input)
        // The scope ends once every reader has handed in its last results.
    })?;
    shared
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .finish(jobs);
    Ok(())
}

/// Stage 1: reads, signs and sends each query to the AS.
struct AsSender<'w> {
    /// `None` once the AS connection broke (the router reports why).
    writer: Option<Writer>,
    to_router: Sender<Sent>,
    outbox: Outbox<'w>,
    requests: Requests,
    /// The next burst's queries, read and signed (into the writer's queue)
    /// but not yet written.
    ready: Sent,
    /// Window slots taken and not yet used.
    credits: usize,
    /// Whether the router needs each query's key, to prove it to a TLDS.
    prove: bool,
}

impl AsSender<'_> {
    /// Sends every query; the number of jobs (queries and malformed lines)
    /// read, or why the file could not be read.
    fn run<R: BufRead>(mut self, mut queries: QueryLines<R>) -> std::io::Result<usize> {
        // Sending a wide window half at a time keeps every hop busy with
        // one half while the other is on its way, and each half is still
        // large enough that its system calls and wake-ups cost little per
        // query. (A quarter at a time measured slower: more, smaller bursts
        // cost more than the extra overlap gains; the whole window at once
        // leaves the hops waiting on each other.)
        let burst = (self.outbox.window.size / 2).clamp(1, SEND_BATCH);
        let mut index = 0;
        loop {
            // The next burst is read and signed before waiting for room in
            // the window, so that once room comes it goes out at once:
            // reading and signing are off the round trip's path.
            let more = self.prepare(&mut queries, &mut index, burst);
            let count = self.ready.len();
            if count > self.credits {
                self.outbox.hand_over();
                self.credits += self.outbox.window.take(count - self.credits);
            }
            self.credits -= count;
            self.send();
            if !matches!(more, Ok(true)) {
                self.outbox.window.give_back(self.credits);
                if let Some(writer) = &self.writer {
                    // The AS answers what it has, then closes: the
                    // router's cue that nothing more is coming.
                    writer.finish();
                }
                return more.map(|_| index);
            }
        }
    }

    /// Reads up to `burst` queries and signs them into the AS writer's
    /// queue (malformed lines go straight to the outbox); `false` once the
    /// input is at its end.
    fn prepare<R: BufRead>(
        &mut self,
        queries: &mut QueryLines<R>,
        index: &mut usize,
        burst: usize,
    ) -> std::io::Result<bool> {
        let mut more = Ok(true);
        while self.ready.len() < burst {
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
                    self.ready.push(Waiting {
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
        match &mut self.writer {
            Some(writer) => self.requests.write_to(writer.queue()),
            // The router reports why, for every query it is handed.
            None => self.requests = Requests::default(),
        }
        more
    }

    /// Writes the ready burst, and tells the router.
    fn send(&mut self) {
        if !self.ready.is_empty() {
            // The router outlives this stage; were it gone, the collector
            // would report these queries as lost.
            self.ready.written_at = Some(Instant::now());
            let _ = self.to_router.send(std::mem::take(&mut self.ready));
        }
        if let Some(writer) = &mut self.writer
            && writer.flush().is_err()
        {
            // The router sees the broken connection and fails every query
            // still queued for the AS.
            writer.close();
            self.writer = None;
        }
        self.outbox.hand_over();
    }
}

/// An AS `<host> <port>` reply already seen.
struct KnownRoute {
    line: Vec<u8>,
    host: String,
    port: u16,
}

/// The AS replies already seen and their meaning. The AS only ever names
/// one of its two TLDS servers, so the router keeps the few lines it has
/// seen and compares bytes instead of parsing each reply again.
#[derive(Default)]
struct KnownRoutes(Vec<KnownRoute>);

/// Most AS replies the router remembers (an AS names two TLDS servers).
const MAX_KNOWN_ROUTES: usize = 8;

impl KnownRoutes {
    /// What one read from the AS means for the query for `hostname`.
    fn meaning<'a>(
        &'a mut self,
        read: Result<Option<&'a [u8]>, FrameError>,
        hostname: &str,
        as_name: &str,
    ) -> Result<Route<'a>, Arc<PeerError>> {
        let line = match &read {
            Ok(Some(line)) => *line,
            _ => &[],
        };
        if let Some(at) = self.0.iter().position(|known| known.line == line) {
            let known = self
                .0
                .get(at)
                .expect("a known route's place was just found");
            return Ok(Route::Tlds {
                host: &known.host,
                port: known.port,
            });
        }
        let route = route_of(read, hostname, as_name)?;
        if let Route::Tlds { host, port } = route
            && self.0.len() < MAX_KNOWN_ROUTES
        {
            self.0.push(KnownRoute {
                line: line.to_vec(),
                host: host.to_owned(),
                port,
            });
        }
        Ok(route)
    }
}

/// The router's end of one TLDS connection: the write half, and the
/// queries written on it not yet handed to its reader.
struct TldsQueue {
    host: String,
    port: u16,
    writer: Writer,
    sent: Sent,
    to_reader: Sender<Sent>,
    /// Set by the reader once the connection failed.
    broken: Arc<AtomicBool>,
}

impl TldsQueue {
    fn flush(&mut self) {
        if self.sent.is_empty() {
            return;
        }
        // The reader outlives the queue; were it gone, the collector would
        // report these queries as lost.
        self.sent.written_at = Some(Instant::now());
        let _ = self.to_reader.send(std::mem::take(&mut self.sent));
        if self.writer.flush().is_err() {
            // The reader fails whatever is queued once the socket is shut.
            self.writer.close();
            self.broken.store(true, Ordering::Release);
        }
    }
}

/// Stage 2: reads AS replies and routes each query to the TLDS it names.
struct Router<'scope, 'env> {
    /// The AS connection's read half, or why it can no longer be used.
    as_reader: Result<LineReader<Socket>, Arc<PeerError>>,
    as_name: &'env str,
    known_routes: KnownRoutes,
    tlds: TldsQueues<'scope, 'env>,
    outbox: Outbox<'scope>,
    as_heard: AsHeard,
    /// Set when the AS failed before answering anything.
    fatal: Option<Arc<PeerError>>,
}

impl Router<'_, '_> {
    /// Routes every query; what ended the run, if the AS never answered.
    fn run(mut self, from_sender: &Receiver<Sent>) -> Option<Arc<PeerError>> {
        loop {
            let batch = match &mut self.as_reader {
                Ok(reader) => {
                    let tlds = &mut self.tlds;
                    let outbox = &mut self.outbox;
                    next_batch_by_replies(from_sender, reader, || {
                        tlds.flush_all();
                        outbox.hand_over();
                    })
                }
                Err(_) => next_batch(from_sender, || self.flush_all()),
            };
            let Some(batch) = batch else { break };
            for query in batch.iter() {
                self.route(query);
            }
        }
        self.flush_all();
        self.tlds.finish_all();
        self.fatal
    }

    fn flush_all(&mut self) {
        self.tlds.flush_all();
        self.outbox.hand_over();
    }

    /// Reads the AS's reply for one query and acts on it.
    fn route(&mut self, query: Waiting<'_>) {
        let Waiting {
            index, hostname, ..
        } = query;
        let reader = match &mut self.as_reader {
            Ok(reader) => reader,
            Err(error) => return self.outbox.failed(index, hostname, error),
        };
        if !reader.has_buffered_line() {
            self.tlds.flush_all();
            self.outbox.hand_over();
        }
        let read = reader.read_line();
        match self.known_routes.meaning(read, hostname, self.as_name) {
            Ok(Route::Tlds { host, port }) => {
                self.as_heard.answered();
                log::trace!("{hostname}: the AS sends it to {host}:{port}");
                self.tlds.send(query, (host, port), &mut self.outbox);
            }
            Ok(Route::Answered { line, kind }) => {
                self.as_heard.answered();
                self.outbox.answered(index, &line, kind);
            }
            Err(error) => {
                self.fatal = self.as_heard.fatal(&error);
                self.outbox.failed(index, hostname, &error);
                if let Ok(reader) = &self.as_reader {
                    let _ = reader.get_ref().shutdown(std::net::Shutdown::Both);
                }
                self.as_reader = Err(error);
            }
        }
    }
}

/// The router's connections to the TLDS servers, opened on first use, each
/// with a reader thread of its own.
struct TldsQueues<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    settings: &'env Settings,
    queues: Vec<TldsQueue>,
    unreachable: Unreachable,
}

impl<'scope, 'env> TldsQueues<'scope, 'env> {
    fn flush_all(&mut self) {
        self.queues.iter_mut().for_each(TldsQueue::flush);
    }

    /// Every hostname has been sent: each TLDS answers what it has and
    /// closes, which ends its reader.
    fn finish_all(&mut self) {
        self.queues.iter().for_each(|queue| queue.writer.finish());
    }

    /// Queues the query's hostname for the TLDS at `host:port`.
    fn send(&mut self, query: Waiting<'_>, (host, port): (&str, u16), outbox: &mut Outbox<'scope>) {
        match self.queue_for((host, port), query.key, outbox) {
            Ok(queue) => {
                HostRequest(query.hostname).write_to(queue.writer.queue());
                queue.sent.push(Waiting { key: "", ..query });
                if queue.writer.is_full() {
                    queue.flush();
                }
            }
            Err(error) => outbox.failed(query.index, query.hostname, &error),
        }
    }

    /// The open connection to `host:port`, opening one (and its reader) if
    /// there is none or the last one broke; `key` proves the client may use
    /// it, when the client proves its keys.
    fn queue_for(
        &mut self,
        (host, port): (&str, u16),
        key: &str,
        outbox: &Outbox<'scope>,
    ) -> Result<&mut TldsQueue, Arc<PeerError>> {
        let existing = self
            .queues
            .iter()
            .position(|queue| queue.host == host && queue.port == port);
        if let Some(at) = existing {
            let broken = self
                .queues
                .get(at)
                .is_some_and(|queue| queue.broken.load(Ordering::Acquire));
            if !broken {
                return Ok(self.queues.get_mut(at).expect("found just now"));
            }
            // Hand the old connection's queued queries to its reader (which
            // fails them), then drop it: its reader finishes and exits.
            self.queues.swap_remove(at).flush();
        }
        let queue = self.open((host, port), key, outbox)?;
        self.queues.push(queue);
        Ok(self.queues.last_mut().expect("pushed just now"))
    }

    /// Connects to `host:port`, proves the key if the client does, and
    /// starts the connection's reader.
    fn open(
        &mut self,
        (host, port): (&str, u16),
        key: &str,
        outbox: &Outbox<'scope>,
    ) -> Result<TldsQueue, Arc<PeerError>> {
        let name = format!("{host}:{port}");
        let (reader, writer) = self
            .unreachable
            .open_tlds((host, port), key, self.settings)?
            .split();
        let (to_reader, queued) = mpsc::channel();
        let broken = Arc::new(AtomicBool::new(false));
        let tlds_reader = TldsReader {
            reader,
            outbox: outbox.another(),
            broken: Arc::clone(&broken),
            name: name.clone(),
        };
        named("client reader")
            .spawn_scoped(self.scope, move || tlds_reader.run(&queued))
            .map_err(|err| PeerError::new(Peer::Tlds(name.clone()), PeerErrorKind::Thread(err)))?;
        Ok(TldsQueue {
            host: host.to_owned(),
            port,
            writer,
            sent: Sent::default(),
            to_reader,
            broken,
        })
    }
}

/// Stage 3: reads one TLDS's replies, in the order its queries were sent.
struct TldsReader<'w> {
    reader: LineReader<Socket>,
    outbox: Outbox<'w>,
    broken: Arc<AtomicBool>,
    /// `host:port`, for error lines.
    name: String,
}

impl TldsReader<'_> {
    fn run(mut self, queued: &Receiver<Sent>) {
        let mut failure: Option<Arc<PeerError>> = None;
        loop {
            let outbox = &mut self.outbox;
            let Some(batch) =
                next_batch_by_replies(queued, &mut self.reader, || outbox.hand_over())
            else {
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
                    self.outbox.hand_over();
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
        self.outbox.hand_over();
    }
}

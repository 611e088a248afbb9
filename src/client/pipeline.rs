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
//! the last is on its way, and the stage whose results make room for it in
//! the window writes it then and there ([`Window`]); the router and the
//! readers write what they have queued when they are about to wait. A
//! stage with nothing queued sleeps on the socket its next replies will
//! come from, so one wake-up, not two, starts its next batch;
//! at the end the sender and the router half-close their connections, and
//! the servers answer what they have and close, which ends the stages
//! reading from them. At most `--window` queries are between the sender and
//! the collector at any time ([`Window`]).

use std::io::BufRead;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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
use crate::sync::unpoisoned;
use crate::wire::HostRequest;

/// Most requests signed and written to the AS at once (about 48 KiB).
const SEND_BATCH: usize = 1024;

/// Counts queries in flight, so at most `--window` are, and sends each burst
/// to the AS as soon as the window has room for it. Slots are taken and
/// given back in batches, so stages meet on this lock once per burst rather
/// than once per query.
///
/// The sender reads and signs a burst ahead; when there is no room for it
/// yet, it leaves the burst here, and the stage whose results free the room
/// sends it on the spot, without waiting on the socket. Waking the sender
/// for that instead would add a wake-up to every round trip.
struct Window {
    size: usize,
    slots: Mutex<Slots>,
    /// Tells the sender its parked burst went out.
    launched: Condvar,
    /// The way to the AS. Taken only while holding `slots`, by whoever took
    /// the slots of the burst it sends, so bursts go out in the order their
    /// slots were taken.
    to_as: Mutex<ToAs>,
}

struct Slots {
    free: usize,
    /// A burst read and signed, waiting for room.
    parked: Option<Burst>,
}

/// A burst of queries, read and signed, with its requests to the AS.
#[derive(Default)]
struct Burst {
    sent: Sent,
    requests: Vec<u8>,
}

/// The write half of the AS connection, and the router's queue: a burst's
/// queries go to the router before its requests go to the AS.
struct ToAs {
    /// `None` once the AS connection broke (the router reports why).
    writer: Option<Writer>,
    /// `None` once every burst is sent, which ends the router's queue.
    to_router: Option<Sender<Sent>>,
}

/// Whether a thread sending a burst may wait on the AS socket.
#[derive(Clone, Copy)]
enum Sending {
    /// The sender: it waits for nothing else.
    MayWait,
    /// Any other stage: the AS may be waiting on it to read its replies.
    WithoutWaiting,
}

impl ToAs {
    fn send(&mut self, mut burst: Burst, sending: Sending) {
        // The router runs until the last burst is sent (`Window::finish`);
        // were it gone, the collector would report these queries as lost.
        burst.sent.written_at = Some(Instant::now());
        if let Some(to_router) = &self.to_router {
            let _ = to_router.send(burst.sent);
        }
        let Some(writer) = &mut self.writer else {
            // The router fails every query it is handed.
            return;
        };
        let queue = writer.queue();
        if queue.is_empty() {
            std::mem::swap(queue, &mut burst.requests);
        } else {
            queue.extend_from_slice(&burst.requests);
        }
        self.write(sending);
    }

    /// Writes what a stage that could not wait left unsent.
    fn flush(&mut self) {
        self.write(Sending::MayWait);
    }

    /// Writes what is queued for the AS, all of it or what the socket takes
    /// at once.
    fn write(&mut self, sending: Sending) {
        let Some(writer) = &mut self.writer else {
            return;
        };
        let written = match sending {
            Sending::MayWait => writer.flush(),
            Sending::WithoutWaiting => writer.send_without_waiting(),
        };
        if written.is_err() {
            // The router sees the broken connection and fails every query
            // still queued for the AS.
            writer.close();
            self.writer = None;
        }
    }
}

impl Window {
    fn new(size: usize, to_as: ToAs) -> Window {
        Window {
            size,
            slots: Mutex::new(Slots {
                free: size,
                parked: None,
            }),
            launched: Condvar::new(),
            to_as: Mutex::new(to_as),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        unpoisoned(self.slots.lock())
    }

    fn lock_to_as(&self) -> MutexGuard<'_, ToAs> {
        unpoisoned(self.to_as.lock())
    }

    /// Sends `burst` to the AS once the window has room for it (it must
    /// fit in the window): now, or, parked, by the stage that frees the
    /// room. Returns once it is sent.
    fn send(&self, burst: Burst) {
        let wanted = burst.sent.len();
        if wanted == 0 {
            return;
        }
        let mut slots = self.lock();
        if slots.free >= wanted {
            slots.free -= wanted;
            let mut to_as = self.lock_to_as();
            drop(slots);
            return to_as.send(burst, Sending::MayWait);
        }
        slots.parked = Some(burst);
        while slots.parked.is_some() {
            slots = unpoisoned(self.launched.wait(slots));
        }
        drop(slots);
        // The AS needs all of it to answer, and answers are what free the
        // room for the next burst.
        self.lock_to_as().flush();
    }

    fn give_back(&self, returned: usize) {
        if returned == 0 {
            return;
        }
        let mut slots = self.lock();
        slots.free += returned;
        let Some(wanted) = slots.parked.as_ref().map(|burst| burst.sent.len()) else {
            return;
        };
        if slots.free < wanted {
            return;
        }
        slots.free -= wanted;
        let burst = slots
            .parked
            .take()
            .expect("a parked burst was just looked at");
        let mut to_as = self.lock_to_as();
        drop(slots);
        to_as.send(burst, Sending::WithoutWaiting);
        drop(to_as);
        self.launched.notify_one();
    }

    /// Writes anything left unsent and says nothing more is coming: the AS
    /// answers what it has, then closes, the router's cue that it is done.
    fn finish(&self) {
        let mut to_as = self.lock_to_as();
        to_as.flush();
        if let Some(writer) = &to_as.writer {
            writer.finish();
        }
        to_as.to_router = None;
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
            unpoisoned(self.collector.lock()).hand_in(&mut self.results);
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
    let (sent_tx, sent_rx) = mpsc::channel::<Sent>();
    let (as_reader, as_writer) = match as_connection(as_stream, settings) {
        Ok(connection) => {
            let (reader, writer) = connection.split();
            (Ok(reader), Some(writer))
        }
        Err(error) => (Err(error), None),
    };
    let to_as = ToAs {
        writer: as_writer,
        to_router: Some(sent_tx),
    };
    let window = Window::new(settings.window.max(1), to_as);
    let shared = Mutex::new(collector);
    let jobs = std::thread::scope(|scope| {
        let outbox = Outbox::new(&shared, &window);
        let sender = AsSender {
            outbox: outbox.another(),
            requests: Requests::default(),
            ready: Burst::default(),
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
    unpoisoned(shared.into_inner()).finish(jobs);
    Ok(())
}

/// Stage 1: reads, signs and sends each query to the AS.
struct AsSender<'w> {
    outbox: Outbox<'w>,
    requests: Requests,
    /// The next burst, read and signed but not yet sent.
    ready: Burst,
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
        let window = self.outbox.window;
        let burst = (window.size / 2).clamp(1, SEND_BATCH);
        let mut index = 0;
        loop {
            // The next burst is read and signed before there is room for
            // it, so that once room comes it goes out at once: reading and
            // signing are off the round trip's path.
            let more = self.prepare(&mut queries, &mut index, burst);
            self.outbox.hand_over();
            window.send(std::mem::take(&mut self.ready));
            if !matches!(more, Ok(true)) {
                // Dropping the sender finishes the window.
                return more.map(|_| index);
            }
        }
    }

    /// Reads up to `burst` queries and signs them into the ready burst
    /// (malformed lines go straight to the outbox); `false` once the input
    /// is at its end.
    fn prepare<R: BufRead>(
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
        self.outbox.window.finish();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::testing::{loopback_pair, more_than_a_socket_holds, returns_promptly};
    use std::io::Read;
    use std::sync::Arc;

    fn burst(first_index: usize, queries: usize, requests: Vec<u8>) -> Burst {
        let mut sent = Sent::default();
        for index in first_index..first_index + queries {
            sent.push(Waiting {
                index,
                hostname: "host.example",
                key: "",
            });
        }
        Burst { sent, requests }
    }

    // The stage that frees room for a parked burst sends it then and
    // there, but never waits on the AS to do it: the AS may be waiting on
    // that very stage. What the socket cannot take, the sender writes; the
    // AS gets every burst whole and in order, and the router gets every
    // burst's queries before its requests.
    #[test]
    fn a_parked_burst_goes_out_without_the_freeing_stage_waiting_on_the_as() {
        let (near, far) = loopback_pair();
        let (to_router, routed) = mpsc::channel();
        let to_as = ToAs {
            writer: Some(Writer::new(Socket::new(near))),
            to_router: Some(to_router),
        };
        let window = Arc::new(Window::new(2, to_as));
        let (first, second) = (b"first\n".to_vec(), more_than_a_socket_holds(3));
        window.send(burst(0, 1, first.clone()));
        let sender = {
            let window = Arc::clone(&window);
            let second = second.clone();
            // Needs both slots, one of which the first burst holds: parked.
            std::thread::spawn(move || window.send(burst(1, 2, second)))
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while window.lock().parked.is_none() {
            assert!(
                Instant::now() < deadline,
                "the second burst was never parked"
            );
            std::thread::yield_now();
        }
        let freeing = Arc::clone(&window);
        assert!(
            returns_promptly(move || freeing.give_back(1)),
            "the stage that freed the room waited on an AS that reads nothing"
        );
        let reading = std::thread::spawn(move || {
            let mut received = Vec::new();
            (&far).read_to_end(&mut received).map(|_| received)
        });
        sender.join().unwrap();
        window.finish();
        let received = reading.join().unwrap().unwrap();
        assert!(
            received == [first, second].concat(),
            "bytes lost or out of order"
        );
        let indices: Vec<Vec<usize>> = routed
            .try_iter()
            .map(|sent: Sent| sent.iter().map(|query| query.index).collect())
            .collect();
        assert_eq!(indices, [vec![0], vec![1, 2]]);
    }
}

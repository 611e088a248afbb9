//! The AS's links to one TLDS: a fixed number of pipelined connections,
//! shared by every client connection, so what the AS holds on a TLDS does not
//! grow with its clients.
//!
//! A client thread [`SharedLink::submit`]s its burst of challenges and then
//! [`SharedLink::wait`]s for as many digests. Submitting queues the burst
//! (which fixes its place in the answer order) and, unless another thread is
//! already writing, makes the submitter the link's writer: it writes every
//! queued burst, its own and those queued while it writes, one write per
//! round (flat combining), so bursts from many client connections cost the
//! link one system call, and no submitter sleeps on a lock while another
//! writes.
//! Waiting threads take turns reading (leader/follower): whoever waits while
//! nobody reads becomes the reader, hands every answer it reads to the burst
//! it belongs to, and passes the turn on when its own burst is complete. A
//! lone client's answers are thus read by its own thread, with no hand-off.
//!
//! A waiting thread sleeps by parking itself, and is woken by an unpark from
//! whoever completes its burst or passes it the turn: each burst names its
//! own thread, so no condition variable is shared between the locks of
//! several links. Locks are taken in one order only: the writer, then the
//! state, then the TLDS's health (see `docs/architecture.md`).
//!
//! Every link to a TLDS shares that TLDS's [`Health`] (`health.rs`): while
//! it is down, bursts for it fail at once.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::Duration;

use super::endpoint::{Answer, LinkError, LinkErrorKind, TldsEndpoint};
use super::health::{Health, TldsHealth};
use crate::connection::{LineClock, LineReader, Socket};
use crate::metrics::TldsMetrics;
use crate::sync::lock;
use crate::wire::DigestReply;

/// A burst queued on a link, to be passed to [`SharedLink::wait`].
#[derive(Debug, Clone, Copy)]
pub struct Submitted {
    id: u64,
}

/// The answers to one burst, one per challenge, in order.
pub struct Outcome {
    pub answers: Vec<Answer>,
    /// A reused connection closed before answering any of them: worth
    /// sending again on a new one (a TLDS closes idle connections, and
    /// signing a challenge twice is harmless).
    pub worth_retrying: bool,
}

/// The generation of a burst queued but not yet written.
const UNWRITTEN: u64 = 0;

/// A burst waiting for its answers.
struct Pending {
    id: u64,
    /// Which connection it was written on; [`UNWRITTEN`] while queued.
    generation: u64,
    /// Whether it went out on a connection an earlier burst had used.
    reused: bool,
    expected: usize,
    answers: Vec<Answer>,
    /// The thread waiting for it, to unpark.
    waiter: Thread,
    /// Its thread is asleep in [`SharedLink::wait`] on this link.
    sleeping: bool,
}

impl Pending {
    /// Wakes its thread if it sleeps: a notification is a system call, and
    /// the reader's own burst, or one whose thread is still writing, needs
    /// none.
    fn wake(&self) {
        if self.sleeping {
            self.waiter.unpark();
        }
    }
}

struct State {
    /// The open connection's number; 0 while none is open.
    generation: u64,
    connections: u64,
    /// The open connection's read half, unless its reader has it.
    reader: Option<LineReader<Socket>>,
    leading: bool,
    /// A thread is writing queued bursts; a submitter only queues its own.
    writing: bool,
    /// The challenges of the bursts queued and not yet written, end to end.
    queued: Vec<u8>,
    /// How many bursts at the back of `pending` are queued, not written.
    unwritten: usize,
    /// The writer's buffer between rounds, swapped with `queued`, so that
    /// queueing allocates only while bursts grow.
    spare: Vec<u8>,
    next_id: u64,
    /// Bursts in the order they were queued, which is the order they are
    /// written in, so answers pair with them.
    pending: VecDeque<Pending>,
    finished: Vec<(u64, Outcome)>,
    /// Where the reader puts the answers it reads before handing them out,
    /// kept from read to read so that reading allocates nothing.
    read: Vec<Answer>,
}

impl State {
    /// Where the queued, unwritten bursts begin in `pending`.
    fn first_unwritten(&self) -> usize {
        self.pending.len().saturating_sub(self.unwritten)
    }
}

/// Most answers a reader takes from the socket before handing them out.
const READ_BATCH: usize = 1024;

/// One pipelined connection to a TLDS, shared by every client connection
/// and reopened when needed.
pub struct SharedLink {
    /// The TLDS's health, shared with its other links.
    health: Arc<TldsHealth>,
    timeout: Duration,
    /// The write half and its connection's number, taken only by the thread
    /// that is writing (see `State::writing`), so never waited on for long.
    writer: Mutex<Option<(u64, Socket)>>,
    state: Mutex<State>,
    opened: AtomicUsize,
}

impl SharedLink {
    pub fn new(health: Arc<TldsHealth>, timeout: Duration) -> SharedLink {
        SharedLink {
            health,
            timeout,
            writer: Mutex::new(None),
            state: Mutex::new(State {
                generation: 0,
                connections: 0,
                reader: None,
                leading: false,
                writing: false,
                queued: Vec::new(),
                unwritten: 0,
                spare: Vec::new(),
                next_id: 0,
                pending: VecDeque::new(),
                finished: Vec::new(),
                read: Vec::new(),
            }),
            opened: AtomicUsize::new(0),
        }
    }

    pub fn endpoint(&self) -> &TldsEndpoint {
        self.health.endpoint()
    }

    pub fn health(&self) -> Health {
        self.health.health()
    }

    /// What the AS counts of this link's TLDS.
    pub fn metrics(&self) -> &TldsMetrics {
        self.health.metrics()
    }

    /// How many connections this link has opened so far.
    #[cfg(test)]
    pub(crate) fn connections_opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Shuts the open connection's write half, so the next write on it
    /// fails while its read half stays open.
    #[cfg(test)]
    pub(crate) fn shut_down_writes(&self) {
        if let Some((_, socket)) = &*lock(&self.writer) {
            let _ = socket.shutdown(std::net::Shutdown::Write);
        }
    }

    fn error(&self, kind: LinkErrorKind) -> Arc<LinkError> {
        Arc::new(LinkError {
            tlds: Arc::clone(self.health.described()),
            kind,
        })
    }

    /// Queues `count` challenges (`challenges` holds them, one per line)
    /// and, unless another thread is writing, writes every queued burst,
    /// connecting first if need be. The calling thread is the one that
    /// waits for the answers.
    pub fn submit(&self, challenges: &[u8], count: usize) -> Result<Submitted, Arc<LinkError>> {
        self.health.check()?;
        let mut state = lock(&self.state);
        let id = state.next_id;
        state.next_id += 1;
        state.pending.push_back(Pending {
            id,
            generation: UNWRITTEN,
            reused: false,
            expected: count,
            answers: Vec::with_capacity(count),
            waiter: thread::current(),
            sleeping: false,
        });
        state.queued.extend_from_slice(challenges);
        state.unwritten += 1;
        self.health.metrics().bursts.inc();
        if !state.writing {
            state.writing = true;
            drop(state);
            self.write_queued();
        }
        Ok(Submitted { id })
    }

    /// Writes queued bursts, one write for all that are queued, until none
    /// is left; called by the thread that set `State::writing`, which it
    /// clears when it finds the queue empty, under the same lock as a
    /// submitter queues under, so no burst is left queued with no writer.
    fn write_queued(&self) {
        let mut writer = lock(&self.writer);
        let mut batch = std::mem::take(&mut lock(&self.state).spare);
        // Each round starts with at least one burst queued: the submitter's
        // own, or those queued while the last round wrote.
        loop {
            let connection = self.connection(&mut writer);
            let mut state = lock(&self.state);
            let (generation, reused, stream) = match connection {
                Ok(open) => open,
                Err(error) => {
                    self.fail_unwritten(&mut state, &error);
                    state.writing = false;
                    state.spare = batch;
                    return;
                }
            };
            std::mem::swap(&mut state.queued, &mut batch);
            let written = state.first_unwritten();
            state.unwritten = 0;
            for pending in state.pending.range_mut(written..) {
                pending.generation = generation;
                pending.reused = reused;
            }
            drop(state);
            self.health.metrics().writes.inc();
            let wrote = stream.write_all(&batch);
            batch.clear();
            let mut state = lock(&self.state);
            if let Err(err) = wrote {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                *writer = None;
                let error = self.error(LinkErrorKind::Write(err));
                self.fail(&mut state, generation, &error, true);
            }
            // Checked before connecting again, so a failed write with
            // nothing queued behind it opens no connection.
            if state.unwritten == 0 {
                state.writing = false;
                state.spare = batch;
                return;
            }
        }
    }

    /// The open connection (its number, whether a burst has gone out on it,
    /// and its write half), opened if need be; called with the writer lock
    /// held.
    fn connection<'w>(
        &self,
        writer: &'w mut Option<(u64, Socket)>,
    ) -> Result<(u64, bool, &'w mut Socket), Arc<LinkError>> {
        if let Some((generation, _)) = &*writer
            && lock(&self.state).generation != *generation
        {
            // Its reader gave up on this connection.
            *writer = None;
        }
        let reused = writer.is_some();
        let (generation, stream) = match writer {
            Some(open) => open,
            None => {
                // A connection that failed since the bursts were queued may
                // have had the TLDS skipped: then they fail at once.
                self.health.check()?;
                writer.insert(self.open()?)
            }
        };
        Ok((*generation, reused, stream))
    }

    /// Opens a new connection; called with the writer lock held.
    fn open(&self) -> Result<(u64, Socket), Arc<LinkError>> {
        let opened = self.health.connect();
        let mut state = lock(&self.state);
        match opened {
            Ok(stream) => {
                let socket = Socket::new(stream);
                if self.opened.fetch_add(1, Ordering::Relaxed) > 0 {
                    self.health.metrics().reconnects.inc();
                }
                state.connections += 1;
                state.generation = state.connections;
                let mut reader = LineReader::new(socket.clone());
                reader.limit_each_line(self.timeout, LineClock::FromWait);
                state.reader = Some(reader);
                self.health.connected();
                Ok((state.generation, socket))
            }
            Err(err) => {
                let error = self.error(LinkErrorKind::Connect(err));
                if let Some(how) = error.kind.downed() {
                    self.health.down(&error, how);
                }
                Err(error)
            }
        }
    }

    /// Waits for the answers to a submitted burst, reading them (and others'
    /// on the way) when no other thread is. Called by the thread that
    /// submitted the burst.
    pub fn wait(&self, submitted: Submitted) -> Outcome {
        let mut state = lock(&self.state);
        loop {
            if let Some(at) = state
                .finished
                .iter()
                .position(|(id, _)| *id == submitted.id)
            {
                let (_, outcome) = state.finished.swap_remove(at);
                self.pass_the_turn(&state);
                return outcome;
            }
            if !state.leading && state.reader.is_some() {
                state = self.read_answers(state);
                continue;
            }
            if let Ok(at) = state
                .pending
                .binary_search_by_key(&submitted.id, |pending| pending.id)
                && let Some(mine) = state.pending.get_mut(at)
            {
                mine.sleeping = true;
            }
            drop(state);
            // An unpark that came before this park makes it return at once,
            // so no wake-up is lost; one that comes spuriously only loops.
            thread::park();
            state = lock(&self.state);
        }
    }

    /// Wakes a sleeping waiter to read next, if nobody is reading and
    /// there is a connection to read.
    fn pass_the_turn(&self, state: &State) {
        if state.leading || state.reader.is_none() {
            return;
        }
        if let Some(next) = state.pending.iter().find(|pending| pending.sleeping) {
            next.waiter.unpark();
        }
    }

    /// Reads at least one answer (blocking, with the lock released), then
    /// every answer already buffered, and hands them out.
    fn read_answers<'s>(&'s self, mut state: MutexGuard<'s, State>) -> MutexGuard<'s, State> {
        let generation = state.generation;
        let mut reader = state
            .reader
            .take()
            .expect("a waiter reads only while there is a reader and nobody else reads");
        state.leading = true;
        let mut answers = std::mem::take(&mut state.read);
        drop(state);
        let mut failure = None;
        loop {
            match reader.read_line() {
                Ok(Some(line)) => match DigestReply::parse(line) {
                    Ok(DigestReply::Digest(digest)) => answers.push(Ok(digest)),
                    Ok(DigestReply::Error(reason)) => {
                        answers.push(Err(self.error(LinkErrorKind::Refused(reason.to_owned()))))
                    }
                    Err(err) => failure = Some(LinkErrorKind::BadReply(err)),
                },
                Ok(None) => failure = Some(LinkErrorKind::Closed),
                Err(err) => failure = Some(LinkErrorKind::Read(err)),
            }
            if failure.is_some() || answers.len() >= READ_BATCH || !reader.has_buffered_line() {
                break;
            }
        }
        if !answers.is_empty() {
            // It answers: if it was down, it is back, from this moment.
            self.health.answered();
        }
        let mut state = lock(&self.state);
        state.leading = false;
        if state.generation != generation {
            // A writer gave up on this connection meanwhile and failed
            // every burst written on it.
            return state;
        }
        for answer in answers.drain(..) {
            if !self.deliver(&mut state, generation, answer) {
                failure = Some(LinkErrorKind::Unasked);
                break;
            }
        }
        answers.clear();
        state.read = answers;
        match failure {
            None => state.reader = Some(reader),
            Some(kind) => {
                let _ = reader.get_ref().shutdown(std::net::Shutdown::Both);
                let closed = kind.is_close();
                let error = self.error(kind);
                self.fail(&mut state, generation, &error, closed);
            }
        }
        state
    }

    /// Gives one answer, read on connection `generation`, to the oldest
    /// burst still waiting; false when no burst written on it is waiting.
    fn deliver(&self, state: &mut State, generation: u64, answer: Answer) -> bool {
        let Some(oldest) = state
            .pending
            .front_mut()
            .filter(|oldest| oldest.generation == generation)
        else {
            return false;
        };
        oldest.answers.push(answer);
        if oldest.answers.len() >= oldest.expected {
            let done = state
                .pending
                .pop_front()
                .expect("the oldest burst was just looked at");
            done.wake();
            state.finished.push((
                done.id,
                Outcome {
                    answers: done.answers,
                    worth_retrying: false,
                },
            ));
        }
        true
    }

    /// Ends connection `generation`: every burst written on it gets `error`
    /// for each challenge not yet answered.
    fn fail(&self, state: &mut State, generation: u64, error: &Arc<LinkError>, closed: bool) {
        if state.generation == generation {
            state.generation = 0;
            state.reader = None;
            if let Some(how) = error.kind.downed() {
                self.health.down(error, how);
            }
        }
        while state
            .pending
            .front()
            .is_some_and(|pending| pending.generation == generation)
        {
            let failed = state
                .pending
                .pop_front()
                .expect("the front burst was just looked at");
            let worth_retrying = closed && failed.reused && failed.answers.is_empty();
            Self::finish_failed(state, failed, error, worth_retrying);
        }
    }

    /// Fails every burst queued and not yet written (its connection could
    /// not be opened) with `error`.
    fn fail_unwritten(&self, state: &mut State, error: &Arc<LinkError>) {
        let written = state.first_unwritten();
        let unwritten: Vec<Pending> = state.pending.drain(written..).collect();
        state.unwritten = 0;
        state.queued.clear();
        for failed in unwritten {
            Self::finish_failed(state, failed, error, false);
        }
    }

    /// Finishes `failed` with `error` for each challenge not yet answered.
    fn finish_failed(
        state: &mut State,
        mut failed: Pending,
        error: &Arc<LinkError>,
        worth_retrying: bool,
    ) {
        failed
            .answers
            .resize_with(failed.expected, || Err(Arc::clone(error)));
        failed.wake();
        state.finished.push((
            failed.id,
            Outcome {
                answers: failed.answers,
                worth_retrying,
            },
        ));
    }

    /// Waits for a burst's answers, as [`SharedLink::wait`]; a reused
    /// connection that closed before answering is replaced and the burst
    /// sent once more on the new one.
    pub fn await_answers(
        &self,
        submitted: Result<Submitted, Arc<LinkError>>,
        challenges: &[u8],
        count: usize,
    ) -> Vec<Answer> {
        let mut submitted = submitted;
        let mut retried = false;
        loop {
            let sent = match submitted {
                Ok(sent) => sent,
                Err(error) => return vec![Err(error); count],
            };
            let outcome = self.wait(sent);
            if !outcome.worth_retrying || retried {
                return outcome.answers;
            }
            retried = true;
            submitted = self.submit(challenges, count);
        }
    }

    /// Sends a burst and waits for its answers.
    #[cfg(test)]
    pub(crate) fn ask(&self, challenges: &[u8], count: usize) -> Vec<Answer> {
        let submitted = self.submit(challenges, count);
        self.await_answers(submitted, challenges, count)
    }
}

/// The links to one TLDS, taken in turn, and its health.
pub struct TldsLinks {
    health: Arc<TldsHealth>,
    links: Vec<SharedLink>,
    next: AtomicUsize,
}

impl TldsLinks {
    /// `count` links (at least one) to `endpoint`, none opened yet,
    /// counting in `metrics`.
    pub fn new(
        endpoint: TldsEndpoint,
        count: usize,
        timeout: Duration,
        metrics: TldsMetrics,
    ) -> TldsLinks {
        let health = TldsHealth::new(Arc::new(endpoint), timeout, metrics);
        TldsLinks {
            links: (0..count.max(1))
                .map(|_| SharedLink::new(Arc::clone(&health), timeout))
                .collect(),
            health,
            next: AtomicUsize::new(0),
        }
    }

    /// The link the next burst should use.
    pub fn pick(&self) -> &SharedLink {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.links.len();
        self.links
            .get(turn)
            .expect("a turn is taken modulo the number of links")
    }

    #[cfg(test)]
    pub(crate) fn links(&self) -> &[SharedLink] {
        &self.links
    }

    pub fn endpoint(&self) -> &TldsEndpoint {
        self.health.endpoint()
    }

    pub fn health(&self) -> Health {
        self.health.health()
    }

    /// Stops probing the TLDS: the AS is stopping.
    pub fn stop(&self) {
        self.health.stop();
    }
}

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
//! One file a part: `window.rs` (flow control, and the way to the AS),
//! `batch.rs` (the [`Sent`](batch::Sent) queries that travel between
//! stages), `outbox.rs` (where a stage's finished results go), `sender.rs`,
//! `router.rs` and `reader.rs` (the three stages), and this file, which
//! starts them and holds how a stage waits for its next batch.
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

mod batch;
mod outbox;
mod reader;
mod router;
mod sender;
mod window;

use std::io::BufRead;
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, TryRecvError};

use super::collector::{Collector, Results};
use super::replies::{AsHeard, TldsConnector, as_connection};
use super::signing::Requests;
use super::{ClientError, QueryLines, Settings};
use crate::connection::{LineReader, Socket};
use crate::sync::unpoisoned;
use batch::Sent;
use outbox::Outbox;
use router::{KnownRoutes, Router, TldsQueues};
use sender::AsSender;
use window::{SignedBurst, ToAs, Window};

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
/// of twice (by the queue, then by the replies). `closed_while_idle` runs
/// at once if the peer closes the connection while nothing is asked of it
/// (its idle timeout, or room made for a newcomer), so that a new
/// connection can be opened before anything is sent on the old.
fn next_batch_by_replies(
    queue: &Receiver<Sent>,
    replies: &mut LineReader<Socket>,
    before_waiting: impl FnOnce(),
    closed_while_idle: impl FnOnce(),
) -> Option<Sent> {
    let mut silent = false;
    let batch = next_batch(queue, || {
        before_waiting();
        // Once replies arrive their batch is queued, and the queue hands it
        // over without a sleep; if the peer closed, timed out or sent
        // something unasked, the queue still decides.
        if !replies.has_buffered_line() {
            match replies.wait_for_more() {
                Err(_) => silent = true,
                Ok(false) => closed_while_idle(),
                Ok(true) => {}
            }
        }
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
    let as_addr = as_stream
        .as_ref()
        .and_then(|stream| stream.peer_addr().ok());
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
        bursts_sent: 0,
    };
    let window = Window::new(settings.window.max(1), to_as);
    let shared = Mutex::new(collector);
    let jobs = std::thread::scope(|scope| {
        let outbox = Outbox::new(&shared, &window);
        let sender = AsSender {
            outbox: outbox.another(),
            requests: Requests::default(),
            ready: SignedBurst::default(),
            prove: settings.prove,
        };
        let sender = named("client sender")
            .spawn_scoped(scope, move || sender.run(queries))
            .map_err(ClientError::Thread)?;
        let router = Router {
            as_reader,
            as_addr,
            timeout: settings.timeout,
            bursts_received: 0,
            reopened: None,
            as_name: &settings.as_name,
            known_routes: KnownRoutes::default(),
            tlds: TldsQueues {
                scope,
                settings,
                queues: Vec::new(),
                connector: TldsConnector::default(),
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
    unpoisoned(shared.into_inner()).give_out_rest(jobs);
    Ok(())
}

//! Stage 2, the router: reads the AS's replies in order and writes each
//! hostname to the TLDS the AS named, connecting (and starting that
//! connection's reader) on first use.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::Scope;
use std::time::{Duration, Instant};

use super::super::Settings;
use super::super::replies::{
    AsHeard, Hop, HopError, HopErrorKind, Route, TldsConnector, route_of, server_connection,
};
use super::batch::{Sent, Waiting};
use super::outbox::Outbox;
use super::reader::TldsReader;
use super::window::Window;
use super::{named, next_batch, next_batch_by_replies};
use crate::connection::{self, FrameError, LineReader, Socket, Writer};
use crate::wire::HostRequest;

/// An AS `<host> <port>` reply already seen.
pub(super) struct KnownRoute {
    pub(super) line: Vec<u8>,
    pub(super) host: String,
    pub(super) port: u16,
}

/// The AS replies already seen and their meaning. The AS only ever names
/// one of its two TLDS servers, so the router keeps the few lines it has
/// seen and compares bytes instead of parsing each reply again.
#[derive(Default)]
pub(super) struct KnownRoutes(Vec<KnownRoute>);

/// Most AS replies the router remembers (an AS names two TLDS servers).
pub(super) const MAX_KNOWN_ROUTES: usize = 8;

impl KnownRoutes {
    /// What one read from the AS means for the query for `hostname`.
    pub(super) fn meaning<'a>(
        &'a mut self,
        read: Result<Option<&'a [u8]>, FrameError>,
        hostname: &str,
        as_name: &str,
    ) -> Result<Route<'a>, Arc<HopError>> {
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
pub(super) struct TldsQueue {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) writer: Writer,
    pub(super) sent: Sent,
    pub(super) to_reader: Sender<Sent>,
    /// Set by the reader once the connection failed.
    pub(super) broken: Arc<AtomicBool>,
}

impl TldsQueue {
    pub(super) fn flush(&mut self) {
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
pub(super) struct Router<'scope, 'env> {
    /// The AS connection's read half, or why it can no longer be used.
    pub(super) as_reader: Result<LineReader<Socket>, Arc<HopError>>,
    /// Where the AS is, to connect again when it closed the connection
    /// while it sat idle (a closed socket may no longer know its peer).
    pub(super) as_addr: Option<SocketAddr>,
    pub(super) timeout: Duration,
    /// Bursts received from the sender so far.
    pub(super) bursts_received: u64,
    /// When, and after how many bursts, the AS connection was last opened
    /// anew: it is opened anew again only once a burst has gone through
    /// since, or a second has passed, so an AS that closes every connection
    /// at once is not asked again and again.
    pub(super) reopened: Option<(Instant, u64)>,
    pub(super) as_name: &'env str,
    pub(super) known_routes: KnownRoutes,
    pub(super) tlds: TldsQueues<'scope, 'env>,
    pub(super) outbox: Outbox<'scope>,
    pub(super) as_heard: AsHeard,
    /// Set when the AS failed before answering anything.
    pub(super) fatal: Option<Arc<HopError>>,
}

impl Router<'_, '_> {
    /// Routes every query; what ended the run, if the AS never answered.
    pub(super) fn run(mut self, from_sender: &Receiver<Sent>) -> Option<Arc<HopError>> {
        loop {
            let mut reopened = None;
            let batch = match &mut self.as_reader {
                Ok(reader) => {
                    let tlds = &mut self.tlds;
                    let outbox = &mut self.outbox;
                    let window = outbox.window;
                    let (addr, timeout) = (self.as_addr, self.timeout);
                    let received = self.bursts_received;
                    let again = self.reopened.is_none_or(|(at, after)| {
                        after != received || at.elapsed() >= Duration::from_secs(1)
                    });
                    next_batch_by_replies(
                        from_sender,
                        reader,
                        || {
                            tlds.flush_all();
                            outbox.pass_on();
                        },
                        // The AS closed the connection while nothing was
                        // asked of it (its idle timeout, or room made for
                        // a newcomer): a new one before the next burst.
                        || {
                            if let Some(addr) = addr.filter(|_| again) {
                                reopened = reopen_as(window, addr, timeout, received);
                            }
                        },
                    )
                }
                Err(_) => next_batch(from_sender, || self.flush_all()),
            };
            if let Some(reader) = reopened {
                self.as_reader = Ok(reader);
                self.reopened = Some((Instant::now(), self.bursts_received));
            }
            let Some(batch) = batch else { break };
            self.bursts_received += 1;
            for query in batch.iter() {
                self.route(query);
            }
        }
        self.flush_all();
        self.tlds.half_close_all();
        self.fatal
    }

    pub(super) fn flush_all(&mut self) {
        self.tlds.flush_all();
        self.outbox.pass_on();
    }

    /// Reads the AS's reply for one query and acts on it.
    pub(super) fn route(&mut self, query: Waiting<'_>) {
        let Waiting {
            index, hostname, ..
        } = query;
        let reader = match &mut self.as_reader {
            Ok(reader) => reader,
            Err(error) => return self.outbox.failed(index, hostname, error),
        };
        if !reader.has_buffered_line() {
            self.tlds.flush_all();
            self.outbox.pass_on();
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
pub(super) struct TldsQueues<'scope, 'env> {
    pub(super) scope: &'scope Scope<'scope, 'env>,
    pub(super) settings: &'env Settings,
    pub(super) queues: Vec<TldsQueue>,
    pub(super) connector: TldsConnector,
}

impl<'scope, 'env> TldsQueues<'scope, 'env> {
    pub(super) fn flush_all(&mut self) {
        self.queues.iter_mut().for_each(TldsQueue::flush);
    }

    /// Every hostname has been sent: each TLDS answers what it has and
    /// closes, which ends its reader.
    pub(super) fn half_close_all(&mut self) {
        self.queues
            .iter()
            .for_each(|queue| queue.writer.half_close());
    }

    /// Queues the query's hostname for the TLDS at `host:port`.
    pub(super) fn send(
        &mut self,
        query: Waiting<'_>,
        (host, port): (&str, u16),
        outbox: &mut Outbox<'scope>,
    ) {
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
    pub(super) fn queue_for(
        &mut self,
        (host, port): (&str, u16),
        key: &str,
        outbox: &Outbox<'scope>,
    ) -> Result<&mut TldsQueue, Arc<HopError>> {
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
    pub(super) fn open(
        &mut self,
        (host, port): (&str, u16),
        key: &str,
        outbox: &Outbox<'scope>,
    ) -> Result<TldsQueue, Arc<HopError>> {
        let name = format!("{host}:{port}");
        let (reader, writer) = self
            .connector
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
            .map_err(|err| HopError::new(Hop::Tlds(name.clone()), HopErrorKind::Thread(err)))?;
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

/// A new connection to the AS at `addr` in place of one it closed while
/// idle, the write half given to the sender and the read half returned; or
/// `None` when that cannot be done safely: the input has ended (the AS
/// closing is then the run's end), or a burst was sent since the router
/// last looked (it went out on the closed connection, and fails there).
fn reopen_as(
    window: &Window,
    addr: SocketAddr,
    timeout: Duration,
    received: u64,
) -> Option<LineReader<Socket>> {
    let mut to_as = window.lock_to_as();
    if to_as.to_router.is_none() || to_as.writer.is_none() || to_as.bursts_sent != received {
        return None;
    }
    let stream = connection::connect(&[addr], timeout).ok()?;
    log::debug!("reconnected to the AS at {addr}: it closed the idle connection");
    let (reader, writer) = server_connection(stream, timeout).split();
    if let Some(closed) = to_as.writer.replace(writer) {
        closed.close();
    }
    Some(reader)
}

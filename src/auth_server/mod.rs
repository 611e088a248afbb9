//! The authentication server role (`as_server`): it holds no records and no
//! keys. For each `challenge digest` from a client it asks both TLDS servers
//! to sign the challenge, compares their digests with the client's in
//! constant time, and tells the client which TLDS to ask.
//!
//! Client connections are served by the same loop as every other port
//! ([`Connection::serve`]): requests are queued as they arrive, and a burst
//! (every request already buffered, up to
//! [`MAX_QUEUED`](crate::connection::MAX_QUEUED)) is forwarded to
//! both TLDS servers in one write each, before reading either's answers, so
//! neither TLDS waits on the other and a pipelining client pays one round
//! trip per burst, not per request. The connections to each TLDS are a fixed
//! few, shared by every client connection ([`link`]).

pub mod endpoint;
pub mod health;
pub mod link;
#[cfg(test)]
mod tests;

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::connection::{Connection, PeerAddr, Respond, Served};
use crate::digest::Digest;
use crate::metrics::{PortMetrics, ServerMetrics, Tally, http};
use crate::server::{self, Allow, Gate, Port, Stopper};
use crate::wire::{self, AuthReply, AuthRequest, ChallengeRequest, WireError};

pub use endpoint::{Answer, LinkError, LinkErrorKind, TldsEndpoint};
pub use health::Health;
pub use link::{SharedLink, TldsLinks};

/// Everything the AS serves with.
#[derive(Debug, Clone)]
pub struct Config {
    pub tlds: [TldsEndpoint; 2],
    /// Bound on connecting to, and waiting for, a TLDS.
    pub timeout: Duration,
    /// Connections kept to each TLDS, shared by every client.
    pub links_per_tlds: usize,
    /// Client connections served at once.
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

/// The client port's request outcomes, as the metrics label them: the
/// TLDS matched (in the order of [`Config::tlds`]), no match, a TLDS that
/// gave no digest, a malformed request.
pub const OUTCOMES: [&str; 5] = ["tlds1", "tlds2", "no_match", "error", "malformed"];
const NO_MATCH: usize = 2;
const ERROR: usize = 3;
const MALFORMED: usize = 4;

/// The AS's state, shared by every client connection: its links to the two
/// TLDS servers.
pub struct AuthServer {
    links: [TldsLinks; 2],
    gate: Arc<Gate>,
    /// The client port's counters.
    metrics: PortMetrics,
}

impl AuthServer {
    /// The AS for `config`, counting in `metrics`.
    pub fn new(config: Config, metrics: &mut ServerMetrics) -> AuthServer {
        let Config {
            tlds,
            timeout,
            links_per_tlds,
            max_connections,
            idle_timeout,
        } = config;
        AuthServer {
            links: tlds.map(|endpoint| {
                let tlds_metrics = metrics.tlds(endpoint.name);
                TldsLinks::new(endpoint, links_per_tlds, timeout, tlds_metrics)
            }),
            gate: Gate::new(max_connections, idle_timeout),
            metrics: metrics.port("client", &OUTCOMES),
        }
    }

    /// The links to tlds1 and tlds2.
    #[cfg(test)]
    pub(crate) fn links(&self) -> &[TldsLinks; 2] {
        &self.links
    }

    /// Serves clients on `listener` until `stopper` says stop, then lets
    /// open connections finish what they have read.
    pub fn serve(self: Arc<Self>, listener: TcpListener, stopper: &Stopper) {
        let port = Port {
            role: "client port".into(),
            allow: Allow::Anyone,
            says_why: true,
            metrics: self.metrics.clone(),
        };
        let gate = Arc::clone(&self.gate);
        let server = Arc::clone(&self);
        server::serve(&port, listener, &gate, stopper, move |connection| {
            server.serve_client(connection)
        });
        server::wait_out_grace(&[&gate]);
        for links in &self.links {
            links.stop();
        }
    }

    /// Serves one client connection until it closes, idles out or misbehaves.
    pub fn serve_client(&self, connection: Connection) -> Served {
        let peer = connection.peer();
        connection.serve(ClientRequests {
            server: self,
            burst: ClientBurst {
                peer,
                ..ClientBurst::default()
            },
            tally: Tally::default(),
        })
    }

    /// Asks both TLDS servers about every valid request in `burst`, then
    /// appends one reply per request to `out` and notes its outcome.
    fn answer(&self, burst: &ClientBurst, out: &mut Vec<u8>, tally: &mut Tally) {
        let [mut first, mut second] = self.ask_both(burst);
        let tracing = log::log_enabled!(log::Level::Trace);
        let mut challenges = burst.challenges.split(|&byte| byte == b'\n');
        for item in &burst.items {
            let digest = match item {
                Item::Invalid(err) => {
                    wire::write_error(out, err);
                    tally.note(MALFORMED);
                    continue;
                }
                Item::Ask(digest) => digest,
            };
            let each = "each TLDS gives one answer per valid request of the burst";
            let answers = [first.next().expect(each), second.next().expect(each)];
            let verdict = self.reply(digest, &answers, out);
            tally.note(match verdict {
                Verdict::Matched(index, _) => index,
                Verdict::NoMatch => NO_MATCH,
                Verdict::Failed(_) => ERROR,
            });
            if tracing {
                let challenge = challenges.next();
                log::trace!(
                    "client port: {} challenge {}: {verdict}",
                    burst.peer,
                    String::from_utf8_lossy(challenge.unwrap_or_default()),
                );
            }
        }
    }

    /// Both TLDS servers' answers to the burst's challenges, in order.
    fn ask_both(&self, burst: &ClientBurst) -> [std::vec::IntoIter<Answer>; 2] {
        if burst.asks == 0 {
            return [Vec::new().into_iter(), Vec::new().into_iter()];
        }
        let [one, two] = self.links.each_ref().map(TldsLinks::pick);
        // Both writes go out before either wait, so the TLDS servers sign
        // at the same time.
        let started = Instant::now();
        let [sent_one, sent_two] =
            [one, two].map(|link| link.submit(&burst.challenges, burst.asks));
        [(one, sent_one), (two, sent_two)].map(|(link, sent)| {
            let answers = link.await_answers(sent, &burst.challenges, burst.asks);
            link.metrics().answered(started.elapsed());
            answers.into_iter()
        })
    }

    /// The reply to one request, given both TLDS servers' answers, and
    /// what it was, for the log.
    fn reply(&self, digest: &Digest, answers: &[Answer; 2], out: &mut Vec<u8>) -> Verdict<'_> {
        let matched = self
            .links
            .iter()
            .zip(answers)
            .enumerate()
            .find(|(_, (_, answer))| matches!(answer, Ok(theirs) if theirs.matches(digest)));
        if let Some((index, (links, _))) = matched {
            out.extend_from_slice(links.endpoint().route_reply());
            return Verdict::Matched(index, links.endpoint().name);
        }
        let failures: Vec<String> = answers
            .iter()
            .filter_map(|answer| answer.as_ref().err().map(ToString::to_string))
            .collect();
        if failures.is_empty() {
            AuthReply::NoMatch.write_to(out);
            Verdict::NoMatch
        } else {
            let reason = failures.join("; ");
            AuthReply::Error(&reason).write_to(out);
            Verdict::Failed(reason)
        }
    }
}

/// What the AS told a client about one request, in its log at `-vv`.
enum Verdict<'a> {
    /// The TLDS at this index of [`Config::tlds`], and its name.
    Matched(usize, &'a str),
    NoMatch,
    Failed(String),
}

impl std::fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Matched(_, name) => write!(f, "{name} matched"),
            Verdict::NoMatch => f.write_str("no match"),
            Verdict::Failed(reason) => write!(f, "error: {reason}"),
        }
    }
}

/// One client connection's [`Respond`]: requests are queued until the burst
/// is complete, then answered together.
struct ClientRequests<'s> {
    server: &'s AuthServer,
    burst: ClientBurst,
    /// The burst's outcomes, for the client port's counters.
    tally: Tally,
}

impl Respond for ClientRequests<'_> {
    fn respond(&mut self, line: &[u8], _out: &mut Vec<u8>) {
        self.tally.begin();
        self.burst.add(line);
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        if !self.burst.items.is_empty() {
            self.server.answer(&self.burst, out, &mut self.tally);
            self.burst.clear();
            self.tally.record_into(&self.server.metrics);
        }
    }

    fn queued(&self) -> usize {
        self.burst.items.len()
    }
}

/// Serves clients on `listener` with `config` until `stopper` says stop,
/// and the metrics on `metrics_listener`, if given.
pub fn run(
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    stopper: &Stopper,
) -> io::Result<()> {
    let mut metrics = ServerMetrics::new();
    let server = Arc::new(AuthServer::new(config, &mut metrics));
    let metrics = Arc::new(metrics);
    let metrics_gate = Gate::new(http::MAX_CONNECTIONS, http::IDLE_TIMEOUT);
    thread::scope(|scope| {
        if let Some(metrics_listener) = metrics_listener {
            let metrics_gate = &metrics_gate;
            thread::Builder::new()
                .name("as_server metrics".to_owned())
                .spawn_scoped(scope, move || {
                    server::serve_metrics(metrics_listener, metrics, metrics_gate, stopper)
                })?;
        }
        server.serve(listener, stopper);
        Ok::<(), io::Error>(())
    })?;
    server::wait_out_grace(&[&metrics_gate]);
    Ok(())
}

/// What one burst of client requests asks for.
#[derive(Default)]
struct ClientBurst {
    /// Who asks, for the log.
    peer: PeerAddr,
    items: Vec<Item>,
    /// The valid requests' challenges, one per line, ready to forward.
    challenges: Vec<u8>,
    asks: usize,
}

enum Item {
    Invalid(WireError),
    Ask(Digest),
}

impl ClientBurst {
    fn clear(&mut self) {
        self.items.clear();
        self.challenges.clear();
        self.asks = 0;
    }

    fn add(&mut self, line: &[u8]) {
        match AuthRequest::parse(line) {
            Ok(request) => {
                ChallengeRequest(request.challenge).write_to(&mut self.challenges);
                self.items.push(Item::Ask(request.digest));
                self.asks += 1;
            }
            Err(err) => self.items.push(Item::Invalid(err)),
        }
    }
}

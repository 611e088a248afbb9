//! The authentication server role (`as_server`): it holds no records and no
//! keys. For each `challenge digest` from a client it asks both TLDS servers
//! to sign the challenge, compares their digests with the client's in
//! constant time, and tells the client which TLDS to ask.
//!
//! Each client connection gets its own connection to each TLDS, so replies
//! stay in order without any sharing between clients. Requests are handled in
//! bursts: every request already buffered from the client (up to
//! [`MAX_BURST`]) is forwarded to both TLDS servers in one write each, before
//! reading either's answers, so neither TLDS waits on the other and a
//! pipelining client pays one round trip per burst, not per request.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use crate::cli;
use crate::connection::{self, FrameError, LineReader};
use crate::digest::Digest;
use crate::server::{self, Allow, FLUSH_AT, Gate};
use crate::wire::{self, AuthReply, AuthRequest, ChallengeRequest, DigestReply, WireError};

/// Most client requests forwarded to the TLDS servers at once. Bounded so
/// the digests they send back (33 bytes each, 33 KiB in all) always fit in
/// socket buffers while we are still writing: no deadlock with a TLDS that
/// answers as it reads.
pub const MAX_BURST: usize = 1024;

/// The authentication server: tells each client which TLDS its key belongs to.
///
/// For each client request `challenge digest`, sends the challenge to both
/// TLDS servers at once, compares each one's HMAC-MD5 digest with the
/// client's in constant time, and replies with the matching server's
/// `--tldsN-host --tldsN-client-port`, or `No Match Found`. It holds no keys
/// and no records, and it may start before the TLDS servers: it connects
/// (again) whenever a request needs them.
#[derive(Debug, Parser)]
#[command(
    name = "as_server",
    version,
    after_help = "Example, with the TLDS servers on two other machines:\n  \
                  as_server --tlds1-host 10.0.0.2 --tlds2-host 10.0.0.3"
)]
pub struct Args {
    /// Address to listen on for clients (0.0.0.0: every IPv4 interface)
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub bind: String,

    /// Port clients connect to (0: any free port)
    #[arg(long, value_name = "PORT", default_value_t = 5300)]
    pub port: u16,

    /// Host of tlds1; also what clients are told to connect to
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    pub tlds1_host: String,

    /// tlds1's AS port, where challenges are sent
    #[arg(long, value_name = "PORT", default_value_t = 5311)]
    pub tlds1_as_port: u16,

    /// tlds1's client port, which clients are told to use
    #[arg(long, value_name = "PORT", default_value_t = 5312)]
    pub tlds1_client_port: u16,

    /// Host of tlds2; also what clients are told to connect to
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    pub tlds2_host: String,

    /// tlds2's AS port, where challenges are sent
    #[arg(long, value_name = "PORT", default_value_t = 5321)]
    pub tlds2_as_port: u16,

    /// tlds2's client port, which clients are told to use
    #[arg(long, value_name = "PORT", default_value_t = 5322)]
    pub tlds2_client_port: u16,

    /// Seconds to wait for a TLDS to accept a connection or to answer
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = cli::seconds)]
    pub timeout: Duration,

    /// Most client connections served at once; more hear `Error: server busy`
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,

    /// Close a client connection that sends nothing for this many seconds
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = cli::seconds)]
    pub idle_timeout: Duration,
}

/// One TLDS as the AS knows it.
#[derive(Debug, Clone)]
pub struct TldsPeer {
    /// `tlds1` or `tlds2`, for error messages.
    pub name: &'static str,
    pub host: String,
    pub as_port: u16,
    pub client_port: u16,
    /// `host:as_port`, resolved at start.
    pub as_addrs: Vec<SocketAddr>,
    /// The reply that sends a client here, formatted once.
    reply: Vec<u8>,
}

impl TldsPeer {
    pub fn new(
        name: &'static str,
        host: String,
        as_port: u16,
        client_port: u16,
        as_addrs: Vec<SocketAddr>,
    ) -> TldsPeer {
        let mut reply = Vec::new();
        AuthReply::Tlds {
            host: &host,
            port: client_port,
        }
        .write_to(&mut reply);
        TldsPeer {
            name,
            host,
            as_port,
            client_port,
            as_addrs,
            reply,
        }
    }

    fn describe(&self) -> String {
        format!("{} at {}:{}", self.name, self.host, self.as_port)
    }
}

/// The AS's configuration, shared by every client connection.
#[derive(Debug)]
pub struct AuthServer {
    pub peers: [TldsPeer; 2],
    pub timeout: Duration,
}

impl AuthServer {
    /// Serves one client connection until it closes, idles out or misbehaves.
    pub fn serve_client(&self, stream: TcpStream) {
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut reader = LineReader::new(read_half);
        let mut writer = stream;
        let mut links = self
            .peers
            .each_ref()
            .map(|peer| Link::new(peer, self.timeout));
        let mut burst = Burst::default();
        let mut out = Vec::with_capacity(FLUSH_AT);
        let mut closing = false;
        while !closing {
            burst.clear();
            loop {
                match reader.read_line() {
                    Ok(Some(line)) => burst.add(line),
                    Ok(None) | Err(FrameError::Io(_)) => closing = true,
                    Err(FrameError::TooLong) => {
                        burst.items.push(Item::Invalid(WireError::LineTooLong));
                        closing = true;
                    }
                }
                if closing || burst.items.len() >= MAX_BURST || !reader.has_buffered_line() {
                    break;
                }
            }
            self.answer(&burst, &mut links, &mut out);
            if !out.is_empty() && (closing || out.len() >= FLUSH_AT || !reader.has_buffered_line())
            {
                if writer.write_all(&out).is_err() {
                    return;
                }
                out.clear();
            }
        }
        let _ = writer.shutdown(std::net::Shutdown::Both);
    }

    /// Asks both TLDS servers about every valid request in `burst`, then
    /// appends one reply per request to `out`.
    fn answer(&self, burst: &Burst, links: &mut [Link<'_>; 2], out: &mut Vec<u8>) {
        if burst.asks > 0 {
            for link in links.iter_mut() {
                link.send(&burst.challenges);
            }
            for link in links.iter_mut() {
                link.receive(burst.asks, &burst.challenges);
            }
        }
        let mut ask = 0;
        for item in &burst.items {
            let digest = match item {
                Item::Invalid(err) => {
                    wire::write_error(out, err);
                    continue;
                }
                Item::Ask(digest) => digest,
            };
            let answers = links.each_ref().map(|link| link.answers.get(ask));
            ask += 1;
            let matched = links
                .iter()
                .zip(answers)
                .find(|(_, answer)| matches!(answer, Some(Ok(theirs)) if theirs.matches(digest)));
            if let Some((link, _)) = matched {
                out.extend_from_slice(&link.peer.reply);
                continue;
            }
            let failures: Vec<&str> = answers
                .iter()
                .filter_map(|answer| match answer {
                    Some(Err(reason)) => Some(&**reason),
                    _ => None,
                })
                .collect();
            if failures.is_empty() {
                AuthReply::NoMatch.write_to(out);
            } else {
                AuthReply::Error(&failures.join("; ")).write_to(out);
            }
        }
    }
}

/// What one burst of client requests asks for.
#[derive(Default)]
struct Burst {
    items: Vec<Item>,
    /// The valid requests' challenges, one per line, ready to forward.
    challenges: Vec<u8>,
    asks: usize,
}

enum Item {
    Invalid(WireError),
    Ask(Digest),
}

impl Burst {
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

/// One client connection's connection to one TLDS, opened when first needed
/// and again after any failure. After a failure its stream state is unknown
/// (a late answer could pair with the wrong challenge), so it is dropped.
struct Link<'a> {
    peer: &'a TldsPeer,
    timeout: Duration,
    stream: Option<(LineReader<TcpStream>, TcpStream)>,
    /// Why this burst cannot be answered by this TLDS, once something failed.
    failure: Option<Rc<str>>,
    /// Whether this burst went out on a connection an earlier burst used.
    reused: bool,
    answers: Vec<Result<Digest, Rc<str>>>,
}

impl<'a> Link<'a> {
    fn new(peer: &'a TldsPeer, timeout: Duration) -> Self {
        Link {
            peer,
            timeout,
            stream: None,
            failure: None,
            reused: false,
            answers: Vec::new(),
        }
    }

    fn fail(&mut self, reason: String) {
        self.stream = None;
        self.failure = Some(reason.into());
    }

    fn unreachable(&mut self, err: impl std::fmt::Display) {
        self.fail(format!("{} unreachable: {err}", self.peer.describe()));
    }

    fn send(&mut self, challenges: &[u8]) {
        self.failure = None;
        self.reused = self.stream.is_some();
        loop {
            if self.stream.is_none() {
                let connected = connection::connect(&self.peer.as_addrs, self.timeout)
                    .and_then(|stream| Ok((LineReader::new(stream.try_clone()?), stream)));
                match connected {
                    Ok(halves) => self.stream = Some(halves),
                    Err(err) => {
                        return self.unreachable(err);
                    }
                }
            }
            let Some((_, writer)) = &mut self.stream else {
                return;
            };
            match writer.write_all(challenges) {
                Ok(()) => return,
                // The TLDS closed a connection we kept: open a new one, once.
                Err(_) if self.reused => {
                    self.stream = None;
                    self.reused = false;
                }
                Err(err) => {
                    return self.unreachable(err);
                }
            }
        }
    }

    /// Reads `count` answers to what [`Link::send`] sent. A reused connection
    /// that turns out closed before answering anything (the TLDS's idle
    /// timeout, or a restart) is retried once on a new connection: signing a
    /// challenge twice is harmless.
    fn receive(&mut self, count: usize, challenges: &[u8]) {
        let closed_early = self.read_answers(count);
        if closed_early && self.reused {
            self.stream = None;
            self.send(challenges);
            self.read_answers(count);
        }
    }

    /// Returns true when the connection failed, other than by timing out,
    /// before a single answer arrived.
    fn read_answers(&mut self, count: usize) -> bool {
        self.answers.clear();
        let mut closed_early = false;
        while self.answers.len() < count {
            if let Some(reason) = &self.failure {
                self.answers.push(Err(Rc::clone(reason)));
                continue;
            }
            let Some((reader, _)) = &mut self.stream else {
                self.fail(format!("{} unreachable", self.peer.describe()));
                continue;
            };
            let nothing_yet = self.answers.is_empty();
            match reader.read_line() {
                Ok(Some(line)) => match DigestReply::parse(line) {
                    Ok(DigestReply::Digest(digest)) => self.answers.push(Ok(digest)),
                    Ok(DigestReply::Error(reason)) => {
                        let reason = format!("{} answered: {reason}", self.peer.describe());
                        self.answers.push(Err(reason.into()));
                    }
                    Err(err) => {
                        self.fail(format!("bad reply from {}: {err}", self.peer.describe()))
                    }
                },
                Ok(None) => {
                    closed_early = nothing_yet;
                    self.fail(format!("{} closed the connection", self.peer.describe()));
                }
                Err(err) => {
                    closed_early = nothing_yet && !err.is_timeout();
                    self.unreachable(err);
                }
            }
        }
        closed_early
    }
}

/// Serves clients on `listener` until the process ends.
pub fn run(server: Arc<AuthServer>, listener: TcpListener, gate: Arc<Gate>) {
    server::serve("as_server", listener, gate, Allow::Anyone, move |stream| {
        server.serve_client(stream)
    });
}

fn start() -> Result<ExitCode> {
    let args = Args::parse();
    let peer = |name, host: &str, as_port, client_port, flags: &str| -> Result<TldsPeer> {
        let as_addrs = cli::resolve(host, as_port, flags)?;
        Ok(TldsPeer::new(
            name,
            host.to_owned(),
            as_port,
            client_port,
            as_addrs,
        ))
    };
    let peers = [
        peer(
            "tlds1",
            &args.tlds1_host,
            args.tlds1_as_port,
            args.tlds1_client_port,
            "--tlds1-host/--tlds1-as-port",
        )?,
        peer(
            "tlds2",
            &args.tlds2_host,
            args.tlds2_as_port,
            args.tlds2_client_port,
            "--tlds2-host/--tlds2-as-port",
        )?,
    ];
    let listener = cli::bind(&args.bind, args.port, "--bind/--port")?;
    eprintln!(
        "as_server: listening on {}; {} (clients sent to port {}), {} (clients sent to port {})",
        cli::local(&listener),
        peers[0].describe(),
        peers[0].client_port,
        peers[1].describe(),
        peers[1].client_port,
    );
    let server = Arc::new(AuthServer {
        peers,
        timeout: args.timeout,
    });
    run(
        server,
        listener,
        Gate::new(args.max_connections, args.idle_timeout),
    );
    Ok(ExitCode::SUCCESS)
}

/// The whole `as_server` program.
pub fn main() -> ExitCode {
    cli::report("as_server", start())
}

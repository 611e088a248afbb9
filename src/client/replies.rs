//! What each reply means for its query, shared by both client paths: the
//! AS's reply becomes a route or a finished line, a TLDS's reply a result
//! line, and a broken connection a [`HopError`] that every query still
//! waiting on it reports in its own line.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use super::{Kind, Settings};
use crate::connection::{self, Connection, FrameError, LineClock};
use crate::digest::Signer;
use crate::wire::{self, AuthReply, HostReply, ProofGreeting, ProofRequest, WireError};

/// A server the client talks to (a hop of its queries), by the address it
/// was given.
#[derive(Debug, Clone)]
pub enum Hop {
    As(String),
    Tlds(String),
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hop::As(name) => write!(f, "the AS at {name}"),
            Hop::Tlds(name) => write!(f, "the TLDS at {name}"),
        }
    }
}

/// Why a server's connection can no longer answer queries.
#[derive(Debug)]
pub struct HopError {
    pub hop: Hop,
    pub kind: HopErrorKind,
}

#[derive(Debug)]
pub enum HopErrorKind {
    Connect(io::Error),
    /// Reading or writing failed, or timed out.
    Io(FrameError),
    Closed,
    BadReply(WireError),
    /// The connection was never opened.
    NotConnected,
    /// A TLDS that requires a proof of key, asked without one.
    ProofRequired,
    /// A TLDS sent no proof greeting where the client expected one.
    NoGreeting(FrameError),
    Thread(io::Error),
}

impl HopError {
    pub fn new(hop: Hop, kind: HopErrorKind) -> Arc<HopError> {
        Arc::new(HopError { hop, kind })
    }

    /// The peer went silent or away, rather than saying something wrong.
    pub fn is_silence(&self) -> bool {
        matches!(self.kind, HopErrorKind::Io(_) | HopErrorKind::Closed)
    }

    /// The server closed or reset the connection rather than answer: what
    /// a connection it closed while idle (its idle timeout, or room made
    /// for a newcomer) looks like, so a request that met it is worth
    /// sending once more on a new connection.
    pub fn is_close(&self) -> bool {
        match &self.kind {
            HopErrorKind::Closed => true,
            HopErrorKind::Io(FrameError::Io(err)) => matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

/// Whether the AS has answered anything yet: an AS that fails before its
/// first answer is hung, or no AS, and the run cannot go on.
#[derive(Debug, Default)]
pub(super) struct AsHeard {
    answered: bool,
}

impl AsHeard {
    pub fn answered(&mut self) {
        self.answered = true;
    }

    /// Whether the AS has answered anything on this run's connection.
    pub fn ever(&self) -> bool {
        self.answered
    }

    /// `error` as the end of the whole run, if the AS never answered.
    pub fn fatal(&self, error: &Arc<HopError>) -> Option<Arc<HopError>> {
        (!self.answered && error.is_silence()).then(|| Arc::clone(error))
    }
}

impl fmt::Display for HopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = &self.hop;
        match &self.kind {
            HopErrorKind::Connect(err) => write!(f, "cannot connect to {peer}: {err}"),
            HopErrorKind::Io(err) => write!(f, "{peer}: {err}"),
            HopErrorKind::Closed => write!(f, "{peer} closed the connection"),
            HopErrorKind::BadReply(err) => write!(f, "bad reply from {peer}: {err}"),
            HopErrorKind::NotConnected => write!(f, "no connection to {peer}"),
            HopErrorKind::ProofRequired => {
                write!(f, "{peer} requires a proof of key (use --prove)")
            }
            HopErrorKind::NoGreeting(err) => {
                write!(
                    f,
                    "{peer} sent no proof greeting (does it --require-proof?): {err}"
                )
            }
            HopErrorKind::Thread(err) => write!(f, "cannot start a thread for {peer}: {err}"),
        }
    }
}

impl std::error::Error for HopError {}

/// The line for a query that failed: `hostname - Error:<reason>`.
pub(super) fn failed_line(hostname: &str, reason: &dyn fmt::Display) -> String {
    format!("{hostname} - Error:{reason}")
}

/// The line for a malformed query line.
pub(super) fn malformed_line(line: usize, reason: &WireError) -> String {
    format!("Error: line {line}: {reason}")
}

/// A connection to a server, each reply limited to `timeout` from when it
/// is awaited, however its bytes trickle in.
pub(super) fn server_connection(stream: TcpStream, timeout: Duration) -> Connection {
    let mut connection = Connection::new(stream);
    connection
        .reader()
        .limit_each_line(timeout, LineClock::FromWait);
    connection
}

/// The connection to the AS, or why there is none to use.
pub(super) fn as_connection(
    as_stream: Option<TcpStream>,
    settings: &Settings,
) -> Result<Connection, Arc<HopError>> {
    let connection = |stream| server_connection(stream, settings.timeout);
    as_stream.map(connection).ok_or_else(|| {
        HopError::new(
            Hop::As(settings.as_name.clone()),
            HopErrorKind::NotConnected,
        )
    })
}

/// What the AS's reply means for one query.
pub(super) enum Route<'r> {
    /// Ask this TLDS.
    Tlds { host: &'r str, port: u16 },
    /// The query is finished here: no match, or the AS's own error.
    Answered { line: String, kind: Kind },
}

/// What one read from the AS means for the query for `hostname`. An `Err`
/// is why the AS connection cannot be used any more.
pub(super) fn route_of<'r>(
    read: Result<Option<&'r [u8]>, FrameError>,
    hostname: &str,
    as_name: &str,
) -> Result<Route<'r>, Arc<HopError>> {
    let broken = |kind| HopError::new(Hop::As(as_name.to_owned()), kind);
    match read {
        Ok(Some(line)) => match AuthReply::parse(line) {
            Ok(AuthReply::Tlds { host, port }) => Ok(Route::Tlds { host, port }),
            Ok(AuthReply::NoMatch) => Ok(Route::Answered {
                line: format!("{hostname} - Error:No Match Found"),
                kind: Kind::NoMatch,
            }),
            Ok(AuthReply::Error(reason)) => Ok(Route::Answered {
                line: failed_line(hostname, &reason),
                kind: Kind::Failed,
            }),
            Err(err) => Err(broken(HopErrorKind::BadReply(err))),
        },
        Ok(None) => Err(broken(HopErrorKind::Closed)),
        Err(err) => Err(broken(HopErrorKind::Io(err))),
    }
}

/// What one read from the TLDS at `name` means for the query for
/// `hostname`: its result line and its kind. An `Err` is why the
/// connection cannot be used any more.
pub(super) fn answer_of<'a>(
    read: Result<Option<&'a [u8]>, FrameError>,
    hostname: &str,
    name: &str,
) -> Result<(Cow<'a, str>, Kind), Arc<HopError>> {
    let broken = |kind| HopError::new(Hop::Tlds(name.to_owned()), kind);
    match read {
        // A greeting where an answer belongs: the TLDS wants a proof first.
        Ok(Some(line)) if ProofGreeting::is_greeting(line) => {
            Err(broken(HopErrorKind::ProofRequired))
        }
        Ok(Some(line)) => {
            match wire::text(line).and_then(|text| Ok((HostReply::parse_text(text)?, text))) {
                // A record or a miss is passed on as received.
                Ok((HostReply::Found(_), text)) => Ok((Cow::Borrowed(text), Kind::Found)),
                Ok((HostReply::NotFound(_), text)) => Ok((Cow::Borrowed(text), Kind::NotFound)),
                Ok((HostReply::Error(reason), _)) => {
                    Ok((Cow::Owned(failed_line(hostname, &reason)), Kind::Failed))
                }
                Err(err) => Err(broken(HopErrorKind::BadReply(err))),
            }
        }
        Ok(None) => Err(broken(HopErrorKind::Closed)),
        Err(err) => Err(broken(HopErrorKind::Io(err))),
    }
}

/// With `--prove`: reads the TLDS's greeting on a new `connection` and
/// queues the proof of `key` for its nonce, to go out with the first
/// hostname (no extra round trip).
pub(super) fn prove(
    connection: &mut Connection,
    key: &str,
    name: &str,
) -> Result<(), Arc<HopError>> {
    let broken = |kind| HopError::new(Hop::Tlds(name.to_owned()), kind);
    let nonce = match connection.reader().read_line() {
        Ok(Some(line)) => match ProofGreeting::parse(line) {
            Ok(ProofGreeting(nonce)) => nonce.to_owned(),
            Err(err) => return Err(broken(HopErrorKind::BadReply(err))),
        },
        Ok(None) => return Err(broken(HopErrorKind::Closed)),
        Err(err) => return Err(broken(HopErrorKind::NoGreeting(err))),
    };
    let proof = Signer::new(key.as_bytes()).sign(&wire::proof_message(&nonce));
    ProofRequest(proof).write_to(connection.writer().queue());
    Ok(())
}

/// Opens the client's connections to TLDS servers, and remembers those
/// that could not be connected to in this run, and why: they are not tried
/// again, since each try could cost `--timeout`.
#[derive(Default)]
pub(super) struct TldsConnector {
    /// Each address that failed, and how.
    unreachable: Vec<(String, u16, Arc<HopError>)>,
}

impl TldsConnector {
    /// A connection to the TLDS at `host:port`, ready for hostnames: each
    /// reply limited to the timeout, and `key` proved first if the client
    /// proves its keys.
    pub fn open_tlds(
        &mut self,
        (host, port): (&str, u16),
        key: &str,
        settings: &Settings,
    ) -> Result<Connection, Arc<HopError>> {
        let stream = self.connect(host, port, settings.timeout)?;
        let mut connection = server_connection(stream, settings.timeout);
        if settings.prove {
            prove(&mut connection, key, &format!("{host}:{port}"))?;
        }
        Ok(connection)
    }

    /// Connects to the TLDS at `host:port`, unless it already failed once.
    pub fn connect(
        &mut self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<TcpStream, Arc<HopError>> {
        if let Some((_, _, error)) = self
            .unreachable
            .iter()
            .find(|(h, p, _)| h == host && *p == port)
        {
            return Err(Arc::clone(error));
        }
        let connected = (host, port)
            .to_socket_addrs()
            .map(|addrs| addrs.collect::<Vec<SocketAddr>>())
            .and_then(|addrs| connection::connect(&addrs, timeout));
        if connected.is_ok() {
            log::debug!("connected to the TLDS at {host}:{port}");
        }
        connected.map_err(|err| {
            let error = HopError::new(
                Hop::Tlds(format!("{host}:{port}")),
                HopErrorKind::Connect(err),
            );
            self.unreachable
                .push((host.to_owned(), port, Arc::clone(&error)));
            error
        })
    }
}

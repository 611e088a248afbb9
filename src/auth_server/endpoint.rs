//! One TLDS as the AS knows it, and why it gave no digest: what the AS's
//! links (`link.rs`) and the TLDS's health (`health.rs`) both speak of.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::connection::FrameError;
use crate::digest::Digest;
use crate::wire::{AuthReply, WireError};

/// One TLDS as the AS knows it.
#[derive(Debug, Clone)]
pub struct TldsEndpoint {
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

impl TldsEndpoint {
    pub fn new(
        name: &'static str,
        host: String,
        as_port: u16,
        client_port: u16,
        as_addrs: Vec<SocketAddr>,
    ) -> TldsEndpoint {
        let mut reply = Vec::new();
        AuthReply::Tlds {
            host: &host,
            port: client_port,
        }
        .write_to(&mut reply);
        TldsEndpoint {
            name,
            host,
            as_port,
            client_port,
            as_addrs,
            reply,
        }
    }

    /// `tlds1 at host:port`, as errors and the start-up line name it.
    pub fn describe(&self) -> String {
        format!("{} at {}:{}", self.name, self.host, self.as_port)
    }

    /// The `<host> <port>` line that sends a client to this TLDS.
    pub fn route_reply(&self) -> &[u8] {
        &self.reply
    }
}

/// Why a TLDS gave no digest for a challenge.
#[derive(Debug)]
pub struct LinkError {
    /// The TLDS, as [`TldsEndpoint::describe`] names it.
    pub tlds: Arc<str>,
    pub kind: LinkErrorKind,
}

#[derive(Debug)]
pub enum LinkErrorKind {
    Connect(io::Error),
    Write(io::Error),
    Read(FrameError),
    Closed,
    BadReply(WireError),
    /// A line arrived when no challenge was waiting for one.
    Unasked,
    /// The TLDS answered this challenge with `Error: <reason>`.
    Refused(String),
    /// The TLDS is marked down, for this earlier failure.
    Down(Arc<LinkError>),
}

/// How a failure changes what the AS does with a TLDS, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downed {
    /// It refused or reset: down, but tried again by the next burst.
    Refusing,
    /// It did not answer in time, or answered nonsense: skipped until a
    /// probe is answered.
    Skipped,
}

impl LinkErrorKind {
    /// Whether the failure puts the TLDS down, and how: a refused or reset
    /// connect is tried again by the next burst; a timeout (connecting or
    /// answering) or nonsense is skipped until a probe is answered. A close
    /// is neither: it is how an idle connection ends, and a reconnection
    /// tells more.
    pub fn downed(&self) -> Option<Downed> {
        match self {
            LinkErrorKind::Connect(err) if err.kind() == io::ErrorKind::TimedOut => {
                Some(Downed::Skipped)
            }
            LinkErrorKind::Connect(_) => Some(Downed::Refusing),
            LinkErrorKind::Read(err) if err.is_timeout() => Some(Downed::Skipped),
            LinkErrorKind::BadReply(_) | LinkErrorKind::Unasked => Some(Downed::Skipped),
            _ => None,
        }
    }

    /// The connection ended, closed or reset, rather than timing out: what
    /// the end of a connection the TLDS closed while idle looks like, so a
    /// burst it had not answered is worth sending once more.
    pub fn is_close(&self) -> bool {
        match self {
            LinkErrorKind::Closed => true,
            LinkErrorKind::Read(err @ FrameError::Io(_)) => !err.is_timeout(),
            _ => false,
        }
    }
}

/// What happened, without naming the TLDS (`LinkError` names it).
impl fmt::Display for LinkErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkErrorKind::Connect(err) | LinkErrorKind::Write(err) => {
                write!(f, "unreachable: {err}")
            }
            LinkErrorKind::Read(err) => write!(f, "unreachable: {err}"),
            LinkErrorKind::Closed => f.write_str("closed the connection"),
            LinkErrorKind::BadReply(err) => write!(f, "sent a bad reply: {err}"),
            LinkErrorKind::Unasked => f.write_str("sent an answer nobody asked for"),
            LinkErrorKind::Refused(reason) => write!(f, "answered: {reason}"),
            LinkErrorKind::Down(why) => write!(f, "is down: {}", why.kind),
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.tlds, self.kind)
    }
}

impl std::error::Error for LinkError {}

/// A TLDS's answer to one challenge.
pub type Answer = Result<Digest, Arc<LinkError>>;

//! The client with `--window 1`: each query is resolved start to finish on
//! the calling thread before the next is sent. With one query in flight a
//! pipeline has nothing to overlap, and every hand-off between its threads
//! would only add a wake-up to each query's round trips.

use std::io::BufRead;
use std::net::TcpStream;
use std::sync::Arc;

use super::collector::{Collector, ResultLines, Results};
use super::replies::{
    AsHeard, HopError, Route, TldsConnector, answer_of, as_connection, failed_line, malformed_line,
    route_of, server_connection,
};
use super::signing::Requests;
use super::{ClientError, Kind, QueryLines, Settings};
use crate::connection::{self, Connection};
use crate::query::{Job, Query};
use crate::wire::HostRequest;

/// An open connection to a TLDS and the address it was opened for.
struct TldsConnection {
    host: String,
    port: u16,
    /// `host:port`, for error lines.
    name: String,
    connection: Connection,
    /// Whether it has answered a query: a connection that has, then closes
    /// unasked, was closed while idle.
    answered: bool,
}

/// Where the AS sends a query.
enum AsAnswer {
    Tlds(String, u16),
    /// The query is finished: no match, or the AS's own error.
    Answered(String, Kind),
}

struct OneAtATime<'s> {
    settings: &'s Settings,
    /// The AS connection, or why it can no longer be used.
    as_connection: Result<Connection, Arc<HopError>>,
    /// Where the AS is, to connect again when it closed an idle connection
    /// (a closed socket may no longer know its peer).
    as_addr: Option<std::net::SocketAddr>,
    tlds: Vec<TldsConnection>,
    connector: TldsConnector,
    requests: Requests,
    as_heard: AsHeard,
    /// Set when the AS failed before answering anything.
    fatal: Option<Arc<HopError>>,
}

/// Resolves every query in order, one at a time.
pub(super) fn resolve<R: BufRead>(
    mut queries: QueryLines<R>,
    as_stream: Option<TcpStream>,
    settings: &Settings,
    collector: &mut Collector<'_, impl Results>,
) -> Result<(), ClientError> {
    let as_addr = as_stream
        .as_ref()
        .and_then(|stream| stream.peer_addr().ok());
    let mut client = OneAtATime {
        settings,
        as_connection: as_connection(as_stream, settings),
        as_addr,
        tlds: Vec::new(),
        connector: TldsConnector::default(),
        requests: Requests::default(),
        as_heard: AsHeard::default(),
        fatal: None,
    };
    let mut index = 0;
    let mut finished = ResultLines::default();
    while let Some(job) = queries.next_job().map_err(ClientError::Input)? {
        let (line, kind) = match job {
            Job::Ask(query) => client.ask(&query),
            Job::Malformed { line, reason } => (malformed_line(line, &reason), Kind::Failed),
        };
        if let Some(error) = client.fatal.take() {
            return Err(ClientError::AsNeverAnswered(error));
        }
        finished.push(index, &line, kind);
        collector.store(&finished);
        finished.clear();
        collector.idle();
        index += 1;
    }
    Ok(())
}

impl OneAtATime<'_> {
    /// One query's result line, and its kind.
    fn ask(&mut self, query: &Query<'_>) -> (String, Kind) {
        let hostname = query.hostname;
        // Only a connection that was open until this query is worth one
        // more try; once it has failed for good, queries fail at once.
        let was_open = self.as_connection.is_ok();
        let mut answer = self.ask_as(query);
        if let Err(error) = &answer
            && was_open
            && error.is_close()
            && self.as_heard.ever()
            && self.reconnect_as()
        {
            // The AS closed the connection while it sat idle (its idle
            // timeout, or room made for a newcomer): once more, anew.
            answer = self.ask_as(query);
        }
        let (host, port) = match answer {
            Ok(AsAnswer::Tlds(host, port)) => (host, port),
            Ok(AsAnswer::Answered(line, kind)) => return (line, kind),
            Err(error) => {
                self.fatal = self.as_heard.fatal(&error);
                if let Ok(connection) = &self.as_connection {
                    connection.close();
                }
                let line = failed_line(hostname, &error);
                self.as_connection = Err(error);
                return (line, Kind::Failed);
            }
        };
        match self.ask_tlds((&host, port), query) {
            Ok(answer) => answer,
            Err(error) => (failed_line(hostname, &error), Kind::Failed),
        }
    }

    /// Signs the query and asks the AS where to send it.
    fn ask_as(&mut self, query: &Query<'_>) -> Result<AsAnswer, Arc<HopError>> {
        let hostname = query.hostname;
        let as_connection = match &mut self.as_connection {
            Ok(connection) => connection,
            Err(error) => return Err(Arc::clone(error)),
        };
        let requests = &mut self.requests;
        requests.push(query);
        let read = as_connection.request(|out| requests.write_to(out));
        let route = route_of(read, hostname, &self.settings.as_name)?;
        self.as_heard.answered();
        Ok(match route {
            Route::Tlds { host, port } => {
                log::trace!("{hostname}: the AS sends it to {host}:{port}");
                AsAnswer::Tlds(host.to_owned(), port)
            }
            Route::Answered { line, kind } => AsAnswer::Answered(line, kind),
        })
    }

    /// Replaces the AS connection with a new one to the same address;
    /// `false` if that fails (the old one's error stands).
    fn reconnect_as(&mut self) -> bool {
        let Some(addr) = self.as_addr else {
            return false;
        };
        if let Ok(old) = &self.as_connection {
            old.close();
        }
        match connection::connect(&[addr], self.settings.timeout) {
            Ok(stream) => {
                log::debug!("reconnected to the AS at {addr}: it closed the idle connection");
                self.as_connection = Ok(server_connection(stream, self.settings.timeout));
                true
            }
            Err(_) => false,
        }
    }

    /// Asks the TLDS at `host:port` for the query's hostname. A connection
    /// that fails is dropped; the next query for that TLDS opens a new one.
    fn ask_tlds(
        &mut self,
        (host, port): (&str, u16),
        query: &Query<'_>,
    ) -> Result<(String, Kind), Arc<HopError>> {
        let mut answer = self.ask_tlds_once((host, port), query);
        if let Err((error, true)) = &answer
            && error.is_close()
        {
            // It closed the connection while it sat idle: once more, anew.
            answer = self.ask_tlds_once((host, port), query);
        }
        answer.map_err(|(error, _)| error)
    }

    /// As [`OneAtATime::ask_tlds`], without trying again; an error says
    /// whether the connection had answered before.
    fn ask_tlds_once(
        &mut self,
        (host, port): (&str, u16),
        query: &Query<'_>,
    ) -> Result<(String, Kind), (Arc<HopError>, bool)> {
        let hostname = query.hostname;
        let at = self
            .connection_to((host, port), query.key)
            .map_err(|error| (error, false))?;
        let tlds = self
            .tlds
            .get_mut(at)
            .expect("connection_to gives the place of an open connection");
        let read = tlds
            .connection
            .request(|out| HostRequest(hostname).write_to(out));
        let answer =
            answer_of(read, hostname, &tlds.name).map(|(line, kind)| (line.into_owned(), kind));
        match answer {
            Ok(answer) => {
                tlds.answered = true;
                Ok(answer)
            }
            Err(error) => {
                let broken = self.tlds.swap_remove(at);
                broken.connection.close();
                Err((error, broken.answered))
            }
        }
    }

    /// The place in `tlds` of an open connection to `host:port`, opening one
    /// if need be.
    fn connection_to(
        &mut self,
        (host, port): (&str, u16),
        key: &str,
    ) -> Result<usize, Arc<HopError>> {
        if let Some(at) = self
            .tlds
            .iter()
            .position(|tlds| tlds.host == host && tlds.port == port)
        {
            return Ok(at);
        }
        let name = format!("{host}:{port}");
        let connection = self.connector.open_tlds((host, port), key, self.settings)?;
        self.tlds.push(TldsConnection {
            host: host.to_owned(),
            port,
            name,
            connection,
            answered: false,
        });
        Ok(self.tlds.len() - 1)
    }
}

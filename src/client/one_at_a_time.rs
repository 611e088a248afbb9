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
    route_of,
};
use super::signing::Requests;
use super::{ClientError, Kind, QueryLines, Settings};
use crate::connection::Connection;
use crate::query::{Job, Query};
use crate::wire::HostRequest;

/// An open connection to a TLDS and the address it was opened for.
struct TldsConnection {
    host: String,
    port: u16,
    /// `host:port`, for error lines.
    name: String,
    connection: Connection,
}

struct OneAtATime<'s> {
    settings: &'s Settings,
    /// The AS connection, or why it can no longer be used.
    as_connection: Result<Connection, Arc<HopError>>,
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
    let mut client = OneAtATime {
        settings,
        as_connection: as_connection(as_stream, settings),
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
        let as_connection = match &mut self.as_connection {
            Ok(connection) => connection,
            Err(error) => return (failed_line(hostname, error), Kind::Failed),
        };
        let requests = &mut self.requests;
        requests.push(query);
        let read = as_connection.request(|out| requests.write_to(out));
        let route = route_of(read, hostname, &self.settings.as_name);
        if route.is_ok() {
            self.as_heard.answered();
        }
        let (host, port) = match route {
            Ok(Route::Tlds { host, port }) => {
                log::trace!("{hostname}: the AS sends it to {host}:{port}");
                (host.to_owned(), port)
            }
            Ok(Route::Answered { line, kind }) => return (line, kind),
            Err(error) => {
                self.fatal = self.as_heard.fatal(&error);
                as_connection.close();
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

    /// Asks the TLDS at `host:port` for the query's hostname. A connection
    /// that fails is dropped; the next query for that TLDS opens a new one.
    fn ask_tlds(
        &mut self,
        (host, port): (&str, u16),
        query: &Query<'_>,
    ) -> Result<(String, Kind), Arc<HopError>> {
        let hostname = query.hostname;
        let at = self.connection_to((host, port), query.key)?;
        let tlds = self
            .tlds
            .get_mut(at)
            .expect("connection_to gives the place of an open connection");
        let read = tlds
            .connection
            .request(|out| HostRequest(hostname).write_to(out));
        let answer =
            answer_of(read, hostname, &tlds.name).map(|(line, kind)| (line.into_owned(), kind));
        if answer.is_err() {
            let broken = self.tlds.swap_remove(at);
            broken.connection.close();
        }
        answer
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
        });
        Ok(self.tlds.len() - 1)
    }
}

//! The client with `--window 1`: each query is resolved start to finish on
//! the calling thread before the next is sent. With one query in flight a
//! pipeline has nothing to overlap, and every hand-off between its threads
//! would only add a wake-up to each query's round trips.

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use super::{
    Collector, Done, Job, Requests, Results, Route, Settings, Unreachable, failed_line,
    malformed_line, read_answer, read_route,
};
use crate::connection::LineReader;
use crate::query::Query;
use crate::wire::HostRequest;

/// One open connection, read and written by this thread alone.
struct Link {
    reader: LineReader<TcpStream>,
    writer: TcpStream,
}

impl Link {
    fn new(stream: TcpStream) -> Result<Link, String> {
        let read_half = stream.try_clone().map_err(|err| err.to_string())?;
        Ok(Link {
            reader: LineReader::new(read_half),
            writer: stream,
        })
    }

    /// Sends one request line; an `Err` is why the connection is unusable.
    /// `peer` names it in that reason, and is only called on failure.
    fn send(&mut self, line: &[u8], peer: impl FnOnce() -> String) -> Result<(), String> {
        self.writer.write_all(line).map_err(|err| {
            let _ = self.writer.shutdown(Shutdown::Both);
            format!("{}: {err}", peer())
        })
    }
}

/// A TLDS connection and the address it was opened for.
struct TldsLink {
    host: String,
    port: u16,
    /// `host:port`, for error lines.
    name: String,
    link: Link,
}

struct OneAtATime<'a> {
    settings: &'a Settings,
    as_link: Option<Link>,
    /// Why the AS can no longer be used, once it cannot.
    as_failure: Option<String>,
    tlds: Vec<TldsLink>,
    unreachable: Unreachable,
    requests: Requests<'a>,
    line: Vec<u8>,
}

/// Resolves `jobs` in order, one at a time.
pub(super) fn resolve<'a>(
    jobs: &'a [Job<'a>],
    as_stream: Option<TcpStream>,
    settings: &'a Settings,
    collector: &mut Collector,
    results: &mut impl Results,
) {
    let as_link = as_stream.map(Link::new).transpose();
    let (as_link, as_failure) = match as_link {
        Ok(Some(link)) => (Some(link), None),
        Ok(None) => (
            None,
            Some(format!("no connection to the AS at {}", settings.as_name)),
        ),
        Err(reason) => (None, Some(reason)),
    };
    let mut client = OneAtATime {
        settings,
        as_link,
        as_failure,
        tlds: Vec::new(),
        unreachable: Unreachable::default(),
        requests: Requests::default(),
        line: Vec::new(),
    };
    for (index, job) in jobs.iter().enumerate() {
        let (line, failed) = match job {
            Job::Ask(query) => client.ask(query),
            Job::Malformed { line, reason } => (malformed_line(*line, reason), true),
        };
        collector.store(
            [Done {
                index,
                line,
                failed,
            }],
            results,
        );
        collector.idle(results);
    }
}

impl<'a> OneAtATime<'a> {
    /// One query's result line, and whether it failed.
    fn ask(&mut self, query: &Query<'a>) -> (String, bool) {
        let hostname = query.hostname;
        let as_name = &self.settings.as_name;
        let as_link = match (&mut self.as_link, &self.as_failure) {
            (Some(link), None) => link,
            (_, failure) => {
                let reason = failure.as_deref().unwrap_or("no connection to the AS");
                return (failed_line(hostname, reason), true);
            }
        };
        self.line.clear();
        self.requests.push(query);
        self.requests.write_to(&mut self.line);
        let route = as_link
            .send(&self.line, || format!("the AS at {as_name}"))
            .and_then(|()| read_route(&mut as_link.reader, hostname, as_name));
        let (host, port) = match route {
            Ok(Route::Tlds { host, port }) => (host.to_owned(), port),
            Ok(Route::Done { line, failed }) => return (line, failed),
            Err(reason) => {
                let _ = as_link.writer.shutdown(Shutdown::Both);
                let line = failed_line(hostname, &reason);
                self.as_failure = Some(reason);
                return (line, true);
            }
        };
        match self.ask_tlds(&host, port, hostname) {
            Ok(answer) => answer,
            Err(reason) => (failed_line(hostname, &reason), true),
        }
    }

    /// Asks the TLDS at `host:port` for `hostname`. A connection that fails
    /// is dropped; the next query for that TLDS opens a new one.
    fn ask_tlds(
        &mut self,
        host: &str,
        port: u16,
        hostname: &str,
    ) -> Result<(String, bool), String> {
        let position = self
            .tlds
            .iter()
            .position(|tlds| tlds.host == host && tlds.port == port);
        let position = match position {
            Some(position) => position,
            None => {
                let stream = self
                    .unreachable
                    .connect(host, port, self.settings.timeout)?;
                self.tlds.push(TldsLink {
                    host: host.to_owned(),
                    port,
                    name: format!("{host}:{port}"),
                    link: Link::new(stream)?,
                });
                self.tlds.len() - 1
            }
        };
        let Some(tlds) = self.tlds.get_mut(position) else {
            return Err(format!("no connection to the TLDS at {host}:{port}"));
        };
        self.line.clear();
        HostRequest(hostname).write_to(&mut self.line);
        let name = &tlds.name;
        let answer = tlds
            .link
            .send(&self.line, || format!("the TLDS at {name}"))
            .and_then(|()| read_answer(&mut tlds.link.reader, hostname, name));
        if answer.is_err() {
            let broken = self.tlds.swap_remove(position);
            let _ = broken.link.writer.shutdown(Shutdown::Both);
        }
        answer
    }
}

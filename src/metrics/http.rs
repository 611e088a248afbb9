//! The `--metrics` endpoint: `GET /metrics` answers the exposition in the
//! Prometheus text format; any other path is 404, any other method 405,
//! anything that is not HTTP 400. One request per connection.
//!
//! It runs on the server's own accept loop ([`crate::server::serve`]), so
//! the bounds every port has hold here too: connections at once, the idle
//! timeout, 1,024 bytes a line. On top of them a request's head may have
//! at most [`HEAD_LINES`] lines and must be whole within [`HEAD_TIME`], so
//! a malformed or endless request costs at most that much. tiny_http, the
//! small blocking server first considered, reads header lines without a
//! bound and without a timeout; httparse parses the head here.

use std::time::{Duration, Instant};

use super::ServerMetrics;
use crate::connection::Respond;

/// The most lines a request's head may have, its request line included.
pub const HEAD_LINES: usize = 64;

/// How long a request's head may take, from its first line.
pub const HEAD_TIME: Duration = Duration::from_secs(5);

/// Connections the endpoint serves at once: scrapers are few.
pub const MAX_CONNECTIONS: usize = 16;

/// How long a connection may be silent, and a line may take.
pub const IDLE_TIMEOUT: Duration = HEAD_TIME;

/// The Prometheus text format's content type (version 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One connection's [`Respond`]: reads a request head a line at a time,
/// then answers it and ends the connection.
pub struct Scrape<'m> {
    metrics: &'m ServerMetrics,
    head: Vec<u8>,
    lines: usize,
    started: Option<Instant>,
    answered: bool,
}

impl<'m> Scrape<'m> {
    pub fn new(metrics: &'m ServerMetrics) -> Scrape<'m> {
        Scrape {
            metrics,
            head: Vec::new(),
            lines: 0,
            started: None,
            answered: false,
        }
    }

    fn answer(&mut self, out: &mut Vec<u8>, status: &str, body: &str, with_body: bool) {
        let content_type = if status.starts_with("200") {
            CONTENT_TYPE
        } else {
            "text/plain; charset=utf-8"
        };
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        if with_body {
            out.extend_from_slice(body.as_bytes());
        }
        self.answered = true;
    }

    /// Answers a whole head.
    fn answer_head(&mut self, out: &mut Vec<u8>) {
        let mut headers = [httparse::EMPTY_HEADER; HEAD_LINES];
        let mut request = httparse::Request::new(&mut headers);
        let parsed = request.parse(&self.head);
        let (method, path) = (request.method, request.path);
        match (parsed, method, path) {
            (Ok(httparse::Status::Complete(_)), Some(method @ ("GET" | "HEAD")), Some(path)) => {
                let with_body = method == "GET";
                let path = path.split_once('?').map_or(path, |(path, _)| path);
                if path == "/metrics" {
                    let body = self.metrics.encode();
                    self.answer(out, "200 OK", &body, with_body);
                } else {
                    self.answer(out, "404 Not Found", "not found: try /metrics\n", with_body);
                }
            }
            (Ok(httparse::Status::Complete(_)), Some(_), _) => {
                self.answer(out, "405 Method Not Allowed", "only GET\n", true);
            }
            _ => self.answer(out, "400 Bad Request", "bad request\n", true),
        }
    }
}

impl Respond for Scrape<'_> {
    fn respond(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let started = *self.started.get_or_insert_with(Instant::now);
        self.lines += 1;
        self.head.extend_from_slice(line);
        self.head.push(b'\n');
        if line.strip_suffix(b"\r").unwrap_or(line).is_empty() {
            return self.answer_head(out);
        }
        if self.lines >= HEAD_LINES {
            self.answer(
                out,
                "431 Request Header Fields Too Large",
                "too many header lines\n",
                true,
            );
        } else if started.elapsed() > HEAD_TIME {
            self.answer(out, "408 Request Timeout", "too slow\n", true);
        }
    }

    fn refuses_more(&self) -> bool {
        self.answered
    }

    fn line_too_long(&mut self, out: &mut Vec<u8>) {
        self.answer(
            out,
            "431 Request Header Fields Too Large",
            "a line over 1024 bytes\n",
            true,
        );
    }
}

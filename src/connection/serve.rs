//! The request/reply loop every server port runs, and what it reports
//! when a connection ends.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use std::sync::Arc;

use super::{Activity, FrameError, LineReader, Socket, Writer, is_timeout};
use crate::wire::{self, WireError};

/// How a connection served by [`Connection::serve`] answers its requests.
pub trait Respond {
    /// Answers one request line: appends its reply to `out`, or queues it.
    fn respond(&mut self, line: &[u8], out: &mut Vec<u8>);

    /// Appends every queued reply to `out`, in order. Called before each
    /// write, so a responder may do its work for a whole burst at once.
    fn complete(&mut self, _out: &mut Vec<u8>) {}

    /// How many replies are queued: at [`MAX_QUEUED`] they are completed and
    /// written, which bounds what one connection can make the server hold.
    fn queued(&self) -> usize {
        0
    }

    /// Appends what the server says first, before any request.
    fn greet(&mut self, _out: &mut Vec<u8>) {}

    /// True once the connection should end after its replies so far.
    fn refuses_more(&self) -> bool {
        false
    }

    /// Appends what a peer hears when its line is over the limit, just
    /// before the connection closes: `Error: line too long`, unless the
    /// port speaks another protocol.
    fn line_too_long(&mut self, out: &mut Vec<u8>) {
        wire::write_error(out, &WireError::LineTooLong);
    }
}

/// Most replies a [`Respond`] may hold back.
pub const MAX_QUEUED: usize = 1024;

impl<F: FnMut(&[u8], &mut Vec<u8>)> Respond for F {
    fn respond(&mut self, line: &[u8], out: &mut Vec<u8>) {
        self(line, out)
    }
}

/// Both halves of one socket: lines in, lines out.
pub struct Connection {
    reader: LineReader<Socket>,
    writer: Writer,
    /// Kept up to date by [`Connection::serve`], when a server watches it.
    activity: Option<Arc<Activity>>,
}

impl Connection {
    pub fn new(stream: impl Into<Socket>) -> Connection {
        let socket = stream.into();
        Connection {
            reader: LineReader::new(socket.clone()),
            writer: Writer::new(socket),
            activity: None,
        }
    }

    /// Has [`Connection::serve`] keep `activity` up to date.
    pub fn watched_by(&mut self, activity: Arc<Activity>) {
        self.activity = Some(activity);
    }

    /// The socket and what watches it, for a port that frames its messages
    /// otherwise (DNS over TCP); nothing has been read from it yet.
    pub fn into_socket(self) -> (Socket, Option<Arc<Activity>>) {
        (self.writer.stream, self.activity)
    }

    /// The halves, for a caller that reads on one thread and writes on another.
    pub fn split(self) -> (LineReader<Socket>, Writer) {
        (self.reader, self.writer)
    }

    pub fn reader(&mut self) -> &mut LineReader<Socket> {
        &mut self.reader
    }

    pub fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }

    /// Closes both directions.
    pub fn close(&self) {
        self.writer.close();
    }

    /// Sends whatever `write` appends (one request), then reads one reply.
    pub fn request(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Option<&[u8]>, FrameError> {
        write(self.writer.queue());
        if let Err(err) = self.writer.flush() {
            self.writer.close();
            return Err(FrameError::Io(err));
        }
        self.reader.read_line()
    }

    /// Serves independent request lines, one reply line each, until the peer
    /// closes, idles out or misbehaves. Replies go out in one write per burst
    /// of requests, when no further request is already buffered.
    ///
    /// A line over the limit gets `Error: line too long` and the connection
    /// is closed, since the rest of that line cannot be told from the next
    /// request.
    pub fn serve(self, mut responder: impl Respond) -> Served {
        let Connection {
            mut reader,
            mut writer,
            activity,
        } = self;
        let mut requests = 0;
        let mut waiting = false;
        responder.greet(writer.queue());
        let end = loop {
            let dry = !reader.has_buffered_line();
            if writer.is_full() || responder.queued() >= MAX_QUEUED || dry {
                responder.complete(writer.queue());
                if let Err(err) = writer.flush() {
                    writer.close();
                    return Served {
                        requests,
                        end: End::WriteFailed(err),
                    };
                }
            }
            if dry && let Some(activity) = &activity {
                // Everything read is answered: from now on it waits.
                activity.waiting();
                waiting = true;
            }
            match reader.read_line() {
                Ok(Some(line)) => {
                    if waiting && let Some(activity) = &activity {
                        activity.working();
                        waiting = false;
                    }
                    requests += 1;
                    responder.respond(line, writer.queue());
                    if responder.refuses_more() {
                        break End::Refused;
                    }
                }
                Ok(None) => break End::Closed,
                Err(FrameError::TooLong) => {
                    responder.complete(writer.queue());
                    responder.line_too_long(writer.queue());
                    break End::LineTooLong;
                }
                // Idle timeout, reset, or any other read failure: this peer is done.
                Err(FrameError::Io(err)) => break End::ReadFailed(err),
            }
        };
        responder.complete(writer.queue());
        let end = match writer.flush() {
            Ok(()) => end,
            Err(err) => End::WriteFailed(err),
        };
        writer.close();
        Served { requests, end }
    }

    /// Who is at the other end, for log lines.
    pub fn peer(&self) -> PeerAddr {
        PeerAddr(self.writer.stream.peer_addr().ok())
    }
}

/// A connection's peer as log lines name it: its address, or `a peer` when
/// the socket no longer knows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerAddr(pub Option<SocketAddr>);

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("a peer"),
        }
    }
}

/// What a connection served, and why it ended: a line of the server's log
/// at `-v`.
#[derive(Debug)]
pub struct Served {
    pub requests: u64,
    pub end: End,
}

/// Why a served connection ended.
#[derive(Debug)]
pub enum End {
    /// The peer closed it (or the server, stopping, closed its input).
    Closed,
    /// The server would serve no more of it (a failed proof of key).
    Refused,
    LineTooLong,
    /// A DNS message over TCP shorter than a DNS header: the stream cannot
    /// be trusted to be framed at all.
    ShortMessage,
    /// Reading failed: the idle timeout, or a reset.
    ReadFailed(io::Error),
    WriteFailed(io::Error),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Closed => f.write_str("closed by the peer"),
            End::Refused => f.write_str("refused"),
            End::LineTooLong => f.write_str("line too long"),
            End::ShortMessage => f.write_str("a message shorter than a DNS header"),
            End::ReadFailed(err) if is_timeout(err) => f.write_str("timed out"),
            End::ReadFailed(err) => write!(f, "read failed: {err}"),
            End::WriteFailed(err) => write!(f, "write failed: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::Duration;

    /// Echoes each line, holding every reply back until asked to complete,
    /// and remembers the most it ever held.
    struct Holding {
        held: Vec<Vec<u8>>,
        most: Arc<AtomicUsize>,
    }

    impl Respond for Holding {
        fn respond(&mut self, line: &[u8], _out: &mut Vec<u8>) {
            self.held.push(line.to_vec());
        }

        fn complete(&mut self, out: &mut Vec<u8>) {
            self.most.fetch_max(self.held.len(), Ordering::Relaxed);
            for line in self.held.drain(..) {
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
        }

        fn queued(&self) -> usize {
            self.held.len()
        }
    }

    // One write of many more requests than may be held back: every reply
    // comes back in order, and no more than MAX_QUEUED were ever held.
    #[test]
    fn held_back_replies_are_bounded_and_kept_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let most = Arc::new(AtomicUsize::new(0));
        let holding = Holding {
            held: Vec::new(),
            most: Arc::clone(&most),
        };
        let connection = Connection::new(server_side);
        let server = thread::spawn(move || connection.serve(holding));
        let requests: String = (0..5000).map(|i| format!("{i}\n")).collect();
        (&client).write_all(requests.as_bytes()).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let replies: Vec<String> = BufReader::new(&client)
            .lines()
            .collect::<Result<_, _>>()
            .unwrap();
        server.join().unwrap();
        assert_eq!(replies.len(), 5000);
        assert!(replies.iter().enumerate().all(|(i, r)| *r == i.to_string()));
        let most = most.load(Ordering::Relaxed);
        assert!(most <= MAX_QUEUED && most > 0, "held {most}");
    }
}

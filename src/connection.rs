//! Connections: the one place that turns a byte stream into lines, queues
//! outgoing lines, and decides when to send them.
//!
//! [`LineReader`] reads in large chunks so a burst of pipelined requests costs
//! one system call, hands out one line at a time without copying, and never
//! holds more than [`MAX_LINE`] bytes of an unfinished line: a peer cannot make
//! it buffer without bound. [`Writer`] queues outgoing lines and sends them in
//! one write. [`Connection`] is the two halves of one socket; its
//! [`Connection::serve`] is the request/reply loop every server port runs, so
//! the flush rule (send when the input runs dry, when [`FLUSH_AT`] bytes are
//! queued, or when [`MAX_QUEUED`] replies are held back) exists once.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::SendFlags;

use crate::scan;
use crate::wire::{self, MAX_LINE, WireError};
const READ_CHUNK: usize = 64 * 1024;

/// Why no line could be read.
#[derive(Debug)]
pub enum FrameError {
    /// More than [`MAX_LINE`] bytes without a newline.
    TooLong,
    Io(io::Error),
}

impl FrameError {
    /// True when the peer was silent for the read timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, FrameError::Io(err) if is_timeout(err))
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong => f.write_str("line too long"),
            FrameError::Io(err) if is_timeout(err) => f.write_str("timed out"),
            FrameError::Io(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for FrameError {}

/// Socket read timeouts surface as `WouldBlock` on Unix and `TimedOut` elsewhere.
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Splits a byte stream into lines, bounded in memory.
pub struct LineReader<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Start of the first unconsumed byte.
    start: usize,
    /// End of the bytes read so far.
    end: usize,
    /// Bytes in `start..scanned` are known to hold no newline (and
    /// `scanned`, if below `end`, may be the first newline).
    scanned: usize,
    /// How long one line may take, if that is limited.
    patience: Option<Patience<R>>,
}

/// A source whose reads can be given a timeout: a socket.
pub trait ReadTimeout {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl ReadTimeout for Socket {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }
}

/// From when a line's time limit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineClock {
    /// From when the reader starts waiting for it: a reply must be whole
    /// within the limit of being awaited, however its bytes trickle in.
    FromWait,
    /// From its first byte: a request may follow any silence shorter than
    /// the limit (the idle timeout), but once begun must end within it.
    FromFirstByte,
}

/// A time limit on each line, kept by shortening the socket's read
/// timeout as the line's deadline nears.
struct Patience<R> {
    limit: Duration,
    clock: LineClock,
    set_timeout: fn(&R, Option<Duration>) -> io::Result<()>,
    /// What the socket's read timeout is now.
    current: Option<Duration>,
    /// The deadline of the line being read, once it has one.
    deadline: Option<Instant>,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            scanned: 0,
            patience: None,
        }
    }

    /// Before each read from the socket: fixes the line's deadline (see
    /// [`LineClock`]), fails it once passed, and shortens the socket's read
    /// timeout to what is left of it.
    fn before_reading(&mut self) -> Result<(), FrameError> {
        let partial = self.end > self.start;
        let Some(patience) = &mut self.patience else {
            return Ok(());
        };
        let now = Instant::now();
        let deadline = match (patience.deadline, patience.clock) {
            (Some(deadline), _) => Some(deadline),
            (None, LineClock::FromWait) => Some(now + patience.limit),
            (None, LineClock::FromFirstByte) if partial => Some(now + patience.limit),
            (None, LineClock::FromFirstByte) => None,
        };
        patience.deadline = deadline;
        let wanted = match deadline {
            Some(deadline) => deadline.saturating_duration_since(now),
            None => patience.limit,
        };
        if wanted.is_zero() {
            return Err(FrameError::Io(io::Error::from(io::ErrorKind::TimedOut)));
        }
        // Setting a timeout is a system call: only when it must shrink
        // (a line is late) or grow back (a new line begins).
        let slack = Duration::from_millis(1);
        let off = patience
            .current
            .is_none_or(|current| wanted + slack < current || wanted > current + slack);
        if off {
            (patience.set_timeout)(&self.inner, Some(wanted)).map_err(FrameError::Io)?;
            patience.current = Some(wanted);
        }
        Ok(())
    }

    /// A line is whole: the next one's clock has not started.
    fn line_done(&mut self) {
        if let Some(patience) = &mut self.patience {
            patience.deadline = None;
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Limits how long each line may take to arrive, counted by `clock`,
    /// however its bytes trickle in. Without it, only each read is limited
    /// (by the socket's own timeout), which a peer sending a byte at a time
    /// could stretch without end.
    pub fn limit_each_line(&mut self, limit: Duration, clock: LineClock)
    where
        R: ReadTimeout,
    {
        self.patience = Some(Patience {
            limit,
            clock,
            set_timeout: R::set_read_timeout,
            current: None,
            deadline: None,
        });
    }

    /// True when a whole line is already buffered, so the next `read_line`
    /// will not block.
    pub fn has_buffered_line(&mut self) -> bool {
        self.find_newline().is_some()
    }

    fn find_newline(&mut self) -> Option<usize> {
        let pending = self.buf.get(self.scanned..self.end)?;
        match scan::find_byte(b'\n', pending) {
            Some(offset) => {
                // Servers ask whether a line is buffered before reading it:
                // the second look starts at the newline the first one found.
                self.scanned += offset;
                Some(self.scanned)
            }
            None => {
                self.scanned = self.end;
                None
            }
        }
    }

    /// The next line answers a request sent at `sent_at`: with
    /// [`LineReader::limit_each_line`], it is due within the limit of then
    /// rather than of when it is first awaited.
    pub fn reply_due(&mut self, sent_at: Instant) {
        if let Some(patience) = &mut self.patience {
            patience.deadline = Some(sent_at + patience.limit);
        }
    }

    /// Waits until the peer sends more bytes, keeping them for the next
    /// [`LineReader::read_line`]; `false` once it has closed (or the buffer
    /// is full). For a thread with nothing to read yet that knows its next
    /// work arrives as the peer's next bytes: it sleeps on the socket
    /// instead of being woken once by a queue and then again by the socket.
    pub fn wait_for_more(&mut self) -> io::Result<bool> {
        self.make_room();
        let Some(space) = self
            .buf
            .get_mut(self.end..)
            .filter(|space| !space.is_empty())
        else {
            return Ok(false);
        };
        loop {
            match self.inner.read(space) {
                Ok(read) => {
                    self.end += read;
                    return Ok(read > 0);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// With the buffer full, moves what is not yet consumed to its front, so
    /// that the next read has somewhere to go. (Once everything is consumed,
    /// `read_line` has already started over at the front.)
    fn make_room(&mut self) {
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
    }

    /// The next line without its `\n` (or `\r\n`). `Ok(None)` is a clean end
    /// of stream; an unterminated last line is returned as a line.
    pub fn read_line(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let (from, to) = loop {
            if let Some(newline) = self.find_newline() {
                let from = self.start;
                self.start = newline + 1;
                self.scanned = self.start;
                break (from, newline);
            }
            if self.end - self.start > MAX_LINE + 1 {
                return Err(FrameError::TooLong);
            }
            self.make_room();
            self.before_reading()?;
            let Some(space) = self.buf.get_mut(self.end..) else {
                return Err(FrameError::TooLong);
            };
            let read = match self.inner.read(space) {
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(FrameError::Io(err)),
            };
            if read == 0 {
                if self.start == self.end {
                    return Ok(None);
                }
                let from = self.start;
                self.start = self.end;
                self.scanned = self.end;
                break (from, self.end);
            }
            self.end += read;
        };
        self.line_done();
        if self.start == self.end {
            // Everything consumed: start over at the front of the buffer.
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            // The line's bytes are still in place; only the indices moved.
        }
        let line = self
            .buf
            .get(from..to)
            .expect("a line lies within the bytes read so far");
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE {
            return Err(FrameError::TooLong);
        }
        Ok(Some(line))
    }
}

/// One socket, shared by its reading and writing halves (and by a server's
/// list of open connections), so a connection costs one file descriptor
/// however many hold it. It closes when the last holder lets go.
#[derive(Debug, Clone)]
pub struct Socket(Arc<TcpStream>);

impl Socket {
    pub fn new(stream: TcpStream) -> Socket {
        Socket(Arc::new(stream))
    }
}

impl From<TcpStream> for Socket {
    fn from(stream: TcpStream) -> Socket {
        Socket::new(stream)
    }
}

impl std::ops::Deref for Socket {
    type Target = TcpStream;

    fn deref(&self) -> &TcpStream {
        &self.0
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// Outgoing lines, queued and sent in one write.
pub struct Writer {
    stream: Socket,
    out: Vec<u8>,
}

/// Lines are sent once this much is queued even if more are coming, so a
/// peer that pipelines without reading cannot grow our buffer.
pub const FLUSH_AT: usize = 64 * 1024;

impl Writer {
    pub fn new(stream: Socket) -> Writer {
        Writer {
            stream,
            out: Vec::with_capacity(FLUSH_AT),
        }
    }

    /// Where to append the next outgoing lines.
    pub fn queue(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// True when enough is queued that it should go out now.
    pub fn is_full(&self) -> bool {
        self.out.len() >= FLUSH_AT
    }

    /// Sends everything queued.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = self.stream.write_all(&self.out);
        self.out.clear();
        written
    }

    /// Sends as much of the queue as the socket takes without waiting, and
    /// keeps the rest queued for [`Writer::flush`]. For a thread that must
    /// not block on this peer: one that the peer may be waiting on, itself,
    /// to read its answers.
    pub fn send_without_waiting(&mut self) -> io::Result<()> {
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        let mut sent = 0;
        let result = loop {
            let Some(unsent) = self.out.get(sent..).filter(|rest| !rest.is_empty()) else {
                break Ok(());
            };
            match rustix::net::send(&*self.stream, unsent, flags) {
                Ok(count) => sent += count,
                Err(Errno::AGAIN) => break Ok(()),
                Err(Errno::INTR) => {}
                Err(errno) => break Err(io::Error::from(errno)),
            }
        };
        self.out.drain(..sent);
        result
    }

    /// Closes both directions, so a thread reading the other half wakes up.
    pub fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Says nothing more will be sent: the peer answers what it has read,
    /// then closes, which is how the thread reading the other half learns
    /// that no more answers are coming.
    pub fn finish(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

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
}

impl Connection {
    pub fn new(stream: impl Into<Socket>) -> Connection {
        let socket = stream.into();
        Connection {
            reader: LineReader::new(socket.clone()),
            writer: Writer::new(socket),
        }
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
        } = self;
        let mut requests = 0;
        responder.greet(writer.queue());
        let end = loop {
            if writer.is_full() || responder.queued() >= MAX_QUEUED || !reader.has_buffered_line() {
                responder.complete(writer.queue());
                if let Err(err) = writer.flush() {
                    writer.close();
                    return Served {
                        requests,
                        end: End::WriteFailed(err),
                    };
                }
            }
            match reader.read_line() {
                Ok(Some(line)) => {
                    requests += 1;
                    responder.respond(line, writer.queue());
                    if responder.refuses_more() {
                        break End::Refused;
                    }
                }
                Ok(None) => break End::Closed,
                Err(FrameError::TooLong) => {
                    responder.complete(writer.queue());
                    wire::write_error(writer.queue(), &WireError::LineTooLong);
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
            End::ReadFailed(err) if is_timeout(err) => f.write_str("timed out"),
            End::ReadFailed(err) => write!(f, "read failed: {err}"),
            End::WriteFailed(err) => write!(f, "write failed: {err}"),
        }
    }
}

/// Connects to the first of `addrs` that answers within `timeout`, and sets
/// the options every hop uses: no Nagle delay, and `timeout` on every read
/// and write so a silent peer costs at most that long.
pub fn connect(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                return Ok(stream);
            }
            Err(err) => last_error = err,
        }
    }
    Err(last_error)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    /// A reader that hands out its data in fixed-size pieces, like a socket.
    struct Trickle<'a> {
        data: &'a [u8],
        piece: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.piece.min(buf.len()).min(self.data.len());
            let (head, tail) = self.data.split_at(n);
            buf[..n].copy_from_slice(head);
            self.data = tail;
            Ok(n)
        }
    }

    fn lines(data: &[u8], piece: usize) -> Vec<Result<Vec<u8>, String>> {
        let mut reader = LineReader::new(Trickle { data, piece });
        let mut out = Vec::new();
        loop {
            match reader.read_line() {
                Ok(Some(line)) => out.push(Ok(line.to_vec())),
                Ok(None) => return out,
                Err(err) => {
                    out.push(Err(err.to_string()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn splits_lines_across_reads() {
        for piece in [1, 3, 7, 64, 100_000] {
            assert_eq!(
                lines(b"one\r\ntwo\n\nthree", piece),
                vec![
                    Ok(b"one".to_vec()),
                    Ok(b"two".to_vec()),
                    Ok(b"".to_vec()),
                    Ok(b"three".to_vec())
                ],
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn longest_allowed_line_passes_and_one_more_byte_fails() {
        let ok = [vec![b'a'; MAX_LINE], b"\r\n".to_vec()].concat();
        assert_eq!(lines(&ok, 100), vec![Ok(vec![b'a'; MAX_LINE])]);
        let too_long = [vec![b'a'; MAX_LINE + 1], b"\n".to_vec()].concat();
        assert_eq!(lines(&too_long, 100_000), vec![Err("line too long".into())]);
        // Without a newline, the reader gives up once the limit is passed
        // instead of buffering the rest.
        let endless = vec![b'a'; 10 * READ_CHUNK];
        assert_eq!(lines(&endless, 4096), vec![Err("line too long".into())]);
    }

    #[test]
    fn many_lines_through_a_small_buffer_window() {
        let data: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("line{i}\n").into_bytes())
            .collect();
        let got = lines(&data, 5000);
        assert_eq!(got.len(), 20_000);
        assert_eq!(got[19_999], Ok(b"line19999".to_vec()));
    }

    #[test]
    fn knows_when_a_line_is_buffered() {
        let mut reader = LineReader::new(Trickle {
            data: b"a\nb\nc",
            piece: 100,
        });
        assert!(!reader.has_buffered_line());
        assert_eq!(reader.read_line().unwrap(), Some(&b"a"[..]));
        assert!(reader.has_buffered_line());
        assert_eq!(reader.read_line().unwrap(), Some(&b"b"[..]));
        assert!(!reader.has_buffered_line());
        assert_eq!(reader.read_line().unwrap(), Some(&b"c"[..]));
        assert_eq!(reader.read_line().unwrap(), None);
    }

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

    /// Both ends of a loopback connection: the one that connected, and the
    /// one accepted. Their buffers are kept small (the kernel may round
    /// them up, but autotuning no longer grows them), so that how much a
    /// socket holds does not depend on this machine's settings.
    pub(crate) fn loopback_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (far, _) = listener.accept().unwrap();
        far.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        rustix::net::sockopt::set_socket_send_buffer_size(&near, 64 * 1024).unwrap();
        rustix::net::sockopt::set_socket_recv_buffer_size(&far, 64 * 1024).unwrap();
        (near, far)
    }

    /// Far more bytes than a [`loopback_pair`] holds: 16 MiB of a pattern
    /// that shows where each byte belongs.
    pub(crate) fn more_than_a_socket_holds(tag: u8) -> Vec<u8> {
        (0..16u32 << 20)
            .map(|i| tag.wrapping_add((i % 251) as u8))
            .collect()
    }

    /// Runs `act` on another thread and says whether it returned within
    /// five seconds (the thread is left to finish on its own if not).
    pub(crate) fn returns_promptly(act: impl FnOnce() + Send + 'static) -> bool {
        let (done, finished) = std::sync::mpsc::channel();
        thread::spawn(move || {
            act();
            let _ = done.send(());
        });
        finished.recv_timeout(Duration::from_secs(5)).is_ok()
    }

    // A peer that reads nothing cannot make a sender that must not wait
    // block: what the socket cannot take stays queued, and a later flush
    // sends it, in order.
    #[test]
    fn sending_without_waiting_keeps_what_the_socket_cannot_take() {
        let (near, far) = loopback_pair();
        let data = more_than_a_socket_holds(7);
        let mut writer = Writer::new(Socket::new(near));
        writer.queue().extend_from_slice(&data);
        let writer = Arc::new(std::sync::Mutex::new(writer));
        let sending = Arc::clone(&writer);
        assert!(
            returns_promptly(move || sending.lock().unwrap().send_without_waiting().unwrap()),
            "a send that must not wait waited for the peer to read"
        );
        let mut writer = Arc::try_unwrap(writer).ok().unwrap().into_inner().unwrap();
        let left = writer.queue().len();
        assert!(
            left > 0 && left < data.len(),
            "{left} of {} left",
            data.len()
        );
        let reading = thread::spawn(move || {
            let mut received = Vec::new();
            (&far).read_to_end(&mut received).map(|_| received)
        });
        writer.flush().unwrap();
        writer.finish();
        assert!(
            reading.join().unwrap().unwrap() == data,
            "bytes lost or out of order"
        );
    }
}

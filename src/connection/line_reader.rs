//! Lines in: a byte stream split into lines, bounded in memory, each line
//! optionally bounded in time.

use std::fmt;
use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{Socket, is_timeout};
use crate::scan;
use crate::wire::MAX_LINE;

/// The buffer for a burst: a pipelined burst of requests costs one read.
const READ_CHUNK: usize = 64 * 1024;

/// The buffer of a connection whose bursts are small: what one waiting for
/// its peer holds. It takes a whole line (and a one-at-a-time client's
/// whole request); a read that fills it swaps it for [`READ_CHUNK`].
const IDLE_CHUNK: usize = 4 * 1024;

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
    /// Reads left before a small buffer will do again: reset by every large
    /// read, counted down by small ones, so a peer that streams large
    /// bursts keeps its burst's buffer however its reads happen to split.
    large_lately: u8,
}

/// Small reads after a large one before its buffer is given back.
const SMALL_READS_BEFORE_SHRINKING: u8 = 16;

/// A source whose reads can be given a timeout: a socket.
pub trait ReadTimeout {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl ReadTimeout for Socket {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
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
            buf: vec![0; IDLE_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            scanned: 0,
            patience: None,
            large_lately: 0,
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
                    self.note_read(read);
                    return Ok(read > 0);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Makes room for the next read. With the buffer full: a small one is
    /// swapped for a burst's, a burst's has what is not yet consumed moved
    /// to its front. With nothing buffered, after enough small reads in a
    /// row, a burst's buffer is given back for a small one: the read may
    /// wait long, and an idle connection should hold little. A pipelining
    /// peer keeps it, rather than swap buffers (zeroing one, and reading
    /// twice) at every read. (Once everything is consumed, `read_line` has
    /// already started over at the front.)
    fn make_room(&mut self) {
        if self.end == self.buf.len() {
            let unread = self.buf.get(self.start..self.end).unwrap_or_default();
            if self.buf.len() < READ_CHUNK {
                let mut bigger = vec![0; READ_CHUNK].into_boxed_slice();
                if let Some(front) = bigger.get_mut(..unread.len()) {
                    front.copy_from_slice(unread);
                }
                self.buf = bigger;
            } else {
                self.buf.copy_within(self.start..self.end, 0);
            }
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        } else if self.end == 0 && self.buf.len() > IDLE_CHUNK && self.large_lately == 0 {
            self.buf = vec![0; IDLE_CHUNK].into_boxed_slice();
        }
    }

    fn note_read(&mut self, read: usize) {
        self.large_lately = if read >= IDLE_CHUNK {
            SMALL_READS_BEFORE_SHRINKING
        } else {
            self.large_lately.saturating_sub(1)
        };
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
                Ok(read) => {
                    self.note_read(read);
                    read
                }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A reader that hands out each of its pieces in one read (as much of
    /// it as fits), like a socket receiving one write at a time.
    struct Pieces(std::collections::VecDeque<Vec<u8>>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(piece) = self.0.front_mut() else {
                return Ok(0);
            };
            let n = piece.len().min(buf.len());
            buf[..n].copy_from_slice(&piece[..n]);
            piece.drain(..n);
            if piece.is_empty() {
                self.0.pop_front();
            }
            Ok(n)
        }
    }

    // A burst larger than the small buffer is read through a burst's
    // buffer, kept while large reads go on; after enough small reads, the
    // reader waits on a small buffer again.
    #[test]
    fn a_burst_takes_a_big_buffer_and_an_idle_wait_a_small_one() {
        let burst: Vec<u8> = (0..5_000)
            .flat_map(|i| format!("request{i:05}\n").into_bytes())
            .collect();
        let small = (0..16).map(|i| format!("small{i:02}\n").into_bytes());
        let pieces = [burst.clone(), burst].into_iter().chain(small);
        let mut reader = LineReader::new(Pieces(pieces.into_iter().collect()));
        assert_eq!(reader.buf.len(), IDLE_CHUNK);
        let mut lines = Vec::new();
        let mut sizes = Vec::new();
        while let Some(line) = reader.read_line().unwrap() {
            lines.push(String::from_utf8(line.to_vec()).unwrap());
            sizes.push(reader.buf.len());
        }
        assert_eq!(lines.len(), 10_016);
        assert_eq!(lines[0], "request00000");
        assert_eq!(lines[5_000], "request00000");
        assert_eq!(lines[9_999], "request04999");
        assert_eq!(lines[10_015], "small15");
        // The burst's buffer is kept through the bursts and the first small
        // reads; after sixteen small reads in a row, the wait (here for the
        // end of the stream) is on a small one.
        assert!(sizes[400..10_015].iter().all(|&size| size == READ_CHUNK));
        assert_eq!(reader.buf.len(), IDLE_CHUNK);
    }
}

//! Framing: the one place that turns a byte stream into lines, and that opens
//! outgoing connections.
//!
//! [`LineReader`] reads in large chunks so a burst of pipelined requests costs
//! one system call, hands out one line at a time without copying, and never
//! holds more than [`MAX_LINE`] bytes of an unfinished line: a peer cannot make
//! it buffer without bound. [`LineReader::has_buffered_line`] tells callers
//! whether the next line is already here, which is how every hop decides to
//! flush its replies only when its input runs dry.

use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::scan;
use crate::wire::MAX_LINE;

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
    /// Bytes in `start..scanned` are known to hold no newline.
    scanned: usize,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            scanned: 0,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// True when a whole line is already buffered, so the next `read_line`
    /// will not block.
    pub fn has_buffered_line(&mut self) -> bool {
        self.find_newline().is_some()
    }

    fn find_newline(&mut self) -> Option<usize> {
        let pending = self.buf.get(self.scanned..self.end)?;
        match scan::find_byte(b'\n', pending) {
            Some(offset) => Some(self.scanned + offset),
            None => {
                self.scanned = self.end;
                None
            }
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
            if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.scanned -= self.start;
                self.start = 0;
            }
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
        if self.start == self.end {
            // Everything consumed: start over at the front of the buffer.
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            // The line's bytes are still in place; only the indices moved.
        }
        let line = self.buf.get(from..to).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE {
            return Err(FrameError::TooLong);
        }
        Ok(Some(line))
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
}

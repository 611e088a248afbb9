//! Lines out: the socket both halves of a connection share, and the queue
//! of outgoing lines sent in one write.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use rustix::io::Errno;
use rustix::net::SendFlags;

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
    pub(super) stream: Socket,
    out: Vec<u8>,
    /// Bursts left before a small queue will do again (see [`KEPT`]).
    large_lately: u8,
}

/// Lines are sent once this much is queued even if more are coming, so a
/// peer that pipelines without reading cannot grow our buffer.
pub const FLUSH_AT: usize = 64 * 1024;

/// What the queue keeps between small bursts: a burst's replies grow it as
/// they need, and after enough small bursts in a row a larger queue is
/// given back, so that a connection waiting for its peer holds little. A
/// peer sent large bursts keeps it, rather than regrow it at every burst.
const KEPT: usize = 4 * 1024;

/// Small bursts after a large one before its queue is given back.
const SMALL_BURSTS_BEFORE_SHRINKING: u8 = 16;

impl Writer {
    pub fn new(stream: Socket) -> Writer {
        Writer {
            stream,
            out: Vec::new(),
            large_lately: 0,
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
        if self.out.len() >= KEPT {
            self.large_lately = SMALL_BURSTS_BEFORE_SHRINKING;
        } else if self.large_lately > 0 {
            self.large_lately -= 1;
        } else {
            self.out.shrink_to(KEPT);
        }
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
    pub fn half_close(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::testing::{loopback_pair, more_than_a_socket_holds, returns_promptly};
    use std::thread;

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
        writer.half_close();
        assert!(
            reading.join().unwrap().unwrap() == data,
            "bytes lost or out of order"
        );
    }
}

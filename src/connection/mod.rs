//! Connections: the one place that turns a byte stream into lines, queues
//! outgoing lines, and decides when to send them. One file a concern:
//!
//! - `line_reader.rs`: [`LineReader`] reads in large chunks so a burst of
//!   pipelined requests costs one system call, hands out one line at a time
//!   without copying, never holds more than [`MAX_LINE`](crate::wire::MAX_LINE)
//!   bytes of an unfinished line, and can limit how long each line may take.
//! - `writer.rs`: the shared [`Socket`] and the [`Writer`] that queues
//!   outgoing lines and sends them in one write (or, for a thread that must
//!   not block, as much as the socket takes at once).
//! - `activity.rs`: whether a served connection waits for its peer, and
//!   since when, for a full server choosing which connection to close.
//! - `serve.rs`: [`Connection`], the two halves of one socket, and
//!   [`Connection::serve`], the request/reply loop every server port runs, so
//!   the flush rule (send when the input runs dry, when [`FLUSH_AT`] bytes are
//!   queued, or when [`MAX_QUEUED`] replies are held back) exists once.

mod activity;
mod line_reader;
mod serve;
#[cfg(test)]
pub(crate) mod testing;
mod writer;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub use activity::Activity;
pub use line_reader::{FrameError, LineClock, LineReader, ReadTimeout};
pub use serve::{Connection, End, MAX_QUEUED, PeerAddr, Respond, Served};
pub use writer::{FLUSH_AT, Socket, Writer};

/// Socket read timeouts surface as `WouldBlock` on Unix and `TimedOut` elsewhere.
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
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

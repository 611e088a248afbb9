//! Accepting connections: one thread per connection, under a connection
//! limit, an idle timeout and an optional allow-list of peer addresses.
//!
//! Both server roles use [`serve`]; the simple request/reply role (TLDS) also
//! uses [`serve_lines`], the pipelined line loop. Keeping these here means a
//! slow, silent or hostile peer is handled the same way on every port.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::connection::{FrameError, LineReader};
use crate::wire::{self, WireError};

/// Replies are sent once this much is queued even if more requests wait,
/// so a peer that pipelines without reading cannot grow our buffer.
pub const FLUSH_AT: usize = 64 * 1024;

const CONNECTION_STACK: usize = 256 * 1024;

/// Limits shared by every listener of one server process.
#[derive(Debug)]
pub struct Gate {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    open: AtomicUsize,
}

impl Gate {
    pub fn new(max_connections: usize, idle_timeout: Duration) -> Arc<Gate> {
        Arc::new(Gate {
            max_connections,
            idle_timeout,
            open: AtomicUsize::new(0),
        })
    }

    fn try_enter(self: &Arc<Self>) -> Option<Permit> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .is_ok();
        admitted.then(|| Permit(Arc::clone(self)))
    }
}

/// One admitted connection; dropping it frees the slot.
struct Permit(Arc<Gate>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which peers a listener serves.
#[derive(Debug, Clone, Default)]
pub enum Allow {
    #[default]
    Anyone,
    Only(Arc<[IpAddr]>),
}

impl Allow {
    fn admits(&self, peer: &SocketAddr) -> bool {
        match self {
            Allow::Anyone => true,
            Allow::Only(list) => list.contains(&peer.ip()),
        }
    }
}

/// Accepts connections forever, running `handle` on a thread of its own for
/// each one admitted. `role` names the listener in log lines.
pub fn serve<F>(role: &str, listener: TcpListener, gate: Arc<Gate>, allow: Allow, handle: F)
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly
                // rather than spin, and keep serving those already connected.
                eprintln!("{role}: accept failed: {err}");
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if !allow.admits(&peer) {
            eprintln!("{role}: refused {peer}: not in --as-allow");
            refuse(stream, &"not allowed");
            continue;
        }
        let Some(permit) = gate.try_enter() else {
            refuse(stream, &"server busy");
            continue;
        };
        if configure(&stream, gate.idle_timeout).is_err() {
            continue;
        }
        let handle = Arc::clone(&handle);
        let spawned = thread::Builder::new()
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                let _permit = permit;
                handle(stream);
            });
        if let Err(err) = spawned {
            eprintln!("{role}: cannot start a thread for {peer}: {err}");
        }
    }
}

fn configure(stream: &TcpStream, idle_timeout: Duration) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(idle_timeout))?;
    stream.set_write_timeout(Some(idle_timeout))
}

/// Tells a peer why it is not served, then closes. The write goes into an
/// empty socket buffer, so it cannot block.
fn refuse(stream: TcpStream, reason: &dyn std::fmt::Display) {
    let mut reply = Vec::new();
    wire::write_error(&mut reply, reason);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = (&stream).write_all(&reply);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// How a connection served by [`serve_lines`] answers its requests.
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
}

/// Most replies a [`Respond`] may hold back.
pub const MAX_QUEUED: usize = 1024;

impl<F: FnMut(&[u8], &mut Vec<u8>)> Respond for F {
    fn respond(&mut self, line: &[u8], out: &mut Vec<u8>) {
        self(line, out)
    }
}

/// Serves one connection of independent request lines, one reply line per
/// request. Replies go out in one write per burst of requests, when no
/// further request is already buffered.
///
/// A line over the limit gets `Error: line too long` and the connection is
/// closed, since the rest of that line cannot be told from the next request.
pub fn serve_lines(stream: TcpStream, mut responder: impl Respond) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = LineReader::new(read_half);
    let mut writer = stream;
    let mut out = Vec::with_capacity(FLUSH_AT);
    loop {
        if out.len() >= FLUSH_AT || responder.queued() >= MAX_QUEUED || !reader.has_buffered_line()
        {
            responder.complete(&mut out);
            if !out.is_empty() {
                if writer.write_all(&out).is_err() {
                    return;
                }
                out.clear();
            }
        }
        match reader.read_line() {
            Ok(Some(line)) => responder.respond(line, &mut out),
            Ok(None) => break,
            Err(FrameError::TooLong) => {
                responder.complete(&mut out);
                wire::write_error(&mut out, &WireError::LineTooLong);
                break;
            }
            // Idle timeout, reset, or any other read failure: this peer is done.
            Err(FrameError::Io(_)) => break,
        }
    }
    responder.complete(&mut out);
    let _ = writer.write_all(&out);
    let _ = writer.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

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
        let server = thread::spawn(move || serve_lines(server_side, holding));
        let requests: String = (0..5000).map(|i| format!("{i}\n")).collect();
        (&client).write_all(requests.as_bytes()).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
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

//! Loopback sockets for the unit tests of whatever writes to a peer that
//! may not read: a pair with small buffers, more bytes than it holds, and a
//! bound on how long an act may block.

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

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

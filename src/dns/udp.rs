//! DNS over UDP: blocking threads that share one socket, each receiving a
//! datagram, answering it and sending the reply, until told to stop.
//!
//! Threads, not connections, are the unit here: the kernel hands each
//! datagram to one waiting thread, so the count of threads is the count of
//! queries answered at once, whatever the number of requesters.

use std::io;
use std::net::UdpSocket;
use std::thread;
use std::time::Duration;

use super::{Handler, Transport};
use crate::connection::{PeerAddr, is_timeout};
use crate::server::Stopper;

/// The largest datagram a request can arrive in.
const MAX_DATAGRAM: usize = 65_535;

/// How long a receiving thread waits before it looks at the stop flag by
/// itself, should the stopper's wake-up datagram be lost.
const STOP_CHECK: Duration = Duration::from_secs(1);

/// Serves `socket` on `threads` threads (named after `name`) until
/// `stopper` says stop; returns once every thread has ended.
pub fn serve(
    socket: &UdpSocket,
    threads: usize,
    handler: &Handler,
    stopper: &Stopper,
    name: &str,
) -> io::Result<()> {
    socket.set_read_timeout(Some(STOP_CHECK))?;
    if let Ok(addr) = socket.local_addr() {
        stopper.register_datagrams(addr, threads);
    }
    thread::scope(|scope| {
        for n in 0..threads {
            thread::Builder::new()
                .name(format!("{name} DNS UDP {n}"))
                .spawn_scoped(scope, || receive(socket, handler, stopper))?;
        }
        Ok(())
    })
}

/// One thread's loop: a datagram in, its reply out.
fn receive(socket: &UdpSocket, handler: &Handler, stopper: &Stopper) {
    let mut request = vec![0u8; MAX_DATAGRAM];
    let mut reply = Vec::with_capacity(usize::from(super::UDP_PAYLOAD));
    while !stopper.is_stopping() {
        let (len, peer) = match socket.recv_from(&mut request) {
            Ok(received) => received,
            Err(err) if is_timeout(&err) || err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                // ICMP errors from an earlier send surface here on some
                // systems; nothing is wrong with the socket itself.
                log::debug!("DNS UDP: receive failed: {err}");
                continue;
            }
        };
        if stopper.is_stopping() {
            break;
        }
        let Some(bytes) = request.get(..len) else {
            continue;
        };
        let Some(handled) = handler.handle(bytes, Transport::Udp, &mut reply) else {
            continue;
        };
        if let Err(err) = socket.send_to(&reply, peer) {
            log::debug!("DNS UDP: reply to {peer} failed: {err}");
        }
        handled.log(Transport::Udp, PeerAddr(Some(peer)));
    }
}

//! Accepting connections: one thread per connection, under a connection
//! limit, an idle timeout and an optional allow-list of peer addresses, until
//! told to stop.
//!
//! Every server port runs [`serve`], so a slow, silent or hostile peer is
//! handled the same way everywhere. A port at its connection limit makes
//! room: a newcomer closes the connection that has waited longest for its
//! peer, if that has been at least [`IDLE_ENOUGH`]; only when none has does
//! the newcomer hear `server busy`. A [`Stopper`] ends every listener of one
//! process: each stops accepting, open connections have their input closed
//! (so requests already read are still answered); [`serve`] returns as soon
//! as its listener has stopped, and [`wait_out_grace`] then waits until the
//! connections are done or [`GRACE`] has passed.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};

use crate::connection::{
    Activity, Connection, End, LineClock, PeerAddr, Served, Socket, is_timeout,
};
use crate::metrics::http::{self, Scrape};
use crate::metrics::{ConnectionEvent, PortMetrics, ServerMetrics};
use crate::sync::{lock, unpoisoned};
use crate::wire;

/// How long a stopping server waits for its connections to finish.
pub const GRACE: Duration = Duration::from_secs(2);

const CONNECTION_STACK: usize = 256 * 1024;

/// How long a connection must have waited for its peer before a newcomer
/// to a full port may close it: a client between two queries of a run is
/// never idle this long, a connection left open and silent soon is.
pub const IDLE_ENOUGH: Duration = Duration::from_secs(1);

/// Tells every listener of one process to stop. Clones share one state.
#[derive(Debug, Clone, Default)]
pub struct Stopper(Arc<StopState>);

#[derive(Debug, Default)]
struct StopState {
    stopping: AtomicBool,
    /// Where each running listener can be reached, to wake its `accept`.
    listeners: Mutex<Vec<SocketAddr>>,
    /// Each UDP socket served, and how many threads wait on it for a
    /// datagram: each needs one to wake and see the flag.
    datagrams: Mutex<Vec<(SocketAddr, usize)>>,
}

impl Stopper {
    pub fn new() -> Stopper {
        Stopper::default()
    }

    pub fn is_stopping(&self) -> bool {
        self.0.stopping.load(Ordering::Acquire)
    }

    /// Asks every listener to stop; returns at once.
    pub fn stop(&self) {
        self.0.stopping.store(true, Ordering::Release);
        let listeners = lock(&self.0.listeners).clone();
        for addr in listeners {
            // A blocked `accept` cannot be interrupted in std; a connection
            // of our own wakes it, and it then sees the flag.
            let _ = TcpStream::connect_timeout(&reachable(addr), Duration::from_millis(200));
        }
        let datagrams = lock(&self.0.datagrams).clone();
        for (addr, threads) in datagrams {
            let addr = reachable(addr);
            let any: SocketAddr = match addr {
                SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            if let Ok(waker) = UdpSocket::bind(any) {
                // An empty datagram is shorter than any request: a thread
                // that reads one answers nothing and sees the flag.
                for _ in 0..threads {
                    let _ = waker.send_to(&[], addr);
                }
            }
        }
    }

    fn register(&self, addr: SocketAddr) {
        lock(&self.0.listeners).push(addr);
    }

    /// Has [`Stopper::stop`] wake `threads` threads receiving on the UDP
    /// socket at `addr`.
    pub fn register_datagrams(&self, addr: SocketAddr, threads: usize) {
        lock(&self.0.datagrams).push((addr, threads));
    }
}

/// The address to connect to for a listener bound to `addr`: a wildcard
/// bind is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Limits shared by every listener of one server process, and the
/// connections it has open.
#[derive(Debug)]
pub struct Gate {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Every connection admitted and not yet ended.
    open: Mutex<HashMap<u64, Admitted>>,
    /// Signalled as each connection ends, for the stop's grace period.
    closed: Condvar,
    next_id: AtomicU64,
    /// The clock origin of every connection's [`Activity`].
    epoch: Instant,
}

/// What the gate keeps of one open connection.
#[derive(Debug)]
struct Admitted {
    /// To close its input when stopping, or all of it to make room.
    socket: Socket,
    /// Whether, and since when, it waits for its peer.
    activity: Arc<Activity>,
    /// Who it is, for the log line when it is closed to make room.
    peer: PeerAddr,
}

/// What a full port did to admit a newcomer.
struct MadeRoom {
    peer: PeerAddr,
    idle: Duration,
}

impl Gate {
    pub fn new(max_connections: usize, idle_timeout: Duration) -> Arc<Gate> {
        Arc::new(Gate {
            max_connections,
            idle_timeout,
            open: Mutex::new(HashMap::new()),
            closed: Condvar::new(),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Admits `socket`, closing the connection idle longest to make room
    /// when the port is full; `None` when it is full of connections that
    /// are working or idle less than [`IDLE_ENOUGH`].
    fn try_enter(
        self: &Arc<Self>,
        socket: &Socket,
        peer: PeerAddr,
        metrics: &PortMetrics,
    ) -> Option<(Permit, Option<MadeRoom>)> {
        let mut open = lock(&self.open);
        let mut made_room = None;
        if open.len() >= self.max_connections {
            let (id, idle) = open
                .iter()
                .filter_map(|(&id, admitted)| Some((id, admitted.activity.idle_for()?)))
                .max_by_key(|&(_, idle)| idle)
                .filter(|&(_, idle)| idle >= IDLE_ENOUGH)?;
            // Its slot is the newcomer's now; its thread sees the socket
            // closed and ends (its permit finds nothing left to remove).
            let evicted = open.remove(&id)?;
            let _ = evicted.socket.shutdown(std::net::Shutdown::Both);
            made_room = Some(MadeRoom {
                peer: evicted.peer,
                idle,
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        open.insert(
            id,
            Admitted {
                socket: socket.clone(),
                activity: Arc::clone(&activity),
                peer,
            },
        );
        metrics.connection(ConnectionEvent::Accepted);
        let permit = Permit {
            gate: Arc::clone(self),
            id,
            activity,
            metrics: metrics.clone(),
        };
        Some((permit, made_room))
    }

    /// Closes the input of every open connection, then waits until they are
    /// done or `deadline` has passed.
    fn drain(&self, deadline: Instant) {
        let mut open = lock(&self.open);
        for admitted in open.values() {
            let _ = admitted.socket.shutdown(std::net::Shutdown::Read);
        }
        while !open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            open = unpoisoned(self.closed.wait_timeout(open, left)).0;
        }
    }
}

/// One admitted connection; dropping it frees the slot.
struct Permit {
    gate: Arc<Gate>,
    id: u64,
    /// What its connection keeps up to date.
    activity: Arc<Activity>,
    /// Counts the connection open until the permit is dropped.
    metrics: PortMetrics,
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.gate.open).remove(&self.id);
        self.gate.closed.notify_all();
        self.metrics.closed();
    }
}

/// Which peers a listener serves.
#[derive(Debug, Clone, Default)]
pub enum Allow {
    #[default]
    Anyone,
    /// Peers in any of these ranges (a single address is a range of one).
    Only(Arc<[IpNet]>),
}

impl Allow {
    /// Only peers in `ranges`; anyone when there are none.
    pub fn only(ranges: &[IpNet]) -> Allow {
        if ranges.is_empty() {
            return Allow::Anyone;
        }
        Allow::Only(ranges.iter().map(|range| canonical_range(*range)).collect())
    }

    fn admits(&self, peer: &SocketAddr) -> bool {
        match self {
            Allow::Anyone => true,
            Allow::Only(ranges) => {
                let ip = peer.ip().to_canonical();
                ranges.iter().any(|range| range.contains(&ip))
            }
        }
    }
}

/// An IPv4 range written as IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) as
/// the IPv4 range it is: a listener on `::` sees IPv4 peers that way, and
/// [`Allow`] compares every peer in its IPv4 form.
fn canonical_range(range: IpNet) -> IpNet {
    match range {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .network()
            .to_ipv4_mapped()
            .and_then(|network| Ipv4Net::new(network, v6.prefix_len() - 96).ok())
            .map_or(range, IpNet::V4),
        _ => range,
    }
}

/// One port of a server: what it is called in log lines, and who may use it.
#[derive(Debug, Clone)]
pub struct Port {
    pub role: Arc<str>,
    pub allow: Allow,
    /// Whether a refused peer hears why, as a line of the course protocol
    /// (`Error: server busy`); a DNS peer would read it as a broken
    /// message, so the DNS port only closes.
    pub says_why: bool,
    /// Its connection counters (and, for its connections, its requests').
    pub metrics: PortMetrics,
}

/// Accepts connections on `listener` until `stopper` says stop, running
/// `handle` on a thread of its own for each one admitted. Returns once the
/// listener has stopped; [`wait_out_grace`] then winds the connections down.
pub fn serve<F>(port: &Port, listener: TcpListener, gate: &Arc<Gate>, stopper: &Stopper, handle: F)
where
    F: Fn(Connection) -> Served + Send + Sync + 'static,
{
    let handle = Arc::new(handle);
    if let Ok(addr) = listener.local_addr() {
        stopper.register(addr);
    }
    let role = &port.role;
    // A flood of refusals must not become a flood of log lines.
    let (failures, refusals) = (Throttle::new(), Throttle::new());
    let (busy, made_room) = (Throttle::new(), Throttle::new());
    while !stopper.is_stopping() {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly
                // rather than spin, and keep serving those already connected.
                failures.note(|more| log::warn!("{role}: accept failed: {err}{more}"));
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        if stopper.is_stopping() {
            break;
        }
        if !port.allow.admits(&peer) {
            port.metrics.connection(ConnectionEvent::Refused);
            refusals.note(|more| log::warn!("{role}: refused {peer}: not in --as-allow{more}"));
            refuse(&stream, port.says_why.then_some(&"not allowed"));
            continue;
        }
        if configure(&stream, gate.idle_timeout).is_err() {
            continue;
        }
        let socket = Socket::new(stream);
        let Some((permit, closed)) = gate.try_enter(&socket, PeerAddr(Some(peer)), &port.metrics)
        else {
            port.metrics.connection(ConnectionEvent::Busy);
            busy.note(|more| {
                log::warn!(
                    "{role}: busy: {peer} refused, {} connections open{more}",
                    gate.max_connections
                )
            });
            refuse(&socket, port.says_why.then_some(&"server busy"));
            continue;
        };
        if let Some(MadeRoom {
            peer: idle_peer,
            idle,
        }) = closed
        {
            port.metrics.connection(ConnectionEvent::Evicted);
            log::debug!(
                "{role}: closed {idle_peer}, idle for {:.1} s, to make room for {peer}",
                idle.as_secs_f64()
            );
            made_room.note(|more| {
                log::warn!(
                    "{role}: full ({} connections open): closed the connection idle longest \
                     to admit {peer}{more}",
                    gate.max_connections
                )
            });
        }
        let mut connection = Connection::new(socket);
        connection.watched_by(Arc::clone(&permit.activity));
        // A request, once begun, must be whole within the idle timeout:
        // trickled bytes do not extend it.
        connection
            .reader()
            .limit_each_line(gate.idle_timeout, LineClock::FromFirstByte);
        let handle = Arc::clone(&handle);
        let connection_role = Arc::clone(&port.role);
        let metrics = port.metrics.clone();
        log::debug!("{role}: {peer} connected");
        let spawned = thread::Builder::new()
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                let _permit = permit;
                let served = handle(connection);
                if matches!(&served.end, End::ReadFailed(err) if is_timeout(err)) {
                    metrics.connection(ConnectionEvent::IdleClosed);
                }
                log::debug!(
                    "{connection_role}: {peer} left after {} requests: {}",
                    served.requests,
                    served.end
                );
            });
        if let Err(err) = spawned {
            failures
                .note(|more| log::error!("{role}: cannot start a thread for {peer}: {err}{more}"));
        }
    }
}

/// Serves `GET /metrics` from `metrics` on `listener` until `stopper` says
/// stop, under `gate` (built with [`http::MAX_CONNECTIONS`] and
/// [`http::IDLE_TIMEOUT`]).
pub fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<ServerMetrics>,
    gate: &Arc<Gate>,
    stopper: &Stopper,
) {
    let port = Port {
        role: "metrics".into(),
        allow: Allow::Anyone,
        says_why: false,
        metrics: metrics.port("metrics", &[]),
    };
    serve(&port, listener, gate, stopper, move |mut connection| {
        // A request's head lines are bounded by the line limit; its whole
        // head by the scrape's own clock.
        connection
            .reader()
            .limit_each_line(http::HEAD_TIME, LineClock::FromFirstByte);
        connection.serve(Scrape::new(&metrics))
    });
}

/// Lets one kind of log line through at most once a second, and says in it
/// how many were held back since the last.
struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(1);

    fn new() -> Throttle {
        Throttle {
            state: Mutex::new((None, 0)),
        }
    }

    /// Calls `log` with what to append (the count held back), or counts
    /// this one as held back.
    fn note(&self, log: impl FnOnce(&str)) {
        let mut state = lock(&self.state);
        let (last, held_back) = &mut *state;
        let now = Instant::now();
        if last.is_some_and(|last| now.duration_since(last) < Self::EVERY) {
            *held_back += 1;
            return;
        }
        let more = match *held_back {
            0 => String::new(),
            n => format!(" (and {n} more like it not shown)"),
        };
        *last = Some(now);
        *held_back = 0;
        log(&more);
    }
}

/// After every listener of `gates` has stopped: lets the open connections
/// answer what they have read, for at most [`GRACE`] in all.
pub fn wait_out_grace(gates: &[&Gate]) {
    let deadline = Instant::now() + GRACE;
    for gate in gates {
        gate.drain(deadline);
    }
}

fn configure(stream: &TcpStream, idle_timeout: Duration) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(idle_timeout))?;
    stream.set_write_timeout(Some(idle_timeout))
}

/// Tells a peer why it is not served, if it is to hear it, then closes.
/// The write goes into an empty socket buffer, so it cannot block.
fn refuse(stream: &TcpStream, reason: Option<&dyn std::fmt::Display>) {
    if let Some(reason) = reason {
        let mut reply = Vec::new();
        wire::write_error(&mut reply, reason);
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let mut stream = stream;
        let _ = stream.write_all(&reply);
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admits(allow: &Allow, peer: &str) -> bool {
        allow.admits(&SocketAddr::new(peer.parse().unwrap(), 1))
    }

    #[test]
    fn allow_lists_take_ranges_and_either_form_of_an_ipv4_peer() {
        let ranges: Vec<IpNet> = [
            "10.0.0.0/8",
            "192.0.2.7/32",
            "::ffff:198.51.100.0/120",
            "fd00::/8",
        ]
        .iter()
        .map(|range| range.parse().unwrap())
        .collect();
        let allow = Allow::only(&ranges);
        for peer in [
            "10.1.2.3",
            "::ffff:10.9.9.9",
            "192.0.2.7",
            "198.51.100.20",
            "::ffff:198.51.100.1",
            "fd12::1",
        ] {
            assert!(admits(&allow, peer), "{peer}");
        }
        for peer in [
            "11.0.0.1",
            "192.0.2.8",
            "::ffff:192.0.2.8",
            "198.51.101.1",
            "fe80::1",
            "::1",
        ] {
            assert!(!admits(&allow, peer), "{peer}");
        }
        assert!(admits(&Allow::only(&[]), "203.0.113.1"));
    }
}

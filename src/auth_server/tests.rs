//! In-process tests of the roles and of the AS's shared links: each server
//! role runs on a thread of this test on port 0 and is stopped when the
//! test ends, so the link's state machine (reuse, a connection the TLDS
//! closed while idle, a TLDS that dies with digests outstanding, many
//! clients on one link) is tested directly.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::auth_server::{self, AuthServer, Health, SharedLink, TldsEndpoint, TldsLinks};
use crate::connection::Connection;
use crate::digest::hmac_md5;
use crate::key::Key;
use crate::server::Stopper;
use crate::table::Table;
use crate::tlds::{self, Listeners};
use crate::wire::AuthRequest;

use authdns_harness::{PATIENCE, slow_tlds};

/// A role running on a thread of this test; stopped and joined on drop.
struct InProcess {
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    fn start(run: impl FnOnce(&Stopper) + Send + 'static) -> InProcess {
        let stopper = Stopper::new();
        let thread = {
            let stopper = stopper.clone();
            thread::spawn(move || run(&stopper))
        };
        InProcess {
            stopper,
            thread: Some(thread),
        }
    }

    /// Stops the role and waits for `run` to return.
    fn stop(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the role's thread");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// A TLDS with `key`, serving in-process: (role, AS port, client port).
fn tlds(
    name: &'static str,
    key: &str,
    idle_timeout: Duration,
) -> (InProcess, SocketAddr, SocketAddr) {
    let listeners = Listeners {
        as_port: listener(),
        client_port: listener(),
        dns: None,
        metrics: None,
    };
    let (as_addr, client_addr) = (
        listeners.as_port.local_addr().unwrap(),
        listeners.client_port.local_addr().unwrap(),
    );
    let config = tlds::Config {
        name,
        records: tlds::Records::new(
            Table::parse(format!("{name}.example 10.0.0.1 A\n").as_bytes()).unwrap(),
            &Key::new(key),
        ),
        require_proof: false,
        as_allow: Vec::new(),
        max_connections: 64,
        max_as_connections: 64,
        idle_timeout,
        dns: None,
        metrics: crate::metrics::ServerMetrics::new(),
    };
    let role = InProcess::start(move |stopper| tlds::run(config, listeners, stopper).unwrap());
    (role, as_addr, client_addr)
}

fn endpoint(name: &'static str, as_addr: SocketAddr, client_port: u16) -> TldsEndpoint {
    TldsEndpoint::new(
        name,
        "127.0.0.1".to_owned(),
        as_addr.port(),
        client_port,
        vec![as_addr],
    )
}

/// One link to the TLDS whose AS port is `as_addr`.
fn link_to(as_addr: SocketAddr) -> TldsLinks {
    TldsLinks::new(
        endpoint("tlds1", as_addr, 1),
        1,
        Duration::from_secs(5),
        crate::metrics::TldsMetrics::default(),
    )
}

/// Challenges, one per line, as the AS forwards them.
fn burst(challenges: &[String]) -> Vec<u8> {
    challenges
        .iter()
        .flat_map(|c| format!("{c}\n").into_bytes())
        .collect()
}

/// Asks `link` to sign `challenges`: each digest, or the error's text.
fn ask(link: &SharedLink, challenges: &[String]) -> Vec<Result<String, String>> {
    link.ask(&burst(challenges), challenges.len())
        .into_iter()
        .map(|answer| answer.map(|d| d.to_string()).map_err(|e| e.to_string()))
        .collect()
}

fn signed(key: &str, challenges: &[String]) -> Vec<Result<String, String>> {
    challenges
        .iter()
        .map(|c| Ok(hmac_md5(key.as_bytes(), c.as_bytes()).to_string()))
        .collect()
}

fn challenges(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn a_link_is_reused_from_burst_to_burst() {
    let (_tlds, as_addr, _) = tlds("tlds1", "k1", Duration::from_secs(60));
    let links = link_to(as_addr);
    let link = links.pick();
    assert!(matches!(link.health(), Health::Untried));
    for round in 0..5 {
        let asked = challenges(&format!("round{round}-"), round * 7 + 1);
        assert_eq!(ask(link, &asked), signed("k1", &asked));
    }
    assert_eq!(link.connections_opened(), 1);
    assert!(matches!(link.health(), Health::Up { .. }));
}

// The TLDS closes a connection idle past its --idle-timeout; the next burst
// finds it closed before any answer and is sent again on a new connection.
#[test]
fn a_link_the_tlds_closed_while_idle_is_reopened_transparently() {
    let (_tlds, as_addr, _) = tlds("tlds1", "k1", Duration::from_millis(100));
    let links = link_to(as_addr);
    let link = links.pick();
    let first = challenges("a", 3);
    assert_eq!(ask(link, &first), signed("k1", &first));
    thread::sleep(Duration::from_millis(600));
    let second = challenges("b", 3);
    assert_eq!(ask(link, &second), signed("k1", &second));
    assert_eq!(link.connections_opened(), 2);
}

/// A TLDS stand-in: on its first connection it answers the first
/// challenge of the burst, then closes with the rest outstanding; on later
/// connections it signs everything with `key`.
fn dies_mid_burst(key: &'static str) -> SocketAddr {
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut writer = stream.try_clone().unwrap();
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let digest = hmac_md5(key.as_bytes(), line.as_bytes());
                if writer.write_all(format!("{digest}\n").as_bytes()).is_err() || n == 0 {
                    break;
                }
            }
        }
    });
    addr
}

#[test]
fn a_tlds_that_dies_with_digests_outstanding_fails_only_those() {
    let as_addr = dies_mid_burst("k1");
    let links = link_to(as_addr);
    let link = links.pick();
    let asked = challenges("c", 4);
    let answers = ask(link, &asked);
    assert_eq!(answers[0], signed("k1", &asked)[0]);
    let closed = format!(
        "tlds1 at 127.0.0.1:{} closed the connection",
        as_addr.port()
    );
    for answer in &answers[1..] {
        assert_eq!(answer, &Err(closed.clone()));
    }
    // A close is not a TLDS down: the next burst opens a new connection,
    // which answers.
    let again = challenges("d", 2);
    assert_eq!(ask(link, &again), signed("k1", &again));
    assert_eq!(link.connections_opened(), 2);
    assert!(matches!(link.health(), Health::Up { .. }));
}

// Many client threads write their bursts on one link at once; each gets
// exactly its own digests, in its own order.
#[test]
fn many_clients_share_one_link_and_their_answers_stay_apart() {
    let (_tlds, as_addr, _) = tlds("tlds1", "k1", Duration::from_secs(60));
    let links = link_to(as_addr);
    let link = links.pick();
    thread::scope(|scope| {
        for client in 0..16 {
            let link = &link;
            scope.spawn(move || {
                for round in 0..40 {
                    let asked =
                        challenges(&format!("c{client}r{round}x"), 1 + (client * round) % 37);
                    assert_eq!(ask(link, &asked), signed("k1", &asked));
                }
            });
        }
    });
    assert_eq!(link.connections_opened(), 1);
}

/// A TLDS stand-in that reads nothing until `gate` sends, then signs every
/// challenge with `key`: while it holds back, a large burst's write waits.
fn gated_tlds(key: &'static str, gate: std::sync::mpsc::Receiver<()>) -> SocketAddr {
    let listener = listener();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        if gate.recv_timeout(PATIENCE).is_err() {
            return;
        }
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut writer = std::io::BufWriter::new(stream.try_clone().unwrap());
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let challenge = line.strip_suffix(b"\n").unwrap_or(&line);
            let digest = hmac_md5(key.as_bytes(), challenge);
            if writer.write_all(format!("{digest}\n").as_bytes()).is_err() {
                return;
            }
            if reader.buffer().is_empty() && writer.flush().is_err() {
                return;
            }
            line.clear();
        }
    });
    addr
}

// One thread's burst is too large for the socket's buffers, and the TLDS
// reads nothing yet, so its write waits; meanwhile other client threads
// queue theirs. When the TLDS reads, every queued burst goes out in one
// more write, and each thread still gets exactly its own digests.
#[test]
fn bursts_queued_while_a_write_waits_go_out_together() {
    let (open_gate, gate) = std::sync::mpsc::channel();
    let links = link_to(gated_tlds("k1", gate));
    let link = links.pick();
    let metrics = link.metrics();
    // 16 MiB of challenges: more than loopback's socket buffers hold.
    let large: Vec<String> = (0..1024)
        .map(|i| format!("{i}{}", "x".repeat(16 * 1024)))
        .collect();
    let queued = 8;
    thread::scope(|scope| {
        let first = scope.spawn(|| ask(link, &large));
        authdns_harness::eventually(|| metrics.writes.get() == 1);
        let others: Vec<_> = (0..queued)
            .map(|client| {
                scope.spawn(move || {
                    let asked = challenges(&format!("c{client}x"), 1 + client);
                    (ask(link, &asked), signed("k1", &asked))
                })
            })
            .collect();
        authdns_harness::eventually(|| metrics.bursts.get() == 1 + queued as u64);
        open_gate.send(()).unwrap();
        assert!(first.join().unwrap() == signed("k1", &large));
        for other in others {
            let (answers, expected) = other.join().unwrap();
            assert_eq!(answers, expected);
        }
    });
    assert_eq!(metrics.writes.get(), 2, "one write for the queued bursts");
    assert_eq!(link.connections_opened(), 1);
}

// A write fails with no other burst queued behind it: its burst fails (as
// one worth sending again, since the connection was reused), and the
// writer stops there rather than open a connection nothing needs. The
// next burst opens one and is answered.
#[test]
fn a_failed_write_with_nothing_queued_opens_no_connection() {
    let (_tlds, as_addr, _) = tlds("tlds1", "k1", Duration::from_secs(60));
    let links = link_to(as_addr);
    let link = links.pick();
    let first = challenges("a", 2);
    assert_eq!(ask(link, &first), signed("k1", &first));
    link.shut_down_writes();
    let second = challenges("b", 2);
    let submitted = link.submit(&burst(&second), second.len()).unwrap();
    let outcome = link.wait(submitted);
    assert!(outcome.answers.iter().all(Result::is_err));
    assert!(outcome.worth_retrying);
    assert_eq!(link.connections_opened(), 1, "a connection nothing needed");
    let third = challenges("c", 2);
    assert_eq!(ask(link, &third), signed("k1", &third));
    assert_eq!(link.connections_opened(), 2);
}

/// An AS in-process over two in-process TLDS, with `links` links to each.
struct System {
    _auth: InProcess,
    server: Arc<AuthServer>,
    as_addr: SocketAddr,
    _tlds: [InProcess; 2],
}

fn system(links: usize) -> System {
    let (t1, a1, c1) = tlds("tlds1", "k1", Duration::from_secs(60));
    let (t2, a2, c2) = tlds("tlds2", "k2", Duration::from_secs(60));
    let config = auth_server::Config {
        tlds: [
            endpoint("tlds1", a1, c1.port()),
            endpoint("tlds2", a2, c2.port()),
        ],
        timeout: Duration::from_secs(5),
        links_per_tlds: links,
        max_connections: 256,
        idle_timeout: Duration::from_secs(60),
    };
    let server = Arc::new(AuthServer::new(
        config,
        &mut crate::metrics::ServerMetrics::new(),
    ));
    let listener = listener();
    let as_addr = listener.local_addr().unwrap();
    let auth = {
        let server = Arc::clone(&server);
        InProcess::start(move |stopper| server.serve(listener, stopper))
    };
    System {
        _auth: auth,
        server,
        as_addr,
        _tlds: [t1, t2],
    }
}

fn connect(addr: SocketAddr) -> Connection {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    Connection::new(stream)
}

/// Sends one `challenge digest` for `key` and reads the AS's reply.
fn authenticate(connection: &mut Connection, key: &str, challenge: &str) -> String {
    let digest = hmac_md5(key.as_bytes(), challenge.as_bytes());
    let reply = connection.request(|out| AuthRequest { challenge, digest }.write_to(out));
    String::from_utf8(reply.unwrap().unwrap().to_vec()).unwrap()
}

// Fifty client connections at once: each is told the right TLDS, and the AS
// holds exactly --tlds-links connections to each TLDS, not one per client.
#[test]
fn the_as_holds_its_links_not_a_connection_per_client() {
    for links in [1, 3] {
        let system = system(links);
        let [(_, c1), (_, c2)] = system
            .server
            .links()
            .each_ref()
            .map(|l| (l.endpoint().name, l.endpoint().client_port));
        thread::scope(|scope| {
            for client in 0..50 {
                let as_addr = system.as_addr;
                scope.spawn(move || {
                    let mut connection = connect(as_addr);
                    for round in 0..20 {
                        let (key, port) = if (client + round) % 2 == 0 {
                            ("k1", c1)
                        } else {
                            ("k2", c2)
                        };
                        let challenge = format!("c{client}-{round}");
                        let reply = authenticate(&mut connection, key, &challenge);
                        assert_eq!(reply, format!("127.0.0.1 {port}"));
                    }
                    let reply = authenticate(&mut connection, "nobody's", "x");
                    assert_eq!(reply, "No Match Found");
                });
            }
        });
        for tlds in system.server.links() {
            let opened: usize = tlds
                .links()
                .iter()
                .map(SharedLink::connections_opened)
                .sum();
            assert_eq!(opened, links, "{}", tlds.endpoint().name);
        }
    }
}

// A request the AS has read when it is told to stop is still answered;
// then the connection closes and `serve` returns.
#[test]
fn a_stopped_as_answers_what_it_has_read_then_returns() {
    let (a1, seen) = slow_tlds("k1", Duration::from_millis(300));
    let (a2, _) = slow_tlds("k2", Duration::from_millis(300));
    let config = auth_server::Config {
        tlds: [endpoint("tlds1", a1, 7001), endpoint("tlds2", a2, 7002)],
        timeout: Duration::from_secs(5),
        links_per_tlds: 1,
        max_connections: 16,
        idle_timeout: Duration::from_secs(60),
    };
    let listener = listener();
    let as_addr = listener.local_addr().unwrap();
    let mut auth = InProcess::start(move |stopper| {
        auth_server::run(config, listener, None, stopper).unwrap();
    });
    let mut connection = connect(as_addr);
    let digest = hmac_md5(b"k2", b"late");
    AuthRequest {
        challenge: "late",
        digest,
    }
    .write_to(connection.writer().queue());
    connection.writer().flush().unwrap();
    // The AS has read the request once a TLDS has its challenge.
    assert_eq!(seen.recv_timeout(PATIENCE).unwrap(), "late");
    let started = Instant::now();
    auth.stop();
    assert!(started.elapsed() < PATIENCE);
    let reply = connection.reader().read_line().unwrap().map(<[u8]>::to_vec);
    assert_eq!(reply.as_deref(), Some(&b"127.0.0.1 7002"[..]));
    assert!(matches!(connection.reader().read_line(), Ok(None)));
}

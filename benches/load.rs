//! `cargo bench --bench load`: 1,000 and 5,000 clients at once, from a load
//! driver that holds every connection in one process (a mio event loop).
//! Each simulated client behaves as the real client does at `--window 1`:
//! its own connection to the AS, one to each TLDS it is sent to, and one
//! query at a time (the AS's answer, then the TLDS's). The servers are the
//! release programs with their default flags, **each started in a session
//! of its own** (`setsid`), as from terminals of their own; the driver is
//! this process, in the bench's session.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a benchmark: a panic here is a failed benchmark"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use authdns_harness::{
    Server, hmac_md5_hex, proc_status, scratch_dir, servers_in_own_sessions, start_as, start_tlds,
};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Records per TLDS; queries alternate between the two, all hits.
const RECORDS: usize = 1000;

fn main() {
    let quick = std::env::var_os("AUTHDNS_BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let dir = scratch_dir("load-bench");
    let system = System::start(&dir);
    println!(
        "\nMany clients at window 1 from one event-loop process (mio); tlds1, tlds2 and \
         as_server each in a session of its own (setsid), the driver in the bench's session."
    );
    println!();
    println!(
        "| clients | lookups/s | p50 ms | p99 ms | resident MiB (tlds1 / tlds2 / as_server) | threads (same) |"
    );
    println!("|---:|---:|---:|---:|---|---|");
    let mut rates = Vec::new();
    let counts = [1000 / scale, 5000 / scale];
    for clients in counts {
        let run = drive(
            &system,
            clients,
            Duration::from_secs(if quick { 2 } else { 6 }),
        );
        println!(
            "| {clients} | {:.0} | {:.2} | {:.2} | {} | {} |",
            run.rate,
            run.p50_ms,
            run.p99_ms,
            run.servers.map(|(mib, _)| format!("{mib:.0}")).join(" / "),
            run.servers
                .map(|(_, threads)| threads.to_string())
                .join(" / "),
        );
        rates.push(run.rate);
    }
    if let ([few, many], [few_rate, many_rate]) = (counts, rates.as_slice()) {
        println!(
            "\n{many} clients' rate over {few}'s: {:.2} (target ≥ 0.8)",
            many_rate / few_rate
        );
    }
}

/// tlds1, tlds2 and the AS, each started with `setsid`.
struct System {
    tlds: [Server; 2],
    auth: Server,
    /// Each query: its line to the AS, and its hostname line.
    queries: Vec<(String, String)>,
}

impl System {
    fn start(dir: &std::path::Path) -> System {
        servers_in_own_sessions(true);
        let tlds = [1, 2].map(|n| {
            let table: String = (0..RECORDS)
                .map(|i| format!("host{i:06}.tlds{n}\t10.{n}.{}.{}\tA\n", i / 256, i % 256))
                .collect();
            let key = format!("key-tlds{n}\n");
            start_tlds(&format!("tlds{n}"), dir, "127.0.0.1", &table, &key, &[])
        });
        let [(a1, c1), (a2, c2)] = [&tlds[0], &tlds[1]].map(Server::tlds_ports);
        let auth = start_as(
            "127.0.0.1",
            ("127.0.0.1", a1, c1),
            ("127.0.0.1", a2, c2),
            &[],
        );
        servers_in_own_sessions(false);
        let queries = (0..RECORDS)
            .map(|i| {
                let n = i % 2 + 1;
                let challenge = format!("challenge{i:06}");
                let digest = hmac_md5_hex(format!("key-tlds{n}").as_bytes(), challenge.as_bytes());
                (
                    format!("{challenge} {digest}\n"),
                    format!("host{i:06}.tlds{n}\n"),
                )
            })
            .collect();
        System {
            tlds,
            auth,
            queries,
        }
    }
}

/// What one round measured.
struct Run {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// tlds1's, tlds2's and the AS's resident MiB and threads, read while
    /// every client was still connected.
    servers: [(f64, u64); 3],
}

/// Where a simulated client is in its query.
#[derive(Clone, Copy)]
enum Phase {
    /// Connecting: this many of its three connections are up.
    Connecting(u8),
    /// Waiting for the AS's answer.
    Auth,
    /// Waiting for the TLDS in this slot (1 or 2).
    Tlds(usize),
}

struct Client {
    /// Its AS connection, then one to each TLDS's client port.
    streams: [TcpStream; 3],
    up: [bool; 3],
    phase: Phase,
    next: usize,
    started: Instant,
    input: Vec<u8>,
}

/// Client `c`'s connection `slot` (0: the AS; 1, 2: the TLDS servers) is
/// token `3c + slot`.
fn token(c: usize, slot: usize) -> Token {
    Token(3 * c + slot)
}

/// Runs `clients` simulated clients for `length` once all are connected:
/// lookups per second, the 50th and 99th percentile of one lookup's time,
/// and the servers' memory and threads at the end.
fn drive(system: &System, clients: usize, length: Duration) -> Run {
    let mut poll = Poll::new().unwrap();
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let [(_, c1), (_, c2)] = [&system.tlds[0], &system.tlds[1]].map(Server::tlds_ports);
    let addrs = [local(system.auth.port()), local(c1), local(c2)];
    // The AS names a TLDS by its client port.
    let slot_of = |port: u16| if port == c1 { 1 } else { 2 };
    let mut all: Vec<Client> = (0..clients)
        .map(|c| {
            let mut streams = addrs.map(|addr| TcpStream::connect(addr).unwrap());
            for (slot, stream) in streams.iter_mut().enumerate() {
                poll.registry()
                    .register(
                        stream,
                        token(c, slot),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .unwrap();
            }
            Client {
                streams,
                up: [false; 3],
                phase: Phase::Connecting(0),
                next: c % system.queries.len(),
                started: Instant::now(),
                input: Vec::new(),
            }
        })
        .collect();
    let mut events = Events::with_capacity(4096);
    let mut latencies: Vec<Duration> = Vec::new();
    let mut connecting = clients;
    let mut buf = [0u8; 4096];
    let began = Instant::now();
    let mut measuring_from: Option<(Instant, usize)> = None;
    loop {
        match measuring_from {
            Some((from, _)) if from.elapsed() >= length => break,
            None => assert!(
                began.elapsed() < Duration::from_secs(60),
                "{connecting} clients still connecting after a minute"
            ),
            _ => {}
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for event in &events {
            let (c, slot) = (event.token().0 / 3, event.token().0 % 3);
            let client = &mut all[c];
            if let Phase::Connecting(up) = client.phase {
                let stream = &mut client.streams[slot];
                if !event.is_writable() || client.up[slot] || stream.peer_addr().is_err() {
                    continue;
                }
                client.up[slot] = true;
                stream.set_nodelay(true).unwrap();
                poll.registry()
                    .reregister(stream, event.token(), Interest::READABLE)
                    .unwrap();
                if up < 2 {
                    client.phase = Phase::Connecting(up + 1);
                    continue;
                }
                connecting -= 1;
                if connecting == 0 {
                    measuring_from = Some((Instant::now(), latencies.len()));
                }
                let (request, _) = &system.queries[client.next];
                client.started = Instant::now();
                client.streams[0].write_all(request.as_bytes()).unwrap();
                client.phase = Phase::Auth;
                continue;
            }
            if !event.is_readable() {
                continue;
            }
            let waiting_on = match client.phase {
                Phase::Tlds(slot) => slot,
                _ => 0,
            };
            let stream = &mut client.streams[waiting_on];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => panic!("a server closed a client's connection"),
                    Ok(n) => client.input.extend_from_slice(&buf[..n]),
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) => panic!("read: {err}"),
                }
            }
            let Some(end) = client.input.iter().position(|&b| b == b'\n') else {
                continue;
            };
            let line = String::from_utf8_lossy(&client.input[..end]).into_owned();
            client.input.drain(..=end);
            let (request, hostname) = &system.queries[client.next];
            match client.phase {
                Phase::Auth => {
                    let port: u16 = line
                        .rsplit(' ')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_else(|| panic!("the AS said {line:?} to {request:?}"));
                    let slot = slot_of(port);
                    client.streams[slot].write_all(hostname.as_bytes()).unwrap();
                    client.phase = Phase::Tlds(slot);
                }
                Phase::Tlds(_) => {
                    assert!(
                        line.starts_with(hostname.trim_end()),
                        "asked {hostname:?}, got {line:?}"
                    );
                    latencies.push(client.started.elapsed());
                    client.next = (client.next + 1) % system.queries.len();
                    let (request, _) = &system.queries[client.next];
                    client.started = Instant::now();
                    client.streams[0].write_all(request.as_bytes()).unwrap();
                    client.phase = Phase::Auth;
                }
                Phase::Connecting(_) => {}
            }
        }
    }
    let (from, first) = measuring_from.expect("every client connected");
    let elapsed = from.elapsed();
    let servers = [&system.tlds[0], &system.tlds[1], &system.auth].map(|server| {
        (
            proc_status(server.pid(), "VmRSS:") as f64 / 1024.0,
            proc_status(server.pid(), "Threads:"),
        )
    });
    let mut measured: Vec<Duration> = latencies[first..].to_vec();
    measured.sort();
    let at = |q: f64| {
        let index = ((measured.len() as f64 * q) as usize).min(measured.len().saturating_sub(1));
        measured.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Run {
        rate: measured.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        servers,
    }
}

//! The floor: the system's message pattern between separate processes that
//! do no work. Two echo servers stand in for the TLDS servers, a forwarder
//! stands in for the AS (it copies each burst of client lines to both
//! echoes, waits for both, and copies the burst back), and a client loop
//! runs in the benchmark process. The stand-in servers are the benchmark
//! binary itself, started again with a role argument; like the real
//! servers, each names its address in its first line on stderr.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Instant;

use authdns::digest::hmac_md5;

use crate::Measured;
use authdns_harness::Server;

pub const TLDS_ROLE: &str = "--floor-tlds";
pub const AS_ROLE: &str = "--floor-as";
/// A client loop as a process of its own: `--floor-client AS TLDS QUERIES`.
pub const CLIENT_ROLE: &str = "--floor-client";

/// Runs this process as a floor role, if its arguments name one.
pub fn run_role(args: &[String]) -> bool {
    match args.get(1).map(String::as_str) {
        Some(TLDS_ROLE) => echo_server(),
        Some(AS_ROLE) => {
            let port = |i: usize| args.get(i).and_then(|p| p.parse().ok()).unwrap_or(0);
            forwarder(port(2), port(3));
        }
        Some(CLIENT_ROLE) => {
            let number = |i: usize| args.get(i).and_then(|p| p.parse().ok()).unwrap_or(0);
            let (as_port, tlds_port) = (number(2) as u16, number(3) as u16);
            window_one(connect(as_port), connect(tlds_port), number(4));
        }
        _ => return false,
    }
    true
}

fn listen() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a floor server");
    eprintln!(
        "listening on {}",
        listener.local_addr().expect("local addr")
    );
    listener
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the floor");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Stands in for a TLDS: echoes every byte.
fn echo_server() {
    for stream in listen().incoming().flatten() {
        thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut buf = vec![0u8; 64 * 1024];
            let Ok(mut writer) = stream.try_clone() else {
                return;
            };
            let mut reader = stream;
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || writer.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
    }
}

/// Stands in for the AS: each chunk from a client goes to both echoes, and
/// back once both have echoed it.
fn forwarder(tlds1: u16, tlds2: u16) {
    for client in listen().incoming().flatten() {
        thread::spawn(move || {
            let (mut one, mut two) = (connect(tlds1), connect(tlds2));
            let _ = client.set_nodelay(true);
            let Ok(mut writer) = client.try_clone() else {
                return;
            };
            let mut reader = client;
            let mut buf = vec![0u8; 64 * 1024];
            let mut echo = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    return;
                }
                let chunk = &buf[..n];
                let ok = one.write_all(chunk).is_ok()
                    && two.write_all(chunk).is_ok()
                    && one.read_exact(&mut echo[..n]).is_ok()
                    && two.read_exact(&mut echo[..n]).is_ok()
                    && writer.write_all(chunk).is_ok();
                if !ok {
                    return;
                }
            }
        });
    }
}

/// The three floor servers, killed on drop.
pub struct FloorSystem {
    servers: Vec<Server>,
    as_port: u16,
    tlds_port: u16,
}

impl FloorSystem {
    pub fn start() -> FloorSystem {
        let me = std::env::current_exe().expect("the benchmark's own path");
        let role = |args: &[String]| {
            let mut command = Command::new(&me);
            command.args(args);
            Server::start_command("floor", command)
        };
        let t1 = role(&[TLDS_ROLE.to_owned()]);
        let t2 = role(&[TLDS_ROLE.to_owned()]);
        let (p1, p2) = (t1.port(), t2.port());
        let auth = role(&[AS_ROLE.to_owned(), p1.to_string(), p2.to_string()]);
        FloorSystem {
            as_port: auth.port(),
            tlds_port: p1,
            servers: vec![t1, t2, auth],
        }
    }

    fn connect(&self) -> (TcpStream, TcpStream) {
        (connect(self.as_port), connect(self.tlds_port))
    }

    /// One query at a time: AS round trip, then TLDS round trip.
    pub fn window_one(&self, queries: usize) -> Measured {
        let (auth, tlds) = self.connect();
        window_one(auth, tlds, queries)
    }

    /// The stand-ins' process ids.
    pub fn pids(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.pid().to_string()).collect()
    }

    /// The stand-ins' ports: the forwarder's, and one echo's.
    pub fn ports(&self) -> (u16, u16) {
        (self.as_port, self.tlds_port)
    }

    /// `clients` loops at once, each at window 1.
    pub fn many_clients(&self, clients: usize, each: usize) -> Measured {
        Measured::together(clients, || self.window_one(each))
    }

    /// `window` queries per burst on each hop.
    pub fn windowed(&self, window: usize, queries: usize) -> Measured {
        let (mut auth, mut tlds) = self.connect();
        let request = format!("challenge0001 {}\n", hmac_md5(b"k", b"challenge0001"));
        let requests = request.repeat(window);
        let hostnames = "host000001.example\n".repeat(window);
        let mut buf = vec![0u8; 64 * 1024];
        let started = Instant::now();
        let mut done = 0;
        while done < queries {
            auth.write_all(requests.as_bytes())
                .expect("write to the floor");
            read_lines(&mut auth, &mut buf, window);
            tlds.write_all(hostnames.as_bytes())
                .expect("write to the floor");
            read_lines(&mut tlds, &mut buf, window);
            done += window;
        }
        Measured {
            queries: done,
            elapsed: started.elapsed(),
            latencies: Vec::new(),
        }
    }
}

/// Reads until `lines` newlines have arrived (replies are whole lines).
fn read_lines(stream: &mut TcpStream, buf: &mut [u8], lines: usize) {
    let mut seen = 0;
    while seen < lines {
        let n = stream.read(buf).expect("read from the floor");
        assert!(n > 0, "floor server closed");
        seen += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
}

/// One query at a time on `auth` and `tlds`: AS round trip, then TLDS
/// round trip.
fn window_one(mut auth: TcpStream, mut tlds: TcpStream, queries: usize) -> Measured {
    let request = format!("challenge0001 {}\n", hmac_md5(b"k", b"challenge0001"));
    let hostname = b"host000001.example\n";
    let mut buf = [0u8; 256];
    let mut latencies = Vec::with_capacity(queries);
    let started = Instant::now();
    for _ in 0..queries {
        let one = Instant::now();
        auth.write_all(request.as_bytes())
            .expect("write to the floor");
        read_lines(&mut auth, &mut buf, 1);
        tlds.write_all(hostname).expect("write to the floor");
        read_lines(&mut tlds, &mut buf, 1);
        latencies.push(one.elapsed());
    }
    Measured {
        queries,
        elapsed: started.elapsed(),
        latencies,
    }
}

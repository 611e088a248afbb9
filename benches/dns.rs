//! `cargo bench --bench dns`: the TLDS's DNS port beside Knot DNS, both
//! serving the same 10,000 records under the same TSIG hmac-md5 key with
//! the same number of worker threads, driven by `dnsperf` (Debian's
//! `dnsperf` and `knot` packages; without them the bench says so and
//! prints no rows).
//!
//! Each server, and each dnsperf run, starts in a session of its own
//! (`setsid`), as from its own terminal: with autogroup scheduling the CPU
//! is shared between sessions first. The two servers alternate round by
//! round, so drift in this machine's speed falls on both. Beside each rate
//! is the server's CPU time per query over the same run, read from
//! `/proc`: one dnsperf process may cap both rates near the same figure,
//! and CPU per query shows which server does less work. dnsperf counts
//! every reply as answered, so its response codes are checked too: every
//! reply must be NOERROR or NXDOMAIN, in the proportion the queries ask.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a benchmark: a panic here is a failed benchmark"
)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authdns_harness::dns::base64;
use authdns_harness::{Server, cpu_seconds, in_own_session, servers_in_own_sessions, write_file};

const RECORDS: usize = 10_000;
/// Queries in dnsperf's input, one in ten for a name not in the zone.
const QUERIES: usize = 20_000;
/// Worker threads: the TLDS's UDP threads, and Knot's UDP and TCP workers.
const WORKERS: usize = 2;
/// dnsperf's sockets: Knot gives each UDP worker a socket of its own
/// (SO_REUSEPORT), which one dnsperf socket would pin to one worker.
const DNSPERF_CLIENTS: &str = "4";
/// A 16-byte key: its base64 ends in `==`, which dnsperf 2.10 requires.
const SECRET: &str = "benchKey12345678";
const ZONE: &str = "bench.";

fn main() {
    let quick = std::env::var_os("AUTHDNS_BENCH_QUICK").is_some();
    let (rounds, seconds) = if quick { (1, "1") } else { (3, "2") };
    for tool in ["dnsperf", "knotd", "setsid"] {
        if !installed(tool) {
            println!("\nDNS rows skipped: {tool} is not installed (Debian: dnsperf, knot).");
            return;
        }
    }
    let dir = authdns_harness::scratch_dir("dns-bench");
    let data = Data::write(&dir);
    let tlds = start_tlds(&dir, &data);
    let knot = Knot::start(&dir, &data);
    let servers = [
        ("Knot", knot.pid, knot.addr),
        ("authdns", tlds.pid(), tlds.addrs[2]),
    ];
    println!(
        "\nDNS port beside Knot DNS {}: dnsperf {} with TSIG hmac-md5, {RECORDS} records, \
         one query in ten NXDOMAIN; {WORKERS} UDP threads (Knot: {WORKERS} UDP and {WORKERS} \
         TCP workers); dnsperf -c {DNSPERF_CLIENTS}; every server and every dnsperf run in a \
         session of its own (setsid); {rounds} alternating rounds of {seconds} s, ranges over rounds.",
        version("knotd", "-V"),
        version("dnsperf", "-h"),
    );
    println!();
    println!("| measurement | Knot | authdns | ratio (medians) | target |");
    println!("|---|---:|---:|---:|---|");
    for (mode, in_flight) in [("udp", 64), ("udp", 1024), ("tcp", 64), ("tcp", 1024)] {
        let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (side, (_, pid, addr)) in servers.iter().enumerate() {
                runs[side].push(dnsperf(&data, *addr, *pid, mode, in_flight, seconds));
            }
        }
        let label = format!("{}, {in_flight} in flight", mode.to_uppercase());
        print_row(
            &format!("{label}: queries/s"),
            &runs,
            |run| run.rate,
            ">= Knot",
        );
        print_row(
            &format!("{label}: server CPU µs per query"),
            &runs,
            |run| run.cpu_us,
            "<= Knot",
        );
    }
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (side, (_, pid, addr)) in servers.iter().enumerate() {
            runs[side].push(dnsperf(&data, *addr, *pid, "udp", 1, seconds));
        }
    }
    print_row(
        "UDP, one signed query at a time: µs per query",
        &runs,
        |run| run.latency_us,
        "",
    );
}

/// A rate or a time as the table shows it: whole numbers, one decimal
/// under a hundred.
fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// What one dnsperf run measured.
struct Run {
    rate: f64,
    cpu_us: f64,
    latency_us: f64,
}

fn print_row(what: &str, runs: &[Vec<Run>; 2], value: impl Fn(&Run) -> f64, target: &str) {
    let cells: Vec<(String, f64)> = runs
        .iter()
        .map(|side| {
            let mut values: Vec<f64> = side.iter().map(&value).collect();
            values.sort_by(f64::total_cmp);
            let median = values[values.len() / 2];
            let range = if values.len() > 1 {
                format!("{}–{}", number(values[0]), number(values[values.len() - 1]))
            } else {
                number(median)
            };
            (range, median)
        })
        .collect();
    let ratio = cells[1].1 / cells[0].1;
    println!(
        "| {what} | {} | {} | {ratio:.2} | {target} |",
        cells[0].0, cells[1].0
    );
}

/// One dnsperf run against `addr`, the server being `pid`.
fn dnsperf(
    data: &Data,
    addr: SocketAddr,
    pid: u32,
    mode: &str,
    in_flight: usize,
    seconds: &str,
) -> Run {
    let cpu_before = cpu_seconds(&pid.to_string());
    let mut dnsperf = Command::new("dnsperf");
    dnsperf
        .arg("-s")
        .arg(addr.ip().to_string())
        .args(["-p", &addr.port().to_string(), "-m", mode, "-l", seconds])
        .args(["-q", &in_flight.to_string(), "-c", DNSPERF_CLIENTS])
        .arg("-y")
        .arg(format!("hmac-md5:tlds1:{}", data.secret_base64))
        .arg("-d")
        .arg(&data.queries);
    let output = in_own_session(&dnsperf)
        .stdin(Stdio::null())
        .output()
        .expect("run dnsperf");
    let cpu = cpu_seconds(&pid.to_string()) - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dnsperf failed: {text}");
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in dnsperf's output:\n{text}"))
    };
    let completed = field("Queries completed:");
    check_codes(&text);
    Run {
        rate: field("Queries per second:"),
        cpu_us: cpu * 1e6 / completed,
        latency_us: field("Average Latency (s):") * 1e6,
    }
}

/// Fails the bench unless every reply was NOERROR or NXDOMAIN, about one
/// in ten NXDOMAIN, as the queries ask.
fn check_codes(text: &str) {
    let codes = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Response codes:"))
        .unwrap_or_else(|| panic!("no response codes in dnsperf's output:\n{text}"));
    let mut counts = std::collections::HashMap::new();
    let words: Vec<&str> = codes.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    for pair in words.chunks(3) {
        if let [code, count, _] = pair {
            counts.insert(*code, count.parse::<f64>().unwrap());
        }
    }
    let (noerror, nxdomain) = (
        counts.remove("NOERROR").unwrap_or(0.0),
        counts.remove("NXDOMAIN").unwrap_or(0.0),
    );
    assert!(
        counts.is_empty(),
        "replies other than NOERROR/NXDOMAIN: {codes}"
    );
    let share = nxdomain / (noerror + nxdomain);
    assert!(
        (0.09..0.11).contains(&share),
        "NXDOMAIN share {share}: {codes}"
    );
}

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn version(tool: &str, flag: &str) -> String {
    let output = Command::new(tool).arg(flag).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    text.split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()) && word.contains('.'))
        .unwrap_or("?")
        .trim_end_matches(',')
        .to_owned()
}

/// What both servers and dnsperf read: the TLDS's table (its start
/// writes it with the key), Knot's zone file and dnsperf's queries.
struct Data {
    table: String,
    zone: PathBuf,
    queries: PathBuf,
    secret_base64: String,
}

impl Data {
    fn write(dir: &Path) -> Data {
        let address = |i: usize| format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255);
        let table: String = (0..RECORDS)
            .map(|i| format!("host{i}.{ZONE}\t{}\tA\n", address(i)))
            .collect();
        let mut zone = format!(
            "$ORIGIN {ZONE}\n$TTL 60\n@ SOA tlds1. hostmaster.{ZONE} 1 3600 600 604800 60\n\
             @ NS ns\nns A 127.0.0.1\n"
        );
        for i in 0..RECORDS {
            zone.push_str(&format!("host{i} A {}\n", address(i)));
        }
        // A fixed spread of names: every seventh record, and a miss in ten.
        let queries: String = (0..QUERIES)
            .map(|i| match i % 10 {
                9 => format!("missing{i}.{ZONE} A\n"),
                _ => format!("host{}.{ZONE} A\n", i * 7 % RECORDS),
            })
            .collect();
        Data {
            table,
            zone: write_file(dir, "bench.zone", &zone),
            queries: write_file(dir, "queries.txt", &queries),
            secret_base64: base64(SECRET.as_bytes()),
        }
    }
}

/// The release tlds1, in a session of its own.
fn start_tlds(dir: &Path, data: &Data) -> Server {
    servers_in_own_sessions(true);
    let threads = WORKERS.to_string();
    let flags = [
        "--dns-port",
        "0",
        "--dns-zone",
        ZONE,
        "--dns-threads",
        &threads,
    ];
    let tlds = authdns_harness::start_tlds(
        "tlds1",
        dir,
        "127.0.0.1",
        &data.table,
        &format!("{SECRET}\n"),
        &flags,
    );
    servers_in_own_sessions(false);
    tlds
}

/// knotd on a free loopback port, in a session of its own; killed on drop.
struct Knot {
    child: Child,
    pid: u32,
    addr: SocketAddr,
}

impl Knot {
    fn start(dir: &Path, data: &Data) -> Knot {
        let addr = free_port();
        let config = format!(
            "server:\n    listen: {ip}@{port}\n    udp-workers: {WORKERS}\n    \
             tcp-workers: {WORKERS}\n    background-workers: 1\n    rundir: {dir}\n\
             log:\n  - target: stderr\n    any: error\n\
             database:\n    storage: {dir}\n\
             key:\n  - id: tlds1\n    algorithm: hmac-md5\n    secret: {secret}\n\
             acl:\n  - id: signed\n    key: tlds1\n    action: query\n\
             zone:\n  - domain: {ZONE}\n    file: {zone}\n    acl: signed\n",
            ip = addr.ip(),
            port = addr.port(),
            dir = dir.display(),
            secret = data.secret_base64,
            zone = data.zone.display(),
        );
        let config = write_file(dir, "knot.conf", &config);
        // setsid execs knotd in place (a child is no group leader), so the
        // pid is knotd's own.
        let mut knotd = Command::new("knotd");
        knotd.arg("-c").arg(&config);
        let child = in_own_session(&knotd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start knotd");
        let pid = child.id();
        let knot = Knot { child, pid, addr };
        knot.wait_until_serving();
        knot
    }

    /// Asks for the zone's SOA until Knot answers, for at most 20 s.
    fn wait_until_serving(&self) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let query = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'b', b'e', b'n', b'c', b'h', 0, 0, 6, 0,
            1,
        ];
        let started = Instant::now();
        let mut buf = [0u8; 512];
        while started.elapsed() < Duration::from_secs(20) {
            socket.send_to(&query, self.addr).unwrap();
            if socket.recv(&mut buf).is_ok() {
                return;
            }
        }
        panic!("knotd did not answer on {}", self.addr);
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free for both TCP and UDP just now.
fn free_port() -> SocketAddr {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        if UdpSocket::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no port free for both TCP and UDP");
}

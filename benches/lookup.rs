//! `cargo bench`: the whole system on loopback beside the floor of its own
//! message pattern, measured in the same run, printed as one table.
//!
//! The floor is the same message pattern between separate processes that do
//! no work: echo servers standing in for the TLDS servers, a forwarder
//! standing in for the AS (it copies each burst of client lines to both
//! echoes, waits for both, and copies the burst back), and a client loop in
//! this process. The floor processes are this benchmark binary itself,
//! started again with a role argument.
//!
//! The project's servers are the release binaries; its client is the
//! library's pipeline (`authdns::client::resolve`) running in this process,
//! so that each query's latency can be observed (with `--window 1`, the gap
//! between consecutive results is one query's whole round trip).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use authdns::client::{self, Settings};
use authdns::digest::{Signer, hmac_md5, sign_many};
use authdns::table::Table;

const FLOOR_TLDS: &str = "--floor-tlds";
const FLOOR_AS: &str = "--floor-as";
const ROUNDS: usize = 3;

/// The middle of `runs` by `key`.
fn median_by<T>(mut runs: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let middle = runs.len() / 2;
    runs.swap_remove(middle)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(FLOOR_TLDS) => return floor_tlds(),
        Some(FLOOR_AS) => {
            let port = |i: usize| args.get(i).and_then(|p| p.parse().ok()).unwrap_or(0);
            return floor_as(port(2), port(3));
        }
        _ => {}
    }
    let quick = std::env::var_os("AUTHDNS_BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let mut rows = Vec::new();

    // The floor and the project alternate, three rounds of each, and each
    // figure is the median round: this machine's speed drifts, and
    // alternating keeps both sides of every ratio under the same drift.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let floor = FloorSystem::start();
    let system = ProjectSystem::start(&dir);
    let pids = system.pids();
    let (mut floor_w1, mut project_w1) = (Vec::new(), Vec::new());
    let (mut floor_wide, mut project_wide, mut cpu_us) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        floor_w1.push(floor.window_one(20_000 / scale));
        project_w1.push(system.run(1, 20_000 / scale));
        floor_wide.push(floor.windowed(1024, 2_000_000 / scale));
        // The query file is built and parsed before the CPU clocks start.
        let count = 2_000_000 / scale;
        let input = system.input(count);
        let jobs = client::jobs(&input);
        let cpu_before: Vec<f64> = pids.iter().map(|p| cpu_seconds(p)).collect();
        let wide = system.run_jobs(1024, &jobs[..count.min(jobs.len())]);
        cpu_us.push(
            pids.iter()
                .zip(&cpu_before)
                .map(|(p, before)| (cpu_seconds(p) - before) * 1e6 / wide.queries as f64)
                .collect::<Vec<f64>>(),
        );
        project_wide.push(wide);
    }
    drop(floor);
    let floor_w1 = median_by(floor_w1, Measured::mean_us);
    let project_w1 = median_by(project_w1, Measured::mean_us);
    let floor_wide = median_by(floor_wide, Measured::rate);
    let project_wide = median_by(project_wide, Measured::rate);
    let cpu_us: Vec<f64> = (0..pids.len())
        .map(|i| median_by(cpu_us.iter().map(|round| round[i]).collect(), |x| *x))
        .collect();
    let many = system.many_clients(64, 1000 / scale);
    drop(system);

    rows.push(row(
        "window 1: µs per query, mean",
        Some(floor_w1.mean_us()),
        project_w1.mean_us(),
        "≤ 1.3",
    ));
    rows.push(row(
        "window 1: µs per query, p99",
        Some(floor_w1.p99_us()),
        project_w1.p99_us(),
        "",
    ));
    rows.push(row(
        "window 1024: queries/s",
        Some(floor_wide.rate()),
        project_wide.rate(),
        "≥ 0.2",
    ));
    for (name, us) in ["client", "tlds1", "tlds2", "as_server"]
        .iter()
        .zip(&cpu_us)
    {
        rows.push(row(
            &format!("window 1024: CPU µs per query, {name}"),
            None,
            *us,
            "",
        ));
    }
    rows.push(row(
        "64 clients × window 1: queries/s",
        None,
        many.rate(),
        "",
    ));
    rows.push(row(
        "64 clients × window 1: µs p99",
        None,
        many.p99_us(),
        "",
    ));

    let (load_s, rss, file_size) = load_big_table(&dir, 1_000_000 / scale);
    rows.push(row(
        &format!("{}-record table: load, s", 1_000_000 / scale),
        None,
        load_s,
        "≤ 1 s",
    ));
    rows.push(row(
        "  resident memory, MiB (file size in floor column)",
        Some(file_size as f64 / 1048576.0),
        rss as f64 / 1048576.0,
        "< 3",
    ));
    rows.push(row("lookup, ns, 10 records", None, lookup_ns(10), ""));
    rows.push(row(
        &format!("lookup, ns, {} records", 1_000_000 / scale),
        None,
        lookup_ns(1_000_000 / scale),
        "",
    ));
    let (one, side_by_side) = hmac_ns();
    rows.push(row("HMAC-MD5, ns per digest, one at a time", None, one, ""));
    rows.push(row(
        "HMAC-MD5, ns per digest, a burst (sign_many)",
        None,
        side_by_side,
        "",
    ));
    print_table(&rows);
}

struct Row {
    what: String,
    floor: Option<f64>,
    project: f64,
    target: &'static str,
}

fn row(what: &str, floor: Option<f64>, project: f64, target: &'static str) -> Row {
    Row {
        what: what.to_owned(),
        floor,
        project,
        target,
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| measurement | floor | authdns | ratio | target |");
    println!("|---|---:|---:|---:|---|");
    for row in rows {
        let floor = row.floor.map_or("".to_owned(), number);
        let ratio = row
            .floor
            .filter(|f| *f > 0.0)
            .map_or("".to_owned(), |f| format!("{:.2}", row.project / f));
        println!(
            "| {} | {} | {} | {} | {} |",
            row.what,
            floor,
            number(row.project),
            ratio,
            row.target
        );
    }
}

fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// Latencies and wall time of one measured run.
struct Measured {
    queries: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.queries as f64 / self.elapsed.as_secs_f64()
    }

    fn mean_us(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.queries as f64
    }

    fn p99_us(&self) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = (sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1));
        sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `command` and returns it with the first line it printed on
/// `stream` (stdout for the floor roles, stderr for the real servers).
fn spawn_reporting(mut command: Command, on_stderr: bool) -> (Process, String) {
    if on_stderr {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    }
    let mut child = command.stdin(Stdio::null()).spawn().expect("spawn");
    let pipe: Box<dyn Read + Send> = if on_stderr {
        Box::new(child.stderr.take().unwrap())
    } else {
        Box::new(child.stdout.take().unwrap())
    };
    let mut reader = BufReader::new(pipe);
    let mut first = String::new();
    reader.read_line(&mut first).expect("start-up line");
    // Keep draining, so a chatty server never blocks on a full pipe.
    thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    (Process(child), first)
}

fn ports_in(line: &str) -> Vec<u16> {
    line.split_whitespace()
        .filter_map(|word| {
            word.trim_matches(|c: char| ",;()".contains(c))
                .parse::<std::net::SocketAddr>()
                .ok()
        })
        .map(|addr| addr.port())
        .collect()
}

// ---------------------------------------------------------------- the floor

fn floor_tlds() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap());
    for stream in listener.incoming().flatten() {
        thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut buf = vec![0u8; 64 * 1024];
            let mut writer = stream.try_clone().unwrap();
            let mut reader = stream;
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || writer.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
    }
}

fn floor_as(tlds1: u16, tlds2: u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap());
    for client in listener.incoming().flatten() {
        thread::spawn(move || {
            let connect = |port| {
                let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.set_nodelay(true).unwrap();
                stream
            };
            let (mut one, mut two) = (connect(tlds1), connect(tlds2));
            let _ = client.set_nodelay(true);
            let mut writer = client.try_clone().unwrap();
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

struct FloorSystem {
    _servers: Vec<Process>,
    as_port: u16,
    tlds_port: u16,
}

impl FloorSystem {
    fn start() -> FloorSystem {
        let me = std::env::current_exe().unwrap();
        let tlds = |_| {
            let mut command = Command::new(&me);
            command.arg(FLOOR_TLDS);
            spawn_reporting(command, false)
        };
        let (t1, l1) = tlds(1);
        let (t2, l2) = tlds(2);
        let (p1, p2) = (ports_in(&l1)[0], ports_in(&l2)[0]);
        let mut command = Command::new(&me);
        command.args([FLOOR_AS, &p1.to_string(), &p2.to_string()]);
        let (auth, l) = spawn_reporting(command, false);
        FloorSystem {
            _servers: vec![t1, t2, auth],
            as_port: ports_in(&l)[0],
            tlds_port: p1,
        }
    }

    fn connect(&self) -> (TcpStream, TcpStream) {
        let connect = |port| {
            let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.set_nodelay(true).unwrap();
            stream
        };
        (connect(self.as_port), connect(self.tlds_port))
    }

    /// One query at a time: AS round trip, then TLDS round trip.
    fn window_one(&self, queries: usize) -> Measured {
        let (mut auth, mut tlds) = self.connect();
        let request = format!("challenge0001 {}\n", hmac_md5(b"k", b"challenge0001"));
        let hostname = b"host000001.example\n";
        let mut buf = [0u8; 256];
        let mut latencies = Vec::with_capacity(queries);
        let started = Instant::now();
        for _ in 0..queries {
            let one = Instant::now();
            auth.write_all(request.as_bytes()).unwrap();
            read_lines(&mut auth, &mut buf, 1);
            tlds.write_all(hostname).unwrap();
            read_lines(&mut tlds, &mut buf, 1);
            latencies.push(one.elapsed());
        }
        Measured {
            queries,
            elapsed: started.elapsed(),
            latencies,
        }
    }

    /// `window` queries per burst on each hop.
    fn windowed(&self, window: usize, queries: usize) -> Measured {
        let (mut auth, mut tlds) = self.connect();
        let request = format!("challenge0001 {}\n", hmac_md5(b"k", b"challenge0001"));
        let requests = request.repeat(window);
        let hostnames = "host000001.example\n".repeat(window);
        let mut buf = vec![0u8; 64 * 1024];
        let started = Instant::now();
        let mut done = 0;
        while done < queries {
            auth.write_all(requests.as_bytes()).unwrap();
            read_lines(&mut auth, &mut buf, window);
            tlds.write_all(hostnames.as_bytes()).unwrap();
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
        let n = stream.read(buf).unwrap();
        assert!(n > 0, "floor server closed");
        seen += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
}

// -------------------------------------------------------------- the project

struct ProjectSystem {
    _servers: Vec<Process>,
    as_port: u16,
    queries: Vec<u8>,
}

fn release_server(name: &str, args: &[&str]) -> (Process, Vec<u16>) {
    let bin = match name {
        "tlds1" => env!("CARGO_BIN_EXE_tlds1"),
        "tlds2" => env!("CARGO_BIN_EXE_tlds2"),
        _ => env!("CARGO_BIN_EXE_as_server"),
    };
    let mut command = Command::new(bin);
    command.args(args);
    let (process, line) = spawn_reporting(command, true);
    let ports = ports_in(&line);
    assert!(!ports.is_empty(), "{name}: {line}");
    (process, ports)
}

/// A release TLDS on loopback, any free ports, with this table and key.
fn release_tlds(name: &str, table: &Path, key: &Path) -> (Process, Vec<u16>) {
    let (table, key) = (table.to_str().unwrap(), key.to_str().unwrap());
    let args = [
        "--bind",
        "127.0.0.1",
        "--as-port",
        "0",
        "--client-port",
        "0",
    ];
    release_server(
        name,
        &[&args[..], &["--table", table, "--key-file", key]].concat(),
    )
}

impl ProjectSystem {
    /// This process (the client), then tlds1, tlds2 and the AS.
    fn pids(&self) -> Vec<String> {
        std::iter::once("self".to_owned())
            .chain(self._servers.iter().map(|p| p.0.id().to_string()))
            .collect()
    }

    fn start(dir: &Path) -> ProjectSystem {
        let records = 1000;
        let mut servers = Vec::new();
        let mut tlds_ports = Vec::new();
        for (n, name) in ["tlds1", "tlds2"].into_iter().enumerate() {
            let table: String = (0..records)
                .map(|i| {
                    format!(
                        "host{i:06}.tlds{}\t10.{n}.{}.{}\tA\n",
                        n + 1,
                        i / 256,
                        i % 256
                    )
                })
                .collect();
            let table_path = dir.join(format!("{name}.tsv"));
            let key_path = dir.join(format!("{name}.key"));
            std::fs::write(&table_path, table).unwrap();
            std::fs::write(&key_path, format!("key-{name}\n")).unwrap();
            let (process, ports) = release_tlds(name, &table_path, &key_path);
            servers.push(process);
            tlds_ports.push((ports[0], ports[1]));
        }
        let p = |i: usize, a: bool| {
            let (as_port, client_port) = tlds_ports[i];
            if a { as_port } else { client_port }.to_string()
        };
        let (auth, ports) = release_server(
            "as_server",
            &[
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--tlds1-host",
                "127.0.0.1",
                "--tlds1-as-port",
                &p(0, true),
                "--tlds1-client-port",
                &p(0, false),
                "--tlds2-host",
                "127.0.0.1",
                "--tlds2-as-port",
                &p(1, true),
                "--tlds2-client-port",
                &p(1, false),
                "--max-connections",
                "4096",
            ],
        );
        servers.push(auth);
        // Queries alternate between the two TLDS servers, all hits.
        let queries: String = (0..records)
            .map(|i| {
                let n = i % 2 + 1;
                format!("key-tlds{n} challenge{i:06} host{i:06}.tlds{n}\n")
            })
            .collect();
        ProjectSystem {
            _servers: servers,
            as_port: ports[0],
            queries: queries.into_bytes(),
        }
    }

    /// Resolves `count` queries (the query set repeated) with one client.
    fn run(&self, window: usize, count: usize) -> Measured {
        let input = self.input(count);
        let jobs = client::jobs(&input);
        self.run_jobs(window, &jobs[..count.min(jobs.len())])
    }

    /// A query file of at least `count` lines (the query set repeated).
    fn input(&self, count: usize) -> Vec<u8> {
        let mut input = Vec::with_capacity(count * 50);
        while input.len() < count * 50 && !self.queries.is_empty() {
            input.extend_from_slice(&self.queries);
        }
        input
    }

    /// Resolves `jobs` with one client; only this is timed.
    fn run_jobs(&self, window: usize, jobs: &[client::Job<'_>]) -> Measured {
        let stream = TcpStream::connect(("127.0.0.1", self.as_port)).unwrap();
        stream.set_nodelay(true).unwrap();
        let settings = Settings {
            as_name: format!("127.0.0.1:{}", self.as_port),
            window,
            timeout: Duration::from_secs(5),
        };
        let mut latencies = Vec::with_capacity(jobs.len());
        let mut last = Instant::now();
        let started = last;
        let mut wrong = 0;
        // Latency is only meaningful (and only worth its clock reads) when
        // one query is in flight at a time.
        let timed = window == 1;
        let mut record = |line: &str| {
            if timed {
                let now = Instant::now();
                latencies.push(now - last);
                last = now;
            }
            wrong += usize::from(line.contains("Error"));
            Ok(())
        };
        let summary = client::resolve(jobs, Some(stream), &settings, &mut record).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(summary.failed, 0, "failed queries in the benchmark");
        assert_eq!(wrong, 0, "unexpected answers in the benchmark");
        Measured {
            queries: jobs.len(),
            elapsed,
            latencies,
        }
    }

    /// `clients` clients at once, each at window 1.
    fn many_clients(&self, clients: usize, each: usize) -> Measured {
        let started = Instant::now();
        let runs: Vec<Measured> = thread::scope(|scope| {
            let handles: Vec<_> = (0..clients)
                .map(|_| scope.spawn(|| self.run(1, each)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let elapsed = started.elapsed();
        Measured {
            queries: runs.iter().map(|r| r.queries).sum(),
            elapsed,
            latencies: runs.into_iter().flat_map(|r| r.latencies).collect(),
        }
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

// ------------------------------------------------------------------ tables

fn big_table_text(records: usize) -> String {
    (0..records)
        .map(|i| {
            format!(
                "host{i:07}.example.org\t10.{}.{}.{}\tA\n",
                i >> 16 & 255,
                i >> 8 & 255,
                i & 255
            )
        })
        .collect()
}

/// Starts a TLDS on a table of `records` records: (load seconds, resident
/// bytes after start, file bytes).
fn load_big_table(dir: &Path, records: usize) -> (f64, u64, u64) {
    let table: PathBuf = dir.join("big.tsv");
    std::fs::write(&table, big_table_text(records)).unwrap();
    let key = dir.join("big.key");
    std::fs::write(&key, "k\n").unwrap();
    let file_size = std::fs::metadata(&table).unwrap().len();
    let started = Instant::now();
    let (process, _) = release_tlds("tlds1", &table, &key);
    let load = started.elapsed().as_secs_f64();
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", process.0.id())).unwrap_or_default();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (load, rss_kib * 1024, file_size)
}

/// Mean nanoseconds per lookup of names present in a table of `records`.
fn lookup_ns(records: usize) -> f64 {
    let table = Table::parse(big_table_text(records).as_bytes()).unwrap();
    let names: Vec<String> = (0..records.min(100_000))
        .map(|i| format!("HOST{:07}.example.org", (i * 7919) % records))
        .collect();
    let rounds = 2_000_000 / names.len().max(1);
    let started = Instant::now();
    let mut found = 0;
    for _ in 0..rounds.max(1) {
        for name in &names {
            found += usize::from(table.lookup(std::hint::black_box(name)).is_some());
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(found, rounds.max(1) * names.len());
    elapsed.as_nanos() as f64 / found as f64
}

/// Nanoseconds per HMAC-MD5 of a 15-byte challenge: one at a time, and in a
/// burst of 1024 through `sign_many` (eight side by side).
fn hmac_ns() -> (f64, f64) {
    let signer = Signer::new(b"key-tlds1");
    let challenges: Vec<String> = (0..1024).map(|i| format!("challenge{i:06}")).collect();
    let work: Vec<(&Signer, &[u8])> = challenges
        .iter()
        .map(|challenge| (&signer, challenge.as_bytes()))
        .collect();
    let rounds = 1000;
    let mut check = 0u64;
    let started = Instant::now();
    for _ in 0..rounds {
        for (signer, challenge) in &work {
            check += u64::from(
                signer
                    .sign(std::hint::black_box(challenge))
                    .to_hex()
                    .as_str()
                    .len() as u8,
            );
        }
    }
    let one = started.elapsed();
    let started = Instant::now();
    for _ in 0..rounds {
        sign_many(std::hint::black_box(&work), |digest| {
            check += u64::from(digest.to_hex().as_str().len() as u8);
        });
    }
    let burst = started.elapsed();
    let digests = (rounds * work.len()) as f64;
    assert_eq!(check, 2 * 32 * digests as u64);
    (
        one.as_nanos() as f64 / digests,
        burst.as_nanos() as f64 / digests,
    )
}

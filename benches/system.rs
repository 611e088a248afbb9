//! `cargo bench --bench system`: the whole system on loopback beside the
//! floor of its own message pattern (`floor.rs`), measured in the same run,
//! printed as one table.
//!
//! The project's servers are the release binaries, started through the
//! tests' own process harness; its client is the library's
//! (`authdns::client::resolve`) running in this process, so that each
//! query's latency can be observed (with `--window 1`, the gap between
//! consecutive results is one query's whole round trip). The client's memory
//! is measured on the release `client` binary itself.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a benchmark: a panic here is a failed benchmark"
)]

mod floor;
mod support;

use std::io::Cursor;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use authdns::client::{self, QueryLines, Settings};

use authdns_harness::{Server, cpu_seconds, proc_status, start_as, start_tlds};
use floor::FloorSystem;
use support::{Row, big_table_text, print_table, ratio_row, row};

/// Rounds of each comparison; this machine's speed drifts by 10-20% from
/// minute to minute, and five alternating rounds keep a ratio steadier than
/// three did.
const ROUNDS: usize = 5;

/// Slices of the window-1 comparison, floor and project in turn.
const WINDOW_ONE_SLICES: usize = 20;

/// Latencies and wall time of one measured run.
pub struct Measured {
    pub queries: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.queries as f64 / self.elapsed.as_secs_f64()
    }

    fn mean_us(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e6 / self.queries as f64
    }

    /// Several runs as one: their queries, time and latencies together.
    fn sum(runs: Vec<Measured>) -> Measured {
        Measured {
            queries: runs.iter().map(|r| r.queries).sum(),
            elapsed: runs.iter().map(|r| r.elapsed).sum(),
            latencies: runs.into_iter().flat_map(|r| r.latencies).collect(),
        }
    }

    fn p99_us(&self) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = (sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1));
        sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }

    /// `clients` runs of `run` at once, as one measurement.
    pub fn together(clients: usize, run: impl Fn() -> Measured + Sync) -> Measured {
        let started = Instant::now();
        let runs: Vec<Measured> = thread::scope(|scope| {
            let handles: Vec<_> = (0..clients)
                .map(|_| {
                    thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn_scoped(scope, &run)
                        .expect("start a client thread")
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a client thread"))
                .collect()
        });
        let elapsed = started.elapsed();
        Measured {
            queries: runs.iter().map(|r| r.queries).sum(),
            elapsed,
            latencies: runs.into_iter().flat_map(|r| r.latencies).collect(),
        }
    }
}

/// The middle of `runs` by `key`.
fn median_by<T>(mut runs: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let middle = runs.len() / 2;
    runs.swap_remove(middle)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if floor::run_role(&args) {
        return;
    }
    let quick = std::env::var_os("AUTHDNS_BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let dir = authdns_harness::scratch_dir("bench");
    let mut rows = Vec::new();
    if std::env::var_os("AUTHDNS_BENCH_CLIENTS_ONLY").is_some() {
        // For A/B runs of one server build against another (with
        // AUTHDNS_BIN_AS_SERVER and the like): the project's rows at 1, 64
        // and 1,000 clients, nothing else.
        let system = ProjectSystem::start(&dir, Extras::None);
        let one = system.run(1, 20_000 / scale);
        rows.push(row(
            "1 client × window 1: µs per query, mean",
            None,
            one.mean_us(),
            "",
        ));
        let many = system.many_clients(64, 500 / scale);
        rows.push(row(
            "64 clients × window 1: queries/s",
            None,
            many.rate(),
            "",
        ));
        thousand_client_rows(&system, scale, &mut rows);
        print_table(&rows);
        return;
    }
    // One group of rows alone, for iterating on its costs.
    match std::env::var("AUTHDNS_BENCH_ONLY").as_deref() {
        Ok("processes") => process_rows(&dir, scale, &mut rows),
        Ok("idle") => idle_connection_rows(&dir, scale, &mut rows),
        Ok(other) => panic!("AUTHDNS_BENCH_ONLY is processes or idle, not {other}"),
        Err(_) => {}
    }
    if !rows.is_empty() {
        print_table(&rows);
        return;
    }
    {
        let floor = FloorSystem::start();
        let system = ProjectSystem::start(&dir, Extras::None);
        one_client_rows(&floor, &system, scale, &mut rows);
        let proofs = ProjectSystem::start(&dir, Extras::Proofs);
        beside_rows("proofs on", &system, &proofs, scale, &mut rows);
        drop(proofs);
        let metrics = ProjectSystem::start(&dir, Extras::Metrics);
        beside_rows("--metrics on", &system, &metrics, scale, &mut rows);
        drop(metrics);
        many_client_rows(&floor, &system, scale, &mut rows);
    }
    {
        let system = ProjectSystem::start(&dir, Extras::None);
        thousand_client_rows(&system, scale, &mut rows);
        client_memory_rows(&system, &dir, scale, &mut rows);
    }
    process_rows(&dir, scale, &mut rows);
    idle_connection_rows(&dir, scale, &mut rows);
    table_rows(&dir, scale, &mut rows);
    print_table(&rows);
}

/// One client at window 1 and at window 1024. Floor and project alternate,
/// since this machine's speed drifts and alternating keeps both sides of
/// every ratio under the same drift: at window 1 in [`WINDOW_ONE_SLICES`]
/// slices, measured together; at window 1024 for [`ROUNDS`] rounds, each
/// figure the median round.
fn one_client_rows(floor: &FloorSystem, system: &ProjectSystem, scale: usize, rows: &mut Vec<Row>) {
    let pids = system.pids();
    // Window 1 alternates in slices of a thousand queries, so that drift
    // in this machine's speed, which would otherwise land on one side of
    // the ratio, lands on both alike.
    let (mut floor_w1, mut project_w1) = (Vec::new(), Vec::new());
    for _ in 0..WINDOW_ONE_SLICES {
        floor_w1.push(floor.window_one(20_000 / scale / WINDOW_ONE_SLICES));
        project_w1.push(system.run(1, 20_000 / scale / WINDOW_ONE_SLICES));
    }
    let (floor_w1, project_w1) = (Measured::sum(floor_w1), Measured::sum(project_w1));
    let (mut floor_wide, mut project_wide, mut cpu_us) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        floor_wide.push(floor.windowed(1024, 2_000_000 / scale));
        // The query file is built before the CPU clocks start.
        let input = system.input(2_000_000 / scale);
        let cpu_before: Vec<f64> = pids.iter().map(|p| cpu_seconds(p)).collect();
        let wide = system.run_input(1024, input);
        cpu_us.push(
            pids.iter()
                .zip(&cpu_before)
                .map(|(p, before)| (cpu_seconds(p) - before) * 1e6 / wide.queries as f64)
                .collect::<Vec<f64>>(),
        );
        project_wide.push(wide);
    }
    let floor_wide = median_by(floor_wide, Measured::rate);
    let project_wide = median_by(project_wide, Measured::rate);
    rows.push(row(
        "window 1: µs per query, mean",
        Some(floor_w1.mean_us()),
        project_w1.mean_us(),
        "≤ 1.1",
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
        "≥ 0.3",
    ));
    for (i, name) in ["client", "tlds1", "tlds2", "as_server"].iter().enumerate() {
        let us = median_by(cpu_us.iter().map(|round| round[i]).collect(), |x| *x);
        rows.push(row(
            &format!("window 1024: CPU µs per query, {name}"),
            None,
            us,
            "",
        ));
    }
}

/// One client at window 1 and at window 1024 on a system with `what` (proofs
/// of key: one extra line per connection, none per query; or the metrics
/// served, whose counting is always on), beside the plain system (in the
/// floor column): they should be within noise.
fn beside_rows(
    what: &str,
    plain: &ProjectSystem,
    with: &ProjectSystem,
    scale: usize,
    rows: &mut Vec<Row>,
) {
    let (mut plain_w1, mut with_w1) = (Vec::new(), Vec::new());
    let (mut plain_wide, mut with_wide) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        plain_w1.push(plain.run(1, 20_000 / scale));
        with_w1.push(with.run(1, 20_000 / scale));
        plain_wide.push(plain.run(1024, 1_000_000 / scale));
        with_wide.push(with.run(1024, 1_000_000 / scale));
    }
    let [plain_w1, with_w1] = [plain_w1, with_w1].map(|runs| median_by(runs, Measured::mean_us));
    let [plain_wide, with_wide] =
        [plain_wide, with_wide].map(|runs| median_by(runs, Measured::rate));
    rows.push(row(
        &format!("{what} (off in floor column), window 1: µs per query"),
        Some(plain_w1.mean_us()),
        with_w1.mean_us(),
        "≈ 1",
    ));
    rows.push(row(
        &format!("{what} (off in floor column), window 1024: queries/s"),
        Some(plain_wide.rate()),
        with_wide.rate(),
        "≈ 1",
    ));
}

/// 64 clients at once, each at window 1, beside 64 floor loops.
fn many_client_rows(
    floor: &FloorSystem,
    system: &ProjectSystem,
    scale: usize,
    rows: &mut Vec<Row>,
) {
    let each = 500 / scale;
    let (mut floor_runs, mut project_runs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        floor_runs.push(floor.many_clients(64, each));
        project_runs.push(system.many_clients(64, each));
    }
    let floor_many = median_by(floor_runs, Measured::rate);
    let many = median_by(project_runs, Measured::rate);
    rows.push(row(
        "64 clients × window 1: queries/s",
        Some(floor_many.rate()),
        many.rate(),
        "≥ 0.9",
    ));
    rows.push(row(
        "64 clients × window 1: µs p99",
        Some(floor_many.p99_us()),
        many.p99_us(),
        "",
    ));
}

/// 64 client processes at window 1 beside 64 floor client processes, every
/// server, stand-in and client in a session of its own (`setsid`), as
/// from terminals of their own: lookups per second, and the CPU of the
/// whole machine per lookup (every process's, the clients' included).
fn process_rows(dir: &Path, scale: usize, rows: &mut Vec<Row>) {
    let each = 2000 / scale;
    authdns_harness::servers_in_own_sessions(true);
    let floor = FloorSystem::start();
    let system = ProjectSystem::start(dir, Extras::None);
    authdns_harness::servers_in_own_sessions(false);
    let input = authdns_harness::write_file(
        dir,
        "processes.txt",
        &String::from_utf8(system.input(each)).unwrap(),
    );
    let me = std::env::current_exe().unwrap();
    let (floor_as, floor_tlds) = floor.ports();
    let floor_client = |_: usize| {
        let mut command = Command::new(&me);
        command.args([
            floor::CLIENT_ROLE.to_owned(),
            floor_as.to_string(),
            floor_tlds.to_string(),
            each.to_string(),
        ]);
        command
    };
    let as_port = system.auth.port().to_string();
    let project_client = |i: usize| {
        let mut command = Command::new(authdns_harness::bin("client"));
        command
            .args(["--as-host", "127.0.0.1", "--as-port", &as_port])
            .args(["--window", "1", "-q", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(dir.join(format!("processes-{i}.txt")));
        command
    };
    let floor_pids = floor.pids();
    let project_pids = system.pids()[1..].to_vec();
    let (mut floor_runs, mut project_runs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        floor_runs.push(run_processes(64, each, &floor_client, &floor_pids));
        project_runs.push(run_processes(64, each, &project_client, &project_pids));
        // Each round on stderr, so the table's medians can be read as ranges.
        eprintln!(
            "64 processes, one round: floor {:?}, authdns {:?}",
            floor_runs.last(),
            project_runs.last()
        );
    }
    type Key = fn(&Processes) -> f64;
    let median = |runs: &Vec<Processes>, key: Key| key(&median_by(runs.clone(), key));
    let measured: [(&str, Key, &'static str); 4] = [
        (
            "64 client processes × window 1 (own sessions): lookups/s",
            |r| r.rate,
            "≥ 0.9",
        ),
        (
            "64 client processes: machine CPU µs per lookup, all processes",
            |r| r.machine_cpu_us,
            "≤ 1.1",
        ),
        (
            "64 client processes: servers' CPU µs per lookup (AS, TLDS servers)",
            |r| r.servers_cpu_us,
            "",
        ),
        (
            "64 client processes: the rest's CPU µs per lookup (clients, kernel)",
            |r| r.machine_cpu_us - r.servers_cpu_us,
            "",
        ),
    ];
    for (what, key, target) in measured {
        let [floor, project] = [&floor_runs, &project_runs].map(|runs| median(runs, key));
        rows.push(row(what, Some(floor), project, target));
    }
    // Each round's project run beside the floor run just before it: the
    // machine's speed drifts between rounds, so these pairs say more than
    // a ratio of medians taken from different rounds.
    let paired = [
        ("lookups/s", measured[0].1, measured[0].2),
        ("machine CPU per lookup", measured[1].1, measured[1].2),
    ];
    for (what, key, target) in paired {
        let mut ratios: Vec<f64> = floor_runs
            .iter()
            .zip(&project_runs)
            .map(|(floor, project)| key(project) / key(floor))
            .collect();
        ratios.sort_by(f64::total_cmp);
        let (Some(&low), Some(&high)) = (ratios.first(), ratios.last()) else {
            continue;
        };
        let what = format!(
            "64 client processes: {what}, each round's ratio to the floor's, median \
             (rounds {low:.2}–{high:.2})"
        );
        rows.push(ratio_row(&what, median_by(ratios, |r| *r), target));
    }
}

/// What one run of [`run_processes`] measured.
#[derive(Debug, Clone, Copy)]
struct Processes {
    rate: f64,
    /// Every core's busy time per lookup, every process's and the kernel's.
    machine_cpu_us: f64,
    /// The servers' own CPU time (user and system) per lookup.
    servers_cpu_us: f64,
}

/// Runs `count` processes of `command(i)` at once, each in a session of
/// its own, each making `each` lookups, from the first start to the last
/// exit; `servers` are the pids of the servers they talk to.
fn run_processes(
    count: usize,
    each: usize,
    command: &dyn Fn(usize) -> Command,
    servers: &[String],
) -> Processes {
    let servers_cpu = || servers.iter().map(|pid| cpu_seconds(pid)).sum::<f64>();
    let busy_before = machine_busy_seconds();
    let servers_before = servers_cpu();
    let started = Instant::now();
    let mut children: Vec<std::process::Child> = (0..count)
        .map(|i| {
            authdns_harness::in_own_session(&command(i))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start a client process")
        })
        .collect();
    for child in &mut children {
        let status = child.wait().expect("wait for a client process");
        assert!(status.success(), "a client process failed: {status}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let busy = machine_busy_seconds() - busy_before;
    let servers_busy = servers_cpu() - servers_before;
    let lookups = (count * each) as f64;
    Processes {
        rate: lookups / elapsed,
        machine_cpu_us: busy * 1e6 / lookups,
        servers_cpu_us: servers_busy * 1e6 / lookups,
    }
}

/// CPU seconds every core has spent busy since boot (`/proc/stat`: user,
/// nice, system, irq, softirq and steal).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum::<f64>()
        / 100.0
}

/// 1,000 clients connected at once, each at window 1, and how many
/// connections the AS holds to each TLDS meanwhile.
fn thousand_client_rows(system: &ProjectSystem, scale: usize, rows: &mut Vec<Row>) {
    let clients = 1000;
    let each = (100 / scale).max(5);
    let done = AtomicBool::new(false);
    let most_links = AtomicUsize::new(0);
    let run = thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let links = system.as_links_per_tlds();
                most_links.fetch_max(links, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(50));
            }
        });
        let run = system.many_clients(clients, each);
        done.store(true, Ordering::Relaxed);
        run
    });
    rows.push(row(
        "1000 clients × window 1: queries/s",
        None,
        run.rate(),
        "",
    ));
    rows.push(row(
        "1000 clients × window 1: µs p99",
        None,
        run.p99_us(),
        "",
    ));
    rows.push(row(
        "1000 clients: connections from the AS to each TLDS, most",
        None,
        most_links.load(Ordering::Relaxed) as f64,
        "= --tlds-links (2)",
    ));
}

/// 5,000 connections each served one request and then left idle, on a
/// TLDS's client port and on the AS's: each server's resident memory per
/// connection (the growth over the connections' count) and its threads.
fn idle_connection_rows(dir: &Path, scale: usize, rows: &mut Vec<Row>) {
    let count = 5000 / scale;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let room = (count + 100).to_string();
    let flags = ["--max-connections", room.as_str()];
    let table = "idle.example\t10.0.0.1\tA\n";
    let tlds1 = start_tlds("tlds1", dir, "127.0.0.1", table, "k1\n", &flags);
    let tlds2 = start_tlds("tlds2", dir, "127.0.0.1", table, "k2\n", &flags);
    let [(a1, c1), (a2, c2)] = [&tlds1, &tlds2].map(Server::tlds_ports);
    let auth = start_as(
        "127.0.0.1",
        ("127.0.0.1", a1, c1),
        ("127.0.0.1", a2, c2),
        &flags,
    );
    let idle = |server: &Server, port: u16, line: &dyn Fn(usize) -> String| {
        let before = proc_status(server.pid(), "VmRSS:");
        let connections: Vec<TcpStream> = (0..count)
            .map(|i| {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                std::io::Write::write_all(&mut stream, line(i).as_bytes()).unwrap();
                stream
            })
            .collect();
        for stream in &connections {
            let mut reply = [0u8; 256];
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let read = std::io::Read::read(&mut &*stream, &mut reply).unwrap();
            assert!(read > 0, "no reply on an idle-to-be connection");
        }
        let after = proc_status(server.pid(), "VmRSS:");
        let threads = proc_status(server.pid(), "Threads:");
        drop(connections);
        (after.saturating_sub(before) as f64 / count as f64, threads)
    };
    let (tlds_kib, tlds_threads) = idle(&tlds1, c1, &|_| "idle.example\n".to_owned());
    let (as_kib, as_threads) = idle(&auth, auth.port(), &|i| {
        let challenge = format!("idle{i}");
        format!(
            "{challenge} {}\n",
            authdns_harness::hmac_md5_hex(b"k1", challenge.as_bytes())
        )
    });
    for (name, kib, threads) in [
        ("tlds1", tlds_kib, tlds_threads),
        ("as_server", as_kib, as_threads),
    ] {
        rows.push(row(
            &format!("{count} idle connections: {name} resident KiB per connection"),
            None,
            kib,
            "≤ 16",
        ));
        rows.push(row(
            &format!("{count} idle connections: {name} threads"),
            None,
            threads as f64,
            "",
        ));
    }
}

/// The release client on 1M and 5M queries: peak resident memory and time.
fn client_memory_rows(system: &ProjectSystem, dir: &Path, scale: usize, rows: &mut Vec<Row>) {
    for millions in [1, 5] {
        let count = millions * 1_000_000 / scale;
        let (peak, seconds) = system.client_process(dir, count);
        rows.push(row(
            &format!("client, {count} queries: peak resident memory, MiB"),
            None,
            peak as f64 / 1048576.0,
            "< 64",
        ));
        rows.push(row(
            &format!("client, {count} queries: seconds"),
            None,
            seconds,
            "",
        ));
    }
}

/// Loading a big table: seconds, and resident memory beside the file size.
fn table_rows(dir: &Path, scale: usize, rows: &mut Vec<Row>) {
    let records = 1_000_000 / scale;
    let (load_s, rss, file_size) = load_big_table(dir, records);
    rows.push(row(
        &format!("{records}-record table: load, s"),
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
}

// -------------------------------------------------------------- the project

struct ProjectSystem {
    tlds: [Server; 2],
    auth: Server,
    queries: Vec<u8>,
    proofs: bool,
}

/// What a [`ProjectSystem`] runs with beyond the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extras {
    None,
    /// The TLDS servers require a proof of key, and the client gives one.
    Proofs,
    /// Every server serves `--metrics`.
    Metrics,
}

impl ProjectSystem {
    /// tlds1, tlds2 and the AS, release builds, on loopback, with `extras`.
    fn start(dir: &Path, extras: Extras) -> ProjectSystem {
        let records = 1000;
        let proofs = extras == Extras::Proofs;
        let metrics: &[&str] = if extras == Extras::Metrics {
            &["--metrics", "127.0.0.1:0"]
        } else {
            &[]
        };
        let tlds_flags: &[&str] = if proofs {
            &["--require-proof"]
        } else {
            metrics
        };
        let tlds = [1, 2].map(|n| {
            let table: String = (0..records)
                .map(|i| format!("host{i:06}.tlds{n}\t10.{n}.{}.{}\tA\n", i / 256, i % 256))
                .collect();
            let name = format!("tlds{n}");
            start_tlds(
                &name,
                dir,
                "127.0.0.1",
                &table,
                &format!("key-{name}\n"),
                tlds_flags,
            )
        });
        let [(a1, c1), (a2, c2)] = [&tlds[0], &tlds[1]].map(Server::tlds_ports);
        let auth = start_as(
            "127.0.0.1",
            ("127.0.0.1", a1, c1),
            ("127.0.0.1", a2, c2),
            &[&["--max-connections", "4096"][..], metrics].concat(),
        );
        // Queries alternate between the two TLDS servers, all hits.
        let queries: String = (0..records)
            .map(|i| {
                let n = i % 2 + 1;
                format!("key-tlds{n} challenge{i:06} host{i:06}.tlds{n}\n")
            })
            .collect();
        ProjectSystem {
            tlds,
            auth,
            queries: queries.into_bytes(),
            proofs,
        }
    }

    /// This process (the client), then tlds1, tlds2 and the AS.
    fn pids(&self) -> Vec<String> {
        let servers = [&self.tlds[0], &self.tlds[1], &self.auth];
        std::iter::once("self".to_owned())
            .chain(servers.iter().map(|s| s.pid().to_string()))
            .collect()
    }

    /// A query file of exactly `count` lines (the query set repeated).
    fn input(&self, count: usize) -> Vec<u8> {
        let per_set = self.queries.iter().filter(|&&b| b == b'\n').count();
        let mut input = Vec::with_capacity(count * 50);
        for _ in 0..count / per_set {
            input.extend_from_slice(&self.queries);
        }
        let rest = count % per_set;
        input.extend(
            self.queries
                .split_inclusive(|&b| b == b'\n')
                .take(rest)
                .flatten(),
        );
        input
    }

    /// Resolves `count` queries with one client.
    fn run(&self, window: usize, count: usize) -> Measured {
        self.run_input(window, self.input(count))
    }

    /// Resolves the queries of `input` with one client; only this is timed.
    fn run_input(&self, window: usize, input: Vec<u8>) -> Measured {
        let as_port = self.auth.port();
        let stream = TcpStream::connect(("127.0.0.1", as_port)).expect("connect to the AS");
        stream.set_nodelay(true).expect("nodelay");
        let settings = Settings {
            as_name: format!("127.0.0.1:{as_port}"),
            window,
            timeout: Duration::from_secs(5),
            prove: self.proofs,
        };
        let mut latencies = Vec::new();
        let mut last = Instant::now();
        let started = last;
        // Latency is only meaningful (and only worth its clock reads) when
        // one query is in flight at a time.
        let timed = window == 1;
        let mut record = |_line: &str| {
            if timed {
                let now = Instant::now();
                latencies.push(now - last);
                last = now;
            }
            Ok(())
        };
        let queries = QueryLines::new(Cursor::new(input));
        let summary = client::resolve(queries, Some(stream), &settings, &mut record)
            .expect("the benchmark's client run");
        let elapsed = started.elapsed();
        // Every query of the benchmark is a hit: the client's own count of
        // records found says whether each was.
        assert_eq!(
            summary.found, summary.queries,
            "every query is a hit: {summary}"
        );
        Measured {
            queries: summary.queries,
            elapsed,
            latencies,
        }
    }

    /// `clients` clients at once, each at window 1.
    fn many_clients(&self, clients: usize, each: usize) -> Measured {
        Measured::together(clients, || self.run(1, each))
    }

    /// Established connections the AS process holds to each TLDS's AS
    /// port (its links), the larger of the two: sockets of the AS's own
    /// (found by inode among its open files) whose far end is that port.
    fn as_links_per_tlds(&self) -> usize {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let as_sockets: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{}/fd", self.auth.pid()))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
                    Some(inode.to_owned())
                })
                .collect();
        self.tlds
            .iter()
            .map(|tlds| {
                let port = format!(":{:04X}", tlds.tlds_ports().0);
                // Counted by inode: /proc/net/tcp is read a page at a
                // time, and while connections come and go a socket can be
                // listed twice in one read.
                let links: std::collections::HashSet<&str> = table
                    .lines()
                    .filter_map(|line| {
                        let fields: Vec<&str> = line.split_whitespace().collect();
                        // remote address, state (01: established), inode
                        let inode = *fields.get(9)?;
                        let link = fields.get(2)?.ends_with(&port)
                            && fields.get(3) == Some(&"01")
                            && as_sockets.contains(inode);
                        link.then_some(inode)
                    })
                    .collect();
                links.len()
            })
            .max()
            .unwrap_or(0)
    }

    /// Runs the release `client` on a file of `count` queries: its peak
    /// resident bytes, and seconds from start to exit.
    fn client_process(&self, dir: &Path, count: usize) -> (u64, f64) {
        let input = dir.join("many.txt");
        let output = dir.join("many-out.txt");
        std::fs::write(&input, self.input(count)).expect("write the query file");
        let args = authdns_harness::client_args("127.0.0.1", self.auth.port(), &input, &output);
        let started = Instant::now();
        let mut child = Command::new(authdns_harness::bin("client"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the client");
        let mut peak = 0;
        let status = loop {
            // VmHWM is the process's own high-water mark, so the last
            // reading before it exits is its peak.
            peak = peak.max(proc_status(child.id(), "VmHWM:") * 1024);
            if let Some(status) = child.try_wait().expect("wait for the client") {
                break status;
            }
            thread::sleep(Duration::from_millis(5));
        };
        let seconds = started.elapsed().as_secs_f64();
        assert!(status.success(), "the client failed on {count} queries");
        let lines = std::fs::read(&output)
            .expect("the client's output")
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        assert_eq!(lines, count, "one result line per query");
        let _ = std::fs::remove_file(&input);
        let _ = std::fs::remove_file(&output);
        (peak, seconds)
    }
}

/// Starts a TLDS on a table of `records` records: (load seconds, resident
/// bytes after start, file bytes).
fn load_big_table(dir: &Path, records: usize) -> (f64, u64, u64) {
    let table = big_table_text(records);
    let table = authdns_harness::write_file(dir, "big.tsv", &table);
    let key = authdns_harness::write_file(dir, "big.key", "k\n");
    let paths = [&table, &key].map(|path| path.to_str().expect("a UTF-8 path"));
    let started = Instant::now();
    let tlds = Server::start(
        "tlds1",
        &[
            "--bind",
            "127.0.0.1",
            "--as-port",
            "0",
            "--client-port",
            "0",
            "--table",
            paths[0],
            "--key-file",
            paths[1],
        ],
    );
    let load = started.elapsed().as_secs_f64();
    let file_size = std::fs::metadata(&table).expect("the table file").len();
    (load, proc_status(tlds.pid(), "VmRSS:") * 1024, file_size)
}

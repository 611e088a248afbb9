//! Process harness, shared by the tests and `cargo bench`: spawns the real
//! binaries on loopback with port 0, learns their ports from the start-up
//! line, and kills every process it started when the guard drops, whether
//! the test passed or not.
//!
//! A crate of its own (a dev-dependency of `authdns`), so that every test
//! file and the benchmark use it whole, as a library, rather than each
//! compiling its own copy and silencing the parts it does not use.

pub mod dns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long anything in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Where Cargo put the running test's (or benchmark's) profile: the test
/// runs from `<profile>/deps/`, and Cargo builds the package's binaries into
/// `<profile>/` before any integration test or benchmark.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe.parent().expect("a test binary lies in a directory");
    match dir.file_name() {
        Some(name) if name == "deps" => dir.parent().unwrap_or(dir).to_owned(),
        _ => dir.to_owned(),
    }
}

/// The path of one of the four programs, built with the test; or, for an
/// A/B comparison, the build that `AUTHDNS_BIN_<NAME>` names (for example
/// `AUTHDNS_BIN_AS_SERVER=/tmp/old/as_server`).
pub fn bin(name: &str) -> PathBuf {
    assert!(
        ["tlds1", "tlds2", "as_server", "client"].contains(&name),
        "no binary {name}"
    );
    if let Some(other) = std::env::var_os(format!("AUTHDNS_BIN_{}", name.to_uppercase())) {
        return PathBuf::from(other);
    }
    let path = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: run the tests with cargo",
        path.display()
    );
    path
}

/// A file of the repository, such as `data/hns.txt`.
pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(relative)
}

/// HMAC-MD5 in lowercase hex, from the `hmac` crate: what a TLDS stand-in
/// signs with, independent of the project's own signer.
pub fn hmac_md5_hex(key: &[u8], message: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// A fresh, empty directory for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = profile_dir()
        .join("scratch")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The text of a file of the repository, such as `data/tlds1.tsv`.
pub fn read_sample(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative))
        .unwrap_or_else(|err| panic!("read {relative}: {err}"))
}

/// Checks `done` until it holds, failing the test after [`PATIENCE`]: for a
/// condition that some other process brings about, with no event to wait on.
pub fn eventually(mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "not within {PATIENCE:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for `child` to exit, failing the test (which should then kill it)
/// with `hung` once [`PATIENCE`] has passed since `since`.
pub fn exit_within_patience(child: &mut Child, since: Instant, hung: &str) -> ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(since.elapsed() < PATIENCE, "{hung}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// CPU seconds (user + system) process `pid` has used so far; 0 once it
/// is gone.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // Linux counts in USER_HZ, 100 a second on every architecture it runs.
    ticks / 100.0
}

/// A `/proc/PID/status` field: KiB for sizes (`VmRSS:`), a count for
/// `Threads:`; 0 once the process is gone.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test file");
    path
}

/// Whether [`Server::start_command`] starts servers in sessions of their
/// own (see [`servers_in_own_sessions`]).
static OWN_SESSIONS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, start every server in a session of its own (`setsid`), as
/// from a terminal of its own, or (with `false`) as this process's child in
/// its session. With autogroup scheduling the CPU is shared between
/// sessions first, so benchmarks say which they used.
pub fn servers_in_own_sessions(own: bool) {
    OWN_SESSIONS.store(own, Ordering::Relaxed);
}

/// `command`, run through `setsid` (which execs it in place: a child is no
/// process group leader, so the pid stays the program's own).
pub fn in_own_session(command: &Command) -> Command {
    let mut wrapped = Command::new("setsid");
    wrapped.arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// A running server process, killed on drop. Its stderr is collected.
pub struct Server {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The thread collecting `stderr`, which ends when the server's stderr
    /// does: joined to know that every line is in.
    collecting: Option<thread::JoinHandle<()>>,
    /// Every address named in the start-up line, in order.
    pub addrs: Vec<SocketAddr>,
}

impl Server {
    /// Spawns `name` with `args` and waits for its start-up line.
    pub fn start(name: &str, args: &[&str]) -> Server {
        let mut command = Command::new(bin(name));
        command.args(args);
        Server::start_command(name, command)
    }

    /// Spawns `command` and waits for the first line it prints on stderr,
    /// which names the addresses it listens on.
    pub fn start_command(name: &str, mut command: Command) -> Server {
        if OWN_SESSIONS.load(Ordering::Relaxed) {
            command = in_own_session(&command);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {name}: {err}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (first_tx, first_rx) = mpsc::channel();
        let collecting = {
            let lines = Arc::clone(&lines);
            thread::spawn(move || {
                let mut first = Some(first_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // The readiness line is the first that is no warning
                    // (limits lowered to fit are one that may come first).
                    if !line.contains(" WARN ")
                        && let Some(tx) = first.take()
                    {
                        let _ = tx.send(line.clone());
                    }
                    lines.lock().unwrap().push(line);
                }
            })
        };
        let mut server = Server {
            child,
            stderr: lines,
            collecting: Some(collecting),
            addrs: Vec::new(),
        };
        let first = first_rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("{name} printed no start-up line"));
        server.addrs = first
            .split_whitespace()
            .filter_map(|word| word.trim_matches(|c: char| ",;()".contains(c)).parse().ok())
            .collect();
        assert!(!server.addrs.is_empty(), "{name}: no address in {first:?}");
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a number, as `kill -s`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits (at most [`PATIENCE`]) for the server to exit by itself.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        exit_within_patience(&mut self.child, Instant::now(), "the server did not exit")
    }

    /// Stops the server with SIGTERM and returns its whole log, once it has
    /// exited and every line it wrote has been collected.
    pub fn stop_and_read_log(&mut self) -> String {
        self.signal("TERM");
        let status = self.wait_for_exit();
        assert!(status.success(), "stopped with {status}: {}", self.stderr());
        if let Some(collecting) = self.collecting.take() {
            collecting.join().expect("the stderr collector");
        }
        self.stderr()
    }

    /// Waits (at most [`PATIENCE`]) until the server has logged a line
    /// containing `text`, and returns it without its timestamp.
    pub fn wait_for_log(&self, text: &str) -> String {
        self.wait_for_logs(text, 1)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Waits (at most [`PATIENCE`]) until the server has logged `count`
    /// lines containing `text`, and returns them without their timestamps.
    pub fn wait_for_logs(&self, text: &str, count: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let lines: Vec<String> = logged(&self.stderr())
                .into_iter()
                .filter(|line| line.contains(text))
                .collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{} of {count} {text:?} lines in:\n{}",
                lines.len(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A TLDS's (AS port, client port).
    pub fn tlds_ports(&self) -> (u16, u16) {
        (self.addrs[0].port(), self.addrs[1].port())
    }

    pub fn port(&self) -> u16 {
        self.addrs[0].port()
    }

    /// Everything the server printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET path` over HTTP/1.1 from `addr`: the status line and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics port");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The exposition at `addr`'s `/metrics`.
pub fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

/// The value of the sample `series` (a name with its labels, exactly as
/// exposed, e.g. `authdns_records`) in `exposition`; 0 if absent.
pub fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// A TLDS on `bind` with a table and key written for this test.
pub fn start_tlds(
    name: &str,
    dir: &Path,
    bind: &str,
    table: &str,
    key: &str,
    extra: &[&str],
) -> Server {
    let table = write_file(dir, &format!("{name}.tsv"), table);
    let key = write_file(dir, &format!("{name}.key"), key);
    let mut args = vec!["--bind", bind];
    if !extra.contains(&"--as-port") {
        args.extend(["--as-port", "0", "--client-port", "0"]);
    }
    args.extend([
        "--table",
        table.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    args.extend_from_slice(extra);
    Server::start(name, &args)
}

/// tlds1 on the sample table, with a throwaway key and `flags`.
pub fn sample_tlds1(dir: &Path, flags: &[&str]) -> Server {
    let table = read_sample("data/tlds1.tsv");
    start_tlds("tlds1", dir, "127.0.0.1", &table, "k\n", flags)
}

/// An AS on `bind`, pointed at the two TLDS.
pub fn start_as(
    bind: &str,
    tlds1: (&str, u16, u16),
    tlds2: (&str, u16, u16),
    extra: &[&str],
) -> Server {
    let ports = [tlds1.1, tlds1.2, tlds2.1, tlds2.2].map(|p| p.to_string());
    let mut args = vec![
        "--bind",
        bind,
        "--port",
        "0",
        "--tlds1-host",
        tlds1.0,
        "--tlds1-as-port",
        &ports[0],
        "--tlds1-client-port",
        &ports[1],
        "--tlds2-host",
        tlds2.0,
        "--tlds2-as-port",
        &ports[2],
        "--tlds2-client-port",
        &ports[3],
    ];
    args.extend_from_slice(extra);
    Server::start("as_server", &args)
}

/// The four programs on 127.0.0.1 with the repository's sample data.
pub struct System {
    pub tlds1: Server,
    pub tlds2: Server,
    pub auth: Server,
}

impl System {
    pub fn start_with(table1: &str, key1: &str, table2: &str, key2: &str, dir: &Path) -> System {
        System::start_with_flags(table1, key1, table2, key2, dir, &[])
    }

    /// Like [`System::start_with`], passing `tlds_flags` to both TLDS servers.
    pub fn start_with_flags(
        table1: &str,
        key1: &str,
        table2: &str,
        key2: &str,
        dir: &Path,
        tlds_flags: &[&str],
    ) -> System {
        let tables = [(table1, key1), (table2, key2)];
        System::start_with_all_flags(tables, dir, tlds_flags, &[])
    }

    /// The system on `(table, key)` for tlds1 and tlds2, passing
    /// `tlds_flags` to both TLDS servers and `as_flags` to the AS.
    pub fn start_with_all_flags(
        [(table1, key1), (table2, key2)]: [(&str, &str); 2],
        dir: &Path,
        tlds_flags: &[&str],
        as_flags: &[&str],
    ) -> System {
        let tlds1 = start_tlds("tlds1", dir, "127.0.0.1", table1, key1, tlds_flags);
        let tlds2 = start_tlds("tlds2", dir, "127.0.0.1", table2, key2, tlds_flags);
        let (a1, c1) = tlds1.tlds_ports();
        let (a2, c2) = tlds2.tlds_ports();
        let auth = start_as(
            "127.0.0.1",
            ("127.0.0.1", a1, c1),
            ("127.0.0.1", a2, c2),
            as_flags,
        );
        System { tlds1, tlds2, auth }
    }

    pub fn start_samples(dir: &Path) -> System {
        System::start_samples_with(dir, &[], &[])
    }

    /// The samples, passing `tlds_flags` to both TLDS servers and
    /// `as_flags` to the AS.
    pub fn start_samples_with(dir: &Path, tlds_flags: &[&str], as_flags: &[&str]) -> System {
        let [t1, k1, t2, k2] = ["tlds1.tsv", "key1.txt", "tlds2.tsv", "key2.txt"]
            .map(|name| read_sample(&format!("data/{name}")));
        System::start_with_all_flags([(&t1, &k1), (&t2, &k2)], dir, tlds_flags, as_flags)
    }
}

/// What one client run left behind.
#[derive(Debug)]
pub struct ClientRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The output file's lines, or `None` if the client wrote none.
    pub output: Option<Vec<String>>,
    pub elapsed: Duration,
}

/// Runs the client to completion (killing it past [`PATIENCE`]).
pub fn run_client(dir: &Path, as_port: u16, queries: &str, extra: &[&str]) -> ClientRun {
    let input = write_file(dir, "queries.txt", queries);
    let output = dir.join("RESOLVED.txt");
    let _ = std::fs::remove_file(&output);
    let mut args = client_args("127.0.0.1", as_port, &input, &output);
    args.extend(extra.iter().map(|arg| arg.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_to_end("client", &args, dir);
    let output = std::fs::read_to_string(&output)
        .ok()
        .map(|text| text.lines().map(str::to_owned).collect());
    ClientRun { output, ..run }
}

/// The client's arguments for one run against the AS at `host:port`.
pub fn client_args(host: &str, port: u16, input: &Path, output: &Path) -> Vec<String> {
    let paths = [input, output].map(|path| path.to_str().expect("UTF-8 test path").to_owned());
    let [input, output] = paths;
    [
        "--as-host",
        host,
        "--as-port",
        &port.to_string(),
        "--input",
        &input,
        "--output",
        &output,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A client process left running, killed when dropped.
pub struct Running(pub Child);

impl Running {
    /// Waits for the program to exit, failing the test (which kills it)
    /// with `hung` once [`PATIENCE`] has passed since `since`.
    pub fn wait_within_patience(&mut self, since: Instant, hung: &str) -> ExitStatus {
        exit_within_patience(&mut self.0, since, hung)
    }
}

/// A running program's stdout and stderr (both piped), read to their ends
/// on threads of their own so that the program never blocks on them.
pub struct Captured {
    stdout: thread::JoinHandle<String>,
    stderr: thread::JoinHandle<String>,
}

impl Captured {
    pub fn start(child: &mut Child) -> Captured {
        let drain = |mut pipe: Box<dyn Read + Send>| {
            thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        Captured {
            stdout: drain(Box::new(child.stdout.take().expect("stdout is piped"))),
            stderr: drain(Box::new(child.stderr.take().expect("stderr is piped"))),
        }
    }

    /// The run, once the program exited with `status`, `started` at start.
    pub fn collect(self, status: ExitStatus, started: Instant) -> ClientRun {
        ClientRun {
            status,
            stdout: self.stdout.join().unwrap(),
            stderr: self.stderr.join().unwrap(),
            output: None,
            elapsed: started.elapsed(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the client with `args` and `extra`, its stdout as given.
pub fn spawn_client(args: &[String], extra: &[&str], stdout: Stdio) -> Running {
    let child = Command::new(bin("client"))
        .args(args)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn client");
    Running(child)
}

/// Runs any of the programs to completion in `dir`, killed past [`PATIENCE`].
pub fn run_to_end(name: &str, args: &[&str], dir: &Path) -> ClientRun {
    let started = Instant::now();
    let mut child = Running(
        Command::new(bin(name))
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {name}: {err}")),
    );
    let captured = Captured::start(&mut child.0);
    let hung = format!("{name} {args:?} did not finish within {PATIENCE:?}");
    let status = child.wait_within_patience(started, &hung);
    captured.collect(status, started)
}

/// A raw protocol connection for poking a server directly.
pub struct LineClient {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl LineClient {
    pub fn connect(addr: SocketAddr) -> LineClient {
        let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        LineClient { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next reply line without its newline; `None` when the server closed.
    pub fn reply(&mut self) -> Option<String> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => Some(
                String::from_utf8_lossy(&line)
                    .trim_end_matches('\n')
                    .to_owned(),
            ),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(err) => panic!("reading a reply: {err}"),
        }
    }

    pub fn ask(&mut self, line: &str) -> Option<String> {
        self.send(format!("{line}\n").as_bytes());
        self.reply()
    }
}

/// A server that accepts connections and never answers, for as long as a
/// test may take (the handle ends then).
pub fn silent_server() -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (addr, handle)
}

/// A TLDS stand-in on its AS port: signs each challenge with `key`, but
/// waits `delay` before each answer, and reports each challenge as it
/// reads it.
pub fn slow_tlds(key: &'static str, delay: Duration) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen_tx = seen_tx.clone();
            thread::spawn(move || {
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    let _ = seen_tx.send(line.clone());
                    thread::sleep(delay);
                    let digest = hmac_md5_hex(key.as_bytes(), line.as_bytes());
                    if writer.write_all(format!("{digest}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// A program's log lines without their timestamps: `LEVEL program: message`.
pub fn logged(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(|line| {
            line.split_once(' ')
                .map_or(line, |(_, rest)| rest)
                .to_owned()
        })
        .collect()
}

/// What the client gives for the sample queries (`data/hns.txt`) on the
/// sample tables and keys, line by line.
pub const SAMPLE_RESULTS: [&str; 7] = [
    // a hit on tlds1
    "Amazon.org 94.5.6.7 A",
    // a hit on tlds2
    "google.com 142.250.80.46 A",
    // mixed case: the table's own spelling comes back
    "Amazon.org 94.5.6.7 A",
    // mixed case and a trailing dot, on tlds2
    "Wikipedia.org 208.80.154.224 A",
    // a miss
    "nothinghere.com - Error:HOST NOT FOUND",
    // exists only on tlds2, but the key is tlds1's
    "google.com - Error:HOST NOT FOUND",
    // a key that matches neither TLDS
    "Amazon.org - Error:No Match Found",
];

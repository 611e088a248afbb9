//! Seeing and steering the running system: logs at each verbosity, the
//! client's one-off queries and summary, `tlds --check`, reloading a TLDS on
//! SIGHUP, and the quick-start script under `dash`.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Instant;

use authdns_harness::*;

// Every log line is `time LEVEL program: message`; at -vv one query can be
// followed across all four programs.
#[test]
fn one_query_can_be_watched_crossing_the_system_at_vv() {
    let dir = scratch_dir("vv");
    let system = System::start_samples_with(&dir, &["-vv"], &["-vv"]);
    let run = run_client(
        &dir,
        system.auth.port(),
        "k1234 alpha Amazon.org\n",
        &["-vv"],
    );
    assert!(run.status.success(), "{run:?}");
    let (_, c1) = system.tlds1.tlds_ports();
    let tlds = system.tlds1.wait_for_log("asked Amazon.org");
    assert!(
        tlds.starts_with("TRACE tlds1: client port: 127.0.0.1:")
            && tlds.ends_with(" asked Amazon.org: Amazon.org 94.5.6.7 A"),
        "{tlds}"
    );
    let signed = system.tlds1.wait_for_log("challenge alpha");
    assert!(
        signed.starts_with("TRACE tlds1: AS port: 127.0.0.1:")
            && signed.ends_with(" challenge alpha: signed"),
        "{signed}"
    );
    let auth = system.auth.wait_for_log("challenge alpha");
    assert!(
        auth.starts_with("TRACE as_server: client port: 127.0.0.1:")
            && auth.ends_with(" challenge alpha: tlds1 matched"),
        "{auth}"
    );
    let client = logged(&run.stderr);
    assert!(
        client.contains(&format!(
            "TRACE client: Amazon.org: the AS sends it to 127.0.0.1:{c1}"
        )),
        "{client:?}"
    );
    assert!(
        client.contains(&"TRACE client: result 1: Amazon.org 94.5.6.7 A".to_owned()),
        "{client:?}"
    );
    // -v's connection lines are there too.
    system
        .tlds1
        .wait_for_log("left after 1 requests: closed by the peer");
    // And every line has its timestamp first.
    for line in system.tlds1.stderr().lines().chain(run.stderr.lines()) {
        let stamp = line.split(' ').next().unwrap();
        assert!(
            stamp.len() == 24 && stamp.ends_with('Z') && stamp.contains('T'),
            "{line}"
        );
    }
}

// At the default level there is no line per connection or request; -v adds
// the connection lines; RUST_LOG is honoured.
#[test]
fn the_default_level_logs_changes_not_traffic() {
    let dir = scratch_dir("levels");
    let mut system = System::start_samples_with(&dir, &[], &[]);
    let run = run_client(&dir, system.auth.port(), "k1234 alpha Amazon.org\n", &[]);
    assert!(run.status.success());
    // Their whole logs, once stopped: the start-up line and the stop line,
    // and nothing for the connections and the query between them.
    let servers = [
        (&mut system.tlds1, "tlds1", "serving 4 records"),
        (&mut system.auth, "as_server", "listening on"),
    ];
    for (server, name, started) in servers {
        let log = logged(&server.stop_and_read_log());
        assert_eq!(log.len(), 2, "{log:?}");
        assert!(
            log[0].starts_with(&format!("INFO {name}: {started}")),
            "{log:?}"
        );
        assert_eq!(
            log[1],
            format!("INFO {name}: stopped on SIGTERM"),
            "{log:?}"
        );
    }
    let client = logged(&run.stderr);
    assert_eq!(client.len(), 1, "{client:?}");

    let verbose = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        "a.example 10.0.0.1 A\n",
        "k\n",
        &["-v"],
    );
    let mut peer = LineClient::connect(verbose.addrs[1]);
    assert_eq!(
        peer.ask("a.example").as_deref(),
        Some("a.example 10.0.0.1 A")
    );
    drop(peer);
    let line = verbose.wait_for_log("left after");
    assert!(
        line.starts_with("DEBUG tlds1: client port: 127.0.0.1:"),
        "{line}"
    );
    assert!(!verbose.stderr().contains("TRACE"), "{}", verbose.stderr());

    let mut command = Command::new(bin("tlds2"));
    command
        .args([
            "--bind",
            "127.0.0.1",
            "--as-port",
            "0",
            "--client-port",
            "0",
        ])
        .args(["--table", repo_file("data/tlds2.tsv").to_str().unwrap()])
        .args(["--key-file", repo_file("data/key2.txt").to_str().unwrap()])
        .env("RUST_LOG", "debug");
    let from_env = Server::start_command("tlds2", command);
    let mut peer = LineClient::connect(from_env.addrs[1]);
    assert_eq!(peer.ask("com").as_deref(), Some("com - NS"));
    drop(peer);
    from_env.wait_for_log("left after 1 requests");
}

// `client --key K HOST...` resolves each name with a fresh challenge,
// prints the results and writes no file; a summary closes the run on
// stderr, and -q hides it.
#[test]
fn one_off_queries_print_results_and_write_no_file() {
    let dir = scratch_dir("one-off");
    let system = System::start_samples_with(&dir, &[], &[]);
    let port = system.auth.port().to_string();
    let base = ["--as-host", "127.0.0.1", "--as-port", port.as_str()];
    let run = run_to_end(
        "client",
        &[
            &base[..],
            &["--key", "k1234", "Amazon.org", "nothere.com", "google.com"],
        ]
        .concat(),
        &dir,
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        run.stdout,
        "Amazon.org 94.5.6.7 A\nnothere.com - Error:HOST NOT FOUND\ngoogle.com - Error:HOST NOT FOUND\n"
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|name| name.to_string_lossy().contains("RESOLVED")),
        "{names:?}"
    );
    let summary = logged(&run.stderr);
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert!(
        summary[0]
            .starts_with("INFO client: 3 queries: 1 found, 2 not found, 0 no match, 0 failed in "),
        "{summary:?}"
    );

    // A key matching neither, a chosen challenge, and --output.
    let out = dir.join("out.txt");
    let run = run_to_end(
        "client",
        &[
            &base[..],
            &[
                "--key",
                "nobody",
                "--challenge",
                "golf",
                "--output",
                out.to_str().unwrap(),
                "-q",
                "Amazon.org",
            ],
        ]
        .concat(),
        &dir,
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "Amazon.org - Error:No Match Found\n"
    );
}

// `--input -` reads queries from stdin; `--output -` writes stdout only.
#[test]
fn queries_from_stdin_results_to_stdout_only() {
    let dir = scratch_dir("stdin");
    let system = System::start_samples_with(&dir, &[], &[]);
    let cwd = scratch_dir("stdin-cwd");
    let port = system.auth.port().to_string();
    let mut child = Command::new(bin("client"))
        .args([
            "--as-host",
            "127.0.0.1",
            "--as-port",
            &port,
            "--input",
            "-",
            "--output",
            "-",
        ])
        .current_dir(&cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(read_sample("data/hns.txt").as_bytes())
        .unwrap();
    drop(stdin);
    exit_within_patience(&mut child, Instant::now(), "the client did not finish");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let expected = SAMPLE_RESULTS.join("\n") + "\n";
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        logged(&stderr)[0]
            .starts_with("INFO client: 7 queries: 4 found, 2 not found, 1 no match, 0 failed in "),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "no file written"
    );
}

// `--check` loads and validates as serving would, binds nothing, and lists
// every problem of both files.
#[test]
fn check_validates_without_serving_and_lists_every_problem() {
    let dir = scratch_dir("check");
    // Its ports are taken: --check must not try them.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let table = write_file(&dir, "good.tsv", &read_sample("data/tlds1.tsv"));
    let key = write_file(&dir, "good.key", "# tlds1\nk1234\n");
    let args = |table: &std::path::Path, key: &std::path::Path| {
        [
            "--check",
            "--as-port",
            &port,
            "--client-port",
            &port,
            "--table",
            table.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ]
        .map(str::to_owned)
    };
    let good = args(&table, &key);
    let run = run_to_end("tlds1", &good.each_ref().map(String::as_str), &dir);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "{}: 4 records; {}: key ok\n",
            table.display(),
            key.display()
        )
    );

    let bad_table = write_file(
        &dir,
        "bad.tsv",
        "a.com 1.1.1.1 A\nonly two\nb.com 300.1.1.1 A\nA.COM 2.2.2.2 A\n",
    );
    let bad_key = write_file(&dir, "bad.key", "# tlds1\n\nk 1234\n");
    let bad = args(&bad_table, &bad_key);
    let run = run_to_end("tlds2", &bad.each_ref().map(String::as_str), &dir);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let (t, k) = (bad_table.display(), bad_key.display());
    assert_eq!(
        run.stderr,
        format!(
            "{t}:2: expected 3 fields (hostname address flag), found 2\n\
             {t}:3: flag A needs an IPv4 address, found '300.1.1.1'\n\
             {t}:4: hostname 'A.COM' is listed twice (first on line 1)\n\
             {k}:3: the key contains whitespace\n"
        )
    );
    assert_eq!(run.stdout, "");
}

// SIGHUP reloads the table: a changed address is served from the next
// request; a broken file leaves the old table serving, and says why.
#[test]
fn sighup_reloads_the_table_and_a_broken_one_keeps_the_old() {
    let dir = scratch_dir("reload");
    let tlds = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        "a.example 10.0.0.1 A\n",
        "k\n",
        &[],
    );
    let table = dir.join("tlds1.tsv");
    let mut peer = LineClient::connect(tlds.addrs[1]);
    assert_eq!(
        peer.ask("a.example").as_deref(),
        Some("a.example 10.0.0.1 A")
    );

    let serves_the_new_table = |peer: &mut LineClient| {
        for (name, address) in [("a.example", "10.0.0.2"), ("b.example", "10.0.0.3")] {
            let record = format!("{name} {address} A");
            assert_eq!(peer.ask(name), Some(record));
        }
    };
    std::fs::write(&table, "a.example 10.0.0.2 A\nb.example 10.0.0.3 A\n").unwrap();
    tlds.signal("HUP");
    tlds.wait_for_log("serving 2 records");
    serves_the_new_table(&mut peer);

    std::fs::write(&table, "a.example 10.0.0.9 A\nbroken line\n").unwrap();
    tlds.signal("HUP");
    let problem = tlds.wait_for_log("reload: ");
    assert_eq!(
        problem,
        format!(
            "ERROR tlds1: reload: {}:2: expected 3 fields (hostname address flag), found 2",
            table.display()
        )
    );
    tlds.wait_for_log("still serving");
    serves_the_new_table(&mut peer);
}

/// The addresses `text` names (`127.0.0.1:PORT`).
fn addresses(text: &str) -> Vec<SocketAddr> {
    text.split(|c: char| c.is_whitespace() || ",;()".contains(c))
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// Runs `demo.sh` under dash with the test's own binaries: its status,
/// stdout and stderr.
fn demo(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    let bin_dir = bin("client").parent().unwrap().to_owned();
    Command::new("dash")
        .arg(repo_file("demo.sh"))
        .args(args)
        .env("AUTHDNS_BIN", bin_dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dash runs demo.sh")
}

fn no_server_outlives(stderr: &str) {
    let servers = addresses(stderr);
    assert!(servers.len() >= 5, "the servers' addresses: {stderr}");
    for addr in servers {
        assert!(
            TcpStream::connect(addr).is_err(),
            "{addr} is still served:\n{stderr}"
        );
    }
}

// The quick start: under dash, it starts the servers, runs the client,
// stops every server, and exits with the client's status.
#[test]
fn the_demo_runs_under_dash_and_leaves_no_server() {
    let dir = scratch_dir("demo");
    let child = demo(&dir, &[]);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        SAMPLE_RESULTS.join("\n") + "\n"
    );
    assert!(dir.join("RESOLVED.txt").exists());
    no_server_outlives(&stderr);

    // The client's status is the demo's, and the servers stop anyway.
    let child = demo(&dir, &["--window", "0"]);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    no_server_outlives(&String::from_utf8_lossy(&output.stderr));
}

// Stopped while the client runs, the demo still stops every server.
#[test]
fn the_demo_stopped_midway_leaves_no_server() {
    let dir = scratch_dir("demo-stopped");
    // Queries enough to keep the client busy (one at a time) for a while.
    let queries: String = (0..200_000).map(|_| "k1234 alpha Amazon.org\n").collect();
    let input = write_file(&dir, "many.txt", &queries);
    let mut child = demo(
        &dir,
        &["--window", "1", "-q", "--input", input.to_str().unwrap()],
    );
    // Wait until the three servers are up: the demo says so on stderr.
    let mut stderr = child.stderr.take().unwrap();
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.contains("as_server") {
                let _ = seen_tx.send(());
            }
        }
        text
    });
    seen.recv_timeout(PATIENCE)
        .expect("the demo started its servers");
    // Stopped once its client runs: the demo's child named `client`.
    eventually(|| runs_a_client(child.id()));
    let kill = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = exit_within_patience(&mut child, Instant::now(), "the demo did not stop");
    assert_eq!(status.code(), Some(143));
    no_server_outlives(&reader.join().unwrap());
}

/// Whether process `pid` has a child process named `client`.
fn runs_a_client(pid: u32) -> bool {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children.split_whitespace().any(|child| {
        std::fs::read_to_string(format!("/proc/{child}/comm"))
            .is_ok_and(|name| name.trim_end() == "client")
    })
}

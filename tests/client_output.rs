//! The client's output (docs/reliability.md): the output file never
//! depends on stdout, is checked before any query, and keeps the previous
//! file's permissions.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use authdns_harness::*;

/// A server that records the connections it gets and never answers.
fn recording_server() -> (u16, std::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, seen) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let _ = seen_tx.send(());
            drop(stream);
        }
    });
    (port, seen)
}

// The output path is checked before anything is sent: a directory, or a
// path in a directory that does not exist, stops the client at once.
#[test]
fn a_bad_output_path_stops_the_client_before_any_query() {
    let dir = scratch_dir("bad-output");
    let (as_port, seen) = recording_server();
    let input = write_file(&dir, "q.txt", "k c one.example\n");
    let missing = dir.join("missing");
    for (output, reason) in [
        (dir.clone(), "it is a directory".to_owned()),
        (
            missing.join("out.txt"),
            format!("its directory {} does not exist", missing.display()),
        ),
    ] {
        let args = client_args("127.0.0.1", as_port, &input, &output);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_to_end("client", &args, &dir);
        assert_eq!(run.status.code(), Some(1), "{run:?}");
        assert_eq!(
            logged(&run.stderr),
            [format!(
                "ERROR client: cannot write --output {}: {reason}",
                output.display()
            )]
        );
    }
    assert_eq!(seen.try_iter().count(), 0, "nothing reached the AS");
}

// The output keeps the permissions of the file it replaces.
#[cfg(unix)]
#[test]
fn the_output_keeps_the_previous_files_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir("output-mode");
    let system = System::start_samples(&dir);
    let input = write_file(&dir, "q.txt", "k1234 alpha Amazon.org\n");
    let output = write_file(&dir, "RESOLVED.txt", "previous\n");
    std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o640)).unwrap();
    let args = client_args("127.0.0.1", system.auth.port(), &input, &output);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_to_end("client", &args, &dir);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "Amazon.org 94.5.6.7 A\n"
    );
    let mode = std::fs::metadata(&output).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

/// `count` queries that all resolve on the sample system, and their results.
fn sample_batch(count: usize) -> (String, Vec<String>) {
    let queries = (0..count)
        .map(|i| {
            if i % 2 == 0 {
                "k1234 alpha Amazon.org\n"
            } else {
                "k5678 beta google.com\n"
            }
        })
        .collect();
    let results = (0..count)
        .map(|i| {
            if i % 2 == 0 {
                "Amazon.org 94.5.6.7 A"
            } else {
                "google.com 142.250.80.46 A"
            }
            .to_owned()
        })
        .collect();
    (queries, results)
}

/// A client on the sample system with `stdout`, its output file, and what
/// the run should write there.
fn client_with_stdout(
    dir: &std::path::Path,
    system: &System,
    count: usize,
    extra: &[&str],
    stdout: Stdio,
) -> (std::process::Child, std::path::PathBuf, Vec<String>) {
    let (queries, results) = sample_batch(count);
    let input = write_file(dir, "q.txt", &queries);
    let output = dir.join("RESOLVED.txt");
    let child = std::process::Command::new(bin("client"))
        .args(client_args(
            "127.0.0.1",
            system.auth.port(),
            &input,
            &output,
        ))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, output, results)
}

/// Waits (at most PATIENCE) for `child` to exit; its status and stderr.
fn wait_and_read(child: std::process::Child) -> (std::process::ExitStatus, String) {
    // Killed on drop, should the wait fail the test.
    let mut child = Running(child);
    let status = child.wait_within_patience(Instant::now(), "the client did not finish");
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

// `client | head -1`: stdout closes after one line, and the output file is
// still complete; the client says once that it stopped echoing.
#[test]
fn a_closed_stdout_never_costs_the_output_file() {
    let dir = scratch_dir("head-1");
    let system = System::start_samples(&dir);
    let (mut child, output, results) =
        client_with_stdout(&dir, &system, 3000, &["--window", "64"], Stdio::piped());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first.trim_end(), results[0]);
    drop(stdout);
    let (status, stderr) = wait_and_read(child);
    assert!(status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        results
    );
    let logged = logged(&stderr);
    assert_eq!(
        logged[0],
        format!(
            "WARN client: stdout: Broken pipe (os error 32); results go on to {} only",
            output.display()
        )
    );
    // Then only the summary.
    assert!(
        logged[1].starts_with("INFO client: 3000 queries: "),
        "{stderr}"
    );
    assert_eq!(logged.len(), 2, "{stderr}");
}

// stdout on a full disk: the same.
#[test]
fn a_full_stdout_never_costs_the_output_file() {
    let dir = scratch_dir("full");
    let system = System::start_samples(&dir);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (child, output, results) = client_with_stdout(&dir, &system, 50, &[], Stdio::from(full));
    let (status, stderr) = wait_and_read(child);
    assert!(status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        results
    );
    assert!(
        logged(&stderr)[0].starts_with("WARN client: stdout: No space left on device"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        2,
        "the warning, once, and the summary: {stderr}"
    );
}

#[test]
fn quiet_echoes_nothing() {
    let dir = scratch_dir("quiet");
    let system = System::start_samples(&dir);
    let (mut child, output, results) =
        client_with_stdout(&dir, &system, 10, &["--quiet"], Stdio::piped());
    let mut echoed = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut echoed)
        .unwrap();
    let (status, _) = wait_and_read(child);
    assert!(status.success());
    assert_eq!(echoed, "");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap().lines().count(),
        results.len()
    );
}

// `client --window 1 | less`, with the reader paused: the queries go on (no
// server times the client out), and the output file is complete before
// anyone reads stdout.
#[test]
fn a_paused_stdout_does_not_stall_the_queries() {
    let dir = scratch_dir("paused");
    let system = System::start_samples(&dir);
    // Far more than a pipe holds (64 KiB), at one query at a time.
    let (mut child, output, results) =
        client_with_stdout(&dir, &system, 4000, &["--window", "1"], Stdio::piped());
    let started = Instant::now();
    while std::fs::read_to_string(&output).map_or(true, |text| text.lines().count() < results.len())
    {
        assert!(
            started.elapsed() < PATIENCE,
            "the output file never completed"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let mut echoed = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut echoed)
        .unwrap();
    let (status, stderr) = wait_and_read(child);
    assert!(status.success(), "{stderr}");
    assert_eq!(echoed.lines().collect::<Vec<_>>(), results);
}

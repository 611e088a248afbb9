//! Faults and bad input, injected into the real programs on loopback: every
//! server keeps serving everyone else, a client never hangs, and no result is
//! silently lost.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use authdns::digest::hmac_md5;
use authdns_harness::*;

/// tlds1 on the sample table, with a throwaway key and `flags`.
fn sample_tlds1(dir: &std::path::Path, flags: &[&str]) -> Server {
    let table = read_sample("data/tlds1.tsv");
    start_tlds("tlds1", dir, "127.0.0.1", &table, "k\n", flags)
}

/// Every kind of bad request, each followed by a good one on the same
/// connection.
#[test]
fn bad_input_gets_one_error_line_and_the_connection_serves_on() {
    let dir = scratch_dir("bad-input");
    let system = System::start_samples(&dir);
    let digest = hmac_md5(b"k1234", b"alpha").to_string();
    let long_challenge = "c".repeat(256);
    let long_host = "h".repeat(254);
    let common_bad: [&[u8]; 4] = [b"", b"caf\xc3", b"nul\0byte", b"bell\x07"];

    let as_good = format!("alpha {digest}");
    let (_, c1) = system.tlds1.tlds_ports();
    let as_answer = format!("127.0.0.1 {c1}");
    let as_bad = [
        "alpha".to_owned(),
        format!("alpha {digest} extra"),
        "alpha 83cdae16a693560b34bac1f64b7cf10z".to_owned(),
        "alpha 83cdae16".to_owned(),
        format!("{long_challenge} {digest}"),
    ];
    let tlds_as_bad = ["two words".to_owned(), long_challenge.clone()];
    let tlds_client_bad = ["two words".to_owned(), long_host, "ctl\x1bhost".to_owned()];
    let cases = [
        (
            system.auth.addrs[0],
            &as_bad[..],
            as_good.as_str(),
            as_answer.as_str(),
        ),
        (
            system.tlds1.addrs[0],
            &tlds_as_bad[..],
            "alpha",
            digest.as_str(),
        ),
        (
            system.tlds1.addrs[1],
            &tlds_client_bad[..],
            "Amazon.org",
            "Amazon.org 94.5.6.7 A",
        ),
    ];
    for (addr, bad, good, answer) in cases {
        let mut peer = LineClient::connect(addr);
        let bad_lines = bad.iter().map(String::as_bytes).chain(common_bad);
        for line in bad_lines {
            peer.send(line);
            peer.send(b"\n");
            let reply = peer.reply().expect("a reply");
            assert!(reply.starts_with("Error: "), "{addr} {line:?}: {reply}");
            assert_eq!(
                peer.ask(good).as_deref(),
                Some(answer),
                "{addr} after {line:?}"
            );
        }
    }
}

#[test]
fn an_overlong_line_is_refused_and_its_connection_closed() {
    let dir = scratch_dir("overlong");
    let system = System::start_samples(&dir);
    let servers = [
        system.auth.addrs[0],
        system.tlds1.addrs[0],
        system.tlds2.addrs[1],
    ];
    for addr in servers {
        for with_newline in [true, false] {
            let mut peer = LineClient::connect(addr);
            let mut line = vec![b'a'; 1025];
            if with_newline {
                line.push(b'\n');
            } else {
                // Keep sending past the limit; the server must not wait for a newline.
                line.extend(vec![b'a'; 4096]);
            }
            peer.send(&line);
            assert_eq!(
                peer.reply().as_deref(),
                Some("Error: line too long"),
                "{addr}"
            );
            assert_eq!(peer.reply(), None, "{addr}: connection should be closed");
        }
        // The longest allowed line is only a bad request, not a closed connection.
        let mut peer = LineClient::connect(addr);
        peer.send(&[vec![b'x'; 1024], b"\r\n".to_vec()].concat());
        let reply = peer.reply().unwrap();
        assert!(
            reply.starts_with("Error: ") && reply != "Error: line too long",
            "{reply}"
        );
    }
}

#[test]
fn connections_past_the_limit_hear_server_busy_and_the_rest_are_unaffected() {
    let dir = scratch_dir("busy");
    let tlds = sample_tlds1(&dir, &["--max-connections", "3"]);
    let client_port = tlds.addrs[1];
    let mut admitted: Vec<LineClient> = (0..3).map(|_| LineClient::connect(client_port)).collect();
    for peer in &mut admitted {
        assert_eq!(peer.ask("edu").as_deref(), Some("edu - NS"));
    }
    let mut extra = LineClient::connect(client_port);
    assert_eq!(extra.reply().as_deref(), Some("Error: server busy"));
    assert_eq!(extra.reply(), None);
    for peer in &mut admitted {
        assert_eq!(
            peer.ask("rutgers.edu").as_deref(),
            Some("rutgers.edu 128.6.4.2 A")
        );
    }
    // A freed slot is reused once its connection's thread has noticed the close.
    admitted.pop();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut peer = LineClient::connect(client_port);
        if peer.ask("edu").as_deref() == Some("edu - NS") {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_thousand_connections_at_once_neither_crash_nor_wedge_a_server() {
    let dir = scratch_dir("flood");
    let system = System::start_samples(&dir);
    for addr in [system.tlds1.addrs[1], system.auth.addrs[0]] {
        let flood: Vec<TcpStream> = (0..2000)
            .filter_map(|_| TcpStream::connect_timeout(&addr, PATIENCE).ok())
            .collect();
        assert!(flood.len() > 1024, "only {} connected", flood.len());
        // Every connection past the limit is told so.
        let mut busy = 0;
        for stream in &flood[1100..] {
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut reply = String::new();
            let _ = BufReader::new(stream).read_line(&mut reply);
            busy += usize::from(reply == "Error: server busy\n");
        }
        assert_eq!(busy, flood.len() - 1100, "{addr}");
        drop(flood);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut peer = LineClient::connect(addr);
            let reply = peer.ask("edu");
            if reply.as_deref().is_some_and(|r| !r.contains("busy")) {
                break;
            }
            assert!(Instant::now() < deadline, "{addr} still busy");
            thread::sleep(Duration::from_millis(20));
        }
    }
    let queries = read_sample("data/hns.txt");
    let run = run_client(&dir, system.auth.port(), &queries, &[]);
    assert!(run.status.success(), "{run:?}");
}

#[test]
fn idle_connections_are_closed() {
    let dir = scratch_dir("idle");
    let tlds = sample_tlds1(&dir, &["--idle-timeout", "0.3"]);
    let (a, c) = tlds.tlds_ports();
    let auth = start_as(
        "127.0.0.1",
        ("127.0.0.1", a, c),
        ("127.0.0.1", a, c),
        &["--idle-timeout", "0.3"],
    );
    for addr in [tlds.addrs[1], auth.addrs[0]] {
        let started = Instant::now();
        let mut peer = LineClient::connect(addr);
        assert_eq!(peer.reply(), None, "{addr}");
        assert!(started.elapsed() >= Duration::from_millis(250), "{addr}");
    }
    // A connection that keeps talking is not idle.
    let mut peer = LineClient::connect(tlds.addrs[1]);
    for _ in 0..5 {
        thread::sleep(Duration::from_millis(150));
        assert_eq!(peer.ask("edu").as_deref(), Some("edu - NS"));
    }
}

#[test]
fn a_silent_tlds_costs_the_as_at_most_its_timeout() {
    let dir = scratch_dir("silent-tlds");
    let tlds1 = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        &read_sample("data/tlds1.tsv"),
        "k1234\n",
        &[],
    );
    let (a1, c1) = tlds1.tlds_ports();
    let (silent, _held) = silent_server();
    let auth = start_as(
        "127.0.0.1",
        ("127.0.0.1", a1, c1),
        ("127.0.0.1", silent.port(), silent.port()),
        &["--timeout", "1"],
    );
    let timeout = Duration::from_secs(1);
    let mut peer = LineClient::connect(auth.addrs[0]);
    let good = hmac_md5(b"k1234", b"alpha");
    let started = Instant::now();
    assert_eq!(
        peer.ask(&format!("alpha {good}")),
        Some(format!("127.0.0.1 {c1}"))
    );
    let wrong = hmac_md5(b"other", b"alpha");
    let reply = peer.ask(&format!("alpha {wrong}")).unwrap();
    assert!(reply.starts_with("Error: tlds2 at 127.0.0.1:"), "{reply}");
    assert!(reply.contains("timed out"), "{reply}");
    // Both requests together waited out the timeout once: the first, for
    // tlds2's answer; the second failed at once, tlds2 being down. A
    // second timeout would take the total to twice the timeout.
    let waited = started.elapsed();
    assert!(
        waited >= timeout && waited < 2 * timeout,
        "waited {waited:?} with --timeout {timeout:?}"
    );
}

// An AS that accepts and never answers is treated like an unreachable one:
// exit 1 within --timeout, one line naming it, the previous output whole.
#[test]
fn a_silent_as_is_an_unreachable_as() {
    for window in ["1", "16"] {
        let dir = scratch_dir("silent-as");
        let (silent, _held) = silent_server();
        let input = write_file(&dir, "q.txt", "k c one.example\nk c two.example\n");
        let output = write_file(&dir, "RESOLVED.txt", "previous run\n");
        let mut args = client_args("127.0.0.1", silent.port(), &input, &output);
        args.extend(["--timeout", "0.5", "--window", window].map(str::to_owned));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_to_end("client", &args, &dir);
        assert_eq!(run.status.code(), Some(1), "window {window}: {run:?}");
        assert_eq!(
            logged(&run.stderr),
            [format!(
                "ERROR client: the AS at 127.0.0.1:{}: timed out, before answering anything",
                silent.port()
            )]
        );
        assert!(run.elapsed < Duration::from_secs(4), "{:?}", run.elapsed);
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "previous run\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
    }
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

#[test]
fn the_as_reconnects_to_a_restarted_tlds_without_restarting() {
    let dir = scratch_dir("restart");
    let mut system = System::start_samples(&dir);
    let (a2, c2) = system.tlds2.tlds_ports();
    let digest = hmac_md5(b"k5678", b"foxtrot");
    let request = format!("foxtrot {digest}");
    let mut peer = LineClient::connect(system.auth.addrs[0]);
    assert_eq!(peer.ask(&request), Some(format!("127.0.0.1 {c2}")));

    system.tlds2.kill();
    let reply = peer.ask(&request).unwrap();
    assert!(
        reply.starts_with(&format!("Error: tlds2 at 127.0.0.1:{a2}")),
        "{reply}"
    );

    let (a, c) = (a2.to_string(), c2.to_string());
    let _tlds2 = start_tlds(
        "tlds2",
        &dir,
        "127.0.0.1",
        &read_sample("data/tlds2.tsv"),
        "k5678\n",
        &["--as-port", &a, "--client-port", &c],
    );
    // The AS marked it down and takes it back when its probe is answered
    // (the first comes half a second after the failure).
    eventually(|| peer.ask(&request) == Some(format!("127.0.0.1 {c2}")));
    let run = run_client(&dir, system.auth.port(), &read_sample("data/hns.txt"), &[]);
    assert!(run.status.success(), "{run:?}");
}

/// Ports that were free a moment ago, for servers started later.
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

#[test]
fn the_as_started_first_serves_as_soon_as_the_tlds_servers_come_up() {
    let dir = scratch_dir("as-first");
    let [a1, c1, a2, c2] = free_ports();
    let auth = start_as(
        "127.0.0.1",
        ("127.0.0.1", a1, c1),
        ("127.0.0.1", a2, c2),
        &[],
    );
    let queries = read_sample("data/hns.txt");
    let before = run_client(&dir, auth.port(), &queries, &[]);
    assert_eq!(before.status.code(), Some(1), "{before:?}");

    let ports = [a1, c1, a2, c2].map(|p| p.to_string());
    let _tlds1 = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        &read_sample("data/tlds1.tsv"),
        "k1234",
        &["--as-port", &ports[0], "--client-port", &ports[1]],
    );
    let _tlds2 = start_tlds(
        "tlds2",
        &dir,
        "127.0.0.1",
        &read_sample("data/tlds2.tsv"),
        "k5678",
        &["--as-port", &ports[2], "--client-port", &ports[3]],
    );
    // Both are down to the AS until a probe of each is answered.
    eventually(|| {
        run_client(&dir, auth.port(), &queries, &[])
            .status
            .success()
    });
    let after = run_client(&dir, auth.port(), &queries, &[]);
    assert!(after.status.success(), "{after:?}");
    assert_eq!(after.output.unwrap()[0], "Amazon.org 94.5.6.7 A");
}

#[test]
fn a_tlds_dying_mid_batch_loses_no_line() {
    // Window 1 takes the one-at-a-time path; a wide window, the pipeline.
    tlds_dies_mid_batch("1", 20_000);
    tlds_dies_mid_batch("64", 300_000);
}

fn tlds_dies_mid_batch(window: &str, count: usize) {
    let dir = scratch_dir("mid-batch");
    let mut system = System::start_samples(&dir);
    let queries: String = (0..count)
        .map(|i| {
            if i % 2 == 0 {
                format!("k1234 c{i} Amazon.org\n")
            } else {
                format!("k5678 c{i} google.com\n")
            }
        })
        .collect();
    let input = write_file(&dir, "q.txt", &queries);
    let output = dir.join("out.txt");
    let args = client_args("127.0.0.1", system.auth.port(), &input, &output);
    let mut client = spawn_client(&args, &["--window", window], Stdio::piped());
    let mut stdout = BufReader::new(client.0.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..100 {
        line.clear();
        stdout.read_line(&mut line).unwrap();
    }
    system.tlds1.kill();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let started = Instant::now();
    let status = client.wait_within_patience(started, "client did not finish");
    assert_eq!(status.code(), Some(1));
    let written = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), count);
    for (i, line) in lines.iter().enumerate() {
        let host = if i % 2 == 0 {
            "Amazon.org"
        } else {
            "google.com"
        };
        assert!(line.starts_with(host), "line {}: {line}", i + 1);
    }
    assert!(
        lines.iter().any(|l| l.starts_with("Amazon.org - Error:")),
        "window {window}"
    );
    assert_eq!(lines.last(), Some(&"google.com 142.250.80.46 A"));
}

#[test]
fn as_allow_limits_who_may_ask_for_digests() {
    let dir = scratch_dir("as-allow");
    let table = read_sample("data/tlds1.tsv");
    let closed = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        &table,
        "k1234\n",
        &["--as-allow", "127.0.0.9"],
    );
    let mut peer = LineClient::connect(closed.addrs[0]);
    assert_eq!(peer.reply().as_deref(), Some("Error: not allowed"));
    assert_eq!(peer.reply(), None);
    // Only the signing port is restricted.
    let mut client = LineClient::connect(closed.addrs[1]);
    assert_eq!(client.ask("edu").as_deref(), Some("edu - NS"));
    let deadline = Instant::now() + PATIENCE;
    while !closed.stderr().contains("refused 127.0.0.1") {
        assert!(
            Instant::now() < deadline,
            "refusal not logged: {}",
            closed.stderr()
        );
        thread::sleep(Duration::from_millis(10));
    }

    let open = start_tlds(
        "tlds2",
        &dir,
        "127.0.0.1",
        &table,
        "k1234\n",
        &["--as-allow", "10.1.1.1", "--as-allow", "127.0.0.1"],
    );
    let mut peer = LineClient::connect(open.addrs[0]);
    assert_eq!(
        peer.ask("alpha"),
        Some(hmac_md5(b"k1234", b"alpha").to_string())
    );
}

#[test]
fn keys_never_appear_in_logs_errors_or_replies() {
    let dir = scratch_dir("secrets");
    let (key1, key2) = ("SeCrEt-OnE-9f2c", "SeCrEt-TwO-77ab");
    let (table1, table2) = (read_sample("data/tlds1.tsv"), read_sample("data/tlds2.tsv"));
    // Every program logs all it can (-vv: every request on every hop).
    let system =
        System::start_with_all_flags([(&table1, key1), (&table2, key2)], &dir, &["-vv"], &["-vv"]);
    let queries = format!(
        "{key1} a Amazon.org\n{key2} b google.com\n{key1} c missing.example\n\
         {key1} only-two\n{key2} {} x.org\nwrong d Amazon.org\n",
        "c".repeat(300)
    );
    let run = run_client(&dir, system.auth.port(), &queries, &["-vv"]);
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let mut peer = LineClient::connect(system.auth.addrs[0]);
    for bad in ["", "x", "x y z", "x 00000000000000000000000000000000"] {
        peer.ask(bad);
    }
    let everything = [
        run.stdout,
        run.stderr,
        run.output.unwrap().join("\n"),
        system.tlds1.stderr(),
        system.tlds2.stderr(),
        system.auth.stderr(),
    ]
    .join("\n");
    for key in [key1, key2] {
        assert!(!everything.contains(key), "{key} leaked:\n{everything}");
    }
    assert!(everything.contains("Amazon.org 94.5.6.7 A"), "{everything}");
}

#[test]
fn the_as_reconnects_when_a_tlds_has_idled_its_link_out() {
    // The TLDS servers close the AS's links after 0.2 s of silence; the next
    // request on the same client connection must reconnect rather than fail.
    let dir = scratch_dir("stale-link");
    let system = System::start_with_flags(
        &read_sample("data/tlds1.tsv"),
        "k1234\n",
        &read_sample("data/tlds2.tsv"),
        "k5678\n",
        &dir,
        &["--idle-timeout", "0.2", "-v"],
    );
    let (_, c1) = system.tlds1.tlds_ports();
    let auth = &system.auth;
    let mut peer = LineClient::connect(auth.addrs[0]);
    let request = format!("alpha {}", hmac_md5(b"k1234", b"alpha"));
    for round in 1..=3 {
        assert_eq!(peer.ask(&request), Some(format!("127.0.0.1 {c1}")));
        // This round's link was opened, used once, and closed by the TLDS
        // for its silence, before the next round asks again.
        let idled = system
            .tlds1
            .wait_for_logs("left after 1 requests: timed out", round);
        assert_eq!(idled.len(), round, "{idled:?}");
        let opened: Vec<String> = logged(&system.tlds1.stderr())
            .into_iter()
            .filter(|line| {
                line.starts_with("DEBUG tlds1: AS port: ") && line.ends_with(" connected")
            })
            .collect();
        assert_eq!(opened.len(), round, "{opened:?}");
    }
}

// A byte-order mark at the start of a table, a key file or a query file is
// not content; a key file's comments and blank lines are skipped; query
// comment lines are skipped whatever bytes they hold.
#[test]
fn files_with_a_byte_order_mark_or_comments_mean_what_they_say() {
    let dir = scratch_dir("bom");
    let system = System::start_with(
        "\u{feff}Amazon.org\t94.5.6.7\tA\n",
        "\u{feff}# tlds1's key, shared with its clients\n\nk1234\n",
        "google.com\t142.250.80.46\tA\n",
        "k5678\n",
        &dir,
    );
    let queries = "\u{feff}k1234 alpha Amazon.org\n# \u{1} control \u{7f} and \u{85} in a comment\n  #\tk5678 x google.com\nk5678 beta google.com\n";
    let mut file = queries.as_bytes().to_vec();
    file.extend_from_slice(b"# not UTF-8: \xff\xfe\n");
    let input = dir.join("queries.bin");
    std::fs::write(&input, &file).unwrap();
    let output = dir.join("out.txt");
    let args = client_args("127.0.0.1", system.auth.port(), &input, &output);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_to_end("client", &args, &dir);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "Amazon.org 94.5.6.7 A\ngoogle.com 142.250.80.46 A\n"
    );
}

// A hostname may begin with `Error:`: a server error is `Error: ` with a
// space, which no hostname holds.
#[test]
fn hostnames_that_begin_with_error_are_hostnames() {
    for window in ["1", "64"] {
        let dir = scratch_dir("error-hostnames");
        let system = System::start_with(
            "Error:x\t10.0.0.1\tA\n",
            "k1234\n",
            "b.example\t10.0.0.2\tA\n",
            "k5678\n",
            &dir,
        );
        let run = run_client(
            &dir,
            system.auth.port(),
            "k1234 alpha Error:foo\nk1234 beta Error:x\n",
            &["--window", window],
        );
        assert!(run.status.success(), "window {window}: {run:?}");
        assert_eq!(
            run.output.unwrap(),
            ["Error:foo - Error:HOST NOT FOUND", "Error:x 10.0.0.1 A"],
            "window {window}"
        );
    }
}

// `--as-allow` takes ranges, and an IPv4 peer matches its rule however it
// arrives: as IPv4, or as IPv4-mapped IPv6 on a listener bound to `::`.
#[test]
fn as_allow_takes_ranges_and_both_forms_of_ipv4() {
    let dir = scratch_dir("as-allow-ranges");
    let table = read_sample("data/tlds1.tsv");
    let signs = |server: &Server| {
        let port = server.addrs[0].port();
        let mut peer = LineClient::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        peer.ask("alpha")
    };
    let digest = Some(hmac_md5(b"k1234", b"alpha").to_string());
    let cases = [
        ("::", "127.0.0.1", true),
        ("::", "127.0.0.0/8", true),
        ("127.0.0.1", "::ffff:127.0.0.1", true),
        ("127.0.0.1", "::ffff:127.0.0.0/104", true),
        ("::", "10.0.0.0/8", false),
        ("127.0.0.1", "::1", false),
    ];
    for (bind, allow, admitted) in cases {
        let server = start_tlds(
            "tlds1",
            &dir,
            bind,
            &table,
            "k1234\n",
            &["--as-allow", allow],
        );
        let expected = if admitted {
            digest.clone()
        } else {
            Some("Error: not allowed".to_owned())
        };
        assert_eq!(signs(&server), expected, "--bind {bind} --as-allow {allow}");
    }
}

// The AS port has a connection budget of its own: 1,024 connections
// trickling bytes into the client port (its whole budget) take none of the
// slots the AS needs, and queries through the AS still resolve.
#[test]
fn the_as_port_keeps_its_own_connection_budget() {
    let dir = scratch_dir("own-budget");
    let system = System::start_samples(&dir);
    let (_, client_port) = system.tlds1.tlds_ports();
    let trickling: Vec<TcpStream> = (0..1024)
        .map(|_| {
            let stream = TcpStream::connect(("127.0.0.1", client_port)).unwrap();
            (&stream).write_all(b"Amaz").unwrap();
            stream
        })
        .collect();
    let run = run_client(
        &dir,
        system.auth.port(),
        "k1234 alpha Amazon.org\nk5678 beta google.com\n",
        &["--window", "1"],
    );
    // tlds1's client port is full, so the client itself hears busy there,
    // but the AS authenticated both queries.
    let output = run.output.unwrap();
    assert!(
        output[0].starts_with("Amazon.org - Error:"),
        "{}",
        output[0]
    );
    assert!(output[0].contains("server busy"), "{}", output[0]);
    assert_eq!(output[1], "google.com 142.250.80.46 A");
    drop(trickling);
}

// Refusals are logged at most once a second, with a count of the rest.
#[test]
fn busy_refusals_are_logged_at_most_once_a_second() {
    let dir = scratch_dir("busy-log");
    let tlds = sample_tlds1(&dir, &["--max-connections", "1"]);
    let client_port = tlds.addrs[1];
    let mut held = LineClient::connect(client_port);
    assert_eq!(held.ask("edu").as_deref(), Some("edu - NS"));
    let started = Instant::now();
    for _ in 0..200 {
        let mut extra = LineClient::connect(client_port);
        assert_eq!(extra.reply().as_deref(), Some("Error: server busy"));
    }
    let busy_lines = |stderr: &str| stderr.lines().filter(|l| l.contains("busy")).count();
    let allowed = started.elapsed().as_secs() as usize + 1;
    assert!(busy_lines(&tlds.stderr()) <= allowed, "{}", tlds.stderr());
    thread::sleep(Duration::from_millis(1100));
    let mut late = LineClient::connect(client_port);
    assert_eq!(late.reply().as_deref(), Some("Error: server busy"));
    let deadline = Instant::now() + PATIENCE;
    while !tlds.stderr().contains("more like it not shown") {
        assert!(Instant::now() < deadline, "{}", tlds.stderr());
        thread::sleep(Duration::from_millis(10));
    }
    assert!(
        busy_lines(&tlds.stderr()) <= allowed + 1,
        "{}",
        tlds.stderr()
    );
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

/// `count` queries alternating between the sample TLDS servers.
fn alternating(count: usize) -> String {
    (0..count)
        .map(|i| {
            if i % 2 == 0 {
                "k1234 alpha Amazon.org\n"
            } else {
                "k5678 beta google.com\n"
            }
        })
        .collect()
}

/// Checks a run over `alternating` queries with tlds2 frozen for part of
/// it: every tlds1 query answered right, every tlds2 query answered right
/// or an error naming tlds2 (at its AS port, or its client port).
fn only_the_frozen_tlds_failed(run: &ClientRun, tlds2: &Server) -> usize {
    let (a2, c2) = tlds2.tlds_ports();
    let output = run.output.as_ref().expect("an output file");
    assert_eq!(output.len(), 20_000);
    let mut failed = 0;
    for (i, line) in output.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(line, "Amazon.org 94.5.6.7 A", "line {}", i + 1);
        } else if line != "google.com 142.250.80.46 A" {
            let from_as = format!("google.com - Error:tlds2 at 127.0.0.1:{a2} ");
            let from_client = format!("google.com - Error:the TLDS at 127.0.0.1:{c2}");
            assert!(
                line.starts_with(&from_as) || line.starts_with(&from_client),
                "line {}: {line}",
                i + 1
            );
            failed += 1;
        }
    }
    failed
}

/// The sample system, and what a batch of 20,000 `alternating` queries
/// costs it with both TLDS healthy, on this machine now (a debug build,
/// sharing the cores with other tests): the yardstick for a fault's cost.
fn system_and_healthy_batch(
    dir: &std::path::Path,
    window: &str,
    as_flags: &[&str],
) -> (System, ClientRun) {
    let [t1, k1, t2, k2] = ["tlds1.tsv", "key1.txt", "tlds2.tsv", "key2.txt"]
        .map(|name| read_sample(&format!("data/{name}")));
    let system = System::start_with_all_flags([(&t1, &k1), (&t2, &k2)], dir, &[], as_flags);
    let healthy = run_client(
        dir,
        system.auth.port(),
        &alternating(20_000),
        &["--window", window],
    );
    assert!(healthy.status.success(), "window {window}: {healthy:?}");
    (system, healthy)
}

// A TLDS that accepts and never answers (SIGSTOP) costs only the queries
// that needed it, once: with default flags the AS times it out after 2 s,
// marks it down and answers the rest at once; after SIGCONT its probe is
// answered and the same AS serves it again.
#[test]
fn a_frozen_tlds_costs_only_its_own_queries_once() {
    for window in ["1", "4096"] {
        let dir = scratch_dir("frozen");
        let (system, healthy) = system_and_healthy_batch(&dir, window, &["-vv"]);
        system.tlds2.signal("STOP");
        let logged_before = system.auth.stderr().lines().count();
        let run = run_client(
            &dir,
            system.auth.port(),
            &alternating(20_000),
            &["--window", window],
        );
        assert_eq!(run.status.code(), Some(1), "window {window}");
        assert_eq!(only_the_frozen_tlds_failed(&run, &system.tlds2), 10_000);
        // The fault costs the AS's timeout once: in the AS's trace of this
        // run (the client's connection, then a line per request as it is
        // answered), one pause as long as a timeout, where the first burst
        // waited on tlds2; every later burst failed at once, tlds2 being down.
        let traced: Vec<u64> = system
            .auth
            .stderr()
            .lines()
            .skip(logged_before)
            .filter(|line| line.contains(" as_server: client port: "))
            .filter_map(millisecond_of_day)
            .collect();
        let pauses: Vec<u64> = traced
            .windows(2)
            .map(|pair| pair[1].saturating_sub(pair[0]))
            .filter(|&gap| gap >= 1_500)
            .collect();
        assert_eq!(pauses.len(), 1, "window {window}: pauses of {pauses:?} ms");
        // And it costs about that timeout (2 s by default) in time.
        let bound = healthy.elapsed + Duration::from_secs(2 + 3);
        assert!(
            run.elapsed < bound,
            "window {window}: {:?}, healthy {:?}",
            run.elapsed,
            healthy.elapsed
        );
        // The change is logged once, not per request.
        let tlds2 = format!("tlds2 at 127.0.0.1:{}", system.tlds2.tlds_ports().0);
        let down = format!("WARN as_server: {tlds2} is down: unreachable: timed out");
        let times = |line: &str| {
            logged(&system.auth.stderr())
                .iter()
                .filter(|l| *l == line)
                .count()
        };
        assert_eq!(times(&down), 1, "{}", system.auth.stderr());

        system.tlds2.signal("CONT");
        eventually(|| {
            run_client(&dir, system.auth.port(), &alternating(2), &[])
                .status
                .success()
        });
        assert_eq!(times(&format!("INFO as_server: {tlds2} is up again")), 1);
    }
}

// Frozen in the middle of a batch: the queries in flight to it wait out a
// timeout once (the AS's, or the client's on its own connection to that
// TLDS), and everything else is answered.
#[test]
fn a_tlds_frozen_mid_batch_costs_only_its_own_queries() {
    for window in ["1", "4096"] {
        let dir = scratch_dir("frozen-mid");
        let (system, healthy) = system_and_healthy_batch(&dir, window, &[]);
        let input = write_file(&dir, "q.txt", &alternating(20_000));
        let output = dir.join("RESOLVED.txt");
        let args = client_args("127.0.0.1", system.auth.port(), &input, &output);
        let started = Instant::now();
        let mut client = spawn_client(&args, &["--window", window], Stdio::piped());
        // Freeze tlds2 once a thousand results have been shown, and keep
        // reading stdout so the client is never held up by it.
        let stdout = BufReader::new(client.0.stdout.take().unwrap());
        let (shown_tx, shown) = std::sync::mpsc::channel();
        let reader = thread::spawn(move || {
            for (count, _) in stdout.lines().map_while(Result::ok).enumerate() {
                if count == 1000 {
                    let _ = shown_tx.send(());
                }
            }
        });
        shown.recv_timeout(PATIENCE).expect("a thousand results");
        system.tlds2.signal("STOP");
        let status =
            client.wait_within_patience(started, &format!("window {window}: the client hung"));
        reader.join().unwrap();
        let elapsed = started.elapsed();
        let lines = std::fs::read_to_string(&output)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let run = ClientRun {
            status,
            stdout: String::new(),
            stderr: String::new(),
            output: Some(lines),
            elapsed,
        };
        let failed = only_the_frozen_tlds_failed(&run, &system.tlds2);
        assert!(
            failed > 0,
            "window {window}: the freeze came too late to test anything"
        );
        // The AS's timeout (2 s) and the client's on its own connection to
        // the frozen TLDS (5 s), once each, and little more.
        let bound = healthy.elapsed + Duration::from_secs(2 + 5 + 3);
        assert!(
            elapsed < bound,
            "window {window}: {elapsed:?}, healthy {:?}",
            healthy.elapsed
        );
        system.tlds2.signal("CONT");
    }
}

/// A stand-in server that answers every line with `reply`, one byte at a
/// time, `pause` apart.
fn trickling_server(reply: String, pause: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let reply = reply.clone();
            thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    if line.is_err() {
                        return;
                    }
                    for byte in format!("{reply}\n").bytes() {
                        if writer.write_all(&[byte]).is_err() {
                            return;
                        }
                        thread::sleep(pause);
                    }
                }
            });
        }
    });
    port
}

// A reply that trickles in a byte at a time is still held to --timeout as
// a whole: by the client (here its AS), and by the AS (here a TLDS).
#[test]
fn a_reply_must_be_whole_within_the_timeout() {
    let dir = scratch_dir("trickle");
    let slow_as = trickling_server("127.0.0.1 9".to_owned(), Duration::from_millis(250));
    for window in ["1", "16"] {
        let run = run_client(
            &dir,
            slow_as,
            "k c one.example\n",
            &["--timeout", "1", "--window", window],
        );
        assert_eq!(run.status.code(), Some(1), "window {window}");
        assert!(
            run.stderr
                .ends_with("timed out, before answering anything\n"),
            "{}",
            run.stderr
        );
        assert!(
            run.elapsed < Duration::from_millis(2500),
            "window {window}: {:?}",
            run.elapsed
        );
    }

    let tlds1 = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        &read_sample("data/tlds1.tsv"),
        "k1234\n",
        &[],
    );
    let (a1, c1) = tlds1.tlds_ports();
    let digest = hmac_md5(b"k5678", b"beta").to_string();
    let slow_tlds = trickling_server(digest, Duration::from_millis(100));
    let auth = start_as(
        "127.0.0.1",
        ("127.0.0.1", a1, c1),
        ("127.0.0.1", slow_tlds, slow_tlds),
        &["--timeout", "1"],
    );
    let mut peer = LineClient::connect(auth.addrs[0]);
    let started = Instant::now();
    let reply = peer
        .ask(&format!("beta {}", hmac_md5(b"k5678", b"beta")))
        .unwrap();
    assert_eq!(
        reply,
        format!("Error: tlds2 at 127.0.0.1:{slow_tlds} unreachable: timed out")
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

// Slow senders on a server: a request must be whole within --idle-timeout
// of its first byte; trickled bytes do not extend it.
#[test]
fn a_request_must_be_whole_within_the_idle_timeout_of_its_first_byte() {
    let dir = scratch_dir("slowloris");
    let tlds = sample_tlds1(&dir, &["--idle-timeout", "1"]);
    for port in [tlds.addrs[0], tlds.addrs[1]] {
        let mut stream = TcpStream::connect(port).unwrap();
        let started = Instant::now();
        let closed = loop {
            // One byte every 100 ms, never a newline.
            if stream.write_all(b"x").is_err() {
                break started.elapsed();
            }
            let mut probe = [0u8; 1];
            stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            match stream.read(&mut probe) {
                Ok(0) => break started.elapsed(),
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break started.elapsed(),
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still open after 5 s"
            );
        };
        assert!(closed < Duration::from_millis(2500), "{closed:?}");
    }
}

/// Runs the client with `--input -`, writing each line to its stdin after
/// its pause; returns the run and when the last line was written.
fn run_paced_client(args: &[String], lines: &[(Duration, &str)]) -> (ClientRun, Instant) {
    let started = Instant::now();
    let mut child = Running(
        std::process::Command::new(bin("client"))
            .args(args)
            .args(["--input", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client"),
    );
    let captured = Captured::start(&mut child.0);
    let mut stdin = child.0.stdin.take().unwrap();
    let mut last_written = Instant::now();
    for (pause, line) in lines {
        thread::sleep(*pause);
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        last_written = Instant::now();
    }
    drop(stdin);
    let status = child.wait_within_patience(started, "the client did not finish");
    let run = captured.collect(status, started);
    (run, last_written)
}

/// A stand-in server that answers each line it reads with `answer(n, line)`
/// (n counts from 0), and hangs (holding the connection, reading nothing
/// more) once that gives `None`.
fn scripted_server(answer: fn(usize, &str) -> Option<String>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || {
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                let mut writer = stream.try_clone().unwrap();
                for (n, line) in BufReader::new(stream).lines().enumerate() {
                    let Ok(line) = line else { return };
                    let Some(reply) = answer(n, &line) else {
                        // Hung: holds the connection, reads and says nothing.
                        thread::sleep(PATIENCE);
                        return;
                    };
                    if writer.write_all(format!("{reply}\n").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// The client at window 2 (so each query goes out alone, as soon as it is
/// read) with `--timeout 2`, its queries from stdin; how long it pauses
/// between them; and how long a silent peer may cost it, counted from the
/// request: one timeout and some slack, less than that pause on top.
fn idle_then_silent(as_port: u16, dir: &std::path::Path) -> (Vec<String>, Duration, Duration) {
    let output = dir.join("RESOLVED.txt");
    let mut args = client_args("127.0.0.1", as_port, &dir.join("unused"), &output);
    args.drain(4..6); // no --input: run_paced_client gives `--input -`
    args.extend(["--timeout", "2", "--window", "2"].map(str::to_owned));
    let pause = Duration::from_secs(1);
    (args, pause, Duration::from_secs(2) + pause / 2)
}

/// Runs the client on two queries, the second a pause after the first, and
/// checks the first got `first` and the second timed out within `bound` of
/// being written.
fn second_query_times_out_in_time(as_port: u16, dir: &std::path::Path, first: &str) {
    let (args, pause, bound) = idle_then_silent(as_port, dir);
    let (run, written) = run_paced_client(
        &args,
        &[
            (Duration::ZERO, "k c one.example"),
            (pause, "k c two.example"),
        ],
    );
    let text = std::fs::read_to_string(dir.join("RESOLVED.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&first), "{run:?}");
    assert!(
        lines.get(1).is_some_and(
            |line| line.starts_with("two.example - Error:") && line.contains("timed out")
        ),
        "{lines:?}"
    );
    assert!(
        written.elapsed() < bound,
        "the silent peer cost {:?}",
        written.elapsed()
    );
}

// A pipelining client's stage with nothing to wait for sleeps on the socket
// its next replies come from. If the peer then goes silent, the request's
// reply is still due --timeout after the request was sent, not --timeout
// after that sleep ended: a silent peer costs one timeout, not nearly two.
// Here the AS: it answers the first query, so the router waits on it for the
// second, which it never answers.
#[test]
fn an_as_silent_after_an_idle_wait_costs_one_timeout_from_the_request() {
    let dir = scratch_dir("idle-then-silent-as");
    let auth = scripted_server(|n, _| (n == 0).then(|| "No Match Found".to_owned()));
    second_query_times_out_in_time(auth, &dir, "one.example - Error:No Match Found");
}

// The same for a TLDS: it answers the first hostname, so its reader waits on
// it for the second, which it never answers.
#[test]
fn a_tlds_silent_after_an_idle_wait_costs_one_timeout_from_the_request() {
    let dir = scratch_dir("idle-then-silent-tlds");
    static TLDS_PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let tlds = scripted_server(|n, line| (n == 0).then(|| format!("{line} 10.0.0.1 A")));
    TLDS_PORT.set(tlds).unwrap();
    let auth = scripted_server(|_, _| Some(format!("127.0.0.1 {}", TLDS_PORT.get().unwrap())));
    second_query_times_out_in_time(auth, &dir, "one.example 10.0.0.1 A");
}

/// When a log line was written, in milliseconds since midnight (UTC): its
/// timestamp reads `2026-12-04T18:55:01.123Z`.
fn millisecond_of_day(line: &str) -> Option<u64> {
    let time = line
        .split(' ')
        .next()?
        .split_once('T')?
        .1
        .strip_suffix('Z')?;
    let (clock, millis) = time.split_once('.')?;
    let mut parts = clock.split(':').map(|part| part.parse::<u64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + millis.parse::<u64>().ok()?)
}

//! Limits that protect the right thing (docs/reliability.md): bad input,
//! overlong lines, connection limits and floods, tried on the real servers
//! on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use authdns::digest::hmac_md5;
use authdns_harness::*;

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
        // Past the limit, each newcomer is told busy or takes the slot of one
        // idle long enough; either way the server still answers.
        let mut peer = LineClient::connect(addr);
        let reply = peer.ask("edu");
        assert!(reply.is_some(), "{addr}: no answer during the flood");
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

// The AS port has a connection budget of its own: 1,024 connections
// trickling bytes into the client port (its whole budget) take none of the
// slots the AS needs, and queries through the AS still resolve.
#[test]
fn the_as_port_keeps_its_own_connection_budget() {
    let dir = scratch_dir("own-budget");
    let system = System::start_samples_with(&dir, &["--max-connections", "1024"], &[]);
    let (_, client_port) = system.tlds1.tlds_ports();
    let trickling: Vec<TcpStream> = (0..1024)
        .map(|_| {
            let stream = TcpStream::connect(("127.0.0.1", client_port)).unwrap();
            (&stream).write_all(b"Amaz").unwrap();
            stream
        })
        .collect();
    // tlds1's client port is full of them: the client's own connection
    // there takes the slot of one that has trickled nothing for a second,
    // or, if none has yet, hears busy.
    let run = run_client(
        &dir,
        system.auth.port(),
        "k1234 alpha Amazon.org\nk5678 beta google.com\n",
        &["--window", "1"],
    );
    // The AS authenticated both queries: the AS port's slots were its own.
    let output = run.output.unwrap();
    assert_eq!(output[1], "google.com 142.250.80.46 A");
    assert!(
        output[0] == "Amazon.org 94.5.6.7 A" || output[0].contains("server busy"),
        "{}",
        output[0]
    );
    drop(trickling);
}

// Refusals are logged at most once a second, with a count of the rest.
#[test]
fn busy_refusals_are_logged_at_most_once_a_second() {
    let dir = scratch_dir("busy-log");
    let tlds = sample_tlds1(&dir, &["--max-connections", "1"]);
    let client_port = tlds.addrs[1];
    let mut held = LineClient::connect(client_port);
    let started = Instant::now();
    for _ in 0..200 {
        // In use, so never idle long enough to be closed for a newcomer.
        assert_eq!(held.ask("edu").as_deref(), Some("edu - NS"));
        let mut extra = LineClient::connect(client_port);
        assert_eq!(extra.reply().as_deref(), Some("Error: server busy"));
    }
    let busy_lines = |stderr: &str| stderr.lines().filter(|l| l.contains("busy")).count();
    let allowed = started.elapsed().as_secs() as usize + 1;
    assert!(busy_lines(&tlds.stderr()) <= allowed, "{}", tlds.stderr());
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(held.ask("edu").as_deref(), Some("edu - NS"));
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

// A full port makes room: a newcomer closes the connection idle longest,
// once that has been idle a second. 1,024 connections that say nothing
// hold every client slot of a TLDS and of the AS; two seconds on, the real
// client still resolves everything, and the servers go on serving.
#[test]
fn a_full_server_makes_room_by_closing_its_longest_idle_connection() {
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let dir = scratch_dir("make-room");
    let full = ["-v", "--max-connections", "1024"];
    let mut system = System::start_samples_with(&dir, &full, &full);
    let silent: Vec<TcpStream> = [
        system.tlds1.addrs[1],
        system.tlds2.addrs[1],
        system.auth.addrs[0],
    ]
    .into_iter()
    .flat_map(|addr| (0..1024).map(move |_| TcpStream::connect(addr).unwrap()))
    .collect();
    // Every silent connection was admitted: none heard busy.
    for server in [&system.tlds1, &system.auth] {
        let admitted = server.wait_for_logs(" connected", 1024);
        assert!(admitted.len() >= 1024, "{}", admitted.len());
    }
    // Idle long enough to be closed for a newcomer.
    thread::sleep(Duration::from_secs(2));
    let run = run_client(&dir, system.auth.port(), &read_sample("data/hns.txt"), &[]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        run.output.as_deref(),
        Some(&SAMPLE_RESULTS.map(str::to_owned)[..])
    );
    for server in [&system.tlds1, &system.auth] {
        let closed = server.wait_for_log(", to make room for 127.0.0.1:");
        assert!(closed.starts_with("DEBUG "), "{closed}");
        assert!(
            !server.stderr().contains("server busy"),
            "{}",
            server.stderr()
        );
    }
    assert!(system.tlds1.is_running() && system.auth.is_running());
    drop(silent);
}

//! Stopping: SIGTERM and SIGINT stop every server cleanly (what it has read
//! is answered, one line is printed, exit 0), and stop the client without
//! touching the previous output file (exit 130 or 143). A client killed
//! outright leaves the previous output whole too.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use authdns::digest::hmac_md5;
use authdns_harness::*;

// The AS has read a request and is waiting on the TLDS servers when SIGTERM
// arrives: the client still gets its answer, then the AS exits 0.
#[test]
fn the_as_answers_what_it_has_read_then_exits_on_sigterm() {
    let (a1, seen) = slow_tlds("k1", Duration::from_millis(300));
    let (a2, _) = slow_tlds("k2", Duration::from_millis(300));
    let mut auth = start_as(
        "127.0.0.1",
        ("127.0.0.1", a1.port(), 7001),
        ("127.0.0.1", a2.port(), 7002),
        &[],
    );
    let mut peer = LineClient::connect(auth.addrs[0]);
    let digest = hmac_md5(b"k2", b"late");
    peer.send(format!("late {digest}\n").as_bytes());
    assert_eq!(seen.recv_timeout(PATIENCE).unwrap(), "late");
    auth.signal("TERM");
    assert_eq!(peer.reply().as_deref(), Some("127.0.0.1 7002"));
    assert_eq!(peer.reply(), None, "closed after the answer");
    assert!(auth.wait_for_exit().success());
    assert_eq!(
        auth.wait_for_log("stopped"),
        "INFO as_server: stopped on SIGTERM"
    );
}

#[test]
fn each_tlds_exits_cleanly_on_sigint_and_sigterm() {
    let dir = scratch_dir("stop-tlds");
    for (name, signal) in [("tlds1", "INT"), ("tlds2", "TERM")] {
        let mut tlds = start_tlds(
            name,
            &dir,
            "127.0.0.1",
            "a.example 10.0.0.1 A\n",
            "k\n",
            &[],
        );
        let (_, client_port) = tlds.tlds_ports();
        let mut peer = LineClient::connect(SocketAddr::from(([127, 0, 0, 1], client_port)));
        assert_eq!(
            peer.ask("a.example").as_deref(),
            Some("a.example 10.0.0.1 A")
        );
        tlds.signal(signal);
        assert!(tlds.wait_for_exit().success(), "{name} on SIG{signal}");
        assert_eq!(peer.reply(), None, "{name} closed its connections");
        assert_eq!(
            tlds.wait_for_log("stopped"),
            format!("INFO {name}: stopped on SIG{signal}")
        );
    }
}

/// The client's temporary output file in `dir`, once it exists.
fn wait_for_temp_file(dir: &Path) {
    let started = Instant::now();
    loop {
        let temp = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().contains(".tmp"));
        if temp {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the client made no temporary file"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Files in `dir` other than the query and output files.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "q.txt" && name != "RESOLVED.txt")
        .collect()
}

/// A client waiting on a silent AS with its temporary output file open,
/// and the previous output beside it.
fn client_mid_run(dir: &Path) -> (Running, thread::JoinHandle<()>) {
    let (silent, held) = silent_server();
    let output = write_file(dir, "RESOLVED.txt", "previous run\n");
    let input = write_file(dir, "q.txt", "k c a.example\n");
    let args = client_args("127.0.0.1", silent.port(), &input, &output);
    let client = spawn_client(&args, &["--timeout", "30"], Stdio::null());
    wait_for_temp_file(dir);
    (client, held)
}

#[test]
fn a_killed_client_leaves_the_previous_output_whole() {
    let dir = scratch_dir("killed-client");
    let (client, _held) = client_mid_run(&dir);
    drop(client);
    assert_eq!(
        std::fs::read_to_string(dir.join("RESOLVED.txt")).unwrap(),
        "previous run\n"
    );
}

#[test]
fn a_client_stopped_by_a_signal_exits_128_plus_it_and_leaves_no_trace() {
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let dir = scratch_dir("signalled-client");
        let (mut client, _held) = client_mid_run(&dir);
        let kill = std::process::Command::new("kill")
            .args(["-s", signal, &client.0.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let started = Instant::now();
        let status =
            client.wait_within_patience(started, &format!("the client ignored SIG{signal}"));
        assert_eq!(status.code(), Some(code), "SIG{signal}");
        assert_eq!(
            std::fs::read_to_string(dir.join("RESOLVED.txt")).unwrap(),
            "previous run\n"
        );
        assert_eq!(leftovers(&dir), Vec::<String>::new(), "SIG{signal}");
    }
}

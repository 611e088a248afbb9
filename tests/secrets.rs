//! Secrets (docs/reliability.md): who may ask a TLDS for digests, and keys
//! that never leave their files.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::thread;
use std::time::{Duration, Instant};

use authdns::digest::hmac_md5;
use authdns_harness::*;

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

//! The four real programs, on loopback, resolving query files end to end.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;

use authdns::digest::hmac_md5;
use authdns_harness::*;

#[test]
fn sample_data_covers_every_case() {
    let dir = scratch_dir("samples");
    let system = System::start_samples(&dir);
    let queries = std::fs::read_to_string(repo_file("data/hns.txt")).unwrap();
    let run = run_client(&dir, system.auth.port(), &queries, &[]);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        run.output.as_deref(),
        Some(&SAMPLE_RESULTS.map(String::from)[..])
    );
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), SAMPLE_RESULTS);
}

#[test]
fn three_machines_on_loopback_with_the_same_ports() {
    let dir = scratch_dir("three-hosts");
    let read = |name: &str| std::fs::read_to_string(repo_file(name)).unwrap();
    let tlds1 = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.2",
        &read("data/tlds1.tsv"),
        &read("data/key1.txt"),
        &[],
    );
    let (as_port, client_port) = tlds1.tlds_ports();
    let (a, c) = (as_port.to_string(), client_port.to_string());
    let table2 = write_file(&dir, "t2.tsv", &read("data/tlds2.tsv"));
    let key2 = write_file(&dir, "k2.txt", &read("data/key2.txt"));
    let tlds2 = Server::start(
        "tlds2",
        &[
            "--bind",
            "127.0.0.3",
            "--as-port",
            &a,
            "--client-port",
            &c,
            "--table",
            table2.to_str().unwrap(),
            "--key-file",
            key2.to_str().unwrap(),
        ],
    );
    assert_eq!(tlds2.tlds_ports(), (as_port, client_port));
    let auth = start_as(
        "127.0.0.4",
        ("127.0.0.2", as_port, client_port),
        ("127.0.0.3", as_port, client_port),
        &[],
    );
    assert_eq!(auth.addrs[0].ip().to_string(), "127.0.0.4");
    let input = write_file(&dir, "q.txt", &read("data/hns.txt"));
    let output = dir.join("out.txt");
    let args = client_args("127.0.0.4", auth.port(), &input, &output);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_to_end("client", &args, &dir);
    assert!(run.status.success(), "{run:?}");
    let written = std::fs::read_to_string(output).unwrap();
    assert_eq!(written.lines().collect::<Vec<_>>(), SAMPLE_RESULTS);
}

#[test]
fn malformed_query_lines_get_their_own_line_and_do_not_stop_the_rest() {
    let dir = scratch_dir("malformed");
    let system = System::start_samples(&dir);
    let long_challenge = "c".repeat(256);
    let queries = format!(
        "k1234 alpha Amazon.org\r\n\
         only two\n\
         \n\
         # comment\n\
         k1234 {long_challenge} Amazon.org\n\
         k5678\tfoxtrot\tgoogle.com"
    );
    for window in ["1", "1024"] {
        let run = run_client(&dir, system.auth.port(), &queries, &["--window", window]);
        assert_eq!(run.status.code(), Some(1), "{run:?}");
        let output = run.output.expect("output file");
        assert_eq!(output.len(), 4, "{output:?}");
        assert_eq!(output[0], "Amazon.org 94.5.6.7 A");
        assert!(
            output[1].starts_with("Error: line 2: expected 3 fields"),
            "{}",
            output[1]
        );
        assert!(
            output[2].starts_with("Error: line 5: challenge is 256 bytes"),
            "{}",
            output[2]
        );
        assert_eq!(output[3], "google.com 142.250.80.46 A");
    }
}

/// A larger batch, with expectations computed from the tables here.
fn batch(count: usize) -> (String, Vec<String>) {
    let mut queries = String::new();
    let mut expected = Vec::new();
    for i in 0..count {
        let (key, host, answer) = match i % 5 {
            0 => (
                "key-one",
                format!("host{i}.one"),
                format!("host{i}.one 10.1.{}.{} A", i / 256 % 256, i % 256),
            ),
            1 => (
                "key-two",
                format!("HOST{i}.two."),
                format!("host{i}.two 10.2.{}.{} A", i / 256 % 256, i % 256),
            ),
            2 => (
                "key-one",
                format!("missing{i}.one"),
                format!("missing{i}.one - Error:HOST NOT FOUND"),
            ),
            3 => (
                "key-two",
                format!("host{}.one", i - 3),
                format!("host{}.one - Error:HOST NOT FOUND", i - 3),
            ),
            _ => (
                "wrong-key",
                format!("host{i}.one"),
                format!("host{i}.one - Error:No Match Found"),
            ),
        };
        queries.push_str(&format!("{key} challenge{i} {host}\n"));
        expected.push(answer);
    }
    (queries, expected)
}

fn batch_tables(count: usize) -> (String, String) {
    let mut one = String::new();
    let mut two = String::new();
    for i in 0..count {
        let octets = format!("{}.{}", i / 256 % 256, i % 256);
        match i % 5 {
            0 => one.push_str(&format!("host{i}.one\t10.1.{octets}\tA\n")),
            1 => two.push_str(&format!("host{i}.two\t10.2.{octets}\tA\n")),
            _ => {}
        }
    }
    (one, two)
}

#[test]
fn every_window_gives_the_same_answers_in_input_order() {
    let dir = scratch_dir("windows");
    let count = 3000;
    let (one, two) = batch_tables(count);
    let system = System::start_with(&one, "key-one\n", &two, "key-two\n", &dir);
    let (queries, expected) = batch(count);
    for window in ["1", "7", "1024", "4096"] {
        let run = run_client(&dir, system.auth.port(), &queries, &["--window", window]);
        assert!(run.status.success(), "window {window}: {}", run.stderr);
        assert_eq!(
            run.output.as_deref(),
            Some(&expected[..]),
            "window {window}"
        );
    }
}

#[test]
fn several_clients_at_once_each_get_their_own_answers() {
    let dir = scratch_dir("concurrent");
    let count = 500;
    let (one, two) = batch_tables(count);
    let system = System::start_with(&one, "key-one\n", &two, "key-two\n", &dir);
    let (queries, expected) = batch(count);
    let port = system.auth.port();
    let runs: Vec<_> = (0..6)
        .map(|n| {
            let dir = dir.join(format!("client{n}"));
            std::fs::create_dir_all(&dir).unwrap();
            let queries = queries.clone();
            thread::spawn(move || run_client(&dir, port, &queries, &["--window", "16"]))
        })
        .collect();
    for run in runs {
        let run = run.join().unwrap();
        assert!(run.status.success(), "{}", run.stderr);
        assert_eq!(run.output.as_deref(), Some(&expected[..]));
    }
}

#[test]
fn an_unreachable_tlds_is_named_and_the_other_still_serves() {
    let dir = scratch_dir("unreachable");
    let read = |name: &str| std::fs::read_to_string(repo_file(name)).unwrap();
    let tlds1 = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        &read("data/tlds1.tsv"),
        &read("data/key1.txt"),
        &[],
    );
    let (a1, c1) = tlds1.tlds_ports();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let auth = start_as(
        "127.0.0.1",
        ("127.0.0.1", a1, c1),
        ("127.0.0.1", closed, closed),
        &[],
    );
    for window in ["1", "1024"] {
        let run = run_client(
            &dir,
            auth.port(),
            "k1234 a Amazon.org\nk5678 b google.com\nk9999 c x.org\n",
            &["--window", window],
        );
        assert_eq!(run.status.code(), Some(1), "{run:?}");
        let output = run.output.unwrap();
        assert_eq!(output[0], "Amazon.org 94.5.6.7 A");
        // The first request to find it refusing says so; the AS then marks
        // it down, and later ones say that, with the same cause.
        let named = format!("google.com - Error:tlds2 at 127.0.0.1:{closed} ");
        assert!(output[1].starts_with(&named), "{}", output[1]);
        assert!(
            output[1].ends_with("unreachable: Connection refused (os error 111)"),
            "{}",
            output[1]
        );
        assert!(
            output[2].starts_with("x.org - Error:tlds2 at 127.0.0.1"),
            "{}",
            output[2]
        );
    }
}

/// Stands in for the AS or a TLDS: records every line it receives and
/// answers each with `reply(line)`.
fn fake_server(reply: impl Fn(&str) -> String + Send + 'static) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = mpsc::channel();
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut writer = stream.try_clone().unwrap();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let answer = reply(&line);
            let _ = seen_tx.send(line);
            if writer.write_all(format!("{answer}\n").as_bytes()).is_err() {
                return;
            }
        }
    });
    (port, seen_rx)
}

#[test]
fn the_as_sees_no_hostname_and_only_the_named_tlds_sees_it() {
    for window in ["1", "8"] {
        only_the_named_tlds_sees_the_hostname(window);
    }
}

fn only_the_named_tlds_sees_the_hostname(window: &str) {
    let dir = scratch_dir("fakes");
    let (first_port, first_seen) = fake_server(|host| format!("{host} 10.9.9.9 A"));
    let (second_port, second_seen) = fake_server(|host| format!("{host} 6.6.6.6 A"));
    // The AS names a different TLDS for each challenge, so each stub is
    // named for one query and must see that query's hostname alone.
    let (as_port, as_seen) = fake_server(move |request| {
        let port = if request.starts_with("foxtrot ") {
            first_port
        } else {
            second_port
        };
        format!("127.0.0.1 {port}")
    });
    let run = run_client(
        &dir,
        as_port,
        "k5678 foxtrot Secret.example\nk5678 golf Other.example\nk5678 foxtrot Third.example\n",
        &["--window", window],
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        run.output.unwrap(),
        [
            "Secret.example 10.9.9.9 A",
            "Other.example 6.6.6.6 A",
            "Third.example 10.9.9.9 A"
        ]
    );
    let to_as: Vec<String> = as_seen.try_iter().collect();
    let digest = |challenge: &str| hmac_md5(b"k5678", challenge.as_bytes()).to_string();
    assert_eq!(
        to_as,
        [
            format!("foxtrot {}", digest("foxtrot")),
            format!("golf {}", digest("golf")),
            format!("foxtrot {}", digest("foxtrot")),
        ]
    );
    assert_eq!(to_as[0], "foxtrot 83cdae16a693560b34bac1f64b7cf10a");
    assert_eq!(
        first_seen.try_iter().collect::<Vec<_>>(),
        ["Secret.example", "Third.example"]
    );
    assert_eq!(
        second_seen.try_iter().collect::<Vec<_>>(),
        ["Other.example"]
    );
}

// An empty reply is not a route, on either client path (the pipeline keeps
// the meaning of the AS's last reply line, which must not start out as an
// empty one).
#[test]
fn an_empty_reply_from_the_as_is_a_bad_reply() {
    for window in ["1", "8"] {
        let dir = scratch_dir("empty-as-reply");
        let (as_port, _) = fake_server(|_| String::new());
        let run = run_client(
            &dir,
            as_port,
            "k5678 foxtrot a.example\n",
            &["--window", window],
        );
        assert!(!run.status.success(), "window {window}: {run:?}");
        let output = run.output.unwrap();
        assert_eq!(output.len(), 1, "window {window}");
        assert!(
            output[0].starts_with("a.example - Error:bad reply from the AS"),
            "window {window}: {}",
            output[0]
        );
    }
}

#[test]
fn servers_answer_bad_requests_and_keep_serving_the_connection() {
    let dir = scratch_dir("bad-requests");
    let system = System::start_samples(&dir);
    let digest = hmac_md5(b"k1234", b"alpha").to_string();

    let mut tlds_as = LineClient::connect(system.tlds1.addrs[0]);
    assert!(tlds_as.ask("").unwrap().starts_with("Error: "));
    assert!(
        tlds_as
            .ask("two fields")
            .unwrap()
            .starts_with("Error: expected 1 field")
    );
    assert_eq!(tlds_as.ask("alpha").unwrap(), digest);

    let mut tlds_client = LineClient::connect(system.tlds1.addrs[1]);
    assert!(tlds_client.ask("a b").unwrap().starts_with("Error: "));
    assert_eq!(
        tlds_client.ask("rutgers.EDU.").unwrap(),
        "rutgers.edu 128.6.4.2 A"
    );
    assert_eq!(tlds_client.ask("edu").unwrap(), "edu - NS");

    let mut auth = LineClient::connect(system.auth.addrs[0]);
    assert!(
        auth.ask("alpha")
            .unwrap()
            .starts_with("Error: expected 2 fields")
    );
    assert!(
        auth.ask("alpha 1234")
            .unwrap()
            .starts_with("Error: digest must be 32 hex")
    );
    let (_, c1) = system.tlds1.tlds_ports();
    assert_eq!(
        auth.ask(&format!("alpha {digest}")).unwrap(),
        format!("127.0.0.1 {c1}")
    );
    assert_eq!(
        auth.ask(&format!("beta {digest}")).unwrap(),
        "No Match Found"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = scratch_dir("pipelined");
    let system = System::start_samples(&dir);
    let (_, c1) = system.tlds1.tlds_ports();
    let (_, c2) = system.tlds2.tlds_ports();
    // A TLDS's AS port: every reply is a different digest, so any reordering
    // shows.
    let challenges: Vec<String> = (0..600).map(|i| format!("ch{i}")).collect();
    let mut tlds_as = LineClient::connect(system.tlds1.addrs[0]);
    tlds_as.send(
        challenges
            .iter()
            .map(|c| format!("{c}\n"))
            .collect::<String>()
            .as_bytes(),
    );
    for (i, challenge) in challenges.iter().enumerate() {
        let digest = hmac_md5(b"k1234", challenge.as_bytes()).to_string();
        assert_eq!(tlds_as.reply(), Some(digest), "TLDS AS port, reply {i}");
    }
    // A TLDS's client port: every hostname has an address of its own.
    let table: String = (0..600)
        .map(|i| format!("h{i}.example\t10.0.{}.{}\tA\n", i / 256, i % 256))
        .collect();
    let big = start_tlds("tlds1", &dir, "127.0.0.1", &table, "k\n", &[]);
    let mut tlds_client = LineClient::connect(big.addrs[1]);
    tlds_client.send(
        (0..600)
            .map(|i| format!("h{i}.example\n"))
            .collect::<String>()
            .as_bytes(),
    );
    for i in 0..600 {
        let expected = format!("h{i}.example 10.0.{}.{} A", i / 256, i % 256);
        assert_eq!(
            tlds_client.reply(),
            Some(expected),
            "TLDS client port, reply {i}"
        );
    }
    // The AS has three answers only (tlds1, tlds2, no match), so they come
    // in a pseudo-random order: a reordering shows wherever two different
    // answers trade places, which is almost everywhere.
    let mut seed: u32 = 12345;
    let mut burst = String::new();
    let mut expected = Vec::new();
    for i in 0..600 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let (key, answer) = match (seed >> 16) % 3 {
            0 => ("k1234", format!("127.0.0.1 {c1}")),
            1 => ("k5678", format!("127.0.0.1 {c2}")),
            _ => ("nobody's", "No Match Found".to_owned()),
        };
        let challenge = format!("ch{i}");
        let digest = hmac_md5(key.as_bytes(), challenge.as_bytes());
        burst.push_str(&format!("{challenge} {digest}\n"));
        expected.push(answer);
    }
    let mut auth = LineClient::connect(system.auth.addrs[0]);
    auth.send(burst.as_bytes());
    for (i, answer) in expected.into_iter().enumerate() {
        assert_eq!(auth.reply(), Some(answer), "AS, reply {i}");
    }
    // A raw TcpStream that sends its last request without a newline and
    // closes its writing half still gets the answer.
    let mut stream = TcpStream::connect(system.tlds2.addrs[1]).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(b"google.com\nexample.NET").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let lines: Vec<String> = BufReader::new(stream).lines().map(Result::unwrap).collect();
    assert_eq!(
        lines,
        ["google.com 142.250.80.46 A", "example.net 93.184.216.34 A"]
    );
}

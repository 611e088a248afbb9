//! `--metrics` on the real programs: counters that equal what was sent,
//! histograms whose counts equal the requests, a TLDS going down and
//! coming back as the AS sees it, reloads, the exposition checked by
//! `promtool` (Debian's `prometheus`, installed by `.ci/run`), and an HTTP
//! endpoint that no malformed or endless request can hold.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

use authdns_harness::dns::{DnsTcp, TsigKey, ask_udp, now, query, sign};
use authdns_harness::*;
use hickory_proto::rr::RecordType;

const METRICS: [&str; 2] = ["--metrics", "127.0.0.1:0"];

/// A server's metrics address: the last address of its readiness line.
fn metrics_addr(server: &Server) -> SocketAddr {
    let line = server.wait_for_log("metrics on ");
    assert!(line.contains(&format!("metrics on {}", server.addrs.last().unwrap())));
    *server.addrs.last().unwrap()
}

/// tlds1 serving one record, `a.example`, with `flags`.
fn one_record_tlds(dir: &std::path::Path, flags: &[&str]) -> Server {
    start_tlds(
        "tlds1",
        dir,
        "127.0.0.1",
        "a.example 10.0.0.1 A\n",
        "k",
        flags,
    )
}

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

fn requests(exposition: &str, port: &str, outcome: &str) -> f64 {
    sample(
        exposition,
        &series(
            "authdns_requests_total",
            &[("port", port), ("outcome", outcome)],
        ),
    )
}

fn duration_count(exposition: &str, port: &str) -> f64 {
    sample(
        exposition,
        &series("authdns_request_duration_seconds_count", &[("port", port)]),
    )
}

/// Eight queries: four for tlds1 (three found, one not), two for tlds2,
/// two with a key neither holds.
const BATCH: &str = "k1234 a1 Amazon.org\nk1234 a2 Amazon.org\nk1234 a3 AMAZON.org\n\
                     k1234 a4 nothing.example\nk5678 b1 google.com\nk5678 b2 google.com\n\
                     nokey c1 Amazon.org\nnokey c2 google.com\n";

#[test]
fn counters_and_histograms_equal_what_was_sent() {
    let dir = scratch_dir("metrics-counts");
    let system = System::start_samples_with(&dir, &METRICS, &METRICS);
    let [t1, t2, auth] = [&system.tlds1, &system.tlds2, &system.auth].map(metrics_addr);
    for batch in 1..=2 {
        let run = run_client(&dir, system.auth.port(), BATCH, &["--window", "4"]);
        assert!(run.status.success(), "{run:?}");
        let n = f64::from(batch);
        let auth = scrape(auth);
        assert_eq!(requests(&auth, "client", "tlds1"), 4.0 * n, "{auth}");
        assert_eq!(requests(&auth, "client", "tlds2"), 2.0 * n);
        assert_eq!(requests(&auth, "client", "no_match"), 2.0 * n);
        assert_eq!(requests(&auth, "client", "error"), 0.0);
        assert_eq!(duration_count(&auth, "client"), 8.0 * n);
        let tlds_up = |tlds| sample(&auth, &series("authdns_tlds_up", &[("tlds", tlds)]));
        assert_eq!((tlds_up("tlds1"), tlds_up("tlds2")), (1.0, 1.0));
        for tlds in ["tlds1", "tlds2"] {
            let link = |what| sample(&auth, &series(what, &[("tlds", tlds)]));
            let bursts = link("authdns_tlds_link_bursts_total");
            let writes = link("authdns_tlds_link_writes_total");
            // Each burst is queued once and carried by one write at least
            // as large; a write may carry several.
            assert!((1.0..=8.0 * n).contains(&bursts), "{auth}");
            assert!((1.0..=bursts).contains(&writes), "{auth}");
        }
        for (addr, found, not_found) in [(t1, 3.0, 1.0), (t2, 2.0, 0.0)] {
            let tlds = scrape(addr);
            // The AS asks both TLDS servers about every request.
            assert_eq!(requests(&tlds, "as", "signed"), 8.0 * n, "{tlds}");
            assert_eq!(duration_count(&tlds, "as"), 8.0 * n);
            assert_eq!(requests(&tlds, "client", "found"), found * n);
            assert_eq!(requests(&tlds, "client", "not_found"), not_found * n);
            assert_eq!(duration_count(&tlds, "client"), (found + not_found) * n);
            assert_eq!(sample(&tlds, "authdns_records"), 4.0);
        }
    }
    let auth = scrape(auth);
    assert!(sample(&auth, "authdns_process_start_time_seconds") > 1.7e9);
    assert_eq!(
        sample(
            &auth,
            &series(
                "authdns_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            )
        ),
        1.0
    );
    assert!(
        sample(
            &auth,
            &series(
                "authdns_connections_total",
                &[("port", "client"), ("outcome", "accepted")]
            )
        ) >= 2.0
    );
}

#[test]
fn the_dns_port_is_counted_by_rcode_and_tsig_outcome() {
    let dir = scratch_dir("metrics-dns");
    let tlds = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        &read_sample("data/tlds1.tsv"),
        "k1234",
        &["--dns-port", "0", "--metrics", "127.0.0.1:0"],
    );
    let (dns, metrics) = (tlds.addrs[2], metrics_addr(&tlds));
    let key = TsigKey::new("tlds1.", b"k1234");
    for (id, name) in [(1, "Amazon.org."), (2, "nothing.org."), (3, "Amazon.org.")] {
        let (signed, _) = sign(&query(name, RecordType::A, id, None), &key, now());
        ask_udp(dns, &signed);
    }
    let (wrong, _) = sign(
        &query("Amazon.org.", RecordType::A, 4, None),
        &TsigKey::new("tlds1.", b"wrong"),
        now(),
    );
    ask_udp(dns, &wrong);
    let mut tcp = DnsTcp::connect(dns);
    tcp.send_all(&[query("edu.", RecordType::A, 5, None)]);
    tcp.receive().unwrap();
    drop(tcp);
    let exposition = scrape(metrics);
    assert_eq!(requests(&exposition, "dns", "NOERROR"), 3.0, "{exposition}");
    assert_eq!(requests(&exposition, "dns", "NXDOMAIN"), 1.0);
    assert_eq!(requests(&exposition, "dns", "NOTAUTH"), 1.0);
    assert_eq!(duration_count(&exposition, "dns"), 5.0);
    let tsig = |outcome| {
        sample(
            &exposition,
            &series(
                "authdns_dns_tsig_total",
                &[("port", "dns"), ("outcome", outcome)],
            ),
        )
    };
    assert_eq!(
        (tsig("verified"), tsig("BADSIG"), tsig("unsigned")),
        (3.0, 1.0, 1.0)
    );
    assert!(
        sample(
            &exposition,
            &series(
                "authdns_connections_total",
                &[("port", "dns"), ("outcome", "accepted")]
            )
        ) >= 1.0
    );
}

/// Asks the AS at `auth` to match a challenge signed with k1234.
fn ask_as(auth: SocketAddr, challenge: &str) -> Option<String> {
    let mut client = LineClient::connect(auth);
    client.ask(&format!(
        "{challenge} {}",
        hmac_md5_hex(b"k1234", challenge.as_bytes())
    ))
}

#[test]
fn a_tlds_going_down_and_coming_back_shows_in_the_as() {
    let dir = scratch_dir("metrics-down");
    let mut system = System::start_samples_with(&dir, &[], &METRICS);
    let metrics = metrics_addr(&system.auth);
    let auth = system.auth.addrs[0];
    let up =
        |exposition: &str| sample(exposition, &series("authdns_tlds_up", &[("tlds", "tlds2")]));
    let downs = |exposition: &str| {
        sample(
            exposition,
            &series("authdns_tlds_down_total", &[("tlds", "tlds2")]),
        )
    };
    assert!(ask_as(auth, "first").is_some());
    let before = scrape(metrics);
    assert_eq!((up(&before), downs(&before)), (1.0, 0.0), "{before}");

    let (a2, c2) = system.tlds2.tlds_ports();
    system.tlds2.stop_and_read_log();
    let mut asked = 0;
    eventually(|| {
        asked += 1;
        ask_as(auth, &format!("down{asked}"));
        let now = scrape(metrics);
        up(&now) == 0.0 && downs(&now) == 1.0
    });

    let table = read_sample("data/tlds2.tsv");
    let ports = [a2.to_string(), c2.to_string()];
    let _tlds2 = start_tlds(
        "tlds2",
        &dir,
        "127.0.0.1",
        &table,
        "k5678",
        &["--as-port", &ports[0], "--client-port", &ports[1]],
    );
    eventually(|| {
        asked += 1;
        ask_as(auth, &format!("back{asked}"));
        up(&scrape(metrics)) == 1.0
    });
    let after = scrape(metrics);
    assert_eq!(downs(&after), 1.0, "{after}");
    // Its link opened a new connection to the restarted tlds2.
    assert!(
        sample(
            &after,
            &series("authdns_tlds_link_reconnects_total", &[("tlds", "tlds2")])
        ) >= 1.0,
        "{after}"
    );
    assert!(
        sample(
            &after,
            &series(
                "authdns_tlds_answer_duration_seconds_count",
                &[("tlds", "tlds1")]
            )
        ) >= 1.0
    );
}

#[test]
fn a_reload_shows_in_the_reload_counter_and_the_records_gauge() {
    let dir = scratch_dir("metrics-reload");
    let tlds = one_record_tlds(&dir, &METRICS);
    let metrics = metrics_addr(&tlds);
    let reloads = |exposition: &str, result| {
        sample(
            exposition,
            &series("authdns_reloads_total", &[("result", result)]),
        )
    };
    let before = scrape(metrics);
    assert_eq!(sample(&before, "authdns_records"), 1.0);
    assert_eq!(reloads(&before, "ok"), 0.0);
    let loaded_at = sample(&before, "authdns_last_reload_success_timestamp_seconds");
    assert!(loaded_at > 1.7e9);

    std::fs::write(
        dir.join("tlds1.tsv"),
        "a.example 10.0.0.2 A\nb.example 10.0.0.3 A\n",
    )
    .unwrap();
    tlds.signal("HUP");
    tlds.wait_for_log("serving 2 records");
    let after = scrape(metrics);
    assert_eq!(sample(&after, "authdns_records"), 2.0, "{after}");
    assert_eq!(reloads(&after, "ok"), 1.0);
    assert!(sample(&after, "authdns_last_reload_success_timestamp_seconds") >= loaded_at);

    std::fs::write(dir.join("tlds1.tsv"), "broken\n").unwrap();
    tlds.signal("HUP");
    tlds.wait_for_log("reload failed");
    let failed = scrape(metrics);
    assert_eq!(reloads(&failed, "failed"), 1.0);
    assert_eq!(sample(&failed, "authdns_records"), 2.0);
}

/// `promtool check metrics` on `exposition`: its verdict.
fn promtool(exposition: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot run promtool ({err}): install prometheus, as .ci/run does")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn every_servers_exposition_passes_promtool() {
    let dir = scratch_dir("metrics-promtool");
    let system = System::start_samples_with(
        &dir,
        &["--dns-port", "0", "--metrics", "127.0.0.1:0"],
        &METRICS,
    );
    let run = run_client(&dir, system.auth.port(), BATCH, &[]);
    assert!(run.status.success());
    for server in [&system.tlds1, &system.tlds2, &system.auth] {
        let exposition = scrape(metrics_addr(server));
        let (ok, verdict) = promtool(&exposition);
        assert!(ok, "{verdict}\n{exposition}");
    }
    // The check can fail: a counter without its suffix is caught.
    let (ok, _) = promtool("# HELP x A counter.\n# TYPE x counter\nx 1\n");
    assert!(!ok, "promtool accepts anything");
}

#[test]
fn other_paths_are_404_and_bad_requests_cannot_hold_the_endpoint() {
    let dir = scratch_dir("metrics-http");
    let tlds = one_record_tlds(&dir, &METRICS);
    let metrics = metrics_addr(&tlds);
    let (status, _) = http_get(metrics, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http_get(metrics, "/metrics/extra");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // Not HTTP at all: 400, and the connection ends.
    let mut garbage = TcpStream::connect(metrics).unwrap();
    garbage.set_read_timeout(Some(PATIENCE)).unwrap();
    garbage.write_all(b"\x01\x02 hello\r\n\r\n").unwrap();
    let mut reply = String::new();
    garbage.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");

    // A header that never ends: the server stops reading it at the line
    // limit and closes, while scrapes go on being answered.
    let mut endless = TcpStream::connect(metrics).unwrap();
    endless.set_read_timeout(Some(PATIENCE)).unwrap();
    endless
        .write_all(b"GET /metrics HTTP/1.1\r\nX-Long: ")
        .unwrap();
    let started = Instant::now();
    let mut sent = 0;
    let closed = loop {
        match endless.write(&[b'a'; 4096]) {
            Ok(n) => sent += n,
            Err(_) => break true,
        }
        if sent > 64 << 20 || started.elapsed() > PATIENCE {
            break false;
        }
    };
    assert!(closed, "still reading an endless header after {sent} bytes");

    // Silent, or a request trickled in too slowly: closed within bounds.
    let mut silent = TcpStream::connect(metrics).unwrap();
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    silent.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = silent.read_to_end(&mut rest);
    assert!(
        started.elapsed() < PATIENCE,
        "a silent request held its connection"
    );
    let (status, body) = http_get(metrics, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("authdns_records 1"));
    // Both bad connections are gone again.
    eventually(|| {
        sample(
            &scrape(metrics),
            &series("authdns_connections_open", &[("port", "metrics")]),
        ) == 1.0
    });
}

fn connections(exposition: &str, port: &str, outcome: &str) -> f64 {
    sample(
        exposition,
        &series(
            "authdns_connections_total",
            &[("port", port), ("outcome", outcome)],
        ),
    )
}

// Each way a connection ends early is counted: refused by --as-allow, busy,
// closed to make room, closed idle; and the open gauge follows. The server
// then stops as usual, the metrics port with it.
#[test]
fn connection_outcomes_are_counted() {
    let dir = scratch_dir("metrics-connections");
    let mut tlds = one_record_tlds(
        &dir,
        &[
            "--metrics",
            "127.0.0.1:0",
            "--as-allow",
            "10.9.9.9",
            "--max-connections",
            "1",
            "--idle-timeout",
            "3",
        ],
    );
    let metrics = metrics_addr(&tlds);
    let (as_port, client_port) = (tlds.addrs[0], tlds.addrs[1]);

    let mut refused = LineClient::connect(as_port);
    assert_eq!(refused.reply().as_deref(), Some("Error: not allowed"));

    // One client port slot: a second client, while the first has not
    // waited a second, is busy.
    let mut first = LineClient::connect(client_port);
    assert_eq!(
        first.ask("a.example").as_deref(),
        Some("a.example 10.0.0.1 A")
    );
    let open = scrape(metrics);
    assert_eq!(
        sample(
            &open,
            &series("authdns_connections_open", &[("port", "client")])
        ),
        1.0,
        "{open}"
    );
    let mut busy = LineClient::connect(client_port);
    assert_eq!(busy.reply().as_deref(), Some("Error: server busy"));
    assert_eq!(connections(&scrape(metrics), "client", "busy"), 1.0);
    // Once the first has waited a second, a newcomer closes it.
    let mut newcomers = Vec::new();
    eventually(|| {
        let mut newcomer = LineClient::connect(client_port);
        let served = newcomer.ask("a.example").as_deref() == Some("a.example 10.0.0.1 A");
        newcomers.push(newcomer);
        served
    });
    let after = scrape(metrics);
    assert_eq!(connections(&after, "client", "evicted"), 1.0, "{after}");
    assert!(connections(&after, "client", "accepted") >= 2.0);
    assert_eq!(connections(&after, "as", "refused"), 1.0);
    // The last newcomer, left silent, is closed at the idle timeout.
    eventually(|| connections(&scrape(metrics), "client", "idle_closed") == 1.0);
    drop((first, busy, refused, newcomers));
    let log = tlds.stop_and_read_log();
    assert!(log.contains("stopped on SIGTERM"), "{log}");
}

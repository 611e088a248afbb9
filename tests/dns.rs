//! The DNS port of the real `tlds1` program: answers over UDP and over
//! TCP (pipelined), TSIG checked by the harness's own HMAC-MD5 and by the
//! real tools (`dig` from bind9-dnsutils, `kdig` from knot-dnsutils, both
//! installed by `.ci/run`), reloads, logs, limits and malformed input.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use authdns_harness::dns::{
    DnsTcp, Reply, TsigKey, ask_udp, base64, now, query, sign, udp_exchange,
};
use authdns_harness::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

/// A key for these tests: seen nowhere but in the key file and the MACs.
const SECRET: &str = "dnsTestSecret42";

fn key() -> TsigKey {
    TsigKey::new("tlds1.", SECRET.as_bytes())
}

/// tlds1 on the sample table with a DNS port and `flags`; its DNS address.
fn tlds1_with_dns(dir: &Path, flags: &[&str]) -> (Server, SocketAddr) {
    let table = read_sample("data/tlds1.tsv");
    let mut args = vec!["--dns-port", "0"];
    args.extend_from_slice(flags);
    let server = start_tlds("tlds1", dir, "127.0.0.1", &table, SECRET, &args);
    let dns = server.addrs[2];
    (server, dns)
}

/// `dig` or `kdig` with `args`: its whole output, once it has exited.
fn tool(name: &str, args: &[String]) -> String {
    let output = Command::new(name).args(args).output().unwrap_or_else(|err| {
        panic!(
            "cannot run {name} ({err}): install bind9-dnsutils and knot-dnsutils, as .ci/run does"
        )
    });
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} {args:?}: {text}");
    text
}

/// The arguments that ask `dns` for `name`, signed with `secret` if given.
fn ask_args(dns: SocketAddr, secret: Option<&str>, name: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        format!("@{}", dns.ip()),
        "-p".into(),
        dns.port().to_string(),
    ];
    if let Some(secret) = secret {
        args.extend([
            "-y".into(),
            format!("hmac-md5:tlds1:{}", base64(secret.as_bytes())),
        ]);
    }
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args.push(name.into());
    args
}

#[test]
fn the_readiness_line_names_the_dns_port() {
    let dir = scratch_dir("dns-ready");
    let (server, dns) = tlds1_with_dns(&dir, &[]);
    let line = server.wait_for_log("serving ");
    assert!(
        line.ends_with(&format!(", DNS port on {dns} (UDP and TCP)")),
        "{line}"
    );
    assert_ne!(dns.port(), 0);
}

#[test]
fn udp_answers_hit_nxdomain_nodata_and_0x20_signed() {
    let dir = scratch_dir("dns-udp");
    let (_server, dns) = tlds1_with_dns(&dir, &[]);
    let ask = |name: &str, qtype, id| {
        let (signed, mac) = sign(&query(name, qtype, id, Some(1232)), &key(), now());
        let reply = ask_udp(dns, &signed);
        assert!(reply.verifies(&key(), &mac), "{name}: {reply:?}");
        assert_eq!(reply.id(), id);
        reply
    };
    let hit = ask("aMAZon.oRG.", RecordType::A, 1);
    assert_eq!(hit.message.metadata.response_code, ResponseCode::NoError);
    assert!(hit.message.metadata.authoritative);
    assert_eq!(hit.message.answers[0].name.to_ascii(), "Amazon.org.");
    assert_eq!(
        hit.message.answers[0].data,
        RData::A("94.5.6.7".parse().unwrap())
    );
    assert_eq!(hit.message.queries[0].name().to_ascii(), "aMAZon.oRG.");

    let missing = ask("nothing.example.", RecordType::A, 2);
    assert_eq!(
        missing.message.metadata.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        missing.message.authorities[0].record_type(),
        RecordType::SOA
    );

    let nodata = ask("edu.", RecordType::A, 3);
    assert_eq!(nodata.message.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.message.answers.is_empty());
    assert_eq!(nodata.message.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn a_zone_refuses_names_outside_it() {
    let dir = scratch_dir("dns-zone");
    let (_server, dns) = tlds1_with_dns(&dir, &["--dns-zone", "org"]);
    let outside = ask_udp(dns, &query("rutgers.edu.", RecordType::A, 4, None));
    assert_eq!(
        outside.message.metadata.response_code,
        ResponseCode::Refused
    );
    assert!(!outside.message.metadata.authoritative);
    let inside = ask_udp(dns, &query("amazon.org.", RecordType::A, 5, None));
    assert_eq!(inside.message.answers.len(), 1);
}

#[test]
fn tcp_answers_pipelined_queries_in_order_on_one_connection() {
    let dir = scratch_dir("dns-tcp");
    let (_server, dns) = tlds1_with_dns(&dir, &[]);
    let names = [
        "Amazon.org.",
        "nothing.org.",
        "www.ietf.org.",
        "edu.",
        "AMAZON.ORG.",
    ];
    let mut macs = Vec::new();
    let mut requests = Vec::new();
    for (id, name) in names.iter().enumerate() {
        let (signed, mac) = sign(
            &query(name, RecordType::A, id as u16 + 100, None),
            &key(),
            now(),
        );
        requests.push(signed);
        macs.push(mac);
    }
    let mut connection = DnsTcp::connect(dns);
    connection.send_all(&requests);
    let rcodes: Vec<u8> = (0..names.len())
        .map(|i| {
            let reply = connection.receive().expect("a reply");
            assert_eq!(reply.id(), i as u16 + 100);
            assert!(reply.verifies(&key(), &macs[i]));
            reply.rcode()
        })
        .collect();
    assert_eq!(rcodes, [0, 3, 0, 0, 0]);
    // The connection stays open for more.
    connection.send_all(&[query("Amazon.org.", RecordType::A, 200, None)]);
    assert_eq!(connection.receive().unwrap().id(), 200);
}

#[test]
fn udp_truncates_what_does_not_fit_and_tcp_carries_it() {
    let dir = scratch_dir("dns-tc");
    let long = format!("{}.example", vec!["x".repeat(60); 4].join("."));
    let server = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        &format!("{long} 10.0.0.7 A\n"),
        SECRET,
        &["--dns-port", "0"],
    );
    let dns = server.addrs[2];
    let request = query(&format!("{long}."), RecordType::A, 6, Some(512));
    let udp = ask_udp(dns, &request);
    assert!(udp.message.metadata.truncation);
    assert!(udp.message.answers.is_empty());
    let mut tcp = DnsTcp::connect(dns);
    tcp.send_all(&[request]);
    let whole = tcp.receive().unwrap();
    assert!(!whole.message.metadata.truncation);
    assert_eq!(whole.message.answers.len(), 1);
}

// dig and kdig, the tools operators use, get a record with a TSIG they
// verify themselves, over UDP and TCP.
#[test]
fn dig_and_kdig_verify_the_signed_answer() {
    let dir = scratch_dir("dns-dig");
    let (_server, dns) = tlds1_with_dns(&dir, &[]);
    for extra in [&[][..], &["+tcp"][..]] {
        let out = tool("dig", &ask_args(dns, Some(SECRET), "Amazon.org", extra));
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(out.contains("flags: qr aa"), "{out}");
        assert!(out.contains("Amazon.org.\t\t60\tIN\tA\t94.5.6.7"), "{out}");
        assert!(out.contains(";; TSIG PSEUDOSECTION:"), "{out}");
        assert!(!out.contains("Couldn't verify"), "{out}");
        assert!(!out.contains("could not be validated"), "{out}");
    }
    let out = tool(
        "kdig",
        &ask_args(dns, Some(SECRET), "Amazon.org", &["+tcp"]),
    );
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("94.5.6.7"), "{out}");
    assert!(out.contains("TSIG PSEUDOSECTION"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    let out = tool("kdig", &ask_args(dns, Some(SECRET), "nothing.org", &[]));
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
}

#[test]
fn the_wrong_secret_is_badsig_and_the_wrong_key_name_badkey() {
    let dir = scratch_dir("dns-badsig");
    let (server, dns) = tlds1_with_dns(&dir, &["-vv"]);
    let out = tool(
        "dig",
        &ask_args(dns, Some("notTheSecret"), "Amazon.org", &[]),
    );
    assert!(out.contains("status: NOTAUTH"), "{out}");
    assert!(out.contains("BADSIG"), "{out}");
    assert!(!out.contains("94.5.6.7"), "{out}");
    let mut args = ask_args(dns, None, "Amazon.org", &[]);
    args.extend([
        "-y".into(),
        format!("hmac-md5:tlds2:{}", base64(SECRET.as_bytes())),
    ]);
    let out = tool("dig", &args);
    assert!(
        out.contains("status: NOTAUTH") && out.contains("BADKEY"),
        "{out}"
    );
    let lines = server.wait_for_logs("DNS UDP: 127.0.0.1:", 2);
    assert!(
        lines[0].ends_with(" asked A Amazon.org.: NOTAUTH, TSIG BADSIG"),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with(" asked A Amazon.org.: NOTAUTH, TSIG BADKEY"),
        "{lines:?}"
    );
}

#[test]
fn require_proof_refuses_dig_without_a_key() {
    let dir = scratch_dir("dns-proof");
    let (_server, dns) = tlds1_with_dns(&dir, &["--require-proof"]);
    let out = tool("dig", &ask_args(dns, None, "Amazon.org", &[]));
    assert!(out.contains("status: REFUSED"), "{out}");
    assert!(!out.contains("94.5.6.7"), "{out}");
    let out = tool("dig", &ask_args(dns, Some(SECRET), "Amazon.org", &[]));
    assert!(
        out.contains("94.5.6.7") && !out.contains("Couldn't verify"),
        "{out}"
    );
}

/// The SOA serial in dig's answer to a name that is not in the table.
fn serial(dns: SocketAddr) -> u64 {
    let out = tool(
        "dig",
        &ask_args(dns, Some(SECRET), "nothing.org", &["+noall", "+authority"]),
    );
    let soa: Vec<&str> = out
        .lines()
        .find(|line| line.contains("\tSOA\t"))
        .unwrap_or_else(|| panic!("no SOA in {out}"))
        .split_whitespace()
        .collect();
    soa[6].parse().unwrap()
}

#[test]
fn sighup_changes_what_dig_sees_and_the_serial() {
    let dir = scratch_dir("dns-reload");
    let server = start_tlds(
        "tlds1",
        &dir,
        "127.0.0.1",
        "a.example 10.0.0.1 A\n",
        SECRET,
        &["--dns-port", "0"],
    );
    let dns = server.addrs[2];
    let short = |name| tool("dig", &ask_args(dns, Some(SECRET), name, &["+short"]));
    assert_eq!(short("a.example").lines().next(), Some("10.0.0.1"));
    let before = serial(dns);
    std::fs::write(dir.join("tlds1.tsv"), "a.example 10.0.0.2 A\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("reloaded");
    assert_eq!(short("a.example").lines().next(), Some("10.0.0.2"));
    assert_ne!(serial(dns), before);
}

// Garbage never stops the server: a short datagram is dropped, a short
// TCP message closes only its connection, and the next query is answered.
#[test]
fn malformed_input_costs_only_its_own_reply() {
    let dir = scratch_dir("dns-garbage");
    let (mut server, dns) = tlds1_with_dns(&dir, &[]);
    assert_eq!(udp_exchange(dns, &[1, 2, 3]), None);
    let mut header_only = query("Amazon.org.", RecordType::A, 9, None);
    header_only.truncate(12);
    let formerr = Reply::read(&udp_exchange(dns, &header_only).unwrap());
    assert_eq!(formerr.rcode(), 1);
    let mut tcp = DnsTcp::connect(dns);
    tcp.send_all(&[vec![0; 5]]);
    assert!(tcp.receive().is_none(), "closed after a short message");
    assert!(server.is_running());
    let reply = ask_udp(dns, &query("Amazon.org.", RecordType::A, 10, None));
    assert_eq!(reply.message.answers.len(), 1);
}

// At -vv every query is a line (transport, peer, type, name, rcode, TSIG);
// the key is in none of them.
#[test]
fn vv_logs_one_line_per_query_and_never_the_key() {
    let dir = scratch_dir("dns-log");
    let (mut server, dns) = tlds1_with_dns(&dir, &["-vv"]);
    let (signed, _) = sign(
        &query("Amazon.org.", RecordType::A, 11, None),
        &key(),
        now(),
    );
    ask_udp(dns, &signed);
    let mut tcp = DnsTcp::connect(dns);
    tcp.send_all(&[query("nothing.org.", RecordType::AAAA, 12, None)]);
    tcp.receive().unwrap();
    drop(tcp);
    let log = server.stop_and_read_log();
    assert!(
        logged(&log)
            .iter()
            .any(|line| line.starts_with("TRACE tlds1: DNS UDP: 127.0.0.1:")
                && line.ends_with(" asked A Amazon.org.: NOERROR, TSIG verified")),
        "{log}"
    );
    assert!(
        logged(&log)
            .iter()
            .any(|line| line.starts_with("TRACE tlds1: DNS TCP: 127.0.0.1:")
                && line.ends_with(" asked AAAA nothing.org.: NXDOMAIN, TSIG unsigned")),
        "{log}"
    );
    assert!(log.contains("DEBUG tlds1: DNS port: 127.0.0.1:"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
    assert!(!log.contains(&base64(SECRET.as_bytes())), "{log}");
}

// A full DNS port closes a newcomer without a word of the course protocol,
// and SIGTERM stops the server with DNS connections open.
#[test]
fn the_dns_port_shares_the_limits_and_the_stop() {
    let dir = scratch_dir("dns-limits");
    let (mut server, dns) = tlds1_with_dns(&dir, &["--max-dns-connections", "1", "-v"]);
    let mut first = DnsTcp::connect(dns);
    first.send_all(&[query("Amazon.org.", RecordType::A, 13, None)]);
    assert_eq!(first.receive().unwrap().id(), 13);
    // The first is working (it has not waited a second), so the second
    // is refused: closed, with nothing sent.
    first.send_all(&[query("Amazon.org.", RecordType::A, 14, None)]);
    let mut second = DnsTcp::connect(dns);
    let mut nothing = Vec::new();
    std::io::Read::read_to_end(second.stream(), &mut nothing).unwrap();
    assert!(nothing.is_empty(), "{nothing:?}");
    assert_eq!(first.receive().unwrap().id(), 14);
    server.wait_for_log("DNS port: busy");
    let started = std::time::Instant::now();
    let log = server.stop_and_read_log();
    assert!(started.elapsed() < PATIENCE);
    assert!(log.contains("stopped on SIGTERM"), "{log}");
}

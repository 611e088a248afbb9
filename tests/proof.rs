//! The opt-in proof of key on a TLDS's client port (`--require-proof` on the
//! TLDS, `--prove` on the client), tested on the real programs.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::net::SocketAddr;

use authdns::digest::{Digest, hmac_md5};
use authdns::wire::proof_message;
use authdns_harness::*;

/// tlds1 on the sample table and key (k1234), requiring proofs.
fn proving_tlds1(dir: &std::path::Path) -> Server {
    start_tlds(
        "tlds1",
        dir,
        "127.0.0.1",
        &read_sample("data/tlds1.tsv"),
        "k1234\n",
        &["--require-proof"],
    )
}

/// A connection to the client port and the nonce it was greeted with.
fn greeted(client_port: SocketAddr) -> (LineClient, String) {
    let mut peer = LineClient::connect(client_port);
    let greeting = peer.reply().expect("a greeting");
    let nonce = greeting
        .strip_prefix("PROOF ")
        .expect("PROOF <nonce>")
        .to_owned();
    assert_eq!(nonce.len(), 32);
    assert!(
        nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{nonce}"
    );
    (peer, nonce)
}

fn proof(key: &str, nonce: &str) -> Digest {
    hmac_md5(key.as_bytes(), &proof_message(nonce))
}

#[test]
fn without_a_proof_no_record_is_ever_sent() {
    let dir = scratch_dir("proof-required");
    let tlds = proving_tlds1(&dir);
    let (mut peer, _) = greeted(tlds.addrs[1]);
    // Each gets the same answer, and the connection stays open for a proof.
    for hostname in ["Amazon.org", "edu", "PROOF", "PROOF 1234", "Amazon.org"] {
        assert_eq!(
            peer.ask(hostname).as_deref(),
            Some("Error: proof required"),
            "{hostname}"
        );
    }
}

#[test]
fn a_right_proof_opens_the_connection_and_a_wrong_one_closes_it() {
    let dir = scratch_dir("proof-right-wrong");
    let tlds = proving_tlds1(&dir);
    let (mut peer, nonce) = greeted(tlds.addrs[1]);
    // The proof and the first hostname in one write: no extra round trip.
    peer.send(format!("PROOF {}\nAmazon.org\n", proof("k1234", &nonce)).as_bytes());
    assert_eq!(peer.reply().as_deref(), Some("Amazon.org 94.5.6.7 A"));
    assert_eq!(peer.ask("edu").as_deref(), Some("edu - NS"));

    let (mut wrong, nonce) = greeted(tlds.addrs[1]);
    let other_key = proof("k5678", &nonce);
    assert_eq!(
        wrong.ask(&format!("PROOF {other_key}")).as_deref(),
        Some("Error: proof failed")
    );
    assert_eq!(wrong.reply(), None, "closed after a failed proof");
}

#[test]
fn a_proof_from_one_connection_is_refused_on_another() {
    let dir = scratch_dir("proof-replay");
    let tlds = proving_tlds1(&dir);
    let (mut first, nonce) = greeted(tlds.addrs[1]);
    let recorded = format!("PROOF {}", proof("k1234", &nonce));
    first.send(format!("{recorded}\nedu\n").as_bytes());
    assert_eq!(first.reply().as_deref(), Some("edu - NS"));

    let (mut second, second_nonce) = greeted(tlds.addrs[1]);
    assert_ne!(nonce, second_nonce, "a nonce is never reused");
    assert_eq!(
        second.ask(&recorded).as_deref(),
        Some("Error: proof failed")
    );
    assert_eq!(second.reply(), None);
}

// Anyone allowed on the AS port can have any challenge signed, but no
// challenge can be the proof's message: it holds a NUL, and a challenge on
// the wire holds no control character (nor a space). So nothing the AS port
// signs is a valid proof.
#[test]
fn the_as_port_cannot_mint_a_proof() {
    let dir = scratch_dir("proof-mint");
    let tlds = proving_tlds1(&dir);
    let (mut signer, mut nonce_holder) =
        (LineClient::connect(tlds.addrs[0]), greeted(tlds.addrs[1]));
    let nonce = nonce_holder.1.clone();
    // The message itself, and every spelling of it without the NUL.
    let mut message = proof_message(&nonce);
    message.push(b'\n');
    signer.send(&message);
    assert_eq!(
        signer.reply().as_deref(),
        Some("Error: request contains a control character")
    );
    for attempt in [
        format!("authdns\u{0}proof{nonce}"),
        format!("authdnsproof{nonce}"),
        nonce.clone(),
    ] {
        let mut line = attempt.clone().into_bytes();
        line.push(b'\n');
        signer.send(&line);
        let reply = signer.reply().unwrap();
        if let Ok(digest) = Digest::from_hex(&reply) {
            assert_ne!(digest, proof("k1234", &nonce), "{attempt:?}");
            nonce_holder.0.send(format!("PROOF {digest}\n").as_bytes());
            assert_eq!(
                nonce_holder.0.reply().as_deref(),
                Some("Error: proof failed")
            );
            nonce_holder = greeted(tlds.addrs[1]);
            assert_ne!(nonce_holder.1, nonce);
            break;
        }
        assert!(reply.starts_with("Error: "), "{reply}");
    }
}

// With --require-proof on both TLDS and --prove on the client, the sample
// run's output is the default mode's; without --prove, each query routed
// to a TLDS says it needs a proof, and the client exits 1.
#[test]
fn the_sample_run_with_proofs_matches_the_default_mode() {
    let dir = scratch_dir("proof-e2e");
    let tables = [read_sample("data/tlds1.tsv"), read_sample("data/tlds2.tsv")];
    let keys = [read_sample("data/key1.txt"), read_sample("data/key2.txt")];
    let system = System::start_with_flags(
        &tables[0],
        &keys[0],
        &tables[1],
        &keys[1],
        &dir,
        &["--require-proof"],
    );
    for window in ["1", "4096"] {
        let run = run_client(
            &dir,
            system.auth.port(),
            &read_sample("data/hns.txt"),
            &["--prove", "--window", window],
        );
        assert!(run.status.success(), "window {window}: {run:?}");
        assert_eq!(run.output.unwrap(), SAMPLE_RESULTS, "window {window}");

        let run = run_client(
            &dir,
            system.auth.port(),
            &read_sample("data/hns.txt"),
            &["--window", window],
        );
        assert_eq!(run.status.code(), Some(1), "window {window}: {run:?}");
        let output = run.output.unwrap();
        let (_, c1) = system.tlds1.tlds_ports();
        let (_, c2) = system.tlds2.tlds_ports();
        let queries = read_sample("data/hns.txt");
        let queries = queries
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
        for ((line, expected), query) in output.iter().zip(SAMPLE_RESULTS).zip(queries) {
            let [key, _, hostname] = query.split_whitespace().collect::<Vec<_>>()[..] else {
                panic!("{query}")
            };
            let port = match key {
                "k1234" => c1,
                "k5678" => c2,
                _ => {
                    assert_eq!(line, expected, "a key matching neither needs no TLDS");
                    continue;
                }
            };
            assert_eq!(
                *line,
                format!(
                    "{hostname} - Error:the TLDS at 127.0.0.1:{port} requires a proof of key (use --prove)"
                ),
                "window {window}"
            );
        }
    }
}

//! Property tests for every parser: arbitrary input never panics, and
//! parsing what a formatter wrote gives back the same value.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::io::Read;

use authdns::connection::{FrameError, LineReader};
use authdns::digest::{Digest, hmac_md5};
use authdns::key::Key;
use authdns::query;
use authdns::table::Table;
use authdns::wire::{
    AuthReply, AuthRequest, ChallengeRequest, DigestReply, HostReply, HostRequest, MAX_LINE,
    ProofGreeting, ProofRequest, proof_message,
};
use proptest::prelude::*;

/// A single protocol token of at most `max` bytes: printable, no spaces;
/// either ASCII up to the limit, or wider characters (3 bytes at most each).
fn token(max: usize) -> impl Strategy<Value = String> {
    let ascii = proptest::string::string_regex(&format!("[!-~]{{1,{max}}}")).unwrap();
    let wide = proptest::string::string_regex(&format!(
        "[!-~\u{a1}-\u{1fff}\u{3001}-\u{3fff}]{{1,{}}}",
        max / 3
    ))
    .unwrap();
    prop_oneof![ascii, wide]
}

fn hostname() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,20}){0,3}\\.?").unwrap()
}

fn written(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out);
    assert_eq!(out.last(), Some(&b'\n'));
    out.pop();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn signer_agrees_with_the_hmac_crate(
        key in proptest::collection::vec(any::<u8>(), 0..200),
        data in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<md5::Md5>::new_from_slice(&key).unwrap();
        mac.update(&data);
        let expected = hex::encode(mac.finalize().into_bytes());
        prop_assert_eq!(hmac_md5(&key, &data).to_string(), expected);
    }

    #[test]
    fn no_parser_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = AuthRequest::parse(&bytes);
        let _ = AuthReply::parse(&bytes);
        let _ = ChallengeRequest::parse(&bytes);
        let _ = DigestReply::parse(&bytes);
        let _ = HostRequest::parse(&bytes);
        let _ = HostReply::parse(&bytes);
        let _ = ProofGreeting::parse(&bytes);
        let _ = ProofRequest::parse(&bytes);
        let _ = query::parse_line(&bytes);
        let mut lines = query::QueryLines::new(&bytes[..]);
        while lines.next_job().unwrap().is_some() {}
        if let Ok(table) = Table::parse(&bytes) {
            for record in table.records() {
                let hostname = record.split(' ').next().unwrap_or_default();
                prop_assert_eq!(table.lookup(hostname), Some(record));
            }
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = Key::from_file_text(text);
            let _ = Digest::from_hex(text);
        }
    }

    #[test]
    fn table_lines_round_trip(records in proptest::collection::btree_map(
        hostname().prop_map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
        (any::<[u8; 4]>(), prop_oneof![Just("A"), Just("NS"), Just("MX")]),
        0..40,
    ), tabs in any::<bool>()) {
        let separator = if tabs { "\t" } else { " \t " };
        let mut text = String::from("# generated\n");
        let mut expected = Vec::new();
        for (hostname, (octets, flag)) in &records {
            let address = std::net::Ipv4Addr::from(*octets).to_string();
            text.push_str(&[hostname.as_str(), &address, flag].join(separator));
            text.push_str("\r\n");
            expected.push(format!("{hostname} {address} {flag}"));
        }
        let table = Table::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(table.records().collect::<Vec<_>>(), expected.iter().map(String::as_str).collect::<Vec<_>>());
        for (hostname, line) in records.keys().zip(&expected) {
            prop_assert_eq!(table.lookup(&hostname.to_ascii_uppercase()), Some(line.as_str()));
        }
    }

    #[test]
    fn key_files_give_their_first_line_that_is_not_blank_or_a_comment(
        blanks in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("\t"), Just("\r")], 0..4),
        comments in proptest::collection::vec("#[^\n]*", 0..3),
        key in token(40).prop_filter("a key is one token", |k| !k.starts_with('#') && !k.contains(char::is_whitespace)),
        rest in ".*",
    ) {
        let text = format!("{}\n{}\n  {key} \r\n{rest}", blanks.join("\n"), comments.join("\n"));
        prop_assert_eq!(Key::from_file_text(&text).map(|k| k.expose().to_owned()), Ok(key));
    }

    #[test]
    // A line starting with `#` is a comment, so no key can start with one.
    fn query_lines_round_trip(key in token(30).prop_filter("comment", |k| !k.starts_with('#')), challenge in token(255), host in hostname()) {
        let line = format!("{key}\t{challenge}  {host}\r");
        let parsed = query::parse_line(line.as_bytes()).unwrap().unwrap();
        prop_assert_eq!((parsed.key, parsed.challenge, parsed.hostname), (key.as_str(), challenge.as_str(), host.as_str()));
    }

    #[test]
    fn auth_messages_round_trip(challenge in token(255), key in any::<Vec<u8>>(), host in hostname(), port in any::<u16>(), reason in "[ -~]{0,80}") {
        let request = AuthRequest { challenge: &challenge, digest: hmac_md5(&key, challenge.as_bytes()) };
        let line = written(|out| request.write_to(out));
        prop_assert_eq!(AuthRequest::parse(&line), Ok(request));

        let reply = AuthReply::Tlds { host: &host, port };
        let line = written(|out| reply.write_to(out));
        prop_assert_eq!(AuthReply::parse(&line), Ok(reply));

        let line = written(|out| AuthReply::Error(&reason).write_to(out));
        prop_assert_eq!(AuthReply::parse(&line), Ok(AuthReply::Error(reason.trim())));
    }

    #[test]
    fn tlds_messages_round_trip(challenge in token(255), key in any::<Vec<u8>>(), host in hostname(), address in token(40), flag in token(5)) {
        let line = written(|out| ChallengeRequest(&challenge).write_to(out));
        prop_assert_eq!(ChallengeRequest::parse(&line), Ok(ChallengeRequest(&challenge)));

        let digest = DigestReply::Digest(hmac_md5(&key, challenge.as_bytes()));
        let line = written(|out| digest.write_to(out));
        prop_assert_eq!(DigestReply::parse(&line), Ok(digest));

        let line = written(|out| HostRequest(&host).write_to(out));
        prop_assert_eq!(HostRequest::parse(&line), Ok(HostRequest(&host)));

        let record = format!("{host} {address} {flag}");
        let line = written(|out| HostReply::Found(&record).write_to(out));
        prop_assert_eq!(HostReply::parse(&line), Ok(HostReply::Found(&record)));

        let line = written(|out| HostReply::NotFound(&host).write_to(out));
        prop_assert_eq!(HostReply::parse(&line), Ok(HostReply::NotFound(&host)));
    }

    #[test]
    fn is_greeting_is_exactly_a_greeting_that_parses(
        space in "[ \t]{0,2}",
        word in prop_oneof!["PROOF", "PROOFS", "PROO", "proof"],
        gap in "[ \t]{0,2}",
        nonce in "[0-9a-fA-F]{30,33}",
        tail in "[ \t]{0,2}",
    ) {
        let line = format!("{space}{word}{gap}{nonce}{tail}");
        prop_assert_eq!(
            ProofGreeting::is_greeting(line.as_bytes()),
            ProofGreeting::parse(line.as_bytes()).is_ok(),
            "{:?}", line
        );
    }

    #[test]
    fn proof_messages_round_trip(nonce in any::<[u8; 16]>(), key in any::<Vec<u8>>()) {
        let nonce = hex::encode(nonce);
        let line = written(|out| ProofGreeting(&nonce).write_to(out));
        prop_assert_eq!(ProofGreeting::parse(&line), Ok(ProofGreeting(&nonce)));
        prop_assert!(ProofGreeting::is_greeting(&line));

        let request = ProofRequest(hmac_md5(&key, &proof_message(&nonce)));
        let line = written(|out| request.write_to(out));
        prop_assert_eq!(ProofRequest::parse(&line), Ok(request));
    }

    // Lines up to the limit come back as sent, whatever the read sizes; the
    // first line over it is refused, and nothing after it is read.
    #[test]
    fn line_reader_gives_back_the_lines_it_was_sent(
        lines in proptest::collection::vec(
            prop_oneof![
                4 => "[^\r\n]{0,200}",
                1 => (MAX_LINE - 2..MAX_LINE + 3).prop_map(|len| "x".repeat(len)),
            ],
            0..30,
        ),
        piece in 1usize..5000,
        asks in any::<u32>(),
    ) {
        let mut data = Vec::new();
        for line in &lines {
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        let mut reader = LineReader::new(Chunks { data: &data, piece });
        for (i, line) in lines.iter().enumerate() {
            // Servers ask whether a line is buffered before reading it; the
            // answer must not change what is read.
            if (asks >> (i % 32)) & 1 == 1 {
                reader.has_buffered_line();
            }
            if line.len() > MAX_LINE {
                prop_assert!(matches!(reader.read_line(), Err(FrameError::TooLong)));
                return Ok(());
            }
            prop_assert_eq!(reader.read_line().unwrap(), Some(line.as_bytes()));
        }
        prop_assert!(reader.read_line().unwrap().is_none());
    }
}

struct Chunks<'a> {
    data: &'a [u8],
    piece: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.piece.min(buf.len()).min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = tail;
        Ok(n)
    }
}

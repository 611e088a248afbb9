//! The DNS face in-process: each answer the issue names, checked on the
//! bytes of the reply, with requests signed and replies checked by the
//! harness's own TSIG (the `hmac` crate), never by the server's.

use std::sync::Arc;

use authdns_harness::dns::{Reply, TsigKey, now, query, query_for, sign};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use proptest::prelude::*;

use super::*;
use crate::key::Key;
use crate::table::Table;
use crate::tlds::Records;

const TABLE: &str = "Amazon.org\t94.5.6.7\tA\nedu\t-\tNS\nrutgers.edu\t128.6.4.2\tA\n";
const SECRET: &str = "k1234";

fn settings(zone: &str, require_proof: bool) -> Settings {
    Settings {
        zone: parse_name(zone).unwrap(),
        key_name: parse_name("tlds1.").unwrap(),
        ttl: 60,
        require_proof,
    }
}

fn records(table: &str) -> Arc<Records> {
    Records::new(Table::parse(table.as_bytes()).unwrap(), &Key::new(SECRET))
}

fn handler(zone: &str) -> Handler {
    Handler::new(
        records(TABLE),
        settings(zone, false),
        DnsMetrics::unserved(),
    )
}

fn key() -> TsigKey {
    TsigKey::new("tlds1.", SECRET.as_bytes())
}

/// The reply to `request`, which must be answered.
fn ask(handler: &Handler, request: &[u8], transport: Transport) -> Reply {
    let mut out = Vec::new();
    handler
        .handle(request, transport, &mut out)
        .expect("a reply");
    Reply::read(&out)
}

/// `request` signed now with `key`; the reply, checked to verify.
fn ask_signed(handler: &Handler, request: &[u8]) -> Reply {
    let (signed, mac) = sign(request, &key(), now());
    let reply = ask(handler, &signed, Transport::Udp);
    assert!(reply.verifies(&key(), &mac), "reply MAC: {reply:?}");
    reply
}

fn soa_serial(reply: &Reply) -> u32 {
    match &reply.message.authorities[0].data {
        RData::SOA(soa) => soa.serial,
        other => panic!("not an SOA: {other:?}"),
    }
}

#[test]
fn a_hit_is_answered_with_the_tables_spelling_signed() {
    let reply = ask_signed(&handler("."), &query("amazon.ORG.", RecordType::A, 7, None));
    let message = &reply.message;
    assert_eq!(reply.id(), 7);
    assert_eq!(message.metadata.response_code, ResponseCode::NoError);
    assert!(message.metadata.authoritative);
    assert_eq!(message.answers.len(), 1);
    let answer = &message.answers[0];
    assert_eq!(answer.name.to_ascii(), "Amazon.org.");
    assert_eq!(answer.ttl, 60);
    assert_eq!(answer.data, RData::A("94.5.6.7".parse().unwrap()));
    let (_, tsig) = reply.tsig.as_ref().unwrap();
    assert_eq!((tsig.error, tsig.fudge, tsig.original_id), (0, 300, 7));
}

#[test]
fn an_unknown_name_is_nxdomain_with_the_zones_soa() {
    let reply = ask_signed(
        &handler("."),
        &query("nothing.org.", RecordType::A, 8, None),
    );
    let message = &reply.message;
    assert_eq!(message.metadata.response_code, ResponseCode::NXDomain);
    assert!(message.metadata.authoritative);
    assert!(message.answers.is_empty());
    assert_eq!(message.authorities.len(), 1);
    let soa = &message.authorities[0];
    assert_eq!(soa.name.to_ascii(), ".");
    let RData::SOA(data) = &soa.data else {
        panic!("not an SOA")
    };
    assert_eq!(data.mname.to_ascii(), "tlds1.");
    assert_eq!(data.minimum, 60);
}

#[test]
fn a_name_without_an_address_or_another_type_is_nodata() {
    let handler = handler(".");
    for (name, qtype) in [("edu.", RecordType::A), ("Amazon.org.", RecordType::AAAA)] {
        let reply = ask_signed(&handler, &query(name, qtype, 9, None));
        let message = &reply.message;
        assert_eq!(
            message.metadata.response_code,
            ResponseCode::NoError,
            "{name}"
        );
        assert!(message.metadata.authoritative);
        assert!(message.answers.is_empty(), "{name}");
        assert_eq!(message.authorities[0].record_type(), RecordType::SOA);
    }
    let any = ask_signed(&handler, &query("Amazon.org.", RecordType::ANY, 9, None));
    assert_eq!(any.message.answers.len(), 1);
}

#[test]
fn names_outside_the_zone_are_refused_without_aa() {
    let handler = handler("org.");
    let reply = ask_signed(&handler, &query("rutgers.edu.", RecordType::A, 10, None));
    assert_eq!(reply.message.metadata.response_code, ResponseCode::Refused);
    assert!(!reply.message.metadata.authoritative);
    let inside = ask_signed(&handler, &query("Amazon.org.", RecordType::A, 11, None));
    assert_eq!(inside.message.answers.len(), 1);
    let apex = ask_signed(&handler, &query("ORG.", RecordType::SOA, 12, None));
    assert_eq!(apex.message.answers[0].record_type(), RecordType::SOA);
}

#[test]
fn the_question_comes_back_byte_for_byte() {
    let request = query("aMaZoN.OrG.", RecordType::A, 13, Some(1232));
    let reply = ask_signed(&handler("."), &request);
    let question_len = "aMaZoN.OrG.".len() + 1 + 4;
    assert_eq!(
        reply.bytes[12..12 + question_len],
        request[12..12 + question_len]
    );
    assert_eq!(reply.message.answers[0].name.to_ascii(), "Amazon.org.");
    assert_eq!(
        reply.message.edns.as_ref().unwrap().max_payload(),
        UDP_PAYLOAD
    );
}

#[test]
fn an_answer_too_large_for_udp_is_truncated_and_whole_over_tcp() {
    let long = format!("{}.example", vec!["a".repeat(60); 4].join("."));
    let handler = Handler::new(
        records(&format!("{long} 10.1.2.3 A\n")),
        settings(".", false),
        DnsMetrics::unserved(),
    );
    for udp_size in [None, Some(100), Some(512)] {
        let request = query(&format!("{long}."), RecordType::A, 14, udp_size);
        let (signed, mac) = sign(&request, &key(), now());
        let udp = ask(&handler, &signed, Transport::Udp);
        assert!(udp.message.metadata.truncation, "{udp_size:?}");
        assert!(udp.message.answers.is_empty());
        assert!(udp.verifies(&key(), &mac));
        assert!(udp.bytes.len() <= 512 + 100, "{}", udp.bytes.len());
        let tcp = ask(&handler, &signed, Transport::Tcp);
        assert!(!tcp.message.metadata.truncation);
        assert_eq!(tcp.message.answers.len(), 1);
        assert!(tcp.verifies(&key(), &mac));
    }
    let roomy = query(&format!("{long}."), RecordType::A, 15, Some(1232));
    let reply = ask(&handler, &roomy, Transport::Udp);
    assert!(!reply.message.metadata.truncation);
}

#[test]
fn tsig_errors_follow_rfc_8945() {
    let handler = handler(".");
    let request = query("Amazon.org.", RecordType::A, 16, None);
    // A key this server does not know: BADKEY, unsigned.
    let (signed, _) = sign(&request, &TsigKey::new("other.", SECRET.as_bytes()), now());
    let reply = ask(&handler, &signed, Transport::Udp);
    assert_eq!(reply.message.metadata.response_code, ResponseCode::NotAuth);
    let (_, tsig) = reply.tsig.clone().unwrap();
    assert_eq!((tsig.error, tsig.mac.len()), (17, 0));
    // The right name with the wrong secret: BADSIG, unsigned.
    let (signed, _) = sign(&request, &TsigKey::new("TLDS1.", b"wrong"), now());
    let reply = ask(&handler, &signed, Transport::Udp);
    assert_eq!(reply.message.metadata.response_code, ResponseCode::NotAuth);
    let (_, tsig) = reply.tsig.clone().unwrap();
    assert_eq!((tsig.error, tsig.mac.len()), (16, 0));
    assert!(reply.message.answers.is_empty());
    // Signed too long ago: BADTIME, signed, the server's time in other data.
    let signed_at = now() - 301;
    let (signed, mac) = sign(&request, &key(), signed_at);
    let mut out = Vec::new();
    handler
        .handle_at(&signed, Transport::Udp, signed_at + 301, &mut out)
        .unwrap();
    let reply = Reply::read(&out);
    assert_eq!(reply.message.metadata.response_code, ResponseCode::NotAuth);
    let (_, tsig) = reply.tsig.clone().unwrap();
    assert_eq!(tsig.error, 18);
    assert_eq!(tsig.time, signed_at);
    assert_eq!(tsig.other, (signed_at + 301).to_be_bytes()[2..].to_vec());
    assert!(reply.verifies(&key(), &mac));
    // At the edge of the fudge, it verifies.
    let mut out = Vec::new();
    handler
        .handle_at(&signed, Transport::Udp, signed_at + 300, &mut out)
        .unwrap();
    assert_eq!(Reply::read(&out).rcode(), 0);
}

#[test]
fn a_tsig_record_that_is_not_last_is_formerr() {
    let request = query("Amazon.org.", RecordType::A, 17, None);
    let (signed, _) = sign(&request, &key(), now());
    // Append an OPT record after the TSIG record.
    let mut bad = signed.clone();
    let arcount = u16::from_be_bytes([bad[10], bad[11]]) + 1;
    bad[10..12].copy_from_slice(&arcount.to_be_bytes());
    bad.extend([0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    let reply = ask(&handler("."), &bad, Transport::Udp);
    assert_eq!(reply.message.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn require_proof_refuses_unsigned_queries_only() {
    let handler = Handler::new(records(TABLE), settings(".", true), DnsMetrics::unserved());
    let request = query("Amazon.org.", RecordType::A, 18, None);
    let unsigned = ask(&handler, &request, Transport::Udp);
    assert_eq!(
        unsigned.message.metadata.response_code,
        ResponseCode::Refused
    );
    assert!(unsigned.message.answers.is_empty());
    let signed = ask_signed(&handler, &request);
    assert_eq!(signed.message.answers.len(), 1);
    // Without --require-proof an unsigned query is answered, unsigned.
    let open = ask(&self::handler("."), &request, Transport::Udp);
    assert_eq!(open.message.answers.len(), 1);
    assert!(open.tsig.is_none());
}

#[test]
fn malformed_messages_get_the_rcodes_the_rfcs_give() {
    let handler = handler(".");
    let mut out = Vec::new();
    // Shorter than a header: dropped.
    assert!(handler.handle(&[0; 11], Transport::Udp, &mut out).is_none());
    // A header that promises a question it lacks: FORMERR.
    let mut header = query("Amazon.org.", RecordType::A, 19, None);
    header.truncate(12);
    assert_eq!(ask(&handler, &header, Transport::Udp).rcode(), 1);
    // Two questions, and none: FORMERR.
    let mut none = header.clone();
    none[5] = 0;
    assert_eq!(ask(&handler, &none, Transport::Udp).rcode(), 1);
    let mut two = query("Amazon.org.", RecordType::A, 19, None);
    let question = two[12..].to_vec();
    two.extend(question);
    two[5] = 2;
    assert_eq!(ask(&handler, &two, Transport::Udp).rcode(), 1);
    // NOTIFY (opcode 4): NOTIMP.
    let mut notify = query("Amazon.org.", RecordType::A, 19, None);
    notify[2] = (notify[2] & 0x87) | (4 << 3);
    assert_eq!(ask(&handler, &notify, Transport::Udp).rcode(), 4);
    // Class CH: REFUSED.
    let mut chaos = query("Amazon.org.", RecordType::A, 19, None);
    let len = chaos.len();
    chaos[len - 1] = 3;
    assert_eq!(ask(&handler, &chaos, Transport::Udp).rcode(), 5);
    // A response is never answered.
    let mut response = query("Amazon.org.", RecordType::A, 19, None);
    response[2] |= 0x80;
    assert!(
        handler
            .handle(&response, Transport::Udp, &mut out)
            .is_none()
    );
}

#[test]
fn a_reload_changes_the_answer_and_the_serial() {
    let records = records(TABLE);
    let handler = Handler::new(
        Arc::clone(&records),
        settings(".", false),
        DnsMetrics::unserved(),
    );
    let before = ask_signed(&handler, &query("nothing.org.", RecordType::A, 20, None));
    records.replace(
        Table::parse(b"Amazon.org 10.9.9.9 A\n").unwrap(),
        &Key::new(SECRET),
    );
    let after = ask_signed(&handler, &query("nothing.org.", RecordType::A, 21, None));
    assert_ne!(soa_serial(&before), soa_serial(&after));
    let hit = ask_signed(&handler, &query("Amazon.org.", RecordType::A, 22, None));
    assert_eq!(
        hit.message.answers[0].data,
        RData::A("10.9.9.9".parse().unwrap())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    // Whatever arrives, the handler returns (at most one reply).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut out = Vec::new();
        let _ = handler(".").handle(&bytes, Transport::Udp, &mut out);
    }

    // Bytes that start as a real query and are then damaged.
    #[test]
    fn damaged_queries_never_panic(
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8),
        cut in 0usize..80,
    ) {
        let (mut bytes, _) = sign(&query("Amazon.org.", RecordType::A, 1, Some(1232)), &key(), now());
        for (at, byte) in flips {
            if let Some(slot) = bytes.get_mut(at) {
                *slot = byte;
            }
        }
        bytes.truncate(bytes.len().saturating_sub(cut));
        let mut out = Vec::new();
        let _ = handler(".").handle(&bytes, Transport::Tcp, &mut out);
    }

    // Any query the crate can encode gets exactly one reply, with its ID.
    #[test]
    fn every_query_gets_one_reply_with_its_id(
        id in any::<u16>(),
        labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..20), 0..5),
        qtype in any::<u16>(),
        udp_size in proptest::option::of(any::<u16>()),
    ) {
        let mut name = Name::from_labels(labels).unwrap();
        name.set_fqdn(true);
        let request = query_for(name, RecordType::from(qtype), id, udp_size);
        let mut out = Vec::new();
        let handled = handler(".").handle(&request, Transport::Udp, &mut out);
        prop_assert!(handled.is_some());
        let reply = Reply::read(&out);
        prop_assert_eq!(reply.id(), id);
    }
}

//! What the zone says to one question: the table's record, NODATA or
//! NXDOMAIN with the zone's SOA (RFC 2308), or REFUSED outside the zone.
//!
//! Names are looked up in the table exactly as on the client port (case
//! folded, one trailing dot ignored), and an answer's owner is the table's
//! own spelling of the name.

use std::net::Ipv4Addr;

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::Settings;
use crate::tlds::Tlds;

/// The SOA's timers, in seconds: what a secondary would use. Nothing here
/// transfers the zone; they are the common defaults of RFC 1912.
const REFRESH: i32 = 3600;
const RETRY: i32 = 600;
const EXPIRE: i32 = 604_800;

/// One question's answer, before it is written.
#[derive(Debug)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// AA: set on every answer from inside the zone.
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
}

impl Answer {
    /// An answer with no records and no AA, such as REFUSED.
    pub fn bare(rcode: ResponseCode) -> Answer {
        Answer {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
        }
    }
}

/// Answers `query` from `tlds`'s table, as the zone in `settings`.
pub fn answer(query: &Query, tlds: &Tlds, settings: &Settings) -> Answer {
    if query.query_class() != DNSClass::IN {
        return Answer::bare(ResponseCode::Refused);
    }
    let qtype = query.query_type();
    // Zone transfers are not offered.
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return Answer::bare(ResponseCode::Refused);
    }
    let name = query.name();
    if !settings.zone.zone_of(name) {
        return Answer::bare(ResponseCode::Refused);
    }
    let mut answer = Answer {
        rcode: ResponseCode::NoError,
        authoritative: true,
        answers: Vec::new(),
        authority: Vec::new(),
    };
    let record = hostname(name).and_then(|hostname| tlds.table().lookup(&hostname));
    let apex = name.eq_ignore_root(&settings.zone);
    if let Some(line) = record {
        let mut fields = line.split(' ');
        let (owner, address, flag) = (fields.next(), fields.next(), fields.next());
        if flag == Some("A") && matches!(qtype, RecordType::A | RecordType::ANY) {
            let owner = owner
                .and_then(|owner| Name::from_ascii(owner).ok())
                .map_or_else(|| name.clone(), absolute);
            if let Some(address) = address.and_then(|address| address.parse::<Ipv4Addr>().ok()) {
                answer.answers.push(Record::from_rdata(
                    owner,
                    settings.ttl,
                    RData::A(A(address)),
                ));
            }
        }
    } else if !apex {
        answer.rcode = ResponseCode::NXDomain;
    }
    if apex && matches!(qtype, RecordType::SOA | RecordType::ANY) {
        answer.answers.push(soa(tlds, settings));
    }
    if answer.answers.is_empty() {
        answer.authority.push(soa(tlds, settings));
    }
    answer
}

/// The zone's SOA, made from the zone, the key name and the table's serial.
fn soa(tlds: &Tlds, settings: &Settings) -> Record {
    let zone = settings.zone.clone();
    let contact = zone
        .prepend_label("hostmaster")
        .unwrap_or_else(|_| zone.clone());
    let soa = SOA::new(
        settings.key_name.clone(),
        contact,
        tlds.serial(),
        REFRESH,
        RETRY,
        EXPIRE,
        settings.ttl,
    );
    Record::from_rdata(zone, settings.ttl, RData::SOA(soa))
}

fn absolute(mut name: Name) -> Name {
    name.set_fqdn(true);
    name
}

/// A question's name as the table spells hostnames, labels joined by dots;
/// `None` when no table name could match it (a label holding a dot, say).
fn hostname(name: &Name) -> Option<String> {
    let mut text = String::with_capacity(name.len());
    for label in name.iter() {
        let label = std::str::from_utf8(label).ok()?;
        if label.contains('.') {
            return None;
        }
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(label);
    }
    Some(text)
}

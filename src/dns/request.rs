//! Reading one DNS request: its header, its question as the bytes it
//! arrived in (so the reply can copy them back exactly, 0x20 case and all),
//! its EDNS(0) record, and its TSIG record with the offset where it starts.
//!
//! The offset is why the records are walked here rather than read as a
//! whole `Message`: the request's MAC covers the bytes before the TSIG
//! record, and hickory-proto without its DNSSEC features keeps no such
//! offset (nor sets the TSIG record apart).

use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, Query};
use hickory_proto::rr::rdata::TSIG;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// A request read whole.
#[derive(Debug)]
pub struct Request<'a> {
    /// The message as received.
    pub bytes: &'a [u8],
    pub metadata: Metadata,
    pub question_count: u16,
    /// The question, when there is exactly one, and its bytes as received.
    pub question: Option<(Query, &'a [u8])>,
    pub edns: Option<Edns>,
    pub tsig: Option<Signature>,
}

/// A request's TSIG record.
#[derive(Debug)]
pub struct Signature {
    /// Where the record starts in the request: its MAC covers what is before.
    pub start: usize,
    pub key_name: Name,
    pub tsig: TSIG,
}

/// Why a message gets no ordinary answer.
#[derive(Debug)]
pub enum Unreadable {
    /// Shorter than a header, or itself a response: answering could only
    /// start a loop or reflect garbage, so it is dropped.
    Ignored,
    /// The header was read but the rest was not (or a TSIG record was not
    /// the last): FORMERR.
    Malformed(Metadata),
}

/// Reads `bytes` as a DNS request.
pub fn read(bytes: &[u8]) -> Result<Request<'_>, Unreadable> {
    let mut decoder = BinDecoder::new(bytes);
    let Header { metadata, counts } =
        Header::read(&mut decoder).map_err(|_| Unreadable::Ignored)?;
    if metadata.message_type == MessageType::Response {
        return Err(Unreadable::Ignored);
    }
    let malformed = |_| Unreadable::Malformed(metadata);
    let mut question = None;
    for _ in 0..counts.queries {
        let start = decoder.index();
        let query = Query::read(&mut decoder).map_err(malformed)?;
        if counts.queries == 1 {
            let raw = bytes
                .get(start..decoder.index())
                .ok_or(Unreadable::Malformed(metadata))?;
            question = Some((query, raw));
        }
    }
    let others = usize::from(counts.answers) + usize::from(counts.authorities);
    Message::read_records(&mut decoder, others, false, metadata.op_code).map_err(malformed)?;
    let mut edns = None;
    let mut tsig = None;
    for _ in 0..counts.additionals {
        let start = decoder.index();
        let record = Record::read(&mut decoder).map_err(malformed)?;
        if tsig.is_some() {
            // RFC 8945, section 5.1: the TSIG record must be the last.
            return Err(Unreadable::Malformed(metadata));
        }
        match record.record_type() {
            RecordType::OPT if edns.is_some() => return Err(Unreadable::Malformed(metadata)),
            RecordType::OPT => edns = Some(Edns::from(&record)),
            RecordType::TSIG => {
                let Record { name, data, .. } = record;
                let RData::TSIG(data) = data else {
                    return Err(Unreadable::Malformed(metadata));
                };
                tsig = Some(Signature {
                    start,
                    key_name: name,
                    tsig: data,
                });
            }
            _ => {}
        }
    }
    Ok(Request {
        bytes,
        metadata,
        question_count: counts.queries,
        question,
        edns,
        tsig,
    })
}

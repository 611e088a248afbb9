//! Writing a reply: the header, the question copied as it arrived, the
//! answer's records, EDNS(0), and the TSIG record last. A reply larger
//! than the requester can take is cut to its header, question, EDNS and
//! TSIG, with TC set, so the requester retries over TCP (RFC 2181, 9).

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::answer::Answer;
use super::tsig::ReplyTsig;
use crate::digest::Signer;

/// Everything a reply is written from.
pub struct Reply<'a> {
    /// The reply's header fields (counts aside).
    pub metadata: Metadata,
    /// The question as received; empty for none.
    pub question: &'a [u8],
    pub answer: &'a Answer,
    /// This server's EDNS(0) record, when the request had one.
    pub edns: Option<Edns>,
    pub tsig: Option<&'a ReplyTsig>,
}

impl Reply<'_> {
    /// Writes the reply into `out` (emptied first), at most `limit` bytes
    /// unless even the truncated form is larger; returns whether it was
    /// truncated.
    pub fn write(
        &self,
        limit: usize,
        signer: &Signer,
        out: &mut Vec<u8>,
    ) -> Result<bool, ProtoError> {
        self.write_sections(true, signer, out)?;
        if out.len() <= limit {
            return Ok(false);
        }
        self.write_sections(false, signer, out)?;
        Ok(true)
    }

    fn write_sections(
        &self,
        whole: bool,
        signer: &Signer,
        out: &mut Vec<u8>,
    ) -> Result<(), ProtoError> {
        out.clear();
        let no_records: &[Record] = &[];
        let (answers, authority) = if whole {
            (
                self.answer.answers.as_slice(),
                self.answer.authority.as_slice(),
            )
        } else {
            (no_records, no_records)
        };
        let mut metadata = self.metadata;
        metadata.truncation = !whole;
        let edns = self.edns.as_ref().map(|edns| {
            let mut edns = edns.clone();
            edns.set_rcode_high(metadata.response_code.high());
            Record::from(&edns)
        });
        let header = Header {
            metadata,
            counts: HeaderCounts {
                queries: u16::from(!self.question.is_empty()),
                answers: count(answers)?,
                authorities: count(authority)?,
                additionals: u16::from(edns.is_some()),
            },
        };
        let mut encoder = BinEncoder::new(out);
        header.emit(&mut encoder)?;
        encoder.emit_vec(self.question)?;
        for record in answers.iter().chain(authority).chain(&edns) {
            record.emit(&mut encoder)?;
        }
        if let Some(tsig) = self.tsig {
            tsig.append(out, signer)?;
        }
        Ok(())
    }
}

fn count(records: &[Record]) -> Result<u16, ProtoError> {
    u16::try_from(records.len()).map_err(|_| ProtoError::from("too many records for one message"))
}

//! One DNS message in, at most one reply out, the same for both
//! transports: [`Handler`] reads the request, checks its TSIG, answers from
//! the current table and writes the reply.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Edns, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;

use super::answer::{self, Answer};
use super::request::{self, Unreadable};
use super::response::Reply;
use super::tsig::{self, Verdict};
use super::{PLAIN_UDP_PAYLOAD, Settings, Transport, UDP_PAYLOAD};
use crate::connection::PeerAddr;
use crate::metrics::{PortMetrics, ServerMetrics, Tally};
use crate::tlds::Records;
use prometheus_client::metrics::counter::Counter;

/// Answers DNS requests from a TLDS's records.
#[derive(Debug, Clone)]
pub struct Handler {
    records: Arc<Records>,
    settings: Arc<Settings>,
    metrics: DnsMetrics,
}

/// What the DNS port counts: requests by rcode (its port's outcomes, with
/// their time), and by TSIG outcome.
#[derive(Debug, Clone)]
pub struct DnsMetrics {
    port: PortMetrics,
    tsig: Arc<[Counter]>,
}

impl DnsMetrics {
    /// Registers the DNS port's metrics with `metrics`.
    pub fn register(metrics: &mut ServerMetrics) -> DnsMetrics {
        DnsMetrics {
            port: metrics.port("dns", &super::OUTCOMES),
            tsig: metrics
                .tsig(&TsigOutcome::ALL.map(TsigOutcome::name))
                .into(),
        }
    }

    /// Counting, served nowhere: for a handler in tests.
    pub fn unserved() -> DnsMetrics {
        DnsMetrics::register(&mut ServerMetrics::new())
    }

    /// The port's counters, which its TCP connections also count in.
    pub fn port(&self) -> &PortMetrics {
        &self.port
    }
}

/// What one request was and how it was answered: the per-query log line.
#[derive(Debug, Clone)]
pub struct Handled {
    pub rcode: ResponseCode,
    pub tsig: TsigOutcome,
    /// The question as received, when there was one: written out only
    /// for a log line.
    pub question: Option<Query>,
    pub truncated: bool,
}

/// What became of a request's TSIG record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigOutcome {
    /// The message could not be read far enough to tell.
    Unread,
    Unsigned,
    Verified,
    BadKey,
    BadSig,
    BadTime,
    BadTrunc,
    /// A MAC of impossible length.
    Malformed,
}

impl TsigOutcome {
    /// Every outcome, in the order the metrics count them.
    pub const ALL: [TsigOutcome; 8] = [
        TsigOutcome::Unread,
        TsigOutcome::Unsigned,
        TsigOutcome::Verified,
        TsigOutcome::BadKey,
        TsigOutcome::BadSig,
        TsigOutcome::BadTime,
        TsigOutcome::BadTrunc,
        TsigOutcome::Malformed,
    ];

    /// Its name in log lines and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            TsigOutcome::Unread => "unread",
            TsigOutcome::Unsigned => "unsigned",
            TsigOutcome::Verified => "verified",
            TsigOutcome::BadKey => "BADKEY",
            TsigOutcome::BadSig => "BADSIG",
            TsigOutcome::BadTime => "BADTIME",
            TsigOutcome::BadTrunc => "BADTRUNC",
            TsigOutcome::Malformed => "malformed",
        }
    }
}

impl fmt::Display for TsigOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Handled {
    /// The `-vv` line for this query. Never a key: only the question, the
    /// rcode and what became of the TSIG record.
    pub fn log(&self, transport: Transport, peer: PeerAddr) {
        if !log::log_enabled!(log::Level::Trace) {
            return;
        }
        let (qtype, name) = match &self.question {
            Some(query) => (query.query_type().to_string(), query.name().to_ascii()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        log::trace!(
            "DNS {transport}: {peer} asked {qtype} {name}: {}, TSIG {}{}",
            super::rcode_name(self.rcode),
            self.tsig,
            if self.truncated { ", truncated" } else { "" }
        );
    }
}

impl Handler {
    pub fn new(records: Arc<Records>, settings: Settings, metrics: DnsMetrics) -> Handler {
        Handler {
            records,
            settings: Arc::new(settings),
            metrics,
        }
    }

    /// Answers `request` into `out` (emptied first), and counts it; `None`
    /// when it is dropped unanswered (shorter than a header, or itself a
    /// response).
    pub fn handle(
        &self,
        request: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Option<Handled> {
        let mut tally = Tally::default();
        tally.begin();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let handled = self.handle_at(request, transport, now, out);
        match &handled {
            Some(handled) => {
                tally.note(super::rcode_outcome(handled.rcode));
                if let Some(counter) = self.metrics.tsig.get(handled.tsig as usize) {
                    counter.inc();
                }
            }
            None => tally.note(super::DROPPED),
        }
        tally.record_into(&self.metrics.port);
        handled
    }

    /// [`Handler::handle`] with the clock read by the caller (seconds
    /// since 1970), so tests can step outside the TSIG fudge.
    pub fn handle_at(
        &self,
        bytes: &[u8],
        transport: Transport,
        now: u64,
        out: &mut Vec<u8>,
    ) -> Option<Handled> {
        let tlds = self.records.current();
        let signer = tlds.signer();
        let request = match request::read(bytes) {
            Ok(request) => request,
            Err(Unreadable::Ignored) => return None,
            Err(Unreadable::Malformed(metadata)) => {
                let answer = Answer::bare(ResponseCode::FormErr);
                let reply = Reply {
                    metadata: reply_metadata(&metadata, &answer),
                    question: &[],
                    answer: &answer,
                    edns: None,
                    tsig: None,
                };
                let truncated = reply.write(limit(transport, None), signer, out).ok()?;
                return Some(Handled {
                    rcode: answer.rcode,
                    tsig: TsigOutcome::Unread,
                    question: None,
                    truncated,
                });
            }
        };
        let verdict = tsig::verify(&request, &self.settings.key_name, signer, now);
        let question = request.question.as_ref();
        let (answer, reply_tsig, outcome) = match &verdict {
            Verdict::Malformed => (
                Answer::bare(ResponseCode::FormErr),
                None,
                TsigOutcome::Malformed,
            ),
            Verdict::Rejected(reply) => (
                Answer::bare(ResponseCode::NotAuth),
                Some(reply),
                match reply.error() {
                    Some(TsigError::BadKey) => TsigOutcome::BadKey,
                    Some(TsigError::BadTime) => TsigOutcome::BadTime,
                    Some(TsigError::BadTrunc) => TsigOutcome::BadTrunc,
                    _ => TsigOutcome::BadSig,
                },
            ),
            Verdict::Unsigned if self.settings.require_proof => (
                Answer::bare(ResponseCode::Refused),
                None,
                TsigOutcome::Unsigned,
            ),
            Verdict::Unsigned | Verdict::Verified(_) => {
                let answer = match question {
                    _ if request.question_count != 1 => Answer::bare(ResponseCode::FormErr),
                    _ if request.metadata.op_code != OpCode::Query => {
                        Answer::bare(ResponseCode::NotImp)
                    }
                    _ if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) => {
                        Answer::bare(ResponseCode::BADVERS)
                    }
                    Some((query, _)) => answer::answer(query, &tlds, &self.settings),
                    None => Answer::bare(ResponseCode::FormErr),
                };
                let (reply, outcome) = match &verdict {
                    Verdict::Verified(reply) => (Some(reply), TsigOutcome::Verified),
                    _ => (None, TsigOutcome::Unsigned),
                };
                (answer, reply, outcome)
            }
        };
        let edns = request.edns.as_ref().map(|theirs| {
            let mut ours = Edns::new();
            ours.set_max_payload(UDP_PAYLOAD);
            ours.set_dnssec_ok(theirs.flags().dnssec_ok);
            ours
        });
        let reply = Reply {
            metadata: reply_metadata(&request.metadata, &answer),
            question: question.map_or(&[], |(_, raw)| raw),
            answer: &answer,
            edns,
            tsig: reply_tsig,
        };
        let truncated = reply
            .write(limit(transport, request.edns.as_ref()), signer, out)
            .ok()?;
        Some(Handled {
            rcode: answer.rcode,
            tsig: outcome,
            question: request.question.map(|(query, _)| query),
            truncated,
        })
    }
}

/// The reply's header: ID, opcode, RD and CD from the request (RFC 6895),
/// the rcode and AA from the answer.
fn reply_metadata(request: &Metadata, answer: &Answer) -> Metadata {
    let mut metadata = Metadata::response_from_request(request);
    metadata.response_code = answer.rcode;
    metadata.authoritative = answer.authoritative;
    metadata
}

/// The largest reply `transport` carries to this requester: what its
/// EDNS(0) record says over UDP (hickory-proto reads sizes under 512 as
/// 512, as RFC 6891 requires), 512 without one; TCP's 16-bit length.
fn limit(transport: Transport, edns: Option<&Edns>) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => usize::from(edns.map_or(PLAIN_UDP_PAYLOAD, Edns::max_payload)),
    }
}

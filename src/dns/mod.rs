//! The DNS face of a TLDS: the same table answered to `dig`, `kdig` and
//! `dnsperf` over UDP and TCP, authenticated with TSIG HMAC-MD5 (RFC 8945)
//! under the same key that signs the course protocol's challenges.
//!
//! Messages are read and written with hickory-proto (no async runtime);
//! serving is blocking std sockets and threads, as everywhere else. One
//! query is handled in four steps, one file each:
//!
//! - `request.rs` reads the message, keeping the question's bytes as they
//!   arrived and where the TSIG record starts;
//! - `tsig.rs` checks the request's MAC and signs the response;
//! - `answer.rs` decides the answer from the table and the zone;
//! - `response.rs` writes it, truncated to what the requester can take.
//!
//! [`Handler`] ties them together for the transports, `udp.rs` and `tcp.rs`.

mod answer;
mod handler;
mod request;
mod response;
pub mod tcp;
#[cfg(test)]
mod tests;
mod tsig;
pub mod udp;

pub use handler::{DnsMetrics, Handled, Handler, TsigOutcome};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

/// The UDP payload size this server advertises in EDNS(0): the size DNS
/// Flag Day 2020 settled on, which avoids IP fragmentation.
pub const UDP_PAYLOAD: u16 = 1232;

/// The largest reply to a requester without EDNS(0) (RFC 1035).
pub const PLAIN_UDP_PAYLOAD: u16 = 512;

/// How a TLDS answers DNS, fixed at start; the table and key it answers
/// from are its [`crate::tlds::Records`], replaced whole on reload.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The zone served; names outside it are REFUSED.
    pub zone: Name,
    /// The TSIG key's name; the secret is the TLDS's key.
    pub key_name: Name,
    /// TTL of answers, and of the SOA that negative answers carry.
    pub ttl: u32,
    /// Answer only queries whose TSIG verifies; unsigned ones are REFUSED.
    pub require_proof: bool,
}

/// How a request arrived: it decides how large a reply may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        })
    }
}

/// The DNS port's request outcomes, as the metrics label them: each rcode
/// it can answer, by its mnemonic as `dig` prints it, and `dropped` for a
/// message given no reply.
pub const OUTCOMES: [&str; 10] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "NOTAUTH", "BADVERS",
    "other", "dropped",
];

/// Where a reply's rcode is in [`OUTCOMES`].
pub fn rcode_outcome(rcode: ResponseCode) -> usize {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        ResponseCode::NotAuth => 6,
        ResponseCode::BADVERS => 7,
        _ => 8,
    }
}

/// The outcome of a message given no reply.
pub const DROPPED: usize = 9;

/// An rcode by its mnemonic, as `dig` prints it: for log lines.
pub fn rcode_name(rcode: ResponseCode) -> &'static str {
    OUTCOMES
        .get(rcode_outcome(rcode))
        .copied()
        .unwrap_or("other")
}

/// Parses a domain name flag such as `--dns-zone example.org`; the name is
/// made absolute, as in a zone file's `$ORIGIN`.
pub fn parse_name(text: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(text).map_err(|err| format!("not a domain name: {err}"))?;
    name.set_fqdn(true);
    Ok(name)
}

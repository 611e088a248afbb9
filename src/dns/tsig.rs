//! TSIG (RFC 8945) with HMAC-MD5: checking a request's MAC, and the TSIG
//! record its response carries, signed or not.
//!
//! The MACs are the TLDS's [`Signer`], the same HMAC-MD5 that signs the
//! course protocol's challenges: hickory-proto offers no MD5 for TSIG, and
//! the key is the one secret a TLDS holds. The checks run in the RFC's
//! order, as BIND's do: key and algorithm (BADKEY), MAC (BADSIG), then time
//! (BADTIME, the only error answered signed).

use hickory_proto::ProtoError;
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::TSIG;
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError, make_tsig_record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::request::{Request, Signature};
use crate::digest::{DIGEST_LEN, Digest, Signer};

/// How far, in seconds, a signature's time may be from the clock of the
/// side checking it: what this server puts in its own TSIG records.
pub const FUDGE: u16 = 300;

/// The shortest truncated MAC RFC 8945 (section 5.2.2.1) lets a message
/// carry: shorter ones are FORMERR.
const SHORTEST_MAC: usize = 10;

/// Offsets in a DNS header: the ID, and the additional record count.
const ID: std::ops::Range<usize> = 0..2;
const ARCOUNT: std::ops::Range<usize> = 10..12;

/// What a request's TSIG record (or its absence) makes of the reply.
#[derive(Debug)]
pub enum Verdict {
    /// No TSIG record: answered unsigned, unless proof is required.
    Unsigned,
    /// Key, MAC and time verify: the reply is signed.
    Verified(ReplyTsig),
    /// NOTAUTH, with the TSIG error in the reply's record.
    Rejected(ReplyTsig),
    /// A MAC of impossible length: FORMERR, unsigned.
    Malformed,
}

/// The TSIG record a reply carries.
#[derive(Debug)]
pub struct ReplyTsig {
    /// The key and algorithm names as the request spelled them.
    key_name: Name,
    algorithm: TsigAlgorithm,
    original_id: u16,
    time: u64,
    error: Option<TsigError>,
    other: Vec<u8>,
    /// The request's MAC, which a signed reply's MAC covers first; `None`
    /// for a reply sent with an empty MAC (BADKEY, BADSIG, BADTRUNC).
    request_mac: Option<Vec<u8>>,
}

impl ReplyTsig {
    pub fn error(&self) -> Option<TsigError> {
        self.error
    }
}

/// Checks `request`'s TSIG record, if it has one, against `key_name` and
/// `signer` at `now` (seconds since 1970).
pub fn verify(request: &Request<'_>, key_name: &Name, signer: &Signer, now: u64) -> Verdict {
    let Some(signature) = &request.tsig else {
        return Verdict::Unsigned;
    };
    let tsig = &signature.tsig;
    // The reply's record: signed when it carries the request's MAC.
    let reply = |error, request_mac| ReplyTsig {
        key_name: signature.key_name.clone(),
        algorithm: tsig.algorithm.clone(),
        original_id: tsig.oid,
        time: now,
        error,
        other: Vec::new(),
        request_mac,
    };
    if !signature.key_name.eq_ignore_root(key_name) || !is_hmac_md5(&tsig.algorithm) {
        return Verdict::Rejected(reply(Some(TsigError::BadKey), None));
    }
    let received = tsig.mac.as_slice();
    if !(SHORTEST_MAC..=DIGEST_LEN).contains(&received.len()) {
        return Verdict::Malformed;
    }
    let Ok(covered) = request_covered(request.bytes, signature) else {
        return Verdict::Malformed;
    };
    let expected = signer.sign(&covered);
    // A truncated MAC is compared on its length only: padded out with the
    // expected digest's own tail, the comparison stays constant-time.
    let mut padded = *expected.as_bytes();
    if let Some(prefix) = padded.get_mut(..received.len()) {
        prefix.copy_from_slice(received);
    }
    if !Digest::from_bytes(&padded).is_some_and(|padded| padded.matches(&expected)) {
        return Verdict::Rejected(reply(Some(TsigError::BadSig), None));
    }
    if received.len() < DIGEST_LEN {
        // Verified, but shorter than this server accepts.
        return Verdict::Rejected(reply(Some(TsigError::BadTrunc), None));
    }
    let request_mac = Some(received.to_vec());
    if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
        // RFC 8945, section 5.2.3: the request's time is echoed, the
        // server's goes in other data, and the reply is signed.
        return Verdict::Rejected(ReplyTsig {
            time: tsig.time,
            other: time_48(now).to_vec(),
            ..reply(Some(TsigError::BadTime), request_mac)
        });
    }
    Verdict::Verified(reply(None, request_mac))
}

/// True for `hmac-md5.sig-alg.reg.int`, in any case (hickory-proto reads
/// only the upper-case spelling as its MD5 variant).
fn is_hmac_md5(algorithm: &TsigAlgorithm) -> bool {
    algorithm
        .to_name()
        .eq_ignore_root(&TsigAlgorithm::HmacMd5.to_name())
}

/// What a request's MAC covers: the request up to its TSIG record, with
/// the original ID and one additional record fewer, then the TSIG variables.
fn request_covered(bytes: &[u8], signature: &Signature) -> Result<Vec<u8>, ProtoError> {
    let mut covered = bytes
        .get(..signature.start)
        .ok_or("TSIG record outside the message")?
        .to_vec();
    set_u16(&mut covered, ID, |_| signature.tsig.oid);
    set_u16(&mut covered, ARCOUNT, |count| count.wrapping_sub(1));
    let offset = covered.len() as u32;
    let mut encoder = BinEncoder::with_offset(&mut covered, offset);
    signature
        .tsig
        .emit_tsig_for_mac(&mut encoder, &signature.key_name)?;
    Ok(covered)
}

/// Rewrites the big-endian 16-bit header field at `at`, when it is there.
fn set_u16(message: &mut [u8], at: std::ops::Range<usize>, change: impl FnOnce(u16) -> u16) {
    if let Some(field) = message.get_mut(at)
        && let Ok(bytes) = <[u8; 2]>::try_from(&*field)
    {
        field.copy_from_slice(&change(u16::from_be_bytes(bytes)).to_be_bytes());
    }
}

/// A time as TSIG's 48-bit count of seconds.
fn time_48(seconds: u64) -> [u8; 6] {
    let bytes = seconds.to_be_bytes();
    let mut out = [0u8; 6];
    if let Some(low) = bytes.get(2..) {
        out.copy_from_slice(low);
    }
    out
}

impl ReplyTsig {
    /// Appends this record to `response`, a whole reply without it, and
    /// counts it in the header. A signed reply's MAC covers the request's
    /// MAC, the reply (with the original ID), then the TSIG variables.
    pub fn append(&self, response: &mut Vec<u8>, signer: &Signer) -> Result<(), ProtoError> {
        let unsigned = TSIG::new(
            self.algorithm.clone(),
            self.time,
            FUDGE,
            Vec::new(),
            self.original_id,
            self.error,
            self.other.clone(),
        );
        let mac = match &self.request_mac {
            Some(request_mac) => {
                let mut covered = Vec::with_capacity(2 + request_mac.len() + response.len() + 64);
                covered.extend_from_slice(&(request_mac.len() as u16).to_be_bytes());
                covered.extend_from_slice(request_mac);
                let reply_at = covered.len();
                covered.extend_from_slice(response);
                if let Some(reply) = covered.get_mut(reply_at..) {
                    set_u16(reply, ID, |_| self.original_id);
                }
                let offset = covered.len() as u32;
                let mut encoder = BinEncoder::with_offset(&mut covered, offset);
                unsigned.emit_tsig_for_mac(&mut encoder, &self.key_name)?;
                signer.sign(&covered).as_bytes().to_vec()
            }
            None => Vec::new(),
        };
        let record = make_tsig_record(self.key_name.clone(), unsigned.set_mac(mac));
        let offset = response.len() as u32;
        // A fresh encoder knows no earlier names, so nothing in the record
        // is compressed.
        record.emit(&mut BinEncoder::with_offset(response, offset))?;
        set_u16(response, ARCOUNT, |count| count.wrapping_add(1));
        Ok(())
    }
}

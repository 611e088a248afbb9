//! The wire protocol: the one place that parses and formats every message.
//!
//! Each hop has a request type and a reply type with `parse` (from one line,
//! without its line ending) and `write_to` (appending one line, with `\n`).
//! Servers and clients never build or split protocol text themselves, so the
//! README's protocol table and this module are the whole protocol.
//!
//! | hop                | request                   | reply                                                              |
//! |--------------------|---------------------------|--------------------------------------------------------------------|
//! | client → AS        | `<challenge> <digest>`    | `<tlds-host> <tlds-client-port>` / `No Match Found` / `Error: <reason>` |
//! | AS → TLDS          | `<challenge>`             | `<digest>` / `Error: <reason>`                                     |
//! | client → TLDS      | `<hostname>`              | `<Hostname> <address> <flag>` / `<hostname> - Error:HOST NOT FOUND` / `Error: <reason>` |
//! | TLDS → client, first, with `--require-proof` | (none: on connecting) | `PROOF <nonce>` |
//! | client → TLDS, first, with `--prove` | `PROOF <proof>` | none; `Error: proof failed` and close if wrong |

use std::fmt;

use crate::digest::{DIGEST_HEX_LEN, Digest, DigestError};
use crate::scan;

/// Longest line, without its line ending, that any peer accepts.
pub const MAX_LINE: usize = 1024;
/// Longest challenge, in bytes.
pub const MAX_CHALLENGE: usize = 255;
/// Longest hostname, in bytes (the DNS limit for a name in text form).
pub const MAX_HOSTNAME: usize = 253;

const NO_MATCH: &str = "No Match Found";
const ERROR_PREFIX: &str = "Error:";
const NOT_FOUND_SUFFIX: &str = " - Error:HOST NOT FOUND";

/// Why a line is not a valid message. Its `Display` is the reason sent back
/// in an `Error: <reason>` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    Empty,
    NotUtf8,
    ControlCharacter,
    FieldCount {
        expected: &'static str,
        found: usize,
    },
    ChallengeTooLong(usize),
    HostnameTooLong(usize),
    Digest(DigestError),
    BadPort(String),
    LineTooLong,
    /// Not a `PROOF <32 hex digits>` line.
    NotProof,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Empty => f.write_str("empty request"),
            WireError::NotUtf8 => f.write_str("request is not valid UTF-8"),
            WireError::ControlCharacter => f.write_str("request contains a control character"),
            WireError::FieldCount { expected, found } => {
                write!(f, "expected {expected}, got {found} fields")
            }
            WireError::ChallengeTooLong(len) => {
                write!(f, "challenge is {len} bytes, the limit is {MAX_CHALLENGE}")
            }
            WireError::HostnameTooLong(len) => {
                write!(f, "hostname is {len} bytes, the limit is {MAX_HOSTNAME}")
            }
            WireError::Digest(err) => err.fmt(f),
            WireError::BadPort(port) => write!(f, "'{port}' is not a port number"),
            WireError::LineTooLong => f.write_str("line too long"),
            WireError::NotProof => f.write_str("expected PROOF and 32 hex digits"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<DigestError> for WireError {
    fn from(err: DigestError) -> Self {
        WireError::Digest(err)
    }
}

/// Decodes a line as UTF-8 and rejects control characters (tab excepted: it
/// separates fields), so nothing a peer sends can forge extra lines or fields
/// downstream.
pub fn text(line: &[u8]) -> Result<&str, WireError> {
    // One pass, a word at a time: nearly every line is printable ASCII, so
    // only lines with a tab or a control character need a second look at
    // each byte, and only non-ASCII text the per-character check for C1
    // controls. The padding byte `x` is none of the things looked for.
    let (mut low, mut non_ascii) = (0, 0);
    scan::each_word(line, b'x', |_, word| {
        low |= scan::below(word, 0x20) | scan::equal(word, 0x7f);
        non_ascii |= scan::non_ascii(word);
        true
    });
    if low != 0 && line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(WireError::ControlCharacter);
    }
    let text = std::str::from_utf8(line).map_err(|_| WireError::NotUtf8)?;
    if non_ascii != 0 && text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(WireError::ControlCharacter);
    }
    Ok(text)
}

/// Splits on runs of spaces and tabs into exactly `N` fields.
pub fn fields<'a, const N: usize>(
    text: &'a str,
    expected: &'static str,
) -> Result<[&'a str; N], WireError> {
    // Nearly every line a peer sends is its fields joined by single spaces:
    // find the separators a word at a time, and if there are exactly N - 1
    // of them with a field between each, they are the answer.
    let mut cuts = [0; N];
    let mut separators = 0;
    scan::each_word(text.as_bytes(), b'x', |offset, word| {
        for at in scan::positions(scan::separators(word)) {
            if let Some(cut) = cuts.get_mut(separators) {
                *cut = offset + at;
            }
            separators += 1;
        }
        true
    });
    if separators + 1 == N {
        if let Some(last) = cuts.last_mut() {
            *last = text.len();
        }
        let mut out = [""; N];
        let mut start = 0;
        for (slot, end) in out.iter_mut().zip(cuts) {
            // Separators are ASCII, so these slices fall on character
            // boundaries and need no second UTF-8 check.
            *slot = text
                .get(start..end)
                .expect("separators are ASCII, so cuts fall on character boundaries");
            start = end + 1;
        }
        if out.iter().all(|field| !field.is_empty()) {
            return Ok(out);
        }
    }
    fields_slowly(text, expected)
}

/// [`fields`] for any spacing: leading, trailing or repeated separators.
fn fields_slowly<'a, const N: usize>(
    text: &'a str,
    expected: &'static str,
) -> Result<[&'a str; N], WireError> {
    let mut out = [""; N];
    let mut found = 0;
    let mut start = None;
    for (i, byte) in text.bytes().chain([b' ']).enumerate() {
        match (byte == b' ' || byte == b'\t', start) {
            (true, Some(from)) => {
                if let Some(slot) = out.get_mut(found) {
                    *slot = text.get(from..i).expect("fields end at an ASCII separator");
                }
                found += 1;
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    match found {
        0 => Err(WireError::Empty),
        n if n == N => Ok(out),
        n => Err(WireError::FieldCount { expected, found: n }),
    }
}

pub fn check_challenge(challenge: &str) -> Result<&str, WireError> {
    if challenge.len() > MAX_CHALLENGE {
        return Err(WireError::ChallengeTooLong(challenge.len()));
    }
    Ok(challenge)
}

pub fn check_hostname(hostname: &str) -> Result<&str, WireError> {
    if hostname.len() > MAX_HOSTNAME {
        return Err(WireError::HostnameTooLong(hostname.len()));
    }
    Ok(hostname)
}

fn push_line(out: &mut Vec<u8>, parts: &[&str]) {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(part.as_bytes());
    }
    out.push(b'\n');
}

/// `Error: <reason>`, with anything that could break the line replaced.
pub fn write_error(out: &mut Vec<u8>, reason: &dyn fmt::Display) {
    let reason = reason.to_string();
    let clean: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    push_line(out, &[ERROR_PREFIX, clean.trim()]);
}

/// The reason in an `Error: <reason>` line, if it is one. A server error is
/// told by its shape, `Error:` and then a space, which no hostname can
/// hold: `Error:foo` is a hostname (and `Error:foo - Error:HOST NOT FOUND`
/// the miss of one), not an error.
fn error_reason(text: &str) -> Option<&str> {
    text.strip_prefix(ERROR_PREFIX)
        .filter(|rest| rest.starts_with(' '))
        .map(str::trim)
}

/// client → AS: `<challenge> <digest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest<'a> {
    pub challenge: &'a str,
    pub digest: Digest,
}

impl<'a> AuthRequest<'a> {
    pub fn parse(line: &'a [u8]) -> Result<Self, WireError> {
        // The usual line is `<challenge> <digest>` with one space: decode
        // the digest in place (decoding checks every byte) and check only
        // the challenge as text. Anything else takes the general path, which
        // gives the same result for every line this accepts.
        let digest_at = line.len().wrapping_sub(DIGEST_HEX_LEN + 1);
        if let Some((challenge, [b' ', digest @ ..])) = line.split_at_checked(digest_at)
            && let Ok(digest) = Digest::from_hex(digest)
            && let Ok(ChallengeRequest(challenge)) = ChallengeRequest::parse(challenge)
        {
            return Ok(AuthRequest { challenge, digest });
        }
        let [challenge, digest] = fields(text(line)?, "2 fields: <challenge> <digest>")?;
        Ok(AuthRequest {
            challenge: check_challenge(challenge)?,
            digest: Digest::from_hex(digest)?,
        })
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.challenge.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.digest.to_hex().as_bytes());
        out.push(b'\n');
    }
}

/// AS → client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply<'a> {
    /// Ask this TLDS: its client-facing host and port.
    Tlds {
        host: &'a str,
        port: u16,
    },
    NoMatch,
    Error(&'a str),
}

impl<'a> AuthReply<'a> {
    pub fn parse(line: &'a [u8]) -> Result<Self, WireError> {
        let text = text(line)?;
        if let Some(reason) = error_reason(text) {
            return Ok(AuthReply::Error(reason));
        }
        if text.trim() == NO_MATCH {
            return Ok(AuthReply::NoMatch);
        }
        let [host, port] = fields(text, "2 fields: <tlds-host> <tlds-client-port>")?;
        let port = port
            .parse()
            .map_err(|_| WireError::BadPort(port.to_owned()))?;
        Ok(AuthReply::Tlds { host, port })
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            AuthReply::Tlds { host, port } => push_line(out, &[host, &port.to_string()]),
            AuthReply::NoMatch => push_line(out, &[NO_MATCH]),
            AuthReply::Error(reason) => write_error(out, reason),
        }
    }
}

/// AS → TLDS: `<challenge>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRequest<'a>(pub &'a str);

impl<'a> ChallengeRequest<'a> {
    pub fn parse(line: &'a [u8]) -> Result<Self, WireError> {
        let [challenge] = fields(text(line)?, "1 field: <challenge>")?;
        Ok(ChallengeRequest(check_challenge(challenge)?))
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        push_line(out, &[self.0]);
    }
}

/// TLDS → AS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestReply<'a> {
    Digest(Digest),
    Error(&'a str),
}

impl<'a> DigestReply<'a> {
    pub fn parse(line: &'a [u8]) -> Result<Self, WireError> {
        // The usual line is exactly a digest, and decoding checks every byte.
        if let Ok(digest) = Digest::from_hex(line) {
            return Ok(DigestReply::Digest(digest));
        }
        let text = text(line)?;
        if let Some(reason) = error_reason(text) {
            return Ok(DigestReply::Error(reason));
        }
        let [digest] = fields(text, "1 field: <digest>")?;
        Ok(DigestReply::Digest(Digest::from_hex(digest)?))
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            DigestReply::Digest(digest) => {
                out.extend_from_slice(digest.to_hex().as_bytes());
                out.push(b'\n');
            }
            DigestReply::Error(reason) => write_error(out, reason),
        }
    }
}

/// client → TLDS: `<hostname>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRequest<'a>(pub &'a str);

impl<'a> HostRequest<'a> {
    pub fn parse(line: &'a [u8]) -> Result<Self, WireError> {
        let [hostname] = fields(text(line)?, "1 field: <hostname>")?;
        Ok(HostRequest(check_hostname(hostname)?))
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        push_line(out, &[self.0]);
    }
}

/// TLDS → client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostReply<'a> {
    /// The table's record, `Hostname address flag`, as one line.
    Found(&'a str),
    /// The hostname as the client sent it.
    NotFound(&'a str),
    Error(&'a str),
}

impl<'a> HostReply<'a> {
    pub fn parse(line: &'a [u8]) -> Result<Self, WireError> {
        HostReply::parse_text(text(line)?)
    }

    /// Parses a line already checked by [`text`].
    pub fn parse_text(text: &'a str) -> Result<Self, WireError> {
        if let Some(reason) = error_reason(text) {
            return Ok(HostReply::Error(reason));
        }
        if let Some(hostname) = text.strip_suffix(NOT_FOUND_SUFFIX) {
            let [hostname] = fields(hostname, "<hostname> - Error:HOST NOT FOUND")?;
            return Ok(HostReply::NotFound(hostname));
        }
        fields::<3>(text, "3 fields: <hostname> <address> <flag>")?;
        Ok(HostReply::Found(text))
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            HostReply::Found(record) => push_line(out, &[record]),
            HostReply::NotFound(hostname) => {
                out.extend_from_slice(hostname.as_bytes());
                push_line(out, &[NOT_FOUND_SUFFIX]);
            }
            HostReply::Error(reason) => write_error(out, reason),
        }
    }
}

const PROOF: &str = "PROOF";

/// What a client signs to prove it holds a TLDS's key, for the `nonce` that
/// TLDS sent: `authdns proof`, a NUL, then the nonce. A challenge on the wire
/// can hold no control character, so no challenge sent to a TLDS's AS port
/// is ever this message: the AS port cannot be made to mint a proof.
pub fn proof_message(nonce: &str) -> Vec<u8> {
    let mut message = b"authdns proof\0".to_vec();
    message.extend_from_slice(nonce.as_bytes());
    message
}

/// The `PROOF <32 hex digits>` shape both proof lines share.
fn proof_field(line: &[u8]) -> Result<&str, WireError> {
    let [word, value] = fields(text(line)?, "2 fields: PROOF <32 hex digits>")?;
    if word != PROOF
        || value.len() != DIGEST_HEX_LEN
        || !value.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(WireError::NotProof);
    }
    Ok(value)
}

/// TLDS → client, the first line on a connection to a TLDS that requires a
/// proof of key: `PROOF <nonce>`, 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofGreeting<'a>(pub &'a str);

impl<'a> ProofGreeting<'a> {
    pub fn parse(line: &'a [u8]) -> Result<Self, WireError> {
        let nonce = proof_field(line)?;
        if nonce.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(WireError::NotProof);
        }
        Ok(ProofGreeting(nonce))
    }

    /// Whether `line` is a greeting. A client asks this of every reply, so
    /// it looks at the first field before parsing: a greeting's is `PROOF`.
    pub fn is_greeting(line: &[u8]) -> bool {
        line.trim_ascii_start().starts_with(PROOF.as_bytes()) && ProofGreeting::parse(line).is_ok()
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        push_line(out, &[PROOF, self.0]);
    }
}

/// client → TLDS, the first line after a greeting: `PROOF <proof>`, the
/// HMAC-MD5 of [`proof_message`] under the TLDS's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofRequest(pub Digest);

impl ProofRequest {
    pub fn parse(line: &[u8]) -> Result<Self, WireError> {
        Ok(ProofRequest(Digest::from_hex(proof_field(line)?)?))
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        push_line(out, &[PROOF, self.0.to_hex().as_str()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::hmac_md5;

    fn line(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_hostname_that_begins_with_error_is_no_error() {
        assert_eq!(
            HostReply::parse(b"Error:foo - Error:HOST NOT FOUND"),
            Ok(HostReply::NotFound("Error:foo"))
        );
        assert_eq!(
            HostReply::parse(b"Error:x 10.0.0.1 A"),
            Ok(HostReply::Found("Error:x 10.0.0.1 A"))
        );
        assert_eq!(
            HostReply::parse(b"Error: server busy"),
            Ok(HostReply::Error("server busy"))
        );
        let error = line(|out| write_error(out, &""));
        assert_eq!(
            AuthReply::parse(error.trim_end_matches('\n').as_bytes()),
            Ok(AuthReply::Error(""))
        );
    }

    #[test]
    fn auth_request_round_trip() {
        let digest = hmac_md5(b"k5678", b"foxtrot");
        let request = AuthRequest {
            challenge: "foxtrot",
            digest,
        };
        let text = line(|out| request.write_to(out));
        assert_eq!(text, "foxtrot 83cdae16a693560b34bac1f64b7cf10a\n");
        assert_eq!(AuthRequest::parse(text.trim_end().as_bytes()), Ok(request));
    }

    #[test]
    fn auth_request_errors() {
        assert_eq!(AuthRequest::parse(b""), Err(WireError::Empty));
        assert_eq!(AuthRequest::parse(b"   "), Err(WireError::Empty));
        assert!(matches!(
            AuthRequest::parse(b"a b c"),
            Err(WireError::FieldCount { found: 3, .. })
        ));
        assert!(matches!(
            AuthRequest::parse(b"foxtrot 83cd"),
            Err(WireError::Digest(DigestError::Length(4)))
        ));
        let long = format!("{} {}", "c".repeat(256), "0".repeat(32));
        assert_eq!(
            AuthRequest::parse(long.as_bytes()),
            Err(WireError::ChallengeTooLong(256))
        );
        assert_eq!(
            AuthRequest::parse(b"fox\xfftrot 83cdae16a693560b34bac1f64b7cf10a"),
            Err(WireError::NotUtf8)
        );
        assert_eq!(
            AuthRequest::parse(b"fox\0trot 83cdae16a693560b34bac1f64b7cf10a"),
            Err(WireError::ControlCharacter)
        );
    }

    #[test]
    fn auth_reply_round_trips() {
        for reply in [
            AuthReply::Tlds {
                host: "localhost",
                port: 5312,
            },
            AuthReply::NoMatch,
            AuthReply::Error("tlds1 unreachable"),
        ] {
            let text = line(|out| reply.write_to(out));
            assert_eq!(AuthReply::parse(text.trim_end().as_bytes()), Ok(reply));
        }
        assert_eq!(
            line(|out| AuthReply::NoMatch.write_to(out)),
            "No Match Found\n"
        );
        assert_eq!(
            line(|out| AuthReply::Tlds {
                host: "127.0.0.2",
                port: 7
            }
            .write_to(out)),
            "127.0.0.2 7\n"
        );
        assert_eq!(
            AuthReply::parse(b"host 70000"),
            Err(WireError::BadPort("70000".into()))
        );
    }

    #[test]
    fn digest_reply_round_trips() {
        let digest = hmac_md5(b"k", b"c");
        for reply in [DigestReply::Digest(digest), DigestReply::Error("bad")] {
            let text = line(|out| reply.write_to(out));
            assert_eq!(DigestReply::parse(text.trim_end().as_bytes()), Ok(reply));
        }
        assert!(DigestReply::parse(b"nothex").is_err());
    }

    #[test]
    fn challenge_and_host_requests() {
        assert_eq!(
            ChallengeRequest::parse(b"foxtrot"),
            Ok(ChallengeRequest("foxtrot"))
        );
        assert_eq!(line(|out| ChallengeRequest("x").write_to(out)), "x\n");
        assert!(matches!(
            ChallengeRequest::parse(b"two words"),
            Err(WireError::FieldCount { found: 2, .. })
        ));
        assert_eq!(
            HostRequest::parse(b"Example.COM."),
            Ok(HostRequest("Example.COM."))
        );
        let long = "h".repeat(254);
        assert_eq!(
            HostRequest::parse(long.as_bytes()),
            Err(WireError::HostnameTooLong(254))
        );
        assert_eq!(
            HostRequest::parse(b"a\x01b"),
            Err(WireError::ControlCharacter)
        );
    }

    #[test]
    fn host_reply_formats() {
        assert_eq!(
            line(|out| HostReply::Found("Amazon.org 94.5.6.7 A").write_to(out)),
            "Amazon.org 94.5.6.7 A\n"
        );
        assert_eq!(
            line(|out| HostReply::NotFound("nothinghere.com").write_to(out)),
            "nothinghere.com - Error:HOST NOT FOUND\n"
        );
        assert_eq!(
            line(|out| HostReply::Error("hostname is too long").write_to(out)),
            "Error: hostname is too long\n"
        );
        for reply in [
            HostReply::Found("Amazon.org 94.5.6.7 A"),
            HostReply::NotFound("nothinghere.com"),
            HostReply::Error("oops"),
        ] {
            let text = line(|out| reply.write_to(out));
            assert_eq!(HostReply::parse(text.trim_end().as_bytes()), Ok(reply));
        }
        assert!(HostReply::parse(b"just two").is_err());
    }

    #[test]
    fn tabs_separate_fields_in_any_text() {
        assert_eq!(
            ChallengeRequest::parse("\t¡olé\t".as_bytes()),
            Ok(ChallengeRequest("¡olé"))
        );
        assert_eq!(
            ChallengeRequest::parse("¡olé\u{85}".as_bytes()),
            Err(WireError::ControlCharacter)
        );
    }

    #[test]
    fn error_lines_cannot_be_split() {
        assert_eq!(line(|out| write_error(out, &"a\nb\rc")), "Error: a b c\n");
    }

    /// The definitions the word-at-a-time code must agree with.
    fn text_plainly(line: &[u8]) -> Result<&str, WireError> {
        let text = std::str::from_utf8(line).map_err(|_| WireError::NotUtf8)?;
        if text.chars().any(|c| c.is_control() && c != '\t') {
            return Err(WireError::ControlCharacter);
        }
        Ok(text)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        // Lines of every length around the word size, built from the bytes
        // that matter: separators, controls, DEL, ASCII and UTF-8 pieces.
        #[test]
        fn word_scans_agree_with_plain_definitions(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    " ", "\t", "  ", "a", "Z", "0", "x", ".", "\u{0}", "\u{1f}", "\u{7f}",
                    "\n", "é", "\u{85}", "\u{2028}", "\u{ff}",
                ]),
                0..90,
            ),
            cut in 0usize..4,
        ) {
            let joined = pieces.concat();
            // Sometimes cut a multi-byte character in half: not UTF-8.
            let bytes = &joined.as_bytes()[..joined.len().saturating_sub(cut % 2)];
            let checked = text(bytes);
            let plain = text_plainly(bytes);
            // A control byte inside broken UTF-8 may be reported either way.
            if plain != Err(WireError::NotUtf8) || checked != Err(WireError::ControlCharacter) {
                proptest::prop_assert_eq!(&checked, &plain);
            }
            if let Ok(text) = checked {
                proptest::prop_assert_eq!(fields::<1>(text, "x"), fields_slowly::<1>(text, "x"));
                proptest::prop_assert_eq!(fields::<2>(text, "x"), fields_slowly::<2>(text, "x"));
                proptest::prop_assert_eq!(fields::<3>(text, "x"), fields_slowly::<3>(text, "x"));
            }
        }
    }
}

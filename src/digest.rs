//! HMAC-MD5 digests: the one place that signs challenges, compares digests,
//! and converts them to and from their 32-character hex form on the wire.
//!
//! A [`Signer`] keeps the key-padded HMAC states computed once, so signing a
//! challenge copies those states instead of re-deriving them from the key;
//! [`sign_many`] signs a burst sixteen challenges at a time, side by side
//! (`digest/lanes.rs`). Digests are compared with the `hmac`/`digest` crates'
//! constant-time equality, so the authentication server leaks nothing about
//! how many leading bytes matched.

use std::fmt;

use hmac::Hmac;
use hmac::digest::CtOutput;
use md5::Md5;
use md5::block_api::compress;

use crate::text_file;

mod lanes;

type HmacMd5 = Hmac<Md5>;

/// Length of a digest in bytes.
pub const DIGEST_LEN: usize = 16;
/// Length of a digest written as lowercase hex.
pub const DIGEST_HEX_LEN: usize = 2 * DIGEST_LEN;

/// An HMAC-MD5 output. Equality is constant-time.
#[derive(Clone, Copy)]
pub struct Digest([u8; DIGEST_LEN]);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// Wrong length: a digest is exactly 32 hex characters.
    Length(usize),
    /// Right length, but something other than `0-9a-fA-F` in it.
    NotHex,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Length(len) => write!(
                f,
                "digest must be {DIGEST_HEX_LEN} hex characters, got {len} bytes"
            ),
            DigestError::NotHex => write!(f, "digest must be {DIGEST_HEX_LEN} hex characters"),
        }
    }
}

impl std::error::Error for DigestError {}

impl Digest {
    /// Parses 32 hex characters (either case). Every byte is checked, so
    /// anything else (spaces, controls, non-ASCII) is rejected.
    pub fn from_hex(text: impl AsRef<[u8]>) -> Result<Digest, DigestError> {
        let text = text.as_ref();
        if text.len() != DIGEST_HEX_LEN {
            return Err(DigestError::Length(text.len()));
        }
        // Branch-free per character, so that the compiler does all 32 at
        // once in vector registers: the AS decodes three digests per query.
        let mut values = [0u8; DIGEST_HEX_LEN];
        let mut invalid = false;
        for (value, &char) in values.iter_mut().zip(text) {
            let digit = char.wrapping_sub(b'0');
            // Setting bit 5 lowercases A-F and takes nothing else into a-f.
            let letter = (char | 0x20).wrapping_sub(b'a');
            *value = if digit < 10 {
                digit
            } else {
                letter.wrapping_add(10)
            };
            invalid |= digit >= 10 && letter >= 6;
        }
        if invalid {
            return Err(DigestError::NotHex);
        }
        let mut bytes = [0u8; DIGEST_LEN];
        for (byte, [high, low]) in bytes.iter_mut().zip(values.as_chunks::<2>().0) {
            *byte = high << 4 | low;
        }
        Ok(Digest(bytes))
    }

    /// Writes the digest as 32 lowercase hex characters into a fixed buffer,
    /// so the hot paths format without allocating.
    pub fn to_hex(&self) -> HexDigest {
        let mut out = [0u8; DIGEST_HEX_LEN];
        // The buffer is exactly twice the input, the one size encode_to_slice accepts.
        if hex::encode_to_slice(self.0, &mut out).is_err() {
            unreachable!("hex buffer is sized for a digest");
        }
        HexDigest(out)
    }

    /// Constant-time comparison, via the digest crate's `CtOutput`.
    pub fn matches(&self, other: &Digest) -> bool {
        let ours: CtOutput<HmacMd5> = CtOutput::new(self.0.into());
        let theirs: CtOutput<HmacMd5> = CtOutput::new(other.0.into());
        ours == theirs
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Digest) -> bool {
        self.matches(other)
    }
}

impl Eq for Digest {}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex().as_str())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

/// A digest's lowercase hex form in a stack buffer.
#[derive(Clone, Copy)]
pub struct HexDigest([u8; DIGEST_HEX_LEN]);

impl HexDigest {
    /// The 32 characters as bytes, for writing to the wire without a UTF-8
    /// check each time.
    pub fn as_bytes(&self) -> &[u8; DIGEST_HEX_LEN] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Only hex::encode_to_slice writes these bytes, and it writes ASCII.
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

/// A secret key. Its `Debug` output is redacted so it cannot leak through a
/// log line or an error message by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    pub fn new(secret: impl Into<String>) -> Key {
        Key(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn signer(&self) -> Signer {
        Signer::new(self.0.as_bytes())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// What is wrong with a key file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTextError {
    /// Every line is blank or a comment.
    NoKey,
    /// The key's line (1-based) holds whitespace inside the key.
    Whitespace(usize),
    /// The key's line holds a control character.
    ControlCharacter(usize),
}

impl fmt::Display for KeyTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyTextError::NoKey => f.write_str("holds no key (every line is blank or a comment)"),
            KeyTextError::Whitespace(_) => f.write_str("the key contains whitespace"),
            KeyTextError::ControlCharacter(_) => {
                f.write_str("the key contains a control character")
            }
        }
    }
}

/// Why a key file gave no key. The key itself never appears in these.
#[derive(Debug)]
pub enum KeyFileError {
    Io(std::path::PathBuf, std::io::Error),
    NotUtf8(std::path::PathBuf),
    Text(std::path::PathBuf, KeyTextError),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Io(path, _) => write!(f, "cannot read key file {}", path.display()),
            KeyFileError::NotUtf8(path) => {
                write!(f, "key file {} is not UTF-8 text", path.display())
            }
            KeyFileError::Text(path, err @ KeyTextError::NoKey) => {
                write!(f, "key file {} {err}", path.display())
            }
            KeyFileError::Text(
                path,
                err @ (KeyTextError::Whitespace(line) | KeyTextError::ControlCharacter(line)),
            ) => write!(f, "{}:{line}: {err}", path.display()),
        }
    }
}

/// An I/O error is the source, shown after the message by whoever prints
/// the chain; every other cause is in the message itself.
impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyFileError::Io(_, err) => Some(err),
            _ => None,
        }
    }
}

impl Key {
    /// A key file's key: its first line that is neither blank nor a `#`
    /// comment, trimmed. A key is one token: whitespace or a control
    /// character inside it is refused, since it would be a key no query
    /// file could spell.
    pub fn from_file_text(text: &str) -> Result<Key, KeyTextError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let (number, line) = text
            .lines()
            .enumerate()
            .find(|(_, line)| !text_file::is_skipped(line.as_bytes()))
            .ok_or(KeyTextError::NoKey)?;
        let key = line.trim_matches([' ', '\t', '\r']);
        if key.chars().any(char::is_whitespace) {
            return Err(KeyTextError::Whitespace(number + 1));
        }
        if key.chars().any(char::is_control) {
            return Err(KeyTextError::ControlCharacter(number + 1));
        }
        Ok(Key::new(key))
    }

    pub fn load(path: &std::path::Path) -> Result<Key, KeyFileError> {
        let bytes = std::fs::read(path).map_err(|err| KeyFileError::Io(path.to_owned(), err))?;
        let text = String::from_utf8(bytes).map_err(|_| KeyFileError::NotUtf8(path.to_owned()))?;
        Key::from_file_text(&text).map_err(|err| KeyFileError::Text(path.to_owned(), err))
    }
}

/// HMAC-MD5 (RFC 2104) under one key.
///
/// HMAC hashes the key XOR-padded into one 64-byte block before the message
/// (inner hash) and before the inner digest (outer hash). Those two blocks
/// depend only on the key, so the MD5 state after each is computed once,
/// here, and signing starts from copies of them: for a challenge of up to 55
/// bytes that is two MD5 block compressions per digest, the least HMAC-MD5
/// can cost. It is built on `md-5`'s block function rather than on
/// `Hmac<Md5>` because cloning and finalising the general-purpose buffered
/// state cost a further 15% per digest, and every query signs three times
/// (client and both TLDS servers). Tests check it against `Hmac<Md5>`.
#[derive(Clone)]
pub struct Signer {
    inner: [u32; 4],
    outer: [u32; 4],
}

/// MD5's block size, in bytes.
const BLOCK: usize = 64;
/// MD5's initial state (RFC 1321, section 3.3).
const MD5_INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

impl Signer {
    pub fn new(key: &[u8]) -> Signer {
        // Keys longer than a block are replaced by their MD5 digest.
        let hashed;
        let key = if key.len() > BLOCK {
            hashed = md5_finish(MD5_INIT, 0, key);
            &hashed[..]
        } else {
            key
        };
        let mut padded = [0u8; BLOCK];
        padded
            .iter_mut()
            .zip(key)
            .for_each(|(slot, byte)| *slot = *byte);
        let state_after = |pad: u8| {
            let mut state = MD5_INIT;
            compress(&mut state, &[padded.map(|byte| byte ^ pad)]);
            state
        };
        Signer {
            inner: state_after(0x36),
            outer: state_after(0x5c),
        }
    }

    /// HMAC-MD5(key, challenge).
    pub fn sign(&self, challenge: &[u8]) -> Digest {
        let inner = md5_finish(self.inner, BLOCK, challenge);
        Digest(md5_finish(self.outer, BLOCK, &inner))
    }
}

/// Longest challenge whose padded inner hash fits in one MD5 block.
const ONE_BLOCK: usize = BLOCK - 9;

/// Signs many challenges, each under its own signer, giving `each` the
/// digests in order. Groups of sixteen short challenges are signed side by
/// side (`digest/lanes.rs`), two to four times faster per digest than one at
/// a time (a group only partly full is padded when that still pays); the
/// rest one at a time.
pub fn sign_many<C: AsRef<[u8]>>(work: &[(&Signer, C)], mut each: impl FnMut(Digest)) {
    for group in work.chunks(lanes::LANES) {
        let short = |(_, challenge): &(&Signer, C)| challenge.as_ref().len() <= ONE_BLOCK;
        match group.first() {
            Some((first, challenge))
                if group.len() >= PAYS_SIDE_BY_SIDE && group.iter().all(short) =>
            {
                // Lanes past the group's end sign its first challenge again,
                // and their digests are dropped.
                let padding = (*first, challenge.as_ref());
                let lanes: [(&Signer, &[u8]); lanes::LANES] = std::array::from_fn(|lane| {
                    group
                        .get(lane)
                        .map_or(padding, |(signer, challenge)| (*signer, challenge.as_ref()))
                });
                sign_side_by_side(&lanes)
                    .into_iter()
                    .take(group.len())
                    .for_each(&mut each);
            }
            _ => group
                .iter()
                .for_each(|(signer, challenge)| each(signer.sign(challenge.as_ref()))),
        }
    }
}

/// Fewest challenges worth signing side by side: below this, signing each
/// alone costs less than a full set of lanes.
const PAYS_SIDE_BY_SIDE: usize = 6;

/// [`Signer::sign`] for sixteen challenges of at most [`ONE_BLOCK`] bytes.
fn sign_side_by_side(work: &[(&Signer, &[u8]); lanes::LANES]) -> [Digest; lanes::LANES] {
    // Built in place, lane by lane: the arrays here are a kilobyte each,
    // and copying them about costs as much as a compression.
    let mut message: lanes::Blocks = [[0; lanes::LANES]; 16];
    let mut inner: lanes::States = [[0; lanes::LANES]; 4];
    let mut outer: lanes::States = [[0; lanes::LANES]; 4];
    for (lane, (signer, challenge)) in work.iter().enumerate() {
        lanes::set_lane(
            &mut message,
            lane,
            &final_block(challenge, BLOCK + challenge.len()),
        );
        lanes::set_state(&mut inner, lane, signer.inner);
        lanes::set_state(&mut outer, lane, signer.outer);
    }
    lanes::compress(&mut inner, &message);
    // The outer hash's one block is the inner digest padded: the inner
    // state's four words (a digest is its state's words, little-endian, as
    // a block's words are), the 0x80 marker, zeros, and the length in bits.
    let length_bits = ((BLOCK + DIGEST_LEN) * 8) as u32;
    for (at, word) in message.iter_mut().enumerate() {
        *word = match at {
            0..4 => *inner.get(at).expect("an MD5 state has 4 words"),
            4 => [0x80; lanes::LANES],
            14 => [length_bits; lanes::LANES],
            _ => [0; lanes::LANES],
        };
    }
    lanes::compress(&mut outer, &message);
    std::array::from_fn(|i| Digest(digest_of(lanes::lane(&outer, i))))
}

/// The MD5 digest of a message whose first `absorbed` bytes (whole blocks)
/// are already in `state` and whose remaining bytes are `rest`.
fn md5_finish(mut state: [u32; 4], absorbed: usize, rest: &[u8]) -> [u8; DIGEST_LEN] {
    let (blocks, tail) = rest.as_chunks::<BLOCK>();
    compress(&mut state, blocks);
    let (last, used) = final_blocks(tail, absorbed + rest.len());
    compress(
        &mut state,
        last.get(..used)
            .expect("final_blocks uses one or two blocks"),
    );
    digest_of(state)
}

/// MD5's padding after the last whole block: the `tail` (under a block),
/// 0x80, zeros, and the message's `length` in bits in the last 8 bytes. One
/// block when the tail leaves room (at most [`ONE_BLOCK`] bytes), else two;
/// the count is returned beside them.
fn final_blocks(tail: &[u8], length: usize) -> ([[u8; BLOCK]; 2], usize) {
    let mut last = [[0u8; BLOCK]; 2];
    let used = if tail.len() <= ONE_BLOCK { 1 } else { 2 };
    pad(
        last.as_flattened_mut()
            .get_mut(..used * BLOCK)
            .expect("one or two blocks fit in two"),
        tail,
        length,
    );
    (last, used)
}

/// [`final_blocks`] for a tail of at most [`ONE_BLOCK`] bytes.
fn final_block(tail: &[u8], length: usize) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    pad(&mut block, tail, length);
    block
}

/// Writes MD5's padding into zeroed `blocks`: the tail, 0x80, and the length
/// in bits in the last 8 bytes.
fn pad(blocks: &mut [u8], tail: &[u8], length: usize) {
    if let Some(start) = blocks.get_mut(..tail.len()) {
        start.copy_from_slice(tail);
    }
    if let Some(marker) = blocks.get_mut(tail.len()) {
        *marker = 0x80;
    }
    if let Some(bits) = blocks.last_chunk_mut() {
        *bits = (length as u64).wrapping_mul(8).to_le_bytes();
    }
}

/// An MD5 state's digest: its words, little-endian.
fn digest_of(state: [u32; 4]) -> [u8; DIGEST_LEN] {
    let mut digest = [0u8; DIGEST_LEN];
    for (bytes, word) in digest.as_chunks_mut::<4>().0.iter_mut().zip(state) {
        *bytes = word.to_le_bytes();
    }
    digest
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

/// HMAC-MD5(key, challenge) in one call.
pub fn hmac_md5(key: &[u8], challenge: &[u8]) -> Digest {
    Signer::new(key).sign(challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(key: &[u8], data: &[u8]) -> String {
        hmac_md5(key, data).to_string()
    }

    #[test]
    fn reference_value_from_the_issue() {
        assert_eq!(
            hex_of(b"k5678", b"foxtrot"),
            "83cdae16a693560b34bac1f64b7cf10a"
        );
    }

    // RFC 2202, section 2: test cases for HMAC-MD5.
    #[test]
    fn rfc2202_vectors() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 7] = [
            (
                vec![0x0b; 16],
                b"Hi There".to_vec(),
                "9294727a3638bb1c13f48ef8158bfc9d",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "750c783e6ab0b503eaa86e310a5db738",
            ),
            (
                vec![0xaa; 16],
                vec![0xdd; 50],
                "56be34521d144c88dbb8c733f0e8b3f6",
            ),
            (
                (1u8..=25).collect(),
                vec![0xcd; 50],
                "697eaf0aca3a3aea3a75164746ffaa79",
            ),
            (
                vec![0x0c; 16],
                b"Test With Truncation".to_vec(),
                "56461ef2342edc00f9bab995690efd4c",
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"
                    .to_vec(),
                "6f630fad67cda0ee1fb1f562db3aa53e",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hex_of(&key, &data), expected);
        }
    }

    /// The reference: the `hmac` crate's general HMAC over `md-5`.
    fn reference(key: &[u8], data: &[u8]) -> [u8; DIGEST_LEN] {
        use hmac::{KeyInit, Mac};
        let mut mac = HmacMd5::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    // Every key and message length around the block and padding boundaries
    // (55/56 bytes: where the length stops fitting in the last block; 64:
    // where keys start being hashed first).
    #[test]
    fn signer_agrees_with_the_hmac_crate_at_every_length() {
        for key_len in [0, 1, 15, 16, 55, 56, 63, 64, 65, 100, 128, 200] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 7 + 3) as u8).collect();
            let signer = Signer::new(&key);
            for data_len in 0..300 {
                let data: Vec<u8> = (0..data_len).map(|i| (i * 13 + 1) as u8).collect();
                assert_eq!(
                    signer.sign(&data).0,
                    reference(&key, &data),
                    "key {key_len} bytes, data {data_len} bytes"
                );
            }
        }
    }

    // Side by side or one at a time, every digest is the one `sign` gives:
    // any number of items, several keys, and challenges on both sides of
    // the one-block limit mixed into the groups of sixteen.
    #[test]
    fn sign_many_agrees_with_sign() {
        let signers = [
            Signer::new(b"k1234"),
            Signer::new(b"k5678"),
            Signer::new(&[7; 100]),
        ];
        let challenges: Vec<Vec<u8>> = (0..40)
            .map(|i| {
                let len = [0, 1, 15, 54, 55, 56, 63, 64, 200][i % 9] * usize::from(i % 13 != 0);
                (0..len).map(|j| (i * 31 + j) as u8).collect()
            })
            .collect();
        for count in 0..=challenges.len() {
            let work: Vec<(&Signer, &[u8])> = challenges[..count]
                .iter()
                .enumerate()
                .map(|(i, challenge)| (&signers[i % 3], challenge.as_slice()))
                .collect();
            let mut got = Vec::new();
            sign_many(&work, |digest| got.push(digest));
            let expected: Vec<Digest> = work.iter().map(|(s, c)| s.sign(c)).collect();
            assert_eq!(got, expected, "{count} items");
        }
        // All short, so every group big enough goes side by side, padded
        // when only partly full: every count from none to past two groups.
        let short: Vec<(&Signer, &[u8])> = (0..40)
            .map(|i| (&signers[i % 2], &b"challenge"[..i % 9]))
            .collect();
        for count in 0..=short.len() {
            let mut got = Vec::new();
            sign_many(&short[..count], |digest| got.push(digest));
            let expected: Vec<Digest> = short[..count].iter().map(|(s, c)| s.sign(c)).collect();
            assert_eq!(got, expected, "{count} short items");
        }
    }

    #[test]
    fn signer_reuses_state_without_mixing_challenges() {
        let signer = Key::new("k5678").signer();
        let first = signer.sign(b"foxtrot");
        let _other = signer.sign(b"something else");
        assert_eq!(signer.sign(b"foxtrot"), first);
        assert_eq!(first.to_string(), "83cdae16a693560b34bac1f64b7cf10a");
    }

    #[test]
    fn from_hex_agrees_with_the_hex_crate_for_every_byte_anywhere() {
        let valid = b"0123456789abcdefABCDEF0123456789";
        for at in 0..DIGEST_HEX_LEN {
            for byte in 0..=255u8 {
                let mut text = *valid;
                text[at] = byte;
                let expected = hex::decode(text).ok();
                let got = Digest::from_hex(text).ok().map(|digest| digest.0.to_vec());
                assert_eq!(got, expected, "byte {byte:#04x} at {at}");
            }
        }
    }

    #[test]
    fn hex_round_trip_and_case() {
        let digest = Digest::from_hex("83CDAE16A693560B34BAC1F64B7CF10A").unwrap();
        assert_eq!(digest.to_string(), "83cdae16a693560b34bac1f64b7cf10a");
        assert_eq!(Digest::from_hex(digest.to_string()).unwrap(), digest);
    }

    #[test]
    fn decodes_every_hex_digit_and_nothing_else() {
        for byte in 0..=255u8 {
            let text = format!("{}{}", char::from(byte), "0".repeat(31));
            let digit = char::from(byte).to_digit(16);
            match Digest::from_hex(&text) {
                Ok(digest) => assert_eq!(Some(u32::from(digest.0[0] >> 4)), digit),
                Err(_) => assert!(digit.is_none() || !byte.is_ascii(), "byte {byte}"),
            }
        }
    }

    #[test]
    fn rejects_bad_hex() {
        assert_eq!(Digest::from_hex("abc"), Err(DigestError::Length(3)));
        assert_eq!(
            Digest::from_hex("zzcdae16a693560b34bac1f64b7cf10a"),
            Err(DigestError::NotHex)
        );
        // 32 bytes, but not 32 characters of hex.
        assert_eq!(
            Digest::from_hex("éécdae16a693560b34bac1f64b7cf1"),
            Err(DigestError::NotHex)
        );
    }

    #[test]
    fn matches_is_equality() {
        let a = hmac_md5(b"k", b"x");
        let b = hmac_md5(b"k", b"y");
        assert!(a.matches(&a));
        assert!(!a.matches(&b));
    }

    #[test]
    fn key_file_takes_first_non_blank_line_trimmed() {
        let key = Key::from_file_text("\r\n  \n\t k5678 \r\nsecond\n").unwrap();
        assert_eq!(key.expose(), "k5678");
        assert_eq!(Key::from_file_text(" \n\r\n\t\n"), Err(KeyTextError::NoKey));
        assert_eq!(Key::from_file_text(""), Err(KeyTextError::NoKey));
        // A comment is not the key, and neither is a byte-order mark.
        let key = Key::from_file_text("\u{feff}# the key of tlds1\n\nk1234\n").unwrap();
        assert_eq!(key.expose(), "k1234");
        assert_eq!(
            Key::from_file_text("# only\n  # comments\n"),
            Err(KeyTextError::NoKey)
        );
        assert_eq!(
            Key::from_file_text("\nk 1234\n"),
            Err(KeyTextError::Whitespace(2))
        );
        assert_eq!(
            Key::from_file_text("k\u{7}1234"),
            Err(KeyTextError::ControlCharacter(1))
        );
    }

    #[test]
    fn key_debug_is_redacted() {
        let key = Key::new("hunter2");
        assert!(!format!("{key:?}").contains("hunter2"));
        assert!(!format!("{:?}", key.signer()).contains("hunter2"));
    }
}

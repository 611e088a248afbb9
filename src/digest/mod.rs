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

mod lanes;
mod signer;

pub use signer::{Signer, sign_many};

pub(crate) type HmacMd5 = Hmac<Md5>;

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

    /// A digest received as bytes, such as a TSIG MAC; `None` unless it has
    /// [`DIGEST_LEN`] of them.
    pub fn from_bytes(bytes: &[u8]) -> Option<Digest> {
        bytes.try_into().ok().map(Digest)
    }

    pub fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
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
}

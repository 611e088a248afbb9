//! Signing: HMAC-MD5 under one key with its padded states computed once,
//! one challenge at a time or a burst sixteen side by side (`lanes.rs`).

use std::fmt;

use md5::block_api::compress;

use super::{DIGEST_LEN, Digest, lanes};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::HmacMd5;
    use crate::key::Key;

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
}

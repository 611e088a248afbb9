//! The client's requests to the AS, signed in bursts: signing waits until a
//! burst is written so that [`sign_many`] can sign sixteen side by side, and
//! each distinct key's [`Signer`] is made once and kept for the run.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::digest::{Signer, sign_many};
use crate::packed::Packed;
use crate::query::Query;
use crate::wire::AuthRequest;

/// AS requests waiting to be signed and written.
#[derive(Default)]
pub(super) struct Requests {
    /// Index into `signers` of each key seen so far.
    keys: HashMap<Box<str>, usize, BuildHasherDefault<Fnv>>,
    /// Each key seen so far, and its signer.
    signers: Vec<(Box<str>, Signer)>,
    /// The places in `signers` of the last two keys looked up, newest first.
    recent: [Option<usize>; 2],
    /// Each queued request's challenge, tagged with its signer's place in
    /// `signers`.
    queued: Packed<usize>,
}

impl Requests {
    pub fn push(&mut self, query: &Query<'_>) {
        let signer = self.signer_for(query.key);
        self.queued.push(query.challenge, signer);
    }

    /// The place in `signers` of `key`'s signer, made on first sight.
    fn signer_for(&mut self, key: &str) -> usize {
        // A query file uses few keys, mostly in runs or in turn: the last
        // two found answer most queries without hashing the key.
        if let Some(signer) = self.recent.into_iter().flatten().find(|&signer| {
            self.signers
                .get(signer)
                .is_some_and(|(name, _)| **name == *key)
        }) {
            return signer;
        }
        let signer = match self.keys.get(key) {
            Some(&signer) => signer,
            None => {
                self.signers.push((key.into(), Signer::new(key.as_bytes())));
                self.keys.insert(key.into(), self.signers.len() - 1);
                self.signers.len() - 1
            }
        };
        let [newest, _] = self.recent;
        self.recent = [Some(signer), newest];
        signer
    }

    /// Signs every queued request and appends it to `out`, in order.
    pub fn write_to(&mut self, out: &mut Vec<u8>) {
        let work: Vec<(&Signer, &str)> = self
            .queued
            .iter()
            .filter_map(|(challenge, &signer)| {
                let (_, signer) = self.signers.get(signer)?;
                Some((signer, challenge))
            })
            .collect();
        let mut challenges = work.iter().map(|&(_, challenge)| challenge);
        sign_many(&work, |digest| {
            let challenge = challenges
                .next()
                .expect("sign_many gives one digest per request");
            AuthRequest { challenge, digest }.write_to(out);
        });
        self.queued.clear();
    }
}

/// FNV-1a: keys are short and come from the user's own query file, so a
/// simple fast hash serves better than the default DoS-resistant one.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::hmac_md5;

    #[test]
    fn each_request_is_signed_with_its_own_key_however_keys_alternate() {
        // Runs, pairs in turn, three in turn, and keys coming back after
        // dropping out of the recent ones.
        let keys = "aabababcabcabcddddaebdcaaaaeb";
        let mut requests = Requests::default();
        let queries: Vec<(String, String)> = keys
            .chars()
            .enumerate()
            .map(|(i, key)| (format!("key-{key}"), format!("challenge{i}")))
            .collect();
        for (key, challenge) in &queries {
            requests.push(&Query {
                key,
                challenge,
                hostname: "host.example",
            });
        }
        let mut out = Vec::new();
        requests.write_to(&mut out);
        let expected: String = queries
            .iter()
            .map(|(key, challenge)| {
                format!(
                    "{challenge} {}\n",
                    hmac_md5(key.as_bytes(), challenge.as_bytes())
                )
            })
            .collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}

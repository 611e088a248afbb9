//! The client's requests to the AS, signed in bursts: signing waits until a
//! burst is written so that [`sign_many`] can sign eight side by side, and
//! each distinct key's [`Signer`] is made once and kept for the run.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::digest::{Signer, sign_many};
use crate::query::Query;
use crate::wire::AuthRequest;

/// AS requests waiting to be signed and written.
#[derive(Default)]
pub(super) struct Requests {
    /// Index into `signers` of each key seen so far.
    keys: HashMap<Box<str>, usize, BuildHasherDefault<Fnv>>,
    signers: Vec<Signer>,
    /// The queued challenges' bytes, end to end.
    challenges: String,
    /// Each queued request: which signer, and where its challenge ends.
    queued: Vec<(usize, usize)>,
}

impl Requests {
    pub fn push(&mut self, query: &Query<'_>) {
        let signer = match self.keys.get(query.key) {
            Some(&signer) => signer,
            None => {
                self.signers.push(Signer::new(query.key.as_bytes()));
                self.keys.insert(query.key.into(), self.signers.len() - 1);
                self.signers.len() - 1
            }
        };
        self.challenges.push_str(query.challenge);
        self.queued.push((signer, self.challenges.len()));
    }

    /// Signs every queued request and appends it to `out`, in order.
    pub fn write_to(&mut self, out: &mut Vec<u8>) {
        let mut start = 0;
        let work: Vec<(&Signer, &str)> = self
            .queued
            .iter()
            .map(|&(signer, end)| {
                let challenge = self
                    .challenges
                    .get(start..end)
                    .expect("challenges are queued end to end");
                start = end;
                let signer = self.signers.get(signer).expect("a signer per key seen");
                (signer, challenge)
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
        self.challenges.clear();
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

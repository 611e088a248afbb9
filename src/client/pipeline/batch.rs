//! What travels between the stages: the queries each hop is waiting on
//! ([`Sent`]), in the order they were written.

use std::time::Instant;

use crate::packed::Packed;

/// Queries written on one hop and waiting for their replies there, in the
/// order they were written, with their hostnames (and, when the client
/// proves its keys, their keys).
#[derive(Default)]
pub(super) struct Sent {
    /// Each query's hostname and key end to end, tagged with the query's
    /// index and where its hostname ends.
    queries: Packed<(usize, usize)>,
    /// When the batch's requests were handed to the socket.
    pub(super) written_at: Option<Instant>,
}

/// One query of a [`Sent`] batch.
#[derive(Clone, Copy)]
pub(super) struct Waiting<'a> {
    pub(super) index: usize,
    pub(super) hostname: &'a str,
    /// Empty unless the client proves its keys.
    pub(super) key: &'a str,
}

impl Sent {
    pub(super) fn push(&mut self, query: Waiting<'_>) {
        self.queries.push_parts(
            &[query.hostname, query.key],
            (query.index, query.hostname.len()),
        );
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.queries.len()
    }

    /// Each query, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Waiting<'_>> {
        self.queries.iter().map(|(text, &(index, hostname_len))| {
            // The hostname was pushed whole before the key: it ends on a
            // character boundary within the text.
            let (hostname, key) = text.split_at_checked(hostname_len).unwrap_or((text, ""));
            Waiting {
                index,
                hostname,
                key,
            }
        })
    }
}

//! DNS over TCP (RFC 1035, 4.2.2; RFC 7766): each message behind a
//! two-byte length, many pipelined on one connection and answered in order.
//!
//! Connections come from [`crate::server::serve`], under the DNS port's own
//! limit, idle timeout and stop, like every other port. Every whole message
//! already read is answered before the replies go out in one write, so a
//! pipelined burst costs one read and one write.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::{Handler, Transport};
use crate::connection::{Connection, End, Served};

/// A DNS header's length: anything shorter cannot be a message.
const HEADER: usize = 12;

/// The least read at once into a partly read burst: room for many
/// ordinary queries.
const READ_AT_LEAST: usize = 16 * 1024;

/// What a connection whose bursts are small holds while it waits, and
/// reads into first.
const IDLE_READ: usize = 4 * 1024;

/// Small reads after a large one before a connection's buffers shrink back
/// to [`IDLE_READ`]: a peer streaming large bursts keeps them.
const SMALL_READS_BEFORE_SHRINKING: u8 = 16;

/// Serves one connection's messages until the peer closes, idles out for
/// `idle_timeout`, or sends something that is no DNS message. A message,
/// once begun, must be whole within `idle_timeout`.
pub fn serve(connection: Connection, handler: &Handler, idle_timeout: Duration) -> Served {
    let peer = connection.peer();
    let (socket, activity) = connection.into_socket();
    let mut stream = &*socket;
    let mut input = Vec::new();
    let mut replies = Vec::new();
    let mut reply = Vec::new();
    let mut requests = 0;
    // When the unfinished message in `input` began, and the read timeout
    // set for it.
    let mut begun: Option<Instant> = None;
    let mut timeout = idle_timeout;
    let mut large_lately = 0u8;
    let end = loop {
        let mut used = 0;
        let mut short = false;
        while let Some((message, rest)) = next_message(input.get(used..).unwrap_or_default()) {
            used = input.len() - rest.len();
            requests += 1;
            if message.len() < HEADER {
                short = true;
                break;
            }
            if let Some(handled) = handler.handle(message, Transport::Tcp, &mut reply) {
                // A reply is at most 65,535 bytes: the encoder's limit.
                replies.extend_from_slice(&(reply.len() as u16).to_be_bytes());
                replies.extend_from_slice(&reply);
                handled.log(Transport::Tcp, peer);
            }
        }
        input.drain(..used);
        if !replies.is_empty() {
            if let Err(err) = stream.write_all(&replies) {
                break End::WriteFailed(err);
            }
            replies.clear();
        }
        if short {
            break End::ShortMessage;
        }
        let wanted = if input.is_empty() {
            begun = None;
            if let Some(activity) = &activity {
                activity.waiting();
            }
            idle_timeout
        } else {
            let since = *begun.get_or_insert_with(Instant::now);
            idle_timeout.saturating_sub(since.elapsed())
        };
        if wanted.is_zero() {
            break End::ReadFailed(std::io::ErrorKind::TimedOut.into());
        }
        if wanted != timeout {
            if let Err(err) = socket.set_read_timeout(Some(wanted)) {
                break End::ReadFailed(err);
            }
            timeout = wanted;
        }
        let filled = input.len();
        let chunk = if filled == 0 && large_lately == 0 {
            input.shrink_to(IDLE_READ);
            replies.shrink_to(IDLE_READ);
            IDLE_READ
        } else {
            READ_AT_LEAST.max(needed(&input))
        };
        input.resize(filled + chunk, 0);
        match stream.read(input.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break End::Closed,
            Ok(read) => {
                input.truncate(filled + read);
                large_lately = if read >= IDLE_READ {
                    SMALL_READS_BEFORE_SHRINKING
                } else {
                    large_lately.saturating_sub(1)
                };
                if let Some(activity) = &activity {
                    activity.working();
                }
            }
            Err(err) => break End::ReadFailed(err),
        }
    };
    let _ = socket.shutdown(std::net::Shutdown::Both);
    Served { requests, end }
}

/// The first whole message in `input` and what follows it; `None` until
/// one has fully arrived.
fn next_message(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (length, rest) = input.split_first_chunk::<2>()?;
    let length = usize::from(u16::from_be_bytes(*length));
    (rest.len() >= length).then(|| rest.split_at(length))
}

/// How many more bytes the unfinished message in `input` needs.
fn needed(input: &[u8]) -> usize {
    match input.split_first_chunk::<2>() {
        Some((length, rest)) => usize::from(u16::from_be_bytes(*length)).saturating_sub(rest.len()),
        None => 2 - input.len().min(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_at_their_length() {
        assert_eq!(next_message(&[0]), None);
        assert_eq!(next_message(&[0, 3, 1, 2]), None);
        assert_eq!(
            next_message(&[0, 2, 1, 2, 0]),
            Some((&[1u8, 2][..], &[0u8][..]))
        );
        assert_eq!(next_message(&[0, 0]), Some((&[][..], &[][..])));
        assert_eq!(needed(&[0, 3, 1]), 2);
        assert_eq!(needed(&[]), 2);
    }
}

//! Flow control: at most `--window` queries in flight, and the one way to
//! the AS, through which every burst is sent in the order its slots were
//! taken.

use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::batch::Sent;
use crate::connection::Writer;
use crate::sync::unpoisoned;

/// Counts queries in flight, so at most `--window` are, and sends each burst
/// to the AS as soon as the window has room for it. Slots are taken and
/// given back in batches, so stages meet on this lock once per burst rather
/// than once per query.
///
/// The sender reads and signs a burst ahead; when there is no room for it
/// yet, it leaves the burst here, and the stage whose results free the room
/// sends it on the spot, without waiting on the socket. Waking the sender
/// for that instead would add a wake-up to every round trip.
pub(super) struct Window {
    pub(super) size: usize,
    pub(super) slots: Mutex<Slots>,
    /// Tells the sender its parked burst went out.
    pub(super) launched: Condvar,
    /// The way to the AS. Taken only while holding `slots`, by whoever took
    /// the slots of the burst it sends, so bursts go out in the order their
    /// slots were taken.
    pub(super) to_as: Mutex<ToAs>,
}

/// A parked burst whose room has come, with the way to the AS taken for
/// it: what [`Window::give_back`] hands the stage that made the room.
pub(super) struct Launch<'w> {
    burst: SignedBurst,
    to_as: MutexGuard<'w, ToAs>,
    /// The parked sender's wake-up, once its burst is on its way.
    launched: &'w Condvar,
}

impl Launch<'_> {
    /// Sends the parked burst to the AS without waiting on the socket (the
    /// AS may be waiting on this very stage to read its answers), then
    /// wakes the sender, which writes whatever the socket could not take.
    pub(super) fn send_parked_burst(self) {
        let Launch {
            burst,
            mut to_as,
            launched,
        } = self;
        to_as.send(burst, Sending::WithoutWaiting);
        drop(to_as);
        launched.notify_one();
    }
}

pub(super) struct Slots {
    pub(super) free: usize,
    /// A burst read and signed, waiting for room.
    pub(super) parked: Option<SignedBurst>,
}

/// A burst of queries, read and signed, with its requests to the AS.
#[derive(Default)]
pub(super) struct SignedBurst {
    pub(super) sent: Sent,
    pub(super) requests: Vec<u8>,
}

/// The write half of the AS connection, and the router's queue: a burst's
/// queries go to the router before its requests go to the AS.
pub(super) struct ToAs {
    /// `None` once the AS connection broke (the router reports why).
    pub(super) writer: Option<Writer>,
    /// `None` once every burst is sent, which ends the router's queue.
    pub(super) to_router: Option<Sender<Sent>>,
    /// Bursts handed to the router so far: while it has received as many,
    /// nothing is on its way to the AS.
    pub(super) bursts_sent: u64,
}

/// Whether a thread sending a burst may wait on the AS socket.
#[derive(Clone, Copy)]
pub(super) enum Sending {
    /// The sender: it waits for nothing else.
    MayWait,
    /// Any other stage: the AS may be waiting on it to read its replies.
    WithoutWaiting,
}

impl ToAs {
    pub(super) fn send(&mut self, mut burst: SignedBurst, sending: Sending) {
        // The router runs until the last burst is sent (`Window::end_input`);
        // were it gone, the collector would report these queries as lost.
        burst.sent.written_at = Some(Instant::now());
        if let Some(to_router) = &self.to_router {
            let _ = to_router.send(burst.sent);
            self.bursts_sent += 1;
        }
        let Some(writer) = &mut self.writer else {
            // The router fails every query it is handed.
            return;
        };
        let queue = writer.queue();
        if queue.is_empty() {
            std::mem::swap(queue, &mut burst.requests);
        } else {
            queue.extend_from_slice(&burst.requests);
        }
        self.write(sending);
    }

    /// Writes what a stage that could not wait left unsent.
    pub(super) fn flush(&mut self) {
        self.write(Sending::MayWait);
    }

    /// Writes what is queued for the AS, all of it or what the socket takes
    /// at once.
    pub(super) fn write(&mut self, sending: Sending) {
        let Some(writer) = &mut self.writer else {
            return;
        };
        let written = match sending {
            Sending::MayWait => writer.flush(),
            Sending::WithoutWaiting => writer.send_without_waiting(),
        };
        if written.is_err() {
            // The router sees the broken connection and fails every query
            // still queued for the AS.
            writer.close();
            self.writer = None;
        }
    }
}

impl Window {
    pub(super) fn new(size: usize, to_as: ToAs) -> Window {
        Window {
            size,
            slots: Mutex::new(Slots {
                free: size,
                parked: None,
            }),
            launched: Condvar::new(),
            to_as: Mutex::new(to_as),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Slots> {
        unpoisoned(self.slots.lock())
    }

    pub(super) fn lock_to_as(&self) -> MutexGuard<'_, ToAs> {
        unpoisoned(self.to_as.lock())
    }

    /// Sends `burst` to the AS once the window has room for it (it must
    /// fit in the window): now, or, parked, by the stage that frees the
    /// room. Returns once it is sent.
    pub(super) fn send(&self, burst: SignedBurst) {
        let wanted = burst.sent.len();
        if wanted == 0 {
            return;
        }
        let mut slots = self.lock();
        if slots.free >= wanted {
            slots.free -= wanted;
            let mut to_as = self.lock_to_as();
            drop(slots);
            return to_as.send(burst, Sending::MayWait);
        }
        slots.parked = Some(burst);
        while slots.parked.is_some() {
            slots = unpoisoned(self.launched.wait(slots));
        }
        drop(slots);
        // The AS needs all of it to answer, and answers are what free the
        // room for the next burst.
        self.lock_to_as().flush();
    }

    /// Gives `returned` slots back. When that makes room for the parked
    /// burst, its slots are taken at once and the burst is handed back to
    /// be sent by the caller, [`Launch::send_parked_burst`]: the room
    /// was made by the caller's results, so the caller sends it on.
    pub(super) fn give_back(&self, returned: usize) -> Option<Launch<'_>> {
        if returned == 0 {
            return None;
        }
        let mut slots = self.lock();
        slots.free += returned;
        let wanted = slots.parked.as_ref().map(|burst| burst.sent.len())?;
        if slots.free < wanted {
            return None;
        }
        slots.free -= wanted;
        let burst = slots.parked.take()?;
        // Taken before the slots are let go, so bursts reach the AS in the
        // order their slots were taken.
        let to_as = self.lock_to_as();
        drop(slots);
        Some(Launch {
            burst,
            to_as,
            launched: &self.launched,
        })
    }

    /// Writes anything left unsent and says nothing more is coming: the AS
    /// answers what it has, then closes, the router's cue that it is done.
    pub(super) fn end_input(&self) {
        let mut to_as = self.lock_to_as();
        to_as.flush();
        if let Some(writer) = &to_as.writer {
            writer.half_close();
        }
        to_as.to_router = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::Waiting;
    use super::*;
    use crate::connection::Socket;
    use crate::connection::testing::{loopback_pair, more_than_a_socket_holds, returns_promptly};
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::mpsc;

    fn burst(first_index: usize, queries: usize, requests: Vec<u8>) -> SignedBurst {
        let mut sent = Sent::default();
        for index in first_index..first_index + queries {
            sent.push(Waiting {
                index,
                hostname: "host.example",
                key: "",
            });
        }
        SignedBurst { sent, requests }
    }

    // The stage that frees room for a parked burst sends it then and
    // there, but never waits on the AS to do it: the AS may be waiting on
    // that very stage. What the socket cannot take, the sender writes; the
    // AS gets every burst whole and in order, and the router gets every
    // burst's queries before its requests.
    #[test]
    fn a_parked_burst_goes_out_without_the_freeing_stage_waiting_on_the_as() {
        let (near, far) = loopback_pair();
        let (to_router, routed) = mpsc::channel();
        let to_as = ToAs {
            writer: Some(Writer::new(Socket::new(near))),
            to_router: Some(to_router),
            bursts_sent: 0,
        };
        let window = Arc::new(Window::new(2, to_as));
        let (first, second) = (b"first\n".to_vec(), more_than_a_socket_holds(3));
        window.send(burst(0, 1, first.clone()));
        let sender = {
            let window = Arc::clone(&window);
            let second = second.clone();
            // Needs both slots, one of which the first burst holds: parked.
            std::thread::spawn(move || window.send(burst(1, 2, second)))
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while window.lock().parked.is_none() {
            assert!(
                Instant::now() < deadline,
                "the second burst was never parked"
            );
            std::thread::yield_now();
        }
        let freeing = Arc::clone(&window);
        assert!(
            returns_promptly(move || {
                if let Some(launch) = freeing.give_back(1) {
                    launch.send_parked_burst();
                }
            }),
            "the stage that freed the room waited on an AS that reads nothing"
        );
        let reading = std::thread::spawn(move || {
            let mut received = Vec::new();
            (&far).read_to_end(&mut received).map(|_| received)
        });
        sender.join().unwrap();
        window.end_input();
        let received = reading.join().unwrap().unwrap();
        assert!(
            received == [first, second].concat(),
            "bytes lost or out of order"
        );
        let indices: Vec<Vec<usize>> = routed
            .try_iter()
            .map(|sent: Sent| sent.iter().map(|query| query.index).collect())
            .collect();
        assert_eq!(indices, [vec![0], vec![1, 2]]);
    }
}

//! The echo of the client's results on stdout: a mirror that the output
//! file never depends on.
//!
//! Lines are handed to a thread of their own, so a reader of stdout that
//! pauses (`client --window 1 | less`) does not stall the queries: up to
//! [`MAX_HELD`] bytes wait for it, and only past that does the client wait
//! too. If stdout fails (`client | head -1`, a full disk), the echo stops,
//! says so once, and the run goes on to the output file.
//!
//! The echo thread takes lines in batches: after each write it lingers
//! ([`LINGER`]) while lines collect, and only a thread with nothing to
//! write is woken by a new line. So at `--window 1`, where every query
//! hands over one line, a query wakes no other thread; stdout lags by at
//! most the linger.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::sync::unpoisoned;

/// Most bytes of results held for a stdout that is not keeping up.
pub const MAX_HELD: usize = 16 * 1024 * 1024;

/// How long the echo thread lets lines collect after a write.
pub const LINGER: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Queue {
    batches: VecDeque<Vec<u8>>,
    bytes: usize,
    /// No more batches will come.
    closed: bool,
    /// Writing failed: batches are dropped from now on.
    failed: bool,
    /// The writer waits with nothing to write: a new batch must wake it.
    idle: bool,
    /// Writes made so far, each of every batch then queued.
    writes: usize,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a batch arrives, when space frees, or on close.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        unpoisoned(self.queue.lock())
    }

    fn wait<'q>(&self, queue: MutexGuard<'q, Queue>) -> MutexGuard<'q, Queue> {
        unpoisoned(self.changed.wait(queue))
    }
}

/// Result lines on their way to a writer (stdout) on a thread of its own.
pub struct Echo {
    shared: Arc<Shared>,
    pending: Vec<u8>,
    writer: Option<JoinHandle<()>>,
}

impl Echo {
    /// Starts echoing to `out`; `on_failure` is told, once, why writing to
    /// it stopped.
    pub fn start(
        out: impl Write + Send + 'static,
        on_failure: impl FnOnce(io::Error) + Send + 'static,
    ) -> io::Result<Echo> {
        let shared = Arc::new(Shared::default());
        let writer = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("client echo".to_owned())
                .spawn(move || write_batches(&shared, out, on_failure))?
        };
        Ok(Echo {
            shared,
            pending: Vec::new(),
            writer: Some(writer),
        })
    }

    pub fn line(&mut self, line: &str) {
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
    }

    /// Hands the lines so far to the writer, waiting only while more than
    /// `MAX_HELD` (16 MiB) are already held for it.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut queue = self.shared.lock();
        while queue.bytes > MAX_HELD && !queue.failed {
            queue = self.shared.wait(queue);
        }
        if queue.failed {
            self.pending.clear();
            return;
        }
        queue.bytes += self.pending.len();
        queue.batches.push_back(std::mem::take(&mut self.pending));
        if queue.idle {
            self.shared.changed.notify_all();
        }
    }

    /// Hands over the last lines and waits until the writer is done with
    /// every one (as any program's last write to stdout would). Dropping
    /// the echo does the same.
    pub fn close(mut self) {
        self.hand_over_last();
    }

    fn hand_over_last(&mut self) {
        self.flush();
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.hand_over_last();
    }
}

fn write_batches(shared: &Shared, mut out: impl Write, on_failure: impl FnOnce(io::Error)) {
    let mut on_failure = Some(on_failure);
    loop {
        let mut queue = shared.lock();
        while queue.batches.is_empty() && !queue.closed {
            queue.idle = true;
            queue = shared.wait(queue);
        }
        queue.idle = false;
        if queue.batches.is_empty() {
            return;
        }
        let batches: Vec<Vec<u8>> = queue.batches.drain(..).collect();
        drop(queue);
        let mut written = Ok(());
        for batch in &batches {
            written = written.and_then(|()| out.write_all(batch));
        }
        let written = written.and_then(|()| out.flush());
        let mut queue = shared.lock();
        queue.bytes -= batches.iter().map(Vec::len).sum::<usize>();
        queue.writes += 1;
        if let Err(err) = written {
            queue.failed = true;
            queue.batches.clear();
            queue.bytes = 0;
            if let Some(report) = on_failure.take() {
                report(err);
            }
        }
        // Room freed for a flush held back by MAX_HELD.
        shared.changed.notify_all();
        if !queue.closed {
            // Let lines collect; only closing wakes this wait early.
            drop(unpoisoned(shared.changed.wait_timeout(queue, LINGER)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A writer that fails after `good` writes.
    struct Failing {
        good: usize,
        seen: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.good == 0 {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            self.good -= 1;
            self.seen.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn echoes_every_line_in_order_then_stops_quietly_on_failure() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (told_tx, told) = mpsc::channel();
        let mut echo = Echo::start(
            Failing {
                good: 2,
                seen: Arc::clone(&seen),
            },
            move |err| told_tx.send(err.kind()).unwrap(),
        )
        .unwrap();
        for batch in 0..5 {
            echo.line(&format!("line {batch}"));
            echo.flush();
            // Each batch is written before the next is handed over.
            let started = std::time::Instant::now();
            while !echo.shared.lock().batches.is_empty() {
                assert!(started.elapsed().as_secs() < 10, "the writer is stuck");
                thread::yield_now();
            }
        }
        echo.close();
        assert_eq!(&*seen.lock().unwrap(), b"line 0\nline 1\n");
        assert_eq!(
            told.try_iter().collect::<Vec<_>>(),
            [io::ErrorKind::BrokenPipe]
        );
    }

    // One line handed over at a time, as at --window 1: the echo writes
    // them in far fewer writes than lines, every line in order.
    #[test]
    fn lines_handed_over_one_at_a_time_are_written_in_batches() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut echo = Echo::start(
            Failing {
                good: usize::MAX,
                seen: Arc::clone(&seen),
            },
            |_| {},
        )
        .unwrap();
        let lines = 20_000;
        for i in 0..lines {
            echo.line(&format!("result {i}"));
            echo.flush();
        }
        let shared = Arc::clone(&echo.shared);
        echo.close();
        let writes = shared.lock().writes;
        assert!(writes * 10 < lines, "{writes} writes for {lines} lines");
        let expected: String = (0..lines).map(|i| format!("result {i}\n")).collect();
        assert_eq!(
            String::from_utf8(seen.lock().unwrap().clone()).unwrap(),
            expected
        );
    }
}

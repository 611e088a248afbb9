//! The echo of the client's results on stdout: a mirror that the output
//! file never depends on.
//!
//! Lines are handed to a thread of their own, so a reader of stdout that
//! pauses (`client --window 1 | less`) does not stall the queries: up to
//! [`MAX_HELD`] bytes wait for it, and only past that does the client wait
//! too. If stdout fails (`client | head -1`, a full disk), the echo stops,
//! says so once, and the run goes on to the output file.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

use crate::sync::unpoisoned;

/// Most bytes of results held for a stdout that is not keeping up.
pub const MAX_HELD: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Queue {
    batches: VecDeque<Vec<u8>>,
    bytes: usize,
    /// No more batches will come.
    closed: bool,
    /// Writing failed: batches are dropped from now on.
    failed: bool,
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
        self.shared.changed.notify_all();
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
            queue = shared.wait(queue);
        }
        let Some(batch) = queue.batches.pop_front() else {
            return;
        };
        drop(queue);
        let written = out.write_all(&batch).and_then(|()| out.flush());
        let mut queue = shared.lock();
        queue.bytes -= batch.len();
        if let Err(err) = written {
            queue.failed = true;
            queue.batches.clear();
            queue.bytes = 0;
            if let Some(report) = on_failure.take() {
                report(err);
            }
        }
        shared.changed.notify_all();
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
}

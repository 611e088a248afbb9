//! Locks that outlive a panic. What the crate's mutexes, read-write locks
//! and condition variables guard is plain bookkeeping (counters, queues,
//! the current table), still consistent if a thread panicked while holding
//! it, so a poisoned lock is used as it is rather than spreading the panic
//! to every thread that touches it next.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// What a lock or a wait returned, poisoned or not.
pub(crate) fn unpoisoned<G>(locked: Result<G, PoisonError<G>>) -> G {
    locked.unwrap_or_else(PoisonError::into_inner)
}

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    unpoisoned(mutex.lock())
}

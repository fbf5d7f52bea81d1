//! Counting Converse calls the client gave up on: a call whose answer was dropped before it was
//! complete (the caller closed the connection), served at `GET /_sim/cancelled`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks one call; dropped before [`Completion::finish`], it counts as cancelled.
pub(crate) struct Completion {
    cancelled: Arc<AtomicU64>,
    finished: bool,
}

impl Completion {
    /// A call counted in `cancelled` unless it finishes.
    pub(crate) fn new(cancelled: &Arc<AtomicU64>) -> Self {
        Completion { cancelled: Arc::clone(cancelled), finished: false }
    }

    /// The call was answered completely (or ended by an injected fault).
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.finished {
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unfinished_calls_count() {
        let count = Arc::new(AtomicU64::new(0));
        Completion::new(&count).finish();
        drop(Completion::new(&count));
        assert_eq!(count.load(Ordering::Relaxed), 1);
    }
}

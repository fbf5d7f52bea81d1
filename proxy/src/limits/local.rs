//! Counters in this process: each replica limits on its own.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Bucket, Counts, Verdict, Window, decide};

/// Per-bucket counters of the current windows; a counter of an older window reads as zero.
#[derive(Debug, Default)]
pub struct Counters {
    // Never held across an await: every operation is a few map lookups.
    inner: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    minute: u64,
    day: u64,
    counts: Counts,
}

impl Slot {
    /// Rolls the counters over to `window`.
    fn current(&mut self, window: Window) -> &mut Counts {
        if self.minute != window.minute {
            self.minute = window.minute;
            self.counts.requests = 0;
            self.counts.tokens = 0;
        }
        if self.day != window.day {
            self.day = window.day;
            self.counts.spent_nanos = 0;
        }
        &mut self.counts
    }
}

impl Counters {
    /// Checks every bucket and counts the request in each if all admit it.
    pub fn admit(&self, buckets: &[Bucket], window: Window) -> Verdict {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let before: Vec<Counts> =
            buckets.iter().map(|b| *map.entry(b.key.clone()).or_default().current(window)).collect();
        if let Some((index, limit)) = decide(buckets, &before) {
            return Verdict::Refused { index, limit, counts: before[index] };
        }
        let after = buckets
            .iter()
            .map(|b| {
                let counts = map.get_mut(&b.key).expect("inserted above").current(window);
                counts.requests += 1;
                *counts
            })
            .collect();
        Verdict::Admitted(after)
    }

    /// Adds tokens and spend to every bucket.
    pub fn add(&self, buckets: &[Bucket], window: Window, tokens: u64, nanos: u64) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for b in buckets {
            let counts = map.entry(b.key.clone()).or_default().current(window);
            // A request that started in the previous minute counts in the current one.
            counts.tokens = counts.tokens.saturating_add(tokens);
            counts.spent_nanos = counts.spent_nanos.saturating_add(nanos);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::Exceeded;
    use super::*;

    #[test]
    fn counts_roll_over_with_the_window() {
        let c = Counters::default();
        let b = [Bucket {
            key: "p|u".into(),
            policy: "ns/p".into(),
            requests_per_minute: Some(2),
            tokens_per_minute: Some(10),
            budget_nanos_per_day: Some(100),
        }];
        let w0 = Window::at(UNIX_EPOCH + Duration::from_secs(600));
        assert!(matches!(c.admit(&b, w0), Verdict::Admitted(ref v) if v[0].requests == 1));
        assert!(matches!(c.admit(&b, w0), Verdict::Admitted(ref v) if v[0].requests == 2));
        assert!(matches!(c.admit(&b, w0), Verdict::Refused { limit: Exceeded::Requests, .. }));
        let w1 = Window::at(UNIX_EPOCH + Duration::from_secs(660));
        assert!(matches!(c.admit(&b, w1), Verdict::Admitted(ref v) if v[0].requests == 1));
        c.add(&b, w1, 10, 1);
        assert!(matches!(c.admit(&b, w1), Verdict::Refused { limit: Exceeded::Tokens, .. }));
        let w2 = Window::at(UNIX_EPOCH + Duration::from_secs(720));
        c.add(&b, w2, 0, 99);
        assert!(
            matches!(c.admit(&b, w2), Verdict::Refused { limit: Exceeded::Budget, counts, .. } if counts.spent_nanos == 100)
        );
        let next_day = Window::at(UNIX_EPOCH + Duration::from_secs(86_400 + 10));
        assert!(matches!(c.admit(&b, next_day), Verdict::Admitted(_)));
    }
}

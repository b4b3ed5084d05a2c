//! A sliding spam ratio: messages blocked over messages decided in the last `n` buckets
//! of event time.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Messages decided (allowed, labelled or blocked) and, of them, blocked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Messages decided.
    pub decided: u32,
    /// Messages blocked.
    pub blocked: u32,
}

impl Counts {
    fn remove(&mut self, gone: Counts) {
        self.decided -= gone.decided;
        self.blocked -= gone.blocked;
    }

    fn count(&mut self, blocked: bool) {
        self.decided = self.decided.saturating_add(1);
        if blocked {
            self.blocked = self.blocked.saturating_add(1);
        }
    }
}

/// A ratio's buckets: inside the key's entry up to the default ring of 10 buckets (and
/// a little more), so that reading a key's ratio is one place in memory.
type Ring = SmallVec<[Counts; 12]>;

/// The counts of a window of buckets, with their running total. Bucket `b` is kept in
/// slot `b % buckets` of the ring; the window at bucket `b` holds buckets
/// `b - buckets + 1 ..= b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ratio {
    /// Newest bucket counted.
    head: u32,
    ring: Ring,
    totals: Counts,
}

impl Ratio {
    /// An empty ratio of `buckets` buckets whose newest bucket is `head`.
    pub fn new(buckets: u32, head: u32) -> Self {
        Ratio {
            head,
            ring: SmallVec::from_elem(Counts::default(), buckets.max(1) as usize),
            totals: Counts::default(),
        }
    }

    /// The ring slots, in a ring of `n`, of the buckets that leave the window when the
    /// newest bucket moves from `head` to `b` (those after the head, at most one lap).
    fn leaving(head: u32, n: usize, b: u32) -> impl Iterator<Item = usize> {
        let n = n as u32;
        (1..=b.saturating_sub(head).min(n)).map(move |k| ((head + k) % n) as usize)
    }

    /// Counts one decided message in bucket `b` (in the newest bucket when `b` is older).
    pub fn count(&mut self, b: u32, blocked: bool) {
        if b > self.head {
            for i in Self::leaving(self.head, self.ring.len(), b) {
                self.totals.remove(self.ring[i]);
                self.ring[i] = Counts::default();
            }
            self.head = b;
        }
        let slot = self.head as usize % self.ring.len();
        self.ring[slot].count(blocked);
        self.totals.count(blocked);
    }

    /// The counts in the window at bucket `b` (for `b` before the head: the window at the
    /// head).
    pub fn totals_at(&self, b: u32) -> Counts {
        if b.saturating_sub(self.head) >= self.ring.len() as u32 {
            // The whole window has left.
            return Counts::default();
        }
        let mut t = self.totals;
        for i in Self::leaving(self.head, self.ring.len(), b) {
            t.remove(self.ring[i]);
        }
        t
    }

    /// The spam ratio at bucket `b`, when at least `min` messages were decided.
    pub fn value_at(&self, b: u32, min: u32) -> Option<f64> {
        let t = self.totals_at(b);
        (t.decided >= min.max(1)).then(|| f64::from(t.blocked) / f64::from(t.decided))
    }

    /// The newest bucket and the ring, oldest slot first by slot number (the changelog's
    /// form).
    pub fn parts(&self) -> (u32, &[Counts]) {
        (self.head, &self.ring)
    }

    /// The ratio of [`Ratio::parts`]; `buckets` is the configured ring length. Refuses a
    /// ring of another length (the configuration changed) and counts whose total
    /// overflows.
    pub fn from_parts(buckets: u32, head: u32, ring: Vec<Counts>) -> Result<Ratio, String> {
        if ring.len() != buckets.max(1) as usize {
            return Err(format!(
                "{} buckets, the configuration has {buckets} (configuration changed)",
                ring.len()
            ));
        }
        let mut totals = Counts::default();
        for c in &ring {
            totals.decided = totals
                .decided
                .checked_add(c.decided)
                .ok_or("bucket counts overflow")?;
            totals.blocked = totals
                .blocked
                .checked_add(c.blocked)
                .ok_or("bucket counts overflow")?;
        }
        Ok(Ratio {
            head,
            ring: SmallVec::from_vec(ring),
            totals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The ring against a list of every message counted: the window at bucket `b`
        /// holds buckets `b - n + 1 ..= b`.
        #[test]
        fn the_ratio_ring_counts_the_window(
            n in 1u32..13,
            start in 0u32..100_000,
            msgs in proptest::collection::vec((0u32..30, any::<bool>(), 0u32..30), 1..60),
        ) {
            let mut r = Ratio::new(n, start);
            let mut kept: Vec<(u32, bool)> = Vec::new();
            let mut b = start;
            for (step, blocked, ahead) in msgs {
                b += step;
                r.count(b, blocked);
                kept.push((b, blocked));
                let at = b + ahead;
                let in_window = |at: u32| {
                    let inside = kept.iter().filter(|(k, _)| k + n > at);
                    Counts {
                        blocked: inside.clone().filter(|(_, x)| *x).count() as u32,
                        decided: inside.count() as u32,
                    }
                };
                prop_assert_eq!(r.totals, in_window(b));
                prop_assert_eq!(r.totals_at(at), in_window(at));
            }
        }
    }

    #[test]
    fn ratio_slides_by_bucket() {
        let mut r = Ratio::new(10, 100);
        for i in 0..10 {
            r.count(100, i < 3);
        }
        assert_eq!(r.value_at(100, 1), Some(0.3));
        assert_eq!(r.value_at(100, 11), None);
        r.count(109, false);
        assert_eq!(
            r.totals_at(109),
            Counts {
                decided: 11,
                blocked: 3
            }
        );
        assert_eq!(
            r.totals_at(110),
            Counts {
                decided: 1,
                blocked: 0
            }
        );
        let (head, ring) = r.parts();
        let back = Ratio::from_parts(10, head, ring.to_vec()).unwrap();
        assert_eq!(back, r);
        assert!(Ratio::from_parts(12, head, ring.to_vec())
            .unwrap_err()
            .contains("configuration"));
        // Counts that do not add up are refused, never wrapped or a panic.
        let garbage = vec![
            Counts {
                decided: u32::MAX,
                blocked: 0,
            },
            Counts {
                decided: 1,
                blocked: 0,
            },
        ];
        assert!(Ratio::from_parts(2, 5, garbage)
            .unwrap_err()
            .contains("overflow"));
    }
}

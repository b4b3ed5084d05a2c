//! The event-time clock of one partition, shared by the stateful operators.
//!
//! Stateful operators never read the wall clock: their clock is the partition's event-time
//! watermark, the largest `submitted_at` seen in the partition so far (in offset order).
//! The same input in the same partition order therefore gives the same state and the same
//! verdicts at any replay speed, after a restart from the changelog, and in `backtest`.
//!
//! Two guards keep one bad timestamp from moving the clock:
//! - an event more than `max_future_ms` ahead of the watermark is **future**: it is taken
//!   to happen at `watermark + max_future_ms` (the watermark advances by at most that
//!   step per event, so a real jump in time is followed within a few events);
//! - an event more than `horizon_ms` behind the watermark is **stale**: older than
//!   anything the operator still keeps state for. The operator does not apply it to its
//!   state (and says so in a counter); the event still gets its verdict from every other
//!   operator.
//!
//! The watermark is part of the operator's changelog state, so a restored partition
//! continues with the same clock.

/// What the clock made of one event's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The time to use, in ms since the epoch (clamped when the event was in the future).
    At {
        /// Effective event time.
        time_ms: i64,
        /// Whether the event's own time was more than `max_future_ms` ahead.
        future: bool,
    },
    /// More than the horizon behind the watermark: not applied to state.
    Stale,
}

/// Event-time watermark of one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionClock {
    watermark_ms: Option<i64>,
}

impl PartitionClock {
    /// A clock restored at `watermark_ms`.
    pub fn at(watermark_ms: i64) -> Self {
        PartitionClock {
            watermark_ms: Some(watermark_ms),
        }
    }

    /// The watermark, if any event was seen.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.watermark_ms
    }

    /// Takes one event's time; advances the watermark.
    pub fn observe(&mut self, event_ms: i64, max_future_ms: i64, horizon_ms: i64) -> Observed {
        let Some(wm) = self.watermark_ms else {
            self.watermark_ms = Some(event_ms);
            return Observed::At {
                time_ms: event_ms,
                future: false,
            };
        };
        if event_ms < wm.saturating_sub(horizon_ms) {
            return Observed::Stale;
        }
        let limit = wm.saturating_add(max_future_ms);
        let (time_ms, future) = if event_ms > limit {
            (limit, true)
        } else {
            (event_ms, false)
        };
        self.watermark_ms = Some(wm.max(time_ms));
        Observed::At { time_ms, future }
    }
}

/// Changelog key of a partition clock (under the operator's prefix).
pub const CLOCK_KEY: u8 = b'w';

impl PartitionClock {
    /// Appends the clock's changelog record when `dirty` (and clears it).
    pub fn snapshot(&self, dirty: &mut bool, out: &mut Vec<crate::StateUpdate>) {
        if std::mem::take(dirty) {
            if let Some(wm) = self.watermark_ms {
                out.push(crate::StateUpdate {
                    key: vec![CLOCK_KEY],
                    value: Some(wm.to_le_bytes().to_vec()),
                });
            }
        }
    }

    /// Reads a clock's changelog value.
    pub fn decode(value: Option<&[u8]>) -> Result<PartitionClock, String> {
        value
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .map(|v| PartitionClock::at(i64::from_le_bytes(v)))
            .ok_or_else(|| "clock value is not 8 bytes".into())
    }
}

/// Event time in whole seconds for compact per-key state (u32 seconds last until 2106;
/// times before 1970 count as 0).
pub fn secs(ms: i64) -> u32 {
    (ms.div_euclid(1000)).clamp(0, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_event_sets_the_clock_and_later_ones_advance_it() {
        let mut c = PartitionClock::default();
        assert_eq!(
            c.observe(10_000, 1_000, 60_000),
            Observed::At {
                time_ms: 10_000,
                future: false
            }
        );
        c.observe(12_000, 5_000, 60_000);
        assert_eq!(c.watermark_ms(), Some(12_000));
        // Out of order within the horizon: used as is, watermark unchanged.
        assert_eq!(
            c.observe(11_000, 5_000, 60_000),
            Observed::At {
                time_ms: 11_000,
                future: false
            }
        );
        assert_eq!(c.watermark_ms(), Some(12_000));
    }

    #[test]
    fn future_events_move_the_clock_one_step_at_a_time() {
        let mut c = PartitionClock::at(0);
        let year = 365 * 86_400_000;
        assert_eq!(
            c.observe(year, 300_000, 86_400_000),
            Observed::At {
                time_ms: 300_000,
                future: true
            }
        );
        assert_eq!(c.watermark_ms(), Some(300_000));
    }

    #[test]
    fn events_beyond_the_horizon_are_stale() {
        let mut c = PartitionClock::at(100_000_000);
        assert_eq!(c.observe(1, 1_000, 86_400_000), Observed::Stale);
        assert_eq!(c.watermark_ms(), Some(100_000_000));
        assert_eq!(secs(-5), 0);
        assert_eq!(secs(1_999), 1);
    }
}

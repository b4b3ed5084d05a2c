//! Campaign detection: one masked text from many senders in a short time.
//!
//! Per partition, a table from content fingerprint to the distinct senders that sent it
//! (with when each last did), evaluated at the partition's event-time watermark. Only
//! texts with a call to action (URL, phone number) and enough letters are tracked, which
//! keeps person-to-person chat (mostly unique, and when not, short: "ㅇㅋ", "네") out of
//! the table; the table is also bounded (`max_fingerprints`): when full, fingerprints
//! whose window has passed are swept, and when still full, new fingerprints are not
//! tracked until the clock has moved on (counted, never a crash).
//!
//! **Partition-local counting.** Input is keyed by sender, so a campaign sent by S
//! senders shows about S / P of them in each of P partitions (binomially spread). The
//! threshold `min_senders` is per partition: for a campaign of S senders to be caught in
//! a typical partition, set it to about S / P (docs/velocity.md has the table).

use std::collections::HashMap;

use foldhash::fast::FixedState;

/// Version byte of changelog values: postcard of the (sender key, last seen) pairs follows.
const VERSION: u8 = 2;
/// Version byte of the fixed-width values of earlier releases (a count, then pairs of
/// little-endian `u32`), still read.
const FIXED_WIDTH_VERSION: u8 = 1;

/// One fingerprint's distinct senders: (sender key, last seen s), at most `min_senders`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Campaign {
    senders: Vec<(u32, u32)>,
    /// Changed since the last snapshot.
    pub dirty: bool,
}

impl Campaign {
    /// The changelog value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        // Serializing integers into a Vec cannot fail.
        if let Ok(bytes) = postcard::to_extend(&self.senders, std::mem::take(out)) {
            *out = bytes;
        }
    }

    /// Reads [`Campaign::encode`]'s output (or an earlier release's).
    pub fn decode(b: &[u8]) -> Result<Campaign, String> {
        let senders = match b {
            [VERSION, rest @ ..] => {
                let (senders, left): (Vec<(u32, u32)>, &[u8]) =
                    postcard::take_from_bytes(rest).map_err(|e| format!("campaign state: {e}"))?;
                if !left.is_empty() {
                    return Err(format!("{} trailing bytes", left.len()));
                }
                senders
            }
            [FIXED_WIDTH_VERSION, n, rest @ ..] if rest.len() == usize::from(*n) * 8 => rest
                .chunks_exact(8)
                .map(|c| {
                    (
                        u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                        u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                    )
                })
                .collect(),
            [FIXED_WIDTH_VERSION, ..] => return Err("campaign value has the wrong length".into()),
            _ => return Err("unknown campaign state version".into()),
        };
        Ok(Campaign {
            senders,
            dirty: false,
        })
    }
}

/// What tracking one message found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Distinct senders of this fingerprint within the window (saturates at the threshold).
    Senders(u32),
    /// The table is full: not tracked.
    TableFull,
}

/// One partition's campaign table.
#[derive(Debug, Default)]
pub struct CampaignTable {
    /// Fingerprint -> senders.
    pub map: HashMap<u64, Campaign, FixedState>,
    /// Fingerprints changed or removed since the last snapshot (may repeat).
    pub dirty: Vec<u64>,
    /// No sweep before this time after one that freed nothing.
    sweep_blocked_until: u32,
}

fn within(last: u32, now: u32, window: u32) -> bool {
    now.saturating_sub(last) < window
}

impl CampaignTable {
    /// Notes that `sender` sent a text with fingerprint `fp` at partition time `now`.
    pub fn observe(
        &mut self,
        fp: u64,
        sender: u32,
        now: u32,
        window: u32,
        min_senders: u32,
        max_fingerprints: usize,
    ) -> Seen {
        // (The length first: a table with room needs one look-up, not two.)
        if self.map.len() >= max_fingerprints && !self.map.contains_key(&fp) {
            if now >= self.sweep_blocked_until {
                self.sweep(now, window);
            }
            if self.map.len() >= max_fingerprints {
                self.sweep_blocked_until = now.saturating_add(window / 4);
                return Seen::TableFull;
            }
        }
        let c = self.map.entry(fp).or_default();
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(fp);
        }
        let cap = min_senders.max(1) as usize;
        if let Some(slot) = c.senders.iter_mut().find(|(s, _)| *s == sender) {
            slot.1 = slot.1.max(now);
        } else if c.senders.len() < cap {
            c.senders.push((sender, now));
        } else if let Some(slot) = c.senders.iter_mut().min_by_key(|(_, last)| *last) {
            *slot = (sender, now);
        }
        Seen::Senders(
            c.senders
                .iter()
                .filter(|(_, last)| within(*last, now, window))
                .count() as u32,
        )
    }

    /// Forgets fingerprints no sender used within the window; returns how many.
    pub fn sweep(&mut self, now: u32, window: u32) -> usize {
        let before = self.map.len();
        let dirty = &mut self.dirty;
        self.map.retain(|fp, c| {
            let keep = c.senders.iter().any(|(_, last)| within(*last, now, window));
            if !keep {
                dirty.push(*fp);
            }
            keep
        });
        before - self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_senders_within_the_window() {
        let mut t = CampaignTable::default();
        for s in 0..4 {
            assert_eq!(t.observe(7, s, 100, 600, 5, 10), Seen::Senders(s + 1));
        }
        assert_eq!(
            t.observe(7, 0, 101, 600, 5, 10),
            Seen::Senders(4),
            "same sender again"
        );
        assert_eq!(t.observe(7, 9, 102, 600, 5, 10), Seen::Senders(5));
        // Ten minutes on, only the sender seen now counts.
        assert_eq!(t.observe(7, 3, 800, 600, 5, 10), Seen::Senders(1));
    }

    #[test]
    fn a_full_table_sweeps_then_refuses() {
        let mut t = CampaignTable::default();
        assert_eq!(t.observe(1, 1, 0, 600, 5, 2), Seen::Senders(1));
        assert_eq!(t.observe(2, 1, 0, 600, 5, 2), Seen::Senders(1));
        assert_eq!(t.observe(3, 1, 10, 600, 5, 2), Seen::TableFull);
        // After the window, the sweep frees room.
        assert_eq!(t.observe(3, 1, 700, 600, 5, 2), Seen::Senders(1));
        assert!(t.map.contains_key(&3) && !t.map.contains_key(&1));
    }

    #[test]
    fn encodes_and_decodes() {
        let mut t = CampaignTable::default();
        t.observe(1, 5, 9, 600, 5, 10);
        t.observe(1, 6, 9, 600, 5, 10);
        let c = &t.map[&1];
        let mut buf = Vec::new();
        c.encode(&mut buf);
        assert_eq!(buf[0], VERSION);
        let back = Campaign::decode(&buf).unwrap();
        assert_eq!(back.senders, c.senders);
        assert!(Campaign::decode(&buf[..buf.len() - 1]).is_err());
        assert!(Campaign::decode(&[9]).is_err());
        // An earlier release's fixed-width value: a count, then (sender, last seen) pairs.
        let mut v1 = vec![FIXED_WIDTH_VERSION, 2];
        for x in [5u32, 9, 6, 9] {
            v1.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(Campaign::decode(&v1).unwrap().senders, c.senders);
        assert!(Campaign::decode(&v1[..5]).is_err());
    }
}

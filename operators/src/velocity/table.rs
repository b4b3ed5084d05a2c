//! The sender table of one partition: open addressing with linear probing over one
//! array of `(key, sender)` slots.
//!
//! Unlike a general-purpose hash map it can name the slot a key starts at before
//! looking, so the operator prefetches it one event ahead (`StatefulOperator::prefetch`)
//! and the slot comes from memory while the previous event is worked on: with a million
//! senders the table does not fit the caches and that first miss was the largest single
//! cost of an event. Keys are sender address keys
//! ([`super::fingerprint::address_key`]), which are never 0 (they carry a kind or a
//! length), so 0 marks a free slot. The load stays at most 70 %, and the sweep rebuilds
//! the table at the size its senders need.

use prefetch_index::prefetch_index;

use super::sender::Sender;

const FREE: u64 = 0;
/// Smallest table (slots).
const MIN_SLOTS: usize = 16;

/// Slot of `key` in a table of `mask + 1` slots: keys are packed numbers, so every bit
/// is mixed (the MurmurHash3 finalizer).
fn home(key: u64, mask: usize) -> usize {
    let mut h = key ^ (key >> 33);
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (h ^ (h >> 33)) as usize & mask
}

/// Slots for `n` senders at most 70 % full.
fn slots_for(n: usize) -> usize {
    (n * 10 / 7 + 1).next_power_of_two().max(MIN_SLOTS)
}

/// One partition's senders by address key.
#[derive(Debug, Default)]
pub struct SenderTable {
    slots: Vec<(u64, Sender)>,
    len: usize,
}

impl SenderTable {
    /// Senders kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no sender is kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated (each `size_of::<(u64, Sender)>()` bytes).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Starts loading the slot `key` would be found at (a prefetch: no effect on results).
    pub fn prefetch(&self, key: u64) {
        if !self.slots.is_empty() {
            prefetch_index(&self.slots, home(key, self.slots.len() - 1));
        }
    }

    /// `Ok(slot of key)` or `Err(free slot where it would go)`; the table has a free slot.
    fn find(&self, key: u64) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = home(key, mask);
        loop {
            match self.slots[i].0 {
                k if k == key => return Ok(i),
                FREE => return Err(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The sender of `key`.
    pub fn get(&self, key: u64) -> Option<&Sender> {
        if self.slots.is_empty() {
            return None;
        }
        self.find(key).ok().map(|i| &self.slots[i].1)
    }

    /// The sender of `key`, to change.
    pub fn get_mut(&mut self, key: u64) -> Option<&mut Sender> {
        if self.slots.is_empty() {
            return None;
        }
        self.find(key).ok().map(|i| &mut self.slots[i].1)
    }

    /// The sender of `key`, made with `make` when absent; `true` when it was made.
    pub fn get_or_insert_with(
        &mut self,
        key: u64,
        make: impl FnOnce() -> Sender,
    ) -> (&mut Sender, bool) {
        debug_assert_ne!(key, FREE, "address keys are never 0");
        if (self.len + 1) * 10 > self.slots.len() * 7 {
            self.resize(slots_for(self.len + 1));
        }
        match self.find(key) {
            Ok(i) => (&mut self.slots[i].1, false),
            Err(i) => {
                self.slots[i] = (key, make());
                self.len += 1;
                (&mut self.slots[i].1, true)
            }
        }
    }

    /// Sets the sender of `key`.
    pub fn insert(&mut self, key: u64, sender: Sender) {
        *self.get_or_insert_with(key, || Sender::new(0)).0 = sender;
    }

    /// Removes the sender of `key`.
    pub fn remove(&mut self, key: u64) {
        if self.slots.is_empty() {
            return;
        }
        if let Ok(i) = self.find(key) {
            self.remove_at(i);
        }
    }

    /// Frees slot `hole`, moving later senders of its probe run back so that every
    /// sender stays reachable from its home slot (backward-shift deletion).
    fn remove_at(&mut self, mut hole: usize) {
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let k = self.slots[j].0;
            if k == FREE {
                break;
            }
            // The sender at `j` cannot move back past its home slot.
            let h = home(k, mask);
            let stays = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !stays {
                self.slots.swap(hole, j);
                hole = j;
            }
        }
        self.slots[hole] = (FREE, Sender::new(0));
        self.len -= 1;
    }

    /// Keeps the senders `keep` says so (`keep` may see a sender twice); a table left
    /// less than a quarter full is rebuilt smaller.
    pub fn retain(&mut self, mut keep: impl FnMut(u64, &Sender) -> bool) {
        let mut i = 0;
        while i < self.slots.len() {
            let k = self.slots[i].0;
            if k != FREE && !keep(k, &self.slots[i].1) {
                // Slot `i` now holds a later sender of the run (or is free): look again.
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
        if self.slots.len() > MIN_SLOTS && self.len * 4 < self.slots.len() {
            self.resize(slots_for(self.len));
        }
    }

    /// Re-lays the senders out over `n` slots.
    fn resize(&mut self, n: usize) {
        let old = std::mem::replace(
            &mut self.slots,
            (0..n).map(|_| (FREE, Sender::new(0))).collect(),
        );
        self.len = 0;
        for (k, s) in old {
            if k != FREE {
                if let Err(i) = self.find(k) {
                    self.slots[i] = (k, s);
                    self.len += 1;
                }
            }
        }
    }

    /// Every sender with its key.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Sender)> {
        self.slots
            .iter()
            .filter(|(k, _)| *k != FREE)
            .map(|(k, s)| (*k, s))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The table behaves like a `HashMap` through inserts, look-ups, removals and
        /// sweeps (with keys crowded into few slots, so probes wrap and collide).
        #[test]
        fn behaves_like_a_map(
            ops in proptest::collection::vec((0u8..4, 1u64..200, 0u32..1000), 1..400),
        ) {
            let mut t = SenderTable::default();
            let mut m: HashMap<u64, u32> = HashMap::new();
            for (op, key, wm) in ops {
                match op {
                    0 => {
                        let (_, new) = t.get_or_insert_with(key, || Sender::new(wm));
                        prop_assert_eq!(new, !m.contains_key(&key));
                        m.entry(key).or_insert(wm);
                    }
                    1 => {
                        t.insert(key, Sender::new(wm));
                        m.insert(key, wm);
                    }
                    2 => {
                        t.remove(key);
                        m.remove(&key);
                    }
                    _ => {
                        t.retain(|_, s| s.wm() % 3 != wm % 3);
                        m.retain(|_, w| *w % 3 != wm % 3);
                    }
                }
                prop_assert_eq!(t.len(), m.len());
                prop_assert!(t.len() * 10 <= t.slots() * 7 || t.slots() == 0);
                for k in 1..200 {
                    prop_assert_eq!(t.get(k).map(Sender::wm), m.get(&k).copied());
                }
                let mut seen: Vec<u64> = t.iter().map(|(k, _)| k).collect();
                seen.sort_unstable();
                let mut want: Vec<u64> = m.keys().copied().collect();
                want.sort_unstable();
                prop_assert_eq!(seen, want);
            }
        }
    }
}

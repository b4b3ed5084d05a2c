//! The throttle's keyed state: per relay operator, reseller and first-sender code, a
//! spam ratio (and for relay operators the quota step and the GCRA state), and how it is
//! written to the changelog.

use compact_str::CompactString;
use foldhash::fast::FixedState;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use std::hash::BuildHasher;

use super::ratio::{Counts, Ratio};

/// What a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyKind {
    /// A relay operator (중계사): spam ratio, quota step and GCRA state.
    Relay,
    /// A reseller (재판매사): spam ratio.
    Reseller,
    /// A first-sender code: spam ratio.
    FirstSenderCode,
}

impl KeyKind {
    /// Every kind, in the order of [`KeyKind::index`].
    pub const ALL: [KeyKind; 3] = [KeyKind::Relay, KeyKind::Reseller, KeyKind::FirstSenderCode];

    /// The kind's first byte in changelog keys.
    pub fn prefix(self) -> u8 {
        match self {
            KeyKind::Relay => b'o',
            KeyKind::Reseller => b'r',
            KeyKind::FirstSenderCode => b'f',
        }
    }

    /// The kind of a changelog key's first byte.
    pub fn of_prefix(b: u8) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.prefix() == b)
    }

    /// Position in [`KeyKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One key's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// Spam ratio over the window.
    pub ratio: Ratio,
    /// Relay operators only: the quota step in force.
    pub step: u8,
    /// Relay operators only: GCRA theoretical arrival time, ns of event time (0: none).
    pub tat: u64,
    /// Changed since the last changelog snapshot.
    pub dirty: bool,
}

/// A key's changelog value after its version byte ([`VALUE_VERSION`]), in postcard.
#[derive(Serialize, Deserialize)]
struct Stored {
    step: u8,
    tat: u64,
    head: u32,
    buckets: Vec<Counts>,
}

/// Version byte of changelog values: postcard of [`Stored`] follows.
pub const VALUE_VERSION: u8 = 2;
/// Version byte of the fixed-width little-endian values written before postcard
/// (step u8, tat u64, head u32, bucket count u32, then per bucket decided and blocked
/// u32): still read, so that state survives an upgrade.
const FIXED_WIDTH_VERSION: u8 = 1;

impl KeyState {
    /// A key with nothing counted, whose newest bucket is `head`.
    pub fn new(buckets: u32, head: u32) -> Self {
        KeyState {
            ratio: Ratio::new(buckets, head),
            step: 0,
            tat: 0,
            dirty: false,
        }
    }

    /// The changelog value.
    pub fn encode(&self) -> Vec<u8> {
        let (head, ring) = self.ratio.parts();
        let stored = Stored {
            step: self.step,
            tat: self.tat,
            head,
            buckets: ring.to_vec(),
        };
        let mut out = vec![VALUE_VERSION];
        // Serializing plain integers into a Vec cannot fail.
        out.extend(postcard::to_allocvec(&stored).unwrap_or_default());
        out
    }

    /// Reads a changelog value; `buckets` is the configured ring length.
    pub fn decode(buckets: u32, value: &[u8]) -> Result<KeyState, String> {
        let stored = match value {
            [VALUE_VERSION, rest @ ..] => {
                let (stored, left): (Stored, &[u8]) =
                    postcard::take_from_bytes(rest).map_err(|e| format!("throttle state: {e}"))?;
                if !left.is_empty() {
                    return Err(format!("{} trailing bytes", left.len()));
                }
                stored
            }
            [FIXED_WIDTH_VERSION, rest @ ..] => fixed_width(rest)?,
            [v, ..] => return Err(format!("unknown throttle state version {v}")),
            [] => return Err("empty throttle state".into()),
        };
        Ok(KeyState {
            ratio: Ratio::from_parts(buckets, stored.head, stored.buckets)?,
            step: stored.step,
            tat: stored.tat,
            dirty: false,
        })
    }
}

/// Reads a [`FIXED_WIDTH_VERSION`] value (after its version byte).
fn fixed_width(mut b: &[u8]) -> Result<Stored, String> {
    let mut take = |n: usize| -> Result<&[u8], String> {
        let (x, rest) = b.split_at_checked(n).ok_or("value is truncated")?;
        b = rest;
        Ok(x)
    };
    let le32 = |x: &[u8]| u32::from_le_bytes([x[0], x[1], x[2], x[3]]);
    let step = take(1)?[0];
    let tat = u64::from_le_bytes(take(8)?.try_into().unwrap_or_default());
    let head = le32(take(4)?);
    let len = le32(take(4)?) as usize;
    let bytes = take(len.checked_mul(8).ok_or("value is truncated")?)?;
    let buckets = bytes
        .chunks_exact(8)
        .map(|c| Counts {
            decided: le32(&c[..4]),
            blocked: le32(&c[4..]),
        })
        .collect();
    if !b.is_empty() {
        return Err(format!("{} trailing bytes", b.len()));
    }
    Ok(Stored {
        step,
        tat,
        head,
        buckets,
    })
}

/// A key's name: relay operator, reseller and first-sender code names are short, so
/// they are kept inside the map entry (up to 24 bytes) and a look-up compares them
/// without following a pointer.
pub type Name = CompactString;

/// The keys of one kind in one partition: names and states in a `Vec`, found by name
/// through a hash index of their numbers (small, so that a look-up's first step stays
/// in the cache; the name is compared in the entry the look-up then reads anyway).
/// `inspect` finds an event's keys by name and `decided` reaches them again by number
/// (only the sweep, which runs before the look-ups, and restore remove keys).
#[derive(Debug)]
pub struct Table {
    index: HashTable<usize>,
    keys: Vec<(Name, KeyState)>,
    buckets: u32,
}

fn hash(name: &str) -> u64 {
    FixedState::default().hash_one(name)
}

impl Table {
    /// An empty table whose ratios have `buckets` buckets.
    pub fn new(buckets: u32) -> Self {
        Table {
            index: HashTable::new(),
            keys: Vec::new(),
            buckets,
        }
    }

    /// The number of `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        let keys = &self.keys;
        self.index
            .find(hash(name), |&id| keys[id].0 == name)
            .copied()
    }

    /// The number of `name`, made (nothing counted, newest bucket `head`) when absent
    /// and the table holds fewer than `max` keys; `None` when it is full.
    pub fn find_or_insert(&mut self, name: &str, max: usize, head: u32) -> Option<usize> {
        let next = self.keys.len();
        let keys = &self.keys;
        let entry = self.index.entry(
            hash(name),
            |&id| keys[id].0 == name,
            |&id| hash(&keys[id].0),
        );
        match entry {
            Entry::Occupied(e) => Some(*e.get()),
            Entry::Vacant(_) if next >= max => None,
            Entry::Vacant(e) => {
                e.insert(next);
                self.keys
                    .push((name.into(), KeyState::new(self.buckets, head)));
                Some(next)
            }
        }
    }

    /// Key `id`: its name and state.
    pub fn key(&self, id: usize) -> (&Name, &KeyState) {
        let (name, state) = &self.keys[id];
        (name, state)
    }

    /// Key `id`, to change.
    pub fn key_mut(&mut self, id: usize) -> (&Name, &mut KeyState) {
        let (name, state) = &mut self.keys[id];
        (name, state)
    }

    /// Sets (a value) or removes (a tombstone) the state of `name` from the changelog.
    pub fn restore(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), String> {
        match value {
            None => self.retain(|n, _| n != name, |_| {}),
            Some(v) => {
                let state = KeyState::decode(self.buckets, v)?;
                let id = self.find_or_insert(name, usize::MAX, 0).unwrap_or_default();
                self.keys[id].1 = state;
            }
        }
        Ok(())
    }

    /// Keeps the keys `keep` says so; `removed` sees the others' names. Renumbers keys.
    pub fn retain(
        &mut self,
        keep: impl Fn(&Name, &KeyState) -> bool,
        mut removed: impl FnMut(&Name),
    ) {
        let before = self.keys.len();
        self.keys.retain(|(name, k)| {
            let kept = keep(name, k);
            if !kept {
                removed(name);
            }
            kept
        });
        if self.keys.len() != before {
            self.index.clear();
            let keys = &self.keys;
            for (id, (name, _)) in keys.iter().enumerate() {
                self.index
                    .insert_unique(hash(name), id, |&j| hash(&keys[j].0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyState {
        let mut k = KeyState::new(4, 100);
        k.ratio.count(100, true);
        k.ratio.count(101, false);
        k.step = 2;
        k.tat = 1_772_000_000_000_000_000;
        k
    }

    #[test]
    fn values_round_trip_and_bad_ones_are_refused_with_a_reason() {
        let k = sample();
        let v = k.encode();
        assert_eq!(v[0], VALUE_VERSION);
        assert_eq!(KeyState::decode(4, &v).unwrap(), k);
        assert!(KeyState::decode(6, &v)
            .unwrap_err()
            .contains("configuration"));
        assert!(KeyState::decode(4, &v[..v.len() - 1]).is_err());
        let mut long = v.clone();
        long.push(0);
        assert!(KeyState::decode(4, &long).unwrap_err().contains("trailing"));
        assert!(KeyState::decode(4, &[9, 1, 2])
            .unwrap_err()
            .contains("version 9"));
        assert!(KeyState::decode(4, &[]).unwrap_err().contains("empty"));
    }

    #[test]
    fn fixed_width_values_are_still_read() {
        let k = sample();
        let (head, ring) = k.ratio.parts();
        let mut v = vec![FIXED_WIDTH_VERSION, k.step];
        v.extend_from_slice(&k.tat.to_le_bytes());
        v.extend_from_slice(&head.to_le_bytes());
        v.extend_from_slice(&(ring.len() as u32).to_le_bytes());
        for c in ring {
            v.extend_from_slice(&c.decided.to_le_bytes());
            v.extend_from_slice(&c.blocked.to_le_bytes());
        }
        assert_eq!(KeyState::decode(4, &v).unwrap(), k);
        assert!(KeyState::decode(4, &v[..v.len() - 3])
            .unwrap_err()
            .contains("truncated"));
    }

    #[test]
    fn keys_are_found_by_name_and_a_full_table_makes_no_new_key() {
        let mut t = Table::new(4);
        assert_eq!(t.find_or_insert("A", 2, 0), Some(0));
        assert_eq!(
            t.find_or_insert("A", 2, 0),
            Some(0),
            "an existing key is found"
        );
        assert_eq!(t.find_or_insert("B", 2, 0), Some(1));
        assert_eq!(t.find_or_insert("C", 2, 0), None);
        t.restore("A", None).unwrap();
        assert_eq!(t.find("A"), None);
        assert_eq!(t.find("B"), Some(0), "renumbered");
        assert_eq!(t.key(0).0, "B");
        t.restore("C", Some(&sample().encode())).unwrap();
        assert_eq!(t.key(t.find("C").unwrap()).1, &sample());
    }
}

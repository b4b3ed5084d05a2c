//! The sender-number registry: every instance holds the whole compacted topic in memory
//! and follows it live (the runtime feeds it; `backtest` loads it from a file).
//!
//! Shared by all workers through `Arc` and updated concurrently by the follower: a
//! `DashMap` (sharded locks; readers of different shards never contend). Entries are
//! compact because the table is large (millions of numbers): the key is the E.164
//! number as a `u64` of its digits, and owner, relay operator and reseller names are
//! interned to `u32` ids. Measured size: `docs/benchmarks.md`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use spamflow_schemas::{RegistrationRecord, RegistrationStatus};

use super::number::parse_sender;

/// A number as logs and errors show it: the first four and the last two characters, the
/// rest masked (`+821012345678` -> `+821*******78`).
pub fn mask_number(n: &str) -> String {
    let chars: Vec<char> = n.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..4].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 6));
    out.extend(&chars[chars.len() - 2..]);
    out
}

/// A record that cannot be applied. Its message masks the number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The key is not a valid phone number.
    #[error("key {} is not a valid phone number", mask_number(.0))]
    BadKey(String),
    /// The value is not a registration record.
    #[error("value for {} is not a registration record: {detail}", mask_number(.key))]
    BadValue {
        /// The key.
        key: String,
        /// The decoder's message.
        detail: String,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    owner: u32,
    relay_operator: u32,
    /// 0 = none.
    reseller: u32,
    suspended: bool,
    valid_from_ms: i64,
    valid_until_ms: i64,
}

/// What the registry says about a bulk sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Registered, active, valid now, for this relay operator (and reseller, if set).
    Ok,
    /// Not registered.
    Unregistered,
    /// Registered to another relay operator or reseller.
    WrongOperator {
        /// The operator it is registered to.
        registered_to: Arc<str>,
    },
    /// Registered but suspended.
    Suspended,
    /// Outside its validity period.
    Expired,
}

#[derive(Debug, Default)]
struct Interner {
    ids: Mutex<HashMap<Arc<str>, u32>>,
    names: RwLock<Vec<Arc<str>>>,
}

impl Interner {
    fn new() -> Self {
        let i = Interner::default();
        // Id 0 is "none", the empty name.
        let none: Arc<str> = Arc::from("");
        i.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(none.clone());
        i.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(none, 0);
        i
    }

    fn intern(&self, s: &str) -> u32 {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = ids.get(s) {
            return *id;
        }
        let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
        let id = names.len() as u32;
        let name: Arc<str> = Arc::from(s);
        names.push(name.clone());
        ids.insert(name, id);
        id
    }

    fn name(&self, id: u32) -> Arc<str> {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }
}

/// The registry table.
#[derive(Debug)]
pub struct Registry {
    entries: DashMap<u64, Entry>,
    names: Interner,
    /// Relay operators named by any record so far (metric labels).
    relay_operators: RwLock<HashSet<Arc<str>>>,
    applied: AtomicU64,
    rejected: AtomicU64,
    /// Suspended entries, read on every message that is not bulk (none: no look-up).
    suspended: AtomicUsize,
    /// When the status of a number last changed, for the records that say it.
    changed_ms: DashMap<u64, i64>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            entries: DashMap::new(),
            names: Interner::new(),
            relay_operators: RwLock::default(),
            applied: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            suspended: AtomicUsize::new(0),
            changed_ms: DashMap::new(),
        }
    }
}

/// The `u64` key of an E.164 number (`+821012345678` -> 821012345678).
fn number_key(e164: &str) -> Option<u64> {
    let digits = e164.strip_prefix('+')?;
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.parse().ok()
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Numbers registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records applied and records rejected so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.applied.load(Relaxed), self.rejected.load(Relaxed))
    }

    /// Applies one topic record: a value registers or replaces, `None` (tombstone)
    /// removes. The key is normalized, so any number format works.
    pub fn apply(&self, key: &str, value: Option<&[u8]>) -> Result<(), RegistryError> {
        let result = self.apply_inner(key, value);
        match &result {
            Ok(()) => self.applied.fetch_add(1, Relaxed),
            Err(_) => self.rejected.fetch_add(1, Relaxed),
        };
        result
    }

    fn apply_inner(&self, key: &str, value: Option<&[u8]>) -> Result<(), RegistryError> {
        // Keys on the topic are normalized E.164 already (the publisher normalizes);
        // anything else goes through the full parser.
        let normalized =
            key.len() > 8 && key.starts_with('+') && key[1..].bytes().all(|b| b.is_ascii_digit());
        let k = if normalized {
            number_key(key)
        } else {
            let id = parse_sender(key);
            if id.kind.is_number() {
                number_key(&id.key)
            } else {
                None
            }
        }
        .ok_or_else(|| RegistryError::BadKey(key.chars().take(64).collect()))?;
        let Some(value) = value else {
            if let Some((_, old)) = self.entries.remove(&k) {
                self.count_suspended(Some(old), None);
            }
            self.changed_ms.remove(&k);
            return Ok(());
        };
        let rec: RegistrationRecord =
            serde_json::from_slice(value).map_err(|e| RegistryError::BadValue {
                key: key.chars().take(64).collect(),
                detail: e.to_string(),
            })?;
        self.insert(k, &rec);
        Ok(())
    }

    /// Registers `rec` under its own number (for files and tests).
    pub fn put(&self, rec: &RegistrationRecord) -> Result<(), RegistryError> {
        let value = serde_json::to_vec(rec).map_err(|e| RegistryError::BadValue {
            key: rec.number.clone(),
            detail: e.to_string(),
        })?;
        self.apply(&rec.number, Some(&value))
    }

    fn insert(&self, k: u64, rec: &RegistrationRecord) {
        // A suspended number that was never registered names no relay operator.
        if !rec.relay_operator.is_empty() && !self.knows_relay_operator(&rec.relay_operator) {
            self.relay_operators
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(Arc::from(rec.relay_operator.as_str()));
        }
        let entry = Entry {
            owner: self.names.intern(&rec.owner),
            relay_operator: self.names.intern(&rec.relay_operator),
            reseller: rec.reseller.as_deref().map_or(0, |r| self.names.intern(r)),
            suspended: rec.status == RegistrationStatus::Suspended,
            valid_from_ms: rec.valid_from.map_or(i64::MIN, |t| t.timestamp_millis()),
            valid_until_ms: rec.valid_until.map_or(i64::MAX, |t| t.timestamp_millis()),
        };
        let old = self.entries.insert(k, entry);
        self.count_suspended(old, Some(entry));
        match rec.changed_at {
            Some(t) => self.changed_ms.insert(k, t.timestamp_millis()),
            None => self.changed_ms.remove(&k).map(|(_, t)| t),
        };
    }

    fn count_suspended(&self, old: Option<Entry>, new: Option<Entry>) {
        match (
            old.is_some_and(|e| e.suspended),
            new.is_some_and(|e| e.suspended),
        ) {
            (false, true) => {
                self.suspended.fetch_add(1, Relaxed);
            }
            (true, false) => {
                self.suspended.fetch_sub(1, Relaxed);
            }
            _ => {}
        }
    }

    /// Whether the number (normalized E.164 key) is suspended: every message from it is
    /// blocked, bulk or not. One atomic load while nothing is suspended.
    pub fn is_suspended(&self, e164: &str) -> bool {
        self.suspended.load(Relaxed) > 0
            && number_key(e164)
                .and_then(|k| self.entries.get(&k).map(|e| e.suspended))
                .unwrap_or(false)
    }

    /// Numbers suspended now.
    pub fn suspended_count(&self) -> usize {
        self.suspended.load(Relaxed)
    }

    /// When the number's status last changed (`changed_at` of its record), ms.
    pub fn changed_at_ms(&self, e164: &str) -> Option<i64> {
        self.changed_ms.get(&number_key(e164)?).map(|t| *t)
    }

    /// The registration fields of the number's record (without who changed it, when and
    /// why, which the table does not keep).
    pub fn registration(&self, e164: &str) -> Option<RegistrationRecord> {
        let e = *self.entries.get(&number_key(e164)?)?;
        let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms);
        Some(RegistrationRecord {
            number: e164.to_owned(),
            owner: self.names.name(e.owner).to_string(),
            relay_operator: self.names.name(e.relay_operator).to_string(),
            reseller: (e.reseller != 0).then(|| self.names.name(e.reseller).to_string()),
            status: if e.suspended {
                RegistrationStatus::Suspended
            } else {
                RegistrationStatus::Active
            },
            valid_from: (e.valid_from_ms != i64::MIN)
                .then(|| time(e.valid_from_ms))
                .flatten(),
            valid_until: (e.valid_until_ms != i64::MAX)
                .then(|| time(e.valid_until_ms))
                .flatten(),
            ..Default::default()
        })
    }

    /// Checks a bulk sender (normalized E.164 key) against the registry at event time.
    pub fn check(
        &self,
        e164: &str,
        relay_operator: &str,
        reseller: Option<&str>,
        at_ms: i64,
    ) -> Lookup {
        let Some(k) = number_key(e164) else {
            return Lookup::Unregistered;
        };
        let Some(e) = self.entries.get(&k).map(|e| *e) else {
            return Lookup::Unregistered;
        };
        if e.suspended {
            return Lookup::Suspended;
        }
        if e.relay_operator == 0 {
            // Known only for its status history (a released suspension): not registered.
            return Lookup::Unregistered;
        }
        if at_ms < e.valid_from_ms || at_ms >= e.valid_until_ms {
            return Lookup::Expired;
        }
        let registered_to = self.names.name(e.relay_operator);
        if &*registered_to != relay_operator {
            return Lookup::WrongOperator { registered_to };
        }
        if e.reseller != 0 {
            let r = self.names.name(e.reseller);
            if reseller != Some(&*r) {
                return Lookup::WrongOperator {
                    registered_to: Arc::from(format!("{registered_to}/{r}")),
                };
            }
        }
        Lookup::Ok
    }

    /// Whether any registration record so far named `name` as its relay operator.
    pub fn knows_relay_operator(&self, name: &str) -> bool {
        self.relay_operators
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }

    /// The owner of a registered number (for reports).
    pub fn owner(&self, e164: &str) -> Option<Arc<str>> {
        let e = *self.entries.get(&number_key(e164)?)?;
        Some(self.names.name(e.owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(number: &str, op: &str) -> RegistrationRecord {
        RegistrationRecord {
            number: number.into(),
            owner: "Acme".into(),
            relay_operator: op.into(),
            reseller: None,
            status: RegistrationStatus::Active,
            valid_from: None,
            valid_until: None,
            ..Default::default()
        }
    }

    #[test]
    fn a_suspended_number_is_known_everywhere_and_a_released_unregistered_one_is_not_registered() {
        let r = Registry::new();
        assert!(!r.is_suspended("+821012345678"));
        let mut s = RegistrationRecord {
            number: "+821012345678".into(),
            status: RegistrationStatus::Suspended,
            changed_at: Some("2026-12-02T09:00:00Z".parse().unwrap()),
            changed_by: Some("spamflow:reports".into()),
            ..Default::default()
        };
        r.put(&s).unwrap();
        assert!(r.is_suspended("+821012345678"));
        assert_eq!(r.suspended_count(), 1);
        assert!(!r.knows_relay_operator(""));
        assert_eq!(
            r.changed_at_ms("+821012345678"),
            Some(s.changed_at.unwrap().timestamp_millis())
        );
        assert_eq!(
            r.check("+821012345678", "relay-a", None, 0),
            Lookup::Suspended
        );
        s.status = RegistrationStatus::Active;
        r.put(&s).unwrap();
        assert!(!r.is_suspended("+821012345678"));
        assert_eq!(r.suspended_count(), 0);
        assert_eq!(
            r.check("+821012345678", "relay-a", None, 0),
            Lookup::Unregistered
        );
        // A registered number keeps its registration through a suspension.
        let mut reg = rec("1588-1234", "relay-a");
        reg.reseller = Some("shop".into());
        r.put(&reg).unwrap();
        let back = r.registration("+8215881234").unwrap();
        assert_eq!(
            (
                back.owner.as_str(),
                back.relay_operator.as_str(),
                back.reseller.as_deref()
            ),
            ("Acme", "relay-a", Some("shop"))
        );
        r.apply("+8215881234", None).unwrap();
        r.apply("+821012345678", None).unwrap();
        assert_eq!(
            (r.suspended_count(), r.changed_at_ms("+821012345678")),
            (0, None)
        );
    }

    #[test]
    fn registrations_updates_and_tombstones_take_effect_at_once() {
        let r = Registry::new();
        r.put(&rec("1588-1234", "relay-a")).unwrap();
        assert_eq!(r.check("+8215881234", "relay-a", None, 0), Lookup::Ok);
        assert!(matches!(
            r.check("+8215881234", "relay-b", None, 0),
            Lookup::WrongOperator { .. }
        ));
        assert_eq!(
            r.check("+8215889999", "relay-a", None, 0),
            Lookup::Unregistered
        );
        let mut s = rec("15881234", "relay-a");
        s.status = RegistrationStatus::Suspended;
        r.put(&s).unwrap();
        assert_eq!(
            r.check("+8215881234", "relay-a", None, 0),
            Lookup::Suspended
        );
        let mut t = rec("+82 1588 1234", "relay-a");
        t.valid_until = Some("2026-03-01T00:00:00Z".parse().unwrap());
        r.put(&t).unwrap();
        let march = chrono::DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            r.check("+8215881234", "relay-a", None, march),
            Lookup::Expired
        );
        r.apply("1588-1234", None).unwrap();
        assert_eq!(
            r.check("+8215881234", "relay-a", None, 0),
            Lookup::Unregistered
        );
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn malformed_records_are_rejected_and_counted_without_harm() {
        let r = Registry::new();
        r.put(&rec("1588-1234", "relay-a")).unwrap();
        assert!(matches!(
            r.apply("not a number", Some(b"{}")),
            Err(RegistryError::BadKey(_))
        ));
        assert!(matches!(
            r.apply("15881234", Some(b"{\"owner\":1}")),
            Err(RegistryError::BadValue { .. })
        ));
        assert_eq!(r.counts(), (1, 2));
        assert_eq!(r.check("+8215881234", "relay-a", None, 0), Lookup::Ok);
    }

    #[test]
    fn resellers_must_match_when_registered_per_reseller() {
        let r = Registry::new();
        let mut x = rec("16445678", "relay-a");
        x.reseller = Some("resell-7".into());
        r.put(&x).unwrap();
        assert_eq!(
            r.check("+8216445678", "relay-a", Some("resell-7"), 0),
            Lookup::Ok
        );
        assert!(matches!(
            r.check("+8216445678", "relay-a", Some("resell-8"), 0),
            Lookup::WrongOperator { .. }
        ));
        assert_eq!(r.owner("+8216445678").as_deref(), Some("Acme"));
    }

    #[test]
    fn errors_mask_the_number() {
        assert_eq!(mask_number("+821012345678"), "+821*******78");
        assert_eq!(mask_number("1588"), "****");
        let e = RegistryError::BadKey("+8210999988887777".into()).to_string();
        assert!(!e.contains("99998888"), "{e}");
        let e = RegistryError::BadValue {
            key: "+821012345678".into(),
            detail: "x".into(),
        }
        .to_string();
        assert!(e.contains("+821*******78"), "{e}");
    }
}

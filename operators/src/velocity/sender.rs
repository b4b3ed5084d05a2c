//! Per-sender velocity state: event-time sliding windows in two representations.
//!
//! **Window semantics.** A window of `n` buckets of `width` seconds, evaluated at the
//! sender's watermark `wm` (its largest event time so far), holds the events whose
//! bucket `t / width` lies in `[wm / width - n + 1, wm / width]`: the current bucket and
//! the `n - 1` before it. Counts are exact for that definition. An event that arrives out
//! of order goes into its own bucket when that bucket is still in the window; one later
//! than the allowed lateness is counted at the watermark (see the operator docs).
//!
//! **Recipients and contents.** A recipient is a *first contact* when the sender has not
//! messaged it within the horizon (the longest window) among the `max_recipients` most
//! recently messaged recipients; a message *repeats* content when its masked fingerprint
//! equals one of the sender's 8 most recent contents within the horizon. Distinct
//! recipients in a window are exact up to `max_recipients` and saturate there.
//!
//! **Representations.** Most senders send a handful of messages a day, so a sender
//! starts *sparse*: its events within the horizon (time, recipient, content and flags;
//! 12 bytes each), from which every window is computed exactly: up to 2 inside the map
//! entry itself, up to 8 in a small heap log. The 9th event within the horizon promotes
//! it to *dense*: bucket rings with running totals per window, a bounded recipient table
//! and an 8-entry content table, a few hundred bytes however many messages it sends. All
//! give the same numbers for the same events (a property test checks it).

//!
//! **Changelog values** start with a version byte. Version 2 is postcard of [`Stored`]:
//! the layout hash, the watermark, then either the sparse events or a dense sender's
//! buckets (every window's ring in layout order), recipients and contents. Version 1
//! values (the same data in a hand-laid fixed-width form, written by earlier releases)
//! are still read.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::fingerprint::{fold32, FNV_OFFSET, FNV_PRIME};
use super::MAX_WINDOWS;

/// Events kept inside the map entry.
pub const INLINE: usize = 2;
/// Events a sparse sender keeps (beyond `INLINE`, in a heap log).
pub const SPARSE: usize = 8;
/// Recent contents a sender remembers for "repeated content" (at least `SPARSE`, so
/// that a sparse sender, which remembers all its events, and a dense one agree).
pub const CONTENTS: usize = SPARSE;

/// Version byte of changelog values: postcard of [`Stored`] follows.
const VERSION: u8 = 2;
/// Version byte of the fixed-width values of earlier releases (still read).
const FIXED_WIDTH_VERSION: u8 = 1;

/// One window's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Win {
    /// Bucket width in seconds.
    pub width: u32,
    /// Buckets.
    pub n: u32,
    /// Where this window's ring starts in a dense sender's buckets.
    offset: usize,
}

/// The shape of every sender's state, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Windows in configuration order.
    pub windows: Vec<Win>,
    /// Longest window in seconds: nothing older matters.
    pub horizon_s: u32,
    /// Recipient table size of a dense sender.
    pub max_recipients: usize,
    /// Allowed lateness in seconds.
    pub lateness_s: u32,
    /// Hash of the windows and the recipient table size, stored with each value so that
    /// state written under another configuration is refused instead of misread.
    hash: u32,
    /// Buckets of all windows together.
    buckets: usize,
}

impl Layout {
    /// A layout of `(width_s, buckets)` windows (at most [`MAX_WINDOWS`]).
    pub fn new(windows: &[(u32, u32)], max_recipients: usize, lateness_s: u32) -> Self {
        let mut offset = 0;
        let mut ws = Vec::with_capacity(windows.len());
        let mut hash = FNV_OFFSET;
        for &(width, n) in windows.iter().take(MAX_WINDOWS) {
            ws.push(Win {
                width: width.max(1),
                n: n.max(1),
                offset,
            });
            offset += n.max(1) as usize;
            for x in [width, n] {
                hash = (hash ^ u64::from(x)).wrapping_mul(FNV_PRIME);
            }
        }
        hash = (hash ^ max_recipients as u64).wrapping_mul(FNV_PRIME);
        Layout {
            horizon_s: ws.iter().map(|w| w.width * w.n).max().unwrap_or(1),
            windows: ws,
            max_recipients: max_recipients.clamp(SPARSE, 255),
            lateness_s,
            hash: fold32(hash),
            buckets: offset,
        }
    }
}

/// One window's numbers at the sender's watermark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Messages.
    pub sent: u32,
    /// Messages to first-contact recipients.
    pub first_contact: u32,
    /// Messages repeating one of the sender's recent contents.
    pub repeated: u32,
    /// Distinct recipients (saturates at `max_recipients`).
    pub distinct_recipients: u32,
}

/// A message's content fingerprint (30 bits) and what recording it found, in one word,
/// so that an event is 12 bytes and two fit inside the map entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Content(u32);

impl Content {
    const FIRST_CONTACT: u32 = 1 << 31;
    const REPEATED: u32 = 1 << 30;
    const FINGERPRINT: u32 = Self::REPEATED - 1;

    fn new(fingerprint: u32, rec: Recorded) -> Self {
        let mut c = fingerprint & Self::FINGERPRINT;
        if rec.first_contact {
            c |= Self::FIRST_CONTACT;
        }
        if rec.repeated {
            c |= Self::REPEATED;
        }
        Content(c)
    }

    fn first_contact(self) -> bool {
        self.0 & Self::FIRST_CONTACT != 0
    }

    fn repeated(self) -> bool {
        self.0 & Self::REPEATED != 0
    }
}

/// One message of a sparse sender.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Ev {
    t: u32,
    recipient: u32,
    content: Content,
}

/// One bucket's counts; each saturates at `u16::MAX` on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Bucket {
    sent: u16,
    first_contact: u16,
    repeated: u16,
}

/// A window's running totals: the sum of its buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Totals {
    sent: u32,
    first_contact: u32,
    repeated: u32,
}

impl Totals {
    fn add(&mut self, b: Bucket) {
        self.sent += u32::from(b.sent);
        self.first_contact += u32::from(b.first_contact);
        self.repeated += u32::from(b.repeated);
    }

    fn remove(&mut self, b: Bucket) {
        self.sent -= u32::from(b.sent);
        self.first_contact -= u32::from(b.first_contact);
        self.repeated -= u32::from(b.repeated);
    }
}

/// A recipient or content fingerprint and when the sender last used it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    key: u32,
    last: u32,
}

/// A dense sender's windows, recipients and contents.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dense {
    /// Running totals per window.
    totals: [Totals; MAX_WINDOWS],
    /// Every window's ring of buckets, one after the other (window `w`'s from
    /// `w.offset`); bucket number `b` of a window is in its slot `b % n`.
    buckets: Box<[Bucket]>,
    /// Recipients messaged within the horizon, at most `max_recipients`: a full table
    /// forgets the least recently messaged.
    recipients: Vec<Seen>,
    /// The most recent contents, at most [`CONTENTS`].
    contents: Vec<Seen>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
// The watermark and dirty flag live in each variant (not in a struct around the enum),
// so that they fill the enum's padding: 32 bytes in all, 40 with the map key.
enum Track {
    Inline {
        wm: u32,
        dirty: bool,
        len: u8,
        ev: [Ev; INLINE],
    },
    Log {
        wm: u32,
        dirty: bool,
        ev: Vec<Ev>,
    },
    Dense {
        wm: u32,
        dirty: bool,
        d: Box<Dense>,
    },
}

impl Track {
    /// The events of a sparse sender.
    fn events(&self) -> Option<&[Ev]> {
        match self {
            Track::Inline { len, ev, .. } => Some(&ev[..usize::from(*len)]),
            Track::Log { ev, .. } => Some(ev),
            Track::Dense { .. } => None,
        }
    }

    fn sparse(events: &[Ev], wm: u32, dirty: bool) -> Track {
        if events.len() <= INLINE {
            let mut ev = [Ev::default(); INLINE];
            ev[..events.len()].copy_from_slice(events);
            Track::Inline {
                wm,
                dirty,
                len: events.len() as u8,
                ev,
            }
        } else {
            Track::Log {
                wm,
                dirty,
                ev: events.to_vec(),
            }
        }
    }

    fn header(&mut self) -> (&mut u32, &mut bool) {
        match self {
            Track::Inline { wm, dirty, .. }
            | Track::Log { wm, dirty, .. }
            | Track::Dense { wm, dirty, .. } => (wm, dirty),
        }
    }
}

/// One sender's velocity state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    track: Track,
}

/// What recording one event found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The recipient was a first contact.
    pub first_contact: bool,
    /// The content repeated a recent one.
    pub repeated: bool,
}

fn bucket(t: u32, w: &Win) -> u32 {
    t / w.width
}

impl Win {
    /// The first second of this window evaluated at `wm`: an event at `t` is in it when
    /// `t >= start` (its bucket is one of the `n` up to `wm`'s).
    fn start(&self, wm: u32) -> u32 {
        (bucket(wm, self) + 1).saturating_sub(self.n) * self.width
    }

    /// The index in a dense sender's buckets of bucket number `b` of this window.
    fn slot(&self, b: u32) -> usize {
        self.offset + (b % self.n) as usize
    }
}

fn recent(t: u32, wm: u32, horizon: u32) -> bool {
    wm.saturating_sub(t) < horizon
}

impl Sender {
    /// A sender first seen at `t`.
    pub fn new(t: u32) -> Self {
        Sender {
            track: Track::Inline {
                wm: t,
                dirty: true,
                len: 0,
                ev: [Ev::default(); INLINE],
            },
        }
    }

    /// Watermark: largest event time of this sender, in seconds.
    pub fn wm(&self) -> u32 {
        match &self.track {
            Track::Inline { wm, .. } | Track::Log { wm, .. } | Track::Dense { wm, .. } => *wm,
        }
    }

    /// Changed since the last changelog snapshot.
    pub fn dirty(&self) -> bool {
        match &self.track {
            Track::Inline { dirty, .. } | Track::Log { dirty, .. } | Track::Dense { dirty, .. } => {
                *dirty
            }
        }
    }

    /// Marks the sender changed (or written).
    pub fn set_dirty(&mut self, dirty: bool) {
        *self.track.header().1 = dirty;
    }

    /// Whether this sender keeps dense state.
    pub fn is_dense(&self) -> bool {
        matches!(self.track, Track::Dense { .. })
    }

    /// Heap bytes owned (besides the map entry itself).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        match &self.track {
            Track::Inline { .. } => 0,
            Track::Log { ev, .. } => ev.capacity() * size_of::<Ev>(),
            Track::Dense { d, .. } => {
                size_of::<Dense>()
                    + d.buckets.len() * size_of::<Bucket>()
                    + (d.recipients.capacity() + d.contents.capacity()) * size_of::<Seen>()
            }
        }
    }

    /// Whether nothing of this sender can matter any more at partition time `now`.
    pub fn idle(&self, layout: &Layout, now: u32) -> bool {
        u64::from(self.wm()) + u64::from(layout.horizon_s) + u64::from(layout.lateness_s)
            < u64::from(now)
    }

    /// Records one event at `t` to `recipient` with content fingerprint `content`.
    /// An event later than the allowed lateness is counted at the watermark; returns
    /// whether it was (`true`) besides what the event was.
    pub fn record(
        &mut self,
        layout: &Layout,
        t: u32,
        recipient: u32,
        content: u32,
    ) -> (Recorded, bool) {
        let late = t < self.wm().saturating_sub(layout.lateness_s);
        let t = if late { self.wm() } else { t };
        self.advance(layout, t);
        let content = content & Content::FINGERPRINT;
        let rec = Recorded {
            first_contact: !self.knows_recipient(layout, recipient),
            repeated: self.knows_content(layout, content),
        };
        let ev = Ev {
            t,
            recipient,
            content: Content::new(content, rec),
        };
        let wm = self.wm();
        self.set_dirty(true);
        match &mut self.track {
            Track::Inline { len, ev: evs, .. } if usize::from(*len) < INLINE => {
                evs[usize::from(*len)] = ev;
                *len += 1;
            }
            Track::Inline { len, ev: evs, .. } => {
                let mut log = Vec::with_capacity(INLINE * 2);
                log.extend_from_slice(&evs[..usize::from(*len)]);
                log.push(ev);
                self.track = Track::Log {
                    wm,
                    dirty: true,
                    ev: log,
                };
            }
            Track::Log { ev: log, .. } if log.len() < SPARSE => log.push(ev),
            Track::Log { ev: log, .. } => {
                let mut d = Dense::new(layout);
                for e in log.iter() {
                    d.add(layout, wm, *e);
                }
                d.add(layout, wm, ev);
                self.track = Track::Dense {
                    wm,
                    dirty: true,
                    d: Box::new(d),
                };
            }
            Track::Dense { d, .. } => d.add(layout, wm, ev),
        }
        (rec, late)
    }

    /// Moves the watermark to `t` when later.
    fn advance(&mut self, layout: &Layout, t: u32) {
        let old = self.wm();
        if t <= old {
            return;
        }
        *self.track.header().0 = t;
        let dirty = self.dirty();
        match &mut self.track {
            Track::Inline { .. } | Track::Log { .. } => {
                // Forget events older than the horizon: no window holds them any more.
                let events = self.track.events().unwrap_or_default();
                if events.iter().any(|e| !recent(e.t, t, layout.horizon_s)) {
                    let kept: Vec<Ev> = events
                        .iter()
                        .filter(|e| recent(e.t, t, layout.horizon_s))
                        .copied()
                        .collect();
                    self.track = Track::sparse(&kept, t, dirty);
                }
            }
            Track::Dense { d, .. } => {
                for (wi, w) in layout.windows.iter().enumerate() {
                    let (ob, nb) = (bucket(old, w), bucket(t, w));
                    // Empty the buckets that leave the window (at most one lap).
                    for b in ob + 1..=ob + (nb - ob).min(w.n) {
                        let slot = &mut d.buckets[w.slot(b)];
                        d.totals[wi].remove(std::mem::take(slot));
                    }
                }
            }
        }
    }

    /// Whether the sender messaged recipient `r` within the horizon.
    fn knows_recipient(&self, layout: &Layout, r: u32) -> bool {
        self.knows(layout, r, |e| e.recipient, |d| &d.recipients)
    }

    /// Whether the sender sent content `c` within the horizon (among its recent ones).
    fn knows_content(&self, layout: &Layout, c: u32) -> bool {
        self.knows(
            layout,
            c,
            |e| e.content.0 & Content::FINGERPRINT,
            |d| &d.contents,
        )
    }

    /// Whether `x` was seen within the horizon: among a sparse sender's events (`of`
    /// reads it from one), or in a dense sender's table.
    fn knows(
        &self,
        layout: &Layout,
        x: u32,
        of: impl Fn(&Ev) -> u32,
        table: impl Fn(&Dense) -> &[Seen],
    ) -> bool {
        let wm = self.wm();
        match &self.track {
            Track::Dense { d, .. } => table(d)
                .iter()
                .any(|s| s.key == x && recent(s.last, wm, layout.horizon_s)),
            sparse => sparse
                .events()
                .unwrap_or_default()
                .iter()
                .any(|e| of(e) == x && recent(e.t, wm, layout.horizon_s)),
        }
    }

    /// Window `wi`'s numbers at the watermark.
    pub fn counts(&self, layout: &Layout, wi: usize) -> Counts {
        self.window(layout, wi, true)
    }

    /// Window `wi`'s numbers at the watermark; distinct recipients (a pass over the
    /// recipient table) only when `recipients` asks for them, 0 otherwise.
    pub fn window(&self, layout: &Layout, wi: usize, recipients: bool) -> Counts {
        let w = &layout.windows[wi];
        let start = w.start(self.wm());
        match &self.track {
            Track::Inline { .. } | Track::Log { .. } => {
                let evs = self.track.events().unwrap_or_default();
                let mut c = Counts::default();
                for (i, e) in evs.iter().enumerate() {
                    if e.t < start {
                        continue;
                    }
                    c.sent += 1;
                    c.first_contact += u32::from(e.content.first_contact());
                    c.repeated += u32::from(e.content.repeated());
                    let seen_before = || {
                        evs[..i]
                            .iter()
                            .any(|p| p.recipient == e.recipient && p.t >= start)
                    };
                    c.distinct_recipients += u32::from(recipients && !seen_before());
                }
                c
            }
            Track::Dense { d, .. } => {
                let t = d.totals[wi];
                Counts {
                    sent: t.sent,
                    first_contact: t.first_contact,
                    repeated: t.repeated,
                    distinct_recipients: if recipients {
                        d.recipients.iter().filter(|s| s.last >= start).count() as u32
                    } else {
                        0
                    },
                }
            }
        }
    }

    /// Seconds until window `wi` loses its oldest message (0 when it is empty).
    pub fn frees_in(&self, layout: &Layout, wi: usize) -> u32 {
        let w = &layout.windows[wi];
        let now = bucket(self.wm(), w);
        let oldest = match &self.track {
            Track::Inline { .. } | Track::Log { .. } => self
                .track
                .events()
                .unwrap_or_default()
                .iter()
                .filter(|e| e.t >= w.start(self.wm()))
                .map(|e| bucket(e.t, w))
                .min(),
            Track::Dense { d, .. } => {
                // The oldest bucket in the window that holds a message.
                let first = now.saturating_sub(w.n - 1);
                (first..=now).find(|&b| d.buckets[w.slot(b)].sent > 0)
            }
        };
        oldest.map_or(0, |b| ((b + w.n) * w.width).saturating_sub(self.wm()))
    }

    /// The changelog value.
    pub fn encode(&self, layout: &Layout, out: &mut Vec<u8>) {
        let state = match &self.track {
            Track::Dense { d, .. } => StoredState::Dense {
                buckets: Cow::Borrowed(&d.buckets),
                recipients: Cow::Borrowed(&d.recipients),
                contents: Cow::Borrowed(&d.contents),
            },
            sparse => StoredState::Sparse(Cow::Borrowed(sparse.events().unwrap_or_default())),
        };
        let stored = Stored {
            layout: layout.hash,
            wm: self.wm(),
            state,
        };
        out.push(VERSION);
        // Serializing integers into a Vec cannot fail.
        if let Ok(bytes) = postcard::to_extend(&stored, std::mem::take(out)) {
            *out = bytes;
        }
    }

    /// Reads a changelog value written by [`Sender::encode`] (or by an earlier release)
    /// with the same layout.
    pub fn decode(layout: &Layout, value: &[u8]) -> Result<Sender, String> {
        let stored = match value {
            [VERSION, rest @ ..] => {
                let (stored, left): (Stored<'_>, &[u8]) =
                    postcard::take_from_bytes(rest).map_err(|e| format!("velocity state: {e}"))?;
                if !left.is_empty() {
                    return Err(format!("{} trailing bytes", left.len()));
                }
                stored
            }
            [FIXED_WIDTH_VERSION, rest @ ..] => fixed_width(layout, rest)?,
            [v, ..] => {
                return Err(format!(
                    "state version {v}, this build reads {FIXED_WIDTH_VERSION} and {VERSION}"
                ))
            }
            [] => return Err("value is truncated".into()),
        };
        if stored.layout != layout.hash {
            return Err("written with other velocity windows (configuration changed)".into());
        }
        let wm = stored.wm;
        let track = match stored.state {
            StoredState::Sparse(ev) => {
                if ev.len() > SPARSE {
                    return Err(format!("{} sparse events, at most {SPARSE}", ev.len()));
                }
                Track::sparse(&ev, wm, false)
            }
            StoredState::Dense {
                buckets,
                recipients,
                contents,
            } => {
                if buckets.len() != layout.buckets {
                    return Err(format!(
                        "{} buckets, the windows have {}",
                        buckets.len(),
                        layout.buckets
                    ));
                }
                if recipients.len() > layout.max_recipients {
                    return Err(format!(
                        "{} recipients, at most {}",
                        recipients.len(),
                        layout.max_recipients
                    ));
                }
                if contents.len() > CONTENTS {
                    return Err(format!("{} contents, at most {CONTENTS}", contents.len()));
                }
                let mut totals = [Totals::default(); MAX_WINDOWS];
                for (wi, w) in layout.windows.iter().enumerate() {
                    for b in &buckets[w.offset..][..w.n as usize] {
                        totals[wi].add(*b);
                    }
                }
                Track::Dense {
                    wm,
                    dirty: false,
                    d: Box::new(Dense {
                        totals,
                        buckets: buckets.into_owned().into(),
                        recipients: recipients.into_owned(),
                        contents: contents.into_owned(),
                    }),
                }
            }
        };
        Ok(Sender { track })
    }
}

/// A sender's changelog value after its version byte.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    /// [`Layout`]'s hash.
    layout: u32,
    /// The watermark.
    wm: u32,
    state: StoredState<'a>,
}

#[derive(Serialize, Deserialize)]
enum StoredState<'a> {
    /// A sparse sender's events.
    Sparse(Cow<'a, [Ev]>),
    /// A dense sender: every window's ring (slot order, windows in layout order), its
    /// recipients and its recent contents.
    Dense {
        buckets: Cow<'a, [Bucket]>,
        recipients: Cow<'a, [Seen]>,
        contents: Cow<'a, [Seen]>,
    },
}

/// Reads a [`FIXED_WIDTH_VERSION`] value (after its version byte): little-endian layout
/// hash (u32) and watermark (u32); then tag 0, an event count (u8) and per event time,
/// recipient and content (u32 each); or tag 1, every window's ring in slot order with
/// three u16 per bucket (sent, first contact, repeated), a recipient count (u8) and per
/// recipient key and last (u32 each), then 8 contents as key and last (key `u32::MAX`:
/// an unused slot).
fn fixed_width(layout: &Layout, mut b: &[u8]) -> Result<Stored<'static>, String> {
    let mut take = |n: usize| -> Result<&[u8], String> {
        let (x, rest) = b.split_at_checked(n).ok_or("value is truncated")?;
        b = rest;
        Ok(x)
    };
    let le16 = |x: &[u8]| u16::from_le_bytes([x[0], x[1]]);
    let le32 = |x: &[u8]| u32::from_le_bytes([x[0], x[1], x[2], x[3]]);
    let hash = le32(take(4)?);
    let wm = le32(take(4)?);
    let state = match take(1)?[0] {
        0 => {
            let len = usize::from(take(1)?[0]);
            let ev = take(len * 12)?
                .chunks_exact(12)
                .map(|c| Ev {
                    t: le32(&c[..4]),
                    recipient: le32(&c[4..8]),
                    content: Content(le32(&c[8..])),
                })
                .collect();
            StoredState::Sparse(Cow::Owned(ev))
        }
        1 => {
            let buckets = take(layout.buckets * 6)?
                .chunks_exact(6)
                .map(|c| Bucket {
                    sent: le16(&c[..2]),
                    first_contact: le16(&c[2..4]),
                    repeated: le16(&c[4..]),
                })
                .collect();
            let seen = |c: &[u8]| Seen {
                key: le32(&c[..4]),
                last: le32(&c[4..]),
            };
            let n = usize::from(take(1)?[0]);
            let recipients = take(n * 8)?.chunks_exact(8).map(seen).collect();
            let contents = take(CONTENTS * 8)?
                .chunks_exact(8)
                .map(seen)
                .take_while(|s| s.key != u32::MAX)
                .collect();
            StoredState::Dense {
                buckets: Cow::Owned(buckets),
                recipients: Cow::Owned(recipients),
                contents: Cow::Owned(contents),
            }
        }
        tag => return Err(format!("unknown representation {tag}")),
    };
    if !b.is_empty() {
        return Err(format!("{} trailing bytes", b.len()));
    }
    Ok(Stored {
        layout: hash,
        wm,
        state,
    })
}

impl Dense {
    fn new(layout: &Layout) -> Self {
        Dense {
            totals: [Totals::default(); MAX_WINDOWS],
            buckets: vec![Bucket::default(); layout.buckets].into(),
            recipients: Vec::new(),
            contents: Vec::with_capacity(CONTENTS),
        }
    }

    /// Adds one event at `e.t <= wm`.
    fn add(&mut self, layout: &Layout, wm: u32, e: Ev) {
        for (wi, w) in layout.windows.iter().enumerate() {
            if e.t < w.start(wm) {
                continue;
            }
            let slot = &mut self.buckets[w.slot(bucket(e.t, w))];
            let before = *slot;
            saturating_count(&mut slot.sent, true);
            saturating_count(&mut slot.first_contact, e.content.first_contact());
            saturating_count(&mut slot.repeated, e.content.repeated());
            let t = &mut self.totals[wi];
            t.remove(before);
            t.add(*slot);
        }
        remember(
            &mut self.recipients,
            layout.max_recipients,
            e.recipient,
            e.t,
        );
        let c = e.content.0 & Content::FINGERPRINT;
        remember(&mut self.contents, CONTENTS, c, e.t);
    }
}

/// Adds one to `count` when `yes`, up to `u16::MAX`.
fn saturating_count(count: &mut u16, yes: bool) {
    *count = count.saturating_add(u16::from(yes));
}

/// Notes `key` seen at `t` in a table of at most `cap` entries: a full table forgets its
/// least recently seen entry.
fn remember(table: &mut Vec<Seen>, cap: usize, key: u32, t: u32) {
    if let Some(s) = table.iter_mut().find(|s| s.key == key) {
        s.last = s.last.max(t);
    } else if table.len() < cap {
        table.push(Seen { key, last: t });
    } else if let Some(s) = table.iter_mut().min_by_key(|s| s.last) {
        *s = Seen { key, last: t };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn layout() -> Layout {
        // 1 min of 6 x 10 s, 1 h of 12 x 5 min, 24 h of 24 x 1 h.
        Layout::new(&[(10, 6), (300, 12), (3600, 24)], 32, 300)
    }

    #[test]
    fn counts_follow_the_documented_bucket_semantics() {
        let l = layout();
        let mut s = Sender::new(1_000);
        for (i, t) in [1_000u32, 1_005, 1_030, 1_055, 1_061].iter().enumerate() {
            s.record(&l, *t, i as u32 % 3, 7);
        }
        assert!(!s.is_dense(), "five events: still sparse");
        // At wm 1061 the 1-min window holds buckets 101..=106: times >= 1010.
        let c = s.counts(&l, 0);
        assert_eq!(c.sent, 3);
        assert_eq!(c.distinct_recipients, 3);
        assert_eq!(s.counts(&l, 2).sent, 5);
        // Identical content from the second message on.
        assert_eq!(s.counts(&l, 2).repeated, 4);
        // Recipients 0,1,2,0,1: the first three are first contacts.
        assert_eq!(s.counts(&l, 2).first_contact, 3);
        // The oldest message in the 1-min window (bucket 103) leaves it at 1090.
        assert_eq!(s.frees_in(&l, 0), 1_090 - 1_061);
    }

    #[test]
    fn late_events_within_lateness_go_to_their_bucket_and_later_ones_to_the_watermark() {
        let l = layout();
        let mut s = Sender::new(10_000);
        s.record(&l, 10_000, 1, 1);
        let (_, late) = s.record(&l, 9_900, 2, 2);
        assert!(!late);
        assert_eq!(
            s.counts(&l, 0).sent,
            1,
            "100 s old: outside the 1-min window"
        );
        assert_eq!(s.counts(&l, 1).sent, 2);
        let (_, late) = s.record(&l, 1_000, 3, 3);
        assert!(late, "9000 s behind with 300 s lateness");
        assert_eq!(s.counts(&l, 0).sent, 2, "counted at the watermark");
    }

    #[test]
    fn a_typical_sender_is_a_40_byte_map_entry() {
        assert_eq!(std::mem::size_of::<(u64, Sender)>(), 40);
    }

    #[test]
    fn a_million_messages_do_not_grow_the_state() {
        let l = layout();
        let mut s = Sender::new(0);
        s.record(&l, 0, 0, 0);
        let small = s.heap_bytes();
        for i in 0..1_000_000u32 {
            s.record(&l, i / 10, i, i % 50);
        }
        let big = s.heap_bytes();
        assert!(big < 2_000, "{small} -> {big} bytes");
        assert_eq!(
            s.counts(&l, 0).distinct_recipients,
            32,
            "saturates at the table size"
        );
        assert_eq!(s.counts(&l, 0).sent, 600, "10/s over the 6 buckets of 10 s");
    }

    #[test]
    fn bucket_counts_saturate_each_on_its_own() {
        let l = layout();
        let mut s = Sender::new(0);
        // 70,000 messages in one second: ten recipients, one text.
        for i in 0..70_000u32 {
            s.record(&l, 0, i % 10, 7);
        }
        let c = s.counts(&l, 0);
        assert_eq!(c.sent, u32::from(u16::MAX));
        assert_eq!(c.first_contact, 10);
        assert_eq!(
            c.repeated,
            u32::from(u16::MAX),
            "every message after the first"
        );
        let mut v = Vec::new();
        s.encode(&l, &mut v);
        assert_eq!(Sender::decode(&l, &v).unwrap().counts(&l, 0), c);
        // Once the bucket has left the window, the window starts from zero again.
        s.record(&l, 100, 11, 8);
        let c = s.counts(&l, 0);
        assert_eq!((c.sent, c.first_contact, c.repeated), (1, 1, 0));
    }

    /// Values written by the release before postcard (version 1: `testdata/sender-v1.txt`,
    /// a dense and a sparse sender) are still read, as the same state as recording the
    /// same events now.
    #[test]
    fn version_1_values_are_still_read() {
        let l = layout();
        let fixture = include_str!("testdata/sender-v1.txt");
        let value = |name: &str| {
            let line = fixture.lines().find(|x| x.starts_with(name)).unwrap();
            hex::decode(line.split(' ').nth(1).unwrap()).unwrap()
        };
        let mut dense = Sender::new(1_000);
        for k in 0..400u32 {
            dense.record(&l, 1_000 + k * 7, k % 45, k % 11);
        }
        let mut sparse = Sender::new(50);
        for k in 0..5u32 {
            sparse.record(&l, 50 + k * 13, k % 3, k % 2);
        }
        for (name, mut want) in [("DENSE", dense), ("SPARSE", sparse)] {
            let v = value(name);
            assert_eq!(v[0], FIXED_WIDTH_VERSION);
            want.set_dirty(false);
            assert_eq!(Sender::decode(&l, &v).unwrap(), want, "{name}");
            assert!(Sender::decode(&l, &v[..v.len() - 1]).is_err());
        }
    }

    #[test]
    fn encodes_and_decodes_both_representations() {
        let l = layout();
        let mut s = Sender::new(50);
        s.record(&l, 50, 1, 1);
        let mut buf = Vec::new();
        s.encode(&l, &mut buf);
        let mut back = Sender::decode(&l, &buf).unwrap();
        back.set_dirty(true);
        assert_eq!(back, s);
        for i in 0..10 {
            s.record(&l, 60 + i, i, 3);
        }
        buf.clear();
        s.encode(&l, &mut buf);
        let mut back = Sender::decode(&l, &buf).unwrap();
        back.set_dirty(true);
        assert_eq!(back, s);
        let other = Layout::new(&[(10, 6)], 32, 300);
        assert!(Sender::decode(&other, &buf)
            .unwrap_err()
            .contains("configuration"));
        assert!(Sender::decode(&l, &buf[..buf.len() - 1]).is_err());
        assert!(Sender::decode(&l, &[]).is_err());
    }

    /// The same sender forced dense from its first event.
    fn dense_twin(first_t: u32) -> Sender {
        let mut s = Sender::new(first_t);
        s.track = Track::Dense {
            wm: first_t,
            dirty: true,
            d: Box::new(Dense::new(&layout())),
        };
        s
    }

    proptest! {
        #[test]
        fn sparse_and_dense_agree(
            start in 0u32..100_000,
            steps in proptest::collection::vec((0u32..4_000, 0u32..400, 0u32..6, 0u32..3), 1..40),
        ) {
            let l = layout();
            let mut a = Sender::new(start);
            let mut b = dense_twin(start);
            let mut t = start;
            for (fwd, back, r, c) in steps {
                t += fwd;
                let at = t.saturating_sub(back);
                let ra = a.record(&l, at, r, c);
                let rb = b.record(&l, at, r, c);
                prop_assert_eq!(ra, rb);
                for wi in 0..l.windows.len() {
                    prop_assert_eq!(a.counts(&l, wi), b.counts(&l, wi));
                    // Without the recipient pass: the same, distinct recipients aside.
                    let without = Counts { distinct_recipients: 0, ..a.counts(&l, wi) };
                    prop_assert_eq!(a.window(&l, wi, false), without);
                    prop_assert_eq!(b.window(&l, wi, false), without);
                    prop_assert_eq!(a.frees_in(&l, wi), b.frees_in(&l, wi));
                }
            }
        }
    }
}

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

use super::fingerprint::{fold32, FNV_OFFSET, FNV_PRIME};

/// Events kept inside the map entry.
pub const INLINE: usize = 2;
/// Events a sparse sender keeps (beyond `INLINE`, in a heap log).
pub const SPARSE: usize = 8;
/// Recent contents a sender remembers for "repeated content" (at least `SPARSE`, so
/// that a sparse sender, which remembers all its events, and a dense one agree).
pub const CONTENTS: usize = SPARSE;

const FIRST: u32 = 1 << 31;
const REPEAT: u32 = 1 << 30;
const FP_MASK: u32 = REPEAT - 1;
const EMPTY: u32 = u32::MAX;

const SENT: usize = 0;
const FIRST_CONTACT: usize = 1;
const REPEATED: usize = 2;

const VERSION: u8 = 1;

/// One window's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Win {
    /// Bucket width in seconds.
    pub width: u32,
    /// Buckets.
    pub n: u32,
    /// First word of this window's ring in a dense sender's ring storage (three words
    /// per two buckets, see [`Slab`]).
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
    hash: u32,
    slab: Slab,
}

/// Where a dense sender's parts are in its one allocation (offsets in `u32` words): the
/// running totals of each window, the content table (fingerprints, then when each was
/// last sent), the recipient table (its length, recipients, when each was last
/// messaged) and the bucket rings of the windows, one after the other, three words per
/// two buckets: each bucket's sent and first-contact counts (`u16` each) in one word,
/// then the two buckets' repeated counts (`u16` each) in the third. Keys and times are
/// separate arrays so that a look-up scans keys only; a bucket's two most used counts
/// are one word, so that an event adds to them with one addition and a bucket that
/// leaves the window is checked with one load, and a bucket's three counts stay within
/// twelve bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slab {
    content_keys: usize,
    content_last: usize,
    recipients_len: usize,
    recipient_keys: usize,
    recipient_last: usize,
    counts: usize,
    words: usize,
}

impl Slab {
    fn new(windows: usize, max_recipients: usize, ring_words: usize) -> Slab {
        let content_keys = windows * 3;
        let content_last = content_keys + CONTENTS;
        let recipients_len = content_last + CONTENTS;
        let recipient_keys = recipients_len + 1;
        let recipient_last = recipient_keys + max_recipients;
        let counts = recipient_last + max_recipients;
        Slab {
            content_keys,
            content_last,
            recipients_len,
            recipient_keys,
            recipient_last,
            counts,
            words: counts + ring_words,
        }
    }
}

impl Layout {
    /// A layout of `(width_s, buckets)` windows.
    pub fn new(windows: &[(u32, u32)], max_recipients: usize, lateness_s: u32) -> Self {
        let mut offset = 0;
        let mut ws = Vec::with_capacity(windows.len());
        let mut hash = FNV_OFFSET;
        for &(width, n) in windows {
            ws.push(Win {
                width: width.max(1),
                n: n.max(1),
                offset,
            });
            offset += 3 * (n.max(1) as usize).div_ceil(2);
            for x in [width, n] {
                hash = (hash ^ u64::from(x)).wrapping_mul(FNV_PRIME);
            }
        }
        hash = (hash ^ max_recipients as u64).wrapping_mul(FNV_PRIME);
        let max_recipients = max_recipients.clamp(SPARSE, 255);
        Layout {
            horizon_s: ws.iter().map(|w| w.width * w.n).max().unwrap_or(1),
            slab: Slab::new(ws.len(), max_recipients, offset),
            windows: ws,
            max_recipients,
            lateness_s,
            hash: fold32(hash),
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Ev {
    t: u32,
    recipient: u32,
    /// Content fingerprint (30 bits) with the FIRST and REPEAT flags on top.
    content: u32,
}

/// A dense sender's windows, recipients and contents in one allocation laid out by
/// [`Slab`]: ring buckets of all windows ([sent, first contact, repeated], saturating
/// `u16`s) with running totals per window, at most `max_recipients` (recipient, last
/// seen) and [`CONTENTS`] (content fingerprint, last seen; `EMPTY` = free slot).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dense(Box<[u32]>);

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
        d: Dense,
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
    /// `t >= start` (its bucket is one of the `n` up to `wm`'s). One division, instead
    /// of one per event looked at.
    fn start(&self, wm: u32) -> u32 {
        (bucket(wm, self) + 1).saturating_sub(self.n) * self.width
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
        match &self.track {
            Track::Inline { .. } => 0,
            Track::Log { ev, .. } => ev.capacity() * std::mem::size_of::<Ev>(),
            Track::Dense { d, .. } => d.0.len() * 4,
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
        let content = content & FP_MASK;
        let rec = Recorded {
            first_contact: !self.knows_recipient(layout, recipient),
            repeated: self.knows_content(layout, content),
        };
        let ev = Ev {
            t,
            recipient,
            content: content
                | if rec.first_contact { FIRST } else { 0 }
                | if rec.repeated { REPEAT } else { 0 },
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
                self.track = Track::Dense { wm, dirty: true, d };
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
                    let steps = (nb - ob).min(w.n);
                    if steps == 0 {
                        continue;
                    }
                    // Empty the buckets that leave the window.
                    for b in ob + 1..=ob + steps {
                        d.clear_bucket(layout, wi, w, (b % w.n) as usize);
                    }
                }
            }
        }
    }

    /// Whether the sender messaged recipient `r` within the horizon.
    fn knows_recipient(&self, layout: &Layout, r: u32) -> bool {
        self.knows(layout, r, |e| e.recipient, |d| d.recipients(layout))
    }

    /// Whether the sender sent content `c` within the horizon.
    fn knows_content(&self, layout: &Layout, c: u32) -> bool {
        self.knows(layout, c, |e| e.content & FP_MASK, |d| d.contents(layout))
    }

    /// Whether `x` was seen within the horizon: among a sparse sender's events (`of`
    /// reads it from one), or in a dense sender's table.
    fn knows(
        &self,
        layout: &Layout,
        x: u32,
        of: impl Fn(&Ev) -> u32,
        table: impl Fn(&Dense) -> (&[u32], &[u32]),
    ) -> bool {
        let wm = self.wm();
        match &self.track {
            Track::Dense { d, .. } => {
                let (keys, last) = table(d);
                keys.iter()
                    .position(|&y| y == x)
                    .is_some_and(|i| recent(last[i], wm, layout.horizon_s))
            }
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
        match &self.track {
            Track::Inline { .. } | Track::Log { .. } => {
                let evs = self.track.events().unwrap_or_default();
                let start = w.start(self.wm());
                let mut c = Counts::default();
                for (i, e) in evs.iter().enumerate() {
                    if e.t < start {
                        continue;
                    }
                    c.sent += 1;
                    c.first_contact += u32::from(e.content & FIRST != 0);
                    c.repeated += u32::from(e.content & REPEAT != 0);
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
                let start = w.start(self.wm());
                let [sent, first_contact, repeated] = d.totals(wi);
                Counts {
                    sent,
                    first_contact,
                    repeated,
                    distinct_recipients: if recipients {
                        d.recipients(layout)
                            .1
                            .iter()
                            .map(|&last| u32::from(last >= start))
                            .sum()
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
                // Walk the ring from the oldest bucket in the window.
                let first = now.saturating_sub(w.n - 1);
                (first..=now)
                    .find(|b| d.bucket(Dense::bucket_at(layout, w, (b % w.n) as usize))[SENT] > 0)
            }
        };
        oldest.map_or(0, |b| ((b + w.n) * w.width).saturating_sub(self.wm()))
    }

    /// The changelog value.
    pub fn encode(&self, layout: &Layout, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&layout.hash.to_le_bytes());
        out.extend_from_slice(&self.wm().to_le_bytes());
        match &self.track {
            Track::Inline { .. } | Track::Log { .. } => {
                let events = self.track.events().unwrap_or_default();
                out.push(0);
                out.push(events.len() as u8);
                for e in events {
                    for x in [e.t, e.recipient, e.content] {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                }
            }
            Track::Dense { d, .. } => {
                out.push(1);
                for w in &layout.windows {
                    for i in 0..w.n as usize {
                        for x in d.bucket(Dense::bucket_at(layout, w, i)) {
                            out.extend_from_slice(&(x as u16).to_le_bytes());
                        }
                    }
                }
                let (rk, rl) = d.recipients(layout);
                let (ck, cl) = d.contents(layout);
                out.push(rk.len() as u8);
                for (r, last) in rk.iter().zip(rl).chain(ck.iter().zip(cl)) {
                    out.extend_from_slice(&r.to_le_bytes());
                    out.extend_from_slice(&last.to_le_bytes());
                }
            }
        }
    }

    /// Reads a changelog value written by [`Sender::encode`] with the same layout.
    pub fn decode(layout: &Layout, mut b: &[u8]) -> Result<Sender, String> {
        fn u8_(b: &mut &[u8]) -> Result<u8, String> {
            let (x, rest) = b.split_first().ok_or("value is truncated")?;
            *b = rest;
            Ok(*x)
        }
        fn u16_(b: &mut &[u8]) -> Result<u16, String> {
            let (x, rest) = b.split_at_checked(2).ok_or("value is truncated")?;
            *b = rest;
            Ok(u16::from_le_bytes([x[0], x[1]]))
        }
        fn u32_(b: &mut &[u8]) -> Result<u32, String> {
            let (x, rest) = b.split_at_checked(4).ok_or("value is truncated")?;
            *b = rest;
            Ok(u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        }
        let version = u8_(&mut b)?;
        if version != VERSION {
            return Err(format!(
                "state version {version}, this build reads {VERSION}"
            ));
        }
        if u32_(&mut b)? != layout.hash {
            return Err("written with other velocity windows (configuration changed)".into());
        }
        let wm = u32_(&mut b)?;
        let track = match u8_(&mut b)? {
            0 => {
                let len = u8_(&mut b)?;
                if usize::from(len) > SPARSE {
                    return Err(format!("{len} sparse events, at most {SPARSE}"));
                }
                let mut ev = Vec::with_capacity(usize::from(len));
                for _ in 0..len {
                    ev.push(Ev {
                        t: u32_(&mut b)?,
                        recipient: u32_(&mut b)?,
                        content: u32_(&mut b)?,
                    });
                }
                Track::sparse(&ev, wm, false)
            }
            1 => {
                let mut d = Dense::new(layout);
                for (wi, w) in layout.windows.iter().enumerate() {
                    for i in 0..w.n as usize {
                        let mut counts = [0; 3];
                        for (m, x) in counts.iter_mut().enumerate() {
                            *x = u32::from(u16_(&mut b)?);
                            d.0[wi * 3 + m] += *x;
                        }
                        d.set_bucket(Dense::bucket_at(layout, w, i), counts);
                    }
                }
                let n = usize::from(u8_(&mut b)?);
                if n > layout.max_recipients {
                    return Err(format!("{n} recipients, at most {}", layout.max_recipients));
                }
                let sl = &layout.slab;
                d.0[sl.recipients_len] = n as u32;
                for i in 0..n {
                    d.0[sl.recipient_keys + i] = u32_(&mut b)?;
                    d.0[sl.recipient_last + i] = u32_(&mut b)?;
                }
                for i in 0..CONTENTS {
                    d.0[sl.content_keys + i] = u32_(&mut b)?;
                    d.0[sl.content_last + i] = u32_(&mut b)?;
                }
                Track::Dense {
                    wm,
                    dirty: false,
                    d,
                }
            }
            tag => return Err(format!("unknown representation {tag}")),
        };
        if !b.is_empty() {
            return Err(format!("{} trailing bytes", b.len()));
        }
        Ok(Sender { track })
    }
}

/// Where a ring bucket's counts are (three words per two buckets, see [`Slab`]): the
/// word of its sent and first-contact counts, and the word and bit offset of its repeated
/// count.
#[derive(Debug, Clone, Copy)]
struct BucketAt {
    both: usize,
    repeated: usize,
    shift: usize,
}

impl Dense {
    fn new(layout: &Layout) -> Self {
        let sl = &layout.slab;
        let mut words = vec![0u32; sl.words].into_boxed_slice();
        words[sl.content_keys..sl.content_keys + CONTENTS].fill(EMPTY);
        Dense(words)
    }

    /// Window `wi`'s running totals.
    fn totals(&self, wi: usize) -> [u32; 3] {
        [self.0[wi * 3], self.0[wi * 3 + 1], self.0[wi * 3 + 2]]
    }

    /// Where ring bucket `i` of window `w` keeps its counts.
    fn bucket_at(layout: &Layout, w: &Win, i: usize) -> BucketAt {
        let pair = layout.slab.counts + w.offset + 3 * (i / 2);
        BucketAt {
            both: pair + (i & 1),
            repeated: pair + 2,
            shift: (i & 1) * 16,
        }
    }

    /// A ring bucket's counts: [sent, first contact, repeated].
    fn bucket(&self, at: BucketAt) -> [u32; 3] {
        let both = self.0[at.both];
        [
            both & 0xFFFF,
            both >> 16,
            (self.0[at.repeated] >> at.shift) & 0xFFFF,
        ]
    }

    /// Sets a ring bucket's counts (each below 2^16).
    fn set_bucket(&mut self, at: BucketAt, [sent, first, repeated]: [u32; 3]) {
        self.0[at.both] = sent | (first << 16);
        let word = &mut self.0[at.repeated];
        *word = (*word & !(0xFFFF << at.shift)) | (repeated << at.shift);
    }

    /// Empties ring bucket `i` of window `wi` (`w`), taking its counts off the window's
    /// totals.
    fn clear_bucket(&mut self, layout: &Layout, wi: usize, w: &Win, i: usize) {
        let at = Self::bucket_at(layout, w, i);
        let counts = self.bucket(at);
        if counts != [0; 3] {
            for (total, x) in self.0[wi * 3..wi * 3 + 3].iter_mut().zip(counts) {
                *total -= x;
            }
            self.set_bucket(at, [0; 3]);
        }
    }

    /// The recipient table: recipients and when each was last messaged.
    fn recipients(&self, layout: &Layout) -> (&[u32], &[u32]) {
        let sl = &layout.slab;
        let n = self.0[sl.recipients_len] as usize;
        (
            &self.0[sl.recipient_keys..][..n],
            &self.0[sl.recipient_last..][..n],
        )
    }

    /// The content table: fingerprints (`EMPTY` = free) and when each was last sent.
    fn contents(&self, layout: &Layout) -> (&[u32], &[u32]) {
        let sl = &layout.slab;
        (
            &self.0[sl.content_keys..][..CONTENTS],
            &self.0[sl.content_last..][..CONTENTS],
        )
    }

    /// Adds one event (already flagged) at `e.t <= wm`.
    fn add(&mut self, layout: &Layout, wm: u32, e: Ev) {
        let flags = [true, e.content & FIRST != 0, e.content & REPEAT != 0];
        for (wi, w) in layout.windows.iter().enumerate() {
            if e.t < w.start(wm) {
                continue;
            }
            let at = Self::bucket_at(layout, w, (bucket(e.t, w) % w.n) as usize);
            let counts = self.bucket(at);
            // Each count saturates on its own; the others still count. One addition per
            // word.
            let add: [u32; 3] = std::array::from_fn(|m| u32::from(flags[m] && counts[m] < 0xFFFF));
            self.0[at.both] += add[SENT] + (add[FIRST_CONTACT] << 16);
            self.0[at.repeated] += add[REPEATED] << at.shift;
            for m in [SENT, FIRST_CONTACT, REPEATED] {
                self.0[wi * 3 + m] += add[m];
            }
        }
        let sl = &layout.slab;
        let n = self.0[sl.recipients_len] as usize;
        let (keys, last) = self.0[sl.recipient_keys..].split_at_mut(layout.max_recipients);
        if remember(
            &mut keys[..n],
            &mut last[..n],
            layout.max_recipients,
            e.recipient,
            e.t,
        ) {
            (keys[n], last[n]) = (e.recipient, e.t);
            self.0[sl.recipients_len] += 1;
        }
        // The content table fills from the front and never frees a slot: its entries are
        // the ones before the first `EMPTY`.
        let c = e.content & FP_MASK;
        let (keys, last) = self.0[sl.content_keys..].split_at_mut(CONTENTS);
        let n = keys.iter().position(|x| *x == EMPTY).unwrap_or(CONTENTS);
        if remember(&mut keys[..n], &mut last[..n], CONTENTS, c, e.t) {
            (keys[n], last[n]) = (c, e.t);
        }
    }
}

/// Notes `key` seen at `t` in a table (`keys`, `last` seen) of at most `cap` entries: a
/// full table forgets its least recently seen entry. Returns `true` when `key` is new
/// and the table has room: the caller appends it.
fn remember(keys: &mut [u32], last: &mut [u32], cap: usize, key: u32, t: u32) -> bool {
    if let Some(i) = keys.iter().position(|x| *x == key) {
        last[i] = last[i].max(t);
        false
    } else if keys.len() < cap {
        true
    } else {
        if let Some(i) = (0..keys.len()).min_by_key(|&i| last[i]) {
            (keys[i], last[i]) = (key, t);
        }
        false
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

    /// The changelog value of a dense sender is what earlier builds wrote (the hash of the
    /// bytes below was taken with the build before the rings' counts were packed
    /// differently): restoring state written by the previous release must keep working.
    #[test]
    fn the_dense_encoding_does_not_change_across_versions() {
        let l = layout();
        let mut s = Sender::new(1_000);
        for k in 0..400u32 {
            s.record(&l, 1_000 + k * 7, k % 45, k % 11);
        }
        assert!(s.is_dense());
        let mut v = Vec::new();
        s.encode(&l, &mut v);
        let fnv = v.iter().fold(FNV_OFFSET, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
        });
        assert_eq!((v.len(), fnv), (583, 0x08c2_0683_ea5e_08d4));
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
            d: Dense::new(&layout()),
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

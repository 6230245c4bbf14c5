//! Property test: random single-threaded operation sequences on a heap broadcast
//! log, lossless and lossy, checked against a model that lays the records out in
//! bytes as the log does (a record of `16 + 8 * len` bytes rounded up to 16, a wrap
//! marker where a record does not fit before the end, the pending header after the
//! last record), keeps the publisher's claim and `oldest` (the oldest record it
//! vouches for), and the bytes the publisher actually wrote.
//!
//! Small capacities make wrap-around (and, lossy, lapping) frequent. Subscribers
//! join at `Start::Next` or `Start::Oldest` at any point and leave; they receive
//! with `try_recv_into` and in place with `try_recv` (the guard dropped at once, or
//! held while the publisher goes on); reservations are filled or not, truncated,
//! committed or dropped. Checked after every operation:
//! - every batch a subscriber receives is the next one published from its start
//!   point, minus exactly the batches it was told it missed (`Lagged` counts), with
//!   its length and values intact; at the end, after the publisher drops and every
//!   subscriber drains, start + received + missed = published;
//! - lossless: `Lagged` never happens, and `try_send`/`try_reserve` are `Full`
//!   exactly when the slowest subscriber is a log behind (the record and the
//!   pending header after it would reach past its position plus the log); with no
//!   subscriber, never `Full`;
//! - lossy: the publisher is never `Full`. A subscriber must be told `Lagged`, with
//!   the exact count, and then get the oldest batch the log holds, when the
//!   publisher's claim (announced a sixteenth of the log at a time) passed its
//!   record or a byte of its record was overwritten. `try_recv` copies and checks
//!   first, so a held guard stays intact whatever the publisher does; a
//!   reservation is staged and writes the log only at commit;
//! - the reports: `published`, `subscribers`, `behind`, `missed`.
//!
//! Both lossy regressions saved in `model_broadcast.proptest-regressions` (a
//! claim lowered after a filled reservation was dropped or truncated) pass since
//! the claim only grows; `tests/broadcast_lossy_claim.rs` keeps them as plain
//! tests.

use proptest::prelude::*;
use shmbatch::broadcast::{self, Policy, Publisher, Start, Subscriber, TryRecvError};
use shmbatch::{Options, TrySendError};

/// Record header and alignment unit for `u64` elements.
const UNIT: u64 = 16;

#[derive(Debug, Clone)]
enum Op {
    /// `try_send` of a batch; lengths are taken modulo `max_batch + 2`, so that
    /// `max_batch + 1` is too large.
    Send(usize),
    /// `try_reserve(len)`, filled if `write` (always if `commit`), truncated to
    /// `keep`, committed or dropped.
    Reserve {
        len: usize,
        keep: usize,
        write: bool,
        commit: bool,
    },
    Subscribe {
        oldest: bool,
    },
    Unsubscribe(usize),
    RecvInto(usize),
    /// `try_recv`, the guard dropped at once.
    Recv(usize),
    /// `try_recv`, the guard held while the publisher tries these sends.
    RecvHold {
        h: usize,
        sends: Vec<usize>,
    },
    DropPublisher,
}

fn op() -> impl Strategy<Value = Op> {
    let len = 0..16usize;
    let h = 0..6usize;
    prop_oneof![
        50 => len.clone().prop_map(Op::Send),
        15 => (len.clone(), len.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(len, keep, write, commit)| Op::Reserve { len, keep, write, commit }),
        8 => any::<bool>().prop_map(|oldest| Op::Subscribe { oldest }),
        4 => h.clone().prop_map(Op::Unsubscribe),
        25 => h.clone().prop_map(Op::RecvInto),
        20 => h.clone().prop_map(Op::Recv),
        10 => (h, prop::collection::vec(len, 0..4))
            .prop_map(|(h, sends)| Op::RecvHold { h, sends }),
        // Rare: the rest of the case only drains.
        1 => Just(Op::DropPublisher),
    ]
}

fn record(len: usize) -> u64 {
    UNIT + (8 * len as u64).next_multiple_of(UNIT)
}

/// One thing laid out in the log: a record (`data`) or a wrap marker (`None`),
/// with the number of the batch it holds or stands for.
#[derive(Debug, Clone)]
struct Item {
    pos: u64,
    size: u64,
    batch: u64,
    data: Option<Vec<u64>>,
}

/// The publisher's side of the log.
#[derive(Debug)]
struct Log {
    lossy: bool,
    ring: u64,
    max: usize,
    /// Bytes laid out: the position of the pending header.
    tail: u64,
    /// The publisher's claim: lossless, the slowest subscriber's position plus
    /// the log (with none, as lossy); lossy, past the end of the last claim, in
    /// sixteenths of the log (`reach`). It never goes down.
    claim: u64,
    /// Lossy: the largest claim so far. No byte at or past it has been written.
    claim_max: u64,
    /// The bytes written, as intervals of positions (headers, elements, the
    /// pending header; a reservation's elements whether committed or not).
    writes: Vec<(u64, u64)>,
    oldest: u64,
    published: u64,
    closed: bool,
    /// Everything laid out, contiguous from 0 to `tail`.
    items: Vec<Item>,
}

/// A subscriber as the model sees it.
#[derive(Debug, Clone)]
struct Sub {
    /// Position of its next record (or of the wrap marker before it).
    pos: u64,
    /// Number of its next batch.
    seq: u64,
    /// The batch it started at.
    start: u64,
    received: u64,
    missed: u64,
    /// The `Lagged` its next call reports (an in-place batch overwritten while held).
    pending: Option<u64>,
}

/// What a receive may return.
#[derive(Debug)]
enum Want {
    Batch(Item),
    Lagged(u64),
    /// Lossy, at a wrap marker whose bytes may have been overwritten while the
    /// record after it is intact: the marker may still read as it was written
    /// (untouched padding of the new lap), and then the batch is delivered
    /// (intact), otherwise the subscriber catches up.
    BatchOrLagged(Item, u64),
    Empty,
    Disconnected,
}

impl Log {
    fn new(lossy: bool, capacity: usize, max: Option<usize>) -> (Log, usize) {
        let half = (capacity.div_ceil(2) as u64 * 8).next_multiple_of(UNIT);
        let most = (half / 8) as usize;
        let max = max.map_or(most, |m| 1 + m % most);
        let ring = 2 * (UNIT + half);
        let log = Log {
            lossy,
            ring,
            max,
            tail: 0,
            claim: 0,
            claim_max: 0,
            writes: Vec::new(),
            oldest: 0,
            published: 0,
            closed: false,
            items: Vec::new(),
        };
        (log, max)
    }

    /// Whether a record of `len` wraps, and the end of its claim (the pending
    /// header after it included).
    fn place(&self, len: usize) -> (bool, u64) {
        let off = self.tail % self.ring;
        let rec = record(len);
        if off + rec <= self.ring {
            (false, self.tail + rec + UNIT)
        } else {
            (true, self.tail + self.ring - off + rec + UNIT)
        }
    }

    fn item_at(&self, pos: u64) -> &Item {
        let i = self
            .items
            .binary_search_by_key(&pos, |it| it.pos)
            .unwrap_or_else(|_| panic!("model: no item at {pos}"));
        &self.items[i]
    }

    /// The number of the batch at boundary `pos`.
    fn batch_at(&self, pos: u64) -> u64 {
        if pos == self.tail {
            self.published
        } else {
            self.item_at(pos).batch
        }
    }

    /// The record at boundary `pos < tail`, past a wrap marker.
    fn record_at(&self, pos: u64) -> &Item {
        let it = self.item_at(pos);
        if it.data.is_some() {
            it
        } else {
            self.item_at(pos + it.size)
        }
    }

    fn advance_oldest(&mut self, to: u64) {
        let to = to.min(self.tail);
        while self.oldest < to {
            self.oldest += self.item_at(self.oldest).size;
        }
    }

    /// Whether a lossless claim for `len` finds room with these subscribers,
    /// stated directly: no subscriber's position plus the log is short of the end.
    fn room_for(&self, len: usize, subs: &[Sub]) -> bool {
        let (_, end) = self.place(len);
        self.lossy || subs.iter().all(|s| end <= s.pos + self.ring)
    }

    /// Where the record of a claim for `len` goes (past a wrap marker).
    fn record_pos(&self, len: usize) -> u64 {
        match self.place(len) {
            (false, _) => self.tail,
            (true, _) => self.tail + self.ring - self.tail % self.ring,
        }
    }

    /// The elements of a claim for `len` are written (`values` of them).
    fn write_elems(&mut self, len: usize, values: usize) {
        let at = self.record_pos(len) + UNIT;
        self.writes.push((at, at + 8 * values as u64));
    }

    /// Whether a byte in `[lo, hi)` has been written.
    fn written(&self, lo: u64, hi: u64) -> bool {
        self.writes.iter().any(|&(a, b)| a < hi && lo < b && a < b)
    }

    /// How far the publisher announces a claim that must reach `end`: the next
    /// sixteenth of the log, at most a log past what is laid out.
    fn reach(&self, end: u64) -> u64 {
        let chunk = (self.ring / 16).next_multiple_of(UNIT);
        end.next_multiple_of(chunk)
            .min(self.tail + self.ring)
            .max(end)
    }

    /// Claim room for `len` as the publisher does; false: `Full`.
    fn claim(&mut self, len: usize, subs: &[Sub]) -> bool {
        let (_, end) = self.place(len);
        if end <= self.claim {
            return true;
        }
        let limit = if self.lossy {
            self.reach(end)
        } else {
            let min = subs.iter().map(|s| s.pos).min();
            let limit = min
                .map_or_else(|| self.reach(end), |m| m + self.ring)
                .max(self.claim);
            if limit < end {
                return false;
            }
            limit
        };
        if limit > self.oldest + self.ring {
            self.advance_oldest(limit - self.ring);
        }
        self.claim = limit;
        self.claim_max = self.claim_max.max(limit);
        true
    }

    /// Publish `data` into a claim made for `reserved` elements (whose elements
    /// are written): the headers are written.
    fn commit(&mut self, reserved: usize, data: Vec<u64>) {
        let (wraps, _) = self.place(reserved);
        let at = self.record_pos(reserved);
        let size = record(data.len());
        self.writes.push((at, at + UNIT));
        self.writes.push((at + size, at + size + UNIT));
        if wraps {
            self.writes.push((self.tail, self.tail + UNIT));
            let size = self.ring - self.tail % self.ring;
            self.items.push(Item {
                pos: self.tail,
                size,
                batch: self.published,
                data: None,
            });
            self.tail += size;
        }
        let size = record(data.len());
        self.items.push(Item {
            pos: self.tail,
            size,
            batch: self.published,
            data: Some(data),
        });
        self.tail += size;
        self.published += 1;
    }

    fn join(&self, start: Start) -> Sub {
        let pos = match start {
            Start::Next => self.tail,
            Start::Oldest => self.oldest,
        };
        let seq = self.batch_at(pos);
        Sub {
            pos,
            seq,
            start: seq,
            received: 0,
            missed: 0,
            pending: None,
        }
    }

    /// Lossy: the subscriber moves to the oldest batch; what it missed.
    fn catch_up(&self, s: &mut Sub) -> u64 {
        assert!(
            self.oldest >= s.pos,
            "model: oldest behind a lapped subscriber"
        );
        let n = self.batch_at(self.oldest);
        let missed = n - s.seq;
        s.pos = self.oldest;
        s.seq = n;
        s.missed += missed;
        missed
    }

    /// Whether the record `rec` must read as overwritten: the publisher says so,
    /// or a byte of it was overwritten (lossy).
    fn must_lag(&self, rec: &Item) -> bool {
        let lo = rec.pos + self.ring;
        self.claim > lo || self.written(lo, lo + rec.size)
    }

    /// Whether the record at `pos` may read as overwritten: a claim that reached
    /// it was made, its bytes written or not.
    fn may_lag(&self, pos: u64) -> bool {
        self.claim.max(self.claim_max) > pos + self.ring
    }

    /// What the next receive of `s` returns (the model unchanged).
    fn want(&self, s: &Sub) -> Want {
        if let Some(m) = s.pending {
            return Want::Lagged(m);
        }
        if s.pos == self.tail {
            return if self.closed {
                Want::Disconnected
            } else {
                Want::Empty
            };
        }
        let rec = self.record_at(s.pos).clone();
        assert_eq!(rec.batch, s.seq, "model: subscriber out of step");
        // At a wrap marker: whether its header was overwritten.
        let marker = rec.pos != s.pos && self.written(s.pos + self.ring, s.pos + self.ring + UNIT);
        if !self.may_lag(s.pos) && !marker && !self.must_lag(&rec) {
            return Want::Batch(rec);
        }
        assert!(self.lossy, "model: lossless claim passed a subscriber");
        let mut t = s.clone();
        let missed = self.catch_up(&mut t);
        if self.must_lag(&rec) {
            Want::Lagged(missed)
        } else {
            Want::BatchOrLagged(rec, missed)
        }
    }

    /// The receive of `s` returned batch `got` (its length and values).
    fn delivered(&self, s: &mut Sub, got: &[u64]) -> Result<(), TestCaseError> {
        let want = self.want(s);
        let rec = match want {
            Want::Batch(rec) | Want::BatchOrLagged(rec, _) => rec,
            w => return Err(TestCaseError::fail(format!("got {got:?}, want {w:?}"))),
        };
        prop_assert_eq!(got, rec.data.as_deref().unwrap(), "batch {}", rec.batch);
        s.pos = rec.pos + rec.size;
        s.seq += 1;
        s.received += 1;
        Ok(())
    }

    /// The receive of `s` returned `Lagged { missed }`.
    fn lagged(&self, s: &mut Sub, missed: u64) -> Result<(), TestCaseError> {
        let want = self.want(s);
        match want {
            Want::Lagged(m) | Want::BatchOrLagged(_, m) => prop_assert_eq!(missed, m),
            w => {
                return Err(TestCaseError::fail(format!(
                    "got Lagged({missed}), want {w:?}"
                )))
            }
        }
        if s.pending.take().is_none() {
            prop_assert_eq!(self.catch_up(s), missed);
        }
        Ok(())
    }

    /// The receive of `s` returned another error.
    fn failed(&self, s: &Sub, e: TryRecvError) -> Result<(), TestCaseError> {
        let want = self.want(s);
        match (e, &want) {
            (TryRecvError::Empty, Want::Empty) => Ok(()),
            (TryRecvError::Disconnected, Want::Disconnected) => Ok(()),
            _ => Err(TestCaseError::fail(format!("got {e:?}, want {want:?}"))),
        }
    }
}

/// The model's verdict on a send that the log answered with `r`.
fn check_send(
    m: &mut Log,
    subs: &[Sub],
    len: usize,
    r: Result<(), TrySendError>,
) -> Result<bool, TestCaseError> {
    if len > m.max {
        prop_assert_eq!(r, Err(TrySendError::TooLarge { len, max: m.max }));
        return Ok(false);
    }
    let room = m.room_for(len, subs);
    let claimed = m.claim(len, subs);
    prop_assert_eq!(room, claimed, "model: the two statements of room disagree");
    if !m.lossy && subs.is_empty() {
        prop_assert!(claimed, "lossless with no subscriber was full");
    }
    if claimed {
        prop_assert_eq!(r, Ok(()));
    } else {
        prop_assert_eq!(r, Err(TrySendError::Full));
    }
    Ok(claimed)
}

struct Values(u64);
impl Values {
    fn next(&mut self, len: usize) -> Vec<u64> {
        (0..len)
            .map(|_| {
                self.0 += 1;
                self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            })
            .collect()
    }
}

fn send(
    tx: &mut Publisher<u64>,
    m: &mut Log,
    subs: &[Sub],
    values: &mut Values,
    len: usize,
) -> Result<(), TestCaseError> {
    let len = len % (m.max + 2);
    let batch = values.next(len);
    let r = tx.try_send(&batch);
    if check_send(m, subs, len, r)? {
        m.write_elems(len, len);
        m.commit(len, batch);
    }
    Ok(())
}

fn recv_into(
    rx: &mut Subscriber<u64>,
    m: &Log,
    s: &mut Sub,
    buf: &mut Vec<u64>,
) -> Result<bool, TestCaseError> {
    // On `Lagged`, `out` is left empty if the call copied (a torn batch is
    // discarded) and untouched otherwise.
    buf.clear();
    match rx.try_recv_into(buf) {
        Ok(n) => {
            prop_assert_eq!(n, buf.len());
            m.delivered(s, buf)?;
        }
        Err(TryRecvError::Lagged { missed }) => {
            prop_assert!(buf.is_empty());
            m.lagged(s, missed)?;
        }
        Err(e) => {
            m.failed(s, e)?;
            return Ok(false);
        }
    }
    Ok(true)
}

fn check_reports(
    tx: Option<&Publisher<u64>>,
    rxs: &[Subscriber<u64>],
    m: &Log,
    subs: &[Sub],
) -> Result<(), TestCaseError> {
    if let Some(tx) = tx {
        prop_assert_eq!(tx.published(), m.published);
        prop_assert_eq!(tx.subscribers(), subs.len());
    }
    for (rx, s) in rxs.iter().zip(subs) {
        prop_assert_eq!(rx.behind(), m.published - s.seq);
        prop_assert_eq!(rx.missed(), s.missed);
        prop_assert!(!rx.is_evicted());
        prop_assert_eq!(rx.is_disconnected(), m.closed);
        if !m.lossy {
            prop_assert_eq!(s.missed, 0, "lossless subscriber lagged");
        }
    }
    Ok(())
}

fn run(
    lossy: bool,
    capacity: usize,
    max_batch: Option<usize>,
    first: bool,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let (mut m, max) = Log::new(lossy, capacity, max_batch);
    let mut opts = Options::new().max_batch(max);
    if lossy {
        opts = opts.broadcast_policy(Policy::Lossy);
    }
    let start = if first { Start::Oldest } else { Start::Next };
    let (tx, rx) = broadcast::channel_with::<u64>(capacity, &opts.start(start)).unwrap();
    prop_assert_eq!(tx.max_batch(), max);
    let mut tx = Some(tx);
    let mut rxs = vec![rx];
    let mut subs = vec![m.join(start)];
    let mut values = Values(0);
    let mut buf = Vec::new();

    for op in ops {
        let n = rxs.len();
        match op {
            Op::Send(len) => {
                let Some(tx) = tx.as_mut() else { continue };
                send(tx, &mut m, &subs, &mut values, len)?;
            }
            Op::Reserve {
                len,
                keep,
                write,
                commit,
            } => {
                let Some(tx) = tx.as_mut() else { continue };
                let len = len % (m.max + 2);
                let batch = values.next(len);
                let r = tx.try_reserve(len);
                let verdict = r.as_ref().map(drop).map_err(|e| *e);
                if !check_send(&mut m, &subs, len, verdict)? {
                    continue;
                }
                let mut r = r.unwrap();
                prop_assert_eq!(r.len(), len);
                if write || commit {
                    r.copy_from_slice(&batch);
                    if !m.lossy {
                        // In place; a lossy reservation is staged and copied in
                        // at commit (what it keeps, nothing if dropped).
                        m.write_elems(len, len);
                    }
                }
                r.truncate(keep);
                let kept = len.min(keep);
                prop_assert_eq!(r.len(), kept);
                if commit {
                    r.commit();
                    if m.lossy {
                        m.write_elems(len, kept);
                    }
                    m.commit(len, batch[..kept].to_vec());
                } else {
                    drop(r);
                }
            }
            Op::Subscribe { oldest } => {
                let Some(tx) = tx.as_ref() else { continue };
                let start = if oldest { Start::Oldest } else { Start::Next };
                rxs.push(tx.subscribe(start).unwrap());
                subs.push(m.join(start));
            }
            Op::Unsubscribe(h) => {
                if n > 0 {
                    drop(rxs.swap_remove(h % n));
                    subs.swap_remove(h % n);
                }
            }
            Op::RecvInto(h) => {
                if n > 0 {
                    recv_into(&mut rxs[h % n], &m, &mut subs[h % n], &mut buf)?;
                }
            }
            Op::Recv(h) | Op::RecvHold { h, .. } if n > 0 && m.lossy => {
                // Lossy: `try_recv` copies and checks first, so the guard holds a
                // copy and the subscriber has moved on, whatever the publisher
                // does while the guard is held.
                let sends = match op {
                    Op::RecvHold { sends, .. } => sends,
                    _ => Vec::new(),
                };
                let i = h % n;
                match rxs[i].try_recv() {
                    Ok(b) => {
                        prop_assert!(b.is_intact());
                        m.delivered(&mut subs[i], &b)?;
                        if let Some(tx) = tx.as_mut() {
                            for len in sends {
                                send(tx, &mut m, &subs, &mut values, len)?;
                            }
                        }
                        prop_assert!(b.is_intact());
                    }
                    Err(TryRecvError::Lagged { missed }) => m.lagged(&mut subs[i], missed)?,
                    Err(e) => m.failed(&subs[i], e)?,
                }
            }
            Op::Recv(h) | Op::RecvHold { h, .. } if n > 0 => {
                let sends = match op {
                    Op::RecvHold { sends, .. } => sends,
                    _ => Vec::new(),
                };
                let i = h % n;
                let want = m.want(&subs[i]);
                let b = match rxs[i].try_recv() {
                    Ok(b) => b,
                    Err(TryRecvError::Lagged { missed }) => {
                        m.lagged(&mut subs[i], missed)?;
                        continue;
                    }
                    Err(e) => {
                        m.failed(&subs[i], e)?;
                        continue;
                    }
                };
                let rec = match want {
                    Want::Batch(rec) => {
                        prop_assert!(b.is_intact(), "an intact batch reads as overwritten");
                        prop_assert_eq!(&*b, rec.data.as_deref().unwrap());
                        Some(rec)
                    }
                    Want::BatchOrLagged(rec, _) => b.is_intact().then(|| {
                        assert_eq!(&*b, rec.data.as_deref().unwrap());
                        rec
                    }),
                    // Lapped before the call, yet the header at its position
                    // still read as its batch (untouched bytes of the new lap):
                    // the guard must say it is not intact.
                    Want::Lagged(_) if subs[i].pending.is_none() => {
                        prop_assert!(!b.is_intact(), "a lapped batch reads as intact");
                        None
                    }
                    w => {
                        return Err(TestCaseError::fail(format!(
                            "got a batch of {}, want {w:?}",
                            b.len()
                        )))
                    }
                };
                // The publisher goes on while the guard is held; the held batch
                // still holds back a lossless publisher.
                if let Some(tx) = tx.as_mut() {
                    for len in sends {
                        send(tx, &mut m, &subs, &mut values, len)?;
                    }
                }
                let intact = b.is_intact();
                let s = &mut subs[i];
                match rec {
                    Some(rec) if intact => {
                        prop_assert!(
                            !m.must_lag(&rec),
                            "an overwritten held batch reads as intact"
                        );
                        prop_assert_eq!(&*b, rec.data.as_deref().unwrap());
                        drop(b);
                        s.pos = rec.pos + rec.size;
                        s.seq += 1;
                        s.received += 1;
                    }
                    rec => {
                        prop_assert!(m.lossy, "lossless held batch overwritten");
                        prop_assert!(!intact, "a lapped batch reads as intact");
                        if let Some(rec) = rec {
                            prop_assert!(
                                m.may_lag(rec.pos),
                                "an intact held batch reads as overwritten"
                            );
                        }
                        drop(b);
                        let missed = m.catch_up(s);
                        s.pending = Some(missed);
                    }
                }
            }
            Op::Recv(_) | Op::RecvHold { .. } => {}
            Op::DropPublisher => {
                if tx.take().is_some() {
                    m.closed = true;
                }
            }
        }
        check_reports(tx.as_ref(), &rxs, &m, &subs)?;
    }

    // The publisher leaves; every subscriber drains, and has seen everything from
    // its start but what it was told it missed.
    drop(tx);
    m.closed = true;
    for (rx, s) in rxs.iter_mut().zip(&mut subs) {
        let mut guard = 0;
        while recv_into(rx, &m, s, &mut buf)? {
            guard += 1;
            prop_assert!(guard < 10_000, "drain never ended");
        }
        prop_assert_eq!(
            s.start + s.received + s.missed,
            m.published,
            "start {} + received {} + missed {} != published",
            s.start,
            s.received,
            s.missed
        );
        prop_assert_eq!(rx.try_recv_into(&mut buf), Err(TryRecvError::Disconnected));
    }
    Ok(())
}

/// 1024 cases (4 under miri), or `PROPTEST_CASES`.
fn cases() -> u32 {
    let default = if cfg!(miri) { 4 } else { 1024 };
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn lossless_log_matches_the_model(
        capacity in 1usize..24,
        max_batch in prop::option::of(0usize..16),
        first in any::<bool>(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        run(false, capacity, max_batch, first, ops)?;
    }

    #[test]
    fn lossy_log_matches_the_model(
        capacity in 1usize..24,
        max_batch in prop::option::of(0usize..16),
        first in any::<bool>(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        run(true, capacity, max_batch, first, ops)?;
    }
}

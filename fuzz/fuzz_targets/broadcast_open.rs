//! Hostile broadcast segments: a real segment is created (a publisher, lossless
//! or lossy, with eviction or without), and the input interleaves damage to its
//! bytes — the header, the publisher's line, the shared line, the subscriber
//! entries, the log — with subscribers opening and joining, receiving (copies and
//! in place, with the guard held while the publisher goes on), the publisher
//! sending and reserving, inspection and drops. The damage is written through the
//! file, so the live handles' mappings see it, as they would a hostile peer's
//! writes. Every outcome must be a value or an error: never a panic, an
//! out-of-bounds access or a hang (only `try_` and zero-timeout calls).
#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shmbatch::broadcast::{Policy, Publisher, Start, Subscriber};
use shmbatch::Options;

const IDENTITY: u64 = 256;
const LINE: u64 = 128;
/// The control block: the publisher's line, the shared line, then the entries.
const CONTROL: u64 = IDENTITY;
const PENDING: u64 = 1 << 63;

/// Where a patch lands.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Area {
    Identity,
    Publisher,
    Shared,
    /// One of the first 8 subscriber entries (where subscribers are).
    Entry(u8),
    Log,
    Anywhere,
}

/// What a patched word becomes. Positions are multiples of 16 bytes, which most
/// of these keep, so that the damage passes the first checks.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Value {
    Set(u64),
    /// The current value plus a small signed multiple of 16: plausible but wrong.
    Add(i16),
    /// The current value plus a small signed number of laps of the log.
    Laps(i8),
    /// A multiple of 16 near the top of the range (positions that overflow).
    Top(u16),
    FlipBit(u8),
    /// A pending header word for a small batch number.
    Pending(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Word {
        area: Area,
        index: u16,
        value: Value,
    },
    Bytes {
        area: Area,
        offset: u16,
        bytes: Vec<u8>,
    },
    Send(u8),
    SendTimeout(u8),
    Reserve {
        len: u8,
        fill: bool,
        keep: u8,
        commit: bool,
    },
    Subscribe(bool),
    Open(bool),
    RecvInto(u8),
    Recv(u8),
    RecvTimeout(u8),
    /// An in-place batch held while the publisher sends this many batches.
    Hold {
        which: u8,
        sends: u8,
    },
    TryIter(u8),
    Unsubscribe(u8),
    Inspect,
    DropPublisher,
}

#[derive(Arbitrary, Debug)]
struct Input {
    lossy: bool,
    evict: bool,
    capacity: u8,
    max_batch: Option<u8>,
    ops: Vec<Op>,
}

/// The segment's file and where its parts are.
struct Segment {
    file: File,
    len: u64,
    data: u64,
    ring: u64,
}

impl Segment {
    /// `(start, length)` of an area.
    fn area(&self, a: Area) -> (u64, u64) {
        match a {
            Area::Identity => (0, IDENTITY),
            Area::Publisher => (CONTROL, LINE),
            Area::Shared => (CONTROL + LINE, LINE),
            Area::Entry(i) => (CONTROL + (2 + u64::from(i % 8)) * LINE, LINE),
            Area::Log => (self.data, self.ring),
            Area::Anywhere => (0, self.len),
        }
    }

    fn word(&self, area: Area, index: u16, value: Value) {
        let (start, len) = self.area(area);
        let at = start + (u64::from(index) * 8) % len;
        let mut b = [0u8; 8];
        let _ = self.file.read_exact_at(&mut b, at);
        let old = u64::from_le_bytes(b);
        let new = match value {
            Value::Set(v) => v,
            Value::Add(d) => old.wrapping_add_signed(16 * i64::from(d)),
            Value::Laps(n) => old.wrapping_add_signed(self.ring as i64 * i64::from(n)),
            Value::Top(n) => (u64::MAX & !15) - 16 * u64::from(n),
            Value::FlipBit(k) => old ^ (1 << (k % 64)),
            Value::Pending(n) => PENDING | u64::from(n),
        };
        let _ = self.file.write_all_at(&new.to_le_bytes(), at);
    }

    fn bytes(&self, area: Area, offset: u16, bytes: &[u8]) {
        let (start, len) = self.area(area);
        let at = start + u64::from(offset) % len;
        // Never past the end: the file keeps its length.
        let n = bytes.len().min((self.len - at) as usize).min(64);
        let _ = self.file.write_all_at(&bytes[..n], at);
    }
}

fn start(oldest: bool) -> Start {
    if oldest {
        Start::Oldest
    } else {
        Start::Next
    }
}

/// Batch `k` of `len` elements.
fn batch(k: u64, len: usize) -> Vec<f64> {
    (0..len).map(|j| (k * 100 + j as u64) as f64).collect()
}

fuzz_target!(|input: Input| {
    let name = format!("shmbatch-fuzz-bcast-{}", std::process::id());
    let _ = shmbatch::remove_any(&name);
    let mut opts = Options::new().open_timeout(Duration::ZERO);
    if input.lossy {
        opts = opts.broadcast_policy(Policy::Lossy);
    }
    if input.evict {
        // Evicted at the second full attempt that finds it in the way.
        opts = opts.evict_after(Duration::from_nanos(1));
    }
    if let Some(m) = input.max_batch {
        opts = opts.max_batch(usize::from(m % 8) + 1);
    }
    let capacity = usize::from(input.capacity % 48) + 1;
    let Ok(tx) = Publisher::<f64>::create_with(&name, capacity, &opts) else {
        // A max_batch over what the capacity allows.
        return;
    };
    let info = shmbatch::inspect(&name).expect("inspect a fresh segment");
    let seg = Segment {
        file: File::options()
            .read(true)
            .write(true)
            .open(format!("/dev/shm/{name}"))
            .expect("the segment's file"),
        len: info.file_len,
        data: info.data_offset as u64,
        ring: info.data_len as u64,
    };
    debug_assert!(seg.data >= CONTROL + (2 + 64) * LINE);

    let mut tx = Some(tx);
    let mut subs: Vec<Subscriber<f64>> = Vec::new();
    let mut k = 0u64;
    let mut out = Vec::new();
    let pick =
        |subs: &[Subscriber<f64>], w: u8| (!subs.is_empty()).then(|| usize::from(w) % subs.len());

    for op in input.ops.into_iter().take(64) {
        match op {
            Op::Word { area, index, value } => seg.word(area, index, value),
            Op::Bytes {
                area,
                offset,
                bytes,
            } => seg.bytes(area, offset, &bytes),
            Op::Send(len) => {
                if let Some(tx) = tx.as_mut() {
                    k += 1;
                    let _ = tx.try_send(&batch(k, usize::from(len % 16)));
                }
            }
            Op::SendTimeout(len) => {
                if let Some(tx) = tx.as_mut() {
                    k += 1;
                    let _ = tx.send_timeout(&batch(k, usize::from(len % 16)), Duration::ZERO);
                }
            }
            Op::Reserve {
                len,
                fill,
                keep,
                commit,
            } => {
                if let Some(tx) = tx.as_mut() {
                    if let Ok(mut r) = tx.try_reserve(usize::from(len % 16)) {
                        if fill {
                            r.fill(7.0);
                        }
                        r.truncate(usize::from(keep));
                        if commit {
                            r.commit();
                        }
                    }
                }
            }
            Op::Subscribe(oldest) => {
                if let Some(tx) = tx.as_ref() {
                    if let Ok(rx) = tx.subscribe(start(oldest)) {
                        subs.push(rx);
                    }
                }
            }
            Op::Open(oldest) => {
                if let Ok(rx) =
                    Subscriber::<f64>::open_with(&name, &opts.clone().start(start(oldest)))
                {
                    subs.push(rx);
                }
            }
            Op::RecvInto(w) => {
                if let Some(i) = pick(&subs, w) {
                    let _ = subs[i].try_recv_into(&mut out);
                }
            }
            Op::Recv(w) => {
                if let Some(i) = pick(&subs, w) {
                    if let Ok(b) = subs[i].try_recv() {
                        std::hint::black_box(
                            b.iter().map(|x| x.to_bits()).fold(0, u64::wrapping_add),
                        );
                        let _ = b.is_intact();
                    }
                }
            }
            Op::RecvTimeout(w) => {
                if let Some(i) = pick(&subs, w) {
                    if w % 2 == 0 {
                        let _ = subs[i].recv_into_timeout(&mut out, Duration::ZERO);
                    } else if let Ok(b) = subs[i].recv_timeout(Duration::ZERO) {
                        std::hint::black_box(b.len());
                    }
                }
            }
            Op::Hold { which, sends } => {
                let Some(i) = pick(&subs, which) else {
                    continue;
                };
                let Ok(b) = subs[i].try_recv() else { continue };
                if let Some(tx) = tx.as_mut() {
                    for _ in 0..sends % 4 {
                        k += 1;
                        let _ = tx.try_send(&batch(k, (k % 5) as usize));
                    }
                }
                std::hint::black_box(b.first().copied());
                let _ = b.is_intact();
            }
            Op::TryIter(w) => {
                if let Some(i) = pick(&subs, w) {
                    std::hint::black_box(subs[i].try_iter().take(4).count());
                }
            }
            Op::Unsubscribe(w) => {
                if let Some(i) = pick(&subs, w) {
                    drop(subs.swap_remove(i));
                }
            }
            Op::Inspect => {
                if let Ok(i) = shmbatch::inspect(&name) {
                    std::hint::black_box((i.fill.map(|f| f.ratio()), i.broadcast));
                }
            }
            Op::DropPublisher => drop(tx.take()),
        }
        for rx in &subs {
            std::hint::black_box((
                rx.behind(),
                rx.missed(),
                rx.is_disconnected(),
                rx.is_evicted(),
            ));
        }
        if let Some(tx) = tx.as_ref() {
            std::hint::black_box((tx.published(), tx.subscribers()));
        }
    }
    drop(subs);
    drop(tx);
    let _ = shmbatch::remove_any(&name);
});

//! Where an importer left off: a small [`SharedArray<u64>`] next to its queue, so
//! that a restarted importer knows the next sequence number it expects and can
//! count exactly what the restart lost.
//!
//! # Words
//! `[MAGIC, gen, slot 0, slot 1]`. A slot is `[stream, next, pending,
//! committed_before, pending_elements]` and then the importer's [`Counts`]:
//! - `stream`, `next`: the stream last delivered from, and the sequence number the
//!   importer expects next in it;
//! - `pending`: `seq + 1` while the batch `seq` is being committed to the queue,
//!   else 0; `committed_before`: the queue's committed count just before that
//!   commit began; `pending_elements`: that batch's length;
//! - the counts as they stand with that batch accounted for (its gap counted),
//!   but not yet delivered. The counts live here, not only in the process, so
//!   that they survive a SIGKILL: a restarted importer reports the totals since
//!   the state was created.
//!
//! The importer writes the slot `gen` does not select, then stores `gen + 1`
//! (Release); a reader loads `gen` (Acquire) and then the slot it selects. A
//! process killed while writing a slot leaves `gen` on the previous, whole one.
//!
//! # Exactness
//! Around each commit the importer records `pending` before and clears it after.
//! An importer killed between the two leaves `pending` set; its successor asks
//! the queue: if the queue's committed count (SPSC `sent`, broadcast `published`,
//! exact after a restart) has passed `committed_before`, the batch is in the
//! queue (delivered, expect `seq + 1`), else it is not (expect `seq` again: the
//! gap the successor then sees starts at `seq`). An MPMC queue keeps no such
//! count for one sender, so there the batch is counted as *uncertain*:
//! delivered or lost, not known which.

use shmbatch::{Options, SharedArray};

use crate::Error;

/// First word of a state array: `"SBZRES01"`.
const MAGIC: u64 = u64::from_le_bytes(*b"SBZRES01");
/// Words of [`Counts`].
const COUNTS: usize = 9;
/// Words in a slot.
const SLOT: usize = 5 + COUNTS;
/// Words in the array.
const WORDS: usize = 2 + 2 * SLOT;

/// What an importer has counted since its state was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub delivered: u64,
    pub elements: u64,
    pub gaps: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub uncertain: u64,
    pub streams: u64,
    pub dropped: u64,
    pub repaired: u64,
}

/// What the last importer recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Slot {
    pub stream: u64,
    pub next: u64,
    pub pending: u64,
    pub committed_before: u64,
    pub pending_elements: u64,
    pub counts: Counts,
}

impl Slot {
    fn words(&self) -> [u64; SLOT] {
        let c = &self.counts;
        [
            self.stream,
            self.next,
            self.pending,
            self.committed_before,
            self.pending_elements,
            c.delivered,
            c.elements,
            c.gaps,
            c.lost,
            c.duplicates,
            c.uncertain,
            c.streams,
            c.dropped,
            c.repaired,
        ]
    }

    fn from_words(w: [u64; SLOT]) -> Slot {
        let [stream, next, pending, committed_before, pending_elements, delivered, elements, gaps, lost, duplicates, uncertain, streams, dropped, repaired] =
            w;
        Slot {
            stream,
            next,
            pending,
            committed_before,
            pending_elements,
            counts: Counts {
                delivered,
                elements,
                gaps,
                lost,
                duplicates,
                uncertain,
                streams,
                dropped,
                repaired,
            },
        }
    }
}

/// Where a restarted importer resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The stream and the next sequence number expected in it.
    pub stream: u64,
    pub next: u64,
    /// The counts, the interrupted batch resolved.
    pub counts: Counts,
}

/// The state array of one importer.
#[derive(Debug)]
pub(crate) struct State {
    words: SharedArray<u64>,
    gen: u64,
}

impl State {
    /// Open the state named `name`, or create it (persistent: it outlives the
    /// importer, which is its point). Returns the state and what it recorded, if
    /// an importer ran before.
    pub fn open(name: &str) -> Result<(State, Option<Slot>), Error> {
        let words = SharedArray::<u64>::open_or_create(name, WORDS, &Options::new())
            .map_err(|e| Error::State(format!("{name}: {e}")))?;
        words.persist();
        if words.len() != WORDS {
            return Err(Error::State(format!(
                "{name}: holds {} words, an importer state holds {WORDS}",
                words.len()
            )));
        }
        let load = |i| words.load(i).expect("index below WORDS");
        let magic = load(0);
        if magic == 0 {
            // Fresh: written by nobody yet.
            words.store(0, MAGIC).expect("index below WORDS");
            return Ok((State { words, gen: 0 }, None));
        }
        if magic != MAGIC {
            return Err(Error::State(format!(
                "{name}: is not a shmbatch-zenoh importer state (first word {magic:#x})"
            )));
        }
        // Acquire: pairs with the Release store of gen in `write`, so the slot it
        // selects is whole.
        let gen = load(1);
        let at = 2 + SLOT * (gen % 2) as usize;
        let slot = Slot::from_words(std::array::from_fn(|i| load(at + i)));
        Ok((State { words, gen }, (gen > 0).then_some(slot)))
    }

    /// Record `slot` (see the module docs for the order of stores).
    pub fn write(&mut self, slot: &Slot) {
        let at = 2 + SLOT * ((self.gen + 1) % 2) as usize;
        let store = |i, v| self.words.store(i, v).expect("index below WORDS");
        for (i, w) in slot.words().into_iter().enumerate() {
            store(at + i, w);
        }
        self.gen += 1;
        // Release: publishes the slot's stores before the slot is selected.
        store(1, self.gen);
    }
}

/// Where to resume from what `slot` recorded and the queue's committed count now
/// (`None`: the queue does not count, MPMC).
pub(crate) fn resume(slot: Slot, committed_now: Option<u64>) -> Resume {
    let mut counts = slot.counts;
    let delivered = |counts: &mut Counts| {
        counts.delivered += 1;
        counts.elements += slot.pending_elements;
    };
    let next = if slot.pending == 0 {
        slot.next
    } else {
        match committed_now {
            Some(now) if now > slot.committed_before => {
                delivered(&mut counts);
                slot.pending
            }
            Some(_) => slot.next,
            None => {
                counts.uncertain += 1;
                slot.pending
            }
        }
    };
    Resume {
        stream: slot.stream,
        next,
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_commit_is_resolved_by_the_queue_count() {
        let slot = Slot {
            stream: 7,
            next: 10,
            pending: 11, // batch 10 was being committed
            committed_before: 500,
            pending_elements: 3,
            counts: Counts {
                delivered: 9,
                elements: 90,
                ..Counts::default()
            },
        };
        let made_it = resume(slot, Some(501));
        assert_eq!(
            (
                made_it.next,
                made_it.counts.delivered,
                made_it.counts.elements
            ),
            (11, 10, 93)
        );
        let did_not = resume(slot, Some(500));
        assert_eq!((did_not.next, did_not.counts), (10, slot.counts));
        let unknown = resume(slot, None);
        assert_eq!(
            (
                unknown.next,
                unknown.counts.uncertain,
                unknown.counts.delivered
            ),
            (11, 1, 9)
        );
        let idle = Slot { pending: 0, ..slot };
        assert_eq!(
            (resume(idle, None).next, resume(idle, None).counts),
            (10, slot.counts)
        );
    }

    #[test]
    fn a_state_survives_its_handle_and_refuses_a_foreign_array() {
        let name = format!("shmbatch-test-bridge-state-{}", std::process::id());
        let (mut st, before) = State::open(&name).unwrap();
        assert_eq!(before, None);
        let slot = Slot::from_words(std::array::from_fn(|i| i as u64 + 1));
        assert_eq!(Slot::from_words(slot.words()), slot);
        st.write(&slot);
        st.write(&Slot { next: 99, ..slot });
        drop(st);
        let (_st, again) = State::open(&name).unwrap();
        assert_eq!(again, Some(Slot { next: 99, ..slot }));
        shmbatch::remove(&name).unwrap();

        let foreign = format!("shmbatch-test-bridge-foreign-{}", std::process::id());
        let a = SharedArray::<u64>::create_from(&foreign, &[9; WORDS]).unwrap();
        let e = State::open(&foreign).unwrap_err();
        assert!(
            e.to_string()
                .contains("not a shmbatch-zenoh importer state"),
            "{e}"
        );
        drop(a);
    }
}

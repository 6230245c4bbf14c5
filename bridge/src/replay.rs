//! Repairing gaps: the exporter keeps its most recent samples, and an importer
//! that sees a gap asks for them again.
//!
//! An importer that receives batch `s` of a stream while it expects `n < s` asks
//! the exporter, by a zenoh query on `KEY/@shmbatch/resume` carrying
//! `(stream, n)`, whether it still holds batch `n`. If it does, the exporter
//! answers [`WILL`] and, before its next batch, publishes again every sample it
//! holds from `n` on, in order; the importer drops what it receives meanwhile
//! (all of it is in the replay) until batch `n` arrives. If it does not (the
//! batch is older than the replay window, or replay is off, or another stream),
//! the importer counts the gap as lost. A gap therefore costs nothing while the
//! window covers it: typically the samples zenoh took for an importer that was
//! killed, or that the exporter published before it noticed the importer had
//! gone.

use std::collections::VecDeque;

use zenoh::bytes::ZBytes;

/// The exporter will publish again from the batch asked for.
pub(crate) const WILL: u8 = 1;
/// The exporter no longer holds the batch asked for.
pub(crate) const CANNOT: u8 = 0;
/// The exporter runs another stream.
pub(crate) const OTHER_STREAM: u8 = 2;

/// The key of the resume queryable of `key`.
pub(crate) fn resume_key(key: &str) -> String {
    format!("{key}/@shmbatch/resume")
}

/// A request: `(stream, next)`, 16 bytes little-endian.
pub(crate) fn request(stream: u64, next: u64) -> Vec<u8> {
    let mut v = stream.to_le_bytes().to_vec();
    v.extend_from_slice(&next.to_le_bytes());
    v
}

/// Parse a request (untrusted: `None` if it is not 16 bytes).
pub(crate) fn parse_request(b: &[u8]) -> Option<(u64, u64)> {
    let b: &[u8; 16] = b.try_into().ok()?;
    let (s, n) = b.split_at(8);
    Some((
        u64::from_le_bytes(s.try_into().ok()?),
        u64::from_le_bytes(n.try_into().ok()?),
    ))
}

/// An answer: status byte, then the exporter's stream.
pub(crate) fn answer(status: u8, stream: u64) -> Vec<u8> {
    let mut v = vec![status];
    v.extend_from_slice(&stream.to_le_bytes());
    v
}

/// Parse an answer's status (`None` if malformed or of another stream).
pub(crate) fn parse_answer(b: &[u8], stream: u64) -> Option<u8> {
    let (&status, rest) = b.split_first()?;
    let s: [u8; 8] = rest.try_into().ok()?;
    (u64::from_le_bytes(s) == stream).then_some(status)
}

/// The exporter's most recent samples, bounded in bytes.
#[derive(Debug)]
pub(crate) struct Window {
    samples: VecDeque<(u64, ZBytes)>,
    bytes: usize,
    cap: usize,
    /// The sequence number the next sample will have.
    head: u64,
    /// The earliest batch asked for and not yet replayed.
    request: Option<u64>,
}

impl Window {
    pub fn new(cap: usize) -> Window {
        Window {
            samples: VecDeque::new(),
            bytes: 0,
            cap,
            head: 0,
            request: None,
        }
    }

    /// Keep sample `seq` (the most recent), dropping the oldest past the cap.
    pub fn push(&mut self, seq: u64, sample: ZBytes) {
        self.head = seq.saturating_add(1);
        if self.cap == 0 {
            return;
        }
        if self
            .samples
            .back()
            .is_some_and(|(s, _)| s.checked_add(1) != Some(seq))
        {
            // Numbering jumped (a source that lost batches): the window only
            // holds a run of consecutive numbers.
            self.samples.clear();
            self.bytes = 0;
        }
        self.bytes += sample.len();
        self.samples.push_back((seq, sample));
        while self.bytes > self.cap {
            let Some((_, old)) = self.samples.pop_front() else {
                break;
            };
            self.bytes -= old.len();
        }
    }

    /// An importer asks for batches from `next` on: can they be replayed?
    pub fn ask(&mut self, next: u64) -> u8 {
        let oldest = self.samples.front().map(|(s, _)| *s);
        match oldest {
            Some(oldest) if oldest <= next && next < self.head => {
                self.request = Some(self.request.map_or(next, |r| r.min(next)));
                WILL
            }
            _ => CANNOT,
        }
    }

    /// The samples to publish again, if one was asked for.
    pub fn take_replay(&mut self) -> Vec<ZBytes> {
        let Some(from) = self.request.take() else {
            return Vec::new();
        };
        self.samples
            .iter()
            .filter(|(s, _)| *s >= from)
            .map(|(_, z)| z.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_replays_what_it_holds_and_refuses_what_it_dropped() {
        let mut w = Window::new(30);
        for seq in 0..10u64 {
            w.push(seq, ZBytes::from(vec![seq as u8; 10]));
        }
        // 30 bytes hold batches 7, 8, 9.
        assert_eq!(w.ask(6), CANNOT);
        assert_eq!(w.ask(10), CANNOT); // nothing missing
        assert_eq!(w.ask(8), WILL);
        assert_eq!(w.ask(7), WILL);
        let again = w.take_replay();
        let firsts: Vec<u8> = again.iter().map(|z| z.to_bytes()[0]).collect();
        assert_eq!(firsts, [7, 8, 9]);
        assert!(w.take_replay().is_empty());
        // A jump in numbering empties the window.
        w.push(20, ZBytes::from(vec![0; 10]));
        assert_eq!(w.ask(9), CANNOT);
        assert_eq!(Window::new(0).ask(0), CANNOT);
    }

    #[test]
    fn requests_and_answers_round_trip_and_reject_garbage() {
        assert_eq!(parse_request(&request(7, 9)), Some((7, 9)));
        assert_eq!(parse_request(&[0; 15]), None);
        assert_eq!(parse_answer(&answer(WILL, 7), 7), Some(WILL));
        assert_eq!(parse_answer(&answer(WILL, 7), 8), None);
        assert_eq!(parse_answer(&[], 7), None);
    }
}

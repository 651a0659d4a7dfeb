//! The read rules of the contract, in one place: which versions `read_stream` returns and which
//! positions `read_all` returns, worked out from the stream's head or the log's last position.
//! Backends only read the versions or positions these select (`EventLog::read_versions`,
//! `EventLog::read_positions`).

use std::ops::Range;

use crate::Direction;

/// The versions `read_stream(from_version, direction, limit)` returns of a stream whose head is
/// version `head` (0: empty), as a range read oldest first (forwards) or newest first
/// (backwards); empty when it returns nothing.
///
/// Forwards, 0 reads from version 1 and a version beyond the head reads nothing; backwards, 0
/// reads from the head, and a version beyond the head reads from the head. At most `limit`.
pub(crate) fn stream_versions(head: u64, from_version: u64, direction: Direction, limit: usize) -> Range<u64> {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    match direction {
        Direction::Forwards => {
            let first = from_version.max(1);
            let end = first.saturating_add(limit).min(head.saturating_add(1));
            first..end.max(first)
        }
        Direction::Backwards => {
            let last = if from_version == 0 { head } else { from_version.min(head) };
            last - limit.min(last) + 1..last + 1
        }
    }
}

/// The positions `read_all(from_position, limit)` returns of a log whose last position is
/// `last_position` (0: empty), in order; empty when it returns nothing.
///
/// 0 reads from position 1; a position beyond the last reads nothing. At most `limit`.
pub(crate) fn log_positions(last_position: u64, from_position: u64, limit: usize) -> Range<u64> {
    let first = from_position.max(1);
    let end = first.saturating_add(u64::try_from(limit).unwrap_or(u64::MAX)).min(last_position.saturating_add(1));
    first..end.max(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Backwards, Forwards};

    /// The versions read, in the order read.
    fn read(head: u64, from: u64, direction: Direction, limit: usize) -> Vec<u64> {
        let versions = stream_versions(head, from, direction, limit);
        match direction {
            Forwards => versions.collect(),
            Backwards => versions.rev().collect(),
        }
    }

    #[test]
    fn forwards_from_a_version_up_to_the_head() {
        let cases: [(u64, u64, usize, &[u64]); 10] = [
            (5, 0, usize::MAX, &[1, 2, 3, 4, 5]),
            (5, 1, 2, &[1, 2]),
            (5, 4, 9, &[4, 5]),
            (5, 5, 1, &[5]),
            (5, 6, 9, &[]), // Exactly one beyond the head.
            (5, 99, 9, &[]),
            (5, u64::MAX, usize::MAX, &[]),
            (5, 2, 0, &[]),
            (0, 0, 9, &[]),
            (0, 1, usize::MAX, &[]),
        ];
        for (head, from, limit, want) in cases {
            assert_eq!(read(head, from, Forwards, limit), want, "head {head}, from {from}, limit {limit}");
        }
    }

    #[test]
    fn backwards_from_a_version_or_the_head() {
        let cases: [(u64, u64, usize, &[u64]); 10] = [
            (5, 0, usize::MAX, &[5, 4, 3, 2, 1]),
            (5, 0, 2, &[5, 4]),
            (5, 3, 9, &[3, 2, 1]),
            (5, 3, 3, &[3, 2, 1]),
            (5, 1, 9, &[1]),
            (5, 5, 1, &[5]),
            (5, 6, 2, &[5, 4]), // Beyond the head reads from the head, limit and all.
            (5, u64::MAX, usize::MAX, &[5, 4, 3, 2, 1]),
            (5, 4, 0, &[]),
            (0, 0, 9, &[]),
        ];
        for (head, from, limit, want) in cases {
            assert_eq!(read(head, from, Backwards, limit), want, "head {head}, from {from}, limit {limit}");
        }
        assert!(stream_versions(0, 7, Backwards, 9).is_empty(), "an empty stream from beyond its head");
    }

    #[test]
    fn the_log_from_a_position_up_to_the_last() {
        let cases: [(u64, u64, usize, &[u64]); 8] = [
            (4, 0, usize::MAX, &[1, 2, 3, 4]),
            (4, 1, 2, &[1, 2]),
            (4, 3, 9, &[3, 4]),
            (4, 4, 1, &[4]),
            (4, 5, 9, &[]),
            (4, u64::MAX, usize::MAX, &[]),
            (4, 2, 0, &[]),
            (0, 0, 9, &[]),
        ];
        for (last, from, limit, want) in cases {
            let got: Vec<u64> = log_positions(last, from, limit).collect();
            assert_eq!(got, want, "last {last}, from {from}, limit {limit}");
        }
    }
}

//! The contract suite: what every [`EventLog`] backend must do, as tests any backend runs.
//!
//! A backend implements [`Harness`] (how to make a fresh log and how to close and reopen one)
//! and expands [`contract_tests!`](crate::contract_tests) in a test file, which makes one
//! `#[test]` per case:
//!
//! ```ignore
//! struct Sled(Vec<tempfile::TempDir>);
//! impl rapport_store::contract::Harness for Sled { ... }
//! rapport_store::contract_tests!(Sled(Vec::new()));
//! ```
//!
//! Cases panic with a message on failure, like any test.

// A test suite (compiled for backends' tests only): a failed unwrap is a failed case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Limits, Timestamp};

use crate::{AppendBatch, Direction, EventLog, GENESIS_HASH, Hash, NewEvent, StoreError, StoredEvent, StreamHead};

/// How the suite makes and reopens logs of one backend.
pub trait Harness {
    /// The backend.
    type Log: EventLog;
    /// A new, empty log.
    fn fresh(&mut self) -> Self::Log;
    /// Closes `log` and opens the same store again, as a restarted server would. The suite
    /// syncs first where it relies on what was appended; it also reopens unsynced logs, and
    /// then accepts any whole-batch prefix that holds at least what was synced. A backend
    /// that keeps nothing across processes returns the same log.
    fn reopen(&mut self, log: Self::Log) -> Self::Log;
}

/// Expands to one `#[test]` per contract case, each running against a harness built by
/// `$harness` (an expression, evaluated per test).
#[macro_export]
macro_rules! contract_tests {
    ($harness:expr) => {
        $crate::contract_tests!(@cases $harness;
            versions_count_per_stream_and_positions_across_the_log,
            each_event_chains_to_the_previous_of_its_stream,
            a_wrong_expected_version_writes_nothing,
            a_taken_or_repeated_event_id_writes_nothing,
            an_empty_batch_is_refused,
            recording_times_never_go_back,
            read_all_honours_from_and_limit,
            read_stream_honours_from_direction_and_limit,
            reads_at_the_edges_of_the_log_and_of_streams,
            heads_and_lookups_follow_appends,
            the_identity_that_appended_is_kept_and_hashed,
            append_all_is_appending_one_by_one,
            synced_events_survive_reopening_byte_for_byte,
            a_model_of_random_appends_and_reboots_agrees,
            readers_during_appends_see_whole_prefixes
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let mut harness = $harness;
                $crate::contract::$case(&mut harness);
            }
        )*
    };
}

/// An account id for tests.
fn account(name: &str) -> AccountId {
    AccountId::parse(name, &Limits::default()).expect("a valid account id")
}

/// Event number `n`: its id encodes `n`, its payload names it.
fn new_event(n: u64) -> NewEvent {
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    id[6] = 0x40;
    NewEvent {
        event_id: EventId::from_bytes(id),
        payload: Bytes::from(format!("payload of event {n}").repeat(1 + (n % 3) as usize)),
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_nanos(seconds * 1_000_000_000)
}

fn append(
    log: &impl EventLog,
    account_id: &AccountId,
    expected: u64,
    events: &[NewEvent],
    time: i64,
) -> Result<crate::Appended, StoreError> {
    log.append(AppendBatch { account_id, expected_version: expected, recorded_at: at(time), recorded_by: "", events })
}

fn everything(log: &impl EventLog) -> Vec<StoredEvent> {
    log.read_all(0, usize::MAX).expect("read_all")
}

/// The number `n` of an event made by [`new_event`].
fn number(event: &StoredEvent) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&event.event_id.as_bytes()[8..]);
    u64::from_be_bytes(bytes)
}

/// Checks events that start at the beginning of the log or of a stream, in position order:
/// each hash is the one computed from the record, and chains to the previous event of its
/// stream (or to [`GENESIS_HASH`] at version 1).
fn assert_chains(events: &[StoredEvent], context: &str) {
    let mut heads: BTreeMap<&AccountId, Hash> = BTreeMap::new();
    for event in events {
        let position = event.position;
        assert_eq!(event.hash, event.computed_hash(), "{context}: the hash at position {position}");
        let previous = heads.insert(&event.account_id, event.hash).unwrap_or(GENESIS_HASH);
        assert_eq!(event.prev_hash, previous, "{context}: the chain at position {position}");
    }
}

/// Versions start at 1 per stream; positions are one gap-free sequence.
pub fn versions_count_per_stream_and_positions_across_the_log(harness: &mut impl Harness) {
    let log = harness.fresh();
    let (a, b) = (account("a"), account("b"));
    let first = append(&log, &a, 0, &[new_event(1), new_event(2)], 10).unwrap();
    assert_eq!((first.first_version, first.first_position), (1, 1));
    let second = append(&log, &b, 0, &[new_event(3)], 10).unwrap();
    assert_eq!((second.first_version, second.first_position), (1, 3));
    let third = append(&log, &a, 2, &[new_event(4)], 10).unwrap();
    assert_eq!((third.first_version, third.first_position), (3, 4));
    let got: Vec<(String, u64, u64)> =
        everything(&log).iter().map(|e| (e.account_id.to_string(), e.version, e.position)).collect();
    let want = [("a", 1, 1), ("a", 2, 2), ("b", 1, 3), ("a", 3, 4)].map(|(s, v, p)| (s.to_owned(), v, p));
    assert_eq!(got, want);
    assert_eq!(log.last_position().unwrap(), 4);
}

/// Each event's hash is its computed hash; it chains to the previous event of its stream.
pub fn each_event_chains_to_the_previous_of_its_stream(harness: &mut impl Harness) {
    let log = harness.fresh();
    let (a, b) = (account("a"), account("b"));
    append(&log, &a, 0, &[new_event(1), new_event(2)], 10).unwrap();
    append(&log, &b, 0, &[new_event(3)], 11).unwrap();
    append(&log, &a, 2, &[new_event(4)], 12).unwrap();
    let events = everything(&log);
    assert_chains(&events, "the whole log");
    // Worked out by hand: a1 and a2 chain to genesis and a1, b1 to genesis, a3 to a2.
    let hashes: Vec<Hash> = events.iter().map(|e| e.hash).collect();
    let prev_hashes: Vec<Hash> = events.iter().map(|e| e.prev_hash).collect();
    assert_eq!(prev_hashes, [GENESIS_HASH, hashes[0], GENESIS_HASH, hashes[1]]);
    let first = &events[0];
    let expected = crate::chain_hash(&StoredEvent {
        account_id: a.clone(),
        version: 1,
        position: 1,
        recorded_at: at(10),
        event_id: new_event(1).event_id,
        recorded_by: String::new(),
        payload: new_event(1).payload,
        prev_hash: GENESIS_HASH,
        hash: GENESIS_HASH,
        // The backend's scheme: whether the position is hashed is the backend's to say.
        scheme: first.scheme,
    });
    assert_eq!(first.hash, expected, "the hash covers exactly the documented fields");
    for event in &events {
        assert_eq!(event.payload, new_event(number(event)).payload, "position {}", event.position);
    }
    let a_events = log.read_stream(&a, 0, Direction::Forwards, usize::MAX).unwrap();
    assert_chains(&a_events, "stream a");
}

/// A batch that expects another version than the stream's fails and writes nothing.
pub fn a_wrong_expected_version_writes_nothing(harness: &mut impl Harness) {
    let log = harness.fresh();
    let a = account("a");
    append(&log, &a, 0, &[new_event(1)], 10).unwrap();
    for expected in [0, 2, 7] {
        match append(&log, &a, expected, &[new_event(2)], 10) {
            Err(StoreError::WrongVersion { expected: e, current: 1, .. }) if e == expected => {}
            other => panic!("expected WrongVersion at 1 for {expected}, got {other:?}"),
        }
    }
    assert!(matches!(
        append(&log, &account("new"), 3, &[new_event(2)], 10),
        Err(StoreError::WrongVersion { current: 0, .. })
    ));
    assert_eq!(everything(&log).len(), 1);
    assert_eq!(log.find_event(&new_event(2).event_id).unwrap(), None);
}

/// An id already recorded, or repeated in the batch, fails the whole batch.
pub fn a_taken_or_repeated_event_id_writes_nothing(harness: &mut impl Harness) {
    let log = harness.fresh();
    let (a, b) = (account("a"), account("b"));
    append(&log, &a, 0, &[new_event(1)], 10).unwrap();
    match append(&log, &b, 0, &[new_event(2), new_event(1)], 10) {
        Err(StoreError::DuplicateEventId { event_id, position: 1 }) => assert_eq!(event_id, new_event(1).event_id),
        other => panic!("expected DuplicateEventId at 1, got {other:?}"),
    }
    assert!(matches!(
        append(&log, &b, 0, &[new_event(3), new_event(4), new_event(3)], 10),
        Err(StoreError::DuplicateEventId { .. })
    ));
    assert_eq!(everything(&log).len(), 1);
    assert_eq!(log.stream_head(&b).unwrap(), None);
    assert_eq!(log.find_event(&new_event(3).event_id).unwrap(), None);
}

/// A batch without events is a caller bug, refused.
pub fn an_empty_batch_is_refused(harness: &mut impl Harness) {
    let log = harness.fresh();
    assert!(matches!(append(&log, &account("a"), 0, &[], 10), Err(StoreError::InvalidBatch(_))));
    assert_eq!(log.last_position().unwrap(), 0);
}

/// Every event of a batch keeps the identity that appended it, across reopening, and its
/// hash covers it.
pub fn the_identity_that_appended_is_kept_and_hashed(harness: &mut impl Harness) {
    let log = harness.fresh();
    let a = account("a");
    let events = [new_event(1), new_event(2)];
    let batch = AppendBatch {
        account_id: &a,
        expected_version: 0,
        recorded_at: at(10),
        recorded_by: "crm-sync",
        events: &events,
    };
    log.append(batch).unwrap();
    append(&log, &a, 2, &[new_event(3)], 11).unwrap();
    log.sync().unwrap();
    let log = harness.reopen(log);
    let events = everything(&log);
    let identities: Vec<&str> = events.iter().map(|e| e.recorded_by.as_str()).collect();
    assert_eq!(identities, ["crm-sync", "crm-sync", ""]);
    assert_chains(&events, "a log with identities");
    let mut altered = events[0].clone();
    altered.recorded_by = "someone-else".into();
    assert_ne!(altered.computed_hash(), events[0].hash, "the identity is part of the hash");
    let found = log.find_event(&new_event(2).event_id).unwrap().expect("event 2 is recorded");
    assert_eq!(found.recorded_by, "crm-sync");
}

/// `append_all` gives each batch the result, and the log the content, that appending the
/// batches one by one gives, failures in the middle included; and what it wrote survives
/// reopening.
pub fn append_all_is_appending_one_by_one(harness: &mut impl Harness) {
    let (a, b, c) = (account("a"), account("b"), account("c"));
    let (first, second, third, fourth) = ([new_event(1), new_event(2)], [new_event(3)], [new_event(4)], [new_event(5)]);
    // An id of the first batch again, and an id repeated within one batch.
    let (taken, repeated) = ([new_event(6), new_event(2)], [new_event(7), new_event(7)]);
    let batch = |account_id, expected_version, events| AppendBatch {
        account_id,
        expected_version,
        recorded_at: at(10),
        recorded_by: "writer",
        events,
    };
    let batches = [
        batch(&a, 0, &first[..]),
        batch(&b, 0, &second[..]),
        batch(&a, 0, &third[..]),
        batch(&a, 2, &third[..]),
        batch(&c, 0, &taken[..]),
        batch(&c, 0, &repeated[..]),
        batch(&c, 0, &[][..]),
        batch(&c, 0, &fourth[..]),
    ];
    let one_by_one = harness.fresh();
    let expected: Vec<_> = batches.iter().map(|b| one_by_one.append(*b)).collect();
    // Made last, because the harness reopens the log it made last.
    let together = harness.fresh();
    let results = together.append_all(&batches);
    assert_eq!(results.len(), expected.len());
    for (index, (got, want)) in results.iter().zip(&expected).enumerate() {
        let same = match (got, want) {
            (Ok(got), Ok(want)) => got == want,
            (Err(StoreError::WrongVersion { current: g, .. }), Err(StoreError::WrongVersion { current: w, .. })) => {
                g == w
            }
            (
                Err(StoreError::DuplicateEventId { event_id: g, position: gp }),
                Err(StoreError::DuplicateEventId { event_id: w, position: wp }),
            ) => g == w && gp == wp,
            (Err(StoreError::InvalidBatch(_)), Err(StoreError::InvalidBatch(_))) => true,
            _ => false,
        };
        assert!(same, "batch {index}: {got:?} appended together, {want:?} one by one");
    }
    // Worked out by hand: a1 a2 (positions 1, 2), b1 (3), a3 (4), c1 (5).
    assert!(matches!(results[2], Err(StoreError::WrongVersion { current: 2, .. })));
    assert!(matches!(results[4], Err(StoreError::DuplicateEventId { position: 2, .. })));
    assert_eq!(results[7].as_ref().ok().map(|r| r.first_position), Some(5));
    together.sync().unwrap();
    one_by_one.sync().unwrap();
    let together = harness.reopen(together);
    assert_eq!(everything(&together), everything(&one_by_one), "the same log, byte for byte");
    assert_chains(&everything(&together), "after append_all");
}

/// Recording times follow positions even when the given clock goes back.
pub fn recording_times_never_go_back(harness: &mut impl Harness) {
    let log = harness.fresh();
    let a = account("a");
    assert_eq!(append(&log, &a, 0, &[new_event(1)], 100).unwrap().recorded_at, at(100));
    assert_eq!(append(&log, &a, 1, &[new_event(2)], 50).unwrap().recorded_at, at(100));
    assert_eq!(append(&log, &a, 2, &[new_event(3)], 200).unwrap().recorded_at, at(200));
    let log = harness.reopen(log);
    assert_eq!(append(&log, &a, 3, &[new_event(4)], 150).unwrap().recorded_at, at(200), "also after reopening");
    let times: Vec<Timestamp> = everything(&log).iter().map(|e| e.recorded_at).collect();
    assert_eq!(times, vec![at(100), at(100), at(200), at(200)]);
    // The first event of a log has nothing to follow: its time is the given one, whatever it is.
    let other = harness.fresh();
    assert_eq!(append(&other, &a, 0, &[new_event(1)], -5).unwrap().recorded_at, at(-5));
    assert_eq!(append(&other, &a, 1, &[new_event(2)], -9).unwrap().recorded_at, at(-5));
}

/// `read_all` from any position, with any limit.
pub fn read_all_honours_from_and_limit(harness: &mut impl Harness) {
    let log = harness.fresh();
    for n in 1..=10 {
        append(&log, &account(if n % 2 == 0 { "a" } else { "b" }), (n - 1) / 2, &[new_event(n)], 10).unwrap();
    }
    let cases: [(u64, usize, &[u64]); 6] = [
        (0, usize::MAX, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        (1, 3, &[1, 2, 3]),
        (4, 2, &[4, 5]),
        (9, 5, &[9, 10]),
        (11, 5, &[]),
        (3, 0, &[]),
    ];
    for (from, limit, want) in cases {
        let got: Vec<u64> = log.read_all(from, limit).unwrap().iter().map(|e| e.position).collect();
        assert_eq!(got, want, "from {from}, limit {limit}");
    }
}

/// `read_stream` forwards and backwards, from any version, with any limit.
pub fn read_stream_honours_from_direction_and_limit(harness: &mut impl Harness) {
    let log = harness.fresh();
    let (a, b) = (account("a"), account("ab"));
    for n in 0..6 {
        append(&log, &a, n, &[new_event(n + 1)], 10).unwrap();
        append(&log, &b, n, &[new_event(n + 101)], 10).unwrap(); // A prefix-sharing neighbour.
    }
    use Direction::{Backwards, Forwards};
    let cases: [(u64, Direction, usize, &[u64]); 9] = [
        (0, Forwards, usize::MAX, &[1, 2, 3, 4, 5, 6]),
        (3, Forwards, 2, &[3, 4]),
        (6, Forwards, 9, &[6]),
        (7, Forwards, 9, &[]),
        (0, Backwards, usize::MAX, &[6, 5, 4, 3, 2, 1]),
        (0, Backwards, 2, &[6, 5]),
        (3, Backwards, 9, &[3, 2, 1]),
        (99, Backwards, 2, &[6, 5]),
        (1, Backwards, 0, &[]),
    ];
    for (from, direction, limit, want) in cases {
        let events = log.read_stream(&a, from, direction, limit).unwrap();
        assert!(events.iter().all(|e| e.account_id == a));
        let got: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(got, want, "from {from}, {direction:?}, limit {limit}");
    }
    assert!(log.read_stream(&account("none"), 0, Forwards, 10).unwrap().is_empty());
}

/// Reads at the edges: an empty log and stream, exactly one beyond the end, the largest
/// numbers, a limit of 0 in each direction, a limit that stops exactly at the end.
pub fn reads_at_the_edges_of_the_log_and_of_streams(harness: &mut impl Harness) {
    use Direction::{Backwards, Forwards};
    let log = harness.fresh();
    let a = account("a");
    assert!(log.read_all(0, usize::MAX).unwrap().is_empty(), "an empty log");
    assert!(log.read_all(1, 1).unwrap().is_empty(), "an empty log from 1");
    for (from, direction) in [(0, Forwards), (1, Forwards), (0, Backwards), (1, Backwards), (5, Backwards)] {
        assert!(
            log.read_stream(&a, from, direction, 9).unwrap().is_empty(),
            "an empty stream from {from} {direction:?}"
        );
    }
    // Five events of "a" at positions 1 to 5, then one of "b" at 6.
    for n in 0..5 {
        append(&log, &a, n, &[new_event(n + 1)], 10).unwrap();
    }
    append(&log, &account("b"), 0, &[new_event(6)], 10).unwrap();
    let cases: [(u64, Direction, usize, &[u64]); 10] = [
        (6, Forwards, 9, &[]), // Exactly one beyond the head.
        (u64::MAX, Forwards, usize::MAX, &[]),
        (2, Forwards, 0, &[]),
        (4, Forwards, 2, &[4, 5]),           // A limit that ends exactly at the head.
        (5, Backwards, 9, &[5, 4, 3, 2, 1]), // Exactly at the head.
        (6, Backwards, 3, &[5, 4, 3]),       // Exactly one beyond the head, with a limit.
        (u64::MAX, Backwards, usize::MAX, &[5, 4, 3, 2, 1]),
        (0, Backwards, 0, &[]),
        (1, Backwards, 1, &[1]),
        (3, Backwards, 3, &[3, 2, 1]), // A limit that ends exactly at version 1.
    ];
    for (from, direction, limit, want) in cases {
        let got: Vec<u64> = log.read_stream(&a, from, direction, limit).unwrap().iter().map(|e| e.version).collect();
        assert_eq!(got, want, "from {from}, {direction:?}, limit {limit}");
    }
    let cases: [(u64, usize, &[u64]); 5] =
        [(6, usize::MAX, &[6]), (7, 1, &[]), (u64::MAX, usize::MAX, &[]), (0, 0, &[]), (5, 2, &[5, 6])];
    for (from, limit, want) in cases {
        let got: Vec<u64> = log.read_all(from, limit).unwrap().iter().map(|e| e.position).collect();
        assert_eq!(got, want, "the log from {from}, limit {limit}");
    }
}

/// `stream_head`, `last_position` and `find_event` follow appends.
pub fn heads_and_lookups_follow_appends(harness: &mut impl Harness) {
    let log = harness.fresh();
    let a = account("a");
    assert_eq!(log.stream_head(&a).unwrap(), None);
    assert_eq!(log.last_position().unwrap(), 0);
    append(&log, &account("b"), 0, &[new_event(1)], 10).unwrap();
    append(&log, &a, 0, &[new_event(2), new_event(3)], 10).unwrap();
    let head = log.stream_head(&a).unwrap().expect("a has a head");
    let last = log.find_event(&new_event(3).event_id).unwrap().expect("event 3 is recorded");
    assert_eq!((head.version, head.position, head.hash), (2, 3, last.hash));
    assert_eq!((last.account_id, last.version, last.position), (a, 2, 3));
    assert_eq!(log.find_event(&new_event(4).event_id).unwrap(), None);
}

/// What was synced is there after reopening, byte for byte, and appends continue from it.
pub fn synced_events_survive_reopening_byte_for_byte(harness: &mut impl Harness) {
    let log = harness.fresh();
    let (a, b) = (account("a"), account("b"));
    append(&log, &a, 0, &[new_event(1), new_event(2)], 10).unwrap();
    append(&log, &b, 0, &[new_event(3)], 11).unwrap();
    log.sync().unwrap();
    let before = everything(&log);
    let log = harness.reopen(log);
    assert_eq!(everything(&log), before);
    assert_eq!(log.last_position().unwrap(), 3);
    let next = append(&log, &a, 2, &[new_event(4)], 12).unwrap();
    assert_eq!((next.first_version, next.first_position), (3, 4));
    let event = log.find_event(&new_event(4).event_id).unwrap().unwrap();
    assert_eq!(event.prev_hash, before[1].hash, "the chain continues across the reopen");
    assert!(matches!(append(&log, &b, 1, &[new_event(1)], 12), Err(StoreError::DuplicateEventId { .. })));
}

/// A small, seeded pseudo-random generator (a 64-bit LCG; its high bits are good enough to
/// pick operations), so that a failing run replays exactly.
struct Lcg(u64);

impl Lcg {
    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }

    /// A limit for a read: often small, sometimes 0, sometimes unbounded.
    fn limit(&mut self) -> usize {
        match self.below(8) {
            0 => 0,
            1 => usize::MAX,
            n => n as usize,
        }
    }
}

/// What the log should hold, kept the plainest way.
#[derive(Default)]
struct Model {
    /// Every event in position order (position p at index p - 1): its account (an index into
    /// the run's accounts), its number (see [`new_event`]) and its recording time in seconds.
    events: Vec<(usize, u64, i64)>,
    /// The position of every appended batch's last event: where a crash may cut the log.
    batch_ends: Vec<u64>,
    /// Everything up to this position has been synced.
    synced: u64,
}

impl Model {
    fn last_position(&self) -> u64 {
        self.events.len() as u64
    }

    /// The positions of one stream, in version order.
    fn stream(&self, which: usize) -> Vec<u64> {
        (1..=self.last_position()).filter(|&p| self.events[p as usize - 1].0 == which).collect()
    }

    /// The version of the event at each position (position p at index p - 1).
    fn versions(&self) -> Vec<u64> {
        let mut counts: BTreeMap<usize, u64> = BTreeMap::new();
        self.events
            .iter()
            .map(|&(which, _, _)| {
                let count = counts.entry(which).or_default();
                *count += 1;
                *count
            })
            .collect()
    }

    fn position_of(&self, n: u64) -> Option<u64> {
        self.events.iter().position(|&(_, m, _)| m == n).map(|index| index as u64 + 1)
    }

    /// The time the next batch is recorded at if the clock says `time`.
    fn recording_time(&self, time: i64) -> i64 {
        self.events.last().map_or(time, |&(_, _, last)| last.max(time))
    }

    /// Forgets everything after `position`, as a crash before a sync may.
    fn truncate(&mut self, position: u64) {
        self.events.truncate(position as usize);
        self.batch_ends.retain(|&end| end <= position);
        self.synced = self.synced.min(position);
    }
}

/// Checks `log` against `model`, broadly: the log's end, one random stream in full and in a
/// random window, a random window of the whole log, a random id.
fn assert_agrees(log: &impl EventLog, model: &Model, accounts: &[AccountId], random: &mut Lcg, context: &str) {
    let version_at = model.versions();
    // Asserts that `events` are the model's events at `positions`, byte for byte.
    let assert_events = |events: &[StoredEvent], positions: &[u64], what: &str| {
        let got: Vec<u64> = events.iter().map(|e| e.position).collect();
        assert_eq!(got, positions, "{context}: positions of {what}");
        for event in events {
            let (which, n, time) = model.events[event.position as usize - 1];
            let version = version_at[event.position as usize - 1];
            assert_eq!(
                (&event.account_id, event.version, event.event_id, &event.payload, event.recorded_at),
                (&accounts[which], version, new_event(n).event_id, &new_event(n).payload, at(time)),
                "{context}: the event at position {} in {what}",
                event.position
            );
        }
    };

    assert_eq!(log.last_position().unwrap(), model.last_position(), "{context}: last position");

    let which = random.below(accounts.len() as u64) as usize;
    let account_id = &accounts[which];
    let stream = model.stream(which);
    let whole = log.read_stream(account_id, 0, Direction::Forwards, usize::MAX).unwrap();
    assert_events(&whole, &stream, &format!("stream {account_id}"));
    assert_chains(&whole, &format!("{context}: stream {account_id}"));
    let head = log.stream_head(account_id).unwrap();
    let want_head =
        whole.last().map(|e| StreamHead { version: stream.len() as u64, position: e.position, hash: e.hash });
    assert_eq!(head, want_head, "{context}: head of {account_id}");

    // A window of the stream, worked out from the contract's rules for `from_version`.
    let n_versions = stream.len() as u64;
    let from = random.below(n_versions + 3);
    let limit = random.limit();
    let (direction, versions): (Direction, Vec<u64>) = if random.below(2) == 0 {
        (Direction::Forwards, (from.max(1)..=n_versions).take(limit).collect())
    } else {
        let start = if from == 0 || from > n_versions { n_versions } else { from };
        (Direction::Backwards, (1..=start).rev().take(limit).collect())
    };
    let positions: Vec<u64> = versions.iter().map(|&v| stream[v as usize - 1]).collect();
    let window = log.read_stream(account_id, from, direction, limit).unwrap();
    assert_events(&window, &positions, &format!("stream {account_id} from {from} {direction:?} limit {limit}"));

    // A window of the whole log.
    let from = random.below(model.last_position() + 3);
    let limit = random.limit();
    let positions: Vec<u64> = (from.max(1)..=model.last_position()).take(limit).collect();
    let window = log.read_all(from, limit).unwrap();
    assert_events(&window, &positions, &format!("the log from {from} limit {limit}"));

    // An id: recorded, lost to a crash, failed, or never used.
    let n = 1 + random.below(model.events.iter().map(|&(_, n, _)| n).max().unwrap_or(0) + 2);
    let found = log.find_event(&new_event(n).event_id).unwrap();
    let positions: Vec<u64> = model.position_of(n).into_iter().collect();
    assert_events(found.as_slice(), &positions, &format!("event {n}"));
}

/// A seeded random run of appends (some failing), syncs, reopens with and without a sync, and
/// reads, checked against a plain model after every step. A reopen without a sync may lose
/// unsynced batches, but only whole ones, latest first; the model follows what the log kept.
pub fn a_model_of_random_appends_and_reboots_agrees(harness: &mut impl Harness) {
    let mut random = Lcg(0x5EED);
    // "c" and "ca" share a prefix, so a store that keys streams by name must keep them apart.
    let accounts: Vec<AccountId> = ["a", "b", "c", "ca"].into_iter().map(account).collect();
    let mut model = Model::default();
    let mut next = 1u64; // The number of the next event to make; never reused.
    let mut log = harness.fresh();
    for step in 0..500i64 {
        let operation = random.below(16);
        let context = format!("step {step} (operation {operation})");
        let which = random.below(accounts.len() as u64) as usize;
        let current = model.stream(which).len() as u64;
        // A clock that mostly moves forward and sometimes jumps back.
        let time = step - random.below(40) as i64;
        match operation {
            0 => {
                log.sync().unwrap();
                model.synced = model.last_position();
                log = harness.reopen(log);
            }
            1 => {
                // Closing without a sync: a clean close may well keep everything (sled and
                // the memory log do), but only what was synced is promised.
                log = harness.reopen(log);
                let kept = log.last_position().unwrap();
                assert!(
                    kept >= model.synced && kept <= model.last_position(),
                    "{context}: {kept} events after a reopen without sync; synced {}, appended {}",
                    model.synced,
                    model.last_position()
                );
                assert!(kept == 0 || model.batch_ends.contains(&kept), "{context}: {kept} cuts a batch");
                model.truncate(kept);
            }
            2 | 3 => {
                log.sync().unwrap();
                model.synced = model.last_position();
            }
            4 => {
                // A stale or future expectation must fail and change nothing.
                let expected = if current > 0 && random.below(2) == 0 { current - 1 } else { current + 1 };
                let result = append(&log, &accounts[which], expected, &[new_event(next)], time);
                match result {
                    Err(StoreError::WrongVersion { expected: e, current: c, .. }) if (e, c) == (expected, current) => {}
                    other => panic!("{context}: expected WrongVersion {expected} vs {current}, got {other:?}"),
                }
            }
            5 if !model.events.is_empty() => {
                // Reusing a recorded id must fail and change nothing.
                let (_, taken, _) = model.events[random.below(model.last_position()) as usize];
                let position = model.position_of(taken);
                let result = append(&log, &accounts[which], current, &[new_event(next), new_event(taken)], time);
                match result {
                    Err(StoreError::DuplicateEventId { event_id, position: p }) if Some(p) == position => {
                        assert_eq!(event_id, new_event(taken).event_id, "{context}")
                    }
                    other => panic!("{context}: expected DuplicateEventId at {position:?}, got {other:?}"),
                }
            }
            6 => {
                // An id repeated within the batch must fail and change nothing.
                let events = [new_event(next), new_event(next + 1), new_event(next)];
                let result = append(&log, &accounts[which], current, &events, time);
                assert!(matches!(result, Err(StoreError::DuplicateEventId { .. })), "{context}: {result:?}");
            }
            _ => {
                let count = 1 + random.below(4);
                let events: Vec<NewEvent> = (next..next + count).map(new_event).collect();
                let recorded = model.recording_time(time);
                let appended = append(&log, &accounts[which], current, &events, time).unwrap();
                let want = crate::Appended {
                    first_version: current + 1,
                    first_position: model.last_position() + 1,
                    recorded_at: at(recorded),
                };
                assert_eq!(appended, want, "{context}: appending {count} to {}", accounts[which]);
                model.events.extend((next..next + count).map(|n| (which, n, recorded)));
                model.batch_ends.push(model.last_position());
            }
        }
        // Every event made, failed or not, gets a fresh number; ids of failed batches stay free.
        next += 4;
        assert_agrees(&log, &model, &accounts, &mut random, &context);
    }
    // Finally the whole log, after one more reboot.
    log.sync().unwrap();
    let log = harness.reopen(log);
    let events = everything(&log);
    let positions: Vec<u64> = (1..=model.last_position()).collect();
    assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), positions, "the final log");
    assert_chains(&events, "the final log");
}

/// Runs `read` on `log` in a thread until `done`, and once more after it.
fn spawn_reader<L: EventLog>(
    log: &Arc<L>,
    done: &Arc<AtomicBool>,
    read: impl Fn(&L) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let (log, done) = (Arc::clone(log), Arc::clone(done));
    std::thread::spawn(move || {
        loop {
            let finished = done.load(Ordering::Acquire);
            read(&log);
            if finished {
                break;
            }
        }
    })
}

/// Readers running while one writer appends see, up to any `last_position` or stream head they
/// observed, the whole log or stream: no gaps, verified chains. (That is what a server capping
/// reads at a known position relies on; whether a read past it sees part of a batch being
/// written is not specified.)
pub fn readers_during_appends_see_whole_prefixes<H: Harness>(harness: &mut H) {
    let log = Arc::new(harness.fresh());
    let done = Arc::new(AtomicBool::new(false));
    let accounts = [account("a"), account("b")];
    let mut readers = vec![spawn_reader(&log, &done, |log| {
        let known = log.last_position().unwrap();
        let events = log.read_all(0, known as usize).unwrap();
        let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
        assert_eq!(positions, (1..=known).collect::<Vec<_>>(), "the log up to {known}");
        assert_chains(&events, &format!("the log up to {known}"));
    })];
    for account_id in accounts.clone() {
        readers.push(spawn_reader(&log, &done, move |log| {
            let head = log.stream_head(&account_id).unwrap();
            let n_versions = head.map_or(0, |h| h.version);
            let forwards = log.read_stream(&account_id, 0, Direction::Forwards, n_versions as usize).unwrap();
            let versions: Vec<u64> = forwards.iter().map(|e| e.version).collect();
            assert_eq!(versions, (1..=n_versions).collect::<Vec<_>>(), "{account_id} up to {n_versions}");
            assert_chains(&forwards, &format!("{account_id} up to {n_versions}"));
            assert_eq!(forwards.last().map(|e| e.hash), head.map(|h| h.hash), "{account_id}: head hash");
            if n_versions > 0 {
                // (From version 0 would mean from the head, which may have moved on since.)
                let backwards = log.read_stream(&account_id, n_versions, Direction::Backwards, usize::MAX).unwrap();
                let versions: Vec<u64> = backwards.iter().map(|e| e.version).collect();
                assert_eq!(versions, (1..=n_versions).rev().collect::<Vec<_>>(), "{account_id} from {n_versions} back");
            }
        }));
    }
    for batch in 0..100u64 {
        let events: Vec<NewEvent> = (batch * 4 + 1..=batch * 4 + 4).map(new_event).collect();
        append(log.as_ref(), &accounts[(batch % 2) as usize], (batch / 2) * 4, &events, 10).unwrap();
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.join().expect("a reader saw an inconsistent log");
    }
    assert_eq!(log.last_position().unwrap(), 400);
    assert_chains(&everything(log.as_ref()), "the final log");
}

/// What every [`crate::ProjectionStore`] must do: namespaces appear with their first commit,
/// commits replace entries and the checkpoint together, scans go in key order from a cursor,
/// namespaces drop whole, settings stick. `reopen` closes the store and opens it again (after
/// a flush), as a restarted server would; a store that keeps nothing across processes returns
/// it as it is.
pub fn projection_store<P: crate::ProjectionStore>(store: P, reopen: impl FnOnce(P) -> P) {
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    assert!(store.namespaces().unwrap().is_empty());
    assert_eq!(store.checkpoint("x@1").unwrap(), None);
    assert_eq!(store.get("x@1", b"k").unwrap(), None);
    assert!(store.scan("x@1", None, 10).unwrap().is_empty());

    store.commit("x@1", &[(b("b"), b("2")), (b("a"), b("1")), (b("c"), b("3"))], b("cp1")).unwrap();
    store.commit("y@2", &[], b("cp-y")).unwrap();
    assert_eq!(store.namespaces().unwrap(), vec!["x@1".to_owned(), "y@2".to_owned()]);
    assert_eq!(store.checkpoint("x@1").unwrap(), Some(b("cp1")));
    let keys = |entries: Vec<(Bytes, Bytes)>| entries.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(store.scan("x@1", None, 10).unwrap()), vec![b("a"), b("b"), b("c")]);
    assert_eq!(keys(store.scan("x@1", Some(b"a"), 1).unwrap()), vec![b("b")]);
    assert_eq!(keys(store.scan("x@1", Some(b"c"), 10).unwrap()), Vec::<Bytes>::new());
    assert!(store.scan("y@2", None, 10).unwrap().is_empty(), "namespaces do not share entries");

    store.commit("x@1", &[(b("b"), b("two")), (b("d"), b("4"))], b("cp2")).unwrap();
    assert_eq!(store.get("x@1", b"b").unwrap(), Some(b("two")));
    assert_eq!(store.get("x@1", b"a").unwrap(), Some(b("1")), "untouched entries stay");
    assert_eq!(store.checkpoint("x@1").unwrap(), Some(b("cp2")));

    store.set_setting("active", b("x@1")).unwrap();
    store.flush().unwrap();
    let store = reopen(store);
    assert_eq!(store.setting("active").unwrap(), Some(b("x@1")));
    assert_eq!(store.checkpoint("x@1").unwrap(), Some(b("cp2")));
    assert_eq!(keys(store.scan("x@1", None, 10).unwrap()), vec![b("a"), b("b"), b("c"), b("d")]);

    store.drop_namespace("x@1").unwrap();
    store.drop_namespace("never@1").unwrap();
    assert_eq!(store.namespaces().unwrap(), vec!["y@2".to_owned()]);
    assert_eq!(store.get("x@1", b"a").unwrap(), None);
    assert_eq!(store.checkpoint("x@1").unwrap(), None);
}

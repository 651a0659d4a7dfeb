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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rapport_domain::{AccountId, EventId, Limits, Timestamp};

use crate::{AppendBatch, Direction, EventLog, GENESIS_HASH, NewEvent, StoreError, StoredEvent};

/// How the suite makes and reopens logs of one backend.
pub trait Harness {
    /// The backend.
    type Log: EventLog;
    /// A new, empty log.
    fn fresh(&mut self) -> Self::Log;
    /// Closes `log` and opens the same store again, as a restarted server would. A backend
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
            heads_and_lookups_follow_appends,
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
    log.append(AppendBatch { account_id, expected_version: expected, recorded_at: at(time), events })
}

fn everything(log: &impl EventLog) -> Vec<StoredEvent> {
    log.read_all(0, usize::MAX).expect("read_all")
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
    let mut last: BTreeMap<String, [u8; 32]> = BTreeMap::new();
    for event in everything(&log) {
        assert_eq!(event.hash, event.computed_hash(), "position {}", event.position);
        let previous = last.insert(event.account_id.to_string(), event.hash).unwrap_or(GENESIS_HASH);
        assert_eq!(event.prev_hash, previous, "position {} chains to its stream", event.position);
        assert_eq!(event.payload, new_event(u64::from(event.event_id.as_bytes()[15])).payload);
    }
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

/// A seeded random run of appends (some failing), syncs, reopens and reads, checked against a
/// plain model after every step.
pub fn a_model_of_random_appends_and_reboots_agrees(harness: &mut impl Harness) {
    let mut state = 0x5EED_u64;
    let mut random = move |n: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let accounts: Vec<AccountId> = ["a", "b", "c", "ca"].into_iter().map(account).collect();
    // The model: per account, the event numbers of its stream; all events in position order.
    let mut streams: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut order: Vec<(usize, u64)> = Vec::new();
    let mut next = 1u64;
    let mut log = harness.fresh();
    for step in 0..400 {
        match random(10) {
            0 => {
                log.sync().unwrap();
                log = harness.reopen(log);
            }
            1 => log.sync().unwrap(),
            2 => {
                // A stale expectation must fail and change nothing.
                let which = random(accounts.len() as u64) as usize;
                let current = streams.get(&which).map_or(0, |s| s.len() as u64);
                let result = append(&log, &accounts[which], current + 1, &[new_event(next)], step);
                assert!(matches!(result, Err(StoreError::WrongVersion { .. })), "step {step}: {result:?}");
            }
            3 if next > 1 => {
                // Reusing a recorded id must fail and change nothing.
                let which = random(accounts.len() as u64) as usize;
                let current = streams.get(&which).map_or(0, |s| s.len() as u64);
                let taken = 1 + random(next - 1);
                let result = append(&log, &accounts[which], current, &[new_event(next), new_event(taken)], step);
                assert!(matches!(result, Err(StoreError::DuplicateEventId { .. })), "step {step}: {result:?}");
            }
            _ => {
                let which = random(accounts.len() as u64) as usize;
                let stream = streams.entry(which).or_default();
                let count = 1 + random(4);
                let events: Vec<NewEvent> = (next..next + count).map(new_event).collect();
                let appended = append(&log, &accounts[which], stream.len() as u64, &events, step).unwrap();
                assert_eq!(appended.first_version, stream.len() as u64 + 1, "step {step}");
                assert_eq!(appended.first_position, order.len() as u64 + 1, "step {step}");
                for n in next..next + count {
                    stream.push(n);
                    order.push((which, n));
                }
                next += count;
            }
        }
        // Check a random stream and a random window of the log against the model.
        let which = random(accounts.len() as u64) as usize;
        let want: Vec<u64> = streams.get(&which).cloned().unwrap_or_default();
        let got: Vec<u64> = log
            .read_stream(&accounts[which], 0, Direction::Forwards, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| u64::from_be_bytes(e.event_id.as_bytes()[8..].try_into().unwrap()))
            .collect();
        assert_eq!(got, want, "step {step}: stream {}", accounts[which]);
        assert_eq!(log.last_position().unwrap(), order.len() as u64, "step {step}");
        if !order.is_empty() {
            let from = 1 + random(order.len() as u64);
            let window = log.read_all(from, 5).unwrap();
            for (offset, event) in window.iter().enumerate() {
                let (which, n) = order[from as usize - 1 + offset];
                assert_eq!(
                    (&event.account_id, event.event_id),
                    (&accounts[which], new_event(n).event_id),
                    "step {step}"
                );
            }
        }
    }
    // Finally the whole log: every chain verifies.
    let mut heads: BTreeMap<String, [u8; 32]> = BTreeMap::new();
    for event in everything(&log) {
        assert_eq!(event.hash, event.computed_hash());
        assert_eq!(event.prev_hash, heads.insert(event.account_id.to_string(), event.hash).unwrap_or(GENESIS_HASH));
    }
}

/// Readers running while one writer appends see, up to any `last_position` they observed,
/// the whole log: no gaps, verified hashes. (That is what a server capping reads at a known
/// position relies on; whether a read past it sees part of a batch being written is not
/// specified.)
pub fn readers_during_appends_see_whole_prefixes<H: Harness>(harness: &mut H) {
    let log = Arc::new(harness.fresh());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (log, done) = (Arc::clone(&log), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(Ordering::Acquire) || reads == 0 {
                    let known = log.last_position().unwrap();
                    let events = log.read_all(0, known as usize).unwrap();
                    assert_eq!(events.len() as u64, known, "everything up to the known position is readable");
                    for (index, event) in events.iter().enumerate() {
                        assert_eq!(event.position, index as u64 + 1, "no gaps");
                        assert_eq!(event.hash, event.computed_hash());
                    }
                    reads += 1;
                }
            })
        })
        .collect();
    let accounts = [account("a"), account("b")];
    for batch in 0..100u64 {
        let events: Vec<NewEvent> = (batch * 4 + 1..=batch * 4 + 4).map(new_event).collect();
        append(log.as_ref(), &accounts[(batch % 2) as usize], (batch / 2) * 4, &events, 10).unwrap();
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.join().expect("a reader thread");
    }
    assert_eq!(log.last_position().unwrap(), 400);
}

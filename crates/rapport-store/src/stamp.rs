//! The one stamping of appended events: versions after the stream's head, positions after the
//! log's last, a recording time that never goes back, the hash chain and the identity that
//! appended them. Every backend's `append_all` runs its batches through a [`Staging`], so the
//! Order and Tamper-evidence invariants are written here once and a backend writes storage only.

use std::collections::HashMap;

use rapport_domain::{AccountId, EventId, Timestamp};

use crate::{AppendBatch, Appended, GENESIS_HASH, HashScheme, StoreError, StoredEvent, StreamHead, chain_hash};

/// What a [`Staging`] asks a backend about the log as it stands (as published, before this
/// `append_all`), for the streams and ids its own staged batches do not already answer.
///
/// Methods take `&mut self` so that a backend can cache what it looks up.
pub trait PublishedLog {
    /// The last event of a stream as published; `None` when the stream is empty.
    fn stream_head(&mut self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError>;

    /// The position of the published event with this id, if the log holds one.
    fn event_position(&mut self, event_id: &EventId) -> Result<Option<u64>, StoreError>;
}

/// The end of the log as the batches of one `append_all` see it, batch after batch, before any
/// of them is published: the last position and recording time, and the heads and ids of the
/// batches staged so far.
///
/// A backend starts one from the end it has published ([`Staging::new`]), runs each batch
/// through [`Staging::stage`] (which checks it, stamps its events and hands them to the
/// backend to write), and once its write has succeeded publishes [`Staging::finish`].
#[derive(Debug)]
pub struct Staging {
    last_position: u64,
    last_recorded_at: Option<Timestamp>,
    heads: HashMap<AccountId, StreamHead>,
    ids: HashMap<EventId, u64>,
    /// How the stamped events are hashed.
    scheme: HashScheme,
    /// The events of the batch being staged; kept to reuse its allocation for the next batch.
    stamped: Vec<StoredEvent>,
}

/// The end of the log once every staged batch is written: what a backend publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedEnd {
    /// The position of the last staged event (the published one if nothing was staged).
    pub last_position: u64,
    /// The recording time of the last staged event (`None`: the log is still empty).
    pub last_recorded_at: Option<Timestamp>,
    /// The new head of every stream a staged batch went to.
    pub heads: HashMap<AccountId, StreamHead>,
}

impl Staging {
    /// A staging at the log's published end: its last position (0: empty) and the recording
    /// time of its last event (`None`: empty). Its events are hashed with their positions.
    pub fn new(last_position: u64, last_recorded_at: Option<Timestamp>) -> Staging {
        Staging {
            last_position,
            last_recorded_at,
            heads: HashMap::new(),
            ids: HashMap::new(),
            scheme: HashScheme::Positioned,
            stamped: Vec::new(),
        }
    }

    /// The same staging hashing its events without their positions
    /// ([`HashScheme::Unpositioned`]): for a log whose positions are given by a replicated
    /// stream once the events are stored. The positions it stamps are then what they will be
    /// if no other writer's events come first; the log replaces them with the stream's.
    pub fn unpositioned(self) -> Staging {
        Staging { scheme: HashScheme::Unpositioned, ..self }
    }

    /// Checks `batch` against the log with the batches staged before it ([`AppendBatch::check`],
    /// asking `log` only what this staging does not hold), stamps its events and passes them to
    /// `write`, which puts them in the backend's pending write (in order, every one of them).
    ///
    /// Each event gets the next version of its stream and the next position of the log, the
    /// recording time `max(batch.recorded_at, last recorded_at)` (the batch's own when the log
    /// is empty), `prev_hash` the hash of the previous event of its stream ([`GENESIS_HASH`] for
    /// version 1), its [`chain_hash`] and `batch.recorded_by`.
    ///
    /// If the check or `write` fails, the error is returned and the staging is as before, so the
    /// next batch is checked and stamped as if this one had not been given. Otherwise the
    /// batch's head, ids, last position and recording time are remembered for the next batch.
    pub fn stage(
        &mut self,
        batch: &AppendBatch<'_>,
        log: &mut impl PublishedLog,
        write: impl FnOnce(&[StoredEvent]) -> Result<(), StoreError>,
    ) -> Result<Appended, StoreError> {
        // Held to the end, so that a stream staged before is looked up once.
        let staged_head = self.heads.get_mut(batch.account_id);
        let head = match &staged_head {
            Some(head) => Some(**head),
            None => log.stream_head(batch.account_id)?,
        };
        let current = head.map_or(0, |h| h.version);
        batch.check(current, |id| match self.ids.get(id) {
            Some(&position) => Ok(Some(position)),
            None => log.event_position(id),
        })?;

        let first_version = current + 1;
        let first_position = self.last_position + 1;
        let recorded_at = self.last_recorded_at.map_or(batch.recorded_at, |last| last.max(batch.recorded_at));
        let mut prev_hash = head.map_or(GENESIS_HASH, |h| h.hash);
        self.stamped.clear();
        self.stamped.reserve(batch.events.len());
        for (offset, new) in (0u64..).zip(batch.events) {
            let mut event = StoredEvent {
                account_id: batch.account_id.clone(),
                version: first_version + offset,
                position: first_position + offset,
                recorded_at,
                event_id: new.event_id,
                recorded_by: batch.recorded_by.to_owned(),
                payload: new.payload.clone(),
                prev_hash,
                hash: GENESIS_HASH,
                scheme: self.scheme,
            };
            event.hash = chain_hash(&event);
            prev_hash = event.hash;
            self.stamped.push(event);
        }
        write(&self.stamped)?;

        // `check` refused an empty batch, so there is a last event.
        if let Some(last) = self.stamped.last() {
            let new_head = StreamHead { version: last.version, position: last.position, hash: last.hash };
            match staged_head {
                Some(staged) => *staged = new_head,
                None => {
                    self.heads.insert(batch.account_id.clone(), new_head);
                }
            }
            self.last_position = last.position;
        }
        self.ids.extend(self.stamped.iter().map(|e| (e.event_id, e.position)));
        self.last_recorded_at = Some(recorded_at);
        Ok(Appended { first_version, first_position, recorded_at })
    }

    /// The position of the last staged event (the published one if nothing was staged yet).
    pub fn last_position(&self) -> u64 {
        self.last_position
    }

    /// The end of the log with every staged batch: for the backend to publish once its write
    /// has succeeded (and to drop if it failed).
    pub fn finish(self) -> StagedEnd {
        StagedEnd { last_position: self.last_position, last_recorded_at: self.last_recorded_at, heads: self.heads }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewEvent;
    use bytes::Bytes;
    use rapport_domain::Limits;

    fn account(name: &str) -> AccountId {
        AccountId::parse(name, &Limits::default()).unwrap()
    }

    fn event(n: u8) -> NewEvent {
        let mut id = [0u8; 16];
        id[6] = 0x40;
        id[15] = n;
        NewEvent { event_id: EventId::from_bytes(id), payload: Bytes::from(vec![n; n as usize]) }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_nanos(seconds * 1_000_000_000)
    }

    fn batch<'a>(account_id: &'a AccountId, expected: u64, time: i64, events: &'a [NewEvent]) -> AppendBatch<'a> {
        AppendBatch { account_id, expected_version: expected, recorded_at: at(time), recorded_by: "crm", events }
    }

    /// A published log of hand-set heads and ids, counting what it is asked.
    #[derive(Default)]
    struct Published {
        heads: HashMap<AccountId, StreamHead>,
        ids: HashMap<EventId, u64>,
        head_lookups: Vec<String>,
        id_lookups: usize,
    }

    impl PublishedLog for Published {
        fn stream_head(&mut self, account_id: &AccountId) -> Result<Option<StreamHead>, StoreError> {
            self.head_lookups.push(account_id.to_string());
            Ok(self.heads.get(account_id).copied())
        }
        fn event_position(&mut self, event_id: &EventId) -> Result<Option<u64>, StoreError> {
            self.id_lookups += 1;
            Ok(self.ids.get(event_id).copied())
        }
    }

    /// Stages `batch`, keeping what it wrote.
    fn stage(
        staging: &mut Staging,
        log: &mut Published,
        batch: &AppendBatch<'_>,
        written: &mut Vec<StoredEvent>,
    ) -> Result<Appended, StoreError> {
        staging.stage(batch, log, |events| {
            written.extend_from_slice(events);
            Ok(())
        })
    }

    /// The record the contract says the stamping makes, built field by field.
    #[allow(clippy::too_many_arguments)]
    fn record(
        account_id: &AccountId,
        version: u64,
        position: u64,
        time: i64,
        new: &NewEvent,
        recorded_by: &str,
        prev_hash: [u8; 32],
    ) -> StoredEvent {
        let mut event = StoredEvent {
            account_id: account_id.clone(),
            version,
            position,
            recorded_at: at(time),
            event_id: new.event_id,
            recorded_by: recorded_by.into(),
            payload: new.payload.clone(),
            prev_hash,
            hash: [0; 32],
            scheme: HashScheme::Positioned,
        };
        event.hash = chain_hash(&event);
        event
    }

    #[test]
    fn versions_follow_the_published_head_and_positions_the_published_end() {
        let a = account("a");
        let head_hash = [9; 32];
        let mut log = Published::default();
        log.heads.insert(a.clone(), StreamHead { version: 4, position: 17, hash: head_hash });
        let mut staging = Staging::new(20, Some(at(100)));
        let events = [event(1), event(2)];
        let mut written = Vec::new();
        let appended = stage(&mut staging, &mut log, &batch(&a, 4, 150, &events), &mut written).unwrap();
        assert_eq!(appended, Appended { first_version: 5, first_position: 21, recorded_at: at(150) });
        let first = record(&a, 5, 21, 150, &events[0], "crm", head_hash);
        let second = record(&a, 6, 22, 150, &events[1], "crm", first.hash);
        assert_eq!(written, [first, second.clone()]);
        let end = staging.finish();
        assert_eq!((end.last_position, end.last_recorded_at), (22, Some(at(150))));
        assert_eq!(end.heads[&a], StreamHead { version: 6, position: 22, hash: second.hash });
    }

    #[test]
    fn a_new_stream_starts_at_version_one_chained_to_genesis_and_an_empty_log_at_position_one() {
        let a = account("a");
        let mut staging = Staging::new(0, None);
        let events = [event(1)];
        let mut written = Vec::new();
        // The first event of a log keeps the given time, even one before 1970.
        let appended = stage(&mut staging, &mut Published::default(), &batch(&a, 0, -5, &events), &mut written);
        assert_eq!(appended.unwrap(), Appended { first_version: 1, first_position: 1, recorded_at: at(-5) });
        assert_eq!(written, [record(&a, 1, 1, -5, &events[0], "crm", GENESIS_HASH)]);
        // Hand-checked against the documented definition (hash.rs's known answers cover the
        // function itself): the identity is part of the input.
        assert_ne!(written[0].hash, record(&a, 1, 1, -5, &events[0], "", GENESIS_HASH).hash);
    }

    #[test]
    fn the_recording_time_never_goes_back_when_the_clock_does() {
        let (a, b) = (account("a"), account("b"));
        let mut staging = Staging::new(3, Some(at(100)));
        let mut log = Published::default();
        let mut written = Vec::new();
        let (first, second, third) = ([event(1)], [event(2)], [event(3)]);
        // Behind the published end, then ahead of it, then behind the staged batch.
        let times: Vec<Timestamp> = [batch(&a, 0, 90, &first), batch(&b, 0, 120, &second), batch(&a, 1, 110, &third)]
            .iter()
            .map(|b| stage(&mut staging, &mut log, b, &mut written).unwrap().recorded_at)
            .collect();
        assert_eq!(times, [at(100), at(120), at(120)]);
        let stamped: Vec<Timestamp> = written.iter().map(|e| e.recorded_at).collect();
        assert_eq!(stamped, [at(100), at(120), at(120)]);
        assert_eq!(staging.finish().last_recorded_at, Some(at(120)));
    }

    #[test]
    fn batches_of_one_stream_in_one_call_chain_and_ask_the_log_once() {
        let (a, b) = (account("a"), account("b"));
        let mut log = Published::default();
        let mut staging = Staging::new(0, None);
        let mut written = Vec::new();
        let (first, other, second) = ([event(1), event(2)], [event(3)], [event(4)]);
        stage(&mut staging, &mut log, &batch(&a, 0, 10, &first), &mut written).unwrap();
        stage(&mut staging, &mut log, &batch(&b, 0, 10, &other), &mut written).unwrap();
        let appended = stage(&mut staging, &mut log, &batch(&a, 2, 10, &second), &mut written).unwrap();
        assert_eq!((appended.first_version, appended.first_position), (3, 4));
        // a1 and a2 at positions 1 and 2, b1 at 3, a3 at 4 chained to a2.
        let a1 = record(&a, 1, 1, 10, &first[0], "crm", GENESIS_HASH);
        let a2 = record(&a, 2, 2, 10, &first[1], "crm", a1.hash);
        let b1 = record(&b, 1, 3, 10, &other[0], "crm", GENESIS_HASH);
        let a3 = record(&a, 3, 4, 10, &second[0], "crm", a2.hash);
        assert_eq!(written, [a1, a2, b1, a3.clone()]);
        assert_eq!(log.head_lookups, ["a", "b"], "the head of a staged stream comes from the staging");
        let end = staging.finish();
        assert_eq!(end.heads.len(), 2);
        assert_eq!(end.heads[&a], StreamHead { version: 3, position: 4, hash: a3.hash });
    }

    #[test]
    fn an_id_staged_by_an_earlier_batch_of_the_call_is_refused_with_its_position() {
        let (a, b) = (account("a"), account("b"));
        let mut log = Published::default();
        let mut staging = Staging::new(7, None);
        let mut written = Vec::new();
        stage(&mut staging, &mut log, &batch(&a, 0, 10, &[event(1), event(2)]), &mut written).unwrap();
        let lookups = log.id_lookups;
        match stage(&mut staging, &mut log, &batch(&b, 0, 10, &[event(3), event(2)]), &mut written) {
            Err(StoreError::DuplicateEventId { event_id, position: 9 }) => assert_eq!(event_id, event(2).event_id),
            other => panic!("expected event 2 refused at position 9, got {other:?}"),
        }
        assert_eq!(log.id_lookups, lookups + 1, "only event 3 is looked up in the published log");
        assert_eq!(written.len(), 2, "nothing of the refused batch was written");
    }

    #[test]
    fn an_id_the_log_holds_is_refused_with_its_position() {
        let a = account("a");
        let mut log = Published::default();
        log.ids.insert(event(5).event_id, 3);
        let mut staging = Staging::new(3, None);
        let result = stage(&mut staging, &mut log, &batch(&a, 0, 10, &[event(5)]), &mut Vec::new());
        assert!(matches!(result, Err(StoreError::DuplicateEventId { position: 3, .. })), "{result:?}");
    }

    #[test]
    fn a_failing_batch_leaves_the_staging_as_it_was() {
        let (a, b) = (account("a"), account("b"));
        let mut log = Published::default();
        let mut staging = Staging::new(0, None);
        let mut written = Vec::new();
        let (first, refused, next) = ([event(1)], [event(2)], [event(3)]);
        stage(&mut staging, &mut log, &batch(&a, 0, 100, &first), &mut written).unwrap();
        // Refused by the check (a stale expected version), then by the backend's write (too
        // large, say), each with a later clock and another stream.
        let stale = stage(&mut staging, &mut log, &batch(&a, 0, 300, &refused), &mut written);
        assert!(matches!(stale, Err(StoreError::WrongVersion { current: 1, .. })), "{stale:?}");
        let full = staging.stage(&batch(&b, 0, 200, &refused), &mut log, |_| Err(StoreError::Full("test".into())));
        assert!(matches!(full, Err(StoreError::Full(_))), "{full:?}");
        // The next batch takes the place and time the refused ones would have, and may reuse
        // their id.
        let appended = stage(&mut staging, &mut log, &batch(&b, 0, 50, &refused), &mut written).unwrap();
        assert_eq!(appended, Appended { first_version: 1, first_position: 2, recorded_at: at(100) });
        let appended = stage(&mut staging, &mut log, &batch(&a, 1, 50, &next), &mut written).unwrap();
        assert_eq!(appended, Appended { first_version: 2, first_position: 3, recorded_at: at(100) });
        let a1 = record(&a, 1, 1, 100, &first[0], "crm", GENESIS_HASH);
        let b1 = record(&b, 1, 2, 100, &refused[0], "crm", GENESIS_HASH);
        let a2 = record(&a, 2, 3, 100, &next[0], "crm", a1.hash);
        assert_eq!(written, [a1, b1, a2]);
        assert_eq!(staging.last_position(), 3);
    }

    #[test]
    fn nothing_staged_finishes_at_the_published_end() {
        let mut staging = Staging::new(12, Some(at(5)));
        let empty = staging.stage(&batch(&account("a"), 0, 9, &[]), &mut Published::default(), |_| Ok(()));
        assert!(matches!(empty, Err(StoreError::InvalidBatch(_))), "{empty:?}");
        assert_eq!(
            staging.finish(),
            StagedEnd { last_position: 12, last_recorded_at: Some(at(5)), heads: HashMap::new() }
        );
    }
}

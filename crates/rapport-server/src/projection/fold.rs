//! Folding the log into a build: a catch-up in steps of chunks, each chunk folded by one
//! thread per core (an account's events stay on one thread, in order), and the replays that
//! retractions and past states need.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use rapport_domain::{AccountId, Event, EventBody};
use rapport_projection::{AccountProjection, Cut, Folded, RuleSet};
use rapport_store::{Direction, EventLog, StoredEvent};
use rapport_wire::decode_event;

use super::build::Build;
use crate::error::ReadError;

/// Events read from the log at a time.
pub(super) const CHUNK: usize = 4_096;
/// How long a step of a catch-up folds before it publishes what it folded. Each step copies
/// every account it touches out of the build once (readers keep the published pictures), so
/// its length is what the copies cost is spread over: a step of 32,768 events had a
/// 1,000-account rebuild copying every account 31 times per million events, a quarter of its
/// time. Bounded by time rather than events, so that a catch-up shows its progress as often
/// whatever the log's accounts look like.
const STEP: Duration = Duration::from_millis(500);

impl Build {
    /// Folds the log from this build's position up to `target`, in chunks. Stops early (and
    /// returns `Ok(false)`) when `keep_going` turns false. Holds the fold lock a step at a time;
    /// a step ends at `target`, so for a build within a chunk of the log (as activation
    /// requires) an activation waits for that chunk at most.
    pub fn catch_up(&self, log: &dyn EventLog, target: u64, keep_going: impl Fn() -> bool) -> Result<bool, ReadError> {
        let workers = fold_workers();
        let mut replaced = Vec::new();
        loop {
            if !keep_going() {
                return Ok(false);
            }
            let _folding = self.fold.lock().unwrap_or_else(PoisonError::into_inner);
            let step_start = self.position() + 1;
            if step_start > target {
                return Ok(true);
            }
            let began = Instant::now();
            // Accounts are copied out of the build once per step and folded in place.
            let mut changed: Vec<HashMap<AccountId, AccountProjection>> =
                (0..workers).map(|_| HashMap::new()).collect();
            let mut end = None;
            let mut chunk = read_chunk(log, step_start, target)?;
            // Stopping is checked per chunk, so a shutdown waits for one chunk at most.
            while let Some(last) = chunk.last() {
                end = Some((last.position, last.recorded_at));
                let next = last.position + 1;
                let go_on = next <= target && began.elapsed() < STEP && keep_going();
                // The next chunk is read while this one is folded, and the pictures the last
                // step replaced are freed meanwhile too.
                let freeing = std::mem::take(&mut replaced);
                let (folded, read) = std::thread::scope(|scope| {
                    let reading = go_on.then(|| {
                        scope.spawn(move || {
                            drop(freeing);
                            read_chunk(log, next, target)
                        })
                    });
                    let folded = self.fold_chunk(log, &chunk, &mut changed);
                    let read = reading.map(|r| r.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
                    (folded, read)
                });
                folded?;
                chunk = match read {
                    Some(read) => read?,
                    None => Vec::new(),
                };
            }
            let Some((position, recorded_at)) = end else { return Ok(true) };
            let changed = changed.into_iter().flatten().map(|(id, p)| (id, Arc::new(p)));
            replaced = self.publish(changed, position, recorded_at);
        }
    }

    /// Folds a chunk of the log into `changed`, one share of the accounts per worker. Accounts
    /// fold independently; a hash of the account id picks its worker, so that an account's
    /// events stay in order on one.
    fn fold_chunk(
        &self,
        log: &dyn EventLog,
        chunk: &[StoredEvent],
        changed: &mut [HashMap<AccountId, AccountProjection>],
    ) -> Result<(), ReadError> {
        let workers = changed.len();
        if let [only] = changed {
            return self.fold_share(log, chunk, only, |_| true);
        }
        std::thread::scope(|scope| {
            let shares: Vec<_> = changed
                .iter_mut()
                .enumerate()
                .map(|(worker, share)| {
                    scope.spawn(move || self.fold_share(log, chunk, share, |id| worker_of(id, workers) == worker))
                })
                .collect();
            shares
                .into_iter()
                .try_for_each(|share| share.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        })
    }

    /// Folds the events of `chunk` whose account `mine` picks into `changed`, copying each
    /// account out of the build the first time.
    fn fold_share(
        &self,
        log: &dyn EventLog,
        chunk: &[StoredEvent],
        changed: &mut HashMap<AccountId, AccountProjection>,
        mine: impl Fn(&AccountId) -> bool,
    ) -> Result<(), ReadError> {
        for record in chunk.iter().filter(|record| mine(&record.account_id)) {
            let event = decode_event(record)?;
            if let Some(projection) = changed.get_mut(&record.account_id) {
                fold_into(log, &self.rules, projection, record, &event)?;
            } else {
                let current = self.get(&record.account_id)?.map(|p| (*p).clone());
                let folded = fold(log, &self.rules, current, record, &event)?;
                changed.insert(record.account_id.clone(), folded);
            }
        }
        Ok(())
    }
}

/// The chunk of the log from `next`, up to `target`.
fn read_chunk(log: &dyn EventLog, next: u64, target: u64) -> Result<Vec<StoredEvent>, ReadError> {
    let limit = usize::try_from(target - next + 1).unwrap_or(CHUNK).min(CHUNK);
    Ok(log.read_all(next, limit)?)
}

/// How many threads fold a catch-up (and work out a digest): one per core, at most four
/// (beyond that the reading of the log, which one thread does, is the limit).
pub(super) fn fold_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4)
}

/// Which of `workers` folds an account: a hash of its id (the same in every run, so the
/// share of work is too).
fn worker_of(account_id: &AccountId, workers: usize) -> usize {
    // FNV-1a: short ids, no need for more.
    let hash = account_id
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % workers as u64) as usize
}

/// A recorded event as a projection folds it.
fn folded<'a>(record: &StoredEvent, event: &'a Event) -> Folded<'a> {
    Folded { event, version: record.version, position: record.position, recorded_at: record.recorded_at }
}

/// An account's stream from version 1, at most `limit` events, with each event decoded.
fn read_decoded(
    log: &dyn EventLog,
    account_id: &AccountId,
    limit: usize,
) -> Result<(Vec<StoredEvent>, Vec<Event>), ReadError> {
    let records = log.read_stream(account_id, 1, Direction::Forwards, limit)?;
    let events = records.iter().map(decode_event).collect::<Result<Vec<_>, _>>()?;
    Ok((records, events))
}

/// Folds one recorded event into its account's projection. A retraction replays the stream up
/// to it, so that the retracted event's effect is gone. Every fold of a recorded event comes
/// here or to [`fold_into`]: a build's catch-up, and the writer for events other writers
/// appended.
pub(crate) fn fold(
    log: &dyn EventLog,
    rules: &RuleSet,
    current: Option<AccountProjection>,
    record: &StoredEvent,
    event: &Event,
) -> Result<AccountProjection, ReadError> {
    match current {
        None => AccountProjection::open(record.account_id.clone(), folded(record, event)).ok_or_else(|| {
            ReadError::Corrupt(format!(
                "the stream of account \"{}\" starts at position {} with {}, not account_opened",
                record.account_id,
                record.position,
                event.body.kind()
            ))
        }),
        Some(mut projection) => {
            fold_into(log, rules, &mut projection, record, event)?;
            Ok(projection)
        }
    }
}

/// Folds one recorded event into an account's projection in place.
pub(crate) fn fold_into(
    log: &dyn EventLog,
    rules: &RuleSet,
    projection: &mut AccountProjection,
    record: &StoredEvent,
    event: &Event,
) -> Result<(), ReadError> {
    if matches!(event.body, EventBody::EventRetracted(_)) {
        *projection = replay(log, rules, &record.account_id, record.version)?;
    } else {
        projection.apply(folded(record, event), rules);
    }
    Ok(())
}

/// Replays an account's stream up to `version` under `rules`, leaving out retracted events.
pub(crate) fn replay(
    log: &dyn EventLog,
    rules: &RuleSet,
    account_id: &AccountId,
    version: u64,
) -> Result<AccountProjection, ReadError> {
    let (records, events) = read_decoded(log, account_id, usize::try_from(version).unwrap_or(usize::MAX))?;
    let stream: Vec<Folded<'_>> = records.iter().zip(&events).map(|(r, e)| folded(r, e)).collect();
    AccountProjection::replay(account_id.clone(), &stream, rules)
        .ok_or_else(|| ReadError::Corrupt(format!("the stream of account \"{account_id}\" does not open the account")))
}

/// An account as it was, replayed from its stream up to the durable position under `rules`;
/// `None` if it did not exist then (see [`AccountProjection::as_of`]).
pub(crate) fn replay_as_of(
    log: &dyn EventLog,
    rules: &RuleSet,
    account_id: &AccountId,
    durable: u64,
    cut: Cut,
) -> Result<Option<AccountProjection>, ReadError> {
    let (records, events) = read_decoded(log, account_id, usize::MAX)?;
    let stream: Vec<Folded<'_>> = records
        .iter()
        .zip(&events)
        .filter(|(record, _)| record.position <= durable)
        .map(|(r, e)| folded(r, e))
        .collect();
    Ok(AccountProjection::as_of(account_id.clone(), &stream, cut, rules))
}

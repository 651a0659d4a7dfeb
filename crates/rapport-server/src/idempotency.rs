//! The idempotency judgement: is a request whose event ids are already recorded a retry of the
//! request that recorded them, or a conflict? Pure: the writer looks the ids up, this decides.
//!
//! A retry is the same request: the same account, the same canonical bytes of every event, in
//! the same order, recorded consecutively. It gets the original versions and positions, in
//! every expected-version mode, and writes nothing. Anything else that reuses a recorded id is
//! refused (`ALREADY_EXISTS`), saying why.

use bytes::Bytes;
use rapport_domain::{AccountId, EventId};
use rapport_store::StoredEvent;

use crate::append::AppendOutcome;
use crate::error::AppendError;

/// Judges a request for `account_id` with these event ids and payloads (in order), given what
/// the log holds under each id (`found[i]` for `ids[i]`). `Ok(None)` when no id is recorded:
/// the request is new.
pub(crate) fn judge(
    account_id: &AccountId,
    ids: &[EventId],
    payloads: &[Bytes],
    found: &[Option<StoredEvent>],
) -> Result<Option<AppendOutcome>, AppendError> {
    debug_assert!(ids.len() == payloads.len() && ids.len() == found.len());
    let Some(first_found) = found.iter().position(Option::is_some) else { return Ok(None) };
    let taken = |index: usize, detail: String| AppendError::EventIdTaken { index, event_id: ids[index], detail };
    let mut first: Option<(u64, u64)> = None;
    for (index, record) in found.iter().enumerate() {
        let Some(record) = record else {
            return Err(taken(
                first_found,
                format!(
                    "is already recorded, but events[{index}] of this request is not: a retry must resend the \
                     original request unchanged, and new events need new event ids"
                ),
            ));
        };
        let at = format!("account \"{}\", version {}, position {}", record.account_id, record.version, record.position);
        if &record.account_id != account_id {
            return Err(taken(
                index,
                format!(
                    "is already recorded in another stream ({at}); event ids are unique across the log, give this \
                     event a new id"
                ),
            ));
        }
        if record.payload != payloads[index] {
            return Err(taken(
                index,
                format!(
                    "is already recorded with different content ({at}); a retry must resend the same event, a new \
                     event needs a new id"
                ),
            ));
        }
        let (first_version, first_position) = *first.get_or_insert((record.version, record.position));
        let offset = index as u64;
        if record.version != first_version + offset || record.position != first_position + offset {
            return Err(taken(
                index,
                format!(
                    "is already recorded ({at}), but not right after the events before it in this request; resend \
                     each original request as it was"
                ),
            ));
        }
    }
    Ok(first.map(|(first_version, first_position)| AppendOutcome {
        first_version,
        first_position,
        events: ids.len() as u64,
        duplicate: true,
    }))
}

#[cfg(test)]
mod tests {
    use rapport_domain::{Limits, Timestamp};
    use rapport_store::{GENESIS_HASH, HashScheme};

    use super::*;

    fn account(id: &str) -> AccountId {
        AccountId::parse(id, &Limits::default()).unwrap()
    }

    fn id(n: u8) -> EventId {
        EventId::from_bytes([n; 16])
    }

    fn payload(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    /// The recorded event with id `n`, of `account`, at a version and position, holding `text`.
    fn recorded(n: u8, account_id: &str, version: u64, position: u64, text: &str) -> Option<StoredEvent> {
        Some(StoredEvent {
            account_id: account(account_id),
            version,
            position,
            recorded_at: Timestamp::EPOCH,
            event_id: id(n),
            recorded_by: String::new(),
            payload: payload(text),
            prev_hash: GENESIS_HASH,
            hash: GENESIS_HASH,
            scheme: HashScheme::Positioned,
        })
    }

    /// What the judgement gives: the retry's (first version, first position), `None` for a new
    /// request, or which event index the conflict names and a phrase of its detail.
    #[derive(Debug, PartialEq)]
    enum Judged {
        New,
        Retry(u64, u64),
        Taken(usize, &'static str),
    }

    fn check(name: &str, found: Vec<Option<StoredEvent>>, expected: Judged) {
        // The request: two events of "acme", ids 1 and 2, holding "a" and "b".
        let ids = [id(1), id(2)];
        let payloads = [payload("a"), payload("b")];
        let judged = judge(&account("acme"), &ids, &payloads, &found);
        let matches = match (&judged, &expected) {
            (Ok(None), Judged::New) => true,
            (Ok(Some(outcome)), Judged::Retry(version, position)) => {
                (outcome.first_version, outcome.first_position, outcome.events, outcome.duplicate)
                    == (*version, *position, 2, true)
            }
            (Err(AppendError::EventIdTaken { index, event_id, detail }), Judged::Taken(at, phrase)) => {
                index == at && *event_id == ids[*at] && detail.contains(phrase)
            }
            _ => false,
        };
        assert!(matches, "{name}: {judged:?}, expected {expected:?}");
    }

    #[test]
    fn retries_get_the_original_outcome_and_reuses_of_ids_are_refused() {
        use Judged::*;
        check("no id recorded", vec![None, None], New);
        check("the same request", vec![recorded(1, "acme", 4, 10, "a"), recorded(2, "acme", 5, 11, "b")], Retry(4, 10));
        check("only the second recorded", vec![None, recorded(2, "acme", 5, 11, "b")], Taken(1, "events[0]"));
        check("only the first recorded", vec![recorded(1, "acme", 4, 10, "a"), None], Taken(0, "events[1]"));
        check(
            "the first in another account",
            vec![recorded(1, "globex", 4, 10, "a"), recorded(2, "acme", 5, 11, "b")],
            Taken(0, "another stream"),
        );
        check(
            "the second with other content",
            vec![recorded(1, "acme", 4, 10, "a"), recorded(2, "acme", 5, 11, "B")],
            Taken(1, "different content"),
        );
        check(
            "not consecutive versions",
            vec![recorded(1, "acme", 4, 10, "a"), recorded(2, "acme", 6, 11, "b")],
            Taken(1, "not right after"),
        );
        check(
            "not consecutive positions",
            vec![recorded(1, "acme", 4, 10, "a"), recorded(2, "acme", 5, 12, "b")],
            Taken(1, "not right after"),
        );
        check(
            "in the other order",
            vec![recorded(1, "acme", 5, 11, "a"), recorded(2, "acme", 4, 10, "b")],
            Taken(1, "not right after"),
        );
    }
}

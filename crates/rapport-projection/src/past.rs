//! An account as it was: which of its recorded events a past state keeps, and the picture
//! they fold to. Auditors ask two questions of the past (what did we know on a date, what was
//! true on it) and one of the stream (the account after its first N events).

use rapport_domain::{AccountId, EventBody, Timestamp};

use crate::account::{AccountProjection, Folded};
use crate::rules::RuleSet;

/// Which past state of an account to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// What we knew: events recorded up to the instant.
    Known(Timestamp),
    /// What was true: events that occurred up to the instant, whenever recorded, with every
    /// correction recorded since (a retracted event was never true).
    Occurred(Timestamp),
    /// The stream's first N events.
    Version(u64),
}

impl Cut {
    /// Whether the past state keeps this recorded event.
    pub fn keeps(self, folded: &Folded<'_>) -> bool {
        match self {
            Cut::Known(at) => folded.recorded_at <= at,
            Cut::Occurred(at) => {
                folded.event.occurred_at <= at || matches!(folded.event.body, EventBody::EventRetracted(_))
            }
            Cut::Version(version) => folded.version <= version,
        }
    }

    /// The instant a past state is scored at: the cut's own, or for a version the recording
    /// time of the last event kept.
    pub fn instant(self, past: &AccountProjection) -> Timestamp {
        match self {
            Cut::Known(at) | Cut::Occurred(at) => at,
            Cut::Version(_) => past.recorded_at,
        }
    }
}

impl AccountProjection {
    /// The account as `cut` leaves it, folded under `rules` from its whole `stream` (oldest
    /// first); `None` if it did not exist then (its opening is not among the events kept).
    /// The version and position are those of the last event kept (under `Occurred`, the
    /// events kept need not be a prefix of the stream).
    pub fn as_of(account_id: AccountId, stream: &[Folded<'_>], cut: Cut, rules: &RuleSet) -> Option<AccountProjection> {
        let kept: Vec<Folded<'_>> = stream.iter().filter(|folded| cut.keeps(folded)).copied().collect();
        let last = kept.last().copied()?;
        let mut projection = AccountProjection::replay(account_id, &kept, rules)?;
        projection.account.version = last.version;
        projection.position = last.position;
        projection.recorded_at = last.recorded_at;
        Some(projection)
    }
}

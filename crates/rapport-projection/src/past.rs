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

#[cfg(test)]
mod tests {
    use rapport_domain::{
        Event, EventBody, EventId, EventRetracted, Label, Limits, SourceSystem, StaffId, TeamMemberLeft,
    };

    use super::*;

    const DAY: i64 = 86_400 * 1_000_000_000;

    fn at(day: i64) -> Timestamp {
        Timestamp::from_unix_nanos(day * DAY)
    }

    fn event(id: u8, occurred_day: i64, body: EventBody) -> Event {
        let limits = Limits::default();
        Event {
            id: EventId::from_bytes([id; 16]),
            occurred_at: at(occurred_day),
            actor: StaffId::parse("li.wei", &limits).unwrap(),
            source: SourceSystem::parse("crm", &limits).unwrap(),
            body,
        }
    }

    fn label(text: &str) -> Label {
        Label::parse(text, &Limits::default()).unwrap()
    }

    #[test]
    fn each_cut_keeps_what_its_question_asks() {
        // A team change that occurred on day 5 and was recorded on day 9, at version 3; and a
        // retraction of it that occurred and was recorded on day 12, at version 4.
        let member = StaffId::parse("sam.lee", &Limits::default()).unwrap();
        let change = event(1, 5, EventBody::TeamMemberLeft(TeamMemberLeft { member, reason: label("moved") }));
        let change = Folded { event: &change, version: 3, position: 30, recorded_at: at(9) };
        let retraction = EventRetracted { target: EventId::from_bytes([1; 16]), reason: label("entered twice") };
        let correction = event(2, 12, EventBody::EventRetracted(retraction));
        let correction = Folded { event: &correction, version: 4, position: 40, recorded_at: at(12) };

        assert!(!Cut::Known(at(7)).keeps(&change), "not known on day 7: recorded on day 9");
        assert!(Cut::Known(at(9)).keeps(&change));
        assert!(!Cut::Known(at(9)).keeps(&correction));
        assert!(Cut::Occurred(at(7)).keeps(&change), "true on day 7: it occurred on day 5");
        assert!(!Cut::Occurred(at(4)).keeps(&change));
        assert!(Cut::Occurred(at(7)).keeps(&correction), "a retracted event was never true, whenever retracted");
        assert!(Cut::Version(3).keeps(&change) && !Cut::Version(3).keeps(&correction));
    }
}

//! Who of ours holds whom at the customer: each pair of one of our people and one contact
//! they touched within the personalisation risk window, with how often and when last. These
//! are the lines of the relationship map; the risk window is the one in which the rule set
//! counts a relationship as held.

use rapport_domain::{ContactId, StaffId, Timestamp};
use std::collections::BTreeMap;

use crate::account::AccountProjection;
use crate::rules::RuleSet;
use crate::scores::within;

/// One of our people's touches of one contact within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    /// Who of ours: a meeting's attendee or a gift's giver.
    pub staff: StaffId,
    /// The contact touched.
    pub contact: ContactId,
    /// Meetings both attended, and gifts from one to the other, in the window.
    pub touches: u32,
    /// The latest of them.
    pub last: Timestamp,
}

/// The relationships held at `as_of`, by person of ours, then contact.
pub fn relationships(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> Vec<Relationship> {
    let window = rules.personalisation_risk.window_days;
    let mut held: BTreeMap<(&StaffId, &ContactId), (u32, Timestamp)> = BTreeMap::new();
    let mut touch = |staff, contact, at| {
        let entry = held.entry((staff, contact)).or_insert((0, at));
        entry.0 += 1;
        entry.1 = entry.1.max(at);
    };
    for meeting in projection.meetings.iter().filter(|m| within(m.at, as_of, window)) {
        for staff in &meeting.staff {
            for contact in &meeting.contacts {
                touch(staff, contact, meeting.at);
            }
        }
    }
    for gift in projection.gifts.iter().filter(|g| within(g.at, as_of, window)) {
        touch(&gift.giver, &gift.recipient, gift.at);
    }
    held.into_iter()
        .map(|((staff, contact), (touches, last))| Relationship {
            staff: staff.clone(),
            contact: contact.clone(),
            touches,
            last,
        })
        .collect()
}

//! What compliance and a new owner read from a projection: the gift register and the
//! handover report.

use std::collections::BTreeMap;

use rapport_domain::{Contact, ContactAssessment, ContactId, OutcomeKind, StaffId, Tenure, Timestamp, Touch};

use crate::account::{AccountProjection, GiftRecord, OutcomeRecord};
use crate::rules::RuleSet;
use crate::scores::{Score, personalisation_risk, risk_population, within};

/// Gifts in the rolling window, with totals and flags.
#[derive(Debug, Clone, PartialEq)]
pub struct GiftRegister {
    /// The end of the window.
    pub as_of: Timestamp,
    /// The window's length in days.
    pub window_days: f64,
    /// The gifts in the window, oldest first.
    pub gifts: Vec<RegisteredGift>,
    /// Totals in the window per currency, in minor units.
    pub totals: BTreeMap<String, i64>,
    /// Totals in the window per recipient and currency, in minor units.
    pub totals_by_contact: BTreeMap<ContactId, BTreeMap<String, i64>>,
}

/// A gift and what the register flags about it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredGift {
    /// The gift.
    pub gift: GiftRecord,
    /// Why compliance should look at it; empty when nothing is wrong.
    pub flags: Vec<GiftFlag>,
}

/// Why a gift is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiftFlag {
    /// Its value is above the rule set's threshold for its currency (minor units).
    AboveThreshold(i64),
    /// The rule set gives no threshold for its currency.
    NoThreshold,
    /// It has no approval reference.
    NoApproval,
}

/// The gift register of an account, or of one contact, as of an instant.
pub fn gift_register(
    projection: &AccountProjection,
    rules: &RuleSet,
    as_of: Timestamp,
    contact: Option<&ContactId>,
) -> GiftRegister {
    let mut register = GiftRegister {
        as_of,
        window_days: rules.gifts.window_days,
        gifts: Vec::new(),
        totals: BTreeMap::new(),
        totals_by_contact: BTreeMap::new(),
    };
    let in_window = projection
        .gifts
        .iter()
        .filter(|g| within(g.at, as_of, rules.gifts.window_days))
        .filter(|g| contact.is_none_or(|c| &g.recipient == c));
    for gift in in_window {
        let code = gift.value.currency().code().to_owned();
        let minor = gift.value.minor();
        add(register.totals.entry(code.clone()).or_default(), minor);
        add(register.totals_by_contact.entry(gift.recipient.clone()).or_default().entry(code).or_default(), minor);
        let mut flags = Vec::new();
        match rules.gift_threshold(gift.value.currency()) {
            Some(threshold) if minor > threshold => flags.push(GiftFlag::AboveThreshold(threshold)),
            Some(_) => {}
            None => flags.push(GiftFlag::NoThreshold),
        }
        if gift.approval_ref.is_none() {
            flags.push(GiftFlag::NoApproval);
        }
        register.gifts.push(RegisteredGift { gift: gift.clone(), flags });
    }
    register
}

fn add(total: &mut i64, minor: i64) {
    *total = total.saturating_add(minor);
}

/// What a new owner inherits.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoverReport {
    /// The owner now.
    pub owner: StaffId,
    /// The tenure before the current one, if the account changed hands.
    pub previous: Option<Tenure>,
    /// The note left with the latest owner change.
    pub handover_note: Option<String>,
    /// Key contacts (every current contact when none is key), by id.
    pub contacts: Vec<HandoverContact>,
    /// Gifts in the gift window, oldest first.
    pub recent_gifts: Vec<GiftRecord>,
    /// Commitments still running: strategic agreements, joint initiatives and renewals in the
    /// organisational window, oldest first.
    pub open_outcomes: Vec<OutcomeRecord>,
    /// The personalisation risk now.
    pub risk: Score,
    /// The personalisation risk if the current owner left: the share of the contacts above
    /// whose only link in the risk window is the owner.
    pub risk_if_owner_leaves: f64,
}

/// A contact as the handover report shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoverContact {
    /// The contact.
    pub contact: Contact,
    /// Their latest stance and closeness.
    pub assessment: Option<ContactAssessment>,
    /// Our people who touched them in the risk window, latest touch first.
    pub held_by: Vec<Touch>,
    /// True when the current owner is their only link in the risk window.
    pub only_through_owner: bool,
}

/// The handover report of an account as of an instant.
pub fn handover(projection: &AccountProjection, rules: &RuleSet, as_of: Timestamp) -> HandoverReport {
    let account = &projection.account;
    let window = rules.personalisation_risk.window_days;
    let population = risk_population(projection, as_of);
    let mut contacts = Vec::with_capacity(population.len());
    for contact in population {
        let activity = projection.contacts.get(&contact.id);
        let mut held_by: Vec<Touch> = activity
            .into_iter()
            .flat_map(|a| a.touched_by.iter())
            .filter(|(_, t)| within(t.at, as_of, window))
            .map(|(person, t)| t.by(person))
            .collect();
        held_by.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.by.cmp(&b.by)));
        let only_through_owner = held_by.len() == 1 && held_by[0].by == account.owner;
        let assessment = activity.and_then(|a| a.assessment_at(as_of));
        contacts.push(HandoverContact { contact: contact.clone(), assessment, held_by, only_through_owner });
    }
    let lost = contacts.iter().filter(|c| c.only_through_owner).count();
    let risk_if_owner_leaves =
        if contacts.is_empty() { 0.0 } else { crate::round2(100.0 * lost as f64 / contacts.len() as f64) };
    let history = &account.owner_history;
    HandoverReport {
        owner: account.owner.clone(),
        previous: history.len().checked_sub(2).map(|i| history[i].clone()),
        handover_note: projection.handover_note.clone(),
        contacts,
        recent_gifts: projection
            .gifts
            .iter()
            .filter(|g| within(g.at, as_of, rules.gifts.window_days))
            .cloned()
            .collect(),
        open_outcomes: projection
            .outcomes
            .iter()
            .filter(|o| within(o.at, as_of, rules.organisational_relationship.window_days))
            .filter(|o| {
                matches!(o.kind, OutcomeKind::StrategicAgreement | OutcomeKind::JointInitiative | OutcomeKind::Renewal)
            })
            .cloned()
            .collect(),
        risk: personalisation_risk(projection, rules, as_of),
        risk_if_owner_leaves,
    }
}

//! Views: what clients read of accounts, scores, reports and checks, rendered from the
//! projection's and the store's values.
//!
//! Projections hold personal text sealed; a view opens it with the key store ([`Keys`]), and
//! shows a forgotten contact's name as `[forgotten]` and their text empty, with a flag.

use rapport_domain as domain;
use rapport_domain::{AccountId, FORGOTTEN_NAME, Money, Personal, Timestamp};
use rapport_projection::{
    AccountProjection, ContactActivity, GiftFlag, GiftRecord, GiftRegister, HandoverReport, Movement, OutcomeRecord,
    PortfolioPage, PortfolioQuery, RuleSet, Scores,
};
use rapport_proto::v1 as pb;

use crate::enums::to_number;
use crate::requests::page_token;
use crate::scores::{fill_summary, score_to_wire, scores_to_wire};
use crate::sealing::{Keys, open};
use crate::timestamp_to_wire;

/// Opens the personal text of one account for a view.
#[derive(Clone, Copy)]
pub struct Opener<'a> {
    account: &'a AccountId,
    keys: &'a dyn Keys,
}

impl<'a> Opener<'a> {
    /// An opener for the text of `account`, with `keys`.
    pub fn new(account: &'a AccountId, keys: &'a dyn Keys) -> Opener<'a> {
        Opener { account, keys }
    }

    /// The text in clear, or `None` when a contact it concerns is forgotten.
    pub fn text(&self, text: &Personal) -> Option<String> {
        match open(text, self.account, self.keys) {
            Personal::Clear(text) => Some(text),
            Personal::Sealed(_) | Personal::Forgotten => None,
        }
    }
}

fn touch_to_wire(touch: &domain::Touch) -> pb::TouchView {
    pb::TouchView {
        by: touch.by.to_string(),
        at: Some(timestamp_to_wire(touch.at)),
        kind: match touch.kind {
            domain::TouchKind::Meeting => "meeting_held",
            domain::TouchKind::Gift => "gift_given",
        }
        .to_owned(),
    }
}

fn money_to_wire(money: Money) -> pb::Money {
    pb::Money { minor: money.minor(), currency: money.currency().code().to_owned() }
}

/// A contact as clients read it, their name and title opened.
pub fn contact_to_wire(c: &domain::Contact, activity: Option<&ContactActivity>, opener: Opener<'_>) -> pb::ContactView {
    let name = opener.text(&c.name);
    let title = opener.text(&c.title);
    pb::ContactView {
        contact_id: c.id.to_string(),
        forgotten: c.forgotten || name.is_none(),
        name: name.unwrap_or_else(|| FORGOTTEN_NAME.to_owned()),
        department: c.department.to_string(),
        key: c.key,
        support: c.assessment.map_or(0, |a| i32::from(a.support.value())),
        intimacy: c.assessment.map_or(0, |a| u32::from(a.intimacy.value())),
        last_touched_at: c.last_touch.as_ref().map(|t| timestamp_to_wire(t.at)),
        last_touched_by: c.last_touch.as_ref().map(|t| t.by.to_string()).unwrap_or_default(),
        title: title.unwrap_or_default(),
        role: to_number(c.role),
        assessed_at: c.assessment.map(|a| timestamp_to_wire(a.at)),
        last_touch_kind: c.last_touch.as_ref().map(|t| touch_to_wire(t).kind).unwrap_or_default(),
        left_at: c.left_at.map(timestamp_to_wire),
        assessments: activity
            .map(|a| {
                a.assessments
                    .iter()
                    .map(|h| pb::AssessmentView {
                        support: i32::from(h.assessment.support.value()),
                        intimacy: u32::from(h.assessment.intimacy.value()),
                        at: Some(timestamp_to_wire(h.assessment.at)),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        touched_by: activity
            .map(|a| a.touched_by.iter().map(|(person, t)| touch_to_wire(&t.by(person))).collect())
            .unwrap_or_default(),
    }
}

fn tenure_to_wire(t: &domain::Tenure) -> pb::OwnerTenure {
    pb::OwnerTenure {
        owner: t.owner.to_string(),
        from: Some(timestamp_to_wire(t.from)),
        to: t.to.map(timestamp_to_wire),
        reason: t.reason.to_string(),
    }
}

fn outcome_to_view(o: &OutcomeRecord) -> pb::OutcomeView {
    pb::OutcomeView {
        kind: to_number(o.kind),
        title: o.title.clone(),
        value: o.value.map(money_to_wire),
        at: Some(timestamp_to_wire(o.at)),
    }
}

fn gift_to_view(g: &GiftRecord, opener: Opener<'_>) -> pb::GiftView {
    let description = opener.text(&g.description);
    pb::GiftView {
        recipient_forgotten: description.is_none(),
        event_id: g.event_id.to_string(),
        at: Some(timestamp_to_wire(g.at)),
        giver: g.giver.to_string(),
        recipient_contact_id: g.recipient.to_string(),
        description: description.unwrap_or_default(),
        value: Some(money_to_wire(g.value)),
        approval_ref: g.approval_ref.clone().unwrap_or_default(),
    }
}

/// The view clients read of an account: its picture under a build and its scores as of `as_of`.
pub fn account_to_wire(
    projection: &AccountProjection,
    rules: &RuleSet,
    scores: &Scores,
    keys: &dyn Keys,
) -> pb::AccountView {
    let account = &projection.account;
    let opener = Opener::new(&account.id, keys);
    let coverage = rapport_projection::coverage(projection, rules, scores.as_of);
    let contact = |c: &domain::Contact| contact_to_wire(c, projection.contacts.get(&c.id), opener);
    pb::AccountView {
        account_id: account.id.to_string(),
        name: account.name.to_string(),
        tier: account.tier.as_ref().map(|t| t.tier.name().to_owned()).unwrap_or_default(),
        owner: account.owner.to_string(),
        version: account.version,
        owner_history: account.owner_history.iter().map(tenure_to_wire).collect(),
        contacts: account.contacts.values().filter(|c| c.is_current()).map(contact).collect(),
        team: account.team.keys().map(|m| m.to_string()).collect(),
        industry: account.industry.to_string(),
        opened_at: Some(timestamp_to_wire(account.opened_at)),
        last_activity_at: Some(timestamp_to_wire(account.last_activity_at)),
        team_members: account
            .team
            .iter()
            .map(|(member, m)| pb::TeamMemberView {
                member: member.to_string(),
                role: to_number(m.role),
                since: Some(timestamp_to_wire(m.since)),
            })
            .collect(),
        former_contacts: account.contacts.values().filter(|c| !c.is_current()).map(contact).collect(),
        position: projection.position,
        tier_reason: account.tier.as_ref().map(|t| t.reason.to_string()).unwrap_or_default(),
        retracted_events: account.retracted.len() as u64,
        rule_set: rules.id(),
        practice: Some(crate::practice::practice_to_wire(account, &scores.practice, opener)),
        relationships: rapport_projection::relationships(projection, rules, scores.as_of)
            .into_iter()
            .map(|r| pb::RelationshipView {
                staff: r.staff.to_string(),
                contact_id: r.contact.to_string(),
                touches: r.touches,
                last_touch: Some(timestamp_to_wire(r.last)),
            })
            .collect(),
        relationship_window_days: rules.personalisation_risk.window_days,
        scores: Some(scores_to_wire(scores)),
        tier_history: projection
            .tier_history
            .iter()
            .map(|t| pb::TierView {
                tier: t.tier.name().to_owned(),
                reason: t.reason.to_string(),
                since: Some(timestamp_to_wire(t.since)),
            })
            .collect(),
        departments_known: coverage.known.iter().map(|d| (*d).to_owned()).collect(),
        departments_touched: coverage.touched.iter().map(|d| (*d).to_owned()).collect(),
        outcomes: projection.outcomes.iter().map(outcome_to_view).collect(),
        feedback: projection
            .feedback
            .iter()
            .map(|f| {
                let text = opener.text(&f.text);
                pb::FeedbackView {
                    contact_id: f.contact.as_ref().map(ToString::to_string).unwrap_or_default(),
                    score: u32::from(f.score.value()),
                    forgotten: text.is_none(),
                    text: text.unwrap_or_default(),
                    at: Some(timestamp_to_wire(f.at)),
                }
            })
            .collect(),
        meetings_by_kind: projection.meetings_by_kind.iter().map(|(k, n)| (k.name().to_owned(), *n)).collect(),
        gift_totals: gift_totals_to_wire(&projection.gift_totals),
    }
}

fn gift_totals_to_wire(totals: &rapport_projection::GiftTotals) -> Vec<pb::GiftTotal> {
    let mut out = Vec::new();
    for (contact, years) in totals {
        for (year, currencies) in years {
            for (currency, minor) in currencies {
                out.push(pb::GiftTotal {
                    contact_id: contact.to_string(),
                    year: *year,
                    total: Some(pb::Money { minor: *minor, currency: currency.clone() }),
                });
            }
        }
    }
    out
}

/// One line of the portfolio.
pub fn summary_to_wire(projection: &AccountProjection, scores: &Scores) -> pb::AccountSummary {
    let account = &projection.account;
    let mut summary = pb::AccountSummary {
        account_id: account.id.to_string(),
        name: account.name.to_string(),
        tier: account.tier.as_ref().map(|t| t.tier.name().to_owned()).unwrap_or_default(),
        owner: account.owner.to_string(),
        value_class: scores.value_class.map(|c| c.name().to_owned()).unwrap_or_default(),
        at_risk: scores.at_risk.clone(),
        last_activity_at: Some(timestamp_to_wire(account.last_activity_at)),
        ..pb::AccountSummary::default()
    };
    fill_summary(&mut summary, scores);
    summary
}

/// A page of the portfolio on the wire, with the token of the next page.
pub fn portfolio_page_to_wire(
    page: &PortfolioPage<'_>,
    query: &PortfolioQuery,
    rules: &RuleSet,
) -> pb::ListAccountsResponse {
    pb::ListAccountsResponse {
        accounts: page.accounts.iter().map(|(p, s)| summary_to_wire(p, s)).collect(),
        next_page_token: page.next_offset.map(|offset| page_token(query.as_of, offset)).unwrap_or_default(),
        total: page.total as u64,
        rule_set: rules.id(),
        as_of: Some(timestamp_to_wire(query.as_of)),
        health_distribution: page.health_distribution.to_vec(),
    }
}

/// The handover report on the wire.
pub fn handover_to_wire(
    account_id: &AccountId,
    report: &HandoverReport,
    as_of: Timestamp,
    rule_set: String,
    keys: &dyn Keys,
) -> pb::HandoverReport {
    let opener = Opener::new(account_id, keys);
    pb::HandoverReport {
        account_id: account_id.to_string(),
        owner: report.owner.to_string(),
        previous: report.previous.as_ref().map(tenure_to_wire),
        handover_note: report.handover_note.clone().unwrap_or_default(),
        contacts: report
            .contacts
            .iter()
            .map(|c| pb::HandoverContact {
                contact: Some(contact_to_wire(&c.contact, None, opener)),
                held_by: c.held_by.iter().map(touch_to_wire).collect(),
                only_through_owner: c.only_through_owner,
            })
            .collect(),
        recent_gifts: report.recent_gifts.iter().map(|g| gift_to_view(g, opener)).collect(),
        open_outcomes: report.open_outcomes.iter().map(outcome_to_view).collect(),
        personalisation_risk: Some(score_to_wire(&report.risk)),
        risk_if_owner_leaves: report.risk_if_owner_leaves,
        as_of: Some(timestamp_to_wire(as_of)),
        rule_set,
    }
}

/// The gift register on the wire.
pub fn register_to_wire(
    account_id: &AccountId,
    register: &GiftRegister,
    rule_set: String,
    keys: &dyn Keys,
) -> pb::GiftRegisterView {
    let opener = Opener::new(account_id, keys);
    pb::GiftRegisterView {
        account_id: account_id.to_string(),
        as_of: Some(timestamp_to_wire(register.as_of)),
        window_days: register.window_days,
        gifts: register
            .gifts
            .iter()
            .map(|g| pb::RegisteredGift {
                gift: Some(gift_to_view(&g.gift, opener)),
                above_threshold: g
                    .flags
                    .iter()
                    .find_map(|f| if let GiftFlag::AboveThreshold(t) = f { Some(*t) } else { None })
                    .unwrap_or_default(),
                no_threshold: g.flags.contains(&GiftFlag::NoThreshold),
                no_approval: g.flags.contains(&GiftFlag::NoApproval),
            })
            .collect(),
        totals: register.totals.iter().map(|(c, m)| pb::Money { minor: *m, currency: c.clone() }).collect(),
        totals_by_contact: register
            .totals_by_contact
            .iter()
            .flat_map(|(contact, totals)| {
                totals.iter().map(move |(c, m)| pb::GiftTotal {
                    contact_id: contact.to_string(),
                    year: 0,
                    total: Some(pb::Money { minor: *m, currency: c.clone() }),
                })
            })
            .collect(),
        rule_set,
    }
}

/// One account's movement between two builds on the wire.
pub fn movement_to_wire(movement: &Movement) -> pb::AccountMovement {
    pb::AccountMovement {
        account_id: movement.account_id.to_string(),
        a: Some(scores_to_wire(&movement.before)),
        b: Some(scores_to_wire(&movement.after)),
        largest_change: movement.largest_change,
        factors: movement
            .factors
            .iter()
            .map(|(score, factor, a, b)| pb::FactorMovement {
                score: score.key().to_owned(),
                factor: factor.clone(),
                a: *a,
                b: *b,
            })
            .collect(),
    }
}

/// A chain break on the wire.
pub fn chain_break_to_wire(found: &rapport_store::ChainBreak) -> pb::ChainBreak {
    pb::ChainBreak {
        account_id: found.account_id.to_string(),
        version: found.version,
        position: found.position,
        check: found.check.to_owned(),
        expected: found.expected.clone(),
        found: found.found.clone(),
        message: found.to_string(),
    }
}

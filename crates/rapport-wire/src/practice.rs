//! The practice on the wire: plans, cadence, coordination, the iron triangle, competition,
//! contributions and the playbook as clients read them, and the practice's own requests.

use rapport_domain::{Account, AccountId, FORGOTTEN_NAME, StaffId, Tier, Timestamp, TouchKind, Violation};
use rapport_projection::{Cadence, Contributions, OverdueContact, PlanStatus, PlanView, Playbook, Practice, Standing};
use rapport_proto::v1 as pb;

use crate::enums::{WireEnum, name_of, to_number, wire_enum};
use crate::scores::factors_to_wire;
use crate::timestamp_to_wire;
use crate::views::Opener;

wire_enum!(PlanStatus <=> PlanStatus {
    OnTrack <=> OnTrack,
    AtRisk <=> AtRisk,
    Overdue <=> Overdue,
    Achieved <=> Achieved,
    Abandoned <=> Abandoned,
});

/// A plan status of a wire number, as people read it (`on track`, `at risk`, ...); `unknown`
/// for a number neither side knows.
pub fn plan_status_name(value: i32) -> &'static str {
    name_of::<PlanStatus>(value, PlanStatus::name)
}

/// The plan status a request names; `None` for `PLAN_STATUS_UNSPECIFIED`.
pub fn plan_status(value: i32, field: &str) -> Result<Option<PlanStatus>, Violation> {
    match pb::PlanStatus::try_from(value) {
        Ok(wire) => Ok(PlanStatus::from_wire(wire)),
        Err(_) => Err(Violation::new(
            field,
            format!("{value} is not a plan status; use one of {}", <PlanStatus as WireEnum>::names()),
        )),
    }
}

fn standing(standing: Standing, at: Option<Timestamp>) -> pb::AssessmentView {
    pb::AssessmentView {
        support: i32::from(standing.support.value()),
        intimacy: u32::from(standing.intimacy.value()),
        at: at.map(timestamp_to_wire),
    }
}

/// One plan as clients read it.
pub fn plan_to_wire(account_id: &AccountId, view: &PlanView) -> pb::PlanView {
    let plan = &view.plan;
    let target = Standing { support: plan.target.support, intimacy: plan.target.intimacy };
    pb::PlanView {
        account_id: account_id.to_string(),
        plan_id: plan.id.to_string(),
        contact_id: plan.contact_id.to_string(),
        owner: plan.owner.to_string(),
        status: to_number(view.status),
        progress: view.progress,
        start: Some(standing(view.start, None)),
        latest: Some(standing(view.latest, None)),
        target: Some(standing(target, Some(plan.due_at))),
        planned_at: Some(timestamp_to_wire(plan.planned_at)),
        due_at: Some(timestamp_to_wire(plan.due_at)),
        achieved_at: view.achieved_at.map(timestamp_to_wire),
        goal: plan.goal.to_string(),
        goal_reference: plan.goal_reference.to_string(),
        detail: view.detail.clone(),
    }
}

/// A key contact past their cadence, with their name opened and the account's owner and tier.
pub fn overdue_to_wire(account: &Account, overdue: &OverdueContact, opener: Opener<'_>) -> pb::OverdueContact {
    let name = account.contacts.get(&overdue.contact_id).and_then(|c| opener.text(&c.name));
    pb::OverdueContact {
        account_id: account.id.to_string(),
        contact_id: overdue.contact_id.to_string(),
        last_touch: overdue.last_touch.map(timestamp_to_wire),
        due_at: Some(timestamp_to_wire(overdue.due_at)),
        days_overdue: overdue.days_overdue,
        name: name.unwrap_or_else(|| FORGOTTEN_NAME.to_owned()),
        owner: account.owner.to_string(),
        tier: tier_name(account),
    }
}

fn tier_name(account: &Account) -> String {
    account.tier.as_ref().map(|t| t.tier.name().to_owned()).unwrap_or_default()
}

fn cadence_to_wire(account: &Account, cadence: &Cadence, opener: Opener<'_>) -> pb::CadenceView {
    pb::CadenceView {
        key_contact_days: cadence.key_contact_days,
        overdue: cadence.overdue.iter().map(|o| overdue_to_wire(account, o, opener)).collect(),
        key_contacts: cadence.key_contacts,
        executive_days: cadence.executive_days,
        last_executive_visit: cadence.last_executive_visit.map(timestamp_to_wire),
        executive_overdue_days: cadence.executive_overdue_days,
    }
}

/// An account whose executive visits are past their cadence, if they are.
pub fn overdue_executive_to_wire(account: &Account, cadence: &Cadence) -> Option<pb::OverdueExecutive> {
    let days_overdue = cadence.executive_overdue_days?;
    Some(pb::OverdueExecutive {
        account_id: account.id.to_string(),
        owner: account.owner.to_string(),
        tier: tier_name(account),
        last_executive_visit: cadence.last_executive_visit.map(timestamp_to_wire),
        executive_days: cadence.executive_days,
        days_overdue,
    })
}

fn touch_kind(kind: TouchKind) -> String {
    match kind {
        TouchKind::Meeting => "meeting_held",
        TouchKind::Gift => "gift_given",
    }
    .to_owned()
}

/// An account's practice figures as clients read them.
pub fn practice_to_wire(account: &Account, practice: &Practice, opener: Opener<'_>) -> pb::Practice {
    let c = &practice.coordination;
    pb::Practice {
        plans: practice.plans.iter().map(|p| plan_to_wire(&account.id, p)).collect(),
        plan_attainment: practice.plan_attainment,
        cadence: Some(cadence_to_wire(account, &practice.cadence, opener)),
        coordination: Some(pb::CoordinationView {
            touches: c.touches,
            team_touches: c.team_touches,
            bypassing: c
                .bypassing
                .iter()
                .map(|b| pb::BypassingTouch {
                    staff: b.staff.to_string(),
                    business_unit: b.unit.as_ref().map(ToString::to_string).unwrap_or_default(),
                    contact_id: b.contact_id.to_string(),
                    at: Some(timestamp_to_wire(b.at)),
                    kind: touch_kind(b.kind),
                })
                .collect(),
            units: c
                .units
                .iter()
                .map(|u| pb::UnitInContact { business_unit: u.unit.to_string(), people: u.people, on_team: u.on_team })
                .collect(),
            unknown_unit: c.unknown_unit,
            flagged: c.flagged,
        }),
        iron_triangle: Some(pb::IronTriangleView {
            covered: practice.iron_triangle.covered.iter().map(|&r| to_number(r)).collect(),
            missing: practice.iron_triangle.missing.iter().map(|&r| to_number(r)).collect(),
        }),
        competition: practice
            .competition
            .iter()
            .map(|p| pb::CompetitivePositionView {
                contact_id: p.contact_id.to_string(),
                ours: p.ours,
                strongest_competitor: p.strongest.as_ref().map(|(c, _)| c.to_string()).unwrap_or_default(),
                theirs: p.strongest.as_ref().map_or(0.0, |(_, stance)| *stance),
                behind: p.behind,
            })
            .collect(),
    }
}

/// Contributions as clients read them.
pub fn contributions_to_wire(
    contributions: &Contributions,
    accounts: u32,
    rule_set: String,
) -> pb::ContributionsResponse {
    pb::ContributionsResponse {
        from: Some(timestamp_to_wire(contributions.from)),
        to: Some(timestamp_to_wire(contributions.to)),
        progress: contributions.progress,
        people: contributions
            .people
            .iter()
            .map(|p| pb::ContributionView {
                staff: p.staff.to_string(),
                touches: p.touches,
                key_contacts: p.key_contacts,
                departments_opened: p.departments_opened,
                improvements: p.improvements,
                plans_achieved: p.plans_achieved,
                gifts: p.gifts,
                points: p.points,
                share: p.share,
                progress: p.progress,
                factors: factors_to_wire(&p.factors),
            })
            .collect(),
        accounts,
        rule_set,
    }
}

/// The playbook as clients read it.
pub fn playbook_to_wire(playbook: &Playbook, accounts: u32, rule_set: String) -> pb::PlaybookResponse {
    pb::PlaybookResponse {
        rule_set,
        from: Some(timestamp_to_wire(playbook.from)),
        to: Some(timestamp_to_wire(playbook.to)),
        follow_days: playbook.follow_days,
        rows: playbook
            .rows
            .iter()
            .map(|r| pb::PlaybookRow {
                tier: r.tier.map(|t| t.name().to_owned()).unwrap_or_default(),
                kind: to_number(r.kind),
                executive: r.executive,
                touches: r.touches,
                improved: r.improved,
                rate: r.rate,
                base_rate: r.base_rate,
                lift: r.lift,
            })
            .collect(),
        accounts,
    }
}

/// The order plans are listed in: the most urgent first, then by due date.
pub fn plan_urgency(status: PlanStatus) -> u8 {
    match status {
        PlanStatus::Overdue => 0,
        PlanStatus::AtRisk => 1,
        PlanStatus::OnTrack => 2,
        PlanStatus::Achieved => 3,
        PlanStatus::Abandoned => 4,
    }
}

/// Whether an account matches a portfolio filter on its owner and tier.
pub fn owned_and_tiered(account: &Account, owner: Option<&StaffId>, tier: Option<Tier>) -> bool {
    owner.is_none_or(|o| &account.owner == o) && tier.is_none_or(|t| account.tier.as_ref().is_some_and(|s| s.tier == t))
}

fn instant(ts: Option<&rapport_proto::wkt::Timestamp>, field: &str) -> Result<Timestamp, Violation> {
    let ts = ts.ok_or_else(|| Violation::new(field, "is required; give the period's first and last instants"))?;
    Timestamp::from_parts(ts.seconds, ts.nanos).map_err(|e| e.at(field))
}

/// The period of a contributions request, both ends inclusive.
pub fn contributions_period(request: &pb::ContributionsRequest) -> Result<(Timestamp, Timestamp), Violation> {
    let (from, to) = (instant(request.from.as_ref(), "from")?, instant(request.to.as_ref(), "to")?);
    if from >= to {
        return Err(Violation::new(
            "to",
            format!("is {to}, not after from {from}; give a period that ends after it starts"),
        ));
    }
    Ok((from, to))
}

/// Days a playbook looks back when a request does not say.
const PLAYBOOK_DAYS: f64 = 365.0;

/// The window of a playbook request, ending at `now`.
pub fn playbook_window(request: &pb::PlaybookRequest, now: Timestamp) -> Result<(Timestamp, Timestamp), Violation> {
    let days = match request.window_days {
        0.0 => PLAYBOOK_DAYS,
        days if days.is_finite() && days > 0.0 && days <= 36_500.0 => days,
        days => {
            return Err(Violation::new(
                "window_days",
                format!("is {days}; give a number of days above 0 and at most 36500"),
            ));
        }
    };
    let nanos = (days * 86_400.0 * 1e9).round() as i64;
    Ok((now.saturating_add_nanos(-nanos), now))
}

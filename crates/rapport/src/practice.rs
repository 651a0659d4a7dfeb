//! The practice for people: `rapport plans`, `cadence`, `contributions` and `playbook`, an
//! account manager's week and an executive's and an analyst's view, as tables (or `--json`);
//! and the practice's highlights of a set of accounts, which `rapport demo` prints.

use std::fmt::Write;

use anyhow::{Context, bail};
use clap::Args;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rapport_proto::{v1 as pb, wkt};

use crate::ServerArgs;
use crate::client::{Connection, connect, refused};
use crate::render;

/// Options of `rapport plans`.
#[derive(Debug, Args)]
pub(crate) struct PlansArgs {
    /// Only this account's plans.
    #[arg(long)]
    account: Option<String>,
    /// Only plans this person owns; `me` is RAPPORT_ACTOR.
    #[arg(long)]
    owner: Option<String>,
    /// Only plans in this status.
    #[arg(long, value_parser = ["on-track", "at-risk", "overdue", "achieved", "abandoned"])]
    status: Option<String>,
    /// Read a built rule set other than the active one (`name@version`).
    #[arg(long)]
    rule_set: Option<String>,
    /// Print the response as JSON (the proto3 JSON mapping).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport cadence`.
#[derive(Debug, Args)]
pub(crate) struct CadenceArgs {
    /// Only accounts this person owns; `me` is RAPPORT_ACTOR.
    #[arg(long)]
    owner: Option<String>,
    /// Only accounts of this tier (S, A, B, C).
    #[arg(long)]
    tier: Option<String>,
    /// Read a built rule set other than the active one (`name@version`).
    #[arg(long)]
    rule_set: Option<String>,
    /// Print the response as JSON (the proto3 JSON mapping).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport contributions`.
#[derive(Debug, Args)]
pub(crate) struct ContributionsArgs {
    /// The period, in UTC: a quarter (`2026-Q3`), a month (`2026-07`), a year (`2026`) or two
    /// dates, both included (`2026-07-01..2026-08-15`). The current quarter by default.
    #[arg(long)]
    period: Option<String>,
    /// Only this account; the whole portfolio by default.
    #[arg(long)]
    account: Option<String>,
    /// Print each person's points factor by factor (the counts times the rule set's weights).
    #[arg(long)]
    explain: bool,
    /// Read a built rule set other than the active one (`name@version`).
    #[arg(long)]
    rule_set: Option<String>,
    /// Print the response as JSON (the proto3 JSON mapping).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Options of `rapport playbook`.
#[derive(Debug, Args)]
pub(crate) struct PlaybookArgs {
    /// Days back from now in which meetings count.
    #[arg(long, default_value_t = 365.0)]
    window_days: f64,
    /// Only the rows of this tier (S, A, B, C); every row by default, all tiers first.
    #[arg(long)]
    tier: Option<String>,
    /// Read a built rule set other than the active one (`name@version`).
    #[arg(long)]
    rule_set: Option<String>,
    /// Print the response as JSON (the proto3 JSON mapping).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

async fn accounts(server: &ServerArgs) -> anyhow::Result<pb::accounts_client::AccountsClient<Connection>> {
    Ok(pb::accounts_client::AccountsClient::new(connect(server).await?))
}

/// The owner a person names: `me` is who they are, RAPPORT_ACTOR (as `rapport append` records).
fn owner(named: Option<String>) -> anyhow::Result<String> {
    match named.as_deref() {
        Some("me") => std::env::var("RAPPORT_ACTOR").ok().filter(|me| !me.is_empty()).context(
            "--owner me means you: set RAPPORT_ACTOR to your staff id as the accounts name you (for example anna.berg)",
        ),
        _ => Ok(named.unwrap_or_default()),
    }
}

fn print_json<T: serde::Serialize>(response: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(response)?);
    Ok(())
}

/// A day as `2026-03-02`; `-` when absent.
fn day(ts: Option<&wkt::Timestamp>) -> String {
    render::instant(ts).get(..10).map_or_else(|| "-".to_owned(), str::to_owned)
}

fn cut(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

pub(crate) async fn plans(args: PlansArgs) -> anyhow::Result<()> {
    let status = match args.status.as_deref() {
        Some("on-track") => pb::PlanStatus::OnTrack,
        Some("at-risk") => pb::PlanStatus::AtRisk,
        Some("overdue") => pb::PlanStatus::Overdue,
        Some("achieved") => pb::PlanStatus::Achieved,
        Some("abandoned") => pb::PlanStatus::Abandoned,
        _ => pb::PlanStatus::Unspecified,
    };
    let request = pb::ListPlansRequest {
        account_id: args.account.unwrap_or_default(),
        owner: owner(args.owner)?,
        status: status as i32,
        rule_set: args.rule_set.unwrap_or_default(),
        min_position: 0,
    };
    let listed = accounts(&args.server)
        .await?
        .list_plans(request)
        .await
        .map_err(|status| refused("could not list the plans", &status))?
        .into_inner();
    if args.json {
        return print_json(&listed);
    }
    print!("{}", plans_table(&listed));
    Ok(())
}

fn plans_table(listed: &pb::ListPlansResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} plan(s) under {} as of {}, the most urgent first",
        listed.plans.len(),
        listed.rule_set,
        render::instant(listed.as_of.as_ref())
    );
    if listed.plans.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<20} {:<16} {:<12} {:<14} {:<10} {:>8}  {:<10}  {:<10}  goal",
        "account", "plan", "contact", "owner", "status", "progress", "due", "achieved"
    );
    for plan in &listed.plans {
        let goal = match plan.goal_reference.as_str() {
            "" => plan.goal.clone(),
            reference => format!("{} ({reference})", plan.goal),
        };
        let achieved = plan.achieved_at.as_ref().map_or_else(String::new, |at| day(Some(at)));
        let _ = writeln!(
            out,
            "{:<20} {:<16} {:<12} {:<14} {:<10} {:>7.0}%  {:<10}  {achieved:<10}  {goal}",
            cut(&plan.account_id, 20),
            cut(&plan.plan_id, 16),
            cut(&plan.contact_id, 12),
            cut(&plan.owner, 14),
            rapport_wire::practice::plan_status_name(plan.status),
            plan.progress * 100.0,
            day(plan.due_at.as_ref()),
        );
        let _ = writeln!(out, "{:<20} {}", "", plan.detail);
    }
    out
}

pub(crate) async fn cadence(args: CadenceArgs) -> anyhow::Result<()> {
    let request = pb::CadenceRequest {
        owner: owner(args.owner)?,
        tier: args.tier.unwrap_or_default(),
        rule_set: args.rule_set.unwrap_or_default(),
        min_position: 0,
    };
    let cadence = accounts(&args.server)
        .await?
        .cadence(request)
        .await
        .map_err(|status| refused("could not read the cadence", &status))?
        .into_inner();
    if args.json {
        return print_json(&cadence);
    }
    print!("{}", cadence_table(&cadence));
    Ok(())
}

fn cadence_table(cadence: &pb::CadenceResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} key contact(s) past their cadence under {} as of {}, the most overdue first",
        cadence.overdue.len(),
        cadence.rule_set,
        render::instant(cadence.as_of.as_ref())
    );
    if !cadence.overdue.is_empty() {
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<22} {:<4} {:<14} {:<10}  {:<10}  {:>7}",
            "account", "contact", "name", "tier", "owner", "last touch", "due", "overdue"
        );
    }
    for o in &cadence.overdue {
        let last = o.last_touch.as_ref().map_or_else(|| "never".to_owned(), |at| day(Some(at)));
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<22} {:<4} {:<14} {last:<10}  {:<10}  {:>4} days",
            cut(&o.account_id, 20),
            cut(&o.contact_id, 12),
            cut(&o.name, 22),
            o.tier,
            cut(&o.owner, 14),
            day(o.due_at.as_ref()),
            o.days_overdue
        );
    }
    let _ = writeln!(out, "\n{} account(s) with executive visits past their cadence", cadence.executive.len());
    if !cadence.executive.is_empty() {
        let _ = writeln!(
            out,
            "{:<20} {:<4} {:<14} {:<20}  {:>7}  {:>7}",
            "account", "tier", "owner", "last executive visit", "allowed", "overdue"
        );
    }
    for e in &cadence.executive {
        let last = e.last_executive_visit.as_ref().map_or_else(|| "never".to_owned(), |at| day(Some(at)));
        let _ = writeln!(
            out,
            "{:<20} {:<4} {:<14} {last:<20}  {:>4} d.  {:>4} days",
            cut(&e.account_id, 20),
            e.tier,
            cut(&e.owner, 14),
            e.executive_days,
            e.days_overdue
        );
    }
    out
}

/// A period of `rapport contributions` in UTC, both ends included: a quarter (`2026-Q3`), a
/// month (`2026-07`), a year (`2026`) or two dates (`2026-07-01..2026-08-15`).
fn period(text: &str) -> anyhow::Result<(jiff::Timestamp, jiff::Timestamp)> {
    let text = text.trim();
    let bad = || {
        format!(
            "--period {text:?} is not a period: give a quarter (2026-Q3), a month (2026-07), a year (2026) or two \
             dates (2026-07-01..2026-08-15)"
        )
    };
    let year = |y: &str| y.parse::<i16>().ok().filter(|y| (1..=9999).contains(y));
    let (first, next) = if let Some((from, to)) = text.split_once("..") {
        let from: Date = from.trim().parse().with_context(bad)?;
        let to: Date = to.trim().parse().with_context(bad)?;
        if to < from {
            bail!("--period {text:?} ends before it starts; give the earlier date first");
        }
        (from, to.tomorrow()?)
    } else if let Some((y, q)) = text.split_once(['-', ' ']).filter(|(_, q)| q.starts_with(['Q', 'q'])) {
        let quarter = q[1..].parse::<i8>().ok().filter(|q| (1..=4).contains(q)).with_context(bad)?;
        let first = Date::new(year(y).with_context(bad)?, 3 * quarter - 2, 1)?;
        (first, first.checked_add(jiff::Span::new().months(3))?)
    } else if let Some((y, m)) = text.split_once('-') {
        let month = m.parse::<i8>().ok().filter(|m| (1..=12).contains(m)).with_context(bad)?;
        let first = Date::new(year(y).with_context(bad)?, month, 1)?;
        (first, first.checked_add(jiff::Span::new().months(1))?)
    } else {
        let first = Date::new(year(text).with_context(bad)?, 1, 1)?;
        (first, first.checked_add(jiff::Span::new().years(1))?)
    };
    let start = first.to_zoned(TimeZone::UTC)?.timestamp();
    let end = next.to_zoned(TimeZone::UTC)?.timestamp() - jiff::SignedDuration::from_nanos(1);
    Ok((start, end))
}

/// The quarter a day falls in, as `period` reads it.
fn quarter_of(date: Date) -> String {
    format!("{}-Q{}", date.year(), (date.month() - 1) / 3 + 1)
}

fn to_wire(ts: jiff::Timestamp) -> wkt::Timestamp {
    wkt::Timestamp { seconds: ts.as_second(), nanos: ts.subsec_nanosecond() }
}

pub(crate) async fn contributions(args: ContributionsArgs) -> anyhow::Result<()> {
    let named =
        args.period.clone().unwrap_or_else(|| quarter_of(jiff::Timestamp::now().to_zoned(TimeZone::UTC).date()));
    let (from, to) = period(&named)?;
    let request = pb::ContributionsRequest {
        account_id: args.account.clone().unwrap_or_default(),
        from: Some(to_wire(from)),
        to: Some(to_wire(to)),
        rule_set: args.rule_set.unwrap_or_default(),
        min_position: 0,
    };
    let response = accounts(&args.server)
        .await?
        .contributions(request)
        .await
        .map_err(|status| refused(&format!("could not read the contributions of {named}"), &status))?
        .into_inner();
    if args.json {
        return print_json(&response);
    }
    let scope = args.account.map_or_else(|| format!("{} account(s)", response.accounts), |a| format!("account {a}"));
    print!("{}", contributions_table(&named, &scope, &response, args.explain));
    Ok(())
}

fn contributions_table(named: &str, scope: &str, response: &pb::ContributionsResponse, explain: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Contributions in {named} ({} .. {}) across {scope} under {}\nrelationship progress: {} step(s) of stance and closeness gained",
        day(response.from.as_ref()),
        day(response.to.as_ref()),
        response.rule_set,
        response.progress
    );
    if response.people.is_empty() {
        let _ = writeln!(out, "nobody of ours touched these accounts in the period");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<16} {:>7} {:>4} {:>10} {:>8} {:>5} {:>5} {:>8} {:>6} {:>8}",
        "staff", "touches", "key", "depts new", "improved", "plans", "gifts", "points", "share", "progress"
    );
    for p in &response.people {
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>4} {:>10} {:>8} {:>5} {:>5} {:>8.2} {:>5.1}% {:>8.2}",
            cut(&p.staff, 16),
            p.touches,
            p.key_contacts,
            p.departments_opened,
            p.improvements,
            p.plans_achieved,
            p.gifts,
            p.points,
            p.share * 100.0,
            p.progress
        );
        if explain {
            for factor in p.factors.iter().filter(|f| f.points != 0.0) {
                let _ = writeln!(out, "      {:>+8.2}  {}", factor.points, factor.detail);
            }
        }
    }
    out
}

pub(crate) async fn playbook(args: PlaybookArgs) -> anyhow::Result<()> {
    let request = pb::PlaybookRequest {
        rule_set: args.rule_set.unwrap_or_default(),
        window_days: args.window_days,
        min_position: 0,
    };
    let mut playbook = pb::projections_client::ProjectionsClient::new(connect(&args.server).await?)
        .playbook(request)
        .await
        .map_err(|status| refused("could not read the playbook", &status))?
        .into_inner();
    if let Some(tier) = &args.tier {
        playbook.rows.retain(|row| row.tier.eq_ignore_ascii_case(tier));
    }
    if args.json {
        return print_json(&playbook);
    }
    print!("{}", playbook_table(&playbook));
    Ok(())
}

fn playbook_table(playbook: &pb::PlaybookResponse) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "What works, under {}: meetings {} .. {} across {} account(s), and how often the contact met improved \
         (stance or closeness) within {} days",
        playbook.rule_set,
        day(playbook.from.as_ref()),
        day(playbook.to.as_ref()),
        playbook.accounts,
        playbook.follow_days
    );
    if playbook.rows.is_empty() {
        let _ = writeln!(out, "no meetings with contacts in the window");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<5} {:<20} {:<10} {:>7} {:>8} {:>7} {:>7} {:>6}",
        "tier", "meeting", "executive", "touches", "improved", "rate", "base", "lift"
    );
    for row in &playbook.rows {
        let tier = if row.tier.is_empty() { "all" } else { row.tier.as_str() };
        let lift = row.lift.map_or_else(|| "-".to_owned(), |lift| format!("{lift:.2}"));
        let _ = writeln!(
            out,
            "{tier:<5} {:<20} {:<10} {:>7} {:>8} {:>6.1}% {:>6.1}% {lift:>6}",
            rapport_wire::meeting_kind_name(row.kind),
            if row.executive { "yes" } else { "no" },
            row.touches,
            row.improved,
            row.rate * 100.0,
            row.base_rate * 100.0
        );
    }
    out
}

/// What the practice finds in these accounts, a line per finding: plans achieved and behind,
/// key contacts past their cadence, touches that bypassed the team, teams missing a role of
/// the iron triangle, and key contacts a competitor holds closer than we do.
pub(crate) fn highlights(views: &[pb::AccountView]) -> String {
    let mut out = String::new();
    for view in views {
        let Some(practice) = &view.practice else { continue };
        let id = &view.account_id;
        for plan in &practice.plans {
            let status = rapport_wire::practice::plan_status_name(plan.status);
            // The detail often begins with the status ("achieved on ..."): say it once.
            let detail = if plan.detail.starts_with(status) {
                plan.detail.clone()
            } else {
                format!("{status}: {}", plan.detail)
            };
            let _ =
                writeln!(out, "  {id:<20} plan {} ({} for {}), {detail}", plan.plan_id, plan.owner, plan.contact_id);
        }
        if let Some(cadence) = &practice.cadence
            && let Some(most) = cadence.overdue.first()
        {
            let _ = writeln!(
                out,
                "  {id:<20} {} of {} key contact(s) past the {}-day cadence; {} the most, by {} days",
                cadence.overdue.len(),
                cadence.key_contacts,
                cadence.key_contact_days,
                most.contact_id,
                most.days_overdue
            );
        }
        if let Some(coordination) = &practice.coordination
            && coordination.flagged
        {
            for touch in &coordination.bypassing {
                let unit = if touch.business_unit.is_empty() { "unit not known" } else { &touch.business_unit };
                let _ = writeln!(
                    out,
                    "  {id:<20} {} ({unit}, not on the team) touched {} on {}",
                    touch.staff,
                    touch.contact_id,
                    day(touch.at.as_ref())
                );
            }
        }
        if let Some(triangle) = &practice.iron_triangle
            && !triangle.missing.is_empty()
        {
            let missing: Vec<&str> = triangle.missing.iter().map(|&r| rapport_wire::team_role_name(r)).collect();
            let _ = writeln!(out, "  {id:<20} the team has no {}", missing.join(", no "));
        }
        for position in practice.competition.iter().filter(|p| p.behind) {
            let _ = writeln!(
                out,
                "  {id:<20} {} stands closer to {} ({:+.2}) than to us ({:+.2})",
                position.contact_id, position.strongest_competitor, position.theirs, position.ours
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> jiff::Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn periods_are_quarters_months_years_or_dates_with_both_ends_included() {
        let last = |day: &str| utc(day) - jiff::SignedDuration::from_nanos(1);
        let cases = [
            ("2026-Q3", "2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z"),
            ("2026-q4", "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("2026-02", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"),
            ("2024", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
            ("2026-07-01..2026-08-15", "2026-07-01T00:00:00Z", "2026-08-16T00:00:00Z"),
        ];
        for (text, from, next) in cases {
            let (start, end) = period(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((start, end), (utc(from), last(next)), "{text}");
        }
        for wrong in ["2026-Q5", "2026-13", "Q3", "2026-07-01..2026-06-30", "last week"] {
            let message = format!("{:#}", period(wrong).unwrap_err());
            assert!(message.contains(wrong), "{wrong}: {message}");
        }
    }

    #[test]
    fn the_default_period_is_the_quarter_of_the_day() {
        assert_eq!(quarter_of(Date::constant(2026, 12, 3)), "2026-Q4");
        assert_eq!(quarter_of(Date::constant(2026, 1, 1)), "2026-Q1");
        assert_eq!(quarter_of(Date::constant(2026, 6, 30)), "2026-Q2");
    }
}

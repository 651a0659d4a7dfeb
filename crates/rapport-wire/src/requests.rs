//! Requests: the fields of `rapport.v1` request messages parsed into the domain and projection
//! values they name. Every violation names the field's path and says what to send instead.

use std::collections::BTreeSet;
use std::time::Duration;

use rapport_domain as domain;
use rapport_domain::{
    AccountId, ContactId, EventFilter, EventKind, ExpectedVersion, Limits, StaffId, TeamRole, Tier, Timestamp,
    Violation,
};
use rapport_projection::{Cut, IRON_TRIANGLE, PortfolioOrder, PortfolioQuery, ScoreKind, ScoreRange, ValueClass};
use rapport_proto::v1 as pb;

use crate::enums::from_number;
use crate::events::event_from_wire;
use crate::scores::score_kind;

/// Parses an account id from a request field.
pub fn account_id(value: &str, field: &str, limits: &Limits) -> Result<AccountId, Violation> {
    AccountId::parse(value, limits).map_err(|e| e.at(field))
}

/// Parses a contact id from a request field.
pub fn contact_id(value: &str, field: &str, limits: &Limits) -> Result<ContactId, Violation> {
    ContactId::parse(value, limits).map_err(|e| e.at(field))
}

/// Parses a contact id from a request field where empty means none.
pub fn optional_contact_id(value: &str, field: &str, limits: &Limits) -> Result<Option<ContactId>, Violation> {
    if value.is_empty() { Ok(None) } else { contact_id(value, field, limits).map(Some) }
}

/// Parses the expected-version clause of an append; unset means `any`, and `exact: 0` means
/// no stream.
pub fn expected_version(expected: Option<&pb::ExpectedVersion>) -> ExpectedVersion {
    use pb::expected_version::Kind;
    match expected.and_then(|e| e.kind.as_ref()) {
        None | Some(Kind::Any(_)) => ExpectedVersion::Any,
        Some(Kind::NoStream(_)) | Some(Kind::Exact(0)) => ExpectedVersion::NoStream,
        Some(Kind::StreamExists(_)) => ExpectedVersion::StreamExists,
        Some(Kind::Exact(version)) => ExpectedVersion::Exact(*version),
    }
}

/// Parses the events of an append request, each field checked against its domain type (the
/// writer then judges them against the account). The number of events is checked first, so
/// an oversized batch costs nothing to refuse. The events are taken apart: their text becomes
/// the domain's without being copied.
pub fn append_events(events: Vec<pb::Event>, limits: &Limits) -> Result<Vec<domain::Event>, Violation> {
    if events.len() > limits.max_events_per_append {
        return Err(Violation::new(
            "events",
            format!(
                "{} events in one request; at most {} are allowed, split the batch",
                events.len(),
                limits.max_events_per_append
            ),
        ));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            if event.sealed.is_some() {
                return Err(Violation::new(
                    format!("events[{index}].sealed"),
                    "is set only by the ledger, in its stored form; send personal fields in clear (over TLS) and the \
                     ledger seals them",
                ));
            }
            if let Some(pb::event::Body::ContactForgotten(_)) = event.body {
                return Err(Violation::new(
                    format!("events[{index}].contact_forgotten"),
                    "is recorded only by Privacy.ForgetContact, which also deletes the contact's data key; call it \
                     instead",
                ));
            }
            event_from_wire(event, &format!("events[{index}]"), limits)
        })
        .collect()
}

/// A read request's limit: 0 means no limit.
pub fn read_limit(limit: u32) -> u64 {
    if limit == 0 { u64::MAX } else { u64::from(limit) }
}

/// Which past state a `GetAccount` asks for; `None` for the current one.
pub fn cut(request: &pb::GetAccountRequest) -> Result<Option<Cut>, Violation> {
    let kind = pb::AsOf::try_from(request.as_of_kind)
        .map_err(|_| Violation::new("as_of_kind", "is not a known value; use AS_OF_KNOWN or AS_OF_OCCURRED"))?;
    match (&request.as_of, request.as_of_version) {
        (Some(_), v) if v > 0 => {
            Err(Violation::new("as_of_version", "cannot be combined with as_of; give one or the other"))
        }
        (Some(ts), _) => {
            let at = Timestamp::from_parts(ts.seconds, ts.nanos).map_err(|e| e.at("as_of"))?;
            Ok(Some(match kind {
                pb::AsOf::Unspecified | pb::AsOf::Known => Cut::Known(at),
                pb::AsOf::Occurred => Cut::Occurred(at),
            }))
        }
        (None, 0) if kind != pb::AsOf::Unspecified => {
            Err(Violation::new("as_of", "is required with as_of_kind; give the instant to look back to"))
        }
        (None, 0) => Ok(None),
        (None, version) => Ok(Some(Cut::Version(version))),
    }
}

/// A tier a request names (`S`, `A`, `B`, `C`); empty for any.
pub fn optional_tier(text: &str, field: &str) -> Result<Option<Tier>, Violation> {
    match text {
        "" => Ok(None),
        text => Tier::ALL.iter().copied().find(|t| t.name() == text).map(Some).ok_or_else(|| {
            Violation::new(field, format!("{text:?} is not a tier; use S, A, B or C, or leave it empty for any"))
        }),
    }
}

/// A person of ours a request filters by; empty for anyone.
pub fn optional_staff(text: &str, field: &str, limits: &Limits) -> Result<Option<StaffId>, Violation> {
    (!text.is_empty()).then(|| StaffId::parse(text, limits).map_err(|e| e.at(field))).transpose()
}

/// Accounts per page when a listing does not say.
const DEFAULT_PAGE: usize = 100;
/// Most accounts per page.
const MAX_PAGE: usize = 1_000;

/// Parses a portfolio listing; `now` is the instant a first page is scored at (later pages
/// carry their first page's instant in the page token).
pub fn portfolio_query(request: &pb::ListAccountsRequest, now: Timestamp) -> Result<PortfolioQuery, Violation> {
    let tier = optional_tier(&request.tier, "tier")?;
    let missing_role = match request.missing_role {
        0 => None,
        value => {
            let role: TeamRole = from_number(value, || "missing_role".to_owned())?;
            if !IRON_TRIANGLE.contains(&role) {
                return Err(Violation::new(
                    "missing_role",
                    format!("is {role}, which is not a role of the iron triangle; use sales, solution or delivery"),
                ));
            }
            Some(role)
        }
    };
    let value_class = match request.value_class.as_str() {
        "" => None,
        text => Some(ValueClass::ALL.into_iter().find(|c| c.name() == text).ok_or_else(|| {
            let names: Vec<&str> = ValueClass::ALL.iter().map(|c| c.name()).collect();
            Violation::new("value_class", format!("{text:?} is not a value class; use one of {}", names.join(", ")))
        })?),
    };
    let mut ranges = Vec::with_capacity(request.ranges.len());
    for (i, range) in request.ranges.iter().enumerate() {
        let field = format!("ranges[{i}].score");
        let kind = score_kind(range.score, &field)?
            .ok_or_else(|| Violation::new(&field, "is required; name the score to filter"))?;
        if !(range.min.is_finite() && range.max.is_finite() && range.min <= range.max) {
            return Err(Violation::new(
                format!("ranges[{i}]"),
                format!("min {} and max {} must be numbers with min <= max", range.min, range.max),
            ));
        }
        ranges.push(ScoreRange { kind, min: range.min, max: range.max });
    }
    let sort_by = match pb::AccountField::try_from(request.order_by) {
        Ok(pb::AccountField::Unspecified) => {
            PortfolioOrder::Score(score_kind(request.sort_by, "sort_by")?.unwrap_or(ScoreKind::Health))
        }
        Ok(pb::AccountField::Name) => PortfolioOrder::Name,
        Ok(pb::AccountField::Tier) => PortfolioOrder::Tier,
        Ok(pb::AccountField::Owner) => PortfolioOrder::Owner,
        Ok(pb::AccountField::ValueClass) => PortfolioOrder::ValueClass,
        Err(_) => {
            return Err(Violation::new(
                "order_by",
                format!(
                    "{} is not an account field; use 1 (name), 2 (tier), 3 (owner) or 4 (value class)",
                    request.order_by
                ),
            ));
        }
    };
    let page_size = match request.page_size as usize {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(Violation::new("page_size", format!("{n} is more than {MAX_PAGE}; ask for fewer per page")));
        }
        n => n,
    };
    let (as_of, offset) = if request.page_token.is_empty() {
        (now, 0)
    } else {
        parse_page_token(&request.page_token).ok_or_else(|| {
            Violation::new(
                "page_token",
                format!("{:?} is not a page token of this listing; pass next_page_token unchanged", request.page_token),
            )
        })?
    };
    Ok(PortfolioQuery {
        tier,
        owner: Some(request.owner.clone()).filter(|owner| !owner.is_empty()),
        value_class,
        ranges,
        at_risk: request.at_risk,
        overdue: request.overdue,
        uncoordinated: request.uncoordinated,
        missing_role,
        team_incomplete: request.team_incomplete,
        sort_by,
        ascending: request.ascending,
        page_size,
        offset,
        as_of,
    })
}

/// Sorts a listing by `order`: sets the request's `sort_by` and `order_by` as
/// [`portfolio_query`] reads them.
pub fn sort_listing_by(request: &mut pb::ListAccountsRequest, order: PortfolioOrder) {
    let (sort_by, order_by) = match order {
        PortfolioOrder::Score(kind) => (crate::scores::score_kind_to_wire(kind), pb::AccountField::Unspecified),
        PortfolioOrder::Name => (pb::ScoreKind::Unspecified, pb::AccountField::Name),
        PortfolioOrder::Tier => (pb::ScoreKind::Unspecified, pb::AccountField::Tier),
        PortfolioOrder::Owner => (pb::ScoreKind::Unspecified, pb::AccountField::Owner),
        PortfolioOrder::ValueClass => (pb::ScoreKind::Unspecified, pb::AccountField::ValueClass),
    };
    request.sort_by = sort_by as i32;
    request.order_by = order_by as i32;
}

/// The token of the page at `offset` of a listing scored at `as_of`.
pub(crate) fn page_token(as_of: Timestamp, offset: usize) -> String {
    format!("p1.{}.{offset}", as_of.unix_nanos())
}

fn parse_page_token(token: &str) -> Option<(Timestamp, usize)> {
    let mut parts = token.strip_prefix("p1.")?.split('.');
    let as_of = parts.next()?.parse().ok().map(Timestamp::from_unix_nanos)?;
    let offset = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((as_of, offset))
}

/// Parses a subscription's filter; none lets every event through.
pub fn event_filter(filter: Option<&pb::SubscribeFilter>, limits: &Limits) -> Result<EventFilter, Violation> {
    let Some(filter) = filter else { return Ok(EventFilter::default()) };
    let mut kinds = BTreeSet::new();
    for (i, name) in filter.event_types.iter().enumerate() {
        let kind = EventKind::ALL.iter().copied().find(|k| k.name() == name).ok_or_else(|| {
            let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
            Violation::new(
                format!("filter.event_types[{i}]"),
                format!("{name:?} is not an event type; use one of {}", names.join(", ")),
            )
        })?;
        kinds.insert(kind);
    }
    let accounts = filter
        .account_ids
        .iter()
        .enumerate()
        .map(|(i, id)| account_id(id, &format!("filter.account_ids[{i}]"), limits))
        .collect::<Result<_, _>>()?;
    Ok(EventFilter { kinds, accounts, account_prefix: filter.account_id_prefix.clone() })
}

/// Parses an interval in milliseconds: 0 is `default`, otherwise 10 ms to 60 s.
pub fn interval(ms: u32, default: Duration, field: &str) -> Result<Duration, Violation> {
    match ms {
        0 => Ok(default),
        10..=60_000 => Ok(Duration::from_millis(u64::from(ms))),
        _ => Err(Violation::new(field, format!("{ms} ms is out of range; give 10 to 60000, or 0 for the default"))),
    }
}

/// A rule set a request must name (`name@version`).
pub fn required_rule_set(id: &str) -> Result<&str, Violation> {
    if id.is_empty() {
        return Err(Violation::new("rule_set", "is required; name a built rule set as name@version"));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_anything_else_is_refused() {
        let at = Timestamp::from_unix_nanos(1_767_225_600_000_000_123);
        assert_eq!(parse_page_token(&page_token(at, 200)), Some((at, 200)));
        for bad in ["", "p1.", "p1.5", "p1.5.x", "p2.5.1", "p1.5.1.2", "p1.-x.1"] {
            assert_eq!(parse_page_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_expected_version_clause() {
        use pb::expected_version::Kind;
        let clause = |kind| pb::ExpectedVersion { kind: Some(kind) };
        let empty = rapport_proto::wkt::Empty {};
        assert_eq!(expected_version(None), ExpectedVersion::Any);
        assert_eq!(expected_version(Some(&pb::ExpectedVersion { kind: None })), ExpectedVersion::Any);
        assert_eq!(expected_version(Some(&clause(Kind::Any(empty)))), ExpectedVersion::Any);
        assert_eq!(expected_version(Some(&clause(Kind::NoStream(empty)))), ExpectedVersion::NoStream);
        assert_eq!(expected_version(Some(&clause(Kind::StreamExists(empty)))), ExpectedVersion::StreamExists);
        assert_eq!(expected_version(Some(&clause(Kind::Exact(0)))), ExpectedVersion::NoStream);
        assert_eq!(expected_version(Some(&clause(Kind::Exact(4)))), ExpectedVersion::Exact(4));
    }
}

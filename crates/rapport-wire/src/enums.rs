//! The contract's enums and the domain's, mapped once: each pair is written one time, and both
//! directions are exhaustive `match`es, so a value added on either side is a compile error here
//! until it is mapped.

use rapport_domain::{ContactRole, MeetingKind, OutcomeKind, PlanOutcome, TeamRole, Tier, Violation};
use rapport_proto::v1 as pb;

/// A domain enum with a contract counterpart whose 0 is `..._UNSPECIFIED`.
pub(crate) trait WireEnum: Sized + Copy {
    /// The generated enum.
    type Wire: Copy + TryFrom<i32>;

    /// The contract's value.
    fn to_wire(self) -> Self::Wire;

    /// The domain's value; `None` for `..._UNSPECIFIED`.
    fn from_wire(wire: Self::Wire) -> Option<Self>;

    /// The contract's names of every value, for error messages.
    fn names() -> String;
}

/// Writes the [`WireEnum`] impl of a domain enum from its list of pairs.
macro_rules! wire_enum {
    ($domain:ident <=> $wire:ident { $($d:ident <=> $w:ident),+ $(,)? }) => {
        impl WireEnum for $domain {
            type Wire = pb::$wire;

            fn to_wire(self) -> pb::$wire {
                match self {
                    $($domain::$d => pb::$wire::$w),+
                }
            }

            fn from_wire(wire: pb::$wire) -> Option<$domain> {
                match wire {
                    pb::$wire::Unspecified => None,
                    $(pb::$wire::$w => Some($domain::$d)),+
                }
            }

            fn names() -> String {
                [$(pb::$wire::$w.as_str_name()),+].join(", ")
            }
        }
    };
}

pub(crate) use wire_enum;

wire_enum!(Tier <=> Tier { S <=> S, A <=> A, B <=> B, C <=> C });

wire_enum!(ContactRole <=> ContactRole {
    DecisionMaker <=> DecisionMaker,
    Approver <=> Approver,
    Influencer <=> Influencer,
    User <=> User,
    Gatekeeper <=> Gatekeeper,
    TechnicalEvaluator <=> TechnicalEvaluator,
});

wire_enum!(MeetingKind <=> MeetingKind {
    Visit <=> Visit,
    ExecutiveVisit <=> ExecutiveVisit,
    Dinner <=> Dinner,
    TechnicalExchange <=> TechnicalExchange,
    Call <=> Call,
    Event <=> Event,
    Workshop <=> Workshop,
});

wire_enum!(TeamRole <=> TeamRole {
    Sales <=> Sales,
    Solution <=> Solution,
    Delivery <=> Delivery,
    Service <=> Service,
    ExecutiveSponsor <=> ExecutiveSponsor,
});

wire_enum!(PlanOutcome <=> PlanOutcome { Achieved <=> Achieved, Abandoned <=> Abandoned });

wire_enum!(OutcomeKind <=> OutcomeKind {
    DealWon <=> DealWon,
    DealLost <=> DealLost,
    StrategicAgreement <=> StrategicAgreement,
    Renewal <=> Renewal,
    JointInitiative <=> JointInitiative,
});

/// The wire number of a domain enum value.
pub(crate) fn to_number<E: WireEnum>(value: E) -> i32
where
    E::Wire: Into<i32>,
{
    value.to_wire().into()
}

/// Parses a wire enum number: 0 (unspecified) is missing, unknown numbers are named as such.
/// `field` makes the field's path, only on failure.
pub(crate) fn from_number<E: WireEnum>(value: i32, field: impl Fn() -> String) -> Result<E, Violation> {
    match E::Wire::try_from(value).ok().map(E::from_wire) {
        Some(Some(domain)) => Ok(domain),
        Some(None) => Err(Violation::new(field(), format!("is required; use one of {}", E::names()))),
        None => Err(Violation::new(field(), format!("{value} is not a known value; use one of {}", E::names()))),
    }
}

/// The domain's names of a contract enum value, for people: `MEETING_KIND_EXECUTIVE_VISIT` is
/// `executive visit`. The domain's own names are used, so what a person reads is the same
/// whichever way the value travelled; `unknown` for a number neither side knows.
pub fn meeting_kind_name(value: i32) -> &'static str {
    name_of::<MeetingKind>(value, MeetingKind::name)
}

/// `contact role` of a wire number, as people read it (see [`meeting_kind_name`]).
pub fn contact_role_name(value: i32) -> &'static str {
    name_of::<ContactRole>(value, ContactRole::name)
}

/// A team role of a wire number, as people read it (see [`meeting_kind_name`]).
pub fn team_role_name(value: i32) -> &'static str {
    name_of::<TeamRole>(value, TeamRole::name)
}

/// An outcome kind of a wire number, as people read it (see [`meeting_kind_name`]).
pub fn outcome_kind_name(value: i32) -> &'static str {
    name_of::<OutcomeKind>(value, OutcomeKind::name)
}

pub(crate) fn name_of<E: WireEnum>(value: i32, name: fn(E) -> &'static str) -> &'static str {
    match E::Wire::try_from(value).ok().and_then(E::from_wire) {
        Some(domain) => name(domain),
        None => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every domain value goes to the wire and back unchanged, and every wire value but
    /// UNSPECIFIED comes from a domain value.
    fn round_trips<E: WireEnum + PartialEq + std::fmt::Debug>(all: &[E], wire_numbers: std::ops::Range<i32>)
    where
        E::Wire: Into<i32>,
    {
        for &value in all {
            assert_eq!(E::from_wire(value.to_wire()), Some(value));
        }
        let mapped: Vec<i32> = all.iter().map(|&v| to_number(v)).collect();
        for number in wire_numbers {
            assert!(mapped.contains(&number), "wire value {number} has no domain value");
        }
        assert!(from_number::<E>(0, || "f".into()).unwrap_err().reason.starts_with("is required; use one of"));
        assert!(from_number::<E>(999, || "f".into()).unwrap_err().reason.starts_with("999 is not a known value"));
    }

    #[test]
    fn every_enum_maps_both_ways() {
        round_trips(Tier::ALL, 1..5);
        round_trips(ContactRole::ALL, 1..7);
        round_trips(MeetingKind::ALL, 1..8);
        round_trips(TeamRole::ALL, 1..6);
        round_trips(OutcomeKind::ALL, 1..6);
    }

    #[test]
    fn names_are_the_contracts() {
        assert_eq!(<Tier as WireEnum>::names(), "TIER_S, TIER_A, TIER_B, TIER_C");
        assert_eq!(meeting_kind_name(pb::MeetingKind::ExecutiveVisit as i32), "executive visit");
        assert_eq!(meeting_kind_name(77), "unknown");
    }
}

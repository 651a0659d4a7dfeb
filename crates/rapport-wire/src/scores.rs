//! Scores on the wire: the contract's `ScoreKind` and the domain's, a score card and a
//! portfolio line filled score by score. Every `match` here is exhaustive over `ScoreKind`,
//! so a new score is a compile error here until its fields are named.

use rapport_domain::Violation;
use rapport_projection::{Factor, Score, ScoreKind, Scores};
use rapport_proto::v1 as pb;

use crate::enums::{WireEnum, wire_enum};
use crate::timestamp_to_wire;

wire_enum!(ScoreKind <=> ScoreKind {
    Health <=> Health,
    KeyRelationship <=> KeyRelationship,
    GeneralRelationship <=> GeneralRelationship,
    OrganisationalRelationship <=> OrganisationalRelationship,
    PersonalisationRisk <=> PersonalisationRisk,
    Coordination <=> Coordination,
});

/// The score a request names; `None` for `SCORE_KIND_UNSPECIFIED`; a number the contract does
/// not know is refused, naming `field`.
pub fn score_kind(value: i32, field: &str) -> Result<Option<ScoreKind>, Violation> {
    match pb::ScoreKind::try_from(value) {
        Ok(wire) => Ok(ScoreKind::from_wire(wire)),
        Err(_) => Err(Violation::new(
            field,
            format!("{value} is not a score kind; use one of {}", <ScoreKind as WireEnum>::names()),
        )),
    }
}

/// The contract's value of a score kind.
pub fn score_kind_to_wire(kind: ScoreKind) -> pb::ScoreKind {
    kind.to_wire()
}

pub(crate) fn factors_to_wire(factors: &[Factor]) -> Vec<pb::Factor> {
    factors.iter().map(|f| pb::Factor { key: f.key.clone(), detail: f.detail.clone(), points: f.points }).collect()
}

pub fn score_to_wire(score: &Score) -> pb::Score {
    pb::Score { value: score.value, factors: factors_to_wire(&score.factors) }
}

/// Every score of an account on the wire.
pub fn scores_to_wire(scores: &Scores) -> pb::Scores {
    let mut wire = pb::Scores {
        as_of: Some(timestamp_to_wire(scores.as_of)),
        health_before: scores.health_before,
        value_class: scores.value_class.map(|c| c.name().to_owned()).unwrap_or_default(),
        value_factors: factors_to_wire(&scores.value_factors),
        at_risk: scores.at_risk.clone(),
        ..pb::Scores::default()
    };
    for &kind in ScoreKind::ALL {
        *score_field(&mut wire, kind) = Some(score_to_wire(scores.get(kind)));
    }
    wire
}

/// The field of a wire `Scores` that holds one score.
fn score_field(scores: &mut pb::Scores, kind: ScoreKind) -> &mut Option<pb::Score> {
    match kind {
        ScoreKind::KeyRelationship => &mut scores.key_relationship,
        ScoreKind::GeneralRelationship => &mut scores.general_relationship,
        ScoreKind::OrganisationalRelationship => &mut scores.organisational_relationship,
        ScoreKind::PersonalisationRisk => &mut scores.personalisation_risk,
        ScoreKind::Health => &mut scores.health,
        ScoreKind::Coordination => &mut scores.coordination,
    }
}

/// One score of a wire `Scores`, as a client reads it (`None` when the server left it out).
pub fn score_of(scores: &pb::Scores, kind: ScoreKind) -> Option<&pb::Score> {
    match kind {
        ScoreKind::KeyRelationship => scores.key_relationship.as_ref(),
        ScoreKind::GeneralRelationship => scores.general_relationship.as_ref(),
        ScoreKind::OrganisationalRelationship => scores.organisational_relationship.as_ref(),
        ScoreKind::PersonalisationRisk => scores.personalisation_risk.as_ref(),
        ScoreKind::Health => scores.health.as_ref(),
        ScoreKind::Coordination => scores.coordination.as_ref(),
    }
}

/// One score's value in a portfolio line, as a client reads it.
pub fn summary_score(summary: &pb::AccountSummary, kind: ScoreKind) -> f64 {
    match kind {
        ScoreKind::KeyRelationship => summary.key_relationship,
        ScoreKind::GeneralRelationship => summary.general_relationship,
        ScoreKind::OrganisationalRelationship => summary.organisational_relationship,
        ScoreKind::PersonalisationRisk => summary.personalisation_risk,
        ScoreKind::Health => summary.health,
        ScoreKind::Coordination => summary.coordination,
    }
}

/// Puts each score's value in its field of a portfolio line.
pub(crate) fn fill_summary(summary: &mut pb::AccountSummary, scores: &Scores) {
    for &kind in ScoreKind::ALL {
        let value = scores.get(kind).value;
        match kind {
            ScoreKind::KeyRelationship => summary.key_relationship = value,
            ScoreKind::GeneralRelationship => summary.general_relationship = value,
            ScoreKind::OrganisationalRelationship => summary.organisational_relationship = value,
            ScoreKind::PersonalisationRisk => summary.personalisation_risk = value,
            ScoreKind::Health => summary.health = value,
            ScoreKind::Coordination => summary.coordination = value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_score_kind_maps_both_ways() {
        for &kind in ScoreKind::ALL {
            assert_eq!(ScoreKind::from_wire(kind.to_wire()), Some(kind));
        }
        assert_eq!(score_kind(0, "sort_by").unwrap(), None);
        assert!(score_kind(42, "sort_by").unwrap_err().reason.starts_with("42 is not a score kind"));
        let mapped: Vec<i32> = ScoreKind::ALL.iter().map(|&k| k.to_wire() as i32).collect();
        assert!((1..=6).all(|n| mapped.contains(&n)), "{mapped:?}");
    }
}

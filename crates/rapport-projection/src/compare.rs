//! How an account's scores move from one rule set to another, and which factors moved them.

use rapport_domain::{AccountId, Timestamp};

use crate::account::AccountProjection;
use crate::rules::RuleSet;
use crate::scores::{Score, ScoreKind, Scores, round2, scores};

/// One account's scores under two rule sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Movement {
    /// The account.
    pub account_id: AccountId,
    /// Its scores under the first rule set.
    pub before: Scores,
    /// Its scores under the second.
    pub after: Scores,
    /// The largest change of any score, in points (absolute).
    pub largest_change: f64,
    /// Factors whose points changed, largest change first: the score, factor key, points
    /// before, points after.
    pub factors: Vec<(ScoreKind, String, f64, f64)>,
}

/// Scores an account under `rules_a` (its projection `a`) and `rules_b` (projection `b`),
/// both as of `as_of`, and lists what moved.
pub fn compare(
    a: &AccountProjection,
    rules_a: &RuleSet,
    b: &AccountProjection,
    rules_b: &RuleSet,
    as_of: Timestamp,
) -> Movement {
    let before = scores(a, rules_a, as_of);
    let after = scores(b, rules_b, as_of);
    let mut largest_change: f64 = 0.0;
    let mut factors = Vec::new();
    for &kind in ScoreKind::ALL {
        let (x, y) = (before.get(kind), after.get(kind));
        largest_change = largest_change.max((y.value - x.value).abs());
        let mut keys: Vec<&str> = x.factors.iter().chain(&y.factors).map(|f| f.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let points = |s: &Score| s.factors.iter().find(|f| f.key == key).map_or(0.0, |f| f.points);
            let (p, q) = (points(x), points(y));
            if round2(q - p) != 0.0 {
                factors.push((kind, key.to_owned(), p, q));
            }
        }
    }
    factors.sort_by(|l, r| {
        (r.3 - r.2).abs().total_cmp(&(l.3 - l.2).abs()).then_with(|| (l.0.key(), &l.1).cmp(&(r.0.key(), &r.1)))
    });
    Movement { account_id: a.account.id.clone(), before, after, largest_change: round2(largest_change), factors }
}

//! A digest of a whole projection, so that two builds can be compared with one value.

use rapport_domain::Timestamp;
use sha2::{Digest, Sha256};

use crate::account::AccountProjection;
use crate::contribution::{contributions, playbook_touches};
use crate::rules::{RuleSet, days_to_nanos};
use crate::scores::{Score, ScoreKind, scores};

/// SHA-256 over a projection: its rule set, the log position it reflects, and every account in
/// id order: its encoded picture, its scores and practice figures at the instant the digest is
/// taken at, and its contributions and playbook touches over the general relationship window
/// ending then.
///
/// Two builds with equal digests hold bit-identical pictures and scores. The instant should be
/// one the log fixes, such as the recording time of the event at the projection's position,
/// so that two builds of the same log agree on it.
#[derive(Debug, Clone)]
pub struct ProjectionDigest {
    hasher: Sha256,
    rules: RuleSet,
    as_of: Timestamp,
    accounts: u64,
}

impl ProjectionDigest {
    /// Starts a digest of the projection under `rules` at log `position`, scoring as of `as_of`.
    pub fn new(rules: &RuleSet, position: u64, as_of: Timestamp) -> ProjectionDigest {
        let mut hasher = Sha256::new();
        hasher.update(b"rapport projection digest v2\0");
        hasher.update(rules.fingerprint());
        hasher.update(position.to_be_bytes());
        hasher.update(as_of.unix_nanos().to_be_bytes());
        ProjectionDigest { hasher, rules: rules.clone(), as_of, accounts: 0 }
    }

    /// Adds the next account; accounts must come in id order.
    pub fn add(&mut self, projection: &AccountProjection) {
        let encoded = crate::encode(projection);
        self.hasher.update((encoded.len() as u64).to_be_bytes());
        self.hasher.update(&encoded);
        let s = scores(projection, &self.rules, self.as_of);
        for &kind in ScoreKind::ALL {
            self.hasher.update(hundredths(s.get(kind)).to_be_bytes());
        }
        self.hasher.update([s.value_class.map_or(0, |c| c as u8 + 1)]);
        let from = self.as_of.saturating_add_nanos(-days_to_nanos(self.rules.general_relationship.window_days));
        let credit = contributions(projection, &self.rules, from, self.as_of);
        let touches = playbook_touches(projection, &self.rules, from, self.as_of);
        // Plain structs, vectors, strings and numbers: serialising cannot fail.
        let figures = postcard::to_allocvec(&(&s.practice, &credit, &touches)).unwrap_or_default();
        self.hasher.update((figures.len() as u64).to_be_bytes());
        self.hasher.update(&figures);
        self.accounts += 1;
    }

    /// The digest, as lower-case hex.
    pub fn finish(self) -> String {
        let mut hasher = self.hasher;
        hasher.update(self.accounts.to_be_bytes());
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn hundredths(score: &Score) -> i64 {
    (score.value * 100.0).round() as i64
}

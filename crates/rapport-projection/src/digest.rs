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
        let part = self.part(projection);
        self.add_part(part);
    }

    /// What `projection` adds to this digest, worked out on its own: the parts of many accounts
    /// can be worked out at once (on as many threads), then added in id order with
    /// [`ProjectionDigest::add_part`], to the same digest as [`ProjectionDigest::add`] gives.
    pub fn part(&self, projection: &AccountProjection) -> AccountDigest {
        let encoded = crate::encode(projection);
        let mut bytes = Vec::with_capacity(encoded.len() + 128);
        bytes.extend_from_slice(&(encoded.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&encoded);
        let s = scores(projection, &self.rules, self.as_of);
        for &kind in ScoreKind::ALL {
            bytes.extend_from_slice(&hundredths(s.get(kind)).to_be_bytes());
        }
        bytes.push(s.value_class.map_or(0, |c| c as u8 + 1));
        let from = self.as_of.saturating_add_nanos(-days_to_nanos(self.rules.general_relationship.window_days));
        let credit = contributions(projection, &self.rules, from, self.as_of);
        let touches = playbook_touches(projection, &self.rules, from, self.as_of);
        // Plain structs, vectors, strings and numbers: serialising cannot fail.
        let figures = postcard::to_allocvec(&(&s.practice, &credit, &touches)).unwrap_or_default();
        bytes.extend_from_slice(&(figures.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&figures);
        AccountDigest(bytes)
    }

    /// Adds the next account's part; parts must come in the id order of their accounts.
    pub fn add_part(&mut self, part: AccountDigest) {
        self.hasher.update(&part.0);
        self.accounts += 1;
    }

    /// The digest, as lower-case hex.
    pub fn finish(self) -> String {
        let mut hasher = self.hasher;
        hasher.update(self.accounts.to_be_bytes());
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What one account adds to a [`ProjectionDigest`]: the bytes it hashes for that account.
#[derive(Debug, Clone)]
pub struct AccountDigest(Vec<u8>);

fn hundredths(score: &Score) -> i64 {
    (score.value * 100.0).round() as i64
}

//! Tamper evidence: checking hash chains, and the digest of a whole log.
//!
//! [`ChainCheck`] takes recorded events in order (the whole log by position, or one stream by
//! version) and reports the first one that does not hold together: a changed event, a removed
//! or reordered one, a gap. [`ChainCheck::digest`] then gives the log's root hash: one value
//! over the head of every stream, which commits to every event up to the position checked
//! (each head hash chains its whole stream). An auditor keeps a digest and later re-computes
//! it at the same position; equal digests mean the history up to there is unchanged.

use std::collections::BTreeMap;
use std::fmt;

use rapport_domain::AccountId;
use sha2::{Digest, Sha256};

use crate::{GENESIS_HASH, Hash, StoredEvent};

/// Domain separation for the log digest.
const DIGEST_TAG: &[u8] = b"rapport.log-digest.v1\0";

/// The first place a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The stream.
    pub account_id: AccountId,
    /// The version of the event at fault (as stored).
    pub version: u64,
    /// Its position (as stored).
    pub position: u64,
    /// What it should be.
    pub expected: String,
    /// What it is.
    pub found: String,
    /// Which check failed: `hash`, `prev_hash`, `version` or `position`.
    pub check: &'static str,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "account \"{}\", version {} (position {}): {} should be {} but is {}",
            self.account_id, self.version, self.position, self.check, self.expected, self.found
        )
    }
}

/// Lower-case hex of a hash.
pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks recorded events one by one, in the order of the log (or of one stream).
#[derive(Debug, Clone, Default)]
pub struct ChainCheck {
    /// The last version and hash of every stream seen.
    heads: BTreeMap<AccountId, (u64, Hash)>,
    /// The last position seen (0: none).
    position: u64,
    /// Whether positions must follow each other without gaps (a whole log), or only increase
    /// (one stream).
    whole_log: bool,
    events: u64,
}

impl ChainCheck {
    /// A check of the whole log from position 1: positions must be 1, 2, 3, ...
    pub fn whole_log() -> ChainCheck {
        ChainCheck { whole_log: true, ..ChainCheck::default() }
    }

    /// A check of one stream (or of any subset of streams) from version 1.
    pub fn streams() -> ChainCheck {
        ChainCheck::default()
    }

    /// Checks the next event; `Err` names the first thing wrong with it.
    pub fn check(&mut self, event: &StoredEvent) -> Result<(), ChainBreak> {
        let at = |check: &'static str, expected: String, found: String| ChainBreak {
            account_id: event.account_id.clone(),
            version: event.version,
            position: event.position,
            expected,
            found,
            check,
        };
        let expected_position = self.position + 1;
        if (self.whole_log && event.position != expected_position) || event.position < expected_position {
            let expected =
                if self.whole_log { expected_position.to_string() } else { format!("above {}", self.position) };
            return Err(at("position", expected, event.position.to_string()));
        }
        let (last_version, last_hash) = self.heads.get(&event.account_id).copied().unwrap_or((0, GENESIS_HASH));
        if event.version != last_version + 1 {
            return Err(at("version", (last_version + 1).to_string(), event.version.to_string()));
        }
        if event.prev_hash != last_hash {
            return Err(at("prev_hash", hex(&last_hash), hex(&event.prev_hash)));
        }
        let computed = event.computed_hash();
        if event.hash != computed {
            return Err(at("hash", hex(&computed), hex(&event.hash)));
        }
        self.heads.insert(event.account_id.clone(), (event.version, event.hash));
        self.position = event.position;
        self.events += 1;
        Ok(())
    }

    /// Events checked so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Streams seen so far.
    pub fn streams_seen(&self) -> usize {
        self.heads.len()
    }

    /// The last position checked.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The root hash over every stream's head so far:
    /// `SHA-256("rapport.log-digest.v1\0" ‖ u64be(position) ‖ u64be(streams) ‖ for each stream
    /// in account id order: u64be(len(account_id)) ‖ account_id ‖ u64be(version) ‖ head hash)`.
    pub fn digest(&self) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update(DIGEST_TAG);
        hasher.update(self.position.to_be_bytes());
        hasher.update((self.heads.len() as u64).to_be_bytes());
        for (account_id, (version, hash)) in &self.heads {
            hasher.update((account_id.as_str().len() as u64).to_be_bytes());
            hasher.update(account_id.as_str().as_bytes());
            hasher.update(version.to_be_bytes());
            hasher.update(hash);
        }
        hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rapport_domain::{EventId, Limits, Timestamp};

    use super::*;
    use crate::{HashScheme, chain_hash};

    fn log(events: &[(&str, u8)]) -> Vec<StoredEvent> {
        let mut heads: BTreeMap<String, (u64, Hash)> = BTreeMap::new();
        events
            .iter()
            .enumerate()
            .map(|(i, (account, payload))| {
                let account_id = AccountId::parse(*account, &Limits::default()).unwrap();
                let (version, prev_hash) = heads.get(*account).map_or((1, GENESIS_HASH), |(v, h)| (v + 1, *h));
                let mut id = [0u8; 16];
                id[15] = i as u8;
                let event_id = EventId::from_bytes(id);
                let position = i as u64 + 1;
                let recorded_at = Timestamp::from_unix_nanos(position as i64);
                let payload = Bytes::from(vec![*payload]);
                let mut event = StoredEvent {
                    account_id,
                    version,
                    position,
                    recorded_at,
                    event_id,
                    recorded_by: String::new(),
                    payload,
                    prev_hash,
                    hash: GENESIS_HASH,
                    scheme: HashScheme::Positioned,
                };
                event.hash = chain_hash(&event);
                heads.insert(account.to_string(), (version, event.hash));
                event
            })
            .collect()
    }

    fn run(check: &mut ChainCheck, events: &[StoredEvent]) -> Result<(), ChainBreak> {
        events.iter().try_for_each(|e| check.check(e))
    }

    #[test]
    fn an_intact_log_checks_and_digests_stably() {
        let events = log(&[("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]);
        let mut check = ChainCheck::whole_log();
        run(&mut check, &events).unwrap();
        assert_eq!((check.events(), check.streams_seen(), check.position()), (5, 3, 5));
        let mut again = ChainCheck::whole_log();
        run(&mut again, &events).unwrap();
        assert_eq!(check.digest(), again.digest());
        // A prefix has another digest: the position and the heads differ.
        let mut prefix = ChainCheck::whole_log();
        run(&mut prefix, &events[..4]).unwrap();
        assert_ne!(prefix.digest(), check.digest());
    }

    /// Events of the replicated log, hashed without their positions, check the same way: their
    /// hashes hold, and their order is still the log's.
    #[test]
    fn an_unpositioned_log_checks_and_keeps_its_order() {
        let events: Vec<StoredEvent> = log(&[("a", 1), ("b", 2), ("a", 3)])
            .into_iter()
            .scan(BTreeMap::new(), |heads: &mut BTreeMap<AccountId, Hash>, mut event| {
                event.scheme = HashScheme::Unpositioned;
                event.prev_hash = heads.get(&event.account_id).copied().unwrap_or(GENESIS_HASH);
                event.hash = chain_hash(&event);
                heads.insert(event.account_id.clone(), event.hash);
                Some(event)
            })
            .collect();
        run(&mut ChainCheck::whole_log(), &events).unwrap();
        let mut swapped = events.clone();
        swapped.swap(1, 2);
        let found = run(&mut ChainCheck::whole_log(), &swapped).unwrap_err();
        assert_eq!((found.position, found.check), (3, "position"));
        // The scheme is part of what the hash holds to: one cannot be passed off as the other.
        let mut relabelled = events.clone();
        relabelled[0].scheme = HashScheme::Positioned;
        assert_eq!(run(&mut ChainCheck::whole_log(), &relabelled).unwrap_err().check, "hash");
    }

    #[test]
    fn each_kind_of_damage_is_found_where_it_is() {
        let events = log(&[("a", 1), ("b", 2), ("a", 3), ("a", 4)]);
        let cases: Vec<(&str, Vec<StoredEvent>, (u64, &str))> = vec![
            (
                "changed bytes",
                {
                    let mut e = events.clone();
                    e[2].payload = Bytes::from_static(&[9]);
                    e
                },
                (3, "hash"),
            ),
            (
                "a removed event",
                {
                    let mut e = events.clone();
                    e.remove(2);
                    e
                },
                (4, "position"),
            ),
            (
                "swapped events",
                {
                    let mut e = events.clone();
                    e.swap(2, 3);
                    e
                },
                (4, "position"),
            ),
            (
                "a rewritten chain",
                {
                    // Someone recomputes the changed event's own hash: the next event's link breaks.
                    let mut e = events.clone();
                    e[2].payload = Bytes::from_static(&[9]);
                    e[2].hash = e[2].computed_hash();
                    e
                },
                (4, "prev_hash"),
            ),
        ];
        for (what, damaged, (position, check)) in cases {
            let found = run(&mut ChainCheck::whole_log(), &damaged).expect_err(what);
            assert_eq!((found.position, found.check), (position, check), "{what}: {found}");
        }
    }
}

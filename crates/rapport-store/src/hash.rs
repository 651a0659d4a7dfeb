//! The hash chain: each event's hash covers its envelope, its bytes and the previous event's
//! hash in its stream, so that altering, removing or reordering a recorded event is detectable.
//!
//! Two schemes, told apart by their tags. An embedded log knows an event's position before it
//! writes it, and hashes it ([`HashScheme::Positioned`]). A replicated log learns the position
//! only when the stream has stored the event, after the hash is made, so its events hash
//! everything but the position ([`HashScheme::Unpositioned`]). The order is checked all the
//! same: each event still chains to the previous one of its stream, and a whole log's
//! positions must run 1, 2, 3, ... ([`crate::ChainCheck`]).

use sha2::{Digest, Sha256};

use crate::StoredEvent;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// What version 1 of every stream chains to.
pub const GENESIS_HASH: Hash = [0; 32];

/// How an event's chain hash is made. Part of the stored form of every event: a log writes it
/// with the event, and a check recomputes the hash the way the event says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HashScheme {
    /// Tag `rapport.event.v1`, the position hashed: the embedded engines, which give an event
    /// its position before they write it.
    #[default]
    Positioned,
    /// Tag `rapport.event.v2`, the position not hashed: the replicated log, whose stream gives
    /// the position once the event is stored.
    Unpositioned,
}

impl HashScheme {
    /// The scheme's number in stored envelopes and on the wire (`hash_scheme`): 1 or 2.
    pub fn number(self) -> u32 {
        match self {
            HashScheme::Positioned => 1,
            HashScheme::Unpositioned => 2,
        }
    }

    /// The scheme a stored number names; 0 (a field left out) is 1. `None` for a number this
    /// build does not know.
    pub fn from_number(number: u32) -> Option<HashScheme> {
        match number {
            0 | 1 => Some(HashScheme::Positioned),
            2 => Some(HashScheme::Unpositioned),
            _ => None,
        }
    }

    /// Domain separation: a hash of either shape can never be mistaken for the other, or for
    /// another SHA-256 use.
    fn tag(self) -> &'static [u8] {
        match self {
            HashScheme::Positioned => b"rapport.event.v1\0",
            HashScheme::Unpositioned => b"rapport.event.v2\0",
        }
    }
}

/// The hash of a recorded event (its own `hash` field is not part of the input), in the
/// event's [`HashScheme`]:
///
/// `SHA-256(tag ‖ prev_hash ‖ u64be(len(account_id)) ‖ account_id ‖ u64be(version) ‖
/// [u64be(position) ‖] i64be(recorded_at, ns since epoch) ‖ event_id (16 bytes) ‖
/// u64be(len(payload)) ‖ payload [‖ u64be(len(recorded_by)) ‖ recorded_by])`,
///
/// where the tag is `"rapport.event.v1\0"` with the position and `"rapport.event.v2\0"`
/// without it. Variable-length fields are length-prefixed so that no two different records
/// hash the same input. The `recorded_by` part is present only when the identity is not empty,
/// so events recorded before identities were (or by a server without authentication) keep
/// their hash. This definition is part of the on-disk format: changing it needs a new tag.
pub fn chain_hash(event: &StoredEvent) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(event.scheme.tag());
    hasher.update(event.prev_hash);
    hasher.update((event.account_id.as_str().len() as u64).to_be_bytes());
    hasher.update(event.account_id.as_str().as_bytes());
    hasher.update(event.version.to_be_bytes());
    if event.scheme == HashScheme::Positioned {
        hasher.update(event.position.to_be_bytes());
    }
    hasher.update(event.recorded_at.unix_nanos().to_be_bytes());
    hasher.update(event.event_id.as_bytes());
    hasher.update((event.payload.len() as u64).to_be_bytes());
    hasher.update(&event.payload);
    if !event.recorded_by.is_empty() {
        hasher.update((event.recorded_by.len() as u64).to_be_bytes());
        hasher.update(event.recorded_by.as_bytes());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rapport_domain::{AccountId, EventId, Limits, Timestamp};

    fn sample_by(payload: &[u8], recorded_by: &str) -> Hash {
        chain_hash(&sample_event(payload, recorded_by, HashScheme::Positioned))
    }

    fn sample_event(payload: &[u8], recorded_by: &str, scheme: HashScheme) -> StoredEvent {
        StoredEvent {
            account_id: AccountId::parse("acme", &Limits::default()).unwrap(),
            version: 1,
            position: 1,
            recorded_at: Timestamp::from_unix_nanos(1),
            event_id: EventId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap(),
            recorded_by: recorded_by.into(),
            payload: Bytes::copy_from_slice(payload),
            prev_hash: GENESIS_HASH,
            // Not part of the input.
            hash: [7; 32],
            scheme,
        }
    }

    fn sample(payload: &[u8]) -> Hash {
        sample_by(payload, "")
    }

    fn hex(hash: Hash) -> String {
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn known_answer() {
        // Computed independently with Python's hashlib over the documented input:
        // sha256(b"rapport.event.v1\0" + bytes(32) + pack(">Q", 4) + b"acme" + pack(">Q", 1)
        //        + pack(">Q", 1) + pack(">q", 1) + UUID(...).bytes + pack(">Q", 3) + b"abc")
        let expected = "45f4861a0f10cdd1b7d178a2bf1073e95f4544ed0e189a0deec2f3338ccbebb9";
        assert_eq!(hex(sample(b"abc")), expected);
    }

    #[test]
    fn known_answer_with_an_identity() {
        // The same input as above followed by pack(">Q", 8) + b"crm-sync", with hashlib.
        let expected = "67ed888dfeca4241fe421a46804e374aeea9604eaaaebba3a6f50ec05f04cbe7";
        assert_eq!(hex(sample_by(b"abc", "crm-sync")), expected);
    }

    #[test]
    fn known_answer_without_the_position() {
        // sha256(b"rapport.event.v2\0" + bytes(32) + pack(">Q", 4) + b"acme" + pack(">Q", 1)
        //        + pack(">q", 1) + UUID(...).bytes + pack(">Q", 3) + b"abc"), with hashlib.
        let expected = "7f98bdb5715bc4df9335e8f8ead39ef0e14b617c328f81d0f45291c32652f8eb";
        let mut event = sample_event(b"abc", "", HashScheme::Unpositioned);
        assert_eq!(hex(chain_hash(&event)), expected);
        // The position is not part of it: wherever the stream puts the event, its hash holds.
        event.position = 9_000;
        assert_eq!(hex(chain_hash(&event)), expected);
        assert_ne!(hex(chain_hash(&event)), hex(sample(b"abc")), "the tags keep the schemes apart");
    }

    #[test]
    fn every_byte_of_the_payload_counts() {
        assert_ne!(sample(b"abc"), sample(b"abd"));
        assert_ne!(sample(b"abc"), sample(b"ab"));
    }
}

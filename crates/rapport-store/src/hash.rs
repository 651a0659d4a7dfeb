//! The hash chain: each event's hash covers its envelope, its bytes and the previous event's
//! hash in its stream, so that altering, removing or reordering a recorded event is detectable.

use sha2::{Digest, Sha256};

use crate::StoredEvent;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// What version 1 of every stream chains to.
pub const GENESIS_HASH: Hash = [0; 32];

/// Domain separation: a hash of this shape can never be mistaken for another SHA-256 use.
const TAG: &[u8] = b"rapport.event.v1\0";

/// The hash of a recorded event (its own `hash` field is not part of the input):
///
/// `SHA-256("rapport.event.v1\0" ‖ prev_hash ‖ u64be(len(account_id)) ‖ account_id ‖
/// u64be(version) ‖ u64be(position) ‖ i64be(recorded_at, ns since epoch) ‖ event_id (16 bytes) ‖
/// u64be(len(payload)) ‖ payload [‖ u64be(len(recorded_by)) ‖ recorded_by])`.
///
/// Variable-length fields are length-prefixed so that no two different records hash the same
/// input. The `recorded_by` part is present only when the identity is not empty, so events
/// recorded before identities were (or by a server without authentication) keep their hash.
/// This definition is part of the on-disk format: changing it needs a new tag.
pub fn chain_hash(event: &StoredEvent) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(TAG);
    hasher.update(event.prev_hash);
    hasher.update((event.account_id.as_str().len() as u64).to_be_bytes());
    hasher.update(event.account_id.as_str().as_bytes());
    hasher.update(event.version.to_be_bytes());
    hasher.update(event.position.to_be_bytes());
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
        chain_hash(&StoredEvent {
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
        })
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
    fn every_byte_of_the_payload_counts() {
        assert_ne!(sample(b"abc"), sample(b"abd"));
        assert_ne!(sample(b"abc"), sample(b"ab"));
    }
}

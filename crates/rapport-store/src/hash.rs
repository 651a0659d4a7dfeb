//! The hash chain: each event's hash covers its envelope, its bytes and the previous event's
//! hash in its stream, so that altering, removing or reordering a recorded event is detectable.

use rapport_domain::{AccountId, EventId, Timestamp};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// What version 1 of every stream chains to.
pub const GENESIS_HASH: Hash = [0; 32];

/// Domain separation: a hash of this shape can never be mistaken for another SHA-256 use.
const TAG: &[u8] = b"rapport.event.v1\0";

/// The hash of a recorded event:
///
/// `SHA-256("rapport.event.v1\0" ‖ prev_hash ‖ u64be(len(account_id)) ‖ account_id ‖
/// u64be(version) ‖ u64be(position) ‖ i64be(recorded_at, ns since epoch) ‖ event_id (16 bytes) ‖
/// u64be(len(payload)) ‖ payload)`.
///
/// Variable-length fields are length-prefixed so that no two different records hash the same
/// input. This definition is part of the on-disk format: changing it needs a new tag.
pub fn chain_hash(
    prev_hash: &Hash,
    account_id: &AccountId,
    version: u64,
    position: u64,
    recorded_at: Timestamp,
    event_id: &EventId,
    payload: &[u8],
) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(TAG);
    hasher.update(prev_hash);
    hasher.update((account_id.as_str().len() as u64).to_be_bytes());
    hasher.update(account_id.as_str().as_bytes());
    hasher.update(version.to_be_bytes());
    hasher.update(position.to_be_bytes());
    hasher.update(recorded_at.unix_nanos().to_be_bytes());
    hasher.update(event_id.as_bytes());
    hasher.update((payload.len() as u64).to_be_bytes());
    hasher.update(payload);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_domain::Limits;

    fn sample(payload: &[u8]) -> Hash {
        let account = AccountId::parse("acme", &Limits::default()).unwrap();
        let id = EventId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        chain_hash(&GENESIS_HASH, &account, 1, 1, Timestamp::from_unix_nanos(1), &id, payload)
    }

    #[test]
    fn known_answer() {
        // Computed independently with Python's hashlib over the documented input:
        // sha256(b"rapport.event.v1\0" + bytes(32) + pack(">Q", 4) + b"acme" + pack(">Q", 1)
        //        + pack(">Q", 1) + pack(">q", 1) + UUID(...).bytes + pack(">Q", 3) + b"abc")
        let expected = "45f4861a0f10cdd1b7d178a2bf1073e95f4544ed0e189a0deec2f3338ccbebb9";
        let hex: String = sample(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn every_byte_of_the_payload_counts() {
        assert_ne!(sample(b"abc"), sample(b"abd"));
        assert_ne!(sample(b"abc"), sample(b"ab"));
    }
}

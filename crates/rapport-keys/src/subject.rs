//! Whose key a key is ([`SubjectId`]) and the key itself ([`DataKey`]).

use std::fmt;

use rapport_domain::{AccountId, ContactId};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::KeyError;

/// Who a data key belongs to: one contact of one account. 32 bytes:
/// SHA-256("rapport subject v1\0" ‖ account id bytes ‖ 0x00 ‖ contact id bytes).
///
/// A hash rather than the ids themselves, so that the key store holds no personal data (a
/// contact id can be an e-mail address) and every slot has the same size. The NUL between the
/// ids keeps `("ab", "c")` and `("a", "bc")` apart: identifiers never contain one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectId([u8; 32]);

impl SubjectId {
    /// The subject of `contact` at `account`.
    pub fn of(account: &AccountId, contact: &ContactId) -> SubjectId {
        let mut hash = Sha256::new();
        hash.update(b"rapport subject v1\0");
        hash.update(account.as_str().as_bytes());
        hash.update([0]);
        hash.update(contact.as_str().as_bytes());
        SubjectId(hash.finalize().into())
    }

    /// A subject from its 32 bytes, as a keyring slot holds them.
    pub fn from_bytes(bytes: [u8; 32]) -> SubjectId {
        SubjectId(bytes)
    }

    /// The subject's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SubjectId {
    /// A short prefix: enough to tell subjects apart in a test's failure or a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectId(")?;
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}

impl fmt::Display for SubjectId {
    /// All 64 hexadecimal digits, for logs that must name one subject exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A contact's data key: 32 random bytes, zeroed on drop, never printed (its `Debug` shows
/// `DataKey(..)`).
///
/// Deliberately not `Clone`: the store hands out `Arc<DataKey>`, so that a forgotten key is
/// zeroed once, when the last holder lets go, and no stray copy outlives it.
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<DataKey, KeyError> {
        let mut bytes = [0; 32];
        getrandom::fill(&mut bytes).map_err(|source| KeyError::Randomness { source })?;
        Ok(DataKey(bytes))
    }

    /// A key from its 32 bytes (as unwrapped from the keyring, or in tests).
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    /// The key's bytes, for the ciphers in this crate only.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_domain::Limits;

    fn subject(account: &str, contact: &str) -> SubjectId {
        let limits = Limits::default();
        SubjectId::of(&AccountId::parse(account, &limits).unwrap(), &ContactId::parse(contact, &limits).unwrap())
    }

    #[test]
    fn a_subject_is_the_hash_of_both_ids_kept_apart() {
        let mut hash = Sha256::new();
        hash.update(b"rapport subject v1\0acme\0alice@acme.com");
        let expected: [u8; 32] = hash.finalize().into();
        assert_eq!(subject("acme", "alice@acme.com").as_bytes(), &expected);
        assert_ne!(subject("ab", "c"), subject("a", "bc"));
        assert_ne!(subject("acme", "alice"), subject("alice", "acme"));
    }

    #[test]
    fn debug_shows_a_prefix_and_no_key_is_printed() {
        let id = SubjectId::from_bytes([0xab; 32]);
        assert_eq!(format!("{id:?}"), "SubjectId(abababab…)");
        assert_eq!(id.to_string(), "ab".repeat(32));
        assert_eq!(format!("{:?}", DataKey::from_bytes([7; 32])), "DataKey(..)");
    }

    #[test]
    fn generated_keys_differ() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
    }
}

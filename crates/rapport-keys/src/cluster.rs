//! The seam through which a key store shares its keys with the other nodes of a cluster
//! ([`KeyCluster`]), and what the cluster says of a subject ([`SharedKey`]). Only the trait is
//! here: this crate knows no network, and the cluster is whatever implements it (the NATS key
//! stream of `rapport-nats`).

use crate::{KeyError, SubjectId, WrappedKey};

/// Where new keys are agreed with the other nodes of a cluster before anything is sealed under
/// them, and where a subject is forgotten on every node. Installed on a store with
/// [`crate::KeyStore::share_with`].
///
/// The store calls it without holding any of its locks, from the thread that asked it for keys
/// or for an erasure (a blocking one: both methods wait for the network), so an implementation
/// may take its time, and must not call back into the store's `keys_or_create` or `forget`.
/// Every node of a cluster unwraps the others' keys with its own master key, so every node must
/// be given the same master key file.
pub trait KeyCluster: Send + Sync {
    /// Offers keys this node just made, for subjects it had no key for, wrapped under the
    /// master key; returns, in the same order, the key the cluster holds for each: this one,
    /// or the one another node made first. Every node that asks about a subject gets the same
    /// answer, and an answer is durable in the cluster before it is returned. A subject the
    /// cluster has forgotten is `Err(KeyError::Forgotten { index })`, its index in `made`.
    fn agree(&self, made: &[(SubjectId, WrappedKey)]) -> Result<Vec<WrappedKey>, KeyError>;

    /// Forgets a subject on every node: once it returns, the cluster holds no copy of the
    /// subject's key, no node gets a key for it again, and every node that follows the cluster
    /// will forget it. Idempotent: forgetting again finishes what a failed attempt left undone.
    fn forget(&self, subject: &SubjectId) -> Result<(), KeyError>;
}

/// What the cluster holds of one subject, as a node that follows it reads it
/// ([`crate::KeyStore::adopt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedKey {
    /// The subject's key, wrapped under the master key every node shares.
    Wrapped(WrappedKey),
    /// The subject is forgotten: its key is deleted everywhere, and it never gets another.
    Forgotten,
}

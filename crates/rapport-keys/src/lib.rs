//! The key store: each contact's data key, wrapped under a master key, and the sealing of
//! personal fields under those keys.
//!
//! # Why
//!
//! Personal data about contacts (people at customers) is stored encrypted under a data key of
//! its own per person, so that forgetting a person is deleting their key ("crypto-shredding"):
//! the log is immutable, and only the keys are deletable. They live here, apart from the log,
//! in the data directory's key store. Each data key is stored wrapped (encrypted) under a
//! master key. Deleted bytes can linger on disk (in freed blocks, in the flash translation
//! layer, in backups), so the master key can be rotated: every live key is re-wrapped under a
//! new master key and the old one destroyed, which makes any lingering remnant of a deleted
//! key unreadable.
//!
//! # The cipher
//!
//! AES-256-GCM-SIV (RFC 8452) everywhere, for sealing fields and for wrapping keys. It is
//! nonce-misuse resistant: reusing a nonce with the same key reveals only whether two
//! plaintexts are equal, never the key or the plaintext. That makes a nonce derived
//! deterministically from the event id and the field safe, so the same event seals to the same
//! bytes, which the ledger's idempotent retries rely on (they compare stored bytes). AES is in
//! hardware on the machines we run on.
//!
//! # Subjects and sealing
//!
//! A data key belongs to a [`SubjectId`]: one contact of one account. [`seal`] encrypts a field
//! under the keys of every contact it concerns (a field about two people is lost when either
//! is forgotten); [`open`] reverses it. Both are pure; the scheme is [`SCHEME`], and the caller
//! writes it beside every sealed field so that a later scheme can be told apart.
//!
//! # Files
//!
//! The key store's directory holds `LOCK` (held by the one process that has the store open),
//! `keyring` (the wrapped keys), `master.key` unless the operator keeps the master key
//! elsewhere (`MasterKeySource::File`), and, during a rotation only, `keyring.next`.
//!
//! A master key file is 64 hexadecimal digits (either case; surrounding whitespace is
//! ignored), written with mode 0600.
//!
//! `keyring` is a 64-byte header followed by fixed 128-byte slots. Integers are big-endian;
//! checksums are crc32c.
//!
//! ```text
//! header (64 bytes, at offset 0)
//!    0..16   magic "rapport keyring\0"
//!   16..20   format, u32 = 1
//!   20..24   reserved, zero
//!   24..40   master check: MasterKey::check of the key that wraps this file's slots
//!   40..60   zero
//!   60..64   crc32c of bytes 0..60
//!
//! slot i (128 bytes, at offset 64 + 128·i: a slot never straddles a 512-byte sector)
//!    0       kind: 1 Live, 2 Forgotten, 3 ForgetIntent, 4 IntentSettled
//!    1..8    reserved, zero
//!    8..40   subject id
//!   40..100  wrapped key: nonce (12) ‖ AES-256-GCM-SIV(master, nonce, aad = subject id) of the
//!            32-byte data key (48 bytes: ciphertext and tag); zero unless the kind is Live.
//!            Wrap nonces are random.
//!  100..124  zero
//!  124..128  crc32c of bytes 0..124
//! ```
//!
//! Slots are appended (new keys, intents, settlements, tombstones); the one write in place is
//! `forget` overwriting a subject's Live slot with a Forgotten one whose key bytes are zero.
//! When loading, the last slot of a subject decides its intent (ForgetIntent or
//! IntentSettled) and its key (Live), except that a Forgotten slot anywhere wins over any
//! Live one. A new format would get a new format number in the header; this code refuses any
//! other than 1.
//!
//! # Durability and crashes
//!
//! Every change is made durable with `fdatasync` before the call that made it returns, except
//! new keys made with [`KeyStore::keys_or_create_unsynced`], which are durable (and visible to
//! readers) once [`KeyStore::make_durable`] has returned; callers syncing at once share one
//! `fdatasync`. One call's slots go in one write. A crash can leave, at the end of the file, a short slot, slots
//! that fail their checksum or slots of zeros (the kernel writes pages back in any order, so an
//! append's later slots can be on disk while earlier ones are not): none of them was
//! acknowledged, so opening cuts the file at the first slot of zeros, and then drops any
//! slots that fail their checksum at the end. A slot before that which fails its checksum was
//! a torn in-place `forget`; it is taken as a deletion of the subject its bytes name, logged,
//! and rewritten as a clean tombstone. `forget` appends its tombstone (and syncs) before it
//! overwrites the Live slot, so a torn overwrite never loses the tombstone, and opening
//! finishes a `forget` a crash interrupted between the two by zeroing the Live slot.
//!
//! A write or sync that fails leaves the file in a state this process cannot know (after a
//! failed `fdatasync` the kernel may have dropped the dirty pages), so the store then refuses
//! every further change until it is reopened; reading keys goes on.
//!
//! # Rotation
//!
//! [`KeyStore::rotate`] is crash-safe, and there is no moment at which the keys are unreadable:
//!
//! 1. Make a new master key M2 and write `keyring.next`: a header with M2's check, every live
//!    key re-wrapped under M2, every tombstone (its subject, kind Forgotten), every pending
//!    intent (settled ones are dropped); sync it and the directory.
//! 2. Write M2 to the master key's path (a temporary file renamed over it): the commit point.
//! 3. Rename `keyring.next` over `keyring` and sync the directory.
//!
//! Opening then decides by the master key's check: if it matches `keyring`, any
//! `keyring.next` is left over from a rotation that never committed and is deleted; if it
//! matches `keyring.next` instead, the rotation committed and step 3 is finished; otherwise
//! the master key is the wrong one and opening is refused.
//!
//! # Clusters
//!
//! Nodes that share one replicated log share their keys too, through a [`KeyCluster`]
//! installed on each node's store ([`KeyStore::share_with`]; `rapport-nats` implements it on a
//! JetStream stream). What travels is a key wrapped under the master key ([`WrappedKey`],
//! the 60 bytes of a keyring slot), never the key: so every node of a cluster must be given
//! the same master key file, and none of them may rotate it ([`KeyStore::rotate`] is refused
//! while keys are shared). Each node keeps its own keyring, in the format above.
//!
//! - A key for a new subject is offered to the cluster before it is written
//!   ([`KeyCluster::agree`]), and the key written is the one the cluster answers: the first
//!   any node offered. Until it has answered, nothing is written and nothing handed out, so
//!   two nodes making a key for one subject at once end with one key, and no crash leaves a
//!   key here that the cluster does not hold.
//! - A subject is forgotten in the cluster first ([`KeyCluster::forget`]), then here; a
//!   failure of the cluster leaves the erasure pending here, to be retried.
//! - A node follows the cluster into its store with [`KeyStore::adopt`]: keys it has not got
//!   are written (checked under the master key first), tombstones forget. Keys a store held
//!   before it shared them are offered with [`KeyStore::subjects`] and [`KeyStore::wrapped`].
//!
//! With no cluster installed, nothing of this happens, and the store's files are as they were.
//!
//! # Logs
//!
//! Logs name subjects, slots and paths, never key material: no type here that holds a key
//! prints it.

mod cluster;
mod error;
mod format;
mod master;
mod seal;
mod store;
mod subject;

pub use cluster::{KeyCluster, SharedKey};
pub use error::KeyError;
pub use master::{MasterKey, WrappedKey};
pub use seal::{FieldKey, SCHEME, Unreadable, open, seal};
#[doc(hidden)]
pub use store::RotationStep;
pub use store::{KeyCounts, KeyState, KeyStore, KeysWritten, MasterKeySource, Opened};
pub use subject::{DataKey, SubjectId};

//! The store's side of sharing keys with a cluster ([`KeyCluster`]): installing one, the
//! agreement key creation makes with it, and what a node that follows the cluster needs:
//! taking the keys and erasures it reads ([`KeyStore::adopt`]), and offering the keys it had
//! before it shared them ([`KeyStore::subjects`], [`KeyStore::wrapped`]).

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, PoisonError};

use super::{Entry, KeyStore};
use crate::error::io_error;
use crate::format::{self, Decoded, SLOT_LEN, SlotKind, slot_offset};
use crate::master::WRAPPED_LEN;
use crate::{DataKey, KeyCluster, KeyError, MasterKey, SharedKey, SubjectId, WrappedKey};

impl KeyStore {
    /// Shares this store's keys with `cluster` from now on: [`KeyStore::keys_or_create`] and
    /// [`KeyStore::keys_or_create_unsynced`] agree the keys they make with it before writing
    /// them, [`KeyStore::forget`] forgets on every node before it forgets here, and
    /// [`KeyStore::rotate`] is refused. Nothing else changes: reads, intents and syncs stay
    /// local. A later call replaces the cluster. The store holds the cluster for as long as it
    /// lives, so the cluster must not hold the store but a `Weak` of it.
    pub fn share_with(&self, cluster: Arc<dyn KeyCluster>) {
        *self.cluster.write().unwrap_or_else(PoisonError::into_inner) = Some(cluster);
    }

    /// The cluster the keys are shared with, if any.
    pub(super) fn cluster(&self) -> Option<Arc<dyn KeyCluster>> {
        self.cluster.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Makes keys for those of `subjects` that have none here (under the writer, which is then
    /// let go), and offers them to `cluster`; returns what it answered, to be written by
    /// [`KeyStore::create`].
    pub(super) fn agree(&self, cluster: &dyn KeyCluster, subjects: &[SubjectId]) -> Result<Agreed, KeyError> {
        let offered: Vec<(SubjectId, Arc<DataKey>, WrappedKey)> = {
            let writer = self.writer();
            writer.refuse_if_failed(&self.dir)?;
            let missing = self.resolve(&writer, subjects)?.missing;
            missing
                .into_iter()
                .map(|subject| {
                    let key = Arc::new(DataKey::generate()?);
                    let wrapped = WrappedKey(writer.master.wrap(&subject, &key)?);
                    Ok((subject, key, wrapped))
                })
                .collect::<Result<_, KeyError>>()?
        };
        if offered.is_empty() {
            // Another caller made them while this one waited for the writer.
            return Ok(Agreed::default());
        }
        let made: Vec<(SubjectId, WrappedKey)> =
            offered.iter().map(|(subject, _, wrapped)| (*subject, *wrapped)).collect();
        let answers = cluster.agree(&made).map_err(|error| match error {
            // The cluster numbers the subjects it was offered; the caller numbers its own.
            KeyError::Forgotten { index } => KeyError::Forgotten {
                index: made
                    .get(index)
                    .and_then(|(forgotten, _)| subjects.iter().position(|subject| subject == forgotten))
                    .unwrap_or(index),
            },
            other => other,
        })?;
        if answers.len() != made.len() {
            return Err(KeyError::Cluster {
                why: format!(
                    "the cluster answered {} keys for the {} it was offered; nothing was written: retry",
                    answers.len(),
                    made.len()
                ),
            });
        }
        let agreed = offered
            .into_iter()
            .zip(answers)
            .map(|((subject, key, ours), answer)| (subject, Offer { key, ours, answer }))
            .collect();
        Ok(Agreed(agreed))
    }

    /// Takes what the cluster holds of these subjects, in the cluster's order, as a node that
    /// follows the cluster does; nothing is asked of the cluster. A key for a subject that has
    /// none here is checked (unwrapped under the master key: one that does not open is
    /// [`KeyError::MasterKey`], and nothing is written) and written, byte for byte, as a Live
    /// slot; a forgotten subject is forgotten here as [`KeyStore::forget`] does it, its Live
    /// slot zeroed and any intent settled. A subject forgotten here stays forgotten, whatever
    /// key the cluster shows for it (its tombstone comes later). All of it goes in one append
    /// and one sync (and one more for the zeroing), so that a node catching up on many keys
    /// does not sync once per key.
    ///
    /// Returns the subjects that have another key here than the cluster's: keys made before
    /// the store shared them, while another node made its own, so fields may be sealed under
    /// either. Each keeps the key it has here; the caller decides what to do.
    pub fn adopt(&self, shared: &[(SubjectId, SharedKey)]) -> Result<Vec<SubjectId>, KeyError> {
        let mut writer = self.writer();
        self.settle_unsynced(&mut writer)?;
        let mut differing = Vec::new();
        // What the call changes, in the order first changed: a new key (`Some`) or an erasure
        // (`None`), a later message of a subject changing what an earlier one did.
        let mut changes: HashMap<SubjectId, Option<(Arc<DataKey>, WrappedKey)>> = HashMap::new();
        let mut changed = Vec::new();
        {
            let keys = self.keys();
            for (subject, shared) in shared {
                let here = match changes.get(subject) {
                    Some(Some((key, _))) => Here::Key(Arc::clone(key)),
                    Some(None) => Here::Forgotten,
                    None => match keys.subjects.get(subject) {
                        Some(Entry::Live { key, .. }) => Here::Key(Arc::clone(key)),
                        Some(Entry::Forgotten) => Here::Forgotten,
                        None => Here::Unknown,
                    },
                };
                match (here, shared) {
                    (Here::Forgotten, _) => {}
                    (Here::Key(key), SharedKey::Wrapped(wrapped)) => {
                        let theirs = unwrap_shared(&writer.master, &self.master_path, subject, wrapped)?;
                        if theirs.as_bytes() != key.as_bytes() {
                            differing.push(*subject);
                        }
                    }
                    (Here::Unknown, SharedKey::Wrapped(wrapped)) => {
                        let key = unwrap_shared(&writer.master, &self.master_path, subject, wrapped)?;
                        changes.insert(*subject, Some((Arc::new(key), *wrapped)));
                        changed.push(*subject);
                    }
                    (Here::Key(_) | Here::Unknown, SharedKey::Forgotten) => {
                        if changes.insert(*subject, None).is_none() {
                            changed.push(*subject);
                        }
                    }
                }
            }
        }
        if changed.is_empty() {
            return Ok(differing);
        }
        writer.refuse_if_failed(&self.dir)?;
        let mut live = Vec::new();
        let mut forgotten = Vec::new();
        for subject in changed {
            match changes.remove(&subject) {
                Some(Some((key, wrapped))) => live.push((subject, key, wrapped.0)),
                Some(None) => forgotten.push(subject),
                None => {}
            }
        }
        self.record(&mut writer, live, &forgotten)?;
        Ok(differing)
    }

    /// The wrapped key of a subject with a durable key here, read from its keyring slot: the
    /// bytes to give the other nodes of a cluster (a store that had keys before it shared them
    /// offers them so). `None` for a subject without one (unknown, forgotten, not yet durable).
    pub fn wrapped(&self, subject: &SubjectId) -> Result<Option<WrappedKey>, KeyError> {
        // The writer, so that no rotation moves the slot or replaces the file meanwhile.
        let writer = self.writer();
        let slot = match self.keys().subjects.get(subject) {
            Some(Entry::Live { slot, .. }) => *slot,
            _ => return Ok(None),
        };
        let mut bytes = [0u8; SLOT_LEN as usize];
        writer.file.read_exact_at(&mut bytes, slot_offset(slot)).map_err(io_error(&self.keyring_path, "reading"))?;
        match format::decode_slot(&bytes) {
            Decoded::Slot(read) if read.kind == SlotKind::Live && read.subject == *subject => {
                Ok(Some(WrappedKey(read.wrapped)))
            }
            _ => Err(KeyError::Corrupt {
                path: self.keyring_path.clone(),
                offset: slot_offset(slot),
                why: format!("slot {slot} should hold the key of subject {subject} and does not"),
            }),
        }
    }

    /// Every subject with a key or a tombstone here, in the order of their bytes.
    pub fn subjects(&self) -> Vec<SubjectId> {
        let mut subjects: Vec<SubjectId> = self.keys().subjects.keys().copied().collect();
        subjects.sort_unstable();
        subjects
    }
}

/// What a subject is here, as [`KeyStore::adopt`] has changed it so far.
enum Here {
    Key(Arc<DataKey>),
    Forgotten,
    Unknown,
}

/// The cluster's answers to the keys [`KeyStore::agree`] offered, by subject.
#[derive(Default)]
pub(super) struct Agreed(HashMap<SubjectId, Offer>);

/// A key offered to the cluster, and the one it holds for the subject.
struct Offer {
    key: Arc<DataKey>,
    ours: WrappedKey,
    answer: WrappedKey,
}

impl Agreed {
    /// What to write for `subject`: the key offered, if the cluster took it, or else the
    /// cluster's, unwrapped to check that it opens.
    pub(super) fn take(
        &mut self,
        master: &MasterKey,
        master_path: &Path,
        subject: &SubjectId,
    ) -> Result<(Arc<DataKey>, [u8; WRAPPED_LEN]), KeyError> {
        // A subject goes from having no key to having one, never back: one without a key now
        // had none when the cluster was asked, and was offered.
        let Some(offer) = self.0.remove(subject) else {
            return Err(KeyError::Cluster {
                why: format!("subject {subject} was not offered to the cluster before its key was written; retry"),
            });
        };
        if offer.answer == offer.ours {
            return Ok((offer.key, offer.ours.0));
        }
        let key = unwrap_shared(master, master_path, subject, &offer.answer)?;
        Ok((Arc::new(key), offer.answer.0))
    }
}

/// A key the cluster holds for `subject`, unwrapped: it must open under this node's master key.
fn unwrap_shared(
    master: &MasterKey,
    master_path: &Path,
    subject: &SubjectId,
    wrapped: &WrappedKey,
) -> Result<DataKey, KeyError> {
    master.unwrap_key(subject, &wrapped.0).ok_or_else(|| KeyError::MasterKey {
        path: master_path.to_owned(),
        why: format!(
            "does not open the key the cluster holds for subject {subject}: every node of a cluster must be given the \
             same master key file (--master-key-file)"
        ),
    })
}

//! Personal data at the server's edge: the key store, the sealing of what appends bring, the
//! opening of what reads show, and erasure (a contact forgotten: their event, then their key).
//!
//! An erasure is ordered so that a crash at any point leaves the contact wholly forgotten or
//! wholly readable, and an acknowledged one forgotten:
//! 1. the key store records, durably, that the erasure has begun (the key stays);
//! 2. the writer appends `ContactForgotten` under an event id derived from the contact, so a
//!    retry or a concurrent call finds the same event;
//! 3. the key is deleted, durably; only then is the erasure acknowledged.
//!
//! On start, every erasure begun and not settled is finished if its event is in the log and
//! dropped if it is not. From step 1 on, reads already show the contact forgotten.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rapport_domain::{
    AccountId, ContactForgotten, ContactId, Event, EventBody, EventId, ExpectedVersion, Label, Limits, SourceSystem,
    StaffId, Timestamp, Violation,
};
use rapport_keys::{DataKey, KeyError, KeyState, KeyStore, KeysWritten, SubjectId};
use rapport_store::{EventLog, StoreError, StoredEvent};
use rapport_wire::sealing::{Keys, holds_clear_text, seal_events, subjects_of};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::append::Append;
use crate::error::{AppendError, PrivacyError, ReadError};
use crate::state::AppState;

/// The personal data the server seals and opens, and the erasures under way.
pub(crate) struct PersonalData {
    /// The key store; `None` keeps personal data in clear (see `ServerConfig::keys`).
    store: Option<Arc<KeyStore>>,
    /// Contacts whose erasure has begun and whose key is not deleted yet: shown forgotten.
    erasing: RwLock<HashSet<SubjectId>>,
    /// How many there are, so that reads skip the lock when there are none (nearly always).
    erasing_count: AtomicUsize,
    /// Rotate the master key after every erasure.
    rotate_after_erasure: bool,
}

impl Keys for PersonalData {
    fn key(&self, subject: &SubjectId) -> KeyState {
        let Some(store) = &self.store else { return KeyState::Unknown };
        if self.erasing_count.load(Ordering::Acquire) > 0
            && self.erasing.read().unwrap_or_else(PoisonError::into_inner).contains(subject)
        {
            return KeyState::Forgotten;
        }
        store.key(subject)
    }
}

impl PersonalData {
    /// Personal data sealed with `store` (or kept in clear without one).
    pub fn new(store: Option<Arc<KeyStore>>, rotate_after_erasure: bool) -> PersonalData {
        PersonalData { store, erasing: RwLock::default(), erasing_count: AtomicUsize::new(0), rotate_after_erasure }
    }

    /// True when personal data is sealed.
    pub fn seals(&self) -> bool {
        self.store.is_some()
    }

    /// Seals the personal fields of an append's events in place. Contacts the key store does
    /// not know yet get their keys, written and not yet synced: the writer makes them durable
    /// (with the keys of the rest of its group) before it writes the events, so that no event is
    /// ever stored under a key that could be lost. An event about a forgotten contact is
    /// refused.
    pub async fn seal(&self, account: &AccountId, events: &mut [Event]) -> Result<KeysWritten, AppendError> {
        let Some(store) = &self.store else { return Ok(KeysWritten::default()) };
        let per_event: Vec<Vec<SubjectId>> = events.iter().map(|event| subjects_of(account, event)).collect();
        let mut wanted: Vec<SubjectId> = per_event.iter().flatten().copied().collect();
        if wanted.is_empty() {
            return Ok(KeysWritten::default());
        }
        wanted.sort_unstable();
        wanted.dedup();
        let live: Option<Vec<Arc<DataKey>>> = wanted
            .iter()
            .map(|subject| match store.key(subject) {
                KeyState::Live(key) => Some(key),
                KeyState::Forgotten | KeyState::Unknown => None,
            })
            .collect();
        let (found, written) = match live {
            Some(keys) => (keys, KeysWritten::default()),
            None => {
                let (store, asked) = (Arc::clone(store), wanted.clone());
                match tokio::task::spawn_blocking(move || store.keys_or_create_unsynced(&asked)).await {
                    Ok(Ok(made)) => made,
                    Ok(Err(KeyError::Forgotten { index })) => {
                        return Err(AppendError::Invalid(forgotten_in(account, events, &per_event, wanted[index])));
                    }
                    Ok(Err(error)) => return Err(AppendError::Store(StoreError::Io(error.to_string()))),
                    Err(error) => return Err(AppendError::Store(StoreError::Io(error.to_string()))),
                }
            }
        };
        let keys: HashMap<SubjectId, Arc<DataKey>> = wanted.into_iter().zip(found).collect();
        seal_events(events, account, &|subject| keys.get(subject).cloned());
        Ok(written)
    }

    fn begin_erasing(&self, subject: SubjectId) {
        if self.erasing.write().unwrap_or_else(PoisonError::into_inner).insert(subject) {
            self.erasing_count.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn end_erasing(&self, subject: &SubjectId) {
        if self.erasing.write().unwrap_or_else(PoisonError::into_inner).remove(subject) {
            self.erasing_count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The violation for an append naming a forgotten contact, at the first event that does.
fn forgotten_in(account: &AccountId, events: &[Event], per_event: &[Vec<SubjectId>], subject: SubjectId) -> Violation {
    let index = per_event.iter().position(|subjects| subjects.contains(&subject)).unwrap_or(0);
    let contact = events
        .get(index)
        .and_then(|event| {
            event.body.data_subjects().into_iter().find(|contact| SubjectId::of(account, contact) == subject)
        })
        .map_or_else(String::new, |contact| format!(" \"{contact}\""));
    Violation::new(
        format!("events[{index}]"),
        format!(
            "contact{contact} of account \"{account}\" was forgotten; no event may name them again (a person who \
             returns is added under a new contact id)"
        ),
    )
}

/// The id of the `ContactForgotten` event of a contact: derived from the contact, so that every
/// attempt to forget them records the same event (a UUID of version 8, "custom").
pub(crate) fn erasure_event_id(subject: &SubjectId) -> EventId {
    let digest = Sha256::new().chain_update(b"rapport erasure v1\0").chain_update(subject.as_bytes()).finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    EventId::from_bytes(bytes)
}

/// An erasure to make.
pub(crate) struct ErasureRequest {
    pub account_id: AccountId,
    pub contact_id: ContactId,
    pub reason: Label,
    pub requested_by: StaffId,
    /// The event's actor: the caller's identity, or the requester without authentication.
    pub actor: StaffId,
    /// The authenticated identity making the request; empty without authentication.
    pub recorded_by: String,
}

/// An erasure as recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Erasure {
    pub forgotten_at: Timestamp,
    pub position: u64,
    pub version: u64,
    /// An earlier erasure had already forgotten the contact.
    pub already: bool,
}

impl Erasure {
    fn of(record: &StoredEvent, already: bool) -> Erasure {
        Erasure { forgotten_at: record.recorded_at, position: record.position, version: record.version, already }
    }
}

/// Forgets a contact: see the module's documentation for the order of the steps.
pub(crate) async fn forget(state: &Arc<AppState>, request: ErasureRequest) -> Result<Erasure, PrivacyError> {
    let ErasureRequest { account_id, contact_id, reason, requested_by, actor, recorded_by } = request;
    let projected =
        state.projections.active().get(&account_id)?.ok_or_else(|| ReadError::AccountNotFound(account_id.clone()))?;
    let Some(contact) = projected.account.contacts.get(&contact_id) else {
        return Err(PrivacyError::ContactNotFound { account_id, contact_id });
    };
    let subject = SubjectId::of(&account_id, &contact_id);
    let event_id = erasure_event_id(&subject);
    if contact.forgotten {
        let record = recorded_erasure(state, &account_id, &contact_id, event_id).await?;
        return Ok(Erasure::of(&record, true));
    }
    let Some(store) = state.personal.store.clone() else { return Err(PrivacyError::NotSealing) };
    let stream = read_stream(state, &account_id).await?;
    let in_clear = stream
        .iter()
        .filter_map(|record| rapport_wire::decode_event(record).ok())
        .any(|event| event.body.data_subjects().contains(&contact_id) && holds_clear_text(&event));
    if in_clear {
        return Err(PrivacyError::InClear { account_id, contact_id });
    }

    state.personal.begin_erasing(subject);
    // Subscriptions' rendered events may show the contact's text: from here on it is shown
    // forgotten, so they are rendered again.
    state.feed.invalidate();
    let begun = Arc::clone(&store);
    if let Err(error) = blocking_keys(move || begun.begin_forget(&subject)).await {
        // Nothing was begun: the contact is as readable as before.
        state.personal.end_erasing(&subject);
        return Err(error);
    }
    let source =
        SourceSystem::parse("privacy", &Limits::default()).map_err(|e| PrivacyError::Invalid(e.at("source")))?;
    let event = Event {
        id: event_id,
        occurred_at: (state.clock)(),
        actor,
        source,
        body: EventBody::ContactForgotten(ContactForgotten { contact_id: contact_id.clone(), reason, requested_by }),
    };
    let append = Append {
        account_id: account_id.clone(),
        expected: ExpectedVersion::Any,
        payloads: vec![rapport_wire::encode_event(&event)],
        events: vec![event],
        recorded_by,
        keys_written: KeysWritten::default(),
    };
    let already = match state.writer.append(append).await {
        Ok(_) => false,
        // Another call recorded the erasure first (with its own reason and time): the contact
        // is forgotten all the same, and its key goes.
        Err(AppendError::EventIdTaken { .. } | AppendError::Invalid(_)) => true,
        // Not acknowledged: the event may still become durable. The erasure stays begun (and
        // the contact shown forgotten); a retry, or the next start, settles it.
        Err(error) => return Err(PrivacyError::Append(error)),
    };
    let forgetting = Arc::clone(&store);
    blocking_keys(move || forgetting.forget(&subject)).await?;
    state.personal.end_erasing(&subject);
    info!(account_id = %account_id, contact_id = %contact_id, "contact forgotten: key deleted");
    if state.personal.rotate_after_erasure {
        match blocking_keys(move || store.rotate()).await {
            Ok(path) => info!(master_key = %path.display(), "master key rotated after the erasure"),
            Err(error) => warn!(%error, "the master key could not be rotated after the erasure"),
        }
    }
    let record = recorded_erasure(state, &account_id, &contact_id, event_id).await?;
    Ok(Erasure::of(&record, already))
}

/// The `ContactForgotten` event of a contact: by its derived id, or (for a history imported
/// from elsewhere) the first in the stream.
async fn recorded_erasure(
    state: &Arc<AppState>,
    account_id: &AccountId,
    contact_id: &ContactId,
    event_id: EventId,
) -> Result<StoredEvent, PrivacyError> {
    let log = Arc::clone(&state.log);
    if let Some(record) = blocking_read(move || Ok(log.find_event(&event_id)?)).await? {
        return Ok(record);
    }
    read_stream(state, account_id)
        .await?
        .into_iter()
        .find(|record| {
            rapport_wire::decode_event(record)
                .is_ok_and(|event| matches!(&event.body, EventBody::ContactForgotten(f) if &f.contact_id == contact_id))
        })
        .ok_or_else(|| PrivacyError::ContactNotFound { account_id: account_id.clone(), contact_id: contact_id.clone() })
}

/// One account's durable stream, oldest first.
pub(crate) async fn read_stream(state: &Arc<AppState>, account_id: &AccountId) -> Result<Vec<StoredEvent>, ReadError> {
    let (log, account_id) = (Arc::clone(&state.log), account_id.clone());
    let head = state.projections.active().get(&account_id)?.map_or(0, |a| a.account.version);
    blocking_read(move || {
        Ok(log.read_stream(
            &account_id,
            1,
            rapport_store::Direction::Forwards,
            head.try_into().unwrap_or(usize::MAX),
        )?)
    })
    .await
}

async fn blocking_read<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(work).await?
}

async fn blocking_keys<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
) -> Result<T, PrivacyError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(PrivacyError::Keys),
        Err(error) => Err(PrivacyError::Read(ReadError::from(error))),
    }
}

/// Settles the erasures a crash interrupted: finished where the log holds their event, dropped
/// where it does not. Runs at start, before anything is served.
pub(crate) fn settle_interrupted_erasures(store: &KeyStore, log: &dyn EventLog) -> Result<(), PrivacyError> {
    for subject in store.pending_forgets() {
        if log.find_event(&erasure_event_id(&subject)).map_err(ReadError::from)?.is_some() {
            store.forget(&subject).map_err(PrivacyError::Keys)?;
            info!(subject = ?subject, "finished an erasure a stop interrupted: the key is deleted");
        } else {
            store.abandon_forget(&subject).map_err(PrivacyError::Keys)?;
            info!(subject = ?subject, "dropped an erasure a stop interrupted before its event was recorded");
        }
    }
    Ok(())
}

/// Rotates the master key every `every`, until the task is aborted.
pub(crate) async fn rotate_every(store: Arc<KeyStore>, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        let rotating = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || rotating.rotate()).await {
            Ok(Ok(path)) => info!(master_key = %path.display(), "master key rotated on schedule"),
            Ok(Err(error)) => warn!(%error, "the scheduled rotation of the master key failed"),
            Err(error) => warn!(%error, "the scheduled rotation of the master key failed"),
        }
    }
}

//! Sealing: an event's personal fields encrypted under the data keys of the contacts they
//! concern, and opened again for readers.
//!
//! Each field seals on its own (`rapport_keys::seal`), with a nonce derived from the event's
//! id, kind and field, and the account and contacts bound as associated data; so the same
//! event seals to the same bytes (idempotent retries compare stored bytes), and a sealed text
//! cannot be moved to another account or contact unnoticed. A field about several contacts (a
//! meeting's topic and notes) is sealed under all their keys together: forgetting any one of
//! them makes it unreadable.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use rapport_domain::{AccountId, ContactId, Event, EventKind, Personal, PersonalField, Sealed};
use rapport_keys::{DataKey, FieldKey, KeyState, KeyStore, SubjectId};

use crate::events::personal_field_number;

/// Where data keys come from when text is opened: the key store, or none at all.
pub trait Keys: Send + Sync {
    /// The key of one contact.
    fn key(&self, subject: &SubjectId) -> KeyState;
}

impl Keys for KeyStore {
    fn key(&self, subject: &SubjectId) -> KeyState {
        KeyStore::key(self, subject)
    }
}

/// No keys: every sealed text shows as forgotten (a reader without the key store).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKeys;

impl Keys for NoKeys {
    fn key(&self, _: &SubjectId) -> KeyState {
        KeyState::Unknown
    }
}

/// The subjects whose keys seal an event of `account`, in the order of
/// [`rapport_domain::EventBody::data_subjects`].
pub fn subjects_of(account: &AccountId, event: &Event) -> Vec<SubjectId> {
    event.body.data_subjects().iter().map(|contact| SubjectId::of(account, contact)).collect()
}

/// Seals the personal fields of `event` (of `account`) in place. `keys` are the keys of
/// [`subjects_of`], in its order. Empty text stays clear (there is nothing to hide), and text
/// already sealed or forgotten stays as it is.
pub fn seal_event(event: &mut Event, account: &AccountId, keys: &[Arc<DataKey>]) {
    let subjects = subjects_of(account, event);
    debug_assert_eq!(subjects.len(), keys.len(), "one key per data subject");
    let key_of = |subject: &SubjectId| subjects.iter().position(|s| s == subject).and_then(|i| keys.get(i).cloned());
    seal_events(std::slice::from_mut(event), account, &key_of);
}

/// [`seal_event`] for several events of `account`, each under the keys `key_of` gives for its
/// subjects. Events about the same contacts share one derived field key (a request's events
/// are mostly about a few people). An event one of whose keys `key_of` lacks stays as it is.
pub fn seal_events(events: &mut [Event], account: &AccountId, key_of: &dyn Fn(&SubjectId) -> Option<Arc<DataKey>>) {
    let mut field_keys: HashMap<Vec<ContactId>, FieldKey> = HashMap::new();
    for event in events {
        let contacts = event.body.data_subjects();
        if contacts.is_empty() {
            continue;
        }
        let field_key = match field_keys.entry(contacts.clone()) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => {
                let keys: Option<Vec<Arc<DataKey>>> =
                    contacts.iter().map(|contact| key_of(&SubjectId::of(account, contact))).collect();
                let Some(keys) = keys else { continue };
                let keys: Vec<&DataKey> = keys.iter().map(AsRef::as_ref).collect();
                new.insert(FieldKey::derive(&keys, &associated_data(account, &contacts)))
            }
        };
        let (id, kind) = (event.id, event.body.kind());
        for (field, text) in event.body.personal_fields_mut() {
            let Personal::Clear(clear) = text else { continue };
            if clear.is_empty() {
                continue;
            }
            let bytes = field_key.seal(&nonce_seed(id.as_bytes(), kind, field), clear.as_bytes());
            *text = Personal::Sealed(Sealed { contacts: contacts.clone(), bytes });
        }
    }
}

/// True when an event holds personal text in clear (an event of payload format 1).
pub fn holds_clear_text(event: &Event) -> bool {
    event.body.personal_fields().iter().any(|(_, text)| text.as_clear().is_some_and(|t| !t.is_empty()))
}

/// Opens the personal fields of `event` (of `account`) in place. A field whose keys are not
/// all live (a contact forgotten, or a key store that lacks them) becomes forgotten.
pub fn open_event(event: &mut Event, account: &AccountId, keys: &dyn Keys) {
    for (_, text) in event.body.personal_fields_mut() {
        *text = open(text, account, keys);
    }
}

/// One text opened: clear text as it is, sealed text in clear if every key it needs is live,
/// else forgotten.
pub fn open(text: &Personal, account: &AccountId, keys: &dyn Keys) -> Personal {
    let Personal::Sealed(Sealed { contacts, bytes }) = text else { return text.clone() };
    let mut found = Vec::with_capacity(contacts.len());
    for contact in contacts {
        match keys.key(&SubjectId::of(account, contact)) {
            KeyState::Live(key) => found.push(key),
            KeyState::Forgotten | KeyState::Unknown => return Personal::Forgotten,
        }
    }
    let found: Vec<&DataKey> = found.iter().map(AsRef::as_ref).collect();
    rapport_keys::open(&found, &associated_data(account, contacts), bytes)
        .ok()
        .and_then(|plain| String::from_utf8(plain).ok())
        .map_or(Personal::Forgotten, Personal::Clear)
}

/// What a sealed text is bound to: the account and the contacts whose keys seal it.
fn associated_data(account: &AccountId, contacts: &[ContactId]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + account.as_str().len() + contacts.len() * 16);
    aad.extend_from_slice(b"rapport personal v1\0");
    aad.extend_from_slice(account.as_str().as_bytes());
    for contact in contacts {
        aad.push(0);
        aad.extend_from_slice(contact.as_str().as_bytes());
    }
    aad
}

/// What a field's nonce derives from: the event's id, its kind and the field's number, which
/// no other field of any event shares.
fn nonce_seed(id: &[u8; 16], kind: EventKind, field: PersonalField) -> Vec<u8> {
    let mut seed = Vec::with_capacity(40);
    seed.extend_from_slice(id);
    seed.extend_from_slice(kind.name().as_bytes());
    seed.extend_from_slice(&personal_field_number(kind, field).unwrap_or_default().to_be_bytes());
    seed
}

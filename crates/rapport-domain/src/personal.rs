//! Personal data: the text about people at the customer (a contact's name and title, and what
//! was said, noted or given where they were named).
//!
//! The ledger stores it sealed under a data key per person, so that forgetting a person deletes
//! a key and no event: the log stays immutable and its hash chain keeps verifying. Here it is
//! only a value that is in clear, sealed or forgotten; sealing and opening happen at the edge
//! that holds the keys. What stays in clear beside it (ids, times, kinds, department, role,
//! the key flag, stance and closeness, amounts) identifies no one once the name is gone: it is
//! linked only to a pseudonymous contact id.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ContactId;

/// Text about people at the customer, as the ledger holds it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Personal {
    /// Readable: as a client wrote it, as a reader opened it, or as a log of payload format 1
    /// (before sealing) stored it.
    Clear(String),
    /// Encrypted under the data keys of the contacts it concerns.
    Sealed(Sealed),
    /// Gone: a contact it concerns was forgotten.
    Forgotten,
}

/// Personal text encrypted under the data keys of the contacts it concerns.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The contacts whose keys seal it, in id order: forgetting any one makes it unreadable.
    pub contacts: Vec<ContactId>,
    /// The nonce, the ciphertext and the tag.
    pub bytes: Vec<u8>,
}

impl Personal {
    /// Text in clear.
    pub fn clear(text: impl Into<String>) -> Personal {
        Personal::Clear(text.into())
    }

    /// The text, when it is in clear.
    pub fn as_clear(&self) -> Option<&str> {
        match self {
            Personal::Clear(text) => Some(text),
            Personal::Sealed(_) | Personal::Forgotten => None,
        }
    }

    /// True once a contact it concerns was forgotten.
    pub fn is_forgotten(&self) -> bool {
        matches!(self, Personal::Forgotten)
    }
}

impl Default for Personal {
    fn default() -> Self {
        Personal::Clear(String::new())
    }
}

/// Never the text itself: a `Debug` of an event may reach a log or a test's failure message.
impl fmt::Debug for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Personal::Clear(text) => write!(f, "Clear(<{} bytes>)", text.len()),
            Personal::Sealed(sealed) => write!(f, "Sealed({:?}, <{} bytes>)", sealed.contacts, sealed.bytes.len()),
            Personal::Forgotten => f.write_str("Forgotten"),
        }
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({:?}, <{} bytes>)", self.contacts, self.bytes.len())
    }
}

/// Which personal field of its event a text is, for sealing (each field seals on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PersonalField {
    /// `ContactAdded.name`, `ContactUpdated.name`.
    Name,
    /// `ContactAdded.title`, `ContactUpdated.title`.
    Title,
    /// `MeetingHeld.topic`, when the meeting names contacts.
    Topic,
    /// `MeetingHeld.notes`, when the meeting names contacts.
    Notes,
    /// `GiftGiven.description`.
    Description,
    /// `SupportSignal.evidence`, and `CompetitorSignal.evidence` when it names a contact.
    Evidence,
    /// `FeedbackReceived.text`, when a contact gave it.
    Text,
    /// `RelationshipPlanned.actions`.
    Actions,
}

/// What a reader shows for a forgotten contact's name.
pub const FORGOTTEN_NAME: &str = "[forgotten]";

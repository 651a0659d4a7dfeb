//! Identifiers: of accounts, contacts, our staff, source systems and events.
//!
//! Textual identifiers share one rule: 1 to `Limits::max_id_len` bytes of ASCII letters,
//! digits and `.` `_` `-` `:` `@` `+`, starting with a letter or digit. That covers CRM keys,
//! e-mail addresses and slugs, keeps them printable in logs and terminals, and guarantees they
//! never contain a NUL, which the store uses as a key separator.

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

use uuid::Uuid;

use crate::{InvalidValue, Limits, error::quoted};

fn check_identifier(value: &str, what: &str, limits: &Limits) -> Result<(), InvalidValue> {
    if value.is_empty() {
        return Err(InvalidValue::new(format!("{what} is required")));
    }
    if value.len() > limits.max_id_len {
        return Err(InvalidValue::new(format!(
            "{what} {} is {} bytes long; at most {} are allowed",
            quoted(value),
            value.len(),
            limits.max_id_len
        )));
    }
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(InvalidValue::new(format!("{what} {} must start with a letter or a digit", quoted(value))));
    }
    if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || ".-_:@+".contains(*c))) {
        return Err(InvalidValue::new(format!(
            "{what} {} contains {:?}; use only ASCII letters, digits and . _ - : @ +",
            quoted(value),
            bad
        )));
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses an identifier, enforcing the shared identifier rule. Owned text (a
            /// decoded request's) becomes the identifier without being copied.
            pub fn parse(value: impl AsRef<str> + Into<String>, limits: &Limits) -> Result<Self, InvalidValue> {
                check_identifier(value.as_ref(), $what, limits)?;
                Ok(Self(value.into()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier!(
    /// A customer account: the company we hold a relationship with, and the key of its stream.
    AccountId,
    "account id"
);
identifier!(
    /// A person at the customer, unique within the account.
    ContactId,
    "contact id"
);
identifier!(
    /// One of our people (an account owner, a team member, an actor, a meeting participant).
    StaffId,
    "staff id"
);
identifier!(
    /// A relationship plan, unique within its account.
    PlanId,
    "plan id"
);
identifier!(
    /// The system an event came from (`crm`, `calendar`, `hr`, `cli`).
    SourceSystem,
    "source"
);

/// The client-chosen identity of an event: a UUID, the idempotency key of appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// Parses a hyphenated UUID (`67e55044-10b1-426f-9247-bb680e5fe0c8`), in any case.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if value.is_empty() {
            return Err(InvalidValue::new("event id is required; use a UUID chosen by the client"));
        }
        // Only the hyphenated form: it is the one every tool prints, and accepting several
        // spellings of one id would make logs harder to search.
        if value.len() != 36 {
            return Err(InvalidValue::new(format!(
                "event id {} is not a hyphenated UUID (like 67e55044-10b1-426f-9247-bb680e5fe0c8)",
                quoted(value)
            )));
        }
        Uuid::from_str(value).map(Self).map_err(|_| {
            InvalidValue::new(format!(
                "event id {} is not a hyphenated UUID (like 67e55044-10b1-426f-9247-bb680e5fe0c8)",
                quoted(value)
            ))
        })
    }

    /// The id from its 16 raw bytes, as stored.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    /// The 16 raw bytes of the UUID.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for EventId {
    /// The canonical form: hyphenated, lowercase.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        let limits = Limits::default();
        let accept = ["acme", "ACME-001", "0015g00000XyZab", "alice@example.com", "a.b_c:d+e", "x"];
        for value in accept {
            assert!(AccountId::parse(value, &limits).is_ok(), "{value:?} should be accepted");
        }
        let too_long = "a".repeat(limits.max_id_len + 1);
        let reject = ["", "-acme", " acme", "ac me", "acme\0", "acme\n", "acmé", "a/b", too_long.as_str()];
        for value in reject {
            assert!(AccountId::parse(value, &limits).is_err(), "{value:?} should be rejected");
        }
        assert!(AccountId::parse("a".repeat(limits.max_id_len), &limits).is_ok());
    }

    #[test]
    fn error_names_the_offending_character() {
        let err = ContactId::parse("bob smith", &Limits::default()).unwrap_err();
        assert_eq!(err.reason, "contact id \"bob smith\" contains ' '; use only ASCII letters, digits and . _ - : @ +");
    }

    #[test]
    fn event_ids_are_hyphenated_uuids_in_canonical_lowercase() {
        let id = EventId::parse("67E55044-10B1-426F-9247-BB680E5FE0C8").unwrap();
        assert_eq!(id.to_string(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert_eq!(EventId::from_bytes(*id.as_bytes()), id);
        for bad in ["", "67e5504410b1426f9247bb680e5fe0c8", "{67e55044-10b1-426f-9247-bb680e5fe0c8}", "not-a-uuid"] {
            assert!(EventId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}

//! The two shapes of rejection: a value that breaks its type's rule, and a request field that
//! breaks a rule (with the path of the field, as clients name it).

use std::fmt;

/// A value that cannot be a domain value: says why and, where useful, what would be valid.
///
/// Constructors return it without knowing where the value came from; the caller adds the
/// field path with [`InvalidValue::at`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidValue {
    /// Lowercase, no trailing period; names the offending value when it is printable.
    pub reason: String,
}

impl InvalidValue {
    /// A rejection with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }

    /// Attaches the path of the request field that held the value.
    pub fn at(self, field: impl Into<String>) -> Violation {
        Violation { field: field.into(), reason: self.reason }
    }
}

/// A request field that breaks a rule: the field's path (`events[2].support_signal.support`)
/// and the reason, phrased so the caller knows what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Violation {
    /// Path of the field in the request, using the contract's field names.
    pub field: String,
    /// Why the field is rejected; lowercase, no trailing period.
    pub reason: String,
}

impl Violation {
    /// A violation of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Quotes a client-supplied value for an error message, escaped and cut to a readable length,
/// so that control characters or megabyte strings never end up verbatim in a message or a log.
pub(crate) fn quoted(value: &str) -> String {
    const SHOWN: usize = 64;
    let mut shown: String = value.chars().take(SHOWN).collect::<String>().escape_debug().collect();
    if value.chars().count() > SHOWN {
        shown.push('…');
    }
    format!("\"{shown}\"")
}

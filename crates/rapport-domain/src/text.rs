//! Free text written by people: short single-line labels and longer notes.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{InvalidValue, Limits};

/// Single-line text: a name, a title, a department, a topic, a reason. No control characters,
/// at most `Limits::max_label_chars` characters. May be empty where the field is optional.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Label(String);

impl Label {
    /// Parses an optional label (empty is allowed). Owned text (a decoded request's) becomes
    /// the label without being copied.
    pub fn parse(value: impl AsRef<str> + Into<String>, limits: &Limits) -> Result<Self, InvalidValue> {
        let text = value.as_ref();
        // Most text is ASCII: its characters are its bytes, checked a byte at a time.
        let chars = if text.is_ascii() { text.len() } else { text.chars().count() };
        if chars > limits.max_label_chars {
            return Err(InvalidValue::new(format!(
                "is {chars} characters long; at most {} are allowed",
                limits.max_label_chars
            )));
        }
        if let Some(bad) = first_control(text, |_| false) {
            return Err(InvalidValue::new(format!(
                "contains the control character {bad:?}; use a single line of text"
            )));
        }
        Ok(Self(value.into()))
    }

    /// Parses a label that must hold something other than whitespace.
    pub fn parse_required(value: impl AsRef<str> + Into<String>, limits: &Limits) -> Result<Self, InvalidValue> {
        if value.as_ref().trim().is_empty() {
            return Err(InvalidValue::new("is required"));
        }
        Self::parse(value, limits)
    }

    /// A label the domain itself writes, known to satisfy the rules.
    pub(crate) fn trusted(value: &str) -> Self {
        debug_assert!(Self::parse(value, &Limits::default()).is_ok(), "{value:?} breaks the label rules");
        Self(value.to_owned())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, given up.
    pub fn into_string(self) -> String {
        self.0
    }

    /// True when there is no text.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Label {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Multi-line free text: meeting notes, evidence, feedback. Line breaks and tabs are allowed,
/// other control characters are not; at most `Limits::max_note_bytes` bytes. May be empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Note(String);

impl Note {
    /// Parses a note. Owned text (a decoded request's) becomes the note without being copied.
    pub fn parse(value: impl AsRef<str> + Into<String>, limits: &Limits) -> Result<Self, InvalidValue> {
        let text = value.as_ref();
        if text.len() > limits.max_note_bytes {
            return Err(InvalidValue::new(format!(
                "is {} bytes long; at most {} are allowed",
                text.len(),
                limits.max_note_bytes
            )));
        }
        if let Some(bad) = first_control(text, |c| matches!(c, '\n' | '\r' | '\t')) {
            return Err(InvalidValue::new(format!("contains the control character {bad:?}")));
        }
        Ok(Self(value.into()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, given up.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for Note {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The first control character of `value` that `allowed` does not let through. ASCII text,
/// the common case, is checked byte by byte (its control characters are below 0x20 and 0x7F);
/// other text character by character (the C1 controls, U+0080 to U+009F, are two bytes).
fn first_control(value: &str, allowed: impl Fn(char) -> bool) -> Option<char> {
    if value.is_ascii() {
        let control = |b: u8| b < 0x20 || b == 0x7f;
        // A chunk is checked without a branch per byte (which the compiler vectorises); only
        // a chunk that holds a control character is looked at byte by byte.
        value
            .as_bytes()
            .chunks(32)
            .filter(|chunk| chunk.iter().fold(false, |any, &b| any | control(b)))
            .flat_map(|chunk| chunk.iter().map(|&b| char::from(b)))
            .find(|&c| control(c as u8) && !allowed(c))
    } else {
        value.chars().find(|&c| c.is_control() && !allowed(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let limits = Limits::default();
        assert!(Label::parse("", &limits).is_ok());
        assert!(Label::parse_required("", &limits).is_err());
        assert!(Label::parse_required("  ", &limits).is_err());
        assert!(Label::parse_required("Müller & Söhne GmbH", &limits).is_ok());
        assert!(Label::parse("two\nlines", &limits).is_err());
        assert!(Label::parse("é".repeat(limits.max_label_chars), &limits).is_ok());
        assert!(Label::parse("é".repeat(limits.max_label_chars + 1), &limits).is_err());
    }

    #[test]
    fn notes() {
        let limits = Limits::default();
        assert!(Note::parse("line one\nline two\ttabbed\r\n", &limits).is_ok());
        assert!(Note::parse("bell\u{7}", &limits).is_err());
        assert!(Note::parse("x".repeat(limits.max_note_bytes), &limits).is_ok());
        assert!(Note::parse("x".repeat(limits.max_note_bytes + 1), &limits).is_err());
    }

    /// The byte-wise check of ASCII text finds exactly the control characters
    /// `char::is_control` finds, for every character there is, alone and among ASCII.
    #[test]
    fn control_characters_are_found_as_is_control_finds_them() {
        let newline_tab = |c: char| matches!(c, '\n' | '\r' | '\t');
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            for text in [format!("{c}"), format!("plain {c} text")] {
                let want = c.is_control().then_some(c);
                assert_eq!(first_control(&text, |_| false), want, "{c:?}");
                let want_note = (c.is_control() && !newline_tab(c)).then_some(c);
                assert_eq!(first_control(&text, newline_tab), want_note, "{c:?} in a note");
            }
        }
    }
}

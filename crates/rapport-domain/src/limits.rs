//! Bounds on what one request may carry. Configuration, not constants: the defaults are sane
//! for a relationship ledger and an operator may tighten or widen them.

use std::time::Duration;

/// Bounds that validation enforces on every append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most events in one append request.
    pub max_events_per_append: usize,
    /// Longest identifier (account, contact, staff, source), in bytes.
    pub max_id_len: usize,
    /// Longest single-line text (names, titles, topics, reasons), in characters.
    pub max_label_chars: usize,
    /// Longest free text (meeting notes, evidence, feedback), in bytes.
    pub max_note_bytes: usize,
    /// Most entries in a list field (meeting staff, meeting contacts).
    pub max_list_len: usize,
    /// How far in the future of the server's clock an `occurred_at` may lie (clock skew).
    pub max_future_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events_per_append: 1_000,
            max_id_len: 128,
            max_label_chars: 256,
            max_note_bytes: 16 * 1024,
            max_list_len: 100,
            max_future_skew: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl Limits {
    /// No bounds at all: for parsing events already recorded, which passed the limits in force
    /// when they were appended and must always fold, whatever the limits are today.
    pub fn for_recorded_events() -> Self {
        Self {
            max_events_per_append: usize::MAX,
            max_id_len: usize::MAX,
            max_label_chars: usize::MAX,
            max_note_bytes: usize::MAX,
            max_list_len: usize::MAX,
            max_future_skew: Duration::MAX,
        }
    }
}

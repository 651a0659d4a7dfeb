//! What a client believes about the stream it appends to: optimistic concurrency, decided
//! against the stream's version before anything is written.

use std::fmt;

/// The client's belief about the stream it appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must be empty.
    NoStream,
    /// The stream must hold at least one event.
    StreamExists,
    /// The stream's last version must be exactly this (never 0: that is `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `current` (0: empty) satisfies the expectation.
    pub fn holds(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::StreamExists => current > 0,
            ExpectedVersion::Exact(version) => current == version,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("an existing stream"),
            ExpectedVersion::Exact(version) => write!(f, "version {version}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ExpectedVersion::*;

    #[test]
    fn each_expectation_holds_for_exactly_its_streams() {
        // (expectation, current version, holds)
        let cases = [
            (Any, 0, true),
            (Any, 7, true),
            (NoStream, 0, true),
            (NoStream, 1, false),
            (StreamExists, 0, false),
            (StreamExists, 1, true),
            (Exact(3), 3, true),
            (Exact(3), 2, false),
            (Exact(3), 4, false),
        ];
        for (expected, current, holds) in cases {
            assert_eq!(expected.holds(current), holds, "{expected} at version {current}");
        }
    }
}

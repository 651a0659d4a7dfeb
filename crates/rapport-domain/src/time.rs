//! Instants as the domain sees them: nanoseconds since the Unix epoch, UTC.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{InvalidValue, Limits};

/// An instant, in nanoseconds since 1970-01-01T00:00:00Z. Covers 1677 to 2262.
///
/// The domain never reads a clock: the current time is always passed in as a `Timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

const NANOS_PER_SECOND: i64 = 1_000_000_000;

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The instant `nanos` nanoseconds after the epoch (before it, if negative).
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Builds an instant from protobuf-style seconds and nanoseconds.
    pub fn from_parts(seconds: i64, nanos: i32) -> Result<Self, InvalidValue> {
        if !(0..NANOS_PER_SECOND).contains(&i64::from(nanos)) {
            return Err(InvalidValue::new(format!("nanos {nanos} is out of range; it must be in 0..=999999999")));
        }
        seconds
            .checked_mul(NANOS_PER_SECOND)
            .and_then(|n| n.checked_add(i64::from(nanos)))
            .map(Self)
            .ok_or_else(|| InvalidValue::new(format!("{seconds} seconds is outside the years 1677 to 2262")))
    }

    /// Nanoseconds since the epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down) and the nanoseconds within that second.
    pub const fn parts(self) -> (i64, i32) {
        (self.0.div_euclid(NANOS_PER_SECOND), self.0.rem_euclid(NANOS_PER_SECOND) as i32)
    }

    /// This instant moved forward by `nanos`, saturating at the end of the range.
    pub const fn saturating_add_nanos(self, nanos: i64) -> Self {
        Self(self.0.saturating_add(nanos))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seconds, nanos) = self.parts();
        write!(f, "{seconds}.{nanos:09}s after the epoch")
    }
}

/// Checks that a business timestamp is sane: not before 1970 and not further in the future of
/// `now` than the allowed clock skew.
pub fn check_occurred_at(occurred_at: Timestamp, now: Timestamp, limits: &Limits) -> Result<(), InvalidValue> {
    if occurred_at < Timestamp::EPOCH {
        return Err(InvalidValue::new("occurred before 1970-01-01T00:00:00Z; relationship events cannot be that old"));
    }
    let skew = i64::try_from(limits.max_future_skew.as_nanos()).unwrap_or(i64::MAX);
    let latest = now.saturating_add_nanos(skew);
    if occurred_at > latest {
        let ahead_seconds = (occurred_at.unix_nanos() - now.unix_nanos()) / NANOS_PER_SECOND;
        return Err(InvalidValue::new(format!(
            "lies {ahead_seconds}s in the future of the server's clock (at most {}s allowed); record events once they happened",
            limits.max_future_skew.as_secs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_including_before_the_epoch() {
        for (seconds, nanos) in [(0, 0), (1, 5), (1_700_000_000, 999_999_999), (-1, 1), (-5, 0)] {
            let ts = Timestamp::from_parts(seconds, nanos).unwrap();
            assert_eq!(ts.parts(), (seconds, nanos), "{seconds}s {nanos}ns");
        }
    }

    #[test]
    fn from_parts_rejects_bad_nanos_and_overflow() {
        assert!(Timestamp::from_parts(0, -1).is_err());
        assert!(Timestamp::from_parts(0, 1_000_000_000).is_err());
        assert!(Timestamp::from_parts(i64::MAX / 1_000_000_000 + 1, 0).is_err());
    }

    #[test]
    fn occurred_at_bounds() {
        let limits = Limits::default();
        let day = 24 * 60 * 60 * NANOS_PER_SECOND;
        let now = Timestamp::from_unix_nanos(1_750_000_000 * NANOS_PER_SECOND);
        assert!(check_occurred_at(Timestamp::EPOCH, now, &limits).is_ok());
        assert!(check_occurred_at(Timestamp::from_unix_nanos(-1), now, &limits).is_err());
        assert!(check_occurred_at(now.saturating_add_nanos(day), now, &limits).is_ok());
        let err =
            check_occurred_at(now.saturating_add_nanos(day + 1_000 * NANOS_PER_SECOND), now, &limits).unwrap_err();
        assert!(err.reason.contains("87400s in the future"), "{err}");
    }
}

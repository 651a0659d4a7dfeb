//! Calendar arithmetic on UTC instants, without a time-zone database (the domain is pure).

use rapport_domain::Timestamp;

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The UTC calendar year of an instant.
pub(crate) fn year_of(at: Timestamp) -> i32 {
    let days = at.unix_nanos().div_euclid(NANOS_PER_DAY);
    civil_from_days(days).0
}

/// The UTC date of an instant as `YYYY-MM-DD`.
pub fn date_of(at: Timestamp) -> String {
    let (year, month, day) = civil_from_days(at.unix_nanos().div_euclid(NANOS_PER_DAY));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_nanos(seconds * 1_000_000_000)
    }

    #[test]
    fn dates() {
        // Worked out by hand: 2026-01-01T00:00:00Z is 20454 days after the epoch.
        assert_eq!(date_of(at(0)), "1970-01-01");
        assert_eq!(date_of(at(20_454 * 86_400)), "2026-01-01");
        assert_eq!(date_of(at(20_454 * 86_400 - 1)), "2025-12-31");
        assert_eq!(year_of(at(20_454 * 86_400 - 1)), 2025);
        // 2024 is a leap year: 2024-02-29 is day 19782.
        assert_eq!(date_of(at(19_782 * 86_400)), "2024-02-29");
        assert_eq!(date_of(at(-1)), "1969-12-31");
    }
}

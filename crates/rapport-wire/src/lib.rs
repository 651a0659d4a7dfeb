//! Rapport's wire conversion: the one place where `rapport.v1` messages meet the domain's,
//! the projection's and the store's values.
//!
//! - [`requests`]: request fields parsed into domain values, every value checked against its
//!   domain type; a violation names the field's path (`events[2].support_signal.support`).
//! - [`events`]: a wire event to a domain event and back, canonically.
//! - [`payload`]: the stored form of an event (its canonical encoding, personal fields sealed),
//!   and a recorded event as clients read it (opened).
//! - [`sealing`]: personal fields sealed under their contacts' data keys, and opened.
//! - [`scores`]: scores and score kinds, score by score.
//! - [`practice`]: plans, cadence, coordination, contributions and the playbook.
//! - [`views`]: accounts, the portfolio, handover and gift reports, comparisons and
//!   chain breaks as clients read them.
//! - [`export`]: a recorded event as a line of an export (JSON).
//! - [`replies`]: replies built from the server's own state (append outcomes, checks, builds,
//!   progress, subscription messages).
//! - the contract's enums and the domain's, each pair written once (`enums`).
//!
//! It does no I/O and keeps no state; the server, the benchmark harness and the benchmarks
//! convert through it.

mod enums;
pub mod events;
pub mod export;
pub mod payload;
pub mod practice;
pub mod replies;
pub mod requests;
pub mod scores;
pub mod sealing;
pub mod views;

#[cfg(test)]
mod fuzz;

use rapport_domain::Timestamp;
use rapport_proto::wkt;

pub use enums::{contact_role_name, meeting_kind_name, outcome_kind_name, team_role_name};
pub use events::{event_from_wire, event_to_reader, event_to_wire, kind_of};
pub use payload::{CorruptEvent, UndecodableEvent, decode_event, encode_event, event_from_bytes, recorded_to_wire};
pub use scores::{score_kind, score_kind_to_wire};

/// An amount as people read it (`USD 120.00`, by the currency's minor-unit exponent); empty
/// when there is none.
pub fn money_text(minor: i64, currency: &str) -> String {
    match rapport_domain::Currency::parse(currency).and_then(|c| rapport_domain::Money::new(minor, c)) {
        Ok(money) => money.to_string(),
        Err(_) if currency.is_empty() => String::new(),
        Err(_) => format!("{currency} {minor} (minor units)"),
    }
}

/// The wire form of an instant.
pub fn timestamp_to_wire(ts: Timestamp) -> wkt::Timestamp {
    let (seconds, nanos) = ts.parts();
    wkt::Timestamp { seconds, nanos }
}

//! Realistic relationship events for Rapport, in the wire types of `rapport.v1`.
//!
//! Two uses, both deterministic for a seed and free of I/O and clocks (the current time is an
//! input):
//!
//! - [`sample`]: the small story `rapport demo` pushes so a newcomer sees the product work.
//!   Five customer accounts over the eighteen months before `now`: contacts across procurement,
//!   IT, finance, operations and the board; meetings of every kind; gifts in several
//!   currencies (one without an approval reference); a skeptical CIO won over to supporter; a
//!   contact leaving for a competitor; team members joining; a deal won; and the account
//!   owner of Nordwind Logistics rotating to another region and handing the account over.
//!   And the practice: a plan to win Nordwind's CIO achieved before its date, and one for
//!   Helios's CTO left overdue; Tianhe's CFO unmet past the cadence of a tier-S key contact; a
//!   seller from another business unit visiting Kappa's COO outside the account team; Helios's
//!   team left without delivery; and a competitor holding Kappa's new head of infrastructure
//!   closer than we do.
//! - [`Workload`]: an endless stream of valid append requests over many accounts with a
//!   realistic mix (mostly meetings and support signals, some gifts and contact changes, the
//!   odd owner change), for load tests and benchmarks.
//!
//! Every request satisfies Rapport's validation: streams start with `account_opened`,
//! contacts referred to are current, owner changes start from the current owner, and times
//! are never after `now`.

mod events;
mod rng;
mod sample;
mod words;
mod workload;

pub use sample::sample;
pub use workload::Workload;

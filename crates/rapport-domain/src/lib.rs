//! Rapport's domain: the facts of a customer relationship and what they add up to.
//!
//! This crate is pure. It does no I/O, reads no clock and knows nothing of protobuf, gRPC,
//! storage or async runtimes: time, identifiers and limits are inputs. The server parses wire
//! messages into these types (whose constructors enforce their invariants), asks [`decide`]
//! whether a batch may be appended to an account, and folds recorded events into an
//! [`Account`] with [`Account::apply`] or [`Account::replay`].

mod account;
mod decide;
mod error;
mod event;
mod expected;
mod filter;
mod ids;
mod limits;
mod personal;
mod text;
mod time;
mod values;

pub use account::{Account, Contact, ContactAssessment, Plan, TeamMember, Tenure, TierState, Touch, TouchKind};
pub use decide::{AppendContext, decide};
pub use error::{InvalidValue, Violation};
pub use event::{
    AccountOpened, CompetitorSignal, ContactAdded, ContactForgotten, ContactLeft, ContactUpdated, Event, EventBody,
    EventKind, EventRetracted, FeedbackReceived, GiftGiven, MeetingHeld, OutcomeRecorded, OwnerChanged, PlanClosed,
    PlanRevised, PlanTarget, RecordedFacts, RelationshipPlanned, StaffAssigned, SupportSignal, TeamMemberJoined,
    TeamMemberLeft, TierAssigned,
};
pub use expected::ExpectedVersion;
pub use filter::EventFilter;
pub use ids::{AccountId, ContactId, EventId, PlanId, SourceSystem, StaffId};
pub use limits::Limits;
pub use personal::{FORGOTTEN_NAME, Personal, PersonalField, Sealed};
pub use text::{Label, Note};
pub use time::{Timestamp, check_occurred_at};
pub use values::{
    ContactRole, Currency, Intimacy, MeetingKind, Money, OutcomeKind, PlanOutcome, SatisfactionScore, Support,
    TeamRole, Tier,
};

#[cfg(test)]
mod tests;

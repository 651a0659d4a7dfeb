//! Projection builds: each rule set's picture of every account, kept current, checkpointed,
//! and served.
//!
//! A [`Build`] is one rule set's projection. Its accounts live in the projection store (one
//! namespace per rule set, named `name@version`) and, once read or changed, in memory. It
//! records the log position it reflects; [`Build::catch_up`] folds the log from there. The
//! checkpointer commits the changed accounts and the position together, so a restart resumes
//! from the last checkpoint and folds only the events after it, and a crash between a log
//! write and a checkpoint is repaired the same way.
//!
//! [`Projections`] holds every build and which one is active. The writer folds each durable
//! group into the active build before it replies (so a client reads its own writes), and
//! with it every event other writers of a replicated log appended before it; the
//! projector task ([`follow`]) keeps the other builds caught up behind it. A new rule set is
//! built from the whole log by the same task, while the active build keeps serving.

mod build;
mod fold;
mod listing;
mod projector;
mod registry;

pub(crate) use build::Build;
pub(crate) use fold::{fold, fold_into, replay, replay_as_of};
pub(crate) use listing::quantised;
pub(crate) use projector::follow;
pub(crate) use registry::Projections;

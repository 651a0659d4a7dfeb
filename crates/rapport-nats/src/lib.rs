//! Rapport's log on a NATS JetStream cluster (issue 16), being built in steps. So far:
//! - [`stream`]: the stream Rapport keeps its log in, the settings it creates it with, and the
//!   check a node makes of the stream it finds before it writes to it;
//! - [`cluster`] (feature `cluster`): a cluster of real `nats-server`s on loopback ports for
//!   tests.
//!
//! The `EventLog` on the stream comes next; until then no `rapport serve` option reaches this
//! crate.

pub mod stream;

#[cfg(feature = "cluster")]
pub mod cluster;

//! Rapport's log on a NATS JetStream cluster: [`NatsLog`], the third log engine, on which
//! several Rapport nodes share one replicated log.
//! - [`stream`]: the stream Rapport keeps its log in, the settings it creates it with, and the
//!   check a node makes of the stream it finds before it writes to it;
//! - `log.rs`: the `EventLog` (see [`NatsLog`] for how the stream holds the log);
//! - `follow.rs`: the consumer that reads the stream into the node, in order;
//! - [`keys`]: the key stream beside it, through which the nodes share their data keys
//!   ([`KeyStream`]);
//! - `client.rs`: the client's runtime and connection, shared by the log and the key stream;
//! - [`cluster`] (feature `cluster`): a cluster of real `nats-server`s on loopback ports for
//!   tests.

mod client;
mod follow;
pub mod keys;
mod log;
pub mod stream;

#[cfg(feature = "cluster")]
pub mod cluster;

pub use keys::KeyStream;
pub use log::{NatsLog, NatsOptions, OpenError};

//! What can go wrong serving a request, in domain terms. `status.rs` turns these into gRPC
//! statuses; nothing else does.

use std::fmt;

use rapport_domain::{AccountId, EventId, Violation};
use rapport_store::StoreError;

/// The client's belief about the stream it appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// No check.
    Any,
    /// The stream must be empty.
    NoStream,
    /// The stream must hold at least one event.
    StreamExists,
    /// The stream's last version must be exactly this (never 0: that is `NoStream`).
    Exact(u64),
}

impl Expected {
    /// Whether a stream at `current` (0: empty) satisfies the expectation.
    pub fn holds(self, current: u64) -> bool {
        match self {
            Expected::Any => true,
            Expected::NoStream => current == 0,
            Expected::StreamExists => current > 0,
            Expected::Exact(version) => current == version,
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Any => f.write_str("any version"),
            Expected::NoStream => f.write_str("no stream"),
            Expected::StreamExists => f.write_str("an existing stream"),
            Expected::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// Why a caller may not do what it asked. Nothing was done.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The request carries no token, and the method needs one.
    #[error(
        "this server requires a bearer token: send the metadata `authorization: Bearer <token>` \
         (rapport --token or RAPPORT_TOKEN); ask an admin for one"
    )]
    NoToken,
    /// The authorization header is not `Bearer <token>`.
    #[error("the authorization metadata is not of the form `Bearer <token>`")]
    MalformedHeader,
    /// The token matches none configured.
    #[error("the bearer token is not one this server knows (revoked, mistyped, or for another server)")]
    UnknownToken,
    /// The token's role does not allow the method.
    #[error("token \"{identity}\" has role {role}, and {method} needs {needed}")]
    Forbidden {
        /// The token's identity.
        identity: String,
        /// Its role.
        role: crate::Role,
        /// The gRPC method's path.
        method: String,
        /// The roles that may call it.
        needed: String,
    },
    /// An event names an actor other than the token's identity, and the token may not record
    /// for others.
    #[error(
        "events[{index}].actor is \"{actor}\", but the token is \"{identity}\"'s and records only its own events: \
         leave actor empty to record it as \"{identity}\", or give the token records_for_others = true"
    )]
    ActorNotCaller {
        /// The event's place in the request.
        index: usize,
        /// The actor it names.
        actor: String,
        /// The token's identity.
        identity: String,
    },
}

/// Why an append was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The request breaks a rule; nothing was written.
    #[error("{0}")]
    Invalid(Violation),
    /// The stream is not where the client expected it; nothing was written.
    #[error("account \"{account_id}\" is at version {current}, but the request expected {expected}")]
    WrongExpectedVersion {
        /// The stream.
        account_id: AccountId,
        /// What the client expected.
        expected: Expected,
        /// The stream's last version (0: no events).
        current: u64,
    },
    /// An event id is already recorded with other content, or elsewhere; nothing was written.
    #[error("events[{index}].event_id: {event_id} {detail}")]
    EventIdTaken {
        /// Index of the event in the request.
        index: usize,
        /// The id.
        event_id: EventId,
        /// Where and how it is recorded, and what to do.
        detail: String,
    },
    /// The store could not take or keep the events; safe to retry with the same event ids.
    #[error("{0}")]
    Store(StoreError),
    /// The server is shutting down and takes no more appends.
    #[error("the server is shutting down; retry against another instance or after restart")]
    ShuttingDown,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A request field breaks a rule.
    #[error("{0}")]
    Invalid(Violation),
    /// No such account.
    #[error("account \"{0}\" does not exist; open it with an account_opened event")]
    AccountNotFound(AccountId),
    /// The account exists, but not yet at the instant or version asked for.
    #[error("account \"{0}\" was not opened yet at the instant or version asked for")]
    NotYetOpened(AccountId),
    /// Stored data does not decode.
    #[error("{0}")]
    Corrupt(String),
    /// The store failed.
    #[error("{0}")]
    Store(StoreError),
    /// No build of this rule set exists.
    #[error("rule set \"{id}\" is not built (built: {}); build it with Rebuild, or name one of those", available.join(", "))]
    RuleSetNotFound {
        /// The id asked for.
        id: String,
        /// The ids that are built.
        available: Vec<String>,
    },
    /// A build of the same name and version holds other values.
    #[error("rule set {0} is already built with other values; give the changed rules a new version")]
    RuleSetChanged(String),
    /// The rule file is invalid.
    #[error("rule_set: {0}")]
    InvalidRules(#[from] rapport_projection::RuleSetError),
    /// The build is still far behind the log.
    #[error(
        "rule set {id} is still building: at position {position} of {durable}; activate it once Rebuild reports it caught up"
    )]
    NotCaughtUp {
        /// The build.
        id: String,
        /// Its position.
        position: u64,
        /// The log's durable position.
        durable: u64,
    },
    /// The server cannot do it now; retry later.
    #[error("{0}")]
    Busy(String),
    /// The client holds as many subscriptions as it may.
    #[error(
        "{client} already holds {limit} subscriptions, the most one client may; end one, or raise \
         --max-subscriptions-per-client"
    )]
    TooManySubscriptions {
        /// The client: a token's identity, or a remote address.
        client: String,
        /// The limit.
        limit: usize,
    },
}

impl From<StoreError> for ReadError {
    fn from(error: StoreError) -> Self {
        ReadError::Store(error)
    }
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The log could not be read back at start-up.
    #[error("could not load the log: {0}")]
    Load(#[from] ReadError),
    /// The transport failed.
    #[error("the gRPC transport failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The writer thread could not be started.
    #[error("could not start the writer thread: {0}")]
    Writer(std::io::Error),
    /// The listener's address could not be read.
    #[error("the listener is not usable: {0}")]
    Listener(std::io::Error),
    /// The reflection service could not be built from the descriptors.
    #[error("could not build the reflection service: {0}")]
    Reflection(tonic_reflection::server::Error),
    /// A blocking task panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

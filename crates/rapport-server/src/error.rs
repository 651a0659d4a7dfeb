//! What can go wrong serving a request, in domain terms. `status.rs` turns these into gRPC
//! statuses; nothing else does.

use rapport_domain::{AccountId, EventId, ExpectedVersion, Violation};
use rapport_store::StoreError;

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
        expected: ExpectedVersion,
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
    /// A position beyond the end of the log.
    #[error("{field}: {requested} is beyond the end of the log ({end}); ask for {end} or less, or 0 for the end")]
    BeyondEnd {
        /// The request field.
        field: &'static str,
        /// What was asked for.
        requested: u64,
        /// The log's durable end.
        end: u64,
    },
    /// This node has not read the log up to a read's `min_position` within the wait.
    #[error(
        "min_position: this node has read the log up to position {read}, {behind} short of position {min_position}, \
         and did not get there within {waited_ms} ms; retry, or read through the node that took the append",
        behind = .min_position.saturating_sub(*.read)
    )]
    NotReadUpTo {
        /// The position asked for.
        min_position: u64,
        /// The position this node has read (and made visible) up to.
        read: u64,
        /// How long the read waited.
        waited_ms: u128,
    },
    /// The build being followed was replaced by a rebuild from scratch.
    #[error("the build of {0} was replaced by a rebuild from scratch; run Rebuild again to follow the new one")]
    Replaced(String),
    /// A task serving the request failed (panicked or was cancelled): a bug.
    #[error("a task serving the request failed: {0}; this is a bug in Rapport, please report it")]
    TaskFailed(String),
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

impl From<rapport_wire::CorruptEvent> for ReadError {
    fn from(error: rapport_wire::CorruptEvent) -> Self {
        ReadError::Corrupt(error.to_string())
    }
}

impl From<tokio::task::JoinError> for ReadError {
    fn from(error: tokio::task::JoinError) -> Self {
        ReadError::TaskFailed(error.to_string())
    }
}

/// Why an erasure or a subject report failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// A request field breaks a rule.
    #[error("{0}")]
    Invalid(Violation),
    /// The account has no such contact.
    #[error("account \"{account_id}\" has no contact \"{contact_id}\"; check the id (GetAccount lists them)")]
    ContactNotFound {
        /// The account.
        account_id: AccountId,
        /// The contact asked for.
        contact_id: rapport_domain::ContactId,
    },
    /// Some of the contact's events were stored in clear, where no key deletion can reach.
    #[error(
        "contact \"{contact_id}\" of account \"{account_id}\" has events stored in clear (a data directory from \
         before personal data was sealed); migrate it first (rapport export, then rapport import into a new data \
         directory), then forget them there"
    )]
    InClear {
        /// The account.
        account_id: AccountId,
        /// The contact.
        contact_id: rapport_domain::ContactId,
    },
    /// The server keeps personal data in clear (no key store), so it cannot forget anyone.
    #[error("this server keeps personal data in clear, without a key store, so it cannot forget a contact")]
    NotSealing,
    /// The key store failed; the erasure is not acknowledged (retry: it is idempotent).
    #[error("the key store failed: {0}; the erasure is not acknowledged, retry it")]
    Keys(rapport_keys::KeyError),
    /// Recording the erasure failed.
    #[error("{0}")]
    Append(AppendError),
    /// Reading the account failed.
    #[error("{0}")]
    Read(#[from] ReadError),
}

/// Why the server ended a subscription. Each says where to resume.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionEnd {
    /// The server is shutting down.
    #[error("the server is shutting down; subscribe again from position {resume_from} to resume")]
    ShuttingDown {
        /// The first position not yet considered.
        resume_from: u64,
    },
    /// The client did not read for the stall timeout.
    #[error(
        "the subscriber did not read for {stall_ms} ms, so the server ended the subscription; subscribe again from \
         the last checkpoint's position + 1 (everything before position {resume_from} was sent or filtered out)"
    )]
    Stalled {
        /// The stall timeout.
        stall_ms: u128,
        /// The first position not yet considered.
        resume_from: u64,
    },
    /// Reading the log failed.
    #[error("{0}")]
    Read(#[from] ReadError),
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
    /// Erasures a stop interrupted could not be settled.
    #[error("could not settle the erasures a stop interrupted: {0}")]
    Privacy(#[from] PrivacyError),
    /// The metrics registry refused a metric (a name given twice).
    #[error("could not register the metrics: {0}")]
    Metrics(prometheus::Error),
}

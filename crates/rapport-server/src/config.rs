//! How the server behaves: limits, timings, tokens and TLS, and the clock it reads.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rapport_domain::{Limits, Timestamp};
use rapport_projection::RuleSet;

use rapport_keys::KeyStore;

use crate::TlsIdentity;
use crate::access::Tokens;

/// The server's source of the current time: the edge where the wall clock enters.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Timestamp::from_unix_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
    })
}

/// How the server behaves.
#[derive(Clone)]
pub struct ServerConfig {
    /// Bounds on every append.
    pub limits: Limits,
    /// Largest request message accepted, in bytes; a larger one is refused before decoding.
    pub max_request_bytes: usize,
    /// Most requests committed by one sync.
    pub max_group_requests: usize,
    /// Where the server reads the time (recording times, the future-skew check, the instant
    /// scores are taken at).
    pub clock: Clock,
    /// The rule set built and served when the store holds no active projection yet.
    pub default_rules: RuleSet,
    /// How often changed projections are checkpointed to the store.
    pub checkpoint_interval: Duration,
    /// How long a subscription waits for a client that does not read before it ends it
    /// (`RESOURCE_EXHAUSTED`, with the position to resume from).
    pub subscriber_stall_timeout: Duration,
    /// Most subscriptions one client may hold open at once; a client is a token's identity
    /// with authentication, otherwise a remote IP address.
    pub max_subscriptions_per_client: usize,
    /// Most requests of one `AppendStream` the server holds unanswered (read, not yet durable
    /// or not yet taken by the client); at the bound it stops reading the stream, and HTTP/2
    /// flow control holds the client back. At least 1.
    pub append_stream_window: usize,
    /// Listings score the portfolio at the server's time rounded down to a multiple of this
    /// (at least 1 s), and keep those scores from one page to the next and from one listing to
    /// the next until the time passes into the next multiple; a longer quantum rescores the
    /// whole portfolio less often, and shows scores that much older.
    pub listing_quantum: Duration,
    /// The bearer tokens every request must carry (except health and reflection); `None`
    /// serves without authentication.
    pub tokens: Option<Arc<Tokens>>,
    /// The certificate chain and key to serve TLS with; `None` serves plain HTTP/2.
    pub tls: Option<TlsIdentity>,
    /// Called each time an append joins the writer's queue, in queue order: for tests and
    /// instrumentation that must know the order in which requests will be decided, without
    /// guessing it from time.
    pub on_append_queued: Option<QueueHook>,
    /// The key store that seals personal data (names, titles, the text about contacts) under
    /// a key per contact. `None` stores it in clear and cannot forget anyone: only to measure
    /// what sealing costs. `rapport serve` always opens one.
    pub keys: Option<Arc<KeyStore>>,
    /// Rotate the master key after every erasure (see `rapport_keys::KeyStore::rotate`).
    pub rotate_master_key_after_erasure: bool,
    /// Rotate the master key on this schedule; `None` only on request.
    pub rotate_master_key_every: Option<Duration>,
    /// Retention: forget contacts this long after their `ContactLeft`; `None` keeps them.
    pub forget_after_left: Option<Duration>,
    /// The longest a read asking for a `min_position` this node has not read yet waits for it
    /// (less, if the request's deadline is sooner) before it answers `UNAVAILABLE`. A node
    /// behind by more than this is better left for another, or retried later.
    pub max_read_wait: Duration,
}

/// See [`ServerConfig::on_append_queued`].
pub type QueueHook = Arc<dyn Fn() + Send + Sync>;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_request_bytes: 16 * 1024 * 1024,
            max_group_requests: 1_024,
            clock: system_clock(),
            default_rules: RuleSet::default_rules(),
            checkpoint_interval: Duration::from_secs(1),
            subscriber_stall_timeout: Duration::from_secs(30),
            max_subscriptions_per_client: 64,
            append_stream_window: 256,
            listing_quantum: Duration::from_secs(60),
            tokens: None,
            tls: None,
            on_append_queued: None,
            keys: None,
            rotate_master_key_after_erasure: false,
            rotate_master_key_every: None,
            forget_after_left: None,
            max_read_wait: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("limits", &self.limits)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_group_requests", &self.max_group_requests)
            .field("default_rules", &self.default_rules.id())
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("subscriber_stall_timeout", &self.subscriber_stall_timeout)
            .field("max_subscriptions_per_client", &self.max_subscriptions_per_client)
            .field("append_stream_window", &self.append_stream_window)
            .field("listing_quantum", &self.listing_quantum)
            .field("tokens", &self.tokens.as_ref().map(|t| t.len()))
            .field("tls", &self.tls.is_some())
            .field("on_append_queued", &self.on_append_queued.is_some())
            .field("max_read_wait", &self.max_read_wait)
            .finish_non_exhaustive()
    }
}

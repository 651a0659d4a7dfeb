//! Rapport's gRPC service, as a library.
//!
//! [`serve`] runs the `rapport.v1.Ledger`, `rapport.v1.Accounts` and `rapport.v1.Projections`
//! services, the standard health service and server reflection on a listener the caller
//! bound, over any [`EventLog`] and [`ProjectionStore`]. The binary and the end-to-end tests
//! both start the service this way.
//!
//! Inside: a layer checks every request's bearer token and role when the server has tokens
//! (`access`); handlers parse requests into domain types (`convert`); appends go to the single
//! writer thread that validates them against the account, appends them, commits them in
//! groups and folds them into the active projection build (`writer`); builds, checkpoints and
//! rebuilds live in `projection`, the portfolio query in `portfolio`, subscriptions in
//! `subscribe`; reads come from the builds and from the log capped at the durable position
//! (`service`); and every error becomes a gRPC status in one place (`status`).

mod access;
mod convert;
mod error;
mod portfolio;
mod projection;
mod service;
mod status;
mod subscribe;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rapport_domain::{Limits, Timestamp};
use rapport_projection::RuleSet;
use rapport_proto::v1 as pb;
use rapport_store::{EventLog, ProjectionStore};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

pub use access::{Caller, Permission, Role, Tokens, TokensError, token_hash};
pub use convert::{encode_event, event_from_bytes, event_from_wire};
pub use error::{AccessError, AppendError, Expected, ReadError, ServeError};
pub use service::{RebuildProgressStream, RecordedEventStream};
pub use subscribe::SubscriptionStream;
pub use tonic::transport::Identity as TlsIdentity;

use crate::projection::Projections;
use crate::service::{AccountsService, LedgerService, ProjectionsService, Shared};
use crate::writer::Writer;

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
    /// The bearer tokens every request must carry (except health and reflection); `None`
    /// serves without authentication.
    pub tokens: Option<Arc<Tokens>>,
    /// The certificate chain and key to serve TLS with; `None` serves plain HTTP/2.
    pub tls: Option<TlsIdentity>,
}

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
            tokens: None,
            tls: None,
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
            .field("tokens", &self.tokens.as_ref().map(|t| t.len()))
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Accepted connections, with Nagle's algorithm off: replies are small and must leave at once
/// (with it on, a reply waits for the client's delayed ACK, some 40 ms).
fn incoming(listener: TcpListener) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// Serves Rapport on `listener` until `shutdown` completes, over the event `log` and the
/// projection `store` (which may be the same storage engine).
///
/// Resumes the active projection from its checkpoint and folds the events recorded after it
/// first (connections wait meanwhile); refuses to start if a stored event does not decode.
/// Other builds resume in the background. On shutdown, stops accepting, lets in-flight
/// requests finish, commits what the writer holds, syncs the log and checkpoints every build.
pub async fn serve(
    listener: TcpListener,
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (loader, rules) = (Arc::clone(&log), config.default_rules.clone());
    let projections = tokio::task::spawn_blocking(move || Projections::open(loader, store, rules)).await??;
    let projections = Arc::new(projections);
    let projector = tokio::spawn(projection::follow(Arc::clone(&projections), config.checkpoint_interval));
    let writer = Writer::start(Arc::clone(&log), Arc::clone(&projections), &config).map_err(ServeError::Writer)?;
    let (closing_sender, closing) = tokio::sync::watch::channel(false);
    let shared = Arc::new(Shared {
        log,
        projections: Arc::clone(&projections),
        writer,
        limits: config.limits.clone(),
        clock: Arc::clone(&config.clock),
        closing,
        subscriber_stall_timeout: config.subscriber_stall_timeout,
        subscribers: subscribe::Subscribers::new(config.max_subscriptions_per_client),
    });
    // Subscriptions never end by themselves: tell them first, so that the transport's graceful
    // shutdown, which waits for open streams, can finish.
    let stopping = Arc::clone(&projections);
    let shutdown = async move {
        shutdown.await;
        closing_sender.send_replace(true);
        // Rebuilds stop at once rather than run on while the transport drains.
        stopping.stop_following();
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<pb::ledger_server::LedgerServer<LedgerService>>().await;
    health.set_serving::<pb::accounts_server::AccountsServer<AccountsService>>().await;
    health.set_serving::<pb::projections_server::ProjectionsServer<ProjectionsService>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rapport_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(ServeError::Reflection)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(ServeError::Reflection)?;

    let ledger = pb::ledger_server::LedgerServer::new(LedgerService(Arc::clone(&shared)))
        .max_decoding_message_size(config.max_request_bytes);
    let accounts = pb::accounts_server::AccountsServer::new(AccountsService(Arc::clone(&shared)))
        .max_decoding_message_size(config.max_request_bytes);

    let projections_service = pb::projections_server::ProjectionsServer::new(ProjectionsService(Arc::clone(&shared)))
        .max_decoding_message_size(config.max_request_bytes);

    let address = listener.local_addr().map_err(ServeError::Listener)?;
    let mut server = tonic::transport::Server::builder();
    if let Some(identity) = config.tls.clone() {
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    let tokens = config.tokens.as_ref().map(|t| t.len());
    info!(%address, tls = config.tls.is_some(), ?tokens, "serving");
    server
        .layer(access::Guard::new(config.tokens.clone()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ledger)
        .add_service(accounts)
        .add_service(projections_service)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    shared.writer.close().await;
    tokio::task::spawn_blocking(move || projections.close()).await?;
    let _ = projector.await;
    info!("stopped");
    Ok(())
}

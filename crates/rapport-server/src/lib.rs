//! Rapport's gRPC service, as a library.
//!
//! [`serve`] runs the `rapport.v1.Ledger`, `rapport.v1.Accounts`, `rapport.v1.Projections` and
//! `rapport.v1.Privacy` services, the standard health service and server reflection on a
//! listener the caller bound, over any [`EventLog`] and [`ProjectionStore`]. The binary and the end-to-end tests
//! both start the service this way.
//!
//! Inside: a layer checks every request's bearer token and role when the server has tokens
//! (`access`); one file per service (`service/`) parses requests through `rapport-wire`,
//! waits for a read's `min_position`, asks the writer or the projections and renders the
//! answer; appends (`append`) go to the server's single writer thread, whose group loop
//! decides them against the account (retries judged by `idempotency`), appends and syncs them
//! in groups and folds them into the active build, with every event other writers of a
//! replicated log append (`writer/`); builds, folding, the build registry and the background
//! projector live in `projection/`, subscriptions in `subscribe`; personal data (sealing,
//! opening, erasure and retention) in `privacy`; what the services share is `state`; and every
//! error becomes a gRPC status in one place (`status`).

mod access;
mod append;
mod config;
mod door;
mod error;
mod feed;
mod idempotency;
mod metrics;
mod privacy;
mod projection;
mod retention;
mod service;
mod state;
mod status;
mod subscribe;
mod subscribers;
mod writer;

use std::future::Future;
use std::sync::Arc;

use rapport_proto::v1 as pb;
use rapport_store::{EventLog, ProjectionStore};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

pub use access::{Caller, Permission, Role, Tokens, TokensError, token_hash};
pub use config::{Clock, QueueHook, ServerConfig, system_clock};
pub use door::{Api, FrontDoor, Inside, Readiness};
pub use error::{AccessError, AppendError, PrivacyError, ReadError, ServeError, SubscriptionEnd};
pub use service::{AppendStreamAnswers, RebuildProgressStream, RecordedEventStream};
pub use subscribe::SubscriptionStream;
pub use tonic::transport::Identity as TlsIdentity;

use crate::privacy::PersonalData;
use crate::projection::Projections;
use crate::service::{AccountsService, LedgerService, PrivacyService, ProjectionsService, SubscribeRoute};
use crate::state::AppState;
use crate::writer::Writer;

/// The connections `serve` takes from `listener`, with Nagle's algorithm off: replies are
/// small and must leave at once (with it on, a reply waits for the client's delayed ACK, some
/// 40 ms). Public for a service that must run on the same stack, as the benchmark's null
/// Ledger does.
pub fn incoming(listener: TcpListener) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
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
    serve_with(listener, log, store, config, shutdown, Vec::new()).await
}

/// [`serve`], with other front doors beside the gRPC listener (the web console, the
/// operations endpoints): each is opened before the start-up catch-up and runs until shutdown,
/// and the server returns once every door has closed.
pub async fn serve_with(
    listener: TcpListener,
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
    doors: Vec<Box<dyn FrontDoor>>,
) -> Result<(), ServeError> {
    let metrics = Arc::new(metrics::Metrics::new().map_err(ServeError::Metrics)?);
    let (closing_sender, closing) = tokio::sync::watch::channel(false);
    let inside = Inside::new(Arc::clone(&metrics), config.tokens.clone(), closing.clone());
    let doors: Vec<_> = doors.into_iter().map(|door| tokio::spawn(door.open(inside.clone()))).collect();
    let served = serve_inside(listener, log, store, config, shutdown, &inside, metrics, closing_sender).await;
    // A door closes when the server starts to close, or here if the server never started.
    for door in doors {
        let _ = door.await;
    }
    served
}

#[allow(clippy::too_many_arguments)] // One caller, which only splits the doors off.
async fn serve_inside(
    listener: TcpListener,
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
    inside: &Inside,
    metrics: Arc<metrics::Metrics>,
    closing_sender: tokio::sync::watch::Sender<bool>,
) -> Result<(), ServeError> {
    // Whatever way this returns, the doors are told to close.
    let closing_sender = CloseOnDrop(closing_sender);
    let closing = closing_sender.0.subscribe();
    if let Some(keys) = config.keys.clone() {
        let log = Arc::clone(&log);
        tokio::task::spawn_blocking(move || privacy::settle_interrupted_erasures(&keys, log.as_ref())).await??;
    }
    let (loader, rules) = (Arc::clone(&log), config.default_rules.clone());
    let projections = tokio::task::spawn_blocking(move || Projections::open(loader, store, rules)).await??;
    let projections = Arc::new(projections);
    let projector = tokio::spawn(projection::follow(Arc::clone(&projections), config.checkpoint_interval));
    let feed = Arc::new(feed::Feed::default());
    let writer =
        Writer::start(Arc::clone(&log), Arc::clone(&projections), &config, Arc::clone(&metrics), Arc::clone(&feed))
            .map_err(ServeError::Writer)?;
    let state = Arc::new(AppState {
        log,
        projections: Arc::clone(&projections),
        writer,
        limits: config.limits.clone(),
        clock: Arc::clone(&config.clock),
        closing,
        subscriber_stall_timeout: config.subscriber_stall_timeout,
        subscribers: subscribers::Subscribers::new(config.max_subscriptions_per_client),
        personal: PersonalData::new(config.keys.clone(), config.rotate_master_key_after_erasure),
        max_read_wait: config.max_read_wait,
        append_stream_window: config.append_stream_window.max(1),
        listing_quantum: config.listing_quantum.max(std::time::Duration::from_secs(1)),
        metrics: Arc::clone(&metrics),
        feed,
    });
    let retention = config.forget_after_left.map(|after| tokio::spawn(retention::run(Arc::clone(&state), after)));
    let rotation = match (&config.keys, config.rotate_master_key_every) {
        (Some(keys), Some(every)) => Some(tokio::spawn(privacy::rotate_every(Arc::clone(keys), every))),
        _ => None,
    };
    // Subscriptions never end by themselves: tell them first, so that the transport's graceful
    // shutdown, which waits for open streams, can finish.
    let stopping = Arc::clone(&projections);
    let shutdown = async move {
        shutdown.await;
        closing_sender.0.send_replace(true);
        // Rebuilds stop at once rather than run on while the transport drains.
        stopping.stop_following();
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<pb::ledger_server::LedgerServer<LedgerService>>().await;
    health.set_serving::<pb::accounts_server::AccountsServer<AccountsService>>().await;
    health.set_serving::<pb::projections_server::ProjectionsServer<ProjectionsService>>().await;
    health.set_serving::<pb::privacy_server::PrivacyServer<PrivacyService>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rapport_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(ServeError::Reflection)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(ServeError::Reflection)?;

    let ledger = pb::ledger_server::LedgerServer::new(LedgerService(Arc::clone(&state)))
        .max_decoding_message_size(config.max_request_bytes);
    let ledger = SubscribeRoute::new(ledger, Arc::clone(&state), config.max_request_bytes);
    let accounts = pb::accounts_server::AccountsServer::new(AccountsService(Arc::clone(&state)))
        .max_decoding_message_size(config.max_request_bytes);

    let projections_service = pb::projections_server::ProjectionsServer::new(ProjectionsService(Arc::clone(&state)))
        .max_decoding_message_size(config.max_request_bytes);

    let privacy = pb::privacy_server::PrivacyServer::new(PrivacyService(Arc::clone(&state)))
        .max_decoding_message_size(config.max_request_bytes);

    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ledger)
        .add_service(accounts)
        .add_service(projections_service)
        .add_service(privacy);
    let guard = access::Guard::new(config.tokens.clone());
    let count = metrics::Count(Arc::clone(&metrics));
    {
        use tower_layer::Layer;
        inside.serving(Api(count.layer(guard.layer(routes.clone()))), Arc::clone(&state));
    }
    let address = listener.local_addr().map_err(ServeError::Listener)?;
    let mut server = tonic::transport::Server::builder();
    if let Some(identity) = config.tls.clone() {
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    let tokens = config.tokens.as_ref().map(|t| t.len());
    info!(%address, tls = config.tls.is_some(), ?tokens, sealing = state.personal.seals(), "serving");
    server
        .layer(count)
        .layer(guard)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    for task in [retention, rotation].into_iter().flatten() {
        task.abort();
    }
    state.writer.close().await;
    tokio::task::spawn_blocking(move || projections.close()).await?;
    let _ = projector.await;
    info!("stopped");
    Ok(())
}

/// Tells the front doors to close when dropped: on shutdown, and on a failed start.
struct CloseOnDrop(tokio::sync::watch::Sender<bool>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

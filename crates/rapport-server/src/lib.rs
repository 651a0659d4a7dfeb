//! Rapport's gRPC service, as a library.
//!
//! [`serve`] runs the `rapport.v1.Ledger` and `rapport.v1.Accounts` services, the standard
//! health service and server reflection on a listener the caller bound, over any
//! [`EventLog`]. The binary and the end-to-end tests both start the service this way.
//!
//! Inside: handlers parse requests into domain types (`convert`), appends go to the single
//! writer thread that validates them against the account, appends them and commits them in
//! groups (`writer`), reads come from the in-memory account projection and from the log
//! capped at the durable position (`projection`, `service`), and every error becomes a gRPC
//! status in one place (`status`).

mod convert;
mod error;
mod projection;
mod service;
mod status;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rapport_domain::{Limits, Timestamp};
use rapport_proto::v1 as pb;
use rapport_store::EventLog;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

pub use error::{AppendError, Expected, ReadError, ServeError};
pub use service::RecordedEventStream;

use crate::projection::Projection;
use crate::service::{AccountsService, LedgerService, Shared};
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
    /// Where the server reads the time (recording times, the future-skew check).
    pub clock: Clock,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_request_bytes: 16 * 1024 * 1024,
            max_group_requests: 1_024,
            clock: system_clock(),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("limits", &self.limits)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_group_requests", &self.max_group_requests)
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

/// Serves Rapport on `listener` until `shutdown` completes.
///
/// Folds the whole log into the account projection first (connections wait meanwhile), and
/// refuses to start if a stored event does not decode. On shutdown, stops accepting, lets
/// in-flight requests finish, commits what the writer holds and syncs the log.
pub async fn serve(
    listener: TcpListener,
    log: Arc<dyn EventLog>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let loader = Arc::clone(&log);
    let projection = tokio::task::spawn_blocking(move || Projection::load(loader.as_ref())).await??;
    let projection = Arc::new(projection);
    let writer = Writer::start(Arc::clone(&log), Arc::clone(&projection), &config).map_err(ServeError::Writer)?;
    let shared = Arc::new(Shared { log, projection, writer, limits: config.limits.clone() });

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<pb::ledger_server::LedgerServer<LedgerService>>().await;
    health.set_serving::<pb::accounts_server::AccountsServer<AccountsService>>().await;
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

    let address = listener.local_addr().map_err(ServeError::Listener)?;
    info!(%address, "serving");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ledger)
        .add_service(accounts)
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    shared.writer.close().await;
    info!("stopped");
    Ok(())
}

//! The console's listener: the router, served over plain HTTP or TLS until the server closes.

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rapport_server::Inside;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

use crate::session::Sessions;

/// Why a TLS certificate or key was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate chain is not PEM certificates.
    #[error("the TLS certificate is not a PEM certificate chain: {0}")]
    Certificate(String),
    /// The key is not a PEM private key.
    #[error("the TLS key is not a PEM private key: {0}")]
    Key(String),
    /// The key does not fit the certificate, or rustls refused them.
    #[error("the TLS certificate and key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// A rustls configuration from PEM, with HTTP/2 and HTTP/1.1 offered.
pub(crate) fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("it holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the console until the server closes.
pub(crate) async fn run(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, inside: Inside) {
    let secure = tls.is_some();
    let router = router(inside.clone(), secure);
    // Logged as a link to open, not as `address`, which names the gRPC listener.
    let url =
        listener.local_addr().map(|a| format!("{}://{a}", if secure { "https" } else { "http" })).unwrap_or_default();
    info!(%url, "console serving");
    match tls {
        None => {
            let closed = inside.clone();
            let served = axum::serve(listener, router).with_graceful_shutdown(async move { closed.closed().await });
            if let Err(error) = served.await {
                warn!(%error, "the console stopped");
            }
        }
        Some(config) => serve_tls(listener, TlsAcceptor::from(config), router, inside).await,
    }
    info!("console stopped");
}

fn router(inside: Inside, secure: bool) -> Router {
    let sessions = Arc::new(Sessions::new(secure));
    crate::ops::routes().merge(crate::pages::routes()).with_state(crate::pages::Console { inside, sessions })
}

async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, router: Router, inside: Inside) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = inside.closed() => break,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "the console could not accept a connection");
                continue;
            }
        };
        let (acceptor, service) = (acceptor.clone(), TowerToHyperService::new(router.clone()));
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // A client that cannot finish the handshake is its own problem, not the server's.
            let Ok(stream) = acceptor.accept(stream).await else { return };
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let _ = watcher.watch(connection.into_owned()).await;
        });
    }
    graceful.shutdown().await;
}

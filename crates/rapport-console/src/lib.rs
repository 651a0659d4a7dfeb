//! Rapport's web console and operations endpoints, for the people who are not engineers and
//! for the operators: a [`Console`] is a front door of the server (`rapport_server::FrontDoor`)
//! on its own HTTP listener, on the same runtime.
//!
//! Every page asks the server's gRPC services in process, through `Inside::api` and the same
//! access layer as any client, so the console has no query and no role table of its own: a
//! page is a request, a call, and HTML. Pages are rendered on the server (maud, escaped at
//! compile time); the stylesheet and the one small script are compiled into the binary.
//!
//! Inside: `serve` (the listener, plain or TLS), `session` (the login and its cookie),
//! `ops` (`/metrics`, `/healthz`, `/readyz`), `layout` (the page around every page, the
//! stylesheet), `pages/` (one file per page), `chart` (the SVG plots and the relationship map).

mod chart;
mod layout;
mod ops;
mod pages;
mod serve;
mod session;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rapport_server::{FrontDoor, Inside};
use tokio::net::TcpListener;

pub use serve::TlsError;

/// The console on a listener the caller bound, with TLS when given a certificate chain and key.
pub struct Console {
    listener: TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Console {
    /// A console on `listener`, plain HTTP.
    pub fn new(listener: TcpListener) -> Console {
        Console { listener, tls: None }
    }

    /// A console on `listener` over TLS, with a certificate chain and its private key (PEM), the
    /// same files as the gRPC listener's.
    pub fn with_tls(listener: TcpListener, cert_pem: &[u8], key_pem: &[u8]) -> Result<Console, TlsError> {
        Ok(Console { listener, tls: Some(serve::tls_config(cert_pem, key_pem)?) })
    }
}

impl FrontDoor for Console {
    fn open(self: Box<Self>, inside: Inside) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(serve::run(self.listener, self.tls, inside))
    }
}

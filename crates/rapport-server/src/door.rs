//! Other ways into the same server, beside its gRPC listener: the web console and the
//! operations endpoints are front doors. A door gets the [`Api`], the gRPC services behind
//! the same access layer, to call in process (so it has no query of its own and no role table
//! of its own), and what an operator asks of the server: is it ready, and its metrics.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::sync::watch;

use crate::access::{Guarded, Tokens};
use crate::metrics::{Counted, Metrics};
use crate::state::AppState;

/// Another way into the server, run for the server's whole life from before its start-up
/// catch-up (so that it can say the server is not ready yet) until shutdown.
pub trait FrontDoor: Send {
    /// Serves until [`Inside::closed`] completes, then returns.
    fn open(self: Box<Self>, inside: Inside) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The server's gRPC services, behind the access layer and counted like any RPC, as one tower
/// service: the generated clients take it in place of a channel (`AccountsClient::new(api)`).
#[derive(Clone)]
pub struct Api(pub(crate) Counted<Guarded<tonic::service::Routes>>);

impl tower_service::Service<http::Request<tonic::body::Body>> for Api {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower_service::Service::<http::Request<tonic::body::Body>>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        self.0.call(request)
    }
}

/// Whether the server can do its work, as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Serving: the active projection has folded every durable event and the log takes appends.
    Ready,
    /// Still starting: the active projection catches up with the log.
    Starting,
    /// The log's last sync failed; appends are refused until one succeeds.
    NotWritable,
    /// The active projection has not folded every durable event.
    Behind {
        /// The active build's position.
        position: u64,
        /// The log's durable position.
        durable: u64,
    },
    /// Shutting down.
    Closing,
}

/// What a front door is given: see the module's docs.
#[derive(Clone)]
pub struct Inside(Arc<Shared>);

struct Shared {
    metrics: Arc<Metrics>,
    tokens: Option<Arc<Tokens>>,
    serving: OnceLock<(Api, Arc<AppState>)>,
    closing: watch::Receiver<bool>,
}

impl Inside {
    pub(crate) fn new(metrics: Arc<Metrics>, tokens: Option<Arc<Tokens>>, closing: watch::Receiver<bool>) -> Inside {
        Inside(Arc::new(Shared { metrics, tokens, serving: OnceLock::new(), closing }))
    }

    /// The server serves from here on.
    pub(crate) fn serving(&self, api: Api, state: Arc<AppState>) {
        let _ = self.0.serving.set((api, state));
    }

    /// The API, once the server has started (`None` while it catches up).
    pub fn api(&self) -> Option<Api> {
        self.0.serving.get().map(|(api, _)| api.clone())
    }

    /// The tokens the server checks, if it has any: a door that asks people for one checks it
    /// here, and passes it on with every call to the [`Api`].
    pub fn tokens(&self) -> Option<&Tokens> {
        self.0.tokens.as_deref()
    }

    /// Whether the server can do its work now.
    pub fn readiness(&self) -> Readiness {
        if *self.0.closing.borrow() {
            return Readiness::Closing;
        }
        let Some((_, state)) = self.0.serving.get() else { return Readiness::Starting };
        if !state.writer.is_writable() {
            return Readiness::NotWritable;
        }
        let (position, durable) = (state.projections.active().position(), state.projections.durable_position());
        if position < durable {
            return Readiness::Behind { position, durable };
        }
        Readiness::Ready
    }

    /// The metrics in the Prometheus text format, read off the server now.
    pub fn metrics(&self) -> String {
        let ready = self.readiness() == Readiness::Ready;
        let now = self.0.serving.get().map(|(_, state)| (state.projections.as_ref(), &state.subscribers));
        self.0.metrics.render(now, ready)
    }

    /// Completes when the server begins to shut down.
    pub async fn closed(&self) {
        let mut closing = self.0.closing.clone();
        let _ = closing.wait_for(|closing| *closing).await;
    }
}

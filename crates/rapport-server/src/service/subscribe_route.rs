//! `Ledger.Subscribe` on a route of its own, beside the generated `LedgerServer`: a
//! subscription's events are framed once for every subscription that sends them
//! ([`crate::feed`]), and this route hands those bytes to HTTP/2 as they are
//! ([`rapport_proto::framed::server_streaming`]), where the generated service would copy and
//! frame every message again for every subscriber.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use rapport_proto::v1 as pb;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

use super::LedgerService;
use super::ledger::subscription;
use crate::state::AppState;

const SUBSCRIBE: &str = "/rapport.v1.Ledger/Subscribe";

/// The `rapport.v1.Ledger` service: `Subscribe` served here, every other method by the
/// generated server.
#[derive(Clone)]
pub(crate) struct SubscribeRoute {
    ledger: pb::ledger_server::LedgerServer<LedgerService>,
    state: Arc<AppState>,
    max_request_bytes: usize,
}

impl SubscribeRoute {
    /// `ledger`, with `Subscribe` served from `state`'s feed; requests larger than
    /// `max_request_bytes` are refused, as the generated server refuses them.
    pub fn new(
        ledger: pb::ledger_server::LedgerServer<LedgerService>,
        state: Arc<AppState>,
        max_request_bytes: usize,
    ) -> SubscribeRoute {
        SubscribeRoute { ledger, state, max_request_bytes }
    }
}

impl NamedService for SubscribeRoute {
    const NAME: &'static str = <pb::ledger_server::LedgerServer<LedgerService> as NamedService>::NAME;
}

impl Service<http::Request<Body>> for SubscribeRoute {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != SUBSCRIBE {
            return self.ledger.call(request);
        }
        let (state, max_request_bytes) = (Arc::clone(&self.state), self.max_request_bytes);
        Box::pin(async move {
            let answer = async |request: tonic::Request<pb::SubscribeRequest>| subscription(&state, &request);
            Ok(rapport_proto::framed::server_streaming(request, max_request_bytes, answer).await)
        })
    }
}

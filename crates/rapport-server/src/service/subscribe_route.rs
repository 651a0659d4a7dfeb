//! `Ledger.Subscribe` on a route of its own, beside the generated `LedgerServer`: its messages
//! are encoded once for every subscription that sends them ([`crate::feed`]), and this route
//! writes those bytes as they are, where the generated service would encode every message for
//! every subscriber.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use rapport_proto::codec::{Encoded, EncodedCodec};
use rapport_proto::v1 as pb;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};

use super::LedgerService;
use super::ledger::subscription;
use crate::state::AppState;
use crate::subscribe::SubscriptionStream;

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
        let method = Subscribe(Arc::clone(&self.state));
        let max_request_bytes = self.max_request_bytes;
        Box::pin(async move {
            let mut grpc = Grpc::new(EncodedCodec::<pb::SubscribeRequest>::default())
                .apply_max_message_size_config(Some(max_request_bytes), None);
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}

struct Subscribe(Arc<AppState>);

impl ServerStreamingService<pb::SubscribeRequest> for Subscribe {
    type Response = Encoded;
    type ResponseStream = SubscriptionStream;
    type Future = BoxFuture<Response<SubscriptionStream>, Status>;

    fn call(&mut self, request: Request<pb::SubscribeRequest>) -> Self::Future {
        let state = Arc::clone(&self.0);
        Box::pin(async move { Ok(Response::new(subscription(&state, &request)?)) })
    }
}
